//! Models from Agent Spec LLM configs: `OpenAiConfig`, `OpenAiCompatibleConfig`, `VllmConfig`,
//! `OllamaConfig`, and a generic `LlmConfig` whose `api_provider` (else `provider`) is
//! `openai`, `openai_compatible`, `vllm` or `ollama` (any case, `-` or `_`) with the
//! chat-completions `api_type`. Anything else is "not supported yet", reported when a node uses
//! the config (the engine calls the resolver while planning a run, never in `validate`).
//!
//! The API key (FORMAT.md 9.1, with the rules): the value supplied for the config's
//! sensitive `api_key` (its `<config id>.api_key` reference, from the secrets given here or
//! resolved by the loader; an empty value means no key), else `OPENAI_API_KEY` from the
//! environment (never for Ollama) but only for OpenAI's own API (`https://api.openai.com`) and
//! loopback addresses: a config naming any other host, with `OPENAI_API_KEY` set and no key of
//! its own, is refused (the run stops at start), so a flow someone else wrote cannot collect the
//! user's key. Else no `Authorization` header at all; only the OpenAI API itself without any key
//! is an error. WayFlow ignores `OllamaConfig.api_key`; Weft sends it when one is supplied, for
//! Ollama servers behind an authenticating proxy. Credentials in a URL (`user:password@`) are
//! sent as HTTP Basic auth instead of a key.
//!
//! `--llm PROVIDER=URL,model=ID` overrides ([`ProviderOverride`]) replace the provider, URL and
//! model of every config (or of the config with that id, which wins); the config's retry
//! policy and its supplied key stay, and the environment key follows the same host rule.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weft_spec::{ApiKey, LlmConfig};

use weft_guard::egress::{OPENAI_API_HOST, Target, credentials, env_key_allowed, mask_userinfo};
use weft_guard::{EgressPolicy, Secrets};

use super::{API_KEY_ENV, MAX_RESPONSE_BYTES, OpenAiModel, OpenAiOptions, StructuredMode, url};
use crate::ChatModel;
use crate::limit::Limiters;
use crate::retry::{RetryPolicy, Sleeper, TokioSleeper};

/// The OpenAI-compatible servers an LLM config (or `--llm`) can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiProvider {
    /// `openai`: the OpenAI API.
    OpenAi,
    /// `openai-compatible`: any server speaking the OpenAI chat-completions protocol.
    OpenAiCompatible,
    /// `vllm`: a vLLM server.
    Vllm,
    /// `ollama`: an Ollama server.
    Ollama,
}

impl ApiProvider {
    /// Every provider, in the order messages list them.
    pub const ALL: [ApiProvider; 4] = [ApiProvider::OpenAi, ApiProvider::OpenAiCompatible, ApiProvider::Vllm, ApiProvider::Ollama];

    /// The name `--llm` and messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiProvider::OpenAi => "openai",
            ApiProvider::OpenAiCompatible => "openai-compatible",
            ApiProvider::Vllm => "vllm",
            ApiProvider::Ollama => "ollama",
        }
    }

    /// The provider [`ApiProvider::as_str`] names `name`.
    pub fn from_name(name: &str) -> Option<ApiProvider> {
        ApiProvider::ALL.into_iter().find(|provider| provider.as_str() == name)
    }
}

impl std::fmt::Display for ApiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider that answers instead of the flow's LLM configs (`--llm PROVIDER=URL,model=ID`,
/// parsed by the CLI). Its `Debug` leaves out credentials in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderOverride {
    /// The component id of the one LLM config replaced; `None` replaces all of them.
    pub config_id: Option<String>,
    /// Which protocol to speak.
    pub provider: ApiProvider,
    /// The endpoint's base URL (`http://` or `https://`).
    pub url: String,
    /// The model id sent to the endpoint.
    pub model: String,
}

impl std::fmt::Debug for ProviderOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderOverride")
            .field("config_id", &self.config_id)
            .field("provider", &self.provider)
            .field("url", &mask_userinfo(&self.url))
            .field("model", &self.model)
            .finish()
    }
}

impl ProviderOverride {
    /// Whether the URL holds credentials (`user:password@`), which are never printed or stored.
    pub fn has_credentials(&self) -> bool {
        credentials(&self.url).is_some() || mask_userinfo(&self.url) != self.url
    }
}

/// Reads an environment variable.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Builds models from LLM configs. Models built by one resolver share one HTTP client.
pub struct Resolver {
    secrets: HashMap<String, String>,
    overrides: Vec<ProviderOverride>,
    env: Arc<EnvLookup>,
    limiters: Limiters,
    sleeper: Arc<dyn Sleeper>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    structured: StructuredMode,
    egress: EgressPolicy,
    scrub: Arc<Secrets>,
    max_response_bytes: usize,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("overrides", &self.overrides)
            .field("connect_timeout", &self.connect_timeout)
            .field("structured", &self.structured)
            .finish_non_exhaustive()
    }
}

/// A resolver for the engine (`weft_exec::ModelResolver`): `secrets` are supplied values by
/// `<config id>.<field>` reference, `overrides` the `--llm` provider overrides. Reads
/// `OPENAI_API_KEY` from the process environment.
pub fn resolver(
    secrets: HashMap<String, String>,
    overrides: Vec<ProviderOverride>,
) -> impl Fn(&LlmConfig) -> Result<Arc<dyn ChatModel>, String> + Send + Sync + 'static {
    Resolver::new(secrets, overrides).into_fn()
}

impl Resolver {
    /// A resolver with Weft's defaults: the process environment, the global limiters and their
    /// timeouts, the tokio sleeper, JSON-Schema mode.
    pub fn new(secrets: HashMap<String, String>, overrides: Vec<ProviderOverride>) -> Resolver {
        Resolver {
            secrets,
            overrides,
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            limiters: Limiters::global(),
            sleeper: Arc::new(TokioSleeper),
            connect_timeout: None,
            request_timeout: None,
            structured: StructuredMode::JsonSchema,
            egress: EgressPolicy::unrestricted(),
            scrub: Arc::new(Secrets::default()),
            max_response_bytes: MAX_RESPONSE_BYTES,
            client: OnceLock::new(),
        }
    }

    /// Reads environment variables through `env` (tests pass a map).
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Resolver {
        self.env = Arc::new(env);
        self
    }

    /// Takes endpoint limiters from `limiters`.
    pub fn with_limiters(mut self, limiters: Limiters) -> Resolver {
        self.limiters = limiters;
        self
    }

    /// Waits between attempts with `sleeper`.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Resolver {
        self.sleeper = sleeper;
        self
    }

    /// Connects within `timeout` (instead of the limiters' connect timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Resolver {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The connect timeout of the models' shared HTTP client.
    fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or_else(|| self.limiters.timeouts().connect)
    }

    /// Gives each attempt `timeout`, whatever the configs' retry policies say.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Resolver {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sends native schemas in `mode`.
    pub fn with_structured(mut self, mode: StructuredMode) -> Resolver {
        self.structured = mode;
        self
    }

    /// Sends requests only where `egress` allows (`--allow-host`).
    pub fn with_egress(mut self, egress: EgressPolicy) -> Resolver {
        self.egress = egress;
        self
    }

    /// Masks these secrets in the models' error messages (besides each model's own key).
    pub fn with_secrets(mut self, secrets: Arc<Secrets>) -> Resolver {
        self.scrub = secrets;
        self
    }

    /// Refuses response bodies larger than `bytes` ([`MAX_RESPONSE_BYTES`] by default).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Resolver {
        self.max_response_bytes = bytes;
        self
    }

    /// The options of the model serving `config`, or why there is none.
    ///
    /// The key is the one supplied for the config (`--secret <id>.api_key`, a
    /// `WEFT_SECRET_<ID>_API_KEY`, or written in the document; an empty value means "no key"),
    /// else `OPENAI_API_KEY`, but the environment key only goes to `https://api.openai.com` and
    /// loopback addresses ([`env_key_allowed`]): for any other host the config is refused
    /// with a message saying how to give its key, so a flow cannot send the user's key to a
    /// server it names. A URL with credentials gets no environment key (they are its auth).
    pub fn options(&self, config: &LlmConfig) -> Result<OpenAiOptions, String> {
        let retry = match &config.retry_policy {
            Some(policy) => RetryPolicy::from_agent_spec(policy)?,
            None => RetryPolicy::default(),
        };
        let over = self
            .overrides
            .iter()
            .find(|o| o.config_id.as_deref() == Some(config.id.as_str()))
            .or_else(|| self.overrides.iter().find(|o| o.config_id.is_none()));
        let (provider, url, model) = match over {
            Some(o) => (o.provider, o.url.clone(), o.model.clone()),
            None => {
                let provider = provider_of(config)?;
                let url = match (&config.url, provider) {
                    (Some(url), _) if config.type_name != "OpenAiConfig" => url.clone(),
                    (_, ApiProvider::OpenAi) => url::OPENAI_BASE.to_owned(),
                    _ => return Err(format!("{} has no url: give the server's URL, like http://127.0.0.1:8000/v1", config.type_name)),
                };
                let Some(model) = config.model_id.clone() else {
                    return Err(format!("{} has no model_id: give the model's id as the server knows it", config.type_name));
                };
                (provider, url, model)
            }
        };
        let reference = match &config.api_key {
            ApiKey::Secret(secret) => secret.key.clone(),
            _ => format!("{}.api_key", config.id),
        };
        let request_url = url::request_url(&url, url::CHAT_COMPLETIONS_PATH);
        let api_key = match self.explicit_key(config) {
            Some(explicit) => explicit,
            None if credentials(&request_url).is_some() => None,
            None => match self.env_key(provider) {
                Some(key) if env_key_allowed(&request_url) => Some(key),
                Some(_) => {
                    let host = Target::parse(&request_url).map(|t| t.authority()).unwrap_or_else(|_| "its server".to_owned());
                    return Err(format!(
                        "{} {:?} (id {}) sends its requests to {host}, and {API_KEY_ENV} is only sent to OpenAI's API (https://api.openai.com) and to loopback addresses, so that a flow cannot send your key to a server it names: give this config's key explicitly with --secret {reference}=... or {} (an empty value sends no key)",
                        config.type_name,
                        config.name,
                        config.id,
                        secret_env_name(&reference)
                    ));
                }
                None => None,
            },
        };
        if api_key.is_none() && provider == ApiProvider::OpenAi && Target::parse(&request_url).is_ok_and(|t| t.host == OPENAI_API_HOST) {
            return Err(format!(
                "the OpenAI API needs an API key and none is given: supply the secret {reference} (--secret {reference}=... or {}) or set {API_KEY_ENV}",
                secret_env_name(&reference)
            ));
        }
        let mut options = OpenAiOptions::new(provider, url, model)
            .with_retry(retry)
            .with_limiters(self.limiters.clone())
            .with_sleeper(Arc::clone(&self.sleeper))
            .with_connect_timeout(self.connect_timeout())
            .with_structured(self.structured)
            .with_origin(format!("{} {:?}", config.type_name, config.name));
        options.api_key = api_key;
        options.request_timeout = self.request_timeout;
        options.egress = self.egress.clone();
        options.secrets = Arc::clone(&self.scrub);
        options.max_response_bytes = self.max_response_bytes;
        Ok(options)
    }

    /// The model serving `config`, or why there is none.
    pub fn resolve(&self, config: &LlmConfig) -> Result<Arc<dyn ChatModel>, String> {
        let options = self.options(config)?;
        let client = self.client.get_or_init(|| super::http_client(self.connect_timeout())).clone()?;
        Ok(Arc::new(OpenAiModel::new(options.with_client(client))?))
    }

    /// The resolver as the engine takes it.
    pub fn into_fn(self) -> impl Fn(&LlmConfig) -> Result<Arc<dyn ChatModel>, String> + Send + Sync + 'static {
        move |config: &LlmConfig| self.resolve(config)
    }

    /// The key supplied for the config's `api_key`: resolved by the loader, or given here by
    /// its reference; a key written in the document counts too. `Some(None)`: given empty,
    /// meaning "send no key"; `None`: not given.
    fn explicit_key(&self, config: &LlmConfig) -> Option<Option<String>> {
        let key = match &config.api_key {
            ApiKey::Secret(secret) => secret.value.clone().or_else(|| self.secrets.get(&secret.key).cloned()),
            ApiKey::Written(s) => Some(s.clone()),
            ApiKey::Absent => None,
        };
        let key = key.or_else(|| self.secrets.get(&format!("{}.api_key", config.id)).cloned())?;
        Some(Some(key).filter(|k| !k.trim().is_empty()))
    }

    fn env_key(&self, provider: ApiProvider) -> Option<String> {
        if provider == ApiProvider::Ollama {
            return None;
        }
        (self.env)(API_KEY_ENV).filter(|k| !k.trim().is_empty())
    }
}

/// The provider of a config, or why it is not supported yet.
fn provider_of(config: &LlmConfig) -> Result<ApiProvider, String> {
    let api_type = config.api_type.as_deref().map(normalize).unwrap_or_else(|| "chat_completions".to_owned());
    let provider = match config.type_name {
        "OpenAiConfig" => ApiProvider::OpenAi,
        "OpenAiCompatibleConfig" => ApiProvider::OpenAiCompatible,
        "VllmConfig" => ApiProvider::Vllm,
        "OllamaConfig" => ApiProvider::Ollama,
        "LlmConfig" => {
            let named = config.provider.as_deref();
            match named.map(normalize).as_deref() {
                Some("openai") => ApiProvider::OpenAi,
                Some("openai_compatible") => ApiProvider::OpenAiCompatible,
                Some("vllm") => ApiProvider::Vllm,
                Some("ollama") => ApiProvider::Ollama,
                Some(_) | None => {
                    let what = named.map_or_else(|| "no provider".to_owned(), |p| format!("provider {p:?}"));
                    return Err(format!(
                        "not supported yet: LlmConfig with {what}: weft calls OpenAI-compatible chat-completions servers, so give api_provider (or provider) openai, openai_compatible, vllm or ollama, or run with --llm PROVIDER=URL,model=ID"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "not supported yet: {other}: weft calls OpenAI-compatible chat-completions servers (OpenAiConfig, OpenAiCompatibleConfig, VllmConfig, OllamaConfig, or an LlmConfig whose provider is one of those); run with --llm PROVIDER=URL,model=ID to use one instead"
            ));
        }
    };
    match api_type.as_str() {
        "chat_completions" | "openai_chat_completions" => Ok(provider),
        "responses" | "openai_responses" => Err(format!(
            "not supported yet: api_type {api_type:?} (the Responses API) of {}: use api_type chat_completions",
            config.type_name
        )),
        other => Err(format!("not supported yet: api_type {other:?} of {}: weft speaks chat_completions", config.type_name)),
    }
}

/// Lowercase, `-` as `_`.
fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace('-', "_")
}

/// The CLI's environment variable for a secret reference: `WEFT_SECRET_` then the key
/// uppercased, every non-alphanumeric character as `_`.
fn secret_env_name(reference: &str) -> String {
    let mangled: String = reference.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("WEFT_SECRET_{mangled}")
}
