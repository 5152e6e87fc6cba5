//! Record and replay of tool calls: [`RecordingTool`] calls a tool and appends the exchange to
//! the [`RecordLog`]; [`ToolReplay`] and its [`ReplayTool`]s answer from a recording, with no tool
//! process. The file format, keys and secret redaction are in [`crate::log`].

use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_tools::{Tool, ToolError, ToolRegistry};

use crate::format::{RecordedToolError, ToolLine, present};
use crate::log::{Occurrences, RecordLine, RecordLog, ReplayError, Secrets, excerpt, missing_reason, read_lines, redacted_key};

/// A tool line as read back.
#[derive(Debug, Deserialize)]
struct ServedLine {
    key: String,
    tool: String,
    occurrence: u64,
    #[serde(default, deserialize_with = "present")]
    result: Option<Json>,
    #[serde(default)]
    error: Option<RecordedToolError>,
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
        let recorded = args.clone();
        let key = self.log.key(&Json::Object(args.clone()));
        let occurrence = self.log.occurrence("tool", &self.name, &key);
        let result = self.inner.call(args).await;
        let (value, error) = match &result {
            Ok(value) => (Some(value.clone()), None),
            Err(e) => (None, Some(RecordedToolError::from(e))),
        };
        self.log.append_line(&ToolLine { key, tool: self.name.clone(), occurrence, args: recorded, result: value, error });
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
            let entry: ServedLine = serde_json::from_value(value).map_err(|e| invalid(format!("not a recorded tool call ({e})")))?;
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
    use crate::log::REDACTED;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Answers with a new number per call, and fails when asked to.
    struct Counter(AtomicU64);

    #[async_trait::async_trait]
    impl Tool for Counter {
        async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            match args.get("fail").and_then(Json::as_str) {
                Some("timeout") => Err(ToolError::Timeout { after: Duration::from_millis(1500) }),
                Some("too_large") => Err(ToolError::OutputTooLarge { limit: 3 * weft_tools::command::MIB }),
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

    #[tokio::test]
    async fn tools_record_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let log = RecordLog::create_with_secrets(&path, ["s3cret-token"]).unwrap();
        let mut registry = ToolRegistry::new();
        registry.register("count", Counter(AtomicU64::new(0)));
        let recording = recording_registry(&registry, &log);
        let tool = recording.get("count").unwrap();
        let inputs = [
            json!({"x": 1}),
            json!({"x": 1}),
            json!({"x": 2}),
            json!({"fail": "boom"}),
            json!({"fail": "timeout"}),
            json!({"null": 1}),
            json!({"fail": "too_large"}),
        ];
        let mut recorded = Vec::new();
        for a in &inputs {
            recorded.push(tool.call(args(a.clone())).await.map_err(|e| e.to_string()));
        }
        let secret_result = tool.call(args(json!({"token": "s3cret-token"}))).await.unwrap();
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret-token"), "{text}");
        assert!(text.contains(REDACTED));
        assert!(text.starts_with(r#"{"kind":"header","format":"weft-record","version":4}"#));

        let replay = Arc::new(ToolReplay::load(&path).unwrap().with_secrets(["s3cret-token"]));
        assert_eq!(replay.len(), 8);
        assert_eq!(replay.tools(), ["count"]);
        let replaying = replay.registry(&ToolRegistry::new());
        let tool = replaying.get("count").unwrap();
        // Another order: the second {"x": 1} is still the second occurrence.
        let order = [2usize, 6, 0, 1, 5, 4, 3];
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
