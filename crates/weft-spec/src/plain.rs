//! Checks of plain value objects (no `component_type`): RetryPolicy, LlmGenerationConfig and
//! WayFlow prompt messages (FORMAT.md sections 9, 9.2 and 11).

use crate::diagnostic::Code;
use crate::source::describe;
use serde_json::Value as Json;

const JITTERS: &[&str] = &["equal", "full", "full_and_equal_for_throttle", "decorrelated"];

/// RetryPolicy bounds (FORMAT.md 9.2): `(member, message, hint)` for each violation.
pub fn check_retry_policy(v: &Json) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let num = |k: &str| v.get(k).and_then(Json::as_f64);
    let present = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if let Some(x) = v.get("max_attempts")
        && !x.is_u64()
        && !x.is_null()
    {
        out.push((
            "max_attempts",
            format!("`max_attempts` must be an integer >= 0, not {x}"),
            "set it to the number of retries, e.g. 2".into(),
        ));
    }
    if present("request_timeout") && !num("request_timeout").is_some_and(|t| t > 0.0) {
        out.push((
            "request_timeout",
            "`request_timeout` must be a number of seconds > 0, or null".into(),
            "use e.g. 30, or null for the default".into(),
        ));
    }
    let initial = num("initial_retry_delay").unwrap_or(1.0);
    if present("initial_retry_delay") && !num("initial_retry_delay").is_some_and(|d| d >= 0.0) {
        out.push(("initial_retry_delay", "`initial_retry_delay` must be a number >= 0".into(), "use a delay in seconds, e.g. 1.0".into()));
    }
    if present("max_retry_delay") {
        match num("max_retry_delay") {
            Some(m) if m < 0.0 => {
                out.push(("max_retry_delay", "`max_retry_delay` must be >= 0".into(), "use a delay in seconds, e.g. 8.0".into()))
            }
            Some(m) if m < initial => out.push((
                "max_retry_delay",
                format!("`max_retry_delay` ({m}) must be greater than or equal to `initial_retry_delay` ({initial})"),
                format!("raise `max_retry_delay` to at least {initial}, or lower `initial_retry_delay`"),
            )),
            Some(_) => {}
            None => out.push(("max_retry_delay", "`max_retry_delay` must be a number".into(), "use a delay in seconds, e.g. 8.0".into())),
        }
    }
    if present("backoff_factor") && !num("backoff_factor").is_some_and(|b| b > 0.0) {
        out.push(("backoff_factor", "`backoff_factor` must be a number > 0".into(), "use e.g. 2.0".into()));
    }
    if let Some(j) = v.get("jitter")
        && !j.is_null()
        && !j.as_str().is_some_and(|s| JITTERS.contains(&s))
    {
        out.push(("jitter", format!("`jitter` is {j}, which is not a known jitter"), format!("use one of {JITTERS:?} or null")));
    }
    if let Some(b) = v.get("service_error_retry_on_any_5xx")
        && !b.is_boolean()
    {
        out.push((
            "service_error_retry_on_any_5xx",
            "`service_error_retry_on_any_5xx` must be a boolean".into(),
            "use true or false".into(),
        ));
    }
    if let Some(r) = v.get("recoverable_statuses") {
        let ok = r.as_object().is_some_and(|m| m.values().all(|l| l.as_array().is_some_and(|a| a.iter().all(Json::is_string))));
        if !ok {
            out.push((
                "recoverable_statuses",
                "`recoverable_statuses` must map HTTP statuses to lists of strings".into(),
                "e.g. {\"429\": [], \"409\": []}".into(),
            ));
        }
    }
    out
}

/// WayFlow's stricter RetryPolicy bounds (FORMAT.md 9.2): documents pyagentspec loads but
/// WayFlow refuses to convert. `(member, message, hint)` for each violation.
pub fn check_retry_policy_wayflow(v: &Json) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let num = |k: &str| v.get(k).and_then(Json::as_f64);
    if let Some(m) = v.get("max_attempts").and_then(Json::as_u64)
        && m > 20
    {
        out.push(("max_attempts", format!("`max_attempts` is {m}; WayFlow allows at most 20 retries"), "use at most 20".into()));
    }
    if let Some(d) = num("initial_retry_delay")
        && d < 0.001
    {
        out.push(("initial_retry_delay", format!("`initial_retry_delay` is {d}; WayFlow needs at least 0.001 s"), "use e.g. 0.5".into()));
    }
    if let Some(d) = num("max_retry_delay")
        && !(0.001..=600.0).contains(&d)
    {
        out.push((
            "max_retry_delay",
            format!("`max_retry_delay` is {d}; WayFlow needs 0.001 to 600 s"),
            "use a delay from 0.001 to 600 seconds".into(),
        ));
    }
    if let Some(b) = num("backoff_factor")
        && b < 0.001
    {
        out.push(("backoff_factor", format!("`backoff_factor` is {b}; WayFlow needs at least 0.001"), "use e.g. 2.0".into()));
    }
    if let Some(m) = v.get("recoverable_statuses").and_then(Json::as_object)
        && let Some(k) = m.keys().find(|k| k.is_empty() || !k.chars().all(|c| c.is_ascii_digit()))
    {
        out.push((
            "recoverable_statuses",
            format!("status \"{k}\" is not an HTTP status code"),
            "use decimal status codes such as \"429\"".into(),
        ));
    }
    out
}

/// LlmGenerationConfig member types: `(member, message)` for each violation.
pub fn check_generation_config(v: &Json) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(x) = v.get("max_tokens")
        && !x.is_null()
        && !x.is_u64()
    {
        out.push(("max_tokens", format!("`max_tokens` must be a positive integer, not {}", describe(x))));
    }
    for k in ["temperature", "top_p"] {
        if let Some(x) = v.get(k)
            && !x.is_null()
            && !x.is_number()
        {
            let k: &'static str = if k == "temperature" { "temperature" } else { "top_p" };
            out.push((k, format!("`{k}` must be a number, not {}", describe(x))));
        }
    }
    out
}

/// A WayFlow prompt message: `(member, code, message, hint)` for each violation; an empty
/// member means the message object itself.
pub fn check_message(m: &Json) -> Vec<(&'static str, Code, String, String)> {
    let mut out = Vec::new();
    let Some(obj) = m.as_object() else {
        out.push((
            "",
            Code::BadValue,
            format!("a message must be an object, not {}", describe(m)),
            "write {\"role\": \"user\", \"contents\": [...]}".into(),
        ));
        return out;
    };
    match obj.get("role") {
        None => out.push((
            "",
            Code::MissingField,
            "a message has no `role`".into(),
            "add \"role\": \"user\", \"assistant\" or \"system\"".into(),
        )),
        Some(Json::String(r)) if ["user", "assistant", "system"].contains(&r.as_str()) => {}
        Some(r) => out.push((
            "role",
            Code::BadValue,
            format!("message role {r} is not user, assistant or system"),
            "use \"user\", \"assistant\" or \"system\"".into(),
        )),
    }
    if let Some(contents) = obj.get("contents") {
        match contents.as_array() {
            Some(parts) => {
                for part in parts {
                    let kind = part.get("type").and_then(Json::as_str).unwrap_or("text");
                    if kind == "image" && part.get("base64_content").and_then(Json::as_str).is_none() {
                        out.push((
                            "contents",
                            Code::MissingField,
                            "an image part has no `base64_content`".into(),
                            "add the image as base64 text".into(),
                        ));
                    } else if kind != "image" && kind != "text" {
                        out.push((
                            "contents",
                            Code::BadValue,
                            format!("message part type \"{kind}\" is not text or image"),
                            "use \"text\" or \"image\"".into(),
                        ));
                    }
                }
            }
            None if contents.is_null() => {}
            None => out.push((
                "contents",
                Code::BadValue,
                "`contents` must be a list of parts".into(),
                "write [{\"type\": \"text\", \"content\": \"...\"}]".into(),
            )),
        }
    }
    out
}
