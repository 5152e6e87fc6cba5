//! Reading flow files, registries and secrets from the command line.

use crate::LoadArgs;
use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use weft_flow::LoadOptions;
use weft_spec::{Diagnostic, Source};

/// Reads a file: an IO failure is an error (exit 2); bytes that are not text are a `parse`
/// diagnostic (exit 1).
pub fn read_source(path: &Path) -> anyhow::Result<Result<Source, Diagnostic>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Source::from_bytes(path.display().to_string(), bytes))
}

/// Builds the load options: registries read, `--secret` values parsed, the environment as
/// fallback for secrets.
pub fn load_options(args: &LoadArgs) -> anyhow::Result<LoadOptions> {
    let mut registries = Vec::new();
    for path in &args.refs {
        match read_source(path)? {
            Ok(s) => registries.push(s),
            Err(d) => anyhow::bail!("--refs {}: {}", path.display(), d.message),
        }
    }
    let mut secrets = HashMap::new();
    for s in &args.secrets {
        let (key, value) = crate::secrets::parse_secret_arg(s)?;
        secrets.insert(key, value);
    }
    Ok(LoadOptions {
        registries,
        secrets,
        strict: args.strict,
        secret_fallback: Some(Arc::new(|key: &str| std::env::var(crate::secrets::env_var_name(key)).ok())),
    })
}
