//! Whether spinning pays: the yields of a thread that spins while it waits
//! for work tell it when the cores are oversubscribed.
//!
//! A spinner yields its core between polls (`sched_yield`), so that a thread
//! with work runs first. When other busy threads compete for the cores (CPU
//! hogs, another program), each yield hands the core to one of them for the
//! rest of a time slice (most of a millisecond or more), and the message the
//! spinner waits for sits unread meanwhile; a thread asleep in the kernel is
//! scheduled as soon as it is woken instead. So a thread whose yields are
//! long sleeps at once when idle, for [`NO_SPIN`], and then tries again.
//!
//! Invariant: one long yield is not enough (a busy thread of our own, or the
//! hypervisor, can delay one now and then, and needlessly not spinning costs
//! a wake-up per message): two within [`WINDOW`] are.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A yield this long means another thread held the core: a time slice.
const LONG_YIELD: Duration = Duration::from_micros(200);

/// Two long yields this close together mean the cores are oversubscribed.
const WINDOW: Duration = Duration::from_millis(20);

/// How long a thread that saw the cores oversubscribed does not spin.
const NO_SPIN: Duration = Duration::from_millis(50);

/// One spinning thread's view of contention (not shared between threads).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Contention {
    /// When the last long yield ended.
    last_long: Cell<Option<Instant>>,
    /// Until when the thread sleeps at once when idle.
    no_spin_until: Cell<Option<Instant>>,
}

impl Contention {
    /// Whether the thread may spin at `now`.
    #[inline]
    pub fn may_spin(&self, now: Instant) -> bool {
        self.no_spin_until.get().is_none_or(|until| now >= until)
    }

    /// Yields the core and learns from how long that took: the time after
    /// the yield if the thread may go on spinning, None if it should sleep.
    pub fn yield_now(&self) -> Option<Instant> {
        let before = Instant::now();
        std::thread::yield_now();
        let now = Instant::now();
        if now.duration_since(before) >= LONG_YIELD
            && self.last_long.replace(Some(now)).is_some_and(|last| now.duration_since(last) <= WINDOW)
        {
            self.last_long.set(None);
            self.no_spin_until.set(Some(now + NO_SPIN));
            return None;
        }
        Some(now)
    }
}
