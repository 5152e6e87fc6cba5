//! Fan-out nodes: ParallelFlowNode and ExtendedParallelFlowNode (several subflows at once),
//! MapNode, ParallelMapNode, ExtendedMapNode and ExtendedParallelMapNode (a subflow once per
//! item, outputs collected in input order).

use super::{Lowerer, internal_name, max_workers};
use serde_json::Value as Json;
use weft_prompt::JqQuery;
use weft_spec::diagnostic::{did_you_mean, escape_token};
use weft_spec::{Code, CompId, Property};

/// The reducers a core map node may name.
pub const REDUCERS: &[&str] = &["append", "sum", "average", "max", "min"];

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

/// How a map node combines an output over its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reducer {
    /// A list of every item's value, in input order.
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

pub(super) fn parallel(lw: &Lowerer<'_, '_>, n: CompId) -> ParallelNode {
    let f = lw.fields(n);
    let field = if lw.comp(n).is("ParallelFlowNode") { "subflows" } else { "flows" };
    ParallelNode { flows: f.comps(field), max_workers: max_workers(f) }
}

pub(super) fn map(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<MapNode> {
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
        if !v.as_str().is_some_and(|m| REDUCERS.contains(&m)) {
            let hint = match v.as_str().and_then(|s| did_you_mean(s, REDUCERS.iter().copied())) {
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
