//! loom models of the name registry's protocol (`registry.rs`): register
//! versus exit, and two registrations of one name.
//!
//! What the models check:
//! - *Register versus exit* (`loom_registry_register_racing_exit`): thread A
//!   registers a name for a live process while its owner, thread B, ends
//!   the incarnation (as `end_incarnation` does) and, if the flags it read
//!   had `NAMED`, calls `release` (as `after_exit` does). Afterwards the
//!   name does not map to the dead Pid (`whereis` is None, `name_of` is
//!   None), and `register` returned `Ok` exactly when the exit saw `NAMED`
//!   (so its release removed the name), else `NotAlive`.
//! - *One name, one owner* (`loom_registry_same_name_twice`): two threads
//!   register the same name for two live processes; exactly one succeeds,
//!   the other gets `NameTaken` naming the winner, `whereis` gives the
//!   winner, and only the winner's slot has `NAMED`.

use crate::error::RegisterError;
use crate::pid::Pid;
use crate::registry::Registry;
use crate::slot::{Slot, NAMED};
use crate::sync::{thread, Arc};

/// A slot with a live incarnation (owned by the caller) and its Pid.
fn live_process(index: u32) -> (Arc<Slot>, Pid) {
    let slot = Slot::new();
    // SAFETY: a new slot is free: nobody owns it.
    let serial = unsafe { slot.transition_to_live(None, false) };
    (Arc::new(slot), Pid::from_parts(0, index, serial))
}

#[test]
fn loom_registry_register_racing_exit() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let (slot, pid) = live_process(0);
        let registrar = {
            let (registry, slot) = (registry.clone(), slot.clone());
            thread::spawn(move || registry.register("server", pid, Some(&slot)))
        };
        let owner = {
            let (registry, slot) = (registry.clone(), slot.clone());
            thread::spawn(move || {
                // SAFETY: we own the process (BUSY since spawn).
                drop(unsafe { slot.with_inner(|inner| inner.queue.take()) });
                // SAFETY: as above.
                let remains = unsafe { slot.transition_to_exited() };
                let named = remains.flags & NAMED != 0;
                if named {
                    registry.release(pid);
                }
                named
            })
        };
        let registered = registrar.join().unwrap();
        let named = owner.join().unwrap();
        assert_eq!(registry.whereis("server"), None, "a name outlived its process");
        assert_eq!(registry.name_of(pid), None, "a dead process kept its name");
        match registered {
            Ok(()) => assert!(named, "register succeeded but the exit did not see NAMED"),
            Err(RegisterError::NotAlive(p)) => {
                assert_eq!(p, pid);
                assert!(!named, "register failed but the exit saw NAMED");
            }
            Err(e) => panic!("unexpected register error: {e}"),
        }
    });
}

#[test]
fn loom_registry_same_name_twice() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let processes = [live_process(0), live_process(1)];
        let registrars: Vec<_> = processes
            .iter()
            .map(|(slot, pid)| {
                let (registry, slot, pid) = (registry.clone(), slot.clone(), *pid);
                thread::spawn(move || registry.register("server", pid, Some(&slot)))
            })
            .collect();
        let results: Vec<_> = registrars.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one registration succeeds: {results:?}");
        let (winner, loser) = (winners[0], 1 - winners[0]);
        let winner_pid = processes[winner].1;
        match &results[loser] {
            Err(RegisterError::NameTaken { name, owner }) => {
                assert_eq!(name, "server");
                assert_eq!(*owner, winner_pid);
            }
            other => panic!("the loser must get NameTaken, got {other:?}"),
        }
        assert_eq!(registry.whereis("server"), Some(winner_pid));
        assert_ne!(processes[winner].0.load() & NAMED, 0, "the winner's slot has NAMED");
        assert_eq!(processes[loser].0.load() & NAMED, 0, "the loser's slot has no NAMED");
    });
}
