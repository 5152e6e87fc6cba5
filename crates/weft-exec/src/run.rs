//! The driver: a [`Run`] owns a run state, feeds the scheduler its inputs (with the time) and
//! performs the commands that come out: effects as tasks of the run's `JoinSet` (dropping the
//! run cancels them), events through the run's context.

use crate::context::{CancelHandle, FrameTokens, RunContext, RunSettings, new_run_id};
use crate::effect::{Done, Effect, EffectKind, Site, perform};
use crate::error::{ResumeError, RunError, RunErrorKind, StartError, SubmitError};
use crate::plan::Plan;
use crate::sched::{Command, Input, Machine, RunConfig, Sched, Work};
use crate::state::{InputRequest, Outcome, RunState};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// What `execute()` ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The flow reached an EndNode.
    Finished {
        /// The flow's outputs.
        outputs: Map<String, Json>,
        /// The EndNode's `branch_name`.
        end_branch: String,
    },
    /// The run waits for an answer: submit it with [`Run::submit`], then `execute()` again.
    InputRequired {
        /// What is asked.
        request: InputRequest,
    },
}

/// One execution of a flow: its state, its settings and its context (`Send`: move it to any
/// task).
pub struct Run {
    plan: Arc<Plan>,
    state: RunState,
    work: Work,
    settings: RunSettings,
    ctx: Arc<RunContext>,
    cancel: CancelHandle,
    resumed: bool,
    /// The checkpoint generation this run last handed its state over for.
    saved: u64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("run_id", &self.state.run_id).field("state", &self.state).finish_non_exhaustive()
    }
}

impl Plan {
    /// Starts a run with the given inputs (checked against the flow's inputs: unknown names,
    /// missing required inputs and wrong types are all reported) and the plan's default
    /// settings.
    pub fn start(self: &Arc<Self>, inputs: Map<String, Json>) -> Result<Run, StartError> {
        self.start_with(inputs, self.defaults.clone())
    }

    /// Starts a run with its own settings (a batch gives each run its index and event sink).
    pub fn start_with(self: &Arc<Self>, inputs: Map<String, Json>, settings: RunSettings) -> Result<Run, StartError> {
        let inputs = self.check_inputs(inputs)?;
        let state = RunState {
            run_id: new_run_id(),
            event_seq: 0,
            flow_hash: self.hash.clone(),
            inputs,
            frames: BTreeMap::new(),
            next_frame: 0,
            messages: Vec::new(),
            pending: BTreeMap::new(),
            steps: BTreeMap::new(),
            llm_calls: BTreeMap::new(),
            retry_trials: BTreeMap::new(),
            agent_loops: BTreeMap::new(),
            conversations: BTreeMap::new(),
            summaries: BTreeMap::new(),
            variables: BTreeMap::new(),
            datastores: BTreeMap::new(),
            a2a: BTreeMap::new(),
            usage: Default::default(),
            seq: 0,
            outcome: Outcome::Running,
        };
        let mut run = Run::new(Arc::clone(self), state, Work::default(), settings, false);
        let cfg = run.config();
        let mut out = Vec::new();
        Machine { plan: self, cfg: &cfg, state: &mut run.state, work: &mut run.work, out: &mut out }.init(clock::now_us());
        Ok(run)
    }

    /// Continues a stored run with the plan's default settings. The state must belong to this
    /// flow (same content hash) and pass [`Plan::check_state`]: a damaged state is refused
    /// here, before anything runs.
    pub fn resume(self: &Arc<Self>, state: RunState) -> Result<Run, ResumeError> {
        self.resume_with(state, self.defaults.clone())
    }

    /// Continues a stored run with its own settings. A failed run is tried again: what failed
    /// runs again (a failed call is made again, with fresh retries), and everything that
    /// finished is kept. A finished run's `execute()` gives its outputs again.
    pub fn resume_with(self: &Arc<Self>, mut state: RunState, settings: RunSettings) -> Result<Run, ResumeError> {
        if state.flow_hash != self.hash {
            return Err(ResumeError::FlowChanged { state: state.flow_hash, flow: self.hash.clone() });
        }
        if let Outcome::Failed { .. } = state.outcome {
            state.outcome = Outcome::Running;
        }
        self.check_state(&state)?;
        let work = Work::scan(&state);
        Ok(Run::new(Arc::clone(self), state, work, settings, true))
    }

    fn check_inputs(&self, mut given: Map<String, Json>) -> Result<Map<String, Json>, StartError> {
        let flow = &self.flows[0];
        let mut problems = Vec::new();
        let titles: Vec<&str> = flow.inputs.iter().map(|p| p.title()).collect();
        for name in given.keys() {
            if !titles.contains(&name.as_str()) {
                let known =
                    if titles.is_empty() { "it takes no inputs".to_owned() } else { format!("its inputs are {}", titles.join(", ")) };
                let hint =
                    weft_spec::did_you_mean(name, titles.iter().copied()).map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default();
                problems.push(format!("unknown input \"{name}\" for flow \"{}\"{hint}: {known}", flow.name));
            }
        }
        let mut inputs = Map::new();
        for (i, p) in flow.inputs.iter().enumerate() {
            let title = p.title();
            match given.remove(title).or_else(|| p.default().cloned()) {
                Some(value) => {
                    if let Some(why) = self.input_checks.problem(i, &value) {
                        problems.push(format!("input \"{title}\" of flow \"{}\" must be {}: {why}", flow.name, p.type_name()));
                    }
                    inputs.insert(title.to_owned(), value);
                }
                None => problems.push(format!(
                    "missing input \"{title}\" ({}) for flow \"{}\": it has no default, so the run needs a value for it",
                    p.type_name(),
                    flow.name
                )),
            }
        }
        if problems.is_empty() { Ok(inputs) } else { Err(StartError::inputs(problems)) }
    }
}

/// Why a value does not fit a property's schema, if it does not. This compiles the schema: a
/// check made on every run or call uses [`Checks`], compiled with the plan.
pub(crate) fn type_problem(schema: &Json, value: &Json) -> Option<String> {
    problems_of(&validator(schema)?, value)
}

/// A property's schema compiled for [`problems_of`] (its `title` and `default` left out);
/// `None` when it does not compile.
fn validator(schema: &Json) -> Option<jsonschema::Validator> {
    let mut schema = schema.clone();
    if let Json::Object(m) = &mut schema {
        m.remove("title");
        m.remove("default");
    }
    jsonschema::validator_for(&schema).ok()
}

/// Why `value` does not fit the compiled schema (its first three errors), if it does not.
fn problems_of(validator: &jsonschema::Validator, value: &Json) -> Option<String> {
    let errors: Vec<String> = validator.iter_errors(value).take(3).map(|e| e.to_string()).collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The schemas of a list of properties compiled once, when the plan is built, so that checking
/// a value on every run or call (run inputs, an agent's submitted outputs, a client tool's
/// result) does not compile its schema again. A schema that does not compile checks nothing,
/// as [`type_problem`].
#[derive(Default)]
pub(crate) struct Checks(Vec<Option<jsonschema::Validator>>);

impl Checks {
    /// The compiled schemas, in order.
    pub(crate) fn of<'a>(schemas: impl IntoIterator<Item = &'a Json>) -> Checks {
        Checks(schemas.into_iter().map(validator).collect())
    }

    /// Why `value` does not fit the `i`-th schema, if it does not.
    pub(crate) fn problem(&self, i: usize, value: &Json) -> Option<String> {
        self.0.get(i).and_then(Option::as_ref).and_then(|v| problems_of(v, value))
    }
}

impl Run {
    fn new(plan: Arc<Plan>, state: RunState, work: Work, settings: RunSettings, resumed: bool) -> Run {
        let ctx = Arc::new(
            RunContext::new(state.run_id.clone(), settings.index, settings.events.clone(), state.event_seq).streaming(settings.stream),
        );
        let cancel = CancelHandle::with_flag(settings.cancel.clone());
        Run { plan, state, work, settings, ctx, cancel, resumed, saved: 0 }
    }

    fn config(&self) -> RunConfig {
        RunConfig {
            max_steps: self.settings.max_steps,
            max_reasks: self.settings.max_reasks,
            node_timeout_us: self.settings.node_timeout.map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
            events: self.ctx.listening(),
            cancelled: Arc::clone(self.cancel.flag()),
        }
    }

    /// The run's id (a UUID v7, the same after a resume).
    pub fn run_id(&self) -> &str {
        &self.state.run_id
    }

    /// The run's settings.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Cancels the run (see [`CancelHandle`]).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels the run from another task while `execute()` runs.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The run state: serialize it (through [`crate::persist`]) to store the run, inspect it
    /// after a failure.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Takes the state out of the run.
    pub fn into_state(mut self) -> RunState {
        self.state.event_seq = self.ctx.seq();
        self.state
    }

    /// The requests waiting for an answer, by branch path.
    pub fn pending(&self) -> &BTreeMap<String, InputRequest> {
        &self.state.pending
    }

    /// Appends a user message to the run's conversation before it executes (the first message
    /// of a conversation with an agent, say). A run waiting for a user message takes it through
    /// [`Run::submit`] instead.
    pub fn append_user_message(&mut self, text: &str) -> Result<(), SubmitError> {
        if !matches!(self.state.outcome, Outcome::Running) {
            return Err(SubmitError::NotWaiting);
        }
        if !self.state.pending.is_empty() {
            return Err(SubmitError::Invalid("the run waits for an answer: give the message as the answer (submit)".into()));
        }
        self.state.messages.push(crate::state::ConversationMessage::text("USER", text, ""));
        Ok(())
    }

    /// Answers the pending request (JSON: a string for a message; for a client tool, the value
    /// of its single output or an object keyed by output title). Then call `execute()` again.
    pub fn submit(&mut self, answer: Json) -> Result<(), SubmitError> {
        // A finished or failed run takes no answers (and its frames are not checked on resume).
        if !matches!(self.state.outcome, Outcome::Running) {
            return Err(SubmitError::NotWaiting);
        }
        let cfg = self.config();
        let mut out = Vec::new();
        let plan = Arc::clone(&self.plan);
        let result = Machine { plan: &plan, cfg: &cfg, state: &mut self.state, work: &mut self.work, out: &mut out }.submit(
            clock::now_us(),
            None,
            answer,
        );
        for command in out {
            if let Command::Emit { frame, event } = command {
                self.ctx.emit(self.work.path_of(&self.state, frame), &event);
            }
        }
        self.work.gone.clear();
        self.state.event_seq = self.ctx.seq();
        result
    }

    /// Runs until the flow finishes, waits for input, or fails. On failure the state records
    /// the error and stays inspectable; a cancelled run's state stays resumable.
    pub async fn execute(&mut self) -> Result<Status, RunError> {
        match &self.state.outcome {
            Outcome::Finished { outputs, end_branch } => {
                return Ok(finished(outputs, end_branch));
            }
            Outcome::Failed { error } => {
                return Err(RunError::new(RunErrorKind::Over, format!("the run already failed: {}", error.message)));
            }
            Outcome::Running => {}
        }
        let plan = Arc::clone(&self.plan);
        let cfg = self.config();
        let clock = clock::DriverClock::new();
        let mut driver =
            Driver { tasks: JoinSet::new(), calls: foldhash::HashMap::default(), tokens: FrameTokens::default(), out: Vec::new() };
        let resumed = std::mem::take(&mut self.resumed);
        self.feed(&plan, &cfg, &clock, Input::Begin { resumed }, &mut driver.out);
        let result = self.drive(&plan, &cfg, &clock, &mut driver).await;
        if !driver.tasks.is_empty() {
            // Fail fast: cancel every call still in flight and wait until each is dropped (its
            // HTTP request abandoned, its tool process killed) before reporting. A run that
            // finished or waits can still have calls a catch node cancelled: those are gone
            // too before `execute()` returns.
            driver.tasks.shutdown().await;
        }
        // The run's MCP sessions end with it (a stdio server's process group is killed).
        self.ctx.mcp.close_all().await;
        self.state.event_seq = self.ctx.seq();
        result
    }

    async fn drive(&mut self, plan: &Arc<Plan>, cfg: &RunConfig, clock: &clock::DriverClock, d: &mut Driver) -> Result<Status, RunError> {
        // Made once and polled by every round: a future made per round would register with the
        // token (and start a timer) again each time.
        let token = self.cancel.token().clone();
        let on_cancel = token.cancelled();
        let flag = self.settings.cancel.clone();
        let flagged = flag_set(flag.as_deref());
        tokio::pin!(on_cancel, flagged);
        let mut completed = 0;
        loop {
            if let Some(end) = self.dispatch(d) {
                return end;
            }
            if completed > 0 {
                self.checkpoint(std::mem::take(&mut completed));
            }
            if self.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let deadline = Sched::next_deadline(&self.work).map(|us| clock.instant_of(us));
            let joined = tokio::select! {
                biased;
                () = &mut on_cancel => return Err(cancelled()),
                () = &mut flagged => return Err(cancelled()),
                () = sleep_until(deadline) => None,
                joined = d.tasks.join_next_with_id() => joined,
            };
            let Some(mut joined) = joined else {
                if deadline.is_none() && d.tasks.is_empty() {
                    return Err(RunError::new(RunErrorKind::Other, "the run waits for calls that are not running (this is a bug in weft)"));
                }
                self.feed(plan, cfg, clock, Input::Tick, &mut d.out);
                continue;
            };
            // Feed back every call that has finished by now, performing the commands after every
            // few results: the calls they unblock start without waiting for the whole batch (at
            // 1,024 in flight a batch holds hundreds of results), and the tasks spawned together
            // still wake an idle worker thread once, not once each.
            let mut fed = 0;
            loop {
                if let Some((call, done)) = d.result(joined) {
                    self.feed(plan, cfg, clock, Input::Result { call, done }, &mut d.out);
                    completed += 1;
                    fed += 1;
                    if fed % RESULTS_PER_DISPATCH == 0
                        && let Some(end) = self.dispatch(d)
                    {
                        return end;
                    }
                }
                match d.tasks.try_join_next_with_id() {
                    Some(next) => joined = next,
                    None => break,
                }
            }
        }
    }

    /// Hands one input to the scheduler, a jq query it evaluates bounded by the earliest node
    /// deadline and the run's cancel flag.
    fn feed(&mut self, plan: &Plan, cfg: &RunConfig, clock: &clock::DriverClock, input: Input, out: &mut Vec<crate::sched::Command>) {
        let now = clock.now_us();
        let interrupt = self.interrupt(cfg, clock, now);
        let mut machine = Machine { plan, cfg, state: &mut self.state, work: &mut self.work, out };
        weft_prompt::with_interrupt(interrupt, || machine.handle(now, input));
    }

    /// Counts `completed` calls for the checkpoint schedule, and hands a copy of the state over
    /// when a checkpoint is due that this run has not saved.
    fn checkpoint(&mut self, completed: u64) {
        let Some(checkpoints) = self.settings.checkpoints.as_deref() else { return };
        let generation = checkpoints.note(completed, std::time::Instant::now());
        if generation > self.saved {
            self.saved = generation;
            let mut copy = self.state.clone();
            copy.event_seq = self.ctx.seq();
            checkpoints.save(self.settings.index, copy);
        }
    }

    /// Performs the commands the scheduler sent out; the run's end when one ends it.
    fn dispatch(&mut self, d: &mut Driver) -> Option<Result<Status, RunError>> {
        let mut commands = std::mem::take(&mut d.out);
        let mut end = None;
        for command in commands.drain(..) {
            match command {
                Command::Perform { call, effect } => self.spawn(d, call, effect),
                Command::Emit { frame, event } => self.ctx.emit(self.work.path_of(&self.state, frame), &event),
                Command::Separate { frame } => {
                    d.tokens.separate(self.cancel.token(), frame, &self.ancestors(frame));
                }
                Command::Cancel { frame } => d.tokens.cancel(frame),
                Command::Wait { request } => end = Some(Ok(Status::InputRequired { request })),
                Command::Finished => {
                    end = Some(match &self.state.outcome {
                        Outcome::Finished { outputs, end_branch } => Ok(finished(outputs, end_branch)),
                        _ => Err(RunError::new(RunErrorKind::Other, "the run finished without an outcome (this is a bug in weft)")),
                    });
                }
                Command::Failed { error } => end = Some(Err(error)),
            }
            if end.is_some() {
                return end;
            }
        }
        // The buffer goes back, empty, with its capacity, unless a round of many commands grew
        // it: it would be held, unused, while the calls are out (a few kilobytes per run).
        if commands.capacity() <= KEPT_COMMANDS {
            d.out = commands;
        }
        self.work.gone.clear();
        if d.tokens.len() > 2 * d.calls.len() + 64 {
            let frames = &self.state.frames;
            d.tokens.prune(|fid| frames.contains_key(&fid));
        }
        None
    }

    /// Spawns the task of an effect, under the token of its frame's nearest ancestor that can be
    /// cancelled on its own, if any (the run's cancellation aborts every task).
    fn spawn(&self, d: &mut Driver, call: u64, effect: Effect) {
        let cancel = if d.tokens.is_empty() { None } else { d.tokens.of(call, &self.ancestors(call)) };
        let path = self.state.frames.get(&call).map(|f| f.path.clone()).unwrap_or_default();
        let kind = effect.kind();
        let site = Site { run: Arc::clone(&self.ctx), path, cancel };
        // Boxed: the future is large (the effect, the limiter wait, the call), and a task holding it inline
        // is moved into its cell whole, costing copies and allocator churn per call.
        let handle = d.tasks.spawn(Box::pin(perform(effect, site)));
        d.calls.insert(handle.id(), (call, kind));
    }

    /// The ancestors of frame `fid`, nearest first.
    fn ancestors(&self, fid: u64) -> Vec<u64> {
        let mut parents = Vec::new();
        let mut at = self.state.frames.get(&fid).and_then(|f| f.parent.as_ref().map(|(p, _)| *p));
        while let Some(p) = at {
            parents.push(p);
            at = self.state.frames.get(&p).and_then(|f| f.parent.as_ref().map(|(p, _)| *p));
            if parents.len() > self.state.frames.len() {
                break;
            }
        }
        parents
    }

    /// What stops a jq query the engine evaluates now: the earliest node deadline (a node started
    /// now included) and the run's cancel flag.
    fn interrupt(&self, cfg: &RunConfig, clock: &clock::DriverClock, now: u64) -> weft_prompt::Interrupt {
        let started_now = cfg.node_timeout_us.map(|t| now.saturating_add(t));
        let deadline = match (Sched::next_deadline(&self.work), started_now) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        weft_prompt::Interrupt {
            deadline: deadline.map(|us| clock.instant_of(us).into_std()),
            cancel: Some(Arc::clone(self.cancel.flag())),
        }
    }
}

/// The capacity of the command buffer a run keeps between two rounds.
const KEPT_COMMANDS: usize = 8;

/// Results fed to the scheduler between two rounds of performing its commands.
const RESULTS_PER_DISPATCH: usize = 32;

/// The driver's side of one `execute()`: the call tasks, and which call each task performs.
struct Driver {
    tasks: JoinSet<Option<Done>>,
    calls: foldhash::HashMap<tokio::task::Id, (u64, EffectKind)>,
    tokens: FrameTokens,
    out: Vec<Command>,
}

impl Driver {
    /// The call id and result of a finished task; a panicking task is its call's failure (a
    /// native tool or a model that panicked fails its node, not the process); a cancelled one
    /// has no result.
    fn result(&mut self, joined: Result<(tokio::task::Id, Option<Done>), tokio::task::JoinError>) -> Option<(u64, Done)> {
        match joined {
            Ok((id, result)) => {
                let (call, _) = self.calls.remove(&id)?;
                Some((call, result?))
            }
            Err(e) => {
                let (call, kind) = self.calls.remove(&e.id())?;
                if !e.is_panic() {
                    return None;
                }
                Some((call, Done::panicked(kind, &panic_text(e.into_panic()))))
            }
        }
    }
}

/// What `execute()` gives for a finished run (its outcome stays in the state).
fn finished(outputs: &Map<String, Json>, end_branch: &str) -> Status {
    Status::Finished { outputs: outputs.clone(), end_branch: end_branch.to_owned() }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}

fn cancelled() -> RunError {
    RunError::new(RunErrorKind::Cancelled, "the run was cancelled; its calls in flight were stopped and its state can be resumed")
}

/// Resolves once the settings' cancel flag (set by a Ctrl-C handler, say) is set: checked every
/// 20 ms, never when there is no flag (a [`CancelHandle`] wakes the driver at once).
async fn flag_set(flag: Option<&std::sync::atomic::AtomicBool>) {
    let Some(flag) = flag else { return std::future::pending().await };
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The driver's clock: the wall clock at the start of an `execute()`, advanced by tokio's
/// monotonic clock (so a test under tokio's paused clock sees deadlines pass as it advances).
pub(crate) mod clock {
    use std::time::Duration;

    pub(crate) struct DriverClock {
        epoch_us: u64,
        start: tokio::time::Instant,
    }

    impl DriverClock {
        pub(crate) fn new() -> DriverClock {
            DriverClock { epoch_us: now_us(), start: tokio::time::Instant::now() }
        }

        /// Microseconds since the Unix epoch.
        pub(crate) fn now_us(&self) -> u64 {
            self.epoch_us.saturating_add(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
        }

        /// The instant of `us` (µs since the Unix epoch) on tokio's clock.
        pub(crate) fn instant_of(&self, us: u64) -> tokio::time::Instant {
            let after = Duration::from_micros(us.saturating_sub(self.epoch_us));
            self.start.checked_add(after).unwrap_or_else(|| self.start + Duration::from_secs(86_400 * 365 * 30))
        }
    }

    /// The wall clock outside an `execute()`.
    pub(crate) fn now_us() -> u64 {
        crate::context::now_us()
    }
}
