//! Flow documents built in code, shared by the benchmarks (`weft-exec`'s criterion bench
//! `fanout` and the `weft-bench` binary) so both measure the same flow.

use serde_json::{Value as Json, json};

/// start(items: list of strings) → ExtendedParallelMapNode (`max_workers`; core
/// ParallelMapNode has no such field) over start(x) → LlmNode `work` (`Summarize {{x}}.`,
/// output `y`) → end(y) → end(collected_y).
pub fn fan_out_document(max_workers: usize) -> Json {
    let edge = |id: &str, from: &str, to: &str| {
        json!({"component_type": "ControlFlowEdge", "id": id, "name": id,
            "from_node": {"$component_ref": from}, "to_node": {"$component_ref": to}})
    };
    let data = |id: &str, src: &str, out: &str, dst: &str, input: &str| {
        json!({"component_type": "DataFlowEdge", "id": id, "name": id, "source_node": {"$component_ref": src}, "source_output": out,
            "destination_node": {"$component_ref": dst}, "destination_input": input})
    };
    let string = |title: &str| json!({"title": title, "type": "string"});
    let strings = |title: &str| json!({"title": title, "type": "array", "items": {"type": "string"}});
    let item = json!({
        "component_type": "Flow", "id": "item", "name": "item",
        "start_node": {"$component_ref": "item_start"},
        "nodes": [{"$component_ref": "item_start"}, {"$component_ref": "work"}, {"$component_ref": "item_end"}],
        "control_flow_connections": [edge("item_c0", "item_start", "work"), edge("item_c1", "work", "item_end")],
        "data_flow_connections": [data("item_d0", "item_start", "x", "work", "x"), data("item_d1", "work", "y", "item_end", "y")],
        "$referenced_components": {
            "item_start": {"component_type": "StartNode", "id": "item_start", "name": "start", "inputs": [string("x")]},
            "work": {"component_type": "LlmNode", "id": "work", "name": "work", "llm_config": {"$component_ref": "llm"},
                "prompt_template": "Summarize {{x}}.", "outputs": [string("y")]},
            "item_end": {"component_type": "EndNode", "id": "item_end", "name": "end", "inputs": [string("y")], "outputs": [string("y")]},
        },
    });
    let map = json!({
        "component_type": "ExtendedParallelMapNode", "id": "map", "name": "map", "flow": item, "max_workers": max_workers,
        "inputs": [{"title": "items", "type": "array", "items": {"type": "string"}}], "outputs": [strings("collected_y")],
        "input_mapping": {"iterated_input": "items"}, "output_mapping": {"y": "collected_y"}, "unpack_input": {"x": "."},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1",
    });
    json!({
        "component_type": "Flow", "id": "fan_out", "name": "fan_out", "agentspec_version": "26.3.1",
        "start_node": {"$component_ref": "start"},
        "nodes": [{"$component_ref": "start"}, {"$component_ref": "map"}, {"$component_ref": "end"}],
        "control_flow_connections": [edge("c0", "start", "map"), edge("c1", "map", "end")],
        "data_flow_connections": [data("d0", "start", "items", "map", "items"), data("d1", "map", "collected_y", "end", "collected_y")],
        "outputs": [strings("collected_y")],
        "$referenced_components": {
            "start": {"component_type": "StartNode", "id": "start", "name": "start", "inputs": [strings("items")]},
            "map": map,
            "end": {"component_type": "EndNode", "id": "end", "name": "end",
                "inputs": [strings("collected_y")], "outputs": [strings("collected_y")]},
            "llm": {"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000/v1", "model_id": "m"},
        },
    })
}
