//! What the stubs send each other: a call's request carries a sequence number if it may be
//! retried; a cast is the bare request.
//!
//! A call's request id is the calling process — the reply address that the runtime's `Call`
//! carries anyway — and the request's sequence number, which is all the request itself carries:
//! a non-zero number is one word, and no number (`None`) takes no more room, so a call's message
//! is the runtime's `Call` plus one word.
//!
//! Invariant: a request id is unique per client process (its sequence number comes from one
//! counter for the OS process, whatever handle makes the call), and a retried call reuses its
//! id — that is what lets the server answer a retry from its cache instead of running the
//! procedure twice. A call that is never retried carries no id: it is sent once, and a message
//! is delivered at most once, so it runs at most once without the cache.

use std::num::NonZeroU64;

use krarup_runtime::Pid;
use serde::{Deserialize, Serialize};

/// Identifies one call of one client: the calling process and a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The calling process.
    pub client: Pid,
    /// The call's sequence number (the same for every attempt of one call).
    pub seq: u64,
}

/// A call's request, inside the runtime's `Call` (which carries where to reply: the caller).
#[derive(Debug, Serialize, Deserialize)]
pub struct Request<Q> {
    /// Which call of its caller this is, for a call that may be retried (a retry repeats it);
    /// `None` for one that is never retried, which the server neither looks up nor keeps the
    /// reply of.
    pub seq: Option<NonZeroU64>,
    /// The procedure and its arguments.
    pub body: Q,
}

impl<Q> Request<Q> {
    /// The request's id, if it has one, for a request from `caller`.
    pub fn id(&self, caller: Pid) -> Option<RequestId> {
        self.seq.map(|seq| RequestId { client: caller, seq: seq.get() })
    }
}

/// A one-way request: no reply, no id.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cast<Q>(pub Q);
