//! The run state: a plain serializable value holding everything a run needs to continue, in
//! this process or another one.
//!
//! A run is a tree of frames. The root frame runs the flow; a FlowNode runs its subflow in a
//! child frame, and the branches of a ParallelFlowNode and the items of a map node are sibling
//! frames under the node's frame. Each frame keeps
//! the latest value of every output produced in it, the position of its cursor, and the step
//! count of its execution path. Nodes and outputs are named by component id and title, so a
//! stored state can be read without the engine.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use weft_llm::Usage;

/// An insertion-ordered map hashed with foldhash (seeded per process): the engine makes and
/// reads a few per item of a fan-out, where SipHash was a tenth of the engine's instructions.
pub type FastIndexMap<K, V> = IndexMap<K, V, foldhash::fast::RandomState>;

/// Everything a run needs to continue. Stored through its persisted form
/// ([`crate::persist::StoredState`]), which has a format version of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's id: a UUID v7, kept across resumes (events carry it).
    pub run_id: String,
    /// The `seq` of the run's latest event (a resumed run's events continue after it).
    #[serde(default)]
    pub event_seq: u64,
    /// The content hash of the flow this run belongs to.
    pub flow_hash: String,
    /// The run's inputs, defaults filled in.
    pub inputs: Map<String, Json>,
    /// Frames by id; frame 0 is the root flow. Boxed: a frame is about 500 bytes, and a B-tree
    /// node holds eleven values inline, so a run of one frame would carry 5.5 KB.
    pub frames: BTreeMap<u64, Box<Frame>>,
    /// The id the next frame gets.
    pub next_frame: u64,
    /// The conversation: messages posted by nodes and answers given by the user.
    pub messages: Vec<ConversationMessage>,
    /// Input requests waiting for an answer, by branch path.
    pub pending: BTreeMap<String, InputRequest>,
    /// Steps taken so far, by execution path.
    pub steps: BTreeMap<String, u64>,
    /// LLM calls made so far, by node name (re-asks included).
    pub llm_calls: BTreeMap<String, u64>,
    /// Trials a PluginRetryNode has finished, by `<frame id>/<node id>`, while it retries (the
    /// entry goes when the node leaves).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry_trials: BTreeMap<String, u32>,
    /// Flow variables (an ExtendedFlow's `state`) by frame: each run of a flow has its own, as
    /// each WayFlow conversation does, started at their defaults when a node first uses them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<u64, Map<String, Json>>,
    /// The collections of in-memory datastores, by datastore component id then collection name:
    /// shared by every node of the run that uses the datastore (WayFlow's datastore object is
    /// shared the same way), created when a node first uses a collection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub datastores: BTreeMap<String, BTreeMap<String, crate::datastore::Table>>,
    /// Where each agent that waits (for an answer, or for a sub-flow or sub-agent it called)
    /// stands in its loop, by `<frame id>/<node id>`: the calls of the model's last answer still
    /// to run and the confirmations given. The entry goes when the agent goes on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agent_loops: BTreeMap<String, AgentTurn>,
    /// The conversations of agents called as tools by other agents, by
    /// `<frame id>/<calling node id>/<tool name>`, while they have not finished.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conversations: BTreeMap<String, Conversation>,
    /// Summaries agents' transforms made and keep (their `datastore`), by
    /// `<agent's conversation>/<transform id>[/<message index>_<part>]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub summaries: BTreeMap<String, CachedSummary>,
    /// Where each conversation with a remote agent (A2AAgent) stands, by
    /// `<frame id>/<node id>` (or, for one called as a tool, its conversation's key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub a2a: BTreeMap<String, A2AConversation>,
    /// Totals so far.
    pub usage: RunUsage,
    /// Sequence number of the latest value produced (values are stamped with it, so the latest
    /// value on several data edges into one input can be told).
    pub seq: u64,
    /// Where the run stands.
    pub outcome: Outcome,
}

impl RunState {
    /// Frame `fid`, if the run has it.
    pub(crate) fn frame(&self, fid: u64) -> Option<&Frame> {
        self.frames.get(&fid).map(|f| &**f)
    }

    /// Frame `fid`, to change, if the run has it.
    pub(crate) fn frame_mut(&mut self, fid: u64) -> Option<&mut Frame> {
        self.frames.get_mut(&fid).map(|f| &mut **f)
    }

    /// The key of the conversation frame `fid` uses: the nearest frame up from it that has one
    /// of its own; `None` for the run's ([`RunState::messages`]).
    pub(crate) fn conversation_key(&self, fid: u64) -> Option<&str> {
        let mut at = fid;
        // Bounded by the number of frames, so even a cycle of parents cannot loop forever.
        for _ in 0..=self.frames.len() {
            let frame = self.frames.get(&at)?;
            if let Some(key) = frame.conversation.as_deref().filter(|k| self.conversations.contains_key(*k)) {
                return Some(key);
            }
            at = frame.parent.as_ref()?.0;
        }
        None
    }

    /// The messages of the conversation frame `fid` uses.
    pub fn conversation(&self, fid: u64) -> &[ConversationMessage] {
        match self.conversation_key(fid).and_then(|k| self.conversations.get(k)) {
            Some(c) => &c.messages,
            None => &self.messages,
        }
    }

    /// The messages of the conversation frame `fid` uses, to change.
    pub fn conversation_mut(&mut self, fid: u64) -> &mut Vec<ConversationMessage> {
        match self.conversation_key(fid).map(str::to_owned) {
            Some(key) => &mut self.conversations.entry(key).or_default().messages,
            None => &mut self.messages,
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Still going (or waiting for input, see [`RunState::pending`]).
    Running,
    /// Done.
    Finished {
        /// The flow's outputs.
        outputs: Map<String, Json>,
        /// The `branch_name` of the EndNode reached.
        end_branch: String,
    },
    /// Stopped by an error.
    Failed {
        /// The error: its kind, node, message and (for an LLM call) the provider's details.
        error: crate::error::ErrorData,
    },
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// LLM calls answered, re-asks included (a failed call is counted in
    /// [`RunState::llm_calls`], by node, not here).
    pub llm_calls: u64,
    /// Tool calls (server tools; client tools are answers).
    pub tool_calls: u64,
    /// Tokens.
    pub tokens: Tokens,
}

/// Token counts, as the state stores them (a type of the state's own, so that a change of the
/// LLM client's types never changes stored states silently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
}

impl Tokens {
    /// Adds a call's usage (saturating: totals read back from a stored state may be anything).
    pub fn add(&mut self, usage: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(usage.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(usage.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(usage.cached_tokens);
    }
}

/// One frame: a flow being run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The flow's component id.
    pub flow: String,
    /// Its path in the run, for messages and events: `root`, `root/outer_node`, ...
    pub path: String,
    /// The execution path whose step budget this frame spends.
    pub budget_key: String,
    /// The parent frame and the node there that waits for this one.
    pub parent: Option<(u64, String)>,
    /// The inputs the frame was started with.
    pub inputs: Map<String, Json>,
    /// Latest outputs by node id, then output title. Each node's map is boxed: held inline, it
    /// would make each B-tree node (room for eleven) a kilobyte, for frames that mostly hold a
    /// few nodes' outputs.
    pub values: BTreeMap<String, Box<FastIndexMap<String, Stamped>>>,
    /// How often each node ran, in order of first run (for naming loops).
    pub visits: FastIndexMap<String, u64>,
    /// The cursor.
    pub position: Position,
    /// When the node at the cursor started and when it times out, while it waits for a call, a
    /// subflow or its branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// The key of the conversation this frame and the frames below it use
    /// ([`RunState::conversations`]), when it is not its parent's: an agent called as a tool
    /// by another agent has one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// The conversation of an agent that another agent calls as a tool: its own messages, and the
/// inputs it was first called with (kept, as WayFlow keeps a sub-agent's conversation, until
/// it finishes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Its inputs.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// Its messages.
    #[serde(default)]
    pub messages: Vec<ConversationMessage>,
}

/// A summary an agent's transform keeps (WayFlow caches them in the transform's datastore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedSummary {
    /// The transform's component id.
    pub transform: String,
    /// The summary, as the model is shown it.
    pub content: String,
    /// For a conversation's summary: how many of the messages it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_size: Option<u64>,
    /// When it was made and last used (µs since the Unix epoch).
    pub created_us: u64,
    /// When it was last used.
    pub used_us: u64,
}

/// When a node started and when it times out (microseconds since the Unix epoch). A resumed
/// run starts every clock again: a call re-made after a resume gets a fresh deadline and
/// reports its own duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// When the node started (or was resumed).
    pub started_us: u64,
    /// When it fails with a timeout (`--node-timeout`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_us: Option<u64>,
}

/// A value and the sequence number it was produced at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// When it was produced.
    pub seq: u64,
    /// The value.
    pub value: Json,
}

/// Where a frame's cursor is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Position {
    /// The node is about to run.
    Ready {
        /// Node id.
        node: String,
    },
    /// The node waits for an LLM or tool call.
    Busy {
        /// Node id.
        node: String,
        /// The call.
        call: Box<Call>,
    },
    /// The node waits for an answer from the user or the client application.
    Waiting {
        /// Node id.
        node: String,
    },
    /// The node waits for a child frame.
    InChild {
        /// Node id.
        node: String,
        /// The child frame.
        child: u64,
    },
    /// The node (a ParallelFlowNode or a map node) waits for its branches or items, each a
    /// child frame.
    InBranches {
        /// Node id.
        node: String,
        /// The node's input values when it started, by internal name: each branch or item
        /// draws its inputs from them (an object iterated by an ExtendedMapNode is stored as
        /// its list of `{"_key", "_value"}` pairs).
        vars: Map<String, Json>,
        /// The inputs iterated over (map nodes), by internal name; the others are broadcast.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        iterated: Vec<String>,
        /// How many branches or items there are.
        total: usize,
        /// The next one to start. They start in index order as running ones finish, so at
        /// most `max_workers` run at once.
        next: usize,
        /// Running ones: child frame id to index.
        #[serde(with = "pairs")]
        running: BTreeMap<u64, usize>,
        /// Outputs of the finished ones, by index.
        #[serde(with = "pairs")]
        done: BTreeMap<usize, Map<String, Json>>,
    },
    /// The frame reached an end.
    Done,
}

/// A call a node waits for. Kept in the state so that a resumed run makes it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Call {
    /// An LLM call.
    Llm {
        /// 1 for the first attempt, 2 for the first re-ask...
        attempt: u32,
        /// The node's call count when the call was made (the request's `call_index`).
        #[serde(default)]
        call_index: u64,
        /// The answers that did not fit and why, one per earlier attempt. The request is not
        /// stored: it is rendered again from the node's inputs (which do not change while the
        /// node waits) followed by these exchanges, so the prompt, and the inputs in it, are
        /// not stored twice, and the state holds no type of the LLM client.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasks: Vec<Reask>,
    },
    /// A server tool call.
    Tool {
        /// The tool's name.
        tool: String,
        /// The arguments, keyed by input title.
        args: Map<String, Json>,
    },
    /// An agent's LLM call; its request is built again from the conversation on resume.
    AgentLlm {
        /// The node's call count when the call was made.
        call_index: u64,
        /// The agent's loop.
        turn: AgentTurn,
        /// The answers of the summarizing calls its transforms made for this call, in order
        /// (the request is built again with them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        summaries: Vec<String>,
    },
    /// A summarizing call of one of an agent's transforms, before the agent's LLM call.
    AgentSummary {
        /// The call count of the summarizing calls when the call was made.
        call_index: u64,
        /// The agent's loop.
        turn: AgentTurn,
        /// The answers of the summarizing calls made before this one, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        summaries: Vec<String>,
    },
    /// An agent's calls of server tools (consecutive calls of one answer, run at once).
    AgentTools {
        /// The calls, in the answer's order.
        calls: Vec<AgentToolCall>,
        /// The agent's loop (the calls after these).
        turn: AgentTurn,
    },
    /// A PluginExtractNode's call of its model to repair a JSON piece.
    ExtractRepair {
        /// The node's call count when the call was made.
        call_index: u64,
        /// Where the node's scan of the pieces stands.
        scan: ExtractScan,
        /// The query's error the model is shown.
        error: String,
    },
    /// An ApiNode's HTTP request; rendered again from the node's inputs on resume (the
    /// sensitive headers are never stored).
    Http {},
    /// An A2A agent's `message/send` requests: the messages of its conversation it has not sent
    /// yet (found again from [`RunState::a2a`] on resume).
    A2ASend {},
    /// An A2A agent's polling of the tasks its messages started (`tasks/get`).
    A2APoll {
        /// The tasks, in the order of the messages that started them.
        tasks: Vec<String>,
        /// The answers that were not tasks (each `message/send` result), in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replies: Vec<Json>,
    },
}

/// A conversation with a remote agent (A2AAgent): the A2A context it runs in, and how many
/// messages of the Weft conversation were sent to it or came from it (WayFlow's
/// `last_message_idx` + 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct A2AConversation {
    /// The A2A `contextId` of every message sent.
    pub context_id: String,
    /// Messages of the conversation seen by the remote agent.
    pub seen: usize,
}

/// Where a PluginExtractNode's scan stands: the pieces' JSON texts (the one being repaired
/// replaced by the model's answer), the piece and the next output to try, the values found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractScan {
    /// The JSON texts of the pieces, in order.
    pub pieces: Vec<String>,
    /// The piece being read.
    pub piece: usize,
    /// The next output (index into the node's queries) to try on it.
    pub output: usize,
    /// The values found so far, by output.
    pub found: Map<String, Json>,
}

/// An answer that did not fit the node's outputs, and why: the model is asked again with both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reask {
    /// The model's answer.
    pub answer: String,
    /// What was wrong with it.
    pub reason: String,
}

/// A question the run waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputRequest {
    /// A message from the user (InputMessageNode).
    Message {
        /// The node's name.
        node: String,
        /// The prompt shown, if the node has one.
        message: Option<String>,
    },
    /// A client tool's result (ToolNode with a ClientTool).
    Tool {
        /// The node's name.
        node: String,
        /// The tool's name.
        tool: String,
        /// The request id.
        tool_request_id: String,
        /// The arguments, keyed by input title.
        args: Map<String, Json>,
        /// The tool's output titles: the answer is the value for one output, else an object
        /// keyed by these titles.
        outputs: Vec<String>,
    },
    /// The results of an agent's client tool calls: every call of its conversation that has no
    /// result yet, in the order the model made them (WayFlow's `ToolRequestStatus`). The answer
    /// is an object keyed by `tool_request_id` (some of the calls: the agent asks again for the
    /// others) or an array with one result per call, in order.
    ClientTools {
        /// The node's name.
        node: String,
        /// The calls.
        calls: Vec<ClientToolCall>,
    },
    /// Approve or reject an agent's call of a tool that requires confirmation (WayFlow's
    /// `ToolExecutionConfirmationStatus`). The answer is `"approve"`, `"approve: {...}"` (with
    /// changed values of some of the call's arguments), `"reject"` or `"reject: REASON"`, or
    /// the object `{"approve": true, "arguments": {...}}` / `{"approve": false, "reason": "..."}`.
    Confirmation {
        /// The node's name.
        node: String,
        /// The tool's name.
        tool: String,
        /// The model's call id.
        tool_request_id: String,
        /// The arguments it would run with, keyed by input title.
        args: Map<String, Json>,
    },
}

impl InputRequest {
    /// The name of the node asking.
    pub fn node(&self) -> &str {
        match self {
            InputRequest::Message { node, .. }
            | InputRequest::Tool { node, .. }
            | InputRequest::ClientTools { node, .. }
            | InputRequest::Confirmation { node, .. } => node,
        }
    }
}

/// One call of a client tool an agent made, waiting for its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientToolCall {
    /// The tool's name.
    pub tool: String,
    /// The model's call id.
    pub tool_request_id: String,
    /// The arguments, keyed by input title.
    pub args: Map<String, Json>,
    /// The tool's output titles: the result is the value for one output, else an object keyed
    /// by these titles (any JSON value when there are none).
    pub outputs: Vec<String>,
}

/// A message of the run's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMessage {
    /// WayFlow's message type: `AGENT`, `USER`, `SYSTEM`, `TOOL_REQUEST`, `TOOL_RESULT`...
    pub message_type: String,
    /// The text (a tool result: the text the model sees).
    pub content: String,
    /// The node that posted it.
    pub node: String,
    /// The tool calls of a `TOOL_REQUEST` message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<weft_llm::ToolCall>,
    /// The call a `TOOL_RESULT` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ConversationMessage {
    /// A text message.
    pub fn text(message_type: &str, content: impl Into<String>, node: impl Into<String>) -> ConversationMessage {
        ConversationMessage {
            message_type: message_type.to_owned(),
            content: content.into(),
            node: node.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// One call of a server tool by an agent, answering the model's call `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentToolCall {
    /// The model's call id.
    pub id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments, normalized.
    pub args: Map<String, Json>,
}

/// Where an agent is in its loop (AGENTS.md 1.5): what the current user turn has done, and the
/// tool calls of the model's last answer that are still to run, in the answer's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentTurn {
    /// LLM calls made in this user turn (`max_iterations` bounds them).
    pub iterations: u64,
    /// Tool calls still to run, in the order the model made them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<weft_llm::ToolCall>,
    /// What the caller decided about calls of tools that require confirmation, by call id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<ToolDecision>,
    /// The MCP toolboxes' tools offered on the turn's last LLM call (listed before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed: Vec<ListedTool>,
}

/// A tool of an agent's MCP toolbox, as it was listed and offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedTool {
    /// Which of the agent's toolboxes (its index).
    pub toolbox: usize,
    /// What the model was offered: name, description, parameters.
    pub spec: weft_llm::ToolSpec,
    /// The outputs its result is read for (schemas with titles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Json>,
    /// Each call waits for the caller's approval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires_confirmation: bool,
}

/// The caller's decision about a call of a tool that requires confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDecision {
    /// The model's call id.
    pub id: String,
    /// Approved (the tool runs) or rejected (the model is told why).
    pub approved: bool,
    /// Why it was rejected, if the caller said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Maps with integer keys as lists of `[key, value]` pairs: inside a tagged enum, serde cannot
/// read integer keys back from JSON object keys.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
