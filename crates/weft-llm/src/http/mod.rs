//! Plain HTTP requests: what an ApiNode, a RemoteTool or an A2A agent sends (AGENTS.md section 7), behind one
//! trait, [`HttpSend`], so that the engine does not know whether a request goes to the network
//! ([`HttpClient`]), to a recording or from one (`weft_record`).
//!
//! The engine renders the request ([`HttpRequest`]: method, URL with its query, headers, the
//! sensitive headers apart, the body as sent) and checks the document's `url_allow_list` on it;
//! the client rewrites its URL (`--http-rewrite`, [`Rewrites`]), checks `--allow-host` on the
//! rewritten one, and makes the attempts the retry rules allow ([`HttpRetry`]). What comes back is
//! the last response whatever its status ([`HttpResponse`]: a non-2xx answer is the node's to
//! judge, as in WayFlow), or an [`HttpError`] when no response came.
//!
//! Sensitive headers are sent and nowhere else: [`HttpRequest`]'s `Debug` shows their names
//! only, a recording never holds them (`weft_record`), and the client's messages never quote
//! a header value.

mod client;

pub use client::{DEFAULT_LEGACY_TIMEOUT, HttpClient, HttpOptions, LEGACY_TRIES, MAX_HTTP_RESPONSE_BYTES};

use std::fmt;

use crate::retry::RetryPolicy;

/// A rendered request of an ApiNode or a RemoteTool.
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    /// The method, upper-cased (`GET`, `POST`...).
    pub method: String,
    /// The URL as rendered from the document, query included (before any `--http-rewrite`).
    pub url: String,
    /// The headers, in order (`Content-Type` included when the body sets one).
    pub headers: Vec<(String, String)>,
    /// The document's `sensitive_headers`, rendered: sent, never recorded, never shown.
    pub sensitive_headers: Vec<(String, String)>,
    /// The body as sent, when there is one.
    pub body: Option<String>,
    /// How failed attempts are retried.
    pub retry: HttpRetry,
    /// Who asks, for record and replay (not sent).
    pub meta: HttpMeta,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sensitive: Vec<&str> = self.sensitive_headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("sensitive_headers", &sensitive)
            .field("body", &self.body)
            .field("retry", &self.retry)
            .field("meta", &self.meta)
            .finish()
    }
}

/// Who makes a request: the scope of its exchange in a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMeta {
    /// The calling node's name.
    pub node: String,
    /// The calling node's path (`flow/node`).
    pub node_path: String,
    /// The run's index in its batch, inside a batch.
    pub batch_index: Option<u64>,
    /// Texts of the request made fresh for each run (an A2A context id, a JSON-RPC request id):
    /// a recording's key reads each as the same placeholder, so a replay finds the exchange.
    pub volatile: Vec<String>,
}

/// How a request's failed attempts are retried.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpRetry {
    /// No `retry_policy`: WayFlow's legacy loop, [`LEGACY_TRIES`] tries in all, any non-2xx
    /// answer tried again at once, a failure without an answer not retried, each attempt
    /// [`DEFAULT_LEGACY_TIMEOUT`] long.
    Legacy,
    /// The document's `retry_policy` (FORMAT.md 9.2).
    Policy(RetryPolicy),
    /// One attempt of at most this long, never retried (an A2A request without `retry_policy`:
    /// WayFlow's plain HTTP client with the connection's `timeout`).
    Once(std::time::Duration),
}

/// The last answer of a request, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, decoded as UTF-8 (invalid bytes replaced, as WayFlow decodes it).
    pub body: String,
    /// The `Location` header of a redirect (never followed).
    pub location: Option<String>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// Where the request went after `--http-rewrite`, credentials removed; `None` when it went to
    /// its own URL.
    pub rewritten: Option<String>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What kind of failure left a request without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// Nothing was sent: the request cannot be sent as it is (a bad method, header or URL).
    Invalid,
    /// Nothing was sent: `--allow-host` refuses the host.
    Refused,
    /// No connection.
    Connect,
    /// TLS or certificate verification failed.
    Tls,
    /// A timeout fired (the attempt's, the connect or the call's).
    Timeout,
    /// The connection failed during the exchange.
    Transport,
    /// The response body went past the cap.
    TooLarge,
    /// A replay has no such exchange.
    Unavailable,
}

impl HttpErrorKind {
    /// The kind's name in records and events: `invalid`, `refused`, `connect`...
    pub fn as_str(self) -> &'static str {
        match self {
            HttpErrorKind::Invalid => "invalid",
            HttpErrorKind::Refused => "refused",
            HttpErrorKind::Connect => "connect",
            HttpErrorKind::Tls => "tls",
            HttpErrorKind::Timeout => "timeout",
            HttpErrorKind::Transport => "transport",
            HttpErrorKind::TooLarge => "too_large",
            HttpErrorKind::Unavailable => "unavailable",
        }
    }

    /// The kind of a name [`HttpErrorKind::as_str`] gives; `Transport` for an unknown one.
    pub fn from_name(name: &str) -> HttpErrorKind {
        match name {
            "invalid" => HttpErrorKind::Invalid,
            "refused" => HttpErrorKind::Refused,
            "connect" => HttpErrorKind::Connect,
            "tls" => HttpErrorKind::Tls,
            "timeout" => HttpErrorKind::Timeout,
            "too_large" => HttpErrorKind::TooLarge,
            "unavailable" => HttpErrorKind::Unavailable,
            _ => HttpErrorKind::Transport,
        }
    }
}

/// A request that got no answer: what happened and what to do, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What kind of failure.
    pub kind: HttpErrorKind,
    /// The message: what happened, how many attempts, what to do.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
    /// Where the request went after `--http-rewrite`, when it was rewritten.
    pub rewritten: Option<String>,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

/// Sends rendered requests: the network ([`HttpClient`]), or a recording.
#[async_trait::async_trait]
pub trait HttpSend: Send + Sync {
    /// A short name for messages.
    fn name(&self) -> &str;

    /// Sends `request`, with its retries: the last answer, or why none came.
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// `--http-rewrite PREFIX=URL` rules: a request whose URL starts with a prefix goes to the
/// rule's URL followed by the rest of its own; with several matching prefixes, the longest wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    rules: Vec<(String, String)>,
}

impl Rewrites {
    /// No rule.
    pub fn none() -> Rewrites {
        Rewrites::default()
    }

    /// These rules, each `(prefix, url)`, checked ([`Rewrites::check_rule`]).
    pub fn new(rules: Vec<(String, String)>) -> Result<Rewrites, String> {
        for (prefix, url) in &rules {
            Rewrites::check_rule(prefix, url)?;
        }
        Ok(Rewrites { rules })
    }

    /// Splits `PREFIX=URL` at its first `=`, checked.
    pub fn parse_arg(arg: &str) -> Result<(String, String), String> {
        let Some((prefix, url)) = arg.split_once('=') else {
            return Err(format!(
                "--http-rewrite {arg:?} has no '=': write --http-rewrite PREFIX=URL, e.g. --http-rewrite https://orders.example.com=http://127.0.0.1:8080"
            ));
        };
        Rewrites::check_rule(prefix, url)?;
        Ok((prefix.to_owned(), url.to_owned()))
    }

    /// Why a rule cannot work: an empty prefix, or a target that is not an http(s) URL with a
    /// host.
    pub fn check_rule(prefix: &str, url: &str) -> Result<(), String> {
        if prefix.is_empty() {
            return Err(format!(
                "the HTTP rewrite to {url:?} has an empty prefix: give the start of the URLs to send there, such as https://orders.example.com"
            ));
        }
        weft_guard::Target::parse(url)
            .map(|_| ())
            .map_err(|problem| format!("the HTTP rewrite of {prefix:?}: {problem}; give a URL such as http://127.0.0.1:8080"))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[(String, String)] {
        &self.rules
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Where a request to `url` goes instead, when a rule applies.
    pub fn apply(&self, url: &str) -> Option<String> {
        self.rules
            .iter()
            .filter(|(prefix, _)| url.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, target)| format!("{target}{}", &url[prefix.len()..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_take_the_longest_prefix() {
        let rules = Rewrites::new(vec![
            ("https://orders.example.com".into(), "http://127.0.0.1:8080".into()),
            ("https://orders.example.com/v2".into(), "http://127.0.0.1:9090/new".into()),
        ])
        .expect("rules");
        assert_eq!(rules.apply("https://orders.example.com/api/1?x=y").as_deref(), Some("http://127.0.0.1:8080/api/1?x=y"));
        assert_eq!(rules.apply("https://orders.example.com/v2/a").as_deref(), Some("http://127.0.0.1:9090/new/a"));
        assert_eq!(rules.apply("https://other.example.com/"), None);
        assert_eq!(Rewrites::parse_arg("https://a.example=http://h:1/x?y=z").expect("rule").1, "http://h:1/x?y=z");
        assert!(Rewrites::parse_arg("https://a.example").unwrap_err().contains("has no '='"));
        assert!(Rewrites::parse_arg("=http://h").unwrap_err().contains("empty prefix"));
        assert!(Rewrites::parse_arg("https://a=ftp://h").unwrap_err().contains("not an http:// or https:// URL"));
    }

    #[test]
    fn sensitive_headers_do_not_print() {
        let request = HttpRequest {
            method: "GET".into(),
            url: "https://h.example/".into(),
            headers: vec![("Accept".into(), "application/json".into())],
            sensitive_headers: vec![("Authorization".into(), "Bearer s3cr3t-token".into())],
            body: None,
            retry: HttpRetry::Legacy,
            meta: HttpMeta::default(),
        };
        let shown = format!("{request:?}");
        assert!(shown.contains("Authorization") && !shown.contains("s3cr3t"), "{shown}");
    }
}
