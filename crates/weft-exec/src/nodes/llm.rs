//! LLM nodes (LlmNode, ExtendedLlmNode): the model and limiter bound at plan time, the request
//! built from a node's inputs, the call the driver makes, the answer read into outputs, and the
//! re-ask when an answer does not fit (FORMAT.md sections 8.1 and 11.1).

use super::{At, mismatched_call};
use crate::check::{Checked, Place, damaged};
use crate::effect::{Effect, EffectResult, LlmCall};
use crate::error::RunErrorKind;
use crate::event::Event;
use crate::plan::{Compiler, NodePlan};
use crate::sched::{Res, Sched, excerpt, get_frame, node_error};
use crate::state::{Call, ConversationMessage, Position, Reask, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{CHAT_HISTORY, ChoiceNode, LlmNode, LlmPrompt, MessageRole, MessageTransform, PromptMessages, TOOLS};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, RequestMeta, ResponseFormat, Role, SchemaDelivery, ToolSpec};
use weft_spec::{CompId, Component, Property};

pub(crate) struct LlmOp {
    pub(crate) model: Arc<dyn ChatModel>,
    /// The provider-wide limiter of the model's endpoint.
    pub(crate) limiter: Arc<weft_llm::limit::Limiter>,
    pub(crate) generation: Map<String, Json>,
    pub(crate) send_message: bool,
    pub(crate) kind: LlmKind,
}

pub(crate) enum LlmKind {
    /// One user message from `prompt_template` (LlmNode, and ExtendedLlmNode without a template
    /// object). `outputs` are the node's output schemas under their internal titles;
    /// `structured` the schema asked for in the prompt and its name, when structured.
    Prompt {
        template: Arc<weft_prompt::Template>,
        outputs: Vec<Json>,
        /// The schema asked for in the prompt and its name, with the reader of the answers
        /// (the output schemas modelled once, with the plan).
        structured: Option<(Arc<Json>, String, weft_prompt::AnswerReader)>,
    },
    /// A PluginPromptTemplate.
    Messages(Box<MessagesOp>),
    /// A PluginChoiceNode's question: its answer picks the branch.
    Choice(Box<ChoiceOp>),
}

/// What a PluginChoiceNode asks and how its answer is read (FORMAT.md 11.1, WayFlow's
/// ChoiceSelectionStep).
pub(crate) struct ChoiceOp {
    pub(crate) template: Arc<weft_prompt::Template>,
    /// The template's `next_steps`.
    pub(crate) next_steps: Json,
    /// `(displayed name, branch)`, in `next_branches` order.
    pub(crate) choices: Vec<(String, String)>,
    pub(crate) selected_output: String,
    pub(crate) llm_output: String,
}

impl ChoiceOp {
    /// The choice the answer names: the leftmost displayed name found in it, the earlier entry
    /// at one position (WayFlow searches for an alternation of the escaped names, case-sensitive,
    /// without word boundaries).
    pub(crate) fn pick(&self, answer: &str) -> Option<&(String, String)> {
        for (i, _) in answer.char_indices().chain(std::iter::once((answer.len(), ' '))) {
            let rest = &answer[i..];
            if let Some(c) = self.choices.iter().find(|(displayed, _)| !displayed.is_empty() && rest.starts_with(displayed.as_str())) {
                return Some(c);
            }
        }
        None
    }
}

pub(crate) struct MessagesOp {
    /// The template object, as the document's model lowered it.
    pub(crate) template: Arc<PromptMessages>,
    /// Its tools, described for the model.
    pub(crate) tools: Vec<ToolSpec>,
    /// Its tools as a tool output parser corrects the arguments of their calls (`None` when the
    /// template has none).
    pub(crate) offered: Option<Vec<weft_prompt::OfferedTool>>,
    /// The template variable `__TOOLS__` of a template with `native_tool_calling: false`: the
    /// tools in OpenAI's chat-completions format, as WayFlow writes them.
    pub(crate) listed: Json,
    /// The native response format asked for on every call (a `response_format` in native
    /// mode), built once.
    pub(crate) native_format: Option<ResponseFormat>,
}

impl LlmOp {
    /// Binds the node's model (reporting an LLM config no model serves) and its endpoint's
    /// limiter.
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, idx: usize, llm: &LlmNode) -> Option<LlmOp> {
        let model = model_for(c, n, llm.llm_config)?;
        let kind = match &llm.prompt {
            LlmPrompt::Text(t) => {
                let structured = t.structured.clone().map(|(schema, name)| (schema, name, weft_prompt::AnswerReader::new(&t.outputs)));
                LlmKind::Prompt { template: t.template.clone(), outputs: t.outputs.clone(), structured }
            }
            LlmPrompt::Messages(m) => {
                // An input `__CHAT_HISTORY__` no edge feeds is the conversation (WayFlow's
                // PromptExecutionStep fills it): `null` until the request is built.
                if m.history
                    && let Some(input) = c.nodes[idx].inputs.iter_mut().find(|i| i.internal == CHAT_HISTORY && i.sources.is_empty())
                    && let Json::Object(schema) = &mut input.schema
                {
                    schema.entry("default").or_insert(Json::Null);
                }
                let tools = m.tools.iter().map(|&t| tool_spec(c.comp(t), &c.flow.io(t).inputs)).collect();
                let offered = (!m.tools.is_empty()).then(|| {
                    m.tools
                        .iter()
                        .map(|&t| weft_prompt::OfferedTool {
                            name: c.comp(t).name.clone(),
                            parameters: c
                                .flow
                                .io(t)
                                .inputs
                                .iter()
                                .map(|p| (p.title().to_owned(), weft_prompt::wayflow_schema(&p.schema)))
                                .collect(),
                        })
                        .collect()
                });
                let listed = Json::Array(m.tools.iter().map(|&t| openai_tool(c.comp(t), &c.flow.io(t).inputs)).collect());
                let native_format = m.response_format.as_ref().filter(|_| m.native).map(|rf| ResponseFormat {
                    name: rf.get("title").and_then(Json::as_str).unwrap_or("output").to_owned(),
                    schema: Arc::new(weft_prompt::native_schema(rf)),
                    strict: true,
                    delivery: SchemaDelivery::Native,
                });
                LlmKind::Messages(Box::new(MessagesOp { template: m.clone(), tools, offered, listed, native_format }))
            }
        };
        let limiter = c.inputs.limits.get(model.endpoint());
        Some(LlmOp { model, limiter, generation: llm.generation.clone(), send_message: llm.send_message, kind })
    }

    /// A PluginChoiceNode: one plain generation of at most `num_tokens` tokens.
    pub(crate) fn plan_choice(c: &mut Compiler<'_>, n: CompId, choice: &ChoiceNode) -> Option<LlmOp> {
        let model = model_for(c, n, choice.llm_config)?;
        let limiter = c.inputs.limits.get(model.endpoint());
        let kind = LlmKind::Choice(Box::new(ChoiceOp {
            template: choice.template.clone(),
            next_steps: choice.next_steps.clone(),
            choices: choice.choices.clone(),
            selected_output: choice.selected_output.clone(),
            llm_output: choice.llm_output.clone(),
        }));
        Some(LlmOp { model, limiter, generation: choice.generation.clone(), send_message: false, kind })
    }

    /// Renders the request and sends the first attempt out.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let meta = meta(state, at.fid, at.node)?;
        let call_index = meta.call_index;
        let request = request(self, &vars, &state.messages, meta).map_err(|e| e.error(at.node))?;
        s.start_clock(state, at.fid);
        self.send(s, state, at, Call::Llm { attempt: 1, call_index, reasks: Vec::new() }, request);
        Ok(())
    }

    /// The call again: its request rendered again from the node's inputs, with the call index it
    /// had, followed by its re-asks.
    pub(crate) fn remake(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call, vars: Map<String, Json>) -> Res<Effect> {
        let Call::Llm { attempt, call_index, reasks } = call else { return Err(mismatched_call()) };
        let request = self.attempt_request(state, at, &vars, *call_index, reasks)?;
        Ok(self.effect(s, state, at, request, *attempt))
    }

    /// The request of an attempt: the first request (rendered from the inputs), then each earlier
    /// answer and why it did not fit.
    fn attempt_request(
        &self,
        state: &RunState,
        at: At<'_>,
        vars: &Map<String, Json>,
        call_index: u64,
        reasks: &[Reask],
    ) -> Res<ChatRequest> {
        let node_path = format!("{}/{}", get_frame(state, at.fid)?.path, at.node.name);
        let meta = RequestMeta { node: at.node.name.clone(), node_path, call_index, batch_index: None };
        let mut request = request(self, vars, &state.messages, meta).map_err(|e| e.error(at.node))?;
        for r in reasks {
            push_reask(&mut request, &r.answer, &r.reason);
        }
        Ok(request)
    }

    /// The effect of an attempt, and its `llm_request` event.
    fn effect(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, request: ChatRequest, attempt: u32) -> Effect {
        model_call(s, state, at, (&self.model, &self.limiter), request, attempt)
    }

    /// Sends an attempt out: the node is busy with `call` until its result comes back.
    fn send(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, request: ChatRequest) {
        let Call::Llm { attempt, .. } = &call else { return };
        let effect = self.effect(s, state, at, request, *attempt);
        s.perform(state, at.fid, at.node, call, effect);
    }

    /// The model answered: outputs, a re-ask (while re-asks are left), or an error.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let (Call::Llm { attempt, reasks, .. }, EffectResult::Llm(result)) = (call, result) else {
            return Err(mismatched_call());
        };
        let node = at.node;
        let response = model_answered(s, state, at, result)?;
        match outputs(self, &response.text) {
            Ok((outputs, calls)) if !calls.is_empty() => {
                if self.send_message {
                    // WayFlow posts the parsed message: a tool request whose text is the thoughts.
                    let call_index = state.llm_calls.get(&node.name).copied().unwrap_or(1).saturating_sub(1);
                    let text = outputs.values().next().and_then(Json::as_str).unwrap_or_default().to_owned();
                    let tool_calls = calls
                        .into_iter()
                        .enumerate()
                        .map(|(k, c)| weft_llm::ToolCall {
                            id: format!("{}_{call_index}_{k}", node.name),
                            name: c.name,
                            arguments: Json::Object(c.arguments),
                        })
                        .collect();
                    state.conversation_mut(at.fid).push(ConversationMessage {
                        tool_calls,
                        ..ConversationMessage::text("TOOL_REQUEST", text.clone(), node.name.clone())
                    });
                    s.emit(state, at.fid, || Event::Message {
                        node: node.name.clone(),
                        message_type: "TOOL_REQUEST".to_owned(),
                        content: text.clone(),
                    });
                }
                s.stop_clock(state, at.fid);
                s.done(state, at, outputs)
            }
            Ok((outputs, _)) => {
                if self.send_message {
                    s.post(state, at.fid, node, "AGENT", &response.text);
                }
                s.stop_clock(state, at.fid);
                match &self.kind {
                    LlmKind::Choice(choice) => {
                        let branch = choice.pick(&response.text).map_or("default", |(_, branch)| branch.as_str());
                        s.produce(state, at.fid, node, outputs)?;
                        s.follow(state, at, branch)
                    }
                    LlmKind::Prompt { .. } | LlmKind::Messages(_) => s.done(state, at, outputs),
                }
            }
            Err(Unfit::Stopped(failure)) => {
                Err(node_error(s.stopped_kind(&failure), node, &format!("cannot read the model's answer: {failure}")))
            }
            Err(Unfit::Reask(reason)) if attempt <= s.cfg.max_reasks => {
                s.emit(state, at.fid, || Event::LlmReask { node: node.name.clone(), reason: reason.clone() });
                let call_index = meta(state, at.fid, node)?.call_index;
                let mut reasks = reasks;
                reasks.push(Reask { answer: response.text, reason });
                // The inputs have not changed while the node waited: the request is rendered
                // again, with the exchanges so far.
                let vars = s.node_inputs(state, at.fid, node)?;
                let request = self.attempt_request(state, at, &vars, call_index, &reasks)?;
                let attempt = attempt.saturating_add(1);
                self.send(s, state, at, Call::Llm { attempt, call_index, reasks }, request);
                Ok(())
            }
            Err(Unfit::Reask(reason)) => Err(node_error(
                RunErrorKind::StructuredOutput,
                node,
                &format!(
                    "the model's answer does not fit the node's outputs after {attempt} attempt{}: {reason}. Last answer: {}",
                    if attempt == 1 { "" } else { "s" },
                    excerpt(&response.text, &s.plan.secrets)
                ),
            )),
        }
    }

    /// Only busy with an LLM call, attempts counted from 1.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } => match &**call {
                Call::Llm { attempt, .. } if *attempt >= 1 => Ok(()),
                Call::Llm { .. } => {
                    Err(damaged(format!("{}/position/call/attempt", place.at), "attempt 0: attempts count from 1 (the first call)"))
                }
                Call::Tool { .. }
                | Call::AgentLlm { .. }
                | Call::AgentSummary { .. }
                | Call::AgentTools { .. }
                | Call::ExtractRepair { .. }
                | Call::Http {}
                | Call::A2ASend {}
                | Call::A2APoll { .. } => place.unexpected(position),
            },
            other => place.unexpected(other),
        }
    }
}

/// The effect of a call of `model` under its endpoint's `limiter`, and its `llm_request` event
/// (LLM nodes and agents).
pub(crate) fn model_call(
    s: &mut Sched<'_>,
    state: &RunState,
    at: At<'_>,
    (model, limiter): (&Arc<dyn ChatModel>, &Arc<weft_llm::limit::Limiter>),
    request: ChatRequest,
    attempt: u32,
) -> Effect {
    s.emit(state, at.fid, || Event::LlmRequest {
        node: at.node.name.clone(),
        model: model.name().to_owned(),
        attempt,
        messages: request.messages.len(),
    });
    Effect::Llm(Box::new(LlmCall {
        model: Arc::clone(model),
        limiter: Arc::clone(limiter),
        request,
        node: at.node.name.clone(),
        listing: None,
    }))
}

/// A model call's result: the answer, counted in the run's usage with its `llm_response` event,
/// or the node's failure (LLM nodes and agents).
pub(crate) fn model_answered(
    s: &mut Sched<'_>,
    state: &mut RunState,
    at: At<'_>,
    result: Result<weft_llm::ChatResponse, weft_llm::LlmError>,
) -> Res<weft_llm::ChatResponse> {
    let response = result.map_err(|e| node_error(RunErrorKind::Llm, at.node, &format!("the LLM call failed: {e}")).with_llm(e))?;
    let took_ms = s.took_ms;
    s.emit(state, at.fid, || Event::LlmResponse { node: at.node.name.clone(), usage: response.usage, duration_ms: took_ms });
    state.usage.llm_calls = state.usage.llm_calls.saturating_add(1);
    state.usage.tokens.add(&response.usage);
    Ok(response)
}

/// The model of an LLM config, or `None` with the reason reported.
pub(crate) fn model_for(c: &mut Compiler<'_>, n: CompId, config: CompId) -> Option<Arc<dyn ChatModel>> {
    let Some(typed) = c.model.llm_config(config) else {
        c.not_lowered(config);
        return None;
    };
    match (c.inputs.models)(typed) {
        Ok(m) => Some(m),
        Err(why) => {
            let at = if typed.pointer.is_empty() { "/" } else { &typed.pointer };
            let line = format!("{} at {at} (used by {}): {why}", typed.label(), c.comp(n).label());
            c.report(line);
            None
        }
    }
}

/// A tool offered natively to the model, described as WayFlow's chat-completions processor
/// does (`_APIProcessor._get_tool_parameters`): the parameters of [`openai_tool`].
fn tool_spec(tool: &Component, inputs: &[Property]) -> ToolSpec {
    ToolSpec { name: tool.name.clone(), description: tool.description.clone(), parameters: Arc::new(openai_parameters(inputs)) }
}

/// A tool's parameters as WayFlow writes them for OpenAI: each parameter's schema as WayFlow
/// writes it (titled, without `Optional`), the parameters without a default required; a tool
/// without parameters gets an empty object and no `required`.
fn openai_parameters(inputs: &[Property]) -> Json {
    if inputs.is_empty() {
        return serde_json::json!({"type": "object", "properties": {}});
    }
    let properties: Map<String, Json> =
        inputs.iter().map(|p| (p.title().to_owned(), weft_prompt::remove_optional(&weft_prompt::wayflow_schema(&p.schema)))).collect();
    let required: Vec<Json> = inputs.iter().filter(|p| p.default().is_none()).map(|p| Json::String(p.title().to_owned())).collect();
    serde_json::json!({"type": "object", "properties": properties, "required": required})
}

/// A tool as WayFlow lists it in `__TOOLS__` (`Tool.to_openai_format()` for chat completions).
fn openai_tool(tool: &Component, inputs: &[Property]) -> Json {
    serde_json::json!({
        "type": "function",
        "function": {"name": tool.name, "description": tool.description.clone().unwrap_or_default(), "parameters": openai_parameters(inputs)},
    })
}

/// The request metadata of the next LLM call of `node`, counting the call.
pub(crate) fn meta(state: &mut RunState, fid: u64, node: &NodePlan) -> Res<RequestMeta> {
    let node_path = format!("{}/{}", get_frame(state, fid)?.path, node.name);
    let count = match state.llm_calls.get_mut(&node.name) {
        Some(count) => count,
        None => state.llm_calls.entry(node.name.clone()).or_insert(0),
    };
    let call_index = *count;
    *count = count.saturating_add(1);
    Ok(RequestMeta { node: node.name.clone(), node_path, call_index, batch_index: None })
}

/// Builds the first request of an LLM node from its inputs (internal names, already cast) and the
/// run's conversation (for a template that reads the chat history).
/// Why a request could not be built.
enum Unbuilt {
    /// A template that could not be rendered: which one, and why.
    Template(String, weft_prompt::TemplateError),
    /// A message transform that failed (WayFlow raises ValueError).
    Transform(String),
}

impl From<(String, weft_prompt::TemplateError)> for Unbuilt {
    fn from((what, e): (String, weft_prompt::TemplateError)) -> Unbuilt {
        Unbuilt::Template(what, e)
    }
}

impl From<String> for Unbuilt {
    fn from(why: String) -> Unbuilt {
        Unbuilt::Transform(why)
    }
}

impl Unbuilt {
    /// The node's error.
    fn error(self, node: &NodePlan) -> crate::error::RunError {
        match self {
            Unbuilt::Template(what, e) => crate::error::RunError::template(node, &what, &e),
            Unbuilt::Transform(why) => node_error(RunErrorKind::Value, node, &format!("cannot build the prompt: {why}")),
        }
    }
}

fn request(op: &LlmOp, vars: &Map<String, Json>, conversation: &[ConversationMessage], meta: RequestMeta) -> Result<ChatRequest, Unbuilt> {
    let mut req = ChatRequest { generation: op.generation.clone(), meta, ..ChatRequest::default() };
    match &op.kind {
        LlmKind::Prompt { template, structured, .. } => {
            let text = template.render(vars).map_err(|e| Unbuilt::Template("prompt_template".to_owned(), e))?;
            if let Some((schema, name, _)) = structured {
                req.response_format =
                    Some(ResponseFormat { name: name.clone(), schema: schema.clone(), strict: false, delivery: SchemaDelivery::InPrompt });
            }
            // One message: sized for it (a first push would make room for four, held while the
            // call is in flight).
            req.messages = vec![ChatMessage::new(Role::User, text)];
        }
        LlmKind::Messages(m) => messages_request(m, vars, conversation, &mut req)?,
        LlmKind::Choice(c) => {
            let mut vars = vars.clone();
            vars.insert("next_steps".into(), c.next_steps.clone());
            let text = c.template.render(&vars).map_err(|e| Unbuilt::Template("prompt_template".to_owned(), e))?;
            // One message: sized for it (a first push would make room for four, held while the
            // call is in flight).
            req.messages = vec![ChatMessage::new(Role::User, text)];
            req.prompt_choices = c.choices.iter().map(|(displayed, _)| displayed.clone()).collect();
        }
    }
    Ok(req)
}

/// A message of a prompt being built, with the message type WayFlow's transforms look at.
struct PromptMsg {
    /// `SYSTEM`, `USER`, `AGENT`, `TOOL_REQUEST`, `TOOL_RESULT`.
    message_type: &'static str,
    chat: ChatMessage,
}

impl PromptMsg {
    fn of(chat: ChatMessage) -> PromptMsg {
        let message_type = match chat.role {
            Role::System => "SYSTEM",
            Role::User => "USER",
            Role::Assistant if !chat.tool_calls.is_empty() => "TOOL_REQUEST",
            Role::Assistant => "AGENT",
            Role::Tool => "TOOL_RESULT",
        };
        PromptMsg { message_type, chat }
    }
}

/// The conversation as a template's chat history (WayFlow's PromptExecutionStep: user, agent,
/// tool request and tool result messages).
fn chat_history(conversation: &[ConversationMessage]) -> Vec<PromptMsg> {
    conversation
        .iter()
        .filter_map(|m| {
            let chat = match m.message_type.as_str() {
                "USER" => ChatMessage::new(Role::User, m.content.clone()),
                "AGENT" => ChatMessage::new(Role::Assistant, m.content.clone()),
                "TOOL_REQUEST" => {
                    let mut c = ChatMessage::new(Role::Assistant, m.content.clone());
                    c.tool_calls = m
                        .tool_calls
                        .iter()
                        .map(|t| weft_llm::ToolCall {
                            id: t.id.clone(),
                            name: t.name.clone(),
                            arguments: Json::String(weft_prompt::py_json_dumps(&t.arguments)),
                        })
                        .collect();
                    c
                }
                "TOOL_RESULT" => {
                    let mut c = ChatMessage::new(Role::Tool, m.content.clone());
                    c.tool_call_id.clone_from(&m.tool_call_id);
                    c
                }
                _ => return None,
            };
            Some(PromptMsg {
                message_type: match m.message_type.as_str() {
                    "USER" => "USER",
                    "AGENT" => "AGENT",
                    "TOOL_REQUEST" => "TOOL_REQUEST",
                    _ => "TOOL_RESULT",
                },
                chat,
            })
        })
        .collect()
}

/// Applies message transforms in order (WayFlow's `MessageTransform`s).
fn transform(mut messages: Vec<PromptMsg>, transforms: &[MessageTransform]) -> Result<Vec<PromptMsg>, String> {
    for t in transforms {
        messages = match t {
            MessageTransform::RemoveEmptyNonUser => messages
                .into_iter()
                .filter(|m| {
                    !m.chat.content.is_empty() || !m.chat.tool_calls.is_empty() || m.chat.role == Role::User || m.chat.role == Role::Tool
                })
                .collect(),
            MessageTransform::CoalesceSystem => {
                let leading = messages.iter().take_while(|m| m.message_type == "SYSTEM").count();
                if leading == 0 {
                    messages
                } else {
                    let rest = messages.split_off(leading);
                    let text: Vec<&str> = messages.iter().map(|m| m.chat.content.trim_matches('\n')).collect();
                    let mut out = vec![PromptMsg::of(ChatMessage::new(Role::System, text.join("\n\n")))];
                    out.extend(rest);
                    out
                }
            }
            MessageTransform::SplitOnMarker(marker) => {
                let mut out = Vec::with_capacity(messages.len());
                for m in messages {
                    if m.chat.tool_calls.is_empty()
                        && m.chat.role != Role::Tool
                        && !marker.is_empty()
                        && m.chat.content.contains(marker.as_str())
                    {
                        for part in m.chat.content.split(marker.as_str()).map(str::trim).filter(|p| !p.is_empty()) {
                            let mut chat = m.chat.clone();
                            chat.content = part.to_owned();
                            out.push(PromptMsg { message_type: m.message_type, chat });
                        }
                    } else {
                        out.push(m);
                    }
                }
                out
            }
            MessageTransform::LlamaMerge => llama_merge(messages)?,
            MessageTransform::AppendTrailingSystem => append_trailing_system(messages),
            MessageTransform::ReactMerge => react_merge(messages),
            MessageTransform::Canonicalization => canonicalize(messages)?,
            MessageTransform::ToolRequestAndCalls => tool_request_and_calls(messages)?,
        };
    }
    Ok(messages)
}

/// WayFlow's `_LlamaMergeToolRequestAndCallsTransform`: a message with tool calls becomes an
/// agent message holding the calls as JSON (`{"name", "parameters"}`, a list for several), followed
/// by one user message with each call's result in `<tool_response>` tags; tool messages go.
fn llama_merge(messages: Vec<PromptMsg>) -> Result<Vec<PromptMsg>, String> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if m.chat.role == Role::Tool {
            continue;
        }
        if m.chat.tool_calls.is_empty() {
            out.push(PromptMsg { message_type: m.message_type, chat: m.chat.clone() });
            continue;
        }
        let mut calls = Vec::with_capacity(m.chat.tool_calls.len());
        let mut results = Vec::with_capacity(m.chat.tool_calls.len());
        for call in &m.chat.tool_calls {
            let mut rendered = Map::new();
            rendered.insert("name".into(), Json::String(call.name.clone()));
            rendered.insert("parameters".into(), call_arguments(call));
            calls.push(weft_prompt::py_json_dumps(&Json::Object(rendered)));
            let found: Vec<&PromptMsg> = messages[i + 1..]
                .iter()
                .filter(|r| r.chat.role == Role::Tool && r.chat.tool_call_id.as_deref() == Some(call.id.as_str()))
                .collect();
            let [result] = found.as_slice() else {
                return Err(format!(
                    "the tool call \"{}\" ({}) has {} results among the messages after it, and the Llama transform needs exactly one",
                    call.id,
                    call.name,
                    found.len()
                ));
            };
            results.push(format!("<tool_response>{}</tool_response>", result.chat.content));
        }
        let text = if calls.len() > 1 { format!("[{}]", calls.join(", ")) } else { calls.remove(0) };
        out.push(PromptMsg::of(ChatMessage::new(Role::Assistant, text)));
        out.push(PromptMsg::of(ChatMessage::new(Role::User, results.join("\n"))));
    }
    Ok(out)
}

/// WayFlow's `AppendTrailingSystemMessageToUserMessageTransform`: a system message that ends the
/// list right after a user message becomes more text parts of that user message.
fn append_trailing_system(mut messages: Vec<PromptMsg>) -> Vec<PromptMsg> {
    let n = messages.len();
    if n < 2 || messages[n - 1].chat.role != Role::System || messages[n - 2].chat.role != Role::User {
        return messages;
    }
    let Some(last) = messages.pop() else { return messages };
    if let Some(user) = messages.last_mut() {
        if !last.chat.content.is_empty() || last.chat.parts.is_empty() {
            user.chat.parts.push(last.chat.content);
        }
        user.chat.parts.extend(last.chat.parts);
        user.chat.images.extend(last.chat.images);
    }
    messages
}

/// WayFlow's `_ReactMergeToolRequestAndCallsTransform`: a message with tool calls becomes an
/// agent message with its text as `Thoughts:` and the calls as indented JSON under `Action:`,
/// followed by a user message `## Observation:` with the calls' results, one per line; tool
/// messages go.
fn react_merge(messages: Vec<PromptMsg>) -> Vec<PromptMsg> {
    let results: std::collections::HashMap<&str, &str> = messages
        .iter()
        .filter(|m| m.chat.role == Role::Tool)
        .filter_map(|m| m.chat.tool_call_id.as_deref().map(|id| (id, m.chat.content.as_str())))
        .collect();
    let mut out = Vec::with_capacity(messages.len());
    for m in &messages {
        if m.chat.role == Role::Tool {
            continue;
        }
        if m.chat.tool_calls.is_empty() {
            out.push(PromptMsg { message_type: m.message_type, chat: m.chat.clone() });
            continue;
        }
        let actions: Vec<String> = m
            .chat
            .tool_calls
            .iter()
            .map(|call| {
                let mut rendered = Map::new();
                rendered.insert("name".into(), Json::String(call.name.clone()));
                rendered.insert("parameters".into(), call_arguments(call));
                weft_prompt::py_json_dumps_indent(&Json::Object(rendered), 4)
            })
            .collect();
        // WayFlow looks each result up by id and fails on a missing one; a call without a result
        // shows `null`, its value when there is none.
        let observations: Vec<&str> =
            m.chat.tool_calls.iter().map(|call| results.get(call.id.as_str()).copied().unwrap_or("null")).collect();
        let thoughts = if m.chat.content.is_empty() { String::new() } else { format!("Thoughts: {}", m.chat.content) };
        let action = format!("{thoughts}\nAction:\n```json\n{}\n```", actions.join("\n"));
        out.push(PromptMsg::of(ChatMessage::new(Role::Assistant, action)));
        out.push(PromptMsg::of(ChatMessage::new(Role::User, format!("## Observation: {}", observations.join("\n")))));
    }
    out
}

/// WayFlow's `CanonicalizationMessageTransform`: one system message first (every system message
/// merged into it, as more text parts), then user and agent messages alternating, consecutive
/// ones of one role merged, a user message `begin` (then `continue`) put before an agent message
/// that would come first, and one at the end when there is no user message. WayFlow's transform
/// fails on the tool results a template holds (it merges them into user messages, which its
/// requests refuse); Weft refuses tool requests and results here for the same reason.
fn canonicalize(messages: Vec<PromptMsg>) -> Result<Vec<PromptMsg>, String> {
    fn merge(into: &mut ChatMessage, from: ChatMessage) {
        if !from.content.is_empty() || from.parts.is_empty() {
            into.parts.push(from.content);
        }
        into.parts.extend(from.parts);
        into.images.extend(from.images);
    }
    let mut system: Option<PromptMsg> = None;
    let mut out: Vec<PromptMsg> = Vec::with_capacity(messages.len() + 1);
    let mut dummies = 0;
    let dummy = |dummies: &mut usize| {
        let text = if *dummies == 0 { "begin" } else { "continue" };
        *dummies += 1;
        PromptMsg::of(ChatMessage::new(Role::User, text))
    };
    for m in messages {
        if m.chat.role == Role::Tool || !m.chat.tool_calls.is_empty() {
            return Err("PluginCanonicalizationMessageTransform over tool requests or tool results: WayFlow's transform merges a tool result into a user message, which its requests refuse (\"Invalid tool result\"); remove the transform or the tool messages".to_owned());
        }
        match m.chat.role {
            Role::System => match &mut system {
                Some(first) => merge(&mut first.chat, m.chat),
                None => system = Some(m),
            },
            Role::Assistant => {
                if out.is_empty() {
                    out.push(dummy(&mut dummies));
                }
                match out.last_mut() {
                    Some(last) if last.chat.role == Role::Assistant => merge(&mut last.chat, m.chat),
                    _ => out.push(m),
                }
            }
            Role::User | Role::Tool => match out.last_mut() {
                Some(last) if last.chat.role == Role::User => merge(&mut last.chat, m.chat),
                _ => out.push(m),
            },
        }
    }
    if !out.iter().any(|m| m.chat.role == Role::User) {
        out.push(dummy(&mut dummies));
    }
    if let Some(system) = system {
        out.insert(0, system);
    }
    Ok(out)
}

/// A tool call's arguments as a value (they may be held as their JSON text).
fn call_arguments(call: &weft_llm::ToolCall) -> Json {
    match &call.arguments {
        Json::String(text) => serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.clone())),
        other => other.clone(),
    }
}

/// WayFlow's `ToolRequestAndCallsTransform`: user and agent messages headed by their sender
/// (`--- MESSAGE: From: HUMAN USER ---`; a template's agent messages have none: `None`), a tool
/// request as an agent message with its calls as JSON lines, a tool result as a user message
/// headed by its call (`--- TOOL RESULT: name=..., parameters={...} ---`, shortened to 140
/// characters as Python's `textwrap.shorten` does); system messages as they are.
fn tool_request_and_calls(messages: Vec<PromptMsg>) -> Result<Vec<PromptMsg>, String> {
    let calls: std::collections::HashMap<String, weft_llm::ToolCall> =
        messages.iter().flat_map(|m| m.chat.tool_calls.iter().map(|c| (c.id.clone(), c.clone()))).collect();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        match m.chat.role {
            Role::System => out.push(m),
            Role::Tool => {
                let id = m.chat.tool_call_id.clone().unwrap_or_default();
                let Some(call) = calls.get(&id) else {
                    return Err(format!("Could not find matching ToolRequest for TOOL_RESULT with id: {id}"));
                };
                let info = super::group::shorten(
                    &format!("name={}, parameters={}", call.name, weft_prompt::py_str(&call_arguments(call))),
                    140,
                    " ...}",
                );
                let text = format!("--- TOOL RESULT: {info} ---\n{}", m.chat.content);
                out.push(PromptMsg::of(ChatMessage::new(Role::User, text)));
            }
            Role::Assistant if !m.chat.tool_calls.is_empty() => {
                let listed: Vec<String> = m
                    .chat
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let mut call = Map::new();
                        call.insert("name".into(), Json::String(c.name.clone()));
                        call.insert("parameters".into(), call_arguments(c));
                        weft_prompt::py_json_dumps(&Json::Object(call))
                    })
                    .collect();
                let listed = listed.join("\n");
                let header = "--- MESSAGE: From: None ---\n";
                let content =
                    if m.chat.content.starts_with(header) { m.chat.content.clone() } else { format!("{header}{}", m.chat.content) };
                let text = if content.contains(&listed) { content } else { format!("{content}\n{listed}") };
                out.push(PromptMsg::of(ChatMessage::new(Role::Assistant, text)));
            }
            Role::User | Role::Assistant => {
                let sender = if m.chat.role == Role::User { "HUMAN USER" } else { "None" };
                let mut chat = m.chat;
                let text = std::mem::replace(&mut chat.content, format!("--- MESSAGE: From: {sender} ---\n"));
                chat.parts.insert(0, text);
                out.push(PromptMsg { message_type: m.message_type, chat });
            }
        }
    }
    Ok(out)
}

fn messages_request(
    op: &MessagesOp,
    vars: &Map<String, Json>,
    conversation: &[ConversationMessage],
    req: &mut ChatRequest,
) -> Result<(), Unbuilt> {
    let m = &op.template;
    let mut vars = vars.clone();
    if let (Some(rf), false) = (&m.response_format, m.native) {
        vars.entry("__RESPONSE_FORMAT__").or_insert_with(|| rf.clone());
    }
    if !m.native_tools {
        // WayFlow sets it whatever the node's input of that name holds.
        vars.insert(TOOLS.to_owned(), op.listed.clone());
    }
    let history = if m.history {
        match vars.get(CHAT_HISTORY) {
            // A value on a data edge is the history (WayFlow: the inputs win).
            Some(Json::Array(_)) => Vec::new(),
            _ => {
                let history = transform(chat_history(conversation), &m.pre)?;
                let listed: Vec<Json> =
                    history.iter().map(|h| serde_json::json!({"message_type": h.message_type, "content": h.chat.content})).collect();
                vars.insert(CHAT_HISTORY.to_owned(), Json::Array(listed));
                history
            }
        }
    } else {
        Vec::new()
    };
    let mut history = Some(history);
    let mut messages = Vec::with_capacity(m.messages.len());
    for (i, message) in m.messages.iter().enumerate() {
        if message.history {
            messages.extend(history.take().unwrap_or_default());
            continue;
        }
        let text = message.template.render(&vars).map_err(|e| Unbuilt::Template(format!("message {i} of the prompt template"), e))?;
        let chat = if let Some((id, content)) = &message.tool_result {
            let mut chat = ChatMessage::new(Role::Tool, super::agent::tool_output(content));
            chat.tool_call_id = Some(id.clone());
            chat
        } else {
            let role = match message.role {
                MessageRole::System => Role::System,
                MessageRole::User => Role::User,
                MessageRole::Assistant => Role::Assistant,
            };
            let mut chat = ChatMessage::new(if message.tool_calls.is_empty() { role } else { Role::Assistant }, text);
            chat.images = message.images.clone();
            chat.tool_calls = message
                .tool_calls
                .iter()
                .map(|(id, name, args)| weft_llm::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: Json::String(weft_prompt::py_json_dumps(args)),
                })
                .collect();
            chat
        };
        messages.push(PromptMsg::of(chat));
    }
    req.messages.extend(transform(messages, &m.post)?.into_iter().map(|p| p.chat));
    if op.native_format.is_some() {
        req.response_format = op.native_format.clone();
    }
    if m.native_tools {
        req.tools = op.tools.clone();
    } else {
        // Listed in the prompt: providers send no `tools`; the simulated model writes calls as
        // text, in the syntax of the template's tool output parser.
        req.prompt_tools = op.tools.clone();
        req.prompt_call_syntax = m.parsers.iter().find_map(|p| match p {
            weft_prompt::OutputParser::Tools(weft_prompt::ToolCallFormat::Json) => Some(weft_llm::CallSyntax::Json),
            weft_prompt::OutputParser::Tools(weft_prompt::ToolCallFormat::Python) => Some(weft_llm::CallSyntax::Python),
            weft_prompt::OutputParser::Tools(weft_prompt::ToolCallFormat::React) => Some(weft_llm::CallSyntax::React),
            _ => None,
        });
    }
    Ok(())
}

/// Why an answer could not be read into outputs.
enum Unfit {
    /// The answer does not fit: ask again, saying why.
    Reask(String),
    /// An output parser's jq query was stopped (budget, deadline, cancellation): the node fails.
    Stopped(weft_prompt::JqFailure),
}

/// Reads an answer into the node's outputs (internal titles), with the calls a tool output
/// parser read in it, or says why it does not fit.
fn outputs(op: &LlmOp, text: &str) -> Result<(Map<String, Json>, Vec<weft_prompt::TextCall>), Unfit> {
    if let LlmKind::Messages(op) = &op.kind {
        let m = &op.template;
        let (value, calls) =
            weft_prompt::template_reply(text, m.response_format.as_ref(), m.native, m.strict, &m.parsers, op.offered.as_deref()).map_err(
                |e| match e {
                    weft_prompt::ReplyError::Stopped(failure) => Unfit::Stopped(failure),
                    other => Unfit::Reask(other.to_string()),
                },
            )?;
        let mut out = Map::new();
        out.insert(m.output.clone(), value);
        return Ok((out, calls));
    }
    read_outputs(op, text).map(|out| (out, Vec::new()))
}

/// Reads the answer of a prompt text or a choice into the node's outputs.
fn read_outputs(op: &LlmOp, text: &str) -> Result<Map<String, Json>, Unfit> {
    match &op.kind {
        LlmKind::Prompt { outputs, structured, .. } => {
            if let Some((_, _, reader)) = structured {
                reader.read(text).map_err(|e| Unfit::Reask(e.to_string()))
            } else {
                let title = outputs.first().and_then(|o| o.get("title")).and_then(Json::as_str).unwrap_or("generated_text");
                let mut out = Map::new();
                out.insert(title.to_owned(), Json::String(text.to_owned()));
                Ok(out)
            }
        }
        LlmKind::Choice(c) => {
            let selected = c.pick(text).map(|(displayed, _)| displayed.clone()).unwrap_or_default();
            let mut out = Map::new();
            out.insert(c.selected_output.clone(), Json::String(selected));
            out.insert(c.llm_output.clone(), Json::String(text.to_owned()));
            Ok(out)
        }
        LlmKind::Messages(_) => Ok(Map::new()),
    }
}

/// Appends an answer that did not fit and what was wrong with it to a request.
fn push_reask(req: &mut ChatRequest, answer: &str, reason: &str) {
    req.messages.push(ChatMessage::new(Role::Assistant, answer));
    let how = match req.response_format.as_ref().map(|r| r.delivery) {
        Some(SchemaDelivery::InPrompt) => {
            "Answer again: end your answer with <final_answer>...</final_answer> around JSON that is valid against the schema given above."
        }
        _ => "Answer again with JSON that is valid against the requested schema, and nothing else.",
    };
    req.messages.push(ChatMessage::new(Role::User, format!("{REASK_PREFIX}{reason}\n{how}")));
}

/// How the message asking again begins (a state of format 1 stored it whole: its migration reads
/// the reason back after this).
pub(crate) const REASK_PREFIX: &str = "Your answer could not be used: ";

#[cfg(test)]
mod tests {
    use super::super::group::shorten as py_shorten;

    /// Expected values from Python 3.11's `textwrap.shorten(text, width=140, placeholder=" ...}")`.
    #[test]
    fn shorten_matches_pythons_textwrap() {
        let words: Vec<String> = (0..40).map(|i| format!("word{i}")).collect();
        let long_query = format!("name=search, parameters={{'query': '{}'}}", words.join(" "));
        let cases = [
            ("name=f, parameters={'a': 1}".to_owned(), "name=f, parameters={'a': 1}".to_owned()),
            (
                long_query,
                "name=search, parameters={'query': 'word0 word1 word2 word3 word4 word5 word6 word7 word8 word9 word10 word11 word12 word13 word14 ...}"
                    .to_owned(),
            ),
            ("x".repeat(200), "...}".to_owned()),
            ("name=n, parameters={'t':   'a  b\n c'}".to_owned(), "name=n, parameters={'t': 'a b c'}".to_owned()),
            (format!("name=lookup, parameters={{'text': '{}'}}", "y".repeat(150)), "name=lookup, parameters={'text': ...}".to_owned()),
        ];
        for (text, want) in cases {
            assert_eq!(py_shorten(&text, 140, " ...}"), want, "{text}");
        }
    }
}
