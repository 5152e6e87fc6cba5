//! Stopping signals reach a run even while the engine is busy: a watcher thread with its own
//! small runtime waits for SIGINT (Ctrl-C), SIGTERM (`docker stop`, systemd, CI timeouts) and
//! SIGHUP (a closed terminal), sets the process's cancel flag (which a jq query being evaluated
//! checks every few microseconds, and the driver every 20 ms) and wakes the runs' [`stopped`]
//! futures. Each is handled like Ctrl-C: the calls in flight are cancelled, the state is
//! written, and `weft` exits with 128 + the signal's number (130, 143, 129). A second signal
//! forces an immediate exit with that code: whatever was stored last stands.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// The signal that stopped the process (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Wakes the runs waiting in [`stopped`].
fn notify() -> &'static Notify {
    static NOTIFY: OnceLock<Notify> = OnceLock::new();
    NOTIFY.get_or_init(Notify::new)
}

/// The process's cancel flag, set by the first stopping signal; the watcher starts on first use.
pub fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        // Without a watcher (no thread or runtime to be had), Ctrl-C still stops runs through
        // their own `ctrl_c()` futures, only later.
        let _ = std::thread::Builder::new().name("weft-signals".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(watch(set));
        });
        flag
    }))
}

#[cfg(unix)]
async fn watch(flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
    else {
        return;
    };
    loop {
        let number = tokio::select! {
            _ = int.recv() => libc_number::SIGINT,
            _ = term.recv() => libc_number::SIGTERM,
            _ = hup.recv() => libc_number::SIGHUP,
        };
        if SIGNAL.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            // The second one: stop now.
            crate::report::line(&format!("{}: stopping at once (the run state stored last, if any, stands)", name(number)));
            std::process::exit(128 + number);
        }
        flag.store(true, Ordering::Relaxed);
        notify().notify_waiters();
    }
}

#[cfg(not(unix))]
async fn watch(flag: Arc<AtomicBool>) {
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        if SIGNAL.compare_exchange(0, libc_number::SIGINT, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            std::process::exit(130);
        }
        flag.store(true, Ordering::Relaxed);
        notify().notify_waiters();
    }
}

/// The signal numbers, the same on every platform Weft runs on.
mod libc_number {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGTERM: i32 = 15;
}

/// Resolves once a stopping signal arrived (at once if one already did).
pub async fn stopped() {
    let _ = cancel_flag();
    let notified = notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    if SIGNAL.load(Ordering::SeqCst) != 0 {
        return;
    }
    notified.await;
}

/// The exit code of a run stopped by a signal: 128 + its number (130 for Ctrl-C).
pub fn exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        n => u8::try_from(128 + n).unwrap_or(130),
    }
}

/// What stopped the run, for messages: `Ctrl-C`, `SIGTERM`, `SIGHUP`.
pub fn what() -> &'static str {
    name(SIGNAL.load(Ordering::SeqCst))
}

fn name(number: i32) -> &'static str {
    match number {
        libc_number::SIGTERM => "SIGTERM",
        libc_number::SIGHUP => "SIGHUP",
        _ => "Ctrl-C",
    }
}
