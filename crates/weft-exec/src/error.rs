//! Errors of starting, running and resuming a flow. Each names the node (and where it sits) and
//! says what to do.

use weft_llm::LlmError;

/// Why a run could not start. Every problem is listed, not only the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct StartError {
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Why a run failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// What happened, where, and what to do.
    pub message: String,
    /// The failing node's name, when a node failed.
    pub node: Option<String>,
    /// The kind, for callers that react to some failures.
    pub kind: RunErrorKind,
    /// When an LLM call failed ([`RunErrorKind::Llm`]): the model's error as data, its kind
    /// (rate limited, authentication, context too long...), HTTP status, provider error type
    /// and code and request id.
    pub llm: Option<LlmError>,
}

/// What kind of failure stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The run was cancelled through [`crate::RunOptions::cancel`] while the engine was evaluating;
    /// the run did not fail and its state can be resumed.
    Cancelled,
    /// `execute()` was called on a run that already finished or failed.
    Over,
    /// Anything else.
    Other,
}

impl RunError {
    pub(crate) fn new(kind: RunErrorKind, node: Option<&str>, message: impl Into<String>) -> RunError {
        RunError { message: message.into(), node: node.map(str::to_owned), kind, llm: None }
    }

    /// The same error, carrying the LLM error that caused it.
    pub(crate) fn with_llm(mut self, llm: LlmError) -> RunError {
        self.llm = Some(llm);
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
    /// The state file was written by another format.
    #[error("the run state has format {found}, this weft reads format {expected}; finish the run with the weft that started it")]
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
