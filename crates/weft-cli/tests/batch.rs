//! `weft run --batch`, Ctrl-C in the middle of a fan-out then `weft resume` in a new process,
//! and the limit options.

mod common;

use common::fixture;
use serde_json::{Value as Json, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft")).args(args).current_dir(dir).stdin(Stdio::null()).output().expect("run weft")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_string_lossy().into_owned()
}

fn events(path: &Path) -> Vec<Json> {
    // The file is written while the run goes: its last line may be incomplete.
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn count(events: &[Json], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

#[test]
fn a_batch_writes_one_line_per_input_in_order_and_a_bad_line_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lines = String::new();
    for i in 0..12 {
        // Later lines have fewer items, so they finish first.
        let items: Vec<String> = (0..(12 - i)).map(|k| format!("l{i}k{k}")).collect();
        lines.push_str(&json!({ "items": items }).to_string());
        lines.push('\n');
        if i == 5 {
            lines.push_str("{\"items\": oops}\n\n");
        }
    }
    let batch = write(dir.path(), "in.jsonl", &lines);
    let out =
        weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated?latency_ms=5", "--batch", &batch, "--concurrency", "4"]);
    assert_eq!(out.status.code(), Some(1), "a failed line makes the exit code 1: {}", stderr(&out));
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(results.len(), 13);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "input order");
        // The 1-based physical line: the bad line is line 7, then a blank line 8.
        let line = if i < 6 {
            i + 1
        } else if i == 6 {
            7
        } else {
            i + 2
        };
        assert_eq!(r["line"], line, "{r}");
        if i != 6 {
            let id = r["run_id"].as_str().expect("a run id");
            assert_eq!((id.len(), &id[14..15]), (36, "7"), "a UUID v7: {id}");
        }
    }
    assert_eq!(results[0]["outputs"]["ys"].as_array().map(Vec::len), Some(12));
    assert_eq!(results[0]["outputs"]["ys"][11], "Simulated reply to \"Work on l0k11\"");
    assert_eq!(results[12]["outputs"]["ys"], json!(["Simulated reply to \"Work on l11k0\""]));
    assert_eq!(results[6]["run_id"], Json::Null, "no run started for a line that is not inputs");
    assert_eq!(results[6]["error"]["kind"], "bad_input");
    assert_eq!(results[6]["error"]["node"], Json::Null);
    let error = results[6]["error"]["message"].as_str().expect("line 7 failed");
    assert!(
        error.ends_with("in.jsonl line 7: not valid JSON (expected value at line 1 column 11); write one JSON object of inputs per line"),
        "{error}"
    );
    let err = stderr(&out);
    assert!(err.contains("batch: 13/13 done · 1 failed · 0 in flight"), "{err}");
    assert!(err.contains("batch: 13 runs in "), "{err}");
    assert!(err.contains(": 12 finished, 1 failed"), "{err}");
}

#[test]
fn batch_inputs_take_defaults_from_input_and_a_failed_run_names_its_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = write(dir.path(), "in.jsonl", "{}\n{\"items\": [\"own\"]}\n{\"items\": 3}\n");
    let out =
        weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated", "--batch", &batch, "--input", "items=[\"shared\"]"]);
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(results[0]["outputs"]["ys"], json!(["Simulated reply to \"Work on shared\""]));
    assert_eq!(results[1]["outputs"]["ys"], json!(["Simulated reply to \"Work on own\""]));
    assert_eq!(
        results[2]["error"],
        json!({"kind": "bad_input", "node": null, "message": "input \"items\" of flow \"fan_out\" must be array<string>: 3 is not of type \"array\""})
    );
    assert_eq!(results[2]["line"], 3);
}

#[test]
fn limit_options_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated", "--rps", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--rps takes a number of requests per second from 0.001 to 1000000"), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated", "--max-in-flight", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_low_in_flight_limit_holds_calls_back_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = weft(
        dir.path(),
        &[
            "run",
            &fixture("fan_out.json"),
            "--llm",
            "simulated?latency_ms=20",
            "--max-in-flight",
            "1",
            "--input",
            "items=[\"a\",\"b\",\"c\"]",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("LLM calls to simulated are held back: 1 in flight is its limit"), "{}", stderr(&out));
}

#[test]
fn a_node_timeout_stops_a_slow_fan_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let items: Vec<String> = (0..16).map(|i| format!("i{i}")).collect();
    let input = format!("items={}", json!(items));
    let out = weft(
        dir.path(),
        &["run", &fixture("fan_out.json"), "--llm", "simulated?latency_ms=100", "--node-timeout", "0.25", "--input", &input],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error: ExtendedParallelMapNode \"workers\": did not finish within the node timeout of 250 ms"),
        "{}",
        stderr(&out)
    );
}

/// Ctrl-C during a 16-item fan-out (4 at a time, 150 ms per call) after the first wave: the
/// state keeps the finished items, and `weft resume` in a new process makes only the rest.
#[cfg(unix)]
/// Stops a fan-out with `signal` after its first answers, then resumes it in a new process.
fn a_signal_in_a_fan_out_stores_the_run_and_resume_makes_only_the_missing_calls(signal: &str, code: i32, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let items: Vec<String> = (0..16).map(|i| format!("i{i}")).collect();
    let input = format!("items={}", json!(items));
    let events_path = dir.path().join("first.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", &fixture("fan_out.json"), "--llm", "simulated?latency_ms=150", "--input", &input, "--events"])
        .arg(&events_path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    // Wait for the first wave of answers, then interrupt.
    let t0 = Instant::now();
    while count(&events(&events_path), "llm_response") < 4 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no answers came");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(&format!("interrupted ({what}): run state written to fan_out.state.json")), "{err}");
    assert!(err.contains("continue with: weft resume fan_out.state.json"), "{err}");

    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("fan_out.state.json")).expect("state")).expect("json");
    let frames = state["state"]["frames"].as_object().expect("frames");
    let done = frames.values().find_map(|f| f["position"]["done"].as_array().map(Vec::len)).expect("the map node's progress");
    assert!((4..16).contains(&done), "{done} items were done");

    let resumed_events = dir.path().join("second.jsonl");
    let resumed_events = resumed_events.to_string_lossy().into_owned();
    let out = weft(dir.path(), &["resume", "fan_out.state.json", "--events", &resumed_events]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    let expected: Vec<String> = items.iter().map(|i| format!("Simulated reply to \"Work on {i}\"")).collect();
    assert_eq!(value["ys"], json!(expected));
    let made = count(&events(Path::new(&resumed_events)), "llm_request");
    assert_eq!(made, 16 - done, "the resumed run made only the calls of the items not finished");
    let _ = std::io::stderr().flush();
}

#[test]
fn ctrl_c_in_a_fan_out_stores_the_run_and_resume_makes_only_the_missing_calls() {
    a_signal_in_a_fan_out_stores_the_run_and_resume_makes_only_the_missing_calls("INT", 130, "Ctrl-C");
}

#[test]
fn sigterm_in_a_fan_out_stores_the_run_exit_143_and_resume_makes_only_the_missing_calls() {
    a_signal_in_a_fan_out_stores_the_run_and_resume_makes_only_the_missing_calls("TERM", 143, "SIGTERM");
}

#[test]
fn sighup_in_a_fan_out_stores_the_run_exit_129_and_resume_makes_only_the_missing_calls() {
    a_signal_in_a_fan_out_stores_the_run_and_resume_makes_only_the_missing_calls("HUP", 129, "SIGHUP");
}

#[test]
fn batch_events_split_by_run_id_give_one_group_per_line_with_contiguous_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: String = (0..6).map(|i| format!("{}\n", json!({"items": [format!("a{i}"), format!("b{i}"), format!("c{i}")]}))).collect();
    let batch = write(dir.path(), "in.jsonl", &lines);
    let events_path = dir.path().join("events.jsonl");
    let events_arg = events_path.to_string_lossy().into_owned();
    let out = weft(
        dir.path(),
        &[
            "run",
            &fixture("fan_out.json"),
            "--llm",
            "simulated?latency_ms=5",
            "--batch",
            &batch,
            "--concurrency",
            "3",
            "--events",
            &events_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let all = events(&events_path);
    let mut groups: std::collections::BTreeMap<String, Vec<&Json>> = std::collections::BTreeMap::new();
    for e in &all {
        assert_eq!(e["v"], 1, "{e}");
        assert!(e["ts_ms"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "{e}");
        groups.entry(e["run_id"].as_str().expect("run_id").to_owned()).or_default().push(e);
    }
    assert_eq!(groups.len(), 6, "one group per input line");
    for r in &results {
        let group = &groups[r["run_id"].as_str().expect("run id")];
        let seqs: Vec<u64> = group.iter().map(|e| e["seq"].as_u64().expect("seq")).collect();
        assert_eq!(seqs, (1..=group.len() as u64).collect::<Vec<_>>(), "contiguous seq for line {}", r["line"]);
        assert!(group.iter().all(|e| e["index"] == r["index"]), "every event of the run carries its index");
        assert_eq!(group[0]["event"], "run_started");
        assert_eq!(group.last().expect("events")["event"], "run_finished");
        // Item frames are named by their path.
        assert!(group.iter().any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("[2]"))), "{group:?}");
    }
}

#[test]
fn a_batch_file_with_a_utf8_byte_order_mark_reads_its_first_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = write(dir.path(), "in.jsonl", "\u{feff}{\"items\": [\"a\"]}\n{\"items\": [\"b\"]}\n");
    let out = weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated", "--batch", &batch]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(results[0]["outputs"]["ys"], json!(["Simulated reply to \"Work on a\""]));
    assert_eq!(results[0]["line"], 1);
}

#[test]
fn output_files_that_cannot_be_written_are_refused_before_the_first_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events_path = dir.path().join("events.jsonl");
    let events_arg = events_path.to_string_lossy().into_owned();
    let input = "items=[\"a\"]";
    // The state file in a folder that does not exist.
    let out = weft(
        dir.path(),
        &["run", &fixture("fan_out.json"), "--llm", "simulated", "--input", input, "--state", "missing/s.json", "--events", &events_arg],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write the state file (--state) missing/s.json: the folder missing does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&events(&events_path), "llm_request"), 0, "no call was made");
    // The usage file likewise.
    let out =
        weft(dir.path(), &["run", &fixture("fan_out.json"), "--llm", "simulated", "--input", input, "--usage-json", "nowhere/u.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write the usage file (--usage-json) nowhere/u.json"), "{}", stderr(&out));
}
