//! Every rule a document must pass, run over the whole spec at once so that all diagnostics
//! are reported together. Each submodule is one family of rules.

pub(crate) mod io;
mod props;
mod version;

pub use version::floor as version_floor;

use crate::infer::Inferrer;
use weft_spec::{Code, CompId, Component, Diagnostic, Spec};

/// Runs every check; components flagged `incomplete` by the loader are skipped where their
/// missing fields would only cause follow-on errors.
/// Returns the resolved interface of every component, computed once for the checks, and the
/// typed model of what runs (lowered last: it reads the interfaces).
pub fn run(spec: &Spec, incomplete: &[bool], partial: &[bool], diags: &mut Vec<Diagnostic>) -> (Vec<crate::infer::Io>, crate::node::Model) {
    let mut inf = Inferrer::new(spec);
    let mut cx = Cx { spec, incomplete, partial, diags };
    props::check(&mut cx);
    io::check(&mut cx, &mut inf);
    crate::node::flow::check::check_flows(&mut cx, &mut inf);
    // Component-specific rules, by family (crate::node).
    for c in 0..spec.components.len() {
        if !cx.skip(c) {
            crate::node::check(&mut cx, &mut inf, c);
        }
    }
    version::check(&mut cx);
    let ios: Vec<crate::infer::Io> = (0..spec.components.len()).map(|c| inf.io(c)).collect();
    let model = crate::node::lower(&mut cx, &ios);
    (ios, model)
}

/// What every check needs.
pub(crate) struct Cx<'a> {
    pub spec: &'a Spec,
    pub incomplete: &'a [bool],
    pub partial: &'a [bool],
    pub diags: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// Reports `msg` about `comp` at `ptr`.
    pub fn report(&mut self, comp: &Component, code: Code, ptr: impl Into<String>, msg: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::new(code, ptr, msg).maybe_hint(hint).component(Some(&comp.name), Some(&comp.id));
        if comp.source > 0 {
            d.file = self.spec.sources.get(comp.source).cloned();
        }
        self.diags.push(d);
    }

    /// Whether the loader flagged the component.
    pub fn skip(&self, c: CompId) -> bool {
        self.incomplete.get(c).copied().unwrap_or(false)
    }

    /// Whether a component nested in this one failed to load.
    pub fn partial(&self, c: CompId) -> bool {
        self.partial.get(c).copied().unwrap_or(false)
    }
}
