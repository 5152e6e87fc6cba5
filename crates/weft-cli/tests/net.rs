//! Dead and silent servers, and replay by run (issue 13, items 5 and 6), through the `weft`
//! binary against the testkit server (or a port where nothing listens):
//!
//! - a batch of 800 lines against a dead port ends within the retry window plus 10 s, each line
//!   with one clear error naming the endpoint and the outage;
//! - against a server that accepts connections and closes them at once, the connections made
//!   are counted: a few dozen, not one per line and retry;
//! - a server stopped and restarted on the same port within 3 s loses no line;
//! - a server that takes requests and never answers fails at the idle timeout, or at the call
//!   timeout, with a message naming the one that fired;
//! - a redirect loop is not retried;
//! - a batch whose lines share prompts, recorded at `--concurrency 20`, replays line for line at
//!   `--concurrency 1` and `50`, and a partial recording replays every run it holds whole.

mod common;

use common::{server, stderr, weft};
use serde_json::{Value as Json, json};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weft_testkit::{Fault, MockConfig, MockServer};

/// The default retry policy's window: its delays before jitter, 1 + 2 + 4 + 8 + 8 s.
const WINDOW: Duration = Duration::from_secs(23);

/// The JSON lines of a text.
fn json_lines(text: &[u8]) -> Vec<Json> {
    String::from_utf8_lossy(text).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// An LLM node as a component: `prompt` reads the node's one input `input`, its output is
/// `output`.
fn llm_node(id: &str, prompt: &str, input: &str, output: &str) -> Json {
    json!({"component_type": "LlmNode", "id": id, "name": id,
           "inputs": [{"title": input, "type": "string"}],
           "outputs": [{"title": output, "type": "string"}],
           "prompt_template": prompt,
           "llm_config": {"$component_ref": "llm"}})
}

/// A flow start -> `first` [-> `second`] -> end with one OpenAI-compatible config at `url`
/// (with `retry_policy` when given): `first` answers the question, `second` (when `two`) writes
/// a title for that answer.
fn flow(url: &str, retry_policy: Option<Json>, two: bool) -> String {
    let mut config = json!({"component_type": "OpenAiCompatibleConfig", "id": "llm", "name": "testkit", "model_id": "m", "url": url});
    if let Some(policy) = retry_policy {
        config["retry_policy"] = policy;
    }
    let last = if two { "second" } else { "first" };
    let mut nodes = vec![json!({"$component_ref": "start"}), json!({"$component_ref": "first"})];
    let mut control = vec![json!({"component_type": "ControlFlowEdge", "id": "c1", "name": "c1",
        "from_node": {"$component_ref": "start"}, "to_node": {"$component_ref": "first"}})];
    let mut data = vec![json!({"component_type": "DataFlowEdge", "id": "d1", "name": "d1",
        "source_node": {"$component_ref": "start"}, "source_output": "question",
        "destination_node": {"$component_ref": "first"}, "destination_input": "question"})];
    let mut components = json!({
        "start": {"component_type": "StartNode", "id": "start", "name": "start",
                  "inputs": [{"title": "question", "type": "string"}],
                  "outputs": [{"title": "question", "type": "string"}]},
        "first": llm_node("first", "Answer briefly: {{question}}", "question", "answer"),
        "end": {"component_type": "EndNode", "id": "end", "name": "end",
                "inputs": [{"title": "result", "type": "string"}],
                "outputs": [{"title": "result", "type": "string"}]},
        "llm": config,
    });
    if two {
        components["second"] = llm_node("second", "Write a title for: {{answer}}", "answer", "title");
        nodes.push(json!({"$component_ref": "second"}));
        control.push(json!({"component_type": "ControlFlowEdge", "id": "c2", "name": "c2",
            "from_node": {"$component_ref": "first"}, "to_node": {"$component_ref": "second"}}));
        data.push(json!({"component_type": "DataFlowEdge", "id": "d2", "name": "d2",
            "source_node": {"$component_ref": "first"}, "source_output": "answer",
            "destination_node": {"$component_ref": "second"}, "destination_input": "answer"}));
    }
    nodes.push(json!({"$component_ref": "end"}));
    control.push(json!({"component_type": "ControlFlowEdge", "id": "c3", "name": "c3",
        "from_node": {"$component_ref": last}, "to_node": {"$component_ref": "end"}}));
    data.push(json!({"component_type": "DataFlowEdge", "id": "d3", "name": "d3",
        "source_node": {"$component_ref": last}, "source_output": if two { "title" } else { "answer" },
        "destination_node": {"$component_ref": "end"}, "destination_input": "result"}));
    json!({
        "component_type": "Flow", "id": "flow-net", "name": "net", "agentspec_version": "26.1.2",
        "inputs": [{"title": "question", "type": "string"}],
        "outputs": [{"title": "result", "type": "string"}],
        "start_node": {"$component_ref": "start"},
        "nodes": nodes,
        "control_flow_connections": control,
        "data_flow_connections": data,
        "$referenced_components": components,
    })
    .to_string()
}

/// Writes the flow and a batch of `n` lines whose questions cycle through `distinct` values
/// (so lines share prompts).
fn setup(dir: &Path, flow_text: &str, n: usize, distinct: usize) {
    std::fs::write(dir.join("flow.json"), flow_text).expect("write flow");
    let mut batch = std::fs::File::create(dir.join("batch.jsonl")).expect("batch");
    for i in 0..n {
        writeln!(batch, "{}", json!({"question": format!("question {}", i % distinct)})).expect("write batch");
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Checks a batch's failed lines: every line failed once, with an error naming `endpoint` and
/// what happened to it.
fn check_dead_lines(out: &Output, n: usize, endpoint: &str, said: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), n, "one line per input: {}", stderr(out));
    let mut down = 0;
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i, "{line}");
        let message = line["error"]["message"].as_str().unwrap_or_else(|| panic!("line {i} has no error: {line}"));
        assert!(message.contains(endpoint), "line {i} does not name {endpoint}: {message}");
        assert!(said.iter().any(|word| message.contains(word)), "line {i} says none of {said:?}: {message}");
        assert_eq!(line["error"]["llm"]["kind"], "transient", "{line}");
        if message.contains("has been down for") {
            down += 1;
        }
    }
    // Most lines are failed at once by the breaker, with the outage's duration.
    assert!(down >= n / 2, "{down} of {n} lines say how long the endpoint has been down");
}

#[test]
fn a_batch_against_a_dead_port_fails_every_line_within_the_window_with_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}/v1", dead_port());
    setup(dir.path(), &flow(&url, None, false), 800, 800);
    let t0 = Instant::now();
    let out = weft(dir.path(), &["run", "flow.json", "--batch", "batch.jsonl", "--usage-json", "usage.json"]);
    let took = t0.elapsed();
    check_dead_lines(&out, 800, &url, &["refused"]);
    assert!(took < WINDOW + Duration::from_secs(10), "the batch took {took:?}");
    // Retries (waits between tries) are counted by the usage meter: nowhere near 800 × 5.
    let usage: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("usage.json")).expect("usage")).expect("json");
    let retries = usage["total"]["retries"].as_u64().unwrap_or_else(|| panic!("{usage:#}"));
    assert!(retries < 400, "{retries} retries");
    let message = json_lines(&out.stdout)[799]["error"]["message"].as_str().expect("message").to_owned();
    assert!(message.contains("so calls to it now fail at once instead of each retrying"), "{message}");
    assert!(message.contains("could not connect: check that the server is running"), "{message}");
}

#[test]
fn connections_to_a_server_that_drops_them_are_counted_in_dozens_not_per_line() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    listener.set_nonblocking(true).expect("nonblocking");
    let counter = {
        let (accepted, done) = (Arc::clone(&accepted), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    // Closed at once: the client sees its connection end before an answer.
                    Ok((stream, _)) => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path(), &flow(&url, None, false), 200, 200);
    let t0 = Instant::now();
    let out = weft(dir.path(), &["run", "flow.json", "--batch", "batch.jsonl"]);
    let took = t0.elapsed();
    done.store(true, Ordering::SeqCst);
    counter.join().expect("counter");
    check_dead_lines(&out, 200, &url, &["connection", "down"]);
    assert!(took < WINDOW + Duration::from_secs(10), "the batch took {took:?}");
    let connections = accepted.load(Ordering::SeqCst);
    // 16 lines at once try once each, then one probe per slot of the breaker (a few dozen at
    // most), where each line retrying on its own would make 200 × 6.
    assert!(connections <= 80, "{connections} connections");
}

#[test]
fn a_server_restarted_on_its_port_within_3_seconds_loses_no_line() {
    let config = MockConfig::default().with_latency(Duration::from_millis(20));
    let (rt, first) = server(config.clone());
    let addr: SocketAddr = first.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    setup(dir.path(), &flow(&first.url(), None, false), 300, 300);
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "flow.json", "--batch", "batch.jsonl"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("OPENAI_API_KEY")
        .spawn()
        .expect("spawn weft");
    // Stop the server a third of the way through, then start it again on the same port.
    let t0 = Instant::now();
    while first.stats().requests < 100 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the batch does not progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = first.stats().requests;
    let stopped = Instant::now();
    rt.block_on(first.shutdown());
    std::thread::sleep(Duration::from_millis(2000));
    let second = rt.block_on(MockServer::try_start_on(addr, config)).expect("restart on the same port");
    let down = stopped.elapsed();
    assert!(down < Duration::from_secs(3), "the server was down {down:?}");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 300);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i, "{line}");
        assert!(line["outputs"]["result"].is_string(), "line {i}: {line}");
    }
    // (Requests the first server answered after `before` was read are not counted anywhere, so
    // the two servers' counts are not compared with 300: every line's output above is the proof.)
    assert!(before >= 100 && second.stats().requests > 0, "the restarted server answered the rest");
}

#[test]
fn a_server_that_never_answers_fails_at_the_idle_timeout_naming_it() {
    let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3600))));
    let dir = tempfile::tempdir().expect("tempdir");
    let no_retry = json!({"max_attempts": 0});
    std::fs::write(dir.path().join("flow.json"), flow(&server.url(), Some(no_retry), false)).expect("write");
    let t0 = Instant::now();
    let out = weft(dir.path(), &["run", "flow.json", "--input", "question=hi", "--idle-timeout", "1", "--state", "s.json"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no bytes received for 1 s (the idle timeout)"), "{err}");
    assert!(err.contains("--idle-timeout"), "{err}");
    assert!(err.contains("after 1 attempt (the retry policy allows no retries)"), "{err}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(8), "{took:?}");
    assert_eq!(server.stats().requests, 1);
}

#[test]
fn a_server_that_never_answers_fails_at_the_call_timeout_naming_it_not_the_retry_policy() {
    let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3600))));
    let dir = tempfile::tempdir().expect("tempdir");
    // The default retry policy, an idle timeout longer than the call's.
    std::fs::write(dir.path().join("flow.json"), flow(&server.url(), None, false)).expect("write");
    let t0 = Instant::now();
    let out = weft(dir.path(), &["run", "flow.json", "--input", "question=hi", "--call-timeout", "2", "--state", "s.json"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no answer within the call timeout of 2 s"), "{err}");
    assert!(err.contains("after 1 attempt (no time left for a retry within the call timeout of 2 s)"), "{err}");
    assert!(err.contains("--call-timeout"), "{err}");
    assert!(!err.contains("allows no retries"), "{err}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "{took:?}");
    // The timeouts are stored with the run's limits, for `weft resume`.
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("state")).expect("json");
    assert_eq!(state["options"]["limits"]["call_timeout"], 2.0, "{:#}", state["options"]);
}

#[test]
fn a_redirect_loop_is_not_retried() {
    let (_rt, server) = server(MockConfig::default());
    let to_itself = format!("{}/chat/completions", server.url());
    server.set_config(MockConfig::default().with_random_fault(1.0, Fault::Redirect { status: 307, location: to_itself.clone() }));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.json"), flow(&server.url(), None, false)).expect("write");
    let out = weft(dir.path(), &["run", "flow.json", "--input", "question=hi", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("HTTP 307"), "{err}");
    assert!(err.contains(&format!("the server redirects to {to_itself}")), "{err}");
    assert!(err.contains("after 1 attempt (not retried)"), "{err}");
    assert_eq!(server.stats().requests, 1, "one request, no retry and no redirect followed");
}

/// The outputs of a batch by line, `None` for a failed line.
fn results(out: &Output) -> Vec<Option<Json>> {
    json_lines(&out.stdout).iter().map(|l| l.get("outputs").cloned()).collect()
}

#[test]
fn a_batch_sharing_prompts_recorded_at_concurrency_20_replays_line_for_line_at_1_and_50() {
    // Randomized replies: each call gets its own answer, so a line replayed with another line's
    // answer would show.
    let (_rt, server) = server(MockConfig::default().randomized(7).with_latency(Duration::from_millis(5)));
    let dir = tempfile::tempdir().expect("tempdir");
    // 60 lines, 3 distinct questions: the first call of 20 lines is the same request.
    setup(dir.path(), &flow(&server.url(), None, true), 60, 3);
    let out = weft(dir.path(), &["run", "flow.json", "--batch", "batch.jsonl", "--concurrency", "20", "--record", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recorded = results(&out);
    assert_eq!(recorded.len(), 60);
    assert!(recorded.iter().all(Option::is_some));
    assert_eq!(server.stats().requests, 120);
    let header: Json =
        serde_json::from_str(std::fs::read_to_string(dir.path().join("run.jsonl")).expect("record").lines().next().expect("header"))
            .expect("json");
    assert_eq!(header["version"], 4);

    for concurrency in ["1", "50"] {
        let out = weft(dir.path(), &["run", "flow.json", "--batch", "batch.jsonl", "--concurrency", concurrency, "--replay", "run.jsonl"]);
        assert_eq!(out.status.code(), Some(0), "--concurrency {concurrency}: {}", stderr(&out));
        assert_eq!(results(&out), recorded, "--concurrency {concurrency}: every line replays its own answers");
    }
    assert_eq!(server.stats().requests, 120, "a replay makes no request");

    // A partial recording (the second call of runs 0 to 9 missing, as if the recording had been
    // stopped): every other run replays whole, those ten fail naming their run.
    let text = std::fs::read_to_string(dir.path().join("run.jsonl")).expect("record");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let v: Json = serde_json::from_str(l).expect("json");
            !(v["node_path"] == "net/second" || v["request"]["meta"]["node"] == "second") || v["run"].as_u64().is_none_or(|r| r >= 10)
        })
        .collect();
    assert_eq!(kept.len(), 1 + 120 - 10, "the header and all but ten exchanges");
    std::fs::write(dir.path().join("partial.jsonl"), kept.join("\n") + "\n").expect("write");
    for concurrency in ["1", "50"] {
        let out =
            weft(dir.path(), &["run", "flow.json", "--batch", "batch.jsonl", "--concurrency", concurrency, "--replay", "partial.jsonl"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let lines = json_lines(&out.stdout);
        for (i, (line, want)) in lines.iter().zip(&recorded).enumerate() {
            if i < 10 {
                let message = line["error"]["message"].as_str().unwrap_or_else(|| panic!("line {i}: {line}"));
                assert!(message.contains(&format!("of run {i} (batch index)")), "{message}");
            } else {
                assert_eq!(line.get("outputs"), want.as_ref(), "line {i} (--concurrency {concurrency})");
            }
        }
    }
}

#[test]
fn progress_shows_the_calls_that_have_waited_long() {
    let (_rt, server) = server(MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3600))));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.json"), flow(&server.url(), Some(json!({"max_attempts": 0})), false)).expect("write");
    // The threshold is 30 s; the tests lower it.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "flow.json", "--input", "question=hi", "--idle-timeout", "2.5", "--state", "s.json"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .env_remove("OPENAI_API_KEY")
        .env("WEFT_TEST_SLOW_CALL_MS", "500")
        .output()
        .expect("run weft");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("1 call waiting > 0.5 s on {}", server.url())), "{err}");
    assert!(err.contains("no bytes received for 2.5 s (the idle timeout)"), "{err}");
}
