//! Nothing lost: a run stopped by SIGTERM or killed outright (`kill -9`) keeps its work in its
//! state file (the final state, or the last checkpoint), `weft resume` makes only what is
//! missing, and one process at a time runs a state file. Real child `weft` processes against
//! the testkit server, which counts the requests.

#![cfg(unix)]

mod common;

use common::{fixture, server, signal, stderr, wait_until, weft, weft_command};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::time::Duration;
use weft_testkit::MockConfig;

/// The fan-out fixture with `workers` calls at once, written into `dir` as `flow.json`.
fn fan_out(dir: &Path, workers: u64) {
    let mut flow: Json = serde_json::from_str(&std::fs::read_to_string(fixture("fan_out.json")).expect("fixture")).expect("json");
    let map = flow["$referenced_components"]["map"].as_object_mut().expect("the map node");
    map.insert("max_workers".into(), json!(workers));
    std::fs::write(dir.join("flow.json"), flow.to_string()).expect("write");
}

fn items(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    format!("items={}", json!(items))
}

fn llm(url: &str) -> String {
    format!("openai-compatible={url},model=m")
}

/// The outputs of a finished run: one answer per item.
fn check_outputs(out: &std::process::Output, n: usize) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let value: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    let ys = value["ys"].as_array().expect("ys");
    assert_eq!(ys.len(), n, "every item's output");
    assert!(ys.iter().all(|y| y == "ok"), "{value}");
}

/// SIGTERM after at least 200 completed calls of a 600-item fan-out (32 at once): exit 143, the
/// state written; `weft resume` makes the rest, and only the calls in flight are made twice.
#[test]
fn sigterm_mid_fan_out_then_resume_repeats_at_most_the_calls_in_flight() {
    const N: usize = 600;
    const WORKERS: u64 = 32;
    let (_rt, server) = server(MockConfig::default().with_text("ok").with_latency(Duration::from_millis(50)));
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), WORKERS);
    let llm = llm(&server.url());
    let child = weft_command(dir.path(), &["run", "flow.json", "--llm", &llm, "--input", &items(N), "--state", "s.json"])
        .spawn()
        .expect("spawn weft");
    wait_until("200 completed calls", Duration::from_secs(60), || server.stats().completions >= 200);
    signal(child.id(), "TERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted (SIGTERM): run state written to s.json"), "{}", stderr(&out));
    let first = server.stats().requests;
    assert!(first < N as u64, "stopped before the end ({first} requests)");

    let out = weft(dir.path(), &["resume", "s.json"]);
    check_outputs(&out, N);
    let repeated = server.stats().requests - N as u64;
    assert!(repeated <= WORKERS, "{repeated} calls were made twice; at most the {WORKERS} in flight may be");
}

/// `kill -9` after the first checkpoint (every 100 calls): the checkpoint stands, and a resume
/// repeats at most 100 calls plus those in flight.
#[test]
fn kill_9_after_a_checkpoint_then_resume_repeats_at_most_100_calls_and_those_in_flight() {
    const N: usize = 600;
    const WORKERS: u64 = 32;
    let (_rt, server) = server(MockConfig::default().with_text("ok").with_latency(Duration::from_millis(50)));
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), WORKERS);
    let llm = llm(&server.url());
    let args = ["run", "flow.json", "--llm", &llm, "--input", &items(N), "--state", "s.json", "--checkpoint-secs", "3600"];
    let mut child = weft_command(dir.path(), &args).spawn().expect("spawn weft");
    let state = dir.path().join("s.json");
    wait_until("a checkpoint and 250 completed calls", Duration::from_secs(60), || state.exists() && server.stats().completions >= 250);
    signal(child.id(), "KILL");
    let _ = child.wait();
    let first = server.stats().requests;
    assert!(first < N as u64, "killed before the end ({first} requests)");

    let out = weft(dir.path(), &["resume", "s.json"]);
    check_outputs(&out, N);
    let repeated = server.stats().requests - N as u64;
    assert!(repeated <= 100 + WORKERS, "{repeated} calls were made twice; at most 100 and the {WORKERS} in flight may be");
}

/// A run that finishes leaves no checkpoint behind: the state file it created is removed.
#[test]
fn a_finished_run_removes_the_checkpoint_it_wrote() {
    let (_rt, server) = server(MockConfig::default().with_text("ok").with_latency(Duration::from_millis(5)));
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), 4);
    let llm = llm(&server.url());
    let out = weft(dir.path(), &["run", "flow.json", "--llm", &llm, "--input", &items(40), "--state", "s.json", "--checkpoint-calls", "5"]);
    check_outputs(&out, 40);
    assert!(!dir.path().join("s.json").exists(), "the checkpoint was removed");
}

/// Two `weft resume` of one state file at once: the second is refused (exit 2), naming the
/// first one's PID; the first finishes.
#[test]
fn a_second_resume_of_a_state_in_use_is_refused_naming_the_holder() {
    let (_rt, server) = server(MockConfig::default().with_text("ok").with_latency(Duration::from_millis(100)));
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), 2);
    let llm = llm(&server.url());
    let child = weft_command(dir.path(), &["run", "flow.json", "--llm", &llm, "--input", &items(40), "--state", "s.json"])
        .spawn()
        .expect("spawn weft");
    wait_until("4 completed calls", Duration::from_secs(30), || server.stats().completions >= 4);
    signal(child.id(), "INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));

    let first = weft_command(dir.path(), &["resume", "s.json"]).spawn().expect("spawn the first resume");
    let lock = dir.path().join(".s.json.lock");
    let pid = first.id().to_string();
    wait_until("the first resume to hold the lock", Duration::from_secs(30), || {
        std::fs::read_to_string(&lock).is_ok_and(|held| held == pid)
    });
    let second = weft(dir.path(), &["resume", "s.json"]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!(
            "the state file s.json is in use by weft process {pid}, which is running or resuming it; wait for it to end (or stop it), then try again"
        )),
        "{}",
        stderr(&second)
    );
    check_outputs(&first.wait_with_output().expect("wait"), 40);

    // Finished: a later resume is refused, saying how to start again.
    let again = weft(dir.path(), &["resume", "s.json"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("already finished"), "{}", stderr(&again));
}

/// A batch of 400 lines (3 calls each, 16 lines at once) stopped by `signal` after at least 200
/// calls (for `KILL`: after its first checkpoint), then resumed: every line is printed exactly
/// once across both outputs, each in input order, and at most `repeat` calls are made twice.
fn batch_stopped_then_resumed(signal_name: &str, code: Option<i32>, repeat: u64) {
    const LINES: usize = 400;
    const CALLS: u64 = 3 * LINES as u64;
    let (_rt, server) = server(MockConfig::default().with_text("ok").with_latency(Duration::from_millis(30)));
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), 4);
    let lines: String =
        (0..LINES).map(|i| format!("{}\n", json!({"items": [format!("{i}a"), format!("{i}b"), format!("{i}c")]}))).collect();
    std::fs::write(dir.path().join("in.jsonl"), lines).expect("write");
    let llm = llm(&server.url());
    let args = ["run", "flow.json", "--llm", &llm, "--batch", "in.jsonl", "--concurrency", "16", "--checkpoint-secs", "3600"];
    let child = weft_command(dir.path(), &args).spawn().expect("spawn weft");
    let state = dir.path().join("flow.batch.json");
    wait_until("200 completed calls", Duration::from_secs(60), || server.stats().completions >= 200 && state.exists());
    signal(child.id(), signal_name);
    let first = child.wait_with_output().expect("wait");
    assert_eq!(first.status.code(), code, "{}", stderr(&first));
    if code.is_some() {
        assert!(stderr(&first).contains("batch state written to flow.batch.json"), "{}", stderr(&first));
        assert!(stderr(&first).contains("continue with: weft resume flow.batch.json"), "{}", stderr(&first));
    }
    assert!(server.stats().requests < CALLS, "stopped before the end");

    let second = weft(dir.path(), &["resume", "flow.batch.json"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let mut seen = vec![0; LINES];
    for out in [&first, &second] {
        let indexes: Vec<usize> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let result: Json = serde_json::from_str(l).expect("a JSON line");
                assert_eq!(result["outputs"]["ys"], json!(["ok", "ok", "ok"]), "{result}");
                result["index"].as_u64().expect("index") as usize
            })
            .collect();
        assert!(indexes.is_sorted(), "input order within each output: {indexes:?}");
        indexes.iter().for_each(|&i| seen[i] += 1);
    }
    let wrong: Vec<(usize, i32)> = seen.iter().copied().enumerate().filter(|&(_, n)| n != 1).collect();
    assert!(wrong.is_empty(), "every line exactly once across both outputs; (index, times): {wrong:?}");
    let repeated = server.stats().requests - CALLS;
    assert!(repeated <= repeat, "{repeated} calls were made twice; at most {repeat} may be");
    let stored: Json = serde_json::from_str(&std::fs::read_to_string(&state).expect("the batch state")).expect("json");
    assert_eq!(stored["finished"], true, "the resumed batch finished: its state file says so");
    let third = weft(dir.path(), &["resume", "flow.batch.json"]);
    assert_eq!(third.status.code(), Some(1), "{}", stderr(&third));
    assert!(
        stderr(&third).contains(
            "the batch in flow.batch.json already finished (every line was printed), so there is nothing to resume; start a new batch with `weft run "
        ),
        "{}",
        stderr(&third)
    );
}

#[test]
fn ctrl_c_mid_batch_then_resume_prints_every_line_once() {
    // At most the calls in flight: 16 lines, 3 calls each.
    batch_stopped_then_resumed("INT", Some(130), 48);
}

#[test]
fn sigterm_mid_batch_then_resume_prints_every_line_once() {
    batch_stopped_then_resumed("TERM", Some(143), 48);
}

#[test]
fn kill_9_mid_batch_then_resume_prints_every_line_once() {
    // At most the 100 calls between checkpoints and those in flight.
    batch_stopped_then_resumed("KILL", None, 100 + 48);
}

/// A 300-item fan-out whose server starts failing every call after 100 answers fails (exit 1)
/// with its state stored; resumed once the server is back, it finishes and no call that had
/// been answered is made again.
#[test]
fn a_fan_out_failed_by_a_server_that_went_away_resumes_without_repeating_a_finished_call() {
    const N: usize = 300;
    let ok = || MockConfig::default().with_text("ok").with_latency(Duration::from_millis(20));
    let (_rt, server) = server(ok());
    let dir = tempfile::tempdir().expect("tempdir");
    fan_out(dir.path(), 16);
    let llm = llm(&server.url());
    let child = weft_command(dir.path(), &["run", "flow.json", "--llm", &llm, "--input", &items(N), "--state", "s.json"])
        .spawn()
        .expect("spawn weft");
    wait_until("100 answered calls", Duration::from_secs(60), || server.stats().completions >= 100);
    server.set_config(ok().with_random_fault(1.0, weft_testkit::Fault::ServerError));
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("`weft resume` tries what failed again"), "{}", stderr(&out));
    let answered = server.stats().completions;
    assert!(answered < N as u64, "the run failed before the end ({answered} answers)");

    server.set_config(ok());
    let out = weft(dir.path(), &["resume", "s.json"]);
    check_outputs(&out, N);
    assert_eq!(server.stats().completions, N as u64, "every item answered once: no answered call was made again");
}
