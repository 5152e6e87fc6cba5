//! Messages and values: InputMessageNode (waits for the user's answer), OutputMessageNode (posts
//! a message to the conversation), PluginTemplateNode (renders a text) and
//! PluginConstantValuesNode (gives fixed values).
//!
//! With `rephrase: true` and an LLM config, a message node first has the model rewrite its
//! message (WayFlow's `_rephrase_message_and_stream_if_possible`): one system message holding
//! WayFlow's rewriting prompt and the message, at temperature 1.3; the answer is posted as an
//! `AGENT` message instead of the message (whatever the node's `message_type`), and an output
//! message node's `output_message` is still the message as rendered.

use super::{AnswerOutputs, At, mismatched_call, mismatched_request};
use crate::check::{Checked, Place};
use crate::effect::{Effect, EffectResult};
use crate::plan::{Compiler, NodePlan};
use crate::sched::{Res, Sched, get_frame, single};
use crate::state::{Call, InputRequest, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{ConstantsNode, InputMessageNode, OutputMessageNode, TemplateNode};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, RequestMeta, Role};
use weft_prompt::Template;
use weft_spec::CompId;

/// WayFlow's `REWRITING_SYSTEM_PROMPT`, rendered (Jinja drops the template's final newline).
const REWRITING_PROMPT: &str = "Rewrite the following message.\nImportant: do not change the tone of the provided message or use overly formal language.\nProvide the rewritten output and nothing else.\n\n";

/// The temperature of a rephrasing call (WayFlow's).
const REPHRASE_TEMPERATURE: f64 = 1.3;

/// The model that rephrases a message node's message.
pub(crate) struct Rephrase {
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) limiter: Arc<weft_llm::limit::Limiter>,
}

impl Rephrase {
    fn plan(c: &mut Compiler<'_>, n: CompId, config: Option<CompId>) -> Option<Option<Rephrase>> {
        let Some(config) = config else { return Some(None) };
        let model = super::llm::model_for(c, n, config)?;
        let limiter = c.inputs.limits.get(model.endpoint());
        Some(Some(Rephrase { model, limiter }))
    }

    /// The rephrasing request for `message`.
    fn request(message: &str, meta: RequestMeta) -> ChatRequest {
        let mut generation = Map::new();
        generation.insert("temperature".into(), Json::from(REPHRASE_TEMPERATURE));
        let mut req = ChatRequest { generation, meta, ..ChatRequest::default() };
        req.messages.push(ChatMessage::new(Role::System, format!("{REWRITING_PROMPT}{message}")));
        req
    }

    /// Sends the rephrasing call of `message` out: the node is busy with it.
    fn send(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, message: &str) -> Res<()> {
        let meta = super::llm::meta(state, at.fid, at.node)?;
        let call_index = meta.call_index;
        let effect = super::llm::model_call(s, state, at, (&self.model, &self.limiter), Rephrase::request(message, meta), 1);
        s.start_clock(state, at.fid);
        s.perform(state, at.fid, at.node, Call::Llm { attempt: 1, call_index, reasks: Vec::new() }, effect);
        Ok(())
    }

    /// The call again, for the same message.
    fn remake(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call, message: &str) -> Res<Effect> {
        let Call::Llm { call_index, .. } = call else { return Err(mismatched_call()) };
        let node_path = format!("{}/{}", get_frame(state, at.fid)?.path, at.node.name);
        let meta = RequestMeta { node: at.node.name.clone(), node_path, call_index: *call_index, batch_index: None };
        Ok(super::llm::model_call(s, state, at, (&self.model, &self.limiter), Rephrase::request(message, meta), 1))
    }

    /// The model's answer: the rephrased message, posted as an `AGENT` message.
    fn answered(s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<String> {
        let (Call::Llm { .. }, EffectResult::Llm(result)) = (call, result) else { return Err(mismatched_call()) };
        let response = super::llm::model_answered(s, state, at, result)?;
        s.stop_clock(state, at.fid);
        s.post(state, at.fid, at.node, "AGENT", &response.text);
        Ok(response.text)
    }

    /// A node that rephrases is busy only with its LLM call.
    fn check_position(place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } if matches!(**call, Call::Llm { attempt: 1, .. }) => Ok(()),
            other => place.unexpected(other),
        }
    }
}

pub(crate) struct InputMessageOp {
    /// The prompt shown to the user, if any.
    pub(crate) message: Option<Arc<Template>>,
    pub(crate) output: String,
    /// The model that rephrases the prompt first, if any.
    pub(crate) rephrase: Option<Rephrase>,
}

pub(crate) struct OutputMessageOp {
    pub(crate) message: Arc<Template>,
    pub(crate) message_type: String,
    pub(crate) output: Option<String>,
    /// The model that rephrases the message first, if any.
    pub(crate) rephrase: Option<Rephrase>,
}

pub(crate) struct TemplateOp {
    pub(crate) template: Arc<Template>,
    pub(crate) output: String,
}

pub(crate) struct ConstantsOp {
    pub(crate) values: Map<String, Json>,
}

impl InputMessageOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, m: &InputMessageNode) -> Option<InputMessageOp> {
        let rephrase = Rephrase::plan(c, n, m.rephrase.filter(|_| m.message.is_some()))?;
        Some(InputMessageOp { message: m.message.clone(), output: m.output.clone(), rephrase })
    }

    /// Posts the prompt, if any (rephrased first, when the node rephrases), and waits for the
    /// user's message.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let shown = match &self.message {
            Some(t) => {
                let text = render(at.node, t, &vars, "its message")?;
                if let Some(r) = &self.rephrase {
                    return r.send(s, state, at, &text);
                }
                s.post(state, at.fid, at.node, "AGENT", &text);
                Some(text)
            }
            None => None,
        };
        s.wait(state, at.fid, at.node, InputRequest::Message { node: at.node.name.clone(), message: shown })
    }

    /// The rephrased prompt came back: it is posted, and the node waits for the user.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let text = Rephrase::answered(s, state, at, call, result)?;
        s.wait(state, at.fid, at.node, InputRequest::Message { node: at.node.name.clone(), message: Some(text) })
    }

    /// The rephrasing call again.
    pub(crate) fn remake(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call, vars: Map<String, Json>) -> Res<Effect> {
        let (Some(r), Some(t)) = (&self.rephrase, &self.message) else { return Err(mismatched_call()) };
        let text = render(at.node, t, &vars, "its message")?;
        r.remake(s, state, at, call, &text)
    }

    /// The user's message (any JSON other than a string as its text) is posted and becomes the
    /// output.
    pub(crate) fn submit(
        &self,
        s: &mut Sched<'_>,
        state: &mut RunState,
        fid: u64,
        node: &NodePlan,
        request: &InputRequest,
        answer: Json,
    ) -> AnswerOutputs {
        let InputRequest::Message { .. } = request else { return Err(mismatched_request()) };
        let text = match answer {
            Json::String(s) => s,
            other => other.to_string(),
        };
        s.post(state, fid, node, "USER", &text);
        Ok(single(&self.output, Json::String(text)))
    }

    pub(crate) fn asks(&self, request: &InputRequest) -> bool {
        matches!(request, InputRequest::Message { .. })
    }

    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Waiting { .. } => Ok(()),
            Position::Busy { .. } if self.rephrase.is_some() => Rephrase::check_position(place, position),
            other => place.unexpected(other),
        }
    }
}

impl OutputMessageOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, m: &OutputMessageNode) -> Option<OutputMessageOp> {
        let rephrase = Rephrase::plan(c, n, m.rephrase)?;
        Some(OutputMessageOp { message: m.message.clone(), message_type: m.message_type.clone(), output: m.output.clone(), rephrase })
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let text = render(at.node, &self.message, &vars, "its message")?;
        if let Some(r) = &self.rephrase {
            return r.send(s, state, at, &text);
        }
        s.post(state, at.fid, at.node, &self.message_type, &text);
        self.finish(s, state, at, text)
    }

    /// The message is exposed as the node's output, if it has one, and the node moves on.
    fn finish(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, text: String) -> Res<()> {
        if let Some(output) = &self.output {
            s.produce(state, at.fid, at.node, single(output, Json::String(text)))?;
        }
        s.follow(state, at, "next")
    }

    /// The rephrased message came back and was posted; the output is the message as rendered.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        Rephrase::answered(s, state, at, call, result)?;
        let vars = s.node_inputs(state, at.fid, at.node)?;
        let text = render(at.node, &self.message, &vars, "its message")?;
        self.finish(s, state, at, text)
    }

    /// The rephrasing call again.
    pub(crate) fn remake(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call, vars: Map<String, Json>) -> Res<Effect> {
        let Some(r) = &self.rephrase else { return Err(mismatched_call()) };
        let text = render(at.node, &self.message, &vars, "its message")?;
        r.remake(s, state, at, call, &text)
    }

    /// A rephrasing node is busy only with its LLM call; a plain one never stops.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { .. } if self.rephrase.is_some() => Rephrase::check_position(place, position),
            other => place.unexpected(other),
        }
    }
}

impl TemplateOp {
    pub(crate) fn plan(t: &TemplateNode) -> TemplateOp {
        TemplateOp { template: t.template.clone(), output: t.output.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let text = render(at.node, &self.template, &vars, "its template")?;
        s.done(state, at, single(&self.output, Json::String(text)))
    }
}

impl ConstantsOp {
    pub(crate) fn plan(c: &ConstantsNode) -> ConstantsOp {
        ConstantsOp { values: c.values.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>) -> Res<()> {
        s.done(state, at, self.values.clone())
    }
}

/// Renders `template` (the node's `what`) with the node's inputs.
fn render(node: &NodePlan, template: &Template, vars: &Map<String, Json>, what: &str) -> Res<String> {
    template.render(vars).map_err(|e| crate::error::RunError::template(node, what, &e))
}
