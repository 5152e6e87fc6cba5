//! A real OpenAI-compatible Chat Completions server on 127.0.0.1, for tests and benchmarks.
//!
//! [`MockServer::start`] listens on a random port and serves `POST /v1/chat/completions` (and
//! `GET /v1/models`) over HTTP/1.1 with hyper. It checks every request as the OpenAI API does and
//! rejects what the API rejects with the API's error body (400 `invalid_request_error`, 401,
//! 404 `model_not_found`; see [`validate`]), so a client mistake cannot hide behind a forgiving
//! mock. Accepted requests get a chat completion object: plain text, a value generated from the
//! requested JSON Schema (`response_format` `json_schema`, or a schema written in the prompt in
//! `json_object` mode), or tool calls when the request offers tools, with usage including
//! simulated cached tokens. Replies can be scripted, randomized from a seed, delayed, and faults
//! injected by request index or probability ([`Fault`]): 429 with `Retry-After`, 500, 503, any
//! status with an OpenAI-style error type and code (403, `context_length_exceeded`...), slow
//! replies, dropped connections, invalid JSON bodies, replies that fail the schema; and the
//! hostile servers of the security tests: one echoing the request's credentials in every form
//! (body, `WWW-Authenticate`, request id), bodies past any cap (or without end), redirects.
//!
//! Every response carries `x-request-id: req_<index>`. Dropping the server stops accepting and
//! lets requests in flight finish; [`MockServer::try_start_on`] starts one again on the same
//! address. A server that takes requests and never answers is [`Fault::Slow`] with a long delay;
//! a redirect loop is [`Fault::Redirect`] to the request's own URL.
//!
//! [`api::ApiServer`] is a second, plain server: scripted replies per route and every request
//! kept, for the tests of ApiNode and RemoteTool.
//!
//! Wire format source: the OpenAI API reference ("Create chat completion", "The chat completion
//! object"), as generated into openai/openai-python `src/openai/types/chat/` and
//! `src/openai/types/completion_usage.py`.

pub mod api;
pub mod config;
pub mod mcp;
mod reply;
mod rng;
pub mod validate;

pub use config::{Fault, FaultPlan, MockConfig, ScriptedCall, ToolReply};
pub use validate::ApiError;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::body::{Frame, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use reply::PromptCache;

/// The largest request body accepted.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// How long shutting down waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// A running mock server. Dropping it shuts it down.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Its index among chat-completions requests (0-based), `None` for other paths.
    pub index: Option<u64>,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Json,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockStats {
    /// Chat-completions requests received.
    pub requests: u64,
    /// Completions answered (200, faulty replies included).
    pub completions: u64,
    /// Requests rejected as the API would (400, 401, 404, 413).
    pub rejected: u64,
    /// Faults injected.
    pub faults: u64,
    /// 429s sent.
    pub rate_limited: u64,
    /// Connections dropped on purpose.
    pub resets: u64,
    /// Requests being handled now.
    pub in_flight: u64,
    /// The most requests handled at once.
    pub max_in_flight: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    completions: AtomicU64,
    rejected: AtomicU64,
    faults: AtomicU64,
    rate_limited: AtomicU64,
    resets: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

#[derive(Debug)]
struct State {
    config: Mutex<Arc<MockConfig>>,
    received: Mutex<Vec<Received>>,
    cache: Mutex<PromptCache>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service's error: closes the connection without an answer.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

type Reply = Response<Either<Full<Bytes>, Filler>>;

/// A body of `x`s in 64 KiB chunks: `remaining` bytes, or without end.
#[derive(Debug)]
struct Filler {
    remaining: Option<u64>,
    declared: Option<u64>,
}

static FILL: [u8; 64 * 1024] = [b'x'; 64 * 1024];

impl hyper::body::Body for Filler {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let chunk = FILL.len() as u64;
        let n = match this.remaining {
            Some(0) => return std::task::Poll::Ready(None),
            Some(left) => left.min(chunk),
            None => chunk,
        };
        if let Some(left) = &mut this.remaining {
            *left -= n;
        }
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n as usize])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        self.declared.map(SizeHint::with_exact).unwrap_or_default()
    }
}

impl MockServer {
    /// Starts a server on 127.0.0.1 with a random port.
    ///
    /// # Panics
    ///
    /// When no port can be bound (use [`MockServer::try_start`] to handle that).
    pub async fn start(config: MockConfig) -> MockServer {
        match MockServer::try_start(config).await {
            Ok(server) => server,
            Err(error) => panic!("weft-testkit: cannot listen on 127.0.0.1: {error}"),
        }
    }

    /// Starts a server on 127.0.0.1 with a random port, or says why it cannot.
    pub async fn try_start(config: MockConfig) -> std::io::Result<MockServer> {
        MockServer::try_start_on(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a server on `addr` (a server restarted on the address of one shut down, for
    /// tests of a server that goes away and comes back), or says why it cannot.
    pub async fn try_start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            config: Mutex::new(Arc::new(config)),
            received: Mutex::new(Vec::new()),
            cache: Mutex::new(PromptCache::default()),
            counters: Counters::default(),
        });
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(accept(listener, Arc::clone(&state), stop));
        Ok(MockServer { addr, state, shutdown, task: Some(task) })
    }

    /// The base URL, `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bodies of the chat-completions requests received, in arrival order.
    pub fn requests(&self) -> Vec<Json> {
        lock(&self.state.received).iter().filter(|r| r.index.is_some()).map(|r| r.body.clone()).collect()
    }

    /// Every request received, with method, path and `Authorization` header.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// The counters.
    pub fn stats(&self) -> MockStats {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        MockStats {
            requests: get(&c.requests),
            completions: get(&c.completions),
            rejected: get(&c.rejected),
            faults: get(&c.faults),
            rate_limited: get(&c.rate_limited),
            resets: get(&c.resets),
            in_flight: get(&c.in_flight),
            max_in_flight: get(&c.max_in_flight),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> Arc<MockConfig> {
        Arc::clone(&lock(&self.state.config))
    }

    /// Replaces the configuration for the requests that arrive from now on (request indices go
    /// on counting).
    pub fn set_config(&self, config: MockConfig) {
        *lock(&self.state.config) = Arc::new(config);
    }

    /// Stops accepting connections and waits (at most 5 s) for requests in flight.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // The accept task drains the connections by itself.
        let _ = self.shutdown.send(true);
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&state), stop.clone()));
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
}

async fn serve(stream: TcpStream, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&state), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn new(counters: &'a Counters) -> InFlight<'a> {
        let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Reply, DropConnection> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let config = Arc::clone(&lock(&state.config));
    let chat = method == Method::POST && path == "/v1/chat/completions";
    let index = chat.then(|| state.counters.requests.fetch_add(1, Ordering::SeqCst));
    let request_id = match index {
        Some(i) => format!("req_{i:06}"),
        None => "req_other".to_owned(),
    };
    let _in_flight = InFlight::new(&state.counters);
    let bytes = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            state.counters.rejected.fetch_add(1, Ordering::SeqCst);
            let error = ApiError {
                status: 413,
                message: format!("Request body too large (at most {MAX_BODY} bytes)."),
                kind: "invalid_request_error",
                param: None,
                code: None,
            };
            return Ok(error_reply(&error, &request_id));
        }
    };
    let parsed: Result<Json, _> = serde_json::from_slice(&bytes);
    if config.record {
        let body = match &parsed {
            Ok(v) => v.clone(),
            Err(_) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
        };
        lock(&state.received).push(Received {
            index,
            method: method.to_string(),
            path: path.clone(),
            authorization: authorization.clone(),
            body,
        });
    }
    if let Some(key) = &config.api_key
        && let Some(error) = auth_error(key, authorization.as_deref())
    {
        state.counters.rejected.fetch_add(1, Ordering::SeqCst);
        return Ok(error_reply(&error, &request_id));
    }
    let Some(index) = index else {
        if method == Method::GET && path == "/v1/models" {
            return Ok(models(&config, &request_id));
        }
        state.counters.rejected.fetch_add(1, Ordering::SeqCst);
        let error = ApiError {
            status: 404,
            message: format!("Invalid URL ({method} {path})"),
            kind: "invalid_request_error",
            param: None,
            code: None,
        };
        return Ok(error_reply(&error, &request_id));
    };
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
    let body = match parsed {
        Ok(body) => body,
        Err(_) => {
            state.counters.rejected.fetch_add(1, Ordering::SeqCst);
            let error = ApiError::invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                None,
                None,
            );
            return Ok(error_reply(&error, &request_id));
        }
    };
    if let Err(error) = validate::check(&body, &config.extra_fields).and_then(|()| model_known(&config, &body)) {
        state.counters.rejected.fetch_add(1, Ordering::SeqCst);
        return Ok(error_reply(&error, &request_id));
    }
    let fault = fault_of(&config, index);
    if fault.is_some() {
        state.counters.faults.fetch_add(1, Ordering::SeqCst);
    }
    let mut violate = false;
    match fault {
        None => {}
        Some(Fault::RateLimit { retry_after }) => {
            state.counters.rate_limited.fetch_add(1, Ordering::SeqCst);
            let error = ApiError {
                status: 429,
                message: "Rate limit reached for requests (injected by weft-testkit). Please try again later.".into(),
                kind: "requests",
                param: None,
                code: Some("rate_limit_exceeded"),
            };
            return Ok(with_retry_after(error_reply(&error, &request_id), retry_after.as_deref()));
        }
        Some(Fault::ServerError) => {
            let error = ApiError {
                status: 500,
                message: "The server had an error while processing your request. Sorry about that! (injected by weft-testkit)".into(),
                kind: "server_error",
                param: None,
                code: None,
            };
            return Ok(error_reply(&error, &request_id));
        }
        Some(Fault::Unavailable { retry_after }) => {
            let error = ApiError {
                status: 503,
                message: "The engine is currently overloaded, please try again later. (injected by weft-testkit)".into(),
                kind: "server_error",
                param: None,
                code: None,
            };
            return Ok(with_retry_after(error_reply(&error, &request_id), retry_after.as_deref()));
        }
        Some(Fault::Status { status, message }) => {
            let error = ApiError {
                status,
                message,
                kind: if status >= 500 { "server_error" } else { "invalid_request_error" },
                param: None,
                code: None,
            };
            return Ok(error_reply(&error, &request_id));
        }
        Some(Fault::ApiError { status, kind, code, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
            return Ok(json_reply(status, &body, &request_id));
        }
        Some(Fault::Reset) => {
            state.counters.resets.fetch_add(1, Ordering::SeqCst);
            return Err(DropConnection);
        }
        Some(Fault::InvalidJson) => {
            state.counters.completions.fetch_add(1, Ordering::SeqCst);
            return Ok(reply(
                StatusCode::OK,
                Bytes::from_static(b"{\"id\": \"chatcmpl-broken\", \"choices\": [{\"message\": "),
                &request_id,
            ));
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::EchoAuth { status }) => {
            state.counters.completions.fetch_add(1, Ordering::SeqCst);
            return Ok(echo_auth(status, authorization.as_deref().unwrap_or_default(), index, &body));
        }
        Some(Fault::EchoAuthText { status, offset }) => {
            state.counters.completions.fetch_add(1, Ordering::SeqCst);
            let authorization = authorization.as_deref().unwrap_or_default();
            let credential = authorization.split_once(' ').map_or(authorization, |(_, c)| c);
            let filler: String = "<p>proxy error, the upstream refused the request; ".chars().cycle().take(offset).collect();
            let text = format!("{filler}{credential} (end of the echoed credential) {}", "more text; ".repeat(40));
            let mut response = reply(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), Bytes::from(text), &request_id);
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
            return Ok(response);
        }
        Some(Fault::Oversized { bytes, declared }) => {
            state.counters.completions.fetch_add(1, Ordering::SeqCst);
            let filler = Filler { remaining: bytes, declared: bytes.filter(|_| declared) };
            let mut response = Response::new(Either::Right(filler));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(response);
        }
        Some(Fault::Redirect { status, location }) => {
            let mut response = reply(StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT), Bytes::new(), &request_id);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(hyper::header::LOCATION, value);
            }
            return Ok(response);
        }
        Some(Fault::SchemaViolation) => violate = true,
        // Only a streamed answer can be cut; a plain one is answered in full.
        Some(Fault::CutStream) => {}
    }
    let content = reply::content(&config, index, &body, violate);
    let cached = lock(&state.cache).lookup(&body);
    let completion = reply::completion(index, &body, &content, cached);
    state.counters.completions.fetch_add(1, Ordering::SeqCst);
    if body.get("stream").and_then(Json::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Json::as_bool) == Some(true);
        let events = reply::stream_events(&completion, include_usage, fault == Some(Fault::CutStream));
        let mut response = reply(StatusCode::OK, Bytes::from(events), &request_id);
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        return Ok(response);
    }
    Ok(json_reply(StatusCode::OK, &completion, &request_id))
}

fn auth_error(key: &str, authorization: Option<&str>) -> Option<ApiError> {
    let given = match authorization {
        None => {
            return Some(ApiError {
                status: 401,
                message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".into(),
                kind: "invalid_request_error",
                param: None,
                code: None,
            });
        }
        Some(header) => header.strip_prefix("Bearer ").unwrap_or(header),
    };
    (given != key).then(|| {
        let (shown, _) = weft_spec::text::excerpt(given, 4);
        ApiError {
            status: 401,
            message: format!(
                "Incorrect API key provided: {shown}****. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    })
}

fn model_known(config: &MockConfig, body: &Json) -> Result<(), ApiError> {
    let model = body.get("model").and_then(Json::as_str).unwrap_or_default();
    match &config.models {
        Some(models) if !models.iter().any(|m| m == model) => Err(ApiError {
            status: 404,
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            kind: "invalid_request_error",
            param: None,
            code: Some("model_not_found"),
        }),
        _ => Ok(()),
    }
}

/// The fault of request `index`: scripted, else drawn.
fn fault_of(config: &MockConfig, index: u64) -> Option<Fault> {
    if let Some(fault) = config.faults.at.get(&index) {
        return Some(fault.clone());
    }
    if config.faults.random.is_empty() {
        return None;
    }
    let draw = rng::stream(config.seed, index, 1).unit();
    let mut threshold = 0.0;
    for (probability, fault) in &config.faults.random {
        threshold += probability.clamp(0.0, 1.0);
        if draw < threshold {
            return Some(fault.clone());
        }
    }
    None
}

fn models(config: &MockConfig, request_id: &str) -> Reply {
    let ids = config.models.clone().unwrap_or_else(|| vec!["weft-mock".to_owned()]);
    let data: Vec<Json> = ids.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "weft-testkit"})).collect();
    json_reply(StatusCode::OK, &json!({"object": "list", "data": data}), request_id)
}

fn error_reply(error: &ApiError, request_id: &str) -> Reply {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_reply(status, &error.body(), request_id)
}

fn json_reply(status: StatusCode, body: &Json, request_id: &str) -> Reply {
    reply(status, Bytes::from(body.to_string()), request_id)
}

fn reply(status: StatusCode, body: Bytes, request_id: &str) -> Reply {
    let mut response = Response::new(Either::Left(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// The reply of [`Fault::EchoAuth`].
fn echo_auth(status: u16, authorization: &str, index: u64, request: &Json) -> Reply {
    let credential = authorization.split_once(' ').map_or(authorization, |(_, c)| c);
    let decoded = authorization.strip_prefix("Basic ").and_then(base64_decode).unwrap_or_default();
    let encoded: String = credential
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let b64 = weft_guard::secrets::base64_standard(credential.as_bytes());
    let message =
        format!("echo: authorization={authorization:?} credential={credential} decoded={decoded} urlencoded={encoded} base64={b64}");
    let realm = weft_guard::secrets::base64_standard(if decoded.is_empty() { credential } else { &decoded }.as_bytes());
    let mut response = if status == 200 {
        json_reply(StatusCode::OK, &reply::completion(index, request, &reply::Content::Text(message.clone()), 0), "req_echo")
    } else {
        let body = json!({"error": {"message": message, "type": credential, "code": encoded, "param": b64}});
        json_reply(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &body, "req_echo")
    };
    if let Ok(value) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\", error=\"{credential}\"")) {
        response.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, value);
    }
    if let Ok(value) = HeaderValue::from_str(credential) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Decodes standard base64 (padding optional) into UTF-8 text.
fn base64_decode(text: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn with_retry_after(mut response: Reply, retry_after: Option<&str>) -> Reply {
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(hyper::header::RETRY_AFTER, value);
    }
    response
}
