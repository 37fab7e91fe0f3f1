//! The remote halves of send, link, unlink, exit, monitor and demonitor,
//! and what arrives for them (see the protocol in `mod.rs`).

use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::monitor::{forget, Down, MonitorRef};
use crate::node::Remote;
use crate::pid::Pid;
use crate::runtime::Shared;
use crate::signal::{send_signal, Via};

use super::{Outgoing, Payload, Sent};

/// Whether `pid` is a process of a remote node (as opposed to a local
/// runtime's, or of no node at all).
#[inline]
pub(crate) fn is_remote(pid: Pid) -> bool {
    crate::node::lookup_remote(pid.node()).is_some()
}

/// Hands `item` to the route of `remote`; `Unreachable` if it has none.
fn route(remote: &Remote, item: Outgoing<'_>) -> Sent {
    match &remote.route {
        Some(route) => route.send(item),
        None => Sent::Unreachable,
    }
}

/// What a sender does with the answer: nothing, pause at its next
/// receive, or (unreachable) count the loss. Returns whether it was sent.
fn settle(sent: Sent) -> bool {
    match sent {
        Sent::Queued => true,
        Sent::Busy(gate) => {
            crate::scheduler::worker::with_worker(|w| {
                if let Some(w) = w {
                    w.throttle(gate);
                }
            });
            true
        }
        Sent::Unreachable => false,
    }
}

/// Sends `msg` to remote process `to` (`guard`: see [`Outgoing::Message`];
/// `tag` gives its type tag, asked only for a remote `to`). Returns false
/// if `to` is not a remote Pid (the caller routes it locally).
pub(crate) fn send_remote<M: Payload>(to: Pid, tag: fn() -> u64, guard: Option<u64>, msg: &M) -> bool {
    let Some(remote) = crate::node::lookup_remote(to.node()) else { return false };
    send_via(remote, to, tag(), guard, msg);
    true
}

/// [`send_remote`] to a Pid of `remote`, already looked up.
pub(crate) fn send_via<M: Payload>(remote: &Remote, to: Pid, tag: u64, guard: Option<u64>, msg: &M) {
    if !settle(route(remote, Outgoing::Message { to, tag, guard, payload: msg })) {
        crate::send::count_unroutable();
    }
}

/// `me` links to remote `other`: recorded on `me`, then asked of `other`'s
/// node. If that cannot be sent, `me` gets the signal the link would carry:
/// `NoConnection` (or `NoProc` for a Pid no node can reach).
pub(crate) fn link_remote(me: Pid, other: Pid, remote: &Remote) {
    crate::link::add_link(me, other);
    if !settle(route(remote, Outgoing::Link { from: me, to: other })) {
        send_signal(me, other, &unreachable(remote), Via::Link);
    }
}

/// `me` unlinks remote `other`.
pub(crate) fn unlink_remote(me: Pid, other: Pid, remote: &Remote) {
    crate::link::with_extras_of(me, |e| e.links.retain(|&p| p != other));
    settle(route(remote, Outgoing::Unlink { from: me, to: other }));
}

/// An exit signal from local `from` to remote `to`.
pub(crate) fn exit_remote(from: Pid, to: Pid, reason: &ExitReason, via: Via) {
    if let Some(remote) = crate::node::lookup_remote(to.node()) {
        settle(route(remote, Outgoing::Exit { from, to, reason, link: via == Via::Link }));
    }
}

/// The local watcher in `reference` monitors its remote target: recorded
/// in the watcher's `watching`, then asked of the target's node; if that
/// cannot be sent, the `Down` comes at once.
pub(crate) fn monitor_remote(reference: MonitorRef, remote: &Remote) {
    crate::link::with_extras_of(reference.watcher(), |e| e.watching.push(reference));
    if !settle(route(remote, Outgoing::Monitor { reference })) {
        down_arrived(reference, unreachable(remote));
    }
}

/// The local watcher in `reference` monitors the process registered as
/// `name` on `remote` (see `named.rs`): as [`monitor_remote`].
pub(crate) fn monitor_named_remote(reference: MonitorRef, name: &str, remote: &Remote) {
    crate::link::with_extras_of(reference.watcher(), |e| e.watching.push(reference));
    if !settle(route(remote, Outgoing::MonitorNamed { reference, name })) {
        down_arrived(reference, unreachable(remote));
    }
}

/// The local watcher in `reference` removes its monitor of a remote
/// target (its `watching` entry is already gone).
pub(crate) fn demonitor_remote(reference: MonitorRef) {
    if let Some(remote) = crate::node::lookup_remote(reference.target().node()) {
        settle(route(remote, Outgoing::Demonitor { reference }));
    }
}

/// A local target died: its remote watcher's `Down`.
pub(crate) fn down_remote(reference: MonitorRef, reason: &ExitReason) {
    if let Some(remote) = crate::node::lookup_remote(reference.watcher().node()) {
        settle(route(remote, Outgoing::Down { reference, reason }));
    }
}

/// Why a node cannot be reached: `NoConnection`, or `NoProc` for a Pid of
/// no reachable node (an earlier incarnation, a runtime with no network).
fn unreachable(remote: &Remote) -> ExitReason {
    if remote.route.is_some() {
        ExitReason::NoConnection
    } else {
        ExitReason::NoProc
    }
}

/// The peer's `from` linked to local `to`.
pub(super) fn link_arrived(from: Pid, to: Pid) {
    if !crate::link::add_link(to, from) {
        exit_remote(to, from, &ExitReason::NoProc, Via::Link);
    }
}

/// The peer's watcher monitors local target.
pub(super) fn monitor_arrived(reference: MonitorRef) {
    let added = crate::link::with_extras_of(reference.target(), |e| e.monitors.push(reference)).is_some();
    if !added {
        down_remote(reference, &ExitReason::NoProc);
    }
}

/// The peer's watcher monitors the process registered as `name` here.
pub(super) fn monitor_named_arrived(shared: &Shared, reference: MonitorRef, name: &str) {
    let added = shared.whereis(name).is_some_and(|target| {
        shared
            .named_monitors
            .add(reference, target, || crate::link::with_extras_of(target, |e| e.monitors.push(reference)).is_some())
    });
    if !added {
        down_remote(reference, &ExitReason::NoProc);
    }
}

/// A `Down` for a local watcher's monitor of a remote target: delivered
/// only if the watcher still holds the monitor (which the delivery then
/// forgets), so none arrives after `demonitor`.
pub(crate) fn down_arrived(reference: MonitorRef, reason: ExitReason) {
    let down = Envelope::new(Down { reference, pid: reference.target(), reason });
    crate::send::deliver_unless(reference.watcher(), down, |extras: &mut crate::slot::Extras| {
        !forget(&mut extras.watching, reference)
    });
}

/// See [`super::LocalNode::node_down_then`]: `scanned` runs once what is
/// to fire is collected, before anything fires.
pub(crate) fn node_down(shared: &Shared, peer: &str, scanned: impl FnOnce()) {
    let entries = crate::node::remotes_named(shared.node, peer);
    if entries.is_empty() {
        return scanned();
    }
    let of_peer = |pid: Pid| entries.contains(&pid.node());
    let mut signals = Vec::new();
    let mut downs = Vec::new();
    shared.table.for_each_extras(|pid, extras| {
        extras.links.retain(|&other| {
            if of_peer(other) {
                // Taken by the signal below (rule 1 of `signal.rs`): keep it.
                signals.push((pid, other));
            }
            true
        });
        extras.watching.retain(|&reference| {
            if of_peer(reference.target()) {
                // Forgotten by the `Down`'s delivery: keep it.
                downs.push(reference);
            }
            true
        });
        extras.monitors.retain(|reference| !of_peer(reference.watcher()));
    });
    shared.named_monitors.forget_watchers(of_peer);
    scanned();
    let pid_of = |(index, serial): (u32, u32)| Pid::from_parts(shared.node, index, serial);
    for (local, other) in signals {
        send_signal(pid_of(local), other, &ExitReason::NoConnection, Via::Link);
    }
    for reference in downs {
        down_arrived(reference, ExitReason::NoConnection);
    }
}

/// See [`crate::send_named_at`]: `msg` to the process registered as `name`
/// on node `node`, sent from a process of runtime `shared`.
pub(crate) fn send_named_at<M: crate::Message>(shared: &Shared, name: &str, node: &str, msg: M) {
    let Some(attached) = shared.dist.get() else {
        // A runtime without a network is no node: nothing is reachable by name.
        return crate::send::count_unroutable();
    };
    if attached.name == node {
        match shared.whereis(name) {
            Some(pid) => crate::send::send(pid, msg),
            None => shared.count_dropped(),
        }
        return;
    }
    let entry = super::any_incarnation(shared, attached, node);
    let Some(remote) = crate::node::lookup_remote(entry) else { return crate::send::count_unroutable() };
    let tag = super::tag_of::<M>();
    if !settle(route(remote, Outgoing::Named { name, tag, payload: &msg })) {
        crate::send::count_unroutable();
    }
}
