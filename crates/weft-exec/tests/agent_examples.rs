//! The agent examples built in Rust (issue 15, item 5): `examples/swarm_triage.rs`,
//! `examples/manager_workers.rs` and `examples/orchestrator_agents.rs` write exactly the
//! documents of `examples/flows/` (which the command line runs with shell tools), and run with
//! their async Rust tools on the simulated model and their scripts: who calls what, in which
//! order, what the tools answered, and the typed outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

#[path = "../../../examples/swarm_triage.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod swarm_triage;

#[path = "../../../examples/manager_workers.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod manager_workers;

#[path = "../../../examples/orchestrator_agents.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod orchestrator_agents;

use serde_json::{Value as Json, json};
use std::path::PathBuf;
use weft_exec::RunState;
use weft_llm::simulated::Script;

fn flows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(flows().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

fn script(file: &str) -> Script {
    Script::from_json(&read(file), file).unwrap()
}

/// The tool calls of the conversation, in order: `(node, tool, arguments)`.
fn calls(state: &RunState) -> Vec<(String, String, Json)> {
    state.messages.iter().flat_map(|m| m.tool_calls.iter().map(|c| (m.node.clone(), c.name.clone(), c.arguments.clone()))).collect()
}

/// Every conversation of the run (the main one, then the threads), as text.
fn everything(state: &RunState) -> String {
    serde_json::to_string(&state.messages).unwrap() + &serde_json::to_string(&state.conversations).unwrap()
}

#[test]
fn the_builders_write_the_documents_of_examples_flows() {
    assert_eq!(
        swarm_triage::swarm().to_document_string(),
        read("swarm_triage.json"),
        "cargo run -p weft-exec --example swarm_triage -- --document"
    );
    assert_eq!(
        manager_workers::group().to_document_string(),
        read("manager_workers.json"),
        "cargo run -p weft-exec --example manager_workers -- --document"
    );
    assert_eq!(
        orchestrator_agents::orchestrator_agents().to_document_string(),
        read("orchestrator_agents.json"),
        "cargo run -p weft-exec --example orchestrator_agents -- --document"
    );
}
