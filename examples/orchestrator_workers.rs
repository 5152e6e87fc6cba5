//! Orchestrator-workers, built in Rust: a planner LLM node splits a topic into a typed list of
//! sections, a `ParallelMapNode` runs one worker subflow per section (all at once, results in
//! the plan's order), and a synthesizer LLM node merges the collected texts into one report.
//! `examples/flows/orchestrator_workers.json` is this flow's document (`-- --document` prints it).
//!
//! Runs offline with the simulated model; `examples/flows/replies_orchestrator_plan.json` scripts
//! the planner's answer (three sections, so three workers run), the rest is simulated.
//!
//! ```text
//! cargo run -p weft-exec --example orchestrator_workers               # run it
//! cargo run -p weft-exec --example orchestrator_workers -- --document # print the Agent Spec document
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

/// One section of the article, as the planner describes it.
#[derive(Debug, Deserialize, JsonSchema)]
struct Section {
    /// The name of the section
    name: String,
    /// What the section should cover
    description: String,
}

/// The planner's answer: the LLM node "plan" has one output per field.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code, reason = "only its schema is used; the flow's outputs are read as `Report`")]
struct Plan {
    /// The sections of the article, in order
    sections: Vec<Section>,
}

/// What the flow returns.
#[derive(Debug, Deserialize)]
struct Report {
    /// The plan.
    sections: Vec<Section>,
    /// One text per section, in the plan's order.
    section_texts: Vec<String>,
    /// The merged article.
    report: String,
}

/// The worker: writes one section of the article about `topic`.
fn worker(llm: &LlmConfig) -> FlowBuilder {
    let mut b = FlowBuilder::new("write_section");
    let start = b.start(&[Input::string("topic"), Property::of::<Section>("section")]);
    let write = b.llm_with_outputs(
        "write",
        llm,
        "Section to write: {{section}}\nArticle: a short article about {{topic}}\n\n\
         You are an expert writer specialized in SEO. Write this section of the article. Answer with the section's text only.",
        &[Output::string("section_text")],
    );
    let end = b.end("end", &[Output::string("section_text")]);
    b.edge(start, write);
    b.edge(write, end);
    b.data(start, "topic", write, "topic");
    b.data(start, "section", write, "section");
    b.data(write, "section_text", end, "section_text");
    b
}

/// The flow: start → plan → workers (one `write_section` per section, in parallel) →
/// synthesize → end.
fn orchestrator_workers() -> FlowBuilder {
    let llm = LlmConfig::openai_compatible("local_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let mut b = FlowBuilder::new("orchestrator_workers");
    b.description("Orchestrator-workers: plan sections, write each in parallel, merge them into a report");
    let start = b.start(&[Input::string("topic").description("What the article is about")]);
    let plan = b.llm_structured::<Plan>(
        "plan",
        &llm,
        "You are an expert writer specialized in SEO. Generate the sections (three to five) of a short article about {{topic}}.",
    );
    // `sections` is a list of `section`s: the workers iterate it; `topic` goes to every worker.
    let workers = b.parallel_map("workers", &worker(&llm), &[("section_text", Reducer::Append)]);
    let synthesize = b.llm_with_outputs(
        "synthesize",
        &llm,
        "Merge these sections into one cohesive article about {{topic}}, with smooth transitions. \
         Answer with the article only.\n\nSections:\n{{collected_section_text}}",
        &[Output::string("report")],
    );
    let end = b.end(
        "end",
        &[
            Property::of::<Vec<Section>>("sections").description("The plan"),
            Output::array("section_texts", json!({"type": "string"})).description("One text per section, in the plan's order"),
            Output::string("report").description("The merged article"),
        ],
    );

    b.edge(start, plan);
    b.edge(plan, workers);
    b.edge(workers, synthesize);
    b.edge(synthesize, end);

    b.data(start, "topic", plan, "topic");
    b.data(plan, "sections", workers, "iterated_section");
    b.data(start, "topic", workers, "iterated_topic");
    b.data(start, "topic", synthesize, "topic");
    b.data(workers, "collected_section_text", synthesize, "collected_section_text");
    b.data(plan, "sections", end, "sections");
    b.data(workers, "collected_section_text", end, "section_texts");
    b.data(synthesize, "report", end, "report");
    b
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = orchestrator_workers();
    if std::env::args().any(|a| a == "--document") {
        print!("{}", builder.to_document_string());
        return Ok(());
    }
    let flow = builder.build()?;
    let mut inputs = Map::new();
    inputs.insert("topic".into(), json!("Artificial Intelligence"));
    let script = Script::from_json(include_str!("flows/replies_orchestrator_plan.json"), "examples/flows/replies_orchestrator_plan.json")?;
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    let mut run = flow.start_with(inputs, RunOptions::simulated().with_model(Arc::new(model)))?;
    match run.execute().await? {
        Status::Finished { outputs, .. } => {
            let report: Report = typed_outputs(&outputs)?;
            println!("plan: {} sections", report.sections.len());
            for (section, text) in report.sections.iter().zip(&report.section_texts) {
                println!("- {}: {}\n  {text}", section.name, section.description);
            }
            println!("report:\n{}", report.report);
        }
        Status::InputRequired { request } => println!("unexpected question: {request:?}"),
    }
    Ok(())
}
