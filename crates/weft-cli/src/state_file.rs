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
//! `--llm` URL: from `--llm` again), and every known secret is masked from the file
//! ([`crate::scrub`]). A state file is as trusted as a script: it names the flow, the tools
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

/// Writes a state file atomically: a temporary file in the same folder, then a rename, so a
/// crash never leaves half a file in place of the previous one.
pub fn write(path: &Path, file: &StateFile) -> anyhow::Result<()> {
    // No secret is stored, whatever a value or an error message holds.
    let value = crate::scrub::to_json(file).context("serializing the run state")?;
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
