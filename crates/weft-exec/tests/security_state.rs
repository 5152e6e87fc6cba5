//! Issue 10, "no panic on any input", for run states: a state file is as editable as any file,
//! so `Plan::resume` checks it and refuses a damaged one with an error naming the damage;
//! what it accepts runs on (or fails with a run error) without a panic anywhere.
//!
//! The states are real: corpus documents and the examples run on the simulated model, paused
//! after k calls (the (k+1)-th call never answers; mid-fan-out, mid-loop, inside subflows) and
//! at every input request. The property test mutates their JSON (deletes, replaces, duplicates,
//! renames keys, nudges numbers, copies and swaps subtrees) and resumes and executes each
//! mutant in-process for a bounded number of steps. A panic hook counts panics, so a panic in a
//! call task (which tokio turns into a join error) fails the test as surely as one on the test
//! thread. Nothing in the engine catches unwinds.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use weft_exec::{InputRequest, Plan, ResumeError, RunOptions, RunState, Status};
use weft_flow::Flow;
use weft_llm::simulated::{SimulatedModel, SimulatedOptions, generate};
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError};

/// Cases per property (issue 10 asks for at least 10,000 in CI).
const CASES: u32 = 10_000;

/// Steps a resumed mutant may take per execution path: enough to finish any of the flows,
/// small enough that a mutated loop stops at once.
const MAX_STEPS: u64 = 200;

// ---------------------------------------------------------------------------------------------
// Panics anywhere in the process are counted.

// Per thread: the tests run in parallel, and each runs its engine (call tasks included) on a
// current-thread runtime, so its panics are its own thread's.
thread_local! {
    static PANICS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn panics() -> usize {
    PANICS.with(std::cell::Cell::get)
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Real states

const DOCUMENTS: &[&str] = &[
    "p_loop_input_until_confirmed.json",
    "p_tool_node_client.json",
    "p_tool_node_server.json",
    "p_flow_node_branches.json",
    "p_input_output_messages.json",
    "p_parallel_flow_node.json",
    "p_parallel_map_node.json",
    "p_map_node_append.json",
    "seed_parallel_marketing.json",
    "w_branching_loop.json",
    "w_map_step.json",
    "w_map_variants.json",
    "w_prompt_template_orchestrator.json",
    "w_subflow_and_api_call.json",
    "w_plugin_control_nodes.json",
    "w_extended_tool_and_llm_nodes.json",
];

const EXAMPLES: &[&str] = &["evaluator_loop.json", "guardrails.json", "orchestrator_workers.json", "voting.json"];

fn documents() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = manifest.join("../../../shared/agentspec/corpus/valid");
    let examples = manifest.join("../../examples/flows");
    DOCUMENTS.iter().map(|d| corpus.join(d)).chain(EXAMPLES.iter().map(|e| examples.join(e))).collect()
}

/// The simulated model for the first `k` calls; every later call never answers, so the run
/// pauses with those calls in flight (as Ctrl-C leaves it).
struct Gate {
    inner: SimulatedModel,
    k: usize,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl ChatModel for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.k {
            std::future::pending::<()>().await;
        }
        self.inner.chat(request).await
    }
}

/// One flow with the plan mutants resume on, and the states its runs went through.
struct Case {
    name: String,
    plan: Arc<Plan>,
    states: Vec<Json>,
}

fn answer_for(plan: &Plan, request: &InputRequest, round: usize) -> Json {
    match request {
        InputRequest::Message { .. } => Json::String(if round.is_multiple_of(2) { "yes" } else { "open sesame" }.into()),
        InputRequest::Tool { tool, .. } => {
            let spec = plan.flow().spec();
            let c = spec.components.iter().position(|c| c.is("ClientTool") && &c.name == tool).expect("the client tool");
            let schemas: Vec<Json> = plan.flow().io(c).outputs.iter().map(|p| p.schema.clone()).collect();
            common::generated_outputs(&schemas)
        }
        InputRequest::ClientTools { calls, .. } => {
            let spec = plan.flow().spec();
            let mut by_id = Map::new();
            for call in calls {
                let c = spec.components.iter().position(|c| c.is("ClientTool") && c.name == call.tool).expect("the client tool");
                let schemas: Vec<Json> = plan.flow().io(c).outputs.iter().map(|p| p.schema.clone()).collect();
                by_id.insert(call.tool_request_id.clone(), common::generated_outputs(&schemas));
            }
            Json::Object(by_id)
        }
        InputRequest::Confirmation { .. } => Json::String(if round.is_multiple_of(2) { "approve" } else { "reject: no" }.into()),
    }
}

/// Runs `flow` letting `k` LLM calls through, recording the state at every input request and
/// where it pauses.
async fn states_of(flow: &Flow, k: usize, into: &mut Vec<Json>) {
    let gate = Arc::new(Gate { inner: SimulatedModel::new(SimulatedOptions::default()), k, calls: AtomicUsize::new(0) });
    let Ok(plan) =
        Plan::new(flow, RunOptions::simulated().with_model(gate).with_tools(common::tools_for(flow)).with_http(common::offline_http()))
    else {
        return;
    };
    let inputs: Map<String, Json> = plan.inputs().iter().map(|p| (p.title().to_owned(), generate(&p.schema, 1))).collect();
    let mut run = plan.start(inputs).unwrap();
    for round in 0..6 {
        match tokio::time::timeout(Duration::from_millis(40), run.execute()).await {
            Err(_) => {
                into.push(serde_json::to_value(run.state()).unwrap());
                return;
            }
            Ok(Ok(Status::InputRequired { request })) => {
                into.push(serde_json::to_value(run.state()).unwrap());
                run.submit(answer_for(&plan, &request, round)).unwrap();
            }
            Ok(_) => return,
        }
    }
}

fn cases(rt: &tokio::runtime::Runtime) -> Vec<Case> {
    let mut cases = Vec::new();
    for path in documents() {
        let flow = common::load(&path);
        let options = RunOptions {
            max_steps: MAX_STEPS,
            ..RunOptions::simulated().with_tools(common::tools_for(&flow)).with_http(common::offline_http())
        };
        let Ok(plan) = Plan::new(&flow, options) else { continue };
        let mut states = Vec::new();
        for k in [0, 1, 2, 3, 5, 8, 13] {
            rt.block_on(states_of(&flow, k, &mut states));
        }
        let mut seen = BTreeSet::new();
        states.retain(|s| seen.insert(s.to_string()));
        if !states.is_empty() {
            cases.push(Case { name: path.file_name().unwrap().to_string_lossy().into_owned(), plan, states });
        }
    }
    cases
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// A JSON pointer as its tokens.
type Path_ = Vec<String>;

/// Every location in `value`, in pre-order.
fn locations(value: &Json, at: &mut Path_, out: &mut Vec<Path_>) {
    out.push(at.clone());
    match value {
        Json::Object(m) => {
            for (k, v) in m {
                at.push(k.clone());
                locations(v, at, out);
                at.pop();
            }
        }
        Json::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                at.push(i.to_string());
                locations(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Strings and numbers found in the state (ids, paths, node names, frame ids): the values a
/// hand-edited file most plausibly swaps in.
fn known_words(value: &Json, out: &mut Vec<Json>) {
    match value {
        Json::Object(m) => {
            for (k, v) in m {
                out.push(Json::String(k.clone()));
                known_words(v, out);
            }
        }
        Json::Array(a) => a.iter().for_each(|v| known_words(v, out)),
        Json::String(_) | Json::Number(_) => out.push(value.clone()),
        _ => {}
    }
}

fn get_mut<'v>(value: &'v mut Json, path: &[String]) -> Option<&'v mut Json> {
    let mut at = value;
    for token in path {
        at = match at {
            Json::Object(m) => m.get_mut(token)?,
            Json::Array(a) => a.get_mut(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

fn get<'v>(value: &'v Json, path: &[String]) -> Option<&'v Json> {
    let mut at = value;
    for token in path {
        at = match at {
            Json::Object(m) => m.get(token)?,
            Json::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// What replaces a value.
#[derive(Debug, Clone)]
enum Replacement {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Text(String),
    /// The n-th known word of the state.
    Known(usize),
    EmptyList,
    EmptyObject,
    /// A copy of the value at another location.
    Subtree(usize),
    /// A value of the same kind from elsewhere in the state: another string, number, list or
    /// object (the edits most likely to keep the file readable and reach the check).
    SameKind(usize),
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the value (from its object or list).
    Delete(usize),
    Replace(usize, Replacement),
    /// Put a second copy beside it (a list element twice; an object member under a new key).
    Duplicate(usize, Replacement),
    /// Give an object member another key (frame ids, node ids, paths are keys).
    Rename(usize, Replacement),
    /// Add to a number.
    Nudge(usize, i64),
    /// Exchange two values.
    Swap(usize, usize),
}

/// The region of the state a mutation aims at: the whole state, or what the scheduler walks.
const REGIONS: &[&str] = &["", "frames", "pending", "frames", "next_frame", "seq", "frames"];

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        Just(Replacement::Null),
        any::<bool>().prop_map(Replacement::Bool),
        prop_oneof![-3i64..12, Just(i64::MIN), Just(i64::MAX), Just(-1)].prop_map(Replacement::Int),
        prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), Just(1u64 << 53), Just(u32::MAX as u64 + 1)].prop_map(Replacement::Big),
        prop_oneof![Just(f64::MAX), Just(-0.5), Just(1e300), Just(0.5), Just(-1e-300)].prop_map(Replacement::Float),
        prop_oneof![Just(String::new()), Just("x".to_owned()), Just("root".to_owned()), Just("0".to_owned()), Just("busy".to_owned())]
            .prop_map(Replacement::Text),
        any::<usize>().prop_map(Replacement::Known),
        any::<usize>().prop_map(Replacement::Known),
        Just(Replacement::EmptyList),
        Just(Replacement::EmptyObject),
        any::<usize>().prop_map(Replacement::Subtree),
        any::<usize>().prop_map(Replacement::SameKind),
        any::<usize>().prop_map(Replacement::SameKind),
        any::<usize>().prop_map(Replacement::SameKind),
        any::<usize>().prop_map(Replacement::SameKind),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<usize>().prop_map(Mutation::Delete),
        6 => (any::<usize>(), replacement()).prop_map(|(at, r)| Mutation::Replace(at, r)),
        1 => (any::<usize>(), replacement()).prop_map(|(at, r)| Mutation::Duplicate(at, r)),
        2 => (any::<usize>(), replacement()).prop_map(|(at, r)| Mutation::Rename(at, r)),
        2 => (any::<usize>(), -3i64..4).prop_map(|(at, d)| Mutation::Nudge(at, d)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn value_of(r: &Replacement, state: &Json, words: &[Json], all: &[Path_], old: Option<&Json>) -> Json {
    match r {
        Replacement::SameKind(i) => {
            let kind = |v: &Json| std::mem::discriminant(v);
            let Some(old) = old else { return Json::Null };
            let same: Vec<&Json> = all.iter().filter_map(|p| get(state, p)).filter(|v| kind(v) == kind(old)).collect();
            let mut numbers: Vec<Json> = words.iter().filter(|w| w.is_number()).cloned().collect();
            numbers.extend([json!(0), json!(1), json!(2), json!(u64::MAX)]);
            match old {
                Json::Number(_) => numbers[i % numbers.len()].clone(),
                _ => same.get(i % same.len().max(1)).map(|v| (*v).clone()).unwrap_or(Json::Null),
            }
        }
        Replacement::Null => Json::Null,
        Replacement::Bool(b) => json!(b),
        Replacement::Int(n) => json!(n),
        Replacement::Big(n) => json!(n),
        Replacement::Float(x) => json!(x),
        Replacement::Text(t) => json!(t),
        Replacement::Known(i) => words.get(i % words.len().max(1)).cloned().unwrap_or(Json::Null),
        Replacement::EmptyList => json!([]),
        Replacement::EmptyObject => json!({}),
        Replacement::Subtree(i) => all.get(i % all.len()).and_then(|p| get(state, p)).cloned().unwrap_or(Json::Null),
    }
}

fn key_of(r: &Replacement, words: &[Json]) -> String {
    match r {
        Replacement::Int(n) => n.to_string(),
        Replacement::Big(n) => n.to_string(),
        Replacement::Text(t) => t.clone(),
        Replacement::SameKind(i) | Replacement::Known(i) => match words.get(i % words.len().max(1)) {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "k".to_owned(),
        },
        _ => "7".to_owned(),
    }
}

/// Applies the mutations, each aimed at a location of its region.
fn mutate(state: &Json, region: usize, mutations: &[Mutation]) -> Json {
    let mut value = state.clone();
    for m in mutations {
        let mut all = Vec::new();
        locations(&value, &mut Vec::new(), &mut all);
        let prefix = REGIONS[region % REGIONS.len()];
        let aimed: Vec<Path_> = all.iter().filter(|p| prefix.is_empty() || p.first().is_some_and(|f| f == prefix)).cloned().collect();
        let pool = if aimed.is_empty() { &all } else { &aimed };
        let mut words = Vec::new();
        known_words(&value, &mut words);
        let pick = |i: &usize| pool[i % pool.len()].clone();
        match m {
            Mutation::Delete(i) => {
                let path = pick(i);
                if let Some((last, parent)) = path.split_last()
                    && let Some(p) = get_mut(&mut value, parent)
                {
                    match p {
                        Json::Object(o) => {
                            o.remove(last);
                        }
                        Json::Array(a) => {
                            if let Ok(n) = last.parse::<usize>()
                                && n < a.len()
                            {
                                a.remove(n);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Replace(i, r) => {
                let path = pick(i);
                let new = value_of(r, &value, &words, &all, get(&value, &path));
                if let Some(slot) = get_mut(&mut value, &path) {
                    *slot = new;
                }
            }
            Mutation::Duplicate(i, r) => {
                let path = pick(i);
                let key = key_of(r, &words);
                if let Some((last, parent)) = path.split_last()
                    && let Some(copy) = get(&value, &path).cloned()
                    && let Some(p) = get_mut(&mut value, parent)
                {
                    match p {
                        Json::Object(o) => {
                            o.insert(if &key == last { format!("{key}1") } else { key }, copy);
                        }
                        Json::Array(a) => a.push(copy),
                        _ => {}
                    }
                }
            }
            Mutation::Rename(i, r) => {
                let path = pick(i);
                let key = key_of(r, &words);
                if let Some((last, parent)) = path.split_last()
                    && let Some(Json::Object(o)) = get_mut(&mut value, parent)
                    && let Some(v) = o.remove(last)
                {
                    o.insert(key, v);
                }
            }
            Mutation::Nudge(i, d) => {
                // The nearest number at or after the pick.
                let start = i % pool.len();
                let found = (0..pool.len()).map(|k| &pool[(start + k) % pool.len()]).find(|p| get(&value, p).is_some_and(Json::is_number));
                if let Some(path) = found.cloned()
                    && let Some(slot) = get_mut(&mut value, &path)
                {
                    let n = slot.as_i64().unwrap_or(0);
                    *slot = json!(n.saturating_add(*d));
                }
            }
            Mutation::Swap(a, b) => {
                let (pa, pb) = (pick(a), pick(b));
                // Neither may contain the other.
                if !pa.starts_with(&pb)
                    && !pb.starts_with(&pa)
                    && let (Some(va), Some(vb)) = (get(&value, &pa).cloned(), get(&value, &pb).cloned())
                {
                    *get_mut(&mut value, &pa).unwrap() = vb;
                    *get_mut(&mut value, &pb).unwrap() = va;
                }
            }
        }
    }
    value
}

// ---------------------------------------------------------------------------------------------
// Resume and execute a state, in-process

/// What became of a state.
#[derive(Debug, PartialEq)]
enum Fate {
    /// It is not a run state at all (serde refuses it, as `weft resume` then does).
    Unreadable,
    /// `Plan::resume` refused it, saying this.
    Refused(String),
    /// It resumed and ran to an end, an input request or a run error.
    Ran,
}

/// Resumes `value` on `plan` and runs it (answering up to three requests): Ok when it was
/// refused or ran to an end or an error without a panic or an internal inconsistency.
fn exercise(rt: &tokio::runtime::Runtime, plan: &Arc<Plan>, value: Json) -> Result<Fate, TestCaseError> {
    let before = panics();
    // A state that does not even deserialize is `weft resume`'s "damaged weft state file".
    let Ok(state) = serde_json::from_value::<RunState>(value) else { return Ok(Fate::Unreadable) };
    let refused = match plan.resume(state) {
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.starts_with("the run state "), "{text}");
            Fate::Refused(text)
        }
        Ok(mut run) => {
            let outcome = rt.block_on(async {
                for round in 0..4 {
                    let status = tokio::time::timeout(Duration::from_secs(20), run.execute()).await;
                    match status {
                        Err(_) => return Err("execute did not end within 20 s".to_owned()),
                        Ok(Ok(Status::InputRequired { request })) => {
                            let _ = run.submit(answer_for(plan, &request, round));
                        }
                        Ok(Ok(Status::Finished { .. })) => return Ok(()),
                        Ok(Err(e)) => return if e.message.contains("bug in weft") { Err(e.message) } else { Ok(()) },
                    }
                }
                Ok(())
            });
            if let Err(why) = outcome {
                return Err(TestCaseError::fail(format!("a resumed state went wrong: {why}")));
            }
            Fate::Ran
        }
    };
    prop_assert_eq!(panics(), before, "a panic happened while resuming or running (see the output above)");
    Ok(refused)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn states_the_engine_writes_pass_the_check_and_run_on() {
    count_panics();
    let rt = runtime();
    let cases = cases(&rt);
    assert!(cases.len() >= 12, "only {} documents gave states", cases.len());
    let mut kinds = BTreeSet::new();
    for case in &cases {
        for state in &case.states {
            for frame in state["frames"].as_object().unwrap().values() {
                kinds.insert(frame["position"]["state"].as_str().unwrap().to_owned());
            }
            let fate = exercise(&rt, &case.plan, state.clone()).unwrap();
            assert_eq!(fate, Fate::Ran, "{}: a state the engine wrote was not resumed:\n{state:#}", case.name);
        }
    }
    // The states cover every place a frame can stand while a run waits.
    for kind in ["busy", "waiting", "in_child", "in_branches"] {
        assert!(kinds.contains(kind), "no state with a frame {kind}: {kinds:?}");
    }
}

#[test]
fn mutated_states_are_refused_or_run_without_a_panic() {
    count_panics();
    let rt = runtime();
    let cases = cases(&rt);
    let states: Vec<(usize, &Json)> = cases.iter().enumerate().flat_map(|(i, c)| c.states.iter().map(move |s| (i, s))).collect();
    assert!(states.len() >= 20, "only {} states", states.len());
    let [unreadable, refused, ran] = [(); 3].map(|()| AtomicUsize::new(0));
    let config = Config { cases: CASES, max_global_rejects: 20 * CASES, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<usize>(), any::<usize>(), proptest::collection::vec(mutation(), 1..4));
    let result = runner.run(&strategy, |(which, region, mutations)| {
        let (case, state) = states[which % states.len()];
        let mutant = mutate(state, region, &mutations);
        let counter = match exercise(&rt, &cases[case].plan, mutant)? {
            Fate::Unreadable => &unreadable,
            Fate::Refused(_) => &refused,
            Fate::Ran => &ran,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // Only mutants that are still run states count as cases: the 10,000 all reach
        // `Plan::resume`.
        prop_assume!(!std::ptr::eq(counter, &unreadable));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not vacuous: many mutants reach the check and are refused by it, many run.
    let [unreadable, refused, ran] = [unreadable, refused, ran].map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "{unreadable} mutants were no run states; of {CASES} that were, {refused} were refused by the check and {ran} resumed and ran"
    );
    assert_eq!(refused + ran, CASES as usize);
    assert!(refused > CASES as usize / 10, "only {refused} of {CASES} mutants were refused by the check");
    assert!(ran > CASES as usize / 10, "only {ran} of {CASES} mutants ran");
}

/// The state of `doc` paused after `k` calls, with its resuming plan.
fn paused(doc: &str, k: usize) -> (Arc<Plan>, Json) {
    let rt = runtime();
    let path = documents().into_iter().find(|p| p.ends_with(doc)).unwrap();
    let flow = common::load(&path);
    let mut states = Vec::new();
    rt.block_on(states_of(&flow, k, &mut states));
    let plan = Plan::new(&flow, RunOptions::simulated().with_tools(common::tools_for(&flow)).with_http(common::offline_http())).unwrap();
    (plan, states.pop().expect("a paused state"))
}

fn damaged(plan: &Arc<Plan>, state: Json) -> (String, String) {
    match plan.resume(serde_json::from_value(state).unwrap()) {
        Err(ResumeError::Damaged { pointer, problem }) => (pointer, problem),
        Err(other) => panic!("refused, but not as damaged: {other}"),
        Ok(_) => panic!("the damaged state was accepted"),
    }
}

/// A running item frame of the paused fan-out and its parent.
fn item_frame(state: &Json) -> (String, u64) {
    let frames = state["frames"].as_object().unwrap();
    let (id, frame) = frames.iter().find(|(id, f)| id.as_str() != "0" && f["parent"].is_array()).expect("a child frame");
    (id.clone(), frame["parent"][0].as_u64().unwrap())
}

#[test]
fn a_state_whose_frame_parents_were_edited_is_refused_before_any_call() {
    count_panics();
    let (plan, state) = paused("orchestrator_workers.json", 1);
    let (id, parent) = item_frame(&state);

    let mut missing = state.clone();
    missing["frames"][&id]["parent"][0] = json!(999);
    let (pointer, problem) = damaged(&plan, missing);
    assert_eq!(pointer, format!("/frames/{id}/parent"));
    assert!(problem.contains("frame 999"), "{problem}");

    let mut to_itself = state.clone();
    to_itself["frames"][&id]["parent"][0] = json!(id.parse::<u64>().unwrap());
    let (pointer, problem) = damaged(&plan, to_itself);
    assert!(pointer.ends_with("/parent"), "{pointer}");
    assert!(problem.contains("cycle"), "{problem}");

    let mut none = state.clone();
    none["frames"][&id]["parent"] = Json::Null;
    let (pointer, problem) = damaged(&plan, none);
    assert_eq!(pointer, format!("/frames/{id}/parent"));
    assert!(problem.contains("only frame 0"), "{problem}");

    // The parent exists but does not wait for this frame (it names the root instead).
    if parent != 0 {
        let mut wrong = state.clone();
        wrong["frames"][&id]["parent"][0] = json!(0);
        let (pointer, problem) = damaged(&plan, wrong);
        assert_eq!(pointer, format!("/frames/{id}/parent"));
        assert!(problem.contains("does not wait for it"), "{problem}");
    }
    assert_eq!(panics(), 0);
}

#[test]
fn positions_indices_pending_requests_counters_and_inputs_are_checked() {
    count_panics();
    let (plan, state) = paused("orchestrator_workers.json", 1);
    let fan = state["frames"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, f)| f["position"]["state"] == "in_branches")
        .map(|(id, _)| id.clone())
        .expect("a fan-out frame");

    let edit = |f: &dyn Fn(&mut Json)| {
        let mut s = state.clone();
        f(&mut s);
        damaged(&plan, s)
    };
    let (pointer, problem) = edit(&|s| s["frames"]["0"]["position"]["node"] = json!("nowhere"));
    assert_eq!((pointer.as_str(), problem.contains("\"nowhere\"")), ("/frames/0/position/node", true), "{problem}");
    let (pointer, _) = edit(&|s| s["frames"][&fan]["position"]["next"] = json!(99));
    assert!(pointer.starts_with(&format!("/frames/{fan}/position/")), "{pointer}");
    let (pointer, _) = edit(&|s| s["frames"][&fan]["position"]["total"] = json!(1_000_000));
    assert!(pointer.starts_with(&format!("/frames/{fan}/position/")), "{pointer}");
    let (pointer, problem) = edit(&|s| s["next_frame"] = json!(1));
    assert_eq!(pointer, "/next_frame", "{problem}");
    let (pointer, _) = edit(&|s| s["seq"] = json!(0));
    assert!(pointer.ends_with("/seq"), "{pointer}");
    let (pointer, problem) = edit(&|s| s["inputs"]["topic"] = json!(42));
    assert_eq!(pointer, "/inputs/topic", "{problem}");
    // The root's StartNode output holds the same input, typed too.
    let start = state["frames"]["0"]["values"].as_object().unwrap().iter().find(|(_, v)| v.get("topic").is_some()).unwrap().0.clone();
    let (pointer, problem) = edit(&|s| s["frames"]["0"]["values"][&start]["topic"]["value"] = json!([1]));
    assert_eq!(pointer, format!("/frames/0/values/{start}/topic/value"), "{problem}");
    assert!(problem.contains("must be string"), "{problem}");
    let (pointer, _) = edit(&|s| s["frames"]["0"]["values"]["ghost"] = json!({}));
    assert_eq!(pointer, "/frames/0/values/ghost");
    let (pointer, _) = edit(&|s| {
        s["frames"]["0"].as_object_mut().unwrap().remove("parent");
        s["frames"].as_object_mut().unwrap().remove("0");
    });
    assert_eq!(pointer, "/frames");
    let (pointer, problem) = edit(&|s| s["pending"]["nowhere"] = json!({"kind": "message", "node": "x", "message": null}));
    assert_eq!(pointer, "/pending/nowhere", "{problem}");

    // A waiting run: the pending request and the waiting frame must match.
    let (plan, waiting) = {
        let rt = runtime();
        let path = documents().into_iter().find(|p| p.ends_with("p_loop_input_until_confirmed.json")).unwrap();
        let flow = common::load(&path);
        let mut states = Vec::new();
        rt.block_on(states_of(&flow, 100, &mut states));
        (Plan::new(&flow, RunOptions::simulated()).unwrap(), states.swap_remove(0))
    };
    let mut no_request = waiting.clone();
    no_request["pending"] = json!({});
    let (pointer, problem) = damaged(&plan, no_request);
    assert_eq!(pointer, "/pending", "{problem}");
    assert!(problem.contains("no pending request has that path"), "{problem}");
    assert_eq!(panics(), 0);
}

#[test]
fn counters_at_their_largest_do_not_overflow() {
    count_panics();
    let rt = runtime();
    let (plan, mut state) = paused("orchestrator_workers.json", 1);
    state["seq"] = json!(u64::MAX);
    state["usage"]["llm_calls"] = json!(u64::MAX);
    state["usage"]["tokens"]["input_tokens"] = json!(u64::MAX);
    for steps in state["steps"].as_object_mut().unwrap().values_mut() {
        *steps = json!(u64::MAX - 1);
    }
    for calls in state["llm_calls"].as_object_mut().unwrap().values_mut() {
        *calls = json!(u64::MAX);
    }
    let mut run = plan.resume(serde_json::from_value(state).unwrap()).unwrap();
    // The step budget is spent, so the run stops with that error, not an overflow.
    let err = rt.block_on(run.execute()).unwrap_err();
    assert!(err.message.contains("step budget exhausted"), "{}", err.message);
    assert_eq!(run.state().usage.llm_calls, u64::MAX);
    assert_eq!(panics(), 0);
}

#[test]
fn a_node_timeout_of_duration_max_is_no_deadline_and_any_rate_limit_is_safe() {
    count_panics();
    let rt = runtime();
    let path = documents().into_iter().find(|p| p.ends_with("orchestrator_workers.json")).unwrap();
    let flow = common::load(&path);
    for rps in [5e-20, f64::MIN_POSITIVE, 1e-300, f64::NAN, f64::INFINITY, -1.0, 0.0, 1e6] {
        let limits =
            weft_exec::Limiters::new(weft_exec::LimitConfig { max_in_flight: usize::MAX, requests_per_second: Some(rps), adaptive: true });
        let options = RunOptions::simulated().with_node_timeout(Duration::MAX).with_limits(limits);
        let plan = Plan::new(&flow, options).unwrap();
        let inputs: Map<String, Json> = plan.inputs().iter().map(|p| (p.title().to_owned(), generate(&p.schema, 1))).collect();
        let mut run = plan.start(inputs).unwrap();
        // A tiny rate paces the second call a year out: the run is still going, not panicked.
        let status = rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), run.execute()).await });
        if let Ok(status) = status {
            assert!(matches!(status, Ok(Status::Finished { .. })), "rps {rps}: {status:?}");
        } else {
            assert!(rps < 1.0, "rps {rps} should not hold the run back");
        }
    }
    assert_eq!(panics(), 0);
}
