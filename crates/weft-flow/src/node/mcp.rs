//! MCP tools and toolboxes (AGENTS.md section 6; FORMAT.md 10.1 and 11): their transports
//! lowered once per component ([`McpTransport`]), an `MCPTool`'s interface as the document gives
//! it ([`McpTool`]), and an `MCPToolBox`'s `tool_filter` with its `MCPToolSpec` overrides
//! ([`McpToolBox`]). mTLS transports and OAuth `auth` are blockers (`not supported yet`); a
//! `StdioTransport` is lowered, and the planner refuses it unless the user allows the command.

use super::{Fields, Lowerer, object_value};
use std::sync::Arc;
use weft_spec::{CompId, Property, SecretRef, Value};

/// An MCP transport.
#[derive(Debug)]
pub struct McpTransport {
    /// The transport component.
    pub comp: CompId,
    /// `StreamableHTTPTransport "name"`, for messages.
    pub label: String,
    /// How to reach the server.
    pub kind: McpTransportKind,
    /// `session_parameters.read_timeout_seconds` (60 by default): how long a request waits for
    /// its answer (WayFlow drops it and always waits 60 s; Weft honours it).
    pub read_timeout_s: f64,
}

/// How an MCP transport reaches its server.
#[derive(Debug)]
pub enum McpTransportKind {
    /// `StreamableHTTPTransport` (`sse: false`) or `SSETransport` (`sse: true`), core or plugin.
    Http {
        /// `url`, as written.
        url: String,
        /// The legacy SSE transport.
        sse: bool,
        /// `headers`.
        headers: Vec<(String, String)>,
        /// `sensitive_headers`.
        sensitive_headers: McpSecretHeaders,
        /// The plugin transports' `timeout` (5 s by default): each HTTP request's.
        timeout_s: f64,
    },
    /// `StdioTransport` (or `PluginStdioTransport`): a process Weft would start.
    Stdio {
        /// `command`.
        command: String,
        /// `args`.
        args: Vec<String>,
        /// `env`.
        env: Vec<(String, String)>,
        /// `cwd`.
        cwd: Option<String>,
    },
}

/// A transport's `sensitive_headers`: sent, never shown.
#[derive(Clone, Default)]
pub enum McpSecretHeaders {
    /// None.
    #[default]
    None,
    /// Given.
    Given(Vec<(String, String)>),
    /// A reference whose value was not supplied: opening the session fails, naming it.
    Missing {
        /// `<component id>.sensitive_headers`.
        key: String,
    },
}

impl std::fmt::Debug for McpSecretHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpSecretHeaders::None => f.write_str("None"),
            McpSecretHeaders::Given(h) => write!(f, "Given({:?} <redacted>)", h.iter().map(|(k, _)| k).collect::<Vec<_>>()),
            McpSecretHeaders::Missing { key } => f.debug_struct("Missing").field("key", key).finish(),
        }
    }
}

/// An `MCPTool` (or `PluginMCPTool`): its interface as the document declares it.
#[derive(Debug)]
pub struct McpTool {
    /// The tool component.
    pub comp: CompId,
    /// The server tool's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its inputs.
    pub inputs: Vec<Property>,
    /// Its outputs (how the result is read, AGENTS.md 6.4).
    pub outputs: Vec<Property>,
    /// Its transport.
    pub transport: Arc<McpTransport>,
    /// `retry_policy` (core `MCPTool`, from 26.3.1), when given (an object): its calls are
    /// retried per FORMAT.md 9.2.
    pub retry_policy: Option<serde_json::Value>,
}

/// An `MCPToolBox` (or `PluginMCPToolBox`).
#[derive(Debug)]
pub struct McpToolBox {
    /// The toolbox component.
    pub comp: CompId,
    /// Its transport.
    pub transport: Arc<McpTransport>,
    /// `tool_filter`: `None` for every tool of the server.
    pub filter: Option<Vec<McpFilter>>,
    /// `requires_confirmation`: every tool of the box needs the caller's approval.
    pub requires_confirmation: bool,
    /// `retry_policy` (core `MCPToolBox`, from 26.3.1), when given: the calls of its tools are
    /// retried per FORMAT.md 9.2.
    pub retry_policy: Option<serde_json::Value>,
}

/// One entry of a `tool_filter`: a name, or an `MCPToolSpec` overriding the server's tool.
#[derive(Debug, Clone)]
pub struct McpFilter {
    /// The tool's name.
    pub name: String,
    /// The spec's description, inputs, outputs and `requires_confirmation`.
    pub spec: Option<McpToolSpec>,
}

/// An `MCPToolSpec`.
#[derive(Debug, Clone)]
pub struct McpToolSpec {
    /// Its description (`""` when absent).
    pub description: String,
    /// Its inputs.
    pub inputs: Vec<Property>,
    /// Its outputs.
    pub outputs: Vec<Property>,
    /// `requires_confirmation`.
    pub requires_confirmation: bool,
}

/// Whether `ty` is an MCP tool type.
pub fn is_tool(ty: &str) -> bool {
    matches!(ty, "MCPTool" | "PluginMCPTool")
}

/// Whether `ty` is an MCP toolbox type.
pub fn is_toolbox(ty: &str) -> bool {
    matches!(ty, "MCPToolBox" | "PluginMCPToolBox")
}

/// Lowers the transport of MCP tool or toolbox `c`; what Weft does not run is a blocker of
/// `owner`.
fn transport(lw: &mut Lowerer<'_, '_>, owner: CompId, c: CompId) -> Option<Arc<McpTransport>> {
    let t = lw.fields(c).comp("client_transport")?;
    let tc = lw.comp(t);
    let f = lw.fields(t);
    let ty = tc.ty.name;
    if ty.contains("mTLS") {
        lw.block(owner, t, tc.pointer.clone(), format!("{ty} (an MCP transport with client certificates)"));
        return None;
    }
    if f.has("auth") && f.comp("auth").is_some() {
        lw.block(owner, t, format!("{}/auth", tc.pointer), format!("`auth` on {ty} (OAuth for MCP servers)"));
        return None;
    }
    let read_timeout_s = f
        .object("session_parameters")
        .and_then(|p| p.get("read_timeout_seconds"))
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(60.0);
    let strings = |v: Option<&serde_json::Map<String, serde_json::Value>>| -> Vec<(String, String)> {
        v.map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect()).unwrap_or_default()
    };
    let kind = match ty {
        "StdioTransport" | "PluginStdioTransport" => McpTransportKind::Stdio {
            command: f.str("command").unwrap_or_default().to_owned(),
            args: f
                .json("args")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            env: strings(f.object("env")),
            cwd: f.str("cwd").map(str::to_owned),
        },
        _ => {
            let sensitive_headers = match tc.field("sensitive_headers") {
                Some(Value::Secret(SecretRef { key, value: None })) => McpSecretHeaders::Missing { key: key.clone() },
                other => match object_value(other) {
                    Some(serde_json::Value::Object(m)) if !m.is_empty() => McpSecretHeaders::Given(strings(Some(&m))),
                    _ => McpSecretHeaders::None,
                },
            };
            let timeout_s = if f.has("timeout") { f.json("timeout").and_then(serde_json::Value::as_f64) } else { None };
            McpTransportKind::Http {
                url: f.str("url").unwrap_or_default().to_owned(),
                sse: ty.contains("SSE"),
                headers: strings(f.object("headers")),
                sensitive_headers,
                timeout_s: timeout_s.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(5.0).max(read_timeout_s),
            }
        }
    };
    Some(Arc::new(McpTransport { comp: t, label: tc.label(), kind, read_timeout_s }))
}

/// The `retry_policy` of MCP tool or toolbox `c` (the core types have it; the plugin types do
/// not).
fn retry_policy(lw: &Lowerer<'_, '_>, c: CompId) -> Option<serde_json::Value> {
    if !matches!(lw.comp(c).ty.name, "MCPTool" | "MCPToolBox") {
        return None;
    }
    lw.fields(c).json("retry_policy").filter(|v| v.is_object()).cloned()
}

/// Lowers MCP tool `t` for `owner`.
pub(super) fn tool(lw: &mut Lowerer<'_, '_>, owner: CompId, t: CompId) -> Option<Arc<McpTool>> {
    let transport = transport(lw, owner, t)?;
    let tc = lw.comp(t);
    let io = lw.io(t);
    Some(Arc::new(McpTool {
        comp: t,
        name: tc.name.clone(),
        description: tc.description.clone().unwrap_or_default(),
        inputs: io.inputs.clone(),
        outputs: io.outputs.clone(),
        transport,
        retry_policy: retry_policy(lw, t),
    }))
}

/// Lowers MCP toolbox `b` for `owner`.
pub(super) fn toolbox(lw: &mut Lowerer<'_, '_>, owner: CompId, b: CompId) -> Option<Arc<McpToolBox>> {
    let transport = transport(lw, owner, b)?;
    let comp = lw.comp(b);
    let filter = match comp.field("tool_filter") {
        Some(Value::List(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::Json(serde_json::Value::String(name)) => out.push(McpFilter { name: name.clone(), spec: None }),
                    Value::Comp(s) => {
                        let sc = lw.comp(*s);
                        let io = lw.io(*s);
                        out.push(McpFilter {
                            name: sc.name.clone(),
                            spec: Some(McpToolSpec {
                                description: sc.description.clone().unwrap_or_default(),
                                inputs: io.inputs.clone(),
                                outputs: io.outputs.clone(),
                                requires_confirmation: Fields::of(sc).bool_where_present("requires_confirmation", false),
                            }),
                        });
                    }
                    _ => {}
                }
            }
            Some(out)
        }
        _ => None,
    };
    Some(Arc::new(McpToolBox {
        comp: b,
        transport,
        filter,
        requires_confirmation: lw.fields(b).bool_where_present("requires_confirmation", false),
        retry_policy: retry_policy(lw, b),
    }))
}
