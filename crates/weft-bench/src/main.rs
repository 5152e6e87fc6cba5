//! `weft-bench`: whole-flow benchmarks of the weft engine (issue 4, item 9; the agents workload,
//! issue 15, item 7).
//!
//! Each workload goes through the code path of `weft run`: the flow is loaded and checked,
//! compiled by `Plan::new` with `RunOptions` holding one `Arc<dyn ChatModel>` (the simulated
//! model with a fixed latency), the process-wide provider limiter (`Limiters::global()`, the
//! default), the engine's validation of structured answers, and an event sink that receives
//! every event (it counts them); runs execute on a multi-threaded tokio runtime, one run through
//! `Plan::start` + `Run::execute`, batches through `weft_exec::batch::run_batch` as
//! `weft run --batch` does.
//!
//! With `--http` the model is the OpenAI-compatible test server of `weft-testkit` instead,
//! started as a child process (`weft-testkit-server`, see [`server`]) with the same latency, and
//! the flow's LLM configs are all replaced by it as `weft run --llm
//! openai-compatible=URL,model=M` does: the same `Resolver`, OpenAI client, retry layer and
//! provider-wide limiter. The figures are the same; the CPU time is still this process's alone
//! (the server's is its own process's), the ideal the same critical path of LLM latency.
//!
//! For each workload it reports the wall time, the ideal (the critical path of LLM latency:
//! waves × calls in sequence × latency), their ratio, the model latency a call actually saw
//! (mean `duration_ms` of the `LlmResponse` events), the LLM calls, the CPU time per LLM call
//! (user + system of the whole process) and the peak resident set (`VmHWM`).
//!
//! ```text
//! cargo run --release -p weft-bench                       # all five, each in a fresh process
//! cargo run --release -p weft-bench -- agents --repeat 5   # the agents workload, median of 5
//! cargo run --release -p weft-bench -- guardrails         # one workload
//! cargo run --release -p weft-bench -- --scale 0.1       # a quick smoke test
//! cargo run --release -p weft-bench -- --json bench.json  # the figures as JSON too
//! cargo run --release -p weft-bench -- --http             # against the test server (a child process)
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark command reports to the terminal")]

mod measure;
mod server;
mod workload;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_exec::{EventSink, Llm, Plan, RunOptions};
use weft_llm::ChatModel;
use weft_llm::limit::Limiters;
use weft_llm::providers::openai::{ApiProvider, ProviderOverride, Resolver};
use weft_llm::simulated::{SimulatedModel, SimulatedOptions};
use workload::{Shape, Workload};

/// Goal: wall time within this factor of the ideal at the peers' scale.
const GOAL_RATIO: f64 = 1.05;
/// Goal: wall time within this factor of the ideal at 100 times the scale.
const GOAL_RATIO_100X: f64 = 1.10;
/// Goal: CPU milliseconds per LLM call.
const GOAL_CPU_MS_PER_CALL: f64 = 0.07;
/// Goal: peak resident set at the peers' scale, in MB (10^6 bytes).
const GOAL_PEAK_MB: f64 = 40.0;

/// Whole-flow benchmarks of the weft engine on the simulated model, or over HTTP against the
/// test server.
#[derive(Parser, Debug)]
#[command(name = "weft-bench", version)]
struct Args {
    /// The workload to run; `all` runs each in a fresh process (peak memory is per process).
    #[arg(value_enum, default_value = "all")]
    workload: Which,
    /// Multiplies the items, runs and concurrency of every workload (e.g. 0.1 for a quick smoke
    /// test); the ideal follows from the scaled sizes.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    scale: f64,
    /// The model's latency per call, in milliseconds (the simulated model's, or the test
    /// server's with `--http`).
    #[arg(long, value_name = "MS", default_value_t = 50)]
    latency_ms: u64,
    /// Worker threads of the tokio runtime (default: one per core, as `weft run`).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Runs each workload this many times, each in a fresh process, and reports the run with
    /// the median wall time (the machine's noise shows in the spread).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Call the OpenAI-compatible test server over HTTP (a `weft-testkit-server` child process,
    /// started per workload) through the OpenAI client, as `weft run --llm
    /// openai-compatible=URL,model=M` does, instead of the simulated model.
    #[arg(long)]
    http: bool,
    /// The test server program for `--http` (default: `weft-testkit-server` beside this
    /// program).
    #[arg(long, value_name = "PATH", requires = "http")]
    server: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run one workload and print its figures as one JSON line (how `all` runs each workload).
    #[arg(long, hide = true)]
    child: bool,
}

/// A workload, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// Every workload, each in a fresh process.
    All,
    /// 256 items, 64 in flight (ideal 0.2 s at 50 ms).
    FanOut,
    /// 1,000 guardrail runs, 100 at a time (ideal 0.5 s).
    Guardrails,
    /// 200 orchestrator-workers runs, 50 at a time (ideal 0.6 s).
    OrchestratorWorkers,
    /// 25,600 items, 1,024 in flight (ideal 1.25 s).
    #[value(name = "fan-out-100x")]
    FanOut100x,
    /// 1,000 agent conversations, 100 at a time: three native tools one per turn, then the
    /// submission (ideal 2.0 s).
    Agents,
}

impl Which {
    fn workload(self) -> Option<Workload> {
        match self {
            Which::All => None,
            Which::FanOut => Some(Workload::FanOut),
            Which::Guardrails => Some(Workload::Guardrails),
            Which::OrchestratorWorkers => Some(Workload::OrchestratorWorkers),
            Which::FanOut100x => Some(Workload::FanOut100x),
            Which::Agents => Some(Workload::Agents),
        }
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// Where the LLM calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// The built-in simulated model, in process.
    #[default]
    Simulated,
    /// The test server, over HTTP through the OpenAI client.
    Http,
}

/// The model a measurement calls.
#[derive(Debug, Clone)]
enum Backend {
    /// The simulated model.
    Simulated,
    /// The test server, this program started as a child.
    Http {
        /// The `weft-testkit-server` program.
        server: PathBuf,
    },
}

impl Backend {
    fn of(args: &Args) -> anyhow::Result<Backend> {
        Ok(if args.http {
            Backend::Http { server: args.server.clone().map_or_else(server::default_program, Ok)? }
        } else {
            Backend::Simulated
        })
    }

    fn mode(&self) -> Mode {
        match self {
            Backend::Simulated => Mode::Simulated,
            Backend::Http { .. } => Mode::Http,
        }
    }
}

/// The figures of one workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Figures {
    workload: Workload,
    shape: Shape,
    /// Where the LLM calls went.
    #[serde(default)]
    mode: Mode,
    /// The process id of the test server child (`--http`), gone when the figures are printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_pid: Option<u32>,
    /// The model's latency per call, as configured.
    latency_ms: f64,
    /// Worker threads of the runtime.
    threads: usize,
    /// Compiling the plan (once per flow; not in the wall time).
    plan_ms: f64,
    /// From the first run's start to the last run's end.
    wall_s: f64,
    /// The critical path of LLM latency at the configured latency.
    ideal_s: f64,
    /// `wall_s / ideal_s`.
    ratio: f64,
    /// Mean `duration_ms` of the `LlmResponse` events: the latency a call saw (the timer rounds
    /// sleeps up to the next millisecond).
    model_latency_ms: f64,
    /// `wall_s` over the critical path at the measured model latency: the engine's own share.
    ratio_at_model_latency: f64,
    /// LLM calls answered.
    llm_calls: u64,
    /// Runs finished.
    runs: usize,
    /// Events the sink received.
    events: u64,
    /// Calls the provider-wide limiter held back.
    held_back: u64,
    /// Re-asks (answers that did not fit).
    reasks: u64,
    /// CPU time of the process over the wall time, user + system.
    cpu_s: f64,
    /// The same from `/proc/self/stat`, in 10 ms ticks (a cross-check).
    cpu_s_proc_stat: Option<f64>,
    /// `cpu_s` per LLM call, in milliseconds.
    cpu_ms_per_call: f64,
    /// Peak resident set of the process (`VmHWM`), in MB (10^6 bytes).
    peak_rss_mb: Option<f64>,
    /// With `--repeat`: the wall time of every repetition, fastest first (these figures are
    /// the median one's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    wall_s_all: Vec<f64>,
}

impl Figures {
    /// The goals this workload misses (the goals are the engine's, on the simulated model).
    fn misses(&self) -> Vec<&'static str> {
        let mut misses = Vec::new();
        if self.mode != Mode::Simulated {
            return misses;
        }
        let peers = self.workload.peers_scale();
        if self.ratio > if peers { GOAL_RATIO } else { GOAL_RATIO_100X } {
            misses.push("wall");
        }
        if self.cpu_ms_per_call >= GOAL_CPU_MS_PER_CALL {
            misses.push("cpu");
        }
        if peers && self.peak_rss_mb.is_some_and(|mb| mb >= GOAL_PEAK_MB) {
            misses.push("rss");
        }
        misses
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_with(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_with(args: &Args) -> anyhow::Result<ExitCode> {
    let latency = Duration::from_millis(args.latency_ms);
    let backend = Backend::of(args)?;
    if args.child {
        let Some(workload) = args.workload.workload() else { bail!("--child needs one workload") };
        let figures = measure(workload, args.scale, latency, args.threads, &backend)?;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let model = match &backend {
        Backend::Simulated => "simulated model".to_owned(),
        Backend::Http { server } => format!("OpenAI-compatible test server over HTTP ({}, a child process per workload)", server.display()),
    };
    println!(
        "weft-bench: {model}, {} ms per call, scale {}, {} cores, tokio multi-thread runtime with {} workers; each workload in a fresh process",
        args.latency_ms,
        args.scale,
        cores,
        args.threads.unwrap_or(cores)
    );
    let mut all = Vec::new();
    let mut repetitions = Vec::new();
    let mut failed = false;
    match args.workload.workload() {
        Some(workload) if args.repeat == 1 => all.push(measure(workload, args.scale, latency, args.threads, &backend)?),
        one => {
            for workload in one.map_or(Workload::ALL.to_vec(), |w| vec![w]) {
                let mut runs = Vec::new();
                for i in 0..args.repeat {
                    eprintln!("weft-bench: running {} ({}/{}) ...", workload.name(), i + 1, args.repeat);
                    match in_child(workload, args, &backend) {
                        Ok(figures) => runs.push(figures),
                        Err(e) => {
                            eprintln!("weft-bench: {}: {e:#}", workload.name());
                            failed = true;
                        }
                    }
                }
                runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
                if let Some(median) = runs.get(runs.len().saturating_sub(1) / 2) {
                    let mut median = median.clone();
                    median.wall_s_all = runs.iter().map(|f| f.wall_s).collect();
                    all.push(median);
                }
                repetitions.extend(runs);
            }
        }
    }
    print_table(&all);
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "latency_ms": args.latency_ms,
            "mode": backend.mode(),
            "scale": args.scale,
            "cores": cores,
            "goals": {"ratio": GOAL_RATIO, "ratio_100x": GOAL_RATIO_100X,
                "cpu_ms_per_call": GOAL_CPU_MS_PER_CALL, "peak_rss_mb": GOAL_PEAK_MB},
            "repeat": args.repeat,
            "workloads": all,
            "repetitions": repetitions,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Runs one workload in a fresh process of this binary and reads its figures.
fn in_child(workload: Workload, args: &Args, backend: &Backend) -> anyhow::Result<Figures> {
    let exe = std::env::current_exe().context("cannot find this program to run a workload in a fresh process")?;
    let mut cmd = Command::new(exe);
    cmd.arg(workload.name()).arg("--child").arg("--scale").arg(args.scale.to_string()).arg("--latency-ms").arg(args.latency_ms.to_string());
    if let Some(n) = args.threads {
        cmd.arg("--threads").arg(n.to_string());
    }
    if let Backend::Http { server } = backend {
        cmd.arg("--http").arg("--server").arg(server);
    }
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output().context("cannot run the workload's process")?;
    if !out.status.success() {
        bail!("the workload's process failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("the workload's process printed no figures: {text:?}"))
}

/// Runs one workload in this process and measures it.
///
/// With `--http` the test server runs as a child process for the measurement's duration: the
/// guard that holds it is dropped (killing the child and waiting for it) when this function
/// returns, whether it succeeds, fails, or is interrupted (Ctrl-C or SIGTERM end the workload
/// as an error).
fn measure(workload: Workload, scale: f64, latency: Duration, threads: Option<usize>, backend: &Backend) -> anyhow::Result<Figures> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));

    // Registered before the server starts, so a signal from now on is seen, not lost.
    let mut stop = {
        let _context = runtime.enter();
        measure::Stop::install().context("cannot watch for Ctrl-C")?
    };

    let shape = Shape::new(workload, scale);
    let flow = workload.flow(&shape)?;
    let sink = Arc::new(measure::CountingSink::default());
    let server = match backend {
        Backend::Simulated => None,
        Backend::Http { server } => Some(server::ServerChild::start(
            server,
            server::ServerOptions { latency, array_len: workload.array_len(), agent_tools: workload == Workload::Agents },
        )?),
    };
    if let Some(server) = &server {
        eprintln!("weft-bench: {}: test server at {} (pid {})", workload.name(), server.url(), server.pid());
    }
    let llm = match &server {
        None => {
            let model: Arc<dyn ChatModel> =
                Arc::new(SimulatedModel::new(SimulatedOptions { latency, array_len: workload.array_len(), ..SimulatedOptions::default() }));
            Llm::Model(model)
        }
        Some(server) => http_llm(server.url()),
    };
    let (tools, tool_calls) = workload::NativeTools::registry(workload);
    let options = RunOptions { llm, tools, events: Some(sink.clone() as Arc<dyn EventSink>), ..RunOptions::default() };
    let t_plan = Instant::now();
    let plan =
        Plan::new(&flow, options).map_err(|e| anyhow::anyhow!("the {} flow cannot run: {}", workload.name(), e.problems().join("; ")))?;
    let plan_ms = t_plan.elapsed().as_secs_f64() * 1e3;
    let inputs = workload::inputs(workload, &shape);

    let (cpu0, proc0) = (measure::cpu_time(), measure::cpu_time_proc());
    let t0 = Instant::now();
    let runs = runtime.block_on(async {
        tokio::select! {
            runs = workload::execute(&plan, workload, &shape, inputs) => runs,
            signal = stop.wait() => bail!("interrupted ({signal})"),
        }
    })?;
    let wall = t0.elapsed();
    let (cpu1, proc1) = (measure::cpu_time(), measure::cpu_time_proc());
    let peak = measure::peak_rss();
    drop(runtime);

    let counts = sink.counts();
    if counts.responses != shape.calls {
        bail!("{} LLM calls were answered where the workload makes {}", counts.responses, shape.calls);
    }
    if workload == Workload::Agents {
        tool_calls.check(shape.count)?;
    }
    let ideal = shape.ideal(latency);
    let cpu = cpu1.saturating_sub(cpu0);
    let at_model_latency = f64::from(shape.waves() * shape.depth) * counts.mean_latency_ms / 1e3;
    let server_pid = server.as_ref().map(server::ServerChild::pid);
    drop(server);
    Ok(Figures {
        workload,
        shape,
        mode: backend.mode(),
        server_pid,
        latency_ms: latency.as_secs_f64() * 1e3,
        threads,
        plan_ms,
        wall_s: wall.as_secs_f64(),
        ideal_s: ideal.as_secs_f64(),
        ratio: wall.as_secs_f64() / ideal.as_secs_f64(),
        model_latency_ms: counts.mean_latency_ms,
        ratio_at_model_latency: wall.as_secs_f64() / at_model_latency,
        llm_calls: counts.responses,
        runs,
        events: counts.events,
        held_back: counts.held_back,
        reasks: counts.reasks,
        cpu_s: cpu.as_secs_f64(),
        cpu_s_proc_stat: proc0.zip(proc1).map(|(a, b)| b.saturating_sub(a).as_secs_f64()),
        cpu_ms_per_call: cpu.as_secs_f64() * 1e3 / counts.responses.max(1) as f64,
        peak_rss_mb: peak.map(|b| b as f64 / 1e6),
        wall_s_all: Vec::new(),
    })
}

/// The models of `weft run --llm openai-compatible=URL,model=weft-bench`: every LLM config of
/// the flow replaced by the server at `url`, built by the OpenAI provider's `Resolver` with the
/// process-wide limiters (the CLI's default without `--max-in-flight`/`--rps`), the tokio
/// sleeper and no egress restriction, as the CLI builds them.
fn http_llm(url: &str) -> Llm {
    let over =
        ProviderOverride { config_id: None, provider: ApiProvider::OpenAiCompatible, url: url.to_owned(), model: "weft-bench".to_owned() };
    let resolver = Resolver::new(HashMap::new(), vec![over]).with_limiters(Limiters::global());
    Llm::Resolver(Arc::new(resolver.into_fn()))
}

/// The table of figures, on stdout.
fn print_table(all: &[Figures]) {
    println!();
    println!(
        "{:<21} {:<28} {:>6} {:>7} {:>13} {:>7} {:>6} {:>8} {:>7} {:>8} {:>7}  goals",
        "workload", "shape", "calls", "wall s", "(min..max)", "ideal s", "ratio", "model ms", "ratio@m", "CPU ms/c", "peak MB"
    );
    for f in all {
        let misses = f.misses();
        println!(
            "{:<21} {:<28} {:>6} {:>7.3} {:>13} {:>7.3} {:>6.3} {:>8.2} {:>7.3} {:>8.4} {:>7}  {}",
            f.workload.name(),
            f.shape.describe(f.workload),
            f.llm_calls,
            f.wall_s,
            match (f.wall_s_all.first(), f.wall_s_all.last()) {
                (Some(min), Some(max)) if f.wall_s_all.len() > 1 => format!("({min:.3}..{max:.3})"),
                _ => "-".to_owned(),
            },
            f.ideal_s,
            f.ratio,
            f.model_latency_ms,
            f.ratio_at_model_latency,
            f.cpu_ms_per_call,
            f.peak_rss_mb.map_or_else(|| "?".to_owned(), |mb| format!("{mb:.1}")),
            match (f.mode, misses.is_empty()) {
                (Mode::Http, _) => "- (simulated mode's)".to_owned(),
                (Mode::Simulated, true) => "met".to_owned(),
                (Mode::Simulated, false) => format!("missed: {}", misses.join(", ")),
            },
        );
    }
    println!();
    println!(
        "ideal: the critical path of LLM latency (waves of `in flight` x calls in sequence x latency), as if the engine took no time. \
         ratio = wall / ideal; ratio@m = wall / the same path at the measured model latency (model ms). Goals: ratio <= {GOAL_RATIO} \
         ({GOAL_RATIO_100X} at 100x), CPU < {GOAL_CPU_MS_PER_CALL} ms per LLM call, peak RSS < {GOAL_PEAK_MB} MB at the peers' scale."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_runs_small_and_counts_its_calls() {
        for workload in Workload::ALL {
            let figures = measure(workload, 0.02, Duration::ZERO, Some(2), &Backend::Simulated).unwrap();
            let shape = Shape::new(workload, 0.02);
            assert_eq!(figures.llm_calls, shape.calls, "{workload:?}");
            assert_eq!(figures.held_back, 0);
            assert!(figures.events > figures.llm_calls);
            assert!(figures.cpu_s > 0.0 && figures.wall_s > 0.0);
        }
    }

    #[test]
    fn the_command_line_parses() {
        let args = Args::try_parse_from(["weft-bench", "fan-out-100x", "--scale", "0.1", "--repeat", "3"]).unwrap();
        assert_eq!((args.workload, args.repeat), (Which::FanOut100x, 3));
        assert_eq!(Args::try_parse_from(["weft-bench"]).unwrap().workload, Which::All);
        assert!(Args::try_parse_from(["weft-bench", "--scale", "0"]).is_err());
        assert!(Args::try_parse_from(["weft-bench", "--repeat", "0"]).is_err());
    }
}
