//! Selective receive: `recv`, `recv_timeout`, `try_recv`, and the engine
//! behind [`receive!`](crate::receive).
//!
//! # How a receive scans
//!
//! The mailbox is two queues (see `slot.rs`): the *outer* one that senders
//! push to under the slot lock, and the *inner* one that only the process
//! touches. A receive:
//!
//! 1. scans the inner queue, oldest first, from its saved position, asking
//!    the matcher about each message; the first match is removed and
//!    returned, everything before it stays in place and in order;
//! 2. when the inner queue is exhausted, moves everything that arrived
//!    meanwhile from the outer queue to the end of the inner one (one lock
//!    for the whole batch) and continues at 1; if nothing arrived, the
//!    receive is pending and the process sleeps until the next message;
//! 3. remembers how far it got. Waking up for a new message, it resumes
//!    there instead of rescanning the backlog it already rejected, so a
//!    receive that waits behind `n` unrelated messages costs O(n) once, not
//!    per arrival. (Erlang keeps the same "save pointer".) Removing any
//!    message bumps the inner queue's epoch, which resets saved positions:
//!    the only way positions can shift under a waiting receive.
//!
//! Each receive takes one unit of the process's budget
//! ([`RECEIVE_BUDGET`](crate::scheduler::worker::RECEIVE_BUDGET) per poll);
//! when it is spent the receive yields first, so a process that always
//! finds a message still lets others run.
//!
//! A receive with a timeout arms a timer in the worker's wheel only once it
//! would wait. When it times out while the mailbox holds messages it did not
//! want, a `debug` event names their types: the usual bug is a message of a
//! near-miss type, like `(Pid, i32)` sent where `(Pid, i64)` is received.

use std::collections::BTreeSet;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::envelope::Envelope;
use crate::scheduler::worker::{with_current, with_worker, Current, Worker};
use crate::send::Message;
use crate::slot::Slot;
use crate::timer::wheel::TimerKey;

/// Where a receive stopped scanning the inner queue.
#[derive(Debug, Default)]
struct Scan {
    /// The process the position belongs to.
    owner: Option<Current>,
    /// Messages at the front of the inner queue known not to match.
    pos: usize,
    /// The inner queue's epoch when `pos` was saved.
    epoch: u32,
}

/// Steps 1-2 of the module docs. Returns the clause that matched and the
/// message, or None if nothing matches yet.
///
/// # Safety
/// The caller owns the process whose slot this is.
pub(crate) unsafe fn scan(
    slot: &Slot,
    pos: &mut usize,
    epoch: &mut u32,
    matcher: &mut dyn FnMut(&mut Envelope) -> Option<u32>,
) -> Option<(u32, Envelope)> {
    loop {
        // SAFETY: the caller owns the process; the matcher cannot re-enter
        // a receive (guarded by `ScanGuard` in the callers).
        let hit = unsafe {
            slot.with_inner(|inner| {
                if inner.epoch != *epoch {
                    *pos = 0;
                    *epoch = inner.epoch;
                }
                while let Some(env) = inner.queue.get_mut(*pos) {
                    if let Some(clause) = matcher(env) {
                        let env = inner.queue.remove(*pos).expect("scanned position is in range");
                        inner.epoch = inner.epoch.wrapping_add(1);
                        *epoch = inner.epoch;
                        *pos = 0;
                        return Some((clause, env));
                    }
                    *pos += 1;
                }
                None
            })
        };
        if hit.is_some() {
            return hit;
        }
        // SAFETY: the caller owns the process.
        if !unsafe { slot.drain() } {
            return None;
        }
    }
}

/// The distinct type names of the messages waiting in the inner queue.
///
/// # Safety
/// The caller owns the process whose slot this is.
pub(crate) unsafe fn waiting_types(slot: &Slot) -> (usize, BTreeSet<&'static str>) {
    let mut names = BTreeSet::new();
    // SAFETY: the caller owns the process.
    let len = unsafe {
        slot.with_inner(|inner| {
            inner.queue.for_each(|env| {
                names.insert(env.type_name());
            });
            inner.queue.len()
        })
    };
    (len, names)
}

/// Emits the timeout diagnostic if the mailbox holds unwanted messages.
pub(crate) fn report_timeout(pid: impl std::fmt::Display, len: usize, waiting: &BTreeSet<&'static str>, expected: &[&'static str]) {
    if len > 0 {
        tracing::debug!(
            %pid,
            waiting_for = ?expected,
            mailbox = ?waiting,
            "receive timed out with {len} message(s) of other types in the mailbox"
        );
    }
}

/// When a receive gives up.
#[derive(Debug)]
enum Deadline {
    Never,
    /// A zero timeout: scan once, then time out.
    Now,
    At { at: Instant, timer: Option<LocalTimer> },
}

impl Deadline {
    fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Never,
            Some(d) if d.is_zero() => Deadline::Now,
            Some(d) => Instant::now().checked_add(d).map_or(Deadline::Never, |at| Deadline::At { at, timer: None }),
        }
    }
}

/// A timer in one worker's wheel; removed on drop if still on that worker.
#[derive(Debug)]
pub(crate) struct LocalTimer {
    node: u32,
    worker: usize,
    key: TimerKey,
}

impl LocalTimer {
    /// Arms a wake-up of the current process at `at`.
    pub(crate) fn arm(worker: &Worker, current: Current, at: Instant) -> LocalTimer {
        let when = worker.shared.clock.ticks_at(at);
        LocalTimer { node: worker.shared.node, worker: worker.index, key: worker.arm_wake(when, current) }
    }
}

impl Drop for LocalTimer {
    fn drop(&mut self) {
        with_worker(|w| {
            if let Some(w) = w.filter(|w| w.shared.node == self.node && w.index == self.worker) {
                w.disarm(self.key);
            }
        });
    }
}

/// Resets the "inside a matcher" flag even if a guard panics.
struct ScanGuard<'a>(&'a Worker);

impl<'a> ScanGuard<'a> {
    fn enter(worker: &'a Worker) -> ScanGuard<'a> {
        assert!(!worker.is_scanning(), "krarup: a receive was started from inside a receive guard");
        worker.set_scanning(true);
        ScanGuard(worker)
    }
}

impl Drop for ScanGuard<'_> {
    fn drop(&mut self) {
        self.0.set_scanning(false);
    }
}

/// The state of one receive, kept across polls.
#[derive(Debug)]
struct ReceiveState {
    scan: Scan,
    deadline: Deadline,
}

impl ReceiveState {
    fn new(timeout: Option<Duration>) -> ReceiveState {
        ReceiveState { scan: Scan::default(), deadline: Deadline::after(timeout) }
    }

    /// One poll of a receive: `Ready(Some(..))` on a match, `Ready(None)` on
    /// timeout.
    fn poll(
        &mut self,
        what: &str,
        matcher: &mut dyn FnMut(&mut Envelope) -> Option<u32>,
        expected: &dyn Fn() -> Vec<&'static str>,
    ) -> Poll<Option<(u32, Envelope)>> {
        with_current(what, |worker, current| {
            let slot = worker.shared.table.slot(current.index);
            if !worker.consume_budget() {
                slot.notify_self();
                return Poll::Pending;
            }
            if self.scan.owner != Some(current) {
                self.scan = Scan { owner: Some(current), pos: 0, epoch: 0 };
            }
            let hit = {
                let _guard = ScanGuard::enter(worker);
                // SAFETY: we are polling this process on this worker (BUSY).
                unsafe { scan(slot, &mut self.scan.pos, &mut self.scan.epoch, matcher) }
            };
            if let Some(hit) = hit {
                self.deadline = Deadline::Never;
                return Poll::Ready(Some(hit));
            }
            let timed_out = match &mut self.deadline {
                Deadline::Never => false,
                Deadline::Now => true,
                Deadline::At { at, timer } => {
                    if Instant::now() >= *at {
                        true
                    } else {
                        if timer.is_none() {
                            *timer = Some(LocalTimer::arm(worker, current, *at));
                        }
                        false
                    }
                }
            };
            if !timed_out {
                return Poll::Pending;
            }
            self.deadline = Deadline::Never;
            if tracing::enabled!(tracing::Level::DEBUG) {
                // SAFETY: we own the process (BUSY).
                let (len, waiting) = unsafe { waiting_types(slot) };
                let pid = crate::pid::Pid::from_parts(worker.shared.node, current.index, current.serial);
                report_timeout(pid, len, &waiting, &expected());
            }
            Poll::Ready(None)
        })
    }
}

/// Matches messages of type `T`.
fn match_type<T: Send + 'static>(env: &mut Envelope) -> Option<u32> {
    env.is::<T>().then_some(0)
}

fn expect_type<T>() -> Vec<&'static str> {
    vec![std::any::type_name::<T>()]
}

/// The future of [`recv`] and [`recv_local`]: the next message of type `T`.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Recv<T> {
    state: ReceiveState,
    _type: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Future for Recv<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        self.state.poll("recv", &mut match_type::<T>, &expect_type::<T>).map(|hit| {
            let (_, env) = hit.expect("a receive without timeout never times out");
            env.downcast::<T>().unwrap_or_else(|_| unreachable!("matched by type"))
        })
    }
}

/// The future of [`recv_timeout`]: the next message of type `T`, or None.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct RecvTimeout<T> {
    state: ReceiveState,
    _type: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Future for RecvTimeout<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.state.poll("recv_timeout", &mut match_type::<T>, &expect_type::<T>).map(|hit| {
            hit.map(|(_, env)| env.downcast::<T>().unwrap_or_else(|_| unreachable!("matched by type")))
        })
    }
}

/// Receives the oldest message of type `T`, waiting for one if needed.
/// Messages of other types stay in the mailbox, in order.
///
/// # Panics
/// When polled outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{recv, self_pid, Runtime};
///
/// let rt = Runtime::new();
/// rt.block_on(async {
///     let me = self_pid();
///     me.send("first".to_string());
///     me.send(2u8);
///     // Selective: the u8 is taken, the String stays.
///     assert_eq!(recv::<u8>().await, 2);
///     assert_eq!(recv::<String>().await, "first");
/// });
/// ```
pub fn recv<T: Message>() -> Recv<T> {
    Recv { state: ReceiveState::new(None), _type: PhantomData }
}

/// [`recv`] for a type that is not serializable (sent with
/// [`send_local`](crate::send_local)).
pub fn recv_local<T: Send + 'static>() -> Recv<T> {
    Recv { state: ReceiveState::new(None), _type: PhantomData }
}

/// Like [`recv`], but gives up after `timeout` and returns None. A zero
/// timeout looks at the mailbox once without waiting.
///
/// # Panics
/// When polled outside a krarup process.
pub fn recv_timeout<T: Message>(timeout: Duration) -> RecvTimeout<T> {
    RecvTimeout { state: ReceiveState::new(Some(timeout)), _type: PhantomData }
}

/// Takes the oldest message of type `T` if one is already in the mailbox;
/// never waits.
///
/// # Panics
/// Outside a krarup process, or from inside a `receive!` guard.
pub fn try_recv<T: Message>() -> Option<T> {
    with_current("try_recv", |worker, current| {
        let slot = worker.shared.table.slot(current.index);
        let (mut pos, mut epoch) = (0, 0);
        let _guard = ScanGuard::enter(worker);
        // SAFETY: we are polling this process on this worker (BUSY).
        let hit = unsafe { scan(slot, &mut pos, &mut epoch, &mut match_type::<T>) };
        hit.map(|(_, env)| env.downcast::<T>().unwrap_or_else(|_| unreachable!("matched by type")))
    })
}

/// The future behind [`receive!`](crate::receive): the first message any
/// clause accepts, as (clause index, message), or None on timeout.
#[doc(hidden)]
#[must_use = "futures do nothing unless awaited"]
pub struct ReceiveFuture<'a, M> {
    state: ReceiveState,
    matcher: M,
    expected: &'a [fn() -> &'static str],
}

impl<M> std::fmt::Debug for ReceiveFuture<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveFuture").field("state", &self.state).finish()
    }
}

// The matcher is only called through `&mut`, never pinned.
impl<M> Unpin for ReceiveFuture<'_, M> {}

impl<M: FnMut(&mut Envelope) -> Option<u32>> Future for ReceiveFuture<'_, M> {
    type Output = Option<(u32, Envelope)>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let expected = this.expected;
        this.state.poll("receive!", &mut this.matcher, &|| expected.iter().map(|f| f()).collect())
    }
}

/// Starts a `receive!`. Not public API: the macro's expansion calls it.
#[doc(hidden)]
pub fn receive_with<M>(matcher: M, expected: &[fn() -> &'static str], timeout: Option<Duration>) -> ReceiveFuture<'_, M>
where
    M: FnMut(&mut Envelope) -> Option<u32>,
{
    ReceiveFuture { state: ReceiveState::new(timeout), matcher, expected }
}
