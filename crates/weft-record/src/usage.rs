//! Usage and cost: tokens per call, per node, per model and per run, and their cost where the
//! user gives prices (`--prices prices.toml`). There is no built-in price table to go stale: a
//! model without a price has an unknown cost, and says so.
//!
//! - [`Prices`] reads the prices file.
//! - [`UsageMeter`] accumulates calls and tokens, thread-safely, and renders the closing
//!   one-line summary ([`UsageMeter::summary_line`]) and the `--usage-json` document
//!   ([`UsageMeter::to_json`]).
//! - [`Metered`] is a [`ChatModel`] wrapper that feeds a meter from every call; callers that
//!   see the responses themselves can call [`UsageMeter::record`] instead.
//! - Retries happen inside a model's [`ChatModel::chat`] and are not visible in its answer:
//!   [`UsageMeter::retry_sleeper`] wraps the [`Sleeper`] a client waits with between attempts
//!   (`Resolver::with_sleeper`), counting one retry per wait; [`UsageMeter::add_retries`] is
//!   there for other sources.
//!
//! # The prices file
//!
//! ```toml
//! # US dollars per million tokens.
//! [models."gpt-4o-mini"]
//! input = 0.15          # prompt tokens
//! output = 0.60         # completion tokens
//! cached_input = 0.075  # optional: prompt tokens served from the provider's cache; default `input`
//!
//! # Optional: a price for a model at one endpoint (a model's `ChatModel::endpoint`, such as
//! # the server's base URL), which wins over the model's price.
//! [endpoints."http://127.0.0.1:8000/v1".models."llama3"]
//! input = 0
//! output = 0
//! ```
//!
//! Input tokens count cached ones too (as OpenAI reports `prompt_tokens`), so a call costs
//! `(input − cached) × input + cached × cached_input + output × output`, per million tokens.
//! Unknown keys, missing prices and negative numbers are errors naming the file, line and
//! column.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use toml::Spanned;

use weft_llm::retry::Sleeper;
use weft_llm::{ChatModel, ChatRequest, ChatResponse, DeltaSink, LlmError, Usage};
use weft_spec::text::line_column;

/// The price of one model, in currency units (US dollars by convention) per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million completion tokens.
    pub output: f64,
    /// Per million prompt tokens served from the provider's cache; `input` when absent.
    pub cached_input: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        (uncached as f64 * self.input + cached as f64 * self.cached_input.unwrap_or(self.input) + usage.output_tokens as f64 * self.output)
            / 1e6
    }
}

/// Why a prices file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// The file cannot be read.
    #[error("cannot read the prices file {}: {source}; check the path given to --prices", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or not a valid prices file.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// What a prices file holds, for messages.
const PRICES_SHAPE: &str = "a prices file holds [models.\"MODEL\"] tables (optionally [endpoints.\"URL\".models.\"MODEL\"]) with `input`, `output` and optional `cached_input`, each a price per million tokens";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesToml {
    #[serde(default)]
    models: BTreeMap<String, PriceToml>,
    #[serde(default)]
    endpoints: BTreeMap<String, EndpointToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointToml {
    #[serde(default)]
    models: BTreeMap<String, PriceToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceToml {
    input: Spanned<f64>,
    output: Spanned<f64>,
    #[serde(default)]
    cached_input: Option<Spanned<f64>>,
}

/// Prices per model (and optionally per endpoint and model), from a prices file. The default
/// holds no price: every cost is unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    source: Option<PathBuf>,
    models: BTreeMap<String, Price>,
    endpoints: BTreeMap<String, BTreeMap<String, Price>>,
}

impl Prices {
    /// No prices: every cost is unknown.
    pub fn new() -> Prices {
        Prices::default()
    }

    /// Reads the prices file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Prices, PricesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PricesError::Read { path: path.to_path_buf(), source })?;
        Prices::parse(&text, path)
    }

    /// Parses the text of a prices file read from `path` (named in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Prices, PricesError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            PricesError::Invalid { path: path.to_path_buf(), line, column, message }
        };
        let file: PricesToml = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end().replace('\n', " ");
            let hint =
                if message.starts_with("unknown field") || message.starts_with("missing field") || message.starts_with("invalid type") {
                    format!("; {PRICES_SHAPE}")
                } else {
                    String::new()
                };
            invalid(e.span().map_or(0, |s| s.start), format!("{message}{hint}"))
        })?;
        let price = |model: &str, p: PriceToml| -> Result<Price, PricesError> {
            let check = |name: &str, value: &Spanned<f64>| {
                let v = *value.get_ref();
                if v.is_finite() && v >= 0.0 {
                    Ok(v)
                } else {
                    Err(invalid(
                        value.span().start,
                        format!("`{name}` of {model:?} must be a price per million tokens, a number ≥ 0, not {v}"),
                    ))
                }
            };
            Ok(Price {
                input: check("input", &p.input)?,
                output: check("output", &p.output)?,
                cached_input: p.cached_input.as_ref().map(|c| check("cached_input", c)).transpose()?,
            })
        };
        let mut prices = Prices { source: Some(path.to_path_buf()), ..Prices::default() };
        for (model, p) in file.models {
            let p = price(&model, p)?;
            prices.models.insert(model, p);
        }
        for (endpoint, table) in file.endpoints {
            let mut models = BTreeMap::new();
            for (model, p) in table.models {
                let p = price(&model, p)?;
                models.insert(model, p);
            }
            prices.endpoints.insert(normalize_endpoint(&endpoint).to_owned(), models);
        }
        Ok(prices)
    }

    /// The file the prices were read from (`None` for [`Prices::new`]).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The price of `model`: at `endpoint` when the file gives one there, else the model's.
    pub fn price(&self, endpoint: Option<&str>, model: &str) -> Option<&Price> {
        endpoint
            .and_then(|e| self.endpoints.get(normalize_endpoint(e)))
            .and_then(|models| models.get(model))
            .or_else(|| self.models.get(model))
    }

    /// What `usage` of `model` costs, or `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.price(None, model).map(|p| p.cost(usage))
    }

    /// What `usage` of `model` at `endpoint` costs, or `None` when it has no price.
    pub fn cost_at(&self, endpoint: &str, model: &str, usage: &Usage) -> Option<f64> {
        self.price(Some(endpoint), model).map(|p| p.cost(usage))
    }
}

fn normalize_endpoint(endpoint: &str) -> &str {
    endpoint.trim().trim_end_matches('/')
}

/// Calls and tokens, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Calls made (failed ones included).
    pub calls: u64,
    /// Calls that ended in an error (after the client's retries).
    pub failed_calls: u64,
    /// Prompt tokens (cached ones included).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    pub cached_tokens: u64,
}

impl Tally {
    /// The tokens as a [`Usage`].
    pub fn usage(&self) -> Usage {
        Usage { input_tokens: self.input_tokens, output_tokens: self.output_tokens, cached_tokens: self.cached_tokens }
    }

    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.failed_calls += other.failed_calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// Which model served a call: the id prices are looked up by, and its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelKey {
    /// The model id (as in the prices file).
    pub model: String,
    /// The model's endpoint ([`ChatModel::endpoint`]).
    pub endpoint: String,
}

/// A thread-safe accumulator of LLM usage: calls and tokens per node and model, and retries.
/// Share it with an `Arc`.
#[derive(Debug, Default)]
pub struct UsageMeter {
    /// Tallies by (node, model).
    tallies: Mutex<BTreeMap<(String, ModelKey), Tally>>,
    retries: AtomicU64,
    /// HTTP requests of ApiNodes and RemoteTools ([`MeteredHttp`]): made, retried, failed.
    http_requests: AtomicU64,
    http_retries: AtomicU64,
    http_failed: AtomicU64,
    /// MCP requests of tools and toolboxes ([`MeteredMcp`]): made, retried, failed.
    mcp_requests: AtomicU64,
    mcp_retries: AtomicU64,
    mcp_failed: AtomicU64,
}

/// The cost of some usage: known, or unknown for want of the prices of these models.
type Cost = Result<f64, Vec<String>>;

impl UsageMeter {
    /// A meter with nothing counted.
    pub fn new() -> UsageMeter {
        UsageMeter::default()
    }

    /// Counts a successful call of `node` to `model` at `endpoint` that used `usage`.
    pub fn record(&self, model: &str, endpoint: &str, node: &str, usage: &Usage) {
        let tally = Tally {
            calls: 1,
            failed_calls: 0,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
        };
        self.add(model, endpoint, node, &tally);
    }

    /// Counts a failed call of `node` to `model` at `endpoint` (no tokens known).
    pub fn record_failure(&self, model: &str, endpoint: &str, node: &str) {
        self.add(model, endpoint, node, &Tally { calls: 1, failed_calls: 1, ..Tally::default() });
    }

    fn add(&self, model: &str, endpoint: &str, node: &str, tally: &Tally) {
        let key = (node.to_owned(), ModelKey { model: model.to_owned(), endpoint: endpoint.to_owned() });
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().add(tally);
    }

    /// Counts `n` retries.
    pub fn add_retries(&self, n: u64) {
        self.retries.fetch_add(n, Ordering::Relaxed);
    }

    /// The retries counted.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Counts an HTTP request of an ApiNode or RemoteTool that took `attempts` attempts and
    /// `failed` (no answer, or a non-2xx one).
    pub fn record_http(&self, attempts: u32, failed: bool) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        self.http_retries.fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
        if failed {
            self.http_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an MCP request (a call or a listing) that took `attempts` attempts and `failed`
    /// (no answer; an `isError` result is an answer).
    pub fn record_mcp(&self, attempts: u32, failed: bool) {
        self.mcp_requests.fetch_add(1, Ordering::Relaxed);
        self.mcp_retries.fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
        if failed {
            self.mcp_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// MCP requests counted so far: made, retries, failed.
    pub fn mcp(&self) -> (u64, u64, u64) {
        (self.mcp_requests.load(Ordering::Relaxed), self.mcp_retries.load(Ordering::Relaxed), self.mcp_failed.load(Ordering::Relaxed))
    }

    /// HTTP requests counted so far: made, retries, failed.
    pub fn http(&self) -> (u64, u64, u64) {
        (self.http_requests.load(Ordering::Relaxed), self.http_retries.load(Ordering::Relaxed), self.http_failed.load(Ordering::Relaxed))
    }

    /// A sleeper waiting with `inner` that counts each wait as one retry: give it to the
    /// clients (`Resolver::with_sleeper`), which wait once before every retry.
    pub fn retry_sleeper(self: &Arc<Self>, inner: Arc<dyn Sleeper>) -> Arc<dyn Sleeper> {
        Arc::new(CountingSleeper { inner, meter: Arc::clone(self) })
    }

    fn snapshot(&self) -> BTreeMap<(String, ModelKey), Tally> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Everything counted.
    pub fn total(&self) -> Tally {
        let mut total = Tally::default();
        self.snapshot().values().for_each(|t| total.add(t));
        total
    }

    /// The tallies per model, sorted by model id then endpoint.
    pub fn by_model(&self) -> Vec<(ModelKey, Tally)> {
        let mut models: BTreeMap<ModelKey, Tally> = BTreeMap::new();
        for ((_, model), tally) in self.snapshot() {
            models.entry(model).or_default().add(&tally);
        }
        models.into_iter().collect()
    }

    /// The tallies per node, sorted by node.
    pub fn by_node(&self) -> Vec<(String, Tally)> {
        let mut nodes: BTreeMap<String, Tally> = BTreeMap::new();
        for ((node, _), tally) in self.snapshot() {
            nodes.entry(node).or_default().add(&tally);
        }
        nodes.into_iter().collect()
    }

    /// The cost of everything counted, or `None` when a model that used tokens has no price.
    pub fn cost(&self, prices: &Prices) -> Option<f64> {
        cost_of(prices, self.snapshot().iter().map(|((_, m), t)| (m, t))).ok()
    }

    /// The closing summary, one line:
    /// `12 LLM calls (2 retries) · 3,456 tokens in (1,024 cached), 789 out · cost $0.0123 · 1.2 s`,
    /// the cost replaced by `cost unknown: no price for gpt-x; give --prices prices.toml` (or
    /// `... in <file>; add [models."gpt-x"]` when a prices file was given).
    pub fn summary_line(&self, prices: &Prices, wall: Duration) -> String {
        let snapshot = self.snapshot();
        let mut total = Tally::default();
        snapshot.values().for_each(|t| total.add(t));
        let retries = self.retries();
        let part = |(n, retries, failed): (u64, u64, u64), one: &str, many: &str| {
            (n > 0).then(|| {
                let mut notes = Vec::new();
                if retries > 0 {
                    notes.push(plural(retries, "retry", "retries"));
                }
                if failed > 0 {
                    notes.push(format!("{} failed", thousands(failed)));
                }
                let mut part = plural(n, one, many);
                if !notes.is_empty() {
                    part.push_str(&format!(" ({})", notes.join(", ")));
                }
                part
            })
        };
        let parts: Vec<String> =
            [part(self.http(), "HTTP request", "HTTP requests"), part(self.mcp(), "MCP call", "MCP calls")].into_iter().flatten().collect();
        let http_part = (!parts.is_empty()).then(|| parts.join(" · "));
        if total.calls == 0 {
            return match http_part {
                Some(part) => format!("no LLM calls · {part} · {}", seconds(wall)),
                None => format!("no LLM calls · {}", seconds(wall)),
            };
        }
        let mut notes = Vec::new();
        if retries > 0 {
            notes.push(plural(retries, "retry", "retries"));
        }
        if total.failed_calls > 0 {
            notes.push(format!("{} failed", thousands(total.failed_calls)));
        }
        let mut line = plural(total.calls, "LLM call", "LLM calls");
        if !notes.is_empty() {
            line.push_str(&format!(" ({})", notes.join(", ")));
        }
        line.push_str(&format!(" · {} tokens in", thousands(total.input_tokens)));
        if total.cached_tokens > 0 {
            line.push_str(&format!(" ({} cached)", thousands(total.cached_tokens)));
        }
        line.push_str(&format!(", {} out", thousands(total.output_tokens)));
        match cost_of(prices, snapshot.iter().map(|((_, m), t)| (m, t))) {
            Ok(cost) => line.push_str(&format!(" · cost {}", dollars(cost))),
            Err(unpriced) => {
                let names = unpriced.join(", ");
                match prices.source() {
                    None => line.push_str(&format!(" · cost unknown: no price for {names}; give --prices prices.toml")),
                    Some(file) => {
                        let first = unpriced.first().map(String::as_str).unwrap_or_default();
                        line.push_str(&format!(" · cost unknown: no price for {names} in {}; add [models.{first:?}]", file.display()));
                    }
                }
            }
        }
        if let Some(part) = http_part {
            line.push_str(&format!(" · {part}"));
        }
        line.push_str(&format!(" · {}", seconds(wall)));
        line
    }

    /// The `--usage-json` document: totals (with retries and wall time), then per model and per
    /// node: calls, failed calls, input, output and cached tokens, and the cost (`null` when
    /// unknown). `unpriced_models` lists the models without a price that used tokens, `prices`
    /// the prices file (`null` when none was given).
    pub fn to_json(&self, prices: &Prices, wall: Duration) -> Json {
        let snapshot = self.snapshot();
        let tally_json = |tally: &Tally, cost: &Cost| {
            let mut value = serde_json::to_value(tally).unwrap_or(Json::Null);
            if let Json::Object(members) = &mut value {
                members.insert("cost".to_owned(), cost.as_ref().ok().map_or(Json::Null, |c| json!(c)));
            }
            value
        };
        let all = || snapshot.iter().map(|((_, m), t)| (m, t));
        let mut total = Tally::default();
        snapshot.values().for_each(|t| total.add(t));
        let total_cost = cost_of(prices, all());
        let mut total_json = tally_json(&total, &total_cost);
        if let Json::Object(members) = &mut total_json {
            members.insert("retries".to_owned(), json!(self.retries()));
            members.insert("wall_s".to_owned(), json!(wall.as_secs_f64()));
        }

        let mut models: BTreeMap<&ModelKey, Tally> = BTreeMap::new();
        let mut nodes: BTreeMap<&str, Vec<(&ModelKey, &Tally)>> = BTreeMap::new();
        for ((node, model), tally) in &snapshot {
            models.entry(model).or_default().add(tally);
            nodes.entry(node).or_default().push((model, tally));
        }
        let models: Vec<Json> = models
            .into_iter()
            .map(|(model, tally)| {
                let mut value = tally_json(&tally, &cost_of(prices, [(model, &tally)]));
                if let Json::Object(members) = &mut value {
                    members.insert("model".to_owned(), json!(model.model));
                    members.insert("endpoint".to_owned(), json!(model.endpoint));
                    let price = prices.price(Some(&model.endpoint), &model.model);
                    members.insert("price".to_owned(), serde_json::to_value(price).unwrap_or(Json::Null));
                }
                value
            })
            .collect();
        let nodes: Vec<Json> = nodes
            .into_iter()
            .map(|(node, parts)| {
                let mut tally = Tally::default();
                parts.iter().for_each(|(_, t)| tally.add(t));
                let mut value = tally_json(&tally, &cost_of(prices, parts.iter().copied()));
                if let Json::Object(members) = &mut value {
                    let mut names: Vec<&str> = parts.iter().map(|(m, _)| m.model.as_str()).collect();
                    names.dedup();
                    members.insert("node".to_owned(), json!(node));
                    members.insert("models".to_owned(), json!(names));
                }
                value
            })
            .collect();
        let mut usage = json!({
            "total": total_json,
            "unpriced_models": total_cost.err().unwrap_or_default(),
            "prices": prices.source().map(|p| p.display().to_string()),
            "models": models,
            "nodes": nodes,
        });
        let (http, http_retries, http_failed) = self.http();
        if http > 0
            && let Json::Object(members) = &mut usage
        {
            members.insert("http".to_owned(), json!({"requests": http, "retries": http_retries, "failed": http_failed}));
        }
        let (mcp, mcp_retries, mcp_failed) = self.mcp();
        if mcp > 0
            && let Json::Object(members) = &mut usage
        {
            members.insert("mcp".to_owned(), json!({"requests": mcp, "retries": mcp_retries, "failed": mcp_failed}));
        }
        usage
    }
}

/// The cost of some tallies, or the models (sorted, once each) that used tokens and have no
/// price.
fn cost_of<'a>(prices: &Prices, tallies: impl IntoIterator<Item = (&'a ModelKey, &'a Tally)>) -> Cost {
    let mut cost = 0.0;
    let mut unpriced: Vec<String> = Vec::new();
    for (model, tally) in tallies {
        let usage = tally.usage();
        if usage == Usage::default() {
            continue;
        }
        match prices.price(Some(&model.endpoint), &model.model) {
            Some(price) => cost += price.cost(&usage),
            None => unpriced.push(model.model.clone()),
        }
    }
    if unpriced.is_empty() {
        Ok(cost)
    } else {
        unpriced.sort();
        unpriced.dedup();
        Err(unpriced)
    }
}

/// `n` with a comma every three digits.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// A cost in dollars: cents from $1 up, else three significant digits (`$0.0123`).
fn dollars(cost: f64) -> String {
    if cost == 0.0 {
        return "$0.00".to_owned();
    }
    if cost >= 1.0 {
        return format!("${cost:.2}");
    }
    let decimals = (2 - cost.log10().floor() as i64).clamp(2, 12) as usize;
    let text = format!("{cost:.decimals$}");
    let text = text.trim_end_matches('0');
    let text = if text.len() < "0.00".len() { format!("{text:0<4}") } else { text.to_owned() };
    format!("${text}")
}

/// A wall time: `1.2 s`, `2 min 5 s`.
fn seconds(wall: Duration) -> String {
    let s = wall.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = wall.as_secs();
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// Counts each wait as a retry.
struct CountingSleeper {
    inner: Arc<dyn Sleeper>,
    meter: Arc<UsageMeter>,
}

impl fmt::Debug for CountingSleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingSleeper").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Sleeper for CountingSleeper {
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.meter.add_retries(1);
        self.inner.sleep(delay)
    }
}

/// A model wrapper that counts every call of its model into a [`UsageMeter`], under a model id
/// (the one prices are looked up by), the model's endpoint and the calling node's name
/// ([`weft_llm::RequestMeta::node`]). Its name and endpoint are its model's.
pub struct Metered {
    inner: Arc<dyn ChatModel>,
    meter: Arc<UsageMeter>,
    model: String,
}

impl fmt::Debug for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered").field("model", &self.model).field("inner", &self.inner.name()).finish_non_exhaustive()
    }
}

impl Metered {
    /// Counts the calls of `inner` into `meter` as calls of the model `model` (its id, as in the
    /// prices file).
    pub fn new(inner: Arc<dyn ChatModel>, meter: Arc<UsageMeter>, model: impl Into<String>) -> Metered {
        Metered { inner, meter, model: model.into() }
    }

    fn count(&self, request: &ChatRequest, result: &Result<ChatResponse, LlmError>) {
        let endpoint = self.inner.endpoint();
        match result {
            Ok(response) => self.meter.record(&self.model, endpoint, &request.meta.node, &response.usage),
            Err(_) => self.meter.record_failure(&self.model, endpoint, &request.meta.node),
        }
    }
}

#[async_trait::async_trait]
impl ChatModel for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let result = self.inner.chat(request).await;
        self.count(request, &result);
        result
    }

    async fn chat_streaming(&self, request: &ChatRequest, on_delta: DeltaSink<'_>) -> Result<ChatResponse, LlmError> {
        let result = self.inner.chat_streaming(request, on_delta).await;
        self.count(request, &result);
        result
    }
}

/// An HTTP client wrapper counting the requests of ApiNodes and RemoteTools in a [`UsageMeter`]
/// (the retries from the attempts each took).
pub struct MeteredHttp {
    inner: Arc<dyn weft_llm::http::HttpSend>,
    meter: Arc<UsageMeter>,
}

impl fmt::Debug for MeteredHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredHttp").field("client", &self.inner.name()).finish_non_exhaustive()
    }
}

impl MeteredHttp {
    /// Counts the requests `inner` sends into `meter`.
    pub fn new(inner: Arc<dyn weft_llm::http::HttpSend>, meter: Arc<UsageMeter>) -> MeteredHttp {
        MeteredHttp { inner, meter }
    }
}

#[async_trait::async_trait]
impl weft_llm::http::HttpSend for MeteredHttp {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn send(&self, request: &weft_llm::http::HttpRequest) -> Result<weft_llm::http::HttpResponse, weft_llm::http::HttpError> {
        let result = self.inner.send(request).await;
        match &result {
            Ok(response) => self.meter.record_http(response.attempts.max(1), !response.is_success()),
            Err(error) => self.meter.record_http(error.attempts.max(1), true),
        }
        result
    }
}

/// An MCP client wrapper counting the listings and calls of MCP tools and toolboxes in a
/// [`UsageMeter`] (the retries from the attempts each took).
#[derive(Debug)]
pub struct MeteredMcp {
    inner: Arc<dyn weft_tools::mcp::McpSend>,
    meter: Arc<UsageMeter>,
}

impl MeteredMcp {
    /// Counts the requests `inner` makes into `meter`.
    pub fn new(inner: Arc<dyn weft_tools::mcp::McpSend>, meter: Arc<UsageMeter>) -> MeteredMcp {
        MeteredMcp { inner, meter }
    }
}

#[async_trait::async_trait]
impl weft_tools::mcp::McpSend for MeteredMcp {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn reaches_servers(&self) -> bool {
        self.inner.reaches_servers()
    }

    async fn send(&self, sessions: &weft_tools::mcp::Sessions, request: &weft_tools::mcp::McpRequest) -> weft_tools::mcp::McpReply {
        let reply = self.inner.send(sessions, request).await;
        self.meter.record_mcp(reply.attempts.max(1), reply.result.is_err());
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_llm::RequestMeta;
    use weft_llm::retry::RecordingSleeper;
    use weft_llm::simulated::SimulatedModel;

    const FILE: &str = r#"
# dollars per million tokens
[models."gpt-4o-mini"]
input = 0.15
output = 0.60
cached_input = 0.075

[models.llama3]
input = 1
output = 2

[endpoints."http://127.0.0.1:8000/v1/".models.llama3]
input = 0
output = 0
"#;

    fn prices() -> Prices {
        Prices::parse(FILE, Path::new("prices.toml")).unwrap()
    }

    fn usage(input: u64, output: u64, cached: u64) -> Usage {
        Usage { input_tokens: input, output_tokens: output, cached_tokens: cached }
    }

    #[test]
    fn costs_from_the_file() {
        let p = prices();
        let cost = p.cost("gpt-4o-mini", &usage(1_000_000, 1_000_000, 400_000)).unwrap();
        assert!((cost - (0.6 * 0.15 + 0.4 * 0.075 + 0.60)).abs() < 1e-12, "{cost}");
        assert_eq!(p.cost("llama3", &usage(1_000_000, 500_000, 0)), Some(2.0));
        // Cached tokens default to the input price.
        assert_eq!(p.cost("llama3", &usage(1_000_000, 0, 1_000_000)), Some(1.0));
        assert_eq!(p.cost_at("http://127.0.0.1:8000/v1", "llama3", &usage(1_000_000, 1, 0)), Some(0.0));
        assert_eq!(p.cost_at("http://elsewhere/v1", "llama3", &usage(1_000_000, 0, 0)), Some(1.0));
        assert_eq!(p.cost("gpt-x", &usage(1, 1, 0)), None);
        assert_eq!(Prices::new().cost("gpt-4o-mini", &usage(1, 1, 0)), None);
        assert_eq!(p.source(), Some(Path::new("prices.toml")));
    }

    #[test]
    fn bad_prices_files() {
        let error = |text: &str| Prices::parse(text, Path::new("p.toml")).unwrap_err().to_string();
        let e = error("[models.a]\ninput = 1\noutput = 2\ninptu = 3\n");
        assert!(
            e.starts_with("p.toml:4:1: unknown field `inptu`, expected one of `input`, `output`, `cached_input`; a prices file holds"),
            "{e}"
        );
        let e = error("[model.a]\ninput = 1\n");
        assert!(e.starts_with("p.toml:1:2: unknown field `model`, expected `models` or `endpoints`"), "{e}");
        let e = error("[models.a]\ninput = 1\n");
        assert!(e.starts_with("p.toml:1:1: missing field `output`"), "{e}");
        let e = error("[models.a]\ninput = -1\noutput = 2\n");
        assert_eq!(e, "p.toml:2:9: `input` of \"a\" must be a price per million tokens, a number ≥ 0, not -1");
        let e = error("[models.a]\ninput = \"cheap\"\noutput = 2\n");
        assert!(e.starts_with("p.toml:2:9: invalid type: string \"cheap\", expected f64"), "{e}");
        let e = error("[models.a\n");
        assert!(e.starts_with("p.toml:1:"), "{e}");
        let e = Prices::load("/nonexistent/prices.toml").unwrap_err().to_string();
        assert!(e.starts_with("cannot read the prices file /nonexistent/prices.toml: "), "{e}");
        assert!(Prices::parse("", Path::new("p.toml")).unwrap().models.is_empty());
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3456), "3,456");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(dollars(0.0), "$0.00");
        assert_eq!(dollars(0.0123), "$0.0123");
        assert_eq!(dollars(0.5), "$0.50");
        assert_eq!(dollars(0.000012), "$0.000012");
        assert_eq!(dollars(12.345), "$12.35");
        assert_eq!(seconds(Duration::from_millis(1234)), "1.2 s");
        assert_eq!(seconds(Duration::from_secs(125)), "2 min 5 s");
    }

    fn meter() -> UsageMeter {
        let meter = UsageMeter::new();
        meter.record("gpt-4o-mini", "https://api.openai.com/v1", "summarize", &usage(2_000, 500, 1_024));
        meter.record("gpt-4o-mini", "https://api.openai.com/v1", "summarize", &usage(1_456, 289, 0));
        meter.record("llama3", "http://127.0.0.1:8000/v1", "classify", &usage(0, 0, 0));
        meter.record_failure("llama3", "http://127.0.0.1:8000/v1", "classify");
        meter.add_retries(2);
        meter
    }

    #[test]
    fn summary_lines() {
        let m = meter();
        let wall = Duration::from_millis(1234);
        assert_eq!(
            m.summary_line(&prices(), wall),
            "4 LLM calls (2 retries, 1 failed) · 3,456 tokens in (1,024 cached), 789 out · cost $0.000915 · 1.2 s"
        );
        assert_eq!(
            m.summary_line(&Prices::new(), wall),
            "4 LLM calls (2 retries, 1 failed) · 3,456 tokens in (1,024 cached), 789 out · cost unknown: no price for gpt-4o-mini; give --prices prices.toml · 1.2 s"
        );
        let partial = Prices::parse("[models.other]\ninput = 1\noutput = 1\n", Path::new("mine.toml")).unwrap();
        assert!(
            m.summary_line(&partial, wall).contains("cost unknown: no price for gpt-4o-mini in mine.toml; add [models.\"gpt-4o-mini\"]")
        );
        assert_eq!(UsageMeter::new().summary_line(&Prices::new(), wall), "no LLM calls · 1.2 s");
        let one = UsageMeter::new();
        one.record("m", "e", "n", &usage(1, 1, 0));
        assert_eq!(
            one.summary_line(&Prices::parse("[models.m]\ninput = 0\noutput = 0\n", Path::new("p")).unwrap(), wall),
            "1 LLM call · 1 tokens in, 1 out · cost $0.00 · 1.2 s"
        );
        assert_eq!(m.cost(&Prices::new()), None);
    }

    #[test]
    fn the_usage_document() {
        let m = meter();
        let doc = m.to_json(&prices(), Duration::from_millis(1500));
        assert_eq!(doc["total"]["calls"], 4);
        assert_eq!(doc["total"]["failed_calls"], 1);
        assert_eq!(doc["total"]["retries"], 2);
        assert_eq!(doc["total"]["input_tokens"], 3456);
        assert_eq!(doc["total"]["cached_tokens"], 1024);
        assert_eq!(doc["total"]["wall_s"], 1.5);
        assert!((doc["total"]["cost"].as_f64().unwrap() - m.cost(&prices()).unwrap()).abs() < 1e-15);
        assert_eq!(doc["prices"], "prices.toml");
        assert_eq!(doc["unpriced_models"], json!([]));
        assert_eq!(doc["models"][0]["model"], "gpt-4o-mini");
        assert_eq!(doc["models"][0]["price"], json!({"input": 0.15, "output": 0.6, "cached_input": 0.075}));
        assert_eq!(doc["models"][1]["model"], "llama3");
        assert_eq!(doc["models"][1]["cost"], 0.0);
        assert_eq!(doc["models"][1]["price"], json!({"input": 0.0, "output": 0.0, "cached_input": null}));
        assert_eq!(doc["nodes"][0]["node"], "classify");
        assert_eq!(doc["nodes"][0]["models"], json!(["llama3"]));
        assert_eq!(doc["nodes"][1]["node"], "summarize");
        assert_eq!(doc["nodes"][1]["calls"], 2);

        let unknown = m.to_json(&Prices::new(), Duration::ZERO);
        assert_eq!(unknown["total"]["cost"], Json::Null);
        assert_eq!(unknown["models"][0]["cost"], Json::Null);
        assert_eq!(unknown["models"][0]["price"], Json::Null);
        // A model that used no tokens costs nothing, priced or not.
        assert_eq!(unknown["models"][1]["cost"], 0.0);
        assert_eq!(unknown["unpriced_models"], json!(["gpt-4o-mini"]));
        assert_eq!(unknown["prices"], Json::Null);
    }

    #[tokio::test]
    async fn metered_models_and_counted_retries() {
        let meter = Arc::new(UsageMeter::new());
        let model = Metered::new(Arc::new(SimulatedModel::new(Default::default())), Arc::clone(&meter), "sim");
        assert_eq!(model.name(), "simulated");
        let request = ChatRequest {
            messages: vec![weft_llm::ChatMessage::new(weft_llm::Role::User, "Hello there")],
            meta: RequestMeta { node: "greet".into(), node_path: "root/greet".into(), call_index: 0, batch_index: None },
            ..ChatRequest::default()
        };
        let response = model.chat(&request).await.unwrap();
        let mut text = String::new();
        let streamed = model.chat_streaming(&request, &mut |d: &str| text.push_str(d)).await.unwrap();
        assert_eq!(text, streamed.text);
        let nodes = meter.by_node();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].0, "greet");
        assert_eq!(nodes[0].1.calls, 2);
        assert_eq!(nodes[0].1.input_tokens, 2 * response.usage.input_tokens);
        assert_eq!(meter.by_model()[0].0, ModelKey { model: "sim".into(), endpoint: "simulated".into() });
        assert_eq!(meter.total().output_tokens, 2 * response.usage.output_tokens);

        let inner = RecordingSleeper::new();
        let sleeper = meter.retry_sleeper(inner.clone());
        sleeper.sleep(Duration::from_secs(1)).await;
        sleeper.sleep(Duration::from_secs(2)).await;
        assert_eq!(meter.retries(), 2);
        assert_eq!(inner.delays(), [Duration::from_secs(1), Duration::from_secs(2)]);
    }
}
