//! What a [`crate::MockServer`] answers: reply rules, scripted replies and tool calls, faults.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

/// How a mock server behaves. Start from [`MockConfig::default`] and change what a test needs.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Waited before every answer.
    pub latency: Duration,
    /// The text of plain replies; `None` quotes the start of the last user message.
    pub text: Option<String>,
    /// Replies by request index (0-based, every chat-completions request counts), sent as the
    /// message content verbatim instead of the rule's reply.
    pub replies: BTreeMap<u64, String>,
    /// Tool-call replies by request index (they win over `replies` and the tool rule).
    pub call_replies: BTreeMap<u64, Vec<ScriptedCall>>,
    /// Whether and which tools are called when a request offers tools.
    pub tools: ToolReply,
    /// Make replies differ per request (strings and numbers of structured replies, a suffix of
    /// plain ones), drawn from `seed` and the request index; replies stay schema-valid.
    pub randomize: bool,
    /// Seeds randomized replies and random faults.
    pub seed: u64,
    /// Injected faults.
    pub faults: FaultPlan,
    /// When set, requests must carry `Authorization: Bearer <key>` (else 401).
    pub api_key: Option<String>,
    /// When set, the only model ids served (else 404 `model_not_found`); any id otherwise.
    pub models: Option<Vec<String>>,
    /// Top-level request fields accepted besides OpenAI's (servers such as vLLM take more).
    pub extra_fields: Vec<String>,
    /// Items per generated array.
    pub array_len: usize,
    /// Keep every request for [`crate::MockServer::requests`] (turn off for long benchmarks).
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            latency: Duration::ZERO,
            text: None,
            replies: BTreeMap::new(),
            call_replies: BTreeMap::new(),
            tools: ToolReply::Auto,
            randomize: false,
            seed: 0,
            faults: FaultPlan::default(),
            api_key: None,
            models: None,
            extra_fields: Vec::new(),
            array_len: 1,
            record: true,
        }
    }
}

impl MockConfig {
    /// Answers request `index` (0-based) with these tool calls.
    pub fn with_calls(mut self, index: u64, calls: Vec<ScriptedCall>) -> MockConfig {
        self.call_replies.insert(index, calls);
        self
    }

    /// Waits `latency` before every answer.
    pub fn with_latency(mut self, latency: Duration) -> MockConfig {
        self.latency = latency;
        self
    }

    /// Answers plain requests with `text`.
    pub fn with_text(mut self, text: impl Into<String>) -> MockConfig {
        self.text = Some(text.into());
        self
    }

    /// Answers request `index` with this content.
    pub fn with_reply(mut self, index: u64, content: impl Into<String>) -> MockConfig {
        self.replies.insert(index, content.into());
        self
    }

    /// Calls tools this way.
    pub fn with_tools(mut self, tools: ToolReply) -> MockConfig {
        self.tools = tools;
        self
    }

    /// Randomizes replies from `seed`.
    pub fn randomized(mut self, seed: u64) -> MockConfig {
        self.randomize = true;
        self.seed = seed;
        self
    }

    /// Seeds random faults (and randomized replies).
    pub fn with_seed(mut self, seed: u64) -> MockConfig {
        self.seed = seed;
        self
    }

    /// Injects `fault` into request `index`.
    pub fn with_fault(mut self, index: u64, fault: Fault) -> MockConfig {
        self.faults.at.insert(index, fault);
        self
    }

    /// Injects `fault` into each request with `probability` (drawn from the seed and the request
    /// index, so the same requests fail on every run).
    pub fn with_random_fault(mut self, probability: f64, fault: Fault) -> MockConfig {
        self.faults.random.push((probability, fault));
        self
    }

    /// Requires this API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> MockConfig {
        self.api_key = Some(key.into());
        self
    }

    /// Serves only these model ids.
    pub fn with_models<S: Into<String>>(mut self, models: impl IntoIterator<Item = S>) -> MockConfig {
        self.models = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// Accepts this top-level request field too.
    pub fn accepting(mut self, field: impl Into<String>) -> MockConfig {
        self.extra_fields.push(field.into());
        self
    }

    /// Keeps no requests (for long benchmarks).
    pub fn without_recording(mut self) -> MockConfig {
        self.record = false;
        self
    }
}

/// Whether a request offering tools gets tool calls.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolReply {
    /// Until the conversation holds tool results, call the tool `tool_choice` names, else the
    /// first function tool offered, with arguments generated from its parameters schema; then
    /// answer. `tool_choice: "none"` answers at once.
    Auto,
    /// Never call tools.
    Never,
    /// Round n of the conversation (n = assistant messages with tool calls so far) makes the
    /// n-th list of calls; rounds past the end answer.
    Script(Vec<Vec<ScriptedCall>>),
    /// An agent's model (the rule of `weft_llm::simulated`'s, decided from the request alone, so
    /// any number of conversations can be served at once): when the request offers an agent
    /// built-in (`submit_result`, `talk_to_user`, `end_conversation`), one call per turn of each
    /// other function tool the conversation has not called yet (by name, in offered order),
    /// arguments generated from its parameters; once all are called, `submit_result` with
    /// arguments generated from its parameters when it is offered, else text. A request offering
    /// no built-in is answered as [`ToolReply::Auto`] would.
    Agent,
}

/// A scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments (sent as their JSON text, or as they are when a string).
    pub arguments: Json,
    /// Its id (else `call_<request index>_<k>`).
    pub id: Option<String>,
}

impl ScriptedCall {
    /// The call with this id.
    pub fn with_id(mut self, id: impl Into<String>) -> ScriptedCall {
        self.id = Some(id.into());
        self
    }

    /// A call of `name` with `arguments`.
    pub fn new(name: impl Into<String>, arguments: Json) -> ScriptedCall {
        ScriptedCall { name: name.into(), arguments, id: None }
    }
}

/// Faults by request index, and random ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// The fault of request n (0-based); it wins over random faults.
    pub at: BTreeMap<u64, Fault>,
    /// Faults with their probabilities, tried in order with one draw per request.
    pub random: Vec<(f64, Fault)>,
}

/// A fault injected into one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 `rate_limit_exceeded`, with this `Retry-After` header value when given.
    RateLimit {
        /// The `Retry-After` value (seconds, or an HTTP date).
        retry_after: Option<String>,
    },
    /// 500 `server_error`.
    ServerError,
    /// 503, with this `Retry-After` header value when given.
    Unavailable {
        /// The `Retry-After` value.
        retry_after: Option<String>,
    },
    /// Waits this long, then answers normally (to run past a client's timeout).
    Slow(Duration),
    /// Closes the connection without answering.
    Reset,
    /// For a streamed request: the stream stops halfway through the answer (no
    /// `finish_reason`, no `[DONE]`), as when a connection breaks off mid-answer.
    CutStream,
    /// 200 with a body that is not JSON.
    InvalidJson,
    /// 200 with a reply that does not fit the requested schema (or is not JSON when none was
    /// requested).
    SchemaViolation,
    /// Any status with an OpenAI-style error body carrying `message`.
    Status {
        /// The HTTP status.
        status: u16,
        /// The error message.
        message: String,
    },
    /// Any status with an OpenAI-style error body of this type, code and message, as the API
    /// answers a forbidden model (403 `permission_error`), a prompt past the context (400
    /// `context_length_exceeded`) or a filtered prompt (400 `content_policy_violation`).
    ApiError {
        /// The HTTP status.
        status: u16,
        /// `error.type`.
        kind: String,
        /// `error.code`.
        code: Option<String>,
        /// `error.message`.
        message: String,
    },
    /// A server that echoes the request's credentials, as some proxies and gateways do: the
    /// `Authorization` header, the credential in it, Basic auth's `user:password` decoded, the
    /// credential URL-encoded and base64-encoded, in an OpenAI-style error body with this
    /// status (every field of it), in a `WWW-Authenticate: Basic realm=...` header and as the
    /// `x-request-id`; with status 200, as the content of a chat completion.
    EchoAuth {
        /// The HTTP status.
        status: u16,
    },
    /// A server that echoes the request's credential in a body that is not JSON (an HTML or
    /// text error page of a proxy): `offset` characters of text, the credential, then
    /// ` (end of the echoed credential)` and more text, with this status (200: a malformed
    /// completion).
    EchoAuthText {
        /// The HTTP status.
        status: u16,
        /// How many characters come before the credential.
        offset: usize,
    },
    /// 200 with a body of this many bytes (`None`: without end) that is not a completion;
    /// with `Content-Length` when `declared`, else chunked.
    Oversized {
        /// The body's size.
        bytes: Option<u64>,
        /// Whether `Content-Length` announces it.
        declared: bool,
    },
    /// A redirect (`status` 3xx) to `location`.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header.
        location: String,
    },
}

impl Fault {
    /// 429 with `Retry-After: <seconds>`.
    pub fn rate_limit(seconds: f64) -> Fault {
        Fault::RateLimit { retry_after: Some(format_seconds(seconds)) }
    }

    /// 400 `context_length_exceeded`, worded as the OpenAI API does.
    pub fn context_length_exceeded() -> Fault {
        Fault::ApiError {
            status: 400,
            kind: "invalid_request_error".into(),
            code: Some("context_length_exceeded".into()),
            message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.".into(),
        }
    }

    /// 403, as the API answers a key without access to the model.
    pub fn forbidden() -> Fault {
        Fault::ApiError {
            status: 403,
            kind: "permission_error".into(),
            code: Some("model_not_allowed".into()),
            message: "You are not allowed to use this model (injected by weft-testkit).".into(),
        }
    }

    /// A short name for counters and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::RateLimit { .. } => "rate_limit",
            Fault::ServerError => "server_error",
            Fault::Unavailable { .. } => "unavailable",
            Fault::Slow(_) => "slow",
            Fault::Reset => "reset",
            Fault::CutStream => "cut_stream",
            Fault::InvalidJson => "invalid_json",
            Fault::SchemaViolation => "schema_violation",
            Fault::Status { .. } => "status",
            Fault::ApiError { .. } => "api_error",
            Fault::EchoAuth { .. } => "echo_auth",
            Fault::EchoAuthText { .. } => "echo_auth_text",
            Fault::Oversized { .. } => "oversized",
            Fault::Redirect { .. } => "redirect",
        }
    }
}

fn format_seconds(seconds: f64) -> String {
    if seconds.fract() == 0.0 { format!("{}", seconds.max(0.0) as u64) } else { format!("{seconds}") }
}
