//! A scriptable HTTP API on 127.0.0.1, for the tests of ApiNode and RemoteTool: each route
//! (method and path) answers a script of replies in order (the last one again once the script
//! is spent), and every request is kept (method, path, query, headers, body) and counted.
//!
//! ```no_run
//! # async fn demo() {
//! use weft_testkit::api::{ApiReply, ApiServer};
//! let server = ApiServer::start().await;
//! server.route("GET", "/v1/weather/Oslo", [ApiReply::status(503).with_header("Retry-After", "0"), ApiReply::json(200, serde_json::json!({"t": 21}))]);
//! // ... run a flow against server.url() ...
//! assert_eq!(server.hits("/v1/weather/Oslo"), 2);
//! # }
//! ```
//!
//! A route that was not scripted answers 404 with `{"error": "no route for GET /path"}` (or what
//! [`ApiServer::fallback`] scripts);
//! [`ApiReply::echo`] answers 200 with the request itself as JSON.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One reply of a route's script.
#[derive(Debug, Clone)]
pub struct ApiReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Bytes),
    /// The request, as JSON (under this member, when given).
    Echo(Option<String>),
    /// `n` bytes of `x`, in 64 KiB chunks, without a `Content-Length` unless `declared`.
    Filler {
        bytes: u64,
        declared: bool,
    },
}

impl ApiReply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: Json) -> ApiReply {
        ApiReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Bytes(Bytes::from(body.to_string())),
            delay: Duration::ZERO,
        }
    }

    /// `status` with a text body (`text/plain`).
    pub fn text(status: u16, body: &str) -> ApiReply {
        ApiReply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Body::Bytes(Bytes::from(body.to_owned())),
            delay: Duration::ZERO,
        }
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> ApiReply {
        ApiReply { status, headers: Vec::new(), body: Body::Bytes(Bytes::new()), delay: Duration::ZERO }
    }

    /// 200 with the request as JSON: `{"method", "path", "query", "headers", "body"}` (header
    /// names lowercase).
    pub fn echo() -> ApiReply {
        ApiReply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Echo(None),
            delay: Duration::ZERO,
        }
    }

    /// [`ApiReply::echo`], the request as the value of member `member` of the body's object.
    pub fn echo_as(member: &str) -> ApiReply {
        ApiReply { body: Body::Echo(Some(member.to_owned())), ..ApiReply::echo() }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> ApiReply {
        ApiReply::status(status).with_header("location", location)
    }

    /// 200 with a body of `bytes` bytes, with or without a `Content-Length` saying so.
    pub fn oversized(bytes: u64, declared: bool) -> ApiReply {
        ApiReply { status: 200, headers: Vec::new(), body: Body::Filler { bytes, declared }, delay: Duration::ZERO }
    }

    /// The same reply with a header.
    pub fn with_header(mut self, name: &str, value: &str) -> ApiReply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The same reply, sent after `delay`.
    pub fn after(mut self, delay: Duration) -> ApiReply {
        self.delay = delay;
        self
    }
}

/// One request received.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string, as sent (without `?`), if any.
    pub query: Option<String>,
    /// The headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl ApiRequest {
    /// The value of a header (its name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The request as [`ApiReply::echo`] sends it.
    pub fn to_json(&self) -> Json {
        let headers: serde_json::Map<String, Json> = self.headers.iter().map(|(n, v)| (n.clone(), Json::String(v.clone()))).collect();
        json!({"method": self.method, "path": self.path, "query": self.query, "headers": headers, "body": self.body})
    }
}

#[derive(Debug, Default)]
struct Script {
    replies: VecDeque<ApiReply>,
    last: Option<ApiReply>,
}

#[derive(Debug, Default)]
struct ApiState {
    routes: Mutex<HashMap<(String, String), Script>>,
    received: Mutex<Vec<ApiRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running API server; dropping it shuts it down.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<ApiState>,
    shutdown: watch::Sender<bool>,
}

impl ApiServer {
    /// Starts a server on 127.0.0.1 with a random port.
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn start() -> ApiServer {
        let listener = match TcpListener::bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0))).await {
            Ok(listener) => listener,
            Err(error) => panic!("weft-testkit: cannot listen on 127.0.0.1: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("weft-testkit: no local address: {error}"),
        };
        let state = Arc::new(ApiState::default());
        let (shutdown, stop) = watch::channel(false);
        tokio::spawn(accept(listener, Arc::clone(&state), stop));
        ApiServer { addr, state, shutdown }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the replies of `method` (`*` for any) and `path`; the last reply is sent again
    /// once the others were.
    pub fn route(&self, method: &str, path: &str, replies: impl IntoIterator<Item = ApiReply>) {
        let replies: VecDeque<ApiReply> = replies.into_iter().collect();
        let last = replies.back().cloned();
        lock(&self.state.routes).insert((method.to_ascii_uppercase(), path.to_owned()), Script { replies, last });
    }

    /// Scripts the replies of every request no route takes (instead of a 404).
    pub fn fallback(&self, replies: impl IntoIterator<Item = ApiReply>) {
        self.route("*", "*", replies);
    }

    /// Every request received, in arrival order.
    pub fn received(&self) -> Vec<ApiRequest> {
        lock(&self.state.received).clone()
    }

    /// How many requests came to `path` (any method).
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.state.received).iter().filter(|r| r.path == path).count()
    }

    /// How many requests came at all.
    pub fn total(&self) -> usize {
        lock(&self.state.received).len()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept(listener: TcpListener, state: Arc<ApiState>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&state), stop.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
}

async fn serve(stream: TcpStream, state: Arc<ApiState>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&state), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.changed() => {}
    }
}

type Reply = Response<Either<Full<Bytes>, Filler>>;

async fn handle(state: Arc<ApiState>, request: Request<Incoming>) -> Result<Reply, std::convert::Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers =
        request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let body = match Limited::new(request.into_body(), crate::MAX_BODY).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let received = ApiRequest { method: method.clone(), path: path.clone(), query, headers, body };
    lock(&state.received).push(received.clone());
    let reply = {
        let mut routes = lock(&state.routes);
        let key = [(method.clone(), path.clone()), ("*".to_owned(), path.clone()), ("*".to_owned(), "*".to_owned())]
            .into_iter()
            .find(|k| routes.contains_key(k));
        key.and_then(|k| routes.get_mut(&k)).and_then(|script| script.replies.pop_front().or_else(|| script.last.clone()))
    };
    let reply = reply.unwrap_or_else(|| ApiReply::json(404, json!({"error": format!("no route for {method} {path}")})));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = match reply.body {
        Body::Bytes(bytes) => Response::new(Either::Left(Full::new(bytes))),
        Body::Echo(member) => {
            let echoed = match member {
                Some(m) => json!({ m: received.to_json() }),
                None => received.to_json(),
            };
            Response::new(Either::Left(Full::new(Bytes::from(echoed.to_string()))))
        }
        Body::Filler { bytes, declared } => Response::new(Either::Right(Filler { remaining: bytes, declared: declared.then_some(bytes) })),
    };
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// A body of `x`s in 64 KiB chunks.
#[derive(Debug)]
struct Filler {
    remaining: u64,
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
        if this.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = this.remaining.min(FILL.len() as u64);
        this.remaining -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..usize::try_from(n).unwrap_or(0)])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        self.declared.map(SizeHint::with_exact).unwrap_or_default()
    }
}
