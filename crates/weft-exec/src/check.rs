//! Checks a stored run state against the plan before a run continues from it.
//!
//! A state file is plain JSON that anyone can edit, and the scheduler trusts its state: a frame
//! whose parent is missing, a cycle of parents, a branch index past the node's branches or a
//! pending request for no frame would make it fail deep inside a step, after calls were made.
//! [`Plan::check_state`] proves, before anything runs, every invariant the scheduler relies on,
//! and names the first one broken with a JSON pointer into the state:
//!
//! - frames: frame 0 is the root flow with no parent, every other frame has a parent, parents
//!   exist and lead to frame 0 without a cycle, `next_frame` is above every frame id;
//! - positions: every node exists in the flow of its frame, and the position fits the node
//!   (busy with the call its operation makes, waiting only at an input node or client tool, a
//!   subflow or fan-out only at the node that runs it); a child frame runs the flow its parent's
//!   node runs, and the parent's position points back at the child; fan-out indices are in
//!   range, each started branch or item is running or done exactly once;
//! - datastores: every row of a stored collection has one value per column, and no column
//!   appears twice;
//! - pending requests: each belongs to exactly one waiting frame (by path), of the right kind,
//!   and every waiting frame has one;
//! - values: stored outputs belong to nodes of their frame's flow and are stamped no later than
//!   `seq`; the values that were checked against their declared types when they entered the
//!   run still fit them: the run's inputs (also the root frame's inputs and its StartNode's
//!   outputs) and client tools' answers. Other outputs are stored as produced (a server tool's
//!   result as the tool gave it) and cast to the reading input's type when read, so the check
//!   does not hold them to a type the engine itself does not.
//!
//! A finished or failed run is not checked beyond its format and hash: nothing reads its frames
//! again ([`crate::Run::execute`] returns its outcome, [`crate::Run::submit`] refuses answers).

use crate::error::ResumeError;
use crate::nodes;
use crate::plan::{NodePlan, Plan};
use crate::state::{Call, Frame, InputRequest, Outcome, Position, RunState};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) type Checked = Result<(), ResumeError>;

/// A problem at `pointer` (a JSON pointer into the run state).
pub(crate) fn damaged(pointer: impl Into<String>, problem: impl Into<String>) -> ResumeError {
    ResumeError::Damaged { pointer: pointer.into(), problem: problem.into() }
}

/// One JSON pointer token (RFC 6901: `~` as `~0`, `/` as `~1`).
fn token(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

fn frame_ptr(id: u64) -> String {
    format!("/frames/{id}")
}

/// The node a position stands at, if any.
fn position_node(position: &Position) -> Option<&str> {
    match position {
        Position::Ready { node }
        | Position::Busy { node, .. }
        | Position::Waiting { node }
        | Position::InChild { node, .. }
        | Position::InBranches { node, .. } => Some(node),
        Position::Done => None,
    }
}

impl Plan {
    /// Checks that `state` is one this plan's engine could have written, so a run resumed from
    /// it cannot fail on a broken invariant (see the module documentation for the list).
    /// [`Plan::resume`] calls it; call it directly to check a state without resuming it.
    pub fn check_state(&self, state: &RunState) -> Checked {
        if !matches!(state.outcome, Outcome::Running) {
            return Ok(());
        }
        let root = self.frames_and_parents(state)?;
        for (id, frame) in &state.frames {
            self.check_frame(state, *id, frame)?;
        }
        self.check_pending(state)?;
        for (ds, collections) in &state.datastores {
            for (name, table) in collections {
                if let Some(problem) = table.problem() {
                    return Err(damaged(format!("/datastores/{}/{}", token(ds), token(name)), problem));
                }
            }
        }
        self.check_inputs_of(&state.inputs, "/inputs")?;
        self.check_inputs_of(&root.inputs, "/frames/0/inputs")
    }

    /// Frame 0 is the root; every other frame's parents lead to it without a cycle.
    fn frames_and_parents<'s>(&self, state: &'s RunState) -> Result<&'s Frame, ResumeError> {
        let root_flow = &self.flows[0];
        let Some(root) = state.frames.get(&0) else {
            return Err(damaged(
                "/frames",
                format!("a running state needs frame 0 (the root flow \"{}\"), and it is missing", root_flow.name),
            ));
        };
        if root.flow != root_flow.id {
            return Err(damaged(
                "/frames/0/flow",
                format!("frame 0 must run the root flow \"{}\", it runs \"{}\"", root_flow.id, root.flow),
            ));
        }
        if root.parent.is_some() {
            return Err(damaged("/frames/0/parent", "frame 0 is the root and has no parent, but one is given"));
        }
        if let Some((&max, _)) = state.frames.last_key_value()
            && state.next_frame <= max
        {
            return Err(damaged(
                "/next_frame",
                format!("next_frame is {}, but frame {max} exists: the next frame id must be above every frame id", state.next_frame),
            ));
        }
        if state.next_frame == u64::MAX {
            return Err(damaged("/next_frame", "next_frame is at the largest id; no frame could be added"));
        }
        // Walk up from every frame; frames known to reach the root are remembered, so the
        // whole walk is linear in the number of frames.
        let mut reaches_root: HashSet<u64> = HashSet::from([0]);
        for &start in state.frames.keys() {
            let mut walk: Vec<u64> = Vec::new();
            let mut on_walk: HashSet<u64> = HashSet::new();
            let mut at = start;
            while !reaches_root.contains(&at) {
                if !on_walk.insert(at) {
                    return Err(damaged(
                        format!("{}/parent", frame_ptr(start)),
                        format!("the parents of frame {start} form a cycle through frame {at}; they must lead to frame 0"),
                    ));
                }
                walk.push(at);
                let Some(frame) = state.frames.get(&at) else {
                    return Err(damaged(frame_ptr(at), format!("frame {at} is named as a parent, but the state has no such frame")));
                };
                let Some((parent, _)) = &frame.parent else {
                    return Err(damaged(
                        format!("{}/parent", frame_ptr(at)),
                        format!("frame {at} has no parent; only frame 0 (the root) may have none"),
                    ));
                };
                if !state.frames.contains_key(parent) {
                    return Err(damaged(
                        format!("{}/parent", frame_ptr(at)),
                        format!("the parent of frame {at} is frame {parent}, which the state does not have"),
                    ));
                }
                at = *parent;
            }
            reaches_root.extend(walk);
        }
        Ok(root)
    }

    /// One frame: its flow, its values, its position, and its place in its parent.
    fn check_frame(&self, state: &RunState, id: u64, frame: &Frame) -> Checked {
        let at = frame_ptr(id);
        let Some(flow) = self.flow_by_id(&frame.flow) else {
            return Err(damaged(
                format!("{at}/flow"),
                format!("frame {id} runs flow \"{}\", which the flow file does not have", frame.flow),
            ));
        };
        let flow_name = &self.flows[flow].name;
        for (node, outputs) in &frame.values {
            let Some(idx) = self.node_in(flow, node) else {
                return Err(damaged(
                    format!("{at}/values/{}", token(node)),
                    format!("frame {id} holds values of node \"{node}\", which flow \"{flow_name}\" does not have"),
                ));
            };
            let plan = &self.nodes[idx];
            // Values that were checked against their declared types when they entered the run
            // must still fit them: the root's inputs (its StartNode's outputs) and client
            // tools' answers. Other outputs are stored as produced (a server tool's result as
            // the tool gave it, a map item's missing input as null) and cast when read.
            let typed = plan.op.typed_outputs(id);
            for (title, stamped) in outputs.iter() {
                let here = format!("{at}/values/{}/{}", token(node), token(title));
                if stamped.seq > state.seq {
                    return Err(damaged(
                        format!("{here}/seq"),
                        format!("value stamped {} is later than the state's seq {}", stamped.seq, state.seq),
                    ));
                }
                if let Some(p) = plan.outputs.iter().find(|p| p.title() == title).filter(|_| typed)
                    && let Some(why) = crate::run::type_problem(&p.schema, &stamped.value)
                {
                    return Err(damaged(
                        format!("{here}/value"),
                        format!("output \"{title}\" of node \"{}\" must be {}: {why}", plan.name, p.type_name()),
                    ));
                }
            }
        }
        for node in frame.visits.keys() {
            if self.node_in(flow, node).is_none() {
                return Err(damaged(
                    format!("{at}/visits/{}", token(node)),
                    format!("frame {id} counts visits of node \"{node}\", which flow \"{flow_name}\" does not have"),
                ));
            }
        }
        if let Some((parent, node)) = &frame.parent {
            self.check_place_in_parent(state, id, *parent, node)?;
        }
        let Some(node_id) = position_node(&frame.position) else {
            return Err(damaged(
                format!("{at}/position"),
                format!("frame {id} is done, but the run is still running: a finished frame is removed (or, for frame 0, ends the run)"),
            ));
        };
        let Some(idx) = self.node_in(flow, node_id) else {
            return Err(damaged(
                format!("{at}/position/node"),
                format!("frame {id} stands at node \"{node_id}\", which flow \"{flow_name}\" does not have"),
            ));
        };
        let place = Place { plan: self, state, id, at, node_id, node: &self.nodes[idx] };
        nodes::check_position(&place, &frame.position)
    }

    /// A child frame named by a parent's position exists, points back, and runs `flow`.
    fn check_child(&self, state: &RunState, parent: u64, node_id: &str, child: u64, flow: usize, pointer: String) -> Checked {
        let Some(frame) = state.frames.get(&child) else {
            return Err(damaged(pointer, format!("frame {parent} waits for frame {child}, which the state does not have")));
        };
        if frame.parent.as_ref() != Some(&(parent, node_id.to_owned())) {
            return Err(damaged(
                format!("{}/parent", frame_ptr(child)),
                format!(
                    "frame {parent} waits for frame {child} at node \"{node_id}\", but frame {child}'s parent is not that node of frame {parent}"
                ),
            ));
        }
        let expected = &self.flows[flow];
        if frame.flow != expected.id {
            return Err(damaged(
                format!("{}/flow", frame_ptr(child)),
                format!("frame {child} runs flow \"{}\", but node \"{node_id}\" runs flow \"{}\"", frame.flow, expected.id),
            ));
        }
        Ok(())
    }

    /// A non-root frame's parent stands at the named node and waits for this frame.
    fn check_place_in_parent(&self, state: &RunState, id: u64, parent: u64, node: &str) -> Checked {
        let Some(p) = state.frames.get(&parent) else {
            return Err(damaged(format!("{}/parent", frame_ptr(id)), format!("frame {parent} does not exist")));
        };
        let waits = match &p.position {
            Position::InChild { node: n, child } => n == node && *child == id,
            Position::InBranches { node: n, running, .. } => n == node && running.contains_key(&id),
            _ => false,
        };
        if !waits {
            return Err(damaged(
                format!("{}/parent", frame_ptr(id)),
                format!(
                    "frame {id} names node \"{node}\" of frame {parent} as its parent, but frame {parent} does not wait for it there (its position is {})",
                    describe(&p.position)
                ),
            ));
        }
        Ok(())
    }

    /// Every pending request belongs to one waiting frame of the right kind, and every
    /// waiting frame has one.
    fn check_pending(&self, state: &RunState) -> Checked {
        let mut waiting: HashMap<&str, (u64, &Frame)> = HashMap::new();
        for (id, frame) in &state.frames {
            if let Position::Waiting { .. } = frame.position {
                if let Some((other, _)) = waiting.insert(frame.path.as_str(), (*id, frame)) {
                    return Err(damaged(
                        format!("{}/path", frame_ptr(*id)),
                        format!("frames {other} and {id} both wait at path \"{}\"; answers are matched by path", frame.path),
                    ));
                }
                if !state.pending.contains_key(&frame.path) {
                    return Err(damaged(
                        "/pending",
                        format!("frame {id} waits for an answer at path \"{}\", but no pending request has that path", frame.path),
                    ));
                }
            }
        }
        let pending: &BTreeMap<String, InputRequest> = &state.pending;
        for (path, request) in pending {
            let at = format!("/pending/{}", token(path));
            let Some((id, frame)) = waiting.get(path.as_str()) else {
                return Err(damaged(at, format!("a request is pending at path \"{path}\", but no frame waits there")));
            };
            let Some(node_id) = position_node(&frame.position) else { continue };
            let Some(idx) = self.flow_by_id(&frame.flow).and_then(|f| self.node_in(f, node_id)) else { continue };
            let node = &self.nodes[idx];
            if !nodes::asks(&node.op, request) || request.node() != node.name {
                return Err(damaged(
                    at,
                    format!("the request pending at \"{path}\" does not match node \"{}\" ({}) where frame {id} waits", node.name, node.ty),
                ));
            }
        }
        Ok(())
    }

    /// The run's inputs: exactly the root flow's inputs, each fitting its declared type.
    fn check_inputs_of(&self, inputs: &Map<String, Json>, at: &str) -> Checked {
        let flow = &self.flows[0];
        for name in inputs.keys() {
            if !flow.inputs.iter().any(|p| p.title() == name) {
                return Err(damaged(format!("{at}/{}", token(name)), format!("\"{name}\" is not an input of flow \"{}\"", flow.name)));
            }
        }
        for p in &flow.inputs {
            match inputs.get(p.title()) {
                Some(value) => {
                    if let Some(why) = crate::run::type_problem(&p.schema, value) {
                        return Err(damaged(
                            format!("{at}/{}", token(p.title())),
                            format!("input \"{}\" must be {}: {why}", p.title(), p.type_name()),
                        ));
                    }
                }
                None => {
                    return Err(damaged(
                        at,
                        format!("input \"{}\" of flow \"{}\" is missing (a run stores every input)", p.title(), flow.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A position, for messages.
fn describe(position: &Position) -> String {
    match position {
        Position::Ready { node } => format!("ready at \"{node}\""),
        Position::Busy { node, .. } => format!("busy at \"{node}\""),
        Position::Waiting { node } => format!("waiting at \"{node}\""),
        Position::InChild { node, child } => format!("in child frame {child} at \"{node}\""),
        Position::InBranches { node, .. } => format!("in branches at \"{node}\""),
        Position::Done => "done".to_owned(),
    }
}

/// A node's position in a stored state, for the checks of its family ([`nodes::check_position`]).
pub(crate) struct Place<'s> {
    pub(crate) plan: &'s Plan,
    pub(crate) state: &'s RunState,
    /// The frame's id and its JSON pointer.
    pub(crate) id: u64,
    pub(crate) at: String,
    /// The node the frame stands at, its id and plan.
    pub(crate) node_id: &'s str,
    pub(crate) node: &'s NodePlan,
}

impl Place<'_> {
    /// The position does something the node does not do.
    pub(crate) fn wrong(&self, what: &str) -> ResumeError {
        damaged(
            format!("{}/position", self.at),
            format!("frame {} {what} at node \"{}\", a {} that does not do that", self.id, self.node_id, self.node.ty),
        )
    }

    /// A position the node's family does not accept: `Ready` fits every node, any other is
    /// [`Place::wrong`].
    pub(crate) fn unexpected(&self, position: &Position) -> Checked {
        let what = match position {
            Position::Ready { .. } | Position::Done => return Ok(()),
            Position::Busy { call, .. } => match &**call {
                Call::Llm { .. } => "waits for an LLM call",
                Call::Tool { .. } => "waits for a server tool call",
                Call::AgentLlm { .. } => "waits for an agent's LLM call",
                Call::AgentSummary { .. } => "waits for an agent's summarizing call",
                Call::AgentTools { .. } => "waits for an agent's tool calls",
                Call::ExtractRepair { .. } => "waits for a JSON repair by an LLM",
                Call::Http {} => "waits for an HTTP request",
                Call::A2ASend {} => "waits for messages sent to a remote agent",
                Call::A2APoll { .. } => "waits for a remote agent's tasks",
            },
            Position::Waiting { .. } => "waits for an answer",
            Position::InChild { .. } => "runs a subflow",
            Position::InBranches { .. } => "runs branches or items",
        };
        Err(self.wrong(what))
    }

    /// Child frame `child`, named at `pointer` by this position, exists, points back and runs
    /// flow `flow`.
    pub(crate) fn child(&self, child: u64, flow: usize, pointer: String) -> Checked {
        self.plan.check_child(self.state, self.id, self.node_id, child, flow, pointer)
    }
}
