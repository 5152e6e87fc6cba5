//! What each node does, one module per family of node types, mirroring `weft_flow::node`:
//! [`flow`] (StartNode, EndNode, FlowNode), [`llm`] (LlmNode, ExtendedLlmNode), [`tool`]
//! (ToolNode, ExtendedToolNode), [`branching`] (BranchingNode), [`message`] (input and output
//! messages, PluginTemplateNode, constants), [`data`] (PluginRegexNode), [`fanout`] (parallel
//! flows and map nodes), [`http`] (ApiNode, and the RemoteTool requests of tool nodes and
//! agents).
//!
//! A family holds everything specific to its operations: the conversion from the typed node
//! model at plan time, its step without IO (which may send an [`Effect`] out), how an effect's
//! result or an input answer is applied, how a call is made again after a resume, and what a
//! stored state may hold at its nodes.
//! The planner, the scheduler, the driver and the state check reach the families only through
//! the functions of this module. [`plan`] and [`step`] match on [`Op`], [`Op::role`] says what
//! else a node is (which positions it waits in); every other function matches on [`Role`]. All
//! matches are exhaustive (no catch-all arm): a new variant does not compile until each of them
//! says what the new node does.
//! In the other direction, families use the scheduler's helpers ([`Sched::produce`],
//! [`Sched::follow`], [`Sched::done`], [`Sched::wait`], [`Sched::post`], [`Sched::perform`],
//! [`Sched::set_position`], [`Sched::new_frame`], [`Sched::finish_frame`]) and the planner's
//! ([`Compiler::flow_plan`], [`Compiler::report`]).

pub(crate) mod a2a;
pub(crate) mod agent;
pub(crate) mod branching;
pub(crate) mod data;
pub(crate) mod datastore;
pub(crate) mod extract;
pub(crate) mod fanout;
pub(crate) mod flow;
pub(crate) mod group;
pub(crate) mod http;
pub(crate) mod llm;
pub(crate) mod mcp;
pub(crate) use llm::REASK_PREFIX;
pub(crate) mod message;
pub(crate) mod provider;
pub(crate) mod summarize;
pub(crate) mod tool;

use crate::check::{Checked, Place};
use crate::effect::{Effect, EffectResult};
use crate::error::{RunError, SubmitError};
use crate::plan::{Compiler, NodePlan};
use crate::sched::{Res, Sched, other};
use crate::state::{Call, InputRequest, Position, RunState};
use serde_json::{Map, Value as Json};
use weft_flow::node::{DataEdge, NodeKind};
use weft_spec::CompId;

/// What a node does: one variant per operation, each defined by its family.
pub(crate) enum Op {
    Start(flow::StartOp),
    End(flow::EndOp),
    Flow(flow::SubflowOp),
    Llm(Box<llm::LlmOp>),
    Tool(Box<tool::ToolOp>),
    Branching(branching::BranchingOp),
    InputMessage(message::InputMessageOp),
    OutputMessage(message::OutputMessageOp),
    Template(message::TemplateOp),
    Constants(message::ConstantsOp),
    Regex(Box<data::RegexOp>),
    Variables(Box<data::VariablesOp>),
    Extract(Box<extract::ExtractOp>),
    ChatHistory(Box<data::ChatHistoryOp>),
    Datastore(Box<datastore::DatastoreOp>),
    Parallel(fanout::ParallelOp),
    Map(Box<fanout::MapOp>),
    Agent(Box<agent::AgentOp>),
    /// A context provider called before the node whose input it feeds (made by the planner).
    Provider(Box<provider::ProviderOp>),
    Api(Box<http::ApiOp>),
    /// A remote agent (A2AAgent), in an AgentNode or at the root.
    A2A(Box<a2a::A2AOp>),
}

/// The node a family works on: its frame, its plan, and when it started (µs since the Unix
/// epoch, for durations).
#[derive(Clone, Copy)]
pub(crate) struct At<'p> {
    pub(crate) fid: u64,
    pub(crate) node: &'p NodePlan,
    pub(crate) t0: u64,
}

/// What a node is to the scheduler apart from its step: where its inputs come from, and which
/// positions it leaves its frame in (so which call results, answers and child frames it takes).
/// Every [`Op`] has one ([`Op::role`], an exhaustive match); the dispatch functions below match
/// on it exhaustively, so a node that needs a new kind of wait adds a variant here and the
/// compiler lists every place that must handle it.
#[derive(Clone, Copy)]
pub(crate) enum Role<'p> {
    /// StartNode: reads no inputs (its outputs are its frame's inputs).
    Entry,
    /// EndNode: reads the inputs that have a value or a default, and ends its frame.
    Exit,
    /// Runs in one step and moves on (branching, output messages, templates, constants).
    Instant,
    /// Busy with an LLM call.
    Llm(&'p llm::LlmOp),
    /// Busy with a server tool's call, or waiting for a client tool's result.
    Tool(&'p tool::ToolOp),
    /// Waiting for the user's message (busy first with the LLM call rephrasing its prompt, if it
    /// rephrases).
    Input(&'p message::InputMessageOp),
    /// An output message node that rephrases its message: busy with that LLM call.
    Output(&'p message::OutputMessageOp),
    /// In a child frame running a subflow.
    Subflow(&'p flow::SubflowOp),
    /// In branches or items.
    FanOut(fanout::FanOut<'p>),
    /// Busy with an agent's LLM or tool calls, waiting for the user to answer the agent, or in
    /// a child frame running a flow or an agent it called as a tool.
    Agent(&'p agent::AgentOp),
    /// Runs in one step, or busy with LLM calls repairing JSON (PluginExtractNode).
    Extract(&'p extract::ExtractOp),
    /// A context provider: busy with its tool's call, or in a child frame running its flow.
    Provider(&'p provider::ProviderOp),
    /// Busy with an HTTP request (ApiNode).
    Http(&'p http::ApiOp),
    /// Busy with a remote agent's requests or polling, or waiting for the user to answer it.
    A2A(&'p a2a::A2AOp),
}

/// Which of its inputs a node reads before it runs.
pub(crate) enum Reads {
    /// None: a StartNode's inputs are its frame's inputs, not values on data edges.
    Nothing,
    /// Those that have a value or a default; the others are left out (an EndNode).
    Available,
    /// All of them; one without a value or a default is an error.
    All,
}

impl Op {
    /// Whether the node catches errors raised inside its subflow.
    pub(crate) fn catches(&self) -> bool {
        match self {
            Op::Flow(op) => op.catches(),
            _ => false,
        }
    }

    /// The node's role (see [`Role`]).
    pub(crate) fn role(&self) -> Role<'_> {
        match self {
            Op::Start(_) => Role::Entry,
            Op::End(_) => Role::Exit,
            Op::OutputMessage(op) if op.rephrase.is_some() => Role::Output(op),
            Op::Branching(_)
            | Op::OutputMessage(_)
            | Op::Template(_)
            | Op::Constants(_)
            | Op::Regex(_)
            | Op::Variables(_)
            | Op::ChatHistory(_)
            | Op::Datastore(_) => Role::Instant,
            Op::Extract(op) => Role::Extract(op),
            Op::Llm(op) => Role::Llm(op),
            Op::Tool(op) => Role::Tool(op),
            Op::InputMessage(op) => Role::Input(op),
            Op::Flow(op) => Role::Subflow(op),
            Op::Parallel(op) => Role::FanOut(fanout::FanOut::Parallel(op)),
            Op::Map(op) => Role::FanOut(fanout::FanOut::Map(op)),
            Op::Agent(op) => Role::Agent(op),
            Op::Provider(op) => Role::Provider(op),
            Op::Api(op) => Role::Http(op),
            Op::A2A(op) => Role::A2A(op),
        }
    }

    /// Which of its inputs the node reads.
    pub(crate) fn reads(&self) -> Reads {
        match self.role() {
            Role::Entry => Reads::Nothing,
            Role::Exit => Reads::Available,
            Role::Instant
            | Role::Llm(_)
            | Role::Tool(_)
            | Role::Input(_)
            | Role::Output(_)
            | Role::Subflow(_)
            | Role::FanOut(_)
            | Role::Agent(_)
            | Role::Extract(_)
            | Role::Provider(_)
            | Role::Http(_)
            | Role::A2A(_) => Reads::All,
        }
    }

    /// Whether the outputs stored for this node in frame `frame` were checked against their
    /// declared types when they entered the run (so a stored state's values must still fit).
    pub(crate) fn typed_outputs(&self, frame: u64) -> bool {
        match self.role() {
            Role::Entry => flow::StartOp::typed_outputs(frame),
            Role::Tool(op) => op.typed_outputs(),
            Role::Exit
            | Role::Instant
            | Role::Llm(_)
            | Role::Input(_)
            | Role::Output(_)
            | Role::Subflow(_)
            | Role::FanOut(_)
            | Role::Agent(_)
            | Role::Extract(_)
            | Role::Provider(_)
            | Role::Http(_)
            | Role::A2A(_) => false,
        }
    }
}

/// Plan time: the operation of a node from its typed model; `None` when it cannot run (the
/// reason is reported to the compiler).
pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, idx: usize, kind: &NodeKind, edges: &[DataEdge]) -> Option<Op> {
    Some(match kind {
        NodeKind::Start => Op::Start(flow::StartOp),
        NodeKind::End(end) => Op::End(flow::EndOp::plan(end)),
        NodeKind::Subflow(sub) => Op::Flow(flow::SubflowOp::plan(c, sub)),
        NodeKind::Llm(llm) => Op::Llm(Box::new(llm::LlmOp::plan(c, n, idx, llm)?)),
        NodeKind::Tool(tool) => Op::Tool(Box::new(tool::ToolOp::plan(c, n, tool)?)),
        NodeKind::Branching(b) => Op::Branching(branching::BranchingOp::plan(b)),
        NodeKind::InputMessage(m) => Op::InputMessage(message::InputMessageOp::plan(c, n, m)?),
        NodeKind::OutputMessage(m) => Op::OutputMessage(message::OutputMessageOp::plan(c, n, m)?),
        NodeKind::Template(t) => Op::Template(message::TemplateOp::plan(t)),
        NodeKind::Constants(k) => Op::Constants(message::ConstantsOp::plan(k)),
        NodeKind::Regex(r) => Op::Regex(Box::new(data::RegexOp::plan(r))),
        NodeKind::Choice(choice) => Op::Llm(Box::new(llm::LlmOp::plan_choice(c, n, choice)?)),
        NodeKind::Retry(r) => Op::Flow(flow::SubflowOp::plan_retry(c, r)),
        NodeKind::Catch(k) => Op::Flow(flow::SubflowOp::plan_catch(c, k)),
        NodeKind::Variables(v) => Op::Variables(Box::new(data::VariablesOp::plan(c, n, idx, v)?)),
        NodeKind::Extract(e) => Op::Extract(Box::new(extract::ExtractOp::plan(c, n, e)?)),
        NodeKind::ChatHistory(h) => Op::ChatHistory(Box::new(data::ChatHistoryOp::plan(h))),
        NodeKind::Datastore(d) => Op::Datastore(Box::new(datastore::DatastoreOp::plan(d))),
        NodeKind::Parallel(p) => Op::Parallel(fanout::ParallelOp::plan(c, p)),
        NodeKind::Map(map) => Op::Map(Box::new(fanout::MapOp::plan(c, map, idx, edges))),
        NodeKind::Agent(a) => Op::Agent(Box::new(agent::AgentOp::plan(c, n, a, false)?)),
        NodeKind::Group(g) => Op::Agent(Box::new(agent::AgentOp::plan_group(c, n, g)?)),
        NodeKind::Api(api) => Op::Api(Box::new(http::ApiOp::plan(c, api)?)),
        NodeKind::A2A(agent) => Op::A2A(Box::new(a2a::A2AOp::plan(c, agent, a2a::Mode::Node)?)),
    })
}

/// Runs the node at `at` with its input values `vars` (internal names, cast): it moves on,
/// or leaves its frame `Busy`, `Waiting`, in a child frame or in branches.
pub(crate) fn step(s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
    match &at.node.op {
        Op::Start(op) => op.step(s, state, at),
        Op::End(op) => op.step(s, state, at, vars),
        Op::Flow(op) => op.step(s, state, at, vars),
        Op::Llm(op) => op.step(s, state, at, vars),
        Op::Tool(op) => op.step(s, state, at, vars),
        Op::Branching(op) => op.step(s, state, at, vars),
        Op::InputMessage(op) => op.step(s, state, at, vars),
        Op::OutputMessage(op) => op.step(s, state, at, vars),
        Op::Template(op) => op.step(s, state, at, vars),
        Op::Constants(op) => op.step(s, state, at),
        Op::Regex(op) => op.step(s, state, at, vars),
        Op::Variables(op) => op.step(s, state, at, vars),
        Op::Extract(op) => op.step(s, state, at, vars),
        Op::ChatHistory(op) => op.step(s, state, at, vars),
        Op::Datastore(op) => op.step(s, state, at, vars),
        Op::Parallel(op) => op.step(s, state, at, vars),
        Op::Map(op) => op.step(s, state, at, vars),
        Op::Agent(op) => op.step(s, state, at, vars),
        Op::Provider(op) => op.step(s, state, at),
        Op::Api(op) => op.step(s, state, at, vars),
        Op::A2A(op) => op.step(s, state, at, vars),
    }
}

/// An effect sent out for the node at `at` returned `result`; `call` is the call it was busy
/// with.
pub(crate) fn complete(s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
    match at.node.op.role() {
        Role::Llm(op) => op.complete(s, state, at, call, result),
        Role::Tool(op) => op.complete(s, state, at, call, result),
        Role::Agent(op) => op.complete(s, state, at, call, result),
        Role::Extract(op) => op.complete(s, state, at, call, result),
        Role::Input(op) => op.complete(s, state, at, call, result),
        Role::Output(op) => op.complete(s, state, at, call, result),
        Role::Provider(op) => op.complete(s, state, at, call, result),
        Role::Http(op) => op.complete(s, state, at, call, result),
        Role::A2A(op) => op.complete(s, state, at, call, result),
        Role::Entry | Role::Exit | Role::Instant | Role::Subflow(_) | Role::FanOut(_) => Err(mismatched_call()),
    }
}

/// The error of a call result that does not fit the node (or the call) waiting for it.
pub(crate) fn mismatched_call() -> RunError {
    other("a call result does not match the node waiting for it")
}

/// What a node makes of an answer it accepts.
pub(crate) enum Answer {
    /// Its outputs (internal titles): the scheduler records them and leaves the node through
    /// `next`.
    Outputs(Map<String, Json>),
    /// The node runs again (an agent whose user answered).
    Again,
}

/// What a node makes of an answer, or why the answer is refused.
pub(crate) type Answered = Result<Answer, SubmitError>;

/// The outputs an answer gives a node that finishes with it, or why the answer is refused.
pub(crate) type AnswerOutputs = Result<Map<String, Json>, SubmitError>;

/// An answer to the node's pending `request` (see [`Answer`]), or why the answer is refused.
pub(crate) fn submit(s: &mut Sched<'_>, state: &mut RunState, fid: u64, node: &NodePlan, request: &InputRequest, answer: Json) -> Answered {
    match node.op.role() {
        Role::Input(op) => op.submit(s, state, fid, node, request, answer).map(Answer::Outputs),
        Role::Tool(op) => op.submit(s, node, request, answer).map(Answer::Outputs),
        Role::Agent(op) => op.submit(s, state, fid, node, request, answer),
        Role::A2A(op) => op.submit(s, state, fid, node, request, answer),
        Role::Entry
        | Role::Exit
        | Role::Instant
        | Role::Llm(_)
        | Role::Output(_)
        | Role::Subflow(_)
        | Role::FanOut(_)
        | Role::Extract(_)
        | Role::Provider(_)
        | Role::Http(_) => Err(mismatched_request()),
    }
}

/// The error of an answer to a request that does not fit the node waiting for it.
pub(crate) fn mismatched_request() -> SubmitError {
    SubmitError::Invalid("the pending request does not match its node".into())
}

/// Child frame `child` of the node at `at` (in frame `at.fid`) reached its end with `outputs`
/// (the subflow's declared outputs) through `branch`.
pub(crate) fn child_finished(
    s: &mut Sched<'_>,
    state: &mut RunState,
    at: At<'_>,
    child: u64,
    outputs: Map<String, Json>,
    branch: String,
) -> Res<()> {
    match at.node.op.role() {
        Role::Subflow(op) => op.child_finished(s, state, at, outputs, branch),
        Role::FanOut(fan) => fanout::child_finished(s, state, at, fan, child, outputs),
        Role::Provider(op) => op.child_finished(s, state, at, outputs),
        Role::Agent(op) => op.child_finished(s, state, at, child, outputs, branch),
        Role::Entry
        | Role::Exit
        | Role::Instant
        | Role::Llm(_)
        | Role::Tool(_)
        | Role::Input(_)
        | Role::Output(_)
        | Role::Extract(_)
        | Role::Http(_)
        | Role::A2A(_) => Err(other("a frame finished whose parent node runs no subflow (this is a bug in weft)")),
    }
}

/// Whether the node takes the failure of its child frame as data instead of failing (an agent
/// whose called flow or agent failed).
pub(crate) fn takes_child_failures(op: &Op) -> bool {
    match op.role() {
        Role::Agent(op) => op.catches(),
        Role::Entry
        | Role::Exit
        | Role::Instant
        | Role::Llm(_)
        | Role::Tool(_)
        | Role::Input(_)
        | Role::Subflow(_)
        | Role::FanOut(_)
        | Role::Extract(_)
        | Role::Output(_)
        | Role::Provider(_)
        | Role::Http(_)
        | Role::A2A(_) => false,
    }
}

/// The child frame of the node at `at` failed with `error` (its frames are gone): the node
/// goes on, or returns the error (which then fails its own frame).
pub(crate) fn child_failed(s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, error: RunError) -> Res<()> {
    match at.node.op.role() {
        Role::Agent(op) => op.child_failed(s, state, at, error),
        Role::Entry
        | Role::Exit
        | Role::Instant
        | Role::Llm(_)
        | Role::Tool(_)
        | Role::Input(_)
        | Role::Subflow(_)
        | Role::FanOut(_)
        | Role::Extract(_)
        | Role::Output(_)
        | Role::Provider(_)
        | Role::Http(_)
        | Role::A2A(_) => Err(error),
    }
}

/// The effect of the call `call` the node at `at` is busy with, made again (an `execute()`
/// after a resume or a cancelled one); `vars` are the node's inputs, as when it first ran.
pub(crate) fn remake(s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call, vars: Map<String, Json>) -> Res<Effect> {
    match at.node.op.role() {
        Role::Llm(op) => op.remake(s, state, at, call, vars),
        Role::Tool(op) => op.remake(call),
        Role::Agent(op) => op.remake(s, state, at, call, vars),
        Role::Extract(op) => op.remake(s, state, at, call),
        Role::Input(op) => op.remake(s, state, at, call, vars),
        Role::Output(op) => op.remake(s, state, at, call, vars),
        Role::Provider(op) => op.remake(call),
        Role::Http(op) => op.remake(state, at, call, vars),
        Role::A2A(op) => op.remake(state, at, call),
        Role::Entry | Role::Exit | Role::Instant | Role::Subflow(_) | Role::FanOut(_) => Err(mismatched_call()),
    }
}

/// Whether a stored state may hold `position` at this node (`Ready` fits every node).
pub(crate) fn check_position(place: &Place<'_>, position: &Position) -> Checked {
    match place.node.op.role() {
        Role::Llm(op) => op.check_position(place, position),
        Role::Tool(op) => op.check_position(place, position),
        Role::Input(op) => op.check_position(place, position),
        Role::Output(op) => op.check_position(place, position),
        Role::Provider(op) => op.check_position(place, position),
        Role::Subflow(op) => op.check_position(place, position),
        Role::FanOut(fan) => fanout::check_position(place, fan, position),
        Role::Agent(op) => op.check_position(place, position),
        Role::Extract(op) => op.check_position(place, position),
        Role::Http(op) => op.check_position(place, position),
        Role::A2A(op) => op.check_position(place, position),
        Role::Entry | Role::Exit | Role::Instant => place.unexpected(position),
    }
}

/// Whether a request pending at this node is one it makes.
pub(crate) fn asks(op: &Op, request: &InputRequest) -> bool {
    match op.role() {
        Role::Input(op) => op.asks(request),
        Role::Tool(op) => op.asks(request),
        Role::Agent(op) => op.asks(request),
        Role::A2A(op) => op.asks(request),
        Role::Entry
        | Role::Exit
        | Role::Instant
        | Role::Llm(_)
        | Role::Output(_)
        | Role::Subflow(_)
        | Role::FanOut(_)
        | Role::Extract(_)
        | Role::Provider(_)
        | Role::Http(_) => false,
    }
}
