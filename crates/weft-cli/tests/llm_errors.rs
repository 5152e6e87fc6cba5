//! LLM errors as data through the `weft` binary (issue 12): a 429, a 401, a 403, a 400
//! `context_length_exceeded`, a 404 model and a timeout from the testkit server each give the
//! right kind, status, provider code and request id in the `run_failed` record of `--events`
//! (with its run id and sequence number), in the failed run's state file, and in the failed
//! line of a `--batch` (whose other line finishes).
//!
//! The flow's LLM config allows one retry with a 1 ms delay (and a 300 ms request timeout for
//! the timeout case), so nothing waits.

mod common;

use common::server;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use weft_exec::persist::StateFile;
use weft_testkit::{Fault, MockConfig};

#[path = "../../weft-exec/tests/support/llm_error_flow.rs"]
mod llm_error_flow;
use llm_error_flow::{CONFIG_ID, FLOW_NAME, NODE_ID, NODE_NAME, document};

fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run weft")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON lines of a file.
fn lines(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// What the error of a case must say.
#[derive(Clone, Copy)]
struct Expect {
    kind: &'static str,
    status: Option<u16>,
    provider_type: Option<&'static str>,
    code: Option<&'static str>,
    request_id: Option<&'static str>,
}

/// Checks an error object (`{"kind", "node", "message", "llm"}`) of the flow's LLM node.
fn check_error(error: &Json, expect: Expect) {
    assert_eq!(error["kind"], "llm", "{error:#}");
    assert_eq!(error["node"], json!({"path": FLOW_NAME, "id": NODE_ID, "name": NODE_NAME}), "{error:#}");
    assert!(error["message"].as_str().expect("message").contains(NODE_NAME), "{error:#}");
    let llm = &error["llm"];
    assert_eq!(llm["kind"], expect.kind, "{error:#}");
    // Absent fields are left out, so indexing them gives null.
    assert_eq!(llm["status"], expect.status.map_or(Json::Null, Json::from), "{error:#}");
    assert_eq!(llm["provider_type"], expect.provider_type.map_or(Json::Null, Json::from), "{error:#}");
    assert_eq!(llm["provider_code"], expect.code.map_or(Json::Null, Json::from), "{error:#}");
    assert_eq!(llm["request_id"], expect.request_id.map_or(Json::Null, Json::from), "{error:#}");
    let message = llm["message"].as_str().expect("llm.message");
    if let Some(id) = expect.request_id {
        assert!(message.contains(id), "{error:#}");
    }
}

/// One run of the flow against `config`'s server with `--events` and `--state`: exit 1, the
/// events of one run numbered 1, 2, 3... ending with `run_failed` carrying the expected error,
/// and the same error in the state file. `args` are added to the command.
fn check_events(config: MockConfig, model: &str, timeout: Option<f64>, args: &[&str], expect: Expect) -> Json {
    let (_rt, server) = server(config);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.json"), document(&server.url(), model, timeout)).expect("write");
    let mut all = vec!["run", "flow.json", "--input", "question=What is the capital of France?"];
    all.extend(["--events", "events.jsonl", "--state", "failed.state.json"]);
    all.extend(args);
    let t0 = Instant::now();
    let out = weft(dir.path(), &all);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));

    let events = lines(&dir.path().join("events.jsonl"));
    let run_id = events[0]["run_id"].as_str().expect("run_id").to_owned();
    assert!(!run_id.is_empty());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["v"], 1, "{e}");
        assert_eq!(e["run_id"], run_id.as_str(), "{e}");
        assert_eq!(e["seq"], i as u64 + 1, "{e}");
        assert!(e.get("index").is_none(), "no index outside a batch: {e}");
    }
    let failed: Vec<&Json> = events.iter().filter(|e| e["event"] == "run_failed").collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    let last = events.last().expect("events");
    assert_eq!(last["event"], "run_failed", "the last event: {last}");
    assert_eq!(last["path"], FLOW_NAME, "{last}");
    let error = &last["error"];
    check_error(error, expect);

    // The state file the failed run leaves keeps the same error (read as weft reads it: long
    // strings are stored once and referenced).
    let text = std::fs::read_to_string(dir.path().join("failed.state.json")).expect("state file");
    let file = StateFile::from_json(serde_json::from_str(&text).expect("state json")).expect("a state file");
    let outcome = serde_json::to_value(&file.state.outcome).expect("outcome");
    assert_eq!(outcome["status"], "failed", "{outcome:#}");
    assert_eq!(&outcome["error"], error, "the state's error is the event's");

    // stderr says what the event says.
    assert!(err.contains(error["message"].as_str().expect("message")), "{err}\n{error:#}");
    error.clone()
}

/// A two-line batch, one at a time, against `config`'s server, which fails the first line's
/// call (first attempt and retry) and answers the second: exit 1, the first line's error as
/// expected, the second line's outputs, and the `run_failed` event of line 0 (with its index)
/// carrying the same error as the batch line.
fn check_batch(config: MockConfig, timeout: Option<f64>, expect: Expect) {
    let (_rt, server) = server(config.with_text("Paris."));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.json"), document(&server.url(), "m", timeout)).expect("write");
    std::fs::write(dir.path().join("in.jsonl"), "{\"question\": \"first\"}\n{\"question\": \"second\"}\n").expect("write");
    let t0 = Instant::now();
    let out = weft(dir.path(), &["run", "flow.json", "--batch", "in.jsonl", "--concurrency", "1", "--events", "events.jsonl"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 finished, 1 failed"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<Json> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(results.len(), 2, "{stdout}");

    let failed = &results[0];
    assert_eq!(failed["index"], 0, "{failed}");
    assert_eq!(failed["line"], 1, "{failed}");
    assert!(failed.get("outputs").is_none(), "{failed}");
    let run_id = failed["run_id"].as_str().expect("run_id");
    check_error(&failed["error"], expect);

    let ok = &results[1];
    assert_eq!(ok["index"], 1, "{ok}");
    assert_eq!(ok["line"], 2, "{ok}");
    assert!(ok.get("error").is_none(), "{ok}");
    assert_eq!(ok["outputs"], json!({"answer": "Paris."}), "{ok}");

    let events = lines(&dir.path().join("events.jsonl"));
    let failures: Vec<&Json> = events.iter().filter(|e| e["event"] == "run_failed").collect();
    assert_eq!(failures.len(), 1, "{events:#?}");
    let record = failures[0];
    assert_eq!(record["index"], 0, "{record}");
    assert_eq!(record["run_id"], run_id, "{record}");
    assert_eq!(record["error"], failed["error"], "the event's error is the batch line's");
    let seqs: Vec<u64> = events.iter().filter(|e| e["run_id"] == run_id).map(|e| e["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{events:#?}");
    assert_eq!(seqs.last(), record["seq"].as_u64().as_ref(), "run_failed is the run's last event");
}

/// Both attempts of the first line's call get `fault`.
fn first_call_fails(fault: Fault) -> MockConfig {
    MockConfig::default().with_fault(0, fault.clone()).with_fault(1, fault)
}

const RATE_LIMITED: Expect = Expect {
    kind: "rate_limited",
    status: Some(429),
    provider_type: Some("requests"),
    code: Some("rate_limit_exceeded"),
    // The last attempt's.
    request_id: Some("req_000001"),
};

#[test]
fn a_429_past_its_retry_is_rate_limited() {
    let error = check_events(MockConfig::default().with_random_fault(1.0, Fault::rate_limit(0.0)), "m", None, &[], RATE_LIMITED);
    assert!(error["llm"]["message"].as_str().expect("message").contains("after 2 attempts"), "{error:#}");
    check_batch(first_call_fails(Fault::rate_limit(0.0)), None, RATE_LIMITED);
}

#[test]
fn a_401_is_an_authentication_error() {
    const WRONG: &str = "sk-wrong-key-0123456789abcdef";
    let expect = Expect {
        kind: "authentication",
        status: Some(401),
        provider_type: Some("invalid_request_error"),
        code: Some("invalid_api_key"),
        request_id: Some("req_000000"),
    };
    // A wrong key given for the config.
    let config = MockConfig::default().with_api_key("sk-right-key-0123456789abcdef");
    let secret = format!("{CONFIG_ID}.api_key={WRONG}");
    let error = check_events(config, "m", None, &["--secret", &secret], expect);
    assert!(!error.to_string().contains(WRONG), "{error:#}");
    // In a batch, the server refuses the first line's call as it refuses a wrong key.
    let refused = Fault::ApiError {
        status: 401,
        kind: "invalid_request_error".into(),
        code: Some("invalid_api_key".into()),
        message: "Incorrect API key provided: sk-w****. You can find your API key at https://platform.openai.com/account/api-keys.".into(),
    };
    check_batch(MockConfig::default().with_fault(0, refused), None, expect);
}

#[test]
fn a_403_is_a_permission_error() {
    let expect = Expect {
        kind: "permission",
        status: Some(403),
        provider_type: Some("permission_error"),
        code: Some("model_not_allowed"),
        request_id: Some("req_000000"),
    };
    check_events(MockConfig::default().with_fault(0, Fault::forbidden()), "m", None, &[], expect);
    check_batch(MockConfig::default().with_fault(0, Fault::forbidden()), None, expect);
}

#[test]
fn a_400_context_length_exceeded_is_context_too_long() {
    let expect = Expect {
        kind: "context_too_long",
        status: Some(400),
        provider_type: Some("invalid_request_error"),
        code: Some("context_length_exceeded"),
        request_id: Some("req_000000"),
    };
    let error = check_events(MockConfig::default().with_fault(0, Fault::context_length_exceeded()), "m", None, &[], expect);
    let provider_message = error["llm"]["provider_message"].as_str().expect("provider_message");
    assert!(provider_message.contains("maximum context length is 8192 tokens"), "{error:#}");
    check_batch(MockConfig::default().with_fault(0, Fault::context_length_exceeded()), None, expect);
}

#[test]
fn a_404_model_is_model_not_found() {
    let expect = Expect {
        kind: "model_not_found",
        status: Some(404),
        provider_type: Some("invalid_request_error"),
        code: Some("model_not_found"),
        request_id: Some("req_000000"),
    };
    // A model the server does not serve.
    check_events(MockConfig::default().with_models(["known"]), "unknown-model", None, &[], expect);
    // In a batch, the server answers the first line's call as it answers an unknown model.
    let missing = Fault::ApiError {
        status: 404,
        kind: "invalid_request_error".into(),
        code: Some("model_not_found".into()),
        message: "The model `m` does not exist or you do not have access to it.".into(),
    };
    check_batch(MockConfig::default().with_fault(0, missing), None, expect);
}

#[test]
fn no_answer_within_the_request_timeout_is_timed_out() {
    let expect = Expect { kind: "timed_out", status: None, provider_type: None, code: None, request_id: None };
    let slow = Fault::Slow(Duration::from_secs(3));
    let error = check_events(MockConfig::default().with_random_fault(1.0, slow.clone()), "m", Some(0.3), &[], expect);
    assert!(error["llm"]["message"].as_str().expect("message").contains("after 2 attempts"), "{error:#}");
    check_batch(first_call_fails(slow), Some(0.3), expect);
}

/// A run failed because the server kept failing is resumed once the server is back: the failed
/// call is made again (with fresh retries) and the run finishes.
#[test]
fn a_run_failed_by_a_server_that_kept_failing_resumes_when_it_is_back() {
    let (_rt, server) =
        server(MockConfig::default().with_text("Paris.").with_fault(0, Fault::ServerError).with_fault(1, Fault::ServerError));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("flow.json"), document(&server.url(), "m", None)).expect("write");
    let out = weft(dir.path(), &["run", "flow.json", "--input", "question=What is the capital of France?", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the failed run's state"), "{}", stderr(&out));
    assert_eq!(server.stats().requests, 2, "the call and its one retry");

    let out = weft(dir.path(), &["resume", "s.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert_eq!(outputs["answer"], "Paris.", "{outputs}");
    assert_eq!(server.stats().requests, 3, "only the failed call was made again");
}
