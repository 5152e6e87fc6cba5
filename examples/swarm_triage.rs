//! A Swarm, built in Rust: a triage agent talks to the customer first and hands the
//! conversation to the billing or the technical-support specialist; billing looks the invoice up
//! and refunds it with its tools, and asks technical support (a message on their own thread) whether
//! an incident explains a double charge. The tools are async Rust functions with typed arguments
//! (`#[derive(Deserialize, JsonSchema)]`), each bound and declared to the agents from the same
//! types in one call (`TypedTools::tool_fn`).
//! `examples/flows/swarm_triage.json` is this Swarm's document (`-- --document` prints it); the
//! command line runs it with the shell tools of `examples/flows/swarm_triage.tools.toml`.
//!
//! Runs offline: `examples/flows/replies_swarm_triage.json` scripts each agent's answers (a Swarm
//! agent calls tools with JSON in its text, as WayFlow's Swarm prompt asks); the Swarm then waits
//! for the customer's next message.
//!
//! ```text
//! cargo run -p weft-exec --example swarm_triage               # run it
//! cargo run -p weft-exec --example swarm_triage -- --document # print the Agent Spec document
//! ```

// An example reports to the terminal.
#![allow(clippy::print_stdout)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::sync::Arc;
use weft_exec::{FlowExt, InputRequest, RunOptions, RunState, Status, TypedTools};
use weft_flow::builder::{AgentBuilder, Handoff, LlmConfig, ServerTool, SwarmBuilder};
use weft_llm::simulated::{Script, SimulatedModel, SimulatedOptions};
use weft_tools::ToolRegistry;

/// The arguments of `lookup_invoice`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InvoiceQuery {
    /// The invoice number, like INV-1042
    pub invoice: String,
}

/// An invoice, as `lookup_invoice` returns it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Invoice {
    /// The invoice number
    pub invoice: String,
    /// The amount of one charge, in dollars
    pub amount: f64,
    /// How many times the card was charged
    pub charges: u32,
    /// paid, open or refunded
    pub status: String,
}

/// The arguments of `refund_charge`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RefundRequest {
    /// The invoice number
    pub invoice: String,
    /// The amount to refund, in dollars
    pub amount: f64,
}

/// The arguments of `service_status`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ServiceQuery {
    /// The service: payments, login or email
    pub service: String,
}

/// The invoices the billing tools know.
pub async fn lookup_invoice(q: InvoiceQuery) -> Result<Invoice, String> {
    match q.invoice.as_str() {
        "INV-1042" => Ok(Invoice { invoice: q.invoice, amount: 42.0, charges: 2, status: "paid".into() }),
        "INV-1043" => Ok(Invoice { invoice: q.invoice, amount: 19.5, charges: 1, status: "open".into() }),
        other => Err(format!("no invoice {other}")),
    }
}

/// Refunds an amount; the refund's id.
pub async fn refund_charge(r: RefundRequest) -> Result<String, String> {
    if r.amount <= 0.0 {
        return Err("the amount must be positive".into());
    }
    Ok(format!("RF-{}", r.invoice.trim_start_matches("INV-")))
}

/// What the status page says about a service.
pub async fn service_status(q: ServiceQuery) -> Result<String, String> {
    Ok(match q.service.as_str() {
        "payments" => "incident PAY-17 on 2026-12-01: some cards were charged twice; resolved, duplicates may be refunded".into(),
        _ => "operational".into(),
    })
}

/// The functions above, each bound and declared to the agents in one call
/// ([`TypedTools::tool_fn`]): the declaration comes from the function's own types.
pub fn tools() -> (ToolRegistry, [ServerTool; 3]) {
    let mut tools = ToolRegistry::new();
    let declared = [
        tools.tool_fn("lookup_invoice", "Look an invoice up by its number", "invoice", lookup_invoice),
        tools.tool_fn("refund_charge", "Refund an amount of an invoice to the customer's card", "refund_id", refund_charge),
        tools.tool_fn("service_status", "The status page's entry for a service", "status", service_status),
    ];
    (tools, declared)
}

/// The Swarm: triage hands off to billing or tech support; billing may ask tech support.
pub fn swarm() -> SwarmBuilder {
    let llm = LlmConfig::openai_compatible("support_llm", "http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct");
    let [lookup, refund, status] = tools().1;
    let triage = AgentBuilder::new(
        "triage",
        &llm,
        "You greet customers of Acme Cloud and find out what they need. Hand billing questions to billing and technical problems to tech_support.",
    )
    .description("Greets customers and routes them to the right specialist");
    let billing = AgentBuilder::new(
        "billing",
        &llm,
        "You handle invoices, charges and refunds. Check the invoice before refunding anything; ask tech_support when a charge looks like a system error.",
    )
    .description("Invoices, charges and refunds")
    .tool(&lookup)
    .tool(&refund);
    let tech = AgentBuilder::new("tech_support", &llm, "You diagnose technical problems with the status page.")
        .description("Outages, incidents and technical problems")
        .tool(&status);
    let mut swarm = SwarmBuilder::new("support_swarm", &triage);
    swarm
        .description("Customer support: triage hands the customer to a specialist")
        .relationship(&triage, &billing)
        .relationship(&triage, &tech)
        .relationship(&billing, &tech)
        .handoff(Handoff::Optional);
    swarm
}

/// Runs the Swarm on the simulated model with `script` until it waits for the customer; the
/// state (the conversation) and what the Swarm says.
pub async fn run(script: Script, message: &str) -> Result<(RunState, String), Box<dyn std::error::Error>> {
    let flow = swarm().build()?;
    let model = SimulatedModel::new(SimulatedOptions { script, ..SimulatedOptions::default() });
    let mut run = flow.start_with(Map::new(), RunOptions::simulated().with_model(Arc::new(model)).with_tools(tools().0))?;
    run.append_user_message(message)?;
    match run.execute().await? {
        Status::InputRequired { request: InputRequest::Message { message: Some(said), .. } } => Ok((run.into_state(), said)),
        other => Err(format!("expected the Swarm to answer the customer, got {other:?}").into()),
    }
}

#[allow(dead_code, reason = "the tests include this file for its functions")]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--document") {
        print!("{}", swarm().to_document_string());
        return Ok(());
    }
    let script = Script::from_json(include_str!("flows/replies_swarm_triage.json"), "examples/flows/replies_swarm_triage.json")?;
    let (state, said) = run(script, "Hi, I was charged twice for invoice INV-1042.").await?;
    for m in &state.messages {
        match m.message_type.as_str() {
            "TOOL_REQUEST" => {
                let names: Vec<&str> = m.tool_calls.iter().map(|c| c.name.as_str()).collect();
                println!("[{}] calls {}", m.node, names.join(", "));
            }
            "TOOL_RESULT" => println!("    -> {}", m.content),
            kind => println!("[{}] {kind}: {}", m.node, m.content),
        }
    }
    println!("\nthe Swarm says: {said}");
    Ok(())
}
