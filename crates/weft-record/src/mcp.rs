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

use std::sync::Arc;

use weft_tools::ToolError;
use weft_tools::mcp::{McpReply, McpRequest, McpSend, Sessions, Transport};

use crate::format::{McpLine, RecordedMcpAnswer, RecordedMcpRequest, RecordedToolError};
use crate::log::{RecordLog, excerpt};
use crate::replay::{Kind, Names, RE_RECORD, Replay};

/// The MCP exchanges of a record file (lines of kind `mcp`), served by [`McpReplayer`].
pub struct McpExchanges;

impl Kind for McpExchanges {
    type Answer = RecordedMcpAnswer;
    type Error = RecordedToolError;
    const NAMES: Names = Names { line: "mcp", exchange: "MCP request", repeated: "MCP request" };
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
        let (key, occurrence) =
            self.log.stamp(McpExchanges::NAMES.line, request.meta.batch_index, &request.meta.node_path, &recorded.key_content());
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

/// Serves the MCP exchanges of a record file, with no server: each recorded exchange answers the
/// request with the same key in the same run (of a batch) at the same node path and occurrence,
/// once ([`Replay`]). A request the recording does not have fails (`unavailable`) naming the
/// tool, the server, the node path and the occurrence.
/// Files of formats 1 to 3 hold no MCP exchange.
pub type McpReplayer = Replay<McpExchanges>;

impl Replay<McpExchanges> {
    fn serve(&self, request: &McpRequest) -> Result<weft_tools::mcp::McpAnswer, ToolError> {
        let recorded = RecordedMcpRequest::from(request);
        match self.find(request.meta.batch_index, &request.meta.node_path, &recorded.key_content()) {
            Ok(Ok(answer)) => Ok(answer.clone().into()),
            Ok(Err(error)) => Err(error.clone().into()),
            Err(missing) => {
                let secrets = self.secrets();
                let what = match &recorded.tool {
                    Some(tool) => {
                        let args = serde_json::to_string(&recorded.arguments).unwrap_or_default();
                        format!("the call of MCP tool {tool:?} (arguments {})", excerpt(&secrets.redact_str(&args)))
                    }
                    None => "the listing of the MCP server's tools".to_owned(),
                };
                let what = format!("{what} on {}", secrets.redact_str(&recorded.server));
                Err(ToolError::Unavailable { message: missing.message(&what, "", RE_RECORD) })
            }
        }
    }
}

#[async_trait::async_trait]
impl McpSend for McpReplayer {
    fn name(&self) -> &str {
        Replay::name(self)
    }

    fn reaches_servers(&self) -> bool {
        false
    }

    async fn send(&self, _sessions: &Sessions, request: &McpRequest) -> McpReply {
        // Nothing is opened: no connection, no process.
        McpReply { result: self.serve(request), attempts: 0 }
    }
}
