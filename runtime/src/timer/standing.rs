//! Standing wake-up timers: one wheel timer per process that its timed
//! receives share, instead of one armed and disarmed per receive (see
//! `deadline.rs`). Below, a *call* stands for any receive with a timeout (a
//! call's wait, `recv_timeout`, `receive!` with `after`).
//!
//! A process that makes call after call with the same timeout needs, for
//! each call, *some* timer that wakes it no later than that call's
//! deadline. Each call's deadline is later than the previous one's, so the
//! timer armed for an earlier call still serves: the process arms one about
//! once per timeout, and a call that finds its process's standing timer
//! pending and due by its deadline does nothing else: no wheel operation,
//! and nothing to undo when the reply comes first. Waking early is
//! harmless: every waiting receive re-checks its own deadline when its
//! process is polled, and makes sure of a timer for it again.
//!
//! # The table
//!
//! Each worker keeps [`SLOTS`] entries, indexed by process slot index (mod
//! [`SLOTS`]): the process (index and serial), the tick its timer fires at,
//! and the timer's key in *this worker's* wheel. Nothing here is shared
//! between threads. The entries come in pages of [`PAGE`], each allocated
//! when a process of its range of indices first arms a standing timer: a
//! worker whose timed receivers are the processes of the first few hundred
//! slots has one page (6 KiB); the page costs a lookup one load. Slot
//! indices are reused (freed ones first, then the never-used tail), so two
//! live processes share an entry only when slots more than [`SLOTS`] apart
//! are in use at once: with more than [`SLOTS`] processes, about.
//!
//! # Invariants
//!
//! 1. *Pending is a comparison.* An entry whose tick is after the wheel's
//!    clock ([`StandingTimers::fired_through`]) is pending in the wheel: the
//!    wheel delivers an entry only once its clock reaches the entry's tick,
//!    an entry is armed only at a tick after that clock
//!    ([`StandingTimers::vacancy`]'s caller clamps), and one is removed from
//!    the wheel only when its table entry is replaced at the same time. So
//!    whether a timer is still pending needs no look into the wheel.
//! 2. *A pending entry is never replaced by a later one.* The receives of a
//!    process that rely on its entry checked that it fires by their
//!    deadlines; an entry is replaced (and its timer disarmed) only by an
//!    earlier one of the same process, which wakes them sooner, or once it
//!    belongs to a process that has ended (nobody waits on it): an earlier
//!    incarnation of the same slot (same index, other serial), or a process
//!    of another slot, found dead in the process table when its entry is in
//!    the way (an ended incarnation never lives again, so that finding cannot
//!    go stale). A process whose slot holds another live process's pending
//!    entry arms a timer of its own for the call instead, disarmed when the
//!    call ends (the deadline's `LocalTimer`). Without the look at the
//!    process table, the entries of processes that exited within the last
//!    timeout (a benchmark's clients, one round after another) would make
//!    every call of the new processes that share their slots arm and disarm
//!    a timer.
//! 3. *Wrong wake-ups are harmless.* A standing timer that fires after its
//!    call ended wakes its process once for nothing (a poll that finds
//!    nothing new), or nobody if that incarnation has exited (the wake's
//!    serial check, `Slot::wake`). A process that moved to another worker
//!    is still woken by its old worker's timer (by index and serial) and
//!    arms one on its new worker if its deadline needs it.
//!
//! At most [`SLOTS`] standing timers per worker are pending, each due at
//! most one call timeout after it was armed.

use std::cell::{Cell, OnceCell};

use crate::scheduler::worker::Current;
use crate::timer::wheel::TimerKey;

/// Entries of a worker's table (a power of two).
pub(crate) const SLOTS: usize = PAGE * PAGES;
/// Entries of a page (a power of two).
const PAGE: usize = 256;
/// Pages of a worker's table (a power of two): 1.5 MiB of entries at most.
const PAGES: usize = 256;

/// A standing wake-up of a process at `tick`; a `tick` of 0 is an empty
/// entry (never after the wheel's clock).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The process: `index << 32 | serial` (one comparison on the hot path).
    owner: u64,
    tick: u64,
    key: TimerKey,
}

/// `process` as an [`Entry::owner`].
#[inline(always)]
fn owner(process: Current) -> u64 {
    (u64::from(process.index) << 32) | u64::from(process.serial)
}

/// One page of a table's entries.
type Page = [Cell<Entry>; PAGE];

/// An entry that holds no timer (its tick is never after the wheel's clock).
const EMPTY: Entry = Entry { owner: 0, tick: 0, key: TimerKey::NONE };

/// What the slot of a process holds, for a process that needs a timer by
/// a tick its standing entry (if any) does not cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vacancy {
    /// Nothing pending: take it.
    Free,
    /// A pending timer that is the process's own (due too late) or an ended
    /// process's: disarm it, then take the slot.
    Replace(TimerKey),
    /// Another live process's pending timer: the caller arms its own.
    Taken,
}

/// One worker's standing wake-up timers, by process (see the module docs).
#[derive(Debug)]
pub(crate) struct StandingTimers {
    pages: Box<[OnceCell<Box<Page>>; PAGES]>,
    /// The wheel's clock: every timer due at or before this tick has fired.
    fired_through: Cell<u64>,
}

impl StandingTimers {
    /// An empty table for a wheel whose clock is at `now`.
    pub(crate) fn new(now: u64) -> StandingTimers {
        StandingTimers { pages: Box::new(std::array::from_fn(|_| OnceCell::new())), fired_through: Cell::new(now) }
    }

    /// `process`'s entry, if its page has been allocated.
    #[inline(always)]
    fn cell(&self, process: Current) -> Option<&Cell<Entry>> {
        let index = process.index as usize % SLOTS;
        Some(&self.pages[index / PAGE].get()?[index % PAGE])
    }

    /// `process`'s entry, its page allocated if need be.
    fn cell_or_new(&self, process: Current) -> &Cell<Entry> {
        let index = process.index as usize % SLOTS;
        let page = self.pages[index / PAGE].get_or_init(|| Box::new(std::array::from_fn(|_| Cell::new(EMPTY))));
        &page[index % PAGE]
    }

    /// Whether `process` has a standing timer, pending, that fires at or
    /// before tick `when`: then it wakes the process in time for a deadline
    /// at `when`. The hot path of a call that has to wait.
    #[inline(always)]
    pub(crate) fn covers(&self, process: Current, when: u64) -> bool {
        let Some(entry) = self.cell(process).map(Cell::get) else { return false };
        entry.owner == owner(process) && entry.tick <= when && entry.tick > self.fired_through.get()
    }

    /// The wheel's clock (invariant 1): a new standing timer must fire after it.
    #[inline]
    pub(crate) fn fired_through(&self) -> u64 {
        self.fired_through.get()
    }

    /// The wheel's clock moved to `now` (it delivered every timer due by then).
    #[inline]
    pub(crate) fn advance(&self, now: u64) {
        self.fired_through.set(now);
    }

    /// What `process`'s slot holds (see [`Vacancy`]); `is_alive(index,
    /// serial)` tells whether a process of another slot index, whose pending
    /// entry is there, still lives.
    pub(crate) fn vacancy(&self, process: Current, is_alive: impl FnOnce(u32, u32) -> bool) -> Vacancy {
        let entry = self.cell(process).map_or(EMPTY, Cell::get);
        let (index, serial) = ((entry.owner >> 32) as u32, entry.owner as u32);
        if entry.tick <= self.fired_through.get() {
            Vacancy::Free
        } else if index == process.index || !is_alive(index, serial) {
            // The process itself, an earlier incarnation of its slot (which
            // has ended: a slot index is reused only after that), or a process
            // that has ended.
            Vacancy::Replace(entry.key)
        } else {
            Vacancy::Taken
        }
    }

    /// Records the standing timer `key` of `process`, firing at `tick`
    /// (after [`fired_through`](Self::fired_through)), in its slot.
    pub(crate) fn set(&self, process: Current, tick: u64, key: TimerKey) {
        debug_assert!(tick > self.fired_through.get(), "a standing timer must be pending (invariant 1)");
        self.cell_or_new(process).set(Entry { owner: owner(process), tick, key });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::timer::wheel::Wheel;

    fn process(index: u32, serial: u32) -> Current {
        Current { index, serial }
    }

    /// Every other process lives.
    fn alive(_: u32, _: u32) -> bool {
        true
    }

    #[test]
    fn a_pending_timer_of_the_same_incarnation_covers_later_deadlines_only() {
        let mut wheel = Wheel::new(0);
        let table = StandingTimers::new(0);
        let p = process(3, 1);
        assert!(!table.covers(p, 200), "empty");
        assert_eq!(table.vacancy(p, alive), Vacancy::Free);
        table.set(p, 100, wheel.insert(100, ()));
        assert!(table.covers(p, 100) && table.covers(p, 200));
        assert!(!table.covers(p, 99), "due after the deadline");
        assert!(!table.covers(process(3, 2), 200), "another incarnation");
        table.advance(99);
        assert!(table.covers(p, 200), "still pending");
        table.advance(100);
        assert!(!table.covers(p, 200), "fired");
        assert_eq!(table.vacancy(p, alive), Vacancy::Free);
    }

    #[test]
    fn processes_of_slots_far_apart_each_keep_their_own_timer() {
        let mut wheel = Wheel::new(0);
        let table = StandingTimers::new(0);
        // One in the first page, the others a page and most of the table away.
        let (a, b, c) = (process(1, 1), process(1 + PAGE as u32, 1), process(SLOTS as u32 - 1, 1));
        assert!(!table.covers(b, 200), "no page yet");
        for (p, tick) in [(a, 100), (b, 150), (c, 200)] {
            assert_eq!(table.vacancy(p, alive), Vacancy::Free);
            table.set(p, tick, wheel.insert(tick, ()));
        }
        assert!(table.covers(a, 100) && table.covers(b, 150) && table.covers(c, 200));
        assert!(!table.covers(a, 99) && !table.covers(b, 149) && !table.covers(c, 199), "each its own tick");
    }

    #[test]
    fn a_pending_slot_is_replaced_only_by_its_own_process_or_once_its_process_has_ended() {
        let mut wheel = Wheel::new(0);
        let table = StandingTimers::new(0);
        let key = wheel.insert(100, ());
        table.set(process(1, 1), 100, key);
        assert_eq!(table.vacancy(process(1, 1), alive), Vacancy::Replace(key), "its own");
        assert_eq!(table.vacancy(process(1, 2), alive), Vacancy::Replace(key), "an ended incarnation's");
        // Same slot (index mod SLOTS), another process.
        let other = process(1 + SLOTS as u32, 1);
        assert_eq!(table.vacancy(other, alive), Vacancy::Taken, "a live process's");
        let all_but_1_1_alive = |index, serial| (index, serial) != (1, 1);
        assert_eq!(table.vacancy(other, all_but_1_1_alive), Vacancy::Replace(key), "a process that has ended");
        table.advance(100);
        assert_eq!(table.vacancy(other, alive), Vacancy::Free, "fired");
    }
}
