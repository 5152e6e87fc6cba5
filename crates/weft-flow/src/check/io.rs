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
        match comp.ty.name {
            "StartNode" | "EndNode" => {
                if let (Some(i), Some(o)) = (&comp.inputs, &comp.outputs) {
                    let same = i.len() == o.len() && i.iter().zip(o).all(|(a, b)| a.schema == b.schema);
                    if !same {
                        cx.report(
                            comp,
                            Code::IoMismatch,
                            format!("{}/outputs", comp.pointer),
                            format!(
                                "{}: `inputs` and `outputs` are both given but differ; a {} passes its values through unchanged",
                                comp.label(),
                                comp.ty.name
                            ),
                            Some("make `outputs` identical to `inputs` (schemas included), or give only one of them".into()),
                        );
                    }
                }
            }
            "InputMessageNode" => {
                if let Some(outs) = &comp.outputs {
                    if outs.len() != 1 {
                        exactly_one(
                            cx,
                            comp,
                            outs,
                            "outputs",
                            "an InputMessageNode has exactly one string output",
                            "{\"title\": \"user_input\", \"type\": \"string\"}",
                        );
                    } else if outs[0].schema.get("type").and_then(|t| t.as_str()) != Some("string") {
                        cx.report(
                            comp,
                            Code::IoMismatch,
                            outs[0].pointer.clone(),
                            format!("{}: the output of an InputMessageNode must be a string, found {}", comp.label(), outs[0].type_name()),
                            Some("set \"type\": \"string\"".into()),
                        );
                    }
                }
                compare(cx, comp, "inputs", comp.inputs.as_deref(), inferred.inputs.as_deref());
            }
            "BranchingNode" => {
                if let Some(ins) = &comp.inputs
                    && ins.len() != 1
                {
                    exactly_one(
                        cx,
                        comp,
                        ins,
                        "inputs",
                        "a BranchingNode has exactly one string input",
                        "{\"title\": \"branching_mapping_key\", \"type\": \"string\"}",
                    );
                }
                if let Some(outs) = &comp.outputs
                    && let Some(p) = outs.first()
                {
                    cx.report(
                        comp,
                        Code::IoMismatch,
                        p.pointer.clone(),
                        format!("{}: a BranchingNode has no outputs, found \"{}\"", comp.label(), p.title()),
                        Some("remove the outputs".into()),
                    );
                }
            }
            _ => {
                if !inferred.inputs_explicit_wins {
                    compare(cx, comp, "inputs", comp.inputs.as_deref(), inferred.inputs.as_deref());
                }
                if !inferred.outputs_explicit_wins {
                    compare(cx, comp, "outputs", comp.outputs.as_deref(), inferred.outputs.as_deref());
                }
            }
        }
        if comp.ty.io == IoKind::Node {
            branches(cx, comp, inferred.branches.as_deref(), inferred.branches_free_when_given);
        }
    }
}

/// Reports a declared list that should hold exactly one property, at its second entry (or at
/// the empty list).
fn exactly_one(cx: &mut Cx<'_>, comp: &Component, list: &[Property], what: &str, rule: &str, example: &str) {
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
fn compare(cx: &mut Cx<'_>, comp: &Component, what: &str, given: Option<&[Property]>, inferred: Option<&[Property]>) {
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
