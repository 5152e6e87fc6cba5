//! Weft against WayFlow on the same flows: each scenario of `fixtures/wayflow_flows.json`
//! (recorded by `scripts/record_wayflow_flows.py` from WayFlow 26.3.1 running the document) is
//! run again here, against the testkit server scripted with the same LLM answers and with the
//! same tools, and must end as WayFlow's run did: the same status, outputs, EndNode branch,
//! conversation, datastore contents, and every chat request equal to the one WayFlow sent (except
//! `stream` and `stream_options`: WayFlow streams rephrasing calls, Weft does not). A scenario in
//! which WayFlow raised must fail in Weft too, raising the same exception class for catch nodes
//! (or be refused at start, for a document WayFlow only finds wrong when it runs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use weft_exec::{FlowExt, Limiters, RunOptions, Status};
use weft_testkit::{MockConfig, MockServer};
use weft_tools::{Tool, ToolError, ToolRegistry};

/// A tool from a function of its arguments.
struct Func(fn(&Map<String, Json>) -> Json);

#[async_trait::async_trait]
impl Tool for Func {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        Ok((self.0)(&args))
    }
}

/// `counter_value`: 41, then 42, ... (one counter per run).
struct Counter(std::sync::atomic::AtomicI64);

#[async_trait::async_trait]
impl Tool for Counter {
    async fn call(&self, _args: Map<String, Json>) -> Result<Json, ToolError> {
        Ok(json!(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1))
    }
}

/// The script's `TOOLS`.
fn tools() -> ToolRegistry {
    let mut tools = ToolRegistry::new();
    tools.register("current_time", Func(|a| json!(format!("12:00 {}", a.get("zone").and_then(Json::as_str).unwrap_or("UTC")))));
    tools.register("counter_value", Counter(std::sync::atomic::AtomicI64::new(40)));
    tools.register(
        "forecast",
        Func(|a| {
            json!(format!(
                "sunny in {} for {} days",
                a.get("city").and_then(Json::as_str).unwrap_or(""),
                a.get("days").unwrap_or(&Json::Null)
            ))
        }),
    );
    tools
}

fn fixture() -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wayflow_flows.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("json")
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

/// A request as compared: without `stream` and `stream_options`, and without the schema WayFlow
/// asks for when a loaded prompt template has no `response_format` (`expected_output` wrapping the
/// node's `output`, FORMAT.md 11.1): Weft sends no schema there and takes the text, as the same
/// template built in Python does (a documented difference).
fn comparable(mut request: Json) -> Json {
    if let Json::Object(m) = &mut request {
        m.remove("stream");
        m.remove("stream_options");
        let wrapper = m.get("response_format").is_some_and(|f| {
            f["json_schema"]["name"] == "expected_output"
                && f["json_schema"]["schema"]["properties"].as_object().is_some_and(|p| p.len() == 1 && p.contains_key("output"))
        });
        if wrapper {
            m.remove("response_format");
        }
    }
    request
}

/// Whether Weft may refuse to start a flow whose run WayFlow failed with `class` (a problem
/// of the document that WayFlow only finds when it reads the value).
fn refusals_for(class: &str) -> bool {
    class == "ValueError"
}

async fn replay(name: &str) {
    let all = fixture();
    let s = all["scenarios"].as_array().unwrap().iter().find(|s| s["scenario"] == name).unwrap_or_else(|| panic!("no scenario {name}"));
    let answers: Vec<&str> = s["answers"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mut config = MockConfig::default();
    for (i, a) in answers.iter().enumerate() {
        config = config.with_reply(i as u64, *a);
    }
    let server = MockServer::start(config).await;
    let mut document = all["documents"][s["document"].as_str().unwrap()].clone();
    retarget(&mut document, &server.url());
    let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap_or_else(|e| panic!("{name}: {e}")).flow;
    let options = RunOptions::default().with_tools(tools()).with_limits(Limiters::new(Default::default()));
    let inputs = s["inputs"].as_object().cloned().unwrap_or_default();
    let mut run = match flow.start_with(inputs, options) {
        Ok(run) => run,
        // WayFlow raised while running what Weft refuses before it starts.
        Err(e) if s["status"] == "error" => {
            let class = s["error"]["class"].as_str().unwrap();
            assert!(refusals_for(class), "{name}: WayFlow raised {class}, Weft refused to start: {:?}", e.problems());
            return;
        }
        Err(e) => panic!("{name}: {:?}", e.problems()),
    };
    let mut status = run.execute().await;
    for user in s["user"].as_array().unwrap() {
        assert!(matches!(status, Ok(Status::InputRequired { .. })), "{name}: expected a question before the user's answer, got {status:?}");
        run.submit(user.clone()).unwrap();
        status = run.execute().await;
    }
    match (s["status"].as_str().unwrap(), &status) {
        ("FinishedStatus", Ok(Status::Finished { outputs, end_branch })) => {
            let expected = s["outputs"].as_object().unwrap();
            assert_eq!(outputs, expected, "{name}: the outputs");
            // A flow run from its Python objects ends at no EndNode.
            if let Some(branch) = s["end"]["branch"].as_str() {
                assert_eq!(end_branch, branch, "{name}: the EndNode reached");
            }
        }
        ("error", Err(e)) => {
            let class = s["error"]["class"].as_str().unwrap();
            let (raised, _) = e.exception();
            assert_eq!(raised, class, "{name}: WayFlow raised {class}, Weft failed with {:?} raised as {raised}: {}", e.kind, e.message);
            assert!(e.catchable(), "{name}: a catch node could not catch it: {}", e.message);
        }
        (want, got) => panic!("{name}: WayFlow ended with {want} ({}), Weft with {got:?}", s.get("error").unwrap_or(&Json::Null)),
    }
    if let Some(messages) = s["messages"].as_array() {
        // A tool request's calls: their names and arguments (WayFlow's ids are random).
        let got: Vec<Json> = run
            .state()
            .messages
            .iter()
            .map(|m| {
                let mut summary = json!({"type": m.message_type, "content": m.content});
                if !m.tool_calls.is_empty() {
                    summary["tool_requests"] = m.tool_calls.iter().map(|c| json!({"name": c.name, "args": c.arguments})).collect();
                }
                summary
            })
            .collect();
        assert_eq!(&got, messages, "{name}: the conversation");
    }
    if let Some(stores) = s["datastores"].as_object() {
        for (id, collections) in stores {
            for (collection, rows) in collections.as_object().unwrap() {
                let got: Vec<Json> = run
                    .state()
                    .datastores
                    .get(id)
                    .and_then(|d| d.get(collection))
                    .map(|t| {
                        t.rows
                            .iter()
                            .map(|r| Json::Object(t.columns.iter().zip(r).map(|(c, v)| (c.name.clone(), v.clone())).collect()))
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(&Json::Array(got), rows, "{name}: collection {collection} of datastore {id}");
            }
        }
    }
    let expected = s["requests"].as_array().unwrap();
    let sent = server.requests();
    assert_eq!(sent.len(), expected.len(), "{name}: the number of LLM calls");
    for (i, (got, want)) in sent.into_iter().zip(expected).enumerate() {
        let (got, want) = (comparable(got), comparable(want.clone()));
        assert_eq!(got, want, "{name}: request {i} differs\n got: {got}\nwant: {want}");
    }
}

#[test]
fn every_recorded_scenario_has_a_test() {
    let source = include_str!("wayflow_flows.rs");
    for s in fixture()["scenarios"].as_array().unwrap() {
        let name = s["scenario"].as_str().unwrap();
        assert!(source.contains(&format!("replay(\"{name}\")")), "scenario {name} is not replayed");
    }
}

#[tokio::test]
async fn choice_takes_the_branch_named_among_other_words() {
    replay("choice_named_branch").await;
}

#[tokio::test]
async fn choice_recognises_a_displayed_name() {
    replay("choice_displayed_name").await;
}

#[tokio::test]
async fn choice_without_a_match_takes_the_default_branch() {
    replay("choice_default").await;
}

#[tokio::test]
async fn retry_succeeds_on_the_third_trial() {
    replay("retry_third_trial_succeeds").await;
}

#[tokio::test]
async fn retry_leaves_through_failure_when_every_trial_fails() {
    replay("retry_all_trials_fail").await;
}

#[tokio::test]
async fn retry_judges_the_string_false_truthy() {
    replay("retry_first_trial_succeeds").await;
}

#[tokio::test]
async fn retry_does_not_retry_an_error() {
    replay("retry_error_propagates").await;
}

#[tokio::test]
async fn datastore_creates_lists_updates_and_deletes() {
    replay("datastore_crud").await;
}

#[tokio::test]
async fn datastore_columns_have_pandas_dtypes() {
    replay("datastore_dtypes").await;
}

#[tokio::test]
async fn datastore_refuses_an_entity_without_a_required_property() {
    replay("datastore_bad_entity").await;
}

#[tokio::test]
async fn datastore_unpacking_nothing_fails() {
    replay("datastore_unpack_none").await;
}

#[tokio::test]
async fn rephrased_output_message() {
    replay("rephrase_output_message").await;
}

#[tokio::test]
async fn rephrased_input_message() {
    replay("rephrase_input_message").await;
}

#[tokio::test]
async fn a_tool_provider_is_called_at_every_read() {
    replay("tool_provider_edges").await;
}

#[tokio::test]
async fn a_tool_provider_feeds_the_input_of_its_name() {
    replay("tool_provider_by_name").await;
}

#[tokio::test]
async fn a_flow_provider_runs_its_flow_in_the_conversation() {
    replay("flow_provider").await;
}

#[tokio::test]
async fn a_provider_named_like_an_input_fed_by_an_edge_is_refused() {
    replay("constant_provider_by_name").await;
}

#[tokio::test]
async fn template_transforms_remove_coalesce_and_split_messages() {
    replay("template_post_transforms").await;
}

#[tokio::test]
async fn template_tool_messages_are_sent_as_tool_calls_and_results() {
    replay("template_tool_messages").await;
}

#[tokio::test]
async fn template_llama_merge_writes_tool_calls_as_text() {
    replay("template_llama_merge").await;
}

#[tokio::test]
async fn template_react_merge_writes_tool_calls_as_thoughts_action_and_observation() {
    replay("template_react_merge").await;
}

#[tokio::test]
async fn template_append_trailing_system_makes_a_second_part_of_the_user_message() {
    replay("template_append_trailing_system").await;
}

#[tokio::test]
async fn template_canonicalization_alternates_user_and_agent_messages() {
    replay("template_canonicalization").await;
}

#[tokio::test]
async fn template_canonicalization_over_tool_results_fails_as_wayflows_does() {
    replay("template_canonicalization_tool_results").await;
}

#[tokio::test]
async fn template_tool_request_and_calls_heads_messages_by_sender() {
    replay("template_tool_request_and_calls").await;
}

#[tokio::test]
async fn template_chat_history_placeholder_takes_the_conversation() {
    replay("template_chat_history_placeholder").await;
}

#[tokio::test]
async fn template_chat_history_variable_lists_the_conversation() {
    replay("template_chat_history_variable").await;
}

#[tokio::test]
async fn tools_listed_in_the_prompt_and_a_json_call_read_from_the_answer() {
    replay("tools_json_parser_call").await;
}

#[tokio::test]
async fn native_tools_are_sent_as_wayflow_describes_them() {
    replay("tools_native").await;
}

#[tokio::test]
async fn json_tool_calls_are_repaired_and_their_arguments_corrected() {
    replay("tools_json_parser_repaired").await;
}

#[tokio::test]
async fn an_answer_without_a_json_call_stays_text() {
    replay("tools_json_parser_text").await;
}

#[tokio::test]
async fn a_json_object_without_parameters_is_no_call() {
    replay("tools_json_parser_bad_call").await;
}

#[tokio::test]
async fn python_calls_are_read_inner_first_with_positional_arguments() {
    replay("tools_python_parser_call").await;
}

#[tokio::test]
async fn python_call_arguments_are_constants_or_their_source() {
    replay("tools_python_parser_values").await;
}

#[tokio::test]
async fn text_that_is_not_python_is_no_call() {
    replay("tools_python_parser_text").await;
}

#[tokio::test]
async fn react_thoughts_become_the_output_and_the_action_the_call() {
    replay("tools_react_parser_call").await;
}

#[tokio::test]
async fn react_without_an_action_header_reads_the_whole_answer() {
    replay("tools_react_parser_no_fence").await;
}

#[tokio::test]
async fn react_without_a_call_keeps_the_text() {
    replay("tools_react_parser_text").await;
}

#[tokio::test]
async fn a_tool_parser_without_tools_keeps_every_argument() {
    replay("tools_parser_no_tools").await;
}

/// Offline, the simulated model calls the first tool a template lists in its prompt, written in
/// the syntax of the template's tool output parser, so the parser reads it: the answer becomes a
/// tool request (the output is its thoughts).
#[tokio::test]
async fn the_simulated_model_writes_calls_the_templates_parser_reads() {
    let all = fixture();
    for (scenario, thoughts) in
        [("tools_json_parser_call", ""), ("tools_python_parser_call", ""), ("tools_react_parser_call", "I call current_time.")]
    {
        let s = all["scenarios"].as_array().unwrap().iter().find(|s| s["scenario"] == scenario).unwrap();
        let document = &all["documents"][s["document"].as_str().unwrap()];
        let flow = weft_flow::Flow::from_json(&document.to_string()).unwrap().flow;
        let mut run = flow.start_with(s["inputs"].as_object().cloned().unwrap(), RunOptions::simulated().with_tools(tools())).unwrap();
        match run.execute().await {
            Ok(Status::Finished { outputs, .. }) => assert_eq!(outputs["output"], json!(thoughts), "{scenario}"),
            other => panic!("{scenario}: {other:?}"),
        }
        let messages = &run.state().messages;
        assert_eq!(messages.len(), 1, "{scenario}: {messages:?}");
        assert_eq!(messages[0].message_type, "TOOL_REQUEST", "{scenario}");
        let calls = &messages[0].tool_calls;
        assert_eq!(calls.len(), 1, "{scenario}");
        assert_eq!(calls[0].name, "current_time", "{scenario}");
        let args = calls[0].arguments.as_object().unwrap();
        assert!(args.keys().all(|k| k == "zone") && args.values().all(Json::is_string), "{scenario}: {args:?}");
    }
}
