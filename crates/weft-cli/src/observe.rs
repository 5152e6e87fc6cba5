//! What `run`, `resume` and batches see of their LLM and tool calls: usage and cost
//! (`--prices`, `--usage-json`, a summary line on stderr), and record and replay
//! (`--record`, `--replay`).

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints")]

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use weft_exec::Llm;
use weft_llm::ChatModel;
use weft_llm::http::HttpSend;
use weft_llm::providers::openai::ProviderOverride;
use weft_llm::retry::{Sleeper, TokioSleeper};
use weft_record::{
    HttpRecorder, HttpReplayer, McpRecorder, McpReplayer, Metered, MeteredHttp, MeteredMcp, Prices, RecordLog, Recorder, Replayer,
    ToolReplay, UsageMeter, recording_registry,
};
use weft_spec::LlmConfig;
use weft_tools::ToolRegistry;
use weft_tools::mcp::{LiveMcp, McpSend};

/// Recording, replaying and usage options.
#[derive(Args, Debug, Default)]
pub struct ObserveArgs {
    /// Write every LLM, tool and HTTP exchange to this JSON-lines file (secrets redacted;
    /// sensitive headers never), to replay the run later with `--replay`.
    #[arg(long, value_name = "FILE.jsonl")]
    record: Option<PathBuf>,
    /// Answer LLM calls, tool calls and HTTP requests from a recording: no network, no tool
    /// processes. A call the recording does not have fails, naming it.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with = "record")]
    replay: Option<PathBuf>,
    /// Prices per million tokens by model id (TOML: `[models."gpt-4o-mini"] input = 0.15
    /// output = 0.60 cached_input = 0.075`), to show what the run cost.
    #[arg(long, value_name = "prices.toml")]
    prices: Option<PathBuf>,
    /// Write the usage (per model, per node, totals, cost) as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    usage_json: Option<PathBuf>,
}

/// The replayers of a recording: LLM calls, tools, HTTP requests, MCP requests.
type Replay = (Arc<Replayer>, Arc<ToolReplay>, Arc<HttpReplayer>, Arc<McpReplayer>);

/// The wrappers and counters of one command.
pub struct Observer {
    meter: Arc<UsageMeter>,
    prices: Prices,
    log: Option<Arc<RecordLog>>,
    replay: Option<Replay>,
    usage_json: Option<PathBuf>,
    t0: Instant,
}

impl Observer {
    /// Opens the files the options name; `secrets` (the process's scrubber) are redacted from
    /// recordings.
    pub fn new(args: &ObserveArgs, secrets: &weft_guard::Secrets) -> anyhow::Result<Observer> {
        let prices = match &args.prices {
            Some(path) => Prices::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
            None => Prices::new(),
        };
        let log = match &args.record {
            Some(path) => Some(
                RecordLog::create_with_scrubber(path, secrets)
                    .with_context(|| format!("cannot create the recording {}", path.display()))?,
            ),
            None => None,
        };
        let replay = match &args.replay {
            Some(path) => {
                let llm = Replayer::load(path).map_err(|e| anyhow::anyhow!("{e}"))?.with_scrubber(secrets);
                let tools = ToolReplay::load(path).map_err(|e| anyhow::anyhow!("{e}"))?.with_scrubber(secrets);
                let http = HttpReplayer::load(path).map_err(|e| anyhow::anyhow!("{e}"))?.with_scrubber(secrets);
                let mcp = McpReplayer::load(path).map_err(|e| anyhow::anyhow!("{e}"))?.with_scrubber(secrets);
                Some((Arc::new(llm), Arc::new(tools), Arc::new(http), Arc::new(mcp)))
            }
            None => None,
        };
        if let Some(path) = &args.usage_json {
            crate::paths::check_writable(path, "usage file (--usage-json)")?;
        }
        Ok(Observer { meter: Arc::new(UsageMeter::new()), prices, log, replay, usage_json: args.usage_json.clone(), t0: Instant::now() })
    }

    /// The sleeper HTTP clients wait with before a retry (counted as a retry).
    pub fn sleeper(&self) -> Arc<dyn Sleeper> {
        self.meter.retry_sleeper(Arc::new(TokioSleeper))
    }

    fn wrap(&self, model: Arc<dyn ChatModel>, model_id: &str) -> Arc<dyn ChatModel> {
        let metered: Arc<dyn ChatModel> = Arc::new(Metered::new(model, Arc::clone(&self.meter), model_id));
        match &self.log {
            Some(log) => Arc::new(Recorder::new(metered, Arc::clone(log))),
            None => metered,
        }
    }

    /// The models, metered, recorded or replaced by the recording. `overrides` are the `--llm`
    /// provider overrides (they decide which model id a config is priced by).
    pub fn llm(self: &Arc<Self>, llm: Llm, overrides: &[ProviderOverride]) -> Llm {
        if let Some((replayer, _, _, _)) = &self.replay {
            let replayer: Arc<dyn ChatModel> = replayer.clone();
            return Llm::Model(Arc::new(Metered::new(replayer, Arc::clone(&self.meter), "replay")));
        }
        match llm {
            Llm::Model(model) => {
                let id = model.name().to_owned();
                Llm::Model(self.wrap(model, &id))
            }
            Llm::Resolver(resolve) => {
                let this = Arc::clone(self);
                let overrides = overrides.to_vec();
                Llm::Resolver(Arc::new(move |config: &LlmConfig| {
                    let model = resolve(config)?;
                    Ok(this.wrap(model, &model_id(config, &overrides)))
                }))
            }
            other => other,
        }
    }

    /// The tools, recorded or replaced by the recording.
    pub fn tools(&self, tools: ToolRegistry) -> ToolRegistry {
        match (&self.replay, &self.log) {
            (Some((_, replay, _, _)), _) => replay.registry(&tools),
            (None, Some(log)) => recording_registry(&tools, log),
            (None, None) => tools,
        }
    }

    /// The client of ApiNodes and RemoteTools, recorded or replaced by the recording.
    pub fn http(&self, client: Arc<dyn HttpSend>) -> Arc<dyn HttpSend> {
        let client: Arc<dyn HttpSend> = match (&self.replay, &self.log) {
            (Some((_, _, replay, _)), _) => Arc::clone(replay) as Arc<dyn HttpSend>,
            (None, Some(log)) => Arc::new(HttpRecorder::new(client, Arc::clone(log))),
            (None, None) => client,
        };
        Arc::new(MeteredHttp::new(client, Arc::clone(&self.meter)))
    }

    /// The client of MCP tools and toolboxes: live, recorded or replaced by the recording (no
    /// server needed), counted in the usage line.
    pub fn mcp(&self) -> Arc<dyn McpSend> {
        let client: Arc<dyn McpSend> = match (&self.replay, &self.log) {
            (Some((_, _, _, replay)), _) => Arc::clone(replay) as Arc<dyn McpSend>,
            (None, Some(log)) => Arc::new(McpRecorder::new(Arc::new(LiveMcp::new()), Arc::clone(log))),
            (None, None) => Arc::new(LiveMcp::new()),
        };
        Arc::new(MeteredMcp::new(client, Arc::clone(&self.meter)))
    }

    /// Prints the usage line (when any LLM call or HTTP request was made), writes `--usage-json`, and closes
    /// the recording, reporting what could not be written.
    pub fn finish(&self) {
        let wall = self.t0.elapsed();
        if self.meter.total().calls > 0 || self.meter.http().0 > 0 || self.meter.mcp().0 > 0 {
            crate::report::line(&format!("usage: {}", self.meter.summary_line(&self.prices, wall)));
        }
        if let Some(path) = &self.usage_json {
            let mut usage = self.meter.to_json(&self.prices, wall);
            crate::scrub::json(&mut usage);
            let text = serde_json::to_string_pretty(&usage).unwrap_or_default();
            if let Err(e) = std::fs::write(path, text + "\n") {
                eprintln!("warning: cannot write the usage file {}: {e}", path.display());
            }
        }
        if let Some(log) = &self.log
            && let Err(e) = log.finish()
        {
            eprintln!("warning: the recording {} is incomplete: {e}", log.path().display());
        }
    }
}

/// The model id a config's calls are priced by: the override's model when one applies, else
/// the config's `model_id`.
fn model_id(config: &LlmConfig, overrides: &[ProviderOverride]) -> String {
    let applies = |o: &&ProviderOverride| o.config_id.as_deref().is_none_or(|id| id == config.id);
    let specific = overrides.iter().filter(|o| o.config_id.is_some()).find(applies);
    match specific.or_else(|| overrides.iter().find(applies)) {
        Some(o) => o.model.clone(),
        None => config.model_id.clone().unwrap_or_else(|| config.name.clone()),
    }
}
