//! Nodes that compute on text and values: PluginRegexNode (WayFlow's RegexExtractionStep) and
//! the flow variable nodes (VariableReadStep, VariableWriteStep, VariableStep).

use super::At;
use crate::error::RunErrorKind;
use crate::plan::Compiler;
use crate::sched::{Res, Sched, get_frame, node_error, single};
use crate::state::RunState;
use serde_json::{Map, Value as Json};
use weft_flow::node::{ChatHistoryNode, RegexNode, VariablesNode, WriteOp};
use weft_prompt::{RegexPattern, py_json_dumps};

pub(crate) struct RegexOp {
    pub(crate) pattern: RegexPattern,
    pub(crate) first_only: bool,
    pub(crate) input: String,
    pub(crate) output: String,
}

impl RegexOp {
    pub(crate) fn plan(r: &RegexNode) -> RegexOp {
        RegexOp { pattern: r.pattern.clone(), first_only: r.first_only, input: r.input.clone(), output: r.output.clone() }
    }

    /// `re.findall` on the text, empty matches dropped (a match of several groups is never
    /// empty); the first (or last) match, `""` when none, or the list, where a match of several
    /// groups is the JSON text of the list of its groups, as WayFlow writes it.
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let text = match vars.get(&self.input) {
            Some(Json::String(t)) => t.clone(),
            Some(other) => py_json_dumps(other),
            None => String::new(),
        };
        let matches = regex_matches(&self.pattern, &text);
        let value = if self.first_only {
            let chosen = if self.pattern.takes_last() { matches.last() } else { matches.first() };
            Json::String(chosen.cloned().unwrap_or_default())
        } else {
            Json::Array(matches.into_iter().map(Json::String).collect())
        };
        s.done(state, at, single(&self.output, value))
    }
}

/// The matches as RegexExtractionStep keeps them, each a string.
pub(crate) fn regex_matches(pattern: &RegexPattern, text: &str) -> Vec<String> {
    let several = pattern.groups() > 1;
    pattern
        .findall_groups(text)
        .into_iter()
        .filter_map(|parts| {
            if several {
                Some(py_json_dumps(&Json::Array(parts.into_iter().map(Json::String).collect())))
            } else {
                parts.into_iter().next().filter(|m| !m.is_empty())
            }
        })
        .collect()
}

/// Writes then reads flow variables of the frame the node runs in.
pub(crate) struct VariablesOp {
    pub(crate) writes: Vec<(String, String, WriteOp)>,
    pub(crate) reads: Vec<(String, String)>,
    /// The variables of the node's flow, with their defaults.
    pub(crate) declared: Map<String, Json>,
}

impl VariablesOp {
    /// Every variable the node uses must be one of its flow's (WayFlow fails the step otherwise).
    pub(crate) fn plan(c: &mut Compiler<'_>, n: weft_spec::CompId, idx: usize, v: &VariablesNode) -> Option<VariablesOp> {
        let declared: Map<String, Json> = c
            .flow_of_node(idx)
            .map(|f| f.variables.iter().map(|p| (p.title().to_owned(), p.default().cloned().unwrap_or(Json::Null))).collect())
            .unwrap_or_default();
        let comp = c.comp(n);
        let mut ok = true;
        for title in v.writes.iter().map(|w| &w.0).chain(v.reads.iter().map(|r| &r.0)) {
            if !declared.contains_key(title) {
                ok = false;
                let known: Vec<String> = declared.keys().map(|k| format!("\"{k}\"")).collect();
                c.report_as(
                    weft_spec::Code::ComponentRule,
                    format!(
                        "{} at {}: uses the flow variable \"{title}\", which the flow it runs in does not declare in its `state` (it declares {}); declare it in the ExtendedFlow's `state`",
                        comp.label(),
                        crate::plan::pointer(comp),
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                );
            }
        }
        ok.then(|| VariablesOp { writes: v.writes.clone(), reads: v.reads.clone(), declared })
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        get_frame(state, at.fid)?;
        let store = state.variables.entry(at.fid).or_insert_with(|| self.declared.clone());
        for (title, input, op) in &self.writes {
            let value = vars.get(input).cloned().unwrap_or(Json::Null);
            let current = store.entry(title.clone()).or_insert(Json::Null);
            match (op, current) {
                (WriteOp::Overwrite, current) => *current = value,
                (WriteOp::Merge, Json::Array(list)) => match value {
                    Json::Array(items) => list.extend(items),
                    other => return Err(write_error(at, title, "merge", &other)),
                },
                (WriteOp::Merge, Json::Object(map)) => match value {
                    Json::Object(items) => map.extend(items),
                    other => return Err(write_error(at, title, "merge", &other)),
                },
                (WriteOp::Insert, Json::Array(list)) => list.push(value),
                (WriteOp::Merge | WriteOp::Insert, current) => {
                    let what = weft_spec::source::describe(current);
                    return Err(node_error(
                        RunErrorKind::Value,
                        at.node,
                        &format!(
                            "cannot {} into flow variable \"{title}\": it holds {what}, not a list{}",
                            if *op == WriteOp::Insert { "insert" } else { "merge" },
                            if *op == WriteOp::Merge { " or an object" } else { "" }
                        ),
                    ));
                }
            }
        }
        let mut outputs = Map::new();
        for (title, output) in &self.reads {
            match store.get(title) {
                Some(Json::Null) | None => {
                    return Err(node_error(
                        RunErrorKind::MissingInput,
                        at.node,
                        &format!(
                            "read the flow variable \"{title}\", which holds no value (null); give it a default in the flow's `state` or write it first"
                        ),
                    ));
                }
                Some(v) => {
                    outputs.insert(output.clone(), v.clone());
                }
            }
        }
        s.done(state, at, outputs)
    }
}

fn write_error(at: At<'_>, title: &str, op: &str, value: &Json) -> crate::error::RunError {
    node_error(
        RunErrorKind::Value,
        at.node,
        &format!(
            "cannot {op} {} into flow variable \"{title}\": the value must be of the variable's type",
            weft_spec::source::describe(value)
        ),
    )
}

/// PluginGetChatHistoryNode (FORMAT.md 11.1, WayFlow's GetChatHistoryStep) over the run's
/// conversation.
pub(crate) struct ChatHistoryOp {
    pub(crate) node: ChatHistoryNode,
}

impl ChatHistoryOp {
    pub(crate) fn plan(node: &ChatHistoryNode) -> ChatHistoryOp {
        ChatHistoryOp { node: node.clone() }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let c = &self.node;
        let mut chosen: Vec<&crate::state::ConversationMessage> =
            state.conversation(at.fid).iter().filter(|m| c.types.as_ref().is_none_or(|t| t.contains(&m.message_type))).collect();
        if c.last {
            chosen.reverse();
        }
        let chosen: Vec<_> = chosen.into_iter().skip(c.offset).take(c.n).collect();
        let mut items: Vec<Json> =
            chosen.iter().map(|m| serde_json::json!({"message_type": m.message_type, "content": m.content})).collect();
        if c.last {
            items.reverse();
        }
        let value = match &c.template {
            None => Json::Array(items),
            Some(t) => {
                let mut vars = vars;
                vars.insert("chat_history".into(), Json::Array(items));
                let text = t.render(&vars).map_err(|e| crate::error::RunError::template(at.node, "output_template", &e))?;
                Json::String(text)
            }
        };
        s.done(state, at, single(&c.output, value))
    }
}
