//! The node table: which runtime a Pid's node number names.
//!
//! Each [`Runtime`](crate::Runtime) takes the next node number when it starts
//! and leaves a tombstone when it is dropped; numbers are never reused, so a
//! Pid of a dropped runtime can never reach a process of a later one. Sends
//! from threads that are not workers of the target's runtime (plain threads,
//! other runtimes) find the runtime here. The network node will add entries
//! for remote nodes.

use crate::runtime::Shared;
use crate::sync::global::{Arc, RwLock, Weak};

static NODES: RwLock<Vec<Weak<Shared>>> = RwLock::new(Vec::new());

/// Registers a new local runtime; returns its node number.
pub(crate) fn register(shared: Weak<Shared>) -> u32 {
    let mut nodes = NODES.write();
    let node = u32::try_from(nodes.len()).expect("too many runtimes in one process");
    nodes.push(shared);
    node
}

/// The runtime with node number `node`, if it is still running.
pub(crate) fn lookup(node: u32) -> Option<Arc<Shared>> {
    NODES.read().get(node as usize).and_then(Weak::upgrade)
}

/// Leaves a tombstone for a dropped runtime.
pub(crate) fn unregister(node: u32) {
    if let Some(entry) = NODES.write().get_mut(node as usize) {
        *entry = Weak::new();
    }
}
