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

/// The methods every agent builder shares: its document as JSON and as text, and the document
/// loaded (`$root` names the root in their docs).
macro_rules! document_methods {
    ($root:literal) => {
        #[doc = concat!("The Agent Spec document whose root is this ", $root, ".")]
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
    };
}

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
    extended: Extended,
    problems: Vec<Diagnostic>,
}

/// What only an `ExtendedAgent` (WayFlow's AgentPlugin) holds; any of it set makes the agent
/// one, else it is written as a core `Agent`.
#[derive(Debug, Clone, Default)]
struct Extended {
    max_iterations: Option<u64>,
    initial_message: Option<String>,
    can_finish_conversation: Option<bool>,
    raise_exceptions: Option<bool>,
    strict_output_validation: Option<bool>,
    agents: Vec<AgentBuilder>,
    flows: Vec<FlowBuilder>,
}

impl Extended {
    fn is_set(&self) -> bool {
        let Extended {
            max_iterations,
            initial_message,
            can_finish_conversation,
            raise_exceptions,
            strict_output_validation,
            agents,
            flows,
        } = self;
        max_iterations.is_some()
            || initial_message.is_some()
            || can_finish_conversation.is_some()
            || raise_exceptions.is_some()
            || strict_output_validation.is_some()
            || !agents.is_empty()
            || !flows.is_empty()
    }
}

/// The plugin an `ExtendedAgent` belongs to, as WayFlow 26.3.1 writes it.
const AGENT_PLUGIN: (&str, &str) = ("AgentPlugin", "26.3.1");

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
            extended: Extended::default(),
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
            None => self.problems.push(not_a_struct::<T>("agent", &self.name)),
        }
        self
    }

    /// Whether the agent may ask the user (`true` by default). An agent that may not answers
    /// its caller by itself: what worker agents in a parallel map must be.
    pub fn human_in_the_loop(mut self, allowed: bool) -> AgentBuilder {
        self.human_in_the_loop = allowed;
        self
    }

    /// LLM calls per user turn (10 unless set); the last one offers only the built-in tools.
    /// An `ExtendedAgent` field, like the setters below: setting any of them writes the agent
    /// as WayFlow's `ExtendedAgent`, the others at their defaults (the agent is otherwise
    /// written as a core `Agent`).
    pub fn max_iterations(mut self, n: u64) -> AgentBuilder {
        self.extended.max_iterations = Some(n);
        self
    }

    /// The message the agent posts first, without an LLM call, when the conversation has no
    /// user message yet (none unless set: the model then speaks first, as for a core
    /// `Agent`). WayFlow refuses it on an agent that may not ask the user.
    pub fn initial_message(mut self, text: impl Into<String>) -> AgentBuilder {
        self.extended.initial_message = Some(text.into());
        self
    }

    /// Whether the agent may end the conversation (the `end_conversation` tool; `false`
    /// unless set).
    pub fn can_finish_conversation(mut self, allowed: bool) -> AgentBuilder {
        self.extended.can_finish_conversation = Some(allowed);
        self
    }

    /// Whether a failing tool, flow or sub-agent fails the agent instead of going back to the
    /// model as the call's result (`false` unless set).
    pub fn raise_exceptions(mut self, raise: bool) -> AgentBuilder {
        self.extended.raise_exceptions = Some(raise);
        self
    }

    /// Whether `submit_result` is checked as the model wrote it, without coercion (`false`
    /// unless set).
    pub fn strict_output_validation(mut self, strict: bool) -> AgentBuilder {
        self.extended.strict_output_validation = Some(strict);
        self
    }

    /// Adds an agent this one calls as a tool (`agents`): the tool is named after it, takes
    /// the request as `context` and its inputs (each needs a description), and answers with
    /// its last message.
    pub fn agent_tool(mut self, agent: &AgentBuilder) -> AgentBuilder {
        self.extended.agents.push(agent.clone());
        self
    }

    /// Adds a flow this one calls as a tool (`flows`): the tool is named after the flow,
    /// takes its inputs and answers with its output (an object of them when it has several).
    pub fn flow_tool(mut self, flow: &FlowBuilder) -> AgentBuilder {
        self.extended.flows.push(flow.clone());
        self
    }

    /// The name (also the id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The inputs as written: the declared ones, or the prompt's placeholders.
    fn input_props(&self) -> Vec<Json> {
        match &self.inputs {
            Some(inputs) => inputs.iter().map(Property::to_json).collect(),
            None => placeholders(&self.system_prompt).iter().map(|n| json!({"title": n, "type": "string"})).collect(),
        }
    }

    /// The `Agent` (or `ExtendedAgent`) component; its LLM config, tools and sub-agents go to
    /// `shared`; `version` is raised to what its flows need.
    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        problems.extend(self.problems.iter().cloned());
        let extended = self.extended.is_set();
        let mut c = header(if extended { "ExtendedAgent" } else { "Agent" }, &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), Json::Array(self.input_props()));
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
        if extended {
            self.extended_fields(&mut c, shared, problems, version);
        }
        Json::Object(c)
    }

    /// The fields only an `ExtendedAgent` has, in pyagentspec's order, unset ones at their
    /// defaults (`initial_message`: null, no message, where pyagentspec's default `"N/A"` makes
    /// WayFlow greet with its own).
    fn extended_fields(
        &self,
        c: &mut Map<String, Json>,
        shared: &mut IndexMap<String, Json>,
        problems: &mut Vec<Diagnostic>,
        version: &mut Version,
    ) {
        let x = &self.extended;
        if x.initial_message.is_some() && !self.human_in_the_loop {
            problems.push(
                Diagnostic::new(
                    Code::BadValue,
                    "",
                    format!("agent `{}` has an initial message but may not ask the user (`human_in_the_loop(false)`)", self.name),
                )
                .hint("WayFlow refuses an initial message on such an agent: remove `initial_message`"),
            );
        }
        let agents: Vec<Json> = x.agents.iter().map(|a| a.reference(shared, problems, version)).collect();
        let flows: Vec<Json> =
            x.flows.iter().map(|f| Json::Object(f.render(&format!("{}.{}", self.name, f.name), shared, problems, version))).collect();
        c.insert("transforms".into(), json!([]));
        c.insert("context_providers".into(), Json::Null);
        c.insert("can_finish_conversation".into(), json!(x.can_finish_conversation.unwrap_or(false)));
        c.insert("raise_exceptions".into(), json!(x.raise_exceptions.unwrap_or(false)));
        c.insert("max_iterations".into(), json!(x.max_iterations.unwrap_or(crate::node::agent::DEFAULT_MAX_ITERATIONS)));
        c.insert("initial_message".into(), x.initial_message.as_ref().map_or(Json::Null, |m| json!(m)));
        c.insert("caller_input_mode".into(), json!(if self.human_in_the_loop { "always" } else { "never" }));
        c.insert("strict_output_validation".into(), json!(x.strict_output_validation.unwrap_or(false)));
        c.insert("agents".into(), Json::Array(agents));
        c.insert("flows".into(), Json::Array(flows));
        c.insert("agent_template".into(), Json::Null);
        c.insert("component_plugin_name".into(), json!(AGENT_PLUGIN.0));
        c.insert("component_plugin_version".into(), json!(AGENT_PLUGIN.1));
    }

    /// A reference to the agent, its component added to `shared` (a group names each agent
    /// several times).
    fn reference(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        let c = self.component(shared, problems, version);
        merge_shared(shared, problems, &self.name, c);
        json!({"$component_ref": self.name})
    }

    document_methods!("agent");
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
    outputs: Vec<Property>,
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
            outputs: Vec::new(),
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

    /// Sets the outputs: the agent talking to the user submits them with `submit_result`,
    /// which ends the Swarm (in an `AgentNode`, the node's outputs).
    pub fn outputs(&mut self, outputs: &[Property]) -> &mut SwarmBuilder {
        self.outputs = outputs.to_vec();
        self
    }

    /// One output per field of the struct `T` (read them back with
    /// [`typed_outputs`](super::typed_outputs)). `T` must be a struct with named fields.
    pub fn outputs_of<T: JsonSchema>(&mut self) -> &mut SwarmBuilder {
        match Property::fields_of::<T>() {
            Some(fields) => self.outputs = fields,
            None => self.problems.push(not_a_struct::<T>("Swarm", &self.name)),
        }
        self
    }

    fn add_agent(&mut self, agent: &AgentBuilder) {
        match self.agents.get(&agent.name) {
            None => {
                self.agents.insert(agent.name.clone(), agent.clone());
            }
            Some(known) => {
                let mut a = (IndexMap::new(), Vec::new(), AGENTS_VERSION);
                let mut b = (IndexMap::new(), Vec::new(), AGENTS_VERSION);
                if known.component(&mut a.0, &mut a.1, &mut a.2) != agent.component(&mut b.0, &mut b.1, &mut b.2) {
                    self.problems
                        .push(conflict(&agent.name).hint("give each agent of a Swarm its own name: the builder uses it as the id"));
                }
            }
        }
    }

    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        problems.extend(self.problems.iter().cloned());
        let mut refs: Map<String, Json> = Map::new();
        for (name, agent) in &self.agents {
            refs.insert(name.clone(), agent.reference(shared, problems, version));
        }
        let mut c = header("Swarm", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), json!([]));
        c.insert("outputs".into(), props(&self.outputs));
        c.insert("first_agent".into(), refs.get(&self.first).cloned().unwrap_or(Json::Null));
        let pairs: Vec<Json> = self.relationships.iter().map(|(a, b)| json!([refs[a], refs[b]])).collect();
        c.insert("relationships".into(), Json::Array(pairs));
        c.insert("handoff".into(), json!(self.handoff.as_str()));
        Json::Object(c)
    }

    document_methods!("Swarm");
}

/// Builds a `ManagerWorkers` (AGENTS.md 4): the manager talks to the user and sends tasks to
/// the workers, whose answers come back to it. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct ManagerWorkersBuilder {
    name: String,
    description: Option<String>,
    manager: AgentBuilder,
    workers: Vec<AgentBuilder>,
    outputs: Vec<Property>,
    problems: Vec<Diagnostic>,
}

impl ManagerWorkersBuilder {
    /// A ManagerWorkers named `name` (also its id): `manager` delegates to `workers`.
    pub fn new(name: impl Into<String>, manager: &AgentBuilder, workers: &[&AgentBuilder]) -> ManagerWorkersBuilder {
        ManagerWorkersBuilder {
            name: name.into(),
            description: None,
            manager: manager.clone(),
            workers: workers.iter().map(|w| (*w).clone()).collect(),
            outputs: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(&mut self, text: impl Into<String>) -> &mut ManagerWorkersBuilder {
        self.description = Some(text.into());
        self
    }

    /// Sets the outputs: the manager submits them with `submit_result`, which ends the group
    /// (in an `AgentNode`, the node's outputs).
    pub fn outputs(&mut self, outputs: &[Property]) -> &mut ManagerWorkersBuilder {
        self.outputs = outputs.to_vec();
        self
    }

    /// One output per field of the struct `T` (read them back with
    /// [`typed_outputs`](super::typed_outputs)). `T` must be a struct with named fields.
    pub fn outputs_of<T: JsonSchema>(&mut self) -> &mut ManagerWorkersBuilder {
        match Property::fields_of::<T>() {
            Some(fields) => self.outputs = fields,
            None => self.problems.push(not_a_struct::<T>("ManagerWorkers", &self.name)),
        }
        self
    }

    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        problems.extend(self.problems.iter().cloned());
        let mut c = header("ManagerWorkers", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), json!([]));
        c.insert("outputs".into(), props(&self.outputs));
        c.insert("group_manager".into(), self.manager.reference(shared, problems, version));
        let workers: Vec<Json> = self.workers.iter().map(|w| w.reference(shared, problems, version)).collect();
        c.insert("workers".into(), Json::Array(workers));
        Json::Object(c)
    }

    document_methods!("ManagerWorkers");
}

/// Builds a `SpecializedAgent` (AGENTS.md 5): a base agent refined with additional
/// instructions and tools, and possibly another `human_in_the_loop`. WayFlow does not run it
/// (nor load it); Weft runs it as the base agent with the system prompt
/// `base + "\n\n" + additional_instructions` (both rendered with the specialized agent's
/// inputs), the tools `base tools + additional tools` (a name used twice is a load error) and
/// the mode set here, else the base agent's.
///
/// ```
/// use weft_flow::builder::{AgentBuilder, LlmConfig, SpecializedAgentBuilder};
///
/// let llm = LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "qwen3");
/// let analyst = AgentBuilder::new("analyst", &llm, "You analyse data.");
/// let finance = SpecializedAgentBuilder::new("finance_analyst", &analyst)
///     .additional_instructions("Focus on {{market}} markets.")
///     .human_in_the_loop(false);
/// let flow = finance.build().expect("a valid specialized agent");
/// let inputs: Vec<&str> = flow.io(flow.spec().root).inputs.iter().map(|p| p.title()).collect();
/// assert_eq!(inputs, ["market"]);
/// ```
#[derive(Debug, Clone)]
pub struct SpecializedAgentBuilder {
    name: String,
    description: Option<String>,
    base: AgentBuilder,
    additional_instructions: Option<String>,
    additional_tools: Vec<ServerTool>,
    human_in_the_loop: Option<bool>,
}

impl SpecializedAgentBuilder {
    /// A SpecializedAgent named `name` (also its id) refining `base`; its parameters
    /// (`AgentSpecializationParameters`) are named `<name>_specialization`.
    pub fn new(name: impl Into<String>, base: &AgentBuilder) -> SpecializedAgentBuilder {
        SpecializedAgentBuilder {
            name: name.into(),
            description: None,
            base: base.clone(),
            additional_instructions: None,
            additional_tools: Vec::new(),
            human_in_the_loop: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> SpecializedAgentBuilder {
        self.description = Some(text.into());
        self
    }

    /// Instructions appended to the base agent's system prompt; their `{{ placeholders }}`
    /// are inputs of the specialized agent (strings).
    pub fn additional_instructions(mut self, text: impl Into<String>) -> SpecializedAgentBuilder {
        self.additional_instructions = Some(text.into());
        self
    }

    /// Adds a tool to the base agent's.
    pub fn tool(mut self, tool: &ServerTool) -> SpecializedAgentBuilder {
        self.additional_tools.push(tool.clone());
        self
    }

    /// Whether the agent may ask the user, instead of the base agent's setting.
    pub fn human_in_the_loop(mut self, allowed: bool) -> SpecializedAgentBuilder {
        self.human_in_the_loop = Some(allowed);
        self
    }

    /// The name (also the id).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn component(&self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        let own: Vec<Json> = self
            .additional_instructions
            .as_deref()
            .map(|text| placeholders(text).iter().map(|n| json!({"title": n, "type": "string"})).collect())
            .unwrap_or_default();
        // The union of the base agent's inputs and the parameters', deduplicated.
        let mut inputs = self.base.input_props();
        for p in &own {
            if !inputs.contains(p) {
                inputs.push(p.clone());
            }
        }
        let mut c = header("SpecializedAgent", &self.name, &self.name, self.description.as_deref());
        c.insert("inputs".into(), Json::Array(inputs));
        c.insert("outputs".into(), props(&self.base.outputs));
        c.insert("agent".into(), self.base.reference(shared, problems, version));
        let id = format!("{}_specialization", self.name);
        let mut params = header("AgentSpecializationParameters", &id, &id, None);
        params.insert("inputs".into(), Json::Array(own));
        params.insert("outputs".into(), json!([]));
        params.insert("additional_instructions".into(), self.additional_instructions.as_ref().map_or(Json::Null, |t| json!(t)));
        let tools: Vec<Json> = self
            .additional_tools
            .iter()
            .map(|t| {
                merge_shared(shared, problems, &t.name, t.to_json());
                json!({"$component_ref": t.name})
            })
            .collect();
        params.insert("additional_tools".into(), Json::Array(tools));
        params.insert("human_in_the_loop".into(), self.human_in_the_loop.map_or(Json::Null, Json::Bool));
        c.insert("agent_specialization_parameters".into(), Json::Object(params));
        Json::Object(c)
    }

    document_methods!("SpecializedAgent");
}

/// What an `AgentNode` runs: an agent, a SpecializedAgent, a Swarm or a ManagerWorkers being
/// built.
#[derive(Debug, Clone, Copy)]
pub enum Agentic<'a> {
    /// An agent.
    Agent(&'a AgentBuilder),
    /// A Swarm.
    Swarm(&'a SwarmBuilder),
    /// A ManagerWorkers.
    ManagerWorkers(&'a ManagerWorkersBuilder),
    /// A SpecializedAgent.
    Specialized(&'a SpecializedAgentBuilder),
}

impl<'a> From<&'a SpecializedAgentBuilder> for Agentic<'a> {
    fn from(s: &'a SpecializedAgentBuilder) -> Self {
        Agentic::Specialized(s)
    }
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
    /// The component; LLM configs, tools and a group's agents go to `shared`; `version` is
    /// raised to what it needs.
    fn component(self, shared: &mut IndexMap<String, Json>, problems: &mut Vec<Diagnostic>, version: &mut Version) -> Json {
        match self {
            Agentic::Agent(a) => a.component(shared, problems, version),
            Agentic::Swarm(s) => s.component(shared, problems, version),
            Agentic::ManagerWorkers(m) => m.component(shared, problems, version),
            Agentic::Specialized(s) => s.component(shared, problems, version),
        }
    }
}

/// Typed outputs from a type that is not a struct with named fields.
fn not_a_struct<T: JsonSchema>(what: &str, name: &str) -> Diagnostic {
    Diagnostic::new(
        Code::BadValue,
        "",
        format!("the outputs of {what} `{name}` come from `{}`, which is not a struct with named fields", T::schema_name()),
    )
    .hint("use a struct, or `outputs` with `Property::of::<T>(title)`")
}

/// `human_in_the_loop`, Swarm and ManagerWorkers all need agentspec_version 25.4.2.
const AGENTS_VERSION: Version = Version::V25_4_2;

fn document(root: Agentic<'_>) -> (Json, Vec<Diagnostic>) {
    let mut shared = IndexMap::new();
    let mut problems = Vec::new();
    let mut version = AGENTS_VERSION;
    let Json::Object(mut doc) = root.component(&mut shared, &mut problems, &mut version) else { return (Json::Null, problems) };
    // The root's id is its name: a shared component of that name would be a second definition.
    let id = doc.get("id").and_then(Json::as_str).unwrap_or_default().to_owned();
    if shared.contains_key(&id) {
        problems.push(conflict(&id));
    }
    doc.insert("$referenced_components".into(), Json::Object(shared.into_iter().collect()));
    doc.insert("agentspec_version".into(), json!(version.to_string()));
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
    /// An `AgentNode` running `agent` (an [`AgentBuilder`], [`SpecializedAgentBuilder`],
    /// [`SwarmBuilder`] or [`ManagerWorkersBuilder`]); its inputs and outputs are the agent's. In a parallel map
    /// or parallel flows the agent must not ask the user
    /// ([`AgentBuilder::human_in_the_loop`]`(false)`), as WayFlow requires.
    pub fn agent<'a>(&mut self, name: &str, agent: impl Into<Agentic<'a>>) -> NodeId {
        let agent = agent.into();
        let mut n = FlowBuilder::node("AgentNode", name);
        // Inputs and outputs are inferred by the loader from the agent.
        n.branches = None;
        let mut version = AGENTS_VERSION;
        let component = agent.component(&mut self.shared, &mut self.problems, &mut version);
        n.fields.insert("agent".into(), component);
        self.version = self.version.max(version);
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

    #[test]
    fn an_agent_is_an_extended_agent_only_when_an_extended_field_is_set() {
        let plain = AgentBuilder::new("helper", &llm(), "Help.").to_json();
        assert_eq!(plain["component_type"], "Agent");
        assert!(plain.get("max_iterations").is_none() && plain.get("component_plugin_name").is_none());

        let agent = AgentBuilder::new("helper", &llm(), "Help.")
            .max_iterations(3)
            .can_finish_conversation(true)
            .raise_exceptions(true)
            .strict_output_validation(true);
        let doc = agent.to_json();
        assert_eq!(doc["component_type"], "ExtendedAgent");
        let keys: Vec<&str> = doc.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "component_type",
                "id",
                "name",
                "description",
                "metadata",
                "inputs",
                "outputs",
                "llm_config",
                "system_prompt",
                "tools",
                "toolboxes",
                "human_in_the_loop",
                "transforms",
                "context_providers",
                "can_finish_conversation",
                "raise_exceptions",
                "max_iterations",
                "initial_message",
                "caller_input_mode",
                "strict_output_validation",
                "agents",
                "flows",
                "agent_template",
                "component_plugin_name",
                "component_plugin_version",
                "$referenced_components",
                "agentspec_version"
            ]
        );
        assert_eq!(doc["component_plugin_name"], "AgentPlugin");
        assert_eq!(doc["initial_message"], Json::Null);
        let flow = agent.build().unwrap_or_else(|d| panic!("{d:?}"));
        let model = flow.model();
        let a = model.agent(flow.spec().root).unwrap();
        assert_eq!(a.max_iterations, 3);
        assert!(a.can_finish_conversation && a.raise_exceptions && a.strict_output_validation);
        assert_eq!(a.initial_message, None, "null is no initial message, as in WayFlow");

        let greeting = AgentBuilder::new("helper", &llm(), "Help.").initial_message("Hello! Ask me anything.").build().unwrap();
        let model = greeting.model();
        assert_eq!(model.agent(greeting.spec().root).unwrap().initial_message.as_deref(), Some("Hello! Ask me anything."));
        assert!(!model.agent(greeting.spec().root).unwrap().raise_exceptions);
    }

    #[test]
    fn an_extended_agent_calls_agents_and_flows_as_tools() {
        let translator = AgentBuilder::new("translator", &llm(), "You translate {{text}}.")
            .description("Translates text to French")
            .inputs(&[Input::string("text").description("The text to translate")]);
        let mut shout = FlowBuilder::new("shout");
        shout.description("Upper-cases a text");
        let start = shout.start(&[Input::string("text")]);
        let upper = shout.template("upper", "{{ text | upper }}");
        let end = shout.end("end", &[Output::string("loud")]);
        shout.edge(start, upper);
        shout.edge(upper, end);
        shout.data(start, "text", upper, "text");
        shout.data(upper, "output", end, "loud");
        let boss = AgentBuilder::new("boss", &llm(), "Delegate.").agent_tool(&translator).flow_tool(&shout);
        let flow = boss.build().unwrap_or_else(|d| panic!("{d:?}"));
        let model = flow.model();
        let a = model.agent(flow.spec().root).unwrap();
        assert_eq!(a.agents.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["translator"]);
        assert_eq!(
            a.flows.iter().map(|f| (f.name.as_str(), f.description.as_str())).collect::<Vec<_>>(),
            [("shout", "Upper-cases a text")]
        );
        let doc = boss.to_json();
        assert_eq!(doc["agents"], json!([{"$component_ref": "translator"}]));
        assert_eq!(doc["flows"][0]["id"], "boss.shout");

        // WayFlow's rule, the loader's: an agent called as a tool describes each input.
        let bare = AgentBuilder::new("translator", &llm(), "You translate {{text}}.").description("Translates");
        assert!(AgentBuilder::new("boss", &llm(), "Delegate.").agent_tool(&bare).build().is_err());
        // WayFlow refuses an initial message on an agent that may not ask the user.
        let problems = AgentBuilder::new("quiet", &llm(), "Work.").initial_message("Hi").human_in_the_loop(false).build().unwrap_err().0;
        assert!(problems[0].message.contains("has an initial message but may not ask the user"), "{problems:?}");
    }

    #[test]
    fn a_specialized_agent_is_its_base_with_instructions_tools_and_mode_merged() {
        let lookup = ServerTool::new("lookup", vec![Input::string("query")], vec![Output::string("answer")]).with_description("Look it up");
        let quotes = ServerTool::new("quotes", vec![Input::string("symbol")], vec![Output::number("price")]).with_description("A price");
        let analyst = AgentBuilder::new("analyst", &llm(), "You analyse {{dataset}}.").tool(&lookup);
        let finance = SpecializedAgentBuilder::new("finance_analyst", &analyst)
            .description("Analyses markets")
            .additional_instructions("Focus on {{market}} markets.")
            .tool(&quotes)
            .human_in_the_loop(false);
        let doc = finance.to_json();
        assert_eq!(doc["component_type"], "SpecializedAgent");
        assert_eq!(doc["inputs"], json!([{"title": "dataset", "type": "string"}, {"title": "market", "type": "string"}]));
        let params = &doc["agent_specialization_parameters"];
        assert_eq!(params["component_type"], "AgentSpecializationParameters");
        assert_eq!(params["inputs"], json!([{"title": "market", "type": "string"}]));
        assert_eq!(params["additional_tools"], json!([{"$component_ref": "quotes"}]));
        assert_eq!(params["human_in_the_loop"], json!(false));
        let flow = finance.build().unwrap_or_else(|d| panic!("{d:?}"));
        let model = flow.model();
        let a = model.agent(flow.spec().root).unwrap();
        assert_eq!(a.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["lookup", "quotes"]);
        assert!(!a.human_in_the_loop);
        // Unset, the mode is the base agent's.
        assert_eq!(
            SpecializedAgentBuilder::new("s", &analyst).to_json()["agent_specialization_parameters"]["human_in_the_loop"],
            Json::Null
        );
        let plain = SpecializedAgentBuilder::new("s", &analyst).build().unwrap();
        assert!(plain.model().agent(plain.spec().root).unwrap().human_in_the_loop);

        // In a flow, as an AgentNode: its inputs are the union.
        let mut b = FlowBuilder::new("analysis");
        let start = b.start(&[Input::string("dataset"), Input::string("market")]);
        let node = b.agent("analyse", &finance);
        let end = b.end("end", &[]);
        b.edge(start, node);
        b.edge(node, end);
        b.data(start, "dataset", node, "dataset");
        b.data(start, "market", node, "market");
        let flow = b.build().unwrap_or_else(|d| panic!("{d:?}"));
        let c = flow.spec().components.iter().position(|c| c.name == "analyse").unwrap();
        let titles: Vec<String> = flow.io(c).inputs.iter().map(|p| p.title().to_owned()).collect();
        assert_eq!(titles, ["dataset", "market"]);

        // A tool of the base agent's name again is the loader's error.
        let twice = SpecializedAgentBuilder::new("twice", &analyst).tool(&lookup.clone().with_description("Another lookup"));
        assert!(twice.build().is_err());
    }

    #[test]
    fn a_group_declares_the_outputs_its_node_gives() {
        #[derive(JsonSchema)]
        #[allow(dead_code, reason = "only its schema is used")]
        struct Answer {
            /// The answer
            answer: String,
        }
        let front = AgentBuilder::new("front", &llm(), "Greet.").description("Front");
        let expert = AgentBuilder::new("expert", &llm(), "Answer.").description("Expert");
        let mut swarm = SwarmBuilder::new("desk", &front);
        swarm.relationship(&front, &expert).outputs_of::<Answer>();
        let mut b = FlowBuilder::new("desk_flow");
        let start = b.start(&[]);
        let node = b.agent("desk", &swarm);
        let end = b.end("end", &[Output::string("answer")]);
        b.edge(start, node);
        b.edge(node, end);
        b.data(node, "answer", end, "answer");
        let flow = b.build().unwrap_or_else(|d| panic!("{d:?}"));
        let c = flow.spec().components.iter().position(|c| c.name == "desk" && c.ty.name == "AgentNode").unwrap();
        assert_eq!(flow.io(c).outputs.iter().map(|p| p.title().to_owned()).collect::<Vec<_>>(), ["answer"]);
        let problems = SwarmBuilder::new("desk", &front).outputs_of::<Vec<u8>>().build().unwrap_err().0;
        assert!(problems[0].message.contains("the outputs of Swarm `desk`"), "{problems:?}");

        // A ManagerWorkers: the manager submits the group's outputs.
        let mut team = ManagerWorkersBuilder::new("team", &front, &[&expert]);
        team.outputs_of::<Answer>();
        assert_eq!(team.to_json()["outputs"][0]["title"], "answer");
        let flow = team.build().unwrap_or_else(|d| panic!("{d:?}"));
        let model = flow.model();
        let group = model.group(flow.spec().root).unwrap();
        assert_eq!(group.outputs.iter().map(|p| p.title().to_owned()).collect::<Vec<_>>(), ["answer"]);
        let problems = ManagerWorkersBuilder::new("team", &front, &[&expert]).outputs_of::<u8>().build().unwrap_err().0;
        assert!(problems[0].message.contains("the outputs of ManagerWorkers `team`"), "{problems:?}");
    }
}
