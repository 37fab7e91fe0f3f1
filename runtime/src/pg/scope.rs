//! The scope server: the one process per runtime that owns the runtime's
//! `pg` membership table, keeps its own node's memberships authoritative,
//! and replicates them to the scope servers of the other nodes
//! (Erlang/OTP's `pg` protocol).
//!
//! # Protocol
//!
//! Every scope server is registered as [`NAME`] on its node. Each knows a
//! set of *peers* — scope servers on other nodes — and monitors each one.
//!
//! 1. **Discovery.** At start the server asks for node events
//!    ([`monitor_nodes`](crate::dist::monitor_nodes)) and sends
//!    `Discover { scope: me }` to [`NAME`] on every node connected then,
//!    and on every node that connects later (`NodeEvent::Up`).
//! 2. A server that receives `Discover` from scope `P` answers
//!    `Sync { scope: me, groups }` with all its *local* memberships. If
//!    `P` was not a peer yet, it becomes one (monitored), and the server
//!    sends `Discover` back, so that `P` syncs to it in turn.
//! 3. `Sync` from `P` replaces everything known of `P`'s members with the
//!    groups it carries (and makes `P` a peer if it was not).
//! 4. **Changes.** A local join or leave — by request, or a member's
//!    `Down` — changes the table, then is sent to every peer as
//!    `Join`/`Leave { scope: me, group, pids }`. A `Join` or `Leave` from a
//!    scope that is not a peer is ignored: the `Sync` that makes it one
//!    carries the same state.
//! 5. **Loss.** When a peer's monitor fires (its node went down, the
//!    connection was lost, or the peer exited), all its members are removed
//!    and it stops being a peer. When the connection comes back, step 1
//!    runs again.
//!
//! Why this converges: messages between two scope servers travel in
//! order; a server sends its `Sync` to `P` before any `Join`/`Leave` it
//! sends `P` after learning of it (steps 2 and 4 run in one process, in
//! order), so the `Sync` a peer receives is followed by exactly the changes
//! made after it. A lost connection fires the monitor before anything from
//! a new connection arrives, so a stale peer is dropped before it is
//! rediscovered.
//!
//! **Group monitors.** A local process may watch one group, or every
//! group ([`Watch`]). The server answers with the members as of now and
//! then sends the watcher a [`GroupEvent`] for every change it makes to
//! the table that touches the watched group (steps 3 to 5 and local joins
//! and leaves), after making it. The answer and the events travel from
//! the server to the watcher, so they arrive in that order: the members
//! in the answer, plus the events, are the group's members at every point.
//! A watcher that exits is forgotten (the server monitors it).
//!
//! When the server ends (it is killed; it does not fail by itself) it
//! empties the table: no member is listed from then on, rather than the
//! members as they were when it died.
//!
//! Every message from another node is checked: a scope Pid of this node
//! (a forgery from a local process) is ignored, and members that are not
//! processes of the sending scope's node are left out.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::table::{remove_each, Members, Side};
use super::{GroupChange, GroupEvent, GroupMonitor, PgError};
use crate::any::AnyMessage;
use crate::call::Call;
use crate::dist::NodeEvent;
use crate::monitor::{demonitor, monitor, Down, MonitorRef};
use crate::pid::Pid;
use crate::sync::global::Arc;

/// The name every scope server is registered under, on every node.
pub(crate) const NAME: &str = "pg";

/// What a process of this runtime asks of the scope (by `call_local`).
#[derive(Debug)]
pub(crate) enum Request {
    /// One more membership in `group` for each of `pids`.
    Join { group: String, pids: Vec<Pid> },
    /// One membership less in `group` for each of `pids`.
    Leave { group: String, pids: Vec<Pid> },
}

/// The scope's answer to a [`Request`].
pub(crate) type Answer = Result<(), PgError>;

/// A local process starting or ending a group monitor (by `call_local`).
#[derive(Debug)]
pub(crate) enum Watch {
    /// `watcher` watches `group`, or every group if None.
    Start { watcher: Pid, group: Option<String> },
    /// The monitor ends, if `by` is its watcher.
    Stop { monitor: GroupMonitor, by: Pid },
}

/// The scope's answer to a [`Watch`].
#[derive(Debug)]
pub(crate) enum Watching {
    /// The new monitor, and every watched group's members as of now.
    Started(GroupMonitor, Vec<(String, Vec<Pid>)>),
    /// Whether the monitor was active (it is not any more).
    Stopped(bool),
}

/// A group monitor's watcher.
struct Watcher {
    pid: Pid,
    /// The group it watches; None for every group.
    group: Option<String>,
    /// The server's monitor of the watcher (to forget it when it exits).
    down: MonitorRef,
}

/// What scope servers on different nodes tell each other (see the module docs).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerMessage {
    /// "I am a scope: tell me your members."
    Discover { scope: Pid },
    /// All of `scope`'s local memberships, replacing what was known.
    Sync { scope: Pid, groups: Vec<(String, Vec<Pid>)> },
    /// `pids` joined `group` (once each) on `scope`'s node.
    Join { scope: Pid, group: String, pids: Vec<Pid> },
    /// `pids` left `group` (once each) on `scope`'s node.
    Leave { scope: Pid, group: String, pids: Vec<Pid> },
}

/// A local process with at least one membership.
struct Local {
    monitor: MonitorRef,
    /// One entry per membership (a group joined twice is here twice).
    groups: Vec<String>,
}

/// A scope server on another node.
struct Peer {
    monitor: MonitorRef,
    /// Its members, as it reported them.
    groups: HashMap<String, Vec<Pid>>,
}

/// The server's state.
struct Server {
    me: Pid,
    members: Arc<Members>,
    local: HashMap<Pid, Local>,
    peers: HashMap<Pid, Peer>,
    /// Group monitors by id.
    watchers: HashMap<u64, Watcher>,
    /// The id of the next group monitor.
    next_watch: u64,
}

/// Empties the table when the server ends (it is killed, or its runtime
/// shuts down), however it ends: nobody keeps the table up to date from
/// then on, so it must not go on listing members that may have died since.
/// Other nodes drop the members of a scope that has exited in the same way
/// (step 5).
struct ClearOnExit(Arc<Members>);

impl Drop for ClearOnExit {
    fn drop(&mut self) {
        self.0.edit(|e| e.clear());
    }
}

/// The scope server's body: serves until it is killed or its runtime shuts
/// down; the table is emptied then ([`ClearOnExit`]).
pub(crate) async fn serve(members: Arc<Members>) {
    let _clear = ClearOnExit(members.clone());
    let me = crate::send::self_pid();
    let mut server =
        Server { me, members, local: HashMap::new(), peers: HashMap::new(), watchers: HashMap::new(), next_watch: 1 };
    for node in crate::dist::monitor_nodes() {
        server.discover(&node);
    }
    loop {
        crate::receive! {
            call: Call<Request, Answer> => server.request(call),
            call: Call<Watch, Watching> => server.watch(call),
            down: Down => server.down(down),
            event: NodeEvent => server.node_event(event),
            message: PeerMessage => server.peer(message),
            // Anything else (nobody should send it) is dropped, not kept forever.
            _other: AnyMessage => {}
        }
    }
}

impl Server {
    fn is_local(&self, pid: Pid) -> bool {
        pid.node() == self.me.node()
    }

    fn discover(&self, node: &str) {
        crate::send::send_named_at(NAME, node, PeerMessage::Discover { scope: self.me });
    }

    fn node_event(&self, event: NodeEvent) {
        match event {
            NodeEvent::Up(node) => self.discover(&node),
            // The peer's monitor reports the loss (step 5).
            NodeEvent::Down(_) => {}
        }
    }

    fn request(&mut self, call: Call<Request, Answer>) {
        let answer = match call.request {
            Request::Join { group, pids } => self.join(group, pids),
            Request::Leave { group, pids } => self.leave(&group, &pids),
        };
        call.reply_to.reply_local(answer);
    }

    fn join(&mut self, group: String, pids: Vec<Pid>) -> Answer {
        if let Some(&pid) = pids.iter().find(|&&pid| !self.is_local(pid)) {
            return Err(PgError::NotLocal(pid));
        }
        for &pid in &pids {
            let entry = self.local.entry(pid).or_insert_with(|| Local { monitor: monitor(pid), groups: Vec::new() });
            entry.groups.push(group.clone());
        }
        self.members.edit(|e| e.add(Side::Local, &group, &pids));
        self.tell_watchers(&group, GroupChange::Joined, &pids);
        self.tell_peers(|scope| PeerMessage::Join { scope, group: group.clone(), pids: pids.clone() });
        Ok(())
    }

    fn leave(&mut self, group: &str, pids: &[Pid]) -> Answer {
        if let Some(&pid) = pids.iter().find(|&&pid| !self.is_local(pid)) {
            return Err(PgError::NotLocal(pid));
        }
        let removed = self.members.edit(|e| e.remove(Side::Local, group, pids));
        if removed.is_empty() {
            return Err(PgError::NotJoined);
        }
        for &pid in &removed {
            let Some(entry) = self.local.get_mut(&pid) else { continue };
            if let Some(at) = entry.groups.iter().position(|g| g == group) {
                entry.groups.swap_remove(at);
            }
            if entry.groups.is_empty() {
                let entry = self.local.remove(&pid).expect("just found");
                demonitor(entry.monitor);
            }
        }
        self.tell_watchers(group, GroupChange::Left, &removed);
        self.tell_peers(|scope| PeerMessage::Leave { scope, group: group.to_owned(), pids: removed.clone() });
        Ok(())
    }

    fn down(&mut self, down: Down) {
        if self.local.get(&down.pid).is_some_and(|l| l.monitor == down.reference) {
            let entry = self.local.remove(&down.pid).expect("just found");
            let mut by_group: BTreeMap<String, usize> = BTreeMap::new();
            for group in entry.groups {
                *by_group.entry(group).or_default() += 1;
            }
            for (group, times) in by_group {
                let pids = vec![down.pid; times];
                self.members.edit(|e| e.remove(Side::Local, &group, &pids));
                self.tell_watchers(&group, GroupChange::Left, &pids);
                self.tell_peers(|scope| PeerMessage::Leave { scope, group: group.clone(), pids: pids.clone() });
            }
        } else if self.peers.get(&down.pid).is_some_and(|p| p.monitor == down.reference) {
            let peer = self.peers.remove(&down.pid).expect("just found");
            let removed: Vec<(String, Vec<Pid>)> = self.members.edit(|e| {
                peer.groups.iter().map(|(group, pids)| (group.clone(), e.remove(Side::Remote, group, pids))).collect()
            });
            for (group, pids) in removed {
                self.tell_watchers(&group, GroupChange::Left, &pids);
            }
        } else {
            // A watcher exited: its monitors end.
            self.watchers.retain(|_, w| w.down != down.reference);
        }
    }

    fn peer(&mut self, message: PeerMessage) {
        match message {
            PeerMessage::Discover { scope } if !self.is_local(scope) => {
                scope.send(PeerMessage::Sync { scope: self.me, groups: self.local_groups() });
                if let Entry::Vacant(entry) = self.peers.entry(scope) {
                    entry.insert(Peer { monitor: monitor(scope), groups: HashMap::new() });
                    scope.send(PeerMessage::Discover { scope: self.me });
                }
            }
            PeerMessage::Sync { scope, groups } if !self.is_local(scope) => {
                let peer =
                    self.peers.entry(scope).or_insert_with(|| Peer { monitor: monitor(scope), groups: HashMap::new() });
                let mut new: HashMap<String, Vec<Pid>> = HashMap::new();
                for (group, pids) in groups {
                    new.entry(group).or_default().extend(pids.into_iter().filter(|p| p.node() == scope.node()));
                }
                let old = std::mem::replace(&mut peer.groups, new);
                let new = &peer.groups;
                self.members.edit(|e| {
                    for (group, pids) in &old {
                        e.remove(Side::Remote, group, pids);
                    }
                    for (group, pids) in new {
                        e.add(Side::Remote, group, pids);
                    }
                });
                if !self.watchers.is_empty() {
                    let changes = changes(&old, new);
                    for (group, left, joined) in changes {
                        self.tell_watchers(&group, GroupChange::Left, &left);
                        self.tell_watchers(&group, GroupChange::Joined, &joined);
                    }
                }
            }
            PeerMessage::Join { scope, group, mut pids } => {
                let Some(peer) = self.peers.get_mut(&scope) else { return };
                pids.retain(|p| p.node() == scope.node());
                self.members.edit(|e| e.add(Side::Remote, &group, &pids));
                peer.groups.entry(group.clone()).or_default().extend(&pids);
                self.tell_watchers(&group, GroupChange::Joined, &pids);
            }
            PeerMessage::Leave { scope, group, pids } => {
                let Some(peer) = self.peers.get_mut(&scope) else { return };
                let Some(known) = peer.groups.get_mut(&group) else { return };
                let gone = remove_each(known, &pids);
                if known.is_empty() {
                    peer.groups.remove(&group);
                }
                self.members.edit(|e| e.remove(Side::Remote, &group, &gone));
                self.tell_watchers(&group, GroupChange::Left, &gone);
            }
            // A Discover or Sync naming a local process as a scope: forged.
            PeerMessage::Discover { .. } | PeerMessage::Sync { .. } => {}
        }
    }

    /// Every local membership, grouped (what a `Sync` carries).
    fn local_groups(&self) -> Vec<(String, Vec<Pid>)> {
        let mut groups: BTreeMap<&str, Vec<Pid>> = BTreeMap::new();
        for (&pid, entry) in &self.local {
            for group in &entry.groups {
                groups.entry(group).or_default().push(pid);
            }
        }
        groups.into_iter().map(|(group, pids)| (group.to_owned(), pids)).collect()
    }

    fn watch(&mut self, call: Call<Watch, Watching>) {
        let answer = match call.request {
            Watch::Start { watcher, group } => {
                let id = self.next_watch;
                self.next_watch += 1;
                let groups = match &group {
                    Some(group) => vec![(group.clone(), self.members.members(group))],
                    None => {
                        let with_members = |group: String| {
                            let pids = self.members.members(&group);
                            (group, pids)
                        };
                        self.members.which_groups().into_iter().map(with_members).collect()
                    }
                };
                self.watchers.insert(id, Watcher { pid: watcher, group, down: monitor(watcher) });
                Watching::Started(GroupMonitor { scope: self.me, id }, groups)
            }
            Watch::Stop { monitor, by } => {
                let ours = monitor.scope == self.me && self.watchers.get(&monitor.id).is_some_and(|w| w.pid == by);
                if ours {
                    let watcher = self.watchers.remove(&monitor.id).expect("just found");
                    demonitor(watcher.down);
                }
                Watching::Stopped(ours)
            }
        };
        call.reply_to.reply_local(answer);
    }

    /// Tells every watcher of `group` that `pids` joined or left it (once
    /// each); nothing if `pids` is empty.
    fn tell_watchers(&self, group: &str, change: GroupChange, pids: &[Pid]) {
        if pids.is_empty() {
            return;
        }
        for (&id, watcher) in &self.watchers {
            if watcher.group.as_deref().is_none_or(|g| g == group) {
                let monitor = GroupMonitor { scope: self.me, id };
                watcher.pid.send(GroupEvent { monitor, group: group.to_owned(), change, pids: pids.to_vec() });
            }
        }
    }

    fn tell_peers(&self, message: impl Fn(Pid) -> PeerMessage) {
        for &scope in self.peers.keys() {
            scope.send(message(self.me));
        }
    }
}

/// For each group, who left and who joined between two views of a peer's
/// members (multisets: a process listed twice counts twice).
fn changes(old: &HashMap<String, Vec<Pid>>, new: &HashMap<String, Vec<Pid>>) -> Vec<(String, Vec<Pid>, Vec<Pid>)> {
    let mut groups: Vec<&String> = old.keys().chain(new.keys()).collect();
    groups.sort();
    groups.dedup();
    let empty = Vec::new();
    groups
        .into_iter()
        .map(|group| {
            let (mut left, mut joined) =
                (old.get(group).unwrap_or(&empty).clone(), new.get(group).unwrap_or(&empty).clone());
            let stayed = remove_each(&mut left, &joined);
            remove_each(&mut joined, &stayed);
            (group.clone(), left, joined)
        })
        .filter(|(_, left, joined)| !left.is_empty() || !joined.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(index: u32) -> Pid {
        Pid::from_parts(1, index, 1)
    }

    #[test]
    fn changes_between_two_views_count_each_membership() {
        let old = HashMap::from([("a".to_owned(), vec![pid(1), pid(1), pid(2)]), ("gone".to_owned(), vec![pid(3)])]);
        let new = HashMap::from([("a".to_owned(), vec![pid(1), pid(4)]), ("fresh".to_owned(), vec![pid(5)])]);
        assert_eq!(
            changes(&old, &new),
            vec![
                ("a".to_owned(), vec![pid(1), pid(2)], vec![pid(4)]),
                ("fresh".to_owned(), vec![], vec![pid(5)]),
                ("gone".to_owned(), vec![pid(3)], vec![]),
            ]
        );
        assert!(changes(&new, &new).is_empty());
    }
}
