//! Runs checked flows.
//!
//! A [`Plan`] is a flow compiled for running (templates compiled, tools bound, models chosen,
//! everything unsupported reported at once). [`Plan::start`] gives a [`Run`]; [`Run::execute`]
//! runs it until it finishes or waits for input ([`Status`]); [`Run::submit`] answers; the
//! [`RunState`] is a plain serializable value, so a run can be stored and resumed elsewhere
//! ([`Plan::resume`]).
//!
//! ```
//! use weft_exec::{FlowExt, RunOptions, Status};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let text = r#"{
//!   "component_type": "Flow", "id": "f", "name": "hello", "agentspec_version": "25.4.1",
//!   "start_node": {"$component_ref": "s"},
//!   "nodes": [{"$component_ref": "s"}, {"$component_ref": "e"}],
//!   "control_flow_connections": [{"component_type": "ControlFlowEdge", "id": "c", "name": "c",
//!     "from_node": {"$component_ref": "s"}, "to_node": {"$component_ref": "e"}}],
//!   "data_flow_connections": null,
//!   "$referenced_components": {
//!     "s": {"component_type": "StartNode", "id": "s", "name": "start",
//!           "inputs": [{"title": "who", "type": "string"}]},
//!     "e": {"component_type": "EndNode", "id": "e", "name": "end",
//!           "outputs": [{"title": "who", "type": "string"}]}
//!   }
//! }"#;
//! let flow = weft_flow::Flow::from_json(text).unwrap().flow;
//! let mut inputs = serde_json::Map::new();
//! inputs.insert("who".into(), "world".into());
//! let mut run = flow.start_with(inputs, RunOptions::simulated()).unwrap();
//! let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!() };
//! assert_eq!(outputs["who"], "world");
//! # });
//! ```

pub mod batch;
mod check;
pub mod checkpoint;
mod context;
pub mod datastore;
mod effect;
mod error;
mod event;
mod nodes;
pub mod persist;
mod plan;
mod run;
mod sched;
pub mod state;
mod typed_tool;

pub use context::{CancelHandle, RunSettings};
pub use error::{ErrorData, NodeRef, ResumeError, RunError, RunErrorKind, StartError, SubmitError};
pub use event::{EVENT_SCHEMA, Event, EventRecord, EventSink};
pub use plan::{DEFAULT_MAX_WORKERS, ModelResolver, Plan};
pub use run::{Run, Status};
pub use state::{InputRequest, RunState};
pub use typed_tool::TypedTools;

// A plan is shared by runs on every thread; a run moves between tasks.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    const fn sendable<T: Send>() {}
    shared::<Plan>();
    sendable::<Run>();
};

use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use weft_flow::Flow;
use weft_llm::ChatModel;
pub use weft_llm::limit::{LimitConfig, Limiters};
use weft_llm::simulated::{SimulatedModel, SimulatedOptions};
use weft_tools::ToolRegistry;

/// The default step budget per execution path.
pub const DEFAULT_MAX_STEPS: u64 = 10_000;

/// The default number of re-asks when an answer does not fit the requested outputs.
pub const DEFAULT_MAX_REASKS: u32 = 2;

/// Which model serves the flow's LLM nodes.
#[derive(Clone, Default)]
pub enum Llm {
    /// Each LLM node uses its own LLM config: OpenAI-compatible providers (OpenAI, vLLM,
    /// Ollama, any chat-completions server) over HTTP; other providers fail at start with
    /// "not supported yet". API keys come from the config (secrets resolved at load) or
    /// `OPENAI_API_KEY`.
    #[default]
    Flow,
    /// One model for every LLM node (e.g. the simulated model).
    Model(Arc<dyn ChatModel>),
    /// A model per LLM config.
    Resolver(Arc<ModelResolver>),
}

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Models.
    pub llm: Llm,
    /// Server tools by name (a RemoteTool whose name is bound here is called as this tool).
    pub tools: ToolRegistry,
    /// Sends the requests of ApiNodes and RemoteTools: an [`HttpClient`](weft_llm::http::HttpClient)
    /// with default options (no host restriction, no rewrite, [`RunOptions::limits`]) unless set.
    pub http: Option<Arc<dyn weft_llm::http::HttpSend>>,
    /// Steps allowed per execution path (a loop that never exits stops there).
    pub max_steps: u64,
    /// Re-asks allowed when an answer does not fit the node's outputs.
    pub max_reasks: u32,
    /// Receives the run's events.
    pub events: Option<Arc<dyn EventSink>>,
    /// The provider-wide limiters every LLM call passes through, by model endpoint:
    /// [`Limiters::global`] unless set, so all runs of the process share them.
    pub limits: Limiters,
    /// The longest any one node may take (an LLM or tool call, a subflow, a whole fan-out).
    pub node_timeout: Option<std::time::Duration>,
    /// Set from any thread (a Ctrl-C handler) to cancel the runs of this plan: a jq query being
    /// evaluated stops within milliseconds, the calls in flight are stopped within 20 ms, and
    /// `execute()` returns a [`RunErrorKind::Cancelled`] error that leaves the state resumable.
    /// To cancel one run, use [`Run::cancel_handle`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Secrets to mask in the excerpts of values the engine's error messages quote, before they
    /// are cut (a secret cut in two no longer matches any scrubber).
    pub secrets: Arc<weft_guard::Secrets>,
    /// Where runs hand copies of their state while they execute (see [`checkpoint`]): none by
    /// default.
    pub checkpoints: Option<Arc<checkpoint::Checkpoints>>,
    /// Whether LLM calls are streamed, their text sent to the event sink as `llm_delta` events
    /// as it arrives: off by default.
    pub stream: bool,
    /// Where MCP transports may go and which MCP servers may be started as processes.
    pub mcp: McpOptions,
}

/// What MCP tools and toolboxes may do (AGENTS.md 6): the HTTP transports' URLs go through the
/// same rewrites and host policy as ApiNodes; a `StdioTransport` starts a process, so it runs only
/// when the user allows it.
#[derive(Debug, Clone, Default)]
pub struct McpOptions {
    /// `--http-rewrite` rules, applied to the transports' URLs.
    pub rewrites: weft_llm::http::Rewrites,
    /// `--allow-host`, checked on the rewritten URLs when the run is planned.
    pub egress: weft_guard::EgressPolicy,
    /// `--allow-stdio-mcp`: any `StdioTransport` may start its command.
    pub allow_stdio: bool,
    /// Commands a `StdioTransport` may start (the tools file's `[mcp] allow_commands`).
    pub allowed_commands: Vec<String>,
    /// Makes the listings and calls: a [`weft_tools::mcp::LiveMcp`] unless set (a recorder or a
    /// replayer of `weft_record`).
    pub client: Option<Arc<dyn weft_tools::mcp::McpSend>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            llm: Llm::Flow,
            tools: ToolRegistry::new(),
            http: None,
            max_steps: DEFAULT_MAX_STEPS,
            max_reasks: DEFAULT_MAX_REASKS,
            events: None,
            limits: Limiters::global(),
            node_timeout: None,
            cancel: None,
            secrets: Arc::default(),
            checkpoints: None,
            stream: false,
            mcp: McpOptions::default(),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("tools", &self.tools)
            .field("max_steps", &self.max_steps)
            .field("max_reasks", &self.max_reasks)
            .finish_non_exhaustive()
    }
}

impl RunOptions {
    /// Options with the built-in simulated model (instant, default settings).
    pub fn simulated() -> RunOptions {
        RunOptions { llm: Llm::Model(Arc::new(SimulatedModel::new(SimulatedOptions::default()))), ..RunOptions::default() }
    }

    /// Uses `model` for every LLM node.
    pub fn with_model(mut self, model: Arc<dyn ChatModel>) -> RunOptions {
        self.llm = Llm::Model(model);
        self
    }

    /// Uses `tools` for server tools.
    pub fn with_tools(mut self, tools: ToolRegistry) -> RunOptions {
        self.tools = tools;
        self
    }

    /// Sends the requests of ApiNodes and RemoteTools with `http` (a client with its own host
    /// policy and rewrites, a recording...).
    pub fn with_http(mut self, http: Arc<dyn weft_llm::http::HttpSend>) -> RunOptions {
        self.http = Some(http);
        self
    }

    /// Uses these limiters instead of the process-wide ones.
    pub fn with_limits(mut self, limits: Limiters) -> RunOptions {
        self.limits = limits;
        self
    }

    /// Fails any node that takes longer than `timeout` (for a map or parallel node: the whole
    /// fan-out).
    pub fn with_node_timeout(mut self, timeout: std::time::Duration) -> RunOptions {
        self.node_timeout = Some(timeout);
        self
    }

    /// Cancels the runs when `flag` is set (see [`RunOptions::cancel`]).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> RunOptions {
        self.cancel = Some(flag);
        self
    }

    /// Masks `secrets` in the excerpts error messages quote (see [`RunOptions::secrets`]).
    pub fn with_secrets(mut self, secrets: Arc<weft_guard::Secrets>) -> RunOptions {
        self.secrets = secrets;
        self
    }

    /// Hands copies of the runs' states to `checkpoints` while they execute.
    pub fn with_checkpoints(mut self, checkpoints: Arc<checkpoint::Checkpoints>) -> RunOptions {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Sends events to `sink`.
    pub fn with_events(mut self, sink: Arc<dyn EventSink>) -> RunOptions {
        self.events = Some(sink);
        self
    }

    /// Sets what MCP transports may do (rewrites, hosts, stdio servers).
    pub fn with_mcp(mut self, mcp: McpOptions) -> RunOptions {
        self.mcp = mcp;
        self
    }

    /// Streams LLM calls: their text goes to the event sink as `llm_delta` events as it
    /// arrives.
    pub fn with_streaming(mut self) -> RunOptions {
        self.stream = true;
        self
    }
}

impl Plan {
    /// Compiles a flow for running with these options. Fails, listing every problem, when the
    /// flow uses something weft cannot run yet, names a server tool with no implementation, or
    /// has an LLM config no model serves.
    pub fn new(flow: &Flow, options: RunOptions) -> Result<Arc<Plan>, StartError> {
        let resolver: Arc<ModelResolver> = match options.llm {
            Llm::Flow => {
                let resolver =
                    weft_llm::providers::openai::Resolver::new(Default::default(), Vec::new()).with_limiters(options.limits.clone());
                Arc::new(resolver.into_fn())
            }
            Llm::Model(model) => Arc::new(move |_: &weft_spec::LlmConfig| Ok(Arc::clone(&model))),
            Llm::Resolver(r) => r,
        };
        let defaults = RunSettings {
            events: options.events,
            max_steps: options.max_steps,
            max_reasks: options.max_reasks,
            node_timeout: options.node_timeout,
            cancel: options.cancel,
            index: None,
            checkpoints: options.checkpoints,
            stream: options.stream,
        };
        let http: Arc<dyn weft_llm::http::HttpSend> = match options.http {
            Some(http) => http,
            None => Arc::new(DefaultHttp {
                options: weft_llm::http::HttpOptions {
                    limiters: options.limits.clone(),
                    secrets: Arc::clone(&options.secrets),
                    ..weft_llm::http::HttpOptions::default()
                },
                client: std::sync::OnceLock::new(),
            }),
        };
        let mut mcp = options.mcp;
        // One live client per plan (its jitter shared), unless a recorder or replayer is given.
        mcp.client = Some(mcp.client.unwrap_or_else(|| Arc::new(weft_tools::mcp::LiveMcp::new())));
        let inputs = plan::PlanInputs {
            models: &*resolver,
            limits: &options.limits,
            tools: &options.tools,
            http,
            defaults,
            secrets: options.secrets,
            mcp,
        };
        Plan::compile(flow, inputs).map(Arc::new)
    }
}

/// The HTTP client of a plan given none: built on its first request, so a plan without ApiNodes
/// and RemoteTools builds none.
struct DefaultHttp {
    options: weft_llm::http::HttpOptions,
    client: std::sync::OnceLock<Result<weft_llm::http::HttpClient, String>>,
}

#[async_trait::async_trait]
impl weft_llm::http::HttpSend for DefaultHttp {
    fn name(&self) -> &str {
        "http"
    }

    async fn send(&self, request: &weft_llm::http::HttpRequest) -> Result<weft_llm::http::HttpResponse, weft_llm::http::HttpError> {
        match self.client.get_or_init(|| weft_llm::http::HttpClient::new(self.options.clone())) {
            Ok(client) => client.send(request).await,
            Err(problem) => Err(weft_llm::http::HttpError {
                kind: weft_llm::http::HttpErrorKind::Invalid,
                message: problem.clone(),
                attempts: 0,
                rewritten: None,
            }),
        }
    }
}

/// Running straight from a [`Flow`].
pub trait FlowExt {
    /// Starts a run with default options ([`Llm::Flow`], no tools).
    fn start(&self, inputs: Map<String, Json>) -> Result<Run, StartError>;
    /// Starts a run with these options.
    fn start_with(&self, inputs: Map<String, Json>, options: RunOptions) -> Result<Run, StartError>;
}

impl FlowExt for Flow {
    fn start(&self, inputs: Map<String, Json>) -> Result<Run, StartError> {
        self.start_with(inputs, RunOptions::default())
    }

    fn start_with(&self, inputs: Map<String, Json>, options: RunOptions) -> Result<Run, StartError> {
        Plan::new(self, options)?.start(inputs)
    }
}
