//! Agents written in Rust: an [`AgentBuilder`] (an `Agent`: an LLM config, a system prompt,
//! tools, typed inputs and outputs), a [`SwarmBuilder`] (agents handing the conversation to
//! each other or sending each other messages) and a [`ManagerWorkersBuilder`] (a manager agent
//! delegating to workers). Like [`FlowBuilder`](super::FlowBuilder), each writes an Agent Spec
//! document and loads it with [`Flow::from_json`], so what is built is exactly what loading the
//! document gives, and it runs through the same engine; [`FlowBuilder::agent`] puts any of them
//! in a flow as an `AgentNode` (e.g. worker agents in a [`FlowBuilder::parallel_map`]).
//!
//! ```
//! use weft_flow::builder::{AgentBuilder, LlmConfig, ServerTool, SwarmBuilder, Handoff};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct InvoiceQuery {
//!     /// The invoice number
//!     invoice: String,
//! }
//!
//! let llm = LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "qwen3");
//! let lookup = ServerTool::typed::<InvoiceQuery, String>("invoice_status", "The status of an invoice", "status");
//! let front = AgentBuilder::new("front", &llm, "You are the front desk.").description("Greets customers");
//! let billing = AgentBuilder::new("billing", &llm, "You answer billing questions.")
//!     .description("Billing specialist")
//!     .tool(&lookup);
//! let mut swarm = SwarmBuilder::new("desk", &front);
//! swarm.relationship(&front, &billing).handoff(Handoff::Optional);
//! let flow = swarm.build().expect("a valid swarm");
//! assert_eq!(flow.spec().root().ty.name, "Swarm");
//! assert!(weft_flow::Flow::from_json(&swarm.to_document_string()).is_ok());
//! ```
//!
//! Ids are names: an agent's id is its name (as an LLM config's or a tool's), the group's its
//! own name, so the same code always writes the same document, and two different components
//! of one name are reported by `build`.

use super::{FlowBuilder, LlmConfig, NodeId, Property, ServerTool, conflict, header, merge_shared, props};
use crate::Flow;
use crate::template::placeholders;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde_json::{Map, Value as Json, json};
use weft_spec::{Code, Diagnostic, Diagnostics, Version};

pub use crate::node::Handoff;

impl ServerTool {
    /// A tool typed by Rust types: one input per field of the struct `A` (its doc comments
    /// become the descriptions, as for a native tool registered with
    /// `ToolRegistry::register_fn`, which deserializes the arguments into `A`), and one output
    /// titled `output` with `R`'s schema (the value the native function returns). `A` must be a
    /// struct with named fields (or `()` for no inputs); anything else gives no inputs.
    pub fn typed<A: JsonSchema, R: JsonSchema>(name: impl Into<String>, description: impl Into<String>, output: &str) -> ServerTool {
        let inputs = Property::fields_of::<A>().unwrap_or_default();
        let mut tool = ServerTool::new(name, inputs, vec![Property::of::<R>(output)]);
        tool.description = Some(description.into());
        tool
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> ServerTool {
        self.description = Some(description.into());
        self
    }
}

/// Builds an `Agent` (AGENTS.md 1): see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct AgentBuilder {
    name: String,
    description: Option<String>,
    llm: LlmConfig,
    system_prompt: String,
    tools: Vec<ServerTool>,
    inputs: Option<Vec<Property>>,
    outputs: Vec<Property>,
    human_in_the_loop: bool,
    problems: Vec<Diagnostic>,
}

impl AgentBuilder {
    /// An agent named `name` (also its id) answering with `llm`. Its inputs are the
    /// `{{ name }}` placeholders of `system_prompt` (strings) unless [`inputs`](Self::inputs)
    /// sets them; it has no outputs and may ask the user (`human_in_the_loop`) until told
    /// otherwise.
    pub fn new(name: impl Into<String>, llm: &LlmConfig, system_prompt: impl Into<String>) -> AgentBuilder {
        AgentBuilder {
            name: name.into(),
            description: None,
            llm: llm.clone(),
            system_prompt: system_prompt.into(),
            tools: Vec::new(),
            inputs: None,
            outputs: Vec::new(),
            human_in_the_loop: true,
            problems: Vec::new(),
        }
    }

    /// Sets the description (what other agents of a Swarm or a manager read about it).
    pub fn description(mut self, text: impl Into<String>) -> AgentBuilder {
        self.description = Some(text.into());
        self
    }

    /// Adds a tool the agent may call (a native Rust tool, a tools-file binding...).
    pub fn tool(mut self, tool: &ServerTool) -> AgentBuilder {
        self.tools.push(tool.clone());
        self
    }

    /// Sets the inputs (the prompt's placeholders by default).
    pub fn inputs(mut self, inputs: &[Property]) -> AgentBuilder {
        self.inputs = Some(inputs.to_vec());
        self
    }

    /// Sets the outputs: the agent then submits them with `submit_result` before it ends.
    pub fn outputs(mut self, outputs: &[Property]) -> AgentBuilder {
        self.outputs = outputs.to_vec();
        self
    }

    /// One output per field of the struct `T` (read them back with
    /// [`typed_outputs`](super::typed_outputs)). `T` must be a struct with named fields.
    pub fn outputs_of<T: JsonSchema>(mut self) -> AgentBuilder {
        match Property::fields_of::<T>() {
            Some(fields) => self.outputs = fields,
            None => self.problems.push(
                Diagnostic::new(
                    Code::BadValue,
                    "",
                    format!(
                        "the outputs of agent `{}` come from `{}`, which is not a struct with named fields",
                        self.name,
                        T::schema_name()
                    ),
                )
                .hint("use a struct, or `outputs` with `Property::of::<T>(title)`"),
            ),
        }
        self
    }

    /// Whether the agent may ask the user (`true` by default). An agent that may not answers
    /// its caller by itself: what worker agents in a parallel map must be.
    pub fn human_in_the_loop(mut self, allowed: bool) -> AgentBuilder {
        self.human_in_the_loop = allowed;
        self
    }

    /// The name (also the id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Agent` component; its LLM config and tools go to `shared`.
    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) -> Json {
        problems.extend(self.problems.iter().cloned());
        let mut c = header("Agent", &self.name, &self.name, self.description.as_deref());
        let inputs = match &self.inputs {
            Some(inputs) => props(inputs),
            None => Json::Array(placeholders(&self.system_prompt).iter().map(|n| json!({"title": n, "type": "string"})).collect()),
        };
        c.insert("inputs".into(), inputs);
        c.insert("outputs".into(), props(&self.outputs));
        merge_shared(shared, problems, self.llm.id(), self.llm.to_json());
        c.insert("llm_config".into(), json!({"$component_ref": self.llm.id()}));
        c.insert("system_prompt".into(), json!(self.system_prompt));
        let tools: Vec<Json> = self
            .tools
            .iter()
            .map(|t| {
                merge_shared(shared, problems, &t.name, t.to_json());
                json!({"$component_ref": t.name})
            })
            .collect();
        c.insert("tools".into(), Json::Array(tools));
        c.insert("toolboxes".into(), json!([]));
        c.insert("human_in_the_loop".into(), json!(self.human_in_the_loop));
        Json::Object(c)
    }

    /// A reference to the agent, its component added to `shared` (a group names each agent
    /// several times).
    fn reference(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) -> Json {
        let c = self.component(shared, problems);
        merge_shared(shared, problems, &self.name, c);
        json!({"$component_ref": self.name})
    }

    /// The Agent Spec document whose root is this agent.
    pub fn to_json(&self) -> Json {
        document(self.into()).0
    }

    /// The document as pretty-printed JSON text, to save and `weft run`.
    pub fn to_document_string(&self) -> String {
        document_string(self.into())
    }

    /// Writes the document and loads it: the checked flow, or every diagnostic.
    pub fn build(&self) -> Result<Flow, Diagnostics> {
        build(self.into())
    }
}

/// Builds a `Swarm` (AGENTS.md 3): the first agent talks to the user; each relationship
/// `(caller, recipient)` lets the caller send the recipient messages (and, unless the handoff
/// mode is [`Handoff::Never`], hand it the conversation). See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct SwarmBuilder {
    name: String,
    description: Option<String>,
    first: String,
    agents: IndexMap<String, AgentBuilder>,
    relationships: Vec<(String, String)>,
    handoff: Handoff,
    problems: Vec<Diagnostic>,
}

impl SwarmBuilder {
    /// A Swarm named `name` (also its id) whose first agent, the one the user talks to first,
    /// is `first`; the handoff mode is [`Handoff::Optional`], WayFlow's default.
    pub fn new(name: impl Into<String>, first: &AgentBuilder) -> SwarmBuilder {
        let mut agents = IndexMap::new();
        agents.insert(first.name.clone(), first.clone());
        SwarmBuilder {
            name: name.into(),
            description: None,
            first: first.name.clone(),
            agents,
            relationships: Vec::new(),
            handoff: Handoff::Optional,
            problems: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(&mut self, text: impl Into<String>) -> &mut SwarmBuilder {
        self.description = Some(text.into());
        self
    }

    /// Lets `caller` talk to `recipient` (one direction; add the reverse for both).
    pub fn relationship(&mut self, caller: &AgentBuilder, recipient: &AgentBuilder) -> &mut SwarmBuilder {
        for agent in [caller, recipient] {
            self.add_agent(agent);
        }
        self.relationships.push((caller.name.clone(), recipient.name.clone()));
        self
    }

    /// Sets the handoff mode.
    pub fn handoff(&mut self, mode: Handoff) -> &mut SwarmBuilder {
        self.handoff = mode;
        self
    }

    fn add_agent(&mut self, agent: &AgentBuilder) {
        match self.agents.get(&agent.name) {
            None => {
                self.agents.insert(agent.name.clone(), agent.clone());
            }
            Some(known) => {
                let mut a = (IndexMap::new(), Vec::new());
                let mut b = (IndexMap::new(), Vec::new());
                if known.component(&mut a.0, &mut a.1) != agent.component(&mut b.0, &mut b.1) {
                    self.problems
                        .push(conflict(&agent.name).hint("give each agent of a Swarm its own name: the builder uses it as the id"));
                }
            }
        }
    }

    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) -> Json {
        problems.extend(self.problems.iter().cloned());
        let mut refs: Map<String, Json> = Map::new();
        for (name, agent) in &self.agents {
            refs.insert(name.clone(), agent.reference(shared, problems));
        }
        let mut c = header("Swarm", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), json!([]));
        c.insert("outputs".into(), json!([]));
        c.insert("first_agent".into(), refs.get(&self.first).cloned().unwrap_or(Json::Null));
        let pairs: Vec<Json> = self.relationships.iter().map(|(a, b)| json!([refs[a], refs[b]])).collect();
        c.insert("relationships".into(), Json::Array(pairs));
        c.insert("handoff".into(), json!(self.handoff.as_str()));
        Json::Object(c)
    }

    /// The Agent Spec document whose root is this Swarm.
    pub fn to_json(&self) -> Json {
        document(self.into()).0
    }

    /// The document as pretty-printed JSON text, to save and `weft run`.
    pub fn to_document_string(&self) -> String {
        document_string(self.into())
    }

    /// Writes the document and loads it: the checked flow, or every diagnostic.
    pub fn build(&self) -> Result<Flow, Diagnostics> {
        build(self.into())
    }
}

/// Builds a `ManagerWorkers` (AGENTS.md 4): the manager talks to the user and sends tasks to
/// the workers, whose answers come back to it. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ManagerWorkersBuilder {
    name: String,
    description: Option<String>,
    manager: AgentBuilder,
    workers: Vec<AgentBuilder>,
}

impl ManagerWorkersBuilder {
    /// A ManagerWorkers named `name` (also its id): `manager` delegates to `workers`.
    pub fn new(name: impl Into<String>, manager: &AgentBuilder, workers: &[&AgentBuilder]) -> ManagerWorkersBuilder {
        ManagerWorkersBuilder {
            name: name.into(),
            description: None,
            manager: manager.clone(),
            workers: workers.iter().map(|w| (*w).clone()).collect(),
        }
    }

    /// Sets the description.
    pub fn description(&mut self, text: impl Into<String>) -> &mut ManagerWorkersBuilder {
        self.description = Some(text.into());
        self
    }

    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) -> Json {
        let mut c = header("ManagerWorkers", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), json!([]));
        c.insert("outputs".into(), json!([]));
        c.insert("group_manager".into(), self.manager.reference(shared, problems));
        let workers: Vec<Json> = self.workers.iter().map(|w| w.reference(shared, problems)).collect();
        c.insert("workers".into(), Json::Array(workers));
        Json::Object(c)
    }

    /// The Agent Spec document whose root is this ManagerWorkers.
    pub fn to_json(&self) -> Json {
        document(self.into()).0
    }

    /// The document as pretty-printed JSON text, to save and `weft run`.
    pub fn to_document_string(&self) -> String {
        document_string(self.into())
    }

    /// Writes the document and loads it: the checked flow, or every diagnostic.
    pub fn build(&self) -> Result<Flow, Diagnostics> {
        build(self.into())
    }
}

/// What an `AgentNode` runs: an agent, a Swarm or a ManagerWorkers being built.
#[derive(Debug, Clone, Copy)]
pub enum Agentic<'a> {
    /// An agent.
    Agent(&'a AgentBuilder),
    /// A Swarm.
    Swarm(&'a SwarmBuilder),
    /// A ManagerWorkers.
    ManagerWorkers(&'a ManagerWorkersBuilder),
}

impl<'a> From<&'a AgentBuilder> for Agentic<'a> {
    fn from(a: &'a AgentBuilder) -> Self {
        Agentic::Agent(a)
    }
}

impl<'a> From<&'a SwarmBuilder> for Agentic<'a> {
    fn from(s: &'a SwarmBuilder) -> Self {
        Agentic::Swarm(s)
    }
}

impl<'a> From<&'a ManagerWorkersBuilder> for Agentic<'a> {
    fn from(m: &'a ManagerWorkersBuilder) -> Self {
        Agentic::ManagerWorkers(m)
    }
}

impl Agentic<'_> {
    /// The component; LLM configs, tools and a group's agents go to `shared`.
    fn component(self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>) -> Json {
        match self {
            Agentic::Agent(a) => a.component(shared, problems),
            Agentic::Swarm(s) => s.component(shared, problems),
            Agentic::ManagerWorkers(m) => m.component(shared, problems),
        }
    }
}

/// `human_in_the_loop`, Swarm and ManagerWorkers all need agentspec_version 25.4.2.
const AGENTS_VERSION: Version = Version::V25_4_2;

fn document(root: Agentic<'_>) -> (Json, Vec<Diagnostic>) {
    let mut shared = IndexMap::new();
    let mut problems = Vec::new();
    let Json::Object(mut doc) = root.component(&mut shared, &mut problems) else { return (Json::Null, problems) };
    // The root's id is its name: a shared component of that name would be a second definition.
    let id = doc.get("id").and_then(Json::as_str).unwrap_or_default().to_owned();
    if shared.contains_key(&id) {
        problems.push(conflict(&id));
    }
    doc.insert("$referenced_components".into(), Json::Object(shared.into_iter().collect()));
    doc.insert("agentspec_version".into(), json!(AGENTS_VERSION.to_string()));
    (Json::Object(doc), problems)
}

fn document_string(root: Agentic<'_>) -> String {
    let mut s = serde_json::to_string_pretty(&document(root).0).unwrap_or_default();
    s.push('\n');
    s
}

fn build(root: Agentic<'_>) -> Result<Flow, Diagnostics> {
    let (doc, problems) = document(root);
    let loaded = Flow::from_json(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    match (problems.is_empty(), loaded) {
        (true, Ok(loaded)) => Ok(loaded.flow),
        (_, Err(Diagnostics(more))) => Err(Diagnostics(problems.into_iter().chain(more).collect())),
        (false, Ok(_)) => Err(Diagnostics(problems)),
    }
}

impl FlowBuilder {
    /// An `AgentNode` running `agent` (an [`AgentBuilder`], [`SwarmBuilder`] or
    /// [`ManagerWorkersBuilder`]); its inputs and outputs are the agent's. In a parallel map
    /// or parallel flows the agent must not ask the user
    /// ([`AgentBuilder::human_in_the_loop`]`(false)`), as WayFlow requires.
    pub fn agent<'a>(&mut self, name: &str, agent: impl Into<Agentic<'a>>) -> NodeId {
        let agent = agent.into();
        let mut n = FlowBuilder::node("AgentNode", name);
        // Inputs and outputs are inferred by the loader from the agent.
        n.branches = None;
        let component = agent.component(&mut self.shared, &mut self.problems);
        n.fields.insert("agent".into(), component);
        self.version = self.version.max(AGENTS_VERSION);
        self.add(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::builder::{Input, Output};

    fn llm() -> LlmConfig {
        LlmConfig::vllm("vllm-llama", "http://vllm.internal:8000", "meta-llama/Llama-3.1-8B-Instruct")
    }

    /// The arguments of a typed tool.
    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code, reason = "only its schema is used")]
    struct Lookup {
        /// The user's name
        username: String,
        /// How many entries, at most
        limit: Option<u32>,
    }

    #[test]
    fn a_typed_tool_declares_its_argument_fields_and_its_result() {
        let tool = ServerTool::typed::<Lookup, Vec<String>>("lookup_user", "Fetch a user's entries", "entries");
        let json = tool.to_json();
        assert_eq!(json["description"], "Fetch a user's entries");
        assert_eq!(json["inputs"][0], json!({"title": "username", "type": "string", "description": "The user's name"}));
        assert_eq!(json["inputs"][1]["title"], "limit");
        assert_eq!(json["outputs"], json!([{"title": "entries", "type": "array", "items": {"type": "string"}}]));
    }

    #[test]
    fn the_manager_workers_of_the_corpus_is_rebuilt() {
        // p_manager_workers.json: a triage manager, a billing worker and a tech worker with a tool.
        let profile = Output::new("profile", json!({"additionalProperties": {"type": "string"}, "properties": {}, "type": "object"}));
        let lookup =
            ServerTool::new("lookup_user", vec![Input::string("username")], vec![profile]).with_description("Fetch a user profile");
        let triage = AgentBuilder::new("triage", &llm(), "Route the request.").description("Routes requests");
        let billing = AgentBuilder::new("billing", &llm(), "Handle billing questions.").description("Billing expert");
        let tech = AgentBuilder::new("tech", &llm(), "Handle technical questions.").description("Technical expert").tool(&lookup);
        let team = ManagerWorkersBuilder::new("support_team", &triage, &[&billing, &tech]);
        let flow = team.build().unwrap();
        let model = flow.model();
        let group = model.group(flow.spec().root).unwrap();
        let names: Vec<&str> = group.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["triage", "billing", "tech"]);
        let doc = team.to_json();
        assert_eq!(doc["agentspec_version"], "25.4.2");
        assert_eq!(doc["workers"], json!([{"$component_ref": "billing"}, {"$component_ref": "tech"}]));
        assert_eq!(doc["$referenced_components"]["tech"]["tools"], json!([{"$component_ref": "lookup_user"}]));
        assert_eq!(doc["$referenced_components"]["lookup_user"]["description"], "Fetch a user profile");
    }

    #[test]
    fn an_agent_node_takes_the_agents_inputs_and_typed_outputs() {
        #[derive(JsonSchema)]
        #[allow(dead_code, reason = "only its schema is used")]
        struct Verdict {
            /// Whether the text is fine
            ok: bool,
            /// Why
            reason: String,
        }
        let judge = AgentBuilder::new("judge", &llm(), "Judge {{text}} for {{audience}}.").outputs_of::<Verdict>().human_in_the_loop(false);
        let mut b = FlowBuilder::new("judging");
        let start = b.start(&[Input::string("text"), Input::string("audience")]);
        let node = b.agent("judge", &judge);
        let end = b.end("end", &[Output::boolean("ok")]);
        b.edge(start, node);
        b.edge(node, end);
        b.data(start, "text", node, "text");
        b.data(start, "audience", node, "audience");
        b.data(node, "ok", end, "ok");
        let flow = b.build().unwrap_or_else(|d| panic!("{d:?}"));
        let spec = flow.spec();
        let c = spec.components.iter().position(|c| c.name == "judge" && c.ty.name == "AgentNode").unwrap();
        let io = flow.io(c);
        let titles = |ps: &[weft_spec::Property]| ps.iter().map(|p| p.title().to_owned()).collect::<Vec<_>>();
        assert_eq!(titles(&io.inputs), ["text", "audience"]);
        assert_eq!(titles(&io.outputs), ["ok", "reason"]);
    }

    #[test]
    fn mistakes_are_reported_as_diagnostics() {
        // Two different agents named `expert` in one Swarm.
        let front = AgentBuilder::new("front", &llm(), "Greet.").description("Front");
        let one = AgentBuilder::new("expert", &llm(), "One.").description("One");
        let other = AgentBuilder::new("expert", &llm(), "Other.").description("Other");
        let mut swarm = SwarmBuilder::new("desk", &front);
        swarm.relationship(&front, &one).relationship(&front, &other);
        let problems = swarm.build().unwrap_err().0;
        assert!(problems[0].message.contains("two different components have the id `expert`"), "{problems:?}");

        // Typed outputs that are not a struct.
        let agent = AgentBuilder::new("counter", &llm(), "Count.").outputs_of::<Vec<u32>>();
        let problems = agent.build().unwrap_err().0;
        assert!(problems[0].message.contains("not a struct with named fields"), "{problems:?}");

        // An agent named as its own LLM config.
        let named = AgentBuilder::new("vllm-llama", &llm(), "Hi.");
        let problems = named.build().unwrap_err().0;
        assert!(problems[0].message.contains("two different components have the id `vllm-llama`"), "{problems:?}");

        // WayFlow's rule, the loader's: a Swarm recipient needs a description.
        let silent = AgentBuilder::new("silent", &llm(), "Shh.");
        let mut swarm = SwarmBuilder::new("desk", &front);
        swarm.relationship(&front, &silent);
        assert!(swarm.build().is_err());
    }
}
