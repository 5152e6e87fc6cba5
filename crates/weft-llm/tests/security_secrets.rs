//! Issue 10, items 2 to 4, at the HTTP client: a server echoing the key gets no form of it into
//! an error; credentials in a URL are Basic auth and never shown; `--allow-host` refuses before
//! a byte is sent; redirects are not followed; a response body past the cap fails clearly.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::HashMap;

use weft_guard::EgressPolicy;
use weft_llm::limit::Limiters;
use weft_llm::providers::openai::{ApiProvider, MAX_RESPONSE_BYTES, OpenAiModel, OpenAiOptions, Resolver};
use weft_llm::retry::{RecordingSleeper, RetryPolicy};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, LlmError, Role};
use weft_testkit::{Fault, MockConfig, MockServer};

/// A key with characters that every encoding changes: `/` and `+` (URL, base64 alphabets), `"`
/// (JSON), `=` and `~`.
const KEY: &str = "sk-live/Secret+Key\"Q=~0123456789abcdef";

/// Every form of `secret` a leak could take, computed here independently of the scrubber.
fn leaked_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let url: String = secret
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let base64 = weft_guard::secrets::base64_standard(secret.as_bytes());
    let mut forms = vec![secret.to_owned(), json[1..json.len() - 1].to_owned(), url, base64.trim_end_matches('=').to_owned()];
    // The longest run of letters and digits: found whatever escaping was applied around it.
    let canary = secret.split(|c: char| !c.is_ascii_alphanumeric()).max_by_key(|run| run.len()).unwrap_or_default();
    assert!(canary.len() >= 10, "test secrets have a distinctive run of letters and digits");
    forms.push(canary.to_owned());
    forms
}

fn assert_no_leak(text: &str, secrets: &[&str]) {
    for secret in secrets {
        for form in leaked_forms(secret) {
            assert!(!text.contains(&form), "{form:?} (a form of {secret:?}) leaked into: {text}");
        }
    }
}

fn message(error: &LlmError) -> String {
    error.message.clone()
}

fn ask() -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new(Role::User, "hello")], ..ChatRequest::default() }
}

fn options(url: String) -> OpenAiOptions {
    OpenAiOptions::new(ApiProvider::OpenAiCompatible, url, "m")
        .with_sleeper(RecordingSleeper::new())
        .with_limiters(Limiters::default())
        .with_retry(RetryPolicy { max_retries: 1, ..RetryPolicy::default() })
}

#[tokio::test]
async fn a_server_echoing_the_key_in_401_400_500_bodies_and_basic_headers_gets_no_form_of_it_into_errors() {
    for status in [401, 400, 500, 403, 429] {
        let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::EchoAuth { status })).await;
        let model = OpenAiModel::new(options(server.url()).with_api_key(KEY)).unwrap();
        let error = model.chat(&ask()).await.expect_err("the server refuses");
        let text = message(&error);
        assert!(text.contains(&format!("HTTP {status}")), "{text}");
        assert!(text.contains("[REDACTED]"), "the echo is masked, not dropped: {text}");
        assert_no_leak(&text, &[KEY]);
        assert_no_leak(&format!("{model:?}"), &[KEY]);
        // The server did get the key: the masking is of what came back.
        assert_eq!(server.received()[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    }
}

/// A 60-character key of only the characters no encoding changes (`A-Za-z0-9-._~`).
const PLAIN_KEY: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnop";

/// Every run of 8 characters of `secret` that `text` holds.
fn pieces_of(secret: &str, text: &str) -> Vec<String> {
    secret.as_bytes().windows(8).map(|w| String::from_utf8_lossy(w).into_owned()).filter(|w| text.contains(w.as_str())).collect()
}

#[tokio::test]
async fn a_key_echoed_in_a_long_non_json_body_is_masked_before_the_body_is_cut() {
    assert_eq!(PLAIN_KEY.len(), 60);
    // The message quotes the first 300 characters of a body that is not JSON: with the key
    // at 270, a cut made before masking keeps its first 30 characters, which no longer match.
    for status in [502, 401, 200] {
        for offset in [250, 270, 295] {
            let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::EchoAuthText { status, offset })).await;
            let model = OpenAiModel::new(options(server.url()).with_api_key(PLAIN_KEY)).unwrap();
            let error = model.chat(&ask()).await.expect_err("the server refuses");
            let text = message(&error);
            assert_eq!(server.received()[0].authorization.as_deref(), Some(format!("Bearer {PLAIN_KEY}").as_str()));
            let left = pieces_of(PLAIN_KEY, &text);
            assert!(left.is_empty(), "{status} at {offset}: {left:?} of the key left in: {text}");
            // Masked first, then cut: the mask, and what follows the key in the body when it
            // fits in the 300 characters, are quoted.
            let expected = if offset + 15 <= 300 { "[REDACTED] (end" } else { "[RED" };
            assert!(text.contains(expected), "{status} at {offset}: {text}");
        }
    }
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_auth_and_never_shown() {
    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::EchoAuth { status: 401 })).await;
    let url = server.url().replace("http://", "http://alice:pa%40ss%2Fword-0123456789@");
    let model = OpenAiModel::new(options(url)).unwrap();
    assert!(!model.provider().request_url().contains("alice") && !model.name().contains("pa%40ss"), "{}", model.provider().request_url());
    let text = message(&model.chat(&ask()).await.expect_err("echo"));
    assert_no_leak(&text, &["pa@ss/word-0123456789", "pa%40ss%2Fword-0123456789", "alice:pa@ss/word-0123456789"]);
    let sent = server.received()[0].authorization.clone().unwrap();
    assert_eq!(sent, format!("Basic {}", weft_guard::secrets::base64_standard(b"alice:pa@ss/word-0123456789")));

    // A key and credentials at once is ambiguous: refused, without showing either.
    let url = server.url().replace("http://", "http://alice:pa%40ss%2Fword-0123456789@");
    let refused = OpenAiModel::new(options(url).with_api_key(KEY)).expect_err("both");
    assert!(refused.contains("use one"), "{refused}");
    assert_no_leak(&refused, &[KEY, "pa@ss/word-0123456789", "pa%40ss%2Fword-0123456789"]);
}

#[tokio::test]
async fn allow_host_refuses_a_model_and_its_requests_before_a_byte_is_sent() {
    let server = MockServer::start(MockConfig::default().with_text("hi")).await;
    let policy = EgressPolicy::parse(&["api.example.com", "*.internal.example"]).unwrap();
    let refused = OpenAiModel::new(options(server.url()).with_api_key(KEY).with_egress(policy.clone())).expect_err("refused");
    assert!(refused.contains("refused to connect to 127.0.0.1:") && refused.contains("--allow-host 127.0.0.1"), "{refused}");
    assert_eq!(server.stats().requests, 0);
    // The same through the resolver: the model is never built, nothing is sent.
    let config = llm_config(&server.url());
    let resolver = Resolver::new(HashMap::new(), Vec::new()).with_env(|_| None).with_egress(policy);
    let error = resolver.resolve(&config).err().expect("refused");
    assert!(error.contains("--allow-host"), "{error}");
    assert_eq!(server.stats().requests, 0);

    // An allowed host is reached.
    let allowed = EgressPolicy::parse(&[format!("127.0.0.1:{}", server.addr().port())]).unwrap();
    let model = OpenAiModel::new(options(server.url()).with_egress(allowed)).unwrap();
    assert_eq!(model.chat(&ask()).await.unwrap().text, "hi");
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let elsewhere = MockServer::start(MockConfig::default().with_text("followed")).await;
    let location = format!("{}/chat/completions", elsewhere.url());
    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Redirect { status: 307, location })).await;
    let model = OpenAiModel::new(options(server.url()).with_api_key(KEY)).unwrap();
    let text = message(&model.chat(&ask()).await.expect_err("not followed"));
    assert!(text.contains("HTTP 307") && text.contains("does not follow redirects"), "{text}");
    assert_eq!(elsewhere.stats().requests, 0, "the redirect target got the request");
}

#[tokio::test]
async fn a_response_body_past_the_cap_fails_clearly_while_it_is_read() {
    // Announced by Content-Length, streamed without one, and never ending: each stops at the cap.
    for (bytes, declared) in [(Some(4096), true), (Some(4096), false), (None, false)] {
        let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Oversized { bytes, declared })).await;
        let model = OpenAiModel::new(options(server.url()).with_max_response_bytes(1024)).unwrap();
        let text = message(&model.chat(&ask()).await.expect_err("too large"));
        assert!(text.contains("larger than 1 KiB"), "{bytes:?} {declared}: {text}");
        assert!(text.contains("not retried"), "{text}");
    }
    // The default cap is 32 MiB: 33 MiB over loopback is refused, 1 MiB less than the cap is read.
    assert_eq!(MAX_RESPONSE_BYTES, 32 * 1024 * 1024);
    let server =
        MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Oversized { bytes: Some(33 << 20), declared: false })).await;
    let model = OpenAiModel::new(options(server.url())).unwrap();
    let text = message(&model.chat(&ask()).await.expect_err("too large"));
    assert!(text.contains("larger than 32 MiB"), "{text}");
}

/// An OpenAiCompatibleConfig for `url`, loaded and lowered as `weft run` does.
fn llm_config(url: &str) -> weft_spec::LlmConfig {
    let mut document =
        serde_json::json!({"component_type": "OpenAiCompatibleConfig", "id": "cfg", "name": "gateway", "url": url, "model_id": "m"});
    document["agentspec_version"] = serde_json::json!("26.1.2");
    let flow = weft_flow::Flow::from_json(&document.to_string()).expect("a valid config").flow;
    flow.model().llm_config(flow.spec().root).expect("the root is an LLM config").clone()
}

fn env_resolver(secrets: &[(&str, &str)]) -> Resolver {
    let secrets = secrets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Resolver::new(secrets, Vec::new())
        .with_env(|name| (name == "OPENAI_API_KEY").then(|| KEY.to_owned()))
        .with_limiters(Limiters::default())
}

#[test]
fn the_environment_key_is_refused_for_a_host_the_flow_names_and_sent_to_loopback() {
    for url in [
        "http://evil.example:8000/v1",
        "https://api.openai.com.evil.example/v1",
        "http://api.openai.com@evil.example/v1",
        "http://10.0.0.1/v1",
    ] {
        let error = env_resolver(&[]).options(&llm_config(url)).expect_err(url);
        assert!(error.contains("OPENAI_API_KEY is only sent to OpenAI's API"), "{error}");
        assert!(error.contains("--secret cfg.api_key=... or WEFT_SECRET_CFG_API_KEY"), "{error}");
        assert_no_leak(&error, &[KEY]);
    }
    for url in ["http://127.0.0.1:8000/v1", "http://localhost:8000", "http://[::1]:8000/v1"] {
        assert_eq!(env_resolver(&[]).options(&llm_config(url)).unwrap().api_key.as_deref(), Some(KEY), "{url}");
    }
    // The config's own key goes anywhere; an empty one means no key.
    let options = env_resolver(&[("cfg.api_key", "sk-own")]).options(&llm_config("http://evil.example/v1")).unwrap();
    assert_eq!(options.api_key.as_deref(), Some("sk-own"));
    let options = env_resolver(&[("cfg.api_key", "")]).options(&llm_config("http://evil.example/v1")).unwrap();
    assert_eq!(options.api_key, None);
}
