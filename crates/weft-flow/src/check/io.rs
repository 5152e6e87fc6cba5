//! Declared inputs, outputs and branches against the inferred ones (FORMAT.md 1.1 and 8), and
//! the per-node interface rules.

use super::Cx;
use crate::infer::Inferrer;
use std::collections::BTreeSet;
use weft_spec::catalog::Io as IoKind;
use weft_spec::diagnostic::did_you_mean;
use weft_spec::{Code, Component, Property};

pub(super) fn check(cx: &mut Cx<'_>, inf: &mut Inferrer<'_>) {
    let spec = cx.spec;
    for (c, comp) in spec.components.iter().enumerate() {
        if comp.ty.io == IoKind::None || cx.skip(c) {
            continue;
        }
        let inferred = inf.inferred(c);
        // A family with interface rules of its own checks the declared lists itself.
        if !crate::node::check_interface(cx, comp, &inferred) {
            if !inferred.inputs_explicit_wins {
                compare(cx, comp, "inputs", comp.inputs.as_deref(), inferred.inputs.as_deref());
            }
            if !inferred.outputs_explicit_wins {
                compare(cx, comp, "outputs", comp.outputs.as_deref(), inferred.outputs.as_deref());
            }
        }
        if comp.ty.io == IoKind::Node {
            branches(cx, comp, inferred.branches.as_deref(), inferred.branches_free_when_given);
        }
    }
}

/// Reports a declared list that should hold exactly one property, at its second entry (or at
/// the empty list).
pub(crate) fn exactly_one(cx: &mut Cx<'_>, comp: &Component, list: &[Property], what: &str, rule: &str, example: &str) {
    let ptr = if list.len() > 1 { list[1].pointer.clone() } else { format!("{}/{what}", comp.pointer) };
    cx.report(
        comp,
        Code::IoMismatch,
        ptr,
        format!("{}: {rule}, found {}", comp.label(), list.len()),
        Some(format!("keep a single {}, e.g. {example}", &what[..what.len() - 1])),
    );
}

/// Titles given must be exactly the titles inferred.
pub(crate) fn compare(cx: &mut Cx<'_>, comp: &Component, what: &str, given: Option<&[Property]>, inferred: Option<&[Property]>) {
    let (Some(given), Some(inferred)) = (given, inferred) else { return };
    let want: BTreeSet<&str> = inferred.iter().map(Property::title).collect();
    let have: BTreeSet<&str> = given.iter().map(Property::title).collect();
    for p in given {
        if !want.contains(p.title()) {
            let hint = match did_you_mean(p.title(), want.iter().copied()) {
                Some(s) => format!("did you mean \"{s}\"? The {what} of this {} are inferred: {}", comp.ty.name, list(&want)),
                None => format!("remove it: the {what} of this {} are inferred from its configuration: {}", comp.ty.name, list(&want)),
            };
            cx.report(
                comp,
                Code::IoMismatch,
                p.pointer.clone(),
                format!("{}: unexpected {} \"{}\"", comp.label(), singular(what), p.title()),
                Some(hint),
            );
        }
    }
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    if !missing.is_empty() {
        cx.report(
            comp,
            Code::IoMismatch,
            format!("{}/{what}", comp.pointer),
            format!(
                "{}: `{what}` lacks {} inferred from its configuration: {}",
                comp.label(),
                if missing.len() == 1 { "a property" } else { "properties" },
                missing.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
            ),
            Some(format!("add {} to `{what}`, or remove `{what}` to let it be inferred", missing.join(", "))),
        );
    }
}

fn singular(what: &str) -> &str {
    what.strip_suffix('s').unwrap_or(what)
}

fn list(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

fn branches(cx: &mut Cx<'_>, comp: &Component, inferred: Option<&[String]>, free: bool) {
    let Some(given) = &comp.branches else { return };
    let ptr = format!("{}/branches", comp.pointer);
    let set: BTreeSet<&str> = given.iter().map(String::as_str).collect();
    if set.len() != given.len() {
        cx.report(
            comp,
            Code::Branches,
            ptr.clone(),
            format!("{}: `branches` lists a branch twice", comp.label()),
            Some("list each branch once".into()),
        );
        return;
    }
    if comp.is("EndNode") {
        cx.report(
            comp,
            Code::Branches,
            ptr,
            format!("{}: an EndNode has no branches, found {}", comp.label(), given.join(", ")),
            Some("remove `branches` (or write [])".into()),
        );
        return;
    }
    if free {
        return;
    }
    let Some(inferred) = inferred else { return };
    let want: BTreeSet<&str> = inferred.iter().map(String::as_str).collect();
    if want != set {
        cx.report(
            comp,
            Code::Branches,
            ptr,
            format!("{}: `branches` is [{}] but its configuration gives [{}]", comp.label(), given.join(", "), inferred.join(", ")),
            Some(format!("write \"branches\": {:?}, or remove it to let it be inferred", inferred)),
        );
    }
}
