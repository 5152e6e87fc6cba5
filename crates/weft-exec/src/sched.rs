//! The scheduler: decides what happens next without doing any IO.
//!
//! [`Sched::advance`] runs every node it can run by itself (start, end, templates, constants,
//! branching, messages, subflows) and leaves nodes that need the outside world in a state that
//! says so: `Busy` with the call to make (LLM, server tool) or `Waiting` for an answer. The
//! driver makes the calls and hands the results to [`Sched::complete`]; answers go through
//! [`Sched::submit`]. All of it only mutates the [`RunState`].
//!
//! This module is the machinery every node shares: frames, the work queues, the step budget,
//! input values from data edges, outputs, control edges, events and errors. What a node does is
//! its family's, in [`crate::nodes`], reached through [`nodes::step`], [`nodes::complete`],
//! [`nodes::submit`] and [`nodes::child_finished`].

use crate::error::{RunError, RunErrorKind, SubmitError};
use crate::event::{Event, EventSink};
use crate::nodes::{self, At, CallResult, Reads};
use crate::plan::{InputPlan, NodePlan, Plan};
use crate::state::{ConversationMessage, Frame, InputRequest, Outcome, Position, RunState, Stamped};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;
use weft_guard::Secrets;

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

pub(crate) type Res<T> = Result<T, RunError>;

impl Sched<'_> {
    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
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
                let what = nodes::fanout::child_label(self.plan, node, *index);
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
        self.emit(|| Event::NodeStarted { path, node: node.name.clone(), node_type: node.ty.to_owned() });
        let t0 = Instant::now();
        let vars = self.inputs(state, fid, node)?;
        nodes::step(self, state, At { fid, node, t0 }, vars)
    }

    /// Creates a child frame running flow `flow` for `node` of frame `parent`.
    #[allow(clippy::too_many_arguments, reason = "one call site per kind of child; a struct would only rename them")]
    pub(crate) fn new_frame(
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

    /// The kind of error of a stopped jq query: cancelled when the plan's cancel flag stopped it.
    pub(crate) fn stopped_kind(&self, failure: &weft_prompt::JqFailure) -> RunErrorKind {
        let cancelled = self.plan.options.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        if cancelled && matches!(failure, weft_prompt::JqFailure::Interrupted { .. }) {
            RunErrorKind::Cancelled
        } else {
            RunErrorKind::Query
        }
    }

    /// Moves frame `fid` to `position`, queueing it when it became ready or busy.
    pub(crate) fn set_position(&mut self, state: &mut RunState, fid: u64, position: Position) {
        match position {
            Position::Ready { .. } => self.work.ready.push_back(fid),
            Position::Busy { .. } => self.work.busy.push(fid),
            _ => {}
        }
        if let Some(f) = state.frames.get_mut(&fid) {
            f.position = position;
        }
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
        let all = match node.op.reads() {
            Reads::Nothing => return Ok(Map::new()),
            Reads::Available => false,
            Reads::All => true,
        };
        let frame = get_frame(state, fid)?;
        let mut vars = Map::with_capacity(node.inputs.len());
        for input in &node.inputs {
            let value = latest(frame, input).or_else(|| input.schema.get("default").cloned());
            match value {
                Some(v) => {
                    vars.insert(input.internal.clone(), weft_prompt::cast_to_input(v, &input.schema));
                }
                None if !all => {}
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
    pub(crate) fn produce(&self, state: &mut RunState, fid: u64, node: &NodePlan, outputs: Map<String, Json>) -> Res<()> {
        state.seq = state.seq.saturating_add(1);
        let seq = state.seq;
        let slot = get_frame_mut(state, fid)?.values.entry(node.id.clone()).or_default();
        for (title, value) in outputs {
            slot.insert(external(node, &title), Stamped { seq, value });
        }
        Ok(())
    }

    /// Posts a message to the conversation.
    pub(crate) fn post(&self, state: &mut RunState, node: &NodePlan, message_type: &str, text: &str) {
        state.messages.push(ConversationMessage {
            message_type: message_type.to_owned(),
            content: text.to_owned(),
            node: node.name.clone(),
        });
        self.emit(|| Event::Message { node: node.name.clone(), message_type: message_type.to_owned(), content: text.to_owned() });
    }

    /// Leaves frame `fid` waiting for an answer to `request`.
    pub(crate) fn wait(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, request: InputRequest) -> Res<()> {
        let path = get_frame(state, fid)?.path.clone();
        self.emit(|| Event::InputRequested { path: path.clone(), request: request.clone() });
        state.pending.insert(path, request);
        self.set_position(state, fid, Position::Waiting { node: node.id.clone() });
        Ok(())
    }

    /// Records a node's outputs and leaves it through `next`.
    pub(crate) fn done(&mut self, state: &mut RunState, at: At<'_>, outputs: Map<String, Json>) -> Res<()> {
        self.produce(state, at.fid, at.node, outputs)?;
        self.follow(state, at, "next")
    }

    /// Says that the node at `at` finished, through `branch` if it leaves through one.
    pub(crate) fn emit_finished(&self, state: &RunState, at: At<'_>, branch: Option<&str>) -> Res<()> {
        let path = &get_frame(state, at.fid)?.path;
        self.emit(|| Event::NodeFinished {
            path: path.clone(),
            node: at.node.name.clone(),
            branch: branch.map(str::to_owned),
            duration_ms: ms(at.t0),
        });
        Ok(())
    }

    /// Leaves a node through `branch`.
    pub(crate) fn follow(&mut self, state: &mut RunState, at: At<'_>, branch: &str) -> Res<()> {
        let (fid, node) = (at.fid, at.node);
        self.emit_finished(state, at, Some(branch))?;
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

    /// A frame reached its end: the run finishes, or the parent's node continues (a FlowNode,
    /// or a fan-out that has a branch or item less to wait for).
    pub(crate) fn finish_frame(&mut self, state: &mut RunState, fid: u64, mut outputs: Map<String, Json>, branch: String) -> Res<()> {
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
                nodes::child_finished(self, state, At { fid: parent, node, t0: Instant::now() }, fid, exposed, branch)
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
        nodes::complete(self, state, At { fid, node, t0 }, *call, result)
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
        let outputs = nodes::submit(self, state, node, &request, answer)?;
        state.pending.remove(&path);
        let at = At { fid, node, t0: Instant::now() };
        self.produce(state, fid, node, outputs).map_err(|e| SubmitError::Invalid(e.message))?;
        self.follow(state, at, "next").map_err(|e| SubmitError::Invalid(e.message))
    }
}

/// Which data edge into `input` (index into its sources) holds the latest value.
pub(crate) fn latest_source(frame: &Frame, input: &InputPlan) -> Option<usize> {
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

/// The external title of a node's output (after its `output_mapping`).
pub(crate) fn external(node: &NodePlan, internal: &str) -> String {
    node.output_mapping.iter().find(|(i, _)| i == internal).map(|(_, e)| e.clone()).unwrap_or_else(|| internal.to_owned())
}

/// A map of one output.
pub(crate) fn single(title: &str, value: Json) -> Map<String, Json> {
    let mut m = Map::with_capacity(1);
    m.insert(title.to_owned(), value);
    m
}

fn ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

/// The frame `fid`; a missing one is an error, never a panic (a checked state has every frame
/// the scheduler looks up, so this only fires on a bug).
pub(crate) fn get_frame(state: &RunState, fid: u64) -> Res<&Frame> {
    state.frames.get(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

fn get_frame_mut(state: &mut RunState, fid: u64) -> Res<&mut Frame> {
    state.frames.get_mut(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

pub(crate) fn other(message: impl Into<String>) -> RunError {
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
