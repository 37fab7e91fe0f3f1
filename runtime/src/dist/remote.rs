//! A message from another node, in a mailbox: its type tag and its bytes,
//! decoded only when a receive asks for a type with that tag.
//!
//! A [`RemoteMessage`] is an ordinary envelope value. A receive for a
//! serializable type `T` offers each one it meets to [`materialize`]: if
//! the tag is `T`'s, the bytes are decoded (under the view of the
//! connection they came on, so their Pids are this node's) and the envelope
//! then holds the `T`, in place, as if it had been sent locally. Bytes that
//! carry `T`'s tag but do not decode as a `T` are dropped and counted
//! ([`Materialized::Garbage`]); the receive takes them out of the mailbox
//! and goes on. Messages with other tags stay as they are.
//!
//! A message of at most [`SMALL`] bytes without a call guard travels as a
//! [`SmallMessage`] instead: 24 bytes, kept inside its envelope, so that
//! delivering it allocates nothing. Its decoding view comes from the node
//! table entry of the peer it came from (`node::Remote`), which records the
//! local node and its incarnation.

use std::fmt;

use super::wire::View;
use crate::envelope::Envelope;
use crate::pid::Pid;
use crate::runtime::Shared;
use crate::scheduler::worker::{while_holding, with_worker};
use crate::send::Message;
use crate::sync::global::{AtomicU64, Ordering};

/// Bytes that arrived with a type's tag but did not decode as that type.
static UNDECODABLE: AtomicU64 = AtomicU64::new(0);

/// How many remote messages were dropped because their bytes did not
/// decode as the type their tag named (see [`RuntimeStats`](crate::RuntimeStats)).
pub(crate) fn undecodable() -> u64 {
    UNDECODABLE.load(Ordering::Relaxed)
}

/// Bytes before the payload, little-endian: the receiving view (local
/// node, origin, our creation: u32 each, then 4 unused) and the call guard
/// (u64, 0 for none). Kept in the one allocation so that the envelope value
/// is three words (stored inline).
const HEADER: usize = 24;

/// Payloads of up to this many bytes are kept in the envelope itself.
const SMALL: usize = 11;

/// A small message from another node, not yet decoded (see the module docs).
pub(crate) struct SmallMessage {
    tag: u64,
    /// The node-table entry of the peer it came from.
    origin: u32,
    len: u8,
    bytes: [u8; SMALL],
}

// Three words: stored inside its envelope, like any value of that size.
const _: () = assert!(std::mem::size_of::<SmallMessage>() == 24);

impl SmallMessage {
    fn view(&self) -> Option<View> {
        let remote = crate::node::lookup_remote(self.origin)?;
        Some(View { local: remote.local, origin: self.origin, own_creation: remote.local_creation })
    }
}

/// A message from another node, not yet decoded.
pub(crate) struct RemoteMessage {
    tag: u64,
    bytes: Box<[u8]>,
}

impl fmt::Debug for RemoteMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteMessage").field("tag", &self.tag).field("len", &self.payload().len()).finish()
    }
}

impl RemoteMessage {
    pub(crate) fn new(tag: u64, view: View, guard: Option<u64>, payload: &[u8]) -> RemoteMessage {
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(&view.local.to_le_bytes());
        bytes.extend_from_slice(&view.origin.to_le_bytes());
        bytes.extend_from_slice(&view.own_creation.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&guard.unwrap_or(0).to_le_bytes());
        bytes.extend_from_slice(payload);
        RemoteMessage { tag, bytes: bytes.into_boxed_slice() }
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[HEADER..]
    }

    /// The call this is a reply to, if it is one.
    pub(crate) fn guard(&self) -> Option<u64> {
        let guard = u64::from_le_bytes(self.bytes[16..24].try_into().expect("24-byte header"));
        (guard != 0).then_some(guard)
    }

    fn view(&self) -> View {
        let word = |at: usize| u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("24-byte header"));
        View { local: word(0), origin: word(4), own_creation: word(8) }
    }
}

/// Delivers a remote message to local `to` (dropped if `to` is not alive,
/// or, with a `guard`, no longer awaits that call; accepting it ends the
/// wait: see `call.rs`, step 3).
pub(super) fn deliver(shared: &Shared, to: Pid, tag: u64, view: View, guard: Option<u64>, payload: &[u8]) {
    let env = match u8::try_from(payload.len()) {
        Ok(len) if guard.is_none() && payload.len() <= SMALL => {
            let mut bytes = [0; SMALL];
            bytes[..payload.len()].copy_from_slice(payload);
            debug_assert!(SmallMessage { tag, origin: view.origin, len, bytes }.view().is_some_and(|v| v == view));
            Envelope::new(SmallMessage { tag, origin: view.origin, len, bytes })
        }
        _ => Envelope::new(RemoteMessage::new(tag, view, guard, payload)),
    };
    match guard {
        None => shared.deliver_unless(to, env, crate::awaits::Accept),
        Some(tag) => shared.deliver_unless(to, env, crate::awaits::ReplyOf(tag)),
    }
}

/// What [`materialize`] made of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Materialized {
    /// Not a remote message of `T`'s tag: left as it was.
    Untouched,
    /// It was, and now holds the decoded `T`.
    Decoded,
    /// It had `T`'s tag but not a `T`'s bytes: drop it (counted).
    Garbage,
}

/// Decodes `env` in place if it is a remote message carrying `T`'s tag.
#[inline]
pub(crate) fn materialize<T: Message>(env: &mut Envelope) -> Materialized {
    if let Some(small) = env.peek::<SmallMessage>() {
        return if small.tag == super::tag_of::<T>() { decode_small::<T>(env) } else { Materialized::Untouched };
    }
    match env.peek::<RemoteMessage>() {
        Some(remote) if remote.tag == super::tag_of::<T>() => decode_into::<T>(env),
        _ => Materialized::Untouched,
    }
}

/// Runs `decode`, which runs user code (a type's `Deserialize`, a `tracing`
/// subscriber) while a receive may hold the inner queue: inside a process,
/// with `with_owner` refused meanwhile (`worker::while_holding`).
#[inline(always)]
fn user_code<R>(decode: impl FnOnce() -> R) -> R {
    with_worker(|worker| match worker {
        Some(worker) => while_holding(worker, decode),
        None => decode(),
    })
}

#[inline(never)]
fn decode_small<T: Message>(env: &mut Envelope) -> Materialized {
    user_code(|| decode_small_now::<T>(env))
}

fn decode_small_now<T: Message>(env: &mut Envelope) -> Materialized {
    let small = env.take::<SmallMessage>().expect("checked by materialize");
    let decoded = small.view().map(|view| view.decode::<T>(&small.bytes[..usize::from(small.len)]));
    match decoded {
        Some(Ok(value)) => {
            env.put(value);
            Materialized::Decoded
        }
        Some(Err(error)) => garbage::<T>(&error),
        None => garbage::<T>(&"its node is unknown"),
    }
}

/// Counts and reports a message that had `T`'s tag but not a `T`'s bytes.
#[cold]
fn garbage<T>(error: &dyn fmt::Display) -> Materialized {
    UNDECODABLE.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        message_type = std::any::type_name::<T>(),
        %error,
        "krarup: a message from another node had this type's tag but did not decode; dropped"
    );
    Materialized::Garbage
}

#[inline(never)]
fn decode_into<T: Message>(env: &mut Envelope) -> Materialized {
    user_code(|| decode_into_now::<T>(env))
}

fn decode_into_now<T: Message>(env: &mut Envelope) -> Materialized {
    let remote = env.take::<RemoteMessage>().expect("checked by materialize");
    match remote.view().decode::<T>(remote.payload()) {
        Ok(value) => {
            env.put(value);
            Materialized::Decoded
        }
        Err(error) => garbage::<T>(&error),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::user_code;
    use crate::{monitor, recv_timeout, spawn, Down, ExitReason, Runtime};

    /// A message's `Deserialize` runs while the receive that decodes it
    /// holds the inner queue: one that touches the mailbox crashes its
    /// process with a clear message instead of reaching the queue.
    #[test]
    fn user_code_run_by_a_decode_cannot_reach_the_mailbox() {
        let rt = Runtime::new();
        let reason = rt.block_on(async {
            let child = spawn(async {
                user_code(crate::try_recv::<u8>);
            });
            let reference = monitor(child);
            let Some(down) = recv_timeout::<Down>(std::time::Duration::from_secs(10)).await else {
                panic!("the child did not exit within 10 s")
            };
            assert_eq!(down.reference, reference);
            down.reason
        });
        match reason {
            ExitReason::Panic(message) => assert!(message.contains("mailbox"), "unexpected panic: {message}"),
            other => panic!("expected a panic, got {other}"),
        }
    }
}
