//! The retry layer around any provider, without HTTP: a scripted provider fails attempts as told,
//! and the layer retries per the policy, waits `Retry-After` or the policy's delay (seen through
//! an injected sleeper), reports throttles and successes to the endpoint's limiter, and builds
//! the final message from the provider's parts with its secrets masked.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_guard::Secrets;
use weft_llm::limit::Limiters;
use weft_llm::providers::{AttemptError, Provider};
use weft_llm::retry::{Cause, Jitter, RecordingSleeper, RetryOptions, RetryPolicy, Retrying};
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError};

/// Answers each attempt with the next scripted outcome (`None`: success), counting attempts.
struct Scripted {
    outcomes: Mutex<Vec<Option<AttemptError>>>,
    attempts: Mutex<u32>,
    secrets: Secrets,
}

impl Scripted {
    fn new(outcomes: Vec<Option<AttemptError>>) -> Scripted {
        Scripted { outcomes: Mutex::new(outcomes), attempts: Mutex::new(0), secrets: Secrets::new(["sk-scripted-secret"]) }
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    type Payload = ();

    fn name(&self) -> &str {
        "scripted"
    }

    fn endpoint(&self) -> &str {
        "scripted://endpoint"
    }

    fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn prepare(&self, _request: &ChatRequest) -> Result<(), LlmError> {
        Ok(())
    }

    async fn attempt(&self, _payload: &()) -> Result<ChatResponse, AttemptError> {
        *self.attempts.lock().unwrap() += 1;
        let mut outcomes = self.outcomes.lock().unwrap();
        match outcomes.remove(0) {
            None => Ok(ChatResponse { text: "ok".into(), ..ChatResponse::default() }),
            Some(error) => Err(error),
        }
    }
}

fn failed(cause: Cause, retry_after: Option<Duration>) -> AttemptError {
    AttemptError { retry_after, ..AttemptError::new(cause, "scripted (model m): it failed, key sk-scripted-secret", "do something") }
}

fn status(status: u16) -> Cause {
    Cause::Status { status, body: String::new() }
}

fn retrying(outcomes: Vec<Option<AttemptError>>, policy: RetryPolicy) -> (Retrying<Scripted>, Arc<RecordingSleeper>, Limiters) {
    let sleeper = RecordingSleeper::new();
    let limiters = Limiters::default();
    let options = RetryOptions { policy, sleeper: sleeper.clone(), jitter_seed: Some(1), ..RetryOptions::default() };
    (Retrying::wrap(Scripted::new(outcomes), &limiters, options), sleeper, limiters)
}

#[tokio::test]
async fn throttles_are_retried_after_retry_after_and_reported_to_the_limiter() {
    let no_jitter = RetryPolicy { jitter: Jitter::None, ..RetryPolicy::default() };
    let outcomes = vec![Some(failed(status(429), Some(Duration::from_millis(250)))), Some(failed(Cause::Transport, None)), None];
    let (model, sleeper, limiters) = retrying(outcomes, no_jitter);
    let response = model.chat(&ChatRequest::default()).await.unwrap();
    assert_eq!(response.text, "ok");
    assert_eq!(*model.provider().attempts.lock().unwrap(), 3);
    // Retry-After first, then the policy's second delay (1 s × 2, no jitter).
    assert_eq!(sleeper.delays(), vec![Duration::from_millis(250), Duration::from_secs(2)]);
    let stats = limiters.get("scripted://endpoint").stats();
    assert_eq!(stats.throttles, 1);
    assert_eq!(model.endpoint(), "scripted://endpoint");
}

#[tokio::test]
async fn the_final_error_counts_attempts_and_masks_secrets() {
    let policy = RetryPolicy { max_retries: 2, ..RetryPolicy::default() };
    let outcomes = (0..3).map(|_| Some(failed(status(503), None))).collect();
    let (model, sleeper, _) = retrying(outcomes, policy);
    let error = model.chat(&ChatRequest::default()).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(error.to_string(), "scripted (model m): it failed, key [REDACTED], after 3 attempts (2 retries); do something");
    assert_eq!(sleeper.delays().len(), 2);

    let (model, sleeper, _) = retrying(vec![Some(failed(status(400), None))], RetryPolicy::default());
    let error = model.chat(&ChatRequest::default()).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert!(error.to_string().ends_with(", after 1 attempt (not retried); do something"), "{error}");
    assert!(sleeper.delays().is_empty());
}

#[tokio::test]
async fn final_causes_are_never_retried() {
    let (model, _, _) = retrying(vec![Some(failed(Cause::Invalid, None)), None], RetryPolicy::default());
    assert!(model.chat(&ChatRequest::default()).await.is_err());
    assert_eq!(*model.provider().attempts.lock().unwrap(), 1);
}

/// Fails its first attempt at once (connection refused), then hangs every later one.
struct RefusesThenHangs {
    attempts: Mutex<u32>,
    secrets: Secrets,
}

#[async_trait::async_trait]
impl Provider for RefusesThenHangs {
    type Payload = ();

    fn name(&self) -> &str {
        "hanging"
    }

    fn endpoint(&self) -> &str {
        "hanging://endpoint"
    }

    fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn prepare(&self, _request: &ChatRequest) -> Result<(), LlmError> {
        Ok(())
    }

    async fn attempt(&self, _payload: &()) -> Result<ChatResponse, AttemptError> {
        let first = {
            let mut attempts = self.attempts.lock().unwrap();
            *attempts += 1;
            *attempts == 1
        };
        if first {
            return Err(failed(Cause::Transport, None));
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(ChatResponse::default())
    }
}

/// While one call probes an endpoint that is down, another waits for the probe's outcome
/// instead of connecting; when the window ends (here capped by the call timeout) it fails at
/// once with the endpoint's outage, having made no attempt, and the probe is cut by its call
/// timeout.
#[tokio::test]
async fn a_call_waits_for_another_calls_probe_and_fails_when_its_window_ends() {
    let limiters = Limiters::default();
    let options = || RetryOptions {
        sleeper: RecordingSleeper::new(),
        jitter_seed: Some(1),
        call_timeout: Some(Duration::from_millis(800)),
        ..RetryOptions::default()
    };
    let provider = RefusesThenHangs { attempts: Mutex::new(0), secrets: Secrets::default() };
    let model = Arc::new(Retrying::wrap(provider, &limiters, options()));
    let prober = {
        let model = Arc::clone(&model);
        tokio::spawn(async move { model.chat(&ChatRequest::default()).await })
    };
    // The first call's first attempt was refused, its retry (the probe) hangs.
    while *model.provider().attempts.lock().unwrap() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Started 200 ms into the outage: its window ends 600 ms later, before its own deadline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = std::time::Instant::now();
    let waiter = model.chat(&ChatRequest::default()).await.unwrap_err();
    let waited = t0.elapsed();
    assert!(waited < Duration::from_millis(750), "it waited until the window's end, not its own deadline: {waited:?}");
    assert!(waiter.message.contains("the endpoint hanging://endpoint has been down for 0.8"), "{}", waiter.message);
    assert!(waiter.message.contains(" s (1 failed attempt, every call's, and no answer since)"), "{}", waiter.message);
    assert!(waiter.message.contains("longer than the retry policy's window of 0.8 s"), "{}", waiter.message);
    let probe = prober.await.unwrap().unwrap_err();
    assert!(probe.message.contains("no answer within the call timeout of 0.8 s"), "{}", probe.message);
    assert!(probe.message.contains("after 2 attempts (1 retries; no retry starts after the call timeout of 0.8 s)"), "{}", probe.message);
    assert_eq!(*model.provider().attempts.lock().unwrap(), 2, "the waiting call made no attempt");
}
