//! WayFlow's `Property` model of a JSON Schema, and what WayFlow does with it: re-serialize it,
//! check a value's type, cast a value, fill defaults, coerce an answer, validate it strictly.
//!
//! WayFlow never works on the JSON Schema text itself: it loads it into a `Property` object
//! (`Property.from_json_schema`) and writes it back (`to_json_schema`). Both directions drop
//! keywords WayFlow does not know (`minimum`, `format`, ...) and reorder the rest, and a
//! `"default": null` turns a type into a union with null. Everything that must match WayFlow
//! byte for byte (the schema in the prompt, the schema in the request) goes through this model.

use serde_json::{Map, Value as Json};

use crate::pyfmt::{py_in, py_json_dumps};
use weft_spec::text::{TypeWords, type_name};

/// Metadata shared by every property kind.
#[derive(Debug, Clone)]
pub(crate) struct Prop {
    /// `title`; `""` when absent.
    pub name: String,
    /// `description`; `""` when absent.
    pub description: String,
    /// `default`; `None` when absent (WayFlow's `empty_default`).
    pub default: Option<Json>,
    /// `enum`, when present.
    pub enum_: Option<Vec<Json>>,
    /// The type.
    pub kind: Kind,
}

/// The type of a property, as WayFlow's property classes distinguish them.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Bool,
    Float,
    Int,
    Str,
    Null,
    Any,
    List(Box<Prop>),
    Dict { key: Box<Prop>, value: Box<Prop> },
    Object { props: Vec<(String, Prop)>, addl: Addl },
    Union(Vec<Prop>),
}

/// `additionalProperties` of an object with `properties`.
#[derive(Debug, Clone)]
pub(crate) enum Addl {
    Allowed,
    Forbidden,
    Schema(Box<Prop>),
}

/// How values are matched against types.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sem {
    /// Python's `isinstance(True, int)`: a boolean is an integer.
    pub bool_is_int: bool,
    /// An integer is also a `number` (JSON Schema's view; Python's `isinstance(5, float)` is false).
    pub int_is_number: bool,
}

impl Sem {
    /// Exactly Python's `isinstance` checks, as WayFlow runs them.
    pub const PYTHON: Sem = Sem { bool_is_int: true, int_is_number: false };
    /// JSON Schema's view: `5` is a valid `number`, `true` is not an `integer`.
    pub const JSON: Sem = Sem { bool_is_int: false, int_is_number: true };
}

/// Why a cast failed, mirroring the Python exception classes (only `ValueError` lets a union try
/// its next member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastError {
    Value,
    Type,
    Key,
}

const EXTENSION_KEYS: [&str; 3] = ["_component_type", "key_type", "x_vector_property"];

fn is_int(v: &Json) -> bool {
    matches!(v, Json::Number(n) if !n.is_f64())
}

fn is_float(v: &Json) -> bool {
    matches!(v, Json::Number(n) if n.is_f64())
}

impl Prop {
    fn plain(kind: Kind) -> Prop {
        Prop { name: String::new(), description: String::new(), default: None, enum_: None, kind }
    }

    /// `Property.from_json_schema`.
    pub fn from_schema(schema: &Json) -> Prop {
        let Some(s) = schema.as_object() else {
            return Prop::plain(Kind::Any);
        };
        let text = |key: &str| s.get(key).and_then(Json::as_str).unwrap_or_default().to_owned();
        let default = s.get("default").cloned();
        let enum_ = s.get("enum").and_then(Json::as_array).cloned();
        let meta = |kind: Kind| Prop {
            name: text("title"),
            description: text("description"),
            default: default.clone(),
            enum_: enum_.clone(),
            kind,
        };
        let default_is_null = matches!(default, Some(Json::Null));
        let without_meta = || {
            let mut m = s.clone();
            m.shift_remove("title");
            m.shift_remove("description");
            m.shift_remove("default");
            m
        };
        let add_null = |mut members: Vec<Prop>| {
            if default_is_null && !members.iter().any(|p| matches!(p.kind, Kind::Null)) {
                members.push(Prop::plain(Kind::Null));
            }
            members
        };
        match s.get("type") {
            None | Some(Json::Null) => match s.get("anyOf") {
                Some(any_of) => {
                    let members = any_of.as_array().map(|a| a.iter().map(Prop::from_schema).collect()).unwrap_or_default();
                    meta(Kind::Union(add_null(members)))
                }
                None => meta(Kind::Any),
            },
            Some(Json::Array(types)) => {
                let base = without_meta();
                let members = types
                    .iter()
                    .map(|t| {
                        let mut m = base.clone();
                        m.insert("type".into(), t.clone());
                        Prop::from_schema(&Json::Object(m))
                    })
                    .collect();
                meta(Kind::Union(add_null(members)))
            }
            Some(Json::String(t)) => {
                if default_is_null && t != "null" {
                    let inner = Prop::from_schema(&Json::Object(without_meta()));
                    return meta(Kind::Union(vec![inner, Prop::plain(Kind::Null)]));
                }
                let kind = match t.as_str() {
                    "boolean" => Kind::Bool,
                    "integer" => Kind::Int,
                    "number" => Kind::Float,
                    "string" => Kind::Str,
                    "null" => Kind::Null,
                    "array" => Kind::List(Box::new(s.get("items").map(Prop::from_schema).unwrap_or_else(|| Prop::plain(Kind::Any)))),
                    "object" => {
                        if let Some(props) = s.get("properties") {
                            let props = props
                                .as_object()
                                .map(|p| p.iter().map(|(k, v)| (k.clone(), Prop::from_schema(v))).collect())
                                .unwrap_or_default();
                            let addl = match s.get("additionalProperties") {
                                Some(Json::Bool(false)) => Addl::Forbidden,
                                Some(v @ Json::Object(_)) => Addl::Schema(Box::new(Prop::from_schema(v))),
                                _ => Addl::Allowed,
                            };
                            Kind::Object { props, addl }
                        } else if let Some(addl) = s.get("additionalProperties") {
                            let key = s.get("key_type").map(Prop::from_schema).unwrap_or_else(|| Prop::plain(Kind::Any));
                            let value = if addl.is_object() { Prop::from_schema(addl) } else { Prop::plain(Kind::Any) };
                            Kind::Dict { key: Box::new(key), value: Box::new(value) }
                        } else {
                            Kind::Any
                        }
                    }
                    _ => Kind::Any,
                };
                meta(kind)
            }
            Some(_) => meta(Kind::Any),
        }
    }

    /// An object with `properties` (WayFlow's `ObjectProperty`).
    pub fn is_object(&self) -> bool {
        matches!(self.kind, Kind::Object { .. })
    }

    /// A dictionary: `additionalProperties` without `properties` (WayFlow's `DictProperty`).
    pub fn is_dict(&self) -> bool {
        matches!(self.kind, Kind::Dict { .. })
    }

    fn is_bare_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
            && self.name.is_empty()
            && self.description.is_empty()
            && self.default.is_none()
            && self.enum_.is_none()
    }

    /// `Property.to_json_schema(openai_compatible=openai)`.
    pub fn to_schema(&self, openai: bool) -> Json {
        let mut m = Map::new();
        match &self.kind {
            Kind::Bool => type_only(&mut m, "boolean"),
            Kind::Float => type_only(&mut m, "number"),
            Kind::Int => type_only(&mut m, "integer"),
            Kind::Str => type_only(&mut m, "string"),
            Kind::Null => type_only(&mut m, "null"),
            Kind::Any => {}
            Kind::List(item) => {
                type_only(&mut m, "array");
                m.insert("items".into(), item.to_schema(openai));
            }
            Kind::Dict { key, value } => {
                type_only(&mut m, "object");
                m.insert("additionalProperties".into(), value.to_schema(openai));
                if !key.is_bare_any() {
                    m.insert("key_type".into(), key.to_schema(openai));
                }
            }
            Kind::Object { props, addl } => {
                type_only(&mut m, "object");
                let addl = match addl {
                    _ if openai => Json::Bool(false),
                    Addl::Allowed => Json::Bool(true),
                    Addl::Forbidden => Json::Bool(false),
                    Addl::Schema(p) => p.to_schema(openai),
                };
                m.insert("additionalProperties".into(), addl);
                let props_schema: Map<String, Json> = props.iter().map(|(k, p)| (k.clone(), p.to_schema(openai))).collect();
                m.insert("properties".into(), Json::Object(props_schema));
                if openai {
                    m.insert("required".into(), Json::Array(props.iter().map(|(k, _)| Json::String(k.clone())).collect()));
                }
            }
            Kind::Union(members) => {
                m.insert("anyOf".into(), Json::Array(members.iter().map(|p| p.to_schema(openai)).collect()));
            }
        }
        if !self.name.is_empty() {
            m.insert("title".into(), Json::String(self.name.clone()));
        }
        if !self.description.is_empty() {
            m.insert("description".into(), Json::String(self.description.clone()));
        }
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        if let Some(e) = &self.enum_ {
            m.insert("enum".into(), Json::Array(e.clone()));
        }
        Json::Object(m)
    }

    /// `get_type_str()`: the class-name form used in WayFlow's validation messages.
    pub fn type_str(&self) -> String {
        match &self.kind {
            Kind::Bool => "BooleanProperty".into(),
            Kind::Float => "FloatProperty".into(),
            Kind::Int => "IntegerProperty".into(),
            Kind::Str => "StringProperty".into(),
            Kind::Null => "NullProperty".into(),
            Kind::Any => "AnyProperty".into(),
            Kind::List(item) => format!("ListProperty[{}]", item.type_str()),
            Kind::Dict { key, value } => format!("DictProperty[{}, {}]", key.type_str(), value.type_str()),
            Kind::Object { props, .. } => {
                let fields: Vec<String> = props.iter().map(|(k, p)| format!("    {k}: {}", p.type_str())).collect();
                format!("ObjectProperty[\n{}\n]", fields.join("\n"))
            }
            Kind::Union(members) => {
                let names: Vec<String> = members.iter().map(Prop::type_str).collect();
                format!("UnionProperty[{}]", names.join(", "))
            }
        }
    }

    /// `_type_default_value`: the zero value of the type.
    pub fn zero(&self) -> Json {
        match &self.kind {
            Kind::Bool => Json::Bool(false),
            Kind::Float => Json::from(0.0),
            Kind::Int => Json::from(0),
            Kind::Str => Json::String(String::new()),
            Kind::Null | Kind::Any => Json::Null,
            Kind::List(_) => Json::Array(Vec::new()),
            Kind::Dict { .. } => Json::Object(Map::new()),
            Kind::Object { props, .. } => Json::Object(props.iter().map(|(k, p)| (k.clone(), p.zero())).collect()),
            Kind::Union(members) => members.first().map(Prop::zero).unwrap_or(Json::Null),
        }
    }

    /// `_format_default_value`: the declared default, else the zero value.
    pub fn default_or_zero(&self) -> Json {
        self.default.clone().unwrap_or_else(|| self.zero())
    }

    /// `is_value_of_expected_type`.
    pub fn is_expected(&self, v: &Json, sem: Sem) -> bool {
        if let Some(e) = &self.enum_
            && !py_in(v, e)
        {
            return false;
        }
        match &self.kind {
            Kind::Bool => v.is_boolean(),
            Kind::Float => is_float(v) || (sem.int_is_number && is_int(v)),
            Kind::Int => is_int(v) || (sem.bool_is_int && v.is_boolean()),
            Kind::Str => v.is_string(),
            Kind::Null => v.is_null(),
            Kind::Any => true,
            Kind::List(item) => v.as_array().is_some_and(|a| a.iter().all(|x| item.is_expected(x, sem))),
            Kind::Dict { key, value } => v
                .as_object()
                .is_some_and(|m| m.iter().all(|(k, x)| key.is_expected(&Json::String(k.clone()), sem) && value.is_expected(x, sem))),
            Kind::Object { props, addl } => {
                // A non-object never has the members (WayFlow would look for Python attributes).
                let Some(m) = v.as_object() else { return false };
                let declared_ok = props.iter().all(|(k, p)| match m.get(k) {
                    Some(x) => p.is_expected(x, sem),
                    None => p.default.is_some(),
                });
                declared_ok
                    && match addl {
                        Addl::Allowed => true,
                        Addl::Forbidden => m.keys().all(|k| props.iter().any(|(name, _)| name == k)),
                        Addl::Schema(s) => {
                            m.iter().filter(|(k, _)| !props.iter().any(|(name, _)| name == *k)).all(|(_, x)| s.is_expected(x, sem))
                        }
                    }
            }
            Kind::Union(members) => members.iter().any(|p| p.is_expected(v, sem)),
        }
    }

    /// `_cast_value_into`: the cast, then the `enum` check.
    pub fn cast(&self, v: &Json, sem: Sem) -> Result<Json, CastError> {
        let c = self.try_cast(v, sem)?;
        match &self.enum_ {
            Some(e) if !py_in(&c, e) => Err(CastError::Type),
            _ => Ok(c),
        }
    }

    /// `_try_cast_value_into`.
    fn try_cast(&self, v: &Json, sem: Sem) -> Result<Json, CastError> {
        if matches!(self.kind, Kind::Any) || self.is_expected(v, sem) {
            return Ok(v.clone());
        }
        match (&self.kind, v) {
            (Kind::Str, Json::Null) => Ok(Json::String(String::new())),
            (Kind::Str, _) => Ok(Json::String(py_json_dumps(v))),
            (Kind::Float, Json::Number(n)) if !n.is_f64() => n.as_f64().map(Json::from).ok_or(CastError::Value),
            (Kind::Float, Json::Bool(b)) => Ok(Json::from(if *b { 1.0 } else { 0.0 })),
            (Kind::Int, Json::Number(n)) if n.is_f64() => {
                let f = n.as_f64().ok_or(CastError::Value)?.trunc();
                if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                    Ok(Json::from(f as i64))
                } else if (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                    Ok(Json::from(f as u64))
                } else {
                    Err(CastError::Value)
                }
            }
            (Kind::Int, Json::Bool(b)) => Ok(Json::from(i64::from(*b))),
            (Kind::Bool, Json::Number(n)) => Ok(Json::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
            (Kind::List(item), Json::Array(a)) => a.iter().map(|x| item.cast(x, sem)).collect::<Result<Vec<_>, _>>().map(Json::Array),
            (Kind::Dict { key, value }, Json::Object(m)) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let k = match key.cast(&Json::String(k.clone()), sem)? {
                        Json::String(s) => s,
                        _ => return Err(CastError::Value),
                    };
                    out.insert(k, value.cast(x, sem)?);
                }
                Ok(Json::Object(out))
            }
            (Kind::Object { props, .. }, _) => {
                let m = v.as_object();
                let mut out = Map::new();
                for (k, p) in props {
                    let x = match m.and_then(|m| m.get(k)) {
                        Some(x) => p.cast(x, sem)?,
                        None => match &p.default {
                            Some(d) => p.fill(d),
                            None => return Err(CastError::Key),
                        },
                    };
                    out.insert(k.clone(), x);
                }
                Ok(Json::Object(out))
            }
            (Kind::Union(members), _) => {
                for p in members {
                    match p.cast(v, sem) {
                        Ok(c) => return Ok(c),
                        Err(CastError::Value) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(CastError::Value)
            }
            _ => Err(CastError::Value),
        }
    }

    /// `_validate_or_return_default_value`: keep a value of the right type, else cast it, else the
    /// first `enum` value, else the zero value. Objects are coerced member by member.
    pub fn coerce(&self, v: &Json, sem: Sem) -> Json {
        if let Kind::Object { props, addl } = &self.kind {
            let Some(m) = v.as_object() else {
                return self.zero();
            };
            let mut out = Map::new();
            for (k, x) in m {
                if let Some((_, p)) = props.iter().find(|(name, _)| name == k) {
                    out.insert(k.clone(), p.coerce(x, sem));
                } else {
                    match addl {
                        Addl::Allowed => {
                            out.insert(k.clone(), x.clone());
                        }
                        Addl::Schema(s) => {
                            out.insert(k.clone(), s.coerce(x, sem));
                        }
                        Addl::Forbidden => {}
                    }
                }
            }
            for (k, p) in props {
                if !out.contains_key(k) {
                    out.insert(k.clone(), p.coerce(&Json::Null, sem));
                }
            }
            return Json::Object(out);
        }
        if self.is_expected(v, sem) {
            return v.clone();
        }
        if let Ok(c) = self.cast(v, sem) {
            return c;
        }
        match self.enum_.as_deref() {
            Some([first, ..]) => first.clone(),
            _ => self.zero(),
        }
    }

    /// `_fill_nested_values_with_explicit_defaults`: members missing from objects take their
    /// declared default (itself filled), recursively through arrays, dictionaries and unions.
    pub fn fill(&self, v: &Json) -> Json {
        match (&self.kind, v) {
            (Kind::Object { props, addl }, Json::Object(m)) => {
                let mut out = m.clone();
                for (k, p) in props {
                    match m.get(k) {
                        Some(x) => {
                            out.insert(k.clone(), p.fill(x));
                        }
                        None => {
                            if let Some(d) = &p.default {
                                out.insert(k.clone(), p.fill(d));
                            }
                        }
                    }
                }
                if let Addl::Schema(s) = addl {
                    for (k, x) in out.iter_mut() {
                        if !props.iter().any(|(name, _)| name == k) {
                            *x = s.fill(x);
                        }
                    }
                }
                Json::Object(out)
            }
            (Kind::List(item), Json::Array(a)) => Json::Array(a.iter().map(|x| item.fill(x)).collect()),
            (Kind::Dict { value, .. }, Json::Object(m)) => Json::Object(m.iter().map(|(k, x)| (k.clone(), value.fill(x))).collect()),
            (Kind::Union(members), _) => {
                for p in members {
                    let f = p.fill(v);
                    if p.is_expected(&f, Sem::PYTHON) {
                        return f;
                    }
                }
                v.clone()
            }
            _ => v.clone(),
        }
    }

    /// `_validate_strict_value`: the violations as `(location, message)`, no coercion, no defaults.
    pub fn violations(&self, v: &Json, sem: Sem, at: &str, out: &mut Vec<String>) {
        let type_violation = |out: &mut Vec<String>| {
            out.push(format!("{at}: expected {}, got {}", self.type_str(), type_name(v, TypeWords::Python)));
        };
        match &self.kind {
            Kind::List(item) => match v.as_array() {
                None => type_violation(out),
                Some(a) => {
                    for (i, x) in a.iter().enumerate() {
                        item.violations(x, sem, &format!("{at}[{i}]"), out);
                    }
                }
            },
            Kind::Dict { key, value } => match v.as_object() {
                None => type_violation(out),
                Some(m) => {
                    for (k, x) in m {
                        key.violations(&Json::String(k.clone()), sem, &format!("{at}.<key>"), out);
                        value.violations(x, sem, &format!("{at}.{k}"), out);
                    }
                }
            },
            Kind::Object { props, addl } => match v.as_object() {
                None => type_violation(out),
                Some(m) => {
                    for (k, x) in m {
                        if props.iter().any(|(name, _)| name == k) {
                            continue;
                        }
                        match addl {
                            Addl::Forbidden => out.push(format!("{at}.{k}: unexpected field")),
                            Addl::Schema(s) => s.violations(x, sem, &format!("{at}.{k}"), out),
                            Addl::Allowed => {}
                        }
                    }
                    for (k, p) in props {
                        match m.get(k) {
                            None => out.push(format!("{at}.{k}: missing required field")),
                            Some(x) => p.violations(x, sem, &format!("{at}.{k}"), out),
                        }
                    }
                }
            },
            Kind::Union(members) => {
                let any_ok = members.iter().any(|p| {
                    let mut tmp = Vec::new();
                    p.violations(v, sem, at, &mut tmp);
                    tmp.is_empty()
                });
                if !any_ok && !self.is_expected(v, sem) {
                    type_violation(out);
                }
            }
            _ => {
                if !self.is_expected(v, sem) {
                    type_violation(out);
                }
            }
        }
    }
}

fn type_only(m: &mut Map<String, Json>, t: &str) {
    m.insert("type".into(), Json::String(t.into()));
}

/// `_strip_wayflow_json_schema_extensions`: drops `_component_type`, `key_type` and
/// `x_vector_property` from every object, at any depth.
pub(crate) fn strip_extensions(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter().filter(|(k, _)| !EXTENSION_KEYS.contains(&k.as_str())).map(|(k, x)| (k.clone(), strip_extensions(x))).collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(strip_extensions).collect()),
        _ => v.clone(),
    }
}

/// Python's `int(s)` for a string: optional blanks and sign, digits with single underscores
/// between them.
fn py_int(s: &str) -> Option<Json> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let text = if neg { format!("-{clean}") } else { clean };
    text.parse::<i64>().map(Json::from).ok().or_else(|| text.parse::<u64>().map(Json::from).ok())
}

/// Python's `float(s)` for a string, when the result is finite.
fn py_float(s: &str) -> Option<Json> {
    let t = s.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    clean.parse::<f64>().ok().filter(|f| f.is_finite()).map(Json::from)
}

/// WayFlow's `_format_default_value` of a property schema: its `default`, else its type's zero
/// value (`""`, `0`, `0.0`, `false`, `[]`, `{}`, an object of zero members, `null`).
///
/// ```
/// # use serde_json::json;
/// use weft_prompt::default_or_zero;
/// assert_eq!(default_or_zero(&json!({"type": "integer", "default": 3})), json!(3));
/// assert_eq!(default_or_zero(&json!({"type": "boolean"})), json!(false));
/// ```
pub fn default_or_zero(schema: &Json) -> Json {
    Prop::from_schema(schema).default_or_zero()
}

/// WayFlow's cast of a value to the receiving input's declared type, done before a node runs.
///
/// This is what WayFlow's flow executor does with each input value (FORMAT 7.4 and 8.1):
///
/// * `null` is never cast;
/// * a string into a `boolean`, `integer` or `number` input first goes through Python's `bool()`,
///   `int()` or `float()` (`bool("false")` is `true`: only `""` is false; a string `int()` or
///   `float()` cannot read is kept);
/// * a value that does not have the declared type is then cast: anything into `string` becomes its
///   `json.dumps` text (so `5.0` prints `5.0` and `{"a": 1}` prints `{"a": 1}`); an integer into
///   `number` becomes a float (`5` → `5.0`); a float into `integer` is truncated like Python's
///   `int()` (`4.7` → `4`); a number into `boolean` is `value != 0`; arrays, dictionaries and objects
///   are cast item by item; a union takes the first member the value casts into;
/// * a value that cannot be cast is kept as it is (WayFlow would fail the node; the flow checks of
///   FORMAT 5.3 normally rule that out);
/// * finally members missing from objects take their declared defaults, recursively.
///
/// Schemas without `type` (any) keep every value. As in Python, a boolean counts as an integer
/// here, so `true` into an `integer` input stays `true` and prints `True`.
///
/// ```
/// use serde_json::json;
/// use weft_prompt::cast_to_input;
/// let s = json!({"type": "string"});
/// assert_eq!(cast_to_input(json!({"b": 1, "é": 2.0}), &s), json!(r#"{"b": 1, "\u00e9": 2.0}"#));
/// assert_eq!(cast_to_input(json!(null), &s), json!(null));
/// assert_eq!(cast_to_input(json!(5), &json!({"type": "number"})), json!(5.0));
/// ```
pub fn cast_to_input(v: Json, schema: &Json) -> Json {
    if v.is_null() || (v.is_string() && plain_string(schema)) {
        return v;
    }
    InputCast::new(schema).cast(v)
}

/// The cast of values into one input, as [`cast_to_input`] does, with the schema modelled once:
/// an input that receives many values (a node run in every run of a batch) builds one with its
/// plan.
#[derive(Debug, Clone)]
pub struct InputCast {
    prop: Prop,
    plain_string: bool,
}

impl InputCast {
    /// The cast into an input of this schema.
    pub fn new(schema: &Json) -> InputCast {
        InputCast { prop: Prop::from_schema(schema), plain_string: plain_string(schema) }
    }

    /// `v` cast to the input's type ([`cast_to_input`]).
    pub fn cast(&self, v: Json) -> Json {
        if v.is_null() || (self.plain_string && v.is_string()) {
            return v;
        }
        let p = &self.prop;
        let sem = Sem::PYTHON;
        let mut v = v;
        if let Json::String(s) = &v {
            let pre = match p.kind {
                Kind::Bool => Some(Json::Bool(!s.is_empty())),
                Kind::Int => py_int(s),
                Kind::Float => py_float(s),
                _ => None,
            };
            if let Some(pre) = pre {
                v = pre;
            }
        }
        if !p.is_expected(&v, sem)
            && let Ok(c) = p.cast(&v, sem)
        {
            v = c;
        }
        p.fill(&v)
    }
}

/// A JSON Schema read as WayFlow reads it (`Property.from_json_schema`), for checking values
/// the way WayFlow's `is_value_of_expected_type` does: Python's `isinstance`, so `true` is an
/// `integer` and `5` is not a `number`; an object's member with a `default` may be missing; an
/// `enum` is checked with Python's `==`; `"default": null` admits `null`.
///
/// ```
/// use serde_json::json;
/// use weft_prompt::PyProperty;
/// let p = PyProperty::from_schema(&json!({"type": "object", "properties": {"id": {"type": "integer"}, "tag": {"type": "string", "default": ""}}}));
/// assert!(p.fits(&json!({"id": 1})));
/// assert!(p.fits(&json!({"id": true})));
/// assert!(!p.fits(&json!({"id": 1.0})));
/// assert!(!p.fits(&json!({"tag": "x"})));
/// assert_eq!(PyProperty::from_schema(&json!({"type": "number"})).type_str(), "FloatProperty");
/// ```
#[derive(Debug, Clone)]
pub struct PyProperty(Prop);

impl PyProperty {
    /// `Property.from_json_schema(schema)`.
    pub fn from_schema(schema: &Json) -> PyProperty {
        PyProperty(Prop::from_schema(schema))
    }

    /// `is_value_of_expected_type(value)`, with Python's `isinstance` checks.
    pub fn fits(&self, value: &Json) -> bool {
        self.0.is_expected(value, Sem::PYTHON)
    }

    /// The declared `default` (`null` included), if any.
    pub fn default(&self) -> Option<&Json> {
        self.0.default.as_ref()
    }

    /// WayFlow's name of the type (`IntegerProperty`, `ListProperty[StringProperty]`...).
    pub fn type_str(&self) -> String {
        self.0.type_str()
    }

    /// Whether it is exactly a string (`StringProperty`: not a union, not any).
    pub fn is_string(&self) -> bool {
        matches!(self.0.kind, Kind::Str)
    }
}

/// A plain string input (`"type": "string"`, no `enum`, no `null` default): the cast keeps a
/// string given to it as it is, so the engine's most common input is not read through a
/// [`Prop`].
fn plain_string(schema: &Json) -> bool {
    let Some(s) = schema.as_object() else { return false };
    s.get("type").and_then(Json::as_str) == Some("string") && !s.contains_key("enum") && !matches!(s.get("default"), Some(Json::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reserializes_like_wayflow() {
        let p = Prop::from_schema(&json!({"title": "r", "type": "object", "properties": {"score": {"type": "integer", "minimum": 0}}}));
        assert_eq!(
            py_json_dumps(&p.to_schema(false)),
            r#"{"type": "object", "additionalProperties": true, "properties": {"score": {"type": "integer"}}, "title": "r"}"#
        );
        let p = Prop::from_schema(&json!({"title": "x", "type": "string", "default": null}));
        assert_eq!(
            py_json_dumps(&p.to_schema(false)),
            r#"{"anyOf": [{"type": "string"}, {"type": "null"}], "title": "x", "default": null}"#
        );
        let p = Prop::from_schema(&json!({"title": "x", "type": "object"}));
        assert_eq!(py_json_dumps(&p.to_schema(false)), r#"{"title": "x"}"#);
    }

    #[test]
    fn casts_inputs() {
        assert_eq!(cast_to_input(json!(4.7), &json!({"type": "integer"})), json!(4));
        assert_eq!(cast_to_input(json!(4.0), &json!({"type": "integer"})), json!(4));
        assert_eq!(cast_to_input(json!("12"), &json!({"type": "integer"})), json!(12));
        assert_eq!(cast_to_input(json!("x"), &json!({"type": "integer"})), json!("x"));
        assert_eq!(cast_to_input(json!("false"), &json!({"type": "boolean"})), json!(true));
        assert_eq!(cast_to_input(json!(0), &json!({"type": "boolean"})), json!(false));
        assert_eq!(cast_to_input(json!(true), &json!({"type": "string"})), json!("true"));
        assert_eq!(cast_to_input(json!(true), &json!({"type": "integer"})), json!(true));
        assert_eq!(cast_to_input(json!(5), &json!({"anyOf": [{"type": "string"}, {"type": "null"}]})), json!("5"));
        assert_eq!(cast_to_input(json!([1, 2]), &json!({"type": "array", "items": {"type": "number"}})), json!([1.0, 2.0]));
        assert_eq!(cast_to_input(json!({"a": 1}), &json!({})), json!({"a": 1}));
        assert_eq!(
            cast_to_input(
                json!({"a": 1}),
                &json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string", "default": "z"}}})
            ),
            json!({"a": 1, "b": "z"})
        );
    }
}
