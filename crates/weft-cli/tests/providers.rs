//! `weft run` against a real OpenAI-compatible HTTP server on 127.0.0.1 (weft-testkit): the
//! flow's own LLM config, `--llm PROVIDER=URL,model=ID` for every config, and
//! `--llm CONFIG_ID:PROVIDER=...` for one.

use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use weft_testkit::{MockConfig, MockServer};

fn corpus(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(file);
    path.canonicalize().expect("corpus file").to_string_lossy().into_owned()
}

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

/// A server on its own runtime, alive as long as the returned runtime.
fn server(config: MockConfig) -> (tokio::runtime::Runtime, MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = rt.block_on(MockServer::start(config));
    (rt, server)
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
