//! What a run leaves behind of its LLM and tool calls, where both models and tools are visible:
//!
//! - [`format`](mod@format): the record file's own types, one per kind of line and per part of an exchange,
//!   with their conversions from and to `weft_llm`'s and `weft_tools`' types;
//! - [`log`]: the record file (`--record run.jsonl`): format, keys, secret redaction, the shared
//!   [`log::RecordLog`];
//! - [`llm`]: [`llm::Recorder`] records a model's exchanges, [`llm::Replayer`] serves them back;
//! - [`tools`]: [`tools::RecordingTool`] records a tool's exchanges, [`tools::ToolReplay`] serves
//!   them back;
//! - [`http`]: [`http::HttpRecorder`] records the requests of ApiNodes and RemoteTools,
//!   [`http::HttpReplayer`] serves them back;
//! - [`mcp`]: [`mcp::McpRecorder`] records the listings and calls of MCP tools and toolboxes,
//!   [`mcp::McpReplayer`] serves them back with no server;
//! - [`replay`]: what the replays of LLM calls, HTTP and MCP requests share: the lines of a
//!   kind indexed by run, node path, key and occurrence ([`replay::Replay`]), and what a
//!   lookup reports when one is missing;
//! - [`usage`]: price files (`--prices`) and usage accounting (tokens, calls, retries, cost).

pub mod format;
pub mod http;
pub mod llm;
pub mod log;
pub mod mcp;
pub mod replay;
pub mod tools;
pub mod usage;

pub use http::{HttpRecorder, HttpReplayer};
pub use llm::{Recorder, Replayer};
pub use log::{RecordLog, ReplayError};
pub use mcp::{McpRecorder, McpReplayer};
pub use tools::{RecordingTool, ReplayTool, ToolReplay, recording_registry};
pub use usage::{Metered, MeteredHttp, MeteredMcp, Prices, UsageMeter};
