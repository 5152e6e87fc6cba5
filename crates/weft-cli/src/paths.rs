//! Output files are checked before anything runs: a file `weft` would write only at the end (the
//! run state, `--usage-json`) in a folder that does not exist or cannot be written is a usage
//! error (exit 2) before the first call, not a failure after all of them.

use anyhow::Context;
use std::path::Path;

/// Checks that `path` can be written, by creating and removing a file next to it.
pub fn check_writable(path: &Path, what: &str) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!(
            "cannot write the {what} {}: the folder {} does not exist; create it, or choose another path",
            path.display(),
            folder.display()
        );
    }
    let probe = folder.join(format!(".weft-write-check.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("cannot write the {what} {} (the folder {} is not writable)", path.display(), folder.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_named() {
        let e = check_writable(Path::new("/nonexistent-weft-folder/s.json"), "state file").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot write the state file /nonexistent-weft-folder/s.json: the folder /nonexistent-weft-folder does not exist; create it, or choose another path"
        );
        check_writable(Path::new("here.json"), "state file").unwrap_or_else(|e| panic!("{e}"));
    }
}
