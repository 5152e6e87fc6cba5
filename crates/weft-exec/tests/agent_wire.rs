//! Wire parity with WayFlow for agents: each transcript of `../shared/agentspec/reference/agents/`
//! that this release runs (an Agent or an AgentNode with ServerTools) is run again against the
//! testkit server, scripted to give WayFlow's recorded answers, with the same user messages and
//! the same tools (`record.py`'s `get_weather`, `get_time`, `failing_lookup`, `add`); every chat
//! request Weft sends must equal the one WayFlow sent, except `stream` and `stream_options`
//! (WayFlow streams agent calls), and the run must end as WayFlow's did.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use std::sync::Arc;
use weft_exec::{FlowExt, Limiters, RunOptions, Status};
use weft_testkit::{MockConfig, MockServer, ScriptedCall};
use weft_tools::{Tool, ToolError, ToolRegistry};

/// A tool from a function of its arguments.
struct Func(fn(&Map<String, Json>) -> Result<Json, String>);

#[async_trait::async_trait]
impl Tool for Func {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        (self.0)(&args).map_err(|message| ToolError::Failed { message })
    }
}

/// `record.py`'s tools.
fn tools() -> ToolRegistry {
    let mut tools = ToolRegistry::new();
    tools.register("get_weather", Func(|a| Ok(json!(format!("sunny in {}", a["city"].as_str().unwrap_or_default())))));
    tools.register("get_time", Func(|a| Ok(json!(if a.get("utc") == Some(&json!(true)) { "10:00" } else { "12:00" }))));
    // Python's `repr` of a string: single quotes.
    tools
        .register("failing_lookup", Func(|a| Err(format!("lookup service unavailable for '{}'", a["query"].as_str().unwrap_or_default()))));
    tools.register("add", Func(|a| Ok(json!(a["a"].as_i64().unwrap_or(0) + a["b"].as_i64().unwrap_or(0)))));
    tools
}

fn transcript(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/reference/agents").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("transcript")).expect("json")
}

/// Points every LLM config of the document at `url`.
fn retarget(value: &mut Json, url: &str) {
    match value {
        Json::Object(m) => {
            if m.get("component_type").and_then(Json::as_str).is_some_and(|t| t.ends_with("Config")) && m.contains_key("url") {
                m.insert("url".into(), json!(url));
            }
            m.values_mut().for_each(|v| retarget(v, url));
        }
        Json::Array(items) => items.iter_mut().for_each(|v| retarget(v, url)),
        _ => {}
    }
}

/// The server, scripted with the recorded answers in order.
fn scripted(calls: &[Json]) -> MockConfig {
    let mut config = MockConfig::default();
    for (i, call) in calls.iter().enumerate() {
        let response = &call["response"];
        let i = i as u64;
        match response["tool_calls"].as_array() {
            Some(list) if !list.is_empty() => {
                let calls = list
                    .iter()
                    .map(|c| ScriptedCall::new(c["name"].as_str().unwrap(), c["arguments"].clone()).with_id(c["id"].as_str().unwrap()))
                    .collect();
                config = config.with_calls(i, calls);
            }
            _ => config = config.with_reply(i, response["content"].as_str().unwrap_or_default()),
        }
    }
    config
}

/// A request as compared: without `stream` and `stream_options`.
fn comparable(mut request: Json) -> Json {
    if let Json::Object(m) = &mut request {
        m.remove("stream");
        m.remove("stream_options");
    }
    request
}

/// Runs transcript `name` and compares every request; returns the last status.
async fn replay(name: &str, inputs: Json) -> Result<Status, weft_exec::RunError> {
    let t = transcript(name);
    let calls = t["llm_calls"].as_array().unwrap();
    let steps = t["steps"].as_array().unwrap();
    session(name, &t["document"], steps, calls, inputs).await
}

/// Runs one document with its steps against the server scripted with `calls`, and compares
/// every request. A step gives the user's message (the first one before the run executes),
/// client tool results or a confirmation, then the status `execute()` returns when it names
/// one.
async fn session(name: &str, document: &Json, steps: &[Json], calls: &[Json], inputs: Json) -> Result<Status, weft_exec::RunError> {
    let server = MockServer::start(scripted(calls)).await;
    let mut document = document.clone();
    retarget(&mut document, &server.url());
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{name}: {e}")).flow;
    let options = RunOptions::default().with_tools(tools()).with_limits(Limiters::new(Default::default()));
    let plan = weft_exec::Plan::new(&flow, options).unwrap_or_else(|e| panic!("{name}: {:?}", e.problems()));
    let inputs = inputs.as_object().cloned().unwrap_or_default();
    let mut run = plan.start(inputs).unwrap_or_else(|e| panic!("{name}: {:?}", e.problems()));
    let mut status = None;
    for (k, step) in steps.iter().enumerate() {
        // Every wait is resumed from the stored state, as another process would.
        if k > 0 {
            let stored = serde_json::to_string(&run.into_state()).unwrap();
            run = plan.resume(serde_json::from_str(&stored).unwrap()).unwrap_or_else(|e| panic!("{name}: step {k}: {e}"));
        }
        if let Some(user) = step["user"].as_str() {
            if k == 0 {
                run.append_user_message(user).unwrap();
            } else {
                run.submit(json!(user)).unwrap();
            }
        }
        // The caller's answers, as the recording gave them to WayFlow.
        if let Some(result) = step.get("client_tool_result") {
            let id = result["tool_request_id"].as_str().unwrap();
            run.submit(json!({ id: result["content"] })).unwrap_or_else(|e| panic!("{name}: step {k}: {e}"));
        }
        if let Some(results) = step.get("submit_tool_results") {
            run.submit(results.clone()).unwrap_or_else(|e| panic!("{name}: step {k}: {e}"));
        }
        if let Some(reject) = step.get("reject") {
            let answer = match reject["reason"].as_str() {
                Some(reason) => format!("reject: {reason}"),
                None => "reject".to_owned(),
            };
            run.submit(json!(answer)).unwrap_or_else(|e| panic!("{name}: step {k}: {e}"));
        }
        if let Some(confirm) = step.get("confirm_tool_execution").and_then(Json::as_object) {
            let changes = confirm.values().next().map(|c| c["modified_args"].clone()).unwrap_or(Json::Null);
            run.submit(json!({"approve": true, "arguments": changes})).unwrap_or_else(|e| panic!("{name}: step {k}: {e}"));
        }
        let Some(expected) = step["status"].as_str() else { continue };
        let now = run.execute().await;
        match (&now, expected) {
            (Ok(Status::InputRequired { request }), "UserMessageRequestStatus") => {
                let weft_exec::InputRequest::Message { message, .. } = request else {
                    panic!("{name}: step {k}: expected a user message request, got {request:?}")
                };
                if let (Some(m), Some(expected)) = (message, step["message"].as_str()) {
                    assert_eq!(m, expected, "{name}: step {k}: the agent's message");
                }
            }
            (Ok(Status::InputRequired { request }), "ToolRequestStatus") => {
                let weft_exec::InputRequest::ClientTools { calls, .. } = request else {
                    panic!("{name}: step {k}: expected client tool requests, got {request:?}")
                };
                let got: Vec<Json> =
                    calls.iter().map(|c| json!({"name": c.tool, "args": c.args, "tool_request_id": c.tool_request_id})).collect();
                assert_eq!(Json::Array(got), step["tool_requests"], "{name}: step {k}: the client tool requests");
            }
            (Ok(Status::InputRequired { request }), "ToolExecutionConfirmationStatus") => {
                let weft_exec::InputRequest::Confirmation { tool, tool_request_id, args, .. } = request else {
                    panic!("{name}: step {k}: expected a confirmation request, got {request:?}")
                };
                let got = json!([{"name": tool, "args": args, "tool_request_id": tool_request_id}]);
                assert_eq!(got, step["tool_requests"], "{name}: step {k}: the call to confirm");
            }
            (Ok(Status::Finished { outputs, .. }), "FinishedStatus") => {
                if let Some(expected) = step["output_values"].as_object() {
                    // Weft differs (AGENTS.md 1.7): an output without a default at the iteration
                    // limit gets its type's zero value, not WayFlow's placeholder object.
                    let expected: Map<String, Json> = expected
                        .iter()
                        .map(|(k, v)| {
                            let placeholder = v.as_str().is_some_and(|s| s.contains("_empty_default"));
                            (k.clone(), if placeholder { json!("") } else { v.clone() })
                        })
                        .collect();
                    assert_eq!(outputs, &expected, "{name}: step {k}: the outputs");
                }
            }
            (got, expected) => panic!("{name}: step {k}: expected {expected:?}, got {got:?}"),
        }
        status = Some(now);
    }
    let sent = server.requests();
    assert_eq!(sent.len(), calls.len(), "{name}: the number of LLM calls");
    for (i, (got, call)) in sent.into_iter().zip(calls).enumerate() {
        let expected = comparable(call["request"].clone());
        let got = comparable(got);
        assert_eq!(got, expected, "{name}: request {i} differs\n got: {got}\nwant: {expected}");
    }
    status.unwrap()
}

#[tokio::test]
async fn a1_an_agent_with_two_tools_and_outputs_talks_to_the_user() {
    replay("a1_agent_two_tools_outputs", json!({"city_hint": "Paris"})).await.unwrap();
}

#[tokio::test]
async fn a4_an_agent_with_no_user_message_calls_the_model_anyway() {
    replay("a4_agent_no_user_message", json!({})).await.unwrap();
}

#[tokio::test]
async fn a6_a_tool_error_goes_back_to_the_model_as_text() {
    replay("a6_tool_error", json!({})).await.unwrap();
}

#[tokio::test]
async fn d1_an_agent_node_in_a_flow_never_asks_and_finishes_with_its_defaults() {
    replay("d1_flow_agent_node", json!({"topic": "tides"})).await.unwrap();
}

#[tokio::test]
async fn e3_end_conversation_takes_two_calls() {
    replay("e3_end_conversation", json!({})).await.unwrap();
}

#[tokio::test]
async fn a2_a_never_agent_at_its_iteration_limit_finishes_with_defaults_and_zero_values() {
    replay("a2_agent_outputs_never", json!({})).await.unwrap();
}

#[tokio::test]
async fn a3_an_extended_agent_submits_its_result() {
    replay("a3_extended_agent_submit", json!({})).await.unwrap();
}

#[tokio::test]
async fn e1_parallel_calls_run_in_order_and_talk_to_user_is_dropped_among_others() {
    replay("e1_parallel_and_special_calls", json!({})).await.unwrap();
}

#[tokio::test]
async fn e2_the_last_allowed_call_offers_only_the_built_in_tools() {
    replay("e2_iteration_limit_always", json!({})).await.unwrap();
}

/// A tool that records how many of its calls run at once, and sleeps longer for earlier calls
/// (`ms` argument), so they finish in reverse order.
struct Slow {
    now: Arc<std::sync::atomic::AtomicUsize>,
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Tool for Slow {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        use std::sync::atomic::Ordering::SeqCst;
        let running = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(running, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(args["ms"].as_u64().unwrap_or(0))).await;
        self.now.fetch_sub(1, SeqCst);
        Ok(json!(format!("slept {}", args["ms"])))
    }
}

/// Four calls in one answer run at once, and their results reach the model in the answer's
/// order although they finish in reverse.
#[tokio::test]
async fn parallel_tool_calls_run_at_once_and_are_answered_in_call_order() {
    let calls: Vec<ScriptedCall> =
        (0..4).map(|k| ScriptedCall::new("slow", json!({"ms": 40 * (4 - k)})).with_id(format!("c{k}"))).collect();
    let server = MockServer::start(MockConfig::default().with_calls(0, calls).with_reply(1, "done")).await;
    let document = json!({
        "component_type": "Agent", "id": "a", "name": "a", "system_prompt": "Work.", "human_in_the_loop": true,
        "llm_config": {"component_type": "OpenAiCompatibleConfig", "id": "l", "name": "l", "model_id": "m", "url": server.url()},
        "tools": [{"component_type": "ServerTool", "id": "slow", "name": "slow", "description": "sleeps",
                   "inputs": [{"title": "ms", "type": "integer"}], "outputs": [{"title": "r", "type": "string"}]}],
        "agentspec_version": "26.1.0"
    });
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap().flow;
    let (now, peak) = (Arc::default(), Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    let mut tools = ToolRegistry::new();
    tools.register("slow", Slow { now, peak: Arc::clone(&peak) });
    let options = RunOptions::default().with_tools(tools).with_limits(Limiters::new(Default::default()));
    let mut run = flow.start_with(Map::new(), options).unwrap();
    run.append_user_message("go").unwrap();
    let status = run.execute().await.unwrap();
    assert!(matches!(status, Status::InputRequired { .. }), "{status:?}");
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4, "the four calls ran at once");
    let second = &server.requests()[1]["messages"];
    let answered: Vec<&str> =
        second.as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["tool_call_id"].as_str().unwrap()).collect();
    assert_eq!(answered, ["c0", "c1", "c2", "c3"], "results in the answer's order");
    let contents: Vec<&str> =
        second.as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["\"slept 160\"", "\"slept 120\"", "\"slept 80\"", "\"slept 40\""]);
}

/// A client tool's call waits for its result (WayFlow's ToolRequestStatus), then, with a second
/// document, a tool that requires confirmation waits for the caller, who rejects it with a
/// reason: the model sees WayFlow's rejection text.
#[tokio::test]
async fn a5_a_client_tool_round_trip_then_a_rejected_confirmation() {
    let name = "a5_client_tool_and_confirmation";
    let t = transcript(name);
    let calls = t["llm_calls"].as_array().unwrap();
    let steps = t["steps"].as_array().unwrap();
    let first = session(name, &t["document"]["first"], &steps[..3], &calls[..2], json!({})).await.unwrap();
    assert!(matches!(first, Status::InputRequired { .. }));
    // The second document: its steps until the conversation it ends with.
    let second = &steps[3..6];
    session(name, &t["document"]["second"], second, &calls[2..], json!({})).await.unwrap();
}

/// Three calls in one answer (client, server needing confirmation, client): one request for
/// both client calls, answered together; then the confirmation, approved with a changed
/// argument; the results reach the model in the order they were produced (k1, k3, k2) and the
/// history shows the changed argument.
#[tokio::test]
async fn e6_client_calls_are_asked_together_then_the_confirmation_with_changed_arguments() {
    replay("e6_parallel_client_and_confirmation", json!({})).await.unwrap();
}

/// An ExtendedAgent's flow and sub-agent offered as tools after its own tools (the flow's
/// inputs as parameters; the sub-agent's `context`); the model calls the flow, which runs on
/// the agent's conversation, and its single output is the result.
#[tokio::test]
async fn a7_a_flow_and_an_agent_as_tools_and_a_flow_call() {
    replay("a7_subflow_and_subagent_tools", json!({})).await.unwrap();
}

/// A sub-agent call: the sub-agent runs in its own conversation (its request has the
/// context as the user message and no tools) and its last message is the result.
#[tokio::test]
async fn a8_a_sub_agent_call_runs_in_its_own_conversation() {
    replay("a8_subagent_call", json!({})).await.unwrap();
}

/// `strict_output_validation`: submissions are checked as the model wrote them (an extra
/// member, a string and then an integer for a `number` are refused, with WayFlow's list of
/// violations), and a float finishes.
#[tokio::test]
async fn e5_strict_output_validation_refuses_what_does_not_fit_exactly() {
    replay("e5_strict_output_validation", json!({})).await.unwrap();
}

/// A ConversationSummarizationTransform without a datastore: on the second turn the history
/// is too long, so the two oldest messages are summarized by a call of the transform's own
/// model (not streamed, one user message of several parts) and the agent's request carries the
/// summary as a user message in their place.
#[tokio::test]
async fn e4_conversation_summarization_replaces_the_older_messages_by_a_summary() {
    replay("e4_conversation_summarization", json!({})).await.unwrap();
}

/// An agent on an OllamaConfig: WayFlow's Llama template, no native tool calling: the tools
/// are listed in the system prompt, the model's call is JSON in its text (the text around it
/// dropped), the call goes back as an assistant message of its JSON and its result as a user
/// message in `<tool_response>` tags.
#[tokio::test]
async fn a9_an_ollama_agent_calls_tools_through_the_llama_template() {
    replay("a9_ollama_agent", json!({})).await.unwrap();
}

/// Under the Llama template a list of calls in the text runs every call; the history shows the
/// list, and one user message holds their results, one `<tool_response>` per line.
#[tokio::test]
async fn a_list_of_calls_in_the_text_under_the_llama_template() {
    let t = transcript("a9_ollama_agent");
    let calls = r#"[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {"city": "Paris", "utc": "yes"}}]"#;
    let server = MockServer::start(MockConfig::default().with_reply(0, format!("Checking both.\n{calls}")).with_reply(1, "Done.")).await;
    let mut document = t["document"].clone();
    retarget(&mut document, &server.url());
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap().flow;
    let options = RunOptions::default().with_tools(tools()).with_limits(Limiters::new(Default::default()));
    let mut run = flow.start_with(Map::new(), options).unwrap();
    run.append_user_message("Weather and time in Paris?").unwrap();
    run.execute().await.unwrap();
    let second = &server.requests()[1]["messages"];
    assert!(second.as_array().unwrap().iter().all(|m| m.get("tool_calls").is_none()), "no native calls");
    assert_eq!(
        second[2]["content"][0]["text"],
        r#"[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {"city": "Paris", "utc": true}}]"#,
        "the calls as JSON, arguments normalized"
    );
    assert_eq!(second[3]["role"], "user");
    assert_eq!(
        second[3]["content"][0]["text"],
        "<tool_response>\"sunny in Paris\"</tool_response>\n<tool_response>\"10:00\"</tool_response>"
    );
}

#[tokio::test]
async fn b1_a_swarm_agent_answering_in_text_talks_to_the_user() {
    replay("b1_swarm_mockllm", json!({})).await.unwrap();
}

#[tokio::test]
async fn b2_a_swarm_sends_a_message_then_hands_the_conversation_off() {
    replay("b2_swarm_scripted", json!({})).await.unwrap();
}

#[tokio::test]
async fn c1_a_manager_answering_in_text_talks_to_the_user() {
    replay("c1_managerworkers_mockllm", json!({})).await.unwrap();
}

#[tokio::test]
async fn c2_a_manager_delegates_to_a_worker_with_a_tool() {
    replay("c2_managerworkers_scripted", json!({})).await.unwrap();
}
