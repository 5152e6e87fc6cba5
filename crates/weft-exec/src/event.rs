//! The typed event stream of a run: what the progress view, `--events` files and (later)
//! tracing consume.

use crate::state::InputRequest;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use weft_llm::Usage;

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
        /// The frame's path.
        path: String,
        /// The node's name.
        node: String,
        /// Its component type.
        node_type: String,
    },
    /// A node finished.
    NodeFinished {
        /// The frame's path.
        path: String,
        /// The node's name.
        node: String,
        /// The branch it took (`None` at an EndNode).
        branch: Option<String>,
        /// Milliseconds since it started (for nodes that waited for input: since the answer).
        duration_ms: f64,
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
    /// The run waits for input.
    InputRequested {
        /// The branch path.
        path: String,
        /// The request.
        request: InputRequest,
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
        /// The error.
        error: String,
    },
}

/// Receives a run's events, in order. Called on the driver's task: keep it quick.
pub trait EventSink: Send + Sync {
    /// One event.
    fn emit(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn emit(&self, event: &Event) {
        self(event)
    }
}
