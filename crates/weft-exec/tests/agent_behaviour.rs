//! An agent's loop over real HTTP (the testkit server, scripted turn by turn): three tools called
//! one per turn, a tool error the model recovers from, and an invalid then a valid
//! `submit_result`. What is checked is what a user sees: the outputs, the tool results the model
//! was sent, in order, and how many calls it took.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::sync::{Arc, Mutex};
use weft_exec::{FlowExt, Limiters, RunOptions, Status};
use weft_testkit::{MockConfig, MockServer, ScriptedCall};
use weft_tools::{Tool, ToolError, ToolRegistry};

/// A tool that logs each call's arguments and answers from a function of them.
struct Logged {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    answer: fn(&Map<String, Json>) -> Result<Json, String>,
}

#[async_trait::async_trait]
impl Tool for Logged {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        self.log.lock().unwrap().push(format!("{}({})", self.name, Json::Object(args.clone())));
        (self.answer)(&args).map_err(|message| ToolError::Failed { message })
    }
}

fn tool(name: &str, input: &str, ty: &str) -> Json {
    json!({"component_type": "ServerTool", "id": name, "name": name, "description": format!("the {name} tool"),
           "inputs": [{"title": input, "type": ty}], "outputs": [{"title": "result", "type": "string"}]})
}

/// An agent that never asks the user and submits `total` (an integer) and `note`.
fn agent(url: &str, tools: Vec<Json>) -> weft_flow::Flow {
    let document = json!({
        "component_type": "Agent", "id": "a", "name": "planner", "system_prompt": "Plan the trip.", "human_in_the_loop": false,
        "llm_config": {"component_type": "OpenAiCompatibleConfig", "id": "l", "name": "l", "model_id": "m", "url": url},
        "tools": tools,
        "outputs": [{"title": "total", "type": "integer"}, {"title": "note", "type": "string"}],
        "agentspec_version": "26.1.0"
    });
    weft_flow::Flow::from_json(&document.to_string()).unwrap().flow
}

/// The tool messages of request `index`, in order: `(call id, content)`.
fn tool_messages(server: &MockServer, index: usize) -> Vec<(String, String)> {
    server.requests()[index]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| (m["tool_call_id"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect()
}

async fn finish(flow: &weft_flow::Flow, tools: ToolRegistry) -> Map<String, Json> {
    let options = RunOptions::default().with_tools(tools).with_limits(Limiters::new(Default::default()));
    let mut run = flow.start_with(Map::new(), options).unwrap();
    run.append_user_message("Plan a weekend in Lyon").unwrap();
    match run.execute().await.unwrap() {
        Status::Finished { outputs, .. } => outputs,
        other => panic!("the agent should finish: {other:?}"),
    }
}

#[tokio::test]
async fn three_tools_one_per_turn_then_the_submission() {
    let server = MockServer::start(
        MockConfig::default()
            .with_calls(0, vec![ScriptedCall::new("weather", json!({"city": "Lyon"})).with_id("w")])
            .with_calls(1, vec![ScriptedCall::new("hotels", json!({"city": "Lyon"})).with_id("h")])
            .with_calls(2, vec![ScriptedCall::new("trains", json!({"from": "Paris"})).with_id("t")])
            .with_calls(3, vec![ScriptedCall::new("submit_result", json!({"total": 180, "note": "book the 9:00 train"}))]),
    )
    .await;
    let flow =
        agent(&server.url(), vec![tool("weather", "city", "string"), tool("hotels", "city", "string"), tool("trains", "from", "string")]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tools = ToolRegistry::new();
    tools.register("weather", Logged { name: "weather", log: log.clone(), answer: |a| Ok(json!(format!("sunny in {}", a["city"]))) });
    tools.register("hotels", Logged { name: "hotels", log: log.clone(), answer: |_| Ok(json!("Hotel Bellecour, 90 a night")) });
    tools.register("trains", Logged { name: "trains", log: log.clone(), answer: |_| Ok(json!({"departs": "9:00"})) });
    let outputs = finish(&flow, tools).await;
    assert_eq!(outputs, *json!({"total": 180, "note": "book the 9:00 train"}).as_object().unwrap());
    assert_eq!(*log.lock().unwrap(), ["weather({\"city\":\"Lyon\"})", "hotels({\"city\":\"Lyon\"})", "trains({\"from\":\"Paris\"})"]);
    assert_eq!(server.requests().len(), 4, "one LLM call per tool, then the submission");
    // Each request carries every result so far, in call order, as json.dumps of the value.
    assert_eq!(
        tool_messages(&server, 3),
        [
            ("w".to_owned(), "\"sunny in \\\"Lyon\\\"\"".to_owned()),
            ("h".to_owned(), "\"Hotel Bellecour, 90 a night\"".to_owned()),
            ("t".to_owned(), "{\"departs\": \"9:00\"}".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_tool_error_goes_back_to_the_model_which_calls_again_and_finishes() {
    let server = MockServer::start(
        MockConfig::default()
            .with_calls(0, vec![ScriptedCall::new("lookup", json!({"code": "LYS"})).with_id("first")])
            .with_calls(1, vec![ScriptedCall::new("lookup", json!({"code": "LYON"})).with_id("second")])
            .with_calls(2, vec![ScriptedCall::new("submit_result", json!({"total": 1, "note": "Lyon found"}))]),
    )
    .await;
    let flow = agent(&server.url(), vec![tool("lookup", "code", "string")]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tools = ToolRegistry::new();
    tools.register(
        "lookup",
        Logged {
            name: "lookup",
            log: log.clone(),
            answer: |a| if a["code"] == "LYON" { Ok(json!("Lyon, France")) } else { Err(format!("unknown city code {}", a["code"])) },
        },
    );
    let outputs = finish(&flow, tools).await;
    assert_eq!(outputs["note"], json!("Lyon found"));
    assert_eq!(log.lock().unwrap().len(), 2);
    // The failure reached the model as the error's text, JSON-quoted as WayFlow gives an
    // exception's text, and the retry's result after it.
    assert_eq!(
        tool_messages(&server, 2),
        [("first".to_owned(), r#""unknown city code \"LYS\"""#.to_owned()), ("second".to_owned(), "\"Lyon, France\"".to_owned())]
    );
}

#[tokio::test]
async fn an_invalid_submission_goes_back_with_the_reason_and_a_valid_one_finishes() {
    let server = MockServer::start(
        MockConfig::default()
            .with_calls(0, vec![ScriptedCall::new("submit_result", json!({"total": "a lot", "note": "guess"})).with_id("bad")])
            .with_calls(1, vec![ScriptedCall::new("submit_result", json!({"total": 240, "note": "checked"})).with_id("good")]),
    )
    .await;
    let flow = agent(&server.url(), vec![tool("weather", "city", "string")]);
    let mut tools = ToolRegistry::new();
    tools.register("weather", Logged { name: "weather", log: Arc::default(), answer: |_| Ok(json!("sunny")) });
    let outputs = finish(&flow, tools).await;
    assert_eq!(outputs, *json!({"total": 240, "note": "checked"}).as_object().unwrap());
    assert_eq!(server.requests().len(), 2);
    let answered = tool_messages(&server, 1);
    assert_eq!(answered.len(), 1, "{answered:?}");
    let (id, reason) = &answered[0];
    assert_eq!(id, "bad");
    assert!(reason.contains("total") && reason.contains("a lot"), "the model is told what is wrong: {reason}");
}
