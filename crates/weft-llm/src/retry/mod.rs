//! The retry layer, one for every provider: [`Retrying`] turns a [`Provider`] (one attempt at a
//! time) into a [`ChatModel`].
//!
//! - Failed attempts are retried by the [`RetryPolicy`] (the config's `retry_policy`, else
//!   Weft's default; FORMAT.md 9.2), waiting the server's `Retry-After` when it gave one, else
//!   the policy's delay with its jitter, through an injectable [`Sleeper`].
//! - A whole call has a timeout ([`crate::limit::Timeouts::call`], 600 s by default, WayFlow's
//!   retry budget): no retry starts after it, the last wait is shortened to what remains, and an
//!   attempt still in flight then is cut, with an error naming the call timeout.
//! - Every attempt passes the endpoint's circuit breaker ([`crate::breaker`]): while the
//!   endpoint is down (refused connections, timeouts, `5xx`), one call at a time probes it and
//!   the others wait for the outcome or take the probe's failure as theirs; a failed call waits
//!   at least until the next probe slot; once the endpoint has been down longer than the call's
//!   window ([`RetryPolicy::window`]), the call fails at once with an error naming the endpoint
//!   and how long it has been down.
//! - Every throttled attempt (429) lowers the endpoint's adaptive [`Limiter`]; every success
//!   raises it back. The layer does not take the limiter's permits: the engine holds one around
//!   the whole call, retries included.
//! - The final error says what happened (the provider's message), how many attempts were made
//!   and why they stopped, and what to do (the provider's advice), with every form of the
//!   provider's secrets masked; its kind is decided by [`classify`], the same for every
//!   provider, and it keeps the status, the provider's error type, code and message and the
//!   request id, masked too.

pub mod classify;
pub mod policy;
pub mod sleep;

pub use classify::classify;
pub use policy::{Cause, Jitter, RETRY_AFTER_CAP, RETRY_BUDGET, RetryPolicy, parse_retry_after};
pub use sleep::{RecordingSleeper, Sleeper, TokioSleeper};

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::breaker::{Admission, Down, Outcome, is_down};
use crate::limit::{Limiter, Limiters};
use crate::providers::{AttemptError, Provider};
use crate::rng::Rng;
use crate::{ChatModel, ChatRequest, ChatResponse, DeltaSink, LlmError, LlmErrorInfo};

/// How a [`Retrying`] model retries.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// When and how often.
    pub policy: RetryPolicy,
    /// Waits between attempts.
    pub sleeper: Arc<dyn Sleeper>,
    /// Seeds the jitter, for reproducible delays in tests.
    pub jitter_seed: Option<u64>,
    /// The timeout of a whole call; `None` takes the limiters' ([`Limiters::timeouts`]).
    pub call_timeout: Option<Duration>,
}

impl Default for RetryOptions {
    /// Weft's default policy, the tokio sleeper, an unseeded jitter, the limiters' call timeout.
    fn default() -> RetryOptions {
        RetryOptions { policy: RetryPolicy::default(), sleeper: Arc::new(TokioSleeper), jitter_seed: None, call_timeout: None }
    }
}

/// A provider with retries: a [`ChatModel`] whose every call makes attempts until one succeeds,
/// the policy gives up, or the budget is spent.
pub struct Retrying<P> {
    provider: P,
    policy: RetryPolicy,
    limiter: Arc<Limiter>,
    sleeper: Arc<dyn Sleeper>,
    rng: Mutex<Rng>,
    call_timeout: Duration,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Retrying<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrying").field("provider", &self.provider).field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// Why retrying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    NotRetryable,
    Exhausted,
    /// No time left for a retry within the call timeout, or the attempt was cut by it.
    CallTimeout,
}

/// What a call has been through so far.
#[derive(Debug, Clone, Copy, Default)]
struct Tries {
    /// Attempts, its own and those another call's probe answered.
    attempts: u32,
    /// Of them, answered by another call's probe while the endpoint was down.
    shared: u32,
}

impl<P: Provider> Retrying<P> {
    /// `provider` retried as `options` say, reporting to the limiter of its endpoint in
    /// `limiters`.
    pub fn wrap(provider: P, limiters: &Limiters, options: RetryOptions) -> Retrying<P> {
        let limiter = limiters.get(provider.endpoint());
        let call_timeout = options.call_timeout.unwrap_or_else(|| limiters.timeouts().call);
        Retrying {
            provider,
            policy: options.policy,
            limiter,
            sleeper: options.sleeper,
            rng: Mutex::new(Rng::new(options.jitter_seed)),
            call_timeout,
        }
    }

    /// The timeout of a whole call.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn jitter(&self) -> f64 {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner).unit()
    }

    /// The error after `tries`, the last failing with `failure`.
    fn error(&self, failure: &AttemptError, tries: Tries, why_stopped: Stop) -> LlmError {
        let Tries { attempts, shared } = tries;
        let retries = attempts.saturating_sub(1);
        let call_timeout = seconds(self.call_timeout);
        let mut tries = match (attempts, why_stopped) {
            (0, _) => "before an attempt of its own (it waited for another call's probe of the endpoint)".to_owned(),
            (1, Stop::NotRetryable) => "after 1 attempt (not retried)".to_owned(),
            (1, Stop::Exhausted) => "after 1 attempt (the retry policy allows no retries)".to_owned(),
            (1, Stop::CallTimeout) => format!("after 1 attempt (no time left for a retry within the call timeout of {call_timeout} s)"),
            (n, Stop::CallTimeout) => {
                format!("after {n} attempts ({retries} retries; no retry starts after the call timeout of {call_timeout} s)")
            }
            (n, _) => format!("after {n} attempts ({retries} {})", if retries == 1 { "retry" } else { "retries" }),
        };
        if shared > 0 {
            tries.pop();
            tries.push_str(&format!(
                "; {shared} of them answered by another call's attempt while the endpoint was down, instead of a connection of its own)"
            ));
        }
        self.final_error(failure, format!("{}, {tries}; {}", failure.message, failure.advice))
    }

    /// The error of a call to an endpoint that has been down longer than the call's window.
    fn down_error(&self, down: &Down, window: Duration) -> LlmError {
        let failure = &down.last;
        let message = format!(
            "{}; the endpoint {} has been down for {} s ({} failed attempt{}, every call's, and no answer since), longer than the retry policy's window of {} s, so calls to it now fail at once instead of each retrying; {}; one call probes it every {} s, and calls go through again as soon as it answers",
            failure.message,
            self.provider.endpoint(),
            seconds(down.down_for),
            down.failures,
            if down.failures == 1 { "" } else { "s" },
            seconds(window),
            failure.advice,
            crate::breaker::MAX_PROBE_GAP.as_secs(),
        );
        self.final_error(failure, message)
    }

    /// The call timeout cut the attempt in flight.
    fn call_timeout_failure(&self) -> AttemptError {
        let call_timeout = seconds(self.call_timeout);
        AttemptError::new(
            Cause::Timeout,
            format!("{}: no answer within the call timeout of {call_timeout} s (the whole call, retries included)", self.provider.name()),
            format!(
                "check that the server is not overloaded, or raise the call timeout (--call-timeout, {} s by default) if its calls take longer",
                crate::limit::DEFAULT_CALL_TIMEOUT.as_secs()
            ),
        )
    }

    /// The final error: its kind classified from `failure`, every field masked.
    fn final_error(&self, failure: &AttemptError, message: String) -> LlmError {
        // Whatever the server echoed (the key in an error body, a request id, a redirect
        // target), no form of a secret leaves through the message or any other field.
        let secrets = self.provider.secrets();
        let mask = |text: &str| secrets.redact_str(text).into_owned();
        let mask_some = |text: &Option<String>| text.as_deref().map(mask);
        LlmError::from(LlmErrorInfo {
            kind: classify(failure),
            status: failure.cause.status(),
            provider_type: mask_some(&failure.provider.kind),
            provider_code: mask_some(&failure.provider.code),
            provider_message: mask_some(&failure.provider.message),
            request_id: mask_some(&failure.request_id),
            message: mask(&message),
        })
    }
}

/// `23`, `0.3`, `1.25`: seconds as a message writes them.
pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 || s >= 100.0 { format!("{:.0}", s) } else { format!("{}", (s * 100.0).round() / 100.0) }
}

#[async_trait::async_trait]
impl<P: Provider> ChatModel for Retrying<P> {
    fn name(&self) -> &str {
        self.provider.name()
    }

    fn endpoint(&self) -> &str {
        self.provider.endpoint()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.call(request, None).await
    }

    /// Streamed: each attempt hands its text to `on_delta` as it arrives, so after a retry the
    /// text starts again.
    async fn chat_streaming(&self, request: &ChatRequest, on_delta: DeltaSink<'_>) -> Result<ChatResponse, LlmError> {
        self.call(request, Some(on_delta)).await
    }
}

impl<P: Provider> Retrying<P> {
    /// One call: attempts under the retry policy, the breaker and the call timeout, streamed
    /// when `on_delta` is given.
    async fn call(&self, request: &ChatRequest, mut on_delta: Option<DeltaSink<'_>>) -> Result<ChatResponse, LlmError> {
        let payload = match on_delta {
            Some(_) => self.provider.prepare_streaming(request)?,
            None => self.provider.prepare(request)?,
        };
        let started = Instant::now();
        let deadline = started.checked_add(self.call_timeout);
        // Never shorter than 2 s, so that a policy of tiny delays does not make one slow answer
        // fail the next calls at once.
        let window = self.policy.window().max(crate::breaker::MIN_WINDOW).min(self.call_timeout);
        let breaker = self.limiter.breaker();
        let mut slept = Duration::ZERO;
        let mut tries = Tries::default();
        // The last failure of the endpoint's outage this call has counted (its own or shared).
        let mut seen = 0;
        loop {
            let changed = breaker.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let failure = match breaker.admit(window, seen) {
                Admission::Open(down) => return Err(self.down_error(&down, window)),
                Admission::Wait { until } => {
                    // Another call probes the endpoint: wait for its outcome, at most until the
                    // call's window (or the call itself) ends, and ask again.
                    let until = deadline.map_or(until, |d| d.min(until));
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(until.into()) => {}
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(self.error(&self.call_timeout_failure(), tries, Stop::CallTimeout));
                    }
                    continue;
                }
                Admission::Shared { failure, seq } => {
                    seen = seq;
                    tries.attempts += 1;
                    tries.shared += 1;
                    failure
                }
                Admission::Go(ticket) => {
                    tries.attempts += 1;
                    let attempt = breaker.attempt(ticket);
                    let sent = async {
                        match on_delta.as_deref_mut() {
                            Some(sink) => self.provider.attempt_streaming(&payload, sink).await,
                            None => self.provider.attempt(&payload).await,
                        }
                    };
                    let answer = match deadline {
                        Some(deadline) => tokio::time::timeout_at(deadline.into(), sent).await,
                        None => Ok(sent.await),
                    };
                    match answer {
                        Ok(Ok(response)) => {
                            attempt.record(Outcome::Up);
                            self.limiter.record_success();
                            return Ok(response);
                        }
                        Ok(Err(failure)) => {
                            let seq = attempt.record(Outcome::of_failure(&failure));
                            seen = seen.max(seq);
                            failure
                        }
                        Err(_) => {
                            let failure = self.call_timeout_failure();
                            attempt.record(Outcome::Down(failure.clone()));
                            return Err(self.error(&failure, tries, Stop::CallTimeout));
                        }
                    }
                }
            };
            if failure.throttled {
                self.limiter.record_throttle();
            }
            if !self.policy.should_retry(&failure.cause) {
                return Err(self.error(&failure, tries, Stop::NotRetryable));
            }
            if tries.attempts > self.policy.max_retries {
                return Err(self.error(&failure, tries, Stop::Exhausted));
            }
            let down = is_down(&failure.cause);
            if down && let Some(outage) = breaker.open_for(window) {
                return Err(self.down_error(&outage, window));
            }
            // The real sleeper's waits are part of the elapsed time; an injected one's are not.
            let elapsed = started.elapsed().max(slept);
            let Some(left) = self.call_timeout.checked_sub(elapsed).filter(|left| !left.is_zero()) else {
                return Err(self.error(&failure, tries, Stop::CallTimeout));
            };
            let delay = match failure.retry_after {
                Some(delay) => delay,
                None => {
                    let client_error = failure.cause.status().is_some_and(|s| (400..500).contains(&s));
                    self.policy.delay(tries.attempts - 1, client_error, self.jitter())
                }
            };
            // While the endpoint is down, no call tries again before the next probe slot, nor
            // sleeps past the end of its window (it then fails at once), unless the server said
            // when to come back (`Retry-After`).
            let delay = match breaker.until_open(window).filter(|_| down) {
                Some(_) if failure.retry_after.is_some() => delay.max(breaker.floor()),
                Some(until_open) => delay.max(breaker.floor()).min(until_open),
                None => delay,
            };
            let delay = delay.min(left);
            self.sleeper.sleep(delay).await;
            slept += delay;
        }
    }
}
