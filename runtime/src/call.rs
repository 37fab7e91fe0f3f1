//! Request and reply, with a deadline, where a late reply can never reach
//! the caller: the building block of `GenServer::call` (and, later, of the
//! RPC stubs).
//!
//! # Protocol
//!
//! 1. The caller picks a fresh tag and records it among the tags it
//!    awaits (its slot's extras, under its lock), monitors the server, and
//!    sends it a [`Call`] carrying the request and a [`ReplyTo`].
//! 2. The server answers with [`ReplyTo::reply`], now or later, from any
//!    process. The reply is delivered only if the caller still awaits its
//!    tag — checked under the caller's lock, at delivery.
//! 3. The caller receives the reply (or the monitor's `Down`: the server
//!    died — `NoProc` if it was not running; or the deadline passes). Then
//!    it stops awaiting the tag (under its lock: from then on any reply with
//!    that tag is turned away), removes the monitor, and takes out of its
//!    mailbox a reply that arrived in between.
//!
//! Erlang needed process aliases (OTP 24) for the same guarantee: that a
//! reply which arrives after the caller gave up never shows up in its
//! mailbox later, where it would confuse the next receive.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dist::{materialize, Materialized, RemoteMessage};
use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::with_extras_of;
use crate::monitor::{demonitor, monitor, Down, MonitorRef};
use crate::pid::Pid;
use crate::receive::{self, Decode};
use crate::scheduler::worker::with_current;
use crate::send::{deliver_unless, Message};
use crate::sync::Ordering;

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
    pub fn reply(self, value: R) {
        let reply = Reply { tag: self.tag, value };
        if !crate::dist::send_remote(self.to, crate::dist::tag_of::<Reply<R>>(), Some(self.tag), &reply) {
            self.send(reply.value);
        }
    }
}

impl<R: Send + 'static> ReplyTo<R> {
    /// [`ReplyTo::reply`] for a reply that need not be serializable (to a
    /// caller in this OS process, from [`call_local`]).
    pub fn reply_local(self, value: R) {
        self.send(value);
    }

    fn send(self, value: R) {
        let tag = self.tag;
        let env = Envelope::new(Reply { tag, value });
        deliver_unless(self.to, env, |extras| !extras.awaiting.contains(&tag));
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
/// If called outside a krarup process.
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
pub async fn call<Q: Message, R: Message>(server: Pid, request: Q, timeout: Duration) -> Result<R, CallError> {
    call_any(server, request, timeout, |to, call: Call<Q, R>| to.send(call), Some(materialize::<Reply<R>>)).await
}

/// [`call`] with a request and reply that need not be serializable (the
/// server is in this OS process; it answers with [`ReplyTo::reply_local`]).
///
/// # Errors
/// As [`call`].
///
/// # Panics
/// If called outside a krarup process.
pub async fn call_local<Q: Send + 'static, R: Send + 'static>(
    server: Pid,
    request: Q,
    timeout: Duration,
) -> Result<R, CallError> {
    call_any(server, request, timeout, |to, call: Call<Q, R>| to.send_local(call), None).await
}

/// A call that has been sent and whose reply is awaited later (Erlang's
/// `send_request`/`wait_response`): start several with [`call_start`],
/// then [`wait`](PendingCall::wait) for each. Dropping one that was not
/// awaited abandons it: its reply, if one comes, is turned away.
#[must_use = "a started call is awaited with `wait`; dropping it abandons the call"]
pub struct PendingCall<R: Send + 'static> {
    me: Pid,
    tag: u64,
    reference: MonitorRef,
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

/// Steps 1 of the module docs; `send` sends the [`Call`] (serializable or
/// local-only), `decode` decodes a reply from another node.
fn start_any<Q: Send + 'static, R: Send + 'static>(
    server: Pid,
    request: Q,
    send: impl FnOnce(Pid, Call<Q, R>),
    decode: Option<Decode>,
) -> PendingCall<R> {
    let (me, tag) = with_current("call", |worker, current, _| {
        let me = Pid::from_parts(worker.shared.node, current.index, current.serial);
        (me, worker.shared.refs.fetch_add(1, Ordering::Relaxed) + 1)
    });
    with_extras_of(me, |extras| extras.awaiting.push(tag));
    let reference = monitor(server);
    send(server, Call { request, reply_to: ReplyTo::<R> { to: me, tag, _reply: PhantomData } });
    PendingCall { me, tag, reference, decode, done: false, _reply: PhantomData }
}

impl<R: Send + 'static> PendingCall<R> {
    /// Waits at most `timeout` for the reply (steps 2 and 3 of the module
    /// docs).
    ///
    /// # Errors
    /// [`CallError`]: timeout, server not running, server exited meanwhile,
    /// its node unreachable.
    ///
    /// # Panics
    /// If awaited outside the process that started the call.
    pub async fn wait(mut self, timeout: Duration) -> Result<R, CallError> {
        let (tag, reference, decode) = (self.tag, self.reference, self.decode);
        let matcher = |env: &mut Envelope| {
            let ours = env.peek::<RemoteMessage>().is_some_and(|m| m.guard() == Some(tag));
            if let Some(Materialized::Garbage) = decode.map(|d| d(env)) {
                // Our reply, but not an `R`: the call fails; someone else's: dropped.
                return Some(if ours { 2 } else { receive::DISCARD });
            }
            if env.peek::<Reply<R>>().is_some_and(|r| r.tag == tag) {
                return Some(0);
            }
            env.peek::<Down>().is_some_and(|d| d.reference == reference).then_some(1)
        };
        let expected = &[std::any::type_name::<Reply<R>>, std::any::type_name::<Down>];
        let result = match receive::receive_with(matcher, expected, Some(timeout)).await {
            Some((0, env)) => Ok(env.downcast::<Reply<R>>().unwrap_or_else(|_| unreachable!("matched")).value),
            Some((2, _)) => Err(CallError::Undecodable),
            Some((_, env)) => {
                Err(CallError::from_down(env.downcast::<Down>().unwrap_or_else(|_| unreachable!("matched")).reason))
            }
            None => Err(CallError::Timeout),
        };
        self.finish(result.is_err());
        result
    }

    /// The end of step 3: stop awaiting the tag, remove the monitor, and
    /// take out a reply that came in between (if the call failed).
    fn finish(&mut self, failed: bool) {
        self.done = true;
        let tag = self.tag;
        let in_caller = crate::scheduler::worker::with_worker(|w| {
            w.and_then(|w| w.current().map(|c| Pid::from_parts(w.shared.node, c.index, c.serial))) == Some(self.me)
        });
        if in_caller {
            demonitor(self.reference);
        }
        // From here on a reply with this tag is turned away; take out one that
        // came in between (decoded or not).
        with_extras_of(self.me, |extras| extras.awaiting.retain(|&t| t != tag));
        if failed && in_caller {
            let is_reply = |env: &Envelope| {
                env.peek::<Reply<R>>().is_some_and(|r| r.tag == tag)
                    || env.peek::<RemoteMessage>().is_some_and(|m| m.guard() == Some(tag))
            };
            while receive::remove_first(is_reply).is_some() {}
        }
    }
}

impl<R: Send + 'static> Drop for PendingCall<R> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned. Outside its process (the process itself is ending)
            // only the tag is dropped; its monitor and mailbox go with it.
            self.finish(true);
        }
    }
}

/// The protocol of the module docs: [`start_any`], then
/// [`PendingCall::wait`].
async fn call_any<Q: Send + 'static, R: Send + 'static>(
    server: Pid,
    request: Q,
    timeout: Duration,
    send: impl FnOnce(Pid, Call<Q, R>),
    decode: Option<Decode>,
) -> Result<R, CallError> {
    start_any(server, request, send, decode).wait(timeout).await
}
