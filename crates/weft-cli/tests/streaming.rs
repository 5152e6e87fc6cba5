//! `--stream`: an LLM node's and an agent's text printed to stderr as it arrives from a streamed
//! call (the testkit server streams), stdout keeping its one JSON object; a stream cut mid-way
//! is retried, never taken as the answer; `--stream` with a batch is refused.

mod common;

use common::{corpus, server, stderr, weft};
use serde_json::{Value as Json, json};
use weft_testkit::{Fault, MockConfig};

fn llm(url: &str) -> String {
    format!("openai-compatible={url},model=m")
}

#[test]
fn an_llm_nodes_text_streams_to_stderr_and_its_outputs_to_stdout() {
    let (_rt, server) = server(MockConfig::default().with_text("Bern is the capital of Switzerland."));
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = corpus("p_llm_flow_minimal.json");
    let out = weft(
        dir.path(),
        &["run", &doc, "--llm", &llm(&server.url()), "--input", "question=Capital?", "--stream", "--events", "events.jsonl"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert!(outputs.to_string().contains("Bern is the capital of Switzerland."), "{outputs}");
    assert!(err.contains("[generate] Bern is the capital of Switzerland.\n"), "the text, then the line ends: {err}");
    let body = &server.requests()[0];
    assert_eq!((body["stream"].clone(), body["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
    // The events file has the pieces, in order, adding up to the text.
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("events");
    let pieces: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|e| e["event"] == "llm_delta")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(pieces.len() > 3, "{pieces:?}");
    assert_eq!(pieces.concat(), "Bern is the capital of Switzerland.");
}

#[test]
fn a_stream_cut_mid_way_is_retried_and_never_taken_as_the_answer() {
    let (_rt, server) = server(MockConfig::default().with_text("A complete answer, at last.").with_fault(0, Fault::CutStream));
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = corpus("p_llm_flow_minimal.json");
    let out = weft(dir.path(), &["run", &doc, "--llm", &llm(&server.url()), "--input", "question=Tell me", "--stream"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert!(outputs.to_string().contains("A complete answer, at last."), "{outputs}");
    assert_eq!(server.requests().len(), 2, "the cut stream was made again");
}

#[test]
fn stream_is_refused_with_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"question\": \"a\"}\n").expect("write");
    let doc = corpus("p_llm_flow_minimal.json");
    let out = weft(dir.path(), &["run", &doc, "--llm", "simulated", "--batch", "in.jsonl", "--stream"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--stream prints one run's text as it arrives; it does not work with a batch"), "{}", stderr(&out));
}
