//! What the replays of LLM calls ([`crate::llm`]), HTTP requests ([`crate::http`]) and MCP
//! requests ([`crate::mcp`]) share: their exchanges are found the same way, by key, scope (the
//! run in a batch, and the node path) and occurrence within the scope.
//!
//! - [`ServedLine`]: a line of one of these kinds as read back (key, run, node path, occurrence,
//!   and the answer or the error), generic over the kind's answer and error types;
//! - [`scope`]: the scope occurrences are counted in, the same for recorders and replays;
//! - [`Kind`]: what a kind of exchange is (its answer and error types, its lines' `kind`, its
//!   name in messages);
//! - [`Replay`]: the exchanges of one kind of a record file, indexed by (run, node path, key)
//!   and occurrence, and [`Replay::find`], the lookup serving each recorded exchange once; each
//!   kind's replayer is a `Replay` of its kind (`Replayer` is `Replay<LlmExchanges>`);
//! - [`Missing`]: what a lookup reports when the recording has no answer, from which each kind
//!   writes its message ([`Missing::message`]).
//!
//! What stays in each kind's module is what is its own: the request's key content, the
//! conversions of the recorded answer and error, and what a message shows of the request.
//!
//! **Lines without a run** (outside a batch, or recorded by format 1, before runs were recorded)
//! are matched as they were recorded: when no line of the kind has a run, every request is looked
//! up without its run, by node path, key and occurrence counted over the whole process.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::log::{Occurrences, RecordLine, ReplayError, Secrets, missing_reason, read_lines, redacted_key};

/// One kind of exchange found by run, node path, key and occurrence, served by a [`Replay`]:
/// its recorded answer and error, the `kind` of its lines and how messages name it.
pub trait Kind {
    /// The answer of an exchange, as recorded ([`crate::format::RecordedHttpResponse`]).
    type Answer: DeserializeOwned;
    /// The error of an exchange with no answer, as recorded.
    type Error: DeserializeOwned;
    /// How it is named in its lines and in messages.
    const NAMES: Names;
}

/// How a [`Kind`] of exchange is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// The `kind` of its lines (`"llm"`, `"http"`, `"mcp"`).
    pub line: &'static str,
    /// What one exchange is called in messages (`"LLM call"`, `"HTTP request"`).
    pub exchange: &'static str,
    /// What a line recorded twice is called (`"request"`: "occurrence 2 of this request is
    /// recorded twice").
    pub repeated: &'static str,
}

/// A line of a kind found by run and node path, as read back: only what serves it (the
/// request is not needed, and a line without it is read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>, E: Deserialize<'de>"))]
pub struct ServedLine<R, E> {
    /// The key of the request ([`crate::log::redacted_key`]).
    pub key: String,
    /// The index of the batch's run, only in a batch (and from format 2 on).
    #[serde(default)]
    pub run: Option<u64>,
    /// The path of the node that made the request.
    pub node_path: String,
    /// Which request with this key in this scope it was (from 1).
    pub occurrence: u64,
    /// The answer, when there was one.
    #[serde(default)]
    pub response: Option<R>,
    /// The error, when there was no answer.
    #[serde(default)]
    pub error: Option<E>,
}

/// The scope occurrences are counted in: the run (when in a batch) and the node path.
pub fn scope(run: Option<u64>, node_path: &str) -> String {
    match run {
        Some(run) => format!("run {run}: {node_path}"),
        None => node_path.to_owned(),
    }
}

/// Recorded outcomes by (run, node path, key), then occurrence.
type Entries<R, E> = HashMap<(Option<u64>, String, String), BTreeMap<u64, Result<R, E>>>;

/// The exchanges of one [`Kind`] of a record file, served with no network and no server: each
/// recorded exchange answers the request with the same key in the same run (of a batch) at the
/// same node path and occurrence, once; a recording without runs (outside a batch, or of the
/// first format) answers by node path, key and occurrence alone. Each kind's module makes it its
/// model, client or server ([`crate::Replayer`], [`crate::HttpReplayer`], [`crate::McpReplayer`]).
pub struct Replay<K: Kind> {
    name: String,
    path: PathBuf,
    secrets: Secrets,
    entries: Entries<K::Answer, K::Error>,
    /// Exchanges recorded per (run, node path).
    per_path: HashMap<(Option<u64>, String), usize>,
    /// Whether some line has a run (then runs are matched by run).
    by_run: bool,
    served: Occurrences,
}

impl<K: Kind> fmt::Debug for Replay<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("kind", &K::NAMES.line)
            .field("path", &self.path)
            .field("exchanges", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K: Kind> Replay<K> {
    /// Reads the exchanges of this kind of the record file at `path` (none in a file written
    /// before the kind existed). A line that is not one of them, has both or neither of a
    /// response and an error, or repeats an occurrence, is refused naming its line.
    pub fn load(path: impl AsRef<Path>) -> Result<Replay<K>, ReplayError> {
        let path = path.as_ref();
        let mut exchanges = Replay {
            name: format!("replay {}", path.display()),
            path: path.to_path_buf(),
            secrets: Secrets::default(),
            entries: HashMap::new(),
            per_path: HashMap::new(),
            by_run: false,
            served: Occurrences::new(),
        };
        for RecordLine { line, value } in read_lines(path, K::NAMES.line)? {
            let invalid = |message: String| ReplayError::Invalid { path: path.to_path_buf(), line, message };
            let entry: ServedLine<K::Answer, K::Error> =
                serde_json::from_value(value).map_err(|e| invalid(format!("not a recorded {} ({e})", K::NAMES.exchange)))?;
            let outcome = match (entry.response, entry.error) {
                (Some(response), None) => Ok(response),
                (None, Some(error)) => Err(error),
                _ => return Err(invalid(format!("a recorded {} has either a \"response\" or an \"error\"", K::NAMES.exchange))),
            };
            let by_occurrence = exchanges.entries.entry((entry.run, entry.node_path.clone(), entry.key)).or_default();
            if by_occurrence.insert(entry.occurrence, outcome).is_some() {
                return Err(invalid(format!(
                    "{}node path {:?}: occurrence {} of this {} is recorded twice",
                    entry.run.map(|r| format!("run {r}, ")).unwrap_or_default(),
                    entry.node_path,
                    entry.occurrence,
                    K::NAMES.repeated,
                )));
            }
            exchanges.by_run |= entry.run.is_some();
            *exchanges.per_path.entry((entry.run, entry.node_path)).or_insert(0) += 1;
        }
        Ok(exchanges)
    }

    /// Redacts these secret values from requests before looking them up: give the values the
    /// recording was made with, when secrets can occur in requests.
    pub fn with_secrets<S: Into<String>>(mut self, secrets: impl IntoIterator<Item = S>) -> Replay<K> {
        self.secrets.extend(secrets);
        self
    }

    /// Like [`Replay::with_secrets`], with every secret of a scrubber.
    pub fn with_scrubber(mut self, secrets: &Secrets) -> Replay<K> {
        self.secrets.merge(secrets);
        self
    }

    /// The secret values redacted from requests, for what a message shows of one.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// `replay <file>`: the name of the model, client or server serving the recording.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the recording's lines carry runs (a batch recorded by format 2 or later).
    pub fn by_run(&self) -> bool {
        self.by_run
    }

    /// The number of recorded exchanges.
    pub fn len(&self) -> usize {
        self.per_path.values().sum()
    }

    /// Whether no exchange was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recorded outcome of the next request with key content `content` in run `run` (a
    /// batch's index) at `node_path`: counts one more occurrence of it, and returns that
    /// occurrence's answer or error, or what is [`Missing`].
    pub fn find(&self, run: Option<u64>, node_path: &str, content: &Json) -> Result<&Result<K::Answer, K::Error>, Missing> {
        let key = redacted_key(&self.secrets, content);
        // By run when the recording has runs; else as recorded before runs were (every run
        // shares the node path's occurrences).
        let run = run.filter(|_| self.by_run);
        let occurrence = self.served.next(K::NAMES.line, &scope(run, node_path), &key);
        let recorded = self.entries.get(&(run, node_path.to_owned(), key));
        if let Some(outcome) = recorded.and_then(|by_occurrence| by_occurrence.get(&occurrence)) {
            return Ok(outcome);
        }
        let in_scope = self.per_path.get(&(run, node_path.to_owned())).copied().unwrap_or(0);
        let noun = if run.is_some() { "node path in this run" } else { "node path" };
        Err(Missing {
            replay: self.name.clone(),
            run,
            node_path: node_path.to_owned(),
            occurrence,
            reason: missing_reason(in_scope, recorded.map_or(0, BTreeMap::len), noun),
            outside_batch: run.is_none() && self.by_run,
        })
    }
}

/// The advice closing the message of a missing exchange.
pub const RE_RECORD: &str = "the flow or its inputs changed since the recording: re-record with --record";

/// An exchange a replay was asked for and its recording does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The replay's name (`replay <file>`).
    pub replay: String,
    /// The run it was looked up in: the batch index when the recording has runs.
    pub run: Option<u64>,
    /// The node path of the request.
    pub node_path: String,
    /// Its occurrence in its scope.
    pub occurrence: u64,
    /// Why it is missing ([`missing_reason`]).
    pub reason: String,
    /// The recording was made by a batch (its lines have runs) and the request comes from
    /// outside one.
    pub outside_batch: bool,
}

impl Missing {
    /// The message: `<replay>: no recorded answer for <what> [of run <r> (batch index) ]at node
    /// path <path> (occurrence <n><detail>): <reason>; <advice>`, where `what` names the request
    /// (`the HTTP request`) and `detail` (after the occurrence, with its comma) quotes it.
    pub fn message(&self, what: &str, detail: &str, advice: &str) -> String {
        let which = self.run.map(|r| format!("of run {r} (batch index) ")).unwrap_or_default();
        format!(
            "{}: no recorded answer for {what} {which}at node path {:?} (occurrence {}{detail}): {}; {advice}",
            self.replay, self.node_path, self.occurrence, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test helpers")]

    use super::*;
    use serde_json::json;

    /// A kind whose answers and errors are strings.
    struct X;

    impl Kind for X {
        type Answer = String;
        type Error = String;
        const NAMES: Names = Names { line: "x", exchange: "X request", repeated: "request" };
    }

    fn write(lines: &[Json]) -> tempfile::NamedTempFile {
        let mut text = String::from("{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":4}\n");
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn line(run: Option<u64>, node_path: &str, content: &Json, occurrence: u64, answer: &str) -> Json {
        let mut line = json!({"kind": "x", "key": crate::log::content_key(content), "node_path": node_path, "occurrence": occurrence});
        if let Some(run) = run {
            line["run"] = json!(run);
        }
        if let Some(error) = answer.strip_prefix("error ") {
            line["error"] = json!(error);
        } else {
            line["response"] = json!(answer);
        }
        line
    }

    fn load(lines: &[Json]) -> (tempfile::NamedTempFile, Replay<X>) {
        let file = write(lines);
        let exchanges = Replay::load(file.path()).unwrap();
        (file, exchanges)
    }

    fn message(missing: Missing) -> String {
        missing.message("the X request", "", RE_RECORD).replace(&missing.replay, "replay F")
    }

    #[test]
    fn exchanges_are_found_by_run_node_path_key_and_occurrence_once() {
        let (a, b) = (json!({"q": "a"}), json!({"q": "b"}));
        let (_file, exchanges) = load(&[
            // Written in completion order: the second occurrence before the first.
            line(Some(0), "root/n", &a, 2, "0 n a 2"),
            line(Some(0), "root/n", &a, 1, "0 n a 1"),
            line(Some(0), "root/m", &a, 1, "error 0 m a 1"),
            line(Some(1), "root/n", &a, 1, "1 n a 1"),
            line(Some(1), "root/n", &b, 1, "1 n b 1"),
        ]);
        assert_eq!((exchanges.len(), exchanges.by_run()), (5, true));
        let find = |run, path, content| exchanges.find(run, path, content).cloned();
        assert_eq!(find(Some(1), "root/n", &a), Ok(Ok("1 n a 1".to_owned())));
        assert_eq!(find(Some(0), "root/n", &a), Ok(Ok("0 n a 1".to_owned())));
        assert_eq!(find(Some(0), "root/m", &a), Ok(Err("0 m a 1".to_owned())));
        assert_eq!(find(Some(0), "root/n", &a), Ok(Ok("0 n a 2".to_owned())));
        assert_eq!(find(Some(1), "root/n", &b), Ok(Ok("1 n b 1".to_owned())));

        // Each once: a third occurrence, a request never made in this scope, a scope with nothing.
        let third = exchanges.find(Some(0), "root/n", &a).unwrap_err();
        assert_eq!((third.run, third.occurrence, third.outside_batch), (Some(0), 3, false));
        assert_eq!(
            message(third),
            r#"replay F: no recorded answer for the X request of run 0 (batch index) at node path "root/n" (occurrence 3): this request was recorded only 2 times for this node path in this run; the flow or its inputs changed since the recording: re-record with --record"#
        );
        assert_eq!(
            message(exchanges.find(Some(1), "root/m", &b).unwrap_err()),
            r#"replay F: no recorded answer for the X request of run 1 (batch index) at node path "root/m" (occurrence 1): nothing was recorded for this node path in this run; the flow or its inputs changed since the recording: re-record with --record"#
        );
        assert!(
            message(exchanges.find(Some(0), "root/n", &b).unwrap_err())
                .contains("(occurrence 1): 2 exchanges were recorded for this node path in this run, none with this request;")
        );
        // Outside a batch, a recording made by one has nothing.
        let outside = exchanges.find(None, "root/n", &a).unwrap_err();
        assert!(outside.outside_batch);
        assert!(message(outside).contains(r#"at node path "root/n" (occurrence 1): nothing was recorded for this node path;"#));
    }

    #[test]
    fn a_recording_without_runs_is_matched_whichever_run_asks() {
        let a = json!({"q": "a"});
        let (_file, exchanges) = load(&[line(None, "root/n", &a, 1, "first"), line(None, "root/n", &a, 2, "second")]);
        assert!(!exchanges.by_run());
        assert_eq!(exchanges.find(Some(4), "root/n", &a).unwrap(), &Ok("first".to_owned()));
        assert_eq!(exchanges.find(Some(7), "root/n", &a).unwrap(), &Ok("second".to_owned()));
        let missing = exchanges.find(None, "root/n", &a).unwrap_err();
        assert_eq!((missing.run, missing.occurrence, missing.outside_batch), (None, 3, false));
        assert!(message(missing).contains("this request was recorded only 2 times for this node path;"));
    }

    #[test]
    fn secrets_are_redacted_before_the_key_is_computed() {
        let redacted = json!({"q": "token [REDACTED]"});
        let (_file, exchanges) = load(&[line(None, "p", &redacted, 1, "ok")]);
        let exchanges = exchanges.with_secrets(["hunter22-secret"]);
        assert_eq!(exchanges.find(None, "p", &json!({"q": "token hunter22-secret"})).unwrap(), &Ok("ok".to_owned()));
    }

    #[test]
    fn bad_lines_are_refused_naming_their_line() {
        let a = json!({"q": "a"});
        let refused = |lines: &[Json]| {
            let file = write(lines);
            Replay::<X>::load(file.path()).unwrap_err().to_string().replace(&file.path().display().to_string(), "F")
        };
        let mut both = line(Some(0), "p", &a, 1, "ok");
        both["error"] = json!("no");
        assert_eq!(
            refused(&[both]),
            r#"F:2: a recorded X request has either a "response" or an "error"; the file is not a weft recording (write one with --record)"#
        );
        assert_eq!(
            refused(&[line(Some(3), "p", &a, 1, "ok"), line(Some(3), "p", &a, 1, "again")]),
            r#"F:3: run 3, node path "p": occurrence 1 of this request is recorded twice; the file is not a weft recording (write one with --record)"#
        );
        assert!(refused(&[json!({"kind": "x", "key": 1})]).starts_with("F:2: not a recorded X request (invalid type: integer `1`"));
        // Lines of other kinds are not read.
        let file = write(&[json!({"kind": "y", "key": 1})]);
        assert!(Replay::<X>::load(file.path()).unwrap().is_empty());
    }
}
