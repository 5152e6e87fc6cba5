//! Checkpoints: while runs execute, each hands a copy of its state to a [`CheckpointStore`]
//! at least every [`CheckpointPolicy::every`] and every [`CheckpointPolicy::every_calls`]
//! completed calls, so a process killed outright (`kill -9`, the OOM killer) loses at most that
//! much work.
//!
//! One [`Checkpoints`] is shared by every run of a batch: the calls are counted across the runs,
//! and when a checkpoint is due its *generation* goes up; each run hands over its state the next
//! time its driver gets a result and sees a generation it has not saved. A run's state between
//! two scheduler steps is always resumable (calls in flight are recorded as such, and a resumed
//! run makes them again), so a checkpoint is as good as the state an interrupted run stores.
//!
//! The driver never waits on the store: [`CheckpointStore::save`] must hand the copy to a writer
//! (a thread, a channel) and return.

use crate::state::RunState;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Takes the copies of run states that checkpoints make.
pub trait CheckpointStore: Send + Sync {
    /// A copy of the state of the run at `index` in its batch (`None`: a run of its own), made
    /// on the run's driver task: hand it over and return, never block on IO here.
    fn save(&self, index: Option<usize>, state: RunState);
}

/// How often runs hand their state over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointPolicy {
    /// A checkpoint at least this often while calls complete.
    pub every: Duration,
    /// A checkpoint after this many completed calls (across every run sharing the policy).
    pub every_calls: u64,
}

impl Default for CheckpointPolicy {
    /// Every 5 seconds and every 100 calls.
    fn default() -> Self {
        CheckpointPolicy { every: Duration::from_secs(5), every_calls: 100 }
    }
}

/// The checkpoint schedule shared by the runs of a process (see the module documentation).
pub struct Checkpoints {
    policy: CheckpointPolicy,
    store: Box<dyn CheckpointStore>,
    /// Calls completed by every run since the schedule began.
    completed: AtomicU64,
    /// The current checkpoint generation: a run whose last save is older hands its state over.
    generation: AtomicU64,
    /// When the generation last went up, and the calls completed then.
    last: Mutex<(Instant, u64)>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("policy", &self.policy)
            .field("completed", &self.completed.load(Ordering::Relaxed))
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Checkpoints {
    /// A schedule handing states to `store`.
    pub fn new(policy: CheckpointPolicy, store: impl CheckpointStore + 'static) -> Checkpoints {
        Checkpoints {
            policy,
            store: Box::new(store),
            completed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            last: Mutex::new((Instant::now(), 0)),
        }
    }

    /// The policy.
    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// Counts `calls` completed calls at `now`; the current generation.
    pub(crate) fn note(&self, calls: u64, now: Instant) -> u64 {
        let completed = self.completed.fetch_add(calls, Ordering::Relaxed).saturating_add(calls);
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (at, at_calls) = *last;
        let by_calls = completed.saturating_sub(at_calls) >= self.policy.every_calls.max(1);
        let by_time = completed > at_calls && now.saturating_duration_since(at) >= self.policy.every;
        if by_calls || by_time {
            *last = (now, completed);
            return self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        }
        self.generation.load(Ordering::Relaxed)
    }

    /// Hands a copy of a run's state to the store.
    pub(crate) fn save(&self, index: Option<usize>, state: RunState) {
        self.store.save(index, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Count(Arc<AtomicU64>);
    impl CheckpointStore for Count {
        fn save(&self, _: Option<usize>, _: RunState) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_generation_every_n_calls_across_runs() {
        let c = Checkpoints::new(CheckpointPolicy { every: Duration::from_secs(3600), every_calls: 10 }, Count(Arc::default()));
        let t0 = Instant::now();
        assert_eq!(c.note(4, t0), 0);
        assert_eq!(c.note(5, t0), 0);
        // The tenth call, from another run: due.
        assert_eq!(c.note(1, t0), 1);
        assert_eq!(c.note(9, t0), 1);
        assert_eq!(c.note(3, t0), 2);
    }

    #[test]
    fn a_generation_when_the_time_passed_and_calls_completed() {
        let c = Checkpoints::new(CheckpointPolicy { every: Duration::from_secs(5), every_calls: 1000 }, Count(Arc::default()));
        let t0 = Instant::now();
        assert_eq!(c.note(1, t0 + Duration::from_secs(4)), 0);
        assert_eq!(c.note(1, t0 + Duration::from_secs(6)), 1);
        // Nothing completed since: nothing to save however long it waits.
        assert_eq!(c.note(0, t0 + Duration::from_secs(60)), 1);
        assert_eq!(c.note(1, t0 + Duration::from_secs(61)), 2);
    }
}
