//! Backpressure for remote sends (Erlang's busy port): a [`Gate`] per
//! connection, closed by the network layer while the connection's outgoing
//! buffer is over its limit and opened when it has drained.
//!
//! A process whose send was queued on a closed gate ([`super::Sent::Busy`])
//! is paused at its next receive: the receive registers the process with
//! the gate and returns `Pending` (`pause_if_throttled`). Opening the gate
//! wakes every registered process. The gate is checked after it is
//! registered with, so an `open` racing with the pause wakes the process
//! instead of leaving it asleep.

use std::fmt;

use crate::pid::Pid;
use crate::sync::global::Arc;
use crate::sync::{AtomicBool, Mutex, Ordering};

/// Open or closed; wakes the processes that wait on it when it opens.
pub struct Gate {
    closed: AtomicBool,
    waiting: Mutex<Vec<Pid>>,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate").field("open", &self.is_open()).finish()
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate { closed: AtomicBool::new(false), waiting: Mutex::new(Vec::new()) }
    }
}

impl Gate {
    /// An open gate.
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// Closes it: processes told [`super::Sent::Busy`] with it will wait.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Opens it and wakes every process waiting on it.
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock());
        for pid in waiting {
            crate::send::wake(pid);
        }
    }

    /// Registers `pid` to be woken when the gate opens; false (nothing
    /// registered) if it is open.
    pub(crate) fn wait(&self, pid: Pid) -> bool {
        let mut waiting = self.waiting.lock();
        if self.is_open() {
            return false;
        }
        if !waiting.contains(&pid) {
            waiting.push(pid);
        }
        true
    }
}
