//! The mock server over real HTTP with a plain reqwest client: what it accepts, what it rejects
//! (with OpenAI's error bodies), its replies, faults, counters and shutdown.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::time::Duration;

use serde_json::{Value as Json, json};
use weft_testkit::{Fault, MockConfig, MockServer, ScriptedCall, ToolReply};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post(server: &MockServer, body: &Json) -> (u16, Json, reqwest::header::HeaderMap) {
    let response = http().post(format!("{}/chat/completions", server.url())).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Json::String(text)), headers)
}

fn chat(text: &str) -> Json {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

fn schema() -> Json {
    json!({"type": "object", "properties": {"name": {"type": "string", "minLength": 2}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
           "ok": {"type": "boolean"}}, "required": ["name", "age", "ok"], "additionalProperties": false})
}

fn with_schema(body: Json, strict: bool) -> Json {
    let mut body = body;
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "person", "schema": schema(), "strict": strict}});
    body
}

fn content(reply: &Json) -> &str {
    reply["choices"][0]["message"]["content"].as_str().unwrap()
}

fn valid(text: &str) -> bool {
    serde_json::from_str::<Json>(text).is_ok_and(|v| jsonschema::validator_for(&schema()).unwrap().is_valid(&v))
}

#[tokio::test]
async fn answers_with_a_chat_completion_object() {
    let server = MockServer::start(MockConfig::default()).await;
    assert!(server.url().starts_with("http://127.0.0.1:") && server.url().ends_with("/v1"));
    let (status, reply, headers) = post(&server, &chat("Hi   there")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "req_000000");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "m");
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    assert_eq!(content(&reply), "weft-testkit reply to: Hi there");
    let usage = &reply["usage"];
    assert_eq!(usage["total_tokens"], json!(usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()));
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(server.requests(), vec![chat("Hi   there")]);
    let stats = server.stats();
    assert_eq!((stats.requests, stats.completions, stats.rejected, stats.in_flight), (1, 1, 0, 0));
}

#[tokio::test]
async fn rejects_requests_the_api_rejects() {
    let server = MockServer::start(MockConfig::default()).await;
    let cases = [
        (json!({"messages": [{"role": "user", "content": "x"}]}), "you must provide a model parameter", Json::Null),
        (json!({"model": "m"}), "Missing required parameter: 'messages'.", json!("messages")),
        (json!({"model": "m", "messages": []}), "Invalid 'messages': empty array.", json!("messages")),
        (json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}), "Invalid value: 'robot'.", json!("messages[0].role")),
        (
            json!({"model": "m", "messages": [{"content": "x"}]}),
            "Missing required parameter: 'messages[0].role'.",
            json!("messages[0].role"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "1"}]}),
            "Missing required parameter: 'messages[1].tool_call_id'.",
            json!("messages[1].tool_call_id"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "foo": 1}),
            "Unrecognized request argument supplied: foo",
            Json::Null,
        ),
        (
            {
                let mut b = chat("x");
                b["response_format"] = json!({"type": "json_schema", "json_schema": {"schema": schema()}});
                b
            },
            "Missing required parameter: 'response_format.json_schema.name'.",
            json!("response_format.json_schema.name"),
        ),
        (
            {
                let mut b = chat("x");
                b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "p"}});
                b
            },
            "Missing required parameter: 'response_format.json_schema.schema'.",
            json!("response_format.json_schema.schema"),
        ),
        (
            {
                let mut b = chat("x");
                b["response_format"] = json!({"type": "json_object"});
                b
            },
            "'messages' must contain the word 'json' in some form",
            json!("messages"),
        ),
        (
            {
                let mut b = chat("x");
                b["max_completion_tokens"] = json!(0);
                b
            },
            "Invalid 'max_completion_tokens': integer below minimum value.",
            json!("max_completion_tokens"),
        ),
    ];
    for (body, message, param) in cases {
        let (status, reply, _) = post(&server, &body).await;
        assert_eq!(status, 400, "{body}");
        let error = &reply["error"];
        assert!(error["message"].as_str().unwrap().starts_with(message), "{body}: {error}");
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], param, "{body}");
        assert!(error.as_object().unwrap().contains_key("code"));
    }
    // Not JSON at all.
    let response = http().post(format!("{}/chat/completions", server.url())).body("{not json").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let reply: Json = response.json().await.unwrap();
    assert!(reply["error"]["message"].as_str().unwrap().starts_with("We could not parse the JSON body"));
    assert_eq!(server.stats().rejected, 12);
    assert_eq!(server.stats().completions, 0);
}

#[tokio::test]
async fn strict_schemas_must_close_every_object() {
    let server = MockServer::start(MockConfig::default()).await;
    let mut body = chat("x");
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "p", "strict": true,
        "schema": {"type": "object", "properties": {"inner": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}},
                   "required": ["inner"], "additionalProperties": false}}});
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        reply["error"],
        json!({"message": "Invalid schema for response_format 'p': In context=('properties', 'inner'), 'additionalProperties' is required to be supplied and to be false.",
               "type": "invalid_request_error", "param": "response_format", "code": "invalid_json_schema"})
    );
}

#[tokio::test]
async fn structured_replies_fit_the_schema() {
    let server = MockServer::start(MockConfig::default()).await;
    let (status, reply, _) = post(&server, &with_schema(chat("x"), true)).await;
    assert_eq!(status, 200);
    assert!(valid(content(&reply)), "{}", content(&reply));
    // json_object mode: the schema written in the prompt is answered.
    let mut body = json!({"model": "m", "messages": [{"role": "system", "content": format!("Reply in JSON following {}", schema())},
                                                     {"role": "user", "content": "x"}]});
    body["response_format"] = json!({"type": "json_object"});
    let (_, reply, _) = post(&server, &body).await;
    assert!(valid(content(&reply)), "{}", content(&reply));
}

#[tokio::test]
async fn randomized_replies_differ_per_request_stay_valid_and_repeat_with_the_seed() {
    let run = |seed| async move {
        let server = MockServer::start(MockConfig::default().randomized(seed)).await;
        let mut texts = Vec::new();
        for _ in 0..3 {
            let (_, reply, _) = post(&server, &with_schema(chat("same prompt"), true)).await;
            texts.push(content(&reply).to_owned());
            let (_, reply, _) = post(&server, &chat("same prompt")).await;
            texts.push(content(&reply).to_owned());
        }
        texts
    };
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert_ne!(a, run(8).await);
    assert_ne!(a[0], a[2], "identical prompts get different replies");
    assert_ne!(a[1], a[3]);
    for structured in a.iter().step_by(2) {
        assert!(valid(structured), "{structured}");
    }
}

#[tokio::test]
async fn tool_calls_when_tools_are_offered() {
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]);
    let server = MockServer::start(MockConfig::default()).await;
    let mut body = chat("find it");
    body["tools"] = tools.clone();
    let (_, reply, _) = post(&server, &body).await;
    let message = &reply["choices"][0]["message"];
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], Json::Null);
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(serde_json::from_str::<Json>(call["function"]["arguments"].as_str().unwrap()).unwrap(), json!({"q": "q"}));
    // The results go back: now an answer.
    body["messages"].as_array_mut().unwrap().push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    body["messages"].as_array_mut().unwrap().push(json!({"role": "tool", "tool_call_id": call["id"], "content": "found"}));
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    // tool_choice none: no calls.
    let mut none = chat("x");
    none["tools"] = tools.clone();
    none["tool_choice"] = json!("none");
    assert_eq!(post(&server, &none).await.1["choices"][0]["finish_reason"], "stop");
    // Scripted, two rounds.
    let script = ToolReply::Script(vec![
        vec![ScriptedCall::new("lookup", json!({"q": "a"})), ScriptedCall::new("lookup", json!({"q": "b"}))],
        vec![ScriptedCall::new("lookup", json!({"q": "c"}))],
    ]);
    let scripted = MockServer::start(MockConfig::default().with_tools(script)).await;
    let mut body = chat("x");
    body["tools"] = tools;
    let (_, reply, _) = post(&scripted, &body).await;
    let calls = reply["choices"][0]["message"]["tool_calls"].as_array().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
}

#[tokio::test]
async fn an_agent_reply_calls_each_tool_once_then_submits_deciding_from_the_request() {
    let function = |name: &str, parameters: Json| json!({"type": "function", "function": {"name": name, "parameters": parameters}});
    let string_param = |p: &str| json!({"type": "object", "properties": {p: {"type": "string"}}, "required": [p]});
    let tools = json!([
        function("weather", string_param("city")),
        function("talk_to_user", string_param("text")),
        function("hotels", string_param("city")),
        function("submit_result", json!({"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]})),
    ]);
    let server = MockServer::start(MockConfig::default().with_tools(ToolReply::Agent)).await;
    let mut body = chat("plan it");
    body["tools"] = tools.clone();
    let mut names = Vec::new();
    for turn in 0..4 {
        let (status, reply, _) = post(&server, &body).await;
        assert_eq!(status, 200, "{reply}");
        let call = reply["choices"][0]["message"]["tool_calls"][0].clone();
        let name = call["function"]["name"].as_str().unwrap().to_owned();
        let arguments: Json = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        if name == "submit_result" {
            assert!(arguments["total"].is_i64(), "{arguments}");
        }
        names.push(name);
        body["messages"].as_array_mut().unwrap().push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
        body["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "tool", "tool_call_id": call["id"], "content": format!("result {turn}")}));
    }
    // The built-in talk_to_user is never called; submit_result comes once every other tool was.
    assert_eq!(names, ["weather", "hotels", "submit_result", "submit_result"]);
    // Stateless: a fresh conversation starts over, whatever the server answered before.
    let mut fresh = chat("again");
    fresh["tools"] = tools;
    assert_eq!(post(&server, &fresh).await.1["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "weather");
    // Without an agent built-in the reply is the Auto rule's: one call, then an answer.
    let mut plain = chat("find it");
    plain["tools"] = json!([function("lookup", string_param("q"))]);
    assert_eq!(post(&server, &plain).await.1["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn faults_by_index() {
    let config = MockConfig::default()
        .with_fault(0, Fault::rate_limit(1.5))
        .with_fault(1, Fault::ServerError)
        .with_fault(2, Fault::Unavailable { retry_after: Some("3".into()) })
        .with_fault(3, Fault::InvalidJson)
        .with_fault(4, Fault::SchemaViolation)
        .with_fault(5, Fault::Status { status: 418, message: "teapot".into() })
        .with_fault(6, Fault::Reset);
    let server = MockServer::start(config).await;
    let body = with_schema(chat("x"), true);
    let (status, reply, headers) = post(&server, &body).await;
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (429, "1.5"));
    assert_eq!(reply["error"]["code"], "rate_limit_exceeded");
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!((status, reply["error"]["type"].as_str()), (500, Some("server_error")));
    let (status, _, headers) = post(&server, &body).await;
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (503, "3"));
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!(status, 200);
    assert!(reply.is_string(), "not JSON: {reply}");
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!(status, 200);
    assert!(!valid(content(&reply)), "{}", content(&reply));
    let (status, reply, _) = post(&server, &body).await;
    assert_eq!((status, reply["error"]["message"].as_str()), (418, Some("teapot")));
    let error = http().post(format!("{}/chat/completions", server.url())).json(&body).send().await.unwrap_err();
    assert!(error.is_request(), "{error:?}");
    let (status, _, _) = post(&server, &body).await;
    assert_eq!(status, 200);
    let stats = server.stats();
    assert_eq!((stats.requests, stats.faults, stats.rate_limited, stats.resets), (8, 7, 1, 1));
}

#[tokio::test]
async fn random_faults_repeat_with_the_seed() {
    let pattern = |seed| async move {
        let server = MockServer::start(MockConfig::default().with_seed(seed).with_random_fault(0.3, Fault::ServerError)).await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(post(&server, &chat("x")).await.0);
        }
        statuses
    };
    let a = pattern(3).await;
    assert_eq!(a, pattern(3).await);
    let failures = a.iter().filter(|s| **s == 500).count();
    assert!((4..=20).contains(&failures), "{failures} of 40");
}

#[tokio::test]
async fn latency_and_slow_replies() {
    let server =
        MockServer::start(MockConfig::default().with_latency(Duration::from_millis(60)).with_fault(1, Fault::Slow(Duration::from_secs(3))))
            .await;
    let started = std::time::Instant::now();
    post(&server, &chat("x")).await;
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(60), "{first:?}");
    let started = std::time::Instant::now();
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(150)).build().unwrap();
    let error = client.post(format!("{}/chat/completions", server.url())).json(&chat("x")).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn keys_models_and_paths() {
    let server = MockServer::start(MockConfig::default().with_api_key("sk-1").with_models(["a"])).await;
    let url = format!("{}/chat/completions", server.url());
    let response = http().post(&url).json(&chat("x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http().post(&url).bearer_auth("sk-2x").json(&chat("x")).send().await.unwrap();
    let reply: Json = response.json().await.unwrap();
    assert_eq!(reply["error"]["code"], "invalid_api_key");
    let response = http().post(&url).bearer_auth("sk-1").json(&chat("x")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let reply: Json = response.json().await.unwrap();
    assert_eq!(reply["error"]["code"], "model_not_found");
    let mut body = chat("x");
    body["model"] = json!("a");
    let response = http().post(&url).bearer_auth("sk-1").json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let models: Json = http().get(format!("{}/models", server.url())).bearer_auth("sk-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "a");
    let response = http().post(format!("{}/completions", server.url())).bearer_auth("sk-1").json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let reply: Json = response.json().await.unwrap();
    assert_eq!(reply["error"]["message"], "Invalid URL (POST /v1/completions)");
    assert_eq!(server.received().iter().filter(|r| r.index.is_some()).count(), 4);
}

#[tokio::test]
async fn cached_tokens_for_a_repeated_prefix() {
    let server = MockServer::start(MockConfig::default()).await;
    let first = json!({"model": "m", "messages": [{"role": "system", "content": "long instructions ".repeat(100)}, {"role": "user", "content": "a"}]});
    let (_, reply, _) = post(&server, &first).await;
    assert_eq!(reply["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let mut second = first.clone();
    second["messages"][1]["content"] = json!("b");
    let (_, reply, _) = post(&server, &second).await;
    let cached = reply["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached > 400 && cached < reply["usage"]["prompt_tokens"].as_u64().unwrap(), "{}", reply["usage"]);
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_then_refuses() {
    let server = MockServer::start(MockConfig::default().with_latency(Duration::from_millis(150))).await;
    let url = format!("{}/chat/completions", server.url());
    let pending = tokio::spawn({
        let url = url.clone();
        async move { http().post(url).json(&chat("x")).send().await.map(|r| r.status().as_u16()) }
    });
    wait_for(|| server.stats().in_flight == 1).await;
    server.shutdown().await;
    assert_eq!(pending.await.unwrap().unwrap(), 200);
    assert!(http().post(&url).json(&chat("x")).send().await.is_err());

    let dropped = MockServer::start(MockConfig::default()).await;
    let url = format!("{}/chat/completions", dropped.url());
    drop(dropped);
    let client = http();
    for _ in 0..200 {
        if client.post(&url).json(&chat("x")).send().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the dropped server still answers");
}

/// Waits (at most 5 s) until `ready`.
async fn wait_for(ready: impl Fn() -> bool) {
    for _ in 0..500 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting");
}

#[tokio::test]
async fn scripted_replies_and_reconfiguration() {
    let server = MockServer::start(MockConfig::default().with_reply(0, "first").with_text("fixed")).await;
    assert_eq!(content(&post(&server, &chat("x")).await.1), "first");
    assert_eq!(content(&post(&server, &chat("x")).await.1), "fixed");
    server.set_config(MockConfig::default().with_fault(2, Fault::ServerError));
    assert_eq!(post(&server, &chat("x")).await.0, 500);
    let mut two = chat("x");
    two["n"] = json!(2);
    assert_eq!(post(&server, &two).await.1["choices"].as_array().unwrap().len(), 2);
    assert!(!server.config().record || server.requests().len() == 4);
}
