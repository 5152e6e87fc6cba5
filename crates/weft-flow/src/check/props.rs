//! Property rules (FORMAT.md 5.1, 5.4): valid JSON Schema, allowed titles, compatible
//! defaults, and unique titles within each list.

use super::Cx;
use crate::schema::{default_compatible, nested_titles, schema_problem, title_problem};
use std::collections::HashSet;
use weft_spec::{Code, Component, Property, Value};

pub(super) fn check(cx: &mut Cx<'_>) {
    let spec = cx.spec;
    for comp in &spec.components {
        if let Some(inputs) = &comp.inputs {
            list(cx, comp, inputs, "inputs");
        }
        if let Some(outputs) = &comp.outputs {
            list(cx, comp, outputs, "outputs");
        }
        for (name, v) in &comp.fields {
            match v {
                Value::Props(ps) => list(cx, comp, ps, name),
                Value::Prop(p) => one(cx, comp, p),
                Value::PropMap(m) => m.values().for_each(|p| one(cx, comp, p)),
                _ => {}
            }
        }
    }
}

fn list(cx: &mut Cx<'_>, comp: &Component, props: &[Property], what: &str) {
    let mut seen = HashSet::new();
    for p in props {
        one(cx, comp, p);
        if !seen.insert(p.title()) {
            cx.report(
                comp,
                Code::Title,
                p.pointer.clone(),
                format!("{}: the title \"{}\" appears twice in `{what}`", comp.label(), p.title()),
                Some(format!("rename or remove one of the two \"{}\" properties", p.title())),
            );
        }
    }
}

fn one(cx: &mut Cx<'_>, comp: &Component, p: &Property) {
    if let Some(t) = p.schema.get("title") {
        match t.as_str() {
            Some(title) => {
                if let Some(problem) = title_problem(title) {
                    let fixed: String = title.chars().map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
                    cx.report(
                        comp,
                        Code::Title,
                        format!("{}/title", p.pointer),
                        format!("{}: {problem}", comp.label()),
                        Some(format!("rename it, e.g. \"{fixed}\"")),
                    );
                }
            }
            None => cx.report(
                comp,
                Code::Title,
                format!("{}/title", p.pointer),
                format!("{}: a property title must be a string", comp.label()),
                None,
            ),
        }
    }
    for (rel, title) in nested_titles(&p.schema) {
        if let Some(problem) = title_problem(&title) {
            cx.report(comp, Code::Title, format!("{}{rel}", p.pointer), format!("{}: {problem}", comp.label()), None);
        }
    }
    if let Some(problem) = schema_problem(&p.schema) {
        cx.report(
            comp,
            Code::Schema,
            p.pointer.clone(),
            format!("{}: property \"{}\" is not a valid JSON Schema (Draft 2020-12): {problem}", comp.label(), p.title()),
            Some("fix the schema; common types are string, integer, number, boolean, null, array and object".into()),
        );
        return;
    }
    if let Some(d) = p.default()
        && !default_compatible(&p.schema, d)
    {
        cx.report(
            comp,
            Code::Default,
            format!("{}/default", p.pointer),
            format!("{}: the default {d} of property \"{}\" does not fit its type {}", comp.label(), p.title(), p.type_name()),
            Some("change the default to a value of the declared type, or remove it".into()),
        );
    }
}
