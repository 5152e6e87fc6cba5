//! LLM errors as data (issue 12): each failure the testkit server can answer reaches the caller
//! of `OpenAiModel::chat` with its kind, status, provider type and code and request id, and no
//! field carries a secret the server echoed.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::time::Duration;

use weft_llm::providers::openai::{ApiProvider, OpenAiModel, OpenAiOptions};
use weft_llm::retry::{RecordingSleeper, RetryPolicy};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, LlmError, LlmErrorKind, Role};
use weft_testkit::{Fault, MockConfig, MockServer};

/// What a test expects of the final error.
struct Expect {
    kind: LlmErrorKind,
    status: Option<u16>,
    code: Option<&'static str>,
    request_id: Option<&'static str>,
}

/// The error of one call to a model on `config`'s server, checked against `expect`; `adjust`
/// changes the client's options.
async fn check(config: MockConfig, adjust: impl FnOnce(OpenAiOptions) -> OpenAiOptions, expect: Expect) -> LlmError {
    let server = MockServer::start(config).await;
    let options = OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m")
        .with_sleeper(RecordingSleeper::new())
        .with_retry(RetryPolicy { max_retries: 1, ..RetryPolicy::default() })
        .with_jitter_seed(1);
    let model = OpenAiModel::new(adjust(options)).unwrap();
    let request = ChatRequest { messages: vec![ChatMessage::new(Role::User, "hi")], ..ChatRequest::default() };
    let error = model.chat(&request).await.unwrap_err();
    assert_eq!(error.kind, expect.kind, "{error:?}");
    assert_eq!(error.status, expect.status, "{error:?}");
    assert_eq!(error.provider_code.as_deref(), expect.code, "{error:?}");
    assert_eq!(error.request_id.as_deref(), expect.request_id, "{error:?}");
    assert_eq!(error.to_string(), error.message);
    assert_eq!(error.is_transient(), expect.kind.is_transient());
    if let Some(id) = expect.request_id {
        assert!(error.message.contains(&format!("(request id {id})")), "{}", error.message);
    }
    error
}

#[tokio::test]
async fn a_wrong_key_is_an_authentication_error() {
    let config = MockConfig::default().with_api_key("sk-right-key-0123456789");
    let expect =
        Expect { kind: LlmErrorKind::Authentication, status: Some(401), code: Some("invalid_api_key"), request_id: Some("req_000000") };
    let error = check(config, |o| o.with_api_key("sk-wrong-key-0123456789"), expect).await;
    assert_eq!(error.provider_type.as_deref(), Some("invalid_request_error"));
    assert!(!error.message.contains("sk-wrong-key-0123456789"), "{}", error.message);
}

#[tokio::test]
async fn a_forbidden_model_is_a_permission_error() {
    let config = MockConfig::default().with_fault(0, Fault::forbidden());
    let expect =
        Expect { kind: LlmErrorKind::Permission, status: Some(403), code: Some("model_not_allowed"), request_id: Some("req_000000") };
    let error = check(config, |o| o, expect).await;
    assert_eq!(error.provider_type.as_deref(), Some("permission_error"));
}

#[tokio::test]
async fn an_unknown_model_is_model_not_found() {
    let config = MockConfig::default().with_models(["known"]);
    let expect =
        Expect { kind: LlmErrorKind::ModelNotFound, status: Some(404), code: Some("model_not_found"), request_id: Some("req_000000") };
    check(config, |o| o, expect).await;
}

#[tokio::test]
async fn a_prompt_past_the_context_is_context_too_long() {
    let config = MockConfig::default().with_fault(0, Fault::context_length_exceeded());
    let expect = Expect {
        kind: LlmErrorKind::ContextTooLong,
        status: Some(400),
        code: Some("context_length_exceeded"),
        request_id: Some("req_000000"),
    };
    let error = check(config, |o| o, expect).await;
    assert!(error.provider_message.as_deref().unwrap().contains("maximum context length is 8192 tokens"), "{error:?}");
    assert!(!error.is_transient());
    assert_eq!(error.advice(), LlmErrorKind::ContextTooLong.advice());
}

#[tokio::test]
async fn a_filtered_prompt_is_content_filtered() {
    let fault = Fault::ApiError {
        status: 400,
        kind: "invalid_request_error".into(),
        code: Some("content_policy_violation".into()),
        message: "Your request was rejected as a result of our safety system.".into(),
    };
    let config = MockConfig::default().with_fault(0, fault);
    let expect = Expect {
        kind: LlmErrorKind::ContentFiltered,
        status: Some(400),
        code: Some("content_policy_violation"),
        request_id: Some("req_000000"),
    };
    check(config, |o| o, expect).await;
}

#[tokio::test]
async fn throttling_to_the_end_is_rate_limited_with_the_last_request_id() {
    let config = MockConfig::default().with_random_fault(1.0, Fault::rate_limit(2.0));
    let expect =
        Expect { kind: LlmErrorKind::RateLimited, status: Some(429), code: Some("rate_limit_exceeded"), request_id: Some("req_000001") };
    let error = check(config, |o| o, expect).await;
    assert!(error.is_transient());
    assert!(error.message.contains("after 2 attempts (1 retry)"), "{}", error.message);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let config = MockConfig::default().with_random_fault(1.0, Fault::ServerError);
    let expect = Expect { kind: LlmErrorKind::Transient, status: Some(500), code: None, request_id: Some("req_000001") };
    check(config, |o| o, expect).await;
}

#[tokio::test]
async fn no_answer_in_time_is_timed_out() {
    let config = MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3)));
    let expect = Expect { kind: LlmErrorKind::TimedOut, status: None, code: None, request_id: None };
    check(config, |o| o.with_request_timeout(Duration::from_millis(200)), expect).await;
}

#[tokio::test]
async fn an_answer_that_is_not_a_completion_is_an_invalid_response() {
    let config = MockConfig::default().with_fault(0, Fault::InvalidJson);
    let expect = Expect { kind: LlmErrorKind::InvalidResponse, status: None, code: None, request_id: Some("req_000000") };
    check(config, |o| o, expect).await;
}

#[tokio::test]
async fn an_echoed_key_is_masked_in_every_field() {
    const KEY: &str = "sk-echoed-secret-0123456789abcdef";
    let config = MockConfig::default().with_fault(0, Fault::EchoAuth { status: 400 });
    let server = MockServer::start(config).await;
    let options =
        OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m").with_api_key(KEY).with_sleeper(RecordingSleeper::new());
    let model = OpenAiModel::new(options).unwrap();
    let request = ChatRequest { messages: vec![ChatMessage::new(Role::User, "hi")], ..ChatRequest::default() };
    let error = model.chat(&request).await.unwrap_err();
    assert_eq!(error.kind, LlmErrorKind::BadRequest, "{error:?}");
    let fields = [&error.provider_type, &error.provider_code, &error.provider_message, &error.request_id];
    assert!(fields.iter().all(|f| f.is_some()), "the server echoes the key in every field: {error:?}");
    for text in fields.into_iter().flatten().chain([&error.message]) {
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }
}
