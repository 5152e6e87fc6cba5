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
    /// The exception class WayFlow raises for this failure when the kind alone does not say it:
    /// a template's Jinja class (`UndefinedError`...), a datastore's (`DatastoreEntityError`...),
    /// an ApiNode's request's (`RuntimeError`, `ValueError`...), for catch nodes.
    pub(crate) exception_class: Option<&'static str>,
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
    /// An HTTP request (an ApiNode's) was refused, got no answer, or an answer that fails the
    /// node (a non-2xx status, a body its outputs cannot be read from).
    Http,
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
    /// A value did not fit what a node does with it (writing a string into a list variable,
    /// reducing items that are not numbers, an empty reduction without a default).
    Value,
    /// The run was cancelled ([`crate::Run::cancel`], or the cancel flag of its options); the run
    /// did not fail and its state can be resumed.
    Cancelled,
    /// `execute()` was called on a run that already finished or failed.
    Over,
    /// The run's inputs do not fit the flow, or a batch line is not inputs: nothing ran.
    BadInput,
    /// A datastore operation failed: an entity or filter that does not fit the collection's
    /// entity, a collection the datastore does not have, no entity where one was expected.
    Datastore,
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
            RunErrorKind::Http => "http",
            RunErrorKind::Template => "template",
            RunErrorKind::MissingInput => "missing_input",
            RunErrorKind::StepBudget => "step_budget",
            RunErrorKind::Timeout => "timeout",
            RunErrorKind::Query => "query",
            RunErrorKind::Value => "value",
            RunErrorKind::Cancelled => "cancelled",
            RunErrorKind::Over => "over",
            RunErrorKind::BadInput => "bad_input",
            RunErrorKind::Datastore => "datastore",
            RunErrorKind::Other => "other",
        }
    }
}

/// The exception name a PluginCatchExceptionNode matches an error by (FORMAT.md 11.1: the
/// class name WayFlow raises for the same situation), and whether a catch node may catch the
/// error at all. Never a cancellation, the run's step budget, or a bug in weft.
///
/// | kind | exception name |
/// |---|---|
/// | `llm` | `Exception` (WayFlow raises a bare `Exception` when a call fails for good) |
/// | `structured_output` | `StructuredOutputValidationError` |
/// | `tool` | the class the tool reported as the last line of its stderr in Python's form (`ValueError: ...`); `TimeoutError` for a tool timeout; else `Exception` |
/// | `template` | Jinja's class: `UndefinedError` for a missing variable or member, `TemplateSyntaxError`, else `TemplateError` |
/// | `missing_input`, `value`, `query` | `ValueError` |
/// | `datastore` | the class WayFlow's datastore raises: `DatastoreEntityError` (an entity or filter that does not fit), `DatastoreKeyError` (an unknown collection), `RuntimeError` (no entity to unpack), `TypeError`, `ValueError`, `KeyError` |
/// | `timeout` | `TimeoutError` |
/// | `http` | `RuntimeError` (a non-2xx answer), `ValueError` (a URL refused before any request), `JSONDecodeError` (a body that is not JSON), Jinja's class (a template), `ConnectError`, `ReadTimeout`, `ReadError` (no answer) |
/// | `step_budget`, `cancelled`, `over`, `bad_input`, `other` | not caught |
impl RunError {
    /// Whether a catch node may catch this error.
    pub fn catchable(&self) -> bool {
        match self.kind {
            RunErrorKind::Llm
            | RunErrorKind::StructuredOutput
            | RunErrorKind::Tool
            | RunErrorKind::Http
            | RunErrorKind::Template
            | RunErrorKind::MissingInput
            | RunErrorKind::Timeout
            | RunErrorKind::Query
            | RunErrorKind::Value
            | RunErrorKind::Datastore => true,
            RunErrorKind::StepBudget | RunErrorKind::Cancelled | RunErrorKind::Over | RunErrorKind::BadInput | RunErrorKind::Other => false,
        }
    }

    /// The exception's class name and message (Python's `str(e)`), as a PluginCatchExceptionNode
    /// sees them (see the table above).
    pub fn exception(&self) -> (String, String) {
        let name = match self.kind {
            RunErrorKind::Llm => "Exception",
            RunErrorKind::StructuredOutput => "StructuredOutputValidationError",
            RunErrorKind::Tool => match &self.tool {
                Some(ToolError::Exited { said, .. }) => {
                    if let Some((class, message)) = reported_exception(said) {
                        return (class.to_owned(), message.to_owned());
                    }
                    "Exception"
                }
                Some(ToolError::Timeout { .. }) => "TimeoutError",
                _ => "Exception",
            },
            RunErrorKind::Template => self.exception_class.unwrap_or("TemplateError"),
            RunErrorKind::Http => self.exception_class.unwrap_or("RuntimeError"),
            RunErrorKind::MissingInput | RunErrorKind::Value | RunErrorKind::Query => "ValueError",
            RunErrorKind::Timeout => "TimeoutError",
            RunErrorKind::Datastore => self.exception_class.unwrap_or("DatastoreError"),
            RunErrorKind::StepBudget | RunErrorKind::Cancelled | RunErrorKind::Over | RunErrorKind::BadInput | RunErrorKind::Other => {
                "Exception"
            }
        };
        (name.to_owned(), self.message.clone())
    }
}

/// The exception a tool reported: the last line of its stderr, when it reads as Python prints an
/// uncaught exception (`ValueError: bad input`, `requests.exceptions.HTTPError: 404`, or a bare
/// `KeyboardInterrupt`): the class name without its module, and the message.
pub(crate) fn reported_exception(said: &str) -> Option<(&str, &str)> {
    let last = said.lines().rev().find(|l| !l.trim().is_empty())?.trim_end();
    let (path, message) = match last.split_once(": ") {
        Some((path, message)) => (path, message),
        None => (last.strip_suffix(':').unwrap_or(last), ""),
    };
    let class = path.rsplit('.').next()?;
    let dotted_ok = path.split('.').all(is_identifier);
    let starts_upper = class.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    (dotted_ok && starts_upper).then_some((class, message))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
        RunError { message: d.message, node: d.node, kind: d.kind, llm: d.llm.map(LlmError::from), tool: None, exception_class: None }
    }
}

impl RunError {
    pub(crate) fn new(kind: RunErrorKind, message: impl Into<String>) -> RunError {
        RunError { message: message.into(), node: None, kind, llm: None, tool: None, exception_class: None }
    }

    /// The same error, raised as WayFlow's exception `class` (what a catch node matches).
    pub(crate) fn with_exception(mut self, class: &'static str) -> RunError {
        self.exception_class = Some(class);
        self
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

    /// A template error: what rendering `what` of `node` failed with.
    pub(crate) fn template(node: &crate::plan::NodePlan, what: &str, e: &weft_prompt::TemplateError) -> RunError {
        let mut error = crate::sched::node_error(RunErrorKind::Template, node, &format!("cannot render {what}: {e}"));
        error.exception_class = Some(e.wayflow_exception_name());
        error
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_exception_is_read_from_the_last_line_python_prints() {
        let traceback =
            "Traceback (most recent call last):\n  File \"t.py\", line 3, in <module>\n    raise KeyError('id')\nKeyError: 'id'\n";
        assert_eq!(reported_exception(traceback), Some(("KeyError", "'id'")));
        assert_eq!(reported_exception("requests.exceptions.HTTPError: 404 Client Error"), Some(("HTTPError", "404 Client Error")));
        assert_eq!(reported_exception("KeyboardInterrupt"), Some(("KeyboardInterrupt", "")));
        assert_eq!(reported_exception("ValueError: a: b"), Some(("ValueError", "a: b")), "the message keeps its own colons");
        // Not an exception line: the tool reported no class.
        assert_eq!(reported_exception("exited with status 3"), None);
        assert_eq!(reported_exception("error: file not found"), None, "a class name starts with a capital");
        assert_eq!(reported_exception("Could not connect: timeout"), None, "a class name has no spaces");
        assert_eq!(reported_exception(""), None);
    }

    #[test]
    fn errors_map_to_exception_names_and_only_real_failures_are_catchable() {
        let tool = |t: ToolError| RunError::new(RunErrorKind::Tool, "tool failed").with_tool(t);
        let exited = tool(ToolError::Exited { message: "m".into(), said: "Traceback...\nValueError: bad".into() });
        assert_eq!(exited.exception(), ("ValueError".to_owned(), "bad".to_owned()));
        let timeout = tool(ToolError::Timeout { after: std::time::Duration::from_secs(1) });
        assert_eq!(timeout.exception().0, "TimeoutError");
        assert_eq!(tool(ToolError::Failed { message: "no".into() }).exception(), ("Exception".to_owned(), "tool failed".to_owned()));
        assert_eq!(RunError::new(RunErrorKind::Llm, "x").exception().0, "Exception");
        assert_eq!(RunError::new(RunErrorKind::MissingInput, "x").exception().0, "ValueError");
        assert_eq!(RunError::new(RunErrorKind::Timeout, "x").exception().0, "TimeoutError");
        assert_eq!(RunError::new(RunErrorKind::Template, "x").exception().0, "TemplateError");
        for kind in [RunErrorKind::StepBudget, RunErrorKind::Cancelled, RunErrorKind::Over, RunErrorKind::BadInput, RunErrorKind::Other] {
            assert!(!RunError::new(kind, "x").catchable(), "{kind:?}");
        }
        assert!(exited.catchable());
    }
}
