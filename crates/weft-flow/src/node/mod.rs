//! The typed model of what Weft runs: every flow and every node a run can enter, lowered once
//! per document from its components into typed values (compiled templates and jq queries,
//! parsed reducers, branch names, worker counts, component references).
//!
//! Lowering is the only place that reads a runnable component's fields by name (through
//! [`Fields`], which checks each name against the type's catalogue row in debug builds). What
//! the document gets wrong is reported here as diagnostics with a pointer and a hint, so `weft
//! validate` rejects what `weft run` would refuse; what Weft cannot run yet is a `not_runnable`
//! warning, kept as a [`Blocker`] that the planner reports as "not supported yet".
//!
//! One module per family of node types; each holds the lowering of its types:
//! [`flow`] (flows, StartNode, EndNode, FlowNode), [`llm`] (LlmNode, ExtendedLlmNode, prompt
//! templates, output parsers), [`tool`] (ToolNode, ExtendedToolNode), [`branching`]
//! (BranchingNode), [`message`] (input and output messages, PluginTemplateNode, constants),
//! [`fanout`] (parallel flows and map nodes), [`http`] (ApiNode, and the RemoteTool requests
//! tool nodes and agents make).

pub mod a2a;
pub mod agent;
pub mod branching;
pub mod control;
pub mod data;
pub mod datastore;
pub mod fanout;
pub mod flow;
pub mod http;
pub mod llm;
pub mod mcp;
pub mod message;
pub mod tool;

pub use a2a::A2AAgent;
pub use agent::{AgentNode, AgentTool, FlowTool, GroupMember, GroupNode, Handoff, SubAgent, SummaryCache, Transform, TransformKind};
pub use branching::BranchingNode;
pub use control::{CAUGHT_BRANCH, CatchNode, CatchRule, ChoiceNode, DEFAULT_EXCEPTION_BRANCH, RetryNode};
pub use data::{ChatHistoryNode, ExtractNode, ExtractRepair, RegexNode, VariablesNode, WriteOp};
pub use datastore::{DatastoreAction, DatastoreNode, WhereEntry, WhereValue};
pub use fanout::{Collect, CoreInput, ExtendedItems, MapItems, MapNode, ParallelNode, Reducer};
pub use flow::{ContextProvider, ControlEdge, DataEdge, EndNode, FlowGraph, SubflowNode};
pub use http::{ApiNode, HttpCall, SensitiveHeaders, TemplatedJson};
pub use llm::{
    CHAT_HISTORY, CHAT_HISTORY_PLACEHOLDER, LlmNode, LlmPrompt, MessageRole, MessageTransform, PromptMessage, PromptMessages, TOOLS,
    TextPrompt,
};
pub use mcp::{McpFilter, McpSecretHeaders, McpTool, McpToolBox, McpToolSpec, McpTransport, McpTransportKind};
pub use message::{ConstantsNode, InputMessageNode, OutputMessageNode, TemplateNode};
pub use tool::{ToolKind, ToolNode};

use crate::check::Cx;
use crate::infer::Io;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;
use weft_spec::catalog::Support;
use weft_spec::{Code, CompId, Component, Spec, Value};

/// Branches or items run at once when a node does not say (WayFlow's default).
pub const DEFAULT_MAX_WORKERS: usize = 20;

/// What a node does, with everything it needs to run it, typed.
#[derive(Debug)]
pub enum NodeKind {
    /// StartNode.
    Start,
    /// EndNode.
    End(EndNode),
    /// LlmNode, ExtendedLlmNode.
    Llm(Box<LlmNode>),
    /// ToolNode, ExtendedToolNode.
    Tool(Box<ToolNode>),
    /// FlowNode.
    Subflow(SubflowNode),
    /// ParallelFlowNode, ExtendedParallelFlowNode.
    Parallel(ParallelNode),
    /// MapNode, ParallelMapNode, ExtendedMapNode, ExtendedParallelMapNode.
    Map(Box<MapNode>),
    /// BranchingNode.
    Branching(BranchingNode),
    /// InputMessageNode, PluginInputMessageNode.
    InputMessage(InputMessageNode),
    /// OutputMessageNode, PluginOutputMessageNode.
    OutputMessage(OutputMessageNode),
    /// PluginTemplateNode.
    Template(TemplateNode),
    /// PluginConstantValuesNode.
    Constants(ConstantsNode),
    /// AgentNode, ExtendedAgentNode.
    Agent(Box<AgentNode>),
    /// AgentNode, ExtendedAgentNode running an A2AAgent.
    A2A(Box<A2AAgent>),
    /// AgentNode, ExtendedAgentNode running a Swarm or a ManagerWorkers.
    Group(Box<GroupNode>),
    /// PluginRegexNode.
    Regex(Box<RegexNode>),
    /// PluginChoiceNode.
    Choice(Box<ChoiceNode>),
    /// PluginRetryNode.
    Retry(RetryNode),
    /// CatchExceptionNode, PluginCatchExceptionNode.
    Catch(CatchNode),
    /// PluginReadVariableNode, PluginWriteVariableNode, PluginVariableNode.
    Variables(VariablesNode),
    /// PluginExtractNode.
    Extract(Box<ExtractNode>),
    /// PluginGetChatHistoryNode.
    ChatHistory(Box<ChatHistoryNode>),
    /// PluginDatastoreCreateNode, ...ListNode, ...UpdateNode, ...DeleteNode.
    Datastore(Box<DatastoreNode>),
    /// ApiNode.
    Api(Box<ApiNode>),
}

/// A node: its kind and the renamings every node type may have.
#[derive(Debug)]
pub struct Node {
    /// What it does.
    pub kind: NodeKind,
    /// `input_mapping`: internal name to external title.
    pub input_mapping: Vec<(String, String)>,
    /// `output_mapping`: internal name to external title.
    pub output_mapping: Vec<(String, String)>,
}

impl Node {
    /// The internal name of an input's external title.
    pub fn internal_input(&self, external: &str) -> String {
        internal_name(&self.input_mapping, external)
    }

    /// The internal name of an output's external title.
    pub fn internal_output(&self, external: &str) -> String {
        internal_name(&self.output_mapping, external)
    }
}

/// Something in the document Weft cannot run yet: the planner refuses a run that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// JSON pointer of the component or field.
    pub pointer: String,
    /// What is not supported: `"ExtendedFlow with flow variables (`state`)"`.
    pub what: String,
    /// The component's name.
    pub name: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "not supported yet: {} at {at} (\"{}\")", self.what, self.name)
    }
}

/// The typed model of a document: its flows and nodes by component, and what blocks a run.
#[derive(Debug, Default)]
pub struct Model {
    flows: HashMap<CompId, FlowGraph>,
    nodes: HashMap<CompId, Node>,
    blockers: HashMap<CompId, Vec<Blocker>>,
    /// Document errors found while lowering, by the component they are about, as one line each
    /// (`<label> at <pointer>: <what is wrong>`).
    errors: HashMap<CompId, Vec<String>>,
    llm_configs: HashMap<CompId, weft_spec::LlmConfig>,
    /// The root of the document when it is an agent Weft runs.
    agents: HashMap<CompId, AgentNode>,
    /// The root of the document when it is an A2AAgent Weft runs.
    a2a_agents: HashMap<CompId, A2AAgent>,
    /// The root of the document when it is a Swarm or ManagerWorkers Weft runs.
    groups: HashMap<CompId, GroupNode>,
    /// What each context provider Weft runs gives (by provider component).
    providers: HashMap<CompId, ContextProvider>,
}

impl Model {
    /// The flow graph of a Flow or ExtendedFlow component.
    pub fn flow(&self, c: CompId) -> Option<&FlowGraph> {
        self.flows.get(&c)
    }

    /// The node a component lowers to, if it is a node Weft can run and the document got it
    /// right.
    pub fn node(&self, c: CompId) -> Option<&Node> {
        self.nodes.get(&c)
    }

    /// The agent at the root of the document (run as a flow of one node), if it is one Weft runs.
    pub fn agent(&self, c: CompId) -> Option<&AgentNode> {
        self.agents.get(&c)
    }

    /// The A2AAgent at the root of the document (run as a flow of one node), if Weft runs it.
    pub fn a2a_agent(&self, c: CompId) -> Option<&A2AAgent> {
        self.a2a_agents.get(&c)
    }

    /// The Swarm or ManagerWorkers at the root of the document, if Weft runs it.
    pub fn group(&self, c: CompId) -> Option<&GroupNode> {
        self.groups.get(&c)
    }

    /// The LLM config component `c`, typed.
    pub fn llm_config(&self, c: CompId) -> Option<&weft_spec::LlmConfig> {
        self.llm_configs.get(&c)
    }

    /// What a context provider gives a data edge it feeds, when it is a constant: the output's
    /// title and its value (a PluginConstantContextProvider); `None` for the others.
    pub fn context_value(&self, c: CompId) -> Option<(&str, &Json)> {
        match self.providers.get(&c)? {
            ContextProvider::Constant { output, value } => Some((output, value)),
            ContextProvider::Tool { .. } | ContextProvider::Flow { .. } => None,
        }
    }

    /// A context provider, as Weft runs it; `None` for one the document gets wrong or Weft
    /// cannot run (its errors and blockers say why).
    pub fn provider(&self, c: CompId) -> Option<&ContextProvider> {
        self.providers.get(&c)
    }

    /// The document errors lowering found in a component, one line each.
    pub fn errors(&self, c: CompId) -> &[String] {
        self.errors.get(&c).map_or(&[], Vec::as_slice)
    }

    /// What keeps a component (a node, a flow, the root) from running, if anything.
    pub fn blockers(&self, c: CompId) -> &[Blocker] {
        self.blockers.get(&c).map_or(&[], Vec::as_slice)
    }
}

/// The families of component types, each a module of this one holding their inference,
/// checks and lowering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// [`flow`]: flows, StartNode, EndNode, FlowNode.
    Flow,
    /// [`llm`]: LLM nodes, prompt templates, output parsers, LLM configs with rules.
    Llm,
    /// [`tool`]: tool nodes.
    Tool,
    /// [`branching`]: BranchingNode.
    Branching,
    /// [`message`]: input and output messages, templates, constants.
    Message,
    /// [`fanout`]: parallel flows and map nodes.
    Fanout,
    /// [`agent`]: agents and the nodes that run them.
    Agent,
    /// [`http`]: ApiNode, RemoteTool (run) and MCP transports (not runnable yet).
    Http,
    /// [`control`]: choice and retry (run), catch nodes (not runnable yet).
    Control,
    /// [`data`]: regex, extraction, chat history and flow variable nodes.
    Data,
    /// [`datastore`]: datastores and the nodes that use them.
    Datastore,
}

impl Family {
    /// Every family, in the order above.
    pub const ALL: &'static [Family] = &[
        Family::Flow,
        Family::Llm,
        Family::Tool,
        Family::Branching,
        Family::Message,
        Family::Fanout,
        Family::Agent,
        Family::Http,
        Family::Control,
        Family::Data,
        Family::Datastore,
    ];

    /// The component types of the family (each family module's `TYPES`).
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Family::Flow => flow::TYPES,
            Family::Llm => llm::TYPES,
            Family::Tool => tool::TYPES,
            Family::Branching => branching::TYPES,
            Family::Message => message::TYPES,
            Family::Fanout => fanout::TYPES,
            Family::Agent => agent::TYPES,
            Family::Http => http::TYPES,
            Family::Control => control::TYPES,
            Family::Data => data::TYPES,
            Family::Datastore => datastore::TYPES,
        }
    }

    /// The family of a component type, if it has one (types with no rule of their own do not).
    pub fn of(type_name: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.types().contains(&type_name))
    }
}

/// What a component's configuration implies about its interface, by its family.
pub(crate) fn infer(inf: &mut crate::infer::Inferrer<'_>, c: CompId) -> crate::infer::Inferred {
    let comp = inf.spec().get(c);
    let found = match Family::of(comp.ty.name) {
        Some(Family::Flow) => flow::infer(inf, c),
        Some(Family::Llm) => llm::infer(inf, c),
        Some(Family::Tool) => tool::infer(inf, c),
        Some(Family::Branching) => branching::infer(inf, c),
        Some(Family::Message) => message::infer(inf, c),
        Some(Family::Fanout) => fanout::infer(inf, c),
        Some(Family::Agent) => agent::infer(inf, c),
        Some(Family::Http) => http::infer(inf, c),
        Some(Family::Control) => control::infer(inf, c),
        Some(Family::Data) => data::infer(inf, c),
        Some(Family::Datastore) => datastore::infer(inf, c),
        None => None,
    };
    found.unwrap_or_else(|| {
        // Other nodes (WayFlow variable and map nodes, datastore nodes, ...) keep their declared
        // inputs and outputs, and leave through `next`.
        let mut inferred = crate::infer::Inferred::default();
        if comp.ty.io == weft_spec::catalog::Io::Node {
            inferred.branches = Some(vec!["next".to_owned()]);
        }
        inferred
    })
}

/// The component-specific rules of a component, by its family.
pub(crate) fn check(cx: &mut Cx<'_>, inf: &mut crate::infer::Inferrer<'_>, c: CompId) {
    match Family::of(cx.spec.get(c).ty.name) {
        Some(Family::Flow) => {}
        Some(Family::Llm) => llm::check(cx, inf, c),
        Some(Family::Tool) => tool::check(cx, inf, c),
        Some(Family::Branching) => {}
        Some(Family::Message) => {}
        Some(Family::Fanout) => fanout::check(cx, inf, c),
        Some(Family::Agent) => agent::check(cx, inf, c),
        Some(Family::Http) => http::check(cx, inf, c),
        Some(Family::Control) => control::check(cx, inf, c),
        Some(Family::Data) => data::check(cx, inf, c),
        Some(Family::Datastore) => datastore::check(cx, inf, c),
        None => {}
    }
}

/// The flows a node holds (subflows, branches, the flow mapped), and whether a chart draws
/// them only when asked to expand nodes (`FlowNode`, catch and retry) rather than always
/// (parallel and map nodes).
pub fn held_flows(spec: &Spec, c: CompId) -> Option<(Vec<CompId>, bool)> {
    let comp = spec.get(c);
    let f = Fields::of(comp);
    match Family::of(comp.ty.name)? {
        Family::Flow => comp.is("FlowNode").then(|| (f.comps("subflow"), true)),
        Family::Fanout => Some(match comp.ty.name {
            "ParallelFlowNode" => (f.comps("subflows"), false),
            "ExtendedParallelFlowNode" => (f.comps("flows"), false),
            "MapNode" | "ParallelMapNode" => (f.comps("subflow"), false),
            _ => (f.comps("flow"), false),
        }),
        Family::Control => match comp.ty.name {
            "CatchExceptionNode" => Some((f.comps("subflow"), true)),
            "PluginRetryNode" | "PluginCatchExceptionNode" => Some((f.comps("flow"), true)),
            _ => None,
        },
        Family::Llm
        | Family::Tool
        | Family::Branching
        | Family::Message
        | Family::Agent
        | Family::Http
        | Family::Data
        | Family::Datastore => None,
    }
}

/// The interface rules of a component's family, if it has its own: `true` when the family
/// checked the declared inputs and outputs itself (else they are compared with the inferred
/// ones).
pub(crate) fn check_interface(cx: &mut Cx<'_>, comp: &Component, inferred: &crate::infer::Inferred) -> bool {
    match Family::of(comp.ty.name) {
        Some(Family::Flow) => flow::check_interface(cx, comp, inferred),
        Some(Family::Message) => message::check_interface(cx, comp, inferred),
        Some(Family::Branching) => branching::check_interface(cx, comp, inferred),
        Some(
            Family::Llm | Family::Tool | Family::Fanout | Family::Agent | Family::Http | Family::Control | Family::Data | Family::Datastore,
        )
        | None => false,
    }
}

/// `Some(vec!["next"])`: the branches of a node that only goes on.
pub(crate) fn next() -> Option<Vec<String>> {
    Some(vec!["next".to_owned()])
}

/// Lowers every component of the spec. Components the loader flagged incomplete are skipped
/// (their errors are already reported).
pub(crate) fn lower(cx: &mut Cx<'_>, ios: &[Io]) -> Model {
    let mut lw = Lowerer { cx, ios, model: Model::default(), messages: HashMap::new(), http_calls: HashMap::new() };
    let spec = lw.cx.spec;
    let root = spec.root;
    let root_comp = spec.get(root);
    if matches!(root_comp.ty.name, "Agent" | "ExtendedAgent" | "SpecializedAgent") {
        if !lw.cx.skip(root)
            && let Some(agent) = agent::lower_root(&mut lw, root)
        {
            lw.model.agents.insert(root, agent);
        }
    } else if root_comp.is("A2AAgent") {
        if !lw.cx.skip(root)
            && let Some(agent) = a2a::lower(&mut lw, root, root)
        {
            lw.model.a2a_agents.insert(root, agent);
        }
    } else if matches!(root_comp.ty.name, "Swarm" | "PluginSwarm" | "ManagerWorkers" | "PluginManagerWorkers") {
        // WayFlow's converter gives a Swarm no outputs; a ManagerWorkers' manager gets its.
        let outputs = if root_comp.ty.name.contains("Swarm") { Vec::new() } else { lw.io(root).outputs.clone() };
        if !lw.cx.skip(root)
            && let Some(group) = agent::lower_group(&mut lw, root, root, outputs, None)
        {
            lw.model.groups.insert(root, group);
        }
    } else if !flow::is_flow(root_comp) {
        let what = format!(
            "{} at the root of a document (weft runs documents whose root is a Flow, an Agent or an ExtendedAgent)",
            root_comp.ty.name
        );
        lw.block(root, root, root_comp.pointer.clone(), what);
    }
    for (c, comp) in spec.components.iter().enumerate() {
        if comp.ty.support == Support::Generic {
            lw.cx.report(
                comp,
                Code::NotRunnable,
                comp.pointer.clone(),
                format!("{}: Weft loads, checks and exports this WayFlow type but cannot run it", comp.label()),
                Some("flows using it validate and export; running them needs a runtime that supports it".into()),
            );
            lw.model.blockers.entry(c).or_default().push(Blocker {
                pointer: comp.pointer.clone(),
                what: comp.ty.name.to_owned(),
                name: comp.name.clone(),
            });
            continue;
        }
        if lw.cx.skip(c) {
            continue;
        }
        if flow::is_flow(comp) {
            let graph = flow::lower_flow(&mut lw, c);
            lw.model.flows.insert(c, graph);
        } else if comp.is("PluginPromptTemplate") {
            // Also when no node uses it, so its templates and queries are checked.
            lw.prompt_messages(c, c);
        } else if comp.is("RemoteTool") {
            // Also when nothing uses it, so its templates and allow list are checked.
            lw.http_call(c);
        } else if matches!(comp.ty.name, "PluginJsonOutputParser" | "PluginRegexOutputParser") {
            llm::parser(&mut lw, c, c);
        } else if comp.ty.is_a(weft_spec::catalog::Kind::LlmConfig) {
            let config = llm::config(&lw, c);
            lw.model.llm_configs.insert(c, config);
        } else if comp.ty.is_a(weft_spec::catalog::Kind::ContextProvider) {
            if let Some(provider) = flow::lower_provider(&mut lw, c) {
                lw.model.providers.insert(c, provider);
            }
        } else if comp.ty.is_a(weft_spec::catalog::Kind::Node) {
            let kind = lw.node_kind(c);
            if let Some(kind) = kind {
                let f = lw.fields(c);
                let node = Node { kind, input_mapping: f.mapping("input_mapping"), output_mapping: f.mapping("output_mapping") };
                lw.model.nodes.insert(c, node);
            }
        }
    }
    lw.model
}

/// What a family makes of a node component.
pub(crate) enum Lowered {
    /// A node Weft runs.
    Kind(NodeKind),
    /// A type of the family Weft cannot run yet.
    NotRunnable,
}

/// The lowering's working state.
pub(crate) struct Lowerer<'a, 'b> {
    pub(crate) cx: &'a mut Cx<'b>,
    pub(crate) ios: &'a [Io],
    model: Model,
    /// Prompt templates already lowered (a template object may serve several nodes).
    messages: HashMap<CompId, Option<Arc<PromptMessages>>>,
    /// Requests of ApiNodes and RemoteTools already lowered (a tool may serve several nodes).
    http_calls: HashMap<CompId, Option<Arc<HttpCall>>>,
}

impl<'b> Lowerer<'_, 'b> {
    pub(crate) fn spec(&self) -> &'b Spec {
        self.cx.spec
    }

    pub(crate) fn comp(&self, c: CompId) -> &'b Component {
        self.cx.spec.get(c)
    }

    pub(crate) fn io(&self, c: CompId) -> &Io {
        &self.ios[c]
    }

    pub(crate) fn fields(&self, c: CompId) -> Fields<'b> {
        Fields { comp: self.cx.spec.get(c) }
    }

    /// The node kind of a node component, `None` when it cannot run or the document is wrong
    /// (reported).
    fn node_kind(&mut self, n: CompId) -> Option<NodeKind> {
        let comp = self.comp(n);
        let kind = match Family::of(comp.ty.name) {
            Some(Family::Flow) => flow::lower_node(self, n),
            Some(Family::Llm) => llm::lower_node(self, n),
            Some(Family::Tool) => tool::lower_node(self, n),
            Some(Family::Branching) => branching::lower_node(self, n),
            Some(Family::Message) => message::lower_node(self, n),
            Some(Family::Fanout) => fanout::lower_node(self, n),
            Some(Family::Agent) => agent::lower_node(self, n),
            Some(Family::Data) => data::lower_node(self, n),
            Some(Family::Control) => control::lower_node(self, n),
            Some(Family::Datastore) => datastore::lower_node(self, n),
            Some(Family::Http) => http::lower_node(self, n),
            None => Some(Lowered::NotRunnable),
        };
        match kind {
            Some(Lowered::Kind(kind)) => Some(kind),
            Some(Lowered::NotRunnable) => {
                self.block(n, n, comp.pointer.clone(), comp.ty.name.to_owned());
                None
            }
            None => None,
        }
    }

    /// Records that `what` (at `pointer`, in component `at`) keeps node or flow `owner` from
    /// running, and reports it as a `not_runnable` warning.
    pub(crate) fn block(&mut self, owner: CompId, at: CompId, pointer: String, what: String) {
        let comp = self.comp(at);
        let blocker = Blocker { pointer: pointer.clone(), what: what.clone(), name: comp.name.clone() };
        self.cx.report(
            comp,
            Code::NotRunnable,
            pointer,
            format!("{}: Weft does not run {what} yet", comp.label()),
            Some("the document validates, draws and exports as it is; `weft run` refuses it until a release of Weft runs this".into()),
        );
        let list = self.model.blockers.entry(owner).or_default();
        if !list.contains(&blocker) {
            list.push(blocker);
        }
    }

    /// Reports a document error about component `c` at `pointer`; `detail` says what is wrong
    /// (the message is the component's label, then the detail). The model keeps it, so a plan of
    /// a flow with errors names them too.
    pub(crate) fn error(&mut self, c: CompId, code: Code, pointer: String, detail: String, hint: &str) {
        let comp = self.comp(c);
        self.cx.report(comp, code, pointer.clone(), format!("{}: {detail}", comp.label()), Some(hint.to_owned()));
        let at = if pointer.is_empty() { "/".to_owned() } else { pointer };
        self.model.errors.entry(c).or_default().push(format!("{} at {at}: {detail}", comp.label()));
    }

    /// Compiles a Jinja template from field `field` of component `c`, reporting a syntax error
    /// as `bad_value` at the field.
    pub(crate) fn template(&mut self, c: CompId, field: &str, source: &str) -> Option<Arc<weft_prompt::Template>> {
        match weft_prompt::Template::new(source) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                let comp = self.comp(c);
                let msg = format!("{}: the template in `{field}` does not compile: {e}", comp.label());
                let pointer = format!("{}/{field}", comp.pointer);
                self.error(
                    c,
                    Code::BadValue,
                    pointer,
                    msg,
                    "fix the Jinja syntax: every `{% if %}`/`{% for %}` needs its `{% endif %}`/`{% endfor %}`, every `{{` its `}}`",
                );
                None
            }
        }
    }

    /// The names a node's templates may read: its inputs, by internal name.
    pub(crate) fn input_names(&self, n: CompId) -> Vec<String> {
        let in_map = self.fields(n).mapping("input_mapping");
        self.io(n).inputs.iter().map(|p| internal_name(&in_map, p.title())).collect()
    }

    /// Reports a template variable that is not among `allowed` (the names the run passes): the
    /// render would fail before the node's first call.
    pub(crate) fn variables(&mut self, c: CompId, field: &str, template: &weft_prompt::Template, allowed: &[String]) -> bool {
        let unknown: Vec<&str> = template.variables().filter(|v| !allowed.iter().any(|a| a == v)).collect();
        if unknown.is_empty() {
            return true;
        }
        let pointer = format!("{}/{field}", self.comp(c).pointer);
        let names: Vec<String> = unknown.iter().map(|v| format!("`{v}`")).collect();
        let detail = format!(
            "the template in `{field}` reads {}, which {} not an input of the node, so rendering it fails",
            names.join(", "),
            if unknown.len() > 1 { "are" } else { "is" }
        );
        let hint = if allowed.is_empty() {
            "the node has no inputs: write each value the template needs as a placeholder `{{ name }}` so it becomes an input".to_owned()
        } else {
            format!(
                "the template may read {}; write a value it needs as a placeholder `{{{{ name }}}}` so it becomes an input",
                allowed.join(", ")
            )
        };
        self.error(c, Code::BadValue, pointer, detail, &hint);
        false
    }

    /// Compiles a jq query found at `pointer` (a member of field `field`), reporting a broken or
    /// refused query as `bad_value`.
    pub(crate) fn jq(&mut self, c: CompId, field: &str, member: &str, query: &str) -> Option<weft_prompt::JqQuery> {
        match weft_prompt::JqQuery::compile(query) {
            Ok(q) => Some(q),
            Err(e) => {
                let hint = match e {
                    weft_prompt::JqError::Refused { .. } => {
                        "a flow's jq query may only compute on the value it is given: use paths, `map`, `select`, string and math filters"
                    }
                    _ => "fix the query (jq syntax, as jaq reads it)",
                };
                let comp = self.comp(c);
                let pointer = format!("{}/{field}/{}", comp.pointer, weft_spec::diagnostic::escape_token(member));
                let detail = format!("the jq query for `{member}` (`{query}`) cannot be used: {e}");
                self.error(c, Code::BadValue, pointer, detail, hint);
                None
            }
        }
    }

    /// The lowered request of ApiNode or RemoteTool `c`, once per component; `None` when the
    /// document gets it wrong (reported the first time).
    pub(crate) fn http_call(&mut self, c: CompId) -> Option<Arc<HttpCall>> {
        if let Some(done) = self.http_calls.get(&c) {
            return done.clone();
        }
        let lowered = http::lower_call(self, c).map(Arc::new);
        self.http_calls.insert(c, lowered.clone());
        lowered
    }

    /// The lowered prompt template object `t`, once per object.
    pub(crate) fn prompt_messages(&mut self, owner: CompId, t: CompId) -> Option<Arc<PromptMessages>> {
        if let Some(done) = self.messages.get(&t) {
            let done = done.clone();
            // The blockers found the first time also keep this node from running.
            let inherited: Vec<Blocker> = self.model.blockers.get(&t).cloned().unwrap_or_default();
            if !inherited.is_empty() {
                self.model.blockers.entry(owner).or_default().extend(inherited);
            }
            return done;
        }
        let lowered = llm::messages(self, t).map(Arc::new);
        let found: Vec<Blocker> = self.model.blockers.get(&t).cloned().unwrap_or_default();
        if !found.is_empty() {
            self.model.blockers.entry(owner).or_default().extend(found);
        }
        self.messages.insert(t, lowered.clone());
        lowered
    }
}

/// Reads a component's fields by name; in debug builds each name is checked against the
/// catalogue, so a misspelt field name fails the tests instead of reading as absent. Fields a
/// type does not have read as absent (`*_where_present` give a default for them).
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    comp: &'a Component,
}

impl<'a> Fields<'a> {
    /// The fields of a component.
    pub(crate) fn of(comp: &'a Component) -> Fields<'a> {
        Fields { comp }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        // A component of an unexpected type (a broken document) may lack the field; a name no
        // type has is a bug of ours.
        debug_assert!(Self::known(name), "no component type has a field `{name}`");
        self.comp.field(name)
    }

    /// Whether the type has the field at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.comp.ty.field(name).is_some()
    }

    pub(crate) fn str(&self, name: &str) -> Option<&'a str> {
        match self.get(name) {
            Some(Value::Json(Json::String(s))) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn json(&self, name: &str) -> Option<&'a Json> {
        match self.get(name) {
            Some(Value::Json(j)) => Some(j),
            _ => None,
        }
    }

    pub(crate) fn object(&self, name: &str) -> Option<&'a Map<String, Json>> {
        self.json(name).and_then(Json::as_object)
    }

    pub(crate) fn bool(&self, name: &str, default: bool) -> bool {
        self.json(name).and_then(Json::as_bool).unwrap_or(default)
    }

    /// Whether some type has a field of this name: the check of the `*_where_present`
    /// accessors, which read fields only some types of a family have.
    fn known(name: &str) -> bool {
        static NAMES: std::sync::LazyLock<std::collections::HashSet<&'static str>> = std::sync::LazyLock::new(|| {
            weft_spec::catalog::names().filter_map(weft_spec::catalog::lookup).flat_map(|t| t.fields.iter().map(|f| f.name)).collect()
        });
        NAMES.contains(name)
    }

    /// A boolean field that only some types of a family have; `default` for the others.
    pub(crate) fn bool_where_present(&self, name: &str, default: bool) -> bool {
        debug_assert!(Self::known(name), "no type has a field `{name}`");
        if self.has(name) { self.bool(name, default) } else { default }
    }

    /// A string field that only some types of a family have; `None` for the others.
    pub(crate) fn str_where_present(&self, name: &str) -> Option<&'a str> {
        debug_assert!(Self::known(name), "no type has a field `{name}`");
        if self.has(name) { self.str(name) } else { None }
    }

    pub(crate) fn comp(&self, name: &str) -> Option<CompId> {
        self.get(name)?;
        self.comp.comp_field(name)
    }

    pub(crate) fn comps(&self, name: &str) -> Vec<CompId> {
        if self.get(name).is_none() {
            return Vec::new();
        }
        self.comp.comp_list(name)
    }

    pub(crate) fn prop_list(&self, name: &str) -> Option<&'a [weft_spec::Property]> {
        self.get(name)?;
        self.comp.props_field(name)
    }

    pub(crate) fn prop(&self, name: &str) -> Option<&'a weft_spec::Property> {
        self.get(name)?;
        self.comp.prop_field(name)
    }

    /// Whether the field holds a list (or a single component), as opposed to being absent.
    pub(crate) fn is_list(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Value::List(_)) | Some(Value::Comp(_)))
    }

    /// A string-to-string mapping field (`input_mapping`, `output_mapping`); empty when the type
    /// has no such field.
    pub(crate) fn mapping(&self, name: &str) -> Vec<(String, String)> {
        if !self.has(name) {
            return Vec::new();
        }
        match self.json(name) {
            Some(Json::Object(m)) => m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect(),
            _ => Vec::new(),
        }
    }
}

/// The internal name of an external title, through a mapping (internal to external).
pub fn internal_name(map: &[(String, String)], external: &str) -> String {
    map.iter().find(|(_, e)| e == external).map(|(i, _)| i.clone()).unwrap_or_else(|| external.to_owned())
}

/// A node's `max_workers`, WayFlow's default when unset.
pub(crate) fn max_workers(f: Fields<'_>) -> usize {
    (if f.has("max_workers") { f.json("max_workers") } else { None })
        .and_then(Json::as_u64)
        .map_or(DEFAULT_MAX_WORKERS, |n| usize::try_from(n.max(1)).unwrap_or(usize::MAX))
}

/// A field's object value, also when it is a sensitive value supplied in clear.
pub(crate) fn object_value(v: Option<&Value>) -> Option<Json> {
    match v {
        Some(Value::Json(j @ Json::Object(_))) => Some(j.clone()),
        Some(Value::Secret(s)) => s.value.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()).filter(Json::is_object),
        _ => None,
    }
}

/// Reports an integer field that is negative.
pub(crate) fn non_negative(cx: &mut Cx<'_>, comp: &weft_spec::Component, field: &str, rule: &str, hint: Option<String>) {
    if let Some(v) = comp.json_field(field).and_then(Json::as_i64)
        && v < 0
    {
        cx.report(comp, Code::BadValue, format!("{}/{field}", comp.pointer), format!("{}: `{field}` is {v}; {rule}", comp.label()), hint);
    }
}

#[cfg(test)]
mod tests {
    use super::{Family, NodeKind};

    #[test]
    fn every_family_type_is_in_the_catalogue_and_in_one_family_only() {
        for &family in Family::ALL {
            for &name in family.types() {
                assert!(weft_spec::catalog::lookup(name).is_some(), "{family:?} lists {name}, which the catalogue does not have");
                let owners: Vec<Family> = Family::ALL.iter().copied().filter(|f| f.types().contains(&name)).collect();
                assert_eq!(owners, [family], "{name} is in {owners:?}");
                assert_eq!(Family::of(name), Some(family));
            }
        }
    }

    #[test]
    fn every_node_type_weft_runs_lowers_from_the_corpus() {
        // Each NodeKind variant, by the type names that lower to it, is met in a valid corpus
        // document, so the lowering of every runnable type runs in the tests.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid");
        let mut seen = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("the shared corpus is readable") {
            let path = entry.expect("an entry").path();
            if path.extension().is_none_or(|e| e != "json") || path.to_string_lossy().ends_with(".refs.json") {
                continue;
            }
            let mut options = crate::LoadOptions::default();
            let refs = path.with_extension("refs.json");
            if refs.exists() {
                let bytes = std::fs::read(&refs).expect("readable");
                options.registries.push(crate::Source::from_bytes(refs.display().to_string(), bytes).expect("a registry"));
            }
            let Ok(loaded) = crate::Flow::load(&path, &options) else { continue };
            let flow = loaded.flow;
            for c in 0..flow.spec().components.len() {
                if let Some(node) = flow.model().node(c) {
                    seen.insert(match node.kind {
                        NodeKind::Start => "start",
                        NodeKind::End(_) => "end",
                        NodeKind::Llm(_) => "llm",
                        NodeKind::Tool(_) => "tool",
                        NodeKind::Subflow(_) => "subflow",
                        NodeKind::Parallel(_) => "parallel",
                        NodeKind::Map(_) => "map",
                        NodeKind::Branching(_) => "branching",
                        NodeKind::InputMessage(_) => "input message",
                        NodeKind::OutputMessage(_) => "output message",
                        NodeKind::Template(_) => "template",
                        NodeKind::Constants(_) => "constants",
                        NodeKind::Agent(_) => "agent",
                        NodeKind::A2A(_) => "a2a agent",
                        NodeKind::Group(_) => "agent group",
                        NodeKind::Regex(_) => "regex",
                        NodeKind::Choice(_) => "choice",
                        NodeKind::Retry(_) => "retry",
                        NodeKind::Catch(_) => "catch",
                        NodeKind::Variables(_) => "variables",
                        NodeKind::Extract(_) => "extract",
                        NodeKind::ChatHistory(_) => "chat history",
                        NodeKind::Datastore(_) => "datastore",
                        NodeKind::Api(_) => "api",
                    });
                }
            }
        }
        let all = [
            "start",
            "end",
            "llm",
            "tool",
            "subflow",
            "parallel",
            "map",
            "branching",
            "input message",
            "output message",
            "template",
            "constants",
            "agent",
            "regex",
            "choice",
            "retry",
            "catch",
            "variables",
            "extract",
            "chat history",
            "api",
        ];
        let missing: Vec<&str> = all.iter().copied().filter(|k| !seen.contains(k)).collect();
        assert!(missing.is_empty(), "no valid corpus document lowers to {missing:?}");
    }
}
