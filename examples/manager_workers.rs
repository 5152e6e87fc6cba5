//! ManagerWorkers, built in Rust: an editor agent (the manager) talks to the user and delegates
//! to two workers, a researcher who searches the changelog and a writer who follows the style
//! guide; each worker's answer comes back to the editor as the result of its `send_message`.
//! The tools are async Rust functions with typed arguments (`#[derive(Deserialize, JsonSchema)]`),
//! each bound and declared to the agents from the same types in one call (`TypedTools::tool_fn`). `examples/flows/manager_workers.json` is this
//! group's document (`-- --document` prints it); the command line runs it with the shell tools
//! of `examples/flows/manager_workers.tools.toml`.
//!
//! Runs offline: `examples/flows/replies_manager_workers.json` scripts each agent's answers (the
//! manager calls `send_message` with JSON in its text; the workers call their tools natively);
//! the group then waits for the user's next message.
//!
//! ```text
//! cargo run -p weft-exec --example manager_workers               # run it
//! cargo run -p weft-exec --example manager_workers -- --document # print the Agent Spec document
//! ```

// An example reports to the terminal.
#![allow(clippy::print_stdout)]

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Map;
use std::sync::Arc;
use weft_exec::{FlowExt, InputRequest, RunOptions, RunState, Status, TypedTools};
use weft_flow::builder::{AgentBuilder, LlmConfig, ManagerWorkersBuilder, ServerTool};
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
use weft_tools::ToolRegistry;

/// The changelog `search_changelog` searches.
const CHANGELOG: [&str; 4] = [
    "0.4: Swarm: a triage agent hands the conversation to specialists or sends them messages (handoff never, optional, always)",
    "0.4: ManagerWorkers: a manager agent delegates tasks to worker agents and gets their answers back",
    "0.4: worker agents run in parallel map items, at most max_workers at once",
    "0.3: MCP tools and toolboxes over HTTP, SSE and stdio",
];

/// The arguments of `search_changelog`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChangelogQuery {
    /// A word to look for, like Swarm
    pub query: String,
}

/// The arguments of `style_guide`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct StyleQuery {
    /// Who reads the text: customers or developers
    pub audience: String,
}

/// The changelog entries mentioning the query (any case).
pub async fn search_changelog(q: ChangelogQuery) -> Result<Vec<String>, String> {
    let word = q.query.to_lowercase();
    Ok(CHANGELOG.iter().filter(|line| line.to_lowercase().contains(&word)).map(|line| (*line).to_owned()).collect())
}

/// The style rules for an audience.
pub async fn style_guide(q: StyleQuery) -> Result<String, String> {
    Ok(match q.audience.as_str() {
        "customers" => "Plain words, no jargon; say what the reader can do now; at most two sentences.".into(),
        _ => "Be precise; name the feature and its component types.".into(),
    })
}

/// The functions above, each bound and declared to the agents in one call
/// ([`TypedTools::tool_fn`]): the declaration comes from the function's own types.
pub fn tools() -> (ToolRegistry, [ServerTool; 2]) {
    let mut tools = ToolRegistry::new();
    let declared = [
        tools.tool_fn("search_changelog", "The changelog entries mentioning a word", "entries", search_changelog),
        tools.tool_fn("style_guide", "The house style rules for an audience", "rules", style_guide),
    ];
    (tools, declared)
}

/// The group: the editor delegates to the researcher and the writer.
pub fn group() -> ManagerWorkersBuilder {
    let llm = LlmConfig::openai_compatible("team_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let [search, style] = tools().1;
    let editor = AgentBuilder::new(
        "editor",
        &llm,
        "You write release notes. Ask the researcher for the facts, then the writer for the text, and give the user the result.",
    )
    .description("Plans the work and answers the user");
    let researcher = AgentBuilder::new("researcher", &llm, "You find facts in the changelog with your tool and report them verbatim.")
        .description("Finds what changed, in the changelog")
        .tool(&search);
    let writer = AgentBuilder::new("writer", &llm, "You write short texts following the style guide of their audience.")
        .description("Writes texts in the house style")
        .tool(&style);
    let mut group = ManagerWorkersBuilder::new("release_team", &editor, &[&researcher, &writer]);
    group.description("An editor delegating research and writing");
    group
}

/// Runs the group on the simulated model with `script` until it waits for the user; the state
/// (the conversation) and what the editor says.
pub async fn run(script: Script, message: &str) -> Result<(RunState, String), Box<dyn std::error::Error>> {
    let flow = group().build()?;
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    let mut run = flow.start_with(Map::new(), RunOptions::simulated().with_model(Arc::new(model)).with_tools(tools().0))?;
    run.append_user_message(message)?;
    match run.execute().await? {
        Status::InputRequired { request: InputRequest::Message { message: Some(said), .. } } => Ok((run.into_state(), said)),
        other => Err(format!("expected the editor to answer the user, got {other:?}").into()),
    }
}

#[allow(dead_code, reason = "the tests include this file for its functions")]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--document") {
        print!("{}", group().to_document_string());
        return Ok(());
    }
    let script = Script::from_json(include_str!("flows/replies_manager_workers.json"), "examples/flows/replies_manager_workers.json")?;
    let (state, said) = run(script, "Write a two-sentence release note about Swarm support for our customers.").await?;
    for m in &state.messages {
        match m.message_type.as_str() {
            "TOOL_REQUEST" => {
                let calls: Vec<String> = m.tool_calls.iter().map(|c| format!("{} {}", c.name, c.arguments)).collect();
                println!("[{}] calls {}", m.node, calls.join(", "));
            }
            "TOOL_RESULT" => println!("    -> {}", m.content),
            kind => println!("[{}] {kind}: {}", m.node, m.content),
        }
    }
    println!("\nthe editor says: {said}");
    Ok(())
}
