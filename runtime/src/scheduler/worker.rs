//! One worker thread: its run queues, its timer wheel, and its loop.
//!
//! # The loop
//!
//! 1. Take the next process: every 61st tick first run maintenance (timers)
//!    and look at the inject queue, for fairness; then the run-next slot
//!    (unless it has won [`MAX_RUN_NEXT_STREAK`] times in a row while the
//!    local queue waits); then the local queue; then the inject queue.
//! 2. Poll it (see [`Worker::run_process`]): `Ready` or a panic ends the
//!    process; `Pending` makes it idle or, if it was woken meanwhile,
//!    sends it to the back of the local queue.
//! 3. With nothing local: fire due timers; then, counted as *searching*,
//!    steal from the inject queue and other workers for up to
//!    [`SPIN`]; then register as asleep, re-check every queue (see
//!    `idle.rs` for why), and park until notified or until the next timer.
//!
//! The worker reads the clock when it fires timers (at step 1's
//! maintenance while it has timers or a call waits for a reading, and at
//! step 3), before it parks (for its timeout, if it has timers) and after. Each reading is
//! first stamped in the slots of the calls that asked for it
//! (`timer/stamp.rs`), so a call's first miss needs no reading of its own.
//!
//! # Context
//!
//! While a worker thread runs, a thread-local points at its `Worker`; while
//! it polls a process, `current` holds that process's slot index and
//! serial. This is how `self_pid()`, `recv()`, `spawn()` and the timers find
//! their process and runtime without any argument.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::envelope::Envelope;
use crate::exit::{panic_message, ExitReason, IntoExitReason};
use crate::pid::Pid;
use crate::receive::PollBook;
use crate::refs::RefBlock;
use crate::runtime::Shared;
use crate::scheduler::contention::Contention;
use crate::slot::{serial_of, AfterPoll, Delivery, Extras, Owner, Slot, Wake, EXITING};
use crate::sync::deque::{Steal, Worker as LocalQueue};
use crate::sync::global::Arc;
use crate::task::TaskRef;
use crate::timer::stamp::Readings;
use crate::timer::standing::{StandingTimers, Vacancy};
use crate::timer::wheel::{TimerKey, Wheel};
use crate::timer::{TimerEntry, NANOS_PER_TICK};
use crate::waker;

/// Receives a process may complete in one poll before it must yield
/// (Erlang's reductions, counted in receives).
pub(crate) const RECEIVE_BUDGET: u32 = 256;

/// How many times in a row the run-next slot may win over a non-empty
/// local queue.
const MAX_RUN_NEXT_STREAK: u32 = 16;

/// How long an out-of-work worker keeps looking before it parks. Parking and
/// being woken costs tens of microseconds here, so spinning about that long
/// is cheaper whenever new work is likely to appear.
const SPIN: Duration = Duration::from_micros(50);

/// How often a searching worker judges the other workers' backlogs.
const SAMPLE: Duration = Duration::from_micros(20);

/// What moving work to another core costs (a wake-up, cold caches, and the
/// processes' messages then crossing cores): steal only backlogs that would
/// take longer than this to drain where they are.
const MIGRATION_COST: Duration = Duration::from_micros(50);

/// A parked worker re-examines the others' backlogs this often while any
/// other worker is awake (message wake-ups do not notify sleepers).
const REBALANCE_EVERY: Duration = Duration::from_millis(5);

/// How many free slot indices a worker keeps before giving some back.
const FREE_CACHE_MAX: usize = 512;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's worker, if the thread is a worker.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    let worker = WORKER.with(Cell::get);
    // SAFETY: the pointer is set only while the worker's `run` frame (which
    // owns the Worker) is alive on this thread, and cleared before it ends.
    f(unsafe { worker.as_ref() })
}

/// Runs `f` with the worker, the process being polled on this thread, and
/// its slot.
///
/// # Panics
/// If called outside a krarup process; `what` names the operation.
#[inline]
pub(crate) fn with_current<R>(what: &str, f: impl FnOnce(&Worker, Current, &Slot) -> R) -> R {
    with_worker(|worker| match worker.and_then(|w| w.current.get().map(|c| (w, c))) {
        // SAFETY: `current_slot` points into the table (which outlives the
        // worker) and is set together with `current`.
        Some((worker, current)) => f(worker, current, unsafe { &*worker.current_slot.get() }),
        None => outside_process(what),
    })
}

/// Runs `f` with the worker, the process being polled and the owner's hold
/// on its mailbox ([`Owner`]): for what takes messages out of the inner
/// queue (receives, `demonitor`'s flush, an abandoned call's reply).
///
/// # Panics
/// If called outside a krarup process, or from user code that runs while
/// the inner queue is held ([`while_holding`]): a `receive!` guard, or a
/// message's `Deserialize` run by a receive.
#[inline(always)]
pub(crate) fn with_owner<R>(what: &str, f: impl FnOnce(&Worker, Current, &mut Owner<'_>) -> R) -> R {
    with_current(what, |worker, current, slot| {
        if worker.holding.get() {
            mailbox_in_use();
        }
        // SAFETY: this worker polls the process (`with_current`: `BUSY`).
        // An `Owner` borrows the inner queue only inside its own methods,
        // and what runs there makes no other `Owner`: crate code does not,
        // and user code runs there only inside `while_holding`, where this
        // function refuses (above).
        f(worker, current, &mut unsafe { Owner::new(slot) })
    })
}

/// Runs `f`, user code that runs while an [`Owner`] holds the current
/// process's inner queue (a `receive!`'s guards, a message's `Deserialize`):
/// until it returns, [`with_owner`] panics instead of handing out another
/// `Owner`.
#[inline(always)]
pub(crate) fn while_holding<R>(worker: &Worker, f: impl FnOnce() -> R) -> R {
    let was = worker.holding.replace(true);
    let _restore = Restore(&worker.holding, was);
    f()
}

/// Puts the flag back as it was when dropped, also on a panic.
struct Restore<'a>(&'a Cell<bool>, bool);

impl Drop for Restore<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

#[cold]
#[inline(never)]
fn mailbox_in_use() -> ! {
    panic!(
        "krarup: a receive! guard (or a message's Deserialize, run by a receive) touched its process's mailbox \
         (started a receive, demonitored or abandoned a call): guards must not have side effects"
    )
}

#[cold]
#[inline(never)]
fn outside_process(what: &str) -> ! {
    panic!("krarup: `{what}` must be called from within a krarup process (spawned on a Runtime, or inside Runtime::block_on)")
}

/// The process being polled: its slot index and serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Current {
    pub(crate) index: u32,
    pub(crate) serial: u32,
}

/// Per-worker counters, written only by their worker (no RMW on hot paths).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct WorkerStats {
    pub(crate) spawned: crate::sync::AtomicU64,
    pub(crate) exited: crate::sync::AtomicU64,
    /// Processes polled: other workers read it to judge this one's backlog.
    pub(crate) polls: crate::sync::AtomicU64,
}

impl WorkerStats {
    #[inline]
    fn bump(counter: &crate::sync::AtomicU64) {
        use crate::sync::Ordering::Relaxed;
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }
}

/// A worker thread's own state.
pub(crate) struct Worker {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    local: LocalQueue<u32>,
    run_next: Cell<Option<u32>>,
    run_next_streak: Cell<u32>,
    tick: Cell<u32>,
    current: Cell<Option<Current>>,
    /// The slot of `current` (valid while `current` is Some).
    current_slot: Cell<*const Slot>,
    budget: Cell<u32>,
    /// Set while user code runs with the current process's inner queue
    /// held ([`while_holding`]): [`with_owner`] refuses meanwhile.
    holding: Cell<bool>,
    /// What the receives of the current poll did (see `receive::PollBook`).
    book: PollBook,
    /// Processes polled (published to `WorkerStats::polls` now and then).
    polls: Cell<u64>,
    wheel: RefCell<Wheel<TimerEntry>>,
    /// Each process's wake-up timer shared by its calls (`timer/standing.rs`).
    standing: StandingTimers,
    /// Monitor ids and call tags not handed out yet (`refs.rs`).
    refs: RefBlock,
    /// The last clock reading, and the calls waiting for the next one
    /// (`timer/stamp.rs`). Every reading goes through [`Worker::read_clock`].
    readings: Readings,
    expired: RefCell<Vec<TimerEntry>>,
    free: RefCell<Vec<u32>>,
    rng: Cell<u32>,
    /// Other workers' poll counts at the last sample (see `search`).
    samples: RefCell<Vec<u64>>,
    /// The worker we are helping with its backlog, while it has one.
    victim: Cell<Option<usize>>,
    /// Whether spinning pays (`contention.rs`).
    contention: Contention,
}

/// The worker thread's body.
pub(crate) fn run(shared: Arc<Shared>, index: usize, local: LocalQueue<u32>) {
    let nanos = shared.clock.now_nanos();
    let now = nanos / NANOS_PER_TICK;
    let worker = Worker {
        index,
        shared,
        local,
        run_next: Cell::new(None),
        run_next_streak: Cell::new(0),
        tick: Cell::new(0),
        current: Cell::new(None),
        current_slot: Cell::new(ptr::null()),
        budget: Cell::new(RECEIVE_BUDGET),
        holding: Cell::new(false),
        book: PollBook::default(),
        polls: Cell::new(0),
        wheel: RefCell::new(Wheel::new(now)),
        standing: StandingTimers::new(now),
        refs: RefBlock::default(),
        readings: Readings::new(index, nanos),
        expired: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        rng: Cell::new(0x9e37_79b9 ^ (index as u32 + 1)),
        samples: RefCell::new(Vec::new()),
        victim: Cell::new(None),
        contention: Contention::default(),
    };
    WORKER.with(|w| w.set(&worker));
    // A panic in a process unwinds out of the loop (no catch per poll: it
    // would cost every poll); the worker ends that process and goes on.
    while let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| worker.run_loop())) {
        worker.recover(payload);
    }
    WORKER.with(|w| w.set(ptr::null()));
    worker.retire();
}

impl Worker {
    fn run_loop(&self) {
        let sched = &self.shared.sched;
        let mut searching = false;
        'outer: while !self.shared.is_shutdown() {
            if let Some(index) = self.next_process() {
                if searching {
                    searching = false;
                    if sched.idle.transition_from_searching() {
                        sched.notify();
                    }
                }
                self.run_process(index);
                continue;
            }
            if self.fire_timers() > 0 {
                continue;
            }
            if !searching {
                searching = true;
                sched.idle.transition_to_searching();
            }
            if let Some(index) = self.search() {
                self.local.push(index);
                continue;
            }
            if self.shared.is_shutdown() {
                break 'outer;
            }
            // Sleep (idle.rs, step 2). Only the inject queue can hold work that
            // nobody is running; other workers' queues are their own business
            // unless we judge them backlogged (see `search`), so a non-empty
            // one only shortens our nap.
            sched.idle.transition_to_sleeping(self.index, searching);
            if !sched.inject.is_empty() || self.shared.is_shutdown() {
                if !sched.idle.transition_from_sleeping(self.index) {
                    sched.parkers[self.index].park(None);
                }
                searching = true;
                continue;
            }
            let timeout = self.park_timeout();
            sched.parkers[self.index].park(timeout);
            sched.idle.transition_from_sleeping(self.index);
            // A fresh lower bound for the calls about to run (`timer/stamp.rs`).
            self.read_clock();
            searching = true;
        }
        if searching {
            sched.idle.transition_from_searching();
        }
    }

    /// Step 1 of the loop.
    #[inline]
    fn next_process(&self) -> Option<u32> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(61) {
            self.fire_timers();
            if let Some(index) = self.pop_inject() {
                return Some(index);
            }
        }
        if let Some(index) = self.run_next.take() {
            let streak = self.run_next_streak.get();
            if streak < MAX_RUN_NEXT_STREAK || self.local.is_empty() {
                self.run_next_streak.set(streak + 1);
                return Some(index);
            }
            self.local.push(index);
        }
        self.run_next_streak.set(0);
        self.local.pop().or_else(|| self.pop_inject())
    }

    fn pop_inject(&self) -> Option<u32> {
        let inject = &self.shared.sched.inject;
        if inject.is_empty() {
            return None;
        }
        loop {
            match inject.steal_batch_and_pop(&self.local) {
                Steal::Success(index) => return Some(index),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Step 3 of the loop: looks for work for up to [`SPIN`]: the inject
    /// queue at once, another worker's queue only if it is backlogged (see
    /// [`Worker::backlogged_victim`]).
    fn search(&self) -> Option<u32> {
        // A victim judged backlogged stays our victim while it has work.
        if let Some(victim) = self.victim.get() {
            if let Some(index) = self.steal_from(victim) {
                return Some(index);
            }
            self.victim.set(None);
        }
        let started = Instant::now();
        if !self.contention.may_spin(started) {
            return self.pop_inject();
        }
        let mut sampled = started;
        self.sample_victims();
        let mut spins = 0u32;
        loop {
            if let Some(index) = self.pop_inject() {
                return Some(index);
            }
            if self.shared.is_shutdown() {
                return None;
            }
            spins += 1;
            if !spins.is_multiple_of(32) {
                std::hint::spin_loop();
                continue;
            }
            // Let a thread that has work run first: with more runnable
            // threads than cores (a network node's I/O thread, another OS
            // process), a spinner that never yields holds a core for a whole
            // time slice while the thread it waits for cannot run. Unless the
            // cores are oversubscribed: then park at once.
            let now = self.contention.yield_now()?;
            if now.duration_since(sampled) >= SAMPLE {
                if let Some(victim) = self.backlogged_victim(now.duration_since(sampled)) {
                    if let Some(index) = self.steal_from(victim) {
                        self.victim.set(Some(victim));
                        return Some(index);
                    }
                }
                self.sample_victims();
                sampled = now;
            }
            if now.duration_since(started) >= SPIN {
                return None;
            }
        }
    }

    /// Records every other worker's poll count, to measure its progress.
    fn sample_victims(&self) {
        let mut samples = self.samples.borrow_mut();
        samples.clear();
        samples.extend(self.shared.worker_stats.iter().map(|s| s.polls.load(crate::sync::Ordering::Relaxed)));
    }

    /// A worker whose queue would take longer than [`MIGRATION_COST`] to
    /// drain at the rate it polled since the last sample (or which is stuck
    /// in one long poll). Moving work only pays then: a backlog that drains
    /// faster than a wake-up and a cache refill is better left where it is,
    /// in cache — as with 100 clients of one server, who would only bounce
    /// back to the server's worker after one call.
    fn backlogged_victim(&self, elapsed: Duration) -> Option<usize> {
        let samples = self.samples.borrow();
        let stealers = &self.shared.sched.stealers;
        let n = stealers.len();
        let start = self.next_random() as usize % n.max(1);
        (0..n).map(|k| (start + k) % n).filter(|&v| v != self.index).find(|&victim| {
            let backlog = stealers[victim].len() as u64;
            if backlog == 0 {
                return false;
            }
            let polled = self.shared.worker_stats[victim].polls.load(crate::sync::Ordering::Relaxed)
                - samples.get(victim).copied().unwrap_or(0);
            // drain time = backlog / rate = backlog * elapsed / polled
            polled == 0 || u128::from(backlog) * elapsed.as_nanos() > u128::from(polled) * MIGRATION_COST.as_nanos()
        })
    }

    fn steal_from(&self, victim: usize) -> Option<u32> {
        loop {
            match self.shared.sched.stealers[victim].steal_batch_and_pop(&self.local) {
                Steal::Success(index) => return Some(index),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    fn next_random(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }

    /// Step 2 of the loop: polls process `index` once.
    fn run_process(&self, index: u32) {
        let slot = self.shared.table.slot(index);
        let word = slot.load();
        let serial = serial_of(word);
        if word & EXITING != 0 {
            // An exit signal was accepted: end the process instead of polling it.
            let reason = slot.take_exit_reason();
            self.exit(slot, index, serial, reason);
            return;
        }
        // SAFETY: a queued index is owned by whoever dequeued it: us (BUSY).
        let Some(task) = (unsafe { slot.task() }) else {
            debug_assert!(false, "queued slot {index} has no task");
            return;
        };
        self.current.set(Some(Current { index, serial }));
        self.current_slot.set(slot);
        self.count_poll();
        self.budget.set(RECEIVE_BUDGET);
        self.book.start();
        let waker = ManuallyDrop::new(waker::borrowed(self));
        let mut cx = Context::from_waker(&waker);
        // SAFETY: we own the process (BUSY); the task is live until we clear
        // it. A panic unwinds to `run`, which calls `recover`.
        let result = unsafe { task.poll(&mut cx) };
        self.current.set(None);
        match result {
            Poll::Pending => {
                if self.book.is_stale() {
                    // A receive went pending before another moved new
                    // messages inside (see `receive::PollBook`): poll again.
                    slot.notify_self();
                }
                // SAFETY: we are the BUSY holder.
                if unsafe { slot.transition_to_idle() } == AfterPoll::Reschedule {
                    self.local.push(index);
                }
            }
            Poll::Ready(reason) => self.exit(slot, index, serial, reason),
        }
    }

    /// After a panic unwound out of the loop: if a process was being
    /// polled, it exits with the panic as its reason (the worker survives);
    /// a panic outside any process (a message's `Drop`, say) is logged.
    #[cold]
    fn recover(&self, payload: Box<dyn std::any::Any + Send>) {
        let reason = ExitReason::Panic(panic_message(&*payload));
        // Dropping a payload can itself panic; never let that out.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
        self.holding.set(false);
        match self.current.take() {
            Some(Current { index, serial }) => {
                // SAFETY: `current_slot` is the slot of `current`, set together.
                let slot = unsafe { &*self.current_slot.get() };
                self.exit(slot, index, serial, reason);
            }
            None => tracing::error!(%reason, "krarup: a worker recovered from a panic outside any process"),
        }
    }

    /// Counts a poll; published every 16 for thieves judging our backlog.
    #[inline]
    fn count_poll(&self) {
        let polls = self.polls.get().wrapping_add(1);
        self.polls.set(polls);
        if polls.is_multiple_of(16) {
            self.shared.worker_stats[self.index].polls.store(polls, crate::sync::Ordering::Relaxed);
        }
    }

    /// Ends incarnation `serial` of the process in `slot` (we own it).
    fn exit(&self, slot: &Slot, index: u32, serial: u32, reason: ExitReason) {
        let pid = Pid::from_parts(self.shared.node, index, serial);
        // SAFETY: we are the BUSY holder of this slot.
        let remains = unsafe { self.shared.end_incarnation(slot) };
        report_exit(pid, &reason);
        self.shared.after_exit(pid, remains, reason);
        WorkerStats::bump(&self.shared.worker_stats[self.index].exited);
        self.free_slot(index, slot);
    }

    /// Returns a slot index to this worker's cache (or the table's list).
    fn free_slot(&self, index: u32, slot: &Slot) {
        if !slot.is_reusable() {
            return;
        }
        let mut free = self.free.borrow_mut();
        free.push(index);
        if free.len() > FREE_CACHE_MAX {
            let spill = free.split_off(FREE_CACHE_MAX / 2);
            self.shared.table.release(spill);
        }
    }

    /// A free slot index for a new process.
    #[inline]
    fn alloc_slot(&self) -> u32 {
        let mut free = self.free.borrow_mut();
        if let Some(index) = free.pop() {
            return index;
        }
        self.shared.table.alloc_into(&mut free, 64);
        free.pop().expect("table handed out an index")
    }

    /// Spawns `future` as a process of this worker's runtime.
    #[inline]
    pub(crate) fn spawn<F>(&self, future: F) -> Pid
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        self.spawn_with(future, |_| {})
    }

    /// Spawns `future`, running `setup` with the new Pid after the process
    /// is live but before it is first queued (links and monitors of
    /// `spawn_link` and `spawn_monitor`: the child cannot exit before).
    pub(crate) fn spawn_with<F>(&self, future: F, setup: impl FnOnce(Pid)) -> Pid
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        let index = self.alloc_slot();
        let slot = self.shared.table.slot(index);
        // SAFETY: the index came from the free list: nobody owns the slot,
        // and its storage stays in place until the task is dropped at exit.
        let serial = unsafe { slot.transition_to_live(|storage| Some(TaskRef::new_in(future, storage)), false) };
        WorkerStats::bump(&self.shared.worker_stats[self.index].spawned);
        let pid = Pid::from_parts(self.shared.node, index, serial);
        setup(pid);
        self.local.push(index);
        self.shared.sched.notify();
        pid
    }

    /// Delivers a message to a process of this worker's runtime.
    #[inline]
    pub(crate) fn deliver(&self, pid: Pid, env: Envelope) {
        match self.shared.table.get(pid.index()) {
            Some(slot) => self.after_delivery(pid.index(), slot.deliver(pid.serial(), env)),
            None => self.shared.count_dropped(),
        }
    }

    /// [`Worker::deliver`] with a veto (see `Slot::deliver_unless`).
    #[inline(always)]
    pub(crate) fn deliver_unless(&self, pid: Pid, env: Envelope, refuse: impl crate::awaits::Veto) {
        match self.shared.table.get(pid.index()) {
            Some(slot) => self.after_delivery(pid.index(), slot.deliver_unless(pid.serial(), env, refuse)),
            None => self.shared.count_dropped(),
        }
    }

    /// [`Worker::deliver`] with a setup of the target's extras in the same
    /// lock section (see `Slot::deliver_with`); whether the target was alive.
    #[inline]
    pub(crate) fn deliver_with(&self, pid: Pid, env: Envelope, setup: impl FnOnce(&mut Extras)) -> bool {
        match self.shared.table.get(pid.index()) {
            Some(slot) => {
                let delivery = slot.deliver_with(pid.serial(), env, setup);
                let queued = matches!(delivery, Delivery::Queued(_));
                self.after_delivery(pid.index(), delivery);
                queued
            }
            None => {
                self.shared.count_dropped();
                false
            }
        }
    }

    #[inline(always)]
    fn after_delivery(&self, index: u32, delivery: Delivery) {
        match delivery {
            Delivery::Queued(Wake::None) => {}
            Delivery::Queued(Wake::Schedule) => self.schedule_woken(index),
            Delivery::Queued(Wake::Waker(waker)) => waker.wake(),
            Delivery::Dead(env) => {
                self.shared.count_dropped();
                drop(env);
            }
            Delivery::Refused(env) => drop(env),
        }
    }

    /// Queues a process woken by something this worker did: into the
    /// run-next slot if a process is running (it sent the message), else to
    /// the back of the local queue. Message wake-ups are the hot path: they
    /// never wake a sleeping worker (idle workers find backlogs themselves,
    /// see `search`).
    #[inline]
    pub(crate) fn schedule_woken(&self, index: u32) {
        if self.current.get().is_some() {
            if let Some(displaced) = self.run_next.replace(Some(index)) {
                self.local.push(displaced);
            }
        } else {
            self.local.push(index);
        }
    }

    /// Queues a process at the back of the local queue.
    #[inline]
    pub(crate) fn schedule_back(&self, index: u32) {
        self.local.push(index);
    }

    /// The process being polled.
    #[inline]
    pub(crate) fn current(&self) -> Option<Current> {
        self.current.get()
    }

    /// Takes one unit of the receive budget; false when it is used up (the
    /// caller must yield).
    #[inline]
    pub(crate) fn consume_budget(&self) -> bool {
        let b = self.budget.get();
        if b == 0 {
            return false;
        }
        self.budget.set(b - 1);
        true
    }

    /// A remote send of the current poll was queued over its connection's
    /// limit: the process's next receive pauses until `gate` opens (see
    /// `PollBook::throttle`).
    pub(crate) fn throttle(&self, gate: crate::sync::global::Arc<crate::dist::Gate>) {
        self.book.throttle(gate);
        self.budget.set(0);
    }

    /// A fresh monitor id or call tag, unique in this runtime (`refs.rs`).
    #[inline]
    pub(crate) fn fresh_ref(&self) -> u64 {
        self.refs.fresh(&self.shared.refs)
    }

    /// What the receives of the current poll did.
    #[inline]
    pub(crate) fn book(&self) -> &PollBook {
        &self.book
    }

    /// Whether user code runs with the current process's inner queue held
    /// (inside a `receive!` guard, say): see [`while_holding`].
    #[inline]
    pub(crate) fn is_holding(&self) -> bool {
        self.holding.get()
    }

    /// Schedules a timer that wakes the current process at `when` (ticks).
    pub(crate) fn arm_wake(&self, when: u64, current: Current) -> TimerKey {
        self.wheel.borrow_mut().insert(when, TimerEntry::Wake { index: current.index, serial: current.serial })
    }

    /// Whether the current process's standing timer (`timer/standing.rs`)
    /// wakes it by tick `when`: the hot path of a call that has to wait.
    #[inline(always)]
    pub(crate) fn has_wake_by(&self, current: Current, when: u64) -> bool {
        self.standing.covers(current, when)
    }

    /// Makes the current process's standing timer wake it by tick `when`,
    /// replacing one due later; false if its slot of the table holds another
    /// process's pending timer (the caller then arms its own).
    pub(crate) fn stand_wake_by(&self, current: Current, when: u64) -> bool {
        let is_alive = |index, serial| self.shared.is_alive(Pid::from_parts(self.shared.node, index, serial));
        match self.standing.vacancy(current, is_alive) {
            Vacancy::Free => {}
            Vacancy::Replace(key) => self.disarm(key),
            Vacancy::Taken => return false,
        }
        // After the wheel's clock (invariant 1 of `standing.rs`): one at or
        // before it would fire at the next poll, which a deadline read from
        // the same clock never asks for.
        let when = when.max(self.standing.fired_through() + 1);
        let key = self.arm_wake(when, current);
        self.standing.set(current, when, key);
        true
    }

    /// Whether the timer `key` of this worker's wheel is still pending.
    #[inline]
    pub(crate) fn is_armed(&self, key: TimerKey) -> bool {
        self.wheel.borrow().contains(key)
    }

    /// Schedules a `send_after` timer in this worker's wheel.
    pub(crate) fn arm_entry(&self, when: u64, entry: TimerEntry) -> TimerKey {
        self.wheel.borrow_mut().insert(when, entry)
    }

    /// Removes a timer of this worker's wheel if it has not fired.
    pub(crate) fn disarm(&self, key: TimerKey) {
        let removed = self.wheel.borrow_mut().remove(key);
        drop(removed);
    }

    /// Reads the clock (nanoseconds since its epoch) and first stamps the
    /// reading in the slots of the calls that asked for it
    /// (`timer/stamp.rs`, step 2): no poll may come between the two.
    #[inline]
    fn read_clock(&self) -> u64 {
        let now = self.shared.clock.now_nanos();
        self.readings.record(now, |index| self.shared.table.slot(index));
        now
    }

    /// A call's first miss in the current process: asks that this worker's
    /// next clock reading be stamped in its slot, and returns the last one
    /// (no later than now); None if it cannot (the caller reads the clock).
    /// See `timer/stamp.rs`, step 1.
    #[inline(always)]
    pub(crate) fn request_reading(&self, current: Current) -> Option<u64> {
        // SAFETY: `current_slot` is the slot of `current`, set together, and
        // points into the table, which outlives the worker.
        let slot = unsafe { &*self.current_slot.get() };
        self.readings.request(current.index, slot)
    }

    /// The current process's stamp (`timer/stamp.rs`, step 3).
    #[inline]
    pub(crate) fn current_stamp(&self) -> u32 {
        // SAFETY: as in `request_reading`.
        unsafe { &*self.current_slot.get() }.stamp()
    }

    /// Fires every due timer (own wheel and shared wheel); returns how many.
    /// Reads the clock if there is a timer or a call waiting for a reading.
    fn fire_timers(&self) -> usize {
        let shared_next = self.shared.timers.next_expiration();
        if self.wheel.borrow().is_empty() && shared_next == u64::MAX && !self.readings.has_requests() {
            return 0;
        }
        let now = self.read_clock() / NANOS_PER_TICK;
        let mut expired = self.expired.borrow_mut();
        let mut wheel = self.wheel.borrow_mut();
        wheel.poll(now, &mut expired);
        self.standing.advance(wheel.now());
        drop(wheel);
        if shared_next <= now {
            self.shared.timers.poll(now, &mut expired);
        }
        let mut entries = std::mem::take(&mut *expired);
        drop(expired);
        let fired = entries.len();
        for entry in entries.drain(..) {
            self.fire(entry);
        }
        *self.expired.borrow_mut() = entries;
        fired
    }

    fn fire(&self, entry: TimerEntry) {
        match entry {
            TimerEntry::Wake { index, serial } => {
                if let Some(slot) = self.shared.table.get(index) {
                    match slot.wake(serial) {
                        Wake::None => {}
                        Wake::Schedule => self.schedule_back(index),
                        Wake::Waker(waker) => waker.wake(),
                    }
                }
            }
            TimerEntry::Send(pending) => {
                if let Some((pid, env)) = pending.fire() {
                    crate::send::deliver(pid, env);
                }
            }
            TimerEntry::Waker(waker) => waker.wake(),
        }
    }

    /// How long to park: until the next timer of ours or of the shared
    /// wheel, and no longer than [`REBALANCE_EVERY`] while another worker is
    /// awake (it may build a backlog without notifying anyone).
    fn park_timeout(&self) -> Option<Duration> {
        let own = self.wheel.borrow().next_expiration().unwrap_or(u64::MAX);
        let next = own.min(self.shared.timers.next_expiration());
        let timer = (next != u64::MAX)
            .then(|| Duration::from_nanos(next.saturating_mul(NANOS_PER_TICK).saturating_sub(self.read_clock())));
        let others_awake = self.shared.sched.idle.sleeping() < self.shared.sched.workers();
        match (timer, others_awake) {
            (Some(t), true) => Some(t.min(REBALANCE_EVERY)),
            (None, true) => Some(REBALANCE_EVERY),
            (t, false) => t,
        }
    }

    /// On thread exit: give cached slot indices back; drop pending timers.
    fn retire(&self) {
        let free = std::mem::take(&mut *self.free.borrow_mut());
        self.shared.table.release(free);
        let mut wheel = self.wheel.borrow_mut();
        let mut pending = Vec::new();
        wheel.poll(u64::MAX / 2, &mut pending);
        drop(wheel);
        drop(pending);
        if let Some(index) = self.run_next.take() {
            self.shared.sched.inject.push(index);
        }
        while let Some(index) = self.local.pop() {
            self.shared.sched.inject.push(index);
        }
    }
}

/// Logs an exit the way Erlang's error logger reports crashes: failures at
/// `warn`/`error`, normal and shutdown exits only at `trace`.
fn report_exit(pid: Pid, reason: &ExitReason) {
    match reason {
        ExitReason::Normal | ExitReason::Shutdown(_) => tracing::trace!(%pid, %reason, "process exited"),
        ExitReason::Panic(_) => tracing::error!(%pid, %reason, "process crashed"),
        _ => tracing::warn!(%pid, %reason, "process exited abnormally"),
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("index", &self.index).field("node", &self.shared.node).finish()
    }
}
