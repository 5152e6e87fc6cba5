//! Helpers shared by the engine's integration tests.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};

/// A flow component: nodes (ids = names), control edges `(from, to)` (branch `next`), data
/// edges `(source, output, destination, input)`. The first node is the start.
pub fn flow_json(name: &str, nodes: Vec<Json>, control: &[(&str, &str)], data: &[(&str, &str, &str, &str)]) -> Json {
    let mut table = Map::new();
    let mut refs = Vec::new();
    for n in &nodes {
        let id = n["id"].as_str().unwrap().to_owned();
        refs.push(json!({"$component_ref": id}));
        table.insert(id, n.clone());
    }
    let control: Vec<Json> = control
        .iter()
        .enumerate()
        .map(|(i, (f, t))| json!({"component_type": "ControlFlowEdge", "id": format!("{name}_c{i}"), "name": format!("c{i}"), "from_node": {"$component_ref": f}, "to_node": {"$component_ref": t}}))
        .collect();
    let data: Vec<Json> = data
        .iter()
        .enumerate()
        .map(|(i, (s, o, d, n))| json!({"component_type": "DataFlowEdge", "id": format!("{name}_d{i}"), "name": format!("d{i}"), "source_node": {"$component_ref": s}, "source_output": o, "destination_node": {"$component_ref": d}, "destination_input": n}))
        .collect();
    json!({
        "component_type": "Flow", "id": name, "name": name,
        "start_node": refs[0], "nodes": refs,
        "control_flow_connections": control, "data_flow_connections": data,
        "$referenced_components": table,
    })
}
