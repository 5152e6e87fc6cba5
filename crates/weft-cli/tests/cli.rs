//! The command-line contract: exit codes, the JSON-lines output of `validate`, human
//! diagnostics (snapshots), `--refs`, `--secret`, `--strict`, `graph` and `export`.

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus")
}

/// Runs `weft` in the corpus folder, so file names in the output are short and stable.
fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(corpus())
        .env_remove("WEFT_SECRET_LLM1_API_KEY")
        .output()
        .expect("run weft")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_valid_flow_exits_0() {
    let out = weft(&["validate", "valid/seed_parallel_marketing.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "valid/seed_parallel_marketing.json: valid\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_flows_exit_1_with_every_diagnostic() {
    for file in [
        "invalid/data_edge_unknown_input.json",
        "invalid/unknown_component_type.json",
        "invalid/missing_start_node.json",
        "invalid/retry_policy_bad_delays.json",
        "runtime_invalid/from_branch_not_a_branch.json",
        "invalid/dangling_component_ref.json",
    ] {
        let out = weft(&["validate", file]);
        assert_eq!(code(&out), 1, "{file}");
        let name = file.replace(['/', '.'], "_");
        insta::assert_snapshot!(name, stderr(&out));
    }
}

#[test]
fn json_format_prints_one_line_per_file_and_nothing_else() {
    let out = weft(&[
        "validate",
        "--format",
        "json",
        "valid/p_llm_flow_minimal.json",
        "invalid/property_title_with_space.json",
        "valid/p_llm_flow_minimal.yaml",
    ]);
    assert_eq!(code(&out), 1);
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let lines: Vec<Json> = stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["file"], "valid/p_llm_flow_minimal.json");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[0]["diagnostics"], serde_json::json!([]));
    assert_eq!(lines[1]["valid"], false);
    let diags = lines[1]["diagnostics"].as_array().expect("a list");
    let d = diags.iter().find(|d| d["code"] == "title").expect("a title diagnostic");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "title");
    assert_eq!(d["pointer"], "/$referenced_components/ace182cd-a59e-4ec1-be36-f1635d010fd1/outputs/0/title");
    assert!(d["line"].as_u64().is_some() && d["column"].as_u64().is_some(), "{d}");
    assert_eq!(d["component"]["name"], "generate");
    assert!(d["message"].as_str().is_some_and(|m| m.contains("generated text")));
    assert!(d["hint"].as_str().is_some());
    assert_eq!(lines[2]["valid"], true);
    assert!(out.stderr.is_empty(), "json mode keeps stderr for errors only: {}", stderr(&out));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(code(&weft(&["validate"])), 2);
    assert_eq!(code(&weft(&["frobnicate"])), 2);
    let out = weft(&["validate", "no/such/file.json", "valid/p_llm_flow_minimal.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot read no/such/file.json"), "{}", stderr(&out));
    assert!(stderr(&out).contains("valid/p_llm_flow_minimal.json: valid"), "the other files are still checked: {}", stderr(&out));
    let out = weft(&["validate", "--secret", "novalue", "valid/p_llm_flow_minimal.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--secret"), "{}", stderr(&out));
    let out = weft(&["export", "--agentspec-version", "99.0.0", "valid/p_llm_flow_minimal.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown --agentspec-version"), "{}", stderr(&out));
}

#[test]
fn registries_come_from_refs() {
    let out = weft(&["validate", "valid/p_disaggregated_llm.json"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error[ref_missing]"), "{}", stderr(&out));
    let out = weft(&["validate", "valid/p_disaggregated_llm.json", "--refs", "valid/p_disaggregated_llm.refs.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The export is self-contained: it validates without the registry.
    let out = weft(&["export", "valid/p_disaggregated_llm.json", "--refs", "valid/p_disaggregated_llm.refs.json"]);
    assert_eq!(code(&out), 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let exported = dir.path().join("exported.json");
    std::fs::write(&exported, &out.stdout).expect("write");
    let out = weft(&["validate", exported.to_str().expect("utf-8 path")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn strict_turns_warnings_into_errors() {
    let mut doc: Json =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("valid/p_llm_flow_minimal.json")).expect("read")).expect("json");
    doc["descripton"] = Json::String("typo".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo.json");
    std::fs::write(&file, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let out = weft(&["validate", path]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("warning[unknown_key]") && stderr(&out).contains("did you mean `description`?"), "{}", stderr(&out));
    let out = weft(&["validate", "--strict", path]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error[unknown_key]"), "{}", stderr(&out));
}

#[test]
fn secrets_are_never_exported_as_values() {
    let doc = r#"{"component_type": "OpenAiCompatibleConfig", "id": "llm1", "name": "local", "model_id": "m",
        "url": "http://127.0.0.1:8000", "api_key": {"$component_ref": "llm1.api_key"}, "agentspec_version": "25.4.2"}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("llm.json");
    std::fs::write(&file, doc).expect("write");
    let path = file.to_str().expect("utf-8 path");
    // No secret is needed to validate or export.
    assert_eq!(code(&weft(&["validate", path])), 0);
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["export", path, "--secret", "llm1.api_key=sk-from-flag"])
        .env("WEFT_SECRET_LLM1_API_KEY", "sk-from-env")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!text.contains("sk-from"), "{text}");
    assert!(text.contains("\"$component_ref\": \"llm1.api_key\""), "{text}");
}

#[test]
fn graph_and_export_refuse_invalid_flows() {
    for cmd in ["graph", "export"] {
        let out = weft(&[cmd, "invalid/missing_end_node.json"]);
        assert_eq!(code(&out), 1, "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd} printed on stdout");
        assert!(stderr(&out).contains("error[flow_structure]"), "{}", stderr(&out));
    }
}

#[test]
fn graph_prints_a_mermaid_flowchart() {
    let out = weft(&["graph", "valid/p_branching_agent_language.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let chart = String::from_utf8(out.stdout).expect("utf-8");
    assert!(chart.starts_with("flowchart"), "{chart}");
    assert!(chart.contains("|\"default\"|"), "{chart}");
}

#[test]
fn export_writes_yaml_that_validates() {
    let out = weft(&["export", "--format", "yaml", "valid/w_prompt_template_orchestrator.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("orchestrator.yaml");
    std::fs::write(&file, &out.stdout).expect("write");
    let out = weft(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn non_text_input_is_a_parse_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("garbage.json");
    std::fs::write(&file, [0xff, 0x00, 0xfe, 0x12]).expect("write");
    let out = weft(&["validate", file.to_str().expect("utf-8 path")]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error[parse]") && stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
}
