//! The scheduler: a state machine over the [`RunState`] that decides what happens next and
//! never does IO.
//!
//! Inputs go in through [`Machine`]: [`Input::Begin`] (an `execute()` begins: calls that were in
//! flight are made again), [`Input::Result`] (a call's result, by call id), [`Input::Tick`] (the
//! time passed: deadlines), and answers ([`Machine::submit`]); each carries the current time,
//! which the scheduler never reads itself. Commands come out ([`Command`]): perform this effect
//! under this call id, emit this event, and at the end exactly one of wait for this input,
//! finished, failed. The driver (`run.rs`) performs them; the scheduler does not know it exists.
//!
//! [`Sched::advance`] runs every node it can run by itself (start, end, templates, constants,
//! branching, messages, subflows) and leaves nodes that need the outside world `Busy` with a
//! call (an [`Effect`] goes out) or `Waiting` for an answer.
//!
//! This module is the machinery every node shares: frames, the work queue, clocks and
//! deadlines, the step budget, input values from data edges, outputs, control edges, events
//! and errors. What a node does is its family's, in [`crate::nodes`], reached through
//! [`nodes::step`], [`nodes::complete`], [`nodes::remake`], [`nodes::submit`] and
//! [`nodes::child_finished`].

use crate::effect::{Done, Effect, EffectResult};
use crate::error::{ErrorData, RunError, RunErrorKind, SubmitError};
use crate::event::Event;
use crate::nodes::{self, At, Reads};
use crate::plan::{InputPlan, NodePlan, Plan};
use crate::state::{Call, Clock, ConversationMessage, FastIndexMap, Frame, InputRequest, Outcome, Position, RunState, Stamped};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use weft_guard::Secrets;

/// What the driver feeds the scheduler.
pub(crate) enum Input {
    /// `execute()` begins: whatever was in flight before is gone, so busy nodes make their
    /// calls again (with fresh clocks).
    Begin {
        /// Whether the run was resumed from a stored state.
        resumed: bool,
    },
    /// The result of the call made under id `call`.
    Result { call: u64, done: Done },
    /// Time passed: nodes past their deadline fail.
    Tick,
}

/// What the scheduler asks the driver for.
pub(crate) enum Command {
    /// Perform `effect`; feed its result back as [`Input::Result`] with this call id.
    Perform { call: u64, effect: Effect },
    /// Emit an event of frame `frame` (its path is read when the event goes out: from the
    /// state, or from [`Work::gone`] for a frame that ended since).
    Emit { frame: u64, event: Event },
    /// Calls of frame `frame` and of the frames below it can be cancelled on their own (a
    /// catch node's subflow): give them a cancellation of their own, before any is performed.
    Separate { frame: u64 },
    /// Cancel every call of frame `frame` and of the frames below it (their frames are gone:
    /// a catch node caught an error raised there).
    Cancel { frame: u64 },
    /// Nothing is in flight and the run waits for an answer to `request`.
    Wait { request: InputRequest },
    /// The run finished: its outputs and end branch are the state's outcome, read when the
    /// command is performed (after the run's last event went out, so a large output is not
    /// held by the event, the state and the command at once).
    Finished,
    /// The run failed (its state records the error, unless it was cancelled).
    Failed { error: RunError },
}

/// The run's settings the scheduler reads.
pub(crate) struct RunConfig {
    pub(crate) max_steps: u64,
    pub(crate) max_reasks: u32,
    pub(crate) node_timeout_us: Option<u64>,
    /// Whether events are wanted (they are not even built otherwise).
    pub(crate) events: bool,
    /// The run's cancel flag (a jq query stopped by it fails as cancelled, not as a query).
    pub(crate) cancelled: Arc<AtomicBool>,
}

/// What the scheduler keeps besides the run state: derived from it, rebuilt on resume.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Frames whose cursor became `Ready`.
    pub(crate) ready: VecDeque<u64>,
    /// Frames whose call is out (issued, no result yet).
    pub(crate) in_flight: foldhash::HashSet<u64>,
    /// Deadlines of running nodes: (deadline in µs, frame).
    pub(crate) deadlines: BTreeSet<(u64, u64)>,
    /// When the current `execute()` began (µs), for the run's duration.
    pub(crate) begun_us: u64,
    /// The paths of frames that ended since the commands were last performed, for their
    /// events still going out (emptied by the driver after each round).
    pub(crate) gone: foldhash::HashMap<u64, String>,
}

impl Work {
    /// The path of frame `fid`, for an event: from the state, or of a frame that just ended.
    pub(crate) fn path_of<'s>(&'s self, state: &'s RunState, fid: u64) -> &'s str {
        state.frames.get(&fid).map(|f| f.path.as_str()).or_else(|| self.gone.get(&fid).map(String::as_str)).unwrap_or_default()
    }
}

/// The scheduler working on one run: its state, its work, and the commands going out.
pub(crate) struct Machine<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) cfg: &'a RunConfig,
    pub(crate) state: &'a mut RunState,
    pub(crate) work: &'a mut Work,
    pub(crate) out: &'a mut Vec<Command>,
}

impl Machine<'_> {
    /// Handles one input at time `now_us`; the commands go to `out`.
    pub(crate) fn handle(&mut self, now_us: u64, input: Input) {
        let mut s = Sched { plan: self.plan, cfg: self.cfg, now_us, took_ms: 0.0, work: &mut *self.work, out: &mut *self.out };
        let state = &mut *self.state;
        let result = match input {
            Input::Begin { resumed } => s.begin(state, resumed),
            Input::Result { call, done } => {
                // A result for a call no longer out (its node already failed or moved on) is
                // dropped.
                s.took_ms = done.took_ms;
                if s.work.in_flight.remove(&call) {
                    s.complete(state, call, done.result).or_else(|e| s.recover(state, call, e))
                } else {
                    Ok(())
                }
            }
            Input::Tick => s.tick(state),
        };
        let result = result.and_then(|()| s.advance(state));
        match result {
            Ok(()) => s.settle(state),
            Err(error) => s.fail(state, error),
        }
    }

    /// Answers the pending request at `path` (the only one when `None`), at time `now_us`.
    pub(crate) fn submit(&mut self, now_us: u64, path: Option<&str>, answer: Json) -> Result<(), SubmitError> {
        let mut s = Sched { plan: self.plan, cfg: self.cfg, now_us, took_ms: 0.0, work: &mut *self.work, out: &mut *self.out };
        s.submit(self.state, path, answer)
    }

    /// Creates the root frame of a new run.
    pub(crate) fn init(&mut self, now_us: u64) {
        let mut s = Sched { plan: self.plan, cfg: self.cfg, now_us, took_ms: 0.0, work: &mut *self.work, out: &mut *self.out };
        s.init(self.state);
    }
}

/// Frames with something to do, so that no step scans every frame (a fan-out has thousands).
impl Work {
    /// The work a stored state holds (nothing is in flight in a state).
    pub(crate) fn scan(state: &RunState) -> Work {
        let mut work = Work::default();
        for (id, frame) in &state.frames {
            if let Position::Ready { .. } = frame.position {
                work.ready.push_back(*id);
            }
            if let Some(Clock { deadline_us: Some(d), .. }) = frame.clock {
                work.deadlines.insert((d, *id));
            }
        }
        work
    }
}

/// The scheduler during one input: the plan, the run's settings, the time, and where work and
/// commands go.
pub(crate) struct Sched<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) cfg: &'a RunConfig,
    /// The time of the input being handled (µs since the Unix epoch).
    pub(crate) now_us: u64,
    /// For a call's result: how long the call took (ms), for its event.
    pub(crate) took_ms: f64,
    pub(crate) work: &'a mut Work,
    pub(crate) out: &'a mut Vec<Command>,
}

pub(crate) type Res<T> = Result<T, RunError>;

impl Sched<'_> {
    /// Emits an event of frame `fid` (built only when events are wanted).
    pub(crate) fn emit(&mut self, _state: &RunState, fid: u64, event: impl FnOnce() -> Event) {
        if self.cfg.events {
            self.out.push(Command::Emit { frame: fid, event: event() });
        }
    }

    /// Emits an event of the run (the root frame's path).
    fn emit_run(&mut self, event: impl FnOnce() -> Event) {
        if self.cfg.events {
            // Frame 0, the root, is never removed.
            self.out.push(Command::Emit { frame: 0, event: event() });
        }
    }

    /// An `execute()` begins: every busy node makes its call again, and every clock starts
    /// again (a call re-made after a resume gets a fresh deadline and its own duration).
    fn begin(&mut self, state: &mut RunState, resumed: bool) -> Res<()> {
        self.work.begun_us = self.now_us;
        self.work.in_flight.clear();
        self.work.gone.clear();
        let flow = self.plan.flows[0].name.clone();
        self.emit_run(|| Event::RunStarted { flow, resumed });
        self.work.deadlines.clear();
        let timed: Vec<u64> = state.frames.iter().filter(|(_, f)| f.clock.is_some()).map(|(id, _)| *id).collect();
        for fid in timed {
            self.start_clock(state, fid);
        }
        // Catch nodes' subflows get their own cancellation again, before their calls are re-made.
        let separate: Vec<u64> = state
            .frames
            .values()
            .filter_map(|f| match &f.position {
                Position::InChild { node, child } if self.node_of(f, node).is_ok_and(|i| self.plan.nodes[i].op.catches()) => Some(*child),
                _ => None,
            })
            .collect();
        for child in separate {
            self.separate(child);
        }
        let busy: Vec<u64> = state.frames.iter().filter(|(_, f)| matches!(f.position, Position::Busy { .. })).map(|(id, _)| *id).collect();
        for fid in busy {
            // A frame an earlier catch removed has nothing to make again.
            if state.frames.contains_key(&fid)
                && let Err(e) = self.remake(state, fid)
            {
                let e = self.locate(state, fid, e);
                self.recover(state, fid, e)?;
            }
        }
        Ok(())
    }

    /// Issues the call frame `fid` is busy with again.
    fn remake(&mut self, state: &mut RunState, fid: u64) -> Res<()> {
        let frame = get_frame(state, fid)?;
        let Position::Busy { node, call } = &frame.position else { return Ok(()) };
        let idx = self.node_of(frame, node)?;
        let call = (**call).clone();
        let node = &self.plan.nodes[idx];
        self.start_clock(state, fid);
        let vars = self.node_inputs(state, fid, node)?;
        let effect = nodes::remake(self, state, At { fid, node, t0: self.now_us }, &call, vars)?;
        self.work.in_flight.insert(fid);
        self.out.push(Command::Perform { call: fid, effect });
        Ok(())
    }

    /// Fails the node past its deadline, if any.
    fn tick(&mut self, state: &mut RunState) -> Res<()> {
        while let Some(&(deadline, fid)) = self.work.deadlines.first()
            && deadline <= self.now_us
        {
            let error = self.timed_out(state, fid);
            self.recover(state, fid, error)?;
        }
        Ok(())
    }

    /// The earliest deadline of a running node (µs), if any.
    pub(crate) fn next_deadline(work: &Work) -> Option<u64> {
        work.deadlines.first().map(|(d, _)| *d)
    }

    fn timed_out(&self, state: &RunState, fid: u64) -> RunError {
        let timeout = std::time::Duration::from_micros(self.cfg.node_timeout_us.unwrap_or_default());
        let node = state.frames.get(&fid).and_then(|f| match &f.position {
            Position::Busy { node, .. } | Position::InChild { node, .. } | Position::InBranches { node, .. } => {
                self.plan.flow_by_id(&f.flow).and_then(|flow| self.plan.node_in(flow, node)).map(|i| &self.plan.nodes[i])
            }
            _ => None,
        });
        let error = match node {
            Some(node) => node_error(
                RunErrorKind::Timeout,
                node,
                &format!(
                    "did not finish within the node timeout of {}; everything it had in flight was cancelled. Raise the timeout (--node-timeout) if the node needs longer",
                    humantime(timeout)
                ),
            ),
            None => {
                RunError::new(RunErrorKind::Timeout, format!("a node did not finish within the node timeout of {}", humantime(timeout)))
            }
        };
        self.locate(state, fid, error)
    }

    /// After an input: when nothing is left in flight, the run finished, waits, or is stuck.
    fn settle(&mut self, state: &mut RunState) {
        if !self.work.in_flight.is_empty() {
            return;
        }
        if let Outcome::Finished { outputs, end_branch } = &state.outcome {
            let duration_ms = self.now_us.saturating_sub(self.work.begun_us) as f64 / 1000.0;
            if self.cfg.events {
                let event = Event::RunFinished { outputs: outputs.clone(), end_branch: end_branch.clone(), duration_ms };
                self.emit_run(|| event);
            }
            self.out.push(Command::Finished);
            return;
        }
        if let Some(request) = state.pending.values().next() {
            self.out.push(Command::Wait { request: request.clone() });
            return;
        }
        let error =
            RunError::new(RunErrorKind::Other, "the run stopped with nothing left to do and no end reached (this is a bug in weft)");
        self.fail(state, error);
    }

    /// The run failed: the state records the error (a cancelled run did not fail: it stays
    /// resumable), the event goes out, and nothing issued before counts any more.
    fn fail(&mut self, state: &mut RunState, error: RunError) {
        self.work.in_flight.clear();
        if error.kind != RunErrorKind::Cancelled {
            let data = ErrorData::from(&error);
            state.outcome = Outcome::Failed { error: data.clone() };
            self.emit_run(|| Event::RunFailed { error: Box::new(data) });
        }
        self.out.push(Command::Failed { error });
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
            Box::new(Frame {
                flow: flow.id.clone(),
                path: flow.name.clone(),
                budget_key: flow.name.clone(),
                parent: None,
                inputs: state.inputs.clone(),
                values: BTreeMap::new(),
                visits: FastIndexMap::default(),
                position: Position::Ready { node: start.id.clone() },
                clock: None,
                conversation: None,
            }),
        );
        state.next_frame = 1;
        self.work.ready.push_back(0);
    }

    /// Runs every node that can run without IO, until each frame is busy, waiting or done.
    pub(crate) fn advance(&mut self, state: &mut RunState) -> Res<()> {
        while let Some(fid) = self.work.ready.pop_front() {
            while let Some(frame @ Frame { position: Position::Ready { node }, .. }) = state.frame(fid) {
                let idx = self.node_of(frame, node)?;
                if let Err(e) = self.run_node(state, fid, idx) {
                    let e = self.locate(state, fid, e);
                    self.recover(state, fid, e)?;
                }
            }
        }
        Ok(())
    }

    /// An error was raised in frame `fid`: the nearest catch node above it that catches it
    /// takes it (its subflow's frames are removed, their calls cancelled and their requests
    /// withdrawn, and the node leaves through its branch); else the error goes on and fails the
    /// run.
    pub(crate) fn recover(&mut self, state: &mut RunState, fid: u64, error: RunError) -> Res<()> {
        if !error.catchable() {
            return Err(error);
        }
        let mut child = fid;
        let mut hops = 0;
        while let Some((parent, node_id)) = state.frames.get(&child).and_then(|f| f.parent.clone())
            && hops <= state.frames.len()
        {
            hops += 1;
            let frame = get_frame(state, parent)?;
            let idx = self.node_of(frame, &node_id)?;
            let node = &self.plan.nodes[idx];
            let in_child = matches!(frame.position, Position::InChild { child: c, .. } if c == child);
            // An agent that called a flow or an agent as a tool takes its failure as the call's
            // result (unless it raises exceptions), as WayFlow's does.
            if in_child && nodes::takes_child_failures(&node.op) {
                let t0 = frame.clock.map_or(self.now_us, |c| c.started_us);
                self.remove_frames(state, child);
                return match nodes::child_failed(self, state, At { fid: parent, node, t0 }, error) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let e = self.locate(state, parent, e);
                        self.recover(state, parent, e)
                    }
                };
            }
            if let nodes::Op::Flow(op) = &node.op
                && in_child
                && let Some(branch) = op.catch_branch(&error)
            {
                self.remove_frames(state, child);
                self.emit(state, parent, || Event::ErrorCaught {
                    node: node.name.clone(),
                    error: Box::new(ErrorData::from(&error)),
                    branch: branch.to_owned(),
                });
                return op.caught(self, state, At { fid: parent, node, t0: self.now_us }, &error, branch);
            }
            child = parent;
        }
        Err(error)
    }

    /// Removes frame `top` and every frame below it: their calls are cancelled (a result still
    /// coming is dropped), their deadlines, queued work and pending requests go.
    fn remove_frames(&mut self, state: &mut RunState, top: u64) {
        // A frame's id is above its parent's, so one pass in id order finds every descendant.
        let mut gone: HashSet<u64> = HashSet::from([top]);
        for (id, frame) in state.frames.range(top + 1..) {
            if frame.parent.as_ref().is_some_and(|(p, _)| gone.contains(p)) {
                gone.insert(*id);
            }
        }
        self.out.push(Command::Cancel { frame: top });
        let mut paths = HashSet::new();
        for id in &gone {
            let Some(frame) = state.frames.remove(id) else { continue };
            self.work.in_flight.remove(id);
            if let Some(Clock { deadline_us: Some(d), .. }) = frame.clock {
                self.work.deadlines.remove(&(d, *id));
            }
            state.variables.remove(id);
            if frame.budget_key == frame.path {
                state.steps.remove(&frame.budget_key);
            }
            paths.insert(frame.path.clone());
            if self.cfg.events {
                self.work.gone.insert(*id, frame.path);
            }
        }
        self.work.ready.retain(|id| !gone.contains(id));
        state.pending.retain(|path, _| !paths.contains(path));
        // What is kept by `<frame id>/...`: retry counts, agents' loops, the conversations of
        // agents they called and the summaries their transforms keep.
        let kept = |key: &String| key.split_once('/').and_then(|(f, _)| f.parse().ok()).is_none_or(|f: u64| !gone.contains(&f));
        state.retry_trials.retain(|key, _| kept(key));
        state.agent_loops.retain(|key, _| kept(key));
        state.conversations.retain(|key, _| kept(key));
        state.summaries.retain(|key, _| kept(key));
    }

    /// Gives frame `fid`'s calls (and those below it) a cancellation of their own.
    pub(crate) fn separate(&mut self, fid: u64) {
        self.out.push(Command::Separate { frame: fid });
    }

    /// Says which branch or item an error happened in, when it happened below a fan-out:
    /// `ParallelMapNode "workers" item 3: LlmNode "write": ...`.
    pub(crate) fn locate(&self, state: &RunState, fid: u64, mut error: RunError) -> RunError {
        if let Some(node) = &mut error.node
            && node.path.is_empty()
            && let Some(frame) = state.frames.get(&fid)
        {
            node.path = frame.path.clone();
        }
        let mut parts = Vec::new();
        let mut child = fid;
        // Bounded by the number of frames, so even a cycle of parents cannot loop forever.
        let mut hops = 0;
        while let Some((parent, node_id)) = state.frames.get(&child).and_then(|f| f.parent.clone())
            && hops <= state.frames.len()
        {
            hops += 1;
            if let Some(frame @ Frame { position: Position::InBranches { running, .. }, .. }) = state.frame(parent)
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
        match frame.visits.get_mut(&node.id) {
            Some(visits) => *visits = visits.saturating_add(1),
            None => {
                frame.visits.insert(node.id.clone(), 1);
            }
        }
        self.emit(state, fid, || Event::NodeStarted { node: node.name.clone(), node_type: node.ty.to_owned() });
        let vars = self.node_inputs(state, fid, node)?;
        nodes::step(self, state, At { fid, node, t0: self.now_us }, vars)
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
        if child == u64::MAX {
            // Only an edited state gets here (a run starts at 1): ids are used up, not a bug.
            return Err(other("the run has used every frame id (its state's next_frame was set near the largest id); start the run again"));
        }
        if state.frames.contains_key(&child) {
            return Err(other(format!("frame id {child} is taken (this is a bug in weft)")));
        }
        state.next_frame = child + 1;
        let frame = Frame {
            flow: sub.id.clone(),
            path,
            budget_key,
            parent: Some((parent, node.id.clone())),
            inputs,
            values: BTreeMap::new(),
            visits: FastIndexMap::default(),
            position: Position::Ready { node: self.plan.nodes[sub.start].id.clone() },
            clock: None,
            conversation: None,
        };
        state.frames.insert(child, Box::new(frame));
        self.work.ready.push_back(child);
        Ok(child)
    }

    /// The kind of error of a stopped jq query: cancelled when the run's cancel flag stopped it.
    pub(crate) fn stopped_kind(&self, failure: &weft_prompt::JqFailure) -> RunErrorKind {
        let cancelled = self.cfg.cancelled.load(Ordering::Relaxed);
        if cancelled && matches!(failure, weft_prompt::JqFailure::Interrupted { .. }) {
            RunErrorKind::Cancelled
        } else {
            RunErrorKind::Query
        }
    }

    /// Moves frame `fid` to `position`, queueing it when it became ready.
    pub(crate) fn set_position(&mut self, state: &mut RunState, fid: u64, position: Position) {
        if let Position::Ready { .. } = position {
            self.work.ready.push_back(fid);
        }
        if let Some(f) = state.frames.get_mut(&fid) {
            f.position = position;
        }
    }

    /// Leaves frame `fid` busy with `call`, and sends `effect` out under the frame's id.
    pub(crate) fn perform(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, call: Call, effect: Effect) {
        self.set_position(state, fid, Position::Busy { node: node.id.clone(), call: Box::new(call) });
        self.work.in_flight.insert(fid);
        self.out.push(Command::Perform { call: fid, effect });
    }

    /// Starts (or starts again) the clock of the node at frame `fid`'s cursor: now, and the
    /// node timeout from now.
    pub(crate) fn start_clock(&mut self, state: &mut RunState, fid: u64) {
        let deadline_us = self.cfg.node_timeout_us.map(|t| self.now_us.saturating_add(t));
        let Some(frame) = state.frames.get_mut(&fid) else { return };
        if let Some(Clock { deadline_us: Some(d), .. }) = frame.clock {
            self.work.deadlines.remove(&(d, fid));
        }
        frame.clock = Some(Clock { started_us: self.now_us, deadline_us });
        if let Some(d) = deadline_us {
            self.work.deadlines.insert((d, fid));
        }
    }

    /// Starts the clock of the node at frame `fid`'s cursor with no deadline (its duration
    /// only).
    pub(crate) fn start_timer(&mut self, state: &mut RunState, fid: u64) {
        if let Some(frame) = state.frames.get_mut(&fid) {
            frame.clock = Some(Clock { started_us: self.now_us, deadline_us: None });
        }
    }

    /// Stops the clock of frame `fid`'s node; when it started (now, if it had no clock).
    pub(crate) fn stop_clock(&mut self, state: &mut RunState, fid: u64) -> u64 {
        let Some(clock) = state.frames.get_mut(&fid).and_then(|f| f.clock.take()) else { return self.now_us };
        if let Some(d) = clock.deadline_us {
            self.work.deadlines.remove(&(d, fid));
        }
        clock.started_us
    }

    fn spend_step(&self, state: &mut RunState, fid: u64, node: &NodePlan) -> Res<()> {
        let frame = state.frames.get(&fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state")))?;
        // Looked up before inserting, so the key is copied once per execution path, not per step.
        let steps = match state.steps.get_mut(&frame.budget_key) {
            Some(steps) => steps,
            None => state.steps.entry(frame.budget_key.clone()).or_insert(0),
        };
        *steps = steps.saturating_add(1);
        if *steps <= self.cfg.max_steps {
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
            format!(
                "step budget exhausted: {} steps in flow \"{}\" without finishing; the loop through {looping} kept going ({max} rounds). Check the loop's exit condition, or raise the budget (--max-steps) if the flow needs more steps",
                self.cfg.max_steps, frame.path
            ),
        )
        .at(&node.id, &node.name))
    }

    /// The node's input values by internal name: the latest value on a data edge, else the
    /// default, cast to the declared type.
    pub(crate) fn node_inputs(&self, state: &RunState, fid: u64, node: &NodePlan) -> Res<Map<String, Json>> {
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
                    vars.insert(input.internal.clone(), input.cast(v));
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
        let values = &mut get_frame_mut(state, fid)?.values;
        let slot = match values.get_mut(&node.id) {
            Some(slot) => slot,
            // Sized for the outputs: a map left to grow makes room for three entries and a
            // table, held for the frame's life (half the size of one with a single output).
            None => values
                .entry(node.id.clone())
                .or_insert_with(|| Box::new(FastIndexMap::with_capacity_and_hasher(outputs.len(), Default::default()))),
        };
        for (title, value) in outputs {
            // The internal title is the external one unless the node maps it (kept, not copied).
            let title = match node.output_mapping.iter().find(|(i, _)| *i == title) {
                Some((_, e)) => e.clone(),
                None => title,
            };
            slot.insert(title, Stamped { seq, value });
        }
        Ok(())
    }

    /// Posts a message to the conversation.
    pub(crate) fn post(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, message_type: &str, text: &str) {
        state.conversation_mut(fid).push(ConversationMessage::text(message_type, text, node.name.clone()));
        self.emit(state, fid, || Event::Message {
            node: node.name.clone(),
            message_type: message_type.to_owned(),
            content: text.to_owned(),
        });
    }

    /// Leaves frame `fid` waiting for an answer to `request`.
    pub(crate) fn wait(&mut self, state: &mut RunState, fid: u64, node: &NodePlan, request: InputRequest) -> Res<()> {
        let path = get_frame(state, fid)?.path.clone();
        self.emit(state, fid, || Event::InputRequested { request: Box::new(request.clone()) });
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
    pub(crate) fn emit_finished(&mut self, state: &RunState, at: At<'_>, branch: Option<&str>) -> Res<()> {
        let duration_ms = self.now_us.saturating_sub(at.t0) as f64 / 1000.0;
        self.emit(state, at.fid, || Event::NodeFinished { node: at.node.name.clone(), branch: branch.map(str::to_owned), duration_ms });
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
        let frame = state.frame_mut(fid).ok_or_else(|| other("frame vanished"))?;
        frame.position = Position::Done;
        let flow = self.plan.flow_by_id(&frame.flow).ok_or_else(|| other("unknown flow"))?;
        // The flow's outputs: what the EndNode received, defaults for the rest. Sized exactly: a
        // fan-out keeps every item's outputs until the last item ends (a map grown from empty
        // holds room for several entries).
        let declared = &self.plan.flows[flow].outputs;
        let mut exposed = Map::with_capacity(declared.len());
        for p in declared {
            match outputs.remove_entry(p.title()) {
                Some((title, v)) => {
                    exposed.insert(title, v);
                }
                None => {
                    if let Some(v) = p.default() {
                        exposed.insert(p.title().to_owned(), v.clone());
                    }
                }
            }
        }
        if frame.parent.is_none() {
            state.outcome = Outcome::Finished { outputs: exposed, end_branch: branch };
            return Ok(());
        }
        let Some(Frame { parent: Some((parent, node_id)), path, budget_key, .. }) = state.frames.remove(&fid).map(|f| *f) else {
            return Err(other("frame vanished"));
        };
        // A branch or item counts its own steps: its count goes with it (a fan-out of 25,600
        // items would otherwise keep 25,600 counts, and every step would search them all).
        if budget_key == path {
            state.steps.remove(&budget_key);
        }
        if self.cfg.events {
            self.work.gone.insert(fid, path);
        }
        let idx = self.node_of(get_frame(state, parent)?, &node_id)?;
        let node = &self.plan.nodes[idx];
        nodes::child_finished(self, state, At { fid: parent, node, t0: self.now_us }, fid, exposed, branch)
    }

    /// Feeds the result of a call back. The frame's position says which call it was.
    fn complete(&mut self, state: &mut RunState, fid: u64, result: EffectResult) -> Res<()> {
        self.complete_call(state, fid, result).map_err(|e| self.locate(state, fid, e))
    }

    fn complete_call(&mut self, state: &mut RunState, fid: u64, result: EffectResult) -> Res<()> {
        let Some(frame @ Frame { position: Position::Busy { node, call }, .. }) = state.frame(fid) else {
            return Err(other("a call completed for a frame that was not waiting for one"));
        };
        let idx = self.node_of(frame, node)?;
        // The position keeps its call (a failed node's state makes it again on resume).
        let call = Call::clone(call);
        let t0 = frame.clock.map_or(self.now_us, |c| c.started_us);
        let node = &self.plan.nodes[idx];
        nodes::complete(self, state, At { fid, node, t0 }, call, result)
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
        let Some(frame @ Frame { position: Position::Waiting { node }, .. }) = state.frame(fid) else {
            return Err(SubmitError::NotWaiting);
        };
        let idx = self.node_of(frame, node).map_err(|e| SubmitError::Invalid(e.message))?;
        let node = &self.plan.nodes[idx];
        let node_id = node.id.clone();
        match nodes::submit(self, state, fid, node, &request, answer)? {
            nodes::Answer::Outputs(outputs) => {
                state.pending.remove(&path);
                let at = At { fid, node, t0: self.now_us };
                self.produce(state, fid, node, outputs).map_err(|e| SubmitError::Invalid(e.message))?;
                self.follow(state, at, "next").map_err(|e| SubmitError::Invalid(e.message))
            }
            nodes::Answer::Again => {
                state.pending.remove(&path);
                self.set_position(state, fid, Position::Ready { node: node_id });
                Ok(())
            }
        }
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

/// `1.5 s`, `250 ms`.
fn humantime(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

/// The frame `fid`; a missing one is an error, never a panic (a checked state has every frame
/// the scheduler looks up, so this only fires on a bug).
pub(crate) fn get_frame(state: &RunState, fid: u64) -> Res<&Frame> {
    state.frame(fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

fn get_frame_mut(state: &mut RunState, fid: u64) -> Res<&mut Frame> {
    state.frame_mut(fid).ok_or_else(|| other(format!("frame {fid} is missing from the run state (this is a bug in weft)")))
}

pub(crate) fn other(message: impl Into<String>) -> RunError {
    RunError::new(RunErrorKind::Other, message)
}

pub(crate) fn node_error(kind: RunErrorKind, node: &NodePlan, message: &str) -> RunError {
    RunError::new(kind, format!("{} \"{}\": {message}", node.ty, node.name)).at(&node.id, &node.name)
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
