//! The model the engine calls: answers from the oracle after the oracle's latency (on tokio's
//! paused clock), refuses the prompts of the case's failure set, and keeps books: every call
//! with its outcome, calls in flight in all and, for each fan-out instance, how many of its
//! branches or items have a call in flight (checked against the node's `max_workers`). It also
//! asks the test to pause the run when a given call starts.

use super::flow::Enc;
use super::oracle::{self, Failures, STRUCTURED_SUFFIX};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::Instant;
use weft_llm::{ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still running.
    Running,
    /// Returned (an answer or a refusal) at this instant.
    Returned(Instant),
    /// Dropped before returning (cancelled).
    Dropped,
}

/// One call the engine made.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The generated part of the prompt.
    pub prompt: String,
    /// How many pauses came before it started.
    pub epoch: usize,
    /// How it ended.
    pub outcome: Outcome,
}

/// A fan-out instance: its `max_workers`, calls in flight per branch or item, the most branches
/// or items with a call in flight at once, and the branches or items seen.
#[derive(Debug, Default)]
pub struct Group {
    /// `max_workers`.
    pub bound: usize,
    /// Calls in flight per branch or item.
    pub in_flight: HashMap<usize, usize>,
    /// The most branches or items with a call in flight at once.
    pub peak: usize,
    /// Branches or items that made a call.
    pub seen: std::collections::BTreeSet<usize>,
}

/// The model's books.
#[derive(Debug, Default)]
pub struct Books {
    /// Every call, in the order they started.
    pub calls: Vec<CallRecord>,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Fan-out instances, by `<ctx>#m<id>` or `<ctx>#p<id>`.
    pub groups: BTreeMap<String, Group>,
    /// What went wrong: a call the test cannot place, a bound exceeded.
    pub violations: Vec<String>,
    /// Pauses so far.
    pub epoch: usize,
    /// Calls started (in all epochs) at which to pause, in order.
    pub pause_at: VecDeque<usize>,
    /// The most map levels a call was under.
    pub max_depth: usize,
}

/// A call's place in one fan-out instance: the instance's key, the branch or item, the bound.
type Membership = (String, usize, usize);

/// The test's model.
pub struct Model {
    seed: u64,
    failures: Option<Failures>,
    chains: HashMap<u32, Vec<Enc>>,
    books: Mutex<Books>,
    /// Notified when a pause point is reached.
    pub pause: Notify,
}

impl Model {
    /// A model for one case.
    pub fn new(seed: u64, failures: Option<Failures>, chains: HashMap<u32, Vec<Enc>>, pause_at: Vec<usize>) -> Arc<Model> {
        let books = Books { pause_at: pause_at.into(), ..Books::default() };
        Arc::new(Model { seed, failures, chains, books: Mutex::new(books), pause: Notify::new() })
    }

    /// The books, to read.
    pub fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fan-out instances a call belongs to (key, its branch or item, `max_workers`), from
    /// its ctx (the map items) and its node's chain (which parallel branch, statically), and how
    /// many maps it is under.
    fn groups_of(&self, prompt: &str) -> Result<(Vec<Membership>, usize), String> {
        let head = oracle::head(prompt).ok_or_else(|| format!("a prompt the flows do not send: {prompt:?}"))?;
        let chain = self.chains.get(&head.id).ok_or_else(|| format!("no LLM node {}: {prompt:?}", head.id))?;
        let mut segments = head.ctx.split('/');
        if segments.next() != Some("r") {
            return Err(format!("a ctx not under the root: {prompt:?}"));
        }
        let mut prefix = String::from("r");
        let mut groups = Vec::new();
        let mut depth = 0;
        for enc in chain {
            match *enc {
                Enc::Map { id, bound } => {
                    let seg = segments.next().ok_or_else(|| format!("call under map {id} with a short ctx: {prompt:?}"))?;
                    let k = seg
                        .strip_prefix(&format!("m{id}."))
                        .and_then(|k| k.parse().ok())
                        .ok_or_else(|| format!("call under map {id} with ctx segment {seg:?}: {prompt:?}"))?;
                    groups.push((format!("{prefix}#m{id}"), k, bound));
                    prefix.push('/');
                    prefix.push_str(seg);
                    depth += 1;
                }
                Enc::Par { id, branch, bound } => groups.push((format!("{prefix}#p{id}"), branch, bound)),
            }
        }
        if segments.next().is_some() {
            return Err(format!("a ctx deeper than the node's maps: {prompt:?}"));
        }
        Ok((groups, depth))
    }

    fn enter(&self, prompt: &str) -> (usize, Vec<(String, usize)>) {
        let placed = self.groups_of(prompt);
        let mut b = self.books();
        let index = b.calls.len();
        let epoch = b.epoch;
        b.calls.push(CallRecord { prompt: prompt.to_owned(), epoch, outcome: Outcome::Running });
        b.in_flight += 1;
        let mut mine = Vec::new();
        match placed {
            Ok((groups, depth)) => {
                b.max_depth = b.max_depth.max(depth);
                for (key, child, bound) in groups {
                    let g = b.groups.entry(key.clone()).or_default();
                    g.bound = bound;
                    g.seen.insert(child);
                    *g.in_flight.entry(child).or_default() += 1;
                    let active = g.in_flight.values().filter(|&&n| n > 0).count();
                    g.peak = g.peak.max(active);
                    if active > bound {
                        let msg = format!("{active} branches or items of {key} in flight at once, max_workers is {bound} (at {prompt:?})");
                        b.violations.push(msg);
                    }
                    mine.push((key, child));
                }
            }
            Err(e) => b.violations.push(e),
        }
        if b.pause_at.front() == Some(&(index + 1)) {
            b.pause_at.pop_front();
            self.pause.notify_one();
        }
        (index, mine)
    }

    fn leave(&self, index: usize, groups: &[(String, usize)], outcome: Outcome) {
        let mut b = self.books();
        b.in_flight -= 1;
        b.calls[index].outcome = outcome;
        for (key, child) in groups {
            if let Some(n) = b.groups.get_mut(key).and_then(|g| g.in_flight.get_mut(child)) {
                *n -= 1;
            }
        }
    }
}

/// Marks a call dropped unless it returned.
struct Guard<'a> {
    model: &'a Model,
    index: usize,
    groups: Vec<(String, usize)>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.model.leave(self.index, &self.groups, Outcome::Dropped);
        }
    }
}

/// The generated part of a prompt (before the structured-output instructions).
pub fn generated(prompt: &str) -> &str {
    prompt.find(STRUCTURED_SUFFIX).map_or(prompt, |i| &prompt[..i])
}

#[async_trait::async_trait]
impl ChatModel for Model {
    fn name(&self) -> &str {
        "props"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let full = request.messages.last().map(|m| m.content.as_str()).unwrap_or_default();
        let prompt = generated(full);
        let (index, groups) = self.enter(prompt);
        let mut guard = Guard { model: self, index, groups, armed: true };
        tokio::time::sleep(oracle::latency(self.seed, prompt)).await;
        guard.armed = false;
        self.leave(index, &guard.groups, Outcome::Returned(Instant::now()));
        if self.failures.is_some_and(|f| f.fails(prompt)) {
            return Err(LlmError::new(LlmErrorKind::ContentFiltered, format!("refused|{prompt}")));
        }
        Ok(ChatResponse { text: oracle::answer(prompt), ..ChatResponse::default() })
    }
}
