//! The seam between the runtime and a network layer (`krarup-net`): what a
//! node must provide so that sends, links, monitors and exit signals reach
//! processes on other nodes, and what it calls when frames arrive.
//!
//! A network layer *attaches* to a runtime ([`attach`]) with a
//! [`Distribution`]: the runtime's node name and incarnation, and a
//! [`Route`] per remote node. From then on:
//!
//! - **Outbound.** A send, link, unlink, monitor, demonitor or exit signal
//!   whose other end is a remote Pid becomes one [`Outgoing`] item handed to
//!   that node's route; so do the exit signals and `Down`s a dying local
//!   process owes remote processes. A message is encoded once, at the
//!   sender, under the route's [`Wire`] (postcard, Pids translated; see
//!   `wire.rs`). The route answers [`Sent`]: queued, queued but over its
//!   limit (the sender is then paused at its next receive until the
//!   [`Gate`] opens: Erlang's busy port), or unreachable (the link or
//!   monitor fires `NoConnection` at once; a message is dropped and
//!   counted, as Erlang drops messages to an unreachable node).
//! - **Inbound.** For each connection, after its handshake, the network
//!   layer makes an [`Inbound`]: the receiving runtime's view of the peer.
//!   It decodes frames' Pids and hands over what arrived: a message (kept
//!   as bytes and its type tag until a receive asks for that type), or a
//!   link, unlink, exit signal, monitor, demonitor or `Down` — each applied
//!   exactly as its local counterpart, under the same locks. Frames that
//!   name a process of a third node, or a peer's process as acting for
//!   another node, are refused ([`Refused`]): the network layer closes the
//!   connection. A Pid of an earlier incarnation of this node (the peer
//!   learned it before this node restarted) names a dead process: what is
//!   sent to it is dropped, a link or monitor of it gets `NoProc`.
//! - **Up.** Once a connection takes messages, [`LocalNode::node_up`]
//!   tells the processes that asked ([`monitor_nodes`], see `nodes.rs`).
//! - **Loss.** When a connection is gone, [`LocalNode::node_down`] fires every
//!   link and monitor between a local process and a process of that node
//!   with `NoConnection`, and forgets the peer's links and monitors on local
//!   processes.
//!
//! The remote halves of links and monitors keep the local invariants (see
//! `link.rs`, `monitor.rs`): a link or monitor whose request cannot be
//! sent fires at once; signals and `Down`s between two processes travel on
//! one connection, in order; a remote `Down` is delivered only while the
//! watcher still holds the monitor (its `watching` entry, removed under
//! its lock by the delivery or by `demonitor`), so none arrives after
//! `demonitor` returns.

mod gate;
mod named;
mod nodes;
mod ops;
mod remote;
mod wire;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::gate::Gate;
pub(crate) use self::named::{is_on_name, NamedMonitors, NAMELESS};
pub(crate) use self::nodes::NodeWatch;
pub use self::nodes::{demonitor_nodes, monitor_nodes, NodeEvent};
pub(crate) use self::ops::{
    demonitor_remote, down_remote, exit_remote, is_remote, link_remote, monitor_named_remote, monitor_remote,
    send_named_at, send_remote, send_via, unlink_remote,
};
pub(crate) use self::remote::{materialize, undecodable, Materialized, RemoteMessage};
pub(crate) use self::wire::{deserialize_pid, serialize_pid};
pub use self::wire::{tag_of, Wire, WireError};

use crate::exit::ExitReason;
use crate::monitor::MonitorRef;
use crate::pid::Pid;
use crate::runtime::{Runtime, Shared};
use crate::sync::global::Arc;

/// A Pid on node `node` (`name@host:port`) that names no process, for
/// the calling process's runtime: monitoring it tells whether the node can
/// be reached — `Down` with `NoConnection` if not, with `NoProc` once the
/// node has answered — in order with what was sent to that node before.
/// None outside a process, for a runtime that is no node, or for its own
/// name.
///
/// This is how a client that knows a server only by name (`{Name, Node}`)
/// and asks the name's holder a question learns at once that the node is
/// unreachable, instead of waiting out its timeout. To watch the process
/// the name stands for, use [`monitor_name_at`](crate::monitor_name_at)
/// (Erlang's `monitor(process, {Name, Node})`).
pub fn probe(node: &str) -> Option<Pid> {
    let shared = crate::scheduler::worker::with_worker(|w| w.map(|w| w.shared.clone()))?;
    let attached = shared.dist.get()?;
    if attached.name == node {
        return None;
    }
    // The peer takes the Pid for one of an earlier incarnation of itself,
    // which is dead.
    Some(Pid::from_parts(any_incarnation(&shared, attached, node), NAMELESS, 0))
}

/// The node-table entry of `node`'s "whichever incarnation is up", for
/// runtime `shared` (attached as `attached`): creation 0, which no
/// incarnation has. It holds the node's route and no process; a Pid of it
/// names nothing (`probe`, a monitor on a name) or sends by name.
pub(crate) fn any_incarnation(shared: &Shared, attached: &Attached, node: &str) -> u32 {
    crate::node::intern_remote_by_name(shared.node, node, 0, Some(&*attached.dist))
}

/// A network layer attached to one runtime.
pub trait Distribution: Send + Sync + 'static {
    /// How to reach the node named `node`; None if it cannot be (a name
    /// this layer cannot parse). Called once per remote node incarnation
    /// the runtime learns of; the route is then kept for good.
    fn route(&self, node: &str) -> Option<Arc<dyn Route>>;
}

/// How one local runtime reaches one remote node (all its incarnations).
pub trait Route: Send + Sync + 'static {
    /// Queues `item` for the node, connecting first if need be. Must not
    /// block for long: at most until an over-full outgoing buffer drains
    /// (for a sender that never awaits, the last resort of backpressure).
    fn send(&self, item: Outgoing<'_>) -> Sent;
}

/// What a route is asked to carry. Pids in it are encoded with the route's
/// [`Wire`]; a `to` Pid is always of the route's node.
#[non_exhaustive]
pub enum Outgoing<'a> {
    /// A message to process `to`. `tag` is the message type's
    /// [`tag_of`]; `guard` (a call tag) asks the receiving node to deliver
    /// it only if `to` still awaits that call (see `call.rs`).
    Message {
        /// The receiver.
        to: Pid,
        /// The message type's tag.
        tag: u64,
        /// The call this is a reply to, if it is one.
        guard: Option<u64>,
        /// The message; encode it with the route's [`Wire`].
        payload: &'a dyn Payload,
    },
    /// A message to the process registered as `name` on the node.
    Named {
        /// The registered name.
        name: &'a str,
        /// The message type's tag.
        tag: u64,
        /// The message.
        payload: &'a dyn Payload,
    },
    /// An exit signal from local `from` to remote `to`: sent with `exit`
    /// (`link: false`) or because `from` died linked to `to`.
    Exit {
        /// The sender.
        from: Pid,
        /// The receiver.
        to: Pid,
        /// Why.
        reason: &'a ExitReason,
        /// Whether it travels through a link.
        link: bool,
    },
    /// `from` linked itself to `to`.
    Link {
        /// The local end.
        from: Pid,
        /// The remote end.
        to: Pid,
    },
    /// `from` removed its link to `to`.
    Unlink {
        /// The local end.
        from: Pid,
        /// The remote end.
        to: Pid,
    },
    /// A local watcher monitors a remote target (both are in `reference`).
    Monitor {
        /// The monitor.
        reference: MonitorRef,
    },
    /// A local watcher monitors the process registered as `name` on the
    /// node (Erlang's `monitor(process, {Name, Node})`); the target in
    /// `reference` is a placeholder that names no process (see `named.rs`).
    MonitorNamed {
        /// The monitor.
        reference: MonitorRef,
        /// The registered name.
        name: &'a str,
    },
    /// The local watcher removed its monitor of a remote target.
    Demonitor {
        /// The monitor.
        reference: MonitorRef,
    },
    /// A local target of a remote watcher's monitor exited.
    Down {
        /// The monitor.
        reference: MonitorRef,
        /// Why the target exited.
        reason: &'a ExitReason,
    },
}

impl fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outgoing::Message { to, tag, guard, .. } => {
                f.debug_struct("Message").field("to", to).field("tag", tag).field("guard", guard).finish()
            }
            Outgoing::Named { name, tag, .. } => f.debug_struct("Named").field("name", name).field("tag", tag).finish(),
            Outgoing::Exit { from, to, reason, link } => f
                .debug_struct("Exit")
                .field("from", from)
                .field("to", to)
                .field("reason", reason)
                .field("link", link)
                .finish(),
            Outgoing::Link { from, to } => f.debug_struct("Link").field("from", from).field("to", to).finish(),
            Outgoing::Unlink { from, to } => f.debug_struct("Unlink").field("from", from).field("to", to).finish(),
            Outgoing::Monitor { reference } => f.debug_struct("Monitor").field("reference", reference).finish(),
            Outgoing::MonitorNamed { reference, name } => {
                f.debug_struct("MonitorNamed").field("reference", reference).field("name", name).finish()
            }
            Outgoing::Demonitor { reference } => f.debug_struct("Demonitor").field("reference", reference).finish(),
            Outgoing::Down { reference, reason } => {
                f.debug_struct("Down").field("reference", reference).field("reason", reason).finish()
            }
        }
    }
}

/// A message on its way out, before encoding.
pub trait Payload {
    /// Appends the message's encoding under `wire` to `buf`.
    ///
    /// # Errors
    /// As [`Wire::encode`]; `buf` is then unchanged.
    fn encode(&self, wire: &Wire, buf: &mut Vec<u8>) -> Result<(), WireError>;
}

impl<T: Serialize> Payload for T {
    fn encode(&self, wire: &Wire, buf: &mut Vec<u8>) -> Result<(), WireError> {
        wire.encode(self, buf)
    }
}

/// What became of an [`Outgoing`] item.
#[derive(Debug)]
#[non_exhaustive]
pub enum Sent {
    /// On its way.
    Queued,
    /// On its way, but the connection's outgoing buffer is over its limit:
    /// the sending process pauses at its next receive until `gate` opens.
    Busy(Arc<Gate>),
    /// The node cannot be reached (it refused us, or the connection is
    /// being torn down); nothing was queued.
    Unreachable,
}

/// What attaching a network layer records on the runtime.
pub(crate) struct Attached {
    /// The node's name, interned.
    pub(crate) name: &'static str,
    /// Its incarnation.
    pub(crate) creation: u32,
    pub(crate) dist: Arc<dyn Distribution>,
}

/// Why [`attach`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// The runtime already has a network layer (a runtime is one node).
    AlreadyAttached {
        /// The name it has.
        name: String,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::AlreadyAttached { name } => {
                write!(f, "this runtime is already the network node {name}; start one node per runtime")
            }
        }
    }
}

impl std::error::Error for AttachError {}

/// Makes `runtime` the node `name`, incarnation `creation`, reaching other
/// nodes through `dist`. Done once per runtime, for its lifetime; the
/// returned handle is the network layer's way back in.
///
/// # Errors
/// [`AttachError::AlreadyAttached`] if a network layer is attached already.
pub fn attach(
    runtime: &Runtime,
    name: &str,
    creation: u32,
    dist: Arc<dyn Distribution>,
) -> Result<LocalNode, AttachError> {
    let shared = runtime.shared().clone();
    let attached = Attached { name: crate::node::atom(name), creation, dist };
    match shared.dist.set(attached) {
        Ok(()) => Ok(LocalNode { shared }),
        Err(_) => Err(AttachError::AlreadyAttached {
            name: shared.dist.get().map_or_else(String::new, |a| a.name.to_owned()),
        }),
    }
}

/// An attached runtime, as its network layer holds it (it does not keep
/// the runtime running: dropping the [`Runtime`] still shuts it down).
#[derive(Clone)]
pub struct LocalNode {
    shared: Arc<Shared>,
}

impl fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNode").field("node", &self.shared.node).finish()
    }
}

impl LocalNode {
    /// The runtime's node number.
    pub fn node(&self) -> u32 {
        self.shared.node
    }

    /// Whether the runtime has shut down.
    pub fn is_shut_down(&self) -> bool {
        self.shared.is_shutdown()
    }

    /// The encoding side of a connection to node `peer`.
    pub fn wire(&self, peer: &str) -> Wire {
        Wire::new(self.shared.node, peer)
    }

    /// This runtime's view of peer `peer`, incarnation `creation`, for
    /// everything that arrives on one connection.
    pub fn inbound(&self, peer: &str, creation: u32) -> Inbound {
        let attached = self.shared.dist.get().expect("a LocalNode is attached");
        let peer = crate::node::atom(peer);
        let origin = crate::node::intern_remote(self.shared.node, peer, creation, Some(&*attached.dist));
        let view = wire::View { local: self.shared.node, origin, own_creation: attached.creation };
        Inbound { view, shared: self.shared.clone(), peer }
    }

    /// Node `peer` is unreachable (its connection is gone, or could not be
    /// made): every link and monitor between a local process and a process
    /// of any incarnation of `peer` fires with `NoConnection` — a link
    /// sends the local process an exit signal, a monitor delivers its
    /// `Down` — and the peer's links and monitors on local processes are
    /// forgotten. Call it once the route refuses new items for `peer`
    /// (answers [`Sent::Unreachable`]), so none is set up behind the scan.
    pub fn node_down(&self, peer: &str) {
        self.node_down_then(peer, || {});
    }

    /// A connection to node `peer` is up and takes messages: the processes
    /// that [monitor nodes](monitor_nodes) get [`NodeEvent::Up`]. Call it
    /// once per connection, after [`inbound`](LocalNode::inbound) and once
    /// the route queues items for writing; the matching
    /// [`node_down`](LocalNode::node_down) sends [`NodeEvent::Down`].
    pub fn node_up(&self, peer: &str) {
        let shared = &self.shared;
        shared.nodes.up(crate::node::atom(peer), |pid| shared.is_alive(pid));
    }

    /// [`node_down`](LocalNode::node_down), calling `scanned` once every
    /// link and monitor to fire is collected and before any fires: the
    /// moment for the route to take items again, so that a process that
    /// hears of the loss (its `Down` or `Exit`) and sends at once starts a
    /// new connection instead of having its message refused. A link or
    /// monitor set up after `scanned` is not among those that fire.
    pub fn node_down_then(&self, peer: &str, scanned: impl FnOnce()) {
        ops::node_down(&self.shared, peer, scanned);
        let shared = &self.shared;
        shared.nodes.down(peer, |pid| shared.is_alive(pid));
    }

    /// `messages` messages queued for a node that became unreachable
    /// before they were sent: dropped, as Erlang drops them, and counted
    /// (in [`RuntimeStats::unroutable_messages`](crate::RuntimeStats)).
    pub fn lost(&self, messages: u64) {
        crate::send::count_unroutable_n(messages);
    }
}

/// A frame that broke the protocol: the network layer should close the
/// connection and log this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub(crate) &'static str);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

/// One local runtime's view of one connected peer (a remote node
/// incarnation): decodes what the peer sends and applies it.
#[derive(Clone)]
pub struct Inbound {
    view: wire::View,
    shared: Arc<Shared>,
    peer: &'static str,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound").field("local", &self.view.local).field("peer", &self.peer).finish()
    }
}

impl Inbound {
    /// The peer's node number in this runtime: the first number of its Pids.
    pub fn origin(&self) -> u32 {
        self.view.origin
    }

    /// Decodes all of `bytes` as a `T` sent by the peer, Pids translated.
    ///
    /// # Errors
    /// [`WireError`] if the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, WireError> {
        self.view.decode(bytes)
    }

    /// Decodes a `T` from the front of `bytes`; returns it and the rest.
    ///
    /// # Errors
    /// [`WireError`] if the bytes do not start with a `T`.
    pub fn decode_prefix<'b, T: DeserializeOwned>(&self, bytes: &'b [u8]) -> Result<(T, &'b [u8]), WireError> {
        self.view.decode_prefix(bytes)
    }

    /// A Pid the peer addresses here: `Some` for a process of this
    /// incarnation, `None` for one of an earlier incarnation of this node
    /// (decoded as a dead Pid, see `wire.rs`; the peer learned it before we
    /// restarted): as in Erlang, what is sent to it is dropped, and a link
    /// or monitor of it gets `NoProc`.
    ///
    /// # Errors
    /// [`Refused`] for a process of another node.
    fn local(&self, pid: Pid) -> Result<Option<Pid>, Refused> {
        if pid.node() == self.view.local {
            return Ok(Some(pid));
        }
        let own = self.shared.dist.get().map(|a| a.name);
        match crate::node::lookup_remote(pid.node()) {
            Some(remote) if Some(remote.name) == own => Ok(None),
            _ => Err(Refused("a frame addressed to a process of another node")),
        }
    }

    fn peers(&self, pid: Pid) -> Result<Pid, Refused> {
        if pid.node() == self.view.origin {
            Ok(pid)
        } else {
            Err(Refused("a frame acting for a process of another node"))
        }
    }

    /// As [`Inbound::peers`], but also a process of an earlier incarnation
    /// of the peer: the sender of the `NoProc` exit signal or `Down` with
    /// which the peer answers a link or monitor of such a process.
    fn peers_any_incarnation(&self, pid: Pid) -> Result<Pid, Refused> {
        match crate::node::lookup_remote(pid.node()) {
            Some(remote) if pid.node() == self.view.origin || remote.name == self.peer => Ok(pid),
            _ => Err(Refused("a frame acting for a process of another node")),
        }
    }

    /// A message for local process `to`: kept as bytes with its type tag
    /// until a receive asks for that type (see `remote.rs`). A message to a
    /// process that is not alive — or, with a `guard`, that no longer
    /// awaits that call — is dropped, as a local one would be.
    ///
    /// # Errors
    /// [`Refused`] if `to` is not a process of this node.
    pub fn deliver(&self, to: Pid, tag: u64, guard: Option<u64>, payload: &[u8]) -> Result<(), Refused> {
        let Some(to) = self.local(to)? else {
            self.shared.count_dropped();
            return Ok(());
        };
        remote::deliver(&self.shared, to, tag, self.view, guard, payload);
        Ok(())
    }

    /// The local process a peer names in the compact form of
    /// [`Wire::receiver`]: None if the creation is not ours (a Pid of an
    /// earlier incarnation of this node, which is dead).
    pub fn receiver(&self, [index, serial, creation]: [u32; 3]) -> Option<Pid> {
        (creation == self.view.own_creation).then(|| Pid::from_parts(self.view.local, index, serial))
    }

    /// [`Inbound::deliver`] to a Pid from [`Inbound::receiver`]: None (a
    /// dead Pid) drops the message and counts it.
    pub fn deliver_to(&self, to: Option<Pid>, tag: u64, guard: Option<u64>, payload: &[u8]) {
        match to {
            Some(to) => remote::deliver(&self.shared, to, tag, self.view, guard, payload),
            None => self.shared.count_dropped(),
        }
    }

    /// A message for the process registered as `name` here; false (the
    /// message dropped) if no process has the name.
    pub fn deliver_named(&self, name: &str, tag: u64, payload: &[u8]) -> bool {
        match self.shared.whereis(name) {
            Some(to) => {
                remote::deliver(&self.shared, to, tag, self.view, None, payload);
                true
            }
            None => {
                self.shared.count_dropped();
                false
            }
        }
    }

    /// An exit signal from the peer's `from` to local `to` (see `signal.rs`).
    ///
    /// # Errors
    /// [`Refused`] if the Pids are not the peer's and ours.
    pub fn exit(&self, from: Pid, to: Pid, reason: ExitReason, link: bool) -> Result<(), Refused> {
        let from = if link { self.peers_any_incarnation(from)? } else { self.peers(from)? };
        let Some(to) = self.local(to)? else { return Ok(()) };
        let via = if link { crate::signal::Via::Link } else { crate::signal::Via::Exit };
        crate::signal::send_signal(to, from, &reason, via);
        Ok(())
    }

    /// The peer's `from` linked itself to local `to`: the link is recorded
    /// on `to`, or, if `to` is not alive, `from` gets `NoProc` back.
    ///
    /// # Errors
    /// [`Refused`] if the Pids are not the peer's and ours.
    pub fn link(&self, from: Pid, to: Pid) -> Result<(), Refused> {
        let from = self.peers(from)?;
        match self.local(to)? {
            Some(to) => ops::link_arrived(from, to),
            None => ops::exit_remote(to, from, &ExitReason::NoProc, crate::signal::Via::Link),
        }
        Ok(())
    }

    /// The peer's `from` removed its link to local `to`.
    ///
    /// # Errors
    /// [`Refused`] if the Pids are not the peer's and ours.
    pub fn unlink(&self, from: Pid, to: Pid) -> Result<(), Refused> {
        let from = self.peers(from)?;
        let Some(to) = self.local(to)? else { return Ok(()) };
        crate::link::with_extras_of(to, |e| e.links.retain(|&p| p != from));
        Ok(())
    }

    /// The peer's watcher monitors local target (both in `reference`): the
    /// monitor is recorded on the target, or, if it is not alive, the
    /// watcher gets `Down` with `NoProc` back.
    ///
    /// # Errors
    /// [`Refused`] if the watcher is not the peer's and the target ours.
    pub fn monitor(&self, reference: MonitorRef) -> Result<(), Refused> {
        self.peers(reference.watcher())?;
        match self.local(reference.target())? {
            Some(_) => ops::monitor_arrived(reference),
            None => ops::down_remote(reference, &ExitReason::NoProc),
        }
        Ok(())
    }

    /// The peer's watcher monitors the process registered here as `name`
    /// (the target in `reference` is a placeholder of this node): the
    /// monitor is recorded on the process the name stands for now, or, if
    /// none, the watcher gets `Down` with `NoProc` back (see `named.rs`).
    ///
    /// # Errors
    /// [`Refused`] if the watcher is not the peer's or the target not of
    /// this node.
    pub fn monitor_named(&self, reference: MonitorRef, name: &str) -> Result<(), Refused> {
        self.peers(reference.watcher())?;
        self.local(reference.target())?;
        ops::monitor_named_arrived(&self.shared, reference, name);
        Ok(())
    }

    /// The peer's watcher removed its monitor of a local target (or of a
    /// local name: see `named.rs`).
    ///
    /// # Errors
    /// [`Refused`] if the watcher is not the peer's and the target ours.
    pub fn demonitor(&self, reference: MonitorRef) -> Result<(), Refused> {
        self.peers(reference.watcher())?;
        let target = self.local(reference.target())?;
        if is_on_name(&reference) {
            if let Some(target) = self.shared.named_monitors.remove(&reference) {
                crate::link::with_extras_of(target, |e| crate::monitor::forget(&mut e.monitors, reference));
            }
            return Ok(());
        }
        if target.is_none() {
            return Ok(());
        }
        crate::link::with_extras_of(reference.target(), |e| crate::monitor::forget(&mut e.monitors, reference));
        Ok(())
    }

    /// The peer's target of a local watcher's monitor exited with `reason`.
    ///
    /// # Errors
    /// [`Refused`] if the target is not the peer's and the watcher ours.
    pub fn down(&self, reference: MonitorRef, reason: ExitReason) -> Result<(), Refused> {
        self.peers_any_incarnation(reference.target())?;
        if self.local(reference.watcher())?.is_none() {
            return Ok(());
        }
        ops::down_arrived(reference, reason);
        Ok(())
    }

    /// The peer's name.
    pub fn peer(&self) -> &str {
        self.peer
    }
}

/// A network layer that reaches nobody, for unit tests of what arrives from a peer.
#[cfg(test)]
pub(crate) struct Nowhere;

#[cfg(test)]
impl Distribution for Nowhere {
    fn route(&self, _node: &str) -> Option<Arc<dyn Route>> {
        None
    }
}
