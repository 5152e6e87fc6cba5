//! The `--llm` option: which model answers a run's LLM calls.
//!
//! The grammar (also the text stored in run-state files, so [`LlmChoice`]'s `Display` prints it
//! back and parsing that gives the same value):
//!
//! - `flow` (the default): each LLM node uses the flow's own LLM config;
//! - `simulated` or `simulated?OPTION=VALUE&...`, the built-in offline model, with options
//!   `latency_ms=N` (whole milliseconds from 0 to 3,600,000, default 0), `array_len=N` (from 1 to
//!   1,024, the generator's cap on items, default 1)
//!   and `script=FILE` (a JSON file of scripted replies, see [`Script`]); option values may use
//!   `%XX` escapes (`%26` for `&`, `%25` for `%`);
//! - `PROVIDER=URL,model=ID`: every LLM config replaced by this provider, URL and model, with
//!   PROVIDER one of `openai`, `openai-compatible`, `vllm`, `ollama`;
//! - `CONFIG_ID:PROVIDER=URL,model=ID`: only the LLM config with that component id replaced.
//!
//! Provider overrides are parsed here into weft-llm's [`ProviderOverride`], which its
//! `Resolver` applies; connecting to providers is weft-llm's business.
//!
//! Credentials in a provider's URL (`http://user:password@host/v1`) are accepted (the client
//! sends them as HTTP Basic auth) but never shown: `Display` (and so the run-state file) writes
//! the URL without them, and error messages mask them, so a resumed run needs `--llm` again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use weft_guard::egress::{mask_userinfo, without_credentials};
use weft_llm::providers::openai::{ApiProvider, ProviderOverride};
use weft_llm::simulated::generator::MAX_ITEMS;
use weft_llm::simulated::{Script, ScriptError, SimulatedOptions};

/// The accepted grammar, for error messages.
const GRAMMAR: &str = "flow, simulated[?latency_ms=N&array_len=N&script=FILE], or [CONFIG_ID:]PROVIDER=URL,model=ID with PROVIDER one of openai, openai-compatible, vllm, ollama";

/// The provider grammar, with an example, for error messages.
const PROVIDER_GRAMMAR: &str = "[CONFIG_ID:]PROVIDER=URL,model=ID, like openai-compatible=http://localhost:8000/v1,model=qwen3";

/// The longest simulated latency, in milliseconds: one hour.
pub const MAX_LATENCY_MS: u64 = 3_600_000;

/// The options of `simulated`, in the order `Display` writes them.
const SIMULATED_OPTIONS: [&str; 3] = ["latency_ms", "array_len", "script"];

/// Which model answers a run's LLM calls: the parsed `--llm` option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LlmChoice {
    /// Each LLM node uses the flow's own LLM config.
    #[default]
    Flow,
    /// The built-in simulated model.
    Simulated(SimulatedSpec),
    /// A provider replacing every LLM config, or one of them.
    Provider(ProviderOverride),
}

/// The options of `--llm simulated`, as given; [`SimulatedSpec::into_options`] reads the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedSpec {
    /// Milliseconds each call waits before answering.
    pub latency_ms: u64,
    /// Items per generated array (at least 1).
    pub array_len: usize,
    /// A JSON file of scripted replies.
    pub script: Option<PathBuf>,
}

impl Default for SimulatedSpec {
    fn default() -> SimulatedSpec {
        SimulatedSpec { latency_ms: 0, array_len: 1, script: None }
    }
}

impl SimulatedSpec {
    /// The model's options, with the script file read and checked. A relative script path is
    /// taken from `base_dir` when given, else from the current directory.
    #[allow(clippy::wrong_self_convention, reason = "the name the engine calls; the spec stays usable, as it is stored in run states")]
    pub fn into_options(&self, base_dir: Option<&Path>) -> Result<SimulatedOptions, ChoiceError> {
        let script = match &self.script {
            None => Script::default(),
            Some(path) => {
                let path = match base_dir {
                    Some(dir) if path.is_relative() => dir.join(path),
                    _ => path.clone(),
                };
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|error| ScriptError { origin: origin.clone(), problem: format!("cannot read it: {error}") })?;
                Script::from_json(&text, &origin)?
            }
        };
        Ok(SimulatedOptions { latency: Duration::from_millis(self.latency_ms), array_len: self.array_len, script })
    }
}

/// Why an `--llm` value (or its script file) was refused. Each message says what is wrong and
/// what is accepted; the fix is to change the option or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChoiceError {
    /// The value is none of the forms.
    #[error("unknown --llm value {value:?}{}: expected {grammar}", did_you_mean(.suggestion), grammar = GRAMMAR)]
    UnknownValue {
        /// The value given.
        value: String,
        /// A close known value.
        suggestion: Option<&'static str>,
    },
    /// `simulated?` with an option it does not know.
    #[error(
        "--llm {value:?}: unknown option {option:?}{}: simulated takes latency_ms, array_len and script, as in simulated?latency_ms=N&array_len=N&script=FILE",
        did_you_mean(.suggestion)
    )]
    UnknownOption {
        /// The whole `--llm` value.
        value: String,
        /// The unknown option.
        option: String,
        /// A close known option.
        suggestion: Option<&'static str>,
    },
    /// An option of `simulated?` with a value it cannot take.
    #[error("--llm {value:?}: option {option} has value {given:?}: expected {expected}")]
    BadOptionValue {
        /// The whole `--llm` value.
        value: String,
        /// The option.
        option: &'static str,
        /// Its value, as given.
        given: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// An option of `simulated?` without `=VALUE`.
    #[error("--llm {value:?}: option {option} needs a value, as in {option}={example}")]
    MissingOptionValue {
        /// The whole `--llm` value.
        value: String,
        /// The option.
        option: &'static str,
        /// What a value looks like.
        example: &'static str,
    },
    /// An option of `simulated?` given twice.
    #[error("--llm {value:?}: option {option} is given twice; give it once")]
    RepeatedOption {
        /// The whole `--llm` value.
        value: String,
        /// The option.
        option: &'static str,
    },
    /// `PROVIDER=...` with a provider it does not know.
    #[error(
        "--llm {value:?}: unknown provider {provider:?}{}: expected one of openai, openai-compatible, vllm, ollama, as in {grammar}",
        did_you_mean(.suggestion),
        grammar = PROVIDER_GRAMMAR
    )]
    UnknownProvider {
        /// The whole `--llm` value.
        value: String,
        /// The unknown provider.
        provider: String,
        /// A close known provider.
        suggestion: Option<&'static str>,
    },
    /// A provider override with a missing or malformed part.
    #[error("--llm {value:?}: {problem}: expected {grammar}", grammar = PROVIDER_GRAMMAR)]
    BadProvider {
        /// The whole `--llm` value.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// The script file of `simulated?script=FILE` cannot be read or has the wrong shape.
    #[error(transparent)]
    Script(#[from] ScriptError),
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion.map(|known| format!(" (did you mean {known:?}?)")).unwrap_or_default()
}

impl FromStr for LlmChoice {
    type Err = ChoiceError;

    fn from_str(given: &str) -> Result<LlmChoice, ChoiceError> {
        let text = given.trim();
        // Errors quote the value without any credentials.
        let shown = mask_userinfo(given);
        let value = shown.as_str();
        // The first of `?` and `=` tells the form: `simulated?...` or `PROVIDER=...`.
        match text.find(['?', '=']).map(|at| (at, text.as_bytes()[at])) {
            Some((at, b'?')) if &text[..at] == "simulated" => parse_simulated(value, &text[at + 1..]).map(LlmChoice::Simulated),
            Some((at, b'?')) => Err(unknown_value(value, &text[..at])),
            Some((at, _)) => parse_provider(value, &text[..at], &text[at + 1..]).map(LlmChoice::Provider),
            None if text == "flow" => Ok(LlmChoice::Flow),
            None if text == "simulated" => Ok(LlmChoice::Simulated(SimulatedSpec::default())),
            None if ApiProvider::from_name(text.rsplit(':').next().unwrap_or(text)).is_some() => {
                Err(ChoiceError::BadProvider { value: value.to_owned(), problem: "a provider needs =URL,model=ID".to_owned() })
            }
            None => Err(unknown_value(value, text)),
        }
    }
}

fn unknown_value(value: &str, name: &str) -> ChoiceError {
    ChoiceError::UnknownValue { value: value.to_owned(), suggestion: closest(name, &["flow", "simulated"]) }
}

fn parse_simulated(value: &str, query: &str) -> Result<SimulatedSpec, ChoiceError> {
    let mut spec = SimulatedSpec::default();
    let mut seen = [false; SIMULATED_OPTIONS.len()];
    // Empty pieces (`simulated?`, a trailing `&`) are allowed.
    for piece in query.split('&').filter(|piece| !piece.is_empty()) {
        let (name, given) = match piece.split_once('=') {
            Some((name, given)) => (name, Some(given)),
            None => (piece, None),
        };
        let Some(index) = SIMULATED_OPTIONS.iter().position(|known| *known == name) else {
            return Err(ChoiceError::UnknownOption {
                value: value.to_owned(),
                option: name.to_owned(),
                suggestion: closest(name, &SIMULATED_OPTIONS),
            });
        };
        let option = SIMULATED_OPTIONS[index];
        let Some(given) = given else {
            let example = ["N", "N", "FILE"][index];
            return Err(ChoiceError::MissingOptionValue { value: value.to_owned(), option, example });
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(ChoiceError::RepeatedOption { value: value.to_owned(), option });
        }
        let decoded = percent_decode(given);
        let bad = |expected| ChoiceError::BadOptionValue { value: value.to_owned(), option, given: given.to_owned(), expected };
        match option {
            "latency_ms" => {
                spec.latency_ms = decoded
                    .parse()
                    .ok()
                    .filter(|ms| *ms <= MAX_LATENCY_MS)
                    .ok_or_else(|| bad("a whole number of milliseconds from 0 to 3600000 (one hour)"))?
            }
            "array_len" => {
                spec.array_len = decoded
                    .parse()
                    .ok()
                    .filter(|len| (1..=MAX_ITEMS).contains(len))
                    .ok_or_else(|| bad("a whole number from 1 to 1024 (items per generated array)"))?
            }
            _ if decoded.is_empty() => return Err(bad("the path of a JSON file of scripted replies")),
            _ => spec.script = Some(PathBuf::from(decoded)),
        }
    }
    Ok(spec)
}

fn parse_provider(value: &str, head: &str, rest: &str) -> Result<ProviderOverride, ChoiceError> {
    let bad = |problem: String| ChoiceError::BadProvider { value: value.to_owned(), problem };
    // A component id may itself contain `:`; the provider name never does.
    let (config_id, name) = match head.rsplit_once(':') {
        Some(("", _)) => return Err(bad("empty CONFIG_ID before ':'".to_owned())),
        Some((id, name)) => (Some(id.to_owned()), name),
        None => (None, head),
    };
    let Some(provider) = ApiProvider::from_name(name) else {
        let names = ApiProvider::ALL.map(ApiProvider::as_str);
        return Err(ChoiceError::UnknownProvider { value: value.to_owned(), provider: name.to_owned(), suggestion: closest(name, &names) });
    };
    let mut pieces = rest.split(',');
    let url = pieces.next().unwrap_or_default();
    let has_host = |scheme: &str| url.strip_prefix(scheme).is_some_and(|host| !host.is_empty());
    if url.is_empty() {
        return Err(bad("missing URL after '='".to_owned()));
    }
    if !has_host("http://") && !has_host("https://") {
        return Err(bad(format!("URL {:?} does not start with http:// or https://", mask_userinfo(url))));
    }
    let mut model = None;
    for piece in pieces {
        match piece.split_once('=') {
            Some(("model", _)) if model.is_some() => return Err(bad("model is given twice".to_owned())),
            Some(("model", "")) => return Err(bad("empty model".to_owned())),
            Some(("model", id)) => model = Some(id.to_owned()),
            _ => {
                let key = piece.split_once('=').map_or(piece, |(key, _)| key);
                return Err(bad(format!("unknown setting {key:?} (the only setting is model)")));
            }
        }
    }
    let model = model.ok_or_else(|| bad("missing model=ID".to_owned()))?;
    Ok(ProviderOverride { config_id, provider, url: url.to_owned(), model })
}

impl fmt::Display for LlmChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmChoice::Flow => f.write_str("flow"),
            LlmChoice::Simulated(spec) => spec.fmt(f),
            LlmChoice::Provider(provider) => {
                if let Some(id) = &provider.config_id {
                    write!(f, "{id}:")?;
                }
                write!(f, "{}={},model={}", provider.provider, without_credentials(&provider.url), provider.model)
            }
        }
    }
}

impl fmt::Display for SimulatedSpec {
    /// `simulated`, with the options that differ from the defaults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("simulated")?;
        let defaults = SimulatedSpec::default();
        let mut separator = '?';
        let mut option = |f: &mut fmt::Formatter<'_>, name: &str, value: &str| {
            let written = write!(f, "{separator}{name}={value}");
            separator = '&';
            written
        };
        if self.latency_ms != defaults.latency_ms {
            option(f, "latency_ms", &self.latency_ms.to_string())?;
        }
        if self.array_len != defaults.array_len {
            option(f, "array_len", &self.array_len.to_string())?;
        }
        if let Some(script) = &self.script {
            option(f, "script", &percent_encode(&script.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// Escapes what would end or garble an option value.
fn percent_encode(text: &str) -> String {
    text.replace('%', "%25").replace('&', "%26")
}

/// Decodes `%XX` escapes; malformed escapes stay as they are.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped =
            (bytes[index] == b'%').then(|| text.get(index + 1..index + 3)).flatten().and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_owned())
}

/// The known name closest to `given`, when it is close enough to be a typo.
fn closest(given: &str, known: &[&'static str]) -> Option<&'static str> {
    let given = given.to_lowercase();
    if given.is_empty() {
        return None;
    }
    weft_spec::text::closest(known.iter().copied(), |name| {
        // A prefix or suffix ("latency" for "latency_ms") counts as close.
        let partial = given.len() >= 3 && (name.starts_with(&given) || name.ends_with(&given));
        let distance = if partial { 0 } else { weft_spec::text::edit_distance(&given, name) };
        (distance <= (name.len() / 3).max(1)).then_some(distance)
    })
}
