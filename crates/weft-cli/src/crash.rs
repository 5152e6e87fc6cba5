//! What `weft` does when it panics anyway: no input should make it panic (flags are range
//! checked, state files are checked before a run resumes), so a panic is a bug, and the user
//! gets a message that says so and where to report it, exit status 1 (not Rust's 101), and the
//! run's state stored when there is one.
//!
//! - The panic hook ([`install`]) prints the message, once, whatever thread panicked (the
//!   command's thread, a tokio worker running a call task), and remembers that a panic happened.
//! - `main` runs the command on its own thread and joins it: a panic that unwinds out of the
//!   command ends there as exit 1. A panic in a call task is turned into a failed run by the
//!   engine (the task's join error); [`panicked`] makes that exit 1 too, whatever the command
//!   reported.
//! - While a run executes, a guard in `run.rs` owns it: if the thread unwinds through it, it
//!   stores the run's state before the unwinding goes on.
//!
//! Nothing here catches an unwind on the engine's paths: the property tests run those paths
//! in-process and must see any panic.

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints")]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use weft_exec::{EventRecord, EventSink};

/// Where to report a bug: the workspace's `repository`, `/issues`.
pub const ISSUES: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/issues");

static PANICKED: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let first = !PANICKED.swap(true, Ordering::SeqCst);
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().map(|n| format!(" (thread {n})")).unwrap_or_default();
        let mut text = format!("error: weft panicked{thread}: {what}{at}\n");
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            text.push_str(&format!("{}\n", std::backtrace::Backtrace::force_capture()));
        }
        if first {
            text.push_str(&format!(
                "This is a bug in weft, not in your flow: please report it at {ISSUES} with the command you ran, weft's version ({}) and, if you can share them, the flow and state files (RUST_BACKTRACE=1 adds a backtrace to this message).\n",
                env!("CARGO_PKG_VERSION")
            ));
        }
        // A panic message may quote a value holding a secret: mask them as every writer does.
        let text = crate::scrub::text(&text);
        // Never panic in the hook: stderr may be closed.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }));
}

/// Whether any thread panicked.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// The variable that makes `weft` panic on purpose, for the tests of this module:
/// `WEFT_TEST_PANIC=<event>[:<n>]` panics while the n-th (default 1st) event of that kind is
/// emitted. `node_started` panics in the scheduler, on the command's thread; `llm_response`
/// in an LLM call's tokio task.
pub const TEST_PANIC_VAR: &str = "WEFT_TEST_PANIC";

/// `sink`, or when [`TEST_PANIC_VAR`] is set, `sink` wrapped to panic as it says.
pub fn events(sink: Arc<dyn EventSink>) -> Arc<dyn EventSink> {
    let Ok(spec) = std::env::var(TEST_PANIC_VAR) else { return sink };
    let (kind, n) = match spec.split_once(':') {
        Some((kind, n)) => (kind.to_owned(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    Arc::new(PanicAt { sink, kind, n, seen: AtomicU64::new(0) })
}

struct PanicAt {
    sink: Arc<dyn EventSink>,
    kind: String,
    n: u64,
    seen: AtomicU64,
}

impl EventSink for PanicAt {
    fn emit(&self, record: &EventRecord<'_>) {
        self.sink.emit(record);
        let kind = serde_json::to_value(record.event).ok().and_then(|v| v.get("event").and_then(|k| k.as_str().map(str::to_owned)));
        if kind.as_deref() == Some(self.kind.as_str()) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            panic!("{TEST_PANIC_VAR}={}:{} asked for a panic here", self.kind, self.n);
        }
    }
}
