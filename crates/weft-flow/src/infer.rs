//! Inference of inputs, outputs and branches, per component type (FORMAT.md sections 6-8,
//! 10 and 11).
//!
//! For each component the inferrer computes what the configuration implies. `None` means the
//! type leaves that list free (tools, agents' outputs, ...): the declared list is taken as is.
//! The resolved lists ([`Io`]) are the declared ones where given, else the inferred ones.

use crate::template::{jinja_inputs, json_placeholders, placeholders};
use serde_json::{Value as Json, json};
use weft_spec::catalog::Io as IoKind;
use weft_spec::{CompId, Component, Property, Spec, Value};

/// The resolved interface of a component.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Io {
    /// Inputs, by title.
    pub inputs: Vec<Property>,
    /// Outputs, by title.
    pub outputs: Vec<Property>,
    /// Branches (nodes only), sorted for inferred lists.
    pub branches: Vec<String>,
}

impl Io {
    /// The input titled `title`.
    pub fn input(&self, title: &str) -> Option<&Property> {
        self.inputs.iter().find(|p| p.title() == title)
    }
    /// The output titled `title`.
    pub fn output(&self, title: &str) -> Option<&Property> {
        self.outputs.iter().find(|p| p.title() == title)
    }
}

/// What a component's configuration implies.
#[derive(Debug, Clone, Default)]
pub struct Inferred {
    /// Inferred inputs (`None`: free).
    pub inputs: Option<Vec<Property>>,
    /// Inferred outputs (`None`: free).
    pub outputs: Option<Vec<Property>>,
    /// Inferred branches (`None`: free).
    pub branches: Option<Vec<String>>,
    /// Whether an explicit `outputs` list replaces the inferred one entirely (LlmNode, ApiNode,
    /// ParallelFlowNode inputs...): then only the declared list counts.
    pub outputs_explicit_wins: bool,
    /// Whether an explicit `inputs` list replaces the inferred one entirely.
    pub inputs_explicit_wins: bool,
    /// Whether any explicit `branches` list is accepted (AgentNode).
    pub branches_free_when_given: bool,
}

/// Memoized inference over a whole spec.
pub struct Inferrer<'s> {
    spec: &'s Spec,
    io: Vec<Option<Io>>,
    inferred: Vec<Option<Inferred>>,
    in_progress: Vec<bool>,
}

impl<'s> Inferrer<'s> {
    /// An inferrer for `spec`.
    pub fn new(spec: &'s Spec) -> Self {
        let n = spec.components.len();
        Inferrer { spec, io: vec![None; n], inferred: vec![None; n], in_progress: vec![false; n] }
    }

    /// The resolved interface of a component.
    pub fn io(&mut self, c: CompId) -> Io {
        if let Some(io) = &self.io[c] {
            return io.clone();
        }
        if self.in_progress[c] {
            // Only a malformed document can make a component depend on itself; the loader has
            // already reported it. Break the loop with what is declared.
            return declared_only(self.spec.get(c));
        }
        self.in_progress[c] = true;
        let inf = self.inferred(c);
        let comp = self.spec.get(c);
        let mut io = Io {
            inputs: comp.inputs.clone().or_else(|| inf.inputs.clone()).unwrap_or_default(),
            outputs: comp.outputs.clone().or_else(|| inf.outputs.clone()).unwrap_or_default(),
            branches: comp.branches.clone().or_else(|| inf.branches.clone()).unwrap_or_default(),
        };
        // StartNode and EndNode: inputs and outputs copy each other when only one is given.
        if comp.is("StartNode") || comp.is("EndNode") {
            match (&comp.inputs, &comp.outputs) {
                (Some(i), None) => io.outputs = i.clone(),
                (None, Some(o)) => io.inputs = o.clone(),
                _ => {}
            }
        }
        if comp.ty.io != IoKind::Node {
            io.branches.clear();
        }
        self.in_progress[c] = false;
        self.io[c] = Some(io.clone());
        io
    }

    /// What the configuration implies (memoized).
    pub fn inferred(&mut self, c: CompId) -> Inferred {
        if let Some(inf) = &self.inferred[c] {
            return inf.clone();
        }
        let inf = self.compute(c);
        self.inferred[c] = Some(inf.clone());
        inf
    }

    fn compute(&mut self, c: CompId) -> Inferred {
        let spec = self.spec;
        let comp = spec.get(c);
        let mut inf = Inferred::default();
        let next = || Some(vec!["next".to_owned()]);
        match comp.ty.name {
            "Flow" | "ExtendedFlow" => {
                if let Some(start) = comp.comp_field("start_node") {
                    inf.inputs = Some(self.io(start).inputs);
                }
                inf.outputs = Some(self.flow_outputs(c));
                // Declared flow outputs follow their own rule (FORMAT.md 7.1), checked with the
                // flow, not a title-set comparison.
                inf.outputs_explicit_wins = true;
            }
            "StartNode" | "EndNode" => {
                inf.branches = Some(if comp.is("StartNode") { vec!["next".into()] } else { Vec::new() });
            }
            "LlmNode" => {
                inf.inputs = Some(string_props(&placeholders(comp.str_field("prompt_template").unwrap_or(""))));
                inf.outputs = Some(vec![generated_text()]);
                inf.outputs_explicit_wins = true;
                inf.branches = next();
            }
            "ExtendedLlmNode" => {
                let template = comp.comp_field("prompt_template_object").map(|t| spec.get(t));
                let from_template = template.and_then(|t| t.props_field("inputs")).filter(|p| !p.is_empty());
                let inputs = match from_template {
                    Some(p) => p.to_vec(),
                    None => match template {
                        Some(t) => template_inputs(t),
                        None => string_props(&placeholders(comp.str_field("prompt_template").unwrap_or(""))),
                    },
                };
                let outputs = match template.and_then(|t| t.prop_field("response_format")) {
                    Some(rf) => vec![rf.clone()],
                    None => vec![Property::new(json!({"title": "output", "type": "string", "description": "the generated text"}))],
                };
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                inf.outputs = Some(map_titles(comp, "output_mapping", outputs));
                inf.branches = next();
            }
            "ToolNode" | "ExtendedToolNode" => {
                if let Some(tool) = comp.comp_field("tool") {
                    let io = self.io(tool);
                    inf.inputs = Some(map_titles(comp, "input_mapping", io.inputs));
                    inf.outputs = Some(map_titles(comp, "output_mapping", io.outputs));
                }
                inf.branches = next();
            }
            "AgentNode" | "ExtendedAgentNode" => {
                if let Some(agent) = comp.comp_field("agent") {
                    let io = self.io(agent);
                    inf.inputs = Some(map_titles(comp, "input_mapping", io.inputs));
                    inf.outputs = Some(map_titles(comp, "output_mapping", io.outputs));
                }
                if comp.is("ExtendedAgentNode") {
                    inf.outputs_explicit_wins = true;
                }
                inf.branches = next();
                inf.branches_free_when_given = true;
            }
            "FlowNode" => {
                if let Some(sub) = comp.comp_field("subflow") {
                    let io = self.io(sub);
                    inf.inputs = Some(io.inputs);
                    inf.outputs = Some(io.outputs);
                    inf.branches = Some(self.end_branches(sub));
                }
            }
            "BranchingNode" => {
                inf.inputs = Some(vec![Property::typed("branching_mapping_key", "string")]);
                inf.inputs_explicit_wins = true;
                inf.outputs = Some(Vec::new());
                let mut b: Vec<String> = comp
                    .json_field("mapping")
                    .and_then(Json::as_object)
                    .map(|m| m.values().filter_map(Json::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                b.push("default".into());
                inf.branches = Some(sorted_unique(b));
            }
            "MapNode" | "ParallelMapNode" => {
                if let Some(sub) = comp.comp_field("subflow") {
                    let io = self.io(sub);
                    inf.inputs = Some(
                        io.inputs
                            .iter()
                            .map(|p| {
                                let item = p.schema.clone();
                                Property::new(json!({
                                    "title": format!("iterated_{}", p.title()),
                                    "anyOf": [item, {"type": "array", "items": item}],
                                }))
                            })
                            .collect(),
                    );
                    let reducers = comp.json_field("reducers");
                    let mut outs = Vec::new();
                    for o in &io.outputs {
                        let method = match reducers {
                            None | Some(Json::Null) => Some("append"),
                            Some(Json::Object(m)) => m.get(o.title()).map(|v| v.as_str().unwrap_or("append")),
                            _ => None,
                        };
                        let Some(method) = method else { continue };
                        let title = format!("collected_{}", o.title());
                        if method == "append" {
                            outs.push(Property::new(json!({"title": title, "type": "array", "items": o.schema})));
                        } else {
                            outs.push(o.retitled(&title));
                        }
                    }
                    inf.outputs = Some(outs);
                }
                inf.branches = next();
            }
            "ParallelFlowNode" | "ExtendedParallelFlowNode" => {
                let field = if comp.is("ParallelFlowNode") { "subflows" } else { "flows" };
                let mut inputs: Vec<Property> = Vec::new();
                let mut outputs: Vec<Property> = Vec::new();
                for sub in comp.comp_list(field) {
                    let io = self.io(sub);
                    for p in io.inputs {
                        if !inputs.iter().any(|q| q.title() == p.title()) {
                            inputs.push(p);
                        }
                    }
                    outputs.extend(io.outputs);
                }
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                inf.outputs = Some(map_titles(comp, "output_mapping", outputs));
                inf.inputs_explicit_wins = true;
                inf.branches = next();
            }
            "InputMessageNode" => {
                inf.inputs = Some(string_props(&placeholders(comp.str_field("message").unwrap_or(""))));
                inf.outputs = Some(vec![Property::typed("user_input", "string")]);
                inf.branches = next();
            }
            "OutputMessageNode" => {
                inf.inputs = Some(string_props(&placeholders(comp.str_field("message").unwrap_or(""))));
                inf.outputs = Some(Vec::new());
                inf.branches = next();
            }
            "ApiNode" => {
                inf.inputs = Some(string_props(&http_placeholders(comp)));
                inf.outputs = Some(vec![Property::new(json!({"title": "response"}))]);
                inf.outputs_explicit_wins = true;
                inf.branches = next();
            }
            "RemoteTool" => {
                inf.inputs = Some(string_props(&http_placeholders(comp)));
            }
            "CatchExceptionNode" => {
                if let Some(sub) = comp.comp_field("subflow") {
                    let io = self.io(sub);
                    inf.inputs = Some(io.inputs);
                    let mut outs = io.outputs;
                    outs.push(Property::new(json!({
                        "title": "caught_exception_info",
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": null,
                    })));
                    inf.outputs = Some(outs);
                    let mut b = self.end_branches(sub);
                    b.push("caught_exception_branch".into());
                    inf.branches = Some(sorted_unique(b));
                }
            }
            "Agent" | "ExtendedAgent" => {
                inf.inputs = Some(string_props(&placeholders(comp.str_field("system_prompt").unwrap_or(""))));
            }
            "SpecializedAgent" => {
                let mut inputs = Vec::new();
                let mut outputs = Vec::new();
                for part in [comp.comp_field("agent"), comp.comp_field("agent_specialization_parameters")].into_iter().flatten() {
                    let io = self.io(part);
                    union_into(&mut inputs, io.inputs);
                    union_into(&mut outputs, io.outputs);
                }
                inf.inputs = Some(inputs);
                inf.outputs = Some(outputs);
            }
            "AgentSpecializationParameters" => {
                inf.inputs = Some(string_props(&placeholders(comp.str_field("additional_instructions").unwrap_or(""))));
                inf.outputs = Some(Vec::new());
            }
            "PluginOutputMessageNode" => {
                inf.inputs = Some(map_titles(comp, "input_mapping", string_props(&placeholders(comp.str_field("message").unwrap_or("")))));
                let expose = comp.json_field("expose_message_as_output").and_then(Json::as_bool).unwrap_or(true);
                let outs = if expose { vec![Property::typed("output_message", "string")] } else { Vec::new() };
                inf.outputs = Some(map_titles(comp, "output_mapping", outs));
                inf.outputs_explicit_wins = true;
                inf.branches = next();
            }
            "PluginInputMessageNode" => {
                let inputs = jinja_titles(comp.str_field("message_template").unwrap_or(""), &[]);
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                inf.outputs = Some(map_titles(comp, "output_mapping", vec![Property::typed("user_provided_input", "string")]));
                inf.branches = next();
            }
            "PluginTemplateNode" => {
                let inputs = jinja_titles(comp.str_field("template").unwrap_or(""), &[]);
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                inf.outputs = Some(map_titles(comp, "output_mapping", vec![Property::typed("output", "string")]));
                inf.branches = next();
            }
            "PluginRegexNode" => {
                inf.inputs = Some(map_titles(comp, "input_mapping", vec![Property::typed("text", "string")]));
                inf.outputs = Some(map_titles(comp, "output_mapping", vec![Property::new(json!({"title": "output"}))]));
                inf.branches = next();
            }
            "PluginExtractNode" => {
                inf.inputs = Some(map_titles(comp, "input_mapping", vec![Property::typed("text", "string")]));
                inf.outputs = Some(map_titles(comp, "output_mapping", key_props(comp, "output_values")));
                inf.branches = next();
            }
            "PluginConstantValuesNode" => {
                inf.inputs = Some(Vec::new());
                inf.outputs = Some(map_titles(comp, "output_mapping", key_props(comp, "constant_values")));
                inf.branches = next();
            }
            "PluginGetChatHistoryNode" => {
                let inputs = match comp.str_field("output_template") {
                    Some(t) if !t.is_empty() => jinja_titles(t, &["chat_history"]),
                    _ => Vec::new(),
                };
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                inf.outputs = Some(map_titles(comp, "output_mapping", vec![Property::new(json!({"title": "chat_history"}))]));
                inf.branches = next();
            }
            "PluginChoiceNode" => {
                let inputs = jinja_titles(comp.str_field("prompt_template").unwrap_or(""), &["next_steps"]);
                inf.inputs = Some(map_titles(comp, "input_mapping", inputs));
                let outs = vec![Property::typed("selected_choice", "string"), Property::typed("llm_output", "string")];
                inf.outputs = Some(map_titles(comp, "output_mapping", outs));
                let mut b: Vec<String> = comp
                    .json_field("next_branches")
                    .and_then(Json::as_array)
                    .map(|l| l.iter().filter_map(|e| e.get(0).and_then(Json::as_str).map(str::to_owned)).collect())
                    .unwrap_or_default();
                b.push("default".into());
                inf.branches = Some(sorted_unique(b));
            }
            "PluginRetryNode" => {
                if let Some(sub) = comp.comp_field("flow") {
                    let io = self.io(sub);
                    let success = comp.str_field("success_condition").unwrap_or("");
                    inf.inputs = Some(map_titles(comp, "input_mapping", io.inputs));
                    let mut outs: Vec<Property> = io.outputs.into_iter().filter(|p| p.title() != success).collect();
                    outs.push(Property::typed("retry_step_num_retries", "integer"));
                    outs.push(Property::typed("retry_step_success", "boolean"));
                    inf.outputs = Some(map_titles(comp, "output_mapping", outs));
                    let mut b = self.end_branches(sub);
                    b.push("failure".into());
                    inf.branches = Some(sorted_unique(b));
                }
            }
            "PluginCatchExceptionNode" => {
                if let Some(sub) = comp.comp_field("flow") {
                    let io = self.io(sub);
                    inf.inputs = Some(map_titles(comp, "input_mapping", io.inputs));
                    let mut outs = io.outputs;
                    outs.push(Property::new(json!({"title": "exception_name", "default": ""})));
                    outs.push(Property::new(json!({"title": "exception_payload_name", "default": ""})));
                    inf.outputs = Some(map_titles(comp, "output_mapping", outs));
                    let mut b = self.end_branches(sub);
                    if let Some(Json::Object(m)) = comp.json_field("except_on") {
                        b.extend(m.values().filter_map(Json::as_str).map(str::to_owned));
                    }
                    if comp.json_field("catch_all_exceptions").and_then(Json::as_bool) == Some(true) {
                        b.push("default_exception_branch".into());
                    }
                    inf.branches = Some(sorted_unique(b));
                }
            }
            _ => {
                // Other nodes (WayFlow variable and map nodes, datastore nodes, ...) keep their
                // declared inputs and outputs, and leave through `next`.
                if comp.ty.io == IoKind::Node {
                    inf.branches = next();
                }
            }
        }
        inf
    }

    /// Titles present in every EndNode of a flow (FORMAT.md 7.1).
    fn flow_outputs(&mut self, flow: CompId) -> Vec<Property> {
        let ends: Vec<CompId> = self.spec.get(flow).comp_list("nodes").into_iter().filter(|&n| self.spec.get(n).is("EndNode")).collect();
        let Some((&first, rest)) = ends.split_first() else { return Vec::new() };
        let first_io = self.io(first);
        let rest_ios: Vec<Io> = rest.iter().map(|&e| self.io(e)).collect();
        first_io.outputs.into_iter().filter(|p| rest_ios.iter().all(|io| io.output(p.title()).is_some())).collect()
    }

    /// The distinct `branch_name`s of a flow's EndNodes, sorted.
    pub fn end_branches(&self, flow: CompId) -> Vec<String> {
        let names = self
            .spec
            .get(flow)
            .comp_list("nodes")
            .into_iter()
            .map(|n| self.spec.get(n))
            .filter(|n| n.is("EndNode"))
            .map(|n| n.str_field("branch_name").unwrap_or("next").to_owned())
            .collect();
        sorted_unique(names)
    }
}

fn declared_only(c: &Component) -> Io {
    Io {
        inputs: c.inputs.clone().unwrap_or_default(),
        outputs: c.outputs.clone().unwrap_or_default(),
        branches: c.branches.clone().unwrap_or_default(),
    }
}

fn generated_text() -> Property {
    Property::new(json!({"title": "generated_text", "type": "string", "description": "Raw text generated by the LLM"}))
}

fn string_props(names: &[String]) -> Vec<Property> {
    names.iter().map(|n| Property::typed(n, "string")).collect()
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn union_into(into: &mut Vec<Property>, more: Vec<Property>) {
    for p in more {
        if !into.iter().any(|q| q.title() == p.title()) {
            into.push(p);
        }
    }
}

/// Renames titles through a WayFlow `input_mapping`/`output_mapping` (internal -> external).
fn map_titles(comp: &Component, field: &str, props: Vec<Property>) -> Vec<Property> {
    let Some(Json::Object(mapping)) = comp.json_field(field) else { return props };
    if mapping.is_empty() {
        return props;
    }
    props
        .into_iter()
        .map(|p| match mapping.get(p.title()).and_then(Json::as_str) {
            Some(external) => p.retitled(external),
            None => p,
        })
        .collect()
}

fn http_placeholders(comp: &Component) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["url", "http_method", "api_spec_uri"] {
        if let Some(s) = comp.str_field(f) {
            for p in placeholders(s) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    for f in ["data", "query_params", "headers"] {
        if let Some(v) = comp.json_field(f) {
            json_placeholders(v, &mut out);
        }
    }
    out
}

/// One untyped property per key of an object field (extracted or constant values).
fn key_props(comp: &Component, field: &str) -> Vec<Property> {
    comp.json_field(field)
        .and_then(Json::as_object)
        .map(|m| m.keys().map(|k| Property::new(json!({"title": k}))).collect())
        .unwrap_or_default()
}

/// Inputs of a Jinja template, WayFlow's way, minus variables the node provides itself.
fn jinja_titles(template: &str, provided: &[&str]) -> Vec<Property> {
    jinja_inputs(&[template]).unwrap_or_default().into_iter().map(Property::new).filter(|p| !provided.contains(&p.title())).collect()
}

/// Inputs of a PluginPromptTemplate inferred from its messages (WayFlow's scanner).
fn template_inputs(t: &Component) -> Vec<Property> {
    let Some(Value::Json(Json::Array(messages))) = t.field("messages") else { return Vec::new() };
    let texts: Vec<String> = messages
        .iter()
        .map(|m| {
            m.get("contents")
                .and_then(Json::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter(|p| p.get("type").and_then(Json::as_str).unwrap_or("text") == "text")
                        .filter_map(|p| p.get("content").and_then(Json::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    jinja_inputs(&refs).unwrap_or_default().into_iter().map(Property::new).collect()
}
