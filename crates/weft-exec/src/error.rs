//! Errors of starting, running and resuming a flow. Each names the node (and where it sits) and
//! says what to do.

use serde::{Deserialize, Serialize};
use weft_llm::{LlmError, LlmErrorInfo};
use weft_spec::{Code, Diagnostic};
use weft_tools::ToolError;

/// Why a run could not start: the loader's diagnostics, every problem, not only the first
/// (an unsupported component at its pointer, an unbound server tool, an LLM config no model
/// serves, a missing or mistyped input).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .diagnostics.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("\n"))]
pub struct StartError {
    /// One diagnostic per problem: its code, pointer (into the flow document, empty for the
    /// run's inputs), message and hint.
    pub diagnostics: Vec<Diagnostic>,
}

impl StartError {
    /// The problems as lines of text.
    pub fn problems(&self) -> Vec<&str> {
        self.diagnostics.iter().map(|d| d.message.as_str()).collect()
    }

    /// A start error of problems with the run's inputs (code `bad_input`, no pointer: they are
    /// not in the document).
    pub(crate) fn inputs(lines: Vec<String>) -> StartError {
        StartError { diagnostics: lines.into_iter().map(|line| Diagnostic::new(Code::BadInput, "", line)).collect() }
    }
}

/// The pointer a refusal line names (`... at /nodes/3: ...`), or the root (`""`).
pub(crate) fn pointer_of(line: &str) -> String {
    let Some(i) = line.find(" at /") else { return String::new() };
    let tail = &line[i + 4..];
    let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
    let pointer = tail[..end].trim_end_matches([':', '.', ',', ';']);
    if pointer == "/" { String::new() } else { pointer.to_owned() }
}

/// The node an error happened at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    /// The frame it ran in: `flow`, `flow/subflow_node`, `flow/map[3]`.
    pub path: String,
    /// The node's component id.
    pub id: String,
    /// The node's name.
    pub name: String,
}

/// Why a run failed.
#[derive(Debug, Clone)]
pub struct RunError {
    /// What happened, where, and what to do.
    pub message: String,
    /// The failing node, when a node failed.
    pub node: Option<NodeRef>,
    /// The kind, for callers that react to some failures.
    pub kind: RunErrorKind,
    /// When an LLM call failed ([`RunErrorKind::Llm`]): the model's error as data, its kind
    /// (rate limited, authentication, context too long...), HTTP status, provider error type
    /// and code and request id. Also the error's [`source`](std::error::Error::source).
    pub llm: Option<LlmError>,
    /// When a tool failed ([`RunErrorKind::Tool`]): the tool's error (also the source).
    pub tool: Option<ToolError>,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.llm, &self.tool) {
            (Some(e), _) => Some(e),
            (None, Some(e)) => Some(e),
            (None, None) => None,
        }
    }
}

/// What kind of failure stopped a run (`snake_case` in JSON: `llm`, `step_budget`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunErrorKind {
    /// An LLM call failed.
    Llm,
    /// An answer never fit the requested schema.
    StructuredOutput,
    /// A tool failed.
    Tool,
    /// A template could not be rendered.
    Template,
    /// A node had no value for an input.
    MissingInput,
    /// The step budget ran out (a loop that does not exit).
    StepBudget,
    /// A node took longer than the node timeout.
    Timeout,
    /// A jq query of the document (an output parser, `unpack_input`) was stopped: it went over its
    /// step or memory budget, or its node's deadline passed, or the run was cancelled.
    Query,
    /// The run was cancelled ([`crate::Run::cancel`], or the cancel flag of its options); the run
    /// did not fail and its state can be resumed.
    Cancelled,
    /// `execute()` was called on a run that already finished or failed.
    Over,
    /// The run's inputs do not fit the flow, or a batch line is not inputs: nothing ran.
    BadInput,
    /// Anything else (also how a kind written by a newer weft reads).
    #[serde(other)]
    Other,
}

impl RunErrorKind {
    /// The kind as its JSON name: `llm`, `structured_output`...
    pub fn as_str(self) -> &'static str {
        match self {
            RunErrorKind::Llm => "llm",
            RunErrorKind::StructuredOutput => "structured_output",
            RunErrorKind::Tool => "tool",
            RunErrorKind::Template => "template",
            RunErrorKind::MissingInput => "missing_input",
            RunErrorKind::StepBudget => "step_budget",
            RunErrorKind::Timeout => "timeout",
            RunErrorKind::Query => "query",
            RunErrorKind::Cancelled => "cancelled",
            RunErrorKind::Over => "over",
            RunErrorKind::BadInput => "bad_input",
            RunErrorKind::Other => "other",
        }
    }
}

/// A run error as plain data: what a failed run's state keeps, `run_failed` events carry and a
/// batch's error lines print.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorData {
    /// The kind.
    pub kind: RunErrorKind,
    /// The failing node, if a node failed.
    pub node: Option<NodeRef>,
    /// The message.
    pub message: String,
    /// The LLM error's data, when an LLM call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmErrorInfo>,
}

impl ErrorData {
    /// Data of an error of `kind` that did not come from a node (a batch line that is not
    /// inputs...).
    pub fn new(kind: RunErrorKind, message: impl Into<String>) -> ErrorData {
        ErrorData { kind, node: None, message: message.into(), llm: None }
    }
}

impl From<&RunError> for ErrorData {
    fn from(e: &RunError) -> ErrorData {
        ErrorData { kind: e.kind, node: e.node.clone(), message: e.message.clone(), llm: e.llm.as_ref().map(|l| l.info().clone()) }
    }
}

impl From<ErrorData> for RunError {
    fn from(d: ErrorData) -> RunError {
        RunError { message: d.message, node: d.node, kind: d.kind, llm: d.llm.map(LlmError::from), tool: None }
    }
}

impl RunError {
    pub(crate) fn new(kind: RunErrorKind, message: impl Into<String>) -> RunError {
        RunError { message: message.into(), node: None, kind, llm: None, tool: None }
    }

    /// The same error, at `node` (its frame path filled in where the error is located).
    pub(crate) fn at(mut self, id: &str, name: &str) -> RunError {
        self.node = Some(NodeRef { path: String::new(), id: id.to_owned(), name: name.to_owned() });
        self
    }

    /// The same error, carrying the LLM error that caused it.
    pub(crate) fn with_llm(mut self, llm: LlmError) -> RunError {
        self.llm = Some(llm);
        self
    }

    /// The same error, carrying the tool error that caused it.
    pub(crate) fn with_tool(mut self, tool: ToolError) -> RunError {
        self.tool = Some(tool);
        self
    }
}

/// Why an answer could not be submitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The run does not wait for input.
    #[error("the run is not waiting for input")]
    NotWaiting,
    /// The answer does not fit the request.
    #[error("{0}")]
    Invalid(String),
}

/// Why a stored run could not be resumed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResumeError {
    /// The flow changed since the state was written.
    #[error(
        "the run state belongs to another version of the flow (state hash {state}, flow hash {flow}): the flow file was edited after the run started; restore the original flow or start a new run"
    )]
    FlowChanged {
        /// The hash in the state.
        state: String,
        /// The flow's hash.
        flow: String,
    },
    /// The state was written in a format this weft does not read (a newer weft's).
    #[error(
        "the run state has format {found}, this weft reads formats up to {expected}; resume it with the weft that wrote it (or a newer one)"
    )]
    Format {
        /// The format found.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
    /// The state is not one the engine could have written for this flow: a frame, parent,
    /// position, pending request, counter or value is missing, dangling or out of range (the
    /// file was edited or corrupted). Nothing ran; restore the file or start a new run.
    #[error(
        "the run state is damaged at {pointer}: {problem}. The state was edited or corrupted after weft wrote it; restore the file weft wrote, or start a new run"
    )]
    Damaged {
        /// Where, as a JSON pointer into the run state (`/frames/3/parent`).
        pointer: String,
        /// What is wrong there.
        problem: String,
    },
}
