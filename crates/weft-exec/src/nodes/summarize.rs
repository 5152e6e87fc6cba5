//! Agents' message transforms (AGENTS.md 1.12, WayFlow's `wayflowcore/transforms/
//! summarization.py`): before every LLM call of an agent, what its model is sent (never the
//! conversation kept) goes through its transforms in order. A MessageSummarizationTransform
//! replaces each message longer than `max_message_size` characters by a summary; a
//! ConversationSummarizationTransform replaces the older messages by one user message with
//! their summary when there are too many. Summaries come from LLM calls of the transform's own
//! model, each one user message of several parts, long content cut into chunks, and are kept
//! (WayFlow's cache in the transform's datastore) unless the datastore is null.
//!
//! Without IO: [`pass`] runs the transforms over the history with the answers of the
//! summarizing calls made so far (in order) and a snapshot of the kept summaries, and either
//! asks for the next summarizing call or gives the history as the model sees it and what to
//! keep. The agent makes each call asked for and runs the pass again with one more answer, so a
//! run stopped between two calls resumes with the answers it has (they are in its state).

use crate::plan::Compiler;
use crate::state::{CachedSummary, ConversationMessage, RunState};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_flow::node::{SummaryCache, Transform, TransformKind};
use weft_llm::ChatModel;
use weft_spec::CompId;

/// The estimated tokens of a conversation's chunk (WayFlow's `_TOKENS_PER_CHUNK`: 20,000
/// characters).
const TOKENS_PER_CHUNK: usize = tokens_in_chars(20_000);

/// A transform, its model bound at plan time.
pub(crate) struct TransformOp {
    /// Its name (the summarizing calls are made as `<agent node>/<name>`, for scripts).
    pub(crate) name: String,
    /// Its component id (the key of what it keeps).
    pub(crate) id: String,
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) limiter: Arc<weft_llm::limit::Limiter>,
    pub(crate) generation: Map<String, Json>,
    kind: TransformKind,
    instructions: String,
    template: Arc<weft_prompt::Template>,
    cache: Option<SummaryCache>,
}

impl TransformOp {
    pub(crate) fn plan(c: &mut Compiler<'_>, n: CompId, t: &Transform) -> Option<TransformOp> {
        let model = super::llm::model_for(c, n, t.llm_config)?;
        let limiter = c.inputs.limits.get(model.endpoint());
        let comp = c.comp(t.comp);
        Some(TransformOp {
            name: comp.name.clone(),
            id: comp.id.clone(),
            model,
            limiter,
            generation: t.generation.clone(),
            kind: t.kind,
            instructions: t.instructions.clone(),
            template: Arc::clone(&t.template),
            cache: t.cache,
        })
    }
}

/// What a pass of the transforms comes to.
pub(crate) enum Pass {
    /// The summarizing call to make next: the transform (its index) and the parts of the one
    /// user message it sends.
    Ask { transform: usize, parts: Vec<String> },
    /// The history as the model sees it, and what the transforms keep: summaries made (by key)
    /// and summaries used.
    Done { history: Vec<ConversationMessage>, made: Vec<(String, CachedSummary)>, used: Vec<String> },
}

/// Why a pass stopped early.
enum Stop {
    /// It needs the answer of a summarizing call it has not got.
    Ask,
    /// A template failed to render.
    Failed(String),
}

type Step<T> = Result<T, Stop>;

/// Runs the transforms over `history` (what the agent's model would be sent, in WayFlow's
/// message types) for the agent whose conversation is `conversation`, with the answers of the
/// summarizing calls made so far and the summaries kept (`cache`, not changed by the pass).
/// `Err` when a summary template fails to render.
pub(crate) fn pass(
    transforms: &[TransformOp],
    conversation: &str,
    history: Vec<ConversationMessage>,
    cache: &BTreeMap<String, CachedSummary>,
    answers: &[String],
) -> Result<Pass, String> {
    let mut run = Run { conversation, cache, answers, next: 0, ask: None, made: Vec::new(), used: Vec::new() };
    let mut history = history;
    for (i, t) in transforms.iter().enumerate() {
        let step = match t.kind {
            TransformKind::Messages { max_message_size } => run.messages(i, t, max_message_size, history),
            TransformKind::Conversation { max_num_messages, max_num_characters, min_num_messages } => {
                run.conversation(i, t, (max_num_messages, max_num_characters, min_num_messages), history)
            }
        };
        history = match step {
            Ok(h) => h,
            Err(Stop::Ask) => {
                let (transform, parts) = run.ask.take().unwrap_or_default();
                return Ok(Pass::Ask { transform, parts });
            }
            Err(Stop::Failed(why)) => return Err(why),
        };
    }
    Ok(Pass::Done { history, made: run.made, used: run.used })
}

/// Keeps what a pass made and used (at time `now_us`): summaries older than their transform's
/// lifetime go first, the least recently used one when a transform keeps more than its size.
pub(crate) fn keep(state: &mut RunState, transforms: &[TransformOp], made: Vec<(String, CachedSummary)>, used: &[String], now_us: u64) {
    for key in used {
        if let Some(entry) = state.summaries.get_mut(key) {
            entry.used_us = now_us;
        }
    }
    for (key, mut entry) in made {
        let Some(t) = transforms.iter().find(|t| t.id == entry.transform) else { continue };
        let Some(cache) = t.cache else { continue };
        if let Some(max) = cache.max_size {
            let kept = state.summaries.values().filter(|e| e.transform == t.id).count() as u64;
            if kept > max
                && let Some(oldest) =
                    state.summaries.iter().filter(|(_, e)| e.transform == t.id).min_by_key(|(_, e)| e.used_us).map(|(k, _)| k.clone())
            {
                state.summaries.remove(&oldest);
            }
        }
        entry.created_us = now_us;
        entry.used_us = now_us;
        state.summaries.insert(key, entry);
    }
}

/// Forgets the summaries of the agent's conversation `conversation` older than their
/// transform's lifetime (at the start of a pass, so the pass sees one snapshot).
pub(crate) fn expire(state: &mut RunState, transforms: &[TransformOp], conversation: &str, now_us: u64) {
    let prefix = format!("{conversation}/");
    state.summaries.retain(|key, entry| {
        if !key.starts_with(&prefix) {
            return true;
        }
        let lifetime = transforms.iter().find(|t| t.id == entry.transform).and_then(|t| t.cache).and_then(|c| c.max_lifetime_s);
        lifetime.is_none_or(|s| now_us.saturating_sub(entry.created_us) <= s.saturating_mul(1_000_000))
    });
}

/// WayFlow's estimate of the tokens in `n` characters.
const fn tokens_in_chars(n: usize) -> usize {
    n.saturating_add(3) / 4
}

/// The estimated tokens of text parts.
fn tokens(parts: &[String]) -> usize {
    parts.iter().map(|p| tokens_in_chars(p.chars().count())).sum()
}

/// A pass in progress.
struct Run<'a> {
    conversation: &'a str,
    cache: &'a BTreeMap<String, CachedSummary>,
    answers: &'a [String],
    /// The next answer to use.
    next: usize,
    /// The call asked for when the answers ran out.
    ask: Option<(usize, Vec<String>)>,
    made: Vec<(String, CachedSummary)>,
    used: Vec<String>,
}

impl Run<'_> {
    /// The answer of the next summarizing call (transform `t`, one user message of `parts`).
    fn answer(&mut self, t: usize, parts: Vec<String>) -> Step<String> {
        match self.answers.get(self.next) {
            Some(a) => {
                self.next += 1;
                Ok(a.clone())
            }
            None => {
                self.ask = Some((t, parts));
                Err(Stop::Ask)
            }
        }
    }

    /// WayFlow's `_Summarizer.summarize`: the contents in chunks of at most about `max_tokens`,
    /// each summarized with the summary of the chunks before, the last summary rendered into
    /// the transform's template.
    fn summarize(&mut self, i: usize, t: &TransformOp, contents: Vec<String>, max_tokens: usize) -> Step<String> {
        let mut chunk: Vec<String> = Vec::new();
        let mut in_chunk = 0;
        let mut summary = "Nothing summarized yet".to_owned();
        for content in contents {
            in_chunk += tokens_in_chars(content.chars().count());
            if in_chunk > max_tokens && !chunk.is_empty() {
                summary = self.summarize_chunk(i, t, &summary, std::mem::take(&mut chunk))?;
                in_chunk = 0;
            }
            chunk.push(content);
        }
        if !chunk.is_empty() {
            summary = self.summarize_chunk(i, t, &summary, chunk)?;
        }
        let mut vars = Map::new();
        vars.insert("summary".into(), Json::String(summary));
        t.template.render(&vars).map_err(|e| Stop::Failed(format!("cannot render the summary template of transform \"{}\": {e}", t.name)))
    }

    fn summarize_chunk(&mut self, i: usize, t: &TransformOp, previous: &str, chunk: Vec<String>) -> Step<String> {
        let mut parts = vec![format!("{}\n\nPrevious summary:\n{previous}\n\nAdded content:\n", t.instructions)];
        parts.extend(chunk);
        self.answer(i, parts)
    }

    /// A kept summary of transform `t` under `key`, if it keeps them and has it.
    fn kept(&mut self, t: &TransformOp, key: &str) -> Option<CachedSummary> {
        t.cache?;
        let entry = self.cache.get(key).filter(|e| e.transform == t.id)?.clone();
        self.used.push(key.to_owned());
        Some(entry)
    }

    fn keep(&mut self, t: &TransformOp, key: String, content: String, prefix_size: Option<u64>) {
        if t.cache.is_some() {
            self.made.push((key, CachedSummary { transform: t.id.clone(), content, prefix_size, created_us: 0, used_us: 0 }));
        }
    }

    /// MessageSummarizationTransform: from the last message to the first, its text, then a
    /// tool result's value, summarized when longer than `max_message_size` characters.
    fn messages(
        &mut self,
        i: usize,
        t: &TransformOp,
        max_message_size: u64,
        mut history: Vec<ConversationMessage>,
    ) -> Step<Vec<ConversationMessage>> {
        let max_tokens = tokens_in_chars(usize::try_from(max_message_size).unwrap_or(usize::MAX));
        for idx in (0..history.len()).rev() {
            let contents = contents_of(&history[idx]);
            if let Some(summary) = self.message_part(i, t, contents, max_tokens, idx, "content")? {
                history[idx].content = summary;
            }
            if history[idx].message_type == "TOOL_RESULT" {
                let value = vec![stringify(&history[idx].content)];
                if let Some(summary) = self.message_part(i, t, value, max_tokens, idx, "toolres")? {
                    history[idx].content = super::agent::tool_output(&Json::String(summary));
                }
            }
        }
        Ok(history)
    }

    /// A part of message `idx` summarized, when it is too long.
    fn message_part(
        &mut self,
        i: usize,
        t: &TransformOp,
        contents: Vec<String>,
        max_tokens: usize,
        idx: usize,
        part: &str,
    ) -> Step<Option<String>> {
        if tokens(&contents) <= max_tokens {
            return Ok(None);
        }
        let key = format!("{}/{}/{idx}_{part}", self.conversation, t.id);
        if let Some(kept) = self.kept(t, &key) {
            return Ok(Some(kept.content));
        }
        let summary = self.summarize(i, t, contents, max_tokens)?;
        self.keep(t, key, summary.clone(), None);
        Ok(Some(summary))
    }

    /// ConversationSummarizationTransform: when the history is too long, the messages before
    /// the last `min_num_messages` (moved earlier so that no tool result kept loses its
    /// request) are replaced by one user message with their summary (extending a kept one).
    fn conversation(
        &mut self,
        i: usize,
        t: &TransformOp,
        (max_messages, max_characters, min_messages): (Option<u64>, Option<u64>, u64),
        messages: Vec<ConversationMessage>,
    ) -> Step<Vec<ConversationMessage>> {
        let too_long = |list: &[ConversationMessage]| match (max_messages, max_characters) {
            (Some(max), _) => list.len() as u64 > max,
            (None, Some(max)) => characters(list) as u64 > max,
            (None, None) => false,
        };
        if !too_long(&messages) {
            return Ok(messages);
        }
        let key = format!("{}/{}", self.conversation, t.id);
        let total = messages.len();
        let (previous, current) = match self.kept(t, &key) {
            Some(kept) => {
                let prefix = usize::try_from(kept.prefix_size.unwrap_or(0)).unwrap_or(usize::MAX).min(total);
                let mut current = vec![ConversationMessage::text("USER", kept.content, "")];
                current.extend(messages.into_iter().skip(prefix));
                (true, current)
            }
            None => (false, messages),
        };
        if !too_long(&current) {
            return Ok(current);
        }
        let keep = usize::try_from(min_messages).unwrap_or(usize::MAX);
        let (to_summarize, kept) = split(current, keep);
        let submits = submit_ids(&to_summarize);
        let mut contents = Vec::new();
        for (k, m) in to_summarize.iter().enumerate() {
            if !(previous && k == 0) {
                contents.push(format!("\n\n\n{}:\n\n", role(m, &submits)));
            }
            contents.extend(contents_of(m));
            if m.message_type == "TOOL_RESULT" {
                contents.push(stringify(&m.content));
            }
        }
        let summary = self.summarize(i, t, contents, TOKENS_PER_CHUNK)?;
        self.keep(t, key, summary.clone(), Some((total - kept.len().min(total)) as u64));
        let mut out = vec![ConversationMessage::text("USER", summary, "")];
        out.extend(kept);
        Ok(out)
    }
}

/// WayFlow's `_split_messages_and_guarantee_tool_calling_consistency`: all but the last `keep`
/// messages are summarized (Python's slices: none when `keep` is 0), unless a kept tool result's
/// request would be summarized: then from that request on, everything is kept.
fn split(messages: Vec<ConversationMessage>, keep: usize) -> (Vec<ConversationMessage>, Vec<ConversationMessage>) {
    let cut = if keep == 0 { 0 } else { messages.len().saturating_sub(keep) };
    let mut to_summarize = messages;
    let kept = to_summarize.split_off(cut);
    let mut requested = std::collections::HashSet::new();
    let mut missing = std::collections::HashSet::new();
    for m in &kept {
        for c in &m.tool_calls {
            requested.insert(c.id.clone());
        }
        if m.message_type == "TOOL_RESULT"
            && let Some(id) = &m.tool_call_id
            && !requested.contains(id)
        {
            missing.insert(id.clone());
        }
    }
    if missing.is_empty() {
        return (to_summarize, kept);
    }
    match to_summarize.iter().position(|m| m.tool_calls.iter().any(|c| missing.contains(&c.id))) {
        Some(idx) => {
            let mut moved = to_summarize.split_off(idx);
            moved.extend(kept);
            (to_summarize, moved)
        }
        None => (to_summarize, kept),
    }
}

/// A message's text contents, as WayFlow holds them: its text when it has one (a tool result's
/// value is not among them).
fn contents_of(m: &ConversationMessage) -> Vec<String> {
    if m.message_type == "TOOL_RESULT" || m.content.is_empty() { Vec::new() } else { vec![m.content.clone()] }
}

/// WayFlow's `stringify` of a tool result's value (stored as the model sees it: JSON).
fn stringify(content: &str) -> String {
    match serde_json::from_str::<Json>(content) {
        Ok(Json::String(s)) => s,
        Ok(value) => weft_prompt::py_json_dumps(&value),
        Err(_) => content.to_owned(),
    }
}

/// The ids of `submit_result` calls (their results are user messages in WayFlow).
fn submit_ids(messages: &[ConversationMessage]) -> std::collections::HashSet<String> {
    messages.iter().flat_map(|m| &m.tool_calls).filter(|c| c.name == "submit_result").map(|c| c.id.clone()).collect()
}

/// A message's role in WayFlow.
fn role(m: &ConversationMessage, submits: &std::collections::HashSet<String>) -> &'static str {
    match m.message_type.as_str() {
        "USER" => "user",
        "TOOL_RESULT" if m.tool_call_id.as_ref().is_some_and(|id| submits.contains(id)) => "user",
        _ => "assistant",
    }
}

/// WayFlow's `_estimate_characters_in_messages`.
fn characters(messages: &[ConversationMessage]) -> usize {
    let submits = submit_ids(messages);
    let mut n = 0;
    for m in messages {
        n += role(m, &submits).len();
        n += contents_of(m).iter().map(|c| c.chars().count()).sum::<usize>();
        for c in &m.tool_calls {
            n += c.name.chars().count() + weft_prompt::py_json_dumps(&c.arguments).chars().count();
        }
        if m.message_type == "TOOL_RESULT" {
            n += stringify(&m.content).chars().count();
        }
    }
    n
}
