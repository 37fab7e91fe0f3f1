//! Registered names: `register`, `whereis`, `unregister`, released at exit.
//!
//! A name maps to one live process and a process has at most one name, as
//! in Erlang. The registry is a map under a mutex, plus the `NAMED` bit in
//! the process's slot word, which tells the exit path whether it has a name
//! to release (so exits of unnamed processes never touch the registry).
//!
//! # Protocol (register versus exit)
//!
//! - `register` holds the registry lock while it sets `NAMED` — which fails
//!   unless the incarnation is alive, checked under the slot lock — and
//!   inserts the name.
//! - Exit ends the incarnation under the slot lock (reading `NAMED`), then,
//!   if it was set, takes the registry lock and removes the name.
//!
//! If `register` set `NAMED` first, the exit sees it and removes the name
//! (after `register` has inserted it, because it waits for the registry
//! lock); if the exit came first, `register` fails with `NotAlive`. Either
//! way no name outlives its process in the map for long.
//!
//! And for observers not at all: the map is cleaned up *after* the exit,
//! but every lookup (`whereis`, `send_named`, `registered`, and `register`
//! finding the name taken) checks that the entry's process is alive — the
//! slot's serial, under its lock — and treats a dead one's entry as gone.
//! So a name vanishes at the very moment its process is marked dead, the
//! same moment a `monitor` starts answering `NoProc`.

use std::collections::HashMap;

use crate::error::{RegisterError, UnregisterError};
use crate::pid::Pid;
use crate::scheduler::worker::with_current;
use crate::slot::{Slot, NAMED};
use crate::sync::Mutex;

#[derive(Debug, Default)]
struct Names {
    by_name: HashMap<String, Pid>,
    by_pid: HashMap<Pid, String>,
}

/// A runtime's name table.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    names: Mutex<Names>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry::default()
    }

    /// Registers `name` for `pid`, whose slot is `slot` (None: not ours).
    /// `is_alive` tells whether a registered process still lives (an entry of
    /// a dead one is taken over).
    pub(crate) fn register(
        &self,
        name: &str,
        pid: Pid,
        slot: Option<&Slot>,
        is_alive: impl Fn(Pid) -> bool,
    ) -> Result<(), RegisterError> {
        let mut names = self.names.lock();
        if let Some(&owner) = names.by_name.get(name) {
            if is_alive(owner) {
                return Err(RegisterError::NameTaken { name: name.to_owned(), owner });
            }
            names.by_name.remove(name);
            names.by_pid.remove(&owner);
        }
        if let Some(existing) = names.by_pid.get(&pid) {
            return Err(RegisterError::AlreadyNamed { pid, name: existing.clone() });
        }
        if !slot.is_some_and(|s| s.set_flag(pid.serial(), NAMED, true)) {
            return Err(RegisterError::NotAlive(pid));
        }
        names.by_name.insert(name.to_owned(), pid);
        names.by_pid.insert(pid, name.to_owned());
        Ok(())
    }

    /// Removes `name`; clears the owner's `NAMED` bit if it is still alive.
    pub(crate) fn unregister<'a>(
        &self,
        name: &str,
        slot_of: impl Fn(Pid) -> Option<&'a Slot>,
    ) -> Result<Pid, UnregisterError> {
        let mut names = self.names.lock();
        let pid = names.by_name.remove(name).ok_or_else(|| UnregisterError::NotRegistered(name.to_owned()))?;
        names.by_pid.remove(&pid);
        if let Some(slot) = slot_of(pid) {
            slot.set_flag(pid.serial(), NAMED, false);
        }
        Ok(pid)
    }

    /// The live process registered as `name`.
    pub(crate) fn whereis(&self, name: &str, is_alive: impl Fn(Pid) -> bool) -> Option<Pid> {
        self.names.lock().by_name.get(name).copied().filter(|&pid| is_alive(pid))
    }

    /// Every name registered to a live process.
    pub(crate) fn registered(&self, is_alive: impl Fn(Pid) -> bool) -> Vec<String> {
        self.names.lock().by_name.iter().filter(|(_, &pid)| is_alive(pid)).map(|(name, _)| name.clone()).collect()
    }

    /// Exit path: releases `pid`'s name, if it still has one.
    pub(crate) fn release(&self, pid: Pid) {
        let mut names = self.names.lock();
        if let Some(name) = names.by_pid.remove(&pid) {
            if names.by_name.get(&name) == Some(&pid) {
                names.by_name.remove(&name);
            }
        }
    }

    /// The name the table holds for `pid` (its reverse map), dead or alive:
    /// for the loom models, which check that a dead process keeps none.
    #[cfg(all(test, loom))]
    pub(crate) fn name_of(&self, pid: Pid) -> Option<String> {
        self.names.lock().by_pid.get(&pid).cloned()
    }

    /// Forgets every name (shutdown).
    pub(crate) fn clear(&self) {
        let mut names = self.names.lock();
        names.by_name.clear();
        names.by_pid.clear();
    }
}

/// Registers `name` for `pid` in the current process's runtime (Erlang's
/// `register/2`). The name is released when the process exits.
///
/// # Errors
/// [`RegisterError`] if the name is taken, the process already has a name,
/// or it is not alive.
///
/// # Panics
/// If called outside a process (use [`Runtime::register`](crate::Runtime::register) there).
///
/// # Examples
///
/// ```
/// use krarup_runtime::{register, self_pid, whereis, Runtime};
///
/// let rt = Runtime::new();
/// rt.block_on(async {
///     register("me", self_pid()).unwrap();
///     assert_eq!(whereis("me"), Some(self_pid()));
///     assert!(register("me", self_pid()).is_err());
/// });
/// ```
pub fn register(name: &str, pid: Pid) -> Result<(), RegisterError> {
    with_current("register", |worker, _, _| worker.shared.register(name, pid))
}

/// Removes a registered name (Erlang's `unregister/1`); returns the Pid it named.
///
/// # Errors
/// [`UnregisterError::NotRegistered`] if no process has that name.
///
/// # Panics
/// If called outside a process.
pub fn unregister(name: &str) -> Result<Pid, UnregisterError> {
    with_current("unregister", |worker, _, _| worker.shared.unregister(name))
}

/// The process registered as `name` in the current process's runtime.
///
/// # Panics
/// If called outside a process.
pub fn whereis(name: &str) -> Option<Pid> {
    with_current("whereis", |worker, _, _| worker.shared.whereis(name))
}

/// Every name registered in the current process's runtime.
///
/// # Panics
/// If called outside a process.
pub fn registered() -> Vec<String> {
    with_current("registered", |worker, _, _| worker.shared.registry.registered(|pid| worker.shared.is_alive(pid)))
}

impl crate::runtime::Shared {
    /// `register` for this runtime.
    pub(crate) fn register(&self, name: &str, pid: Pid) -> Result<(), RegisterError> {
        let slot = (pid.node() == self.node).then(|| self.table.get(pid.index())).flatten();
        self.registry.register(name, pid, slot, |owner| self.is_alive(owner))
    }

    /// `whereis` for this runtime.
    pub(crate) fn whereis(&self, name: &str) -> Option<Pid> {
        self.registry.whereis(name, |pid| self.is_alive(pid))
    }

    /// Whether `pid`, a process of this runtime, is alive.
    pub(crate) fn is_alive(&self, pid: Pid) -> bool {
        pid.node() == self.node && self.table.get(pid.index()).is_some_and(|s| s.is_alive(pid.serial()))
    }

    /// `unregister` for this runtime.
    pub(crate) fn unregister(&self, name: &str) -> Result<Pid, UnregisterError> {
        self.registry.unregister(name, |pid| self.table.get(pid.index()))
    }
}
