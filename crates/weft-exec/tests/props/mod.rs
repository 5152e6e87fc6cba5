//! The pieces of the scheduler's property test (`tests/sched_props.rs`), none of which uses the
//! engine's code:
//!
//! - `flow`: the generated programs (a small AST of sequences, LLM calls, templates, input
//!   requests, branches, loops, parallel branches, map nodes and subflows), their generator and
//!   the Agent Spec document each is written as;
//! - `oracle`: what the model answers, how long it takes and when it fails, as functions of the
//!   prompt (shared by the model and the interpreter: it is the test's fixture, not the engine);
//! - `interp`: the independent sequential interpreter computing the expected outputs, prompts and
//!   questions;
//! - `model`: the `ChatModel` the engine calls, which counts calls in flight globally and per
//!   fan-out instance and asks for pauses.

pub mod flow;
pub mod interp;
pub mod model;
pub mod oracle;
