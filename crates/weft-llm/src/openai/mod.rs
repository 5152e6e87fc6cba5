//! The OpenAI-compatible Chat Completions client: OpenAI, vLLM, Ollama, llama.cpp and any
//! server speaking the protocol, as a [`ChatModel`].
//!
//! - [`OpenAiModel`] sends [`ChatRequest`]s to `POST {base}/chat/completions` over reqwest
//!   (rustls with ring), with the request URL built from a config's `url` as WayFlow does
//!   ([`url::request_url`]), structured output as `response_format` (`json_schema`, strict when
//!   the schema allows it, or `json_object` mode), tools and tool calls, and usage with cached
//!   tokens.
//! - Each attempt has a timeout; failed attempts are retried by the [`RetryPolicy`]
//!   (FORMAT.md 9.2), waiting through an injectable [`Sleeper`] and honouring `Retry-After`.
//!   Every 429 lowers the endpoint's adaptive [`Limiter`]; every success raises it back. The
//!   client does not take the limiter's permits: the engine holds one around the whole call.
//! - [`config`] builds models from Agent Spec LLM configs, with `--llm` overrides and secrets.
//! - Nothing secret leaves the client except to its endpoint: the key (or the URL's
//!   credentials, sent as HTTP Basic auth and removed from the URL) is masked in every error
//!   message, in every encoded form ([`weft_guard::Secrets`]), whatever the server echoed.
//! - An [`EgressPolicy`] (`--allow-host`) is checked when the model is built and before every
//!   request; redirects are never followed, so a request cannot be sent on to another host.
//! - A response body is read in chunks and refused past [`MAX_RESPONSE_BYTES`] (32 MiB).

pub mod config;
pub mod retry;
pub mod url;
mod wire;

pub use config::{ApiProvider, ProviderOverride, Resolver, resolver};
pub use retry::{Jitter, RecordingSleeper, RetryPolicy, Sleeper, TokioSleeper};
pub use wire::strict_allowed;

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value as Json;

use weft_guard::egress::{Target, credentials, without_credentials};
use weft_guard::{EgressPolicy, Secrets};

use crate::limit::{Limiter, Limiters};
use crate::{ChatModel, ChatRequest, ChatResponse, LlmError};
use retry::{Failed, RETRY_BUDGET, Rng};

/// The connect timeout when none is given (WayFlow's, for LLM calls).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The timeout of one attempt when neither the options nor the retry policy give one
/// (WayFlow's).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The environment variable holding the API key when a config gives none.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";

/// The largest response body read (32 MiB): a chat completion is never near it, and a server
/// sending more (by mistake or on purpose) must not fill the memory.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How a schema requested natively ([`crate::SchemaDelivery::Native`]) is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StructuredMode {
    /// `response_format: {"type": "json_schema", ...}`, strict when the schema allows it.
    #[default]
    JsonSchema,
    /// `response_format: {"type": "json_object"}` (JSON mode), for servers without JSON-Schema
    /// mode; the schema goes into a closing system message.
    JsonObject,
}

/// Installs ring as rustls's process-wide crypto provider, once; a provider installed earlier
/// (by the host program) is kept.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client for LLM calls: connect timeout, no proxy (as WayFlow), rustls with ring, and
/// no redirects (reqwest follows up to 10 by default, which would take a request, and an
/// allow list's decision, to another host). Models built from one [`Resolver`] share one, and
/// so its connection pool.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot create the HTTP client: {}", chain(&e)))
}

/// How to reach one model.
#[derive(Clone)]
pub struct OpenAiOptions {
    /// Which kind of server (for messages, and the API key rules of [`config`]).
    pub provider: ApiProvider,
    /// The config's `url` (the request URL is built from it, [`url::request_url`]).
    pub url: String,
    /// The model id sent as `model`.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`; no header when `None`.
    pub api_key: Option<String>,
    /// Retries.
    pub retry: RetryPolicy,
    /// The connect timeout (used when the client is built here).
    pub connect_timeout: Duration,
    /// The timeout of each attempt; when `None`, the retry policy's, else
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Option<Duration>,
    /// How native schemas are sent.
    pub structured: StructuredMode,
    /// Where the endpoint's limiter comes from.
    pub limiters: Limiters,
    /// Waits between attempts.
    pub sleeper: Arc<dyn Sleeper>,
    /// Seeds the jitter, for reproducible delays in tests.
    pub jitter_seed: Option<u64>,
    /// A client to share (its connect timeout applies); built from `connect_timeout` when
    /// `None`.
    pub client: Option<reqwest::Client>,
    /// What the model comes from, for messages (`OpenAiConfig "gpt" (id c1)`).
    pub origin: Option<String>,
    /// Where requests may go (`--allow-host`); unrestricted by default.
    pub egress: EgressPolicy,
    /// Other secret values masked in this model's error messages (its own key and URL
    /// credentials always are).
    pub secrets: Arc<Secrets>,
    /// The largest response body read ([`MAX_RESPONSE_BYTES`] by default).
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for OpenAiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiOptions")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("structured", &self.structured)
            .field("origin", &self.origin)
            .field("egress", &self.egress)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiOptions {
    /// Options with Weft's defaults: no key, [`RetryPolicy::default`], 20 s to connect, the
    /// global limiters, the tokio sleeper.
    pub fn new(provider: ApiProvider, url: impl Into<String>, model: impl Into<String>) -> OpenAiOptions {
        OpenAiOptions {
            provider,
            url: url.into(),
            model: model.into(),
            api_key: None,
            retry: RetryPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: None,
            structured: StructuredMode::default(),
            limiters: Limiters::global(),
            sleeper: Arc::new(TokioSleeper),
            jitter_seed: None,
            client: None,
            origin: None,
            egress: EgressPolicy::unrestricted(),
            secrets: Arc::new(Secrets::default()),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Sends this API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> OpenAiOptions {
        self.api_key = Some(key.into());
        self
    }

    /// Retries with this policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> OpenAiOptions {
        self.retry = retry;
        self
    }

    /// Waits between attempts with this sleeper.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> OpenAiOptions {
        self.sleeper = sleeper;
        self
    }

    /// Takes the endpoint's limiter from these limiters.
    pub fn with_limiters(mut self, limiters: Limiters) -> OpenAiOptions {
        self.limiters = limiters;
        self
    }

    /// Connects within this time.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> OpenAiOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Gives each attempt this long.
    pub fn with_request_timeout(mut self, timeout: Duration) -> OpenAiOptions {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sends native schemas this way.
    pub fn with_structured(mut self, mode: StructuredMode) -> OpenAiOptions {
        self.structured = mode;
        self
    }

    /// Seeds the jitter.
    pub fn with_jitter_seed(mut self, seed: u64) -> OpenAiOptions {
        self.jitter_seed = Some(seed);
        self
    }

    /// Shares this HTTP client.
    pub fn with_client(mut self, client: reqwest::Client) -> OpenAiOptions {
        self.client = Some(client);
        self
    }

    /// Names what the model comes from in messages.
    pub fn with_origin(mut self, origin: impl Into<String>) -> OpenAiOptions {
        self.origin = Some(origin.into());
        self
    }

    /// Sends requests only where `egress` allows.
    pub fn with_egress(mut self, egress: EgressPolicy) -> OpenAiOptions {
        self.egress = egress;
        self
    }

    /// Masks these secrets too in error messages.
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> OpenAiOptions {
        self.secrets = secrets;
        self
    }

    /// Refuses response bodies larger than `bytes`.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> OpenAiOptions {
        self.max_response_bytes = bytes;
        self
    }
}

/// A model behind an OpenAI-compatible Chat Completions endpoint.
pub struct OpenAiModel {
    name: String,
    request_url: String,
    base_url: String,
    model: String,
    /// The `Authorization` header: `Bearer <key>`, or `Basic ...` from the URL's credentials.
    authorization: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    target: Target,
    egress: EgressPolicy,
    secrets: Secrets,
    max_response_bytes: usize,
    structured: StructuredMode,
    client: reqwest::Client,
    limiter: Arc<Limiter>,
    sleeper: Arc<dyn Sleeper>,
    rng: Mutex<Rng>,
    origin: Option<String>,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("name", &self.name)
            .field("request_url", &self.request_url)
            .field("model", &self.model)
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// A model from its options. Fails when the options cannot work: an empty model id, a URL
    /// that is not HTTP, the OpenAI API without a key, both a key and credentials in the URL, a
    /// host the egress policy refuses, or an HTTP client that cannot be built. Credentials in the
    /// URL (`http://user:password@host/v1`) are sent as HTTP Basic auth and kept out of the
    /// model's name, URL and messages.
    pub fn new(mut options: OpenAiOptions) -> Result<OpenAiModel, String> {
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
        let client = match options.client {
            Some(client) => client,
            None => http_client(options.connect_timeout)?,
        };
        let timeout = options.request_timeout.or(options.retry.request_timeout).unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let limiter = options.limiters.get(&base_url);
        Ok(OpenAiModel {
            name,
            request_url,
            base_url,
            model: options.model,
            authorization,
            retry: options.retry,
            timeout,
            target,
            egress: options.egress,
            secrets,
            max_response_bytes: options.max_response_bytes,
            structured: options.structured,
            client,
            limiter,
            sleeper: options.sleeper,
            rng: Mutex::new(Rng::new(options.jitter_seed)),
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

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The timeout of each attempt.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The body this model posts for `request`.
    pub fn request_body(&self, request: &ChatRequest) -> Json {
        wire::request_body(&self.model, request, self.structured)
    }

    /// One attempt: the answer, or what went wrong. The egress policy is checked before
    /// anything is sent; the body is read in chunks, at most `max_response_bytes`.
    async fn attempt(&self, payload: &Bytes) -> Result<ChatResponse, Failure> {
        if let Err(refused) = self.egress.check(&self.target) {
            return Err(Failure { kind: Kind::Refused(refused.to_string()), request_id: None });
        }
        let mut builder =
            self.client.post(&self.request_url).header(CONTENT_TYPE, "application/json").timeout(self.timeout).body(payload.clone());
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        let response = builder.send().await.map_err(|e| Failure::transport(&e, None))?;
        let status = response.status();
        let request_id = request_id(response.headers());
        let retry_after = (!status.is_success())
            .then(|| {
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, SystemTime::now()))
            })
            .flatten();
        let location = status
            .is_redirection()
            .then(|| response.headers().get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .flatten();
        let body = read_body(response, self.max_response_bytes).await.map_err(|kind| Failure { kind, request_id: request_id.clone() })?;
        if status.is_success() {
            return wire::parse_response(&body, &self.secrets).map_err(|problem| Failure { kind: Kind::Malformed(problem), request_id });
        }
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

    fn jitter(&self) -> f64 {
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unit()
    }

    /// The error after `attempts` attempts, the last failing with `failure`.
    fn error(&self, failure: &Failure, attempts: u32, why_stopped: Stop) -> LlmError {
        let origin = self.origin.as_ref().map(|o| format!(" for {o}")).unwrap_or_default();
        let mut message = format!("{}{origin} (model {}): {}", self.name, self.model, failure.describe());
        if let Some(id) = &failure.request_id {
            message.push_str(&format!(" (request id {id})"));
        }
        let retries = attempts.saturating_sub(1);
        let tries = match (attempts, why_stopped) {
            (1, Stop::NotRetryable) => "after 1 attempt (not retried)".to_owned(),
            (1, _) => "after 1 attempt (the retry policy allows no retries)".to_owned(),
            (n, Stop::Budget) => {
                format!("after {n} attempts ({retries} retries; retries stop {} s after the first attempt)", RETRY_BUDGET.as_secs())
            }
            (n, _) => format!("after {n} attempts ({retries} {})", if retries == 1 { "retry" } else { "retries" }),
        };
        message.push_str(&format!(", {tries}; {}", self.advice(failure)));
        // Whatever the server echoed (the key in an error body, a request id, a redirect
        // target), no form of a secret leaves through the message.
        let message = self.secrets.redact_str(&message).into_owned();
        if failure.transient() { LlmError::Transient { message } } else { LlmError::Permanent { message } }
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
                self.timeout.as_secs_f64()
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
impl ChatModel for OpenAiModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> &str {
        &self.base_url
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.request_body(request);
        let payload = Bytes::from(
            serde_json::to_vec(&body)
                .map_err(|e| LlmError::Permanent { message: format!("{}: cannot encode the request: {e}", self.name) })?,
        );
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let failure = match self.attempt(&payload).await {
                Ok(response) => {
                    self.limiter.record_success();
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            if failure.status() == Some(429) {
                self.limiter.record_throttle();
            }
            let retryable = match &failure.kind {
                Kind::Status { status, body, .. } => self.retry.should_retry(Failed::Status(*status, body)),
                Kind::Tls(_) => self.retry.should_retry(Failed::Tls),
                Kind::Timeout | Kind::Connect(_) | Kind::Transport(_) => self.retry.should_retry(Failed::Transport),
                Kind::Malformed(_) | Kind::TooLarge { .. } | Kind::Refused(_) => false,
            };
            if !retryable {
                return Err(self.error(&failure, attempts, Stop::NotRetryable));
            }
            if attempts > self.retry.max_retries {
                return Err(self.error(&failure, attempts, Stop::Exhausted));
            }
            // The real sleeper's waits are part of the elapsed time; an injected one's are not.
            let elapsed = started.elapsed().max(slept);
            let Some(left) = RETRY_BUDGET.checked_sub(elapsed).filter(|left| !left.is_zero()) else {
                return Err(self.error(&failure, attempts, Stop::Budget));
            };
            let delay = match failure.retry_after() {
                Some(delay) => delay,
                None => self.retry.delay(attempts - 1, failure.status().is_some_and(|s| (400..500).contains(&s)), self.jitter()),
            };
            let delay = delay.min(left);
            self.sleeper.sleep(delay).await;
            slept += delay;
        }
    }
}

/// Why retrying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    NotRetryable,
    Exhausted,
    Budget,
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
    Timeout,
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
    fn transport(error: &reqwest::Error, request_id: Option<String>) -> Failure {
        let text = chain(error);
        let kind = if is_tls(error) {
            Kind::Tls(text)
        } else if error.is_timeout() {
            Kind::Timeout
        } else if error.is_connect() {
            Kind::Connect(text)
        } else {
            Kind::Transport(text)
        };
        Failure { kind, request_id }
    }

    fn status(&self) -> Option<u16> {
        match &self.kind {
            Kind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failure may pass by itself (rate limits, server errors, lost connections).
    fn transient(&self) -> bool {
        match &self.kind {
            Kind::Status { status, .. } => matches!(status, 408 | 409 | 429) || (500..600).contains(status) && *status != 501,
            Kind::Tls(_) | Kind::TooLarge { .. } | Kind::Refused(_) => false,
            Kind::Timeout | Kind::Connect(_) | Kind::Transport(_) | Kind::Malformed(_) => true,
        }
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

/// Reads a body, refusing it past `cap` bytes: at once when `Content-Length` says so, else as
/// soon as the chunks read go past it (nothing more is read).
async fn read_body(mut response: reqwest::Response, cap: usize) -> Result<Bytes, Kind> {
    let too_large = Kind::TooLarge { limit: cap };
    if response.content_length().is_some_and(|length| length > cap as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(e) => return Err(Failure::transport(&e, None).kind),
        }
    }
}

/// `32 MiB`, `1.5 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b / 1024),
        b => format!("{b} bytes"),
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// An error with its sources, `a: b: c`, repeated texts once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
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
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
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
