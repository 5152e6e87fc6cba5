//! `weft run FLOW --batch inputs.jsonl`: one run per line, N at a time, results on stdout in
//! input order, a progress bar on stderr (done, failed, in flight, rate, ETA); and `weft resume
//! BATCH_STATE`, which runs what an interrupted batch left.
//!
//! A batch has a state file (`--state`, default `<flow file stem>.batch.json`): the lines
//! printed, the results finished but not printed yet (input order held them back), and the
//! state of each run going. It is written by a thread of its own after every printed line and
//! at every checkpoint, and when the batch stops (Ctrl-C, SIGTERM, SIGHUP); a batch that prints
//! every line removes the state file it created (or marks a resumed one finished). The outputs of
//! the first command and of `weft resume` together hold every line once, each in input order.

#![allow(clippy::print_stderr, clippy::print_stdout, reason = "the CLI is the one crate that prints")]

use crate::Outcome;
use crate::checkpoint::{Slot, Writer};
use crate::lock::StateLock;
use crate::observe::Observer;
use crate::progress::Sink;
use crate::run::{Overrides, ResumeArgs, Setup};
use crate::state_file::{self, BatchStateFile, ResumeOptions};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use weft_exec::batch::{BatchEvent, BatchInput, BatchProgress, BatchResult, LineStart, run_batch};
use weft_exec::checkpoint::{CheckpointPolicy, CheckpointStore, Checkpoints};
use weft_exec::persist::{BatchSource, content_sha256};
use weft_exec::{Plan, RunState};

/// The lines of a batch file, read once: each line's 1-based number and its inputs (or why it
/// is not inputs), and the file's identity.
pub struct BatchFile {
    /// The file, its hash and its number of lines of inputs.
    pub source: BatchSource,
    lines: Vec<(usize, LineInputs)>,
}

/// A line's inputs, or why it is not inputs.
type LineInputs = Result<Map<String, Json>, String>;

/// Reads a JSON-lines file: each non-blank line a JSON object of inputs. A line that is not
/// one becomes that input's error (the others still run).
pub fn read(path: &Path) -> anyhow::Result<BatchFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the batch file {}", path.display()))?;
    let sha256 = content_sha256(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        anyhow::anyhow!("the batch file {} line {line} is not UTF-8 text: save the file as UTF-8", path.display())
    })?;
    // A UTF-8 byte order mark, as some editors and Windows tools write.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{} line {}", path.display(), n + 1);
        let inputs = match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(m)) => Ok(m),
            Ok(_) => Err(format!("{at}: not a JSON object of inputs; write one object per line, e.g. {{\"question\": \"...\"}}")),
            Err(e) => Err(format!("{at}: not valid JSON ({e}); write one JSON object of inputs per line")),
        };
        lines.push((n + 1, inputs));
    }
    if lines.is_empty() {
        anyhow::bail!("the batch file {} has no inputs: write one JSON object of inputs per line", path.display());
    }
    let file = std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))?;
    Ok(BatchFile { source: BatchSource { file, sha256, lines: lines.len() }, lines })
}

impl BatchFile {
    /// The batch's work: `base` inputs under every line's own, minus what `book` says was
    /// printed; held results and stopped runs as the book has them.
    fn inputs(self, base: &Map<String, Json>, message: Option<&String>, book: &Book) -> Vec<BatchInput> {
        let mut out = Vec::new();
        for (index, (line, inputs)) in self.lines.into_iter().enumerate() {
            if book.is_printed(index) {
                continue;
            }
            let start = if let Some(result) = book.held.get(&index) {
                LineStart::Done(Box::new(BatchResult::clone(result)))
            } else if let Some(state) = book.runs.get(&index) {
                LineStart::Resume(Box::new(RunState::clone(state)))
            } else {
                match inputs {
                    Ok(own) => {
                        let mut all = base.clone();
                        all.extend(own);
                        LineStart::Inputs(all)
                    }
                    Err(e) => LineStart::Bad(e),
                }
            };
            out.push(BatchInput { index, line, start, message: message.cloned() });
        }
        out
    }
}

/// Where a batch stands: what a batch state file holds besides the batch's identity.
#[derive(Debug, Clone, Default)]
struct Book {
    /// Printed indexes, as sorted, disjoint `[start, end)` ranges.
    printed: Vec<[usize; 2]>,
    held: BTreeMap<usize, Arc<BatchResult>>,
    runs: BTreeMap<usize, Arc<RunState>>,
}

impl Book {
    fn is_printed(&self, index: usize) -> bool {
        let at = self.printed.partition_point(|r| r[1] <= index);
        self.printed.get(at).is_some_and(|r| r[0] <= index)
    }

    fn mark_printed(&mut self, index: usize) {
        self.held.remove(&index);
        self.runs.remove(&index);
        if self.is_printed(index) {
            return;
        }
        let at = self.printed.partition_point(|r| r[1] < index);
        let joins_left = at < self.printed.len() && self.printed[at][1] == index;
        let right = if joins_left { at + 1 } else { at };
        let joins_right = right < self.printed.len() && self.printed[right][0] == index + 1;
        match (joins_left, joins_right) {
            (true, true) => {
                self.printed[at][1] = self.printed[right][1];
                self.printed.remove(right);
            }
            (true, false) => self.printed[at][1] = index + 1,
            (false, true) => self.printed[right][0] = index,
            (false, false) => self.printed.insert(at, [index, index + 1]),
        }
    }

    fn printed_count(&self) -> usize {
        self.printed.iter().map(|r| r[1] - r[0]).sum()
    }
}

/// The batch's book, shared by the engine's checkpoints (run states), the printing of results
/// and the writer thread, which gets a copy after every change.
struct Ledger {
    book: Mutex<Book>,
    slot: Arc<Slot<Book>>,
}

impl Ledger {
    fn change(&self, edit: impl FnOnce(&mut Book)) {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        edit(&mut book);
        self.slot.offer(book.clone());
    }

    fn book(&self) -> Book {
        self.book.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

struct ToLedger(Arc<Ledger>);

impl CheckpointStore for ToLedger {
    fn save(&self, index: Option<usize>, state: RunState) {
        let Some(index) = index else { return };
        self.0.change(|book| {
            // A run's checkpoint never races its result: the run's driver saves before it ends.
            if !book.is_printed(index) {
                book.runs.insert(index, Arc::new(state));
            }
        });
    }
}

/// A batch's checkpoints: the engine's side and the ledger its copies go to.
pub struct BatchCheckpoints {
    ledger: Arc<Ledger>,
    /// For [`weft_exec::RunOptions::checkpoints`].
    pub engine: Arc<Checkpoints>,
}

impl BatchCheckpoints {
    /// A new batch's.
    pub fn new(policy: CheckpointPolicy) -> BatchCheckpoints {
        BatchCheckpoints::with_book(policy, Book::default())
    }

    fn with_book(policy: CheckpointPolicy, book: Book) -> BatchCheckpoints {
        let ledger = Arc::new(Ledger { book: Mutex::new(book), slot: Slot::new() });
        BatchCheckpoints { engine: Arc::new(Checkpoints::new(policy, ToLedger(Arc::clone(&ledger)))), ledger }
    }
}

/// The indexes of the lines printed, one per line, appended to `.<state name>.printed` beside
/// the state file right after each line reaches stdout: a process killed between two writes of
/// the state file still knows every line it printed (one small `write` each, which a killed
/// process cannot leave half done), so `weft resume` prints none of them again.
struct PrintedLog {
    file: std::fs::File,
}

impl PrintedLog {
    fn path(state: &Path) -> PathBuf {
        let lock = crate::lock::lock_path(state);
        lock.with_extension("printed")
    }

    /// Opens the log of `state` for appending.
    fn open(state: &Path) -> anyhow::Result<PrintedLog> {
        let path = PrintedLog::path(state);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}, the list of printed lines beside the batch state", path.display()))?;
        Ok(PrintedLog { file })
    }

    /// The indexes the log of `state` holds (none when it does not exist); a last line cut short
    /// is ignored.
    fn read(state: &Path) -> Vec<usize> {
        let text = std::fs::read_to_string(PrintedLog::path(state)).unwrap_or_default();
        text.split_terminator('\n').filter_map(|l| l.parse().ok()).collect()
    }

    fn record(&mut self, index: usize) -> std::io::Result<()> {
        self.file.write_all(format!("{index}\n").as_bytes())
    }

    /// Removes the log of `state`, once the state file holds everything it did.
    fn remove(state: &Path) {
        let _ = std::fs::remove_file(PrintedLog::path(state));
    }
}

/// What a batch's state file says besides its book.
pub struct BatchStored {
    /// The flow file, absolute.
    pub flow: PathBuf,
    /// The options the runs were started with.
    pub options: ResumeOptions,
    /// The state file.
    pub state_path: PathBuf,
    /// The state file did not exist before this command.
    pub created: bool,
    /// What `weft resume` must be given again (secrets).
    pub give_again: Vec<&'static str>,
    /// Inputs every line has.
    pub base: Map<String, Json>,
    /// Runs at once.
    pub concurrency: usize,
    /// The first user message of every line's run.
    pub message: Option<String>,
}

/// The identity of a batch, for every write of its state.
struct Statics {
    flow: PathBuf,
    flow_hash: String,
    options: ResumeOptions,
    source: BatchSource,
    base: Map<String, Json>,
    concurrency: usize,
    message: Option<String>,
}

impl Statics {
    fn file(&self, book: &Book, finished: bool) -> BatchStateFile {
        BatchStateFile {
            flow: Some(self.flow.clone()),
            flow_hash: self.flow_hash.clone(),
            options: self.options.clone(),
            source: self.source.clone(),
            base: self.base.clone(),
            concurrency: self.concurrency,
            message: self.message.clone(),
            printed: book.printed.clone(),
            held: book.held.values().map(|r| BatchResult::clone(r)).collect(),
            runs: book.runs.iter().map(|(i, s)| (*i, RunState::clone(s))).collect(),
            finished,
        }
    }
}

/// Runs the batch in `file`: what the checkpoints' book says is not done yet.
pub fn run(
    plan: &Arc<Plan>,
    file: BatchFile,
    stored: BatchStored,
    checkpoints: &BatchCheckpoints,
    sink: &Arc<Sink>,
    observer: &Observer,
    limiters: &weft_exec::Limiters,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let ledger = &checkpoints.ledger;
    let statics = Arc::new(Statics {
        flow: stored.flow.clone(),
        flow_hash: plan.flow_hash().to_owned(),
        options: stored.options.clone(),
        source: file.source.clone(),
        base: stored.base.clone(),
        concurrency: stored.concurrency,
        message: stored.message.clone(),
    });
    let path = stored.state_path.clone();
    let for_writer = Arc::clone(&statics);
    let mut writer = Writer::with_slot(Arc::clone(&ledger.slot), format!("the batch (to {})", path.display()), move |book: Book| {
        state_file::write_batch(&path, &for_writer.file(&book, false))
    });
    let total = file.source.lines;
    let before = ledger.book().printed_count();
    let inputs = file.inputs(&stored.base, stored.message.as_ref(), &ledger.book());
    let view = View::new(inputs.len() as u64);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let fresh = ledger.book().printed.is_empty();
    if fresh {
        // A log left by an earlier batch stored at the same path is not this batch's.
        PrintedLog::remove(&stored.state_path);
    }
    let mut log = PrintedLog::open(&stored.state_path)?;
    let mut write_error = None;
    let t0 = Instant::now();
    let progress = runtime.block_on(run_batch(plan, inputs, stored.concurrency, |event| match event {
        BatchEvent::Result(result) => {
            // {"index", "line", "run_id", "outputs"} or {..., "error": {"kind", "node", "message"}}.
            let mut line = serde_json::to_value(&result).unwrap_or_else(|e| json!({"index": result.index, "error": e.to_string()}));
            crate::scrub::json(&mut line);
            if write_error.is_none() {
                match writeln!(out, "{line}").and_then(|()| out.flush()) {
                    Ok(()) => {
                        if let Err(e) = log.record(result.index) {
                            write_error = Some(e);
                        }
                        ledger.change(|book| book.mark_printed(result.index));
                    }
                    Err(e) => write_error = Some(e),
                }
            }
        }
        BatchEvent::Progress(p) => view.update(&p, sink.held_back()),
        BatchEvent::Stopped { index, state, .. } => ledger.change(|book| {
            book.runs.insert(index, Arc::from(state));
        }),
        BatchEvent::Held(result) => ledger.change(|book| {
            book.held.insert(result.index, Arc::from(result));
        }),
    }));
    view.finish();
    sink.finish();
    observer.finish();
    writer.stop();
    let book = ledger.book();
    let elapsed = t0.elapsed();
    let left = total - book.printed_count();
    if left == 0 && stored.created {
        let _ = std::fs::remove_file(&stored.state_path);
    } else {
        state_file::write_batch(&stored.state_path, &statics.file(&book, left == 0))?;
    }
    drop(log);
    PrintedLog::remove(&stored.state_path);
    if let Some(e) = write_error {
        return Err(e).context("writing the batch's results");
    }
    if left > 0 {
        let state = crate::run::shell_quote(&stored.state_path.display().to_string());
        let mut s = format!(
            "interrupted ({}) after {}: batch state written to {} ({} of {total} lines printed; {} runs stopped, their finished calls kept; {} finished lines held back for input order; {} lines not started)\ncontinue with: weft resume {state}",
            crate::interrupt::what(),
            secs(elapsed),
            stored.state_path.display(),
            book.printed_count(),
            book.runs.len(),
            book.held.len(),
            left - book.runs.len() - book.held.len(),
        );
        if !stored.give_again.is_empty() {
            s.push_str(&format!(" {}  (secrets are not stored: give them again)", stored.give_again.join(" ")));
        }
        crate::report::line(&s);
        return Ok(Outcome::Interrupted);
    }
    let (held, cap) = sink.held_back();
    let p = progress;
    let mut summary = format!("batch: {} runs in {}: {} finished, {} failed", p.total, secs(elapsed), p.done - p.failed, p.failed);
    if before > 0 {
        summary.push_str(&format!(" ({before} lines were printed by the batch's earlier command)"));
    }
    if held > 0 {
        summary.push_str(&format!("; {held} LLM calls were held back by the limit of {cap} in flight"));
    }
    eprintln!("{summary}");
    for l in limiters.stats().iter().filter(|l| l.throttles > 0) {
        crate::report::line(&format!(
            "limiter {}: {} rate-limit answers (429); in-flight cap lowered to {} at the lowest, {} now",
            l.endpoint, l.throttles, l.lowest_cap, l.cap
        ));
    }
    Ok(if p.failed > 0 { Outcome::Invalid } else { Outcome::Valid })
}

/// `weft resume BATCH_STATE`: runs what the batch left (stopped runs resumed, lines not started
/// started), prints the lines not printed before, in input order.
pub fn resume(args: &ResumeArgs, overrides: &Overrides, value: Json, lock: StateLock) -> anyhow::Result<Outcome> {
    let mut file = state_file::batch_from_json(&args.state_file, value)?;
    let flow_word = file.flow.as_deref().map(|f| crate::run::shell_quote(&f.display().to_string())).unwrap_or_else(|| "FLOW".to_owned());
    let batch_word = crate::run::shell_quote(&file.source.file.display().to_string());
    if file.finished {
        crate::report::error_line(&format!(
            "the batch in {} already finished (every line was printed), so there is nothing to resume; start a new batch with `weft run {flow_word} --batch {batch_word}`",
            args.state_file.display()
        ));
        return Ok(Outcome::Invalid);
    }
    if !args.session.answers.is_empty() {
        anyhow::bail!(
            "--answer is for a run waiting for input; the runs of a batch take no answers (run such a line alone with `weft run`)"
        );
    }
    let state_path = args.session.state.clone().unwrap_or_else(|| args.state_file.clone());
    crate::paths::check_writable(&state_path, "state file (--state)")?;
    let other_lock = match &args.session.state {
        Some(other) if crate::run::lock_differs(other, &args.state_file) => Some(StateLock::acquire(other)?),
        _ => None,
    };
    let created = !state_path.exists();
    let Some(setup) = Setup::new(args, overrides, file.flow.clone(), &mut file.options)? else { return Ok(Outcome::Invalid) };
    let batch = read(&file.source.file)?;
    if batch.source.sha256 != file.source.sha256 {
        anyhow::bail!(
            "the batch file {} changed since the batch started (its content differs from what {} records), so its lines cannot be matched to the results printed; restore it, or start a new batch with `weft run {flow_word} --batch {batch_word}`",
            file.source.file.display(),
            args.state_file.display()
        );
    }
    args.session.refuse_stream_in_batch()?;
    let sink = Arc::new(Sink::quiet(file.options.events.as_deref(), true)?);
    let mut book = Book {
        printed: file.printed.clone(),
        held: file.held.into_iter().map(|r| (r.index, Arc::new(r))).collect(),
        runs: file.runs.into_iter().map(|(i, s)| (i, Arc::new(s))).collect(),
    };
    // Lines printed after the state was last written (a process killed outright).
    for index in PrintedLog::read(&args.state_file) {
        book.mark_printed(index);
    }
    let checkpoints = BatchCheckpoints::with_book(args.session.checkpoints.policy(), book);
    let options = setup.run_options(&file.options, &sink, &checkpoints.engine);
    let Some(plan) = crate::run::compile(&setup.flow, options, &sink) else { return Ok(Outcome::Invalid) };
    if plan.flow_hash() != file.flow_hash {
        sink.finish();
        crate::report::error_line(&format!(
            "cannot resume {}: the flow {} changed since the batch started; restore it, or start a new batch with `weft run {flow_word} --batch {batch_word}`",
            args.state_file.display(),
            setup.flow_path.display()
        ));
        return Ok(Outcome::Invalid);
    }
    let stored = BatchStored {
        flow: setup.flow_path.clone(),
        options: file.options,
        state_path,
        created,
        give_again: crate::run::give_again(&args.secrets, &setup.llm),
        base: file.base,
        concurrency: args.concurrency.unwrap_or(file.concurrency),
        message: file.message,
    };
    let outcome = run(&plan, batch, stored, &checkpoints, &sink, &setup.observer, &setup.limiters);
    drop((lock, other_lock));
    outcome
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A progress bar on a terminal; elsewhere a line at every tenth of the batch.
enum View {
    Bar(ProgressBar),
    Lines { total: u64, last_tenth: std::cell::Cell<u64>, t0: Instant },
}

impl View {
    fn new(total: u64) -> View {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} · {msg} · {per_sec} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            View::Bar(bar)
        } else {
            View::Lines { total, last_tenth: std::cell::Cell::new(0), t0: Instant::now() }
        }
    }

    fn update(&self, p: &BatchProgress, (held, cap): (u64, usize)) {
        let mut msg = format!("{} failed · {} in flight", p.failed, p.in_flight);
        if held > 0 {
            msg.push_str(&format!(" · {held} LLM calls held back (limit {cap})"));
        }
        match self {
            View::Bar(bar) => {
                bar.set_position(p.done as u64);
                bar.set_message(msg);
            }
            View::Lines { total, last_tenth, t0 } => {
                let tenth = (p.done as u64 * 10).checked_div(*total).unwrap_or(10);
                if tenth > last_tenth.get() {
                    last_tenth.set(tenth);
                    let rate = p.done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("batch: {}/{} done · {msg} · {rate:.1}/s", p.done, total);
                }
            }
        }
    }

    fn finish(&self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
