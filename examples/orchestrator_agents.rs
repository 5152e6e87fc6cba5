//! Orchestrator-workers done with agents, built in Rust: a planner LLM node splits a topic into a
//! typed list of sections, a `ParallelMapNode` runs one writer **agent** per section (all at once,
//! results in the plan's order), each looking facts up with its tool before it submits its
//! section, and a synthesizer LLM node merges the sections into one article. The writer cannot
//! ask the user (`human_in_the_loop(false)`), which is what lets it run in a parallel map. Its
//! tool is an async Rust function with typed arguments (`#[derive(Deserialize, JsonSchema)]`),
//! bound and declared in one call (`TypedTools::tool_fn`);
//! its output is typed by a struct. `examples/flows/orchestrator_agents.json` is this flow's
//! document (`-- --document` prints it); the command line runs it with the shell tool of
//! `examples/flows/orchestrator_agents.tools.toml`.
//!
//! Runs offline: `examples/flows/replies_orchestrator_agents.json` scripts the planner (three
//! sections), each item's writer (by node path, `orchestrator_agents/workers[i]/write`: its
//! tool call, then its section) and the synthesizer.
//!
//! ```text
//! cargo run -p weft-exec --example orchestrator_agents               # run it
//! cargo run -p weft-exec --example orchestrator_agents -- --document # print the Agent Spec document
//! ```

// An example reports to the terminal.
#![allow(clippy::print_stdout)]

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, json};
use std::sync::Arc;
use weft_exec::{FlowExt, RunOptions, Status, TypedTools};
use weft_flow::builder::{AgentBuilder, FlowBuilder, Input, LlmConfig, Output, Property, Reducer, ServerTool};
use weft_flow::typed_outputs;
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
use weft_tools::ToolRegistry;

/// One section of the article, as the planner describes it.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Section {
    /// The name of the section
    pub name: String,
    /// What the section should cover
    pub description: String,
}

/// The planner's answer: the LLM node "plan" has one output per field.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code, reason = "only its schema is used; the flow's outputs are read as `Article`")]
pub struct Plan {
    /// The sections of the article, in order
    pub sections: Vec<Section>,
}

/// What a writer agent submits.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code, reason = "only its schema is used; the map collects the texts")]
pub struct Written {
    /// The text of the section
    pub section_text: String,
}

/// What the flow returns.
#[derive(Debug, Deserialize)]
pub struct Article {
    /// The plan.
    pub sections: Vec<Section>,
    /// One text per section, in the plan's order.
    pub section_texts: Vec<String>,
    /// The merged article.
    pub report: String,
}

/// The arguments of `find_facts`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FactsQuery {
    /// The section's name, like Introduction
    pub section: String,
}

/// The fact sheet `find_facts` reads, by section.
const FACTS: [(&str, [&str; 2]); 3] = [
    (
        "introduction",
        ["AI is software that learns patterns from data instead of following hand-written rules", "the term was coined in 1956"],
    ),
    (
        "how it works",
        [
            "a model adjusts millions of numbers until its answers on known examples are right",
            "a trained model answers inputs it has never seen",
        ],
    ),
    (
        "what it changes",
        ["AI already translates text, reads medical scans and drafts code", "it can be confidently wrong, so people check its work"],
    ),
];

/// The facts known about a section (none for an unknown one).
pub async fn find_facts(q: FactsQuery) -> Result<Vec<String>, String> {
    let wanted = q.section.to_lowercase();
    Ok(FACTS.iter().filter(|(name, _)| *name == wanted).flat_map(|(_, facts)| facts.iter().map(|f| (*f).to_owned())).collect())
}

/// `find_facts`, bound and declared to the writer in one call ([`TypedTools::tool_fn`]): the
/// declaration comes from the function's own types.
pub fn tools() -> (ToolRegistry, ServerTool) {
    let mut tools = ToolRegistry::new();
    let declared = tools.tool_fn("find_facts", "The fact sheet's entries for a section of the article", "facts", find_facts);
    (tools, declared)
}

/// The worker: one writer agent, given the topic and its section.
fn worker(llm: &LlmConfig) -> FlowBuilder {
    let writer = AgentBuilder::new(
        "writer",
        llm,
        "You write one section of a short article about {{topic}}. The section: {{section}}.\n\
         Look its facts up with find_facts, then submit the section's text (two or three sentences).",
    )
    .description("Writes one section of an article from the fact sheet")
    .inputs(&[Input::string("topic"), Property::of::<Section>("section")])
    .outputs_of::<Written>()
    .human_in_the_loop(false)
    .tool(&tools().1);
    let mut b = FlowBuilder::new("write_section");
    let start = b.start(&[Input::string("topic"), Property::of::<Section>("section")]);
    let write = b.agent("write", &writer);
    let end = b.end("end", &[Output::string("section_text")]);
    b.edge(start, write);
    b.edge(write, end);
    b.data(start, "topic", write, "topic");
    b.data(start, "section", write, "section");
    b.data(write, "section_text", end, "section_text");
    b
}

/// The flow: start → plan → workers (one writer agent per section, in parallel) → synthesize → end.
pub fn orchestrator_agents() -> FlowBuilder {
    let llm = LlmConfig::openai_compatible("local_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let mut b = FlowBuilder::new("orchestrator_agents");
    b.description("Orchestrator-workers with agents: plan sections, one writer agent per section in parallel, merge them");
    let start = b.start(&[Input::string("topic").description("What the article is about")]);
    let plan = b.llm_structured::<Plan>(
        "plan",
        &llm,
        "You are an expert writer. Generate the sections (three to five) of a short article about {{topic}}.",
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

/// Runs the flow on the simulated model with `script`: the article.
pub async fn run(script: Script, topic: &str) -> Result<Article, Box<dyn std::error::Error>> {
    let flow = orchestrator_agents().build()?;
    let mut inputs = Map::new();
    inputs.insert("topic".into(), json!(topic));
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    let mut run = flow.start_with(inputs, RunOptions::simulated().with_model(Arc::new(model)).with_tools(tools().0))?;
    match run.execute().await? {
        Status::Finished { outputs, .. } => Ok(typed_outputs(&outputs)?),
        Status::InputRequired { request } => Err(format!("unexpected question: {request:?}").into()),
    }
}

#[allow(dead_code, reason = "the tests include this file for its functions")]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--document") {
        print!("{}", orchestrator_agents().to_document_string());
        return Ok(());
    }
    let script =
        Script::from_json(include_str!("flows/replies_orchestrator_agents.json"), "examples/flows/replies_orchestrator_agents.json")?;
    let article = run(script, "Artificial Intelligence").await?;
    println!("plan: {} sections", article.sections.len());
    for (section, text) in article.sections.iter().zip(&article.section_texts) {
        println!("- {}: {}\n  {text}", section.name, section.description);
    }
    println!("article:\n{}", article.report);
    Ok(())
}
