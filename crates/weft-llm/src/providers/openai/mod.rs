//! The OpenAI-compatible Chat Completions provider: OpenAI, vLLM, Ollama, llama.cpp and any
//! server speaking the protocol.
//!
//! - [`OpenAiModel`] is the [`OpenAiClient`] (one attempt at a time) inside the retry layer
//!   ([`Retrying`]): a [`crate::ChatModel`] sending [`crate::ChatRequest`]s to
//!   `POST {base}/chat/completions` over reqwest (rustls with ring), with the request URL built
//!   from a config's `url` as WayFlow does ([`url::request_url`]), structured output as
//!   `response_format` (`json_schema`, strict when the schema allows it, or `json_object`
//!   mode), tools and tool calls, and usage with cached tokens.
//! - Timeouts ([`crate::limit::Timeouts`], the limiters' unless the options give one): 10 s to
//!   connect, 120 s without a byte of the answer (the idle timeout, waiting for the headers and
//!   between chunks of the body), 600 s for the whole call (the retry layer's); the retry
//!   policy's `request_timeout`, when set, bounds each attempt too. Each error names the
//!   timeout that fired. Retries, `Retry-After`, the endpoint's circuit breaker and limiter
//!   feedback are the retry layer's ([`crate::retry`]), with the config's [`RetryPolicy`].
//! - [`config`] builds models from Agent Spec LLM configs, with `--llm` overrides and secrets.
//! - Nothing secret leaves the client except to its endpoint: the key (or the URL's
//!   credentials, sent as HTTP Basic auth and removed from the URL) is masked in every error
//!   message, in every encoded form ([`weft_guard::Secrets`]), whatever the server echoed.
//! - An [`EgressPolicy`] (`--allow-host`) is checked when the model is built and before every
//!   request; redirects are never followed, so a request cannot be sent on to another host.
//! - A response body is read in chunks and refused past [`MAX_RESPONSE_BYTES`] (32 MiB).

pub mod client;
pub mod config;
mod stream;
pub mod url;
mod wire;

pub use client::OpenAiClient;
use client::chain;
pub use config::{ApiProvider, ProviderOverride, Resolver, resolver};
pub use wire::strict_allowed;

use std::sync::{Arc, Once};
use std::time::Duration;

use weft_guard::{EgressPolicy, Secrets};

use crate::limit::Limiters;
use crate::retry::{RetryOptions, RetryPolicy, Retrying, Sleeper, TokioSleeper};

pub use crate::limit::{DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT};

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
    /// The connect timeout (used when the client is built here); `None` takes the limiters'
    /// ([`crate::limit::Timeouts::connect`], 10 s by default).
    pub connect_timeout: Option<Duration>,
    /// The idle timeout: an attempt fails when no byte of the answer came for this long; `None`
    /// takes the limiters' ([`crate::limit::Timeouts::idle`], 120 s by default).
    pub idle_timeout: Option<Duration>,
    /// The timeout of a whole call, retries included; `None` takes the limiters'
    /// ([`crate::limit::Timeouts::call`], 600 s by default).
    pub call_timeout: Option<Duration>,
    /// The timeout of each attempt; when `None`, the retry policy's `request_timeout`, else
    /// none (the idle and call timeouts still apply).
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
            .field("idle_timeout", &self.idle_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("structured", &self.structured)
            .field("origin", &self.origin)
            .field("egress", &self.egress)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiOptions {
    /// Options with Weft's defaults: no key, [`RetryPolicy::default`], the global limiters and
    /// their timeouts, the tokio sleeper.
    pub fn new(provider: ApiProvider, url: impl Into<String>, model: impl Into<String>) -> OpenAiOptions {
        OpenAiOptions {
            provider,
            url: url.into(),
            model: model.into(),
            api_key: None,
            retry: RetryPolicy::default(),
            connect_timeout: None,
            idle_timeout: None,
            call_timeout: None,
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
        self.connect_timeout = Some(timeout);
        self
    }

    /// Fails an attempt when no byte of the answer came for this long.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> OpenAiOptions {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Fails a whole call (retries included) after this long.
    pub fn with_call_timeout(mut self, timeout: Duration) -> OpenAiOptions {
        self.call_timeout = Some(timeout);
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

/// A model behind an OpenAI-compatible Chat Completions endpoint: its client with retries.
pub type OpenAiModel = Retrying<OpenAiClient>;

impl Retrying<OpenAiClient> {
    /// A model from its options. Fails when the options cannot work: an empty model id, a URL
    /// that is not HTTP, the OpenAI API without a key, both a key and credentials in the URL, a
    /// host the egress policy refuses, or an HTTP client that cannot be built. Credentials in the
    /// URL (`http://user:password@host/v1`) are sent as HTTP Basic auth and kept out of the
    /// model's name, URL and messages.
    pub fn new(options: OpenAiOptions) -> Result<OpenAiModel, String> {
        let limiters = options.limiters.clone();
        let retry = RetryOptions {
            policy: options.retry.clone(),
            sleeper: Arc::clone(&options.sleeper),
            jitter_seed: options.jitter_seed,
            call_timeout: options.call_timeout,
        };
        Ok(Retrying::wrap(OpenAiClient::new(options)?, &limiters, retry))
    }
}
