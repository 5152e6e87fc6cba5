//! Agents on the command line: the example agent (two tools, declared outputs) scripted and
//! unscripted, and an agent that talks to the user, waiting (exit 3) and resumed with the user's
//! answer in another process, its tool's failure given back to the model as text.

mod common;

use common::{stderr, weft};
use serde_json::{Value as Json, json};
use std::path::Path;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows").join(name).canonicalize().expect("example").display().to_string()
}

#[test]
fn the_example_agent_calls_its_tools_and_submits_typed_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = format!("simulated?script={}", example("replies_weather_agent.json"));
    let (flow, tools) = (example("weather_agent.json"), example("weather_agent.tools.toml"));
    let out = weft(dir.path(), &["run", &flow, "--llm", &llm, "--tools", &tools, "--message", "What's the weather in Paris?"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    // The tools ran (the script's submission quotes them), and "14.5" became a number.
    assert_eq!(outputs, json!({"forecast": "Light rain in Paris, clearing in the evening.", "temperature": 14.5}));
    let err = stderr(&out);
    assert!(err.contains("tool get_weather") && err.contains("tool get_temperature"), "{err}");
    assert!(err.contains("2 LLM calls, 2 tool calls"), "{err}");

    // Unscripted: the simulated model calls each tool once, then submits generated outputs.
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--tools", &tools, "--message", "Weather?"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 LLM calls, 2 tool calls"), "{}", stderr(&out));
    let outputs: Json = serde_json::from_slice(&out.stdout).expect("outputs");
    assert!(outputs["forecast"].is_string() && outputs["temperature"].is_number(), "{outputs}");
}

#[test]
fn an_agent_that_talks_to_the_user_waits_and_resumes_with_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let document = json!({
        "component_type": "Agent", "id": "searcher", "name": "searcher",
        "llm_config": {"component_type": "OpenAiCompatibleConfig", "id": "llm", "name": "llm", "model_id": "m", "url": "http://127.0.0.1:9/v1"},
        "system_prompt": "You search.",
        "tools": [{"component_type": "ServerTool", "id": "lookup", "name": "lookup", "description": "Look something up",
                   "inputs": [{"title": "query", "type": "string"}], "outputs": [{"title": "result", "type": "string"}]}],
        "human_in_the_loop": true, "agentspec_version": "26.1.0"
    });
    std::fs::write(dir.path().join("agent.json"), document.to_string()).expect("write");
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.lookup]\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; echo 'service down' >&2; exit 3\"]\n",
    )
    .expect("write");
    let out = weft(dir.path(), &["run", "agent.json", "--llm", "simulated", "--tools", "tools.toml", "--message", "Look up WayFlow"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("waiting for input: node \"searcher\" asks: Simulated reply to \"Look up WayFlow\""), "{err}");
    assert!(err.contains("continue with: weft resume agent.state.json --answer"), "{err}");

    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "thanks"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: Simulated reply to \"thanks\""), "{}", stderr(&out));
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("agent.state.json")).expect("state")).expect("json");
    let messages = state["state"]["messages"].as_array().expect("the conversation");
    let kinds: Vec<&str> = messages.iter().map(|m| m["message_type"].as_str().unwrap_or_default()).collect();
    assert_eq!(kinds, ["USER", "TOOL_REQUEST", "TOOL_RESULT", "AGENT", "USER", "AGENT"]);
    // The failure went back to the model as the tool's own words (its stderr), JSON-quoted, and
    // the loop went on.
    assert_eq!(messages[2]["content"], "\"service down\"");
}

/// WayFlow's exported agent with a server tool and a client tool: the server tool runs, the
/// client tool's call stops the run (exit 3) until `weft resume --answer` gives its result in
/// another process; a result that does not fit the tool's output is refused and the state kept.
#[test]
fn a_client_tool_round_trip_across_two_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.add_numbers]\ncommand = [\"python3\", \"-c\", \"import json,sys; a=json.load(sys.stdin); print(a['a']+a['b'])\"]\n",
    )
    .expect("write");
    let flow = common::corpus("w_agent_server_client_tools.json");
    let out =
        weft(dir.path(), &["run", &flow, "--llm", "simulated", "--tools", "tools.toml", "--message", "Add 2 and 3", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tool add_numbers"), "{err}");
    assert!(err.contains("waits for the result of client tool \"ask_user_location\" called with {\"reason\":\"reason\"}"), "{err}");

    let refused = weft(dir.path(), &["resume", "s.json", "--answer", "[1, 2]"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("the answer for client tool \"ask_user_location\" does not fit its output \"location\""),
        "{}",
        stderr(&refused)
    );

    let out = weft(dir.path(), &["resume", "s.json", "--answer", "\"Paris\""]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("state")).expect("json");
    let messages = state["state"]["messages"].as_array().expect("the conversation");
    let results: Vec<&str> =
        messages.iter().filter(|m| m["message_type"] == "TOOL_RESULT").map(|m| m["content"].as_str().unwrap_or_default()).collect();
    // The simulated model calls add_numbers with generated arguments (0 and 0).
    assert_eq!(results, ["0", "\"Paris\""], "the server tool's and the client's results, as the model sees them");
}

/// `--batch` with an agent: every line's run gets the `--message` and its own inputs.
#[test]
fn a_batch_of_agent_runs_each_gets_the_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"units\": \"celsius\"}\n{\"units\": \"fahrenheit\"}\n{}\n").expect("write");
    let llm = format!("simulated?script={}", example("replies_weather_agent.json"));
    let (flow, tools) = (example("weather_agent.json"), example("weather_agent.tools.toml"));
    let args = [
        "run",
        &flow,
        "--llm",
        &llm,
        "--tools",
        &tools,
        "--batch",
        "in.jsonl",
        "--message",
        "What's the weather in Paris?",
        "--record",
        "rec.jsonl",
    ];
    let out = weft(dir.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        assert_eq!(line["outputs"]["temperature"], 14.5, "{line}");
    }
    // Every run's first request carries the message after the system prompt.
    let recorded = std::fs::read_to_string(dir.path().join("rec.jsonl")).expect("the recording");
    let firsts: Vec<Json> = recorded
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|r| r["kind"] == "llm" && r["request"]["messages"].as_array().is_some_and(|m| m.len() == 2))
        .collect();
    assert_eq!(firsts.len(), 3, "{recorded}");
    for r in &firsts {
        assert_eq!(r["request"]["messages"][1]["content"], "What's the weather in Paris?", "{r}");
    }
}

/// An agent with a client tool and a server tool that requires confirmation, its model scripted
/// to call [ask_user, get_weather, ask_user] in one answer, then to answer "Thanks.".
fn confirming_agent(dir: &Path) {
    let document = json!({
        "component_type": "Agent", "id": "helper", "name": "helper",
        "llm_config": {"component_type": "OpenAiCompatibleConfig", "id": "llm", "name": "llm", "model_id": "m", "url": "http://127.0.0.1:9/v1"},
        "system_prompt": "You help.",
        "tools": [
            {"component_type": "ClientTool", "id": "ask_user", "name": "ask_user", "description": "Ask the user a question",
             "inputs": [{"title": "question", "type": "string"}], "outputs": [{"title": "answer", "type": "string"}]},
            {"component_type": "ServerTool", "id": "get_weather", "name": "get_weather", "description": "Get the weather",
             "inputs": [{"title": "city", "type": "string"}], "outputs": [{"title": "weather", "type": "string"}],
             "requires_confirmation": true}
        ],
        "human_in_the_loop": true, "agentspec_version": "26.1.0"
    });
    std::fs::write(dir.join("agent.json"), document.to_string()).expect("write");
    let script = json!({"helper": [
        {"tool_calls": [
            {"name": "ask_user", "arguments": {"question": "Name?"}},
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "ask_user", "arguments": {"question": "Age?"}}
        ]},
        "Thanks."
    ]});
    std::fs::write(dir.join("script.json"), script.to_string()).expect("write");
    std::fs::write(
        dir.join("tools.toml"),
        "[tools.get_weather]\ncommand = [\"python3\", \"-c\", \"import json,sys; a=json.load(sys.stdin); print(json.dumps('sunny in ' + a['city']))\"]\n",
    )
    .expect("write");
}

fn conversation(dir: &Path) -> Vec<(String, String)> {
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("agent.state.json")).expect("state")).expect("json");
    state["state"]["messages"]
        .as_array()
        .expect("the conversation")
        .iter()
        .map(|m| (m["message_type"].as_str().unwrap_or_default().to_owned(), m["content"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Two client calls of one answer are asked for together; one `--answer` answers the first
/// (positionally); the tool that requires confirmation, called between them, waits next and
/// is approved with a changed argument, in another process: it runs with it; then the agent
/// asks again for the other client call, answered by call id.
#[test]
fn client_calls_answered_positionally_and_by_id_then_a_confirmation_approved_with_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    confirming_agent(dir.path());
    let out = weft(dir.path(), &["run", "agent.json", "--llm", "simulated?script=script.json", "--tools", "tools.toml", "--message", "Hi"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("node \"helper\" waits for the results of 2 client tool calls (one --answer per call, in this order, or one JSON object keyed by call id)"), "{err}");
    assert!(err.contains("1. call \"sim_helper_0_0\": client tool \"ask_user\" called with {\"question\":\"Name?\"}"), "{err}");
    assert!(err.contains("2. call \"sim_helper_0_2\": client tool \"ask_user\" called with {\"question\":\"Age?\"}"), "{err}");
    assert!(err.contains("--answer '<JSON result>' --answer '<JSON result>'"), "{err}");

    // One result, positionally: the agent goes on with the calls in order, so the call that
    // requires confirmation comes next, before the other client call.
    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "Ann"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("node \"helper\" asks to run tool \"get_weather\" with {\"city\":\"Paris\"}: answer approve, reject"), "{err}");
    assert!(err.contains("--answer approve"), "{err}");
    assert!(!err.contains("tool get_weather:"), "the tool must not run before it is approved: {err}");

    // Approved with a changed argument: it runs with it, then the agent asks again for the
    // client call still open.
    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "approve: {\"city\": \"Bern\"}"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tool get_weather:"), "{err}");
    assert!(err.contains("waits for the result of client tool \"ask_user\" called with {\"question\":\"Age?\"}"), "{err}");

    // An object keyed by a call that no longer waits is not an answer by id: it is the one
    // call's result, refused as not fitting the tool's output; the state is kept.
    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "{\"sim_helper_0_0\": \"Bob\"}"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the answer for client tool \"ask_user\" does not fit its output \"answer\" (string)"),
        "{}",
        stderr(&out)
    );

    // By id.
    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "{\"sim_helper_0_2\": \"42\"}"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks: Thanks."), "{}", stderr(&out));
    let messages = conversation(dir.path());
    let results: Vec<&str> = messages.iter().filter(|(t, _)| t == "TOOL_RESULT").map(|(_, c)| c.as_str()).collect();
    // In the order they were produced, as WayFlow appends them.
    assert_eq!(results, ["\"Ann\"", "\"sunny in Bern\"", "\"42\""]);
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("agent.state.json")).expect("state")).expect("json");
    assert_eq!(
        state["state"]["messages"][1]["tool_calls"][1]["arguments"],
        json!({"city": "Bern"}),
        "the history shows the changed argument"
    );
}

/// All answers in one process: two client results positionally, then a decision that is not
/// one (refused, exit 2, the state kept), then a rejection with a reason, which the model sees
/// in WayFlow's words; the tool never runs.
#[test]
fn a_confirmation_rejected_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    confirming_agent(dir.path());
    let args = ["run", "agent.json", "--llm", "simulated?script=script.json", "--tools", "tools.toml", "--message", "Hi"];
    let out = weft(dir.path(), &[&args[..], &["--answer", "\"Ann\"", "--answer", "\"42\"", "--answer", "maybe"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the answer for node \"helper\" was refused: \"maybe\" is not a decision; answer approve"), "{err}");

    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "reject: not today"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("asks: Thanks."), "{err}");
    assert!(!err.contains("tool get_weather"), "a rejected call does not run: {err}");
    let messages = conversation(dir.path());
    let results: Vec<&str> = messages.iter().filter(|(t, _)| t == "TOOL_RESULT").map(|(_, c)| c.as_str()).collect();
    assert_eq!(results, ["\"Ann\"", "\"42\"", "\"Tool Request for tool ServerTool(name='get_weather') denied due to reason: not today\""]);
}

/// WayFlow's exported ExtendedAgent with a sub-agent: the simulated orchestrator calls the
/// sub-agent (its own conversation, kept in the state since it has not finished), gets its
/// answer as the result, and answers the user.
#[test]
fn an_extended_agent_calls_its_sub_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = common::corpus("w_extended_agent.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--message", "Translate hello", "--state", "s.json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("[translator] AGENT: Simulated reply to \"context\""), "{err}");
    assert!(err.contains("asks: Simulated reply to \"Translate hello\""), "{err}");
    assert!(err.contains("usage: 3 LLM calls"), "{err}");
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("state")).expect("json");
    let results: Vec<&str> = state["state"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["message_type"] == "TOOL_RESULT")
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(results, ["\"Simulated reply to \\\"context\\\"\""]);
    let kept = state["state"]["conversations"].as_object().expect("the sub-agent's conversation");
    assert_eq!(kept.len(), 1);
    let out = weft(dir.path(), &["resume", "s.json", "--answer", "thanks"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// An agent whose messages longer than 20 characters are summarized before its model sees
/// them: the summarizer's call is made first (a call of its own, `helper/shorten` for
/// scripts), the agent is sent the summary, and the summary is kept in the state for the next
/// turn, in another process.
#[test]
fn an_agent_with_a_message_summarizing_transform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = |id: &str| json!({"component_type": "OpenAiCompatibleConfig", "id": id, "name": id, "model_id": "m", "url": "http://127.0.0.1:9/v1"});
    let document = json!({
        "component_type": "Agent", "id": "helper", "name": "helper", "llm_config": llm("agent_llm"), "system_prompt": "Be brief.",
        "tools": [], "human_in_the_loop": true, "agentspec_version": "26.1.2",
        "transforms": [{"component_type": "MessageSummarizationTransform", "id": "shorten", "name": "shorten", "llm": llm("summarizer_llm"),
                        "max_message_size": 20,
                        "datastore": {"component_type": "InMemoryCollectionDatastore", "id": "store", "name": "store",
                                      "datastore_schema": {"summarized_messages_cache": {"type": "object", "properties": {
                                          "cache_key": {"type": "string"}, "cache_content": {"type": "string"},
                                          "created_at": {"type": "number"}, "last_used_at": {"type": "number"}}}}}}]
    });
    std::fs::write(dir.path().join("agent.json"), document.to_string()).expect("write");
    std::fs::write(dir.path().join("script.json"), json!({"helper/shorten": ["the user greets"]}).to_string()).expect("write");
    let out = weft(
        dir.path(),
        &["run", "agent.json", "--llm", "simulated?script=script.json", "--message", "Hello there, this is a rather long greeting"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("asks: Simulated reply to \"Summarized message: the user greets\""), "{err}");
    assert!(err.contains("usage: 2 LLM calls"), "{err}");

    let out = weft(dir.path(), &["resume", "agent.state.json", "--answer", "ok"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The long first message comes from the kept summary; the agent's long answer is
    // summarized (one call), then the agent's call: two, not three.
    assert!(stderr(&out).contains("usage: 2 LLM calls"), "{}", stderr(&out));
    let state: Json = serde_json::from_str(&std::fs::read_to_string(dir.path().join("agent.state.json")).expect("state")).expect("json");
    assert_eq!(state["state"]["summaries"].as_object().map(|m| m.len()), Some(2), "{state}");
    assert_eq!(state["state"]["messages"][0]["content"], "Hello there, this is a rather long greeting", "the conversation keeps it whole");
}
