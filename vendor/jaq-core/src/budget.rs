//! Weft patch: a per-thread evaluation budget.
//!
//! jaq has no fuel of its own. Weft runs queries taken from untrusted documents, so every
//! evaluation it starts installs a [`Budget`] with [`with_budget`]; the interpreter then charges
//! one step per filter evaluation (and per item of `range`), and the value types charge the bytes
//! they allocate for new strings and arrays. When the budget runs out, or the budget's interrupt
//! callback says so (a deadline passed, the run was cancelled), every later charge fails: the
//! filter being evaluated yields an error that `try`, `?` and `//` do not swallow, so the
//! evaluation unwinds within a few steps and its memory is released.
//!
//! Without an installed budget nothing is counted (jaq's own tests and other users see no change).

use alloc::boxed::Box;
use core::cell::RefCell;
use std::thread_local;

/// Why an evaluation was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// More filter evaluations than [`Budget::steps`].
    Steps,
    /// More bytes allocated for strings and arrays than [`Budget::bytes`].
    Bytes,
    /// The interrupt callback returned true (deadline, cancellation).
    Interrupted,
    /// The evaluation used more than [`Budget::stack`] bytes of stack (a recursion that does not
    /// end).
    Depth,
}

/// The limits of one evaluation.
pub struct Budget {
    /// The most filter evaluations (and `range` items).
    pub steps: u64,
    /// The most bytes allocated for new strings and array items, summed over the evaluation.
    pub bytes: u64,
    /// Called every [`Budget::CHECK_EVERY`] steps; returning true stops the evaluation.
    pub interrupt: Option<Box<dyn Fn() -> bool>>,
    /// The most stack the evaluation may use below where it started, checked at every step.
    pub stack: Option<usize>,
}

impl Budget {
    /// How many steps pass between two calls of the interrupt callback.
    pub const CHECK_EVERY: u64 = 1024;
}

struct Active {
    budget: Budget,
    base: usize,
    steps: u64,
    bytes: u64,
    stopped: Option<Stop>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Runs `f` under `budget` on this thread; returns its result and why the evaluation was stopped,
/// if it was. Budgets do not nest: an inner call replaces the outer budget for its duration.
pub fn with_budget<R>(budget: Budget, f: impl FnOnce() -> R) -> (R, Option<Stop>) {
    let outer = ACTIVE.with(|a| {
        a.borrow_mut().replace(Active {
            budget,
            base: stack_address(),
            steps: 0,
            bytes: 0,
            stopped: None,
        })
    });
    struct Restore(Option<Option<Active>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                ACTIVE.with(|a| *a.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(outer));
    let r = f();
    let stopped = ACTIVE.with(|a| a.borrow().as_ref().and_then(|a| a.stopped));
    if let Some(outer) = restore.0.take() {
        ACTIVE.with(|a| *a.borrow_mut() = outer);
    }
    (r, stopped)
}

/// Charges one step. Returns false when the evaluation must stop.
#[inline]
pub fn step() -> bool {
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let Some(a) = a.as_mut() else { return true };
        if a.stopped.is_some() {
            return false;
        }
        a.steps += 1;
        if a.steps > a.budget.steps {
            a.stopped = Some(Stop::Steps);
            return false;
        }
        if let Some(stack) = a.budget.stack {
            if a.base.saturating_sub(stack_address()) > stack {
                a.stopped = Some(Stop::Depth);
                return false;
            }
        }
        if a.steps % Budget::CHECK_EVERY == 0 {
            if let Some(interrupt) = &a.budget.interrupt {
                if interrupt() {
                    a.stopped = Some(Stop::Interrupted);
                    return false;
                }
            }
        }
        true
    })
}

/// Charges `n` bytes about to be allocated. Returns false when the evaluation must stop (then
/// the caller must not allocate them).
#[inline]
pub fn bytes(n: usize) -> bool {
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let Some(a) = a.as_mut() else { return true };
        if a.stopped.is_some() {
            return false;
        }
        a.bytes = a.bytes.saturating_add(n as u64);
        if a.bytes > a.budget.bytes {
            a.stopped = Some(Stop::Bytes);
            return false;
        }
        true
    })
}

/// Whether the running evaluation was stopped (its errors must not be caught).
#[inline]
pub fn stopped() -> bool {
    ACTIVE.with(|a| a.borrow().as_ref().is_some_and(|a| a.stopped.is_some()))
}

/// The error message of a stopped evaluation.
pub const MESSAGE: &str = "evaluation budget exhausted";

/// An address on the current thread's stack (to measure how deep a recursion has gone).
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}
