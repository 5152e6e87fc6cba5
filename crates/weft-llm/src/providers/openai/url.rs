//! The request URL of an OpenAI-compatible endpoint, built from an LLM config's `url` exactly as
//! WayFlow builds it (FORMAT.md section 9.1).

/// The path of the Chat Completions API.
pub const CHAT_COMPLETIONS_PATH: &str = "/chat/completions";

/// The base of the OpenAI API, which `OpenAiConfig` uses (it has no `url`).
pub const OPENAI_BASE: &str = "https://api.openai.com";

/// The request URL for `api_path` (such as [`CHAT_COMPLETIONS_PATH`]) from a config's `url`:
/// spaces trimmed, `http://` prepended when there is no `http://` or `https://` scheme, trailing
/// `/` stripped; then used as is when it already ends with the API path, else the API path is
/// appended after `/v1` (added when the URL does not end with `/v1`).
///
/// ```
/// use weft_llm::providers::openai::url::{CHAT_COMPLETIONS_PATH, request_url};
///
/// for url in ["http://h:8000", "h:8000", " http://h:8000/v1/ ", "http://h:8000/v1/chat/completions"] {
///     assert_eq!(request_url(url, CHAT_COMPLETIONS_PATH), "http://h:8000/v1/chat/completions");
/// }
/// assert_eq!(request_url("http://h/api/v1", CHAT_COMPLETIONS_PATH), "http://h/api/v1/chat/completions");
/// assert_eq!(request_url("http://h/openai/", CHAT_COMPLETIONS_PATH), "http://h/openai/v1/chat/completions");
/// ```
pub fn request_url(url: &str, api_path: &str) -> String {
    let url = url.trim();
    let with_scheme = if url.starts_with("http://") || url.starts_with("https://") { url.to_owned() } else { format!("http://{url}") };
    let base = with_scheme.trim_end_matches('/');
    if base.ends_with(api_path) {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}{api_path}")
    } else {
        format!("{base}/v1{api_path}")
    }
}

/// The base URL of a request URL: the request URL without its API path
/// (`http://h:8000/v1/chat/completions` → `http://h:8000/v1`). Calls to one base URL share a
/// [`crate::limit::Limiter`].
pub fn base_url(request_url: &str, api_path: &str) -> String {
    request_url.strip_suffix(api_path).unwrap_or(request_url).to_owned()
}

/// The host of a URL, lowercased, without scheme, user information or port.
pub fn host(url: &str) -> String {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_wayflow_examples() {
        let chat = |url| request_url(url, CHAT_COMPLETIONS_PATH);
        for url in ["http://h:8000", "http://h:8000/", "h:8000", "http://h:8000/v1/", "http://h:8000/v1/chat/completions"] {
            assert_eq!(chat(url), "http://h:8000/v1/chat/completions", "{url}");
        }
        assert_eq!(chat("http://h/api/v1"), "http://h/api/v1/chat/completions");
        assert_eq!(chat("http://h/openai/"), "http://h/openai/v1/chat/completions");
        assert_eq!(chat("http://h/v1/completions"), "http://h/v1/completions/v1/chat/completions");
        assert_eq!(chat("https://api.openai.com"), "https://api.openai.com/v1/chat/completions");
        assert_eq!(request_url("http://h:8000", "/responses"), "http://h:8000/v1/responses");
    }

    #[test]
    fn base_and_host() {
        assert_eq!(base_url("http://h:8000/v1/chat/completions", CHAT_COMPLETIONS_PATH), "http://h:8000/v1");
        assert_eq!(host("https://API.openai.com/v1"), "api.openai.com");
        assert_eq!(host("http://user:pw@h:8000/v1"), "h");
        assert_eq!(host("http://[::1]:8000/v1"), "::1");
        assert_eq!(host("h:8000"), "h");
    }
}
