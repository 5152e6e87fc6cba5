//! MCP clients (AGENTS.md section 6): a session with one MCP server over streamable HTTP, the
//! legacy SSE transport ([`sse`], written on rmcp's transport trait, which has no client for it)
//! or stdio (a process Weft starts, in a process group of its own, with only `PATH`, `HOME` and
//! the transport's own environment); tools listed as WayFlow lists them (every page); calls with
//! the session's read timeout, a dropped call notified to the server (`notifications/cancelled`);
//! results turned into values as WayFlow turns them ([`convert`]).
//!
//! [`Sessions`] shares one session per server among the tools that use it (a run's, or the
//! process's for tools-file bindings); [`McpTool`] is a tools-file binding of a ServerTool name
//! to a tool of a long-lived server.

mod client;
mod sse;

pub use client::{LiveMcp, McpAnswer, McpMeta, McpOp, McpReply, McpRequest, McpSend};

use crate::{Tool, ToolError};
use rmcp::model::{CallToolRequestParams, PaginatedRequestParams};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long connecting and the `initialize` handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most pages of a tool listing read (a server whose cursor never ends stops there).
const MAX_PAGES: usize = 1_000;

/// How to reach an MCP server.
#[derive(Clone)]
pub enum Transport {
    /// Streamable HTTP (`sse: false`) or the legacy SSE transport (`sse: true`), at `url` (the
    /// URL requests go to: rewritten already, its host allowed).
    Http {
        /// Where requests go.
        url: String,
        /// The legacy HTTP+SSE transport.
        sse: bool,
        /// Headers sent with every request.
        headers: Vec<(String, String)>,
        /// Headers sent with every request, never shown.
        sensitive_headers: Vec<(String, String)>,
        /// The timeout of each HTTP request but the event stream (WayFlow's `timeout`, 5 s).
        timeout: Duration,
    },
    /// A process speaking MCP on its stdin and stdout.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its environment, besides `PATH` and `HOME`.
        env: Vec<(String, String)>,
        /// Its working directory.
        cwd: Option<String>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Http { url, sse, headers, sensitive_headers, timeout } => f
                .debug_struct("Http")
                .field("url", url)
                .field("sse", sse)
                .field("headers", headers)
                .field("sensitive_headers", &sensitive_headers.iter().map(|(k, _)| (k, "<redacted>")).collect::<Vec<_>>())
                .field("timeout", timeout)
                .finish(),
            Transport::Stdio { command, args, env, cwd } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
        }
    }
}

/// An MCP server: how to reach it, and how long a request may wait for its answer.
#[derive(Debug, Clone)]
pub struct Server {
    /// What messages call it (`StreamableHTTPTransport "crm"`, `the MCP server of tool "x"`).
    pub label: String,
    /// How to reach it.
    pub transport: Transport,
    /// How long a listing or a call waits for the answer (`session_parameters`'
    /// `read_timeout_seconds`).
    pub read_timeout: Duration,
    /// The server as events and recordings name it, with no secret: `http <url>` or
    /// `sse <url>` (the URL as the document gives it, before `--http-rewrite`, credentials
    /// removed), or `stdio <command> <args>` (never its environment).
    pub shown: String,
}

impl Server {
    /// The key sessions are shared by: the same transport reaches the same server.
    pub fn key(&self) -> String {
        match &self.transport {
            Transport::Http { url, sse, headers, sensitive_headers, .. } => {
                // Sensitive values take part only through a hash-free length-prefixed join, in
                // memory, never printed.
                let mut key = format!("{}|{url}", if *sse { "sse" } else { "http" });
                for (k, v) in headers.iter().chain(sensitive_headers) {
                    key.push_str(&format!("|{}:{k}={}:{v}", k.len(), v.len()));
                }
                key
            }
            Transport::Stdio { command, args, env, cwd } => {
                format!("stdio|{command}|{args:?}|{env:?}|{cwd:?}")
            }
        }
    }
}

/// A tool as the server lists it (its wire form: `name`, `description`, `inputSchema`,
/// `outputSchema`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedTool {
    /// Its name.
    pub name: String,
    /// Its description (empty when it has none).
    pub description: String,
    /// `inputSchema`.
    pub input_schema: Json,
    /// `outputSchema`, when given.
    pub output_schema: Option<Json>,
}

/// One open session with a server.
pub struct Session {
    service: RunningService<RoleClient, ()>,
    server: Server,
    /// A stdio server's process group, killed when the session goes.
    process: Option<Mutex<Process>>,
}

/// A stdio server's process: its PID and its group, killed on drop.
struct Process {
    pid: u32,
    child: tokio::process::Child,
    group: crate::command::ProcessGroup,
    /// The last bytes it wrote on stderr.
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// How much of a stdio server's stderr is kept for messages.
const STDERR_TAIL: usize = 2048;

impl Process {
    /// What it said last on stderr, and how it exited if it did, for messages.
    fn said(&mut self) -> String {
        let tail = self.stderr.lock().map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
        let exit = match self.child.try_wait() {
            Ok(Some(status)) => format!("; it exited ({status})"),
            _ => String::new(),
        };
        let tail = match tail.lines().last() {
            Some(line) if !line.is_empty() => format!("; its stderr ends with: {line}"),
            _ => String::new(),
        };
        format!(" (process {}{exit}{tail})", self.pid)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.group.kill();
        let _ = self.child.start_kill();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("server", &self.server.label).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session: connects (or starts the process) and makes the `initialize` handshake.
    pub async fn connect(server: &Server) -> Result<Session, ToolError> {
        let unavailable = |why: String| ToolError::Unavailable { message: format!("cannot open a session with {}: {why}", server.label) };
        match &server.transport {
            Transport::Http { url, sse, headers, sensitive_headers, timeout } => {
                let mut map = reqwest::header::HeaderMap::new();
                for (k, v) in headers.iter().chain(sensitive_headers) {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| unavailable(format!("{k:?} is not a valid HTTP header name")))?;
                    let mut value = reqwest::header::HeaderValue::from_str(v)
                        .map_err(|_| unavailable(format!("the value of header {k:?} is not a valid HTTP header value")))?;
                    if sensitive_headers.iter().any(|(s, _)| s == k) {
                        value.set_sensitive(true);
                    }
                    map.insert(name, value);
                }
                // With `rustls-no-provider`, a client needs the process's crypto provider first.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::limited(10))
                    .no_proxy()
                    .build()
                    .map_err(|e| unavailable(format!("cannot build an HTTP client: {e}")))?;
                let service = if *sse {
                    let transport = tokio::time::timeout(CONNECT_TIMEOUT, sse::SseTransport::connect(client, url, map, *timeout))
                        .await
                        .map_err(|_| unavailable(format!("no event stream from {url} within {}s", CONNECT_TIMEOUT.as_secs())))?
                        .map_err(|e| unavailable(e.to_string()))?;
                    handshake(server, ().serve(transport), None).await?
                } else {
                    use rmcp::transport::StreamableHttpClientTransport;
                    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                    let custom: HashMap<_, _> = map.into_iter().filter_map(|(k, v)| Some((k?, v))).collect();
                    let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
                    // A broken event stream is reopened twice at most: a dead server fails the call
                    // within a second, not after endless reconnections.
                    config.retry_config = Arc::new(FewRetries);
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    handshake(server, ().serve(transport), None).await?
                };
                Ok(Session { service, server: server.clone(), process: None })
            }
            Transport::Stdio { command, args, env, cwd } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear().stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
                cmd.stderr(std::process::Stdio::piped()).kill_on_drop(true);
                for key in ["PATH", "HOME"] {
                    if let Some(v) = std::env::var_os(key) {
                        cmd.env(key, v);
                    }
                }
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                #[cfg(unix)]
                cmd.process_group(0);
                let mut child = cmd.spawn().map_err(|e| unavailable(format!("cannot start {command:?}: {e}")))?;
                let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err(unavailable("its pipes could not be opened".into()));
                };
                let group = crate::command::ProcessGroup::led_by(&child);
                let pid = child.id().unwrap_or_default();
                let stderr = Arc::new(Mutex::new(Vec::new()));
                if let Some(mut pipe) = child.stderr.take() {
                    let tail = Arc::clone(&stderr);
                    tokio::spawn(async move {
                        use tokio::io::AsyncReadExt;
                        let mut buf = [0u8; 1024];
                        while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                            if let Ok(mut t) = tail.lock() {
                                t.extend_from_slice(&buf[..n]);
                                let excess = t.len().saturating_sub(STDERR_TAIL);
                                t.drain(..excess);
                            }
                        }
                    });
                }
                let mut process = Process { pid, child, group, stderr };
                let service = handshake(server, ().serve((stdout, stdin)), Some(&mut process)).await?;
                Ok(Session { service, server: server.clone(), process: Some(Mutex::new(process)) })
            }
        }
    }

    /// The PID of a stdio server's process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.lock().ok().map(|p| p.pid))
    }

    /// Whether the connection is gone (the server closed it or crashed).
    pub fn is_closed(&self) -> bool {
        self.service.is_transport_closed() || self.service.is_closed()
    }

    /// Every tool of the server, page after page, in the server's order.
    pub async fn list_tools(&self) -> Result<Vec<ListedTool>, Failure> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let page = self.within("listing its tools", self.service.peer().list_tools(params)).await?;
            let page = serde_json::to_value(&page).unwrap_or(Json::Null);
            for tool in page.get("tools").and_then(Json::as_array).into_iter().flatten() {
                out.push(ListedTool {
                    name: tool.get("name").and_then(Json::as_str).unwrap_or_default().to_owned(),
                    description: tool.get("description").and_then(Json::as_str).unwrap_or_default().to_owned(),
                    input_schema: tool.get("inputSchema").cloned().unwrap_or_else(|| serde_json::json!({"type": "object"})),
                    output_schema: tool.get("outputSchema").cloned(),
                });
            }
            match page.get("nextCursor").and_then(Json::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Calls tool `name`: the result in its wire form (`content`, `structuredContent`,
    /// `isError`). Dropping the future notifies the server that the call is cancelled.
    pub async fn call(&self, name: &str, args: Map<String, Json>) -> Result<Json, Failure> {
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
        let result = self.within(&format!("calling tool \"{name}\""), self.service.peer().call_tool(params)).await?;
        Ok(serde_json::to_value(&result).unwrap_or(Json::Null))
    }

    /// A request under the session's read timeout, its failure told clearly.
    async fn within<T>(&self, what: &str, request: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.server.read_timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failure(what, &e)),
            Err(_) => Err(Failure {
                error: ToolError::Failed {
                    message: format!(
                        "{} did not answer within {}s while {what} (its read timeout: raise `session_parameters.read_timeout_seconds` if it needs longer); the call was cancelled",
                        self.server.label,
                        self.server.read_timeout.as_secs_f64()
                    ),
                },
                retry: Retry::Cause(weft_llm::retry::Cause::Timeout),
            }),
        }
    }

    fn failure(&self, what: &str, e: &rmcp::ServiceError) -> Failure {
        match e {
            rmcp::ServiceError::McpError(data) => Failure {
                error: ToolError::Failed { message: format!("{} answered an error while {what}: {}", self.server.label, data.message) },
                retry: if missing_tool(&data.message) { Retry::MissingTool } else { Retry::Never },
            },
            rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => {
                // An HTTP error status is reported by the HTTP library's text ("HTTP status
                // server error (503 Service Unavailable) for url ..."): judged by its status.
                let status = http_status(&format!("{e:?} {e}"));
                Failure {
                    error: ToolError::Failed {
                        message: format!(
                            "{} closed the connection while {what}{}{}: the server crashed, stopped or sent something that is not MCP",
                            self.server.label,
                            status.map(|s| format!(" (HTTP status {s})")).unwrap_or_default(),
                            match &self.process {
                                Some(p) => p.lock().map(|mut p| p.said()).unwrap_or_default(),
                                None => String::new(),
                            }
                        ),
                    },
                    retry: Retry::Cause(match status {
                        Some(status) => weft_llm::retry::Cause::Status { status, body: String::new() },
                        None => weft_llm::retry::Cause::Transport,
                    }),
                }
            }
            other => Failure {
                error: ToolError::Failed { message: format!("{} failed while {what}: {}", self.server.label, plain(&other.to_string())) },
                retry: Retry::Never,
            },
        }
    }

    /// Closes the session (a stdio server's process group is killed).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.service.close()).await;
        if let Some(mut p) = self.process.take().and_then(|p| p.into_inner().ok()) {
            p.group.kill();
            let _ = p.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), p.child.wait()).await;
        }
    }
}

/// A failed listing or call, and whether a retry policy may try it again.
#[derive(Debug)]
pub struct Failure {
    /// What the caller sees.
    pub error: ToolError,
    /// How a retry policy judges it.
    pub retry: Retry,
}

impl From<Failure> for ToolError {
    fn from(f: Failure) -> ToolError {
        f.error
    }
}

impl From<ToolError> for Failure {
    /// A session that could not be opened: no connection, retried like a transport failure.
    fn from(error: ToolError) -> Failure {
        Failure { error, retry: Retry::Cause(weft_llm::retry::Cause::Transport) }
    }
}

/// How a retry policy judges a failure (FORMAT.md 9.2; AGENTS.md 6.4 item 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// As an HTTP request's failure: by status, transport or timeout.
    Cause(weft_llm::retry::Cause),
    /// An MCP error saying the tool is not found, unknown or does not exist: WayFlow retries it
    /// under any policy (`_classify_mcp_tool_call_for_retry`).
    MissingTool,
    /// The server answered an error: never retried.
    Never,
}

/// Whether an MCP error's message says the tool is missing, as WayFlow tells it
/// (`_is_missing_mcp_tool_error`).
fn missing_tool(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("tool") && (m.contains("not found") || m.contains("unknown") || m.contains("does not exist"))
}

/// The HTTP status in the HTTP library's text of a status error (`HTTP status server error
/// (503 Service Unavailable)`).
fn http_status(text: &str) -> Option<u16> {
    let at = text.find("HTTP status ")?;
    let rest = &text[at..];
    let open = rest.find('(')?;
    rest[open + 1..].get(..3)?.parse().ok().filter(|s| (100..600).contains(s))
}

/// The `initialize` handshake, under [`CONNECT_TIMEOUT`].
async fn handshake<E: std::fmt::Display>(
    server: &Server,
    serving: impl std::future::Future<Output = Result<RunningService<RoleClient, ()>, E>>,
    process: Option<&mut Process>,
) -> Result<RunningService<RoleClient, ()>, ToolError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, serving).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(e)) => {
            // Give a dying process a moment, so its exit and last words are in the message.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let said = process.map(|p| p.said()).unwrap_or_default();
            Err(ToolError::Unavailable {
                message: format!(
                    "{} did not complete the MCP handshake{said}: {} (is it an MCP server, at this URL or command?)",
                    server.label,
                    plain(&e.to_string())
                ),
            })
        }
        Err(_) => Err(ToolError::Unavailable {
            message: format!("{} did not complete the MCP handshake within {}s", server.label, CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// An rmcp error's text without the Rust type names it quotes (`Transport [rmcp::...] error`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let inside = &rest[open + 1..open + close];
        out.push_str(&rest[..open]);
        if !inside.contains("::") {
            out.push_str(&rest[open..=open + close]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

/// Reopens a broken event stream twice, 200 ms apart.
#[derive(Debug)]
struct FewRetries;

impl rmcp::transport::common::client_side_sse::SseRetryPolicy for FewRetries {
    fn retry(&self, current_times: usize) -> Option<Duration> {
        (current_times < 2).then_some(Duration::from_millis(200))
    }
}

/// Where a server's session is kept, locked while it is opened.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

/// Sessions shared by key (one per server): a run's, or the process's.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    /// No session yet.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// The session with `server`, opened on first use (or again when the last one closed).
    pub async fn get(&self, server: &Server) -> Result<Arc<Session>, ToolError> {
        let slot = {
            let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(open.entry(server.key()).or_default())
        };
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(Session::connect(server).await?);
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }

    /// The PIDs of the stdio servers open.
    pub fn pids(&self) -> Vec<u32> {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open.values().filter_map(|slot| slot.try_lock().ok().and_then(|s| s.as_ref().and_then(|s| s.pid()))).collect()
    }

    /// Closes every session.
    pub async fn close_all(&self) {
        let slots: Vec<_> = {
            let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            open.drain().map(|(_, v)| v).collect()
        };
        for slot in slots {
            let session = slot.lock().await.take();
            if let Some(session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
                session.close().await;
            }
        }
    }
}

/// The outputs of an MCP tool as WayFlow sees them (AGENTS.md 6.3): the declared ones, or for a
/// listed tool without a spec, from its `outputSchema`.
pub fn listed_outputs(output_schema: Option<&Json>) -> Vec<Json> {
    let Some(schema) = output_schema else { return vec![serde_json::json!({"title": "tool_output", "type": "string"})] };
    if schema.get("additionalProperties").is_some_and(|a| !matches!(a, Json::Bool(false))) {
        let mut s = schema.clone();
        if let Json::Object(m) = &mut s {
            m.insert("title".into(), Json::String("tool_output".into()));
        }
        return vec![s];
    }
    if let Some(result) = schema.get("properties").and_then(|p| p.get("result"))
        && (result.get("anyOf").is_some() || result.get("type").and_then(Json::as_str) == Some("array"))
    {
        let mut r = result.clone();
        if let Json::Object(m) = &mut r {
            m.insert("title".into(), Json::String("result".into()));
        }
        return vec![r];
    }
    vec![serde_json::json!({"title": "tool_output", "type": "string"})]
}

/// A call's result (its wire form) as the tool's value, as WayFlow turns it (AGENTS.md 6.4),
/// for a tool with these outputs (JSON schemas with titles). An error result (`isError`) is
/// an error whose message is the result's text (WayFlow returns it as a value; Weft raises, so
/// tool nodes and catch nodes see a failure, and an agent's model still reads the same text).
pub fn convert(result: &Json, outputs: &[Json]) -> Result<Json, ToolError> {
    let structured = result.get("structuredContent").filter(|v| !v.is_null());
    if result.get("isError").and_then(Json::as_bool) == Some(true) {
        let text = text_of(result).unwrap_or_else(|e| e.to_string());
        return Err(ToolError::Failed { message: text });
    }
    let is_type = |o: &Json, t: &str| o.get("type").and_then(Json::as_str) == Some(t);
    match outputs {
        [_, _, ..] => {
            if let Some(Json::Array(items)) = structured.and_then(|s| s.get("result"))
                && items.len() == outputs.len()
            {
                let mut out = Map::new();
                for (o, item) in outputs.iter().zip(items) {
                    out.insert(o.get("title").and_then(Json::as_str).unwrap_or_default().to_owned(), item.clone());
                }
                return Ok(Json::Object(out));
            }
        }
        [one] => {
            if (is_type(one, "object") || one.get("additionalProperties").is_some())
                && let Some(s) = structured.filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
            {
                return Ok(s.clone());
            }
            if (is_type(one, "array") || one.get("anyOf").is_some())
                && let Some(r) = structured.and_then(|s| s.get("result"))
            {
                return Ok(r.clone());
            }
        }
        [] => {}
    }
    text_of(result).map(Json::String)
}

/// The text of a result: its text parts joined without separator, a text resource as the JSON
/// of its `uri`, `mimeType` and `text`; any other part is an error, and so is no content.
fn text_of(result: &Json) -> Result<String, ToolError> {
    let parts = result.get("content").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
    if parts.is_empty() {
        return Err(ToolError::BadOutput { message: "the MCP tool returned no content (\"No content was returned\")".into() });
    }
    let mut text = String::new();
    for part in parts {
        match part.get("type").and_then(Json::as_str) {
            Some("text") => text.push_str(part.get("text").and_then(Json::as_str).unwrap_or_default()),
            Some("resource") if part.get("resource").and_then(|r| r.get("text")).is_some() => {
                let r = &part["resource"];
                let mut m = Map::new();
                m.insert("uri".into(), r.get("uri").cloned().unwrap_or(Json::Null));
                m.insert("mimeType".into(), r.get("mimeType").cloned().unwrap_or(Json::Null));
                m.insert("text".into(), r.get("text").cloned().unwrap_or(Json::Null));
                text.push_str(&py_dumps(&Json::Object(m)));
            }
            other => {
                return Err(ToolError::BadOutput {
                    message: format!(
                        "the MCP tool returned a content part of type {} that Weft cannot turn into a value (only text and text resources)",
                        other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
                    ),
                });
            }
        }
    }
    Ok(text)
}

/// Python's `json.dumps` with its default separators (`", "` and `": "`).
fn py_dumps(v: &Json) -> String {
    match v {
        Json::Object(m) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{}: {}", Json::String(k.clone()), py_dumps(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Json::Array(a) => format!("[{}]", a.iter().map(py_dumps).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A ServerTool name bound in the tools file to a tool of a long-lived MCP server: every call of
/// every run of the process goes through one session (one process for a stdio server).
pub struct McpTool {
    server: Server,
    tool: String,
    sessions: Arc<Sessions>,
}

impl McpTool {
    /// Tool `tool` of `server`, its session kept in `sessions` (shared by the bindings of a
    /// tools file).
    pub fn new(server: Server, tool: impl Into<String>, sessions: Arc<Sessions>) -> McpTool {
        McpTool { server, tool: tool.into(), sessions }
    }
}

#[async_trait::async_trait]
impl Tool for McpTool {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        let session = self.sessions.get(&self.server).await?;
        let result = session.call(&self.tool, args).await.map_err(ToolError::from)?;
        convert(&result, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_become_values_as_wayflow_makes_them() {
        let text = json!({"content": [{"type": "text", "text": "echo:"}, {"type": "text", "text": "hi"}]});
        assert_eq!(convert(&text, &[json!({"title": "out", "type": "string"})]).expect("text"), json!("echo:hi"));
        let structured = json!({"content": [{"type": "text", "text": "{}"}], "structuredContent": {"t": 21.5}});
        assert_eq!(convert(&structured, &[json!({"title": "w", "type": "object"})]).expect("object"), json!({"t": 21.5}));
        assert_eq!(convert(&structured, &[json!({"title": "w", "type": "string"})]).expect("text"), json!("{}"));
        let list = json!({"content": [], "structuredContent": {"result": ["a", "b"]}});
        assert_eq!(convert(&list, &[json!({"title": "result", "type": "array"})]).expect("list"), json!(["a", "b"]));
        let zipped = convert(&json!({"structuredContent": {"result": [1, "x"]}}), &[json!({"title": "a"}), json!({"title": "b"})]);
        assert_eq!(zipped.expect("zip"), json!({"a": 1, "b": "x"}));
        let error = json!({"content": [{"type": "text", "text": "Error executing tool boom: boom failed"}], "isError": true});
        assert_eq!(convert(&error, &[]).expect_err("error").to_string(), "Error executing tool boom: boom failed");
        assert!(convert(&json!({"content": []}), &[]).expect_err("empty").to_string().contains("No content was returned"));
        let image = json!({"content": [{"type": "image", "data": "", "mimeType": "image/png"}]});
        assert!(convert(&image, &[]).expect_err("image").to_string().contains("\"image\""));
        let resource = json!({"content": [{"type": "resource", "resource": {"uri": "file:///a", "mimeType": "text/plain", "text": "x"}}]});
        assert_eq!(
            convert(&resource, &[]).expect("resource"),
            json!("{\"uri\": \"file:///a\", \"mimeType\": \"text/plain\", \"text\": \"x\"}")
        );
    }

    #[test]
    fn listed_outputs_follow_the_output_schema() {
        assert_eq!(listed_outputs(None)[0]["type"], "string");
        let list = json!({"type": "object", "properties": {"result": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(listed_outputs(Some(&list))[0]["type"], "array");
        let model = json!({"type": "object", "properties": {"t": {"type": "number"}}});
        assert_eq!(listed_outputs(Some(&model))[0]["type"], "string");
        let dict = json!({"type": "object", "properties": {"result": {"type": "object", "additionalProperties": {"type": "integer"}}}});
        assert_eq!(listed_outputs(Some(&dict))[0]["type"], "string");
    }

    #[test]
    fn sensitive_headers_do_not_print() {
        let t = Transport::Http {
            url: "http://h/mcp".into(),
            sse: false,
            headers: vec![("X-Trace".into(), "1".into())],
            sensitive_headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
            timeout: Duration::from_secs(5),
        };
        let shown = format!("{t:?}");
        assert_eq!(http_status("TransportSend(HTTP status server error (503 Service Unavailable) for url (http://h/mcp))"), Some(503));
        assert_eq!(http_status("connection refused"), None);
        assert!(missing_tool("Unknown tool: flaky") && missing_tool("Tool x not found") && !missing_tool("boom failed"));
        assert!(!shown.contains("s3cr3t") && shown.contains("Authorization"), "{shown}");
    }
}
