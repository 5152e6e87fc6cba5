//! The retry layer, one for every provider: [`Retrying`] turns a [`Provider`] (one attempt at a
//! time) into a [`ChatModel`].
//!
//! - Failed attempts are retried by the [`RetryPolicy`] (the config's `retry_policy`, else
//!   Weft's default; FORMAT.md 9.2), waiting the server's `Retry-After` when it gave one, else
//!   the policy's delay with its jitter, through an injectable [`Sleeper`]; no retry starts
//!   [`RETRY_BUDGET`] after the first attempt.
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

use crate::limit::{Limiter, Limiters};
use crate::providers::{AttemptError, Provider};
use crate::rng::Rng;
use crate::{ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorInfo};

/// How a [`Retrying`] model retries.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// When and how often.
    pub policy: RetryPolicy,
    /// Waits between attempts.
    pub sleeper: Arc<dyn Sleeper>,
    /// Seeds the jitter, for reproducible delays in tests.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryOptions {
    /// Weft's default policy, the tokio sleeper, an unseeded jitter.
    fn default() -> RetryOptions {
        RetryOptions { policy: RetryPolicy::default(), sleeper: Arc::new(TokioSleeper), jitter_seed: None }
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
    Budget,
}

impl<P: Provider> Retrying<P> {
    /// `provider` retried as `options` say, reporting to the limiter of its endpoint in
    /// `limiters`.
    pub fn wrap(provider: P, limiters: &Limiters, options: RetryOptions) -> Retrying<P> {
        let limiter = limiters.get(provider.endpoint());
        Retrying { provider, policy: options.policy, limiter, sleeper: options.sleeper, rng: Mutex::new(Rng::new(options.jitter_seed)) }
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

    /// The error after `attempts` attempts, the last failing with `failure`.
    fn error(&self, failure: &AttemptError, attempts: u32, why_stopped: Stop) -> LlmError {
        let retries = attempts.saturating_sub(1);
        let tries = match (attempts, why_stopped) {
            (1, Stop::NotRetryable) => "after 1 attempt (not retried)".to_owned(),
            (1, _) => "after 1 attempt (the retry policy allows no retries)".to_owned(),
            (n, Stop::Budget) => {
                format!("after {n} attempts ({retries} retries; retries stop {} s after the first attempt)", RETRY_BUDGET.as_secs())
            }
            (n, _) => format!("after {n} attempts ({retries} {})", if retries == 1 { "retry" } else { "retries" }),
        };
        let message = format!("{}, {tries}; {}", failure.message, failure.advice);
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

#[async_trait::async_trait]
impl<P: Provider> ChatModel for Retrying<P> {
    fn name(&self) -> &str {
        self.provider.name()
    }

    fn endpoint(&self) -> &str {
        self.provider.endpoint()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let payload = self.provider.prepare(request)?;
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let failure = match self.provider.attempt(&payload).await {
                Ok(response) => {
                    self.limiter.record_success();
                    return Ok(response);
                }
                Err(failure) => failure,
            };
            if failure.throttled {
                self.limiter.record_throttle();
            }
            if !self.policy.should_retry(&failure.cause) {
                return Err(self.error(&failure, attempts, Stop::NotRetryable));
            }
            if attempts > self.policy.max_retries {
                return Err(self.error(&failure, attempts, Stop::Exhausted));
            }
            // The real sleeper's waits are part of the elapsed time; an injected one's are not.
            let elapsed = started.elapsed().max(slept);
            let Some(left) = RETRY_BUDGET.checked_sub(elapsed).filter(|left| !left.is_zero()) else {
                return Err(self.error(&failure, attempts, Stop::Budget));
            };
            let delay = match failure.retry_after {
                Some(delay) => delay,
                None => {
                    let client_error = failure.cause.status().is_some_and(|s| (400..500).contains(&s));
                    self.policy.delay(attempts - 1, client_error, self.jitter())
                }
            };
            let delay = delay.min(left);
            self.sleeper.sleep(delay).await;
            slept += delay;
        }
    }
}
