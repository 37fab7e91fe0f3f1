//! The deadline of every receive with a timeout: [`recv_timeout`](crate::recv_timeout),
//! [`receive!`](crate::receive!) with `after`, and a call's wait (`call.rs`).
//!
//! # What it promises
//!
//! The timeout counts from the receive's *first miss*, S: the first poll
//! that finds nothing to take, which for a receive awaited where it is
//! made is when it starts. It never passes early: the receive times out
//! only once the runtime's clock has moved the whole timeout past S. It
//! passes late by as much as a timer does (the tick, and whatever the
//! worker runs before it gets to it), and by the time from S to its
//! worker's next clock reading (below). A zero timeout looks once and
//! times out. A timeout of 2<sup>63</sup> ns (292 years) or more never
//! passes, like none.
//!
//! # What it costs
//!
//! A receive that finds its message at once reads no clock and touches no
//! timer. Nor does the first miss read the clock (`stamp.rs`): it asks its
//! worker to stamp its next reading, which is no earlier than S, in the
//! process's slot, and arms with the worker's last reading, which is no
//! later than S: a timer due by that plus the timeout is due by the
//! deadline. A later miss settles the deadline from the stamp (or from the
//! clock, if the worker has not read it since) and decides with it. A
//! receive that matches at the poll after its first miss (a reply, the
//! common case) reads no clock at all.
//!
//! What wakes the process by the deadline is its standing timer
//! (`standing.rs`), shared by all its timed receives: a receive that finds
//! it pending and due by its deadline arms nothing, and leaves nothing to
//! undo when it matches first. Only if the process's entry of the standing
//! table is held by another process does the receive arm a timer of its own
//! ([`LocalTimer`]), removed when the receive ends or is dropped. So a
//! process that receives with a timeout in a loop arms about one timer per
//! timeout, not one per message; what it leaves behind is its standing
//! timer, which at worst wakes it once for nothing.
//!
//! # Why it never passes early
//!
//! Times are nanoseconds since the runtime clock's epoch
//! ([`Clock::now_nanos`](crate::timer::Clock::now_nanos)): the deadline is
//! decided by comparing two readings of that clock, never by a timer
//! firing. A timer only wakes the process to look: woken early (by a
//! timer of an earlier receive, one on the worker it left, or one armed
//! with the lower bound), the receive makes sure of a timer again and
//! waits on. The timer's tick, the first after the deadline, is in the same
//! frame (see `timer/mod.rs`): when it fires, the deadline has passed.

use std::time::{Duration, Instant};

use crate::scheduler::worker::{with_worker, Current, Worker};
use crate::timer::stamp::LONGEST;
use crate::timer::wheel::TimerKey;
use crate::timer::NANOS_PER_TICK;

/// When a receive with a timeout gives up (see the module docs).
#[derive(Debug)]
pub(crate) struct Deadline {
    /// The timeout, in nanoseconds (below 2<sup>63</sup>; [`NEVER`] for
    /// none), with [`STAMPED`] set from a first miss that asked for a stamp
    /// until a later miss settles the deadline (a flag in a word the
    /// receive has anyway: a field more costs a call's future a dozen
    /// instructions).
    timeout: u64,
    /// From the first miss on: the deadline, or [`NEVER`] for one beyond
    /// the clock's range; [`UNSET`] before; [`NEVER`] from the start for a
    /// receive without a timeout. While [`STAMPED`], a lower bound of the
    /// deadline: the worker's last reading before the first miss, plus the
    /// timeout.
    at: u64,
    /// A timer of the receive's own, when the standing table had no room.
    timer: Option<LocalTimer>,
}

/// [`Deadline::at`] before the first miss (a deadline after it is never 0:
/// it is at least 1 ns after the epoch).
const UNSET: u64 = 0;
/// [`Deadline::at`] for a deadline that never comes.
const NEVER: u64 = u64::MAX;
/// In [`Deadline::timeout`]: the deadline is not settled yet. Only a
/// timeout of at most [`LONGEST`] asks for a stamp, and a timeout with this
/// bit set is no timeout ([`Deadline::new`]), so the flag is never mistaken
/// for part of a timeout.
const STAMPED: u64 = 1 << 63;
const _: () = assert!(LONGEST < STAMPED);

impl Deadline {
    /// `timeout` from the first miss.
    #[inline]
    pub(crate) fn new(timeout: Duration) -> Deadline {
        match u64::try_from(timeout.as_nanos()) {
            Ok(nanos) if nanos < STAMPED => Deadline { timeout: nanos, at: UNSET, timer: None },
            _ => Deadline::never(),
        }
    }

    /// No timeout: the receive waits until it matches.
    #[inline]
    pub(crate) const fn never() -> Deadline {
        Deadline { timeout: NEVER, at: NEVER, timer: None }
    }

    /// [`Deadline::new`], or [`Deadline::never`] for None.
    #[inline]
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::never(), Deadline::new)
    }

    /// After a miss: whether the deadline has passed; if not, makes sure a
    /// timer wakes the process by then.
    #[inline(always)]
    pub(crate) fn has_passed(&mut self, worker: &Worker, current: Current) -> bool {
        let at = if self.at == UNSET {
            if self.timeout == 0 {
                return true;
            }
            // The first miss: the deadline starts now. It cannot have passed.
            let last = if self.timeout <= LONGEST { worker.request_reading(current) } else { None };
            self.at = match last {
                // A lower bound of the deadline, to arm with (at least 1).
                Some(last) => {
                    let at = last.saturating_add(self.timeout);
                    self.timeout |= STAMPED;
                    at
                }
                None => worker.shared.clock.now_nanos().saturating_add(self.timeout),
            };
            self.at
        } else if self.at == NEVER {
            return false;
        } else if self.timeout & STAMPED != 0 {
            if self.settle(worker) {
                return true;
            }
            self.at
        } else {
            if worker.shared.clock.now_nanos() >= self.at {
                return true;
            }
            self.at
        };
        if at == NEVER {
            return false;
        }
        // The first tick after the deadline (at most one tick late).
        let when = at / NANOS_PER_TICK + 1;
        if !worker.has_wake_by(current, when) {
            self.arm(worker, current, when);
        }
        false
    }

    /// The receive matched: a timer of its own is removed (a standing one
    /// stays for the next receive).
    #[inline]
    pub(crate) fn matched(&mut self) {
        self.timer = None;
    }

    /// The receive timed out.
    #[inline]
    pub(crate) fn expired(&mut self) {
        self.timer = None;
    }

    /// A later miss of a receive that asked for a stamp: the deadline
    /// counts from the stamped reading, or from now if there is none yet
    /// (see `stamp.rs`, step 3); whether it has passed.
    #[cold]
    #[inline(never)]
    fn settle(&mut self, worker: &Worker) -> bool {
        self.timeout &= !STAMPED;
        // The stamp before the clock: a stamped reading happens-before `now`.
        let stamp = worker.current_stamp();
        let now = worker.shared.clock.now_nanos();
        self.at = crate::timer::stamp::settle(stamp, now).saturating_add(self.timeout);
        now >= self.at
    }

    /// Makes sure a timer wakes the process by tick `when`, when its standing
    /// timer does not: the standing timer re-armed, or one of the receive's own.
    #[cold]
    #[inline(never)]
    fn arm(&mut self, worker: &Worker, current: Current, when: u64) {
        if self.timer.as_ref().is_some_and(|t| t.tick <= when && t.is_on(worker) && worker.is_armed(t.key)) {
            return;
        }
        // None yet, one that fired before the deadline, or one on another worker.
        self.timer = None;
        if !worker.stand_wake_by(current, when) {
            let key = worker.arm_wake(when, current);
            self.timer = Some(LocalTimer { node: worker.shared.node, worker: worker.index as u32, key, tick: when });
        }
    }
}

/// A timer in one worker's wheel; removed on drop if still on that worker.
#[derive(Debug)]
pub(crate) struct LocalTimer {
    node: u32,
    worker: u32,
    key: TimerKey,
    /// When it fires.
    tick: u64,
}

impl LocalTimer {
    /// Arms a wake-up of the current process at `at`.
    pub(crate) fn arm(worker: &Worker, current: Current, at: Instant) -> LocalTimer {
        let when = worker.shared.clock.ticks_at(at);
        LocalTimer {
            node: worker.shared.node,
            worker: worker.index as u32,
            key: worker.arm_wake(when, current),
            tick: when,
        }
    }

    /// Whether it is a timer of `worker`.
    fn is_on(&self, worker: &Worker) -> bool {
        self.node == worker.shared.node && self.worker as usize == worker.index
    }
}

impl Drop for LocalTimer {
    fn drop(&mut self) {
        with_worker(|w| {
            if let Some(w) = w.filter(|w| w.shared.node == self.node && w.index == self.worker as usize) {
                w.disarm(self.key);
            }
        });
    }
}
