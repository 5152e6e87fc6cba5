//! Printing diagnostics: human-readable on stderr, or the JSON-lines contract on stdout.

#![allow(clippy::print_stderr, reason = "the CLI is the one crate that prints diagnostics")]

use serde_json::json;
use weft_spec::{Diagnostic, Diagnostics, Severity};

/// One line of `validate --format json`: `{"file", "valid", "diagnostics": [...]}`.
pub fn json_line(file: &str, valid: bool, diags: &Diagnostics) -> String {
    let list: Vec<serde_json::Value> = diags.iter().map(diagnostic_json).collect();
    json!({"file": file, "valid": valid, "diagnostics": list}).to_string()
}

fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    let mut v = json!({
        "severity": d.severity,
        "code": d.code.as_str(),
        "pointer": d.pointer,
        "line": d.line,
        "column": d.column,
        "component": d.component.as_ref().map(|c| json!({"name": c.name, "id": c.id})),
        "message": d.message,
        "hint": d.hint,
    });
    if let (Some(file), Some(obj)) = (&d.file, v.as_object_mut()) {
        obj.insert("file".into(), json!(file));
    }
    v
}

/// The human-readable report of one file, on stderr.
pub fn human(file: &str, diags: &Diagnostics, valid: bool) {
    eprint!("{}", crate::scrub::text(&render(file, diags, valid)));
}

/// The human-readable report as text (also used by snapshot tests through the binary).
pub fn render(file: &str, diags: &Diagnostics, valid: bool) -> String {
    let mut s = String::new();
    for d in diags.iter() {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        s.push_str(&format!("{sev}[{}]: {}\n", d.code, d.message));
        let at = d.file.as_deref().unwrap_or(file);
        let pointer = weft_spec::diagnostic::display_pointer(&d.pointer);
        match (d.line, d.column) {
            (Some(l), Some(c)) => s.push_str(&format!("  --> {at}:{l}:{c} at {pointer}\n")),
            _ => s.push_str(&format!("  --> {at} at {pointer}\n")),
        }
        if let Some(c) = &d.component {
            let name = c.name.as_deref().unwrap_or("?");
            match &c.id {
                Some(id) => s.push_str(&format!("   = component: \"{name}\" (id {id})\n")),
                None => s.push_str(&format!("   = component: \"{name}\"\n")),
            }
        }
        if let Some(h) = &d.hint {
            s.push_str(&format!("   = hint: {h}\n"));
        }
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
    if valid {
        if warnings == 0 {
            s.push_str(&format!("{file}: valid\n"));
        } else {
            s.push_str(&format!("{file}: valid, {}\n", plural(warnings, "warning")));
        }
    } else {
        s.push_str(&format!("{file}: invalid: {}, {}\n", plural(errors, "error"), plural(warnings, "warning")));
    }
    s
}

/// A usage or IO error, on stderr.
pub fn error_line(message: &str) {
    eprintln!("error: {}", crate::scrub::text(message));
}

/// A line on stderr, secrets masked.
pub fn line(text: &str) {
    eprintln!("{}", crate::scrub::text(text));
}
