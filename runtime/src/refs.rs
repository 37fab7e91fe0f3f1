//! Fresh references: the ids of monitors and the tags of calls.
//!
//! Invariant: a reference is handed out at most once per runtime, and is
//! never 0 (in `1..2^63`, where `awaits.rs` keeps its flag above them).
//! Each worker takes a block of [`BLOCK`] references at a time from the
//! runtime's shared counter and hands them out one by one, so the common
//! case is two plain loads and a store on the worker's own state rather
//! than an atomic read-modify-write on a line all workers share. The price
//! is order: references are unique, not increasing across workers (nothing
//! relies on their order).

use std::cell::Cell;

use crate::sync::{AtomicU64, Ordering};

/// References a worker takes from the shared counter at a time.
const BLOCK: u64 = 1 << 12;

/// A worker's block of references not handed out yet: `next..end`.
#[derive(Debug, Default)]
pub(crate) struct RefBlock {
    next: Cell<u64>,
    end: Cell<u64>,
}

impl RefBlock {
    /// A fresh reference; takes a new block from `shared` when this one is spent.
    #[inline]
    pub(crate) fn fresh(&self, shared: &AtomicU64) -> u64 {
        let next = self.next.get();
        if next == self.end.get() {
            return self.refill(shared);
        }
        self.next.set(next + 1);
        next
    }

    #[cold]
    #[inline(never)]
    fn refill(&self, shared: &AtomicU64) -> u64 {
        // Relaxed: only uniqueness matters, which the read-modify-write gives.
        let first = shared.fetch_add(BLOCK, Ordering::Relaxed) + 1;
        self.next.set(first + 1);
        self.end.set(first + BLOCK);
        first
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn references_are_unique_and_never_zero_across_blocks_and_workers() {
        let shared = AtomicU64::new(0);
        let (a, b) = (RefBlock::default(), RefBlock::default());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * BLOCK {
            for block in [&a, &b] {
                let r = block.fresh(&shared);
                assert_ne!(r, 0);
                assert!(seen.insert(r), "reference {r} handed out twice");
            }
        }
    }
}
