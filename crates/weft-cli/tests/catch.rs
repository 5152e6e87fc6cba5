//! Catch nodes from the command line, on the corpus documents that have them: a failing Python
//! tool's error is caught and reported; a retry node around the same tool does not catch it.

mod common;

use common::{corpus, stderr, weft};

/// A tools file binding `names` to a Python tool that raises `ValueError("payload <x> is bad")`.
fn failing_tools(dir: &std::path::Path, names: &[&str]) -> String {
    std::fs::write(
        dir.join("fail.py"),
        "import json, sys\nargs = json.load(sys.stdin)\nraise ValueError('payload %s is bad' % (args.get('payload') or args.get('task')))\n",
    )
    .expect("write the tool");
    let tools: String = names.iter().map(|n| format!("[tools.{n}]\ncommand = [\"python3\", \"fail.py\"]\n")).collect();
    std::fs::write(dir.join("tools.toml"), tools).expect("write the tools file");
    dir.join("tools.toml").to_string_lossy().into_owned()
}

#[test]
fn a_catch_exception_node_reports_the_caught_error_and_takes_its_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = failing_tools(dir.path(), &["flaky_call"]);
    let doc = corpus("p_catch_exception_node.json");
    let out = weft(dir.path(), &["run", &doc, "--llm", "simulated", "--tools", &tools, "--input", "payload=x42"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}", "the flow declares no outputs");
    assert!(err.contains("[guarded_call] caught an error, taking branch caught_exception_branch"), "{err}");
    // The OutputMessageNode on the caught branch posts caught_exception_info, which holds the
    // tool's own words.
    assert!(err.contains("[report_failure] AGENT: Call failed: ToolNode \"flaky_subflow_tool\""), "{err}");
    assert!(err.contains("ValueError: payload x42 is bad"), "{err}");
}

#[test]
fn wayflows_exported_control_nodes_catch_in_the_catch_node_and_not_in_the_retry_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = failing_tools(dir.path(), &["try_once"]);
    // The choice node picks the catch node first ("fast"), then the retry node ("careful").
    std::fs::write(dir.path().join("script.json"), r#"{"pick_mode": ["fast", "careful"]}"#).expect("write the script");
    let doc = corpus("w_plugin_control_nodes.json");
    let out = weft(
        dir.path(),
        &[
            "run",
            &doc,
            "--llm",
            "simulated?script=script.json",
            "--tools",
            &tools,
            "--input",
            "greeting=hi",
            "--answer",
            "first",
            "--answer",
            "second",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the retry node lets the error through: {err}");
    assert!(err.contains("[run_once] caught an error, taking branch default_exception_branch"), "{err}");
    assert!(err.contains("ValueError: payload first is bad"), "{err}");
    let last = err.lines().rfind(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(last.contains("ToolNode \"attempt\": tool \"try_once\" failed"), "{err}");
    assert!(err.contains("ValueError: payload second is bad"), "{err}");
}
