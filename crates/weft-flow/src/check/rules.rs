//! Component-specific rules (FORMAT.md 8, 10, 11 and 12): reducers, Swarm and ManagerWorkers
//! cardinality, header overlap, DbmsVectorChain exclusivity, CatchExceptionNode defaults,
//! prompt templates, and the parallel rules WayFlow enforces at build time.

use super::Cx;
use crate::infer::Inferrer;
use serde_json::Value as Json;
use std::collections::HashMap;
use weft_spec::{Code, CompId, Value};

const MESSAGE_TYPES: &[&str] = &["SYSTEM", "AGENT", "USER", "THOUGHT", "INTERNAL", "TOOL_REQUEST", "TOOL_RESULT", "ERROR", "DISPLAY_ONLY"];

pub(super) fn check(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>) {
    let spec = cx.spec;
    for (c, comp) in spec.components.iter().enumerate() {
        if cx.skip(c) {
            continue;
        }
        match comp.ty.name {
            "ExtendedToolNode" if comp.json_field("raise_exceptions").and_then(Json::as_bool) == Some(false) => {
                let outputs = inf.io(c).outputs;
                if outputs.len() > 1 {
                    let titles: Vec<&str> = outputs.iter().map(|p| p.title()).collect();
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/raise_exceptions", comp.pointer),
                        format!(
                            "{}: `raise_exceptions: false` puts a tool error's text into the tool's single output, but this tool has {} outputs ({})",
                            comp.label(),
                            outputs.len(),
                            titles.join(", ")
                        ),
                        Some("set `raise_exceptions: true`, or give the tool a single output".into()),
                    );
                }
            }
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
            "ApiNode"
            | "RemoteTool"
            | "SSETransport"
            | "StreamableHTTPTransport"
            | "SSEmTLSTransport"
            | "StreamableHTTPmTLSTransport"
            | "PluginSSETransport"
            | "PluginStreamableHTTPTransport"
            | "PluginSSEmTLSTransport"
            | "PluginStreamableHTTPmTLSTransport" => {
                if let (Some(Json::Object(h)), Some(Json::Object(s))) =
                    (comp.json_field("headers"), object_value(comp.field("sensitive_headers")))
                    && let Some(k) = h.keys().find(|k| s.contains_key(*k))
                {
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/sensitive_headers", comp.pointer),
                        format!("{}: header \"{k}\" is in both `headers` and `sensitive_headers`", comp.label()),
                        Some("keep each header in one of the two".into()),
                    );
                }
            }
            "DbmsVectorChainLlmConfig" => dbms(cx, c),
            "CatchExceptionNode" => {
                if let Some(outs) = &comp.outputs {
                    for p in outs {
                        if p.default().is_none() {
                            cx.report(
                                comp,
                                Code::Default,
                                p.pointer.clone(),
                                format!("{}: output \"{}\" needs a default, used when an exception is caught", comp.label(), p.title()),
                                Some("add a \"default\" to this output".into()),
                            );
                        }
                    }
                }
                if let Some(sub) = comp.comp_field("subflow") {
                    let io = inf.io(sub);
                    if io.output("caught_exception_info").is_some() {
                        cx.report(
                            comp,
                            Code::ComponentRule,
                            format!("{}/subflow", comp.pointer),
                            format!("{}: the subflow must not output `caught_exception_info`", comp.label()),
                            Some("rename that subflow output".into()),
                        );
                    }
                    if inf.end_branches(sub).iter().any(|b| b == "caught_exception_branch") {
                        cx.report(
                            comp,
                            Code::ComponentRule,
                            format!("{}/subflow", comp.pointer),
                            format!("{}: the subflow must not end on a branch named `caught_exception_branch`", comp.label()),
                            Some("rename that EndNode's branch_name".into()),
                        );
                    }
                }
            }
            "ExtendedLlmNode" => {
                let text = comp.str_field("prompt_template").is_some_and(|s| !s.is_empty());
                let object = comp.comp_field("prompt_template_object").is_some();
                if text == object {
                    let msg = if text {
                        "has both a `prompt_template` and a `prompt_template_object`"
                    } else {
                        "has neither a `prompt_template` nor a `prompt_template_object`"
                    };
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        comp.pointer.clone(),
                        format!("{}: {msg}; exactly one must be set", comp.label()),
                        Some("keep the template object and set `prompt_template` to \"\", or drop the object".into()),
                    );
                }
            }
            "PluginPromptTemplate" => {
                let parser_missing = matches!(comp.field("output_parser"), None | Some(Value::Json(Json::Null)));
                let native_sg = comp.json_field("native_structured_generation").and_then(Json::as_bool).unwrap_or(true);
                let native_tc = comp.json_field("native_tool_calling").and_then(Json::as_bool).unwrap_or(true);
                if parser_missing && (!native_sg || !native_tc) {
                    let which = if !native_sg { "native_structured_generation" } else { "native_tool_calling" };
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/output_parser", comp.pointer),
                        format!("{}: `{which}` is false, so an `output_parser` is needed to read the answer", comp.label()),
                        Some("add a PluginJsonOutputParser (or the parser that matches the prompt), or set the flag to true".into()),
                    );
                }
            }
            "PluginRetryNode" => {
                if let Some(n) = comp.json_field("max_num_trials").and_then(Json::as_i64)
                    && !(0..=20).contains(&n)
                {
                    cx.report(
                        comp,
                        Code::BadValue,
                        format!("{}/max_num_trials", comp.pointer),
                        format!("{}: `max_num_trials` is {n}; it must be between 0 and 20", comp.label()),
                        Some("use a value from 0 to 20".into()),
                    );
                }
            }
            "ParallelFlowNode" | "ExtendedParallelFlowNode" => parallel_flow(cx, inf, c),
            "PluginGetChatHistoryNode" => {
                for f in ["n", "offset"] {
                    non_negative(cx, comp, f, "it must not be negative", Some(format!("use a `{f}` of 0 or more")));
                }
                if let Some(Json::Array(types)) = comp.json_field("message_types") {
                    for (i, t) in types.iter().enumerate() {
                        if !t.as_str().is_some_and(|t| MESSAGE_TYPES.contains(&t)) {
                            cx.report(
                                comp,
                                Code::BadValue,
                                format!("{}/message_types/{i}", comp.pointer),
                                format!("{}: {t} is not a message type", comp.label()),
                                Some(format!("use one of {}", MESSAGE_TYPES.join(", "))),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        let parallel_map = matches!(comp.ty.name, "ParallelMapNode" | "ExtendedParallelMapNode")
            || (comp.is("ExtendedMapNode") && comp.json_field("parallel_execution").and_then(Json::as_bool) == Some(true));
        if parallel_map {
            let field = if comp.is("ParallelMapNode") { "subflow" } else { "flow" };
            if let Some(sub) = comp.comp_field(field) {
                yielding(cx, c, sub, "a parallel map");
            }
        }
    }
}

/// A field's object value, also when it is a sensitive value supplied in clear.
fn object_value(v: Option<&Value>) -> Option<Json> {
    match v {
        Some(Value::Json(j @ Json::Object(_))) => Some(j.clone()),
        Some(Value::Secret(s)) => s.value.as_deref().and_then(|t| serde_json::from_str::<Json>(t).ok()).filter(Json::is_object),
        _ => None,
    }
}

/// Reports an integer field that is negative.
fn non_negative(cx: &mut Cx<'_>, comp: &weft_spec::Component, field: &str, rule: &str, hint: Option<String>) {
    if let Some(v) = comp.json_field(field).and_then(Json::as_i64)
        && v < 0
    {
        cx.report(comp, Code::BadValue, format!("{}/{field}", comp.pointer), format!("{}: `{field}` is {v}; {rule}", comp.label()), hint);
    }
}

fn dbms(cx: &mut Cx<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    let set = |f: &str| comp.json_field(f).is_some_and(|v| !v.is_null());
    if set("host") == set("credential_name") {
        cx.report(
            comp,
            Code::ComponentRule,
            comp.pointer.clone(),
            format!("{}: exactly one of `host` and `credential_name` must be set", comp.label()),
            Some("set `host` to \"local\" or give a `credential_name`, not both".into()),
        );
    }
    if set("host") {
        let provider = comp.str_field("provider").unwrap_or("");
        if !matches!(provider, "openai" | "ollama") {
            cx.report(
                comp,
                Code::ComponentRule,
                format!("{}/host", comp.pointer),
                format!("{}: `host` is allowed only with provider openai or ollama, not \"{provider}\"", comp.label()),
                Some("use a `credential_name` for this provider".into()),
            );
        }
    }
    for f in ["api_provider", "api_type", "api_key"] {
        if set(f) || matches!(comp.field(f), Some(Value::Secret(_))) {
            cx.report(
                comp,
                Code::ComponentRule,
                format!("{}/{f}", comp.pointer),
                format!("{}: `{f}` must not be set on a DbmsVectorChainLlmConfig", comp.label()),
                Some(format!("remove `{f}`")),
            );
        }
    }
    non_negative(cx, comp, "transfer_timeout", "it must be >= 0", None);
    for f in ["model_id", "provider", "url"] {
        if comp.str_field(f).is_some_and(str::is_empty) {
            cx.report(comp, Code::BadValue, format!("{}/{f}", comp.pointer), format!("{}: `{f}` must not be empty", comp.label()), None);
        }
    }
}

fn parallel_flow(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>, c: CompId) {
    let spec = cx.spec;
    let comp = spec.get(c);
    let field = if comp.is("ParallelFlowNode") { "subflows" } else { "flows" };
    let subs = comp.comp_list(field);
    let mut outputs: HashMap<String, usize> = HashMap::new();
    let mut inputs: HashMap<String, serde_json::Value> = HashMap::new();
    for (i, &sub) in subs.iter().enumerate() {
        if cx.skip(sub) {
            continue;
        }
        let io = inf.io(sub);
        for p in &io.outputs {
            if let Some(&first) = outputs.get(p.title()) {
                cx.report(
                    comp,
                    Code::Parallel,
                    comp.pointer.clone(),
                    format!(
                        "{}: branches {first} and {i} both output \"{}\"; the merged outputs would overwrite each other",
                        comp.label(),
                        p.title()
                    ),
                    Some("rename the output in one of the branches (or map it with output_mapping)".into()),
                );
            } else {
                outputs.insert(p.title().to_owned(), i);
            }
        }
        for p in &io.inputs {
            match inputs.get(p.title()) {
                Some(s) if !crate::schema::same_type(s, &p.schema) => cx.report(
                    comp,
                    Code::IoMismatch,
                    comp.pointer.clone(),
                    format!(
                        "{}: branches take input \"{}\" with different types ({} and {})",
                        comp.label(),
                        p.title(),
                        weft_spec::model::type_name(s),
                        p.type_name()
                    ),
                    Some("give the shared input the same type in every branch, or rename it".into()),
                ),
                Some(_) => {}
                None => {
                    inputs.insert(p.title().to_owned(), p.schema.clone());
                }
            }
        }
        yielding(cx, c, sub, "a parallel branch");
    }
}

/// Reports nodes of `flow` (and of flows nested in it) that may stop to wait for the user or
/// the client, which WayFlow refuses inside parallel branches and parallel maps.
fn yielding(cx: &mut Cx<'_>, parallel: CompId, flow: CompId, context: &str) {
    let spec = cx.spec;
    let mut stack = vec![flow];
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = stack.pop() {
        if !seen.insert(f) {
            continue;
        }
        let fl = spec.get(f);
        for (i, n) in fl.comp_list("nodes").into_iter().enumerate() {
            let node = spec.get(n);
            if let Some(why) = yields(spec, n) {
                cx.report(
                    node,
                    Code::Parallel,
                    format!("{}/nodes/{i}", fl.pointer),
                    format!("{} may {why}, which is not allowed inside {context} ({})", node.label(), spec.get(parallel).label()),
                    Some("move the interaction before or after the parallel node".into()),
                );
            }
            for sub in ["subflow", "flow"] {
                if let Some(s) = node.comp_field(sub) {
                    stack.push(s);
                }
            }
            for s in node.comp_list("subflows").into_iter().chain(node.comp_list("flows")) {
                stack.push(s);
            }
        }
    }
}

fn yields(spec: &weft_spec::Spec, n: CompId) -> Option<&'static str> {
    let node = spec.get(n);
    match node.ty.name {
        "InputMessageNode" | "PluginInputMessageNode" => Some("ask the user for input"),
        "ToolNode" | "ExtendedToolNode" => {
            let tool = spec.get(node.comp_field("tool")?);
            if tool.is("ClientTool") {
                Some("yield a client tool request")
            } else if tool.json_field("requires_confirmation").and_then(Json::as_bool) == Some(true) {
                Some("ask the user to confirm a tool call")
            } else {
                None
            }
        }
        "AgentNode" | "ExtendedAgentNode" => {
            if node.json_field("caller_input_mode").and_then(Json::as_str) == Some("never") {
                return None;
            }
            let agent = spec.get(node.comp_field("agent")?);
            let asks = match agent.ty.name {
                "Agent" => agent.json_field("human_in_the_loop").and_then(Json::as_bool).unwrap_or(true),
                "ExtendedAgent" => {
                    agent.json_field("caller_input_mode").and_then(Json::as_str) != Some("never")
                        && agent.json_field("human_in_the_loop").and_then(Json::as_bool).unwrap_or(true)
                }
                _ => false,
            };
            let client_tool = agent.comp_list("tools").into_iter().any(|t| {
                spec.get(t).is("ClientTool") || spec.get(t).json_field("requires_confirmation").and_then(Json::as_bool) == Some(true)
            });
            if asks {
                Some("ask the user (its agent has human_in_the_loop)")
            } else if client_tool {
                Some("yield a client tool request")
            } else {
                None
            }
        }
        _ => None,
    }
}
