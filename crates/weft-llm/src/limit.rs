//! The provider-wide limiter: every LLM call of every run in the process passes through the
//! [`Limiter`] of its model endpoint.
//!
//! A limiter caps the calls in flight (2,048 by default, far above any node's `max_workers`,
//! so an ordinary flow is never throttled below its own bounds) and can pace requests per
//! second. It is adaptive: a provider that answers 429 makes [`Limiter::record_throttle`]
//! set that endpoint's cap to half the calls in flight (multiplicative decrease, at most once
//! per [`COOLDOWN`]), and
//! successes raise it again by one per cap's worth of calls (additive increase), up to the
//! configured maximum. Other endpoints are not affected.
//!
//! Each limiter also holds its endpoint's circuit breaker ([`crate::breaker::Breaker`]), and
//! tracks when each of its calls began, so a progress view can say how many have waited long
//! ([`Limiters::slow_calls`]).
//!
//! [`Limiters`] maps endpoints to their limiter; [`Limiters::global`] is the process-wide one
//! every run uses unless told otherwise. The registry also holds the network [`Timeouts`] the
//! models built for its endpoints use (connect, idle, whole call).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::breaker::Breaker;

/// The default cap of calls in flight per endpoint.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 2048;

/// The longest wait between two request starts, whatever the configured rate: one a year.
pub const MAX_GAP: Duration = Duration::from_secs(31_536_000);

/// The shortest time between two decreases of a cap: a burst of 429s answered to calls sent
/// together counts as one signal.
pub const COOLDOWN: Duration = Duration::from_millis(500);

/// The connect timeout when none is given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The idle timeout when none is given: an attempt fails when no byte of the answer arrived
/// for this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The timeout of a whole call (every attempt and wait) when none is given: WayFlow's retry
/// budget.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The network timeouts of LLM calls; each error says which one fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection (TCP and TLS).
    pub connect: Duration,
    /// Of silence: no byte of the answer for this long (waiting for the headers, then between
    /// two chunks of the body).
    pub idle: Duration,
    /// Of a whole call: its attempts, the waits between them and for the endpoint's probe. No
    /// retry starts after it, and an attempt in flight is cut.
    pub call: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 120 s of silence, 600 s per call.
    fn default() -> Self {
        Timeouts { connect: DEFAULT_CONNECT_TIMEOUT, idle: DEFAULT_IDLE_TIMEOUT, call: DEFAULT_CALL_TIMEOUT }
    }
}

/// Calls of one endpoint that have waited long, for progress views.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowCalls {
    /// The endpoint.
    pub endpoint: String,
    /// Calls begun (waiting for a slot, for the server or for the endpoint's probe) longer
    /// ago than the threshold asked about.
    pub count: usize,
    /// How long the endpoint has been down, when its breaker says it is.
    pub down_for: Option<Duration>,
}

/// How one endpoint is limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// Calls in flight at most (at least 1; clamped to what a tokio semaphore holds).
    pub max_in_flight: usize,
    /// Requests started per second at most, if capped.
    pub requests_per_second: Option<f64>,
    /// Lower the cap on 429s and raise it back on successes.
    pub adaptive: bool,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig { max_in_flight: DEFAULT_MAX_IN_FLIGHT, requests_per_second: None, adaptive: true }
    }
}

/// A snapshot of a limiter, for progress views and closing summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterStats {
    /// The endpoint.
    pub endpoint: String,
    /// The current cap of calls in flight.
    pub cap: usize,
    /// The lowest cap so far.
    pub lowest_cap: usize,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls waiting for a slot now.
    pub waiting: usize,
    /// Calls that had to wait so far.
    pub held_back: u64,
    /// 429s reported so far.
    pub throttles: u64,
}

/// The limiter of one endpoint. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Limiter {
    endpoint: String,
    config: LimitConfig,
    slots: Arc<Semaphore>,
    inner: Mutex<Inner>,
    breaker: Breaker,
}

#[derive(Debug)]
struct Inner {
    /// The current cap.
    cap: usize,
    lowest_cap: usize,
    /// Slots to take out of circulation as permits come back (a lowered cap whose slots
    /// were in use).
    debt: usize,
    in_flight: usize,
    waiting: usize,
    held_back: u64,
    throttles: u64,
    /// Successes since the last increase.
    successes: usize,
    last_decrease: Option<Instant>,
    /// When the next request may start, when paced.
    next_start: Option<Instant>,
    /// When each call now waiting or in flight began, by a number given in order.
    begun: BTreeMap<u64, Instant>,
    next_call: u64,
}

/// A slot taken from a [`Limiter`]; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    slot: Option<OwnedSemaphorePermit>,
    waited: Duration,
    call: u64,
}

impl Permit {
    /// How long the call waited for its slot (zero when one was free).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.limiter.lock();
        inner.begun.remove(&self.call);
        let Some(slot) = self.slot.take() else { return };
        inner.in_flight -= 1;
        if inner.debt > 0 {
            inner.debt -= 1;
            slot.forget();
        }
    }
}

/// Counts a waiting call for the stats, also when the wait is cancelled.
struct Waiting<'a>(&'a Limiter);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

/// Forgets when a call began if its wait for a slot is cancelled (a [`Permit`] forgets it
/// otherwise).
struct Begun<'a> {
    limiter: &'a Limiter,
    call: Option<u64>,
}

impl Drop for Begun<'_> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.limiter.lock().begun.remove(&call);
        }
    }
}

impl Limiter {
    /// A limiter for `endpoint`.
    pub fn new(endpoint: impl Into<String>, config: LimitConfig) -> Arc<Limiter> {
        // A tokio semaphore holds at most `Semaphore::MAX_PERMITS`; more would panic.
        let cap = config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Limiter {
            endpoint: endpoint.into(),
            config: LimitConfig { max_in_flight: cap, ..config },
            slots: Arc::new(Semaphore::new(cap)),
            inner: Mutex::new(Inner {
                cap,
                lowest_cap: cap,
                debt: 0,
                in_flight: 0,
                waiting: 0,
                held_back: 0,
                throttles: 0,
                successes: 0,
                last_decrease: None,
                next_start: None,
                begun: BTreeMap::new(),
                next_call: 0,
            }),
            breaker: Breaker::new(),
        })
    }

    /// The endpoint's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// How many calls now waiting or in flight began at least `threshold` ago.
    pub fn calls_older_than(&self, threshold: Duration) -> usize {
        let Some(cutoff) = Instant::now().checked_sub(threshold) else { return 0 };
        // Numbers are given in order of beginning, so the old calls come first.
        self.lock().begun.values().take_while(|begun| **begun <= cutoff).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock guards plain counters, so a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The endpoint this limiter guards.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The configuration.
    pub fn config(&self) -> LimitConfig {
        self.config
    }

    /// Waits for a slot (and for the pace, when requests per second are capped). Cancel-safe:
    /// dropping the future gives nothing up.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        self.acquire_with(|_| {}).await
    }

    /// Like [`Limiter::acquire`], calling `on_wait` with the limiter's counters first when
    /// the call has to wait for a slot (so a progress view can say calls are held back).
    pub async fn acquire_with(self: &Arc<Self>, on_wait: impl FnOnce(&LimiterStats)) -> Permit {
        let t0 = Instant::now();
        let call = {
            let mut inner = self.lock();
            inner.next_call += 1;
            let call = inner.next_call;
            inner.begun.insert(call, t0);
            call
        };
        let mut begun = Begun { limiter: self, call: Some(call) };
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                on_wait(&self.stats());
                {
                    let mut inner = self.lock();
                    inner.waiting += 1;
                    inner.held_back += 1;
                }
                let _waiting = Waiting(self);
                match Arc::clone(&self.slots).acquire_owned().await {
                    Ok(slot) => slot,
                    // Only a closed semaphore fails, and a limiter never closes its own: the
                    // call then goes unlimited rather than never.
                    Err(_) => {
                        begun.call = None;
                        return Permit { limiter: Arc::clone(self), slot: None, waited: t0.elapsed(), call };
                    }
                }
            }
        };
        self.lock().in_flight += 1;
        begun.call = None;
        let mut permit = Permit { limiter: Arc::clone(self), slot: Some(slot), waited: Duration::ZERO, call };
        if let Some(gap) = self.gap() {
            let start = {
                let mut inner = self.lock();
                let now = Instant::now();
                let start = inner.next_start.map_or(now, |n| n.max(now));
                // A gap too long to add to an instant leaves the next start unpaced rather than
                // panicking; the configured bounds (at least 0.001 requests per second, a gap of at
                // most 1,000 s) never come near it.
                inner.next_start = start.checked_add(gap);
                start
            };
            tokio::time::sleep_until(start.into()).await;
        }
        permit.waited = t0.elapsed();
        permit
    }

    /// The time between two request starts when requests per second are capped: `None` for
    /// no cap, and for a rate that is not a positive finite number. A rate so small that its gap
    /// overflows a `Duration` waits [`MAX_GAP`].
    fn gap(&self) -> Option<Duration> {
        let rps = self.config.requests_per_second.filter(|r| r.is_finite() && *r > 0.0)?;
        Some(Duration::try_from_secs_f64(1.0 / rps).unwrap_or(MAX_GAP).min(MAX_GAP))
    }

    /// The provider answered 429 (or otherwise asked to slow down): set the cap to half the
    /// calls in flight (or half the cap, if lower), unless it was lowered less than
    /// [`COOLDOWN`] ago or the limiter is not adaptive.
    pub fn record_throttle(&self) {
        let mut inner = self.lock();
        inner.throttles += 1;
        if !self.config.adaptive {
            return;
        }
        let now = Instant::now();
        if inner.last_decrease.is_some_and(|t| now.duration_since(t) < COOLDOWN) {
            return;
        }
        inner.last_decrease = Some(now);
        inner.successes = 0;
        // Halve what is actually in flight (a cap far above it would take several 429 bursts
        // to mean anything), as TCP halves its flight size.
        let target = (inner.cap.min(inner.in_flight.max(1)) / 2).max(1);
        let mut remove = inner.cap - target;
        inner.cap = target;
        inner.lowest_cap = inner.lowest_cap.min(target);
        // Take free slots out now, the rest as permits come back.
        while remove > 0 {
            match self.slots.try_acquire() {
                Ok(slot) => {
                    slot.forget();
                    remove -= 1;
                }
                Err(_) => break,
            }
        }
        inner.debt += remove;
    }

    /// A call succeeded: after a cap's worth of successes, raise the cap by one (up to the
    /// configured maximum).
    pub fn record_success(&self) {
        let mut inner = self.lock();
        if !self.config.adaptive || inner.cap >= self.config.max_in_flight {
            return;
        }
        inner.successes += 1;
        if inner.successes < inner.cap {
            return;
        }
        inner.successes = 0;
        inner.cap += 1;
        if inner.debt > 0 {
            inner.debt -= 1;
        } else {
            self.slots.add_permits(1);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LimiterStats {
        let inner = self.lock();
        LimiterStats {
            endpoint: self.endpoint.clone(),
            cap: inner.cap,
            lowest_cap: inner.lowest_cap,
            in_flight: inner.in_flight,
            waiting: inner.waiting,
            held_back: inner.held_back,
            throttles: inner.throttles,
        }
    }
}

/// Limiters by endpoint, created on first use with the default or the endpoint's own config.
#[derive(Debug, Clone)]
pub struct Limiters {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug)]
struct Registry {
    default: LimitConfig,
    timeouts: Timeouts,
    configs: HashMap<String, LimitConfig>,
    limiters: HashMap<String, Arc<Limiter>>,
}

impl Default for Limiters {
    fn default() -> Self {
        Limiters::new(LimitConfig::default())
    }
}

impl Limiters {
    /// A registry whose limiters use `default` unless configured per endpoint.
    pub fn new(default: LimitConfig) -> Limiters {
        Limiters {
            inner: Arc::new(Mutex::new(Registry {
                default,
                timeouts: Timeouts::default(),
                configs: HashMap::new(),
                limiters: HashMap::new(),
            })),
        }
    }

    /// The process-wide registry, with the default config.
    pub fn global() -> Limiters {
        static GLOBAL: OnceLock<Limiters> = OnceLock::new();
        GLOBAL.get_or_init(Limiters::default).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the config of every endpoint without one of its own; applies to limiters created
    /// after the call (a command configures the process's registry before its first call).
    pub fn set_default(&self, config: LimitConfig) {
        self.lock().default = config;
    }

    /// The network timeouts of the models built for these endpoints.
    pub fn timeouts(&self) -> Timeouts {
        self.lock().timeouts
    }

    /// Sets the network timeouts; applies to models built after the call.
    pub fn set_timeouts(&self, timeouts: Timeouts) {
        self.lock().timeouts = timeouts;
    }

    /// Per endpoint with calls begun at least `threshold` ago: how many, and how long the
    /// endpoint has been down if it is. Endpoints by name.
    pub fn slow_calls(&self, threshold: Duration) -> Vec<SlowCalls> {
        let limiters: Vec<Arc<Limiter>> = self.lock().limiters.values().cloned().collect();
        let mut slow: Vec<SlowCalls> = limiters
            .iter()
            .map(|l| SlowCalls { endpoint: l.endpoint.clone(), count: l.calls_older_than(threshold), down_for: l.breaker.down_for() })
            .filter(|s| s.count > 0)
            .collect();
        slow.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        slow
    }

    /// Sets the config of one endpoint; applies to limiters created after the call.
    pub fn configure(&self, endpoint: impl Into<String>, config: LimitConfig) {
        self.lock().configs.insert(endpoint.into(), config);
    }

    /// The limiter of `endpoint`, created on first use.
    pub fn get(&self, endpoint: &str) -> Arc<Limiter> {
        let mut registry = self.lock();
        if let Some(l) = registry.limiters.get(endpoint) {
            return Arc::clone(l);
        }
        let config = registry.configs.get(endpoint).copied().unwrap_or(registry.default);
        let limiter = Limiter::new(endpoint, config);
        registry.limiters.insert(endpoint.to_owned(), Arc::clone(&limiter));
        limiter
    }

    /// Snapshots of every limiter created so far, by endpoint name.
    pub fn stats(&self) -> Vec<LimiterStats> {
        let mut all: Vec<LimiterStats> = self.lock().limiters.values().map(|l| l.stats()).collect();
        all.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize) -> LimitConfig {
        LimitConfig { max_in_flight: max, requests_per_second: None, adaptive: true }
    }

    #[tokio::test]
    async fn caps_calls_in_flight_and_counts_the_held_back() {
        let limiter = Limiter::new("e", config(2));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        assert_eq!(limiter.stats().in_flight, 2);
        let l2 = Arc::clone(&limiter);
        let third = tokio::spawn(async move { l2.acquire().await.waited() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(limiter.stats().waiting, 1);
        assert!(!third.is_finished());
        drop(a);
        let waited = third.await.expect("task");
        assert!(waited >= Duration::from_millis(15), "waited {waited:?}");
        let stats = limiter.stats();
        assert_eq!((stats.waiting, stats.held_back, stats.in_flight), (0, 1, 1));
    }

    #[tokio::test]
    async fn a_cancelled_wait_gives_nothing_up() {
        let limiter = Limiter::new("e", config(1));
        let held = limiter.acquire().await;
        let waiting = tokio::time::timeout(Duration::from_millis(10), limiter.acquire()).await;
        assert!(waiting.is_err());
        assert_eq!(limiter.stats().waiting, 0);
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(100), limiter.acquire()).await;
        assert!(again.is_ok(), "the slot came back");
    }

    #[tokio::test]
    async fn a_throttle_halves_the_calls_in_flight_once_per_cooldown_and_successes_raise_it_back() {
        let limiter = Limiter::new("e", config(16));
        let held: Vec<Permit> = futures_join(&limiter, 8).await;
        limiter.record_throttle();
        limiter.record_throttle(); // same burst: ignored
        let stats = limiter.stats();
        assert_eq!((stats.cap, stats.lowest_cap, stats.throttles), (4, 4, 2));
        drop(held);
        // 8 slots came back but only 4 are in circulation.
        let now: Vec<Permit> = futures_join(&limiter, 4).await;
        assert!(tokio::time::timeout(Duration::from_millis(10), limiter.acquire()).await.is_err());
        drop(now);
        for _ in 0..4 {
            limiter.record_success();
        }
        assert_eq!(limiter.stats().cap, 5);
        let five: Vec<Permit> = futures_join(&limiter, 5).await;
        assert_eq!(limiter.stats().in_flight, 5);
        drop(five);
    }

    #[tokio::test]
    async fn a_fixed_limiter_ignores_throttles() {
        let limiter = Limiter::new("e", LimitConfig { adaptive: false, ..config(4) });
        limiter.record_throttle();
        assert_eq!(limiter.stats().cap, 4);
    }

    #[tokio::test]
    async fn requests_per_second_space_the_starts() {
        let limiter = Limiter::new("e", LimitConfig { requests_per_second: Some(50.0), ..config(10) });
        let t0 = Instant::now();
        let _p = futures_join(&limiter, 4).await;
        // Starts at 0, 20, 40 and 60 ms.
        assert!(t0.elapsed() >= Duration::from_millis(55), "{:?}", t0.elapsed());
    }

    #[test]
    fn the_registry_gives_one_limiter_per_endpoint_with_its_config() {
        let limiters = Limiters::new(config(3));
        limiters.configure("slow", config(1));
        let a = limiters.get("fast");
        assert!(Arc::ptr_eq(&a, &limiters.get("fast")));
        assert_eq!(a.config().max_in_flight, 3);
        assert_eq!(limiters.get("slow").config().max_in_flight, 1);
        assert_eq!(limiters.stats().len(), 2);
        assert_eq!(Limiters::global().get("x").config(), LimitConfig::default());
    }

    #[tokio::test]
    async fn calls_are_counted_by_age_until_their_permit_is_dropped() {
        let limiters = Limiters::new(config(1));
        let limiter = limiters.get("e");
        let held = limiter.acquire().await;
        let l2 = Arc::clone(&limiter);
        let waiting = tokio::spawn(async move { l2.acquire().await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(limiter.calls_older_than(Duration::from_millis(20)), 2);
        assert_eq!(limiter.calls_older_than(Duration::from_secs(30)), 0);
        let slow = limiters.slow_calls(Duration::from_millis(20));
        assert_eq!(slow, vec![SlowCalls { endpoint: "e".into(), count: 2, down_for: None }]);
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(limiter.calls_older_than(Duration::ZERO), 1, "a cancelled wait is forgotten");
        drop(held);
        assert_eq!(limiter.calls_older_than(Duration::ZERO), 0);
        assert!(limiters.slow_calls(Duration::ZERO).is_empty());
    }

    #[test]
    fn the_registry_holds_the_timeouts_and_a_default() {
        let limiters = Limiters::default();
        assert_eq!(limiters.timeouts(), Timeouts::default());
        let t = Timeouts { connect: Duration::from_secs(1), idle: Duration::from_secs(2), call: Duration::from_secs(3) };
        limiters.set_timeouts(t);
        assert_eq!(limiters.timeouts(), t);
        limiters.set_default(config(7));
        assert_eq!(limiters.get("new").config().max_in_flight, 7);
    }

    async fn futures_join(limiter: &Arc<Limiter>, n: usize) -> Vec<Permit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(limiter.acquire().await);
        }
        out
    }
}
