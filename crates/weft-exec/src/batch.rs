//! Batch runs: one run of a plan per set of inputs, `concurrency` at a time, each run a task
//! of its own (so runs use every core), all sharing the plan's models, tools and provider-wide
//! limiters. Results come back in input order whatever the completion order, and a failed
//! run does not stop the others.

use crate::{Plan, Status};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::task::JoinSet;

/// The inputs of one run, or why a line of the batch could not be read as inputs.
pub type BatchInput = Result<Map<String, Json>, String>;

/// The outcome of one run: its outputs, or what went wrong.
pub type BatchResult = Result<Map<String, Json>, String>;

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
    /// The result of run `index`: reported in input order.
    Result {
        /// The position of the inputs in the batch (0-based).
        index: usize,
        /// The flow's outputs, or what went wrong.
        result: BatchResult,
    },
    /// The counts changed.
    Progress(BatchProgress),
}

/// Runs `plan` once per inputs, at most `concurrency` at once, calling `report` with each
/// result (in input order) and the counts. Returns the final counts. Dropping the future
/// cancels every run still going.
pub async fn run_batch(plan: &Arc<Plan>, inputs: Vec<BatchInput>, concurrency: usize, mut report: impl FnMut(BatchEvent)) -> BatchProgress {
    let concurrency = concurrency.max(1);
    let mut progress = BatchProgress { total: inputs.len(), ..BatchProgress::default() };
    let mut pending = inputs.into_iter().enumerate();
    let mut tasks: JoinSet<(usize, BatchResult)> = JoinSet::new();
    // Input index by task, so a run whose task panicked still gets its line (an error).
    let mut index_of: HashMap<tokio::task::Id, usize> = HashMap::new();
    // Results that finished before an earlier one, held until their turn.
    let mut early: BTreeMap<usize, BatchResult> = BTreeMap::new();
    let mut next_out = 0;
    loop {
        while tasks.len() < concurrency {
            let Some((index, input)) = pending.next() else { break };
            match input {
                Ok(inputs) => {
                    let plan = Arc::clone(plan);
                    let task = tasks.spawn(async move { (index, one(&plan, inputs).await) });
                    index_of.insert(task.id(), index);
                }
                Err(e) => {
                    early.insert(index, Err(e));
                    progress.done += 1;
                    progress.failed += 1;
                }
            }
        }
        progress.in_flight = tasks.len();
        report(BatchEvent::Progress(progress));
        while let Some(result) = early.remove(&next_out) {
            report(BatchEvent::Result { index: next_out, result });
            next_out += 1;
        }
        let Some(joined) = tasks.join_next_with_id().await else {
            if pending.len() == 0 {
                break;
            }
            continue;
        };
        let (id, index, result) = match joined {
            Ok((id, (index, result))) => (id, Some(index), result),
            Err(e) => (e.id(), None, Err(format!("the run's task failed (this is a bug in weft): {e}"))),
        };
        progress.done += 1;
        if result.is_err() {
            progress.failed += 1;
        }
        if let Some(index) = index_of.remove(&id).or(index) {
            early.insert(index, result);
        }
    }
    progress.in_flight = 0;
    progress
}

/// One run to its end.
async fn one(plan: &Arc<Plan>, inputs: Map<String, Json>) -> BatchResult {
    let mut run = plan.start(inputs).map_err(|e| e.problems.join("; "))?;
    match run.execute().await {
        Ok(Status::Finished { outputs, .. }) => Ok(outputs),
        Ok(Status::InputRequired { request }) => Err(format!(
            "node \"{}\" waits for input, which a batch run cannot give: run this input alone with `weft run` to answer it",
            request.node()
        )),
        Err(e) => Err(e.message),
    }
}
