//! A receive of the oldest message of either of two types: what a `receive!`
//! of two guard-less clauses does, at the cost of a receive by type. The RPC
//! server stub waits this way for a call or a cast.
//!
//! Invariants (those of `receive!`): messages are offered oldest first; the
//! first one of either type is taken, and everything before it
//! stays in place and in order; a message from another node carrying one of
//! the types' tags is decoded as that type (bytes that do not decode are
//! dropped and counted). Only type checks run on the mailbox, never user
//! code, so the front of the queue where senders push can be taken under
//! its lock as a receive by type does (`receive::scan_types`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::dist::{materialize, Materialized};
use crate::envelope::Envelope;
use crate::receive::{poll_types, unwrap_as, Scan, DISCARD};
use crate::send::Message;

/// A message of one of the two types of a [`recv_one_of`].
#[derive(Debug)]
pub enum OneOf<A, B> {
    /// Of the first type.
    A(A),
    /// Of the second type.
    B(B),
}

/// What a [`RecvOneOf`] yields, as a variance-neutral, `Send` marker.
type Yields<A, B> = fn() -> OneOf<A, B>;

/// The future of [`recv_one_of`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct RecvOneOf<A, B> {
    scan: Scan,
    _types: PhantomData<Yields<A, B>>,
}

/// Receives the oldest message of type `A` or `B` (an `A` if the two are the
/// same), waiting for one if needed; other messages stay in the mailbox, in
/// order. As `receive! { a: A => .., b: B => .. }`.
///
/// # Panics
/// When polled outside a krarup process, or from inside a `receive!` guard.
pub fn recv_one_of<A: Message, B: Message>() -> RecvOneOf<A, B> {
    RecvOneOf { scan: Scan::default(), _types: PhantomData }
}

impl<A: Message, B: Message> Future for RecvOneOf<A, B> {
    type Output = OneOf<A, B>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let is_wanted = |env: &Envelope| {
            if env.is::<A>() {
                Some(0)
            } else if env.is::<B>() {
                Some(1)
            } else {
                None
            }
        };
        let remote = remote_clause::<A, B>;
        poll_types("recv_one_of", &mut self.scan, is_wanted, remote).map(|(clause, env)| match clause {
            0 => OneOf::A(unwrap_as::<A>(env)),
            _ => OneOf::B(unwrap_as::<B>(env)),
        })
    }
}

/// The clause of a message from another node that decodes as `A` or `B` (it carries that type's
/// tag), [`DISCARD`] for one that carries such a tag but does not decode, None for any other
/// message. Out of line: a message of one of the types never gets here, and inlined, the set-up
/// of the tag lookups was hoisted into every receive (~28 instructions a call, with three types).
#[inline(never)]
fn remote_clause<A: Message, B: Message>(env: &mut Envelope) -> Option<usize> {
    let decoders: [fn(&mut Envelope) -> Materialized; 2] = [materialize::<A>, materialize::<B>];
    for (clause, decode) in (0..).zip(decoders) {
        match decode(env) {
            Materialized::Untouched => {}
            Materialized::Decoded => return Some(clause),
            Materialized::Garbage => return Some(DISCARD),
        }
    }
    None
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{mailbox_len, recv, self_pid, Runtime};

    #[test]
    fn takes_the_oldest_message_of_any_of_the_types_and_leaves_the_rest_in_order() {
        let rt = Runtime::new();
        let taken = rt.block_on(async {
            let me = self_pid();
            me.send(1u64);
            me.send("two".to_string());
            me.send(3u16);
            me.send(4u64);
            me.send(5u32);
            let mut taken = Vec::new();
            for _ in 0..2 {
                taken.push(match recv_one_of::<u16, String>().await {
                    OneOf::A(n) => format!("A{n}"),
                    OneOf::B(s) => format!("B{s}"),
                });
            }
            assert_eq!(mailbox_len(me), Some(3), "the u64s and the u32 stay");
            assert_eq!((recv::<u64>().await, recv::<u64>().await, recv::<u32>().await), (1, 4, 5));
            taken
        });
        assert_eq!(taken, ["Btwo", "A3"]);
    }
}
