//! The Agent Spec `RetryPolicy` with the semantics WayFlow gives it (FORMAT.md section 9.2):
//! which failed attempts are retried ([`Cause`]), the delays and their jitter, Weft's default
//! policy, and `Retry-After` values.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value as Json;

/// A `Retry-After` delay is capped at this (WayFlow's cap).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// No retry starts once this much time has passed since the first attempt, and the last wait is
/// shortened to what remains (WayFlow's overall budget).
pub const RETRY_BUDGET: Duration = Duration::from_secs(600);

/// How the delay before a retry is randomized. With `base = min(initial × factor^n, max)` and U
/// uniform in [0, 1):
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// `base` (`jitter: null`).
    None,
    /// `U × base`.
    Full,
    /// `base/2 + U × base/2`.
    Equal,
    /// Equal jitter after a `4xx` response (409, 429...), full jitter otherwise (the Agent Spec
    /// default).
    FullAndEqualForThrottle,
    /// `min(base + U seconds, max)`.
    Decorrelated,
}

impl Jitter {
    /// The Agent Spec spelling (`None` for `null`).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Jitter::None => None,
            Jitter::Full => Some("full"),
            Jitter::Equal => Some("equal"),
            Jitter::FullAndEqualForThrottle => Some("full_and_equal_for_throttle"),
            Jitter::Decorrelated => Some("decorrelated"),
        }
    }
}

/// When and how often a call is retried (FORMAT.md 9.2).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`max_attempts` in Agent Spec counts retries): a call is
    /// tried at most `max_retries + 1` times.
    pub max_retries: u32,
    /// The timeout of each attempt, when set.
    pub request_timeout: Option<Duration>,
    /// The delay before the first retry, before jitter.
    pub initial_retry_delay: Duration,
    /// The largest delay before jitter.
    pub max_retry_delay: Duration,
    /// The factor between two consecutive delays.
    pub backoff_factor: f64,
    /// How delays are randomized.
    pub jitter: Jitter,
    /// Retry every `5xx` (but 501) and transport failures.
    pub retry_on_any_5xx: bool,
    /// Statuses retried, each with the strings of which one must occur in the response body
    /// (case-insensitively) for a retry; an empty list retries always.
    pub recoverable_statuses: BTreeMap<u16, Vec<String>>,
}

impl Default for RetryPolicy {
    /// Weft's policy for an LLM config without `retry_policy`: 5 retries, exponential back-off
    /// from 1 s (factor 2, at most 8 s) with full jitter, on 408, 409, 429, every `5xx` but 501
    /// and transport failures.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            request_timeout: None,
            initial_retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(8),
            backoff_factor: 2.0,
            jitter: Jitter::Full,
            retry_on_any_5xx: true,
            recoverable_statuses: [408, 409, 429].into_iter().map(|s| (s, Vec::new())).collect(),
        }
    }
}

/// What a failed attempt looked like, as [`RetryPolicy::should_retry`] judges it. A provider
/// reports it in its [`crate::providers::AttemptError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The server answered with this status and body.
    Status {
        /// The HTTP status.
        status: u16,
        /// The response body (the policy looks for its `recoverable_statuses` strings in it).
        body: String,
    },
    /// No answer: connection, DNS or reset.
    Transport,
    /// No answer within the request timeout: retried like a transport failure.
    Timeout,
    /// TLS or certificate verification failed: never retried.
    Tls,
    /// The server answered, but not with a chat completion: never retried (the policy cannot
    /// tell a glitch from a wrong URL), though the final error counts it as transient.
    Invalid,
    /// The answer went past the size cap: never retried.
    TooLarge,
    /// The egress policy refuses the request (nothing was sent): never retried.
    Refused,
}

impl Cause {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Cause::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl RetryPolicy {
    /// The policy of an Agent Spec `RetryPolicy` object, each absent member taking the Agent
    /// Spec default (2 retries, 1 s initial delay, 8 s maximum, factor 2,
    /// `full_and_equal_for_throttle`, any `5xx`, statuses 409 and 429). The loader has checked
    /// the bounds; a member of the wrong type is reported.
    pub fn from_agent_spec(value: &Json) -> Result<RetryPolicy, String> {
        let Json::Object(members) = value else {
            return Err(format!("retry_policy must be an object, not {value}"));
        };
        let number = |name: &str, default: f64| -> Result<f64, String> {
            match members.get(name) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("retry_policy.{name} must be a non-negative number, not {v}")),
            }
        };
        let seconds = |name: &str, default: f64| -> Result<Duration, String> {
            let n = number(name, default)?;
            Duration::try_from_secs_f64(n).map_err(|_| format!("retry_policy.{name} is out of range: {n}"))
        };
        let max_retries = match members.get("max_attempts") {
            None | Some(Json::Null) => 2,
            Some(v) => v
                .as_u64()
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                .ok_or_else(|| format!("retry_policy.max_attempts must be an integer ≥ 0, not {v}"))?,
        };
        let request_timeout = match members.get("request_timeout") {
            None | Some(Json::Null) => None,
            Some(_) => Some(seconds("request_timeout", 0.0)?).filter(|d| !d.is_zero()),
        };
        let jitter = match members.get("jitter") {
            None => Jitter::FullAndEqualForThrottle,
            Some(Json::Null) => Jitter::None,
            Some(Json::String(s)) => match s.as_str() {
                "full" => Jitter::Full,
                "equal" => Jitter::Equal,
                "full_and_equal_for_throttle" => Jitter::FullAndEqualForThrottle,
                "decorrelated" => Jitter::Decorrelated,
                other => {
                    return Err(format!(
                        "retry_policy.jitter {other:?} is none of \"equal\", \"full\", \"full_and_equal_for_throttle\", \"decorrelated\" or null"
                    ));
                }
            },
            Some(v) => return Err(format!("retry_policy.jitter must be a string or null, not {v}")),
        };
        let retry_on_any_5xx = match members.get("service_error_retry_on_any_5xx") {
            None | Some(Json::Null) => true,
            Some(Json::Bool(b)) => *b,
            Some(v) => return Err(format!("retry_policy.service_error_retry_on_any_5xx must be a boolean, not {v}")),
        };
        let recoverable_statuses = match members.get("recoverable_statuses") {
            None | Some(Json::Null) => [409, 429].into_iter().map(|s| (s, Vec::new())).collect(),
            Some(Json::Object(statuses)) => {
                let mut out = BTreeMap::new();
                for (status, strings) in statuses {
                    let code: u16 =
                        status.parse().map_err(|_| format!("retry_policy.recoverable_statuses key {status:?} is not an HTTP status"))?;
                    let strings = match strings {
                        Json::Null => Vec::new(),
                        Json::Array(items) => items.iter().filter_map(Json::as_str).map(str::to_lowercase).collect(),
                        other => {
                            return Err(format!("retry_policy.recoverable_statuses[{status:?}] must be a list of strings, not {other}"));
                        }
                    };
                    out.insert(code, strings);
                }
                out
            }
            Some(v) => return Err(format!("retry_policy.recoverable_statuses must be an object, not {v}")),
        };
        Ok(RetryPolicy {
            max_retries,
            request_timeout,
            initial_retry_delay: seconds("initial_retry_delay", 1.0)?,
            max_retry_delay: seconds("max_retry_delay", 8.0)?,
            backoff_factor: number("backoff_factor", 2.0)?,
            jitter,
            retry_on_any_5xx,
            recoverable_statuses,
        })
    }

    /// Whether a failed attempt is worth retrying, in FORMAT.md 9.2's order: 400, 401, 403 and
    /// 422 never; 501 and redirects (3xx) never; a listed status when its list is empty or one of its strings
    /// occurs in the body; any other `5xx` when `retry_on_any_5xx`; nothing else. Transport
    /// and timeout failures count as a `5xx`; TLS failures, invalid or oversized answers and
    /// refused requests are never retried.
    pub fn should_retry(&self, cause: &Cause) -> bool {
        match cause {
            Cause::Tls | Cause::Invalid | Cause::TooLarge | Cause::Refused => false,
            Cause::Transport | Cause::Timeout => self.retry_on_any_5xx,
            Cause::Status { status: 400 | 401 | 403 | 422 | 501, .. } => false,
            // A redirect (a loop included) answers the same every time: never retried, even
            // when listed.
            Cause::Status { status: 300..=399, .. } => false,
            Cause::Status { status, body } => match self.recoverable_statuses.get(status) {
                Some(strings) if strings.is_empty() => true,
                Some(strings) => {
                    let body = body.to_lowercase();
                    strings.iter().any(|s| body.contains(&s.to_lowercase()))
                }
                None => (500..600).contains(status) && self.retry_on_any_5xx,
            },
        }
    }

    /// The policy's window: how long its retries may keep a call going when every attempt
    /// fails at once, the sum of its delays before jitter (23 s for Weft's default), at most
    /// [`RETRY_BUDGET`]. An endpoint down for longer than a call's window fails the call at once
    /// ([`crate::breaker`]).
    pub fn window(&self) -> Duration {
        let mut window = Duration::ZERO;
        for n in 0..self.max_retries {
            window = window.saturating_add(self.base_delay(n));
            if window >= RETRY_BUDGET {
                return RETRY_BUDGET;
            }
        }
        window
    }

    /// The delay before retry `n` (0 before the first retry) before jitter:
    /// `min(initial × factor^n, max)`.
    pub fn base_delay(&self, n: u32) -> Duration {
        let exponent = i32::try_from(n).unwrap_or(i32::MAX);
        let seconds = self.initial_retry_delay.as_secs_f64() * self.backoff_factor.powi(exponent);
        let max = self.max_retry_delay.as_secs_f64();
        Duration::try_from_secs_f64(if seconds.is_finite() { seconds.min(max) } else { max }).unwrap_or(self.max_retry_delay)
    }

    /// The delay before retry `n`, with jitter drawn from `u` (uniform in [0, 1)); `throttled`
    /// says the failed attempt had a `4xx` status.
    pub fn delay(&self, n: u32, throttled: bool, u: f64) -> Duration {
        let base = self.base_delay(n);
        let u = u.clamp(0.0, 1.0);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => base.mul_f64(u),
            Jitter::Equal => base / 2 + (base / 2).mul_f64(u),
            Jitter::FullAndEqualForThrottle if throttled => base / 2 + (base / 2).mul_f64(u),
            Jitter::FullAndEqualForThrottle => base.mul_f64(u),
            Jitter::Decorrelated => (base + Duration::from_secs_f64(u)).min(self.max_retry_delay),
        }
    }
}

/// A `Retry-After` value as a delay: seconds (fractions allowed) or an HTTP date (the time from
/// `now` until then, at least 0), capped at [`RETRY_AFTER_CAP`]. `None` when unparsable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => Duration::try_from_secs_f64(seconds.max(0.0)).ok()?,
        Ok(_) => return None,
        Err(_) => {
            let date = httpdate::parse_http_date(value).ok()?;
            date.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use serde_json::json;

    fn answered(status: u16, body: &str) -> Cause {
        Cause::Status { status, body: body.to_owned() }
    }

    #[test]
    fn agent_spec_defaults_and_members() {
        let p = RetryPolicy::from_agent_spec(&json!({})).expect("policy");
        assert_eq!(p.max_retries, 2);
        assert_eq!(p.jitter, Jitter::FullAndEqualForThrottle);
        assert_eq!(p.recoverable_statuses.keys().copied().collect::<Vec<_>>(), vec![409, 429]);
        let p = RetryPolicy::from_agent_spec(&json!({
            "max_attempts": 0, "request_timeout": 2.5, "initial_retry_delay": 0.5, "max_retry_delay": 3,
            "backoff_factor": 3, "jitter": null, "service_error_retry_on_any_5xx": false,
            "recoverable_statuses": {"503": ["Overloaded"]}
        }))
        .expect("policy");
        assert_eq!(p.max_retries, 0);
        assert_eq!(p.request_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(p.jitter, Jitter::None);
        assert_eq!(p.base_delay(0), Duration::from_millis(500));
        assert_eq!(p.base_delay(1), Duration::from_millis(1500));
        assert_eq!(p.base_delay(5), Duration::from_secs(3));
        assert!(p.should_retry(&answered(503, "{\"error\": \"overloaded\"}")));
        assert!(!p.should_retry(&answered(503, "busy")));
        assert!(!p.should_retry(&answered(500, "")));
        assert!(!p.should_retry(&Cause::Transport));
        assert!(RetryPolicy::from_agent_spec(&json!({"jitter": "wild"})).is_err());
    }

    #[test]
    fn which_failures_are_retried_by_default() {
        let p = RetryPolicy::default();
        for status in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(p.should_retry(&answered(status, "")), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422, 501] {
            assert!(!p.should_retry(&answered(status, "")), "{status}");
        }
        assert!(p.should_retry(&Cause::Transport));
        assert!(p.should_retry(&Cause::Timeout));
        for status in [301, 302, 307, 308] {
            let listed = RetryPolicy { recoverable_statuses: [(status, Vec::new())].into_iter().collect(), ..RetryPolicy::default() };
            assert!(!listed.should_retry(&answered(status, "")), "{status}");
        }
        for never in [Cause::Tls, Cause::Invalid, Cause::TooLarge, Cause::Refused] {
            assert!(!p.should_retry(&never), "{never:?}");
        }
        // 400 family never, even when listed.
        let listed = RetryPolicy { recoverable_statuses: [(400, Vec::new())].into_iter().collect(), ..RetryPolicy::default() };
        assert!(!listed.should_retry(&answered(400, "")));
    }

    #[test]
    fn the_window_is_the_sum_of_the_delays_before_jitter() {
        assert_eq!(RetryPolicy::default().window(), Duration::from_secs(23));
        assert_eq!(RetryPolicy { max_retries: 0, ..RetryPolicy::default() }.window(), Duration::ZERO);
        assert_eq!(RetryPolicy { max_retries: 2, ..RetryPolicy::default() }.window(), Duration::from_secs(3));
        assert_eq!(RetryPolicy { max_retries: u32::MAX, ..RetryPolicy::default() }.window(), RETRY_BUDGET);
    }

    #[test]
    fn delays_follow_the_jitter() {
        let p = RetryPolicy { jitter: Jitter::None, ..RetryPolicy::default() };
        let secs: Vec<u64> = (0..6).map(|n| p.delay(n, false, 0.5).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 8, 8]);
        let full = RetryPolicy::default();
        assert_eq!(full.delay(2, false, 0.25), Duration::from_secs(1));
        let spec = RetryPolicy { jitter: Jitter::FullAndEqualForThrottle, ..RetryPolicy::default() };
        assert_eq!(spec.delay(2, true, 0.0), Duration::from_secs(2));
        assert_eq!(spec.delay(2, false, 0.0), Duration::ZERO);
        let equal = RetryPolicy { jitter: Jitter::Equal, ..RetryPolicy::default() };
        assert_eq!(equal.delay(1, false, 0.5), Duration::from_millis(1500));
        let decorrelated = RetryPolicy { jitter: Jitter::Decorrelated, ..RetryPolicy::default() };
        assert_eq!(decorrelated.delay(0, false, 0.5), Duration::from_millis(1500));
        assert_eq!(decorrelated.delay(4, false, 0.5), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_takes_seconds_or_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.25 ", now), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after("120", now), Some(RETRY_AFTER_CAP));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn the_generator_is_uniform_enough_and_seedable() {
        let mut a = Rng::new(Some(7));
        let mut b = Rng::new(Some(7));
        let xs: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs[0], b.unit());
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }
}
