//! PluginExtractNode (FORMAT.md 11.1, WayFlow's ExtractValueFromJsonStep): values taken from the
//! JSON pieces of a text by jq queries, a piece a query raises an error on repaired by an LLM when
//! the node has `retry: true` and an `llm_config` (WayFlow's `edit_json`).

use super::At;
use super::llm::{meta, model_answered, model_call, model_for};
use crate::check::{Checked, Place};
use crate::effect::{Effect, EffectResult};
use crate::error::RunErrorKind;
use crate::plan::Compiler;
use crate::sched::{Res, Sched, node_error};
use crate::state::{Call, ExtractScan, Position, RunState};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::ExtractNode;
use weft_llm::limit::Limiter;
use weft_llm::{ChatMessage, ChatModel, ChatRequest, RequestMeta, Role};
use weft_prompt::{First, py_json_dumps};
use weft_spec::CompId;

/// PluginExtractNode.
pub(crate) struct ExtractOp {
    queries: Vec<(String, weft_prompt::JqQuery)>,
    input: String,
    repair: Option<Repair>,
}

/// The model that repairs pieces, under its endpoint's limiter.
struct Repair {
    model: Arc<dyn ChatModel>,
    limiter: Arc<Limiter>,
    generation: Map<String, Json>,
}

impl ExtractOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, e: &ExtractNode) -> Option<ExtractOp> {
        let repair = match &e.repair {
            Some(r) => {
                let model = model_for(c, n, r.llm_config)?;
                let limiter = c.inputs.limits.get(model.endpoint());
                Some(Repair { model, limiter, generation: r.generation.clone() })
            }
            None => None,
        };
        Some(ExtractOp { queries: e.queries.clone(), input: e.input.clone(), repair })
    }

    /// Each output takes the first non-null result of its query over the text's JSON pieces;
    /// an output no piece gives takes its declared default, else the node fails. With a repair
    /// model, a query that raises or yields nothing sends the piece to the model, whose answer
    /// replaces the piece for the outputs after it (as WayFlow does: the output whose query
    /// failed is not asked again of the repaired piece).
    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let text = match vars.get(&self.input) {
            Some(Json::String(t)) => t.clone(),
            Some(other) => py_json_dumps(other),
            None => String::new(),
        };
        let pieces = json_pieces(&text);
        if self.repair.is_none() {
            let mut found = Map::new();
            for piece in &pieces {
                for (output, query) in &self.queries {
                    if found.contains_key(output) {
                        continue;
                    }
                    match query.eval_first(piece) {
                        Ok(Some(v)) if !v.is_null() => {
                            found.insert(output.clone(), v);
                        }
                        Ok(_) => {}
                        Err(e) => return Err(node_error(s.stopped_kind(&e), at.node, &format!("the query for `{output}`: {e}"))),
                    }
                }
            }
            return self.finish(s, state, at, found);
        }
        // The pieces as the JSON texts WayFlow hands to jq (a repaired one replaces its text).
        let scan = ExtractScan { pieces: pieces.iter().map(py_json_dumps).collect(), piece: 0, output: 0, found: Map::new() };
        self.scan(s, state, at, scan)
    }

    /// Goes on from where `scan` stands: to the end (the node finishes), or to the next failing
    /// query (the repair call goes out).
    fn scan(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, mut scan: ExtractScan) -> Res<()> {
        while scan.piece < scan.pieces.len() {
            while let Some((output, query)) = self.queries.get(scan.output) {
                scan.output += 1;
                if scan.found.contains_key(output) {
                    continue;
                }
                // jq reads the text as JSON: a repaired text that is not JSON raises too.
                let first = match serde_json::from_str::<Json>(&scan.pieces[scan.piece]) {
                    Ok(piece) => query
                        .eval(&piece)
                        .map_err(|e| node_error(s.stopped_kind(&e), at.node, &format!("the query for `{output}`: {e}")))?,
                    Err(e) => First::Raised(e.to_string()),
                };
                match first {
                    First::Value(v) if !v.is_null() => {
                        scan.found.insert(output.clone(), v);
                    }
                    First::Value(_) => {}
                    // Python's `.first()` raises StopIteration, whose text is empty.
                    First::Empty => return self.ask(s, state, at, scan, String::new()),
                    First::Raised(error) => return self.ask(s, state, at, scan, error),
                }
            }
            scan.piece += 1;
            scan.output = 0;
        }
        s.stop_clock(state, at.fid);
        self.finish(s, state, at, scan.found)
    }

    /// Outputs no piece gave take their declared default; one without a default fails the node,
    /// as WayFlow's flow executor refuses a step output that is missing and has no default.
    fn finish(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, mut found: Map<String, Json>) -> Res<()> {
        for (output, _) in &self.queries {
            if !found.contains_key(output) {
                let external = crate::sched::external(at.node, output);
                // An output that is not declared is read by nothing.
                let Some(p) = at.node.outputs.iter().find(|p| p.title() == external) else { continue };
                let Some(default) = p.default() else {
                    return Err(node_error(
                        RunErrorKind::Value,
                        at.node,
                        &format!(
                            "the query for `{output}` found no value in the text, and output \"{external}\" has no default (WayFlow raises ValueError: the output is required). Give the output a default, or make the text hold that value"
                        ),
                    ));
                };
                found.insert(output.clone(), default.clone());
            }
        }
        s.done(state, at, found)
    }

    /// Sends the current piece and the query's error to the repair model.
    fn ask(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, scan: ExtractScan, error: String) -> Res<()> {
        let Some(repair) = &self.repair else { return Err(super::mismatched_call()) };
        let meta = meta(state, at.fid, at.node)?;
        let call_index = meta.call_index;
        let request = self.request(&scan, &error, meta);
        // The node timeout runs from the first repair, for all of them.
        if crate::sched::get_frame(state, at.fid)?.clock.is_none() {
            s.start_clock(state, at.fid);
        }
        let effect = model_call(s, state, at, (&repair.model, &repair.limiter), request, 1);
        s.perform(state, at.fid, at.node, Call::ExtractRepair { call_index, scan, error }, effect);
        Ok(())
    }

    /// WayFlow's request: one user message, `JSON_CORRECTION_PROMPT` rendered with the piece,
    /// the error and the outputs' names.
    fn request(&self, scan: &ExtractScan, error: &str, meta: RequestMeta) -> ChatRequest {
        let keys: String = self.queries.iter().map(|(o, _)| format!(" {o}, ")).collect();
        let prompt = format!(
            "\nYou receive a json string, and an error that is produced, when trying to parse that text.\nYou should edit that json blob so that the error is resolved.\nThe keys in the json string must match the ones provided here.\n\n---------------\nJson string:\n\n{}\n---------------\nerror:\n\n{error}\n\n\n----------------\nList of acceptable keys in the string:\n{keys}\n\n----------------\n(reminder to respond in a JSON blob no matter what)\nAssistant:",
            scan.pieces.get(scan.piece).map_or("", String::as_str)
        );
        let generation = self.repair.as_ref().map(|r| r.generation.clone()).unwrap_or_default();
        ChatRequest { generation, meta, messages: vec![ChatMessage::new(Role::User, prompt)], ..ChatRequest::default() }
    }

    /// The repair came back: its first blob replaces the piece, and the scan goes on.
    pub(crate) fn complete(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, call: Call, result: EffectResult) -> Res<()> {
        let (Call::ExtractRepair { mut scan, .. }, EffectResult::Llm(result)) = (call, result) else {
            return Err(super::mismatched_call());
        };
        let response = model_answered(s, state, at, result)?;
        let Some(blob) = json_blobs(&response.text).into_iter().next() else {
            return Err(node_error(
                RunErrorKind::Value,
                at.node,
                "the model answered nothing to repair a JSON piece with (WayFlow fails here too, with IndexError); check the model of `llm_config`",
            ));
        };
        if let Some(piece) = scan.pieces.get_mut(scan.piece) {
            *piece = blob.to_owned();
        }
        self.scan(s, state, at, scan)
    }

    /// The repair call again (a resume), with the call index it had.
    pub(crate) fn remake(&self, s: &mut Sched<'_>, state: &RunState, at: At<'_>, call: &Call) -> Res<Effect> {
        let (Call::ExtractRepair { call_index, scan, error }, Some(repair)) = (call, &self.repair) else {
            return Err(super::mismatched_call());
        };
        let node_path = format!("{}/{}", crate::sched::get_frame(state, at.fid)?.path, at.node.name);
        let meta = RequestMeta { node: at.node.name.clone(), node_path, call_index: *call_index, batch_index: None };
        Ok(model_call(s, state, at, (&repair.model, &repair.limiter), self.request(scan, error, meta), 1))
    }

    pub(crate) fn check_position(&self, place: &Place<'_>, position: &Position) -> Checked {
        match position {
            Position::Busy { call, .. } => match &**call {
                Call::ExtractRepair { scan, .. } if self.repair.is_some() && scan.piece < scan.pieces.len() => Ok(()),
                _ => place.unexpected(position),
            },
            other => place.unexpected(other),
        }
    }
}

/// The JSON values of a text as ExtractValueFromJsonStep finds them: the pieces between code
/// fences, a leading `json` tag removed, each read leniently (repaired); pieces that are no JSON
/// are dropped.
pub(crate) fn json_pieces(text: &str) -> Vec<Json> {
    text.split("```")
        .filter_map(|region| {
            let piece = strip_json_tag(region).unwrap_or(region).trim();
            if piece.is_empty() {
                return None;
            }
            weft_prompt::parse_lenient(piece).filter(|v| v != &Json::String(String::new()))
        })
        .collect()
}

/// WayFlow's `get_parsed_json_blobs`: the regions of the stripped text between code fences, a
/// leading `json` tag removed (a region without one is kept as it is), empty ones dropped.
fn json_blobs(text: &str) -> Vec<&str> {
    text.trim().split("```").map(|region| strip_json_tag(region).unwrap_or(region)).filter(|b| !b.is_empty()).collect()
}

/// `^\s*\[?\s*(?:json|JSON)\s*]?\s*\:?\s*([\s\S]+?)\s*$`: what follows a leading `json` tag.
fn strip_json_tag(region: &str) -> Option<&str> {
    let mut rest = region.trim_start();
    if let Some(r) = rest.strip_prefix('[') {
        rest = r.trim_start();
    }
    rest = rest.strip_prefix("json").or_else(|| rest.strip_prefix("JSON"))?.trim_start();
    if let Some(r) = rest.strip_prefix(']') {
        rest = r.trim_start();
    }
    if let Some(r) = rest.strip_prefix(':') {
        rest = r.trim_start();
    }
    let rest = rest.trim_end();
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_cut_as_wayflow_cuts_them() {
        assert_eq!(json_blobs("```json\n{\"a\": 1}\n```"), vec!["{\"a\": 1}"]);
        assert_eq!(json_blobs("  {\"a\": 1}  "), vec!["{\"a\": 1}"]);
        // Text before a fence is a region of its own, and comes first.
        assert_eq!(json_blobs("Here:\n```\n{\"a\": 1}\n```")[0], "Here:\n");
        assert!(json_blobs("   ").is_empty());
    }
}
