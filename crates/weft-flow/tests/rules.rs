//! Rules beyond the corpus files, each checked the way the corpus is built: one targeted
//! corruption of a valid document, and the diagnostic code (and pointer) it must get.

use serde_json::{Value as Json, json};
use std::path::Path;
use weft_flow::{Code, Diagnostic, Flow, LoadOptions, Severity, Source, check_source};

fn valid(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("read corpus file")).expect("json")
}

fn diagnostics(doc: &Json) -> Vec<Diagnostic> {
    check_source(&Source::new("t.json", doc.to_string(), weft_flow::Format::Json), &LoadOptions::default()).1.0
}

fn expect(doc: &Json, code: Code, pointer: &str) -> Diagnostic {
    let diags = diagnostics(doc);
    match diags.iter().find(|d| d.code == code && d.pointer == pointer) {
        Some(d) => d.clone(),
        None => panic!(
            "expected {code} at {pointer:?}, got:\n{}",
            diags.iter().map(|d| format!("  {} {:?} {}", d.code, d.pointer, d.message)).collect::<Vec<_>>().join("\n")
        ),
    }
}

/// The pointer of the `$referenced_components` entry whose `name` is `name`.
fn entry(doc: &Json, name: &str) -> String {
    let table = doc["$referenced_components"].as_object().expect("table");
    let key = table.iter().find(|(_, v)| v["name"] == name).map(|(k, _)| k.clone()).unwrap_or_else(|| panic!("no entry named {name}"));
    format!("/$referenced_components/{key}")
}

fn at<'a>(doc: &'a mut Json, pointer: &str) -> &'a mut Json {
    doc.pointer_mut(pointer).unwrap_or_else(|| panic!("no value at {pointer}"))
}

#[test]
fn duplicate_outputs_across_parallel_branches() {
    let mut doc = valid("p_parallel_flow_node.json");
    // Make the second subflow's tool output the same name as the first's.
    let text = doc.to_string();
    let node = entry(&doc, "gather_context");
    let first = doc.pointer(&format!("{node}/outputs/0/title")).and_then(Json::as_str).expect("title").to_owned();
    let second = doc.pointer(&format!("{node}/outputs/1/title")).and_then(Json::as_str).expect("title").to_owned();
    doc = serde_json::from_str(&text.replace(&format!("\"{second}\""), &format!("\"{first}\""))).expect("json");
    let d = expect(&doc, Code::Parallel, &node);
    assert!(d.message.contains(&first), "{}", d.message);
}

#[test]
fn yielding_nodes_inside_parallel_branches() {
    let mut doc = valid("p_parallel_flow_node.json");
    let node = entry(&doc, "gather_context");
    // Swap the first branch's ServerTool for a ClientTool: its ToolNode would wait for the client.
    let subflow = format!("{node}/subflows/0");
    let tool_node = doc.pointer(&subflow).expect("subflow")["$referenced_components"]
        .as_object()
        .expect("table")
        .iter()
        .find(|(_, v)| v["component_type"] == "ToolNode")
        .map(|(k, _)| k.clone())
        .expect("a ToolNode");
    *at(&mut doc, &format!("{subflow}/$referenced_components/{tool_node}/tool/component_type")) = json!("ClientTool");
    let nodes = doc.pointer(&format!("{subflow}/nodes")).and_then(Json::as_array).expect("nodes").clone();
    let index = nodes.iter().position(|n| n["$component_ref"] == json!(tool_node)).expect("node entry");
    let d = expect(&doc, Code::Parallel, &format!("{subflow}/nodes/{index}"));
    assert!(d.message.contains("client tool"), "{}", d.message);
}

#[test]
fn reducers_must_be_known_methods_on_outputs_of_the_subflow() {
    let mut doc = valid("p_map_node_append.json");
    let map = entry(
        &doc,
        doc["$referenced_components"].as_object().expect("t").values().find(|v| v["component_type"] == "MapNode").expect("map")["name"]
            .as_str()
            .expect("name"),
    );
    let output =
        doc.pointer(&format!("{map}/outputs/0/title")).and_then(Json::as_str).expect("title").trim_start_matches("collected_").to_owned();
    *at(&mut doc, &format!("{map}/reducers")) = json!({ output.clone(): "concat" });
    let d = expect(&doc, Code::ComponentRule, &format!("{map}/reducers/{output}"));
    assert!(d.hint.as_deref().unwrap_or_default().contains("append"), "{d:?}");
}

#[test]
fn a_map_needs_an_iterated_input() {
    let mut doc = valid("p_map_node_append.json");
    let map_name = doc["$referenced_components"].as_object().expect("t").values().find(|v| v["component_type"] == "MapNode").expect("map")
        ["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let map = entry(&doc, &map_name);
    // Feed the iterated input from a string instead of a list: every item is broadcast.
    let start = entry(
        &doc,
        doc["$referenced_components"].as_object().expect("t").values().find(|v| v["component_type"] == "StartNode").expect("start")["name"]
            .as_str()
            .expect("name"),
    );
    for key in ["inputs", "outputs"] {
        if let Some(list) = doc.pointer_mut(&format!("{start}/{key}")).and_then(Json::as_array_mut) {
            for p in list {
                p["type"] = json!("string");
                p.as_object_mut().expect("schema").remove("items");
            }
        }
    }
    if let Some(list) = doc.pointer_mut("/inputs").and_then(Json::as_array_mut) {
        for p in list {
            p["type"] = json!("string");
            p.as_object_mut().expect("schema").remove("items");
        }
    }
    expect(&doc, Code::ComponentRule, &map);
}

#[test]
fn a_version_below_a_components_minimum() {
    let mut doc = valid("p_parallel_flow_node.json");
    doc["agentspec_version"] = json!("25.4.1");
    let d = expect(&doc, Code::Version, "/agentspec_version");
    assert!(d.message.contains("25.4.2") && d.message.contains("ParallelFlowNode"), "{}", d.message);
}

#[test]
fn legacy_and_missing_versions_are_warnings() {
    let mut doc = valid("p_llm_flow_minimal.json");
    doc["agentspec_version"] = json!("25.4.0");
    assert_eq!(expect(&doc, Code::LegacyVersion, "/agentspec_version").severity, Severity::Warning);
    let obj = doc.as_object_mut().expect("object");
    obj.remove("agentspec_version");
    obj.insert("air_version".into(), json!("25.4.1"));
    assert_eq!(expect(&doc, Code::LegacyVersion, "/air_version").severity, Severity::Warning);
    doc.as_object_mut().expect("object").remove("air_version");
    assert_eq!(expect(&doc, Code::NoVersion, "").severity, Severity::Warning);
    assert!(Flow::from_json(&doc.to_string()).is_ok(), "warnings do not reject");
}

#[test]
fn unknown_keys_and_unused_references_are_warnings_with_suggestions() {
    let mut doc = valid("p_llm_flow_minimal.json");
    let llm = entry(&doc, "generate");
    let node = at(&mut doc, &llm).as_object_mut().expect("obj");
    let template = node.remove("prompt_template").expect("prompt_template");
    node.insert("prompt_templat".into(), template);
    let diags = diagnostics(&doc);
    assert!(diags.iter().any(|d| d.code == Code::MissingField), "the real field is now missing");
    let d = diags.iter().find(|d| d.code == Code::UnknownKey).expect("unknown_key");
    assert_eq!(d.pointer, format!("{llm}/prompt_templat"));
    assert!(d.hint.as_deref().unwrap_or_default().contains("`prompt_template`"), "{d:?}");

    let mut doc = valid("p_llm_flow_minimal.json");
    doc["$referenced_components"]["spare"] = json!({"component_type": "VllmConfig", "name": "spare", "model_id": "m", "url": "u"});
    assert_eq!(expect(&doc, Code::UnusedRef, "/$referenced_components/spare").severity, Severity::Warning);
}

#[test]
fn generic_plugin_types_load_with_a_not_runnable_warning_and_export_verbatim() {
    let doc = json!({
        "component_type": "PluginVllmEmbeddingConfig", "id": "embed", "name": "embedder",
        "url": "http://127.0.0.1:8000", "model_id": "e5",
        "some_setting": [1, 2, {"x": null}],
        "component_plugin_name": "EmbeddingModelPlugin", "component_plugin_version": "26.3.1",
        "agentspec_version": "26.3.1"
    });
    let loaded = Flow::from_json(&doc.to_string()).expect("loads");
    assert!(loaded.warnings.iter().any(|d| d.code == Code::NotRunnable), "{:?}", loaded.warnings);
    let out: Json = serde_json::from_str(&weft_flow::export::export(&loaded.flow, &Default::default()).expect("export")).expect("json");
    assert_eq!(out["some_setting"], doc["some_setting"]);
    assert_eq!(out["url"], doc["url"]);
}

#[test]
fn misspelt_branches_get_a_suggestion() {
    let mut doc = valid("p_branching_agent_language.json");
    let edges = doc["control_flow_connections"].as_array().expect("edges").clone();
    let (i, branch) = edges
        .iter()
        .enumerate()
        .find_map(|(i, e)| e["from_branch"].as_str().filter(|b| *b != "default").map(|b| (i, b.to_owned())))
        .expect("a named branch");
    let typo: String = branch.chars().rev().collect::<String>().chars().rev().take(branch.len() - 1).collect();
    *at(&mut doc, &format!("/control_flow_connections/{i}/from_branch")) = json!(typo);
    let d = expect(&doc, Code::Branches, &format!("/control_flow_connections/{i}/from_branch"));
    assert!(d.hint.as_deref().unwrap_or_default().contains(&format!("did you mean \"{branch}\"")), "{d:?}");
}

#[test]
fn two_edges_on_one_branch_and_unreachable_nodes() {
    let mut doc = valid("p_llm_flow_minimal.json");
    let edges = doc["control_flow_connections"].as_array_mut().expect("edges");
    let mut extra = edges[1].clone();
    extra["id"] = json!("dup-edge");
    edges.push(extra);
    expect(&doc, Code::RuntimeStructure, "/control_flow_connections/2");
}

#[test]
fn schema_titles_and_defaults_of_properties() {
    let mut doc = valid("p_llm_flow_minimal.json");
    let start = entry(&doc, "start");
    at(&mut doc, &format!("{start}/inputs/0"))["type"] = json!("strin");
    expect(&doc, Code::Schema, &format!("{start}/inputs/0"));

    let mut doc = valid("p_llm_flow_minimal.json");
    let end = entry(&doc, "end");
    at(&mut doc, &format!("{end}/outputs/0"))["default"] = json!(null);
    at(&mut doc, &format!("{end}/outputs/0"))["type"] = json!("array");
    at(&mut doc, &format!("{end}/inputs/0"))["default"] = json!(null);
    at(&mut doc, &format!("{end}/inputs/0"))["type"] = json!("array");
    expect(&doc, Code::Default, &format!("{end}/outputs/0/default"));
}

#[test]
fn all_diagnostics_are_reported_at_once() {
    let mut doc = valid("p_llm_flow_minimal.json");
    doc["agentspec_version"] = json!("99.0.0");
    doc["data_flow_connections"][0]["destination_input"] = json!("questoin");
    let llm = entry(&doc, "generate");
    at(&mut doc, &format!("{llm}/llm_config"))["component_type"] = json!("VLLMConfig");
    let diags = diagnostics(&doc);
    for code in [Code::Version, Code::DataEdge, Code::UnknownType] {
        assert!(diags.iter().any(|d| d.code == code), "missing {code} in {diags:?}");
    }
    let d = diags.iter().find(|d| d.code == Code::DataEdge).expect("data_edge");
    assert!(d.hint.as_deref().unwrap_or_default().contains("did you mean \"question\""), "{d:?}");
    assert!(d.line.is_some() && d.column.is_some());
}

#[test]
fn raise_exceptions_false_needs_a_single_tool_output() {
    let mut doc = valid("w_extended_tool_and_llm_nodes.json");
    let node = entry(&doc, "fetch");
    let second = json!({"type": "integer", "title": "status"});
    at(&mut doc, &format!("{node}/outputs")).as_array_mut().expect("outputs").push(second.clone());
    at(&mut doc, &format!("{node}/tool/outputs")).as_array_mut().expect("outputs").push(second);
    let d = expect(&doc, Code::ComponentRule, &format!("{node}/raise_exceptions"));
    assert!(d.message.contains("this tool has 2 outputs (page, status)"), "{}", d.message);
    assert_eq!(d.hint.as_deref(), Some("set `raise_exceptions: true`, or give the tool a single output"));
}

#[test]
fn http_requests_that_cannot_work() {
    // A templated destination without url_allow_list (WayFlow refuses it when it loads).
    let mut doc = valid("p_api_node.json");
    let node = entry(&doc, "update_order");
    *at(&mut doc, &format!("{node}/url")) = json!("https://{{host}}/api/orders/{{order_id}}");
    *at(&mut doc, &format!("{node}/url_allow_list")) = Json::Null;
    let inputs = at(&mut doc, &format!("{node}/inputs")).as_array_mut().expect("inputs");
    inputs.push(json!({"title": "host", "type": "string"}));
    let d = expect(&doc, Code::ComponentRule, &format!("{node}/url"));
    assert!(d.message.contains("Templated URL destinations require `url_allow_list`") && d.message.contains("`host`"), "{}", d.message);
    // With the allow list, the destination may be templated.
    let mut allowed = doc.clone();
    *at(&mut allowed, &format!("{node}/url_allow_list")) = json!(["https://orders.example.com/api/"]);
    assert!(!diagnostics(&allowed).iter().any(|d| d.pointer == format!("{node}/url")), "{:?}", diagnostics(&allowed));

    // A header value that is not text.
    let mut doc = valid("p_api_node.json");
    *at(&mut doc, &format!("{node}/headers")) = json!({"X-Count": 3});
    let d = expect(&doc, Code::BadValue, &format!("{node}/headers/X-Count"));
    assert!(d.message.contains("not a string"), "{}", d.message);

    // A template reading what is not an input, and an allow-list entry with a wildcard.
    let mut doc = valid("p_api_node.json");
    *at(&mut doc, &format!("{node}/data/source")) = json!("{{ agent_name }}");
    let d = expect(&doc, Code::BadValue, &format!("{node}/data/source"));
    assert!(d.message.contains("`agent_name`") && d.message.contains("not an input"), "{}", d.message);
    let mut doc = valid("p_api_node.json");
    *at(&mut doc, &format!("{node}/url_allow_list/0")) = json!("https://*.example.com");
    let d = expect(&doc, Code::BadValue, &format!("{node}/url_allow_list/0"));
    assert!(d.message.contains("wildcards are not supported"), "{}", d.message);
}

#[test]
fn sensitive_headers_in_clear_that_are_broken_are_reported_without_their_value() {
    let mut doc = valid("p_api_node.json");
    let node = entry(&doc, "update_order");
    *at(&mut doc, &format!("{node}/sensitive_headers")) = json!({"Authorization": "Bearer s3cr3t-{% if %}"});
    let diags = diagnostics(&doc);
    let d = diags.iter().find(|d| d.pointer.starts_with(&format!("{node}/sensitive_headers"))).unwrap_or_else(|| panic!("{diags:?}"));
    assert_eq!(d.code, Code::BadValue);
    assert!(d.message.contains("does not compile") && !d.message.contains("s3cr3t"), "{}", d.message);
}
