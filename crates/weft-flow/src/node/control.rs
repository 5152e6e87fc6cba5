//! Control nodes: CatchExceptionNode, PluginCatchExceptionNode, PluginRetryNode and
//! PluginChoiceNode. Weft checks and exports them; it does not run them yet.

use super::{Fields, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, jinja_titles, map_titles, sorted_unique};
use serde_json::{Value as Json, json};
use weft_spec::{Code, CompId, Property};

/// The types of the family.
pub const TYPES: &[&str] = &["CatchExceptionNode", "PluginCatchExceptionNode", "PluginRetryNode", "PluginChoiceNode"];

pub(super) fn check(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    match comp.ty.name {
        "CatchExceptionNode" => {
            if let Some(outs) = &comp.outputs {
                for p in outs {
                    if p.default().is_none() {
                        cx.report(
                            comp,
                            Code::Default,
                            p.pointer.clone(),
                            format!("{}: output \"{}\" needs a default, used when an exception is caught", comp.label(), p.title()),
                            Some("add a \"default\" to this output".into()),
                        );
                    }
                }
            }
            if let Some(sub) = comp.comp_field("subflow") {
                let io = inf.io(sub);
                if io.output("caught_exception_info").is_some() {
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/subflow", comp.pointer),
                        format!("{}: the subflow must not output `caught_exception_info`", comp.label()),
                        Some("rename that subflow output".into()),
                    );
                }
                if inf.end_branches(sub).iter().any(|b| b == "caught_exception_branch") {
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/subflow", comp.pointer),
                        format!("{}: the subflow must not end on a branch named `caught_exception_branch`", comp.label()),
                        Some("rename that EndNode's branch_name".into()),
                    );
                }
            }
        }
        "PluginRetryNode" => {
            if let Some(n) = comp.json_field("max_num_trials").and_then(Json::as_i64)
                && !(0..=20).contains(&n)
            {
                cx.report(
                    comp,
                    Code::BadValue,
                    format!("{}/max_num_trials", comp.pointer),
                    format!("{}: `max_num_trials` is {n}; it must be between 0 and 20", comp.label()),
                    Some("use a value from 0 to 20".into()),
                );
            }
        }
        _ => {}
    }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred { branches: next(), ..Inferred::default() };
    match comp.ty.name {
        "CatchExceptionNode" => {
            out.branches = None;
            if let Some(sub) = f.comp("subflow") {
                let io = inf.io(sub);
                out.inputs = Some(io.inputs);
                let mut outs = io.outputs;
                outs.push(Property::new(json!({
                    "title": "caught_exception_info",
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "default": null,
                })));
                out.outputs = Some(outs);
                let mut b = inf.end_branches(sub);
                b.push("caught_exception_branch".into());
                out.branches = Some(sorted_unique(b));
            }
        }
        "PluginChoiceNode" => {
            let inputs = jinja_titles(f.str("prompt_template").unwrap_or(""), &["next_steps"]);
            out.inputs = Some(map_titles(&f.mapping("input_mapping"), inputs));
            let outs = vec![Property::typed("selected_choice", "string"), Property::typed("llm_output", "string")];
            out.outputs = Some(map_titles(&f.mapping("output_mapping"), outs));
            let mut b: Vec<String> = f
                .json("next_branches")
                .and_then(Json::as_array)
                .map(|l| l.iter().filter_map(|e| e.get(0).and_then(Json::as_str).map(str::to_owned)).collect())
                .unwrap_or_default();
            b.push("default".into());
            out.branches = Some(sorted_unique(b));
        }
        "PluginRetryNode" => {
            if let Some(sub) = f.comp("flow") {
                let io = inf.io(sub);
                let success = f.str("success_condition").unwrap_or("");
                out.inputs = Some(map_titles(&f.mapping("input_mapping"), io.inputs));
                let mut outs: Vec<Property> = io.outputs.into_iter().filter(|p| p.title() != success).collect();
                outs.push(Property::typed("retry_step_num_retries", "integer"));
                outs.push(Property::typed("retry_step_success", "boolean"));
                out.outputs = Some(map_titles(&f.mapping("output_mapping"), outs));
                let mut b = inf.end_branches(sub);
                b.push("failure".into());
                out.branches = Some(sorted_unique(b));
            }
        }
        "PluginCatchExceptionNode" => {
            if let Some(sub) = f.comp("flow") {
                let io = inf.io(sub);
                out.inputs = Some(map_titles(&f.mapping("input_mapping"), io.inputs));
                let mut outs = io.outputs;
                outs.push(Property::new(json!({"title": "exception_name", "default": ""})));
                outs.push(Property::new(json!({"title": "exception_payload_name", "default": ""})));
                out.outputs = Some(map_titles(&f.mapping("output_mapping"), outs));
                let mut b = inf.end_branches(sub);
                if let Some(m) = f.object("except_on") {
                    b.extend(m.values().filter_map(Json::as_str).map(str::to_owned));
                }
                if f.bool("catch_all_exceptions", false) {
                    b.push("default_exception_branch".into());
                }
                out.branches = Some(sorted_unique(b));
            }
        }
        _ => return None,
    }
    Some(out)
}
