//! MCP tools and toolboxes against the reference MCP server (the `mcp` package's FastMCP, as the
//! reference environment pins it; `weft_testkit::mcp`), over streamable HTTP, SSE and stdio: an
//! agent's toolbox sends what WayFlow sent (the transcript `f1_mcp_toolbox`), tool nodes read
//! text, structured and error results, a server that dies or hangs gives a clear error, and a
//! stdio server starts only when allowed, with only `PATH`, `HOME` and its own environment, and
//! is gone when the run ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Value as Json, json};
use std::path::Path;
use weft_exec::{Limiters, McpOptions, RunOptions, Status};
use weft_llm::http::Rewrites;
use weft_testkit::mcp::{McpProcess, alive, paged_server_script, reference_python, server_script};
use weft_testkit::{MockConfig, MockServer, ScriptedCall};

fn transcript(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/reference/agents").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("transcript")).expect("json")
}

/// Points every LLM config of the document at `url`.
fn retarget(value: &mut Json, url: &str) {
    match value {
        Json::Object(m) => {
            if m.get("component_type").and_then(Json::as_str).is_some_and(|t| t.ends_with("Config")) && m.contains_key("url") {
                m.insert("url".into(), json!(url));
            }
            m.values_mut().for_each(|v| retarget(v, url));
        }
        Json::Array(items) => items.iter_mut().for_each(|v| retarget(v, url)),
        _ => {}
    }
}

fn rewrite(from: &str, to: &str) -> McpOptions {
    McpOptions { rewrites: Rewrites::new(vec![(from.to_owned(), to.to_owned())]).unwrap(), ..McpOptions::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn f1_an_agent_with_an_mcp_toolbox_sends_what_wayflow_sent() {
    let mcp = McpProcess::start("http", None);
    let t = transcript("f1_mcp_toolbox");
    let calls = t["llm_calls"].as_array().unwrap();
    let mut config = MockConfig::default();
    for (i, call) in calls.iter().enumerate() {
        let response = &call["response"];
        match response["tool_calls"].as_array() {
            Some(list) if !list.is_empty() => {
                let scripted = list
                    .iter()
                    .map(|c| ScriptedCall::new(c["name"].as_str().unwrap(), c["arguments"].clone()).with_id(c["id"].as_str().unwrap()))
                    .collect();
                config = config.with_calls(i as u64, scripted);
            }
            _ => config = config.with_reply(i as u64, response["content"].as_str().unwrap_or_default()),
        }
    }
    let llm = MockServer::start(config).await;
    let mut document = t["document"].clone();
    retarget(&mut document, &llm.url());
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap().flow;
    // The recording's server was on port 8933; ours is wherever it could listen.
    let options =
        RunOptions::default().with_limits(Limiters::new(Default::default())).with_mcp(rewrite("http://127.0.0.1:8933", &mcp.base()));
    let plan = weft_exec::Plan::new(&flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems()));
    let mut run = plan.start(Default::default()).unwrap();
    run.append_user_message("Use the tools").unwrap();
    match run.execute().await {
        Ok(Status::InputRequired { request: weft_exec::InputRequest::Message { message, .. } }) => {
            assert_eq!(message.as_deref(), Some("done"))
        }
        other => panic!("expected the agent to ask the user, got {other:?}"),
    }
    let sent = llm.requests();
    assert_eq!(sent.len(), calls.len(), "the number of LLM calls");
    for (i, (mut got, call)) in sent.into_iter().zip(calls).enumerate() {
        let mut want = call["request"].clone();
        for r in [&mut got, &mut want] {
            let m = r.as_object_mut().unwrap();
            m.remove("stream");
            m.remove("stream_options");
        }
        assert_eq!(got, want, "request {i} differs\n got: {got}\nwant: {want}");
    }
}

/// A flow: start → a ToolNode calling MCP tool `tool` (with `outputs`) over `transport` → end.
fn tool_flow(tool: &str, inputs: Json, outputs: Json, transport: Json) -> weft_flow::Flow {
    let document = tool_document(tool, inputs, outputs, transport);
    weft_flow::Flow::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{e}")).flow
}

/// The document of [`tool_flow`].
fn tool_document(tool: &str, inputs: Json, outputs: Json, transport: Json) -> Json {
    let titles = |list: &Json| list.as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (ins, outs) = (titles(&inputs), titles(&outputs));
    let mut edges = Vec::new();
    for i in &ins {
        edges.push(json!({"component_type": "DataFlowEdge", "id": format!("in_{i}"), "name": format!("in_{i}"),
            "source_node": {"$component_ref": "start"}, "source_output": i, "destination_node": {"$component_ref": "tool"}, "destination_input": i}));
    }
    for o in &outs {
        edges.push(json!({"component_type": "DataFlowEdge", "id": format!("out_{o}"), "name": format!("out_{o}"),
            "source_node": {"$component_ref": "tool"}, "source_output": o, "destination_node": {"$component_ref": "end"}, "destination_input": o}));
    }
    let document = json!({
        "component_type": "Flow", "id": "flow", "name": "mcp_flow", "inputs": inputs, "outputs": outputs,
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": "tool"}, {"$component_ref": "end"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "e1", "name": "e1", "from_node": {"$component_ref": "start"}, "to_node": {"$component_ref": "tool"}},
            {"component_type": "ControlFlowEdge", "id": "e2", "name": "e2", "from_node": {"$component_ref": "tool"}, "to_node": {"$component_ref": "end"}}
        ],
        "data_flow_connections": edges,
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start", "inputs": inputs, "outputs": inputs},
            "end": {"component_type": "EndNode", "id": "end", "name": "end", "inputs": outputs, "outputs": outputs},
            "tool": {"component_type": "ToolNode", "id": "tool", "name": "tool_node", "inputs": inputs, "outputs": outputs,
                "tool": {"component_type": "MCPTool", "id": "mcp_tool", "name": tool, "description": "an MCP tool",
                    "inputs": inputs, "outputs": outputs, "client_transport": transport}}
        },
        "agentspec_version": "26.1.2"
    });
    document
}

fn http_transport(url: &str, read_timeout: f64) -> Json {
    json!({"component_type": "StreamableHTTPTransport", "id": "transport", "name": "tools", "url": url,
        "headers": {"X-Trace": "1"}, "session_parameters": {"read_timeout_seconds": read_timeout}})
}

async fn run_tool(flow: &weft_flow::Flow, options: RunOptions, inputs: Json) -> Result<serde_json::Map<String, Json>, weft_exec::RunError> {
    let plan = weft_exec::Plan::new(flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems()));
    let mut run = plan.start(inputs.as_object().cloned().unwrap()).unwrap();
    match run.execute().await? {
        Status::Finished { outputs, .. } => Ok(outputs),
        other => panic!("expected the run to finish, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_nodes_read_text_structured_list_and_error_results() {
    let mcp = McpProcess::start("http", None);
    let url = format!("{}/mcp", mcp.base());
    let city = json!([{"title": "city", "type": "string"}]);
    // An object output takes the structured content; a string output the text.
    let object = tool_flow("weather", city.clone(), json!([{"title": "w", "type": "object"}]), http_transport(&url, 10.0));
    let out = run_tool(&object, RunOptions::simulated(), json!({"city": "Oslo"})).await.unwrap();
    assert_eq!(out["w"], json!({"temperature": 21.5, "summary": "sunny in Oslo"}));
    let text = tool_flow("weather", city.clone(), json!([{"title": "w", "type": "string"}]), http_transport(&url, 10.0));
    let out = run_tool(&text, RunOptions::simulated(), json!({"city": "Oslo"})).await.unwrap();
    assert_eq!(out["w"], json!("{\n  \"temperature\": 21.5,\n  \"summary\": \"sunny in Oslo\"\n}"));
    let n = json!([{"title": "n", "type": "integer"}]);
    let list =
        tool_flow("words", n, json!([{"title": "result", "type": "array", "items": {"type": "string"}}]), http_transport(&url, 10.0));
    assert_eq!(run_tool(&list, RunOptions::simulated(), json!({"n": 3})).await.unwrap()["result"], json!(["a", "b", "c"]));
    // `isError` fails the node (Weft differs from WayFlow, which returns the text as a value).
    let x = json!([{"title": "x", "type": "string"}]);
    let boom = tool_flow("boom", x.clone(), json!([{"title": "out", "type": "string"}]), http_transport(&url, 10.0));
    let e = run_tool(&boom, RunOptions::simulated(), json!({"x": "1"})).await.unwrap_err();
    assert!(e.to_string().contains("Error executing tool boom: boom failed"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sse_transport_lists_and_calls_and_rewrites_apply() {
    let mcp = McpProcess::start("sse", None);
    let transport = json!({"component_type": "SSETransport", "id": "transport", "name": "docs", "url": "https://mcp.example.com/sse",
        "sensitive_headers": {"Authorization": "Bearer s3cr3t-value"}});
    let text = json!([{"title": "text", "type": "string"}]);
    let flow = tool_flow("echo", text, json!([{"title": "out", "type": "string"}]), transport);
    let options = RunOptions::simulated().with_mcp(rewrite("https://mcp.example.com", &mcp.base()));
    assert_eq!(run_tool(&flow, options, json!({"text": "hi"})).await.unwrap()["out"], json!("echo:hi"));
    // --allow-host applies to the rewritten URL, at start.
    let refused = McpOptions {
        egress: weft_guard::EgressPolicy::parse(&["api.example.com"]).unwrap(),
        ..rewrite("https://mcp.example.com", &mcp.base())
    };
    let problems = weft_exec::Plan::new(&flow, RunOptions::simulated().with_mcp(refused)).unwrap_err();
    let text: Vec<String> = problems.problems().iter().map(|d| d.to_string()).collect();
    let text = text.join("\n");
    assert!(text.contains("127.0.0.1") && !text.contains("s3cr3t"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_call_or_too_slow_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mcp = McpProcess::start("http", Some(&pids));
    let url = format!("{}/mcp", mcp.base());
    let seconds = json!([{"title": "seconds", "type": "number"}]);
    let slow = tool_flow("slow", seconds, json!([{"title": "out", "type": "string"}]), http_transport(&url, 1.0));
    let t = std::time::Instant::now();
    let e = run_tool(&slow, RunOptions::simulated(), json!({"seconds": 30})).await.unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "the read timeout was not honoured");
    assert!(e.to_string().contains("did not answer within 1s") && e.to_string().contains("read_timeout_seconds"), "{e}");
    // The server was told: its call was cancelled (`notifications/cancelled`).
    let cancelled = dir.path().join("pids.cancelled");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cancelled.exists() {
        assert!(std::time::Instant::now() < deadline, "the server never heard that the call was cancelled");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let x = json!([{"title": "x", "type": "string"}]);
    let die = tool_flow("die", x, json!([{"title": "out", "type": "string"}]), http_transport(&url, 20.0));
    let t = std::time::Instant::now();
    let e = run_tool(&die, RunOptions::simulated(), json!({"x": "1"})).await.unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(15), "a dead server hung the call");
    assert!(e.to_string().contains("StreamableHTTPTransport \"tools\""), "{e}");
}

fn stdio_transport(pid_file: &Path) -> Json {
    json!({"component_type": "StdioTransport", "id": "transport", "name": "local", "command": reference_python().display().to_string(),
        "args": [server_script().display().to_string(), "stdio"], "env": {"MCP_PID_FILE": pid_file.display().to_string(), "FOO": "bar"}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_server_starts_only_when_allowed_sees_no_other_environment_and_is_gone_after_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let flow = tool_flow("whoami", json!([]), json!([{"title": "out", "type": "string"}]), stdio_transport(&pid_file));
    // Refused at start without the user's permission: nothing is started.
    let problems = weft_exec::Plan::new(&flow, RunOptions::simulated()).unwrap_err();
    let text: Vec<String> = problems.problems().iter().map(|d| d.to_string()).collect();
    let text = text.join("\n");
    assert!(text.contains("StdioTransport \"local\"") && text.contains("--allow-stdio-mcp"), "{text}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!pid_file.exists(), "a process was started");
    // Allowed by the command, as a tools file's [mcp] allow_commands does.
    let allowed = McpOptions { allowed_commands: vec![reference_python().display().to_string()], ..McpOptions::default() };
    let out = run_tool(&flow, RunOptions::simulated().with_mcp(allowed), json!({})).await.unwrap();
    let said = out["out"].as_str().unwrap().to_owned();
    let (pid, env) = said.split_once(' ').unwrap();
    let keys: Vec<&str> = env.split(' ').collect();
    for k in &keys {
        assert!(["PATH", "HOME", "FOO", "MCP_PID_FILE", "LC_CTYPE"].contains(k), "the server saw {k} ({said})");
    }
    assert!(keys.contains(&"PATH") && keys.contains(&"FOO"), "{said}");
    let pid: u32 = pid.parse().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), pid.to_string(), "one process");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(pid) {
        assert!(std::time::Instant::now() < deadline, "the stdio server {pid} outlived the run");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn mtls_transports_and_oauth_are_refused_at_start() {
    let text = json!([{"title": "text", "type": "string"}]);
    let out = json!([{"title": "out", "type": "string"}]);
    let mtls = json!({"component_type": "StreamableHTTPmTLSTransport", "id": "transport", "name": "secure", "url": "https://mcp.example.com/mcp",
        "key_file": "k.pem", "cert_file": "c.pem", "ca_file": "ca.pem"});
    let flow = tool_flow("echo", text.clone(), out.clone(), mtls);
    let problems: Vec<String> =
        weft_exec::Plan::new(&flow, RunOptions::simulated()).unwrap_err().problems().iter().map(|p| p.to_string()).collect();
    assert!(problems.iter().any(|p| p.starts_with("not supported yet: StreamableHTTPmTLSTransport")), "{problems:?}");
    let oauth = json!({"component_type": "StreamableHTTPTransport", "id": "transport", "name": "oauth", "url": "https://mcp.example.com/mcp",
        "auth": {"component_type": "OAuthConfig", "id": "auth", "name": "auth", "redirect_uri": "http://localhost/cb",
            "client": {"component_type": "OAuthClientConfig", "id": "client", "name": "client", "type": "pre_registered", "client_id": "x"}}});
    let flow = tool_flow("echo", text, out, oauth);
    let problems: Vec<String> =
        weft_exec::Plan::new(&flow, RunOptions::simulated()).unwrap_err().problems().iter().map(|p| p.to_string()).collect();
    assert!(problems.iter().any(|p| p.starts_with("not supported yet: `auth` on StreamableHTTPTransport")), "{problems:?}");
}

/// A stdio transport to the scripted paged server, logging to `log`, failing `flaky` `fails`
/// times.
fn paged_transport(log: &Path, fails: u32) -> Json {
    json!({"component_type": "StdioTransport", "id": "transport", "name": "paged", "command": reference_python().display().to_string(),
        "args": [paged_server_script().display().to_string()],
        "env": {"MCP_LOG": log.display().to_string(), "FLAKY_FAILS": fails.to_string()}})
}

fn logged(log: &Path) -> Vec<Json> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_in_pages_lists_every_pages_tools_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let server = weft_tools::mcp::Server {
        label: "StdioTransport \"paged\"".into(),
        transport: weft_tools::mcp::Transport::Stdio {
            command: reference_python().display().to_string(),
            args: vec![paged_server_script().display().to_string()],
            env: vec![("MCP_LOG".into(), log.display().to_string())],
            cwd: None,
        },
        read_timeout: std::time::Duration::from_secs(20),
        shown: "stdio paged".into(),
    };
    let sessions = weft_tools::mcp::Sessions::new();
    let session = sessions.get(&server).await.unwrap();
    let names: Vec<String> = session.list_tools().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["tool_00", "tool_01", "tool_02", "tool_03", "tool_04", "tool_05", "tool_06", "flaky"]);
    // Three pages, each asked for with the cursor the previous one gave.
    let cursors: Vec<Json> = logged(&log).into_iter().filter(|l| l["method"] == "tools/list").map(|l| l["cursor"].clone()).collect();
    assert_eq!(cursors, [Json::Null, json!("3"), json!("6")]);
    drop(session);
    sessions.close_all().await;
}

/// The `mcp_call` events of a run.
fn mcp_events(options: RunOptions) -> (RunOptions, std::sync::Arc<std::sync::Mutex<Vec<Json>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    let options = options.with_events(std::sync::Arc::new(move |r: &weft_exec::EventRecord<'_>| {
        let value = serde_json::to_value(r).unwrap();
        if value["event"] == "mcp_call" {
            sink.lock().unwrap().push(value);
        }
    }));
    (options, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_tools_retry_policy_retries_a_missing_tool_as_wayflow_does() {
    let dir = tempfile::tempdir().unwrap();
    let text = json!([{"title": "text", "type": "string"}]);
    let out = json!([{"title": "out", "type": "string"}]);
    let allowed = || RunOptions::simulated().with_mcp(McpOptions { allow_stdio: true, ..McpOptions::default() });
    let with_policy = |log: &Path, fails: u32, max_attempts: u32| {
        let mut document = tool_document("flaky", text.clone(), out.clone(), paged_transport(log, fails));
        document["agentspec_version"] = json!("26.3.1");
        document["$referenced_components"]["tool"]["tool"]["retry_policy"] =
            json!({"max_attempts": max_attempts, "initial_retry_delay": 0.01, "max_retry_delay": 0.05, "jitter": null});
        weft_flow::Flow::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{e}")).flow
    };

    // Two failures, then an answer: three attempts under a policy allowing two retries.
    let log = dir.path().join("retried");
    let (options, events) = mcp_events(allowed());
    let outputs = run_tool(&with_policy(&log, 2, 2), options, json!({"text": "hi"})).await.unwrap();
    assert_eq!(outputs["out"], json!("flaky:hi after 3 attempts"));
    let calls = logged(&log).into_iter().filter(|l| l["method"] == "tools/call").count();
    assert_eq!(calls, 3, "the server counted the attempts");
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["tool"], &events[0]["attempts"], &events[0]["server"], &events[0]["error"]),
        (
            &json!("flaky"),
            &json!(3),
            &json!(format!("stdio {} {}", reference_python().display(), paged_server_script().display())),
            &Json::Null
        )
    );

    // One retry is not enough: the error says how many attempts were made.
    let log = dir.path().join("spent");
    let e = run_tool(&with_policy(&log, 2, 1), allowed(), json!({"text": "hi"})).await.unwrap_err();
    assert!(e.to_string().contains("Unknown tool: flaky") && e.to_string().contains("after 2 attempts"), "{e}");
    assert_eq!(logged(&log).into_iter().filter(|l| l["method"] == "tools/call").count(), 2);

    // Without a retry_policy an MCP call is tried once, as WayFlow tries it.
    let log = dir.path().join("once");
    let flow = tool_flow("flaky", text.clone(), out.clone(), paged_transport(&log, 2));
    let e = run_tool(&flow, allowed(), json!({"text": "hi"})).await.unwrap_err();
    assert!(e.to_string().contains("Unknown tool: flaky") && !e.to_string().contains("attempts"), "{e}");
    assert_eq!(logged(&log).into_iter().filter(|l| l["method"] == "tools/call").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toolbox_lists_again_per_its_retry_policy_while_a_filtered_tool_is_missing() {
    let mcp = McpProcess::start("http", None);
    let t = transcript("f1_mcp_toolbox");
    let mut document = t["document"].clone();
    document["agentspec_version"] = json!("26.3.1");
    fn set_policy(v: &mut Json) {
        match v {
            Json::Object(m) if m.get("component_type").and_then(Json::as_str) == Some("MCPToolBox") => {
                m.insert("retry_policy".into(), json!({"max_attempts": 2, "initial_retry_delay": 0.01, "max_retry_delay": 0.02}));
                m["tool_filter"].as_array_mut().unwrap().push(json!("nonexistent"));
            }
            Json::Object(m) => m.values_mut().for_each(set_policy),
            Json::Array(items) => items.iter_mut().for_each(set_policy),
            _ => {}
        }
    }
    set_policy(&mut document);
    assert!(document.to_string().contains("nonexistent") && document.to_string().contains("max_attempts"));
    let llm = MockServer::start(MockConfig::default()).await;
    retarget(&mut document, &llm.url());
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{e}")).flow;
    let (options, events) = mcp_events(
        RunOptions::default().with_limits(Limiters::new(Default::default())).with_mcp(rewrite("http://127.0.0.1:8933", &mcp.base())),
    );
    let plan = weft_exec::Plan::new(&flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems()));
    let mut run = plan.start(Default::default()).unwrap();
    run.append_user_message("Use the tools").unwrap();
    let e = run.execute().await.unwrap_err();
    assert!(e.to_string().contains("Expected MCP tool(s) ['nonexistent']") && e.to_string().contains("after 3 listings"), "{e}");
    let listings = events.lock().unwrap().iter().filter(|e| e["method"] == "tools/list").count();
    assert_eq!(listings, 3, "one listing and two more per the retry_policy");
    assert!(llm.requests().is_empty(), "no LLM call without the toolbox's tools");
}
