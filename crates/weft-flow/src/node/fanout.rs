//! Fan-out nodes: ParallelFlowNode and ExtendedParallelFlowNode (several subflows at once),
//! MapNode, ParallelMapNode, ExtendedMapNode and ExtendedParallelMapNode (a subflow once per
//! item, outputs collected in input order).

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, max_workers, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, map_titles};
use serde_json::Value as Json;
use std::collections::HashMap;
use weft_prompt::JqQuery;
use weft_spec::diagnostic::{did_you_mean, escape_token};
use weft_spec::{Code, CompId, Property};

/// The types of the family.
pub const TYPES: &[&str] =
    &["ParallelFlowNode", "ExtendedParallelFlowNode", "MapNode", "ParallelMapNode", "ExtendedMapNode", "ExtendedParallelMapNode"];

/// A parallel flow node.
#[derive(Debug, Clone)]
pub struct ParallelNode {
    /// The subflows, in order (outputs are merged in this order).
    pub flows: Vec<CompId>,
    /// Subflows at once.
    pub max_workers: usize,
}

/// A map node.
#[derive(Debug)]
pub struct MapNode {
    /// The subflow run once per item.
    pub subflow: CompId,
    /// Items at once: 1 for MapNode and a sequential ExtendedMapNode.
    pub max_workers: usize,
    /// Where each item's subflow inputs come from.
    pub items: MapItems,
    /// The outputs collected over the items.
    pub collect: Vec<Collect>,
}

/// Where each item's subflow inputs come from.
#[derive(Debug)]
pub enum MapItems {
    /// MapNode and ParallelMapNode: subflow input `p` comes from node input `iterated_<p>`,
    /// iterated or broadcast depending on the declared type of the output feeding it (decided
    /// per data edge when a run is planned).
    Core(Vec<CoreInput>),
    /// ExtendedMapNode and ExtendedParallelMapNode.
    Extended(ExtendedItems),
}

/// One subflow input of a core map node.
#[derive(Debug, Clone)]
pub struct CoreInput {
    /// The subflow's input title.
    pub subflow_input: String,
    /// The node input's external title (`iterated_<p>`).
    pub input: String,
    /// The node input's internal name.
    pub internal: String,
    /// The schema of a list of the subflow input's type: a value from an output declared with
    /// this type is iterated.
    pub list_schema: Json,
}

/// The items of an Extended map node: `iterated_input` is iterated, `unpack_input` queries take
/// subflow inputs out of each item, every other subflow input is broadcast from the node's
/// input of the same name.
#[derive(Debug)]
pub struct ExtendedItems {
    /// Internal name of the iterated input.
    pub iterated: String,
    /// Subflow input and the jq query giving it from the item.
    pub unpack: Vec<(String, JqQuery)>,
    /// Subflow input and the node input (internal name) broadcast into it.
    pub broadcast: Vec<(String, String)>,
}

/// One collected output of a map node.
#[derive(Debug, Clone)]
pub struct Collect {
    /// The node's output, internal title.
    pub output: String,
    /// The subflow output collected.
    pub from: String,
    /// How values are combined.
    pub reducer: Reducer,
    /// What `average`, `max` and `min` give over no items.
    pub default: Option<Json>,
    /// `sum` of nothing is `0` for an integer output, `0.0` otherwise.
    pub integer: bool,
}

/// How a map node combines the values one output of its subflow takes over the items
/// (FORMAT.md 8 and 8.1): the node's output `collected_<output>`. The one vocabulary of
/// reducers: the checks, the builder and the engine use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reducer {
    /// The list of the values, in the order of the items (`collected_<o>` is an array of `o`).
    /// The only reducer WayFlow runs.
    Append,
    /// The sum.
    Sum,
    /// The mean.
    Average,
    /// The largest.
    Max,
    /// The smallest.
    Min,
}

impl Reducer {
    /// Every reducer.
    pub const ALL: [Reducer; 5] = [Reducer::Append, Reducer::Sum, Reducer::Average, Reducer::Max, Reducer::Min];

    /// The reducer a document names.
    pub fn parse(name: &str) -> Option<Reducer> {
        Some(match name {
            "append" => Reducer::Append,
            "sum" => Reducer::Sum,
            "average" => Reducer::Average,
            "max" => Reducer::Max,
            "min" => Reducer::Min,
            _ => return None,
        })
    }

    /// Its name in documents.
    pub fn name(self) -> &'static str {
        match self {
            Reducer::Append => "append",
            Reducer::Sum => "sum",
            Reducer::Average => "average",
            Reducer::Max => "max",
            Reducer::Min => "min",
        }
    }
}

impl std::fmt::Display for Reducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    let kind = match lw.comp(n).ty.name {
        "ParallelFlowNode" | "ExtendedParallelFlowNode" => NodeKind::Parallel(parallel(lw, n)),
        "MapNode" | "ParallelMapNode" | "ExtendedMapNode" | "ExtendedParallelMapNode" => NodeKind::Map(Box::new(map(lw, n)?)),
        _ => return Some(Lowered::NotRunnable),
    };
    Some(Lowered::Kind(kind))
}

fn parallel(lw: &Lowerer<'_, '_>, n: CompId) -> ParallelNode {
    let f = lw.fields(n);
    let field = if lw.comp(n).is("ParallelFlowNode") { "subflows" } else { "flows" };
    ParallelNode { flows: f.comps(field), max_workers: max_workers(f) }
}

fn map(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<MapNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let extended = comp.ty.name.starts_with("Extended");
    let subflow = f.comp(if extended { "flow" } else { "subflow" })?;
    let max_workers = match comp.ty.name {
        "MapNode" => 1,
        "ExtendedMapNode" if !f.bool("parallel_execution", false) => 1,
        _ => max_workers(f),
    };
    let sub_inputs: Vec<Property> = lw.io(subflow).inputs.clone();
    let in_map = f.mapping("input_mapping");
    let node_inputs: Vec<(String, String)> =
        lw.io(n).inputs.iter().map(|p| (p.title().to_owned(), internal_name(&in_map, p.title()))).collect();
    let items = if extended {
        let iterated = "iterated_input".to_owned();
        let mut unpack = Vec::new();
        let mut ok = true;
        if let Some(queries) = f.object("unpack_input") {
            for (input, query) in queries {
                let Some(query) = query.as_str() else { continue };
                match lw.jq(n, "unpack_input", input, query) {
                    Some(q) => unpack.push((input.clone(), q)),
                    None => ok = false,
                }
            }
        }
        let mut broadcast = Vec::new();
        for p in &sub_inputs {
            if unpack.iter().any(|(i, _)| i == p.title()) {
                continue;
            }
            if let Some((_, internal)) = node_inputs.iter().find(|(_, internal)| internal == p.title() && *internal != iterated) {
                broadcast.push((p.title().to_owned(), internal.clone()));
            }
        }
        // Without queries, a subflow with one input left receives each item whole.
        if unpack.is_empty() {
            let left: Vec<&Property> = sub_inputs.iter().filter(|p| !broadcast.iter().any(|(b, _)| b == p.title())).collect();
            if let [one] = left.as_slice() {
                unpack.push((one.title().to_owned(), lw.jq(n, "unpack_input", one.title(), ".")?));
            }
        }
        if !ok {
            return None;
        }
        MapItems::Extended(ExtendedItems { iterated, unpack, broadcast })
    } else {
        let inputs = sub_inputs
            .iter()
            .filter_map(|p| {
                let title = format!("iterated_{}", p.title());
                let (input, internal) = node_inputs.iter().find(|(t, _)| *t == title)?.clone();
                let list_schema = serde_json::json!({"type": "array", "items": p.schema});
                Some(CoreInput { subflow_input: p.title().to_owned(), input, internal, list_schema })
            })
            .collect();
        MapItems::Core(inputs)
    };
    let reducers_ok = extended || reducers(lw, n, subflow);
    let collect = collect(lw, n, subflow, extended)?;
    reducers_ok.then_some(MapNode { subflow, max_workers, items, collect })
}

/// Checks a core map node's `reducers`: each names a reducer and a subflow output.
fn reducers(lw: &mut Lowerer<'_, '_>, n: CompId, subflow: CompId) -> bool {
    let comp = lw.comp(n);
    let Some(map) = lw.fields(n).object("reducers") else { return true };
    let outputs: Vec<String> = lw.io(subflow).outputs.iter().map(|p| p.title().to_owned()).collect();
    let mut ok = true;
    for (k, v) in map {
        let ptr = format!("{}/reducers/{}", comp.pointer, escape_token(k));
        if v.as_str().and_then(Reducer::parse).is_none() {
            let hint = match v.as_str().and_then(|s| did_you_mean(s, Reducer::ALL.iter().map(|r| r.name()))) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => "use append, sum, average, max or min".into(),
            };
            lw.error(n, Code::ComponentRule, ptr.clone(), format!("{v} is not a reducer"), &hint);
            ok = false;
        }
        if !outputs.iter().any(|o| o == k) {
            let hint = match did_you_mean(k, outputs.iter().map(String::as_str)) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => format!("the subflow's outputs are: {}", outputs.join(", ")),
            };
            lw.error(n, Code::ComponentRule, ptr, format!("the reducer key \"{k}\" is not an output of the subflow"), &hint);
            ok = false;
        }
    }
    ok
}

/// The outputs a map node collects: each names a subflow output (core nodes through the
/// `collected_` prefix) and its reducer.
fn collect(lw: &mut Lowerer<'_, '_>, n: CompId, subflow: CompId, extended: bool) -> Option<Vec<Collect>> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let out_map = f.mapping("output_mapping");
    let reducers = if extended { None } else { f.object("reducers") };
    let outputs: Vec<Property> = lw.io(n).outputs.clone();
    let sub_outputs: Vec<Property> = lw.io(subflow).outputs.clone();
    let mut collect = Vec::new();
    let mut ok = true;
    for out in &outputs {
        let internal = internal_name(&out_map, out.title());
        let from = if extended { internal.clone() } else { internal.strip_prefix("collected_").unwrap_or(&internal).to_owned() };
        let reducer = reducers.and_then(|m| m.get(&from)).and_then(Json::as_str).map_or(Some(Reducer::Append), Reducer::parse);
        let Some(sub_out) = sub_outputs.iter().find(|o| o.title() == from) else {
            let pointer = if out.pointer.is_empty() { format!("{}/outputs", comp.pointer) } else { out.pointer.clone() };
            let msg = format!(
                "output \"{}\" collects subflow output \"{from}\", which subflow \"{}\" does not have",
                out.title(),
                lw.comp(subflow).name
            );
            let names: Vec<&str> = sub_outputs.iter().map(Property::title).collect();
            let hint = if extended {
                format!("name the output after a subflow output: {}", names.join(", "))
            } else {
                format!("name the output `collected_<subflow output>`; the subflow's outputs are: {}", names.join(", "))
            };
            lw.error(n, Code::ComponentRule, pointer, msg, &hint);
            ok = false;
            continue;
        };
        // An unknown reducer is reported by `reducers`.
        let Some(reducer) = reducer else {
            ok = false;
            continue;
        };
        let default = out.default().or(sub_out.default()).cloned();
        let integer = sub_out.schema.get("type").and_then(Json::as_str) == Some("integer");
        collect.push(Collect { output: internal, from, reducer, default, integer });
    }
    ok.then_some(collect)
}

pub(super) fn check(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    if matches!(comp.ty.name, "ParallelFlowNode" | "ExtendedParallelFlowNode") {
        parallel_flow(cx, inf, c);
    }
    let parallel_map = matches!(comp.ty.name, "ParallelMapNode" | "ExtendedParallelMapNode")
        || (comp.is("ExtendedMapNode") && comp.json_field("parallel_execution").and_then(Json::as_bool) == Some(true));
    if parallel_map {
        let field = if comp.is("ParallelMapNode") { "subflow" } else { "flow" };
        if let Some(sub) = comp.comp_field(field) {
            yielding(cx, c, sub, "a parallel map");
        }
    }
}

fn parallel_flow(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, c: CompId) {
    let spec = cx.spec;
    let comp = spec.get(c);
    let field = if comp.is("ParallelFlowNode") { "subflows" } else { "flows" };
    let subs = comp.comp_list(field);
    let mut outputs: HashMap<String, usize> = HashMap::new();
    let mut inputs: HashMap<String, serde_json::Value> = HashMap::new();
    for (i, &sub) in subs.iter().enumerate() {
        if cx.skip(sub) {
            continue;
        }
        let io = inf.io(sub);
        for p in &io.outputs {
            if let Some(&first) = outputs.get(p.title()) {
                cx.report(
                    comp,
                    Code::Parallel,
                    comp.pointer.clone(),
                    format!(
                        "{}: branches {first} and {i} both output \"{}\"; the merged outputs would overwrite each other",
                        comp.label(),
                        p.title()
                    ),
                    Some("rename the output in one of the branches (or map it with output_mapping)".into()),
                );
            } else {
                outputs.insert(p.title().to_owned(), i);
            }
        }
        for p in &io.inputs {
            match inputs.get(p.title()) {
                Some(s) if !crate::schema::same_type(s, &p.schema) => cx.report(
                    comp,
                    Code::IoMismatch,
                    comp.pointer.clone(),
                    format!(
                        "{}: branches take input \"{}\" with different types ({} and {})",
                        comp.label(),
                        p.title(),
                        weft_spec::model::type_name(s),
                        p.type_name()
                    ),
                    Some("give the shared input the same type in every branch, or rename it".into()),
                ),
                Some(_) => {}
                None => {
                    inputs.insert(p.title().to_owned(), p.schema.clone());
                }
            }
        }
        yielding(cx, c, sub, "a parallel branch");
    }
}

/// Reports nodes of `flow` (and of flows nested in it) that may stop to wait for the user or
/// the client, which WayFlow refuses inside parallel branches and parallel maps.
fn yielding(cx: &mut Cx<'_>, parallel: CompId, flow: CompId, context: &str) {
    let spec = cx.spec;
    let mut stack = vec![flow];
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = stack.pop() {
        if !seen.insert(f) {
            continue;
        }
        let fl = spec.get(f);
        for (i, n) in fl.comp_list("nodes").into_iter().enumerate() {
            let node = spec.get(n);
            if let Some(why) = yields(spec, n) {
                cx.report(
                    node,
                    Code::Parallel,
                    format!("{}/nodes/{i}", fl.pointer),
                    format!("{} may {why}, which is not allowed inside {context} ({})", node.label(), spec.get(parallel).label()),
                    Some("move the interaction before or after the parallel node".into()),
                );
            }
            for sub in ["subflow", "flow"] {
                if let Some(s) = node.comp_field(sub) {
                    stack.push(s);
                }
            }
            for s in node.comp_list("subflows").into_iter().chain(node.comp_list("flows")) {
                stack.push(s);
            }
        }
    }
}

/// The first node of `flow` (or of a flow nested in it) that may stop to wait for the user or
/// the client, and why.
pub(crate) fn first_yielding(spec: &weft_spec::Spec, flow: CompId) -> Option<(CompId, &'static str)> {
    let mut stack = vec![flow];
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = stack.pop() {
        if !seen.insert(f) {
            continue;
        }
        let fl = spec.get(f);
        for n in fl.comp_list("nodes") {
            if let Some(why) = yields(spec, n) {
                return Some((n, why));
            }
            let node = spec.get(n);
            for sub in ["subflow", "flow"] {
                if let Some(s) = node.comp_field(sub) {
                    stack.push(s);
                }
            }
            stack.extend(node.comp_list("subflows").into_iter().chain(node.comp_list("flows")));
        }
    }
    None
}

fn yields(spec: &weft_spec::Spec, n: CompId) -> Option<&'static str> {
    let node = spec.get(n);
    match node.ty.name {
        "InputMessageNode" | "PluginInputMessageNode" => Some("ask the user for input"),
        "ToolNode" | "ExtendedToolNode" => {
            let tool = spec.get(node.comp_field("tool")?);
            if tool.is("ClientTool") {
                Some("yield a client tool request")
            } else if tool.json_field("requires_confirmation").and_then(Json::as_bool) == Some(true) {
                Some("ask the user to confirm a tool call")
            } else {
                None
            }
        }
        "AgentNode" | "ExtendedAgentNode" => {
            if node.json_field("caller_input_mode").and_then(Json::as_str) == Some("never") {
                return None;
            }
            let mut agent = spec.get(node.comp_field("agent")?);
            let mut extra_tools = Vec::new();
            let mut specialized_mode = None;
            if agent.ty.name == "SpecializedAgent" {
                // Its parameters' `human_in_the_loop` (when not null) and tools count too.
                if let Some(p) = agent.comp_field("agent_specialization_parameters") {
                    let p = spec.get(p);
                    specialized_mode = p.json_field("human_in_the_loop").and_then(Json::as_bool);
                    extra_tools = p.comp_list("additional_tools");
                }
                agent = spec.get(agent.comp_field("agent")?);
            }
            let asks = match agent.ty.name {
                _ if specialized_mode.is_some() => specialized_mode == Some(true),
                // A Swarm and a ManagerWorkers talk to the user.
                "Swarm" | "PluginSwarm" | "ManagerWorkers" | "PluginManagerWorkers" => true,
                "Agent" => agent.json_field("human_in_the_loop").and_then(Json::as_bool).unwrap_or(true),
                "ExtendedAgent" => {
                    agent.json_field("caller_input_mode").and_then(Json::as_str) != Some("never")
                        && agent.json_field("human_in_the_loop").and_then(Json::as_bool).unwrap_or(true)
                }
                _ => false,
            };
            let client_tool = agent.comp_list("tools").into_iter().chain(extra_tools).any(|t| {
                spec.get(t).is("ClientTool") || spec.get(t).json_field("requires_confirmation").and_then(Json::as_bool) == Some(true)
            });
            if asks {
                Some("ask the user (its agent has human_in_the_loop)")
            } else if client_tool {
                Some("yield a client tool request")
            } else {
                None
            }
        }
        _ => None,
    }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred { branches: next(), ..Inferred::default() };
    match comp.ty.name {
        "MapNode" | "ParallelMapNode" => {
            if let Some(sub) = f.comp("subflow") {
                let io = inf.io(sub);
                out.inputs = Some(
                    io.inputs
                        .iter()
                        .map(|p| {
                            let item = p.schema.clone();
                            Property::new(serde_json::json!({
                                "title": format!("iterated_{}", p.title()),
                                "anyOf": [item, {"type": "array", "items": item}],
                            }))
                        })
                        .collect(),
                );
                let reducers = f.json("reducers");
                let mut outs = Vec::new();
                for o in &io.outputs {
                    let method = match reducers {
                        None | Some(Json::Null) => Some("append"),
                        Some(Json::Object(m)) => m.get(o.title()).map(|v| v.as_str().unwrap_or("append")),
                        _ => None,
                    };
                    let Some(method) = method else { continue };
                    let title = format!("collected_{}", o.title());
                    if method == "append" {
                        outs.push(Property::new(serde_json::json!({"title": title, "type": "array", "items": o.schema})));
                    } else {
                        outs.push(o.retitled(&title));
                    }
                }
                out.outputs = Some(outs);
            }
        }
        "ParallelFlowNode" | "ExtendedParallelFlowNode" => {
            let field = if comp.is("ParallelFlowNode") { "subflows" } else { "flows" };
            let mut inputs: Vec<Property> = Vec::new();
            let mut outputs: Vec<Property> = Vec::new();
            for sub in f.comps(field) {
                let io = inf.io(sub);
                crate::infer::union_into(&mut inputs, io.inputs);
                outputs.extend(io.outputs);
            }
            out.inputs = Some(map_titles(&f.mapping("input_mapping"), inputs));
            out.outputs = Some(map_titles(&f.mapping("output_mapping"), outputs));
            out.inputs_explicit_wins = true;
        }
        // The Extended map nodes keep their declared inputs and outputs.
        _ => {}
    }
    Some(out)
}
