//! Open Agent Spec data model for Weft: parse JSON/YAML documents, resolve references into a
//! [`Spec`], and export it back.
//!
//! This crate does no IO beyond parsing text it is given, and it never panics on input: every
//! problem becomes a [`Diagnostic`]. Checking the flow rules is `weft-flow`'s job.
//!
//! ```
//! use std::collections::HashMap;
//! use weft_spec::{Code, Format, LoadInput, Source, load};
//!
//! let doc = r#"{"component_type": "VllmConfig", "name": "llm", "model_id": "m",
//!               "url": "http://127.0.0.1:8000", "agentspec_version": "25.4.1"}"#;
//! let source = Source::new("llm.json", doc, Format::Json);
//! let secrets = HashMap::new();
//! let out = load(LoadInput { document: &source, registries: &[], secrets: &secrets, secret_fallback: None });
//! assert!(out.diagnostics.is_empty());
//! assert_eq!(out.spec.expect("loaded").root().ty.name, "VllmConfig");
//!
//! let broken = Source::new("x.json", r#"{"component_type": "LLMNode", "name": "x"}"#, Format::Json);
//! let out = load(LoadInput { document: &broken, registries: &[], secrets: &secrets, secret_fallback: None });
//! let d = out.diagnostics.iter().find(|d| d.code == Code::UnknownType).expect("unknown_type");
//! assert_eq!(d.pointer, "/component_type");
//! assert!(d.hint.as_deref().unwrap_or_default().contains("LlmNode"));
//! ```

pub mod catalog;
pub mod diagnostic;
pub mod llm;
pub mod load;
pub mod model;
pub mod plain;
pub mod source;
pub mod text;
pub mod version;
pub mod yaml;
mod yaml_pos;

pub use diagnostic::{Code, ComponentLabel, Diagnostic, Diagnostics, Severity, did_you_mean};
pub use llm::{ApiKey, LlmConfig};
pub use load::{LoadInput, LoadOutput, load};
pub use model::{CompId, Component, Origin, Property, SecretRef, Spec, Value};
pub use source::{Format, Source};
pub use version::Version;
