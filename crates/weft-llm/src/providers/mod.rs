//! Providers: the servers a [`crate::ChatModel`] can talk to, each in its own module, each behind
//! the small single-attempt interface [`Provider`].
//!
//! A provider knows its wire format and its HTTP details, and makes exactly one attempt per
//! [`Provider::attempt`]: it sends the request once and returns the answer, or an
//! [`AttemptError`] saying what the retry layer needs to know (how the retry policy should judge
//! the failure, the server's `Retry-After`, whether the server was throttling) and the text of
//! the message a caller will read. Retries, waits, jitter and limiter feedback are not a
//! provider's business: [`crate::retry::Retrying`] wraps any provider into a `ChatModel` and does
//! them the same way for all.
//!
//! - [`openai`]: OpenAI-compatible Chat Completions servers (OpenAI, vLLM, Ollama, llama.cpp...).

pub mod openai;

use std::time::Duration;

use weft_guard::Secrets;

use crate::retry::Cause;
use crate::{ChatRequest, ChatResponse, DeltaSink, LlmError};

/// One server speaking one protocol, one attempt at a time.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// A request as sent on the wire, encoded once for all the attempts of a call.
    type Payload: Send + Sync;

    /// A short name for messages and events: `openai-compatible http://...`.
    fn name(&self) -> &str;

    /// The endpoint whose [`crate::limit::Limiter`] the calls go through (the server's URL).
    fn endpoint(&self) -> &str;

    /// Secret values masked from every error message of this provider, whatever the server
    /// echoed (its key, its URL's credentials, and any the caller gave).
    fn secrets(&self) -> &Secrets;

    /// Encodes `request` for the wire; an error is final (nothing was sent).
    fn prepare(&self, request: &ChatRequest) -> Result<Self::Payload, LlmError>;

    /// Sends `payload` exactly once: no retry, no wait, no limiter.
    async fn attempt(&self, payload: &Self::Payload) -> Result<ChatResponse, AttemptError>;

    /// Encodes `request` for a streamed attempt; a provider that cannot stream encodes it as
    /// [`Provider::prepare`] does.
    fn prepare_streaming(&self, request: &ChatRequest) -> Result<Self::Payload, LlmError> {
        self.prepare(request)
    }

    /// Sends `payload` (from [`Provider::prepare_streaming`]) exactly once, handing the answer's
    /// text to `on_delta` as it arrives; a stream that ends early is a failed attempt. A
    /// provider that cannot stream hands over the whole text at once.
    async fn attempt_streaming(&self, payload: &Self::Payload, on_delta: DeltaSink<'_>) -> Result<ChatResponse, AttemptError> {
        let response = self.attempt(payload).await?;
        on_delta(&response.text);
        Ok(response)
    }
}

/// One failed attempt, as a provider reports it to the retry layer: the facts, from which
/// [`crate::retry::classify`] derives the [`crate::LlmErrorKind`] of the final error.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptError {
    /// How the retry policy judges the failure: a status and body, a transport or TLS failure,
    /// a timeout, an answer that is not a chat completion or is too large, a refused request.
    pub cause: Cause,
    /// How long the server asked to wait before the next attempt (`Retry-After`), when it did.
    pub retry_after: Option<Duration>,
    /// Whether the server said it was throttling (HTTP 429): the endpoint's limiter is told.
    pub throttled: bool,
    /// The provider's error type, code and message, as its error body says.
    pub provider: ProviderError,
    /// The server's request id (OpenAI's `x-request-id` header), when it answered with one.
    pub request_id: Option<String>,
    /// What happened, from the model's name on:
    /// `openai-compatible http://h/v1 (model m): HTTP 500 Internal Server Error: "..."`.
    pub message: String,
    /// What to do about it, closing the final error message.
    pub advice: String,
}

impl AttemptError {
    /// A failure of `cause` with no `Retry-After`, provider error or request id.
    pub fn new(cause: Cause, message: impl Into<String>, advice: impl Into<String>) -> AttemptError {
        let throttled = cause.status() == Some(429);
        AttemptError {
            cause,
            retry_after: None,
            throttled,
            provider: ProviderError::default(),
            request_id: None,
            message: message.into(),
            advice: advice.into(),
        }
    }
}

/// What a provider's error body says, each part when it says it (OpenAI's
/// `{"error": {"type", "code", "message"}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// The error type (`invalid_request_error`).
    pub kind: Option<String>,
    /// The error code (`context_length_exceeded`).
    pub code: Option<String>,
    /// The provider's message.
    pub message: Option<String>,
}
