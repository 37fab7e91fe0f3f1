//! Which nodes are connected, and the processes told when that changes
//! (Erlang's `net_kernel:monitor_nodes(true)`): the hook that lets a
//! service on every node (the `pg` scope) find its peers as they come.
//!
//! # Protocol
//!
//! The network layer reports a connection that has come up with
//! [`LocalNode::node_up`](super::LocalNode::node_up) — once the connection
//! takes messages — and a lost one with
//! [`LocalNode::node_down`](super::LocalNode::node_down). Both take the
//! watch's lock, change the set of connected nodes, and, still under the
//! lock, send every watching process a [`NodeEvent`]. [`monitor_nodes`]
//! adds the caller to the watchers and copies the connected set under the
//! same lock. So a watcher learns of every node exactly once: either in the
//! list `monitor_nodes` returns, or by a later `Up`; and each `Down`
//! follows the `Up` (or the listing) of the same connection.
//!
//! A down report for a node that was never reported up (a connection that
//! could not be made) tells nobody. Watchers that have exited are dropped
//! at the next event.

use serde::{Deserialize, Serialize};

use crate::pid::Pid;
use crate::sync::global::Mutex;

/// What a process that [monitors nodes](monitor_nodes) receives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeEvent {
    /// A connection to this node (`name@host:port`) is up: Erlang's `{nodeup, Node}`.
    Up(String),
    /// The connection to this node is lost: Erlang's `{nodedown, Node}`.
    Down(String),
}

/// One runtime's connected nodes and the processes watching them.
#[derive(Debug, Default)]
pub(crate) struct NodeWatch {
    inner: Mutex<Watch>,
}

#[derive(Debug, Default)]
struct Watch {
    up: Vec<&'static str>,
    watchers: Vec<Pid>,
}

impl NodeWatch {
    /// `pid` watches from now on; returns the nodes connected now.
    pub(crate) fn watch(&self, pid: Pid) -> Vec<String> {
        let mut watch = self.inner.lock();
        if !watch.watchers.contains(&pid) {
            watch.watchers.push(pid);
        }
        watch.up.iter().map(|&node| node.to_owned()).collect()
    }

    /// `pid` no longer watches.
    pub(crate) fn unwatch(&self, pid: Pid) {
        self.inner.lock().watchers.retain(|&p| p != pid);
    }

    /// A connection to `node` is up.
    pub(crate) fn up(&self, node: &'static str, is_alive: impl Fn(Pid) -> bool) {
        let mut watch = self.inner.lock();
        if watch.up.contains(&node) {
            return;
        }
        watch.up.push(node);
        watch.watchers.retain(|&pid| is_alive(pid));
        for &pid in &watch.watchers {
            crate::send::send(pid, NodeEvent::Up(node.to_owned()));
        }
    }

    /// The connection to `node` is lost (or was never made).
    pub(crate) fn down(&self, node: &str, is_alive: impl Fn(Pid) -> bool) {
        let mut watch = self.inner.lock();
        let Some(at) = watch.up.iter().position(|&n| n == node) else { return };
        watch.up.swap_remove(at);
        watch.watchers.retain(|&pid| is_alive(pid));
        for &pid in &watch.watchers {
            crate::send::send(pid, NodeEvent::Down(node.to_owned()));
        }
    }
}

/// The calling process receives a [`NodeEvent`] whenever a connection to
/// another node comes up or is lost, from now on; returns the nodes
/// connected now (Erlang's `net_kernel:monitor_nodes(true)` followed by
/// `nodes()`, without the window between them). Calling it again changes
/// nothing; a runtime without a network node never sends an event.
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{dist, Runtime};
///
/// let rt = Runtime::new();
/// let connected = rt.block_on(async { dist::monitor_nodes() });
/// assert!(connected.is_empty()); // not a network node
/// ```
pub fn monitor_nodes() -> Vec<String> {
    crate::scheduler::worker::with_current("monitor_nodes", |worker, current, _| {
        worker.shared.nodes.watch(Pid::from_parts(worker.shared.node, current.index, current.serial))
    })
}

/// The calling process stops receiving [`NodeEvent`]s (events already in
/// its mailbox stay there).
///
/// # Panics
/// If called outside a krarup process.
pub fn demonitor_nodes() {
    crate::scheduler::worker::with_current("demonitor_nodes", |worker, current, _| {
        worker.shared.nodes.unwatch(Pid::from_parts(worker.shared.node, current.index, current.serial))
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Runtime;

    const NODE: &str = "b@127.0.0.1:1";

    #[test]
    fn a_watcher_hears_each_connection_once_and_only_losses_of_connected_nodes() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let mut mailbox = rt.mailbox();
        let watch = NodeWatch::default();
        assert!(watch.watch(mailbox.pid()).is_empty());
        // A connection that was never made: nobody is told.
        watch.down(NODE, |_| true);
        watch.up(crate::node::atom(NODE), |_| true);
        watch.up(crate::node::atom(NODE), |_| true);
        let up = mailbox.blocking_recv_timeout::<NodeEvent>(Duration::from_secs(10));
        assert_eq!(up, Some(NodeEvent::Up(NODE.to_owned())));
        // A later watcher finds the node in the list instead.
        let mut late = rt.mailbox();
        assert_eq!(watch.watch(late.pid()), vec![NODE.to_owned()]);
        watch.down(NODE, |_| true);
        for mailbox in [&mut mailbox, &mut late] {
            let down = mailbox.blocking_recv_timeout::<NodeEvent>(Duration::from_secs(10));
            assert_eq!(down, Some(NodeEvent::Down(NODE.to_owned())));
            assert_eq!(mailbox.try_recv::<NodeEvent>(), None, "one event each");
        }
    }

    #[test]
    fn watchers_that_left_or_died_are_not_told() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (mut gone, mut dead) = (rt.mailbox(), rt.mailbox());
        let watch = NodeWatch::default();
        watch.watch(gone.pid());
        watch.watch(dead.pid());
        watch.unwatch(gone.pid());
        let dead_pid = dead.pid();
        watch.up(crate::node::atom(NODE), |pid| pid != dead_pid);
        assert_eq!(gone.try_recv::<NodeEvent>(), None);
        assert_eq!(dead.try_recv::<NodeEvent>(), None);
        assert!(watch.inner.lock().watchers.is_empty());
    }
}
