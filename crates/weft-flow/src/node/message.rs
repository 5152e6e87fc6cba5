//! Nodes that show, ask for or build text and values: InputMessageNode and
//! PluginInputMessageNode, OutputMessageNode and PluginOutputMessageNode, PluginTemplateNode and
//! PluginConstantValuesNode.

use super::{Fields, Lowerer, internal_name};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_prompt::Template;
use weft_spec::CompId;

/// Asks the user for a message.
#[derive(Debug)]
pub struct InputMessageNode {
    /// The message shown first, if any.
    pub message: Option<Arc<Template>>,
    /// The output the answer goes to (internal title).
    pub output: String,
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

/// Blocks `rephrase: true` (it needs an LLM call Weft does not make yet).
fn rephrase(lw: &mut Lowerer<'_, '_>, n: CompId, f: Fields<'_>) {
    if f.bool_where_present("rephrase", false) {
        let comp = lw.comp(n);
        lw.block(n, n, format!("{}/rephrase", comp.pointer), format!("{} with `rephrase: true`", comp.ty.name));
    }
}

/// Compiles a template of node `n` that reads the node's inputs.
fn checked_template(lw: &mut Lowerer<'_, '_>, n: CompId, field: &str, text: &str) -> Option<Arc<Template>> {
    let template = lw.template(n, field, text)?;
    let inputs = lw.input_names(n);
    lw.variables(n, field, &template, &inputs).then_some(template)
}

pub(super) fn input(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<InputMessageNode> {
    let f = lw.fields(n);
    let field = if lw.comp(n).is("InputMessageNode") { "message" } else { "message_template" };
    rephrase(lw, n, f);
    let message = match f.str(field).filter(|m| !m.is_empty()) {
        Some(text) => Some(checked_template(lw, n, field, text)?),
        None => None,
    };
    Some(InputMessageNode { message, output: first_output(lw, n, "user_input") })
}

pub(super) fn output(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<OutputMessageNode> {
    let f = lw.fields(n);
    rephrase(lw, n, f);
    let expose = lw.comp(n).is("PluginOutputMessageNode") && f.bool("expose_message_as_output", true);
    let message_type = f.str_where_present("message_type").unwrap_or("AGENT").to_owned();
    let message = checked_template(lw, n, "message", f.str("message").unwrap_or(""))?;
    Some(OutputMessageNode { message, message_type, output: expose.then(|| "output_message".to_owned()) })
}

pub(super) fn template_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<TemplateNode> {
    let template = checked_template(lw, n, "template", lw.fields(n).str("template").unwrap_or(""))?;
    Some(TemplateNode { template, output: first_output(lw, n, "output") })
}

pub(super) fn constants(lw: &Lowerer<'_, '_>, n: CompId) -> ConstantsNode {
    ConstantsNode { values: lw.fields(n).object("constant_values").cloned().unwrap_or_default() }
}
