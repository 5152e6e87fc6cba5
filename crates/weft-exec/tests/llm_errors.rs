//! LLM errors as data through the engine (issue 12): a 429, a 401, a 403, a 400
//! `context_length_exceeded`, a 404 model and a timeout from the testkit server each stop the
//! run with a `RunError` of kind `Llm` that names the LLM node (path, id, name) and carries the
//! model's error (kind, status, provider type and code, request id), also as its `source()`;
//! the failed run's state keeps the same `ErrorData`.
//!
//! The flow's LLM config allows one retry with a 1 ms delay (and a 300 ms request timeout for
//! the timeout case), so nothing waits.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json, json};
use weft_exec::state::Outcome;
use weft_exec::{ErrorData, Llm, NodeRef, Plan, RunError, RunErrorKind, RunOptions};
use weft_llm::providers::openai::Resolver;
use weft_llm::{LlmError, LlmErrorKind};
use weft_testkit::{Fault, MockConfig, MockServer};

#[path = "support/llm_error_flow.rs"]
mod llm_error_flow;
use llm_error_flow::{CONFIG_ID, FLOW_NAME, NODE_ID, NODE_NAME, document};

/// One case: what the server does, how the run is set up, and what the error must say.
struct Case {
    server: MockConfig,
    /// The model id the config asks for.
    model: &'static str,
    /// The API key supplied for the config (`cfg-llm-errors.api_key`), when any.
    key: Option<&'static str>,
    /// The request timeout of each attempt, in seconds.
    timeout: Option<f64>,
    kind: LlmErrorKind,
    status: Option<u16>,
    provider_type: Option<&'static str>,
    code: Option<&'static str>,
    request_id: Option<&'static str>,
    /// Requests the server must have received (the first attempt and the retry, if any).
    requests: u64,
}

impl Case {
    fn new(server: MockConfig, kind: LlmErrorKind) -> Case {
        Case {
            server,
            model: "m",
            key: None,
            timeout: None,
            kind,
            status: None,
            provider_type: None,
            code: None,
            request_id: None,
            requests: 1,
        }
    }
}

/// Runs the flow against `case`'s server, checks the error in the three places the library
/// gives it (the `RunError`, its source, the failed state), and returns it.
async fn check(case: Case) -> RunError {
    let server = MockServer::start(case.server).await;
    let flow = weft_flow::Flow::from_json(&document(&server.url(), case.model, case.timeout)).unwrap().flow;
    let options = match case.key {
        // The flow's own config (the default), with no key.
        None => RunOptions::default(),
        Some(key) => {
            let secrets = HashMap::from([(format!("{CONFIG_ID}.api_key"), key.to_owned())]);
            let resolver = Resolver::new(secrets, Vec::new()).with_env(|_| None);
            RunOptions { llm: Llm::Resolver(Arc::new(resolver.into_fn())), ..RunOptions::default() }
        }
    };
    let plan = Plan::new(&flow, options).unwrap();
    let mut inputs = Map::new();
    inputs.insert("question".into(), Json::from("What is the capital of France?"));
    let mut run = plan.start(inputs).unwrap();
    let t0 = Instant::now();
    let error = run.execute().await.expect_err("the LLM call fails");
    assert!(t0.elapsed() < Duration::from_secs(5), "no real waiting: {:?}", t0.elapsed());

    // The RunError.
    assert_eq!(error.kind, RunErrorKind::Llm, "{error:?}");
    let node = NodeRef { path: FLOW_NAME.into(), id: NODE_ID.into(), name: NODE_NAME.into() };
    assert_eq!(error.node.as_ref(), Some(&node), "{error:?}");
    assert!(error.tool.is_none(), "{error:?}");
    let llm: &LlmError = error.llm.as_ref().expect("the LLM error as data");
    assert_eq!(llm.kind, case.kind, "{llm:?}");
    assert_eq!(llm.status, case.status, "{llm:?}");
    assert_eq!(llm.provider_type.as_deref(), case.provider_type, "{llm:?}");
    assert_eq!(llm.provider_code.as_deref(), case.code, "{llm:?}");
    assert_eq!(llm.request_id.as_deref(), case.request_id, "{llm:?}");
    if let Some(id) = case.request_id {
        assert!(llm.message.contains(id), "the message names the request id: {}", llm.message);
    }
    assert!(error.message.contains(NODE_NAME), "the message names the node: {}", error.message);

    // Its source is the same LLM error.
    let source = std::error::Error::source(&error).expect("a source");
    let source = source.downcast_ref::<LlmError>().expect("the source is the LlmError");
    assert_eq!(source, llm);

    // The failed run's state keeps the same data.
    let data = ErrorData::from(&error);
    assert_eq!(data.llm.as_ref().map(|l| l.kind), Some(case.kind));
    match &run.state().outcome {
        Outcome::Failed { error: kept } => assert_eq!(kept, &data),
        other => panic!("the state should say failed: {other:?}"),
    }
    // And as JSON, in the documented shape.
    let json = serde_json::to_value(&run.state().outcome).unwrap();
    assert_eq!(json["status"], "failed");
    assert_eq!(json["error"]["kind"], "llm");
    assert_eq!(json["error"]["node"], json!({"path": FLOW_NAME, "id": NODE_ID, "name": NODE_NAME}));
    assert_eq!(json["error"]["llm"]["kind"], serde_json::to_value(case.kind).unwrap());
    assert_eq!(json["error"]["llm"]["status"], case.status.map_or(Json::Null, Json::from));
    assert_eq!(json["error"]["llm"]["provider_code"], case.code.map_or(Json::Null, Json::from));
    assert_eq!(json["error"]["llm"]["request_id"], case.request_id.map_or(Json::Null, Json::from));

    assert_eq!(server.stats().requests, case.requests, "{:?}", server.stats());
    error
}

#[tokio::test]
async fn a_429_past_its_retry_is_rate_limited_with_the_last_request_id() {
    let server = MockConfig::default().with_random_fault(1.0, Fault::rate_limit(0.0));
    let error = check(Case {
        status: Some(429),
        provider_type: Some("requests"),
        code: Some("rate_limit_exceeded"),
        request_id: Some("req_000001"),
        requests: 2,
        ..Case::new(server, LlmErrorKind::RateLimited)
    })
    .await;
    let llm = error.llm.unwrap();
    assert!(llm.is_transient());
    assert!(llm.message.contains("after 2 attempts"), "{}", llm.message);
}

#[tokio::test]
async fn a_401_wrong_key_is_an_authentication_error() {
    const WRONG: &str = "sk-wrong-key-0123456789abcdef";
    let server = MockConfig::default().with_api_key("sk-right-key-0123456789abcdef");
    let error = check(Case {
        key: Some(WRONG),
        status: Some(401),
        provider_type: Some("invalid_request_error"),
        code: Some("invalid_api_key"),
        request_id: Some("req_000000"),
        ..Case::new(server, LlmErrorKind::Authentication)
    })
    .await;
    let data = serde_json::to_string(&ErrorData::from(&error)).unwrap();
    assert!(!data.contains(WRONG), "{data}");
}

#[tokio::test]
async fn a_403_is_a_permission_error() {
    let server = MockConfig::default().with_fault(0, Fault::forbidden());
    check(Case {
        status: Some(403),
        provider_type: Some("permission_error"),
        code: Some("model_not_allowed"),
        request_id: Some("req_000000"),
        ..Case::new(server, LlmErrorKind::Permission)
    })
    .await;
}

#[tokio::test]
async fn a_400_context_length_exceeded_is_context_too_long() {
    let server = MockConfig::default().with_fault(0, Fault::context_length_exceeded());
    let error = check(Case {
        status: Some(400),
        provider_type: Some("invalid_request_error"),
        code: Some("context_length_exceeded"),
        request_id: Some("req_000000"),
        ..Case::new(server, LlmErrorKind::ContextTooLong)
    })
    .await;
    let llm = error.llm.unwrap();
    assert!(llm.provider_message.as_deref().unwrap().contains("maximum context length is 8192 tokens"), "{llm:?}");
}

#[tokio::test]
async fn a_404_model_is_model_not_found() {
    let server = MockConfig::default().with_models(["known"]);
    check(Case {
        model: "unknown-model",
        status: Some(404),
        provider_type: Some("invalid_request_error"),
        code: Some("model_not_found"),
        request_id: Some("req_000000"),
        ..Case::new(server, LlmErrorKind::ModelNotFound)
    })
    .await;
}

#[tokio::test]
async fn no_answer_within_the_request_timeout_is_timed_out() {
    let server = MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3)));
    let error = check(Case { timeout: Some(0.3), requests: 2, ..Case::new(server, LlmErrorKind::TimedOut) }).await;
    let llm = error.llm.unwrap();
    assert!(llm.is_transient());
    assert!(llm.message.contains("after 2 attempts"), "{}", llm.message);
}

/// The message of a prompt past the context gives the advice of its kind, not the generic advice
/// of a 400 ("check the model id and the generation parameters"), which it gave before the
/// OpenAI client chose its advice by the classified kind.
#[tokio::test]
async fn the_context_too_long_message_advises_shortening_the_prompt() {
    let server = MockConfig::default().with_fault(0, Fault::context_length_exceeded());
    let error = check(Case {
        status: Some(400),
        provider_type: Some("invalid_request_error"),
        code: Some("context_length_exceeded"),
        request_id: Some("req_000000"),
        ..Case::new(server, LlmErrorKind::ContextTooLong)
    })
    .await;
    let llm = error.llm.unwrap();
    assert!(llm.message.contains(LlmErrorKind::ContextTooLong.advice()), "{}", llm.message);
    assert!(!llm.message.contains("check the model id"), "{}", llm.message);
}
