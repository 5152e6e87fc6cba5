//! Checkpoints on disk: the engine hands copies of run states over (see
//! [`weft_exec::checkpoint`]); a writer thread of the command writes the latest one atomically
//! (temporary file, fsync, rename), so the runs never wait for the disk and a slow disk only
//! makes checkpoints coarser (copies that arrive while one is written replace each other).

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints")]

use clap::Args;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use weft_exec::RunState;
use weft_exec::checkpoint::{CheckpointPolicy, CheckpointStore, Checkpoints};

/// How often a running run or batch writes its state.
#[derive(Args, Debug, Clone, Copy)]
pub struct CheckpointArgs {
    /// Write the run state (a batch's: `--state`) at least this often while calls complete, so
    /// that a process killed outright (`kill -9`, out of memory) loses at most this much work;
    /// from 0.1 to 86400.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = crate::flags::checkpoint_secs)]
    checkpoint_secs: f64,
    /// Write the run state after this many completed calls too; at least 1.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = crate::flags::checkpoint_calls)]
    checkpoint_calls: u64,
}

impl CheckpointArgs {
    /// The engine's policy.
    pub fn policy(self) -> CheckpointPolicy {
        CheckpointPolicy { every: Duration::from_secs_f64(self.checkpoint_secs), every_calls: self.checkpoint_calls }
    }
}

/// The latest value offered to a writer, and whether the writer must stop.
pub(crate) struct Slot<T> {
    latest: Mutex<(Option<T>, bool)>,
    changed: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot { latest: Mutex::new((None, false)), changed: Condvar::new() })
    }

    /// Replaces what waits to be written.
    pub(crate) fn offer(&self, value: T) {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).0 = Some(value);
        self.changed.notify_one();
    }

    /// The next value to write; `None` once stopped.
    fn next(&self) -> Option<T> {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if latest.1 {
                return None;
            }
            if let Some(value) = latest.0.take() {
                return Some(value);
            }
            latest = self.changed.wait(latest).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn stop(&self) {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_one();
    }
}

/// A thread that writes what is offered to it, the latest first, until stopped.
pub struct Writer<T> {
    slot: Arc<Slot<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Writer<T> {
    /// Starts the thread on values offered through `slot`; `write` writes one value (an error
    /// is reported once on stderr, and the runs go on: the final state is written again when
    /// the command stops).
    pub(crate) fn with_slot(
        slot: Arc<Slot<T>>,
        what: String,
        mut write: impl FnMut(T) -> anyhow::Result<()> + Send + 'static,
    ) -> Writer<T> {
        let from = Arc::clone(&slot);
        let named = what.clone();
        let thread = std::thread::Builder::new()
            .name("weft-checkpoint".to_owned())
            .spawn(move || {
                let mut warned = false;
                while let Some(value) = from.next() {
                    if let Err(e) = write(value)
                        && !std::mem::replace(&mut warned, true)
                    {
                        eprintln!(
                            "warning: cannot write the checkpoint of {named}: {e:#}; the run goes on, but a crash would lose its work"
                        );
                    }
                }
            })
            .ok();
        if thread.is_none() {
            eprintln!("warning: cannot start the checkpoint writer of {what}; the run goes on without checkpoints");
        }
        Writer { slot, thread }
    }

    /// Stops the thread and waits for the write in progress, dropping what was not written yet
    /// (the caller writes the final state itself, after this).
    pub fn stop(&mut self) {
        self.slot.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        self.slot.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The checkpoints of one run: the states its driver hands over wait in a slot until the
/// writer (started once the state file's other fields are known) takes them.
pub struct RunCheckpoints {
    slot: Arc<Slot<RunState>>,
    /// The engine's side, for [`weft_exec::RunOptions::checkpoints`].
    pub engine: Arc<Checkpoints>,
}

struct ToSlot(Arc<Slot<RunState>>);

impl CheckpointStore for ToSlot {
    fn save(&self, _index: Option<usize>, state: RunState) {
        self.0.offer(state);
    }
}

impl RunCheckpoints {
    /// Checkpoints on `policy`.
    pub fn new(policy: CheckpointPolicy) -> RunCheckpoints {
        let slot = Slot::new();
        RunCheckpoints { engine: Arc::new(Checkpoints::new(policy, ToSlot(Arc::clone(&slot)))), slot }
    }

    /// Starts writing the states handed over with `write`.
    pub fn writer(&self, what: String, write: impl FnMut(RunState) -> anyhow::Result<()> + Send + 'static) -> Writer<RunState> {
        Writer::with_slot(Arc::clone(&self.slot), what, write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_value_is_written_and_stop_drops_the_rest() {
        let (took, taken) = std::sync::mpsc::channel();
        let (wrote, written) = std::sync::mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = Arc::clone(&gate);
        let slot = Slot::new();
        let mut writer = Writer::with_slot(Arc::clone(&slot), "test".into(), move |v: u32| {
            let _ = took.send(v);
            drop(wait.lock().unwrap_or_else(PoisonError::into_inner));
            let _ = wrote.send(v);
            Ok(())
        });
        slot.offer(1);
        // The writer took 1 and waits at the gate: 2 then 3 replace each other in the slot.
        assert_eq!(taken.recv().ok(), Some(1));
        slot.offer(2);
        slot.offer(3);
        drop(held);
        assert_eq!(written.recv().ok(), Some(1));
        assert_eq!(written.recv().ok(), Some(3));
        slot.offer(4);
        assert_eq!(written.recv().ok(), Some(4));
        writer.stop();
        slot.offer(5);
        assert!(written.recv_timeout(Duration::from_millis(100)).is_err(), "nothing is written once stopped");
    }
}
