//! State files of format 1, written by the `weft` of commit ecb1376 (the fixtures in
//! `crates/weft-exec/tests/fixtures/state-v1`, see their README), still resume: each to the
//! outputs of the same flow run uninterrupted. And a state file of a newer format is refused,
//! naming both versions.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly")]

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-exec/tests/fixtures/state-v1")
}

/// A copy of a case's folder with `${FIXTURE_DIR}` in its state file replaced by the copy's path.
fn case(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let state = to.join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let folder = serde_json::to_string(&to.to_string_lossy()).unwrap();
    std::fs::write(&state, text.replace("${FIXTURE_DIR}", folder.trim_matches('"'))).unwrap();
    to
}

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).current_dir(dir).stdin(Stdio::null()).output().expect("run weft")
}

fn json_file(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resumes_to_expected(name: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let case = case(dir.path(), name);
    let state = case.join("state.json");
    let old: Json = json_file(&state);
    assert_eq!(old["weft_state"], 1, "a format 1 fixture");
    assert_eq!(old["state"]["format"], 1);
    let state_arg = state.to_string_lossy().into_owned();
    let mut args = vec!["resume", state_arg.as_str()];
    args.extend_from_slice(extra);
    let out = weft(dir.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs on stdout");
    assert_eq!(outputs, json_file(&case.join("expected.json")), "{name}: {stderr}");
}

#[test]
fn a_format_1_state_waiting_for_input_resumes_to_the_uninterrupted_outputs() {
    let answers: Vec<String> = serde_json::from_value(json_file(&fixtures().join("input_wait/answers.json"))).unwrap();
    resumes_to_expected("input_wait", &["--answer", &answers[0]]);
}

#[test]
fn a_format_1_state_interrupted_mid_call_resumes_to_the_uninterrupted_outputs() {
    // The stored `--llm` has 2 s of latency; the override keeps the same (simulated) answers.
    resumes_to_expected("guardrails_mid_call", &["--llm", "simulated"]);
}

#[test]
fn a_format_1_state_interrupted_mid_fan_out_resumes_to_the_uninterrupted_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let script = case(dir.path(), "fanout_mid_flight").join("replies.json");
    let llm = format!("simulated?script={}", script.display());
    resumes_to_expected("fanout_mid_flight", &["--llm", &llm]);
}

#[test]
fn a_state_file_of_a_newer_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(dir.path(), "input_wait");
    let state = case.join("state.json");
    let mut file = json_file(&state);
    file["weft_state"] = 7.into();
    std::fs::write(&state, file.to_string()).unwrap();
    let out = weft(dir.path(), &["resume", &state.to_string_lossy(), "--answer", "x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the run state has format 7, this weft reads formats up to 2"), "{stderr}");
    assert!(stderr.contains("state.json"), "names the file: {stderr}");
}
