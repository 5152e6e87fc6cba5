//! The `weft run` and `weft resume` contract: outputs on stdout, exit codes (0 finished, 1
//! invalid or failed, 2 usage or IO, 3 waiting), the `--input` typing rule, answers, state
//! files, events files, progress lines and tools files.

mod common;

use common::{corpus, fixture};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `weft` in `dir` (state files land there), with no terminal and no secrets.
fn weft(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("WEFT_SECRET_LLM1_API_KEY")
        .output()
        .expect("run weft")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The outputs of a finished run: exit 0, one JSON object on stdout.
fn outputs(out: &Output) -> Json {
    assert_eq!(code(out), 0, "stderr: {}", stderr(out));
    let text = stdout(out);
    assert!(text.ends_with("}\n"), "one JSON object then a newline: {text:?}");
    let value: Json = serde_json::from_str(&text).expect("stdout is one JSON value");
    assert!(value.is_object(), "{value}");
    value
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn an_llm_flow_runs_with_the_simulated_model() {
    let dir = tempdir();
    let out = weft(dir.path(), &["run", &corpus("p_llm_flow_minimal.json"), "--llm", "simulated", "--input", "question=What is Rust?"]);
    let outputs = outputs(&out);
    assert!(outputs["generated_text"].is_string(), "{outputs}");
    assert_eq!(outputs.as_object().map(|o| o.len()), Some(1), "{outputs}");
    let err = stderr(&out);
    assert!(err.contains("[generate] LLM call:"), "{err}");
    assert!(err.contains("finished in ") && err.contains(": 3 nodes, 1 LLM call"), "{err}");
    // Cheap nodes get no line of their own.
    assert!(!err.contains("[start]") && !err.contains("[end]"), "{err}");
    assert!(!dir.path().join("p_llm_flow_minimal.state.json").exists(), "no state file for a finished run");
}

#[test]
fn a_simulated_script_is_read_from_the_current_folder() {
    let dir = tempdir();
    std::fs::write(dir.path().join("script.json"), r#"{"generate": ["Rust is a language."]}"#).expect("write");
    let flow = corpus("p_llm_flow_minimal.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated?script=script.json", "--input", "question=What is Rust?"]);
    assert_eq!(outputs(&out), json!({"generated_text": "Rust is a language."}));
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated?script=nope.json", "--input", "question=What is Rust?"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("nope.json: cannot read it"), "{}", stderr(&out));
}

#[test]
fn input_values_are_typed_by_the_declared_schema() {
    let dir = tempdir();
    let flow = fixture("typed_inputs.json");
    let out = weft(
        dir.path(),
        &["run", &flow, "--input", "text=42", "--input", "count=42", "--input", "tags=[\"a\",\"b\"]", "--input", "anything={\"k\": true}"],
    );
    assert_eq!(outputs(&out), json!({"text": "42", "count": 42, "tags": ["a", "b"], "anything": {"k": true}}));
    // A string input keeps raw text, even JSON-looking; an untyped one falls back to text.
    let out = weft(
        dir.path(),
        &["run", &flow, "--input", "text=\"quoted\"", "--input", "count=1", "--input", "tags=[]", "--input", "anything=plain text"],
    );
    assert_eq!(outputs(&out), json!({"text": "\"quoted\"", "count": 1, "tags": [], "anything": "plain text"}));
    // `--inputs FILE.json`, with `--input` overriding it.
    let inputs = dir.path().join("inputs.json");
    std::fs::write(&inputs, r#"{"text": "from file", "count": 1, "tags": ["x"]}"#).expect("write");
    let out = weft(dir.path(), &["run", &flow, "--inputs", "inputs.json", "--input", "count=7"]);
    assert_eq!(outputs(&out), json!({"text": "from file", "count": 7, "tags": ["x"], "anything": null}));
    // A value of the wrong type is refused before anything runs.
    let out = weft(dir.path(), &["run", &flow, "--input", "text=a", "--input", "count=many", "--input", "tags=[]"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error: input \"count\" of flow \"typed_inputs\" must be integer"), "{}", stderr(&out));
}

#[test]
fn unknown_and_missing_inputs_exit_1_naming_them() {
    let dir = tempdir();
    let flow = corpus("p_llm_flow_minimal.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("missing input \"question\""), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--input", "question=a", "--input", "questoin=b"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("unknown input \"questoin\"") && stderr(&out).contains("did you mean \"question\"?"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let flow = corpus("p_llm_flow_minimal.json");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--input", "question"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--input \"question\" is not NAME=VALUE"), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &flow, "--llm", "bogus", "--input", "question=a"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unknown --llm value \"bogus\""), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &flow, "--llm", "openai-compatible=localhost:8000/v1,model=m", "--input", "question=a"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("URL \"localhost:8000/v1\" does not start with http:// or https://"), "{}", stderr(&out));
    std::fs::write(dir.path().join("list.json"), "[1, 2]").expect("write");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--inputs", "list.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("holds an array, not a JSON object"), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--inputs", "missing.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot read the inputs file missing.json"), "{}", stderr(&out));
    let out = weft(dir.path(), &["run", "missing.json"]);
    assert_eq!(code(&out), 2);
    std::fs::write(dir.path().join("bad.toml"), "[tools.x]\ncomand = [\"true\"]\n").expect("write");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated", "--input", "question=a", "--tools", "bad.toml"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("bad.toml:2:1"), "{}", stderr(&out));
}

#[test]
fn an_invalid_flow_exits_1_with_its_diagnostics() {
    let dir = tempdir();
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/invalid/missing_end_node.json");
    let out = weft(dir.path(), &["run", flow.to_str().expect("utf-8"), "--llm", "simulated"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error[flow_structure]"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_run_waiting_for_input_stores_its_state_and_exits_3() {
    let dir = tempdir();
    let flow = corpus("p_loop_input_until_confirmed.json");
    let out = weft(dir.path(), &["run", &flow]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(stderr(&out));
    let state = read_json(&dir.path().join("p_loop_input_until_confirmed.state.json"));
    assert_eq!(state["weft_state"], 2);
    assert_eq!(state["flow"], flow.as_str());
    assert!(state["flow_hash"].is_string());
    assert_eq!(
        state["options"],
        json!({"llm": "flow", "tools": null, "max_steps": 10000, "max_reasks": 2, "events": null, "refs": [], "limits": {}})
    );
    assert!(state["state"].is_object());

    // One answer that does not confirm: it asks again, and the same file is rewritten.
    let out = weft(dir.path(), &["resume", "p_loop_input_until_confirmed.state.json", "--answer", "no"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("[ask] USER: no"), "{}", stderr(&out));
    assert!(stderr(&out).contains("continue with: weft resume p_loop_input_until_confirmed.state.json --answer"), "{}", stderr(&out));
    let out = weft(dir.path(), &["resume", "p_loop_input_until_confirmed.state.json", "--answer", "yes"]);
    let resumed = outputs(&out);
    assert_eq!(resumed, json!({"answer": "yes"}));
    assert!(stderr(&out).contains("[thanks] AGENT: Thanks, your answer was yes."), "{}", stderr(&out));

    // The state file now says the run finished: resuming it again is refused, nothing runs.
    let out = weft(dir.path(), &["resume", "p_loop_input_until_confirmed.state.json", "--answer", "yes"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("the run in p_loop_input_until_confirmed.state.json already finished (its outputs were printed when it did), so there is nothing to resume; start a new run with `weft run "),
        "{}",
        stderr(&out)
    );

    // The same answers in one `weft run` give the same outputs.
    let out = weft(dir.path(), &["run", &flow, "--answer", "no", "--answer", "yes"]);
    assert_eq!(outputs(&out), resumed);
    let err = stderr(&out);
    let conversation: Vec<&str> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        conversation,
        [
            "[ask] AGENT: Do you confirm the order? (yes/no)",
            "[ask] USER: no",
            "[ask] AGENT: Do you confirm the order? (yes/no)",
            "[ask] USER: yes",
            "[thanks] AGENT: Thanks, your answer was yes.",
        ],
        "{err}"
    );
}

#[test]
fn state_files_go_where_state_says_and_resume_works_from_anywhere() {
    let dir = tempdir();
    let flow = corpus("p_loop_input_until_confirmed.json");
    let out = weft(dir.path(), &["run", &flow, "--state", "custom.json"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(dir.path().join("custom.json").exists());
    assert!(!dir.path().join("p_loop_input_until_confirmed.state.json").exists());
    let state = dir.path().join("custom.json");
    let elsewhere = tempdir();
    let out = weft(elsewhere.path(), &["resume", state.to_str().expect("utf-8"), "--state", "next.json"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(elsewhere.path().join("next.json").exists());
    let out = weft(elsewhere.path(), &["resume", "next.json", "--answer", "y"]);
    assert_eq!(outputs(&out), json!({"answer": "y"}));
}

#[test]
fn resuming_after_the_flow_was_edited_exits_1() {
    let dir = tempdir();
    let flow = dir.path().join("confirm.json");
    std::fs::copy(corpus("p_loop_input_until_confirmed.json"), &flow).expect("copy");
    let out = weft(dir.path(), &["run", "confirm.json"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(dir.path().join("confirm.state.json").exists());
    let text = std::fs::read_to_string(&flow).expect("read").replace("Do you confirm the order?", "Confirm?");
    std::fs::write(&flow, text).expect("write");
    let out = weft(dir.path(), &["resume", "confirm.state.json", "--answer", "yes"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("the flow file was edited after the run started"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn resume_refuses_what_is_not_a_state_file() {
    let dir = tempdir();
    let out = weft(dir.path(), &["resume", "missing.state.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot read the state file missing.state.json"), "{}", stderr(&out));
    std::fs::write(dir.path().join("other.json"), r#"{"hello": 1}"#).expect("write");
    let out = weft(dir.path(), &["resume", "other.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("other.json is not a weft state file"), "{}", stderr(&out));
    std::fs::write(dir.path().join("text.json"), "not json").expect("write");
    let out = weft(dir.path(), &["resume", "text.json"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("text.json is not a weft state file"), "{}", stderr(&out));
}

fn events(path: &Path) -> Vec<Json> {
    let text = std::fs::read_to_string(path).expect("events file");
    text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
}

fn kinds(events: &[Json]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().expect("an event tag")).collect()
}

#[test]
fn events_are_written_as_json_lines() {
    let dir = tempdir();
    let out = weft(
        dir.path(),
        &["run", &corpus("p_llm_flow_minimal.json"), "--llm", "simulated", "--input", "question=hi", "--events", "run.jsonl"],
    );
    outputs(&out);
    let list = events(&dir.path().join("run.jsonl"));
    let names = kinds(&list);
    assert_eq!(names.first(), Some(&"run_started"), "{names:?}");
    assert_eq!(names.last(), Some(&"run_finished"), "{names:?}");
    for kind in ["node_started", "node_finished", "llm_request", "llm_response"] {
        assert!(names.contains(&kind), "{kind} in {names:?}");
    }
    assert!(list.last().is_some_and(|e| e["outputs"]["generated_text"].is_string()));

    // A resumed run appends to the events file it started with.
    let flow = corpus("p_loop_input_until_confirmed.json");
    let out = weft(dir.path(), &["run", &flow, "--events", "loop.jsonl"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let first = events(&dir.path().join("loop.jsonl"));
    assert_eq!(kinds(&first).last(), Some(&"input_requested"), "{:?}", kinds(&first));
    let state = read_json(&dir.path().join("p_loop_input_until_confirmed.state.json"));
    assert_eq!(state["options"]["events"], dir.path().canonicalize().expect("dir").join("loop.jsonl").to_str().expect("utf-8"));
    let out = weft(dir.path(), &["resume", "p_loop_input_until_confirmed.state.json", "--answer", "yes"]);
    outputs(&out);
    let all = events(&dir.path().join("loop.jsonl"));
    assert_eq!(all[..first.len()], first[..]);
    let started: Vec<&Json> = all.iter().filter(|e| e["event"] == "run_started").collect();
    assert_eq!(started.len(), 2);
    assert_eq!(started[1]["resumed"], true);
    assert_eq!(kinds(&all).last(), Some(&"run_finished"));
}

#[test]
fn unused_answers_are_a_warning() {
    let dir = tempdir();
    let out =
        weft(dir.path(), &["run", &corpus("p_llm_flow_minimal.json"), "--llm", "simulated", "--input", "question=hi", "--answer", "extra"]);
    outputs(&out);
    assert!(stderr(&out).contains("warning: 1 unused --answer value(s) ignored"), "{}", stderr(&out));
}

#[test]
fn client_tool_answers_are_json() {
    let dir = tempdir();
    let flow = corpus("p_tool_node_client.json");
    let out = weft(dir.path(), &["run", &flow, "--input", "question=Delete everything?"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waits for the result of client tool \"ask_confirmation\" called with {\"question\":\"Delete everything?\"}"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("answer with the JSON value of output \"confirmed\""), "{}", stderr(&out));
    let out = weft(dir.path(), &["resume", "p_tool_node_client.state.json", "--answer", "false"]);
    assert_eq!(outputs(&out), json!({"confirmed": false}));
    let out = weft(dir.path(), &["run", &flow, "--input", "question=q", "--answer", "true"]);
    assert_eq!(outputs(&out), json!({"confirmed": true}));
}

#[test]
fn server_tools_run_the_commands_of_the_tools_file() {
    let dir = tempdir();
    let flow = corpus("p_tool_node_server.json");
    let out = weft(dir.path(), &["run", &flow, "--tools", &fixture("tools/tools.toml"), "--input", "city=Paris"]);
    assert_eq!(outputs(&out), json!({"forecast": "sunny in Paris"}));
    let err = stderr(&out);
    assert!(err.contains("[weather_flow_tool] tool get_weather: "), "{err}");
    assert!(err.contains(": 3 nodes, 1 tool call"), "{err}");

    let out = weft(dir.path(), &["run", &flow, "--input", "city=Paris"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("get_weather"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_failing_tool_fails_the_run_with_exit_1() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.get_weather]\ncommand = [\"sh\", \"-c\", \"echo no forecast today >&2; exit 4\"]\n",
    )
    .expect("write");
    let out = weft(dir.path(), &["run", &corpus("p_tool_node_server.json"), "--tools", "tools.toml", "--input", "city=Paris"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("error: ") && stderr(&out).contains("no forecast today"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_tool_that_prints_no_json_fails_naming_the_node_and_the_tool() {
    let dir = tempdir();
    std::fs::write(dir.path().join("tools.toml"), "[tools.get_weather]\ncommand = [\"sh\", \"-c\", \"echo it will rain\"]\n")
        .expect("write");
    let out = weft(dir.path(), &["run", &corpus("p_tool_node_server.json"), "--tools", "tools.toml", "--input", "city=Paris"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ToolNode \"weather_flow_tool\": tool \"get_weather\" failed: "), "{err}");
    assert!(err.contains("it will rain"), "the output is quoted: {err}");
    // The failed run's state is kept for inspection.
    let state = read_json(&dir.path().join("p_tool_node_server.state.json"));
    assert_eq!(state["state"]["outcome"]["status"], "failed");
}

#[test]
fn a_hanging_tool_is_killed_at_its_timeout_and_leaves_no_process() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("tools.toml"),
        "[tools.get_weather]\ncommand = [\"sh\", \"-c\", \"echo $$ > pid; exec sleep 60\"]\ntimeout_s = 0.5\n",
    )
    .expect("write");
    let out = weft(dir.path(), &["run", &corpus("p_tool_node_server.json"), "--tools", "tools.toml", "--input", "city=Paris"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("tool \"get_weather\" failed: timed out after 0.5s"), "{}", stderr(&out));
    let pid = std::fs::read_to_string(dir.path().join("pid")).expect("the tool started").trim().to_owned();
    assert!(!Path::new("/proc").join(&pid).exists(), "the tool's process {pid} is still there");
}

#[test]
fn an_answer_that_never_fits_fails_naming_the_node_with_the_last_reply() {
    let dir = tempdir();
    std::fs::write(dir.path().join("replies.json"), r#"{"evaluate": ["no", "still no", "never JSON"]}"#).expect("write");
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows/evaluator_loop.json");
    let flow = flow.to_string_lossy();
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated?script=replies.json", "--input", "topic=rust"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("LlmNode \"evaluate\": the model's answer does not fit the node's outputs after 3 attempts"), "{err}");
    assert!(err.contains("never JSON"), "{err}");
}

#[test]
fn the_loop_example_exits_through_its_branch_or_stops_at_the_step_budget() {
    let dir = tempdir();
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows/evaluator_loop.json");
    let flow = flow.to_string_lossy();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows/replies_evaluator_twice.json");
    let llm = format!("simulated?script={}", script.display());
    let finished = outputs(&weft(dir.path(), &["run", &flow, "--llm", &llm, "--input", "topic=rust"]));
    assert_eq!(finished["feedback"], "good");
    let always: Vec<Json> = (0..200).map(|_| json!({"needs_improvement": true, "feedback": "again"})).collect();
    std::fs::write(dir.path().join("always.json"), json!({ "evaluate": always }).to_string()).expect("write");
    let out = weft(dir.path(), &["run", &flow, "--llm", "simulated?script=always.json", "--max-steps", "90", "--input", "topic=rust"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("step budget exhausted: 90 steps"), "{err}");
    assert!(err.contains("\"evaluate\" -> \"check\" -> \"improve\""), "{err}");
}
