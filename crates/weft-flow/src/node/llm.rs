//! LLM nodes: LlmNode and ExtendedLlmNode, with a prompt text or a prompt template object
//! (PluginPromptTemplate: messages, response format, output parsers, tools).

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, next, non_negative};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, map_titles, string_props};
use crate::template::{jinja_inputs, placeholders};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_prompt::{OutputParser, Template};
use weft_spec::{Code, CompId, Component, Property, Value};

/// The types of the family.
pub const TYPES: &[&str] = &[
    "LlmNode",
    "ExtendedLlmNode",
    "PluginPromptTemplate",
    "PluginJsonOutputParser",
    "PluginRegexOutputParser",
    "PluginJsonToolOutputParser",
    "PluginPythonToolOutputParser",
    "PluginReactToolOutputParser",
    "DbmsVectorChainLlmConfig",
];

/// The typed view of an LLM config component.
pub(super) fn config(lw: &Lowerer<'_, '_>, c: CompId) -> weft_spec::LlmConfig {
    let comp = lw.comp(c);
    let f = lw.fields(c);
    let text = |name: &str| if f.has(name) { f.str(name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned) } else { None };
    let api_key = match if f.has("api_key") { comp.field("api_key") } else { None } {
        Some(Value::Secret(secret)) => weft_spec::ApiKey::Secret(secret.clone()),
        Some(Value::Json(Json::String(key))) => weft_spec::ApiKey::Written(key.clone()),
        _ => weft_spec::ApiKey::Absent,
    };
    weft_spec::LlmConfig {
        type_name: comp.ty.name,
        id: comp.id.clone(),
        name: comp.name.clone(),
        pointer: comp.pointer.clone(),
        url: text("url"),
        model_id: text("model_id"),
        api_type: if f.has("api_type") { f.str("api_type").map(str::to_owned) } else { None },
        provider: text("api_provider").or_else(|| text("provider")),
        api_key,
        retry_policy: if f.has("retry_policy") { f.json("retry_policy").filter(|p| p.is_object()).cloned() } else { None },
    }
}

/// An LLM node.
#[derive(Debug)]
pub struct LlmNode {
    /// The LLM config component the model is chosen from.
    pub llm_config: CompId,
    /// Generation parameters, nulls dropped: the template object's `generation_config` when it
    /// has one, else the config's `default_generation_parameters`.
    pub generation: Map<String, Json>,
    /// Whether the answer is also posted to the conversation.
    pub send_message: bool,
    /// How the request is built.
    pub prompt: LlmPrompt,
}

/// How an LLM node builds its request.
#[derive(Debug)]
pub enum LlmPrompt {
    /// One user message from `prompt_template`.
    Text(TextPrompt),
    /// A PluginPromptTemplate.
    Messages(Arc<PromptMessages>),
}

/// A prompt text: LlmNode, and ExtendedLlmNode without a template object.
#[derive(Debug)]
pub struct TextPrompt {
    /// The prompt, with WayFlow's structured-output instructions appended when structured.
    pub template: Arc<Template>,
    /// The node's output schemas, under their internal titles.
    pub outputs: Vec<Json>,
    /// The schema asked for in the prompt and its name, when the output is structured.
    pub structured: Option<(std::sync::Arc<Json>, String)>,
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    /// `system`.
    System,
    /// `user` (also any other role).
    User,
    /// `assistant`.
    Assistant,
}

/// One message of a prompt template object.
#[derive(Debug)]
pub struct PromptMessage {
    /// Its role.
    pub role: MessageRole,
    /// Its text parts, joined by newlines, compiled.
    pub template: Arc<Template>,
    /// Its images, base64.
    pub images: Vec<String>,
    /// `tool_requests`: a recorded call of the model (`tool_request_id`, `name`, `args`), sent as
    /// the assistant's `tool_calls`.
    pub tool_calls: Vec<(String, String, Json)>,
    /// `tool_result`: the id of the call it answers and its `content`, sent as a tool message.
    pub tool_result: Option<(String, Json)>,
    /// The chat history placeholder (a message whose only text is
    /// `$$__CHAT_HISTORY_PLACEHOLDER__$$`): the conversation goes here.
    pub history: bool,
}

/// A message transform of a prompt template object (WayFlow's `MessageTransform`s that change the
/// message list and nothing else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageTransform {
    /// PluginRemoveEmptyNonUserMessageTransform.
    RemoveEmptyNonUser,
    /// PluginCoalesceSystemMessagesTransform.
    CoalesceSystem,
    /// PluginSplitPromptOnMarkerMessageTransform, with its marker.
    SplitOnMarker(String),
    /// PluginLlamaMergeToolRequestAndCallsTransform.
    LlamaMerge,
    /// PluginAppendTrailingSystemMessageToUserMessageTransform.
    AppendTrailingSystem,
    /// PluginReactMergeToolRequestAndCallsTransform.
    ReactMerge,
    /// PluginCanonicalizationMessageTransform.
    Canonicalization,
    /// PluginToolRequestAndCallsTransform.
    ToolRequestAndCalls,
}

/// The marker of the chat history placeholder message.
pub const CHAT_HISTORY_PLACEHOLDER: &str = "$$__CHAT_HISTORY_PLACEHOLDER__$$";

/// The template variable holding the chat history.
pub const CHAT_HISTORY: &str = "__CHAT_HISTORY__";

/// The template variable holding the tools (OpenAI's format) of a template with
/// `native_tool_calling: false`.
pub const TOOLS: &str = "__TOOLS__";

/// A PluginPromptTemplate.
#[derive(Debug)]
pub struct PromptMessages {
    /// The messages, in order.
    pub messages: Vec<PromptMessage>,
    /// The response format's schema, if any.
    pub response_format: Option<Json>,
    /// `native_structured_generation`.
    pub native: bool,
    /// `strict_output_validation`.
    pub strict: bool,
    /// The output parsers, in order.
    pub parsers: Vec<OutputParser>,
    /// Tools offered to the model (their components).
    pub tools: Vec<CompId>,
    /// `native_tool_calling`: the tools go in the request's `tools`; when false they are the
    /// template variable `__TOOLS__` (OpenAI's format) and calls are read from the answer's text
    /// by a tool output parser.
    pub native_tools: bool,
    /// The single output's internal title (the response format's title, else `output`).
    pub output: String,
    /// `generation_config`, when the object gives one.
    pub generation: Option<Map<String, Json>>,
    /// `pre_rendering_transforms`: applied to the chat history before it is inserted.
    pub pre: Vec<MessageTransform>,
    /// `post_rendering_transforms`: applied to the rendered message list, in order.
    pub post: Vec<MessageTransform>,
    /// Whether the template reads the chat history (a placeholder message, or the variable
    /// `__CHAT_HISTORY__`).
    pub history: bool,
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    match lw.comp(n).ty.name {
        "LlmNode" | "ExtendedLlmNode" => lower(lw, n).map(|l| Lowered::Kind(NodeKind::Llm(Box::new(l)))),
        _ => Some(Lowered::NotRunnable),
    }
}

fn lower(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<LlmNode> {
    let f = lw.fields(n);
    let llm_config = f.comp("llm_config")?;
    let send_message = f.bool_where_present("send_message", false);
    let config = lw.fields(llm_config);
    let config_generation =
        if config.has("default_generation_parameters") { generation(config.json("default_generation_parameters")) } else { Map::new() };
    let object = if f.has("prompt_template_object") { f.comp("prompt_template_object") } else { None };
    let (prompt, generation) = match object {
        Some(t) => {
            let messages = lw.prompt_messages(n, t)?;
            // What a message may read: the node's inputs, and the response format when it is
            // given in the prompt rather than natively.
            let mut allowed = lw.input_names(n);
            if messages.response_format.is_some() && !messages.native {
                allowed.push("__RESPONSE_FORMAT__".to_owned());
            }
            // The tools in OpenAI's format, when they are listed in the prompt.
            if !messages.native_tools {
                allowed.push(TOOLS.to_owned());
            }
            // The chat history is filled in from the conversation (WayFlow's PromptExecutionStep).
            allowed.push(CHAT_HISTORY.to_owned());
            let mut ok = true;
            for (i, m) in messages.messages.iter().enumerate() {
                ok &= lw.variables(t, &format!("messages/{i}/contents"), &m.template, &allowed);
            }
            if !ok {
                return None;
            }
            let generation = messages.generation.clone().unwrap_or(config_generation);
            (LlmPrompt::Messages(messages), generation)
        }
        None => (LlmPrompt::Text(text_prompt(lw, n)?), config_generation),
    };
    Some(LlmNode { llm_config, generation, send_message, prompt })
}

fn text_prompt(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<TextPrompt> {
    let f = lw.fields(n);
    let out_map = f.mapping("output_mapping");
    let outputs: Vec<Json> = lw.io(n).outputs.iter().map(|p| p.retitled(&internal_name(&out_map, p.title())).schema).collect();
    let source = f.str("prompt_template").unwrap_or("");
    // WayFlow renders the prompt and the structured-output instructions as one template, so
    // they are compiled together; the prompt alone first, so an error points at the user's text.
    let plain = lw.template(n, "prompt_template", source)?;
    let inputs = lw.input_names(n);
    if !lw.variables(n, "prompt_template", &plain, &inputs) {
        return None;
    }
    let structured = weft_prompt::structured_output_needed(&outputs).then(|| {
        let (schema, shape) = weft_prompt::prompt_schema(&outputs);
        let name = match shape {
            weft_prompt::Shape::Single => {
                outputs.first().and_then(|o| o.get("title")).and_then(Json::as_str).unwrap_or("output").to_owned()
            }
            weft_prompt::Shape::Wrapped => "expected_output".to_owned(),
        };
        (std::sync::Arc::new(schema), name)
    });
    let template = match &structured {
        Some((schema, _)) => lw.template(n, "prompt_template", &weft_prompt::prompt_template_with_suffix(source, schema))?,
        None => plain,
    };
    Some(TextPrompt { template, outputs, structured })
}

/// Lowers a PluginPromptTemplate; what Weft cannot run is recorded against the template object.
pub(super) fn messages(lw: &mut Lowerer<'_, '_>, t: CompId) -> Option<PromptMessages> {
    let spec = lw.spec();
    let tc = spec.get(t);
    let f = lw.fields(t);
    let mut ok = true;
    let mut transforms = |field: &str| -> Option<Vec<MessageTransform>> {
        let mut out = Vec::new();
        for (i, x) in f.comps(field).into_iter().enumerate() {
            let xc = spec.get(x);
            out.push(match xc.ty.name {
                "PluginRemoveEmptyNonUserMessageTransform" => MessageTransform::RemoveEmptyNonUser,
                "PluginCoalesceSystemMessagesTransform" => MessageTransform::CoalesceSystem,
                "PluginLlamaMergeToolRequestAndCallsTransform" => MessageTransform::LlamaMerge,
                "PluginAppendTrailingSystemMessageToUserMessageTransform" => MessageTransform::AppendTrailingSystem,
                "PluginReactMergeToolRequestAndCallsTransform" => MessageTransform::ReactMerge,
                "PluginCanonicalizationMessageTransform" => MessageTransform::Canonicalization,
                "PluginToolRequestAndCallsTransform" => MessageTransform::ToolRequestAndCalls,
                "PluginSplitPromptOnMarkerMessageTransform" => {
                    MessageTransform::SplitOnMarker(Fields::of(xc).str("marker").unwrap_or("\n---").to_owned())
                }
                other => {
                    lw.block(t, x, format!("{}/{field}/{i}", tc.pointer), format!("{other} in a PluginPromptTemplate"));
                    return None;
                }
            });
        }
        Some(out)
    };
    let pre = transforms("pre_rendering_transforms");
    let post = transforms("post_rendering_transforms");
    let (Some(pre), Some(post)) = (pre, post) else { return None };
    let response_format = f.prop("response_format").map(|p| p.schema.clone());
    let native = f.bool("native_structured_generation", true);
    let mut messages = Vec::new();
    let mut history = false;
    if let Some(Json::Array(list)) = f.json("messages") {
        for (i, m) in list.iter().enumerate() {
            let role = match m.get("role").and_then(Json::as_str) {
                Some("system") => MessageRole::System,
                Some("assistant") => MessageRole::Assistant,
                _ => MessageRole::User,
            };
            let tool_calls: Vec<(String, String, Json)> = m
                .get("tool_requests")
                .and_then(Json::as_array)
                .map(|list| {
                    list.iter()
                        .map(|r| {
                            let text = |k: &str| r.get(k).and_then(Json::as_str).unwrap_or_default().to_owned();
                            (text("tool_request_id"), text("name"), r.get("args").cloned().unwrap_or_else(|| Json::Object(Map::new())))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let tool_result = m.get("tool_result").filter(|v| v.is_object()).map(|r| {
                (
                    r.get("tool_request_id").and_then(Json::as_str).unwrap_or_default().to_owned(),
                    r.get("content").cloned().unwrap_or(Json::Null),
                )
            });
            let parts = m.get("contents").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default();
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Json::as_str).unwrap_or("text") == "text")
                .map(|p| p.get("content").and_then(Json::as_str).unwrap_or(""))
                .collect();
            let text = text.join("\n");
            let is_history = text == CHAT_HISTORY_PLACEHOLDER;
            history |= is_history || text.contains(CHAT_HISTORY);
            let images = parts
                .iter()
                .filter(|p| p.get("type").and_then(Json::as_str) == Some("image"))
                .filter_map(|p| p.get("base64_content").and_then(Json::as_str).map(str::to_owned))
                .collect();
            match lw.template(t, &format!("messages/{i}/contents"), &text) {
                Some(template) => messages.push(PromptMessage { role, template, images, tool_calls, tool_result, history: is_history }),
                None => ok = false,
            }
        }
    }
    let strict = f.bool("strict_output_validation", false);
    let mut parsers = Vec::new();
    for p in f.comps("output_parser") {
        match parser(lw, t, p) {
            Some(parser) => parsers.push(parser),
            None => ok = false,
        }
    }
    let tools = f.comps("tools");
    let native_tools = f.bool("native_tool_calling", true);
    let output = response_format.as_ref().and_then(|s| s.get("title")).and_then(Json::as_str).unwrap_or("output").to_owned();
    let generation = match f.json("generation_config") {
        Some(g @ Json::Object(_)) => Some(generation(Some(g))),
        _ => None,
    };
    // The node exposes the response format's title renamed by `output_mapping`; inside the node
    // it keeps its own title, which is also the schema's name in the request.
    ok.then_some(PromptMessages {
        messages,
        response_format,
        native,
        strict,
        parsers,
        tools,
        native_tools,
        output,
        generation,
        pre,
        post,
        history,
    })
}

/// An output parser of template object `t`.
pub(super) fn parser(lw: &mut Lowerer<'_, '_>, t: CompId, p: CompId) -> Option<OutputParser> {
    let pc = lw.comp(p);
    let f = lw.fields(p);
    let (built, field) = match pc.ty.name {
        "PluginJsonOutputParser" => {
            let properties = f.json("properties");
            // Every query first, so each broken one is reported at its own member.
            if let Some(Json::Object(queries)) = properties {
                let mut all = true;
                for (member, query) in queries {
                    if let Some(query) = query.as_str() {
                        all &= lw.jq(p, "properties", member, query).is_some();
                    }
                }
                if !all {
                    return None;
                }
            }
            (OutputParser::json(properties), "properties")
        }
        "PluginRegexOutputParser" => {
            (OutputParser::regex(f.json("regex_pattern").unwrap_or(&Json::Null), f.bool("strict", true)), "regex_pattern")
        }
        other => match weft_prompt::ToolCallFormat::of_component(other) {
            Some(format) => return Some(OutputParser::Tools(format)),
            None => {
                lw.block(t, p, pc.pointer.clone(), pc.ty.name.to_owned());
                return None;
            }
        },
    };
    match built {
        Ok(parser) => Some(parser),
        Err(e) => {
            let pointer = format!("{}/{field}", pc.pointer);
            lw.error(p, Code::BadValue, pointer, e.to_string(), "fix the parser's configuration (FORMAT.md 11)");
            None
        }
    }
}

/// Generation parameters from a plain LlmGenerationConfig object, nulls dropped.
pub(crate) fn generation(v: Option<&Json>) -> Map<String, Json> {
    match v {
        Some(Json::Object(m)) => m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Map::new(),
    }
}

pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    match comp.ty.name {
        "DbmsVectorChainLlmConfig" => dbms(cx, c),
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
        _ => {}
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

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let spec = inf.spec();
    let comp = spec.get(c);
    let f = Fields::of(comp);
    match comp.ty.name {
        "LlmNode" => Some(Inferred {
            inputs: Some(string_props(&placeholders(f.str("prompt_template").unwrap_or("")))),
            outputs: Some(vec![Property::new(
                serde_json::json!({"title": "generated_text", "type": "string", "description": "Raw text generated by the LLM"}),
            )]),
            outputs_explicit_wins: true,
            branches: next(),
            ..Inferred::default()
        }),
        "ExtendedLlmNode" => {
            let template = f.comp("prompt_template_object").map(|t| spec.get(t));
            let from_template = template.and_then(|t| Fields::of(t).prop_list("inputs")).filter(|p| !p.is_empty());
            let inputs = match from_template {
                Some(p) => p.to_vec(),
                None => match template {
                    Some(t) => template_inputs(t),
                    None => string_props(&placeholders(f.str("prompt_template").unwrap_or(""))),
                },
            };
            let outputs = match template.and_then(|t| Fields::of(t).prop("response_format")) {
                Some(rf) => vec![rf.clone()],
                None => vec![Property::new(serde_json::json!({"title": "output", "type": "string", "description": "the generated text"}))],
            };
            Some(Inferred {
                inputs: Some(map_titles(&f.mapping("input_mapping"), inputs)),
                outputs: Some(map_titles(&f.mapping("output_mapping"), outputs)),
                branches: next(),
                ..Inferred::default()
            })
        }
        _ => None,
    }
}

/// Inputs of a PluginPromptTemplate inferred from its messages (WayFlow's scanner).
fn template_inputs(t: &Component) -> Vec<Property> {
    let Some(Json::Array(messages)) = Fields::of(t).json("messages") else { return Vec::new() };
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
