//! The process's secret scrubber: every secret Weft knows ([`weft_guard::Secrets`]) is masked
//! from everything `weft` writes: stdout, stderr, the state, events, record and usage files.
//!
//! One registry per process, because a command writes from many places (errors, progress,
//! prompts, batch lines, files): it starts with the environment's secrets (`OPENAI_API_KEY`,
//! every `WEFT_SECRET_*`) and a command adds `--secret` values, credentials in `--llm` and the
//! flow's sensitive fields once it has read them ([`add`]). The HTTP client masks its own key in
//! its errors at the source; this is the second line, at every writer.

use serde_json::Value as Json;
use std::sync::{Arc, PoisonError, RwLock};
use weft_guard::Secrets;

static SECRETS: RwLock<Option<Arc<Secrets>>> = RwLock::new(None);

/// The registry now.
pub fn current() -> Arc<Secrets> {
    let guard = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    guard.clone().unwrap_or_default()
}

/// Adds secrets to the registry.
pub fn add(more: &Secrets) {
    if more.is_empty() {
        return;
    }
    let mut guard = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    let mut all = guard.as_deref().cloned().unwrap_or_default();
    all.merge(more);
    *guard = Some(Arc::new(all));
}

/// `text` with every secret masked.
pub fn text(text: &str) -> String {
    current().redact_str(text).into_owned()
}

/// `value` with every secret masked.
pub fn json(value: &mut Json) {
    current().redact(value);
}

/// `value` serialized, with every secret masked.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
    current().redacted(value)
}
