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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use weft_llm::http::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpSend};

use crate::format::{HttpLine, RecordedHttpError, RecordedHttpRequest, RecordedHttpResponse};
use crate::log::{Occurrences, RecordLine, RecordLog, ReplayError, Secrets, excerpt, missing_reason, read_lines, redacted_key};

/// The `kind` of HTTP lines.
const KIND: &str = "http";

/// An HTTP line as read back.
#[derive(Debug, Deserialize)]
struct ServedLine {
    key: String,
    #[serde(default)]
    run: Option<u64>,
    node_path: String,
    occurrence: u64,
    #[serde(default)]
    response: Option<RecordedHttpResponse>,
    #[serde(default)]
    error: Option<RecordedHttpError>,
}

/// The scope occurrences are counted in: the run (when in a batch) and the node path.
fn scope(run: Option<u64>, node_path: &str) -> String {
    match run {
        Some(run) => format!("run {run}: {node_path}"),
        None => node_path.to_owned(),
    }
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
        let key = self.log.key(&key_content(request));
        let occurrence = self.log.occurrence(KIND, &scope(request.meta.batch_index, &request.meta.node_path), &key);
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

/// Recorded outcomes by (run, node path, key), then occurrence.
type Entries = HashMap<(Option<u64>, String, String), BTreeMap<u64, Result<RecordedHttpResponse, RecordedHttpError>>>;

/// Serves the HTTP exchanges of a record file, with no network: each recorded exchange answers
/// the request with the same key in the same run (of a batch) at the same node path and
/// occurrence, once. A request the recording does not have fails (kind `unavailable`) naming
/// the node path, the occurrence and the request.
pub struct HttpReplayer {
    name: String,
    path: PathBuf,
    secrets: Secrets,
    entries: Entries,
    per_path: HashMap<(Option<u64>, String), usize>,
    by_run: bool,
    served: Occurrences,
}

impl fmt::Debug for HttpReplayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReplayer").field("path", &self.path).field("exchanges", &self.len()).finish_non_exhaustive()
    }
}

impl HttpReplayer {
    /// Reads the HTTP exchanges of the record file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<HttpReplayer, ReplayError> {
        let path = path.as_ref();
        let mut replayer = HttpReplayer {
            name: format!("replay {}", path.display()),
            path: path.to_path_buf(),
            secrets: Secrets::default(),
            entries: HashMap::new(),
            per_path: HashMap::new(),
            by_run: false,
            served: Occurrences::new(),
        };
        for RecordLine { line, value } in read_lines(path, KIND)? {
            let invalid = |message: String| ReplayError::Invalid { path: path.to_path_buf(), line, message };
            let entry: ServedLine = serde_json::from_value(value).map_err(|e| invalid(format!("not a recorded HTTP request ({e})")))?;
            let outcome = match (entry.response, entry.error) {
                (Some(response), None) => Ok(response),
                (None, Some(error)) => Err(error),
                _ => return Err(invalid("a recorded HTTP request has either a \"response\" or an \"error\"".to_owned())),
            };
            let by_occurrence = replayer.entries.entry((entry.run, entry.node_path.clone(), entry.key)).or_default();
            if by_occurrence.insert(entry.occurrence, outcome).is_some() {
                return Err(invalid(format!(
                    "{}node path {:?}: occurrence {} of this request is recorded twice",
                    entry.run.map(|r| format!("run {r}, ")).unwrap_or_default(),
                    entry.node_path,
                    entry.occurrence
                )));
            }
            replayer.by_run |= entry.run.is_some();
            *replayer.per_path.entry((entry.run, entry.node_path)).or_insert(0) += 1;
        }
        Ok(replayer)
    }

    /// Like [`crate::Replayer::with_scrubber`]: redacts the scrubber's secrets from requests
    /// before looking them up.
    pub fn with_scrubber(mut self, secrets: &Secrets) -> HttpReplayer {
        self.secrets.merge(secrets);
        self
    }

    /// The number of recorded HTTP exchanges.
    pub fn len(&self) -> usize {
        self.per_path.values().sum()
    }

    /// Whether no HTTP exchange was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn serve(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let path = &request.meta.node_path;
        let key = redacted_key(&self.secrets, &key_content(request));
        let run = request.meta.batch_index.filter(|_| self.by_run);
        let occurrence = self.served.next(KIND, &scope(run, path), &key);
        let recorded = self.entries.get(&(run, path.clone(), key));
        match recorded.and_then(|by_occurrence| by_occurrence.get(&occurrence)) {
            // Nothing is sent: where the recorded request went is not where this one goes.
            Some(Ok(response)) => Ok(HttpResponse { rewritten: None, ..response.clone().into() }),
            Some(Err(error)) => Err(error.clone().into()),
            None => {
                let in_scope = self.per_path.get(&(run, path.clone())).copied().unwrap_or(0);
                let noun = if run.is_some() { "node path in this run" } else { "node path" };
                let reason = missing_reason(in_scope, recorded.map_or(0, BTreeMap::len), noun);
                let which = run.map(|r| format!("of run {r} (batch index) ")).unwrap_or_default();
                let shown = self.secrets.redact_str(&format!("{} {}", request.method, request.url)).into_owned();
                Err(HttpError {
                    kind: HttpErrorKind::Unavailable,
                    message: format!(
                        "{}: no recorded answer for the HTTP request {which}at node path {path:?} (occurrence {occurrence}, {}): {reason}; the flow or its inputs changed since the recording: re-record with --record",
                        self.name,
                        excerpt(&shown),
                    ),
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
        &self.name
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
