//! The workloads (the four of issue 4, and the agents of issue 15): their flows, inputs, tools,
//! sizes and ideal times, and how each one is driven (one run, or a batch through
//! `weft_exec::batch::run_batch`, as `weft run` does).

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weft_exec::batch::{BatchEvent, BatchInput, run_batch};
use weft_exec::{Plan, Status};
use weft_flow::Flow;
use weft_tools::ToolRegistry;

/// The guardrails seed example: two structured LLM checks in a ParallelFlowNode, then a
/// deterministic decision.
const GUARDRAILS: &str = include_str!("../../../examples/flows/guardrails.json");

/// The orchestrator-workers seed example: a structured planner, a ParallelMapNode of writers,
/// a synthesizer.
const ORCHESTRATOR_WORKERS: &str = include_str!("../../../examples/flows/orchestrator_workers.json");

/// The agent of the `agents` workload: an Agent at the root with a `destination` input, three
/// ServerTools (`weather`, `hotels`, `trains`) and two outputs (`total`, `note`), never asking
/// the user.
const TRIP_AGENT: &str = include_str!("../flows/trip_agent.json");

/// LLM calls of one agent conversation: one per tool, then `submit_result`.
pub const AGENT_TURNS: u32 = 4;

/// Sections the simulated planner returns (its schema has no `minItems`/`maxItems`, so the
/// simulated model's `array_len` decides), hence workers per orchestrator run.
pub const SECTIONS: usize = 8;

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// One run of an ExtendedParallelMapNode over 256 items, 64 in flight, one LLM call per item.
    FanOut,
    /// 1,000 runs of `examples/flows/guardrails.json`, 100 at a time.
    Guardrails,
    /// 200 runs of `examples/flows/orchestrator_workers.json` (planner, 8 workers, synthesizer),
    /// 50 at a time.
    OrchestratorWorkers,
    /// The fan-out at 100 times the scale: 25,600 items, 1,024 in flight.
    #[value(name = "fan-out-100x")]
    #[serde(rename = "fan-out-100x")]
    FanOut100x,
    /// 1,000 conversations of an agent calling three native Rust tools one per turn and then
    /// submitting its outputs (4 LLM calls each), 100 at a time.
    Agents,
}

impl Workload {
    /// Every workload, in the issue's order.
    pub const ALL: [Workload; 5] =
        [Workload::FanOut, Workload::Guardrails, Workload::OrchestratorWorkers, Workload::FanOut100x, Workload::Agents];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::FanOut => "fan-out",
            Workload::Guardrails => "guardrails",
            Workload::OrchestratorWorkers => "orchestrator-workers",
            Workload::FanOut100x => "fan-out-100x",
            Workload::Agents => "agents",
        }
    }

    /// Whether the workload is at the peers' scale (the 5% and 40 MB goals) rather than 100x.
    pub fn peers_scale(self) -> bool {
        self != Workload::FanOut100x
    }

    /// The flow, loaded and checked.
    pub fn flow(self, shape: &Shape) -> anyhow::Result<Flow> {
        let text = match self {
            Workload::FanOut | Workload::FanOut100x => weft_flow::sample::fan_out_document(shape.concurrency).to_string(),
            Workload::Guardrails => GUARDRAILS.to_owned(),
            Workload::OrchestratorWorkers => ORCHESTRATOR_WORKERS.to_owned(),
            Workload::Agents => TRIP_AGENT.to_owned(),
        };
        match Flow::from_json(&text) {
            Ok(loaded) => Ok(loaded.flow),
            Err(d) => bail!("the {} flow is invalid:\n{d}", self.name()),
        }
    }

    /// How many items the simulated model puts in generated arrays.
    pub fn array_len(self) -> usize {
        match self {
            Workload::OrchestratorWorkers => SECTIONS,
            _ => 1,
        }
    }
}

/// The native tools of the `agents` workload, as a library user registers them
/// (`ToolRegistry::register_fn` with typed arguments), each counting its calls.
#[derive(Debug, Default)]
pub struct NativeTools {
    /// Calls of `weather`, `hotels` and `trains`.
    pub calls: [AtomicU64; 3],
}

/// The arguments of `weather`.
#[derive(Deserialize, schemars::JsonSchema)]
struct City {
    city: String,
}

/// The arguments of `hotels`.
#[derive(Deserialize, schemars::JsonSchema)]
struct Stay {
    city: String,
    nights: i64,
}

/// The arguments of `trains`.
#[derive(Deserialize, schemars::JsonSchema)]
struct Route {
    origin: String,
    destination: String,
}

/// What `hotels` answers.
#[derive(Serialize)]
struct Hotel {
    name: String,
    nights: i64,
    price_per_night: u32,
}

/// What `trains` answers.
#[derive(Serialize)]
struct Train {
    from: String,
    to: String,
    departs: &'static str,
    fare: u32,
}

impl NativeTools {
    /// The workload's tools (none but for `agents`), and their counters.
    pub fn registry(workload: Workload) -> (ToolRegistry, Arc<NativeTools>) {
        let counters = Arc::new(NativeTools::default());
        let mut tools = ToolRegistry::new();
        if workload != Workload::Agents {
            return (tools, counters);
        }
        let c = counters.clone();
        tools.register_fn("weather", move |args: City| {
            c.calls[0].fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, std::convert::Infallible>(format!("sunny in {}, 24 degrees", args.city)) }
        });
        let c = counters.clone();
        tools.register_fn("hotels", move |args: Stay| {
            c.calls[1].fetch_add(1, Ordering::Relaxed);
            async move {
                Ok::<_, std::convert::Infallible>(Hotel {
                    name: format!("Hotel de {}", args.city),
                    nights: args.nights,
                    price_per_night: 90,
                })
            }
        });
        let c = counters.clone();
        tools.register_fn("trains", move |args: Route| {
            c.calls[2].fetch_add(1, Ordering::Relaxed);
            async move { Ok::<_, std::convert::Infallible>(Train { from: args.origin, to: args.destination, departs: "09:12", fare: 45 }) }
        });
        (tools, counters)
    }

    /// Checks that each tool was called `runs` times (once per conversation).
    pub fn check(&self, runs: usize) -> anyhow::Result<()> {
        for (name, calls) in ["weather", "hotels", "trains"].iter().zip(&self.calls) {
            let calls = calls.load(Ordering::Relaxed);
            if calls != runs as u64 {
                bail!("the tool {name} was called {calls} times in {runs} agent conversations (once each expected)");
            }
        }
        Ok(())
    }
}

/// The size of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Items of the fan-out, or runs of the batch.
    pub count: usize,
    /// In flight: the map node's `max_workers`, or the batch's concurrency.
    pub concurrency: usize,
    /// LLM calls one after another on every path: the critical path, in calls.
    pub depth: u32,
    /// LLM calls in all.
    pub calls: u64,
}

impl Shape {
    /// The workload's size, `scale` times the issue's (at least one item and one in flight).
    pub fn new(workload: Workload, scale: f64) -> Shape {
        let scaled = |n: usize| ((n as f64 * scale).round() as usize).max(1);
        let (count, concurrency, depth, calls_per) = match workload {
            Workload::FanOut => (scaled(256), scaled(64), 1, 1),
            Workload::Guardrails => (scaled(1_000), scaled(100), 1, 2),
            Workload::OrchestratorWorkers => (scaled(200), scaled(50), 3, 2 + SECTIONS as u64),
            Workload::FanOut100x => (scaled(25_600), scaled(1_024), 1, 1),
            Workload::Agents => (scaled(1_000), scaled(100), AGENT_TURNS, u64::from(AGENT_TURNS)),
        };
        Shape { count, concurrency, depth, calls: count as u64 * calls_per }
    }

    /// Rounds of `concurrency` items or runs.
    pub fn waves(&self) -> u32 {
        u32::try_from(self.count.div_ceil(self.concurrency)).unwrap_or(u32::MAX)
    }

    /// The critical path: every wave waits for its slowest path of `depth` calls of `latency`,
    /// and nothing else takes time.
    pub fn ideal(&self, latency: Duration) -> Duration {
        latency * self.waves() * self.depth
    }

    /// `256 items, 64 in flight` or `1000 runs, 100 at a time`.
    pub fn describe(&self, workload: Workload) -> String {
        match workload {
            Workload::FanOut | Workload::FanOut100x => format!("{} items, {} in flight", self.count, self.concurrency),
            _ => format!("{} runs, {} at a time", self.count, self.concurrency),
        }
    }
}

/// The inputs of a workload: one run's for a fan-out, one per run for a batch.
pub enum Inputs {
    /// One run.
    One(Map<String, Json>),
    /// A batch.
    Batch(Vec<BatchInput>),
}

/// Builds the inputs (before the clock starts).
pub fn inputs(workload: Workload, shape: &Shape) -> Inputs {
    let one = |name: &str, value: Json| {
        let mut m = Map::new();
        m.insert(name.to_owned(), value);
        m
    };
    match workload {
        Workload::FanOut | Workload::FanOut100x => {
            let items: Vec<Json> = (0..shape.count).map(|i| json!(format!("item {i}"))).collect();
            Inputs::One(one("items", Json::Array(items)))
        }
        Workload::Guardrails => Inputs::Batch(
            (0..shape.count)
                .map(|i| {
                    BatchInput::new(i, i + 1, Ok(one("user_input", json!(format!("Schedule a meeting with team {i} tomorrow at 2pm")))))
                })
                .collect(),
        ),
        Workload::OrchestratorWorkers => Inputs::Batch(
            (0..shape.count).map(|i| BatchInput::new(i, i + 1, Ok(one("topic", json!(format!("topic number {i}")))))).collect(),
        ),
        Workload::Agents => Inputs::Batch(
            (0..shape.count).map(|i| BatchInput::new(i, i + 1, Ok(one("destination", json!(format!("city number {i}")))))).collect(),
        ),
    }
}

/// Runs the workload to its end and checks the results: the fan-out's collected list has one
/// value per item; every run of a batch finished. Returns the number of runs finished.
pub async fn execute(plan: &Arc<Plan>, workload: Workload, shape: &Shape, inputs: Inputs) -> anyhow::Result<usize> {
    match inputs {
        Inputs::One(inputs) => {
            let mut run = plan.start(inputs).map_err(|e| anyhow::anyhow!("cannot start: {}", e.problems().join("; ")))?;
            let status = run.execute().await.with_context(|| format!("the {} run failed", workload.name()))?;
            let Status::Finished { outputs, .. } = status else { bail!("the {} run waits for input", workload.name()) };
            let collected = outputs.get("collected_y").and_then(Json::as_array).map_or(0, Vec::len);
            if collected != shape.count {
                bail!("the fan-out collected {collected} values for {} items", shape.count);
            }
            Ok(1)
        }
        Inputs::Batch(inputs) => {
            let mut first_error = None;
            let mut finished = 0;
            let progress = run_batch(plan, inputs, shape.concurrency, |event| {
                if let BatchEvent::Result(result) = event {
                    match result.error {
                        None if workload == Workload::Agents && !submitted(result.outputs.as_ref()) => {
                            first_error
                                .get_or_insert(format!("run {}: the agent did not submit its outputs: {:?}", result.index, result.outputs));
                        }
                        None => finished += 1,
                        Some(e) => {
                            first_error.get_or_insert(format!("run {}: {}", result.index, e.message));
                        }
                    }
                }
            })
            .await;
            if let Some(e) = first_error {
                bail!("{} of {} {} runs failed; the first: {e}", progress.failed, progress.total, workload.name());
            }
            if finished != shape.count {
                bail!("{finished} of {} {} runs reported a result", shape.count, workload.name());
            }
            Ok(finished)
        }
    }
}

/// Whether an agent conversation ended with the outputs `submit_result` gives: an integer
/// `total` and a string `note`.
fn submitted(outputs: Option<&Map<String, Json>>) -> bool {
    outputs.is_some_and(|o| o.len() == 2 && o.get("total").is_some_and(Json::is_i64) && o.get("note").is_some_and(Json::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideals_are_the_issues() {
        let ms50 = Duration::from_millis(50);
        let ideal = |w| Shape::new(w, 1.0).ideal(ms50);
        assert_eq!(ideal(Workload::FanOut), Duration::from_millis(200));
        assert_eq!(ideal(Workload::Guardrails), Duration::from_millis(500));
        assert_eq!(ideal(Workload::OrchestratorWorkers), Duration::from_millis(600));
        assert_eq!(ideal(Workload::FanOut100x), Duration::from_millis(1250));
        // 10 waves of 100 conversations, 4 calls each.
        assert_eq!(ideal(Workload::Agents), Duration::from_millis(2000));
        assert_eq!(Shape::new(Workload::Agents, 1.0).calls, 4_000);
        assert_eq!(Shape::new(Workload::OrchestratorWorkers, 1.0).calls, 2_000);
        assert_eq!(Shape::new(Workload::FanOut, 0.001).count, 1);
    }

    #[test]
    fn every_flow_loads() {
        for w in Workload::ALL {
            w.flow(&Shape::new(w, 0.1)).unwrap();
        }
    }
}
