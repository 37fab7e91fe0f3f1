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
//!
//! The watcher also records the monitors it holds (its extras' `watching`,
//! before the target's entry is added; the `Down`'s delivery, under the
//! watcher's lock, removes the record). When a watcher exits, it removes
//! the monitors it still holds from their targets, as Erlang does: a
//! long-lived server called by processes that die mid-call does not
//! collect their monitors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::{with_extras_of, Processes, Table};
use crate::pid::Pid;
use crate::scheduler::worker::{with_current, with_owner};
use crate::slot::Owner;

/// Identifies one monitor: returned by [`monitor`], carried by its [`Down`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef {
    id: u64,
    target: Pid,
    watcher: Pid,
}

impl MonitorRef {
    /// A reference (the runtime numbers them; loom models build their own).
    pub(crate) const fn new(id: u64, target: Pid, watcher: Pid) -> MonitorRef {
        MonitorRef { id, target, watcher }
    }

    /// Its number (unique per node; for a call's monitor, the call's tag).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The monitored process.
    pub fn target(&self) -> Pid {
        self.target
    }

    /// The process that holds the monitor.
    pub fn watcher(&self) -> Pid {
        self.watcher
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
    /// The process that exited. For a monitor set with [`monitor_name`] on
    /// a name nobody had registered, a Pid that names no process.
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
    let reference = new_reference("monitor", target);
    match crate::node::lookup_remote(target.node()) {
        Some(remote) => crate::dist::monitor_remote(reference, remote),
        None => {
            monitor_with(&Table, reference);
        }
    }
    reference
}

/// The monitor protocol of the module docs: sets up `reference` (watcher
/// and target in it); whether the target was alive (if not, the watcher
/// got `Down` with `NoProc`).
pub(crate) fn monitor_with(processes: &impl Processes, reference: MonitorRef) -> bool {
    processes.with_extras(reference.watcher, |e| e.watching.push(reference));
    let added = processes.with_extras(reference.target, |e| e.monitors.push(reference)).is_some();
    if !added {
        processes.with_extras(reference.watcher, |e| forget(&mut e.watching, reference));
        let down = Envelope::new(Down { reference, pid: reference.target, reason: ExitReason::NoProc });
        processes.deliver_unless(reference.watcher, down, crate::awaits::Accept);
    }
    added
}

/// A new reference for a monitor of `target` by the calling process.
pub(crate) fn new_reference(what: &str, target: Pid) -> MonitorRef {
    with_current(what, |worker, current, _| {
        let watcher = Pid::from_parts(worker.shared.node, current.index, current.serial);
        MonitorRef::new(worker.fresh_ref(), target, watcher)
    })
}

/// Monitors the process registered as `name` in the caller's runtime
/// (Erlang's `monitor(process, Name)`): the monitor is on the process the
/// name refers to now. If no process has the name, the `Down` (reason
/// `NoProc`) comes at once, with a `pid` that names no process.
///
/// # Panics
/// If called outside a krarup process.
pub fn monitor_name(name: &str) -> MonitorRef {
    let target = with_current("monitor_name", |worker, _, _| {
        worker.shared.whereis(name).unwrap_or(Pid::from_parts(worker.shared.node, u32::MAX, 0))
    });
    monitor(target)
}

/// Monitors the process registered as `name` on node `node` (Erlang's
/// `monitor(process, {Name, Node})`): that node looks the name up when the
/// request arrives, in order with what this process sent it before, and
/// the monitor is on the process the name refers to then. So a message
/// sent to the name with [`send_named_at`](crate::send_named_at) right
/// after this call reaches the process the monitor watches (unless the
/// name moves in between). `node` is a node name as the network node knows
/// it; this node's own name is [`monitor_name`].
///
/// Exactly one [`Down`] comes, as for [`monitor`]: when that process exits
/// (with its reason), at once with `NoProc` if no process has the name,
/// and with `NoConnection` if the node cannot be reached or the connection
/// is lost — as for a runtime that is no network node. Its `pid` is a Pid
/// of `node` that names no process (Erlang reports `{Name, Node}` there):
/// the monitor identifies itself by its reference. [`demonitor`] ends it.
///
/// # Panics
/// If called outside a krarup process.
pub fn monitor_name_at(name: &str, node: &str) -> MonitorRef {
    let shared = with_current("monitor_name_at", |worker, _, _| worker.shared.clone());
    let Some(attached) = shared.dist.get() else {
        // No network: no other node can be reached.
        let reference = new_reference("monitor_name_at", Pid::from_parts(shared.node, crate::dist::NAMELESS, 0));
        let down = Down { reference, pid: reference.target, reason: ExitReason::NoConnection };
        crate::send::deliver_unless(reference.watcher, Envelope::new(down), crate::awaits::Accept);
        return reference;
    };
    if attached.name == node {
        return monitor_name(name);
    }
    let entry = crate::dist::any_incarnation(&shared, attached, node);
    let reference = new_reference("monitor_name_at", Pid::from_parts(entry, crate::dist::NAMELESS, 0));
    let remote = crate::node::lookup_remote(entry).expect("an interned node has an entry");
    crate::dist::monitor_named_remote(reference, name, remote);
    reference
}

/// Spawns `future` and monitors it (Erlang's `spawn_monitor/1`). The monitor
/// exists before the child first runs, so its `Down` always comes.
///
/// # Panics
/// If called outside a krarup process.
pub fn spawn_monitor<F>(future: F) -> (Pid, MonitorRef)
where
    F: std::future::Future + Send + 'static,
    F::Output: crate::exit::IntoExitReason,
{
    let placeholder = new_reference("spawn_monitor", Pid::from_parts(0, u32::MAX, 0));
    let mut reference = placeholder;
    let pid = crate::scheduler::worker::with_worker(|w| {
        let w = w.expect("a process runs on a worker");
        w.spawn_with(future, |child| reference = watch(child, placeholder))
    });
    (pid, reference)
}

/// During a spawn's setup (the child is live but not yet queued): adds the
/// monitor `placeholder`, retargeted at `child`, and returns it.
pub(crate) fn watch(child: Pid, placeholder: MonitorRef) -> MonitorRef {
    let reference = MonitorRef { target: child, ..placeholder };
    with_extras_of(reference.watcher, |e| e.watching.push(reference));
    with_extras_of(child, |extras| extras.monitors.push(reference));
    reference
}

/// Removes `reference` from `list` if it is there; whether it was.
pub(crate) fn forget(list: &mut Vec<MonitorRef>, reference: MonitorRef) -> bool {
    match list.iter().position(|r| *r == reference) {
        Some(at) => {
            list.swap_remove(at);
            true
        }
        None => false,
    }
}

/// The processes monitoring `pid` (Erlang's `process_info(Pid,
/// monitored_by)`), one entry per monitor; None if `pid` is not alive.
/// Works from any thread.
///
/// A process in the middle of a [`call`](crate::call) to `pid` is listed
/// (the call monitors its server, as Erlang's `gen_server:call` does);
/// the monitor of a call that ended is not, though `pid` may keep it a
/// while: it can no longer fire (see `call.rs`).
pub fn monitored_by(pid: Pid) -> Option<Vec<Pid>> {
    let (mut watchers, calls) =
        with_extras_of(pid, |e| (e.monitors.iter().map(|r| r.watcher).collect::<Vec<_>>(), e.calls.to_vec()))?;
    // Outside the server's lock (each caller's is taken).
    watchers.extend(calls.iter().filter(|r| crate::call::awaits(r.watcher, r.id)).map(|r| r.watcher));
    Some(watchers)
}

/// Exit path of a watcher: removes the monitors it still held from their
/// targets (no `Down` will be wanted any more). One visit per target, so a
/// watcher holding many monitors on one target leaves in `n log n`, not
/// `n²`.
pub(crate) fn unwatch(processes: &impl Processes, mut watching: Vec<MonitorRef>) {
    watching.sort_unstable_by_key(|r| (r.target, r.id));
    for group in watching.chunk_by(|a, b| a.target == b.target) {
        if processes.is_remote(group[0].target) {
            group.iter().for_each(|&reference| processes.demonitor_remote(reference));
            continue;
        }
        // Same target and watcher throughout: sorted by id is sorted.
        processes.with_extras(group[0].target, |e| match group {
            [one] => drop(forget(&mut e.monitors, *one)),
            _ => e.monitors.retain(|r| group.binary_search(r).is_err()),
        });
    }
}

/// Stops a monitor. Afterwards no [`Down`] for it will be received, even if
/// the target died meanwhile (a `Down` already in the mailbox is removed:
/// Erlang's `demonitor(Ref, [flush])`). Returns true if the monitor was
/// still active, false if it had fired (or belongs to another process).
///
/// # Panics
/// If called outside a krarup process.
pub fn demonitor(reference: MonitorRef) -> bool {
    with_owner("demonitor", |worker, current, own| {
        let me = Pid::from_parts(worker.shared.node, current.index, current.serial);
        if reference.watcher != me {
            return false;
        }
        if crate::dist::is_remote(reference.target) {
            return demonitor_remote(own, reference);
        }
        demonitor_with(&Table, own, reference) == Demonitored::Removed
    })
}

/// [`demonitor`] of a monitor on a remote process: forgetting it from
/// `watching` (under the watcher's lock) is what turns its `Down` away (see
/// `dist::ops::down_arrived`); if it was no longer there, the `Down` has
/// been delivered, and is taken out of the watcher's mailbox (`own`).
fn demonitor_remote(own: &mut Owner<'_>, reference: MonitorRef) -> bool {
    let held = with_extras_of(reference.watcher, |e| forget(&mut e.watching, reference)).unwrap_or(false);
    if held {
        crate::dist::demonitor_remote(reference);
        return true;
    }
    let is_it = |env: &Envelope| env.peek::<Down>().is_some_and(|d| d.reference == reference);
    crate::receive::remove_first_or(own, is_it, |_| {});
    false
}

/// How [`demonitor_with`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Demonitored {
    /// Removed from the target's monitors: no `Down` will be sent.
    Removed,
    /// It had fired: its `Down` was taken out of the watcher's mailbox.
    Flushed,
    /// It had fired and its `Down` had not arrived: it will be turned away.
    Suppressed,
}

/// The demonitor protocol of the module docs, by the watcher, whose mailbox
/// `own` holds.
pub(crate) fn demonitor_with(processes: &impl Processes, own: &mut Owner<'_>, reference: MonitorRef) -> Demonitored {
    processes.with_extras(reference.watcher, |e| forget(&mut e.watching, reference));
    if processes.with_extras(reference.target, |e| forget(&mut e.monitors, reference)).unwrap_or(false) {
        return Demonitored::Removed;
    }
    // It fired: flush its Down, or suppress it if not here yet.
    let is_it = |env: &Envelope| env.peek::<Down>().is_some_and(|d| d.reference == reference);
    match crate::receive::remove_first_or(own, is_it, |extras| extras.suppressed.push(reference)) {
        Some(_) => Demonitored::Flushed,
        None => Demonitored::Suppressed,
    }
}

/// Exit path: delivers one `Down` per monitor of the dead process `pid`;
/// each delivery forgets the watcher's record of the monitor and is turned
/// away if the watcher suppressed it. Returns the monitors turned away.
pub(crate) fn fire(
    processes: &impl Processes,
    pid: Pid,
    reason: &ExitReason,
    monitors: Vec<MonitorRef>,
) -> Vec<MonitorRef> {
    let mut refused = Vec::new();
    for reference in monitors {
        let down = Envelope::new(Down { reference, pid, reason: reason.clone() });
        let veto = |extras: &mut crate::slot::Extras| {
            forget(&mut extras.watching, reference);
            forget(&mut extras.suppressed, reference)
        };
        if processes.deliver_unless(reference.watcher, down, veto) {
            refused.push(reference);
        }
    }
    refused
}
