//! What belongs to one run and not to its plan: the run's settings ([`RunSettings`]: event
//! sink, step budget, re-ask limit, node timeout, batch index) and, while it executes, its
//! context ([`RunContext`]: the run id and the event stamping every call task shares) and its
//! cancellation ([`CancelHandle`], with a child token for each frame that can be cancelled on
//! its own).

use crate::event::{EVENT_SCHEMA, Event, EventRecord, EventSink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The settings of one run: each run of a plan may have its own.
#[derive(Clone)]
pub struct RunSettings {
    /// Receives the run's events.
    pub events: Option<Arc<dyn EventSink>>,
    /// Steps allowed per execution path (a loop that never exits stops there).
    pub max_steps: u64,
    /// Re-asks allowed when an answer does not fit the node's outputs.
    pub max_reasks: u32,
    /// The longest any one node may take (an LLM or tool call, a subflow, a whole fan-out; a
    /// catch node is not timed as a whole: the nodes inside it are, and their timeouts caught).
    pub node_timeout: Option<Duration>,
    /// A flag that cancels the run when set from any thread (a Ctrl-C handler): see
    /// [`crate::Run::cancel`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// The run's 0-based position in a batch, carried by its events.
    pub index: Option<usize>,
    /// Where copies of the state go while the run executes (shared by a batch's runs).
    pub checkpoints: Option<Arc<crate::checkpoint::Checkpoints>>,
    /// Whether LLM calls are streamed, their text going out as `llm_delta` events as it arrives
    /// (only when there is an event sink).
    pub stream: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            events: None,
            max_steps: crate::DEFAULT_MAX_STEPS,
            max_reasks: crate::DEFAULT_MAX_REASKS,
            node_timeout: None,
            cancel: None,
            index: None,
            checkpoints: None,
            stream: false,
        }
    }
}

impl std::fmt::Debug for RunSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSettings")
            .field("max_steps", &self.max_steps)
            .field("max_reasks", &self.max_reasks)
            .field("node_timeout", &self.node_timeout)
            .field("index", &self.index)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// A run's context while it executes, shared with its call tasks.
pub(crate) struct RunContext {
    pub(crate) run_id: String,
    pub(crate) index: Option<usize>,
    sink: Option<Arc<dyn EventSink>>,
    /// Whether LLM calls stream their text out as `llm_delta` events.
    stream: bool,
    /// The last `seq` given. Locked while the sink is called, so the sink sees `seq` in order.
    seq: Mutex<u64>,
    /// The run's MCP sessions, one per server, shared by its tools and closed when `execute()`
    /// returns.
    pub(crate) mcp: weft_tools::mcp::Sessions,
}

impl RunContext {
    pub(crate) fn new(run_id: String, index: Option<usize>, sink: Option<Arc<dyn EventSink>>, seq: u64) -> RunContext {
        RunContext { run_id, index, sink, stream: false, seq: Mutex::new(seq), mcp: weft_tools::mcp::Sessions::new() }
    }

    /// The same context, streaming LLM calls when `stream` is set and someone listens.
    pub(crate) fn streaming(mut self, stream: bool) -> RunContext {
        self.stream = stream && self.sink.is_some();
        self
    }

    /// Whether LLM calls stream their text out.
    pub(crate) fn streams(&self) -> bool {
        self.stream
    }

    /// Whether anyone listens (events are not even built otherwise).
    pub(crate) fn listening(&self) -> bool {
        self.sink.is_some()
    }

    /// Stamps `event` (frame `path`) and hands it to the sink.
    pub(crate) fn emit(&self, path: &str, event: &Event) {
        let Some(sink) = self.sink.as_deref() else { return };
        let mut seq = self.seq.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *seq = seq.saturating_add(1);
        let record = EventRecord { v: EVENT_SCHEMA, run_id: &self.run_id, seq: *seq, ts_ms: now_ms(), index: self.index, path, event };
        sink.emit(&record);
    }

    /// The last `seq` given (stored in the state, so a resumed run continues from it).
    pub(crate) fn seq(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Cancels a run from anywhere (another task, a signal handler): `execute()` stops its calls in
/// flight, waits until each is dropped, and returns a [`crate::RunErrorKind::Cancelled`] error;
/// the state stays resumable. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    token: CancellationToken,
    /// Set with the token, for what polls (a jq query being evaluated).
    flag: Arc<AtomicBool>,
}

impl CancelHandle {
    /// A handle that shares `flag` (set by a Ctrl-C handler, say).
    pub(crate) fn with_flag(flag: Option<Arc<AtomicBool>>) -> CancelHandle {
        CancelHandle { token: CancellationToken::new(), flag: flag.unwrap_or_default() }
    }

    /// Cancels the run.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.token.cancel();
    }

    /// Whether the run was cancelled (through this handle or the flag it shares).
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled() || self.flag.load(Ordering::Relaxed)
    }

    pub(crate) fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// The cancellation tokens of the frames that can be cancelled on their own, made lazily: a
/// frame has a token only once [`FrameTokens::separate`] gave it one (a child of its nearest
/// ancestor's, or of the run's), so cancelling it cancels the calls of every branch and item
/// below it and no other. Every other call runs under the run's cancellation alone, which the
/// driver enforces by aborting its tasks, so a call of a fan-out item costs no token (a child
/// token is an allocation and a lock on its parent when made and when dropped).
#[derive(Default)]
pub(crate) struct FrameTokens {
    tokens: HashMap<u64, CancellationToken>,
}

impl FrameTokens {
    /// Gives frame `fid`, whose ancestors are `parents` (nearest first), a token of its own (and
    /// each ancestor between it and the nearest one with a token). Call it before the frame's
    /// calls are spawned: a call already running under an ancestor's token stays under it.
    pub(crate) fn separate(&mut self, run: &CancellationToken, fid: u64, parents: &[u64]) -> CancellationToken {
        if let Some(t) = self.tokens.get(&fid) {
            return t.clone();
        }
        // The nearest ancestor with a token, then children down to `fid`.
        let mut chain: Vec<u64> = Vec::with_capacity(parents.len() + 1);
        chain.push(fid);
        let mut base = run.clone();
        for p in parents {
            if let Some(t) = self.tokens.get(p) {
                base = t.clone();
                break;
            }
            chain.push(*p);
        }
        for f in chain.into_iter().rev() {
            base = base.child_token();
            self.tokens.insert(f, base.clone());
        }
        base
    }

    /// Cancels the calls of frame `fid` and of every frame below it (those made under its
    /// token), if it has a token of its own.
    pub(crate) fn cancel(&mut self, fid: u64) {
        if let Some(token) = self.tokens.remove(&fid) {
            token.cancel();
        }
    }

    /// The token a call of frame `fid` runs under: that of the nearest of the frame and its
    /// ancestors (`parents`, nearest first) that has one; `None` when none has (the run's
    /// cancellation alone applies).
    pub(crate) fn of(&self, fid: u64, parents: &[u64]) -> Option<CancellationToken> {
        std::iter::once(&fid).chain(parents).find_map(|f| self.tokens.get(f)).cloned()
    }

    /// Whether no frame has a token of its own (then no call needs one).
    pub(crate) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Forgets the tokens of frames that no longer exist (`alive` says which do).
    pub(crate) fn prune(&mut self, alive: impl Fn(u64) -> bool) {
        self.tokens.retain(|fid, _| alive(*fid));
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// Microseconds since the Unix epoch: the clock the driver passes to the scheduler.
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)).unwrap_or(0)
}

fn now_ms() -> u64 {
    now_us() / 1000
}

/// A new run id: a UUID v7 (RFC 9562), time-ordered, as text.
pub(crate) fn new_run_id() -> String {
    let ms = now_ms() & 0xFFFF_FFFF_FFFF;
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness: the clock's microseconds and a process counter keep ids distinct.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) ^ now_us().rotate_left(20) ^ u64::from(std::process::id());
        random[..8].copy_from_slice(&n.to_le_bytes());
    }
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&random);
    b[6] = 0x70 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    // Written digit by digit: a `format!` per byte was most of a run's start.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0F)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuid_v7_and_distinct() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7", "version 7: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC 9562 variant: {a}");
        // Time-ordered: the first 48 bits are the milliseconds.
        assert!(a[..13] <= b[..13]);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        // The milliseconds since the epoch, big-endian, are the first 12 digits.
        let ms = u64::from_str_radix(&a[..13].replace('-', ""), 16).unwrap();
        assert!(ms.abs_diff(now_ms()) < 60_000, "{a}: {ms}");
    }

    #[test]
    fn frame_tokens_cancel_their_subtree() {
        let run = CancellationToken::new();
        let mut tokens = FrameTokens::default();
        assert!(tokens.is_empty());
        assert!(tokens.of(5, &[2, 0]).is_none(), "no frame has a token of its own: the run's cancellation alone applies");
        let branch = tokens.separate(&run, 2, &[0]);
        let item = tokens.of(5, &[2, 0]).expect("an item below a separate branch runs under the branch's token");
        let sibling = tokens.separate(&run, 6, &[0]);
        assert!(tokens.of(7, &[0]).is_some(), "frame 0 got a token with the branch");
        assert!(!item.is_cancelled());
        branch.cancel();
        assert!(item.is_cancelled(), "cancelling a branch cancels the items below it");
        assert!(!sibling.is_cancelled());
        run.cancel();
        assert!(sibling.is_cancelled());
    }
}
