//! BranchingNode: the branch named by the input's value, through `mapping`.

use super::Lowerer;
use serde_json::{Map, Value as Json};
use weft_spec::CompId;

/// A BranchingNode.
#[derive(Debug, Clone)]
pub struct BranchingNode {
    /// Input value to branch name; any other value takes `default`.
    pub mapping: Map<String, Json>,
}

pub(super) fn lower(lw: &Lowerer<'_, '_>, n: CompId) -> BranchingNode {
    BranchingNode { mapping: lw.fields(n).object("mapping").cloned().unwrap_or_default() }
}
