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
//! A call's wait that can tell, without looking, that its reply has not
//! come yet (`call.rs`, "The wait") skips steps 1 and 2 and saves its
//! position past the end of the inner queue: a call made with a long
//! mailbox costs nothing per message already there.
//!
//! Each receive takes one unit of the process's budget
//! ([`RECEIVE_BUDGET`](crate::scheduler::worker::RECEIVE_BUDGET) per poll);
//! when it is spent the receive yields first, so a process that always
//! finds a message still lets others run.
//!
//! A receive with a timeout (`recv_timeout`, `receive!` with `after`, a
//! call's wait) counts it from its first miss, the first poll that finds
//! nothing to take, and keeps it with a [`Deadline`] (`timer/deadline.rs`):
//! a receive that finds its message at once reads no clock and touches no
//! timer, and one that waits reads none at first and shares its process's
//! standing wake-up timer with the process's other timed receives. When it
//! times out while the mailbox holds messages it did not want, a `debug`
//! event names their types: the usual bug is a message of a near-miss type,
//! like `(Pid, i32)` sent where `(Pid, i64)` is received.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::dist::{materialize, Materialized};
use crate::envelope::Envelope;
use crate::scheduler::worker::{while_holding, with_owner, Current, Worker};
use crate::send::Message;
use crate::slot::{Owner, Slot};
use crate::timer::deadline::Deadline;

/// What the receives of one poll did, for the after-poll decision.
///
/// A poll may hold several pending receives (`join!` of two `recv`s). If
/// one returns `Pending` and a later one in the same poll moves newly
/// arrived messages into the inner queue, the first never looked at them,
/// and the move cleared `MSG_NOTIFIED` (`slot.rs`, step 3): the owner must
/// poll again. A poll with one receive — nearly all — never needs it, so
/// the common case costs no extra poll. Owned by the process's owner and
/// reset at the start of each poll.
#[derive(Debug, Default)]
pub(crate) struct PollBook {
    pending: Cell<u32>,
    stale: Cell<bool>,
    /// A remote send of this poll was queued over its connection's limit:
    /// the next receive pauses until this gate opens (see `dist/gate.rs`).
    throttle: std::cell::RefCell<Option<crate::sync::global::Arc<crate::dist::Gate>>>,
    throttled: Cell<bool>,
}

impl PollBook {
    /// A poll starts.
    #[inline]
    pub(crate) fn start(&self) {
        self.pending.set(0);
        self.stale.set(false);
        if self.throttled.get() {
            self.throttled.set(false);
            self.throttle.borrow_mut().take();
        }
    }

    /// A remote send was queued over its connection's limit. The worker
    /// also spends the poll's receive budget, so the next receive takes the
    /// yield path, where it pauses ([`PollBook::yields`]): nothing on the
    /// receive fast path looks for this.
    pub(crate) fn throttle(&self, gate: crate::sync::global::Arc<crate::dist::Gate>) {
        *self.throttle.borrow_mut() = Some(gate);
        self.throttled.set(true);
    }

    /// A receive ran out of budget: it yields, or, if a send of this poll
    /// was throttled, pauses until the gate opens (registered with it).
    #[cold]
    fn yields(&self, worker: &Worker, current: Current, slot: &Slot) {
        if self.throttled.replace(false) {
            if let Some(gate) = self.throttle.borrow_mut().take() {
                let me = crate::pid::Pid::from_parts(worker.shared.node, current.index, current.serial);
                if gate.wait(me) {
                    return;
                }
            }
        }
        slot.notify_self();
    }

    /// A receive of this poll returned `Pending`.
    #[inline]
    pub(crate) fn note_pending(&self) {
        self.pending.set(self.pending.get() + 1);
    }

    /// A receive moved newly arrived messages into the inner queue.
    #[inline]
    fn note_drained(&self) {
        if self.pending.get() > 0 {
            self.stale.set(true);
        }
    }

    /// Whether a receive that went pending in this poll missed new messages.
    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.get()
    }
}

/// Where a receive stopped scanning the inner queue.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The process the position belongs to (`index << 32 | serial`, or
    /// `NO_OWNER`).
    owner: u64,
    /// Messages at the front of the inner queue known not to match.
    pub(crate) pos: u32,
    /// The inner queue's epoch when `pos` was saved.
    pub(crate) epoch: u32,
}

const NO_OWNER: u64 = u64::MAX;

impl Default for Scan {
    fn default() -> Self {
        Scan { owner: NO_OWNER, pos: 0, epoch: 0 }
    }
}

impl Scan {
    /// Marks every message of the inner queue as scanned (none of them is
    /// what the receive waits for).
    #[inline(always)]
    fn skip_inner(&mut self, own: &Owner<'_>) {
        self.pos = own.inner_len() as u32;
        self.epoch = own.inner_epoch();
    }

    /// Forgets a position saved for another process.
    #[inline(always)]
    fn claim(&mut self, current: Current) {
        let owner = (u64::from(current.index) << 32) | u64::from(current.serial);
        if self.owner != owner {
            *self = Scan { owner, pos: 0, epoch: 0 };
        }
    }
}

/// What a matcher returns for a message that must be dropped, not matched
/// (bytes from another node that do not decode as their tag's type).
///
/// Clause numbers are `usize`, not `u32`: a hit, `(clause, envelope)`, is
/// written and read back at once, and a 4-byte clause was read together with
/// the `Option` around it as 8 bytes, a load the processor cannot forward
/// from the narrower store (it waited several nanoseconds per call).
pub(crate) const DISCARD: usize = usize::MAX;

/// Decodes a message from another node in place if it carries `T`'s tag
/// (see `dist/remote.rs`); what [`recv`] does and [`recv_local`] does not.
pub(crate) type Decode = fn(&mut Envelope) -> Materialized;

/// Step 1 of the module docs: scans the inner queue from the saved position.
/// (User code that `matcher` runs — a `receive!`'s guards, a message's
/// `Deserialize` — runs inside `worker::while_holding`, so it cannot reach
/// the inner queue that `own` holds.)
#[inline(always)]
fn scan_inner<M>(own: &mut Owner<'_>, scan: &mut Scan, matcher: &mut M) -> Option<(usize, Envelope)>
where
    M: FnMut(&mut Envelope) -> Option<usize>,
{
    own.with_inner(|inner| {
        if inner.epoch() != scan.epoch {
            scan.pos = 0;
            scan.epoch = inner.epoch();
        }
        // The position as a local `usize`, stored back per step: with
        // `scan.pos` itself as the counter, one build set up a dozen
        // spilled induction variables before the loop (~20 instructions
        // per receive, even when the first message matched).
        let mut pos = scan.pos as usize;
        while let Some(env) = inner.get_mut(pos) {
            if let Some(clause) = matcher(env) {
                let env = inner.remove(pos).expect("scanned position is in range");
                if clause == DISCARD {
                    drop(env);
                    scan.epoch = inner.epoch();
                    continue;
                }
                inner.shrink_if_empty();
                scan.epoch = inner.epoch();
                scan.pos = 0;
                return Some((clause, env));
            }
            pos += 1;
            scan.pos = pos as u32;
        }
        None
    })
}

/// Step 1's commonest case, taken without the general loop: the oldest
/// message of the inner queue, if this receive has not looked at it yet and
/// `is_wanted` accepts it (as its clause).
#[inline(always)]
fn take_inner_front(
    own: &mut Owner<'_>,
    scan: &mut Scan,
    is_wanted: impl Fn(&Envelope) -> Option<usize>,
) -> Option<(usize, Envelope)> {
    own.with_inner(|inner| {
        if scan.pos != 0 && inner.epoch() == scan.epoch {
            return None;
        }
        let clause = inner.get(0).and_then(&is_wanted)?;
        let env = inner.pop_front()?;
        inner.shrink_if_empty();
        scan.epoch = inner.epoch();
        scan.pos = 0;
        Some((clause, env))
    })
}

/// Whether anything arrived that this receive has not looked at: an inner
/// message past its saved position, or anything in the outer queue.
#[inline(always)]
fn has_unscanned(own: &Owner<'_>, scan: &Scan) -> bool {
    own.has_new_messages() || own.inner_len() > scan.pos as usize || epoch_moved(own, scan)
}

/// Whether the inner queue lost messages since `scan` saved its position
/// (its saved position no longer means anything).
#[inline(always)]
fn epoch_moved(own: &Owner<'_>, scan: &Scan) -> bool {
    own.inner_epoch() != scan.epoch && own.inner_len() > 0
}

/// Steps 1-2 for any matcher (user patterns and guards): the clause that
/// matched and the message, or None if nothing matches yet.
pub(crate) fn scan<M>(
    own: &mut Owner<'_>,
    scan: &mut Scan,
    book: &PollBook,
    mut matcher: M,
) -> Option<(usize, Envelope)>
where
    M: FnMut(&mut Envelope) -> Option<usize>,
{
    loop {
        if let Some(hit) = scan_inner(own, scan, &mut matcher) {
            return Some(hit);
        }
        if !own.drain() {
            return None;
        }
        book.note_drained();
    }
}

/// Steps 1-2 for a receive by type. Once the inner queue is exhausted, a
/// `T` at the front of the outer queue is taken directly, under the lock,
/// without moving anything: the common case of a process that receives
/// every message it is sent costs one lock per message.
#[inline]
pub(crate) fn scan_type<T: Send + 'static>(
    own: &mut Owner<'_>,
    scan: &mut Scan,
    book: &PollBook,
    decode: Option<Decode>,
) -> Option<Envelope> {
    let mut matcher = |env: &mut Envelope| {
        if env.is::<T>() {
            return Some(0);
        }
        match decode?(env) {
            Materialized::Untouched => None,
            Materialized::Decoded => Some(0),
            Materialized::Garbage => Some(DISCARD),
        }
    };
    loop {
        if let Some((_, env)) = scan_inner(own, scan, &mut matcher) {
            return Some(env);
        }
        // Every inner message was just rejected.
        if let Some(env) = own.pop_front_if(Envelope::is::<T>) {
            return Some(env);
        }
        if !own.drain() {
            return None;
        }
        book.note_drained();
    }
}

/// [`scan_type`] for a set of types: `is_wanted` says which of them a
/// message is (its clause), by type alone (it runs under the slot lock);
/// `remote` decodes a message from another node as the type of a clause
/// if it carries the tag of one: that clause, [`DISCARD`] for bytes that do
/// not decode, None for any other message.
///
/// `is_absent` lets a receive that can tell, without looking, that nothing
/// it wants is in the mailbox skip the scan (a call's wait: see
/// [`poll_call`]); it is asked once the inner queue's front is not a hit,
/// and if it says so, every inner message counts as scanned.
#[inline]
pub(crate) fn scan_types(
    own: &mut Owner<'_>,
    scan: &mut Scan,
    book: &PollBook,
    is_wanted: impl Fn(&Envelope) -> Option<usize>,
    mut remote: impl FnMut(&mut Envelope) -> Option<usize>,
    is_absent: impl FnOnce(&Owner<'_>) -> bool,
) -> Option<(usize, Envelope)> {
    if let Some(hit) = take_inner_front(own, scan, &is_wanted) {
        return Some(hit);
    }
    if is_absent(own) {
        scan.skip_inner(own);
        return None;
    }
    let mut matcher = |env: &mut Envelope| is_wanted(env).or_else(|| remote(env));
    loop {
        if let Some(hit) = scan_inner(own, scan, &mut matcher) {
            return Some(hit);
        }
        // Every inner message was just rejected.
        if let Some(env) = own.pop_front_if(|env| is_wanted(env).is_some()) {
            return is_wanted(&env).map(|clause| (clause, env));
        }
        if !own.drain() {
            return None;
        }
        book.note_drained();
    }
}

/// One poll of a receive by a set of types (see [`scan_types`]), without a
/// deadline: the clause and the message.
///
/// # Panics
/// Outside a krarup process, or from inside a `receive!` guard.
#[inline]
pub(crate) fn poll_types(
    what: &'static str,
    scan: &mut Scan,
    is_wanted: impl Fn(&Envelope) -> Option<usize>,
    remote: impl FnMut(&mut Envelope) -> Option<usize>,
) -> Poll<(usize, Envelope)> {
    let attempt = |worker: &Worker, own: &mut Owner<'_>, scan: &mut Scan| {
        scan_types(own, scan, worker.book(), is_wanted, remote, |_| false)
    };
    poll_now(what, scan, attempt)
}

/// One poll of a receive without a deadline in the current process, with
/// the commonest case first: nothing new since this receive last looked.
/// Then it takes a unit of budget (or yields) and runs `attempt` over the
/// mailbox.
#[inline(always)]
fn poll_now<H>(
    what: &'static str,
    scan: &mut Scan,
    attempt: impl FnOnce(&Worker, &mut Owner<'_>, &mut Scan) -> Option<H>,
) -> Poll<H> {
    with_owner(what, |worker, current, own| {
        scan.claim(current);
        if !has_unscanned(own, scan) {
            worker.book().note_pending();
            return Poll::Pending;
        }
        if !worker.consume_budget() {
            worker.book().yields(worker, current, own.slot());
            return Poll::Pending;
        }
        match attempt(worker, own, scan) {
            Some(hit) => Poll::Ready(hit),
            None => {
                worker.book().note_pending();
                Poll::Pending
            }
        }
    })
}

/// Removes the first message `is_it` accepts from the mailbox (the inner
/// queue, then the outer one) without waiting; if there is none, runs
/// `otherwise` on the extras while still holding the lock, so that no
/// delivery slips in between. `is_it` must not run user code (it runs
/// under the slot lock).
pub(crate) fn remove_first_or(
    own: &mut Owner<'_>,
    is_it: impl Fn(&Envelope) -> bool,
    otherwise: impl FnOnce(&mut crate::slot::Extras),
) -> Option<Envelope> {
    let in_inner = own.with_inner(|inner| {
        let at = (0..inner.len()).find(|&i| inner.get(i).is_some_and(&is_it));
        at.and_then(|i| inner.remove(i))
    });
    in_inner.or_else(|| own.remove_outer_or(is_it, otherwise))
}

/// The distinct type names of the messages waiting in the inner queue.
pub(crate) fn waiting_types(own: &mut Owner<'_>) -> (usize, BTreeSet<&'static str>) {
    let mut names = BTreeSet::new();
    let len = own.with_inner(|inner| {
        inner.for_each(|env| {
            names.insert(env.type_name());
        });
        inner.len()
    });
    (len, names)
}

/// Emits the timeout diagnostic if the mailbox holds unwanted messages.
pub(crate) fn report_timeout(
    pid: impl std::fmt::Display,
    len: usize,
    waiting: &BTreeSet<&'static str>,
    expected: &[&'static str],
) {
    if len > 0 {
        tracing::debug!(
            %pid,
            waiting_for = ?expected,
            mailbox = ?waiting,
            "receive timed out with {len} message(s) of other types in the mailbox"
        );
    }
}

/// One poll of a receive in the current process: takes a unit of budget
/// (or yields), runs `attempt` over the mailbox, and handles the deadline.
/// `Ready(Some)` on a match, `Ready(None)` on timeout.
#[inline(always)]
fn poll_receive<H>(
    what: &'static str,
    scan: &mut Scan,
    deadline: &mut Deadline,
    attempt: impl FnOnce(&Worker, &mut Owner<'_>, &mut Scan) -> Option<H>,
    expected: impl FnOnce() -> Vec<&'static str>,
) -> Poll<Option<H>> {
    with_owner(what, |worker, current, own| {
        scan.claim(current);
        // Nothing arrived since this receive last looked (the commonest case
        // of a first poll): only the deadline can end it.
        if has_unscanned(own, scan) {
            if !worker.consume_budget() {
                worker.book().yields(worker, current, own.slot());
                return Poll::Pending;
            }
            if let Some(hit) = attempt(worker, own, scan) {
                deadline.matched();
                return Poll::Ready(Some(hit));
            }
        }
        if !deadline.has_passed(worker, current) {
            worker.book().note_pending();
            return Poll::Pending;
        }
        deadline.expired();
        timed_out(worker, current, own, expected);
        Poll::Ready(None)
    })
}

#[cold]
fn timed_out(worker: &Worker, current: Current, own: &mut Owner<'_>, expected: impl FnOnce() -> Vec<&'static str>) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (len, waiting) = waiting_types(own);
        let pid = crate::pid::Pid::from_parts(worker.shared.node, current.index, current.serial);
        report_timeout(pid, len, &waiting, &expected());
    }
}

pub(crate) fn unwrap_as<T: Send + 'static>(env: Envelope) -> T {
    env.downcast::<T>().unwrap_or_else(|_| unreachable!("matched by type"))
}

/// One poll of a call's receive (`call.rs`): the first message `is_ours`
/// (by type and tag, under the slot lock: see [`scan_types`]) or `remote`
/// (for a message from another node) accepts, as (clause, message), or
/// None once `deadline` has passed.
///
/// `awaited` is the tag of a call whose reply and `Down` can only arrive
/// by taking it from the caller's awaits word (a call to a server of the
/// caller's runtime): while the word still holds it, the poll knows
/// without looking that neither is in the mailbox (see `call.rs`, "The
/// wait"), and only marks what is there as scanned.
///
/// # Panics
/// Outside a krarup process, or from inside a `receive!` guard.
#[inline]
pub(crate) fn poll_call(
    scan: &mut Scan,
    deadline: &mut Deadline,
    awaited: Option<u64>,
    is_ours: impl Fn(&Envelope) -> Option<usize>,
    remote: impl FnMut(&mut Envelope) -> Option<usize>,
    expected: impl FnOnce() -> Vec<&'static str>,
) -> Poll<Option<(usize, Envelope)>> {
    let attempt = |worker: &Worker, own: &mut Owner<'_>, scan: &mut Scan| {
        let is_absent = |own: &Owner<'_>| awaited.is_some_and(|tag| own.awaits().holds(tag));
        scan_types(own, scan, worker.book(), is_ours, remote, is_absent)
    };
    poll_receive("call", scan, deadline, attempt, expected)
}

/// The future of [`recv`] and [`recv_local`]: the next message of type `T`.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Recv<T> {
    scan: Scan,
    decode: Option<Decode>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Future for Recv<T> {
    type Output = T;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        let decode = self.decode;
        let attempt =
            |worker: &Worker, own: &mut Owner<'_>, scan: &mut Scan| scan_type::<T>(own, scan, worker.book(), decode);
        poll_now("recv", &mut self.scan, attempt).map(unwrap_as::<T>)
    }
}

/// The future of [`recv_timeout`]: the next message of type `T`, or None.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct RecvTimeout<T> {
    scan: Scan,
    deadline: Deadline,
    decode: Option<Decode>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Future for RecvTimeout<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let decode = this.decode;
        let attempt =
            |worker: &Worker, own: &mut Owner<'_>, scan: &mut Scan| scan_type::<T>(own, scan, worker.book(), decode);
        poll_receive("recv_timeout", &mut this.scan, &mut this.deadline, attempt, || vec![std::any::type_name::<T>()])
            .map(|env| env.map(unwrap_as::<T>))
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
    Recv { scan: Scan::default(), decode: Some(materialize::<T>), _type: PhantomData }
}

/// [`recv`] for a type that is not serializable (sent with
/// [`send_local`](crate::send_local)); it never takes a message that came
/// from another node.
pub fn recv_local<T: Send + 'static>() -> Recv<T> {
    Recv { scan: Scan::default(), decode: None, _type: PhantomData }
}

/// Like [`recv`], but gives up after `timeout` and returns None. A zero
/// timeout looks at the mailbox once without waiting.
///
/// The timeout counts from the first time the future is polled and finds
/// no `T` (for `recv_timeout(t).await`, when the receive starts), not from
/// when `recv_timeout` was called. It never ends early: None comes only
/// once `timeout` has passed since then, typically about a millisecond
/// after (timers tick every millisecond). A timeout of 2<sup>63</sup> ns
/// (292 years) or more, such as [`Duration::MAX`], never ends.
///
/// # Panics
/// When polled outside a krarup process.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use krarup_runtime::{recv_timeout, self_pid, Runtime};
///
/// let rt = Runtime::new();
/// rt.block_on(async {
///     self_pid().send(7u32);
///     assert_eq!(recv_timeout::<u32>(Duration::from_secs(1)).await, Some(7));
///     // Nothing else comes: None, after at least the timeout.
///     let started = Instant::now();
///     assert_eq!(recv_timeout::<u32>(Duration::from_millis(20)).await, None);
///     assert!(started.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn recv_timeout<T: Message>(timeout: Duration) -> RecvTimeout<T> {
    RecvTimeout {
        scan: Scan::default(),
        deadline: Deadline::new(timeout),
        decode: Some(materialize::<T>),
        _type: PhantomData,
    }
}

/// Takes the oldest message of type `T` if one is already in the mailbox;
/// never waits.
///
/// # Panics
/// Outside a krarup process, or from inside a `receive!` guard.
pub fn try_recv<T: Message>() -> Option<T> {
    with_owner("try_recv", |worker, _, own| {
        scan_type::<T>(own, &mut Scan::default(), worker.book(), Some(materialize::<T>)).map(unwrap_as::<T>)
    })
}

/// The future behind [`receive!`](crate::receive): the first message any
/// clause accepts, as (clause index, message), or None on timeout.
#[doc(hidden)]
#[must_use = "futures do nothing unless awaited"]
pub struct ReceiveFuture<'a, M> {
    scan: Scan,
    deadline: Deadline,
    matcher: M,
    expected: &'a [fn() -> &'static str],
}

impl<M> std::fmt::Debug for ReceiveFuture<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveFuture").field("scan", &self.scan).field("deadline", &self.deadline).finish()
    }
}

// The matcher is only called through `&mut`, never pinned.
impl<M> Unpin for ReceiveFuture<'_, M> {}

impl<M: FnMut(&mut Envelope) -> Option<usize>> Future for ReceiveFuture<'_, M> {
    type Output = Option<(usize, Envelope)>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let expected = this.expected;
        let matcher = &mut this.matcher;
        // The guards run while `own` holds the inner queue: one that
        // touches the mailbox panics (`worker::with_owner`).
        let attempt = |worker: &Worker, own: &mut Owner<'_>, scan: &mut Scan| {
            while_holding(worker, || self::scan(own, scan, worker.book(), matcher))
        };
        poll_receive("receive!", &mut this.scan, &mut this.deadline, attempt, || expected.iter().map(|f| f()).collect())
    }
}

/// Starts a `receive!`. Not public API: the macro's expansion calls it.
#[doc(hidden)]
pub fn receive_with<M>(matcher: M, expected: &[fn() -> &'static str], timeout: Option<Duration>) -> ReceiveFuture<'_, M>
where
    M: FnMut(&mut Envelope) -> Option<usize>,
{
    ReceiveFuture { scan: Scan::default(), deadline: Deadline::after(timeout), matcher, expected }
}
