//! What a user of the engine notices: outputs, the prompts sent, re-asks, loops stopped by the
//! budget, runs stored and resumed, client tools, tool failures and killed processes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_exec::{InputRequest, Plan, ResumeError, RunErrorKind, RunOptions, RunState, Status};
use weft_flow::Flow;
use weft_llm::providers::openai::{ApiProvider, OpenAiModel, OpenAiOptions};
use weft_llm::retry::RecordingSleeper;
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind};
use weft_testkit::{Fault, MockConfig, MockServer};
use weft_tools::{CommandTool, ToolRegistry};

/// Builds a flow document: nodes (with ids = names), control edges `(from, branch, to)`, data
/// edges `(source, output, destination, input)`.
fn doc(nodes: Vec<Json>, control: &[(&str, Option<&str>, &str)], data: &[(&str, &str, &str, &str)]) -> String {
    let mut table = Map::new();
    let mut refs = Vec::new();
    for n in nodes {
        let id = n["id"].as_str().unwrap().to_owned();
        refs.push(json!({"$component_ref": id}));
        table.insert(id, n);
    }
    table.insert(
        "llm".into(),
        json!({"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000", "model_id": "m"}),
    );
    let control: Vec<Json> = control
        .iter()
        .enumerate()
        .map(|(i, (f, b, t))| json!({"component_type": "ControlFlowEdge", "id": format!("c{i}"), "name": format!("c{i}"), "from_node": {"$component_ref": f}, "from_branch": b, "to_node": {"$component_ref": t}}))
        .collect();
    let data: Vec<Json> = data
        .iter()
        .enumerate()
        .map(|(i, (s, o, d, n))| json!({"component_type": "DataFlowEdge", "id": format!("d{i}"), "name": format!("d{i}"), "source_node": {"$component_ref": s}, "source_output": o, "destination_node": {"$component_ref": d}, "destination_input": n}))
        .collect();
    json!({
        "component_type": "Flow", "id": "flow", "name": "test_flow", "agentspec_version": "26.3.1",
        "start_node": {"$component_ref": "start"}, "nodes": refs,
        "control_flow_connections": control, "data_flow_connections": data,
        "$referenced_components": table,
    })
    .to_string()
}

fn start(inputs: Json) -> Json {
    json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": inputs})
}

fn end(outputs: Json) -> Json {
    json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": outputs, "outputs": outputs})
}

fn llm(name: &str, prompt: &str, outputs: Json) -> Json {
    json!({"component_type": "LlmNode", "id": name, "name": name, "llm_config": {"$component_ref": "llm"}, "prompt_template": prompt, "outputs": outputs})
}

fn flow(text: &str) -> Flow {
    match Flow::from_json(text) {
        Ok(l) => l.flow,
        Err(d) => panic!("test flow is invalid:\n{d}"),
    }
}

fn scripted(script: Json) -> RunOptions {
    let script = Script::from_json(&script.to_string(), "test").unwrap();
    RunOptions::simulated().with_model(Arc::new(SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() })))
}

fn inputs(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

/// A model that records every request and answers like the simulated model.
struct Recorder {
    inner: SimulatedModel,
    seen: Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl ChatModel for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.seen.lock().unwrap().push(request.clone());
        self.inner.chat(request).await
    }
}

fn judge_flow() -> String {
    let outputs = json!([{"title": "score", "type": "integer"}, {"title": "summary", "type": "string"}]);
    doc(
        vec![start(json!([{"title": "text", "type": "string"}])), llm("judge", "Judge {{ text }}", outputs.clone()), end(outputs)],
        &[("start", None, "judge"), ("judge", None, "end")],
        &[("start", "text", "judge", "text"), ("judge", "score", "end", "score"), ("judge", "summary", "end", "summary")],
    )
}

#[tokio::test]
async fn inputs_are_checked_all_at_once() {
    let f = flow(&doc(
        vec![start(json!([{"title": "topic", "type": "string"}, {"title": "count", "type": "integer"}])), end(json!([]))],
        &[("start", None, "end")],
        &[],
    ));
    let plan = Plan::new(&f, RunOptions::simulated()).unwrap();
    let err = plan.start(inputs(json!({"count": "three", "topc": "x"}))).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown input \"topc\" for flow \"test_flow\" (did you mean \"topic\"?)"), "{text}");
    assert!(text.contains("missing input \"topic\" (string)"), "{text}");
    assert!(text.contains("input \"count\" of flow \"test_flow\" must be integer"), "{text}");
    assert_eq!(err.problems().len(), 3);
}

#[tokio::test]
async fn structured_output_is_asked_in_the_prompt_and_read_from_the_answer() {
    let f = flow(&judge_flow());
    let recorder = Arc::new(Recorder { inner: SimulatedModel::new(SimulatedOptions::default()), seen: Mutex::new(Vec::new()) });
    let plan = Plan::new(&f, RunOptions::simulated().with_model(recorder.clone())).unwrap();
    let status = plan.start(inputs(json!({"text": "héllo"}))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    assert_eq!(end_branch, "next");
    assert_eq!(outputs["score"], json!(0));
    assert!(outputs["summary"].is_string());
    let seen = recorder.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let prompt = &seen[0].messages[0].content;
    assert!(prompt.starts_with("Judge héllo\n\n\n## Additional instructions: \n"), "{prompt}");
    assert!(prompt.contains("\"title\": \"expected_output\""), "the wrapper schema is in the prompt: {prompt}");
    assert_eq!(seen[0].response_format.as_ref().unwrap().name, "expected_output");
}

/// Issue 12: a run whose LLM call fails says so with the model's error as data.
#[tokio::test]
async fn a_failed_llm_call_gives_the_caller_its_kind_status_code_and_request_id() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::context_length_exceeded())).await;
    let options = OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m").with_sleeper(RecordingSleeper::new());
    let model = Arc::new(OpenAiModel::new(options).unwrap());
    let plan = Plan::new(&flow(&judge_flow()), RunOptions::simulated().with_model(model)).unwrap();
    let err = plan.start(inputs(json!({"text": "a very long text"}))).unwrap().execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Llm);
    assert_eq!(err.node.as_ref().map(|n| n.name.as_str()), Some("judge"));
    let llm = err.llm.as_ref().expect("the LLM error is kept");
    assert_eq!(llm.kind, LlmErrorKind::ContextTooLong);
    assert_eq!(llm.status, Some(400));
    assert_eq!(llm.provider_code.as_deref(), Some("context_length_exceeded"));
    assert_eq!(llm.provider_type.as_deref(), Some("invalid_request_error"));
    assert_eq!(llm.request_id.as_deref(), Some("req_000000"));
    assert!(err.message.ends_with(&llm.message), "the run's message quotes the model's: {}", err.message);
}

#[tokio::test]
async fn a_bad_answer_is_asked_again_with_the_reason() {
    let f = flow(&judge_flow());
    let plan = Plan::new(&f, scripted(json!({"judge": ["I think it is fine", {"score": 4, "summary": "ok"}]}))).unwrap();
    let mut run = plan.start(inputs(json!({"text": "t"}))).unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!() };
    assert_eq!(outputs["score"], json!(4));
    assert_eq!(run.state().usage.llm_calls, 2);
}

#[tokio::test]
async fn an_answer_that_never_fits_fails_naming_the_node_and_the_last_reply() {
    let f = flow(&judge_flow());
    let plan = Plan::new(&f, scripted(json!({"judge": ["no json here", "still none", "last try without json"]}))).unwrap();
    let mut run = plan.start(inputs(json!({"text": "t"}))).unwrap();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::StructuredOutput);
    assert_eq!(err.node.as_ref().map(|n| n.name.as_str()), Some("judge"));
    assert!(
        err.message.starts_with("LlmNode \"judge\": the model's answer does not fit the node's outputs after 3 attempts"),
        "{}",
        err.message
    );
    assert!(err.message.contains("last try without json"), "{}", err.message);
    // The state stays inspectable, and says what happened.
    let state = run.state();
    assert_eq!(state.usage.llm_calls, 3);
    assert!(matches!(&state.outcome, weft_exec::state::Outcome::Failed { error } if error.message.contains("judge")));
    assert!(run.execute().await.is_err(), "a failed run stays failed");
}

fn loop_flow() -> String {
    let eval_out = json!([{"title": "needs_improvement", "type": "boolean"}, {"title": "feedback", "type": "string"}]);
    doc(
        vec![
            start(json!([{"title": "topic", "type": "string"}])),
            llm("draft", "Draft about {{ topic }}", json!([{"title": "text", "type": "string"}])),
            llm("evaluate", "Evaluate {{ text }}", eval_out),
            json!({"component_type": "BranchingNode", "id": "check", "name": "check", "mapping": {"true": "improve", "false": "done"},
                   "inputs": [{"title": "needs_improvement", "type": "string"}]}),
            llm("improve", "Improve {{ text }} with {{ feedback }}", json!([{"title": "text", "type": "string"}])),
            end(json!([{"title": "text", "type": "string"}])),
        ],
        &[
            ("start", None, "draft"),
            ("draft", None, "evaluate"),
            ("evaluate", None, "check"),
            ("check", Some("improve"), "improve"),
            ("check", Some("done"), "end"),
            ("check", Some("default"), "end"),
            ("improve", None, "evaluate"),
        ],
        &[
            ("start", "topic", "draft", "topic"),
            ("draft", "text", "evaluate", "text"),
            ("improve", "text", "evaluate", "text"),
            ("evaluate", "needs_improvement", "check", "needs_improvement"),
            ("draft", "text", "improve", "text"),
            ("improve", "text", "improve", "text"),
            ("evaluate", "feedback", "improve", "feedback"),
            ("draft", "text", "end", "text"),
            ("improve", "text", "end", "text"),
        ],
    )
}

#[tokio::test]
async fn a_loop_runs_until_its_exit_branch() {
    let f = flow(&loop_flow());
    let script = json!({
        "evaluate": [{"needs_improvement": true, "feedback": "more"}, {"needs_improvement": true, "feedback": "more"}, {"needs_improvement": false, "feedback": "good"}],
        "improve": ["v2", "v3"],
    });
    let plan = Plan::new(&f, scripted(script)).unwrap();
    let mut run = plan.start(inputs(json!({"topic": "rust"}))).unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!() };
    assert_eq!(outputs["text"], json!("v3"), "the latest value on several edges wins");
    assert_eq!(run.state().llm_calls["evaluate"], 3);
}

#[tokio::test]
async fn a_runaway_loop_stops_at_the_step_budget_naming_the_loop() {
    let f = flow(&loop_flow());
    let always: Vec<Json> = (0..500).map(|_| json!({"needs_improvement": true, "feedback": "again"})).collect();
    let mut options = scripted(json!({ "evaluate": always }));
    options.max_steps = 60;
    let plan = Plan::new(&f, options).unwrap();
    let err = plan.start(inputs(json!({"topic": "rust"}))).unwrap().execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::StepBudget);
    assert!(err.message.contains("step budget exhausted: 60 steps"), "{}", err.message);
    assert!(err.message.contains("\"evaluate\" -> \"check\" -> \"improve\""), "{}", err.message);
}

fn ask_flow(prompt: &str) -> String {
    doc(
        vec![
            start(json!([])),
            json!({"component_type": "InputMessageNode", "id": "ask", "name": "ask", "message": prompt, "outputs": [{"title": "answer", "type": "string"}]}),
            llm("reply", "Reply to {{ answer }}", json!([{"title": "generated_text", "type": "string"}])),
            end(json!([{"title": "generated_text", "type": "string"}, {"title": "answer", "type": "string"}])),
        ],
        &[("start", None, "ask"), ("ask", None, "reply"), ("reply", None, "end")],
        &[("ask", "answer", "reply", "answer"), ("reply", "generated_text", "end", "generated_text"), ("ask", "answer", "end", "answer")],
    )
}

#[tokio::test]
async fn a_waiting_run_survives_serialization_and_finishes_the_same() {
    let text = ask_flow("Your name?");
    // Uninterrupted.
    let plan = Plan::new(&flow(&text), RunOptions::simulated()).unwrap();
    let mut run = plan.start(Map::new()).unwrap();
    let Status::InputRequired { request } = run.execute().await.unwrap() else { panic!() };
    assert_eq!(request, InputRequest::Message { node: "ask".into(), message: Some("Your name?".into()) });
    run.submit(json!("Ada")).unwrap();
    let Status::Finished { outputs: direct, .. } = run.execute().await.unwrap() else { panic!() };
    // Interrupted: the state goes through JSON, and a new plan of the same flow resumes it.
    let mut run = plan.start(Map::new()).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::InputRequired { .. }));
    let stored = serde_json::to_string(run.state()).unwrap();
    drop(run);
    let state: RunState = serde_json::from_str(&stored).unwrap();
    let plan2 = Plan::new(&flow(&text), RunOptions::simulated()).unwrap();
    let mut resumed = plan2.resume(state.clone()).unwrap();
    resumed.submit(json!("Ada")).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!() };
    assert_eq!(outputs, direct);
    assert_eq!(outputs["answer"], json!("Ada"));
    let conversation: Vec<(&str, &str)> = resumed.state().messages.iter().map(|m| (m.message_type.as_str(), m.content.as_str())).collect();
    assert_eq!(conversation, [("AGENT", "Your name?"), ("USER", "Ada")]);
    // An edited flow refuses the state.
    let edited = Plan::new(&flow(&ask_flow("Your full name?")), RunOptions::simulated()).unwrap();
    assert!(matches!(edited.resume(state), Err(ResumeError::FlowChanged { .. })));
}

fn tool_flow(tool: Json, node_extra: Json) -> String {
    let mut node = json!({"component_type": "ToolNode", "id": "call", "name": "call", "tool": tool});
    if let (Json::Object(n), Json::Object(extra)) = (&mut node, node_extra) {
        n.extend(extra);
    }
    let outputs = node["tool"]["outputs"].clone();
    let data: Vec<(&str, &str, &str, &str)> = vec![("start", "city", "call", "city")];
    let titles: Vec<String> = outputs.as_array().unwrap().iter().map(|o| o["title"].as_str().unwrap().to_owned()).collect();
    let mut edges = data.clone();
    for t in &titles {
        edges.push(("call", t.as_str(), "end", t.as_str()));
    }
    doc(
        vec![start(json!([{"title": "city", "type": "string"}])), node, end(outputs)],
        &[("start", None, "call"), ("call", None, "end")],
        &edges,
    )
}

#[tokio::test]
async fn a_client_tool_yields_its_request_and_takes_the_answer() {
    let tool = json!({"component_type": "ClientTool", "id": "weather", "name": "weather",
        "inputs": [{"title": "city", "type": "string"}], "outputs": [{"title": "temp", "type": "number"}, {"title": "sky", "type": "string"}]});
    let plan = Plan::new(&flow(&tool_flow(tool, json!({}))), RunOptions::simulated()).unwrap();
    let mut run = plan.start(inputs(json!({"city": "Oslo"}))).unwrap();
    let Status::InputRequired { request: InputRequest::Tool { tool, args, outputs, .. } } = run.execute().await.unwrap() else { panic!() };
    assert_eq!(
        (tool.as_str(), Json::Object(args), outputs),
        ("weather", json!({"city": "Oslo"}), vec!["temp".to_owned(), "sky".to_owned()])
    );
    assert!(run.submit(json!({"temp": 3.5})).is_err(), "a missing output is refused");
    let wrong = run.submit(json!({"temp": "warm", "sky": "grey"})).unwrap_err().to_string();
    assert!(wrong.starts_with("the answer for client tool \"weather\" does not fit its output \"temp\" (number): "), "{wrong}");
    run.submit(json!({"temp": 3.5, "sky": "grey"})).unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!() };
    assert_eq!(Json::Object(outputs), json!({"temp": 3.5, "sky": "grey"}));
}

fn server_tool(name: &str) -> Json {
    json!({"component_type": "ServerTool", "id": name, "name": name,
        "inputs": [{"title": "city", "type": "string"}], "outputs": [{"title": "report", "type": "string"}]})
}

#[tokio::test]
async fn unbound_server_tools_are_all_listed_before_running() {
    let err = Plan::new(&flow(&tool_flow(server_tool("forecast"), json!({}))), RunOptions::simulated()).unwrap_err();
    assert!(err.to_string().contains("no implementation bound for the ServerTool \"forecast\""), "{err}");
}

#[tokio::test]
async fn raise_exceptions_false_turns_a_tool_error_into_its_output() {
    let mut tools = ToolRegistry::new();
    tools.register_fn("forecast", |_: Map<String, Json>| async { Err::<Json, _>("service down") });
    let text = tool_flow(
        server_tool("forecast"),
        json!({"component_type": "ExtendedToolNode", "raise_exceptions": false,
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}),
    );
    let plan = Plan::new(&flow(&text), RunOptions::simulated().with_tools(tools.clone())).unwrap();
    let Status::Finished { outputs, .. } = plan.start(inputs(json!({"city": "Oslo"}))).unwrap().execute().await.unwrap() else { panic!() };
    assert!(outputs["report"].as_str().unwrap().contains("service down"), "{outputs:?}");
    // With the default, the error stops the run and names the node and the tool.
    let plan = Plan::new(&flow(&tool_flow(server_tool("forecast"), json!({}))), RunOptions::simulated().with_tools(tools)).unwrap();
    let err = plan.start(inputs(json!({"city": "Oslo"}))).unwrap().execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Tool);
    assert!(err.message.starts_with("ToolNode \"call\": tool \"forecast\" failed: "), "{}", err.message);
    assert!(err.message.contains("service down"), "{}", err.message);
}

#[tokio::test]
async fn a_hanging_command_tool_is_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let tool = CommandTool::new(["sh", "-c", script.as_str()]).with_timeout(Duration::from_millis(300));
    let mut tools = ToolRegistry::new();
    tools.register("forecast", tool);
    let plan = Plan::new(&flow(&tool_flow(server_tool("forecast"), json!({}))), RunOptions::simulated().with_tools(tools)).unwrap();
    let err = plan.start(inputs(json!({"city": "Oslo"}))).unwrap().execute().await.unwrap_err();
    assert!(err.message.contains("ToolNode \"call\": tool \"forecast\" failed: timed out after 0.3s"), "{}", err.message);
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
    let proc_dir = std::path::Path::new("/proc").join(&pid);
    for _ in 0..100 {
        if !proc_dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} is still there after the timeout");
}

#[tokio::test]
async fn values_render_into_prompts_as_wayflow_renders_them() {
    // An object into a string input is JSON-encoded the Python way; a variable used only in a
    // loop or through an attribute is untyped, and prints like Python's str().
    let outputs = json!([{"title": "generated_text", "type": "string"}]);
    let text = doc(
        vec![
            start(json!([{"title": "data", "type": "object"}])),
            llm("as_string", "S: {{ data }}", outputs.clone()),
            json!({"component_type": "PluginTemplateNode", "id": "as_any", "name": "as_any", "template": "{% for k in data %}{{ k }}{% endfor %} {{ data.a }}",
                   "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}),
            end(json!([{"title": "output", "type": "string"}])),
        ],
        &[("start", None, "as_string"), ("as_string", None, "as_any"), ("as_any", None, "end")],
        &[("start", "data", "as_string", "data"), ("start", "data", "as_any", "data"), ("as_any", "output", "end", "output")],
    );
    let recorder = Arc::new(Recorder { inner: SimulatedModel::new(SimulatedOptions::default()), seen: Mutex::new(Vec::new()) });
    let plan = Plan::new(&flow(&text), RunOptions::simulated().with_model(recorder.clone())).unwrap();
    let data = json!({"b": 1, "a": [1, 2.5, true, null], "é": "ü"});
    let Status::Finished { outputs, .. } = plan.start(inputs(json!({ "data": data }))).unwrap().execute().await.unwrap() else { panic!() };
    let prompt = recorder.seen.lock().unwrap()[0].messages[0].content.clone();
    assert_eq!(prompt, r#"S: {"b": 1, "a": [1, 2.5, true, null], "\u00e9": "\u00fc"}"#);
    assert_eq!(outputs["output"], json!("baé [1, 2.5, True, None]"));
}

/// A subflow `x -> slow tool -> o{i}` for branch `i`.
fn branch_flow(i: usize) -> Json {
    let id = |s: &str| format!("b{i}_{s}");
    let out = format!("o{i}");
    json!({
        "component_type": "Flow", "id": id("flow"), "name": id("flow"),
        "start_node": {"$component_ref": id("start")},
        "nodes": [{"$component_ref": id("start")}, {"$component_ref": id("tool")}, {"$component_ref": id("end")}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": id("c0"), "name": id("c0"), "from_node": {"$component_ref": id("start")}, "from_branch": null, "to_node": {"$component_ref": id("tool")}},
            {"component_type": "ControlFlowEdge", "id": id("c1"), "name": id("c1"), "from_node": {"$component_ref": id("tool")}, "from_branch": null, "to_node": {"$component_ref": id("end")}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": id("d0"), "name": id("d0"), "source_node": {"$component_ref": id("start")}, "source_output": "x", "destination_node": {"$component_ref": id("tool")}, "destination_input": "x"},
            {"component_type": "DataFlowEdge", "id": id("d1"), "name": id("d1"), "source_node": {"$component_ref": id("tool")}, "source_output": out, "destination_node": {"$component_ref": id("end")}, "destination_input": out}
        ],
        "$referenced_components": {
            id("start"): {"component_type": "StartNode", "id": id("start"), "name": id("start"), "inputs": [{"title": "x", "type": "integer"}]},
            id("tool"): {"component_type": "ToolNode", "id": id("tool"), "name": id("tool"), "tool": {"component_type": "ServerTool", "id": id("slow"), "name": "slow",
                "inputs": [{"title": "x", "type": "integer"}], "outputs": [{"title": out, "type": "integer"}]}},
            id("end"): {"component_type": "EndNode", "id": id("end"), "name": id("end"), "inputs": [{"title": out, "type": "integer"}], "outputs": [{"title": out, "type": "integer"}]}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_run_at_most_max_workers_at_once_and_merge_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let branches = 6;
    let outputs: Vec<Json> = (0..branches).map(|i| json!({"title": format!("o{i}"), "type": "integer"})).collect();
    let parallel = json!({"component_type": "ExtendedParallelFlowNode", "id": "fan", "name": "fan", "max_workers": 2,
        "flows": (0..branches).map(branch_flow).collect::<Vec<_>>(),
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let mut data = vec![("start", "x", "fan", "x")];
    let titles: Vec<String> = (0..branches).map(|i| format!("o{i}")).collect();
    for t in &titles {
        data.push(("fan", t.as_str(), "end", t.as_str()));
    }
    let text = doc(
        vec![start(json!([{"title": "x", "type": "integer"}])), parallel, end(Json::Array(outputs))],
        &[("start", None, "fan"), ("fan", None, "end")],
        &data,
    );
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tools = ToolRegistry::new();
    let (f, p, c) = (in_flight.clone(), peak.clone(), calls.clone());
    tools.register_fn("slow", move |args: Map<String, Json>| {
        let (f, p, c) = (f.clone(), p.clone(), c.clone());
        async move {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            // Later calls finish first, so completion order is the reverse of declaration order.
            tokio::time::sleep(Duration::from_millis(60 - 10 * n as u64)).await;
            f.fetch_sub(1, Ordering::SeqCst);
            Ok::<Json, String>(json!(args["x"].as_i64().unwrap_or(0) * 10))
        }
    });
    let plan = Plan::new(&flow(&text), RunOptions::simulated().with_tools(tools)).unwrap();
    let Status::Finished { outputs, .. } = plan.start(inputs(json!({"x": 4}))).unwrap().execute().await.unwrap() else { panic!() };
    assert_eq!(calls.load(Ordering::SeqCst), branches);
    assert_eq!(peak.load(Ordering::SeqCst), 2, "max_workers: 2 holds, and both workers are used");
    let keys: Vec<&String> = outputs.keys().collect();
    assert_eq!(keys, titles.iter().collect::<Vec<_>>(), "outputs merged in declaration order");
    assert!(outputs.values().all(|v| v == &json!(40)));
}
