//! The record file's own types: what a line of a record file holds, written and read through
//! these types only, never through [`weft_llm`]'s or [`weft_tools`]' own serde forms.
//!
//! A recording outlives the build that wrote it, and its keys are hashes of a request's JSON, so
//! its shape must change only on purpose. [`weft_llm::ChatRequest`] and its parts are free to
//! change (a new field, a renamed variant) for the engine's and the providers' sake; here each
//! has a twin ([`RecordedRequest`], [`RecordedMessage`], [`RecordedResponse`]...) with the
//! shape of format version [`FORMAT_VERSION`], and the conversions from and to the `weft_llm`
//! types destructure every field, so a field added there does not compile here until someone
//! decides whether it belongs in the file (and so in the key). A change of these types is a
//! change of the format: bump [`FORMAT_VERSION`] and keep reading the old lines
//! (`tests/format.rs` pins the bytes of each kind of line and the key of a request).
//!
//! Every type reads leniently like the lines written before it existed: unknown members are
//! ignored, optional ones default.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::Duration;

use weft_llm::{
    ChatMessage, ChatRequest, ChatResponse, LlmError, LlmErrorInfo, LlmErrorKind, RequestMeta, ResponseFormat, Role, SchemaDelivery,
    ToolCall, ToolSpec, Usage,
};
use weft_tools::ToolError;

/// The `format` of the header line.
pub const FORMAT_NAME: &str = "weft-record";

/// The version of the record format written in the header line, and the highest one read.
///
/// - 1: the first format.
/// - 2: LLM lines of a batch's runs carry `"run"`, the run's index in the batch (its input
///   line's 0-based position), and are matched by run on replay. Version 1 files are read as
///   they were written: their lines have no run and are matched by node path, key and
///   occurrence alone.
/// - 3: lines of kind `http`, the requests of ApiNodes and RemoteTools ([`HttpLine`]). Files of
///   versions 1 and 2 have none and are read as they were.
/// - 4: lines of kind `mcp`, the listings and calls of MCP tools and toolboxes ([`McpLine`]).
///   Files of versions 1 to 3 have none and are read as they were.
pub const FORMAT_VERSION: u64 = 4;

/// The first line of a record file: `{"kind":"header","format":"weft-record","version":4}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "header")]
pub struct Header {
    /// [`FORMAT_NAME`].
    pub format: String,
    /// The format version the file was written in ([`FORMAT_VERSION`] when this build wrote it).
    pub version: u64,
}

impl Header {
    /// The header this build writes.
    pub fn current() -> Header {
        Header { format: FORMAT_NAME.to_owned(), version: FORMAT_VERSION }
    }
}

/// A recorded LLM exchange: one line of kind `llm`, written by [`crate::llm::Recorder`].
///
/// ```json
/// {"kind":"llm","key":"<sha-256>","run":3,"node_path":"root/work","occurrence":1,"model":"simulated",
///  "request":{…},"response":{…}}
/// ```
///
/// with `"error":{…}` in place of `"response"` for a failed call, and no `"run"` outside a
/// batch (and in files of format 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "llm")]
pub struct LlmLine {
    /// The request's key ([`RecordedRequest::key_content`], secrets redacted).
    pub key: String,
    /// The run's index in its batch, for a call of a batch's run (format 2): with the node
    /// path, the scope of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// The calling node's path (the scope of the key).
    pub node_path: String,
    /// The n-th call with this key at this node path (in this run) (from 1).
    pub occurrence: u64,
    /// The model's name.
    pub model: String,
    /// The request.
    pub request: RecordedRequest,
    /// The answer of a call that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
    /// The error of a call that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
}

/// A recorded tool exchange: one line of kind `tool`, written by
/// [`crate::tools::RecordingTool`].
///
/// ```json
/// {"kind":"tool","key":"<sha-256>","tool":"search","occurrence":1,"args":{…},"result":…}
/// ```
///
/// with `"error":{…}` in place of `"result"` for a failed call. A result of `null` is written
/// (`"result":null`), so it is told apart from a missing one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "tool")]
pub struct ToolLine {
    /// The key of the arguments (secrets redacted).
    pub key: String,
    /// The tool's name (the scope of the key).
    pub tool: String,
    /// The n-th call with this key of this tool (from 1).
    pub occurrence: u64,
    /// The arguments, keyed by input title.
    pub args: Map<String, Json>,
    /// The result of a call that succeeded (`Some(null)` for a `null` result).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub result: Option<Json>,
    /// The error of a call that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedToolError>,
}

/// A recorded HTTP exchange of an ApiNode or a RemoteTool: one line of kind `http`, written by
/// [`crate::http::HttpRecorder`] (format 3).
///
/// ```json
/// {"kind":"http","key":"<sha-256>","run":3,"node_path":"root/api","occurrence":1,
///  "request":{"method":"GET","url":"https://…","headers":[["Accept","application/json"]]},
///  "response":{"status":200,"body":"…","attempts":1}}
/// ```
///
/// with `"error":{…}` in place of `"response"` when no answer came. The request's sensitive
/// headers are never part of a line (nor of its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "http")]
pub struct HttpLine {
    /// The request's key ([`RecordedHttpRequest::key_content`], secrets redacted).
    pub key: String,
    /// The run's index in its batch, for a request of a batch's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// The calling node's path (the scope of the key).
    pub node_path: String,
    /// The n-th request with this key at this node path (in this run) (from 1).
    pub occurrence: u64,
    /// The request.
    pub request: RecordedHttpRequest,
    /// The last answer, whatever its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedHttpResponse>,
    /// Why no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedHttpError>,
}

/// A recorded MCP request of a document's tool or toolbox: one line of kind `mcp` (format 4),
/// written by [`crate::mcp::McpRecorder`] after the request's retries.
///
/// ```json
/// {"kind":"mcp","key":"<sha-256>","node_path":"flow/weather","occurrence":1,
///  "request":{"server":"http http://127.0.0.1:8000/mcp","method":"tools/call","tool":"echo","arguments":{"text":"hi"}},
///  "attempts":1,"response":{"result":{"content":[…],"isError":false}}}
/// ```
///
/// with `"response":{"tools":[…]}` for a listing and `"error":{…}` (a [`RecordedToolError`]) in
/// place of `"response"` when no answer came. The server is named without its headers (the
/// transport's headers and sensitive headers are never part of a line nor of its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "mcp")]
pub struct McpLine {
    /// The request's key ([`RecordedMcpRequest::key_content`], secrets redacted).
    pub key: String,
    /// The run's index in its batch, for a request of a batch's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// The calling node's path (the scope of the key).
    pub node_path: String,
    /// The n-th request with this key at this node path (in this run) (from 1).
    pub occurrence: u64,
    /// The request.
    pub request: RecordedMcpRequest,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedMcpAnswer>,
    /// Why no answer came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedToolError>,
}

/// An MCP request as recorded: the server as shown ([`weft_tools::mcp::Server::shown`]), the
/// method, and a call's tool and arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedMcpRequest {
    /// `http <url>`, `sse <url>` or `stdio <command> <args>`.
    pub server: String,
    /// `tools/list` or `tools/call`.
    pub method: String,
    /// The tool called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Map<String, Json>>,
}

impl RecordedMcpRequest {
    /// What determines the answer, hashed into the key: the request as recorded.
    pub fn key_content(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

impl From<&weft_tools::mcp::McpRequest> for RecordedMcpRequest {
    fn from(r: &weft_tools::mcp::McpRequest) -> RecordedMcpRequest {
        // The retry policy and the meta (the line's scope) are not part of the request.
        let weft_tools::mcp::McpRequest { server, op, retry: _, meta: _ } = r;
        let (tool, arguments) = match op {
            weft_tools::mcp::McpOp::List => (None, None),
            weft_tools::mcp::McpOp::Call { tool, arguments } => (Some(tool.clone()), Some(arguments.clone())),
        };
        RecordedMcpRequest { server: server.shown.clone(), method: r.method().to_owned(), tool, arguments }
    }
}

/// An MCP answer as recorded: a listing's tools or a call's result in its wire form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedMcpAnswer {
    /// The tools listed, in the server's order.
    Tools(Vec<RecordedListedTool>),
    /// A call's result (`content`, `structuredContent`, `isError`).
    Result(Json),
}

/// A listed tool as recorded (its wire form's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedListedTool {
    /// `name`.
    pub name: String,
    /// `description`.
    #[serde(default)]
    pub description: String,
    /// `inputSchema`.
    #[serde(rename = "inputSchema")]
    pub input_schema: Json,
    /// `outputSchema`.
    #[serde(rename = "outputSchema", default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Json>,
}

impl From<&weft_tools::mcp::McpAnswer> for RecordedMcpAnswer {
    fn from(a: &weft_tools::mcp::McpAnswer) -> RecordedMcpAnswer {
        match a {
            weft_tools::mcp::McpAnswer::Listed(tools) => RecordedMcpAnswer::Tools(
                tools
                    .iter()
                    .map(|t| {
                        let weft_tools::mcp::ListedTool { name, description, input_schema, output_schema } = t;
                        RecordedListedTool {
                            name: name.clone(),
                            description: description.clone(),
                            input_schema: input_schema.clone(),
                            output_schema: output_schema.clone(),
                        }
                    })
                    .collect(),
            ),
            weft_tools::mcp::McpAnswer::Called(result) => RecordedMcpAnswer::Result(result.clone()),
        }
    }
}

impl From<RecordedMcpAnswer> for weft_tools::mcp::McpAnswer {
    fn from(a: RecordedMcpAnswer) -> weft_tools::mcp::McpAnswer {
        match a {
            RecordedMcpAnswer::Tools(tools) => weft_tools::mcp::McpAnswer::Listed(
                tools
                    .into_iter()
                    .map(|t| {
                        let RecordedListedTool { name, description, input_schema, output_schema } = t;
                        weft_tools::mcp::ListedTool { name, description, input_schema, output_schema }
                    })
                    .collect(),
            ),
            RecordedMcpAnswer::Result(result) => weft_tools::mcp::McpAnswer::Called(result),
        }
    }
}

/// An HTTP request as recorded: everything but its sensitive headers and its retry rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedHttpRequest {
    /// The method.
    pub method: String,
    /// The URL as rendered from the document (before `--http-rewrite`).
    pub url: String,
    /// The headers, in order, as `[name, value]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The body, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl RecordedHttpRequest {
    /// What determines the answer, hashed into the key: the request as recorded.
    pub fn key_content(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

impl From<&weft_llm::http::HttpRequest> for RecordedHttpRequest {
    fn from(r: &weft_llm::http::HttpRequest) -> RecordedHttpRequest {
        let weft_llm::http::HttpRequest { method, url, headers, sensitive_headers: _, body, retry: _, meta: _ } = r;
        RecordedHttpRequest { method: method.clone(), url: url.clone(), headers: headers.clone(), body: body.clone() }
    }
}

/// An HTTP answer as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHttpResponse {
    /// The status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// A redirect's `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// Where `--http-rewrite` sent the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<String>,
}

impl From<&weft_llm::http::HttpResponse> for RecordedHttpResponse {
    fn from(r: &weft_llm::http::HttpResponse) -> RecordedHttpResponse {
        let weft_llm::http::HttpResponse { status, body, location, attempts, rewritten } = r;
        RecordedHttpResponse {
            status: *status,
            body: body.clone(),
            location: location.clone(),
            attempts: *attempts,
            rewritten: rewritten.clone(),
        }
    }
}

impl From<RecordedHttpResponse> for weft_llm::http::HttpResponse {
    fn from(r: RecordedHttpResponse) -> weft_llm::http::HttpResponse {
        let RecordedHttpResponse { status, body, location, attempts, rewritten } = r;
        weft_llm::http::HttpResponse { status, body, location, attempts, rewritten }
    }
}

/// Why an HTTP request got no answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHttpError {
    /// The kind ([`weft_llm::http::HttpErrorKind::as_str`]).
    pub kind: String,
    /// The message.
    pub message: String,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
}

impl From<&weft_llm::http::HttpError> for RecordedHttpError {
    fn from(e: &weft_llm::http::HttpError) -> RecordedHttpError {
        let weft_llm::http::HttpError { kind, message, attempts, rewritten: _ } = e;
        RecordedHttpError { kind: kind.as_str().to_owned(), message: message.clone(), attempts: *attempts }
    }
}

impl From<RecordedHttpError> for weft_llm::http::HttpError {
    fn from(e: RecordedHttpError) -> weft_llm::http::HttpError {
        let RecordedHttpError { kind, message, attempts } = e;
        weft_llm::http::HttpError { kind: weft_llm::http::HttpErrorKind::from_name(&kind), message, attempts, rewritten: None }
    }
}

/// `Some` for a present member, `null` included.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// A request as recorded ([`ChatRequest`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The conversation, in order.
    pub messages: Vec<RecordedMessage>,
    /// The requested shape of the answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<RecordedResponseFormat>,
    /// Tools offered to the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<RecordedToolSpec>,
    /// Generation parameters, as the flow gives them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub generation: Map<String, Json>,
    /// Who asked (not part of the key).
    #[serde(default)]
    pub meta: RecordedMeta,
}

impl RecordedRequest {
    /// What determines the answer, as hashed into the key: the request without its `meta`
    /// (`call_index` depends on scheduling, and the node path is the key's scope).
    pub fn key_content(&self) -> Json {
        let mut content = serde_json::to_value(self).unwrap_or(Json::Null);
        if let Json::Object(members) = &mut content {
            members.remove("meta");
        }
        content
    }
}

/// A message as recorded ([`ChatMessage`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedMessage {
    /// Who speaks.
    pub role: RecordedRole,
    /// The text.
    pub content: String,
    /// More text parts, after the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// Images, as base64 data or URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Tool calls the assistant made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<RecordedToolCall>,
    /// The call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A chat role as recorded ([`Role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedRole {
    /// `system`.
    System,
    /// `user`.
    User,
    /// `assistant`.
    Assistant,
    /// `tool`.
    Tool,
}

/// A tool call as recorded ([`ToolCall`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedToolCall {
    /// The call's id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments.
    pub arguments: Json,
}

/// A tool offered to the model, as recorded ([`ToolSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub parameters: Arc<Json>,
}

/// A requested shape of the answer, as recorded ([`ResponseFormat`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponseFormat {
    /// The schema's name.
    pub name: String,
    /// The JSON Schema.
    pub schema: Arc<Json>,
    /// Whether the provider was asked to enforce it strictly.
    pub strict: bool,
    /// How the schema reached the model.
    pub delivery: RecordedSchemaDelivery,
}

/// How a requested schema reached the model, as recorded ([`SchemaDelivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedSchemaDelivery {
    /// `native`.
    Native,
    /// `in_prompt`.
    InPrompt,
}

/// Who asked, as recorded ([`RequestMeta`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedMeta {
    /// The calling node's name.
    pub node: String,
    /// The calling node's path.
    pub node_path: String,
    /// How many calls the run made earlier for a node of this name.
    pub call_index: u64,
}

/// An answer as recorded ([`ChatResponse`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedResponse {
    /// The text.
    pub text: String,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<RecordedToolCall>,
    /// Tokens used.
    pub usage: RecordedUsage,
}

/// Tokens as recorded ([`Usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

/// A failed LLM call as recorded ([`LlmErrorInfo`]). Lines written before kinds existed
/// (`{"kind": "transient" | "permanent", "message"}`) read as `transient` and `other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    /// What kind of failure.
    pub kind: RecordedErrorKind,
    /// The HTTP status of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// The provider's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// The provider's own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
    /// The provider's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The error's message.
    pub message: String,
}

/// The kind of a failed LLM call as recorded ([`LlmErrorKind`], spelt the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "each is the LlmErrorKind of the same name")]
pub enum RecordedErrorKind {
    RateLimited,
    QuotaExceeded,
    /// Also `transient` of the lines written before kinds existed.
    Transient,
    TimedOut,
    Authentication,
    Permission,
    BadRequest,
    ContextTooLong,
    ContentFiltered,
    ModelNotFound,
    Cancelled,
    InvalidResponse,
    ResponseTooLarge,
    Refused,
    /// Also `permanent` of the lines written before kinds existed, and a kind this format has no
    /// name for yet.
    #[serde(alias = "permanent")]
    Other,
}

/// A failed tool call as recorded ([`ToolError`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordedToolError {
    /// The tool failed (`{"kind":"failed","message":…}`).
    Failed {
        /// Its message.
        message: String,
    },
    /// A command exited unsuccessfully (`{"kind":"exited","message":…,"said":…}`).
    Exited {
        /// Its message.
        message: String,
        /// Its trimmed stderr, or its exit status.
        said: String,
    },
    /// The tool did not finish in time (`{"kind":"timeout","after_s":…}`).
    Timeout {
        /// After how many seconds.
        after_s: f64,
    },
    /// The tool printed more than its cap (`{"kind":"output_too_large","limit_bytes":…}`).
    OutputTooLarge {
        /// The cap.
        limit_bytes: u64,
    },
    /// The tool's output was not what it should be (`{"kind":"bad_output","message":…}`).
    BadOutput {
        /// Its message.
        message: String,
    },
    /// The tool could not be called (`{"kind":"unavailable","message":…}`).
    Unavailable {
        /// Its message.
        message: String,
    },
}

// Conversions from and to the weft_llm and weft_tools types. Each destructures every field, so a
// field added to a weft_llm type stops the build here until the record format decides about it.

impl From<&ChatRequest> for RecordedRequest {
    fn from(request: &ChatRequest) -> Self {
        // `prompt_tools`, `prompt_call_syntax` and `prompt_choices` are in the messages already:
        // the record keeps them there.
        let ChatRequest { messages, response_format, tools, prompt_tools: _, prompt_call_syntax: _, prompt_choices: _, generation, meta } =
            request;
        RecordedRequest {
            messages: messages.iter().map(RecordedMessage::from).collect(),
            response_format: response_format.as_ref().map(RecordedResponseFormat::from),
            tools: tools.iter().map(RecordedToolSpec::from).collect(),
            generation: generation.clone(),
            meta: RecordedMeta::from(meta),
        }
    }
}

impl From<RecordedRequest> for ChatRequest {
    fn from(request: RecordedRequest) -> Self {
        let RecordedRequest { messages, response_format, tools, generation, meta } = request;
        ChatRequest {
            messages: messages.into_iter().map(ChatMessage::from).collect(),
            response_format: response_format.map(ResponseFormat::from),
            tools: tools.into_iter().map(ToolSpec::from).collect(),
            prompt_tools: Vec::new(),
            prompt_call_syntax: None,
            prompt_choices: Vec::new(),
            generation,
            meta: RequestMeta::from(meta),
        }
    }
}

impl From<&ChatMessage> for RecordedMessage {
    fn from(message: &ChatMessage) -> Self {
        let ChatMessage { role, content, parts, images, tool_calls, tool_call_id } = message;
        RecordedMessage {
            role: RecordedRole::from(*role),
            content: content.clone(),
            parts: parts.clone(),
            images: images.clone(),
            tool_calls: tool_calls.iter().map(RecordedToolCall::from).collect(),
            tool_call_id: tool_call_id.clone(),
        }
    }
}

impl From<RecordedMessage> for ChatMessage {
    fn from(message: RecordedMessage) -> Self {
        let RecordedMessage { role, content, parts, images, tool_calls, tool_call_id } = message;
        ChatMessage {
            role: Role::from(role),
            content,
            parts,
            images,
            tool_calls: tool_calls.into_iter().map(ToolCall::from).collect(),
            tool_call_id,
        }
    }
}

impl From<Role> for RecordedRole {
    fn from(role: Role) -> Self {
        match role {
            Role::System => RecordedRole::System,
            Role::User => RecordedRole::User,
            Role::Assistant => RecordedRole::Assistant,
            Role::Tool => RecordedRole::Tool,
        }
    }
}

impl From<RecordedRole> for Role {
    fn from(role: RecordedRole) -> Self {
        match role {
            RecordedRole::System => Role::System,
            RecordedRole::User => Role::User,
            RecordedRole::Assistant => Role::Assistant,
            RecordedRole::Tool => Role::Tool,
        }
    }
}

impl From<&ToolCall> for RecordedToolCall {
    fn from(call: &ToolCall) -> Self {
        let ToolCall { id, name, arguments } = call;
        RecordedToolCall { id: id.clone(), name: name.clone(), arguments: arguments.clone() }
    }
}

impl From<RecordedToolCall> for ToolCall {
    fn from(call: RecordedToolCall) -> Self {
        let RecordedToolCall { id, name, arguments } = call;
        ToolCall { id, name, arguments }
    }
}

impl From<&ToolSpec> for RecordedToolSpec {
    fn from(spec: &ToolSpec) -> Self {
        let ToolSpec { name, description, parameters } = spec;
        RecordedToolSpec { name: name.clone(), description: description.clone(), parameters: parameters.clone() }
    }
}

impl From<RecordedToolSpec> for ToolSpec {
    fn from(spec: RecordedToolSpec) -> Self {
        let RecordedToolSpec { name, description, parameters } = spec;
        ToolSpec { name, description, parameters }
    }
}

impl From<&ResponseFormat> for RecordedResponseFormat {
    fn from(format: &ResponseFormat) -> Self {
        let ResponseFormat { name, schema, strict, delivery } = format;
        RecordedResponseFormat {
            name: name.clone(),
            schema: schema.clone(),
            strict: *strict,
            delivery: RecordedSchemaDelivery::from(*delivery),
        }
    }
}

impl From<RecordedResponseFormat> for ResponseFormat {
    fn from(format: RecordedResponseFormat) -> Self {
        let RecordedResponseFormat { name, schema, strict, delivery } = format;
        ResponseFormat { name, schema, strict, delivery: SchemaDelivery::from(delivery) }
    }
}

impl From<SchemaDelivery> for RecordedSchemaDelivery {
    fn from(delivery: SchemaDelivery) -> Self {
        match delivery {
            SchemaDelivery::Native => RecordedSchemaDelivery::Native,
            SchemaDelivery::InPrompt => RecordedSchemaDelivery::InPrompt,
        }
    }
}

impl From<RecordedSchemaDelivery> for SchemaDelivery {
    fn from(delivery: RecordedSchemaDelivery) -> Self {
        match delivery {
            RecordedSchemaDelivery::Native => SchemaDelivery::Native,
            RecordedSchemaDelivery::InPrompt => SchemaDelivery::InPrompt,
        }
    }
}

impl From<&RequestMeta> for RecordedMeta {
    fn from(meta: &RequestMeta) -> Self {
        // The batch index is the line's own `run`, not part of the request.
        let RequestMeta { node, node_path, call_index, batch_index: _ } = meta;
        RecordedMeta { node: node.clone(), node_path: node_path.clone(), call_index: *call_index }
    }
}

impl From<RecordedMeta> for RequestMeta {
    fn from(meta: RecordedMeta) -> Self {
        let RecordedMeta { node, node_path, call_index } = meta;
        RequestMeta { node, node_path, call_index, batch_index: None }
    }
}

impl From<&ChatResponse> for RecordedResponse {
    fn from(response: &ChatResponse) -> Self {
        let ChatResponse { text, tool_calls, usage } = response;
        RecordedResponse {
            text: text.clone(),
            tool_calls: tool_calls.iter().map(RecordedToolCall::from).collect(),
            usage: RecordedUsage::from(*usage),
        }
    }
}

impl From<RecordedResponse> for ChatResponse {
    fn from(response: RecordedResponse) -> Self {
        let RecordedResponse { text, tool_calls, usage } = response;
        ChatResponse { text, tool_calls: tool_calls.into_iter().map(ToolCall::from).collect(), usage: Usage::from(usage) }
    }
}

impl From<Usage> for RecordedUsage {
    fn from(usage: Usage) -> Self {
        let Usage { input_tokens, output_tokens, cached_tokens } = usage;
        RecordedUsage { input_tokens, output_tokens, cached_tokens }
    }
}

impl From<RecordedUsage> for Usage {
    fn from(usage: RecordedUsage) -> Self {
        let RecordedUsage { input_tokens, output_tokens, cached_tokens } = usage;
        Usage { input_tokens, output_tokens, cached_tokens }
    }
}

impl From<&LlmErrorInfo> for RecordedError {
    fn from(error: &LlmErrorInfo) -> Self {
        let LlmErrorInfo { kind, status, provider_type, provider_code, provider_message, request_id, message } = error;
        RecordedError {
            kind: RecordedErrorKind::from(*kind),
            status: *status,
            provider_type: provider_type.clone(),
            provider_code: provider_code.clone(),
            provider_message: provider_message.clone(),
            request_id: request_id.clone(),
            message: message.clone(),
        }
    }
}

impl From<RecordedError> for LlmErrorInfo {
    fn from(error: RecordedError) -> Self {
        let RecordedError { kind, status, provider_type, provider_code, provider_message, request_id, message } = error;
        LlmErrorInfo { kind: LlmErrorKind::from(kind), status, provider_type, provider_code, provider_message, request_id, message }
    }
}

impl From<RecordedError> for LlmError {
    fn from(error: RecordedError) -> Self {
        LlmErrorInfo::from(error).into()
    }
}

impl From<LlmErrorKind> for RecordedErrorKind {
    fn from(kind: LlmErrorKind) -> Self {
        match kind {
            LlmErrorKind::RateLimited => RecordedErrorKind::RateLimited,
            LlmErrorKind::QuotaExceeded => RecordedErrorKind::QuotaExceeded,
            LlmErrorKind::Transient => RecordedErrorKind::Transient,
            LlmErrorKind::TimedOut => RecordedErrorKind::TimedOut,
            LlmErrorKind::Authentication => RecordedErrorKind::Authentication,
            LlmErrorKind::Permission => RecordedErrorKind::Permission,
            LlmErrorKind::BadRequest => RecordedErrorKind::BadRequest,
            LlmErrorKind::ContextTooLong => RecordedErrorKind::ContextTooLong,
            LlmErrorKind::ContentFiltered => RecordedErrorKind::ContentFiltered,
            LlmErrorKind::ModelNotFound => RecordedErrorKind::ModelNotFound,
            LlmErrorKind::Cancelled => RecordedErrorKind::Cancelled,
            LlmErrorKind::InvalidResponse => RecordedErrorKind::InvalidResponse,
            LlmErrorKind::ResponseTooLarge => RecordedErrorKind::ResponseTooLarge,
            LlmErrorKind::Refused => RecordedErrorKind::Refused,
            LlmErrorKind::Other => RecordedErrorKind::Other,
            // `LlmErrorKind` is `#[non_exhaustive]`: a kind added later is recorded as `other`
            // (its message kept) until the format gets a name for it.
            _ => RecordedErrorKind::Other,
        }
    }
}

impl From<RecordedErrorKind> for LlmErrorKind {
    fn from(kind: RecordedErrorKind) -> Self {
        match kind {
            RecordedErrorKind::RateLimited => LlmErrorKind::RateLimited,
            RecordedErrorKind::QuotaExceeded => LlmErrorKind::QuotaExceeded,
            RecordedErrorKind::Transient => LlmErrorKind::Transient,
            RecordedErrorKind::TimedOut => LlmErrorKind::TimedOut,
            RecordedErrorKind::Authentication => LlmErrorKind::Authentication,
            RecordedErrorKind::Permission => LlmErrorKind::Permission,
            RecordedErrorKind::BadRequest => LlmErrorKind::BadRequest,
            RecordedErrorKind::ContextTooLong => LlmErrorKind::ContextTooLong,
            RecordedErrorKind::ContentFiltered => LlmErrorKind::ContentFiltered,
            RecordedErrorKind::ModelNotFound => LlmErrorKind::ModelNotFound,
            RecordedErrorKind::Cancelled => LlmErrorKind::Cancelled,
            RecordedErrorKind::InvalidResponse => LlmErrorKind::InvalidResponse,
            RecordedErrorKind::ResponseTooLarge => LlmErrorKind::ResponseTooLarge,
            RecordedErrorKind::Refused => LlmErrorKind::Refused,
            RecordedErrorKind::Other => LlmErrorKind::Other,
        }
    }
}

impl From<&ToolError> for RecordedToolError {
    fn from(error: &ToolError) -> Self {
        match error {
            ToolError::Failed { message } => RecordedToolError::Failed { message: message.clone() },
            ToolError::Exited { message, said } => RecordedToolError::Exited { message: message.clone(), said: said.clone() },
            ToolError::Timeout { after } => RecordedToolError::Timeout { after_s: after.as_secs_f64() },
            ToolError::OutputTooLarge { limit } => RecordedToolError::OutputTooLarge { limit_bytes: *limit },
            ToolError::BadOutput { message } => RecordedToolError::BadOutput { message: message.clone() },
            ToolError::Unavailable { message } => RecordedToolError::Unavailable { message: message.clone() },
        }
    }
}

impl From<RecordedToolError> for ToolError {
    fn from(error: RecordedToolError) -> Self {
        match error {
            RecordedToolError::Failed { message } => ToolError::Failed { message },
            RecordedToolError::Exited { message, said } => ToolError::Exited { message, said },
            RecordedToolError::Timeout { after_s } => {
                ToolError::Timeout { after: Duration::try_from_secs_f64(after_s).unwrap_or_default() }
            }
            RecordedToolError::OutputTooLarge { limit_bytes } => ToolError::OutputTooLarge { limit: limit_bytes },
            RecordedToolError::BadOutput { message } => ToolError::BadOutput { message },
            RecordedToolError::Unavailable { message } => ToolError::Unavailable { message },
        }
    }
}
