//! Engine overhead of a fan-out: one run of an ExtendedParallelMapNode over 256 items (64 in
//! flight), each item one LLM call to the simulated model at zero latency, through the same
//! `Plan::start` + `Run::execute` path as `weft run` (the provider-wide limiter, and an event
//! sink that receives every event). Criterion reports items per second; the time per
//! iteration divided by 256 is the engine's cost per item (one child frame, three nodes, one
//! LLM call task).
//!
//! ```text
//! cargo bench -p weft-exec --bench fanout              # full measurement
//! cargo bench -p weft-exec --bench fanout -- --quick   # a short run
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value as Json, json};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use weft_exec::{EventRecord, EventSink, Plan, RunOptions, Status};
use weft_flow::Flow;

/// Items of the fan-out.
pub const ITEMS: usize = 256;

/// Items in flight at most (the node's `max_workers`).
pub const MAX_WORKERS: usize = 64;

/// Receives every event, as `weft run`'s sink does, and only counts them.
#[derive(Default)]
struct Count(AtomicU64);

impl EventSink for Count {
    fn emit(&self, _: &EventRecord<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn bench(c: &mut Criterion) {
    let flow = match Flow::from_json(&weft_flow::sample::fan_out_document(MAX_WORKERS).to_string()) {
        Ok(l) => l.flow,
        Err(d) => panic!("the benchmark flow is invalid:\n{d}"),
    };
    let plan = Plan::new(&flow, RunOptions::simulated().with_events(Arc::new(Count::default()))).expect("the benchmark flow runs");
    let mut inputs = Map::new();
    inputs.insert("items".into(), Json::Array((0..ITEMS).map(|i| json!(format!("item {i}"))).collect()));
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(30);
    // The current-thread runtime gives the engine's own cost; the multi-threaded one (what
    // `weft run` uses) adds the cost of waking tasks across threads.
    let runtimes = [
        ("256_items_current_thread", tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")),
        ("256_items_multi_thread", tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")),
    ];
    for (name, rt) in &runtimes {
        // One run first, to check the result.
        let status = rt.block_on(async { plan.start(inputs.clone()).expect("start").execute().await.expect("run") });
        let Status::Finished { outputs, .. } = status else { panic!("the benchmark flow did not finish") };
        assert_eq!(outputs["collected_y"].as_array().map(Vec::len), Some(ITEMS), "{outputs:?}");
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(async { black_box(plan.start(inputs.clone()).expect("start").execute().await.expect("run")) }))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
