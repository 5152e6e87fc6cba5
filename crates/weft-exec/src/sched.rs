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
use crate::plan::{InputPlan, NodePlan, Op, Plan};
use crate::state::{Call, ConversationMessage, Frame, InputRequest, Outcome, Position, RunState, Stamped};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use weft_llm::{ChatResponse, LlmError, RequestMeta};
use weft_tools::ToolError;

/// The result of a call the driver made.
pub(crate) enum CallResult {
    Llm(Result<ChatResponse, LlmError>),
    Tool(Result<Json, ToolError>),
}

/// Scheduler settings and the per-process bookkeeping that is not part of the state.
pub(crate) struct Sched<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) events: Option<&'a dyn EventSink>,
    pub(crate) max_steps: u64,
    pub(crate) max_reasks: u32,
    /// When each busy or waiting frame's node started, for durations.
    pub(crate) started: &'a mut HashMap<u64, Instant>,
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
    }

    /// Runs every node that can run without IO, until each frame is busy, waiting or done.
    pub(crate) fn advance(&mut self, state: &mut RunState) -> Res<()> {
        loop {
            let ready: Vec<u64> =
                state.frames.iter().filter(|(_, f)| matches!(f.position, Position::Ready { .. })).map(|(id, _)| *id).collect();
            if ready.is_empty() {
                return Ok(());
            }
            for fid in ready {
                while let Some(Frame { position: Position::Ready { node }, .. }) = state.frames.get(&fid) {
                    let node = node.clone();
                    let idx = self.node_of(&state.frames[&fid], &node)?;
                    self.run_node(state, fid, idx)?;
                }
            }
        }
    }

    fn run_node(&mut self, state: &mut RunState, fid: u64, idx: usize) -> Res<()> {
        let plan = self.plan;
        let node = &plan.nodes[idx];
        self.spend_step(state, fid, node)?;
        let frame = state.frames.get_mut(&fid).ok_or_else(|| other("frame vanished"))?;
        *frame.visits.entry(node.id.clone()).or_insert(0) += 1;
        let path = frame.path.clone();
        self.emit(|| Event::NodeStarted { path: path.clone(), node: node.name.clone(), node_type: node.ty.to_owned() });
        let t0 = Instant::now();
        let vars = self.inputs(state, fid, node)?;
        match &node.op {
            Op::Start => {
                let inputs = state.frames[&fid].inputs.clone();
                self.produce(state, fid, node, inputs);
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
                self.produce(state, fid, node, single(output, Json::String(text)));
                self.follow(state, fid, node, "next", t0)
            }
            Op::Constants { values } => {
                self.produce(state, fid, node, values.clone());
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
                    self.produce(state, fid, node, single(output, Json::String(text)));
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
                self.wait(state, fid, node, InputRequest::Message { node: node.name.clone(), message: shown });
                Ok(())
            }
            Op::Tool(op) => {
                let args: Map<String, Json> = vars;
                match &op.tool {
                    Some(_) => {
                        self.started.insert(fid, t0);
                        set_position(
                            state,
                            fid,
                            Position::Busy { node: node.id.clone(), call: Box::new(Call::Tool { tool: op.tool_name.clone(), args }) },
                        );
                    }
                    None => {
                        let visits = state.frames[&fid].visits.get(&node.id).copied().unwrap_or(1);
                        let request = InputRequest::Tool {
                            node: node.name.clone(),
                            tool: op.tool_name.clone(),
                            tool_request_id: format!("{}-{visits}", node.id),
                            args,
                            outputs: op.outputs.iter().map(|o| external(node, o)).collect(),
                        };
                        self.wait(state, fid, node, request);
                    }
                }
                Ok(())
            }
            Op::Llm(op) => {
                let meta = self.meta(state, fid, node);
                let request = llm::request(op, &vars, meta).map_err(|e| node_error(RunErrorKind::Template, node, &e))?;
                self.started.insert(fid, t0);
                set_position(state, fid, Position::Busy { node: node.id.clone(), call: Box::new(Call::Llm { request, attempt: 1 }) });
                Ok(())
            }
            Op::Flow { flow } => {
                let mut inputs = Map::new();
                for input in &node.inputs {
                    if let Some(v) = vars.get(&input.internal) {
                        inputs.insert(input.title.clone(), v.clone());
                    }
                }
                let parent = &state.frames[&fid];
                let (path, budget_key) = (format!("{}/{}", parent.path, node.name), parent.budget_key.clone());
                let child = self.new_frame(state, fid, node, *flow, inputs, path, budget_key);
                self.started.insert(fid, t0);
                set_position(state, fid, Position::InChild { node: node.id.clone(), child });
                Ok(())
            }
            Op::Parallel { flows, .. } => {
                self.started.insert(fid, t0);
                set_position(
                    state,
                    fid,
                    Position::InBranches {
                        node: node.id.clone(),
                        queued: (0..flows.len()).collect(),
                        running: BTreeMap::new(),
                        done: BTreeMap::new(),
                    },
                );
                self.start_branches(state, fid, node, &vars)
            }
        }
    }

    /// Creates a child frame running flow `flow` for `node` of frame `parent`.
    #[allow(clippy::too_many_arguments, reason = "one call site per kind of child; a struct would only rename them")]
    fn new_frame(
        &self,
        state: &mut RunState,
        parent: u64,
        node: &NodePlan,
        flow: usize,
        inputs: Map<String, Json>,
        path: String,
        budget_key: String,
    ) -> u64 {
        let sub = &self.plan.flows[flow];
        let child = state.next_frame;
        state.next_frame += 1;
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
        child
    }

    /// Starts queued branches of a ParallelFlowNode while fewer than `max_workers` run; when
    /// every branch has finished, merges their outputs in declaration order and moves on.
    fn start_branches(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, vars: &Map<String, Json>) -> Res<()> {
        let Op::Parallel { flows, max_workers } = &node.op else { return Err(other("not a parallel node")) };
        loop {
            let Some(Frame { position: Position::InBranches { queued, running, .. }, .. }) = state.frames.get_mut(&fid) else {
                return Err(other("a parallel node lost its branches"));
            };
            if running.len() >= *max_workers || queued.is_empty() {
                break;
            }
            let branch = queued.remove(0);
            let flow = flows[branch];
            let mut inputs = Map::new();
            for p in &self.plan.flows[flow].inputs {
                if let Some(input) = node.inputs.iter().find(|i| i.title == p.title())
                    && let Some(v) = vars.get(&input.internal)
                {
                    inputs.insert(p.title().to_owned(), v.clone());
                }
            }
            let path = format!("{}/{}[{branch}]", state.frames[&fid].path, node.name);
            let child = self.new_frame(state, fid, node, flow, inputs, path.clone(), path);
            if let Some(Frame { position: Position::InBranches { running, .. }, .. }) = state.frames.get_mut(&fid) {
                running.insert(child, branch);
            }
        }
        let Some(Frame { position: Position::InBranches { queued, running, done, .. }, .. }) = state.frames.get(&fid) else {
            return Err(other("a parallel node lost its branches"));
        };
        if !queued.is_empty() || !running.is_empty() {
            return Ok(());
        }
        let mut merged = Map::new();
        for outputs in done.values() {
            merged.extend(outputs.clone());
        }
        let t0 = self.started.remove(&fid).unwrap_or_else(Instant::now);
        self.produce(state, fid, node, merged);
        self.follow(state, fid, node, "next", t0)
    }

    /// The request metadata of the next LLM call of `node`, counting the call.
    fn meta(&self, state: &mut RunState, fid: u64, node: &NodePlan) -> RequestMeta {
        let count = state.llm_calls.entry(node.name.clone()).or_insert(0);
        let call_index = *count;
        *count += 1;
        RequestMeta { node: node.name.clone(), node_path: format!("{}/{}", state.frames[&fid].path, node.name), call_index }
    }

    fn spend_step(&self, state: &mut RunState, fid: u64, node: &NodePlan) -> Res<()> {
        let frame = &state.frames[&fid];
        let steps = state.steps.entry(frame.budget_key.clone()).or_insert(0);
        *steps += 1;
        if *steps <= self.max_steps {
            return Ok(());
        }
        let max = frame.visits.values().copied().max().unwrap_or(0);
        let looping: Vec<String> = frame
            .visits
            .iter()
            .filter(|(_, n)| **n + 1 >= max && max > 1)
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
        let frame = &state.frames[&fid];
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
    fn produce(&self, state: &mut RunState, fid: u64, node: &NodePlan, outputs: Map<String, Json>) {
        state.seq += 1;
        let seq = state.seq;
        let frame = state.frames.get_mut(&fid).expect("frame exists");
        let slot = frame.values.entry(node.id.clone()).or_default();
        for (title, value) in outputs {
            slot.insert(external(node, &title), Stamped { seq, value });
        }
    }

    fn post(&self, state: &mut RunState, node: &NodePlan, message_type: &str, text: &str) {
        state.messages.push(ConversationMessage {
            message_type: message_type.to_owned(),
            content: text.to_owned(),
            node: node.name.clone(),
        });
        self.emit(|| Event::Message { node: node.name.clone(), message_type: message_type.to_owned(), content: text.to_owned() });
    }

    fn wait(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, request: InputRequest) {
        let path = state.frames[&fid].path.clone();
        self.emit(|| Event::InputRequested { path: path.clone(), request: request.clone() });
        state.pending.insert(path, request);
        set_position(state, fid, Position::Waiting { node: node.id.clone() });
    }

    /// Leaves a node through `branch`.
    fn follow(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, branch: &str, t0: Instant) -> Res<()> {
        let path = &state.frames[&fid].path;
        self.emit(|| Event::NodeFinished {
            path: path.clone(),
            node: node.name.clone(),
            branch: Some(branch.to_owned()),
            duration_ms: ms(t0),
        });
        match node.next.iter().find(|(b, _)| b == branch) {
            Some((_, next)) => {
                set_position(state, fid, Position::Ready { node: self.plan.nodes[*next].id.clone() });
                Ok(())
            }
            // WayFlow ends the flow when a branch has no edge: the flow's outputs are then the
            // latest values produced under their titles.
            None => {
                let frame = &state.frames[&fid];
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
                let idx = self.node_of(&state.frames[&parent], &node_id)?;
                let node = &self.plan.nodes[idx];
                if let Some(Frame { position: Position::InBranches { running, done, .. }, .. }) = state.frames.get_mut(&parent) {
                    let index = running.remove(&fid).ok_or_else(|| other("a branch finished that was not running"))?;
                    done.insert(index, exposed);
                    let vars = self.inputs(state, parent, node)?;
                    return self.start_branches(state, parent, node, &vars);
                }
                let t0 = self.started.remove(&parent).unwrap_or_else(Instant::now);
                self.produce(state, parent, node, exposed);
                self.follow(state, parent, node, &branch, t0)
            }
        }
    }

    /// Feeds the result of a call back. The frame's position says which call it was.
    pub(crate) fn complete(&mut self, state: &mut RunState, fid: u64, result: CallResult) -> Res<()> {
        let Some(Frame { position: Position::Busy { node, call }, .. }) = state.frames.get(&fid) else {
            return Err(other("a call completed for a frame that was not waiting for one"));
        };
        let (node_id, call) = (node.clone(), call.clone());
        let idx = self.node_of(&state.frames[&fid], &node_id)?;
        let node = &self.plan.nodes[idx];
        let t0 = self.started.get(&fid).copied().unwrap_or_else(Instant::now);
        match (&node.op, *call, result) {
            (Op::Tool(op), Call::Tool { .. }, CallResult::Tool(result)) => {
                state.usage.tool_calls += 1;
                let outputs = match result {
                    Ok(value) => tool_outputs(node, &op.outputs, value)?,
                    Err(e) if !op.raise_exceptions && op.outputs.len() == 1 => single(&op.outputs[0], Json::String(e.to_string())),
                    Err(e) => return Err(node_error(RunErrorKind::Tool, node, &format!("tool \"{}\" failed: {e}", op.tool_name))),
                };
                self.started.remove(&fid);
                self.produce(state, fid, node, outputs);
                self.follow(state, fid, node, "next", t0)
            }
            (Op::Llm(op), Call::Llm { request, attempt }, CallResult::Llm(result)) => {
                let response = result.map_err(|e| node_error(RunErrorKind::Llm, node, &format!("the LLM call failed: {e}")))?;
                state.usage.llm_calls += 1;
                state.usage.tokens.add(&response.usage);
                match llm::outputs(op, &response.text) {
                    Ok(outputs) => {
                        if op.send_message {
                            self.post(state, node, "AGENT", &response.text);
                        }
                        self.started.remove(&fid);
                        self.produce(state, fid, node, outputs);
                        self.follow(state, fid, node, "next", t0)
                    }
                    Err(reason) if attempt <= self.max_reasks => {
                        self.emit(|| Event::LlmReask { node: node.name.clone(), reason: reason.clone() });
                        let meta = self.meta(state, fid, node);
                        let next = llm::reask(&request, &response.text, &reason, meta.call_index);
                        set_position(
                            state,
                            fid,
                            Position::Busy { node: node_id, call: Box::new(Call::Llm { request: next, attempt: attempt + 1 }) },
                        );
                        Ok(())
                    }
                    Err(reason) => Err(node_error(
                        RunErrorKind::StructuredOutput,
                        node,
                        &format!(
                            "the model's answer does not fit the node's outputs after {attempt} attempt{}: {reason}. Last answer: {}",
                            if attempt == 1 { "" } else { "s" },
                            excerpt(&response.text)
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
        let Position::Waiting { node } = &state.frames[&fid].position else { return Err(SubmitError::NotWaiting) };
        let idx = self.node_of(&state.frames[&fid], &node.clone()).map_err(|e| SubmitError::Invalid(e.message))?;
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
                let outputs = tool_outputs(node, &op.outputs, answer).map_err(|e| SubmitError::Invalid(e.message))?;
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
        self.produce(state, fid, node, outputs);
        self.follow(state, fid, node, "next", t0).map_err(|e| SubmitError::Invalid(e.message))
    }
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
fn tool_outputs(node: &NodePlan, titles: &[String], value: Json) -> Res<Map<String, Json>> {
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
                        excerpt(&value.to_string())
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

fn set_position(state: &mut RunState, fid: u64, position: Position) {
    if let Some(f) = state.frames.get_mut(&fid) {
        f.position = position;
    }
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

fn other(message: impl Into<String>) -> RunError {
    RunError::new(RunErrorKind::Other, None, message)
}

pub(crate) fn node_error(kind: RunErrorKind, node: &NodePlan, message: &str) -> RunError {
    RunError::new(kind, Some(&node.name), format!("{} \"{}\": {message}", node.ty, node.name))
}

/// At most 500 characters of a text, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 500;
    if text.chars().count() <= MAX {
        return format!("{text:?}");
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut:?}... ({} characters in all)", text.chars().count())
}
