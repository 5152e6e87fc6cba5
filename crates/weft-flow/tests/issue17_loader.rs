//! Issue 17, loader parity on files the reference accepts: WayFlow's older PluginOutputMessageNode
//! form, versions between releases, and YAML read as PyYAML reads it.

use serde_json::{Value as Json, json};
use std::path::Path;
use weft_flow::{Code, Diagnostic, Format, LoadOptions, Severity, Source, check_source};

fn valid(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("read corpus file")).expect("json")
}

fn diagnostics(source: &Source) -> Vec<Diagnostic> {
    check_source(source, &LoadOptions::default()).1.0
}

fn errors(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().filter(|d| d.severity == Severity::Error).map(|d| format!("{} {} {}", d.code, d.pointer, d.message)).collect()
}

fn json_source(doc: &Json) -> Source {
    Source::new("t.json", doc.to_string(), Format::Json)
}

/// w_branching_loop.json's PluginOutputMessageNode, for editing.
fn output_message_node(doc: &mut Json) -> &mut serde_json::Map<String, Json> {
    doc["$referenced_components"]["b48e2afa-2d7c-4e71-a95a-695c2b8e3663"].as_object_mut().expect("the welcome node")
}

#[test]
fn plugin_output_message_node_reads_message_template_as_wayflow_does() {
    let mut doc = valid("w_branching_loop.json");
    let node = output_message_node(&mut doc);
    node.remove("message");
    node.insert("message_template".into(), json!("Welcome!"));
    let diags = diagnostics(&json_source(&doc));
    assert!(errors(&diags).is_empty(), "{:#?}", errors(&diags));
    assert!(!diags.iter().any(|d| d.code == Code::UnknownKey), "message_template is WayFlow's alias, not an unknown key");
}

#[test]
fn plugin_output_message_node_with_the_message_placeholder_is_not_an_unexpected_input() {
    // An older export: the template is WayFlow's default `{{ message }}` under its old name,
    // and the node declares the input it implies.
    let mut doc = valid("w_branching_loop.json");
    let node = output_message_node(&mut doc);
    node.remove("message");
    node.insert("message_template".into(), json!("{{message}}"));
    node.insert("inputs".into(), json!([{"title": "message", "type": "string"}]));
    let diags = diagnostics(&json_source(&doc));
    assert!(errors(&diags).is_empty(), "{:#?}", errors(&diags));
    // With no message at all, WayFlow's runtime default `{{ message }}` applies.
    let node = output_message_node(&mut doc);
    node.remove("message_template");
    let diags = diagnostics(&json_source(&doc));
    assert!(errors(&diags).is_empty(), "{:#?}", errors(&diags));
}

#[test]
fn development_versions_load_as_the_nearest_lower_release_with_a_warning() {
    for (stamped, read_as) in [("26.2.0", "26.1.2"), ("26.1.1", "26.1.0")] {
        let mut doc = valid("w_branching_loop.json");
        doc["agentspec_version"] = json!(stamped);
        let diags = diagnostics(&json_source(&doc));
        assert!(errors(&diags).is_empty(), "{stamped}: {:#?}", errors(&diags));
        let d = diags.iter().find(|d| d.code == Code::LegacyVersion).expect("a warning");
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.pointer, "/agentspec_version");
        assert!(d.message.contains(stamped) && d.message.contains(read_as), "{}", d.message);
    }
    // A version above the newest Weft knows is still refused.
    let mut doc = valid("w_branching_loop.json");
    doc["agentspec_version"] = json!("26.4.0");
    assert!(diagnostics(&json_source(&doc)).iter().any(|d| d.code == Code::Version && d.severity == Severity::Error));
}

/// The shape of Oracle's conformance flows (`flow_with_mapnode_with_io.yaml`): properties titled
/// `n` and `y`, plain, which YAML 1.1 as PyYAML applies it keeps as strings.
const N_AND_Y_FLOW: &str = r#"component_type: Flow
id: flow
name: flow_with_n
agentspec_version: 26.1.0
inputs:
- title: n
  type: integer
- title: y
  type: string
  default: n
outputs:
- title: n
  type: integer
- title: y
  type: string
start_node:
  $component_ref: start
nodes:
- $component_ref: start
- $component_ref: end
control_flow_connections:
- component_type: ControlFlowEdge
  id: e1
  name: e1
  from_node:
    $component_ref: start
  to_node:
    $component_ref: end
data_flow_connections:
- component_type: DataFlowEdge
  id: d1
  name: d1
  source_node: {$component_ref: start}
  source_output: n
  destination_node: {$component_ref: end}
  destination_input: n
- component_type: DataFlowEdge
  id: d2
  name: d2
  source_node: {$component_ref: start}
  source_output: y
  destination_node: {$component_ref: end}
  destination_input: y
$referenced_components:
  start:
    component_type: StartNode
    id: start
    name: start
    inputs:
    - {title: n, type: integer}
    - {title: y, type: string, default: n}
    outputs:
    - {title: n, type: integer}
    - {title: y, type: string, default: n}
  end:
    component_type: EndNode
    id: end
    name: end
    inputs:
    - {title: n, type: integer}
    - {title: y, type: string}
    outputs:
    - {title: n, type: integer}
    - {title: y, type: string}
"#;

#[test]
fn yaml_properties_titled_n_and_y_stay_strings() {
    let diags = diagnostics(&Source::new("flow_with_n.yaml", N_AND_Y_FLOW, Format::Yaml));
    assert!(errors(&diags).is_empty(), "{:#?}", errors(&diags));
}

/// A component that fails to load is reported where it is, and also at the field of the
/// component that uses it (the run refuses that component, so `weft validate` names it too).
#[test]
fn a_field_referring_to_a_component_that_failed_to_load_is_an_error_there() {
    let mut doc = valid("p_tool_node_server.json");
    let node = "53074c92-cc44-4d51-9bd3-344dfe2b078c";
    let tool = doc["$referenced_components"][node]["tool"].take();
    doc["$referenced_components"]["the_tool"] = tool;
    doc["$referenced_components"]["the_tool"].as_object_mut().unwrap().remove("component_type");
    doc["$referenced_components"][node]["tool"] = json!({"$component_ref": "the_tool"});
    let diags = diagnostics(&json_source(&doc));
    let at_tool = format!("/$referenced_components/{node}/tool");
    let d = diags.iter().find(|d| d.pointer == at_tool).unwrap_or_else(|| panic!("{:#?}", errors(&diags)));
    assert_eq!(d.severity, Severity::Error);
    assert!(d.message.contains("could not be loaded"), "{}", d.message);
    assert!(d.hint.as_deref().unwrap_or_default().contains("/$referenced_components/the_tool"), "{:?}", d.hint);
    // The nodes list and the edges do not repeat it.
    let mut doc = valid("p_tool_node_server.json");
    doc["$referenced_components"][node].as_object_mut().unwrap().insert("component_type".into(), json!("ToolNod"));
    let diags = diagnostics(&json_source(&doc));
    assert!(!diags.iter().any(|d| d.message.contains("could not be loaded")), "{:#?}", errors(&diags));
}
