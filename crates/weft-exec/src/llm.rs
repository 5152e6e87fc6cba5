//! LLM nodes without IO: building the request from a node's inputs, reading the answer into
//! outputs, and the re-ask when an answer does not fit (FORMAT.md sections 8.1 and 11.1).

use crate::plan::{LlmKind, LlmOp, MessagesOp};
use serde_json::{Map, Value as Json};
use weft_flow::node::MessageRole;
use weft_llm::{ChatMessage, ChatRequest, RequestMeta, ResponseFormat, Role, SchemaDelivery};

/// Builds the first request of an LLM node from its inputs (internal names, already cast).
pub(crate) fn request(op: &LlmOp, vars: &Map<String, Json>, meta: RequestMeta) -> Result<ChatRequest, String> {
    let mut req = ChatRequest { generation: op.generation.clone(), meta, ..ChatRequest::default() };
    match &op.kind {
        LlmKind::Prompt { template, structured, .. } => {
            let text = template.render(vars).map_err(|e| format!("cannot render prompt_template: {e}"))?;
            if let Some((schema, name)) = structured {
                req.response_format =
                    Some(ResponseFormat { name: name.clone(), schema: schema.clone(), strict: false, delivery: SchemaDelivery::InPrompt });
            }
            req.messages.push(ChatMessage::new(Role::User, text));
        }
        LlmKind::Messages(m) => messages_request(m, vars, &mut req)?,
    }
    Ok(req)
}

fn messages_request(op: &MessagesOp, vars: &Map<String, Json>, req: &mut ChatRequest) -> Result<(), String> {
    let m = &op.template;
    let mut vars = vars.clone();
    if let (Some(rf), false) = (&m.response_format, m.native) {
        vars.entry("__RESPONSE_FORMAT__").or_insert_with(|| rf.clone());
    }
    for (i, message) in m.messages.iter().enumerate() {
        let text = message.template.render(&vars).map_err(|e| format!("cannot render message {i} of the prompt template: {e}"))?;
        let role = match message.role {
            MessageRole::System => Role::System,
            MessageRole::User => Role::User,
            MessageRole::Assistant => Role::Assistant,
        };
        let mut msg = ChatMessage::new(role, text);
        msg.images = message.images.clone();
        req.messages.push(msg);
    }
    if let (Some(rf), true) = (&m.response_format, m.native) {
        let name = rf.get("title").and_then(Json::as_str).unwrap_or("output").to_owned();
        req.response_format =
            Some(ResponseFormat { name, schema: weft_prompt::native_schema(rf), strict: true, delivery: SchemaDelivery::Native });
    }
    req.tools = op.tools.clone();
    Ok(())
}

/// Why an answer could not be read into outputs.
pub(crate) enum Unfit {
    /// The answer does not fit: ask again, saying why.
    Reask(String),
    /// An output parser's jq query was stopped (budget, deadline, cancellation): the node fails.
    Stopped(weft_prompt::JqFailure),
}

/// Reads an answer into the node's outputs (internal titles), or says why it does not fit.
pub(crate) fn outputs(op: &LlmOp, text: &str) -> Result<Map<String, Json>, Unfit> {
    match &op.kind {
        LlmKind::Prompt { outputs, structured, .. } => {
            if structured.is_some() {
                weft_prompt::outputs_from_answer(text, outputs).map_err(|e| Unfit::Reask(e.to_string()))
            } else {
                let title = outputs.first().and_then(|o| o.get("title")).and_then(Json::as_str).unwrap_or("generated_text");
                let mut out = Map::new();
                out.insert(title.to_owned(), Json::String(text.to_owned()));
                Ok(out)
            }
        }
        LlmKind::Messages(op) => {
            let m = &op.template;
            let value =
                weft_prompt::template_output(text, m.response_format.as_ref(), m.native, m.strict, &m.parsers).map_err(|e| match e {
                    weft_prompt::ReplyError::Stopped(failure) => Unfit::Stopped(failure),
                    other => Unfit::Reask(other.to_string()),
                })?;
            let mut out = Map::new();
            out.insert(m.output.clone(), value);
            Ok(out)
        }
    }
}

/// The next attempt: the previous request, the answer, and what was wrong with it.
pub(crate) fn reask(previous: &ChatRequest, answer: &str, reason: &str, call_index: u64) -> ChatRequest {
    let mut req = previous.clone();
    req.meta.call_index = call_index;
    req.messages.push(ChatMessage::new(Role::Assistant, answer));
    let how = match req.response_format.as_ref().map(|r| r.delivery) {
        Some(SchemaDelivery::InPrompt) => {
            "Answer again: end your answer with <final_answer>...</final_answer> around JSON that is valid against the schema given above."
        }
        _ => "Answer again with JSON that is valid against the requested schema, and nothing else.",
    };
    req.messages.push(ChatMessage::new(Role::User, format!("Your answer could not be used: {reason}\n{how}")));
    req
}
