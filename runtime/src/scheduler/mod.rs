//! The scheduler: worker threads with local run queues, a run-next slot,
//! work stealing, and idle workers that park and are woken one at a time.
//!
//! A run queue entry is a slot index. Only the thread that set a process's
//! `BUSY` bit (see `slot.rs`) puts it in a queue, so a process is in at most
//! one queue or being polled by at most one worker, never both.
//!
//! Where a runnable process goes:
//! - woken by a message sent from a process on this worker: the worker's
//!   run-next slot, so it runs right after the sender yields (what makes a
//!   ring or a ping-pong stay on one core, in cache); the process it
//!   displaces goes to the back of the local queue. The slot is private:
//!   no other worker steals from it, so a sender that computes without an
//!   `.await` after sending holds up the process it woke (as tokio's LIFO
//!   slot does; making it stealable costs an atomic exchange per take);
//! - spawned, rescheduled after a yield, or woken by a timer on this worker:
//!   the back of the local queue;
//! - woken from any other thread: the shared inject queue, and one parked
//!   worker is woken if none is searching.
//!
//! The per-worker loop is in [`worker`]; the parking protocol in [`idle`].

pub(crate) mod contention;
pub(crate) mod idle;
pub(crate) mod worker;

use crate::sync::deque::{Injector, Stealer};
use crate::sync::Parker;

use self::idle::Idle;

/// The part of the scheduler every thread can reach.
#[derive(Debug)]
pub(crate) struct Scheduler {
    /// Runnable processes woken from outside the workers.
    pub(crate) inject: Injector<u32>,
    /// One stealer per worker's local queue.
    pub(crate) stealers: Box<[Stealer<u32>]>,
    /// One parking spot per worker.
    pub(crate) parkers: Box<[Parker]>,
    pub(crate) idle: Idle,
}

impl Scheduler {
    pub(crate) fn new(stealers: Vec<Stealer<u32>>) -> Scheduler {
        let workers = stealers.len();
        Scheduler {
            inject: Injector::new(),
            stealers: stealers.into_boxed_slice(),
            parkers: (0..workers).map(|_| Parker::default()).collect(),
            idle: Idle::new(workers),
        }
    }

    /// Number of worker threads.
    pub(crate) fn workers(&self) -> usize {
        self.parkers.len()
    }

    /// After new work became visible: wakes one parked worker if nobody is
    /// searching.
    #[inline]
    pub(crate) fn notify(&self) {
        if let Some(worker) = self.idle.worker_to_notify() {
            self.parkers[worker].unpark();
        }
    }

    /// Queues a process from a thread that is not one of our workers.
    pub(crate) fn inject(&self, index: u32) {
        self.inject.push(index);
        self.notify();
    }

    /// Wakes every worker (shutdown, or a timer that may be earlier than
    /// what the sleepers wait for).
    pub(crate) fn unpark_all(&self) {
        for parker in self.parkers.iter() {
            parker.unpark();
        }
    }

    /// Wakes one sleeping worker, even if another is searching (a new early
    /// timer in the shared wheel must be noticed by someone awake).
    pub(crate) fn unpark_one_sleeper(&self) {
        if let Some(&worker) = self.idle.sleepers().first() {
            self.parkers[worker].unpark();
        }
    }
}
