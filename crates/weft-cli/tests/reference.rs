//! Weft's exports load in the reference implementation: every valid corpus document is
//! exported with `weft export`, and `shared/agentspec/tools/check_roundtrip.py` loads the
//! exports with pyagentspec (must pass) and WayFlow (must load whatever WayFlow loaded from the
//! original); documents written by the agent builders (`AgentBuilder`, `SwarmBuilder`,
//! `ManagerWorkersBuilder`, `FlowBuilder::agent`) load in both. The Python environment is created by `scripts/agentspec-venv.sh`; if it cannot be
//! created the test fails loudly: it never skips.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared() -> PathBuf {
    repo().join("../shared")
}

fn reference_python() -> PathBuf {
    let out = Command::new("bash").arg(repo().join("scripts/agentspec-venv.sh")).output().expect("run scripts/agentspec-venv.sh");
    assert!(
        out.status.success(),
        "could not create the Agent Spec reference environment (scripts/agentspec-venv.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the script prints the python path").trim())
}

#[test]
fn exports_of_the_valid_corpus_load_in_pyagentspec_and_wayflow() {
    let python = reference_python();
    let valid = shared().join("agentspec/corpus/valid");
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(shared().join("agentspec/corpus/MANIFEST.json")).expect("manifest")).expect("json");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let mut exported = 0;
    for entry in manifest.as_array().expect("list").iter().filter(|e| e["kind"] == "valid") {
        let file = entry["file"].as_str().expect("file");
        let path = valid.join(file);
        let (stem, ext) = file.rsplit_once('.').expect("extension");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.arg("export").arg(&path).arg("--format").arg(if ext == "json" { "json" } else { "yaml" });
        let refs = valid.join(format!("{stem}.refs.{ext}"));
        if refs.is_file() {
            cmd.arg("--refs").arg(&refs);
        }
        let out = cmd.output().expect("run weft export");
        assert!(out.status.success(), "weft export {file} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(out_dir.path().join(file), &out.stdout).expect("write export");
        exported += 1;
    }
    assert!(exported >= 60, "expected the 60 valid documents, exported {exported}");
    let report = out_dir.path().join("report.json");
    let out = Command::new(&python)
        .arg(shared().join("agentspec/tools/check_roundtrip.py"))
        .arg("--json-report")
        .arg(&report)
        .arg(out_dir.path())
        .output()
        .expect("run check_roundtrip.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyagentspec rejects some of Weft's exports:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{exported} passed, 0 failed")), "unexpected checker summary:\n{stdout}");
    // WayFlow must load every export whose original it loads.
    let results: Json = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let mut regressions = Vec::new();
    for entry in manifest.as_array().expect("list").iter().filter(|e| e["kind"] == "valid" && e["wayflow"] == "OK") {
        let file = entry["file"].as_str().expect("file");
        let result = results.as_array().expect("list").iter().find(|r| r["file"].as_str().is_some_and(|f| f.ends_with(file)));
        match result {
            Some(r) if r["wayflow"] == "OK" => {}
            Some(r) => regressions.push(format!("{file}: wayflow={} {}", r["wayflow"], r["wayflow_error"])),
            None => regressions.push(format!("{file}: not in the checker's report")),
        }
    }
    assert!(regressions.is_empty(), "WayFlow loads these originals but not Weft's exports:\n{}", regressions.join("\n"));
}

/// Documents written by the agent builders (issue 15, item 5): the three agent examples of
/// `examples/flows/` (which `crates/weft-exec/tests/agent_examples.rs` checks are the builders'
/// output), and a Swarm in each handoff mode, an agent at the root, a Swarm and a
/// ManagerWorkers in AgentNodes of a flow, an ExtendedAgent with every field the builder sets
/// (an agent and a flow as tools), and a Swarm and a ManagerWorkers with outputs in AgentNodes, written here with
/// the builders. SpecializedAgents (at the root and in an AgentNode) load in pyagentspec; WayFlow
/// does not implement them (AGENTS.md 5) and says so.
#[test]
fn documents_of_the_agent_builders_load_in_pyagentspec_and_wayflow() {
    use weft_flow::builder::{
        AgentBuilder, FlowBuilder, Handoff, Input, LlmConfig, ManagerWorkersBuilder, Output, ServerTool, SpecializedAgentBuilder,
        SwarmBuilder,
    };

    let python = reference_python();
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["swarm_triage.json", "manager_workers.json", "orchestrator_agents.json"] {
        std::fs::copy(repo().join("examples/flows").join(file), dir.path().join(file)).expect("copy the example");
    }
    let llm = LlmConfig::vllm("llm", "http://vllm.internal:8000", "meta-llama/Llama-3.1-8B-Instruct");
    let lookup = ServerTool::new("lookup", vec![Input::string("query")], vec![Output::string("answer")]).with_description("Look it up");
    let front = AgentBuilder::new("front", &llm, "You greet users.").description("Front desk");
    let expert = AgentBuilder::new("expert", &llm, "You answer with your tool.").description("Expert").tool(&lookup);
    let mut written = Vec::new();
    for mode in [Handoff::Never, Handoff::Optional, Handoff::Always] {
        let mut swarm = SwarmBuilder::new(format!("swarm_{}", mode.as_str()), &front);
        swarm.relationship(&front, &expert).relationship(&expert, &front).handoff(mode);
        written.push((format!("swarm_{}.json", mode.as_str()), swarm.build().map(|_| swarm.to_document_string())));
    }
    let typed = AgentBuilder::new("summarizer", &llm, "Summarize {{text}}.")
        .outputs(&[Output::string("summary")])
        .human_in_the_loop(false)
        .tool(&lookup);
    written.push(("agent.json".into(), typed.build().map(|_| typed.to_document_string())));
    let mut swarm = SwarmBuilder::new("desk", &front);
    swarm.relationship(&front, &expert);
    let team = ManagerWorkersBuilder::new("team", &front, &[&expert]);
    let mut flow = FlowBuilder::new("agents_in_a_flow");
    let start = flow.start(&[Input::string("text")]);
    let summarize = flow.agent("summarize", &typed);
    let desk = flow.agent("desk", &swarm);
    let group = flow.agent("team", &team);
    let end = flow.end("end", &[Output::string("summary")]);
    flow.edge(start, summarize);
    flow.edge(summarize, desk);
    flow.edge(desk, group);
    flow.edge(group, end);
    flow.data(start, "text", summarize, "text");
    flow.data(summarize, "summary", end, "summary");
    written.push(("agents_in_a_flow.json".into(), flow.build().map(|_| flow.to_document_string())));
    // An ExtendedAgent: every field the builder sets, an agent and a flow as tools.
    let translator = AgentBuilder::new("translator", &llm, "You translate {{text}}.")
        .description("Translates text to French")
        .inputs(&[Input::string("text").description("The text to translate")])
        .human_in_the_loop(false);
    let mut shout = FlowBuilder::new("shout");
    shout.description("Upper-cases a text");
    let s = shout.start(&[Input::string("text")]);
    let upper = shout.template("upper", "{{ text | upper }}");
    let e = shout.end("end", &[Output::string("loud")]);
    shout.edge(s, upper);
    shout.edge(upper, e);
    shout.data(s, "text", upper, "text");
    shout.data(upper, "output", e, "loud");
    let boss = AgentBuilder::new("boss", &llm, "Delegate.")
        .tool(&lookup)
        .max_iterations(4)
        .initial_message("Hello! What do you need?")
        .can_finish_conversation(true)
        .raise_exceptions(true)
        .strict_output_validation(true)
        .agent_tool(&translator)
        .flow_tool(&shout);
    written.push(("extended_agent.json".into(), boss.build().map(|_| boss.to_document_string())));
    let mut answered = SwarmBuilder::new("answered", &front);
    answered.relationship(&front, &expert).outputs(&[Output::string("answer")]);
    let worker = AgentBuilder::new("worker", &llm, "Summarize {{text}}.")
        .outputs(&[Output::string("summary")])
        .max_iterations(3)
        .human_in_the_loop(false);
    let mut managed = ManagerWorkersBuilder::new("managed", &front, &[&expert]);
    managed.outputs(&[Output::string("verdict")]);
    let mut flow = FlowBuilder::new("extended_in_a_flow");
    let start = flow.start(&[Input::string("text")]);
    let work = flow.agent("work", &worker);
    let desk = flow.agent("desk", &answered);
    let team = flow.agent("team", &managed);
    let end = flow.end("end", &[Output::string("summary"), Output::string("answer"), Output::string("verdict")]);
    flow.edge(start, work);
    flow.edge(work, desk);
    flow.edge(desk, team);
    flow.edge(team, end);
    flow.data(team, "verdict", end, "verdict");
    flow.data(start, "text", work, "text");
    flow.data(work, "summary", end, "summary");
    flow.data(desk, "answer", end, "answer");
    written.push(("extended_in_a_flow.json".into(), flow.build().map(|_| flow.to_document_string())));
    for (file, document) in written {
        let document = document.unwrap_or_else(|d| panic!("{file}: the builder's document does not load in Weft: {d:?}"));
        std::fs::write(dir.path().join(&file), document).expect("write");
    }
    let out = Command::new(&python)
        .arg(shared().join("agentspec/tools/check_roundtrip.py"))
        .arg("--strict-wayflow")
        .arg(dir.path())
        .output()
        .expect("run check_roundtrip.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the reference rejects documents of the agent builders:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("10 passed, 0 failed"), "unexpected checker summary:\n{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS") && l.contains("wayflow=OK")).count(),
        10,
        "WayFlow must load them all:\n{stdout}"
    );

    // SpecializedAgents: pyagentspec loads them; WayFlow refuses them as not implemented.
    let special = tempfile::tempdir().expect("tempdir");
    let quotes = ServerTool::new("quotes", vec![Input::string("symbol")], vec![Output::number("price")]).with_description("A price");
    let analyst = AgentBuilder::new("analyst", &llm, "You analyse {{dataset}}.").tool(&lookup).outputs(&[Output::string("report")]);
    let finance = SpecializedAgentBuilder::new("finance_analyst", &analyst)
        .description("Analyses markets")
        .additional_instructions("Focus on {{market}} markets.")
        .tool(&quotes)
        .human_in_the_loop(false);
    let mut flow = FlowBuilder::new("specialized_in_a_flow");
    let start = flow.start(&[Input::string("dataset"), Input::string("market")]);
    let analyse = flow.agent("analyse", &finance);
    let end = flow.end("end", &[Output::string("report")]);
    flow.edge(start, analyse);
    flow.edge(analyse, end);
    flow.data(start, "dataset", analyse, "dataset");
    flow.data(start, "market", analyse, "market");
    flow.data(analyse, "report", end, "report");
    for (file, document) in [
        ("specialized_agent.json", finance.build().map(|_| finance.to_document_string())),
        ("specialized_in_a_flow.json", flow.build().map(|_| flow.to_document_string())),
    ] {
        let document = document.unwrap_or_else(|d| panic!("{file}: the builder's document does not load in Weft: {d:?}"));
        std::fs::write(special.path().join(file), document).expect("write");
    }
    let out = Command::new(&python)
        .arg(shared().join("agentspec/tools/check_roundtrip.py"))
        .arg(special.path())
        .output()
        .expect("run check_roundtrip.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pyagentspec rejects the SpecializedAgents:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 passed, 0 failed"), "unexpected checker summary:\n{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS") && l.contains("wayflow=UNSUPPORTED")).count(),
        2,
        "WayFlow does not implement SpecializedAgent:\n{stdout}"
    );
}
