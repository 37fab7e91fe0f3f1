//! The node table: what a Pid's node number names.
//!
//! An entry is either a local runtime or one incarnation of a remote node as
//! seen by one local runtime. Each [`Runtime`](crate::Runtime) takes the next
//! number when it starts and leaves a tombstone when it is dropped; a network
//! layer attached to a runtime adds an entry per remote node incarnation
//! (`name`, `creation`) the runtime learns of ([`intern_remote`]). Numbers are
//! never reused, so a Pid of a dropped runtime or of a restarted remote node
//! can never reach a process of a later one.
//!
//! Sends from threads that are not workers of the target's runtime (plain
//! threads, other runtimes, the network's I/O thread) and every send to a
//! remote Pid find their way here.

use std::collections::HashMap;

use crate::dist::{Distribution, Route};
use crate::runtime::Shared;
use crate::sync::global::{Arc, RwLock, Weak};

/// One remote node incarnation, as seen by local node `local`.
pub(crate) struct Remote {
    /// Its name (`name@host:port`), interned ([`atom`]).
    pub(crate) name: &'static str,
    /// Its incarnation number: Pids of another incarnation are dead.
    pub(crate) creation: u32,
    /// How to reach it (None: a name no network layer can reach, e.g. a
    /// Pid of a local runtime that has no network name).
    pub(crate) route: Option<Arc<dyn Route>>,
    /// The local node that sees it this way, and that node's incarnation
    /// (0 if it had no network when this entry was made): with the entry's
    /// number, the whole decoding view of a message it sent.
    pub(crate) local: u32,
    pub(crate) local_creation: u32,
}

enum Entry {
    Local(Weak<Shared>),
    /// Never freed: a node incarnation, once seen, is named by Pids that may
    /// live anywhere (as Erlang keeps atoms); one small record per
    /// incarnation seen.
    Remote(&'static Remote),
}

struct Nodes {
    entries: Vec<Entry>,
    /// (local node, remote name, creation) → entry number.
    remote: HashMap<(u32, &'static str, u32), u32>,
    /// Per local node, how many remote entries it has.
    per_local: HashMap<u32, usize>,
}

/// The most remote entries one local node makes from names and creations
/// it reads in frames and messages ([`intern_remote_bounded`]): a peer
/// cannot make it allocate without bound by naming ever new nodes (Erlang's
/// atom table has the same exposure, and a limit).
pub(crate) const MAX_REMOTES_PER_NODE: usize = 1 << 16;

static NODES: RwLock<Option<Nodes>> = RwLock::new(None);

fn with_nodes<R>(f: impl FnOnce(&mut Nodes) -> R) -> R {
    let mut guard = NODES.write();
    f(guard.get_or_insert_with(|| Nodes { entries: Vec::new(), remote: HashMap::new(), per_local: HashMap::new() }))
}

fn push(nodes: &mut Nodes, entry: Entry) -> u32 {
    let node = u32::try_from(nodes.entries.len()).expect("too many nodes in one process");
    nodes.entries.push(entry);
    node
}

/// Registers a new local runtime; returns its node number.
pub(crate) fn register(shared: Weak<Shared>) -> u32 {
    with_nodes(|nodes| push(nodes, Entry::Local(shared)))
}

/// The local runtime with node number `node`, if it is still running.
pub(crate) fn lookup(node: u32) -> Option<Arc<Shared>> {
    match NODES.read().as_ref()?.entries.get(node as usize)? {
        Entry::Local(weak) => weak.upgrade(),
        Entry::Remote(_) => None,
    }
}

/// The remote node incarnation with node number `node`, if it is one.
pub(crate) fn lookup_remote(node: u32) -> Option<&'static Remote> {
    thread_local! {
        /// Remote entries this thread has looked up: they never change once
        /// made, so a sender reaches its route without the table's lock.
        static REMOTES: std::cell::RefCell<Vec<Option<&'static Remote>>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if crate::scheduler::worker::with_worker(|w| w.is_some_and(|w| w.shared.node == node)) {
        return None;
    }
    let i = node as usize;
    if let Some(Some(remote)) = REMOTES.with(|cache| cache.borrow().get(i).copied()) {
        return Some(remote);
    }
    let remote = match NODES.read().as_ref()?.entries.get(i)? {
        Entry::Remote(remote) => *remote,
        Entry::Local(_) => return None,
    };
    REMOTES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() <= i {
            cache.resize(i + 1, None);
        }
        cache[i] = Some(remote);
    });
    Some(remote)
}

/// Leaves a tombstone for a dropped runtime.
pub(crate) fn unregister(node: u32) {
    with_nodes(|nodes| {
        if let Some(entry) = nodes.entries.get_mut(node as usize) {
            *entry = Entry::Local(Weak::new());
        }
    });
}

static ATOMS: RwLock<Option<std::collections::HashSet<&'static str>>> = RwLock::new(None);

/// The one `&'static str` for `name`: node names are interned (as Erlang
/// interns atoms), so a route or a wire context can hold one for free and
/// compare names by pointer. One small allocation per distinct name.
pub(crate) fn atom(name: &str) -> &'static str {
    if let Some(&atom) = ATOMS.read().as_ref().and_then(|atoms| atoms.get(name)) {
        return atom;
    }
    let mut atoms = ATOMS.write();
    let atoms = atoms.get_or_insert_with(Default::default);
    if let Some(&atom) = atoms.get(name) {
        return atom;
    }
    let atom: &'static str = Box::leak(name.to_owned().into_boxed_str());
    atoms.insert(atom);
    atom
}

/// The entry of remote node (`name`, `creation`) as seen by local node
/// `local`, created on first sight with a route from `dist` (if any).
pub(crate) fn intern_remote(local: u32, name: &'static str, creation: u32, dist: Option<&dyn Distribution>) -> u32 {
    if let Some(&node) = NODES.read().as_ref().and_then(|n| n.remote.get(&(local, name, creation))) {
        return node;
    }
    // Outside the lock: the network layer may look things up itself.
    let route = dist.and_then(|d| d.route(name));
    let local_creation = lookup(local).and_then(|shared| shared.dist.get().map(|a| a.creation)).unwrap_or(0);
    with_nodes(|nodes| {
        if let Some(&node) = nodes.remote.get(&(local, name, creation)) {
            return node;
        }
        let remote = Remote { name, creation, route, local, local_creation };
        let node = push(nodes, Entry::Remote(Box::leak(Box::new(remote))));
        nodes.remote.insert((local, name, creation), node);
        *nodes.per_local.entry(local).or_default() += 1;
        node
    })
}

/// [`intern_remote`] for a name not yet interned, as a sender by name has it
/// (`send_named_at`, `monitor_name_at`, a stub of a name on another node:
/// every call). The entry of a (`local`, `name`, `creation`) never changes
/// once made, so each thread keeps the last few it found, and a sender that
/// sends to the same few nodes again and again finds its entry with a
/// comparison or two instead of two hash lookups under global locks (about
/// 800 instructions a send).
pub(crate) fn intern_remote_by_name(local: u32, name: &str, creation: u32, dist: Option<&dyn Distribution>) -> u32 {
    /// How many entries a thread keeps (most recent last).
    const KEEP: usize = 8;
    thread_local! {
        static FOUND: std::cell::RefCell<Vec<(u32, u32, &'static str, u32)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let hit = FOUND.with(|found| {
        let found = found.borrow();
        found.iter().rev().find(|&&(l, c, n, _)| l == local && c == creation && n == name).map(|&(.., node)| node)
    });
    if let Some(node) = hit {
        return node;
    }
    let atom = atom(name);
    let node = intern_remote(local, atom, creation, dist);
    FOUND.with(|found| {
        let mut found = found.borrow_mut();
        if found.len() == KEEP {
            found.remove(0);
        }
        found.push((local, creation, atom, node));
    });
    node
}

/// [`intern_remote`] for a name and creation read from the network: None
/// if the entry is new and `local` has [`MAX_REMOTES_PER_NODE`] already.
pub(crate) fn intern_remote_bounded(
    local: u32,
    name: &str,
    creation: u32,
    dist: Option<&dyn Distribution>,
) -> Option<u32> {
    let known = ATOMS.read().as_ref().and_then(|atoms| atoms.get(name).copied());
    {
        let guard = NODES.read();
        if let Some(nodes) = guard.as_ref() {
            if let Some(&node) = known.and_then(|name| nodes.remote.get(&(local, name, creation))) {
                return Some(node);
            }
            if nodes.per_local.get(&local).copied().unwrap_or(0) >= MAX_REMOTES_PER_NODE {
                return None;
            }
        }
    }
    Some(intern_remote(local, atom(name), creation, dist))
}

/// The remote entries of local node `local` whose name is `name` (every
/// incarnation seen).
pub(crate) fn remotes_named(local: u32, name: &str) -> Vec<u32> {
    let guard = NODES.read();
    let Some(nodes) = guard.as_ref() else { return Vec::new() };
    nodes.remote.iter().filter(|((l, n, _), _)| *l == local && *n == name).map(|(_, &node)| node).collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_node_found_by_name_is_the_entry_of_that_name_however_many_names_a_thread_uses() {
        // A local node number no runtime has: its entries are this test's own.
        let local = u32::MAX - 7;
        let names: Vec<String> = (0..3 * 8).map(|i| format!("n{i}@127.0.0.1:{}", 1000 + i)).collect();
        let first: Vec<u32> = names.iter().map(|n| intern_remote_by_name(local, n, 0, None)).collect();
        for (i, n) in names.iter().enumerate().rev() {
            assert_eq!(intern_remote(local, atom(n), 0, None), first[i], "{n}: not the table's entry");
            assert_eq!(intern_remote_by_name(local, n, 0, None), first[i], "{n}: another entry the second time");
            // Another creation, and another local node, are other entries.
            assert_ne!(intern_remote_by_name(local, n, 1, None), first[i], "{n}, creation 1");
            assert_ne!(intern_remote_by_name(local - 1, n, 0, None), first[i], "{n}, another local node");
        }
        let mut distinct = first.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "two names share an entry");
    }
}
