//! Request and reply, with a deadline, where a late reply can never reach
//! the caller: the building block of `GenServer::call` and of the RPC stubs.
//!
//! # Protocol
//!
//! A call to a server of the caller's own runtime (the common case):
//!
//! 1. The caller picks a fresh tag and records it as awaited, in its own
//!    slot (`awaits.rs`: without a lock when it awaits no other call).
//! 2. Under the server's lock, in one section: if the server is alive, the
//!    call's monitor (whose id is the tag) joins its `calls` and the
//!    [`Call`] its mailbox; if not, the call fails at once with `NoProc`.
//! 3. The server answers with [`ReplyTo::reply`], now or later, from any
//!    process. The reply is delivered only if the caller still awaits the
//!    tag — checked under the caller's lock, at delivery — and its delivery
//!    ends the wait (a call takes one reply; another one with the same tag
//!    is turned away).
//! 4. The caller receives the reply, or the monitor's `Down` (the server
//!    exited: its exit sends one for each of its `calls`, under the same
//!    rule as a reply — accepted only while the call is awaited, ending the
//!    wait), or the deadline passes. After a reply or the `Down` there is
//!    nothing left to undo. Otherwise (a timeout, an abandoned call) the
//!    caller stops awaiting the tag under its lock; if it was no longer
//!    awaited, the reply or the `Down` was accepted in between, and the
//!    caller takes it out of its mailbox.
//!
//! A successful call thus takes two lock sections, as many as a
//! hand-written request and reply: the server's (2) and the caller's (3).
//! The call's monitor is not removed when the call ends: it stays among the
//! server's `calls`, where it can do nothing but send a `Down` that is
//! turned away, until the caller's next call replaces it, they are pruned
//! (when they have doubled since the last pruning, step 2 drops the
//! monitors whose callers no longer await them: amortized constant time
//! per call; see `call_monitors.rs`) or the server exits. A caller
//! that exits mid-call leaves nothing to clean up either: its awaited tags
//! go with its incarnation.
//!
//! A call to a server elsewhere — another node, or another runtime of this
//! OS process — records the tag as in step 1, then monitors the server
//! with [`monitor`] (which reports a lost node as `NoConnection`) and sends
//! the `Call`; step 4 is [`demonitor`] (unless the `Down` came) and, on
//! failure, the same giving up. A reply from another node is checked
//! against (and ends) the record when it arrives (`dist/remote.rs`). A
//! call to a name on another node ([`call_named_at`]) is the same with a
//! monitor of the name ([`monitor_name_at`](crate::monitor_name_at)) and
//! the request sent to the name, which that node looks up as each arrives.
//!
//! Erlang needed process aliases (OTP 24) for the same guarantee: that a
//! reply which arrives after the caller gave up never shows up in its
//! mailbox later, where it would confuse the next receive. Its
//! `gen_server:call` also monitors the server for the call's duration.
//!
//! # The wait
//!
//! The caller receives (step 4) the way a receive by type does
//! (`receive::scan_types`): a message is the call's if it is a `Reply<R>`
//! with its tag or a `Down` with its monitor's reference, which is a type
//! check and a comparison, run under the caller's lock, so that either one
//! at the front of the queue senders push to is taken without moving
//! anything. Only a message that is neither is offered to the decoder of
//! replies from other nodes: our reply that does not decode as an `R` ends
//! the call with `Undecodable`, someone else's is dropped. Every other
//! message stays where it is, in order.
//!
//! A call to a server of the caller's runtime whose tag is the one in the
//! caller's awaits word (`awaits.rs`: a call started while the caller
//! awaited no other) first reads that word, without the lock. While it
//! still holds the tag, neither the reply nor the `Down` has reached the
//! mailbox, so the wait does not look at it: it marks what is there as
//! scanned and waits on. A caller with a long mailbox of other messages
//! thus looks at none of them before the reply comes, and then only at
//! those that came during the call. (Erlang does the same for
//! `receive {Ref, _}` after `make_ref()`: it starts at the place in the
//! queue marked when the reference was made.) Why a yes is never wrong and
//! a stale read is never lost:
//!
//! - The reply and the `Down` are accepted only by taking the tag (their
//!   delivery's veto is `ReplyOf`), in the section of the caller's lock
//!   that queues them, and a tag is never recorded again (tags come from a
//!   counter). The word's `MORE` flag does not matter: it says other calls
//!   are awaited, not that ours is not.
//! - Whatever the caller can see in its mailbox got there after that
//!   section, in an order the read respects: its inner queue holds what its
//!   own drains took under the lock (acquiring the delivery's release) and
//!   what senders handed off (the sender made the process runnable; the run
//!   queue orders that before the poll). A read ordered after the store
//!   that cleared the tag cannot return the tag. So a read that finds it,
//!   stale or not, means that nothing the poll could look at is the call's.
//! - A read can miss only a delivery concurrent with the poll. That one was
//!   pushed to the outer queue (the caller is `BUSY`) and set
//!   `MSG_NOTIFIED` under the lock, so the process is polled again after
//!   this poll (`slot.rs`, step 4; if a later receive of the same poll
//!   drains the queue first, `receive::PollBook` asks for it), and that
//!   poll, which acquired the lock released by the delivery, reads the
//!   cleared word. A stale read costs a poll, never a wake-up. (If the
//!   deadline passes in between, the call times out and gives up, and
//!   `give_up` takes the reply out, as for any reply that comes too late.)
//!
//! A call to a server elsewhere does not read the word: its `Down` comes
//! from a general monitor, which does not take the tag. Nor does a call
//! whose tag is in the extras' list (several calls in flight): the word
//! then holds another tag, and the wait looks.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::awaits::ReplyOf;
use crate::dist::{materialize, Materialized, RemoteMessage};
use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::{Processes, Table};
use crate::monitor::{demonitor, monitor, Down, MonitorRef};
use crate::pid::Pid;
use crate::receive::{self, Decode, Scan};
use crate::scheduler::worker::{with_current, with_owner, with_worker, Current, Worker};
use crate::send::{deliver_unless, deliver_unless_or, with_runtime_of, Message};
use crate::slot::{Owner, Slot};
use crate::timer::deadline::Deadline;

/// Where the reply to one call goes. Serializable, so a server can keep it
/// and reply later (a deferred reply), or hand it to another process.
#[derive(Serialize, Deserialize)]
pub struct ReplyTo<R> {
    to: Pid,
    tag: u64,
    #[serde(skip)]
    _reply: PhantomData<fn(R)>,
}

impl<R> Clone for ReplyTo<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for ReplyTo<R> {}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo").field("to", &self.to).field("tag", &self.tag).finish()
    }
}

impl<R: Message> ReplyTo<R> {
    /// Sends the reply. It reaches the caller only if the caller is still
    /// waiting for it; after a timeout it is dropped. Works across nodes.
    #[inline]
    pub fn reply(self, value: R) {
        let (to, tag) = (self.to, self.tag);
        deliver_unless_or(to, Envelope::new(Reply { tag, value }), ReplyOf(tag), |env| Self::reply_far(to, tag, env));
    }

    /// [`ReplyTo::reply`] to another node, or another runtime of this OS process.
    #[cold]
    #[inline(never)]
    fn reply_far(to: Pid, tag: u64, env: Envelope) {
        let reply = env.downcast::<Reply<R>>().unwrap_or_else(|_| unreachable!("sent as a reply"));
        if !crate::dist::send_remote(to, crate::dist::tag_of::<Reply<R>>, Some(tag), &reply) {
            deliver_unless(to, Envelope::new(reply), ReplyOf(tag));
        }
    }
}

impl<R: Send + 'static> ReplyTo<R> {
    /// [`ReplyTo::reply`] for a reply that need not be serializable (to a
    /// caller in this OS process, from [`call_local`]).
    pub fn reply_local(self, value: R) {
        self.send(value);
    }

    /// Step 3 of the module docs, to a caller in this OS process.
    fn send(self, value: R) {
        let tag = self.tag;
        deliver_unless(self.to, Envelope::new(Reply { tag, value }), ReplyOf(tag));
    }
}

impl<R> ReplyTo<R> {
    /// The calling process.
    pub fn caller(&self) -> Pid {
        self.to
    }
}

/// The message a server receives for a [`call`]: the request and where
/// to reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call<Q, R> {
    /// What the caller asks.
    pub request: Q,
    /// Where the answer goes.
    pub reply_to: ReplyTo<R>,
}

/// The reply message, tagged with its call.
#[derive(Debug, Serialize, Deserialize)]
struct Reply<R> {
    tag: u64,
    value: R,
}

/// Why a [`call`] returned no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// No reply within the timeout. The server may still be working on
    /// the request; its reply will be dropped.
    Timeout,
    /// The server was not running (or no process had the name).
    NoProc,
    /// The server's node became unreachable.
    NoConnection,
    /// The server exited while the call was in progress, with this reason.
    Exited(ExitReason),
    /// The reply came from another node but did not decode as the reply
    /// type (the two programs disagree on the type's shape).
    Undecodable,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::NoProc => f.write_str("calling a process that is not running"),
            CallError::NoConnection => f.write_str("the called process's node is unreachable"),
            CallError::Exited(reason) => write!(f, "the called process exited during the call ({reason})"),
            CallError::Undecodable => f.write_str("the reply did not decode as the expected type"),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// The error for a call whose server's monitor fired with `reason`.
    fn from_down(reason: ExitReason) -> CallError {
        match reason {
            ExitReason::NoProc => CallError::NoProc,
            ExitReason::NoConnection => CallError::NoConnection,
            other => CallError::Exited(other),
        }
    }
}

/// Sends `request` to `server` and waits at most `timeout` for its reply
/// (see the module docs). The server receives a [`Call<Q, R>`] and answers
/// with `call.reply_to.reply(..)`.
///
/// # Errors
/// [`CallError`]: timeout, server not running, server exited meanwhile.
///
/// # Panics
/// If polled outside a krarup process (nothing is sent before the first poll).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::{call, recv, spawn, Call, Runtime};
///
/// async fn double() {
///     loop {
///         let c: Call<u64, u64> = recv().await;
///         c.reply_to.reply(c.request * 2);
///     }
/// }
///
/// let rt = Runtime::new();
/// let answer = rt.block_on(async {
///     let server = spawn(double());
///     call::<u64, u64>(server, 21, Duration::from_secs(5)).await
/// });
/// assert_eq!(answer, Ok(42));
/// ```
pub fn call<Q: Message, R: Message>(server: Pid, request: Q, timeout: Duration) -> Calling<Q, R> {
    Calling::new(server, request, timeout, |to, call| to.send(call), Some(materialize::<Reply<R>>))
}

/// [`call`] with a request and reply that need not be serializable (the
/// server is in this OS process; it answers with [`ReplyTo::reply_local`]).
///
/// # Errors
/// As [`call`].
///
/// # Panics
/// If polled outside a krarup process (nothing is sent before the first poll).
pub fn call_local<Q: Send + 'static, R: Send + 'static>(server: Pid, request: Q, timeout: Duration) -> Calling<Q, R> {
    Calling::new(server, request, timeout, |to, call| to.send_local(call), None)
}

/// How a [`PendingCall`] watches its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    /// A server of the caller's runtime: the call's own monitor (steps 1-2).
    Local,
    /// A server elsewhere: a general monitor.
    General,
    /// The server was not running at step 2: the call has failed.
    NotRunning,
}

/// How a call's wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The reply was received (its delivery ended the wait).
    Replied,
    /// The server's `Down` was received.
    Down,
    /// Anything else: a timeout, an undecodable reply, an abandoned call.
    Failed,
}

/// Steps 1 and 2 of the module docs for a server of the caller's runtime,
/// over `processes`: the record (in the caller's slot, `own`), then the
/// monitor `reference` (whose id is the call's tag) and the `request`, in
/// one section of the server's lock. Whether the server was alive.
///
/// A caller that awaits no other call replaces its previous call's monitor
/// instead of adding one (`call_monitors.rs`).
#[inline(always)]
pub(crate) fn start_local(processes: &impl Processes, own: &Slot, reference: MonitorRef, request: Envelope) -> bool {
    let (me, server) = (reference.watcher(), reference.target());
    let only_call = own.await_reply(me.serial(), reference.id());
    processes.deliver_with(server, request, |e| {
        e.calls.add(reference, only_call, |calls| processes.retain_awaited(calls));
    })
}

/// Step 4 of the module docs for a call whose wait ended without its reply
/// or `Down` (a timeout, an abandoned call, a server that was not
/// running): the caller, whose mailbox `own` holds, gives up the call `tag`;
/// `is_ours` recognises the call's reply and `Down`, one of which may have
/// been accepted in between and is taken out of the mailbox.
pub(crate) fn give_up(own: &mut Owner<'_>, serial: u32, tag: u64, is_ours: impl Fn(&Envelope) -> bool) {
    if !own.stop_awaiting(serial, tag) {
        while receive::remove_first_or(own, &is_ours, |_| {}).is_some() {}
    }
}

/// Whether `caller` awaits the reply to its call `tag` (under its lock).
pub(crate) fn awaits(caller: Pid, tag: u64) -> bool {
    with_runtime_of(caller, |shared| {
        shared.table.get(caller.index()).is_some_and(|s| s.awaits_exactly(caller.serial(), tag))
    })
    .unwrap_or(false)
}

/// Exit path: the monitors of the calls made to `dead` fire, each `Down`
/// accepted only by a caller that still awaits its call (step 4).
pub(crate) fn fire_calls(processes: &impl Processes, dead: Pid, reason: &ExitReason, calls: Vec<MonitorRef>) {
    for reference in calls {
        let down = Envelope::new(Down { reference, pid: dead, reason: reason.clone() });
        processes.deliver_unless(reference.watcher(), down, ReplyOf(reference.id()));
    }
}

/// A call that has been sent and whose reply is awaited later (Erlang's
/// `send_request`/`wait_response`): start several with [`call_start`],
/// then [`wait`](PendingCall::wait) for each. Dropping one that was not
/// awaited abandons it: its reply, if one comes, is turned away.
#[must_use = "a started call is awaited with `wait`; dropping it abandons the call"]
pub struct PendingCall<R: Send + 'static> {
    tag: u64,
    reference: MonitorRef,
    watch: Watch,
    decode: Option<Decode>,
    done: bool,
    _reply: PhantomData<fn() -> R>,
}

impl<R: Send + 'static> fmt::Debug for PendingCall<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCall").field("server", &self.reference.target()).field("tag", &self.tag).finish()
    }
}

/// Sends `request` to `server` now and returns the call, to be awaited
/// later with [`PendingCall::wait`]: a deferred synchronous call. Several
/// calls can be in flight at once, to one server or to several.
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::{call_start, recv, spawn, Call, Runtime};
///
/// async fn double() {
///     loop {
///         let c: Call<u64, u64> = recv().await;
///         c.reply_to.reply(c.request * 2);
///     }
/// }
///
/// let rt = Runtime::new();
/// let answers = rt.block_on(async {
///     let server = spawn(double());
///     let first = call_start::<u64, u64>(server, 1);
///     let second = call_start::<u64, u64>(server, 2);
///     let t = Duration::from_secs(5);
///     (second.wait(t).await, first.wait(t).await)
/// });
/// assert_eq!(answers, (Ok(4), Ok(2)));
/// ```
pub fn call_start<Q: Message, R: Message>(server: Pid, request: Q) -> PendingCall<R> {
    start_any(server, request, |to, call: Call<Q, R>| to.send(call), Some(materialize::<Reply<R>>))
}

/// Calls the process registered as `name` on node `node` and waits at most
/// `timeout` for its reply: Erlang's `gen_server:call({Name, Node}, Request)`.
/// The call monitors the name ([`monitor_name_at`](crate::monitor_name_at))
/// and sends the request to it ([`send_named_at`](crate::send_named_at)):
/// that node looks the name up as each arrives, so a server restarted under
/// its name is reached by the first call after the restart. Nothing is sent
/// before the first poll. This node's own name calls the local name.
///
/// # Errors
/// As [`call`]: `NoProc` at once if nobody has the name, `NoConnection` if
/// the node cannot be reached.
///
/// # Panics
/// If polled outside a krarup process.
pub async fn call_named_at<Q: Message, R: Message>(
    name: &str,
    node: &str,
    request: Q,
    timeout: Duration,
) -> Result<R, CallError> {
    call_start_named_at::<Q, R>(name, node, request).wait(timeout).await
}

/// [`call_start`] to the process registered as `name` on node `node` (see
/// [`call_named_at`]): sends the request now; await it with
/// [`PendingCall::wait`].
///
/// # Panics
/// If called outside a krarup process.
pub fn call_start_named_at<Q: Message, R: Message>(name: &str, node: &str, request: Q) -> PendingCall<R> {
    let mut call = PendingCall::unstarted(Some(materialize::<Reply<R>>));
    call.start_named(name, node, request);
    call
}

/// Steps 1 and 2 of the module docs; `send` sends the [`Call`]
/// (serializable or local-only) to a server elsewhere, `decode` decodes a
/// reply from another node.
fn start_any<Q: Send + 'static, R: Send + 'static>(
    server: Pid,
    request: Q,
    send: impl FnOnce(Pid, Call<Q, R>),
    decode: Option<Decode>,
) -> PendingCall<R> {
    let mut call = PendingCall::unstarted(decode);
    call.start(server, request, send);
    call
}

impl<R: Send + 'static> PendingCall<R> {
    /// A call not started yet (whose drop does nothing).
    fn unstarted(decode: Option<Decode>) -> PendingCall<R> {
        let nobody = Pid::from_parts(0, 0, 0);
        PendingCall {
            tag: 0,
            reference: MonitorRef::new(0, nobody, nobody),
            watch: Watch::NotRunning,
            decode,
            done: true,
            _reply: PhantomData,
        }
    }

    /// The start of step 1, for both ways of starting: a fresh tag for this
    /// call, and where its reply goes (the calling process, `current`).
    #[inline(always)]
    fn begin(&mut self, worker: &Worker, current: Current) -> ReplyTo<R> {
        let tag = worker.fresh_ref();
        self.tag = tag;
        self.done = false;
        ReplyTo { to: Pid::from_parts(worker.shared.node, current.index, current.serial), tag, _reply: PhantomData }
    }

    /// Steps 1 and 2 of the module docs, written into this unstarted call in
    /// place (a call future is not moved to start it).
    #[inline]
    fn start<Q: Send + 'static>(&mut self, server: Pid, request: Q, send: impl FnOnce(Pid, Call<Q, R>)) {
        let elsewhere = with_current("call", |worker, current, own| {
            let reply_to = self.begin(worker, current);
            let (me, tag) = (reply_to.to, reply_to.tag);
            if server.node() != worker.shared.node {
                own.await_reply(me.serial(), tag);
                return Some(Call { request, reply_to });
            }
            let reference = MonitorRef::new(tag, server, me);
            self.reference = reference;
            let alive = start_local(&Table, own, reference, Envelope::new(Call { request, reply_to }));
            self.watch = if alive { Watch::Local } else { Watch::NotRunning };
            None
        });
        if let Some(call) = elsewhere {
            self.reference = monitor(server);
            self.watch = Watch::General;
            send(server, call);
        }
    }

    /// Steps 1 and 2 of the module docs for a server known by name on a
    /// node: the record, then a monitor of the name (whose node looks it up
    /// when the monitor arrives) and the request to the name, in that order
    /// on one connection, so both find the same process unless the name
    /// moves in between.
    fn start_named<Q: Message>(&mut self, name: &str, node: &str, request: Q)
    where
        R: Message,
    {
        let call = with_current("call", |worker, current, own| {
            let reply_to = self.begin(worker, current);
            own.await_reply(reply_to.to.serial(), reply_to.tag);
            Call { request, reply_to }
        });
        self.reference = crate::monitor::monitor_name_at(name, node);
        self.watch = Watch::General;
        crate::send::send_named_at(name, node, call);
    }

    /// Waits at most `timeout` for the reply (steps 3 and 4 of the module
    /// docs). The timeout counts from the first time the reply is not there
    /// yet when the returned future is polled.
    ///
    /// # Errors
    /// [`CallError`]: timeout, server not running, server exited meanwhile,
    /// its node unreachable.
    ///
    /// # Panics
    /// If awaited outside the process that started the call.
    pub fn wait(self, timeout: Duration) -> CallWait<R> {
        CallWait { call: self, scan: Scan::default(), deadline: Deadline::new(timeout) }
    }

    /// Step 4 of the module docs.
    #[inline]
    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        if self.watch != Watch::General && outcome != Outcome::Failed {
            // The delivery of the reply or of the Down ended the wait; the
            // monitor stays on the server, harmless.
            return;
        }
        self.finish_otherwise(outcome);
    }

    /// Step 4 for a call elsewhere, or one that failed.
    #[cold]
    fn finish_otherwise(&mut self, outcome: Outcome) {
        let (me, tag, reference) = (self.reference.watcher(), self.tag, self.reference);
        let local = self.watch != Watch::General;
        let in_caller = with_worker(|w| {
            w.and_then(|w| w.current().map(|c| Pid::from_parts(w.shared.node, c.index, c.serial))) == Some(me)
        });
        if !in_caller {
            // Abandoned outside its process (the process itself is ending,
            // or the call was handed elsewhere): stop awaiting it if the
            // process lives on; what is in its mailbox stays there. A
            // general monitor goes with the watcher's `watching` list at its
            // exit (`link::announce_exit`).
            if outcome != Outcome::Replied {
                with_runtime_of(me, |shared| shared.table.get(me.index()).map(|s| s.stop_awaiting(me.serial(), tag)));
            }
            return;
        }
        // Dropped inside a `receive!` guard, whose receive holds the inner
        // queue, the call can neither take its reply out nor flush its
        // monitor's `Down`: `with_owner` (in `demonitor` and below) panics,
        // crashing the process, whether or not anything has come. While
        // already unwinding (a second panic would abort), the call is only
        // given up.
        if std::thread::panicking() && with_current("call", |worker, _, _| worker.is_holding()) {
            if outcome != Outcome::Replied {
                with_current("call", |_, _, own| own.stop_awaiting(me.serial(), tag));
            }
            return;
        }
        if !local && outcome != Outcome::Down {
            demonitor(reference);
        }
        if outcome != Outcome::Replied {
            let is_ours = |env: &Envelope| {
                env.peek::<Reply<R>>().is_some_and(|r| r.tag == tag)
                    || env.peek::<RemoteMessage>().is_some_and(|m| m.guard() == Some(tag))
                    || (local && env.peek::<Down>().is_some_and(|d| d.reference == reference))
            };
            with_owner("abandoning a call", |_, _, own| give_up(own, me.serial(), tag, is_ours));
        }
    }
}

/// The future of [`PendingCall::wait`]: the reply, or why none came.
#[must_use = "futures do nothing unless awaited"]
pub struct CallWait<R: Send + 'static> {
    call: PendingCall<R>,
    scan: Scan,
    deadline: Deadline,
}

impl<R: Send + 'static> fmt::Debug for CallWait<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallWait").field("call", &self.call).finish_non_exhaustive()
    }
}

impl<R: Send + 'static> Future for CallWait<R> {
    type Output = Result<R, CallError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let CallWait { call, scan, deadline } = self.get_mut();
        if call.watch == Watch::NotRunning {
            call.finish(Outcome::Failed);
            return Poll::Ready(Err(CallError::NoProc));
        }
        let (tag, reference, decode) = (call.tag, &call.reference, call.decode);
        // Under the slot lock: a type check and a comparison, no user code.
        let is_ours = |env: &Envelope| {
            if let Some(reply) = env.peek::<Reply<R>>() {
                return (reply.tag == tag).then_some(0);
            }
            if let Some(down) = env.peek::<Down>() {
                return (down.reference == *reference).then_some(1);
            }
            None
        };
        // Any other message, which may be one from another node.
        let remote = |env: &mut Envelope| {
            let decode = decode?;
            let ours = env.peek::<RemoteMessage>().is_some_and(|m| m.guard() == Some(tag));
            match decode(env) {
                // Our reply, but not an `R`: the call fails; someone else's: dropped.
                Materialized::Garbage => Some(if ours { 2 } else { receive::DISCARD }),
                Materialized::Decoded if env.peek::<Reply<R>>().is_some_and(|r| r.tag == tag) => Some(0),
                _ => None,
            }
        };
        let expected = || vec![std::any::type_name::<Reply<R>>(), std::any::type_name::<Down>()];
        // Only the reply and the `Down` of a local call both take its tag
        // from the caller's awaits word (see "The wait").
        let awaited = (call.watch == Watch::Local).then_some(tag);
        let Poll::Ready(got) = receive::poll_call(scan, deadline, awaited, is_ours, remote, expected) else {
            return Poll::Pending;
        };
        let outcome = match &got {
            Some((0, _)) => Outcome::Replied,
            Some((2, _)) | None => Outcome::Failed,
            Some(_) => Outcome::Down,
        };
        call.finish(outcome);
        Poll::Ready(match got {
            Some((0, env)) => Ok(env.downcast::<Reply<R>>().unwrap_or_else(|_| unreachable!("matched")).value),
            Some((2, _)) => Err(CallError::Undecodable),
            Some((_, env)) => {
                let down = env.downcast::<Down>().unwrap_or_else(|_| unreachable!("matched"));
                Err(CallError::from_down(down.reason))
            }
            None => Err(CallError::Timeout),
        })
    }
}

impl<R: Send + 'static> Drop for PendingCall<R> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned. Outside its process (the process itself is ending)
            // its mailbox goes with it; the record and the monitor are
            // removed all the same.
            self.finish(Outcome::Failed);
        }
    }
}

/// The future of [`call`] and [`call_local`]: nothing happens until it is
/// first polled, which starts the call ([`call_start`]) and then waits for
/// it ([`PendingCall::wait`]). Written by hand rather than as an `async fn`,
/// and the wait's state is laid out at creation, so that starting the call
/// writes its fields in place rather than moving futures around.
#[must_use = "futures do nothing unless awaited"]
pub struct Calling<Q, R: Send + 'static> {
    /// Until the first poll: the server, the request and how to send it.
    start: Option<Start<Q, R>>,
    /// The wait, its call unstarted until the first poll.
    wait: CallWait<R>,
}

impl<Q: Send + 'static, R: Send + 'static> Calling<Q, R> {
    fn new(
        server: Pid,
        request: Q,
        timeout: Duration,
        send: fn(Pid, Call<Q, R>),
        decode: Option<Decode>,
    ) -> Calling<Q, R> {
        Calling { start: Some((server, request, send)), wait: PendingCall::unstarted(decode).wait(timeout) }
    }
}

impl<Q, R: Send + 'static> Calling<Q, R> {
    /// Calls `server` instead of the server the call was made with, waiting
    /// at most `timeout`: for a caller that finds its server only when the
    /// call is first polled (the RPC stubs' client, for a server it knows by
    /// name), so that one future serves both cases. Nothing has been sent
    /// yet, so nothing else changes.
    ///
    /// # Panics
    /// After the first poll.
    #[doc(hidden)]
    pub fn redirect(&mut self, server: Pid, timeout: Duration) {
        let Some((to, ..)) = &mut self.start else { panic!("krarup: a call was redirected after its first poll") };
        *to = server;
        self.wait.deadline = Deadline::new(timeout);
    }
}

impl<Q: Message, R: Message> Calling<Q, R> {
    /// Starts the call now, to the process registered as `name` on node
    /// `node` instead of the server the call was made with (as
    /// [`call_start_named_at`] does), waiting at most `timeout`: for the RPC
    /// stubs' client, at the first poll of a call to a name on another node,
    /// so that one future serves every target.
    ///
    /// # Panics
    /// After the first poll, or outside a krarup process.
    #[doc(hidden)]
    pub fn start_named_at(&mut self, name: &str, node: &str, timeout: Duration) {
        let Some((_, request, _)) = self.start.take() else {
            panic!("krarup: a call was redirected after its first poll")
        };
        self.wait.deadline = Deadline::new(timeout);
        self.wait.call.start_named(name, node, request);
    }
}

impl<Q, R: Send + 'static> fmt::Debug for Calling<Q, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.start {
            Some((server, ..)) => f.debug_struct("Calling").field("server", server).finish_non_exhaustive(),
            None => f.debug_tuple("Calling").field(&self.wait).finish(),
        }
    }
}

/// What a [`Calling`] needs to start its call: the server, the request and
/// how to send it to a server elsewhere.
type Start<Q, R> = (Pid, Q, fn(Pid, Call<Q, R>));

// The request is moved out at the first poll, never pinned.
impl<Q, R: Send + 'static> Unpin for Calling<Q, R> {}

impl<Q: Send + 'static, R: Send + 'static> Future for Calling<Q, R> {
    type Output = Result<R, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some((server, request, send)) = this.start.take() {
            this.wait.call.start(server, request, send);
        } else if this.wait.call.done {
            panic!("krarup: a call's future was polled after it completed");
        }
        Pin::new(&mut this.wait).poll(cx)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{recv, recv_timeout, self_pid, spawn, Runtime};

    async fn increment() {
        loop {
            let c: Call<u64, u64> = recv().await;
            c.reply_to.reply(c.request + 1);
        }
    }

    /// A call redirected before its first poll goes to the new server only,
    /// with the new timeout.
    #[test]
    fn a_redirected_call_reaches_the_new_server_only() {
        let rt = Runtime::new();
        rt.block_on(async {
            // Replies with how many calls it has had.
            let first = spawn(async {
                for calls in 1u64.. {
                    let c: Call<u64, u64> = recv().await;
                    c.reply_to.reply(calls);
                }
            });
            let second = spawn(increment());
            let mut redirected = call::<u64, u64>(first, 1, Duration::from_secs(5));
            redirected.redirect(second, Duration::from_secs(5));
            assert_eq!(redirected.await, Ok(2));
            // The new timeout holds: a server that never answers is given up on after it.
            let silent = spawn(std::future::pending::<()>());
            let mut redirected = call::<u64, u64>(first, 1, Duration::from_secs(10));
            redirected.redirect(silent, Duration::from_millis(20));
            let started = std::time::Instant::now();
            assert_eq!(redirected.await, Err(CallError::Timeout));
            assert!(started.elapsed() < Duration::from_secs(5), "the call waited {:?}", started.elapsed());
            let t = Duration::from_secs(5);
            assert_eq!(call::<u64, u64>(first, 0, t).await, Ok(1), "the first server had no call before");
        });
    }

    /// A call started at a name on another node goes to that name only, with
    /// the new timeout: from a runtime that is no node, it fails with
    /// `NoConnection` at once, not the reply of the server it was made with.
    #[test]
    fn a_call_started_at_a_name_on_another_node_goes_there_not_to_the_server_it_was_made_with() {
        let rt = Runtime::new();
        rt.block_on(async {
            let first = spawn(increment());
            let mut started = call::<u64, u64>(first, 1, Duration::from_secs(10));
            started.start_named_at("increment", "elsewhere@127.0.0.1:1", Duration::from_secs(5));
            let begun = std::time::Instant::now();
            assert_eq!(started.await, Err(CallError::NoConnection));
            assert!(begun.elapsed() < Duration::from_secs(5), "the call waited {:?}", begun.elapsed());
            assert_eq!(crate::mailbox_len(self_pid()), Some(0), "the call left nothing behind");
        });
    }

    /// The monitors of ended calls stay on the server only until the next
    /// pruning: many callers, one call each, leave a short list behind.
    #[test]
    fn the_monitors_of_ended_calls_are_pruned() {
        let rt = Runtime::builder().workers(2).build().expect("a runtime");
        let kept = rt.block_on(async {
            let server = spawn(increment());
            let me = self_pid();
            for n in 0..1_000u64 {
                // A new caller each time: its monitor cannot replace another's.
                spawn(async move { me.send(call::<u64, u64>(server, n, Duration::from_secs(5)).await.ok()) });
                assert_eq!(recv_timeout::<Option<u64>>(Duration::from_secs(5)).await, Some(Some(n + 1)));
            }
            // One caller again and again: it replaces its own monitor.
            for n in 0..1_000u64 {
                assert_eq!(call::<u64, u64>(server, n, Duration::from_secs(5)).await, Ok(n + 1));
            }
            crate::link::with_extras_of(server, |e| e.calls.len()).expect("the server is alive")
        });
        assert!(
            kept <= crate::call_monitors::PRUNE_FIRST + 1,
            "{kept} call monitors left on the server after 2,000 calls"
        );
    }

    /// A burst of callers at once, then one caller: the burst's monitors go
    /// at the next review, although the one caller never finds the table
    /// full.
    #[test]
    fn the_monitors_of_a_burst_of_callers_go_once_the_burst_is_over() {
        const BURST: u64 = 1_000;
        let rt = Runtime::builder().workers(2).build().expect("a runtime");
        let kept = rt.block_on(async {
            // Answers the burst's calls only once all of them are in.
            let server = spawn(async {
                let mut burst = Vec::new();
                for _ in 0..BURST {
                    burst.push(recv::<Call<u64, u64>>().await);
                }
                for c in burst {
                    c.reply_to.reply(c.request + 1);
                }
                increment().await
            });
            let me = self_pid();
            for n in 0..BURST {
                spawn(async move { me.send(call::<u64, u64>(server, n, Duration::from_secs(5)).await.ok()) });
            }
            let mut sum = 0;
            for _ in 0..BURST {
                sum += recv_timeout::<Option<u64>>(Duration::from_secs(5)).await.flatten().expect("a reply");
            }
            assert_eq!(sum, BURST * (BURST + 1) / 2);
            let burst_table = crate::link::with_extras_of(server, |e| e.calls.len()).expect("the server is alive");
            assert_eq!(burst_table, BURST as usize, "the burst's monitors, before any review");
            // The one caller's calls, enough for a review of a table sized
            // for the burst: one comes within sixteen times the table's
            // length, which is at most four times its entries.
            let review = 16 * 4 * BURST + u64::from(crate::call_monitors::REVIEW_EVERY);
            for n in 0..review {
                assert_eq!(call::<u64, u64>(server, n, Duration::from_secs(5)).await, Ok(n + 1));
            }
            crate::link::with_extras_of(server, |e| e.calls.len()).expect("the server is alive")
        });
        assert_eq!(kept, 1, "call monitors left on the server: only the one caller's last call's");
    }
}
