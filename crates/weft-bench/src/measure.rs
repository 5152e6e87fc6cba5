//! What the harness measures besides wall time: the process's CPU time, its peak resident set,
//! and the run's events (counted, never stored); and the signals that stop a measurement.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use weft_exec::{Event, EventRecord, EventSink};

/// Ctrl-C (SIGINT) and SIGTERM, watched from the moment [`Stop::install`] registers them, so a
/// measurement that is interrupted ends as an error and drops what it holds (the test server
/// child) instead of the process dying on the spot.
#[derive(Debug)]
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    /// Watches for the signals; needs a tokio runtime's context.
    pub fn install() -> std::io::Result<Stop> {
        Ok(Stop { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    /// Waits for the first of them, and names it.
    pub async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// CPU time used by the whole process so far, user and system, every thread (tokio's workers
/// included, and threads that have exited): `CLOCK_PROCESS_CPUTIME_ID`, the same sum as
/// getrusage(RUSAGE_SELF)'s `ru_utime + ru_stime`, at nanosecond resolution.
pub fn cpu_time() -> Duration {
    // Under valgrind, rustix's vDSO lookup faults (valgrind gives the process an auxiliary vector
    // rustix does not expect): read the coarse /proc figure instead; valgrind's own instruction
    // counts are the measure then (README "Benchmarks").
    if under_valgrind() {
        return cpu_time_proc().unwrap_or_default();
    }
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Whether the process runs under valgrind (its preload library is in `LD_PRELOAD`).
fn under_valgrind() -> bool {
    static UNDER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNDER.get_or_init(|| std::env::var_os("LD_PRELOAD").is_some_and(|p| p.to_string_lossy().contains("vgpreload")))
}

/// User plus system CPU time from `/proc/self/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s), as a cross-check of [`cpu_time`]; `None` off Linux.
pub fn cpu_time_proc() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ, which /proc reports in, is 100 on every Linux architecture.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The peak resident set size of the process so far, in bytes (`VmHWM` in `/proc/self/status`);
/// `None` off Linux.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// An event sink that counts what the harness reports and drops the events: the engine builds
/// and emits every event exactly as it does for `weft run`, minus the JSON lines and the
/// progress view.
#[derive(Debug, Default)]
pub struct CountingSink {
    events: AtomicU64,
    responses: AtomicU64,
    /// Sum of the `duration_ms` of `LlmResponse` events, in nanoseconds.
    response_ns: AtomicU64,
    held_back: AtomicU64,
    reasks: AtomicU64,
    runs_finished: AtomicU64,
    runs_failed: AtomicU64,
}

/// The counts of a [`CountingSink`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Events of any kind.
    pub events: u64,
    /// LLM answers (`LlmResponse`).
    pub responses: u64,
    /// Mean `duration_ms` of the LLM answers: the model latency a call saw.
    pub mean_latency_ms: f64,
    /// Calls the provider-wide limiter held back (`LlmHeldBack`).
    pub held_back: u64,
    /// Re-asks (`LlmReask`).
    pub reasks: u64,
    /// Runs finished (`RunFinished`).
    pub runs_finished: u64,
    /// Runs failed (`RunFailed`).
    pub runs_failed: u64,
}

impl CountingSink {
    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let responses = self.responses.load(Ordering::Relaxed);
        let ns = self.response_ns.load(Ordering::Relaxed);
        Counts {
            events: self.events.load(Ordering::Relaxed),
            responses,
            mean_latency_ms: if responses == 0 { 0.0 } else { ns as f64 / responses as f64 / 1e6 },
            held_back: self.held_back.load(Ordering::Relaxed),
            reasks: self.reasks.load(Ordering::Relaxed),
            runs_finished: self.runs_finished.load(Ordering::Relaxed),
            runs_failed: self.runs_failed.load(Ordering::Relaxed),
        }
    }
}

impl EventSink for CountingSink {
    fn emit(&self, record: &EventRecord<'_>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        match record.event {
            Event::LlmResponse { duration_ms, .. } => {
                self.responses.fetch_add(1, Ordering::Relaxed);
                self.response_ns.fetch_add((duration_ms * 1e6) as u64, Ordering::Relaxed);
            }
            Event::LlmHeldBack { .. } => {
                self.held_back.fetch_add(1, Ordering::Relaxed);
            }
            Event::LlmReask { .. } => {
                self.reasks.fetch_add(1, Ordering::Relaxed);
            }
            Event::RunFinished { .. } => {
                self.runs_finished.fetch_add(1, Ordering::Relaxed);
            }
            Event::RunFailed { .. } => {
                self.runs_failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_and_agrees_with_proc() {
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = cpu_time();
        assert!(after > before);
        if let Some(proc) = cpu_time_proc() {
            // Ticks of 10 ms, sampled.
            let diff = proc.as_secs_f64() - after.as_secs_f64();
            assert!(diff.abs() < 0.1, "proc {proc:?} vs clock {after:?}");
        }
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().unwrap() > 1024 * 1024);
        }
    }

    #[test]
    fn the_sink_counts_responses_and_their_mean_latency() {
        let sink = CountingSink::default();
        let record = |event: &Event| sink.emit(&EventRecord { v: 1, run_id: "r", seq: 1, ts_ms: 0, index: None, path: "f", event });
        for ms in [40.0, 60.0] {
            record(&Event::LlmResponse { node: "n".into(), usage: Default::default(), duration_ms: ms });
        }
        record(&Event::LlmReask { node: "n".into(), reason: "r".into() });
        let c = sink.counts();
        assert_eq!((c.events, c.responses, c.reasks), (3, 2, 1));
        assert!((c.mean_latency_ms - 50.0).abs() < 1e-6);
    }
}
