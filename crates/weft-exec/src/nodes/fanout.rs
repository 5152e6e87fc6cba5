//! Fan-outs: ParallelFlowNode (its subflows as branches, outputs merged in declaration order)
//! and the map nodes (the subflow once per item, outputs collected in input order).
//!
//! Branches and items are child frames started in index order, at most `max_workers` at once;
//! what a core map node iterates is decided at plan time per data edge (FORMAT 8.1), the items
//! when the node runs, from its input values (kept in its `Position::InBranches`).

use super::{At, Role};
use crate::check::{Checked, Place, damaged};
use crate::error::RunErrorKind;
use crate::plan::{Compiler, NodePlan, Plan};
use crate::sched::{Res, Sched, excerpt, get_frame, latest_source, node_error, other};
use crate::state::{Frame, Position, RunState};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use weft_flow::node::{DataEdge, MapNode, ParallelNode};
use weft_guard::Secrets;

pub(crate) use weft_flow::node::{Collect, Reducer};

/// ParallelFlowNode, ExtendedParallelFlowNode: subflows run concurrently, at most
/// `max_workers` at a time; outputs merged in order.
pub(crate) struct ParallelOp {
    pub(crate) flows: Vec<usize>,
    pub(crate) max_workers: usize,
}

/// MapNode, ParallelMapNode, ExtendedMapNode, ExtendedParallelMapNode.
pub(crate) struct MapOp {
    pub(crate) flow: usize,
    /// Items at once: 1 for the sequential forms.
    pub(crate) max_workers: usize,
    pub(crate) items: MapItems,
    pub(crate) collect: Vec<Collect>,
}

/// Where each item's subflow inputs come from.
pub(crate) enum MapItems {
    /// MapNode and ParallelMapNode: subflow input `p` comes from node input `iterated_<p>`,
    /// iterated or broadcast depending on the declared type of the output its value came from.
    Core(Vec<CoreInput>),
    /// The Extended forms: `iterated_input` is iterated, `unpack_input` queries take subflow
    /// inputs out of each item, every other subflow input is broadcast from the node's input
    /// of the same name.
    Extended {
        /// Internal name of the iterated input (`iterated_input`).
        iterated: String,
        /// Subflow input and the jq query giving it from the item.
        unpack: Vec<(String, weft_prompt::JqQuery)>,
        /// Subflow input and the node input (internal name) broadcast into it.
        broadcast: Vec<(String, String)>,
    },
}

pub(crate) struct CoreInput {
    /// The subflow's input title.
    pub(crate) subflow_input: String,
    /// The node input's internal name.
    pub(crate) internal: String,
    /// Per data edge into the input (same order as its `sources`): whether a value from it is
    /// iterated (its declared type is a list of the subflow input's type).
    pub(crate) iterates: Vec<bool>,
}

/// A node that runs a fan-out.
#[derive(Clone, Copy)]
pub(crate) enum FanOut<'p> {
    Parallel(&'p ParallelOp),
    Map(&'p MapOp),
}

impl FanOut<'_> {
    fn max_workers(self) -> usize {
        match self {
            FanOut::Parallel(op) => op.max_workers,
            FanOut::Map(op) => op.max_workers,
        }
    }
}

impl ParallelOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, p: &ParallelNode) -> ParallelOp {
        let flows = p.flows.iter().map(|&sub| c.flow_plan(sub)).collect();
        ParallelOp { flows, max_workers: p.max_workers }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        start(s, state, at, FanOut::Parallel(self), vars, Vec::new(), self.flows.len())
    }
}

impl MapOp {
    /// A map node: whether each core input iterates (per data edge into it), and its subflow.
    pub(crate) fn plan(c: &mut Compiler<'_>, map: &MapNode, idx: usize, edges: &[DataEdge]) -> MapOp {
        let flow = c.flow_plan(map.subflow);
        let items = match &map.items {
            weft_flow::node::MapItems::Extended(e) => {
                MapItems::Extended { iterated: e.iterated.clone(), unpack: e.unpack.clone(), broadcast: e.broadcast.clone() }
            }
            weft_flow::node::MapItems::Core(core) => {
                let node_id = &c.nodes[idx].id;
                let spec = c.flow.spec();
                let inputs = core
                    .iter()
                    .map(|input| {
                        let iterates = edges
                            .iter()
                            .filter(|e| spec.get(e.destination).id == *node_id && e.input == input.input)
                            .map(|e| {
                                c.flow
                                    .io(e.source)
                                    .output(&e.output)
                                    .is_some_and(|o| weft_flow::schema::same_type(&o.schema, &input.list_schema))
                            })
                            .collect();
                        CoreInput { subflow_input: input.subflow_input.clone(), internal: input.internal.clone(), iterates }
                    })
                    .collect();
                MapItems::Core(inputs)
            }
        };
        MapOp { flow, max_workers: map.max_workers, items, collect: map.collect.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let (vars, iterated, total) = self.items(s, state, at, vars)?;
        start(s, state, at, FanOut::Map(self), vars, iterated, total)
    }

    /// Decides what a map node iterates over: the node's input values (an object iterated by
    /// an Extended form replaced by its `{"_key", "_value"}` pairs), the iterated inputs and
    /// the number of items. Lists of different lengths are an error naming both inputs.
    fn items(
        &self,
        s: &Sched<'_>,
        state: &RunState,
        at: At<'_>,
        mut vars: Map<String, Json>,
    ) -> Res<(Map<String, Json>, Vec<String>, usize)> {
        let node = at.node;
        let frame = get_frame(state, at.fid)?;
        let mut iterated: Vec<(String, usize)> = Vec::new();
        match &self.items {
            MapItems::Core(inputs) => {
                for ci in inputs {
                    let Some(input) = node.inputs.iter().find(|i| i.internal == ci.internal) else { continue };
                    let from_list = latest_source(frame, input).is_some_and(|k| ci.iterates.get(k).copied().unwrap_or(false));
                    if !from_list {
                        continue;
                    }
                    match vars.get(&ci.internal) {
                        Some(Json::Array(items)) => iterated.push((ci.internal.clone(), items.len())),
                        Some(other) => {
                            return Err(node_error(
                                RunErrorKind::MissingInput,
                                node,
                                &format!(
                                    "input \"{}\" is iterated (its data edge comes from a list output) but its value is not a list: {}",
                                    input.title,
                                    excerpt(&other.to_string(), &s.plan.secrets)
                                ),
                            ));
                        }
                        None => {}
                    }
                }
                if iterated.is_empty() {
                    return Err(node_error(
                        RunErrorKind::MissingInput,
                        node,
                        "no input is iterated: connect a list output whose items have the subflow input's type to one of its iterated_<input> inputs",
                    ));
                }
            }
            MapItems::Extended { iterated: name, .. } => {
                let title = node.inputs.iter().find(|i| &i.internal == name).map_or(name.as_str(), |i| i.title.as_str());
                let list = match vars.remove(name) {
                    Some(Json::Array(items)) => items,
                    Some(Json::Object(m)) => m.into_iter().map(|(k, v)| serde_json::json!({"_key": k, "_value": v})).collect(),
                    Some(other) => {
                        return Err(node_error(
                            RunErrorKind::MissingInput,
                            node,
                            &format!(
                                "input \"{title}\" must be a list or an object to iterate over, got {}",
                                excerpt(&other.to_string(), &s.plan.secrets)
                            ),
                        ));
                    }
                    None => Vec::new(),
                };
                iterated.push((name.clone(), list.len()));
                vars.insert(name.clone(), Json::Array(list));
            }
        }
        let Some((first, n)) = iterated.first().cloned() else {
            return Err(node_error(RunErrorKind::MissingInput, node, "no input is iterated"));
        };
        if let Some((other, m)) = iterated.iter().find(|(_, m)| *m != n) {
            let title =
                |internal: &str| node.inputs.iter().find(|i| i.internal == internal).map_or(internal.to_owned(), |i| i.title.clone());
            return Err(node_error(
                RunErrorKind::MissingInput,
                node,
                &format!(
                    "the iterated inputs have different lengths: \"{}\" has {n} items and \"{}\" has {m}; iterated lists are zipped, so give them equal lengths",
                    title(&first),
                    title(other)
                ),
            ));
        }
        Ok((vars, iterated.into_iter().map(|(name, _)| name).collect(), n))
    }

    /// The subflow inputs of item `i` of a map node.
    fn item_inputs(
        &self,
        s: &Sched<'_>,
        node: &NodePlan,
        vars: &Map<String, Json>,
        iterated: &[String],
        i: usize,
    ) -> Res<Map<String, Json>> {
        // Sized for the item's inputs: the map is held as long as the item's frame.
        let mut inputs = Map::with_capacity(match &self.items {
            MapItems::Core(core) => core.len(),
            MapItems::Extended { unpack, broadcast, .. } => unpack.len() + broadcast.len(),
        });
        match &self.items {
            MapItems::Core(core) => {
                for ci in core {
                    let Some(v) = vars.get(&ci.internal) else { continue };
                    let v = if iterated.contains(&ci.internal) { v.get(i).cloned().unwrap_or(Json::Null) } else { v.clone() };
                    inputs.insert(ci.subflow_input.clone(), v);
                }
            }
            MapItems::Extended { iterated: name, unpack, broadcast } => {
                let item = vars.get(name).and_then(|l| l.get(i)).cloned().unwrap_or(Json::Null);
                for (input, query) in unpack {
                    let v = query.eval_first(&item).map_err(|e| node_error(s.stopped_kind(&e), node, &format!("item {i}: {e}")))?;
                    let v = v.ok_or_else(|| {
                        node_error(
                            RunErrorKind::MissingInput,
                            node,
                            &format!(
                                "item {i}: the unpack_input query `{}` for \"{input}\" gives no value for the item {}",
                                query.source(),
                                excerpt(&item.to_string(), &s.plan.secrets)
                            ),
                        )
                    })?;
                    inputs.insert(input.clone(), v);
                }
                for (input, from) in broadcast {
                    if let Some(v) = vars.get(from) {
                        inputs.insert(input.clone(), v.clone());
                    }
                }
            }
        }
        // Only what the subflow declares, cast to its types.
        let declared = &s.plan.flows[self.flow].inputs;
        Ok(declared
            .iter()
            .filter_map(|p| inputs.remove(p.title()).map(|v| (p.title().to_owned(), weft_prompt::cast_to_input(v, &p.schema))))
            .collect())
    }
}

/// Puts the node in branches (`total` of them, its input values kept) and starts the first.
fn start(
    s: &mut Sched<'_>,
    state: &mut RunState,
    at: At<'_>,
    fan: FanOut<'_>,
    vars: Map<String, Json>,
    iterated: Vec<String>,
    total: usize,
) -> Res<()> {
    s.start_clock(state, at.fid);
    let position =
        Position::InBranches { node: at.node.id.clone(), vars, iterated, total, next: 0, running: BTreeMap::new(), done: BTreeMap::new() };
    s.set_position(state, at.fid, position);
    start_branches(s, state, at.fid, at.node, fan)
}

/// Starts branches or items in index order while fewer than `max_workers` run; when all
/// have finished, merges (parallel flows, in declaration order) or collects (maps, in input
/// order) their outputs and moves on.
fn start_branches(s: &mut Sched<'_>, state: &mut RunState, fid: u64, node: &NodePlan, fan: FanOut<'_>) -> Res<()> {
    let max_workers = fan.max_workers();
    loop {
        let Some(Frame { position: Position::InBranches { vars, iterated, total, next, running, .. }, .. }) = state.frame(fid) else {
            return Err(other("a parallel node lost its branches"));
        };
        if running.len() >= max_workers || *next >= *total {
            break;
        }
        let index = *next;
        let (flow, inputs) = match fan {
            FanOut::Parallel(op) => {
                let flow = *op.flows.get(index).ok_or_else(|| {
                    other(format!("branch {index} of a parallel node with {} branches (this is a bug in weft)", op.flows.len()))
                })?;
                let mut inputs = Map::with_capacity(s.plan.flows[flow].inputs.len());
                for p in &s.plan.flows[flow].inputs {
                    if let Some(input) = node.inputs.iter().find(|i| i.title == p.title())
                        && let Some(v) = vars.get(&input.internal)
                    {
                        inputs.insert(p.title().to_owned(), v.clone());
                    }
                }
                (flow, inputs)
            }
            FanOut::Map(op) => (op.flow, op.item_inputs(s, node, vars, iterated, index)?),
        };
        let path = format!("{}/{}[{index}]", get_frame(state, fid)?.path, node.name);
        let child = s.new_frame(state, fid, node, flow, inputs, path.clone(), path)?;
        if let Some(Frame { position: Position::InBranches { running, next, .. }, .. }) = state.frame_mut(fid) {
            running.insert(child, index);
            *next = index + 1;
        }
    }
    let Some(Frame { position: Position::InBranches { next, total, running, .. }, .. }) = state.frame(fid) else {
        return Err(other("a parallel node lost its branches"));
    };
    if *next < *total || !running.is_empty() {
        return Ok(());
    }
    let Some(Frame { position: Position::InBranches { done, .. }, .. }) = state.frame_mut(fid) else {
        return Err(other("a parallel node lost its branches"));
    };
    let done = std::mem::take(done);
    let outputs = match fan {
        FanOut::Map(op) => collect(node, op, done, &s.plan.secrets)?,
        FanOut::Parallel(_) => {
            let mut merged = Map::new();
            for outputs in done.into_values() {
                merged.extend(outputs);
            }
            merged
        }
    };
    let t0 = s.stop_clock(state, fid);
    s.done(state, At { fid, node, t0 }, outputs)
}

/// Branch or item `child` of the node at `at` finished with `outputs`: kept by index, and the
/// next one starts (or, after the last, the node moves on).
pub(crate) fn child_finished(
    s: &mut Sched<'_>,
    state: &mut RunState,
    at: At<'_>,
    fan: FanOut<'_>,
    child: u64,
    outputs: Map<String, Json>,
) -> Res<()> {
    let Some(Frame { position: Position::InBranches { running, done, .. }, .. }) = state.frame_mut(at.fid) else {
        return Err(other("a parallel node lost its branches"));
    };
    let index = running.remove(&child).ok_or_else(|| other("a branch finished that was not running"))?;
    done.insert(index, outputs);
    start_branches(s, state, at.fid, at.node, fan)
}

/// How an error names branch or item `index` of `node`: `branch 1 ("b")`, `item 3`.
pub(crate) fn child_label(plan: &Plan, node: &NodePlan, index: usize) -> String {
    // Only a map node's children are items; a ParallelFlowNode's are named branches.
    if let Role::FanOut(FanOut::Parallel(op)) = node.op.role() {
        let name = op.flows.get(index).map(|f| plan.flows[*f].name.as_str()).unwrap_or("?");
        format!("branch {index} (\"{name}\")")
    } else {
        format!("item {index}")
    }
}

/// A map node's outputs from its items' outputs (by item index, so in input order).
fn collect(node: &NodePlan, op: &MapOp, mut done: BTreeMap<usize, Map<String, Json>>, secrets: &Secrets) -> Res<Map<String, Json>> {
    let mut outputs = Map::new();
    for (k, c) in op.collect.iter().enumerate() {
        let value = match c.reducer {
            // The items' values move into the list unless a later output reads them too.
            Reducer::Append if op.collect[k + 1..].iter().all(|later| later.from != c.from) => {
                Json::Array(done.values_mut().filter_map(|outs| outs.remove(&c.from)).collect())
            }
            Reducer::Append => Json::Array(done.values().filter_map(|outs| outs.get(&c.from).cloned()).collect()),
            reducer => {
                let values: Vec<(usize, &Json)> = done.iter().filter_map(|(i, outs)| outs.get(&c.from).map(|v| (*i, v))).collect();
                reduce(node, c, reducer, &values, secrets)?
            }
        };
        outputs.insert(c.output.clone(), value);
    }
    Ok(outputs)
}

/// `sum`, `average`, `max` or `min` over the items' values.
fn reduce(node: &NodePlan, c: &Collect, reducer: Reducer, values: &[(usize, &Json)], secrets: &Secrets) -> Res<Json> {
    let mut numbers = Vec::with_capacity(values.len());
    for (i, v) in values {
        match v {
            Json::Number(n) => numbers.push(n),
            other => {
                return Err(node_error(
                    RunErrorKind::Value,
                    node,
                    &format!(
                        "the {} reducer of \"{}\" needs numbers, but item {i} gave {}",
                        reducer.name(),
                        c.from,
                        excerpt(&other.to_string(), secrets)
                    ),
                ));
            }
        }
    }
    if numbers.is_empty() {
        return match (reducer, &c.default) {
            (Reducer::Sum, _) => Ok(if c.integer { Json::from(0) } else { Json::from(0.0) }),
            (_, Some(d)) => Ok(d.clone()),
            (_, None) => Err(node_error(
                RunErrorKind::Value,
                node,
                &format!(
                    "the {} of \"{}\" over no items is undefined: the list to iterate is empty and the output has no default; give output \"{}\" a default",
                    reducer.name(),
                    c.from,
                    c.output
                ),
            )),
        };
    }
    let ints: Option<Vec<i64>> = numbers.iter().map(|n| n.as_i64()).collect();
    let floats: Vec<f64> = numbers.iter().filter_map(|n| n.as_f64()).collect();
    Ok(match reducer {
        Reducer::Sum => match ints.as_ref().and_then(|v| v.iter().try_fold(0i64, |a, b| a.checked_add(*b))) {
            Some(total) => Json::from(total),
            None => Json::from(floats.iter().sum::<f64>()),
        },
        Reducer::Average => Json::from(floats.iter().sum::<f64>() / floats.len() as f64),
        Reducer::Max | Reducer::Min => {
            let want_max = reducer == Reducer::Max;
            let mut best = 0;
            for (k, x) in floats.iter().enumerate() {
                if (want_max && *x > floats[best]) || (!want_max && *x < floats[best]) {
                    best = k;
                }
            }
            Json::Number(numbers[best].clone())
        }
        Reducer::Append => Json::Null,
    })
}

/// A stored fan-out: `total` and `iterated` fit the node, indices below `next` each run in one
/// child frame (of the right flow) or are done, and at least one runs.
pub(crate) fn check_position(place: &Place<'_>, fan: FanOut<'_>, position: &Position) -> Checked {
    let Position::InBranches { vars, iterated, total, next, running, done, .. } = position else { return place.unexpected(position) };
    let node_id = place.node_id;
    let pointer = |field: &str| format!("{}/position/{field}", place.at);
    match fan {
        FanOut::Parallel(op) => {
            if *total != op.flows.len() {
                return Err(damaged(
                    pointer("total"),
                    format!("node \"{node_id}\" has {} branches, the state says {total}", op.flows.len()),
                ));
            }
            if let Some(name) = iterated.first() {
                return Err(damaged(pointer("iterated"), format!("a parallel flow node iterates nothing, the state names \"{name}\"")));
            }
        }
        FanOut::Map(op) => check_iterated(vars, iterated, *total, &op.items, &pointer("iterated"))?,
    }
    if *next > *total {
        return Err(damaged(pointer("next"), format!("next is {next}, past the {total} branches or items")));
    }
    if running.is_empty() {
        return Err(damaged(
            pointer("running"),
            "nothing is running: a fan-out at rest always runs at least one branch or item until all are done",
        ));
    }
    let mut started: BTreeSet<usize> = BTreeSet::new();
    for (child, index) in running {
        if *index >= *next {
            return Err(damaged(
                pointer("running"),
                format!("frame {child} runs index {index}, but only indices below next ({next}) have started"),
            ));
        }
        if !started.insert(*index) {
            return Err(damaged(pointer("running"), format!("index {index} runs in two frames")));
        }
        // Indices below `next` are below `total`, the number of branch flows.
        let flow = match fan {
            FanOut::Parallel(op) => op.flows.get(*index).copied(),
            FanOut::Map(op) => Some(op.flow),
        };
        let Some(flow) = flow else { return Err(place.wrong("runs a branch it does not have")) };
        place.child(*child, flow, pointer("running"))?;
    }
    for index in done.keys() {
        if *index >= *next {
            return Err(damaged(pointer("done"), format!("index {index} is done, but only indices below next ({next}) have started")));
        }
        if !started.insert(*index) {
            return Err(damaged(pointer("done"), format!("index {index} is both running and done")));
        }
    }
    if started.len() != *next {
        return Err(damaged(
            pointer("next"),
            format!("next is {next}, but {} indices are running or done: each started one is either", started.len()),
        ));
    }
    Ok(())
}

/// A map node's iterated inputs: known names, each a list of `total` items.
fn check_iterated(vars: &Map<String, Json>, iterated: &[String], total: usize, items: &MapItems, pointer: &str) -> Checked {
    match items {
        MapItems::Core(core) => {
            if iterated.is_empty() {
                return Err(damaged(pointer, "a map node iterates at least one input, the state names none"));
            }
            for name in iterated {
                if !core.iter().any(|c| &c.internal == name) {
                    return Err(damaged(pointer, format!("\"{name}\" is not an input this map node can iterate")));
                }
            }
        }
        MapItems::Extended { iterated: name, .. } => {
            if iterated != std::slice::from_ref(name) {
                return Err(damaged(pointer, format!("this map node iterates exactly its input \"{name}\"")));
            }
        }
    }
    for name in iterated {
        match vars.get(name) {
            Some(Json::Array(items)) if items.len() == total => {}
            Some(Json::Array(items)) => {
                return Err(damaged(
                    pointer.replace("/iterated", "/total"),
                    format!("total is {total}, but the iterated input \"{name}\" has {} items", items.len()),
                ));
            }
            _ => {
                return Err(damaged(
                    pointer.replace("/iterated", "/vars"),
                    format!("the iterated input \"{name}\" must be stored as a list of the items"),
                ));
            }
        }
    }
    Ok(())
}
