//! The builder writes documents the loader accepts, and builds exactly the flow they load to.

#![allow(clippy::unwrap_used)]

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use weft_flow::builder::{FlowBuilder, Input, LlmConfig, NodeId, Output, Property, ServerTool};
use weft_flow::export::export_value;
use weft_flow::{Code, Flow, typed_outputs};

/// The evaluator's verdict.
#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Evaluation {
    /// Does the draft need improvement?
    needs_improvement: bool,
    /// Feedback for improvement
    feedback: String,
}

fn llm() -> LlmConfig {
    LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "llama3")
}

/// The evaluator-optimizer loop.
fn evaluator_loop() -> FlowBuilder {
    let llm = llm();
    let mut b = FlowBuilder::new("evaluator_loop");
    let start = b.start(&[Input::string("topic")]);
    let draft = b.llm("draft", &llm, "Write a short draft about {{ topic }}");
    let eval = b.llm_structured::<Evaluation>("evaluate", &llm, "Evaluate: {{ draft }}");
    let check = b.branching("check", &[("true", "improve"), ("false", "done")], "needs_improvement");
    let improve = b.llm("improve", &llm, "Improve this draft: {{ draft }}\nFeedback: {{ feedback }}");
    let end = b.end("end", &[Output::string("draft"), Output::string("feedback")]);
    b.edge(start, draft);
    b.edge(draft, eval);
    b.edge(eval, check);
    b.edge_on(check, "improve", improve);
    b.edge_on(check, "done", end);
    b.edge_on(check, "default", end);
    b.edge(improve, eval);
    b.data(start, "topic", draft, "topic");
    for src in [draft, improve] {
        b.data(src, "generated_text", eval, "draft");
        b.data(src, "generated_text", improve, "draft");
        b.data(src, "generated_text", end, "draft");
    }
    b.data(eval, "needs_improvement", check, "needs_improvement");
    b.data(eval, "feedback", improve, "feedback");
    b.data(eval, "feedback", end, "feedback");
    b
}

fn outputs_of(flow: &Flow, node: &str) -> Vec<Json> {
    let spec = flow.spec();
    let c = spec.components.iter().position(|c| c.name == node).unwrap();
    flow.io(c).outputs.iter().map(|p| p.schema.clone()).collect()
}

#[test]
fn built_flow_is_the_loaded_document() {
    let b = evaluator_loop();
    let built = b.build().unwrap();
    let loaded = Flow::from_json(&b.to_document_string()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(export_value(&built, None).unwrap(), export_value(&loaded.flow, None).unwrap());
    // Structured generation raises the version.
    assert_eq!(b.to_json()["agentspec_version"], "25.4.2");
    assert_eq!(built.spec().root().name, "evaluator_loop");
}

#[test]
fn plain_flow_stays_at_the_base_version() {
    let mut b = FlowBuilder::new("plain");
    let start = b.start(&[Input::string("q")]);
    let answer = b.llm("answer", &llm(), "Answer: {{q}}");
    let end = b.end("end", &[Output::string("generated_text")]);
    b.edge(start, answer);
    b.edge(answer, end);
    b.data(start, "q", answer, "q");
    b.data(answer, "generated_text", end, "generated_text");
    b.build().unwrap();
    let doc = b.to_json();
    assert_eq!(doc["agentspec_version"], "25.4.1");
    assert_eq!(doc["inputs"], json!([{"title": "q", "type": "string"}]));
    assert_eq!(doc["outputs"], json!([{"title": "generated_text", "type": "string"}]));
}

#[test]
fn typed_struct_gives_one_output_per_field() {
    let flow = evaluator_loop().build().unwrap();
    assert_eq!(
        outputs_of(&flow, "evaluate"),
        vec![
            json!({"title": "needs_improvement", "description": "Does the draft need improvement?", "type": "boolean"}),
            json!({"title": "feedback", "description": "Feedback for improvement", "type": "string"}),
        ]
    );
}

/// A nested struct.
#[derive(JsonSchema)]
#[allow(dead_code, reason = "only the schema is used")]
struct Score {
    value: u8,
    reasons: Vec<String>,
}

/// A recursive type.
#[derive(JsonSchema)]
#[allow(dead_code, reason = "only the schema is used")]
struct Tree {
    label: String,
    children: Vec<Tree>,
}

#[derive(JsonSchema)]
#[allow(dead_code, reason = "only the schema is used")]
struct Review {
    score: Score,
    tree: Tree,
    note: Option<String>,
}

#[test]
fn nested_types_are_inlined_and_recursive_ones_stay_valid() {
    let mut b = FlowBuilder::new("review");
    let start = b.start(&[Input::string("text")]);
    let review = b.llm_structured::<Review>("review", &llm(), "Review {{ text }}");
    let end = b.end("end", &[Output::string("note")]);
    b.edge(start, review);
    b.edge(review, end);
    b.data(start, "text", review, "text");
    b.data(review, "note", end, "note");
    let flow = b.build().unwrap();
    let outs = outputs_of(&flow, "review");
    assert_eq!(outs.len(), 3);
    assert_eq!(outs[0]["title"], "score");
    assert_eq!(outs[0]["type"], "object");
    assert_eq!(outs[0]["properties"]["reasons"]["items"], json!({"type": "string"}));
    assert!(!outs[0].to_string().contains("$ref"));
    // The recursive type refers to its own definitions, carried along.
    assert!(outs[1]["$defs"].is_object());
    assert_eq!(outs[2]["title"], "note");
}

#[test]
fn non_struct_types_are_reported() {
    let mut b = FlowBuilder::new("bad");
    let start = b.start(&[]);
    let n = b.llm_structured::<Vec<String>>("n", &llm(), "hi");
    let end = b.end("end", &[]);
    b.edge(start, n);
    b.edge(n, end);
    let err = b.build().unwrap_err();
    assert_eq!(err.0[0].code, Code::BadValue);
    assert!(err.0[0].message.contains("not a struct"), "{err}");
}

#[test]
fn wrong_data_edge_gives_the_loaders_diagnostic() {
    let mut b2 = FlowBuilder::new("x");
    let start = b2.start(&[Input::string("topic")]);
    let draft = b2.llm("draft", &llm(), "About {{ topic }}");
    let end = b2.end("end", &[Output::string("generated_text")]);
    b2.edge(start, draft);
    b2.edge(draft, end);
    b2.data(start, "topic", draft, "topic");
    b2.data(draft, "text", end, "generated_text");
    let err = b2.build().unwrap_err();
    assert!(err.has_errors());
    let d = err.0.iter().find(|d| d.code == Code::DataEdge).unwrap_or_else(|| panic!("{err}"));
    assert!(d.message.contains("text"), "{}", d.message);
    // The same document, loaded, gives the same diagnostic.
    let direct = Flow::from_json(&b2.to_document_string()).unwrap_err();
    assert_eq!(direct, err);
}

#[test]
fn duplicate_names_are_reported() {
    let mut b = evaluator_loop();
    let ids: Vec<NodeId> = (0..2).map(|_| b.output_message("unused", "x")).collect();
    assert_ne!(ids[0], ids[1]);
    let dup = b.build().unwrap_err();
    assert!(dup.0.iter().any(|d| d.code == Code::BadValue && d.message.contains("two nodes named `unused`")), "{dup}");
}

#[test]
fn ids_are_stable() {
    let a = evaluator_loop().to_json();
    let b = evaluator_loop().to_json();
    assert_eq!(a, b);
    assert_eq!(a["id"], "evaluator_loop");
    assert_eq!(a["start_node"], json!({"$component_ref": "evaluator_loop.start"}));
    let table = a["$referenced_components"].as_object().unwrap();
    assert!(table.contains_key("evaluator_loop.evaluate"));
    assert_eq!(table["llm"]["component_type"], "OpenAiCompatibleConfig");
    assert_eq!(a["control_flow_connections"][3]["id"], "evaluator_loop.control.3");
    assert_eq!(a["control_flow_connections"][3]["name"], "check_to_improve_improve");
    assert_eq!(a["data_flow_connections"][0]["name"], "start_topic_to_draft_topic");
}

#[test]
fn typed_outputs_reads_a_struct_back() {
    let mut outputs = Map::new();
    outputs.insert("needs_improvement".into(), json!(true));
    outputs.insert("feedback".into(), json!("add an example"));
    outputs.insert("draft".into(), json!("ignored"));
    let e: Evaluation = typed_outputs(&outputs).unwrap();
    assert_eq!(e, Evaluation { needs_improvement: true, feedback: "add an example".into() });
    outputs.remove("feedback");
    assert!(typed_outputs::<Evaluation>(&outputs).is_err());
}

#[test]
fn every_node_kind_builds() {
    let weather = ServerTool::new("get_weather", vec![Property::string("city")], vec![Property::string("forecast")]);
    let mut inner = FlowBuilder::new("inner");
    let s = inner.start(&[Input::string("city")]);
    let t = inner.tool("lookup", &weather);
    let small = inner.end_with_branch("small", "SMALL", &[Output::string("forecast")]);
    inner.edge(s, t);
    inner.edge(t, small);
    inner.data(s, "city", t, "city");
    inner.data(t, "forecast", small, "forecast");
    let loaded_inner = inner.build().unwrap();

    let mut b = FlowBuilder::new("all");
    b.description("every kind of node");
    let start = b.start(&[Input::string("city").description("where"), Input::integer("n").with_default(json!(3))]);
    let consts = b.constants("consts", json!({"greeting": "hello", "ratio": 0.5, "max": 5, "on": true}));
    let tmpl = b.template("render", "{{ greeting }}, {{ city }}!");
    let show = b.output_message("show", "Rendered: {{ output }}");
    let ask = b.input_message("ask", "Which city, {{ greeting }}?");
    let sub = b.subflow("sub", &inner);
    let sub2 = b.subflow("sub2", &loaded_inner);
    let end = b.end("end", &[Output::string("forecast"), Output::boolean("on")]);
    b.describe(sub, "runs the inner flow");
    b.edge(start, consts);
    b.edge(consts, tmpl);
    b.edge(tmpl, show);
    b.edge(show, ask);
    b.edge(ask, sub);
    b.edge_on(sub, "SMALL", sub2);
    b.edge_on(sub2, "SMALL", end);
    b.data(consts, "greeting", tmpl, "greeting");
    b.data(start, "city", tmpl, "city");
    b.data(tmpl, "output", show, "output");
    b.data(consts, "greeting", ask, "greeting");
    b.data(ask, "user_input", sub, "city");
    b.data(ask, "user_input", sub2, "city");
    b.data(sub2, "forecast", end, "forecast");
    b.data(consts, "on", end, "on");
    let flow = b.build().unwrap_or_else(|d| panic!("{d}\n{}", b.to_document_string()));
    let loaded = Flow::from_json(&b.to_document_string()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(export_value(&flow, None).unwrap(), export_value(&loaded.flow, None).unwrap());
    let doc = b.to_json();
    // The tool is shared by both subflows, defined once at the root.
    assert_eq!(doc["$referenced_components"]["get_weather"]["component_type"], "ServerTool");
    assert_eq!(outputs_of(&flow, "consts").len(), 4);
}

#[test]
fn conflicting_configs_are_reported() {
    let mut b = FlowBuilder::new("two");
    let start = b.start(&[]);
    let one = b.llm("one", &LlmConfig::vllm("llm", "http://a:8000", "m"), "hi");
    let two = b.llm("two", &LlmConfig::ollama("llm", "http://b:11434", "m"), "hi");
    let end = b.end("end", &[]);
    b.edge(start, one);
    b.edge(one, two);
    b.edge(two, end);
    let err = b.build().unwrap_err();
    assert_eq!(err.0[0].code, Code::RefDuplicate, "{err}");
}

#[test]
fn foreign_handles_are_reported() {
    let mut other = FlowBuilder::new("other");
    let _ = other.start(&[]);
    let far = other.output_message("a", "a");
    let mut b = FlowBuilder::new("one");
    let start = b.start(&[]);
    let near = b.output_message("a", "a");
    let end = b.end("end", &[]);
    b.edge(start, near);
    b.edge(near, end);
    b.edge(start, far); // same index as `near`, another builder
    let err = b.build().unwrap_err();
    assert!(err.0[0].message.contains("belongs to another builder"), "{err}");
    // A clone keeps the handles.
    let mut copy = b.clone();
    copy.describe(near, "still mine");
    assert_eq!(copy.build().unwrap_err().0.len(), 1);
}

#[test]
fn loaded_subflows_share_the_builders_config() {
    // At 25.4.2 the exporter writes `api_type` and `api_key: null` on the config: still the same one.
    let mut inner = FlowBuilder::new("inner");
    let s = inner.start(&[Input::string("draft")]);
    let eval = inner.llm_structured::<Evaluation>("evaluate", &llm(), "Evaluate: {{ draft }}");
    let e = inner.end("end", &[Output::boolean("needs_improvement")]);
    inner.edge(s, eval);
    inner.edge(eval, e);
    inner.data(s, "draft", eval, "draft");
    inner.data(eval, "needs_improvement", e, "needs_improvement");
    let inner = inner.build().unwrap();

    let mut b = FlowBuilder::new("outer");
    let start = b.start(&[Input::string("topic")]);
    let draft = b.llm("draft", &llm(), "Draft about {{ topic }}");
    let sub = b.subflow("judge", &inner);
    let end = b.end("end", &[Output::boolean("needs_improvement")]);
    b.edge(start, draft);
    b.edge(draft, sub);
    b.edge(sub, end);
    b.data(start, "topic", draft, "topic");
    b.data(draft, "generated_text", sub, "draft");
    b.data(sub, "needs_improvement", end, "needs_improvement");
    let flow = b.build().unwrap_or_else(|d| panic!("{d}\n{}", b.to_document_string()));
    assert_eq!(b.to_json()["agentspec_version"], "25.4.2");
    let configs = flow.spec().components.iter().filter(|c| c.ty.name == "OpenAiCompatibleConfig").count();
    assert_eq!(configs, 1);
}

/// Control edges `(from, branch, to)` and data edges `(source.output, destination.input)`, by
/// node name, sorted.
fn wiring(flow: &Flow) -> (Vec<String>, Vec<String>) {
    let doc = export_value(flow, None).unwrap();
    let names: std::collections::HashMap<String, String> = doc["$referenced_components"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["name"].as_str().unwrap_or("").to_owned()))
        .collect();
    let name = |r: &Json| names[r["$component_ref"].as_str().unwrap()].clone();
    let mut control: Vec<String> = doc["control_flow_connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} -{}-> {}", name(&e["from_node"]), e["from_branch"].as_str().unwrap_or("next"), name(&e["to_node"])))
        .collect();
    let mut data: Vec<String> = doc["data_flow_connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (s, o, d, i) = (name(&e["source_node"]), &e["source_output"], name(&e["destination_node"]), &e["destination_input"]);
            format!("{s}.{} -> {d}.{}", o.as_str().unwrap(), i.as_str().unwrap())
        })
        .collect();
    control.sort();
    data.sort();
    (control, data)
}

#[test]
fn hand_written_example_loads_cleanly_and_matches_the_builder() {
    let text = include_str!("../../../examples/flows/evaluator_loop.json");
    let loaded = Flow::from_json(text).unwrap_or_else(|d| panic!("{d}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(wiring(&loaded.flow), wiring(&evaluator_loop().build().unwrap()));
    assert_eq!(outputs_of(&loaded.flow, "evaluate"), outputs_of(&evaluator_loop().build().unwrap(), "evaluate"));
}
