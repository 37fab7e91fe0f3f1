//! The server half every generated server stub runs: the receive that yields the next call or
//! cast, and answers by itself repeats of a retried call (from a bounded cache of replies).
//!
//! Invariant (at-most-once): a call whose request id is in the cache is answered from it and not
//! handed to the implementation again. A call without an id (one its client never retries) is
//! neither looked up nor cached. The cache keeps the last [`PER_CLIENT`] replies of each of
//! the last [`CLIENTS`] clients; a retry of an older call — possible only after that many newer
//! calls from the same client, which a client that is still retrying has not made — would run
//! again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use krarup_runtime::__private::{recv_one_of, OneOf, RecvOneOf};
use krarup_runtime::{Call, Message, Pid, ReplyTo};

use crate::wire::{Cast, Request, RequestId};

/// Replies kept per client.
pub const PER_CLIENT: usize = 8;
/// Clients remembered.
pub const CLIENTS: usize = 1024;

/// What a server stub is asked.
#[derive(Debug)]
pub enum Incoming<Q, R> {
    /// A call: its sequence number (if it may be retried: with the caller, its request id), its
    /// request, where to reply.
    Call(Option<NonZeroU64>, Q, ReplyTo<R>),
    /// A one-way request.
    Cast(Q),
    /// Nothing for the implementation: the loop answered a repeated call itself.
    Answered,
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

    /// The next call or cast for the implementation, or [`Incoming::Answered`] once the loop
    /// has dealt with a message itself (a repeated call answered from the cache).
    ///
    /// # Panics
    /// When polled outside a krarup process.
    #[inline]
    pub fn receive(&mut self) -> impl Future<Output = Incoming<Q, R>> + '_ {
        Receive { server: self, receive: recv_one_of() }
    }

    /// What [`receive`](Self::receive) makes of a message.
    #[inline]
    fn take(&mut self, message: OneOf<Call<Request<Q>, R>, Cast<Q>>) -> Incoming<Q, R> {
        match message {
            // Never retried: nothing to look up.
            OneOf::A(Call { request: Request { seq: None, body }, reply_to }) => Incoming::Call(None, body, reply_to),
            OneOf::A(Call { request: Request { seq: Some(seq), body }, reply_to }) => {
                self.take_retried(seq, body, reply_to)
            }
            OneOf::B(cast) => Incoming::Cast(cast.0),
        }
    }

    /// [`take`](Self::take) for a call that may be retried: a repeat is answered from the cache.
    /// Out of line: most calls are never retried.
    #[inline(never)]
    fn take_retried(&mut self, seq: NonZeroU64, body: Q, reply_to: ReplyTo<R>) -> Incoming<Q, R> {
        match self.cached(RequestId { client: reply_to.caller(), seq: seq.get() }) {
            Some(reply) => {
                reply_to.reply(reply);
                Incoming::Answered
            }
            None => Incoming::Call(Some(seq), body, reply_to),
        }
    }

    /// Sends the reply to a call and, if the call may be retried (it has a sequence number `seq`),
    /// keeps it for a retry.
    #[inline]
    pub fn reply(&mut self, seq: Option<NonZeroU64>, reply_to: ReplyTo<R>, value: R) {
        if let Some(seq) = seq {
            self.remember(RequestId { client: reply_to.caller(), seq: seq.get() }, value.clone());
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

/// The future of [`ServerLoop::receive`]: one receive of a call or a cast (what a `receive!` of
/// these two clauses does, at the cost of a receive by type). Written by hand so
/// that the server stub's loop holds the receive's state itself, not an `async fn`'s around it,
/// and the call it yields is moved fewer times.
#[derive(Debug)]
struct Receive<'a, Q, R> {
    server: &'a mut ServerLoop<Q, R>,
    receive: RecvOneOf<Call<Request<Q>, R>, Cast<Q>>,
}

impl<Q: Message, R: Message + Clone> Future for Receive<'_, Q, R> {
    type Output = Incoming<Q, R>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Incoming<Q, R>> {
        let this = self.get_mut();
        let message = ready!(Pin::new(&mut this.receive).poll(cx));
        Poll::Ready(this.server.take(message))
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
