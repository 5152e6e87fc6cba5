//! The run-state file `weft run` writes when a run waits for input, and `weft resume` reads.
//!
//! ```json
//! {"weft_state": 1, "flow": "/abs/flow.json", "flow_hash": "...",
//!  "options": {"llm": "simulated", "tools": null, "max_steps": 10000, "events": null, "refs": []},
//!  "state": { ...the engine's RunState... }}
//! ```
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
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};
use weft_exec::RunState;

/// The format of the state file (`weft_state`); another value is refused.
pub const STATE_FILE_FORMAT: u32 = 1;

/// The whole state file.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateFile {
    /// [`STATE_FILE_FORMAT`].
    pub weft_state: u32,
    /// The flow file, absolute.
    pub flow: PathBuf,
    /// The flow's content hash (informational: the run state carries it too, and
    /// `Plan::resume` checks that one).
    pub flow_hash: String,
    /// How the run was started, minus secrets.
    pub options: StoredOptions,
    /// The engine's run state.
    pub state: RunState,
}

/// The options of `weft run` a resumed run needs again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredOptions {
    /// The `--llm` choice, as `LlmChoice` displays it (script paths absolute).
    pub llm: String,
    /// The tools file, absolute.
    pub tools: Option<PathBuf>,
    /// The step budget.
    pub max_steps: u64,
    /// The events file, absolute; a resumed run appends to it.
    pub events: Option<PathBuf>,
    /// The `--refs` registries, absolute.
    pub refs: Vec<PathBuf>,
    /// The provider-wide limits and the node timeout.
    #[serde(default)]
    pub limits: crate::run::LimitArgs,
    /// The `--allow-host` patterns (none: no restriction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_hosts: Vec<String>,
}

/// Reads a state file. Every failure is a usage or IO error (exit 2) naming the file.
pub fn read(path: &Path) -> anyhow::Result<StateFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the state file {}", path.display()))?;
    let not_state = || {
        format!(
            "{} is not a weft state file: expected a JSON object with \"weft_state\": {STATE_FILE_FORMAT}, as `weft run` writes when a run waits for input",
            path.display()
        )
    };
    let value: Json = serde_json::from_str(&text).with_context(not_state)?;
    match value.get("weft_state") {
        Some(Json::Number(n)) if n.as_u64() == Some(u64::from(STATE_FILE_FORMAT)) => {}
        Some(Json::Number(n)) => anyhow::bail!(
            "{} has state file format {n}, this weft reads format {STATE_FILE_FORMAT}; resume it with the weft that wrote it",
            path.display()
        ),
        _ => anyhow::bail!(not_state()),
    }
    serde_json::from_value(value).with_context(|| format!("{} is a damaged weft state file", path.display()))
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
    let Some(state) = file.get_mut("state") else { return };
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
                if let Some(request) = call.get_mut("request") {
                    data(request);
                }
                values(call.get_mut("args"));
            }
        }
    }
    if let Some(Json::Array(messages)) = state.get_mut("messages") {
        messages.iter_mut().filter_map(|m| m.get_mut("content")).for_each(data);
    }
    if let Some(Json::Object(pending)) = state.get_mut("pending") {
        for request in pending.values_mut() {
            if let Some(message) = request.get_mut("message") {
                data(message);
            }
            values(request.get_mut("args"));
        }
    }
    if let Some(outcome) = state.get_mut("outcome") {
        values(outcome.get_mut("outputs"));
        if let Some(Json::String(error)) = outcome.get_mut("error") {
            *error = secrets.redact_str(error).into_owned();
        }
    }
}

/// Writes a state file atomically: a temporary file in the same folder, then a rename, so a
/// crash never leaves half a file in place of the previous one.
pub fn write(path: &Path, file: &StateFile) -> anyhow::Result<()> {
    // No secret is stored, whatever a value or an error message holds.
    let mut value = serde_json::to_value(file).context("serializing the run state")?;
    scrub(&mut value, &crate::scrub::current());
    let mut text = serde_json::to_string_pretty(&value).context("serializing the run state")?;
    text.push('\n');
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".to_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
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
