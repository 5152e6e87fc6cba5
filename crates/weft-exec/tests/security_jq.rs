//! A document's jq query that never ends stops on the run's cancel flag and on the node timeout,
//! and a cancelled run stays resumable.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weft_exec::{Plan, RunErrorKind, RunOptions, Status};
use weft_flow::Flow;

/// The corpus document with an output parser, its `label` query replaced by `query`.
fn parser_flow(query: &str) -> Flow {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid/w_prompt_template_json_mode.json");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace("\"label\": \".label\"", &format!("\"label\": {}", Json::String(query.into())));
    Flow::from_json(&text).unwrap().flow
}

fn inputs() -> Map<String, Json> {
    json!({"email": "hello"}).as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_stops_on_the_cancel_flag_and_the_run_stays_resumable() {
    // The flag is set (as Ctrl-C sets it) before the query runs: it stops at once.
    let flag = Arc::new(AtomicBool::new(true));
    let plan = Plan::new(&parser_flow("def f: f; f"), RunOptions::simulated().with_cancel_flag(Arc::clone(&flag))).unwrap();
    let mut run = plan.start(inputs()).unwrap();
    let t = Instant::now();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Cancelled, "{}", err.message);
    assert!(t.elapsed() < Duration::from_millis(100), "took {:?}", t.elapsed());
    // Not failed: the state resumes (and, the flag cleared, the query runs into its budget).
    let state = serde_json::to_value(run.state()).unwrap();
    assert_eq!(state["outcome"]["status"], "running", "{}", state["outcome"]);
    flag.store(false, Ordering::Relaxed);
    let mut resumed = plan.resume(run.into_state()).unwrap();
    let err = resumed.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Query, "{}", err.message);
    assert!(err.message.contains("the jq query `def f: f; f` was stopped after 1000000 steps"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_stops_at_its_node_deadline() {
    // A 20 ms node timeout ends the query long before its step budget would.
    let options = RunOptions::simulated().with_node_timeout(Duration::from_millis(20));
    let plan = Plan::new(&parser_flow("def f: f; f"), options).unwrap();
    let mut run = plan.start(inputs()).unwrap();
    let t = Instant::now();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Query, "{}", err.message);
    assert!(err.message.contains("was stopped: the node's deadline passed"), "{}", err.message);
    assert!(t.elapsed() < Duration::from_millis(120), "took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_in_an_output_parser_fails_its_node_with_the_query_named() {
    let plan = Plan::new(&parser_flow("[range(1e9)] | length"), RunOptions::simulated()).unwrap();
    let mut run = plan.start(inputs()).unwrap();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Query);
    assert_eq!(err.node.as_ref().map(|n| n.name.as_str()), Some("classify_email"));
    assert!(err.message.contains("cannot read the model's answer: the jq query `[range(1e9)] | length` was stopped"), "{}", err.message);
    // A data query on the same document still works.
    let plan = Plan::new(&parser_flow(".label"), RunOptions::simulated()).unwrap();
    let status = plan.start(inputs()).unwrap().execute().await.unwrap();
    assert!(matches!(status, Status::Finished { .. }));
}
