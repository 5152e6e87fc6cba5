//! Tools a flow can call: the [`Tool`] trait, the [`ToolRegistry`] that binds ServerTool names
//! to implementations, native Rust tools ([`native`](mod@native)) and command tools bound by a tools file
//! ([`command`], [`file`](mod@file)).
//!
//! A tool takes its arguments as a JSON object keyed by input title and returns one JSON
//! value: for a tool with one output, that output's value; for several, an object keyed by
//! output title. Mapping the value onto outputs is the engine's job.

pub mod command;
pub mod file;
pub mod mcp;
pub mod native;

pub use command::CommandTool;
pub use file::{ToolBinding, ToolsFile, ToolsFileError};
pub use native::{NativeTool, native};

use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a tool call failed. The message says what happened and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    /// The tool reported a failure of its own (a native tool's error).
    #[error("{message}")]
    Failed {
        /// What happened.
        message: String,
    },
    /// A command exited unsuccessfully.
    #[error("{message}")]
    Exited {
        /// What happened: the command, its exit status, the end of its stderr.
        message: String,
        /// What the tool itself said: its stderr, trimmed and with secrets masked, or its exit
        /// status (`exited with status 3`) when it wrote nothing there.
        said: String,
    },
    /// The call took longer than its timeout; a command was killed.
    #[error("timed out after {}s; the process was killed (raise `timeout_s` in the tools file if the tool needs longer)", .after.as_secs_f64())]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// A command printed more than its cap on stdout; its processes were killed.
    #[error("printed more than {} on stdout, the cap of a tool's output; its processes were killed (raise `max_output_mb` for this tool in the tools file if its output is really that large)", command::describe_bytes(*.limit))]
    OutputTooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The tool answered something that is not the JSON expected.
    #[error("{message}")]
    BadOutput {
        /// What was wrong, with an excerpt of the output.
        message: String,
    },
    /// The tool could not be started at all.
    #[error("{message}")]
    Unavailable {
        /// What was wrong and how to fix it.
        message: String,
    },
}

impl ToolError {
    /// The failure as the tool itself says it, for a model to read (an agent's tool result):
    /// a command's trimmed stderr, or its exit status when stderr is empty; the message of any
    /// other failure.
    pub fn said(&self) -> String {
        match self {
            ToolError::Exited { said, .. } => said.clone(),
            other => other.to_string(),
        }
    }
}

/// A tool implementation.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Calls the tool. Dropping the future cancels the call (a command's process is killed).
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError>;
}

/// Tools by ServerTool name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry").field("tools", &self.tools.keys().collect::<Vec<_>>()).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// Binds `name` to a tool, replacing any earlier binding.
    pub fn register(&mut self, name: impl Into<String>, tool: impl Tool + 'static) -> &mut Self {
        self.tools.insert(name.into(), Arc::new(tool));
        self
    }

    /// Binds `name` to a native async function taking its arguments as `A`; see [`native()`].
    pub fn register_fn<A, R, E, F, Fut>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
        R: serde::Serialize + 'static,
        E: std::fmt::Display + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<R, E>> + Send + 'static,
    {
        self.register(name, native::native(f))
    }

    /// Binds `name` to a shared tool.
    pub fn register_arc(&mut self, name: impl Into<String>, tool: Arc<dyn Tool>) -> &mut Self {
        self.tools.insert(name.into(), tool);
        self
    }

    /// The tool bound to `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Whether `name` is bound.
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// The bound names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }
}
