//! `weft run` and `weft resume`: run a flow to its end, answering input requests from
//! `--answer`, from the terminal, or by storing the run and exiting 3.

#![allow(clippy::print_stderr, clippy::print_stdout, reason = "the CLI is the one crate that prints")]

use crate::progress::Sink;
use crate::state_file::{self, STATE_FILE_FORMAT, StateFile, StoredOptions};
use crate::{LoadArgs, Outcome, report};
use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value as Json};
use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_exec::{DEFAULT_MAX_REASKS, DEFAULT_MAX_STEPS, EventSink, InputRequest, Llm, Plan, Run, RunOptions, Status};
use weft_llm::choice::LlmChoice;
use weft_llm::simulated::SimulatedModel;
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
    /// Steps allowed per execution path (stops loops that never exit).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STEPS)]
    max_steps: u64,
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
    state_file: PathBuf,
    #[command(flatten)]
    session: SessionArgs,
    /// A sensitive value, as `<component id>.<field>=<value>`; repeatable (secrets are never
    /// stored in state files). `WEFT_SECRET_<ID>_<FIELD>` works too.
    #[arg(long = "secret", value_name = "ID.FIELD=VALUE")]
    secrets: Vec<String>,
}

/// Options shared by `run` and `resume`.
#[derive(Args, Debug)]
struct SessionArgs {
    /// The answer to the next input request (a message's text, or a client tool's JSON
    /// result); repeatable, used in order.
    #[arg(long = "answer", value_name = "TEXT")]
    answers: Vec<String>,
    /// Where to write the run state when the run waits for input (default for `run`:
    /// `<flow file stem>.state.json` in the current folder; for `resume`: the state file read).
    #[arg(long = "state", value_name = "FILE")]
    state: Option<PathBuf>,
    /// Write every event as a JSON line to this file (`run` truncates it; `resume` appends,
    /// by default to the file the run started with).
    #[arg(long = "events", value_name = "FILE.jsonl")]
    events: Option<PathBuf>,
}

/// What a run needs to write its state file.
struct Stored {
    flow: PathBuf,
    flow_hash: String,
    options: StoredOptions,
    state_path: PathBuf,
    /// Whether secrets were given: the resume command must give them again.
    had_secrets: bool,
}

/// `weft run`.
pub fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    // Usage problems first (exit 2), before the flow is even read.
    let llm = parse_llm(&args.llm)?;
    let overrides = parse_input_args(&args.input)?;
    let mut inputs = match &args.inputs {
        Some(path) => read_inputs_file(path)?,
        None => Map::new(),
    };
    let tools_path = args.tools.as_deref().map(absolute).transpose()?;
    let tools = load_tools(tools_path.as_deref())?;
    let model = llm_for(&llm)?;
    let Some(flow) = crate::load_one(&args.file, &args.load)? else { return Ok(Outcome::Invalid) };

    let events_path = args.session.events.as_deref().map(absolute).transpose()?;
    let sink = Arc::new(Sink::new(events_path.as_deref(), false)?);
    let max_steps = args.max_steps;
    let options = RunOptions {
        llm: model,
        tools,
        max_steps,
        max_reasks: DEFAULT_MAX_REASKS,
        events: Some(sink.clone() as Arc<dyn EventSink>),
        ..RunOptions::default()
    };
    let Some(plan) = compile(&flow, options, &sink) else { return Ok(Outcome::Invalid) };
    for (name, value) in overrides {
        let declared_string = plan.inputs().iter().any(|p| p.title() == name && p.schema.get("type") == Some(&Json::from("string")));
        let value = if declared_string { Json::String(value) } else { serde_json::from_str(&value).unwrap_or(Json::String(value)) };
        inputs.insert(name, value);
    }
    let run = match plan.start(inputs) {
        Ok(r) => r,
        Err(e) => {
            sink.finish();
            e.problems.iter().for_each(|p| report::error_line(p));
            return Ok(Outcome::Invalid);
        }
    };
    let stored = Stored {
        flow: absolute(&args.file)?,
        flow_hash: plan.flow_hash().to_owned(),
        options: StoredOptions {
            llm: llm.to_string(),
            tools: tools_path,
            max_steps,
            events: events_path,
            refs: args.load.refs.iter().map(|p| absolute(p)).collect::<anyhow::Result<_>>()?,
        },
        state_path: args.session.state.clone().unwrap_or_else(|| default_state_path(&args.file)),
        had_secrets: !args.load.secrets.is_empty(),
    };
    drive(run, args.session.answers.into(), &sink, &stored)
}

/// `weft resume`.
pub fn resume(args: ResumeArgs) -> anyhow::Result<Outcome> {
    let file = state_file::read(&args.state_file)?;
    let in_file = || format!("in the state file {}", args.state_file.display());
    let llm = parse_llm(&file.options.llm).with_context(in_file)?;
    let tools = load_tools(file.options.tools.as_deref()).with_context(in_file)?;
    let model = llm_for(&llm).with_context(in_file)?;
    let load = LoadArgs { refs: file.options.refs.clone(), secrets: args.secrets.clone(), strict: false };
    let Some(flow) = crate::load_one(&file.flow, &load)? else { return Ok(Outcome::Invalid) };

    // `--events` redirects the events; either way a resumed run appends.
    let events_path = match &args.session.events {
        Some(p) => Some(absolute(p)?),
        None => file.options.events.clone(),
    };
    let sink = Arc::new(Sink::new(events_path.as_deref(), true)?);
    let options = StoredOptions { events: events_path, ..file.options.clone() };
    let run_options = RunOptions {
        llm: model,
        tools,
        max_steps: options.max_steps,
        max_reasks: DEFAULT_MAX_REASKS,
        events: Some(sink.clone() as Arc<dyn EventSink>),
        ..RunOptions::default()
    };
    let Some(plan) = compile(&flow, run_options, &sink) else { return Ok(Outcome::Invalid) };
    let run = match plan.resume(file.state) {
        Ok(r) => r,
        Err(e) => {
            sink.finish();
            report::error_line(&format!("cannot resume {}: {e}", args.state_file.display()));
            return Ok(Outcome::Invalid);
        }
    };
    let stored = Stored {
        flow: file.flow,
        flow_hash: plan.flow_hash().to_owned(),
        options,
        state_path: args.session.state.clone().unwrap_or_else(|| args.state_file.clone()),
        had_secrets: !args.secrets.is_empty(),
    };
    drive(run, args.session.answers.into(), &sink, &stored)
}

/// Executes until the run finishes, fails, or waits for an answer nobody gives.
fn drive(mut run: Run, mut answers: VecDeque<String>, sink: &Sink, stored: &Stored) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let mut interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // A resumed run waits already: answer before executing again.
    let mut waiting = run.pending().values().next().cloned();
    loop {
        let status = match waiting.take() {
            Some(request) => Ok(Status::InputRequired { request }),
            None => runtime.block_on(run.execute()),
        };
        let request = match status {
            Ok(Status::Finished { outputs, .. }) => {
                sink.finish();
                if !answers.is_empty() {
                    eprintln!("warning: {} unused --answer value(s) ignored", answers.len());
                }
                let mut text = serde_json::to_string_pretty(&Json::Object(outputs)).context("serializing the outputs")?;
                text.push('\n');
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("writing to stdout")?;
                return Ok(Outcome::Valid);
            }
            Err(e) => {
                sink.finish();
                report::error_line(&e.message);
                // Keep the failed run inspectable: what ran, the values produced, the calls.
                if store(&run, stored).is_ok() {
                    eprintln!("the failed run's state (values produced, calls made, the error) is in {}", stored.state_path.display());
                }
                return Ok(Outcome::Invalid);
            }
            Ok(Status::InputRequired { request }) => request,
        };
        let from_terminal = answers.is_empty() && interactive;
        let answer = match answers.pop_front() {
            Some(a) => Some(a),
            None if interactive => {
                let shown = matches!(&request, InputRequest::Message { node, message: Some(m) } if sink.just_showed(node, m));
                let a = sink.suspend(|| ask(&request, shown));
                interactive = a.is_some();
                a
            }
            None => None,
        };
        let Some(text) = answer else {
            return wait(&run, &request, sink, stored, None);
        };
        if let Err(e) = run.submit(answer_value(&request, text)) {
            if from_terminal {
                // Ask again: `execute` returns the same request.
                sink.suspend(|| eprintln!("error: {e}; try again"));
                continue;
            }
            return wait(&run, &request, sink, stored, Some(&e.to_string()));
        }
    }
}

/// Stores the waiting run and says how to continue it: exit 3, or 2 when an `--answer` was
/// refused (`refused` holds why).
fn wait(run: &Run, request: &InputRequest, sink: &Sink, stored: &Stored, refused: Option<&str>) -> anyhow::Result<Outcome> {
    sink.finish();
    store(run, stored)?;
    if let Some(why) = refused {
        report::error_line(&format!("the answer for node \"{}\" was refused: {why}", request.node()));
    }
    let (what, placeholder) = describe(request);
    let state = shell_quote(&stored.state_path.display().to_string());
    let mut s = format!("waiting for input: {what}\nrun state written to {}\n", stored.state_path.display());
    s.push_str(&format!("continue with: weft resume {state} --answer {placeholder}"));
    if stored.had_secrets {
        s.push_str(" --secret ...  (secrets are not stored: give them again)");
    }
    eprintln!("{s}");
    Ok(if refused.is_some() { Outcome::IoError } else { Outcome::Waiting })
}

/// Writes the run's state file (the flow's path and hash, the non-secret options, the state).
fn store(run: &Run, stored: &Stored) -> anyhow::Result<()> {
    let file = StateFile {
        weft_state: STATE_FILE_FORMAT,
        flow: stored.flow.clone(),
        flow_hash: stored.flow_hash.clone(),
        options: stored.options.clone(),
        state: run.state().clone(),
    };
    state_file::write(&stored.state_path, &file)
}

/// Compiles the flow for running, or prints every problem that stops it (exit 1).
fn compile(flow: &weft_flow::Flow, options: RunOptions, sink: &Sink) -> Option<Arc<Plan>> {
    match Plan::new(flow, options) {
        Ok(plan) => Some(plan),
        Err(e) => {
            sink.finish();
            e.problems.iter().for_each(|p| report::error_line(p));
            None
        }
    }
}

/// What a request asks for, and a placeholder for the answer in the resume command.
fn describe(request: &InputRequest) -> (String, &'static str) {
    match request {
        InputRequest::Message { node, message: Some(m) } => (format!("node \"{node}\" asks: {m}"), "'<your answer>'"),
        InputRequest::Message { node, message: None } => (format!("node \"{node}\" waits for a message"), "'<your answer>'"),
        InputRequest::Tool { node, tool, args, outputs, .. } => (
            format!(
                "node \"{node}\" waits for the result of client tool \"{tool}\" called with {}; answer with {}",
                Json::Object(args.clone()),
                expected_outputs(outputs)
            ),
            "'<JSON result>'",
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
            Some(m) => eprintln!("[{node}] {m}"),
            None => eprintln!("[{node}] waits for a message"),
        },
        InputRequest::Tool { node, tool, args, outputs, .. } => {
            eprintln!("[{node}] client tool \"{tool}\" called with {}", Json::Object(args.clone()));
            eprintln!("answer with {}", expected_outputs(outputs));
        }
    }
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

/// A message answer is text; a client tool's is JSON, or a JSON string when it does not parse.
fn answer_value(request: &InputRequest, text: String) -> Json {
    match request {
        InputRequest::Message { .. } => Json::String(text),
        InputRequest::Tool { .. } => serde_json::from_str(&text).unwrap_or(Json::String(text)),
    }
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

fn llm_for(choice: &LlmChoice) -> anyhow::Result<Llm> {
    match choice {
        LlmChoice::Flow => Ok(Llm::Flow),
        LlmChoice::Simulated(spec) => Ok(Llm::Model(Arc::new(SimulatedModel::new(spec.into_options(None)?)))),
        LlmChoice::Provider(p) => anyhow::bail!(
            "--llm {p}: calling LLM providers is not supported yet in this release; use --llm simulated to run offline with the built-in simulated model"
        ),
    }
}

fn load_tools(path: Option<&Path>) -> anyhow::Result<ToolRegistry> {
    match path {
        None => Ok(ToolRegistry::new()),
        Some(path) => Ok(ToolsFile::load(path)?.registry()),
    }
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
            kind(&other)
        ),
        Err(e) => anyhow::bail!("the inputs file {} is not valid JSON ({e}): write {{\"<input title>\": <value>, ...}}", path.display()),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// `<flow file stem>.state.json` in the current folder.
fn default_state_path(flow: &Path) -> PathBuf {
    let stem = flow.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "flow".to_owned());
    PathBuf::from(format!("{stem}.state.json"))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
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
