//! The document's declared version against the minimum its components need (FORMAT.md 4.2).

use super::Cx;
use serde_json::Value as Json;
use weft_spec::model::VersionSource;
use weft_spec::{Code, Component, Diagnostic, Spec, Value, Version};

/// The minimum version a component needs, and why.
pub fn floor(comp: &Component) -> (Version, String) {
    let mut best = (comp.ty.min_version, format!("{} needs {}", comp.ty.name, comp.ty.min_version));
    let mut raise = |v: Version, why: String| {
        if v > best.0 {
            best = (v, why);
        }
    };
    let set = |f: &str| match comp.field(f) {
        Some(Value::Json(Json::Null)) | None => false,
        Some(Value::Json(Json::Object(m))) => !m.is_empty(),
        Some(Value::List(l)) => !l.is_empty(),
        Some(_) => true,
    };
    // A retry policy counts as soon as it is given, even `{}` (all defaults).
    let given = |f: &str| !matches!(comp.field(f), Some(Value::Json(Json::Null)) | None);
    let truthy = |f: &str| comp.json_field(f).and_then(Json::as_bool) == Some(true);
    let name = comp.ty.name;
    if comp.ty.is_plugin() {
        return best;
    }
    let is_tool = matches!(name, "ServerTool" | "ClientTool" | "RemoteTool" | "BuiltinTool" | "MCPTool" | "MCPToolSpec");
    if is_tool && truthy("requires_confirmation") {
        raise(Version::V25_4_2, format!("`requires_confirmation` on {} needs 25.4.2", comp.label()));
    }
    if name == "MCPToolBox" && truthy("requires_confirmation") {
        raise(Version::V26_1_2, format!("`requires_confirmation` on {} needs 26.1.2", comp.label()));
    }
    if name == "Agent" {
        if set("toolboxes") || comp.json_field("human_in_the_loop").and_then(Json::as_bool) == Some(false) {
            raise(Version::V25_4_2, format!("toolboxes or human_in_the_loop=false on {} need 25.4.2", comp.label()));
        }
        if set("transforms") {
            raise(Version::V26_1_2, format!("`transforms` on {} need 26.1.2", comp.label()));
        }
    }
    if name == "LlmNode"
        && let Some(outs) = &comp.outputs
        && (outs.len() > 1 || outs.iter().any(|p| p.schema.get("type").and_then(Json::as_str) != Some("string")))
    {
        raise(Version::V25_4_2, format!("structured generation on {} needs 25.4.2", comp.label()));
    }
    if matches!(name, "OpenAiCompatibleConfig" | "VllmConfig" | "OllamaConfig" | "OpenAiConfig") {
        let api_type = comp.str_field("api_type").unwrap_or("chat_completions");
        if set("api_key") || api_type != "chat_completions" {
            raise(Version::V25_4_2, format!("`api_key` or api_type \"{api_type}\" on {} needs 25.4.2", comp.label()));
        }
        if ["key_file", "cert_file", "ca_file"].iter().any(|f| set(f)) {
            raise(Version::V26_1_2, format!("certificate files on {} need 26.1.2", comp.label()));
        }
    }
    if name == "OciGenAiConfig" {
        if set("conversation_store_id") || comp.str_field("api_type").is_some_and(|t| t != "oci") {
            raise(Version::V25_4_2, format!("conversation_store_id or api_type on {} need 25.4.2", comp.label()));
        }
        if comp.str_field("provider") == Some("XAI") {
            raise(Version::V26_1_2, format!("provider XAI on {} needs 26.1.2", comp.label()));
        }
    }
    if matches!(name, "ApiNode" | "RemoteTool") {
        let data_plain = comp.json_field("data").is_none_or(|d| d.is_object());
        if set("sensitive_headers") || !data_plain {
            raise(Version::V25_4_2, format!("sensitive_headers or non-object data on {} need 25.4.2", comp.label()));
        }
        if set("url_allow_list") || given("retry_policy") {
            raise(Version::V26_1_2, format!("url_allow_list or retry_policy on {} need 26.1.2", comp.label()));
        }
    }
    let remote_transport = matches!(name, "SSETransport" | "StreamableHTTPTransport" | "SSEmTLSTransport" | "StreamableHTTPmTLSTransport");
    if remote_transport {
        if set("sensitive_headers") {
            raise(Version::V25_4_2, format!("sensitive_headers on {} need 25.4.2", comp.label()));
        }
        if set("auth") || given("retry_policy") {
            raise(Version::V26_1_2, format!("auth or retry_policy on {} need 26.1.2", comp.label()));
        }
    }
    let llm_config = comp.ty.is_a(weft_spec::catalog::Kind::LlmConfig);
    if (llm_config || matches!(name, "A2AConnectionConfig" | "OciAgent")) && given("retry_policy") {
        raise(Version::V26_1_2, format!("`retry_policy` on {} needs 26.1.2", comp.label()));
    }
    if matches!(name, "MCPTool" | "MCPToolBox") && given("retry_policy") {
        raise(Version::V26_3_1, format!("`retry_policy` on {} needs 26.3.1", comp.label()));
    }
    best
}

pub(super) fn check(cx: &mut Cx<'_>) {
    let spec: &Spec = cx.spec;
    if spec.version_source == VersionSource::Missing {
        return;
    }
    let mut worst: Option<(Version, String, &Component)> = None;
    for comp in &spec.components {
        let (v, why) = floor(comp);
        if v > spec.version && worst.as_ref().is_none_or(|(w, _, _)| v > *w) {
            worst = Some((v, why, comp));
        }
    }
    if let Some((v, why, comp)) = worst {
        let key = if spec.version_source == VersionSource::AirVersion { "air_version" } else { "agentspec_version" };
        cx.diags.push(
            Diagnostic::new(
                Code::Version,
                format!("/{key}"),
                format!("the document declares {key} {} but its minimum is {v}: {why}", spec.version),
            )
            .hint(format!("declare \"{key}\": \"{v}\" or later"))
            .component(Some(&comp.name), Some(&comp.id)),
        );
    }
}
