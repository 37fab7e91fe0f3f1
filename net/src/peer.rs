//! One remote node as the senders of this node see it: the [`Route`] every send, link, monitor
//! and exit signal to that node goes through.
//!
//! A sender encodes its item as a frame straight into the peer's outgoing buffer (under a short
//! lock) and, only if the I/O thread is not already on its way to that buffer, tells it so
//! through the command channel ([`Io::notify`]). The I/O thread swaps the whole buffer out and
//! writes it: many frames per `write`, one encoding per message, no allocation per message.
//! (The channel carries "peer *n* has frames" rather than the frames themselves: same ordering,
//! a fraction of the cost.)
//!
//! The synchronization between senders and the I/O thread (the buffer, `notified`, the
//! connection's state as senders see it, backpressure) is the [`Outbox`]'s, in `outbox.rs`,
//! with its invariants; this file turns items into frames and [`Wake`]s into commands.
//!
//! # Invariants
//!
//! - **Order.** The outbox keeps frames in the order pushed and the pair has one connection,
//!   so everything one node sends another arrives in the order sent.
//! - **Nothing set up behind the scan.** The I/O thread moves the outbox to `Down` before it
//!   fires the node's links and monitors with `NoConnection`, and back to `Idle` only once that
//!   scan has collected what fires; in between, senders are told [`Sent::Unreachable`], so no
//!   link or monitor is set up that the scan missed. Then the next send connects again.

use krarup_runtime::dist::{Outgoing, Route, Sent, Wire};

use crate::io::{Command, Io};
use crate::name::NodeName;
use crate::outbox::{Outbox, State, Wake};
use crate::proto;
use crate::sync::global::Arc;

/// The senders' side of one remote node.
pub(crate) struct Peer {
    /// Index in the node's peer list; names the peer in commands.
    pub(crate) id: usize,
    pub(crate) name: NodeName,
    wire: Wire,
    max_frame: u32,
    /// The outgoing buffer, shared with the I/O thread.
    pub(crate) outbox: Outbox,
    io: Arc<Io>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("id", &self.id).field("name", &self.name).finish()
    }
}

impl Peer {
    pub(crate) fn new(id: usize, name: NodeName, wire: Wire, limit: usize, max_frame: u32, io: Arc<Io>) -> Peer {
        Peer { id, name, wire, max_frame, outbox: Outbox::new(limit), io }
    }

    /// I/O thread: the connection is gone (or the node shuts down): see [`Outbox::go_down`].
    /// Returns how many messages were queued and never handed to a connection (those in
    /// `unsent` were, as bytes in flight are).
    pub(crate) fn go_down(&self, unsent: usize, state: State) -> u64 {
        messages_in(&self.outbox.go_down(unsent, state))
    }

    /// I/O thread: appends a heartbeat to an idle connection's buffer (the caller writes it).
    pub(crate) fn push_tick(&self) {
        self.outbox.push_tick(crate::io::tick_frame);
    }
}

impl Route for Peer {
    fn send(&self, item: Outgoing<'_>) -> Sent {
        let wake = |wake| {
            self.io.notify(match wake {
                Wake::Connect => Command::Connect(self.id),
                Wake::Flush => Command::Flush(self.id),
            })
        };
        match self.outbox.push(|buf| proto::encode(&item, &self.wire, buf, self.max_frame), wake) {
            Ok(sent) => sent,
            Err(error) => {
                // Only a message can fail to encode (or be too large): it is dropped, as if the
                // node were unreachable, and counted. Signals always encode.
                tracing::warn!(peer = %self.name, %error, item = ?item, "message not sent");
                Sent::Unreachable
            }
        }
    }
}

/// How many message frames (`SEND`, `NAMED`) `buf`, a sequence of whole frames, holds.
fn messages_in(buf: &[u8]) -> u64 {
    let mut count = 0;
    let mut at = 0;
    while let Some(header) = buf.get(at..at + 5) {
        if matches!(header[4], proto::SEND | proto::NAMED) {
            count += 1;
        }
        at += 4 + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;

    #[test]
    fn discarded_messages_are_counted_by_frame_and_ticks_are_not() {
        let mut buf = Vec::new();
        for kind in [proto::SEND, proto::TICK, proto::NAMED, proto::LINK, proto::SEND] {
            frame::push(&mut buf, kind, &[7; 30], 1 << 20).unwrap();
        }
        assert_eq!(messages_in(&buf), 3);
        assert_eq!(messages_in(&[]), 0);
    }
}
