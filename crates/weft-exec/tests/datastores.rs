//! Datastore nodes over an in-memory datastore: the collections live in the run state, so a
//! stored run finds them again when it resumes; what a node gets wrong names the node, the
//! collection and the property; a stored collection edited into something Weft could not have
//! written is refused on resume.

#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use weft_exec::{Plan, ResumeError, RunErrorKind, RunOptions, RunState, Status};
use weft_flow::Flow;

/// start -> create -> ask (waits for the user) -> list -> end, over one datastore.
fn document(second_entity: Json) -> Json {
    let dict = |title: &str| json!({"type": "object", "additionalProperties": {}, "key_type": {"type": "string"}, "title": title});
    let store = json!({"component_type": "InMemoryCollectionDatastore", "id": "store", "name": "store",
        "datastore_schema": {"notes": {"type": "object", "title": "note", "properties": {
            "id": {"type": "integer"}, "text": {"type": "string"}, "done": {"type": "boolean", "default": false}}}}});
    let plugin = |v: Json| {
        let mut v = v;
        v["component_plugin_name"] = json!("DatastoreNodesPlugin");
        v["component_plugin_version"] = json!("26.3.1");
        v
    };
    let nodes = vec![
        json!({"component_type": "StartNode", "id": "start", "name": "start", "inputs": [dict("entity")], "outputs": [dict("entity")]}),
        plugin(
            json!({"component_type": "PluginDatastoreCreateNode", "id": "create", "name": "create", "datastore": {"$component_ref": "store"},
            "collection_name": "notes", "inputs": [dict("entity")], "outputs": [dict("created_entity")]}),
        ),
        json!({"component_type": "InputMessageNode", "id": "ask", "name": "ask", "message": "Another note?",
            "outputs": [{"title": "answer", "type": "string"}]}),
        plugin(json!({"component_type": "PluginDatastoreCreateNode", "id": "create_second", "name": "create_second",
            "datastore": {"$component_ref": "store"}, "collection_name": "notes", "inputs": [dict("entity")], "outputs": [dict("created_entity")]})),
        json!({"component_type": "PluginConstantValuesNode", "id": "second", "name": "second", "constant_values": {"note": second_entity},
            "outputs": [dict("note")], "component_plugin_name": "NodesPlugin", "component_plugin_version": "26.3.1"}),
        plugin(json!({"component_type": "PluginDatastoreListNode", "id": "list", "name": "list", "datastore": {"$component_ref": "store"},
            "collection_name": "notes", "where": {"done": false}, "limit": null, "unpack_single_entity_from_list": false,
            "inputs": [], "outputs": [{"type": "array", "items": {"type": "object", "additionalProperties": {}}, "title": "entities"}]})),
        json!({"component_type": "EndNode", "id": "end", "name": "end", "inputs": [{"title": "entities", "type": "array", "items": {}}],
            "outputs": [{"title": "entities", "type": "array", "items": {}}]}),
    ];
    let mut table = Map::new();
    let refs: Vec<Json> = nodes.iter().map(|n| json!({"$component_ref": n["id"]})).collect();
    for n in nodes {
        table.insert(n["id"].as_str().unwrap().to_owned(), n);
    }
    table.insert("store".into(), store);
    let chain = ["start", "create", "ask", "second", "create_second", "list", "end"];
    let control: Vec<Json> = chain
        .windows(2)
        .enumerate()
        .map(|(i, w)| json!({"component_type": "ControlFlowEdge", "id": format!("c{i}"), "name": format!("c{i}"), "from_node": {"$component_ref": w[0]}, "to_node": {"$component_ref": w[1]}}))
        .collect();
    let edge = |i: usize, s: &str, o: &str, d: &str, n: &str| {
        json!({"component_type": "DataFlowEdge", "id": format!("d{i}"), "name": format!("d{i}"), "source_node": {"$component_ref": s},
            "source_output": o, "destination_node": {"$component_ref": d}, "destination_input": n})
    };
    json!({"component_type": "Flow", "id": "notes_flow", "name": "notes_flow", "agentspec_version": "26.1.2",
        "start_node": {"$component_ref": "start"}, "nodes": refs, "control_flow_connections": control,
        "data_flow_connections": [edge(0, "start", "entity", "create", "entity"), edge(1, "second", "note", "create_second", "entity"),
            edge(2, "list", "entities", "end", "entities")],
        "$referenced_components": table})
}

fn plan(doc: &Json) -> std::sync::Arc<Plan> {
    let flow = match Flow::from_json(&doc.to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("the test flow is invalid:\n{d}"),
    };
    Plan::new(&flow, RunOptions::simulated()).unwrap_or_else(|e| panic!("{e}"))
}

fn inputs(entity: Json) -> Map<String, Json> {
    json!({"entity": entity}).as_object().unwrap().clone()
}

#[tokio::test]
async fn a_datastore_survives_a_resume_from_a_stored_state() {
    let doc = document(json!({"id": 2, "text": "second"}));
    let plan = plan(&doc);
    let mut run = plan.start(inputs(json!({"id": 1, "text": "first"}))).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::InputRequired { .. }));
    let stored = serde_json::to_string(run.state()).unwrap();
    drop(run);
    let state: RunState = serde_json::from_str(&stored).unwrap();
    let mut resumed = plan.resume(state).unwrap();
    resumed.submit(json!("yes")).unwrap();
    let Status::Finished { outputs, .. } = resumed.execute().await.unwrap() else { panic!() };
    assert_eq!(
        outputs["entities"],
        json!([{"done": false, "id": 1, "text": "first"}, {"done": false, "id": 2, "text": "second"}]),
        "the note created before the interruption is still there, defaults first"
    );
}

#[tokio::test]
async fn an_entity_that_does_not_fit_names_the_node_the_collection_and_the_property() {
    let doc = document(json!({"id": "two", "text": "second"}));
    let plan = plan(&doc);
    let mut run = plan.start(inputs(json!({"id": 1, "text": "first"}))).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::InputRequired { .. }));
    run.submit(json!("yes")).unwrap();
    let err = run.execute().await.unwrap_err();
    assert_eq!(err.kind, RunErrorKind::Datastore);
    assert!(err.message.contains("PluginDatastoreCreateNode \"create_second\""), "{}", err.message);
    assert!(err.message.contains("property \"id\" (IntegerProperty) of collection \"notes\""), "{}", err.message);
    assert!(err.message.contains("DatastoreEntityError"), "{}", err.message);
    // An entity missing a property that has no default.
    let mut run = plan.start(inputs(json!({"text": "no id"}))).unwrap();
    let err = run.execute().await.unwrap_err();
    assert!(err.message.contains("lacks \"id\""), "{}", err.message);
}

#[tokio::test]
async fn a_damaged_stored_collection_is_refused_on_resume() {
    let doc = document(json!({"id": 2, "text": "second"}));
    let plan = plan(&doc);
    let mut run = plan.start(inputs(json!({"id": 1, "text": "first"}))).unwrap();
    assert!(matches!(run.execute().await.unwrap(), Status::InputRequired { .. }));
    let mut state = serde_json::to_value(run.state()).unwrap();
    state["datastores"]["store"]["notes"]["rows"][0].as_array_mut().unwrap().pop();
    let state: RunState = serde_json::from_value(state).unwrap();
    match plan.resume(state) {
        Err(ResumeError::Damaged { pointer, problem }) => {
            assert_eq!(pointer, "/datastores/store/notes");
            assert!(problem.contains("row 0 has 2 values for 3 columns"), "{problem}");
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn a_datastore_backed_by_a_database_stops_at_start_saying_it_needs_the_service() {
    let mut doc = document(json!({"id": 2, "text": "second"}));
    doc["$referenced_components"]["store"] = json!({"component_type": "OracleDatabaseDatastore", "id": "store", "name": "store",
        "datastore_schema": {"notes": {"type": "object", "properties": {"id": {"type": "integer"}}}},
        "connection_config": {"component_type": "TlsOracleDatabaseConnectionConfig", "id": "db", "name": "db",
            "user": {"$component_ref": "db.user"}, "password": {"$component_ref": "db.password"}, "dsn": {"$component_ref": "db.dsn"}}});
    let mut options = weft_flow::LoadOptions::default();
    for field in ["user", "password", "dsn"] {
        options.secrets.insert(format!("db.{field}"), "x".into());
    }
    let source = weft_flow::Source::new("<test>", doc.to_string(), weft_flow::Format::Json);
    let flow = match Flow::from_source(&source, &options) {
        Ok(l) => l.flow,
        Err(d) => panic!("{d}"),
    };
    let err = Plan::new(&flow, RunOptions::simulated()).unwrap_err().to_string();
    assert!(err.contains("OracleDatabaseDatastore (a datastore backed by an Oracle Database: it needs that database service"), "{err}");
}

/// A template field of a datastore node that does not compile: validate reports it at the field
/// (`bad_value`), and a plan of the flow refuses it naming the same field.
fn broken_field(mutate: impl Fn(&mut Json), pointer: &str) {
    let mut doc = document(json!({"id": 2, "text": "second"}));
    mutate(&mut doc);
    let source = weft_flow::Source::new("edited.json", doc.to_string(), weft_flow::Format::Json);
    let (flow, diags) = weft_flow::check_source(&source, &weft_flow::LoadOptions::default());
    let found =
        diags.iter().find(|d| d.severity == weft_flow::Severity::Error && d.code == weft_flow::Code::BadValue && d.pointer == pointer);
    assert!(found.is_some_and(|d| d.message.contains("does not compile")), "no bad_value at {pointer}:\n{diags}");
    let err = Plan::new(&flow.unwrap(), RunOptions::simulated()).unwrap_err();
    assert!(err.problems().iter().any(|p| p.contains(&format!(" at {pointer}"))), "{err}");
}

#[test]
fn a_datastore_template_that_does_not_compile_is_reported_by_validate_and_run_alike() {
    broken_field(
        |d| d["$referenced_components"]["create"]["collection_name"] = json!("{{ coll"),
        "/$referenced_components/create/collection_name",
    );
    broken_field(|d| d["$referenced_components"]["list"]["where"] = json!({"text": "{% if %}"}), "/$referenced_components/list/where/text");
}
