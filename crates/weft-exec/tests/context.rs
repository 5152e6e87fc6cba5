//! A context per run and a state that holds each value once (issue 12): node timeouts and
//! durations after a resume, the size of stored states with a 1 MB input and their resumption,
//! events per run in a batch, and a panicking native tool in a batch.

#![allow(clippy::unwrap_used, clippy::print_stderr, reason = "a test fails loudly and prints its figures")]

mod common;

use common::flow_json;
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_exec::batch::{BatchEvent, BatchInput, run_batch};
use weft_exec::persist::{ResumeOptions, StateFile};
use weft_exec::{Event, EventRecord, Plan, RunErrorKind, RunOptions, RunSettings, RunState, Status};
use weft_flow::Flow;
use weft_llm::simulated::{SimulatedModel, SimulatedOptions};
use weft_tools::{Tool, ToolError, ToolRegistry};

fn flow(doc: &Json) -> Flow {
    Flow::from_json(&doc.to_string()).unwrap().flow
}

fn simulated(latency: Duration) -> RunOptions {
    let model = SimulatedModel::new(SimulatedOptions { latency, ..SimulatedOptions::default() });
    RunOptions::default().with_model(Arc::new(model)).with_limits(weft_exec::Limiters::new(weft_exec::LimitConfig::default()))
}

fn inputs(pairs: &[(&str, Json)]) -> Map<String, Json> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// Events kept in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<Json>>);

impl weft_exec::EventSink for Recorded {
    fn emit(&self, record: &EventRecord<'_>) {
        self.0.lock().unwrap().push(serde_json::to_value(record).unwrap());
    }
}

impl Recorded {
    fn take(&self) -> Vec<Json> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// start(question) -> ask (LLM) -> end(answer).
fn one_llm_call() -> Json {
    let llm = json!({"component_type": "OpenAiCompatibleConfig", "id": "m", "name": "m", "model_id": "x", "url": "http://127.0.0.1:9"});
    flow_json(
        "one_call",
        vec![
            json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "question", "type": "string"}], "outputs": [{"title": "question", "type": "string"}]}),
            json!({"component_type": "LlmNode", "id": "ask", "name": "ask", "llm_config": llm, "prompt_template": "Answer: {{question}}",
                   "inputs": [{"title": "question", "type": "string"}], "outputs": [{"title": "answer", "type": "string"}]}),
            json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "answer", "type": "string"}], "outputs": [{"title": "answer", "type": "string"}]}),
        ],
        &[("start", "ask"), ("ask", "end")],
        &[("start", "question", "ask", "question"), ("ask", "answer", "end", "answer")],
    )
}

/// Runs `run` for `for_` of (tokio's) time, then drops its `execute()` (as Ctrl-C does) and
/// returns the state, through its persisted form.
async fn interrupted(mut run: weft_exec::Run, for_: Duration) -> RunState {
    assert!(tokio::time::timeout(for_, run.execute()).await.is_err(), "the run ended before the interruption");
    stored_and_read(run.into_state()).state
}

fn stored_and_read(state: RunState) -> StateFile {
    let file = StateFile {
        flow: None,
        flow_hash: state.flow_hash.clone(),
        options: ResumeOptions {
            llm: "simulated".into(),
            tools: None,
            max_steps: 10_000,
            max_reasks: 2,
            events: None,
            refs: Vec::new(),
            limits: Map::new(),
            allow_hosts: Vec::new(),
            http_rewrites: Vec::new(),
        },
        state,
    };
    let text = file.to_json_with(|_| {}).unwrap().to_string();
    StateFile::from_json(serde_json::from_str(&text).unwrap()).unwrap()
}

fn stored_size(state: &RunState) -> usize {
    let file = stored_and_read(state.clone());
    file.to_json_with(|_| {}).unwrap().to_string().len()
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_enforces_the_node_timeout_on_the_calls_it_makes_again() {
    let plan = Plan::new(&flow(&one_llm_call()), simulated(Duration::from_secs(10))).unwrap();
    let run = plan.start(inputs(&[("question", json!("why"))])).unwrap();
    let run_id = run.run_id().to_owned();
    let state = interrupted(run, Duration::from_secs(2)).await;
    assert_eq!(state.run_id, run_id);

    // Resumed with a 5 s node timeout: the call made again takes 10 s, so the node times out.
    let settings = RunSettings { node_timeout: Some(Duration::from_secs(5)), ..RunSettings::default() };
    let mut run = plan.resume_with(state.clone(), settings).unwrap();
    let t0 = tokio::time::Instant::now();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Timeout, "{err}");
    assert_eq!(t0.elapsed(), Duration::from_secs(5), "the deadline is 5 s after the call was made again");
    assert!(err.message.contains("did not finish within the node timeout of 5.0 s"), "{err}");
    let node = err.node.as_ref().unwrap();
    assert_eq!((node.path.as_str(), node.id.as_str(), node.name.as_str()), ("one_call", "ask", "ask"));
    assert_eq!(run.run_id(), run_id, "the run id is kept across resumes");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_reports_the_real_duration_of_a_call_made_again() {
    let sink = Arc::new(Recorded::default());
    let plan = Plan::new(&flow(&one_llm_call()), simulated(Duration::from_secs(10)).with_events(sink.clone())).unwrap();
    let run = plan.start(inputs(&[("question", json!("why"))])).unwrap();
    let state = interrupted(run, Duration::from_secs(4)).await;
    let before = sink.take();
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    // An hour passes before the resume.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let mut run = plan.resume(state).unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!("waits") };
    assert!(outputs["answer"].is_string());
    let after = sink.take();
    let finished = after.iter().find(|e| e["event"] == "node_finished" && e["node"] == "ask").unwrap();
    // The call made again took 10 s: neither 0 (no start time) nor an hour and 14 s.
    assert_eq!(finished["duration_ms"], 10_000.0, "{finished}");
    assert_eq!(finished["path"], "one_call");
    // `seq` continues after the resume, without gaps.
    let seqs: Vec<u64> = after.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (last_seq + 1..=last_seq + after.len() as u64).collect::<Vec<_>>());
    assert!(after.iter().all(|e| e["run_id"] == before[0]["run_id"] && e["v"] == 1));
    assert_eq!(after[0]["event"], "run_started");
    assert_eq!(after[0]["resumed"], true);
}

/// Random text, not compressible into a pattern: every byte counts.
fn random_text(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[tokio::test]
async fn a_run_waiting_for_input_with_a_1_mb_input_stores_it_once() {
    // start(text) -> ask (a message from the user) -> end(text, reply).
    let doc = flow_json(
        "confirm",
        vec![
            json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "text", "type": "string"}], "outputs": [{"title": "text", "type": "string"}]}),
            json!({"component_type": "InputMessageNode", "id": "ask", "name": "ask", "message": "Is this right?", "inputs": [], "outputs": [{"title": "user_input", "type": "string"}]}),
            json!({"component_type": "EndNode", "id": "end", "name": "end",
                   "inputs": [{"title": "text", "type": "string"}, {"title": "reply", "type": "string"}],
                   "outputs": [{"title": "text", "type": "string"}, {"title": "reply", "type": "string"}]}),
        ],
        &[("start", "ask"), ("ask", "end")],
        &[("start", "text", "end", "text"), ("ask", "user_input", "end", "reply")],
    );
    let plan = Plan::new(&flow(&doc), simulated(Duration::ZERO)).unwrap();
    let text = random_text(1 << 20);
    let mut run = plan.start(inputs(&[("text", json!(text))])).unwrap();
    let Status::InputRequired { .. } = run.execute().await.unwrap() else { panic!("finished") };
    let size = stored_size(run.state());
    eprintln!("a 1 MB input, waiting for input: state file {size} bytes");
    assert!(size < 1_500_000, "{size} bytes");

    let mut resumed = plan.resume(stored_and_read(run.state().clone()).state).unwrap();
    resumed.submit(json!("yes")).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!("waits") };
    run.submit(json!("yes")).unwrap();
    let Status::Finished { outputs: uninterrupted, .. } = run.execute().await.unwrap() else { panic!("waits") };
    assert_eq!(outputs, uninterrupted);
    assert_eq!(outputs["text"], json!(text));
}

#[tokio::test(start_paused = true)]
async fn the_guardrails_example_interrupted_mid_call_with_a_1_mb_input_stores_it_once() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows/guardrails.json");
    let flow = common::load(&path);
    let plan = Plan::new(&flow, simulated(Duration::from_secs(10))).unwrap();
    let text = random_text(1 << 20);
    let run = plan.start(inputs(&[("user_input", json!(text))])).unwrap();
    let state = interrupted(run, Duration::from_secs(1)).await;
    let busy = state.frames.values().filter(|f| matches!(f.position, weft_exec::state::Position::Busy { .. })).count();
    assert!(busy >= 2, "interrupted with calls in flight: {busy}");
    let size = stored_size(&state);
    eprintln!("guardrails with a 1 MB input, {busy} calls in flight: state file {size} bytes");
    assert!(size < 4_000_000, "{size} bytes");

    let mut resumed = plan.resume(state).unwrap();
    let resumed = resumed.execute().await.unwrap();
    let mut run = plan.start(inputs(&[("user_input", json!(text))])).unwrap();
    let uninterrupted = run.execute().await.unwrap();
    assert_eq!(resumed, uninterrupted);
}

/// A native tool that panics on one input.
struct Fragile;

#[async_trait::async_trait]
impl Tool for Fragile {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        let x = args["x"].as_str().unwrap_or_default().to_owned();
        assert!(x != "boom", "the tool cannot take {x}");
        Ok(json!(format!("ok {x}")))
    }
}

fn tool_flow() -> Json {
    let tool = json!({"component_type": "ServerTool", "id": "t", "name": "fragile", "inputs": [{"title": "x", "type": "string"}], "outputs": [{"title": "y", "type": "string"}]});
    flow_json(
        "tooly",
        vec![
            json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "x", "type": "string"}], "outputs": [{"title": "x", "type": "string"}]}),
            json!({"component_type": "ToolNode", "id": "call", "name": "call", "tool": tool, "inputs": [{"title": "x", "type": "string"}], "outputs": [{"title": "y", "type": "string"}]}),
            json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "y", "type": "string"}], "outputs": [{"title": "y", "type": "string"}]}),
        ],
        &[("start", "call"), ("call", "end")],
        &[("start", "x", "call", "x"), ("call", "y", "end", "y")],
    )
}

#[tokio::test]
async fn a_batch_whose_native_tool_panics_reports_that_line_failed_and_every_other_line() {
    let mut tools = ToolRegistry::new();
    tools.register("fragile", Fragile);
    let sink = Arc::new(Recorded::default());
    let options = simulated(Duration::ZERO).with_tools(tools).with_events(sink.clone());
    let plan = Plan::new(&flow(&tool_flow()), options).unwrap();
    let lines: Vec<BatchInput> = ["a", "b", "boom", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, x)| BatchInput::new(i, i * 2 + 1, Ok(inputs(&[("x", json!(x))]))))
        .collect();
    let mut results = Vec::new();
    let progress = run_batch(&plan, lines, 2, |event| {
        if let BatchEvent::Result(r) = event {
            results.push(*r);
        }
    })
    .await;
    assert_eq!((progress.done, progress.failed), (5, 1));
    assert_eq!(results.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(results.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 5, 7, 9]);
    for (r, x) in results.iter().zip(["a", "b", "boom", "c", "d"]) {
        if x == "boom" {
            let error = r.error.as_ref().unwrap();
            assert_eq!(error.kind, RunErrorKind::Tool);
            assert_eq!(error.node.as_ref().unwrap().name, "call");
            assert!(error.message.contains("the tool panicked: the tool cannot take boom"), "{}", error.message);
        } else {
            assert_eq!(r.outputs.as_ref().unwrap()["y"], json!(format!("ok {x}")), "{r:?}");
        }
    }

    // Events, split by run id: one group per line, each with its index and contiguous seq.
    let mut groups: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for e in sink.take() {
        groups.entry(e["run_id"].as_str().unwrap().to_owned()).or_default().push(e);
    }
    assert_eq!(groups.len(), 5);
    for r in &results {
        let events = &groups[r.run_id.as_ref().unwrap()];
        assert!(events.iter().all(|e| e["index"] == r.index), "{events:?}");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let last = events.last().unwrap();
        let expected = if r.error.is_some() { "run_failed" } else { "run_finished" };
        assert_eq!(last["event"], expected);
    }
    let failed = groups.values().flatten().find(|e| e["event"] == "run_failed").unwrap();
    assert_eq!(failed["error"]["kind"], "tool");
    assert_eq!(failed["error"]["node"], json!({"path": "tooly", "id": "call", "name": "call"}));
}

#[tokio::test]
async fn run_cancel_from_another_task_stops_the_calls_in_flight_and_keeps_the_state_resumable() {
    let plan = Plan::new(&flow(&one_llm_call()), simulated(Duration::from_secs(3600))).unwrap();
    let mut run = plan.start(inputs(&[("question", json!("why"))])).unwrap();
    let handle = run.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.cancel();
    });
    let t0 = std::time::Instant::now();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Cancelled);
    assert!(t0.elapsed() < Duration::from_secs(10), "cancelled promptly: {:?}", t0.elapsed());
    assert!(matches!(run.state().outcome, weft_exec::state::Outcome::Running), "a cancelled run did not fail");
    // The stored state resumes (the call is made again).
    let plan = Plan::new(&flow(&one_llm_call()), simulated(Duration::ZERO)).unwrap();
    let mut resumed = plan.resume(run.into_state()).unwrap();
    assert!(matches!(resumed.execute().await.unwrap(), Status::Finished { .. }));
}

#[test]
fn events_carry_the_envelope_fields_in_json() {
    let event = Event::RunStarted { flow: "f".into(), resumed: false };
    let record = EventRecord { v: 1, run_id: "r", seq: 3, ts_ms: 7, index: Some(2), path: "f/m[1]", event: &event };
    assert_eq!(
        serde_json::to_value(record).unwrap(),
        json!({"v": 1, "run_id": "r", "seq": 3, "ts_ms": 7, "index": 2, "path": "f/m[1]", "event": "run_started", "flow": "f", "resumed": false})
    );
}

#[tokio::test]
async fn the_cancel_flag_of_the_options_stops_a_run_waiting_on_slow_calls() {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = simulated(Duration::from_secs(3600)).with_cancel_flag(Arc::clone(&flag));
    let plan = Plan::new(&flow(&one_llm_call()), options).unwrap();
    let mut run = plan.start(inputs(&[("question", json!("why"))])).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let t0 = std::time::Instant::now();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Cancelled, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// A model that records every request it gets, then answers as the simulated model does.
struct Recording {
    inner: SimulatedModel,
    requests: Mutex<Vec<weft_llm::ChatRequest>>,
}

#[async_trait::async_trait]
impl weft_llm::ChatModel for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn chat(&self, request: &weft_llm::ChatRequest) -> Result<weft_llm::ChatResponse, weft_llm::LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        self.inner.chat(request).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_re_ask_interrupted_mid_call_is_made_again_with_the_same_conversation() {
    // A structured LLM node whose first answer does not fit: the re-ask is in flight when the run
    // is interrupted; the resumed run sends the same request again and finishes.
    let llm = json!({"component_type": "OpenAiCompatibleConfig", "id": "m", "name": "m", "model_id": "x", "url": "http://127.0.0.1:9"});
    let doc = flow_json(
        "reask",
        vec![
            json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "topic", "type": "string"}]}),
            json!({"component_type": "LlmNode", "id": "rate", "name": "rate", "llm_config": llm, "prompt_template": "Rate {{topic}}",
                   "inputs": [{"title": "topic", "type": "string"}],
                   "outputs": [{"title": "score", "type": "integer"}, {"title": "why", "type": "string"}]}),
            json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "score", "type": "integer"}], "outputs": [{"title": "score", "type": "integer"}]}),
        ],
        &[("start", "rate"), ("rate", "end")],
        &[("start", "topic", "rate", "topic"), ("rate", "score", "end", "score")],
    );
    let mut script = weft_llm::simulated::Script::new();
    script.set("rate", vec![json!("not json at all"), json!({"score": 7, "why": "fine"})]);
    let model = |latency| {
        Arc::new(Recording {
            inner: SimulatedModel::new(SimulatedOptions { latency, script: script.clone(), ..SimulatedOptions::default() }),
            requests: Mutex::new(Vec::new()),
        })
    };
    let first = model(Duration::from_secs(10));
    let options = RunOptions::default().with_model(first.clone()).with_limits(weft_exec::Limiters::new(weft_exec::LimitConfig::default()));
    let plan = Plan::new(&flow(&doc), options).unwrap();
    let run = plan.start(inputs(&[("topic", json!("tea"))])).unwrap();
    // The first answer arrives at 10 s; the re-ask is in flight at 15 s.
    let state = interrupted(run, Duration::from_secs(15)).await;
    let sent = first.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "the first call and the re-ask");
    let call = state.frames.values().find_map(|f| match &f.position {
        weft_exec::state::Position::Busy { call, .. } => Some(serde_json::to_value(call).unwrap()),
        _ => None,
    });
    let call = call.unwrap();
    assert_eq!(call["attempt"], 2);
    assert_eq!(call["reasks"][0]["answer"], "not json at all");
    assert!(call.get("request").is_none(), "no request stored: {call}");

    let second = model(Duration::ZERO);
    let options = RunOptions::default().with_model(second.clone()).with_limits(weft_exec::Limiters::new(weft_exec::LimitConfig::default()));
    let plan = Plan::new(&flow(&doc), options).unwrap();
    let mut resumed = plan.resume(state).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!("waits") };
    assert_eq!(outputs["score"], 7);
    let again = second.requests.lock().unwrap().clone();
    assert_eq!(again, vec![sent[1].clone()], "the re-ask is made again exactly as it was sent");
}

/// A model that refuses while `down` is set, and counts the calls it answers.
struct Flaky {
    inner: SimulatedModel,
    down: std::sync::atomic::AtomicBool,
    answered: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl weft_llm::ChatModel for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn chat(&self, request: &weft_llm::ChatRequest) -> Result<weft_llm::ChatResponse, weft_llm::LlmError> {
        if request.meta.node == "grade" && self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(weft_llm::LlmError::new(weft_llm::LlmErrorKind::Transient, "the server is down"));
        }
        self.answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.chat(request).await
    }
}

#[tokio::test]
async fn a_failed_run_resumes_retrying_what_failed_and_keeping_what_finished() {
    // draft -> grade: draft answers, grade's server is down.
    let llm = json!({"component_type": "OpenAiCompatibleConfig", "id": "m", "name": "m", "model_id": "x", "url": "http://127.0.0.1:9"});
    let node = |id: &str, prompt: &str, input: &str, output: &str| {
        let mut llm = llm.clone();
        llm["id"] = json!(format!("m_{id}"));
        json!({"component_type": "LlmNode", "id": id, "name": id, "llm_config": llm, "prompt_template": prompt,
               "inputs": [{"title": input, "type": "string"}], "outputs": [{"title": output, "type": "string"}]})
    };
    let doc = flow_json(
        "two_calls",
        vec![
            json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "topic", "type": "string"}]}),
            node("draft", "Draft {{topic}}", "topic", "text"),
            node("grade", "Grade {{text}}", "text", "grade"),
            json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "grade", "type": "string"}], "outputs": [{"title": "grade", "type": "string"}]}),
        ],
        &[("start", "draft"), ("draft", "grade"), ("grade", "end")],
        &[("start", "topic", "draft", "topic"), ("draft", "text", "grade", "text"), ("grade", "grade", "end", "grade")],
    );
    let model = Arc::new(Flaky {
        inner: SimulatedModel::new(SimulatedOptions::default()),
        down: std::sync::atomic::AtomicBool::new(true),
        answered: std::sync::atomic::AtomicUsize::new(0),
    });
    let options = RunOptions::default().with_model(model.clone()).with_limits(weft_exec::Limiters::new(weft_exec::LimitConfig::default()));
    let plan = Plan::new(&flow(&doc), options).unwrap();
    let mut run = plan.start(inputs(&[("topic", json!("tea"))])).unwrap();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Llm);
    assert_eq!(model.answered.load(std::sync::atomic::Ordering::SeqCst), 1, "draft answered");
    let stored = stored_and_read(run.into_state()).state;
    assert!(matches!(&stored.outcome, weft_exec::state::Outcome::Failed { error } if error.node.as_ref().unwrap().name == "grade"));

    // The server is back: the resumed run makes only the call that failed.
    model.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut resumed = plan.resume(stored).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!("waits") };
    assert!(outputs["grade"].as_str().unwrap().contains("Grade"), "{outputs:?}");
    assert_eq!(model.answered.load(std::sync::atomic::Ordering::SeqCst), 2, "draft was not asked again");
}
