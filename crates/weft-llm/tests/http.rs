//! The plain HTTP client of ApiNode and RemoteTool (`weft_llm::http`) against the testkit's API
//! server on 127.0.0.1: WayFlow's legacy retries without a retry policy, FORMAT.md 9.2 with one
//! (`Retry-After`, statuses never retried), timeouts, redirects not followed, the size cap,
//! `--http-rewrite` and `--allow-host`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use weft_guard::EgressPolicy;
use weft_llm::http::{HttpClient, HttpErrorKind, HttpMeta, HttpOptions, HttpRequest, HttpRetry, HttpSend, Rewrites};
use weft_llm::limit::{Limiters, Timeouts};
use weft_llm::retry::{Jitter, RecordingSleeper, RetryPolicy};
use weft_testkit::api::{ApiReply, ApiServer};

fn get(url: String) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url,
        headers: Vec::new(),
        sensitive_headers: Vec::new(),
        body: None,
        retry: HttpRetry::Legacy,
        meta: HttpMeta::default(),
    }
}

fn client(sleeper: Arc<RecordingSleeper>) -> HttpClient {
    HttpClient::new(HttpOptions { sleeper, limiters: Limiters::default(), ..HttpOptions::default() }).unwrap()
}

fn policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy { max_retries, jitter: Jitter::None, ..RetryPolicy::from_agent_spec(&json!({})).unwrap() }
}

#[tokio::test]
async fn without_a_policy_any_non_2xx_is_tried_three_times_at_once() {
    let server = ApiServer::start().await;
    server.route("GET", "/500", [ApiReply::text(500, "boom")]);
    server.route("GET", "/404", [ApiReply::text(404, "nope")]);
    server.route("GET", "/302", [ApiReply::redirect(302, "/elsewhere")]);
    server.route("GET", "/flaky", [ApiReply::status(503), ApiReply::json(200, json!({"ok": true}))]);
    let sleeper = RecordingSleeper::new();
    let http = client(sleeper.clone());
    for path in ["/500", "/404", "/302"] {
        let answer = http.send(&get(format!("{}{path}", server.url()))).await.unwrap();
        assert_eq!(answer.attempts, 3, "{path}");
        assert_eq!(server.hits(path), 3, "{path}");
    }
    let redirect = http.send(&get(format!("{}/302", server.url()))).await.unwrap();
    assert_eq!((redirect.status, redirect.location.as_deref()), (302, Some("/elsewhere")));
    assert_eq!(server.hits("/elsewhere"), 0, "a redirect is never followed");
    let flaky = http.send(&get(format!("{}/flaky", server.url()))).await.unwrap();
    assert_eq!((flaky.status, flaky.attempts, flaky.body.as_str()), (200, 2, "{\"ok\":true}"));
    assert!(sleeper.delays().is_empty(), "the legacy loop does not wait: {:?}", sleeper.delays());
}

#[tokio::test]
async fn without_a_policy_a_dead_server_is_not_retried() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", dead.local_addr().unwrap());
    drop(dead);
    let error = client(RecordingSleeper::new()).send(&get(url)).await.unwrap_err();
    assert_eq!((error.kind, error.attempts), (HttpErrorKind::Connect, 1));
    assert!(error.message.contains("cannot connect"), "{}", error.message);
    assert!(error.message.contains("not retried"), "{}", error.message);
}

#[tokio::test]
async fn a_policy_retries_what_format_9_2_retries_and_honours_retry_after() {
    let server = ApiServer::start().await;
    server.route(
        "GET",
        "/busy",
        [ApiReply::status(429).with_header("Retry-After", "2"), ApiReply::status(503), ApiReply::json(200, json!({"n": 1}))],
    );
    server.route("GET", "/bad", [ApiReply::text(400, "bad request")]);
    server.route("GET", "/gone", [ApiReply::text(404, "gone")]);
    server.route("GET", "/down", [ApiReply::text(500, "down")]);
    let sleeper = RecordingSleeper::new();
    let http = client(sleeper.clone());
    let mut request = get(format!("{}/busy", server.url()));
    request.retry = HttpRetry::Policy(policy(4));
    let answer = http.send(&request).await.unwrap();
    assert_eq!((answer.status, answer.attempts), (200, 3));
    // Retry-After replaces the delay; then the policy's 2 s (1 s × 2¹, no jitter).
    assert_eq!(sleeper.delays(), vec![Duration::from_secs(2), Duration::from_secs(2)]);

    for (path, hits) in [("/bad", 1), ("/gone", 1), ("/down", 3)] {
        let mut request = get(format!("{}{path}", server.url()));
        request.retry = HttpRetry::Policy(policy(2));
        let answer = http.send(&request).await.unwrap();
        assert_eq!(answer.attempts, hits, "{path}");
        assert_eq!(server.hits(path), hits as usize, "{path}");
    }
}

#[tokio::test]
async fn timeouts_name_themselves() {
    let server = ApiServer::start().await;
    server.route("GET", "/slow", [ApiReply::text(200, "late").after(Duration::from_secs(3))]);
    let http = HttpClient::new(HttpOptions {
        legacy_timeout: Duration::from_millis(200),
        limiters: Limiters::default(),
        sleeper: RecordingSleeper::new(),
        ..HttpOptions::default()
    })
    .unwrap();
    let t0 = std::time::Instant::now();
    let error = http.send(&get(format!("{}/slow", server.url()))).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!((error.kind, error.attempts), (HttpErrorKind::Timeout, 1));
    assert!(error.message.contains("no answer within 0.2 s (the attempt timeout"), "{}", error.message);

    // With a policy: its request_timeout, retried; and the call timeout cuts the whole request.
    let limiters = Limiters::default();
    limiters.set_timeouts(Timeouts { call: Duration::from_millis(700), ..Timeouts::default() });
    let http = HttpClient::new(HttpOptions { limiters, sleeper: RecordingSleeper::new(), ..HttpOptions::default() }).unwrap();
    let mut request = get(format!("{}/slow", server.url()));
    request.retry = HttpRetry::Policy(RetryPolicy { request_timeout: Some(Duration::from_millis(300)), ..policy(5) });
    let error = http.send(&request).await.unwrap_err();
    assert_eq!(error.kind, HttpErrorKind::Timeout);
    assert!(error.attempts >= 2, "{error:?}");
}

#[tokio::test]
async fn bodies_past_the_cap_are_refused() {
    let server = ApiServer::start().await;
    server.route("GET", "/big", [ApiReply::oversized(300_000, false)]);
    server.route("GET", "/declared", [ApiReply::oversized(300_000, true)]);
    let http = HttpClient::new(HttpOptions {
        max_response_bytes: 100_000,
        limiters: Limiters::default(),
        sleeper: RecordingSleeper::new(),
        ..HttpOptions::default()
    })
    .unwrap();
    for path in ["/big", "/declared"] {
        let error = http.send(&get(format!("{}{path}", server.url()))).await.unwrap_err();
        assert_eq!(error.kind, HttpErrorKind::TooLarge, "{path}");
        assert!(error.message.contains("larger than 100000 bytes"), "{}", error.message);
    }
}

#[tokio::test]
async fn rewrites_and_allowed_hosts() {
    let server = ApiServer::start().await;
    server.route("*", "/api/orders/7", [ApiReply::echo()]);
    let rewrites = Rewrites::new(vec![("https://orders.example.com".into(), server.url())]).unwrap();
    let http = HttpClient::new(HttpOptions {
        rewrites: rewrites.clone(),
        egress: EgressPolicy::parse(&["127.0.0.1"]).unwrap(),
        limiters: Limiters::default(),
        ..HttpOptions::default()
    })
    .unwrap();
    let mut request = get("https://orders.example.com/api/orders/7?notify=true".into());
    request.method = "PATCH".into();
    request.headers = vec![("Content-Type".into(), "application/json".into())];
    request.sensitive_headers = vec![("Authorization".into(), "Bearer s3cr3t".into())];
    request.body = Some("{\"status\":\"shipped\"}".into());
    let answer = http.send(&request).await.unwrap();
    assert_eq!(answer.rewritten.as_deref(), Some(format!("{}/api/orders/7?notify=true", server.url()).as_str()));
    let got = &server.received()[0];
    assert_eq!((got.method.as_str(), got.query.as_deref(), got.body.as_str()), ("PATCH", Some("notify=true"), "{\"status\":\"shipped\"}"));
    assert_eq!(got.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(got.header("content-type"), Some("application/json"));

    // --allow-host applies to the rewritten URL: the original host is not asked about...
    let only_example = HttpClient::new(HttpOptions {
        rewrites,
        egress: EgressPolicy::parse(&["orders.example.com"]).unwrap(),
        limiters: Limiters::default(),
        ..HttpOptions::default()
    })
    .unwrap();
    let error = only_example.send(&request).await.unwrap_err();
    assert_eq!((error.kind, error.attempts), (HttpErrorKind::Refused, 0));
    assert!(error.message.contains("refused to connect to 127.0.0.1"), "{}", error.message);
    assert!(error.message.contains("sent to http://127.0.0.1"), "{}", error.message);
    assert_eq!(server.total(), 1, "nothing was sent");
}

#[tokio::test]
async fn header_problems_never_quote_the_value() {
    let server = ApiServer::start().await;
    let mut request = get(format!("{}/x", server.url()));
    request.sensitive_headers = vec![("X-Token".into(), "tøken-s3cr3t".into())];
    let error = client(RecordingSleeper::new()).send(&request).await.unwrap_err();
    assert_eq!(error.kind, HttpErrorKind::Invalid);
    assert!(error.message.contains("\"X-Token\" (in sensitive_headers)"), "{}", error.message);
    assert!(!error.message.contains("s3cr3t"), "{}", error.message);
    request.sensitive_headers.clear();
    request.method = "GE T".into();
    let error = client(RecordingSleeper::new()).send(&request).await.unwrap_err();
    assert!(error.message.contains("is not an HTTP method"), "{}", error.message);
    assert_eq!(server.total(), 0);
}
