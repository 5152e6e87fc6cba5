//! [`HttpClient`]: sends [`HttpRequest`]s over the network, with WayFlow's retry rules.
//!
//! - The URL is rewritten first (`--http-rewrite`), then its host checked against
//!   `--allow-host` ([`EgressPolicy`]) before anything is sent.
//! - Every request of one origin (`scheme://host:port`) passes that origin's [`Limiter`]
//!   (the limiters of the LLM endpoints, `--max-in-flight`, `--rps`): one permit for the whole
//!   request, its retries included; a 429 lowers the cap, successes raise it.
//! - Without a `retry_policy` ([`HttpRetry::Legacy`]): at most [`LEGACY_TRIES`] tries, any non-2xx
//!   answer tried again at once, a failure without an answer not retried, each attempt
//!   [`DEFAULT_LEGACY_TIMEOUT`] long (the default timeout of WayFlow's HTTP client). With one:
//!   FORMAT.md 9.2, as the LLM calls do ([`RetryPolicy::should_retry`], its delays and jitter,
//!   `Retry-After` capped at 30 s), each attempt the policy's `request_timeout` long (else the
//!   idle timeout, `--idle-timeout`).
//! - The whole request (attempts and waits) is bounded by the call timeout (`--call-timeout`, 600
//!   s, WayFlow's budget): no retry starts after it, and an attempt still running is cut.
//! - Redirects are never followed (a 3xx is an answer like any non-2xx); bodies are read up to
//!   [`MAX_HTTP_RESPONSE_BYTES`].
//! - Messages never quote a header value; the request's sensitive header values and the client's
//!   secrets are masked in every message.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};

use weft_guard::egress::without_credentials;
use weft_guard::{EgressPolicy, Secrets, Target};

use super::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpRetry, HttpSend, Rewrites};
use crate::body::{BodyError, read_capped, size};
use crate::limit::{Limiter, Limiters};
use crate::providers::openai::client::{chain, is_tls};
use crate::retry::{Cause, Sleeper, TokioSleeper, parse_retry_after, seconds};
use crate::rng::Rng;

/// Tries of a request without `retry_policy` (WayFlow's legacy loop).
pub const LEGACY_TRIES: u32 = 3;

/// The timeout of each attempt of a request without `retry_policy`: WayFlow's HTTP client's
/// default (5 s to connect, and between two reads).
pub const DEFAULT_LEGACY_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response body read (32 MiB).
pub const MAX_HTTP_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How an [`HttpClient`] sends.
#[derive(Clone)]
pub struct HttpOptions {
    /// Where requests may go (`--allow-host`), checked on the rewritten URL.
    pub egress: EgressPolicy,
    /// `--http-rewrite` rules.
    pub rewrites: Rewrites,
    /// The limiters requests pass (by origin), and the connect, idle and call timeouts.
    pub limiters: Limiters,
    /// Waits between attempts.
    pub sleeper: Arc<dyn Sleeper>,
    /// Seeds the jitter, for reproducible delays in tests.
    pub jitter_seed: Option<u64>,
    /// The largest response body read.
    pub max_response_bytes: usize,
    /// Each attempt's timeout without a `retry_policy`.
    pub legacy_timeout: Duration,
    /// A client to share; built when `None` (no redirects, no proxy, the connect timeout).
    pub client: Option<reqwest::Client>,
    /// Masked in every message.
    pub secrets: Arc<Secrets>,
}

impl Default for HttpOptions {
    /// No host restriction, no rewrite, the global limiters, the tokio sleeper, 32 MiB, 5 s.
    fn default() -> HttpOptions {
        HttpOptions {
            egress: EgressPolicy::unrestricted(),
            rewrites: Rewrites::none(),
            limiters: Limiters::global(),
            sleeper: Arc::new(TokioSleeper),
            jitter_seed: None,
            max_response_bytes: MAX_HTTP_RESPONSE_BYTES,
            legacy_timeout: DEFAULT_LEGACY_TIMEOUT,
            client: None,
            secrets: Arc::new(Secrets::default()),
        }
    }
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("egress", &self.egress)
            .field("rewrites", &self.rewrites)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("legacy_timeout", &self.legacy_timeout)
            .finish_non_exhaustive()
    }
}

/// Sends requests over the network (see the [module docs](self)).
pub struct HttpClient {
    options: HttpOptions,
    client: reqwest::Client,
    rng: Mutex<Rng>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("options", &self.options).finish_non_exhaustive()
    }
}

/// A failed attempt.
#[derive(Debug)]
enum Fail {
    /// No answer within the attempt's timeout.
    Timeout(Duration),
    /// No connection within the client's connect timeout.
    ConnectTimeout(Duration),
    /// The call timeout cut the attempt.
    CallTimeout(Duration),
    Connect(String),
    Tls(String),
    Transport(String),
    TooLarge(usize),
}

impl Fail {
    fn of(error: &reqwest::Error, connect_timeout: Duration, timeout: Duration) -> Fail {
        let text = chain(error);
        if is_tls(error) {
            Fail::Tls(text)
        } else if error.is_timeout() && error.is_connect() {
            Fail::ConnectTimeout(connect_timeout)
        } else if error.is_timeout() {
            Fail::Timeout(timeout)
        } else if error.is_connect() {
            Fail::Connect(text)
        } else {
            Fail::Transport(text)
        }
    }

    /// How the retry policy judges it.
    fn cause(&self) -> Cause {
        match self {
            Fail::Timeout(_) | Fail::ConnectTimeout(_) | Fail::CallTimeout(_) => Cause::Timeout,
            Fail::Connect(_) | Fail::Transport(_) => Cause::Transport,
            Fail::Tls(_) => Cause::Tls,
            Fail::TooLarge(_) => Cause::TooLarge,
        }
    }

    fn kind(&self) -> HttpErrorKind {
        match self {
            Fail::Timeout(_) | Fail::ConnectTimeout(_) | Fail::CallTimeout(_) => HttpErrorKind::Timeout,
            Fail::Connect(_) => HttpErrorKind::Connect,
            Fail::Tls(_) => HttpErrorKind::Tls,
            Fail::Transport(_) => HttpErrorKind::Transport,
            Fail::TooLarge(_) => HttpErrorKind::TooLarge,
        }
    }

    /// What happened, and what to do.
    fn describe(&self, retry: &HttpRetry) -> (String, String) {
        let attempt_timeout = match retry {
            HttpRetry::Legacy => {
                format!("{} s without a retry_policy, the default of WayFlow's HTTP client", seconds(DEFAULT_LEGACY_TIMEOUT))
            }
            HttpRetry::Policy(_) => "the retry_policy's request_timeout, else the idle timeout (--idle-timeout)".to_owned(),
            HttpRetry::Once(_) => "the connection's timeout".to_owned(),
        };
        match self {
            Fail::Timeout(t) => (
                format!("no answer within {} s (the attempt timeout: {attempt_timeout})", seconds(*t)),
                "check that the server is up and not overloaded, or give the node a retry_policy with a longer request_timeout".to_owned(),
            ),
            Fail::ConnectTimeout(t) => (
                format!("cannot connect within {} s (the connect timeout)", seconds(*t)),
                "check that the server is running and reachable, or raise --connect-timeout".to_owned(),
            ),
            Fail::CallTimeout(t) => (
                format!("no answer within the call timeout of {} s (the whole request, retries included)", seconds(*t)),
                "check that the server is not overloaded, or raise --call-timeout".to_owned(),
            ),
            Fail::Connect(e) => (
                format!("cannot connect: {e}"),
                "check that the server is running and the URL is right (to reach a local server instead, use --http-rewrite PREFIX=URL)"
                    .to_owned(),
            ),
            Fail::Tls(e) => (
                format!("TLS failed: {e}"),
                "check the server's certificate and the URL's scheme (TLS failures are never retried)".to_owned(),
            ),
            Fail::Transport(e) => {
                (format!("the connection failed: {e}"), "check the server's logs, or give the node a retry_policy".to_owned())
            }
            Fail::TooLarge(cap) => (
                format!("the response body is larger than {}, the most weft reads of an HTTP response; reading stopped there", size(*cap)),
                "ask the API for less (a page, a filter)".to_owned(),
            ),
        }
    }
}

/// An answer, as an attempt read it.
struct Answer {
    status: u16,
    body: Bytes,
    retry_after: Option<Duration>,
    location: Option<String>,
}

/// What is sent on every attempt.
struct Prepared {
    method: reqwest::Method,
    url: String,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl HttpClient {
    /// A client with these options; fails only when the HTTP client cannot be built.
    pub fn new(options: HttpOptions) -> Result<HttpClient, String> {
        let client = match &options.client {
            Some(client) => client.clone(),
            None => crate::providers::openai::http_client(options.limiters.timeouts().connect)?,
        };
        let rng = Mutex::new(Rng::new(options.jitter_seed));
        Ok(HttpClient { options, client, rng })
    }

    /// The options.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    fn jitter(&self) -> f64 {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner).unit()
    }

    /// One attempt.
    async fn attempt(&self, prepared: &Prepared, timeout: Duration) -> Result<Answer, Fail> {
        let mut builder = self.client.request(prepared.method.clone(), &prepared.url).headers(prepared.headers.clone());
        if let Some(body) = &prepared.body {
            builder = builder.body(body.clone());
        }
        let connect_timeout = self.options.limiters.timeouts().connect;
        let response = match tokio::time::timeout(timeout, builder.send()).await {
            Ok(sent) => sent.map_err(|e| Fail::of(&e, connect_timeout, timeout))?,
            Err(_) => return Err(Fail::Timeout(timeout)),
        };
        let status = response.status();
        let retry_after = (!status.is_success())
            .then(|| {
                response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, SystemTime::now()))
            })
            .flatten();
        let location = status
            .is_redirection()
            .then(|| response.headers().get(LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .flatten();
        let body = read_capped(response, self.options.max_response_bytes, timeout).await.map_err(|e| match e {
            BodyError::TooLarge => Fail::TooLarge(self.options.max_response_bytes),
            BodyError::Idle => Fail::Timeout(timeout),
            BodyError::Failed(e) => Fail::of(&e, connect_timeout, timeout),
        })?;
        Ok(Answer { status: status.as_u16(), body, retry_after, location })
    }
}

#[async_trait::async_trait]
impl HttpSend for HttpClient {
    fn name(&self) -> &str {
        "http"
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let rewritten = self.options.rewrites.apply(&request.url);
        let to = rewritten.as_deref().unwrap_or(&request.url);
        let shown_rewritten = rewritten.as_deref().map(without_credentials);
        let mut label = format!("{} {}", request.method, without_credentials(&request.url));
        if let Some(to) = &shown_rewritten {
            label.push_str(&format!(" (sent to {to} by --http-rewrite)"));
        }
        let fail = |kind: HttpErrorKind, attempts: u32, message: String| {
            let mut secrets = (*self.options.secrets).clone();
            secrets.extend(request.sensitive_headers.iter().map(|(_, v)| v.clone()).filter(|v| !v.is_empty()));
            HttpError {
                kind,
                message: secrets.redact_str(&format!("{label}: {message}")).into_owned(),
                attempts,
                rewritten: shown_rewritten.clone(),
            }
        };
        let target =
            Target::parse(to).map_err(|problem| fail(HttpErrorKind::Invalid, 0, format!("the URL {problem}; nothing was sent")))?;
        if let Err(refused) = self.options.egress.check(&target) {
            return Err(fail(HttpErrorKind::Refused, 0, format!("{refused}; nothing was sent")));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            fail(
                HttpErrorKind::Invalid,
                0,
                format!("{:?} is not an HTTP method: give http_method a method such as GET or POST", request.method),
            )
        })?;
        let mut headers = HeaderMap::new();
        let all = request.headers.iter().map(|h| (h, false)).chain(request.sensitive_headers.iter().map(|h| (h, true)));
        for ((name, value), sensitive) in all {
            let field = if sensitive { "sensitive_headers" } else { "headers" };
            let name_ok = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                fail(HttpErrorKind::Invalid, 0, format!("the header name {name:?} (in {field}) is not a valid HTTP header name"))
            })?;
            let printable = value.chars().all(|c| c == '\t' || (c.is_ascii() && !c.is_ascii_control()));
            let value_ok = HeaderValue::from_str(value).ok().filter(|_| printable).ok_or_else(|| {
                fail(
                    HttpErrorKind::Invalid,
                    0,
                    format!("the value of header {name:?} (in {field}) is not printable ASCII text; WayFlow refuses it too (UnicodeEncodeError): encode it first"),
                )
            })?;
            headers.insert(name_ok, value_ok);
        }
        let prepared = Prepared { method, url: to.to_owned(), headers, body: request.body.as_ref().map(|b| Bytes::from(b.clone())) };
        let endpoint = format!("{}://{}", target.scheme, target.authority());
        let limiter: Arc<Limiter> = self.options.limiters.get(&endpoint);
        let _permit = limiter.acquire().await;

        let timeouts = self.options.limiters.timeouts();
        let call_timeout = timeouts.call;
        let started = Instant::now();
        let deadline = started.checked_add(call_timeout);
        let (legacy, attempt_timeout) = match &request.retry {
            HttpRetry::Legacy => (true, self.options.legacy_timeout),
            HttpRetry::Policy(policy) => (false, policy.request_timeout.unwrap_or(timeouts.idle)),
            HttpRetry::Once(timeout) => (false, *timeout),
        };
        let mut attempts = 0u32;
        let mut slept = Duration::ZERO;
        loop {
            attempts += 1;
            let outcome = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), self.attempt(&prepared, attempt_timeout)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Fail::CallTimeout(call_timeout)),
                },
                None => self.attempt(&prepared, attempt_timeout).await,
            };
            let elapsed = started.elapsed().max(slept);
            let left = call_timeout.checked_sub(elapsed).filter(|left| !left.is_zero());
            let (retry, delay) = match (&outcome, &request.retry) {
                (Ok(answer), _) if (200..300).contains(&answer.status) => (false, Duration::ZERO),
                (Ok(_), HttpRetry::Legacy) => (attempts < LEGACY_TRIES, Duration::ZERO),
                (Err(_), HttpRetry::Legacy) => (false, Duration::ZERO),
                (_, HttpRetry::Once(_)) => (false, Duration::ZERO),
                (Ok(answer), HttpRetry::Policy(policy)) => {
                    let cause = Cause::Status { status: answer.status, body: String::from_utf8_lossy(&answer.body).into_owned() };
                    let delay = answer
                        .retry_after
                        .unwrap_or_else(|| policy.delay(attempts - 1, (400..500).contains(&answer.status), self.jitter()));
                    (attempts <= policy.max_retries && policy.should_retry(&cause), delay)
                }
                (Err(failure), HttpRetry::Policy(policy)) => {
                    let retry =
                        !matches!(failure, Fail::CallTimeout(_)) && attempts <= policy.max_retries && policy.should_retry(&failure.cause());
                    (retry, policy.delay(attempts - 1, false, self.jitter()))
                }
            };
            if let Ok(answer) = &outcome {
                if answer.status == 429 {
                    limiter.record_throttle();
                } else if (200..300).contains(&answer.status) {
                    limiter.record_success();
                }
            }
            let retry = retry && left.is_some();
            if !retry {
                return match outcome {
                    Ok(answer) => Ok(HttpResponse {
                        status: answer.status,
                        body: String::from_utf8_lossy(&answer.body).into_owned(),
                        location: answer.location,
                        attempts,
                        rewritten: shown_rewritten,
                    }),
                    Err(failure) => {
                        let (what, advice) = failure.describe(&request.retry);
                        let tries = match attempts {
                            1 => "after 1 attempt".to_owned(),
                            n => format!("after {n} attempts"),
                        };
                        let why = if legacy {
                            " (without a retry_policy, a request that got no answer is not retried, as in WayFlow)"
                        } else {
                            ""
                        };
                        Err(fail(failure.kind(), attempts, format!("{what}, {tries}{why}; {advice}")))
                    }
                };
            }
            let delay = delay.min(left.unwrap_or_default());
            if !delay.is_zero() {
                self.options.sleeper.sleep(delay).await;
                slept += delay;
            }
        }
    }
}
