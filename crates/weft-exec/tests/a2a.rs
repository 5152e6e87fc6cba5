//! A2AAgent against the testkit's scriptable API server on 127.0.0.1 (AGENTS.md section 8):
//! what is sent (`message/send` in the conversation's context, `tasks/get` polling with the
//! task's id, the connection's headers), how answers become messages, and every way the
//! exchange fails: a task that fails, a server that answers garbage, an HTTP error, a JSON-RPC
//! error, polls that keep failing (`max_retries`), a task that never completes (the session's
//! `timeout`); and a run stopped while polling resumes polling without sending its message again.
//! The reference server (a2a-sdk) is in `crates/weft-cli/tests/a2a.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use serde_json::{Map, Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_exec::{EventRecord, Plan, RunErrorKind, RunOptions, Status};
use weft_llm::http::{HttpClient, HttpOptions, Rewrites};
use weft_llm::limit::Limiters;
use weft_testkit::api::{ApiReply, ApiServer};

const BASE: &str = "https://agents.example.com/researcher";

/// An A2AAgent document (at the root) with these session parameters.
fn a2a_doc(session: Json) -> Json {
    json!({
        "component_type": "A2AAgent",
        "id": "remote",
        "name": "remote researcher",
        "agent_url": BASE,
        "connection_config": {
            "component_type": "A2AConnectionConfig", "id": "conn", "name": "conn",
            "timeout": 5.0, "headers": {"X-Team": "r-and-d"}
        },
        "session_parameters": session,
        "agentspec_version": "25.4.2"
    })
}

fn load(doc: &Json) -> weft_flow::Flow {
    match weft_flow::Flow::from_json(&doc.to_string()) {
        Ok(loaded) => loaded.flow,
        Err(e) => panic!("the test document does not load: {e}"),
    }
}

struct Setup {
    server: ApiServer,
    events: Arc<Mutex<Vec<Json>>>,
}

impl Setup {
    async fn new() -> Setup {
        Setup { server: ApiServer::start().await, events: Arc::default() }
    }

    fn options(&self) -> RunOptions {
        let http = HttpClient::new(HttpOptions {
            rewrites: Rewrites::new(vec![(BASE.to_owned(), self.server.url())]).unwrap(),
            limiters: Limiters::default(),
            ..HttpOptions::default()
        })
        .unwrap();
        let events = Arc::clone(&self.events);
        let sink = move |r: &EventRecord<'_>| events.lock().unwrap().push(serde_json::to_value(r).unwrap());
        RunOptions::simulated().with_http(Arc::new(http)).with_events(Arc::new(sink))
    }

    /// The JSON-RPC requests received, in order.
    fn rpc(&self) -> Vec<Json> {
        self.server.received().iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
    }

    fn methods(&self) -> Vec<String> {
        self.rpc().iter().map(|r| r["method"].as_str().unwrap().to_owned()).collect()
    }
}

fn message(role: &str, id: &str, text: &str, task: &str) -> Json {
    json!({"kind": "message", "role": role, "messageId": id, "taskId": task, "parts": [{"kind": "text", "text": text}]})
}

/// A task `t1` in `state`, its history the user's message and the agent's `answers`.
fn task(state: &str, answers: &[&str]) -> ApiReply {
    let mut history = vec![message("user", "0", "hello", "t1")];
    history.extend(answers.iter().enumerate().map(|(i, a)| message("agent", &format!("a{i}"), a, "t1")));
    ApiReply::json(
        200,
        json!({"jsonrpc": "2.0", "id": "x", "result": {"kind": "task", "id": "t1", "contextId": "c", "status": {"state": state}, "history": history}}),
    )
}

/// Runs `doc` with the first user message `hello`: its status, or its error.
async fn run(setup: &Setup, doc: &Json) -> Result<Status, weft_exec::RunError> {
    let plan = Plan::new(&load(doc), setup.options()).unwrap_or_else(|e| panic!("plan: {e}"));
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("hello").unwrap();
    run.execute().await
}

fn asked(status: &Status) -> String {
    match status {
        Status::InputRequired { request } => serde_json::to_value(request).unwrap()["message"].as_str().unwrap().to_owned(),
        other => panic!("not waiting: {other:?}"),
    }
}

#[tokio::test]
async fn a_task_is_sent_then_polled_and_its_history_becomes_the_answer() {
    let setup = Setup::new().await;
    setup.server.route("POST", "/", [task("working", &[]), task("working", &[]), task("completed", &["the answer"])]);
    let status = run(&setup, &a2a_doc(json!({"timeout": 10.0, "poll_interval": 0.05, "max_retries": 1}))).await.unwrap();
    // At the root the agent waits for the user after every answer, as WayFlow's does.
    assert_eq!(asked(&status), "the answer");
    assert_eq!(setup.methods(), ["message/send", "tasks/get", "tasks/get"]);
    let rpc = setup.rpc();
    let sent = &rpc[0]["params"]["message"];
    assert_eq!(sent["role"], "user");
    assert_eq!(sent["parts"], json!([{"kind": "text", "text": "hello"}]));
    assert_eq!(sent["messageId"], "0");
    assert_eq!(sent["kind"], "message");
    assert_eq!(sent["contextId"].as_str().unwrap().len(), 36);
    assert_eq!(rpc[1]["params"], json!({"id": "t1"}));
    assert!(rpc[1]["id"].is_string(), "tasks/get carries a request id: {}", rpc[1]);
    let received = setup.server.received();
    assert_eq!(received[0].header("x-team"), Some("r-and-d"));
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    let http: Vec<Json> = setup.events.lock().unwrap().iter().filter(|e| e["event"] == "http_request").cloned().collect();
    assert_eq!(http.len(), 3);
    assert_eq!(http[0]["url"], format!("{BASE}/"));
    assert_eq!(http[0]["status"], 200);
    assert!(http[0]["duration_ms"].is_number());
}

#[tokio::test]
async fn a_plain_message_answer_is_not_polled() {
    let setup = Setup::new().await;
    let reply = json!({"jsonrpc": "2.0", "id": "x", "result": {"kind": "message", "role": "agent", "messageId": "m", "parts": [{"kind": "text", "text": "hi"}, {"kind": "data", "data": {"n": 1}}]}});
    setup.server.route("POST", "/", [ApiReply::json(200, reply)]);
    let status = run(&setup, &a2a_doc(json!({}))).await.unwrap();
    assert_eq!(asked(&status), "hi\n{'n': 1}");
    assert_eq!(setup.methods(), ["message/send"]);
}

#[tokio::test]
async fn a_failed_task_fails_the_agent_at_once() {
    let setup = Setup::new().await;
    let failed = json!({"jsonrpc": "2.0", "id": "x", "result": {"kind": "task", "id": "t1", "status": {"state": "failed",
        "message": {"kind": "message", "role": "agent", "messageId": "f", "parts": [{"kind": "text", "text": "the remote agent broke"}]}}}});
    setup.server.route("POST", "/", [task("working", &[]), ApiReply::json(200, failed)]);
    let error = run(&setup, &a2a_doc(json!({"poll_interval": 0.05}))).await.unwrap_err();
    assert_eq!(error.kind, RunErrorKind::Http);
    assert!(error.message.contains("task t1 ended with state: failed: \"the remote agent broke\""), "{}", error.message);
    assert!(error.message.starts_with("A2AAgent \"remote researcher\": "), "{}", error.message);
    assert_eq!(error.exception().0, "RuntimeError");
    assert_eq!(setup.methods(), ["message/send", "tasks/get"]);
}

#[tokio::test]
async fn garbage_http_errors_and_json_rpc_errors_fail_with_what_the_server_said() {
    for (reply, expected, class) in [
        (ApiReply::text(200, "<html>not an agent</html>"), "the answer is not JSON", "ValidationError"),
        (ApiReply::text(503, "overloaded"), "HTTP 503: \"overloaded\"", "UnexpectedResponseError"),
        (
            ApiReply::json(200, json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -32601, "message": "Method not found"}})),
            "JSON-RPC error -32601: \"Method not found\"",
            "RuntimeError",
        ),
        (ApiReply::json(200, json!({"jsonrpc": "2.0", "id": "x"})), "neither a `result` object nor an `error`", "RuntimeError"),
    ] {
        let setup = Setup::new().await;
        setup.server.route("POST", "/", [reply]);
        let error = run(&setup, &a2a_doc(json!({}))).await.unwrap_err();
        assert_eq!(error.kind, RunErrorKind::Http);
        assert!(error.message.contains(expected), "{}", error.message);
        assert!(error.message.contains("message/send to https://agents.example.com/researcher/"), "{}", error.message);
        assert_eq!(error.exception().0, class);
        // Without a retry_policy a request is made once (WayFlow's plain client).
        assert_eq!(setup.server.total(), 1);
    }
}

#[tokio::test]
async fn polls_that_keep_failing_stop_after_max_retries_and_a_success_resets_the_count() {
    let setup = Setup::new().await;
    let bad = ApiReply::text(500, "boom");
    setup.server.route("POST", "/", [task("working", &[]), bad.clone(), bad.clone(), task("working", &[]), bad.clone(), bad.clone(), bad]);
    let error = run(&setup, &a2a_doc(json!({"poll_interval": 0.02, "max_retries": 2}))).await.unwrap_err();
    assert!(error.message.contains("failed to poll task t1 after 2 retries"), "{}", error.message);
    assert!(error.message.contains("HTTP 500"), "{}", error.message);
    assert_eq!(error.exception().0, "ConnectionError");
    // 2 failures, a success (the count starts again), then 3 failures: the third is one too many.
    assert_eq!(setup.methods().iter().filter(|m| *m == "tasks/get").count(), 6);
}

#[tokio::test]
async fn a_task_that_never_completes_times_out_after_the_session_timeout() {
    let setup = Setup::new().await;
    setup.server.route("POST", "/", [task("working", &[])]);
    let started = Instant::now();
    let error = run(&setup, &a2a_doc(json!({"timeout": 0.5, "poll_interval": 0.1}))).await.unwrap_err();
    let took = started.elapsed();
    assert!(error.message.contains("task t1 did not complete within 0.5 seconds (session_parameters.timeout)"), "{}", error.message);
    assert_eq!(error.exception().0, "TimeoutError");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "{took:?}");
    let polls = setup.methods().iter().filter(|m| *m == "tasks/get").count();
    assert!((4..=7).contains(&polls), "{polls} polls in 0.5 s every 0.1 s");
}

#[tokio::test]
async fn the_conversation_goes_on_in_the_same_context_and_only_new_messages_are_sent() {
    let setup = Setup::new().await;
    setup.server.route(
        "POST",
        "/",
        [
            task("completed", &["first answer"]),
            task("completed", &["first answer"]),
            task("completed", &["second answer"]),
            task("completed", &["second answer"]),
        ],
    );
    let doc = a2a_doc(json!({"poll_interval": 0.05}));
    let plan = Plan::new(&load(&doc), setup.options()).unwrap();
    let mut run = plan.start(Map::new()).unwrap();
    // No message yet: the agent speaks first (WayFlow's greeting), nothing is sent.
    assert_eq!(asked(&run.execute().await.unwrap()), "Hi! How can I help you?");
    assert_eq!(setup.server.total(), 0);
    run.submit(json!("hello")).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "first answer");
    // The state goes through JSON, as a state file does, and the run goes on in a new plan.
    let state: weft_exec::RunState = serde_json::from_value(serde_json::to_value(run.into_state()).unwrap()).unwrap();
    let plan = Plan::new(&load(&doc), setup.options()).unwrap();
    let mut run = plan.resume(state).unwrap();
    run.submit(json!("and then?")).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "second answer");
    let sends: Vec<Json> = setup.rpc().into_iter().filter(|r| r["method"] == "message/send").collect();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1]["params"]["message"]["parts"][0]["text"], "and then?");
    assert_eq!(sends[1]["params"]["message"]["messageId"], "2");
    assert_eq!(sends[0]["params"]["message"]["contextId"], sends[1]["params"]["message"]["contextId"]);
}

#[tokio::test]
async fn a_run_stopped_while_polling_resumes_polling_without_sending_again() {
    let setup = Setup::new().await;
    setup.server.route("POST", "/", [task("working", &[]), task("working", &[]), task("completed", &["done"])]);
    let doc = a2a_doc(json!({"poll_interval": 0.3}));
    let plan = Plan::new(&load(&doc), setup.options()).unwrap();
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("hello").unwrap();
    let cancel = run.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        cancel.cancel();
    });
    let stopped = run.execute().await.unwrap_err();
    assert_eq!(stopped.kind, RunErrorKind::Cancelled);
    assert_eq!(setup.methods(), ["message/send", "tasks/get"]);
    let state: weft_exec::RunState = serde_json::from_value(serde_json::to_value(run.into_state()).unwrap()).unwrap();
    let plan = Plan::new(&load(&doc), setup.options()).unwrap();
    let mut run = plan.resume(state).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "done");
    assert_eq!(setup.methods(), ["message/send", "tasks/get", "tasks/get"]);
}

#[tokio::test]
async fn in_an_agent_node_it_waits_while_the_task_needs_input_and_leaves_once_it_completed() {
    let setup = Setup::new().await;
    setup.server.route(
        "POST",
        "/",
        [task("input-required", &["which city?"]), task("input-required", &["which city?"]), task("completed", &["sunny in Bern"])],
    );
    let remote = a2a_doc(json!({"poll_interval": 0.05}));
    let nodes = vec![
        json!({"component_type": "StartNode", "id": "start", "name": "start"}),
        json!({"component_type": "AgentNode", "id": "ask", "name": "ask remote", "agent": remote}),
        json!({"component_type": "EndNode", "id": "end", "name": "end"}),
    ];
    let mut doc = common::flow_json("f", nodes, &[("start", "ask"), ("ask", "end")], &[]);
    doc["agentspec_version"] = json!("25.4.2");
    doc["nodes"][1]["agent"].as_object_mut().map(|a| a.remove("agentspec_version"));
    let plan = Plan::new(&load(&doc), setup.options()).unwrap_or_else(|e| panic!("plan: {e}"));
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("hello").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "which city?");
    run.submit(json!("Bern")).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::Finished { .. }));
    let contents: Vec<String> = run.state().messages.iter().map(|m| format!("{}: {}", m.message_type, m.content)).collect();
    assert_eq!(contents, ["USER: hello", "AGENT: which city?", "USER: Bern", "AGENT: sunny in Bern"]);
}

#[tokio::test]
async fn what_wayflow_refuses_is_a_document_error_and_files_named_by_the_document_stop_at_start() {
    for (session, field, expected) in [
        (json!({"poll_interval": 0}), "/session_parameters/poll_interval", "`session_parameters.poll_interval` is 0"),
        (json!({"timeout": -1.0}), "/session_parameters/timeout", "`session_parameters.timeout` is -1"),
        (json!({"max_retries": -1}), "/session_parameters/max_retries", "must be a non-negative integer"),
    ] {
        let error = weft_flow::Flow::from_json(&a2a_doc(session).to_string()).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains(field) && error.contains(expected), "{error}");
    }
    let mut doc = a2a_doc(json!({}));
    doc["agent_url"] = json!("agents.example.com/researcher");
    let error = weft_flow::Flow::from_json(&doc.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("/agent_url") && error.contains("Invalid URL provided for agent_url"), "{error}");

    // Client certificates are files the document names: Weft does not read them.
    let setup = Setup::new().await;
    let mut doc = a2a_doc(json!({}));
    doc["connection_config"]["key_file"] = json!("/etc/ssl/private/client.key");
    doc["connection_config"]["cert_file"] = json!("/etc/ssl/client.pem");
    let error = Plan::new(&load(&doc), setup.options()).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("not supported yet: an A2A connection with `key_file`"), "{error}");
    assert!(error.contains("/connection_config/key_file"), "{error}");
    assert_eq!(setup.server.total(), 0);
}
