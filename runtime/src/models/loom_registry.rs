//! loom models of the name registry's protocol (`registry.rs`): register
//! versus exit, two registrations of one name, and taking over the name of
//! a process that has just died.
//!
//! `is_alive` is the runtime's: the slot's serial and `LIVE`, under its
//! lock. The map itself is read with an `is_alive` that accepts everyone,
//! to check what it holds and not only what observers are shown.
//!
//! What the models check:
//! - *Register versus exit* (`loom_registry_register_racing_exit`): thread A
//!   registers a name for a live process while its owner, thread B, ends
//!   the incarnation (as `end_incarnation` does) and, if the flags it read
//!   had `NAMED`, calls `release` (as `after_exit` does). Afterwards the map
//!   does not hold the name, and `register` returned `Ok` exactly when the
//!   exit saw `NAMED` (so its release removed the name), else `NotAlive`.
//! - *One name, one owner* (`loom_registry_same_name_twice`): two threads
//!   register the same name for two live processes; exactly one succeeds,
//!   the other gets `NameTaken` naming the winner, `whereis` gives the
//!   winner, and only the winner's slot has `NAMED`.
//! - *Take-over versus release* (`loom_registry_takeover_racing_release`): a
//!   named process exits (and releases its name) while another registers
//!   the same name. The newcomer gets the name iff the old owner was dead
//!   when it looked (else `NameTaken`), the old owner's late `release` never
//!   removes the newcomer's entry, and once the old owner has been seen
//!   dead, `whereis` never shows it.

use crate::error::RegisterError;
use crate::pid::Pid;
use crate::registry::Registry;
use crate::slot::{Owner, Slot, NAMED};
use crate::sync::{thread, Arc};

/// A slot with a live incarnation (owned by the caller) and its Pid.
fn live_process(index: u32) -> (Arc<Slot>, Pid) {
    let slot = Slot::new();
    // SAFETY: a new slot is free: nobody owns it.
    let serial = unsafe { slot.transition_to_live(|_| None, false) };
    (Arc::new(slot), Pid::from_parts(0, index, serial))
}

/// `Shared::is_alive` over the given slots (slot `i` has index `i`).
fn is_alive(slots: &[Arc<Slot>]) -> impl Fn(Pid) -> bool + '_ {
    |pid| slots.get(pid.index() as usize).is_some_and(|s| s.is_alive(pid.serial()))
}

/// What the map holds for `name`, dead or alive.
fn entry(registry: &Registry, name: &str) -> Option<Pid> {
    registry.whereis(name, |_| true)
}

/// Ends the incarnation the caller owns and, if it was named, releases the
/// name, as `end_incarnation` and `after_exit` do. Returns whether it was named.
///
/// # Safety
/// The caller owns the process (`BUSY`).
unsafe fn exit(registry: &Registry, slot: &Slot, pid: Pid) -> bool {
    // SAFETY: the caller owns the process.
    drop(unsafe { Owner::new(slot) }.with_inner(|inner| inner.take()));
    // SAFETY: as above.
    let remains = unsafe { slot.transition_to_exited() };
    let named = remains.flags & NAMED != 0;
    if named {
        registry.release(pid);
    }
    named
}

#[test]
fn loom_registry_register_racing_exit() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let (slot, pid) = live_process(0);
        let registrar = {
            let (registry, slot) = (registry.clone(), slot.clone());
            thread::spawn(move || {
                let slots = [slot];
                registry.register("server", pid, Some(&slots[0]), is_alive(&slots))
            })
        };
        let owner = {
            let (registry, slot) = (registry.clone(), slot.clone());
            // SAFETY: we own the process (BUSY since spawn).
            thread::spawn(move || unsafe { exit(&registry, &slot, pid) })
        };
        let registered = registrar.join().unwrap();
        let named = owner.join().unwrap();
        assert_eq!(entry(&registry, "server"), None, "a name outlived its process");
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
        let (slot0, pid0) = live_process(0);
        let (slot1, pid1) = live_process(1);
        let slots = Arc::new([slot0, slot1]);
        let pids = [pid0, pid1];
        let registrars: Vec<_> = (0..2)
            .map(|i| {
                let (registry, slots) = (registry.clone(), slots.clone());
                thread::spawn(move || registry.register("server", pids[i], Some(&slots[i]), is_alive(&slots[..])))
            })
            .collect();
        let results: Vec<_> = registrars.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one registration succeeds: {results:?}");
        let (winner, loser) = (winners[0], 1 - winners[0]);
        match &results[loser] {
            Err(RegisterError::NameTaken { name, owner }) => {
                assert_eq!(name, "server");
                assert_eq!(*owner, pids[winner]);
            }
            other => panic!("the loser must get NameTaken, got {other:?}"),
        }
        assert_eq!(registry.whereis("server", is_alive(&slots[..])), Some(pids[winner]));
        assert_ne!(slots[winner].load() & NAMED, 0, "the winner's slot has NAMED");
        assert_eq!(slots[loser].load() & NAMED, 0, "the loser's slot has no NAMED");
    });
}

#[test]
fn loom_registry_takeover_racing_release() {
    loom::model(|| {
        let registry = Arc::new(Registry::new());
        let (old_slot, old) = live_process(0);
        let (new_slot, new) = live_process(1);
        let slots = Arc::new([old_slot, new_slot]);
        registry.register("server", old, Some(&slots[0]), is_alive(&slots[..])).expect("a free name");
        let newcomer = {
            let (registry, slots) = (registry.clone(), slots.clone());
            thread::spawn(move || {
                let result = registry.register("server", new, Some(&slots[1]), is_alive(&slots[..]));
                // Once the old owner is seen dead, `whereis` never shows it.
                let seen_dead = !slots[0].is_alive(old.serial());
                let shown = registry.whereis("server", is_alive(&slots[..]));
                assert!(!(seen_dead && shown == Some(old)), "whereis showed a dead process");
                result
            })
        };
        let owner = {
            let (registry, slots) = (registry.clone(), slots.clone());
            // SAFETY: we own the old process (BUSY since spawn).
            thread::spawn(move || unsafe { exit(&registry, &slots[0], old) })
        };
        let result = newcomer.join().unwrap();
        assert!(owner.join().unwrap(), "the old owner was named");
        assert_eq!(registry.name_of(old), None, "a dead process kept its name");
        match result {
            Ok(()) => {
                assert_eq!(entry(&registry, "server"), Some(new), "the old owner's release removed the new entry");
                assert_eq!(registry.name_of(new).as_deref(), Some("server"));
                assert_eq!(registry.whereis("server", is_alive(&slots[..])), Some(new));
                assert_ne!(slots[1].load() & NAMED, 0, "the newcomer's slot has NAMED");
            }
            Err(RegisterError::NameTaken { owner, .. }) => {
                assert_eq!(owner, old);
                assert_eq!(entry(&registry, "server"), None, "the old owner's name outlived it");
                assert_eq!(registry.name_of(new), None, "a refused newcomer has a name");
                assert_eq!(slots[1].load() & NAMED, 0, "a refused newcomer has no NAMED");
            }
            Err(e) => panic!("unexpected register error: {e}"),
        }
    });
}
