//! An LLM config as a run needs it, typed: the values the model resolver reads, taken from the
//! component once by the lowering (`weft_flow::node::llm`).

use crate::model::SecretRef;
use serde_json::Value as Json;

/// An LLM config component (OpenAiConfig, OpenAiCompatibleConfig, VllmConfig, OllamaConfig,
/// LlmConfig, ...): where its calls go, which model, which key, how to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// The `component_type`.
    pub type_name: &'static str,
    /// The component's id.
    pub id: String,
    /// The component's name.
    pub name: String,
    /// The component's JSON pointer.
    pub pointer: String,
    /// `url`, trimmed; `None` when absent or empty.
    pub url: Option<String>,
    /// `model_id`, trimmed; `None` when absent or empty.
    pub model_id: Option<String>,
    /// `api_type`, as written.
    pub api_type: Option<String>,
    /// `api_provider`, else `provider` (generic LlmConfig), trimmed; `None` when absent or empty.
    pub provider: Option<String>,
    /// `api_key`.
    pub api_key: ApiKey,
    /// `retry_policy`, when it is an object.
    pub retry_policy: Option<Json>,
}

/// How a config gives its API key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiKey {
    /// Not at all.
    #[default]
    Absent,
    /// As a sensitive value supplied out of band (or in clear, resolved by the loader).
    Secret(SecretRef),
    /// Written in the document.
    Written(String),
}

impl LlmConfig {
    /// `<type> "<name>"`, as diagnostics name components.
    pub fn label(&self) -> String {
        format!("{} \"{}\"", self.type_name, self.name)
    }
}
