//! The answers: a chat completion object for a checked request, by the rules of
//! [`crate::MockConfig`].
//!
//! Source of the format: the OpenAI API reference, "The chat completion object", as generated
//! into openai/openai-python `src/openai/types/chat/chat_completion.py`,
//! `chat_completion_message.py`, `chat_completion_message_tool_call.py` and
//! `completion_usage.py` (usage with `prompt_tokens_details.cached_tokens`).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};
use weft_llm::simulated::generate;

use crate::config::{MockConfig, ScriptedCall, ToolReply};
use crate::rng::Rng;
use crate::validate::message_text;

/// What the request asks for.
enum Wanted<'a> {
    Schema(&'a Json),
    JsonObject,
    Text,
}

/// The content (or tool calls) of one reply.
pub(crate) enum Content {
    Text(String),
    Calls(Vec<ScriptedCall>),
}

/// Builds the reply content of request `index`; `violate` makes a structured reply fail its
/// schema.
pub(crate) fn content(config: &MockConfig, index: u64, body: &Json, violate: bool) -> Content {
    if let Some(calls) = config.call_replies.get(&index) {
        return Content::Calls(calls.clone());
    }
    if let Some(scripted) = config.replies.get(&index) {
        return Content::Text(scripted.clone());
    }
    let messages = body.get("messages").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
    if let Some(calls) = tool_calls(config, body, messages) {
        return Content::Calls(calls);
    }
    let mut rng = config.randomize.then(|| crate::rng::for_request(config.seed, index));
    let wanted = match body.get("response_format") {
        Some(f) if f.get("type").and_then(Json::as_str) == Some("json_schema") => {
            match f.get("json_schema").and_then(|s| s.get("schema")) {
                Some(schema) => Wanted::Schema(schema),
                None => Wanted::Text,
            }
        }
        Some(f) if f.get("type").and_then(Json::as_str) == Some("json_object") => Wanted::JsonObject,
        _ => Wanted::Text,
    };
    let text = match wanted {
        Wanted::Schema(schema) => structured(schema, config.array_len, rng.as_mut(), violate),
        Wanted::JsonObject => match schema_in(messages) {
            Some(schema) => structured(&schema, config.array_len, rng.as_mut(), violate),
            None if violate => "this is not a JSON object".to_owned(),
            None => json!({"answer": plain(config, messages, rng.as_mut())}).to_string(),
        },
        Wanted::Text if violate => "this is not JSON {".to_owned(),
        // A prompt that asks for JSON valid against a schema in WayFlow's words (an LlmNode with
        // structured outputs, the schema in the prompt) gets it, as a model that follows its
        // prompt would answer.
        Wanted::Text => match schema_asked_in_prompt(messages) {
            Some(schema) => format!("<final_answer>{}</final_answer>", structured(&schema, config.array_len, rng.as_mut(), false)),
            None => plain(config, messages, rng.as_mut()),
        },
    };
    Content::Text(text)
}

fn plain(config: &MockConfig, messages: &[Json], rng: Option<&mut Rng>) -> String {
    let mut text = match &config.text {
        Some(text) => text.clone(),
        None => {
            let last =
                messages.iter().rev().find(|m| m.get("role").and_then(Json::as_str) == Some("user")).map(message_text).unwrap_or_default();
            let flat = last.split_whitespace().collect::<Vec<_>>().join(" ");
            let (quoted, _) = weft_spec::text::excerpt(&flat, 60);
            format!("weft-testkit reply to: {quoted}")
        }
    };
    if let Some(rng) = rng {
        text.push_str(&format!(" #{:08x}", rng.next_u64() as u32));
    }
    text
}

/// A value satisfying `schema` (randomized when asked, kept only if still valid), or one that
/// fails it when `violate`.
fn structured(schema: &Json, array_len: usize, rng: Option<&mut Rng>, violate: bool) -> String {
    let value = generate(schema, array_len.max(1));
    if !violate && rng.is_none() {
        return value.to_string();
    }
    // Compiled only when a value is changed, to keep plain replies cheap for benchmarks.
    let validator = jsonschema::validator_for(schema).ok();
    let valid = |v: &Json| validator.as_ref().is_none_or(|val| val.is_valid(v));
    if violate {
        return violating(schema, value, &valid).to_string();
    }
    let Some(rng) = rng else { return value.to_string() };
    for strings_only in [false, true] {
        let mut candidate = value.clone();
        perturb(&mut candidate, rng, strings_only);
        if valid(&candidate) {
            return candidate.to_string();
        }
    }
    value.to_string()
}

/// Changes strings (a random suffix), integers, numbers and booleans.
fn perturb(value: &mut Json, rng: &mut Rng, strings_only: bool) {
    match value {
        Json::String(s) => s.push_str(&format!("-{:06x}", rng.next_u64() & 0xff_ffff)),
        Json::Number(n) if !strings_only => {
            if let Some(i) = n.as_i64() {
                *value = json!(i.saturating_add((rng.next_u64() % 10) as i64));
            } else if let Some(f) = n.as_f64() {
                *value = json!(f + rng.unit());
            }
        }
        Json::Bool(b) if !strings_only => *b = rng.next_u64().is_multiple_of(2),
        Json::Array(items) => items.iter_mut().for_each(|v| perturb(v, rng, strings_only)),
        Json::Object(m) => m.values_mut().for_each(|v| perturb(v, rng, strings_only)),
        _ => {}
    }
}

/// A value that fails `schema`: the valid value without a required property, else values of
/// other types.
fn violating(schema: &Json, mut value: Json, valid: &dyn Fn(&Json) -> bool) -> Json {
    if let (Json::Object(m), Some(required)) = (&mut value, schema.get("required").and_then(Json::as_array))
        && let Some(name) = required.iter().filter_map(Json::as_str).next()
    {
        m.shift_remove(name);
    }
    if !valid(&value) {
        return value;
    }
    [json!({"unexpected": true}), json!(["not", "the", "schema"]), json!("not the schema"), json!(-1), Json::Null]
        .into_iter()
        .find(|v| !valid(v))
        .unwrap_or(json!("this is not valid"))
}

/// The last JSON object written in the messages that looks like a schema (`json_object` mode
/// carries no schema; clients write it into the prompt).
/// The words WayFlow's structured-generation prompt ends with, before the schema.
const SCHEMA_IN_PROMPT: &str = "properly formatted json that is valid against this JSON schema:";

/// The schema the last user message asks the answer to follow, if it asks in WayFlow's words.
fn schema_asked_in_prompt(messages: &[Json]) -> Option<Json> {
    let last = messages.iter().rev().find(|m| m.get("role").and_then(Json::as_str) == Some("user"))?;
    let text = message_text(last);
    let at = text.rfind(SCHEMA_IN_PROMPT)? + SCHEMA_IN_PROMPT.len();
    serde_json::Deserializer::from_str(text[at..].trim_start()).into_iter::<Json>().next()?.ok().filter(Json::is_object)
}

fn schema_in(messages: &[Json]) -> Option<Json> {
    for m in messages.iter().rev() {
        let text = message_text(m);
        let mut tried = 0;
        let mut from = 0;
        while let Some(offset) = text[from..].find('{') {
            let start = from + offset;
            tried += 1;
            if tried > 64 {
                break;
            }
            let mut values = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Json>();
            if let Some(Ok(v @ Json::Object(_))) = values.next() {
                if v.get("properties").is_some() || v.get("type").and_then(Json::as_str).is_some() {
                    return Some(v);
                }
                from = start + values.byte_offset();
            } else {
                from = start + 1;
            }
        }
    }
    None
}

/// The agent built-ins WayFlow offers an agent's model ([`ToolReply::Agent`] calls only
/// `submit_result`, once every other tool was called).
const BUILT_INS: [&str; 3] = ["submit_result", "talk_to_user", "end_conversation"];

/// A function tool's name (empty when it has none).
fn name_of(tool: &Json) -> &str {
    tool.get("name").and_then(Json::as_str).unwrap_or_default()
}

/// The tool calls to make, if any.
fn tool_calls(config: &MockConfig, body: &Json, messages: &[Json]) -> Option<Vec<ScriptedCall>> {
    let tools: Vec<&Json> = body
        .get("tools")?
        .as_array()?
        .iter()
        .filter(|t| t.get("type").and_then(Json::as_str) == Some("function"))
        .filter_map(|t| t.get("function"))
        .collect();
    if tools.is_empty() || body.get("tool_choice").and_then(Json::as_str) == Some("none") {
        return None;
    }
    let rounds = messages.iter().filter(|m| m.get("tool_calls").and_then(Json::as_array).is_some_and(|c| !c.is_empty())).count();
    let generated = |tool: &Json| {
        let params = tool.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        match generate(&params, config.array_len.max(1)) {
            v @ Json::Object(_) => v,
            _ => Json::Object(Map::new()),
        }
    };
    let agent = matches!(config.tools, ToolReply::Agent) && tools.iter().any(|t| BUILT_INS.contains(&name_of(t)));
    match &config.tools {
        ToolReply::Agent if agent => {
            let called: HashSet<&str> = messages
                .iter()
                .filter_map(|m| m.get("tool_calls").and_then(Json::as_array))
                .flatten()
                .filter_map(|c| c.get("function").and_then(|f| f.get("name")).and_then(Json::as_str))
                .collect();
            let next = tools
                .iter()
                .find(|t| !BUILT_INS.contains(&name_of(t)) && !called.contains(name_of(t)))
                .or_else(|| tools.iter().find(|t| name_of(t) == "submit_result"))?;
            Some(vec![ScriptedCall::new(name_of(next), generated(next))])
        }
        ToolReply::Never => None,
        ToolReply::Script(script) => script.get(rounds).cloned(),
        ToolReply::Auto | ToolReply::Agent if rounds > 0 => None,
        ToolReply::Auto | ToolReply::Agent => {
            let chosen = body.get("tool_choice").and_then(|c| c.get("function")).and_then(|f| f.get("name")).and_then(Json::as_str);
            let tool =
                chosen.and_then(|name| tools.iter().find(|t| t.get("name").and_then(Json::as_str) == Some(name))).or(tools.first())?;
            let name = tool.get("name").and_then(Json::as_str)?;
            Some(vec![ScriptedCall::new(name, generated(tool))])
        }
    }
}

/// The chat completion object.
pub(crate) fn completion(index: u64, body: &Json, content: &Content, cached_tokens: u64) -> Json {
    let model = body.get("model").cloned().unwrap_or(Json::Null);
    let n = body.get("n").and_then(Json::as_u64).unwrap_or(1).clamp(1, 128);
    let (message, finish, completion_tokens) = match content {
        Content::Text(text) => {
            (json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}), "stop", tokens(text.chars().count()))
        }
        Content::Calls(calls) => {
            let calls: Vec<Json> = calls
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    let id = c.id.clone().unwrap_or_else(|| format!("call_{index:06}_{k}"));
                    let arguments = match &c.arguments {
                        Json::String(raw) => raw.clone(),
                        other => other.to_string(),
                    };
                    json!({"id": id, "type": "function", "function": {"name": c.name, "arguments": arguments}})
                })
                .collect();
            let chars: usize = calls.iter().map(|c| c["function"]["arguments"].as_str().map_or(0, str::len)).sum();
            (
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [], "tool_calls": calls}),
                "tool_calls",
                tokens(chars) + 5,
            )
        }
    };
    let choices: Vec<Json> = (0..n).map(|i| json!({"index": i, "message": message, "logprobs": null, "finish_reason": finish})).collect();
    let prompt_tokens = prompt_tokens(body);
    let completion_tokens = completion_tokens * n;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({
        "id": format!("chatcmpl-weft{index:012}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens.min(prompt_tokens), "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_weft_testkit"
    })
}

/// About four characters per token, at least one.
fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// Tokens of one message: its text plus a few for the framing.
fn message_tokens(m: &Json) -> u64 {
    let mut chars = message_text(m).chars().count();
    if let Some(calls) = m.get("tool_calls") {
        chars += calls.to_string().len();
    }
    tokens(chars) + 3
}

fn prompt_tokens(body: &Json) -> u64 {
    let messages = body.get("messages").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
    let tools = body.get("tools").map_or(0, |t| tokens(t.to_string().len()));
    messages.iter().map(message_tokens).sum::<u64>() + tools
}

/// A simulated prompt cache: every message prefix seen before is served from the cache, so a
/// request repeating an earlier conversation's start reports those tokens as cached.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: HashSet<u64>,
}

impl PromptCache {
    /// The cached tokens of `body`'s messages, remembering its prefixes.
    pub(crate) fn lookup(&mut self, body: &Json) -> u64 {
        let messages = body.get("messages").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut hasher = DefaultHasher::new();
        body.get("model").map(Json::to_string).hash(&mut hasher);
        let mut cached = 0;
        let mut running = 0;
        let mut hit = true;
        for m in messages {
            m.to_string().hash(&mut hasher);
            running += message_tokens(m);
            let key = hasher.finish();
            if hit && self.seen.contains(&key) {
                cached = running;
            } else {
                hit = false;
            }
            self.seen.insert(key);
        }
        // Bounded memory for long benchmarks.
        if self.seen.len() > 1_000_000 {
            self.seen.clear();
        }
        cached
    }
}

/// A completion as server-sent events, the way OpenAI streams it: a first chunk with the role,
/// the text in pieces of a few characters, each tool call opened with its id and name and its
/// arguments in two pieces, a last chunk with the finish reason, the usage when
/// `include_usage`, then `[DONE]`. With `cut`, the events stop halfway through the answer.
pub(crate) fn stream_events(completion: &Json, include_usage: bool, cut: bool) -> String {
    let head = |delta: Json, finish: Json| {
        json!({"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"], "model": completion["model"],
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let message = &completion["choices"][0]["message"];
    let mut chunks = vec![head(json!({"role": "assistant", "content": ""}), Json::Null)];
    if let Some(text) = message["content"].as_str() {
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(4) {
            chunks.push(head(json!({"content": piece.iter().collect::<String>()}), Json::Null));
        }
    }
    for (k, call) in message["tool_calls"].as_array().into_iter().flatten().enumerate() {
        let opening = json!({"tool_calls": [{"index": k, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}]});
        chunks.push(head(opening, Json::Null));
        let arguments: Vec<char> = call["function"]["arguments"].as_str().unwrap_or_default().chars().collect();
        let half = arguments.len() / 2;
        for part in [&arguments[..half], &arguments[half..]] {
            let piece: String = part.iter().collect();
            chunks.push(head(json!({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}), Json::Null));
        }
    }
    if cut {
        chunks.truncate(chunks.len().div_ceil(2).max(1));
        return chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    }
    chunks.push(head(json!({}), completion["choices"][0]["finish_reason"].clone()));
    if include_usage {
        chunks.push(json!({"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"], "model": completion["model"],
            "choices": [], "usage": completion["usage"]}));
    }
    let mut events: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    events.push_str("data: [DONE]\n\n");
    events
}
