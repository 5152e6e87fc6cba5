//! `weft run FLOW --batch inputs.jsonl`: one run per line, N at a time, results on stdout in
//! input order, a progress bar on stderr (done, failed, in flight, rate, ETA).

#![allow(clippy::print_stderr, clippy::print_stdout, reason = "the CLI is the one crate that prints")]

use crate::Outcome;
use crate::observe::Observer;
use crate::progress::Sink;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value as Json, json};
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_exec::Plan;
use weft_exec::batch::{BatchEvent, BatchInput, BatchProgress, run_batch};

/// Reads a JSON-lines file: each non-blank line a JSON object of inputs. A line that is not
/// one becomes that input's error (the others still run).
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<BatchInput>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read the batch file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let mut line = line.with_context(|| format!("cannot read the batch file {}", path.display()))?;
        if n == 0 && line.starts_with('\u{feff}') {
            // A UTF-8 byte order mark, as some editors and Windows tools write.
            line.drain(..'\u{feff}'.len_utf8());
        }
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{} line {}", path.display(), n + 1);
        let inputs = match serde_json::from_str::<Json>(&line) {
            Ok(Json::Object(m)) => Ok(m),
            Ok(_) => Err(format!("{at}: not a JSON object of inputs; write one object per line, e.g. {{\"question\": \"...\"}}")),
            Err(e) => Err(format!("{at}: not valid JSON ({e}); write one JSON object of inputs per line")),
        };
        out.push(BatchInput { line: n + 1, inputs });
    }
    if out.is_empty() {
        anyhow::bail!("the batch file {} has no inputs: write one JSON object of inputs per line", path.display());
    }
    Ok(out)
}

/// Runs the batch: `base` inputs under every line's own.
pub fn run(
    plan: &Arc<Plan>,
    base: Map<String, Json>,
    lines: Vec<BatchInput>,
    concurrency: usize,
    sink: &Arc<Sink>,
    observer: &Observer,
    limiters: &weft_exec::Limiters,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let inputs: Vec<BatchInput> = lines
        .into_iter()
        .map(|line| BatchInput {
            line: line.line,
            inputs: line.inputs.map(|own| {
                let mut all = base.clone();
                all.extend(own);
                all
            }),
        })
        .collect();
    let total = inputs.len();
    let view = View::new(total as u64);
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut write_error = None;
    let t0 = Instant::now();
    let finished = runtime.block_on(async {
        let batch = run_batch(plan, inputs, concurrency, |event| match event {
            BatchEvent::Result(result) => {
                // {"index", "line", "run_id", "outputs"} or {..., "error": {"kind", "node", "message"}}.
                let mut line = serde_json::to_value(&result).unwrap_or_else(|e| json!({"index": result.index, "error": e.to_string()}));
                crate::scrub::json(&mut line);
                if write_error.is_none()
                    && let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
                {
                    write_error = Some(e);
                }
            }
            BatchEvent::Progress(p) => view.update(&p, sink.held_back()),
        });
        tokio::select! {
            p = batch => Some(p),
            () = crate::interrupt::stopped() => None,
        }
    });
    view.finish();
    sink.finish();
    observer.finish();
    if let Some(e) = write_error {
        return Err(e).context("writing to stdout");
    }
    let elapsed = t0.elapsed();
    let Some(p) = finished else {
        eprintln!(
            "interrupted ({}) after {}: the runs still going were cancelled; their lines are missing from the output",
            crate::interrupt::what(),
            secs(elapsed)
        );
        return Ok(Outcome::Interrupted);
    };
    let (held, cap) = sink.held_back();
    let mut summary = format!("batch: {} runs in {}: {} finished, {} failed", p.total, secs(elapsed), p.done - p.failed, p.failed);
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
