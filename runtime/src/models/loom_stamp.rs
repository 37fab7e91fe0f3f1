//! loom model of the first-miss stamp (`timer/stamp.rs`): a call's first
//! miss asks its worker to stamp its next clock reading in the caller's
//! slot; a later miss, on whichever worker the process then runs, settles
//! the deadline's start from the stamp, or from the clock if none is there
//! yet.
//!
//! It drives the real `Slot` stamp word, each worker's real `Readings` (the
//! request, and the stamping at a reading) and the real `settle`, with two
//! worker threads that hand one process back and forth (a release store
//! and an acquire load, as `BUSY` does) and read their clocks while the
//! other runs it.
//!
//! The clock is a ghost: a reading is the latest reading this thread knows
//! of (a relaxed load: every reading that happens-before it, at least),
//! plus some steps, published with a `fetch_max` so that the values along
//! the modification order only grow. A reading that does not
//! happen-before another may be later than it. That is what a monotonic
//! clock promises, and no more. A worker's reading steps three units (time
//! passes while it works), any other one; the clock starts a few units
//! before the stamp's encoding wraps around, so settling has to tell its
//! windows apart. A call's first miss (S) is a reading taken at the end of
//! its poll, the latest it could count from.
//!
//! # What the model checks (`loom_stamp_migrating_calls`)
//!
//! The process makes four calls, A to D, across four polls:
//!
//! | poll | worker | does |
//! |------|--------|------|
//! | 1    | 0      | first misses of A and D (D keeps A's request) |
//! | 2    | 1      | A's later miss; B's first miss |
//! | 3    | 0      | B's later miss (requested on worker 1); C's first miss |
//! | 4    | 1      | later misses of C and D (D's own request is long gone) |
//!
//! and each worker reads its clock and stamps after it hands the process
//! on, racing the other's poll. Every later miss settles a start no
//! earlier than its call's first miss, and no later than the reading it
//! settles with; a first miss's lower bound (the worker's last reading) is
//! no later than the first miss.
//!
//! The model fails, as it should, with any of these mistakes: a request
//! kept because the stamp asks *some* worker (not this one); a worker
//! stamping unconditionally, or stamping its previous reading; a pending
//! request settled as anything but the clock; the stamp's release and
//! acquire weakened to relaxed (the start then lands a window early).

use std::cell::Cell;

use crate::slot::Slot;
use crate::sync::{thread, Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell};
use crate::timer::stamp::{settle, Readings, UNIT_SHIFT};

/// The process's slot index.
const INDEX: u32 = 3;

/// Where the clock starts: a few steps before the stamp's encoding wraps
/// around (every 2^31 units), so that settling a start has to tell the
/// windows apart.
const START: u64 = ((3 << 31) - 6) << UNIT_SHIFT;

/// A ghost monotonic clock (see the module docs).
struct Clock(AtomicU64);

impl Clock {
    /// A reading `units` after the latest this thread knows of.
    fn read(&self, units: u64) -> u64 {
        let now = self.0.load(Ordering::Relaxed) + (units << UNIT_SHIFT);
        self.0.fetch_max(now, Ordering::Relaxed);
        now
    }
}

/// What the process remembers of one call: its first miss, once missed.
#[derive(Default)]
struct Call {
    first_miss: Option<u64>,
}

/// The process: its slot, its calls, and which worker may run it.
struct Process {
    slot: Slot,
    calls: UnsafeCell<[Call; 4]>,
    holder: AtomicU32,
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

/// One worker thread: the clock and its side of the protocol.
struct Worker {
    index: usize,
    clock: Arc<Clock>,
    process: Arc<Process>,
    readings: Readings,
    /// Its last reading, to check the lower bound against.
    last: Cell<u64>,
}

impl Worker {
    fn new(index: usize, clock: Arc<Clock>, process: Arc<Process>) -> Worker {
        let now = clock.read(1);
        Worker { index, clock, process, readings: Readings::new(index, now), last: Cell::new(now) }
    }

    /// Waits until the process is handed to this worker, then polls it.
    fn poll(&self, f: impl FnOnce(&Worker, &mut [Call; 4])) {
        while self.process.holder.load(Ordering::Acquire) as usize != self.index {
            thread::yield_now();
        }
        // SAFETY: the hand-off (release store, acquire load) makes this
        // worker the process's only owner until it hands it on.
        self.process.calls.with_mut(|calls| f(self, unsafe { &mut *calls }));
    }

    fn hand_to(&self, worker: u32) {
        self.process.holder.store(worker, Ordering::Release);
    }

    /// A reading, stamped before anything else (step 2).
    fn read_clock(&self) {
        let now = self.clock.read(3);
        self.last.set(now);
        self.readings.record(now, |index| {
            assert_eq!(index, INDEX);
            &self.process.slot
        });
    }

    /// Step 1.
    fn first_miss(&self, call: &mut Call) {
        let lower = self.readings.request(INDEX, &self.process.slot).expect("the list has room");
        assert_eq!(lower, self.last.get(), "the lower bound is the worker's last reading");
        let first_miss = self.clock.read(1);
        assert!(lower <= first_miss);
        call.first_miss = Some(first_miss);
    }

    /// Step 3.
    fn later_miss(&self, call: &Call, name: &str) {
        let first_miss = call.first_miss.expect("a later miss comes after the first");
        let stamp = self.process.slot.stamp();
        let now = self.clock.read(1);
        let start = settle(stamp, now);
        assert!(
            start >= first_miss,
            "call {name}: the deadline counts from {start}, before its first miss at {first_miss}"
        );
        assert!(start <= now, "call {name}: the deadline counts from {start}, after now ({now})");
    }
}

#[test]
fn loom_stamp_migrating_calls() {
    loom::model(|| {
        let clock = Arc::new(Clock(AtomicU64::new(START)));
        let process = Arc::new(Process {
            slot: Slot::new(),
            calls: UnsafeCell::new(Default::default()),
            holder: AtomicU32::new(0),
        });
        let zero = {
            let (clock, process) = (clock.clone(), process.clone());
            thread::spawn(move || {
                let w = Worker::new(0, clock, process);
                w.poll(|w, calls| {
                    w.first_miss(&mut calls[A]);
                    w.first_miss(&mut calls[D]);
                });
                w.hand_to(1);
                w.read_clock();
                w.poll(|w, calls| {
                    w.later_miss(&calls[B], "B");
                    w.first_miss(&mut calls[C]);
                });
                w.hand_to(1);
                w.read_clock();
            })
        };
        let one = thread::spawn(move || {
            let w = Worker::new(1, clock, process);
            w.poll(|w, calls| {
                w.later_miss(&calls[A], "A");
                w.first_miss(&mut calls[B]);
            });
            w.hand_to(0);
            w.read_clock();
            w.poll(|w, calls| {
                w.later_miss(&calls[C], "C");
                w.later_miss(&calls[D], "D");
            });
        });
        zero.join().unwrap();
        one.join().unwrap();
    });
}
