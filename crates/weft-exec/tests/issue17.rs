//! Issue 17: what the reference runs offline and Weft now runs too. Context providers as data
//! sources.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

mod common;

use common::Answers;
use serde_json::{Map, Value as Json, json};
use weft_exec::{Plan, RunOptions, Status};
use weft_flow::Flow;

/// A flow document: nodes (ids = names), control edges `(from, branch, to)`, data edges
/// `(source, output, destination, input)`, and extra `$referenced_components` entries that are
/// not nodes (context providers).
fn doc(nodes: Vec<Json>, control: &[(&str, Option<&str>, &str)], data: Option<&[(&str, &str, &str, &str)]>, extra: Vec<Json>) -> Json {
    let mut table = Map::new();
    let mut refs = Vec::new();
    for n in nodes {
        let id = n["id"].as_str().unwrap().to_owned();
        refs.push(json!({"$component_ref": id}));
        table.insert(id, n);
    }
    for e in extra {
        table.insert(e["id"].as_str().unwrap().to_owned(), e);
    }
    let control: Vec<Json> = control
        .iter()
        .enumerate()
        .map(|(i, (f, b, t))| json!({"component_type": "ControlFlowEdge", "id": format!("c{i}"), "name": format!("c{i}"), "from_node": {"$component_ref": f}, "from_branch": b, "to_node": {"$component_ref": t}}))
        .collect();
    let mut d = json!({
        "component_type": "Flow", "id": "flow", "name": "test_flow", "agentspec_version": "26.1.2",
        "start_node": {"$component_ref": "start"}, "nodes": refs,
        "control_flow_connections": control,
        "$referenced_components": table,
    });
    if let Some(data) = data {
        let data: Vec<Json> = data
            .iter()
            .enumerate()
            .map(|(i, (s, o, dst, n))| json!({"component_type": "DataFlowEdge", "id": format!("d{i}"), "name": format!("d{i}"), "source_node": {"$component_ref": s}, "source_output": o, "destination_node": {"$component_ref": dst}, "destination_input": n}))
            .collect();
        d["data_flow_connections"] = json!(data);
    }
    d
}

fn flow(doc: &Json) -> Flow {
    match Flow::from_json(&doc.to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("test flow is invalid:\n{d}"),
    }
}

async fn run(doc: &Json, inputs: Json) -> Map<String, Json> {
    let f = flow(doc);
    let plan = Plan::new(&f, RunOptions::simulated()).unwrap_or_else(|e| panic!("{e}"));
    let status = plan.start(inputs.as_object().unwrap().clone()).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    outputs
}

fn start(inputs: Json) -> Json {
    json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": inputs, "outputs": inputs})
}

fn end(outputs: Json) -> Json {
    json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": outputs, "outputs": outputs})
}

fn template(id: &str, text: &str, inputs: Json) -> Json {
    json!({"component_type": "PluginTemplateNode", "id": id, "name": id, "template": text, "inputs": inputs,
           "outputs": [{"title": "output", "type": "string"}]})
}

fn constant_provider(id: &str, title: &str, value: Json, ty: &str) -> Json {
    json!({"component_type": "PluginConstantContextProvider", "id": id, "name": id, "value": value,
           "inputs": [], "outputs": [{"title": title, "type": ty}], "branches": ["next"],
           "component_plugin_name": "ContextProviderPlugin", "component_plugin_version": "26.3.1"})
}

fn string(title: &str) -> Json {
    json!({"title": title, "type": "string"})
}

#[tokio::test]
async fn a_constant_context_provider_feeds_a_data_edge() {
    let d = doc(
        vec![
            start(json!([string("name")])),
            template("greet", "{{ greeting }}, {{ name }}!", json!([string("greeting"), string("name")])),
            end(json!([string("output")])),
        ],
        &[("start", None, "greet"), ("greet", None, "end")],
        Some(&[("hello", "greeting", "greet", "greeting"), ("start", "name", "greet", "name"), ("greet", "output", "end", "output")]),
        vec![constant_provider("hello", "greeting", json!("Bonjour"), "string")],
    );
    let outputs = run(&d, json!({"name": "Ada"})).await;
    assert_eq!(outputs["output"], json!("Bonjour, Ada!"));
}

#[tokio::test]
async fn an_extended_flows_context_providers_feed_inputs_by_name() {
    let mut d = doc(
        vec![
            start(json!([])),
            template("greet", "{{ greeting }} x{{ times }}", json!([string("greeting"), {"title": "times", "type": "integer"}])),
            end(json!([string("output")])),
        ],
        &[("start", None, "greet"), ("greet", None, "end")],
        None,
        vec![constant_provider("hello", "greeting", json!("Hi"), "string"), constant_provider("three", "times", json!(3), "integer")],
    );
    d["component_type"] = json!("ExtendedFlow");
    d["component_plugin_name"] = json!("FlowPlugin");
    d["component_plugin_version"] = json!("26.3.1");
    d["context_providers"] = json!([{"$component_ref": "hello"}, {"$component_ref": "three"}]);
    let outputs = run(&d, json!({})).await;
    assert_eq!(outputs["output"], json!("Hi x3"));
}

#[tokio::test]
async fn a_tool_context_provider_needs_its_tool_bound_and_is_refused_at_start_naming_it() {
    let tool = json!({"component_type": "ServerTool", "id": "clock", "name": "clock", "inputs": [], "outputs": [string("now")]});
    let provider = json!({"component_type": "PluginToolContextProvider", "id": "now", "name": "current_time", "tool": {"$component_ref": "clock"},
        "output_name": "now", "inputs": [], "outputs": [string("now")], "branches": ["next"],
        "component_plugin_name": "ContextProviderPlugin", "component_plugin_version": "26.3.1"});
    let d = doc(
        vec![start(json!([])), template("show", "{{ now }}", json!([string("now")])), end(json!([string("output")]))],
        &[("start", None, "show"), ("show", None, "end")],
        Some(&[("now", "now", "show", "now"), ("show", "output", "end", "output")]),
        vec![tool, provider],
    );
    let f = flow(&d);
    let err = Plan::new(&f, RunOptions::simulated()).unwrap_err().to_string();
    assert!(err.contains("no implementation bound for the ServerTool \"clock\""), "{err}");
}

fn reference() -> Json {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wayflow_nodes.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn regex_flow(pattern: &Json, first: bool) -> Json {
    let node = json!({"component_type": "PluginRegexNode", "id": "rx", "name": "rx", "regex_pattern": pattern,
        "return_first_match_only": first, "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    doc(
        vec![start(json!([string("text")])), node, end(json!([{"title": "output"}]))],
        &[("start", None, "rx"), ("rx", None, "end")],
        Some(&[("start", "text", "rx", "text"), ("rx", "output", "end", "output")]),
        Vec::new(),
    )
}

/// PluginRegexNode against WayFlow's RegexExtractionStep on the same patterns and texts
/// (`fixtures/wayflow_nodes.json`): lookbehind, backreferences, one and two groups, flags,
/// `match: "last"`, empty matches, no match.
#[tokio::test]
async fn regex_node_outputs_match_wayflow() {
    let r = reference();
    let mut checked = 0;
    for case in r["regex"].as_array().unwrap() {
        let first = case["first"].as_bool().unwrap();
        let d = regex_flow(&case["regex_pattern"], first);
        // WayFlow fails on a match of several groups in single-match mode (and gives "" when
        // nothing matches); Weft refuses such a pattern at load, whatever the text.
        if let Err(e) = Flow::from_json(&d.to_string()) {
            let err = e.to_string();
            assert!(first && err.contains("groups") && err.contains("return_first_match_only"), "{case}: {err}");
            continue;
        }
        assert!(case.get("error").is_none(), "WayFlow failed, Weft loaded: {case}");
        let outputs = run(&d, json!({"text": case["text"]})).await;
        assert_eq!(outputs["output"], case["output"], "{case}");
        checked += 1;
    }
    assert!(checked >= 280, "{checked}");
}

#[test]
fn regex_node_errors_name_the_field_and_the_fix() {
    for (pattern, pointer, words) in [
        (json!("(unclosed"), "/regex_pattern", "cannot be used"),
        (json!({"pattern": "a", "match": "middle"}), "/regex_pattern/match", "\"first\" or \"last\""),
        (json!({"pattern": "a", "flags": "i"}), "/regex_pattern/flags", "integer"),
        (json!(12), "/regex_pattern", "string or an object"),
    ] {
        let d = regex_flow(&pattern, true);
        let (_, diags) = weft_flow::check_source(
            &weft_flow::Source::new("rx.json", d.to_string(), weft_flow::Format::Json),
            &weft_flow::LoadOptions::default(),
        );
        let found = diags.0.iter().find(|x| x.pointer.ends_with(pointer) && x.pointer.contains("rx"));
        let d = found.unwrap_or_else(|| panic!("{pattern}: {:#?}", diags.0));
        assert!(d.message.contains(words), "{}", d.message);
        assert!(d.hint.is_some());
    }
}

fn choice_flow(next_branches: Json) -> Json {
    let choice = json!({"component_type": "PluginChoiceNode", "id": "choose", "name": "choose",
        "llm_config": {"$component_ref": "llm"}, "next_branches": next_branches, "prompt_template": "", "num_tokens": 7,
        "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let llm = json!({"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000", "model_id": "m"});
    let outs = json!([string("selected_choice"), string("llm_output")]);
    let mut nodes = vec![start(json!([string("input")])), choice];
    let mut control: Vec<(String, Option<String>, String)> = vec![("start".into(), None, "choose".into())];
    let mut data: Vec<(String, String, String, String)> = vec![("start".into(), "input".into(), "choose".into(), "input".into())];
    let branches: Vec<String> =
        next_branches.as_array().unwrap().iter().map(|e| e[0].as_str().unwrap().to_owned()).chain(["default".to_owned()]).collect();
    for b in &branches {
        let id = format!("end_{b}");
        nodes.push(json!({"component_type": "EndNode", "id": id, "name": id, "inputs": outs, "outputs": outs, "branch_name": b}));
        control.push(("choose".into(), Some(b.clone()), id.clone()));
        for o in ["selected_choice", "llm_output"] {
            data.push(("choose".into(), o.into(), id.clone(), o.into()));
        }
    }
    let control: Vec<(&str, Option<&str>, &str)> = control.iter().map(|(a, b, c)| (a.as_str(), b.as_deref(), c.as_str())).collect();
    let data: Vec<(&str, &str, &str, &str)> = data.iter().map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str())).collect();
    let mut d = doc(nodes, &control, Some(&data), vec![llm]);
    d["outputs"] = outs;
    d
}

async fn choose(d: &Json, answer: &str) -> (String, Map<String, Json>, Vec<weft_llm::ChatRequest>) {
    let model = Answers::new(&[answer]);
    let f = flow(d);
    let plan = Plan::new(&f, RunOptions::simulated().with_model(model.clone())).unwrap_or_else(|e| panic!("{e}"));
    let status = plan.start(json!({"input": "I cannot log in"}).as_object().unwrap().clone()).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    let seen = model.seen.lock().unwrap().clone();
    (end_branch, outputs, seen)
}

/// PluginChoiceNode's matching rule, as FORMAT.md 11.1 records WayFlow's: the leftmost displayed
/// name anywhere in the answer, case-sensitive, no word boundaries; nothing found is `default`
/// with an empty `selected_choice`.
#[tokio::test]
async fn choice_node_picks_the_branch_named_in_the_answer() {
    let d = choice_flow(json!([["OUTPUT1", "the first"], ["OUTPUT2", "the second"], ["is_access_denied", "denied", "DENIED"]]));
    for (answer, branch, selected) in [
        ("OUTPUT2x", "OUTPUT2", "OUTPUT2"),
        ("output2", "default", ""),
        ("I'd say OUTPUT2 or OUTPUT1", "OUTPUT2", "OUTPUT2"),
        ("is_access_denied", "default", ""),
        ("DENIED.", "is_access_denied", "DENIED"),
        ("", "default", ""),
    ] {
        let (end_branch, outputs, seen) = choose(&d, answer).await;
        assert_eq!(end_branch, branch, "{answer:?}");
        assert_eq!(outputs["selected_choice"], json!(selected), "{answer:?}");
        assert_eq!(outputs["llm_output"], json!(answer));
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.messages.len(), 1);
        let prompt = &request.messages[0].content;
        assert!(prompt.contains("- OUTPUT1: the first\n- OUTPUT2: the second\n- DENIED: denied\n```"), "{prompt}");
        assert!(prompt.ends_with("that you need to execute for this request: I cannot log in"), "{prompt}");
        assert_eq!(request.generation.get("max_tokens"), Some(&json!(7)));
    }
}

#[test]
fn choice_node_refuses_two_entries_with_one_displayed_name() {
    let d = choice_flow(json!([["a", "x", "same"], ["b", "y", "same"]]));
    let err = Flow::from_json(&d.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("displayed as \"same\"") && err.contains("next_branches/1"), "{err}");
}

/// A flow whose PluginRetryNode runs a subflow asking the model once per trial; the subflow's
/// output `answer` is the success condition (a string: Python truthiness, so `""` fails).
fn retry_flow(max_trials: i64) -> Json {
    let s = |t: &str| json!({"title": t, "type": "string"});
    let sub = json!({
        "component_type": "Flow", "id": "sub", "name": "attempt_flow",
        "inputs": [s("q")], "outputs": [s("answer"), s("echo")],
        "start_node": {"$component_ref": "sub_start"},
        "nodes": [{"$component_ref": "sub_start"}, {"$component_ref": "attempt"}, {"$component_ref": "sub_end"}],
        "control_flow_connections": [
            {"component_type": "ControlFlowEdge", "id": "sc1", "name": "sc1", "from_node": {"$component_ref": "sub_start"}, "to_node": {"$component_ref": "attempt"}},
            {"component_type": "ControlFlowEdge", "id": "sc2", "name": "sc2", "from_node": {"$component_ref": "attempt"}, "to_node": {"$component_ref": "sub_end"}}
        ],
        "data_flow_connections": [
            {"component_type": "DataFlowEdge", "id": "sd1", "name": "sd1", "source_node": {"$component_ref": "sub_start"}, "source_output": "q", "destination_node": {"$component_ref": "attempt"}, "destination_input": "q"},
            {"component_type": "DataFlowEdge", "id": "sd2", "name": "sd2", "source_node": {"$component_ref": "attempt"}, "source_output": "answer", "destination_node": {"$component_ref": "sub_end"}, "destination_input": "answer"},
            {"component_type": "DataFlowEdge", "id": "sd3", "name": "sd3", "source_node": {"$component_ref": "sub_start"}, "source_output": "q", "destination_node": {"$component_ref": "sub_end"}, "destination_input": "echo"}
        ],
        "$referenced_components": {
            "sub_start": {"component_type": "StartNode", "id": "sub_start", "name": "sub_start", "inputs": [s("q")], "outputs": [s("q")]},
            "attempt": {"component_type": "LlmNode", "id": "attempt", "name": "attempt", "llm_config": {"$component_ref": "llm"}, "prompt_template": "Try: {{ q }}", "outputs": [s("answer")]},
            "sub_end": {"component_type": "EndNode", "id": "sub_end", "name": "sub_end", "inputs": [s("answer"), s("echo")], "outputs": [s("answer"), s("echo")]}
        }
    });
    let retry = json!({"component_type": "PluginRetryNode", "id": "retry", "name": "retry", "flow": sub,
        "success_condition": "answer", "max_num_trials": max_trials, "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let llm = json!({"component_type": "VllmConfig", "id": "llm", "name": "llm", "url": "http://localhost:8000", "model_id": "m"});
    let outs =
        json!([s("echo"), {"title": "retry_step_num_retries", "type": "integer"}, {"title": "retry_step_success", "type": "boolean"}]);
    let end_ok =
        json!({"component_type": "EndNode", "id": "end_ok", "name": "end_ok", "inputs": outs, "outputs": outs, "branch_name": "ok"});
    let end_failed = json!({"component_type": "EndNode", "id": "end_failed", "name": "end_failed", "inputs": outs, "outputs": outs, "branch_name": "gave_up"});
    let mut data = vec![("start", "q", "retry", "q")];
    for end in ["end_ok", "end_failed"] {
        for o in ["echo", "retry_step_num_retries", "retry_step_success"] {
            data.push(("retry", o, end, o));
        }
    }
    let mut d = doc(
        vec![start(json!([s("q")])), retry, end_ok, end_failed],
        &[("start", None, "retry"), ("retry", Some("next"), "end_ok"), ("retry", Some("failure"), "end_failed")],
        Some(&data),
        vec![llm],
    );
    d["outputs"] = outs;
    d
}

async fn retry_run(max_trials: i64, answers: &[&str]) -> (String, Map<String, Json>, usize) {
    let model = Answers::new(answers);
    let f = flow(&retry_flow(max_trials));
    let plan = Plan::new(&f, RunOptions::simulated().with_model(model.clone())).unwrap_or_else(|e| panic!("{e}"));
    let status = plan.start(json!({"q": "question"}).as_object().unwrap().clone()).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, end_branch } = status else { panic!("{status:?}") };
    let calls = model.seen.lock().unwrap().len();
    (end_branch, outputs, calls)
}

#[tokio::test]
async fn retry_node_runs_its_subflow_again_until_it_succeeds() {
    let (branch, outputs, calls) = retry_run(5, &["", "", "done", "unused"]).await;
    assert_eq!((branch.as_str(), calls), ("ok", 3));
    assert_eq!(outputs["retry_step_num_retries"], json!(3));
    assert_eq!(outputs["retry_step_success"], json!(true));
    assert_eq!(outputs["echo"], json!("question"));
    // The first trial succeeding counts 1.
    let (branch, outputs, calls) = retry_run(5, &["yes"]).await;
    assert_eq!((branch.as_str(), calls, outputs["retry_step_num_retries"].clone()), ("ok", 1, json!(1)));
}

#[tokio::test]
async fn retry_node_leaves_through_failure_after_its_last_trial() {
    let (branch, outputs, calls) = retry_run(2, &["", "", "never asked"]).await;
    assert_eq!((branch.as_str(), calls), ("gave_up", 2));
    assert_eq!(outputs["retry_step_num_retries"], json!(2));
    assert_eq!(outputs["retry_step_success"], json!(false));
    // 0 trials behaves like 1, as in WayFlow.
    let (branch, _, calls) = retry_run(0, &["", "never asked"]).await;
    assert_eq!((branch.as_str(), calls), ("gave_up", 1));
}

#[test]
fn retry_node_refuses_a_success_condition_the_subflow_does_not_output() {
    let mut d = retry_flow(3);
    d["$referenced_components"]["retry"]["success_condition"] = json!("sucess");
    let err = Flow::from_json(&d.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("success_condition") && err.contains("`answer`") && err.contains("sucess"), "{err}");
}

fn corpus_flow(name: &str) -> Flow {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(name);
    match Flow::load(&path, &weft_flow::LoadOptions::default()) {
        Ok(l) => l.flow,
        Err(d) => panic!("{name} is invalid:\n{d}"),
    }
}

/// `w_flow_variables.json`: an insert into a list variable, a read of it, and a PluginVariableNode
/// that overwrites one variable and reads two.
#[tokio::test]
async fn flow_variables_are_written_and_read_in_the_run() {
    let f = corpus_flow("w_flow_variables.json");
    let plan = Plan::new(&f, RunOptions::simulated()).unwrap_or_else(|e| panic!("{e}"));
    let status = plan.start(json!({"page": "home"}).as_object().unwrap().clone()).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(outputs["visits"], json!(["home"]), "{outputs:?}");
    assert_eq!(outputs["value"], json!(["home"]), "{outputs:?}");
    assert!(outputs["last_page"].is_string(), "{outputs:?}");
}

fn variables_flow(state: Json, writes: &[(&str, &str)], read: &str) -> Json {
    let s = |t: &str| json!({"title": t, "type": "string"});
    let list = json!({"title": "items", "type": "array", "items": {"type": "string"}, "default": []});
    let mut nodes = vec![start(json!([s("x")]))];
    let mut control: Vec<(String, Option<String>, String)> = Vec::new();
    let mut data: Vec<(String, String, String, String)> = Vec::new();
    let mut prev = "start".to_owned();
    for (i, (op, value_from)) in writes.iter().enumerate() {
        let id = format!("w{i}");
        let input = if *op == "insert" { s("value") } else { json!({"title": "value", "type": "array", "items": {"type": "string"}}) };
        nodes.push(json!({"component_type": "PluginWriteVariableNode", "id": id, "name": id, "variable": list, "operation": op,
            "inputs": [input], "outputs": [], "input_mapping": {}, "output_mapping": {},
            "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}));
        control.push((prev.clone(), None, id.clone()));
        data.push(((*value_from).to_owned(), "x".into(), id.clone(), "value".into()));
        prev = id;
    }
    let mut read_var = list.clone();
    read_var["title"] = json!(read);
    let mut out = list.clone();
    out["title"] = json!("value");
    nodes.push(json!({"component_type": "PluginReadVariableNode", "id": "r", "name": "r", "variable": read_var,
        "inputs": [], "outputs": [out], "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}));
    control.push((prev, None, "r".into()));
    nodes.push(end(json!([out])));
    control.push(("r".into(), None, "end".into()));
    data.push(("r".into(), "value".into(), "end".into(), "value".into()));
    let control: Vec<(&str, Option<&str>, &str)> = control.iter().map(|(a, b, c)| (a.as_str(), b.as_deref(), c.as_str())).collect();
    let data: Vec<(&str, &str, &str, &str)> = data.iter().map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str())).collect();
    let mut d = doc(nodes, &control, Some(&data), Vec::new());
    d["component_type"] = json!("ExtendedFlow");
    d["component_plugin_name"] = json!("FlowPlugin");
    d["component_plugin_version"] = json!("26.3.1");
    d["state"] = state;
    d["outputs"] = json!([out]);
    d
}

#[tokio::test]
async fn flow_variable_inserts_append_in_order() {
    let list = json!({"title": "items", "type": "array", "items": {"type": "string"}, "default": []});
    let d = variables_flow(json!([list]), &[("insert", "start"), ("insert", "start")], "items");
    let outputs = run(&d, json!({"x": "a"})).await;
    assert_eq!(outputs["value"], json!(["a", "a"]));
}

#[test]
fn a_variable_the_flow_does_not_declare_is_refused_at_load() {
    let list = json!({"title": "items", "type": "array", "items": {"type": "string"}, "default": []});
    let d = variables_flow(json!([list]), &[("insert", "start")], "other");
    let err = Flow::from_json(&d.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("\"other\"") && err.contains("state") && err.contains("/variable"), "{err}");
    // Insert into a variable that is not a list.
    let mut d = variables_flow(json!([list]), &[("insert", "start")], "items");
    d["$referenced_components"]["w0"]["variable"] = json!({"title": "items", "type": "string", "default": ""});
    let err = Flow::from_json(&d.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("needs a list") && err.contains("/operation"), "{err}");
}

/// `w_text_processing_nodes.json`: a template writes JSON, a regex reads the age, an extract node
/// reads the name with jq.
#[tokio::test]
async fn text_processing_nodes_run() {
    let f = corpus_flow("w_text_processing_nodes.json");
    let plan = Plan::new(&f, RunOptions::simulated()).unwrap_or_else(|e| panic!("{e}"));
    let status = plan.start(json!({"name": "Ada", "age": "36"}).as_object().unwrap().clone()).unwrap().execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(outputs["person_name"], json!("Ada"), "{outputs:?}");
    assert_eq!(outputs["age_text"], json!("36"), "{outputs:?}");
    assert_eq!(outputs["output"], json!("{\"name\": \"Ada\", \"age\": 36}"), "{outputs:?}");
}

fn extract_flow(queries: Json) -> Json {
    let outs: Vec<Json> = queries.as_object().unwrap().keys().map(|k| json!({"title": k})).collect();
    let node = json!({"component_type": "PluginExtractNode", "id": "ex", "name": "ex", "output_values": queries,
        "llm_config": null, "retry": false, "input_mapping": {}, "output_mapping": {},
        "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
    let mut data = vec![("start", "text", "ex", "text")];
    let titles: Vec<String> = queries.as_object().unwrap().keys().cloned().collect();
    for t in &titles {
        data.push(("ex", t.as_str(), "end", t.as_str()));
    }
    let mut d = doc(
        vec![start(json!([string("text")])), node, end(json!(outs))],
        &[("start", None, "ex"), ("ex", None, "end")],
        Some(&data),
        Vec::new(),
    );
    d["outputs"] = json!(outs);
    d
}

/// ExtractValueFromJsonStep's reading: pieces between code fences, a `json` tag dropped, repaired
/// JSON, the first non-null result per output.
#[tokio::test]
async fn extract_node_reads_json_between_fences() {
    // `.items[1]` is null on the first piece (skipped); `.items | length` would be 0 there, not
    // null, and the first piece would win.
    let d = extract_flow(json!({"city": ".city", "n": ".items[1]"}));
    let text = "Thought: ```json\n{\"city\": null}\n``` then ```JSON: {\"city\": \"Bern\", \"items\": [1, 2,],}```";
    let outputs = run(&d, json!({"text": text})).await;
    assert_eq!(outputs["city"], json!("Bern"));
    assert_eq!(outputs["n"], json!(2));
    // A jq query the sandbox refuses is an error at its member.
    let d = extract_flow(json!({"x": "env"}));
    let err = Flow::from_json(&d.to_string()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("output_values/x"), "{err}");
}

/// `w_constants_and_chat_history.json` and GetChatHistoryStep's selection rules: with messages
/// U0, A1, A2, `last` n=2 gives A1, A2; `last` n=2 offset 1 gives U0, A1; `first` n=2 offset 1
/// gives A1, A2; WayFlow's default template prints `TYPE >> content` lines.
#[tokio::test]
async fn chat_history_node_selects_and_renders_messages() {
    let f = corpus_flow("w_constants_and_chat_history.json");
    let plan = Plan::new(&f, RunOptions::simulated()).unwrap_or_else(|e| panic!("{e}"));
    let inputs: Map<String, Json> = plan.inputs().iter().map(|p| (p.title().to_owned(), json!("x"))).collect();
    let status = plan.start(inputs).unwrap().execute().await.unwrap();
    assert!(matches!(status, Status::Finished { .. }), "{status:?}");

    let flow_with = |n: i64, which: &str, offset: i64| {
        let msg = |id: &str, text: &str, ty: &str| {
            json!({"component_type": "PluginOutputMessageNode", "id": id, "name": id, "message": text, "message_type": ty,
                "expose_message_as_output": false, "input_mapping": {}, "output_mapping": {}, "outputs": [],
                "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"})
        };
        let history = json!({"component_type": "PluginGetChatHistoryNode", "id": "h", "name": "h", "n": n, "which_messages": which,
            "offset": offset, "message_types": ["USER", "AGENT"], "output_template": "", "input_mapping": {}, "output_mapping": {},
            "outputs": [{"title": "chat_history", "type": "string"}],
            "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"});
        let mut d = doc(
            vec![
                start(json!([])),
                msg("u0", "U0", "USER"),
                msg("s", "S", "SYSTEM"),
                msg("a1", "A1", "AGENT"),
                msg("a2", "A2", "AGENT"),
                history,
                end(json!([string("chat_history")])),
            ],
            &[("start", None, "u0"), ("u0", None, "s"), ("s", None, "a1"), ("a1", None, "a2"), ("a2", None, "h"), ("h", None, "end")],
            Some(&[("h", "chat_history", "end", "chat_history")]),
            Vec::new(),
        );
        d["outputs"] = json!([string("chat_history")]);
        d
    };
    for (n, which, offset, expected) in [
        (2, "last", 0, "AGENT >> A1\nAGENT >> A2"),
        (2, "last", 1, "USER >> U0\nAGENT >> A1"),
        (2, "first", 1, "AGENT >> A1\nAGENT >> A2"),
        (0, "last", 0, ""),
        (10, "first", 0, "USER >> U0\nAGENT >> A1\nAGENT >> A2"),
    ] {
        let outputs = run(&flow_with(n, which, offset), json!({})).await;
        assert_eq!(outputs["chat_history"], json!(expected), "n={n} {which} offset={offset}");
    }
}

/// `w_plugin_control_nodes.json` runs to its end on the simulated model (which picks the
/// choice node's first branch, `careful`): the retry node runs its subflow until the tool
/// reports `done` on its third call, and reports the trials it took.
#[tokio::test]
async fn the_plugin_control_nodes_document_runs_to_its_end() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Task {
        #[allow(dead_code, reason = "the document's argument, read only to check its shape")]
        task: String,
    }
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let mut tools = weft_tools::ToolRegistry::new();
    tools.register_fn("try_once", move |_: Task| {
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move { Ok::<_, String>(json!(n >= 3)) }
    });
    let f = corpus_flow("w_plugin_control_nodes.json");
    let plan = Plan::new(&f, RunOptions::simulated().with_tools(tools)).unwrap_or_else(|e| panic!("{e}"));
    let mut run = plan.start(json!({"greeting": "hi"}).as_object().unwrap().clone()).unwrap();
    let Status::InputRequired { .. } = run.execute().await.unwrap() else { panic!("the flow asks for a task first") };
    run.submit(json!("index the docs")).unwrap();
    let status = run.execute().await.unwrap();
    let Status::Finished { outputs, .. } = status else { panic!("{status:?}") };
    assert_eq!(outputs["selected_choice"], json!("careful"), "{outputs:?}");
    assert_eq!(outputs["user_provided_input"], json!("index the docs"), "{outputs:?}");
    assert!(outputs["report_text"].is_string(), "{outputs:?}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "the subflow ran until the tool succeeded");
}
