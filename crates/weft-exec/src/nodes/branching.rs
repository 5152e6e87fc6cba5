//! BranchingNode: leaves through the branch its input's value maps to, else `default`.

use super::At;
use crate::sched::{Res, Sched};
use crate::state::RunState;
use serde_json::{Map, Value as Json};
use weft_flow::node::BranchingNode;

pub(crate) struct BranchingOp {
    /// Input value to branch name.
    pub(crate) mapping: Map<String, Json>,
}

impl BranchingOp {
    pub(crate) fn plan(b: &BranchingNode) -> BranchingOp {
        BranchingOp { mapping: b.mapping.clone() }
    }

    /// A string is looked up as is, any other value as Python's `json.dumps` prints it.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let key = at.node.inputs.first().and_then(|i| vars.get(&i.internal));
        let key = match key {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Null) | None => None,
            Some(other) => Some(weft_prompt::py_json_dumps(other)),
        };
        let branch =
            key.and_then(|k| self.mapping.get(&k).and_then(Json::as_str).map(str::to_owned)).unwrap_or_else(|| "default".to_owned());
        s.follow(state, at, &branch)
    }
}
