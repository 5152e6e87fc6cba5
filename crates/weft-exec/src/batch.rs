//! Batch runs: one run of a plan per set of inputs, `concurrency` at a time, each run a task
//! of its own (so runs use every core), all sharing the plan's models, tools and provider-wide
//! limiters. Results come back in input order whatever the completion order, and a failed
//! run does not stop the others.

use crate::{ErrorData, Plan, RunErrorKind, RunSettings, Status};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::task::JoinSet;

/// One line of a batch: its 1-based physical line in the input file, and the inputs it holds or
/// why it could not be read as inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    /// The 1-based line in the input file.
    pub line: usize,
    /// The run's inputs, or why the line is not inputs.
    pub inputs: Result<Map<String, Json>, String>,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchResult {
    /// The 0-based position of the line among the batch's inputs.
    pub index: usize,
    /// The 1-based line in the input file.
    pub line: usize,
    /// The run's id (`None` when the line could not even start a run).
    pub run_id: Option<String>,
    /// The flow's outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Json>>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
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
}

/// Runs `plan` once per inputs, at most `concurrency` at once, each with the plan's default
/// settings and its index (so its events say which line they belong to), calling `report`
/// with each result (in input order) and the counts. Returns the final counts. Dropping the
/// future cancels every run still going.
pub async fn run_batch(plan: &Arc<Plan>, inputs: Vec<BatchInput>, concurrency: usize, mut report: impl FnMut(BatchEvent)) -> BatchProgress {
    let concurrency = concurrency.max(1);
    let mut progress = BatchProgress { total: inputs.len(), ..BatchProgress::default() };
    let mut pending = inputs.into_iter().enumerate();
    let mut tasks: JoinSet<BatchResult> = JoinSet::new();
    // Index and line by task, so a run whose task panicked still gets its line (an error).
    let mut index_of: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
    // Results that finished before an earlier one, held until their turn.
    let mut early: BTreeMap<usize, BatchResult> = BTreeMap::new();
    let mut next_out = 0;
    loop {
        while tasks.len() < concurrency {
            let Some((index, input)) = pending.next() else { break };
            match input.inputs {
                Ok(inputs) => {
                    let plan = Arc::clone(plan);
                    let line = input.line;
                    let task = tasks.spawn(async move { one(&plan, index, line, inputs).await });
                    index_of.insert(task.id(), (index, line));
                }
                Err(e) => {
                    let result = BatchResult {
                        index,
                        line: input.line,
                        run_id: None,
                        outputs: None,
                        error: Some(ErrorData::new(RunErrorKind::BadInput, e)),
                    };
                    early.insert(index, result);
                    progress.done += 1;
                    progress.failed += 1;
                }
            }
        }
        progress.in_flight = tasks.len();
        report(BatchEvent::Progress(progress));
        while let Some(result) = early.remove(&next_out) {
            report(BatchEvent::Result(Box::new(result)));
            next_out += 1;
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            if pending.len() == 0 {
                break;
            }
            continue;
        };
        let result = match joined {
            Ok((id, result)) => {
                index_of.remove(&id);
                result
            }
            Err(e) => {
                let Some((index, line)) = index_of.remove(&e.id()) else { continue };
                let error = ErrorData::new(RunErrorKind::Other, format!("the run's task failed (this is a bug in weft): {e}"));
                BatchResult { index, line, run_id: None, outputs: None, error: Some(error) }
            }
        };
        progress.done += 1;
        if result.error.is_some() {
            progress.failed += 1;
        }
        early.insert(result.index, result);
    }
    progress.in_flight = 0;
    progress
}

/// One run to its end.
async fn one(plan: &Arc<Plan>, index: usize, line: usize, inputs: Map<String, Json>) -> BatchResult {
    let mut result = BatchResult { index, line, run_id: None, outputs: None, error: None };
    let settings = RunSettings { index: Some(index), ..plan.default_settings().clone() };
    let mut run = match plan.start_with(inputs, settings) {
        Ok(run) => run,
        Err(e) => {
            result.error = Some(ErrorData::new(RunErrorKind::BadInput, e.problems().join("; ")));
            return result;
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
        Err(e) => result.error = Some(ErrorData::from(&e)),
    }
    result
}
