//! loom models of the monitor protocol (`monitor.rs`): monitor versus exit,
//! and demonitor versus exit.
//!
//! They run over the [`World`] of `loom_link.rs` (real slots; a process is
//! run as the worker runs it; an exit is `transition_to_exited`, then
//! `link::announce_exit`: `monitor::unwatch`, the links, `monitor::fire`). The protocol is
//! `monitor.rs`'s own code — `monitor_with`, `demonitor_with`, `fire`,
//! `unwatch` — over the world's `Processes`:
//! - `monitor`: record the reference in the watcher's `watching`, then push
//!   it into the target's `monitors` under the target's lock (`with_extras`,
//!   which fails if the target is not alive); if that failed, forget it
//!   from `watching` and deliver `Down { reason: NoProc }` to the watcher
//!   itself;
//! - `demonitor`: forget the reference from the watcher's `watching`, then
//!   remove it from the target's `monitors` under the target's lock; if it
//!   is not there, `receive::remove_first_or` on the watcher's own slot:
//!   remove its `Down` from the inner queue, else from the outer one, else
//!   record the reference in `suppressed`, all under the watcher's lock (the
//!   real `remove_first_or` and `remove_outer_or`).
//!
//! # What the models check
//!
//! - *Monitor versus exit* (`loom_monitor_racing_exit`): the watcher W
//!   monitors T while T's owner ends T (reason `boom`). W gets exactly one
//!   `Down` for the reference (received, or left in its mailbox): with
//!   reason `boom` if T's exit took the reference from its monitors, with
//!   `NoProc` if the push found T dead; and the push succeeded exactly when
//!   T's exit took it. No `Down` was turned away, and W's `suppressed` and
//!   `watching` lists end empty (the `Down`'s delivery, or the failed push,
//!   forgot the reference). Run with one monitor and with two (stacked
//!   monitors: each has its own `Down`, with its own reason).
//! - *Demonitor versus exit* (`loom_monitor_demonitor_racing_exit`): W has
//!   a monitor on T; W first moves its mailbox into its inner queue (a
//!   receive that matched nothing: `drain`), then demonitors, while T's
//!   owner ends T. Every receive of W comes after `demonitor` returned (W
//!   is owned by its thread until then), so: W never receives a `Down` for
//!   the reference and none is left in its mailbox at the end; exactly one
//!   of (a) demonitor removed the reference from T's monitors (it returned
//!   true, and T's exit took no monitor, so no `Down` was sent), (b) it
//!   flushed the `Down` from W's mailbox, (c) it recorded the reference as
//!   suppressed and the `Down` was turned away on delivery (`Refused`); and
//!   W's `suppressed` and `watching` lists end empty — a reference recorded
//!   as suppressed is always consumed, because T's exit always delivers its
//!   `Down` after taking it.
//!
//! Both also check that W ends alive and idle (nobody kept it owned).

use super::loom_link::{reference, spawn_with, Msg, World};
use crate::exit::ExitReason;
use crate::monitor::{Demonitored, Down, MonitorRef};
use crate::pid::Pid;
use crate::slot::Owner;
use crate::sync::Arc;

/// `monitor(target)` by process `watcher`, which the caller owns: the real
/// protocol (`monitor::monitor_with`). Returns the reference and whether it
/// was added to the target's monitors.
fn monitor(world: &World, watcher: usize, target: Pid, id: u64) -> (MonitorRef, bool) {
    let reference = reference(id, target, world.pid(watcher));
    (reference, crate::monitor::monitor_with(world, reference))
}

/// `demonitor(reference)` by process `watcher`, which the caller owns: the
/// real protocol (`monitor::demonitor_with`).
fn demonitor(world: &World, watcher: usize, reference: MonitorRef) -> Demonitored {
    // SAFETY: the caller owns the watcher (BUSY) and holds no other `Owner` of it.
    crate::monitor::demonitor_with(world, &mut unsafe { Owner::new(world.slot(watcher)) }, reference)
}

/// The `Down`s among `msgs`.
fn downs(msgs: &[Msg]) -> Vec<Down> {
    msgs.iter()
        .map(|m| match m {
            Msg::Down(down) => down.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn boom() -> ExitReason {
    ExitReason::Error("boom".into())
}

#[test]
fn loom_monitor_racing_exit() {
    for monitors in [1u64, 2] {
        loom::model(move || {
            let world = Arc::new(World::new(&[false, false]));
            let t = world.pid(1);
            let watcher = spawn_with(&world, move |w| {
                let mut made = Vec::new();
                w.run_with(0, |w| {
                    made = (1..=monitors).map(|id| monitor(w, 0, t, id)).collect();
                    None
                });
                made
            });
            let target = spawn_with(&world, |w| w.end(1, boom()));
            let made = watcher.join().unwrap();
            target.join().unwrap();

            let t_ended = world.state(1).ended.expect("T ended");
            assert!(t_ended.refused.is_empty(), "a Down was turned away: {:?}", t_ended.refused);
            let mut msgs = world.state(0).received;
            msgs.extend(world.take_mailbox(0));
            let downs = downs(&msgs);
            assert_eq!(downs.len(), made.len(), "one Down per monitor: {downs:?}");
            for (reference, added) in made {
                let taken = t_ended.monitors.contains(&reference);
                assert_eq!(added, taken, "{reference:?}: added to T's monitors iff T's exit took it");
                let reason = if added { boom() } else { ExitReason::NoProc };
                let down = Down { reference, pid: t, reason };
                assert_eq!(downs.iter().filter(|d| **d == down).count(), 1, "exactly one {down:?}: {downs:?}");
            }
            let left = world.extras(0);
            assert!(left.suppressed.is_empty() && left.watching.is_empty(), "W's extras: {left:?}");
        });
    }
}

#[test]
fn loom_monitor_demonitor_racing_exit() {
    loom::model(|| {
        let world = Arc::new(World::new(&[false, false]));
        let t = world.pid(1);
        let (reference, added) = monitor(&world, 0, t, 1);
        assert!(added, "T is alive at setup");
        let watcher = spawn_with(&world, move |w| {
            let mut outcome = None;
            w.run_with(0, |w| {
                // A receive that matches nothing: moves what arrived inside.
                // SAFETY: we own W (BUSY).
                unsafe { Owner::new(w.slot(0)) }.drain();
                outcome = Some(demonitor(w, 0, reference));
                None
            });
            outcome.expect("W's first poll ran")
        });
        let target = spawn_with(&world, |w| w.end(1, boom()));
        let outcome = watcher.join().unwrap();
        target.join().unwrap();

        let t_ended = world.state(1).ended.expect("T ended");
        let mut msgs = world.state(0).received;
        msgs.extend(world.take_mailbox(0));
        let downs = downs(&msgs);
        assert!(downs.is_empty(), "{outcome:?}: a Down was received after demonitor returned: {downs:?}");
        let fired = t_ended.monitors.contains(&reference);
        let refused = t_ended.refused.contains(&reference);
        match outcome {
            Demonitored::Removed => assert!(!fired, "demonitor removed the monitor, yet T's exit took it"),
            Demonitored::Flushed => assert!(fired && !refused, "flushed a Down that was not delivered"),
            Demonitored::Suppressed => assert!(fired && refused, "suppressed a Down that was not turned away"),
        }
        let left = world.extras(0);
        assert!(left.suppressed.is_empty() && left.watching.is_empty(), "{outcome:?}: W's extras: {left:?}");
    });
}
