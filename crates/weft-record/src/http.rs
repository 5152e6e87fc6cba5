//! Record and replay of the HTTP requests of ApiNodes, RemoteTools and A2A agents: [`HttpRecorder`] sends
//! through its client and appends one line per request (after the client's retries) to the
//! [`RecordLog`]; [`HttpReplayer`] answers from a recording, with no network.
//!
//! A line is an [`HttpLine`]: the request as rendered from the document (method, URL before any
//! `--http-rewrite`, headers, body; never the sensitive headers), and the last answer or the
//! error. Exchanges are found as LLM calls are ([`crate::llm`]): by key (the SHA-256 of the
//! recorded request, secrets redacted), scope (the run in a batch, and the node path) and
//! occurrence within the scope. So a recording made against a local server through
//! `--http-rewrite` replays without it, and a replay sends nothing.

use std::fmt;
use std::sync::Arc;

use weft_llm::http::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpSend};

use crate::format::{HttpLine, RecordedHttpError, RecordedHttpRequest, RecordedHttpResponse};
use crate::log::{RecordLog, excerpt};
use crate::replay::{Kind, Names, RE_RECORD, Replay};

/// The HTTP exchanges of a record file (lines of kind `http`), served by [`HttpReplayer`].
pub struct HttpExchanges;

impl Kind for HttpExchanges {
    type Answer = RecordedHttpResponse;
    type Error = RecordedHttpError;
    const NAMES: Names = Names { line: "http", exchange: "HTTP request", repeated: "request" };
}

/// What a request's key is computed on: the request as recorded, with the texts made fresh for
/// each run ([`weft_llm::http::HttpMeta::volatile`]: an A2A context id, a JSON-RPC id) read as
/// one placeholder, so the same exchange of another run has the same key.
fn key_content(request: &HttpRequest) -> serde_json::Value {
    let mut recorded = RecordedHttpRequest::from(request);
    if let Some(body) = &mut recorded.body {
        for volatile in request.meta.volatile.iter().filter(|v| !v.is_empty()) {
            *body = body.replace(volatile.as_str(), "[VOLATILE]");
        }
    }
    recorded.key_content()
}

/// A client wrapper that sends every request through its client and records the exchange.
pub struct HttpRecorder {
    inner: Arc<dyn HttpSend>,
    log: Arc<RecordLog>,
}

impl fmt::Debug for HttpRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRecorder").field("client", &self.inner.name()).field("log", &self.log).finish()
    }
}

impl HttpRecorder {
    /// Records the requests `inner` sends into `log`.
    pub fn new(inner: Arc<dyn HttpSend>, log: Arc<RecordLog>) -> HttpRecorder {
        HttpRecorder { inner, log }
    }
}

#[async_trait::async_trait]
impl HttpSend for HttpRecorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let recorded = RecordedHttpRequest::from(request);
        let (key, occurrence) =
            self.log.stamp(HttpExchanges::NAMES.line, request.meta.batch_index, &request.meta.node_path, &key_content(request));
        // The sensitive headers' values are masked in what is written, whatever the server
        // echoed into the body.
        self.log.add_secrets(request.sensitive_headers.iter().map(|(_, v)| v.clone()));
        let result = self.inner.send(request).await;
        let (response, error) = match &result {
            Ok(response) => (Some(RecordedHttpResponse::from(response)), None),
            Err(error) => (None, Some(RecordedHttpError::from(error))),
        };
        self.log.append_line(&HttpLine {
            key,
            run: request.meta.batch_index,
            node_path: request.meta.node_path.clone(),
            occurrence,
            request: recorded,
            response,
            error,
        });
        result
    }
}

/// Serves the HTTP exchanges of a record file, with no network: each recorded exchange answers
/// the request with the same key in the same run (of a batch) at the same node path and
/// occurrence, once ([`Replay`]). A request the recording does not have fails (kind
/// `unavailable`) naming the node path, the occurrence and the request.
pub type HttpReplayer = Replay<HttpExchanges>;

impl Replay<HttpExchanges> {
    fn serve(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        match self.find(request.meta.batch_index, &request.meta.node_path, &key_content(request)) {
            // Nothing is sent: where the recorded request went is not where this one goes.
            Ok(Ok(response)) => Ok(HttpResponse { rewritten: None, ..response.clone().into() }),
            Ok(Err(error)) => Err(error.clone().into()),
            Err(missing) => {
                let shown = self.secrets().redact_str(&format!("{} {}", request.method, request.url)).into_owned();
                Err(HttpError {
                    kind: HttpErrorKind::Unavailable,
                    message: missing.message("the HTTP request", &format!(", {}", excerpt(&shown)), RE_RECORD),
                    attempts: 0,
                    rewritten: None,
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl HttpSend for HttpReplayer {
    fn name(&self) -> &str {
        Replay::name(self)
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.serve(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_llm::http::{HttpMeta, HttpRetry};

    fn request(context: &str, id: &str, volatile: bool) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "https://agents.example.com/researcher/".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            sensitive_headers: Vec::new(),
            body: Some(format!(r#"{{"jsonrpc":"2.0","id":"{id}","params":{{"message":{{"text":"hi","contextId":"{context}"}}}}}}"#)),
            retry: HttpRetry::Legacy,
            meta: HttpMeta {
                node: "remote".into(),
                node_path: "remote".into(),
                batch_index: None,
                volatile: if volatile { vec![context.into(), id.into()] } else { Vec::new() },
            },
        }
    }

    #[test]
    fn volatile_texts_do_not_change_the_key_and_the_rest_does() {
        let key = |r: &HttpRequest| crate::log::content_key(&key_content(r));
        assert_eq!(key(&request("ctx-1", "id-1", true)), key(&request("ctx-2", "id-2", true)));
        assert_ne!(key(&request("ctx-1", "id-1", false)), key(&request("ctx-2", "id-2", false)));
        let mut other = request("ctx-1", "id-1", true);
        other.body = other.body.map(|b| b.replace("hi", "bye"));
        assert_ne!(key(&request("ctx-1", "id-1", true)), key(&other));
        // What is recorded is the request as sent.
        assert!(RecordedHttpRequest::from(&request("ctx-1", "id-1", true)).body.expect("a body").contains("ctx-1"));
    }
}
