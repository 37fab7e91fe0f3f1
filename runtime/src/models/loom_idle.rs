//! loom models of the idle-worker protocol (`scheduler/idle.rs`): a worker
//! that found no work registers as asleep, re-checks the queues and parks;
//! a producer makes work visible, then asks `worker_to_notify` whom to
//! unpark. A lost notification leaves the worker parked with work queued,
//! which loom reports as a deadlock.
//!
//! The worker runs the sleep part of `Worker::run_loop` step by step
//! (searching, `transition_to_sleeping`, the re-check, `park`,
//! `transition_from_sleeping`, and `transition_from_searching` with its
//! notify when it finds work); the work-stealing deques are not modelled
//! (loom cannot host crossbeam-deque), so a stand-in queue takes their place:
//! - [`Locked`]: a loom `Mutex<VecDeque<u32>>`. The mutex orders the push
//!   and the re-check by itself, so this checks the protocol's logic
//!   (counts, the sleeper list, the token of a `Parker`) but not its fences.
//! - [`Counted`]: an atomic count, pushed with `Release` and checked with
//!   `Acquire`, as the deques' indices are. Nothing but the protocol's two
//!   `SeqCst` fences orders the producer's push-then-load against the
//!   worker's register-then-re-check (the Dekker handshake of `idle.rs`,
//!   step 3), so this is the model that checks the fences. loom models
//!   `SeqCst` fences (it does not fully model `SeqCst` accesses, but the
//!   protocol relies only on the fences).
//!
//! When the last unit of work is taken, the taker shuts the model down as
//! the runtime does (a flag, then every `Parker` unparked), so a worker left
//! parked after that point is not a lost wake-up; before it, nothing else
//! unparks anyone.
//!
//! What the models check:
//! - `loom_idle_worker_takes_work`: one worker, one producer, one unit, with
//!   each stand-in queue: the worker always takes it.
//! - `loom_idle_two_producers`: one worker, two producers racing to notify:
//!   the worker takes both units.
//! - `loom_idle_two_workers`: two workers, one producer: the unit is taken
//!   although a notifier leaves sleepers asleep while another worker is
//!   searching (it must find the work).

use std::collections::VecDeque;

use crate::scheduler::idle::Idle;
use crate::sync::{thread, Arc, AtomicBool, AtomicU32, Mutex, Ordering, Parker};

/// A stand-in for the run queues.
trait WorkQueue: Default + Send + Sync + 'static {
    fn push(&self, work: u32);
    fn pop(&self) -> Option<u32>;
    /// `Scheduler::has_work`.
    fn has_work(&self) -> bool;
}

/// Run queues behind a lock.
#[derive(Default)]
struct Locked(Mutex<VecDeque<u32>>);

impl WorkQueue for Locked {
    fn push(&self, work: u32) {
        self.0.lock().push_back(work);
    }

    fn pop(&self) -> Option<u32> {
        self.0.lock().pop_front()
    }

    fn has_work(&self) -> bool {
        !self.0.lock().is_empty()
    }
}

/// Lock-free run queues reduced to a count of queued units.
#[derive(Default)]
struct Counted(AtomicU32);

impl WorkQueue for Counted {
    fn push(&self, _work: u32) {
        self.0.fetch_add(1, Ordering::Release);
    }

    fn pop(&self) -> Option<u32> {
        let mut n = self.0.load(Ordering::Acquire);
        while n > 0 {
            match self.0.compare_exchange(n, n - 1, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(1),
                Err(actual) => n = actual,
            }
        }
        None
    }

    fn has_work(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
}

/// The part of the scheduler the protocol involves.
struct Sched<Q> {
    idle: Idle,
    parkers: Vec<Parker>,
    queue: Q,
    /// Set once every unit has been taken (the runtime's shutdown flag).
    shutdown: AtomicBool,
    taken: AtomicU32,
    units: u32,
}

impl<Q: WorkQueue> Sched<Q> {
    fn new(workers: usize, units: u32) -> Sched<Q> {
        Sched {
            idle: Idle::new(workers),
            parkers: (0..workers).map(|_| Parker::default()).collect(),
            queue: Q::default(),
            shutdown: AtomicBool::new(false),
            taken: AtomicU32::new(0),
            units,
        }
    }

    /// `Scheduler::notify`.
    fn notify(&self) {
        if let Some(worker) = self.idle.worker_to_notify() {
            self.parkers[worker].unpark();
        }
    }

    /// A producer: makes a unit of work visible, then notifies.
    fn produce(&self, work: u32) {
        self.queue.push(work);
        self.notify();
    }

    /// Counts a unit taken; the taker of the last one shuts down.
    fn took(&self) {
        if self.taken.fetch_add(1, Ordering::AcqRel) + 1 == self.units {
            self.shutdown.store(true, Ordering::Release);
            for parker in &self.parkers {
                parker.unpark();
            }
        }
    }

    /// `Worker::run_loop` without processes, timers or spinning; returns
    /// how many units this worker took.
    fn work(&self, me: usize) -> u32 {
        let mut took = 0;
        let mut searching = false;
        while !self.shutdown.load(Ordering::Acquire) {
            if self.queue.pop().is_some() {
                if searching {
                    searching = false;
                    if self.idle.transition_from_searching() {
                        self.notify();
                    }
                }
                took += 1;
                self.took();
                continue;
            }
            if !searching {
                searching = true;
                self.idle.transition_to_searching();
            }
            // Sleep (idle.rs, step 2).
            self.idle.transition_to_sleeping(me, searching);
            if self.queue.has_work() || self.shutdown.load(Ordering::Acquire) {
                if !self.idle.transition_from_sleeping(me) {
                    // A notifier took us out: its unpark is on the way.
                    self.parkers[me].park(None);
                }
                searching = true;
                continue;
            }
            self.parkers[me].park(None);
            self.idle.transition_from_sleeping(me);
            searching = true;
        }
        if searching {
            self.idle.transition_from_searching();
        }
        took
    }
}

/// Runs `workers` workers and one producer per unit; checks every unit is
/// taken and the idle state is back to nobody searching.
fn run<Q: WorkQueue>(workers: usize, units: u32) {
    let sched = Arc::new(Sched::<Q>::new(workers, units));
    let mut threads = Vec::new();
    for me in 0..workers {
        let sched = sched.clone();
        threads.push(thread::spawn(move || sched.work(me)));
    }
    for work in 0..units {
        let sched = sched.clone();
        threads.push(thread::spawn(move || {
            sched.produce(work);
            0
        }));
    }
    let took: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(took, units, "every unit is taken exactly once");
    assert!(!sched.queue.has_work());
}

#[test]
fn loom_idle_worker_takes_work() {
    loom::model(|| run::<Locked>(1, 1));
    loom::model(|| run::<Counted>(1, 1));
}

#[test]
fn loom_idle_two_producers() {
    loom::model(|| run::<Locked>(1, 2));
    loom::model(|| run::<Counted>(1, 2));
}

#[test]
fn loom_idle_two_workers() {
    loom::model(|| run::<Locked>(2, 1));
    loom::model(|| run::<Counted>(2, 1));
}
