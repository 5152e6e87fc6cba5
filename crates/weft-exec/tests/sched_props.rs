//! Property tests of the scheduler (issue 12, item 2), against an independent sequential
//! interpreter (`tests/props/interp.rs`, sharing no code with the engine).
//!
//! Each case draws a program (`tests/props/flow.rs`): sequences of LLM calls, templates and
//! input requests, branches on a model's answer, counter loops, parallel branches (core and
//! Extended, `max_workers` 1 to 4 or the default), map nodes of all five kinds over lists the
//! model answers (nested two or three levels in about half of the cases; a third of the runs
//! reach an item two levels deep) and subflows. It is written as an Agent Spec document,
//! loaded, planned and run with a model that answers from the prompt after a latency drawn per
//! case and prompt (on tokio's paused clock, so completions come back in every order and often
//! at the same instant), refuses the prompts of a failure set in a quarter of the cases, and,
//! in half of the cases, asks for the run to be paused when its K-th call starts (up to twice),
//! in one of three ways: its `execute()` dropped, then called again; its `execute()` dropped,
//! then its state written as JSON, read back and resumed; or the run cancelled through its
//! `CancelHandle`, then stored and resumed the same way. Input requests are answered, half of
//! the time after storing and resuming the run too.
//!
//! Checked for every case:
//! - the run finishes exactly when no prompt of the failure set is among the interpreter's
//!   prompts, and then its outputs and questions equal the interpreter's;
//! - every node runs once per visit and only once its inputs exist: the multiset of prompts the
//!   model received equals the interpreter's (a prompt is rendered from the node's inputs), up to
//!   the calls a pause interrupted (dropped, or returned at the very instant of the pause), which
//!   a resumed run makes again; a failed run sent a sub-multiset of them;
//! - at no time are more than `max_workers` branches or items of any fan-out instance, at any
//!   level of nesting, running a call;
//! - nothing is in flight when `execute()` returns (finished, waiting for input, cancelled, or
//!   failed: the error is the model's refusal of one of the failure set's prompts), nor once the
//!   runtime has dropped the tasks of a dropped `execute()` (before the clock moves: no call of a
//!   paused run keeps running); a run cancelled with a call in flight returns `Cancelled`.
//!
//! `WEFT_SCHED_CASES` sets the number of cases (default [`DEFAULT_CASES`]) and
//! `WEFT_SCHED_SEED` the seed (default 0): every run draws the same cases. A summary (cases,
//! nesting, pauses, failures, time) is printed to stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, reason = "a test fails loudly and prints its report")]

mod props;

use props::flow::{Program, Shape, program};
use props::interp::{Expected, interpret};
use props::model::{Model, Outcome};
use props::oracle::{self, Failures};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use weft_exec::{InputRequest, LimitConfig, Limiters, Plan, RunError, RunErrorKind, RunOptions, RunState, Status};
use weft_flow::Flow;
use weft_llm::LlmErrorKind;

/// Cases of a plain `cargo test`.
const DEFAULT_CASES: u32 = 10_000;

/// The cases are split over this many threads (each with its own runner, seed and runtime), so
/// the draws do not depend on the machine.
const SHARDS: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Cases

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    program: Vec<Shape>,
    /// The root flow's `arg` input.
    arg: u16,
    /// The model's latencies.
    latency_seed: u64,
    /// The model's refusals.
    failures: Option<Failures>,
    /// Where to pause, in thousandths of the run's calls.
    pauses: Vec<u16>,
    /// Store and resume the run before answering each input request.
    store_on_input: bool,
    /// How each pause stops the run and how the run goes on.
    pause_how: PauseHow,
}

/// How a pause stops the run and how the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PauseHow {
    /// `execute()` dropped, then called again on the same run.
    Drop,
    /// `execute()` dropped, the state stored as JSON, read back and resumed.
    DropAndStore,
    /// The run cancelled through its `CancelHandle` (`execute()` returns a `Cancelled` error
    /// once its calls are stopped), the state stored, read back and resumed.
    Cancel,
}

fn case() -> impl Strategy<Value = Case> {
    let failures = prop_oneof![
        3 => Just(None),
        1 => (any::<u64>(), 3u64..40).prop_map(|(seed, modulus)| Some(Failures { seed, modulus })),
    ];
    let pauses = prop_oneof![1 => Just(Vec::new()), 1 => prop::collection::vec(0u16..1000, 1..=2)];
    let pause_how = prop_oneof![Just(PauseHow::Drop), Just(PauseHow::DropAndStore), Just(PauseHow::Cancel)];
    (program(), any::<u16>(), any::<u64>(), failures, pauses, any::<bool>(), pause_how).prop_map(
        |(program, arg, latency_seed, failures, pauses, store_on_input, pause_how)| Case {
            program,
            arg,
            latency_seed,
            failures,
            pauses,
            store_on_input,
            pause_how,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Counts for the report

#[derive(Debug, Default, Clone)]
struct Stats {
    cases: u64,
    /// Programs with a map in a map's subflow.
    maps_nested: u64,
    /// ... whose run actually made a call two map levels deep.
    maps_nested_run: u64,
    /// ... three levels deep.
    maps_nested_3_run: u64,
    /// Programs with a fan-out (map or parallel) in a fan-out's subflow.
    fanouts_nested: u64,
    /// Runs paused at least once, pauses in all, and pauses made by cancelling the run (the
    /// others drop its `execute()`).
    paused_cases: u64,
    pauses: u64,
    cancels: u64,
    /// Runs that asked for input, and the requests.
    input_cases: u64,
    inputs: u64,
    /// Runs that failed (a refused prompt).
    failed: u64,
    /// Model calls.
    calls: u64,
    /// Fan-out instances with more branches or items than `max_workers` that reached the bound.
    saturated: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.maps_nested += o.maps_nested;
        self.maps_nested_run += o.maps_nested_run;
        self.maps_nested_3_run += o.maps_nested_3_run;
        self.fanouts_nested += o.fanouts_nested;
        self.paused_cases += o.paused_cases;
        self.pauses += o.pauses;
        self.cancels += o.cancels;
        self.input_cases += o.input_cases;
        self.inputs += o.inputs;
        self.failed += o.failed;
        self.calls += o.calls;
        self.saturated += o.saturated;
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

/// How a run ended, and what the test saw on the way.
struct Ended {
    result: Result<Map<String, Json>, RunError>,
    /// The questions asked, with their counts.
    questions: BTreeMap<String, usize>,
    /// The instant of each pause.
    pauses: Vec<Instant>,
    /// Pauses made by cancelling the run.
    cancels: usize,
}

/// The longest a run may take on the paused clock before it counts as hung.
const HUNG: Duration = Duration::from_secs(3600);

/// Stores the run as JSON text and resumes it from the text.
fn reload(plan: &Arc<Plan>, run: weft_exec::Run) -> Result<weft_exec::Run, String> {
    let text = serde_json::to_string(&run.into_state()).map_err(|e| format!("the state does not serialize: {e}"))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| format!("the state does not read back: {e}"))?;
    plan.resume(state).map_err(|e| format!("the stored state does not resume: {e}"))
}

/// Runs the case to its end: pauses where the model says, answers questions.
async fn drive(plan: &Arc<Plan>, model: &Model, inputs: Map<String, Json>, case: &Case) -> Result<Ended, String> {
    let mut run = plan.start(inputs).map_err(|e| format!("the run does not start: {e}"))?;
    let mut questions = BTreeMap::new();
    let mut pauses = Vec::new();
    let mut cancels = 0;
    for _ in 0..10_000 {
        let handle = run.cancel_handle();
        let mut cancelled = false;
        let step = {
            let execute = tokio::time::timeout(HUNG, run.execute());
            tokio::pin!(execute);
            loop {
                tokio::select! {
                    biased;
                    () = model.pause.notified(), if !cancelled => {
                        if case.pause_how != PauseHow::Cancel {
                            break None;
                        }
                        handle.cancel();
                        cancelled = true;
                    }
                    r = &mut execute => break Some(r.map_err(|_| "the run hung: nothing happened for an hour".to_owned())?),
                }
            }
        };
        if cancelled && !matches!(step, Some(Err(_))) {
            return Err(format!("the run was cancelled with a call in flight, yet execute() gave {step:?}"));
        }
        match step {
            None => {
                // Paused: `execute()` was dropped. Its calls are aborted; the runtime drops them
                // at its next turns, without the clock moving (this task stays runnable, so the
                // paused clock does not advance and no call can finish in the meantime).
                pauses.push(Instant::now());
                model.books().epoch += 1;
                for _ in 0..16 {
                    if model.books().in_flight == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                let left = model.books().in_flight;
                if left != 0 {
                    return Err(format!("{left} calls still in flight after the paused execute() was dropped"));
                }
                if case.pause_how == PauseHow::DropAndStore {
                    run = reload(plan, run)?;
                }
            }
            Some(Err(e)) if cancelled && e.kind == RunErrorKind::Cancelled => {
                // Cancelled: `execute()` returns once its calls are stopped and dropped.
                check_idle(model, "a cancelled execute() returned")?;
                pauses.push(Instant::now());
                cancels += 1;
                model.books().epoch += 1;
                run = reload(plan, run)?;
            }
            Some(Ok(Status::Finished { outputs, .. })) => {
                check_idle(model, "the run finished")?;
                return Ok(Ended { result: Ok(outputs), questions, pauses, cancels });
            }
            Some(Ok(Status::InputRequired { request })) => {
                check_idle(model, "the run asked for input")?;
                let InputRequest::Message { message: Some(message), .. } = request else {
                    return Err(format!("an unexpected request: {request:?}"));
                };
                *questions.entry(message.clone()).or_insert(0) += 1;
                if case.store_on_input {
                    run = reload(plan, run)?;
                }
                run.submit(json!(oracle::user_answer(&message))).map_err(|e| format!("the answer is refused: {e}"))?;
            }
            Some(Err(e)) => {
                check_idle(model, &format!("the run failed ({e})"))?;
                match run.execute().await {
                    Err(again) if again.kind == RunErrorKind::Over => {}
                    other => return Err(format!("a failed run executed again gave {other:?}")),
                }
                return Ok(Ended { result: Err(e), questions, pauses, cancels });
            }
        }
    }
    Err("the run asked for more than 10,000 answers or pauses".into())
}

fn check_idle(model: &Model, when: &str) -> Result<(), String> {
    match model.books().in_flight {
        0 => Ok(()),
        n => Err(format!("{when} with {n} calls still in flight")),
    }
}

/// `a - b` as multisets.
fn minus(a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    a.iter().filter_map(|(k, &n)| n.checked_sub(b.get(k).copied().unwrap_or(0)).filter(|&d| d > 0).map(|d| (k.clone(), d))).collect()
}

fn short(m: &BTreeMap<String, usize>) -> String {
    let items: Vec<String> = m.iter().take(6).map(|(k, n)| format!("{n} x {k:?}")).collect();
    format!("{}{}", items.join(", "), if m.len() > 6 { ", ..." } else { "" })
}

/// Runs one case and checks every property; the error says what broke.
fn check_case(case: &Case, rt: &tokio::runtime::Runtime, stats: &mut Stats) -> Result<(), String> {
    let program = Program::resolve(&case.program);
    let doc = program.document();
    let flow = match Flow::from_json(&doc) {
        Ok(l) => l.flow,
        Err(d) => return Err(format!("the generated document is invalid (a bug of the test):\n{d}\n{doc}")),
    };
    let arg = format!("a{}", case.arg);
    let x: Expected = interpret(&program, "r", &arg);
    let refused: Vec<&String> = x.prompts.keys().filter(|p| case.failures.is_some_and(|f| f.fails(p))).collect();
    let total = x.calls.max(1);
    let mut pause_at: Vec<usize> = case.pauses.iter().map(|&t| 1 + usize::from(t) * total / 1000).collect();
    pause_at.sort_unstable();
    pause_at.dedup();

    let model = Model::new(case.latency_seed, case.failures, program.chains.clone(), pause_at);
    let limits = Limiters::new(LimitConfig { max_in_flight: 1 << 20, requests_per_second: None, adaptive: false });
    let options = RunOptions::default().with_model(model.clone()).with_limits(limits);
    let plan = Plan::new(&flow, options).map_err(|e| format!("the plan is refused: {e}\n{doc}"))?;
    let mut inputs = Map::new();
    inputs.insert("ctx".into(), json!("r"));
    inputs.insert("arg".into(), json!(arg));
    let ended = rt.block_on(drive(&plan, &model, inputs, case))?;

    let books = model.books();
    if !books.violations.is_empty() {
        return Err(format!("max_workers or call placement: {}", books.violations.join("; ")));
    }
    if books.in_flight != 0 {
        return Err(format!("{} calls in flight at the end", books.in_flight));
    }
    // Once per visit: what was sent beyond the interpreter's prompts is what pauses interrupted.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut redoable: BTreeMap<String, usize> = BTreeMap::new();
    for c in &books.calls {
        *sent.entry(c.prompt.clone()).or_default() += 1;
        // A call a pause interrupted: dropped, or returned at the pause's instant (its result
        // may not have been taken). Calls of the last epoch were not interrupted by a pause: a
        // run that finishes cancels none, a failed one cancels its siblings for good.
        let interrupted = match (c.outcome, ended.pauses.get(c.epoch)) {
            (Outcome::Returned(t), Some(&pause)) if t > pause => {
                return Err(format!("a call of a dropped execute() kept running and returned after the pause: {:?}", c.prompt));
            }
            (Outcome::Dropped, Some(_)) => true,
            (Outcome::Returned(t), Some(&pause)) => t == pause,
            (Outcome::Dropped, None) if ended.result.is_ok() => {
                return Err(format!("a call was cancelled in a run that finished: {:?}", c.prompt));
            }
            (Outcome::Dropped | Outcome::Returned(_), None) | (Outcome::Running, _) => false,
        };
        if interrupted {
            *redoable.entry(c.prompt.clone()).or_default() += 1;
        }
    }
    let extra = minus(&sent, &x.prompts);
    let unexplained = minus(&extra, &redoable);
    if !unexplained.is_empty() {
        return Err(format!("prompts sent more often than their nodes were visited (or never expected): {}", short(&unexplained)));
    }
    match &ended.result {
        Ok(outputs) => {
            if let Some(p) = refused.first() {
                return Err(format!("the run finished although the model refused {p:?}"));
            }
            let missing = minus(&x.prompts, &sent);
            if !missing.is_empty() {
                return Err(format!("prompts the interpreter sent and the run did not: {}", short(&missing)));
            }
            if *outputs != x.outputs {
                return Err(format!("outputs differ:\n  run:      {outputs:?}\n  expected: {:?}", x.outputs));
            }
            if ended.questions != x.questions {
                return Err(format!("questions differ:\n  run:      {:?}\n  expected: {:?}", ended.questions, x.questions));
            }
        }
        Err(e) => {
            if refused.is_empty() {
                return Err(format!("the run failed although no expected prompt is refused: {} ({:?})", e.message, e.kind));
            }
            let prompt = e.llm.as_ref().filter(|_| e.kind == RunErrorKind::Llm).and_then(|l| {
                (l.kind == LlmErrorKind::ContentFiltered).then(|| l.message.strip_prefix("refused|").map(str::to_owned)).flatten()
            });
            match prompt {
                Some(p) if refused.contains(&&p) => {}
                _ => return Err(format!("the run failed with an unexpected error: {} ({:?})", e.message, e.kind)),
            }
            let asked_extra = minus(&ended.questions, &x.questions);
            if !asked_extra.is_empty() {
                return Err(format!("questions the interpreter never asks: {}", short(&asked_extra)));
            }
            stats.failed += 1;
        }
    }

    stats.cases += 1;
    stats.maps_nested += u64::from(program.map_depth >= 2);
    stats.maps_nested_run += u64::from(books.max_depth >= 2);
    stats.maps_nested_3_run += u64::from(books.max_depth >= 3);
    stats.fanouts_nested += u64::from(program.fanout_depth >= 2);
    stats.paused_cases += u64::from(!ended.pauses.is_empty());
    stats.pauses += ended.pauses.len() as u64;
    stats.cancels += ended.cancels as u64;
    let asked: usize = ended.questions.values().sum();
    stats.input_cases += u64::from(asked > 0);
    stats.inputs += asked as u64;
    stats.calls += books.calls.len() as u64;
    stats.saturated += books.groups.values().filter(|g| g.seen.len() > g.bound && g.peak == g.bound).count() as u64;
    Ok(())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn shard(index: u32, cases: u32, seed: u64) -> Result<Stats, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    let stats = Mutex::new(Stats::default());
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed.wrapping_mul(1_000_003).wrapping_add(u64::from(index))),
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |case| {
        let mut mine = Stats::default();
        let r = check_case(&case, &rt, &mut mine);
        stats.lock().unwrap().add(&mine);
        r.map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(stats.into_inner().unwrap()),
        Err(TestError::Fail(why, case)) => {
            let doc = Program::resolve(&case.program).document();
            Err(format!("shard {index}: {why}\nminimal case: {case:#?}\nits document (inputs ctx \"r\", arg \"a{}\"):\n{doc}", case.arg))
        }
        Err(e) => Err(format!("shard {index}: {e}")),
    }
}

#[test]
fn the_scheduler_agrees_with_a_sequential_interpreter() {
    let total = u32::try_from(env_number("WEFT_SCHED_CASES", u64::from(DEFAULT_CASES))).unwrap_or(DEFAULT_CASES);
    let seed = env_number("WEFT_SCHED_SEED", 0);
    let t0 = std::time::Instant::now();
    let results: Vec<Result<Stats, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SHARDS)
            .map(|i| {
                let cases = total / SHARDS + u32::from(i < total % SHARDS);
                std::thread::Builder::new().stack_size(16 << 20).spawn_scoped(s, move || shard(i, cases, seed)).unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(s) => stats.add(&s),
            Err(e) => failures.push(e),
        }
    }
    let pct = |n: u64| 100.0 * n as f64 / stats.cases.max(1) as f64;
    eprintln!(
        "sched_props: {} cases in {:.1} s (seed {seed}); maps nested 2+ levels: {} ({:.0}%), of which a call ran 2+ levels deep: {} ({:.0}%), 3 levels: {}; \
         fan-outs nested 2+ levels: {} ({:.0}%); paused and resumed: {} runs, {} pauses ({} by cancelling the run, the others by dropping its execute()); input requests: {} in {} runs; \
         failed runs: {}; model calls: {}; fan-out instances that reached a max_workers below their width: {}",
        stats.cases,
        t0.elapsed().as_secs_f64(),
        stats.maps_nested,
        pct(stats.maps_nested),
        stats.maps_nested_run,
        pct(stats.maps_nested_run),
        stats.maps_nested_3_run,
        stats.fanouts_nested,
        pct(stats.fanouts_nested),
        stats.paused_cases,
        stats.pauses,
        stats.cancels,
        stats.inputs,
        stats.input_cases,
        stats.failed,
        stats.calls,
        stats.saturated,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(stats.cases >= u64::from(total), "{} cases ran, {total} asked", stats.cases);
    assert!(pct(stats.maps_nested_run) >= 20.0, "too few cases run maps nested two levels: {:.0}%", pct(stats.maps_nested_run));
    assert!(
        stats.cancels > 0 && stats.pauses > stats.cancels && stats.failed > 0 && stats.input_cases > 0 && stats.saturated > 0,
        "{stats:?}"
    );
}
