//! Voting, built in Rust: the same evaluator runs three times in parallel (a `ParallelMapNode`
//! over the voter indices 0, 1 and 2, each going into its voter's prompt), each vote a typed
//! object, collected in order; an aggregator LLM node turns the votes into the verdict.
//! `examples/flows/voting.json` is this flow's document (`-- --document` prints it).
//!
//! Runs offline with the simulated model; `examples/flows/replies_voting.json` scripts the
//! votes (two against, one for), the verdict is simulated.
//!
//! ```text
//! cargo run -p weft-exec --example voting               # run it
//! cargo run -p weft-exec --example voting -- --document # print the Agent Spec document
//! ```

// An example reports to the terminal.
#![allow(clippy::print_stdout)]

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, json};
use std::sync::Arc;
use weft_exec::{FlowExt, RunOptions, Status};
use weft_flow::builder::{FlowBuilder, Input, LlmConfig, Output, Property, Reducer};
use weft_flow::typed_outputs;
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};

/// One evaluator's vote: the voter's LLM node has one output, `vote`, of this type.
#[derive(Debug, Deserialize, JsonSchema)]
struct Vote {
    /// Why the text is or is not appropriate
    explanation: String,
    /// Whether the text is appropriate for a general audience
    is_appropriate: bool,
}

/// The aggregator's answer: one output per field.
#[derive(Debug, Deserialize, JsonSchema)]
struct Verdict {
    /// Whether the text is appropriate for a general audience, all votes considered
    is_appropriate: bool,
    /// A summary of the evaluations
    summary: String,
}

/// What the flow returns.
#[derive(Debug, Deserialize)]
struct Outcome {
    /// The votes, in voter order.
    votes: Vec<Vote>,
    #[serde(flatten)]
    verdict: Verdict,
}

/// One voter: evaluates `text` as evaluator number `voter`.
fn voter(llm: &LlmConfig) -> FlowBuilder {
    let mut b = FlowBuilder::new("voter");
    let start = b.start(&[Input::integer("voter"), Input::string("text")]);
    let vote = b.llm_with_outputs(
        "vote",
        llm,
        "You are evaluator number {{voter}} of a panel of three, and an expert evaluator. \
         Evaluate if the following text is appropriate for a general audience.\n\nText: {{text}}",
        &[Property::of::<Vote>("vote")],
    );
    let end = b.end("end", &[Property::of::<Vote>("vote")]);
    b.edge(start, vote);
    b.edge(vote, end);
    b.data(start, "voter", vote, "voter");
    b.data(start, "text", vote, "text");
    b.data(vote, "vote", end, "vote");
    b
}

/// The flow: start → evaluate (three `voter`s in parallel) → aggregate → end.
fn voting() -> FlowBuilder {
    let llm = LlmConfig::openai_compatible("local_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let mut b = FlowBuilder::new("voting");
    b.description("Voting: three evaluators in parallel, then an aggregator");
    let start = b.start(&[
        Input::string("text").description("The text to evaluate"),
        Input::array("voters", json!({"type": "integer"})).description("One index per evaluator").with_default(json!([0, 1, 2])),
    ]);
    // `voters` is a list of `voter`s: each index gets its own run; `text` goes to every run.
    let evaluate = b.parallel_map("evaluate", &voter(&llm), &[("vote", Reducer::Append)]);
    let aggregate = b.llm_structured::<Verdict>(
        "aggregate",
        &llm,
        "You are an expert evaluator. Provided with a list of evaluations of a text, summarize them and provide a final evaluation.\n\n\
         Text: {{text}}\n\nEvaluations:\n{{collected_vote}}",
    );
    let mut outputs = vec![Output::array("votes", Property::of::<Vote>("vote").to_json()).description("The votes, in voter order")];
    outputs.extend(Output::fields_of::<Verdict>().unwrap_or_default());
    let end = b.end("end", &outputs);

    b.edge(start, evaluate);
    b.edge(evaluate, aggregate);
    b.edge(aggregate, end);

    b.data(start, "voters", evaluate, "iterated_voter");
    b.data(start, "text", evaluate, "iterated_text");
    b.data(start, "text", aggregate, "text");
    b.data(evaluate, "collected_vote", aggregate, "collected_vote");
    b.data(evaluate, "collected_vote", end, "votes");
    b.data(aggregate, "is_appropriate", end, "is_appropriate");
    b.data(aggregate, "summary", end, "summary");
    b
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = voting();
    if std::env::args().any(|a| a == "--document") {
        print!("{}", builder.to_document_string());
        return Ok(());
    }
    let flow = builder.build()?;
    let script = Script::from_json(include_str!("flows/replies_voting.json"), "examples/flows/replies_voting.json")?;
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    let mut inputs = Map::new();
    inputs.insert("text".into(), json!("Athletes should consume enhancing drugs to improve their performance."));
    let mut run = flow.start_with(inputs, RunOptions::simulated().with_model(Arc::new(model)))?;
    match run.execute().await? {
        Status::Finished { outputs, .. } => {
            let outcome: Outcome = typed_outputs(&outputs)?;
            for (i, vote) in outcome.votes.iter().enumerate() {
                println!("voter {i}: appropriate {}: {}", vote.is_appropriate, vote.explanation);
            }
            println!("verdict: appropriate {}: {}", outcome.verdict.is_appropriate, outcome.verdict.summary);
        }
        Status::InputRequired { request } => println!("unexpected question: {request:?}"),
    }
    Ok(())
}
