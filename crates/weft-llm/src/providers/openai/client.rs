//! The HTTP side of the OpenAI-compatible provider: [`OpenAiClient`] posts one request to
//! `{base}/chat/completions` per [`Provider::attempt`] and reports a failure with what the retry
//! layer needs (status and body, `Retry-After`, throttling) and a message that says what
//! happened and what to do.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value as Json;

use weft_guard::egress::{Target, credentials, without_credentials};
use weft_guard::{EgressPolicy, Secrets};

use super::stream::{self, Stream};
use super::{API_KEY_ENV, OpenAiOptions, StructuredMode, http_client, url, wire};
use crate::body::{BodyError, size};
use crate::providers::{AttemptError, Provider, ProviderError};
use crate::retry::{Cause, parse_retry_after};
use crate::{ChatRequest, ChatResponse, DeltaSink, LlmError, LlmErrorKind};

/// One OpenAI-compatible Chat Completions endpoint, one attempt at a time: the [`Provider`] behind
/// [`super::OpenAiModel`].
pub struct OpenAiClient {
    name: String,
    request_url: String,
    base_url: String,
    model: String,
    /// The `Authorization` header: `Bearer <key>`, or `Basic ...` from the URL's credentials.
    authorization: Option<String>,
    /// The retry policy's `request_timeout` (per attempt), when set.
    timeout: Option<Duration>,
    idle_timeout: Duration,
    connect_timeout: Duration,
    target: Target,
    egress: EgressPolicy,
    secrets: Secrets,
    max_response_bytes: usize,
    structured: StructuredMode,
    client: reqwest::Client,
    origin: Option<String>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("name", &self.name)
            .field("request_url", &self.request_url)
            .field("model", &self.model)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client from its options. Fails when the options cannot work: an empty model id, a URL
    /// that is not HTTP, the OpenAI API without a key, both a key and credentials in the URL, a
    /// host the egress policy refuses, or an HTTP client that cannot be built. Credentials in the
    /// URL (`http://user:password@host/v1`) are sent as HTTP Basic auth and kept out of the
    /// model's name, URL and messages.
    pub fn new(mut options: OpenAiOptions) -> Result<OpenAiClient, String> {
        options.api_key = options.api_key.filter(|key| !key.trim().is_empty());
        let written_url = url::request_url(&options.url, url::CHAT_COMPLETIONS_PATH);
        let url_credentials = credentials(&written_url);
        let mut secrets = Secrets::new(options.api_key.iter().cloned());
        secrets.merge(&options.secrets);
        if let Some(c) = &url_credentials {
            secrets.extend(c.secret_values());
        }
        let scrub = |message: String| secrets.redact_str(&message).into_owned();
        let request_url = without_credentials(&written_url);
        let base_url = url::base_url(&request_url, url::CHAT_COMPLETIONS_PATH);
        if options.model.trim().is_empty() {
            return Err(scrub(format!("{} {base_url}: the model id is empty; give the LLM config a model_id", options.provider)));
        }
        let target = match Target::parse(&request_url) {
            Ok(target) if credentials(&request_url).is_none() => target,
            Ok(_) => {
                return Err(scrub(format!(
                    "{}: the url {base_url:?} has user information that cannot be told apart from its host; write it as http://user:password@host/v1",
                    options.provider
                )));
            }
            Err(problem) => {
                return Err(scrub(format!("{}: the url {problem}; give a URL like http://127.0.0.1:8000/v1", options.provider)));
            }
        };
        if options.api_key.is_none() && url_credentials.is_none() && target.host == weft_guard::egress::OPENAI_API_HOST {
            return Err(format!(
                "{} {base_url}: the OpenAI API needs an API key: set {API_KEY_ENV}, or supply the LLM config's api_key secret (--secret <config id>.api_key=... or WEFT_SECRET_<CONFIG_ID>_API_KEY)",
                options.provider
            ));
        }
        let authorization = match (&options.api_key, &url_credentials) {
            (Some(_), Some(_)) => {
                return Err(scrub(format!(
                    "{} {base_url}: the url has credentials (user:password@) and an API key is given too: use one, the key (--secret <config id>.api_key=...) or the url's credentials (sent as HTTP Basic auth)",
                    options.provider
                )));
            }
            (Some(key), None) => Some(format!("Bearer {key}")),
            (None, Some(c)) => {
                Some(format!("Basic {}", weft_guard::secrets::base64_standard(format!("{}:{}", c.user, c.password).as_bytes())))
            }
            (None, None) => None,
        };
        let name = format!("{} {base_url}", options.provider);
        options.egress.check(&target).map_err(|refused| scrub(format!("{name}: {refused}")))?;
        let timeouts = options.limiters.timeouts();
        let connect_timeout = options.connect_timeout.unwrap_or(timeouts.connect);
        let client = match options.client {
            Some(client) => client,
            None => http_client(connect_timeout)?,
        };
        let timeout = options.request_timeout.or(options.retry.request_timeout);
        let idle_timeout = options.idle_timeout.unwrap_or(timeouts.idle);
        Ok(OpenAiClient {
            name,
            request_url,
            base_url,
            model: options.model,
            authorization,
            timeout,
            idle_timeout,
            connect_timeout,
            target,
            egress: options.egress,
            secrets,
            max_response_bytes: options.max_response_bytes,
            structured: options.structured,
            client,
            origin: options.origin,
        })
    }

    /// The URL requests are posted to.
    pub fn request_url(&self) -> &str {
        &self.request_url
    }

    /// The model id.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether requests carry an `Authorization` header (an API key, or the URL's credentials).
    pub fn has_api_key(&self) -> bool {
        self.authorization.is_some()
    }

    /// The timeout of each attempt (the retry policy's `request_timeout`), when there is one.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The idle timeout: how long an attempt waits for the next byte of the answer.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The body this model posts for `request`.
    pub fn request_body(&self, request: &ChatRequest) -> Json {
        wire::request_body(&self.model, request, self.structured)
    }

    /// One attempt: the answer, or what went wrong. The egress policy is checked before
    /// anything is sent; the body is read in chunks, at most `max_response_bytes`; the idle
    /// timeout runs while waiting for the headers and for each chunk.
    async fn send(&self, payload: &Bytes) -> Result<ChatResponse, Failure> {
        let response = self.post(payload).await?;
        let request_id = request_id(response.headers());
        let body = read_body(response, self.max_response_bytes, self.idle_timeout, self.connect_timeout)
            .await
            .map_err(|kind| Failure { kind, request_id: request_id.clone() })?;
        wire::parse_response(&body, &self.secrets).map_err(|problem| Failure { kind: Kind::Malformed(problem), request_id })
    }

    /// One streamed attempt: the events read as they come (each within the idle timeout, at
    /// most `max_response_bytes` in all), the text handed to `on_delta`. A stream that ends or
    /// breaks before the answer is complete is a transport failure, retried as one.
    async fn send_streaming(&self, payload: &Bytes, on_delta: DeltaSink<'_>) -> Result<ChatResponse, Failure> {
        let mut response = self.post(payload).await?;
        let request_id = request_id(response.headers());
        let fail = |kind: Kind| Failure { kind, request_id: request_id.clone() };
        let mut stream = Stream::default();
        let mut read = 0usize;
        loop {
            let Ok(chunk) = tokio::time::timeout(self.idle_timeout, response.chunk()).await else {
                return Err(fail(Kind::IdleTimeout(self.idle_timeout)));
            };
            match chunk {
                Ok(Some(bytes)) => {
                    read = read.saturating_add(bytes.len());
                    if read > self.max_response_bytes {
                        return Err(fail(Kind::TooLarge { limit: self.max_response_bytes }));
                    }
                    stream.feed(&bytes, on_delta, &self.secrets).map_err(|problem| fail(Kind::Malformed(problem)))?;
                }
                Ok(None) => break,
                Err(e) => return Err(fail(Kind::Transport(format!("the stream broke off: {}", chain(&e))))),
            }
        }
        stream.finish(&self.secrets).map_err(|problem| fail(Kind::Transport(problem)))
    }

    /// Posts `payload`: the response when its status is a success, else the failure, with the
    /// error body read (under the cap and the idle timeout).
    async fn post(&self, payload: &Bytes) -> Result<reqwest::Response, Failure> {
        if let Err(refused) = self.egress.check(&self.target) {
            return Err(Failure { kind: Kind::Refused(refused.to_string()), request_id: None });
        }
        let mut builder = self.client.post(&self.request_url).header(CONTENT_TYPE, "application/json").body(payload.clone());
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        let idle = Failure { kind: Kind::IdleTimeout(self.idle_timeout), request_id: None };
        let response = match tokio::time::timeout(self.idle_timeout, builder.send()).await {
            Ok(sent) => sent.map_err(|e| Failure::transport(&e, None, self.connect_timeout))?,
            Err(_) => return Err(idle),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let request_id = request_id(response.headers());
        let retry_after =
            response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, SystemTime::now()));
        let location = status
            .is_redirection()
            .then(|| response.headers().get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .flatten();
        let body = read_body(response, self.max_response_bytes, self.idle_timeout, self.connect_timeout)
            .await
            .map_err(|kind| Failure { kind, request_id: request_id.clone() })?;
        Err(Failure {
            kind: Kind::Status {
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or_default(),
                error: wire::error_body(&body, &self.secrets),
                body: String::from_utf8_lossy(&body).into_owned(),
                retry_after,
                location,
            },
            request_id,
        })
    }

    /// A failed attempt as the retry layer sees it.
    fn attempt_error(&self, failure: Failure) -> AttemptError {
        let origin = self.origin.as_ref().map(|o| format!(" for {o}")).unwrap_or_default();
        let mut message = format!("{}{origin} (model {}): {}", self.name, self.model, failure.describe());
        if let Some(id) = &failure.request_id {
            message.push_str(&format!(" (request id {id})"));
        }
        let advice = self.advice(&failure);
        let Failure { kind, request_id } = failure;
        let mut provider = ProviderError::default();
        let (cause, retry_after) = match kind {
            Kind::Status { status, body, retry_after, error, .. } => {
                provider = ProviderError { kind: error.kind, code: error.code, message: error.message };
                (Cause::Status { status, body }, retry_after)
            }
            Kind::Tls(_) => (Cause::Tls, None),
            Kind::Timeout | Kind::ConnectTimeout(_) | Kind::IdleTimeout(_) => (Cause::Timeout, None),
            Kind::Connect(_) | Kind::Transport(_) => (Cause::Transport, None),
            Kind::Malformed(_) => (Cause::Invalid, None),
            Kind::TooLarge { .. } => (Cause::TooLarge, None),
            Kind::Refused(_) => (Cause::Refused, None),
        };
        let mut attempt = AttemptError { retry_after, provider, request_id, ..AttemptError::new(cause, message, advice) };
        // What the provider's body says wins over the status (a 400 that is a prompt too long).
        let kind = crate::retry::classify(&attempt);
        if matches!(kind, crate::LlmErrorKind::ContextTooLong | crate::LlmErrorKind::ContentFiltered) {
            attempt.advice = kind.advice().to_owned();
        }
        attempt
    }

    fn advice(&self, failure: &Failure) -> String {
        const MORE_RETRIES: &str = "allow more retries with the LLM config's retry_policy (max_attempts)";
        match &failure.kind {
            Kind::Status { status: 401, .. } => format!(
                "check the API key: supply the LLM config's api_key secret (--secret <config id>.api_key=... or WEFT_SECRET_<CONFIG_ID>_API_KEY) or set {API_KEY_ENV}"
            ),
            Kind::Status { status: 403, .. } => "the API key has no access to this model or endpoint: check its permissions".to_owned(),
            Kind::Status { status: 404, .. } => {
                format!("check the url (requests go to {}) and the model id {:?}", self.request_url, self.model)
            }
            Kind::Status { status: 429, error, .. } if error.code.as_deref() == Some("insufficient_quota") => {
                "the account has no quota left: check the provider's plan and billing".to_owned()
            }
            Kind::Status { status: 408 | 409 | 429, .. } => {
                format!("the provider kept throttling: run fewer calls at once (max_workers), try again later, or {MORE_RETRIES}")
            }
            Kind::Status { status: 300..=399, location, .. } => format!(
                "the server redirects{}; weft does not follow redirects (they could lead a request and its key to another host): give the final URL in the LLM config or --llm",
                location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default()
            ),
            Kind::Status { status: 501, .. } => {
                format!("the server does not implement chat completions at {}: check the url", self.request_url)
            }
            Kind::Status { status: 500..=599, .. } => format!("the server kept failing: try again later, or {MORE_RETRIES}"),
            Kind::Status { .. } => {
                "the server refused the request: see its message, and check the model id and the generation parameters (default_generation_parameters)".to_owned()
            }
            Kind::Timeout => format!(
                "no answer within {} s: check that the server is not overloaded, or raise the LLM config's retry_policy.request_timeout",
                self.timeout.unwrap_or_default().as_secs_f64()
            ),
            Kind::ConnectTimeout(_) => format!(
                "check that the server is running and reachable (requests go to {}), or raise the connect timeout (--connect-timeout, {} s by default)",
                self.request_url,
                super::DEFAULT_CONNECT_TIMEOUT.as_secs()
            ),
            Kind::IdleTimeout(_) => format!(
                "the server took the request and then sent nothing: check that it is not stuck or overloaded, or raise the idle timeout (--idle-timeout, {} s by default) for a server that sends nothing until a long answer is complete",
                super::DEFAULT_IDLE_TIMEOUT.as_secs()
            ),
            Kind::Connect(_) => format!("could not connect: check that the server is running and the url is right (requests go to {})", self.request_url),
            Kind::Tls(_) => "TLS failed (never retried): check the server's certificate and the url's scheme".to_owned(),
            Kind::Transport(_) => format!("the connection failed: check the server's logs, or {MORE_RETRIES}"),
            Kind::Malformed(_) => format!(
                "the server answered but not with a chat completion: check that {} is an OpenAI-compatible chat-completions endpoint",
                self.request_url
            ),
            Kind::TooLarge { .. } => format!(
                "a chat completion is never this large: check that {} is an OpenAI-compatible chat-completions endpoint",
                self.request_url
            ),
            Kind::Refused(_) => "nothing was sent".to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiClient {
    type Payload = Bytes;

    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> &str {
        &self.base_url
    }

    fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn prepare(&self, request: &ChatRequest) -> Result<Bytes, LlmError> {
        let body = self.request_body(request);
        let payload = serde_json::to_vec(&body)
            .map_err(|e| LlmError::new(LlmErrorKind::BadRequest, format!("{}: cannot encode the request: {e}", self.name)))?;
        Ok(Bytes::from(payload))
    }

    async fn attempt(&self, payload: &Bytes) -> Result<ChatResponse, AttemptError> {
        self.send(payload).await.map_err(|failure| self.attempt_error(failure))
    }

    fn prepare_streaming(&self, request: &ChatRequest) -> Result<Bytes, LlmError> {
        let body = stream::streaming_body(self.request_body(request));
        let payload = serde_json::to_vec(&body)
            .map_err(|e| LlmError::new(LlmErrorKind::BadRequest, format!("{}: cannot encode the request: {e}", self.name)))?;
        Ok(Bytes::from(payload))
    }

    async fn attempt_streaming(&self, payload: &Bytes, on_delta: DeltaSink<'_>) -> Result<ChatResponse, AttemptError> {
        self.send_streaming(payload, on_delta).await.map_err(|failure| self.attempt_error(failure))
    }
}

/// A failed attempt.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    request_id: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Status {
        status: u16,
        reason: &'static str,
        error: wire::ErrorBody,
        body: String,
        retry_after: Option<Duration>,
        location: Option<String>,
    },
    /// The retry policy's `request_timeout` (per attempt) fired.
    Timeout,
    /// No connection within the connect timeout.
    ConnectTimeout(Duration),
    /// No byte of the answer within the idle timeout.
    IdleTimeout(Duration),
    Connect(String),
    Tls(String),
    Transport(String),
    Malformed(String),
    /// The body went past the cap (bytes).
    TooLarge {
        limit: usize,
    },
    /// The egress policy refused the request.
    Refused(String),
}

impl Failure {
    /// A failure of reqwest's; `connect_timeout` is the client's, named when it fired.
    fn transport(error: &reqwest::Error, request_id: Option<String>, connect_timeout: Duration) -> Failure {
        let text = chain(error);
        let kind = if is_tls(error) {
            Kind::Tls(text)
        } else if error.is_timeout() && error.is_connect() {
            Kind::ConnectTimeout(connect_timeout)
        } else if error.is_timeout() {
            // reqwest runs one other timer: the request's own (the retry policy's).
            Kind::Timeout
        } else if error.is_connect() {
            Kind::Connect(text)
        } else {
            Kind::Transport(text)
        };
        Failure { kind, request_id }
    }

    fn describe(&self) -> String {
        match &self.kind {
            Kind::Status { status, reason, error, .. } => {
                let mut text = format!("HTTP {status} {reason}").trim_end().to_owned();
                if let Some(message) = &error.message {
                    text.push_str(&format!(": {message:?}"));
                }
                let details: Vec<String> = [("type", &error.kind), ("code", &error.code), ("param", &error.param)]
                    .into_iter()
                    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}")))
                    .collect();
                if !details.is_empty() {
                    text.push_str(&format!(" ({})", details.join(", ")));
                }
                text
            }
            Kind::Timeout => "the request timed out".to_owned(),
            Kind::ConnectTimeout(timeout) => {
                format!("cannot connect within {} s (the connect timeout)", crate::retry::seconds(*timeout))
            }
            Kind::IdleTimeout(timeout) => {
                format!("no bytes received for {} s (the idle timeout)", crate::retry::seconds(*timeout))
            }
            Kind::Connect(e) => format!("cannot connect: {e}"),
            Kind::Tls(e) => format!("TLS failed: {e}"),
            Kind::Transport(e) => format!("the connection failed: {e}"),
            Kind::Malformed(problem) => format!("the response is not a chat completion: {problem}"),
            Kind::TooLarge { limit } => {
                format!("the response body is larger than {}, the most weft reads of an LLM response; reading stopped there", size(*limit))
            }
            Kind::Refused(why) => why.clone(),
        }
    }
}

/// Reads a body under the cap and the idle timeout.
async fn read_body(response: reqwest::Response, cap: usize, idle: Duration, connect_timeout: Duration) -> Result<Bytes, Kind> {
    crate::body::read_capped(response, cap, idle).await.map_err(|e| match e {
        BodyError::TooLarge => Kind::TooLarge { limit: cap },
        BodyError::Idle => Kind::IdleTimeout(idle),
        BodyError::Failed(e) => Failure::transport(&e, None, connect_timeout).kind,
    })
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// An error with its sources, `a: b: c`, repeated texts once.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// Whether TLS (or certificate verification) failed somewhere in the error's sources.
pub(crate) fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = e.source();
    }
    false
}
