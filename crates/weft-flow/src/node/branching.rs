//! BranchingNode: the branch named by the input's value, through `mapping`.

use super::{Fields, Lowered, Lowerer, NodeKind};
use crate::check::Cx;
use crate::check::io::exactly_one;
use crate::infer::{Inferred, Inferrer, sorted_unique};
use serde_json::{Map, Value as Json};
use weft_spec::{Code, CompId, Component, Property};

/// The types of the family.
pub const TYPES: &[&str] = &["BranchingNode"];

/// A BranchingNode.
#[derive(Debug, Clone)]
pub struct BranchingNode {
    /// Input value to branch name; any other value takes `default`.
    pub mapping: Map<String, Json>,
}

pub(super) fn lower_node(lw: &Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    match lw.comp(n).ty.name {
        "BranchingNode" => Some(Lowered::Kind(NodeKind::Branching(lower(lw, n)))),
        _ => Some(Lowered::NotRunnable),
    }
}

fn lower(lw: &Lowerer<'_, '_>, n: CompId) -> BranchingNode {
    BranchingNode { mapping: lw.fields(n).object("mapping").cloned().unwrap_or_default() }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let f = Fields::of(inf.spec().get(c));
    let mut out = Inferred {
        inputs: Some(vec![Property::typed("branching_mapping_key", "string")]),
        inputs_explicit_wins: true,
        outputs: Some(Vec::new()),
        ..Inferred::default()
    };
    let mut branches: Vec<String> =
        f.object("mapping").map(|m| m.values().filter_map(Json::as_str).map(str::to_owned).collect()).unwrap_or_default();
    branches.push("default".into());
    out.branches = Some(sorted_unique(branches));
    Some(out)
}

/// The interface rules of the family's types: `true` when it checked the declared lists itself.
pub(super) fn check_interface(cx: &mut Cx<'_>, comp: &Component, _inferred: &Inferred) -> bool {
    if !comp.is("BranchingNode") {
        return false;
    }
    if let Some(ins) = &comp.inputs
        && ins.len() != 1
    {
        exactly_one(
            cx,
            comp,
            ins,
            "inputs",
            "a BranchingNode has exactly one string input",
            "{\"title\": \"branching_mapping_key\", \"type\": \"string\"}",
        );
    }
    if let Some(outs) = &comp.outputs
        && let Some(p) = outs.first()
    {
        cx.report(
            comp,
            Code::IoMismatch,
            p.pointer.clone(),
            format!("{}: a BranchingNode has no outputs, found \"{}\"", comp.label(), p.title()),
            Some("remove the outputs".into()),
        );
    }
    true
}
