//! The ranges of `weft`'s numeric flags, and their parsers.
//!
//! Every numeric flag goes through one of these functions (clap calls them as value parsers,
//! and `weft resume` calls the checks on the values a state file stores), so no value reaches
//! the engine that could overflow a deadline, starve a limiter or silently mean something else:
//! a value out of range, NaN, an infinity, a negative number or text that is no number is a
//! usage error (exit 2) that names the flag and the accepted range.
//!
//! This file depends on nothing but `std`, so the tests can include it as it is.

/// The longest `--node-timeout`, in seconds: 365 days.
pub const NODE_TIMEOUT_MAX_SECONDS: f64 = 31_536_000.0;

/// The lowest `--rps`: one request per 1,000 seconds.
pub const RPS_MIN: f64 = 0.001;

/// The highest `--rps`.
pub const RPS_MAX: f64 = 1_000_000.0;

/// `--node-timeout SECONDS`: a number of seconds in (0, 31,536,000].
pub fn node_timeout(text: &str) -> Result<f64, String> {
    let seconds = number("--node-timeout", text, NODE_TIMEOUT_RANGE)?;
    check_node_timeout(seconds).map_err(|_| out_of_range("--node-timeout", text, NODE_TIMEOUT_RANGE))
}

/// Checks a node timeout in seconds (from the flag or a state file).
pub fn check_node_timeout(seconds: f64) -> Result<f64, String> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= NODE_TIMEOUT_MAX_SECONDS {
        Ok(seconds)
    } else {
        Err(out_of_range("--node-timeout", &seconds.to_string(), NODE_TIMEOUT_RANGE))
    }
}

/// `--connect-timeout SECONDS`: a number of seconds in (0, 31,536,000].
pub fn connect_timeout(text: &str) -> Result<f64, String> {
    seconds("--connect-timeout", text, "10")
}

/// `--idle-timeout SECONDS`: a number of seconds in (0, 31,536,000].
pub fn idle_timeout(text: &str) -> Result<f64, String> {
    seconds("--idle-timeout", text, "120")
}

/// `--call-timeout SECONDS`: a number of seconds in (0, 31,536,000].
pub fn call_timeout(text: &str) -> Result<f64, String> {
    seconds("--call-timeout", text, "600")
}

fn seconds(flag: &str, text: &str, example: &str) -> Result<f64, String> {
    let range = seconds_range(flag, example);
    let value = number(flag, text, &range)?;
    check_seconds(flag, value).map_err(|_| out_of_range(flag, text, &range))
}

/// Checks a timeout in seconds of `flag` (from the flag or a state file): in (0, 31,536,000].
pub fn check_seconds(flag: &str, seconds: f64) -> Result<f64, String> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= NODE_TIMEOUT_MAX_SECONDS {
        Ok(seconds)
    } else {
        Err(out_of_range(flag, &seconds.to_string(), &seconds_range(flag, "10")))
    }
}

fn seconds_range(flag: &str, example: &str) -> String {
    format!("a number of seconds greater than 0 and at most 31536000 (365 days), e.g. {flag} {example}")
}

const NODE_TIMEOUT_RANGE: &str = "a number of seconds greater than 0 and at most 31536000 (365 days), e.g. --node-timeout 30";

/// `--rps R`: requests per second in [0.001, 1,000,000].
pub fn rps(text: &str) -> Result<f64, String> {
    let rate = number("--rps", text, RPS_RANGE)?;
    check_rps(rate).map_err(|_| out_of_range("--rps", text, RPS_RANGE))
}

/// Checks a rate in requests per second (from the flag or a state file).
pub fn check_rps(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (RPS_MIN..=RPS_MAX).contains(&rate) {
        Ok(rate)
    } else {
        Err(out_of_range("--rps", &rate.to_string(), RPS_RANGE))
    }
}

const RPS_RANGE: &str = "a number of requests per second from 0.001 to 1000000, e.g. --rps 10";

/// `--max-in-flight N`: a whole number, at least 1.
pub fn max_in_flight(text: &str) -> Result<u64, String> {
    at_least_one("--max-in-flight", text, "the number of LLM calls in flight per endpoint", "64")
}

/// `--concurrency N`: a whole number, at least 1.
pub fn concurrency(text: &str) -> Result<usize, String> {
    let n = at_least_one("--concurrency", text, "the number of runs at once", "16")?;
    usize::try_from(n).map_err(|_| out_of_range("--concurrency", text, &whole("the number of runs at once", "16", "--concurrency")))
}

/// `--max-steps N`: a whole number, at least 1.
pub fn max_steps(text: &str) -> Result<u64, String> {
    at_least_one("--max-steps", text, "the number of steps per execution path", "10000")
}

/// Checks a step budget (from a state file).
pub fn check_max_steps(steps: u64) -> Result<u64, String> {
    if steps >= 1 {
        Ok(steps)
    } else {
        Err(out_of_range("--max-steps", "0", &whole("the number of steps per execution path", "10000", "--max-steps")))
    }
}

/// `--checkpoint-calls N`: a whole number, at least 1.
pub fn checkpoint_calls(text: &str) -> Result<u64, String> {
    at_least_one("--checkpoint-calls", text, "the number of completed calls between checkpoints", "100")
}

/// `--checkpoint-secs SECONDS`: a number of seconds in [0.1, 86,400].
pub fn checkpoint_secs(text: &str) -> Result<f64, String> {
    let seconds = number("--checkpoint-secs", text, CHECKPOINT_RANGE)?;
    if seconds.is_finite() && (0.1..=86_400.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(out_of_range("--checkpoint-secs", text, CHECKPOINT_RANGE))
    }
}

const CHECKPOINT_RANGE: &str = "a number of seconds from 0.1 to 86400 (a day), e.g. --checkpoint-secs 5";

fn number(flag: &str, text: &str, range: &str) -> Result<f64, String> {
    text.parse::<f64>().map_err(|_| format!("{flag} takes {range}; {text:?} is not a number"))
}

/// `the number of runs at once, a whole number from 1 to 18446744073709551615 (e.g. --concurrency 16)`.
fn whole(what: &str, example: &str, flag: &str) -> String {
    format!("{what}, a whole number from 1 to {} (e.g. {flag} {example})", u64::MAX)
}

fn at_least_one(flag: &str, text: &str, what: &str, example: &str) -> Result<u64, String> {
    let range = whole(what, example, flag);
    match text.parse::<u64>() {
        Ok(0) => Err(out_of_range(flag, text, &range)),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{flag} takes {range}; {text:?} is not one")),
    }
}

fn out_of_range(flag: &str, given: &str, range: &str) -> String {
    format!("{flag} takes {range}; {given} is out of range")
}
