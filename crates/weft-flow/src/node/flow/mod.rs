//! Flows and the nodes that structure them: Flow and ExtendedFlow (nodes, start, control and
//! data edges), StartNode, EndNode and FlowNode; the flow rules are in [`check`].

pub(crate) mod check;

use super::{Fields, Lowered, Lowerer, NodeKind, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer};
use weft_spec::{Code, CompId, Component, Spec};

/// The types of the family.
pub const TYPES: &[&str] = &["Flow", "ExtendedFlow", "StartNode", "EndNode", "FlowNode"];

/// Whether a component is a flow Weft lowers (Flow, ExtendedFlow).
pub fn is_flow(c: &Component) -> bool {
    c.is("Flow") || c.is("ExtendedFlow")
}

/// A flow: its nodes, where it starts, and its edges.
#[derive(Debug, Clone, Default)]
pub struct FlowGraph {
    /// The nodes, in document order.
    pub nodes: Vec<CompId>,
    /// The start node.
    pub start: Option<CompId>,
    /// Control edges, in document order.
    pub control: Vec<ControlEdge>,
    /// Data edges; `None` when the flow gives no `data_flow_connections` (then inputs are wired
    /// to outputs of the same name).
    pub data: Option<Vec<DataEdge>>,
    /// Data edges whose output or input the document does not name (only in a document with
    /// errors): source and destination, kept for drawing.
    pub unnamed_data: Vec<(CompId, CompId)>,
}

/// `from` leaves through `branch` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEdge {
    /// The node left.
    pub from: CompId,
    /// The branch taken (`next` when the edge names none).
    pub branch: String,
    /// The node entered.
    pub to: CompId,
}

/// Output `output` of `source` feeds input `input` of `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEdge {
    /// The node whose output is read.
    pub source: CompId,
    /// The output's title.
    pub output: String,
    /// The node whose input is fed.
    pub destination: CompId,
    /// The input's title.
    pub input: String,
}

/// An EndNode.
#[derive(Debug, Clone)]
pub struct EndNode {
    /// The branch the flow leaves through when it ends here.
    pub branch: String,
}

/// A FlowNode.
#[derive(Debug, Clone)]
pub struct SubflowNode {
    /// The flow it runs.
    pub subflow: CompId,
}

pub(super) fn lower_flow(lw: &mut Lowerer<'_, '_>, f: CompId) -> FlowGraph {
    let fields = lw.fields(f);
    let comp = lw.comp(f);
    if comp.is("ExtendedFlow") {
        if fields.non_empty("state") {
            lw.block(f, f, format!("{}/state", comp.pointer), "ExtendedFlow with flow variables (`state`)".into());
        }
        if fields.non_empty("context_providers") {
            lw.block(f, f, format!("{}/context_providers", comp.pointer), "ExtendedFlow with context providers".into());
        }
    }
    let control = fields
        .comps("control_flow_connections")
        .into_iter()
        .filter(|&e| lw.comp(e).is("ControlFlowEdge"))
        .filter_map(|e| {
            let edge = lw.fields(e);
            Some(ControlEdge {
                from: edge.comp("from_node")?,
                branch: edge.str("from_branch").unwrap_or("next").to_owned(),
                to: edge.comp("to_node")?,
            })
        })
        .collect();
    let mut unnamed_data = Vec::new();
    let data = fields.is_list("data_flow_connections").then(|| {
        let mut named = Vec::new();
        for e in fields.comps("data_flow_connections").into_iter().filter(|&e| lw.comp(e).is("DataFlowEdge")) {
            let edge = lw.fields(e);
            let (Some(source), Some(destination)) = (edge.comp("source_node"), edge.comp("destination_node")) else { continue };
            match (edge.str("source_output"), edge.str("destination_input")) {
                (Some(output), Some(input)) => {
                    named.push(DataEdge { source, output: output.to_owned(), destination, input: input.to_owned() });
                }
                _ => unnamed_data.push((source, destination)),
            }
        }
        named
    });
    FlowGraph { nodes: fields.comps("nodes"), start: fields.comp("start_node"), control, data, unnamed_data }
}

pub(super) fn lower_node(lw: &Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    let comp = lw.comp(n);
    let kind = match comp.ty.name {
        "StartNode" => NodeKind::Start,
        "EndNode" => NodeKind::End(EndNode { branch: end_branch(comp) }),
        "FlowNode" => NodeKind::Subflow(SubflowNode { subflow: lw.fields(n).comp("subflow")? }),
        _ => return Some(Lowered::NotRunnable),
    };
    Some(Lowered::Kind(kind))
}

/// The branch an EndNode ends its flow on.
pub(crate) fn end_branch(end: &Component) -> String {
    Fields::of(end).str("branch_name").unwrap_or("next").to_owned()
}

/// The nodes of a flow (none when the component is not a flow).
pub(crate) fn nodes_of(spec: &Spec, flow: CompId) -> Vec<CompId> {
    let f = Fields::of(spec.get(flow));
    if f.has("nodes") { f.comps("nodes") } else { Vec::new() }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred::default();
    match comp.ty.name {
        "Flow" | "ExtendedFlow" => {
            if let Some(start) = f.comp("start_node") {
                out.inputs = Some(inf.io(start).inputs);
            }
            out.outputs = Some(inf.flow_outputs(c));
            // Declared flow outputs follow their own rule (FORMAT.md 7.1), checked with the
            // flow, not a title-set comparison.
            out.outputs_explicit_wins = true;
        }
        "StartNode" => out.branches = next(),
        "EndNode" => out.branches = Some(Vec::new()),
        "FlowNode" => {
            if let Some(sub) = f.comp("subflow") {
                let io = inf.io(sub);
                out.inputs = Some(io.inputs);
                out.outputs = Some(io.outputs);
                out.branches = Some(inf.end_branches(sub));
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The interface rules of the family's types: `true` when it checked the declared lists itself.
pub(super) fn check_interface(cx: &mut Cx<'_>, comp: &Component, _inferred: &Inferred) -> bool {
    if !matches!(comp.ty.name, "StartNode" | "EndNode") {
        return false;
    }
    if let (Some(i), Some(o)) = (&comp.inputs, &comp.outputs) {
        let same = i.len() == o.len() && i.iter().zip(o).all(|(a, b)| a.schema == b.schema);
        if !same {
            cx.report(
                comp,
                Code::IoMismatch,
                format!("{}/outputs", comp.pointer),
                format!(
                    "{}: `inputs` and `outputs` are both given but differ; a {} passes its values through unchanged",
                    comp.label(),
                    comp.ty.name
                ),
                Some("make `outputs` identical to `inputs` (schemas included), or give only one of them".into()),
            );
        }
    }
    true
}
