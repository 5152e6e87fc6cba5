//! Swarm, ManagerWorkers and agents in parallel over real HTTP (the testkit server): what each
//! agent is sent, who talks to the user, handoffs in each mode, a manager delegating to two
//! workers, worker agents in a parallel map bounded by `max_workers` as the server counts
//! them, and a Swarm waiting for the user resumed from its stored state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use std::time::Duration;
use weft_exec::{InputRequest, Limiters, Plan, RunOptions, Status};
use weft_testkit::{MockConfig, MockServer, ScriptedCall, ToolReply};
use weft_tools::{Tool, ToolError, ToolRegistry};

mod common;
use common::flow_json;

struct Func(fn(&Map<String, Json>) -> Json);

#[async_trait::async_trait]
impl Tool for Func {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        Ok((self.0)(&args))
    }
}

fn tools() -> ToolRegistry {
    let mut tools = ToolRegistry::new();
    tools.register("add", Func(|a| json!(a["a"].as_i64().unwrap_or(0) + a["b"].as_i64().unwrap_or(0))));
    tools.register("lookup", Func(|a| json!(format!("facts about {}", a["topic"].as_str().unwrap_or_default()))));
    tools
}

fn llm(id: &str, url: &str) -> Json {
    json!({"component_type": "OpenAiCompatibleConfig", "id": id, "name": "llm", "model_id": "m", "url": url})
}

fn agent(name: &str, description: &str, prompt: &str, tools: Json, url: &str) -> Json {
    json!({"component_type": "Agent", "id": format!("agent_{name}"), "name": name, "description": description, "llm_config": llm(&format!("llm_{name}"), url),
           "system_prompt": prompt, "tools": tools, "human_in_the_loop": true})
}

fn add_tool() -> Json {
    json!({"component_type": "ServerTool", "id": "add", "name": "add", "description": "Add two integers",
           "inputs": [{"title": "a", "type": "integer"}, {"title": "b", "type": "integer"}], "outputs": [{"title": "sum", "type": "integer"}]})
}

fn swarm(handoff: &str, url: &str) -> Weft {
    let front = agent("front", "Front desk", "You are the front desk.", json!([]), url);
    let billing = agent("billing", "Billing expert", "You handle billing.", json!([]), url);
    let doc = json!({"component_type": "Swarm", "id": "desk", "name": "desk", "agentspec_version": "26.1.2",
        "first_agent": {"$component_ref": "agent_front"},
        "relationships": [[{"$component_ref": "agent_front"}, {"$component_ref": "agent_billing"}],
                          [{"$component_ref": "agent_billing"}, {"$component_ref": "agent_front"}]],
        "handoff": handoff,
        "$referenced_components": {"agent_front": front, "agent_billing": billing}});
    Weft::new(&doc)
}

/// A plan of a document, with the tools above, on a limiter registry of its own.
struct Weft {
    plan: Arc<Plan>,
}

impl Weft {
    fn new(doc: &Json) -> Weft {
        let flow = weft_flow::Flow::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{e}")).flow;
        let options = RunOptions::default().with_tools(tools()).with_limits(Limiters::new(Default::default()));
        Weft { plan: weft_exec::Plan::new(&flow, options).unwrap_or_else(|e| panic!("{:?}", e.problems())) }
    }
}

/// The text of a request's message `i` (its parts joined).
fn text(request: &Json, i: usize) -> String {
    match &request["messages"][i]["content"] {
        Json::String(s) => s.clone(),
        Json::Array(parts) => parts.iter().map(|p| p["text"].as_str().unwrap_or_default()).collect(),
        _ => String::new(),
    }
}

fn system(request: &Json) -> String {
    text(request, 0)
}

fn asked(status: &Status) -> String {
    match status {
        Status::InputRequired { request: InputRequest::Message { message: Some(m), .. } } => m.clone(),
        other => panic!("expected a message to the user, got {other:?}"),
    }
}

fn call(name: &str, args: Json) -> String {
    json!({"name": name, "parameters": args}).to_string()
}

#[tokio::test]
async fn handoff_never_the_front_agent_asks_billing_and_relays_the_answer() {
    let send = call("send_message", json!({"message": "Is invoice 7 paid?", "recipient": "billing"}));
    let server = MockServer::start(
        MockConfig::default()
            .with_reply(0, format!("Billing knows.\n{send}"))
            .with_reply(1, "Invoice 7 is paid.")
            .with_reply(2, format!("Relay.\n{}", call("talk_to_user", json!({"text": "Yes, it is paid."}))))
            .with_reply(3, "Bye."),
    )
    .await;
    let weft = swarm("never", &server.url());
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("Is invoice 7 paid?").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Yes, it is paid.");
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.get("tools").is_none()), "group agents call tools in their text");
    // The front agent may only send messages.
    let front = system(&sent[0]);
    assert!(front.contains("- name: front") && front.contains("\"name\": \"send_message\""), "{front}");
    assert!(!front.contains("\"name\": \"handoff_conversation\""), "{front}");
    assert!(front.contains("in the response.\n--</tool_use_rules>"), "{front}");
    // Billing answers front on their thread.
    assert!(system(&sent[1]).contains("- name: billing") && system(&sent[1]).contains("Your user/caller is: front."));
    assert_eq!(text(&sent[1], 1).split("--- SYSTEM REMINDER ---").next().unwrap(), "--- MESSAGE: From: front ---\nIs invoice 7 paid?");
    // Its answer is the result of front's call.
    let result = text(&sent[2], 3);
    assert!(
        result.starts_with("--- TOOL RESULT: name=send_message, parameters={'message': 'Is invoice 7 paid?', 'recipient': 'billing'} ---\n\"Invoice 7 is paid.\""),
        "{result}"
    );
    // The next user turn goes to front again.
    run.submit(json!("thanks")).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Bye.");
    assert!(system(&server.requests()[3]).contains("- name: front"));
}

#[tokio::test]
async fn handoff_optional_billing_takes_over_the_conversation() {
    let server = MockServer::start(
        MockConfig::default()
            .with_reply(0, format!("Billing should answer.\n{}", call("handoff_conversation", json!({"recipient": "billing"}))))
            .with_reply(1, "Billing here: paid.")
            .with_reply(2, "You are welcome."),
    )
    .await;
    let weft = swarm("optional", &server.url());
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("Invoice 7?").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Billing here: paid.");
    let sent = server.requests();
    let front = system(&sent[0]);
    assert!(front.contains("\"name\": \"send_message\"") && front.contains("\"name\": \"handoff_conversation\""), "{front}");
    assert!(front.contains("-You SHOULD use handoff_conversation tool"), "{front}");
    // Billing now talks to the user, on the whole conversation.
    let billing = &sent[1];
    assert!(system(billing).contains("- name: billing") && system(billing).contains("Your user/caller is: Human User."));
    assert!(system(billing).contains("\"name\": \"handoff_conversation\""), "the agent talking to the user may hand off");
    assert_eq!(
        text(billing, 2),
        format!("--- MESSAGE: From: front ---\nBilling should answer.\n{}", call_py("handoff_conversation", &[("recipient", "billing")]))
    );
    assert!(text(billing, 3).starts_with("--- TOOL RESULT: name=handoff_conversation, parameters={'recipient': 'billing'} ---\n\"The conversation was transferred from agent 'front' to agent 'billing'."));
    run.submit(json!("thanks")).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "You are welcome.");
    assert!(system(&server.requests()[2]).contains("- name: billing"), "later turns go to billing");
}

#[tokio::test]
async fn handoff_always_the_agents_may_only_hand_off() {
    let server = MockServer::start(
        MockConfig::default()
            .with_reply(0, call("handoff_conversation", json!({"recipient": "billing"})))
            .with_reply(1, format!("Done.\n{}", call("talk_to_user", json!({"text": "Paid."})))),
    )
    .await;
    let weft = swarm("always", &server.url());
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("Invoice 7?").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Paid.");
    let sent = server.requests();
    let front = system(&sent[0]);
    assert!(!front.contains("\"name\": \"send_message\"") && front.contains("\"name\": \"handoff_conversation\""), "{front}");
    assert!(front.contains("--You must use the handoff_conversation tool when delegating to another agent.</tool_use_rules>"), "{front}");
    assert!(system(&sent[1]).contains("- name: billing"));
}

/// `json.dumps` of a call, as WayFlow writes it back in the history.
fn call_py(name: &str, args: &[(&str, &str)]) -> String {
    let args: Vec<String> = args.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
    format!("{{\"name\": \"{name}\", \"parameters\": {{{}}}}}", args.join(", "))
}

#[tokio::test]
async fn a_manager_delegates_to_two_workers_and_answers_with_both_results() {
    let url_holder = MockServer::start(MockConfig::default()).await;
    let url = url_holder.url();
    let sends = format!(
        "[{}, {}]",
        call("send_message", json!({"message": "Add 2 and 3", "recipient": "adder"})),
        call("send_message", json!({"message": "Say hi", "recipient": "greeter"}))
    );
    url_holder.set_config(
        MockConfig::default()
            .with_reply(0, format!("Two tasks.\n{sends}"))
            .with_calls(1, vec![ScriptedCall::new("add", json!({"a": 2, "b": 3})).with_id("c1")])
            .with_reply(2, "2+3=5")
            .with_reply(3, "hi")
            .with_reply(4, call("talk_to_user", json!({"text": "5, and hi"}))),
    );
    let doc = json!({"component_type": "ManagerWorkers", "id": "team", "name": "team", "agentspec_version": "26.1.2",
        "group_manager": agent("lead", "Leads the team", "You lead.", json!([]), &url),
        "workers": [agent("adder", "Adds numbers", "You add with your tool.", json!([add_tool()]), &url),
                    agent("greeter", "Greets", "You greet.", json!([]), &url)]});
    let weft = Weft::new(&doc);
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("Add 2 and 3, and greet").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "5, and hi");
    let sent = url_holder.requests();
    assert_eq!(sent.len(), 5);
    // The manager's prompt lists both workers; its messages are headed with its id.
    let lead = system(&sent[0]);
    assert!(lead.contains("- adder: Adds numbers\n\n- greeter: Greets") && lead.contains("Your user/caller is: HUMAN USER."), "{lead}");
    // Each worker is an ordinary agent: its own prompt, the message as a plain user message,
    // its tools offered natively.
    assert_eq!(
        sent[1]["messages"],
        json!([{"role": "system", "content": [{"type": "text", "text": "You add with your tool."}]}, {"role": "user", "content": [{"type": "text", "text": "Add 2 and 3"}]}])
    );
    let names: Vec<&str> = sent[1]["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["add", "talk_to_user"]);
    assert_eq!(sent[3]["messages"][1]["content"][0]["text"], "Say hi");
    assert!(sent[3].get("tools").is_none(), "a worker with nothing to call is offered no tools");
    // Both results come back to the manager, in call order.
    assert!(text(&sent[4], 2).starts_with("--- MESSAGE: From: agent_lead ---\nTwo tasks.\n"), "{}", text(&sent[4], 2));
    assert!(text(&sent[4], 3).ends_with("recipient': 'adder'} ---\n\"2+3=5\""), "{}", text(&sent[4], 3));
    assert!(
        text(&sent[4], 4)
            .starts_with("--- TOOL RESULT: name=send_message, parameters={'message': 'Say hi', 'recipient': 'greeter'} ---\n\"hi\"")
    );
}

#[tokio::test]
async fn a_swarm_waiting_for_the_user_resumes_from_its_stored_state() {
    let send = call("send_message", json!({"message": "Status of 9?", "recipient": "billing"}));
    let server = MockServer::start(
        MockConfig::default()
            .with_reply(0, format!("Ask billing.\n{send}"))
            .with_reply(1, "Which customer?")
            .with_reply(2, call("talk_to_user", json!({"text": "Which customer is it?"})))
            .with_reply(3, format!("Tell billing.\n{}", call("send_message", json!({"message": "Customer Ann", "recipient": "billing"}))))
            .with_reply(4, "Paid for Ann.")
            .with_reply(5, "It is paid."),
    )
    .await;
    let weft = swarm("optional", &server.url());
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("Is 9 paid?").unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Which customer is it?");
    // Stored and resumed, as another process would.
    let stored = serde_json::to_string(&run.into_state()).unwrap();
    let mut run = weft.plan.resume(serde_json::from_str(&stored).unwrap()).unwrap();
    run.submit(json!("Ann")).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "It is paid.");
    let sent = server.requests();
    // Billing's thread kept its history across the pause.
    let billing = &sent[4];
    assert_eq!(text(billing, 1).as_str(), "--- MESSAGE: From: front ---\nStatus of 9?");
    assert_eq!(text(billing, 2).as_str(), "--- MESSAGE: From: billing ---\nWhich customer?");
    assert!(text(billing, 3).starts_with("--- MESSAGE: From: front ---\nCustomer Ann"));
}

/// A NEVER agent with a tool and an output, run by each item of a parallel map of
/// `max_workers` items at once.
fn worker_map(url: &str, max_workers: usize) -> Json {
    let worker = json!({"component_type": "Agent", "id": "researcher", "name": "researcher", "llm_config": llm("llm", url),
        "system_prompt": "Research {{topic}}.", "human_in_the_loop": false,
        "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "notes", "type": "string"}],
        "tools": [{"component_type": "ServerTool", "id": "lookup", "name": "lookup", "description": "Look a topic up",
                   "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "facts", "type": "string"}]}]});
    let sub = flow_json(
        "item",
        vec![
            json!({"component_type": "StartNode", "id": "is", "name": "start", "inputs": [{"title": "topic", "type": "string"}]}),
            json!({"component_type": "AgentNode", "id": "ia", "name": "research", "agent": worker,
                   "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "notes", "type": "string"}]}),
            json!({"component_type": "EndNode", "id": "ie", "name": "end", "inputs": [{"title": "notes", "type": "string"}], "outputs": [{"title": "notes", "type": "string"}]}),
        ],
        &[("is", "ia"), ("ia", "ie")],
        &[("is", "topic", "ia", "topic"), ("ia", "notes", "ie", "notes")],
    );
    let map = json!({"component_type": "ExtendedParallelMapNode", "id": "map", "name": "workers", "flow": sub, "max_workers": max_workers,
        "inputs": [{"title": "iterated_topic", "type": "array", "items": {}}],
        "outputs": [{"title": "collected_notes", "type": "array", "items": {"type": "string"}}],
        "input_mapping": {"iterated_input": "iterated_topic"}, "output_mapping": {"notes": "collected_notes"},
        "unpack_input": {"topic": "."}, "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let mut flow = flow_json(
        "research",
        vec![
            json!({"component_type": "StartNode", "id": "s", "name": "start", "inputs": [{"title": "topics", "type": "array", "items": {"type": "string"}}]}),
            map,
            json!({"component_type": "EndNode", "id": "e", "name": "end", "inputs": [{"title": "collected_notes", "type": "array", "items": {"type": "string"}}],
                   "outputs": [{"title": "collected_notes", "type": "array", "items": {"type": "string"}}]}),
        ],
        &[("s", "map"), ("map", "e")],
        &[("s", "topics", "map", "iterated_topic"), ("map", "collected_notes", "e", "collected_notes")],
    );
    flow["agentspec_version"] = json!("26.3.1");
    flow
}

#[tokio::test]
async fn worker_agents_in_a_parallel_map_run_at_most_max_workers_at_once() {
    // Each agent looks its topic up, then submits notes naming what it read.
    let server = MockServer::start(MockConfig::default().with_latency(Duration::from_millis(40)).with_tools(ToolReply::Script(vec![
        vec![ScriptedCall::new("lookup", json!({"topic": "x"}))],
        vec![ScriptedCall::new("submit_result", json!({"notes": "done"}))],
    ])))
    .await;
    let weft = Weft::new(&worker_map(&server.url(), 3));
    let topics: Vec<Json> = (0..8).map(|i| json!(format!("t{i}"))).collect();
    let mut inputs = Map::new();
    inputs.insert("topics".into(), Json::Array(topics));
    let mut run = weft.plan.start(inputs).unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!("the map finishes") };
    assert_eq!(outputs["collected_notes"], Json::Array(vec![json!("done"); 8]));
    let stats = server.stats();
    assert_eq!(stats.requests, 16, "two LLM calls per item");
    assert_eq!(stats.max_in_flight, 3, "at most max_workers agents call the model at once, and that many do");
    // Each item's agent talks on a conversation of its own: its prompt and its own messages only.
    for r in server.requests() {
        let messages = r["messages"].as_array().unwrap();
        let topic = text(&r, 0).trim_start_matches("Research ").trim_end_matches('.').to_owned();
        assert!(messages.len() == 1 || messages.len() == 3, "{messages:?}");
        if messages.len() == 3 {
            assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "lookup");
        }
        assert!(topic.starts_with('t'), "{topic}");
    }
    // Nothing of the items is left in the state.
    assert!(run.into_state().conversations.is_empty());
}

#[test]
fn an_agent_that_may_ask_the_user_is_refused_inside_a_parallel_map() {
    let mut doc = worker_map("http://127.0.0.1:9", 2);
    let agent = &mut doc["$referenced_components"]["map"]["flow"]["$referenced_components"]["ia"]["agent"];
    agent["human_in_the_loop"] = json!(true);
    let diagnostics = weft_flow::Flow::from_json(&doc.to_string()).map(|_| ()).expect_err("refused").to_string();
    assert!(
        diagnostics.contains("may ask the user (its agent has human_in_the_loop), which is not allowed inside a parallel map"),
        "{diagnostics}"
    );
}

#[test]
fn a_swarm_is_refused_inside_a_parallel_map() {
    let mut doc = worker_map("http://127.0.0.1:9", 2);
    let url = "http://127.0.0.1:9";
    let swarm = json!({"component_type": "Swarm", "id": "desk", "name": "desk",
        "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "notes", "type": "string"}],
        "first_agent": {"$component_ref": "agent_front"},
        "relationships": [[{"$component_ref": "agent_front"}, {"$component_ref": "agent_billing"}]],
        "$referenced_components": {"agent_front": agent("front", "Front", "p", json!([]), url),
                                   "agent_billing": agent("billing", "Billing", "p", json!([]), url)}});
    doc["$referenced_components"]["map"]["flow"]["$referenced_components"]["ia"]["agent"] = swarm;
    let diagnostics = weft_flow::Flow::from_json(&doc.to_string()).map(|_| ()).expect_err("refused").to_string();
    assert!(
        diagnostics.contains("may ask the user (its agent has human_in_the_loop), which is not allowed inside a parallel map"),
        "{diagnostics}"
    );
    assert_eq!(diagnostics.matches("error[").count(), 1, "the only error: {diagnostics}");
}

#[tokio::test]
async fn a_specialized_agent_runs_its_base_agent_with_the_parameters_merged_in() {
    let server = MockServer::start(MockConfig::default().with_tools(ToolReply::Never).with_text("ok")).await;
    let base = json!({"component_type": "Agent", "id": "analyst", "name": "analyst", "llm_config": llm("llm", &server.url()),
        "system_prompt": "You analyse {{topic}}.", "tools": [add_tool()], "human_in_the_loop": true});
    let lookup = json!({"component_type": "ServerTool", "id": "lookup", "name": "lookup", "description": "Look a topic up",
        "inputs": [{"title": "topic", "type": "string"}], "outputs": [{"title": "facts", "type": "string"}]});
    let doc = json!({"component_type": "SpecializedAgent", "id": "fin", "name": "finance_analyst", "agentspec_version": "26.1.2",
        "agent": base,
        "agent_specialization_parameters": {"component_type": "AgentSpecializationParameters", "id": "p", "name": "finance",
            "additional_instructions": "Focus on {{market}}.", "additional_tools": [lookup], "human_in_the_loop": false}});
    let weft = Weft::new(&doc);
    let mut inputs = Map::new();
    inputs.insert("topic".into(), json!("bonds"));
    inputs.insert("market".into(), json!("Europe"));
    let mut run = weft.plan.start(inputs).unwrap();
    run.append_user_message("Go").unwrap();
    // NEVER (the parameters' mode): reminded to submit after its text, to the iteration limit.
    assert!(matches!(run.execute().await.unwrap(), Status::Finished { .. }));
    let first = &server.requests()[0];
    assert_eq!(system(first), "You analyse bonds.\n\nFocus on Europe.");
    let names: Vec<&str> = first["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["add", "lookup", "submit_result"], "the base agent's tools, the additional ones, and no talk_to_user");
}

#[tokio::test]
async fn a_swarm_in_an_agent_node_submits_the_nodes_outputs() {
    let server = MockServer::start(
        MockConfig::default()
            .with_reply(0, format!("Ask billing.\n{}", call("send_message", json!({"message": "Total?", "recipient": "billing"}))))
            .with_reply(1, "42")
            .with_reply(2, format!("Done.\n{}", call("submit_result", json!({"answer": "42"})))),
    )
    .await;
    let url = server.url();
    let answer = json!([{"title": "answer", "type": "string"}]);
    let swarm = json!({"component_type": "Swarm", "id": "desk", "name": "desk", "outputs": answer,
        "first_agent": {"$component_ref": "agent_front"},
        "relationships": [[{"$component_ref": "agent_front"}, {"$component_ref": "agent_billing"}]],
        "$referenced_components": {"agent_front": agent("front", "Front desk", "You are the front desk.", json!([]), &url),
                                   "agent_billing": agent("billing", "Billing expert", "You handle billing.", json!([]), &url)}});
    let mut flow = flow_json(
        "f",
        vec![
            json!({"component_type": "StartNode", "id": "s", "name": "start"}),
            json!({"component_type": "AgentNode", "id": "team", "name": "team", "agent": swarm, "outputs": answer}),
            json!({"component_type": "EndNode", "id": "e", "name": "end", "inputs": answer, "outputs": answer}),
        ],
        &[("s", "team"), ("team", "e")],
        &[("team", "answer", "e", "answer")],
    );
    flow["agentspec_version"] = json!("26.1.2");
    let weft = Weft::new(&flow);
    let mut run = weft.plan.start(Map::new()).unwrap();
    run.append_user_message("What is the total?").unwrap();
    let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!("the swarm submits") };
    assert_eq!(outputs["answer"], "42");
    let sent = server.requests();
    assert!(system(&sent[0]).contains("\"name\": \"submit_result\""), "the agent talking to the user submits the node's outputs");
    assert!(!system(&sent[1]).contains("\"name\": \"submit_result\""), "an agent on a thread has no outputs");
    assert!(run.into_state().conversations.is_empty(), "the threads end with the group");
}

#[tokio::test]
async fn without_a_user_message_the_reminder_joins_the_system_prompt() {
    let server = MockServer::start(MockConfig::default().with_reply(0, "Hello, how can I help?")).await;
    let weft = swarm("optional", &server.url());
    let mut run = weft.plan.start(Map::new()).unwrap();
    assert_eq!(asked(&run.execute().await.unwrap()), "Hello, how can I help?");
    let sent = server.requests();
    // WayFlow's CoalesceSystemMessagesTransform joins the leading system messages.
    assert_eq!(sent[0]["messages"].as_array().unwrap().len(), 1);
    assert!(
        system(&sent[0]).contains("You are the front desk.\n</system_instructions>\n\n--- SYSTEM REMINDER ---\n"),
        "{}",
        system(&sent[0])
    );
}
