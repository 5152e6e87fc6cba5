//! The process's secret scrubber: every secret Weft knows ([`weft_guard::Secrets`]) is masked
//! from everything `weft` writes: stdout, stderr, the state, events, record and usage files.
//!
//! One registry per process, because a command writes from many places (errors, progress,
//! prompts, batch lines, files): it starts with the environment's secrets (`OPENAI_API_KEY`,
//! every `WEFT_SECRET_*`) and a command adds `--secret` values, credentials in `--llm` and the
//! flow's sensitive fields once it has read them ([`add`]). The HTTP client masks its own key in
//! its errors at the source; this is the second line, at every writer.
//!
//! Free text (errors, progress lines: [`text`]) is masked of every secret; data (outputs, the
//! state's values, events, exports: [`json`], [`data_text`]) of every secret at least
//! [`weft_guard::secrets::MIN_SECRET_LEN`] characters long. A shorter one would garble data
//! (the secret `1` is in every number with a 1), so it is masked in free text only, and [`add`]
//! warns once on stderr that it cannot be reliably scrubbed.

use serde_json::Value as Json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use weft_guard::Secrets;

static SECRETS: RwLock<Option<Arc<Secrets>>> = RwLock::new(None);

/// Whether the warning about a short secret was printed.
static WARNED_SHORT: AtomicBool = AtomicBool::new(false);

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
    if more.has_short() && !WARNED_SHORT.swap(true, Ordering::SeqCst) {
        warn_short();
    }
    let mut guard = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    let mut all = guard.as_deref().cloned().unwrap_or_default();
    all.merge(more);
    *guard = Some(Arc::new(all));
}

/// Says on stderr, not through the scrubber (the line holds no secret, and a short one would
/// garble it), that a secret is too short to be reliably scrubbed.
#[allow(clippy::print_stderr, reason = "the CLI is the one crate that prints")]
fn warn_short() {
    eprintln!(
        "warning: a secret (from --secret, WEFT_SECRET_*, a URL's password or the flow) is shorter than {} characters: it cannot be reliably scrubbed, so it is masked in error messages only, not in outputs, the state, events or record files; use a longer secret",
        weft_guard::secrets::MIN_SECRET_LEN
    );
}

/// Free text (an error, a progress line) with every secret masked.
pub fn text(text: &str) -> String {
    current().redact_str(text).into_owned()
}

/// Data as text (an export, a chart, a JSON line) with every secret masked but short ones.
pub fn data_text(text: &str) -> String {
    current().redact_data_str(text).into_owned()
}

/// `value` with every secret masked but short ones (data).
pub fn json(value: &mut Json) {
    current().redact(value);
}

/// `value` serialized, with every secret masked but short ones (data).
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
    current().redacted(value)
}
