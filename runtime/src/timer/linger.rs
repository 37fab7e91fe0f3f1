//! Wake-up timers that outlive their receive: a call's deadline timer, left
//! armed when the call ends first, for the process's next call to adopt
//! (see `receive::CallDeadline`).
//!
//! A process that makes call after call with the same timeout would
//! otherwise arm and disarm a wheel timer per call. With these, it arms one
//! about once per timeout: each call's deadline is later than the previous
//! call's, so the previous call's timer, still pending, wakes the process no
//! later than the new deadline needs. Waking early is harmless: the receive
//! finds its deadline not passed and makes sure of a timer for it (adopting
//! or arming one).
//!
//! Invariants:
//! - An entry belongs to no receive: a receive that adopts a timer takes it
//!   out of the table, so an eviction never disarms a timer that a waiting
//!   receive relies on.
//! - One entry per table slot (64 per worker): a new one evicts the old,
//!   which the worker disarms. So at most 64 timers per worker linger, each
//!   at most the timeout of the call that armed it; one that fires wakes its
//!   process once for nothing (a poll that finds nothing new), or nobody if
//!   that incarnation has exited (the wake's serial check).
//! - Only a timer still pending is adopted: its tick is later than the
//!   adopter's clock reading, and the wheel still holds it (`Worker::wake_by`
//!   asks: the call's deadline is read from another clock frame than the
//!   wheel's, see `timer/mod.rs`, so the tick alone does not prove it).

use std::cell::Cell;

use crate::scheduler::worker::Current;
use crate::timer::wheel::TimerKey;

/// Slots of the table (a power of two).
const SLOTS: usize = 64;

/// A lingering wake-up of process (`index`, `serial`) at `tick`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    index: u32,
    serial: u32,
    tick: u64,
    key: TimerKey,
}

/// One worker's lingering wake-up timers, by process (see the module docs).
#[derive(Debug)]
pub(crate) struct Lingering {
    entries: [Cell<Option<Entry>>; SLOTS],
}

impl Lingering {
    pub(crate) fn new() -> Lingering {
        Lingering { entries: std::array::from_fn(|_| Cell::new(None)) }
    }

    /// Takes out `process`'s lingering timer if it is still pending at tick
    /// `now` and fires at or before tick `when`: it then wakes the process in
    /// time for a deadline at `when`. Its tick and key.
    #[inline]
    pub(crate) fn adopt(&self, process: Current, now: u64, when: u64) -> Option<(u64, TimerKey)> {
        let cell = &self.entries[process.index as usize % SLOTS];
        let entry = cell.get()?;
        let fits = entry.index == process.index && entry.serial == process.serial && now < entry.tick;
        if fits && entry.tick <= when {
            cell.set(None);
            return Some((entry.tick, entry.key));
        }
        None
    }

    /// Keeps the timer `key` (a wake-up of `process` at `tick`) for the
    /// process's next call. Returns the timer it evicts, to be disarmed.
    #[inline]
    pub(crate) fn keep(&self, process: Current, tick: u64, key: TimerKey) -> Option<TimerKey> {
        let entry = Entry { index: process.index, serial: process.serial, tick, key };
        self.entries[process.index as usize % SLOTS].replace(Some(entry)).map(|old| old.key)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::timer::wheel::Wheel;

    fn process(index: u32, serial: u32) -> Current {
        Current { index, serial }
    }

    #[test]
    fn only_a_pending_timer_of_the_same_incarnation_due_by_the_deadline_is_adopted() {
        let mut wheel = Wheel::new(0);
        let key = wheel.insert(100, ());
        let table = Lingering::new();
        let p = process(3, 1);
        assert!(table.keep(p, 100, key).is_none());
        assert_eq!(table.adopt(process(3, 2), 10, 200), None, "another incarnation");
        assert_eq!(table.adopt(p, 100, 200), None, "due now: it may have fired");
        assert_eq!(table.adopt(p, 10, 99), None, "due after the deadline");
        assert_eq!(table.adopt(p, 10, 100), Some((100, key)));
        assert_eq!(table.adopt(p, 10, 100), None, "adopted: taken out");
    }

    #[test]
    fn keeping_a_timer_evicts_the_one_in_its_slot() {
        let mut wheel = Wheel::new(0);
        let (first, second) = (wheel.insert(100, ()), wheel.insert(100, ()));
        let table = Lingering::new();
        assert!(table.keep(process(1, 1), 100, first).is_none());
        // Same slot (index mod 64), another process.
        assert_eq!(table.keep(process(1 + SLOTS as u32, 1), 100, second), Some(first));
        assert_eq!(table.adopt(process(1, 1), 0, 100), None, "evicted");
    }
}
