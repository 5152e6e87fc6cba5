//! Helpers shared by the engine's integration tests.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on any unexpected error")]

use serde_json::{Map, Value as Json, json};
use std::path::Path;
use weft_flow::{Flow, LoadOptions};
use weft_llm::simulated::generate;
use weft_spec::Source;
use weft_tools::{Tool, ToolError, ToolRegistry};

/// Loads a document, with its registry (`X.refs.json`) when it has one; panics naming the file
/// when it does not load.
pub fn load(path: &Path) -> Flow {
    let mut options = LoadOptions::default();
    let refs = path.with_extension("refs.json");
    if refs.exists() {
        options.registries.push(Source::from_bytes(refs.display().to_string(), std::fs::read(&refs).unwrap()).unwrap());
    }
    match Flow::load(path, &options) {
        Ok(l) => l.flow,
        Err(e) => panic!("{} does not load: {e}", path.display()),
    }
}

/// An HTTP client for ApiNodes and RemoteTools that sends nothing beyond 127.0.0.1: a test of
/// corpus documents never reaches the internet (their requests fail, refused before a byte is
/// sent).
pub fn offline_http() -> std::sync::Arc<dyn weft_llm::http::HttpSend> {
    let options = weft_llm::http::HttpOptions {
        egress: weft_guard::EgressPolicy::parse(&["127.0.0.1"]).unwrap(),
        ..weft_llm::http::HttpOptions::default()
    };
    std::sync::Arc::new(weft_llm::http::HttpClient::new(options).unwrap())
}

/// A server tool that answers values generated from its output schemas.
pub struct Generated {
    outputs: Vec<Json>,
}

#[async_trait::async_trait]
impl Tool for Generated {
    async fn call(&self, _args: Map<String, Json>) -> Result<Json, ToolError> {
        Ok(generated_outputs(&self.outputs))
    }
}

/// Values for these output schemas, as the simulated model generates them: the value itself
/// for one output, an object by title for several.
pub fn generated_outputs(outputs: &[Json]) -> Json {
    match outputs {
        [one] => generate(one, 1),
        many => Json::Object(many.iter().map(|o| (o["title"].as_str().unwrap_or("output").to_owned(), generate(o, 1))).collect()),
    }
}

/// Every ServerTool of the flow bound to a [`Generated`] tool.
pub fn tools_for(flow: &Flow) -> ToolRegistry {
    let mut registry = ToolRegistry::new();
    for (c, comp) in flow.spec().components.iter().enumerate() {
        if comp.is("ServerTool") {
            let outputs = flow.io(c).outputs.iter().map(|p| p.schema.clone()).collect();
            registry.register(comp.name.clone(), Generated { outputs });
        }
    }
    registry
}

/// A flow component: nodes (ids = names), control edges `(from, to)` (branch `next`), data
/// edges `(source, output, destination, input)`. The first node is the start.
pub fn flow_json(name: &str, nodes: Vec<Json>, control: &[(&str, &str)], data: &[(&str, &str, &str, &str)]) -> Json {
    let mut table = Map::new();
    let mut refs = Vec::new();
    for n in &nodes {
        let id = n["id"].as_str().unwrap().to_owned();
        refs.push(json!({"$component_ref": id}));
        table.insert(id, n.clone());
    }
    let control: Vec<Json> = control
        .iter()
        .enumerate()
        .map(|(i, (f, t))| json!({"component_type": "ControlFlowEdge", "id": format!("{name}_c{i}"), "name": format!("c{i}"), "from_node": {"$component_ref": f}, "to_node": {"$component_ref": t}}))
        .collect();
    let data: Vec<Json> = data
        .iter()
        .enumerate()
        .map(|(i, (s, o, d, n))| json!({"component_type": "DataFlowEdge", "id": format!("{name}_d{i}"), "name": format!("d{i}"), "source_node": {"$component_ref": s}, "source_output": o, "destination_node": {"$component_ref": d}, "destination_input": n}))
        .collect();
    json!({
        "component_type": "Flow", "id": name, "name": name,
        "start_node": refs[0], "nodes": refs,
        "control_flow_connections": control, "data_flow_connections": data,
        "$referenced_components": table,
    })
}

/// A model answering scripted texts in order and keeping the requests it got.
pub struct Answers {
    /// What it answers, first first.
    pub answers: std::sync::Mutex<Vec<String>>,
    /// The requests it got.
    pub seen: std::sync::Mutex<Vec<weft_llm::ChatRequest>>,
}

impl Answers {
    /// A model answering `answers` in order.
    pub fn new(answers: &[&str]) -> std::sync::Arc<Answers> {
        std::sync::Arc::new(Answers {
            answers: std::sync::Mutex::new(answers.iter().map(|a| (*a).to_owned()).collect()),
            seen: std::sync::Mutex::default(),
        })
    }
}

#[async_trait::async_trait]
impl weft_llm::ChatModel for Answers {
    fn name(&self) -> &str {
        "answers"
    }
    async fn chat(&self, request: &weft_llm::ChatRequest) -> Result<weft_llm::ChatResponse, weft_llm::LlmError> {
        self.seen.lock().unwrap().push(request.clone());
        let text = self.answers.lock().unwrap().remove(0);
        Ok(weft_llm::ChatResponse { text, ..weft_llm::ChatResponse::default() })
    }
}
