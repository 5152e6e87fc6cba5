//! From a checked [`Flow`] to a [`Plan`]: every flow the run can enter, every node with its
//! operation, its inputs and where their values come from, and its control edges. Templates are
//! compiled, tools bound and models chosen here, once, so that a run only looks things up.
//!
//! Everything a run cannot do is found here and reported at once, before the first node runs:
//! node types not supported yet, unbound server tools, LLM configs with no provider.

use crate::error::StartError;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use weft_flow::Flow;
use weft_llm::{ChatModel, Role, ToolSpec};
use weft_prompt::{OutputParser, Template};
use weft_spec::{CompId, Component, Property, Value};
use weft_tools::{Tool, ToolRegistry};

/// Branches or items run at once when a node does not say (WayFlow's default).
pub const DEFAULT_MAX_WORKERS: usize = 20;

/// Chooses the model for an LLM config: `Err` says why none can serve it.
pub type ModelResolver = dyn Fn(&Component) -> Result<Arc<dyn ChatModel>, String> + Send + Sync;

/// A flow compiled for running; shared by every run of it.
pub struct Plan {
    pub(crate) options: Settings,
    pub(crate) flow: Flow,
    pub(crate) hash: String,
    pub(crate) flows: Vec<FlowPlan>,
    pub(crate) nodes: Vec<NodePlan>,
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
    pub(crate) node_index: HashMap<String, usize>,
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
}

/// What a node does.
pub(crate) enum Op {
    Start,
    End {
        branch: String,
    },
    Llm(Box<LlmOp>),
    Tool(Box<ToolOp>),
    Flow {
        flow: usize,
    },
    /// Subflows run concurrently, at most `max_workers` at a time; outputs merged in order.
    Parallel {
        flows: Vec<usize>,
        max_workers: usize,
    },
    /// A map node: the subflow once per item, outputs collected in input order.
    Map(Box<MapOp>),
    Branching {
        mapping: Map<String, Json>,
    },
    InputMessage {
        message: Option<Template>,
        output: String,
    },
    OutputMessage {
        message: Template,
        message_type: String,
        output: Option<String>,
    },
    Template {
        template: Template,
        output: String,
    },
    Constants {
        values: Map<String, Json>,
    },
}

/// MapNode, ParallelMapNode, ExtendedMapNode, ExtendedParallelMapNode.
pub(crate) struct MapOp {
    pub(crate) flow: usize,
    /// Items at once: 1 for the sequential forms.
    pub(crate) max_workers: usize,
    pub(crate) items: MapItems,
    pub(crate) collect: Vec<Collect>,
}

/// Where each item's subflow inputs come from.
pub(crate) enum MapItems {
    /// MapNode and ParallelMapNode: subflow input `p` comes from node input `iterated_<p>`,
    /// iterated or broadcast depending on the declared type of the output its value came from.
    Core(Vec<CoreInput>),
    /// The Extended forms: `iterated_input` is iterated, `unpack_input` queries take subflow
    /// inputs out of each item, every other subflow input is broadcast from the node's input
    /// of the same name.
    Extended {
        /// Internal name of the iterated input (`iterated_input`).
        iterated: String,
        /// Subflow input and the jq query giving it from the item.
        unpack: Vec<(String, weft_prompt::JqQuery)>,
        /// Subflow input and the node input (internal name) broadcast into it.
        broadcast: Vec<(String, String)>,
    },
}

pub(crate) struct CoreInput {
    /// The subflow's input title.
    pub(crate) subflow_input: String,
    /// The node input's internal name.
    pub(crate) internal: String,
    /// Per data edge into the input (same order as its `sources`): whether a value from it is
    /// iterated (its declared type is a list of the subflow input's type).
    pub(crate) iterates: Vec<bool>,
}

/// One collected output of a map node.
pub(crate) struct Collect {
    /// The node's output, internal title.
    pub(crate) output: String,
    /// The subflow output collected.
    pub(crate) from: String,
    pub(crate) reducer: Reducer,
    /// What `average`, `max` and `min` give over no items.
    pub(crate) default: Option<Json>,
    /// `sum` of nothing is `0` for an integer output, `0.0` otherwise.
    pub(crate) integer: bool,
}

/// How a map node combines an output over its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reducer {
    Append,
    Sum,
    Average,
    Max,
    Min,
}

impl Reducer {
    fn parse(name: &str) -> Option<Reducer> {
        Some(match name {
            "append" => Reducer::Append,
            "sum" => Reducer::Sum,
            "average" => Reducer::Average,
            "max" => Reducer::Max,
            "min" => Reducer::Min,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Reducer::Append => "append",
            Reducer::Sum => "sum",
            Reducer::Average => "average",
            Reducer::Max => "max",
            Reducer::Min => "min",
        }
    }
}

pub(crate) struct LlmOp {
    pub(crate) model: Arc<dyn ChatModel>,
    /// The provider-wide limiter of the model's endpoint.
    pub(crate) limiter: Arc<weft_llm::limit::Limiter>,
    pub(crate) generation: Map<String, Json>,
    pub(crate) send_message: bool,
    pub(crate) kind: LlmKind,
}

pub(crate) enum LlmKind {
    /// One user message from `prompt_template` (LlmNode, and ExtendedLlmNode without a template
    /// object). `outputs` are the node's output schemas under their internal titles;
    /// `structured` the schema asked for in the prompt and its name, when structured.
    Prompt { template: Box<Template>, outputs: Vec<Json>, structured: Option<(Json, String)> },
    /// A PluginPromptTemplate.
    Messages(Box<MessagesOp>),
}

pub(crate) struct MessagesOp {
    pub(crate) messages: Vec<(Role, Template, Vec<String>)>,
    pub(crate) response_format: Option<Json>,
    pub(crate) native: bool,
    pub(crate) strict: bool,
    pub(crate) parsers: Vec<OutputParser>,
    pub(crate) tools: Vec<ToolSpec>,
    /// Internal title of the single output.
    pub(crate) output: String,
}

pub(crate) struct ToolOp {
    pub(crate) tool_name: String,
    /// `None` for a ClientTool.
    pub(crate) tool: Option<Arc<dyn Tool>>,
    pub(crate) raise_exceptions: bool,
    /// Internal output titles.
    pub(crate) outputs: Vec<String>,
    /// The output schemas, in the same order (a client's answer is checked against them).
    pub(crate) output_schemas: Vec<Json>,
}

/// Run settings kept by the plan.
pub(crate) struct Settings {
    pub(crate) events: Option<Arc<dyn crate::EventSink>>,
    pub(crate) max_steps: u64,
    pub(crate) max_reasks: u32,
    pub(crate) node_timeout: Option<std::time::Duration>,
    pub(crate) cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    pub(crate) secrets: Arc<weft_guard::Secrets>,
}

/// What the plan needs from the caller.
pub(crate) struct PlanInputs<'a> {
    pub(crate) models: &'a ModelResolver,
    pub(crate) limits: &'a weft_llm::limit::Limiters,
    pub(crate) tools: &'a ToolRegistry,
    pub(crate) settings: Settings,
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

    /// The root flow's name.
    pub fn name(&self) -> &str {
        &self.flows[0].name
    }

    pub(crate) fn compile(flow: &Flow, inputs: PlanInputs<'_>) -> Result<Plan, StartError> {
        let mut c = Compiler {
            flow,
            inputs,
            flows: Vec::new(),
            nodes: Vec::new(),
            flow_of: HashMap::new(),
            problems: Vec::new(),
            missing_tools: Vec::new(),
        };
        let root = flow.spec().root;
        let root_comp = flow.spec().get(root);
        if !is_flow(root_comp) {
            return Err(StartError::one(format!(
                "not supported yet: {} at {} (weft runs documents whose root is a Flow; agents come in a later release)",
                root_comp.ty.name,
                pointer(root_comp)
            )));
        }
        c.flow_plan(root);
        if !c.missing_tools.is_empty() {
            c.missing_tools.sort();
            c.missing_tools.dedup();
            let names: Vec<String> = c.missing_tools.iter().map(|n| format!("\"{n}\"")).collect();
            c.problems.push(format!(
                "no implementation bound for the ServerTool{} {}: bind {} in a tools file (--tools tools.toml, e.g. [tools.{}] command = [\"python3\", \"tool.py\"]) or register {} with ToolRegistry",
                if names.len() > 1 { "s" } else { "" },
                names.join(", "),
                if names.len() > 1 { "each" } else { "it" },
                c.missing_tools[0],
                if names.len() > 1 { "them" } else { "it" },
            ));
        }
        if !c.problems.is_empty() {
            return Err(StartError { problems: c.problems });
        }
        let hash = content_hash(flow);
        Ok(Plan { options: c.inputs.settings, flow: flow.clone(), hash, flows: c.flows, nodes: c.nodes })
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

fn is_flow(c: &Component) -> bool {
    c.is("Flow") || c.is("ExtendedFlow")
}

fn pointer(c: &Component) -> String {
    if c.pointer.is_empty() { "/".to_owned() } else { c.pointer.clone() }
}

/// A node's `max_workers`, WayFlow's default when unset.
fn max_workers(c: &Component) -> usize {
    c.json_field("max_workers").and_then(Json::as_u64).map_or(DEFAULT_MAX_WORKERS, |n| usize::try_from(n.max(1)).unwrap_or(usize::MAX))
}

fn bool_field(c: &Component, name: &str, default: bool) -> bool {
    c.json_field(name).and_then(Json::as_bool).unwrap_or(default)
}

fn mapping(c: &Component, field: &str) -> Vec<(String, String)> {
    match c.json_field(field) {
        Some(Json::Object(m)) => m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect(),
        _ => Vec::new(),
    }
}

/// The internal name of an external title, through a mapping (internal to external).
fn internal_name(map: &[(String, String)], external: &str) -> String {
    map.iter().find(|(_, e)| e == external).map(|(i, _)| i.clone()).unwrap_or_else(|| external.to_owned())
}

/// Generation parameters from a plain LlmGenerationConfig object, nulls dropped.
fn generation(v: Option<&Json>) -> Map<String, Json> {
    match v {
        Some(Json::Object(m)) => m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Map::new(),
    }
}

struct Compiler<'a> {
    flow: &'a Flow,
    inputs: PlanInputs<'a>,
    flows: Vec<FlowPlan>,
    nodes: Vec<NodePlan>,
    flow_of: HashMap<CompId, usize>,
    problems: Vec<String>,
    missing_tools: Vec<String>,
}

impl Compiler<'_> {
    fn comp(&self, c: CompId) -> &Component {
        self.flow.spec().get(c)
    }

    fn unsupported(&mut self, c: CompId, what: &str) {
        let comp = self.comp(c);
        let line = format!("not supported yet: {}{} at {} (\"{}\")", comp.ty.name, what, pointer(comp), comp.name);
        self.problems.push(line);
    }

    /// Compiles a flow (once) and returns its index.
    fn flow_plan(&mut self, f: CompId) -> usize {
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
            node_index: HashMap::new(),
        });
        if comp.is("ExtendedFlow") {
            let has = |name: &str| {
                matches!(comp.field(name), Some(Value::List(l)) if !l.is_empty())
                    || matches!(comp.field(name), Some(Value::Props(p)) if !p.is_empty())
            };
            if has("state") {
                self.unsupported(f, " with flow variables (`state`)");
            }
            if has("context_providers") {
                self.unsupported(f, " with context providers");
            }
        }
        let node_comps = comp.comp_list("nodes");
        let mut first = None;
        for &n in &node_comps {
            let idx = self.nodes.len();
            first.get_or_insert(idx);
            let node = spec.get(n);
            self.flows[index].node_index.insert(node.id.clone(), idx);
            self.nodes.push(NodePlan {
                id: node.id.clone(),
                name: node.name.clone(),
                ty: node.ty.name,
                op: Op::Start,
                inputs: Vec::new(),
                output_mapping: Vec::new(),
                outputs: Vec::new(),
                next: Vec::new(),
            });
        }
        if let Some(start) = comp.comp_field("start_node") {
            let id = &spec.get(start).id;
            if let Some(&i) = self.flows[index].node_index.get(id) {
                self.flows[index].start = i;
            }
        }
        // Control edges.
        for e in comp.comp_list("control_flow_connections") {
            let edge = spec.get(e);
            let (Some(from), Some(to)) = (edge.comp_field("from_node"), edge.comp_field("to_node")) else { continue };
            let branch = edge.str_field("from_branch").unwrap_or("next").to_owned();
            let (Some(&fi), Some(&ti)) =
                (self.flows[index].node_index.get(&spec.get(from).id), self.flows[index].node_index.get(&spec.get(to).id))
            else {
                continue;
            };
            self.nodes[fi].next.push((branch, ti));
        }
        // Data edges: explicit, or by name when the flow gives none.
        let explicit: Option<Vec<CompId>> = match comp.field("data_flow_connections") {
            Some(Value::List(_)) | Some(Value::Comp(_)) => Some(comp.comp_list("data_flow_connections")),
            _ => None,
        };
        let edges: Vec<(String, String, String, String)> = match explicit {
            Some(list) => list
                .iter()
                .filter_map(|&e| {
                    let edge = spec.get(e);
                    Some((
                        spec.get(edge.comp_field("source_node")?).id.clone(),
                        edge.str_field("source_output")?.to_owned(),
                        spec.get(edge.comp_field("destination_node")?).id.clone(),
                        edge.str_field("destination_input")?.to_owned(),
                    ))
                })
                .collect(),
            None => {
                let mut out = Vec::new();
                for &src in &node_comps {
                    for o in &self.flow.io(src).outputs {
                        for &dst in &node_comps {
                            if self.flow.io(dst).input(o.title()).is_some() {
                                out.push((spec.get(src).id.clone(), o.title().to_owned(), spec.get(dst).id.clone(), o.title().to_owned()));
                            }
                        }
                    }
                }
                out
            }
        };
        for &n in &node_comps {
            let idx = self.flows[index].node_index[&spec.get(n).id];
            self.node(n, idx, &edges, &node_comps);
        }
        index
    }

    fn node(&mut self, n: CompId, idx: usize, edges: &[(String, String, String, String)], siblings: &[CompId]) {
        let spec = self.flow.spec();
        let comp = spec.get(n);
        let io = self.flow.io(n);
        let in_map = mapping(comp, "input_mapping");
        self.nodes[idx].output_mapping = mapping(comp, "output_mapping");
        self.nodes[idx].outputs = io.outputs.clone();
        self.nodes[idx].inputs = io
            .inputs
            .iter()
            .map(|p| InputPlan {
                title: p.title().to_owned(),
                internal: internal_name(&in_map, p.title()),
                schema: p.schema.clone(),
                sources: edges.iter().filter(|e| e.2 == comp.id && e.3 == p.title()).map(|e| (e.0.clone(), e.1.clone())).collect(),
            })
            .collect();
        let out_map = self.nodes[idx].output_mapping.clone();
        let internal_outputs: Vec<String> = io.outputs.iter().map(|p| internal_name(&out_map, p.title())).collect();
        let op = match comp.ty.name {
            "StartNode" => Some(Op::Start),
            "EndNode" => Some(Op::End { branch: comp.str_field("branch_name").unwrap_or("next").to_owned() }),
            "LlmNode" | "ExtendedLlmNode" => self.llm(n, &out_map),
            "ToolNode" | "ExtendedToolNode" => self.tool(n, internal_outputs),
            "FlowNode" => comp.comp_field("subflow").map(|sub| Op::Flow { flow: self.flow_plan(sub) }),
            "ParallelFlowNode" | "ExtendedParallelFlowNode" => {
                let field = if comp.is("ParallelFlowNode") { "subflows" } else { "flows" };
                let flows = comp.comp_list(field).into_iter().map(|sub| self.flow_plan(sub)).collect();
                // WayFlow's default worker count when `max_workers` is unset.
                Some(Op::Parallel { flows, max_workers: max_workers(comp) })
            }
            "MapNode" | "ParallelMapNode" | "ExtendedMapNode" | "ExtendedParallelMapNode" => self.map(n, idx, siblings),
            "BranchingNode" => {
                Some(Op::Branching { mapping: comp.json_field("mapping").and_then(Json::as_object).cloned().unwrap_or_default() })
            }
            "InputMessageNode" | "PluginInputMessageNode" => {
                let field = if comp.is("InputMessageNode") { "message" } else { "message_template" };
                if bool_field(comp, "rephrase", false) {
                    self.unsupported(n, " with `rephrase: true`");
                }
                let message = comp.str_field(field).filter(|m| !m.is_empty()).and_then(|m| self.template(n, field, m));
                let output = internal_outputs.first().cloned().unwrap_or_else(|| "user_input".into());
                Some(Op::InputMessage { message, output })
            }
            "OutputMessageNode" | "PluginOutputMessageNode" => {
                if bool_field(comp, "rephrase", false) {
                    self.unsupported(n, " with `rephrase: true`");
                }
                let expose = comp.is("PluginOutputMessageNode") && bool_field(comp, "expose_message_as_output", true);
                let message_type = comp.str_field("message_type").unwrap_or("AGENT").to_owned();
                self.template(n, "message", comp.str_field("message").unwrap_or("")).map(|message| Op::OutputMessage {
                    message,
                    message_type,
                    output: expose.then(|| "output_message".to_owned()),
                })
            }
            "PluginTemplateNode" => self
                .template(n, "template", comp.str_field("template").unwrap_or(""))
                .map(|template| Op::Template { template, output: internal_outputs.first().cloned().unwrap_or_else(|| "output".into()) }),
            "PluginConstantValuesNode" => {
                Some(Op::Constants { values: comp.json_field("constant_values").and_then(Json::as_object).cloned().unwrap_or_default() })
            }
            _ => {
                self.unsupported(n, "");
                None
            }
        };
        if let Some(op) = op {
            self.nodes[idx].op = op;
        }
    }

    /// Compiles a map node: where each item's inputs come from, and how outputs are collected.
    fn map(&mut self, n: CompId, idx: usize, siblings: &[CompId]) -> Option<Op> {
        let spec = self.flow.spec();
        let comp = spec.get(n);
        let extended = comp.ty.name.starts_with("Extended");
        let sub = comp.comp_field(if extended { "flow" } else { "subflow" })?;
        let flow = self.flow_plan(sub);
        let sub_io = self.flow.io(sub);
        let max_workers = match comp.ty.name {
            "MapNode" => 1,
            "ExtendedMapNode" if !bool_field(comp, "parallel_execution", false) => 1,
            _ => max_workers(comp),
        };
        let node = &self.nodes[idx];
        let items = if extended {
            let iterated = "iterated_input".to_owned();
            let mut unpack = Vec::new();
            if let Some(Json::Object(m)) = comp.json_field("unpack_input") {
                for (input, query) in m {
                    let Some(query) = query.as_str() else { continue };
                    match weft_prompt::JqQuery::compile(query) {
                        Ok(q) => unpack.push((input.clone(), q)),
                        Err(e) => {
                            let line =
                                format!("{} at {}/unpack_input/{input}: the jq query does not compile: {e}", comp.label(), pointer(comp));
                            self.problems.push(line);
                            return None;
                        }
                    }
                }
            }
            let mut broadcast = Vec::new();
            for p in &sub_io.inputs {
                if unpack.iter().any(|(i, _)| i == p.title()) {
                    continue;
                }
                if let Some(i) = node.inputs.iter().find(|i| i.internal == p.title() && i.internal != iterated) {
                    broadcast.push((p.title().to_owned(), i.internal.clone()));
                }
            }
            // Without queries, a subflow with one input left receives each item whole.
            if unpack.is_empty() {
                let left: Vec<&Property> = sub_io.inputs.iter().filter(|p| !broadcast.iter().any(|(b, _)| b == p.title())).collect();
                if let [one] = left.as_slice()
                    && let Ok(q) = weft_prompt::JqQuery::compile(".")
                {
                    unpack.push((one.title().to_owned(), q));
                }
            }
            MapItems::Extended { iterated, unpack, broadcast }
        } else {
            let mut inputs = Vec::new();
            for p in &sub_io.inputs {
                let title = format!("iterated_{}", p.title());
                let Some(input) = node.inputs.iter().find(|i| i.title == title) else { continue };
                let list = serde_json::json!({"type": "array", "items": p.schema});
                let iterates = input
                    .sources
                    .iter()
                    .map(|(src, out)| {
                        siblings
                            .iter()
                            .find(|&&c| spec.get(c).id == *src)
                            .and_then(|&c| self.flow.io(c).outputs.iter().find(|o| o.title() == out).map(|o| o.schema.clone()))
                            .is_some_and(|schema| weft_flow::schema::same_type(&schema, &list))
                    })
                    .collect();
                inputs.push(CoreInput { subflow_input: p.title().to_owned(), internal: input.internal.clone(), iterates });
            }
            MapItems::Core(inputs)
        };
        let out_map = mapping(comp, "output_mapping");
        let mut collect = Vec::new();
        for out in &self.flow.io(n).outputs {
            let internal = internal_name(&out_map, out.title());
            let (from, reducer) = if extended {
                (internal.clone(), Reducer::Append)
            } else {
                let from = internal.strip_prefix("collected_").unwrap_or(&internal).to_owned();
                let method = match comp.json_field("reducers") {
                    Some(Json::Object(m)) => m.get(&from).and_then(Json::as_str).unwrap_or("append"),
                    _ => "append",
                };
                let Some(reducer) = Reducer::parse(method) else {
                    let line = format!(
                        "{} at {}/reducers/{from}: unknown reducer \"{method}\"; use append, sum, average, max or min",
                        comp.label(),
                        pointer(comp)
                    );
                    self.problems.push(line);
                    return None;
                };
                (from, reducer)
            };
            let sub_out = sub_io.outputs.iter().find(|o| o.title() == from);
            let Some(sub_out) = sub_out else {
                let line = format!(
                    "{} at {}: output \"{}\" collects subflow output \"{from}\", which subflow \"{}\" does not have",
                    comp.label(),
                    pointer(comp),
                    out.title(),
                    spec.get(sub).name
                );
                self.problems.push(line);
                return None;
            };
            let default = out.default().or(sub_out.default()).cloned();
            let integer = sub_out.schema.get("type").and_then(Json::as_str) == Some("integer");
            collect.push(Collect { output: internal, from, reducer, default, integer });
        }
        Some(Op::Map(Box::new(MapOp { flow, max_workers, items, collect })))
    }

    fn template(&mut self, n: CompId, field: &str, source: &str) -> Option<Template> {
        match Template::new(source) {
            Ok(t) => Some(t),
            Err(e) => {
                let comp = self.comp(n);
                let line = format!("{} at {}/{field}: the template does not compile: {e}", comp.label(), pointer(comp));
                self.problems.push(line);
                None
            }
        }
    }

    fn model(&mut self, n: CompId) -> Option<Arc<dyn ChatModel>> {
        let comp = self.comp(n);
        let Some(config) = comp.comp_field("llm_config") else {
            let line = format!("{} at {}: it has no llm_config", comp.label(), pointer(comp));
            self.problems.push(line);
            return None;
        };
        let config = self.comp(config);
        match (self.inputs.models)(config) {
            Ok(m) => Some(m),
            Err(why) => {
                let line = format!("{} at {} (used by {}): {why}", config.label(), pointer(config), comp.label());
                if !self.problems.contains(&line) {
                    self.problems.push(line);
                }
                None
            }
        }
    }

    fn llm(&mut self, n: CompId, out_map: &[(String, String)]) -> Option<Op> {
        let spec = self.flow.spec();
        let comp = spec.get(n);
        let model = self.model(n);
        let config_generation =
            comp.comp_field("llm_config").and_then(|c| spec.get(c).json_field("default_generation_parameters")).cloned();
        let send_message = bool_field(comp, "send_message", false);
        let kind = match comp.comp_field("prompt_template_object") {
            Some(t) => LlmKind::Messages(Box::new(self.messages(t)?)),
            None => {
                let outputs: Vec<Json> =
                    self.flow.io(n).outputs.iter().map(|p| p.retitled(&internal_name(out_map, p.title())).schema).collect();
                let source = comp.str_field("prompt_template").unwrap_or("");
                // WayFlow renders the prompt and the structured-output instructions as one
                // template, so compile them together.
                let structured = weft_prompt::structured_output_needed(&outputs).then(|| {
                    let (schema, shape) = weft_prompt::prompt_schema(&outputs);
                    let name = match shape {
                        weft_prompt::Shape::Single => {
                            outputs.first().and_then(|o| o.get("title")).and_then(Json::as_str).unwrap_or("output").to_owned()
                        }
                        weft_prompt::Shape::Wrapped => "expected_output".to_owned(),
                    };
                    (schema, name)
                });
                let template = match &structured {
                    Some((schema, _)) => self.template(n, "prompt_template", &weft_prompt::prompt_template_with_suffix(source, schema))?,
                    None => self.template(n, "prompt_template", source)?,
                };
                LlmKind::Prompt { template: Box::new(template), outputs, structured }
            }
        };
        let generation = match &kind {
            LlmKind::Messages(_) => {
                let t = spec.get(comp.comp_field("prompt_template_object")?);
                match t.json_field("generation_config") {
                    Some(g @ Json::Object(_)) => generation(Some(g)),
                    _ => generation(config_generation.as_ref()),
                }
            }
            LlmKind::Prompt { .. } => generation(config_generation.as_ref()),
        };
        let model = model?;
        let limiter = self.inputs.limits.get(model.endpoint());
        Some(Op::Llm(Box::new(LlmOp { model, limiter, generation, send_message, kind })))
    }

    fn messages(&mut self, t: CompId) -> Option<MessagesOp> {
        let spec = self.flow.spec();
        let tc = spec.get(t);
        let mut ok = true;
        for field in ["post_rendering_transforms"] {
            if !tc.comp_list(field).is_empty() {
                self.unsupported(t, &format!(" with `{field}`"));
                ok = false;
            }
        }
        let mut messages = Vec::new();
        if let Some(Json::Array(list)) = tc.json_field("messages") {
            for (i, m) in list.iter().enumerate() {
                let role = match m.get("role").and_then(Json::as_str) {
                    Some("system") => Role::System,
                    Some("assistant") => Role::Assistant,
                    _ => Role::User,
                };
                if m.get("tool_requests").is_some_and(|v| !v.is_null()) || m.get("tool_result").is_some_and(|v| !v.is_null()) {
                    self.unsupported(t, &format!(" with a recorded tool request or result in messages/{i}"));
                    ok = false;
                }
                let parts = m.get("contents").and_then(Json::as_array).cloned().unwrap_or_default();
                let text: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Json::as_str).unwrap_or("text") == "text")
                    .map(|p| p.get("content").and_then(Json::as_str).unwrap_or(""))
                    .collect();
                let text = text.join("\n");
                if text.contains("__CHAT_HISTORY__") {
                    self.unsupported(t, " using the chat history (`__CHAT_HISTORY__`)");
                    ok = false;
                }
                let images = parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Json::as_str) == Some("image"))
                    .filter_map(|p| p.get("base64_content").and_then(Json::as_str).map(str::to_owned))
                    .collect();
                let template = self.template(t, &format!("messages/{i}/contents"), &text)?;
                messages.push((role, template, images));
            }
        }
        let response_format = tc.prop_field("response_format").map(|p| p.schema.clone());
        let native = bool_field(tc, "native_structured_generation", true);
        let strict = bool_field(tc, "strict_output_validation", false);
        let mut parsers = Vec::new();
        for p in tc.comp_list("output_parser") {
            let pc = spec.get(p);
            let parsed = match pc.ty.name {
                "PluginJsonOutputParser" => OutputParser::json(pc.json_field("properties")).map_err(|e| e.to_string()),
                "PluginRegexOutputParser" => {
                    OutputParser::regex(pc.json_field("regex_pattern").unwrap_or(&Json::Null), bool_field(pc, "strict", true))
                        .map_err(|e| e.to_string())
                }
                _ => {
                    self.unsupported(p, "");
                    ok = false;
                    continue;
                }
            };
            match parsed {
                Ok(parser) => parsers.push(parser),
                Err(e) => {
                    let line = format!("{} at {}: {e}", pc.label(), pointer(pc));
                    self.problems.push(line);
                    ok = false;
                }
            }
        }
        let mut tools = Vec::new();
        for tool in tc.comp_list("tools") {
            tools.push(tool_spec(spec.get(tool), &self.flow.io(tool).inputs));
        }
        if !bool_field(tc, "native_tool_calling", true) && !tools.is_empty() {
            self.unsupported(t, " with `native_tool_calling: false`");
            ok = false;
        }
        let title = response_format.as_ref().and_then(|s| s.get("title")).and_then(Json::as_str).unwrap_or("output").to_owned();
        // The node exposes the response format's title renamed by `output_mapping`; inside the
        // node it keeps its own title, which is also the schema's name in the request.
        ok.then_some(MessagesOp { messages, response_format, native, strict, parsers, tools, output: title })
    }

    fn tool(&mut self, n: CompId, outputs: Vec<String>) -> Option<Op> {
        let spec = self.flow.spec();
        let comp = spec.get(n);
        let tool_id = comp.comp_field("tool")?;
        let tool = spec.get(tool_id);
        let raise_exceptions = bool_field(comp, "raise_exceptions", true);
        let output_schemas: Vec<Json> = self.flow.io(n).outputs.iter().map(|p| p.schema.clone()).collect();
        match tool.ty.name {
            "ServerTool" => {
                let bound = self.inputs.tools.get(&tool.name).cloned();
                if bound.is_none() {
                    self.missing_tools.push(tool.name.clone());
                }
                Some(Op::Tool(Box::new(ToolOp { tool_name: tool.name.clone(), tool: bound, raise_exceptions, outputs, output_schemas })))
            }
            "ClientTool" => {
                Some(Op::Tool(Box::new(ToolOp { tool_name: tool.name.clone(), tool: None, raise_exceptions, outputs, output_schemas })))
            }
            _ => {
                self.unsupported(tool_id, &format!(" (used by {})", comp.label()));
                None
            }
        }
    }
}

/// The OpenAI-style description of a tool offered to a model.
fn tool_spec(tool: &Component, inputs: &[Property]) -> ToolSpec {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in inputs {
        let mut schema = p.schema.clone();
        if let Json::Object(m) = &mut schema {
            m.remove("title");
        }
        if p.default().is_none() {
            required.push(Json::String(p.title().to_owned()));
        }
        properties.insert(p.title().to_owned(), schema);
    }
    ToolSpec {
        name: tool.name.clone(),
        description: tool.description.clone(),
        parameters: serde_json::json!({"type": "object", "properties": properties, "required": required}),
    }
}
