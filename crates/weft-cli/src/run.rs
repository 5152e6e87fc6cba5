//! `weft run` and `weft resume`: run a flow to its end, answering input requests from
//! `--answer`, from the terminal, or by storing the run and exiting 3.

#![allow(clippy::print_stderr, clippy::print_stdout, reason = "the CLI is the one crate that prints")]

use crate::checkpoint::{CheckpointArgs, RunCheckpoints, Writer};
use crate::llm_choice::LlmChoice;
use crate::lock::StateLock;
use crate::observe::{ObserveArgs, Observer};
use crate::progress::Sink;
use crate::state_file::{self, ResumeOptions, StateFile};
use crate::{LoadArgs, Outcome, report};
use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value as Json};
use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_exec::checkpoint::Checkpoints;
use weft_exec::state::ClientToolCall;
use weft_exec::{
    DEFAULT_MAX_REASKS, DEFAULT_MAX_STEPS, EventSink, InputRequest, LimitConfig, Limiters, Llm, Plan, Run, RunOptions, RunState, Status,
};
use weft_llm::http::{HttpClient, HttpOptions, HttpSend, Rewrites};
use weft_llm::simulated::SimulatedModel;
use weft_spec::text::{TypeWords, type_name};
use weft_tools::ToolRegistry;
use weft_tools::file::ToolsFile;

/// `weft run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The flow file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// An input of the flow; repeatable. VALUE is raw text for an input declared as a string,
    /// else JSON when it parses as JSON (`3`, `true`, `[1,2]`), else text.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    input: Vec<String>,
    /// The first user message of the conversation, posted before the flow or agent runs (an
    /// agent without one speaks first, as WayFlow's do); with `--batch`, of every line's run.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// A JSON object of inputs; `--input` values override its entries.
    #[arg(long = "inputs", value_name = "FILE.json")]
    inputs: Option<PathBuf>,
    /// Which model answers LLM nodes: `flow` (the flow's own LLM configs), or
    /// `simulated[?latency_ms=N&array_len=N&script=FILE]` (offline, built in).
    #[arg(long, value_name = "LLM", default_value = "flow")]
    llm: String,
    /// A tools file binding ServerTool names to commands.
    #[arg(long, value_name = "tools.toml")]
    tools: Option<PathBuf>,
    /// Steps allowed per execution path (stops loops that never exit); at least 1.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STEPS, value_parser = crate::flags::max_steps)]
    max_steps: u64,
    /// Run the flow once per line of this file (each line a JSON object of inputs; `--input`
    /// and `--inputs` give defaults for every line). Writes one JSON line per input to stdout,
    /// in input order: `{"index": i, "outputs": {...}}` or `{"index": i, "error": "..."}`.
    #[arg(long, value_name = "INPUTS.jsonl")]
    batch: Option<PathBuf>,
    /// Runs at once with `--batch`; at least 1.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "batch", value_parser = crate::flags::concurrency)]
    concurrency: usize,
    /// Send requests (LLM calls) only to hosts matching PATTERN: a host (`api.example.com`,
    /// `10.0.0.7`, `[::1]`) or `*.example.com`, with an optional `:PORT`; repeatable. Any other
    /// host is refused before a byte is sent [default: no restriction].
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_host: Vec<String>,
    /// Send the requests of ApiNodes and RemoteTools whose URL starts with PREFIX to URL
    /// instead (followed by the rest of the URL; the longest matching PREFIX wins), to run
    /// documents naming public hosts against local servers; repeatable, split at the first `=`.
    /// The document's url_allow_list applies to the URL as written, --allow-host to the
    /// rewritten one. The tools file's [http.rewrite] table adds more.
    #[arg(long = "http-rewrite", value_name = "PREFIX=URL")]
    http_rewrite: Vec<String>,
    /// Let the document's StdioTransports start their commands as MCP servers (each with only
    /// PATH, HOME and its own env; its process group killed with the run). Never stored: give it
    /// again on resume. The tools file's `[mcp] allow_commands` allows single commands.
    #[arg(long = "allow-stdio-mcp")]
    allow_stdio_mcp: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    load: LoadArgs,
}

/// `weft resume`.
#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The state file `weft run` wrote.
    #[arg(value_name = "STATE")]
    pub(crate) state_file: PathBuf,
    #[command(flatten)]
    pub(crate) session: SessionArgs,
    /// A sensitive value, as `<component id>.<field>=<value>`; repeatable (secrets are never
    /// stored in state files). `WEFT_SECRET_<ID>_<FIELD>` works too.
    #[arg(long = "secret", value_name = "ID.FIELD=VALUE")]
    pub(crate) secrets: Vec<String>,
    /// The tools file, instead of the one the state names.
    #[arg(long, value_name = "tools.toml")]
    tools: Option<PathBuf>,
    /// The models, instead of the `--llm` the state names (needed again when its URL had
    /// credentials, which are never stored).
    #[arg(long, value_name = "LLM")]
    llm: Option<String>,
    /// Runs at once, for a batch's state [default: the batch's `--concurrency`]; at least 1.
    #[arg(long, value_name = "N", value_parser = crate::flags::concurrency)]
    pub(crate) concurrency: Option<usize>,
    /// Hosts requests may go to, instead of the state's `--allow-host` list; repeatable.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_host: Vec<String>,
    /// HTTP rewrites (PREFIX=URL), instead of the state's `--http-rewrite` list; repeatable.
    #[arg(long = "http-rewrite", value_name = "PREFIX=URL")]
    http_rewrite: Vec<String>,
    /// Let the document's StdioTransports start their commands as MCP servers (each with only
    /// PATH, HOME and its own env; its process group killed with the run). Never stored: give it
    /// again on resume. The tools file's `[mcp] allow_commands` allows single commands.
    #[arg(long = "allow-stdio-mcp")]
    allow_stdio_mcp: bool,
}

/// Limits on LLM calls and node durations (stored with a waiting run).
#[derive(Args, Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LimitArgs {
    /// LLM calls in flight at most per model endpoint, shared by every run of the process
    /// [default: 2048; lowered on HTTP 429 and raised back on success]; at least 1.
    #[arg(long, value_name = "N", value_parser = crate::flags::max_in_flight)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// LLM requests started per second at most, per model endpoint, from 0.001 to 1000000
    /// [default: no cap].
    #[arg(long, value_name = "R", value_parser = crate::flags::rps)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    /// Fail any node that runs longer than SECONDS (for a map or parallel node: the whole
    /// fan-out); what it had in flight is cancelled; more than 0 and at most 31536000 (365
    /// days) [default: no limit].
    #[arg(long, value_name = "SECONDS", value_parser = crate::flags::node_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_timeout: Option<f64>,
    /// Seconds to connect to a model's server before the attempt fails (retried like a refused
    /// connection); more than 0, at most 31536000 [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = crate::flags::connect_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<f64>,
    /// Seconds an LLM attempt waits without receiving a byte of the answer before it fails
    /// (retried); more than 0, at most 31536000 [default: 120].
    #[arg(long, value_name = "SECONDS", value_parser = crate::flags::idle_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<f64>,
    /// Seconds a whole LLM call may take, retries and waits included; more than 0, at most
    /// 31536000 [default: 600].
    #[arg(long, value_name = "SECONDS", value_parser = crate::flags::call_timeout)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout: Option<f64>,
}

impl LimitArgs {
    /// Checks the values against the flags' ranges (exit 2 on a bad one): the flags are
    /// checked as they are parsed, this is for the values a state file stores.
    fn check(&self) -> anyhow::Result<()> {
        if let Some(n) = self.max_in_flight {
            crate::flags::max_in_flight(&n.to_string()).map_err(anyhow::Error::msg)?;
        }
        if let Some(r) = self.rps {
            crate::flags::check_rps(r).map_err(anyhow::Error::msg)?;
        }
        if let Some(t) = self.node_timeout {
            crate::flags::check_node_timeout(t).map_err(anyhow::Error::msg)?;
        }
        for (flag, seconds) in
            [("--connect-timeout", self.connect_timeout), ("--idle-timeout", self.idle_timeout), ("--call-timeout", self.call_timeout)]
        {
            if let Some(t) = seconds {
                crate::flags::check_seconds(flag, t).map_err(anyhow::Error::msg)?;
            }
        }
        Ok(())
    }

    /// The process's limiters ([`Limiters::global`], which progress views read), configured by
    /// these flags before the first call.
    pub fn limiters(&self) -> Limiters {
        let limiters = Limiters::global();
        if self.max_in_flight.is_some() || self.rps.is_some() {
            let default = LimitConfig::default();
            limiters.set_default(LimitConfig {
                max_in_flight: self.max_in_flight.map_or(default.max_in_flight, |n| usize::try_from(n).unwrap_or(usize::MAX)),
                requests_per_second: self.rps,
                adaptive: true,
            });
        }
        // Checked to (0, 365 days], so the conversions hold; one that did not would keep the
        // default rather than panic.
        let default = weft_llm::limit::Timeouts::default();
        let seconds = |s: Option<f64>, d| s.and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()).unwrap_or(d);
        limiters.set_timeouts(weft_llm::limit::Timeouts {
            connect: seconds(self.connect_timeout, default.connect),
            idle: seconds(self.idle_timeout, default.idle),
            call: seconds(self.call_timeout, default.call),
        });
        limiters
    }
}

/// The run options `run`, `resume` and batches share.
#[allow(clippy::too_many_arguments, reason = "each is one part of the options, built apart")]
fn run_options(
    llm: Llm,
    tools: ToolRegistry,
    http: Arc<dyn HttpSend>,
    max_steps: u64,
    sink: &Arc<Sink>,
    limiters: Limiters,
    limits: &LimitArgs,
    checkpoints: &Arc<Checkpoints>,
) -> RunOptions {
    RunOptions {
        llm,
        tools,
        http: Some(http),
        max_steps,
        max_reasks: DEFAULT_MAX_REASKS,
        events: Some(crate::crash::events(sink.clone() as Arc<dyn EventSink>)),
        limits: limiters,
        // Checked to (0, 365 days], so the conversion holds; a value that did not would mean
        // no timeout rather than a panic.
        node_timeout: limits.node_timeout.and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
        cancel: Some(crate::interrupt::cancel_flag()),
        secrets: crate::scrub::current(),
        checkpoints: Some(Arc::clone(checkpoints)),
        stream: false,
        mcp: weft_exec::McpOptions::default(),
    }
}

/// Options shared by `run` and `resume`.
#[derive(Args, Debug)]
pub(crate) struct SessionArgs {
    /// The answer to the next input request (a message's text, or a client tool's JSON
    /// result); repeatable, used in order.
    #[arg(long = "answer", value_name = "TEXT")]
    pub(crate) answers: Vec<String>,
    /// Where to write the run state when the run waits for input (default for `run`:
    /// `<flow file stem>.state.json` in the current folder; for `resume`: the state file read).
    #[arg(long = "state", value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Write every event as a JSON line to this file (`run` truncates it; `resume` appends,
    /// by default to the file the run started with).
    #[arg(long = "events", value_name = "FILE.jsonl")]
    events: Option<PathBuf>,
    /// Print the text of LLM calls and agents to stderr as it arrives (the calls are streamed;
    /// the events file gets `llm_delta` events); stdout keeps its one JSON object. Not with
    /// `--batch`.
    #[arg(long)]
    pub(crate) stream: bool,
    #[command(flatten)]
    observe: ObserveArgs,
    #[command(flatten)]
    pub(crate) checkpoints: CheckpointArgs,
}

impl SessionArgs {
    /// The sink of a single run: streamed text printed as it comes with `--stream`.
    fn sink(&self, events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
        if self.stream { Sink::streaming(events, append) } else { Sink::new(events, append) }
    }

    /// `--stream` is for one run: a batch's runs would print over each other.
    pub(crate) fn refuse_stream_in_batch(&self) -> anyhow::Result<()> {
        if self.stream {
            anyhow::bail!(
                "--stream prints one run's text as it arrives; it does not work with a batch (use --events FILE.jsonl to see every run's llm_delta events)"
            );
        }
        Ok(())
    }
}

/// What a run needs to write its state file.
#[derive(Clone)]
struct Stored {
    flow: PathBuf,
    flow_hash: String,
    options: ResumeOptions,
    state_path: PathBuf,
    /// What the resume command must give again (secrets are never stored): `--secret`, and
    /// `--llm` when its URL had credentials.
    give_again: Vec<&'static str>,
}

/// What `weft resume` must be given again.
pub(crate) fn give_again(secret_args: &[String], llm: &LlmChoice) -> Vec<&'static str> {
    let mut again = Vec::new();
    if matches!(llm, LlmChoice::Provider(p) if p.has_credentials()) {
        again.push("--llm ...");
    }
    if !secret_args.is_empty() {
        again.push("--secret ...");
    }
    again
}

/// The `--allow-host` policy (a bad pattern is a usage error, exit 2).
fn egress_policy(patterns: &[String]) -> anyhow::Result<weft_guard::EgressPolicy> {
    weft_guard::EgressPolicy::parse(patterns).map_err(|problem| anyhow::anyhow!(problem))
}

/// The `--http-rewrite` values, checked (a bad one is a usage error, exit 2).
fn parse_rewrites(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter().map(|arg| Rewrites::parse_arg(arg).map_err(anyhow::Error::msg)).collect()
}

/// The client of ApiNodes and RemoteTools: the tools file's `[http.rewrite]` rules then the
/// flags' (a flag's prefix replaces the file's same prefix), `--allow-host`, the process's
/// limiters and timeouts, counted in the usage line, recorded or replayed.
fn http_client(
    flags: &[(String, String)],
    tools_file: Option<&ToolsFile>,
    egress: &weft_guard::EgressPolicy,
    limiters: &Limiters,
    observer: &Observer,
) -> anyhow::Result<Arc<dyn HttpSend>> {
    let mut rules: Vec<(String, String)> = tools_file
        .map(|f| f.http_rewrites.iter().filter(|(prefix, _)| !flags.iter().any(|(p, _)| p == prefix)).cloned().collect())
        .unwrap_or_default();
    rules.extend(flags.iter().cloned());
    let rewrites = Rewrites::new(rules).map_err(anyhow::Error::msg)?;
    let client = HttpClient::new(HttpOptions {
        egress: egress.clone(),
        rewrites,
        limiters: limiters.clone(),
        // Retries are counted from the attempts each request reports, not as LLM retries.
        secrets: crate::scrub::current(),
        ..HttpOptions::default()
    })
    .map_err(anyhow::Error::msg)?;
    Ok(observer.http(Arc::new(client)))
}

/// What MCP transports may do: the same rewrites as the HTTP client (the tools file's, then the
/// flags'), `--allow-host`, and which stdio servers may start.
fn mcp_options(
    flags: &[(String, String)],
    tools_file: Option<&ToolsFile>,
    egress: &weft_guard::EgressPolicy,
    allow_stdio: bool,
    observer: &Observer,
) -> anyhow::Result<weft_exec::McpOptions> {
    let mut rules: Vec<(String, String)> = tools_file
        .map(|f| f.http_rewrites.iter().filter(|(prefix, _)| !flags.iter().any(|(p, _)| p == prefix)).cloned().collect())
        .unwrap_or_default();
    rules.extend(flags.iter().cloned());
    Ok(weft_exec::McpOptions {
        rewrites: Rewrites::new(rules).map_err(anyhow::Error::msg)?,
        egress: egress.clone(),
        allow_stdio,
        allowed_commands: tools_file.map(|f| f.mcp_commands.clone()).unwrap_or_default(),
        client: Some(observer.mcp()),
    })
}

/// Adds the credentials of an `--llm` URL to the scrubber.
fn scrub_llm(choice: &LlmChoice) {
    if let LlmChoice::Provider(p) = choice {
        let mut secrets = weft_guard::Secrets::default();
        secrets.add_url_credentials(&p.url);
        crate::scrub::add(&secrets);
    }
}

/// `weft run`.
pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    // Usage problems first (exit 2), before the flow is even read.
    let llm = parse_llm(&args.llm)?;
    scrub_llm(&llm);
    let egress = egress_policy(&args.allow_host)?;
    let rewrites = parse_rewrites(&args.http_rewrite)?;
    args.limits.check()?;
    let overrides = parse_input_args(&args.input)?;
    let inputs = match &args.inputs {
        Some(path) => read_inputs_file(path)?,
        None => Map::new(),
    };
    let tools_path = args.tools.as_deref().map(absolute).transpose()?;
    let tools_file = load_tools(tools_path.as_deref())?;
    // The state file (a batch's, with `--batch`): checked writable and locked before the
    // first call.
    let state_path = match (&args.session.state, &args.batch) {
        (Some(path), _) => path.clone(),
        (None, Some(_)) => default_path(&args.file, "batch.json"),
        (None, None) => default_path(&args.file, "state.json"),
    };
    crate::paths::check_writable(&state_path, "state file (--state)")?;
    let lock = StateLock::acquire(&state_path)?;
    let created = !state_path.exists();
    let Some(flow) = crate::load_one(&args.file, &args.load)? else { return Ok(Outcome::Invalid) };
    let tools = tool_registry(tools_file.as_ref());
    let limiters = args.limits.limiters();
    let observer = observer(&args.session.observe)?;
    let model = observer.llm(llm_for(&llm, &flow, &args.load.secrets, &limiters, observer.sleeper(), &egress)?, &overrides_of(&llm));
    let tools = observer.tools(tools);
    let http = http_client(&rewrites, tools_file.as_ref(), &egress, &limiters, &observer)?;
    let mcp = mcp_options(&rewrites, tools_file.as_ref(), &egress, args.allow_stdio_mcp, &observer)?;

    let events_path = args.session.events.as_deref().map(absolute).transpose()?;
    let max_steps = args.max_steps;
    let options = ResumeOptions {
        llm: llm.to_string(),
        tools: tools_path,
        max_steps,
        max_reasks: weft_exec::DEFAULT_MAX_REASKS,
        events: events_path.clone(),
        refs: args.load.refs.iter().map(|p| absolute(p)).collect::<anyhow::Result<_>>()?,
        limits: state_file::limits_map(&args.limits),
        allow_hosts: args.allow_host.clone(),
        http_rewrites: args.http_rewrite.clone(),
    };
    if let Some(batch) = &args.batch {
        let file = crate::batch::read(batch)?;
        args.session.refuse_stream_in_batch()?;
        let sink = Arc::new(Sink::quiet(events_path.as_deref(), false)?);
        let checkpoints = crate::batch::BatchCheckpoints::new(args.session.checkpoints.policy());
        let mut run_options = run_options(model, tools, http, max_steps, &sink, limiters.clone(), &args.limits, &checkpoints.engine);
        run_options.mcp = mcp.clone();
        let Some(plan) = compile(&flow, run_options, &sink) else { return Ok(Outcome::Invalid) };
        let stored = crate::batch::BatchStored {
            flow: absolute(&args.file)?,
            options,
            state_path,
            created,
            give_again: give_again(&args.load.secrets, &llm),
            base: with_overrides(&plan, inputs, overrides),
            concurrency: args.concurrency,
            message: args.message.clone(),
        };
        let outcome = crate::batch::run(&plan, file, stored, &checkpoints, &sink, &observer, &limiters);
        drop(lock);
        return outcome;
    }
    let sink = Arc::new(args.session.sink(events_path.as_deref(), false)?);
    let checkpoints = RunCheckpoints::new(args.session.checkpoints.policy());
    let mut run_options = run_options(model, tools, http, max_steps, &sink, limiters, &args.limits, &checkpoints.engine);
    run_options.stream = args.session.stream;
    run_options.mcp = mcp;
    let Some(plan) = compile(&flow, run_options, &sink) else { return Ok(Outcome::Invalid) };
    let inputs = with_overrides(&plan, inputs, overrides);
    let mut run = match plan.start(inputs) {
        Ok(r) => r,
        Err(e) => {
            sink.finish();
            e.problems().iter().for_each(|p| report::error_line(p));
            return Ok(Outcome::Invalid);
        }
    };
    if let Some(message) = &args.message {
        run.append_user_message(message).context("--message")?;
    }
    let stored = Stored {
        flow: absolute(&args.file)?,
        flow_hash: plan.flow_hash().to_owned(),
        options,
        state_path,
        give_again: give_again(&args.load.secrets, &llm),
    };
    let keeper = Keeper::new(stored, &checkpoints, created);
    let outcome = drive(run, args.session.answers.into(), &sink, keeper, &observer);
    drop(lock);
    outcome
}

/// The observer of a command; every secret known (the scrubber's) is redacted from recordings.
fn observer(args: &ObserveArgs) -> anyhow::Result<Arc<Observer>> {
    Ok(Arc::new(Observer::new(args, &crate::scrub::current())?))
}

fn overrides_of(choice: &LlmChoice) -> Vec<weft_llm::providers::openai::ProviderOverride> {
    match choice {
        LlmChoice::Provider(p) => vec![p.clone()],
        _ => Vec::new(),
    }
}

/// The inputs with `--input NAME=VALUE` applied: raw text for an input declared as a string,
/// else JSON when it parses.
fn with_overrides(plan: &Plan, mut inputs: Map<String, Json>, overrides: Vec<(String, String)>) -> Map<String, Json> {
    for (name, value) in overrides {
        let declared_string = plan.inputs().iter().any(|p| p.title() == name && p.schema.get("type") == Some(&Json::from("string")));
        let value = if declared_string { Json::String(value) } else { serde_json::from_str(&value).unwrap_or(Json::String(value)) };
        inputs.insert(name, value);
    }
    inputs
}

/// `weft resume`.
pub fn resume(args: ResumeArgs) -> anyhow::Result<Outcome> {
    // Overrides first: a bad one is a usage error (exit 2) before the state is used.
    let overrides = Overrides::parse(&args)?;
    // Locked before it is read: a second `weft resume` of the same file is refused while this
    // one runs. (A missing file is said so first, leaving no lock file behind.)
    std::fs::metadata(&args.state_file).with_context(|| format!("cannot read the state file {}", args.state_file.display()))?;
    let lock = StateLock::acquire(&args.state_file)?;
    let value = state_file::read_json(&args.state_file)?;
    if value.get("weft_batch_state").is_some() {
        return crate::batch::resume(&args, &overrides, value, lock);
    }
    let mut file = state_file::from_json(&args.state_file, value)?;
    if let weft_exec::state::Outcome::Finished { .. } = file.state.outcome {
        let flow = file.flow.as_deref().map(|f| shell_quote(&f.display().to_string())).unwrap_or_else(|| "FLOW".to_owned());
        report::error_line(&format!(
            "the run in {} already finished (its outputs were printed when it did), so there is nothing to resume; start a new run with `weft run {flow}`",
            args.state_file.display()
        ));
        return Ok(Outcome::Invalid);
    }
    let state_path = args.session.state.clone().unwrap_or_else(|| args.state_file.clone());
    crate::paths::check_writable(&state_path, "state file (--state)")?;
    let other_lock = match &args.session.state {
        Some(other) if lock_differs(other, &args.state_file) => Some(StateLock::acquire(other)?),
        _ => None,
    };
    let created = !state_path.exists();
    let Some(setup) = Setup::new(&args, &overrides, file.flow.clone(), &mut file.options)? else { return Ok(Outcome::Invalid) };
    let sink = Arc::new(args.session.sink(file.options.events.as_deref(), true)?);
    let checkpoints = RunCheckpoints::new(args.session.checkpoints.policy());
    let mut run_options = setup.run_options(&file.options, &sink, &checkpoints.engine);
    run_options.stream = args.session.stream;
    let Some(plan) = compile(&setup.flow, run_options, &sink) else { return Ok(Outcome::Invalid) };
    let run = match plan.resume(file.state) {
        Ok(r) => r,
        // A damaged state is a bad input file (exit 2), located in the file: the run state
        // sits under `/state`.
        Err(weft_exec::ResumeError::Damaged { pointer, problem }) => {
            sink.finish();
            report::error_line(&format!(
                "cannot resume {}: the state file is damaged at /state{pointer}: {problem}. It was edited or corrupted after weft wrote it; restore the file weft wrote, or start a new run with `weft run`",
                args.state_file.display()
            ));
            return Ok(Outcome::IoError);
        }
        Err(e) => {
            sink.finish();
            report::error_line(&format!("cannot resume {}: {e}", args.state_file.display()));
            return Ok(Outcome::Invalid);
        }
    };
    let stored = Stored {
        flow: setup.flow_path.clone(),
        flow_hash: plan.flow_hash().to_owned(),
        options: file.options,
        state_path,
        give_again: give_again(&args.secrets, &setup.llm),
    };
    let keeper = Keeper::new(stored, &checkpoints, created);
    let outcome = drive(run, args.session.answers.into(), &sink, keeper, &setup.observer);
    drop((lock, other_lock));
    outcome
}

/// What `weft resume` is given instead of what the stored file says.
pub(crate) struct Overrides {
    llm: Option<LlmChoice>,
    egress: weft_guard::EgressPolicy,
    tools: Option<PathBuf>,
    rewrites: Vec<(String, String)>,
}

impl Overrides {
    fn parse(args: &ResumeArgs) -> anyhow::Result<Overrides> {
        let llm = args.llm.as_deref().map(parse_llm).transpose()?;
        if let Some(llm) = &llm {
            scrub_llm(llm);
        }
        Ok(Overrides {
            llm,
            egress: egress_policy(&args.allow_host)?,
            tools: args.tools.as_deref().map(absolute).transpose()?,
            rewrites: parse_rewrites(&args.http_rewrite)?,
        })
    }
}

/// What a resumed run or batch runs with: the stored options (checked again, as a state file
/// is input) with the command's overrides applied.
pub(crate) struct Setup {
    pub(crate) flow: weft_flow::Flow,
    pub(crate) flow_path: PathBuf,
    pub(crate) llm: LlmChoice,
    model: Llm,
    tools: ToolRegistry,
    http: Arc<dyn HttpSend>,
    mcp: weft_exec::McpOptions,
    limits: LimitArgs,
    pub(crate) limiters: Limiters,
    pub(crate) observer: Arc<Observer>,
}

impl Setup {
    /// Checks the stored options, applies the overrides to them (and `--events`, which a resumed
    /// run appends to), and loads the flow; `None` when the flow is invalid (reported).
    pub(crate) fn new(
        args: &ResumeArgs,
        overrides: &Overrides,
        flow: Option<PathBuf>,
        options: &mut ResumeOptions,
    ) -> anyhow::Result<Option<Setup>> {
        let in_file = || format!("in the state file {}", args.state_file.display());
        let limits = state_file::limits(options).with_context(in_file)?;
        limits.check().with_context(in_file)?;
        crate::flags::check_max_steps(options.max_steps).map_err(anyhow::Error::msg).with_context(in_file)?;
        let llm = match &overrides.llm {
            Some(llm) => llm.clone(),
            None => parse_llm(&options.llm).with_context(in_file)?,
        };
        options.llm = llm.to_string();
        if let Some(tools) = &overrides.tools {
            options.tools = Some(tools.clone());
        }
        let egress = if overrides.egress.is_restricted() {
            options.allow_hosts = args.allow_host.clone();
            overrides.egress.clone()
        } else {
            egress_policy(&options.allow_hosts).with_context(in_file)?
        };
        let tools_file = load_tools(options.tools.as_deref()).with_context(in_file)?;
        let load = LoadArgs { refs: options.refs.clone(), secrets: args.secrets.clone(), strict: false };
        let flow_path = flow.with_context(|| format!("the state file {} names no flow file", args.state_file.display()))?;
        let Some(flow) = crate::load_one(&flow_path, &load)? else { return Ok(None) };
        let tools = tool_registry(tools_file.as_ref());
        let limiters = limits.limiters();
        let observer = observer(&args.session.observe)?;
        let model = llm_for(&llm, &flow, &args.secrets, &limiters, observer.sleeper(), &egress).with_context(in_file)?;
        let model = observer.llm(model, &overrides_of(&llm));
        let tools = observer.tools(tools);
        let rewrites = if overrides.rewrites.is_empty() {
            parse_rewrites(&options.http_rewrites).with_context(in_file)?
        } else {
            options.http_rewrites = args.http_rewrite.clone();
            overrides.rewrites.clone()
        };
        let http = http_client(&rewrites, tools_file.as_ref(), &egress, &limiters, &observer)?;
        let mcp = mcp_options(&rewrites, tools_file.as_ref(), &egress, args.allow_stdio_mcp, &observer)?;
        // `--events` redirects the events; either way a resumed run appends.
        if let Some(p) = &args.session.events {
            options.events = Some(absolute(p)?);
        }
        Ok(Some(Setup { flow, flow_path, llm, model, tools, http, mcp, limits, limiters, observer }))
    }

    /// The run options (the model and tools move out: one plan per setup).
    pub(crate) fn run_options(&self, options: &ResumeOptions, sink: &Arc<Sink>, checkpoints: &Arc<Checkpoints>) -> RunOptions {
        let mut options = run_options(
            self.model.clone(),
            self.tools.clone(),
            Arc::clone(&self.http),
            options.max_steps,
            sink,
            self.limiters.clone(),
            &self.limits,
            checkpoints,
        );
        options.mcp = self.mcp.clone();
        options
    }
}

/// Whether two state paths have different lock files (the same file named two ways shares one).
pub(crate) fn lock_differs(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| {
        let lock = crate::lock::lock_path(p);
        let folder = lock.parent().and_then(|d| d.canonicalize().ok());
        (folder, lock.file_name().map(std::ffi::OsStr::to_owned))
    };
    canonical(a) != canonical(b)
}

/// Where a run's state goes: checkpoints while it executes (written by a thread of their own),
/// then the final state when it stops.
struct Keeper {
    stored: Stored,
    writer: Writer<RunState>,
    /// The state file did not exist before this command: it is removed when the run finishes.
    created: bool,
}

impl Keeper {
    fn new(stored: Stored, checkpoints: &RunCheckpoints, created: bool) -> Keeper {
        let for_writer = stored.clone();
        let writer =
            checkpoints.writer(format!("the run (to {})", stored.state_path.display()), move |state| write_state(&for_writer, state));
        Keeper { stored, writer, created }
    }

    /// Writes the run's final state (checkpoints stop first, so none can overwrite it).
    fn store(&mut self, run: &Run) -> anyhow::Result<()> {
        self.writer.stop();
        write_state(&self.stored, run.state().clone())
    }

    /// The run finished: a state file this command created (by a checkpoint) is removed; one
    /// that was there before now says the run finished, so resuming it again is refused
    /// instead of repeating every call made since it was stored.
    fn finished(&mut self, run: &Run) -> anyhow::Result<()> {
        self.writer.stop();
        let path = &self.stored.state_path;
        if self.created {
            if path.exists() {
                std::fs::remove_file(path).with_context(|| format!("cannot remove the checkpoint {}", path.display()))?;
            }
            Ok(())
        } else {
            self.store(run)
        }
    }
}

/// Executes until the run finishes, fails, or waits for an answer nobody gives.
fn drive(mut run: Run, answers: VecDeque<String>, sink: &Sink, mut keeper: Keeper, observer: &Observer) -> anyhow::Result<Outcome> {
    let outcome = drive_answers(&mut run, answers, sink, &mut keeper);
    observer.finish();
    outcome
}

fn drive_answers(run: &mut Run, mut answers: VecDeque<String>, sink: &Sink, keeper: &mut Keeper) -> anyhow::Result<Outcome> {
    let guard = StoreOnPanic { run, keeper };
    let run = &mut *guard.run;
    let keeper = &mut *guard.keeper;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let mut interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // A resumed run waits already: answer before executing again (a finished or failed one
    // takes no answers: executing reports its outcome).
    let running = matches!(run.state().outcome, weft_exec::state::Outcome::Running);
    let mut waiting = if running { run.pending().values().next().cloned() } else { None };
    loop {
        let status = match waiting.take() {
            Some(request) => Ok(Status::InputRequired { request }),
            None => match runtime.block_on(execute_or_interrupt(run)) {
                Some(Err(e)) if e.kind == weft_exec::RunErrorKind::Cancelled => return interrupted(run, sink, keeper),
                Some(status) => status,
                None => return interrupted(run, sink, keeper),
            },
        };
        let request = match status {
            Ok(Status::Finished { outputs, .. }) => {
                sink.finish();
                keeper.finished(run)?;
                if !answers.is_empty() {
                    eprintln!("warning: {} unused --answer value(s) ignored", answers.len());
                }
                let mut outputs = Json::Object(outputs);
                crate::scrub::json(&mut outputs);
                let mut text = serde_json::to_string_pretty(&outputs).context("serializing the outputs")?;
                text.push('\n');
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("writing to stdout")?;
                return Ok(Outcome::Valid);
            }
            Err(e) => {
                sink.finish();
                report::error_line(&e.message);
                // Keep the failed run inspectable: what ran, the values produced, the calls.
                if keeper.store(run).is_ok() {
                    eprintln!(
                        "the failed run's state (values produced, calls made, the error) is in {}; `weft resume` tries what failed again",
                        keeper.stored.state_path.display()
                    );
                }
                return Ok(Outcome::Invalid);
            }
            Ok(Status::InputRequired { request }) => request,
        };
        let from_terminal = answers.is_empty() && interactive;
        let answer = match &request {
            InputRequest::ClientTools { calls, .. } => client_answers(calls, &mut answers, &mut interactive, sink),
            _ => match answers.pop_front() {
                Some(a) => Some(answer_value(&request, a)),
                None if interactive => {
                    let shown = matches!(&request, InputRequest::Message { node, message: Some(m) } if sink.just_showed(node, m));
                    let a = sink.suspend(|| ask(&request, shown));
                    interactive = a.is_some();
                    a.map(|a| answer_value(&request, a))
                }
                None => None,
            },
        };
        let Some(answer) = answer else {
            return wait(run, &request, sink, keeper, None);
        };
        if let Err(e) = run.submit(answer) {
            if from_terminal {
                // Ask again: `execute` returns the same request.
                sink.suspend(|| report::error_line(&format!("{e}; try again")));
                continue;
            }
            return wait(run, &request, sink, keeper, Some(&e.to_string()));
        }
    }
}

/// The answer to an agent's open client tool calls: one `--answer` that is a JSON object keyed
/// by call id, else one `--answer` per call in order (then, on a terminal, a prompt for each
/// call left); the results given so far, keyed by call id (the agent asks again for the
/// others), or `None` when none is given.
fn client_answers(calls: &[ClientToolCall], answers: &mut VecDeque<String>, interactive: &mut bool, sink: &Sink) -> Option<Json> {
    if let Some(Ok(Json::Object(by_id))) = answers.front().map(|a| serde_json::from_str::<Json>(a))
        && !by_id.is_empty()
        && by_id.keys().all(|k| calls.iter().any(|c| c.tool_request_id == *k))
    {
        answers.pop_front();
        return Some(Json::Object(by_id));
    }
    let mut given = Map::new();
    for call in calls {
        let text = match answers.pop_front() {
            Some(a) => a,
            None if *interactive => match sink.suspend(|| ask_client_call(calls.len(), call)) {
                Some(a) => a,
                None => {
                    *interactive = false;
                    break;
                }
            },
            None => break,
        };
        given.insert(call.tool_request_id.clone(), json_or_text(text));
    }
    (!given.is_empty()).then_some(Json::Object(given))
}

/// Stores the run's state when the thread unwinds from a panic while the run is driven (a
/// panic in the scheduler or the driver): the panic hook has printed the bug report message,
/// this keeps the calls already made. The state is the run's latest; if the panic left it
/// inconsistent, `weft resume` says so rather than panicking again.
struct StoreOnPanic<'a> {
    run: &'a mut Run,
    keeper: &'a mut Keeper,
}

impl Drop for StoreOnPanic<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        match self.keeper.store(self.run) {
            Ok(()) => eprintln!(
                "the run's state when weft panicked is in {} (`weft resume` continues it; attach it to the bug report if you can)",
                self.keeper.stored.state_path.display()
            ),
            Err(e) => eprintln!("the run's state could not be stored: {e:#}"),
        }
    }
}

/// Executes until the run stops by itself (`Some`) or a stopping signal arrives (Ctrl-C,
/// SIGTERM, SIGHUP: `None`; the calls in flight are cancelled, the state keeps them, so a
/// resumed run makes them again).
async fn execute_or_interrupt(run: &mut Run) -> Option<Result<Status, weft_exec::RunError>> {
    let result = tokio::select! {
        status = run.execute() => Some(status),
        () = crate::interrupt::stopped() => None,
    };
    // Stopped by the signal's cancel flag while it evaluated: the same interruption.
    match result {
        Some(Err(e)) if e.kind == weft_exec::RunErrorKind::Cancelled => None,
        other => other,
    }
}

/// Stores an interrupted run and says how to continue it (exit 130, 143 or 129).
fn interrupted(run: &Run, sink: &Sink, keeper: &mut Keeper) -> anyhow::Result<Outcome> {
    sink.finish();
    keeper.store(run)?;
    let stored = &keeper.stored;
    let state = shell_quote(&stored.state_path.display().to_string());
    let mut s = format!(
        "interrupted ({}): run state written to {} (finished work is kept; calls that were in flight will be made again)\ncontinue with: weft resume {state}",
        crate::interrupt::what(),
        stored.state_path.display()
    );
    push_give_again(&mut s, stored);
    report::line(&s);
    Ok(Outcome::Interrupted)
}

/// Stores the waiting run and says how to continue it: exit 3, or 2 when an `--answer` was
/// refused (`refused` holds why).
fn wait(run: &Run, request: &InputRequest, sink: &Sink, keeper: &mut Keeper, refused: Option<&str>) -> anyhow::Result<Outcome> {
    sink.finish();
    keeper.store(run)?;
    let stored = &keeper.stored;
    if let Some(why) = refused {
        report::error_line(&format!("the answer for node \"{}\" was refused: {why}", request.node()));
    }
    let (what, placeholder) = describe(request);
    let state = shell_quote(&stored.state_path.display().to_string());
    let mut s = format!("waiting for input: {what}\nrun state written to {}\n", stored.state_path.display());
    s.push_str(&format!("continue with: weft resume {state} --answer {placeholder}"));
    push_give_again(&mut s, stored);
    report::line(&s);
    Ok(if refused.is_some() { Outcome::IoError } else { Outcome::Waiting })
}

/// Appends what the resume command must be given again.
fn push_give_again(s: &mut String, stored: &Stored) {
    if !stored.give_again.is_empty() {
        s.push_str(&format!(" {}  (secrets are not stored: give them again)", stored.give_again.join(" ")));
    }
}

/// Writes a run's state file (the flow's path and hash, the non-secret options, the state).
fn write_state(stored: &Stored, state: RunState) -> anyhow::Result<()> {
    let file = StateFile { flow: Some(stored.flow.clone()), flow_hash: stored.flow_hash.clone(), options: stored.options.clone(), state };
    state_file::write(&stored.state_path, &file)
}

/// Compiles the flow for running, or prints every problem that stops it (exit 1).
pub(crate) fn compile(flow: &weft_flow::Flow, options: RunOptions, sink: &Sink) -> Option<Arc<Plan>> {
    match Plan::new(flow, options) {
        Ok(plan) => Some(plan),
        Err(e) => {
            sink.finish();
            e.problems().iter().for_each(|p| report::error_line(p));
            None
        }
    }
}

/// What a request asks for, and a placeholder for the answer(s) in the resume command.
fn describe(request: &InputRequest) -> (String, String) {
    let result = "'<JSON result>'".to_owned();
    match request {
        InputRequest::Message { node, message: Some(m) } => (format!("node \"{node}\" asks: {m}"), "'<your answer>'".to_owned()),
        InputRequest::Message { node, message: None } => (format!("node \"{node}\" waits for a message"), "'<your answer>'".to_owned()),
        InputRequest::Tool { node, tool, args, outputs, .. } => (
            format!(
                "node \"{node}\" waits for the result of client tool \"{tool}\" called with {}; answer with {}",
                Json::Object(args.clone()),
                expected_outputs(outputs)
            ),
            result,
        ),
        InputRequest::ClientTools { node, calls } => match calls.as_slice() {
            [call] => (
                format!(
                    "node \"{node}\" waits for the result of client tool \"{}\" called with {}; answer with {}",
                    call.tool,
                    Json::Object(call.args.clone()),
                    expected_outputs(&call.outputs)
                ),
                result,
            ),
            calls => {
                let list: Vec<String> = calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        format!(
                            "\n  {}. call \"{}\": client tool \"{}\" called with {}; answer with {}",
                            i + 1,
                            c.tool_request_id,
                            c.tool,
                            Json::Object(c.args.clone()),
                            expected_outputs(&c.outputs)
                        )
                    })
                    .collect();
                (
                    format!(
                        "node \"{node}\" waits for the results of {} client tool calls (one --answer per call, in this order, or one JSON object keyed by call id):{}",
                        calls.len(),
                        list.concat()
                    ),
                    vec![result; calls.len()].join(" --answer "),
                )
            }
        },
        InputRequest::Confirmation { node, tool, args, .. } => (
            format!(
                "node \"{node}\" asks to run tool \"{tool}\" with {}: answer approve, reject, 'reject: REASON' (the model is told why), or 'approve: {{\"ARGUMENT\": VALUE}}' to run it with changed arguments",
                Json::Object(args.clone())
            ),
            "approve".to_owned(),
        ),
    }
}

fn expected_outputs(outputs: &[String]) -> String {
    match outputs {
        [] => "any JSON value".to_owned(),
        [one] => format!("the JSON value of output \"{one}\""),
        many => format!("a JSON object with keys {}", many.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(", ")),
    }
}

/// Asks on the terminal (`shown`: the question was just printed as a message); `None` at end
/// of input.
fn ask(request: &InputRequest, shown: bool) -> Option<String> {
    match request {
        InputRequest::Message { node, message } => match message {
            Some(_) if shown => {}
            Some(m) => report::line(&format!("[{node}] {m}")),
            None => report::line(&format!("[{node}] waits for a message")),
        },
        InputRequest::Tool { node, tool, args, outputs, .. } => {
            report::line(&format!("[{node}] client tool \"{tool}\" called with {}", Json::Object(args.clone())));
            report::line(&format!("answer with {}", expected_outputs(outputs)));
        }
        InputRequest::ClientTools { node, calls } => {
            // Asked call by call (`ask_client_call`); this is only reached for an empty list.
            report::line(&format!("[{node}] waits for {} client tool results", calls.len()));
        }
        InputRequest::Confirmation { node, tool, args, .. } => {
            report::line(&format!("[{node}] run tool \"{tool}\" with {}?", Json::Object(args.clone())));
            report::line("answer y (approve), n (reject), 'reject: REASON', or 'approve: {\"ARGUMENT\": VALUE}' to change arguments");
        }
    }
    read_answer()
}

/// Asks on the terminal for the result of one of `total` client tool calls.
fn ask_client_call(total: usize, call: &ClientToolCall) -> Option<String> {
    let which = if total > 1 { format!(" (call \"{}\")", call.tool_request_id) } else { String::new() };
    report::line(&format!("client tool \"{}\"{which} called with {}", call.tool, Json::Object(call.args.clone())));
    report::line(&format!("answer with {}", expected_outputs(&call.outputs)));
    read_answer()
}

/// Reads one line of stdin after a prompt; `None` at end of input.
fn read_answer() -> Option<String> {
    eprint!("> ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            eprintln!();
            None
        }
        Ok(_) => {
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            Some(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
        }
    }
}

/// A message answer is text; a client tool's is JSON, or a JSON string when it does not parse;
/// a confirmation is its text (`approve`, `reject: REASON`...) or a JSON object.
fn answer_value(request: &InputRequest, text: String) -> Json {
    match request {
        InputRequest::Message { .. } => Json::String(text),
        InputRequest::Tool { .. } | InputRequest::ClientTools { .. } => json_or_text(text),
        InputRequest::Confirmation { .. } => match serde_json::from_str::<Json>(&text) {
            Ok(object @ Json::Object(_)) => object,
            _ => Json::String(text),
        },
    }
}

/// The JSON value of `text`, or the text as a JSON string when it is not JSON.
fn json_or_text(text: String) -> Json {
    serde_json::from_str(&text).unwrap_or(Json::String(text))
}

fn parse_llm(text: &str) -> anyhow::Result<LlmChoice> {
    let mut choice: LlmChoice = text.parse()?;
    // A script path is taken from the current folder; stored absolute so resume works anywhere.
    if let LlmChoice::Simulated(spec) = &mut choice
        && let Some(script) = &spec.script
    {
        spec.script = Some(absolute(script)?);
    }
    Ok(choice)
}

/// The models: the simulated one, or OpenAI-compatible providers for the flow's LLM configs
/// (all of them replaced by `--llm PROVIDER=URL,model=ID`, or one by `CONFIG_ID:PROVIDER=...`).
/// API keys come from `--secret <config id>.api_key=...`, `WEFT_SECRET_<ID>_API_KEY` or
/// `OPENAI_API_KEY` (only for OpenAI's API and loopback servers); the HTTP clients feed 429s back
/// into the same limiters the engine uses, send only where `egress` allows, and mask every known
/// secret in their errors.
fn llm_for(
    choice: &LlmChoice,
    flow: &weft_flow::Flow,
    secret_args: &[String],
    limiters: &Limiters,
    sleeper: Arc<dyn weft_llm::retry::Sleeper>,
    egress: &weft_guard::EgressPolicy,
) -> anyhow::Result<Llm> {
    let overrides = match choice {
        LlmChoice::Simulated(spec) => return Ok(Llm::Model(Arc::new(SimulatedModel::new(spec.into_options(None)?)))),
        LlmChoice::Flow => Vec::new(),
        LlmChoice::Provider(p) => vec![p.clone()],
    };
    let mut secrets = std::collections::HashMap::new();
    for c in &flow.spec().components {
        let key = format!("{}.api_key", c.id);
        if let Ok(value) = std::env::var(crate::secrets::env_var_name(&key)) {
            secrets.insert(key, value);
        }
    }
    for arg in secret_args {
        let (key, value) = crate::secrets::parse_secret_arg(arg)?;
        secrets.insert(key, value);
    }
    let resolver = weft_llm::providers::openai::Resolver::new(secrets, overrides)
        .with_limiters(limiters.clone())
        .with_sleeper(sleeper)
        .with_egress(egress.clone())
        .with_secrets(crate::scrub::current());
    Ok(Llm::Resolver(Arc::new(resolver.into_fn())))
}

fn load_tools(path: Option<&Path>) -> anyhow::Result<Option<ToolsFile>> {
    Ok(path.map(ToolsFile::load).transpose()?)
}

/// The tools of a tools file, once every secret is known (the flow's included): each masks
/// them in the excerpts of its output that its failure messages quote, before cutting them.
fn tool_registry(file: Option<&ToolsFile>) -> ToolRegistry {
    file.map_or_else(ToolRegistry::new, |file| file.registry_with_secrets(&crate::scrub::current()))
}

fn parse_input_args(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => anyhow::bail!(
                "--input {arg:?} is not NAME=VALUE: write --input <input title>=<value>, e.g. --input question=\"What is Rust?\""
            ),
        })
        .collect()
}

fn read_inputs_file(path: &Path) -> anyhow::Result<Map<String, Json>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the inputs file {}", path.display()))?;
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => anyhow::bail!(
            "the inputs file {} holds {}, not a JSON object: write {{\"<input title>\": <value>, ...}}",
            path.display(),
            type_name(&other, TypeWords::Json)
        ),
        Err(e) => anyhow::bail!("the inputs file {} is not valid JSON ({e}): write {{\"<input title>\": <value>, ...}}", path.display()),
    }
}

/// `<flow file stem>.<suffix>` in the current folder.
fn default_path(flow: &Path, suffix: &str) -> PathBuf {
    let stem = flow.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "flow".to_owned());
    PathBuf::from(format!("{stem}.{suffix}"))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Quotes a word for a POSIX shell when it needs it.
pub(crate) fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_args_need_a_name_and_an_equals_sign() {
        assert_eq!(parse_input_args(&["a=b=c".into()]).unwrap(), vec![("a".into(), "b=c".into())]);
        assert_eq!(parse_input_args(&["a=".into()]).unwrap(), vec![("a".into(), String::new())]);
        assert!(parse_input_args(&["ab".into()]).is_err());
        assert!(parse_input_args(&["=b".into()]).is_err());
    }

    #[test]
    fn tool_answers_are_json_or_strings() {
        let tool =
            InputRequest::Tool { node: "n".into(), tool: "t".into(), tool_request_id: "r".into(), args: Map::new(), outputs: vec![] };
        assert_eq!(answer_value(&tool, "{\"a\": 1}".into()), serde_json::json!({"a": 1}));
        assert_eq!(answer_value(&tool, "sunny".into()), Json::from("sunny"));
        let msg = InputRequest::Message { node: "n".into(), message: None };
        assert_eq!(answer_value(&msg, "3".into()), Json::from("3"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("a/b.state.json"), "a/b.state.json");
        assert_eq!(shell_quote("my file"), "'my file'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
