//! Open Agent Spec data model for Weft: parse JSON/YAML documents, resolve references into a
//! [`Spec`], and export it back.
//!
//! This crate does no IO beyond parsing text it is given, and it never panics on input: every
//! problem becomes a [`Diagnostic`]. Checking the flow rules is `weft-flow`'s job.

pub mod catalog;
pub mod diagnostic;
pub mod load;
pub mod model;
pub mod plain;
pub mod source;
pub mod version;
mod yaml_pos;

pub use diagnostic::{Code, ComponentLabel, Diagnostic, Diagnostics, Severity};
pub use load::{LoadInput, LoadOutput, load};
pub use model::{CompId, Component, Origin, Property, SecretRef, Spec, Value};
pub use source::{Format, Source};
pub use version::Version;
