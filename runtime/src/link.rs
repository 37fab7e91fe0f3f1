//! Links: two processes that share their fate (Erlang's `link/1`,
//! `unlink/1`, `spawn_link/1`).
//!
//! A link is an entry in both processes' extras, at most one per pair.
//! When a process exits, every process linked to it gets an exit signal
//! with its reason (see `signal.rs` for what that does); the signal removes
//! the link on the other side as it is taken.
//!
//! # Protocol (link versus exit)
//!
//! `link(other)` first records `other` in the caller's links, then records
//! the caller in `other`'s links under `other`'s lock — which fails if
//! `other` is not alive. Exit takes a process's links under its lock (they
//! are part of the extras `transition_to_exited` removes). So either the
//! second step happened before `other`'s exit took its links — and the
//! exit signals the caller — or it failed, and the caller signals itself
//! `NoProc` through the link it recorded in the first step. Exactly one
//! signal either way, and a link to a dead process behaves as in Erlang: a
//! caller that traps exits gets `Exit { from: other, reason: NoProc }`, one
//! that does not exits with `NoProc`.
//!
//! `spawn_link` records both sides before the child is first queued, so the
//! child cannot exit unobserved.

use std::future::Future;

use crate::envelope::Envelope;
use crate::exit::{ExitReason, IntoExitReason};
use crate::pid::Pid;
use crate::scheduler::worker::{with_current, with_worker};
use crate::send::with_runtime_of;
use crate::signal::{send_signal, Via};

/// Records `other` among the links of process `pid`; false if `pid` is not
/// alive (or not of a running runtime).
pub(crate) fn add_link(pid: Pid, other: Pid) -> bool {
    with_extras_of(pid, |extras| {
        if !extras.links.contains(&other) {
            extras.links.push(other);
        }
    })
    .is_some()
}

/// What the link and monitor protocols need from the runtime: the extras
/// of a live process, a way to send one an exit signal, and a delivery with
/// a veto. The runtime implements it over its process table ([`Table`]);
/// the loom models over a few slots, so they run these protocols' own code.
pub(crate) trait Processes {
    /// Runs `f` on the extras of `pid` under its lock; None if not alive.
    fn with_extras<R>(&self, pid: Pid, f: impl FnOnce(&mut crate::slot::Extras) -> R) -> Option<R>;
    /// Sends `to` an exit signal from `from` (see `signal.rs`).
    fn signal(&self, to: Pid, from: Pid, reason: &ExitReason, via: Via);
    /// Delivers `env` to `to` unless `refuse`, run under `to`'s lock, turns
    /// it away; whether it was turned away.
    fn deliver_unless(&self, to: Pid, env: Envelope, refuse: impl crate::awaits::Veto) -> bool;
    /// Delivers `env` to `to` if it is alive, running `setup` on its extras
    /// in the same lock section (see `Slot::deliver_with`); whether it was
    /// alive. `to` is a process of this OS process.
    fn deliver_with(&self, to: Pid, env: Envelope, setup: impl FnOnce(&mut crate::slot::Extras)) -> bool;
    /// Without taking a lock: keeps the monitors of `calls` whose callers
    /// are alive and may still await them (see `awaits.rs`).
    fn retain_awaited(&self, calls: &mut crate::call_monitors::CallMonitors);
    /// Whether `pid` is a process of another node (whose extras this side
    /// cannot reach: see `dist`).
    fn is_remote(&self, pid: Pid) -> bool {
        let _ = pid;
        false
    }
    /// Tells a remote target's node that a local watcher's monitor is gone.
    fn demonitor_remote(&self, reference: crate::monitor::MonitorRef) {
        let _ = reference;
    }
}

/// The runtime's processes, wherever their runtime is.
pub(crate) struct Table;

/// A veto that notes whether it refused.
struct Noting<'a, V>(V, &'a std::cell::Cell<bool>);

impl<V: crate::awaits::Veto> crate::awaits::Veto for Noting<'_, V> {
    fn refuses(self, awaits: &crate::awaits::Awaits, extras: Option<&mut crate::slot::Extras>) -> bool {
        let refused = self.0.refuses(awaits, extras);
        self.1.set(refused);
        refused
    }
}

impl Processes for Table {
    fn with_extras<R>(&self, pid: Pid, f: impl FnOnce(&mut crate::slot::Extras) -> R) -> Option<R> {
        with_extras_of(pid, f)
    }

    fn signal(&self, to: Pid, from: Pid, reason: &ExitReason, via: Via) {
        if crate::dist::is_remote(to) {
            crate::dist::exit_remote(from, to, reason, via);
        } else {
            send_signal(to, from, reason, via);
        }
    }

    fn deliver_unless(&self, to: Pid, env: Envelope, refuse: impl crate::awaits::Veto) -> bool {
        if crate::dist::is_remote(to) {
            // Only a `Down` goes to another node this way (`monitor::fire`);
            // the veto runs on the watcher's node when it arrives.
            if let Ok(down) = env.downcast::<crate::monitor::Down>() {
                if crate::dist::is_on_name(&down.reference) {
                    // Off its target now: its record goes too (`dist/named.rs`).
                    with_runtime_of(down.pid, |shared| shared.named_monitors.remove(&down.reference));
                }
                crate::dist::down_remote(down.reference, &down.reason);
            }
            return false;
        }
        let refused = std::cell::Cell::new(false);
        crate::send::deliver_unless(to, env, Noting(refuse, &refused));
        refused.get()
    }

    fn retain_awaited(&self, calls: &mut crate::call_monitors::CallMonitors) {
        // The callers of local calls are processes of the server's runtime.
        let Some(&first) = calls.any() else { return };
        let kept = with_runtime_of(first.watcher(), |shared| {
            calls.retain(|c| {
                shared.table.get(c.watcher().index()).is_some_and(|s| s.may_await(c.watcher().serial(), c.id()))
            })
        });
        if kept.is_none() {
            // The runtime is gone, and its callers with it.
            calls.retain(|_| false);
        }
    }

    fn deliver_with(&self, to: Pid, env: Envelope, setup: impl FnOnce(&mut crate::slot::Extras)) -> bool {
        crate::send::deliver_with(to, env, setup)
    }

    fn is_remote(&self, pid: Pid) -> bool {
        crate::dist::is_remote(pid)
    }

    fn demonitor_remote(&self, reference: crate::monitor::MonitorRef) {
        crate::dist::demonitor_remote(reference);
    }
}

/// The link protocol of the module docs: `me` links to `other`.
pub(crate) fn link_between(processes: &impl Processes, me: Pid, other: Pid) {
    if other == me {
        return;
    }
    let add = |pid: Pid, to: Pid| {
        processes.with_extras(pid, |extras| {
            if !extras.links.contains(&to) {
                extras.links.push(to);
            }
        })
    };
    add(me, other);
    if add(other, me).is_none() {
        processes.signal(me, other, &ExitReason::NoProc, Via::Link);
    }
}

/// Removes the link between `me` and `other` on both sides.
pub(crate) fn unlink_between(processes: &impl Processes, me: Pid, other: Pid) {
    processes.with_extras(me, |extras| extras.links.retain(|&p| p != other));
    processes.with_extras(other, |extras| extras.links.retain(|&p| p != me));
}

/// Exit path: `dead` signals every process it was linked to.
pub(crate) fn fire_links(processes: &impl Processes, dead: Pid, reason: &ExitReason, links: Vec<Pid>) {
    for linked in links {
        processes.signal(linked, dead, reason, Via::Link);
    }
}

/// Exit path: everything `dead`'s exit tells the others, in this order:
/// its monitors leave their targets, its links are signalled, its monitors
/// fire (those of the calls made to it too: see `call.rs`). So whoever is woken by the exit signal or the `Down` finds no
/// monitor of the dead process left anywhere, and a process holding both a
/// link and a monitor on it has the exit signal first. Returns the monitors
/// whose `Down` was turned away (see [`crate::monitor::fire`]).
pub(crate) fn announce_exit(
    processes: &impl Processes,
    dead: Pid,
    reason: &ExitReason,
    extras: &mut crate::slot::Extras,
) -> Vec<crate::monitor::MonitorRef> {
    crate::monitor::unwatch(processes, std::mem::take(&mut extras.watching));
    fire_links(processes, dead, reason, std::mem::take(&mut extras.links));
    let refused = crate::monitor::fire(processes, dead, reason, std::mem::take(&mut extras.monitors));
    crate::call::fire_calls(processes, dead, reason, extras.calls.take());
    refused
}

/// Runs `f` on the extras of process `pid`; None if it is not alive.
pub(crate) fn with_extras_of<R>(pid: Pid, f: impl FnOnce(&mut crate::slot::Extras) -> R) -> Option<R> {
    with_runtime_of(pid, |shared| shared.table.get(pid.index()).and_then(|slot| slot.with_extras(pid.serial(), f)))
        .flatten()
}

/// The calling process's Pid.
fn me(what: &str) -> Pid {
    with_current(what, |worker, current, _| Pid::from_parts(worker.shared.node, current.index, current.serial))
}

/// Links the calling process to `pid` (Erlang's `link/1`); linking again
/// to the same process, or to oneself, does nothing.
///
/// If `pid` is not alive, the caller gets an exit signal with reason
/// `NoProc` from it: a caller that traps exits receives
/// `Exit { from: pid, reason: NoProc }`, one that does not exits (at its
/// next `.await`).
///
/// # Panics
/// If called outside a krarup process.
pub fn link(pid: Pid) {
    let me = me("link");
    match crate::node::lookup_remote(pid.node()) {
        Some(remote) => crate::dist::link_remote(me, pid, remote),
        None => link_between(&Table, me, pid),
    }
}

/// Removes the link between the calling process and `pid`, if any
/// (Erlang's `unlink/1`). Afterwards the link has no effect: an exit
/// signal it would have carried is ignored — but an `Exit` message that
/// already arrived (for a process that traps exits) stays in the mailbox.
///
/// # Panics
/// If called outside a krarup process.
pub fn unlink(pid: Pid) {
    let me = me("unlink");
    match crate::node::lookup_remote(pid.node()) {
        Some(remote) => crate::dist::unlink_remote(me, pid, remote),
        None => unlink_between(&Table, me, pid),
    }
}

/// The processes linked to `pid` (Erlang's `process_info(Pid, links)`);
/// None if `pid` is not alive. Works from any thread.
pub fn links(pid: Pid) -> Option<Vec<Pid>> {
    with_extras_of(pid, |e| e.links.clone())
}

/// Spawns `future` as a process linked to the caller (Erlang's
/// `spawn_link/1`). The link exists before the child first runs, so its
/// exit — whenever it comes — reaches the caller.
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{recv, spawn_link, trap_exit, Exit, ExitReason, Runtime};
///
/// async fn crash() -> ExitReason {
///     ExitReason::Error("bad input".into())
/// }
///
/// let rt = Runtime::new();
/// let exit = rt.block_on(async {
///     trap_exit(true);
///     let child = spawn_link(crash());
///     let exit: Exit = recv().await;
///     assert_eq!(exit.from, child);
///     exit.reason
/// });
/// assert_eq!(exit, ExitReason::Error("bad input".into()));
/// ```
pub fn spawn_link<F>(future: F) -> Pid
where
    F: Future + Send + 'static,
    F::Output: IntoExitReason,
{
    let parent = me("spawn_link");
    with_worker(|w| {
        let w = w.expect("a process runs on a worker");
        w.spawn_with(future, |child| {
            add_link(child, parent);
            add_link(parent, child);
        })
    })
}
