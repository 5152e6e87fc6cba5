//! Flows written in Rust: a [`FlowBuilder`] writes an Agent Spec document and loads it with
//! [`Flow::from_json`], so a built flow is exactly what loading that document gives, and every
//! rule of the checker applies to it.
//!
//! ```
//! use weft_flow::builder::{FlowBuilder, Input, LlmConfig, Output};
//!
//! let llm = LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "llama3");
//! let mut b = FlowBuilder::new("summarize");
//! let start = b.start(&[Input::string("text")]);
//! let summary = b.llm("summary", &llm, "Summarize: {{ text }}");
//! let end = b.end("end", &[Output::string("generated_text")]);
//! b.edge(start, summary);
//! b.edge(summary, end);
//! b.data(start, "text", summary, "text");
//! b.data(summary, "generated_text", end, "generated_text");
//! let flow = b.build().expect("a valid flow");
//! assert_eq!(flow.spec().root().name, "summarize");
//! // The same document, to save and `weft run`:
//! let text = b.to_document_string();
//! assert!(weft_flow::Flow::from_json(&text).is_ok());
//! ```
//!
//! Ids are derived from names (the flow's name, then `<flow>.<node>`, `<flow>.control.<n>`,
//! `<flow>.data.<n>`; a subflow built by a builder is `<node id>.<subflow name>`; an LLM config or
//! a tool has its name as id), so the same builder code always writes the same document. Node
//! names must therefore be unique within a flow, and the subflows of one parallel node need
//! distinct names.
//!
//! Nodes that run other flows ([`FlowBuilder::subflow`], [`FlowBuilder::parallel_flows`],
//! [`FlowBuilder::map`], [`FlowBuilder::parallel_map`]) leave their inputs and outputs to the
//! loader, which infers them from the subflows as for any document (FORMAT.md section 8).
//!
//! Agents, Swarms and ManagerWorkers are built the same way ([`AgentBuilder`], [`SwarmBuilder`],
//! [`ManagerWorkersBuilder`]; [`FlowBuilder::agent`] puts one in a flow as an `AgentNode`), with
//! tools declared from the Rust types of their native functions ([`ServerTool::typed`]).
//!
//! Mistakes the document cannot express (a duplicate node name, a node handle from another
//! builder, a typed output whose type is not a struct) are reported by [`FlowBuilder::build`]
//! as diagnostics, like the loader's own, which point into [`FlowBuilder::to_json`]'s document.

mod agent;

pub use agent::{AgentBuilder, Agentic, Handoff, ManagerWorkersBuilder, SpecializedAgentBuilder, SwarmBuilder};

use crate::Flow;
use crate::template::{jinja_inputs, placeholders};
use indexmap::IndexMap;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};
use weft_spec::text::{TypeWords, type_name};
use weft_spec::{Code, Diagnostic, Diagnostics, Version};

/// Plugin name and version written on WayFlow plugin nodes (FORMAT.md section 11).
const PLUGIN: (&str, &str) = ("NodesPlugin", "26.3.1");

/// A property (an input or an output): a JSON Schema with a `title` (FORMAT.md section 5).
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    title: String,
    schema: Json,
}

/// An input of a start node or a node; see [`Property`].
pub type Input = Property;

/// An output of an end node or a node; see [`Property`].
pub type Output = Property;

impl Property {
    /// A property with this title and JSON Schema (an object; its own `title`, if any, is
    /// replaced). Anything but an object is written as given, and the loader rejects it.
    pub fn new(title: impl Into<String>, schema: Json) -> Property {
        Property { title: title.into(), schema }
    }

    /// A `string` property.
    pub fn string(title: impl Into<String>) -> Property {
        Property::new(title, json!({"type": "string"}))
    }

    /// An `integer` property.
    pub fn integer(title: impl Into<String>) -> Property {
        Property::new(title, json!({"type": "integer"}))
    }

    /// A `number` property.
    pub fn number(title: impl Into<String>) -> Property {
        Property::new(title, json!({"type": "number"}))
    }

    /// A `boolean` property.
    pub fn boolean(title: impl Into<String>) -> Property {
        Property::new(title, json!({"type": "boolean"}))
    }

    /// A property of any type (a schema with no `type`).
    pub fn any(title: impl Into<String>) -> Property {
        Property::new(title, json!({}))
    }

    /// An array property whose items follow `items` (a JSON Schema).
    pub fn array(title: impl Into<String>, items: Json) -> Property {
        Property::new(title, json!({"type": "array", "items": items}))
    }

    /// A property typed by `T`'s [`JsonSchema`], nested definitions inlined.
    pub fn of<T: JsonSchema>(title: impl Into<String>) -> Property {
        let mut root = root_schema::<T>();
        let defs = root.remove("$defs");
        root.remove("$schema");
        if let Some(defs) = defs {
            root.insert("$defs".into(), defs);
        }
        Property::new(title, Json::Object(root))
    }

    /// One property per field of the struct `T` (title: the field's name, schema: its
    /// schema), in declaration order; `None` when `T`'s schema is not an object with
    /// `properties`.
    pub fn fields_of<T: JsonSchema>() -> Option<Vec<Property>> {
        let mut root = root_schema::<T>();
        let defs = root.remove("$defs");
        let Some(Json::Object(props)) = root.remove("properties") else { return None };
        let fields = props
            .into_iter()
            .map(|(name, mut schema)| {
                // A recursive type keeps `$ref`s into the root's `$defs`: give the property
                // its own copy, so its schema stands alone.
                let refers = has_ref(&schema);
                if let (Some(defs), Json::Object(m), true) = (&defs, &mut schema, refers) {
                    m.insert("$defs".into(), defs.clone());
                }
                Property::new(name, schema)
            })
            .collect();
        Some(fields)
    }

    /// Adds a description.
    pub fn description(mut self, text: impl Into<String>) -> Property {
        if let Json::Object(m) = &mut self.schema {
            m.insert("description".into(), Json::String(text.into()));
        }
        self
    }

    /// Adds a default value (used when nothing reaches the input).
    pub fn with_default(mut self, value: Json) -> Property {
        if let Json::Object(m) = &mut self.schema {
            m.insert("default".into(), value);
        }
        self
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The property as written in a document: its schema with `title` first.
    pub fn to_json(&self) -> Json {
        match &self.schema {
            Json::Object(m) => {
                let mut out = Map::new();
                out.insert("title".into(), Json::String(self.title.clone()));
                out.extend(m.iter().filter(|(k, _)| *k != "title").map(|(k, v)| (k.clone(), v.clone())));
                Json::Object(out)
            }
            other => other.clone(),
        }
    }
}

/// `T`'s schema as a Draft 2020-12 object, subschemas inlined (only recursive types keep
/// `$ref`s into `$defs`).
fn root_schema<T: JsonSchema>() -> Map<String, Json> {
    let schema = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator().into_root_schema_for::<T>();
    match schema.to_value() {
        Json::Object(m) => m,
        // The `false` schema (no value) as an object; `true` (any value) is `{}`.
        Json::Bool(false) => Map::from_iter([("not".to_owned(), json!({}))]),
        _ => Map::new(),
    }
}

fn has_ref(v: &Json) -> bool {
    match v {
        Json::Object(m) => m.contains_key("$ref") || m.values().any(has_ref),
        Json::Array(items) => items.iter().any(has_ref),
        _ => false,
    }
}

/// Turns a run's outputs (title → value) back into a struct, e.g. the outputs of a node built
/// with [`FlowBuilder::llm_structured`]. Members the struct does not name are ignored (unless
/// it denies unknown fields).
pub fn typed_outputs<T: DeserializeOwned>(outputs: &Map<String, Json>) -> Result<T, serde_json::Error> {
    serde_json::from_value(Json::Object(outputs.clone()))
}

/// An LLM configuration (FORMAT.md section 9), shared by the nodes that use it. Its name is
/// also its id.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    component: Map<String, Json>,
}

impl LlmConfig {
    fn with_type(ty: &str, name: &str, fields: Json) -> LlmConfig {
        let mut component = header(ty, name, name, None);
        if let Json::Object(f) = fields {
            component.extend(f);
        }
        component.insert("default_generation_parameters".into(), Json::Null);
        LlmConfig { component }
    }

    /// An OpenAI-compatible server (`OpenAiCompatibleConfig`) at `url` (e.g.
    /// `http://localhost:8000/v1`) serving `model_id`.
    pub fn openai_compatible(name: &str, url: &str, model_id: &str) -> LlmConfig {
        LlmConfig::with_type("OpenAiCompatibleConfig", name, json!({"model_id": model_id, "url": url}))
    }

    /// A vLLM server (`VllmConfig`).
    pub fn vllm(name: &str, url: &str, model_id: &str) -> LlmConfig {
        LlmConfig::with_type("VllmConfig", name, json!({"model_id": model_id, "url": url}))
    }

    /// An Ollama server (`OllamaConfig`), e.g. at `http://localhost:11434`.
    pub fn ollama(name: &str, url: &str, model_id: &str) -> LlmConfig {
        LlmConfig::with_type("OllamaConfig", name, json!({"model_id": model_id, "url": url}))
    }

    /// OpenAI's own service (`OpenAiConfig`, chat completions; the key is not written).
    pub fn openai(name: &str, model_id: &str) -> LlmConfig {
        LlmConfig::with_type("OpenAiConfig", name, json!({"model_id": model_id}))
    }

    /// Sets `default_generation_parameters` (e.g. `json!({"temperature": 0.2, "max_tokens": 512})`).
    pub fn generation_parameters(mut self, parameters: Json) -> LlmConfig {
        self.component.insert("default_generation_parameters".into(), parameters);
        self
    }

    /// The id (the name).
    pub fn id(&self) -> &str {
        self.component.get("id").and_then(Json::as_str).unwrap_or("")
    }

    /// The component as written in a document.
    pub fn to_json(&self) -> Json {
        Json::Object(self.component.clone())
    }
}

/// A tool the host implements (`ServerTool`), called by a [`FlowBuilder::tool`] node. Its name
/// is also its id.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTool {
    /// The tool's name (what the tool registry is keyed by).
    pub name: String,
    /// What the tool does.
    pub description: Option<String>,
    /// Its parameters.
    pub inputs: Vec<Property>,
    /// Its results.
    pub outputs: Vec<Property>,
}

impl ServerTool {
    /// A tool without description.
    pub fn new(name: impl Into<String>, inputs: Vec<Property>, outputs: Vec<Property>) -> ServerTool {
        ServerTool { name: name.into(), description: None, inputs, outputs }
    }

    fn to_json(&self) -> Json {
        let mut c = header("ServerTool", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), props(&self.inputs));
        c.insert("outputs".into(), props(&self.outputs));
        Json::Object(c)
    }
}

/// A handle on a node of one [`FlowBuilder`] (or of its clones), for edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    builder: u64,
    index: usize,
}

/// Tells builders apart, so a handle used on the wrong builder is reported.
static BUILDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a [`FlowBuilder::subflow`], [`FlowBuilder::parallel_flows`], [`FlowBuilder::map`] or
/// [`FlowBuilder::parallel_map`] node runs: another builder or a loaded flow.
#[derive(Debug, Clone, Copy)]
pub enum Subflow<'a> {
    /// A flow being built.
    Builder(&'a FlowBuilder),
    /// A checked flow (written as its export).
    Flow(&'a Flow),
}

impl<'a> From<&'a FlowBuilder> for Subflow<'a> {
    fn from(b: &'a FlowBuilder) -> Self {
        Subflow::Builder(b)
    }
}

impl<'a> From<&'a Flow> for Subflow<'a> {
    fn from(f: &'a Flow) -> Self {
        Subflow::Flow(f)
    }
}

#[derive(Debug, Clone)]
enum OwnedSubflow {
    Builder(Box<FlowBuilder>),
    Flow(Flow),
}

impl OwnedSubflow {
    fn from(subflow: Subflow<'_>) -> OwnedSubflow {
        match subflow {
            Subflow::Builder(b) => OwnedSubflow::Builder(Box::new(b.clone())),
            Subflow::Flow(f) => OwnedSubflow::Flow(f.clone()),
        }
    }

    /// The flow's name (the root component's, for a loaded flow).
    fn name(&self) -> &str {
        match self {
            OwnedSubflow::Builder(b) => &b.name,
            OwnedSubflow::Flow(f) => &f.spec().root().name,
        }
    }
}

/// The subflows a node runs, and the field they are written to.
#[derive(Debug, Clone)]
struct Subflows {
    /// `subflow`, `subflows` or `flows`.
    field: &'static str,
    /// Whether the field is a list (even of one flow).
    list: bool,
    flows: Vec<OwnedSubflow>,
    /// Fields written after the subflows, in the exporters' order.
    then: Vec<(&'static str, Json)>,
}

pub use crate::node::Reducer;

#[derive(Debug, Clone)]
struct Node {
    name: String,
    ty: &'static str,
    description: Option<String>,
    inputs: Option<Vec<Json>>,
    outputs: Option<Vec<Json>>,
    branches: Option<Vec<String>>,
    fields: Map<String, Json>,
    plugin: bool,
    subflows: Option<Subflows>,
}

/// Builds a flow node by node; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct FlowBuilder {
    serial: u64,
    name: String,
    description: Option<String>,
    nodes: Vec<Node>,
    start: Option<NodeId>,
    control: Vec<(NodeId, Option<String>, NodeId)>,
    data: Vec<(NodeId, String, NodeId, String)>,
    /// LLM configs and tools, by id, referenced from the nodes.
    shared: IndexMap<String, Json>,
    version: Version,
    problems: Vec<Diagnostic>,
}

impl FlowBuilder {
    /// An empty flow named `name` (also its id).
    pub fn new(name: impl Into<String>) -> FlowBuilder {
        FlowBuilder {
            serial: BUILDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: name.into(),
            description: None,
            nodes: Vec::new(),
            start: None,
            control: Vec::new(),
            data: Vec::new(),
            shared: IndexMap::new(),
            version: Version::V25_4_1,
            problems: Vec::new(),
        }
    }

    /// Sets the flow's description.
    pub fn description(&mut self, text: impl Into<String>) -> &mut FlowBuilder {
        self.description = Some(text.into());
        self
    }

    /// Sets a node's description.
    pub fn describe(&mut self, node: NodeId, text: impl Into<String>) {
        if self.check_ids(&[node]) {
            self.nodes[node.index].description = Some(text.into());
        }
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn add(&mut self, node: Node) -> NodeId {
        if self.nodes.iter().any(|n| n.name == node.name) {
            self.problems.push(
                Diagnostic::new(Code::BadValue, "", format!("flow `{}` has two nodes named `{}`", self.name, node.name))
                    .hint("node names are unique within a flow: the builder derives ids from them"),
            );
        }
        self.nodes.push(node);
        NodeId { builder: self.serial, index: self.nodes.len() - 1 }
    }

    fn node(ty: &'static str, name: &str) -> Node {
        Node {
            name: name.to_owned(),
            ty,
            description: None,
            inputs: None,
            outputs: None,
            branches: Some(vec!["next".into()]),
            fields: Map::new(),
            plugin: false,
            subflows: None,
        }
    }

    /// Registers a shared component (an LLM config or a tool) and returns a reference to it.
    fn share(&mut self, component: Json) -> Json {
        let id = component.get("id").and_then(Json::as_str).unwrap_or("").to_owned();
        merge_shared(&mut self.shared, &mut self.problems, &id, component);
        json!({"$component_ref": id})
    }

    /// The `StartNode` (named `start`); its inputs are the flow's inputs.
    pub fn start(&mut self, inputs: &[Input]) -> NodeId {
        let mut n = FlowBuilder::node("StartNode", "start");
        n.inputs = Some(inputs.iter().map(Property::to_json).collect());
        n.outputs = n.inputs.clone();
        let id = self.add(n);
        if self.start.is_some() {
            self.problems.push(Diagnostic::new(Code::FlowStructure, "", format!("flow `{}` has two start nodes", self.name)));
        }
        self.start = Some(id);
        id
    }

    /// An `EndNode` leaving through the default branch `next`; its outputs are the flow's.
    pub fn end(&mut self, name: &str, outputs: &[Output]) -> NodeId {
        self.end_with_branch(name, "next", outputs)
    }

    /// An `EndNode` leaving through `branch` (a branch of the node that runs this flow as a
    /// subflow).
    pub fn end_with_branch(&mut self, name: &str, branch: &str, outputs: &[Output]) -> NodeId {
        let mut n = FlowBuilder::node("EndNode", name);
        n.outputs = Some(outputs.iter().map(Property::to_json).collect());
        n.inputs = n.outputs.clone();
        n.branches = Some(Vec::new());
        n.fields.insert("branch_name".into(), json!(branch));
        self.add(n)
    }

    /// An `LlmNode` whose inputs are the `{{ name }}` placeholders of `prompt` (strings) and
    /// whose output is the raw text, `generated_text`.
    pub fn llm(&mut self, name: &str, config: &LlmConfig, prompt: &str) -> NodeId {
        let generated = json!({"title": "generated_text", "type": "string", "description": "Raw text generated by the LLM"});
        self.llm_node(name, config, prompt, vec![generated])
    }

    /// An `LlmNode` with these outputs: one `string` output is the raw text, whatever its
    /// title; anything else asks for structured generation (agentspec_version 25.4.2).
    pub fn llm_with_outputs(&mut self, name: &str, config: &LlmConfig, prompt: &str, outputs: &[Output]) -> NodeId {
        self.llm_node(name, config, prompt, outputs.iter().map(Property::to_json).collect())
    }

    /// An `LlmNode` with one output per field of the struct `T` (structured generation; read
    /// the values back with [`typed_outputs`]). `T` must be a struct with named fields.
    pub fn llm_structured<T: JsonSchema>(&mut self, name: &str, config: &LlmConfig, prompt: &str) -> NodeId {
        let outputs = match Property::fields_of::<T>() {
            Some(fields) => fields,
            None => {
                self.problems.push(
                    Diagnostic::new(
                        Code::BadValue,
                        "",
                        format!("the outputs of node `{name}` come from `{}`, which is not a struct with named fields", T::schema_name()),
                    )
                    .hint("use a struct, or `llm_with_outputs` with `Property::of::<T>(title)`"),
                );
                Vec::new()
            }
        };
        self.llm_with_outputs(name, config, prompt, &outputs)
    }

    fn llm_node(&mut self, name: &str, config: &LlmConfig, prompt: &str, outputs: Vec<Json>) -> NodeId {
        let structured = outputs.len() != 1 || outputs.iter().any(|o| o.get("type").and_then(Json::as_str) != Some("string"));
        if structured {
            self.version = self.version.max(Version::V25_4_2);
        }
        let mut n = FlowBuilder::node("LlmNode", name);
        n.inputs = Some(string_inputs(&placeholders(prompt)));
        n.outputs = Some(outputs);
        let config = self.share(config.to_json());
        n.fields.insert("llm_config".into(), config);
        n.fields.insert("prompt_template".into(), json!(prompt));
        self.add(n)
    }

    /// A `BranchingNode`: the value of its one input, `input` (a string; other values arrive
    /// JSON-encoded, so a boolean is `true` or `false`), is looked up in `mapping` (value →
    /// branch); an unknown value leaves through `default`.
    pub fn branching(&mut self, name: &str, mapping: &[(&str, &str)], input: &str) -> NodeId {
        let mut n = FlowBuilder::node("BranchingNode", name);
        n.inputs = Some(vec![json!({"title": input, "type": "string"})]);
        n.outputs = Some(Vec::new());
        let mut branches: Vec<String> = mapping.iter().map(|(_, b)| (*b).to_owned()).chain(["default".to_owned()]).collect();
        branches.sort();
        branches.dedup();
        n.branches = Some(branches);
        let map: Map<String, Json> = mapping.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        n.fields.insert("mapping".into(), Json::Object(map));
        self.add(n)
    }

    /// A WayFlow `PluginTemplateNode`: renders the Jinja `template` into its output `output`.
    /// Inputs are the template's variables, inferred as WayFlow does.
    pub fn template(&mut self, name: &str, template: &str) -> NodeId {
        let mut n = FlowBuilder::node("PluginTemplateNode", name);
        n.plugin = true;
        // Invalid Jinja: leave the inputs to the loader, which reports the template.
        n.inputs = jinja_inputs(&[template]);
        n.outputs = Some(vec![json!({"title": "output", "type": "string", "description": "the formatted template"})]);
        n.fields.insert("input_mapping".into(), json!({}));
        n.fields.insert("output_mapping".into(), json!({}));
        n.fields.insert("template".into(), json!(template));
        self.add(n)
    }

    /// A WayFlow `PluginConstantValuesNode`: one output per member of `values` (an object),
    /// typed from its value.
    pub fn constants(&mut self, name: &str, values: Json) -> NodeId {
        let mut n = FlowBuilder::node("PluginConstantValuesNode", name);
        n.plugin = true;
        n.inputs = Some(Vec::new());
        match &values {
            Json::Object(m) => {
                let outs = m
                    .iter()
                    .map(|(k, v)| json!({"title": k, "description": format!("constant value with name {k}"), "type": type_name(v, TypeWords::Schema)}))
                    .collect();
                n.outputs = Some(outs);
            }
            _ => self.problems.push(Diagnostic::new(Code::BadValue, "", format!("the constant values of node `{name}` are not an object"))),
        }
        n.fields.insert("input_mapping".into(), json!({}));
        n.fields.insert("output_mapping".into(), json!({}));
        n.fields.insert("constant_values".into(), values);
        self.add(n)
    }

    /// An `OutputMessageNode`: shows `message` (with `{{ name }}` placeholders as inputs) to
    /// the user.
    pub fn output_message(&mut self, name: &str, message: &str) -> NodeId {
        let mut n = FlowBuilder::node("OutputMessageNode", name);
        n.inputs = Some(string_inputs(&placeholders(message)));
        n.outputs = Some(Vec::new());
        n.fields.insert("message".into(), json!(message));
        self.add(n)
    }

    /// An `InputMessageNode`: shows `message` (placeholders as inputs; empty for none) and
    /// waits for the user's answer, its output `user_input`.
    pub fn input_message(&mut self, name: &str, message: &str) -> NodeId {
        let mut n = FlowBuilder::node("InputMessageNode", name);
        n.inputs = Some(string_inputs(&placeholders(message)));
        n.outputs = Some(vec![json!({"title": "user_input", "type": "string"})]);
        n.fields.insert("message".into(), if message.is_empty() { Json::Null } else { json!(message) });
        self.add(n)
    }

    /// A `ToolNode` calling `tool`; its inputs and outputs are the tool's.
    pub fn tool(&mut self, name: &str, tool: &ServerTool) -> NodeId {
        let mut n = FlowBuilder::node("ToolNode", name);
        n.inputs = Some(tool.inputs.iter().map(Property::to_json).collect());
        n.outputs = Some(tool.outputs.iter().map(Property::to_json).collect());
        let tool = self.share(tool.to_json());
        n.fields.insert("tool".into(), tool);
        self.add(n)
    }

    /// A `FlowNode` running `subflow` (a [`FlowBuilder`] or a [`Flow`]); its inputs and outputs
    /// are the subflow's, its branches the `branch_name`s of the subflow's end nodes. The
    /// subflow is copied: later changes to it are not seen.
    pub fn subflow<'a>(&mut self, name: &str, subflow: impl Into<Subflow<'a>>) -> NodeId {
        let mut n = FlowBuilder::node("FlowNode", name);
        // Inputs, outputs and branches are inferred by the loader from the subflow.
        n.branches = None;
        n.subflows = Some(Subflows { field: "subflow", list: false, flows: vec![OwnedSubflow::from(subflow.into())], then: Vec::new() });
        self.add(n)
    }

    /// A `CatchExceptionNode` running `subflow`: when a node inside it fails (a tool or LLM
    /// failure, a node timeout, a template or value error; never a cancellation or the step
    /// budget), its calls in flight are cancelled, its outputs take their defaults (each subflow
    /// output needs one), `caught_exception_info` (a string, else null) describes the error, and
    /// the node leaves through `caught_exception_branch`; else through the subflow's end
    /// branches (agentspec_version 26.1.2).
    pub fn catch_errors<'a>(&mut self, name: &str, subflow: impl Into<Subflow<'a>>) -> NodeId {
        self.version = self.version.max(Version::V26_1_2);
        let mut n = FlowBuilder::node("CatchExceptionNode", name);
        n.branches = None;
        n.inputs = None;
        n.outputs = None;
        n.subflows = Some(Subflows { field: "subflow", list: false, flows: vec![OwnedSubflow::from(subflow.into())], then: Vec::new() });
        self.add(n)
    }

    /// WayFlow's `PluginCatchExceptionNode` running `subflow`: an error whose exception name
    /// (see the README's table: `ValueError`, `TimeoutError`, `Exception` for an LLM failure, the
    /// class a Python tool raised...) is a key of `except_on` leaves through that key's branch;
    /// any other through `default_exception_branch` when `catch_all` is set, else it fails the
    /// run. Outputs: the subflow's (their defaults, else zero values, when an error was caught),
    /// `exception_name` and `exception_payload_name` (`""` when nothing was caught).
    pub fn catch_exceptions<'a>(
        &mut self,
        name: &str,
        subflow: impl Into<Subflow<'a>>,
        except_on: &[(&str, &str)],
        catch_all: bool,
    ) -> NodeId {
        let mut n = FlowBuilder::node("PluginCatchExceptionNode", name);
        n.plugin = true;
        n.branches = None;
        n.inputs = None;
        n.outputs = None;
        n.fields.insert("input_mapping".into(), json!({}));
        n.fields.insert("output_mapping".into(), json!({}));
        let map: Map<String, Json> = except_on.iter().map(|(k, b)| ((*k).to_owned(), json!(b))).collect();
        let then = vec![("except_on", Json::Object(map)), ("catch_all_exceptions", json!(catch_all))];
        n.subflows = Some(Subflows { field: "flow", list: false, flows: vec![OwnedSubflow::from(subflow.into())], then });
        self.add(n)
    }

    /// A `ParallelFlowNode` running `subflows` (builders or flows) concurrently; its inputs are
    /// the union of the subflows' inputs (by title; a shared input must have the same type
    /// everywhere), its outputs all of theirs (titles must differ), merged in the order of
    /// `subflows` (agentspec_version 25.4.2).
    ///
    /// With `max_workers` (at most that many subflows run at once; 20 when unset, as in WayFlow)
    /// the node is WayFlow's `ExtendedParallelFlowNode` instead, since core Agent Spec has no
    /// such field: the document then needs WayFlow's plugins in pyagentspec.
    ///
    /// Each subflow is written under the id `<node id>.<subflow name>`, so subflows made by
    /// builders need distinct names. They are copied: later changes to them are not seen.
    ///
    /// `subflows` are all builders (`&[&a, &b]`) or all flows; mix them as
    /// `&[Subflow::from(&a), Subflow::from(&flow)]`.
    pub fn parallel_flows<'a, S: Into<Subflow<'a>> + Copy>(&mut self, name: &str, subflows: &[S], max_workers: Option<usize>) -> NodeId {
        let flows: Vec<OwnedSubflow> = subflows.iter().map(|s| OwnedSubflow::from((*s).into())).collect();
        let mut names: Vec<&str> = flows.iter().filter(|f| matches!(f, OwnedSubflow::Builder(_))).map(OwnedSubflow::name).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            self.problems.push(
                Diagnostic::new(Code::BadValue, "", format!("node `{name}` runs two subflows named `{}`", w[0]))
                    .hint("give each subflow of a parallel node its own name: the builder derives ids from it"),
            );
        }
        let mut n = match max_workers {
            None => {
                self.version = self.version.max(Version::V25_4_2);
                let mut n = FlowBuilder::node("ParallelFlowNode", name);
                n.subflows = Some(Subflows { field: "subflows", list: true, flows, then: Vec::new() });
                n
            }
            Some(workers) => {
                let mut n = FlowBuilder::node("ExtendedParallelFlowNode", name);
                n.plugin = true;
                n.fields.insert("input_mapping".into(), json!({}));
                n.fields.insert("output_mapping".into(), json!({}));
                n.subflows = Some(Subflows { field: "flows", list: true, flows, then: vec![("max_workers", json!(workers))] });
                n
            }
        };
        // Inputs and outputs are inferred by the loader from the subflows.
        n.inputs = None;
        n.outputs = None;
        self.add(n)
    }

    /// A `MapNode` running `subflow` once per item, one item after another. For each input
    /// `p` of the subflow the node has the input `iterated_<p>`: fed (by a data edge) by an
    /// output declared as a list of `p`'s type, the subflow runs once per item of the list;
    /// fed by anything else, the value goes to every run unchanged. Exactly one input must be
    /// iterated (WayFlow's rule, checked by the loader). For each `(o, reducer)` of `reducers`
    /// the node has the output `collected_<o>`: with [`Reducer::Append`] the list of `o`'s
    /// values, else a value of `o`'s type. Subflow outputs not in `reducers` are dropped.
    /// The subflow is copied: later changes to it are not seen.
    pub fn map<'a>(&mut self, name: &str, subflow: impl Into<Subflow<'a>>, reducers: &[(&str, Reducer)]) -> NodeId {
        self.map_node("MapNode", name, subflow.into(), reducers)
    }

    /// A `ParallelMapNode`: a [`map`](FlowBuilder::map) whose runs go concurrently, at most 20
    /// at a time (WayFlow's default; core Agent Spec has no `max_workers` for it), results
    /// still in the order of the items (agentspec_version 25.4.2).
    pub fn parallel_map<'a>(&mut self, name: &str, subflow: impl Into<Subflow<'a>>, reducers: &[(&str, Reducer)]) -> NodeId {
        self.version = self.version.max(Version::V25_4_2);
        self.map_node("ParallelMapNode", name, subflow.into(), reducers)
    }

    fn map_node(&mut self, ty: &'static str, name: &str, subflow: Subflow<'_>, reducers: &[(&str, Reducer)]) -> NodeId {
        let mut n = FlowBuilder::node(ty, name);
        let mut map = Map::new();
        for (output, reducer) in reducers {
            if map.insert((*output).to_owned(), json!(reducer.name())).is_some() {
                self.problems.push(Diagnostic::new(Code::BadValue, "", format!("node `{name}` has two reducers for output `{output}`")));
            }
        }
        // Inputs and outputs are inferred by the loader from the subflow and the reducers.
        let flows = vec![OwnedSubflow::from(subflow)];
        n.subflows = Some(Subflows { field: "subflow", list: false, flows, then: vec![("reducers", Json::Object(map))] });
        self.add(n)
    }

    /// A control edge: after `from` finishes (through its `next` branch), `to` runs.
    pub fn edge(&mut self, from: NodeId, to: NodeId) {
        if self.check_ids(&[from, to]) {
            self.control.push((from, None, to));
        }
    }

    /// A control edge from `from`'s branch `branch` to `to`.
    pub fn edge_on(&mut self, from: NodeId, branch: &str, to: NodeId) {
        if self.check_ids(&[from, to]) {
            self.control.push((from, Some(branch.to_owned()), to));
        }
    }

    /// A data edge: `output` of `source` feeds `input` of `destination`. Several edges may feed
    /// one input; it takes the latest value.
    pub fn data(&mut self, source: NodeId, output: &str, destination: NodeId, input: &str) {
        if self.check_ids(&[source, destination]) {
            self.data.push((source, output.to_owned(), destination, input.to_owned()));
        }
    }

    /// Whether every handle is one of this builder's; reports those that are not.
    fn check_ids(&mut self, ids: &[NodeId]) -> bool {
        let mut ok = true;
        for &id in ids {
            if id.builder != self.serial || id.index >= self.nodes.len() {
                ok = false;
                self.problems.push(
                    Diagnostic::new(
                        Code::FlowStructure,
                        "",
                        format!("a node handle given to flow `{}` belongs to another builder", self.name),
                    )
                    .hint("use the handles returned by this builder's own node methods"),
                );
            }
        }
        ok
    }

    /// The Agent Spec document (JSON), as [`build`](FlowBuilder::build) loads it.
    pub fn to_json(&self) -> Json {
        self.render_document().0
    }

    /// The document as pretty-printed JSON text, to save and `weft run`.
    pub fn to_document_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes the document and loads it with [`Flow::from_json`]: the result is the flow the
    /// loader gives for [`to_json`](FlowBuilder::to_json), or every diagnostic (the builder's
    /// own first). Warnings are dropped; load the document yourself to see them.
    pub fn build(&self) -> Result<Flow, Diagnostics> {
        let (doc, problems) = self.render_document();
        // Pretty-printed, so positions match the saved document.
        let loaded = Flow::from_json(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        match (problems.is_empty(), loaded) {
            (true, Ok(loaded)) => Ok(loaded.flow),
            (_, Err(Diagnostics(more))) => Err(Diagnostics(problems.into_iter().chain(more).collect())),
            (false, Ok(_)) => Err(Diagnostics(problems)),
        }
    }

    fn render_document(&self) -> (Json, Vec<Diagnostic>) {
        let mut shared = IndexMap::new();
        let mut problems = Vec::new();
        let mut version = Version::V25_4_1;
        let mut doc = self.render(&self.name, &mut shared, &mut problems, &mut version);
        // Embedded exports of loaded flows may define a shared component themselves.
        for value in doc.values_mut() {
            dedupe_shared(value, &shared, &mut problems);
        }
        if let Some(table) = doc.get_mut("$referenced_components").and_then(Json::as_object_mut) {
            table.extend(shared);
        }
        doc.insert("agentspec_version".into(), json!(version.to_string()));
        (Json::Object(doc), problems)
    }

    /// The flow component with id `id`, its nodes in its own `$referenced_components`; LLM
    /// configs and tools go to `shared`, for the root's table.
    fn render(
        &self,
        id: &str,
        shared: &mut IndexMap<String, Json>,
        problems: &mut Vec<Diagnostic>,
        version: &mut Version,
    ) -> Map<String, Json> {
        problems.extend(self.problems.iter().cloned());
        *version = (*version).max(self.version);
        for (key, component) in &self.shared {
            merge_shared(shared, problems, key, component.clone());
        }
        // Edges only hold this builder's handles (checked when added).
        let name_of = |n: NodeId| self.nodes.get(n.index).map_or("?", |n| n.name.as_str());
        let node_ref = |n: NodeId| json!({"$component_ref": format!("{id}.{}", name_of(n))});

        let mut flow = header("Flow", id, &self.name, self.description.as_deref());
        if let Some(start) = self.start.and_then(|s| self.nodes.get(s.index)) {
            flow.insert("inputs".into(), Json::Array(start.inputs.clone().unwrap_or_default()));
        }
        flow.insert("outputs".into(), Json::Array(self.flow_outputs()));
        if let Some(start) = self.start {
            flow.insert("start_node".into(), node_ref(start));
        }
        flow.insert(
            "nodes".into(),
            Json::Array(self.nodes.iter().map(|n| json!({"$component_ref": format!("{id}.{}", n.name)})).collect()),
        );
        let control = self
            .control
            .iter()
            .enumerate()
            .map(|(i, (from, branch, to))| {
                let name = match branch {
                    Some(b) => format!("{}_to_{}_{b}", name_of(*from), name_of(*to)),
                    None => format!("{}_to_{}", name_of(*from), name_of(*to)),
                };
                let mut e = header("ControlFlowEdge", &format!("{id}.control.{i}"), &name, None);
                e.insert("from_node".into(), node_ref(*from));
                e.insert("from_branch".into(), branch.as_ref().map_or(Json::Null, |b| json!(b)));
                e.insert("to_node".into(), node_ref(*to));
                Json::Object(e)
            })
            .collect();
        flow.insert("control_flow_connections".into(), Json::Array(control));
        let data = self
            .data
            .iter()
            .enumerate()
            .map(|(i, (src, out, dst, inp))| {
                let name = format!("{}_{out}_to_{}_{inp}", name_of(*src), name_of(*dst));
                let mut e = header("DataFlowEdge", &format!("{id}.data.{i}"), &name, None);
                e.insert("source_node".into(), node_ref(*src));
                e.insert("source_output".into(), json!(out));
                e.insert("destination_node".into(), node_ref(*dst));
                e.insert("destination_input".into(), json!(inp));
                Json::Object(e)
            })
            .collect();
        flow.insert("data_flow_connections".into(), Json::Array(data));

        let mut table = Map::new();
        for node in &self.nodes {
            let nid = format!("{id}.{}", node.name);
            let mut c = header(node.ty, &nid, &node.name, node.description.as_deref());
            if let Some(inputs) = &node.inputs {
                c.insert("inputs".into(), Json::Array(inputs.clone()));
            }
            if let Some(outputs) = &node.outputs {
                c.insert("outputs".into(), Json::Array(outputs.clone()));
            }
            if let Some(branches) = &node.branches {
                c.insert("branches".into(), json!(branches));
            }
            c.extend(node.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(subflows) = &node.subflows {
                let mut written = Vec::new();
                for sub in &subflows.flows {
                    match sub {
                        OwnedSubflow::Builder(b) => {
                            written.push(Json::Object(b.render(&format!("{nid}.{}", b.name), shared, problems, version)))
                        }
                        OwnedSubflow::Flow(f) => match crate::export::export_value(f, None) {
                            Ok(Json::Object(mut sub)) => {
                                sub.remove("agentspec_version");
                                *version = (*version).max(crate::export::minimum_version(f).0);
                                written.push(Json::Object(sub));
                            }
                            Ok(_) => {}
                            Err(e) => problems.push(Diagnostic::new(
                                Code::BadValue,
                                "",
                                format!("cannot write the subflow `{}` of node `{}`: {e}", sub.name(), node.name),
                            )),
                        },
                    }
                }
                match (subflows.list, written.pop()) {
                    (true, last) => {
                        written.extend(last);
                        c.insert(subflows.field.into(), Json::Array(written));
                    }
                    (false, Some(sub)) => {
                        c.insert(subflows.field.into(), sub);
                    }
                    (false, None) => {}
                }
                c.extend(subflows.then.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            }
            if node.plugin {
                c.insert("component_plugin_name".into(), json!(PLUGIN.0));
                c.insert("component_plugin_version".into(), json!(PLUGIN.1));
            }
            table.insert(nid, Json::Object(c));
        }
        flow.insert("$referenced_components".into(), Json::Object(table));
        flow
    }

    /// The outputs present, by title, in every end node (the flow's outputs, FORMAT.md 7.1).
    fn flow_outputs(&self) -> Vec<Json> {
        let ends: Vec<&Vec<Json>> = self.nodes.iter().filter(|n| n.ty == "EndNode").filter_map(|n| n.outputs.as_ref()).collect();
        let Some((first, rest)) = ends.split_first() else { return Vec::new() };
        let title = |p: &Json| p.get("title").and_then(Json::as_str).map(str::to_owned);
        first.iter().filter(|p| rest.iter().all(|outs| outs.iter().any(|q| title(q) == title(p)))).cloned().collect()
    }
}

/// The common component keys, in the exporters' order.
fn header(ty: &str, id: &str, name: &str, description: Option<&str>) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("component_type".into(), json!(ty));
    m.insert("id".into(), json!(id));
    m.insert("name".into(), json!(name));
    m.insert("description".into(), description.map_or(Json::Null, |d| json!(d)));
    m.insert("metadata".into(), json!({}));
    m
}

fn props(list: &[Property]) -> Json {
    Json::Array(list.iter().map(Property::to_json).collect())
}

fn string_inputs(names: &[String]) -> Vec<Json> {
    names.iter().map(|n| json!({"title": n, "type": "string"})).collect()
}

/// Adds a shared component; the same id with a different definition is a problem.
fn merge_shared(shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, id: &str, component: Json) {
    match shared.get(id) {
        Some(existing) if *existing != component => problems.push(conflict(id)),
        Some(_) => {}
        None => {
            shared.insert(id.to_owned(), component);
        }
    }
}

/// In the export of a loaded subflow, replaces every definition of a shared component (an LLM
/// config or a tool the builder defines at the root) by a reference to the root's: one id, one
/// definition. A different definition under the same id is a problem.
fn dedupe_shared(v: &mut Json, shared: &IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) {
    match v {
        Json::Object(m) => {
            let def =
                m.get("id").and_then(Json::as_str).filter(|_| m.contains_key("component_type")).and_then(|id| shared.get_key_value(id));
            if let Some((id, def)) = def {
                if same_component(m, def) {
                    *v = json!({"$component_ref": id});
                } else {
                    problems.push(conflict(id));
                }
                return;
            }
            if let Some(Json::Object(table)) = m.get_mut("$referenced_components") {
                table.retain(|key, entry| match shared.get(key) {
                    Some(def) if entry.as_object().is_some_and(|e| same_component(e, def)) => false,
                    Some(_) => {
                        problems.push(conflict(key));
                        true
                    }
                    None => true,
                });
            }
            for value in m.values_mut() {
                dedupe_shared(value, shared, problems);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|i| dedupe_shared(i, shared, problems)),
        _ => {}
    }
}

/// Whether two definitions are the same component, up to the fields an exporter writes with
/// their default values (`null`, `metadata: {}`, `api_type: "chat_completions"`, ...).
fn same_component(a: &Map<String, Json>, b: &Json) -> bool {
    let Some(b) = b.as_object() else { return false };
    let normal = |k: &str, v: Option<&Json>| -> Json {
        match (k, v) {
            (_, None) => Json::Null,
            ("metadata", Some(Json::Object(m))) if m.is_empty() => Json::Null,
            ("api_type", Some(Json::String(t))) if t == "chat_completions" => Json::Null,
            ("requires_confirmation", Some(Json::Bool(false))) => Json::Null,
            (_, Some(v)) => v.clone(),
        }
    };
    a.keys().chain(b.keys()).filter(|k| *k != "$referenced_components").all(|k| normal(k, a.get(k)) == normal(k, b.get(k)))
}

fn conflict(id: &str) -> Diagnostic {
    Diagnostic::new(Code::RefDuplicate, "", format!("two different components have the id `{id}`"))
        .hint("give each LLM config and tool its own name: the builder uses it as the id")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::export::export_value;

    fn llm() -> LlmConfig {
        LlmConfig::vllm("vllm-llama", "http://vllm.internal:8000", "meta-llama/Llama-3.1-8B-Instruct")
    }

    fn corpus(file: &str) -> Flow {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Flow::from_json(&text).unwrap().flow
    }

    /// Builds, checks that the document loads with no warning and gives the same flow, and
    /// returns the flow.
    fn build(b: &FlowBuilder) -> Flow {
        let built = b.build().unwrap_or_else(|d| panic!("{d:?}"));
        let loaded = Flow::from_json(&b.to_document_string()).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(export_value(&built, None).unwrap(), export_value(&loaded.flow, None).unwrap());
        built
    }

    /// The interface (type, inputs, outputs, branches) of the component named `name`.
    fn interface(flow: &Flow, name: &str) -> Json {
        let spec = flow.spec();
        let c = spec.components.iter().position(|c| c.name == name).unwrap_or_else(|| panic!("no component `{name}`"));
        let io = flow.io(c);
        let schemas = |ps: &[weft_spec::Property]| ps.iter().map(|p| p.schema.clone()).collect::<Vec<_>>();
        json!({"type": spec.get(c).ty.name, "inputs": schemas(&io.inputs), "outputs": schemas(&io.outputs), "branches": io.branches})
    }

    /// `square_subflow` of the corpus: x (number) → LLM `square` → x_squared (number).
    fn square_subflow() -> FlowBuilder {
        let mut sub = FlowBuilder::new("square_subflow");
        let start = sub.start(&[Input::number("x")]);
        let square = sub.llm_with_outputs("square", &llm(), "Square {{x}}", &[Output::number("x_squared")]);
        let end = sub.end("sq_end", &[Output::number("x_squared")]);
        sub.edge(start, square);
        sub.edge(square, end);
        sub.data(start, "x", square, "x");
        sub.data(square, "x_squared", end, "x_squared");
        sub
    }

    /// The corpus flows `p_parallel_map_node.json` and `p_map_node_append.json`, rebuilt.
    fn squares(flow: &str, map: &str, parallel: bool) -> FlowBuilder {
        let sub = square_subflow();
        let mut b = FlowBuilder::new(flow);
        let start = b.start(&[Input::array("numbers", json!({"type": "number"}))]);
        let m = if parallel {
            b.parallel_map(map, &sub, &[("x_squared", Reducer::Append)])
        } else {
            b.map(map, &sub, &[("x_squared", Reducer::Append)])
        };
        let end = b.end("end", &[Output::array("collected_x_squared", json!({"title": "x_squared", "type": "number"}))]);
        b.edge(start, m);
        b.edge(m, end);
        b.data(start, "numbers", m, "iterated_x");
        b.data(m, "collected_x_squared", end, "collected_x_squared");
        b
    }

    #[test]
    fn parallel_map_is_the_corpus_document() {
        let b = squares("parallel_map_flow", "square_in_parallel", true);
        let built = build(&b);
        let reference = corpus("p_parallel_map_node.json");
        for name in ["parallel_map_flow", "square_in_parallel", "square_subflow", "square"] {
            assert_eq!(interface(&built, name), interface(&reference, name), "{name}");
        }
        let doc = b.to_json();
        assert_eq!(doc["agentspec_version"], "25.4.2");
        let node = &doc["$referenced_components"]["parallel_map_flow.square_in_parallel"];
        assert_eq!(node["component_type"], "ParallelMapNode");
        assert_eq!(node["reducers"], json!({"x_squared": "append"}));
        assert_eq!(node["subflow"]["id"], "parallel_map_flow.square_in_parallel.square_subflow");
        // The inferred interface: iterated_<p> and collected_<o>.
        assert_eq!(
            interface(&built, "square_in_parallel")["inputs"],
            json!([{"title": "iterated_x", "anyOf": [{"title": "x", "type": "number"}, {"type": "array", "items": {"title": "x", "type": "number"}}]}])
        );
        assert_eq!(
            interface(&built, "square_in_parallel")["outputs"],
            json!([{"title": "collected_x_squared", "type": "array", "items": {"title": "x_squared", "type": "number"}}])
        );
    }

    #[test]
    fn map_is_the_corpus_document() {
        let b = squares("map_append_flow", "square_all", false);
        let built = build(&b);
        let reference = corpus("p_map_node_append.json");
        for name in ["map_append_flow", "square_all", "square_subflow"] {
            assert_eq!(interface(&built, name), interface(&reference, name), "{name}");
        }
        // MapNode exists in 25.4.1, but the subflow's structured LLM node needs 25.4.2.
        assert_eq!(b.to_json()["agentspec_version"], "25.4.2");
        assert_eq!(interface(&built, "square_all")["type"], "MapNode");
    }

    #[test]
    fn other_reducers_keep_the_output_type_and_unlisted_outputs_are_dropped() {
        let mut sub = FlowBuilder::new("measure");
        let start = sub.start(&[Input::string("text")]);
        let m = sub.llm_with_outputs("measure", &llm(), "Measure {{text}}", &[Output::integer("words"), Output::string("note")]);
        let end = sub.end("end", &[Output::integer("words"), Output::string("note")]);
        sub.edge(start, m);
        sub.edge(m, end);
        sub.data(start, "text", m, "text");
        sub.data(m, "words", end, "words");
        sub.data(m, "note", end, "note");

        let mut b = FlowBuilder::new("total");
        let start = b.start(&[Input::array("texts", json!({"type": "string"}))]);
        let map = b.map("count", &sub, &[("words", Reducer::Sum)]);
        let end = b.end("end", &[Output::integer("collected_words")]);
        b.edge(start, map);
        b.edge(map, end);
        b.data(start, "texts", map, "iterated_text");
        b.data(map, "collected_words", end, "collected_words");
        let flow = build(&b);
        assert_eq!(interface(&flow, "count")["outputs"], json!([{"title": "collected_words", "type": "integer"}]));
    }

    #[test]
    fn map_problems_are_the_loaders() {
        // A reducer for an output the subflow does not have, and nothing iterated.
        let mut b = FlowBuilder::new("bad_map");
        let start = b.start(&[Input::number("n")]);
        let map = b.parallel_map("square_all", &square_subflow(), &[("x_cubed", Reducer::Append)]);
        let end = b.end("end", &[]);
        b.edge(start, map);
        b.edge(map, end);
        b.data(start, "n", map, "iterated_x");
        let codes: Vec<Code> = b.build().unwrap_err().0.into_iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::ComponentRule), "{codes:?}");

        // Two reducers for one output are the builder's own.
        let mut b = squares("twice", "square_all", false);
        b.map("again", &square_subflow(), &[("x_squared", Reducer::Append), ("x_squared", Reducer::Max)]);
        let problems = b.build().unwrap_err().0;
        assert!(problems[0].message.contains("two reducers"), "{problems:?}");
    }

    /// One branch of `p_parallel_flow_node.json`: a tool called with the flow's inputs.
    fn tool_flow(name: &str, tool: &ServerTool) -> FlowBuilder {
        let mut sub = FlowBuilder::new(name);
        let start = sub.start(&tool.inputs);
        let call = sub.tool(&format!("{name}_tool"), tool);
        let end = sub.end(&format!("{name}_end"), &tool.outputs);
        sub.edge(start, call);
        sub.edge(call, end);
        for p in &tool.inputs {
            sub.data(start, p.title(), call, p.title());
        }
        for p in &tool.outputs {
            sub.data(call, p.title(), end, p.title());
        }
        sub
    }

    fn marketing_branches() -> Vec<FlowBuilder> {
        let dict = json!({"additionalProperties": {"type": "string"}, "properties": {}, "type": "object"});
        let tools = [
            ServerTool::new("get_current_time", vec![], vec![Output::string("current_time")]),
            ServerTool::new("get_user_information", vec![Input::string("username")], vec![Output::new("user_info", dict.clone())]),
            ServerTool::new(
                "get_user_last_purchases",
                vec![Input::string("username")],
                vec![Output::array("user_purchases", dict.clone())],
            ),
            ServerTool::new("get_items_on_sale", vec![], vec![Output::array("items_on_sale", dict)]),
        ];
        tools.iter().map(|t| tool_flow(&format!("{}_flow", t.name), t)).collect()
    }

    fn marketing(max_workers: Option<usize>) -> FlowBuilder {
        let branches = marketing_branches();
        let branches: Vec<&FlowBuilder> = branches.iter().collect();
        let mut b = FlowBuilder::new("marketing_parallel_flow");
        let start = b.start(&[Input::string("username")]);
        let gather = b.parallel_flows("gather_context", &branches, max_workers);
        let write = b.llm(
            "write_message",
            &llm(),
            "User: {{user_info}}\nTime: {{current_time}}\nPurchases: {{user_purchases}}\nOn sale: {{items_on_sale}}\nWrite a welcome message.",
        );
        let end = b.end("end", &[Output::string("generated_text")]);
        b.edge(start, gather);
        b.edge(gather, write);
        b.edge(write, end);
        b.data(start, "username", gather, "username");
        for o in ["current_time", "user_info", "user_purchases", "items_on_sale"] {
            b.data(gather, o, write, o);
        }
        b.data(write, "generated_text", end, "generated_text");
        b
    }

    #[test]
    fn parallel_flows_is_the_corpus_document() {
        let b = marketing(None);
        let built = build(&b);
        let reference = corpus("p_parallel_flow_node.json");
        assert_eq!(interface(&built, "gather_context"), interface(&reference, "gather_context"));
        for name in ["get_current_time_flow", "get_user_information_flow", "get_user_last_purchases_flow", "get_items_on_sale_flow"] {
            assert_eq!(interface(&built, name), interface(&reference, name), "{name}");
        }
        let doc = b.to_json();
        assert_eq!(doc["agentspec_version"], "25.4.2");
        let node = &doc["$referenced_components"]["marketing_parallel_flow.gather_context"];
        assert_eq!(node["component_type"], "ParallelFlowNode");
        assert_eq!(node["subflows"].as_array().unwrap().len(), 4);
        assert_eq!(node["subflows"][1]["id"], "marketing_parallel_flow.gather_context.get_user_information_flow");
        assert!(node.get("max_workers").is_none());
    }

    #[test]
    fn parallel_flows_with_max_workers_is_the_wayflow_node() {
        let b = marketing(Some(4));
        let built = build(&b);
        let io = interface(&built, "gather_context");
        assert_eq!(io["type"], "ExtendedParallelFlowNode");
        let mut core = interface(&build(&marketing(None)), "gather_context");
        core["type"] = json!("ExtendedParallelFlowNode");
        assert_eq!(io, core);
        let doc = b.to_json();
        let node = &doc["$referenced_components"]["marketing_parallel_flow.gather_context"];
        assert_eq!(node["max_workers"], 4);
        assert_eq!(node["flows"].as_array().unwrap().len(), 4);
        assert_eq!(node["component_plugin_name"], "NodesPlugin");
        // The plugin node exists in 25.4.1, and nothing else needs more.
        assert_eq!(doc["agentspec_version"], "25.4.1");
    }

    #[test]
    fn parallel_flows_accepts_loaded_flows() {
        let branches = marketing_branches();
        let first = branches[0].build().unwrap();
        let mut b = FlowBuilder::new("mixed");
        let start = b.start(&[Input::string("username")]);
        let both = b.parallel_flows("both", &[Subflow::from(&first), Subflow::from(&branches[1])], None);
        let end = b.end("end", &[Output::string("current_time")]);
        b.edge(start, both);
        b.edge(both, end);
        b.data(start, "username", both, "username");
        b.data(both, "current_time", end, "current_time");
        let flow = build(&b);
        assert_eq!(interface(&flow, "both")["outputs"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn parallel_problems_are_reported() {
        // Two builders with one name: their ids would collide.
        let branches = marketing_branches();
        let mut b = FlowBuilder::new("twice");
        let start = b.start(&[]);
        let both = b.parallel_flows("both", &[&branches[0], &branches[0]], None);
        let end = b.end("end", &[]);
        b.edge(start, both);
        b.edge(both, end);
        let problems = b.build().unwrap_err().0;
        assert!(problems[0].message.contains("two subflows named `get_current_time_flow`"), "{problems:?}");
        // The same output in two branches is the loader's rule.
        assert!(problems.iter().any(|d| d.code == Code::Parallel), "{problems:?}");
    }
}
