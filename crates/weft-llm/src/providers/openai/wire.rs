//! The Chat Completions wire format: request bodies from [`ChatRequest`]s and [`ChatResponse`]s
//! from response bodies. Parsing is tolerant (servers add, omit or null fields) and building
//! follows WayFlow (FORMAT.md 9.1): content as a list of parts, `max_tokens` sent as
//! `max_completion_tokens`, other generation parameters merged unchanged.
//!
//! Source of the format: the OpenAI API reference for "Create chat completion" and "The chat
//! completion object", as generated into openai/openai-python
//! (`src/openai/types/chat/completion_create_params.py`, `chat_completion.py`,
//! `chat_completion_message.py`, `chat_completion_tool_message_param.py`,
//! `shared_params/response_format_json_schema.py`, `completion_usage.py`).

use serde_json::{Map, Value as Json, json};
use weft_guard::Secrets;

use super::StructuredMode;
use crate::{ChatMessage, ChatRequest, ChatResponse, ResponseFormat, Role, SchemaDelivery, ToolCall, Usage};

/// Keys of the body the client sets itself; generation parameters never replace them.
const OWN_KEYS: [&str; 6] = ["model", "stream", "messages", "tools", "response_format", "tool_choice"];

/// The request body for `model`.
pub(crate) fn request_body(model: &str, request: &ChatRequest, structured: StructuredMode) -> Json {
    let mut body = Map::new();
    body.insert("model".into(), Json::String(model.to_owned()));
    body.insert("stream".into(), Json::Bool(false));
    let mut messages: Vec<Json> = request.messages.iter().map(message).collect();
    if let Some(format) = request.response_format.as_ref().filter(|f| f.delivery == SchemaDelivery::Native) {
        match structured {
            StructuredMode::JsonSchema => {
                let strict = format.strict && strict_allowed(&format.schema);
                // Built member by member: `json!` would copy the schema through serde.
                let mut json_schema = Map::new();
                json_schema.insert("name".into(), Json::String(schema_name(&format.name)));
                json_schema.insert("schema".into(), Json::clone(&format.schema));
                json_schema.insert("strict".into(), Json::Bool(strict));
                let mut response_format = Map::new();
                response_format.insert("type".into(), Json::String("json_schema".into()));
                response_format.insert("json_schema".into(), Json::Object(json_schema));
                body.insert("response_format".into(), Json::Object(response_format));
            }
            StructuredMode::JsonObject => {
                // JSON mode does not carry the schema, and OpenAI requires the word "JSON" in
                // the messages: state both in a closing system message.
                messages.push(json!({"role": "system", "content": [{"type": "text", "text": json_object_instructions(format)}]}));
                body.insert("response_format".into(), json!({"type": "json_object"}));
            }
        }
    }
    body.insert("messages".into(), Json::Array(messages));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                let mut function = Map::new();
                function.insert("name".into(), Json::String(t.name.clone()));
                if let Some(d) = &t.description {
                    function.insert("description".into(), Json::String(d.clone()));
                }
                function.insert("parameters".into(), Json::clone(&t.parameters));
                // Not `json!`, which would copy the function through serde a second time.
                let mut tool = Map::new();
                tool.insert("type".into(), Json::String("function".into()));
                tool.insert("function".into(), Json::Object(function));
                Json::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Json::Array(tools));
    }
    // `max_tokens` is sent as `max_completion_tokens`, unless that is given too.
    let explicit_max = request.generation.get("max_completion_tokens").is_some_and(|v| !v.is_null());
    for (key, value) in &request.generation {
        if value.is_null() || OWN_KEYS.contains(&key.as_str()) || (key == "max_tokens" && explicit_max) {
            continue;
        }
        let key = if key == "max_tokens" { "max_completion_tokens" } else { key.as_str() };
        body.insert(key.into(), value.clone());
    }
    Json::Object(body)
}

fn json_object_instructions(format: &ResponseFormat) -> String {
    format!("Answer with one JSON object and nothing else. It must satisfy this JSON Schema (named {:?}):\n{}", format.name, format.schema)
}

/// One message: content as a list of parts (text, then images).
fn message(m: &ChatMessage) -> Json {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), Json::String(role.into()));
    let mut parts = Vec::new();
    if !m.content.is_empty() || (m.images.is_empty() && m.tool_calls.is_empty()) {
        parts.push(json!({"type": "text", "text": m.content}));
    }
    for text in &m.parts {
        parts.push(json!({"type": "text", "text": text}));
    }
    for image in &m.images {
        parts.push(json!({"type": "image_url", "image_url": {"url": image_url(image)}}));
    }
    if m.role == Role::Tool {
        // A tool result's content is its text (as WayFlow sends it).
        out.insert("content".into(), Json::String(m.content.clone()));
    } else if !parts.is_empty() {
        // An assistant message that only calls tools has no content member (as WayFlow sends it).
        out.insert("content".into(), Json::Array(parts));
    }
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = match &c.arguments {
                    Json::String(raw) => raw.clone(),
                    other => other.to_string(),
                };
                json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments}})
            })
            .collect();
        out.insert("tool_calls".into(), Json::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), Json::String(id.clone()));
    }
    Json::Object(out)
}

/// An image as a URL: URLs and data URLs as they are, bare base64 as a data URL with the type
/// its first bytes show.
fn image_url(image: &str) -> String {
    if image.starts_with("http://") || image.starts_with("https://") || image.starts_with("data:") {
        return image.to_owned();
    }
    let mime = match image {
        i if i.starts_with("iVBOR") => "image/png",
        i if i.starts_with("/9j/") => "image/jpeg",
        i if i.starts_with("R0lG") => "image/gif",
        i if i.starts_with("UklGR") => "image/webp",
        _ => "image/png",
    };
    format!("data:{mime};base64,{image}")
}

/// A schema name as OpenAI accepts it: letters, digits, `_` and `-`, at most 64 characters.
pub(crate) fn schema_name(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).take(64).collect();
    if cleaned.is_empty() { "output".to_owned() } else { cleaned }
}

/// Whether OpenAI's strict mode accepts the schema: the root is an object, and every object
/// schema in it closes its properties (`additionalProperties: false`) and requires all of them.
pub fn strict_allowed(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("object") && objects_closed(schema, 0)
}

fn objects_closed(schema: &Json, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    let Json::Object(m) = schema else { return true };
    let is_object = match m.get("type") {
        Some(Json::String(t)) => t == "object",
        Some(Json::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => m.contains_key("properties"),
    };
    if is_object {
        if m.get("additionalProperties") != Some(&Json::Bool(false)) {
            return false;
        }
        let required: Vec<&str> =
            m.get("required").and_then(Json::as_array).map(|r| r.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
        if let Some(Json::Object(props)) = m.get("properties")
            && props.keys().any(|k| !required.contains(&k.as_str()))
        {
            return false;
        }
    }
    let children = |key: &str| -> Vec<&Json> {
        match m.get(key) {
            Some(Json::Object(o)) if matches!(key, "properties" | "$defs" | "definitions") => o.values().collect(),
            Some(Json::Array(a)) => a.iter().collect(),
            Some(v @ Json::Object(_)) => vec![v],
            _ => Vec::new(),
        }
    };
    ["properties", "$defs", "definitions", "items", "prefixItems", "anyOf", "allOf", "oneOf", "additionalProperties", "not"]
        .iter()
        .flat_map(|k| children(k))
        .all(|child| objects_closed(child, depth + 1))
}

/// A parsed response, or why the body is not a chat completion. The excerpts of the body a
/// reason quotes are cut from the body with `secrets` masked, never the other way round.
pub(crate) fn parse_response(body: &[u8], secrets: &Secrets) -> Result<ChatResponse, String> {
    let excerpt = |body: &[u8]| excerpt(body, secrets);
    let value: Json = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e}): {}", excerpt(body)))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(format!("the body is an error: {}", error_text(error).unwrap_or_else(|| error.to_string())));
    }
    let Some(choice) = value.get("choices").and_then(Json::as_array).and_then(|c| c.first()) else {
        return Err(format!("the body has no choices: {}", excerpt(body)));
    };
    let Some(message) = choice.get("message").filter(|m| m.is_object()) else {
        return Err(format!("the first choice has no message: {}", excerpt(body)));
    };
    let mut text = content_text(message.get("content"));
    if text.is_empty() {
        // A refusal goes back as the answer, so the engine reports or re-asks on it.
        if let Some(refusal) = message.get("refusal").and_then(Json::as_str) {
            text = refusal.to_owned();
        }
    }
    let mut tool_calls = Vec::new();
    if let Some(calls) = message.get("tool_calls").and_then(Json::as_array) {
        for (index, call) in calls.iter().enumerate() {
            let function = call.get("function").unwrap_or(call);
            let Some(name) = function.get("name").and_then(Json::as_str) else {
                return Err(format!("tool call {index} has no function name: {call}"));
            };
            let id = call.get("id").and_then(Json::as_str).map_or_else(|| format!("call_{index}"), str::to_owned);
            tool_calls.push(ToolCall { id, name: name.to_owned(), arguments: arguments(function.get("arguments")) });
        }
    }
    Ok(ChatResponse { text, tool_calls, usage: usage(value.get("usage")) })
}

/// Text content: a string, or the text parts of a list.
fn content_text(content: Option<&Json>) -> String {
    match content {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str).or_else(|| p.as_str())).collect(),
        _ => String::new(),
    }
}

/// Tool-call arguments: the JSON string parsed (empty means `{}`); unparsable text stays a
/// string, so the engine can report it.
pub(crate) fn arguments(raw: Option<&Json>) -> Json {
    match raw {
        Some(Json::String(s)) if s.trim().is_empty() => Json::Object(Map::new()),
        Some(Json::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone())),
        Some(Json::Null) | None => Json::Object(Map::new()),
        Some(other) => other.clone(),
    }
}

pub(crate) fn usage(usage: Option<&Json>) -> Usage {
    let Some(u) = usage else { return Usage::default() };
    let n = |v: Option<&Json>| v.and_then(Json::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n(u.get("prompt_tokens")),
        output_tokens: n(u.get("completion_tokens")),
        cached_tokens: n(u.get("prompt_tokens_details").and_then(|d| d.get("cached_tokens"))),
    }
}

/// What an error body says: OpenAI's `{"error": {"message", "type", "param", "code"}}`, or the
/// shapes other servers use (`{"error": "..."}`, `{"detail": ...}`, `{"message": ...}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

/// What `body` says; a body that is not JSON is quoted in part, cut from the body with
/// `secrets` masked.
pub(crate) fn error_body(body: &[u8], secrets: &Secrets) -> ErrorBody {
    let excerpt = |body: &[u8]| excerpt(body, secrets);
    let Ok(value) = serde_json::from_slice::<Json>(body) else {
        let text = excerpt(body);
        return ErrorBody { message: (!text.is_empty()).then_some(text), ..ErrorBody::default() };
    };
    let scalar = |v: Option<&Json>| match v {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let error = value.get("error");
    match error {
        Some(e @ Json::Object(_)) => {
            ErrorBody { message: error_text(e), kind: scalar(e.get("type")), code: scalar(e.get("code")), param: scalar(e.get("param")) }
        }
        Some(Json::String(s)) => ErrorBody { message: Some(s.clone()), ..ErrorBody::default() },
        _ => ErrorBody {
            message: value
                .get("detail")
                .or_else(|| value.get("message"))
                .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
                .or_else(|| Some(excerpt(body))),
            ..ErrorBody::default()
        },
    }
}

pub(crate) fn error_text(error: &Json) -> Option<String> {
    match error {
        Json::String(s) => Some(s.clone()),
        _ => error.get("message").and_then(Json::as_str).map(str::to_owned),
    }
}

/// The start of a body, for messages: `secrets` are masked in the whole body first, so a cut
/// never leaves part of one that no longer matches.
pub(crate) fn excerpt(body: &[u8], secrets: &Secrets) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = secrets.redact_str(&text);
    let text = text.trim();
    match weft_spec::text::excerpt(text, MAX) {
        (cut, true) => format!("{cut}…"),
        (whole, false) => whole.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolSpec, simulated::generate};

    fn request() -> ChatRequest {
        ChatRequest { messages: vec![ChatMessage::new(Role::User, "hi")], ..ChatRequest::default() }
    }

    #[test]
    fn body_follows_wayflow() {
        let mut req = request();
        req.generation.insert("max_tokens".into(), json!(10));
        req.generation.insert("temperature".into(), json!(0.5));
        req.generation.insert("frequency_penalty".into(), json!(0.1));
        req.generation.insert("model".into(), json!("other"));
        req.generation.insert("top_p".into(), Json::Null);
        let body = request_body("m", &req, StructuredMode::JsonSchema);
        assert_eq!(
            body,
            json!({"model": "m", "stream": false, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                   "max_completion_tokens": 10, "temperature": 0.5, "frequency_penalty": 0.1})
        );
    }

    #[test]
    fn structured_output_is_strict_only_when_the_schema_allows() {
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false});
        let open = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let nested = json!({"type": "object", "properties": {"o": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
                            "required": ["o"], "additionalProperties": false});
        assert!(strict_allowed(&closed));
        assert!(!strict_allowed(&open));
        assert!(!strict_allowed(&nested));
        assert!(!strict_allowed(&json!({"type": "string"})));
        let mut req = request();
        req.response_format =
            Some(ResponseFormat { name: "my answer".into(), schema: open.into(), strict: true, delivery: SchemaDelivery::Native });
        let body = request_body("m", &req, StructuredMode::JsonSchema);
        assert_eq!(body["response_format"]["json_schema"]["strict"], json!(false));
        assert_eq!(body["response_format"]["json_schema"]["name"], json!("my_answer"));
        let body = request_body("m", &req, StructuredMode::JsonObject);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert!(body["messages"][1]["content"][0]["text"].as_str().unwrap_or_default().contains("JSON Schema"));
        req.response_format = req.response_format.map(|f| ResponseFormat { delivery: SchemaDelivery::InPrompt, ..f });
        assert!(request_body("m", &req, StructuredMode::JsonSchema).get("response_format").is_none());
    }

    #[test]
    fn tools_and_tool_messages() {
        let mut req = request();
        req.tools.push(ToolSpec { name: "add".into(), description: Some("adds".into()), parameters: json!({"type": "object"}).into() });
        let mut assistant = ChatMessage::new(Role::Assistant, "");
        assistant.tool_calls.push(ToolCall { id: "c1".into(), name: "add".into(), arguments: json!({"a": 1}) });
        req.messages.push(assistant);
        let mut result = ChatMessage::new(Role::Tool, "2");
        result.tool_call_id = Some("c1".into());
        req.messages.push(result);
        let body = request_body("m", &req, StructuredMode::JsonSchema);
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "add", "description": "adds", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(body["messages"][2], json!({"role": "tool", "content": "2", "tool_call_id": "c1"}));
    }

    #[test]
    fn responses_parse_tolerantly() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
            {"type": "function", "function": {"name": "g", "arguments": ""}},
            {"id": "d", "type": "function", "function": {"name": "h", "arguments": "{oops"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 3}}});
        let r = parse_response(body.to_string().as_bytes(), &Secrets::default()).expect("parsed");
        assert_eq!(r.usage, Usage { input_tokens: 5, output_tokens: 2, cached_tokens: 3 });
        assert_eq!(r.tool_calls[0].arguments, json!({"x": 1}));
        assert_eq!(r.tool_calls[1].id, "call_1");
        assert_eq!(r.tool_calls[1].arguments, json!({}));
        assert_eq!(r.tool_calls[2].arguments, json!("{oops"));
        let parts =
            json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}], "usage": null});
        assert_eq!(parse_response(parts.to_string().as_bytes(), &Secrets::default()).expect("parsed").text, "ab");
        assert!(parse_response(b"{\"choices\": []}", &Secrets::default()).is_err());
        assert!(parse_response(b"<html>", &Secrets::default()).is_err());
        let value = generate(&json!({"type": "object", "properties": {"a": {"type": "string"}}}), 1);
        assert_eq!(value, json!({"a": "a"}));
    }

    #[test]
    fn error_bodies_of_several_servers() {
        let none = Secrets::default();
        let openai =
            error_body(br#"{"error": {"message": "bad", "type": "invalid_request_error", "param": "model", "code": null}}"#, &none);
        assert_eq!(openai.message.as_deref(), Some("bad"));
        assert_eq!(openai.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(openai.param.as_deref(), Some("model"));
        assert_eq!(error_body(br#"{"error": "model not found"}"#, &none).message.as_deref(), Some("model not found"));
        assert_eq!(error_body(br#"{"detail": "Not Found"}"#, &none).message.as_deref(), Some("Not Found"));
        assert_eq!(error_body(b"upstream timed out", &none).message.as_deref(), Some("upstream timed out"));
        assert_eq!(error_body(b"", &none).message, None);
    }
}
