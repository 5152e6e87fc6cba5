//! The flow of the LLM error tests (issue 12): start -> LlmNode -> end, its OpenAI-compatible
//! config aimed at a testkit server. Shared by `weft-exec/tests/llm_errors.rs` and
//! `weft-cli/tests/llm_errors.rs` (through `#[path]`).

#![allow(dead_code, reason = "each test binary uses part of it")]

use serde_json::json;

/// The LLM config's component id.
pub const CONFIG_ID: &str = "cfg-llm-errors";
/// The LLM node's component id.
pub const NODE_ID: &str = "node-generate-0001";
/// The LLM node's name.
pub const NODE_NAME: &str = "generate";
/// The flow's name: the path of its root frame.
pub const FLOW_NAME: &str = "llm_errors";

/// A minimal flow, start -> LlmNode -> end, whose OpenAI-compatible config points at `url`
/// with `model` and allows one quick retry (each attempt cut at `timeout` seconds when given).
pub fn document(url: &str, model: &str, timeout: Option<f64>) -> String {
    let doc = json!({
        "component_type": "Flow", "id": "flow-llm-errors", "name": FLOW_NAME, "agentspec_version": "26.1.2",
        "inputs": [{"title": "question", "type": "string"}],
        "outputs": [{"title": "answer", "type": "string"}],
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": NODE_ID}, {"$component_ref": "end"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "c1", "name": "c1",
             "from_node": {"$component_ref": "start"}, "to_node": {"$component_ref": NODE_ID}},
            {"component_type": "ControlFlowEdge", "id": "c2", "name": "c2",
             "from_node": {"$component_ref": NODE_ID}, "to_node": {"$component_ref": "end"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "d1", "name": "d1",
             "source_node": {"$component_ref": "start"}, "source_output": "question",
             "destination_node": {"$component_ref": NODE_ID}, "destination_input": "question"},
            {"component_type": "DataFlowEdge", "id": "d2", "name": "d2",
             "source_node": {"$component_ref": NODE_ID}, "source_output": "answer",
             "destination_node": {"$component_ref": "end"}, "destination_input": "answer"}
        ],
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start",
                      "inputs": [{"title": "question", "type": "string"}],
                      "outputs": [{"title": "question", "type": "string"}]},
            NODE_ID: {"component_type": "LlmNode", "id": NODE_ID, "name": NODE_NAME,
                      "inputs": [{"title": "question", "type": "string"}],
                      "outputs": [{"title": "answer", "type": "string"}],
                      "prompt_template": "Answer: {{question}}",
                      "llm_config": {
                          "component_type": "OpenAiCompatibleConfig", "id": CONFIG_ID, "name": "testkit",
                          "model_id": model, "url": url,
                          "retry_policy": {
                              "max_attempts": 1, "request_timeout": timeout,
                              "initial_retry_delay": 0.001, "max_retry_delay": 0.001, "jitter": null
                          }
                      }},
            "end": {"component_type": "EndNode", "id": "end", "name": "end",
                    "inputs": [{"title": "answer", "type": "string"}],
                    "outputs": [{"title": "answer", "type": "string"}]}
        }
    });
    doc.to_string()
}
