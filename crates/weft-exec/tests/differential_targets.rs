//! One targeted case per place a run compiles something from the document, each a real corpus
//! document with one field broken: an uncompilable template in every template field, an
//! uncompilable and a refused (`env`, `halt`) jq query in every query field, an unknown reducer,
//! and a map output that collects no subflow output.
//!
//! For each, validate (`check_source`) must report an Error with the expected code (`bad_value`
//! for templates and jq, `component_rule` for reducers and collection) at the field's exact
//! pointer, with a message naming the problem; and `Plan::new` must refuse the flow too, naming
//! the same field (the flow `check_source` builds alongside its diagnostics is compiled).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

#[path = "../../weft-flow/tests/support/mutate.rs"]
mod mutate;

use mutate::{DOCS, Seg, get, get_mut, paths_where};
use serde_json::{Map, Value as Json, json};
use weft_exec::{Plan, RunOptions};
use weft_flow::{Code, Flow, Format, LoadOptions, Severity, Source, check_source};
use weft_tools::{Tool, ToolError, ToolRegistry};

/// A server tool that answers an empty object (the plan only needs every name bound).
struct Generic;

#[async_trait::async_trait]
impl Tool for Generic {
    async fn call(&self, _args: Map<String, Json>) -> Result<Json, ToolError> {
        Ok(json!({}))
    }
}

fn options(flow: &Flow) -> RunOptions {
    let mut tools = ToolRegistry::new();
    for comp in &flow.spec().components {
        if comp.is("ServerTool") {
            tools.register(comp.name.clone(), Generic);
        }
    }
    RunOptions::simulated().with_tools(tools)
}

fn pointer_of(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// A corpus document and the path of its first component of type `ty`.
fn doc_with(name: &str, ty: &str) -> (Json, Vec<Seg>) {
    let doc = DOCS.iter().find(|d| d.name == name).unwrap_or_else(|| panic!("{name} is in the corpus"));
    let path = paths_where(&doc.value, |_, v| v.get("component_type").and_then(Json::as_str) == Some(ty))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} has a {ty}"));
    (doc.value.clone(), path)
}

/// Sets `field` (a path below the component) of the first `ty` of `name` to `value`; returns the
/// document and the field's pointer.
fn edited(name: &str, ty: &str, field: &[&str], value: &str) -> (Json, String) {
    let (mut doc, mut path) = doc_with(name, ty);
    for f in field {
        path.push(match f.parse::<usize>() {
            Ok(i) => Seg::Index(i),
            Err(_) => Seg::Key((*f).to_owned()),
        });
    }
    let target = get_mut(&mut doc, &path).unwrap_or_else(|| panic!("{name}: {ty} has {field:?}"));
    assert!(target.is_string(), "{name}: {ty}/{field:?} is {target}");
    *target = Json::String(value.to_owned());
    (doc, pointer_of(&path))
}

/// Validate reports an Error of `code` at `pointer` (or one of `also`), its message containing
/// `words`; the plan refuses the flow with a line naming `refused_at`.
fn expect(doc: &Json, code: Code, pointer: &str, also: &[String], words: &[&str], refused_at: &str) {
    // None of the documents edited here needs a registry.
    let source = Source::new("edited.json", serde_json::to_string_pretty(doc).unwrap(), Format::Json);
    let (flow, diags) = check_source(&source, &LoadOptions::default());
    let mut failures = Vec::new();
    let found =
        diags.iter().find(|d| d.severity == Severity::Error && d.code == code && (d.pointer == pointer || also.contains(&d.pointer)));
    match found {
        None => failures.push(format!("validate: no error [{code}] at {pointer}; it said:\n{diags}")),
        Some(d) => {
            let lower = d.message.to_lowercase();
            if !words.iter().any(|w| lower.contains(w)) {
                failures.push(format!("validate: the message does not name the problem (any of {words:?}): {}", d.message));
            }
        }
    }
    match flow {
        None => failures.push(format!("check_source built no flow to compile:\n{diags}")),
        Some(flow) => match Plan::new(&flow, options(&flow)) {
            Ok(_) => failures.push("run: Plan::new accepted the flow".into()),
            Err(e) => {
                if !e.problems().iter().any(|p| p.contains(&format!(" at {refused_at}"))) {
                    failures.push(format!("run: no refusal names {refused_at}:\n{e}"));
                }
            }
        },
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The component pointer of a field pointer (`…/<id>/prompt_template` to `…/<id>`), `up` levels.
fn parent(pointer: &str, up: usize) -> String {
    let mut p = pointer.to_owned();
    for _ in 0..up {
        p.truncate(p.rfind('/').unwrap_or(0));
    }
    p
}

const BAD_TEMPLATE: &str = "Hello {% if name %}{{ name | }}";
const TEMPLATE_WORDS: &[&str] = &["template"];

fn template_case(name: &str, ty: &str, field: &str) {
    let (doc, pointer) = edited(name, ty, &[field], BAD_TEMPLATE);
    expect(&doc, Code::BadValue, &pointer, &[], TEMPLATE_WORDS, &pointer);
}

#[test]
fn template_llm_node_prompt_template() {
    template_case("p_llm_flow_minimal.json", "LlmNode", "prompt_template");
}

#[test]
fn template_extended_llm_node_prompt_template() {
    template_case("w_extended_tool_and_llm_nodes.json", "ExtendedLlmNode", "prompt_template");
}

#[test]
fn template_prompt_template_message_contents() {
    let (doc, pointer) =
        edited("w_prompt_template_array.json", "PluginPromptTemplate", &["messages", "0", "contents", "0", "content"], BAD_TEMPLATE);
    // The engine names the message's `contents`; the part's `content` is as exact.
    let contents = parent(&pointer, 2);
    expect(&doc, Code::BadValue, &contents, &[pointer], TEMPLATE_WORDS, &contents);
}

#[test]
fn template_input_message_node_message() {
    template_case("p_input_output_messages.json", "InputMessageNode", "message");
}

#[test]
fn template_plugin_input_message_node_message_template() {
    template_case("w_branching_loop.json", "PluginInputMessageNode", "message_template");
}

#[test]
fn template_output_message_node_message() {
    template_case("p_input_output_messages.json", "OutputMessageNode", "message");
}

#[test]
fn template_plugin_output_message_node_message() {
    template_case("w_branching_loop.json", "PluginOutputMessageNode", "message");
}

#[test]
fn template_plugin_template_node_template() {
    template_case("w_text_processing_nodes.json", "PluginTemplateNode", "template");
}

const JQ_WORDS: &[&str] = &["jq", "query"];

/// An uncompilable query, and two the sandbox refuses.
const QUERIES: &[&str] = &[".[", "env", "halt"];

fn jq_case(name: &str, ty: &str, field: &[&str], query: &str, refused_at: impl Fn(&str) -> String) {
    let (doc, pointer) = edited(name, ty, field, query);
    expect(&doc, Code::BadValue, &pointer, &[], JQ_WORDS, &refused_at(&pointer));
}

#[test]
fn jq_json_output_parser_properties() {
    for q in QUERIES {
        // The engine names the parser, not the member.
        jq_case("w_prompt_template_json_mode.json", "PluginJsonOutputParser", &["properties", "label"], q, |p| parent(p, 2));
    }
}

#[test]
fn jq_extended_map_node_unpack_input() {
    for q in QUERIES {
        jq_case("w_map_variants.json", "ExtendedMapNode", &["unpack_input", "x"], q, str::to_owned);
    }
}

#[test]
fn jq_extended_parallel_map_node_unpack_input() {
    for q in QUERIES {
        jq_case("w_map_variants.json", "ExtendedParallelMapNode", &["unpack_input", "x"], q, str::to_owned);
    }
}

#[test]
fn unknown_reducer() {
    let (doc, pointer) = edited("p_map_node_append.json", "MapNode", &["reducers", "x_squared"], "concat");
    expect(&doc, Code::ComponentRule, &pointer, &[], &["reducer"], &pointer);
}

#[test]
fn map_output_collecting_no_subflow_output() {
    // The map's declared output `collected_x_squared` renamed: it collects `nope`, which the
    // subflow does not have.
    let (mut doc, path) = doc_with("p_map_node_append.json", "MapNode");
    let mut title = path.clone();
    title.extend([Seg::Key("outputs".into()), Seg::Index(0), Seg::Key("title".into())]);
    assert_eq!(get(&doc, &title), Some(&json!("collected_x_squared")));
    *get_mut(&mut doc, &title).unwrap() = json!("collected_nope");
    let map = pointer_of(&path);
    let output = format!("{map}/outputs/0");
    expect(&doc, Code::ComponentRule, &output, &[format!("{output}/title")], &["subflow"], &map);
}

#[test]
fn extended_map_output_mapping_collecting_no_subflow_output() {
    // `output_mapping` renames the subflow output `x_squared`; renaming `x_cubed` instead makes
    // the node collect an output the subflow does not have.
    let doc_name = "w_map_variants.json";
    let doc = DOCS.iter().find(|d| d.name == doc_name).unwrap();
    let path = paths_where(&doc.value, |_, v| {
        matches!(v.get("component_type").and_then(Json::as_str), Some("ExtendedMapNode" | "ExtendedParallelMapNode"))
            && v.get("output_mapping").and_then(Json::as_object).is_some_and(|m| m.contains_key("x_squared"))
    })
    .into_iter()
    .next()
    .expect("a map with an output_mapping");
    let mut value = doc.value.clone();
    let mut mapping = path.clone();
    mapping.push(Seg::Key("output_mapping".into()));
    *get_mut(&mut value, &mapping).unwrap() = json!({"x_cubed": "object_squares"});
    let map = pointer_of(&path);
    let field = format!("{map}/output_mapping/x_cubed");
    expect(&value, Code::ComponentRule, &field, &[format!("{map}/outputs/0")], &["subflow"], &map);
}

/// The edits above are what they claim: the unedited documents compile.
#[test]
fn unedited_documents_compile() {
    for name in [
        "p_llm_flow_minimal.json",
        "w_extended_tool_and_llm_nodes.json",
        "w_prompt_template_array.json",
        "p_input_output_messages.json",
        "w_branching_loop.json",
        "w_prompt_template_json_mode.json",
        "w_map_variants.json",
        "p_map_node_append.json",
    ] {
        let doc = DOCS.iter().find(|d| d.name == name).unwrap();
        let flow = Flow::from_source(&Source::new(name, doc.value.to_string(), Format::Json), &doc.options()).unwrap().flow;
        if let Err(e) = Plan::new(&flow, options(&flow)) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn template_api_node_request_fields() {
    template_case("p_api_node.json", "ApiNode", "url");
    template_case("p_api_node.json", "ApiNode", "http_method");
    for field in [&["data", "status"][..], &["query_params", "notify"], &["headers", "Content-Type"]] {
        let (doc, pointer) = edited("p_api_node.json", "ApiNode", field, BAD_TEMPLATE);
        expect(&doc, Code::BadValue, &pointer, &[], TEMPLATE_WORDS, &pointer);
    }
}

#[test]
fn template_remote_tool_request_fields() {
    template_case("p_tool_node_remote.json", "RemoteTool", "url");
    let (doc, pointer) = edited("p_tool_node_remote.json", "RemoteTool", &["query_params", "units"], BAD_TEMPLATE);
    expect(&doc, Code::BadValue, &pointer, &[], TEMPLATE_WORDS, &pointer);
}

#[test]
fn url_allow_list_entries_that_cannot_work() {
    for entry in ["https://*.example.com", "orders.example.com/api/"] {
        let (doc, pointer) = edited("p_api_node.json", "ApiNode", &["url_allow_list", "0"], entry);
        expect(&doc, Code::BadValue, &pointer, &[], &["url_allow_list"], &pointer);
    }
}
