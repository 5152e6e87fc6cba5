//! Messages and values: InputMessageNode (waits for the user's answer), OutputMessageNode (posts
//! a message to the conversation), PluginTemplateNode (renders a text) and
//! PluginConstantValuesNode (gives fixed values).

use super::{AnswerOutputs, At, mismatched_request};
use crate::check::{Checked, Place};
use crate::plan::NodePlan;
use crate::sched::{Res, Sched, single};
use crate::state::{InputRequest, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{ConstantsNode, InputMessageNode, OutputMessageNode, TemplateNode};
use weft_prompt::Template;

pub(crate) struct InputMessageOp {
    /// The prompt shown to the user, if any.
    pub(crate) message: Option<Arc<Template>>,
    pub(crate) output: String,
}

pub(crate) struct OutputMessageOp {
    pub(crate) message: Arc<Template>,
    pub(crate) message_type: String,
    pub(crate) output: Option<String>,
}

pub(crate) struct TemplateOp {
    pub(crate) template: Arc<Template>,
    pub(crate) output: String,
}

pub(crate) struct ConstantsOp {
    pub(crate) values: Map<String, Json>,
}

impl InputMessageOp {
    pub(crate) fn plan(m: &InputMessageNode) -> InputMessageOp {
        InputMessageOp { message: m.message.clone(), output: m.output.clone() }
    }

    /// Posts the prompt, if any, and waits for the user's message.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let shown = match &self.message {
            Some(t) => {
                let text = render(at.node, t, &vars, "its message")?;
                s.post(state, at.fid, at.node, "AGENT", &text);
                Some(text)
            }
            None => None,
        };
        s.wait(state, at.fid, at.node, InputRequest::Message { node: at.node.name.clone(), message: shown })
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
            other => place.unexpected(other),
        }
    }
}

impl OutputMessageOp {
    pub(crate) fn plan(m: &OutputMessageNode) -> OutputMessageOp {
        OutputMessageOp { message: m.message.clone(), message_type: m.message_type.clone(), output: m.output.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let text = render(at.node, &self.message, &vars, "its message")?;
        s.post(state, at.fid, at.node, &self.message_type, &text);
        if let Some(output) = &self.output {
            s.produce(state, at.fid, at.node, single(output, Json::String(text)))?;
        }
        s.follow(state, at, "next")
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
