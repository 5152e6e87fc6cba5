//! The multi-agent examples of `examples/flows/` on the command line (issue 15, item 6), each
//! with its replies script and its tools file of shell scripts, as the README shows them: a
//! Swarm whose triage agent hands the customer to billing, which asks tech support; a
//! ManagerWorkers whose editor delegates to a researcher and a writer; and orchestrator-workers
//! with a writer agent per planned section in a ParallelMapNode. What a user sees is asserted:
//! the progress lines in order, what the group says, the outputs, and what the tools answered
//! (from the stored state or a recording).

mod common;

use common::{stderr, weft};
use serde_json::{Value as Json, json};
use std::path::Path;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows").join(name).canonicalize().expect("example").display().to_string()
}

/// The progress lines of agents, LLM calls and tools: `node kind`, in order (`kind` is `llm`,
/// `tool NAME` or `says`).
fn progress(err: &str) -> Vec<String> {
    err.lines()
        .filter_map(|line| {
            let (node, rest) = line.strip_prefix('[')?.split_once("] ")?;
            let kind = if rest.starts_with("LLM call") {
                "llm".to_owned()
            } else if let Some(tool) = rest.strip_prefix("tool ") {
                format!("tool {}", tool.split(':').next().unwrap_or_default())
            } else if rest.starts_with("AGENT: ") {
                "says".to_owned()
            } else {
                return None;
            };
            Some(format!("{node} {kind}"))
        })
        .collect()
}

fn state(dir: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("s.json")).expect("the state")).expect("json")
}

/// The tool calls of a conversation's messages, in order: `node: tool`.
fn calls(messages: &Json) -> Vec<String> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| {
            m["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| format!("{}: {}", m["node"].as_str().unwrap_or(""), c["name"].as_str().unwrap_or("")))
        })
        .collect()
}

#[test]
fn the_swarm_example_hands_the_customer_to_billing_which_asks_tech_support() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = format!("simulated?script={}", example("replies_swarm_triage.json"));
    let (flow, tools) = (example("swarm_triage.json"), example("swarm_triage.tools.toml"));
    let message = "Hi, I was charged twice for invoice INV-1042.";
    let out = weft(dir.path(), &["run", &flow, "--llm", &llm, "--tools", &tools, "--message", message, "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "the Swarm waits for the customer's next message: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        progress(&err),
        [
            "triage llm",
            "billing llm",
            "billing tool lookup_invoice",
            "billing llm",
            "tech_support llm",
            "tech_support tool service_status",
            "tech_support llm",
            "tech_support says",
            "billing llm",
            "billing tool refund_charge",
            "billing llm",
            "billing says",
        ],
        "{err}"
    );
    assert!(
        err.contains("waiting for input: node \"billing\" asks: You were charged twice for invoice INV-1042 because of payments incident PAY-17. I refunded the duplicate $42.00 (refund RF-1042)"),
        "billing, which the conversation was handed to, answers the customer: {err}"
    );
    let stored = state(dir.path());
    let main = &stored["state"]["messages"];
    assert_eq!(main[0]["content"], message);
    assert_eq!(calls(main), ["triage: handoff_conversation", "billing: lookup_invoice", "billing: send_message", "billing: refund_charge"]);
    // The shell tools answered: the invoice, tech support's answer (through send_message), the refund's id.
    let results: Vec<&str> = main
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["message_type"] == "TOOL_RESULT")
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert!(results[0].contains("transferred from agent 'triage' to agent 'billing'"), "{results:?}");
    assert_eq!(
        serde_json::from_str::<Json>(results[1]).expect("the invoice"),
        json!({"invoice": "INV-1042", "amount": 42.0, "charges": 2, "status": "paid"})
    );
    assert!(results[2].contains("incident PAY-17 on 2026-12-01 charged some cards twice"), "{results:?}");
    assert_eq!(results[3], "\"RF-1042\"");
    // Tech support worked on its own thread (billing → tech_support), where its tool's answer is.
    let threads = stored["state"]["conversations"].as_object().expect("the threads");
    assert_eq!(threads.len(), 1, "{threads:?}");
    let thread = threads.values().next().expect("a thread");
    let thread = serde_json::to_string(thread).expect("json");
    assert!(thread.contains("Was there a payments incident?") && thread.contains("some cards were charged twice; resolved"), "{thread}");
}

#[test]
fn the_manager_workers_example_delegates_to_the_researcher_then_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = format!("simulated?script={}", example("replies_manager_workers.json"));
    let (flow, tools) = (example("manager_workers.json"), example("manager_workers.tools.toml"));
    let message = "Write a two-sentence release note about Swarm support for our customers.";
    let out = weft(dir.path(), &["run", &flow, "--llm", &llm, "--tools", &tools, "--message", message, "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "the editor waits for the user's next message: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        progress(&err),
        [
            "editor llm",
            "researcher llm",
            "researcher tool search_changelog",
            "researcher llm",
            "researcher tool search_changelog",
            "researcher llm",
            "researcher says",
            "editor llm",
            "writer llm",
            "writer tool style_guide",
            "writer llm",
            "writer says",
            "editor llm",
            "editor says",
        ],
        "{err}"
    );
    assert!(err.contains("waiting for input: node \"editor\" asks: Here is the release note:\n\nWeft 0.4 runs teams of agents"), "{err}");
    assert!(err.contains("8 LLM calls"), "{err}");
    let stored = state(dir.path());
    let main = &stored["state"]["messages"];
    assert_eq!(calls(main), ["editor: send_message", "editor: send_message"]);
    // Each worker's answer came back to the editor as its send_message's result, in order.
    let results: Vec<&str> = main
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["message_type"] == "TOOL_RESULT")
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert!(results[0].starts_with("\"From the changelog (0.4):"), "{results:?}");
    assert!(results[1].starts_with("\"Weft 0.4 runs teams of agents"), "{results:?}");
    // The workers' conversations hold what the shell tools answered.
    let threads = serde_json::to_string(&stored["state"]["conversations"]).expect("json");
    assert!(threads.contains("0.4: ManagerWorkers: a manager agent delegates tasks to worker agents"), "{threads}");
    assert!(threads.contains("Plain words, no jargon"), "{threads}");
}

#[test]
fn the_orchestrator_agents_example_writes_each_section_with_a_worker_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = format!("simulated?script={}", example("replies_orchestrator_agents.json"));
    let (flow, tools) = (example("orchestrator_agents.json"), example("orchestrator_agents.tools.toml"));
    let args = ["run", &flow, "--llm", &llm, "--tools", &tools, "--input", "topic=Artificial Intelligence", "--record", "rec.jsonl"];
    let out = weft(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    let names: Vec<&str> = outputs["sections"].as_array().expect("sections").iter().map(|s| s["name"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["Introduction", "How it works", "What it changes"]);
    // One text per section, in the plan's order whatever order the agents finished in.
    let texts: Vec<&str> = outputs["section_texts"].as_array().expect("texts").iter().map(|t| t.as_str().unwrap_or("")).collect();
    assert_eq!(texts.len(), 3);
    assert!(texts[0].starts_with("Artificial intelligence is software that learns patterns"), "{texts:?}");
    assert!(texts[1].starts_with("A model adjusts millions of numbers"), "{texts:?}");
    assert!(texts[2].starts_with("AI already translates text"), "{texts:?}");
    assert_eq!(outputs["report"], texts.join(" "));
    let err = stderr(&out);
    assert!(err.contains("8 LLM calls, 3 tool calls"), "{err}");
    assert_eq!(progress(&err).iter().filter(|p| *p == "write tool find_facts").count(), 3, "{err}");
    // Each item's agent was told its own section and read its own facts from the shell tool.
    let recorded = std::fs::read_to_string(dir.path().join("rec.jsonl")).expect("the recording");
    let lines: Vec<Json> = recorded.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    for (i, (section, fact)) in [
        ("Introduction", "the term was coined in 1956"),
        ("How it works", "a trained model answers inputs it has never seen"),
        ("What it changes", "people check its work"),
    ]
    .iter()
    .enumerate()
    {
        let path = format!("orchestrator_agents/workers[{i}]/write");
        let requests: Vec<String> = lines
            .iter()
            .filter(|l| l["kind"] == "llm" && l["node_path"] == path.as_str())
            .map(|l| l["request"]["messages"].to_string())
            .collect();
        assert_eq!(requests.len(), 2, "{path}: a tool call, then the submission");
        assert!(requests[0].contains(&format!("The section: {{'name': '{section}'")), "{path}: {}", requests[0]);
        assert!(requests[1].contains(fact), "{path}: {}", requests[1]);
        for (j, (_, other)) in [(0, "coined in 1956"), (1, "never seen"), (2, "check its work")].iter().enumerate() {
            assert_eq!(requests[1].contains(other), i == j, "{path} sees only its own facts");
        }
    }
}
