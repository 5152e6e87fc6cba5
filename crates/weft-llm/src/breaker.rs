//! The circuit breaker of one endpoint, shared by every call of the process to it (it lives in
//! the endpoint's [`crate::limit::Limiter`]): a dead or silent server makes the calls wait for
//! one probe at a time, then fail at once with one clear error, instead of each call retrying on
//! its own.
//!
//! The decisions are a sans-IO state machine, [`BreakerCore`], with the time passed in; the
//! async layer ([`Breaker`]) adds a lock and a notification, and the retry layer
//! ([`crate::retry::Retrying`]) drives it around every attempt.
//!
//! - **Closed**: no failure since the last answer; every call attempts.
//! - **Failing** (an outage): an attempt failed as a dead or silent server fails (refused or
//!   reset connections, timeouts, `5xx` but 501) and no answer came since. It starts, `since`,
//!   when that failure came (not when the attempt began: a call whose one attempt outlasted
//!   its window still gets its retries). Time from `since` is cut into
//!   **probe slots**, 250 ms apart at first, the gap doubling up to 5 s ([`slot_of`]). In each
//!   slot one call probes the endpoint: a call that wants to attempt while a probe is in flight
//!   waits for its outcome; a call arriving in a slot whose probe already failed takes that
//!   failure as its own attempt's (so it counts toward its retries, without a connection); a
//!   failed call waits at least until the next slot before its next try. Any answer ends the
//!   outage (back to closed) and wakes the waiting calls.
//! - **Open** (for a call): the outage is older than the call's window (the time its retry
//!   policy's delays add up to, [`crate::retry::RetryPolicy::window`], at least
//!   [`MIN_WINDOW`]): the call fails at once
//!   with [`Down`], naming the endpoint, how long it has been down and the last failure. One
//!   call per slot (every 5 s by then) still probes, so the endpoint is found again when it is
//!   back.
//!
//! Invariants: at most one probe is in flight per endpoint; a probe whose call is dropped
//! (cancelled) gives its slot back (the [`Attempt`] guard); a call never takes its own failure
//! as another's (failures are numbered, and a call says which it has seen); any answer closes
//! the breaker, whoever made the attempt.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::providers::AttemptError;
use crate::retry::Cause;

/// The gap between the first two probe slots of an outage; each next gap doubles, up to
/// [`MAX_PROBE_GAP`].
pub const FIRST_PROBE_GAP: Duration = Duration::from_millis(250);

/// The longest gap between two probe slots.
pub const MAX_PROBE_GAP: Duration = Duration::from_secs(5);

/// The shortest window: an endpoint is not failed at once before its failures have gone on for
/// this long, whatever a retry policy of tiny delays says (one slow answer is no outage).
pub const MIN_WINDOW: Duration = Duration::from_secs(2);

/// Whether a failed attempt looks like a dead or silent server (and so counts toward an outage):
/// no answer (refused or reset connections, timeouts) or a `5xx` other than 501.
pub fn is_down(cause: &Cause) -> bool {
    match cause {
        Cause::Transport | Cause::Timeout => true,
        Cause::Status { status, .. } => (500..600).contains(status) && *status != 501,
        Cause::Tls | Cause::Invalid | Cause::TooLarge | Cause::Refused => false,
    }
}

/// What an attempt told about the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server answered (any status but a `5xx`, or a body): the endpoint is up.
    Up,
    /// The attempt failed as a dead or silent server fails ([`is_down`]).
    Down(AttemptError),
    /// Nothing learnt about the server (TLS failed, the egress policy refused the request).
    Neutral,
}

impl Outcome {
    /// The outcome of a failed attempt.
    pub fn of_failure(failure: &AttemptError) -> Outcome {
        match &failure.cause {
            cause if is_down(cause) => Outcome::Down(failure.clone()),
            Cause::Tls | Cause::Refused => Outcome::Neutral,
            _ => Outcome::Up,
        }
    }
}

/// The right to make one attempt, given by [`BreakerCore::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    id: u64,
    /// Whether the attempt is the probe of an outage (the only one in flight).
    pub probe: bool,
    /// When the attempt was admitted.
    pub started: Instant,
}

/// An endpoint that has been down longer than a call's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Down {
    /// How long it has been down (since the first failure of the outage).
    pub down_for: Duration,
    /// Failed attempts in the outage, every call's.
    pub failures: u64,
    /// The last failure.
    pub last: AttemptError,
}

/// What a call may do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Make the attempt, then [`BreakerCore::record`] its outcome with the ticket.
    Go(Ticket),
    /// Another call's probe is in flight: wait for its outcome (a change of the breaker), at
    /// most until `until` (the call's window then ends), and ask again.
    Wait {
        /// When the call's window ends.
        until: Instant,
    },
    /// This slot's probe failed: take its failure as this call's attempt (number `seq`, to pass
    /// as `seen` from now on).
    Shared {
        /// The probe's failure.
        failure: AttemptError,
        /// Its number in the outage.
        seq: u64,
    },
    /// The endpoint has been down longer than the call's window: fail now.
    Open(Down),
}

#[derive(Debug, Clone)]
struct Outage {
    since: Instant,
    /// Failed attempts so far; the last one's number.
    failures: u64,
    last: AttemptError,
    /// The slot of the last failure.
    last_slot: u64,
}

/// The breaker's state and decisions, with the time passed in. See the [module docs](self).
#[derive(Debug, Default)]
pub struct BreakerCore {
    outage: Option<Outage>,
    /// The probe in flight.
    probe: Option<u64>,
    next_id: u64,
}

impl BreakerCore {
    /// A closed breaker.
    pub fn new() -> BreakerCore {
        BreakerCore::default()
    }

    fn ticket(&mut self, now: Instant, probe: bool) -> Ticket {
        self.next_id += 1;
        if probe {
            self.probe = Some(self.next_id);
        }
        Ticket { id: self.next_id, probe, started: now }
    }

    /// Whether an attempt may start now, for a call whose window is `window` and who has seen
    /// the failures of the outage up to number `seen` (its own included; 0 for none).
    pub fn admit(&mut self, now: Instant, window: Duration, seen: u64) -> Admission {
        let Some(outage) = &self.outage else { return Admission::Go(self.ticket(now, false)) };
        let age = now.saturating_duration_since(outage.since);
        let open = age >= window;
        let down = || Down { down_for: age, failures: outage.failures, last: outage.last.clone() };
        if self.probe.is_some() {
            if open {
                return Admission::Open(down());
            }
            let until = outage.since.checked_add(window).unwrap_or(now);
            return Admission::Wait { until };
        }
        if outage.last_slot >= slot_of(age) {
            // This slot was probed, and the probe failed.
            if open {
                return Admission::Open(down());
            }
            if outage.failures > seen {
                return Admission::Shared { failure: outage.last.clone(), seq: outage.failures };
            }
            // The call's own failure, in the same slot (an injected sleeper does not let time
            // pass): it probes again rather than wait for nobody.
        }
        Admission::Go(self.ticket(now, true))
    }

    /// Records the outcome of the attempt of `ticket`; returns the failure's number in the
    /// outage for a [`Outcome::Down`] (the call has seen it), else 0.
    pub fn record(&mut self, now: Instant, ticket: Ticket, outcome: Outcome) -> u64 {
        if self.probe == Some(ticket.id) {
            self.probe = None;
        }
        match outcome {
            Outcome::Up => {
                self.outage = None;
                0
            }
            Outcome::Neutral => 0,
            Outcome::Down(failure) => match &mut self.outage {
                Some(outage) => {
                    outage.failures += 1;
                    outage.last = failure;
                    outage.last_slot = outage.last_slot.max(slot_of(now.saturating_duration_since(outage.since)));
                    outage.failures
                }
                None => {
                    self.outage = Some(Outage { since: now, failures: 1, last: failure, last_slot: 0 });
                    1
                }
            },
        }
    }

    /// The attempt of `ticket` was abandoned (its call was dropped): a probe's slot goes to
    /// the next call.
    pub fn abandon(&mut self, ticket: Ticket) {
        if self.probe == Some(ticket.id) {
            self.probe = None;
        }
    }

    /// The shortest wait before a failed call tries again: until the next probe slot during
    /// an outage, else nothing.
    pub fn floor(&self, now: Instant) -> Duration {
        let Some(outage) = &self.outage else { return Duration::ZERO };
        let age = now.saturating_duration_since(outage.since);
        slot_time(slot_of(age).saturating_add(1)).saturating_sub(age)
    }

    /// How long until the endpoint has been down for `window`, during an outage (zero once it
    /// has): a failed call wakes by then to fail at once, rather than sleep past it.
    pub fn until_open(&self, now: Instant, window: Duration) -> Option<Duration> {
        let outage = self.outage.as_ref()?;
        Some(window.saturating_sub(now.saturating_duration_since(outage.since)))
    }

    /// The outage, when the endpoint has been down for at least `window`.
    pub fn open_for(&self, now: Instant, window: Duration) -> Option<Down> {
        let outage = self.outage.as_ref()?;
        let age = now.saturating_duration_since(outage.since);
        (age >= window).then(|| Down { down_for: age, failures: outage.failures, last: outage.last.clone() })
    }

    /// How long the endpoint has been down, when it is.
    pub fn down_for(&self, now: Instant) -> Option<Duration> {
        self.outage.as_ref().map(|o| now.saturating_duration_since(o.since))
    }
}

/// The probe slot an outage of age `age` is in: slot 0 starts with the outage, slot n at
/// [`slot_time`]`(n)`.
pub fn slot_of(age: Duration) -> u64 {
    let mut start = Duration::ZERO;
    let mut gap = FIRST_PROBE_GAP;
    let mut slot = 0;
    while gap < MAX_PROBE_GAP {
        if start + gap > age {
            return slot;
        }
        start += gap;
        slot += 1;
        gap *= 2;
    }
    let rest = (age - start).as_nanos() / MAX_PROBE_GAP.as_nanos();
    slot + u64::try_from(rest).unwrap_or(u64::MAX - slot)
}

/// When probe slot `n` starts, from the start of the outage: 0, 0.25, 0.75, 1.75, 3.75, 7.75 s,
/// then every 5 s.
pub fn slot_time(n: u64) -> Duration {
    let mut start = Duration::ZERO;
    let mut gap = FIRST_PROBE_GAP;
    let mut slot = 0;
    while gap < MAX_PROBE_GAP {
        if slot == n {
            return start;
        }
        start += gap;
        slot += 1;
        gap *= 2;
    }
    let more = u32::try_from(n - slot).unwrap_or(u32::MAX);
    start.saturating_add(MAX_PROBE_GAP.saturating_mul(more))
}

/// The breaker of one endpoint: [`BreakerCore`] under a lock, with a notification of every
/// change, for calls waiting on a probe.
#[derive(Debug)]
pub struct Breaker {
    core: Mutex<BreakerCore>,
    changed: Notify,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new()
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new() -> Breaker {
        Breaker { core: Mutex::new(BreakerCore::new()), changed: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerCore> {
        // The state is plain data, consistent between statements: a poisoned lock is still usable.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A future that completes at the next change; enable it (or poll it) before
    /// [`Breaker::admit`] so that no change is missed between the two.
    pub fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// [`BreakerCore::admit`] now; a [`Admission::Go`] comes as an [`Attempt`] guard.
    pub fn admit(&self, window: Duration, seen: u64) -> Admission {
        self.lock().admit(Instant::now(), window, seen)
    }

    /// The guard of an admitted attempt: record its outcome with [`Attempt::record`]; dropped
    /// without one (the call was cancelled), it gives a probe's slot back.
    pub fn attempt(&self, ticket: Ticket) -> Attempt<'_> {
        Attempt { breaker: self, ticket: Some(ticket) }
    }

    /// [`BreakerCore::floor`] now.
    pub fn floor(&self) -> Duration {
        self.lock().floor(Instant::now())
    }

    /// [`BreakerCore::until_open`] now.
    pub fn until_open(&self, window: Duration) -> Option<Duration> {
        self.lock().until_open(Instant::now(), window)
    }

    /// [`BreakerCore::open_for`] now.
    pub fn open_for(&self, window: Duration) -> Option<Down> {
        self.lock().open_for(Instant::now(), window)
    }

    /// How long the endpoint has been down, when it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.lock().down_for(Instant::now())
    }
}

/// An admitted attempt; see [`Breaker::attempt`].
#[derive(Debug)]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    ticket: Option<Ticket>,
}

impl Attempt<'_> {
    /// Records the attempt's outcome and wakes the calls waiting on the breaker; returns the
    /// failure's number for [`Outcome::Down`].
    pub fn record(mut self, outcome: Outcome) -> u64 {
        let Some(ticket) = self.ticket.take() else { return 0 };
        let seq = self.breaker.lock().record(Instant::now(), ticket, outcome);
        self.breaker.changed.notify_waiters();
        seq
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.lock().abandon(ticket);
            self.breaker.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(23);

    fn refused() -> AttemptError {
        AttemptError::new(Cause::Transport, "cannot connect: Connection refused", "start the server")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn go(admission: Admission) -> Ticket {
        match admission {
            Admission::Go(ticket) => ticket,
            other => panic!("expected Go, got {other:?}"),
        }
    }

    #[test]
    fn slots_double_from_a_quarter_second_up_to_five_seconds() {
        let times: Vec<u128> = (0..9).map(|n| slot_time(n).as_millis()).collect();
        assert_eq!(times, vec![0, 250, 750, 1750, 3750, 7750, 12750, 17750, 22750]);
        for n in 0..40 {
            assert_eq!(slot_of(slot_time(n)), n, "{n}");
            if n > 0 {
                assert_eq!(slot_of(slot_time(n) - Duration::from_nanos(1)), n - 1, "{n}");
            }
        }
        assert!(slot_of(Duration::MAX) > 1 << 60);
        assert!(slot_time(u64::MAX) > Duration::from_secs(1 << 34));
    }

    #[test]
    fn closed_until_a_failure_then_open_after_the_window() {
        let t0 = Instant::now();
        let mut b = BreakerCore::new();
        // Closed: every call goes, none of them a probe.
        let first = go(b.admit(t0, WINDOW, 0));
        let second = go(b.admit(t0, WINDOW, 0));
        assert!(!first.probe && !second.probe);
        assert_eq!(b.record(t0, first, Outcome::Down(refused())), 1);
        assert_eq!(b.record(t0, second, Outcome::Down(refused())), 2);
        assert_eq!(b.down_for(t0 + ms(1)), Some(ms(1)));
        // Both failures fell in slot 0: a third call shares the last one instead of connecting.
        match b.admit(t0 + ms(2), WINDOW, 0) {
            Admission::Shared { seq, failure } => assert_eq!((seq, failure), (2, refused())),
            other => panic!("{other:?}"),
        }
        // The calls wait until the next slot before trying again, and no longer than the window.
        assert_eq!(b.floor(t0 + ms(100)), ms(150));
        assert_eq!(b.until_open(t0 + ms(100), WINDOW), Some(WINDOW - ms(100)));
        assert_eq!(b.until_open(t0 + WINDOW * 2, WINDOW), Some(Duration::ZERO));
        // Slot 1: one call probes; the others wait for its outcome until their window ends.
        let probe = go(b.admit(t0 + ms(300), WINDOW, 2));
        assert!(probe.probe);
        assert_eq!(b.admit(t0 + ms(310), WINDOW, 2), Admission::Wait { until: t0 + WINDOW });
        assert_eq!(b.record(t0 + ms(320), probe, Outcome::Down(refused())), 3);
        // The waiters take the probe's failure.
        assert!(matches!(b.admit(t0 + ms(330), WINDOW, 2), Admission::Shared { seq: 3, .. }));
        assert_eq!(b.open_for(t0 + ms(330), WINDOW), None);
        // Past the window: open for this call, which fails at once, naming the outage.
        match b.admit(t0 + WINDOW + ms(10), WINDOW, 3) {
            // The slot of 22.75 s was not probed: this call probes even though it is open.
            Admission::Go(ticket) => {
                assert!(ticket.probe);
                b.record(t0 + WINDOW + ms(11), ticket, Outcome::Down(refused()));
            }
            other => panic!("{other:?}"),
        }
        match b.admit(t0 + WINDOW + ms(20), WINDOW, 3) {
            Admission::Open(down) => {
                assert_eq!(down.down_for, WINDOW + ms(20));
                assert_eq!(down.failures, 4);
                assert_eq!(down.last, refused());
            }
            other => panic!("{other:?}"),
        }
        // A call with a longer window still waits for probes.
        assert!(matches!(b.admit(t0 + WINDOW + ms(20), WINDOW * 2, 3), Admission::Shared { .. } | Admission::Go(_)));
    }

    #[test]
    fn one_probe_at_a_time_and_recovery_closes_it_for_everyone() {
        let t0 = Instant::now();
        let mut b = BreakerCore::new();
        let t = go(b.admit(t0, WINDOW, 0));
        b.record(t0, t, Outcome::Down(refused()));
        let probe = go(b.admit(t0 + ms(260), WINDOW, 1));
        assert!(probe.probe);
        for _ in 0..3 {
            assert!(matches!(b.admit(t0 + ms(270), WINDOW, 1), Admission::Wait { .. }));
        }
        // The server is back: the probe's answer closes the breaker.
        assert_eq!(b.record(t0 + ms(400), probe, Outcome::Up), 0);
        assert_eq!(b.down_for(t0 + ms(400)), None);
        assert_eq!(b.floor(t0 + ms(400)), Duration::ZERO);
        let after = go(b.admit(t0 + ms(401), WINDOW, 1));
        assert!(!after.probe);
    }

    #[test]
    fn an_abandoned_probe_gives_its_slot_back() {
        let t0 = Instant::now();
        let mut b = BreakerCore::new();
        let t = go(b.admit(t0, WINDOW, 0));
        b.record(t0, t, Outcome::Down(refused()));
        let probe = go(b.admit(t0 + ms(300), WINDOW, 1));
        assert!(matches!(b.admit(t0 + ms(301), WINDOW, 1), Admission::Wait { .. }));
        b.abandon(probe);
        let next = go(b.admit(t0 + ms(302), WINDOW, 1));
        assert!(next.probe);
    }

    #[test]
    fn a_lone_call_is_not_given_its_own_failure() {
        let t0 = Instant::now();
        let mut b = BreakerCore::new();
        let t = go(b.admit(t0, WINDOW, 0));
        let seen = b.record(t0, t, Outcome::Down(refused()));
        // Same slot (time stood still under an injected sleeper): it probes again.
        let again = go(b.admit(t0 + ms(1), WINDOW, seen));
        assert!(again.probe);
    }

    #[test]
    fn an_outage_starts_at_the_first_failure_and_any_answer_ends_it() {
        let t0 = Instant::now();
        let mut b = BreakerCore::new();
        let slow = go(b.admit(t0, WINDOW, 0));
        let other = go(b.admit(t0 + ms(10), WINDOW, 0));
        // A silent server: the slow attempt times out long after it began; the outage starts
        // there, so the call still gets its retries.
        let timeout = AttemptError::new(Cause::Timeout, "no bytes received for 120 s", "raise --idle-timeout");
        let at = t0 + Duration::from_secs(120);
        assert_eq!(b.record(at, slow, Outcome::Down(timeout.clone())), 1);
        assert_eq!(b.down_for(at), Some(Duration::ZERO));
        assert_eq!(b.open_for(at, WINDOW), None);
        // Past the window from that failure, the calls fail at once.
        let later = at + WINDOW + ms(1);
        let probe = go(b.admit(later, WINDOW, 0));
        assert!(probe.probe, "the slot of 22.75 s was not probed");
        assert!(matches!(b.admit(later, WINDOW, 0), Admission::Open(d) if d.last == timeout));
        // A 4xx is an answer: the server is up, whoever made the attempt.
        let bad_request = AttemptError::new(Cause::Status { status: 400, body: String::new() }, "bad request", "fix it");
        b.record(later + ms(1), other, Outcome::of_failure(&bad_request));
        assert_eq!(b.down_for(later + ms(1)), None);
        b.record(later + ms(2), probe, Outcome::Up);
        assert!(matches!(b.admit(later + ms(3), WINDOW, 0), Admission::Go(t) if !t.probe));
    }

    #[test]
    fn what_counts_as_down() {
        for cause in [Cause::Transport, Cause::Timeout, Cause::Status { status: 503, body: String::new() }] {
            assert!(is_down(&cause), "{cause:?}");
        }
        for cause in [
            Cause::Status { status: 501, body: String::new() },
            Cause::Status { status: 429, body: String::new() },
            Cause::Status { status: 307, body: String::new() },
            Cause::Tls,
            Cause::Invalid,
            Cause::TooLarge,
            Cause::Refused,
        ] {
            assert!(!is_down(&cause), "{cause:?}");
        }
        let tls = AttemptError::new(Cause::Tls, "m", "a");
        assert_eq!(Outcome::of_failure(&tls), Outcome::Neutral);
    }
}
