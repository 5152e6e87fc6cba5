//! Record and replay of the MCP requests of a document's MCP tools and toolboxes:
//! [`McpRecorder`] makes each request through its client and appends one line per request (after
//! the retries of its `retry_policy`) to the [`RecordLog`]; [`McpReplayer`] answers from a
//! recording, with no server (no connection, no process).
//!
//! A line is an [`McpLine`]: the server as shown (the document's URL before any
//! `--http-rewrite`, or the stdio command; never a header nor the environment), the method, a
//! call's tool and arguments, and the answer (a listing's tools, a call's result in its wire
//! form) or the error. Exchanges are found as HTTP requests are ([`crate::http`]): by key (the
//! SHA-256 of the recorded request, secrets redacted), scope (the run in a batch, and the node
//! path) and occurrence within the scope.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use weft_tools::ToolError;
use weft_tools::mcp::{McpReply, McpRequest, McpSend, Sessions, Transport};

use crate::format::{McpLine, RecordedMcpAnswer, RecordedMcpRequest, RecordedToolError};
use crate::log::{Occurrences, RecordLine, RecordLog, ReplayError, Secrets, excerpt, missing_reason, read_lines, redacted_key};

/// The `kind` of MCP lines.
const KIND: &str = "mcp";

/// An MCP line as read back.
#[derive(Debug, Deserialize)]
struct ServedLine {
    key: String,
    #[serde(default)]
    run: Option<u64>,
    node_path: String,
    occurrence: u64,
    #[serde(default)]
    response: Option<RecordedMcpAnswer>,
    #[serde(default)]
    error: Option<RecordedToolError>,
}

/// The scope occurrences are counted in: the run (when in a batch) and the node path.
fn scope(run: Option<u64>, node_path: &str) -> String {
    match run {
        Some(run) => format!("run {run}: {node_path}"),
        None => node_path.to_owned(),
    }
}

/// A client wrapper that makes every request through its client and records the exchange.
#[derive(Debug)]
pub struct McpRecorder {
    inner: Arc<dyn McpSend>,
    log: Arc<RecordLog>,
}

impl McpRecorder {
    /// Records the requests `inner` makes into `log`.
    pub fn new(inner: Arc<dyn McpSend>, log: Arc<RecordLog>) -> McpRecorder {
        McpRecorder { inner, log }
    }
}

#[async_trait::async_trait]
impl McpSend for McpRecorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn reaches_servers(&self) -> bool {
        self.inner.reaches_servers()
    }

    async fn send(&self, sessions: &Sessions, request: &McpRequest) -> McpReply {
        let recorded = RecordedMcpRequest::from(request);
        let key = self.log.key(&recorded.key_content());
        let occurrence = self.log.occurrence(KIND, &scope(request.meta.batch_index, &request.meta.node_path), &key);
        // The transport's sensitive header values are masked in what is written, whatever the
        // server echoed.
        if let Transport::Http { sensitive_headers, .. } = &request.server.transport {
            self.log.add_secrets(sensitive_headers.iter().map(|(_, v)| v.clone()));
        }
        let reply = self.inner.send(sessions, request).await;
        let (response, error) = match &reply.result {
            Ok(answer) => (Some(RecordedMcpAnswer::from(answer)), None),
            Err(error) => (None, Some(RecordedToolError::from(error))),
        };
        self.log.append_line(&McpLine {
            key,
            run: request.meta.batch_index,
            node_path: request.meta.node_path.clone(),
            occurrence,
            request: recorded,
            attempts: reply.attempts,
            response,
            error,
        });
        reply
    }
}

/// Recorded outcomes by (run, node path, key), then occurrence.
type Entries = HashMap<(Option<u64>, String, String), BTreeMap<u64, Result<RecordedMcpAnswer, RecordedToolError>>>;

/// Serves the MCP exchanges of a record file, with no server: each recorded exchange answers the
/// request with the same key in the same run (of a batch) at the same node path and occurrence,
/// once. A request the recording does not have fails (`unavailable`) naming the tool, the
/// server, the node path and the occurrence.
pub struct McpReplayer {
    name: String,
    path: PathBuf,
    secrets: Secrets,
    entries: Entries,
    per_path: HashMap<(Option<u64>, String), usize>,
    by_run: bool,
    served: Occurrences,
}

impl fmt::Debug for McpReplayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpReplayer").field("path", &self.path).field("exchanges", &self.len()).finish_non_exhaustive()
    }
}

impl McpReplayer {
    /// Reads the MCP exchanges of the record file at `path` (none in files of formats 1 to 3).
    pub fn load(path: impl AsRef<Path>) -> Result<McpReplayer, ReplayError> {
        let path = path.as_ref();
        let mut replayer = McpReplayer {
            name: format!("replay {}", path.display()),
            path: path.to_path_buf(),
            secrets: Secrets::default(),
            entries: HashMap::new(),
            per_path: HashMap::new(),
            by_run: false,
            served: Occurrences::new(),
        };
        for RecordLine { line, value } in read_lines(path, KIND)? {
            let invalid = |message: String| ReplayError::Invalid { path: path.to_path_buf(), line, message };
            let entry: ServedLine = serde_json::from_value(value).map_err(|e| invalid(format!("not a recorded MCP request ({e})")))?;
            let outcome = match (entry.response, entry.error) {
                (Some(response), None) => Ok(response),
                (None, Some(error)) => Err(error),
                _ => return Err(invalid("a recorded MCP request has either a \"response\" or an \"error\"".to_owned())),
            };
            let by_occurrence = replayer.entries.entry((entry.run, entry.node_path.clone(), entry.key)).or_default();
            if by_occurrence.insert(entry.occurrence, outcome).is_some() {
                return Err(invalid(format!(
                    "{}node path {:?}: occurrence {} of this MCP request is recorded twice",
                    entry.run.map(|r| format!("run {r}, ")).unwrap_or_default(),
                    entry.node_path,
                    entry.occurrence
                )));
            }
            replayer.by_run |= entry.run.is_some();
            *replayer.per_path.entry((entry.run, entry.node_path)).or_insert(0) += 1;
        }
        Ok(replayer)
    }

    /// Like [`crate::Replayer::with_scrubber`]: redacts the scrubber's secrets from requests
    /// before looking them up.
    pub fn with_scrubber(mut self, secrets: &Secrets) -> McpReplayer {
        self.secrets.merge(secrets);
        self
    }

    /// The number of recorded MCP exchanges.
    pub fn len(&self) -> usize {
        self.per_path.values().sum()
    }

    /// Whether no MCP exchange was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn serve(&self, request: &McpRequest) -> Result<weft_tools::mcp::McpAnswer, ToolError> {
        let path = &request.meta.node_path;
        let recorded = RecordedMcpRequest::from(request);
        let key = redacted_key(&self.secrets, &recorded.key_content());
        let run = request.meta.batch_index.filter(|_| self.by_run);
        let occurrence = self.served.next(KIND, &scope(run, path), &key);
        let found = self.entries.get(&(run, path.clone(), key));
        match found.and_then(|by_occurrence| by_occurrence.get(&occurrence)) {
            Some(Ok(answer)) => Ok(answer.clone().into()),
            Some(Err(error)) => Err(error.clone().into()),
            None => {
                let in_scope = self.per_path.get(&(run, path.clone())).copied().unwrap_or(0);
                let noun = if run.is_some() { "node path in this run" } else { "node path" };
                let reason = missing_reason(in_scope, found.map_or(0, BTreeMap::len), noun);
                let which = run.map(|r| format!("of run {r} (batch index) ")).unwrap_or_default();
                let what = match &recorded.tool {
                    Some(tool) => {
                        let args = serde_json::to_string(&recorded.arguments).unwrap_or_default();
                        format!("the call of MCP tool {tool:?} (arguments {})", excerpt(&self.secrets.redact_str(&args)))
                    }
                    None => "the listing of the MCP server's tools".to_owned(),
                };
                Err(ToolError::Unavailable {
                    message: format!(
                        "{}: no recorded answer for {what} on {} {which}at node path {path:?} (occurrence {occurrence}): {reason}; the flow or its inputs changed since the recording: re-record with --record",
                        self.name,
                        self.secrets.redact_str(&recorded.server),
                    ),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl McpSend for McpReplayer {
    fn name(&self) -> &str {
        &self.name
    }

    fn reaches_servers(&self) -> bool {
        false
    }

    async fn send(&self, _sessions: &Sessions, request: &McpRequest) -> McpReply {
        // Nothing is opened: no connection, no process.
        McpReply { result: self.serve(request), attempts: 0 }
    }
}
