//! Language models behind one trait: [`ChatModel`] takes a [`ChatRequest`] (messages, an
//! optional requested schema, tools, generation parameters) and returns a [`ChatResponse`]
//! (text, tool calls, usage).
//!
//! The engine never knows which model it talks to. The built-in [`simulated::SimulatedModel`]
//! is deterministic and offline; real providers implement the same trait.

mod body;
pub mod breaker;
mod error;
pub mod http;
pub mod limit;
pub mod providers;
pub mod retry;
pub mod rng;
pub mod simulated;

pub use error::{LlmError, LlmErrorInfo, LlmErrorKind};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// A chat role, as the OpenAI protocol spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// The text.
    pub content: String,
    /// More text parts, sent after the text, each a part of its own (WayFlow's summarization
    /// prompt is one message of several parts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// Images, as base64 data or URLs, sent after the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Tool calls the assistant made (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (tool messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A text message.
    pub fn new(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role, content: content.into(), parts: Vec::new(), images: Vec::new(), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed by the tool message that answers it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object).
    pub arguments: Json,
}

/// How a model without native tool calling writes a tool call in its text (the syntax a prompt
/// template's tool output parser reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSyntax {
    /// `{"name": ..., "parameters": {...}}` (PluginJsonToolOutputParser).
    Json,
    /// `name(arg=value, ...)` (PluginPythonToolOutputParser).
    Python,
    /// `## Thought: ...`, `## Action:` and the JSON call in a code fence
    /// (PluginReactToolOutputParser).
    React,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments (an object schema), shared by every request that offers
    /// the tool: a request clones a pointer, not the schema.
    pub parameters: Arc<Json>,
}

/// A requested shape for the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    /// The schema's name (providers require one).
    pub name: String,
    /// The JSON Schema the answer must satisfy, shared by every request that asks for it.
    pub schema: Arc<Json>,
    /// Ask the provider to enforce the schema strictly.
    pub strict: bool,
    /// How the schema reaches the model: natively (a provider's JSON-Schema mode), or already
    /// written into the prompt by the engine (then a provider sends nothing more, and the answer
    /// may wrap the JSON in `<final_answer>` tags).
    pub delivery: SchemaDelivery,
}

/// How a requested schema reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaDelivery {
    /// The provider's own structured-output mode.
    Native,
    /// The prompt already asks for it.
    InPrompt,
}

/// Who is asking: used for scripting the simulated model, events and records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// The name of the node making the call.
    pub node: String,
    /// Where the node sits in the run (`flow/node`, with branch or item indices later).
    pub node_path: String,
    /// How many calls this run made earlier for a node of this name (re-asks included), so a
    /// script can answer the n-th call, also after the run was resumed in another process.
    pub call_index: u64,
    /// The run's index in its batch (the 0-based position of its input line), when it is one of
    /// a batch: a recording is replayed by run, so runs whose prompts are the same each get
    /// their own answers, whatever order they ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<u64>,
}

/// One request to a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation, in order.
    pub messages: Vec<ChatMessage>,
    /// The requested shape of the answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Tools offered to the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Tools the prompt's text lists, for a model called without native tool calling (WayFlow's
    /// Llama template): providers send nothing of them (the messages already describe them);
    /// the simulated model calls them as such a model does, with JSON in its text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_tools: Vec<ToolSpec>,
    /// How calls of the `prompt_tools` are written in the answer, when the prompt template reads
    /// them with a tool output parser: providers send nothing of it; the simulated model writes
    /// its calls so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_call_syntax: Option<CallSyntax>,
    /// The names a plain-text answer picks from, as the prompt lists them (a PluginChoiceNode's
    /// displayed names): providers send nothing of them; the simulated model answers with the
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_choices: Vec<String>,
    /// Generation parameters (`max_tokens`, `temperature`, `top_p`, extra keys), as the flow
    /// gives them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub generation: Map<String, Json>,
    /// Who is asking.
    #[serde(default)]
    pub meta: RequestMeta,
}

/// Tokens used by one call (or summed over several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

impl Usage {
    /// Adds another call's usage.
    pub fn add(&mut self, other: &Usage) {
        // Saturating: totals read back from a stored run state may be anything.
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
    }
}

/// A model's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The text (empty when the model answered with tool calls only).
    pub text: String,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Tokens used.
    pub usage: Usage,
}

/// Receives the text of an answer as it is generated.
pub type DeltaSink<'a> = &'a mut (dyn FnMut(&str) + Send);

/// A language model.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    /// A short name for messages and events: `simulated`, `openai-compatible http://...`.
    fn name(&self) -> &str;

    /// The endpoint whose provider-wide [`limit::Limiter`] the model's calls go through: the
    /// server's URL for HTTP providers. Calls of models sharing an endpoint share its limits.
    fn endpoint(&self) -> &str {
        self.name()
    }

    /// Answers a request.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Answers a request, handing text to `on_delta` as it arrives. Models that cannot stream
    /// hand over the whole text at once.
    async fn chat_streaming(&self, request: &ChatRequest, on_delta: DeltaSink<'_>) -> Result<ChatResponse, LlmError> {
        let response = self.chat(request).await?;
        on_delta(&response.text);
        Ok(response)
    }
}
