//! Agents and the nodes that run them: Agent, ExtendedAgent, SpecializedAgent and its
//! parameters, AgentNode, ExtendedAgentNode, Swarm, ManagerWorkers. Weft checks and exports them;
//! running them comes with the agents release.

use super::{Fields, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, map_titles, string_props, union_into};
use crate::template::placeholders;
use weft_spec::{Code, CompId, Value};

/// The types of the family.
pub const TYPES: &[&str] = &[
    "AgentNode",
    "ExtendedAgentNode",
    "Agent",
    "ExtendedAgent",
    "SpecializedAgent",
    "AgentSpecializationParameters",
    "Swarm",
    "PluginSwarm",
    "ManagerWorkers",
    "PluginManagerWorkers",
];

pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    match comp.ty.name {
        "Swarm" | "PluginSwarm" => {
            if let Some(h) = comp.json_field("handoff")
                && !(h.is_boolean() || h.is_null() || h.as_str().is_some_and(|s| ["never", "optional", "always"].contains(&s)))
            {
                cx.report(
                    comp,
                    Code::BadValue,
                    format!("{}/handoff", comp.pointer),
                    format!("{}: `handoff` is {h}, not never, optional or always", comp.label()),
                    Some("use \"never\", \"optional\" or \"always\"".into()),
                );
            }
            if matches!(comp.field("relationships"), Some(Value::List(l)) if l.is_empty()) {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/relationships", comp.pointer),
                    format!("{}: a Swarm needs at least one [caller, recipient] relationship", comp.label()),
                    Some("add e.g. [first_agent, other_agent] to `relationships`".into()),
                );
            }
        }
        "ManagerWorkers" | "PluginManagerWorkers" => {
            let workers = comp.comp_list("workers");
            if workers.is_empty() {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/workers", comp.pointer),
                    format!("{}: ManagerWorkers needs at least one worker", comp.label()),
                    Some("add an agent to `workers`".into()),
                );
            } else if let Some(m) = comp.comp_field("group_manager")
                && let Some(i) = workers.iter().position(|&w| w == m)
            {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/workers/{i}", comp.pointer),
                    format!("{}: the group manager is also one of its workers", comp.label()),
                    Some("remove the manager from `workers`".into()),
                );
            }
        }
        _ => {}
    }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred::default();
    match comp.ty.name {
        "AgentNode" | "ExtendedAgentNode" => {
            if let Some(agent) = f.comp("agent") {
                let io = inf.io(agent);
                out.inputs = Some(map_titles(&f.mapping("input_mapping"), io.inputs));
                out.outputs = Some(map_titles(&f.mapping("output_mapping"), io.outputs));
            }
            out.outputs_explicit_wins = comp.is("ExtendedAgentNode");
            out.branches = next();
            out.branches_free_when_given = true;
        }
        "Agent" | "ExtendedAgent" => out.inputs = Some(string_props(&placeholders(f.str("system_prompt").unwrap_or("")))),
        "SpecializedAgent" => {
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            for part in [f.comp("agent"), f.comp("agent_specialization_parameters")].into_iter().flatten() {
                let io = inf.io(part);
                union_into(&mut inputs, io.inputs);
                union_into(&mut outputs, io.outputs);
            }
            out.inputs = Some(inputs);
            out.outputs = Some(outputs);
        }
        "AgentSpecializationParameters" => {
            out.inputs = Some(string_props(&placeholders(f.str("additional_instructions").unwrap_or(""))));
            out.outputs = Some(Vec::new());
        }
        _ => return None,
    }
    Some(out)
}
