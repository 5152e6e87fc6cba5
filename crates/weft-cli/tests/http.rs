//! `weft run` and `weft resume` with ApiNodes and RemoteTools (issue 16) against the testkit's API
//! server on 127.0.0.1: the corpus documents naming public hosts run through `--http-rewrite` or
//! the tools file's `[http.rewrite]`, a RemoteTool bound to a command instead, `url_allow_list`
//! refusing a URL before any request, sensitive headers sent and found in no file or stream,
//! record and replay with the server gone, and the flag's usage errors.

mod common;

use common::{api_server, corpus, stderr, weft};
use serde_json::{Value as Json, json};
use weft_testkit::api::ApiReply;

const CRM_KEY: &str = "9012e475-d966-4ce4-a65d-08f33423abe9.sensitive_headers";

fn stdout_json(out: &std::process::Output) -> Json {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

fn events(path: &std::path::Path) -> Vec<Json> {
    std::fs::read_to_string(path).expect("events").lines().map(|l| serde_json::from_str(l).expect("an event")).collect()
}

#[test]
fn the_corpus_api_node_runs_against_a_local_server_and_replays_without_it() {
    let (rt, server) = api_server();
    server.route("PATCH", "/api/orders/42", [ApiReply::json(200, json!({"response": {"id": 42, "status": "shipped"}}))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rewrite = format!("https://orders.example.com={}", server.url());
    let flow = corpus("p_api_node.json");
    let args = ["run", &flow, "--llm", "simulated", "--http-rewrite", &rewrite, "--input", "order_id=42", "--input", "status=shipped"];
    let out = weft(dir.path(), &[&args[..], &["--events", "events.jsonl", "--record", "run.jsonl"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"response": {"id": 42, "status": "shipped"}}));
    let sent = server.received();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].method.as_str(), sent[0].query.as_deref()), ("PATCH", Some("notify=true")));
    assert_eq!(serde_json::from_str::<Json>(&sent[0].body).expect("a JSON body"), json!({"status": "shipped", "source": "agent"}));
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    // Events show both URLs: as written and where the request went.
    let http: Vec<Json> = events(&dir.path().join("events.jsonl")).into_iter().filter(|e| e["event"] == "http_request").collect();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0]["url"], "https://orders.example.com/api/orders/42?notify=true");
    assert_eq!(http[0]["rewritten"], format!("{}/api/orders/42?notify=true", server.url()));
    assert_eq!(http[0]["status"], 200);
    assert!(
        stderr(&out).contains("PATCH https://orders.example.com/api/orders/42?notify=true (sent to http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("usage: no LLM calls · 1 HTTP request ·"), "{}", stderr(&out));

    // The server is gone: the replay answers from the recording, no rewrite needed.
    drop(server);
    drop(rt);
    let out = weft(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--input", "order_id=42", "--input", "status=shipped", "--replay", "run.jsonl"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"response": {"id": 42, "status": "shipped"}}));
    let out = weft(
        dir.path(),
        &["run", &flow, "--llm", "simulated", "--input", "order_id=43", "--input", "status=shipped", "--replay", "run.jsonl"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no recorded answer for the HTTP request at node path"), "{}", stderr(&out));
}

#[test]
fn a_url_outside_the_allow_list_fails_the_node_before_any_request() {
    let (_rt, server) = api_server();
    server.fallback([ApiReply::json(200, json!({"response": "should not be reached"}))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rewrite = format!("https://orders.example.com={}", server.url());
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("p_api_node.json"),
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--input",
            "order_id=../../admin",
            "--input",
            "status=x",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ApiNode \"update_order\""), "{err}");
    assert!(err.contains("url_allow_list (\"https://orders.example.com/api/\")"), "{err}");
    assert!(err.contains("https://orders.example.com/api/orders/..%2F..%2Fadmin?notify=true"), "{err}");
    assert_eq!(server.total(), 0, "nothing was sent");
}

#[test]
fn a_remote_tool_runs_through_the_tools_files_rewrite_or_as_a_bound_command() {
    let (_rt, server) = api_server();
    server.route("GET", "/v1/weather/Oslo", [ApiReply::json(200, json!({"temperature": 21.5, "summary": "sunny"}))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = corpus("p_tool_node_remote.json");
    std::fs::write(dir.path().join("tools.toml"), format!("[http.rewrite]\n\"https://api.example.com\" = \"{}\"\n", server.url()))
        .expect("write");
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--tools", "tools.toml", "--input", "city=Oslo", "--input", "units=metric"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"weather": {"temperature": 21.5, "summary": "sunny"}}));
    assert_eq!(server.received()[0].query.as_deref(), Some("units=metric&lang=en"));
    assert_eq!(server.received()[0].header("x-request-source"), Some("agentspec-corpus"));

    // Bound by name to a command, the RemoteTool sends nothing.
    std::fs::write(
        dir.path().join("bound.toml"),
        "[tools.remote_weather]\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; echo '{\\\"temperature\\\": 3.0, \\\"summary\\\": \\\"from a command\\\"}'\"]\n",
    )
    .expect("write");
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--tools", "bound.toml", "--input", "city=Oslo", "--input", "units=metric"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"weather": {"temperature": 3.0, "summary": "from a command"}}));
    assert_eq!(server.total(), 1, "the bound run sent no request");
}

#[test]
fn the_agents_with_remote_tools_run() {
    let (_rt, server) = api_server();
    server.fallback([ApiReply::json(200, json!({"temperature": 21.5, "summary": "sunny"}))]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tools.toml"),
        format!(
            "[tools.get_weather]\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; echo '\\\"rain\\\"'\"]\n\n[http.rewrite]\n\"https://api.example.com\" = \"{}\"\n",
            server.url()
        ),
    )
    .expect("write");
    for doc in ["p_agent_tools_toplevel.json", "p_agent_tools_toplevel.yaml"] {
        let out = weft(dir.path(), &["run", &corpus(doc), "--llm", "simulated", "--tools", "tools.toml"]);
        assert_eq!(out.status.code(), Some(0), "{doc}: {}", stderr(&out));
        assert!(stderr(&out).contains("1 HTTP request"), "{doc}: {}", stderr(&out));
    }
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("p_agent_node_with_tools.json"),
            "--llm",
            "simulated",
            "--tools",
            "tools.toml",
            "--input",
            "customer_name=Ada",
            "--input",
            "budget=100",
            "--answer",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.total(), 3);
    assert!(server.received().iter().all(|r| r.path.starts_with("/v1/weather/")), "{:?}", server.received());
}

#[test]
fn sensitive_headers_reach_the_server_and_no_file_or_stream() {
    let (_rt, server) = api_server();
    // A server echoing every request, its Authorization header included, into its answer.
    server.fallback([ApiReply::echo()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "Bearer crm-token-5e1f0a9d77c3";
    let secret = format!("{CRM_KEY}={{\"Authorization\": \"{token}\"}}");
    let rewrite = format!("https://crm.example.com={}", server.url());
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("p_sensitive_fields.json"),
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--secret",
            &secret,
            "--message",
            "look up customer 7",
            "--state",
            "state.json",
            "--events",
            "events.jsonl",
            "--record",
            "run.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "the agent waits for the user: {}", stderr(&out));
    let sent = server.received();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].header("authorization"), Some(token));
    let secret_part = "crm-token-5e1f0a9d77c3";
    for file in ["state.json", "events.jsonl", "run.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect(file);
        assert!(!text.contains(secret_part), "{file} holds the sensitive header: {text}");
    }
    let state = std::fs::read_to_string(dir.path().join("state.json")).expect("state");
    assert!(state.contains("[REDACTED]"), "the echoed header is masked where the answer is kept: {state}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret_part));
    assert!(!stderr(&out).contains(secret_part), "{}", stderr(&out));
    assert!(stderr(&out).contains("--secret ..."), "the resume hint asks for the secret again: {}", stderr(&out));

    // Without the value, the tool fails naming how to give it; nothing is sent.
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("p_sensitive_fields.json"),
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--message",
            "hi",
            "--state",
            "s2.json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("give it with --secret {CRM_KEY}=")), "{}", stderr(&out));
    assert_eq!(server.total(), 1);
}

#[test]
fn the_subflow_and_api_call_document_reaches_its_agent() {
    let (_rt, server) = api_server();
    server.route("GET", "/api/billing", [ApiReply::json(200, json!({"ok": true}))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rewrite = format!("https://status.example.com={}", server.url());
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("w_subflow_and_api_call.json"),
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--input",
            "service=billing",
            "--state",
            "s.json",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(server.hits("/api/billing"), 1);
    assert_eq!(server.received()[0].header("accept"), Some("application/json"));
}

#[test]
fn bad_rewrites_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = corpus("p_api_node.json");
    let out = weft(dir.path(), &["run", &flow, "--http-rewrite", "https://orders.example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has no '=': write --http-rewrite PREFIX=URL"), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &flow, "--http-rewrite", "https://orders.example.com=ftp://h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not an http:// or https:// URL"), "{}", stderr(&out));
}

#[test]
fn a_failed_request_is_made_again_by_resume_with_the_stored_rewrite() {
    let (_rt, server) = api_server();
    // A 429 is retried by the node's retry_policy (at once: Retry-After 0), a 404 never: the run
    // fails after two attempts.
    server.route(
        "PATCH",
        "/api/orders/7",
        [
            ApiReply::status(429).with_header("Retry-After", "0"),
            ApiReply::text(404, "not yet"),
            ApiReply::json(200, json!({"response": "ok"})),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rewrite = format!("https://orders.example.com={}", server.url());
    let out = weft(
        dir.path(),
        &[
            "run",
            &corpus("p_api_node.json"),
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--input",
            "order_id=7",
            "--input",
            "status=x",
            "--state",
            "s.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error executing PATCH request to https://orders.example.com/api/orders/{{order_id}}: 404, \"not yet\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.hits("/api/orders/7"), 2);
    assert!(stderr(&out).contains("usage: no LLM calls · 1 HTTP request (1 retry, 1 failed)"), "{}", stderr(&out));
    let state = std::fs::read_to_string(dir.path().join("s.json")).expect("state");
    assert!(state.contains(&rewrite), "the rewrite is stored: {state}");
    // Resumed without --http-rewrite: the stored one sends the request to the server again.
    let out = weft(dir.path(), &["resume", "s.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"response": "ok"}));
    assert_eq!(server.hits("/api/orders/7"), 3);
}

#[test]
fn a_batch_of_api_requests_recorded_at_concurrency_8_replays_line_for_line_at_1() {
    let (rt, server) = api_server();
    server.fallback([ApiReply::echo_as("response")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: String = (0..24).map(|i| format!("{{\"order_id\": \"{i}\", \"status\": \"s{}\"}}\n", i % 3)).collect();
    std::fs::write(dir.path().join("batch.jsonl"), lines).expect("write");
    let rewrite = format!("https://orders.example.com={}", server.url());
    let flow = corpus("p_api_node.json");
    let out = weft(
        dir.path(),
        &[
            "run",
            &flow,
            "--llm",
            "simulated",
            "--http-rewrite",
            &rewrite,
            "--batch",
            "batch.jsonl",
            "--concurrency",
            "8",
            "--record",
            "run.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = |out: &std::process::Output| -> Vec<Json> {
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str::<Json>(l).expect("a line")["outputs"].clone()).collect()
    };
    let recorded = results(&out);
    assert_eq!(recorded.len(), 24);
    for (i, r) in recorded.iter().enumerate() {
        assert_eq!(r["response"]["path"], format!("/api/orders/{i}"), "line {i}: {r}");
    }
    assert_eq!(server.total(), 24);
    drop(server);
    drop(rt);
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--batch", "batch.jsonl", "--concurrency", "1", "--replay", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(results(&out), recorded);
}
