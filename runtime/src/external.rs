//! External mailboxes: a Pid for code that is not a process.
//!
//! A plain thread, or a future running on another executor (a tokio test,
//! say), cannot `recv()`: it has no process. [`Runtime::mailbox`] gives it
//! one: a slot marked `EXTERNAL`, with a Pid that any process can send to
//! and reply to. Instead of being scheduled on a worker, a mailbox wakes the
//! `Waker` of whoever is waiting on it, so it works with any executor, or
//! blocks a plain thread with [`Mailbox::blocking_recv_timeout`].
//!
//! The handle owns the slot's receiving side (`&mut self` on every
//! receive), the way a process owns its own. Dropping the handle ends the
//! incarnation like a process exiting normally: its name is released,
//! later messages to its Pid are dropped.
//!
//! [`Runtime::mailbox`]: crate::Runtime::mailbox

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::dist::materialize;
use crate::pid::Pid;
use crate::receive::{report_timeout, scan_type, waiting_types, Decode, PollBook, Scan};
use crate::runtime::Shared;
use crate::send::Message;
use crate::slot::{Owner, Slot};
use crate::sync::global::Arc;
use crate::sync::Ordering;
use crate::timer::wheel::TimerKey;
use crate::timer::TimerEntry;

/// A mailbox with a Pid, for code outside the runtime's processes.
///
/// # Examples
///
/// A plain thread calls the increment server:
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::{recv, self_pid, Pid, Runtime};
///
/// let rt = Runtime::new();
/// let server = rt.spawn(async {
///     let (from, n): (Pid, i64) = recv().await;
///     from.send((self_pid(), n + 1));
/// });
/// let mut mailbox = rt.mailbox();
/// server.send((mailbox.pid(), 10i64));
/// let reply: Option<(Pid, i64)> = mailbox.blocking_recv_timeout(Duration::from_secs(5));
/// assert_eq!(reply.map(|(_, n)| n), Some(11));
/// ```
pub struct Mailbox {
    shared: Arc<Shared>,
    pid: Pid,
}

impl Mailbox {
    pub(crate) fn open(shared: Arc<Shared>) -> Mailbox {
        let pid = shared.open_external();
        Mailbox { shared, pid }
    }

    /// This mailbox's Pid: send it in messages so processes can reply.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    fn slot(&self) -> &Slot {
        self.shared.table.slot(self.pid.index())
    }

    /// The owner's hold on this mailbox ([`Owner`]).
    fn owner(&mut self) -> Owner<'_> {
        // SAFETY: `&mut self`: this handle is the mailbox's only owner (its
        // slot is never polled), and the borrow keeps a second `Owner` from
        // being made while this one is in use.
        unsafe { Owner::new(self.shared.table.slot(self.pid.index())) }
    }

    /// Takes the oldest message of type `T`, if one is there. `scan` is the
    /// position saved by this receive (a position belongs to one receive:
    /// another type's receive must start from the front).
    fn take<T: Send + 'static>(&mut self, scan: &mut Scan, decode: Option<Decode>) -> Option<T> {
        let hit = scan_type::<T>(&mut self.owner(), scan, &PollBook::default(), decode);
        hit.map(|env| env.downcast::<T>().unwrap_or_else(|_| unreachable!("matched by type")))
    }

    /// Takes the oldest message of type `T` if one is already here; never waits.
    pub fn try_recv<T: Message>(&mut self) -> Option<T> {
        self.take::<T>(&mut Scan::default(), Some(materialize::<T>))
    }

    /// Takes a message that need not be serializable; never waits.
    pub fn try_recv_local<T: Send + 'static>(&mut self) -> Option<T> {
        self.take::<T>(&mut Scan::default(), None)
    }

    /// Waits for the oldest message of type `T`; works on any executor.
    pub fn recv<T: Message>(&mut self) -> MailboxRecv<'_, T> {
        MailboxRecv(Wait {
            mailbox: self,
            scan: Scan::default(),
            deadline: None,
            timer: None,
            decode: Some(materialize::<T>),
            _type: std::marker::PhantomData,
        })
    }

    /// Waits at most `timeout` for a message of type `T`; works on any
    /// executor (the runtime's timers wake it).
    pub fn recv_timeout<T: Message>(&mut self, timeout: Duration) -> MailboxRecvTimeout<'_, T> {
        let deadline = Instant::now().checked_add(timeout);
        MailboxRecvTimeout(Wait {
            mailbox: self,
            scan: Scan::default(),
            deadline,
            timer: None,
            decode: Some(materialize::<T>),
            _type: std::marker::PhantomData,
        })
    }

    /// Blocks this thread until a message of type `T` arrives or `timeout`
    /// passes. Do not call it from a process or an async task: it blocks
    /// the thread.
    pub fn blocking_recv_timeout<T: Message>(&mut self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut scan = Scan::default();
        loop {
            if let Some(value) = self.take::<T>(&mut scan, Some(materialize::<T>)) {
                return Some(value);
            }
            let now = Instant::now();
            if now >= deadline {
                self.report_timeout::<T>();
                return None;
            }
            if self.slot().register_waker(self.pid.serial(), &waker) {
                std::thread::park_timeout(deadline - now);
            }
        }
    }

    fn report_timeout<T>(&mut self) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let (len, waiting) = waiting_types(&mut self.owner());
            report_timeout(self.pid, len, &waiting, &[std::any::type_name::<T>()]);
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let slot = self.shared.table.slot(self.pid.index());
        // SAFETY: the handle owns the mailbox; it is being dropped.
        let remains = unsafe { self.shared.end_incarnation(slot) };
        self.shared.after_exit(self.pid, remains, crate::ExitReason::Normal);
        self.shared.external_exits.fetch_add(1, Ordering::Relaxed);
        self.shared.table.release([self.pid.index()]);
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("pid", &self.pid).finish()
    }
}

/// Unparks a blocked thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The waiting part shared by [`MailboxRecv`] and [`MailboxRecvTimeout`].
struct Wait<'a, T> {
    mailbox: &'a mut Mailbox,
    scan: Scan,
    /// When to give up; None: never.
    deadline: Option<Instant>,
    timer: Option<TimerKey>,
    /// Decodes messages from other nodes (`T` is serializable).
    decode: Option<Decode>,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Wait<'_, T> {
    /// `Ready(Some)` on a message, `Ready(None)` at the deadline.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            if let Some(value) = self.mailbox.take::<T>(&mut self.scan, self.decode) {
                self.cancel_timer();
                return Poll::Ready(Some(value));
            }
            if let Some(at) = self.deadline {
                if Instant::now() >= at {
                    self.cancel_timer();
                    self.mailbox.report_timeout::<T>();
                    return Poll::Ready(None);
                }
                if self.timer.is_none() {
                    let shared = &self.mailbox.shared;
                    let when = shared.clock.ticks_at(at);
                    let (key, earliest) = shared.timers.insert(when, TimerEntry::Waker(cx.waker().clone()));
                    if earliest {
                        shared.sched.unpark_one_sleeper();
                    }
                    self.timer = Some(key);
                }
            }
            // Stores the waker unless something arrived since `take` looked.
            if self.mailbox.slot().register_waker(self.mailbox.pid.serial(), cx.waker()) {
                return Poll::Pending;
            }
        }
    }

    fn cancel_timer(&mut self) {
        if let Some(key) = self.timer.take() {
            drop(self.mailbox.shared.timers.remove(key));
        }
    }
}

impl<T> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            drop(self.mailbox.shared.timers.remove(key));
        }
    }
}

/// The future of [`Mailbox::recv`]: the next message of type `T`.
#[must_use = "futures do nothing unless awaited"]
pub struct MailboxRecv<'a, T>(Wait<'a, T>);

/// The future of [`Mailbox::recv_timeout`]: a message of type `T`, or None.
#[must_use = "futures do nothing unless awaited"]
pub struct MailboxRecvTimeout<'a, T>(Wait<'a, T>);

impl<T: Send + 'static> Future for MailboxRecv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.get_mut().0.poll_wait(cx).map(|v| v.expect("a receive without deadline never times out"))
    }
}

impl<T: Send + 'static> Future for MailboxRecvTimeout<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().0.poll_wait(cx)
    }
}

impl<T> std::fmt::Debug for MailboxRecv<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MailboxRecv").field(&self.0.mailbox.pid).finish()
    }
}

impl<T> std::fmt::Debug for MailboxRecvTimeout<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MailboxRecvTimeout").field(&self.0.mailbox.pid).finish()
    }
}
