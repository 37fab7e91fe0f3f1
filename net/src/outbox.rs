//! A peer's outgoing side, as senders and the I/O thread share it: the buffer senders encode
//! frames into and the I/O thread writes from, the connection's state as senders need it, and
//! the backpressure that keeps the buffer bounded.
//!
//! The protocol, step by step:
//!
//! 1. A sender [`push`](Outbox::push)es a frame under the lock. If the I/O thread is not already
//!    on its way to the buffer (`notified` is false) it sets `notified` and is told to send a
//!    [`Wake::Flush`]; from `Idle` it moves the state to `Connecting` and is told to send a
//!    [`Wake::Connect`]. It then adds the frame's bytes to `pending`.
//! 2. The I/O thread, told or on its own (a writable socket), calls
//!    [`take_into`](Outbox::take_into) until it answers false: each call swaps the whole buffer
//!    out under the lock; the call that finds the buffer empty clears `notified`. As the bytes
//!    go out it calls [`written`](Outbox::written).
//! 3. When the connection is lost, [`go_down`](Outbox::go_down) refuses frames from then on and
//!    discards the buffer; [`go_idle`](Outbox::go_idle) later lets the next frame connect again.
//!
//! # Invariants
//!
//! - **Order.** Frames enter the buffer under its lock, and the buffer is taken whole, in order,
//!   by the one I/O thread, so frames leave in the order they were pushed.
//! - **`notified`** is true exactly while the I/O thread will look at the buffer again without
//!   being told: a `Flush` is on its way, or it is writing and will come back for more. It is
//!   set by the sender that is told to send the `Flush` and cleared by the I/O thread, under the
//!   lock, only when it finds the buffer empty. So a frame is never left behind with nobody to
//!   write it.
//! - **State.** `Down` is set by the I/O thread (under the lock, which also empties the buffer);
//!   while it is `Down` (or `Closed`) a push is refused ([`Sent::Unreachable`]) and appends
//!   nothing. So every frame is either refused, written, or in the buffer `go_down` returns.
//! - **Memory.** `pending` counts bytes pushed and not yet written (or discarded). A push that
//!   takes it past the soft limit answers [`Sent::Busy`] (its process pauses at its next
//!   receive, until the gate opens); past four times the limit the pushing thread itself waits
//!   on the condition variable until the I/O thread has written enough or the connection is
//!   down. The gate is opened when `pending` falls to half the limit.
//! - **The gate is never left closed** once `pending` is at or below half the limit. A sender
//!   closes it, then re-checks `pending` (and opens it again if it has drained); the I/O thread
//!   lowers `pending`, then checks the gate (and opens it if it is closed). A `SeqCst` fence
//!   stands between the two steps on each side, so one side sees the other's first step (the
//!   store-buffering, or Dekker, pattern). The accesses are `SeqCst` as well, which would be
//!   enough by itself; the fences are what loom can check (it treats `SeqCst` accesses as
//!   `AcqRel` but models `SeqCst` fences; see `models/`), and they cost at most one fence per
//!   write system call on the I/O thread and one per push over the limit.
//! - **No lost wake-up at the hard limit.** A waiting sender re-checks under the lock, and the
//!   I/O thread takes the lock before it notifies, so the notification cannot fall between
//!   the sender's check and its wait.
//!
//! The loom models in `models/` drive this file's code against these invariants.

use krarup_runtime::dist::{Gate, Sent};

use crate::sync::global::Arc;
use crate::sync::{fence, AtomicUsize, Condvar, Mutex, Ordering};

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

impl State {
    /// Whether a push is refused.
    fn is_refusing(self) -> bool {
        matches!(self, State::Down | State::Closed)
    }
}

/// What a sender must tell the I/O thread after a push (the peer sends it as a command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The peer was idle and is now `Connecting`: connect to it.
    Connect,
    /// The peer is up and its buffer has frames nobody is on the way to: write them.
    Flush,
}

/// The lock-protected part.
struct Out {
    state: State,
    buf: Vec<u8>,
    /// See the module's invariants.
    notified: bool,
}

/// One peer's outgoing buffer, state and backpressure.
pub(crate) struct Outbox {
    out: Mutex<Out>,
    /// Bytes pushed and not yet written or discarded (in `out.buf` or in the connection's write
    /// buffer). Every access is `SeqCst` (see the gate's invariant).
    pending: AtomicUsize,
    /// The soft limit, in bytes.
    limit: usize,
    /// Closed while `pending` is over the limit; see the module's invariants.
    gate: Arc<Gate>,
    /// Where senders past the hard limit wait; notified under `out`'s lock.
    space: Condvar,
}

impl Outbox {
    /// An idle, empty outbox with a soft limit of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Outbox {
        let out = Out { state: State::Idle, buf: Vec::new(), notified: false };
        Outbox { out: Mutex::new(out), pending: AtomicUsize::new(0), limit, gate: Gate::new(), space: Condvar::new() }
    }

    /// Sender: appends one frame, written by `encode` at the buffer's end, and tells `wake` (at
    /// most once) what the I/O thread must hear. Answers [`Sent::Unreachable`] without calling
    /// either while the peer is `Down` or `Closed`. Waits while `pending` is over four times
    /// the limit (having called `wake` first, so the I/O thread drains).
    ///
    /// # Errors
    ///
    /// `encode`'s error: nothing is appended (the buffer is cut back to where it was), and
    /// `wake` has been called if the state asked for it (a `Connecting` state stays).
    pub(crate) fn push<E>(
        &self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
        mut wake: impl FnMut(Wake),
    ) -> Result<Sent, E> {
        let mut out = self.out.lock();
        let mut command = None;
        match out.state {
            State::Down | State::Closed => return Ok(Sent::Unreachable),
            State::Idle => {
                out.state = State::Connecting;
                command = Some(Wake::Connect);
            }
            State::Connecting => {}
            State::Up => {
                if !out.notified {
                    out.notified = true;
                    command = Some(Wake::Flush);
                }
            }
        }
        let before = out.buf.len();
        if let Err(error) = encode(&mut out.buf) {
            out.buf.truncate(before);
            drop(out);
            if let Some(command) = command {
                wake(command);
            }
            return Err(error);
        }
        let added = out.buf.len() - before;
        // SeqCst: see `pending`.
        let pending = self.pending.fetch_add(added, Ordering::SeqCst) + added;
        if pending > self.limit * 4 && !out.state.is_refusing() {
            if let Some(command) = command.take() {
                wake(command);
            }
            // The last resort: this thread waits until the I/O thread has written enough (or the
            // connection is gone, which empties the buffer). `written` and `go_down` notify
            // under the lock, so the re-check and the wait are one step for them.
            while self.pending.load(Ordering::SeqCst) > self.limit * 4 && !out.state.is_refusing() {
                out = self.space.wait(out);
            }
        }
        drop(out);
        if let Some(command) = command {
            wake(command);
        }
        if pending > self.limit {
            self.gate.close();
            // Close, fence, re-check: pairs with `written`'s decrement, fence, check.
            fence(Ordering::SeqCst);
            if self.pending.load(Ordering::SeqCst) <= self.limit / 2 {
                self.gate.open();
                return Ok(Sent::Queued);
            }
            return Ok(Sent::Busy(self.gate.clone()));
        }
        Ok(Sent::Queued)
    }

    /// I/O thread: appends a frame written by `frame` (a heartbeat) if the peer is `Up`, and
    /// sets `notified`: the caller writes it.
    pub(crate) fn push_tick(&self, frame: impl FnOnce(&mut Vec<u8>)) {
        let mut out = self.out.lock();
        if out.state != State::Up {
            return;
        }
        let before = out.buf.len();
        frame(&mut out.buf);
        self.pending.fetch_add(out.buf.len() - before, Ordering::SeqCst);
        out.notified = true;
    }

    /// I/O thread: swaps the buffered frames into `into` (which must be empty) and answers true;
    /// or, if there are none, clears `notified` and answers false. Call it until it answers
    /// false (see the module's invariants).
    pub(crate) fn take_into(&self, into: &mut Vec<u8>) -> bool {
        debug_assert!(into.is_empty(), "take_into would drop unwritten bytes");
        let mut out = self.out.lock();
        if out.buf.is_empty() {
            out.notified = false;
            false
        } else {
            std::mem::swap(&mut out.buf, into);
            true
        }
    }

    /// I/O thread: `n` more bytes were written (or discarded): lifts backpressure as it drains.
    pub(crate) fn written(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Decrement, fence, check the gate: pairs with `push`'s close, fence, re-check.
        let before = self.pending.fetch_sub(n, Ordering::SeqCst);
        let now = before.saturating_sub(n);
        if now <= self.limit / 2 {
            fence(Ordering::SeqCst);
            if !self.gate.is_open() {
                self.gate.open();
            }
        }
        if before > self.limit * 4 && now <= self.limit * 4 {
            // Taking the lock orders this with a sender about to wait.
            drop(self.out.lock());
            self.space.notify_all();
        }
    }

    /// I/O thread: the handshake is done: frames flow. Sets `notified`: the caller writes
    /// what waited in the buffer.
    pub(crate) fn go_up(&self) {
        let mut out = self.out.lock();
        out.state = State::Up;
        out.notified = true;
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

    /// I/O thread: the connection is gone (or the node shuts down): moves to `state` (`Down` or
    /// `Closed`), which refuses pushes from now on, discards what was queued and releases every
    /// sender held back. `unsent` bytes of the connection's write buffer are discarded too.
    /// Returns the discarded buffer (whole frames).
    pub(crate) fn go_down(&self, unsent: usize, state: State) -> Vec<u8> {
        debug_assert!(state.is_refusing());
        let buf = {
            let mut out = self.out.lock();
            out.state = state;
            out.notified = false;
            std::mem::take(&mut out.buf)
        };
        self.written(buf.len() + unsent);
        self.gate.open();
        self.space.notify_all();
        buf
    }

    /// I/O thread: node_down has run; the next push connects again.
    pub(crate) fn go_idle(&self) {
        let mut out = self.out.lock();
        if out.state == State::Down {
            out.state = State::Idle;
        }
    }

    /// The state, as of now.
    pub(crate) fn state(&self) -> State {
        self.out.lock().state
    }

    /// Bytes waiting, for tests and stats.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// The gate, for the models.
    #[cfg(all(test, loom))]
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }
}
