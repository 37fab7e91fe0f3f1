//! A timed receive's first miss without a clock reading: the worker stamps
//! the receiving process's slot with its *next* reading instead (see
//! `deadline.rs`). Below, a *call* stands for any receive with a timeout (a
//! call's wait, `recv_timeout`, `receive!` with `after`) and the *caller*
//! for its process.
//!
//! A call's timeout counts from the first poll that misses its reply (S),
//! and the deadline must never pass early. Reading the clock at S costs
//! ~17 ns, an eighth of a local call, and in the common case the reply
//! arrives at the next poll and the reading is never used. What S needs is
//! an *upper* bound, and the worker has one for free: the first clock
//! reading it takes after that poll. What arming a timer needs is a *lower*
//! bound, and the worker has that too: the last reading it took before.
//!
//! # The stamp
//!
//! Each slot has a 32-bit stamp word (`Slot::stamp`), which is either
//! `REQUESTED | w` ("worker `w`, stamp your next reading here") or a
//! reading, encoded by [`encode`]: rounded *up* to units of
//! 2<sup>[`UNIT_SHIFT`]</sup> ns, modulo 2<sup>31</sup>.
//!
//! # The protocol
//!
//! 1. *Request* (the caller, at its first miss, polled by worker `w`): if
//!    the stamp is not already `REQUESTED | w`, it stores that value
//!    (relaxed) and pushes its slot index on `w`'s list
//!    ([`Readings::request`]); then it takes `w`'s last reading L as the
//!    deadline's lower bound, good enough to arm a timer: one due by
//!    L + timeout is due by S + timeout, so it wakes the caller early,
//!    never late, and waking early is harmless. If the list is full, the
//!    caller reads the clock instead (as before this protocol).
//! 2. *Stamp* (worker `w`, at every clock reading R, before it does
//!    anything else with it, in particular before it fires timers and
//!    before its next poll): for each listed slot it replaces
//!    `REQUESTED | w` by R with a compare-exchange (release), and empties
//!    the list ([`Readings::record`]).
//! 3. *Settle* (the caller, at a later miss, on any worker): it loads the
//!    stamp (acquire) and then reads the clock, N. A reading in the stamp
//!    is the deadline's start ([`settle`] reconstructs it as the latest
//!    value at or before N with that encoding); a request still pending
//!    (the worker has not read its clock since, or the caller moved to
//!    another worker) makes N the start. Either way the caller then
//!    decides with the exact deadline, as without this protocol.
//!
//! # Why the start is never before S
//!
//! - Only worker `w`'s thread writes `REQUESTED | w` (a process writes the
//!   mark of the worker polling it), and only `w` replaces it. So when
//!   `w`'s compare-exchange finds its mark, the mark was written by a poll
//!   earlier on the same thread, and R, read after that poll with no poll
//!   in between (step 2), is no earlier than that poll.
//! - A mark that a first miss finds and keeps (step 1, the stamp was
//!   already `REQUESTED | w`) has not been replaced yet, so the replacement
//!   comes after this poll on `w`'s thread: its R is no earlier than this
//!   first miss either. A mark is always on its worker's list until that
//!   worker's next reading (it is written only together with a push).
//! - After a call's first miss, its process's stamp holds the mark that
//!   first miss wrote or kept, or a later value: a mark written by a later
//!   first miss (of another call of the process, as calls may be in flight
//!   together; or of a later incarnation of the slot), or a reading stamped
//!   over one of these marks, which by the first two points is no earlier
//!   than the first miss that wrote or kept that mark, itself no earlier
//!   than S. The caller's own loads see its mark or a later value: the
//!   process is handed from worker to worker with release and acquire
//!   (`slot.rs`). So a reading the caller finds is no earlier than its S
//!   (later, when it was stamped for a later call: late, never early).
//! - The reading in the stamp happens-before N (release compare-exchange,
//!   acquire load, then the clock read), so N >= R: the clock is monotonic
//!   along happens-before, which comparing readings taken on different
//!   workers relies on anyway. The latest value at or before N with R's
//!   encoding is then at or after R: [`settle`] never makes the start
//!   earlier than R. It is later than R only if N is more than a window
//!   (2<sup>31</sup> units, about 9.8 hours) after R; calls whose timeout
//!   is over half of that ([`LONGEST`]) read the clock at their first miss
//!   instead.
//!
//! The start is late by the time from S to the worker's next reading: a
//! worker reads its clock every 61 polls while it has timers (a call that
//! waits has one), when it runs out of work, and after it parks. So a
//! caller's timeout is late by as long as those polls run, as the timer
//! that ends it already is. `models/loom_stamp.rs` checks the protocol with
//! two workers, migrating calls and calls in flight together.

use std::cell::Cell;

use crate::slot::Slot;

/// A stamp that asks worker `stamp & !REQUESTED` for its next reading.
const REQUESTED: u32 = 1 << 31;

/// A stamped reading is in units of `1 << UNIT_SHIFT` ns (16.4 µs),
/// rounded up.
pub(crate) const UNIT_SHIFT: u32 = 14;

/// A stamped reading repeats every `WINDOW` units (about 9.8 hours).
const WINDOW: u64 = 1 << 31;

/// The longest timeout a call leaves to the stamp (about 4.9 hours): half
/// the window, so that a settling at the deadline is well within it.
pub(crate) const LONGEST: u64 = (WINDOW / 2) << UNIT_SHIFT;

/// Requests a worker takes before its next reading; further first misses
/// read the clock themselves. A poll adds at most one (a process's second
/// request finds its first), and a worker with requests reads its clock at
/// least every 61 polls, so this is a bound, not a limit met in practice.
pub(crate) const CAPACITY: usize = 64;

/// The units of `nanos`, rounded up.
#[inline(always)]
fn units(nanos: u64) -> u64 {
    nanos.div_ceil(1 << UNIT_SHIFT)
}

/// The stamp of reading `nanos`: never a request.
#[inline]
pub(crate) fn encode(nanos: u64) -> u32 {
    (units(nanos) % WINDOW) as u32
}

/// At a later miss: the deadline's start for a call whose first miss
/// requested a stamp, given the stamp loaded now (acquire) and `now`, a
/// clock reading taken after that load. Never before the first miss (see
/// the module docs).
#[inline]
pub(crate) fn settle(stamp: u32, now: u64) -> u64 {
    if stamp & REQUESTED != 0 {
        return now;
    }
    // The latest units at or before `now`'s (rounded up) with this encoding.
    let latest = units(now);
    let back = latest.wrapping_sub(u64::from(stamp)) % WINDOW;
    match latest.checked_sub(back) {
        Some(start) => start << UNIT_SHIFT,
        // Only if the reading were after `now`, which it happens-before.
        None => now,
    }
}

/// One worker's side of the protocol: its last reading and the slots that
/// asked for its next one. Owned by the worker thread.
#[derive(Debug)]
pub(crate) struct Readings {
    /// `REQUESTED | ` the worker's index.
    mark: u32,
    /// The worker's latest clock reading (nanoseconds since the epoch).
    last: Cell<u64>,
    /// The slot indices that requested the next reading (the first `len`).
    requests: [Cell<u32>; CAPACITY],
    len: Cell<usize>,
}

impl Readings {
    /// The readings of worker `worker`, whose clock reads `now`.
    pub(crate) fn new(worker: usize, now: u64) -> Readings {
        let index = u32::try_from(worker).ok().filter(|&i| i < REQUESTED).expect("fewer than 2^31 workers");
        Readings {
            mark: REQUESTED | index,
            last: Cell::new(now),
            requests: std::array::from_fn(|_| Cell::new(0)),
            len: Cell::new(0),
        }
    }

    /// Step 1, on this worker's thread while it polls the process in
    /// `slot` (index `index`): asks for the next reading to be stamped in
    /// `slot`, and returns the last one (a lower bound of now); None if the
    /// list is full (the caller reads the clock instead).
    #[inline(always)]
    pub(crate) fn request(&self, index: u32, slot: &Slot) -> Option<u64> {
        if slot.stamp() != self.mark {
            let len = self.len.get();
            if len == CAPACITY {
                return None;
            }
            self.requests[len].set(index);
            self.len.set(len + 1);
            slot.request_stamp(self.mark);
        }
        Some(self.last.get())
    }

    /// Whether a reading is awaited (the worker must read its clock soon).
    #[inline]
    pub(crate) fn has_requests(&self) -> bool {
        self.len.get() > 0
    }

    /// Step 2: the worker read its clock: `now`. Stamps it in every slot
    /// that requested it (`slot_of` finds a slot by index). No poll may
    /// come between the reading and this call.
    #[inline]
    pub(crate) fn record<'a>(&self, now: u64, slot_of: impl Fn(u32) -> &'a Slot) {
        self.last.set(now);
        let len = self.len.replace(0);
        if len == 0 {
            return;
        }
        let stamp = encode(now);
        for request in &self.requests[..len] {
            slot_of(request.get()).stamp_request(self.mark, stamp);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::table::Table;

    const UNIT: u64 = 1 << UNIT_SHIFT;

    /// A fresh table and a slot index of it.
    fn table() -> (Table, u32) {
        let table = Table::new();
        let index = table.alloc_one();
        (table, index)
    }

    #[test]
    fn a_settled_start_is_the_stamped_reading_rounded_up() {
        for reading in [0, 1, UNIT - 1, UNIT, UNIT + 1, 123_456_789, 5 << 40, (WINDOW << UNIT_SHIFT) + 77] {
            let start = settle(encode(reading), reading + 3 * UNIT);
            assert!(start >= reading && start < reading + UNIT, "{reading} settled at {start}");
            assert_eq!(settle(encode(reading), reading), units(reading) << UNIT_SHIFT);
        }
    }

    #[test]
    fn a_settled_start_is_never_before_the_reading_however_late_the_settling() {
        let reading = 987_654_321_u64;
        let window = WINDOW << UNIT_SHIFT;
        for late in [0, 1, LONGEST, window - UNIT, window - 1, window, window + 5, 3 * window + 12_345] {
            let start = settle(encode(reading), reading + late);
            assert!(start >= reading, "{late} ns after: settled at {start}");
            assert!(start <= reading + late + UNIT, "{late} ns after: settled at {start}, after now");
        }
        // Within half a window, exactly the reading (rounded up).
        assert_eq!(settle(encode(reading), reading + LONGEST), units(reading) << UNIT_SHIFT);
    }

    #[test]
    fn a_pending_request_settles_at_now() {
        assert_eq!(settle(REQUESTED | 3, 42_000), 42_000);
        assert_eq!(settle(REQUESTED, 0), 0);
    }

    #[test]
    fn a_request_is_listed_once_and_stamped_at_the_next_reading() {
        let (table, index) = table();
        let slot = table.slot(index);
        let readings = Readings::new(2, 1_000);
        assert_eq!(readings.request(index, slot), Some(1_000));
        assert_eq!(readings.request(index, slot), Some(1_000), "a second call of the same poll");
        assert_eq!(readings.len.get(), 1, "listed once");
        readings.record(9_000_000, |_| slot);
        assert!(!readings.has_requests());
        assert_eq!(settle(slot.stamp(), 9_000_000), units(9_000_000) << UNIT_SHIFT);
        assert_eq!(readings.request(index, slot), Some(9_000_000), "the last reading, after it");
    }

    #[test]
    fn a_full_list_refuses_requests() {
        let (table, index) = table();
        let slot = table.slot(index);
        let other = Readings::new(1, 0);
        let readings = Readings::new(0, 0);
        for _ in 0..CAPACITY {
            assert!(readings.request(index, slot).is_some());
            // Another worker's request, stamped: the next request is listed again.
            assert!(other.request(index, slot).is_some());
            other.record(7, |_| slot);
        }
        assert_eq!(readings.request(index, slot), None);
    }

    #[test]
    fn another_workers_mark_is_left_alone() {
        let (table, index) = table();
        let slot = table.slot(index);
        let (mine, theirs) = (Readings::new(0, 0), Readings::new(1, 0));
        assert!(mine.request(index, slot).is_some());
        assert!(theirs.request(index, slot).is_some());
        mine.record(50 * UNIT, |_| slot);
        assert_eq!(slot.stamp(), REQUESTED | 1, "not stamped over another worker's request");
        theirs.record(70 * UNIT, |_| slot);
        assert_eq!(settle(slot.stamp(), 80 * UNIT), 70 * UNIT);
    }
}
