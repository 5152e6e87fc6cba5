//! One process per state file: `weft run` and `weft resume` lock the state file they write
//! while they run, so a second `weft resume` of the same file is refused (naming the holder's
//! PID) instead of making every call again beside the first.
//!
//! The lock is an advisory lock (`flock`) on a file beside the state file, `.<name>.lock`,
//! holding the holder's PID. The state file itself cannot carry the lock: it is replaced by a
//! rename at every checkpoint. The lock file stays behind when the process exits (removing it
//! would race with a process that just opened it); the operating system releases the lock
//! whatever way the process ends, `kill -9` included.

use anyhow::Context;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock on a state file; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// The lock file of a state file: `.<name>.lock` in the same folder.
pub fn lock_path(state: &Path) -> PathBuf {
    let name = state.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".to_owned());
    let folder = match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    folder.join(format!(".{name}.lock"))
}

impl StateLock {
    /// Locks `state` for this process, or says which process holds it (a usage error, exit 2).
    pub fn acquire(state: &Path) -> anyhow::Result<StateLock> {
        let path = lock_path(state);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {} of the state file {}", path.display(), state.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another weft process".to_owned(),
                    pid => format!("weft process {pid}"),
                };
                anyhow::bail!(
                    "the state file {} is in use by {holder}, which is running or resuming it; wait for it to end (or stop it), then try again",
                    state.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock the state file {} (through {})", state.display(), path.display()));
            }
        }
        let pid = std::process::id().to_string();
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(pid.as_bytes()));
        written.with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = dir.path().join("flow.state.json");
        let held = StateLock::acquire(&state).unwrap_or_else(|e| panic!("{e}"));
        let e = StateLock::acquire(&state).expect_err("a second lock must be refused");
        let text = e.to_string();
        assert!(text.contains(&format!("in use by weft process {}", std::process::id())), "{text}");
        assert!(text.contains("flow.state.json"), "{text}");
        drop(held);
        StateLock::acquire(&state).unwrap_or_else(|e| panic!("released on drop: {e}"));
        assert_eq!(lock_path(&state), dir.path().join(".flow.state.json.lock"));
    }
}
