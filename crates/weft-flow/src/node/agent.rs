//! Agents and the nodes that run them: Agent, ExtendedAgent, SpecializedAgent and its
//! parameters, AgentNode, ExtendedAgentNode, Swarm, ManagerWorkers. Weft checks and exports them
//! all, and runs an Agent, ExtendedAgent or SpecializedAgent (at the root of a document or in an
//! AgentNode) whose tools are ServerTools, ClientTools and RemoteTools, and a Swarm or
//! ManagerWorkers of such agents ([`GroupNode`]); what else an agent may hold is a blocker until
//! it runs.

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, map_titles, string_props, union_into};
use crate::template::placeholders;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_spec::{Code, CompId, Property, Value};

/// An agent as a node runs it (AgentNode, ExtendedAgentNode, or the root of a document).
#[derive(Debug)]
pub struct AgentNode {
    /// The Agent or ExtendedAgent component.
    pub agent: CompId,
    /// Its LLM config.
    pub llm_config: CompId,
    /// The config's `default_generation_parameters`.
    pub generation: Map<String, Json>,
    /// `system_prompt`, compiled (rendered with the agent's inputs before every LLM call).
    pub system_prompt: Arc<weft_prompt::Template>,
    /// The agent's tools, in document order.
    pub tools: Vec<AgentTool>,
    /// Its MCP toolboxes: their tools are listed before every LLM call and offered after the
    /// built-in ones (AGENTS.md 1.3).
    pub toolboxes: Vec<Arc<super::McpToolBox>>,
    /// The outputs `submit_result` takes, under the agent's names (the node's outputs, when a
    /// node runs the agent).
    pub outputs: Vec<Property>,
    /// `human_in_the_loop` (WayFlow's caller input mode ALWAYS), after the node's
    /// `caller_input_mode`.
    pub human_in_the_loop: bool,
    /// LLM calls per user turn.
    pub max_iterations: u64,
    /// Whether the agent may end the conversation (`end_conversation`).
    pub can_finish_conversation: bool,
    /// The message posted before the first user message, without an LLM call.
    pub initial_message: Option<String>,
    /// A failing tool fails the agent instead of going back to the model.
    pub raise_exceptions: bool,
    /// `submit_result` takes its arguments as they are (no coercion) and refuses any that do
    /// not fit the outputs exactly.
    pub strict_output_validation: bool,
    /// ExtendedAgent `flows`: flows the model calls as tools (offered after `tools`).
    pub flows: Vec<FlowTool>,
    /// ExtendedAgent `agents`: agents the model calls as tools (offered after the flows), each
    /// in a conversation of its own.
    pub agents: Vec<SubAgent>,
    /// `transforms`: what is done to the conversation before every LLM call, in order.
    pub transforms: Vec<Transform>,
    /// The model calls tools through WayFlow's Llama prompt template (tools listed in the
    /// system prompt, calls as JSON in the text), as WayFlow does for `OllamaConfig` and for a
    /// `VllmConfig` of a Llama 3.x model; else natively.
    pub llama_template: bool,
}

/// A Swarm or a ManagerWorkers as it runs (AGENTS.md sections 3 and 4).
#[derive(Debug)]
pub struct GroupNode {
    /// The Swarm or ManagerWorkers component.
    pub comp: CompId,
    /// A ManagerWorkers (else a Swarm).
    pub manager_workers: bool,
    /// A Swarm's `handoff`.
    pub handoff: Handoff,
    /// Its agents, each lowered once with its own outputs and mode: the first agent (the
    /// manager) first, then in order of first appearance.
    pub members: Vec<GroupMember>,
    /// `[caller, recipient]` pairs, as member indices (a ManagerWorkers: the manager and each
    /// worker).
    pub relationships: Vec<(usize, usize)>,
    /// The outputs of the agent talking to the user (a ManagerWorkers' manager; a Swarm's
    /// main agent in a node: the node's outputs).
    pub outputs: Vec<Property>,
    /// The agent talking to the user may ask them (false when a node's `caller_input_mode` is
    /// `never`).
    pub human_in_the_loop: bool,
}

/// An agent of a group.
#[derive(Debug)]
pub struct GroupMember {
    /// Its name (how the others address it).
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its description.
    pub description: Option<String>,
    /// The agent.
    pub agent: Box<AgentNode>,
}

/// A Swarm's handoff mode (which communication tools its agents get).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// `send_message` only.
    Never,
    /// `send_message`, and `handoff_conversation` for the agent talking to the user.
    Optional,
    /// `handoff_conversation` only.
    Always,
}

impl Handoff {
    /// The mode's name in WayFlow's prompt.
    pub fn as_str(self) -> &'static str {
        match self {
            Handoff::Never => "never",
            Handoff::Optional => "optional",
            Handoff::Always => "always",
        }
    }
}

/// A message transform of an agent (AGENTS.md 1.12): it summarizes what the model is sent
/// (never the conversation kept) with an LLM of its own.
#[derive(Debug, Clone)]
pub struct Transform {
    /// The transform component.
    pub comp: CompId,
    /// Its LLM config.
    pub llm_config: CompId,
    /// The config's `default_generation_parameters`.
    pub generation: Map<String, Json>,
    /// What it summarizes.
    pub kind: TransformKind,
    /// `summarization_instructions`.
    pub instructions: String,
    /// The summary as the model sees it (`summarized_message_template` or
    /// `summarized_conversation_template`, rendered with `summary`).
    pub template: Arc<weft_prompt::Template>,
    /// Summaries are kept (`datastore` not null): entries at most this many, for at most this
    /// many seconds.
    pub cache: Option<SummaryCache>,
}

/// How long summaries are kept.
#[derive(Debug, Clone, Copy)]
pub struct SummaryCache {
    /// `max_cache_size` (no limit when `None`).
    pub max_size: Option<u64>,
    /// `max_cache_lifetime` in seconds (forever when `None`).
    pub max_lifetime_s: Option<u64>,
}

/// What a transform summarizes.
#[derive(Debug, Clone, Copy)]
pub enum TransformKind {
    /// MessageSummarizationTransform: each message longer than `max_message_size` characters.
    Messages {
        /// `max_message_size`.
        max_message_size: u64,
    },
    /// ConversationSummarizationTransform: the older messages, when there are more than
    /// `max_num_messages` (or, without it, more than `max_num_characters`), all but the last
    /// `min_num_messages`.
    Conversation {
        /// `max_num_messages`.
        max_num_messages: Option<u64>,
        /// `max_num_characters`.
        max_num_characters: Option<u64>,
        /// `min_num_messages`.
        min_num_messages: u64,
    },
}

/// A flow an agent calls as a tool (AGENTS.md 1.11): it runs with the call's arguments as its
/// inputs, on the agent's conversation.
#[derive(Debug, Clone)]
pub struct FlowTool {
    /// The flow.
    pub flow: CompId,
    /// The tool's name: the flow's, spaces replaced by `_`.
    pub name: String,
    /// The flow's description (`""` when absent).
    pub description: String,
    /// The flow's inputs: the call's parameters.
    pub inputs: Vec<Property>,
    /// The flow's outputs: the result is the value of the only one, else an object of them.
    pub outputs: Vec<Property>,
}

/// An agent another agent calls as a tool (AGENTS.md 1.11): the call's `context` is a user
/// message of its own conversation, its other arguments its inputs, and its last message the
/// result.
#[derive(Debug)]
pub struct SubAgent {
    /// The tool's name: the agent's, spaces replaced by `_`.
    pub name: String,
    /// The agent's description (`""` when absent).
    pub description: String,
    /// The agent's inputs (parameters after `context`).
    pub inputs: Vec<Property>,
    /// The agent as it runs.
    pub agent: Box<AgentNode>,
}

/// A tool an agent may call.
#[derive(Debug, Clone)]
pub struct AgentTool {
    /// The tool component.
    pub comp: CompId,
    /// Its name (what the model calls).
    pub name: String,
    /// Its description (`""` when absent).
    pub description: String,
    /// Its inputs: the call's parameters.
    pub inputs: Vec<Property>,
    /// Its outputs.
    pub outputs: Vec<Property>,
    /// A ClientTool: the caller gives its result (the run waits for it).
    pub client: bool,
    /// A RemoteTool's request (unless an implementation is bound to its name).
    pub remote: Option<Arc<super::HttpCall>>,
    /// An MCPTool's server tool (unless an implementation is bound to its name).
    pub mcp: Option<Arc<super::McpTool>>,
    /// Each call waits for the caller to approve or reject it (`requires_confirmation`).
    pub requires_confirmation: bool,
    /// Its component type (`ServerTool`, `ClientTool`...): WayFlow names the tool by it when
    /// the caller rejects a call.
    pub component_type: &'static str,
}

/// The default `max_iterations` (a core Agent has no such field).
pub const DEFAULT_MAX_ITERATIONS: u64 = 10;

/// ExtendedAgent's `initial_message` when not set (pyagentspec's `NOT_SET_INITIAL_MESSAGE`).
const NOT_SET: &str = "N/A";

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    let comp = lw.comp(n);
    match comp.ty.name {
        "AgentNode" | "ExtendedAgentNode" => {
            let f = lw.fields(n);
            let agent = f.comp("agent")?;
            if matches!(lw.comp(agent).ty.name, "Swarm" | "PluginSwarm" | "ManagerWorkers" | "PluginManagerWorkers") {
                let out_map = f.mapping("output_mapping");
                let outputs = lw.io(n).outputs.iter().map(|p| p.retitled(&internal_name(&out_map, p.title()))).collect();
                let mode = match f.str_where_present("caller_input_mode") {
                    Some("always") => Some(true),
                    Some("never") => Some(false),
                    _ => None,
                };
                return lower_group(lw, n, agent, outputs, mode).map(|g| Lowered::Kind(NodeKind::Group(Box::new(g))));
            }
            let out_map = f.mapping("output_mapping");
            let outputs = lw.io(n).outputs.iter().map(|p| p.retitled(&internal_name(&out_map, p.title()))).collect();
            let mode = match f.str_where_present("caller_input_mode") {
                Some("always") => Some(true),
                Some("never") => Some(false),
                _ => None,
            };
            if lw.comp(agent).is("A2AAgent") {
                // An A2AAgent has no outputs; the node cannot give it any.
                if let Some(p) = lw.io(n).outputs.first() {
                    let title = p.title().to_owned();
                    let pointer = format!("{}/outputs", comp.pointer);
                    let detail = format!("output \"{title}\": an A2AAgent gives no outputs (its answers are messages of the conversation)");
                    lw.error(n, Code::ComponentRule, pointer, detail, "remove the node's outputs");
                    return None;
                }
                return super::a2a::lower(lw, n, agent).map(|a| Lowered::Kind(NodeKind::A2A(Box::new(a))));
            }
            lower_agent(lw, n, agent, outputs, mode).map(|a| Lowered::Kind(NodeKind::Agent(Box::new(a))))
        }
        _ => Some(Lowered::NotRunnable),
    }
}

/// Lowers the Swarm or ManagerWorkers `g` for `owner` (a node, or `g` at the root), with the
/// outputs and the caller mode the node gives it.
pub(super) fn lower_group(
    lw: &mut Lowerer<'_, '_>,
    owner: CompId,
    g: CompId,
    outputs: Vec<Property>,
    mode: Option<bool>,
) -> Option<GroupNode> {
    let comp = lw.comp(g);
    let f = lw.fields(g);
    let manager_workers = matches!(comp.ty.name, "ManagerWorkers" | "PluginManagerWorkers");
    // Members in order of first appearance: the first agent (the manager) first.
    let mut order: Vec<CompId> = Vec::new();
    let mut relationships = Vec::new();
    let add = |order: &mut Vec<CompId>, c: CompId| match order.iter().position(|&o| o == c) {
        Some(i) => i,
        None => {
            order.push(c);
            order.len() - 1
        }
    };
    let handoff = if manager_workers {
        Handoff::Never
    } else {
        match f.json("handoff") {
            Some(Json::String(h)) if h == "never" => Handoff::Never,
            Some(Json::String(h)) if h == "always" => Handoff::Always,
            Some(Json::Bool(false)) => Handoff::Never,
            _ => Handoff::Optional,
        }
    };
    if manager_workers {
        let manager = f.comp("group_manager")?;
        add(&mut order, manager);
        for w in f.comps("workers") {
            let i = add(&mut order, w);
            relationships.push((0, i));
        }
    } else {
        let first = f.comp("first_agent")?;
        add(&mut order, first);
        {
            let pairs = match comp.field("relationships") {
                Some(Value::List(l)) => l.clone(),
                _ => Vec::new(),
            };
            for (k, pair) in pairs.iter().enumerate() {
                let ends: Vec<CompId> = match pair {
                    Value::List(items) => items.iter().filter_map(|v| if let Value::Comp(c) = v { Some(*c) } else { None }).collect(),
                    _ => Vec::new(),
                };
                let [caller, recipient] = ends.as_slice() else {
                    lw.error(
                        g,
                        Code::ComponentRule,
                        format!("{}/relationships/{k}", comp.pointer),
                        "a relationship is a pair [caller, recipient] of agents".into(),
                        "give two agents",
                    );
                    return None;
                };
                let (c, r) = (add(&mut order, *caller), add(&mut order, *recipient));
                if relationships.contains(&(c, r)) {
                    lw.error(
                        g,
                        Code::ComponentRule,
                        format!("{}/relationships/{k}", comp.pointer),
                        "this relationship is listed twice (WayFlow refuses duplicated relationships)".into(),
                        "remove the duplicate",
                    );
                    return None;
                }
                relationships.push((c, r));
            }
        }
    }
    let mut members = Vec::new();
    let mut ok = true;
    for (i, &m) in order.iter().enumerate() {
        let mc = lw.comp(m);
        if !matches!(mc.ty.name, "Agent" | "ExtendedAgent") {
            lw.block(owner, m, mc.pointer.clone(), format!("{} as a member of a {}", mc.ty.name, comp.ty.name));
            ok = false;
            continue;
        }
        if members.iter().any(|x: &GroupMember| x.name == mc.name) || order[..i].iter().any(|&o| lw.comp(o).name == mc.name) {
            lw.error(
                g,
                Code::ComponentRule,
                comp.pointer.clone(),
                format!("two of its agents are named `{}`; WayFlow tells its agents apart by name", mc.name),
                "give each agent a unique name",
            );
            ok = false;
            continue;
        }
        let is_recipient = relationships.iter().any(|&(_, r)| r == i);
        if is_recipient && mc.description.as_deref().unwrap_or("").is_empty() {
            lw.error(
                m,
                Code::ComponentRule,
                mc.pointer.clone(),
                "an agent others send messages to needs a `description` (it is how they learn what it does)".into(),
                "add a description",
            );
            ok = false;
        }
        let own_outputs = lw.io(m).outputs.clone();
        match lower_agent(lw, owner, m, own_outputs, None) {
            Some(agent) => members.push(GroupMember {
                name: mc.name.clone(),
                id: mc.id.clone(),
                description: mc.description.clone(),
                agent: Box::new(agent),
            }),
            None => ok = false,
        }
    }
    // The group talks to the user (WayFlow's caller input mode ALWAYS) unless a node says never.
    ok.then_some(GroupNode { comp: g, manager_workers, handoff, members, relationships, outputs, human_in_the_loop: mode.unwrap_or(true) })
}

/// The root of a document that is an agent, run as a flow of one node.
pub(super) fn lower_root(lw: &mut Lowerer<'_, '_>, root: CompId) -> Option<AgentNode> {
    let outputs = lw.io(root).outputs.clone();
    lower_agent(lw, root, root, outputs, None)
}

/// Lowers agent `a` for `owner` (the node, or the agent itself at the root); what Weft cannot
/// run yet is recorded as a blocker of `owner`.
fn lower_agent(lw: &mut Lowerer<'_, '_>, owner: CompId, a: CompId, outputs: Vec<Property>, mode: Option<bool>) -> Option<AgentNode> {
    let comp = lw.comp(a);
    if comp.ty.name == "SpecializedAgent" {
        return lower_specialized(lw, owner, a, outputs, mode);
    }
    if !matches!(comp.ty.name, "Agent" | "ExtendedAgent") {
        lw.block(owner, a, comp.pointer.clone(), format!("{} as the agent of a node", comp.ty.name));
        return None;
    }
    let f = lw.fields(a);
    let extended = comp.is("ExtendedAgent");
    let mut ok = true;
    let mut toolboxes = Vec::new();
    for b in f.comps("toolboxes") {
        let bc = lw.comp(b);
        if !super::mcp::is_toolbox(bc.ty.name) {
            lw.block(owner, b, bc.pointer.clone(), format!("{} in an agent", bc.ty.name));
            ok = false;
            continue;
        }
        match super::mcp::toolbox(lw, owner, b) {
            Some(t) => toolboxes.push(t),
            None => ok = false,
        }
    }
    for field in ["context_providers"] {
        if f.has(field) && !f.comps(field).is_empty() {
            lw.block(owner, a, format!("{}/{field}", comp.pointer), format!("an agent with `{field}`"));
            ok = false;
        }
    }
    if extended && f.comp("agent_template").is_some() {
        lw.block(owner, a, format!("{}/agent_template", comp.pointer), "an agent with its own `agent_template`".into());
        ok = false;
    }
    // WayFlow calls tools through its Llama prompt template on OllamaConfig and Llama 3.x
    // VllmConfig models (AGENTS.md 1.4), natively on the others.
    let llm_config = f.comp("llm_config")?;
    let config = lw.comp(llm_config);
    let model_id = lw.fields(llm_config).str_where_present("model_id").unwrap_or("").to_lowercase();
    let llama_template =
        config.ty.name == "OllamaConfig" || (config.ty.name == "VllmConfig" && model_id.contains("llama") && model_id.contains("3."));
    let mut tools = Vec::new();
    for t in f.comps("tools") {
        match lower_tool(lw, owner, t) {
            Some(tool) => tools.push(tool),
            None => ok = false,
        }
    }
    let flows: Vec<FlowTool> = if extended {
        f.comps("flows")
            .into_iter()
            .map(|fl| {
                let fc = lw.comp(fl);
                let io = lw.io(fl);
                FlowTool {
                    flow: fl,
                    name: fc.name.replace(' ', "_"),
                    description: fc.description.clone().unwrap_or_default(),
                    inputs: io.inputs.clone(),
                    outputs: io.outputs.clone(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut agents = Vec::new();
    for sub in if extended { f.comps("agents") } else { Vec::new() } {
        let sc = lw.comp(sub);
        let inputs = lw.io(sub).inputs.clone();
        // WayFlow describes each input to the model, so each needs a description; `context`
        // is the call's own parameter.
        for (i, p) in inputs.iter().enumerate() {
            let described = p.schema.get("description").and_then(Json::as_str).is_some_and(|d| !d.is_empty());
            let pointer = format!("{}/inputs/{i}", sc.pointer);
            if p.title() == "context" {
                lw.error(
                    sub,
                    Code::ComponentRule,
                    pointer,
                    "an agent called as a tool (in `agents`) cannot have an input named `context`: that is the call's parameter for the request".into(),
                    "rename the input (and its placeholder in the system prompt)",
                );
                ok = false;
            } else if !described {
                lw.error(
                    sub,
                    Code::ComponentRule,
                    pointer,
                    format!(
                        "input `{}` has no description; an agent called as a tool (in `agents`) describes each input to the model",
                        p.title()
                    ),
                    "declare the input in `inputs` with a `description`",
                );
                ok = false;
            }
        }
        let outputs = lw.io(sub).outputs.clone();
        if let Some(agent) = lower_agent(lw, owner, sub, outputs, None) {
            agents.push(SubAgent {
                name: sc.name.replace(' ', "_"),
                description: sc.description.clone().unwrap_or_default(),
                inputs,
                agent: Box::new(agent),
            });
        } else {
            ok = false;
        }
    }
    // Every name the model calls must be unique (WayFlow refuses the agent otherwise).
    let mut names: Vec<&str> = tools
        .iter()
        .map(|t| t.name.as_str())
        .chain(flows.iter().map(|t| t.name.as_str()))
        .chain(agents.iter().map(|t| t.name.as_str()))
        .collect();
    names.sort_unstable();
    let mut reused: Vec<&str> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    reused.dedup();
    if !reused.is_empty() {
        lw.error(
            a,
            Code::ComponentRule,
            comp.pointer.clone(),
            format!(
                "its tools, flows and agents share the name{} {} (spaces read as `_`): the model could not tell them apart",
                if reused.len() > 1 { "s" } else { "" },
                reused.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
            "rename them so each name is unique",
        );
        ok = false;
    }
    let mut transforms = Vec::new();
    for t in f.comps("transforms") {
        match lower_transform(lw, owner, t) {
            Some(transform) => transforms.push(transform),
            None => ok = false,
        }
    }
    let source = f.str("system_prompt").unwrap_or("");
    let system_prompt = lw.template(a, "system_prompt", source)?;
    let allowed = lw.input_names(a);
    if !lw.variables(a, "system_prompt", &system_prompt, &allowed) {
        return None;
    }
    let human_in_the_loop = mode.unwrap_or_else(|| f.bool("human_in_the_loop", true));
    // ExtendedAgent's `initial_message`: `"N/A"` (pyagentspec's default, also when absent) is
    // WayFlow's greeting when the agent may ask the user; null is no message (the model speaks
    // first), as WayFlow's converter passes it on.
    let initial_message = match f.json("initial_message").filter(|_| extended) {
        Some(Json::Null) => None,
        Some(Json::String(m)) if m != NOT_SET => Some(m.clone()),
        _ => extended.then(|| "Hi! How can I help you?".to_owned()).filter(|_| human_in_the_loop),
    };
    let max_iterations =
        if extended { f.json("max_iterations").and_then(Json::as_u64).unwrap_or(DEFAULT_MAX_ITERATIONS) } else { DEFAULT_MAX_ITERATIONS };
    let config_fields = lw.fields(llm_config);
    let generation = match config_fields.json("default_generation_parameters") {
        Some(Json::Object(m)) => m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Map::new(),
    };
    ok.then_some(AgentNode {
        agent: a,
        llm_config,
        generation,
        system_prompt,
        tools,
        outputs,
        human_in_the_loop,
        max_iterations,
        can_finish_conversation: extended && f.bool("can_finish_conversation", false),
        initial_message,
        raise_exceptions: extended && f.bool("raise_exceptions", false),
        strict_output_validation: extended && f.bool("strict_output_validation", false),
        flows,
        agents,
        transforms,
        llama_template,
        toolboxes,
    })
}

/// A tool of an agent; what Weft does not run is a blocker of `owner`.
fn lower_tool(lw: &mut Lowerer<'_, '_>, owner: CompId, t: CompId) -> Option<AgentTool> {
    let tc = lw.comp(t);
    if !matches!(tc.ty.name, "ServerTool" | "ClientTool" | "RemoteTool" | "MCPTool" | "PluginMCPTool") {
        lw.block(owner, t, tc.pointer.clone(), format!("{} in an agent", tc.ty.name));
        return None;
    }
    let remote = if tc.is("RemoteTool") { Some(lw.http_call(t)?) } else { None };
    let mcp = if super::mcp::is_tool(tc.ty.name) { Some(super::mcp::tool(lw, owner, t)?) } else { None };
    let io = lw.io(t);
    // WayFlow's RemoteTool has "missing description" when the document gives none.
    let description =
        tc.description.clone().unwrap_or_else(|| if remote.is_some() { "missing description".to_owned() } else { String::new() });
    Some(AgentTool {
        comp: t,
        name: tc.name.clone(),
        description,
        inputs: io.inputs.clone(),
        outputs: io.outputs.clone(),
        client: tc.ty.name == "ClientTool",
        remote,
        mcp,
        requires_confirmation: lw.fields(t).bool_where_present("requires_confirmation", false),
        component_type: tc.ty.name,
    })
}

/// A SpecializedAgent, which WayFlow does not run (AGENTS.md 5): Weft runs its base agent
/// with the system prompt `base + "\n\n" + additional_instructions` (both rendered with the
/// specialized agent's inputs), the tools `base.tools + additional_tools` (a name used twice
/// is an error) and `human_in_the_loop` from the parameters when it is not null.
fn lower_specialized(lw: &mut Lowerer<'_, '_>, owner: CompId, a: CompId, outputs: Vec<Property>, mode: Option<bool>) -> Option<AgentNode> {
    let comp = lw.comp(a);
    let f = lw.fields(a);
    let base = f.comp("agent")?;
    let params = f.comp("agent_specialization_parameters")?;
    let pf = lw.fields(params);
    let hitl = pf.json("human_in_the_loop").and_then(Json::as_bool);
    let additional = pf.str("additional_instructions").unwrap_or("").to_owned();
    let extra_tools = pf.comps("additional_tools");
    let mut agent = lower_agent(lw, owner, base, outputs, mode.or(hitl))?;
    let mut ok = true;
    for t in extra_tools {
        match lower_tool(lw, owner, t) {
            Some(tool) => {
                if agent.tools.iter().any(|x| x.name == tool.name) {
                    lw.error(
                        a,
                        Code::ComponentRule,
                        lw.comp(t).pointer.clone(),
                        format!("the additional tool `{}` has the name of one of the base agent's tools", tool.name),
                        "rename one of them",
                    );
                    ok = false;
                }
                agent.tools.push(tool);
            }
            None => ok = false,
        }
    }
    let base_prompt = lw.fields(base).str("system_prompt").unwrap_or("").to_owned();
    let source = match (base_prompt.is_empty(), additional.is_empty()) {
        (_, true) => base_prompt,
        (true, false) => additional,
        (false, false) => format!("{base_prompt}\n\n{additional}"),
    };
    let system_prompt = lw.template(a, "agent_specialization_parameters", &source)?;
    let allowed = lw.input_names(a);
    if !lw.variables(a, "agent_specialization_parameters", &system_prompt, &allowed) {
        return None;
    }
    agent.system_prompt = system_prompt;
    agent.agent = a;
    let _ = comp;
    ok.then_some(agent)
}

/// A config's `default_generation_parameters`, nulls left out.
fn generation_of(lw: &Lowerer<'_, '_>, config: CompId) -> Map<String, Json> {
    match lw.fields(config).json("default_generation_parameters") {
        Some(Json::Object(m)) => m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Map::new(),
    }
}

/// Lowers a message transform of an agent; what Weft does not run is a blocker of `owner`,
/// what WayFlow refuses an error.
fn lower_transform(lw: &mut Lowerer<'_, '_>, owner: CompId, t: CompId) -> Option<Transform> {
    let tc = lw.comp(t);
    let f = lw.fields(t);
    let pointer = |field: &str| format!("{}/{field}", tc.pointer);
    let int = |field: &str| f.json(field).and_then(Json::as_u64);
    let (kind, template_field, default_instructions, default_template) = match tc.ty.name {
        "MessageSummarizationTransform" => (
            TransformKind::Messages { max_message_size: int("max_message_size").unwrap_or(20_000) },
            "summarized_message_template",
            "Please make a summary of this message. Include relevant information and keep it short. Your response will replace the message, so just output the summary directly, no introduction needed.",
            "Summarized message: {{summary}}",
        ),
        "ConversationSummarizationTransform" => {
            let max_num_messages = match f.json("max_num_messages") {
                None => Some(50),
                Some(Json::Null) => None,
                Some(v) => v.as_u64(),
            };
            let max_num_characters = int("max_num_characters");
            let min_num_messages = int("min_num_messages").unwrap_or(10);
            // WayFlow's checks, as load errors.
            let problem = match (max_num_messages, max_num_characters) {
                (Some(_), Some(_)) => Some(
                    "`max_num_messages` and `max_num_characters` are mutually exclusive; set `max_num_messages` to null to use `max_num_characters`",
                ),
                (None, None) => Some("one of `max_num_messages` and `max_num_characters` must be set"),
                (Some(0), _) | (_, Some(0)) => Some("`max_num_messages` and `max_num_characters` must be positive"),
                (Some(max), None) if min_num_messages > max => Some("`min_num_messages` must not exceed `max_num_messages`"),
                _ => None,
            };
            if let Some(problem) = problem {
                lw.error(t, Code::ComponentRule, tc.pointer.clone(), problem.to_owned(), "fix the transform's limits");
                return None;
            }
            (
                TransformKind::Conversation { max_num_messages, max_num_characters, min_num_messages },
                "summarized_conversation_template",
                "Please make a summary of this conversation. Include relevant information and keep it short. Your response will replace the messages, so just output the summary directly, no introduction needed.",
                "Summarized conversation: {{summary}}",
            )
        }
        other => {
            lw.block(owner, t, tc.pointer.clone(), format!("{other} in an agent"));
            return None;
        }
    };
    if let TransformKind::Messages { max_message_size: 0 } = kind {
        lw.error(
            t,
            Code::ComponentRule,
            pointer("max_message_size"),
            "`max_message_size` must be positive".into(),
            "give a positive number of characters",
        );
        return None;
    }
    // The loader reads an absent `datastore` as null (and the exporter writes it so): no
    // summaries are kept. An InMemoryCollectionDatastore keeps them in the run state.
    let cache = match f.comp("datastore") {
        None => None,
        Some(d) if lw.comp(d).ty.name == "InMemoryCollectionDatastore" => {
            Some(SummaryCache { max_size: int("max_cache_size"), max_lifetime_s: int("max_cache_lifetime") })
        }
        Some(d) => {
            let what = format!("a transform keeping its summaries in a {}", lw.comp(d).ty.name);
            lw.block(owner, t, pointer("datastore"), what);
            return None;
        }
    };
    let llm_config = f.comp("llm")?;
    let instructions = f.str("summarization_instructions").unwrap_or(default_instructions).to_owned();
    let template = lw.template(t, template_field, f.str(template_field).unwrap_or(default_template))?;
    if !lw.variables(t, template_field, &template, &["summary".to_owned()]) {
        return None;
    }
    Some(Transform { comp: t, llm_config, generation: generation_of(lw, llm_config), kind, instructions, template, cache })
}

/// The types of the family.
pub const TYPES: &[&str] = &[
    "AgentNode",
    "ExtendedAgentNode",
    "Agent",
    "ExtendedAgent",
    "SpecializedAgent",
    "AgentSpecializationParameters",
    "Swarm",
    "PluginSwarm",
    "ManagerWorkers",
    "PluginManagerWorkers",
];

pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    match comp.ty.name {
        "Swarm" | "PluginSwarm" => {
            if let Some(h) = comp.json_field("handoff")
                && !(h.is_boolean() || h.is_null() || h.as_str().is_some_and(|s| ["never", "optional", "always"].contains(&s)))
            {
                cx.report(
                    comp,
                    Code::BadValue,
                    format!("{}/handoff", comp.pointer),
                    format!("{}: `handoff` is {h}, not never, optional or always", comp.label()),
                    Some("use \"never\", \"optional\" or \"always\"".into()),
                );
            }
            if matches!(comp.field("relationships"), Some(Value::List(l)) if l.is_empty()) {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/relationships", comp.pointer),
                    format!("{}: a Swarm needs at least one [caller, recipient] relationship", comp.label()),
                    Some("add e.g. [first_agent, other_agent] to `relationships`".into()),
                );
            }
        }
        "ManagerWorkers" | "PluginManagerWorkers" => {
            let workers = comp.comp_list("workers");
            if workers.is_empty() {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/workers", comp.pointer),
                    format!("{}: ManagerWorkers needs at least one worker", comp.label()),
                    Some("add an agent to `workers`".into()),
                );
            } else if let Some(m) = comp.comp_field("group_manager")
                && let Some(i) = workers.iter().position(|&w| w == m)
            {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/workers/{i}", comp.pointer),
                    format!("{}: the group manager is also one of its workers", comp.label()),
                    Some("remove the manager from `workers`".into()),
                );
            }
        }
        _ => {}
    }
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut out = Inferred::default();
    match comp.ty.name {
        "AgentNode" | "ExtendedAgentNode" => {
            if let Some(agent) = f.comp("agent") {
                let io = inf.io(agent);
                out.inputs = Some(map_titles(&f.mapping("input_mapping"), io.inputs));
                out.outputs = Some(map_titles(&f.mapping("output_mapping"), io.outputs));
            }
            out.outputs_explicit_wins = comp.is("ExtendedAgentNode");
            out.branches = next();
            out.branches_free_when_given = true;
        }
        "Agent" | "ExtendedAgent" => out.inputs = Some(string_props(&placeholders(f.str("system_prompt").unwrap_or("")))),
        "SpecializedAgent" => {
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            for part in [f.comp("agent"), f.comp("agent_specialization_parameters")].into_iter().flatten() {
                let io = inf.io(part);
                union_into(&mut inputs, io.inputs);
                union_into(&mut outputs, io.outputs);
            }
            out.inputs = Some(inputs);
            out.outputs = Some(outputs);
        }
        "AgentSpecializationParameters" => {
            out.inputs = Some(string_props(&placeholders(f.str("additional_instructions").unwrap_or(""))));
            out.outputs = Some(Vec::new());
        }
        _ => return None,
    }
    Some(out)
}
