//! HTTP: ApiNode, RemoteTool and the MCP transports. Weft runs ApiNode (a node of its own) and
//! RemoteTool (in a ToolNode or an agent); it checks and exports the MCP transports.
//!
//! An ApiNode's or RemoteTool's request is lowered once into an [`HttpCall`]: every string of
//! `url`, `http_method`, `data`, `query_params`, `headers` and `sensitive_headers` (keys and
//! values, at any depth) compiled as a Jinja template ([`TemplatedJson`]), the `url_allow_list`
//! parsed ([`weft_guard::UrlAllowList`]), the `retry_policy` kept. What the document gets wrong
//! is reported here: templates that do not compile or read a variable that is not an input,
//! header values that are not strings, allow-list entries that cannot work, a templated URL
//! destination without an allow list (AGENTS.md 7.1).

use super::{Fields, Lowered, Lowerer, NodeKind, next, object_value};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, string_props};
use crate::template::{json_placeholders, placeholders};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use weft_guard::{AllowEntry, UrlAllowList};
use weft_prompt::{Template, TemplateError};
use weft_spec::{Code, CompId, Component, Property, SecretRef, Value};

/// The types of the family.
pub const TYPES: &[&str] = &[
    "ApiNode",
    "RemoteTool",
    "SSETransport",
    "StreamableHTTPTransport",
    "SSEmTLSTransport",
    "StreamableHTTPmTLSTransport",
    "PluginSSETransport",
    "PluginStreamableHTTPTransport",
    "PluginSSEmTLSTransport",
    "PluginStreamableHTTPmTLSTransport",
];

/// A JSON value whose strings (object keys included) are Jinja templates.
#[derive(Debug, Clone)]
pub enum TemplatedJson {
    /// A string with template syntax, compiled.
    Template(Arc<Template>),
    /// A value rendered as it is: a string without template syntax, a number, a boolean, null.
    Literal(Json),
    /// An array.
    Array(Vec<TemplatedJson>),
    /// An object, its members in order.
    Object(Vec<(TemplatedJson, TemplatedJson)>),
}

impl TemplatedJson {
    /// The value with every template rendered with `vars`.
    pub fn render(&self, vars: &serde_json::Map<String, Json>) -> Result<Json, TemplateError> {
        Ok(match self {
            TemplatedJson::Template(t) => Json::String(t.render(vars)?),
            TemplatedJson::Literal(v) => v.clone(),
            TemplatedJson::Array(items) => Json::Array(items.iter().map(|i| i.render(vars)).collect::<Result<_, _>>()?),
            TemplatedJson::Object(members) => {
                let mut out = serde_json::Map::with_capacity(members.len());
                for (k, v) in members {
                    let key = match k.render(vars)? {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(key, v.render(vars)?);
                }
                Json::Object(out)
            }
        })
    }
}

/// A document's `sensitive_headers`.
#[derive(Clone, Default)]
pub enum SensitiveHeaders {
    /// None (absent or `{}`).
    #[default]
    None,
    /// Given (supplied out of band, or written in the document), compiled.
    Given(TemplatedJson),
    /// A reference whose value was not supplied: a request fails, naming it.
    Missing {
        /// The reference key, `<component id>.sensitive_headers`.
        key: String,
    },
}

impl std::fmt::Debug for SensitiveHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SensitiveHeaders::None => f.write_str("None"),
            SensitiveHeaders::Given(_) => f.write_str("Given(<redacted>)"),
            SensitiveHeaders::Missing { key } => f.debug_struct("Missing").field("key", key).finish(),
        }
    }
}

/// An ApiNode's or RemoteTool's request, compiled.
#[derive(Debug)]
pub struct HttpCall {
    /// The ApiNode or RemoteTool component.
    pub comp: CompId,
    /// `ApiNode "name"`, for messages.
    pub label: String,
    /// `url`, compiled; its placeholders are URL-encoded when rendered (AGENTS.md 7.1).
    pub url: Arc<Template>,
    /// `url` as written (WayFlow's error messages quote it).
    pub url_source: String,
    /// Whether the written URL is `http:` (a rendered URL may be plain HTTP only then).
    pub http_allowed: bool,
    /// `http_method`, compiled.
    pub method: Arc<Template>,
    /// `http_method` as written.
    pub method_source: String,
    /// `data`, when it is not empty (WayFlow sends no body for `{}`, `""` or null).
    pub data: Option<TemplatedJson>,
    /// `query_params`, when not empty.
    pub query: Option<TemplatedJson>,
    /// `headers`, when not empty.
    pub headers: Option<TemplatedJson>,
    /// `sensitive_headers`.
    pub sensitive_headers: SensitiveHeaders,
    /// `url_allow_list`, when given.
    pub allow_list: Option<UrlAllowList>,
    /// `retry_policy`, when given (an object).
    pub retry_policy: Option<Json>,
}

/// An ApiNode.
#[derive(Debug)]
pub struct ApiNode {
    /// Its request.
    pub call: Arc<HttpCall>,
    /// Its outputs, under their internal titles.
    pub outputs: Vec<Property>,
}

pub(super) fn lower_node(lw: &mut Lowerer<'_, '_>, n: CompId) -> Option<Lowered> {
    match lw.comp(n).ty.name {
        "ApiNode" => {
            let call = lw.http_call(n)?;
            let out_map = lw.fields(n).mapping("output_mapping");
            let outputs = lw.io(n).outputs.iter().map(|p| p.retitled(&super::internal_name(&out_map, p.title()))).collect();
            Some(Lowered::Kind(NodeKind::Api(Box::new(ApiNode { call, outputs }))))
        }
        _ => Some(Lowered::NotRunnable),
    }
}

/// Lowers the request of ApiNode or RemoteTool `c` (see [`Lowerer::http_call`], which keeps
/// it); `None` when the document gets it wrong (reported).
pub(super) fn lower_call(lw: &mut Lowerer<'_, '_>, c: CompId) -> Option<HttpCall> {
    let comp = lw.comp(c);
    let f = lw.fields(c);
    let allowed = if comp.is("ApiNode") { lw.input_names(c) } else { lw.io(c).inputs.iter().map(|p| p.title().to_owned()).collect() };
    let mut ok = true;
    let url_source = f.str("url").unwrap_or_default().to_owned();
    let method_source = f.str("http_method").unwrap_or_default().to_owned();
    let url = lw.template(c, "url", &url_source);
    let method = lw.template(c, "http_method", &method_source);
    for (field, t) in [("url", &url), ("http_method", &method)] {
        if let Some(t) = t {
            ok &= lw.variables(c, field, t, &allowed);
        }
    }
    let mut json_field = |lw: &mut Lowerer<'_, '_>, field: &str, headers: bool| -> Option<TemplatedJson> {
        let value = f.json(field).filter(|v| !falsy(v))?;
        let pointer = format!("{}/{field}", comp.pointer);
        let compiled = templated(lw, c, field, &pointer, value, &allowed, headers, false);
        if compiled.is_none() {
            ok = false;
        }
        compiled
    };
    let data = json_field(lw, "data", false);
    let query = json_field(lw, "query_params", false);
    let headers = json_field(lw, "headers", true);
    let sensitive_headers = match comp.field("sensitive_headers") {
        Some(Value::Secret(SecretRef { key, value: None })) => SensitiveHeaders::Missing { key: key.clone() },
        Some(v @ Value::Secret(_)) => match object_value(Some(v)) {
            Some(object) if falsy(&object) => SensitiveHeaders::None,
            Some(object) => {
                let pointer = format!("{}/sensitive_headers", comp.pointer);
                match templated(lw, c, "sensitive_headers", &pointer, &object, &allowed, true, true) {
                    Some(t) => SensitiveHeaders::Given(t),
                    None => {
                        ok = false;
                        SensitiveHeaders::None
                    }
                }
            }
            None => {
                lw.error(
                    c,
                    Code::BadValue,
                    format!("{}/sensitive_headers", comp.pointer),
                    "the value of `sensitive_headers` is not a JSON object (the value is not shown: it is secret)".to_owned(),
                    "give an object of header names to values, e.g. --secret <component id>.sensitive_headers='{\"Authorization\": \"Bearer ...\"}'",
                );
                ok = false;
                SensitiveHeaders::None
            }
        },
        _ => SensitiveHeaders::None,
    };
    let allow_list = match f.json("url_allow_list") {
        Some(Json::Array(entries)) => {
            let mut parsed = Vec::new();
            for (i, entry) in entries.iter().enumerate() {
                let text = entry.as_str().unwrap_or_default();
                match AllowEntry::parse(text) {
                    Ok(e) => parsed.push(e),
                    Err(why) => {
                        lw.error(
                            c,
                            Code::BadValue,
                            format!("{}/url_allow_list/{i}", comp.pointer),
                            format!("the url_allow_list entry {text:?} cannot be used: {why}"),
                            "write each entry as a URL with a scheme and a host, and a path to allow only what is below it: \"https://api.example.com/v1\"",
                        );
                        ok = false;
                    }
                }
            }
            Some(UrlAllowList::new(parsed))
        }
        _ => None,
    };
    let retry_policy = f.json("retry_policy").filter(|v| v.is_object()).cloned();
    let (url, method) = (url?, method?);
    ok.then(|| HttpCall {
        comp: c,
        label: comp.label(),
        url,
        http_allowed: url_source.trim_start().get(..5).is_some_and(|s| s.eq_ignore_ascii_case("http:")),
        url_source,
        method,
        method_source,
        data,
        query,
        headers,
        sensitive_headers,
        allow_list,
        retry_policy,
    })
}

/// Whether WayFlow's converter drops the value (`data if data else None`).
fn falsy(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::Bool(b) => !b,
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::String(s) => s.is_empty(),
        Json::Array(a) => a.is_empty(),
        Json::Object(m) => m.is_empty(),
    }
}

/// Compiles every string of `value` (a field of `c` at `pointer`); `headers` requires an object
/// of string values (a header's value must be text); `secret` keeps the value out of messages.
#[allow(clippy::too_many_arguments, reason = "one call per field, each argument says where")]
fn templated(
    lw: &mut Lowerer<'_, '_>,
    c: CompId,
    field: &str,
    pointer: &str,
    value: &Json,
    allowed: &[String],
    headers: bool,
    secret: bool,
) -> Option<TemplatedJson> {
    if headers {
        let Json::Object(members) = value else {
            lw.error(
                c,
                Code::BadValue,
                pointer.to_owned(),
                format!("`{field}` must be an object of header names to values"),
                "write the headers as {\"Name\": \"value\"}",
            );
            return None;
        };
        if let Some((name, _)) = members.iter().find(|(_, v)| !v.is_string()) {
            lw.error(
                c,
                Code::BadValue,
                format!("{pointer}/{}", weft_spec::diagnostic::escape_token(name)),
                format!("the value of header {name:?} in `{field}` is not a string; an HTTP header's value is text"),
                "quote the value, e.g. \"42\"",
            );
            return None;
        }
    }
    compile(lw, c, field, pointer, value, allowed, secret, 0)
}

/// The deepest nesting compiled (the loader's depth caps keep documents far below it).
const MAX_DEPTH: usize = 200;

#[allow(clippy::too_many_arguments, reason = "recursion over the value, with where it is")]
fn compile(
    lw: &mut Lowerer<'_, '_>,
    c: CompId,
    field: &str,
    pointer: &str,
    value: &Json,
    allowed: &[String],
    secret: bool,
    depth: usize,
) -> Option<TemplatedJson> {
    if depth > MAX_DEPTH {
        lw.error(c, Code::BadValue, pointer.to_owned(), format!("`{field}` is nested too deeply"), "flatten the value");
        return None;
    }
    Some(match value {
        Json::String(s) => text(lw, c, field, pointer, s, allowed, secret)?,
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(compile(lw, c, field, &format!("{pointer}/{i}"), item, allowed, secret, depth + 1)?);
            }
            TemplatedJson::Array(out)
        }
        Json::Object(members) => {
            let mut out = Vec::with_capacity(members.len());
            for (k, v) in members {
                let at = format!("{pointer}/{}", weft_spec::diagnostic::escape_token(k));
                let key = text(lw, c, field, &at, k, allowed, secret)?;
                out.push((key, compile(lw, c, field, &at, v, allowed, secret, depth + 1)?));
            }
            TemplatedJson::Object(out)
        }
        other => TemplatedJson::Literal(other.clone()),
    })
}

/// One string: literal text when it has no template syntax, else a compiled template whose
/// variables must be inputs.
fn text(
    lw: &mut Lowerer<'_, '_>,
    c: CompId,
    field: &str,
    pointer: &str,
    s: &str,
    allowed: &[String],
    secret: bool,
) -> Option<TemplatedJson> {
    if !s.contains('{') && !s.ends_with('\n') {
        return Some(TemplatedJson::Literal(Json::String(s.to_owned())));
    }
    let template = match Template::new(s) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            let detail = match (&e, secret) {
                (TemplateError::Syntax { line, .. }, true) => format!(
                    "a template in `{field}` does not compile{} (the text is not shown: it is secret)",
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
                _ => format!("a template in `{field}` does not compile: {e}"),
            };
            lw.error(
                c,
                Code::BadValue,
                pointer.to_owned(),
                detail,
                "fix the Jinja syntax: every `{% if %}`/`{% for %}` needs its `{% endif %}`/`{% endfor %}`, every `{{` its `}}`",
            );
            return None;
        }
    };
    let unknown: Vec<String> = template.variables().filter(|v| !allowed.iter().any(|a| a == v)).map(|v| format!("`{v}`")).collect();
    if !unknown.is_empty() {
        let why = if field == "sensitive_headers" {
            " (pyagentspec does not infer inputs from `sensitive_headers`, so such a placeholder must also be used in another field or declared as an input)"
        } else {
            ""
        };
        lw.error(
            c,
            Code::BadValue,
            pointer.to_owned(),
            format!(
                "a template in `{field}` reads {}, which {} not an input, so rendering it fails{why}",
                unknown.join(", "),
                if unknown.len() > 1 { "are" } else { "is" }
            ),
            &if allowed.is_empty() {
                "the component has no inputs: use placeholders `{{ name }}` in url, http_method, data, query_params or headers so they become inputs".to_owned()
            } else {
                format!("the templates may read {}", allowed.join(", "))
            },
        );
        return None;
    }
    Some(TemplatedJson::Template(template))
}

pub(super) fn check(cx: &mut Cx<'_>, _inf: &mut Inferrer<'_>, c: CompId) {
    let comp = cx.spec.get(c);
    match comp.ty.name {
        "ApiNode"
        | "RemoteTool"
        | "SSETransport"
        | "StreamableHTTPTransport"
        | "SSEmTLSTransport"
        | "StreamableHTTPmTLSTransport"
        | "PluginSSETransport"
        | "PluginStreamableHTTPTransport"
        | "PluginSSEmTLSTransport"
        | "PluginStreamableHTTPmTLSTransport" => {
            if let (Some(Json::Object(h)), Some(Json::Object(s))) =
                (comp.json_field("headers"), object_value(comp.field("sensitive_headers")))
                && let Some(k) = h.keys().find(|k| s.contains_key(*k))
            {
                cx.report(
                    comp,
                    Code::ComponentRule,
                    format!("{}/sensitive_headers", comp.pointer),
                    format!("{}: header \"{k}\" is in both `headers` and `sensitive_headers`", comp.label()),
                    Some("keep each header in one of the two".into()),
                );
            }
        }
        _ => {}
    }
    if matches!(comp.ty.name, "ApiNode" | "RemoteTool")
        && let Some(url) = comp.str_field("url")
        && comp.json_field("url_allow_list").is_none_or(Json::is_null)
    {
        let names = destination_placeholders(url);
        if !names.is_empty() {
            cx.report(
                comp,
                Code::ComponentRule,
                format!("{}/url", comp.pointer),
                format!(
                    "{}: the url's destination (scheme, host or port) is templated ({}), which WayFlow refuses without a `url_allow_list`: \"Templated URL destinations require `url_allow_list`\"",
                    comp.label(),
                    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
                Some("write the scheme and host in the url and template only its path or query, or list the allowed URLs in `url_allow_list`".into()),
            );
        }
    }
}

/// The placeholders in the scheme, host or port of a URL template (WayFlow's
/// `_get_url_destination_placeholder_names`).
fn destination_placeholders(url: &str) -> Vec<String> {
    let (scheme, rest) = match url.find("://") {
        Some(at) => (&url[..at], &url[at + 3..]),
        None => ("", url),
    };
    let end = ['/', '?', '#'].iter().filter_map(|c| rest.find(*c)).min().unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut names = placeholders(scheme);
    for p in placeholders(hostport) {
        if !names.contains(&p) {
            names.push(p);
        }
    }
    names
}

pub(super) fn infer(inf: &mut Inferrer<'_>, c: CompId) -> Option<Inferred> {
    let comp = inf.spec().get(c);
    match comp.ty.name {
        "ApiNode" => Some(Inferred {
            inputs: Some(string_props(&http_placeholders(comp))),
            outputs: Some(vec![Property::new(json!({"title": "response"}))]),
            outputs_explicit_wins: true,
            branches: next(),
            ..Inferred::default()
        }),
        "RemoteTool" => Some(Inferred { inputs: Some(string_props(&http_placeholders(comp))), ..Inferred::default() }),
        _ => None,
    }
}

/// The placeholders of an HTTP request's URL, method, spec URI, body, query and headers.
fn http_placeholders(comp: &Component) -> Vec<String> {
    let f = Fields::of(comp);
    let mut out = Vec::new();
    for name in ["url", "http_method", "api_spec_uri"] {
        if f.has(name)
            && let Some(s) = f.str(name)
        {
            for p in placeholders(s) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    for name in ["data", "query_params", "headers"] {
        if f.has(name)
            && let Some(v) = f.json(name)
        {
            json_placeholders(v, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::destination_placeholders;

    #[test]
    fn destination_placeholders_are_those_before_the_path() {
        assert!(destination_placeholders("https://api.example.com/v1/{{city}}?u={{units}}").is_empty());
        assert_eq!(destination_placeholders("https://{{host}}/x"), ["host"]);
        assert_eq!(destination_placeholders("{{scheme}}://h:{{port}}/x"), ["scheme", "port"]);
        assert_eq!(destination_placeholders("https://{{user}}@h/x"), Vec::<String>::new());
    }
}
