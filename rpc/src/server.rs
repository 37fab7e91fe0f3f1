//! The server half every generated server stub runs: the receive that yields the next call or
//! cast, answers name lookups, and answers a retried call from a bounded cache of replies.
//!
//! Invariant (at-most-once): a call whose request id is in the cache is answered from it and not
//! handed to the implementation again. A call without an id (one its client never retries) is
//! neither looked up nor cached. The cache keeps the last [`PER_CLIENT`] replies of each of
//! the last [`CLIENTS`] clients; a retry of an older call — possible only after that many newer
//! calls from the same client, which a client that is still retrying has not made — would run
//! again.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;

use krarup_runtime::__private::{recv_one_of, OneOf};
use krarup_runtime::dist::tag_of;
use krarup_runtime::{self_pid, Call, Message, Pid, ReplyTo};

use crate::wire::{Cast, Request, RequestId, Resolve, Resolved};

/// Replies kept per client.
pub const PER_CLIENT: usize = 8;
/// Clients remembered.
pub const CLIENTS: usize = 1024;

/// What a server stub is asked.
#[derive(Debug)]
pub enum Incoming<Q, R> {
    /// A call: its id (if it may be retried), its request, where to reply.
    Call(Option<RequestId>, Q, ReplyTo<R>),
    /// A one-way request.
    Cast(Q),
}

/// The receive loop of a server stub (see the module docs).
#[derive(Debug)]
pub struct ServerLoop<Q, R> {
    replies: HashMap<Pid, VecDeque<(u64, R)>, BuildHasherDefault<PidHasher>>,
    clients: VecDeque<Pid>,
    _request: PhantomData<fn() -> Q>,
}

impl<Q: Message, R: Message + Clone> Default for ServerLoop<Q, R> {
    fn default() -> Self {
        ServerLoop { replies: HashMap::default(), clients: VecDeque::new(), _request: PhantomData }
    }
}

impl<Q: Message, R: Message + Clone> ServerLoop<Q, R> {
    /// An empty loop.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next call or cast for the implementation; retried calls already answered and name
    /// lookups are dealt with here.
    pub async fn next(&mut self) -> Incoming<Q, R> {
        loop {
            // `receive!` with these three clauses, at the cost of a receive by type.
            match recv_one_of::<Call<Request<Q>, R>, Cast<Q>, Resolve>().await {
                OneOf::A(call) => {
                    let id = call.request.id(call.reply_to.caller());
                    let Call { request: Request { body, .. }, reply_to } = call;
                    match id.and_then(|id| self.cached(id)) {
                        Some(reply) => reply_to.reply(reply),
                        None => return Incoming::Call(id, body, reply_to),
                    }
                }
                OneOf::B(cast) => return Incoming::Cast(cast.0),
                OneOf::C(ask) => {
                    // A server of another service under this name stays silent: the asker
                    // then reports no server.
                    if ask.service == tag_of::<Q>() {
                        ask.from.send(Resolved { nonce: ask.nonce, server: self_pid() });
                    }
                }
            }
        }
    }

    /// Sends the reply to call `id` and, if the call may be retried (it has an id), keeps it for
    /// a retry.
    #[inline]
    pub fn reply(&mut self, id: Option<RequestId>, reply_to: ReplyTo<R>, value: R) {
        if let Some(id) = id {
            self.remember(id, value.clone());
        }
        reply_to.reply(value);
    }

    fn cached(&self, id: RequestId) -> Option<R> {
        let replies = self.replies.get(&id.client)?;
        replies.iter().find(|(seq, _)| *seq == id.seq).map(|(_, reply)| reply.clone())
    }

    fn remember(&mut self, id: RequestId, value: R) {
        if let Some(replies) = self.replies.get_mut(&id.client) {
            if replies.len() == PER_CLIENT {
                replies.pop_front();
            }
            replies.push_back((id.seq, value));
            return;
        }
        {
            if self.clients.len() == CLIENTS {
                if let Some(oldest) = self.clients.pop_front() {
                    self.replies.remove(&oldest);
                }
            }
            self.clients.push_back(id.client);
        }
        let replies = self.replies.entry(id.client).or_default();
        if replies.len() == PER_CLIENT {
            replies.pop_front();
        }
        replies.push_back((id.seq, value));
    }
}

/// FxHash (rustc's hasher) for the cache's Pid keys.
#[derive(Default)]
struct PidHasher(u64);

impl PidHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for PidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
