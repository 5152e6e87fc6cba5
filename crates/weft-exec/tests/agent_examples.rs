//! The agent examples built in Rust (issue 15, item 5): `examples/swarm_triage.rs`,
//! `examples/manager_workers.rs` and `examples/orchestrator_agents.rs` write exactly the
//! documents of `examples/flows/` (which the command line runs with shell tools), and run with
//! their async Rust tools on the simulated model and their scripts: who calls what, in which
//! order, what the tools answered, and the typed outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

#[path = "../../../examples/swarm_triage.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod swarm_triage;

#[path = "../../../examples/manager_workers.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod manager_workers;

#[path = "../../../examples/orchestrator_agents.rs"]
#[allow(dead_code, reason = "the example's own entry point is not called")]
mod orchestrator_agents;

use serde_json::{Value as Json, json};
use std::path::PathBuf;
use weft_exec::RunState;
use weft_llm::simulated::Script;

fn flows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(flows().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

fn script(file: &str) -> Script {
    Script::from_json(&read(file), file).unwrap()
}

/// The tool calls of the conversation, in order: `(node, tool, arguments)`.
fn calls(state: &RunState) -> Vec<(String, String, Json)> {
    state.messages.iter().flat_map(|m| m.tool_calls.iter().map(|c| (m.node.clone(), c.name.clone(), c.arguments.clone()))).collect()
}

/// Every conversation of the run (the main one, then the threads), as text.
fn everything(state: &RunState) -> String {
    serde_json::to_string(&state.messages).unwrap() + &serde_json::to_string(&state.conversations).unwrap()
}

#[test]
fn the_builders_write_the_documents_of_examples_flows() {
    assert_eq!(
        swarm_triage::swarm().to_document_string(),
        read("swarm_triage.json"),
        "cargo run -p weft-exec --example swarm_triage -- --document"
    );
    assert_eq!(
        manager_workers::group().to_document_string(),
        read("manager_workers.json"),
        "cargo run -p weft-exec --example manager_workers -- --document"
    );
    assert_eq!(
        orchestrator_agents::orchestrator_agents().to_document_string(),
        read("orchestrator_agents.json"),
        "cargo run -p weft-exec --example orchestrator_agents -- --document"
    );
}

#[tokio::test]
async fn the_swarm_built_in_rust_runs_with_its_rust_tools() {
    let (state, said) =
        swarm_triage::run(script("replies_swarm_triage.json"), "Hi, I was charged twice for invoice INV-1042.").await.unwrap();
    assert!(said.starts_with("You were charged twice for invoice INV-1042 because of payments incident PAY-17."), "{said}");
    let names: Vec<String> = calls(&state).into_iter().map(|(node, tool, _)| format!("{node}: {tool}")).collect();
    assert_eq!(names, ["triage: handoff_conversation", "billing: lookup_invoice", "billing: send_message", "billing: refund_charge"]);
    // The async Rust functions answered: the typed invoice serialized, the refund's id, and
    // tech support's tool on its own thread.
    let results: Vec<&str> = state.messages.iter().filter(|m| m.message_type == "TOOL_RESULT").map(|m| m.content.as_str()).collect();
    assert_eq!(
        serde_json::from_str::<Json>(results[1]).unwrap(),
        json!({"invoice": "INV-1042", "amount": 42.0, "charges": 2, "status": "paid"})
    );
    assert_eq!(results[3], "\"RF-1042\"");
    assert!(everything(&state).contains("incident PAY-17 on 2026-12-01: some cards were charged twice"));
}

#[tokio::test]
async fn a_native_tools_error_is_given_to_the_agent_as_its_result() {
    // The same Swarm, billing looking up an invoice the tool does not know: the function's
    // error is the tool's result, and the agent goes on.
    let mut replies = script("replies_swarm_triage.json");
    let lookup = r#"{"name": "lookup_invoice", "parameters": {"invoice": "INV-9"}}"#;
    replies.set("billing", vec![json!(format!("Checking.\n{lookup}")), json!("I cannot find invoice INV-9. Could you check the number?")]);
    let (state, said) = swarm_triage::run(replies, "Charged twice for INV-9").await.unwrap();
    assert_eq!(said, "I cannot find invoice INV-9. Could you check the number?");
    let result = state.messages.iter().find(|m| m.message_type == "TOOL_RESULT" && m.content.contains("INV-9")).map(|m| m.content.clone());
    assert!(result.is_some_and(|r| r.contains("no invoice INV-9")), "{:?}", state.messages);
}

#[tokio::test]
async fn the_manager_workers_built_in_rust_runs_with_its_rust_tools() {
    let (state, said) =
        manager_workers::run(script("replies_manager_workers.json"), "Write a release note about Swarm support.").await.unwrap();
    assert!(said.starts_with("Here is the release note:\n\nWeft 0.4 runs teams of agents"), "{said}");
    let names: Vec<String> = calls(&state).into_iter().map(|(node, tool, args)| format!("{node}: {tool} {}", args["recipient"])).collect();
    assert_eq!(names, ["editor: send_message \"researcher\"", "editor: send_message \"writer\""]);
    // The researcher's Rust tool searched the changelog (a typed `Vec<String>` result), the
    // writer's read the style guide.
    let all = everything(&state);
    assert!(all.contains("0.4: ManagerWorkers: a manager agent delegates tasks to worker agents and gets their answers back"), "{all}");
    assert!(all.contains("Plain words, no jargon"), "{all}");
}

#[tokio::test]
async fn the_orchestrator_with_worker_agents_built_in_rust_returns_typed_outputs() {
    let article = orchestrator_agents::run(script("replies_orchestrator_agents.json"), "Artificial Intelligence").await.unwrap();
    let names: Vec<&str> = article.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Introduction", "How it works", "What it changes"]);
    assert_eq!(article.section_texts.len(), 3);
    assert!(article.section_texts[1].starts_with("A model adjusts millions of numbers"), "{:?}", article.section_texts);
    assert_eq!(article.report, article.section_texts.join(" "));
}

#[tokio::test]
async fn unscripted_the_worker_agents_call_their_rust_tool_then_submit() {
    // Without a script the simulated planner plans one section; its writer agent calls
    // `find_facts` (generated arguments), then submits generated text: the flow still finishes.
    let article = orchestrator_agents::run(Script::new(), "Rust").await.unwrap();
    assert_eq!(article.sections.len(), 1);
    assert_eq!(article.section_texts, ["section_text"]);
}

#[test]
fn a_typed_tool_declares_the_parameters_its_function_takes() {
    // What the agents are told (the ServerTool) and what the function deserializes (the
    // native tool's schema) come from the same struct.
    let [lookup, refund, _] = swarm_triage::tools().1;
    for (declared, native) in
        [(lookup, weft_tools::native(swarm_triage::lookup_invoice)), (refund, weft_tools::native(swarm_triage::refund_charge))]
    {
        let schema = native.parameters_schema();
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        let titles: Vec<&str> = declared.inputs.iter().map(|p| p.title()).collect();
        assert_eq!(titles, required, "{}", declared.name);
        for p in &declared.inputs {
            let mut expected = schema["properties"][p.title()].clone();
            expected["title"] = json!(p.title());
            let mut got = p.to_json();
            got.as_object_mut().unwrap().sort_keys();
            expected.as_object_mut().unwrap().sort_keys();
            assert_eq!(got, expected, "{}.{}", declared.name, p.title());
        }
    }
}

#[test]
fn one_call_binds_every_declared_tool() {
    // `TypedTools::tool_fn` registered each function under the name it declared.
    let (registry, declared) = swarm_triage::tools();
    assert_eq!(registry.names().collect::<Vec<_>>(), ["lookup_invoice", "refund_charge", "service_status"]);
    assert_eq!(declared.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["lookup_invoice", "refund_charge", "service_status"]);
    assert_eq!(declared[0].outputs[0].title(), "invoice");
    assert_eq!(declared[0].outputs[0].to_json()["properties"]["charges"]["type"], "integer", "the result type's schema");
}

/// Built-in-Rust agents beyond the examples: an ExtendedAgent, a SpecializedAgent, and a Swarm
/// in an AgentNode, each run with async Rust tools bound by `TypedTools::tool_fn`.
mod builders {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value as Json, json};
    use std::sync::{Arc, Mutex};
    use weft_exec::{FlowExt, InputRequest, Limiters, RunOptions, Status, TypedTools};
    use weft_flow::builder::{AgentBuilder, FlowBuilder, LlmConfig, Output, SpecializedAgentBuilder, SwarmBuilder};
    use weft_flow::typed_outputs;
    use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
    use weft_testkit::{MockConfig, MockServer, ScriptedCall};
    use weft_tools::ToolRegistry;

    /// The arguments of `weather`.
    #[derive(Deserialize, JsonSchema)]
    struct CityQuery {
        /// The city
        city: String,
    }

    /// What `weather` answers.
    #[derive(Serialize, JsonSchema)]
    struct Weather {
        /// Sunny, rainy...
        sky: String,
        /// Degrees Celsius
        celsius: i64,
    }

    async fn weather(q: CityQuery) -> Result<Weather, String> {
        match q.city.as_str() {
            "Lyon" => Ok(Weather { sky: "sunny".into(), celsius: 21 }),
            other => Err(format!("no station in {other}")),
        }
    }

    /// The outputs the agents submit.
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    struct Forecast {
        /// The city
        city: String,
        /// Degrees Celsius
        celsius: i64,
    }

    fn options(tools: ToolRegistry) -> RunOptions {
        RunOptions::default().with_tools(tools).with_limits(Limiters::new(Default::default()))
    }

    /// The system prompt a request carried (its text parts, joined).
    fn system(request: &Json) -> String {
        let first = &request["messages"][0];
        assert_eq!(first["role"], "system", "{request}");
        first["content"].as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap()).collect()
    }

    #[tokio::test]
    async fn an_extended_agent_greets_then_runs_its_rust_tool_and_submits_strictly() {
        let server = MockServer::start(
            MockConfig::default()
                .with_calls(0, vec![ScriptedCall::new("weather", json!({"city": "Lyon"})).with_id("w")])
                // Strict: 21.0 is not an integer, and the submission goes back to the model.
                .with_calls(1, vec![ScriptedCall::new("submit_result", json!({"city": "Lyon", "celsius": 21.0})).with_id("s1")])
                .with_calls(2, vec![ScriptedCall::new("submit_result", json!({"city": "Lyon", "celsius": 21})).with_id("s2")]),
        )
        .await;
        let llm = LlmConfig::openai_compatible("llm", &server.url(), "m");
        let mut tools = ToolRegistry::new();
        let weather = tools.tool_fn("weather", "The weather in a city", "weather", weather);
        let agent = AgentBuilder::new("forecaster", &llm, "You give forecasts.")
            .tool(&weather)
            .outputs_of::<Forecast>()
            .initial_message("Hello! Which city?")
            .strict_output_validation(true)
            .max_iterations(5);
        let flow = agent.build().unwrap_or_else(|d| panic!("{d:?}"));
        let mut run = flow.start_with(Map::new(), options(tools)).unwrap();
        // The initial message is posted without an LLM call.
        match run.execute().await.unwrap() {
            Status::InputRequired { request: InputRequest::Message { message: Some(said), .. } } => assert_eq!(said, "Hello! Which city?"),
            other => panic!("expected the greeting, got {other:?}"),
        }
        assert_eq!(server.requests().len(), 0);
        run.submit(json!("Lyon, please")).unwrap();
        let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!("the agent submits") };
        assert_eq!(typed_outputs::<Forecast>(&outputs).unwrap(), Forecast { city: "Lyon".into(), celsius: 21 });
        let sent = server.requests();
        assert_eq!(sent.len(), 3, "the tool, the refused submission, the accepted one");
        let messages = sent[2]["messages"].as_array().unwrap();
        let results: Vec<&str> = messages.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap()).collect();
        assert_eq!(results[0], r#"{"sky": "sunny", "celsius": 21}"#, "the Rust function's typed result, as json.dumps writes it");
        assert!(results[1].contains("celsius"), "the strict refusal names the field: {results:?}");
    }

    #[tokio::test]
    async fn a_specialized_agent_runs_as_its_base_with_the_added_instructions_and_rust_tool() {
        let server = MockServer::start(
            MockConfig::default()
                .with_calls(0, vec![ScriptedCall::new("weather", json!({"city": "Lyon"})).with_id("w")])
                .with_calls(1, vec![ScriptedCall::new("submit_result", json!({"city": "Lyon", "celsius": 21}))]),
        )
        .await;
        let llm = LlmConfig::openai_compatible("llm", &server.url(), "m");
        let mut tools = ToolRegistry::new();
        let weather = tools.tool_fn("weather", "The weather in a city", "weather", weather);
        let base = AgentBuilder::new("forecaster", &llm, "You give forecasts for {{region}}.").outputs_of::<Forecast>();
        let specialized = SpecializedAgentBuilder::new("alpine_forecaster", &base)
            .additional_instructions("Answer in {{unit}}.")
            .tool(&weather)
            .human_in_the_loop(false);
        let mut b = FlowBuilder::new("forecast");
        let start = b.start(&[Output::string("region"), Output::string("unit")]);
        let node = b.agent("forecast", &specialized);
        let end = b.end("end", &[Output::string("city"), Output::integer("celsius")]);
        b.edge(start, node);
        b.edge(node, end);
        b.data(start, "region", node, "region");
        b.data(start, "unit", node, "unit");
        b.data(node, "city", end, "city");
        b.data(node, "celsius", end, "celsius");
        let flow = b.build().unwrap_or_else(|d| panic!("{d:?}"));
        let mut inputs = Map::new();
        inputs.insert("region".into(), json!("the Alps"));
        inputs.insert("unit".into(), json!("Celsius"));
        let mut run = flow.start_with(inputs, options(tools)).unwrap();
        // human_in_the_loop(false): it answers by itself, without a user message.
        let Status::Finished { outputs, .. } = run.execute().await.unwrap() else { panic!("the agent submits") };
        assert_eq!(typed_outputs::<Forecast>(&outputs).unwrap(), Forecast { city: "Lyon".into(), celsius: 21 });
        let sent = server.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(system(&sent[0]), "You give forecasts for the Alps.\n\nAnswer in Celsius.");
        let offered: Vec<&str> = sent[0]["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert!(offered.contains(&"weather") && offered.contains(&"submit_result"), "{offered:?}");
        assert!(!offered.contains(&"talk_to_user"), "it may not ask the user: {offered:?}");
    }

    #[tokio::test]
    async fn a_swarm_in_an_agent_node_runs_to_its_outputs() {
        // The front desk asks the forecaster (a message on their own thread), which calls its
        // Rust tool and answers; the front desk submits the node's outputs, which the flow ends with.
        let llm = LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "m");
        let mut tools = ToolRegistry::new();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        let weather = tools.tool_fn("weather", "The weather in a city", "weather", move |q: CityQuery| {
            log.lock().unwrap().push(q.city.clone());
            weather(q)
        });
        let front = AgentBuilder::new("front", &llm, "You answer travellers.").description("Front desk");
        let forecaster = AgentBuilder::new("forecaster", &llm, "You give forecasts.").description("Forecasts").tool(&weather);
        let mut swarm = SwarmBuilder::new("desk", &front);
        swarm.relationship(&front, &forecaster).outputs_of::<Forecast>();
        let mut b = FlowBuilder::new("travel");
        let start = b.start(&[]);
        let desk = b.agent("desk", &swarm);
        let end = b.end("end", &[Output::string("city"), Output::integer("celsius")]);
        b.edge(start, desk);
        b.edge(desk, end);
        b.data(desk, "city", end, "city");
        b.data(desk, "celsius", end, "celsius");
        let flow = b.build().unwrap_or_else(|d| panic!("{d:?}"));

        let mut script = Script::new();
        let call = |name: &str, parameters: Json| json!({"name": name, "parameters": parameters}).to_string();
        script.set(
            "front",
            vec![
                json!(format!(
                    "I will ask the forecaster.\n{}",
                    call("send_message", json!({"recipient": "forecaster", "message": "Weather in Lyon?"}))
                )),
                json!(format!("Done.\n{}", call("submit_result", json!({"city": "Lyon", "celsius": 21})))),
            ],
        );
        script.set(
            "forecaster",
            vec![json!(format!("Checking.\n{}", call("weather", json!({"city": "Lyon"})))), json!("Lyon: sunny, 21 degrees.")],
        );
        let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
        let mut run = flow.start_with(Map::new(), RunOptions::simulated().with_model(Arc::new(model)).with_tools(tools)).unwrap();
        run.append_user_message("How warm is Lyon?").unwrap();
        let status = run.execute().await.unwrap();
        let Status::Finished { outputs, .. } = status else { panic!("the swarm submits the node's outputs: {status:?}") };
        assert_eq!(typed_outputs::<Forecast>(&outputs).unwrap(), Forecast { city: "Lyon".into(), celsius: 21 });
        assert_eq!(*asked.lock().unwrap(), ["Lyon"], "the forecaster called its Rust tool once, on its thread");
        let calls: Vec<String> = super::calls(run.state()).into_iter().map(|(node, tool, _)| format!("{node}: {tool}")).collect();
        assert_eq!(calls, ["front: send_message", "front: submit_result"]);
        let results: Vec<&str> =
            run.state().messages.iter().filter(|m| m.message_type == "TOOL_RESULT").map(|m| m.content.as_str()).collect();
        assert_eq!(results[0], "\"Lyon: sunny, 21 degrees.\"", "the forecaster's answer is the result of the message");
    }
}
