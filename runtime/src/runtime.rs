//! The runtime: worker threads, the process table, names and timers, and
//! the handle a plain Rust program holds.
//!
//! # Shutdown
//!
//! 1. Set the shutdown flag and unpark every worker. A worker finishes the
//!    poll it is in (a process in a CPU loop is only stopped at its next
//!    `.await`), puts what it had queued back in the inject queue, and
//!    exits its thread.
//! 2. Wait for all workers, at most the given timeout. If one does not stop
//!    in time (a process that never yields), give up: its thread is left
//!    running with the runtime's state, which is never freed.
//! 3. Otherwise no thread polls any process any more: every remaining
//!    process is ended with reason `Shutdown` (its future dropped, its
//!    mailbox discarded, its name released), pending timers are dropped and
//!    the blocking pool is stopped. External mailboxes stay valid; sending
//!    to a process of a shut-down runtime drops the message.

use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::blocking::BlockingPool;
use crate::envelope::Envelope;
use crate::exit::{ExitReason, IntoExitReason};
use crate::external::Mailbox;
use crate::pid::Pid;
use crate::registry::Registry;
use crate::scheduler::worker::{self, with_worker, WorkerStats};
use crate::scheduler::Scheduler;
use crate::slot::{Delivery, Owner, Remains, Slot, Wake, BUSY, EXTERNAL, LIVE, NAMED};
use crate::sync::deque::Worker as LocalQueue;
use crate::sync::global::{Arc, Weak};
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};
use crate::table::Table;
use crate::task::TaskRef;
use crate::timer::{Clock, SharedTimers};

/// How long dropping a [`Runtime`] waits for its workers.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the workers, wakers and handles of one runtime share.
pub(crate) struct Shared {
    /// This runtime's node number (see `node.rs`).
    pub(crate) node: u32,
    pub(crate) table: Table,
    pub(crate) sched: Scheduler,
    pub(crate) registry: Registry,
    pub(crate) clock: Clock,
    pub(crate) timers: SharedTimers,
    pub(crate) blocking: BlockingPool,
    pub(crate) worker_stats: Box<[WorkerStats]>,
    /// Spawns from threads that are not workers.
    pub(crate) external_spawns: AtomicU64,
    pub(crate) external_exits: AtomicU64,
    /// Messages dropped because their target was dead.
    dropped: AtomicU64,
    /// The last reference of the blocks the workers took (`refs.rs`).
    pub(crate) refs: AtomicU64,
    shutdown: AtomicBool,
    /// The network layer, once one is attached (see `dist`).
    pub(crate) dist: std::sync::OnceLock<crate::dist::Attached>,
    /// The connected nodes and who watches them (see `dist/nodes.rs`).
    pub(crate) nodes: crate::dist::NodeWatch,
    /// Other nodes' monitors on names registered here (see `dist/named.rs`).
    pub(crate) named_monitors: crate::dist::NamedMonitors,
    /// The `pg` scope, once started (see `pg/mod.rs`).
    pub(crate) pg: std::sync::OnceLock<crate::pg::Scope>,
}

impl Shared {
    #[inline]
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Counts a message dropped because its target was dead.
    #[cold]
    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Delivers a message from a thread that is not one of our workers, with
    /// a veto run under the target's lock (see `Slot::deliver_unless`).
    pub(crate) fn deliver_unless(&self, pid: Pid, env: Envelope, refuse: impl crate::awaits::Veto) {
        let Some(slot) = self.table.get(pid.index()) else {
            self.count_dropped();
            return;
        };
        match slot.deliver_unless(pid.serial(), env, refuse) {
            Delivery::Queued(Wake::None) => {}
            Delivery::Queued(Wake::Schedule) => self.schedule(pid.index()),
            Delivery::Queued(Wake::Waker(waker)) => waker.wake(),
            Delivery::Dead(env) => {
                self.count_dropped();
                drop(env);
            }
            Delivery::Refused(env) => drop(env),
        }
    }

    /// After an incarnation ended (see [`Shared::end_incarnation`]): releases
    /// its name, then announces the exit to its links and monitors
    /// ([`crate::link::announce_exit`]), so whoever is woken by that finds
    /// the name free; then drops the rest.
    pub(crate) fn after_exit(&self, pid: Pid, remains: Remains, reason: ExitReason) {
        if remains.flags & NAMED != 0 {
            self.registry.release(pid);
        }
        if let Some(mut extras) = remains.extras {
            crate::link::announce_exit(&crate::link::Table, pid, &reason, &mut extras);
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(extras)));
        }
    }

    /// Wakes process (`index`, `serial`) from any thread.
    pub(crate) fn wake_process(&self, index: u32, serial: u32) {
        let Some(slot) = self.table.get(index) else { return };
        match slot.wake(serial) {
            Wake::None => {}
            Wake::Schedule => self.schedule(index),
            Wake::Waker(waker) => waker.wake(),
        }
    }

    /// Queues a process we just claimed (set `BUSY` on): locally if this
    /// thread is one of our workers, else through the inject queue.
    pub(crate) fn schedule(&self, index: u32) {
        let on_own_worker = with_worker(|w| match w {
            Some(w) if std::ptr::eq(&*w.shared, self) => {
                w.schedule_back(index);
                true
            }
            _ => false,
        });
        if !on_own_worker {
            self.sched.inject(index);
        }
    }

    /// Spawns from a thread that is not one of our workers.
    pub(crate) fn spawn_external<F>(&self, future: F) -> Pid
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        let index = self.table.alloc_one();
        let slot = self.table.slot(index);
        // SAFETY: the index came from the free list: nobody owns the slot,
        // and its storage stays in place until the task is dropped at exit.
        let serial = unsafe { slot.transition_to_live(|storage| Some(TaskRef::new_in(future, storage)), false) };
        self.external_spawns.fetch_add(1, Ordering::Relaxed);
        self.sched.inject(index);
        Pid::from_parts(self.node, index, serial)
    }

    /// Makes a slot live as an external mailbox (owned by the returned index's holder).
    pub(crate) fn open_external(&self) -> Pid {
        let index = self.table.alloc_one();
        let slot = self.table.slot(index);
        // SAFETY: the index came from the free list: nobody owns the slot.
        let serial = unsafe { slot.transition_to_live(|_| None, true) };
        self.external_spawns.fetch_add(1, Ordering::Relaxed);
        Pid::from_parts(self.node, index, serial)
    }

    /// Ends the incarnation in `slot`: marks the slot dead, then drops its
    /// future and mailbox (catching panics from their `Drop`s). Returns what
    /// the caller still has to handle with [`Shared::after_exit`]: the flags
    /// (`NAMED`) and the extras (monitors).
    ///
    /// # Safety
    /// The caller owns the process: it is its `BUSY` holder, the external
    /// mailbox's handle, or the runtime after every worker has stopped.
    pub(crate) unsafe fn end_incarnation(&self, slot: &Slot) -> Remains {
        // SAFETY: the caller owns the process.
        let task = unsafe { slot.clear_task() };
        // SAFETY: as above.
        let inner = unsafe { Owner::new(slot) }.with_inner(|inner| inner.take());
        // SAFETY: as above.
        let mut remains = unsafe { slot.transition_to_exited() };
        let outer = remains.outer.take();
        // From here on the incarnation is dead: stale sends are dropped.
        // Dropping user values may panic; a worker must survive that.
        let _ = panic::catch_unwind(AssertUnwindSafe(move || {
            if let Some(task) = task {
                // SAFETY: the task was cleared from the slot, so nobody else can poll or drop it.
                unsafe { task.drop_task() };
            }
            drop(inner);
            drop(outer);
        }));
        remains
    }

    /// The number of live processes (including external mailboxes).
    pub(crate) fn process_count(&self) -> u64 {
        let spawned: u64 = self.worker_stats.iter().map(|s| s.spawned.load(Ordering::Relaxed)).sum();
        let exited: u64 = self.worker_stats.iter().map(|s| s.exited.load(Ordering::Relaxed)).sum();
        (spawned + self.external_spawns.load(Ordering::Relaxed))
            .saturating_sub(exited + self.external_exits.load(Ordering::Relaxed))
    }

    /// Step 3 of shutdown: ends every process left (no worker runs now).
    fn end_all_processes(&self) {
        for index in 0..self.table.high_water() {
            let Some(slot) = self.table.get(index) else { continue };
            let w = slot.load();
            if w & LIVE == 0 || w & EXTERNAL != 0 {
                continue;
            }
            debug_assert!(w & BUSY != 0 || w & LIVE != 0);
            let pid = Pid::from_parts(self.node, index, slot.serial());
            // SAFETY: every worker has stopped: nobody else polls or owns the process.
            let remains = unsafe { self.end_incarnation(slot) };
            self.after_exit(pid, remains, ExitReason::Shutdown(None));
            self.external_exits.fetch_add(1, Ordering::Relaxed);
        }
        while !self.sched.inject.is_empty() {
            let _ = self.sched.inject.steal();
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("node", &self.node).field("workers", &self.sched.workers()).finish()
    }
}

/// Counters describing a runtime, from [`Runtime::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Live processes, including open [`Mailbox`]es.
    pub processes: u64,
    /// Messages dropped because their target had exited (Erlang drops them
    /// silently; we count them).
    pub dropped_messages: u64,
    /// Worker threads.
    pub workers: usize,
    /// Messages dropped because their Pid named no running runtime or a
    /// node that could not be reached (counted for the whole OS process).
    pub unroutable_messages: u64,
    /// Messages from other nodes dropped because their bytes did not
    /// decode as the type their tag named (for the whole OS process).
    pub undecodable_messages: u64,
}

/// Configures and starts a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = krarup_runtime::Builder::new().workers(1).build().unwrap();
/// assert_eq!(rt.stats().workers, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    workers: usize,
    name: Option<String>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: one worker per available core.
    pub fn new() -> Builder {
        Builder { workers: std::thread::available_parallelism().map_or(1, |n| n.get()), name: None }
    }

    /// The number of worker threads (at least 1).
    pub fn workers(mut self, workers: usize) -> Builder {
        self.workers = workers.max(1);
        self
    }

    /// A prefix for the worker threads' names (default `krarup`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Starts the runtime.
    ///
    /// # Errors
    /// If the operating system refuses to create a worker thread.
    pub fn build(self) -> io::Result<Runtime> {
        let locals: Vec<LocalQueue<u32>> = (0..self.workers).map(|_| LocalQueue::new_fifo()).collect();
        let stealers = locals.iter().map(LocalQueue::stealer).collect();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
            node: crate::node::register(weak.clone()),
            table: Table::new(),
            sched: Scheduler::new(stealers),
            registry: Registry::new(),
            clock: Clock::new(),
            timers: SharedTimers::new(),
            blocking: BlockingPool::new(),
            worker_stats: (0..self.workers).map(|_| WorkerStats::default()).collect(),
            external_spawns: AtomicU64::new(0),
            external_exits: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            refs: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            dist: std::sync::OnceLock::new(),
            nodes: crate::dist::NodeWatch::default(),
            named_monitors: crate::dist::NamedMonitors::default(),
            pg: std::sync::OnceLock::new(),
        });
        let prefix = self.name.unwrap_or_else(|| "krarup".to_owned());
        let mut threads = Vec::with_capacity(self.workers);
        let exited = Arc::new(Latch::default());
        for (index, local) in locals.into_iter().enumerate() {
            let shared2 = shared.clone();
            let exited2 = exited.clone();
            let spawned =
                std::thread::Builder::new().name(format!("{prefix}-{}-w{index}", shared.node)).spawn(move || {
                    let _done = LatchGuard(exited2);
                    worker::run(shared2, index, local);
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    let rt = Runtime { shared, threads: Mutex::new(threads), exited, stopped: AtomicBool::new(false) };
                    rt.shutdown_timeout(DROP_TIMEOUT);
                    return Err(e);
                }
            }
        }
        Ok(Runtime { shared, threads: Mutex::new(threads), exited, stopped: AtomicBool::new(false) })
    }
}

/// Counts worker threads that have finished.
#[derive(Default)]
struct Latch {
    count: crate::sync::global::Mutex<usize>,
    condvar: crate::sync::global::Condvar,
}

struct LatchGuard(Arc<Latch>);

impl Drop for LatchGuard {
    fn drop(&mut self) {
        *self.0.count.lock() += 1;
        self.0.condvar.notify_all();
    }
}

/// A krarup runtime: worker threads that run processes.
///
/// Several runtimes can live in one program (each is its own node); none
/// uses global state that would stop another from working.
///
/// # Examples
///
/// The increment server, run from a plain `main`:
///
/// ```
/// use krarup_runtime::{recv, self_pid, spawn, Pid, Runtime};
///
/// let rt = Runtime::new();
/// let result = rt.block_on(async {
///     let server = spawn(async {
///         let (from, n): (Pid, i64) = recv().await;
///         from.send((self_pid(), n + 1));
///     });
///     server.send((self_pid(), 10i64));
///     let (_, reply): (Pid, i64) = recv().await;
///     reply
/// });
/// assert_eq!(result, 11);
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    exited: Arc<Latch>,
    stopped: AtomicBool,
}

impl Runtime {
    /// A runtime with one worker thread per core.
    ///
    /// # Panics
    /// If a worker thread cannot be created; use [`Builder::build`] to get
    /// the error instead.
    pub fn new() -> Runtime {
        Builder::new().build().expect("krarup: failed to start the runtime's worker threads")
    }

    /// A builder for a runtime with other settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Spawns `future` as a new process and returns its Pid at once; the
    /// process runs on a worker. Its future's output decides the exit
    /// reason (see [`IntoExitReason`]).
    pub fn spawn<F>(&self, future: F) -> Pid
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        with_worker(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => w.spawn(future),
            _ => self.shared.spawn_external(future),
        })
    }

    /// Runs `future` as a process and blocks this thread until it finishes;
    /// returns its output. Inside it, `self_pid()`, `recv()`, `spawn()` and
    /// the rest work as in any process.
    ///
    /// # Panics
    /// If the future panics (the panic is resumed here), if the runtime shuts
    /// down before the future finishes, or if called from within a process
    /// (a worker must never block on its own runtime).
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if with_worker(|w| w.is_some_and(|w| w.current().is_some())) {
            panic!("krarup: Runtime::block_on called from within a process; use `.await` instead");
        }
        let done = Arc::new(Completion::<F::Output>::default());
        let guard = CompleteOnDrop(done.clone());
        self.spawn(async move {
            let guard = guard;
            match (CatchUnwind { future: Box::pin(future) }).await {
                Ok(value) => {
                    guard.0.complete(Ok(value));
                    ExitReason::Normal
                }
                Err(payload) => {
                    let reason = ExitReason::Panic(crate::exit::panic_message(&*payload));
                    guard.0.complete(Err(Outcome::Panicked(payload)));
                    reason
                }
            }
        });
        match done.wait() {
            Ok(value) => value,
            Err(Outcome::Panicked(payload)) => panic::resume_unwind(payload),
            Err(Outcome::Cancelled) => panic!("krarup: the runtime shut down before the block_on future finished"),
        }
    }

    /// Opens an external [`Mailbox`]: a Pid that code outside the runtime
    /// (a plain thread, a future on another executor) can receive on.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox::open(self.shared.clone())
    }

    /// Counters: live processes, dropped messages, workers.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            processes: self.shared.process_count(),
            dropped_messages: self.shared.dropped.load(Ordering::Relaxed),
            workers: self.shared.sched.workers(),
            unroutable_messages: crate::send::unroutable(),
            undecodable_messages: crate::dist::undecodable(),
        }
    }

    /// Registers `name` for `pid` (see [`register`](crate::register)), from any thread.
    ///
    /// # Errors
    /// [`RegisterError`](crate::RegisterError) if the name is taken, the
    /// process already has a name, or it is not alive.
    pub fn register(&self, name: &str, pid: Pid) -> Result<(), crate::RegisterError> {
        self.shared.register(name, pid)
    }

    /// Removes a registered name (see [`unregister`](crate::unregister)), from any thread.
    ///
    /// # Errors
    /// [`UnregisterError::NotRegistered`](crate::UnregisterError) if no process has that name.
    pub fn unregister(&self, name: &str) -> Result<Pid, crate::UnregisterError> {
        self.shared.unregister(name)
    }

    /// The process registered as `name` in this runtime, from any thread.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.shared.whereis(name)
    }

    /// [`send_named_at`](crate::send_named_at) from outside the runtime.
    pub fn send_named_at<M: crate::Message>(&self, name: &str, node: &str, msg: M) {
        crate::dist::send_named_at(&self.shared, name, node, msg);
    }

    /// This runtime's node number (the first number of its Pids).
    pub fn node(&self) -> u32 {
        self.shared.node
    }

    /// Shuts down, waiting up to ten seconds for the workers (see
    /// [`Runtime::shutdown_timeout`]).
    pub fn shutdown(self) {
        self.shutdown_timeout(DROP_TIMEOUT);
    }

    /// Stops the workers and ends every process with reason `Shutdown`.
    /// Waits at most `timeout` for the workers to finish their current
    /// polls; returns false if one did not (a process that never yields),
    /// in which case that thread is left running and nothing is freed.
    pub fn shutdown_timeout(&self, timeout: Duration) -> bool {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return true;
        }
        let shared = &self.shared;
        shared.shutdown.store(true, Ordering::Release);
        shared.sched.unpark_all();
        let deadline = Instant::now() + timeout;
        let workers = shared.sched.workers();
        let mut count = self.exited.count.lock();
        while *count < workers {
            if self.exited.condvar.wait_until(&mut count, deadline).timed_out() {
                break;
            }
        }
        let all_stopped = *count == workers;
        drop(count);
        if !all_stopped {
            tracing::warn!(node = shared.node, "krarup: a worker did not stop within {timeout:?}; leaving it running");
            return false;
        }
        for handle in self.threads.lock().drain(..) {
            let _ = handle.join();
        }
        shared.end_all_processes();
        shared.timers.clear();
        shared.registry.clear();
        shared.blocking.shutdown(deadline);
        crate::node::unregister(shared.node);
        true
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_timeout(DROP_TIMEOUT);
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node", &self.shared.node)
            .field("workers", &self.shared.sched.workers())
            .finish()
    }
}

/// How a `block_on` future ended, if not with a value.
enum Outcome {
    Panicked(Box<dyn std::any::Any + Send>),
    Cancelled,
}

/// The slot `block_on` waits on.
struct Completion<T> {
    state: crate::sync::global::Mutex<Option<Result<T, Outcome>>>,
    condvar: crate::sync::global::Condvar,
}

impl<T> Default for Completion<T> {
    fn default() -> Self {
        Completion { state: Default::default(), condvar: Default::default() }
    }
}

impl<T> Completion<T> {
    fn complete(&self, result: Result<T, Outcome>) {
        let mut state = self.state.lock();
        if state.is_none() {
            *state = Some(result);
            self.condvar.notify_all();
        }
    }

    fn wait(&self) -> Result<T, Outcome> {
        let mut state = self.state.lock();
        loop {
            if let Some(result) = state.take() {
                return result;
            }
            self.condvar.wait(&mut state);
        }
    }
}

/// Completes with `Cancelled` if the process is dropped before finishing.
struct CompleteOnDrop<T>(Arc<Completion<T>>);

impl<T> Drop for CompleteOnDrop<T> {
    fn drop(&mut self) {
        self.0.complete(Err(Outcome::Cancelled));
    }
}

/// Catches a panic of the inner future's poll.
struct CatchUnwind<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut();
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
