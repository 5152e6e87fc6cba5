//! Inference of inputs, outputs and branches, per component type (FORMAT.md sections 6-8,
//! 10 and 11).
//!
//! For each component the inferrer computes what the configuration implies. `None` means the
//! type leaves that list free (tools, agents' outputs, ...): the declared list is taken as is.
//! The resolved lists ([`Io`]) are the declared ones where given, else the inferred ones.

use crate::template::jinja_inputs;
use serde_json::{Value as Json, json};
use weft_spec::catalog::Io as IoKind;
use weft_spec::{CompId, Component, Property, Spec};

/// The resolved interface of a component.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Io {
    /// Inputs, by title.
    pub inputs: Vec<Property>,
    /// Outputs, by title.
    pub outputs: Vec<Property>,
    /// Branches (nodes only), sorted for inferred lists.
    pub branches: Vec<String>,
}

impl Io {
    /// The input titled `title`.
    pub fn input(&self, title: &str) -> Option<&Property> {
        self.inputs.iter().find(|p| p.title() == title)
    }
    /// The output titled `title`.
    pub fn output(&self, title: &str) -> Option<&Property> {
        self.outputs.iter().find(|p| p.title() == title)
    }
}

/// What a component's configuration implies.
#[derive(Debug, Clone, Default)]
pub struct Inferred {
    /// Inferred inputs (`None`: free).
    pub inputs: Option<Vec<Property>>,
    /// Inferred outputs (`None`: free).
    pub outputs: Option<Vec<Property>>,
    /// Inferred branches (`None`: free).
    pub branches: Option<Vec<String>>,
    /// Whether an explicit `outputs` list replaces the inferred one entirely (LlmNode, ApiNode,
    /// ParallelFlowNode inputs...): then only the declared list counts.
    pub outputs_explicit_wins: bool,
    /// Whether an explicit `inputs` list replaces the inferred one entirely.
    pub inputs_explicit_wins: bool,
    /// Whether any explicit `branches` list is accepted (AgentNode).
    pub branches_free_when_given: bool,
}

/// Memoized inference over a whole spec.
pub struct Inferrer<'s> {
    spec: &'s Spec,
    io: Vec<Option<Io>>,
    inferred: Vec<Option<Inferred>>,
    in_progress: Vec<bool>,
}

impl<'s> Inferrer<'s> {
    /// An inferrer for `spec`.
    pub fn new(spec: &'s Spec) -> Self {
        let n = spec.components.len();
        Inferrer { spec, io: vec![None; n], inferred: vec![None; n], in_progress: vec![false; n] }
    }

    /// The resolved interface of a component.
    pub fn io(&mut self, c: CompId) -> Io {
        if let Some(io) = &self.io[c] {
            return io.clone();
        }
        if self.in_progress[c] {
            // Only a malformed document can make a component depend on itself; the loader has
            // already reported it. Break the loop with what is declared.
            return declared_only(self.spec.get(c));
        }
        self.in_progress[c] = true;
        let inf = self.inferred(c);
        let comp = self.spec.get(c);
        let mut io = Io {
            inputs: comp.inputs.clone().or_else(|| inf.inputs.clone()).unwrap_or_default(),
            outputs: comp.outputs.clone().or_else(|| inf.outputs.clone()).unwrap_or_default(),
            branches: comp.branches.clone().or_else(|| inf.branches.clone()).unwrap_or_default(),
        };
        // StartNode and EndNode: inputs and outputs copy each other when only one is given.
        if comp.is("StartNode") || comp.is("EndNode") {
            match (&comp.inputs, &comp.outputs) {
                (Some(i), None) => io.outputs = i.clone(),
                (None, Some(o)) => io.inputs = o.clone(),
                _ => {}
            }
        }
        if comp.ty.io != IoKind::Node {
            io.branches.clear();
        }
        self.in_progress[c] = false;
        self.io[c] = Some(io.clone());
        io
    }

    /// What the configuration implies (memoized).
    pub fn inferred(&mut self, c: CompId) -> Inferred {
        if let Some(inf) = &self.inferred[c] {
            return inf.clone();
        }
        let inf = self.compute(c);
        self.inferred[c] = Some(inf.clone());
        inf
    }

    fn compute(&mut self, c: CompId) -> Inferred {
        crate::node::infer(self, c)
    }

    /// The spec being inferred.
    pub(crate) fn spec(&self) -> &'s Spec {
        self.spec
    }

    /// Titles present in every EndNode of a flow (FORMAT.md 7.1).
    pub(crate) fn flow_outputs(&mut self, flow: CompId) -> Vec<Property> {
        let ends: Vec<CompId> =
            crate::node::flow::nodes_of(self.spec, flow).into_iter().filter(|&n| self.spec.get(n).is("EndNode")).collect();
        let Some((&first, rest)) = ends.split_first() else { return Vec::new() };
        let first_io = self.io(first);
        let rest_ios: Vec<Io> = rest.iter().map(|&e| self.io(e)).collect();
        first_io.outputs.into_iter().filter(|p| rest_ios.iter().all(|io| io.output(p.title()).is_some())).collect()
    }

    /// The distinct `branch_name`s of a flow's EndNodes, sorted.
    pub fn end_branches(&self, flow: CompId) -> Vec<String> {
        let names = crate::node::flow::nodes_of(self.spec, flow)
            .into_iter()
            .filter(|&n| self.spec.get(n).is("EndNode"))
            .map(|n| crate::node::flow::end_branch(self.spec.get(n)))
            .collect();
        sorted_unique(names)
    }
}

fn declared_only(c: &Component) -> Io {
    Io {
        inputs: c.inputs.clone().unwrap_or_default(),
        outputs: c.outputs.clone().unwrap_or_default(),
        branches: c.branches.clone().unwrap_or_default(),
    }
}

/// One string property per name.
pub(crate) fn string_props(names: &[String]) -> Vec<Property> {
    names.iter().map(|n| Property::typed(n, "string")).collect()
}

/// Sorted, each once.
pub(crate) fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Adds the properties whose titles are not there yet.
pub(crate) fn union_into(into: &mut Vec<Property>, more: Vec<Property>) {
    for p in more {
        if !into.iter().any(|q| q.title() == p.title()) {
            into.push(p);
        }
    }
}

/// Renames titles through a WayFlow `input_mapping`/`output_mapping` (internal to external).
pub(crate) fn map_titles(mapping: &[(String, String)], props: Vec<Property>) -> Vec<Property> {
    if mapping.is_empty() {
        return props;
    }
    props
        .into_iter()
        .map(|p| match mapping.iter().find(|(internal, _)| internal == p.title()) {
            Some((_, external)) => p.retitled(external),
            None => p,
        })
        .collect()
}

/// One untyped property per key of an object (extracted or constant values).
pub(crate) fn key_props(object: Option<&serde_json::Map<String, Json>>) -> Vec<Property> {
    object.map(|m| m.keys().map(|k| Property::new(json!({"title": k}))).collect()).unwrap_or_default()
}

/// Inputs of a Jinja template, WayFlow's way, minus variables the node provides itself.
pub(crate) fn jinja_titles(template: &str, provided: &[&str]) -> Vec<Property> {
    jinja_inputs(&[template]).unwrap_or_default().into_iter().map(Property::new).filter(|p| !provided.contains(&p.title())).collect()
}
