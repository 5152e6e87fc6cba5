//! Control nodes: CatchExceptionNode, PluginCatchExceptionNode, PluginRetryNode and
//! PluginChoiceNode.

use super::{Fields, Lowered, Lowerer, NodeKind, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, jinja_titles, map_titles, sorted_unique};
use serde_json::{Value as Json, json};
use weft_spec::{Code, CompId, Property};

/// The types of the family.
pub const TYPES: &[&str] = &["CatchExceptionNode", "PluginCatchExceptionNode", "PluginRetryNode", "PluginChoiceNode"];

/// WayFlow's `ChoiceSelectionStep.DEFAULT_CHOICE_SELECTION_TEMPLATE`, used when
/// `prompt_template` is `""`.
pub const DEFAULT_CHOICE_TEMPLATE: &str = "You are a helpful assistant. You must pick a task to execute, given some user input.
You have several tasks to select from, with the format:
```
task_name: task_description
```

The available tasks are:
```
{% for desc in next_steps -%}
- {{ desc.displayed_step_name }}: {{ desc.description }}
{% endfor -%}
```

Return the task_name (and only the task_name) that you need to execute for this request: {{ input }}";

/// PluginChoiceNode (WayFlow's ChoiceSelectionStep): the model is asked, with one user message,
/// which branch to take; the first displayed name found in its answer (leftmost; at one
/// position the earlier entry) selects the branch, else `default`.
#[derive(Debug)]
pub struct ChoiceNode {
    /// The LLM config component the model is chosen from.
    pub llm_config: CompId,
    /// The config's generation parameters with `max_tokens` set to `num_tokens`.
    pub generation: serde_json::Map<String, Json>,
    /// The prompt, rendered with the node's inputs and `next_steps`.
    pub template: std::sync::Arc<weft_prompt::Template>,
    /// `next_steps` as the template sees it: `{step_name, description, displayed_step_name}`.
    pub next_steps: Json,
    /// `(displayed name, branch)` in `next_branches` order.
    pub choices: Vec<(String, String)>,
    /// The output the matched displayed name goes to (internal title `selected_choice`).
    pub selected_output: String,
    /// The output the raw answer goes to (internal title `llm_output`).
    pub llm_output: String,
}

/// PluginRetryNode (WayFlow's RetryStep): the subflow runs again, with the same inputs, until
/// its output `success` is truthy (Python truthiness), at most `max_trials` times.
#[derive(Debug, Clone)]
pub struct RetryNode {
    /// The subflow.
    pub flow: CompId,
    /// The title of the subflow output judged (`success_condition`).
    pub success: String,
    /// `max_num_trials`, at least 1 (0 behaves like 1 in WayFlow).
    pub max_trials: u32,
}

/// CatchExceptionNode and PluginCatchExceptionNode: the subflow runs; an error raised inside
/// it that `rule` catches leaves the node through a branch of its own instead of failing the run.
#[derive(Debug, Clone)]
pub struct CatchNode {
    /// The subflow.
    pub flow: CompId,
    /// Which errors are caught, and the branch each leaves through.
    pub rule: CatchRule,
}

/// Which errors a catch node catches.
#[derive(Debug, Clone)]
pub enum CatchRule {
    /// CatchExceptionNode: every error it can catch, through `caught_exception_branch`, with
    /// `caught_exception_info`.
    Any,
    /// PluginCatchExceptionNode (WayFlow's CatchExceptionStep): an error whose exception name
    /// is a key of `except_on` leaves through its branch; any other through
    /// `default_exception_branch` when `catch_all` is set, else it is not caught. Outputs
    /// `exception_name` and `exception_payload_name`.
    Named {
        /// `except_on`: exception name to branch, in document order.
        except_on: Vec<(String, String)>,
        /// `catch_all_exceptions`.
        catch_all: bool,
    },
}

/// The branch a CatchExceptionNode takes when it caught an error.
pub const CAUGHT_BRANCH: &str = "caught_exception_branch";
/// The branch a PluginCatchExceptionNode with `catch_all_exceptions` takes for an error no
/// `except_on` key names.
pub const DEFAULT_EXCEPTION_BRANCH: &str = "default_exception_branch";

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    Some(Lowered::Kind(match lw.comp(n).ty.name {
        "PluginChoiceNode" => NodeKind::Choice(Box::new(choice(lw, n)?)),
        "PluginRetryNode" => NodeKind::Retry(retry(lw, n)?),
        "CatchExceptionNode" => NodeKind::Catch(CatchNode { flow: lw.fields(n).comp("subflow")?, rule: CatchRule::Any }),
        _ => NodeKind::Catch(plugin_catch(lw, n)?),
    }))
}

fn plugin_catch(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<CatchNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let flow = f.comp("flow")?;
    let mut except_on = Vec::new();
    if let Some(map) = f.object("except_on") {
        for (name, branch) in map {
            let Some(branch) = branch.as_str() else {
                lw.error(
                    n,
                    Code::BadValue,
                    format!("{}/except_on/{}", comp.pointer, weft_spec::diagnostic::escape_token(name)),
                    format!("`except_on` maps \"{name}\" to {branch}, not to a branch name"),
                    "map each exception name to the name of the branch to take, a string",
                );
                return None;
            };
            except_on.push((name.clone(), branch.to_owned()));
        }
    }
    Some(CatchNode { flow, rule: CatchRule::Named { except_on, catch_all: f.bool("catch_all_exceptions", false) } })
}

fn retry(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<RetryNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let flow = f.comp("flow")?;
    let success = f.str("success_condition").unwrap_or("").to_owned();
    if lw.io(flow).output(&success).is_none() {
        let names: Vec<String> = lw.io(flow).outputs.iter().map(|p| format!("`{}`", p.title())).collect();
        lw.error(
            n,
            Code::ComponentRule,
            format!("{}/success_condition", comp.pointer),
            format!(
                "`success_condition` is \"{success}\", which is not an output of the subflow (its outputs: {}); WayFlow refuses it",
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
            "name one of the subflow's outputs, usually a boolean",
        );
        return None;
    }
    let max_trials = f.json("max_num_trials").and_then(Json::as_i64).unwrap_or(5).clamp(1, 20) as u32;
    Some(RetryNode { flow, success, max_trials })
}

const BRANCHES_HINT: &str =
    "`next_branches` is a list of [branch name, description] or [branch name, description, displayed name], each a string";

fn choice(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<ChoiceNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let llm_config = f.comp("llm_config")?;
    let at = format!("{}/next_branches", comp.pointer);
    let Some(list) = f.json("next_branches").and_then(Json::as_array) else {
        lw.error(n, Code::BadValue, at, "`next_branches` must be a list".into(), BRANCHES_HINT);
        return None;
    };
    let mut choices: Vec<(String, String)> = Vec::new();
    let mut next_steps = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let parts: Option<Vec<&str>> = entry.as_array().map(|a| a.iter().filter_map(Json::as_str).collect());
        let parts = parts.filter(|p| (2..=3).contains(&p.len()) && entry.as_array().is_some_and(|a| a.len() == p.len()));
        let Some(parts) = parts else {
            lw.error(n, Code::BadValue, format!("{at}/{i}"), format!("entry {i} of `next_branches` is {entry}"), BRANCHES_HINT);
            return None;
        };
        let (name, description) = (parts[0], parts[1]);
        let displayed = parts.get(2).copied().unwrap_or(name);
        if choices.iter().any(|(d, _)| d == displayed) {
            lw.error(
                n,
                Code::BadValue,
                format!("{at}/{i}"),
                format!("two entries of `next_branches` are displayed as \"{displayed}\"; WayFlow refuses it, as the answer could not tell them apart"),
                "give each entry its own displayed name (the third element)",
            );
            return None;
        }
        choices.push((displayed.to_owned(), name.to_owned()));
        next_steps.push(json!({"step_name": name, "description": description, "displayed_step_name": displayed}));
    }
    let text = f.str("prompt_template").filter(|t| !t.is_empty()).unwrap_or(DEFAULT_CHOICE_TEMPLATE);
    let template = lw.template(n, "prompt_template", text)?;
    let mut allowed = lw.input_names(n);
    allowed.push("next_steps".to_owned());
    if !lw.variables(n, "prompt_template", &template, &allowed) {
        return None;
    }
    let config = lw.fields(llm_config);
    let mut generation = if config.has("default_generation_parameters") {
        super::llm::generation(config.json("default_generation_parameters"))
    } else {
        Default::default()
    };
    let num_tokens = f.json("num_tokens").and_then(Json::as_i64).unwrap_or(7);
    generation.insert("max_tokens".into(), json!(num_tokens));
    // Outputs are produced under their internal titles; the node's `output_mapping` renames them.
    Some(ChoiceNode {
        llm_config,
        generation,
        template,
        next_steps: Json::Array(next_steps),
        choices,
        selected_output: "selected_choice".to_owned(),
        llm_output: "llm_output".to_owned(),
    })
}

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
            } else if let Some(sub) = comp.comp_field("subflow") {
                // The outputs are the subflow's: each of those needs a default.
                for p in inf.io(sub).outputs.iter().filter(|p| p.default().is_none()) {
                    cx.report(
                        comp,
                        Code::Default,
                        format!("{}/subflow", comp.pointer),
                        format!(
                            "{}: subflow output \"{}\" needs a default, which the node outputs when an exception is caught",
                            comp.label(),
                            p.title()
                        ),
                        Some("add a \"default\" to that output of the subflow (or list the node's outputs, each with a default)".into()),
                    );
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
            let text = f.str("prompt_template").filter(|t| !t.is_empty()).unwrap_or(DEFAULT_CHOICE_TEMPLATE);
            let inputs = jinja_titles(text, &["next_steps"]);
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
