//! Batch runs: one run of a plan per set of inputs, `concurrency` at a time, each run a task
//! of its own (so runs use every core), all sharing the plan's models, tools and provider-wide
//! limiters. Results come back in input order whatever the completion order, and a failed
//! run does not stop the others.
//!
//! A batch stops early when the plan's cancel flag is set (a Ctrl-C handler): no line starts
//! any more, each run going is cancelled and its state reported ([`BatchEvent::Stopped`]), and
//! the results that finished after a stopped line are reported as [`BatchEvent::Held`] (input
//! order cannot release them). A later batch continues from those: stopped runs resumed
//! ([`LineStart::Resume`]), held results reported in their turn ([`LineStart::Done`]).

use crate::{ErrorData, Plan, RunErrorKind, RunSettings, RunState, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::task::JoinSet;

/// One line of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    /// The 0-based position of the line among the batch's inputs (its results carry it).
    pub index: usize,
    /// The 1-based line in the input file.
    pub line: usize,
    /// What the line starts from.
    pub start: LineStart,
    /// A first user message posted before a new run executes (an agent's first message).
    pub message: Option<String>,
}

/// What a line of a batch starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum LineStart {
    /// A new run with these inputs.
    Inputs(Map<String, Json>),
    /// The line is not inputs: why (its result is this error).
    Bad(String),
    /// A run an earlier batch stopped: its state.
    Resume(Box<RunState>),
    /// A result an earlier batch had but did not report yet.
    Done(Box<BatchResult>),
}

impl BatchInput {
    /// A line of inputs, or of why it is not inputs.
    pub fn new(index: usize, line: usize, inputs: Result<Map<String, Json>, String>) -> BatchInput {
        BatchInput { index, line, start: inputs.map_or_else(LineStart::Bad, LineStart::Inputs), message: None }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// The 0-based position of the line among the batch's inputs.
    pub index: usize,
    /// The 1-based line in the input file.
    pub line: usize,
    /// The run's id (`None` when the line could not even start a run).
    pub run_id: Option<String>,
    /// The flow's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Json>>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorData>,
}

/// Counts, after every finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// Runs in the batch.
    pub total: usize,
    /// Runs finished (failed ones included).
    pub done: usize,
    /// Runs failed.
    pub failed: usize,
    /// Runs going now.
    pub in_flight: usize,
}

/// What a batch reports, as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEvent {
    /// The result of one run: reported in input order.
    Result(Box<BatchResult>),
    /// The counts changed.
    Progress(BatchProgress),
    /// The batch was cancelled while this line's run went on: the run's state, to resume later.
    Stopped {
        /// The line's index.
        index: usize,
        /// The 1-based line in the input file.
        line: usize,
        /// The run's state (calls in flight recorded as such: a resumed run makes them again).
        state: Box<RunState>,
    },
    /// A result that finished after a stopped line, so input order could not report it: reported
    /// once the batch ends, for a later batch to report in its turn.
    Held(Box<BatchResult>),
}

/// How one line ended.
enum Ended {
    Result(Box<BatchResult>),
    Stopped { index: usize, line: usize, state: Box<RunState> },
}

/// Runs `plan` once per inputs, at most `concurrency` at once, each with the plan's default
/// settings and its index (so its events say which line they belong to), calling `report`
/// with each result (in input order) and the counts. Returns the final counts. Dropping the
/// future cancels every run still going, reporting nothing; setting the plan's cancel flag
/// stops the batch and reports what each run had (see the module documentation).
pub async fn run_batch(plan: &Arc<Plan>, inputs: Vec<BatchInput>, concurrency: usize, mut report: impl FnMut(BatchEvent)) -> BatchProgress {
    let concurrency = concurrency.max(1);
    let cancel = plan.default_settings().cancel.clone();
    let cancelled = || cancel.as_deref().is_some_and(|flag| flag.load(Ordering::Relaxed));
    let mut progress = BatchProgress { total: inputs.len(), ..BatchProgress::default() };
    // Positions in `inputs` order the results; indexes name them.
    let mut pending = inputs.into_iter().enumerate();
    let mut tasks: JoinSet<Ended> = JoinSet::new();
    // Position, index and line by task, so a run whose task panicked still gets its line (an error).
    let mut index_of: HashMap<tokio::task::Id, (usize, usize, usize)> = HashMap::new();
    // Results that finished before an earlier one, held until their turn.
    let mut early: BTreeMap<usize, BatchResult> = BTreeMap::new();
    // Positions whose run was stopped: no result comes for them.
    let mut stopped: BTreeSet<usize> = BTreeSet::new();
    let mut next_out = 0;
    loop {
        while tasks.len() < concurrency && !cancelled() {
            let Some((position, input)) = pending.next() else { break };
            let (index, line) = (input.index, input.line);
            let turn = match input.start {
                LineStart::Inputs(inputs) => Turn::Launch(Launch::Start(inputs, input.message)),
                LineStart::Resume(state) => Turn::Launch(Launch::Resume(state)),
                LineStart::Bad(e) => {
                    let error = ErrorData::new(RunErrorKind::BadInput, e);
                    Turn::Report(Box::new(BatchResult { index, line, run_id: None, outputs: None, error: Some(error) }))
                }
                LineStart::Done(result) => Turn::Report(result),
            };
            let run = match turn {
                Turn::Report(result) => {
                    progress.done += 1;
                    progress.failed += usize::from(result.error.is_some());
                    early.insert(position, *result);
                    continue;
                }
                Turn::Launch(run) => run,
            };
            let plan = Arc::clone(plan);
            let task = tasks.spawn(async move { one(&plan, index, line, run).await });
            index_of.insert(task.id(), (position, index, line));
        }
        progress.in_flight = tasks.len();
        report(BatchEvent::Progress(progress));
        while let Some(result) = early.remove(&next_out) {
            report(BatchEvent::Result(Box::new(result)));
            next_out += 1;
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            if pending.len() == 0 || cancelled() {
                break;
            }
            continue;
        };
        let (position, ended) = match joined {
            Ok((id, ended)) => match index_of.remove(&id) {
                Some((position, ..)) => (position, ended),
                None => continue,
            },
            Err(e) => {
                let Some((position, index, line)) = index_of.remove(&e.id()) else { continue };
                let error = ErrorData::new(RunErrorKind::Other, format!("the run's task failed (this is a bug in weft): {e}"));
                (position, Ended::Result(Box::new(BatchResult { index, line, run_id: None, outputs: None, error: Some(error) })))
            }
        };
        match ended {
            Ended::Result(result) => {
                progress.done += 1;
                progress.failed += usize::from(result.error.is_some());
                early.insert(position, *result);
            }
            Ended::Stopped { index, line, state } => {
                stopped.insert(position);
                report(BatchEvent::Stopped { index, line, state });
            }
        }
    }
    // Stopped: what finished after the first stopped line waits for a later batch.
    for (_, result) in early {
        report(BatchEvent::Held(Box::new(result)));
    }
    progress.in_flight = 0;
    progress
}

/// What a line's turn brings: a result to report as it is, or a run.
enum Turn {
    Report(Box<BatchResult>),
    Launch(Launch),
}

/// A run to launch.
enum Launch {
    Start(Map<String, Json>, Option<String>),
    Resume(Box<RunState>),
}

/// One run to its end, or to its stop when the batch is cancelled.
async fn one(plan: &Arc<Plan>, index: usize, line: usize, launch: Launch) -> Ended {
    let mut result = BatchResult { index, line, run_id: None, outputs: None, error: None };
    let settings = RunSettings { index: Some(index), ..plan.default_settings().clone() };
    let started = match launch {
        Launch::Start(inputs, message) => plan.start_with(inputs, settings).map_err(|e| e.problems().join("; ")).and_then(|mut run| {
            if let Some(m) = message {
                run.append_user_message(&m).map_err(|e| e.to_string())?;
            }
            Ok(run)
        }),
        Launch::Resume(state) => plan.resume_with(*state, settings).map_err(|e| format!("the stored run cannot be resumed: {e}")),
    };
    let mut run = match started {
        Ok(run) => run,
        Err(e) => {
            result.error = Some(ErrorData::new(RunErrorKind::BadInput, e));
            return Ended::Result(Box::new(result));
        }
    };
    result.run_id = Some(run.run_id().to_owned());
    match run.execute().await {
        Ok(Status::Finished { outputs, .. }) => result.outputs = Some(outputs),
        Ok(Status::InputRequired { request }) => {
            result.error = Some(ErrorData::new(
                RunErrorKind::Other,
                format!(
                    "node \"{}\" waits for input, which a batch run cannot give: run this input alone with `weft run` to answer it",
                    request.node()
                ),
            ));
        }
        Err(e) if e.kind == RunErrorKind::Cancelled => return Ended::Stopped { index, line, state: Box::new(run.into_state()) },
        Err(e) => result.error = Some(ErrorData::from(&e)),
    }
    Ended::Result(Box::new(result))
}
