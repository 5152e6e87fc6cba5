//! jq queries from documents (`PluginJsonOutputParser.properties`, `unpack_input`), sandboxed.
//!
//! A flow document is untrusted input, so a query is held to three rules:
//!
//! 1. **Only data filters.** The program is compiled against an allowlist of jaq's native filters
//!    and standard definitions that compute on the query's input ([`ALLOWED_NATIVES`]): nothing that
//!    ends the process (`halt`, `halt_error`), reads the environment (`env`, `$ENV`), reads input
//!    beyond the value given (`input`, `inputs`), writes to stderr (`debug`, `stderr`), reads the
//!    clock or the time zone (`now`, `localtime`), or loads a module (`include`, `import`). The
//!    decision is made on the parsed program (an undefined name), so `def h: halt; h` is refused and
//!    `.halt` is an ordinary field. [`JqQuery::compile`] reports a refused name as
//!    [`JqError::Refused`].
//! 2. **Bounded.** Every evaluation runs under a [`JqLimits`] budget: filter steps (each filter
//!    evaluation and each `range` item) and bytes allocated for new strings and array items. jaq has
//!    no fuel hook, so Weft vendors jaq-core and jaq-json with a small patch
//!    (`vendor/jaq-core/src/budget.rs`) that charges both and stops the evaluation with an error
//!    that `try`, `?` and `//` cannot swallow.
//! 3. **Interruptible.** The caller's [`Interrupt`] (a deadline and a cancel flag, installed with
//!    [`with_interrupt`]) is checked every 1,024 steps, so an evaluation stops within
//!    milliseconds of a node deadline or a Ctrl-C.
//!
//! Compiling and evaluating happen on a thread with a large stack, so a deeply nested query or
//! value cannot overflow the caller's stack (the loader runs on small stacks): a query compiles on
//! a short-lived thread, and evaluations run on a worker thread kept per calling thread, retired
//! after an evaluation that was stopped (so its memory is released).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use jaq_core::budget::{Budget, Stop};
use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::Fun;
use jaq_core::{Compiler, Ctx, Vars, unwrap_valr};
use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value as Json};

use crate::pyfmt::py_json_dumps;

/// The longest query accepted (bytes). Data queries are a line or two.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The deepest value a query result may be (arrays and objects), as `serde_json` reads JSON.
const MAX_RESULT_DEPTH: usize = 512;

/// Stack of the thread that compiles or evaluates a query: deep recursion of jaq's parser and
/// interpreter, and the recursive drop of a deeply nested value, stay far from its end. Only the
/// pages touched are committed.
const STACK_BYTES: usize = 256 << 20;

/// Steps, bytes and stack of the first attempt, on the caller's thread: a value built in 2,000
/// steps is at most a few hundred levels deep, so dropping it fits any thread's stack.
const INLINE_STEPS: u64 = 2_000;
const INLINE_BYTES: u64 = 1 << 20;
const INLINE_STACK_GUARD: usize = 128 << 10;

/// Stack use past which an evaluation is stopped (a recursion that does not end).
const STACK_GUARD_BYTES: usize = 32 << 20;

/// jaq-core's native filters a data query may use.
const CORE_NATIVES: &[&str] =
    &["error_empty", "path", "path_value", "range", "keys_unsorted", "key_values", "first", "last", "limit", "skip"];

/// jaq-std's and jaq-json's native filters a data query may use: strings, arrays, numbers,
/// regular expressions (jaq's regex engine runs in linear time), dates in UTC, JSON text.
const STD_NATIVES: &[&str] = &[
    "floor",
    "round",
    "ceil",
    "utf8bytelength",
    "explode",
    "implode",
    "ascii_downcase",
    "ascii_upcase",
    "reverse",
    "sort",
    "sort_by",
    "group_by",
    "min_by_or_empty",
    "max_by_or_empty",
    "startswith",
    "endswith",
    "ltrimstr",
    "rtrimstr",
    "trim",
    "ltrim",
    "rtrim",
    "escape_sh",
    "escape_html",
    "unescape_html",
    "encode_uri",
    "decode_uri",
    "encode_base64",
    "decode_base64",
    "matches",
    "split_matches",
    "split_",
    "fromdateiso8601",
    "todateiso8601",
    "strftime",
    "gmtime",
    "strptime",
    "mktime",
    "fromjson",
    "tojson",
    "tobytes",
    "length",
    "contains",
    "has",
    "indices",
    "bsearch",
];

/// jaq-std's math filters (pure functions of numbers).
const MATH_NATIVES: &[&str] = &[
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cbrt",
    "cos",
    "cosh",
    "erf",
    "erfc",
    "exp",
    "exp10",
    "exp2",
    "expm1",
    "fabs",
    "frexp",
    "ilogb",
    "j0",
    "j1",
    "lgamma",
    "log",
    "log10",
    "log1p",
    "log2",
    "modf",
    "nearbyint",
    "rint",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "tgamma",
    "trunc",
    "y0",
    "y1",
    "atan2",
    "copysign",
    "fdim",
    "fmax",
    "fmin",
    "fmod",
    "hypot",
    "jn",
    "ldexp",
    "nextafter",
    "pow",
    "remainder",
    "scalbln",
    "scalbn",
    "yn",
    "fma",
    "lgamma_r",
    "significand",
    "drem",
    "logb",
    "gamma",
    "frexp",
];

/// Every native filter a data query may use.
pub const ALLOWED_NATIVES: &[&[&str]] = &[CORE_NATIVES, STD_NATIVES, MATH_NATIVES];

/// Standard-library definitions left out because they reach outside the query's input.
const DENIED_DEFS: &[&str] = &["stderr", "debug", "halt", "halt_error", "input", "inputs", "env", "now", "localtime", "strflocaltime"];

/// Names a document may not use, with what they would do.
const REFUSED: &[(&str, &str)] = &[
    ("halt", "it ends the whole process"),
    ("halt_error", "it ends the whole process"),
    ("env", "it reads the environment (API keys among it)"),
    ("$ENV", "it reads the environment (API keys among it)"),
    ("input", "it reads input other than the value given to the query"),
    ("inputs", "it reads input other than the value given to the query"),
    ("input_filename", "it reads input other than the value given to the query"),
    ("input_line_number", "it reads input other than the value given to the query"),
    ("debug", "it writes to stderr"),
    ("stderr", "it writes to stderr"),
    ("now", "it reads the clock, so replays would differ"),
    ("localtime", "it reads the machine's time zone"),
    ("strflocaltime", "it reads the machine's time zone"),
    ("$__loc__", "it reads the query's location"),
    ("$__prog_args", "it reads the program's arguments"),
    ("get_search_list", "it reads the module search path"),
];

/// The budget of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JqLimits {
    /// The most filter steps (each filter evaluation and each `range` item).
    pub steps: u64,
    /// The most bytes allocated for new strings and array items, summed over the evaluation.
    pub bytes: u64,
}

impl JqLimits {
    /// The defaults: 1,000,000 steps and 64 MiB. A query over a model's answer or a map item takes
    /// a few thousand steps; `[range(1e9)] | length` stops in well under a second.
    pub const DEFAULT: JqLimits = JqLimits { steps: 1_000_000, bytes: 64 << 20 };
}

impl Default for JqLimits {
    fn default() -> Self {
        JqLimits::DEFAULT
    }
}

/// What stops an evaluation from outside: a deadline and a cancel flag.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// The evaluation stops once this instant has passed.
    pub deadline: Option<Instant>,
    /// The evaluation stops once this flag is set (from any thread).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Interrupt {
    fn fired(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

thread_local! {
    static AMBIENT: RefCell<Interrupt> = RefCell::new(Interrupt::default());
}

/// Runs `f` with `interrupt` applying to every query evaluated on this thread meanwhile (output
/// parsers and `unpack_input` are evaluated deep inside reply handling, which has no parameter for
/// it).
pub fn with_interrupt<R>(interrupt: Interrupt, f: impl FnOnce() -> R) -> R {
    let outer = AMBIENT.with(|a| a.replace(interrupt));
    struct Restore(Option<Interrupt>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                AMBIENT.with(|a| *a.borrow_mut() = outer);
            }
        }
    }
    let _restore = Restore(Some(outer));
    f()
}

/// Why a query cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JqError {
    /// The query uses a filter or variable that reaches outside its input.
    #[error("`{name}` is not allowed in a flow's jq query: {why}; a query may only compute on the value it is given")]
    Refused {
        /// The filter or variable.
        name: String,
        /// What it would do.
        why: String,
    },
    /// The query does not parse or names something undefined.
    #[error("{0}")]
    Syntax(String),
    /// The query is longer than [`MAX_QUERY_BYTES`].
    #[error("the query is {0} bytes long, more than the {MAX_QUERY_BYTES} allowed")]
    TooLong(usize),
}

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JqFailure {
    /// The evaluation went over its step budget.
    #[error("the jq query `{query}` was stopped after {steps} steps (a query that does not end, or too much work for a data query)")]
    Steps {
        /// The query.
        query: String,
        /// The step budget.
        steps: u64,
    },
    /// The evaluation allocated more than its byte budget.
    #[error("the jq query `{query}` was stopped after allocating {bytes} bytes (a query whose output grows without bound)")]
    Bytes {
        /// The query.
        query: String,
        /// The byte budget.
        bytes: u64,
    },
    /// The evaluation recursed too deeply.
    #[error("the jq query `{query}` was stopped: it recursed too deeply (a recursion that does not end)")]
    Depth {
        /// The query.
        query: String,
    },
    /// The result nests deeper than JSON values may (512 levels).
    #[error("the jq query `{query}` gave a value nested deeper than {MAX_RESULT_DEPTH} levels")]
    ResultTooDeep {
        /// The query.
        query: String,
    },
    /// No thread could be started for the evaluation.
    #[error("{}", NO_THREAD)]
    NoThread,
    /// The deadline passed or the run was cancelled.
    #[error("the jq query `{query}` was stopped: the node's deadline passed or the run was cancelled")]
    Interrupted {
        /// The query.
        query: String,
    },
}

/// A compiled jq query (jaq, with the data filters of jaq's standard library).
#[derive(Clone)]
pub struct JqQuery {
    source: Arc<str>,
    filter: Arc<jaq_core::Filter<JustLut<Val>>>,
    limits: JqLimits,
}

impl fmt::Debug for JqQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JqQuery").field(&self.source).finish()
    }
}

fn allowed_funs() -> impl Iterator<Item = Fun<JustLut<Val>>> {
    let allowed = |name: &str| ALLOWED_NATIVES.iter().any(|group| group.contains(&name));
    jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs()).filter(move |(name, _, _)| allowed(name))
}

fn refusal(name: &str) -> Option<JqError> {
    let bare = name.split('/').next().unwrap_or(name);
    REFUSED.iter().find(|(n, _)| *n == bare).map(|(n, why)| JqError::Refused { name: (*n).to_owned(), why: (*why).to_owned() })
}

/// Queries compiled in this process, by source: a document repeats the same few queries (`.` in
/// every ExtendedMapNode), and compiling one loads jaq's standard definitions again (about a
/// millisecond). Bounded: emptied when it holds [`CACHED_QUERIES`].
type Compiled = Arc<jaq_core::Filter<JustLut<Val>>>;

const CACHED_QUERIES: usize = 256;

fn cache() -> &'static std::sync::Mutex<std::collections::HashMap<String, Compiled>> {
    static CACHE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Compiled>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cached(source: &str) -> Option<Compiled> {
    cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(source).cloned()
}

fn remember(source: &str, filter: &Compiled) {
    let mut cache = cache().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= CACHED_QUERIES {
        cache.clear();
    }
    cache.insert(source.to_owned(), Arc::clone(filter));
}

fn compile_here(source: &str) -> Result<jaq_core::Filter<JustLut<Val>>, JqError> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs()).filter(|d| !DENIED_DEFS.contains(&d.name));
    // No module reader: `include` and `import` fail to load.
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader.load(&arena, File { code: source, path: () }).map_err(|errors| {
        let mut parts = Vec::new();
        for (_, e) in errors {
            match e {
                jaq_core::load::Error::Io(v) => parts.extend(
                    v.into_iter().map(|(p, _)| format!("`{p}` cannot be loaded: a flow's jq query cannot include or import modules")),
                ),
                jaq_core::load::Error::Lex(v) => {
                    parts.extend(v.into_iter().map(|(exp, at)| format!("expected {} at `{}`", exp.as_str(), excerpt(at))))
                }
                jaq_core::load::Error::Parse(v) => {
                    parts.extend(v.into_iter().map(|(exp, at)| format!("expected {} at `{}`", exp.as_str(), excerpt(at))))
                }
            }
        }
        JqError::Syntax(parts.join("; "))
    })?;
    // Data imports (`import "file" as $x;`) would need the host to read the file: refused.
    let mut imports = Vec::new();
    let _ = jaq_core::load::import(&modules, |import| {
        imports.push(format!("`{}` cannot be loaded: a flow's jq query cannot include or import modules", import.path));
        Ok(())
    });
    if !imports.is_empty() {
        return Err(JqError::Syntax(imports.join("; ")));
    }
    Compiler::default().with_funs(allowed_funs()).compile(modules).map_err(|errors| {
        let mut parts = Vec::new();
        for (_, undefined) in errors {
            for (name, kind) in undefined {
                if let Some(refused) = refusal(name) {
                    return refused;
                }
                parts.push(format!("undefined {} `{name}`", kind.as_str()));
            }
        }
        JqError::Syntax(parts.join("; "))
    })
}

/// Runs `f` on a fresh thread with a large stack and returns its result, or `None` when no
/// thread can be started (the process is out of threads or memory). A panic in `f` is resumed
/// here, as if `f` had run on this thread.
fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().name("weft-jq".into()).stack_size(STACK_BYTES).spawn_scoped(s, f).ok()?;
        match handle.join() {
            Ok(r) => Some(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

const NO_THREAD: &str = "the jq query could not be evaluated: no thread could be started for it (the process is out of threads or memory), or its evaluation failed unexpectedly";

type Job = Box<dyn FnOnce() + Send>;

/// A thread with a large stack that evaluates queries for one calling thread, one at a time.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

thread_local! {
    /// This thread's evaluation worker: starting a thread per evaluation costs far more than the
    /// evaluation of a data query.
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

fn spawn_worker() -> Option<Worker> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("weft-jq".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            while let Ok(job) = queue.recv() {
                job();
            }
        })
        .ok()?;
    Some(Worker { jobs })
}

/// Runs `job` on this thread's evaluation worker and waits for its result. The job says whether
/// the worker must be retired afterwards (an evaluation that was stopped may have grown the
/// worker's stack or heap: a new worker starts clean, and the old one's memory is released).
/// `None` when no worker could be started or the job failed.
fn on_worker<R: Send + 'static>(job: impl FnOnce() -> (R, bool) + Send + 'static) -> Option<R> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let mut job: Job = Box::new(move || {
        let _ = done.send(job());
    });
    let mut worker = match WORKER.with(|w| w.borrow_mut().take()) {
        Some(w) => w,
        None => spawn_worker()?,
    };
    if let Err(std::sync::mpsc::SendError(returned)) = worker.jobs.send(job) {
        // The worker is gone (a job of its failed): start another.
        job = returned;
        worker = spawn_worker()?;
        worker.jobs.send(job).ok()?;
    }
    let (r, retire) = result.recv().ok()?;
    if !retire {
        WORKER.with(|w| *w.borrow_mut() = Some(worker));
    }
    Some(r)
}

impl JqQuery {
    /// Compiles a query with the default [`JqLimits`].
    pub fn compile(source: &str) -> Result<JqQuery, JqError> {
        if source.len() > MAX_QUERY_BYTES {
            return Err(JqError::TooLong(source.len()));
        }
        if let Some(filter) = cached(source) {
            return Ok(JqQuery { source: Arc::from(source), filter, limits: JqLimits::DEFAULT });
        }
        let filter = on_big_stack(|| compile_here(source)).unwrap_or_else(|| Err(JqError::Syntax(NO_THREAD.into())))?;
        let filter = Arc::new(filter);
        remember(source, &filter);
        Ok(JqQuery { source: Arc::from(source), filter, limits: JqLimits::DEFAULT })
    }

    /// The same query with other limits.
    pub fn with_limits(mut self, limits: JqLimits) -> JqQuery {
        self.limits = limits;
        self
    }

    /// The query text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first result of the query on the value, `Ok(None)` when the query yields nothing or
    /// fails first (Python's `jq.compile(q).input_text(t).first()` raising), or why the evaluation
    /// was stopped. The interrupt installed with [`with_interrupt`] applies.
    pub fn eval_first(&self, input: &Json) -> Result<Option<Json>, JqFailure> {
        Ok(match self.eval(input)? {
            First::Value(v) => Some(v),
            First::Empty | First::Raised(_) => None,
        })
    }

    /// The first result of the query on the value, telling a query that yields nothing from one
    /// that raises an error (Python's `.first()` raising `StopIteration` or `ValueError`), or why
    /// the evaluation was stopped. The interrupt installed with [`with_interrupt`] applies.
    pub fn eval(&self, input: &Json) -> Result<First, JqFailure> {
        // The identity (map nodes' usual `unpack_input`) needs no round trip through jaq.
        if self.source.trim() == "." {
            return Ok(First::Value(input.clone()));
        }
        let interrupt = AMBIENT.with(|a| a.borrow().clone());
        if interrupt.fired() {
            return Err(JqFailure::Interrupted { query: self.source.to_string() });
        }
        let limits = self.limits;
        let query = || self.source.to_string();
        // Most data queries take a few dozen steps: first try on this thread, with a budget small
        // enough that nothing it builds can be deep enough to overflow this thread's stack when
        // dropped. Evaluating has no effect, so a query that needs more runs again, from the
        // start, on the worker with the full budget.
        let small = JqLimits { steps: INLINE_STEPS.min(limits.steps), bytes: INLINE_BYTES.min(limits.bytes) };
        let here = evaluate(&self.filter, input, small, interrupt.clone(), INLINE_STACK_GUARD);
        let outcome = match here {
            (_, Some(Stop::Steps | Stop::Bytes | Stop::Depth)) if small != limits || matches!(here.1, Some(Stop::Depth)) => {
                let filter = Arc::clone(&self.filter);
                let input = input.clone();
                on_worker(move || {
                    let outcome = evaluate(&filter, &input, limits, interrupt, STACK_GUARD_BYTES);
                    let retire = outcome.1.is_some();
                    (outcome, retire)
                })
            }
            done => Some(done),
        };
        match outcome {
            None => Err(JqFailure::NoThread),
            Some((Err(TooDeep), None)) => Err(JqFailure::ResultTooDeep { query: query() }),
            Some((Ok(value), None)) => Ok(value),
            Some((_, Some(Stop::Steps))) => Err(JqFailure::Steps { query: query(), steps: limits.steps }),
            Some((_, Some(Stop::Bytes))) => Err(JqFailure::Bytes { query: query(), bytes: limits.bytes }),
            Some((_, Some(Stop::Depth))) => Err(JqFailure::Depth { query: query() }),
            Some((_, Some(Stop::Interrupted))) => Err(JqFailure::Interrupted { query: query() }),
        }
    }

    /// [`JqQuery::eval_first`], with a stopped evaluation read as no value.
    pub fn first(&self, input: &Json) -> Option<Json> {
        self.eval_first(input).ok().flatten()
    }
}

/// The first result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum First {
    /// Its first value (maybe null).
    Value(Json),
    /// It yielded nothing.
    Empty,
    /// It raised an error before its first value: the error's text.
    Raised(String),
}

/// One evaluation: the first result (or why there is none) and why the budget stopped it; at
/// most `stack` bytes of stack below where it starts.
fn evaluate(
    filter: &jaq_core::Filter<JustLut<Val>>,
    input: &Json,
    limits: JqLimits,
    interrupt: Interrupt,
    stack: usize,
) -> (Result<First, TooDeep>, Option<Stop>) {
    let budget =
        Budget { steps: limits.steps, bytes: limits.bytes, interrupt: Some(Box::new(move || interrupt.fired())), stack: Some(stack) };
    // The input is the caller's: converting it is not charged.
    let input = json_to_val(input);
    jaq_core::budget::with_budget(budget, || {
        let ctx = Ctx::<JustLut<Val>>::new(&filter.lut, Vars::new([]));
        let mut out = filter.id.run((ctx, input)).map(unwrap_valr);
        match out.next() {
            // Converting the result is charged too: a value sharing its parts (`[., .]` forty
            // times over) is small in memory and huge as JSON.
            Some(Ok(v)) => val_to_json(&v, 0).map(First::Value),
            Some(Err(e)) => Ok(First::Raised(e.to_string())),
            None => Ok(First::Empty),
        }
    })
}

fn excerpt(at: &str) -> String {
    let (s, _) = weft_spec::text::excerpt(at, 20);
    if s.is_empty() { "end of query".into() } else { s.to_owned() }
}

fn json_to_val(v: &Json) -> Val {
    match v {
        Json::Null => Val::Null,
        Json::Bool(b) => Val::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Num(Num::from_integral(i))
            } else if let Some(u) = n.as_u64() {
                Val::Num(Num::from_integral(u))
            } else {
                Val::Num(Num::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Val::utf8_str(s.clone().into_bytes()),
        Json::Array(items) => items.iter().map(json_to_val).collect(),
        Json::Object(m) => Val::obj(m.iter().map(|(k, x)| (Val::utf8_str(k.clone().into_bytes()), json_to_val(x))).collect()),
    }
}

/// A number as Python reads jq's output: jq writes integral floats without a fraction (`1.0` as
/// `1`), so they come back as integers.
fn float_json(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.0e18 {
        return Json::from(f as i64);
    }
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// A result nested deeper than [`MAX_RESULT_DEPTH`], or a conversion stopped by the budget
/// (then the budget says why).
struct TooDeep;

/// The JSON of a result; every node is charged to the evaluation's budget.
fn val_to_json(v: &Val, depth: usize) -> Result<Json, TooDeep> {
    if depth > MAX_RESULT_DEPTH || !jaq_core::budget::bytes(std::mem::size_of::<Json>()) {
        return Err(TooDeep);
    }
    Ok(match v {
        Val::Null => Json::Null,
        Val::Bool(b) => Json::Bool(*b),
        Val::Num(n) => match n {
            Num::Int(i) => Json::from(*i as i64),
            Num::Float(f) => float_json(*f),
            Num::BigInt(_) | Num::Dec(_) => {
                let text = n.to_string();
                text.parse::<i64>()
                    .map(Json::from)
                    .or_else(|_| text.parse::<u64>().map(Json::from))
                    .unwrap_or_else(|_| text.parse::<f64>().map(float_json).unwrap_or(Json::Null))
            }
        },
        Val::TStr(b) | Val::BStr(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Json::Array(items.iter().map(|x| val_to_json(x, depth + 1)).collect::<Result<_, _>>()?),
        Val::Obj(m) => {
            let mut out = Map::new();
            for (k, x) in m.iter() {
                let key = match k {
                    Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                    other => py_json_dumps(&val_to_json(other, depth + 1)?),
                };
                out.insert(key, val_to_json(x, depth + 1)?);
            }
            Json::Object(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_compiled_twice_is_compiled_once() {
        let a = JqQuery::compile(".items | map(. + 1)").unwrap_or_else(|e| panic!("{e}"));
        let b = JqQuery::compile(".items | map(. + 1)").unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&a.filter, &b.filter));
        // A refused query is refused every time (errors are not kept).
        assert!(JqQuery::compile("halt").is_err());
        assert!(JqQuery::compile("halt").is_err());
    }
}
