//! Why an LLM call failed, as data: [`LlmError`] carries a closed [`LlmErrorKind`] saying what
//! to do next, the HTTP status, the provider's error type and code, the request id and the
//! message, so a caller tells a rate limit from a bad key or a prompt too long without reading
//! text. The retry layer classifies every provider's failures the same way
//! ([`crate::retry::classify`]).

use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// What kind of failure stopped an LLM call, and so what to do next ([`LlmErrorKind::advice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LlmErrorKind {
    /// The provider throttled the calls (HTTP 429, 409): run fewer calls at once or try later.
    RateLimited,
    /// The account has no quota left (429 `insufficient_quota`): check the plan and billing.
    QuotaExceeded,
    /// The server failed or the connection was lost (5xx, reset, refused connection): try again
    /// later. Also how recordings written before kinds existed read their transient errors.
    Transient,
    /// No answer in time (the request timeout, HTTP 408): try later or raise the timeout.
    TimedOut,
    /// The server did not accept the credentials (HTTP 401): check the API key.
    Authentication,
    /// The credentials have no access to this model or endpoint (HTTP 403): check permissions.
    Permission,
    /// The server refused the request (other 4xx): fix the request (model id, parameters).
    BadRequest,
    /// The prompt is longer than the model's context (`context_length_exceeded`): shorten the
    /// prompt or the history, or use a model with a longer context.
    ContextTooLong,
    /// The provider's content filter blocked the prompt or the answer (`content_filter`,
    /// `content_policy_violation`): change the prompt.
    ContentFiltered,
    /// No such model or endpoint (HTTP 404, `model_not_found`): check the model id and the URL.
    ModelNotFound,
    /// The call was cancelled by the caller: nothing to do.
    Cancelled,
    /// The server answered but not with a chat completion: check the URL points at an
    /// OpenAI-compatible chat-completions endpoint (may pass: a proxy's glitch).
    InvalidResponse,
    /// The answer was larger than the most weft reads: check the URL.
    ResponseTooLarge,
    /// Nothing was sent: the egress policy refuses the host (`--allow-host`).
    Refused,
    /// Anything else (TLS failures, redirects, HTTP 501, recordings without the call): read the
    /// message. Also how recordings written before kinds existed read their permanent errors.
    #[serde(alias = "permanent")]
    Other,
}

impl LlmErrorKind {
    /// Whether the failure may pass by itself, so the same call may succeed later (what
    /// `LlmError::Transient` meant before kinds).
    pub fn is_transient(self) -> bool {
        matches!(self, LlmErrorKind::RateLimited | LlmErrorKind::Transient | LlmErrorKind::TimedOut | LlmErrorKind::InvalidResponse)
    }

    /// What to do next, in a few words.
    pub fn advice(self) -> &'static str {
        match self {
            LlmErrorKind::RateLimited => "run fewer calls at once or try again later",
            LlmErrorKind::QuotaExceeded => "the account has no quota left: check the provider's plan and billing",
            LlmErrorKind::Transient => "try again later",
            LlmErrorKind::TimedOut => "try again later, or raise the request timeout",
            LlmErrorKind::Authentication => "check the API key",
            LlmErrorKind::Permission => "check the API key's permissions for this model and endpoint",
            LlmErrorKind::BadRequest => "fix the request: check the model id and the generation parameters",
            LlmErrorKind::ContextTooLong => "shorten the prompt or the history, or use a model with a longer context",
            LlmErrorKind::ContentFiltered => "the provider's content filter blocked the call: change the prompt",
            LlmErrorKind::ModelNotFound => "check the model id and the url",
            LlmErrorKind::Cancelled => "the call was cancelled: nothing to do",
            LlmErrorKind::InvalidResponse => "check that the url is an OpenAI-compatible chat-completions endpoint",
            LlmErrorKind::ResponseTooLarge => "check that the url is an OpenAI-compatible chat-completions endpoint",
            LlmErrorKind::Refused => "allow the host (--allow-host) or use another endpoint",
            LlmErrorKind::Other => "see the message",
        }
    }
}

/// The data of an [`LlmError`]: plain, comparable and serializable (record files keep it).
/// Every text is masked of the provider's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmErrorInfo {
    /// What kind of failure, so what to do next.
    pub kind: LlmErrorKind,
    /// The HTTP status of the last attempt, when the server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's error type (`error.type` of an OpenAI-style body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// The provider's error code (`error.code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    /// The provider's own message (`error.message`, or an excerpt of a body that is not JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
    /// The `x-request-id` response header, for the provider's support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What happened, how many attempts were made and what to do: the error's `Display`.
    pub message: String,
}

impl LlmErrorInfo {
    /// An error of `kind` saying `message`, with no HTTP details.
    pub fn new(kind: LlmErrorKind, message: impl Into<String>) -> LlmErrorInfo {
        LlmErrorInfo {
            kind,
            status: None,
            provider_type: None,
            provider_code: None,
            provider_message: None,
            request_id: None,
            message: message.into(),
        }
    }

    /// Whether the failure may pass by itself ([`LlmErrorKind::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// What to do next ([`LlmErrorKind::advice`]).
    pub fn advice(&self) -> &'static str {
        self.kind.advice()
    }
}

/// Why a call failed: an [`LlmErrorInfo`] (read its fields through `Deref`), boxed so results
/// stay small. Its `Display` is the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.message)]
pub struct LlmError(Box<LlmErrorInfo>);

impl LlmError {
    /// An error of `kind` saying `message`, with no HTTP details.
    pub fn new(kind: LlmErrorKind, message: impl Into<String>) -> LlmError {
        LlmError(Box::new(LlmErrorInfo::new(kind, message)))
    }

    /// The error's data.
    pub fn info(&self) -> &LlmErrorInfo {
        &self.0
    }

    /// The error's data, owned.
    pub fn into_info(self) -> LlmErrorInfo {
        *self.0
    }
}

impl Deref for LlmError {
    type Target = LlmErrorInfo;

    fn deref(&self) -> &LlmErrorInfo {
        &self.0
    }
}

impl From<LlmErrorInfo> for LlmError {
    fn from(info: LlmErrorInfo) -> LlmError {
        LlmError(Box::new(info))
    }
}
