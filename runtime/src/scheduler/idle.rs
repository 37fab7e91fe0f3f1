//! Which workers are searching for work and which are asleep; waking them
//! one at a time.
//!
//! Waking a parked thread costs tens of microseconds on the machines we run
//! on, so the rule is: never wake a worker if one is already searching (it
//! will find the new work), and wake at most one per notification.
//!
//! # Protocol
//!
//! The state word counts searching workers (low half) and sleeping workers
//! (high half); the list of sleepers is under a mutex.
//!
//! 1. *Notify* (after making work visible in a queue): a `SeqCst` fence,
//!    then load the counts. If someone is searching or nobody sleeps, do
//!    nothing. Otherwise, under the mutex, pop one sleeper, count it as
//!    searching (so concurrent notifiers leave the others asleep) and
//!    return it to be unparked.
//! 2. *Sleep* (a worker that found no work): under the mutex, add itself to
//!    the sleepers (and stop counting as searching), then, after a `SeqCst`
//!    fence, look at every queue once more. If there is work, take itself
//!    back out (step 4) instead of parking.
//! 3. Steps 1 and 2 are the two halves of a Dekker handshake: either the
//!    notifier's load sees the sleeper, or the sleeper's re-check sees the
//!    work. A notification is never lost.
//! 4. *Wake up* (timeout, or work seen in step 2): if still in the list,
//!    leave it and count as searching; if a notifier already took it out,
//!    it was counted as searching by that notifier and an unpark is on its
//!    way (the next park returns at once).

use crate::sync::{fence, AtomicU64, Mutex, Ordering};

const SEARCHING_ONE: u64 = 1;
const SLEEPING_ONE: u64 = 1 << 32;
const HALF_MASK: u64 = 0xffff_ffff;

#[inline(always)]
fn searching(state: u64) -> u64 {
    state & HALF_MASK
}

#[inline(always)]
fn sleeping(state: u64) -> u64 {
    state >> 32
}

/// The idle-worker bookkeeping shared by all workers of a runtime.
#[derive(Debug)]
pub(crate) struct Idle {
    state: AtomicU64,
    sleepers: Mutex<Vec<usize>>,
}

impl Idle {
    pub(crate) fn new(workers: usize) -> Idle {
        Idle { state: AtomicU64::new(0), sleepers: Mutex::new(Vec::with_capacity(workers)) }
    }

    /// Step 1: after new work became visible, the worker to unpark, if any.
    #[inline]
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        fence(Ordering::SeqCst);
        let state = self.state.load(Ordering::SeqCst);
        if searching(state) > 0 || sleeping(state) == 0 {
            return None;
        }
        self.notify_slow()
    }

    #[cold]
    fn notify_slow(&self) -> Option<usize> {
        let mut sleepers = self.sleepers.lock();
        if searching(self.state.load(Ordering::SeqCst)) > 0 {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(SEARCHING_ONE, Ordering::SeqCst);
        self.state.fetch_sub(SLEEPING_ONE, Ordering::SeqCst);
        Some(worker)
    }

    /// A worker starts looking for work outside its own queue.
    pub(crate) fn transition_to_searching(&self) {
        self.state.fetch_add(SEARCHING_ONE, Ordering::SeqCst);
    }

    /// A searching worker found work. Returns true if it was the last
    /// searcher, in which case the caller should notify another worker:
    /// where there was work to find there may be more.
    pub(crate) fn transition_from_searching(&self) -> bool {
        searching(self.state.fetch_sub(SEARCHING_ONE, Ordering::SeqCst)) == 1
    }

    /// Step 2, first half: registers `worker` as asleep. The caller must then
    /// re-check every queue before parking.
    pub(crate) fn transition_to_sleeping(&self, worker: usize, was_searching: bool) {
        let mut sleepers = self.sleepers.lock();
        sleepers.push(worker);
        self.state.fetch_add(SLEEPING_ONE, Ordering::SeqCst);
        if was_searching {
            self.state.fetch_sub(SEARCHING_ONE, Ordering::SeqCst);
        }
        drop(sleepers);
        fence(Ordering::SeqCst);
    }

    /// Step 4: `worker` is awake. Returns true if it took itself out of the
    /// sleepers; false if a notifier already did (an unpark is pending).
    /// Either way the worker now counts as searching.
    pub(crate) fn transition_from_sleeping(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        match sleepers.iter().position(|&w| w == worker) {
            Some(at) => {
                sleepers.swap_remove(at);
                self.state.fetch_add(SEARCHING_ONE, Ordering::SeqCst);
                self.state.fetch_sub(SLEEPING_ONE, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// How many workers are registered as asleep.
    pub(crate) fn sleeping(&self) -> usize {
        sleeping(self.state.load(Ordering::SeqCst)) as usize
    }

    /// Every sleeping worker (for shutdown).
    pub(crate) fn sleepers(&self) -> Vec<usize> {
        self.sleepers.lock().clone()
    }
}
