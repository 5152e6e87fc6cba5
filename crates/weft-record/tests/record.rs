//! Record and replay of LLM (and tool) exchanges: a run against a model with random replies replays
//! identically in any order, identical prompts at different node paths and repeated prompts at
//! one path are told apart, unrecorded requests fail clearly, secrets stay out of the file, and
//! recorded errors replay as errors.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};
use tokio::task::JoinSet;
use weft_llm::{ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind, RequestMeta, Role, Usage};
use weft_record::{RecordLog, Recorder, Replayer};

/// A model answering random text (seeded by the clock and a counter) after a random short
/// delay; prompts starting with `fail transient` or `fail permanent` fail so; a prompt starting
/// with `echo` is echoed back.
#[derive(Debug, Default)]
struct RandomModel {
    calls: AtomicU64,
}

impl RandomModel {
    fn next(&self) -> u64 {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        // A draw seeded by the clock and the counter.
        weft_llm::rng::Rng::seeded(nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
    }
}

#[async_trait::async_trait]
impl ChatModel for RandomModel {
    fn name(&self) -> &str {
        "random"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let r = self.next();
        tokio::time::sleep(Duration::from_micros(r % 3000)).await;
        let prompt = &request.messages.last().unwrap().content;
        if let Some(message) = prompt.strip_prefix("fail transient") {
            return Err(LlmError::new(LlmErrorKind::Transient, format!("HTTP 503{message}")));
        }
        if let Some(message) = prompt.strip_prefix("fail permanent") {
            return Err(LlmError::new(LlmErrorKind::BadRequest, format!("HTTP 400{message}")));
        }
        let text = if prompt.starts_with("echo") { prompt.clone() } else { format!("reply {r:016x}") };
        Ok(ChatResponse {
            text,
            tool_calls: Vec::new(),
            usage: Usage { input_tokens: r % 1000, output_tokens: r % 97, cached_tokens: r % 7 },
        })
    }
}

fn request(path: &str, call_index: u64, prompt: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::System, "You are terse."), ChatMessage::new(Role::User, prompt)],
        meta: RequestMeta { node: path.rsplit('/').next().unwrap().to_owned(), node_path: path.to_owned(), call_index, batch_index: None },
        ..ChatRequest::default()
    }
}

/// The calls of a small run: a plan, three map items with the same prompt (in parallel), and
/// a loop asking the same thing twice at one node path.
fn run_calls() -> Vec<Vec<ChatRequest>> {
    vec![
        vec![request("root/plan", 0, "Plan the work")],
        (0..3).map(|i| request(&format!("root/map[{i}]/work"), i, "Summarize the report")).collect(),
        vec![request("root/loop/ask", 0, "Again?")],
        vec![request("root/loop/ask", 1, "Again?")],
    ]
}

type Answers = BTreeMap<(String, usize), Result<ChatResponse, String>>;

/// Runs the calls stage by stage, each stage's calls in parallel; answers by node path and the
/// order of the call at that path.
async fn run(model: Arc<dyn ChatModel>, stages: Vec<Vec<ChatRequest>>) -> Answers {
    let mut answers = Answers::new();
    for stage in stages {
        let mut tasks = JoinSet::new();
        for request in stage {
            let model = Arc::clone(&model);
            tasks.spawn(async move { (request.meta.node_path.clone(), model.chat(&request).await.map_err(|e| format!("{e:?}"))) });
        }
        while let Some(done) = tasks.join_next().await {
            let (path, answer) = done.unwrap();
            let n = answers.keys().filter(|(p, _)| *p == path).count();
            answers.insert((path, n), answer);
        }
    }
    answers
}

fn texts(answers: &Answers) -> Vec<String> {
    answers.values().map(|a| a.as_ref().unwrap().text.clone()).collect()
}

fn record_log(dir: &Path) -> Arc<RecordLog> {
    RecordLog::create(dir.join("run.jsonl")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_random_run_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let recorder: Arc<dyn ChatModel> = Arc::new(Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log)));
    assert_eq!(recorder.name(), "random");
    let recorded = run(recorder, run_calls()).await;
    log.finish().unwrap();

    // Every reply is different: identical prompts at different node paths, and the same prompt
    // twice at one path, got their own.
    let mut distinct = texts(&recorded);
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "{recorded:?}");

    let replayer = Replayer::load(log.path()).unwrap();
    assert_eq!(replayer.len(), 6);
    let replayer: Arc<dyn ChatModel> = Arc::new(replayer);
    // Another order: the map items reversed, completing in any order.
    let mut stages = run_calls();
    stages[1].reverse();
    stages.reverse();
    stages.swap(0, 1); // the loop's two calls stay in order
    let replayed = run(Arc::clone(&replayer), stages).await;
    assert_eq!(replayed, recorded);

    // The same model again, with no network and nothing left to serve.
    let again = replayer.chat(&request("root/plan", 1, "Plan the work")).await.unwrap_err();
    assert_eq!(again.kind, LlmErrorKind::Other);
    assert!(again.to_string().contains("this request was recorded only 1 time for this node path"), "{again}");
}

#[tokio::test]
async fn lines_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let recorder = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    let mut r = request("root/map[2]/work", 5, "Summarize the report");
    r.generation.insert("temperature".into(), json!(0.2));
    let answer = recorder.chat(&r).await.unwrap();
    log.finish().unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<Json> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0], json!({"kind": "header", "format": "weft-record", "version": 4}));
    let line = &lines[1];
    assert_eq!(line["kind"], "llm");
    assert_eq!(line["node_path"], "root/map[2]/work");
    assert_eq!(line["occurrence"], 1);
    assert_eq!(line["model"], "random");
    assert_eq!(line["key"].as_str().unwrap().len(), 64);
    assert_eq!(line["request"]["meta"]["call_index"], 5);
    assert_eq!(line["request"]["generation"], json!({"temperature": 0.2}));
    assert_eq!(line["response"], serde_json::to_value(&answer).unwrap());

    let replayer = Replayer::load(log.path()).unwrap();
    let file = log.path().display().to_string();
    assert_eq!(replayer.name(), format!("replay {file}"));
    assert_eq!(replayer.endpoint(), format!("replay {file}"));
    // The call index does not matter, the node path does.
    r.meta.call_index = 0;
    assert_eq!(replayer.chat(&r).await.unwrap(), answer);
}

#[tokio::test]
async fn unrecorded_requests_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let recorder = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    recorder.chat(&request("root/summarize", 0, "Summarize the quarterly report for the board")).await.unwrap();
    recorder.chat(&request("root/summarize", 1, "Summarize the quarterly report\nfor the board, in French")).await.unwrap();
    log.finish().unwrap();
    let replayer = Replayer::load(log.path()).unwrap();
    let file = log.path().display().to_string();
    let message = |e: LlmError| {
        assert!(!e.is_transient(), "{e:?}");
        e.to_string().replace(&file, "run.jsonl")
    };

    // The prompt changed.
    let changed =
        replayer.chat(&request("root/summarize", 0, "Summarize the quarterly report for the board, with a table of the results")).await;
    insta::assert_snapshot!(message(changed.unwrap_err()), @r#"replay run.jsonl: no recorded answer for the LLM call at node path "root/summarize" (occurrence 1, prompt "Summarize the quarterly report for the board, with a table o…"): 2 exchanges were recorded for this node path, none with this request; the flow or its inputs changed since the recording, or the recording stopped before this call: re-record with --record"#);

    // A node the recording never saw.
    let new_node = replayer.chat(&request("root/translate", 0, "Translate:\n  hello")).await;
    insta::assert_snapshot!(message(new_node.unwrap_err()), @r#"replay run.jsonl: no recorded answer for the LLM call at node path "root/translate" (occurrence 1, prompt "Translate: hello"): nothing was recorded for this node path; the flow or its inputs changed since the recording, or the recording stopped before this call: re-record with --record"#);

    // The same request once more than recorded.
    let first = request("root/summarize", 0, "Summarize the quarterly report for the board");
    replayer.chat(&first).await.unwrap();
    let more = replayer.chat(&first).await;
    insta::assert_snapshot!(message(more.unwrap_err()), @r#"replay run.jsonl: no recorded answer for the LLM call at node path "root/summarize" (occurrence 2, prompt "Summarize the quarterly report for the board"): this request was recorded only 1 time for this node path; the flow or its inputs changed since the recording, or the recording stopped before this call: re-record with --record"#);
}

#[tokio::test]
async fn secrets_are_redacted() {
    const SECRET: &str = "sk-live-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    log.add_secrets([SECRET.to_owned(), String::new()]);
    let recorder = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    let mut r = request("root/echo", 0, &format!("echo: my key is {SECRET}"));
    r.generation.insert("user".into(), json!(SECRET));
    let answer = recorder.chat(&r).await.unwrap();
    assert!(answer.text.contains(SECRET));
    recorder.chat(&request("root/fail", 0, &format!("fail permanent: bad key {SECRET}"))).await.unwrap_err();
    log.finish().unwrap();

    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("0123456789abcdef"), "{text}");
    assert!(!text.to_lowercase().contains("authorization"), "{text}");
    assert_eq!(text.matches("[REDACTED]").count(), 5, "{text}");

    // Given the secret, a replay finds the exchange; the answer comes back redacted.
    let replayer = Replayer::load(log.path()).unwrap().with_secrets([SECRET]);
    let replayed = replayer.chat(&r).await.unwrap();
    assert_eq!(replayed.text, "echo: my key is [REDACTED]");
    assert_eq!(replayed.usage, answer.usage);
    // Without it, the request's key differs.
    let blind = Replayer::load(log.path()).unwrap();
    assert!(blind.chat(&r).await.unwrap_err().to_string().contains("none with this request"));
}

#[tokio::test]
async fn recorded_errors_replay_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let recorder = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    let transient = request("root/a", 0, "fail transient: Service Unavailable");
    let permanent = request("root/b", 0, "fail permanent: Bad Request");
    let recorded = [recorder.chat(&transient).await.unwrap_err(), recorder.chat(&permanent).await.unwrap_err()];
    log.finish().unwrap();

    let replayer = Replayer::load(log.path()).unwrap();
    let replayed = [replayer.chat(&transient).await.unwrap_err(), replayer.chat(&permanent).await.unwrap_err()];
    assert!(replayed[0].kind == LlmErrorKind::Transient && replayed[0].message == "HTTP 503: Service Unavailable", "{replayed:?}");
    assert!(replayed[1].kind == LlmErrorKind::BadRequest && replayed[1].message == "HTTP 400: Bad Request", "{replayed:?}");
    assert_eq!(format!("{replayed:?}"), format!("{recorded:?}"));
}

#[tokio::test]
async fn models_and_tools_share_one_file() {
    use weft_record::{RecordingTool, ToolReplay};
    use weft_tools::{Tool, ToolError};

    struct Clock;
    #[async_trait::async_trait]
    impl Tool for Clock {
        async fn call(&self, _: Map<String, Json>) -> Result<Json, ToolError> {
            Ok(json!(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string()))
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let model = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    let tool = RecordingTool::new("clock", Arc::new(Clock), Arc::clone(&log));
    let answer = model.chat(&request("root/x", 0, "What time is it?")).await.unwrap();
    let time = tool.call(Map::new()).await.unwrap();
    log.finish().unwrap();

    let replayer = Replayer::load(log.path()).unwrap();
    let tools = Arc::new(ToolReplay::load(log.path()).unwrap());
    assert_eq!((replayer.len(), tools.len()), (1, 1));
    assert_eq!(replayer.chat(&request("root/x", 0, "What time is it?")).await.unwrap(), answer);
    assert_eq!(tools.tool("clock").call(Map::new()).await.unwrap(), time);
}

#[test]
fn bad_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"kind\":\"llm\",\"key\":\"k\",\"node_path\":\"p\",\"occurrence\":1}\n").unwrap();
    let error = Replayer::load(&path).unwrap_err().to_string();
    assert!(error.ends_with("bad.jsonl:1: a recorded LLM call has either a \"response\" or an \"error\"; the file is not a weft recording (write one with --record)"), "{error}");
    let line = "{\"kind\":\"llm\",\"key\":\"k\",\"node_path\":\"p\",\"occurrence\":1,\"response\":{\"text\":\"a\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"cached_tokens\":0}}}\n";
    std::fs::write(&path, format!("{line}{line}")).unwrap();
    let error = Replayer::load(&path).unwrap_err().to_string();
    assert!(error.contains("bad.jsonl:2: node path \"p\": occurrence 1 of this request is recorded twice"), "{error}");
    std::fs::write(&path, "{\"kind\":\"llm\",\"key\":1}\n").unwrap();
    let error = Replayer::load(&path).unwrap_err().to_string();
    assert!(error.contains("bad.jsonl:1: not a recorded LLM call (invalid type: integer `1`, expected a string)"), "{error}");
    let error = Replayer::load(dir.path().join("missing.jsonl")).unwrap_err().to_string();
    assert!(error.starts_with("cannot read the recording"), "{error}");
}

/// Runs of a batch that share a prompt each replay their own answer, whatever order they asked
/// in when recorded and when replayed (issue 13, item 6).
#[tokio::test]
async fn runs_sharing_a_prompt_replay_their_own_answers_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = record_log(dir.path());
    let recorder = Recorder::new(Arc::new(RandomModel::default()), Arc::clone(&log));
    let in_run = |run: u64| {
        let mut r = request("root/ask", 0, "The same question");
        r.meta.batch_index = Some(run);
        r
    };
    let mut recorded = BTreeMap::new();
    for run in [3, 1, 0, 2] {
        recorded.insert(run, recorder.chat(&in_run(run)).await.unwrap().text);
    }
    log.finish().unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    let runs: Vec<Json> = text.lines().skip(1).map(|l| serde_json::from_str::<Json>(l).unwrap()["run"].clone()).collect();
    assert_eq!(runs, vec![json!(3), json!(1), json!(0), json!(2)]);
    let replayer = Replayer::load(log.path()).unwrap();
    for run in [0, 2, 3, 1] {
        assert_eq!(replayer.chat(&in_run(run)).await.unwrap().text, recorded[&run], "run {run}");
    }
    let again = replayer.chat(&in_run(2)).await.unwrap_err();
    assert!(again.message.contains("of run 2 (batch index) at node path \"root/ask\" (occurrence 2"), "{}", again.message);
}
