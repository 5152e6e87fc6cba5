//! StartNode, EndNode, FlowNode, PluginRetryNode and the catch nodes: entering a flow, leaving
//! it, and running a subflow in a child frame that spends its parent's step budget (again and
//! again, for a retry; with its errors turned into a branch, for a catch node).

use super::At;
use crate::check::{Checked, Place};
use crate::error::RunError;
use crate::plan::Compiler;
use crate::sched::{Res, Sched, get_frame};
use crate::state::{Position, RunState};
use serde_json::{Map, Value as Json};
use weft_flow::node::{CAUGHT_BRANCH, CatchNode, CatchRule, DEFAULT_EXCEPTION_BRANCH, EndNode, RetryNode, SubflowNode};

/// StartNode: its outputs are its frame's inputs.
pub(crate) struct StartOp;

/// EndNode: the flow ends through `branch` with the values of its inputs.
pub(crate) struct EndOp {
    pub(crate) branch: String,
}

/// FlowNode: the subflow runs in a child frame. PluginRetryNode: the same, again while it fails.
/// The catch nodes: the same, an error inside it caught.
pub(crate) struct SubflowOp {
    /// The subflow's index in the plan.
    pub(crate) flow: usize,
    /// For a PluginRetryNode, when to run the subflow again.
    pub(crate) retry: Option<RetryOp>,
    /// For a catch node, which errors it catches and the outputs it gives then.
    pub(crate) catch: Option<Box<CatchOp>>,
}

/// CatchExceptionNode and PluginCatchExceptionNode (FORMAT.md 8 and 11.1).
pub(crate) struct CatchOp {
    rule: CatchRule,
    /// The subflow's outputs when an error was caught: each one's default, else (for the
    /// plugin node, whose outputs need none) its type's zero value.
    caught: Map<String, Json>,
}

/// PluginRetryNode (FORMAT.md 11.1, WayFlow's RetryStep).
pub(crate) struct RetryOp {
    /// The subflow output judged by Python truthiness; it is not one of the node's outputs.
    pub(crate) success: String,
    pub(crate) max_trials: u32,
}

impl StartOp {
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>) -> Res<()> {
        let inputs = get_frame(state, at.fid)?.inputs.clone();
        s.done(state, at, inputs)
    }

    /// The root's inputs were checked against their types when the run started; a subflow's
    /// are stored as its parent gave them.
    pub(crate) fn typed_outputs(frame: u64) -> bool {
        frame == 0
    }
}

impl EndOp {
    pub(crate) fn plan(end: &EndNode) -> EndOp {
        EndOp { branch: end.branch.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let outputs = by_title(at, vars);
        s.emit_finished(state, at, None)?;
        s.finish_frame(state, at.fid, outputs, self.branch.clone())
    }
}

impl SubflowOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, sub: &SubflowNode) -> SubflowOp {
        SubflowOp { flow: c.flow_plan(sub.subflow), retry: None, catch: None }
    }

    pub(crate) fn plan_retry(c: &mut Compiler<'_>, r: &RetryNode) -> SubflowOp {
        SubflowOp { flow: c.flow_plan(r.flow), retry: Some(RetryOp { success: r.success.clone(), max_trials: r.max_trials }), catch: None }
    }

    pub(crate) fn plan_catch(c: &mut Compiler<'_>, node: &CatchNode) -> SubflowOp {
        let flow = c.flow_plan(node.flow);
        let caught = c.flow_outputs(flow).iter().map(|p| (p.title().to_owned(), weft_prompt::default_or_zero(&p.schema))).collect();
        SubflowOp { flow, retry: None, catch: Some(Box::new(CatchOp { rule: node.rule.clone(), caught })) }
    }

    /// Whether this is a catch node.
    pub(crate) fn catches(&self) -> bool {
        self.catch.is_some()
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        if self.retry.is_some() {
            state.retry_trials.remove(&trial_key(at));
        }
        self.start_child(s, state, at, vars)
    }

    fn start_child(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let inputs = by_title(at, vars);
        let parent = get_frame(state, at.fid)?;
        let (path, budget_key) = (format!("{}/{}", parent.path, at.node.name), parent.budget_key.clone());
        let child = s.new_frame(state, at.fid, at.node, self.flow, inputs, path, budget_key)?;
        if self.catch.is_some() {
            // The nodes inside are timed one by one, and their timeouts are caught: a deadline
            // for the whole subflow would pass first and fail the run. Its calls can be
            // cancelled on their own, when an error is caught.
            s.start_timer(state, at.fid);
            s.separate(child);
        } else {
            s.start_clock(state, at.fid);
        }
        s.set_position(state, at.fid, Position::InChild { node: at.node.id.clone(), child });
        Ok(())
    }

    /// The subflow ended: its outputs are the node's, and the node leaves through the branch
    /// the subflow ended with.
    pub(crate) fn child_finished(
        &self,
        s: &mut Sched<'_>,
        state: &mut RunState,
        at: At<'_>,
        outputs: Map<String, Json>,
        branch: String,
    ) -> Res<()> {
        let t0 = s.stop_clock(state, at.fid);
        if let Some(catch) = &self.catch {
            let mut outputs = outputs;
            catch.nothing_caught(&mut outputs);
            s.produce(state, at.fid, at.node, outputs)?;
            return s.follow(state, At { t0, ..at }, &branch);
        }
        let Some(retry) = &self.retry else {
            s.produce(state, at.fid, at.node, outputs)?;
            return s.follow(state, At { t0, ..at }, &branch);
        };
        // A retry: the outputs of every trial are written; success leaves through the
        // subflow's branch, a failure runs the subflow again with the same inputs while trials
        // are left, else leaves through `failure`.
        let mut outputs = outputs;
        let success = outputs.remove(&retry.success).is_some_and(|v| weft_prompt::py_truthy(&v));
        let key = trial_key(at);
        let trials = state.retry_trials.get(&key).copied().unwrap_or(0).saturating_add(1);
        outputs.insert("retry_step_success".into(), Json::Bool(success));
        outputs.insert("retry_step_num_retries".into(), Json::from(trials));
        s.produce(state, at.fid, at.node, outputs)?;
        if !success && trials < retry.max_trials {
            state.retry_trials.insert(key, trials);
            let vars = s.node_inputs(state, at.fid, at.node)?;
            return self.start_child(s, state, At { t0, ..at }, vars);
        }
        state.retry_trials.remove(&key);
        s.follow(state, At { t0, ..at }, if success { &branch } else { "failure" })
    }

    /// The branch this node leaves through when `error` was raised inside its subflow, if it
    /// catches the error.
    pub(crate) fn catch_branch(&self, error: &RunError) -> Option<&str> {
        let catch = self.catch.as_deref()?;
        if !error.catchable() {
            return None;
        }
        match &catch.rule {
            CatchRule::Any => Some(CAUGHT_BRANCH),
            CatchRule::Named { except_on, catch_all } => {
                let (name, _) = error.exception();
                // WayFlow compares the class name for equality, the last equal key winning.
                let named = except_on.iter().rev().find(|(key, _)| *key == name).map(|(_, branch)| branch.as_str());
                named.or(catch_all.then_some(DEFAULT_EXCEPTION_BRANCH))
            }
        }
    }

    /// The node's subflow failed with `error`, which it catches through `branch` (its child
    /// frame is gone): the outputs the subflow would have given take their defaults, the error
    /// is described, and the node leaves through `branch`.
    pub(crate) fn caught(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, error: &RunError, branch: &str) -> Res<()> {
        let Some(catch) = self.catch.as_deref() else { return Err(crate::sched::other("a node that catches nothing caught an error")) };
        let t0 = s.stop_clock(state, at.fid);
        let mut outputs = catch.caught.clone();
        match catch.rule {
            CatchRule::Any => {
                outputs.insert("caught_exception_info".into(), Json::String(error.message.clone()));
            }
            CatchRule::Named { .. } => {
                let (name, payload) = error.exception();
                outputs.insert("exception_name".into(), Json::String(name));
                outputs.insert("exception_payload_name".into(), Json::String(payload));
            }
        }
        s.produce(state, at.fid, at.node, outputs)?;
        s.follow(state, At { t0, ..at }, branch)
    }

    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::InChild { child, .. } => place.child(*child, self.flow, format!("{}/position/child", place.at)),
            other => place.unexpected(other),
        }
    }
}

impl CatchOp {
    /// The outputs that say no error was caught: `caught_exception_info` is null, the exception
    /// name and payload are empty.
    fn nothing_caught(&self, outputs: &mut Map<String, Json>) {
        match self.rule {
            CatchRule::Any => {
                outputs.insert("caught_exception_info".into(), Json::Null);
            }
            CatchRule::Named { .. } => {
                outputs.insert("exception_name".into(), Json::String(String::new()));
                outputs.insert("exception_payload_name".into(), Json::String(String::new()));
            }
        }
    }
}

/// Where a retry node's trials are counted: its frame and node.
fn trial_key(at: At<'_>) -> String {
    format!("{}/{}", at.fid, at.node.id)
}

/// The node's input values under their external titles (what a flow's inputs and outputs use),
/// moved (a fan-out's collected list is large).
fn by_title(at: At<'_>, mut vars: Map<String, Json>) -> Map<String, Json> {
    let mut out = Map::new();
    for input in &at.node.inputs {
        if let Some(v) = vars.remove(&input.internal) {
            out.insert(input.title.clone(), v);
        }
    }
    out
}
