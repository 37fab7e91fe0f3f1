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
//! # Invariants
//!
//! - **Order.** Frames enter the buffer under its lock, and the buffer is written in order on the
//!   one connection of the pair, so everything one node sends another arrives in the order sent.
//! - **`notified`** is true exactly while the I/O thread will look at the buffer again without
//!   being told: a `Flush` command is queued, or it is writing and will come back for more. It is
//!   set by the sender that queues the command and cleared by the I/O thread, under the lock,
//!   only when it finds the buffer empty. So a frame is never left behind with nobody to write it.
//! - **State.** `Down` is set by the I/O thread (under the lock, which also empties the buffer)
//!   before it fires the node's links and monitors with `NoConnection`; while it is `Down`
//!   senders are told [`Sent::Unreachable`], so no link or monitor is set up behind that scan.
//!   Then it is `Idle`, and the next send connects again.
//! - **Memory.** `pending` counts bytes queued and not yet written. Past the soft limit a sender
//!   is told [`Sent::Busy`] (its process pauses at its next receive); past four times it, the
//!   sending thread itself waits. The gate is opened when `pending` falls to half the limit.
//!   Closing re-checks `pending` after the close, and the I/O thread checks the gate after each
//!   decrement (both `SeqCst`), so the gate is never left closed over an empty buffer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use krarup_runtime::dist::{Gate, Outgoing, Route, Sent, Wire};
use parking_lot::{Condvar, Mutex};

use crate::io::{Command, Io};
use crate::name::NodeName;
use crate::proto;

/// Where a peer's connection is, as senders need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No connection and no attempt: the next item starts one.
    Idle,
    /// An attempt is under way; items wait in the buffer.
    Connecting,
    /// Connected; items are written as they come.
    Up,
    /// The connection is being torn down (or the node is shutting down): items are refused.
    Down,
    /// This node has shut down for good.
    Closed,
}

/// The senders' side of one remote node.
pub(crate) struct Peer {
    /// Index in the node's peer list; names the peer in commands.
    pub(crate) id: usize,
    pub(crate) name: NodeName,
    wire: Wire,
    out: Mutex<Out>,
    /// Bytes queued and not yet written (in `out.buf` or in the connection's write buffer).
    pending: AtomicUsize,
    limit: usize,
    max_frame: u32,
    gate: Arc<Gate>,
    space: Condvar,
    io: Arc<Io>,
}

pub(crate) struct Out {
    pub(crate) state: State,
    pub(crate) buf: Vec<u8>,
    pub(crate) notified: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("id", &self.id).field("name", &self.name).finish()
    }
}

impl Peer {
    pub(crate) fn new(id: usize, name: NodeName, wire: Wire, limit: usize, max_frame: u32, io: Arc<Io>) -> Peer {
        let out = Out { state: State::Idle, buf: Vec::new(), notified: false };
        Peer {
            id,
            name,
            wire,
            out: Mutex::new(out),
            pending: AtomicUsize::new(0),
            limit,
            max_frame,
            gate: Gate::new(),
            space: Condvar::new(),
            io,
        }
    }

    /// The state, as of now.
    pub(crate) fn state(&self) -> State {
        self.out.lock().state
    }

    /// I/O thread: runs `f` on the outgoing side under its lock.
    pub(crate) fn with_out<R>(&self, f: impl FnOnce(&mut Out) -> R) -> R {
        f(&mut self.out.lock())
    }

    /// I/O thread: asks for an attempt if the peer is idle (for `connect` and node monitors).
    /// Returns the state it found.
    pub(crate) fn start_connecting(&self) -> State {
        let mut out = self.out.lock();
        let found = out.state;
        if found == State::Idle {
            out.state = State::Connecting;
        }
        found
    }

    /// I/O thread: `n` more bytes were written (or discarded): lift backpressure as it drains.
    pub(crate) fn written(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.pending.fetch_sub(n, Ordering::SeqCst);
        let now = before.saturating_sub(n);
        if now <= self.limit / 2 && !self.gate.is_open() {
            self.gate.open();
        }
        if before > self.limit * 4 && now <= self.limit * 4 {
            // Taking the lock orders this with a sender about to wait.
            drop(self.out.lock());
            self.space.notify_all();
        }
    }

    /// I/O thread: the connection is gone (or the node shuts down): refuse items from now on,
    /// discard what was queued, release every sender held back. `unsent` bytes of the
    /// connection's write buffer are discarded too. Returns how many messages were queued and
    /// never handed to a connection (those in `unsent` were, as bytes in flight are).
    pub(crate) fn go_down(&self, unsent: usize, state: State) -> u64 {
        let buf = {
            let mut out = self.out.lock();
            out.state = state;
            out.notified = false;
            std::mem::take(&mut out.buf)
        };
        self.written(buf.len() + unsent);
        self.gate.open();
        self.space.notify_all();
        messages_in(&buf)
    }

    /// I/O thread: node_down has run; the next item connects again.
    pub(crate) fn go_idle(&self) {
        let mut out = self.out.lock();
        if out.state == State::Down {
            out.state = State::Idle;
        }
    }

    /// I/O thread: appends a heartbeat to an idle connection's buffer (the caller writes it).
    pub(crate) fn push_tick(&self) {
        let mut out = self.out.lock();
        if out.state != State::Up {
            return;
        }
        let before = out.buf.len();
        crate::io::tick_frame(&mut out.buf);
        self.pending.fetch_add(out.buf.len() - before, Ordering::SeqCst);
        out.notified = true;
    }

    /// Bytes waiting, for tests and stats.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

impl Route for Peer {
    fn send(&self, item: Outgoing<'_>) -> Sent {
        let mut out = self.out.lock();
        let mut command = None;
        match out.state {
            State::Down | State::Closed => return Sent::Unreachable,
            State::Idle => {
                out.state = State::Connecting;
                command = Some(Command::Connect(self.id));
            }
            State::Connecting => {}
            State::Up => {
                if !out.notified {
                    out.notified = true;
                    command = Some(Command::Flush(self.id));
                }
            }
        }
        let before = out.buf.len();
        if let Err(error) = proto::encode(&item, &self.wire, &mut out.buf, self.max_frame) {
            // Only a message can fail to encode (or be too large): it is dropped, as if the node
            // were unreachable, and counted. Signals always encode.
            drop(out);
            if let Some(command) = command {
                self.io.notify(command);
            }
            tracing::warn!(peer = %self.name, %error, item = ?item, "message not sent");
            return Sent::Unreachable;
        }
        let added = out.buf.len() - before;
        let pending = self.pending.fetch_add(added, Ordering::SeqCst) + added;
        if pending > self.limit * 4 && !matches!(out.state, State::Down | State::Closed) {
            if let Some(command) = command.take() {
                self.io.notify(command);
            }
            // The last resort: this thread waits until the I/O thread has written enough (or the
            // connection is gone, which empties the buffer).
            while self.pending.load(Ordering::SeqCst) > self.limit * 4
                && !matches!(out.state, State::Down | State::Closed)
            {
                self.space.wait(&mut out);
            }
        }
        drop(out);
        if let Some(command) = command {
            self.io.notify(command);
        }
        if pending > self.limit {
            self.gate.close();
            if self.pending.load(Ordering::SeqCst) <= self.limit / 2 {
                self.gate.open();
                return Sent::Queued;
            }
            return Sent::Busy(self.gate.clone());
        }
        Sent::Queued
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
