//! The effects a run asks the outside world for, as one closed protocol.
//!
//! The scheduler never does IO: when a node needs the outside world it emits
//! [`Command::Perform`](crate::sched::Command) with an [`Effect`] and a call id; the driver
//! performs it with [`perform`] (through `work`, an exhaustive match, one executor per kind) and hands the
//! [`EffectResult`] back under the same id. A new kind of IO (an HTTP request, an MCP call, an
//! agent turn) is one variant in each enum and one executor here; the compiler then lists the
//! node families that must handle its result.

use crate::context::RunContext;
use crate::event::Event;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_llm::http::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpSend};
use weft_llm::limit::Limiter;
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind};
use weft_tools::{Tool, ToolError};

/// Something a node needs done outside the engine: an LLM call, tool calls (a RemoteTool's is an
/// HTTP request, [`ToolTarget::Remote`]), an ApiNode's HTTP request, a remote agent's exchange.
pub(crate) enum Effect {
    /// A chat call to a model.
    Llm(Box<LlmCall>),
    /// A call of a server tool.
    Tool(ToolCall),
    /// Calls of server tools run at once (at most [`TOOLS_AT_ONCE`]), their results in order.
    Tools(Vec<ToolCall>),
    /// An HTTP request (an ApiNode's).
    Http(Box<HttpCall>),
    /// A remote agent's exchange: `message/send` requests, or `tasks/get` polling.
    A2A(Box<crate::nodes::a2a::A2ACall>),
}

/// How many tool calls of one [`Effect::Tools`] run at once.
pub(crate) const TOOLS_AT_ONCE: usize = 8;

/// What came back.
pub(crate) enum EffectResult {
    Llm(Result<ChatResponse, LlmError>),
    /// An agent's LLM call after its MCP toolboxes were listed: the listing, or why it failed
    /// (then no call was made).
    Listed {
        result: Result<ChatResponse, LlmError>,
        listed: Result<Vec<crate::state::ListedTool>, String>,
    },
    Tool(Result<Json, ToolError>),
    /// Each call's result and how long it took (ms), in the calls' order.
    Tools(Vec<(Result<Json, ToolError>, f64)>),
    /// The last answer, whatever its status, or why none came.
    Http(Result<HttpResponse, HttpError>),
    /// The JSON-RPC results, one per request or task, or why the exchange failed.
    A2A(Result<Vec<Json>, crate::nodes::a2a::A2AFailure>),
}

/// Which kind of effect a call is, kept by the driver while it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EffectKind {
    Llm,
    Tool,
    Tools,
    Http,
    A2A,
}

impl Effect {
    pub(crate) fn kind(&self) -> EffectKind {
        match self {
            Effect::Llm(_) => EffectKind::Llm,
            Effect::Tool(_) => EffectKind::Tool,
            Effect::Tools(_) => EffectKind::Tools,
            Effect::Http(_) => EffectKind::Http,
            Effect::A2A(_) => EffectKind::A2A,
        }
    }
}

impl EffectKind {
    /// The failure of an executor that panicked (a native tool, a model): its node fails, the
    /// run's task does not.
    pub(crate) fn panicked(self, why: &str) -> EffectResult {
        match self {
            EffectKind::Llm => EffectResult::Llm(Err(LlmError::new(LlmErrorKind::Other, format!("the model panicked: {why}")))),
            EffectKind::Tool => EffectResult::Tool(Err(ToolError::Failed { message: format!("the tool panicked: {why}") })),
            // No result at all: the node gives each call this failure.
            EffectKind::Tools => EffectResult::Tools(Vec::new()),
            EffectKind::Http => EffectResult::Http(Err(HttpError {
                kind: HttpErrorKind::Transport,
                message: format!("the HTTP client panicked: {why}"),
                attempts: 0,
                rewritten: None,
            })),
            EffectKind::A2A => EffectResult::A2A(Err(crate::nodes::a2a::A2AFailure {
                message: format!("the A2A client panicked: {why}"),
                class: "RuntimeError",
            })),
        }
    }
}

impl Done {
    /// The outcome of an executor that panicked.
    pub(crate) fn panicked(kind: EffectKind, why: &str) -> Done {
        Done { result: kind.panicked(why), took_ms: 0.0 }
    }
}

/// A chat call: the model and its endpoint's limiter (bound at plan time) and the request.
pub(crate) struct LlmCall {
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) request: ChatRequest,
    /// The node's name, for the held-back event.
    pub(crate) node: String,
    /// An agent's MCP toolboxes, listed before the call and their tools put into the request.
    pub(crate) listing: Option<Listing>,
}

/// Toolboxes to list before an LLM call, and how their tools join the request.
pub(crate) struct Listing {
    pub(crate) boxes: Arc<crate::nodes::mcp::ToolBoxes>,
    pub(crate) splice: Splice,
}

/// Puts the listed tools into an LLM call's request.
pub(crate) type Splice = Box<dyn FnOnce(&mut ChatRequest, &[weft_llm::ToolSpec]) + Send + Sync>;

/// A server tool call.
pub(crate) struct ToolCall {
    pub(crate) tool: ToolTarget,
    pub(crate) args: Map<String, Json>,
}

/// What runs a tool call.
#[derive(Clone)]
pub(crate) enum ToolTarget {
    /// An implementation bound by name (a native or command tool, a recording).
    Bound(Arc<dyn Tool>),
    /// A RemoteTool's HTTP request.
    Remote(Arc<crate::nodes::http::RemoteTool>),
    /// A call of an MCP server's tool, in the run's session with the server.
    Mcp(Arc<crate::nodes::mcp::McpCall>),
}

impl ToolTarget {
    /// Calls the tool; a remote tool's request reports its event at `path` of `run`.
    async fn call(&self, args: Map<String, Json>, run: &Arc<RunContext>, path: &str) -> Result<Json, ToolError> {
        match self {
            ToolTarget::Bound(tool) => tool.call(args).await,
            // Boxed: their futures are large (an HTTP exchange, an MCP session's request), and
            // inline they would size every call's task, LLM calls included.
            ToolTarget::Remote(remote) => Box::pin(remote.call(args, run, path)).await,
            ToolTarget::Mcp(mcp) => Box::pin(mcp.call(args, run, path)).await,
        }
    }
}

/// An ApiNode's HTTP request: the client (bound at plan time) and the rendered request.
pub(crate) struct HttpCall {
    pub(crate) client: Arc<dyn HttpSend>,
    pub(crate) request: HttpRequest,
}

/// Where an effect runs: the run's context (events) and the frame it belongs to.
pub(crate) struct Site {
    pub(crate) run: Arc<RunContext>,
    /// The frame's path, for events.
    pub(crate) path: String,
    /// The token of the frame (or of its nearest ancestor) that can be cancelled on its own: a
    /// cancelled effect returns `None` at once. `None` when only the run's cancellation applies:
    /// the driver then aborts the task.
    pub(crate) cancel: Option<CancellationToken>,
}

/// What an effect gave, and how long its own work took in milliseconds (an LLM call's wait for
/// its limiter not included): the scheduler reports both in its events.
pub(crate) struct Done {
    pub(crate) result: EffectResult,
    pub(crate) took_ms: f64,
}

/// Performs `effect`; `None` when the site's token was cancelled first (its future dropped: an
/// HTTP request abandoned, a tool process killed). Without a token it runs until the driver
/// aborts its task. Its events, apart from an LLM call held back by
/// its limiter, are the scheduler's, emitted on the driver's task when the result comes back,
/// so call tasks seldom touch the run's event stream.
pub(crate) async fn perform(effect: Effect, site: Site) -> Option<Done> {
    match &site.cancel {
        None => Some(work(effect, &site).await),
        Some(cancel) => tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            done = work(effect, &site) => Some(done),
        },
    }
}

/// The effect's executor: the one exhaustive match from an effect to its IO. What the call needs
/// stays where the effect holds it (an LLM call's request in its box) rather than moved into the
/// future: the task's future is allocated per call, and every copy inside it is memory per call
/// in flight. For the same reason every executor but the plain LLM call's is boxed: an async
/// fn's future is as large as its largest arm, and the driver moves it into the heap whole, so
/// one large executor inline (an MCP session's request is kilobytes) would cost every LLM call
/// a copy of that size (`the_task_of_a_call_stays_small` keeps it in check).
async fn work(effect: Effect, site: &Site) -> Done {
    match effect {
        Effect::Llm(mut call) => {
            // Which run of a batch asks: a recording is matched by run on replay.
            call.request.meta.batch_index = site.run.index.and_then(|i| u64::try_from(i).ok());
            if let Some(listing) = call.listing.take() {
                let t = Instant::now();
                let listed = Box::pin(listing.boxes.list(&site.run, &site.path)).await;
                let result = match &listed {
                    Ok(tools) => {
                        let specs: Vec<weft_llm::ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
                        (listing.splice)(&mut call.request, &specs);
                        llm(&call, site).await.0
                    }
                    Err(why) => Err(LlmError::new(LlmErrorKind::Other, why.clone())),
                };
                let took_ms = t.elapsed().as_secs_f64() * 1000.0;
                return Done { result: EffectResult::Listed { result, listed }, took_ms };
            }
            let (result, took_ms) = llm(&call, site).await;
            Done { result: EffectResult::Llm(result), took_ms }
        }
        Effect::Tool(call) => {
            let t = Instant::now();
            let result = Box::pin(call.tool.call(call.args, &site.run, &site.path)).await;
            Done { result: EffectResult::Tool(result), took_ms: t.elapsed().as_secs_f64() * 1000.0 }
        }
        Effect::Tools(calls) => {
            let t = Instant::now();
            let results = Box::pin(tools(calls, site)).await;
            Done { result: EffectResult::Tools(results), took_ms: t.elapsed().as_secs_f64() * 1000.0 }
        }
        Effect::Http(mut call) => {
            // Which run of a batch asks: a recording is matched by run on replay.
            call.request.meta.batch_index = site.run.index.and_then(|i| u64::try_from(i).ok());
            let t = Instant::now();
            // Already boxed (a trait object's future).
            let result = call.client.send(&call.request).await;
            let took_ms = t.elapsed().as_secs_f64() * 1000.0;
            crate::nodes::http::report(&site.run, &site.path, &call.request, &result, took_ms);
            Done { result: EffectResult::Http(result), took_ms }
        }
        Effect::A2A(call) => {
            let t = Instant::now();
            let result = Box::pin(crate::nodes::a2a::exchange(&call, site)).await;
            Done { result: EffectResult::A2A(result), took_ms: t.elapsed().as_secs_f64() * 1000.0 }
        }
    }
}

/// Runs tool calls at once, at most [`TOOLS_AT_ONCE`] at a time, each in a task of its own (a
/// panicking tool fails its call only); the results in the calls' order. Dropping the future
/// aborts the calls still running.
async fn tools(calls: Vec<ToolCall>, site: &Site) -> Vec<(Result<Json, ToolError>, f64)> {
    let total = calls.len();
    let mut results: Vec<Option<(Result<Json, ToolError>, f64)>> = (0..total).map(|_| None).collect();
    let mut pending = calls.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut index_of = std::collections::HashMap::new();
    loop {
        while running.len() < TOOLS_AT_ONCE {
            let Some((i, call)) = pending.next() else { break };
            let (run, path) = (Arc::clone(&site.run), site.path.clone());
            let task = running.spawn(async move {
                let t = Instant::now();
                let result = call.tool.call(call.args, &run, &path).await;
                (result, t.elapsed().as_secs_f64() * 1000.0)
            });
            index_of.insert(task.id(), i);
        }
        let Some(joined) = running.join_next_with_id().await else { break };
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => {
                let why = if e.is_panic() { "the tool panicked" } else { "the tool's task was cancelled" };
                (e.id(), (Err(ToolError::Failed { message: why.to_owned() }), 0.0))
            }
        };
        if let Some(i) = index_of.remove(&id) {
            results[i] = Some(outcome);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| (Err(ToolError::Failed { message: "the tool gave no result".to_owned() }), 0.0)))
        .collect()
}

/// The model call: a permit of the endpoint's limiter around the whole call (retries
/// included); how long the call took once it had its permit.
async fn llm(call: &LlmCall, site: &Site) -> (Result<ChatResponse, LlmError>, f64) {
    let permit = call
        .limiter
        .acquire_with(|stats| {
            if site.run.listening() {
                let event = Event::LlmHeldBack {
                    node: call.node.clone(),
                    endpoint: stats.endpoint.clone(),
                    in_flight: stats.in_flight,
                    cap: stats.cap,
                    waiting: stats.waiting + 1,
                };
                site.run.emit(&site.path, &event);
            }
        })
        .await;
    let t = Instant::now();
    let result = if site.run.streams() {
        let mut on_delta = |text: &str| site.run.emit(&site.path, &Event::LlmDelta { node: call.node.clone(), text: text.to_owned() });
        call.model.chat_streaming(&call.request, &mut on_delta).await
    } else {
        call.model.chat(&call.request).await
    };
    drop(permit);
    (result, t.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_of_future<F: std::future::Future>(_: &F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every call's task holds `perform`'s future, moved whole into the heap when the call is
    /// spawned: a large executor inlined in it (as an MCP request once was, tens of kilobytes)
    /// costs every LLM call that copy. Executors beyond the LLM call's are boxed to keep it small.
    #[test]
    fn the_task_of_a_call_stays_small() {
        let model: Arc<dyn ChatModel> = Arc::new(weft_llm::simulated::SimulatedModel::new(Default::default()));
        let call = LlmCall {
            model,
            limiter: weft_llm::limit::Limiter::new("test", Default::default()),
            request: ChatRequest::default(),
            node: "n".to_owned(),
            listing: None,
        };
        let site = Site { run: Arc::new(RunContext::new("r".to_owned(), None, None, 0)), path: String::new(), cancel: None };
        let future = perform(Effect::Llm(Box::new(call)), site);
        let size = size_of_future(&future);
        assert!(size <= 2048, "perform's future is {size} bytes: box the executor that grew it");
    }
}
