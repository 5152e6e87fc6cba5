//! The evaluator-optimizer loop, built in Rust: draft an article, evaluate it into a typed
//! `Evaluation`, improve it with the feedback and evaluate again, until the evaluation is good.
//! `examples/flows/evaluator_loop.json` is the same flow as a hand-written document.
//!
//! Runs offline with the simulated model, scripted by `examples/flows/replies_evaluator_twice.json`
//! so that the first evaluation asks for an improvement and the second is satisfied:
//!
//! ```text
//! cargo run -p weft-exec --example evaluator_loop               # run it
//! cargo run -p weft-exec --example evaluator_loop -- --document # print the Agent Spec document
//! ```

// An example reports to the terminal.
#![allow(clippy::print_stdout)]

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use weft_exec::{FlowExt, Run, RunErrorKind, RunOptions, Status};
use weft_flow::builder::{FlowBuilder, Input, LlmConfig, Output};
use weft_flow::typed_outputs;
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};

/// The evaluator's verdict: the LLM node "evaluate" has one output per field.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code, reason = "only printed, with Debug")]
struct Evaluation {
    /// Does the draft need improvement?
    needs_improvement: bool,
    /// Feedback for improvement
    feedback: String,
}

/// What the flow returns.
#[derive(Debug, Deserialize)]
struct Article {
    /// The latest draft.
    draft: String,
    /// The last evaluation's feedback.
    feedback: String,
}

/// At most this many evaluations, whatever the model says.
const MAX_ROUNDS: u64 = 5;

/// The flow: start → draft → evaluate → check ─improve→ improve → evaluate …; check ─done→ end.
fn evaluator_loop() -> FlowBuilder {
    let llm = LlmConfig::openai_compatible("local_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let mut b = FlowBuilder::new("evaluator_loop");
    let start = b.start(&[Input::string("topic").description("What the article is about")]);
    let draft = b.llm("draft", &llm, "Write a short article draft (two paragraphs) about {{topic}}.");
    let evaluate = b.llm_structured::<Evaluation>(
        "evaluate",
        &llm,
        "Evaluate this article draft. Say whether it needs improvement, and give feedback for improvement.\n\n{{draft}}",
    );
    // A boolean reaches the branching node's string input as JSON: `true` or `false`.
    let check = b.branching("check", &[("true", "improve"), ("false", "done")], "needs_improvement");
    let improve = b.llm(
        "improve",
        &llm,
        "Improve this article draft.\n\nDraft:\n{{draft}}\n\nFeedback:\n{{feedback}}\n\nAnswer with the improved draft only.",
    );
    let end = b.end("end", &[Output::string("draft"), Output::string("feedback")]);

    b.edge(start, draft);
    b.edge(draft, evaluate);
    b.edge(evaluate, check);
    b.edge_on(check, "improve", improve);
    b.edge_on(check, "done", end);
    b.edge_on(check, "default", end);
    b.edge(improve, evaluate);

    b.data(start, "topic", draft, "topic");
    // Both writers feed the same inputs: each input takes the latest value, so the evaluator
    // always sees the newest draft.
    for writer in [draft, improve] {
        b.data(writer, "generated_text", evaluate, "draft");
        b.data(writer, "generated_text", improve, "draft");
        b.data(writer, "generated_text", end, "draft");
    }
    b.data(evaluate, "needs_improvement", check, "needs_improvement");
    b.data(evaluate, "feedback", improve, "feedback");
    b.data(evaluate, "feedback", end, "feedback");
    b
}

/// The latest verdict of the evaluator, read from the run state (the outputs of node
/// "evaluate" in the top-level frame).
fn last_evaluation(run: &Run) -> Option<Evaluation> {
    let root = run.state().frames.values().find(|f| f.parent.is_none())?;
    let values = root.values.get("evaluator_loop.evaluate")?;
    let outputs: Map<String, Json> = values.iter().map(|(title, v)| (title.clone(), v.value.clone())).collect();
    typed_outputs(&outputs).ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = evaluator_loop();
    if std::env::args().any(|a| a == "--document") {
        print!("{}", builder.to_document_string());
        return Ok(());
    }
    let flow = builder.build()?;

    let script = Script::from_json(include_str!("flows/replies_evaluator_twice.json"), "examples/flows/replies_evaluator_twice.json")?;
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    // The cap, in code, as a step budget: start and draft, then evaluate, check and improve per
    // round (the last round's `improve` step is the end node instead).
    let options = RunOptions { max_steps: 2 + 3 * MAX_ROUNDS, ..RunOptions::simulated().with_model(Arc::new(model)) };

    let mut inputs = Map::new();
    inputs.insert("topic".into(), json!("evaluator-optimizer loops"));
    let mut run = flow.start_with(inputs, options)?;
    let status = run.execute().await;
    let rounds = run.state().llm_calls.get("evaluate").copied().unwrap_or(0);
    match status {
        Ok(Status::Finished { outputs, .. }) => {
            let article: Article = typed_outputs(&outputs)?;
            println!("rounds: {rounds}");
            println!("last evaluation: {:?}", last_evaluation(&run));
            println!("feedback: {}", article.feedback);
            println!("draft:\n{}", article.draft);
        }
        Ok(Status::InputRequired { request }) => println!("unexpected question: {request:?}"),
        Err(e) if e.kind == RunErrorKind::StepBudget => {
            println!("no good evaluation after {rounds} rounds (at most {MAX_ROUNDS}): stopped");
            println!("last evaluation: {:?}", last_evaluation(&run));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
