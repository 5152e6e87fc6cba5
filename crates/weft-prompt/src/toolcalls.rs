//! Tool calls written in a model's text, as WayFlow's tool output parsers read them
//! (`JsonToolOutputParser`, `PythonToolOutputParser`, `ReactToolOutputParser`), for a prompt
//! template that lists its tools in the prompt (`native_tool_calling: false`).
//!
//! A parser splits the answer into thoughts and the text of the calls, reads the calls, and,
//! when it found some, the answer becomes a tool request whose text is the thoughts; the
//! arguments of a call to an offered tool are then corrected to the tool's parameter types and
//! the arguments the tool does not have are dropped (WayFlow's `correct_arguments`). A call to a
//! tool not offered keeps its arguments. An answer in which no call is found (or whose reading
//! fails) stays the text it was.

use serde_json::{Map, Number, Value as Json};

use crate::lenient::parse_lenient;
use crate::pyfmt::{py_eq, py_str};

/// How calls are written in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolCallFormat {
    /// `PluginJsonToolOutputParser`: `{"name": ..., "parameters": {...}}` or a list of them,
    /// read leniently (`json_repair`) from anywhere in the text; no thoughts.
    Json,
    /// `PluginPythonToolOutputParser`: `name(arg=value, ...)`, the whole answer read as Python
    /// (never evaluated); no thoughts.
    Python,
    /// `PluginReactToolOutputParser`: `## Thought: ...` then `## Action:` and the JSON call in a
    /// code fence; what follows `## Observation:` is ignored.
    React,
}

/// A call read from an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TextCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    pub arguments: Map<String, Json>,
}

/// A tool offered in the prompt: its name and its parameters (name to JSON Schema, as WayFlow's
/// `Tool.parameters`, see [`wayflow_schema`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedTool {
    /// The tool's name.
    pub name: String,
    /// Its parameters, in order.
    pub parameters: Map<String, Json>,
}

impl ToolCallFormat {
    /// The parser of a component type (`PluginJsonToolOutputParser`, ...).
    pub fn of_component(type_name: &str) -> Option<ToolCallFormat> {
        match type_name {
            "PluginJsonToolOutputParser" => Some(ToolCallFormat::Json),
            "PluginPythonToolOutputParser" => Some(ToolCallFormat::Python),
            "PluginReactToolOutputParser" => Some(ToolCallFormat::React),
            _ => None,
        }
    }

    /// Reads the calls of `answer`: `Some((thoughts, calls))` when there is at least one, the
    /// arguments corrected against `tools` when given (WayFlow: the template's tools; `None` when
    /// it has none).
    ///
    /// ```
    /// use serde_json::json;
    /// use weft_prompt::ToolCallFormat;
    /// let (thoughts, calls) = ToolCallFormat::React
    ///     .read("## Thought: look it up\n## Action:\n```json\n{\"name\": \"f\", \"parameters\": {\"x\": 1}}\n```", None)
    ///     .unwrap();
    /// assert_eq!(thoughts, "look it up");
    /// assert_eq!((calls[0].name.as_str(), json!(calls[0].arguments)), ("f", json!({"x": 1})));
    /// let (_, calls) = ToolCallFormat::Python.read("f(1, y='a')", None).unwrap();
    /// assert_eq!(json!(calls[0].arguments), json!({"arg0": "1", "y": "a"}));
    /// assert!(ToolCallFormat::Json.read("no call here", None).is_none());
    /// ```
    pub fn read(self, answer: &str, tools: Option<&[OfferedTool]>) -> Option<(String, Vec<TextCall>)> {
        let (thoughts, raw) = match self {
            ToolCallFormat::React => react_split(answer),
            ToolCallFormat::Json | ToolCallFormat::Python => (String::new(), answer.to_owned()),
        };
        let calls = match self {
            ToolCallFormat::Json | ToolCallFormat::React => json_calls(&raw),
            ToolCallFormat::Python => crate::pycall::calls(&raw).unwrap_or_default(),
        };
        if calls.is_empty() {
            return None;
        }
        let calls = calls
            .into_iter()
            .map(|(name, arguments)| {
                let arguments = match tools.and_then(|t| t.iter().find(|t| t.name == name)) {
                    Some(tool) => correct_arguments(&arguments, &tool.parameters),
                    None => arguments,
                };
                TextCall { name, arguments }
            })
            .collect();
        Some((thoughts, calls))
    }
}

/// `ReactToolOutputParser.parse_thoughts_and_calls`.
fn react_split(text: &str) -> (String, String) {
    let mut thoughts = String::new();
    let mut raw = text;
    let splits: Vec<&str> = text.split("## Action:").collect();
    if let [t, r] = splits.as_slice() {
        thoughts = t.strip_prefix("## Thought:").unwrap_or(t).trim().to_owned();
        raw = r;
    }
    if let Some(at) = raw.find("## Observation:") {
        raw = &raw[..at];
    }
    // `re.findall(r"```(?:json)?(.*?)```", raw, re.DOTALL)[0]`, when there is one.
    let mut from = 0;
    while let Some(open) = raw[from..].find("```").map(|k| from + k) {
        let body = open + 3;
        let body = if raw[body..].starts_with("json") && raw[body + 4..].contains("```") { body + 4 } else { body };
        if let Some(close) = raw[body..].find("```") {
            return (thoughts, raw[body..body + close].to_owned());
        }
        from = open + 1;
    }
    (thoughts, raw.to_owned())
}

/// `parse_tool_call_using_json(text, "parameters")`: objects with a `name` and an object
/// `parameters`, from the lenient reading of the text (one object or a list).
fn json_calls(text: &str) -> Vec<(String, Map<String, Json>)> {
    calls_of(parse_lenient(text))
}

/// The `(name, parameters)` of the calls in a parsed answer (WayFlow's JSON tool calls, also
/// those of agents under the Llama template and of Swarm and ManagerWorkers): an object, or a
/// list of objects, each with a string `name` and an object `parameters`; other items are not
/// calls.
pub fn calls_of(parsed: Option<Json>) -> Vec<(String, Map<String, Json>)> {
    let items = match parsed {
        Some(Json::Object(m)) => vec![Json::Object(m)],
        Some(Json::Array(items)) => items,
        _ => return Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Json::Object(mut m) = item else { return None };
            let name = m.get("name")?.as_str()?.to_owned();
            let Some(Json::Object(parameters)) = m.remove("parameters") else { return None };
            Some((name, parameters))
        })
        .collect()
}

/// WayFlow's `correct_arguments`: the arguments the tool has, each corrected to its schema.
fn correct_arguments(arguments: &Map<String, Json>, parameters: &Map<String, Json>) -> Map<String, Json> {
    arguments
        .iter()
        .filter_map(|(k, v)| parameters.get(k).map(|schema| (k.clone(), correct_type(v, schema, true).unwrap_or_else(|| v.clone()))))
        .collect()
}

/// WayFlow's `correct_type`: `None` when the conversion raised and `catch` is false (with
/// `catch`, the value unchanged).
fn correct_type(value: &Json, schema: &Json, catch: bool) -> Option<Json> {
    if schema.get("default").is_some_and(Json::is_null) && value.is_null() {
        return Some(value.clone());
    }
    let ty = match schema.get("type") {
        Some(Json::String(t)) => t.as_str(),
        Some(_) => return Some(value.clone()).filter(|_| catch),
        None => match schema.get("anyOf").and_then(Json::as_array) {
            Some(members) => {
                let mut members: Vec<&Json> = members.iter().collect();
                members.sort_by_key(|m| m.get("type").and_then(Json::as_str).unwrap_or("").to_owned());
                let possible: Vec<Json> = members.into_iter().filter_map(|m| correct_type(value, m, false)).collect();
                if possible.is_empty() {
                    return Some(value.clone());
                }
                if let Some(same) = possible.iter().find(|p| py_eq(p, value))
                    && py_type(same) == py_type(value)
                {
                    return Some(value.clone());
                }
                return possible.into_iter().next();
            }
            None => "object",
        },
    };
    let converted = match ty {
        "string" => Some(Json::String(py_str(value))),
        "integer" => py_int(value),
        "boolean" => match value {
            Json::String(s) => strtobool(s).map(Json::Bool),
            other => Some(Json::Bool(crate::lenient::truthy(other))),
        },
        "number" => py_float(value),
        "array" => {
            let parsed = match value {
                Json::String(s) => parse_lenient(s).unwrap_or_else(|| Json::String(String::new())),
                other => other.clone(),
            };
            let items = match &parsed {
                Json::Array(items) => Some(items.clone()),
                // Iterating a string gives its characters, a dict its keys.
                Json::String(s) => Some(s.chars().map(|c| Json::String(c.to_string())).collect()),
                Json::Object(m) => Some(m.keys().map(|k| Json::String(k.clone())).collect()),
                _ => None,
            };
            match (items, schema.get("items")) {
                (Some(items), Some(item_schema)) => {
                    Some(Json::Array(items.iter().map(|i| correct_type(i, item_schema, true).unwrap_or_else(|| i.clone())).collect()))
                }
                (Some(items), None) if items.is_empty() => Some(Json::Array(items)),
                // The conversion raised: with `catch`, the value as it was then (parsed).
                _ => return if catch { Some(parsed) } else { None },
            }
        }
        "object" if schema.get("additionalProperties").is_some() || schema.get("properties").is_some() => {
            let parsed = match value {
                Json::String(s) => parse_lenient(s).unwrap_or_else(|| Json::String(String::new())),
                other => other.clone(),
            };
            let Json::Object(members) = &parsed else { return if catch { Some(parsed) } else { None } };
            let properties = schema.get("properties").and_then(Json::as_object);
            let mut out = Map::new();
            for (k, v) in members {
                if let Some(child) = properties.and_then(|p| p.get(k)) {
                    out.insert(k.clone(), correct_type(v, child, true).unwrap_or_else(|| v.clone()));
                    continue;
                }
                match schema.get("additionalProperties").unwrap_or(&Json::Bool(true)) {
                    Json::Bool(true) => {
                        out.insert(k.clone(), v.clone());
                    }
                    Json::Bool(false) => {}
                    other => {
                        out.insert(k.clone(), correct_type(v, other, true).unwrap_or_else(|| v.clone()));
                    }
                }
            }
            Some(Json::Object(out))
        }
        _ => None,
    };
    match converted {
        Some(v) => Some(v),
        None if catch => Some(value.clone()),
        None => None,
    }
}

/// Python's type of a JSON value, for `type(a) == type(b)`.
fn py_type(v: &Json) -> u8 {
    match v {
        Json::Null => 0,
        Json::Bool(_) => 1,
        Json::Number(n) if n.is_f64() => 3,
        Json::Number(_) => 2,
        Json::String(_) => 4,
        Json::Array(_) => 5,
        Json::Object(_) => 6,
    }
}

/// Python's `int(v)`, `None` where it raises (or gives an integer JSON cannot hold here).
fn py_int(v: &Json) -> Option<Json> {
    match v {
        Json::Bool(b) => Some(Json::from(i64::from(*b))),
        Json::Number(n) if n.is_f64() => {
            let f = n.as_f64()?.trunc();
            (f.is_finite() && f.abs() < 9.0e18).then(|| Json::from(f as i64))
        }
        Json::Number(n) => Some(Json::Number(n.clone())),
        Json::String(s) => {
            let t = s.trim();
            let (sign, digits) = match t.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, t.strip_prefix('+').unwrap_or(t)),
            };
            let valid = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
                && !digits.starts_with('_')
                && !digits.ends_with('_')
                && !digits.contains("__");
            if !valid {
                return None;
            }
            let n: i64 = digits.replace('_', "").parse().ok()?;
            Some(Json::from(sign * n))
        }
        _ => None,
    }
}

/// Python's `float(v)`, `None` where it raises or gives what JSON cannot hold.
fn py_float(v: &Json) -> Option<Json> {
    let f = match v {
        Json::Bool(b) => f64::from(u8::from(*b)),
        Json::Number(n) => n.as_f64()?,
        Json::String(s) => {
            let t = s.trim();
            let body = t.strip_prefix(['-', '+']).unwrap_or(t);
            let valid = !body.is_empty()
                && body.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+' | '_'))
                && body.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.');
            if !valid {
                return None;
            }
            t.replace('_', "").parse().ok()?
        }
        _ => return None,
    };
    Number::from_f64(f).map(Json::Number)
}

/// WayFlow's `_strtobool`.
fn strtobool(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
        "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

/// A schema as WayFlow writes a tool parameter (`Property.from_json_schema(s).to_json_schema()`:
/// unknown keywords dropped, keys in WayFlow's order, a `null` default making a union with null).
pub fn wayflow_schema(schema: &Json) -> Json {
    crate::schema::Prop::from_schema(schema).to_schema(false)
}

/// WayFlow's `_remove_optional_from_signature`: `anyOf [X, null]` becomes `X`, in the
/// parameter and in its items, additional properties and properties.
pub fn remove_optional(schema: &Json) -> Json {
    let Json::Object(m) = schema else { return schema.clone() };
    let mut m = m.clone();
    let optional =
        m.get("anyOf").and_then(Json::as_array).filter(|a| a.len() == 2 && a.iter().any(|s| *s == serde_json::json!({"type": "null"})));
    if let Some(members) = optional.cloned() {
        m.shift_remove("anyOf");
        if let Some(Json::Object(kept)) = members.into_iter().find(|s| *s != serde_json::json!({"type": "null"})) {
            for (k, v) in kept {
                m.insert(k, v);
            }
        }
    }
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        match k.as_str() {
            "items" | "additionalProperties" => {
                let v = remove_optional(&m[&k]);
                m.insert(k, v);
            }
            "properties" => {
                if let Some(Json::Object(props)) = m.get(&k) {
                    let props: Map<String, Json> = props.iter().map(|(n, p)| (n.clone(), remove_optional(p))).collect();
                    m.insert(k, Json::Object(props));
                }
            }
            _ => {}
        }
    }
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool() -> OfferedTool {
        let parameters = json!({
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "hot": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "unit": {"anyOf": [{"type": "null"}, {"type": "string"}], "default": null},
        });
        OfferedTool { name: "forecast".into(), parameters: parameters.as_object().cloned().unwrap_or_default() }
    }

    #[test]
    fn arguments_are_corrected_to_the_tools_types() {
        let tools = [tool()];
        let (_, calls) = ToolCallFormat::Json
            .read(
                r#"{"name": "forecast", "parameters": {"city": 7, "days": "3", "hot": "yes", "tags": "[1, \"a\"]", "unit": 5, "x": 1}}"#,
                Some(&tools),
            )
            .unwrap();
        assert_eq!(json!(calls[0].arguments), json!({"city": "7", "days": 3, "hot": true, "tags": ["1", "a"], "unit": "5"}));
        let (_, calls) =
            ToolCallFormat::Json.read(r#"{"name": "forecast", "parameters": {"days": "3.5", "unit": null}}"#, Some(&tools)).unwrap();
        assert_eq!(json!(calls[0].arguments), json!({"days": "3.5", "unit": null}));
    }

    #[test]
    fn react_reads_the_fenced_action() {
        let (t, raw) = react_split("## Thought: a\n## Action:\n```json\n{}\n```\n## Observation: x");
        assert_eq!((t.as_str(), raw.as_str()), ("a", "\n{}\n"));
        let (t, raw) = react_split("no fence ``` here");
        assert_eq!((t.as_str(), raw.as_str()), ("", "no fence ``` here"));
    }
}
