//! The OpenAI-compatible client over real HTTP against the weft-testkit server on 127.0.0.1:
//! replies, structured output, tool calls, retries (delays seen through an injected sleeper),
//! timeouts (real, small), broken bodies and connections, rejected requests, and models built
//! from Agent Spec LLM configs. No test needs a key or the internet.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use weft_llm::limit::Limiters;
use weft_llm::providers::openai::{ApiProvider, OpenAiModel, OpenAiOptions, ProviderOverride, Resolver, StructuredMode, strict_allowed};
use weft_llm::retry::{Jitter, RecordingSleeper, RetryPolicy, TokioSleeper};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, LlmError, ResponseFormat, Role, SchemaDelivery, ToolCall, ToolSpec};
use weft_testkit::{Fault, MockConfig, MockServer, ScriptedCall, ToolReply};

struct Client {
    model: OpenAiModel,
    sleeper: Arc<RecordingSleeper>,
    limiters: Limiters,
}

fn client_with(server: &MockServer, adjust: impl FnOnce(OpenAiOptions) -> OpenAiOptions) -> Client {
    let sleeper = RecordingSleeper::new();
    let limiters = Limiters::default();
    let options = OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m")
        .with_sleeper(sleeper.clone())
        .with_limiters(limiters.clone())
        .with_jitter_seed(1);
    let model = OpenAiModel::new(adjust(options)).unwrap();
    Client { model, sleeper, limiters }
}

fn client(server: &MockServer) -> Client {
    client_with(server, |o| o)
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::System, "You are terse."), ChatMessage::new(Role::User, text)],
        ..ChatRequest::default()
    }
}

fn closed_schema() -> Json {
    json!({
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["spam", "ham"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["label", "score", "tags"],
        "additionalProperties": false
    })
}

fn structured(schema: Json, delivery: SchemaDelivery) -> ChatRequest {
    let mut request = ask("Classify: win a prize now");
    request.response_format = Some(ResponseFormat { name: "classification".into(), schema: schema.into(), strict: true, delivery });
    request
}

fn valid(schema: &Json, text: &str) -> bool {
    let value: Json = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return false,
    };
    jsonschema::validator_for(schema).unwrap().is_valid(&value)
}

fn message(error: &LlmError) -> String {
    error.message.clone()
}

#[tokio::test]
async fn plain_text_round_trip() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);
    let mut request = ask("Hello there");
    request.generation.insert("max_tokens".into(), json!(64));
    request.generation.insert("temperature".into(), json!(0.2));
    let response = c.model.chat(&request).await.unwrap();
    assert_eq!(response.text, "weft-testkit reply to: Hello there");
    assert!(response.tool_calls.is_empty());
    assert!(response.usage.input_tokens > 0 && response.usage.output_tokens > 0);
    assert_eq!(c.model.endpoint(), server.url());
    assert_eq!(c.model.name(), format!("openai-compatible {}", server.url()));
    let sent = server.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].authorization, None, "no key, no header");
    assert_eq!(
        sent[0].body,
        json!({"model": "m", "stream": false, "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
            "max_completion_tokens": 64, "temperature": 0.2})
    );
    assert!(c.sleeper.delays().is_empty());
}

#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token() {
    let server = MockServer::start(MockConfig::default().with_api_key("sk-test")).await;
    let keyed = client_with(&server, |o| o.with_api_key("sk-test"));
    keyed.model.chat(&ask("hi")).await.unwrap();
    assert_eq!(server.received()[0].authorization.as_deref(), Some("Bearer sk-test"));
    let keyless = client(&server);
    let error = keyless.model.chat(&ask("hi")).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    let text = message(&error);
    assert!(text.contains("HTTP 401 Unauthorized: \"You didn't provide an API key."), "{text}");
    assert!(text.contains("after 1 attempt (not retried)") && text.contains("OPENAI_API_KEY"), "{text}");
    assert!(keyless.sleeper.delays().is_empty());
}

#[tokio::test]
async fn structured_output_is_valid_and_strict_when_the_schema_allows() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);
    let schema = closed_schema();
    let response = c.model.chat(&structured(schema.clone(), SchemaDelivery::Native)).await.unwrap();
    assert!(valid(&schema, &response.text), "{}", response.text);
    let body = &server.requests()[0];
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "classification");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema);

    // An open schema goes without strict, which the server would refuse for it.
    let open = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
    assert!(!strict_allowed(&open));
    let response = c.model.chat(&structured(open.clone(), SchemaDelivery::Native)).await.unwrap();
    assert!(valid(&open, &response.text), "{}", response.text);
    assert_eq!(server.requests()[1]["response_format"]["json_schema"]["strict"], false);

    // Schema in the prompt: nothing more is sent.
    c.model.chat(&structured(closed_schema(), SchemaDelivery::InPrompt)).await.unwrap();
    assert!(server.requests()[2].get("response_format").is_none());
}

#[tokio::test]
async fn json_object_mode_carries_the_schema_in_the_prompt() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client_with(&server, |o| o.with_structured(StructuredMode::JsonObject));
    let schema = closed_schema();
    let response = c.model.chat(&structured(schema.clone(), SchemaDelivery::Native)).await.unwrap();
    assert!(valid(&schema, &response.text), "{}", response.text);
    let body = &server.requests()[0];
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    let last = body["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "system");
    assert!(last["content"][0]["text"].as_str().unwrap().contains("JSON Schema"));
}

#[tokio::test]
async fn a_reply_that_fails_the_schema_comes_back_as_text_for_a_re_ask() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::SchemaViolation)).await;
    let c = client(&server);
    let schema = closed_schema();
    let first = c.model.chat(&structured(schema.clone(), SchemaDelivery::Native)).await.unwrap();
    assert!(!first.text.is_empty());
    assert!(!valid(&schema, &first.text), "{}", first.text);
    let again = c.model.chat(&structured(schema.clone(), SchemaDelivery::Native)).await.unwrap();
    assert!(valid(&schema, &again.text), "{}", again.text);
    assert!(c.sleeper.delays().is_empty(), "a 200 is never retried");
}

#[tokio::test]
async fn tool_calls_round_trip() {
    let script = ToolReply::Script(vec![vec![ScriptedCall::new("add", json!({"a": 2, "b": 3}))]]);
    let server = MockServer::start(MockConfig::default().with_tools(script).with_text("5")).await;
    let c = client(&server);
    let add = ToolSpec {
        name: "add".into(),
        description: Some("Adds two integers".into()),
        parameters: json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]})
            .into(),
    };
    let mut request = ask("What is 2 + 3?");
    request.tools.push(add.clone());
    let first = c.model.chat(&request).await.unwrap();
    assert_eq!(first.text, "");
    assert_eq!(first.tool_calls.len(), 1);
    let call = first.tool_calls[0].clone();
    assert_eq!((call.name.as_str(), &call.arguments), ("add", &json!({"a": 2, "b": 3})));
    assert!(!call.id.is_empty());

    let mut assistant = ChatMessage::new(Role::Assistant, "");
    assistant.tool_calls.push(call.clone());
    let mut result = ChatMessage::new(Role::Tool, "5");
    result.tool_call_id = Some(call.id.clone());
    request.messages.push(assistant);
    request.messages.push(result);
    let second = c.model.chat(&request).await.unwrap();
    assert_eq!(second.text, "5");
    assert!(second.tool_calls.is_empty());

    let bodies = server.requests();
    assert_eq!(
        bodies[0]["tools"][0],
        json!({"type": "function", "function": {"name": "add", "description": "Adds two integers", "parameters": add.parameters}})
    );
    let sent_call = &bodies[1]["messages"][2];
    assert_eq!(sent_call["role"], "assistant");
    assert!(sent_call.get("content").is_none(), "an assistant message that only calls tools has no content: {sent_call}");
    assert_eq!(sent_call["tool_calls"][0]["id"], json!(call.id));
    assert_eq!(
        serde_json::from_str::<Json>(sent_call["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"a": 2, "b": 3})
    );
    assert_eq!(bodies[1]["messages"][3], json!({"role": "tool", "content": "5", "tool_call_id": call.id}));
}

#[tokio::test]
async fn automatic_tool_calls_get_arguments_from_the_schema() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);
    let mut request = ask("Weather in Paris?");
    request.tools.push(ToolSpec {
        name: "weather".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}).into(),
    });
    let response = c.model.chat(&request).await.unwrap();
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].arguments, json!({"city": "city"}));
}

#[tokio::test]
async fn rate_limited_then_success_waits_what_retry_after_says() {
    let config =
        MockConfig::default().with_fault(0, Fault::RateLimit { retry_after: Some("2".into()) }).with_fault(1, Fault::rate_limit(0.25));
    let server = MockServer::start(config).await;
    let c = client(&server);
    let response = c.model.chat(&ask("hi")).await.unwrap();
    assert!(response.text.starts_with("weft-testkit reply"));
    assert_eq!(c.sleeper.delays(), vec![Duration::from_secs(2), Duration::from_millis(250)]);
    let stats = server.stats();
    assert_eq!((stats.requests, stats.rate_limited, stats.completions), (3, 2, 1));
    let limiter = c.limiters.get(c.model.endpoint()).stats();
    assert_eq!(limiter.throttles, 2);
    assert!(limiter.lowest_cap < weft_llm::limit::DEFAULT_MAX_IN_FLIGHT, "the cap was lowered: {limiter:?}");
}

#[tokio::test]
async fn retry_after_is_capped_at_30_seconds() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::Unavailable { retry_after: Some("120".into()) })).await;
    let c = client(&server);
    c.model.chat(&ask("hi")).await.unwrap();
    assert_eq!(c.sleeper.delays(), vec![Duration::from_secs(30)]);
}

#[tokio::test]
async fn server_errors_until_the_retries_run_out() {
    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::ServerError)).await;
    let c = client(&server);
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(server.stats().requests, 6);
    let delays = c.sleeper.delays();
    assert_eq!(delays.len(), 5);
    // Full jitter: each delay is at most its base 1, 2, 4, 8, 8 s.
    for (delay, base) in delays.iter().zip([1, 2, 4, 8, 8]) {
        assert!(*delay <= Duration::from_secs(base), "{delays:?}");
    }
    insta::assert_snapshot!(message(&error).replace(&server.url(), "URL"), @r#"openai-compatible URL (model m): HTTP 500 Internal Server Error: "The server had an error while processing your request. Sorry about that! (injected by weft-testkit)" (type server_error) (request id req_000005), after 6 attempts (5 retries); the server kept failing: try again later, or allow more retries with the LLM config's retry_policy (max_attempts)"#);
}

#[tokio::test]
async fn an_agent_spec_retry_policy_is_followed() {
    let policy = RetryPolicy::from_agent_spec(&json!({
        "max_attempts": 2, "initial_retry_delay": 0.5, "max_retry_delay": 0.75, "jitter": null,
        "recoverable_statuses": {"503": ["overloaded"]}
    }))
    .unwrap();
    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Unavailable { retry_after: None })).await;
    let c = client_with(&server, |o| o.with_retry(policy.clone()));
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(message(&error).contains("after 3 attempts (2 retries)"), "{}", message(&error));
    assert_eq!(c.sleeper.delays(), vec![Duration::from_millis(500), Duration::from_millis(750)]);

    // A 500 is not listed and any_5xx is on: retried too; a 404 never.
    let server = MockServer::start(MockConfig::default().with_models(["known"])).await;
    let c = client_with(&server, |o| o.with_retry(policy));
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(!error.is_transient());
    let text = message(&error);
    assert!(text.contains("HTTP 404 Not Found: \"The model `m` does not exist"), "{text}");
    assert!(text.contains("(type invalid_request_error, code model_not_found)"), "{text}");
    assert!(text.contains(&format!("check the url (requests go to {}/chat/completions)", server.url())), "{text}");
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn max_attempts_zero_means_one_try() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::ServerError)).await;
    let policy = RetryPolicy { max_retries: 0, ..RetryPolicy::default() };
    let c = client_with(&server, |o| o.with_retry(policy));
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(message(&error).contains("after 1 attempt (the retry policy allows no retries)"), "{}", message(&error));
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn a_slow_reply_times_out_and_the_retry_succeeds() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::Slow(Duration::from_secs(3)))).await;
    let c = client_with(&server, |o| o.with_request_timeout(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    let response = c.model.chat(&ask("hi")).await.unwrap();
    assert!(response.text.starts_with("weft-testkit reply"));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(c.sleeper.delays().len(), 1);

    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Slow(Duration::from_secs(3)))).await;
    let c = client_with(&server, |o| {
        o.with_request_timeout(Duration::from_millis(200)).with_retry(RetryPolicy { max_retries: 1, ..RetryPolicy::default() })
    });
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(error.is_transient());
    let text = message(&error);
    assert!(text.contains("the request timed out, after 2 attempts (1 retry)"), "{text}");
    assert!(text.contains("no answer within 0.2 s"), "{text}");
}

#[tokio::test]
async fn a_malformed_body_is_a_clear_error() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::InvalidJson)).await;
    let c = client(&server);
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    let text = message(&error);
    assert!(text.contains("the response is not a chat completion: the body is not JSON"), "{text}");
    assert!(text.contains("(request id req_000000), after 1 attempt (not retried)"), "{text}");
    assert!(text.contains("is an OpenAI-compatible chat-completions endpoint"), "{text}");
    assert_eq!(server.stats().requests, 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::Reset)).await;
    let c = client(&server);
    c.model.chat(&ask("hi")).await.unwrap();
    assert_eq!(server.stats().resets, 1);
    assert_eq!(c.sleeper.delays().len(), 1);

    let server = MockServer::start(MockConfig::default().with_random_fault(1.0, Fault::Reset)).await;
    let c = client_with(&server, |o| o.with_retry(RetryPolicy { max_retries: 2, ..RetryPolicy::default() }));
    let error = c.model.chat(&ask("hi")).await.unwrap_err();
    assert!(error.is_transient());
    let text = message(&error);
    assert!(text.contains("the connection failed") && text.contains("after 3 attempts (2 retries)"), "{text}");
    assert_eq!(server.stats().requests, 3, "reqwest itself does not retry");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sleeper = RecordingSleeper::new();
    let options = OpenAiOptions::new(ApiProvider::Vllm, format!("127.0.0.1:{port}"), "m")
        .with_sleeper(sleeper.clone())
        .with_limiters(Limiters::default())
        .with_retry(RetryPolicy { max_retries: 1, ..RetryPolicy::default() });
    let model = OpenAiModel::new(options).unwrap();
    assert_eq!(model.provider().request_url(), format!("http://127.0.0.1:{port}/v1/chat/completions"));
    let text = message(&model.chat(&ask("hi")).await.unwrap_err());
    assert!(text.starts_with(&format!("vllm http://127.0.0.1:{port}/v1 (model m): cannot connect")), "{text}");
    assert!(text.contains("after 2 attempts (1 retry); could not connect"), "{text}");
    assert_eq!(sleeper.delays().len(), 1);
}

#[tokio::test]
async fn requests_the_api_rejects_are_permanent_errors_with_its_message() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);

    let mut orphan = ask("hi");
    orphan.messages.push(ChatMessage::new(Role::Tool, "42"));
    let error = c.model.chat(&orphan).await.unwrap_err();
    assert!(!error.is_transient());
    let text = message(&error);
    assert!(
        text.contains("HTTP 400 Bad Request: \"Missing required parameter: 'messages[2].tool_call_id'.\" (type invalid_request_error, code missing_required_parameter, param messages[2].tool_call_id)"),
        "{text}"
    );

    let mut unknown = ask("hi");
    unknown.generation.insert("top_k".into(), json!(40));
    let text = message(&c.model.chat(&unknown).await.unwrap_err());
    assert!(text.contains("\"Unrecognized request argument supplied: top_k\""), "{text}");
    assert!(text.contains("check the model id and the generation parameters"), "{text}");

    let mut hot = ask("hi");
    hot.generation.insert("temperature".into(), json!(5));
    assert!(message(&c.model.chat(&hot).await.unwrap_err()).contains("decimal above maximum value"));

    assert!(c.sleeper.delays().is_empty(), "400s are never retried");
    assert_eq!(server.stats().rejected, 3);
    // A server that takes more parameters (vLLM's top_k) is configured so.
    let lenient = MockServer::start(MockConfig::default().accepting("top_k")).await;
    client(&lenient).model.chat(&unknown).await.unwrap();
}

#[tokio::test]
async fn usage_counts_cached_tokens() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);
    let long = "Background. ".repeat(200);
    let mut request = ask(&long);
    let first = c.model.chat(&request).await.unwrap();
    assert_eq!(first.usage.cached_tokens, 0);
    request.messages.push(ChatMessage::new(Role::Assistant, first.text.clone()));
    request.messages.push(ChatMessage::new(Role::User, "And then?"));
    let second = c.model.chat(&request).await.unwrap();
    assert!(second.usage.cached_tokens > 500, "{:?}", second.usage);
    assert!(second.usage.cached_tokens < second.usage.input_tokens);
}

#[tokio::test]
async fn successes_feed_the_limiter_without_taking_permits() {
    let server = MockServer::start(MockConfig::default()).await;
    let c = client(&server);
    let limiter = c.limiters.get(c.model.endpoint());
    let held = limiter.acquire().await;
    c.model.chat(&ask("hi")).await.unwrap();
    assert_eq!(limiter.stats().in_flight, 1, "only the caller's permit");
    drop(held);
}

#[test]
fn the_openai_api_needs_a_key() {
    let error = OpenAiModel::new(OpenAiOptions::new(ApiProvider::OpenAi, "https://api.openai.com", "gpt-4o-mini")).unwrap_err();
    assert!(error.contains("set OPENAI_API_KEY"), "{error}");
    let ok = OpenAiModel::new(OpenAiOptions::new(ApiProvider::OpenAi, "https://api.openai.com", "gpt-4o-mini").with_api_key("sk")).unwrap();
    assert_eq!(ok.provider().request_url(), "https://api.openai.com/v1/chat/completions");
    assert!(OpenAiModel::new(OpenAiOptions::new(ApiProvider::OpenAiCompatible, "http://h:1", " ")).is_err());
}

// ---------------------------------------------------------------------------------------------
// Models from Agent Spec LLM configs.

/// The engine's `ModelResolver`.
type EngineResolver = dyn Fn(&weft_spec::LlmConfig) -> Result<Arc<dyn ChatModel>, String> + Send + Sync;

/// A document whose root is an LLM config, loaded and lowered as `weft run` does.
struct ConfigDoc(weft_flow::Flow);

impl ConfigDoc {
    /// The root config, typed.
    fn root(&self) -> &weft_spec::LlmConfig {
        self.0.model().llm_config(self.0.spec().root).expect("the root is an LLM config")
    }
}

/// Loads a document whose root is an LLM config.
fn load(config: Json) -> ConfigDoc {
    let mut doc = config;
    doc["agentspec_version"] = json!("26.1.2");
    match weft_flow::Flow::from_json(&doc.to_string()) {
        Ok(loaded) => ConfigDoc(loaded.flow),
        Err(errors) => panic!("{errors}"),
    }
}

fn resolver(secrets: &[(&str, &str)], env: &[(&str, &str)], overrides: Vec<ProviderOverride>) -> Resolver {
    let secrets = secrets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Resolver::new(secrets, overrides)
        .with_env(move |name| env.get(name).cloned())
        .with_limiters(Limiters::default())
        .with_sleeper(RecordingSleeper::new())
}

#[test]
fn configs_give_url_key_and_retry_policy() {
    let spec = load(json!({"component_type": "VllmConfig", "id": "v1", "name": "local", "model_id": "llama", "url": "h:8000/",
                           "api_key": {"$component_ref": "v1.api_key"},
                           "retry_policy": {"max_attempts": 3, "request_timeout": 12, "jitter": "equal"}}));
    let r = resolver(&[("v1.api_key", "sk-secret")], &[("OPENAI_API_KEY", "sk-env")], Vec::new());
    let options = r.options(spec.root()).unwrap();
    assert_eq!((options.provider, options.url.as_str(), options.model.as_str()), (ApiProvider::Vllm, "h:8000/", "llama"));
    assert_eq!(options.api_key.as_deref(), Some("sk-secret"));
    assert_eq!(options.retry.max_retries, 3);
    assert_eq!(options.retry.jitter, Jitter::Equal);
    let model = r.resolve(spec.root()).unwrap();
    assert_eq!(model.endpoint(), "http://h:8000/v1");
    assert_eq!(model.name(), "vllm http://h:8000/v1");

    // Without the secret, the environment's key, but only for a loopback server (or OpenAI's
    // API); Ollama never takes it.
    let r = resolver(&[], &[("OPENAI_API_KEY", "sk-env")], Vec::new());
    assert!(r.options(spec.root()).unwrap_err().contains("OPENAI_API_KEY is only sent to OpenAI's API"));
    let local = load(json!({"component_type": "VllmConfig", "id": "v2", "name": "local", "model_id": "llama", "url": "127.0.0.1:8000/"}));
    assert_eq!(r.options(local.root()).unwrap().api_key.as_deref(), Some("sk-env"));
    let ollama =
        load(json!({"component_type": "OllamaConfig", "id": "o", "name": "o", "model_id": "qwen3", "url": "http://127.0.0.1:11434"}));
    assert_eq!(r.options(ollama.root()).unwrap().api_key, None);
    // No key at all: no header, no error.
    let r = resolver(&[], &[], Vec::new());
    assert_eq!(r.options(spec.root()).unwrap().api_key, None);
    assert_eq!(r.options(spec.root()).unwrap().retry.request_timeout, Some(Duration::from_secs(12)));
}

#[test]
fn openai_configs_need_a_key_and_say_which() {
    let spec = load(json!({"component_type": "OpenAiConfig", "id": "gpt", "name": "gpt", "model_id": "gpt-4o-mini",
                           "api_key": {"$component_ref": "gpt.api_key"}}));
    let error = resolver(&[], &[], Vec::new()).options(spec.root()).unwrap_err();
    assert_eq!(
        error,
        "the OpenAI API needs an API key and none is given: supply the secret gpt.api_key (--secret gpt.api_key=... or WEFT_SECRET_GPT_API_KEY) or set OPENAI_API_KEY"
    );
    let options = resolver(&[], &[("OPENAI_API_KEY", "sk-env")], Vec::new()).options(spec.root()).unwrap();
    assert_eq!((options.url.as_str(), options.api_key.as_deref()), ("https://api.openai.com", Some("sk-env")));
    let model = resolver(&[("gpt.api_key", "sk-1")], &[], Vec::new()).resolve(spec.root()).unwrap();
    assert_eq!(model.endpoint(), "https://api.openai.com/v1");
    assert_eq!(model.name(), "openai https://api.openai.com/v1");
}

#[test]
fn generic_llm_configs_by_provider() {
    let generic = |provider: &str, extra: Json| {
        let mut doc =
            json!({"component_type": "LlmConfig", "id": "g", "name": "g", "model_id": "m", "url": "http://h:1/v1", "provider": provider});
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        load(doc)
    };
    let r = resolver(&[], &[], Vec::new());
    for (name, provider) in [
        ("OpenAI-Compatible", ApiProvider::OpenAiCompatible),
        ("vllm", ApiProvider::Vllm),
        ("OLLAMA", ApiProvider::Ollama),
        ("openai_compatible", ApiProvider::OpenAiCompatible),
    ] {
        assert_eq!(r.options(generic(name, json!({})).root()).unwrap().provider, provider, "{name}");
    }
    // api_provider names the protocol and wins over provider (the model's vendor).
    assert_eq!(r.options(generic("meta", json!({"api_provider": "vllm"})).root()).unwrap().provider, ApiProvider::Vllm);
    let error = r.options(generic("anthropic", json!({})).root()).unwrap_err();
    assert!(error.starts_with("not supported yet: LlmConfig with provider \"anthropic\""), "{error}");
    let error = r.options(generic("vllm", json!({"api_type": "responses"})).root()).unwrap_err();
    assert!(error.starts_with("not supported yet: api_type \"responses\""), "{error}");
    let compat = load(
        json!({"component_type": "OpenAiCompatibleConfig", "id": "c", "name": "c", "model_id": "m", "url": "http://h", "api_type": "responses"}),
    );
    assert!(r.options(compat.root()).unwrap_err().contains("the Responses API"));
}

#[test]
fn other_configs_are_not_supported_yet_unless_overridden() {
    let gemini = load(json!({"component_type": "GeminiConfig", "id": "gem", "name": "gem", "model_id": "gemini-2.5-flash",
                             "auth": {"component_type": "GeminiAIStudioAuthConfig", "name": "auth"}}));
    let r = resolver(&[], &[], Vec::new());
    let error = r.options(gemini.root()).unwrap_err();
    assert!(error.starts_with("not supported yet: GeminiConfig: weft calls OpenAI-compatible chat-completions servers"), "{error}");
    let all = ProviderOverride {
        config_id: None,
        provider: ApiProvider::OpenAiCompatible,
        url: "http://127.0.0.1:9/v1".into(),
        model: "llama3".into(),
    };
    let one = ProviderOverride {
        config_id: Some("gem".into()),
        provider: ApiProvider::Ollama,
        url: "http://127.0.0.1:11434".into(),
        model: "qwen3".into(),
    };
    let r = resolver(&[], &[("OPENAI_API_KEY", "sk-env")], vec![all.clone()]);
    let options = r.options(gemini.root()).unwrap();
    assert_eq!(
        (options.provider, options.model.as_str(), options.api_key.as_deref()),
        (ApiProvider::OpenAiCompatible, "llama3", Some("sk-env"))
    );
    let to_openai = ProviderOverride {
        config_id: None,
        provider: ApiProvider::OpenAi,
        url: "https://api.openai.com/v1".into(),
        model: "gpt-4o-mini".into(),
    };
    let error = resolver(&[], &[], vec![to_openai]).options(gemini.root()).unwrap_err();
    assert!(error.contains("the OpenAI API needs an API key and none is given") && error.contains("or set OPENAI_API_KEY"), "{error}");
    let r = resolver(&[], &[("OPENAI_API_KEY", "sk-env")], vec![all, one]);
    let options = r.options(gemini.root()).unwrap();
    assert_eq!((options.provider, options.model.as_str(), options.api_key), (ApiProvider::Ollama, "qwen3", None));
}

#[tokio::test]
async fn a_resolved_config_calls_the_server() {
    let server = MockServer::start(MockConfig::default().with_api_key("sk-local").with_models(["llama"])).await;
    let spec =
        load(json!({"component_type": "OpenAiCompatibleConfig", "id": "c", "name": "local", "model_id": "llama", "url": server.url(),
                           "api_key": {"$component_ref": "c.api_key"}}));
    let resolve = resolver(&[("c.api_key", "sk-local")], &[], Vec::new()).into_fn();
    let model = resolve(spec.root()).unwrap();
    let response = model.chat(&ask("hi")).await.unwrap();
    assert!(response.text.starts_with("weft-testkit reply"));
    assert_eq!(server.received()[0].authorization.as_deref(), Some("Bearer sk-local"));
    // The engine's resolver type.
    let _engine: Arc<EngineResolver> = Arc::new(weft_llm::providers::openai::resolver(HashMap::new(), Vec::new()));
}

#[tokio::test]
async fn the_real_sleeper_waits() {
    let server = MockServer::start(MockConfig::default().with_fault(0, Fault::rate_limit(0.05))).await;
    let model = OpenAiModel::new(
        OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m")
            .with_sleeper(Arc::new(TokioSleeper))
            .with_limiters(Limiters::default()),
    )
    .unwrap();
    let started = std::time::Instant::now();
    model.chat(&ask("hi")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50), "{:?}", started.elapsed());
}

#[tokio::test]
async fn tool_call_arguments_are_sent_back_as_json_text() {
    let server = MockServer::start(MockConfig::default().with_tools(ToolReply::Never)).await;
    let c = client(&server);
    let mut request = ask("go");
    request.tools.push(ToolSpec { name: "f".into(), description: None, parameters: json!({"type": "object"}).into() });
    let mut assistant = ChatMessage::new(Role::Assistant, "calling");
    assistant.tool_calls.push(ToolCall { id: "c9".into(), name: "f".into(), arguments: json!({"x": [1, 2]}) });
    let mut result = ChatMessage::new(Role::Tool, "{\"ok\": true}");
    result.tool_call_id = Some("c9".into());
    request.messages.extend([assistant, result]);
    let response = c.model.chat(&request).await.unwrap();
    assert!(response.tool_calls.is_empty());
    let sent = &server.requests()[0]["messages"][2];
    assert_eq!(sent["content"], json!([{"type": "text", "text": "calling"}]));
    assert_eq!(sent["tool_calls"][0]["function"]["arguments"], json!("{\"x\":[1,2]}"));
}
