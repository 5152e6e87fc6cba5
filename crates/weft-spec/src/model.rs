//! The loaded model: components in an arena, fields as typed values, properties as schemas.
//!
//! A [`Spec`] is what one document (plus its registries) describes after references are
//! resolved: every component once, shared components shared by index. Nothing here is checked
//! beyond shape; `weft-flow` infers inputs, outputs and branches and checks the rules.

use crate::catalog::{self, TypeSpec};
use crate::version::Version;
use indexmap::IndexMap;
use serde_json::Value as Json;
use std::fmt;

/// Index of a component in [`Spec::components`].
pub type CompId = usize;

/// A loaded document.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Every component, each once.
    pub components: Vec<Component>,
    /// The root component.
    pub root: CompId,
    /// The version the document declares (after reading `25.4.0` as `25.4.1`), or the current
    /// version when it declares none.
    pub version: Version,
    /// How the version was given.
    pub version_source: VersionSource,
    /// The document's name, and the names of its registries (index = [`Component::source`]).
    pub sources: Vec<String>,
}

/// How a document stated its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// `agentspec_version`.
    AgentspecVersion,
    /// The legacy key `air_version`.
    AirVersion,
    /// Not at all.
    Missing,
}

/// Where a component's definition sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Written in place, where it is used.
    Inline,
    /// An entry of a `$referenced_components` table, under this key.
    Table(String),
    /// An entry of a registry passed with `--refs`, under this key.
    Registry(String),
}

/// One component.
#[derive(Debug, Clone)]
pub struct Component {
    /// Its type.
    pub ty: &'static TypeSpec,
    /// Its `id` (generated when the document has none).
    pub id: String,
    /// Its `name`.
    pub name: String,
    /// Its `description`.
    pub description: Option<String>,
    /// Its `metadata` (`None` for `null`).
    pub metadata: Option<Json>,
    /// `inputs`, as given (`None` when absent or null: inferred).
    pub inputs: Option<Vec<Property>>,
    /// `outputs`, as given.
    pub outputs: Option<Vec<Property>>,
    /// `branches`, as given (`None` when absent, null or empty: inferred).
    pub branches: Option<Vec<String>>,
    /// Own fields, in catalogue order, defaults filled in.
    pub fields: IndexMap<&'static str, Value>,
    /// Keys the type does not declare: kept verbatim for generic types, dropped on export
    /// otherwise (with an `unknown_key` warning on load).
    pub extra: IndexMap<String, Json>,
    /// Where it was defined.
    pub origin: Origin,
    /// JSON pointer of its definition, in its source.
    pub pointer: String,
    /// Which source it came from: 0 the document, 1.. the registries.
    pub source: usize,
}

impl Component {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// A string field's value.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(Value::Json(Json::String(s))) => Some(s),
            _ => None,
        }
    }

    /// A JSON field's value (`None` for components and absent fields).
    pub fn json_field(&self, name: &str) -> Option<&Json> {
        match self.fields.get(name) {
            Some(Value::Json(j)) => Some(j),
            _ => None,
        }
    }

    /// A component field's target.
    pub fn comp_field(&self, name: &str) -> Option<CompId> {
        match self.fields.get(name) {
            Some(Value::Comp(c)) => Some(*c),
            _ => None,
        }
    }

    /// The components of a list field (empty when absent or null).
    pub fn comp_list(&self, name: &str) -> Vec<CompId> {
        match self.fields.get(name) {
            Some(Value::List(items)) => items.iter().filter_map(Value::as_comp).collect(),
            Some(Value::Comp(c)) => vec![*c],
            _ => Vec::new(),
        }
    }

    /// A property-list field (`None` when absent or null).
    pub fn props_field(&self, name: &str) -> Option<&[Property]> {
        match self.fields.get(name) {
            Some(Value::Props(p)) => Some(p),
            _ => None,
        }
    }

    /// A single-property field.
    pub fn prop_field(&self, name: &str) -> Option<&Property> {
        match self.fields.get(name) {
            Some(Value::Prop(p)) => Some(p),
            _ => None,
        }
    }

    /// Whether the type is `name`.
    pub fn is(&self, name: &str) -> bool {
        self.ty.name == name
    }

    /// A label for messages: `LlmNode "generate"`.
    pub fn label(&self) -> String {
        format!("{} \"{}\"", self.ty.name, self.name)
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Plain JSON.
    Json(Json),
    /// A component.
    Comp(CompId),
    /// A list holding components (and possibly plain values, as in MCP `tool_filter`).
    List(Vec<Value>),
    /// An object whose values hold components.
    Map(IndexMap<String, Value>),
    /// A sensitive field given as a `<id>.<field>` reference.
    Secret(SecretRef),
    /// A list of properties.
    Props(Vec<Property>),
    /// One property.
    Prop(Property),
    /// An object mapping names to properties.
    PropMap(IndexMap<String, Property>),
}

impl Value {
    /// The component, if this is one.
    pub fn as_comp(&self) -> Option<CompId> {
        match self {
            Value::Comp(c) => Some(*c),
            _ => None,
        }
    }

    /// Every component this value holds, in order.
    pub fn comps(&self, out: &mut Vec<CompId>) {
        match self {
            Value::Comp(c) => out.push(*c),
            Value::List(items) => items.iter().for_each(|v| v.comps(out)),
            Value::Map(m) => m.values().for_each(|v| v.comps(out)),
            _ => {}
        }
    }
}

/// A sensitive value supplied out of band: the reference key, and the value once known.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The reference key, `<component id>.<field>`.
    pub key: String,
    /// The value, when the caller supplied one. Never exported, never printed.
    pub value: Option<String>,
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRef").field("key", &self.key).field("value", &self.value.as_ref().map(|_| "<redacted>")).finish()
    }
}

/// A property: a JSON Schema whose `title` is the property's name (FORMAT.md section 5).
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The whole schema, kept verbatim.
    pub schema: Json,
    /// JSON pointer of the schema in its source (empty for inferred properties).
    pub pointer: String,
}

impl Property {
    /// A property from a schema.
    pub fn new(schema: Json) -> Property {
        Property { schema, pointer: String::new() }
    }

    /// A property `{"title": title, "type": ty}`.
    pub fn typed(title: &str, ty: &str) -> Property {
        Property::new(serde_json::json!({"title": title, "type": ty}))
    }

    /// The name: `title`, or `"property"` when it is missing.
    pub fn title(&self) -> &str {
        self.schema.get("title").and_then(Json::as_str).unwrap_or("property")
    }

    /// The `default`, if any.
    pub fn default(&self) -> Option<&Json> {
        self.schema.get("default")
    }

    /// The `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.schema.get("description").and_then(Json::as_str)
    }

    /// The schema with another title.
    pub fn retitled(&self, title: &str) -> Property {
        let mut schema = self.schema.clone();
        if let Json::Object(m) = &mut schema {
            m.insert("title".into(), Json::String(title.into()));
        }
        Property { schema, pointer: self.pointer.clone() }
    }

    /// A short rendering of the type for messages: `string`, `array<integer>`, `any`...
    pub fn type_name(&self) -> String {
        type_name(&self.schema)
    }
}

/// A short rendering of a schema's type.
pub fn type_name(schema: &Json) -> String {
    if let Some(any_of) = schema.get("anyOf").and_then(Json::as_array) {
        return any_of.iter().map(type_name).collect::<Vec<_>>().join(" | ");
    }
    match schema.get("type") {
        Some(Json::String(t)) if t == "array" => match schema.get("items") {
            Some(items) => format!("array<{}>", type_name(items)),
            None => "array".into(),
        },
        Some(Json::String(t)) => t.clone(),
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect::<Vec<_>>().join(" | "),
        _ => "any".into(),
    }
}

impl Spec {
    /// The root component.
    pub fn root(&self) -> &Component {
        &self.components[self.root]
    }

    /// A component by index.
    pub fn get(&self, id: CompId) -> &Component {
        &self.components[id]
    }

    /// Every component directly held by a component's fields, in field order.
    pub fn children(&self, id: CompId) -> Vec<CompId> {
        let mut out = Vec::new();
        for v in self.components[id].fields.values() {
            v.comps(&mut out);
        }
        out
    }

    /// The catalogue entry for a type name.
    pub fn type_spec(name: &str) -> Option<&'static TypeSpec> {
        catalog::lookup(name)
    }
}
