//! The peers this node knows of, by name and by number: the [`Distribution`] the runtime asks
//! for a route to a node it has just heard of.
//!
//! Invariant: one [`Peer`] per node name for the node's lifetime (so every incarnation of a
//! remote node shares one route, one buffer and one order), numbered densely from 0.

use std::collections::HashMap;

use krarup_runtime::dist::{Distribution, Route, Wire};

use crate::io::Io;
use crate::name::NodeName;
use crate::peer::Peer;
use crate::sync::global::{Arc, RwLock};

pub(crate) struct Registry {
    /// This node.
    pub(crate) me: NodeName,
    /// The runtime's node number (what its Pids carry).
    local_node: u32,
    io: Arc<Io>,
    limit: usize,
    max_frame: u32,
    peers: RwLock<Peers>,
}

#[derive(Default)]
struct Peers {
    by_name: HashMap<NodeName, Arc<Peer>>,
    list: Vec<Arc<Peer>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Registry {
    pub(crate) fn new(me: NodeName, local_node: u32, io: Arc<Io>, limit: usize, max_frame: u32) -> Registry {
        Registry { me, local_node, io, limit, max_frame, peers: RwLock::new(Peers::default()) }
    }

    /// The peer named `name`, made on first use.
    pub(crate) fn peer(&self, name: &NodeName) -> Arc<Peer> {
        if let Some(peer) = self.peers.read().by_name.get(name) {
            return peer.clone();
        }
        let mut peers = self.peers.write();
        if let Some(peer) = peers.by_name.get(name) {
            return peer.clone();
        }
        let id = peers.list.len();
        let wire = Wire::new(self.local_node, name.as_str());
        let peer = Arc::new(Peer::new(id, name.clone(), wire, self.limit, self.max_frame, self.io.clone()));
        peers.list.push(peer.clone());
        peers.by_name.insert(name.clone(), peer.clone());
        peer
    }

    /// Peer number `id`.
    pub(crate) fn by_id(&self, id: usize) -> Arc<Peer> {
        self.peers.read().list[id].clone()
    }

    /// Every peer known so far.
    pub(crate) fn all(&self) -> Vec<Arc<Peer>> {
        self.peers.read().list.clone()
    }
}

impl Distribution for Registry {
    fn route(&self, node: &str) -> Option<Arc<dyn Route>> {
        let name = NodeName::parse(node).ok()?;
        if name == self.me {
            return None;
        }
        Some(self.peer(&name))
    }
}
