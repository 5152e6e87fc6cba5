//! Flows and agents an ExtendedAgent calls as tools (AGENTS.md 1.11), against the testkit
//! server: a sub-agent keeps its conversation between calls until it finishes, a sub-agent
//! that submits gives WayFlow's text, a sub-agent's client tool stops the run and resumes in
//! another process, a flow that asks the user waits and its messages stay hidden from the
//! agent's model, a failing flow's error goes back to the model (or fails the agent that
//! raises exceptions), and what the loader refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use weft_exec::{InputRequest, Limiters, Plan, RunOptions, Status};
use weft_testkit::{MockConfig, MockServer, ScriptedCall};
use weft_tools::{ToolError, ToolRegistry};

fn llm(id: &str, url: &str) -> Json {
    json!({"component_type": "OpenAiCompatibleConfig", "id": format!("{id}_llm"), "name": "llm", "model_id": "m", "url": url})
}

/// An ExtendedAgent with the given members (`agents`, `flows`, ...).
fn extended(id: &str, prompt: &str, url: &str, always: bool, more: Json) -> Json {
    let mut agent = json!({
        "component_type": "ExtendedAgent", "id": id, "name": id, "description": format!("The {id}"),
        "llm_config": llm(id, url), "system_prompt": prompt, "tools": [], "human_in_the_loop": always,
        "agents": [], "flows": [], "max_iterations": 10, "can_finish_conversation": false, "raise_exceptions": false,
        "component_plugin_name": "AgentPlugin", "component_plugin_version": "26.3.1"
    });
    for (k, v) in more.as_object().unwrap() {
        agent[k] = v.clone();
    }
    agent
}

fn root(mut agent: Json) -> String {
    agent["agentspec_version"] = json!("25.4.1");
    agent.to_string()
}

fn plan(document: &str, tools: ToolRegistry) -> Arc<Plan> {
    let flow = weft_flow::Flow::from_json(document).unwrap_or_else(|e| panic!("{e}")).flow;
    let options = RunOptions::default().with_tools(tools).with_limits(Limiters::new(Default::default()));
    Plan::new(&flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems()))
}

fn messages(request: &Json) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Json::Array(parts) => parts.iter().map(|p| p["text"].as_str().unwrap_or_default()).collect::<String>(),
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

/// An ALWAYS sub-agent that answers in text gives its answer as the result and keeps its
/// conversation: the next call adds the new context to it.
#[tokio::test]
async fn a_sub_agent_keeps_its_conversation_between_calls() {
    let config = MockConfig::default()
        .with_calls(0, vec![ScriptedCall::new("math_expert", json!({"context": "What is 2+3?"})).with_id("c1")])
        .with_reply(1, "5")
        .with_calls(2, vec![ScriptedCall::new("math_expert", json!({"context": "And times 2?"})).with_id("c2")])
        .with_reply(3, "10")
        .with_reply(4, "It is 10.");
    let server = MockServer::start(config).await;
    let sub = extended("math_expert", "You are a math expert.", &server.url(), true, json!({}));
    let document = root(extended("orchestrator", "Delegate.", &server.url(), true, json!({"agents": [sub]})));
    let plan = plan(&document, ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Compute (2+3)*2").unwrap();
    let status = run.execute().await.unwrap();
    let Status::InputRequired { request: InputRequest::Message { message: Some(m), .. } } = status else { panic!("{status:?}") };
    assert_eq!(m, "It is 10.");
    let sent = server.requests();
    assert_eq!(sent.len(), 5);
    assert_eq!(messages(&sent[1]), pairs(&[("system", "You are a math expert."), ("user", "What is 2+3?")]));
    assert!(sent[1].get("tools").is_none(), "a sub-agent with nothing to call is offered no tools");
    assert_eq!(
        messages(&sent[3]),
        pairs(&[("system", "You are a math expert."), ("user", "What is 2+3?"), ("assistant", "5"), ("user", "And times 2?")])
    );
    let results: Vec<&str> =
        sent[4]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(results, ["\"5\"", "\"10\""]);
    // The orchestrator's conversation holds none of the sub-agent's messages; the sub-agent's
    // is kept in the state (it has not finished).
    let state = run.into_state();
    assert!(!state.messages.iter().any(|m| m.content == "5"), "{:?}", state.messages);
    assert_eq!(state.conversations.len(), 1);
    assert_eq!(state.conversations.values().next().unwrap().messages.len(), 4);
}

/// A NEVER sub-agent that submits its outputs gives WayFlow's result (the text of its last
/// message, "The submission was successful"), and its conversation ends: the next call starts
/// a new one.
#[tokio::test]
async fn a_sub_agent_that_submits_gives_wayflows_text_and_starts_afresh_next_time() {
    let config = MockConfig::default()
        .with_calls(0, vec![ScriptedCall::new("solver", json!({"context": "2+3"})).with_id("c1")])
        .with_calls(1, vec![ScriptedCall::new("submit_result", json!({"answer": 5})).with_id("s1")])
        .with_calls(2, vec![ScriptedCall::new("solver", json!({"context": "4+4"})).with_id("c2")])
        .with_calls(3, vec![ScriptedCall::new("submit_result", json!({"answer": 8})).with_id("s2")])
        .with_reply(4, "Done.");
    let server = MockServer::start(config).await;
    let sub = extended("solver", "Solve.", &server.url(), false, json!({"outputs": [{"title": "answer", "type": "integer"}]}));
    let document = root(extended("boss", "Delegate.", &server.url(), true, json!({"agents": [sub]})));
    let plan = plan(&document, ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Go").unwrap();
    run.execute().await.unwrap();
    let sent = server.requests();
    assert_eq!(messages(&sent[3]), pairs(&[("system", "Solve."), ("user", "4+4")]), "a new conversation");
    let results: Vec<&str> =
        sent[4]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(results, ["\"The submission was successful\"", "\"The submission was successful\""]);
    assert!(run.state().conversations.is_empty());
}

/// A sub-agent's client tool call stops the whole run (the request is the sub-agent's); the
/// state, stored and read back as another process would, resumes with the result; the
/// sub-agent goes on and its answer reaches the orchestrator.
#[tokio::test]
async fn a_sub_agent_waiting_for_a_client_tool_resumes_from_its_stored_state() {
    let config = MockConfig::default()
        .with_calls(0, vec![ScriptedCall::new("locator", json!({"context": "Where is the user?"})).with_id("c1")])
        .with_calls(1, vec![ScriptedCall::new("ask_location", json!({})).with_id("k1")])
        .with_reply(2, "In Bern.")
        .with_reply(3, "You are in Bern.");
    let server = MockServer::start(config).await;
    let client = json!({"component_type": "ClientTool", "id": "ask_location", "name": "ask_location", "description": "Ask where the user is",
                        "inputs": [], "outputs": [{"title": "location", "type": "string"}]});
    let sub = extended("locator", "Locate.", &server.url(), true, json!({"tools": [client]}));
    let document = root(extended("front", "Help.", &server.url(), true, json!({"agents": [sub]})));
    let plan = plan(&document, ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Where am I?").unwrap();
    let status = run.execute().await.unwrap();
    let Status::InputRequired { request: InputRequest::ClientTools { node, calls } } = status else { panic!("{status:?}") };
    assert_eq!(node, "locator");
    assert_eq!(calls.len(), 1);
    let stored = serde_json::to_string(&run.into_state()).unwrap();
    let mut run = plan.resume(serde_json::from_str(&stored).unwrap()).unwrap();
    run.submit(json!({"k1": "Bern"})).unwrap();
    let status = run.execute().await.unwrap();
    let Status::InputRequired { request: InputRequest::Message { message: Some(m), .. } } = status else { panic!("{status:?}") };
    assert_eq!(m, "You are in Bern.");
    let sent = server.requests();
    assert_eq!(messages(&sent[2])[2..], pairs(&[("assistant", ""), ("tool", "\"Bern\"")]));
    let results: Vec<&str> =
        sent[3]["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(results, ["\"In Bern.\""]);
}

/// A flow with an InputMessageNode: the agent's call waits for the user's answer; the flow's
/// single output is the result; the flow's messages are in the conversation but hidden from the
/// agent's model.
#[tokio::test]
async fn a_called_flow_that_asks_the_user_waits_and_its_messages_are_hidden_from_the_model() {
    let config =
        MockConfig::default().with_calls(0, vec![ScriptedCall::new("ask_city", json!({})).with_id("f1")]).with_reply(1, "Noted: Bern.");
    let server = MockServer::start(config).await;
    let flow = json!({
        "component_type": "Flow", "id": "ask_city_flow", "name": "ask city", "description": "Ask the user's city",
        "start_node": {"$component_ref": "s"},
        "nodes": [{"$component_ref": "s"}, {"$component_ref": "ask"}, {"$component_ref": "e"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "c1", "name": "c1", "from_node": {"$component_ref": "s"}, "to_node": {"$component_ref": "ask"}},
            {"component_type": "ControlFlowEdge", "id": "c2", "name": "c2", "from_node": {"$component_ref": "ask"}, "to_node": {"$component_ref": "e"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "d1", "name": "d1", "source_node": {"$component_ref": "ask"}, "source_output": "user_input",
             "destination_node": {"$component_ref": "e"}, "destination_input": "city"}
        ],
        "outputs": [{"title": "city", "type": "string"}],
        "$referenced_components": {
            "s": {"component_type": "StartNode", "id": "s", "name": "start", "inputs": [], "outputs": []},
            "ask": {"component_type": "InputMessageNode", "id": "ask", "name": "ask", "message": "Which city?",
                    "outputs": [{"title": "user_input", "type": "string"}]},
            "e": {"component_type": "EndNode", "id": "e", "name": "end", "inputs": [{"title": "city", "type": "string"}],
                  "outputs": [{"title": "city", "type": "string"}]}
        }
    });
    let document = root(extended("front", "Help.", &server.url(), true, json!({"flows": [flow]})));
    let plan = plan(&document, ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Weather?").unwrap();
    let status = run.execute().await.unwrap();
    let Status::InputRequired { request: InputRequest::Message { node, message } } = status else { panic!("{status:?}") };
    assert_eq!((node.as_str(), message.as_deref()), ("ask", Some("Which city?")));
    run.submit(json!("Bern")).unwrap();
    let status = run.execute().await.unwrap();
    assert!(matches!(status, Status::InputRequired { .. }), "{status:?}");
    let sent = server.requests();
    assert_eq!(sent[0]["tools"][0]["function"]["name"], "ask_city", "spaces in the flow's name read as `_`");
    assert_eq!(messages(&sent[1]), pairs(&[("system", "Help."), ("user", "Weather?"), ("assistant", ""), ("tool", "\"Bern\"")]));
    let kinds: Vec<&str> = run.state().messages.iter().map(|m| m.message_type.as_str()).collect();
    assert_eq!(kinds, ["USER", "TOOL_REQUEST", "INTERNAL", "AGENT", "USER", "INTERNAL", "TOOL_RESULT", "AGENT"]);
}

/// A flow whose tool fails: the failure's text is the call's result and the agent goes on;
/// with `raise_exceptions` the agent fails with it.
#[tokio::test]
async fn a_called_flow_that_fails_gives_the_model_its_error_unless_the_agent_raises() {
    let flow = json!({
        "component_type": "Flow", "id": "lookup_flow", "name": "lookup_flow", "description": "Look up",
        "inputs": [{"title": "query", "type": "string", "description": "what"}],
        "start_node": {"$component_ref": "s"},
        "nodes": [{"$component_ref": "s"}, {"$component_ref": "t"}, {"$component_ref": "e"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "c1", "name": "c1", "from_node": {"$component_ref": "s"}, "to_node": {"$component_ref": "t"}},
            {"component_type": "ControlFlowEdge", "id": "c2", "name": "c2", "from_node": {"$component_ref": "t"}, "to_node": {"$component_ref": "e"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "d1", "name": "d1", "source_node": {"$component_ref": "s"}, "source_output": "query",
             "destination_node": {"$component_ref": "t"}, "destination_input": "query"},
            {"component_type": "DataFlowEdge", "id": "d2", "name": "d2", "source_node": {"$component_ref": "t"}, "source_output": "result",
             "destination_node": {"$component_ref": "e"}, "destination_input": "result"}
        ],
        "outputs": [{"title": "result", "type": "string"}],
        "$referenced_components": {
            "s": {"component_type": "StartNode", "id": "s", "name": "start", "inputs": [{"title": "query", "type": "string"}],
                  "outputs": [{"title": "query", "type": "string"}]},
            "t": {"component_type": "ToolNode", "id": "t", "name": "lookup_node",
                  "tool": {"component_type": "ServerTool", "id": "lookup", "name": "lookup", "description": "Look up",
                           "inputs": [{"title": "query", "type": "string"}], "outputs": [{"title": "result", "type": "string"}]}},
            "e": {"component_type": "EndNode", "id": "e", "name": "end", "inputs": [{"title": "result", "type": "string"}],
                  "outputs": [{"title": "result", "type": "string"}]}
        }
    });
    let tools = || {
        let mut tools = ToolRegistry::new();
        tools.register_fn("lookup", |_args: Map<String, Json>| async {
            Err::<Json, _>(ToolError::Failed { message: "service down".into() })
        });
        tools
    };
    for raise in [false, true] {
        let config = MockConfig::default()
            .with_calls(0, vec![ScriptedCall::new("lookup_flow", json!({"query": "tides"})).with_id("f1")])
            .with_reply(1, "Sorry, the lookup failed.");
        let server = MockServer::start(config).await;
        let document = root(extended("front", "Help.", &server.url(), true, json!({"flows": [flow.clone()], "raise_exceptions": raise})));
        let plan = plan(&document, tools());
        let mut run = plan.start(Map::new()).unwrap();
        run.append_user_message("Tides?").unwrap();
        let result = run.execute().await;
        if raise {
            let error = result.unwrap_err();
            assert!(error.message.contains("service down"), "{}", error.message);
            assert_eq!(server.requests().len(), 1);
            continue;
        }
        let status = result.unwrap();
        assert!(matches!(status, Status::InputRequired { .. }), "{status:?}");
        let sent = server.requests();
        assert_eq!(messages(&sent[1])[3], ("tool".to_owned(), "\"service down\"".to_owned()));
        // Both delimiters are there: the flow's part of the conversation is closed.
        let internal = run.state().messages.iter().filter(|m| m.message_type == "INTERNAL").count();
        assert_eq!(internal, 2);
    }
}

/// A sub-agent's inputs are parameters after `context`, described as the sub-agent's, and
/// become its inputs (its system prompt reads them).
#[tokio::test]
async fn a_sub_agents_inputs_are_parameters_after_the_context() {
    let config = MockConfig::default()
        .with_calls(0, vec![ScriptedCall::new("expert", json!({"context": "Explain", "topic": "tides"})).with_id("c1")])
        .with_reply(1, "Tides are...")
        .with_reply(2, "Here you are.");
    let server = MockServer::start(config).await;
    let sub = extended(
        "expert",
        "You know {{topic}}.",
        &server.url(),
        true,
        json!({"inputs": [{"title": "topic", "type": "string", "description": "the topic"}]}),
    );
    let document = root(extended("front", "Help.", &server.url(), true, json!({"agents": [sub]})));
    let plan = plan(&document, ToolRegistry::new());
    let mut run = plan.start(Map::new()).unwrap();
    run.append_user_message("Tides?").unwrap();
    run.execute().await.unwrap();
    let sent = server.requests();
    assert_eq!(
        sent[0]["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {
            "context": {"description": "Context to pass the expert. Make sure to state the question, and any relevant information the expert might need to answer the request", "type": "string", "title": "Context"},
            "topic": {"type": "string", "title": "topic", "description": "(part of the sub-agent inputs) the topic"}},
            "required": ["context", "topic"]})
    );
    assert_eq!(messages(&sent[1]), pairs(&[("system", "You know tides."), ("user", "Explain")]));
}

/// What WayFlow refuses to load, Weft refuses too, naming the place: a sub-agent input without
/// a description, one named `context`, and names the model could not tell apart.
#[test]
fn sub_agents_without_described_inputs_and_clashing_names_are_refused() {
    let url = "http://127.0.0.1:9/v1";
    let bare = extended("expert", "You know {{topic}}.", url, true, json!({}));
    let context =
        extended("expert", "{{context}}", url, true, json!({"inputs": [{"title": "context", "type": "string", "description": "x"}]}));
    let tool = json!({"component_type": "ServerTool", "id": "t", "name": "expert", "description": "", "inputs": [], "outputs": []});
    let clash = extended("expert", "Hi.", url, true, json!({}));
    for (sub, more, want) in [
        (bare, json!({}), "input `topic` has no description"),
        (context, json!({}), "cannot have an input named `context`"),
        (clash, json!({"tools": [tool]}), "share the name `expert`"),
    ] {
        let mut members = more.as_object().unwrap().clone();
        members.insert("agents".into(), json!([sub]));
        let document = root(extended("front", "Help.", url, true, Json::Object(members)));
        let error = weft_flow::Flow::from_json(&document).err().unwrap_or_else(|| panic!("{want}: loaded"));
        assert!(error.to_string().contains(want), "{want}: {error}");
    }
}
