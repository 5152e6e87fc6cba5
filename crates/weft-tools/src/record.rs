//! Record and replay (`--record run.jsonl`, `--replay run.jsonl`): the record file shared by LLM
//! calls (`weft_llm::record`) and tool calls, and the tool wrappers [`RecordingTool`] and
//! [`ReplayTool`].
//!
//! # The file
//!
//! JSON Lines, one exchange per line, written as exchanges finish (so in completion order; lines
//! are found by key, never by position). The first line is a header,
//! `{"kind":"header","format":"weft-record","version":1}`. Then:
//!
//! - `{"kind":"llm","key":…,"node_path":…,"occurrence":n,"model":…,"request":{…},"response":{…}}`
//!   or `…,"error":{"kind":"transient"|"permanent","message":…}}`, written by `weft_llm::record`;
//! - `{"kind":"tool","key":…,"tool":…,"occurrence":n,"args":{…},"result":…}` or
//!   `…,"error":{"kind":"failed"|"bad_output"|"unavailable","message":…}}`
//!   (`{"kind":"timeout","after_s":…}` for a timeout, `{"kind":"output_too_large","limit_bytes":…}`
//!   for a command's stdout past its cap), written by [`RecordingTool`].
//!
//! Lines of other kinds are skipped by the readers, so later kinds can be added.
//!
//! # Keys
//!
//! An exchange is found by `(scope, key, occurrence)`. The key is the SHA-256 of the canonical
//! JSON (object keys sorted, no spaces) of what determines the answer, with secrets redacted
//! ([`Secrets::key`]): for a tool its arguments, for an LLM call its messages, response format,
//! tools and generation parameters. The scope is the tool's name, or the calling node's path
//! for an LLM call. The occurrence (from 1) tells apart the same request made several times in
//! one scope: the n-th call with that key in that scope is occurrence n
//! ([`RecordLog::occurrence`]).
//!
//! Tools are called with their arguments only (the [`Tool`] trait carries no node path), so
//! identical calls of one tool are told apart by the order they start in; a tool whose result
//! depends only on its arguments replays exactly under any order.
//!
//! # Secrets
//!
//! Every string of a line (keys of objects included) has each secret value given to
//! [`RecordLog::add_secrets`] replaced by [`REDACTED`] before it is written: requests,
//! arguments, answers and error messages alike. Keys are computed on the redacted content, so
//! no hash of a secret reaches the file either; a replay must therefore be given the same
//! secret values ([`ToolReplay::with_secrets`]) when secrets can occur in requests. HTTP
//! headers (the `Authorization` header with the API key) are not part of any exchange and are
//! never recorded.
//!
//! # Writing
//!
//! [`RecordLog::append`] writes under a `std::sync::Mutex` into a `BufWriter` and flushes each
//! line, so a crashed run leaves a usable file. The lock is held only for one short buffered
//! write of an already-serialized line (microseconds, no await inside), which is cheaper than a
//! `spawn_blocking` hop per line and does not stall the async runtime in practice. A write
//! that fails does not fail the call; the first error is kept and [`RecordLog::finish`]
//! reports it with the number of lines lost.

use crate::{Tool, ToolError, ToolRegistry};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// The version of the record format written in the header line.
pub const FORMAT_VERSION: u64 = 1;

/// What a secret is replaced with in a record file (every scrubbed output uses the same mask).
pub use weft_guard::secrets::REDACTED;
/// Secret values to keep out of record files: the process's scrubber ([`weft_guard::Secrets`]).
pub use weft_guard::secrets::Secrets;

/// The `format` of the header line.
const FORMAT_NAME: &str = "weft-record";

/// How many characters of a request an error message quotes.
pub const EXCERPT_CHARS: usize = 60;

/// The key of `content`: the SHA-256 (hex) of its canonical JSON, `secrets` redacted.
pub fn redacted_key(secrets: &Secrets, content: &Json) -> String {
    if secrets.is_empty() {
        return content_key(content);
    }
    let mut redacted = content.clone();
    secrets.redact(&mut redacted);
    content_key(&redacted)
}

/// The SHA-256 (lowercase hex) of the canonical JSON of `value`: object keys sorted, no
/// whitespace, so the key does not depend on the order members were written in.
pub fn content_key(value: &Json) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn canonical(value: &Json, out: &mut String) {
    match value {
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            let mut sorted: Vec<(&String, &Json)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Counts occurrences: the n-th [`Occurrences::next`] with the same kind, scope and key
/// returns n (from 1). Thread-safe.
#[derive(Debug, Default)]
pub struct Occurrences {
    counts: Mutex<HashMap<(String, String, String), u64>>,
}

impl Occurrences {
    /// No occurrences counted yet.
    pub fn new() -> Occurrences {
        Occurrences::default()
    }

    /// Counts one more occurrence of `key` in `scope` for exchanges of `kind`, and returns its
    /// number (1 for the first).
    pub fn next(&self, kind: &str, scope: &str, key: &str) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry((kind.to_owned(), scope.to_owned(), key.to_owned())).or_insert(0);
        *count += 1;
        *count
    }
}

/// The record file of a process, shared by every recorded model and tool: one JSON line per
/// exchange, secrets redacted. See the [module docs](self).
pub struct RecordLog {
    path: PathBuf,
    secrets: RwLock<Secrets>,
    occurrences: Occurrences,
    out: Mutex<Writer>,
}

struct Writer {
    file: BufWriter<File>,
    error: Option<io::Error>,
    lost: u64,
}

impl fmt::Debug for RecordLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RecordLog {
    /// Creates (or truncates) the record file at `path` and writes its header line.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Arc<RecordLog>> {
        let path = path.as_ref().to_path_buf();
        let mut file = BufWriter::new(File::create(&path)?);
        let header = json!({"kind": "header", "format": FORMAT_NAME, "version": FORMAT_VERSION});
        writeln!(file, "{header}")?;
        file.flush()?;
        Ok(Arc::new(RecordLog {
            path,
            secrets: RwLock::new(Secrets::default()),
            occurrences: Occurrences::new(),
            out: Mutex::new(Writer { file, error: None, lost: 0 }),
        }))
    }

    /// Like [`RecordLog::create`], redacting these secret values from the start.
    pub fn create_with_secrets<S: Into<String>>(
        path: impl AsRef<Path>,
        secrets: impl IntoIterator<Item = S>,
    ) -> io::Result<Arc<RecordLog>> {
        let log = RecordLog::create(path)?;
        log.add_secrets(secrets);
        Ok(log)
    }

    /// Like [`RecordLog::create`], redacting every secret of `secrets` from the start.
    pub fn create_with_scrubber(path: impl AsRef<Path>, secrets: &Secrets) -> io::Result<Arc<RecordLog>> {
        let log = RecordLog::create(path)?;
        log.secrets.write().unwrap_or_else(PoisonError::into_inner).merge(secrets);
        Ok(log)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Redacts these secret values (empty strings are ignored) from every line written from now
    /// on.
    pub fn add_secrets<S: Into<String>>(&self, secrets: impl IntoIterator<Item = S>) {
        self.secrets.write().unwrap_or_else(PoisonError::into_inner).extend(secrets);
    }

    /// The secret values, for a replay of this file in the same process.
    pub fn secrets(&self) -> Secrets {
        self.secrets.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The key of `content`, secrets redacted ([`Secrets::key`]).
    pub fn key(&self, content: &Json) -> String {
        redacted_key(&self.secrets.read().unwrap_or_else(PoisonError::into_inner), content)
    }

    /// The occurrence number (from 1) of one more exchange of `kind` with `key` in `scope`,
    /// counted over every wrapper writing to this log.
    pub fn occurrence(&self, kind: &str, scope: &str, key: &str) -> u64 {
        self.occurrences.next(kind, scope, key)
    }

    /// Redacts `line` and appends it as one line, flushed. A failed write is remembered for
    /// [`RecordLog::finish`].
    pub fn append(&self, mut line: Json) {
        self.secrets.read().unwrap_or_else(PoisonError::into_inner).redact(&mut line);
        let mut text = line.to_string();
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let written = out.file.write_all(text.as_bytes()).and_then(|()| out.file.flush());
        if let Err(e) = written {
            out.lost += 1;
            if out.error.is_none() {
                out.error = Some(e);
            }
        }
    }

    /// Flushes the file and reports the first failed write, if any, with the number of
    /// exchanges that may be missing from the file.
    pub fn finish(&self) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let flushed = out.file.flush();
        if let Some(e) = out.error.take() {
            let lost = std::mem::take(&mut out.lost);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot write the recording {}: {e}; {lost} exchange(s) may be missing from it", self.path.display()),
            ));
        }
        flushed.map_err(|e| io::Error::new(e.kind(), format!("cannot write the recording {}: {e}", self.path.display())))
    }
}

/// Why a record file cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be read.
    #[error("cannot read the recording {}: {source}; check the path given to --replay", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A line is not a recorded exchange.
    #[error("{}:{line}: {message}; the file is not a weft recording (write one with --record)", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One line of a record file, of the kind asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordLine {
    /// Its 1-based line number.
    pub line: usize,
    /// The JSON object.
    pub value: Json,
}

/// The lines of kind `kind` of the record file at `path`, in file order. Checks every line:
/// each must be a JSON object with a string `kind`, and a header must have a version this
/// build reads. A last line cut short (a run killed while writing) is skipped.
pub fn read_lines(path: &Path, kind: &str) -> Result<Vec<RecordLine>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read { path: path.to_path_buf(), source })?;
    let invalid = |line: usize, message: String| ReplayError::Invalid { path: path.to_path_buf(), line, message };
    let complete = text.ends_with('\n');
    let count = text.lines().count();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: Json = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(_) if number == count && !complete => break,
            Err(e) => return Err(invalid(number, format!("not JSON ({e})"))),
        };
        let Some(line_kind) = value.get("kind").and_then(Json::as_str) else {
            return Err(invalid(number, "not an object with a \"kind\"".to_owned()));
        };
        if line_kind == "header" {
            let version = value.get("version").and_then(Json::as_u64).unwrap_or(0);
            if value.get("format").and_then(Json::as_str) != Some(FORMAT_NAME) || version == 0 {
                return Err(invalid(number, "the header is not a weft-record header".to_owned()));
            }
            if version > FORMAT_VERSION {
                return Err(ReplayError::Invalid {
                    path: path.to_path_buf(),
                    line: number,
                    message: format!(
                        "recorded in format version {version}, and this weft reads version {FORMAT_VERSION} at most; replay it with a newer weft"
                    ),
                });
            }
        } else if line_kind == kind {
            lines.push(RecordLine { line: number, value });
        }
    }
    Ok(lines)
}

/// A short excerpt of `text` for messages: at most [`EXCERPT_CHARS`] characters, on one line,
/// quoted.
pub fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match weft_spec::text::excerpt(&flat, EXCERPT_CHARS) {
        (short, true) => format!("{:?}", format!("{short}…")),
        (short, false) => format!("{short:?}"),
    }
}

/// Why a recorded exchange is missing, for the message of a replay that has no answer.
pub fn missing_reason(recorded_in_scope: usize, recorded_of_key: usize, scope_noun: &str) -> String {
    match (recorded_in_scope, recorded_of_key) {
        (0, _) => format!("nothing was recorded for this {scope_noun}"),
        (n, 0) => format!("{n} exchange{} recorded for this {scope_noun}, none with this request", if n == 1 { " was" } else { "s were" }),
        (_, k) => format!("this request was recorded only {k} time{} for this {scope_noun}", if k == 1 { "" } else { "s" }),
    }
}

/// A tool error as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RecordedToolError {
    Failed { message: String },
    Timeout { after_s: f64 },
    OutputTooLarge { limit_bytes: u64 },
    BadOutput { message: String },
    Unavailable { message: String },
}

impl From<&ToolError> for RecordedToolError {
    fn from(error: &ToolError) -> Self {
        match error {
            ToolError::Failed { message } => RecordedToolError::Failed { message: message.clone() },
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
            RecordedToolError::Timeout { after_s } => {
                ToolError::Timeout { after: Duration::try_from_secs_f64(after_s).unwrap_or_default() }
            }
            RecordedToolError::OutputTooLarge { limit_bytes } => ToolError::OutputTooLarge { limit: limit_bytes },
            RecordedToolError::BadOutput { message } => ToolError::BadOutput { message },
            RecordedToolError::Unavailable { message } => ToolError::Unavailable { message },
        }
    }
}

/// A tool line as read back.
#[derive(Debug, Deserialize)]
struct ToolLine {
    key: String,
    tool: String,
    occurrence: u64,
    #[serde(default, deserialize_with = "present")]
    result: Option<Json>,
    #[serde(default)]
    error: Option<RecordedToolError>,
}

/// `Some` for a present member, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// A tool wrapper that calls the tool and records the exchange in a [`RecordLog`].
pub struct RecordingTool {
    name: String,
    inner: Arc<dyn Tool>,
    log: Arc<RecordLog>,
}

impl fmt::Debug for RecordingTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingTool").field("name", &self.name).field("log", &self.log).finish_non_exhaustive()
    }
}

impl RecordingTool {
    /// Records the calls of `inner`, bound as `name`, into `log`.
    pub fn new(name: impl Into<String>, inner: Arc<dyn Tool>, log: Arc<RecordLog>) -> RecordingTool {
        RecordingTool { name: name.into(), inner, log }
    }
}

#[async_trait::async_trait]
impl Tool for RecordingTool {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        let recorded = Json::Object(args.clone());
        let key = self.log.key(&recorded);
        let occurrence = self.log.occurrence("tool", &self.name, &key);
        let result = self.inner.call(args).await;
        let mut line = json!({"kind": "tool", "key": key, "tool": self.name, "occurrence": occurrence, "args": recorded});
        if let Json::Object(fields) = &mut line {
            match &result {
                Ok(value) => fields.insert("result".to_owned(), value.clone()),
                Err(e) => fields.insert("error".to_owned(), serde_json::to_value(RecordedToolError::from(e)).unwrap_or(Json::Null)),
            };
        }
        self.log.append(line);
        result
    }
}

/// Every tool of `registry` wrapped in a [`RecordingTool`] writing to `log`.
pub fn recording_registry(registry: &ToolRegistry, log: &Arc<RecordLog>) -> ToolRegistry {
    let mut recording = ToolRegistry::new();
    for name in registry.names() {
        if let Some(tool) = registry.get(name) {
            recording.register(name, RecordingTool::new(name, Arc::clone(tool), Arc::clone(log)));
        }
    }
    recording
}

/// The tool exchanges of a record file, served back by [`ReplayTool`]s without calling any
/// tool.
pub struct ToolReplay {
    path: PathBuf,
    secrets: Secrets,
    /// Outcomes by (tool, key), then occurrence.
    entries: HashMap<(String, String), BTreeMap<u64, Result<Json, RecordedToolError>>>,
    /// Exchanges recorded per tool.
    per_tool: HashMap<String, usize>,
    served: Occurrences,
}

impl fmt::Debug for ToolReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolReplay").field("path", &self.path).field("exchanges", &self.len()).finish_non_exhaustive()
    }
}

impl ToolReplay {
    /// Reads the tool exchanges of the record file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<ToolReplay, ReplayError> {
        let path = path.as_ref();
        let mut replay = ToolReplay {
            path: path.to_path_buf(),
            secrets: Secrets::default(),
            entries: HashMap::new(),
            per_tool: HashMap::new(),
            served: Occurrences::new(),
        };
        for RecordLine { line, value } in read_lines(path, "tool")? {
            let invalid = |message: String| ReplayError::Invalid { path: path.to_path_buf(), line, message };
            let entry: ToolLine = serde_json::from_value(value).map_err(|e| invalid(format!("not a recorded tool call ({e})")))?;
            let outcome = match (entry.result, entry.error) {
                (Some(result), None) => Ok(result),
                (None, Some(error)) => Err(error),
                _ => return Err(invalid("a recorded tool call has either a \"result\" or an \"error\"".to_owned())),
            };
            let by_occurrence = replay.entries.entry((entry.tool.clone(), entry.key)).or_default();
            if by_occurrence.insert(entry.occurrence, outcome).is_some() {
                return Err(invalid(format!("tool {:?}: occurrence {} of this call is recorded twice", entry.tool, entry.occurrence)));
            }
            *replay.per_tool.entry(entry.tool).or_insert(0) += 1;
        }
        Ok(replay)
    }

    /// Redacts these secret values from arguments before looking them up: give the values the
    /// recording was made with, when secrets can occur in tool arguments.
    pub fn with_secrets<S: Into<String>>(mut self, secrets: impl IntoIterator<Item = S>) -> ToolReplay {
        self.secrets.extend(secrets);
        self
    }

    /// Like [`ToolReplay::with_secrets`], with every secret of a scrubber.
    pub fn with_scrubber(mut self, secrets: &Secrets) -> ToolReplay {
        self.secrets.merge(secrets);
        self
    }

    /// The number of recorded tool exchanges.
    pub fn len(&self) -> usize {
        self.per_tool.values().sum()
    }

    /// Whether no tool exchange was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of the tools with recorded exchanges, sorted.
    pub fn tools(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.per_tool.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A tool bound as `name` serving this recording.
    pub fn tool(self: &Arc<Self>, name: impl Into<String>) -> ReplayTool {
        ReplayTool { name: name.into(), replay: Arc::clone(self) }
    }

    /// A registry binding every name of `registry`, and every tool of the recording, to a
    /// [`ReplayTool`]: nothing is run.
    pub fn registry(self: &Arc<Self>, registry: &ToolRegistry) -> ToolRegistry {
        let mut replaying = ToolRegistry::new();
        for name in registry.names().chain(self.tools()) {
            replaying.register(name, self.tool(name));
        }
        replaying
    }

    fn serve(&self, tool: &str, args: &Json) -> Result<Json, ToolError> {
        let key = redacted_key(&self.secrets, args);
        let occurrence = self.served.next("tool", tool, &key);
        let recorded = self.entries.get(&(tool.to_owned(), key));
        match recorded.and_then(|by_occurrence| by_occurrence.get(&occurrence)) {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(error)) => Err(error.clone().into()),
            None => {
                let reason = missing_reason(self.per_tool.get(tool).copied().unwrap_or(0), recorded.map_or(0, BTreeMap::len), "tool");
                let shown = self.secrets.redact_str(&args.to_string()).into_owned();
                Err(ToolError::Unavailable {
                    message: format!(
                        "replay of {}: no recorded result for tool {tool:?} with arguments {} (occurrence {occurrence}): {reason}; the flow or its inputs changed since the recording: re-record with --record",
                        self.path.display(),
                        excerpt(&shown),
                    ),
                })
            }
        }
    }
}

/// A tool serving the results a [`ToolReplay`] recorded for its name, each recorded call once
/// per occurrence; a call the recording does not have fails with [`ToolError::Unavailable`].
pub struct ReplayTool {
    name: String,
    replay: Arc<ToolReplay>,
}

impl fmt::Debug for ReplayTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayTool").field("name", &self.name).field("replay", &self.replay).finish()
    }
}

impl ReplayTool {
    /// A tool bound as `name` serving `replay`.
    pub fn new(name: impl Into<String>, replay: Arc<ToolReplay>) -> ReplayTool {
        ReplayTool { name: name.into(), replay }
    }
}

#[async_trait::async_trait]
impl Tool for ReplayTool {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        self.replay.serve(&self.name, &Json::Object(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Answers with a new number per call, and fails when asked to.
    struct Counter(AtomicU64);

    #[async_trait::async_trait]
    impl Tool for Counter {
        async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            match args.get("fail").and_then(Json::as_str) {
                Some("timeout") => Err(ToolError::Timeout { after: Duration::from_millis(1500) }),
                Some("too_large") => Err(ToolError::OutputTooLarge { limit: 3 * crate::command::MIB }),
                Some(message) => Err(ToolError::Failed { message: message.to_owned() }),
                None if args.contains_key("null") => Ok(Json::Null),
                None => Ok(json!({"n": n, "args": args})),
            }
        }
    }

    fn args(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn keys_ignore_member_order_and_hide_secrets() {
        let a: Json = serde_json::from_str(r#"{"b": 1, "a": [1, {"y": 2, "x": "s"}]}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"a": [1, {"x": "s", "y": 2}], "b": 1}"#).unwrap();
        assert_eq!(content_key(&a), content_key(&b));
        assert_eq!(content_key(&a).len(), 64);
        assert_ne!(content_key(&a), content_key(&json!({"a": [1], "b": 1})));

        let secrets = Secrets::new(["hunter22", "", "hunter22-long"]);
        assert_eq!(format!("{secrets:?}"), "Secrets(2 values)");
        let mut value = json!({"p": "pw hunter22 and hunter22-long", "hunter22": [true, "hunter22"]});
        secrets.redact(&mut value);
        assert_eq!(value, json!({"p": "pw [REDACTED] and [REDACTED]", "[REDACTED]": [true, "[REDACTED]"]}));
        assert_eq!(redacted_key(&secrets, &json!({"p": "hunter22"})), content_key(&json!({"p": "[REDACTED]"})));
    }

    #[test]
    fn occurrences_count_per_kind_scope_and_key() {
        let o = Occurrences::new();
        assert_eq!(o.next("llm", "a", "k"), 1);
        assert_eq!(o.next("llm", "a", "k"), 2);
        assert_eq!(o.next("llm", "b", "k"), 1);
        assert_eq!(o.next("tool", "a", "k"), 1);
        assert_eq!(o.next("llm", "a", "j"), 1);
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("a\n  b"), r#""a b""#);
        let long = "x".repeat(100);
        assert_eq!(excerpt(&long), format!("\"{}…\"", "x".repeat(EXCERPT_CHARS)));
    }

    #[tokio::test]
    async fn tools_record_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let log = RecordLog::create_with_secrets(&path, ["s3cret-token"]).unwrap();
        let mut registry = ToolRegistry::new();
        registry.register("count", Counter(AtomicU64::new(0)));
        let recording = recording_registry(&registry, &log);
        let tool = recording.get("count").unwrap();
        let mut recorded = Vec::new();
        for a in [
            json!({"x": 1}),
            json!({"x": 1}),
            json!({"x": 2}),
            json!({"fail": "boom"}),
            json!({"fail": "timeout"}),
            json!({"null": 1}),
            json!({"fail": "too_large"}),
        ] {
            recorded.push(tool.call(args(a)).await.map_err(|e| e.to_string()));
        }
        let secret_result = tool.call(args(json!({"token": "s3cret-token"}))).await.unwrap();
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret-token"), "{text}");
        assert!(text.contains(REDACTED));
        assert!(text.starts_with(r#"{"kind":"header","format":"weft-record","version":1}"#));

        let replay = Arc::new(ToolReplay::load(&path).unwrap().with_secrets(["s3cret-token"]));
        assert_eq!(replay.len(), 8);
        assert_eq!(replay.tools(), ["count"]);
        let replaying = replay.registry(&ToolRegistry::new());
        let tool = replaying.get("count").unwrap();
        // Another order: the second {"x": 1} is still the second occurrence.
        let order = [2usize, 6, 0, 1, 5, 4, 3];
        let inputs = [
            json!({"x": 1}),
            json!({"x": 1}),
            json!({"x": 2}),
            json!({"fail": "boom"}),
            json!({"fail": "timeout"}),
            json!({"null": 1}),
            json!({"fail": "too_large"}),
        ];
        let mut replayed = vec![None; 7];
        for i in order {
            replayed[i] = Some(tool.call(args(inputs[i].clone())).await.map_err(|e| e.to_string()));
        }
        let replayed: Vec<_> = replayed.into_iter().map(Option::unwrap).collect();
        assert_eq!(replayed, recorded);
        assert_ne!(recorded[0], recorded[1]);
        assert_eq!(recorded[5], Ok(Json::Null));
        assert!(recorded[6].as_ref().is_err_and(|e| e.contains("printed more than 3 MiB on stdout")), "{:?}", recorded[6]);
        // The secret went through redacted, and comes back redacted.
        let replayed_secret = tool.call(args(json!({"token": "s3cret-token"}))).await.unwrap();
        assert_eq!(replayed_secret["args"]["token"], "[REDACTED]");
        assert_eq!(secret_result["args"]["token"], "s3cret-token");

        let error = tool.call(args(json!({"x": 1}))).await.unwrap_err().to_string();
        assert!(error.contains("no recorded result for tool \"count\" with arguments \"{\\\"x\\\":1}\" (occurrence 3)"), "{error}");
        assert!(error.contains("this request was recorded only 2 times for this tool"), "{error}");
        assert!(error.contains("re-record with --record"), "{error}");
        let error = tool.call(args(json!({"x": 9}))).await.unwrap_err().to_string();
        assert!(error.contains("8 exchanges were recorded for this tool, none with this request"), "{error}");
        let other = replay.tool("other").call(Map::new()).await.unwrap_err().to_string();
        assert!(other.contains("nothing was recorded for this tool"), "{other}");
    }

    #[test]
    fn bad_record_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        let missing = ToolReplay::load(dir.path().join("none.jsonl")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read the recording"), "{missing}");

        std::fs::write(&path, "{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":1}\nnot json\n").unwrap();
        let error = ToolReplay::load(&path).unwrap_err().to_string();
        assert!(error.contains("bad.jsonl:2: not JSON"), "{error}");

        std::fs::write(&path, "{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":9}\n").unwrap();
        let error = ToolReplay::load(&path).unwrap_err().to_string();
        assert!(error.contains("bad.jsonl:1: recorded in format version 9"), "{error}");

        std::fs::write(&path, "{\"kind\":\"tool\",\"key\":\"k\",\"tool\":\"t\",\"occurrence\":1}\n").unwrap();
        let error = ToolReplay::load(&path).unwrap_err().to_string();
        assert!(error.contains("bad.jsonl:1: a recorded tool call has either"), "{error}");

        // A last line cut short is skipped; other kinds are ignored.
        std::fs::write(
            &path,
            "{\"kind\":\"llm\"}\n{\"kind\":\"tool\",\"key\":\"k\",\"tool\":\"t\",\"occurrence\":1,\"result\":1}\n{\"kind\":\"to",
        )
        .unwrap();
        assert_eq!(ToolReplay::load(&path).unwrap().len(), 1);
    }
}
