//! The simulated model: scripted replies, the rule, determinism, latency and usage.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value as Json, json};
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
use weft_llm::{ChatMessage, ChatModel, ChatRequest, RequestMeta, ResponseFormat, Role, SchemaDelivery};

fn request(node: &str, call_index: u64, prompt: &str, schema: Option<Json>) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::System, "You are terse."), ChatMessage::new(Role::User, prompt)],
        response_format: schema.map(|schema| ResponseFormat {
            name: "answer".to_owned(),
            schema: schema.into(),
            strict: true,
            delivery: SchemaDelivery::Native,
        }),
        meta: RequestMeta { node: node.to_owned(), node_path: format!("flow/{node}"), call_index, batch_index: None },
        ..ChatRequest::default()
    }
}

fn model(script: Script) -> SimulatedModel {
    SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() })
}

async fn reply(model: &SimulatedModel, request: &ChatRequest) -> String {
    model.chat(request).await.expect("the simulated model answers").text
}

#[tokio::test]
async fn scripted_replies_in_order_then_the_rule() {
    let script = Script::from_json(r#"{"classify": ["first", {"label": "spam"}, 3], "other": []}"#, "script.json").unwrap();
    let model = model(script);
    let schema = json!({"type": "object", "properties": {"label": {"type": "string"}}});
    let ask = |index| request("classify", index, "Classify this", Some(schema.clone()));
    assert_eq!(reply(&model, &ask(0)).await, "first");
    assert_eq!(reply(&model, &ask(1)).await, r#"{"label":"spam"}"#);
    assert_eq!(reply(&model, &ask(2)).await, "3");
    // Past the script's end, and for nodes without replies, the rule answers.
    assert_eq!(reply(&model, &ask(3)).await, r#"{"label":"label"}"#);
    assert_eq!(reply(&model, &ask(u64::MAX)).await, r#"{"label":"label"}"#);
    assert_eq!(reply(&model, &request("other", 0, "Hi", None)).await, r#"Simulated reply to "Hi""#);
    assert_eq!(reply(&model, &request("unscripted", 0, "Hi", None)).await, r#"Simulated reply to "Hi""#);
}

#[tokio::test]
async fn the_rule_for_both_deliveries() {
    let model = model(Script::new());
    let schema =
        json!({"type": "object", "properties": {"summary": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}});
    let mut native = request("summarize", 0, "Summarize", Some(schema));
    assert_eq!(reply(&model, &native).await, r#"{"summary":"summary","tags":["tags"]}"#);
    native.response_format.as_mut().unwrap().delivery = SchemaDelivery::InPrompt;
    assert_eq!(reply(&model, &native).await, r#"{"summary":"summary","tags":["tags"]}"#);

    let wide = SimulatedModel::new(SimulatedOptions { array_len: 3, ..SimulatedOptions::default() });
    assert_eq!(reply(&wide, &native).await, r#"{"summary":"summary","tags":["tags","tags","tags"]}"#);
}

#[tokio::test]
async fn replies_quote_the_prompt_on_one_line() {
    let model = model(Script::new());
    let long = "Summarize\nthe following   article about the history of the printing press in Europe, please.";
    assert_eq!(
        reply(&model, &request("n", 0, long, None)).await,
        "Simulated reply to \"Summarize the following article about the history of the pri…\""
    );
    let exact = "x".repeat(60);
    assert_eq!(reply(&model, &request("n", 0, &exact, None)).await, format!("Simulated reply to \"{exact}\""));
    assert_eq!(reply(&model, &request("n", 0, &"é".repeat(61), None)).await, format!("Simulated reply to \"{}…\"", "é".repeat(60)));

    // The last user message, else the last message.
    let mut conversation = request("n", 0, "first question", None);
    conversation.messages.push(ChatMessage::new(Role::Assistant, "an answer"));
    conversation.messages.push(ChatMessage::new(Role::User, "  second\nquestion "));
    conversation.messages.push(ChatMessage::new(Role::Tool, "tool output"));
    assert_eq!(reply(&model, &conversation).await, r#"Simulated reply to "second question""#);
    let system_only = ChatRequest { messages: vec![ChatMessage::new(Role::System, "Be brief.")], ..ChatRequest::default() };
    assert_eq!(reply(&model, &system_only).await, r#"Simulated reply to "Be brief.""#);
    assert_eq!(reply(&model, &ChatRequest::default()).await, r#"Simulated reply to """#);
}

#[tokio::test]
async fn same_request_same_reply() {
    let model = model(Script::new());
    let schema = json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"enum": ["x", "y"]}}});
    for request in [request("n", 0, "Hello there", None), request("n", 4, "Hello", Some(schema))] {
        let first = model.chat(&request).await.unwrap();
        for _ in 0..3 {
            assert_eq!(model.chat(&request).await.unwrap(), first);
        }
        // Another model with the same options answers the same.
        assert_eq!(self::model(Script::new()).chat(&request).await.unwrap(), first);
    }
}

#[tokio::test(start_paused = true)]
async fn latency_is_honoured() {
    let model = SimulatedModel::new(SimulatedOptions { latency: Duration::from_millis(1500), ..SimulatedOptions::default() });
    let start = tokio::time::Instant::now();
    model.chat(&request("n", 0, "Hi", None)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(1500));

    let instant = SimulatedModel::new(SimulatedOptions::default());
    let start = tokio::time::Instant::now();
    instant.chat(&request("n", 0, "Hi", None)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn usage_counts_characters() {
    let response = model(Script::new()).chat(&request("n", 0, &"a".repeat(400), None)).await.unwrap();
    // 14 + 400 characters in, the reply's characters out.
    assert_eq!(response.usage.input_tokens, 103);
    assert_eq!(response.usage.output_tokens, (response.text.chars().count() / 4) as u64);
    assert_eq!(response.usage.cached_tokens, 0);
    assert!(response.tool_calls.is_empty());

    let tiny = model(Script::from(BTreeMap::from([("n".to_owned(), vec![json!("")])])));
    let usage = tiny
        .chat(&ChatRequest { meta: RequestMeta { node: "n".to_owned(), ..RequestMeta::default() }, ..ChatRequest::default() })
        .await
        .unwrap()
        .usage;
    assert_eq!((usage.input_tokens, usage.output_tokens), (1, 1));
}

#[tokio::test]
async fn streaming_hands_over_the_text() {
    let model = model(Script::new());
    let mut deltas = Vec::new();
    let mut sink = |delta: &str| deltas.push(delta.to_owned());
    let response = model.chat_streaming(&request("n", 0, "Hi", None), &mut sink).await.unwrap();
    assert_eq!(deltas, vec![response.text]);
    assert_eq!(model.name(), "simulated");
}

#[test]
fn script_accessors() {
    let mut script = Script::new();
    assert!(script.is_empty());
    script.set("a", vec![json!("x")]);
    assert_eq!(script.replies("a"), Some(&[json!("x")][..]));
    assert_eq!(script.replies("b"), None);
    assert_eq!(script.iter().count(), 1);
}

#[test]
fn script_errors_name_the_file_and_the_shape() {
    let error = |text: &str| Script::from_json(text, "replies.json").unwrap_err().to_string();
    let shape = r#"expected a JSON object mapping node names to lists of replies, like {"summarize": ["first reply", {"label": "spam"}]}"#;
    assert_eq!(error(r#"["a"]"#), format!("--llm simulated script replies.json: found an array; {shape}"));
    assert_eq!(
        error(r#"{"classify": "spam"}"#),
        format!(r#"--llm simulated script replies.json: node "classify" has a string where a list of replies belongs; {shape}"#)
    );
    assert_eq!(
        error("{\"a\": [1,}"),
        format!("--llm simulated script replies.json: not valid JSON (expected value at line 1 column 10); {shape}")
    );
    assert!(Script::from_json("{}", "x").unwrap().is_empty());
}

#[tokio::test]
async fn tools_listed_in_the_prompt_are_called_with_json_in_the_text() {
    let model = model(Script::new());
    let spec =
        |name: &str, parameters: Json| weft_llm::ToolSpec { name: name.to_owned(), description: None, parameters: parameters.into() };
    let mut asking = request("agent", 0, "Plan my trip", None);
    asking.prompt_tools = vec![
        spec("get_weather", json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        spec("submit_result", json!({"type": "object", "properties": {"plan": {"type": "string"}}})),
    ];
    let first = model.chat(&asking).await.expect("answer");
    assert!(first.tool_calls.is_empty(), "no native calls: {:?}", first.tool_calls);
    assert_eq!(first.text, r#"{"name":"get_weather","parameters":{"city":"city"}}"#);
    // The call and its result are in the conversation as text: the next tool is submit_result.
    asking.messages.push(ChatMessage::new(Role::Assistant, first.text));
    asking.messages.push(ChatMessage::new(Role::User, "<tool_response>\"sunny\"</tool_response>"));
    let second = model.chat(&asking).await.expect("answer");
    assert_eq!(second.text, r#"{"name":"submit_result","parameters":{"plan":"plan"}}"#);
}

#[tokio::test]
async fn asked_to_pick_a_name_it_answers_the_first() {
    let model = model(Script::new());
    let mut asking = request("pick_mode", 0, "Return the task_name: careful or fast", None);
    asking.prompt_choices = vec!["careful".to_owned(), "fast".to_owned()];
    assert_eq!(reply(&model, &asking).await, "careful");
    // A script still decides.
    let scripted = self::model(Script::from_json(r#"{"pick_mode": ["fast"]}"#, "script.json").unwrap());
    assert_eq!(reply(&scripted, &asking).await, "fast");
}
