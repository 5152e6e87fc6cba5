//! Streamed chat completions over real HTTP against the weft-testkit server on 127.0.0.1: text
//! handed on as it arrives, tool calls assembled from their deltas, usage from the final chunk,
//! and a stream cut mid-way retried or failing clearly, never returned as an answer.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use serde_json::json;
use weft_llm::limit::Limiters;
use weft_llm::providers::openai::{ApiProvider, OpenAiModel, OpenAiOptions};
use weft_llm::retry::{RecordingSleeper, RetryPolicy};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, LlmErrorKind, Role, ToolSpec};
use weft_testkit::{Fault, MockConfig, MockServer, ScriptedCall, ToolReply};

fn streaming_model(server: &MockServer, retry: RetryPolicy) -> OpenAiModel {
    let options = OpenAiOptions::new(ApiProvider::OpenAiCompatible, server.url(), "m")
        .with_sleeper(RecordingSleeper::new())
        .with_limiters(Limiters::default())
        .with_jitter_seed(1)
        .with_retry(retry);
    OpenAiModel::new(options).unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest { messages: vec![ChatMessage::new(Role::User, text)], ..ChatRequest::default() }
}

#[tokio::test]
async fn streamed_text_arrives_in_pieces_and_adds_up_to_the_answer() {
    let server = MockServer::start(MockConfig::default().with_text("The capital of Switzerland is Bern.")).await;
    let model = streaming_model(&server, RetryPolicy::default());
    let mut pieces = Vec::new();
    let answer = model.chat_streaming(&ask("Capital?"), &mut |d: &str| pieces.push(d.to_owned())).await.unwrap();
    assert_eq!(answer.text, "The capital of Switzerland is Bern.");
    assert!(pieces.len() > 3, "the text came in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), answer.text);
    assert!(answer.usage.input_tokens > 0 && answer.usage.output_tokens > 0, "usage from the final chunk: {:?}", answer.usage);
    let body = &server.requests()[0];
    assert_eq!((body["stream"].clone(), body["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
    // The same request unstreamed carries `stream: false` and no options.
    model.chat(&ask("Capital?")).await.unwrap();
    let body = &server.requests()[1];
    assert_eq!(body["stream"], json!(false));
    assert!(body.get("stream_options").is_none());
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_from_their_deltas() {
    let script = ToolReply::Script(vec![vec![
        ScriptedCall::new("get_weather", json!({"city": "Zürich"})).with_id("call_a"),
        ScriptedCall::new("get_time", json!({"zone": "CET"})).with_id("call_b"),
    ]]);
    let server = MockServer::start(MockConfig::default().with_tools(script)).await;
    let model = streaming_model(&server, RetryPolicy::default());
    let mut request = ask("Weather and time?");
    for name in ["get_weather", "get_time"] {
        request.tools.push(ToolSpec {
            name: name.into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}}).into(),
        });
    }
    let answer = model.chat_streaming(&request, &mut |_: &str| {}).await.unwrap();
    let calls: Vec<(&str, &str, serde_json::Value)> =
        answer.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone())).collect();
    assert_eq!(calls, vec![("call_a", "get_weather", json!({"city": "Zürich"})), ("call_b", "get_time", json!({"zone": "CET"}))]);
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_retried_and_one_always_cut_fails_clearly() {
    let config = MockConfig::default().with_text("A long answer that will be cut in the middle.").with_fault(0, Fault::CutStream);
    let server = MockServer::start(config).await;
    let model = streaming_model(&server, RetryPolicy::default());
    let mut text = String::new();
    let answer = model.chat_streaming(&ask("Tell me"), &mut |d: &str| text.push_str(d)).await.unwrap();
    assert_eq!(answer.text, "A long answer that will be cut in the middle.");
    assert_eq!(server.requests().len(), 2, "the cut stream was tried again");
    assert!(text.ends_with(&answer.text), "after a retry the text starts again: {text:?}");

    let config = MockConfig::default().with_text("Never complete.").with_random_fault(1.0, Fault::CutStream);
    let server = MockServer::start(config).await;
    let model = streaming_model(&server, RetryPolicy { max_retries: 1, ..RetryPolicy::default() });
    let error = model.chat_streaming(&ask("Tell me"), &mut |_: &str| {}).await.unwrap_err();
    assert!(error.message.contains("the stream ended before the answer was complete"), "{}", error.message);
    assert_eq!(error.kind, LlmErrorKind::Transient, "a broken connection, retried");
    assert_eq!(server.requests().len(), 2);
}
