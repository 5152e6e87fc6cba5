//! Agents' message transforms (AGENTS.md 1.12) against the testkit server: a conversation's
//! summary kept (the default in-memory datastore) and extended on a later turn, a resumed run
//! keeping it, a long tool result summarized once and shown summarized while the conversation
//! keeps it whole, and a run stopped during a summarizing call making it again on resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use std::time::Duration;
use weft_exec::{Limiters, Plan, RunOptions, Status};
use weft_testkit::{Fault, MockConfig, MockServer, ScriptedCall};
use weft_tools::ToolRegistry;

fn llm(id: &str, url: &str) -> Json {
    json!({"component_type": "OpenAiCompatibleConfig", "id": id, "name": id, "model_id": "m", "url": url})
}

/// An agent with `transforms` (its summarizer on its own config) and `tools`.
fn agent(url: &str, transforms: Json, tools: Json) -> String {
    json!({
        "component_type": "Agent", "id": "helper", "name": "helper", "system_prompt": "Be brief.",
        "llm_config": llm("agent_llm", url), "tools": tools, "human_in_the_loop": true,
        "transforms": transforms, "agentspec_version": "26.1.2"
    })
    .to_string()
}

/// An in-memory datastore with the collection `name` (what keeps a transform's summaries).
fn datastore(id: &str, name: &str, prefix: bool) -> Json {
    let mut properties = json!({"cache_key": {"type": "string"}, "cache_content": {"type": "string"},
                                "created_at": {"type": "number"}, "last_used_at": {"type": "number"}});
    if prefix {
        properties["prefix_size"] = json!({"type": "integer"});
    }
    json!({"component_type": "InMemoryCollectionDatastore", "id": id, "name": id,
           "datastore_schema": {name: {"type": "object", "properties": properties}}})
}

fn conversation_transform(url: &str) -> Json {
    json!([{"component_type": "ConversationSummarizationTransform", "id": "conv", "name": "conv",
            "llm": llm("summarizer_llm", url), "max_num_messages": 2, "min_num_messages": 1,
            "datastore": datastore("conv_store", "summarized_conversations_cache", true)}])
}

fn plan(document: &str, tools: ToolRegistry) -> Arc<Plan> {
    let flow = weft_flow::Flow::from_json(document).unwrap_or_else(|e| panic!("{e}")).flow;
    let options = RunOptions::default().with_tools(tools).with_limits(Limiters::new(Default::default()));
    Plan::new(&flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems()))
}

/// Every message's text parts, joined, by role.
fn texts(request: &Json) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Json::Array(parts) => parts.iter().map(|p| p["text"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("|"),
                Json::String(s) => s.clone(),
                _ => String::new(),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

const PROMPT: &str = "Please make a summary of this conversation. Include relevant information and keep it short. Your response will replace the messages, so just output the summary directly, no introduction needed.";

/// The summary made on turn 2 is kept (in the run state, so a resumed run has it): on turn 3
/// the summarizer extends it (the kept summary is the first part, without a role header) and
/// the agent is sent the new summary and the last message.
#[tokio::test]
async fn a_kept_conversation_summary_is_extended_on_a_later_turn_after_a_resume() {
    let config = MockConfig::default()
        .with_reply(0, "Hello Ann.")
        .with_reply(1, "Ann said hi.")
        .with_reply(2, "You are Ann.")
        .with_reply(3, "Ann said hi and asked her name.")
        .with_reply(4, "Bye.");
    let server = MockServer::start(config).await;
    let plan = plan(&agent(&server.url(), conversation_transform(&server.url()), json!([])), ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Hi, I am Ann.").unwrap();
    run.execute().await.unwrap();
    run.submit(json!("What is my name?")).unwrap();
    run.execute().await.unwrap();
    let stored = serde_json::to_string(&run.into_state()).unwrap();
    let mut run = plan.resume(serde_json::from_str(&stored).unwrap()).unwrap();
    assert_eq!(run.state().summaries.len(), 1, "the summary is kept in the state");
    run.submit(json!("Goodbye")).unwrap();
    let status = run.execute().await.unwrap();
    assert!(matches!(status, Status::InputRequired { .. }), "{status:?}");
    let sent = server.requests();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[1]["stream"], false, "the summarizer does not stream");
    assert_eq!(
        texts(&sent[1]),
        pairs(&[(
            "user",
            &format!(
                "{PROMPT}\n\nPrevious summary:\nNothing summarized yet\n\nAdded content:\n|\n\n\nuser:\n\n|Hi, I am Ann.|\n\n\nassistant:\n\n|Hello Ann."
            )
        )])
    );
    assert_eq!(
        texts(&sent[3]),
        pairs(&[(
            "user",
            &format!(
                "{PROMPT}\n\nPrevious summary:\nNothing summarized yet\n\nAdded content:\n|Summarized conversation: Ann said hi.|\n\n\nuser:\n\n|What is my name?|\n\n\nassistant:\n\n|You are Ann."
            )
        )])
    );
    assert_eq!(
        texts(&sent[4]),
        pairs(&[("system", "Be brief."), ("user", "Summarized conversation: Ann said hi and asked her name."), ("user", "Goodbye")])
    );
    // The conversation itself keeps every message.
    let state = run.into_state();
    assert_eq!(state.messages.len(), 6);
}

/// A tool result longer than `max_message_size` is sent summarized (as the tool's result,
/// JSON-quoted) on every call, the summary made once and kept; the conversation keeps it whole.
#[tokio::test]
async fn a_long_tool_result_is_summarized_once_and_the_conversation_keeps_it_whole() {
    let config = MockConfig::default()
        .with_calls(0, vec![ScriptedCall::new("read", json!({})).with_id("r1")])
        .with_reply(1, "A long page about tides.")
        .with_reply(2, "The page is about tides.")
        .with_reply(3, "Anything else?");
    let server = MockServer::start(config).await;
    let transforms = json!([{"component_type": "MessageSummarizationTransform", "id": "msg", "name": "msg",
                             "llm": llm("summarizer_llm", &server.url()), "max_message_size": 40,
                             "datastore": datastore("msg_store", "summarized_messages_cache", false)}]);
    let tool = json!([{"component_type": "ServerTool", "id": "read", "name": "read", "description": "Read the page",
                       "inputs": [], "outputs": [{"title": "page", "type": "string"}]}]);
    let page = "tides ".repeat(20);
    let mut tools = ToolRegistry::new();
    let text = page.clone();
    tools.register_fn("read", move |_: Map<String, Json>| {
        let text = text.clone();
        async move { Ok::<_, String>(text) }
    });
    let plan = plan(&agent(&server.url(), transforms, tool), tools);
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Read the page").unwrap();
    run.execute().await.unwrap();
    run.submit(json!("Thanks")).unwrap();
    run.execute().await.unwrap();
    let sent = server.requests();
    assert_eq!(sent.len(), 4, "one summarizing call for the two agent calls that follow");
    let parts = texts(&sent[1]);
    assert_eq!(parts[0].1.split('|').nth(1), Some(page.as_str()), "the tool's value is summarized as text");
    for agent_call in [&sent[2], &sent[3]] {
        let tool_message = agent_call["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool_message["content"], "\"Summarized message: A long page about tides.\"");
    }
    let kept = run.state().messages.iter().find(|m| m.message_type == "TOOL_RESULT").unwrap().content.clone();
    assert_eq!(kept, serde_json::to_string(&page).unwrap());
}

/// A run stopped while a summarizing call is out keeps it in its state; resumed, it makes the
/// call again, then the agent's call with the summary.
#[tokio::test]
async fn a_run_stopped_during_a_summarizing_call_makes_it_again_on_resume() {
    let config = MockConfig::default()
        .with_reply(0, "Hello Ann.")
        .with_fault(1, Fault::Slow(Duration::from_secs(30)))
        .with_reply(2, "Ann said hi.")
        .with_reply(3, "You are Ann.");
    let server = MockServer::start(config).await;
    let plan = plan(&agent(&server.url(), conversation_transform(&server.url()), json!([])), ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Hi, I am Ann.").unwrap();
    run.execute().await.unwrap();
    run.submit(json!("What is my name?")).unwrap();
    let cancel = run.cancel_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    assert!(run.execute().await.is_err(), "cancelled");
    let stored = serde_json::to_string(&run.into_state()).unwrap();
    assert!(stored.contains("\"kind\":\"agent_summary\""), "{stored}");
    let mut run = plan.resume(serde_json::from_str(&stored).unwrap()).unwrap();
    let status = run.execute().await.unwrap();
    let Status::InputRequired { request: weft_exec::InputRequest::Message { message: Some(m), .. } } = status else { panic!("{status:?}") };
    assert_eq!(m, "You are Ann.");
    let sent = server.requests();
    assert_eq!(sent.len(), 4);
    assert_eq!(texts(&sent[2]), texts(&sent[1]), "the same summarizing call again");
    assert_eq!(texts(&sent[3])[1], ("user".to_owned(), "Summarized conversation: Ann said hi.".to_owned()));
}

/// What WayFlow refuses of a transform, Weft refuses at load.
#[test]
fn transforms_wayflow_refuses_are_refused() {
    let url = "http://127.0.0.1:9/v1";
    for (transform, want) in [
        (json!({"max_num_messages": 5, "max_num_characters": 100}), "mutually exclusive"),
        (json!({"max_num_messages": 2, "min_num_messages": 5}), "must not exceed"),
        (json!({"max_num_messages": 2, "min_num_messages": 1, "summarized_conversation_template": "{{ other }}"}), "`other`"),
    ] {
        let mut t = json!({"component_type": "ConversationSummarizationTransform", "id": "conv", "name": "conv", "llm": llm("s", url)});
        for (k, v) in transform.as_object().unwrap() {
            t[k] = v.clone();
        }
        let error = weft_flow::Flow::from_json(&agent(url, json!([t]), json!([]))).err().unwrap_or_else(|| panic!("{want}: loaded"));
        assert!(error.to_string().contains(want), "{want}: {error}");
    }
}
