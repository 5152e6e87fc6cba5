//! The record file's format, pinned: the bytes of a header, of LLM lines (every field of a
//! request and a response, and an error) and of tool lines (a result, a `null` result, an
//! error), of HTTP lines (an answer, an error; never a sensitive header), of MCP lines (a call's
//! result, a listing, an error; never a header) and the key of a request.
//! A change here is a change of the format's version (now 4): recordings written before would no
//! longer replay. Files of formats 1, 2 and 3 still replay. Also: a file of a newer version is
//! refused, naming both versions.

#![allow(clippy::unwrap_used, reason = "test helpers")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use weft_llm::http::{HttpError, HttpErrorKind, HttpMeta, HttpRequest, HttpResponse, HttpRetry, HttpSend};
use weft_llm::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorInfo, LlmErrorKind, RequestMeta, ResponseFormat, Role,
    SchemaDelivery, ToolCall, ToolSpec, Usage,
};
use weft_record::format::{HttpLine, LlmLine, McpLine, RecordedRequest, ToolLine};
use weft_record::{HttpRecorder, HttpReplayer, McpRecorder, McpReplayer, RecordLog, Recorder, RecordingTool, Replayer, ToolReplay};
use weft_tools::mcp::{ListedTool, McpAnswer, McpMeta, McpOp, McpReply, McpRequest, McpSend, Server, Sessions, Transport};
use weft_tools::{Tool, ToolError};

/// Answers with a fixed response with a tool call, or fails with every field of an error when the
/// last message says `fail`.
struct Fixed;

#[async_trait::async_trait]
impl ChatModel for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if request.messages.last().is_some_and(|m| m.content == "fail") {
            let mut info = LlmErrorInfo::new(LlmErrorKind::ContextTooLong, "the prompt is too long, after 1 attempt");
            info.status = Some(400);
            info.provider_type = Some("invalid_request_error".into());
            info.provider_code = Some("context_length_exceeded".into());
            info.provider_message = Some("maximum context length is 8192 tokens".into());
            info.request_id = Some("req_123".into());
            return Err(info.into());
        }
        Ok(ChatResponse {
            text: "{\"city\": \"Oslo\"}".into(),
            tool_calls: vec![ToolCall { id: "call_2".into(), name: "weather".into(), arguments: json!({"city": "Oslo"}) }],
            usage: Usage { input_tokens: 120, output_tokens: 15, cached_tokens: 64 },
        })
    }
}

/// Answers `{"temp": <x>}`, `null` for no `x`, and times out for `x` = "slow".
struct Weather;

#[async_trait::async_trait]
impl Tool for Weather {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        match args.get("x") {
            Some(Json::String(s)) if s == "slow" => Err(ToolError::Timeout { after: Duration::from_millis(2500) }),
            Some(x) => Ok(json!({"temp": x})),
            None => Ok(Json::Null),
        }
    }
}

/// A request using every field of a [`ChatRequest`].
fn full_request() -> ChatRequest {
    let mut user = ChatMessage::new(Role::User, "Weather in \"Oslo\"?\nBe brief.");
    user.images.push("data:image/png;base64,iVBORw0KGgo=".into());
    let mut assistant = ChatMessage::new(Role::Assistant, "");
    assistant.tool_calls.push(ToolCall { id: "call_1".into(), name: "weather".into(), arguments: json!({"city": "Oslo", "days": 2}) });
    let mut tool = ChatMessage::new(Role::Tool, "{\"temp\": 4}");
    tool.tool_call_id = Some("call_1".into());
    let mut generation = Map::new();
    generation.insert("temperature".into(), json!(0.2));
    generation.insert("max_tokens".into(), json!(256));
    ChatRequest {
        messages: vec![ChatMessage::new(Role::System, "You are terse."), user, assistant, tool],
        response_format: Some(ResponseFormat {
            name: "answer".into(),
            schema: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}).into(),
            strict: true,
            delivery: SchemaDelivery::Native,
        }),
        tools: vec![
            ToolSpec {
                name: "weather".into(),
                description: Some("The weather of a city".into()),
                parameters: json!({"type": "object"}).into(),
            },
            ToolSpec { name: "clock".into(), description: None, parameters: json!({"type": "object", "properties": {}}).into() },
        ],
        prompt_tools: Vec::new(),
        prompt_call_syntax: None,
        prompt_choices: Vec::new(),
        generation,
        meta: RequestMeta { node: "ask".into(), node_path: "root/map[1]/ask".into(), call_index: 3, batch_index: None },
    }
}

/// A request with only the fields a plain prompt has.
fn plain_request() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, "fail")],
        response_format: Some(ResponseFormat {
            name: "r".into(),
            schema: json!({}).into(),
            strict: false,
            delivery: SchemaDelivery::InPrompt,
        }),
        meta: RequestMeta { node: "plain".into(), node_path: "root/plain".into(), call_index: 0, batch_index: None },
        ..ChatRequest::default()
    }
}

/// Answers every request 201 with the request's body, or fails when its URL says `fail`.
struct Echo;

#[async_trait::async_trait]
impl HttpSend for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        if request.url.contains("fail") {
            return Err(HttpError { kind: HttpErrorKind::Connect, message: "cannot connect".into(), attempts: 1, rewritten: None });
        }
        Ok(HttpResponse {
            status: 201,
            body: request.body.clone().unwrap_or_default(),
            location: None,
            attempts: 2,
            rewritten: Some("http://127.0.0.1:9/orders".into()),
        })
    }
}

fn http_requests() -> [HttpRequest; 2] {
    let request = |url: &str, run: Option<u64>| HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        sensitive_headers: vec![("Authorization".into(), "Bearer never-recorded".into())],
        body: Some("{\"n\":1}".into()),
        retry: HttpRetry::Legacy,
        meta: HttpMeta { node: "api".into(), node_path: "root/api".into(), batch_index: run, volatile: Vec::new() },
    };
    [request("https://orders.example.com/orders", None), request("https://orders.example.com/fail", Some(2))]
}

/// Answers an MCP listing with one tool, a call of `echo` with its text, and fails a call of
/// any other tool.
#[derive(Debug)]
struct Canned;

#[async_trait::async_trait]
impl McpSend for Canned {
    fn name(&self) -> &str {
        "canned"
    }

    async fn send(&self, _sessions: &Sessions, request: &McpRequest) -> McpReply {
        let result = match &request.op {
            McpOp::List => Ok(McpAnswer::Listed(vec![ListedTool {
                name: "echo".into(),
                description: "Echo a text back".into(),
                input_schema: json!({"type": "object", "properties": {"text": {"type": "string"}}}),
                output_schema: None,
            }])),
            McpOp::Call { tool, arguments } if tool == "echo" => {
                Ok(McpAnswer::Called(json!({"content": [{"type": "text", "text": arguments["text"]}], "isError": false})))
            }
            McpOp::Call { .. } => Err(ToolError::Failed { message: "the MCP server of the test closed the connection".into() }),
        };
        McpReply { result, attempts: 1 }
    }
}

fn mcp_requests() -> [McpRequest; 3] {
    let server = Arc::new(Server {
        label: "StreamableHTTPTransport \"crm\"".into(),
        transport: Transport::Http {
            url: "http://127.0.0.1:9/mcp".into(),
            sse: false,
            headers: vec![("X-Trace".into(), "1".into())],
            sensitive_headers: vec![("Authorization".into(), "Bearer never-recorded".into())],
            timeout: Duration::from_secs(5),
        },
        read_timeout: Duration::from_secs(60),
        shown: "http https://crm.example.com/mcp".into(),
    });
    let request = |op: McpOp, run: Option<u64>| McpRequest {
        server: Arc::clone(&server),
        op,
        retry: None,
        meta: McpMeta { node: "agent".into(), node_path: "root/agent".into(), batch_index: run },
    };
    let call = |tool: &str| McpOp::Call { tool: tool.into(), arguments: json!({"text": "hi"}).as_object().unwrap().clone() };
    [request(McpOp::List, None), request(call("echo"), None), request(call("die"), Some(1))]
}

/// `request` as the run of batch index `run` makes it.
fn in_run(mut request: ChatRequest, run: u64) -> ChatRequest {
    request.meta.batch_index = Some(run);
    request
}

/// The file the exchanges below are recorded into, line by line (written by the format-1 code
/// before the record file had types of its own: the same bytes and the same keys; format 2 added
/// the header's version 2 and the `"run"` of a batch's call, the fourth line).
const PINNED: [&str; 12] = [
    r#"{"kind":"header","format":"weft-record","version":4}"#,
    r#"{"kind":"llm","key":"168ce7e9dae8fd268623670d0ec613070c4fb4b1fb97e59530728fa39f561fed","node_path":"root/map[1]/ask","occurrence":1,"model":"fixed","request":{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Weather in \"Oslo\"?\nBe brief.","images":["data:image/png;base64,iVBORw0KGgo="]},{"role":"assistant","content":"","tool_calls":[{"id":"call_1","name":"weather","arguments":{"city":"Oslo","days":2}}]},{"role":"tool","content":"{\"temp\": 4}","tool_call_id":"call_1"}],"response_format":{"name":"answer","schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true,"delivery":"native"},"tools":[{"name":"weather","description":"The weather of a city","parameters":{"type":"object"}},{"name":"clock","parameters":{"type":"object","properties":{}}}],"generation":{"temperature":0.2,"max_tokens":256},"meta":{"node":"ask","node_path":"root/map[1]/ask","call_index":3}},"response":{"text":"{\"city\": \"Oslo\"}","tool_calls":[{"id":"call_2","name":"weather","arguments":{"city":"Oslo"}}],"usage":{"input_tokens":120,"output_tokens":15,"cached_tokens":64}}}"#,
    r#"{"kind":"llm","key":"5cc8b8044144d8465b704a33d5a5e4b82b4b573508a846fe53316e963391f3d5","node_path":"root/plain","occurrence":1,"model":"fixed","request":{"messages":[{"role":"user","content":"fail"}],"response_format":{"name":"r","schema":{},"strict":false,"delivery":"in_prompt"},"meta":{"node":"plain","node_path":"root/plain","call_index":0}},"error":{"kind":"context_too_long","status":400,"provider_type":"invalid_request_error","provider_code":"context_length_exceeded","provider_message":"maximum context length is 8192 tokens","request_id":"req_123","message":"the prompt is too long, after 1 attempt"}}"#,
    r#"{"kind":"llm","key":"5cc8b8044144d8465b704a33d5a5e4b82b4b573508a846fe53316e963391f3d5","run":4,"node_path":"root/plain","occurrence":1,"model":"fixed","request":{"messages":[{"role":"user","content":"fail"}],"response_format":{"name":"r","schema":{},"strict":false,"delivery":"in_prompt"},"meta":{"node":"plain","node_path":"root/plain","call_index":0}},"error":{"kind":"context_too_long","status":400,"provider_type":"invalid_request_error","provider_code":"context_length_exceeded","provider_message":"maximum context length is 8192 tokens","request_id":"req_123","message":"the prompt is too long, after 1 attempt"}}"#,
    r#"{"kind":"tool","key":"ba9a177a8b764232d0bb1cd45c8ece18c1659147f3e47b09f2556882a417f138","tool":"weather","occurrence":1,"args":{"x":"Oslo","n":[1,2.5,null,true]},"result":{"temp":"Oslo"}}"#,
    r#"{"kind":"tool","key":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","tool":"weather","occurrence":1,"args":{},"result":null}"#,
    r#"{"kind":"tool","key":"f427bbef18e0f5e356447e342c57a93301856b13c0c37fe638f88ddb4339e290","tool":"weather","occurrence":1,"args":{"x":"slow"},"error":{"kind":"timeout","after_s":2.5}}"#,
    HTTP_PINNED[0],
    HTTP_PINNED[1],
    MCP_PINNED[0],
    MCP_PINNED[1],
    MCP_PINNED[2],
];

/// The MCP lines (format 4).
const MCP_PINNED: [&str; 3] = [
    r#"{"kind":"mcp","key":"c5d7a2fcf81e91207147d3181efd0823f9e2c8020fe03b5537c251485c509e7f","node_path":"root/agent","occurrence":1,"request":{"server":"http https://crm.example.com/mcp","method":"tools/list"},"attempts":1,"response":{"tools":[{"name":"echo","description":"Echo a text back","inputSchema":{"type":"object","properties":{"text":{"type":"string"}}}}]}}"#,
    r#"{"kind":"mcp","key":"ada0726ec49ccccfb807ceb2474926430cea28d9ceb79a4b810bd8d0e6bfd557","node_path":"root/agent","occurrence":1,"request":{"server":"http https://crm.example.com/mcp","method":"tools/call","tool":"echo","arguments":{"text":"hi"}},"attempts":1,"response":{"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}}"#,
    r#"{"kind":"mcp","key":"cdb1b0110d396afad4a9695505130069839a2ad710f50fa5ed9883f04e69b6b0","run":1,"node_path":"root/agent","occurrence":1,"request":{"server":"http https://crm.example.com/mcp","method":"tools/call","tool":"die","arguments":{"text":"hi"}},"attempts":1,"error":{"kind":"failed","message":"the MCP server of the test closed the connection"}}"#,
];

/// The HTTP lines (format 3).
const HTTP_PINNED: [&str; 2] = [
    r#"{"kind":"http","key":"364e7b1db8f7190ec9590a5d806c6470b15608644cb7ba270efa2c43fb633100","node_path":"root/api","occurrence":1,"request":{"method":"POST","url":"https://orders.example.com/orders","headers":[["Content-Type","application/json"]],"body":"{\"n\":1}"},"response":{"status":201,"body":"{\"n\":1}","attempts":2,"rewritten":"http://127.0.0.1:9/orders"}}"#,
    r#"{"kind":"http","key":"b0041a4d7ce47808b1702fdf11cc46f669cdde3218eef49ad4ab673032461c44","run":2,"node_path":"root/api","occurrence":1,"request":{"method":"POST","url":"https://orders.example.com/fail","headers":[["Content-Type","application/json"]],"body":"{\"n\":1}"},"error":{"kind":"connect","message":"cannot connect","attempts":1}}"#,
];

/// The key of [`full_request`].
const FULL_KEY: &str = "168ce7e9dae8fd268623670d0ec613070c4fb4b1fb97e59530728fa39f561fed";

fn tool_args() -> [Map<String, Json>; 3] {
    let object = |v: Json| v.as_object().unwrap().clone();
    [object(json!({"x": "Oslo", "n": [1, 2.5, null, true]})), Map::new(), object(json!({"x": "slow"}))]
}

/// Records the pinned exchanges and returns the file's text.
async fn record(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let path = dir.join("run.jsonl");
    let log = RecordLog::create(&path).unwrap();
    let model = Recorder::new(Arc::new(Fixed), Arc::clone(&log));
    model.chat(&full_request()).await.unwrap();
    model.chat(&plain_request()).await.unwrap_err();
    model.chat(&in_run(plain_request(), 4)).await.unwrap_err();
    let tool = RecordingTool::new("weather", Arc::new(Weather), Arc::clone(&log));
    for args in tool_args() {
        let _ = tool.call(args).await;
    }
    let http = HttpRecorder::new(Arc::new(Echo), Arc::clone(&log));
    for request in http_requests() {
        let _ = http.send(&request).await;
    }
    let mcp = McpRecorder::new(Arc::new(Canned), Arc::clone(&log));
    for request in mcp_requests() {
        let _ = mcp.send(&Sessions::new(), &request).await;
    }
    log.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[tokio::test]
async fn recorded_lines_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, text) = record(dir.path()).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), PINNED.len(), "{text}");
    for (got, want) in lines.iter().zip(PINNED) {
        assert_eq!(*got, want);
    }
    assert!(text.ends_with('\n'));
    assert_eq!(weft_record::llm::request_content(&full_request()), RecordedRequest::from(&full_request()).key_content());
    assert_eq!(weft_record::log::content_key(&weft_record::llm::request_content(&full_request())), FULL_KEY);
}

#[tokio::test]
async fn pinned_lines_replay_and_read_back_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinned.jsonl");
    std::fs::write(&path, PINNED.join("\n") + "\n").unwrap();

    // The pinned file replays: the response, the error and every tool outcome.
    let replayer = Replayer::load(&path).unwrap();
    let response = replayer.chat(&full_request()).await.unwrap();
    assert_eq!(response, Fixed.chat(&full_request()).await.unwrap());
    let error = replayer.chat(&plain_request()).await.unwrap_err();
    assert_eq!(error, Fixed.chat(&plain_request()).await.unwrap_err());
    assert!(replayer.by_run());
    let error = replayer.chat(&in_run(plain_request(), 4)).await.unwrap_err();
    assert_eq!(error, Fixed.chat(&plain_request()).await.unwrap_err());
    let missing = replayer.chat(&in_run(plain_request(), 5)).await.unwrap_err();
    assert!(missing.message.contains("of run 5 (batch index) at node path \"root/plain\""), "{}", missing.message);
    let tools = Arc::new(ToolReplay::load(&path).unwrap());
    let weather = tools.tool("weather");
    for args in tool_args() {
        let replayed = weather.call(args.clone()).await.map_err(|e| e.to_string());
        assert_eq!(replayed, Weather.call(args).await.map_err(|e| e.to_string()));
    }

    // Each line reads into the format's own types and writes back to the same bytes.
    for line in &PINNED[1..4] {
        let read: LlmLine = serde_json::from_str(line).unwrap();
        assert_eq!(&serde_json::to_string(&read).unwrap(), line);
        let request = ChatRequest::from(read.request.clone());
        assert_eq!(RecordedRequest::from(&request), read.request, "the conversions keep every field");
    }
    for line in &PINNED[4..7] {
        let read: ToolLine = serde_json::from_str(line).unwrap();
        assert_eq!(&serde_json::to_string(&read).unwrap(), line);
    }
    for line in &PINNED[9..] {
        let read: McpLine = serde_json::from_str(line).unwrap();
        assert_eq!(&serde_json::to_string(&read).unwrap(), line);
        assert!(!line.contains("never-recorded") && !line.contains("Authorization") && !line.contains("X-Trace"), "{line}");
    }
    let mcp = McpReplayer::load(&path).unwrap();
    assert_eq!(mcp.len(), 3);
    let sessions = Sessions::new();
    for request in mcp_requests() {
        let replayed = mcp.send(&sessions, &request).await;
        let live = Canned.send(&sessions, &request).await;
        assert_eq!(replayed.result.map_err(|e| e.to_string()), live.result.map_err(|e| e.to_string()));
        assert_eq!(replayed.attempts, 0, "nothing was attempted");
    }
    let [_, echo, _] = mcp_requests();
    let again = mcp.send(&sessions, &echo).await.result.unwrap_err().to_string();
    assert!(
        again.contains("no recorded answer for the call of MCP tool \"echo\"")
            && again.contains("on http https://crm.example.com/mcp at node path \"root/agent\" (occurrence 2)"),
        "{again}"
    );
    for line in &PINNED[7..9] {
        let read: HttpLine = serde_json::from_str(line).unwrap();
        assert_eq!(&serde_json::to_string(&read).unwrap(), line);
        assert!(!line.contains("never-recorded") && !line.contains("Authorization"), "{line}");
    }
    let http = HttpReplayer::load(&path).unwrap();
    assert_eq!(http.len(), 2);
    let [ok, fail] = http_requests();
    // The answer as recorded, sent nowhere (no rewrite).
    assert_eq!(http.send(&ok).await.unwrap(), HttpResponse { rewritten: None, ..Echo.send(&ok).await.unwrap() });
    assert_eq!(http.send(&fail).await.unwrap_err(), Echo.send(&fail).await.unwrap_err());
    let again = http.send(&ok).await.unwrap_err();
    assert_eq!(again.kind, HttpErrorKind::Unavailable);
    assert!(again.message.contains("no recorded answer for the HTTP request at node path \"root/api\" (occurrence 2"), "{}", again.message);
}

#[test]
fn a_newer_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("next.jsonl");
    std::fs::write(&path, "{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":5}\n{\"kind\":\"llm\",\"shape\":\"new\"}\n")
        .unwrap();
    let expected = format!(
        "{}:1: recorded in format version 5, and this weft reads version 4 at most; replay it with a newer weft (the one that recorded it)",
        path.display()
    );
    assert_eq!(Replayer::load(&path).unwrap_err().to_string(), expected);
    assert_eq!(ToolReplay::load(&path).unwrap_err().to_string(), expected);
    assert_eq!(HttpReplayer::load(&path).unwrap_err().to_string(), expected);
    assert_eq!(McpReplayer::load(&path).unwrap_err().to_string(), expected);
    assert_eq!(weft_record::log::FORMAT_VERSION, 4);

    // Versions 4, 3, 2 and 1 are read.
    std::fs::write(&path, format!("{}\n", PINNED[0])).unwrap();
    assert!(Replayer::load(&path).unwrap().is_empty());
    std::fs::write(&path, "{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":2}\n").unwrap();
    assert!(HttpReplayer::load(&path).unwrap().is_empty());
    std::fs::write(&path, "{\"kind\":\"header\",\"format\":\"weft-record\",\"version\":1}\n").unwrap();
    assert!(Replayer::load(&path).unwrap().is_empty());
}

/// A recording of format 3 (before MCP lines) replays as it did: its LLM, tool and HTTP lines
/// are served, and it has no MCP exchange.
#[tokio::test]
async fn a_format_3_recording_replays_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.jsonl");
    let v3: Vec<&str> =
        std::iter::once(r#"{"kind":"header","format":"weft-record","version":3}"#).chain(PINNED[1..9].iter().copied()).collect();
    std::fs::write(&path, v3.join("\n") + "\n").unwrap();
    let replayer = Replayer::load(&path).unwrap();
    assert_eq!(replayer.chat(&full_request()).await.unwrap(), Fixed.chat(&full_request()).await.unwrap());
    let tools = Arc::new(ToolReplay::load(&path).unwrap());
    let [args, ..] = tool_args();
    assert_eq!(tools.tool("weather").call(args.clone()).await.unwrap(), Weather.call(args).await.unwrap());
    let http = HttpReplayer::load(&path).unwrap();
    let [ok, _] = http_requests();
    assert_eq!(http.send(&ok).await.unwrap().status, 201);
    let mcp = McpReplayer::load(&path).unwrap();
    assert!(mcp.is_empty());
    let [list, ..] = mcp_requests();
    let missing = mcp.send(&Sessions::new(), &list).await.result.unwrap_err().to_string();
    assert!(
        missing.contains("no recorded answer for the listing of the MCP server's tools on http https://crm.example.com/mcp"),
        "{missing}"
    );
}

/// A recording of format 1 (no runs) replays a batch's calls as it did: by node path, key and
/// occurrence over the process, whichever run asks.
#[tokio::test]
async fn a_format_1_recording_replays_a_batch_by_node_path_and_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.jsonl");
    let v1 = [r#"{"kind":"header","format":"weft-record","version":1}"#, PINNED[1], PINNED[2]];
    std::fs::write(&path, v1.join("\n") + "\n").unwrap();
    let replayer = Replayer::load(&path).unwrap();
    assert!(!replayer.by_run());
    let response = replayer.chat(&in_run(full_request(), 9)).await.unwrap();
    assert_eq!(response, Fixed.chat(&full_request()).await.unwrap());
    // Occurrence 2 of the same request (in any run) was not recorded.
    assert!(replayer.chat(&in_run(full_request(), 3)).await.is_err());
}
