//! Datastore nodes (WayFlow's `DatastoreCreateStep`, `DatastoreListStep`, `DatastoreUpdateStep`,
//! `DatastoreDeleteStep`) over an in-memory datastore whose collections live in the run state
//! ([`RunState::datastores`], by datastore id), so every node using a datastore sees the same
//! rows, parallel branches and map items included, and a resumed run finds them again.

use super::At;
use crate::datastore::{DatastoreError, Table};
use crate::error::RunErrorKind;
use crate::sched::{Res, Sched, excerpt, node_error, single};
use crate::state::RunState;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use weft_flow::node::{DatastoreAction, DatastoreNode, WhereValue};

pub(crate) struct DatastoreOp {
    pub(crate) node: Arc<DatastoreNode>,
}

impl DatastoreOp {
    pub(crate) fn plan(d: &DatastoreNode) -> DatastoreOp {
        DatastoreOp { node: Arc::new(d.clone()) }
    }

    pub(crate) fn step(&self, s: &mut Sched<'_>, state: &mut RunState, at: At<'_>, vars: Map<String, Json>) -> Res<()> {
        let d = &*self.node;
        let node = at.node;
        let render = |t: &weft_prompt::Template, what: &str| {
            t.render(&vars).map_err(|e| node_error(RunErrorKind::Template, node, &format!("cannot render {what}: {e}")))
        };
        let collection = render(&d.collection, "its `collection_name`")?;
        let Some(entity) = d.datastore.collection(&collection) else {
            let known: Vec<String> = d.datastore.collections.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            return Err(node_error(
                RunErrorKind::Datastore,
                node,
                &format!(
                    "collection {} is not in datastore \"{}\" (it has {}); WayFlow raises DatastoreKeyError",
                    excerpt(&collection, &s.plan.secrets),
                    d.datastore.name,
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            )
            .with_exception("DatastoreKeyError"));
        };
        let filter = match &d.filter {
            Some(entries) => {
                let mut m = Map::new();
                for e in entries {
                    let key = render(&e.key, "a key of its `where`")?;
                    let value = match &e.value {
                        WhereValue::Fixed(v) => v.clone(),
                        WhereValue::Text(t) => Json::String(render(t, "a value of its `where`")?),
                        WhereValue::Input(name) => vars.get(name).cloned().unwrap_or(Json::Null),
                    };
                    m.insert(key, value);
                }
                Some(m)
            }
            None => None,
        };
        let store = state.datastores.entry(d.datastore.id.clone()).or_default();
        let table = store.entry(collection.clone()).or_insert_with(|| Table::new(entity));
        let failed = |e: DatastoreError| {
            node_error(RunErrorKind::Datastore, node, &format!("{} (WayFlow raises {})", s.plan.secrets.redact_str(&e.message), e.class))
                .with_exception(e.class)
        };
        let empty = Map::new();
        let output = match d.action {
            DatastoreAction::Create => {
                let value = vars.get(&d.value_input).cloned().unwrap_or(Json::Null);
                let (entities, single_one) = match value {
                    Json::Object(m) => (vec![m], true),
                    Json::Array(items) => {
                        let mut list = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                Json::Object(m) => list.push(m),
                                other => {
                                    return Err(failed(DatastoreError {
                                        class: "TypeError",
                                        message: format!(
                                            "the entities to create must be objects, found {}",
                                            weft_spec::text::type_name(&other, weft_spec::text::TypeWords::Json)
                                        ),
                                    }));
                                }
                            }
                        }
                        (list, false)
                    }
                    other => {
                        return Err(failed(DatastoreError {
                            class: "TypeError",
                            message: format!(
                                "the entity to create must be an object, found {}",
                                weft_spec::text::type_name(&other, weft_spec::text::TypeWords::Json)
                            ),
                        }));
                    }
                };
                let created = table.create(entity, &collection, entities).map_err(failed)?;
                let value = if single_one {
                    created.into_iter().next().map(Json::Object).unwrap_or(Json::Null)
                } else {
                    Json::Array(created.into_iter().map(Json::Object).collect())
                };
                Some(value)
            }
            DatastoreAction::List { limit, unpack } => {
                let listed = table.list(entity, &collection, filter.as_ref(), limit).map_err(failed)?;
                if unpack {
                    let Some(first) = listed.into_iter().next() else {
                        return Err(node_error(
                            RunErrorKind::Datastore,
                            node,
                            &format!(
                                "expected one entity of collection \"{collection}\" to match its `where`, found none (WayFlow raises RuntimeError); check the filter and the inputs it reads"
                            ),
                        )
                        .with_exception("RuntimeError"));
                    };
                    Some(Json::Object(first))
                } else {
                    Some(Json::Array(listed.into_iter().map(Json::Object).collect()))
                }
            }
            DatastoreAction::Update => {
                let update = match vars.get(&d.value_input) {
                    Some(Json::Object(m)) => m.clone(),
                    other => {
                        return Err(failed(DatastoreError {
                            class: "TypeError",
                            message: format!(
                                "the update must be an object of property values, found {}",
                                other.map_or_else(
                                    || "nothing".to_owned(),
                                    |v| weft_spec::text::type_name(v, weft_spec::text::TypeWords::Json).to_owned()
                                )
                            ),
                        }));
                    }
                };
                let updated = table.update(entity, &collection, filter.as_ref().unwrap_or(&empty), &update).map_err(failed)?;
                Some(Json::Array(updated.into_iter().map(Json::Object).collect()))
            }
            DatastoreAction::Delete => {
                table.delete(entity, &collection, filter.as_ref().unwrap_or(&empty)).map_err(failed)?;
                None
            }
        };
        let outputs = match (&d.output, output) {
            (Some(title), Some(v)) => single(title, v),
            _ => Map::new(),
        };
        s.done(state, at, outputs)
    }
}
