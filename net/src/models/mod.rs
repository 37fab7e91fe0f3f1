//! loom models of the outbox protocol (`outbox.rs`): a sender pushing frames while the I/O
//! thread takes and writes them, backpressure (the gate and the hard limit), and the connection
//! lost under a sender.
//!
//! Run them with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p krarup-net --release loom_`.
//! They drive the real [`Outbox`] through `crate::sync`, loom's under `--cfg loom`, and the
//! runtime's real `Gate`, whose flag and lock are loom's too (`RUSTFLAGS` builds the runtime
//! with `--cfg loom` as well).
//!
//! What stands in for the rest of the node:
//! - the command channel: [`Channel`], a queue behind a loom lock (crossbeam-channel's
//!   guarantee: a command sent is received, in order, and the send happens before the receive);
//! - the I/O thread's end of a connection: [`Conn`], which runs `io.rs`'s `pump` against a
//!   socket that takes at most `chunk` bytes per write and never blocks, and `on_command`'s
//!   handling of `Flush` and `Connect` (a connect succeeds at once: dial and handshake are not
//!   the outbox's business);
//! - the I/O thread's later turns: once the model's threads have finished, the main thread
//!   handles every command still queued, as the I/O thread would. A frame not written by then
//!   was left behind with nobody to write it.
//!
//! loom treats `SeqCst` loads and stores as `AcqRel` (its README, "Unsupported features"), so
//! it cannot see that the gate's close-then-re-check and decrement-then-check order against
//! each other through `SeqCst` accesses alone: without the two `SeqCst` fences of `outbox.rs`
//! these models report the gate left closed (a false alarm for real `SeqCst`). loom does
//! model `SeqCst` fences, so with them it checks the argument (within its own bounds: at most
//! `LOOM_MAX_PREEMPTIONS` preemptions, and no load buffering).
//!
//! What the models do not cover: more than one sender at a time (two senders closing and
//! re-opening the gate around each other), partial writes that stop at `WouldBlock`
//! (the model's socket always takes `chunk` bytes), heartbeats (`push_tick`), `go_idle` and
//! the connection coming back, and the unsent bytes of a connection's write buffer at
//! `go_down` (always 0 here). Each model was checked against deliberately broken variants of
//! `outbox.rs` (a `notified` cleared outside the emptiness check, a missing re-check or fence,
//! a notification without the lock, a `Flush` sent only after the wait, a `go_down` that does
//! not refuse or does not discard): each such variant fails at least one model.

mod loom_backpressure;
mod loom_down;
mod loom_flush;

use std::collections::VecDeque;

use crate::outbox::{Outbox, State, Wake};
use crate::sync::{Condvar, Mutex};

/// The command channel from senders to the I/O thread.
struct Channel {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    commands: VecDeque<Wake>,
    /// The senders are done: `recv` answers `None` once the queue is empty.
    closed: bool,
}

impl Channel {
    fn new() -> Channel {
        Channel { queue: Mutex::new(Queue::default()), ready: Condvar::new() }
    }

    fn send(&self, wake: Wake) {
        self.queue.lock().commands.push_back(wake);
        self.ready.notify_all();
    }

    /// The senders are done.
    fn close(&self) {
        self.queue.lock().closed = true;
        self.ready.notify_all();
    }

    fn try_recv(&self) -> Option<Wake> {
        self.queue.lock().commands.pop_front()
    }

    /// Waits for a command; `None` once the channel is closed and empty.
    fn recv(&self) -> Option<Wake> {
        let mut queue = self.queue.lock();
        loop {
            if let Some(wake) = queue.commands.pop_front() {
                return Some(wake);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue);
        }
    }
}

/// The I/O thread's end of the peer's connection.
struct Conn {
    /// Whether the connection is up (`io.rs`'s `Link::up`).
    up: bool,
    /// Bytes the socket takes per write.
    chunk: usize,
    /// The connection's write buffer.
    wbuf: Vec<u8>,
    /// Every byte written to the socket, in order.
    wire: Vec<u8>,
}

impl Conn {
    fn new(chunk: usize) -> Conn {
        Conn { up: false, chunk, wbuf: Vec::new(), wire: Vec::new() }
    }

    /// `Reactor::up`: the handshake is done; then the first pump.
    fn up(&mut self, outbox: &Outbox) {
        self.up = true;
        outbox.go_up();
        self.pump(outbox);
    }

    /// `Reactor::pump` with a socket that never blocks: takes and writes until `take_into`
    /// answers false.
    fn pump(&mut self, outbox: &Outbox) {
        while outbox.take_into(&mut self.wbuf) {
            for piece in self.wbuf.chunks(self.chunk) {
                self.wire.extend_from_slice(piece);
                outbox.written(piece.len());
            }
            self.wbuf.clear();
        }
    }

    /// `Reactor::on_command`.
    fn handle(&mut self, outbox: &Outbox, wake: Wake) {
        match wake {
            Wake::Flush if self.up => self.pump(outbox),
            Wake::Flush => {}
            Wake::Connect => {
                if !self.up && !matches!(outbox.start_connecting(), State::Down | State::Closed) {
                    self.up(outbox);
                }
            }
        }
    }

    /// One turn of the I/O thread's loop: the command queued, if there is one.
    fn turn(&mut self, outbox: &Outbox, channel: &Channel) {
        if let Some(wake) = channel.try_recv() {
            self.handle(outbox, wake);
        }
    }

    /// The I/O thread's loop: every command, until the channel is closed.
    fn serve(&mut self, outbox: &Outbox, channel: &Channel) {
        while let Some(wake) = channel.recv() {
            self.handle(outbox, wake);
        }
    }

    /// The I/O thread's turns after the model's threads have finished: every command left.
    fn drain(&mut self, outbox: &Outbox, channel: &Channel) {
        while let Some(wake) = channel.try_recv() {
            self.handle(outbox, wake);
        }
    }

    /// `Reactor::peer_down` for the outbox: the connection is gone. Returns the discarded
    /// buffer.
    fn down(&mut self, outbox: &Outbox) -> Vec<u8> {
        self.up = false;
        outbox.go_down(self.wbuf.len(), State::Down)
    }
}

/// An outbox with a soft limit of `limit` bytes whose connection is up and idle: the first
/// pump after the handshake found nothing, so `notified` is clear.
fn up_and_idle(limit: usize, conn: &mut Conn) -> Outbox {
    let outbox = Outbox::new(limit);
    conn.up(&outbox);
    outbox
}

/// Pushes `frame` (its bytes, copied) through `channel`, as `Peer::send` does.
fn push(outbox: &Outbox, channel: &Channel, frame: &[u8]) -> krarup_runtime::dist::Sent {
    outbox
        .push(
            |buf| {
                buf.extend_from_slice(frame);
                Ok::<(), ()>(())
            },
            |wake| channel.send(wake),
        )
        .unwrap()
}
