//! The exporter: a checked [`Flow`] back to an Agent Spec document that pyagentspec and
//! WayFlow load (FORMAT.md sections 3.2 and 13).
//!
//! Placement follows pyagentspec, so round trips are stable: a component used once is written
//! inline; one used more than once is written as `{"$component_ref": id}` at every use and
//! defined in the `$referenced_components` of the lowest common ancestor of its uses. Every
//! component carries explicit `inputs`, `outputs` and `branches`, and every field that exists
//! at the written version, nulls included. Sensitive fields are written as `<id>.<field>`
//! references, never as values. The export is self-contained: components that came from a
//! registry are placed like any other.

use crate::Flow;
use crate::check::version_floor;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use weft_spec::catalog::{Io as IoKind, Support, Ty};
use weft_spec::model::VersionSource;
use weft_spec::{CompId, Format, Value, Version};

/// How to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// JSON or YAML.
    pub format: Format,
    /// The `agentspec_version` to write; `None` keeps the document's declared version (or the
    /// minimum its components need, when it declared none or less).
    pub version: Option<Version>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { format: Format::Json, version: None }
    }
}

/// Why a flow cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The requested version is below what the components need.
    #[error("cannot export as agentspec_version {requested}: the document needs at least {minimum} ({reason}); ask for {minimum} or later")]
    VersionTooLow {
        /// The version asked for.
        requested: Version,
        /// The document minimum.
        minimum: Version,
        /// Which component sets the minimum.
        reason: String,
    },
    /// The YAML writer failed.
    #[error("cannot write YAML: {0}")]
    Yaml(String),
}

/// The document's minimum version (FORMAT.md 4.2) and the component that sets it.
pub fn minimum_version(flow: &Flow) -> (Version, String) {
    let mut best = (Version::V25_4_1, "the base version".to_owned());
    for comp in &flow.spec().components {
        let (v, why) = version_floor(comp);
        if v > best.0 {
            best = (v, why);
        }
    }
    best
}

/// Exports to text.
pub fn export(flow: &Flow, options: &ExportOptions) -> Result<String, ExportError> {
    let doc = export_value(flow, options.version)?;
    match options.format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&doc).map_err(|e| ExportError::Yaml(e.to_string()))?;
            s.push('\n');
            Ok(s)
        }
        Format::Yaml => serde_saphyr_to_string(&doc),
    }
}

fn serde_saphyr_to_string(doc: &Json) -> Result<String, ExportError> {
    weft_spec::source::to_yaml(doc).map_err(ExportError::Yaml)
}

/// Exports to a JSON value.
pub fn export_value(flow: &Flow, version: Option<Version>) -> Result<Json, ExportError> {
    let spec = flow.spec();
    let (minimum, reason) = minimum_version(flow);
    let version = match version {
        Some(v) if v < minimum => return Err(ExportError::VersionTooLow { requested: v, minimum, reason }),
        Some(v) => v,
        None if spec.version_source == VersionSource::Missing => minimum,
        None => spec.version.max(minimum),
    };
    let plan = Placement::compute(flow);
    let writer = Writer { flow, plan: &plan, version };
    let mut root = writer.component(spec.root);
    if let Json::Object(m) = &mut root {
        m.insert("agentspec_version".into(), Json::String(version.to_string()));
    }
    Ok(root)
}

/// Where each component is written.
struct Placement {
    /// Number of use sites.
    uses: Vec<usize>,
    /// For shared components, the component whose table defines them.
    owner: Vec<Option<CompId>>,
    /// For each component, the shared components its table defines, in first-use order.
    table: HashMap<CompId, Vec<CompId>>,
}

impl Placement {
    fn compute(flow: &Flow) -> Placement {
        let spec = flow.spec();
        let n = spec.components.len();
        let mut uses = vec![0usize; n];
        let mut parents: Vec<Vec<CompId>> = vec![Vec::new(); n];
        // Depth-first from the root, each component expanded once, in field order.
        let mut order = Vec::new();
        let mut seen = vec![false; n];
        let mut stack = vec![(spec.root, false)];
        while let Some((c, done)) = stack.pop() {
            if done {
                order.push(c);
                continue;
            }
            if seen[c] {
                continue;
            }
            seen[c] = true;
            stack.push((c, true));
            let children = spec.children(c);
            for &ch in &children {
                uses[ch] += 1;
                parents[ch].push(c);
            }
            for &ch in children.iter().rev() {
                if !seen[ch] {
                    stack.push((ch, false));
                }
            }
        }
        // Reverse post-order is a topological order: parents before children.
        order.reverse();
        let mut path: Vec<Vec<CompId>> = vec![Vec::new(); n];
        let mut owner = vec![None; n];
        let mut table: HashMap<CompId, Vec<CompId>> = HashMap::new();
        for &c in &order {
            if c == spec.root {
                path[c] = vec![c];
                continue;
            }
            let ps = &parents[c];
            if uses[c] <= 1 {
                let mut p = ps.first().map(|&p| path[p].clone()).unwrap_or_default();
                p.push(c);
                path[c] = p;
            } else {
                let mut common = path[ps[0]].clone();
                for &p in &ps[1..] {
                    let other = &path[p];
                    let k = common.iter().zip(other).take_while(|(a, b)| a == b).count();
                    common.truncate(k);
                }
                let own = common.last().copied().unwrap_or(spec.root);
                owner[c] = Some(own);
                let mut p = common;
                p.push(c);
                path[c] = p;
            }
        }
        // Tables list their entries in the order the components are first met.
        let mut first_seen: Vec<CompId> = Vec::new();
        let mut met = vec![false; n];
        let mut stack = vec![spec.root];
        while let Some(c) = stack.pop() {
            if met[c] {
                continue;
            }
            met[c] = true;
            first_seen.push(c);
            for &ch in spec.children(c).iter().rev() {
                stack.push(ch);
            }
        }
        for c in first_seen {
            if let Some(o) = owner[c] {
                table.entry(o).or_default().push(c);
            }
        }
        Placement { uses, owner, table }
    }
}

struct Writer<'a> {
    flow: &'a Flow,
    plan: &'a Placement,
    version: Version,
}

impl Writer<'_> {
    fn slot(&self, c: CompId) -> Json {
        if self.plan.uses[c] > 1 && self.plan.owner[c].is_some() {
            let mut m = Map::new();
            m.insert("$component_ref".into(), Json::String(self.flow.spec().get(c).id.clone()));
            Json::Object(m)
        } else {
            self.component(c)
        }
    }

    fn component(&self, c: CompId) -> Json {
        let spec = self.flow.spec();
        let comp = spec.get(c);
        let io = self.flow.io(c);
        let mut m = Map::new();
        m.insert("component_type".into(), Json::String(comp.ty.name.into()));
        m.insert("id".into(), Json::String(comp.id.clone()));
        m.insert("name".into(), Json::String(comp.name.clone()));
        m.insert("description".into(), comp.description.clone().map_or(Json::Null, Json::String));
        m.insert("metadata".into(), comp.metadata.clone().unwrap_or(Json::Null));
        if comp.ty.io != IoKind::None {
            m.insert("inputs".into(), Json::Array(io.inputs.iter().map(|p| p.schema.clone()).collect()));
            m.insert("outputs".into(), Json::Array(io.outputs.iter().map(|p| p.schema.clone()).collect()));
        }
        if comp.ty.io == IoKind::Node {
            m.insert("branches".into(), Json::Array(io.branches.iter().cloned().map(Json::String).collect()));
        }
        for f in comp.ty.fields {
            if !comp.ty.is_plugin() && f.since.is_some_and(|s| s > self.version) {
                continue;
            }
            let Some(v) = comp.fields.get(f.name) else { continue };
            let mut out = self.value(v);
            if f.ty == Ty::GenConfig
                && let Json::Object(g) = &mut out
            {
                g.retain(|_, v| !v.is_null());
            }
            if f.sensitive && truthy(&out) && !is_ref(&out) {
                let mut r = Map::new();
                r.insert("$component_ref".into(), Json::String(format!("{}.{}", comp.id, f.name)));
                out = Json::Object(r);
            }
            m.insert(f.name.into(), out);
        }
        if comp.ty.support == Support::Generic {
            for (k, v) in &comp.extra {
                m.insert(k.clone(), v.clone());
            }
        }
        if let Some((plugin, plugin_version)) = comp.ty.plugin {
            m.insert("component_plugin_name".into(), Json::String(plugin.into()));
            m.insert("component_plugin_version".into(), Json::String(plugin_version.into()));
        }
        if let Some(entries) = self.plan.table.get(&c) {
            let mut t = Map::new();
            for &e in entries {
                t.insert(spec.get(e).id.clone(), self.component(e));
            }
            m.insert("$referenced_components".into(), Json::Object(t));
        }
        Json::Object(m)
    }

    fn value(&self, v: &Value) -> Json {
        match v {
            Value::Json(j) => j.clone(),
            Value::Comp(c) => self.slot(*c),
            Value::List(items) => Json::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), self.value(v))).collect()),
            Value::Secret(s) => {
                let mut r = Map::new();
                r.insert("$component_ref".into(), Json::String(s.key.clone()));
                Json::Object(r)
            }
            Value::Props(ps) => Json::Array(ps.iter().map(|p| p.schema.clone()).collect()),
            Value::Prop(p) => p.schema.clone(),
            Value::PropMap(m) => Json::Object(m.iter().map(|(k, p)| (k.clone(), p.schema.clone())).collect()),
        }
    }
}

fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::String(s) => !s.is_empty(),
        Json::Object(m) => !m.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Number(_) => true,
    }
}

fn is_ref(v: &Json) -> bool {
    v.get("$component_ref").is_some()
}
