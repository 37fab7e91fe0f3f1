//! The membership table of one scope: for each group, its members on this
//! node and its members on other nodes, as a multiset (a process that
//! joined twice is listed twice).
//!
//! Invariant: only the scope's server process writes the table, and it
//! writes each change — one join, one leave, a peer's whole
//! synchronisation, a peer's departure, and at the server's end the
//! emptying of the whole table — under one lock, so a reader on any thread
//! sees every change whole or not at all. A group with no member is not in
//! the table (so [`Members::which_groups`] lists only groups that have
//! members). Reads copy out what they return and hold the lock only for
//! that.

use std::collections::BTreeMap;

use crate::pid::Pid;
use crate::sync::global::RwLock;

/// One group's members.
#[derive(Debug, Default)]
struct Group {
    /// Processes of this node, once per join.
    local: Vec<Pid>,
    /// Processes of other nodes, once per join, as their scopes reported them.
    remote: Vec<Pid>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }
}

/// The groups of one scope (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Members {
    groups: RwLock<BTreeMap<String, Group>>,
}

/// Which side of a group an edit touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Local,
    Remote,
}

/// The table while the server edits it.
pub(crate) struct Edit<'a> {
    groups: &'a mut BTreeMap<String, Group>,
}

impl Edit<'_> {
    /// Adds one membership of each of `pids` to `group`.
    pub(crate) fn add(&mut self, side: Side, group: &str, pids: &[Pid]) {
        if pids.is_empty() {
            return;
        }
        let entry = self.groups.entry(group.to_owned()).or_default();
        let list = match side {
            Side::Local => &mut entry.local,
            Side::Remote => &mut entry.remote,
        };
        list.extend_from_slice(pids);
    }

    /// Removes every group: the scope has exited (see `scope.rs`).
    pub(crate) fn clear(&mut self) {
        self.groups.clear();
    }

    /// Removes one membership of each of `pids` from `group` (a Pid that is
    /// not a member is skipped); returns the Pids that were removed.
    pub(crate) fn remove(&mut self, side: Side, group: &str, pids: &[Pid]) -> Vec<Pid> {
        let Some(entry) = self.groups.get_mut(group) else { return Vec::new() };
        let list = match side {
            Side::Local => &mut entry.local,
            Side::Remote => &mut entry.remote,
        };
        let removed = remove_each(list, pids);
        if entry.is_empty() {
            self.groups.remove(group);
        }
        removed
    }
}

/// Removes one occurrence of each of `pids` from `list` (a Pid not there
/// is skipped), keeping the others in order; returns the Pids removed. A
/// membership list is a multiset: this is one leave of each.
pub(crate) fn remove_each(list: &mut Vec<Pid>, pids: &[Pid]) -> Vec<Pid> {
    let mut removed = Vec::new();
    for &pid in pids {
        if let Some(at) = list.iter().position(|&p| p == pid) {
            list.remove(at);
            removed.push(pid);
        }
    }
    removed
}

impl Members {
    /// Runs `f` on the table under the write lock: one change, seen whole.
    pub(crate) fn edit<R>(&self, f: impl FnOnce(&mut Edit<'_>) -> R) -> R {
        let mut groups = self.groups.write();
        f(&mut Edit { groups: &mut groups })
    }

    /// Every member of `group`: this node's first, then other nodes'.
    pub(crate) fn members(&self, group: &str) -> Vec<Pid> {
        let groups = self.groups.read();
        groups.get(group).map_or_else(Vec::new, |g| g.local.iter().chain(&g.remote).copied().collect())
    }

    /// The members of `group` on this node.
    pub(crate) fn local_members(&self, group: &str) -> Vec<Pid> {
        self.groups.read().get(group).map_or_else(Vec::new, |g| g.local.clone())
    }

    /// The groups with at least one member, in name order.
    pub(crate) fn which_groups(&self) -> Vec<String> {
        self.groups.read().keys().cloned().collect()
    }

    /// The groups with at least one member on this node, in name order.
    pub(crate) fn which_local_groups(&self) -> Vec<String> {
        self.groups.read().iter().filter(|(_, g)| !g.local.is_empty()).map(|(name, _)| name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(index: u32) -> Pid {
        Pid::from_parts(0, index, 1)
    }

    #[test]
    fn a_group_lists_every_join_and_vanishes_with_its_last_member() {
        let members = Members::default();
        members.edit(|e| {
            e.add(Side::Local, "g", &[pid(1), pid(1)]);
            e.add(Side::Remote, "g", &[pid(2)]);
        });
        assert_eq!(members.members("g"), vec![pid(1), pid(1), pid(2)]);
        assert_eq!(members.local_members("g"), vec![pid(1), pid(1)]);
        let removed = members.edit(|e| e.remove(Side::Local, "g", &[pid(1), pid(3)]));
        assert_eq!(removed, vec![pid(1)]);
        assert_eq!(members.members("g"), vec![pid(1), pid(2)]);
        members.edit(|e| {
            e.remove(Side::Local, "g", &[pid(1)]);
            e.remove(Side::Remote, "g", &[pid(2)]);
        });
        assert!(members.which_groups().is_empty());
    }

    #[test]
    fn local_groups_leave_out_groups_with_only_remote_members() {
        let members = Members::default();
        members.edit(|e| {
            e.add(Side::Local, "a", &[pid(1)]);
            e.add(Side::Remote, "b", &[pid(2)]);
        });
        assert_eq!(members.which_groups(), vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(members.which_local_groups(), vec!["a".to_owned()]);
    }
}
