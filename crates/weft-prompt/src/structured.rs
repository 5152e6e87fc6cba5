//! Structured output: the schema WayFlow asks for, and how it reads the answer back.

use serde_json::{Map, Value as Json};

use crate::lenient::parse_lenient;
use crate::parsers::OutputParser;
use crate::pyfmt::py_json_dumps;
use crate::schema::{Kind, Prop, Sem, strip_extensions};
use crate::toolcalls::{OfferedTool, TextCall};

/// The sentence WayFlow appends to an LlmNode's prompt to ask for JSON (the constant
/// `JSON_CONSTRAINED_GENERATION_PROMPT` of `wayflowcore/templates/structuredgeneration.py`,
/// WayFlow 26.3.1). The schema follows it directly, without a blank.
pub const JSON_CONSTRAINED_GENERATION_PROMPT: &str = "At the end of your answer, finish with <final_answer>$your_answer$</final_answer> with $your_answer$ being a properly formatted json that is valid against this JSON schema:";

/// What WayFlow puts between the rendered prompt and [`JSON_CONSTRAINED_GENERATION_PROMPT`].
pub const ADDITIONAL_INSTRUCTIONS_HEADER: &str = "\n\n\n## Additional instructions: \n";

/// How the parsed answer maps onto the node's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One object output: the parsed object is that output's value.
    Single,
    /// The `expected_output` wrapper: the parsed object's members are the outputs, by title.
    Wrapped,
}

/// An answer that does not fit the requested structure.
///
/// The message of [`ReplyError::Invalid`] is the one WayFlow's `StructuredOutputValidationError`
/// carries (`Structured output validation failed: ` and the violations joined with `";\n"`), so it
/// can be reported, matched or sent back to the model as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The answer contains no JSON value at all.
    #[error(
        "Structured output validation failed: the answer contains no JSON value; end the answer with <final_answer>$your_answer$</final_answer>, $your_answer$ being JSON that is valid against the schema"
    )]
    NotJson,
    /// The JSON does not match the schema.
    #[error("Structured output validation failed: {}", .violations.join(";\n"))]
    Invalid {
        /// One entry per problem, `<location>: <problem>`, e.g. `score: expected IntegerProperty, got str`.
        violations: Vec<String>,
    },
    /// An output parser's jq query was stopped (its budget, the node's deadline or a
    /// cancellation): the answer cannot be read, and asking again would not help.
    #[error("{0}")]
    Stopped(crate::jq::JqFailure),
}

impl ReplyError {
    /// The individual problems (`[]` for [`ReplyError::NotJson`]).
    pub fn violations(&self) -> &[String] {
        match self {
            ReplyError::NotJson | ReplyError::Stopped(_) => &[],
            ReplyError::Invalid { violations } => violations,
        }
    }
}

/// An agent's `submit_result` arguments under `strict_output_validation` (WayFlow's
/// `_fill_submit_result_defaults`, then `_validate_strict_outputs`): outputs absent from `args`
/// take their declared default, present ones their nested defaults; then nothing is coerced: a
/// member that is not an output, an output still missing, a value not of its type (Python's
/// view: an integer is not a `number`, a boolean is an `integer`) are violations, in that
/// order (`extra: unexpected field`, `temperature: expected FloatProperty, got int`). On
/// success, the outputs by title in declaration order.
pub fn strict_submission(args: &Map<String, Json>, outputs: &[Json]) -> Result<Map<String, Json>, Vec<String>> {
    let props = props_of(outputs);
    let mut filled = args.clone();
    for p in &props {
        let value = match filled.get(&p.name) {
            Some(v) => p.fill(v),
            None => match &p.default {
                Some(d) => p.fill(d),
                None => continue,
            },
        };
        filled.insert(p.name.clone(), value);
    }
    let mut violations: Vec<String> =
        filled.keys().filter(|k| !props.iter().any(|p| p.name == **k)).map(|k| format!("{k}: unexpected field")).collect();
    for p in &props {
        match filled.get(&p.name) {
            None => violations.push(format!("{}: missing required field", p.name)),
            Some(v) => p.violations(v, Sem::PYTHON, &p.name, &mut violations),
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(props.iter().map(|p| (p.name.clone(), filled.get(&p.name).cloned().unwrap_or(Json::Null))).collect())
}

fn props_of(outputs: &[Json]) -> Vec<Prop> {
    outputs.iter().map(Prop::from_schema).collect()
}

fn shape_of(props: &[Prop]) -> Shape {
    if props.len() == 1 && props[0].is_object() { Shape::Single } else { Shape::Wrapped }
}

/// The JSON Schema WayFlow asks an LlmNode for in its prompt (FORMAT 8.1), and how the answer maps
/// onto the outputs.
///
/// The output schemas are first re-serialized as WayFlow does (its `Property` model: unknown
/// keywords dropped, `type` first, then `title`, `description`, `default`, `enum`; an object writes
/// its `additionalProperties`, `true` when absent; a `"default": null` makes a union with null).
///
/// * A single object output (`"type": "object"` with `properties`, even `{}`): its own schema
///   without `title`, with `required` listing its properties that have no `default`
///   ([`Shape::Single`]).
/// * Anything else: `{"title": "expected_output", "description": "the expected output of the
///   generation", "type": "object", "properties": {<title>: <schema>, ...}, "required": [<titles
///   without default>]}` ([`Shape::Wrapped`]).
///
/// ```
/// use serde_json::json;
/// use weft_prompt::{prompt_schema, py_json_dumps, Shape};
/// let (schema, shape) = prompt_schema(&[json!({"title": "tags", "type": "array", "items": {"type": "string"}})]);
/// assert_eq!(shape, Shape::Wrapped);
/// assert_eq!(
///     py_json_dumps(&schema),
///     r#"{"title": "expected_output", "description": "the expected output of the generation", "type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "title": "tags"}}, "required": ["tags"]}"#
/// );
/// ```
pub fn prompt_schema(outputs: &[Json]) -> (Json, Shape) {
    let props = props_of(outputs);
    let shape = shape_of(&props);
    let schema = match shape {
        Shape::Single => {
            let mut s = props[0].to_schema(false);
            if let Json::Object(m) = &mut s {
                let required: Vec<Json> = m
                    .get("properties")
                    .and_then(Json::as_object)
                    .map(|p| p.iter().filter(|(_, v)| v.get("default").is_none()).map(|(k, _)| Json::String(k.clone())).collect())
                    .unwrap_or_default();
                m.insert("required".into(), Json::Array(required));
                m.shift_remove("title");
            }
            s
        }
        Shape::Wrapped => {
            let mut m = Map::new();
            m.insert("title".into(), Json::from("expected_output"));
            m.insert("description".into(), Json::from("the expected output of the generation"));
            m.insert("type".into(), Json::from("object"));
            m.insert("properties".into(), Json::Object(props.iter().map(|p| (p.name.clone(), p.to_schema(false))).collect()));
            m.insert(
                "required".into(),
                Json::Array(props.iter().filter(|p| p.default.is_none()).map(|p| Json::String(p.name.clone())).collect()),
            );
            Json::Object(m)
        }
    };
    (strip_extensions(&schema), shape)
}

/// Whether an LlmNode with these outputs does structured generation: false only for exactly one
/// output of type `string` without `enum` (whatever its title), whose value is the raw text. Also
/// false for no outputs at all.
pub fn structured_output_needed(outputs: &[Json]) -> bool {
    match props_of(outputs).as_slice() {
        [] => false,
        [p] => !(matches!(p.kind, Kind::Str) && p.enum_.is_none()),
        _ => true,
    }
}

/// The text WayFlow appends to an LlmNode's prompt template in structured mode:
/// [`ADDITIONAL_INSTRUCTIONS_HEADER`], [`JSON_CONSTRAINED_GENERATION_PROMPT`], then the schema as
/// Python's `json.dumps` writes it.
///
/// WayFlow appends this to the template *text* and renders the whole as one Jinja template (see
/// [`prompt_template_with_suffix`]). That matters: the template's trailing newline is then no
/// longer removed, and Jinja syntax inside the schema (a `{{` in a description) is interpreted.
pub fn prompt_suffix(schema: &Json) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(ADDITIONAL_INSTRUCTIONS_HEADER);
    s.push_str(JSON_CONSTRAINED_GENERATION_PROMPT);
    s.push_str(&py_json_dumps(schema));
    s
}

/// The template text WayFlow renders for an LlmNode in structured mode: the prompt template
/// followed by [`prompt_suffix`]. Compile it with [`crate::Template::new`] and render it with the
/// node's inputs; the result is the single user message.
pub fn prompt_template_with_suffix(prompt_template: &str, schema: &Json) -> String {
    let mut s = String::with_capacity(prompt_template.len() + 256);
    s.push_str(prompt_template);
    s.push_str(&prompt_suffix(schema));
    s
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The part of the answer WayFlow parses as JSON (FORMAT 8.1): what follows the first
/// `<final_answer>`, up to the next `</final_answer>` or the end of the text, without the blanks and
/// the `$` right inside the tags. Without the opening tag, the whole text.
///
/// This is WayFlow's `FINAL_ANSWER_REGEX`, `<final_answer>\s*\$?(.*?)\$?\s*(?:</final_answer>|$)`
/// with DOTALL, first match.
///
/// ```
/// use weft_prompt::extract_final_answer;
/// assert_eq!(extract_final_answer("think... <final_answer> ${\"a\": 1}$ \n</final_answer> bye"), "{\"a\": 1}");
/// assert_eq!(extract_final_answer("<final_answer>a</final_answer> <final_answer>b</final_answer>"), "a");
/// assert_eq!(extract_final_answer("<final_answer>[1, 2]"), "[1, 2]");
/// assert_eq!(extract_final_answer("no tags"), "no tags");
/// ```
pub fn extract_final_answer(text: &str) -> &str {
    const OPEN: &str = "<final_answer>";
    const CLOSE: &str = "</final_answer>";
    let Some(start) = text.find(OPEN) else { return text };
    let mut rest = text[start + OPEN.len()..].trim_start_matches(is_py_space);
    rest = rest.strip_prefix('$').unwrap_or(rest);
    let body = match rest.find(CLOSE) {
        Some(end) => &rest[..end],
        None => rest,
    };
    let body = body.trim_end_matches(is_py_space);
    body.strip_suffix('$').unwrap_or(body)
}

/// The outputs' values read from the parsed answer, before coercion (prompt mode, FORMAT 8.1).
fn answer_members(parsed: Json, props: &[Prop]) -> Map<String, Json> {
    let first = props.first().map(|p| p.name.clone()).unwrap_or_default();
    match parsed {
        Json::Object(m) if shape_of(props) == Shape::Wrapped => m,
        other => {
            let mut m = Map::new();
            m.insert(first, other);
            m
        }
    }
}

/// The outputs of an LlmNode in prompt mode, read strictly (for asking the model again).
///
/// Extracts the final answer ([`extract_final_answer`]), parses it leniently ([`parse_lenient`]);
/// a value that is not an object becomes the value of the first output; for [`Shape::Single`] the
/// object is the output, for [`Shape::Wrapped`] its members are the outputs, by title (extra
/// members are ignored). Absent outputs and object members that declare a `default` take it; then
/// every output is validated: an absent output without default, a value of the wrong JSON type
/// (an integer is a valid `number`, a boolean is not an `integer`), a value outside `enum`, a member
/// not allowed by `additionalProperties: false` are all reported in one [`ReplyError::Invalid`].
/// No JSON at all is [`ReplyError::NotJson`].
///
/// On success integers in `number` outputs are returned as floats, as WayFlow's cast does.
pub fn outputs_from_answer(text: &str, outputs: &[Json]) -> Result<Map<String, Json>, ReplyError> {
    AnswerReader::new(outputs).read(text)
}

/// An LlmNode's output schemas, modelled once, that read its answers into outputs as
/// [`outputs_from_answer`] does: a node answering many times builds one with its plan instead
/// of modelling its schemas again on every answer.
#[derive(Debug, Clone)]
pub struct AnswerReader {
    props: Vec<Prop>,
}

impl AnswerReader {
    /// The reader of answers for these output schemas.
    pub fn new(outputs: &[Json]) -> AnswerReader {
        AnswerReader { props: props_of(outputs) }
    }

    /// Reads an answer into the outputs, or says what does not fit ([`outputs_from_answer`]).
    pub fn read(&self, text: &str) -> Result<Map<String, Json>, ReplyError> {
        let props = &self.props;
        let parsed = parse_lenient(extract_final_answer(text)).ok_or(ReplyError::NotJson)?;
        let members = answer_members(parsed, props);
        let mut violations = Vec::new();
        let mut result = Map::new();
        for p in props {
            let value = match (members.get(&p.name), &p.default) {
                (Some(v), _) => p.fill(v),
                (None, Some(d)) => p.fill(d),
                (None, None) => {
                    violations.push(format!("{}: missing required field", p.name));
                    continue;
                }
            };
            p.violations(&value, Sem::JSON, &p.name, &mut violations);
            result.insert(p.name.clone(), p.coerce(&value, Sem::PYTHON));
        }
        if violations.is_empty() { Ok(result) } else { Err(ReplyError::Invalid { violations }) }
    }
}

/// Whether `title` can be read with the jq query `.title` (WayFlow builds one per output).
fn jq_field_name(title: &str) -> bool {
    let mut chars = title.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The outputs of an LlmNode in prompt mode, coerced as WayFlow does (FORMAT 8.1): never fails.
///
/// WayFlow's pipeline: the final-answer regex, the JSON parser (lenient; no JSON gives `""`), with
/// several outputs one jq query `.title` per output (a query on a non-object fails and leaves the
/// output absent; a missing member gives `null`), then:
///
/// * one object output: the parsed value is that output;
/// * otherwise a non-object value goes to the first output, an object's members to the outputs by
///   title;
/// * an absent output takes its `default`, else its zero value; a present one is coerced: cast when
///   its type differs (anything to string by `json.dumps`, `null` to `""`, integer and number both
///   ways, boolean and number both ways), else the first `enum` value, else the zero value; objects
///   member by member (missing members get zero values), arrays all or nothing.
///
/// So with several outputs a member missing from the JSON arrives as `null` and gets its zero value
/// rather than its default, while an answer without JSON leaves every output at its default.
pub fn outputs_from_answer_coerced(text: &str, outputs: &[Json]) -> Map<String, Json> {
    let props = props_of(outputs);
    let parsed = parse_lenient(extract_final_answer(text)).unwrap_or_else(|| Json::String(String::new()));
    let content = if props.len() > 1 {
        let mut m = Map::new();
        for p in &props {
            if !jq_field_name(&p.name) {
                continue;
            }
            match &parsed {
                Json::Object(o) => {
                    m.insert(p.name.clone(), o.get(&p.name).cloned().unwrap_or(Json::Null));
                }
                Json::Null => {
                    m.insert(p.name.clone(), Json::Null);
                }
                _ => {}
            }
        }
        Json::Object(m)
    } else {
        parsed
    };
    let members = answer_members(content, &props);
    props
        .iter()
        .map(|p| {
            let v = match members.get(&p.name) {
                Some(v) => p.coerce(v, Sem::PYTHON),
                None => p.default_or_zero(),
            };
            (p.name.clone(), v)
        })
        .collect()
}

/// WayFlow's coercion of one value to a schema (FORMAT 8.1 and 11.1 step 5).
///
/// * Absent (`None`): the schema's `default` when `default_for_absent` and it has one, else the
///   zero value.
/// * A value of the right type is kept (an `enum` must contain it).
/// * Otherwise it is cast where possible: anything to `string` by Python's `json.dumps` (`null` to
///   `""`), integer to number (`5` → `5.0`), number to integer (truncated), number to boolean
///   (`!= 0`), boolean to number (`1`/`0`, `1.0`/`0.0`); arrays item by item, all or nothing (one
///   item that cannot be cast gives `[]`); a union takes the first member that accepts or casts it.
/// * Else the first `enum` value, else the zero value.
/// * An object (`type: object` with `properties`) is coerced member by member, keeping the
///   answer's order; missing members then follow in declaration order with their zero values
///   (the first `enum` value for an enum); members not in `properties` are kept, coerced to an
///   `additionalProperties` schema, or dropped when it is `false`.
///
/// Zero values: `""`, `0`, `0.0`, `false`, `[]`, `{}` for a dictionary, an object of its members'
/// zero values for an object, the first member's for a union, `null` for no type.
///
/// ```
/// use serde_json::json;
/// use weft_prompt::coerce;
/// let s = json!({"type": "object", "properties": {"score": {"type": "integer"}, "summary": {"type": "string", "default": "none"}}});
/// assert_eq!(coerce(Some(&json!({"score": "4", "extra": 1, "summary": 5})), &s, false), json!({"score": 0, "extra": 1, "summary": "5"}));
/// assert_eq!(coerce(Some(&json!("not json")), &s, false), json!({"score": 0, "summary": ""}));
/// ```
pub fn coerce(value: Option<&Json>, schema: &Json, default_for_absent: bool) -> Json {
    let p = Prop::from_schema(schema);
    match value {
        Some(v) => p.coerce(v, Sem::PYTHON),
        None if default_for_absent => p.default_or_zero(),
        None => p.zero(),
    }
}

/// The schema `S` of a native structured-output request (FORMAT 11.1): the response format
/// re-serialized as WayFlow sends it. Every object with `properties` gets
/// `"additionalProperties": false` and `required` listing all its properties (defaults included);
/// dictionaries keep their `additionalProperties`; `title`, `description`, `default` and `enum` stay
/// at every level; unknown keywords and WayFlow's `key_type` / `x_vector_property` are dropped.
///
/// (WayFlow refuses a dictionary anywhere in the schema when the endpoint is OpenAI's own; that
/// check is the caller's.)
///
/// ```
/// use serde_json::json;
/// use weft_prompt::{native_schema, py_json_dumps};
/// let rf = json!({"title": "keywords", "type": "array", "items": {"type": "string", "description": "One keyword"}, "description": "Keywords"});
/// assert_eq!(
///     py_json_dumps(&native_schema(&rf)),
///     r#"{"type": "array", "items": {"type": "string", "description": "One keyword"}, "title": "keywords", "description": "Keywords"}"#
/// );
/// ```
pub fn native_schema(response_format: &Json) -> Json {
    strip_extensions(&Prop::from_schema(response_format).to_schema(true))
}

/// The single output of an ExtendedLlmNode with a prompt template object, from the model's answer
/// (FORMAT 11.1, "From the answer to the output", steps 1 to 5).
///
/// With a `response_format`:
/// 1. in native mode, when the answer is valid JSON, members missing from objects take their
///    declared defaults (recursively) and the answer is re-serialized with Python's `json.dumps`;
/// 2. the output parsers run in order;
/// 3. the text is parsed as plain JSON (no repair), else kept as a string;
/// 4. a JSON object is read by title (`V[title]`) unless the format is an object with `properties`
///    or a dictionary (for a dictionary Weft takes the bare object, where WayFlow loses it); any
///    other value is the output itself;
/// 5. strict: every violation (missing output or member, wrong type, value outside `enum`, member
///    not allowed, an extra top-level member, an answer that is not JSON where JSON is expected)
///    is reported in [`ReplyError::Invalid`] with WayFlow's messages; otherwise the value is
///    coerced as [`coerce`] does (an absent output takes its `default`).
///
/// Strict validation uses Python's type checks, as WayFlow does: `5` is not a valid `number`
/// (Python's `int` is not a `float`), `true` is a valid `integer`.
///
/// Without a `response_format` the output is the text after the parsers.
pub fn template_output(
    answer: &str,
    response_format: Option<&Json>,
    native: bool,
    strict: bool,
    parsers: &[OutputParser],
) -> Result<Json, ReplyError> {
    template_reply(answer, response_format, native, strict, parsers, None).map(|(value, _)| value)
}

/// [`template_output`], with the calls the tool output parsers read in the answer (see
/// [`crate::ToolCallFormat::read`]; their arguments corrected against `tools`, the template's
/// tools when it has some). WayFlow applies the parsers in order to the message: once one found
/// calls, the message is a tool request whose text is the thoughts, which the later parsers
/// read; a later tool parser leaves it as it is.
pub fn template_reply(
    answer: &str,
    response_format: Option<&Json>,
    native: bool,
    strict: bool,
    parsers: &[OutputParser],
    tools: Option<&[OfferedTool]>,
) -> Result<(Json, Vec<TextCall>), ReplyError> {
    let mut calls = Vec::new();
    let mut parse = |mut text: String| -> Result<String, ReplyError> {
        for parser in parsers {
            text = match parser {
                OutputParser::Tools(format) => match format.read(&text, tools).filter(|_| calls.is_empty()) {
                    Some((thoughts, found)) => {
                        calls = found;
                        thoughts
                    }
                    None => text,
                },
                other => other.apply(&text).map_err(ReplyError::Stopped)?,
            };
        }
        Ok(text)
    };
    let Some(rf) = response_format else {
        let text = parse(answer.to_owned())?;
        return Ok((Json::String(text), calls));
    };
    let p = Prop::from_schema(rf);
    let mut text = answer.to_owned();
    if native && let Ok(v) = serde_json::from_str::<Json>(&text) {
        text = py_json_dumps(&p.fill(&v));
    }
    let text = parse(text)?;
    let v = serde_json::from_str::<Json>(&text).unwrap_or(Json::String(text));
    let outputs = match v {
        Json::Object(m) if !p.is_object() && !p.is_dict() => m,
        other => {
            let mut m = Map::new();
            m.insert(p.name.clone(), other);
            m
        }
    };
    if strict {
        let mut violations = Vec::new();
        for k in outputs.keys() {
            if *k != p.name {
                violations.push(format!("{k}: unexpected field"));
            }
        }
        match outputs.get(&p.name) {
            None => violations.push(format!("{}: missing required field", p.name)),
            Some(v) => p.violations(v, Sem::PYTHON, &p.name, &mut violations),
        }
        return if violations.is_empty() {
            Ok((outputs.get(&p.name).cloned().unwrap_or(Json::Null), calls))
        } else {
            Err(ReplyError::Invalid { violations })
        };
    }
    let value = match outputs.get(&p.name) {
        Some(v) => p.coerce(v, Sem::PYTHON),
        None => p.default_or_zero(),
    };
    Ok((value, calls))
}
