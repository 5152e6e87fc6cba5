//! `weft run` against a real OpenAI-compatible HTTP server on 127.0.0.1 (weft-testkit): the
//! flow's own LLM config, `--llm PROVIDER=URL,model=ID` for every config, and
//! `--llm CONFIG_ID:PROVIDER=...` for one.

mod common;

use common::{corpus, server};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use weft_testkit::MockConfig;

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

#[test]
fn the_flows_own_vllm_config_reaches_its_server() {
    let (_rt, server) = server(MockConfig::default().with_text("Paris."));
    let dir = tempfile::tempdir().expect("tempdir");
    // The corpus flow, with its vLLM config's url aimed at the test server (WayFlow appends
    // /v1/chat/completions to a vLLM url without a path).
    let text = std::fs::read_to_string(corpus("p_llm_flow_minimal.json")).expect("read");
    let base = server.url();
    let text = text.replace("http://vllm.internal:8000", base.trim_end_matches("/v1"));
    let flow = dir.path().join("flow.json");
    std::fs::write(&flow, text).expect("write");
    let out = weft(dir.path(), &["run", &flow.to_string_lossy(), "--input", "question=Capital of France?"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert!(outputs.as_object().expect("object").values().any(|v| v == "Paris."), "{outputs}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert!(requests[0]["messages"].to_string().contains("Capital of France?"), "{}", requests[0]);
}

#[test]
fn llm_overrides_replace_every_config_or_one() {
    let (_rt, server) = server(MockConfig::default().with_text("overridden"));
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = corpus("p_llm_flow_minimal.json");
    let all = format!("openai-compatible={},model=small", server.url());
    let out = weft(dir.path(), &["run", &flow, "--llm", &all, "--input", "question=hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.requests()[0]["model"], "small");

    let one = format!("d916ab38-5076-4fb8-a901-adf98fb49eff:vllm={},model=big", server.url());
    let out = weft(dir.path(), &["run", &flow, "--llm", &one, "--input", "question=hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.requests()[1]["model"], "big");
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert!(outputs.as_object().expect("object").values().any(|v| v == &json!("overridden")), "{outputs}");
}

#[test]
fn a_rejected_request_fails_the_run_naming_the_node_and_the_status() {
    let (_rt, server) = server(MockConfig::default().with_models(["only-this"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let over = format!("openai-compatible={},model=other", server.url());
    let out = weft(dir.path(), &["run", &corpus("p_llm_flow_minimal.json"), "--llm", &over, "--input", "question=hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the LLM call failed: openai-compatible"), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
}

fn fan_out() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fan_out.json");
    path.canonicalize().expect("fixture").to_string_lossy().into_owned()
}

/// A run against a server answering at random (identical prompts in parallel items included)
/// is recorded, then replayed with the server gone: same outputs, no network.
#[test]
fn a_recorded_run_replays_offline_with_identical_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, server) = server(MockConfig::default().randomized(7).with_latency(std::time::Duration::from_millis(5)));
    let over = format!("openai-compatible={},model=m", server.url());
    let items = "items=[\"same\",\"same\",\"same\",\"other\"]";
    let out = weft(dir.path(), &["run", &fan_out(), "--llm", &over, "--input", items, "--record", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recorded: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    let ys = recorded["ys"].as_array().expect("ys");
    assert_eq!(ys.len(), 4);
    assert!(ys[0] != ys[1] || ys[1] != ys[2], "random replies differ: {ys:?}");
    assert!(stderr(&out).contains("usage: 4 LLM calls"), "{}", stderr(&out));
    drop(server);
    drop(rt);

    let out = weft(dir.path(), &["run", &fan_out(), "--llm", &over, "--input", items, "--replay", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replayed: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert_eq!(replayed, recorded);

    // A request the recording does not have fails clearly.
    let out = weft(dir.path(), &["run", &fan_out(), "--llm", &over, "--input", "items=[\"new\"]", "--replay", "run.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no recorded answer for the LLM call at node path"), "{}", stderr(&out));
}

#[test]
fn usage_is_summed_and_priced_when_prices_are_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_rt, server) = server(MockConfig::default().with_text("ok"));
    let over = format!("openai-compatible={},model=m", server.url());
    let out = weft(dir.path(), &["run", &fan_out(), "--llm", &over, "--input", "items=[\"a\",\"b\"]"]);
    assert!(stderr(&out).contains("cost unknown: no price for m; give --prices prices.toml"), "{}", stderr(&out));
    std::fs::write(dir.path().join("prices.toml"), "[models.m]\ninput = 1.0\noutput = 2.0\n").expect("write");
    let out = weft(
        dir.path(),
        &["run", &fan_out(), "--llm", &over, "--input", "items=[\"a\",\"b\"]", "--prices", "prices.toml", "--usage-json", "usage.json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("usage: 2 LLM calls"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cost $"), "{}", stderr(&out));
    let usage: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("usage.json")).expect("usage")).expect("json");
    assert_eq!(usage["total"]["calls"], 2);
    assert!(usage["total"]["cost"].as_f64().expect("cost") > 0.0, "{usage}");
}

/// 1,000 runs of the guardrails example (two parallel structured calls each), 100 at a time,
/// against a server that answers 10% of requests with 429 (Retry-After 100 ms) or 500: every
/// run completes, the retries and the limiter's reaction are reported.
#[test]
fn a_thousand_guardrail_runs_complete_under_ten_percent_faults() {
    use weft_testkit::Fault;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = MockConfig::default()
        .with_latency(std::time::Duration::from_millis(20))
        .with_random_fault(0.05, Fault::rate_limit(0.1))
        .with_random_fault(0.05, Fault::ServerError);
    let (_rt, server) = server(config);
    let lines: String = (0..1000).map(|i| format!("{{\"user_input\": \"Meeting number {i} tomorrow at 2pm\"}}\n")).collect();
    std::fs::write(dir.path().join("in.jsonl"), lines).expect("write");
    let guardrails = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows/guardrails.json");
    let over = format!("openai-compatible={},model=m", server.url());
    let t0 = std::time::Instant::now();
    let out = weft(dir.path(), &["run", &guardrails.to_string_lossy(), "--llm", &over, "--batch", "in.jsonl", "--concurrency", "100"]);
    let wall = t0.elapsed();
    let err = stderr(&out);
    let first_error = String::from_utf8_lossy(&out.stdout).lines().find(|l| l.contains("\"error\"")).map(str::to_owned);
    assert_eq!(out.status.code(), Some(0), "{err}\n{first_error:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"outputs\"")).count(), 1000);
    assert!(err.contains(": 1000 finished, 0 failed"), "{err}");
    let usage = err.lines().find(|l| l.starts_with("usage: ")).expect("usage line");
    assert!(usage.contains("retries"), "{usage}");
    // The figures, for the record (`cargo test ... -- --nocapture`).
    eprintln!("{err}\nwall time of the whole command: {:.2} s", wall.as_secs_f64());
}
