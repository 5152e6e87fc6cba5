//! Nodes that compute on text and the conversation: PluginRegexNode, PluginExtractNode and
//! PluginGetChatHistoryNode. Weft checks and exports them; it does not run them yet.

use super::{Fields, next, non_negative};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, jinja_titles, key_props, map_titles};
use serde_json::{Value as Json, json};
use weft_spec::{Code, CompId, Property};

/// The message types a chat history may be filtered on.
const MESSAGE_TYPES: &[&str] = &["SYSTEM", "AGENT", "USER", "THOUGHT", "INTERNAL", "TOOL_REQUEST", "TOOL_RESULT", "ERROR", "DISPLAY_ONLY"];

/// The types of the family.
pub const TYPES: &[&str] = &["PluginRegexNode", "PluginExtractNode", "PluginGetChatHistoryNode"];

pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    if !comp.is("PluginGetChatHistoryNode") {
        return;
    }
    for f in ["n", "offset"] {
        non_negative(cx, comp, f, "it must not be negative", Some(format!("use a `{f}` of 0 or more")));
    }
    if let Some(Json::Array(types)) = Fields::of(comp).json("message_types") {
        for (i, t) in types.iter().enumerate() {
            if !t.as_str().is_some_and(|t| MESSAGE_TYPES.contains(&t)) {
                cx.report(
                    comp,
                    Code::BadValue,
                    format!("{}/message_types/{i}", comp.pointer),
                    format!("{}: {t} is not a message type", comp.label()),
                    Some(format!("use one of {}", MESSAGE_TYPES.join(", "))),
                );
            }
        }
    }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let (inputs, outputs) = match comp.ty.name {
        "PluginRegexNode" => (vec![Property::typed("text", "string")], vec![Property::new(json!({"title": "output"}))]),
        "PluginExtractNode" => (vec![Property::typed("text", "string")], key_props(f.object("output_values"))),
        "PluginGetChatHistoryNode" => {
            let inputs = match f.str("output_template") {
                Some(t) if !t.is_empty() => jinja_titles(t, &["chat_history"]),
                _ => Vec::new(),
            };
            (inputs, vec![Property::new(json!({"title": "chat_history"}))])
        }
        _ => return None,
    };
    Some(Inferred {
        inputs: Some(map_titles(&f.mapping("input_mapping"), inputs)),
        outputs: Some(map_titles(&f.mapping("output_mapping"), outputs)),
        branches: next(),
        ..Inferred::default()
    })
}
