//! Engine overhead per node: a 1,000-node linear flow of cheap nodes (templates and constants)
//! on the simulated model at zero latency, through the same `Plan::start` + `Run::execute` path
//! as `weft run`. Divide the time per iteration by 1,000 for the cost of one node.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value as Json, json};
use std::hint::black_box;
use weft_exec::{Plan, RunOptions, Status};
use weft_flow::Flow;

/// The number of nodes between start and end.
pub const NODES: usize = 1_000;

/// Start -> (constants -> template) x N/2 -> end; every template reads the previous output.
fn linear_flow(n: usize) -> String {
    let plugin = |mut v: Json| {
        v["component_plugin_name"] = json!("NodesPlugin");
        v["component_plugin_version"] = json!("26.3.1");
        v
    };
    let mut table = Map::new();
    let mut nodes = vec![json!({"$component_ref": "start"})];
    let mut control = Vec::new();
    let mut data = Vec::new();
    table.insert(
        "start".into(),
        json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "seed", "type": "string"}]}),
    );
    let mut prev = ("start".to_owned(), "seed".to_owned());
    for i in 0..n {
        let id = format!("n{i}");
        let node = if i % 2 == 0 {
            plugin(json!({"component_type": "PluginConstantValuesNode", "id": id, "name": id, "constant_values": {format!("c{i}"): i}}))
        } else {
            let out = format!("t{i}");
            data.push(json!({"component_type": "DataFlowEdge", "id": format!("d{i}"), "name": format!("d{i}"),
                "source_node": {"$component_ref": prev.0}, "source_output": prev.1, "destination_node": {"$component_ref": id}, "destination_input": "x"}));
            plugin(json!({"component_type": "PluginTemplateNode", "id": id, "name": id, "template": "step {{ x }}!",
                "outputs": [{"title": out, "type": "string"}], "output_mapping": {"output": out}}))
        };
        if i % 2 == 1 {
            prev = (id.clone(), format!("t{i}"));
        }
        table.insert(id.clone(), node);
        let from = if i == 0 { "start".to_owned() } else { format!("n{}", i - 1) };
        control.push(json!({"component_type": "ControlFlowEdge", "id": format!("c{i}"), "name": format!("c{i}"),
            "from_node": {"$component_ref": from}, "to_node": {"$component_ref": id}}));
        nodes.push(json!({"$component_ref": id}));
    }
    table.insert("end".into(), json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "result", "type": "string"}], "outputs": [{"title": "result", "type": "string"}]}));
    data.push(json!({"component_type": "DataFlowEdge", "id": "dend", "name": "dend",
        "source_node": {"$component_ref": prev.0}, "source_output": prev.1, "destination_node": {"$component_ref": "end"}, "destination_input": "result"}));
    control.push(json!({"component_type": "ControlFlowEdge", "id": "cend", "name": "cend",
        "from_node": {"$component_ref": format!("n{}", n - 1)}, "to_node": {"$component_ref": "end"}}));
    nodes.push(json!({"$component_ref": "end"}));
    json!({
        "component_type": "Flow", "id": "linear", "name": "linear", "agentspec_version": "26.3.1",
        "start_node": {"$component_ref": "start"}, "nodes": nodes,
        "control_flow_connections": control, "data_flow_connections": data,
        "outputs": [{"title": "result", "type": "string"}],
        "$referenced_components": table,
    })
    .to_string()
}

fn bench(c: &mut Criterion) {
    let flow = match Flow::from_json(&linear_flow(NODES)) {
        Ok(l) => l.flow,
        Err(d) => panic!("the benchmark flow is invalid:\n{d}"),
    };
    let plan = Plan::new(&flow, RunOptions::simulated()).expect("the benchmark flow runs");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut inputs = Map::new();
    inputs.insert("seed".into(), json!("s"));
    // One run first, to check the result.
    let status = rt.block_on(async { plan.start(inputs.clone()).expect("start").execute().await.expect("run") });
    let Status::Finished { outputs, .. } = status else { panic!("the benchmark flow did not finish") };
    assert!(outputs["result"].as_str().is_some_and(|s| s.starts_with("step step")), "{outputs:?}");
    let mut group = c.benchmark_group("engine");
    group.sample_size(30);
    group.bench_function("linear_1000_nodes", |b| {
        b.iter(|| rt.block_on(async { black_box(plan.start(inputs.clone()).expect("start").execute().await.expect("run")) }))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
