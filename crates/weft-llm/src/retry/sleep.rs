//! The [`Sleeper`] the retry layer waits with between attempts: injectable, so tests assert the
//! delays without waiting, and the usage meter counts retries by its waits.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Waits between attempts. The default is [`TokioSleeper`]; tests inject a
/// [`RecordingSleeper`] to see the delays without waiting.
pub trait Sleeper: Send + Sync + fmt::Debug {
    /// Waits `delay`.
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Sleeps on the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// Records the delays it is asked for and returns at once.
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    delays: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    /// A sleeper with no delays recorded, shared.
    pub fn new() -> Arc<RecordingSleeper> {
        Arc::new(RecordingSleeper::default())
    }

    /// The delays asked for so far, in order.
    pub fn delays(&self) -> Vec<Duration> {
        self.delays.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.delays.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(delay);
        Box::pin(std::future::ready(()))
    }
}
