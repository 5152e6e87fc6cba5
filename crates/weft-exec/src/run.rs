//! The driver: a [`Run`] owns a run state and performs the calls the scheduler asks for, on
//! tokio, as tasks of the run's `JoinSet` (dropping the run cancels them).

use crate::error::{ResumeError, RunError, RunErrorKind, StartError, SubmitError};
use crate::event::Event;
use crate::nodes::{self, CallResult};
use crate::plan::Plan;
use crate::sched::{Sched, Work};
use crate::state::{InputRequest, Outcome, Position, RunState, STATE_FORMAT};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
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

/// One execution of a flow.
pub struct Run {
    plan: Arc<Plan>,
    state: RunState,
    started: HashMap<u64, Instant>,
    work: Work,
    resumed: bool,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("state", &self.state).finish_non_exhaustive()
    }
}

impl Plan {
    /// Starts a run with the given inputs (checked against the flow's inputs: unknown names,
    /// missing required inputs and wrong types are all reported).
    pub fn start(self: &Arc<Self>, inputs: Map<String, Json>) -> Result<Run, StartError> {
        let inputs = self.check_inputs(inputs)?;
        let mut state = RunState {
            format: STATE_FORMAT,
            flow_hash: self.hash.clone(),
            inputs,
            frames: BTreeMap::new(),
            next_frame: 0,
            messages: Vec::new(),
            pending: BTreeMap::new(),
            steps: BTreeMap::new(),
            llm_calls: BTreeMap::new(),
            usage: Default::default(),
            seq: 0,
            outcome: Outcome::Running,
        };
        let (mut started, mut work) = (HashMap::new(), Work::default());
        self.sched(&mut started, &mut work).init(&mut state);
        Ok(Run { plan: Arc::clone(self), state, started, work, resumed: false })
    }

    /// Continues a stored run. The state must belong to this flow (same content hash) and pass
    /// [`Plan::check_state`]: a damaged state is refused here, before anything runs.
    pub fn resume(self: &Arc<Self>, state: RunState) -> Result<Run, ResumeError> {
        if state.format != STATE_FORMAT {
            return Err(ResumeError::Format { found: state.format, expected: STATE_FORMAT });
        }
        if state.flow_hash != self.hash {
            return Err(ResumeError::FlowChanged { state: state.flow_hash, flow: self.hash.clone() });
        }
        self.check_state(&state)?;
        let work = Work::scan(&state);
        Ok(Run { plan: Arc::clone(self), state, started: HashMap::new(), work, resumed: true })
    }

    fn sched<'a>(&'a self, started: &'a mut HashMap<u64, Instant>, work: &'a mut Work) -> Sched<'a> {
        Sched {
            work,
            plan: self,
            events: self.options.events.as_deref(),
            max_steps: self.options.max_steps,
            max_reasks: self.options.max_reasks,
            started,
        }
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
        for p in &flow.inputs {
            let title = p.title();
            match given.remove(title).or_else(|| p.default().cloned()) {
                Some(value) => {
                    if let Some(why) = type_problem(&p.schema, &value) {
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
        if problems.is_empty() { Ok(inputs) } else { Err(StartError { problems }) }
    }
}

/// Why a value does not fit a property's schema, if it does not.
pub(crate) fn type_problem(schema: &Json, value: &Json) -> Option<String> {
    let mut schema = schema.clone();
    if let Json::Object(m) = &mut schema {
        m.remove("title");
        m.remove("default");
    }
    let validator = jsonschema::validator_for(&schema).ok()?;
    let errors: Vec<String> = validator.iter_errors(value).take(3).map(|e| e.to_string()).collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

impl Run {
    /// The run state: serialize it to store the run, inspect it after a failure.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Takes the state out of the run.
    pub fn into_state(self) -> RunState {
        self.state
    }

    /// The requests waiting for an answer, by branch path.
    pub fn pending(&self) -> &BTreeMap<String, InputRequest> {
        &self.state.pending
    }

    /// Answers the pending request (JSON: a string for a message; for a client tool, the value
    /// of its single output or an object keyed by output title). Then call `execute()` again.
    pub fn submit(&mut self, answer: Json) -> Result<(), SubmitError> {
        // A finished or failed run takes no answers (and its frames are not checked on resume).
        if !matches!(self.state.outcome, Outcome::Running) {
            return Err(SubmitError::NotWaiting);
        }
        let plan = Arc::clone(&self.plan);
        plan.sched(&mut self.started, &mut self.work).submit(&mut self.state, None, answer)
    }

    /// Runs until the flow finishes, waits for input, or fails. On failure the state records
    /// the error and stays inspectable.
    pub async fn execute(&mut self) -> Result<Status, RunError> {
        let t0 = Instant::now();
        match &self.state.outcome {
            Outcome::Finished { outputs, end_branch } => {
                return Ok(Status::Finished { outputs: outputs.clone(), end_branch: end_branch.clone() });
            }
            Outcome::Failed { error } => return Err(RunError::new(RunErrorKind::Over, None, format!("the run already failed: {error}"))),
            Outcome::Running => {}
        }
        let plan = Arc::clone(&self.plan);
        if let Some(sink) = plan.options.events.as_deref() {
            sink.emit(&Event::RunStarted { flow: plan.flows[0].name.clone(), resumed: self.resumed });
        }
        self.resumed = false;
        let result = self.drive(&plan, t0).await;
        if let Err(e) = &result
            && e.kind != RunErrorKind::Cancelled
        {
            self.state.outcome = Outcome::Failed { error: e.message.clone() };
            if let Some(sink) = plan.options.events.as_deref() {
                sink.emit(&Event::RunFailed { error: e.message.clone() });
            }
        }
        result
    }

    async fn drive(&mut self, plan: &Arc<Plan>, t0: Instant) -> Result<Status, RunError> {
        let mut tasks: JoinSet<(u64, CallResult)> = JoinSet::new();
        // Calls in flight when an earlier `execute()` was dropped are made again.
        self.work = Work::scan(&self.state);
        let result = self.drive_calls(plan, t0, &mut tasks).await;
        if result.is_err() {
            // Fail fast: cancel every call still in flight and wait until each is dropped (its
            // HTTP request abandoned, its tool process killed) before reporting.
            tasks.shutdown().await;
        }
        result
    }

    async fn drive_calls(&mut self, plan: &Arc<Plan>, t0: Instant, tasks: &mut JoinSet<(u64, CallResult)>) -> Result<Status, RunError> {
        let events = plan.options.events.clone();
        let mut in_flight: HashSet<u64> = HashSet::new();
        loop {
            weft_prompt::with_interrupt(self.interrupt(plan), || plan.sched(&mut self.started, &mut self.work).advance(&mut self.state))?;
            for fid in std::mem::take(&mut self.work.busy) {
                if !in_flight.contains(&fid) && self.launch(plan, fid, tasks) {
                    in_flight.insert(fid);
                }
            }
            if in_flight.is_empty() {
                if let Outcome::Finished { outputs, end_branch } = &self.state.outcome {
                    if let Some(sink) = events.as_deref() {
                        sink.emit(&Event::RunFinished {
                            outputs: outputs.clone(),
                            end_branch: end_branch.clone(),
                            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
                        });
                    }
                    return Ok(Status::Finished { outputs: outputs.clone(), end_branch: end_branch.clone() });
                }
                if let Some(request) = self.state.pending.values().next() {
                    return Ok(Status::InputRequired { request: request.clone() });
                }
                return Err(RunError::new(
                    RunErrorKind::Other,
                    None,
                    "the run stopped with nothing left to do and no end reached (this is a bug in weft)",
                ));
            }
            let joined = match self.deadline(plan) {
                None => tasks.join_next().await,
                Some((deadline, fid)) => match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
                    Ok(joined) => joined,
                    Err(_) => return Err(self.timed_out(plan, fid)),
                },
            };
            let Some(mut joined) = joined else { continue };
            // Feed back every call that has finished by now before looking for more work.
            loop {
                let (fid, result) = joined
                    .map_err(|e| RunError::new(RunErrorKind::Other, None, format!("a call task failed (this is a bug in weft): {e}")))?;
                in_flight.remove(&fid);
                weft_prompt::with_interrupt(self.interrupt(plan), || {
                    plan.sched(&mut self.started, &mut self.work).complete(&mut self.state, fid, result)
                })?;
                match tasks.try_join_next() {
                    Some(next) => joined = next,
                    None => break,
                }
            }
        }
    }

    /// Spawns the call frame `fid` waits for; false when it waits for none.
    fn launch(&self, plan: &Arc<Plan>, fid: u64, tasks: &mut JoinSet<(u64, CallResult)>) -> bool {
        let Some(frame) = self.state.frames.get(&fid) else { return false };
        let Position::Busy { node, call } = &frame.position else { return false };
        let Some(idx) = plan.flow_by_id(&frame.flow).and_then(|flow| plan.node_in(flow, node)) else { return false };
        let Some(task) = nodes::launch(&plan.nodes[idx], call, plan.options.events.clone()) else { return false };
        tasks.spawn(async move { (fid, task.await) });
        true
    }

    /// What stops a jq query the engine evaluates now: the earliest node deadline (a node started
    /// now included) and the plan's cancel flag.
    fn interrupt(&self, plan: &Plan) -> weft_prompt::Interrupt {
        let now_plus = plan.options.node_timeout.and_then(|t| Instant::now().checked_add(t));
        let deadline = match (self.deadline(plan).map(|(d, _)| d), now_plus) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        weft_prompt::Interrupt { deadline, cancel: plan.options.cancel.clone() }
    }

    /// The earliest moment a running node exceeds the node timeout, and its frame.
    fn deadline(&self, plan: &Plan) -> Option<(Instant, u64)> {
        let timeout = plan.options.node_timeout?;
        // A timeout too long to add to an instant (`Duration::MAX`) is no deadline at all.
        self.started.iter().filter_map(|(fid, t)| Some((t.checked_add(timeout)?, *fid))).min()
    }

    fn timed_out(&self, plan: &Plan, fid: u64) -> RunError {
        let timeout = plan.options.node_timeout.unwrap_or_default();
        let node = self.state.frames.get(&fid).and_then(|f| match &f.position {
            Position::Busy { node, .. } | Position::InChild { node, .. } | Position::InBranches { node, .. } => {
                plan.flow_by_id(&f.flow).and_then(|flow| plan.node_in(flow, node)).map(|i| &plan.nodes[i])
            }
            _ => None,
        });
        let error = match node {
            Some(node) => crate::sched::node_error(
                RunErrorKind::Timeout,
                node,
                &format!(
                    "did not finish within the node timeout of {}; everything it had in flight was cancelled. Raise the timeout (--node-timeout) if the node needs longer",
                    humantime(timeout)
                ),
            ),
            None => RunError::new(
                RunErrorKind::Timeout,
                None,
                format!("a node did not finish within the node timeout of {}", humantime(timeout)),
            ),
        };
        let mut started = HashMap::new();
        let mut work = Work::default();
        plan.sched(&mut started, &mut work).locate(&self.state, fid, error)
    }
}

/// `1.5 s`, `250 ms`.
fn humantime(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}
