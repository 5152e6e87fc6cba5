//! The `weft` command line: validate, draw, export and run Open Agent Spec flows.
//!
//! Exit codes, for every command (a stable contract):
//!
//! - 0: the flow is valid (`validate`, `graph`, `export`) or the run finished (`run`, `resume`);
//! - 1: the flow is invalid, cannot run (unsupported nodes, unbound tools, bad inputs), or the
//!   run failed;
//! - 2: usage or IO error (bad arguments, unreadable files, a bad tools or state file);
//! - 3: the run waits for input (`run`, `resume`): its state was written to a file and
//!   `weft resume STATE --answer ...` continues it;
//! - 1 also when weft panicked (a bug): the message asks for a bug report, and a run's state is
//!   stored (see `crash.rs`).
//!
//! Diagnostics, progress and messages go to stderr. On stdout: with `--format json`, `validate`
//! prints one JSON line per file; `graph` the chart; `export` the document; `run` and `resume`
//! the outputs of a finished run as one JSON object; nothing else.

mod batch;
mod checkpoint;
mod crash;
mod flags;
mod input;
mod interrupt;
mod llm_choice;
mod lock;
mod observe;
mod paths;
mod progress;
mod report;
mod run;
mod scrub;
mod secrets;
mod state_file;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use weft_flow::export::{ExportOptions, export};
use weft_flow::graph::{GraphOptions, mermaid};
use weft_spec::{Format, Version};

/// Run, check, draw and export LLM agent workflows written in Open Agent Spec.
#[derive(Parser, Debug)]
#[command(name = "weft", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check flow files and report every problem at once.
    Validate(ValidateArgs),
    /// Draw a flow as a Mermaid flowchart.
    Graph(GraphArgs),
    /// Write the canonical Agent Spec document (self-contained, secrets as references).
    Export(ExportArgs),
    /// Run a flow: outputs as JSON on stdout; exits 3 with a state file when it waits for input.
    Run(Box<run::RunArgs>),
    /// Continue a run or a batch that stopped (waiting for input, interrupted, failed), from the
    /// state file `weft run` wrote.
    Resume(Box<run::ResumeArgs>),
}

/// Options every command that loads a flow takes.
#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// A registry of disaggregated components (`{"$referenced_components": {...}}`); repeatable.
    #[arg(long = "refs", value_name = "FILE")]
    refs: Vec<PathBuf>,
    /// A sensitive value, as `<component id>.<field>=<value>`; repeatable. Values can also come
    /// from `WEFT_SECRET_<ID>_<FIELD>` (uppercased, non-alphanumerics as `_`); --secret wins.
    #[arg(long = "secret", value_name = "ID.FIELD=VALUE")]
    secrets: Vec<String>,
    /// Treat warnings as errors.
    #[arg(long)]
    strict: bool,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Flow files (JSON or YAML).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// `human` diagnostics on stderr, or `json`: one line per file on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    format: ReportFormat,
}

#[derive(Args, Debug)]
struct GraphArgs {
    /// The flow file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
    /// Also draw data edges (dotted, `output → input`).
    #[arg(long)]
    data: bool,
    /// Expand FlowNode subflows as subgraphs.
    #[arg(long)]
    expand: bool,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The flow file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    load: LoadArgs,
    /// Output syntax.
    #[arg(long, value_enum, default_value_t = DocFormat::Json)]
    format: DocFormat,
    /// The agentspec_version to write (default: the document's, or the minimum it needs).
    #[arg(long, value_name = "VERSION")]
    agentspec_version: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ReportFormat {
    Human,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DocFormat {
    Json,
    Yaml,
}

/// How a command ended, mapped to the exit-code contract.
enum Outcome {
    /// Valid, or the run finished.
    Valid,
    /// Invalid, or the run could not start or failed (already reported).
    Invalid,
    /// Some input could not be read (already reported); the others were processed.
    IoError,
    /// The run waits for input; its state is stored (already reported).
    Waiting,
    /// Interrupted (Ctrl-C, SIGTERM, SIGHUP); the state is stored (already reported).
    Interrupted,
}

fn main() -> ExitCode {
    crash::install();
    // The command runs on a thread of its own (with the main thread's usual 8 MiB stack): a
    // panic that unwinds out of it, after the hook printed the bug report message and a run's
    // state was stored, ends here as exit 1.
    let command = std::thread::Builder::new().name("weft".to_owned()).stack_size(8 << 20).spawn(command);
    match command.map(std::thread::JoinHandle::join) {
        Ok(Ok(_)) if crash::panicked() => ExitCode::from(1),
        Ok(Ok(code)) => code,
        Ok(Err(_)) => ExitCode::from(1),
        Err(e) => {
            report::error_line(&format!("cannot start a thread: {e}"));
            ExitCode::from(2)
        }
    }
}

fn command() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Every secret known is masked from everything written, from here on.
    scrub::add(&secrets::from_environment());
    let result = match cli.command {
        Command::Validate(args) => validate(args),
        Command::Graph(args) => graph(args),
        Command::Export(args) => export_cmd(args),
        Command::Run(args) => run::run(*args),
        Command::Resume(args) => run::resume(*args),
    };
    match result {
        Ok(Outcome::Valid) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Ok(Outcome::IoError) => ExitCode::from(2),
        Ok(Outcome::Waiting) => ExitCode::from(3),
        Ok(Outcome::Interrupted) => ExitCode::from(interrupt::exit_code()),
        Err(e) => {
            report::error_line(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<Outcome> {
    scrub::add(&secrets::from_args(&args.load.secrets));
    let options = input::load_options(&args.load)?;
    let mut all_valid = true;
    let mut io_error = false;
    let stdout = std::io::stdout();
    for file in &args.files {
        let source = match input::read_source(file) {
            Ok(s) => s,
            Err(e) => {
                // Report it and go on with the other files; the exit code says 2.
                report::error_line(&format!("{e:#}"));
                io_error = true;
                continue;
            }
        };
        let (flow, diags) = match source {
            Ok(source) => {
                let (flow, diags) = weft_flow::check_source(&source, &options);
                (flow.filter(|_| !diags.has_errors()), diags)
            }
            Err(d) => (None, weft_spec::Diagnostics(vec![d])),
        };
        if let Some(flow) = &flow {
            scrub::add(&secrets::from_flow(flow));
        }
        let valid = flow.is_some() && !diags.has_errors();
        all_valid &= valid;
        match args.format {
            ReportFormat::Human => report::human(&file.display().to_string(), &diags, valid),
            ReportFormat::Json => {
                let line = scrub::data_text(&report::json_line(&file.display().to_string(), valid, &diags));
                let mut out = stdout.lock();
                writeln!(out, "{line}").context("writing to stdout")?;
            }
        }
    }
    Ok(if io_error {
        Outcome::IoError
    } else if all_valid {
        Outcome::Valid
    } else {
        Outcome::Invalid
    })
}

/// Loads one file for graph/export: the flow, or the diagnostics already printed.
fn load_one(file: &std::path::Path, load: &LoadArgs) -> anyhow::Result<Option<weft_flow::Flow>> {
    scrub::add(&secrets::from_args(&load.secrets));
    let options = input::load_options(load)?;
    let source = match input::read_source(file)? {
        Ok(s) => s,
        Err(d) => {
            report::human(&file.display().to_string(), &weft_spec::Diagnostics(vec![d]), false);
            return Ok(None);
        }
    };
    let (flow, diags) = weft_flow::check_source(&source, &options);
    if let Some(flow) = &flow {
        scrub::add(&secrets::from_flow(flow));
    }
    let valid = flow.is_some() && !diags.has_errors();
    if !valid || !diags.is_empty() {
        report::human(&file.display().to_string(), &diags, valid);
    }
    Ok(flow.filter(|_| valid))
}

fn graph(args: GraphArgs) -> anyhow::Result<Outcome> {
    let Some(flow) = load_one(&args.file, &args.load)? else { return Ok(Outcome::Invalid) };
    let chart = scrub::data_text(&mermaid(&flow, GraphOptions { data: args.data, expand: args.expand }));
    let mut out = std::io::stdout().lock();
    out.write_all(chart.as_bytes()).context("writing to stdout")?;
    Ok(Outcome::Valid)
}

fn export_cmd(args: ExportArgs) -> anyhow::Result<Outcome> {
    let version = match &args.agentspec_version {
        None => None,
        Some(v) => Some(Version::parse(v).with_context(|| {
            let known: Vec<String> = Version::KNOWN.iter().map(ToString::to_string).collect();
            format!("unknown --agentspec-version \"{v}\"; use one of {}", known.join(", "))
        })?),
    };
    let Some(flow) = load_one(&args.file, &args.load)? else { return Ok(Outcome::Invalid) };
    let format = match args.format {
        DocFormat::Json => Format::Json,
        DocFormat::Yaml => Format::Yaml,
    };
    // A key written into the document is not printed either.
    let text = scrub::data_text(&export(&flow, &ExportOptions { format, version })?);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing to stdout")?;
    Ok(Outcome::Valid)
}
