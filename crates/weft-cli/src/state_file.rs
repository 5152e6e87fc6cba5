//! The run-state file `weft run` writes when a run waits for input, and `weft resume` reads:
//! the library's persisted form ([`weft_exec::persist::StateFile`], format 2; format 1 files
//! are migrated), written atomically with secrets masked.
//!
//! Paths are absolute, so a run can be resumed from any directory. Secrets are never stored:
//! `weft resume` reads them again from `--secret` and `WEFT_SECRET_*` (credentials in an
//! `--llm` URL: from `--llm` again), and every known secret is masked from the parts of the file
//! that hold data (values, inputs, outputs, messages, pending requests and calls, the error, the
//! `--llm` choice; [`scrub`]), never from its structure (frame ids and paths, node names, keys,
//! the flow path and hash, file paths), which `weft resume` needs as written. A state file is as trusted as a script: it names the flow, the tools
//! file and the endpoints a resumed run uses; `weft resume --tools/--llm/--allow-host` override
//! them.

use anyhow::Context;
use serde_json::{Map, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use weft_exec::persist::{BATCH_STATE_FORMAT, ReadError, STATE_FILE_FORMAT};
pub use weft_exec::persist::{BatchStateFile, ResumeOptions, StateFile};

/// Reads a state file as JSON (a run's or a batch's). Every failure is a usage or IO error
/// (exit 2) naming the file.
pub fn read_json(path: &Path) -> anyhow::Result<Json> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the state file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| not_state(path))
}

fn not_state(path: &Path) -> String {
    format!(
        "{} is not a weft state file: expected a JSON object with \"weft_state\": {STATE_FILE_FORMAT} (a run's, as `weft run` writes when a run stops or waits for input) or \"weft_batch_state\": {BATCH_STATE_FORMAT} (a batch's)",
        path.display()
    )
}

/// Reads a run's state file (this format, or format 1 migrated) from its JSON.
pub fn from_json(path: &Path, value: Json) -> anyhow::Result<StateFile> {
    match StateFile::from_json(value) {
        Ok(file) => Ok(file),
        Err(ReadError::NotState(_)) => anyhow::bail!(not_state(path)),
        Err(e @ ReadError::Format(_)) => anyhow::bail!("{}: {e}", path.display()),
        Err(ReadError::Damaged(why)) => anyhow::bail!("{} is a damaged weft state file: {why}", path.display()),
    }
}

/// Reads a batch's state file from its JSON.
pub fn batch_from_json(path: &Path, value: Json) -> anyhow::Result<BatchStateFile> {
    match BatchStateFile::from_json(value) {
        Ok(file) => Ok(file),
        Err(ReadError::NotState(_)) => anyhow::bail!(not_state(path)),
        Err(e @ ReadError::Format(_)) => anyhow::bail!("{}: {e}", path.display()),
        Err(ReadError::Damaged(why)) => anyhow::bail!("{} is a damaged weft batch state file: {why}", path.display()),
    }
}

/// The stored limits as the flags name them.
pub fn limits(options: &ResumeOptions) -> anyhow::Result<crate::run::LimitArgs> {
    serde_json::from_value(Json::Object(options.limits.clone())).context("the stored limits are not valid")
}

/// The limits to store.
pub fn limits_map(limits: &crate::run::LimitArgs) -> Map<String, Json> {
    match serde_json::to_value(limits) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Masks `secrets` in the data of a serialized [`StateFile`]: the `--llm` choice, the run's
/// inputs, every frame's inputs, output values and position (a fan-out's input values and
/// finished outputs, a pending call's request and arguments), the conversation, pending input
/// requests, the outputs and the error. Everything else is structure `weft resume` reads back
/// as written (ids, paths, node and output names, counters, the flow and its hash), and object
/// keys of the state itself are never touched. Data is masked as data (a secret shorter than 8
/// characters is left alone there); the error, free text, of every secret.
pub(crate) fn scrub(file: &mut Json, secrets: &weft_guard::Secrets) {
    if secrets.is_empty() {
        return;
    }
    let data = |value: &mut Json| secrets.redact(value);
    let values = |map: Option<&mut Json>| {
        if let Some(Json::Object(map)) = map {
            map.values_mut().for_each(data);
        }
    };
    if let Some(llm) = file.pointer_mut("/options/llm") {
        data(llm);
    }
    if let Some(state) = file.get_mut("state") {
        scrub_state(state, secrets);
    }
    // A batch's: the inputs every line has, each stopped run, each held result.
    values(file.get_mut("base"));
    if let Some(Json::Object(runs)) = file.get_mut("runs") {
        runs.values_mut().for_each(|state| scrub_state(state, secrets));
    }
    if let Some(Json::Array(held)) = file.get_mut("held") {
        for result in held {
            values(result.get_mut("outputs"));
            if let Some(error) = result.get_mut("error") {
                redact_text(error, secrets);
            }
        }
    }
}

/// Masks `secrets` in the data of one run state (see [`scrub`]).
fn scrub_state(state: &mut Json, secrets: &weft_guard::Secrets) {
    let data = |value: &mut Json| secrets.redact(value);
    let values = |map: Option<&mut Json>| {
        if let Some(Json::Object(map)) = map {
            map.values_mut().for_each(data);
        }
    };
    values(state.get_mut("inputs"));
    if let Some(Json::Object(frames)) = state.get_mut("frames") {
        for frame in frames.values_mut() {
            values(frame.get_mut("inputs"));
            if let Some(Json::Object(nodes)) = frame.get_mut("values") {
                for outputs in nodes.values_mut().filter_map(Json::as_object_mut) {
                    outputs.values_mut().filter_map(|stamped| stamped.get_mut("value")).for_each(data);
                }
            }
            let Some(position) = frame.get_mut("position") else { continue };
            values(position.get_mut("vars"));
            if let Some(Json::Array(done)) = position.get_mut("done") {
                // Pairs of an index and the outputs of that branch or item.
                done.iter_mut().for_each(|pair| values(pair.get_mut(1)));
            }
            if let Some(call) = position.get_mut("call") {
                // A format 1 call's request; the answers of a call's re-asks.
                for field in ["request", "reasks"] {
                    if let Some(value) = call.get_mut(field) {
                        data(value);
                    }
                }
                values(call.get_mut("args"));
                // An agent's server tool calls and the calls still queued.
                if let Some(Json::Array(calls)) = call.get_mut("calls") {
                    calls.iter_mut().for_each(|c| values(c.get_mut("args")));
                }
                if let Some(turn) = call.get_mut("turn") {
                    scrub_turn(turn, secrets);
                }
                // The answers of an agent's summarizing calls.
                if let Some(summaries) = call.get_mut("summaries") {
                    data(summaries);
                }
            }
        }
    }
    if let Some(Json::Array(messages)) = state.get_mut("messages") {
        scrub_messages(messages, secrets);
    }
    if let Some(Json::Object(pending)) = state.get_mut("pending") {
        for request in pending.values_mut() {
            if let Some(message) = request.get_mut("message") {
                data(message);
            }
            values(request.get_mut("args"));
            if let Some(Json::Array(calls)) = request.get_mut("calls") {
                calls.iter_mut().for_each(|c| values(c.get_mut("args")));
            }
        }
    }
    if let Some(Json::Object(loops)) = state.get_mut("agent_loops") {
        loops.values_mut().for_each(|turn| scrub_turn(turn, secrets));
    }
    // The summaries agents' transforms keep.
    if let Some(Json::Object(summaries)) = state.get_mut("summaries") {
        summaries.values_mut().filter_map(|s| s.get_mut("content")).for_each(data);
    }
    // The conversations of agents called as tools: their inputs and messages.
    if let Some(Json::Object(conversations)) = state.get_mut("conversations") {
        for conversation in conversations.values_mut() {
            values(conversation.get_mut("inputs"));
            if let Some(Json::Array(messages)) = conversation.get_mut("messages") {
                scrub_messages(messages, secrets);
            }
        }
    }
    if let Some(outcome) = state.get_mut("outcome") {
        values(outcome.get_mut("outputs"));
        // The error's text fields (message, the provider's message...), of every secret.
        if let Some(error) = outcome.get_mut("error") {
            redact_text(error, secrets);
        }
    }
}

/// Masks `secrets` in conversation messages: their text and the arguments of tool calls.
fn scrub_messages(messages: &mut [Json], secrets: &weft_guard::Secrets) {
    for m in messages {
        if let Some(content) = m.get_mut("content") {
            secrets.redact(content);
        }
        if let Some(Json::Array(calls)) = m.get_mut("tool_calls") {
            calls.iter_mut().filter_map(|c| c.get_mut("arguments")).for_each(|a| secrets.redact(a));
        }
    }
}

/// Masks `secrets` in an agent's loop: the arguments of the calls queued, the reasons given.
fn scrub_turn(turn: &mut Json, secrets: &weft_guard::Secrets) {
    if let Some(Json::Array(queue)) = turn.get_mut("queue") {
        queue.iter_mut().filter_map(|c| c.get_mut("arguments")).for_each(|a| secrets.redact(a));
    }
    if let Some(Json::Array(decisions)) = turn.get_mut("decisions") {
        decisions.iter_mut().filter_map(|d| d.get_mut("reason")).for_each(|r| secrets.redact(r));
    }
}

fn redact_text(value: &mut Json, secrets: &weft_guard::Secrets) {
    match value {
        Json::String(s) => *s = secrets.redact_str(s).into_owned(),
        Json::Array(items) => items.iter_mut().for_each(|v| redact_text(v, secrets)),
        Json::Object(map) => map.values_mut().for_each(|v| redact_text(v, secrets)),
        _ => {}
    }
}

/// Writes a state file atomically: a temporary file in the same folder, then a rename, so a
/// crash never leaves half a file in place of the previous one.
pub fn write(path: &Path, file: &StateFile) -> anyhow::Result<()> {
    // No secret is stored, whatever a value or an error message holds.
    let value = file.to_json_with(|value| scrub(value, &crate::scrub::current())).context("serializing the run state")?;
    write_json(path, &value)
}

/// Writes a batch's state file atomically, secrets masked.
pub fn write_batch(path: &Path, file: &BatchStateFile) -> anyhow::Result<()> {
    let value = file.to_json_with(|value| scrub(value, &crate::scrub::current())).context("serializing the batch state")?;
    write_json(path, &value)
}

fn write_json(path: &Path, value: &Json) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("serializing the state")?;
    text.push('\n');
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".to_owned());
    // One temporary name per write: the checkpoint writer and the command may both write.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write the state file {}", path.display()));
    }
    Ok(())
}
