//! Tool nodes (ToolNode, ExtendedToolNode): a ServerTool bound at plan time and called by the
//! driver, a RemoteTool (an HTTP request, unless a tool is bound to its name), or a ClientTool
//! whose result the run waits for as an input request; either way the result is read into the
//! node's outputs.

use super::{AnswerOutputs, At, mismatched_call, mismatched_request};
use crate::check::{Checked, Place, damaged};
use crate::effect::{Effect, EffectResult, ToolCall, ToolTarget};
use crate::error::{RunErrorKind, SubmitError};
use crate::event::Event;
use crate::plan::{Compiler, NodePlan};
use crate::sched::{Res, Sched, excerpt, external, get_frame, node_error, single};
use crate::state::{Call, InputRequest, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{ToolKind, ToolNode};
use weft_guard::Secrets;
use weft_spec::CompId;

pub(crate) struct ToolOp {
    pub(crate) tool_name: String,
    /// `None` for a ClientTool.
    pub(crate) tool: Option<ToolTarget>,
    pub(crate) raise_exceptions: bool,
    /// Internal output titles.
    pub(crate) outputs: Vec<String>,
    /// The output schemas, in the same order (a client's answer is checked against them).
    pub(crate) output_schemas: Vec<Json>,
    /// The output schemas, compiled once.
    output_checks: crate::run::Checks,
}

impl ToolOp {
    /// Binds a ServerTool by name (an unbound one is reported, all of them in one line, by the
    /// compiler); a RemoteTool is its request unless a tool is bound to its name.
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, t: &ToolNode) -> Option<ToolOp> {
        let tool = match &t.kind {
            ToolKind::Server => {
                let bound = c.inputs.tools.get(&t.name).cloned();
                if bound.is_none() {
                    c.missing_tools.push(t.name.clone());
                }
                bound.map(ToolTarget::Bound)
            }
            ToolKind::Remote(call) => match c.inputs.tools.get(&t.name) {
                Some(bound) => Some(ToolTarget::Bound(Arc::clone(bound))),
                None => {
                    let node = c.comp(n).name.clone();
                    Some(ToolTarget::Remote(Arc::new(super::http::RemoteTool::plan(c, &node, call)?)))
                }
            },
            ToolKind::Mcp(mcp) => match c.inputs.tools.get(&t.name) {
                Some(bound) => Some(ToolTarget::Bound(Arc::clone(bound))),
                None => {
                    let node = c.comp(n).name.clone();
                    Some(ToolTarget::Mcp(Arc::new(super::mcp::McpCall::of_tool(c, &node, mcp)?)))
                }
            },
            ToolKind::Client => None,
        };
        Some(ToolOp {
            tool_name: t.name.clone(),
            tool,
            raise_exceptions: t.raise_exceptions,
            outputs: t.outputs.clone(),
            output_schemas: t.output_schemas.clone(),
            output_checks: crate::run::Checks::of(&t.output_schemas),
        })
    }

    /// A server tool leaves the node `Busy` with its call; a client tool waits for its result.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, args: Map<String, Json>) -> Res<()> {
        let node = at.node;
        match &self.tool {
            Some(tool) => {
                s.start_clock(state, at.fid);
                let effect = Effect::Tool(ToolCall { tool: tool.clone(), args: args.clone() });
                s.perform(state, at.fid, node, Call::Tool { tool: self.tool_name.clone(), args }, effect);
                Ok(())
            }
            None => {
                let visits = get_frame(state, at.fid)?.visits.get(&node.id).copied().unwrap_or(1);
                let request = InputRequest::Tool {
                    node: node.name.clone(),
                    tool: self.tool_name.clone(),
                    tool_request_id: format!("{}-{visits}", node.id),
                    args,
                    outputs: self.outputs.iter().map(|o| external(node, o)).collect(),
                };
                s.wait(state, at.fid, node, request)
            }
        }
    }

    /// A server tool returned: its outputs, or its error (as the output when the node does not
    /// raise and has one output).
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let (Call::Tool { .. }, EffectResult::Tool(result)) = (call, result) else { return Err(mismatched_call()) };
        let node = at.node;
        let took_ms = s.took_ms;
        s.emit(state, at.fid, || Event::ToolCall {
            node: node.name.clone(),
            tool: self.tool_name.clone(),
            duration_ms: took_ms,
            error: result.as_ref().err().map(ToString::to_string),
        });
        state.usage.tool_calls = state.usage.tool_calls.saturating_add(1);
        let outputs = match result {
            Ok(value) => outputs(node, &self.outputs, self.remote_value(value), &s.plan.secrets)?,
            Err(e) if !self.raise_exceptions && self.outputs.len() == 1 => single(&self.outputs[0], Json::String(e.to_string())),
            Err(e) => return Err(node_error(RunErrorKind::Tool, node, &format!("tool \"{}\" failed: {e}", self.tool_name)).with_tool(e)),
        };
        s.stop_clock(state, at.fid);
        s.done(state, at, outputs)
    }

    /// A client tool's result, checked against the output schemas.
    pub(crate) fn submit(&self, s: &Sched<'_>, node: &NodePlan, request: &InputRequest, answer: Json) -> AnswerOutputs {
        let InputRequest::Tool { tool, .. } = request else { return Err(mismatched_request()) };
        let outputs = outputs(node, &self.outputs, answer, &s.plan.secrets).map_err(|e| SubmitError::Invalid(e.message))?;
        for (i, (title, schema)) in self.outputs.iter().zip(&self.output_schemas).enumerate() {
            if let Some(why) = outputs.get(title).and_then(|v| self.output_checks.problem(i, v)) {
                return Err(SubmitError::Invalid(format!(
                    "the answer for client tool \"{tool}\" does not fit its output \"{title}\" ({}): {why}",
                    weft_spec::model::type_name(schema)
                )));
            }
        }
        Ok(outputs)
    }

    /// The server tool's call again, with the arguments it had.
    pub(crate) fn remake(&self, call: &Call) -> Res<Effect> {
        let (Call::Tool { args, .. }, Some(tool)) = (call, &self.tool) else { return Err(mismatched_call()) };
        Ok(Effect::Tool(ToolCall { tool: tool.clone(), args: args.clone() }))
    }

    /// A RemoteTool's result (the body's text) for the node's outputs: the text for a single
    /// string (or untyped) output, else the JSON it holds when it holds some (WayFlow casts the
    /// text, which fails for an object output with properties; Weft reads the JSON).
    fn remote_value(&self, value: Json) -> Json {
        let (Some(ToolTarget::Remote(_)), Json::String(text)) = (&self.tool, &value) else { return value };
        let text_output = match self.output_schemas.as_slice() {
            [one] => one.get("type").is_none_or(|t| t == "string"),
            _ => false,
        };
        if text_output {
            return value;
        }
        serde_json::from_str(text).unwrap_or(value)
    }

    /// A client tool's answer was checked against its output types when it entered the run.
    pub(crate) fn typed_outputs(&self) -> bool {
        self.tool.is_none()
    }

    /// Whether `request` is the one this node makes (a client tool's, for its tool).
    pub(crate) fn asks(&self, request: &InputRequest) -> bool {
        matches!(request, InputRequest::Tool { tool, .. } if self.tool.is_none() && *tool == self.tool_name)
    }

    /// A server tool is busy with a call of its own tool; a client tool waits for its answer.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } if self.tool.is_some() => match &**call {
                Call::Tool { tool, .. } if *tool == self.tool_name => Ok(()),
                Call::Tool { tool, .. } => Err(damaged(
                    format!("{}/position/call/tool", place.at),
                    format!("frame {} calls tool \"{tool}\" at node \"{}\", whose tool is \"{}\"", place.id, place.node_id, self.tool_name),
                )),
                Call::Llm { .. }
                | Call::AgentLlm { .. }
                | Call::AgentSummary { .. }
                | Call::AgentTools { .. }
                | Call::ExtractRepair { .. }
                | Call::Http {}
                | Call::A2ASend {}
                | Call::A2APoll { .. } => place.unexpected(position),
            },
            Position::Waiting { .. } if self.tool.is_none() => Ok(()),
            other => place.unexpected(other),
        }
    }
}

/// A tool's result as outputs: the value for one output, members by title for several.
fn outputs(node: &NodePlan, titles: &[String], value: Json, secrets: &Secrets) -> Res<Map<String, Json>> {
    match titles {
        [] => Ok(Map::new()),
        [one] => Ok(single(one, value)),
        many => {
            let Json::Object(mut obj) = value else {
                return Err(node_error(
                    RunErrorKind::Tool,
                    node,
                    &format!(
                        "the tool has {} outputs ({}), so its result must be a JSON object keyed by those titles, got {}",
                        many.len(),
                        many.join(", "),
                        excerpt(&value.to_string(), secrets)
                    ),
                ));
            };
            let mut out = Map::new();
            for t in many {
                let v = obj.remove(t).ok_or_else(|| {
                    node_error(
                        RunErrorKind::Tool,
                        node,
                        &format!("the tool's result has no member \"{t}\" (its outputs are {})", many.join(", ")),
                    )
                })?;
                out.insert(t.clone(), v);
            }
            Ok(out)
        }
    }
}
