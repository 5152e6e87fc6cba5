//! StartNode, EndNode, FlowNode and PluginRetryNode: entering a flow, leaving it, and running a
//! subflow in a child frame that spends its parent's step budget (again and again, for a retry).

use super::At;
use crate::check::{Checked, Place};
use crate::plan::Compiler;
use crate::sched::{Res, Sched, get_frame};
use crate::state::{Position, RunState};
use serde_json::{Map, Value as Json};
use weft_flow::node::{EndNode, RetryNode, SubflowNode};

/// StartNode: its outputs are its frame's inputs.
pub(crate) struct StartOp;

/// EndNode: the flow ends through `branch` with the values of its inputs.
pub(crate) struct EndOp {
    pub(crate) branch: String,
}

/// FlowNode: the subflow runs in a child frame. PluginRetryNode: the same, again while it fails.
pub(crate) struct SubflowOp {
    /// The subflow's index in the plan.
    pub(crate) flow: usize,
    /// For a PluginRetryNode, when to run the subflow again.
    pub(crate) retry: Option<RetryOp>,
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
        SubflowOp { flow: c.flow_plan(sub.subflow), retry: None }
    }

    pub(crate) fn plan_retry(c: &mut Compiler<'_>, r: &RetryNode) -> SubflowOp {
        SubflowOp { flow: c.flow_plan(r.flow), retry: Some(RetryOp { success: r.success.clone(), max_trials: r.max_trials }) }
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
        s.start_clock(state, at.fid);
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

    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::InChild { child, .. } => place.child(*child, self.flow, format!("{}/position/child", place.at)),
            other => place.unexpected(other),
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
