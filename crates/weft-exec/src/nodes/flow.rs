//! StartNode, EndNode and FlowNode: entering a flow, leaving it, and running a subflow in a
//! child frame that spends its parent's step budget.

use super::At;
use crate::check::{Checked, Place};
use crate::plan::Compiler;
use crate::sched::{Res, Sched, get_frame};
use crate::state::{Position, RunState};
use serde_json::{Map, Value as Json};
use weft_flow::node::{EndNode, SubflowNode};

/// StartNode: its outputs are its frame's inputs.
pub(crate) struct StartOp;

/// EndNode: the flow ends through `branch` with the values of its inputs.
pub(crate) struct EndOp {
    pub(crate) branch: String,
}

/// FlowNode: the subflow runs in a child frame.
pub(crate) struct SubflowOp {
    /// The subflow's index in the plan.
    pub(crate) flow: usize,
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
        SubflowOp { flow: c.flow_plan(sub.subflow) }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
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
        s.produce(state, at.fid, at.node, outputs)?;
        s.follow(state, At { t0, ..at }, &branch)
    }

    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::InChild { child, .. } => place.child(*child, self.flow, format!("{}/position/child", place.at)),
            other => place.unexpected(other),
        }
    }
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
