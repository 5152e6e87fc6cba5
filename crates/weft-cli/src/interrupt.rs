//! Ctrl-C reaches a run even while the engine is busy: a watcher thread with its own small
//! runtime sets the process's cancel flag, which a jq query being evaluated checks every few
//! microseconds (the runs' own `ctrl_c()` futures cannot be polled while their worker threads
//! evaluate).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The process's cancel flag, set on the first Ctrl-C; the watcher starts on first use.
pub fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    Arc::clone(FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        // Without a watcher (no thread or runtime to be had), Ctrl-C still stops runs through
        // their own `ctrl_c()` futures, only later.
        let _ = std::thread::Builder::new().name("weft-ctrl-c".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    set.store(true, Ordering::Relaxed);
                }
            });
        });
        flag
    }))
}
