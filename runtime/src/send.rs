//! Sending: `pid.send(msg)`, `send(pid, msg)`, `send_local`, `send_named`.
//!
//! A send never blocks and never fails for a Pid: the message goes into the
//! target's mailbox, or, if the target has exited, is dropped and counted
//! (Erlang drops it silently). Messages from one sender to one receiver
//! arrive in the order sent: a sender's pushes into a mailbox are
//! sequential and the mailbox is FIFO.
//!
//! The fast path — a process sending to a process of its own runtime — is a
//! table lookup and one lock-free-in-practice push (see `slot.rs`); sends
//! from other threads find the target's runtime in the node table.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::envelope::Envelope;
use crate::error::SendError;
use crate::pid::Pid;
use crate::scheduler::worker::{with_current, with_worker};
use crate::slot::Extras;
use crate::sync::global::{AtomicU64, Ordering};

/// A message that can go anywhere, including (once the network node is
/// running) to another machine: `Serialize + DeserializeOwned + Send +
/// 'static`. Implemented for every such type.
///
/// Types that cannot be serialized (channels, closures, `Arc`s) can still be
/// sent to local processes with [`send_local`] and received with
/// [`recv_local`](crate::recv_local) or [`receive!`](crate::receive).
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// Messages dropped because their Pid named no running runtime at all.
static UNROUTABLE: AtomicU64 = AtomicU64::new(0);

/// Sends `msg` to `to`. Never blocks; if `to` has exited the message is
/// dropped (and counted in [`RuntimeStats`](crate::RuntimeStats)).
///
/// Works from any thread: a process, a plain thread, or another runtime.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{recv, send, self_pid, Runtime};
///
/// let rt = Runtime::new();
/// let got = rt.block_on(async {
///     send(self_pid(), 42u32);
///     recv::<u32>().await
/// });
/// assert_eq!(got, 42);
/// ```
#[inline]
pub fn send<M: Message>(to: Pid, msg: M) {
    deliver_or(to, Envelope::new(msg), |env| send_from_afar::<M>(to, env));
}

/// [`send`] to a Pid of another runtime or node: a remote one gets the
/// message encoded for its node (see `dist`).
#[cold]
fn send_from_afar<M: Message>(to: Pid, env: Envelope) {
    let Some(remote) = crate::node::lookup_remote(to.node()) else {
        return deliver_from_afar(to, env, crate::awaits::Accept);
    };
    let msg = env.downcast::<M>().unwrap_or_else(|_| unreachable!("sent as an M"));
    crate::dist::send_via(remote, to, crate::dist::tag_of::<M>(), None, &msg);
}

/// Sends a message that need not be serializable; it can only ever reach a
/// process in this OS process (to a remote Pid it is dropped and counted).
#[inline]
pub fn send_local<M: Send + 'static>(to: Pid, msg: M) {
    deliver(to, Envelope::new(msg));
}

/// Sends `msg` to the process registered as `name` in the current
/// process's runtime (Erlang's `Name ! Msg`).
///
/// # Errors
/// [`SendError::NotRegistered`], with the message handed back, if no
/// process has that name.
///
/// # Panics
/// If called outside a process (use [`Runtime::whereis`](crate::Runtime::whereis) there).
pub fn send_named<M: Message>(name: &str, msg: M) -> Result<(), SendError<M>> {
    match crate::registry::whereis(name) {
        Some(pid) => {
            send(pid, msg);
            Ok(())
        }
        None => Err(SendError::NotRegistered(msg)),
    }
}

/// Sends `msg` to the process registered as `name` on node `node`:
/// Erlang's `{Name, Node} ! Msg`. Like [`send`] it never fails: if the node
/// cannot be reached or has no process of that name, the message is
/// dropped (and counted in [`RuntimeStats`](crate::RuntimeStats)). `node` is
/// a node name as the network node knows it (`b@127.0.0.1:9101`); this
/// node's own name sends locally.
///
/// # Panics
/// If called outside a process (use [`Runtime::send_named_at`](crate::Runtime::send_named_at) there).
pub fn send_named_at<M: Message>(name: &str, node: &str, msg: M) {
    let shared = with_worker(|w| w.map(|w| w.shared.clone())).expect("send_named_at called outside a process");
    crate::dist::send_named_at(&shared, name, node, msg);
}

impl Pid {
    /// Sends `msg` to this process: `pid.send(msg)` is [`send(pid, msg)`](send).
    #[inline]
    pub fn send<M: Message>(self, msg: M) {
        send(self, msg);
    }

    /// Sends a non-serializable message: [`send_local`].
    #[inline]
    pub fn send_local<M: Send + 'static>(self, msg: M) {
        send_local(self, msg);
    }
}

/// Routes an envelope to its target's runtime and mailbox.
#[inline]
pub(crate) fn deliver(to: Pid, env: Envelope) {
    deliver_or(to, env, |env| deliver_from_afar(to, env, crate::awaits::Accept));
}

/// Delivers to a process of the calling worker's runtime, or hands the
/// envelope to `far`.
#[inline(always)]
fn deliver_or(to: Pid, env: Envelope, far: impl FnOnce(Envelope)) {
    with_worker(|worker| match worker {
        Some(w) if w.shared.node == to.node() => w.deliver(to, env),
        _ => far(env),
    });
}

/// [`deliver_unless`] to a process of the calling worker's runtime, or
/// hands the envelope to `far`.
#[inline(always)]
pub(crate) fn deliver_unless_or(to: Pid, env: Envelope, refuse: impl crate::awaits::Veto, far: impl FnOnce(Envelope)) {
    with_worker(|worker| match worker {
        Some(w) if w.shared.node == to.node() => w.deliver_unless(to, env, refuse),
        _ => far(env),
    });
}

/// [`deliver`] with a veto run under the target's lock (see `Slot::deliver_unless`).
pub(crate) fn deliver_unless(to: Pid, env: Envelope, refuse: impl crate::awaits::Veto) {
    with_worker(|worker| match worker {
        Some(w) if w.shared.node == to.node() => w.deliver_unless(to, env, refuse),
        _ => deliver_from_afar(to, env, refuse),
    });
}

/// [`deliver`] if `to` is alive, running `setup` on its extras in the same
/// lock section (see `Slot::deliver_with`); whether it was alive.
pub(crate) fn deliver_with(to: Pid, env: Envelope, setup: impl FnOnce(&mut Extras)) -> bool {
    with_worker(|worker| match worker {
        Some(w) if w.shared.node == to.node() => w.deliver_with(to, env, setup),
        _ => deliver_with_from_afar(to, env, setup),
    })
}

#[cold]
fn deliver_with_from_afar(to: Pid, env: Envelope, setup: impl FnOnce(&mut Extras)) -> bool {
    let delivery =
        with_runtime_of(to, |shared| shared.table.get(to.index()).map(|s| s.deliver_with(to.serial(), env, setup)));
    match delivery.flatten() {
        Some(crate::slot::Delivery::Queued(wake)) => {
            match wake {
                crate::slot::Wake::None => {}
                crate::slot::Wake::Schedule => {
                    with_runtime_of(to, |shared| shared.schedule(to.index()));
                }
                crate::slot::Wake::Waker(waker) => waker.wake(),
            }
            true
        }
        _ => false,
    }
}

#[cold]
fn deliver_from_afar(to: Pid, env: Envelope, refuse: impl crate::awaits::Veto) {
    match crate::node::lookup(to.node()) {
        Some(shared) => shared.deliver_unless(to, env, refuse),
        None => {
            count_unroutable();
            drop(env);
        }
    }
}

/// Counts a message dropped because its Pid named no running runtime, or
/// a node that could not be reached.
pub(crate) fn count_unroutable() {
    count_unroutable_n(1);
}

/// Counts `n` messages lost on their way to an unreachable node.
pub(crate) fn count_unroutable_n(n: u64) {
    UNROUTABLE.fetch_add(n, Ordering::Relaxed);
}

/// Messages dropped because their Pid named no running runtime, or a node
/// that could not be reached (process-wide).
pub(crate) fn unroutable() -> u64 {
    UNROUTABLE.load(Ordering::Relaxed)
}

/// Wakes process `pid` (of any local runtime) as a message would.
pub(crate) fn wake(pid: Pid) {
    if let Some(shared) = crate::node::lookup(pid.node()) {
        shared.wake_process(pid.index(), pid.serial());
    }
}

/// Runs `f` with the runtime that owns `pid`'s node, if it is running.
pub(crate) fn with_runtime_of<R>(pid: Pid, f: impl FnOnce(&crate::runtime::Shared) -> R) -> Option<R> {
    with_worker(|w| match w {
        Some(w) if w.shared.node == pid.node() => Some(f(&w.shared)),
        _ => crate::node::lookup(pid.node()).map(|shared| f(&shared)),
    })
}

/// Whether the process is alive (Erlang's `is_process_alive/1`). Works
/// from any thread. The answer may be stale as soon as it is returned.
pub fn is_alive(pid: Pid) -> bool {
    with_runtime_of(pid, |shared| shared.table.get(pid.index()).is_some_and(|s| s.is_alive(pid.serial())))
        .unwrap_or(false)
}

/// How many messages wait in `pid`'s mailbox, or None if it is not alive.
/// Works from any thread. Messages of a type no receive asks for stay in
/// the mailbox (as in Erlang), so a growing length is the usual sign of a
/// mismatched message type: `(Pid, i32)` is not `(Pid, i64)`.
pub fn mailbox_len(pid: Pid) -> Option<usize> {
    with_runtime_of(pid, |shared| shared.table.get(pid.index()).and_then(|s| s.mailbox_len(pid.serial()))).flatten()
}

/// The Pid of the calling process (Erlang's `self()`).
///
/// # Panics
/// If called outside a krarup process.
#[inline]
pub fn self_pid() -> Pid {
    with_current("self_pid", |worker, current, _| Pid::from_parts(worker.shared.node, current.index, current.serial))
}
