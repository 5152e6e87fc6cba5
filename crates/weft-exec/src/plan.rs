//! From a checked [`Flow`] to a [`Plan`]: every flow the run can enter, every node with its
//! operation, its inputs and where their values come from, and its control edges. Templates are
//! compiled, tools bound and models chosen here, once, so that a run only looks things up.
//!
//! Everything a run cannot do is found here and reported at once, before the first node runs:
//! node types not supported yet, unbound server tools, LLM configs with no provider.
//!
//! This module indexes flows and nodes and wires inputs to data edges; what a node does (its
//! [`Op`]) is converted from the typed node model by its family in [`crate::nodes`].

use crate::context::RunSettings;
use crate::error::StartError;
use crate::nodes::{self, Op};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use weft_flow::Flow;
use weft_flow::node::{ContextProvider, DataEdge, Model, NodeKind};
use weft_llm::ChatModel;
use weft_spec::{Code, CompId, Component, Diagnostic, Property};
use weft_tools::ToolRegistry;

/// Branches or items run at once when a node does not say (WayFlow's default).
pub use weft_flow::node::DEFAULT_MAX_WORKERS;

/// Chooses the model for an LLM config: `Err` says why none can serve it.
pub type ModelResolver = dyn Fn(&weft_spec::LlmConfig) -> Result<Arc<dyn ChatModel>, String> + Send + Sync;

/// A flow compiled for running, with its bound resources (models, limiters, tools): shared by
/// every run of it (`Send + Sync`). What belongs to one run (its event sink, step budget,
/// timeout, cancellation) is that run's ([`RunSettings`]); the plan keeps the defaults
/// [`Plan::start`] uses.
pub struct Plan {
    /// The settings [`Plan::start`] and [`Plan::resume`] give a run.
    pub(crate) defaults: RunSettings,
    /// Masked in the excerpts of values error messages quote.
    pub(crate) secrets: Arc<weft_guard::Secrets>,
    pub(crate) flow: Flow,
    pub(crate) hash: String,
    pub(crate) flows: Vec<FlowPlan>,
    pub(crate) nodes: Vec<NodePlan>,
    /// The root flow's inputs' schemas, compiled once (every run's inputs are checked against
    /// them: compiling them per run was a tenth of a small run's cost); `None` where a schema
    /// does not compile (nothing is checked then, as before).
    pub(crate) input_checks: crate::run::Checks,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("hash", &self.hash).field("flows", &self.flows.len()).field("nodes", &self.nodes.len()).finish()
    }
}

/// One flow (the root, or a subflow).
#[derive(Debug)]
pub(crate) struct FlowPlan {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) start: usize,
    pub(crate) inputs: Vec<Property>,
    pub(crate) outputs: Vec<Property>,
    /// Node id to node index.
    pub(crate) node_index: foldhash::HashMap<String, usize>,
    /// The flow variables (an ExtendedFlow's `state`), each run of the flow starting them at
    /// their defaults.
    pub(crate) variables: Vec<Property>,
}

/// One node.
pub(crate) struct NodePlan {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) ty: &'static str,
    pub(crate) op: Op,
    pub(crate) inputs: Vec<InputPlan>,
    /// Output renaming, internal title to external title (WayFlow's `output_mapping`).
    pub(crate) output_mapping: Vec<(String, String)>,
    /// The declared outputs, by external title (a stored state's values are checked against
    /// them on resume).
    pub(crate) outputs: Vec<Property>,
    /// Control edges: branch to node index.
    pub(crate) next: Vec<(String, usize)>,
}

/// One input of a node.
pub(crate) struct InputPlan {
    /// The title data edges use.
    pub(crate) title: String,
    /// The name inside the node (templates, tool arguments), after `input_mapping`.
    pub(crate) internal: String,
    pub(crate) schema: Json,
    /// Data edges into it: source node id and output title.
    pub(crate) sources: Vec<(String, String)>,
    /// The cast of its values, built from `schema` at the first value (a node's op may still
    /// adjust the schema while the plan is compiled).
    pub(crate) cast: OnceLock<weft_prompt::InputCast>,
}

impl InputPlan {
    pub(crate) fn new(title: String, internal: String, schema: Json, sources: Vec<(String, String)>) -> InputPlan {
        InputPlan { title, internal, schema, sources, cast: OnceLock::new() }
    }

    /// `v` cast to the input's declared type ([`weft_prompt::cast_to_input`]).
    pub(crate) fn cast(&self, v: Json) -> Json {
        if v.is_null() {
            return v;
        }
        self.cast.get_or_init(|| weft_prompt::InputCast::new(&self.schema)).cast(v)
    }
}

/// What the plan needs from the caller.
pub(crate) struct PlanInputs<'a> {
    pub(crate) models: &'a ModelResolver,
    pub(crate) limits: &'a weft_llm::limit::Limiters,
    pub(crate) tools: &'a ToolRegistry,
    /// Sends the requests of ApiNodes and RemoteTools.
    pub(crate) http: Arc<dyn weft_llm::http::HttpSend>,
    pub(crate) defaults: RunSettings,
    pub(crate) secrets: Arc<weft_guard::Secrets>,
    pub(crate) mcp: crate::McpOptions,
}

impl Plan {
    /// The content hash of the flow (SHA-256 of its canonical export).
    pub fn flow_hash(&self) -> &str {
        &self.hash
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// The root flow's inputs (titles and schemas), in order.
    pub fn inputs(&self) -> &[Property] {
        &self.flows[0].inputs
    }

    /// The root flow's outputs.
    pub fn outputs(&self) -> &[Property] {
        &self.flows[0].outputs
    }

    /// The settings a run gets from [`Plan::start`] and [`Plan::resume`] (from the
    /// [`crate::RunOptions`] the plan was made with).
    pub fn default_settings(&self) -> &RunSettings {
        &self.defaults
    }

    /// The root flow's name.
    pub fn name(&self) -> &str {
        &self.flows[0].name
    }

    pub(crate) fn compile(flow: &Flow, inputs: PlanInputs<'_>) -> Result<Plan, StartError> {
        let mut c = Compiler {
            flow,
            model: flow.model(),
            inputs,
            flows: Vec::new(),
            nodes: Vec::new(),
            flow_of: HashMap::new(),
            keyed_flows: HashMap::new(),
            problems: Vec::new(),
            missing_tools: Vec::new(),
        };
        let root = flow.spec().root;
        c.blocked(root);
        if let Some(agent) = c.model.agent(root) {
            c.agent_root(root, agent);
        } else if let Some(agent) = c.model.a2a_agent(root) {
            c.a2a_flow(agent);
        } else if let Some(group) = c.model.group(root) {
            let io = flow.io(root);
            let (inputs, outputs) = (io.inputs.clone(), io.outputs.clone());
            c.keyed_agent_flow(format!("root:{}", c.comp(root).id), root, inputs, outputs, |c| {
                nodes::agent::AgentOp::plan_group(c, root, group)
            });
        } else if c.model.flow(root).is_none() {
            return Err(StartError { diagnostics: c.problems });
        } else {
            c.flow_plan(root);
        }
        if !c.missing_tools.is_empty() {
            c.missing_tools.sort();
            c.missing_tools.dedup();
            let names: Vec<String> = c.missing_tools.iter().map(|n| format!("\"{n}\"")).collect();
            let line = format!(
                "no implementation bound for the ServerTool{} {}: bind {} in a tools file (--tools tools.toml, e.g. [tools.{}] command = [\"python3\", \"tool.py\"]) or register {} with ToolRegistry",
                if names.len() > 1 { "s" } else { "" },
                names.join(", "),
                if names.len() > 1 { "each" } else { "it" },
                c.missing_tools[0],
                if names.len() > 1 { "them" } else { "it" },
            );
            c.report_as(Code::Unbound, line);
        }
        if !c.problems.is_empty() {
            return Err(StartError { diagnostics: c.problems });
        }
        let hash = content_hash(flow);
        let input_checks = c.flows.first().map(|f| crate::run::Checks::of(f.inputs.iter().map(|p| &p.schema))).unwrap_or_default();
        Ok(Plan {
            defaults: c.inputs.defaults,
            secrets: c.inputs.secrets,
            flow: flow.clone(),
            hash,
            flows: c.flows,
            nodes: c.nodes,
            input_checks,
        })
    }

    pub(crate) fn node_in(&self, flow: usize, id: &str) -> Option<usize> {
        self.flows[flow].node_index.get(id).copied()
    }

    pub(crate) fn flow_by_id(&self, id: &str) -> Option<usize> {
        self.flows.iter().position(|f| f.id == id)
    }
}

/// SHA-256 of the flow's canonical export, hex.
fn content_hash(flow: &Flow) -> String {
    let text = match weft_flow::export::export_value(flow, None) {
        Ok(doc) => doc.to_string(),
        Err(_) => format!("{:?}", flow.spec().components),
    };
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A component's JSON pointer, `/` for the root.
pub(crate) fn pointer(c: &Component) -> String {
    if c.pointer.is_empty() { "/".to_owned() } else { c.pointer.clone() }
}

/// The planner's state while it compiles a flow; node families add to it through
/// [`Compiler::flow_plan`] (subflows), [`Compiler::report`] (problems) and `missing_tools`.
pub(crate) struct Compiler<'a> {
    pub(crate) flow: &'a Flow,
    pub(crate) model: &'a Model,
    pub(crate) inputs: PlanInputs<'a>,
    flows: Vec<FlowPlan>,
    pub(crate) nodes: Vec<NodePlan>,
    flow_of: HashMap<CompId, usize>,
    /// Flows compiled once per key ([`Compiler::keyed_agent_flow`]): the agents of Swarms and
    /// ManagerWorkers in each of their roles.
    keyed_flows: HashMap<String, usize>,
    problems: Vec<Diagnostic>,
    /// ServerTools no implementation is bound for, reported together.
    pub(crate) missing_tools: Vec<String>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn comp(&self, c: CompId) -> &'a Component {
        self.flow.spec().get(c)
    }

    /// The flow node `idx` belongs to.
    pub(crate) fn flow_of_node(&self, idx: usize) -> Option<&FlowPlan> {
        self.flows.iter().find(|f| f.node_index.values().any(|&i| i == idx))
    }

    /// Reports a problem that keeps the flow from running (once, however often it is found):
    /// `not supported yet: ...` as `not_runnable`, anything else as `unbound`.
    pub(crate) fn report(&mut self, line: String) {
        let code = if line.starts_with("not supported yet") { Code::NotRunnable } else { Code::Unbound };
        self.report_as(code, line);
    }

    /// Reports a problem with its diagnostic code (an error, whatever the code's default
    /// severity: the run does not start), at the pointer the line names.
    pub(crate) fn report_as(&mut self, code: Code, line: String) {
        if self.problems.iter().any(|d| d.message == line) {
            return;
        }
        let pointer = crate::error::pointer_of(&line);
        let mut d = Diagnostic::new(code, pointer, line);
        d.severity = weft_spec::Severity::Error;
        self.problems.push(d);
    }

    /// Reports what keeps component `c` from running, if anything; `true` when something does.
    fn blocked(&mut self, c: CompId) -> bool {
        let blockers = self.model.blockers(c);
        for b in blockers {
            self.report(b.to_string());
        }
        !blockers.is_empty()
    }

    /// A component the model has no runnable form for and no blocker: the document has errors
    /// in it or in what it uses (a flow with errors was given to the planner). Reports the
    /// errors lowering found there, else says where to look.
    pub(crate) fn not_lowered(&mut self, c: CompId) {
        let spec = self.flow.spec();
        let mut seen = std::collections::HashSet::from([c]);
        let mut todo = vec![c];
        let mut found = false;
        // Bounded: each component once.
        while let Some(x) = todo.pop() {
            for line in self.model.errors(x) {
                found = true;
                self.report(line.clone());
            }
            for child in spec.children(x) {
                if self.model.flow(child).is_none() && seen.insert(child) {
                    todo.push(child);
                }
            }
        }
        if !found {
            let comp = spec.get(c);
            let line = format!("{} at {}: the document has errors here; `weft validate` lists them", comp.label(), pointer(comp));
            self.report_as(Code::ComponentRule, line);
        }
    }

    /// Compiles a flow (once) and returns its index.
    /// The declared outputs of the flow planned at `index`.
    pub(crate) fn flow_outputs(&self, index: usize) -> &[Property] {
        &self.flows[index].outputs
    }

    pub(crate) fn flow_plan(&mut self, f: CompId) -> usize {
        if let Some(&i) = self.flow_of.get(&f) {
            return i;
        }
        let spec = self.flow.spec();
        let comp = spec.get(f);
        let index = self.flows.len();
        self.flow_of.insert(f, index);
        let io = self.flow.io(f);
        self.flows.push(FlowPlan {
            id: comp.id.clone(),
            name: comp.name.clone(),
            start: 0,
            inputs: io.inputs.clone(),
            outputs: io.outputs.clone(),
            node_index: foldhash::HashMap::default(),
            variables: Vec::new(),
        });
        self.blocked(f);
        let Some(graph) = self.model.flow(f) else {
            self.not_lowered(f);
            return index;
        };
        self.flows[index].variables = graph.variables.clone();
        let mut first = None;
        for &n in &graph.nodes {
            let idx = self.nodes.len();
            first.get_or_insert(idx);
            let node = spec.get(n);
            self.flows[index].node_index.insert(node.id.clone(), idx);
            self.nodes.push(NodePlan {
                id: node.id.clone(),
                name: node.name.clone(),
                ty: node.ty.name,
                op: Op::Start(nodes::flow::StartOp),
                inputs: Vec::new(),
                output_mapping: Vec::new(),
                outputs: Vec::new(),
                next: Vec::new(),
            });
        }
        let node_index = &self.flows[index].node_index;
        let index_of = |c: CompId| -> Option<usize> { node_index.get(&spec.get(c).id).copied() };
        let start = graph.start.and_then(index_of);
        let control: Vec<(usize, String, usize)> =
            graph.control.iter().filter_map(|e| Some((index_of(e.from)?, e.branch.clone(), index_of(e.to)?))).collect();
        if let Some(i) = start {
            self.flows[index].start = i;
        }
        for (from, branch, to) in control {
            self.nodes[from].next.push((branch, to));
        }
        // Data edges: explicit, or by name when the flow gives none.
        let edges: Vec<DataEdge> = match &graph.data {
            Some(list) => list.clone(),
            None => {
                let mut out = Vec::new();
                for &source in &graph.nodes {
                    for o in &self.flow.io(source).outputs {
                        for &destination in &graph.nodes {
                            if self.flow.io(destination).input(o.title()).is_some() {
                                let output = o.title().to_owned();
                                out.push(DataEdge { source, output: output.clone(), destination, input: output });
                            }
                        }
                    }
                }
                // Context providers feed inputs of their outputs' names too (WayFlow).
                for &source in &graph.providers {
                    let mut titles: Vec<String> = self.flow.io(source).outputs.iter().map(|o| o.title().to_owned()).collect();
                    if let Some(p) = self.model.provider(source)
                        && !titles.iter().any(|t| t == p.output())
                    {
                        titles.push(p.output().to_owned());
                    }
                    for output in titles {
                        for &destination in &graph.nodes {
                            if self.flow.io(destination).input(&output).is_some() {
                                out.push(DataEdge { source, output: output.clone(), destination, input: output.clone() });
                            }
                        }
                    }
                }
                out
            }
        };
        let mut provided = Vec::new();
        for &n in &graph.nodes {
            let idx = self.flows[index].node_index[&spec.get(n).id];
            provided.extend(self.node(n, idx, &edges, graph).into_iter().map(|(input, provider)| (idx, input, provider)));
        }
        for (idx, input, provider) in provided {
            self.provider_node(index, idx, &input, provider);
        }
        index
    }

    /// Puts a node that calls context provider `provider` (a tool or a flow) before node `idx`
    /// of flow `flow`, feeding its input `input`: every control edge into the node goes to it
    /// instead, and it goes on to the node, so the provider is called each time the node runs
    /// (WayFlow calls a provider at every read of an input it feeds).
    fn provider_node(&mut self, flow: usize, idx: usize, input: &str, provider: CompId) {
        let Some(op) = nodes::provider::ProviderOp::plan(self, provider) else { return };
        let comp = self.comp(provider);
        let id = format!("{}#{}", self.nodes[idx].id, input);
        let new = self.nodes.len();
        let members: Vec<usize> = self.flows[flow].node_index.values().copied().collect();
        for m in members {
            for (_, to) in &mut self.nodes[m].next {
                if *to == idx {
                    *to = new;
                }
            }
        }
        if self.flows[flow].start == idx {
            self.flows[flow].start = new;
        }
        self.flows[flow].node_index.insert(id.clone(), new);
        let schema = self.nodes[idx].inputs.iter().find(|i| i.title == input).map(|i| i.schema.clone()).unwrap_or(Json::Null);
        let mut output = Map::new();
        output.insert("title".into(), Json::String(input.to_owned()));
        if let Json::Object(m) = schema {
            for (k, v) in m {
                if k != "title" && k != "default" {
                    output.insert(k, v);
                }
            }
        }
        self.nodes.push(NodePlan {
            id: id.clone(),
            name: comp.name.clone(),
            ty: comp.ty.name,
            op: Op::Provider(Box::new(op)),
            inputs: Vec::new(),
            output_mapping: Vec::new(),
            outputs: vec![Property::new(Json::Object(output))],
            next: vec![("next".to_owned(), idx)],
        });
        if let Some(i) = self.nodes[idx].inputs.iter_mut().find(|i| i.title == input) {
            i.sources = vec![(id, input.to_owned())];
        }
    }

    /// An agent at the root of the document, as a flow of one node: its inputs go from a start
    /// node to the agent, its outputs from the agent to an end node.
    fn agent_root(&mut self, root: CompId, agent: &weft_flow::node::AgentNode) {
        self.agent_flow(root, agent, false);
    }

    /// Compiles (once) agent `a` as a flow of one node, start → agent → end, and returns its
    /// index: the root of a document, or an agent another agent calls as a tool (`as_tool`:
    /// where it would wait for the user, its frame ends and the caller gets its last message).
    pub(crate) fn agent_flow(&mut self, a: CompId, agent: &weft_flow::node::AgentNode, as_tool: bool) -> usize {
        let (index, fresh) = self.component_flow(a);
        if fresh && let Some(op) = nodes::agent::AgentOp::plan(self, a, agent, as_tool) {
            self.nodes[self.flows[index].start + 1].op = Op::Agent(Box::new(op));
        }
        index
    }

    /// Compiles A2AAgent `agent` at the root of the document as a flow of one node, start →
    /// agent → end (it waits for the user after every answer), and returns its index.
    fn a2a_flow(&mut self, agent: &weft_flow::node::A2AAgent) -> usize {
        let (index, fresh) = self.component_flow(agent.agent);
        if fresh && let Some(op) = nodes::a2a::A2AOp::plan(self, agent, nodes::a2a::Mode::Root) {
            self.nodes[self.flows[index].start + 1].op = Op::A2A(Box::new(op));
        }
        index
    }

    /// The flow of one node, start → component `a` → end, with `a`'s inputs and outputs (its
    /// node's operation is a placeholder the caller sets), and whether it was made now (else it
    /// was compiled before). Its index is kept before the caller plans the node, so agents that
    /// call each other compile once each.
    fn component_flow(&mut self, a: CompId) -> (usize, bool) {
        if let Some(&i) = self.flow_of.get(&a) {
            return (i, false);
        }
        let io = self.flow.io(a);
        let (inputs, outputs) = (io.inputs.clone(), io.outputs.clone());
        let id = self.comp(a).id.clone();
        let index = self.one_node_flow(id, a, inputs, outputs);
        self.flow_of.insert(a, index);
        (index, true)
    }

    /// Compiles (once per `key`) component `a` as a flow of one node whose operation `make`
    /// plans, with these inputs and outputs: an agent in one of its roles in a Swarm or
    /// ManagerWorkers, or the group itself at the root. The flow's index is kept before `make`
    /// runs, so agents that message each other compile once each.
    pub(crate) fn keyed_agent_flow(
        &mut self,
        key: String,
        a: CompId,
        inputs: Vec<Property>,
        outputs: Vec<Property>,
        make: impl FnOnce(&mut Compiler<'_>) -> Option<nodes::agent::AgentOp>,
    ) -> usize {
        if let Some(&i) = self.keyed_flows.get(&key) {
            return i;
        }
        // The key is the flow's id: an agent has a flow per role, each its own.
        let index = self.one_node_flow(key.clone(), a, inputs, outputs);
        self.keyed_flows.insert(key, index);
        if let Some(op) = make(self) {
            self.nodes[self.flows[index].start + 1].op = Op::Agent(Box::new(op));
        }
        index
    }

    /// A flow of three nodes, start → `a` → end, the middle one to be given its operation;
    /// returns its index.
    fn one_node_flow(&mut self, id: String, a: CompId, inputs: Vec<Property>, outputs: Vec<Property>) -> usize {
        let comp = self.comp(a);
        let index = self.flows.len();
        let base = self.nodes.len();
        let (start_id, end_id) = (format!("{}.start", comp.id), format!("{}.end", comp.id));
        let node_index = [(start_id.clone(), base), (comp.id.clone(), base + 1), (end_id.clone(), base + 2)].into_iter().collect();
        self.flows.push(FlowPlan {
            id,
            name: comp.name.clone(),
            start: base,
            inputs: inputs.clone(),
            outputs: outputs.clone(),
            node_index,
            variables: Vec::new(),
        });
        let fed = |props: &[Property], from: &str| -> Vec<InputPlan> {
            props
                .iter()
                .map(|p| {
                    InputPlan::new(
                        p.title().to_owned(),
                        p.title().to_owned(),
                        p.schema.clone(),
                        vec![(from.to_owned(), p.title().to_owned())],
                    )
                })
                .collect()
        };
        let next = |to: usize| vec![("next".to_owned(), to)];
        self.nodes.push(NodePlan {
            id: start_id.clone(),
            name: "start".to_owned(),
            ty: "StartNode",
            op: Op::Start(nodes::flow::StartOp),
            inputs: Vec::new(),
            output_mapping: Vec::new(),
            outputs: inputs.clone(),
            next: next(base + 1),
        });
        self.nodes.push(NodePlan {
            id: comp.id.clone(),
            name: comp.name.clone(),
            ty: comp.ty.name,
            op: Op::Start(nodes::flow::StartOp),
            inputs: fed(&inputs, &start_id),
            output_mapping: Vec::new(),
            outputs: outputs.clone(),
            next: next(base + 2),
        });
        self.nodes.push(NodePlan {
            id: end_id,
            name: "end".to_owned(),
            ty: "EndNode",
            op: Op::End(nodes::flow::EndOp::plan(&weft_flow::node::EndNode { branch: "next".to_owned() })),
            inputs: fed(&outputs, &comp.id),
            output_mapping: Vec::new(),
            outputs,
            next: Vec::new(),
        });
        index
    }

    /// Plans node `n` (index `idx`) of flow `graph`; returns the inputs a context provider that
    /// is called (a tool or a flow) feeds, with the provider.
    fn node(&mut self, n: CompId, idx: usize, edges: &[DataEdge], graph: &weft_flow::node::FlowGraph) -> Vec<(String, CompId)> {
        let spec = self.flow.spec();
        let io = self.flow.io(n);
        let mut called = Vec::new();
        if self.blocked(n) {
            return called;
        }
        let Some(node) = self.model.node(n) else {
            self.not_lowered(n);
            return called;
        };
        self.nodes[idx].output_mapping = node.output_mapping.clone();
        self.nodes[idx].outputs = io.outputs.clone();
        let mut inputs = Vec::with_capacity(io.inputs.len());
        for p in &io.inputs {
            let into: Vec<&DataEdge> = edges.iter().filter(|e| e.destination == n && e.input == p.title()).collect();
            let mut schema = p.schema.clone();
            let mut sources: Vec<(String, String)> = Vec::new();
            // A context provider feeding the input gives its value each time the node runs,
            // whatever other edges hold (WayFlow reads the provider first): a constant one is
            // the input's value, planned as its default with no other source.
            let provided = into.iter().find(|e| weft_flow::node::flow::is_provider(spec.get(e.source)));
            match provided {
                Some(e) => match self.model.provider(e.source) {
                    Some(ContextProvider::Constant { output, value }) if *output == e.output => {
                        if let Some(obj) = schema.as_object_mut() {
                            obj.insert("default".into(), value.clone());
                        }
                    }
                    Some(ContextProvider::Constant { .. }) => self.not_lowered(e.source),
                    // Called each time the node runs: a node before it does (`provider_node`).
                    Some(ContextProvider::Tool { .. } | ContextProvider::Flow { .. }) if !matches!(node.kind, NodeKind::Start) => {
                        called.push((p.title().to_owned(), e.source));
                    }
                    Some(_) => {}
                    None => {
                        if !self.blocked(e.source) {
                            self.not_lowered(e.source);
                        }
                    }
                },
                None => {
                    sources = into.iter().map(|e| (spec.get(e.source).id.clone(), e.output.clone())).collect();
                    // WayFlow also reads a provider of the flow whose output has the input's
                    // name, and refuses the run when an edge gives the input a value too.
                    if graph.data.is_some()
                        && !sources.is_empty()
                        && let Some(&pv) =
                            graph.providers.iter().find(|&&pv| self.model.provider(pv).is_some_and(|x| x.output() == p.title()))
                    {
                        let line = format!(
                            "{} at {}: input \"{}\" is fed by a data edge and is also the name of the output of context provider {} of its flow; WayFlow refuses to run it (\"Found the name '{}' corresponding to both a context provider and a step output\"). Rename the input (with `input_mapping`) or the provider's output",
                            spec.get(n).label(),
                            pointer(spec.get(n)),
                            p.title(),
                            spec.get(pv).label(),
                            p.title()
                        );
                        self.report_as(Code::ComponentRule, line);
                    }
                }
            }
            inputs.push(InputPlan::new(p.title().to_owned(), node.internal_input(p.title()), schema, sources));
        }
        self.nodes[idx].inputs = inputs;
        if let Some(op) = nodes::plan(self, n, idx, &node.kind, edges) {
            self.nodes[idx].op = op;
        }
        called
    }
}
