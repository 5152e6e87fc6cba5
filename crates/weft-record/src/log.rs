//! The record file (`--record run.jsonl`, `--replay run.jsonl`) shared by LLM calls
//! ([`crate::llm`]) and tool calls ([`crate::tools`]): its format, keys, secret redaction, the
//! [`RecordLog`] writing it and the reading both replays share.
//!
//! # The file
//!
//! JSON Lines, one exchange per line, written as exchanges finish (so in completion order; lines
//! are found by key, never by position). Each kind of line has its own types in
//! [`crate::format`] ([`crate::format::LlmLine`], [`crate::format::ToolLine`] and their parts),
//! not the types of `weft_llm` and `weft_tools`, so the file changes only when its format
//! version does. The first line is a header,
//! `{"kind":"header","format":"weft-record","version":4}`; a file of a higher version is
//! refused, naming both versions (versions 1, without runs, and 2, without HTTP lines, are read).
//! Then:
//!
//! - `{"kind":"llm","key":…,"run":i,"node_path":…,"occurrence":n,"model":…,"request":{…},"response":{…}}`
//!   (`run`, the index of a batch's run, only in a batch)
//!   or `…,"error":{"kind":"rate_limited"|"transient"|…,"status":…,"message":…}}` (lines written
//!   before kinds existed have `"transient"` or `"permanent"`), written by [`crate::llm::Recorder`];
//! - `{"kind":"tool","key":…,"tool":…,"occurrence":n,"args":{…},"result":…}` or
//!   `…,"error":{"kind":"failed"|"bad_output"|"unavailable","message":…}}`
//!   (`{"kind":"timeout","after_s":…}` for a timeout, `{"kind":"output_too_large","limit_bytes":…}`
//!   for a command's stdout past its cap), written by [`crate::tools::RecordingTool`];
//! - `{"kind":"http","key":…,"run":i,"node_path":…,"occurrence":n,"request":{"method","url","headers","body"},"response":{"status","body","attempts"}}`
//!   or `…,"error":{"kind","message","attempts"}}`, written by [`crate::http::HttpRecorder`]
//!   (never a sensitive header).
//!
//! Lines of other kinds are skipped by the readers, so later kinds can be added.
//!
//! # Keys
//!
//! An exchange is found by `(scope, key, occurrence)`. The key is the SHA-256 of the canonical
//! JSON (object keys sorted, no spaces) of what determines the answer, with secrets redacted
//! ([`redacted_key`]): for a tool its arguments, for an LLM call its messages, response format,
//! tools and generation parameters. The scope is the tool's name, or for an LLM call the run
//! (in a batch) and the calling node's path. The occurrence (from 1) tells apart the same request made several times in
//! one scope: the n-th call with that key in that scope is occurrence n
//! ([`RecordLog::occurrence`]).
//!
//! Tools are called with their arguments only (the [`weft_tools::Tool`] trait carries no node path), so
//! identical calls of one tool are told apart by the order they start in; a tool whose result
//! depends only on its arguments replays exactly under any order.
//!
//! # Secrets
//!
//! Every string of a line (keys of objects included) has each secret value given to
//! [`RecordLog::add_secrets`] replaced by [`REDACTED`] before it is written: requests,
//! arguments, answers and error messages alike. Keys are computed on the redacted content, so
//! no hash of a secret reaches the file either; a replay must therefore be given the same
//! secret values ([`crate::tools::ToolReplay::with_secrets`]) when secrets can occur in requests. The
//! headers of LLM calls (the `Authorization` header with the API key) and the sensitive headers
//! of ApiNodes and RemoteTools are not part of any exchange and are never recorded.
//!
//! # Writing
//!
//! [`RecordLog::append`] writes under a `std::sync::Mutex` into a `BufWriter` and flushes each
//! line, so a crashed run leaves a usable file. The lock is held only for one short buffered
//! write of an already-serialized line (microseconds, no await inside), which is cheaper than a
//! `spawn_blocking` hop per line and does not stall the async runtime in practice. A write
//! that fails does not fail the call; the first error is kept and [`RecordLog::finish`]
//! reports it with the number of lines lost.

use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The version of the record format written in the header line, and the highest one read.
pub use crate::format::FORMAT_VERSION;
use crate::format::{FORMAT_NAME, Header};

/// What a secret is replaced with in a record file (every scrubbed output uses the same mask).
pub use weft_guard::secrets::REDACTED;
/// Secret values to keep out of record files: the process's scrubber ([`weft_guard::Secrets`]).
pub use weft_guard::secrets::Secrets;

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

impl Writer {
    /// Counts a lost line, keeping the first error.
    fn lose(&mut self, error: io::Error) {
        self.lost += 1;
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
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
        let header = serde_json::to_string(&Header::current()).map_err(io::Error::other)?;
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

    /// The key of `content`, secrets redacted ([`redacted_key`]).
    pub fn key(&self, content: &Json) -> String {
        redacted_key(&self.secrets.read().unwrap_or_else(PoisonError::into_inner), content)
    }

    /// The occurrence number (from 1) of one more exchange of `kind` with `key` in `scope`,
    /// counted over every wrapper writing to this log.
    pub fn occurrence(&self, kind: &str, scope: &str, key: &str) -> u64 {
        self.occurrences.next(kind, scope, key)
    }

    /// The key of `content` (secrets redacted) and its occurrence in its scope (the run, in a
    /// batch, and `node_path`: [`crate::replay::scope`]) among exchanges of `kind`: what a
    /// recorder of LLM calls, HTTP or MCP requests writes on the exchange's line.
    pub fn stamp(&self, kind: &str, run: Option<u64>, node_path: &str, content: &Json) -> (String, u64) {
        let key = self.key(content);
        let occurrence = self.occurrence(kind, &crate::replay::scope(run, node_path), &key);
        (key, occurrence)
    }

    /// Appends a line of one of the file's own types ([`crate::format::LlmLine`],
    /// [`crate::format::ToolLine`]), redacted ([`RecordLog::append`]).
    pub fn append_line(&self, line: &impl Serialize) {
        match serde_json::to_value(line) {
            Ok(value) => self.append(value),
            Err(e) => self.lose(io::Error::other(e)),
        }
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
            out.lose(e);
        }
    }

    /// Counts a line that could not be written.
    fn lose(&self, error: io::Error) {
        self.out.lock().unwrap_or_else(PoisonError::into_inner).lose(error);
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
    /// The file was written in a newer format than this build reads.
    #[error(
        "{}:{line}: recorded in format version {version}, and this weft reads version {reads} at most; replay it with a newer weft (the one that recorded it)",
        .path.display()
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// 1-based line of the header.
        line: usize,
        /// The file's format version.
        version: u64,
        /// The highest version this build reads ([`FORMAT_VERSION`]).
        reads: u64,
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
                return Err(ReplayError::NewerFormat { path: path.to_path_buf(), line: number, version, reads: FORMAT_VERSION });
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
