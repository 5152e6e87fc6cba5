//! Map nodes and fan-outs as a user sees them: results in input order whatever the completion
//! order, `max_workers` counted by the model at every level of nesting, the first failure
//! cancelling its siblings (calls dropped, processes killed), reducers, and a run paused in the
//! middle of a fan-out and resumed from its stored state.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_exec::{Plan, RunErrorKind, RunOptions, RunState, Status};
use weft_flow::Flow;
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind, RequestMeta};
use weft_tools::{CommandTool, ToolRegistry};

mod common;
use common::flow_json;

// ---------------------------------------------------------------------------------------------
// Flow documents

fn root(mut flow: Json) -> Flow {
    flow["agentspec_version"] = json!("26.3.1");
    let refs = flow["$referenced_components"].as_object_mut().unwrap();
    refs.insert(
        "llm".into(),
        json!({"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000", "model_id": "m"}),
    );
    match Flow::from_json(&flow.to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("test flow is invalid:\n{d}"),
    }
}

fn start(id: &str, inputs: Json) -> Json {
    json!({"component_type": "StartNode", "id": id, "name": "start", "inputs": inputs})
}

fn end(id: &str, outputs: Json) -> Json {
    json!({"component_type": "EndNode", "id": id, "name": "end", "inputs": outputs, "outputs": outputs})
}

fn llm(id: &str, prompt: &str, output: Json) -> Json {
    json!({"component_type": "LlmNode", "id": id, "name": id, "llm_config": {"$component_ref": "llm"}, "prompt_template": prompt, "outputs": [output]})
}

fn string(title: &str) -> Json {
    json!({"title": title, "type": "string"})
}

fn list_of(title: &str, item: &str) -> Json {
    json!({"title": title, "type": "array", "items": {"type": item}})
}

/// `item {{x}}` → LLM `work` → output `y`, as a subflow named `name`.
fn worker(name: &str) -> Json {
    flow_json(
        name,
        vec![
            start(&format!("{name}_s"), json!([string("x")])),
            llm(&format!("{name}_work"), "item {{x}}", string("y")),
            end(&format!("{name}_e"), json!([string("y")])),
        ],
        &[(&format!("{name}_s"), &format!("{name}_work")), (&format!("{name}_work"), &format!("{name}_e"))],
        &[(&format!("{name}_s"), "x", &format!("{name}_work"), "x"), (&format!("{name}_work"), "y", &format!("{name}_e"), "y")],
    )
}

/// A map node over `sub`: a core `MapNode` or `ParallelMapNode` (`max_workers: None`, whose
/// inputs are `iterated_<p>`), or an `ExtendedParallelMapNode` with `max_workers` (core
/// ParallelMapNode has no such field), renamed to look the same from outside: input
/// `iterated_<input>`, output `collected_<output>`.
fn map_node(id: &str, name: &str, ty: &str, max_workers: Option<usize>, sub: Json, input: &str, output: (&str, Json)) -> Json {
    match max_workers {
        None => json!({"component_type": ty, "id": id, "name": name, "subflow": sub, "reducers": {output.0: "append"}}),
        Some(n) => {
            let mut list = json!({"type": "array", "items": output.1});
            list["title"] = json!(format!("collected_{}", output.0));
            json!({"component_type": "ExtendedParallelMapNode", "id": id, "name": name, "flow": sub, "max_workers": n,
                "inputs": [{"title": format!("iterated_{input}"), "type": "array", "items": {}}], "outputs": [list],
                "input_mapping": {"iterated_input": format!("iterated_{input}")},
                "output_mapping": {output.0: format!("collected_{}", output.0)},
                "unpack_input": {input: "."},
                "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"})
        }
    }
}

/// start(items: list of strings) → a map node of `ty` (see [`map_node`]) over `worker` →
/// end(collected_y).
fn map_flow(ty: &str, max_workers: Option<usize>) -> Flow {
    let map = map_node("map", "map", ty, max_workers, worker("w"), "x", ("y", json!({"type": "string"})));
    root(flow_json(
        "root",
        vec![start("s", json!([list_of("items", "string")])), map, end("e", json!([list_of("collected_y", "string")]))],
        &[("s", "map"), ("map", "e")],
        &[("s", "items", "map", "iterated_x"), ("map", "collected_y", "e", "collected_y")],
    ))
}

fn items(n: usize) -> Map<String, Json> {
    let list: Vec<Json> = (0..n).map(|i| json!(format!("i{i}"))).collect();
    let mut m = Map::new();
    m.insert("items".into(), Json::Array(list));
    m
}

// ---------------------------------------------------------------------------------------------
// A model that counts

type Behaviour = dyn Fn(&str, &RequestMeta) -> (Duration, Result<String, LlmError>) + Send + Sync;

/// Answers `item X` with `done X` after a delay chosen per call; counts calls in flight (in all
/// and per fan-out instance, by node path), calls finished, and calls dropped before finishing.
struct Counter {
    behaviour: Box<Behaviour>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    /// Peak in flight per prefix of the node path (each fan-out instance).
    per_prefix: Mutex<HashMap<String, (usize, usize)>>,
}

impl Counter {
    fn new(behaviour: impl Fn(&str, &RequestMeta) -> (Duration, Result<String, LlmError>) + Send + Sync + 'static) -> Arc<Counter> {
        Arc::new(Counter {
            behaviour: Box::new(behaviour),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            dropped: Arc::new(AtomicUsize::new(0)),
            per_prefix: Mutex::new(HashMap::new()),
        })
    }

    fn echo(delay: impl Fn(&str) -> Duration + Send + Sync + 'static) -> Arc<Counter> {
        Counter::new(move |item, _| (delay(item), Ok(format!("done {item}"))))
    }

    /// Every prefix of a node path that ends at a fan-out index: `root/map[3]` for
    /// `root/map[3]/w_work`.
    fn prefixes(path: &str) -> Vec<String> {
        path.match_indices(']').map(|(i, _)| path[..=i].to_owned()).map(|p| p[..p.rfind('[').unwrap()].to_owned()).collect()
    }

    fn enter(&self, path: &str) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut per = self.per_prefix.lock().unwrap();
        for p in Counter::prefixes(path) {
            let e = per.entry(p).or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(e.0);
        }
    }

    fn leave(&self, path: &str) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut per = self.per_prefix.lock().unwrap();
        for p in Counter::prefixes(path) {
            if let Some(e) = per.get_mut(&p) {
                e.0 -= 1;
            }
        }
    }

    fn peak_under(&self, prefix: &str) -> usize {
        self.per_prefix.lock().unwrap().get(prefix).map_or(0, |e| e.1)
    }
}

/// Counts a call dropped before it finished (its future cancelled).
struct DropGuard<'a> {
    counter: &'a Counter,
    path: String,
    armed: bool,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.counter.dropped.fetch_add(1, Ordering::SeqCst);
            self.counter.leave(&self.path);
        }
    }
}

#[async_trait::async_trait]
impl ChatModel for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let prompt = &request.messages.last().unwrap().content;
        let item = prompt.strip_prefix("item ").unwrap_or(prompt).to_owned();
        let (delay, reply) = (self.behaviour)(&item, &request.meta);
        let path = request.meta.node_path.clone();
        self.enter(&path);
        let mut guard = DropGuard { counter: self, path, armed: true };
        tokio::time::sleep(delay).await;
        guard.armed = false;
        self.leave(&guard.path);
        self.finished.fetch_add(1, Ordering::SeqCst);
        reply.map(|text| ChatResponse { text, ..ChatResponse::default() })
    }
}

fn with(model: &Arc<Counter>) -> RunOptions {
    RunOptions::simulated().with_model(model.clone() as Arc<dyn ChatModel>)
}

async fn finish(plan: &Arc<Plan>, inputs: Map<String, Json>) -> Map<String, Json> {
    match plan.start(inputs).unwrap().execute().await {
        Ok(Status::Finished { outputs, .. }) => outputs,
        other => panic!("the run did not finish: {other:?}"),
    }
}

/// A cheap deterministic "random" delay per item.
fn jitter(item: &str, max_ms: u64) -> Duration {
    let h = item.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Duration::from_millis(h % max_ms)
}

// ---------------------------------------------------------------------------------------------
// Order and bounds

#[tokio::test]
async fn results_follow_the_input_order_under_random_latencies_with_at_most_max_workers_in_flight() {
    let model = Counter::echo(|item| jitter(item, 40));
    let plan = Plan::new(&map_flow("", Some(8)), with(&model)).unwrap();
    let outputs = finish(&plan, items(50)).await;
    let expected: Vec<Json> = (0..50).map(|i| json!(format!("done i{i}"))).collect();
    assert_eq!(outputs["collected_y"], Json::Array(expected));
    assert_eq!(model.started.load(Ordering::SeqCst), 50);
    assert_eq!(model.peak.load(Ordering::SeqCst), 8, "max_workers 8 holds and is used");
}

#[tokio::test]
async fn a_parallel_map_without_max_workers_runs_20_at_once_and_a_map_node_one() {
    let model = Counter::echo(|_| Duration::from_millis(5));
    let plan = Plan::new(&map_flow("ParallelMapNode", None), with(&model)).unwrap();
    finish(&plan, items(45)).await;
    assert_eq!(model.peak.load(Ordering::SeqCst), weft_exec::DEFAULT_MAX_WORKERS);

    let model = Counter::echo(|item| jitter(item, 5));
    let plan = Plan::new(&map_flow("MapNode", None), with(&model)).unwrap();
    let outputs = finish(&plan, items(6)).await;
    assert_eq!(model.peak.load(Ordering::SeqCst), 1, "MapNode runs its items one after another");
    assert_eq!(outputs["collected_y"][5], "done i5");
}

#[tokio::test]
async fn an_empty_list_runs_nothing_and_collects_an_empty_list() {
    let model = Counter::echo(|_| Duration::ZERO);
    let plan = Plan::new(&map_flow("ParallelMapNode", None), with(&model)).unwrap();
    let outputs = finish(&plan, items(0)).await;
    assert_eq!(outputs["collected_y"], json!([]));
    assert_eq!(model.started.load(Ordering::SeqCst), 0);
}

/// map (2 at once) of [parallel flows (both branches) of [map (3 at once) of LLM calls]].
fn nested_flow() -> Flow {
    let inner = |name: &str| {
        let map =
            map_node(&format!("{name}_map"), "inner", "", Some(3), worker(&format!("{name}_w")), "x", ("y", json!({"type": "string"})));
        flow_json(
            name,
            vec![
                start(&format!("{name}_s"), json!([list_of("xs", "string")])),
                map,
                end(&format!("{name}_e"), json!([list_of(&format!("{name}_out"), "string")])),
            ],
            &[(&format!("{name}_s"), &format!("{name}_map")), (&format!("{name}_map"), &format!("{name}_e"))],
            &[
                (&format!("{name}_s"), "xs", &format!("{name}_map"), "iterated_x"),
                (&format!("{name}_map"), "collected_y", &format!("{name}_e"), &format!("{name}_out")),
            ],
        )
    };
    let parallel = json!({"component_type": "ParallelFlowNode", "id": "par", "name": "par", "subflows": [inner("left"), inner("right")]});
    let middle = flow_json(
        "middle",
        vec![
            start("m_s", json!([list_of("xs", "string")])),
            parallel,
            end("m_e", json!([list_of("left_out", "string"), list_of("right_out", "string")])),
        ],
        &[("m_s", "par"), ("par", "m_e")],
        &[("m_s", "xs", "par", "xs"), ("par", "left_out", "m_e", "left_out"), ("par", "right_out", "m_e", "right_out")],
    );
    let outer = map_node("outer", "outer", "", Some(2), middle, "xs", ("left_out", json!({"type": "array", "items": {"type": "string"}})));
    let nested = json!({"title": "collected_left_out", "type": "array", "items": {"type": "array", "items": {"type": "string"}}});
    root(flow_json(
        "root",
        vec![
            start("s", json!([{"title": "groups", "type": "array", "items": {"type": "array", "items": {"type": "string"}}}])),
            outer,
            end("e", json!([nested])),
        ],
        &[("s", "outer"), ("outer", "e")],
        &[("s", "groups", "outer", "iterated_xs"), ("outer", "collected_left_out", "e", "collected_left_out")],
    ))
}

#[tokio::test]
async fn nested_fan_outs_hold_every_max_workers_at_every_level() {
    let model = Counter::echo(|item| Duration::from_millis(10) + jitter(item, 10));
    let plan = Plan::new(&nested_flow(), with(&model)).unwrap();
    let groups: Vec<Json> = (0..5).map(|g| json!((0..7).map(|i| format!("g{g}x{i}")).collect::<Vec<_>>())).collect();
    let mut inputs = Map::new();
    inputs.insert("groups".into(), Json::Array(groups));
    let outputs = finish(&plan, inputs).await;
    // 5 groups × 2 branches × 7 items.
    assert_eq!(model.started.load(Ordering::SeqCst), 70);
    let first: Vec<Json> = (0..7).map(|i| json!(format!("done g0x{i}"))).collect();
    assert_eq!(outputs["collected_left_out"][0], Json::Array(first));
    assert_eq!(outputs["collected_left_out"][4][6], "done g4x6");
    // Every inner map: at most 3 at once; every outer item: 2 branches × 3; in all: 2 × 2 × 3.
    for g in 0..5 {
        for side in ["left", "right"] {
            let inner = format!("root/outer[{g}]/par[{}]/inner", if side == "left" { 0 } else { 1 });
            assert_eq!(model.peak_under(&inner), 3, "{inner}");
        }
        assert_eq!(model.peak_under(&format!("root/outer[{g}]/par")), 6);
    }
    assert_eq!(model.peak_under("root/outer"), 12);
    assert_eq!(model.peak.load(Ordering::SeqCst), 12);
}

// ---------------------------------------------------------------------------------------------
// Failure and cancellation

#[tokio::test]
async fn the_first_failing_item_cancels_its_siblings_and_is_named() {
    let model = Counter::new(|item, _| {
        if item == "i5" {
            (Duration::from_millis(30), Err(LlmError::new(LlmErrorKind::ContentFiltered, "the model refused")))
        } else {
            (Duration::from_secs(30), Ok("late".into()))
        }
    });
    let plan = Plan::new(&map_flow("", Some(10)), with(&model)).unwrap();
    let t0 = Instant::now();
    let mut run = plan.start(items(40)).unwrap();
    let err = run.execute().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "failed fast: {:?}", t0.elapsed());
    assert_eq!(err.kind, RunErrorKind::Llm);
    assert_eq!(
        err.message, "ExtendedParallelMapNode \"map\" item 5: LlmNode \"w_work\": the LLM call failed: the model refused",
        "the error names the item and its cause"
    );
    assert_eq!(err.llm.as_ref().map(|e| e.kind), Some(LlmErrorKind::ContentFiltered), "the LLM error's data reaches the caller");
    // Items 0..10 started; item 5 failed; the other 9 were dropped before finishing, and the
    // 30 items never started.
    assert_eq!(model.started.load(Ordering::SeqCst), 10);
    assert_eq!(model.finished.load(Ordering::SeqCst), 1);
    assert_eq!(model.dropped.load(Ordering::SeqCst), 9, "the cancelled calls were dropped by the time the error came back");
    assert_eq!(model.in_flight.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(model.finished.load(Ordering::SeqCst), 1, "no cancelled call completes later");
    assert!(matches!(&run.state().outcome, weft_exec::state::Outcome::Failed { error } if error.message.contains("item 5")));
}

#[cfg(unix)]
#[tokio::test]
async fn a_failing_branch_kills_the_tool_processes_of_its_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // Branch 0 runs a tool that records its pid and hangs; branch 1 fails a little later.
    let slow = json!({"component_type": "ServerTool", "id": "hang", "name": "hang", "inputs": [], "outputs": [string("r")]});
    let tool_branch = flow_json(
        "tool_branch",
        vec![
            start("t_s", json!([])),
            json!({"component_type": "ToolNode", "id": "t_tool", "name": "call_hang", "tool": slow}),
            end("t_e", json!([string("r")])),
        ],
        &[("t_s", "t_tool"), ("t_tool", "t_e")],
        &[("t_tool", "r", "t_e", "r")],
    );
    let failing = flow_json(
        "failing",
        vec![start("f_s", json!([])), llm("f_llm", "item fail", string("y")), end("f_e", json!([string("y")]))],
        &[("f_s", "f_llm"), ("f_llm", "f_e")],
        &[("f_llm", "y", "f_e", "y")],
    );
    let parallel = json!({"component_type": "ParallelFlowNode", "id": "par", "name": "par", "subflows": [tool_branch, failing]});
    let flow = root(flow_json(
        "root",
        vec![start("s", json!([])), parallel, end("e", json!([string("r"), string("y")]))],
        &[("s", "par"), ("par", "e")],
        &[("par", "r", "e", "r"), ("par", "y", "e", "y")],
    ));
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let mut tools = ToolRegistry::new();
    tools.register("hang", CommandTool::new(vec!["sh".into(), "-c".into(), script]));
    let model = Counter::new(|_, _| (Duration::from_millis(300), Err(LlmError::new(LlmErrorKind::Other, "no"))));
    let plan = Plan::new(&flow, with(&model).with_tools(tools)).unwrap();
    let err = plan.start(Map::new()).unwrap().execute().await.unwrap_err();
    assert!(err.message.starts_with("ParallelFlowNode \"par\" branch 1 (\"failing\"): LlmNode \"f_llm\""), "{}", err.message);
    let pid = std::fs::read_to_string(&pid_file).expect("the tool started").trim().to_owned();
    // SIGKILL was sent when the run returned; give the kernel a moment to deliver it.
    let alive = || std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
    let t0 = Instant::now();
    while alive() && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(), "the sibling's tool process {pid} was killed");
}

#[tokio::test]
async fn a_node_timeout_bounds_the_whole_fan_out() {
    // Each call takes 40 ms, one at a time: 10 items need 400 ms, the timeout is 150 ms.
    let model = Counter::echo(|_| Duration::from_millis(40));
    let options = with(&model).with_node_timeout(Duration::from_millis(150));
    let plan = Plan::new(&map_flow("MapNode", None), options).unwrap();
    let err = plan.start(items(10)).unwrap().execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Timeout);
    assert!(err.message.starts_with("MapNode \"map\": did not finish within the node timeout of 150 ms"), "{}", err.message);
    let done = model.finished.load(Ordering::SeqCst);
    assert!((2..=4).contains(&done), "{done} items finished before the timeout");
    assert_eq!(model.dropped.load(Ordering::SeqCst), 1, "the item in flight was cancelled");
}

// ---------------------------------------------------------------------------------------------
// Iterate or broadcast, zipping, jq unpacking

/// start(xs: list, label: string) → map over worker2(x, label) → end.
fn two_input_flow(label_type: Json) -> Flow {
    let sub = flow_json(
        "w2",
        vec![
            start("w2_s", json!([{"title": "x", "type": "string"}, {"title": "label", "type": "string"}])),
            llm("w2_work", "item {{label}}:{{x}}", string("y")),
            end("w2_e", json!([string("y")])),
        ],
        &[("w2_s", "w2_work"), ("w2_work", "w2_e")],
        &[("w2_s", "x", "w2_work", "x"), ("w2_s", "label", "w2_work", "label"), ("w2_work", "y", "w2_e", "y")],
    );
    let map = json!({"component_type": "ParallelMapNode", "id": "map", "name": "map", "subflow": sub, "reducers": {"y": "append"}});
    let mut label = label_type;
    label["title"] = json!("label");
    root(flow_json(
        "root",
        vec![start("s", json!([list_of("xs", "string"), label])), map, end("e", json!([list_of("collected_y", "string")]))],
        &[("s", "map"), ("map", "e")],
        &[("s", "xs", "map", "iterated_x"), ("s", "label", "map", "iterated_label"), ("map", "collected_y", "e", "collected_y")],
    ))
}

#[tokio::test]
async fn a_scalar_source_is_broadcast_and_two_list_sources_are_zipped() {
    let model = Counter::echo(|_| Duration::ZERO);
    let plan = Plan::new(&two_input_flow(json!({"type": "string"})), with(&model)).unwrap();
    let inputs = json!({"xs": ["a", "b"], "label": "L"}).as_object().unwrap().clone();
    assert_eq!(finish(&plan, inputs).await["collected_y"], json!(["done L:a", "done L:b"]));

    let plan = Plan::new(&two_input_flow(json!({"type": "array", "items": {"type": "string"}})), with(&model)).unwrap();
    let inputs = json!({"xs": ["a", "b"], "label": ["P", "Q"]}).as_object().unwrap().clone();
    assert_eq!(finish(&plan, inputs).await["collected_y"], json!(["done P:a", "done Q:b"]));

    let inputs = json!({"xs": ["a", "b", "c"], "label": ["P", "Q"]}).as_object().unwrap().clone();
    let err = plan.start(inputs).unwrap().execute().await.unwrap_err();
    assert_eq!(
        err.message,
        "ParallelMapNode \"map\": the iterated inputs have different lengths: \"iterated_x\" has 3 items and \"iterated_label\" has 2; iterated lists are zipped, so give them equal lengths"
    );
}

#[tokio::test]
async fn an_extended_map_unpacks_items_with_jq_and_iterates_objects_as_key_value_pairs() {
    let sub = flow_json(
        "w3",
        vec![
            start("w3_s", json!([{"title": "name", "type": "string"}, {"title": "topic", "type": "string"}])),
            llm("w3_work", "item {{topic}}/{{name}}", string("y")),
            end("w3_e", json!([string("y")])),
        ],
        &[("w3_s", "w3_work"), ("w3_work", "w3_e")],
        &[("w3_s", "name", "w3_work", "name"), ("w3_s", "topic", "w3_work", "topic"), ("w3_work", "y", "w3_e", "y")],
    );
    let map = json!({"component_type": "ExtendedParallelMapNode", "id": "map", "name": "map", "flow": sub,
        "inputs": [{"title": "sections", "type": "array", "items": {}}, string("topic")],
        "outputs": [list_of("drafts", "string")],
        "input_mapping": {"iterated_input": "sections"}, "output_mapping": {"y": "drafts"},
        "unpack_input": {"name": ".name"}, "max_workers": 2,
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let flow = root(flow_json(
        "root",
        vec![
            start("s", json!([{"title": "sections", "type": "array", "items": {}}, string("topic")])),
            map,
            end("e", json!([list_of("drafts", "string")])),
        ],
        &[("s", "map"), ("map", "e")],
        &[("s", "sections", "map", "sections"), ("s", "topic", "map", "topic"), ("map", "drafts", "e", "drafts")],
    ));
    let model = Counter::echo(|_| Duration::ZERO);
    let plan = Plan::new(&flow, with(&model)).unwrap();
    let inputs = json!({"sections": [{"name": "intro"}, {"name": "body"}], "topic": "rust"}).as_object().unwrap().clone();
    assert_eq!(finish(&plan, inputs).await["drafts"], json!(["done rust/intro", "done rust/body"]));
    assert_eq!(model.peak.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------
// Reducers

/// start(xs: list of numbers) → MapNode (subflow: x → constant-free identity via template) →
/// outputs reduced with `reducer`.
fn reducer_flow(reducer: &str, default: Option<Json>) -> Flow {
    let sub = flow_json(
        "id",
        vec![start("id_s", json!([{"title": "x", "type": "number"}])), end("id_e", json!([{"title": "x", "type": "number"}]))],
        &[("id_s", "id_e")],
        &[("id_s", "x", "id_e", "x")],
    );
    let mut out = json!({"title": "collected_x", "type": "number"});
    if let Some(d) = default {
        out["default"] = d;
    }
    if reducer == "append" {
        out = list_of("collected_x", "number");
    }
    let map =
        json!({"component_type": "MapNode", "id": "map", "name": "reduce", "subflow": sub, "reducers": {"x": reducer}, "outputs": [out]});
    root(flow_json(
        "root",
        vec![start("s", json!([list_of("xs", "number")])), map, end("e", json!([out]))],
        &[("s", "map"), ("map", "e")],
        &[("s", "xs", "map", "iterated_x"), ("map", "collected_x", "e", "collected_x")],
    ))
}

async fn reduce(reducer: &str, default: Option<Json>, xs: Json) -> Result<Json, String> {
    let plan = Plan::new(&reducer_flow(reducer, default), RunOptions::simulated()).unwrap();
    let inputs = json!({ "xs": xs }).as_object().unwrap().clone();
    match plan.start(inputs).unwrap().execute().await {
        Ok(Status::Finished { outputs, .. }) => Ok(outputs["collected_x"].clone()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.message),
    }
}

#[tokio::test]
async fn each_reducer_over_items_and_over_nothing() {
    assert_eq!(reduce("append", None, json!([3, 1.5, 2])).await, Ok(json!([3.0, 1.5, 2.0])));
    assert_eq!(reduce("sum", None, json!([3, 1.5, 2])).await, Ok(json!(6.5)));
    assert_eq!(reduce("average", None, json!([3, 1.5, 1.5])).await, Ok(json!(2.0)));
    assert_eq!(reduce("max", None, json!([3, 7.5, 2])).await, Ok(json!(7.5)));
    assert_eq!(reduce("min", None, json!([3, 7.5, 2])).await, Ok(json!(2.0)));
    // Over nothing: [] for append, 0 for sum, the default for the others, else an error.
    assert_eq!(reduce("append", None, json!([])).await, Ok(json!([])));
    assert_eq!(reduce("sum", None, json!([])).await, Ok(json!(0.0)));
    // The EndNode casts to its `number` output, as WayFlow does.
    assert_eq!(reduce("average", Some(json!(-1)), json!([])).await, Ok(json!(-1.0)));
    assert_eq!(reduce("min", Some(json!(0)), json!([])).await, Ok(json!(0.0)));
    assert_eq!(
        reduce("max", None, json!([])).await,
        Err("MapNode \"reduce\": the max of \"x\" over no items is undefined: the list to iterate is empty and the output has no default; give output \"collected_x\" a default".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Pause and resume in the middle of a fan-out

#[tokio::test]
async fn a_fan_out_paused_after_k_items_resumes_elsewhere_with_only_the_rest() {
    const N: usize = 64;
    const K: usize = 20;
    let flow = map_flow("", Some(64));
    // Uninterrupted run, for the expected outputs.
    let fast = Counter::echo(|_| Duration::ZERO);
    let expected = finish(&Plan::new(&flow, with(&fast)).unwrap(), items(N)).await;

    // The first K items answer at once, the later ones take far longer than the pause.
    let slow = Counter::echo(|item| {
        let i: usize = item.trim_start_matches('i').parse().unwrap();
        if i < K { Duration::ZERO } else { Duration::from_secs(60) }
    });
    let plan = Plan::new(&flow, with(&slow)).unwrap();
    let mut run = plan.start(items(N)).unwrap();
    let paused = tokio::time::timeout(Duration::from_millis(300), run.execute()).await;
    assert!(paused.is_err(), "the run was paused, not finished");
    let text = serde_json::to_string(run.state()).unwrap();
    let state: RunState = serde_json::from_str(&text).unwrap();
    let done = state
        .frames
        .values()
        .find_map(|f| match &f.position {
            weft_exec::state::Position::InBranches { done, .. } => Some(done.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(done, K, "k items had finished when the run was paused");
    // Dropping `execute()` aborts its tasks; the runtime drops them at its next turn.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(slow.dropped.load(Ordering::SeqCst), N - K, "the paused calls were dropped");
    assert_eq!(slow.in_flight.load(Ordering::SeqCst), 0);
    drop(run);

    // "Another process": a new plan and model, the state read back from JSON.
    let fresh = Counter::echo(|_| Duration::ZERO);
    let plan = Plan::new(&flow, with(&fresh)).unwrap();
    let mut resumed = plan.resume(state).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!() };
    assert_eq!(fresh.started.load(Ordering::SeqCst), N - K, "the model sees exactly the items that had not finished");
    assert_eq!(outputs, expected);
}
