//! The persisted form of a run: the state file, a versioned type of its own.
//!
//! ```json
//! {"weft_state": 2, "flow": "/abs/flow.json", "flow_hash": "...",
//!  "options": {"llm": "simulated", "tools": null, "max_steps": 10000, ...},
//!  "state": { ...the run state, long strings as references... },
//!  "values": ["a long string held once", ...]}
//! ```
//!
//! - **Versioned.** [`STATE_FILE_FORMAT`] is written in `weft_state`. A file of format 1 (what
//!   weft wrote before this format: its engine state carries `"format": 1`) is migrated when
//!   read; a newer format is refused, naming both versions.
//! - **Each value once.** Every string of the state at least [`HELD_ONCE_BYTES`] long is stored
//!   once in `values` and referenced from where it occurs as `"\u0000#N"` (a string of the
//!   state that itself starts with NUL gets one more NUL in front, so nothing is ambiguous). A
//!   1 MB input held by the run's inputs, its root frame, its StartNode's outputs and a
//!   pending request is stored once; a first LLM call's request is not stored at all (the
//!   state keeps its call index and renders it again on resume, see [`crate::state::Call`]).
//! - **What a resume needs** ([`ResumeOptions`]): the flow (path and content hash), the model
//!   choice, the tools file, the budgets, the events file and the egress policy, so the CLI
//!   (and later the server) resume a run from the file alone. Secrets are never stored.

use crate::batch::BatchResult;
use crate::error::{ErrorData, ResumeError};
use crate::state::RunState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The format of the state file written now.
pub const STATE_FILE_FORMAT: u32 = 2;

/// The format of the batch state file written now.
pub const BATCH_STATE_FORMAT: u32 = 1;

/// Strings at least this long (bytes) are stored once, in `values`.
pub const HELD_ONCE_BYTES: usize = 256;

/// A stored run: what it is, how to resume it, and its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// The flow file (absolute, so a run resumes from any directory), if the run came from one.
    pub flow: Option<PathBuf>,
    /// The flow's content hash ([`crate::Plan::flow_hash`]); [`crate::Plan::resume`] checks it.
    pub flow_hash: String,
    /// How the run was started, minus secrets.
    pub options: ResumeOptions,
    /// The run state.
    pub state: RunState,
}

/// The options a resumed run needs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeOptions {
    /// The model choice (the CLI's `--llm`, credentials removed).
    pub llm: String,
    /// The tools file, absolute.
    #[serde(default)]
    pub tools: Option<PathBuf>,
    /// The step budget.
    #[serde(default = "default_max_steps")]
    pub max_steps: u64,
    /// The re-ask limit.
    #[serde(default = "default_max_reasks")]
    pub max_reasks: u32,
    /// The events file, absolute; a resumed run appends to it.
    #[serde(default)]
    pub events: Option<PathBuf>,
    /// Registries of referenced components (`--refs`), absolute.
    #[serde(default)]
    pub refs: Vec<PathBuf>,
    /// Provider-wide limits and the node timeout, as the front end names them
    /// (`{"rps": 5, "node_timeout_s": 30, ...}`).
    #[serde(default)]
    pub limits: Map<String, Json>,
    /// The hosts the run may reach (none: no restriction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_hosts: Vec<String>,
    /// Where the requests of ApiNodes and RemoteTools go instead (`--http-rewrite PREFIX=URL`,
    /// as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_rewrites: Vec<String>,
}

/// A stored batch: the lines whose results were printed, those that finished but were not
/// printed yet (input order held them back), and the state of each run that was going when the
/// batch stopped. The lines not named in any of them never started: a resumed batch reads them
/// again from the batch file, which must not have changed (`source.sha256`).
///
/// ```json
/// {"weft_batch_state": 1, "flow": "/abs/flow.json", "flow_hash": "...", "options": {...},
///  "source": {"file": "/abs/inputs.jsonl", "sha256": "...", "lines": 500},
///  "base": {}, "concurrency": 16, "printed": [[0, 212], [230, 241]],
///  "held": [{"index": 214, "line": 215, "run_id": "...", "outputs": {...}}],
///  "runs": {"212": {...run state...}}, "finished": false, "values": [...]}
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchStateFile {
    /// The flow file (absolute).
    pub flow: Option<PathBuf>,
    /// The flow's content hash.
    pub flow_hash: String,
    /// How the runs were started, minus secrets.
    pub options: ResumeOptions,
    /// The batch file.
    pub source: BatchSource,
    /// Inputs every line has under its own (the CLI's `--input` and `--inputs`).
    #[serde(default)]
    pub base: Map<String, Json>,
    /// Runs at once.
    pub concurrency: usize,
    /// The first user message of every line's run (`--message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The indexes whose results were printed, as `[start, end)` ranges in order.
    #[serde(default)]
    pub printed: Vec<[usize; 2]>,
    /// Results that finished but were not printed yet, in index order.
    #[serde(default)]
    pub held: Vec<BatchResult>,
    /// The state of each run going when the batch stopped, by index.
    #[serde(default)]
    pub runs: BTreeMap<usize, RunState>,
    /// Every line was printed: nothing is left to resume.
    #[serde(default)]
    pub finished: bool,
}

/// The batch file a batch reads its lines from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSource {
    /// The file, absolute.
    pub file: PathBuf,
    /// The SHA-256 of its bytes ([`content_sha256`]).
    pub sha256: String,
    /// The lines of inputs it holds (blank lines not counted).
    pub lines: usize,
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn content_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl BatchStateFile {
    /// The file as JSON: `edit` sees it whole (to mask secrets), then long strings of the base
    /// inputs, held results and run states go to `values`.
    pub fn to_json_with(&self, edit: impl FnOnce(&mut Json)) -> Result<Json, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        edit(&mut value);
        let Json::Object(mut top) = value else { return Ok(value) };
        let mut held = Held::default();
        for field in BATCH_HELD_FIELDS {
            if let Some(part) = top.get_mut(field) {
                held.pack(part);
            }
        }
        let mut out = Map::new();
        out.insert("weft_batch_state".into(), BATCH_STATE_FORMAT.into());
        out.extend(top);
        out.insert("values".into(), Json::Array(held.values));
        Ok(Json::Object(out))
    }

    /// Reads a batch state file of this format.
    pub fn from_json(mut value: Json) -> Result<BatchStateFile, ReadError> {
        let format = match value.get("weft_batch_state") {
            Some(Json::Number(n)) => n.as_u64().ok_or_else(|| ReadError::NotState(format!("\"weft_batch_state\" is {n}")))?,
            _ => return Err(ReadError::NotState("no \"weft_batch_state\" format number".into())),
        };
        if format != u64::from(BATCH_STATE_FORMAT) {
            return Err(ResumeError::Format { found: u32::try_from(format).unwrap_or(u32::MAX), expected: BATCH_STATE_FORMAT }.into());
        }
        let values = match value.get_mut("values").map(Json::take) {
            Some(Json::Array(values)) => values,
            None | Some(Json::Null) => Vec::new(),
            Some(_) => return Err(ReadError::Damaged("\"values\" is not a list".into())),
        };
        for field in BATCH_HELD_FIELDS {
            if let Some(part) = value.get_mut(field) {
                unpack(part, &values)?;
            }
        }
        if let Json::Object(m) = &mut value {
            m.remove("weft_batch_state");
            m.remove("values");
        }
        serde_json::from_value(value).map_err(|e| ReadError::Damaged(e.to_string()))
    }
}

/// The parts of a batch state file whose long strings are held once.
const BATCH_HELD_FIELDS: [&str; 3] = ["base", "held", "runs"];

fn default_max_steps() -> u64 {
    crate::DEFAULT_MAX_STEPS
}

fn default_max_reasks() -> u32 {
    crate::DEFAULT_MAX_REASKS
}

/// Why a state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a state file at all.
    #[error("not a weft state file: {0}")]
    NotState(String),
    /// A format this weft does not read.
    #[error(transparent)]
    Format(#[from] ResumeError),
    /// The right format, but a part is missing or malformed.
    #[error("a damaged weft state file: {0}")]
    Damaged(String),
}

impl StateFile {
    /// The file as JSON: `edit` sees it whole (every value in place, to mask secrets), then long
    /// strings go to `values`.
    pub fn to_json_with(&self, edit: impl FnOnce(&mut Json)) -> Result<Json, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        edit(&mut value);
        let Json::Object(mut top) = value else { return Ok(value) };
        let mut held = Held::default();
        if let Some(state) = top.get_mut("state") {
            held.pack(state);
        }
        let mut out = Map::new();
        out.insert("weft_state".into(), STATE_FILE_FORMAT.into());
        out.extend(top);
        out.insert("values".into(), Json::Array(held.values));
        Ok(Json::Object(out))
    }

    /// Reads a state file of this format or format 1 (migrated).
    pub fn from_json(mut value: Json) -> Result<StateFile, ReadError> {
        let format = match value.get("weft_state") {
            Some(Json::Number(n)) => n.as_u64().ok_or_else(|| ReadError::NotState(format!("\"weft_state\" is {n}")))?,
            _ => return Err(ReadError::NotState("no \"weft_state\" format number".into())),
        };
        match format {
            1 => migrate_v1(&mut value)?,
            2 => {
                let values = match value.get_mut("values").map(Json::take) {
                    Some(Json::Array(values)) => values,
                    None | Some(Json::Null) => Vec::new(),
                    Some(_) => return Err(ReadError::Damaged("\"values\" is not a list".into())),
                };
                if let Some(state) = value.get_mut("state") {
                    unpack(state, &values)?;
                }
            }
            found => {
                return Err(ResumeError::Format { found: u32::try_from(found).unwrap_or(u32::MAX), expected: STATE_FILE_FORMAT }.into());
            }
        }
        if let Json::Object(m) = &mut value {
            m.remove("weft_state");
            m.remove("values");
        }
        serde_json::from_value(value).map_err(|e| ReadError::Damaged(e.to_string()))
    }
}

/// The strings held once while packing.
#[derive(Default)]
struct Held {
    values: Vec<Json>,
    index: HashMap<String, usize>,
}

impl Held {
    fn pack(&mut self, value: &mut Json) {
        match value {
            Json::String(s) if s.len() >= HELD_ONCE_BYTES => {
                let n = match self.index.get(s.as_str()) {
                    Some(n) => *n,
                    None => {
                        let n = self.values.len();
                        self.index.insert(s.clone(), n);
                        self.values.push(Json::String(std::mem::take(s)));
                        n
                    }
                };
                *s = format!("\u{0}#{n}");
            }
            Json::String(s) if s.starts_with('\u{0}') => s.insert(0, '\u{0}'),
            Json::Array(items) => items.iter_mut().for_each(|v| self.pack(v)),
            Json::Object(map) => map.values_mut().for_each(|v| self.pack(v)),
            _ => {}
        }
    }
}

fn unpack(value: &mut Json, values: &[Json]) -> Result<(), ReadError> {
    match value {
        Json::String(s) if s.starts_with("\u{0}\u{0}") => {
            s.remove(0);
        }
        Json::String(s) if s.starts_with('\u{0}') => {
            let n: usize =
                s.get(2..).and_then(|n| n.parse().ok()).ok_or_else(|| ReadError::Damaged(format!("bad value reference {s:?}")))?;
            let held =
                values.get(n).ok_or_else(|| ReadError::Damaged(format!("value reference {n} is past the {} held values", values.len())))?;
            *value = held.clone();
        }
        Json::Array(items) => items.iter_mut().try_for_each(|v| unpack(v, values))?,
        Json::Object(map) => map.values_mut().try_for_each(|v| unpack(v, values))?,
        _ => {}
    }
    Ok(())
}

/// Format 1 to this format: the run gets an id; a failed run's error string becomes error
/// data; an LLM call keeps its call index, and its request only for a re-ask.
fn migrate_v1(file: &mut Json) -> Result<(), ReadError> {
    let damaged = |what: &str| ReadError::Damaged(format!("format 1: {what}"));
    let state = file.get_mut("state").and_then(Json::as_object_mut).ok_or_else(|| damaged("no \"state\" object"))?;
    state.remove("format");
    state.insert("run_id".into(), Json::String(crate::context::new_run_id()));
    state.insert("event_seq".into(), 0.into());
    if let Some(Json::Object(outcome)) = state.get_mut("outcome")
        && let Some(Json::String(message)) = outcome.get("error")
    {
        let data = ErrorData::new(crate::RunErrorKind::Other, message.clone());
        outcome.insert("error".into(), serde_json::to_value(data).map_err(|e| damaged(&e.to_string()))?);
    }
    if let Some(Json::Object(frames)) = state.get_mut("frames") {
        for frame in frames.values_mut() {
            let Some(Json::Object(call)) = frame.pointer_mut("/position/call") else { continue };
            if call.get("kind").and_then(Json::as_str) != Some("llm") {
                continue;
            }
            let attempt = call.get("attempt").and_then(Json::as_u64).unwrap_or(1);
            let request = call.remove("request").unwrap_or(Json::Null);
            let call_index = request.pointer("/meta/call_index").and_then(Json::as_u64).unwrap_or(0);
            call.insert("call_index".into(), call_index.into());
            let reasks = reasks_of(&request, attempt.saturating_sub(1));
            if !reasks.is_empty() {
                call.insert("reasks".into(), Json::Array(reasks));
            }
        }
    }
    // The options of format 1 had no re-ask limit (the default) and the same other names.
    if let Some(Json::Object(options)) = file.get_mut("options")
        && let Some(Json::Null) = options.get("limits")
    {
        options.insert("limits".into(), Json::Object(Map::new()));
    }
    Ok(())
}

/// The re-asks a format 1 request held: its last `2 × n` messages, each an answer and the
/// message asking again (`Your answer could not be used: <reason>\n<how to answer>`).
fn reasks_of(request: &Json, n: u64) -> Vec<Json> {
    let Some(messages) = request.get("messages").and_then(Json::as_array) else { return Vec::new() };
    let n = usize::try_from(n).unwrap_or(usize::MAX).min(messages.len() / 2);
    let tail = &messages[messages.len() - 2 * n..];
    tail.chunks(2)
        .map(|pair| {
            let text = |m: &Json| m.get("content").and_then(Json::as_str).unwrap_or_default().to_owned();
            let asked = text(&pair[1]);
            let asked = asked.strip_prefix(crate::nodes::REASK_PREFIX).unwrap_or(&asked);
            let reason = asked.rsplit_once('\n').map_or(asked, |(reason, _)| reason);
            serde_json::json!({"answer": text(&pair[0]), "reason": reason})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_strings_are_held_once_and_come_back() {
        let long = "x".repeat(1000);
        let mut v = json!({"a": long, "b": [long, "short", "\u{0}odd"], "c": {"d": long}});
        let original = v.clone();
        let mut held = Held::default();
        held.pack(&mut v);
        assert_eq!(held.values.len(), 1);
        assert_eq!(v["a"], "\u{0}#0");
        assert_eq!(v["b"][2], "\u{0}\u{0}odd");
        unpack(&mut v, &held.values).unwrap();
        assert_eq!(v, original);
    }

    #[test]
    fn a_format_1_re_ask_keeps_its_answers_and_reasons() {
        let request = json!({"messages": [
            {"role": "user", "content": "prompt"},
            {"role": "assistant", "content": "bad 1"},
            {"role": "user", "content": "Your answer could not be used: missing x\nAnswer again with JSON."},
            {"role": "assistant", "content": "bad 2"},
            {"role": "user", "content": "Your answer could not be used: a: not a number\nline two\nAnswer again."}
        ], "meta": {"call_index": 4}});
        assert_eq!(
            reasks_of(&request, 2),
            vec![json!({"answer": "bad 1", "reason": "missing x"}), json!({"answer": "bad 2", "reason": "a: not a number\nline two"})]
        );
        assert!(reasks_of(&request, 0).is_empty());
        assert_eq!(reasks_of(&json!({"messages": []}), 3), Vec::<Json>::new());
    }

    #[test]
    fn a_newer_format_is_refused_naming_both_versions() {
        let e = StateFile::from_json(json!({"weft_state": 9, "state": {}})).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("format 9") && text.contains("up to 2"), "{text}");
    }

    #[test]
    fn a_dangling_reference_is_damage_not_a_panic() {
        let e = StateFile::from_json(json!({"weft_state": 2, "state": {"x": "\u{0}#7"}, "values": []})).unwrap_err();
        assert!(e.to_string().contains("past the 0 held values"), "{e}");
    }
}
