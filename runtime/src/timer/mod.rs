//! Timers: a hierarchical wheel per worker, plus one shared wheel for
//! threads that are not workers.
//!
//! A timer is an entry in a [`Wheel`](wheel::Wheel) of the worker that
//! created it; the worker checks its wheel in its loop (every few dozen
//! polls while busy, and before parking, with the next expiration as the
//! park timeout). No thread exists just for timers and no timer costs a
//! thread wake-up of its own: timers due in the same millisecond fire in
//! one batch, on a worker that is awake anyway or wakes once for all of
//! them.
//!
//! Resolution is one millisecond. A deadline is rounded *up* to the next
//! tick, so a timer never fires early.
//!
//! Removing an entry is O(1) but only the owning worker can touch its
//! wheel; a future that is dropped or completes on another worker (its
//! process was stolen) leaves the entry to fire harmlessly: a stale wake
//! finds the process busy or dead, or polls it once for nothing.
//!
//! A receive with a timeout (`recv_timeout`, `receive!` with `after`, a
//! call's wait: `deadline.rs`) does not arm a timer of its own: its process
//! keeps one standing wake-up timer that serves receive after receive
//! (`standing.rs`), so a process that receives with a timeout again and
//! again arms about one timer per timeout rather than one per receive, and
//! a receive that matches in time touches no wheel. Nor does it read the
//! clock: its deadline counts from the worker's next reading after its
//! first miss, stamped in its slot (`stamp.rs`).

pub(crate) mod deadline;
pub(crate) mod send_after;
pub(crate) mod sleep;
pub(crate) mod stamp;
pub(crate) mod standing;
pub(crate) mod wheel;

use std::task::Waker;
use std::time::{Duration, Instant};

use crate::sync::{Arc, AtomicU64, Mutex, Ordering};

use self::wheel::{TimerKey, Wheel};

/// What a timer does when it fires.
#[derive(Debug)]
pub(crate) enum TimerEntry {
    /// Wake a process (a receive timeout or a sleep).
    Wake { index: u32, serial: u32 },
    /// Deliver a message (`send_after`).
    Send(Arc<send_after::Pending>),
    /// Wake a foreign future (an external mailbox's timeout).
    Waker(Waker),
}

/// Nanoseconds in a tick.
pub(crate) const NANOS_PER_TICK: u64 = 1_000_000;

/// The runtime's clock: nanoseconds since the runtime started, and, divided
/// by [`NANOS_PER_TICK`], milliseconds ("ticks", the wheels' time unit).
///
/// # One frame
///
/// On Linux every reading is `CLOCK_MONOTONIC` (the clock `Instant` reads
/// there too) minus `epoch_nanos`, read just *after* the `Instant` epoch: the
/// wheels' ticks (a worker's reading divided by [`NANOS_PER_TICK`]) and a
/// receive's deadline (`deadline.rs`) are in that one frame, so a timer at
/// the first tick after `at` fires only once [`Clock::now_nanos`] has passed
/// `at`. An `Instant` deadline (sleep, `send_after`) converts to ticks
/// against the `Instant` epoch ([`Clock::ticks_at`]), which is at or before
/// `epoch_nanos`: its tick is never early in the nanosecond frame either.
/// Elsewhere both readings are `Instant`s.
///
/// A receive's deadline is one reading (its worker's, stamped: `stamp.rs`)
/// and an addition, where `Instant` arithmetic costs a hundred instructions
/// more per receive. It is not read from `CLOCK_MONOTONIC_COARSE` (4 ns
/// against 16 here): that clock is supposed to trail the precise one by
/// less than its resolution, but on this machine's VM it trailed by up to
/// 6.6 ms against a resolution of 4 ms (more than 4 ms in over half of 50
/// million paired readings), and a 150 ms call timed out after 149 ms.
#[derive(Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    /// The epoch, in nanoseconds of the monotonic clock.
    #[cfg(target_os = "linux")]
    epoch_nanos: u64,
}

/// The monotonic clock, in nanoseconds.
#[cfg(target_os = "linux")]
#[inline]
fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to, and CLOCK_MONOTONIC
    // exists on every Linux (the call cannot fail with these arguments).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

impl Clock {
    pub(crate) fn new() -> Clock {
        // The `Instant` epoch first, then `epoch_nanos`: see "One frame".
        let epoch = Instant::now();
        Clock {
            epoch,
            #[cfg(target_os = "linux")]
            epoch_nanos: monotonic_nanos(),
        }
    }

    /// Nanoseconds since the epoch.
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        monotonic_nanos().saturating_sub(self.epoch_nanos)
    }

    /// Nanoseconds since the epoch.
    #[cfg(not(target_os = "linux"))]
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The first tick at or after `at` (rounded up, so never early).
    pub(crate) fn ticks_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        let ms = since.as_millis() as u64;
        if Duration::from_millis(ms) < since {
            ms + 1
        } else {
            ms
        }
    }
}

/// The wheel for timers created outside worker threads, under a mutex.
#[derive(Debug)]
pub(crate) struct SharedTimers {
    wheel: Mutex<Wheel<TimerEntry>>,
    /// Earliest pending expiration, `u64::MAX` when empty: lets busy workers
    /// skip the lock.
    next: AtomicU64,
}

impl SharedTimers {
    pub(crate) fn new() -> SharedTimers {
        SharedTimers { wheel: Mutex::new(Wheel::new(0)), next: AtomicU64::new(u64::MAX) }
    }

    /// Adds an entry; returns its key and whether it is now the earliest.
    pub(crate) fn insert(&self, when: u64, entry: TimerEntry) -> (TimerKey, bool) {
        let mut wheel = self.wheel.lock();
        let key = wheel.insert(when, entry);
        let earliest = wheel.next_expiration().unwrap_or(u64::MAX);
        let previous = self.next.swap(earliest, Ordering::AcqRel);
        (key, earliest < previous)
    }

    /// Removes an entry if it has not fired.
    pub(crate) fn remove(&self, key: TimerKey) -> Option<TimerEntry> {
        let mut wheel = self.wheel.lock();
        let entry = wheel.remove(key);
        self.next.store(wheel.next_expiration().unwrap_or(u64::MAX), Ordering::Release);
        entry
    }

    /// The earliest pending expiration (`u64::MAX` if none).
    #[inline]
    pub(crate) fn next_expiration(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Moves every entry due at `now` into `out`.
    pub(crate) fn poll(&self, now: u64, out: &mut Vec<TimerEntry>) {
        if self.next_expiration() > now {
            return;
        }
        let mut wheel = self.wheel.lock();
        wheel.poll(now, out);
        self.next.store(wheel.next_expiration().unwrap_or(u64::MAX), Ordering::Release);
    }

    /// Drops every pending entry (shutdown).
    pub(crate) fn clear(&self) {
        let mut wheel = self.wheel.lock();
        let mut all = Vec::new();
        wheel.poll(u64::MAX, &mut all);
        self.next.store(u64::MAX, Ordering::Release);
        drop(wheel);
        drop(all);
    }
}
