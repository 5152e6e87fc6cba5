//! Engine overhead of a fan-out: one run of an ExtendedParallelMapNode over 256 items (64 in
//! flight), each item one LLM call to the simulated model at zero latency, through the same
//! `Plan::start` + `Run::execute` path as `weft run` (the provider-wide limiter, and an event
//! sink that receives every event). Criterion reports items per second; the time per
//! iteration divided by 256 is the engine's cost per item (one child frame, three nodes, one
//! LLM call task).
//!
//! ```text
//! cargo bench -p weft-exec --bench fanout              # full measurement
//! cargo bench -p weft-exec --bench fanout -- --quick   # a short run
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value as Json, json};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use weft_exec::{Event, EventSink, Plan, RunOptions, Status};
use weft_flow::Flow;

/// Items of the fan-out.
pub const ITEMS: usize = 256;

/// Items in flight at most (the node's `max_workers`).
pub const MAX_WORKERS: usize = 64;

/// start(items) → ExtendedParallelMapNode (`max_workers`) over start(x) → LlmNode `work`
/// (`Summarize {{x}}.`, output `y`) → end(y) → end(collected_y).
fn fan_out_flow(max_workers: usize) -> String {
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
    .to_string()
}

/// Receives every event, as `weft run`'s sink does, and only counts them.
#[derive(Default)]
struct Count(AtomicU64);

impl EventSink for Count {
    fn emit(&self, _: &Event) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn bench(c: &mut Criterion) {
    let flow = match Flow::from_json(&fan_out_flow(MAX_WORKERS)) {
        Ok(l) => l.flow,
        Err(d) => panic!("the benchmark flow is invalid:\n{d}"),
    };
    let plan = Plan::new(&flow, RunOptions::simulated().with_events(Arc::new(Count::default()))).expect("the benchmark flow runs");
    let mut inputs = Map::new();
    inputs.insert("items".into(), Json::Array((0..ITEMS).map(|i| json!(format!("item {i}"))).collect()));
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(30);
    // The current-thread runtime gives the engine's own cost; the multi-threaded one (what
    // `weft run` uses) adds the cost of waking tasks across threads.
    let runtimes = [
        ("256_items_current_thread", tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")),
        ("256_items_multi_thread", tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")),
    ];
    for (name, rt) in &runtimes {
        // One run first, to check the result.
        let status = rt.block_on(async { plan.start(inputs.clone()).expect("start").execute().await.expect("run") });
        let Status::Finished { outputs, .. } = status else { panic!("the benchmark flow did not finish") };
        assert_eq!(outputs["collected_y"].as_array().map(Vec::len), Some(ITEMS), "{outputs:?}");
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(async { black_box(plan.start(inputs.clone()).expect("start").execute().await.expect("run")) }))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
