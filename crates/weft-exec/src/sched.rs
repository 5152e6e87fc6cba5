//! The scheduler: decides what happens next without doing any IO.
//!
//! [`Sched::advance`] runs every node it can run by itself (start, end, templates, constants,
//! branching, messages, subflows) and leaves nodes that need the outside world in a state that
//! says so: `Busy` with the call to make (LLM, server tool) or `Waiting` for an answer. The
//! driver makes the calls and hands the results to [`Sched::complete`]; answers go through
//! [`Sched::submit`]. All of it only mutates the [`RunState`].

use crate::error::{RunError, RunErrorKind, SubmitError};
use crate::event::{Event, EventSink};
use crate::llm;
use crate::plan::{Collect, InputPlan, MapItems, MapOp, NodePlan, Op, Plan, Reducer};
use crate::state::{Call, ConversationMessage, Frame, InputRequest, Outcome, Position, RunState, Stamped};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;
use weft_guard::Secrets;
use weft_llm::{ChatResponse, LlmError, RequestMeta};
use weft_tools::ToolError;

/// The result of a call the driver made.
pub(crate) enum CallResult {
    Llm(Result<ChatResponse, LlmError>),
    Tool(Result<Json, ToolError>),
}

/// Frames with something to do, so that no step scans every frame (a fan-out has thousands).
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Frames whose cursor became `Ready`.
    pub(crate) ready: VecDeque<u64>,
    /// Frames that became `Busy`: calls for the driver to launch.
    pub(crate) busy: Vec<u64>,
}

impl Work {
    /// The work a stored state holds.
    pub(crate) fn scan(state: &RunState) -> Work {
        let mut work = Work::default();
        for (id, frame) in &state.frames {
            match frame.position {
                Position::Ready { .. } => work.ready.push_back(*id),
                Position::Busy { .. } => work.busy.push(*id),
                _ => {}
            }
        }
        work
    }
}

/// Scheduler settings and the per-process bookkeeping that is not part of the state.
pub(crate) struct Sched<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) events: Option<&'a dyn EventSink>,
    pub(crate) max_steps: u64,
    pub(crate) max_reasks: u32,
    /// When each busy or waiting frame's node started, for durations.
    pub(crate) started: &'a mut HashMap<u64, Instant>,
    pub(crate) work: &'a mut Work,
}

type Res<T> = Result<T, RunError>;

impl Sched<'_> {
    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(sink) = self.events {
            sink.emit(&event());
        }
    }

    fn node_of(&self, frame: &Frame, id: &str) -> Res<usize> {
        let flow = self.plan.flow_by_id(&frame.flow).ok_or_else(|| other(format!("unknown flow \"{}\" in the run state", frame.flow)))?;
        self.plan.node_in(flow, id).ok_or_else(|| other(format!("unknown node \"{id}\" in the run state")))
    }

    /// Creates the root frame.
    pub(crate) fn init(&mut self, state: &mut RunState) {
        let flow = &self.plan.flows[0];
        let start = &self.plan.nodes[flow.start];
        state.frames.insert(
            0,
            Frame {
                flow: flow.id.clone(),
                path: flow.name.clone(),
                budget_key: flow.name.clone(),
                parent: None,
                inputs: state.inputs.clone(),
                values: BTreeMap::new(),
                visits: IndexMap::new(),
                position: Position::Ready { node: start.id.clone() },
            },
        );
        state.next_frame = 1;
        self.work.ready.push_back(0);
    }

    /// Runs every node that can run without IO, until each frame is busy, waiting or done.
    pub(crate) fn advance(&mut self, state: &mut RunState) -> Res<()> {
        while let Some(fid) = self.work.ready.pop_front() {
            while let Some(frame @ Frame { position: Position::Ready { node }, .. }) = state.frames.get(&fid) {
                let idx = self.node_of(frame, node)?;
                self.run_node(state, fid, idx).map_err(|e| self.locate(state, fid, e))?;
            }
        }
        Ok(())
    }

    /// Says which branch or item an error happened in, when it happened below a fan-out:
    /// `ParallelMapNode "workers" item 3: LlmNode "write": ...`.
    pub(crate) fn locate(&self, state: &RunState, fid: u64, mut error: RunError) -> RunError {
        let mut parts = Vec::new();
        let mut child = fid;
        // Bounded by the number of frames, so even a cycle of parents cannot loop forever.
        let mut hops = 0;
        while let Some((parent, node_id)) = state.frames.get(&child).and_then(|f| f.parent.clone())
            && hops <= state.frames.len()
        {
            hops += 1;
            if let Some(frame @ Frame { position: Position::InBranches { running, .. }, .. }) = state.frames.get(&parent)
                && let Some(index) = running.get(&child)
                && let Ok(idx) = self.node_of(frame, &node_id)
            {
                let node = &self.plan.nodes[idx];
                let what = match &node.op {
                    Op::Parallel { flows, .. } => {
                        let name = flows.get(*index).map(|f| self.plan.flows[*f].name.as_str()).unwrap_or("?");
                        format!("branch {index} (\"{name}\")")
                    }
                    _ => format!("item {index}"),
                };
                parts.push(format!("{} \"{}\" {what}", node.ty, node.name));
            }
            child = parent;
        }
        if !parts.is_empty() {
            parts.reverse();
            error.message = format!("{}: {}", parts.join(" > "), error.message);
        }
        error
    }

    fn run_node(&mut self, state: &mut RunState, fid: u64, idx: usize) -> Res<()> {
        let plan = self.plan;
        let node = &plan.nodes[idx];
        self.spend_step(state, fid, node)?;
        let frame = get_frame_mut(state, fid)?;
        let visits = frame.visits.entry(node.id.clone()).or_insert(0);
        *visits = visits.saturating_add(1);
        let path = frame.path.clone();
        self.emit(|| Event::NodeStarted { path: path.clone(), node: node.name.clone(), node_type: node.ty.to_owned() });
        let t0 = Instant::now();
        let vars = self.inputs(state, fid, node)?;
        match &node.op {
            Op::Start => {
                let inputs = get_frame(state, fid)?.inputs.clone();
                self.produce(state, fid, node, inputs)?;
                self.follow(state, fid, node, "next", t0)
            }
            Op::End { branch } => {
                let mut outputs = Map::new();
                for input in &node.inputs {
                    if let Some(v) = vars.get(&input.internal) {
                        outputs.insert(input.title.clone(), v.clone());
                    }
                }
                self.emit(|| Event::NodeFinished { path: path.clone(), node: node.name.clone(), branch: None, duration_ms: ms(t0) });
                self.finish_frame(state, fid, outputs, branch.clone())
            }
            Op::Template { template, output } => {
                let text = template
                    .render(&vars)
                    .map_err(|e| node_error(RunErrorKind::Template, node, &format!("cannot render its template: {e}")))?;
                self.produce(state, fid, node, single(output, Json::String(text)))?;
                self.follow(state, fid, node, "next", t0)
            }
            Op::Constants { values } => {
                self.produce(state, fid, node, values.clone())?;
                self.follow(state, fid, node, "next", t0)
            }
            Op::Branching { mapping } => {
                let key = node.inputs.first().and_then(|i| vars.get(&i.internal));
                let key = match key {
                    Some(Json::String(s)) => Some(s.clone()),
                    Some(Json::Null) | None => None,
                    Some(other) => Some(weft_prompt::py_json_dumps(other)),
                };
                let branch =
                    key.and_then(|k| mapping.get(&k).and_then(Json::as_str).map(str::to_owned)).unwrap_or_else(|| "default".to_owned());
                self.follow(state, fid, node, &branch, t0)
            }
            Op::OutputMessage { message, message_type, output } => {
                let text = message
                    .render(&vars)
                    .map_err(|e| node_error(RunErrorKind::Template, node, &format!("cannot render its message: {e}")))?;
                self.post(state, node, message_type, &text);
                if let Some(output) = output {
                    self.produce(state, fid, node, single(output, Json::String(text)))?;
                }
                self.follow(state, fid, node, "next", t0)
            }
            Op::InputMessage { message, .. } => {
                let shown = match message {
                    Some(t) => {
                        let text = t
                            .render(&vars)
                            .map_err(|e| node_error(RunErrorKind::Template, node, &format!("cannot render its message: {e}")))?;
                        self.post(state, node, "AGENT", &text);
                        Some(text)
                    }
                    None => None,
                };
                self.wait(state, fid, node, InputRequest::Message { node: node.name.clone(), message: shown })?;
                Ok(())
            }
            Op::Tool(op) => {
                let args: Map<String, Json> = vars;
                match &op.tool {
                    Some(_) => {
                        self.started.insert(fid, t0);
                        self.set_position(
                            state,
                            fid,
                            Position::Busy { node: node.id.clone(), call: Box::new(Call::Tool { tool: op.tool_name.clone(), args }) },
                        );
                    }
                    None => {
                        let visits = get_frame(state, fid)?.visits.get(&node.id).copied().unwrap_or(1);
                        let request = InputRequest::Tool {
                            node: node.name.clone(),
                            tool: op.tool_name.clone(),
                            tool_request_id: format!("{}-{visits}", node.id),
                            args,
                            outputs: op.outputs.iter().map(|o| external(node, o)).collect(),
                        };
                        self.wait(state, fid, node, request)?;
                    }
                }
                Ok(())
            }
            Op::Llm(op) => {
                let meta = self.meta(state, fid, node)?;
                let request = llm::request(op, &vars, meta).map_err(|e| node_error(RunErrorKind::Template, node, &e))?;
                self.started.insert(fid, t0);
                self.set_position(state, fid, Position::Busy { node: node.id.clone(), call: Box::new(Call::Llm { request, attempt: 1 }) });
                Ok(())
            }
            Op::Flow { flow } => {
                let mut inputs = Map::new();
                for input in &node.inputs {
                    if let Some(v) = vars.get(&input.internal) {
                        inputs.insert(input.title.clone(), v.clone());
                    }
                }
                let parent = get_frame(state, fid)?;
                let (path, budget_key) = (format!("{}/{}", parent.path, node.name), parent.budget_key.clone());
                let child = self.new_frame(state, fid, node, *flow, inputs, path, budget_key)?;
                self.started.insert(fid, t0);
                self.set_position(state, fid, Position::InChild { node: node.id.clone(), child });
                Ok(())
            }
            Op::Parallel { flows, .. } => {
                self.started.insert(fid, t0);
                let fan = Position::InBranches {
                    node: node.id.clone(),
                    vars,
                    iterated: Vec::new(),
                    total: flows.len(),
                    next: 0,
                    running: BTreeMap::new(),
                    done: BTreeMap::new(),
                };
                self.set_position(state, fid, fan);
                self.start_branches(state, fid, node)
            }
            Op::Map(op) => {
                let (vars, iterated, total) = self.map_items(state, fid, node, op, vars)?;
                self.started.insert(fid, t0);
                let fan = Position::InBranches {
                    node: node.id.clone(),
                    vars,
                    iterated,
                    total,
                    next: 0,
                    running: BTreeMap::new(),
                    done: BTreeMap::new(),
                };
                self.set_position(state, fid, fan);
                self.start_branches(state, fid, node)
            }
        }
    }

    /// Creates a child frame running flow `flow` for `node` of frame `parent`.
    #[allow(clippy::too_many_arguments, reason = "one call site per kind of child; a struct would only rename them")]
    fn new_frame(
        &mut self,
        state: &mut RunState,
        parent: u64,
        node: &NodePlan,
        flow: usize,
        inputs: Map<String, Json>,
        path: String,
        budget_key: String,
    ) -> Res<u64> {
        let sub = &self.plan.flows[flow];
        let child = state.next_frame;
        // A checked state's `next_frame` is above every frame id; never overwrite a frame.
        if state.frames.contains_key(&child) || child == u64::MAX {
            return Err(other(format!("frame id {child} is taken or out of range (this is a bug in weft)")));
        }
        state.next_frame = child + 1;
        let frame = Frame {
            flow: sub.id.clone(),
            path,
            budget_key,
            parent: Some((parent, node.id.clone())),
            inputs,
            values: BTreeMap::new(),
            visits: IndexMap::new(),
            position: Position::Ready { node: self.plan.nodes[sub.start].id.clone() },
        };
        state.frames.insert(child, frame);
        self.work.ready.push_back(child);
        Ok(child)
    }

    /// Decides what a map node iterates over: the node's input values (an object iterated by
    /// an Extended form replaced by its `{"_key", "_value"}` pairs), the iterated inputs and
    /// the number of items. Lists of different lengths are an error naming both inputs.
    fn map_items(
        &self,
        state: &RunState,
        fid: u64,
        node: &NodePlan,
        op: &MapOp,
        mut vars: Map<String, Json>,
    ) -> Res<(Map<String, Json>, Vec<String>, usize)> {
        let frame = get_frame(state, fid)?;
        let mut iterated: Vec<(String, usize)> = Vec::new();
        match &op.items {
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
                                    excerpt(&other.to_string(), &self.plan.options.secrets)
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
                                excerpt(&other.to_string(), &self.plan.options.secrets)
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

    /// The kind of error of a stopped jq query: cancelled when the plan's cancel flag stopped it.
    fn stopped_kind(&self, failure: &weft_prompt::JqFailure) -> RunErrorKind {
        let cancelled = self.plan.options.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        if cancelled && matches!(failure, weft_prompt::JqFailure::Interrupted { .. }) {
            RunErrorKind::Cancelled
        } else {
            RunErrorKind::Query
        }
    }

    /// The subflow inputs of item `i` of a map node.
    fn item_inputs(&self, node: &NodePlan, op: &MapOp, vars: &Map<String, Json>, iterated: &[String], i: usize) -> Res<Map<String, Json>> {
        let mut inputs = Map::new();
        match &op.items {
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
                    let v = query.eval_first(&item).map_err(|e| node_error(self.stopped_kind(&e), node, &format!("item {i}: {e}")))?;
                    let v = v.ok_or_else(|| {
                        node_error(
                            RunErrorKind::MissingInput,
                            node,
                            &format!(
                                "item {i}: the unpack_input query `{}` for \"{input}\" gives no value for the item {}",
                                query.source(),
                                excerpt(&item.to_string(), &self.plan.options.secrets)
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
        let declared = &self.plan.flows[op.flow].inputs;
        Ok(declared
            .iter()
            .filter_map(|p| inputs.remove(p.title()).map(|v| (p.title().to_owned(), weft_prompt::cast_to_input(v, &p.schema))))
            .collect())
    }

    /// Starts branches or items in index order while fewer than `max_workers` run; when all
    /// have finished, merges (parallel flows, in declaration order) or collects (maps, in input
    /// order) their outputs and moves on.
    fn start_branches(&mut self, state: &mut RunState, fid: u64, node: &NodePlan) -> Res<()> {
        let max_workers = match &node.op {
            Op::Parallel { max_workers, .. } => *max_workers,
            Op::Map(op) => op.max_workers,
            _ => return Err(other("not a parallel or map node")),
        };
        loop {
            let Some(Frame { position: Position::InBranches { vars, iterated, total, next, running, .. }, .. }) = state.frames.get(&fid)
            else {
                return Err(other("a parallel node lost its branches"));
            };
            if running.len() >= max_workers || *next >= *total {
                break;
            }
            let index = *next;
            let (flow, inputs) = match &node.op {
                Op::Parallel { flows, .. } => {
                    let flow = *flows.get(index).ok_or_else(|| {
                        other(format!("branch {index} of a parallel node with {} branches (this is a bug in weft)", flows.len()))
                    })?;
                    let mut inputs = Map::new();
                    for p in &self.plan.flows[flow].inputs {
                        if let Some(input) = node.inputs.iter().find(|i| i.title == p.title())
                            && let Some(v) = vars.get(&input.internal)
                        {
                            inputs.insert(p.title().to_owned(), v.clone());
                        }
                    }
                    (flow, inputs)
                }
                Op::Map(op) => (op.flow, self.item_inputs(node, op, vars, iterated, index)?),
                _ => return Err(other("not a parallel or map node")),
            };
            let path = format!("{}/{}[{index}]", get_frame(state, fid)?.path, node.name);
            let child = self.new_frame(state, fid, node, flow, inputs, path.clone(), path)?;
            if let Some(Frame { position: Position::InBranches { running, next, .. }, .. }) = state.frames.get_mut(&fid) {
                running.insert(child, index);
                *next = index + 1;
            }
        }
        let Some(Frame { position: Position::InBranches { next, total, running, .. }, .. }) = state.frames.get(&fid) else {
            return Err(other("a parallel node lost its branches"));
        };
        if *next < *total || !running.is_empty() {
            return Ok(());
        }
        let Some(Frame { position: Position::InBranches { done, .. }, .. }) = state.frames.get_mut(&fid) else {
            return Err(other("a parallel node lost its branches"));
        };
        let done = std::mem::take(done);
        let outputs = match &node.op {
            Op::Map(op) => collect(node, op, done, &self.plan.options.secrets)?,
            _ => {
                let mut merged = Map::new();
                for outputs in done.into_values() {
                    merged.extend(outputs);
                }
                merged
            }
        };
        let t0 = self.started.remove(&fid).unwrap_or_else(Instant::now);
        self.produce(state, fid, node, outputs)?;
        self.follow(state, fid, node, "next", t0)
    }

    fn set_position(&mut self, state: &mut RunState, fid: u64, position: Position) {
        match position {
            Position::Ready { .. } => self.work.ready.push_back(fid),
            Position::Busy { .. } => self.work.busy.push(fid),
            _ => {}
        }
        if let Some(f) = state.frames.get_mut(&fid) {
            f.position = position;
        }
    }

    /// The request metadata of the next LLM call of `node`, counting the call.
    fn meta(&self, state: &mut RunState, fid: u64, node: &NodePlan) -> Res<RequestMeta> {
        let node_path = format!("{}/{}", get_frame(state, fid)?.path, node.name);
        let count = state.llm_calls.entry(node.name.clone()).or_insert(0);
        let call_index = *count;
        *count = count.saturating_add(1);
        Ok(RequestMeta { node: node.name.clone(), node_path, call_index })
    }

    fn spend_step(&self, state: &mut RunState, fid: u64, node: &NodePlan) -> Res<()> {
        let frame = state.frames.get(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state")))?;
        let steps = state.steps.entry(frame.budget_key.clone()).or_insert(0);
        *steps = steps.saturating_add(1);
        if *steps <= self.max_steps {
            return Ok(());
        }
        let max = frame.visits.values().copied().max().unwrap_or(0);
        let looping: Vec<String> = frame
            .visits
            .iter()
            .filter(|(_, n)| n.saturating_add(1) >= max && max > 1)
            .filter_map(|(id, _)| {
                self.plan.node_in(self.plan.flow_by_id(&frame.flow)?, id).map(|i| format!("\"{}\"", self.plan.nodes[i].name))
            })
            .collect();
        let looping = if looping.is_empty() { format!("\"{}\"", node.name) } else { looping.join(" -> ") };
        Err(RunError::new(
            RunErrorKind::StepBudget,
            Some(&node.name),
            format!(
                "step budget exhausted: {} steps in flow \"{}\" without finishing; the loop through {looping} kept going ({max} rounds). Check the loop's exit condition, or raise the budget (--max-steps) if the flow needs more steps",
                self.max_steps, frame.path
            ),
        ))
    }

    /// The node's input values by internal name: the latest value on a data edge, else the
    /// default, cast to the declared type.
    fn inputs(&self, state: &RunState, fid: u64, node: &NodePlan) -> Res<Map<String, Json>> {
        if matches!(node.op, Op::Start) {
            // A StartNode's inputs are the frame's inputs, not values on data edges.
            return Ok(Map::new());
        }
        let frame = get_frame(state, fid)?;
        let mut vars = Map::with_capacity(node.inputs.len());
        for input in &node.inputs {
            let value = latest(frame, input).or_else(|| input.schema.get("default").cloned());
            match value {
                Some(v) => {
                    vars.insert(input.internal.clone(), weft_prompt::cast_to_input(v, &input.schema));
                }
                None if matches!(node.op, Op::End { .. }) => {}
                None => {
                    return Err(node_error(
                        RunErrorKind::MissingInput,
                        node,
                        &format!(
                            "input \"{}\" has no value: no data edge into it has produced one yet, and it has no default. Connect an output to it with a DataFlowEdge, or give the input a default",
                            input.title
                        ),
                    ));
                }
            }
        }
        Ok(vars)
    }

    /// Records a node's outputs (internal titles), renamed through its `output_mapping`.
    fn produce(&self, state: &mut RunState, fid: u64, node: &NodePlan, outputs: Map<String, Json>) -> Res<()> {
        state.seq = state.seq.saturating_add(1);
        let seq = state.seq;
        let slot = get_frame_mut(state, fid)?.values.entry(node.id.clone()).or_default();
        for (title, value) in outputs {
            slot.insert(external(node, &title), Stamped { seq, value });
        }
        Ok(())
    }

    fn post(&self, state: &mut RunState, node: &NodePlan, message_type: &str, text: &str) {
        state.messages.push(ConversationMessage {
            message_type: message_type.to_owned(),
            content: text.to_owned(),
            node: node.name.clone(),
        });
        self.emit(|| Event::Message { node: node.name.clone(), message_type: message_type.to_owned(), content: text.to_owned() });
    }

    fn wait(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, request: InputRequest) -> Res<()> {
        let path = get_frame(state, fid)?.path.clone();
        self.emit(|| Event::InputRequested { path: path.clone(), request: request.clone() });
        state.pending.insert(path, request);
        self.set_position(state, fid, Position::Waiting { node: node.id.clone() });
        Ok(())
    }

    /// Leaves a node through `branch`.
    fn follow(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, branch: &str, t0: Instant) -> Res<()> {
        let path = &get_frame(state, fid)?.path;
        self.emit(|| Event::NodeFinished {
            path: path.clone(),
            node: node.name.clone(),
            branch: Some(branch.to_owned()),
            duration_ms: ms(t0),
        });
        match node.next.iter().find(|(b, _)| b == branch) {
            Some((_, next)) => {
                self.set_position(state, fid, Position::Ready { node: self.plan.nodes[*next].id.clone() });
                Ok(())
            }
            // WayFlow ends the flow when a branch has no edge: the flow's outputs are then the
            // latest values produced under their titles.
            None => {
                let frame = get_frame(state, fid)?;
                let flow = self.plan.flow_by_id(&frame.flow).ok_or_else(|| other("unknown flow"))?;
                let mut outputs = Map::new();
                for p in &self.plan.flows[flow].outputs {
                    let best = frame.values.values().filter_map(|outs| outs.get(p.title())).max_by_key(|s| s.seq);
                    if let Some(v) = best.map(|s| s.value.clone()).or_else(|| p.default().cloned()) {
                        outputs.insert(p.title().to_owned(), v);
                    }
                }
                self.finish_frame(state, fid, outputs, "next".to_owned())
            }
        }
    }

    /// A frame reached its end: the run finishes, or the parent's FlowNode continues.
    fn finish_frame(&mut self, state: &mut RunState, fid: u64, mut outputs: Map<String, Json>, branch: String) -> Res<()> {
        let frame = state.frames.get_mut(&fid).ok_or_else(|| other("frame vanished"))?;
        frame.position = Position::Done;
        let flow = self.plan.flow_by_id(&frame.flow).ok_or_else(|| other("unknown flow"))?;
        // The flow's outputs: what the EndNode received, defaults for the rest.
        let declared = &self.plan.flows[flow].outputs;
        let mut exposed = Map::new();
        for p in declared {
            if let Some(v) = outputs.remove(p.title()).or_else(|| p.default().cloned()) {
                exposed.insert(p.title().to_owned(), v);
            }
        }
        match frame.parent.clone() {
            None => {
                state.outcome = Outcome::Finished { outputs: exposed, end_branch: branch };
                Ok(())
            }
            Some((parent, node_id)) => {
                state.frames.remove(&fid);
                let idx = self.node_of(get_frame(state, parent)?, &node_id)?;
                let node = &self.plan.nodes[idx];
                if let Some(Frame { position: Position::InBranches { running, done, .. }, .. }) = state.frames.get_mut(&parent) {
                    let index = running.remove(&fid).ok_or_else(|| other("a branch finished that was not running"))?;
                    done.insert(index, exposed);
                    return self.start_branches(state, parent, node);
                }
                let t0 = self.started.remove(&parent).unwrap_or_else(Instant::now);
                self.produce(state, parent, node, exposed)?;
                self.follow(state, parent, node, &branch, t0)
            }
        }
    }

    /// Feeds the result of a call back. The frame's position says which call it was.
    pub(crate) fn complete(&mut self, state: &mut RunState, fid: u64, result: CallResult) -> Res<()> {
        self.complete_call(state, fid, result).map_err(|e| self.locate(state, fid, e))
    }

    fn complete_call(&mut self, state: &mut RunState, fid: u64, result: CallResult) -> Res<()> {
        let Some(Frame { position: Position::Busy { node, call }, .. }) = state.frames.get(&fid) else {
            return Err(other("a call completed for a frame that was not waiting for one"));
        };
        let (node_id, call) = (node.clone(), call.clone());
        let idx = self.node_of(get_frame(state, fid)?, &node_id)?;
        let node = &self.plan.nodes[idx];
        let t0 = self.started.get(&fid).copied().unwrap_or_else(Instant::now);
        match (&node.op, *call, result) {
            (Op::Tool(op), Call::Tool { .. }, CallResult::Tool(result)) => {
                state.usage.tool_calls = state.usage.tool_calls.saturating_add(1);
                let outputs = match result {
                    Ok(value) => tool_outputs(node, &op.outputs, value, &self.plan.options.secrets)?,
                    Err(e) if !op.raise_exceptions && op.outputs.len() == 1 => single(&op.outputs[0], Json::String(e.to_string())),
                    Err(e) => return Err(node_error(RunErrorKind::Tool, node, &format!("tool \"{}\" failed: {e}", op.tool_name))),
                };
                self.started.remove(&fid);
                self.produce(state, fid, node, outputs)?;
                self.follow(state, fid, node, "next", t0)
            }
            (Op::Llm(op), Call::Llm { request, attempt }, CallResult::Llm(result)) => {
                let response = result.map_err(|e| node_error(RunErrorKind::Llm, node, &format!("the LLM call failed: {e}")))?;
                state.usage.llm_calls = state.usage.llm_calls.saturating_add(1);
                state.usage.tokens.add(&response.usage);
                match llm::outputs(op, &response.text) {
                    Ok(outputs) => {
                        if op.send_message {
                            self.post(state, node, "AGENT", &response.text);
                        }
                        self.started.remove(&fid);
                        self.produce(state, fid, node, outputs)?;
                        self.follow(state, fid, node, "next", t0)
                    }
                    Err(llm::Unfit::Stopped(failure)) => {
                        Err(node_error(self.stopped_kind(&failure), node, &format!("cannot read the model's answer: {failure}")))
                    }
                    Err(llm::Unfit::Reask(reason)) if attempt <= self.max_reasks => {
                        self.emit(|| Event::LlmReask { node: node.name.clone(), reason: reason.clone() });
                        let meta = self.meta(state, fid, node)?;
                        let next = llm::reask(&request, &response.text, &reason, meta.call_index);
                        self.set_position(
                            state,
                            fid,
                            Position::Busy {
                                node: node_id,
                                call: Box::new(Call::Llm { request: next, attempt: attempt.saturating_add(1) }),
                            },
                        );
                        Ok(())
                    }
                    Err(llm::Unfit::Reask(reason)) => Err(node_error(
                        RunErrorKind::StructuredOutput,
                        node,
                        &format!(
                            "the model's answer does not fit the node's outputs after {attempt} attempt{}: {reason}. Last answer: {}",
                            if attempt == 1 { "" } else { "s" },
                            excerpt(&response.text, &self.plan.options.secrets)
                        ),
                    )),
                }
            }
            _ => Err(other("a call result does not match the node waiting for it")),
        }
    }

    /// Answers the pending request at `path` (the only one when `None`).
    pub(crate) fn submit(&mut self, state: &mut RunState, path: Option<&str>, answer: Json) -> Result<(), SubmitError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => state.pending.keys().next().cloned().ok_or(SubmitError::NotWaiting)?,
        };
        let request = state.pending.get(&path).cloned().ok_or(SubmitError::NotWaiting)?;
        let fid = state.frames.iter().find(|(_, f)| f.path == path && matches!(f.position, Position::Waiting { .. })).map(|(id, _)| *id);
        let fid = fid.ok_or(SubmitError::NotWaiting)?;
        let Some(frame @ Frame { position: Position::Waiting { node }, .. }) = state.frames.get(&fid) else {
            return Err(SubmitError::NotWaiting);
        };
        let idx = self.node_of(frame, node).map_err(|e| SubmitError::Invalid(e.message))?;
        let node = &self.plan.nodes[idx];
        let outputs = match (&node.op, &request) {
            (Op::InputMessage { output, .. }, InputRequest::Message { .. }) => {
                let text = match answer {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                self.post(state, node, "USER", &text);
                single(output, Json::String(text))
            }
            (Op::Tool(op), InputRequest::Tool { tool, .. }) => {
                let outputs =
                    tool_outputs(node, &op.outputs, answer, &self.plan.options.secrets).map_err(|e| SubmitError::Invalid(e.message))?;
                for (title, schema) in op.outputs.iter().zip(&op.output_schemas) {
                    if let Some(why) = outputs.get(title).and_then(|v| crate::run::type_problem(schema, v)) {
                        return Err(SubmitError::Invalid(format!(
                            "the answer for client tool \"{tool}\" does not fit its output \"{title}\" ({}): {why}",
                            weft_spec::model::type_name(schema)
                        )));
                    }
                }
                outputs
            }
            _ => return Err(SubmitError::Invalid("the pending request does not match its node".into())),
        };
        state.pending.remove(&path);
        let t0 = Instant::now();
        self.produce(state, fid, node, outputs).map_err(|e| SubmitError::Invalid(e.message))?;
        self.follow(state, fid, node, "next", t0).map_err(|e| SubmitError::Invalid(e.message))
    }
}

/// Which data edge into `input` (index into its sources) holds the latest value.
fn latest_source(frame: &Frame, input: &InputPlan) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (k, (src, out)) in input.sources.iter().enumerate() {
        if let Some(s) = frame.values.get(src).and_then(|outs| outs.get(out))
            && best.is_none_or(|(_, seq)| s.seq > seq)
        {
            best = Some((k, s.seq));
        }
    }
    best.map(|(k, _)| k)
}

/// A map node's outputs from its items' outputs (by item index, so in input order).
fn collect(node: &NodePlan, op: &MapOp, done: BTreeMap<usize, Map<String, Json>>, secrets: &Secrets) -> Res<Map<String, Json>> {
    let mut outputs = Map::new();
    for c in &op.collect {
        let values: Vec<(usize, &Json)> = done.iter().filter_map(|(i, outs)| outs.get(&c.from).map(|v| (*i, v))).collect();
        let value = match c.reducer {
            Reducer::Append => Json::Array(values.into_iter().map(|(_, v)| v.clone()).collect()),
            reducer => reduce(node, c, reducer, &values, secrets)?,
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
                    RunErrorKind::Other,
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
                RunErrorKind::Other,
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

fn latest(frame: &Frame, input: &InputPlan) -> Option<Json> {
    let mut best: Option<&Stamped> = None;
    for (src, out) in &input.sources {
        if let Some(s) = frame.values.get(src).and_then(|outs| outs.get(out))
            && best.is_none_or(|b| s.seq > b.seq)
        {
            best = Some(s);
        }
    }
    best.map(|s| s.value.clone())
}

/// A tool's result as outputs: the value for one output, members by title for several.
fn tool_outputs(node: &NodePlan, titles: &[String], value: Json, secrets: &Secrets) -> Res<Map<String, Json>> {
    match titles {
        [] => Ok(Map::new()),
        [one] => Ok(single(one, value)),
        many => {
            let Json::Object(mut obj) = value else {
                return Err(node_error(
                    RunErrorKind::Tool,
                    node,
                    &format!(
                        "the tool has {} outputs ({}), so its result must be a JSON object keyed by those titles, got {}",
                        many.len(),
                        many.join(", "),
                        excerpt(&value.to_string(), secrets)
                    ),
                ));
            };
            let mut out = Map::new();
            for t in many {
                let v = obj.remove(t).ok_or_else(|| {
                    node_error(
                        RunErrorKind::Tool,
                        node,
                        &format!("the tool's result has no member \"{t}\" (its outputs are {})", many.join(", ")),
                    )
                })?;
                out.insert(t.clone(), v);
            }
            Ok(out)
        }
    }
}

fn external(node: &NodePlan, internal: &str) -> String {
    node.output_mapping.iter().find(|(i, _)| i == internal).map(|(_, e)| e.clone()).unwrap_or_else(|| internal.to_owned())
}

fn single(title: &str, value: Json) -> Map<String, Json> {
    let mut m = Map::with_capacity(1);
    m.insert(title.to_owned(), value);
    m
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

/// The frame `fid`; a missing one is an error, never a panic (a checked state has every frame
/// the scheduler looks up, so this only fires on a bug).
fn get_frame(state: &RunState, fid: u64) -> Res<&Frame> {
    state.frames.get(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

fn get_frame_mut(state: &mut RunState, fid: u64) -> Res<&mut Frame> {
    state.frames.get_mut(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

fn other(message: impl Into<String>) -> RunError {
    RunError::new(RunErrorKind::Other, None, message)
}

pub(crate) fn node_error(kind: RunErrorKind, node: &NodePlan, message: &str) -> RunError {
    RunError::new(kind, Some(&node.name), format!("{} \"{}\": {message}", node.ty, node.name))
}

/// At most 500 characters of a text, for error messages: `secrets` are masked in the whole text
/// first, so the cut never leaves part of one that no longer matches.
pub(crate) fn excerpt(text: &str, secrets: &Secrets) -> String {
    const MAX: usize = 500;
    let text = secrets.redact_str(text);
    let text = text.as_ref();
    match weft_spec::text::excerpt(text, MAX) {
        (cut, true) => format!("{cut:?}... ({} characters in all)", text.chars().count()),
        (whole, false) => format!("{whole:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_masks_secrets_before_it_cuts() {
        let key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop";
        let secrets = Secrets::new([key]);
        // The key across the 500-character cut: a cut made first keeps its first 30 characters.
        let text = format!("{}{key}{}", "a".repeat(470), " tail".repeat(100));
        let shown = excerpt(&text, &secrets);
        let left: Vec<&[u8]> = key.as_bytes().windows(8).filter(|w| shown.as_bytes().windows(8).any(|s| s == *w)).collect();
        assert!(left.is_empty(), "{shown}");
        assert!(shown.contains("[REDACTED] tail tail"), "masked, then cut: {shown}");
        assert!(shown.ends_with("characters in all)"), "{shown}");
        // Nothing to mask: as before.
        assert_eq!(excerpt("short", &Secrets::default()), "\"short\"");
    }
}
