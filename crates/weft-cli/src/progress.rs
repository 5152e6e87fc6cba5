//! The one event sink of `weft run` and `weft resume`: it writes each event as a JSON line to
//! `--events FILE.jsonl` and shows progress on stderr from the same events.
//!
//! On a terminal, progress is a spinner with the current node and counts; messages posted by
//! nodes (the conversation) print above it. Elsewhere (logs, CI), plain lines: LLM calls, tool
//! calls, re-asks, messages, input requests and the end, but not one line per cheap node.
//!
//! The sink is called on the run's driver task, so it only formats and writes to buffers.
//!
//! A watcher thread reads the process's limiters ([`Limiters::global`], which `weft` configures
//! from its flags) every second and shows the LLM calls that have waited longer than
//! [`SLOW_CALL`] per endpoint, with how long the endpoint has been down when its breaker says
//! so: `3 calls waiting > 30 s on http://127.0.0.1:9/v1 (down for 41 s)`; in the spinner's
//! status on a terminal, else as a line when the counts change (and every 30 s while they last).

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints progress")]

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value as Json;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use weft_exec::{Event, EventRecord, EventSink, InputRequest, Limiters};
use weft_llm::limit::SlowCalls;

/// LLM calls that have waited longer than this are shown.
pub const SLOW_CALL: Duration = Duration::from_secs(30);

/// How often the watcher reads the limiters.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How often an unchanged line of waiting calls is repeated (plain lines).
const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// Events to a file and progress to stderr.
pub struct Sink {
    file: Mutex<EventsFile>,
    view: View,
    counts: Arc<Mutex<Counts>>,
    watcher: Mutex<Option<Watcher>>,
}

/// The thread showing calls that have waited long; stopped by [`Sink::finish`].
struct Watcher {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<()>,
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
    http_requests: u64,
    /// MCP requests (`mcp_call` events: calls and listings).
    mcp_calls: u64,
    /// Calls held back by the provider-wide limiter, and its cap when it last did.
    held_back: u64,
    cap: usize,
    current: String,
    /// When the current `execute()` began (time waiting for answers is not counted).
    since: Option<Instant>,
    busy: Duration,
    /// The last message shown, so an interactive question does not repeat it.
    last_message: Option<(String, String)>,
    /// Calls waiting long, as the watcher last saw them (empty: none).
    slow: String,
    /// The node whose streamed text is being printed (its line not ended yet).
    streaming: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// A sink writing events to `events` (truncated, or appended to when `append`), with a
    /// spinner when stderr is a terminal.
    pub fn new(events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
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
        Sink::with_view(events, append, view)
    }

    /// A sink for `--stream`: plain lines (no spinner, which would draw over the text as it
    /// comes), streamed text printed as it arrives.
    pub fn streaming(events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
        Sink::with_view(events, append, View::Lines)
    }

    /// A sink that only writes the events file (truncated, or appended to when `append`) and
    /// counts (for batches, which show their own progress); calls waiting long are still shown,
    /// as lines.
    pub fn quiet(events: Option<&Path>, append: bool) -> anyhow::Result<Sink> {
        Sink::with_view(events, append, View::Quiet)
    }

    fn with_view(events: Option<&Path>, append: bool, view: View) -> anyhow::Result<Sink> {
        let writer = match events {
            None => None,
            Some(path) => {
                let file = if append { std::fs::OpenOptions::new().create(true).append(true).open(path) } else { File::create(path) };
                let file = file.map_err(|e| anyhow::anyhow!("cannot open the events file {}: {e}", path.display()))?;
                Some(BufWriter::new(file))
            }
        };
        let counts = Arc::new(Mutex::new(Counts::default()));
        let watcher = watch(&view, &counts);
        Ok(Sink {
            file: Mutex::new(EventsFile { path: events.map(Path::to_path_buf), writer, error: None }),
            view,
            counts,
            watcher: Mutex::new(watcher),
        })
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
        if let Some(watcher) = lock(&self.watcher).take() {
            let _ = watcher.stop.send(());
            let _ = watcher.thread.join();
        }
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
        if let Event::LlmDelta { node, text } = event {
            if !matches!(self.view, View::Quiet) {
                let mut err = std::io::stderr().lock();
                if counts.streaming.as_deref() != Some(node) {
                    if counts.streaming.is_some() {
                        let _ = writeln!(err);
                    }
                    let _ = write!(err, "[{node}] ");
                    counts.streaming = Some(node.clone());
                }
                // Masked piece by piece: a secret split across two pieces is not caught here
                // (the events file and the final outputs are masked whole).
                let _ = write!(err, "{}", crate::scrub::text(text));
                let _ = err.flush();
            }
            return;
        }
        match event {
            Event::RunStarted { .. } => counts.since = Some(Instant::now()),
            Event::NodeStarted { node, .. } => counts.current = node.clone(),
            Event::NodeFinished { .. } => counts.nodes += 1,
            Event::LlmRequest { .. } | Event::LlmDelta { .. } => {}
            Event::ErrorCaught { node, error, branch } => {
                line = Some(format!("[{node}] caught an error, taking branch {branch}: {}", error.message));
            }
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
            Event::HttpRequest { node, method, url, rewritten, status, attempts, duration_ms, error } => {
                counts.http_requests += 1;
                let to = rewritten.as_ref().map(|r| format!(" (sent to {r})")).unwrap_or_default();
                let tries = if *attempts > 1 { format!(", {attempts} attempts") } else { String::new() };
                line = Some(match (status, error) {
                    (Some(status), _) => format!("[{node}] {method} {url}{to}: {status} in {}{tries}", duration(*duration_ms)),
                    (None, Some(e)) => format!("[{node}] {method} {url}{to} failed after {}: {e}", duration(*duration_ms)),
                    (None, None) => format!("[{node}] {method} {url}{to}: no answer"),
                });
            }
            Event::McpCall { node, server, method, tool, attempts, duration_ms, error } => {
                counts.mcp_calls += 1;
                let what = match tool {
                    Some(tool) => format!("MCP tool {tool} on {server}"),
                    None => format!("MCP {method} on {server}"),
                };
                let tries = if *attempts > 1 { format!(", {attempts} attempts") } else { String::new() };
                line = Some(match error {
                    None => format!("[{node}] {what}: {}{tries}", duration(*duration_ms)),
                    Some(e) => format!("[{node}] {what} failed after {}{tries}: {e}", duration(*duration_ms)),
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
                    InputRequest::ClientTools { node, calls } => Some(
                        calls
                            .iter()
                            .map(|c| {
                                format!("[{node}] waits for the result of client tool {} with {}", c.tool, Json::Object(c.args.clone()))
                            })
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                    InputRequest::Confirmation { node, tool, args, .. } => {
                        Some(format!("[{node}] asks to confirm tool {tool} with {}", Json::Object(args.clone())))
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
                if counts.http_requests > 0 {
                    s.push_str(&format!(", {}", plural(counts.http_requests, "HTTP request")));
                }
                if counts.mcp_calls > 0 {
                    s.push_str(&format!(", {}", plural(counts.mcp_calls, "MCP request")));
                }
                line = Some(s);
            }
            // The error itself is printed once, by the command.
            Event::RunFailed { .. } => counts.stop(),
        }
        let status = counts.status();
        // The spinner has its own lock: never take it while holding ours.
        drop(counts);
        if let View::Spinner(bar) = &self.view {
            bar.set_message(crate::scrub::text(&status));
        }
        if let Some(line) = line {
            // A line of streamed text still open ends first.
            if lock(&self.counts).streaming.take().is_some() {
                eprintln!();
            }
            self.line(&line);
        }
    }
}

impl Counts {
    /// The spinner's status line.
    fn status(&self) -> String {
        let mut status = if self.current.is_empty() { "starting".to_owned() } else { self.current.clone() };
        if self.llm_calls > 0 {
            status.push_str(&format!(" · {}", plural(self.llm_calls, "LLM call")));
        }
        if self.tool_calls > 0 {
            status.push_str(&format!(" · {}", plural(self.tool_calls, "tool call")));
        }
        if self.http_requests > 0 {
            status.push_str(&format!(" · {}", plural(self.http_requests, "HTTP request")));
        }
        if self.mcp_calls > 0 {
            status.push_str(&format!(" · {}", plural(self.mcp_calls, "MCP request")));
        }
        if self.held_back > 0 {
            status.push_str(&format!(" · {} held back by the limit of {} in flight", self.held_back, self.cap));
        }
        if !self.slow.is_empty() {
            status.push_str(&format!(" · {}", self.slow));
        }
        status
    }

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

/// The threshold of calls shown as waiting long: [`SLOW_CALL`], or `WEFT_TEST_SLOW_CALL_MS`
/// milliseconds (for the tests).
fn slow_threshold() -> Duration {
    std::env::var("WEFT_TEST_SLOW_CALL_MS").ok().and_then(|ms| ms.parse().ok()).map_or(SLOW_CALL, Duration::from_millis)
}

/// Starts the thread that shows calls waiting long (none when no thread can be started: the
/// view then goes without it).
fn watch(view: &View, counts: &Arc<Mutex<Counts>>) -> Option<Watcher> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let bar = match view {
        View::Spinner(bar) => Some(bar.clone()),
        View::Lines | View::Quiet => None,
    };
    let counts = Arc::clone(counts);
    let threshold = slow_threshold();
    let thread = std::thread::Builder::new()
        .name("weft-progress-watch".to_owned())
        .spawn(move || {
            let mut shown: Vec<(String, usize)> = Vec::new();
            let mut last_line = Instant::now();
            loop {
                match stopped.recv_timeout(WATCH_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let slow = Limiters::global().slow_calls(threshold);
                let text = crate::scrub::text(&slow_text(&slow, threshold));
                match &bar {
                    Some(bar) => {
                        let status = {
                            let mut counts = lock(&counts);
                            counts.slow = text;
                            counts.status()
                        };
                        bar.set_message(crate::scrub::text(&status));
                    }
                    None => {
                        let now: Vec<(String, usize)> = slow.iter().map(|s| (s.endpoint.clone(), s.count)).collect();
                        let repeat = !now.is_empty() && last_line.elapsed() >= REPEAT_EVERY;
                        if now != shown || repeat {
                            if !now.is_empty() {
                                eprintln!("{text}");
                            } else if !shown.is_empty() {
                                eprintln!("no LLM call has waited more than {} now", seconds(threshold));
                            }
                            shown = now;
                            last_line = Instant::now();
                        }
                    }
                }
            }
        })
        .ok()?;
    Some(Watcher { stop, thread })
}

/// `3 calls waiting > 30 s on http://127.0.0.1:9/v1 (down for 41 s); 1 call waiting > 30 s on ...`
/// (empty when no call waits long).
fn slow_text(slow: &[SlowCalls], threshold: Duration) -> String {
    slow.iter()
        .map(|s| {
            let calls = if s.count == 1 { "1 call".to_owned() } else { format!("{} calls", s.count) };
            let down = s.down_for.map(|d| format!(" (down for {})", seconds(d))).unwrap_or_default();
            format!("{calls} waiting > {} on {}{down}", seconds(threshold), s.endpoint)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `30 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 || s >= 10.0 { format!("{s:.0} s") } else { format!("{s:.1} s") }
}

/// `12 ms`, `1.5 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 { format!("{} ms", ms.round() as u64) } else { format!("{:.1} s", ms / 1000.0) }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_calls_are_counted_per_endpoint_with_the_outage() {
        let slow = vec![
            SlowCalls { endpoint: "http://127.0.0.1:9/v1".into(), count: 3, down_for: Some(Duration::from_millis(41_400)) },
            SlowCalls { endpoint: "http://h/v1".into(), count: 1, down_for: None },
        ];
        assert_eq!(
            slow_text(&slow, SLOW_CALL),
            "3 calls waiting > 30 s on http://127.0.0.1:9/v1 (down for 41 s); 1 call waiting > 30 s on http://h/v1"
        );
        assert_eq!(slow_text(&[], SLOW_CALL), "");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
