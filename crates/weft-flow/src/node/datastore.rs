//! Datastores and the nodes that use them: `PluginDatastoreCreateNode`, `...ListNode`,
//! `...UpdateNode`, `...DeleteNode` (run over an `InMemoryCollectionDatastore` or a
//! `PluginInMemoryDatastore`, whose collections live in the run state) and
//! `PluginDatastoreQueryNode` (SQL on a relational datastore). Datastores backed by Oracle
//! Database or PostgreSQL need a database service Weft does not connect to: a node using one is
//! a blocker that says so.
//!
//! What WayFlow's steps check when they are built (a collection the datastore does not have, a
//! `where` value with two variables, `unpack_single_entity_from_list` without `limit: 1`,
//! reserved input names) is checked here, at load.

use super::{Fields, Lowered, Lowerer, NodeKind, internal_name, next};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, jinja_titles, map_titles};
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use weft_prompt::{PyProperty, Template};
use weft_spec::{Code, CompId, Component, Property, Value};

/// The types of the family.
pub const TYPES: &[&str] = &[
    "PluginDatastoreCreateNode",
    "PluginDatastoreListNode",
    "PluginDatastoreUpdateNode",
    "PluginDatastoreDeleteNode",
    "PluginDatastoreQueryNode",
    "InMemoryCollectionDatastore",
    "PluginInMemoryDatastore",
    "OracleDatabaseDatastore",
    "PluginOracleDatabaseDatastore",
    "PostgresDatabaseDatastore",
];

/// The datastore types kept in memory (in the run state).
const IN_MEMORY: &[&str] = &["InMemoryCollectionDatastore", "PluginInMemoryDatastore"];

/// A datastore's collections, each with the entity its rows must fit.
#[derive(Debug)]
pub struct Datastore {
    /// The datastore component's id: its collections are kept in the run state under it, so
    /// every node using the datastore sees the same rows.
    pub id: String,
    /// Its name, for messages.
    pub name: String,
    /// `datastore_schema`: collection name to entity, in document order.
    pub collections: Vec<(String, Entity)>,
}

impl Datastore {
    /// The entity of a collection.
    pub fn collection(&self, name: &str) -> Option<&Entity> {
        self.collections.iter().find(|(n, _)| n == name).map(|(_, e)| e)
    }
}

/// The entity of a collection (WayFlow's `Entity`, built from the schema's `properties` only).
#[derive(Debug)]
pub struct Entity {
    /// `properties`: name and type, in order.
    pub properties: Vec<(String, PyProperty)>,
}

impl Entity {
    /// A property's type.
    pub fn property(&self, name: &str) -> Option<&PyProperty> {
        self.properties.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// `get_entity_defaults()`: the properties that have a default, with it, in order.
    pub fn defaults(&self) -> Map<String, Json> {
        self.properties.iter().filter_map(|(n, p)| p.default().map(|d| (n.clone(), d.clone()))).collect()
    }
}

/// What a datastore node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatastoreAction {
    /// Adds the entity (or entities) of input `entity`; output `created_entity`.
    Create,
    /// Lists the entities matching `where`, at most `limit`; output `entities` (one entity when
    /// `unpack` is set).
    List {
        /// `limit` (Python slice semantics: a negative limit drops from the end).
        limit: Option<i64>,
        /// `unpack_single_entity_from_list`.
        unpack: bool,
    },
    /// Sets the values of input `update` in the matching entities; output `entities`.
    Update,
    /// Removes the matching entities.
    Delete,
}

/// A member of a node's `where`: its key (a template) and its value.
#[derive(Debug, Clone)]
pub struct WhereEntry {
    /// The property name, rendered with the node's inputs.
    pub key: Arc<Template>,
    /// The value compared.
    pub value: WhereValue,
}

/// The value of a `where` member (WayFlow's `set_values_on_templated_where`).
#[derive(Debug, Clone)]
pub enum WhereValue {
    /// A value that is not a string, compared as it is.
    Fixed(Json),
    /// A string, rendered with the node's inputs (its variable, if any, is a string input).
    Text(Arc<Template>),
    /// A string `{{ x }}` whose input `x` is not declared a string: the input's value itself
    /// (an integer id stays an integer).
    Input(String),
}

/// A datastore node over an in-memory datastore.
#[derive(Debug, Clone)]
pub struct DatastoreNode {
    /// What it does.
    pub action: DatastoreAction,
    /// The datastore and its collections.
    pub datastore: Arc<Datastore>,
    /// `collection_name`, a template rendered with the node's inputs.
    pub collection: Arc<Template>,
    /// `where` (create has none; a list node's may be null: every entity).
    pub filter: Option<Vec<WhereEntry>>,
    /// The input holding the entity (create) or the update (update), by internal name.
    pub value_input: String,
    /// The output written (internal title), if any.
    pub output: Option<String>,
}

/// The schema of an entity as a node input or output (WayFlow's `DictProperty[str, Any]`).
fn entity_dict(title: &str) -> Json {
    json!({"type": "object", "additionalProperties": {}, "key_type": {"type": "string"}, "title": title})
}

/// The variables of `collection_name` and of the keys and string values of `where`, WayFlow's
/// way (each a string input), without duplicates.
fn template_inputs(f: Fields<'_>) -> Vec<Property> {
    let mut out: Vec<Property> = Vec::new();
    let mut add = |props: Vec<Property>| {
        for p in props {
            if !out.iter().any(|q| q.title() == p.title()) {
                out.push(p);
            }
        }
    };
    add(jinja_titles(f.str("collection_name").unwrap_or(""), &[]));
    if let Some(filter) = f.object("where") {
        for (k, v) in filter {
            add(jinja_titles(k, &[]));
            if let Some(text) = v.as_str() {
                add(jinja_titles(text, &[]));
            }
        }
    }
    out
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    let f = Fields::of(comp);
    let mut inputs = template_inputs(f);
    let outputs = match comp.ty.name {
        "PluginDatastoreCreateNode" => {
            inputs.push(Property::new(entity_dict("entity")));
            Some(vec![Property::new(entity_dict("created_entity"))])
        }
        "PluginDatastoreListNode" => {
            let unpack = f.json("unpack_single_entity_from_list").and_then(Json::as_bool).unwrap_or(false);
            let mut item = entity_dict("");
            if let Json::Object(m) = &mut item {
                m.remove("title");
            }
            let schema = if unpack { entity_dict("entities") } else { json!({"type": "array", "items": item, "title": "entities"}) };
            Some(vec![Property::new(schema)])
        }
        "PluginDatastoreUpdateNode" => {
            inputs.push(Property::new(entity_dict("update")));
            let mut item = entity_dict("");
            if let Json::Object(m) = &mut item {
                m.remove("title");
            }
            Some(vec![Property::new(json!({"type": "array", "items": item, "title": "entities"}))])
        }
        // Its outputs are whatever it declares (it has none of its own).
        "PluginDatastoreDeleteNode" => None,
        "PluginDatastoreQueryNode" => {
            inputs = vec![Property::new(
                json!({"type": "object", "additionalProperties": {}, "key_type": {"type": "string"}, "title": "bind_variables"}),
            )];
            Some(vec![Property::new(json!({
                "type": "array",
                "items": {"type": "object", "additionalProperties": {}, "key_type": {"type": "string"}},
                "title": "result"
            }))])
        }
        _ => return None,
    };
    Some(Inferred {
        inputs: Some(map_titles(&f.mapping("input_mapping"), inputs)),
        outputs: outputs.map(|o| map_titles(&f.mapping("output_mapping"), o)),
        branches: next(),
        ..Inferred::default()
    })
}

/// The collections of a datastore component.
fn schema(comp: &Component) -> Option<&indexmap::IndexMap<String, Property>> {
    match comp.field("datastore_schema") {
        Some(Value::PropMap(m)) => Some(m),
        _ => None,
    }
}

/// The rules WayFlow applies when it builds a datastore step.
pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    let f = Fields::of(comp);
    if !comp.ty.name.starts_with("PluginDatastore") {
        return;
    }
    let Some(ds) = f.comp("datastore") else { return };
    let ds_comp = cx.spec.get(ds);
    if comp.is("PluginDatastoreQueryNode") {
        if IN_MEMORY.contains(&ds_comp.ty.name) {
            cx.report(
                comp,
                Code::WrongType,
                format!("{}/datastore", comp.pointer),
                format!(
                    "{}: runs SQL queries, which need a relational datastore; {} is an in-memory datastore",
                    comp.label(),
                    ds_comp.label()
                ),
                Some(
                    "use an OracleDatabaseDatastore or a PostgresDatabaseDatastore, or list entities with a PluginDatastoreListNode".into(),
                ),
            );
        }
        return;
    }
    let collection = f.str("collection_name").unwrap_or("");
    let parametrized = !jinja_titles(collection, &[]).is_empty();
    if !parametrized
        && let Some(collections) = schema(ds_comp)
        && !collections.contains_key(collection)
    {
        let known: Vec<String> = collections.keys().map(|k| format!("\"{k}\"")).collect();
        cx.report(
            comp,
            Code::ComponentRule,
            format!("{}/collection_name", comp.pointer),
            format!(
                "{}: collection \"{collection}\" is not in the `datastore_schema` of {} (it has {})",
                comp.label(),
                ds_comp.label(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
            Some("name one of the datastore's collections, or add the collection to its `datastore_schema`".into()),
        );
    }
    if let Some(filter) = f.object("where") {
        for (k, v) in filter {
            if let Some(text) = v.as_str() {
                let vars = jinja_titles(text, &[]);
                if vars.len() > 1 {
                    cx.report(
                        comp,
                        Code::ComponentRule,
                        format!("{}/where/{}", comp.pointer, weft_spec::diagnostic::escape_token(k)),
                        format!(
                            "{}: the `where` value of \"{k}\" uses {} variables; WayFlow allows one per value",
                            comp.label(),
                            vars.len()
                        ),
                        Some("compute the value with a PluginTemplateNode and pass it as one variable".into()),
                    );
                }
            }
        }
    }
    if comp.is("PluginDatastoreListNode") && f.json("unpack_single_entity_from_list").and_then(Json::as_bool) == Some(true) {
        let limit = f.json("limit").and_then(Json::as_i64);
        if limit != Some(1) {
            cx.report(
                comp,
                Code::ComponentRule,
                format!("{}/unpack_single_entity_from_list", comp.pointer),
                format!(
                    "{}: `unpack_single_entity_from_list` needs `limit: 1`, so that one entity is read (limit is {})",
                    comp.label(),
                    f.json("limit").map_or_else(|| "null".to_owned(), Json::to_string)
                ),
                Some("set `limit` to 1, or set `unpack_single_entity_from_list` to false to get the list".into()),
            );
        }
    }
    let reserved = match comp.ty.name {
        "PluginDatastoreCreateNode" => Some("entity"),
        "PluginDatastoreUpdateNode" => Some("update"),
        _ => None,
    };
    if let Some(reserved) = reserved
        && template_inputs(f).iter().any(|p| p.title() == reserved)
    {
        cx.report(
            comp,
            Code::ComponentRule,
            format!("{}/collection_name", comp.pointer),
            format!("{}: the variable `{reserved}` is the node's own input; a template of the node may not use that name", comp.label()),
            Some(format!("rename the variable `{reserved}` in `collection_name` or `where`")),
        );
    }
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    let comp = lw.comp(n);
    let f = lw.fields(n);
    let ds = f.comp("datastore")?;
    let ds_comp = lw.comp(ds);
    if !IN_MEMORY.contains(&ds_comp.ty.name) {
        let service = if ds_comp.ty.name.contains("Postgres") { "a PostgreSQL server" } else { "an Oracle Database" };
        lw.block(
            n,
            ds,
            ds_comp.pointer.clone(),
            format!(
                "{} (a datastore backed by {service}: it needs that database service, which Weft does not connect to; an InMemoryCollectionDatastore runs offline)",
                ds_comp.ty.name
            ),
        );
        return None;
    }
    if comp.is("PluginDatastoreQueryNode") {
        // An in-memory datastore under a query node is a load error (reported by `check`).
        return None;
    }
    let ds_fields = lw.fields(ds);
    for field in ["search_configs", "vector_configs"] {
        if ds_fields.has(field) && !ds_fields.comps(field).is_empty() {
            lw.block(
                n,
                ds,
                format!("{}/{field}", ds_comp.pointer),
                format!(
                    "{} with `{field}` (WayFlow computes an embedding of every entity it stores, with the embedding model the search configuration names)",
                    ds_comp.ty.name
                ),
            );
            return None;
        }
    }
    let action = match comp.ty.name {
        "PluginDatastoreCreateNode" => DatastoreAction::Create,
        "PluginDatastoreListNode" => DatastoreAction::List {
            limit: f.json("limit").and_then(Json::as_i64),
            unpack: f.json("unpack_single_entity_from_list").and_then(Json::as_bool).unwrap_or(false),
        },
        "PluginDatastoreUpdateNode" => DatastoreAction::Update,
        "PluginDatastoreDeleteNode" => DatastoreAction::Delete,
        _ => return Some(Lowered::NotRunnable),
    };
    let datastore = Arc::new(Datastore {
        id: ds_comp.id.clone(),
        name: ds_comp.name.clone(),
        collections: schema(ds_comp)
            .map(|m| {
                m.iter()
                    .map(|(name, entity)| {
                        let properties = entity
                            .schema
                            .get("properties")
                            .and_then(Json::as_object)
                            .map(|p| p.iter().map(|(k, v)| (k.clone(), PyProperty::from_schema(v))).collect())
                            .unwrap_or_default();
                        (name.clone(), Entity { properties })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    });
    let allowed = lw.input_names(n);
    let collection = lw.template(n, "collection_name", f.str("collection_name").unwrap_or(""))?;
    let mut ok = lw.variables(n, "collection_name", &collection, &allowed);
    let in_map = f.mapping("input_mapping");
    // How each input is declared, by internal name: a `where` value reading a string input is
    // rendered, one reading any other input takes the value itself.
    let declared: Vec<(String, PyProperty)> =
        lw.io(n).inputs.iter().map(|p| (internal_name(&in_map, p.title()), PyProperty::from_schema(&p.schema))).collect();
    let filter = match f.json("where") {
        Some(Json::Object(entries)) => {
            let mut list = Vec::new();
            for (k, v) in entries {
                let field = format!("where/{}", weft_spec::diagnostic::escape_token(k));
                let Some(key) = lw.template(n, &field, k) else {
                    ok = false;
                    continue;
                };
                ok &= lw.variables(n, &field, &key, &allowed);
                let value = match v {
                    Json::String(text) => {
                        let Some(t) = lw.template(n, &field, text) else {
                            ok = false;
                            continue;
                        };
                        ok &= lw.variables(n, &field, &t, &allowed);
                        let vars: Vec<String> = t.variables().map(str::to_owned).collect();
                        match vars.as_slice() {
                            [one] if !declared.iter().any(|(name, p)| name == one && p.is_string()) => WhereValue::Input(one.clone()),
                            _ => WhereValue::Text(t),
                        }
                    }
                    other => WhereValue::Fixed(other.clone()),
                };
                list.push(WhereEntry { key, value });
            }
            Some(list)
        }
        _ => None,
    };
    let (value_input, output) = match action {
        DatastoreAction::Create => ("entity", Some("created_entity")),
        DatastoreAction::List { .. } => ("", Some("entities")),
        DatastoreAction::Update => ("update", Some("entities")),
        DatastoreAction::Delete => ("", None),
    };
    // The node writes its output under its internal title; its `output_mapping` renames it.
    let output = output.map(str::to_owned);
    ok.then(|| {
        Lowered::Kind(NodeKind::Datastore(Box::new(DatastoreNode {
            action,
            datastore,
            collection,
            filter,
            value_input: value_input.to_owned(),
            output,
        })))
    })
}
