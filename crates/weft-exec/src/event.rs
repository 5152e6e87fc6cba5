//! The typed event stream of a run: what the progress view, `--events` files and (later)
//! tracing consume.
//!
//! Every event reaches the sink wrapped in an [`EventRecord`]: which run it belongs to, its
//! sequence number in that run, when it happened, and the frame it happened in. Serialized, a
//! record is one JSON object: the envelope's fields, then the event's, tagged by `event`:
//!
//! ```json
//! {"v":1,"run_id":"0190...","seq":4,"ts_ms":1764979200000,"path":"root/map[2]",
//!  "event":"node_started","node":"write","node_type":"LlmNode"}
//! ```

use crate::error::ErrorData;
use crate::state::InputRequest;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use weft_llm::Usage;

/// The version of the event schema (`v` in every record). It changes when a field is removed or
/// changes meaning; new events and new fields do not change it.
pub const EVENT_SCHEMA: u32 = 1;

/// An event with its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EventRecord<'a> {
    /// [`EVENT_SCHEMA`].
    pub v: u32,
    /// The run: a UUID v7, the same across resumes.
    pub run_id: &'a str,
    /// 1, 2, 3... per run, without gaps, continuing after a resume.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The input line's 0-based index, inside a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The frame: `flow` at the root, `flow/node` in a subflow, `flow/map[3]` in an item.
    pub path: &'a str,
    /// What happened.
    #[serde(flatten)]
    pub event: &'a Event,
}

/// Something that happened in a run. Serialized as one JSON object with an `event` tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `execute()` began (a new run, or a resumed one).
    RunStarted {
        /// The flow's name.
        flow: String,
        /// Whether the run was resumed from a stored state.
        resumed: bool,
    },
    /// A node began.
    NodeStarted {
        /// The node's name.
        node: String,
        /// Its component type.
        node_type: String,
    },
    /// A node finished.
    NodeFinished {
        /// The node's name.
        node: String,
        /// The branch it took (`None` at an EndNode).
        branch: Option<String>,
        /// Milliseconds since it started (for nodes that waited for input: since the answer).
        duration_ms: f64,
    },
    /// A piece of an LLM call's text, as it arrives (`--stream`; after a retry the text starts
    /// again).
    LlmDelta {
        /// The node's name.
        node: String,
        /// The text.
        text: String,
    },
    /// A catch node caught an error raised inside its subflow: the subflow's calls in flight
    /// were cancelled, and the node leaves through `branch`.
    ErrorCaught {
        /// The catch node's name.
        node: String,
        /// The error caught: its kind, the node it was raised at, the message.
        error: Box<ErrorData>,
        /// The branch the catch node takes.
        branch: String,
    },
    /// An LLM request left.
    LlmRequest {
        /// The node's name.
        node: String,
        /// The model's name.
        model: String,
        /// 1 for the first attempt, 2 for the first re-ask...
        attempt: u32,
        /// Messages sent.
        messages: usize,
    },
    /// An LLM call waits because its endpoint's provider-wide limiter is full.
    LlmHeldBack {
        /// The node's name.
        node: String,
        /// The model endpoint.
        endpoint: String,
        /// Calls in flight to that endpoint.
        in_flight: usize,
        /// The endpoint's current cap.
        cap: usize,
        /// Calls waiting, this one included.
        waiting: usize,
    },
    /// An LLM answer arrived.
    LlmResponse {
        /// The node's name.
        node: String,
        /// Tokens used.
        usage: Usage,
        /// Milliseconds the call took.
        duration_ms: f64,
    },
    /// An answer did not fit the requested schema; the model is asked again.
    LlmReask {
        /// The node's name.
        node: String,
        /// What was wrong.
        reason: String,
    },
    /// A server tool was called.
    ToolCall {
        /// The node's name.
        node: String,
        /// The tool's name.
        tool: String,
        /// Milliseconds the call took.
        duration_ms: f64,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// An HTTP request (an ApiNode's or a RemoteTool's) ended: answered (any status) or not.
    HttpRequest {
        /// The node's name.
        node: String,
        /// The method.
        method: String,
        /// The URL as rendered from the document (credentials removed).
        url: String,
        /// Where `--http-rewrite` sent it, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        rewritten: Option<String>,
        /// The last answer's status, when one came.
        status: Option<u16>,
        /// Attempts made.
        attempts: u32,
        /// Milliseconds the request took, its retries included.
        duration_ms: f64,
        /// Why no answer came (nothing sent, no connection, a timeout...).
        error: Option<String>,
    },
    /// An MCP request of a tool or toolbox ended (`tools/call`, or an agent's `tools/list`
    /// before its LLM call): answered or not.
    McpCall {
        /// The node's name (the tool node or the agent).
        node: String,
        /// The server, with no secret: `http <url>`, `sse <url>` (the document's URL,
        /// credentials removed) or `stdio <command> <args>`; never a header.
        server: String,
        /// `tools/call` or `tools/list`.
        method: String,
        /// The tool called (none for a listing).
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// Attempts made (the `retry_policy`'s retries included; 0 on replay).
        attempts: u32,
        /// Milliseconds the request took, its retries included.
        duration_ms: f64,
        /// Why it failed (an `isError` result is an answer, not a failure here).
        error: Option<String>,
    },
    /// The run waits for input.
    InputRequested {
        /// The request.
        request: Box<InputRequest>,
    },
    /// A node posted a message to the conversation.
    Message {
        /// The node's name.
        node: String,
        /// WayFlow's message type.
        message_type: String,
        /// The text.
        content: String,
    },
    /// The run finished.
    RunFinished {
        /// The outputs.
        outputs: Map<String, Json>,
        /// The end branch.
        end_branch: String,
        /// Milliseconds `execute()` took.
        duration_ms: f64,
    },
    /// The run failed.
    RunFailed {
        /// The error: its kind, the node, the message (and for an LLM call, the provider's
        /// status, error type and code, and request id).
        error: Box<ErrorData>,
    },
}

/// Receives a run's events, in `seq` order. Called on the driver's task and on call tasks: keep
/// it quick.
pub trait EventSink: Send + Sync {
    /// One event.
    fn emit(&self, record: &EventRecord<'_>);
}

impl<F: Fn(&EventRecord<'_>) + Send + Sync> EventSink for F {
    fn emit(&self, record: &EventRecord<'_>) {
        self(record)
    }
}
