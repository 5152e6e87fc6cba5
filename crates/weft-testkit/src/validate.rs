//! The checks OpenAI's Chat Completions API makes before it answers, with its error bodies
//! (`{"error": {"message", "type", "param", "code"}}`) and message wording, so a client mistake
//! fails here as it would against the real API.
//!
//! Source: the OpenAI API reference for "Create chat completion" (request body), as generated
//! into openai/openai-python `src/openai/types/chat/completion_create_params.py`, the message
//! param types (`chat_completion_*_message_param.py`), `shared_params/response_format_json_schema.py`
//! and `chat_completion_tool_param.py`; the error wording follows the API's observed responses.

use serde_json::{Map, Value as Json, json};
use weft_spec::text::{TypeWords, type_name};

/// Top-level fields of a Chat Completions request.
pub const FIELDS: &[&str] = &[
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

const ROLES: &str = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'";

/// An API error: status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// `error.message`.
    pub message: String,
    /// `error.type`.
    pub kind: &'static str,
    /// `error.param`.
    pub param: Option<String>,
    /// `error.code`.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>, param: Option<String>, code: Option<&'static str>) -> ApiError {
        ApiError { status: 400, message: message.into(), kind: "invalid_request_error", param, code }
    }

    /// The response body.
    pub fn body(&self) -> Json {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid(format!("Missing required parameter: '{param}'."), Some(param.to_owned()), Some("missing_required_parameter"))
}

fn invalid_type(param: &str, expected: &str, got: &Json) -> ApiError {
    ApiError::invalid(
        format!("Invalid type for '{param}': expected {expected}, but got {} instead.", type_name(got, TypeWords::OpenAi)),
        Some(param.to_owned()),
        Some("invalid_type"),
    )
}

fn invalid_value(param: &str, got: &str, supported: &str) -> ApiError {
    ApiError::invalid(format!("Invalid value: '{got}'. Supported values are: {supported}."), Some(param.to_owned()), Some("invalid_value"))
}

/// Checks a request body as the API does; `extra` are top-level fields accepted besides
/// [`FIELDS`].
pub fn check(body: &Json, extra: &[String]) -> Result<(), ApiError> {
    let Json::Object(m) = body else {
        return Err(ApiError::invalid(
            format!("Invalid type for request body: expected an object, but got {} instead.", type_name(body, TypeWords::OpenAi)),
            None,
            Some("invalid_type"),
        ));
    };
    if let Some(key) = m.keys().find(|k| !FIELDS.contains(&k.as_str()) && !extra.iter().any(|e| e == *k)) {
        return Err(ApiError::invalid(format!("Unrecognized request argument supplied: {key}"), None, None));
    }
    match m.get("model") {
        None | Some(Json::Null) => return Err(ApiError::invalid("you must provide a model parameter", None, None)),
        Some(Json::String(s)) if s.is_empty() => return Err(ApiError::invalid("you must provide a model parameter", None, None)),
        Some(Json::String(_)) => {}
        Some(other) => return Err(invalid_type("model", "a string", other)),
    }
    let messages = match m.get("messages") {
        None => return Err(missing("messages")),
        Some(Json::Array(items)) if items.is_empty() => {
            return Err(ApiError::invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                Some("messages".into()),
                Some("empty_array"),
            ));
        }
        Some(Json::Array(items)) => items,
        Some(other) => return Err(invalid_type("messages", "an array", other)),
    };
    for (i, message) in messages.iter().enumerate() {
        check_message(i, message)?;
    }
    check_tool_sequence(messages)?;
    let streamed = match m.get("stream") {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::Bool(true)) => true,
        Some(other) => return Err(invalid_type("stream", "a boolean", other)),
    };
    match m.get("stream_options") {
        None | Some(Json::Null) => {}
        Some(Json::Object(_)) if !streamed => {
            return Err(ApiError::invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                Some("stream_options".into()),
                None,
            ));
        }
        Some(Json::Object(o)) => {
            if let Some(v) = o.get("include_usage").filter(|v| !v.is_boolean()) {
                return Err(invalid_type("stream_options.include_usage", "a boolean", v));
            }
        }
        Some(other) => return Err(invalid_type("stream_options", "an object", other)),
    }
    number(m, "temperature", 0.0, 2.0)?;
    number(m, "top_p", 0.0, 1.0)?;
    number(m, "frequency_penalty", -2.0, 2.0)?;
    number(m, "presence_penalty", -2.0, 2.0)?;
    integer(m, "n", 1, 128)?;
    integer(m, "max_completion_tokens", 1, i64::MAX)?;
    integer(m, "max_tokens", 1, i64::MAX)?;
    integer(m, "seed", i64::MIN, i64::MAX)?;
    integer(m, "top_logprobs", 0, 20)?;
    match m.get("stop") {
        None | Some(Json::Null) | Some(Json::String(_)) => {}
        Some(Json::Array(items)) if items.len() > 4 => {
            return Err(ApiError::invalid(
                format!(
                    "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {} instead.",
                    items.len()
                ),
                Some("stop".into()),
                Some("array_above_max_length"),
            ));
        }
        Some(Json::Array(items)) => {
            if let Some((j, bad)) = items.iter().enumerate().find(|(_, s)| !s.is_string()) {
                return Err(invalid_type(&format!("stop[{j}]"), "a string", bad));
            }
        }
        Some(other) => return Err(invalid_type("stop", "one of a string or array of strings", other)),
    }
    if let Some(format) = m.get("response_format").filter(|f| !f.is_null()) {
        check_response_format(format, messages)?;
    }
    let tools = match m.get("tools") {
        None | Some(Json::Null) => None,
        Some(Json::Array(tools)) => Some(check_tools(tools)?),
        Some(other) => return Err(invalid_type("tools", "an array", other)),
    };
    if let Some(choice) = m.get("tool_choice").filter(|c| !c.is_null()) {
        let Some(names) = &tools else {
            return Err(ApiError::invalid(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                Some("tool_choice".into()),
                None,
            ));
        };
        check_tool_choice(choice, names)?;
    }
    if m.get("parallel_tool_calls").is_some_and(|p| !p.is_null()) && tools.is_none() {
        return Err(ApiError::invalid(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.",
            Some("parallel_tool_calls".into()),
            None,
        ));
    }
    Ok(())
}

fn number(m: &Map<String, Json>, name: &str, min: f64, max: f64) -> Result<(), ApiError> {
    match m.get(name) {
        None | Some(Json::Null) => Ok(()),
        Some(Json::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x > max {
                Err(ApiError::invalid(
                    format!("Invalid '{name}': decimal above maximum value. Expected a value <= {max}, but got {n} instead."),
                    Some(name.into()),
                    Some("decimal_above_max_value"),
                ))
            } else if x < min {
                Err(ApiError::invalid(
                    format!("Invalid '{name}': decimal below minimum value. Expected a value >= {min}, but got {n} instead."),
                    Some(name.into()),
                    Some("decimal_below_min_value"),
                ))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(invalid_type(name, "a decimal", other)),
    }
}

fn integer(m: &Map<String, Json>, name: &str, min: i64, max: i64) -> Result<(), ApiError> {
    match m.get(name) {
        None | Some(Json::Null) => Ok(()),
        Some(Json::Number(n)) if n.is_i64() || n.is_u64() => {
            let x = n.as_i64().unwrap_or(i64::MAX);
            if x < min {
                Err(ApiError::invalid(
                    format!("Invalid '{name}': integer below minimum value. Expected a value >= {min}, but got {n} instead."),
                    Some(name.into()),
                    Some("integer_below_min_value"),
                ))
            } else if x > max {
                Err(ApiError::invalid(
                    format!("Invalid '{name}': integer above maximum value. Expected a value <= {max}, but got {n} instead."),
                    Some(name.into()),
                    Some("integer_above_max_value"),
                ))
            } else {
                Ok(())
            }
        }
        Some(other) => Err(invalid_type(name, "an integer", other)),
    }
}

fn check_message(i: usize, message: &Json) -> Result<(), ApiError> {
    let at = format!("messages[{i}]");
    let Json::Object(m) = message else { return Err(invalid_type(&at, "an object", message)) };
    let role = match m.get("role") {
        None => return Err(missing(&format!("{at}.role"))),
        Some(Json::String(r)) => r.as_str(),
        Some(other) => return Err(invalid_type(&format!("{at}.role"), "a string", other)),
    };
    let allowed: &[&str] = match role {
        "system" | "developer" | "user" => &["role", "content", "name"],
        "assistant" => &["role", "content", "name", "tool_calls", "function_call", "refusal", "audio"],
        "tool" => &["role", "content", "tool_call_id"],
        "function" => &["role", "content", "name"],
        other => return Err(invalid_value(&format!("{at}.role"), other, ROLES)),
    };
    if let Some(key) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            format!("Additional properties are not allowed ('{key}' was unexpected) - 'messages.{i}'"),
            None,
            None,
        ));
    }
    let calls = m.get("tool_calls").filter(|c| !c.is_null());
    match m.get("content") {
        None if role == "assistant" && (calls.is_some() || m.get("function_call").is_some_and(|f| !f.is_null())) => {}
        None => return Err(missing(&format!("{at}.content"))),
        Some(Json::Null) if role == "assistant" || role == "function" => {}
        Some(Json::String(_)) => {}
        Some(Json::Array(parts)) if parts.is_empty() => {
            return Err(ApiError::invalid(
                format!("Invalid '{at}.content': empty array. Expected an array with minimum length 1, but got an empty array instead."),
                Some(format!("{at}.content")),
                Some("empty_array"),
            ));
        }
        Some(Json::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                check_part(&at, role, j, part)?;
            }
        }
        Some(other) => return Err(invalid_type(&format!("{at}.content"), "one of a string or array of objects", other)),
    }
    if let Some(name) = m.get("name").filter(|n| !n.is_string()) {
        return Err(invalid_type(&format!("{at}.name"), "a string", name));
    }
    if role == "tool" {
        match m.get("tool_call_id") {
            None | Some(Json::Null) => return Err(missing(&format!("{at}.tool_call_id"))),
            Some(Json::String(_)) => {}
            Some(other) => return Err(invalid_type(&format!("{at}.tool_call_id"), "a string", other)),
        }
    }
    if let Some(calls) = calls {
        let Json::Array(calls) = calls else { return Err(invalid_type(&format!("{at}.tool_calls"), "an array", calls)) };
        for (j, call) in calls.iter().enumerate() {
            let at = format!("{at}.tool_calls[{j}]");
            let Json::Object(c) = call else { return Err(invalid_type(&at, "an object", call)) };
            for key in ["id", "type", "function"] {
                if c.get(key).is_none_or(Json::is_null) {
                    return Err(missing(&format!("{at}.{key}")));
                }
            }
            if let Some(t) = c.get("type").and_then(Json::as_str).filter(|t| *t != "function" && *t != "custom") {
                return Err(invalid_value(&format!("{at}.type"), t, "'function' and 'custom'"));
            }
            let function = &c["function"];
            for key in ["name", "arguments"] {
                match function.get(key) {
                    None | Some(Json::Null) => return Err(missing(&format!("{at}.function.{key}"))),
                    Some(Json::String(_)) => {}
                    Some(other) => return Err(invalid_type(&format!("{at}.function.{key}"), "a string", other)),
                }
            }
        }
    }
    Ok(())
}

fn check_part(at: &str, role: &str, j: usize, part: &Json) -> Result<(), ApiError> {
    let here = format!("{at}.content[{j}]");
    let Json::Object(p) = part else { return Err(invalid_type(&here, "an object", part)) };
    let kind = match p.get("type") {
        None => return Err(missing(&format!("{here}.type"))),
        Some(Json::String(t)) => t.as_str(),
        Some(other) => return Err(invalid_type(&format!("{here}.type"), "a string", other)),
    };
    let field = match kind {
        "text" => "text",
        "image_url" => "image_url",
        "input_audio" => "input_audio",
        "file" => "file",
        "refusal" => "refusal",
        other => {
            return Err(invalid_value(
                &format!("{here}.type"),
                other,
                "'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'",
            ));
        }
    };
    let allowed = match role {
        "user" => matches!(kind, "text" | "image_url" | "input_audio" | "file"),
        "assistant" => matches!(kind, "text" | "refusal"),
        _ => kind == "text",
    };
    if !allowed {
        return Err(ApiError::invalid(
            format!("Invalid '{at}'. Content parts of type '{kind}' are not allowed for messages with role '{role}'."),
            Some(at.to_owned()),
            Some("invalid_value"),
        ));
    }
    match (kind, p.get(field)) {
        (_, None | Some(Json::Null)) => Err(missing(&format!("{here}.{field}"))),
        ("text" | "refusal", Some(Json::String(_))) => Ok(()),
        ("text" | "refusal", Some(other)) => Err(invalid_type(&format!("{here}.{field}"), "a string", other)),
        ("image_url", Some(Json::Object(image))) => match image.get("url") {
            Some(Json::String(_)) => Ok(()),
            None | Some(Json::Null) => Err(missing(&format!("{here}.image_url.url"))),
            Some(other) => Err(invalid_type(&format!("{here}.image_url.url"), "a string", other)),
        },
        (_, Some(Json::Object(_))) => Ok(()),
        (_, Some(other)) => Err(invalid_type(&format!("{here}.{field}"), "an object", other)),
    }
}

/// Every tool message answers a call of the assistant message before it, and every call gets an
/// answer before the next non-tool message.
fn check_tool_sequence(messages: &[Json]) -> Result<(), ApiError> {
    let mut open: Option<(usize, Vec<String>)> = None;
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Json::as_str).unwrap_or_default();
        if role == "tool" {
            let id = m.get("tool_call_id").and_then(Json::as_str).unwrap_or_default();
            match &mut open {
                Some((_, pending)) if pending.iter().any(|p| p == id) => pending.retain(|p| p != id),
                _ => {
                    return Err(ApiError::invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                        Some(format!("messages.[{i}].role")),
                        None,
                    ));
                }
            }
            continue;
        }
        unanswered(&open)?;
        open = m
            .get("tool_calls")
            .and_then(Json::as_array)
            .filter(|c| !c.is_empty())
            .map(|calls| (i, calls.iter().filter_map(|c| c.get("id").and_then(Json::as_str)).map(str::to_owned).collect()));
    }
    unanswered(&open)
}

fn unanswered(open: &Option<(usize, Vec<String>)>) -> Result<(), ApiError> {
    match open {
        Some((at, pending)) if !pending.is_empty() => Err(ApiError::invalid(
            format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                pending.join(", ")
            ),
            Some(format!("messages.[{at}].role")),
            None,
        )),
        _ => Ok(()),
    }
}

fn check_response_format(format: &Json, messages: &[Json]) -> Result<(), ApiError> {
    let Json::Object(f) = format else { return Err(invalid_type("response_format", "an object", format)) };
    let kind = match f.get("type") {
        None | Some(Json::Null) => return Err(missing("response_format.type")),
        Some(Json::String(t)) => t.as_str(),
        Some(other) => return Err(invalid_type("response_format.type", "a string", other)),
    };
    match kind {
        "text" => Ok(()),
        "json_object" => {
            let mentions_json = messages.iter().any(|m| message_text(m).to_lowercase().contains("json"));
            if mentions_json {
                Ok(())
            } else {
                Err(ApiError::invalid(
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                    Some("messages".into()),
                    None,
                ))
            }
        }
        "json_schema" => {
            let spec = match f.get("json_schema") {
                None | Some(Json::Null) => return Err(missing("response_format.json_schema")),
                Some(Json::Object(spec)) => spec,
                Some(other) => return Err(invalid_type("response_format.json_schema", "an object", other)),
            };
            if let Some(key) = spec.keys().find(|k| !["name", "description", "schema", "strict"].contains(&k.as_str())) {
                return Err(ApiError::invalid(
                    format!("Additional properties are not allowed ('{key}' was unexpected) - 'response_format.json_schema'"),
                    None,
                    None,
                ));
            }
            let name = match spec.get("name") {
                None | Some(Json::Null) => return Err(missing("response_format.json_schema.name")),
                Some(Json::String(n)) => n.as_str(),
                Some(other) => return Err(invalid_type("response_format.json_schema.name", "a string", other)),
            };
            check_name("response_format.json_schema.name", name)?;
            let schema = match spec.get("schema") {
                None | Some(Json::Null) => return Err(missing("response_format.json_schema.schema")),
                Some(s @ Json::Object(_)) => s,
                Some(other) => return Err(invalid_type("response_format.json_schema.schema", "an object", other)),
            };
            match spec.get("strict") {
                None | Some(Json::Null) | Some(Json::Bool(false)) => Ok(()),
                Some(Json::Bool(true)) => check_strict(schema).map_err(|problem| {
                    ApiError::invalid(
                        format!("Invalid schema for response_format '{name}': {problem}"),
                        Some("response_format".into()),
                        Some("invalid_json_schema"),
                    )
                }),
                Some(other) => Err(invalid_type("response_format.json_schema.strict", "a boolean", other)),
            }
        }
        other => Err(invalid_value("response_format.type", other, "'json_object', 'json_schema', and 'text'")),
    }
}

/// All the text of a message (string content, or its text parts).
pub fn message_text(m: &Json) -> String {
    match m.get("content") {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str)).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

fn check_name(param: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(ApiError::invalid(
            format!("Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."),
            Some(param.to_owned()),
            Some("invalid_value"),
        ));
    }
    if name.len() > 64 {
        return Err(ApiError::invalid(
            format!(
                "Invalid '{param}': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
                name.len()
            ),
            Some(param.to_owned()),
            Some("string_above_max_length"),
        ));
    }
    Ok(())
}

/// Strict mode's rules: the root is an object; every object sets `additionalProperties: false`
/// and requires every property.
pub fn check_strict(schema: &Json) -> Result<(), String> {
    let root = schema.get("type").and_then(Json::as_str).unwrap_or("none");
    if root != "object" {
        return Err(format!("schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{root}\"'."));
    }
    strict_walk(schema, &mut Vec::new())
}

fn strict_walk(schema: &Json, path: &mut Vec<String>) -> Result<(), String> {
    let Json::Object(m) = schema else { return Ok(()) };
    if path.len() > 64 {
        return Ok(());
    }
    let context = || format!("In context=({})", path.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", "));
    let is_object = match m.get("type") {
        Some(Json::String(t)) => t == "object",
        Some(Json::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => m.contains_key("properties"),
    };
    if is_object {
        if m.get("additionalProperties") != Some(&Json::Bool(false)) {
            return Err(format!("{}, 'additionalProperties' is required to be supplied and to be false.", context()));
        }
        let required: Vec<&str> =
            m.get("required").and_then(Json::as_array).map(|r| r.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
        if let Some(Json::Object(props)) = m.get("properties")
            && let Some(missing) = props.keys().find(|k| !required.contains(&k.as_str()))
        {
            return Err(format!(
                "{}, 'required' is required to be supplied and to be an array including every key in properties. Missing '{missing}'.",
                context()
            ));
        }
    }
    for key in ["properties", "$defs", "definitions"] {
        if let Some(Json::Object(children)) = m.get(key) {
            for (name, child) in children {
                path.push(key.to_owned());
                path.push(name.clone());
                let result = strict_walk(child, path);
                path.truncate(path.len() - 2);
                result?;
            }
        }
    }
    for key in ["items", "anyOf", "allOf", "oneOf", "prefixItems"] {
        let children: Vec<&Json> = match m.get(key) {
            Some(Json::Array(items)) => items.iter().collect(),
            Some(item @ Json::Object(_)) => vec![item],
            _ => Vec::new(),
        };
        for (n, child) in children.into_iter().enumerate() {
            path.push(key.to_owned());
            path.push(n.to_string());
            let result = strict_walk(child, path);
            path.truncate(path.len() - 2);
            result?;
        }
    }
    Ok(())
}

/// Checks `tools` and returns the names of the function tools.
fn check_tools(tools: &[Json]) -> Result<Vec<String>, ApiError> {
    if tools.len() > 128 {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length {} instead.",
                tools.len()
            ),
            Some("tools".into()),
            Some("array_above_max_length"),
        ));
    }
    let mut names = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Json::Object(t) = tool else { return Err(invalid_type(&at, "an object", tool)) };
        match t.get("type") {
            None | Some(Json::Null) => return Err(missing(&format!("{at}.type"))),
            Some(Json::String(k)) if k == "function" => {}
            Some(Json::String(k)) if k == "custom" => continue,
            Some(Json::String(k)) => return Err(invalid_value(&format!("{at}.type"), k, "'function' and 'custom'")),
            Some(other) => return Err(invalid_type(&format!("{at}.type"), "a string", other)),
        }
        let function = match t.get("function") {
            None | Some(Json::Null) => return Err(missing(&format!("{at}.function"))),
            Some(Json::Object(f)) => f,
            Some(other) => return Err(invalid_type(&format!("{at}.function"), "an object", other)),
        };
        let name = match function.get("name") {
            None | Some(Json::Null) => return Err(missing(&format!("{at}.function.name"))),
            Some(Json::String(n)) => n.clone(),
            Some(other) => return Err(invalid_type(&format!("{at}.function.name"), "a string", other)),
        };
        check_name(&format!("{at}.function.name"), &name)?;
        match function.get("parameters") {
            None | Some(Json::Null) => {}
            Some(p @ Json::Object(_)) => {
                if function.get("strict") == Some(&Json::Bool(true)) {
                    check_strict(p).map_err(|problem| {
                        ApiError::invalid(
                            format!("Invalid schema for function '{name}': {problem}"),
                            Some(format!("{at}.function.parameters")),
                            Some("invalid_function_parameters"),
                        )
                    })?;
                }
            }
            Some(other) => return Err(invalid_type(&format!("{at}.function.parameters"), "an object", other)),
        }
        names.push(name);
    }
    Ok(names)
}

fn check_tool_choice(choice: &Json, names: &[String]) -> Result<(), ApiError> {
    match choice {
        Json::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => Ok(()),
        Json::String(s) => Err(invalid_value("tool_choice", s, "'none', 'auto', and 'required'")),
        Json::Object(c) => {
            let name = c.get("function").and_then(|f| f.get("name")).and_then(Json::as_str);
            match name {
                None => Err(missing("tool_choice.function.name")),
                Some(n) if names.iter().any(|t| t == n) => Ok(()),
                Some(n) => Err(ApiError::invalid(
                    format!("Invalid value for 'tool_choice': tool choice '{n}' not found in 'tools' parameter."),
                    Some("tool_choice".into()),
                    None,
                )),
            }
        }
        other => Err(invalid_type("tool_choice", "one of a string or object", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Json {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    }

    fn err(body: Json) -> ApiError {
        match check(&body, &[]) {
            Err(e) => e,
            Ok(()) => panic!("accepted {body}"),
        }
    }

    fn with(key: &str, value: Json) -> Json {
        let mut body = ok();
        body[key] = value;
        body
    }

    #[test]
    fn accepts_a_plain_request() {
        assert_eq!(check(&ok(), &[]), Ok(()));
    }

    #[test]
    fn rejects_what_the_api_rejects() {
        assert_eq!(err(json!({"messages": [{"role": "user", "content": "hi"}]})).message, "you must provide a model parameter");
        let e = err(json!({"model": "m"}));
        assert_eq!((e.param.as_deref(), e.code), (Some("messages"), Some("missing_required_parameter")));
        assert_eq!(err(with("messages", json!([]))).code, Some("empty_array"));
        let e = err(with("messages", json!([{"role": "bot", "content": "x"}])));
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        assert!(e.message.starts_with("Invalid value: 'bot'."), "{}", e.message);
        assert_eq!(err(with("top_k", json!(3))).message, "Unrecognized request argument supplied: top_k");
        assert_eq!(check(&with("top_k", json!(3)), &["top_k".to_owned()]), Ok(()));
        assert_eq!(err(with("temperature", json!(3))).code, Some("decimal_above_max_value"));
        assert_eq!(err(with("temperature", json!("hot"))).code, Some("invalid_type"));
        assert_eq!(err(with("stream", json!("yes"))).param.as_deref(), Some("stream"));
        assert_eq!(err(with("stream_options", json!({"include_usage": true}))).param.as_deref(), Some("stream_options"));
        assert_eq!(err(with("tool_choice", json!("auto"))).param.as_deref(), Some("tool_choice"));
        let e = err(with("messages", json!([{"role": "user", "content": "x", "extra": 1}])));
        assert!(e.message.contains("'extra' was unexpected"), "{}", e.message);
        let image_in_system = json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]);
        assert_eq!(err(with("messages", image_in_system)).code, Some("invalid_value"));
    }

    #[test]
    fn tool_messages_need_an_id_and_a_preceding_call() {
        let e = err(with("messages", json!([{"role": "user", "content": "x"}, {"role": "tool", "content": "1"}])));
        assert_eq!(e.param.as_deref(), Some("messages[1].tool_call_id"));
        let e = err(with("messages", json!([{"role": "user", "content": "x"}, {"role": "tool", "content": "1", "tool_call_id": "c"}])));
        assert!(e.message.contains("must be a response to a preceeding message"), "{}", e.message);
        let call = json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}});
        let unanswered = json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": [call]}]);
        assert!(err(with("messages", unanswered)).message.contains("did not have response messages: c"));
        let answered = json!([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]},
                              {"role": "tool", "content": "1", "tool_call_id": "c"}]);
        assert_eq!(check(&with("messages", answered), &[]), Ok(()));
    }

    #[test]
    fn response_formats() {
        let rf = |f: Json| with("response_format", f);
        assert_eq!(
            err(rf(json!({"type": "json_schema", "json_schema": {"schema": {}}}))).param.as_deref(),
            Some("response_format.json_schema.name")
        );
        assert_eq!(
            err(rf(json!({"type": "json_schema", "json_schema": {"name": "a"}}))).param.as_deref(),
            Some("response_format.json_schema.schema")
        );
        assert_eq!(err(rf(json!({"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}))).code, Some("invalid_value"));
        let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let e = err(rf(json!({"type": "json_schema", "json_schema": {"name": "a", "schema": open, "strict": true}})));
        assert_eq!(e.code, Some("invalid_json_schema"));
        assert!(e.message.contains("'additionalProperties' is required"), "{}", e.message);
        assert_eq!(check(&rf(json!({"type": "json_schema", "json_schema": {"name": "a", "schema": open, "strict": false}})), &[]), Ok(()));
        let half = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
        let e = err(rf(json!({"type": "json_schema", "json_schema": {"name": "a", "schema": half, "strict": true}})));
        assert!(e.message.contains("Missing 'b'"), "{}", e.message);
        assert!(err(rf(json!({"type": "json_object"}))).message.contains("must contain the word 'json'"));
        let mut asks_json = rf(json!({"type": "json_object"}));
        asks_json["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "Answer in JSON"}]}]);
        assert_eq!(check(&asks_json, &[]), Ok(()));
        assert_eq!(err(rf(json!({"type": "xml"}))).param.as_deref(), Some("response_format.type"));
    }

    #[test]
    fn tools() {
        let e = err(with("tools", json!([{"type": "function", "function": {"parameters": {}}}])));
        assert_eq!(e.param.as_deref(), Some("tools[0].function.name"));
        let mut body = with("tools", json!([{"type": "function", "function": {"name": "f"}}]));
        body["tool_choice"] = json!({"type": "function", "function": {"name": "g"}});
        assert!(err(body).message.contains("'g' not found"));
    }
}
