//! Weft patch: a per-thread budget of the bytes a render builds.
//!
//! minijinja's fuel counts instructions, but one instruction can double a string (`s ~ s`), so
//! a few dozen instructions could build gigabytes. Weft renders templates taken from untrusted
//! documents under [`with_budget`]: every string value built (and, through Weft's formatter,
//! every byte written) is charged; once the budget is spent, new strings are empty and the caller
//! reports the render as too large. Without an installed budget nothing is counted.

use std::cell::Cell;

thread_local! {
    static LEFT: Cell<Option<u64>> = const { Cell::new(None) };
    static SPENT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `bytes` to spend on this thread; returns its result and whether the budget ran
/// out. Budgets do not nest: an inner call replaces the outer one for its duration.
pub fn with_budget<R>(bytes: u64, f: impl FnOnce() -> R) -> (R, bool) {
    let outer = (LEFT.with(|l| l.replace(Some(bytes))), SPENT.with(|s| s.replace(false)));
    struct Restore((Option<u64>, bool));
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0 .0));
            SPENT.with(|s| s.set(self.0 .1));
        }
    }
    let restore = Restore(outer);
    let r = f();
    let spent = SPENT.with(Cell::get);
    drop(restore);
    (r, spent)
}

/// Charges `n` bytes; false once the budget is spent (then the caller must not build them).
#[inline]
pub fn bytes(n: usize) -> bool {
    LEFT.with(|l| match l.get() {
        None => true,
        Some(left) => match left.checked_sub(n as u64) {
            Some(rest) => {
                l.set(Some(rest));
                true
            }
            None => {
                l.set(Some(0));
                SPENT.with(|s| s.set(true));
                false
            }
        },
    })
}
