//! The one place a failed attempt becomes an [`LlmErrorKind`], for every provider: from the
//! HTTP status and the provider's error type, code and message ([`crate::providers::ProviderError`]),
//! or from what happened when there was no answer.

use crate::LlmErrorKind;
use crate::providers::AttemptError;
use crate::retry::Cause;

/// The kind of the final error of a call whose last attempt failed with `failure`.
///
/// What the provider's body says wins over the status (OpenAI answers a prompt too long with a
/// 400, an unknown model with a 404, both with a code): `context_length_exceeded` (as code or
/// type, or a message saying the context length or maximum context length is exceeded),
/// `content_filter` and `content_policy_violation`, `model_not_found`, `insufficient_quota`.
/// Then the status: 401, 403, 404, 408, 409 and 429, 501, other 4xx, other 5xx.
pub fn classify(failure: &AttemptError) -> LlmErrorKind {
    let status = match &failure.cause {
        Cause::Status { status, .. } => *status,
        Cause::Transport => return LlmErrorKind::Transient,
        Cause::Timeout => return LlmErrorKind::TimedOut,
        Cause::Tls => return LlmErrorKind::Other,
        Cause::Invalid => return LlmErrorKind::InvalidResponse,
        Cause::TooLarge => return LlmErrorKind::ResponseTooLarge,
        Cause::Refused => return LlmErrorKind::Refused,
    };
    let provider = &failure.provider;
    let said = |names: &[&str]| [&provider.code, &provider.kind].into_iter().flatten().any(|v| names.contains(&v.as_str()));
    if said(&["context_length_exceeded"]) || provider.message.as_deref().is_some_and(says_context_too_long) {
        return LlmErrorKind::ContextTooLong;
    }
    if said(&["content_filter", "content_policy_violation"]) {
        return LlmErrorKind::ContentFiltered;
    }
    if said(&["model_not_found"]) {
        return LlmErrorKind::ModelNotFound;
    }
    if said(&["insufficient_quota"]) {
        return LlmErrorKind::QuotaExceeded;
    }
    match status {
        401 => LlmErrorKind::Authentication,
        403 => LlmErrorKind::Permission,
        404 => LlmErrorKind::ModelNotFound,
        408 => LlmErrorKind::TimedOut,
        409 | 429 => LlmErrorKind::RateLimited,
        501 => LlmErrorKind::Other,
        400..=499 => LlmErrorKind::BadRequest,
        500..=599 => LlmErrorKind::Transient,
        _ => LlmErrorKind::Other,
    }
}

/// Whether a provider's message says the prompt is past the model's context, as OpenAI, vLLM
/// and llama.cpp word it ("This model's maximum context length is 4096 tokens...", "the
/// request exceeds the available context size").
fn says_context_too_long(message: &str) -> bool {
    let message = message.to_lowercase();
    message.contains("maximum context length") || (message.contains("context") && message.contains("exceed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ProviderError;

    fn kind(cause: Cause, code: Option<&str>, message: Option<&str>) -> LlmErrorKind {
        let mut failure = AttemptError::new(cause, "m", "a");
        failure.provider = ProviderError { kind: None, code: code.map(str::to_owned), message: message.map(str::to_owned) };
        classify(&failure)
    }

    fn status(status: u16) -> Cause {
        Cause::Status { status, body: String::new() }
    }

    #[test]
    fn statuses_and_codes() {
        for (s, expected) in [
            (401, LlmErrorKind::Authentication),
            (403, LlmErrorKind::Permission),
            (404, LlmErrorKind::ModelNotFound),
            (408, LlmErrorKind::TimedOut),
            (409, LlmErrorKind::RateLimited),
            (429, LlmErrorKind::RateLimited),
            (400, LlmErrorKind::BadRequest),
            (422, LlmErrorKind::BadRequest),
            (500, LlmErrorKind::Transient),
            (503, LlmErrorKind::Transient),
            (501, LlmErrorKind::Other),
            (302, LlmErrorKind::Other),
        ] {
            assert_eq!(kind(status(s), None, None), expected, "{s}");
        }
        assert_eq!(kind(status(400), Some("context_length_exceeded"), None), LlmErrorKind::ContextTooLong);
        let vllm = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.";
        assert_eq!(kind(status(400), None, Some(vllm)), LlmErrorKind::ContextTooLong);
        assert_eq!(kind(status(400), None, Some("the request exceeds the available context size")), LlmErrorKind::ContextTooLong);
        assert_eq!(kind(status(400), Some("content_policy_violation"), None), LlmErrorKind::ContentFiltered);
        assert_eq!(kind(status(400), Some("content_filter"), None), LlmErrorKind::ContentFiltered);
        assert_eq!(kind(status(400), Some("model_not_found"), None), LlmErrorKind::ModelNotFound);
        assert_eq!(kind(status(429), Some("insufficient_quota"), None), LlmErrorKind::QuotaExceeded);
        assert_eq!(kind(status(400), None, Some("bad temperature")), LlmErrorKind::BadRequest);
    }

    #[test]
    fn failures_without_an_answer() {
        for (cause, expected) in [
            (Cause::Transport, LlmErrorKind::Transient),
            (Cause::Timeout, LlmErrorKind::TimedOut),
            (Cause::Tls, LlmErrorKind::Other),
            (Cause::Invalid, LlmErrorKind::InvalidResponse),
            (Cause::TooLarge, LlmErrorKind::ResponseTooLarge),
            (Cause::Refused, LlmErrorKind::Refused),
        ] {
            assert_eq!(kind(cause, None, None), expected);
        }
    }
}
