//! A2AAgent (AGENTS.md section 8): a remote agent Weft talks to over the A2A protocol (version
//! 0.3, JSON-RPC `message/send`, then `tasks/get` polling), lowered once into an [`A2AAgent`]
//! wherever it runs: at the root of a document, in an AgentNode, or as a sub-agent another agent
//! calls as a tool. It is not a family of its own: the agent family and the root lowering call
//! [`lower`].
//!
//! What WayFlow refuses at load is a document error here (`agent_url` without a scheme and host,
//! a timeout, `poll_interval` or `max_retries` out of range); TLS settings that would make Weft
//! read files named by the document (`key_file`, `cert_file`, `ssl_ca_cert`) or turn certificate
//! checks off (`verify: false`) are blockers.

use super::Lowerer;
use serde_json::{Map, Value as Json};
use std::time::Duration;
use weft_spec::{Code, CompId};

/// A remote agent as Weft runs it.
#[derive(Debug, Clone)]
pub struct A2AAgent {
    /// The A2AAgent component.
    pub agent: CompId,
    /// `agent_url`: requests go to it, with a `/` appended when it has none (WayFlow's client
    /// posts to `/` relative to it).
    pub url: String,
    /// `connection_config.headers`, sent with every request.
    pub headers: Vec<(String, String)>,
    /// `connection_config.timeout`: each request's timeout.
    pub timeout: Duration,
    /// `connection_config.retry_policy`, when given (an object).
    pub retry_policy: Option<Json>,
    /// `session_parameters.timeout`: how long a task is polled.
    pub session_timeout: Duration,
    /// `session_parameters.poll_interval`: the wait between two polls.
    pub poll_interval: Duration,
    /// `session_parameters.max_retries`: failed polls in a row before the agent fails.
    pub max_retries: u32,
}

/// The A2A default of `session_parameters`.
const SESSION_TIMEOUT: f64 = 60.0;
const POLL_INTERVAL: f64 = 2.0;
const MAX_RETRIES: u64 = 5;

/// Lowers A2AAgent `a` for `owner` (the node that runs it, the calling agent, or itself at the
/// root): what the document gets wrong is an error of `a`, what Weft does not run a blocker of
/// `owner`.
pub(super) fn lower(lw: &mut Lowerer<'_, '_>, owner: CompId, a: CompId) -> Option<A2AAgent> {
    let comp = lw.comp(a);
    let f = lw.fields(a);
    let mut ok = true;
    let raw_url = f.str("agent_url").unwrap_or("");
    let url = match weft_guard::Target::parse(raw_url) {
        Ok(_) => raw_url.to_owned(),
        Err(problem) => {
            lw.error(
                a,
                Code::BadValue,
                format!("{}/agent_url", comp.pointer),
                format!("`agent_url` {raw_url:?}: {problem} (WayFlow also refuses a URL without a scheme and a host: \"Invalid URL provided for agent_url\")"),
                "give the remote agent's URL, such as https://agents.example.com/researcher",
            );
            ok = false;
            String::new()
        }
    };
    let url = if url.ends_with('/') || url.is_empty() { url } else { format!("{url}/") };
    let session = f.object("session_parameters").cloned().unwrap_or_default();
    let number = |m: &Map<String, Json>, k: &str, d: f64| m.get(k).and_then(Json::as_f64).unwrap_or(d);
    let session_timeout = number(&session, "timeout", SESSION_TIMEOUT);
    let poll_interval = number(&session, "poll_interval", POLL_INTERVAL);
    let max_retries = session.get("max_retries").map_or(Some(MAX_RETRIES as i64), Json::as_i64);
    let positive = |lw: &mut Lowerer<'_, '_>, value: f64, field: &str, pointer: String| {
        if !(value > 0.0 && value.is_finite() && value < 1e9) {
            lw.error(
                a,
                Code::BadValue,
                pointer,
                format!("`{field}` is {value}; it must be a positive number of seconds (WayFlow refuses it too)"),
                "give a positive number of seconds",
            );
            false
        } else {
            true
        }
    };
    ok &= positive(lw, session_timeout, "session_parameters.timeout", format!("{}/session_parameters/timeout", comp.pointer));
    ok &= positive(lw, poll_interval, "session_parameters.poll_interval", format!("{}/session_parameters/poll_interval", comp.pointer));
    let max_retries = match max_retries.and_then(|n| u32::try_from(n).ok()) {
        Some(n) => n,
        None => {
            lw.error(
                a,
                Code::BadValue,
                format!("{}/session_parameters/max_retries", comp.pointer),
                "`session_parameters.max_retries` must be a non-negative integer (WayFlow refuses it too)".to_owned(),
                "give the number of failed polls in a row to tolerate, such as 5",
            );
            ok = false;
            0
        }
    };
    let config = f.comp("connection_config")?;
    let cc = lw.comp(config);
    let cf = lw.fields(config);
    let timeout = cf.json("timeout").and_then(Json::as_f64).unwrap_or(600.0);
    ok &= positive(lw, timeout, "timeout", format!("{}/timeout", cc.pointer));
    for field in ["key_file", "cert_file", "ssl_ca_cert"] {
        if cf.str(field).is_some() {
            lw.block(
                owner,
                config,
                format!("{}/{field}", cc.pointer),
                format!("an A2A connection with `{field}` (client certificates and CA files are files the document names)"),
            );
            ok = false;
        }
    }
    if !cf.bool("verify", true) {
        lw.block(
            owner,
            config,
            format!("{}/verify", cc.pointer),
            "an A2A connection with `verify: false` (certificate checks turned off)".to_owned(),
        );
        ok = false;
    }
    let headers = cf
        .object("headers")
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| weft_prompt::py_str(v), str::to_owned))).collect())
        .unwrap_or_default();
    let retry_policy = cf.json("retry_policy").filter(|v| v.is_object()).cloned();
    let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 1e9));
    ok.then(|| A2AAgent {
        agent: a,
        url,
        headers,
        timeout: seconds(timeout),
        retry_policy,
        session_timeout: seconds(session_timeout),
        poll_interval: seconds(poll_interval),
        max_retries,
    })
}
