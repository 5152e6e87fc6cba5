//! HTTP: ApiNode, RemoteTool and the MCP transports. Weft checks and exports them; running them
//! comes with the network tools release.

use super::{Fields, next, object_value};
use crate::check::Cx;
use crate::infer::{Inferred, Inferrer, string_props};
use crate::template::{json_placeholders, placeholders};
use serde_json::{Value as Json, json};
use weft_spec::{Code, CompId, Component, Property};

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
