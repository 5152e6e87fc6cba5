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
    /// Context providers that feed the flow's nodes: those of an ExtendedFlow's
    /// `context_providers`, then those data edges name as their source, each once. Inputs are
    /// wired to their outputs by name when the flow gives no data edges, as WayFlow does.
    pub providers: Vec<CompId>,
    /// The flow variables (an ExtendedFlow's `state`): each run of the flow starts them at
    /// their defaults.
    pub variables: Vec<weft_spec::Property>,
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
    let mut providers: Vec<CompId> = if comp.is("ExtendedFlow") { fields.comps("context_providers") } else { Vec::new() };
    for e in data.iter().flatten() {
        if is_provider(lw.comp(e.source)) && !providers.contains(&e.source) {
            providers.push(e.source);
        }
    }
    let variables: Vec<weft_spec::Property> =
        if comp.is("ExtendedFlow") { fields.prop_list("state").map(<[_]>::to_vec).unwrap_or_default() } else { Vec::new() };
    // A variable node uses the variables of the flow it runs in (WayFlow fails the step on any
    // other).
    for n in fields.comps("nodes") {
        let node = lw.comp(n);
        let nf = lw.fields(n);
        let used: Vec<&weft_spec::Property> = match node.ty.name {
            "PluginReadVariableNode" | "PluginWriteVariableNode" => nf.prop("variable").into_iter().collect(),
            "PluginVariableNode" => nf
                .prop_list("write_variables")
                .unwrap_or_default()
                .iter()
                .chain(nf.prop_list("read_variables").unwrap_or_default())
                .collect(),
            _ => continue,
        };
        for v in used {
            if !variables.iter().any(|d| d.title() == v.title()) {
                let declared: Vec<String> = variables.iter().map(|d| format!("\"{}\"", d.title())).collect();
                lw.error(
                    n,
                    Code::ComponentRule,
                    v.pointer.clone(),
                    format!(
                        "uses the flow variable \"{}\", which {} does not declare in its `state` (it declares {})",
                        v.title(),
                        comp.label(),
                        if declared.is_empty() { "none".to_owned() } else { declared.join(", ") }
                    ),
                    "declare the variable in the `state` of the ExtendedFlow that holds this node",
                );
            }
        }
    }
    FlowGraph { nodes: fields.comps("nodes"), start: fields.comp("start_node"), control, data, unnamed_data, providers, variables }
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

/// Whether a component is a WayFlow context provider (a data source outside the flow's nodes).
pub fn is_provider(comp: &Component) -> bool {
    comp.ty.is_a(weft_spec::catalog::Kind::ContextProvider)
}

/// A context provider: a value source outside a flow's nodes, read each time a node reads an
/// input it feeds (WayFlow calls the provider at every read).
#[derive(Debug, Clone)]
pub enum ContextProvider {
    /// PluginConstantContextProvider: `value`, under its output's title.
    Constant {
        /// The title of its output.
        output: String,
        /// `value`.
        value: serde_json::Value,
    },
    /// PluginToolContextProvider: the ServerTool, called with no arguments (its implementation
    /// applies its own defaults); its result, under `output_name`.
    Tool {
        /// `output_name`.
        output: String,
        /// The ServerTool component.
        tool: CompId,
        /// The tool's name (what a registry binds).
        name: String,
    },
    /// PluginFlowContextProvider: the flow, run with no inputs in the same conversation; its one
    /// output (`output_names`, else the flow's only output).
    Flow {
        /// The title the value goes under: the flow output's.
        output: String,
        /// The flow.
        flow: CompId,
    },
}

impl ContextProvider {
    /// The title of the value it gives.
    pub fn output(&self) -> &str {
        match self {
            ContextProvider::Constant { output, .. } | ContextProvider::Tool { output, .. } | ContextProvider::Flow { output, .. } => {
                output
            }
        }
    }
}

/// What a context provider gives (FORMAT.md 11: PluginConstantContextProvider, its `value`;
/// PluginToolContextProvider, a ServerTool's result; PluginFlowContextProvider, a flow's output).
/// The rules WayFlow applies when it builds one are checked here: a constant needs an output
/// naming its value; a tool's inputs all need defaults (it is called without arguments); a flow
/// gives exactly one output, takes no input without a default and never waits for the user.
pub(crate) fn lower_provider(lw: &mut Lowerer<'_, '_>, c: CompId) -> Option<ContextProvider> {
    let comp = lw.comp(c);
    let f = lw.fields(c);
    match comp.ty.name {
        "PluginConstantContextProvider" => {
            let Some(output) = lw.io(c).outputs.first() else {
                lw.error(
                    c,
                    Code::ComponentRule,
                    comp.pointer.clone(),
                    "a PluginConstantContextProvider needs one output, which names and types its value".into(),
                    "add `\"outputs\": [{\"title\": \"<name>\", \"type\": \"string\"}]` (the type of `value`)",
                );
                return None;
            };
            let output = output.title().to_owned();
            let value = f.json("value").cloned().unwrap_or(serde_json::Value::Null);
            Some(ContextProvider::Constant { output, value })
        }
        "PluginToolContextProvider" => {
            let tool = f.comp("tool")?;
            let tc = lw.comp(tool);
            let required: Vec<String> =
                lw.io(tool).inputs.iter().filter(|p| p.default().is_none()).map(|p| format!("\"{}\"", p.title())).collect();
            if !required.is_empty() {
                lw.error(
                    c,
                    Code::ComponentRule,
                    format!("{}/tool", comp.pointer),
                    format!(
                        "calls {} without arguments, but its input{} {} {} no default (WayFlow refuses such a tool)",
                        tc.label(),
                        if required.len() > 1 { "s" } else { "" },
                        required.join(", "),
                        if required.len() > 1 { "have" } else { "has" }
                    ),
                    "give each input of the tool a default, or call the tool with a ToolNode instead",
                );
                return None;
            }
            let output = f.str("output_name").map_or_else(|| format!("{}_output", tc.name), str::to_owned);
            Some(ContextProvider::Tool { output, tool, name: tc.name.clone() })
        }
        "PluginFlowContextProvider" => {
            let flow = f.comp("flow")?;
            let fc = lw.comp(flow);
            let io = lw.io(flow).clone();
            let all: Vec<String> = io.outputs.iter().map(|p| p.title().to_owned()).collect();
            let names: Vec<String> = match f.json("output_names").and_then(serde_json::Value::as_array) {
                Some(list) => {
                    let names: Vec<String> = list.iter().filter_map(serde_json::Value::as_str).map(str::to_owned).collect();
                    let unknown: Vec<String> = names.iter().filter(|n| !all.contains(n)).map(|n| format!("\"{n}\"")).collect();
                    if !unknown.is_empty() {
                        lw.error(
                            c,
                            Code::ComponentRule,
                            format!("{}/output_names", comp.pointer),
                            format!(
                                "`output_names` names {}, which {} not an output of {} (its outputs are {})",
                                unknown.join(", "),
                                if unknown.len() > 1 { "are" } else { "is" },
                                fc.label(),
                                quoted(&all)
                            ),
                            "name outputs of the provider's flow",
                        );
                        return None;
                    }
                    names
                }
                None => all.clone(),
            };
            let [output] = names.as_slice() else {
                lw.error(
                    c,
                    Code::ComponentRule,
                    comp.pointer.clone(),
                    format!(
                        "a context provider gives one value, but {} gives {} ({}); WayFlow refuses it",
                        if f.json("output_names").is_some_and(|v| !v.is_null()) { "`output_names`" } else { "its flow" },
                        names.len(),
                        quoted(&names)
                    ),
                    "set `output_names` to the one flow output the provider gives",
                );
                return None;
            };
            let needed: Vec<String> = io.inputs.iter().filter(|p| p.default().is_none()).map(|p| format!("\"{}\"", p.title())).collect();
            if !needed.is_empty() {
                lw.error(
                    c,
                    Code::ComponentRule,
                    format!("{}/flow", comp.pointer),
                    format!("runs {} with no inputs, but it needs {}", fc.label(), needed.join(", ")),
                    "give those flow inputs defaults: a context provider's flow is started without inputs",
                );
                return None;
            }
            if let Some((n, why)) = super::fanout::first_yielding(lw.spec(), flow) {
                lw.error(
                    c,
                    Code::ComponentRule,
                    format!("{}/flow", comp.pointer),
                    format!(
                        "runs a flow whose {} may {why}; a context provider's flow must not wait (WayFlow refuses it)",
                        lw.comp(n).label()
                    ),
                    "move the interaction out of the provider's flow",
                );
                return None;
            }
            Some(ContextProvider::Flow { output: output.clone(), flow })
        }
        other => {
            lw.block(c, c, comp.pointer.clone(), other.to_owned());
            None
        }
    }
}

/// `"a", "b"`, or `none`.
fn quoted(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ") }
}
