//! Diagnostics: what is wrong with a document, where, and how to fix it.
//!
//! The set of [`Code`]s is closed and stable: tools and tests match on it. Error codes are the
//! ones of the conformance corpus (`shared/agentspec/corpus/INDEX.md`); warning codes flag what
//! pyagentspec silently accepts but is almost surely a mistake.

pub use crate::text::did_you_mean;
use serde::Serialize;
use std::fmt;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is valid, but probably not what its author meant.
    Warning,
    /// The document is rejected.
    Error,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, $sev:ident; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code { $( $(#[$doc])* $variant, )* }

        impl Code {
            /// The code as it appears in JSON output (`"ref_missing"`, ...).
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $text, )* }
            }
            /// The severity this code has unless `--strict` raises warnings to errors.
            pub fn default_severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];
        }
    };
}

codes! {
    /// Not valid JSON/YAML, or the top level is not an object.
    Parse = "parse", Error;
    /// A `component_type` that names no known type.
    UnknownType = "unknown_type", Error;
    /// A required field is absent.
    MissingField = "missing_field", Error;
    /// A value of the wrong shape, outside its enum, or out of bounds.
    BadValue = "bad_value", Error;
    /// A component of the wrong kind in a field.
    WrongType = "wrong_type", Error;
    /// `agentspec_version` unknown or below a component's minimum.
    Version = "version", Error;
    /// A `$component_ref` defined nowhere.
    RefMissing = "ref_missing", Error;
    /// A key defined in two reference tables.
    RefDuplicate = "ref_duplicate", Error;
    /// A reference leading back to a component being loaded.
    RefCycle = "ref_cycle", Error;
    /// A reference resolving to a component of the wrong kind.
    RefType = "ref_type", Error;
    /// A property that is not a valid JSON Schema.
    Schema = "schema", Error;
    /// An empty, forbidden or duplicated property title.
    Title = "title", Error;
    /// A default incompatible with its schema, or a required default missing.
    Default = "default", Error;
    /// Given inputs/outputs differ from the inferred ones.
    IoMismatch = "io_mismatch", Error;
    /// StartNode/EndNode rules, edges to unknown nodes, loops with no exit.
    FlowStructure = "flow_structure", Error;
    /// A data edge naming an unknown input or output, or connecting incompatible types.
    DataEdge = "data_edge", Error;
    /// A `branches` list or a `from_branch` that does not match the node.
    Branches = "branches", Error;
    /// Duplicate outputs across parallel branches, or yielding nodes inside them.
    Parallel = "parallel", Error;
    /// Another component-specific rule.
    ComponentRule = "component_rule", Error;
    /// Accepted by pyagentspec but refused by WayFlow.
    RuntimeStructure = "runtime_structure", Error;
    /// A key the component type does not have (pyagentspec ignores it).
    UnknownKey = "unknown_key", Warning;
    /// A `$referenced_components` entry nothing refers to.
    UnusedRef = "unused_ref", Warning;
    /// A legacy version key or value (25.3.x, 25.4.0, `air_version`), or a development version
    /// between releases (26.1.1, 26.2.0), read as the nearest released version below it.
    LegacyVersion = "legacy_version", Warning;
    /// No `agentspec_version` at all.
    NoVersion = "no_version", Warning;
    /// A type Weft loads and exports but cannot run.
    NotRunnable = "not_runnable", Warning;
    /// A run cannot start: a ServerTool with no implementation bound, an LLM config no model serves.
    Unbound = "unbound", Error;
    /// A run's input is unknown, missing or of the wrong type.
    BadInput = "bad_input", Error;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The component a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ComponentLabel {
    /// Its `name`, when it has one.
    pub name: Option<String>,
    /// Its `id`, when it has one.
    pub id: Option<String>,
}

/// One finding about a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The stable code.
    pub code: Code,
    /// RFC 6901 pointer of the defect, relative to the document root (`""` is the root).
    pub pointer: String,
    /// 1-based line of the value at `pointer`, when the parser can give it.
    pub line: Option<usize>,
    /// 1-based column of the value at `pointer`, when the parser can give it.
    pub column: Option<usize>,
    /// The component concerned.
    pub component: Option<ComponentLabel>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// The file the pointer is in, when it is not the document itself (a `--refs` registry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.default_severity(),
            code,
            pointer: pointer.into(),
            line: None,
            column: None,
            component: None,
            message: message.into(),
            hint: None,
            file: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds an optional hint.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Names the component concerned.
    pub fn component(mut self, name: Option<&str>, id: Option<&str>) -> Self {
        self.component = Some(ComponentLabel { name: name.map(str::to_owned), id: id.map(str::to_owned) });
        self
    }

    /// Whether this is an error (after any `--strict` promotion).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A list of diagnostics, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{}[{}] {}: {}", sev_word(d.severity), d.code, display_pointer(&d.pointer), d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

fn sev_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The pointer as shown to people: the root, whose pointer is empty, is shown as `(root)`.
pub fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "(root)" } else { pointer }
}

/// Escapes one reference token of a JSON pointer (RFC 6901: `~` as `~0`, `/` as `~1`).
pub fn escape_token(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains(['~', '/']) {
        std::borrow::Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        std::borrow::Cow::Borrowed(token)
    }
}

/// `base` extended by one token.
pub fn join(base: &str, token: &str) -> String {
    let mut s = String::with_capacity(base.len() + token.len() + 1);
    s.push_str(base);
    s.push('/');
    s.push_str(&escape_token(token));
    s
}

/// `base` extended by a list index.
pub fn join_index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(join("", "a/b~c"), "/a~1b~0c");
        assert_eq!(join_index("/nodes", 3), "/nodes/3");
    }
}
