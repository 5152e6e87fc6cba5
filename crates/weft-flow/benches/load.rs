//! Load-and-check throughput on a large generated flow: 10,000 nodes (mostly LlmNodes sharing
//! one VllmConfig, a tenth BranchingNodes) and 20,000 edges (10,999 control, 9,001 data), every
//! node in the flow's `$referenced_components` and referred to by `$component_ref`, as
//! pyagentspec exports it. The goal is under 100 ms for `check_source` (parse, load, checks).
//!
//! Run with `cargo bench -p weft-flow --bench load`. Besides the full check, the parse alone
//! and the parse plus load (no flow checks) are measured, to show where the time goes.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use serde_json::{Map, Value as Json, json};
use std::hint::black_box;
use std::time::Duration;
use weft_flow::{Format, LoadOptions, Source, check_source};

/// Nodes in the flow, StartNode and EndNode included.
const NODES: usize = 10_000;
/// One middle node in ten is a BranchingNode.
const BRANCHING_EVERY: usize = 10;
/// LlmNodes with a constant prompt (no input, so no data edge in): tunes the edge count.
const CONSTANT_LLMS: usize = 998;

fn id(kind: u64, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

fn reference(key: &str) -> Json {
    json!({ "$component_ref": key })
}

fn string_prop(title: &str) -> Json {
    json!({ "title": title, "type": "string" })
}

/// What a generated flow holds.
struct Generated {
    text: String,
    nodes: usize,
    control_edges: usize,
    data_edges: usize,
}

/// The flow: start -> n0 -> n1 -> ... -> end, each BranchingNode going on by both of its
/// branches, and each node reading the text the last LlmNode before it generated.
fn generate() -> Generated {
    let config_id = id(0xc0, 0);
    let start_id = id(0x5, 0);
    let end_id = id(0xe, 0);
    let mut table = Map::new();
    table.insert(
        config_id.clone(),
        json!({
            "component_type": "VllmConfig", "id": config_id, "name": "vllm-llama", "description": null, "metadata": {},
            "model_id": "meta-llama/Llama-3.1-8B-Instruct", "url": "http://vllm.internal:8000", "default_generation_parameters": null,
        }),
    );
    table.insert(
        start_id.clone(),
        json!({
            "component_type": "StartNode", "id": start_id, "name": "start", "description": null, "metadata": {},
            "inputs": [string_prop("question")], "outputs": [string_prop("question")], "branches": ["next"],
        }),
    );
    let mut nodes = vec![reference(&start_id)];
    let mut control = Vec::new();
    let mut data = Vec::new();
    let control_edge = |control: &mut Vec<Json>, from: &str, branch: Option<&str>, to: &str| {
        let n = control.len();
        control.push(json!({
            "component_type": "ControlFlowEdge", "id": id(0xcf, n), "name": format!("control_{n}"), "description": null, "metadata": {},
            "from_node": reference(from), "from_branch": branch, "to_node": reference(to),
        }));
    };
    let data_edge = |data: &mut Vec<Json>, from: &str, output: &str, to: &str, input: &str| {
        let n = data.len();
        data.push(json!({
            "component_type": "DataFlowEdge", "id": id(0xdf, n), "name": format!("data_{n}"), "description": null, "metadata": {},
            "source_node": reference(from), "source_output": output, "destination_node": reference(to), "destination_input": input,
        }));
    };

    // The node the control flow comes from (and by which branches), and the node whose text
    // the next node reads (with the output's title).
    let mut previous = (start_id.clone(), vec![None]);
    let mut producer = (start_id.clone(), "question");
    let mut constant = 0;
    for k in 0..NODES - 2 {
        let node_id = id(0x10, k);
        let (node, branches) = if k % BRANCHING_EVERY == BRANCHING_EVERY / 2 {
            data_edge(&mut data, &producer.0, producer.1, &node_id, "branching_mapping_key");
            let node = json!({
                "component_type": "BranchingNode", "id": node_id, "name": format!("branch_{k}"), "description": null, "metadata": {},
                "inputs": [string_prop("branching_mapping_key")], "outputs": [], "branches": ["YES", "default"],
                "mapping": { "yes": "YES" },
            });
            (node, vec![Some("YES"), Some("default")])
        } else {
            let constant_prompt = k % BRANCHING_EVERY == 7 && constant < CONSTANT_LLMS;
            let (inputs, prompt) = if constant_prompt {
                constant += 1;
                (json!([]), format!("Say something about the number {k}"))
            } else {
                data_edge(&mut data, &producer.0, producer.1, &node_id, "text");
                (json!([string_prop("text")]), format!("Step {k}: rewrite {{{{text}}}}"))
            };
            let node = json!({
                "component_type": "LlmNode", "id": node_id, "name": format!("llm_{k}"), "description": null, "metadata": {},
                "inputs": inputs, "outputs": [string_prop("generated_text")], "branches": ["next"],
                "llm_config": reference(&config_id), "prompt_template": prompt,
            });
            producer = (node_id.clone(), "generated_text");
            (node, vec![None])
        };
        for branch in &previous.1 {
            control_edge(&mut control, &previous.0, *branch, &node_id);
        }
        nodes.push(reference(&node_id));
        table.insert(node_id.clone(), node);
        previous = (node_id, branches);
    }
    for branch in &previous.1 {
        control_edge(&mut control, &previous.0, *branch, &end_id);
    }
    data_edge(&mut data, &producer.0, producer.1, &end_id, "generated_text");
    table.insert(
        end_id.clone(),
        json!({
            "component_type": "EndNode", "id": end_id, "name": "end", "description": null, "metadata": {},
            "inputs": [string_prop("generated_text")], "outputs": [string_prop("generated_text")], "branches": [], "branch_name": "next",
        }),
    );
    nodes.push(reference(&end_id));

    let (node_count, control_edges, data_edges) = (nodes.len(), control.len(), data.len());
    let flow = json!({
        "component_type": "Flow", "id": id(0xf, 0), "name": "large_generated_flow", "description": null, "metadata": {},
        "inputs": [string_prop("question")], "outputs": [string_prop("generated_text")],
        "start_node": reference(&start_id), "nodes": nodes,
        "control_flow_connections": control, "data_flow_connections": data,
        "$referenced_components": table,
        "agentspec_version": "25.4.1",
    });
    let text = serde_json::to_string_pretty(&flow).expect("a JSON value serializes");
    Generated { text, nodes: node_count, control_edges, data_edges }
}

fn bench(c: &mut Criterion) {
    let generated = generate();
    assert_eq!(generated.nodes, NODES);
    assert_eq!(
        generated.control_edges + generated.data_edges,
        20_000,
        "control {} + data {}",
        generated.control_edges,
        generated.data_edges
    );
    let source = Source::new("large_generated_flow.json", generated.text, Format::Json);
    let options = LoadOptions::default();

    // The generated flow is valid: no error, and no warning either.
    let (flow, diags) = check_source(&source, &options);
    assert!(diags.is_empty(), "the generated flow does not check cleanly:\n{diags}");
    let flow = flow.expect("a valid flow");
    assert_eq!(flow.spec().components.len(), 1 + NODES + 1 + 20_000, "flow + nodes + config + edges");

    let mut group = c.benchmark_group("large_flow_10k_nodes_20k_edges");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).sampling_mode(SamplingMode::Flat);
    group.bench_function("check_source", |b| b.iter(|| check_source(black_box(&source), black_box(&options))));
    group.bench_function("load_only", |b| {
        b.iter(|| {
            let secrets = std::collections::HashMap::new();
            weft_spec::load(weft_spec::LoadInput {
                document: black_box(&source),
                registries: &[],
                secrets: &secrets,
                secret_fallback: None,
            })
        })
    });
    group.bench_function("parse_only", |b| b.iter(|| black_box(&source).parse()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
