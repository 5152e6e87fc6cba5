//! Context providers that are called (PluginToolContextProvider, PluginFlowContextProvider), as
//! nodes the planner puts before each node whose input they feed (`Compiler::provider_node`):
//! WayFlow calls a provider each time a node reads an input it feeds, so the provider's node
//! runs each time the node does, just before it, and its output is the input's only source.
//!
//! A tool provider calls its ServerTool with no arguments (WayFlow's `tool.run_async()`: the
//! implementation applies its own defaults); its result is the value. A flow provider runs its
//! flow in a child frame, with no inputs (their defaults) and in the run's conversation (its
//! messages are the run's); the flow's output is the value, whatever end it reached.

use super::{At, mismatched_call};
use crate::check::{Checked, Place, damaged};
use crate::effect::{Effect, EffectResult, ToolCall, ToolTarget};
use crate::error::RunErrorKind;
use crate::event::Event;
use crate::plan::Compiler;
use crate::sched::{Res, Sched, get_frame, node_error, single};
use crate::state::{Call, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::ContextProvider;
use weft_spec::CompId;
use weft_tools::Tool;

pub(crate) enum ProviderOp {
    /// Calls a ServerTool.
    Tool { tool_name: String, tool: Arc<dyn Tool> },
    /// Runs a flow (index in the plan) and takes its output `output`.
    Flow { flow: usize, output: String },
}

impl ProviderOp {
    /// The provider component `p`, bound: its tool (an unbound one is reported with the others)
    /// or its flow, planned.
    pub(crate) fn plan(c: &mut Compiler<'_>, p: CompId) -> Option<ProviderOp> {
        match c.model.provider(p)? {
            ContextProvider::Constant { .. } => None,
            ContextProvider::Tool { name, .. } => {
                let Some(tool) = c.inputs.tools.get(name).cloned() else {
                    c.missing_tools.push(name.clone());
                    return None;
                };
                Some(ProviderOp::Tool { tool_name: name.clone(), tool })
            }
            ContextProvider::Flow { output, flow } => {
                let (output, flow) = (output.clone(), *flow);
                Some(ProviderOp::Flow { flow: c.flow_plan(flow), output })
            }
        }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>) -> Res<()> {
        match self {
            ProviderOp::Tool { tool_name, tool } => {
                s.start_clock(state, at.fid);
                let effect = Effect::Tool(ToolCall { tool: ToolTarget::Bound(Arc::clone(tool)), args: Map::new() });
                s.perform(state, at.fid, at.node, Call::Tool { tool: tool_name.clone(), args: Map::new() }, effect);
                Ok(())
            }
            ProviderOp::Flow { flow, .. } => {
                let inputs: Map<String, Json> =
                    s.plan.flows[*flow].inputs.iter().filter_map(|p| Some((p.title().to_owned(), p.default()?.clone()))).collect();
                let parent = get_frame(state, at.fid)?;
                let (path, budget_key) = (format!("{}/{}", parent.path, at.node.name), parent.budget_key.clone());
                let child = s.new_frame(state, at.fid, at.node, *flow, inputs, path, budget_key)?;
                s.start_clock(state, at.fid);
                s.set_position(state, at.fid, Position::InChild { node: at.node.id.clone(), child });
                Ok(())
            }
        }
    }

    /// The tool's result is the value.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let (ProviderOp::Tool { tool_name, .. }, Call::Tool { .. }, EffectResult::Tool(result)) = (self, call, result) else {
            return Err(mismatched_call());
        };
        let node = at.node;
        let took_ms = s.took_ms;
        s.emit(state, at.fid, || Event::ToolCall {
            node: node.name.clone(),
            tool: tool_name.clone(),
            duration_ms: took_ms,
            error: result.as_ref().err().map(ToString::to_string),
        });
        state.usage.tool_calls = state.usage.tool_calls.saturating_add(1);
        let value = result.map_err(|e| {
            node_error(RunErrorKind::Tool, node, &format!("the context provider's tool \"{tool_name}\" failed: {e}")).with_tool(e)
        })?;
        s.stop_clock(state, at.fid);
        s.done(state, at, single(&output_of(at), value))
    }

    /// The flow's output is the value; the node goes on to the node it feeds.
    pub(crate) fn child_finished(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, mut outputs: Map<String, Json>) -> Res<()> {
        let ProviderOp::Flow { output, .. } = self else { return Err(mismatched_call()) };
        let t0 = s.stop_clock(state, at.fid);
        let value = outputs.remove(output).unwrap_or(Json::Null);
        s.done(state, At { t0, ..at }, single(&output_of(at), value))
    }

    /// The tool's call again.
    pub(crate) fn remake(&self, call: &Call) -> Res<Effect> {
        match (self, call) {
            (ProviderOp::Tool { tool, .. }, Call::Tool { .. }) => {
                Ok(Effect::Tool(ToolCall { tool: ToolTarget::Bound(Arc::clone(tool)), args: Map::new() }))
            }
            _ => Err(mismatched_call()),
        }
    }

    /// A tool provider is busy with its tool's call; a flow provider runs its flow.
    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match (self, position) {
            (ProviderOp::Tool { tool_name, .. }, Position::Busy { call, .. }) => match &**call {
                Call::Tool { tool, .. } if tool == tool_name => Ok(()),
                Call::Tool { tool, .. } => Err(damaged(
                    format!("{}/position/call/tool", place.at),
                    format!(
                        "frame {} calls tool \"{tool}\" at context provider \"{}\", whose tool is \"{tool_name}\"",
                        place.id, place.node_id
                    ),
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
            (ProviderOp::Flow { flow, .. }, Position::InChild { child, .. }) => {
                place.child(*child, *flow, format!("{}/position/child", place.at))
            }
            (_, other) => place.unexpected(other),
        }
    }
}

/// The title of the value: the input the provider's node feeds (its one output).
fn output_of(at: At<'_>) -> String {
    at.node.outputs.first().map_or_else(String::new, |p| p.title().to_owned())
}
