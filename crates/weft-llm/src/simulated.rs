//! The simulated model: built in, offline and deterministic (the same request always gets the same
//! reply), so every flow runs without an API key.
//!
//! A reply comes from the [`Script`] when it has one for the calling node and call index (a reply
//! `{"tool_calls": [{"name": ..., "arguments": {...}}]}` calls tools); otherwise from a rule: when
//! an agent asks (the request offers one of the agent built-ins `talk_to_user`, `submit_result`,
//! `end_conversation`), one call per turn of each tool not called yet in the conversation, in
//! offered order, with arguments generated from its parameters (the agent built-ins
//! `talk_to_user` and `end_conversation` are never called this way), then `submit_result` with
//! generated outputs when it is offered (when the tools are listed in the prompt instead,
//! [`ChatRequest::prompt_tools`], the call is `{"name": ..., "parameters": ...}` in the text, as a
//! Llama model writes it); when a prompt template lists its tools and reads calls from the text
//! ([`ChatRequest::prompt_call_syntax`], an LLM node), one call of the first tool not called yet,
//! written in that syntax (JSON, a Python call, or a React thought and action); with a requested schema, the JSON of [`generate`]; asked to pick
//! one of [`ChatRequest::prompt_choices`] (a PluginChoiceNode), the first;
//! otherwise one line quoting the start of the prompt.

pub mod generator;

pub use generator::generate;

use std::collections::BTreeMap;
use std::time::Duration;
use weft_spec::text::{TypeWords, type_name};

use serde_json::Value as Json;

use crate::{CallSyntax, ChatModel, ChatRequest, ChatResponse, LlmError, Role, ToolCall, Usage};

/// How many characters of the prompt a reply without schema quotes.
const QUOTED_CHARS: usize = 60;

/// Scripted replies by node name: the n-th call of a node (its [`crate::RequestMeta::call_index`])
/// gets the n-th reply of its list; calls past the end of the list, and nodes without a list, get
/// the rule's reply.
///
/// A key holding a `/` is a node path instead ([`crate::RequestMeta::node_path`], such as
/// `orchestrator/workers[2]/write`: the node `write` in item 2 of the map node `workers`), and
/// answers the calls made there by how many answers of the model the request already holds (its
/// assistant messages): the first reply when there are none, and so on. Map items and parallel
/// branches make their calls in whatever order their tools finish, so a node's n-th call is not
/// always the same item's; an agent's own conversation in an item is, which is what a script of
/// worker agents in a parallel map needs. A path key wins over the node's name.
///
/// A reply that is a JSON string is the text verbatim; any other JSON value is sent as its JSON
/// text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    replies: BTreeMap<String, Vec<Json>>,
}

/// The shape [`Script::from_json`] expects, for its error messages.
const SCRIPT_SHAPE: &str =
    r#"a JSON object mapping node names to lists of replies, like {"summarize": ["first reply", {"label": "spam"}]}"#;

impl Script {
    /// An empty script: every reply comes from the rule.
    pub fn new() -> Script {
        Script::default()
    }

    /// Reads a script: a JSON object mapping node names to lists of replies. `origin` (the file's
    /// path) names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Script, ScriptError> {
        let problem = |problem: String| ScriptError { origin: origin.to_owned(), problem };
        let value: Json =
            serde_json::from_str(text).map_err(|error| problem(format!("not valid JSON ({error}); expected {SCRIPT_SHAPE}")))?;
        let Json::Object(nodes) = value else {
            return Err(problem(format!("found {}; expected {SCRIPT_SHAPE}", type_name(&value, TypeWords::Json))));
        };
        let mut script = Script::new();
        for (node, replies) in nodes {
            let Json::Array(replies) = replies else {
                return Err(problem(format!(
                    "node {node:?} has {} where a list of replies belongs; expected {SCRIPT_SHAPE}",
                    type_name(&replies, TypeWords::Json)
                )));
            };
            script.replies.insert(node, replies);
        }
        Ok(script)
    }

    /// Sets the replies of one node, in call order.
    pub fn set(&mut self, node: impl Into<String>, replies: Vec<Json>) {
        self.replies.insert(node.into(), replies);
    }

    /// The replies of one node, in call order.
    pub fn replies(&self, node: &str) -> Option<&[Json]> {
        self.replies.get(node).map(Vec::as_slice)
    }

    /// Whether no node has replies.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Every node with its replies, by node name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Json])> {
        self.replies.iter().map(|(node, replies)| (node.as_str(), replies.as_slice()))
    }
}

/// Why a script (`--llm simulated?script=FILE`) was refused: the file cannot be read or has the
/// wrong shape. The fix is to correct the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--llm simulated script {origin}: {problem}")]
pub struct ScriptError {
    /// The file (or another source's name).
    pub origin: String,
    /// What is wrong, and the expected shape.
    pub problem: String,
}

impl From<BTreeMap<String, Vec<Json>>> for Script {
    fn from(replies: BTreeMap<String, Vec<Json>>) -> Script {
        Script { replies }
    }
}

/// How the simulated model behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedOptions {
    /// How long each call waits before answering (zero: no wait).
    pub latency: Duration,
    /// How many items generated arrays have, within the schema's `minItems` and `maxItems`.
    pub array_len: usize,
    /// Scripted replies by node name.
    pub script: Script,
}

impl Default for SimulatedOptions {
    fn default() -> SimulatedOptions {
        SimulatedOptions { latency: Duration::ZERO, array_len: 1, script: Script::default() }
    }
}

/// The built-in model; see the module documentation.
#[derive(Debug, Clone)]
pub struct SimulatedModel {
    latency: Duration,
    array_len: usize,
    /// The script's replies, already as text, so a call does no serialization.
    script: BTreeMap<String, Vec<String>>,
}

impl SimulatedModel {
    /// A model behaving as `options` say.
    pub fn new(options: SimulatedOptions) -> SimulatedModel {
        let script = options
            .script
            .replies
            .into_iter()
            .map(|(node, replies)| {
                let texts = replies
                    .into_iter()
                    .map(|reply| match reply {
                        Json::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect();
                (node, texts)
            })
            .collect();
        SimulatedModel { latency: options.latency, array_len: options.array_len, script }
    }

    /// The reply for a request (text, or tool calls), without waiting.
    fn reply(&self, request: &ChatRequest) -> (String, Vec<ToolCall>) {
        let answers = || request.messages.iter().filter(|message| message.role == Role::Assistant).count();
        let scripted = match self.script.get(&request.meta.node_path) {
            Some(replies) => replies.get(answers()),
            None => self
                .script
                .get(&request.meta.node)
                .and_then(|replies| usize::try_from(request.meta.call_index).ok().and_then(|index| replies.get(index))),
        };
        if let Some(text) = scripted {
            return match scripted_calls(text) {
                Some(calls) => (String::new(), with_ids(request, calls)),
                None => (text.clone(), Vec::new()),
            };
        }
        if let Some((name, arguments)) = self.next_tool_call(request) {
            if request.tools.is_empty() {
                // The tools are in the prompt: a call is text, JSON as a Llama model writes it,
                // or the syntax the template's tool output parser reads.
                let json_call = serde_json::json!({"name": name, "parameters": arguments});
                let text = match request.prompt_call_syntax {
                    None | Some(CallSyntax::Json) => json_call.to_string(),
                    Some(CallSyntax::Python) => python_call(&name, &arguments),
                    Some(CallSyntax::React) => {
                        format!("## Thought: I call {name}.\n## Action:\n```json\n{json_call}\n```")
                    }
                };
                return (text, Vec::new());
            }
            return (String::new(), with_ids(request, vec![(name, arguments)]));
        }
        let text = match (&request.response_format, request.prompt_choices.first()) {
            (Some(format), _) => generate(&format.schema, self.array_len).to_string(),
            (None, Some(choice)) => choice.clone(),
            (None, None) => prompt_reply(request),
        };
        (text, Vec::new())
    }

    /// The rule's tool call for a request offering tools: the first tool not called yet in the
    /// conversation, else `submit_result`; `None` to answer in text.
    fn next_tool_call(&self, request: &ChatRequest) -> Option<(String, Json)> {
        const NEVER_BY_RULE: [&str; 3] = ["talk_to_user", "end_conversation", "submit_result"];
        let tools = if request.tools.is_empty() { &request.prompt_tools } else { &request.tools };
        // An LLM node whose template reads calls from the text calls its tools too.
        let parsed = request.tools.is_empty() && request.prompt_call_syntax.is_some();
        if !parsed && !tools.iter().any(|t| NEVER_BY_RULE.contains(&t.name.as_str())) {
            return None;
        }
        let mut called: std::collections::HashSet<String> =
            request.messages.iter().flat_map(|m| m.tool_calls.iter().map(|c| c.name.clone())).collect();
        if request.tools.is_empty() {
            called.extend(request.messages.iter().filter(|m| m.role == Role::Assistant).flat_map(|m| text_calls(&m.content)));
        }
        let arguments = |parameters: &Json| match generate(parameters, self.array_len) {
            v @ Json::Object(_) => v,
            _ => Json::Object(serde_json::Map::new()),
        };
        if let Some(tool) = tools.iter().find(|t| !NEVER_BY_RULE.contains(&t.name.as_str()) && !called.contains(&t.name)) {
            return Some((tool.name.clone(), arguments(&tool.parameters)));
        }
        let submit = tools.iter().find(|t| t.name == "submit_result")?;
        Some((submit.name.clone(), arguments(&submit.parameters)))
    }
}

/// A call in Python syntax: `name(key=value, ...)`, the values as Python literals.
fn python_call(name: &str, arguments: &Json) -> String {
    fn literal(v: &Json, out: &mut String) {
        match v {
            Json::Null => out.push_str("None"),
            Json::Bool(true) => out.push_str("True"),
            Json::Bool(false) => out.push_str("False"),
            // JSON's numbers and double-quoted strings are Python literals too.
            Json::Number(_) | Json::String(_) => out.push_str(&v.to_string()),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    literal(item, out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&Json::String(k.clone()).to_string());
                    out.push_str(": ");
                    literal(item, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = format!("{name}(");
    if let Json::Object(members) = arguments {
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(k);
            out.push('=');
            literal(v, &mut out);
        }
    }
    out.push(')');
    out
}

/// The names of the tools an answer written as JSON calls (`{"name": ..., "parameters": ...}`,
/// or a list of them), as a model without native tool calling writes them.
fn text_calls(text: &str) -> Vec<String> {
    let items = match serde_json::from_str::<Json>(text.trim()) {
        Ok(Json::Array(items)) => items,
        Ok(item @ Json::Object(_)) => vec![item],
        _ => return Vec::new(),
    };
    items.iter().filter_map(|item| item.get("name").and_then(Json::as_str).map(str::to_owned)).collect()
}

/// The calls of a scripted reply `{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}`.
fn scripted_calls(text: &str) -> Option<Vec<(String, Json)>> {
    let value: Json = serde_json::from_str(text).ok()?;
    let calls = value.as_object().filter(|m| m.len() == 1)?.get("tool_calls")?.as_array()?;
    calls
        .iter()
        .map(|c| {
            let name = c.get("name")?.as_str()?.to_owned();
            let arguments = c.get("arguments").cloned().unwrap_or_else(|| Json::Object(serde_json::Map::new()));
            Some((name, arguments))
        })
        .collect()
}

/// Tool calls with ids unique in the run: the node, its call index and the call's place.
fn with_ids(request: &ChatRequest, calls: Vec<(String, Json)>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(k, (name, arguments))| ToolCall {
            id: format!("sim_{}_{}_{k}", request.meta.node.replace(|c: char| !c.is_ascii_alphanumeric(), "_"), request.meta.call_index),
            name,
            arguments,
        })
        .collect()
}

/// `Simulated reply to "<the start of the last user message>"`, on one line.
fn prompt_reply(request: &ChatRequest) -> String {
    const OPEN: &str = "Simulated reply to \"";
    let message = request.messages.iter().rev().find(|message| message.role == Role::User).or(request.messages.last());
    let content = message.map_or("", |message| message.content.as_str());
    // The first QUOTED_CHARS characters of the words joined by single spaces (whitespace runs,
    // newlines included, read as one space), copied a word at a time: this runs once per call.
    let mut reply = String::with_capacity(OPEN.len() + content.len().min(4 * QUOTED_CHARS) + 8);
    reply.push_str(OPEN);
    let mut taken = 0;
    let mut cut = false;
    for word in content.split_whitespace() {
        if taken > 0 {
            if taken == QUOTED_CHARS {
                cut = true;
                break;
            }
            reply.push(' ');
            taken += 1;
        }
        let room = QUOTED_CHARS - taken;
        // A word of at most `room` bytes has at most `room` characters.
        let chars = if word.len() <= room { word.chars().count() } else { word.chars().take(room + 1).count() };
        if chars <= room {
            reply.push_str(word);
            taken += chars;
        } else {
            let end = word.char_indices().nth(room).map_or(word.len(), |(i, _)| i);
            reply.push_str(&word[..end]);
            cut = true;
            break;
        }
    }
    if cut {
        reply.truncate(OPEN.len() + reply[OPEN.len()..].trim_end().len());
        reply.push('…');
    }
    reply.push('"');
    reply
}

/// About four characters per token, at least one token.
fn tokens(chars: usize) -> u64 {
    u64::try_from(chars / 4).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl ChatModel for SimulatedModel {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let (text, tool_calls) = self.reply(request);
        let input_chars: usize = request
            .messages
            .iter()
            .map(|message| message.content.chars().count() + message.parts.iter().map(|p| p.chars().count()).sum::<usize>())
            .sum();
        let output_chars = text.chars().count() + tool_calls.iter().map(|c| c.name.len() + c.arguments.to_string().len()).sum::<usize>();
        let usage = Usage { input_tokens: tokens(input_chars), output_tokens: tokens(output_chars), cached_tokens: 0 };
        Ok(ChatResponse { text, tool_calls, usage })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    /// The reply as first written (chars through iterator adapters): the reference for the
    /// word-at-a-time version.
    fn prompt_reply_reference(content: &str) -> String {
        let mut chars = content.split_whitespace().flat_map(|word| std::iter::once(' ').chain(word.chars())).skip(1);
        let mut quoted: String = chars.by_ref().take(QUOTED_CHARS).collect();
        if chars.next().is_some() {
            quoted.truncate(quoted.trim_end().len());
            quoted.push('…');
        }
        format!("Simulated reply to \"{quoted}\"")
    }

    #[test]
    fn prompt_replies_match_the_reference_on_every_shape_of_text() {
        let pieces =
            ["a", "bb", "ccc", "é", "日本語", " ", "  ", "\n", "\t ", "word", "x".repeat(59).leak(), "y".repeat(61).leak(), "\u{a0}"];
        // A small deterministic generator (xorshift) of texts made of those pieces.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut texts: Vec<String> = vec![String::new(), " ".into(), "x".repeat(60), "x".repeat(61), format!("{} y", "x".repeat(59))];
        texts.push(format!("{} y", "x".repeat(58)));
        texts.push(format!("{} yy", "x".repeat(58)));
        for _ in 0..5_000 {
            let n = (next() % 40) as usize;
            texts.push((0..n).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect());
        }
        for text in texts {
            let request = ChatRequest { messages: vec![ChatMessage::new(Role::User, text.clone())], ..ChatRequest::default() };
            assert_eq!(prompt_reply(&request), prompt_reply_reference(&text), "for {text:?}");
        }
    }

    #[test]
    fn a_path_key_answers_by_the_models_earlier_answers_and_wins_over_the_name() {
        let mut script = Script::new();
        script.set("write", vec![Json::from("by name 0"), Json::from("by name 1")]);
        script.set("flow/map[1]/write", vec![Json::from("item 1, first"), Json::from("item 1, second")]);
        let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
        let request = |path: &str, call_index: u64, answers: usize| {
            let mut messages = vec![ChatMessage::new(Role::System, "Write.")];
            messages.extend((0..answers).map(|_| ChatMessage::new(Role::Assistant, "earlier")));
            let meta = crate::RequestMeta { node: "write".into(), node_path: path.into(), call_index, batch_index: None };
            ChatRequest { messages, meta, ..ChatRequest::default() }
        };
        // Item 1's calls, whatever their run-wide index.
        assert_eq!(model.reply(&request("flow/map[1]/write", 0, 0)).0, "item 1, first");
        assert_eq!(model.reply(&request("flow/map[1]/write", 0, 1)).0, "item 1, second");
        assert!(model.reply(&request("flow/map[1]/write", 1, 2)).0.starts_with("Simulated reply"));
        // Other items go by the node's name and call index.
        assert_eq!(model.reply(&request("flow/map[0]/write", 1, 0)).0, "by name 1");
    }
}
