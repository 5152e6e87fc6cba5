//! One process per state file: `weft run` and `weft resume` lock the state file they write
//! while they run, so a second `weft resume` of the same file is refused (naming the holder's
//! PID) instead of making every call again beside the first.
//!
//! The lock is an advisory lock (`flock`) on a file beside the state file, `.<name>.lock`,
//! holding the holder's PID. The state file itself cannot carry the lock: it is replaced by a
//! rename at every checkpoint. The holder removes the lock file when it is done, still holding
//! the lock; a process that opened the file before it was removed sees, once it has the lock,
//! that the path no longer names its file, and starts again. The operating system releases the
//! lock whatever way the process ends, `kill -9` included (the file then stays behind, and the
//! next process takes it over).

use anyhow::Context;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock on a state file; released, and its file removed, when dropped (or released when
/// the process ends).
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    _file: File,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Removed while the lock is still held (the file closes after this).
        let _ = std::fs::remove_file(&self.path);
    }
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
        // A few rounds: each lost only to a holder that removed the file just as it was opened.
        for _ in 0..8 {
            if let Some(lock) = StateLock::try_once(state, &path)? {
                return Ok(lock);
            }
        }
        anyhow::bail!("cannot lock the state file {}: its lock file {} keeps being replaced", state.display(), path.display())
    }

    /// One attempt: `None` when the file locked is no longer the one at `path`.
    fn try_once(state: &Path, path: &Path) -> anyhow::Result<Option<StateLock>> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
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
        if !same_file(&file, path) {
            return Ok(None);
        }
        let pid = std::process::id().to_string();
        let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(pid.as_bytes()));
        written.with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(Some(StateLock { path: path.to_path_buf(), _file: file }))
    }
}

/// Whether `path` still names the open `file` (it was not removed and made again since).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
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
        assert!(!lock_path(&state).exists(), "the lock file is removed when released");
        let again = StateLock::acquire(&state).unwrap_or_else(|e| panic!("released on drop: {e}"));
        assert_eq!(lock_path(&state), dir.path().join(".flow.state.json.lock"));
        assert!(lock_path(&state).exists());
        drop(again);
    }

    #[test]
    fn a_lock_file_replaced_after_it_was_opened_is_not_taken() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = dir.path().join("s.json");
        let path = lock_path(&state);
        let stale = File::options().write(true).create(true).truncate(false).open(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(!same_file(&stale, &path), "the path names another file now");
        let file = File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(same_file(&file, &path));
    }
}
