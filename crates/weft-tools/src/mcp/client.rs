//! The one door of the MCP requests a document's tools and toolboxes make: [`McpSend`]. The
//! live client, [`LiveMcp`], lists and calls through the run's [`Sessions`] and applies the
//! tool's or toolbox's `retry_policy` to calls (FORMAT.md 9.2, AGENTS.md 6.4 item 5); weft-record
//! wraps it to record every exchange, or replaces it to answer from a recording with no server.

use super::{ListedTool, Retry, Server, Sessions};
use crate::ToolError;
use serde_json::{Map, Value as Json};
use std::sync::{Arc, Mutex, PoisonError};
use weft_llm::retry::RetryPolicy;

/// Which call of a run a request is: what recordings find it by.
#[derive(Debug, Clone, Default)]
pub struct McpMeta {
    /// The node's name.
    pub node: String,
    /// The node's path (`flow/node`, `flow/map[2]/node`).
    pub node_path: String,
    /// The run's index in a batch.
    pub batch_index: Option<u64>,
}

/// What is asked of the server.
#[derive(Debug, Clone)]
pub enum McpOp {
    /// `tools/list`, every page.
    List,
    /// `tools/call`.
    Call {
        /// The tool's name.
        tool: String,
        /// Its arguments.
        arguments: Map<String, Json>,
    },
}

/// One MCP request of a run.
#[derive(Debug, Clone)]
pub struct McpRequest {
    /// The server.
    pub server: Arc<Server>,
    /// What is asked.
    pub op: McpOp,
    /// The tool's (or toolbox's) `retry_policy`: without one a call is tried once, as WayFlow
    /// tries it.
    pub retry: Option<RetryPolicy>,
    /// Which call of the run it is.
    pub meta: McpMeta,
}

impl McpRequest {
    /// `tools/list` or `tools/call`.
    pub fn method(&self) -> &'static str {
        match self.op {
            McpOp::List => "tools/list",
            McpOp::Call { .. } => "tools/call",
        }
    }

    /// The tool called, for a call.
    pub fn tool(&self) -> Option<&str> {
        match &self.op {
            McpOp::List => None,
            McpOp::Call { tool, .. } => Some(tool),
        }
    }
}

/// What the server gave.
#[derive(Debug, Clone, PartialEq)]
pub enum McpAnswer {
    /// The tools listed, in the server's order.
    Listed(Vec<ListedTool>),
    /// A call's result in its wire form (`content`, `structuredContent`, `isError`).
    Called(Json),
}

/// The outcome of a request, after its retries.
#[derive(Debug)]
pub struct McpReply {
    /// The answer, or why none came.
    pub result: Result<McpAnswer, ToolError>,
    /// Attempts made (0 when none was: a replay).
    pub attempts: u32,
}

/// Makes the MCP requests of a run's tools and toolboxes.
#[async_trait::async_trait]
pub trait McpSend: Send + Sync + std::fmt::Debug {
    /// What messages call it.
    fn name(&self) -> &str;

    /// Makes `request`, in `sessions` (the run's) when it talks to the server.
    async fn send(&self, sessions: &Sessions, request: &McpRequest) -> McpReply;

    /// Whether requests reach servers (connect, start processes): false for a replay, which
    /// needs no permission to start a stdio server because it starts none.
    fn reaches_servers(&self) -> bool {
        true
    }
}

/// The live client: requests in the run's sessions, calls retried per their policy.
#[derive(Debug)]
pub struct LiveMcp {
    rng: Mutex<weft_llm::rng::Rng>,
}

impl Default for LiveMcp {
    fn default() -> Self {
        LiveMcp { rng: Mutex::new(weft_llm::rng::Rng::new(None)) }
    }
}

impl LiveMcp {
    /// A live client.
    pub fn new() -> LiveMcp {
        LiveMcp::default()
    }

    /// One attempt.
    async fn attempt(sessions: &Sessions, request: &McpRequest) -> Result<McpAnswer, super::Failure> {
        let session = sessions.get(&request.server).await?;
        match &request.op {
            McpOp::List => session.list_tools().await.map(McpAnswer::Listed),
            McpOp::Call { tool, arguments } => session.call(tool, arguments.clone()).await.map(McpAnswer::Called),
        }
    }
}

#[async_trait::async_trait]
impl McpSend for LiveMcp {
    fn name(&self) -> &str {
        "mcp"
    }

    async fn send(&self, sessions: &Sessions, request: &McpRequest) -> McpReply {
        // A listing is not retried here: WayFlow retries it only when a `tool_filter` name is
        // missing, which the caller judges.
        let policy = match (&request.op, &request.retry) {
            (McpOp::Call { .. }, Some(policy)) => policy,
            _ => return McpReply { result: Self::attempt(sessions, request).await.map_err(ToolError::from), attempts: 1 },
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = match policy.request_timeout {
                Some(limit) => match tokio::time::timeout(limit, Self::attempt(sessions, request)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(super::Failure {
                        error: ToolError::Failed {
                            message: format!(
                                "{} did not answer within the retry_policy's request_timeout ({}s)",
                                request.server.label,
                                limit.as_secs_f64()
                            ),
                        },
                        retry: Retry::Cause(weft_llm::retry::Cause::Timeout),
                    }),
                },
                None => Self::attempt(sessions, request).await,
            };
            let failure = match outcome {
                Ok(answer) => return McpReply { result: Ok(answer), attempts },
                Err(failure) => failure,
            };
            let (again, throttled) = match &failure.retry {
                Retry::Cause(cause) => (policy.should_retry(cause), cause.status().is_some_and(|s| (400..500).contains(&s))),
                Retry::MissingTool => (true, false),
                Retry::Never => (false, false),
            };
            if !again || attempts > policy.max_retries {
                let error = match failure.error {
                    ToolError::Failed { message } if attempts > 1 => {
                        ToolError::Failed { message: format!("{message} (after {attempts} attempts, per the retry_policy)") }
                    }
                    other => other,
                };
                return McpReply { result: Err(error), attempts };
            }
            let u = self.rng.lock().unwrap_or_else(PoisonError::into_inner).unit();
            tokio::time::sleep(policy.delay(attempts - 1, throttled, u)).await;
        }
    }
}
