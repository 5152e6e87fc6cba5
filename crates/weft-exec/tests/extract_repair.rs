//! PluginExtractNode with `retry: true` and an `llm_config`: a piece a query raises an error on is
//! repaired by the model, as WayFlow 26.3.1's ExtractValueFromJsonStep does (its `edit_json`):
//! the prompt, which outputs read the repaired piece, defaults, and a resume mid-repair.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod common;

use common::Answers;
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use weft_exec::{Plan, RunOptions, RunState, Status};
use weft_flow::Flow;

/// start(text) -> extract (x: `.a.b`, y: `.c`, z: `.a.b`, each an integer defaulting to -1,
/// repaired by the model of `llm`) -> end.
fn flow(retry: bool) -> Flow {
    let int = |t: &str| json!({"title": t, "type": "integer", "default": -1});
    let outs = json!([int("x"), int("y"), int("z")]);
    let doc = json!({
        "component_type": "Flow", "id": "flow", "name": "extract_flow", "agentspec_version": "26.1.2",
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": "extract"}, {"$component_ref": "end"}],
        "outputs": outs,
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "c0", "name": "c0", "from_node": {"$component_ref": "start"}, "from_branch": null, "to_node": {"$component_ref": "extract"}},
            {"component_type": "ControlFlowEdge", "id": "c1", "name": "c1", "from_node": {"$component_ref": "extract"}, "from_branch": null, "to_node": {"$component_ref": "end"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "d0", "name": "d0", "source_node": {"$component_ref": "start"}, "source_output": "text", "destination_node": {"$component_ref": "extract"}, "destination_input": "text"},
            {"component_type": "DataFlowEdge", "id": "d1", "name": "d1", "source_node": {"$component_ref": "extract"}, "source_output": "x", "destination_node": {"$component_ref": "end"}, "destination_input": "x"},
            {"component_type": "DataFlowEdge", "id": "d2", "name": "d2", "source_node": {"$component_ref": "extract"}, "source_output": "y", "destination_node": {"$component_ref": "end"}, "destination_input": "y"},
            {"component_type": "DataFlowEdge", "id": "d3", "name": "d3", "source_node": {"$component_ref": "extract"}, "source_output": "z", "destination_node": {"$component_ref": "end"}, "destination_input": "z"}
        ],
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "text", "type": "string"}], "outputs": [{"title": "text", "type": "string"}]},
            "extract": {"component_type": "PluginExtractNode", "id": "extract", "name": "extract",
                "inputs": [{"title": "text", "type": "string"}], "outputs": outs,
                "output_values": {"x": ".a.b", "y": ".c", "z": ".a.b"},
                "llm_config": {"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://127.0.0.1:9", "model_id": "m"},
                "retry": retry, "input_mapping": {}, "output_mapping": {},
                "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"},
            "end": {"component_type": "EndNode", "id": "end", "name": "end", "inputs": outs, "outputs": outs}
        }
    });
    match Flow::from_json(&doc.to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("test flow is invalid:\n{d}"),
    }
}

fn text(v: Json) -> Map<String, Json> {
    json!({"text": v}).as_object().unwrap().clone()
}

/// WayFlow's prompt (recorded from 26.3.1 for the same piece and outputs) around the query's
/// error, whose text is the jq implementation's.
const PROMPT_HEAD: &str = "\nYou receive a json string, and an error that is produced, when trying to parse that text.\nYou should edit that json blob so that the error is resolved.\nThe keys in the json string must match the ones provided here.\n\n---------------\nJson string:\n\n{\"a\": \"oops\", \"c\": 1}\n---------------\nerror:\n\n";
const PROMPT_TAIL: &str = "\n\n\n----------------\nList of acceptable keys in the string:\n x,  y,  z, \n\n----------------\n(reminder to respond in a JSON blob no matter what)\nAssistant:";

#[tokio::test]
async fn a_piece_a_query_fails_on_is_repaired_and_read_by_the_outputs_after_it() {
    let model = Answers::new(&["```json\n{\"a\": {\"b\": 5}, \"c\": 7}\n```"]);
    let plan = Plan::new(&flow(true), RunOptions::simulated().with_model(model.clone())).unwrap();
    let status = plan.start(text(json!(r#"{"a": "oops", "c": 1}"#))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    // WayFlow gives exactly this: x failed and is not asked again (its default), y and z read the
    // repaired piece.
    assert_eq!(Json::Object(outputs), json!({"x": -1, "y": 7, "z": 5}));
    let seen = model.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].messages.len(), 1);
    let prompt = &seen[0].messages[0].content;
    assert!(prompt.starts_with(PROMPT_HEAD) && prompt.ends_with(PROMPT_TAIL), "{prompt:?}");
    let error = &prompt[PROMPT_HEAD.len()..prompt.len() - PROMPT_TAIL.len()];
    assert!(error.contains("oops") || error.to_lowercase().contains("index"), "the query's error: {error:?}");
}

#[tokio::test]
async fn without_retry_or_when_queries_succeed_no_model_is_called() {
    let model = Answers::new(&[]);
    let plan = Plan::new(&flow(false), RunOptions::simulated().with_model(model.clone())).unwrap();
    let status = plan.start(text(json!(r#"{"a": "oops", "c": 1}"#))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(Json::Object(outputs), json!({"x": -1, "y": 1, "z": -1}));
    let plan = Plan::new(&flow(true), RunOptions::simulated().with_model(model.clone())).unwrap();
    let status = plan.start(text(json!(r#"{"a": {"b": 2}, "c": 3}"#))).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(Json::Object(outputs), json!({"x": 2, "y": 3, "z": 2}));
    assert!(model.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_repair_fails_the_node_and_a_repair_in_flight_is_made_again_on_resume() {
    let model = Answers::new(&["   "]);
    let plan = Plan::new(&flow(true), RunOptions::simulated().with_model(model)).unwrap();
    let error = plan.start(text(json!(r#"{"a": "oops"}"#))).unwrap().execute().await.unwrap_err();
    assert!(
        error.message.contains("PluginExtractNode \"extract\": the model answered nothing to repair a JSON piece"),
        "{}",
        error.message
    );

    // A run cancelled while the repair is out stores it; resumed, it asks again and finishes.
    struct Never;
    #[async_trait::async_trait]
    impl weft_llm::ChatModel for Never {
        fn name(&self) -> &str {
            "never"
        }
        async fn chat(&self, _: &weft_llm::ChatRequest) -> Result<weft_llm::ChatResponse, weft_llm::LlmError> {
            std::future::pending().await
        }
    }
    let plan = Plan::new(&flow(true), RunOptions::simulated().with_model(Arc::new(Never))).unwrap();
    let mut run = plan.start(text(json!(r#"{"a": "oops", "c": 1}"#))).unwrap();
    let handle = run.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        handle.cancel();
    });
    assert!(run.execute().await.is_err());
    let state: RunState = serde_json::from_str(&serde_json::to_string(run.state()).unwrap()).unwrap();
    let model = Answers::new(&["{\"a\": {\"b\": 5}, \"c\": 7}"]);
    let plan = Plan::new(&flow(true), RunOptions::simulated().with_model(model.clone())).unwrap();
    let status = plan.resume(state).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(Json::Object(outputs), json!({"x": -1, "y": 7, "z": 5}));
    assert!(model.seen.lock().unwrap()[0].messages[0].content.starts_with(PROMPT_HEAD), "the same request, made again");
}
