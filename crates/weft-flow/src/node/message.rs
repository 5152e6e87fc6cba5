//! Nodes that show, ask for or build text and values: InputMessageNode and
//! PluginInputMessageNode, OutputMessageNode and PluginOutputMessageNode, PluginTemplateNode and
//! PluginConstantValuesNode.

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, next};
use crate::check::Cx;
use crate::check::io::{compare, exactly_one};
use crate::infer::{Inferred, Inferrer, jinja_titles, key_props, map_titles, string_props};
use crate::template::placeholders;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_prompt::Template;
use weft_spec::{Code, CompId, Component, Property};

/// The types of the family.
pub const TYPES: &[&str] = &[
    "InputMessageNode",
    "PluginInputMessageNode",
    "OutputMessageNode",
    "PluginOutputMessageNode",
    "PluginTemplateNode",
    "PluginConstantValuesNode",
];

/// Asks the user for a message.
#[derive(Debug)]
pub struct InputMessageNode {
    /// The message shown first, if any.
    pub message: Option<Arc<Template>>,
    /// The output the answer goes to (internal title).
    pub output: String,
    /// `rephrase: true` with an `llm_config`: the LLM config that rewrites the message first
    /// (WayFlow rephrases only when both are given).
    pub rephrase: Option<CompId>,
}

/// Shows a message.
#[derive(Debug)]
pub struct OutputMessageNode {
    /// The message.
    pub message: Arc<Template>,
    /// `message_type` (`AGENT` when unset).
    pub message_type: String,
    /// The output the message is also exposed as (internal title), if any.
    pub output: Option<String>,
    /// `rephrase: true` with an `llm_config`: the LLM config that rewrites the message before it
    /// is posted (the output keeps the message as rendered).
    pub rephrase: Option<CompId>,
}

/// Renders a template into its output.
#[derive(Debug)]
pub struct TemplateNode {
    /// The template.
    pub template: Arc<Template>,
    /// The output (internal title).
    pub output: String,
}

/// Outputs constant values.
#[derive(Debug, Clone)]
pub struct ConstantsNode {
    /// Output title to value.
    pub values: Map<String, Json>,
}

/// The first output's internal title, or `fallback`.
fn first_output(lw: &Lowerer<'_, '_>, n: CompId, fallback: &str) -> String {
    let out_map = lw.fields(n).mapping("output_mapping");
    lw.io(n).outputs.first().map_or_else(|| fallback.to_owned(), |p| internal_name(&out_map, p.title()))
}

/// The LLM config that rephrases the node's message: `rephrase: true` and an `llm_config`
/// (WayFlow ignores `rephrase` without an LLM).
fn rephrase(f: Fields<'_>) -> Option<CompId> {
    if f.bool_where_present("rephrase", false) && f.has("llm_config") { f.comp("llm_config") } else { None }
}

/// Compiles a template of node `n` that reads the node's inputs.
fn checked_template(lw: &mut Lowerer<'_, '_>, n: CompId, field: &str, text: &str) -> Option<Arc<Template>> {
    let template = lw.template(n, field, text)?;
    let inputs = lw.input_names(n);
    lw.variables(n, field, &template, &inputs).then_some(template)
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    let kind = match lw.comp(n).ty.name {
        "InputMessageNode" | "PluginInputMessageNode" => NodeKind::InputMessage(input(lw, n)?),
        "OutputMessageNode" | "PluginOutputMessageNode" => NodeKind::OutputMessage(output(lw, n)?),
        "PluginTemplateNode" => NodeKind::Template(template_node(lw, n)?),
        "PluginConstantValuesNode" => NodeKind::Constants(constants(lw, n)),
        _ => return Some(Lowered::NotRunnable),
    };
    Some(Lowered::Kind(kind))
}

fn input(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<InputMessageNode> {
    let f = lw.fields(n);
    let field = if lw.comp(n).is("InputMessageNode") { "message" } else { "message_template" };
    let message = match f.str(field).filter(|m| !m.is_empty()) {
        Some(text) => Some(checked_template(lw, n, field, text)?),
        None => None,
    };
    Some(InputMessageNode { message, output: first_output(lw, n, "user_input"), rephrase: rephrase(f) })
}

fn output(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<OutputMessageNode> {
    let f = lw.fields(n);
    let expose = lw.comp(n).is("PluginOutputMessageNode") && f.bool("expose_message_as_output", true);
    let message_type = f.str_where_present("message_type").unwrap_or("AGENT").to_owned();
    let message = checked_template(lw, n, "message", f.str("message").unwrap_or(""))?;
    Some(OutputMessageNode { message, message_type, output: expose.then(|| "output_message".to_owned()), rephrase: rephrase(f) })
}

fn template_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<TemplateNode> {
    let template = checked_template(lw, n, "template", lw.fields(n).str("template").unwrap_or(""))?;
    Some(TemplateNode { template, output: first_output(lw, n, "output") })
}

fn constants(lw: &Lowerer<'_, '_>, n: CompId) -> ConstantsNode {
    ConstantsNode { values: lw.fields(n).object("constant_values").cloned().unwrap_or_default() }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred { branches: next(), ..Inferred::default() };
    let (inputs, outputs) = match comp.ty.name {
        "InputMessageNode" => (string_props(&placeholders(f.str("message").unwrap_or(""))), vec![Property::typed("user_input", "string")]),
        "OutputMessageNode" => (string_props(&placeholders(f.str("message").unwrap_or(""))), Vec::new()),
        "PluginOutputMessageNode" => {
            out.outputs_explicit_wins = true;
            let expose = f.bool("expose_message_as_output", true);
            let outputs = if expose { vec![Property::typed("output_message", "string")] } else { Vec::new() };
            (string_props(&placeholders(f.str("message").unwrap_or(""))), outputs)
        }
        "PluginInputMessageNode" => {
            (jinja_titles(f.str("message_template").unwrap_or(""), &[]), vec![Property::typed("user_provided_input", "string")])
        }
        "PluginTemplateNode" => (jinja_titles(f.str("template").unwrap_or(""), &[]), vec![Property::typed("output", "string")]),
        "PluginConstantValuesNode" => (Vec::new(), key_props(f.object("constant_values"))),
        _ => return None,
    };
    out.inputs = Some(map_titles(&f.mapping("input_mapping"), inputs));
    out.outputs = Some(map_titles(&f.mapping("output_mapping"), outputs));
    Some(out)
}

/// The interface rules of the family's types: `true` when it checked the declared lists itself.
pub(super) fn check_interface(cx: &mut Cx<'_>, comp: &Component, inferred: &Inferred) -> bool {
    if !comp.is("InputMessageNode") {
        return false;
    }
    if let Some(outs) = &comp.outputs {
        if outs.len() != 1 {
            exactly_one(
                cx,
                comp,
                outs,
                "outputs",
                "an InputMessageNode has exactly one string output",
                "{\"title\": \"user_input\", \"type\": \"string\"}",
            );
        } else if outs[0].schema.get("type").and_then(|t| t.as_str()) != Some("string") {
            cx.report(
                comp,
                Code::IoMismatch,
                outs[0].pointer.clone(),
                format!("{}: the output of an InputMessageNode must be a string, found {}", comp.label(), outs[0].type_name()),
                Some("set \"type\": \"string\"".into()),
            );
        }
    }
    compare(cx, comp, "inputs", comp.inputs.as_deref(), inferred.inputs.as_deref());
    true
}
