//! The component catalogue: every `component_type` Weft knows, with its fields.
//!
//! The catalogue is data, not code: one [`TypeSpec`] per type, listing the abstract kinds the
//! type satisfies (which fields it may fill), whether it has inputs/outputs/branches, its
//! minimum `agentspec_version`, and its own fields in the order the reference exporters write
//! them. The loader, the checks and the exporter all read this one table, so adding a type is
//! adding a row. The rows in `types.rs` were generated from pyagentspec 26.3.1 and wayflowcore
//! 26.3.1 class definitions and then reviewed by hand.

mod types;

use crate::version::Version;

pub use types::TYPES;

/// An abstract base a concrete type satisfies; a field typed with a kind accepts any type of
/// that kind (FORMAT.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Any component at all.
    Component,
    /// A node of a flow.
    Node,
    /// A flow (`Flow`, `ExtendedFlow`).
    Flow,
    /// Anything an AgentNode can run: agents, flows, remote agents, swarms.
    Agentic,
    /// An `Agent` or `ExtendedAgent`.
    Agent,
    /// An LLM configuration.
    LlmConfig,
    /// A tool.
    Tool,
    /// A toolbox (`MCPToolBox`, ...).
    ToolBox,
    /// A server tool (context providers need one).
    ServerTool,
    /// An MCP tool specification.
    McpToolSpec,
    /// A client transport for MCP.
    ClientTransport,
    /// A remote (HTTP) transport.
    RemoteTransport,
    /// An authentication config for a transport.
    AuthConfig,
    /// An OAuth client config.
    OAuthClientConfig,
    /// An OCI client config.
    OciClientConfig,
    /// A Gemini authentication config.
    GeminiAuthConfig,
    /// A message transform.
    MessageTransform,
    /// A datastore.
    Datastore,
    /// An Oracle database connection config.
    OracleConnectionConfig,
    /// A PostgreSQL connection config.
    PostgresConnectionConfig,
    /// A control-flow edge.
    ControlFlowEdge,
    /// A data-flow edge.
    DataFlowEdge,
    /// An A2A connection config.
    A2AConnectionConfig,
    /// Agent specialization parameters.
    SpecializationParameters,
    /// A WayFlow prompt template object.
    PromptTemplate,
    /// A WayFlow output parser.
    OutputParser,
    /// A WayFlow context provider.
    ContextProvider,
    /// A WayFlow embedding config.
    EmbeddingConfig,
    /// A WayFlow search config or retriever config.
    SearchConfig,
}

/// Which of `inputs`, `outputs`, `branches` a type carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// A plain component.
    None,
    /// A component with `inputs` and `outputs` (flows, agents, tools, ...).
    InputsOutputs,
    /// A node: `inputs`, `outputs` and `branches`.
    Node,
}

/// The shape a field's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ty {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A number (integer or float).
    Num,
    /// Any JSON value, kept verbatim.
    Any,
    /// A JSON object, kept verbatim.
    Object,
    /// An object whose values are strings.
    StrMap,
    /// A list of strings.
    StrList,
    /// A string or a list of strings.
    StrOrList,
    /// One of the listed strings.
    Enum(&'static [&'static str]),
    /// A component of the given kind.
    Comp(Kind),
    /// A list of components of the given kind.
    CompList(Kind),
    /// A component, or a list of components, of the given kind.
    CompOrList(Kind),
    /// An object whose values are components of the given kind.
    CompMap(Kind),
    /// A list of `[caller, recipient]` pairs of components of the given kind.
    Pairs(Kind),
    /// A list whose items are strings or components of the given kind (MCP `tool_filter`).
    StrOrCompList(Kind),
    /// A list of properties (JSON Schemas).
    Props,
    /// One property (JSON Schema).
    Prop,
    /// An object mapping names to properties (datastore schemas).
    PropMap,
    /// A `RetryPolicy` plain object.
    RetryPolicy,
    /// An `LlmGenerationConfig` plain object.
    GenConfig,
    /// A list of WayFlow prompt messages.
    Messages,
}

/// A field's value when the document omits it, as the reference exporter writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// Required: no default, the field must be present.
    Required,
    /// The default is JSON `null`.
    Null,
    /// The default is this JSON literal.
    Json(&'static str),
}

/// One field of a component type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The JSON key.
    pub name: &'static str,
    /// The shape of its value.
    pub ty: Ty,
    /// Its default, or [`Default::Required`].
    pub default: Default,
    /// Whether `null` is accepted.
    pub nullable: bool,
    /// The first `agentspec_version` whose exporter writes this field; older documents omit it.
    pub since: Option<Version>,
    /// Whether the exporter redacts the value to a `<id>.<field>` reference (FORMAT.md 3.5).
    pub sensitive: bool,
}

/// How much Weft knows about a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Fields are described: checked on load and written in order on export.
    Described,
    /// FORMAT.md names the type without describing it: its fields are preserved verbatim and
    /// a `not_runnable` warning says Weft cannot run it.
    Generic,
}

/// A concrete `component_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSpec {
    /// The exact, case-sensitive `component_type` value.
    pub name: &'static str,
    /// `(component_plugin_name, component_plugin_version)` for WayFlow plugin types.
    pub plugin: Option<(&'static str, &'static str)>,
    /// The abstract kinds this type satisfies.
    pub kinds: &'static [Kind],
    /// Which I/O fields the type has.
    pub io: Io,
    /// The type's own floor for `agentspec_version` (FORMAT.md 4.2).
    pub min_version: Version,
    /// Own fields, in the order the reference exporter writes them.
    pub fields: &'static [Field],
    /// Whether the fields are described.
    pub support: Support,
}

impl TypeSpec {
    /// Whether a component of this type may fill a slot of `kind`.
    pub fn is_a(&self, kind: Kind) -> bool {
        kind == Kind::Component || self.kinds.contains(&kind)
    }

    /// The field named `name`, if the type declares it.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether this is a WayFlow plugin type.
    pub fn is_plugin(&self) -> bool {
        self.plugin.is_some()
    }
}

/// Looks a `component_type` up, case-sensitively.
pub fn lookup(name: &str) -> Option<&'static TypeSpec> {
    TYPES.iter().find(|t| t.name == name)
}

/// All type names, for did-you-mean suggestions.
pub fn names() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|t| t.name)
}

/// Builds a field; the `const fn` helpers below keep the table in `types.rs` short.
pub const fn field(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, default: Default::Required, nullable: false, since: None, sensitive: false }
}

impl Field {
    /// Optional with a `null` default (and `null` accepted).
    pub const fn opt(mut self) -> Self {
        self.default = Default::Null;
        self.nullable = true;
        self
    }
    /// Optional with the given JSON default.
    pub const fn def(mut self, json: &'static str) -> Self {
        self.default = Default::Json(json);
        self
    }
    /// Accepts `null` as a value.
    pub const fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    /// Written only from this version on.
    pub const fn since(mut self, v: Version) -> Self {
        self.since = Some(v);
        self
    }
    /// Sensitive (redacted on export).
    pub const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}
