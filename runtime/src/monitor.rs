//! Monitors: one-way observation of another process's exit (Erlang's
//! `monitor/2` and `demonitor/2` with `flush`).
//!
//! # Protocol
//!
//! - `monitor(target)` adds `(reference, watcher)` to the target's extras
//!   under the target's slot lock, which fails if the target is not alive;
//!   then the watcher gets `Down { reason: NoProc }` at once.
//! - Exit takes the list under the same lock (it is part of the extras that
//!   `transition_to_exited` removes), and, after the dying process's name is
//!   released, delivers one `Down` per entry. So each monitor yields
//!   exactly one `Down`: either the entry was added before the exit took
//!   the list, or the add failed and `monitor` sent `NoProc` itself.
//! - `demonitor(reference)` removes the entry under the target's lock. If
//!   it is gone, the exit took it and its `Down` is in the watcher's mailbox
//!   or on its way: the watcher removes it from its mailbox, or, if it has
//!   not arrived, records the reference as *suppressed* — under its own slot
//!   lock, which delivering the `Down` also takes, and which then turns it
//!   away. Either way no `Down` for the reference is received after
//!   `demonitor` returns.
//!
//! A `Down` is sent after every message the dead process sent, so it
//! arrives after them (per-sender order).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::scheduler::worker::with_current;
use crate::send::{deliver, deliver_unless, with_runtime_of};
use crate::sync::Ordering;

/// Identifies one monitor: returned by [`monitor`], carried by its [`Down`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef {
    id: u64,
    target: Pid,
    watcher: Pid,
}

impl MonitorRef {
    /// The monitored process.
    pub fn target(&self) -> Pid {
        self.target
    }
}

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}.{}>", self.watcher.node(), self.id)
    }
}

impl fmt::Debug for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The message a monitor delivers when its target exits (Erlang's
/// `{'DOWN', Ref, process, Pid, Reason}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Down {
    /// The monitor that fired.
    pub reference: MonitorRef,
    /// The process that exited.
    pub pid: Pid,
    /// Why it exited; `NoProc` if it was not alive when monitored.
    pub reason: ExitReason,
}

/// Starts monitoring `target`: when it exits, exactly one [`Down`] arrives
/// in the caller's mailbox, at once with reason `NoProc` if it is already
/// dead. Monitors stack: each call is its own.
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{monitor, recv, spawn, Down, ExitReason, Runtime};
///
/// async fn crash() {
///     panic!("boom")
/// }
///
/// let rt = Runtime::new();
/// let reason = rt.block_on(async {
///     let child = spawn(crash());
///     let reference = monitor(child);
///     let down: Down = recv().await;
///     assert_eq!(down.reference, reference);
///     down.reason
/// });
/// assert_eq!(reason, ExitReason::Panic("boom".into()));
/// ```
pub fn monitor(target: Pid) -> MonitorRef {
    let (watcher, id) = with_current("monitor", |worker, current, _| {
        let watcher = Pid::from_parts(worker.shared.node, current.index, current.serial);
        (watcher, worker.shared.refs.fetch_add(1, Ordering::Relaxed) + 1)
    });
    let reference = MonitorRef { id, target, watcher };
    let added = with_runtime_of(target, |shared| {
        shared
            .table
            .get(target.index())
            .and_then(|slot| slot.with_extras(target.serial(), |e| e.monitors.push(reference)))
    })
    .flatten()
    .is_some();
    if !added {
        deliver(watcher, Envelope::new(Down { reference, pid: target, reason: ExitReason::NoProc }));
    }
    reference
}

/// Stops a monitor. Afterwards no [`Down`] for it will be received, even if
/// the target died meanwhile (a `Down` already in the mailbox is removed:
/// Erlang's `demonitor(Ref, [flush])`). Returns true if the monitor was
/// still active, false if it had fired (or belongs to another process).
///
/// # Panics
/// If called outside a krarup process.
pub fn demonitor(reference: MonitorRef) -> bool {
    with_current("demonitor", |worker, current, slot| {
        let me = Pid::from_parts(worker.shared.node, current.index, current.serial);
        if reference.watcher != me {
            return false;
        }
        let target = reference.target;
        let removed = with_runtime_of(target, |shared| {
            shared.table.get(target.index()).and_then(|s| {
                s.with_extras(target.serial(), |e| match e.monitors.iter().position(|r| *r == reference) {
                    Some(at) => {
                        e.monitors.swap_remove(at);
                        true
                    }
                    None => false,
                })
            })
        })
        .flatten()
        .unwrap_or(false);
        if removed {
            return true;
        }
        // It fired: flush its Down, or suppress it if not here yet.
        let is_it = |env: &Envelope| env.peek::<Down>().is_some_and(|d| d.reference == reference);
        // SAFETY: we are polling this process on this worker (BUSY): we own the inner queue.
        let in_inner = unsafe {
            slot.with_inner(|inner| {
                let at = (0..inner.len()).find(|&i| inner.get(i).is_some_and(is_it));
                at.and_then(|i| inner.remove(i))
            })
        };
        if in_inner.is_none() {
            let found = slot.remove_outer_or(is_it, |extras| extras.suppressed.push(reference));
            drop(found);
        }
        false
    })
}

/// Exit path: delivers one `Down` per monitor of the dead process `pid`.
pub(crate) fn fire(pid: Pid, reason: &ExitReason, monitors: Vec<MonitorRef>) {
    for reference in monitors {
        let down = Envelope::new(Down { reference, pid, reason: reason.clone() });
        deliver_unless(reference.watcher, down, |extras| {
            match extras.suppressed.iter().position(|r| *r == reference) {
                Some(at) => {
                    extras.suppressed.swap_remove(at);
                    true
                }
                None => false,
            }
        });
    }
}
