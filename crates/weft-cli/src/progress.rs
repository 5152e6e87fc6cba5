//! The one event sink of `weft run` and `weft resume`: it writes each event as a JSON line to
//! `--events FILE.jsonl` and shows progress on stderr from the same events.
//!
//! On a terminal, progress is a spinner with the current node and counts; messages posted by
//! nodes (the conversation) print above it. Elsewhere (logs, CI), plain lines: LLM calls, tool
//! calls, re-asks, messages, input requests and the end, but not one line per cheap node.
//!
//! The sink is called on the run's driver task, so it only formats and writes to buffers.

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints progress")]

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value as Json;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use weft_exec::{Event, EventRecord, EventSink, InputRequest};

/// Events to a file and progress to stderr.
pub struct Sink {
    file: Mutex<EventsFile>,
    view: View,
    counts: Mutex<Counts>,
}

struct EventsFile {
    path: Option<PathBuf>,
    writer: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
}

enum View {
    /// A spinner on a terminal.
    Spinner(ProgressBar),
    /// Plain lines.
    Lines,
    /// Nothing (a batch shows its own progress bar from the counts).
    Quiet,
}

#[derive(Default)]
struct Counts {
    nodes: u64,
    llm_calls: u64,
    tool_calls: u64,
    /// Calls held back by the provider-wide limiter, and its cap when it last did.
    held_back: u64,
    cap: usize,
    current: String,
    /// When the current `execute()` began (time waiting for answers is not counted).
    since: Option<Instant>,
    busy: Duration,
    /// The last message shown, so an interactive question does not repeat it.
    last_message: Option<(String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// A sink writing events to `events` (truncated, or appended to when `append`), with a
    /// spinner when stderr is a terminal.
    pub fn new(events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
        let writer = match events {
            None => None,
            Some(path) => {
                let file = if append { std::fs::OpenOptions::new().create(true).append(true).open(path) } else { File::create(path) };
                let file = file.map_err(|e| anyhow::anyhow!("cannot open the events file {}: {e}", path.display()))?;
                Some(BufWriter::new(file))
            }
        };
        let view = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(100));
            View::Spinner(bar)
        } else {
            View::Lines
        };
        Ok(Sink {
            file: Mutex::new(EventsFile { path: events.map(Path::to_path_buf), writer, error: None }),
            view,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A sink that only writes the events file (truncated, or appended to when `append`) and
    /// counts (for batches, which show their own progress).
    pub fn quiet(events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
        let mut sink = Sink::new(events, append)?;
        if let View::Spinner(bar) = &sink.view {
            bar.finish_and_clear();
        }
        sink.view = View::Quiet;
        Ok(sink)
    }

    /// LLM calls held back by the provider-wide limiter so far, and its cap when it last did.
    pub fn held_back(&self) -> (u64, usize) {
        let counts = lock(&self.counts);
        (counts.held_back, counts.cap)
    }

    /// Runs `f` (an interactive question) with the spinner out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.view {
            View::Spinner(bar) => bar.suspend(f),
            View::Lines | View::Quiet => f(),
        }
    }

    /// Whether the last message shown is this one (so a question need not repeat it).
    pub fn just_showed(&self, node: &str, text: &str) -> bool {
        lock(&self.counts).last_message.as_ref().is_some_and(|(n, t)| n == node && t == text)
    }

    /// Clears the spinner and flushes the events file; reports a write failure as a warning.
    /// Called on every way out of a run.
    pub fn finish(&self) {
        if let View::Spinner(bar) = &self.view {
            bar.finish_and_clear();
        }
        let mut file = lock(&self.file);
        if let Some(mut w) = file.writer.take()
            && let Err(e) = w.flush()
        {
            file.error.get_or_insert(e);
        }
        if let Some(e) = file.error.take() {
            let path = file.path.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
            eprintln!("warning: cannot write the events file {path}: {e}");
        }
    }

    fn write_event(&self, record: &EventRecord<'_>) {
        let mut file = lock(&self.file);
        let EventsFile { writer, error, .. } = &mut *file;
        let Some(w) = writer else { return };
        let result = crate::scrub::to_json(record)
            .and_then(|value| serde_json::to_writer(&mut *w, &value))
            .map_err(std::io::Error::from)
            .and_then(|()| w.write_all(b"\n"));
        if let Err(e) = result {
            // Stop writing after the first failure; `finish` reports it.
            error.get_or_insert(e);
            *writer = None;
        }
    }

    /// A line above the spinner, or a plain line.
    fn line(&self, text: &str) {
        let text = crate::scrub::text(text);
        let text = text.as_str();
        match &self.view {
            View::Spinner(bar) => bar.println(text),
            View::Lines => eprintln!("{text}"),
            View::Quiet => {}
        }
    }

    fn show(&self, event: &Event) {
        let mut counts = lock(&self.counts);
        let mut line = None;
        match event {
            Event::RunStarted { .. } => counts.since = Some(Instant::now()),
            Event::NodeStarted { node, .. } => counts.current = node.clone(),
            Event::NodeFinished { .. } => counts.nodes += 1,
            Event::LlmRequest { .. } => {}
            Event::LlmHeldBack { endpoint, cap, .. } => {
                counts.held_back += 1;
                counts.cap = *cap;
                if counts.held_back == 1 {
                    line = Some(format!("LLM calls to {endpoint} are held back: {cap} in flight is its limit"));
                }
            }
            Event::LlmResponse { node, usage, duration_ms } => {
                counts.llm_calls += 1;
                line = Some(format!(
                    "[{node}] LLM call: {} ({} tokens in, {} out)",
                    duration(*duration_ms),
                    usage.input_tokens,
                    usage.output_tokens
                ));
            }
            Event::LlmReask { node, reason } => line = Some(format!("[{node}] the answer does not fit, asking again: {reason}")),
            Event::ToolCall { node, tool, duration_ms, error } => {
                counts.tool_calls += 1;
                line = Some(match error {
                    None => format!("[{node}] tool {tool}: {}", duration(*duration_ms)),
                    Some(e) => format!("[{node}] tool {tool} failed after {}: {e}", duration(*duration_ms)),
                });
            }
            Event::Message { node, message_type, content } => {
                counts.last_message = Some((node.clone(), content.clone()));
                line = Some(format!("[{node}] {message_type}: {content}"));
            }
            Event::InputRequested { request, .. } => {
                counts.stop();
                line = match &**request {
                    // The question itself was posted as a message just before.
                    InputRequest::Message { message: Some(_), .. } => None,
                    InputRequest::Message { node, message: None } => Some(format!("[{node}] waits for a message")),
                    InputRequest::Tool { node, tool, args, .. } => {
                        Some(format!("[{node}] waits for the result of client tool {tool} with {}", Json::Object(args.clone())))
                    }
                };
            }
            Event::RunFinished { .. } => {
                counts.stop();
                let mut s = format!("finished in {}: {}", duration(counts.busy.as_secs_f64() * 1000.0), plural(counts.nodes, "node"));
                if counts.llm_calls > 0 {
                    s.push_str(&format!(", {}", plural(counts.llm_calls, "LLM call")));
                }
                if counts.tool_calls > 0 {
                    s.push_str(&format!(", {}", plural(counts.tool_calls, "tool call")));
                }
                line = Some(s);
            }
            // The error itself is printed once, by the command.
            Event::RunFailed { .. } => counts.stop(),
        }
        let mut status = if counts.current.is_empty() { "starting".to_owned() } else { counts.current.clone() };
        if counts.llm_calls > 0 {
            status.push_str(&format!(" · {}", plural(counts.llm_calls, "LLM call")));
        }
        if counts.tool_calls > 0 {
            status.push_str(&format!(" · {}", plural(counts.tool_calls, "tool call")));
        }
        if counts.held_back > 0 {
            status.push_str(&format!(" · {} held back by the limit of {} in flight", counts.held_back, counts.cap));
        }
        // The spinner has its own lock: never take it while holding ours.
        drop(counts);
        if let View::Spinner(bar) = &self.view {
            bar.set_message(crate::scrub::text(&status));
        }
        if let Some(line) = line {
            self.line(&line);
        }
    }
}

impl Counts {
    fn stop(&mut self) {
        if let Some(t) = self.since.take() {
            self.busy += t.elapsed();
        }
    }
}

impl EventSink for Sink {
    fn emit(&self, record: &EventRecord<'_>) {
        self.write_event(record);
        let event = record.event;
        match (&self.view, event) {
            (View::Quiet, Event::LlmHeldBack { cap, .. }) => {
                let mut counts = lock(&self.counts);
                counts.held_back += 1;
                counts.cap = *cap;
            }
            (View::Quiet, _) => {}
            _ => self.show(event),
        }
    }
}

/// `12 ms`, `1.5 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 { format!("{} ms", ms.round() as u64) } else { format!("{:.1} s", ms / 1000.0) }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
