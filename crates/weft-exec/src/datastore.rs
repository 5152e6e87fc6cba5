//! The collections of in-memory datastores, kept in the run state: WayFlow's
//! `InMemoryDatastore`, whose collections are pandas data frames, as a plain serializable value.
//!
//! What WayFlow's datastore does is reproduced, quirks included, since a flow's outputs show
//! them:
//! * entities are validated against the collection's entity (Python's `isinstance` checks: an
//!   integer is not a `number`); defaults are filled in first (`defaults | entity`, so members
//!   with defaults come first);
//! * a `where` compares members with `==`; an empty `where` matches nothing; `null` matches
//!   nothing (pandas compares with `None` as never equal);
//! * listing an empty collection gives `[]` before `where` is validated;
//! * `limit` slices as Python does (`[:limit]`, a negative limit drops from the end);
//! * each column has a pandas dtype: integers become floats in a column that also holds floats
//!   or a missing value, booleans become integers next to integers, a column set with an
//!   incompatible value becomes an object column (even when no row is selected).
//!
//! One difference: pandas marks a missing number as `NaN`, which JSON cannot hold; Weft gives
//! `null` there.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use weft_flow::node::datastore::Entity;

/// A column's pandas dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    /// `int64`: integers.
    Int,
    /// `float64`: numbers, `null` standing for `NaN`.
    Float,
    /// `bool`.
    Bool,
    /// `object`: any value, kept as it is.
    Object,
}

/// A column: its name and dtype.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The property it holds.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
}

/// One collection of a datastore: columns in order and rows of values in column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<Json>>,
}

/// Why a datastore operation failed, with the class name WayFlow raises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreError {
    /// WayFlow's exception class: `DatastoreEntityError`, `DatastoreKeyError`, `ValueError`...
    pub class: &'static str,
    /// What is wrong.
    pub message: String,
}

fn entity_error(message: String) -> DatastoreError {
    DatastoreError { class: "DatastoreEntityError", message }
}

/// The value's kind in words, for messages.
fn describe(v: &Json) -> String {
    format!("{} ({})", weft_spec::text::excerpt(&v.to_string(), 80).0, weft_spec::text::type_name(v, weft_spec::text::TypeWords::Json))
}

/// `validate_partial_entity`: every member is a property of the entity and fits its type.
pub fn validate_partial(entity: &Entity, collection: &str, values: &Map<String, Json>) -> Result<(), DatastoreError> {
    for (k, v) in values {
        let Some(p) = entity.property(k) else {
            let known: Vec<&str> = entity.properties.iter().map(|(n, _)| n.as_str()).collect();
            return Err(entity_error(format!(
                "\"{k}\" is not a property of the entities of collection \"{collection}\" (they have {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        if !p.fits(v) {
            return Err(entity_error(format!(
                "value {} does not fit property \"{k}\" ({}) of collection \"{collection}\"",
                describe(v),
                p.type_str()
            )));
        }
    }
    Ok(())
}

/// `validate_entities` for one entity: a partial check, then every property without a default
/// is present.
fn validate_full(entity: &Entity, collection: &str, values: &Map<String, Json>) -> Result<(), DatastoreError> {
    validate_partial(entity, collection, values)?;
    let missing: Vec<&str> =
        entity.properties.iter().filter(|(n, p)| p.default().is_none() && !values.contains_key(n)).map(|(n, _)| n.as_str()).collect();
    if !missing.is_empty() {
        return Err(entity_error(format!(
            "the entity {} lacks {} of collection \"{collection}\", which {} no default",
            describe(&Json::Object(values.clone())),
            missing.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", "),
            if missing.len() == 1 { "has" } else { "have" }
        )));
    }
    Ok(())
}

fn is_int(v: &Json) -> bool {
    v.as_i64().is_some() && !v.is_f64()
}

fn is_number(v: &Json) -> bool {
    matches!(v, Json::Number(_))
}

/// The dtype pandas infers for a new column of these values.
fn infer(values: &[&Json]) -> Dtype {
    if values.is_empty() {
        return Dtype::Object;
    }
    if values.iter().all(|v| v.is_boolean()) {
        return Dtype::Bool;
    }
    if values.iter().all(|v| is_int(v)) {
        return Dtype::Int;
    }
    let numbers = values.iter().filter(|v| is_number(v)).count();
    let oversized = values.iter().any(|v| matches!(v, Json::Number(n) if n.as_i64().is_none() && !n.is_f64()));
    if numbers > 0 && !oversized && values.iter().all(|v| is_number(v) || v.is_null()) {
        return Dtype::Float;
    }
    Dtype::Object
}

/// The dtype of two columns concatenated (`pd.concat`), each with whether all its values are
/// missing (pandas leaves such a column out when it decides the dtype).
fn concat(a: (Dtype, bool), b: (Dtype, bool)) -> Dtype {
    use Dtype::*;
    match (a, b) {
        ((x, _), (y, _)) if x == y => x,
        ((Int, _), (Float, _)) | ((Float, _), (Int, _)) | ((Bool, _), (Float, _)) | ((Float, _), (Bool, _)) => Float,
        ((Bool, _), (Int, _)) | ((Int, _), (Bool, _)) => Int,
        ((Object, true), (Float, _)) | ((Float, _), (Object, true)) => Float,
        _ => Object,
    }
}

/// The dtype of a column after `loc[rows, column] = value`.
fn set(dtype: Dtype, v: &Json) -> Dtype {
    match (dtype, v) {
        (Dtype::Object, _) => Dtype::Object,
        (Dtype::Int, Json::Number(_)) if is_int(v) => Dtype::Int,
        (Dtype::Int | Dtype::Float, Json::Number(n)) if n.as_f64().is_some() => Dtype::Float,
        (Dtype::Int | Dtype::Float, Json::Null) => Dtype::Float,
        (Dtype::Bool, Json::Bool(_)) => Dtype::Bool,
        _ => Dtype::Object,
    }
}

/// A value as a column of `dtype` holds it.
fn convert(dtype: Dtype, v: Json) -> Json {
    match (dtype, &v) {
        (Dtype::Float, Json::Number(n)) if !n.is_f64() => n.as_f64().map_or(v, Json::from),
        (Dtype::Float, Json::Bool(b)) => Json::from(if *b { 1.0 } else { 0.0 }),
        (Dtype::Int, Json::Bool(b)) => Json::from(i64::from(*b)),
        _ => v,
    }
}

impl Table {
    /// An empty collection of `entity`: its properties as columns (`pd.DataFrame(columns=...)`).
    pub fn new(entity: &Entity) -> Table {
        Table {
            columns: entity.properties.iter().map(|(n, _)| Column { name: n.clone(), dtype: Dtype::Object }).collect(),
            rows: Vec::new(),
        }
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// A row as an entity (`to_dict("records")`).
    fn record(&self, row: &[Json]) -> Map<String, Json> {
        self.columns.iter().zip(row).map(|(c, v)| (c.name.clone(), v.clone())).collect()
    }

    /// Which rows `where` selects (`_convert_where_to_filter`).
    fn select(&self, filter: &Map<String, Json>) -> Result<Vec<bool>, DatastoreError> {
        if filter.is_empty() {
            return Ok(vec![false; self.rows.len()]);
        }
        let mut mask = vec![true; self.rows.len()];
        for (k, want) in filter {
            let Some(col) = self.column(k) else {
                return Err(DatastoreError { class: "KeyError", message: format!("the collection has no column \"{k}\"") });
            };
            if let Json::Array(items) = want {
                // pandas compares a list element-wise with the column, and refuses one whose
                // length differs.
                if items.len() != self.rows.len() {
                    return Err(DatastoreError {
                        class: "ValueError",
                        message: format!(
                            "cannot filter on the list value of \"{k}\": pandas compares a list element by element with the {} rows of the collection (\"Lengths must match to compare\")",
                            self.rows.len()
                        ),
                    });
                }
                for ((m, row), item) in mask.iter_mut().zip(&self.rows).zip(items) {
                    *m &= !item.is_null() && weft_prompt::py_eq(&row[col], item);
                }
                continue;
            }
            for (m, row) in mask.iter_mut().zip(&self.rows) {
                *m &= !want.is_null() && !row[col].is_null() && weft_prompt::py_eq(&row[col], want);
            }
        }
        Ok(mask)
    }

    /// `list(where, limit)`.
    pub fn list(
        &self,
        entity: &Entity,
        collection: &str,
        filter: Option<&Map<String, Json>>,
        limit: Option<i64>,
    ) -> Result<Vec<Map<String, Json>>, DatastoreError> {
        if self.rows.is_empty() {
            return Ok(Vec::new());
        }
        let mask = match filter {
            Some(f) => {
                validate_partial(entity, collection, f)?;
                self.select(f)?
            }
            None => vec![true; self.rows.len()],
        };
        let mut chosen: Vec<Map<String, Json>> = self.rows.iter().zip(&mask).filter(|(_, m)| **m).map(|(r, _)| self.record(r)).collect();
        if let Some(limit) = limit {
            let n = i64::try_from(chosen.len()).unwrap_or(i64::MAX);
            let keep = if limit >= 0 { limit.min(n) } else { (n + limit).max(0) };
            chosen.truncate(usize::try_from(keep).unwrap_or(0));
        }
        Ok(chosen)
    }

    /// `create(entities)`: each entity with the defaults filled in first, validated, appended;
    /// the entities as created (before any dtype conversion).
    pub fn create(
        &mut self,
        entity: &Entity,
        collection: &str,
        entities: Vec<Map<String, Json>>,
    ) -> Result<Vec<Map<String, Json>>, DatastoreError> {
        let defaults = entity.defaults();
        let mut created = Vec::with_capacity(entities.len());
        for e in entities {
            let mut full = defaults.clone();
            for (k, v) in e {
                full.insert(k, v);
            }
            validate_full(entity, collection, &full)?;
            created.push(full);
        }
        // The new rows as a frame of their own: columns in order of first appearance.
        let mut names: Vec<String> = Vec::new();
        for e in &created {
            for k in e.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
        let new_columns: Vec<(String, Dtype, bool)> = names
            .iter()
            .map(|n| {
                let values: Vec<&Json> = created.iter().map(|e| e.get(n).unwrap_or(&Json::Null)).collect();
                (n.clone(), infer(&values), values.iter().all(|v| v.is_null()))
            })
            .collect();
        if self.rows.is_empty() {
            // pandas builds a new frame when the collection is empty.
            self.columns = new_columns.iter().map(|(n, d, _)| Column { name: n.clone(), dtype: *d }).collect();
        } else {
            for (n, dtype, all_na) in &new_columns {
                match self.column(n) {
                    Some(i) => {
                        let old_na = self.rows.iter().all(|r| r[i].is_null());
                        let merged = concat((self.columns[i].dtype, old_na), (*dtype, *all_na));
                        if merged != self.columns[i].dtype {
                            self.columns[i].dtype = merged;
                            for row in &mut self.rows {
                                let v = std::mem::take(&mut row[i]);
                                row[i] = convert(merged, v);
                            }
                        }
                    }
                    None => {
                        let merged = concat((Dtype::Object, true), (*dtype, *all_na));
                        self.columns.push(Column { name: n.clone(), dtype: merged });
                        for row in &mut self.rows {
                            row.push(Json::Null);
                        }
                    }
                }
            }
        }
        for e in &created {
            let row = self.columns.iter().map(|c| convert(c.dtype, e.get(&c.name).cloned().unwrap_or(Json::Null))).collect();
            self.rows.push(row);
        }
        Ok(created)
    }

    /// `update(where, update)`: the updated entities.
    pub fn update(
        &mut self,
        entity: &Entity,
        collection: &str,
        filter: &Map<String, Json>,
        update: &Map<String, Json>,
    ) -> Result<Vec<Map<String, Json>>, DatastoreError> {
        validate_partial(entity, collection, filter)?;
        validate_partial(entity, collection, update)?;
        let mask = self.select(filter)?;
        for (k, v) in update {
            if v.is_array() {
                return Err(DatastoreError {
                    class: "ValueError",
                    message: format!(
                        "cannot set \"{k}\" to a list: WayFlow's in-memory datastore (pandas) refuses it (\"setting an array element with a sequence\")"
                    ),
                });
            }
            let col = match self.column(k) {
                Some(i) => i,
                None => {
                    self.columns.push(Column { name: k.clone(), dtype: Dtype::Object });
                    for row in &mut self.rows {
                        row.push(Json::Null);
                    }
                    self.columns.len() - 1
                }
            };
            // pandas changes the column's dtype even when no row is selected.
            let dtype = set(self.columns[col].dtype, v);
            if dtype != self.columns[col].dtype {
                self.columns[col].dtype = dtype;
                for row in &mut self.rows {
                    let old = std::mem::take(&mut row[col]);
                    row[col] = convert(dtype, old);
                }
            }
            for (row, m) in self.rows.iter_mut().zip(&mask) {
                if *m {
                    row[col] = convert(dtype, v.clone());
                }
            }
        }
        Ok(self.rows.iter().zip(&mask).filter(|(_, m)| **m).map(|(r, _)| self.record(r)).collect())
    }

    /// `delete(where)`: the number of entities removed.
    pub fn delete(&mut self, entity: &Entity, collection: &str, filter: &Map<String, Json>) -> Result<usize, DatastoreError> {
        validate_partial(entity, collection, filter)?;
        let mask = self.select(filter)?;
        let before = self.rows.len();
        let mut keep = mask.iter().map(|m| !m);
        self.rows.retain(|_| keep.next().unwrap_or(true));
        Ok(before - self.rows.len())
    }

    /// Why a stored table is not one this code wrote, if it is not.
    pub fn problem(&self) -> Option<String> {
        let width = self.columns.len();
        if let Some((i, row)) = self.rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Some(format!("row {i} has {} values for {width} columns", row.len()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(c) = self.columns.iter().find(|c| !seen.insert(c.name.as_str())) {
            return Some(format!("column \"{}\" appears twice", c.name));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_prompt::PyProperty;

    fn entity() -> Entity {
        Entity {
            properties: vec![
                ("id".into(), PyProperty::from_schema(&json!({"type": "integer"}))),
                ("content".into(), PyProperty::from_schema(&json!({"type": "string", "default": "Empty..."}))),
                (
                    "score".into(),
                    PyProperty::from_schema(
                        &json!({"anyOf": [{"type": "null"}, {"type": "number"}, {"type": "integer"}], "default": null}),
                    ),
                ),
            ],
        }
    }

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn defaults_come_first_and_entities_are_validated() {
        let e = entity();
        let mut t = Table::new(&e);
        let made = t.create(&e, "docs", vec![obj(json!({"id": 1}))]).unwrap();
        assert_eq!(serde_json::to_string(&made[0]).unwrap(), r#"{"content":"Empty...","score":null,"id":1}"#);
        let err = t.create(&e, "docs", vec![obj(json!({"content": "x"}))]).unwrap_err();
        assert_eq!(err.class, "DatastoreEntityError");
        assert!(err.message.contains("lacks \"id\""), "{}", err.message);
        let err = t.create(&e, "docs", vec![obj(json!({"id": 1.0}))]).unwrap_err();
        assert!(err.message.contains("IntegerProperty"), "{}", err.message);
        let err = t.create(&e, "docs", vec![obj(json!({"id": 2, "extra": 1}))]).unwrap_err();
        assert!(err.message.contains("\"extra\" is not a property"), "{}", err.message);
    }

    #[test]
    fn where_limit_and_dtypes_behave_as_pandas() {
        let e = entity();
        let mut t = Table::new(&e);
        // An empty collection lists nothing before the filter is even checked.
        assert!(t.list(&e, "docs", Some(&obj(json!({"nope": 1}))), None).unwrap().is_empty());
        t.create(&e, "docs", vec![obj(json!({"id": 1, "score": 2})), obj(json!({"id": 2, "score": null}))]).unwrap();
        // A number column with a missing value is float64.
        let all = t.list(&e, "docs", None, None).unwrap();
        assert_eq!(all[0]["score"], json!(2.0));
        assert_eq!(t.list(&e, "docs", Some(&obj(json!({}))), None).unwrap().len(), 0);
        assert_eq!(t.list(&e, "docs", Some(&obj(json!({"score": null}))), None).unwrap().len(), 0);
        assert_eq!(t.list(&e, "docs", Some(&obj(json!({"id": true}))), None).unwrap()[0]["id"], json!(1));
        assert_eq!(t.list(&e, "docs", None, Some(-1)).unwrap().len(), 1);
        assert_eq!(t.list(&e, "docs", None, Some(0)).unwrap().len(), 0);
        let updated = t.update(&e, "docs", &obj(json!({"id": 2})), &obj(json!({"content": "b"}))).unwrap();
        assert_eq!(updated[0]["content"], json!("b"));
        assert_eq!(t.delete(&e, "docs", &obj(json!({"content": "b"}))).unwrap(), 1);
        assert_eq!(t.list(&e, "docs", None, None).unwrap().len(), 1);
    }
}
