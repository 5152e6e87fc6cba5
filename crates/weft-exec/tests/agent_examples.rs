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

#[tokio::test]
async fn the_swarm_built_in_rust_runs_with_its_rust_tools() {
    let (state, said) =
        swarm_triage::run(script("replies_swarm_triage.json"), "Hi, I was charged twice for invoice INV-1042.").await.unwrap();
    assert!(said.starts_with("You were charged twice for invoice INV-1042 because of payments incident PAY-17."), "{said}");
    let names: Vec<String> = calls(&state).into_iter().map(|(node, tool, _)| format!("{node}: {tool}")).collect();
    assert_eq!(names, ["triage: handoff_conversation", "billing: lookup_invoice", "billing: send_message", "billing: refund_charge"]);
    // The async Rust functions answered: the typed invoice serialized, the refund's id, and
    // tech support's tool on its own thread.
    let results: Vec<&str> = state.messages.iter().filter(|m| m.message_type == "TOOL_RESULT").map(|m| m.content.as_str()).collect();
    assert_eq!(
        serde_json::from_str::<Json>(results[1]).unwrap(),
        json!({"invoice": "INV-1042", "amount": 42.0, "charges": 2, "status": "paid"})
    );
    assert_eq!(results[3], "\"RF-1042\"");
    assert!(everything(&state).contains("incident PAY-17 on 2026-12-01: some cards were charged twice"));
}

#[tokio::test]
async fn a_native_tools_error_is_given_to_the_agent_as_its_result() {
    // The same Swarm, billing looking up an invoice the tool does not know: the function's
    // error is the tool's result, and the agent goes on.
    let mut replies = script("replies_swarm_triage.json");
    let lookup = r#"{"name": "lookup_invoice", "parameters": {"invoice": "INV-9"}}"#;
    replies.set("billing", vec![json!(format!("Checking.\n{lookup}")), json!("I cannot find invoice INV-9. Could you check the number?")]);
    let (state, said) = swarm_triage::run(replies, "Charged twice for INV-9").await.unwrap();
    assert_eq!(said, "I cannot find invoice INV-9. Could you check the number?");
    let result = state.messages.iter().find(|m| m.message_type == "TOOL_RESULT" && m.content.contains("INV-9")).map(|m| m.content.clone());
    assert!(result.is_some_and(|r| r.contains("no invoice INV-9")), "{:?}", state.messages);
}

#[tokio::test]
async fn the_manager_workers_built_in_rust_runs_with_its_rust_tools() {
    let (state, said) =
        manager_workers::run(script("replies_manager_workers.json"), "Write a release note about Swarm support.").await.unwrap();
    assert!(said.starts_with("Here is the release note:\n\nWeft 0.4 runs teams of agents"), "{said}");
    let names: Vec<String> = calls(&state).into_iter().map(|(node, tool, args)| format!("{node}: {tool} {}", args["recipient"])).collect();
    assert_eq!(names, ["editor: send_message \"researcher\"", "editor: send_message \"writer\""]);
    // The researcher's Rust tool searched the changelog (a typed `Vec<String>` result), the
    // writer's read the style guide.
    let all = everything(&state);
    assert!(all.contains("0.4: ManagerWorkers: a manager agent delegates tasks to worker agents and gets their answers back"), "{all}");
    assert!(all.contains("Plain words, no jargon"), "{all}");
}

#[tokio::test]
async fn the_orchestrator_with_worker_agents_built_in_rust_returns_typed_outputs() {
    let article = orchestrator_agents::run(script("replies_orchestrator_agents.json"), "Artificial Intelligence").await.unwrap();
    let names: Vec<&str> = article.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Introduction", "How it works", "What it changes"]);
    assert_eq!(article.section_texts.len(), 3);
    assert!(article.section_texts[1].starts_with("A model adjusts millions of numbers"), "{:?}", article.section_texts);
    assert_eq!(article.report, article.section_texts.join(" "));
}

#[tokio::test]
async fn unscripted_the_worker_agents_call_their_rust_tool_then_submit() {
    // Without a script the simulated planner plans one section; its writer agent calls
    // `find_facts` (generated arguments), then submits generated text: the flow still finishes.
    let article = orchestrator_agents::run(Script::new(), "Rust").await.unwrap();
    assert_eq!(article.sections.len(), 1);
    assert_eq!(article.section_texts, ["section_text"]);
}

#[test]
fn a_typed_tool_declares_the_parameters_its_function_takes() {
    // What the agents are told (the ServerTool) and what the function deserializes (the
    // native tool's schema) come from the same struct.
    let [lookup, refund, _] = swarm_triage::tools().1;
    for (declared, native) in
        [(lookup, weft_tools::native(swarm_triage::lookup_invoice)), (refund, weft_tools::native(swarm_triage::refund_charge))]
    {
        let schema = native.parameters_schema();
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let titles: Vec<&str> = declared.inputs.iter().map(|p| p.title()).collect();
        assert_eq!(titles, required, "{}", declared.name);
        for p in &declared.inputs {
            let mut expected = schema["properties"][p.title()].clone();
            expected["title"] = json!(p.title());
            let mut got = p.to_json();
            got.as_object_mut().unwrap().sort_keys();
            expected.as_object_mut().unwrap().sort_keys();
            assert_eq!(got, expected, "{}.{}", declared.name, p.title());
        }
    }
}
