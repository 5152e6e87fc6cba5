//! Nodes that compute on text, values and the conversation: PluginRegexNode and the flow
//! variable nodes (PluginReadVariableNode, PluginWriteVariableNode, PluginVariableNode) run;
//! PluginExtractNode and PluginGetChatHistoryNode are checked and exported, not run yet.

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, next, non_negative};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, jinja_titles, key_props, map_titles};
use serde_json::{Value as Json, json};
use weft_spec::{Code, CompId, Property};

/// The message types a chat history may be filtered on.
const MESSAGE_TYPES: &[&str] = &["SYSTEM", "AGENT", "USER", "THOUGHT", "INTERNAL", "TOOL_REQUEST", "TOOL_RESULT", "ERROR", "DISPLAY_ONLY"];

/// The types of the family.
pub const TYPES: &[&str] = &[
    "PluginRegexNode",
    "PluginExtractNode",
    "PluginGetChatHistoryNode",
    "PluginReadVariableNode",
    "PluginWriteVariableNode",
    "PluginVariableNode",
];

/// PluginExtractNode (WayFlow's ExtractValueFromJsonStep): the text is cut at code fences, each
/// piece read as (repaired) JSON, and each output takes the first non-null result of its jq
/// query over the pieces, in order.
#[derive(Debug, Clone)]
pub struct ExtractNode {
    /// `(output internal title, query)`, in `output_values` order.
    pub queries: Vec<(String, weft_prompt::JqQuery)>,
    /// The input read (internal title `text`).
    pub input: String,
    /// With `retry: true` and an `llm_config`: the model that repairs a piece a query raises an
    /// error on (WayFlow's `edit_json`).
    pub repair: Option<ExtractRepair>,
}

/// The model of a PluginExtractNode's repairs.
#[derive(Debug, Clone)]
pub struct ExtractRepair {
    /// The LLM config component the model is chosen from.
    pub llm_config: CompId,
    /// The config's generation parameters.
    pub generation: serde_json::Map<String, Json>,
}

/// WayFlow's `GetChatHistoryStep.DEFAULT_OUTPUT_TEMPLATE`, used when `output_template` is `""`.
pub const DEFAULT_CHAT_HISTORY_TEMPLATE: &str = "{% for m in chat_history -%}
{{m.message_type}} >> {{m.content}}{{ \"
\" if not loop.last }}
{%- endfor %}";

/// PluginGetChatHistoryNode (WayFlow's GetChatHistoryStep): the run's messages of the chosen
/// types, the last (or first) `n` after skipping `offset`, in chronological order, rendered by a
/// template or given as a list of `{message_type, content}`.
#[derive(Debug, Clone)]
pub struct ChatHistoryNode {
    /// `n`.
    pub n: usize,
    /// `which_messages` is `last`.
    pub last: bool,
    /// `offset`.
    pub offset: usize,
    /// `message_types`; `None` keeps every type.
    pub types: Option<Vec<String>>,
    /// `output_template` (WayFlow's default for `""`); `None` outputs the list.
    pub template: Option<std::sync::Arc<weft_prompt::Template>>,
    /// The output written (internal title `chat_history`).
    pub output: String,
}

/// How a write changes a flow variable (WayFlow's VariableWriteOperation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Replace the value.
    Overwrite,
    /// Extend a list, update an object.
    Merge,
    /// Append one element to a list.
    Insert,
}

/// The flow variable nodes: writes (in order), then reads, on the variables of the flow the node
/// runs in (an ExtendedFlow's `state`), which live in the run state, one set per flow run.
#[derive(Debug, Clone)]
pub struct VariablesNode {
    /// `(variable title, input read (internal name), operation)`.
    pub writes: Vec<(String, String, WriteOp)>,
    /// `(variable title, output written (internal name))`.
    pub reads: Vec<(String, String)>,
}

/// PluginRegexNode (WayFlow's RegexExtractionStep): Python's `re.findall` on the input `text`,
/// empty matches dropped; the first (or last, `match: "last"`) match or `""`, or every match.
#[derive(Debug, Clone)]
pub struct RegexNode {
    /// The compiled pattern, with its flags and whether the last match is taken (sandboxed:
    /// fancy-regex under a backtracking budget).
    pub pattern: weft_prompt::RegexPattern,
    /// `return_first_match_only`: one match (a string) rather than the list.
    pub first_only: bool,
    /// The input read (internal title `text`).
    pub input: String,
    /// The output written (internal title `output`).
    pub output: String,
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    match lw.comp(n).ty.name {
        "PluginRegexNode" => Some(Lowered::Kind(NodeKind::Regex(Box::new(regex_node(lw, n)?)))),
        "PluginExtractNode" => Some(Lowered::Kind(NodeKind::Extract(Box::new(extract(lw, n)?)))),
        "PluginGetChatHistoryNode" => Some(Lowered::Kind(NodeKind::ChatHistory(Box::new(chat_history(lw, n)?)))),
        "PluginReadVariableNode" | "PluginWriteVariableNode" | "PluginVariableNode" => {
            Some(Lowered::Kind(NodeKind::Variables(variables(lw, n)?)))
        }
        _ => Some(Lowered::NotRunnable),
    }
}

fn chat_history(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<ChatHistoryNode> {
    let f = lw.fields(n);
    // Negative counts are refused by the family's check.
    let count = |name: &str, default: i64| f.json(name).and_then(Json::as_i64).unwrap_or(default).max(0) as usize;
    let types = match f.json("message_types") {
        Some(Json::Null) => None,
        Some(Json::Array(list)) => Some(list.iter().filter_map(Json::as_str).map(str::to_owned).collect()),
        _ => Some(vec!["USER".to_owned(), "AGENT".to_owned()]),
    };
    let template = match f.json("output_template") {
        Some(Json::Null) => None,
        other => {
            let text = other.and_then(Json::as_str).filter(|t| !t.is_empty()).unwrap_or(DEFAULT_CHAT_HISTORY_TEMPLATE);
            let template = lw.template(n, "output_template", text)?;
            let mut allowed = lw.input_names(n);
            allowed.push("chat_history".to_owned());
            if !lw.variables(n, "output_template", &template, &allowed) {
                return None;
            }
            Some(template)
        }
    };
    Some(ChatHistoryNode {
        n: count("n", 10),
        last: f.str("which_messages") != Some("first"),
        offset: count("offset", 0),
        types,
        template,
        output: "chat_history".to_owned(),
    })
}

fn extract(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<ExtractNode> {
    let f = lw.fields(n);
    // WayFlow repairs only when it has a model: `retry` alone does nothing.
    let repair = f.comp("llm_config").filter(|_| f.bool("retry", false)).map(|llm_config| {
        let config = lw.fields(llm_config);
        let generation = if config.has("default_generation_parameters") {
            super::llm::generation(config.json("default_generation_parameters"))
        } else {
            Default::default()
        };
        ExtractRepair { llm_config, generation }
    });
    let mut queries = Vec::new();
    let mut ok = true;
    for (output, query) in f.object("output_values").cloned().unwrap_or_default() {
        let Some(text) = query.as_str() else { continue };
        match lw.jq(n, "output_values", &output, text) {
            Some(q) => queries.push((output, q)),
            None => ok = false,
        }
    }
    let in_map = f.mapping("input_mapping");
    let input = lw.io(n).inputs.first().map_or_else(|| "text".to_owned(), |p| internal_name(&in_map, p.title()));
    ok.then_some(ExtractNode { queries, input, repair })
}

fn write_op(lw: &mut Lowerer<'_, '_>, n: CompId, pointer: String, op: Option<&Json>, variable: &Property) -> Option<WriteOp> {
    let op = match op.and_then(Json::as_str).unwrap_or("overwrite") {
        "overwrite" => WriteOp::Overwrite,
        "merge" => WriteOp::Merge,
        "insert" => WriteOp::Insert,
        other => {
            lw.error(
                n,
                Code::BadValue,
                pointer,
                format!("unknown write operation \"{other}\""),
                "use \"overwrite\", \"merge\" or \"insert\"",
            );
            return None;
        }
    };
    let ty = variable.schema.get("type").and_then(Json::as_str);
    let fits = match op {
        WriteOp::Overwrite => true,
        WriteOp::Merge => matches!(ty, Some("array" | "object")),
        WriteOp::Insert => ty == Some("array"),
    };
    if !fits {
        let needs = if op == WriteOp::Merge { "a list or an object" } else { "a list" };
        lw.error(
            n,
            Code::ComponentRule,
            pointer,
            format!("variable \"{}\" is {}; {op:?} needs {needs} (WayFlow refuses it)", variable.title(), variable.type_name()),
            "use \"overwrite\", or declare the variable as a list (object for merge)",
        );
        return None;
    }
    Some(op)
}

fn variables(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<VariablesNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    // Inputs are read and outputs written under their internal names (`value`, or the
    // variable's title); the node's mappings rename them.
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    match comp.ty.name {
        "PluginReadVariableNode" => {
            let v = f.prop("variable")?;
            reads.push((v.title().to_owned(), "value".to_owned()));
        }
        "PluginWriteVariableNode" => {
            let v = f.prop("variable")?;
            let op = write_op(lw, n, format!("{}/operation", comp.pointer), f.json("operation"), v)?;
            writes.push((v.title().to_owned(), "value".to_owned(), op));
        }
        _ => {
            let ops = f.object("write_operations");
            for v in f.prop_list("write_variables").unwrap_or_default() {
                let pointer = format!("{}/write_operations/{}", comp.pointer, weft_spec::diagnostic::escape_token(v.title()));
                let op = write_op(lw, n, pointer, ops.and_then(|o| o.get(v.title())), v)?;
                writes.push((v.title().to_owned(), v.title().to_owned(), op));
            }
            for v in f.prop_list("read_variables").unwrap_or_default() {
                reads.push((v.title().to_owned(), v.title().to_owned()));
            }
        }
    }
    Some(VariablesNode { writes, reads })
}

const REGEX_HINT: &str = "`regex_pattern` is a Python regular expression, or {\"pattern\": \"...\", \"match\": \"first\" or \"last\", \"flags\": <Python re flags, an integer>}";

fn regex_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<RegexNode> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let at = format!("{}/regex_pattern", comp.pointer);
    let (pattern, flags, last) = match f.json("regex_pattern") {
        Some(Json::String(p)) => (p.clone(), 0, false),
        Some(Json::Object(o)) => {
            let Some(p) = o.get("pattern").and_then(Json::as_str) else {
                lw.error(n, Code::BadValue, format!("{at}/pattern"), "`regex_pattern.pattern` must be a string".into(), REGEX_HINT);
                return None;
            };
            let flags = match o.get("flags") {
                None | Some(Json::Null) => 0,
                Some(v) => match v.as_i64() {
                    Some(i) if i >= 0 => i,
                    _ => {
                        lw.error(
                            n,
                            Code::BadValue,
                            format!("{at}/flags"),
                            format!("`regex_pattern.flags` must be a non-negative integer, not {v}"),
                            REGEX_HINT,
                        );
                        return None;
                    }
                },
            };
            let last = match o.get("match") {
                None | Some(Json::Null) => false,
                Some(Json::String(m)) if m == "first" => false,
                Some(Json::String(m)) if m == "last" => true,
                Some(v) => {
                    lw.error(
                        n,
                        Code::BadValue,
                        format!("{at}/match"),
                        format!("`regex_pattern.match` must be \"first\" or \"last\", not {v}"),
                        REGEX_HINT,
                    );
                    return None;
                }
            };
            (p.to_owned(), flags, last)
        }
        other => {
            let found = other.map_or_else(|| "missing".to_owned(), |v| format!("{v}"));
            lw.error(n, Code::BadValue, at, format!("`regex_pattern` must be a string or an object, found {found}"), REGEX_HINT);
            return None;
        }
    };
    let pattern = match weft_prompt::RegexPattern::new(&pattern, flags, last) {
        Ok(p) => p,
        Err(e) => {
            lw.error(
                n,
                Code::BadValue,
                at,
                format!("the regular expression `{pattern}` cannot be used: {e}"),
                "Python `re` syntax is supported with lookaround and backreferences; rewrite the construct the message names",
            );
            return None;
        }
    };
    let first_only = f.bool("return_first_match_only", true);
    if first_only && pattern.groups() > 1 {
        lw.error(
            n,
            Code::BadValue,
            format!("{}/return_first_match_only", comp.pointer),
            format!("the pattern has {} groups, so each match is a tuple, which WayFlow cannot return as the single (string) match", pattern.groups()),
            "keep one capturing group (make the others non-capturing with `(?:...)`), or set `return_first_match_only` to false to get the list",
        );
        return None;
    }
    let in_map = f.mapping("input_mapping");
    let out_map = f.mapping("output_mapping");
    let input = lw.io(n).inputs.first().map_or_else(|| "text".to_owned(), |p| internal_name(&in_map, p.title()));
    let output = lw.io(n).outputs.first().map_or_else(|| "output".to_owned(), |p| internal_name(&out_map, p.title()));
    Some(RegexNode { pattern, first_only, input, output })
}

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
