//! The legacy HTTP+SSE transport of MCP (protocol 2024-11-05), which the Python SDK's
//! `sse_client` speaks and rmcp has no client for: a GET opens an event stream whose first
//! `endpoint` event gives the URL to POST messages to; the server's messages arrive as `message`
//! events on the stream.

use futures_util::StreamExt;
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type Events = Pin<Box<dyn futures_util::Stream<Item = Result<sse_stream::Sse, sse_stream::Error>> + Send>>;

/// An open SSE session: the event stream and where messages are posted.
pub(super) struct SseTransport {
    client: reqwest::Client,
    endpoint: Arc<str>,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    events: Events,
}

/// Why the SSE transport failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct SseError(String);

impl SseTransport {
    /// Opens the event stream at `url` and waits for its `endpoint` event.
    pub(super) async fn connect(
        client: reqwest::Client,
        url: &str,
        headers: reqwest::header::HeaderMap,
        timeout: Duration,
    ) -> Result<SseTransport, SseError> {
        let response = client
            .get(url)
            .headers(headers.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| SseError(format!("cannot connect to {url}: {}", without_url(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(SseError(format!("{url} answered HTTP {status} to the event stream request (is it an SSE MCP endpoint?)")));
        }
        let mut events: Events = Box::pin(sse_stream::SseStream::from_bytes_stream(response.bytes_stream()));
        let base = url::Url::parse(url).map_err(|e| SseError(format!("{url} is not a URL: {e}")))?;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| SseError(format!("the event stream of {url} broke: {e}")))?;
            if event.event.as_deref() != Some("endpoint") {
                continue;
            }
            let data = event.data.unwrap_or_default();
            let endpoint = base.join(data.trim()).map_err(|_| SseError(format!("{url} gave an endpoint that is not a URL: {data:?}")))?;
            if endpoint.origin() != base.origin() {
                return Err(SseError(format!(
                    "{url} gave an endpoint on another origin ({}), refused",
                    endpoint.origin().ascii_serialization()
                )));
            }
            return Ok(SseTransport { client, endpoint: endpoint.as_str().into(), headers, timeout, events });
        }
        Err(SseError(format!("the event stream of {url} ended before its `endpoint` event")))
    }
}

/// A reqwest error's text without the URL (it may carry a rewritten host or credentials).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(u.as_str(), "the server");
    }
    text
}

impl rmcp::transport::Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(&mut self, item: TxJsonRpcMessage<RoleClient>) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let (client, endpoint, headers, timeout) = (self.client.clone(), Arc::clone(&self.endpoint), self.headers.clone(), self.timeout);
        async move {
            let body = serde_json::to_vec(&item).map_err(|e| SseError(format!("cannot encode a message: {e}")))?;
            let response = client
                .post(&*endpoint)
                .headers(headers)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(timeout)
                .body(body)
                .send()
                .await
                .map_err(|e| SseError(format!("posting a message failed: {}", without_url(&e))))?;
            if !response.status().is_success() {
                return Err(SseError(format!("the server answered HTTP {} to a posted message", response.status())));
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let event = self.events.next().await?.ok()?;
            if !matches!(event.event.as_deref(), None | Some("message")) {
                continue;
            }
            let Some(data) = event.data else { continue };
            // Anything that is not a JSON-RPC message ends the session: its calls fail with a
            // clear error rather than wait for an answer that will not come.
            return serde_json::from_str(&data).ok();
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), SseError>> + Send {
        self.events = Box::pin(futures_util::stream::empty());
        async { Ok(()) }
    }
}
