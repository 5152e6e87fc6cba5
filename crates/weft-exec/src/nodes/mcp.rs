//! MCP tools and toolboxes at run time (AGENTS.md section 6): each transport resolved when the
//! run is planned into a [`Server`] (its URL through `--http-rewrite` and checked against
//! `--allow-host`; a `StdioTransport` refused unless `--allow-stdio-mcp` or the tools file allows
//! its command, so no process starts), then called through the run's sessions (one per server,
//! opened on first use, closed when `execute()` returns).
//!
//! An `MCPTool` is a [`ToolTarget::Mcp`](crate::effect::ToolTarget) of tool nodes and agents; an
//! agent's toolboxes are listed before each of its LLM calls but the last allowed one
//! ([`ToolBoxes::list`], in the call's task), their tools offered after the built-in ones, and the
//! listing kept with the turn ([`ListedTool`]) so the model's calls of them are found, checked,
//! normalized and made.

use crate::context::RunContext;
use crate::event::Event;
use crate::plan::{Compiler, pointer};
use crate::state::ListedTool;
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use std::time::Duration;
use weft_flow::node::{McpSecretHeaders, McpToolBox, McpTransport, McpTransportKind};
use weft_llm::ToolSpec;
use weft_llm::retry::RetryPolicy;
use weft_spec::Property;
use weft_tools::ToolError;
use weft_tools::mcp::{McpAnswer, McpMeta, McpOp, McpReply, McpRequest, McpSend, Server, Transport, convert, listed_outputs};

/// The plan's MCP client (the live one unless the options give a recorder or a replayer).
fn client(c: &Compiler<'_>) -> Arc<dyn McpSend> {
    c.inputs.mcp.client.clone().unwrap_or_else(|| Arc::new(weft_tools::mcp::LiveMcp::new()))
}

/// The `retry_policy` of MCP tool or toolbox `comp`, or why it cannot be used (reported).
fn retry(c: &mut Compiler<'_>, comp: weft_spec::CompId, policy: Option<&Json>) -> Result<Option<RetryPolicy>, ()> {
    let Some(policy) = policy else { return Ok(None) };
    match RetryPolicy::from_agent_spec(policy) {
        Ok(policy) => Ok(Some(policy)),
        Err(problem) => {
            let comp = c.comp(comp);
            c.report(format!("{} at {}/retry_policy: {problem}", comp.label(), pointer(comp)));
            Err(())
        }
    }
}

/// Which call of the run a request at frame `path` of node `node` is.
fn meta(run: &RunContext, path: &str, node: &str) -> McpMeta {
    McpMeta { node: node.to_owned(), node_path: format!("{path}/{node}"), batch_index: run.index.and_then(|i| u64::try_from(i).ok()) }
}

/// Sends `request` through `client` and reports its `mcp_call` event at `path`.
async fn send(client: &dyn McpSend, run: &RunContext, path: &str, request: &McpRequest) -> McpReply {
    let t = std::time::Instant::now();
    let reply = client.send(&run.mcp, request).await;
    if run.listening() {
        let event = Event::McpCall {
            node: request.meta.node.clone(),
            server: request.server.shown.clone(),
            method: request.method().to_owned(),
            tool: request.tool().map(str::to_owned),
            attempts: reply.attempts,
            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
            error: reply.result.as_ref().err().map(ToString::to_string),
        };
        run.emit(path, &event);
    }
    reply
}

/// The server of transport `t`, or why the run cannot reach or start it (reported).
pub(crate) fn server(c: &mut Compiler<'_>, t: &McpTransport) -> Option<Arc<Server>> {
    let comp = c.comp(t.comp);
    let (label, at) = (comp.label(), pointer(comp));
    let read_timeout = Duration::from_secs_f64(t.read_timeout_s.min(31_536_000.0));
    let shown = match &t.kind {
        McpTransportKind::Http { url, sse, .. } => {
            format!("{} {}", if *sse { "sse" } else { "http" }, weft_guard::egress::without_credentials(url))
        }
        McpTransportKind::Stdio { command, args, .. } => std::iter::once(command).chain(args).fold("stdio".to_owned(), |s, a| s + " " + a),
    };
    let transport = match &t.kind {
        McpTransportKind::Http { url, sse, headers, sensitive_headers, timeout_s } => {
            let sensitive = match sensitive_headers {
                McpSecretHeaders::None => Vec::new(),
                McpSecretHeaders::Given(h) => h.clone(),
                McpSecretHeaders::Missing { key } => {
                    c.report(format!(
                        "{label} at {at}/sensitive_headers: its `sensitive_headers` are a reference ({key}) whose value was not given: give it with --secret {key}='{{\"Authorization\": \"...\"}}'"
                    ));
                    return None;
                }
            };
            let target = c.inputs.mcp.rewrites.apply(url).unwrap_or_else(|| url.clone());
            if let Err(e) = c.inputs.mcp.egress.check_url(&target) {
                c.report(format!("{label} at {at}/url: {e}"));
                return None;
            }
            Transport::Http {
                url: target,
                sse: *sse,
                headers: headers.clone(),
                sensitive_headers: sensitive,
                timeout: Duration::from_secs_f64(timeout_s.min(31_536_000.0)),
            }
        }
        McpTransportKind::Stdio { command, args, env, cwd } => {
            // A replay starts no process, so it needs no permission.
            let allowed =
                c.inputs.mcp.allow_stdio || c.inputs.mcp.allowed_commands.iter().any(|a| a == command) || !client(c).reaches_servers();
            if !allowed {
                c.report(format!(
                    "{label} at {at}: the document asks to start the command {command:?} as a stdio MCP server, and a document may not start processes on its own: run with --allow-stdio-mcp (given again on resume), or allow the command in the tools file ([mcp] allow_commands = [{command:?}])"
                ));
                return None;
            }
            Transport::Stdio { command: command.clone(), args: args.clone(), env: env.clone(), cwd: cwd.clone() }
        }
    };
    Some(Arc::new(Server { label, transport, read_timeout, shown }))
}

/// A call of one MCP server tool: an `MCPTool`, or a toolbox's tool the model called.
pub(crate) struct McpCall {
    pub(crate) server: Arc<Server>,
    pub(crate) tool: String,
    /// The outputs the result is read for (schemas with their titles).
    pub(crate) outputs: Vec<Json>,
    /// The node calling it (its tool node or agent), for events and recordings.
    pub(crate) node: String,
    /// The tool's (or its toolbox's) `retry_policy`.
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) client: Arc<dyn McpSend>,
}

impl McpCall {
    /// An `MCPTool`'s call from node `node`, its outputs as declared.
    pub(crate) fn of_tool(c: &mut Compiler<'_>, node: &str, tool: &weft_flow::node::McpTool) -> Option<McpCall> {
        let server = server(c, &tool.transport)?;
        let retry = retry(c, tool.comp, tool.retry_policy.as_ref()).ok()?;
        Some(McpCall {
            server,
            tool: tool.name.clone(),
            outputs: tool.outputs.iter().map(titled).collect(),
            node: node.to_owned(),
            retry,
            client: client(c),
        })
    }

    /// Calls the tool in the run's session with its server (or through the recording), its
    /// `mcp_call` event reported at frame `path`.
    pub(crate) async fn call(&self, args: Map<String, Json>, run: &RunContext, path: &str) -> Result<Json, ToolError> {
        let request = McpRequest {
            server: Arc::clone(&self.server),
            op: McpOp::Call { tool: self.tool.clone(), arguments: args },
            retry: self.retry.clone(),
            meta: meta(run, path, &self.node),
        };
        match send(&*self.client, run, path, &request).await.result? {
            McpAnswer::Called(result) => convert(&result, &self.outputs),
            McpAnswer::Listed(_) => Err(ToolError::BadOutput { message: format!("{} answered a call with a listing", self.server.label) }),
        }
    }
}

/// A property's schema with its title.
fn titled(p: &Property) -> Json {
    let mut s = p.schema.clone();
    if let Json::Object(m) = &mut s {
        m.insert("title".into(), Json::String(p.title().to_owned()));
    }
    s
}

/// An agent's toolboxes, their servers and retry policies resolved.
pub(crate) struct ToolBoxes {
    boxes: Vec<(Arc<McpToolBox>, Arc<Server>, Option<RetryPolicy>)>,
    /// The agent's node.
    node: String,
    client: Arc<dyn McpSend>,
}

impl ToolBoxes {
    pub(crate) fn plan(c: &mut Compiler<'_>, node: &str, boxes: &[Arc<McpToolBox>]) -> Option<ToolBoxes> {
        let mut out = Vec::new();
        let mut ok = true;
        for b in boxes {
            match (server(c, &b.transport), retry(c, b.comp, b.retry_policy.as_ref())) {
                (Some(s), Ok(r)) => out.push((Arc::clone(b), s, r)),
                _ => ok = false,
            }
        }
        ok.then(|| ToolBoxes { boxes: out, node: node.to_owned(), client: client(c) })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Every toolbox's tools as the model is offered them, in the toolboxes' order and each
    /// server's order (AGENTS.md 6.3); a name of a `tool_filter` the server lacks is an error.
    pub(crate) async fn list(&self, run: &RunContext, path: &str) -> Result<Vec<ListedTool>, String> {
        let mut out = Vec::new();
        for (i, (b, server, retry)) in self.boxes.iter().enumerate() {
            let request = McpRequest { server: Arc::clone(server), op: McpOp::List, retry: None, meta: meta(run, path, &self.node) };
            // A `tool_filter` name the server lacks is listed again per the toolbox's
            // `retry_policy`, as WayFlow does (`_classify_missing_mcp_tool_for_retry`).
            let mut listings = 0u32;
            let tools = loop {
                listings += 1;
                let tools = match send(&*self.client, run, path, &request).await.result.map_err(|e| e.to_string())? {
                    McpAnswer::Listed(tools) => tools,
                    McpAnswer::Called(_) => return Err(format!("{} answered a listing with a call's result", server.label)),
                };
                let Some(filter) = &b.filter else { break tools };
                let missing: Vec<&str> =
                    filter.iter().filter(|f| !tools.iter().any(|t| t.name == f.name)).map(|f| f.name.as_str()).collect();
                if missing.is_empty() {
                    break tools;
                }
                if let Some(policy) = retry.as_ref().filter(|p| listings <= p.max_retries) {
                    let u = weft_llm::rng::Rng::new(None).unit();
                    tokio::time::sleep(policy.delay(listings - 1, false, u)).await;
                    continue;
                }
                return Err(format!(
                    "Expected MCP tool(s) {} but they were missing from {} (its tools: {}){}: check the toolbox's `tool_filter`",
                    weft_prompt::py_str(&json!(missing)),
                    server.label,
                    weft_prompt::py_str(&json!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())),
                    if listings > 1 { format!(", after {listings} listings per the toolbox's retry_policy") } else { String::new() }
                ));
            };
            for tool in tools {
                let entry = match &b.filter {
                    None => None,
                    Some(filter) => match filter.iter().find(|f| f.name == tool.name) {
                        Some(f) => Some(f),
                        None => continue,
                    },
                };
                let (spec, outputs, confirm) = match entry.and_then(|f| f.spec.as_ref()) {
                    Some(spec) => (
                        super::agent::tool_spec(&tool.name, &spec.description, &spec.inputs),
                        spec.outputs.iter().map(titled).collect(),
                        spec.requires_confirmation,
                    ),
                    None => {
                        (server_spec(&tool.name, &tool.description, &tool.input_schema), listed_outputs(tool.output_schema.as_ref()), false)
                    }
                };
                out.push(ListedTool { toolbox: i, spec, outputs, requires_confirmation: confirm || b.requires_confirmation });
            }
        }
        Ok(out)
    }

    /// The call of listed tool `tool`.
    pub(crate) fn call(&self, tool: &ListedTool) -> Option<McpCall> {
        let (_, server, retry) = self.boxes.get(tool.toolbox)?;
        Some(McpCall {
            server: Arc::clone(server),
            tool: tool.spec.name.clone(),
            outputs: tool.outputs.clone(),
            node: self.node.clone(),
            retry: retry.clone(),
            client: Arc::clone(&self.client),
        })
    }
}

/// A server tool's description for the model, as WayFlow re-serializes it: each parameter of
/// `inputSchema.properties` as a property titled by its name, required when it has no default.
fn server_spec(name: &str, description: &str, input_schema: &Json) -> ToolSpec {
    let params: Vec<Property> = input_schema
        .get("properties")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let mut s = v.clone();
                    if let Json::Object(o) = &mut s {
                        o.insert("title".into(), Json::String(k.clone()));
                    }
                    Property::new(s)
                })
                .collect()
        })
        .unwrap_or_default();
    super::agent::tool_spec(name, description, &params)
}
