//! Nodes for tests: two (or three) runtimes, each with a [`Node`], in the one test process, on
//! 127.0.0.1 with ports the OS picks; Pids as the other node sees them; bounded waits on a plain
//! thread's mailbox. Shared by the network node's tests and (by path) the RPC tests; it uses
//! the including module's `COOKIE` and `TIMEOUT`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use krarup_net::{Node, NodeConfig};
use krarup_runtime::{Mailbox, Message, Pid, Runtime};
use serde::{Deserialize, Serialize};

use super::{COOKIE, TIMEOUT};

/// One node: a runtime and the network node it was made.
pub struct Side {
    pub rt: Runtime,
    pub node: Node,
}

impl Side {
    /// A node called `short@127.0.0.1:0` (a port the OS picks), with a one-worker runtime.
    pub fn start(short: &str) -> Side {
        Side::with(NodeConfig::new(format!("{short}@127.0.0.1:0"), COOKIE))
    }

    /// A node started with `config`, with a one-worker runtime.
    pub fn with(config: NodeConfig) -> Side {
        let rt = Runtime::builder().workers(1).build().expect("runtime starts");
        let node = Node::start(&rt, config).expect("node starts");
        Side { rt, node }
    }

    /// The node's name (with its real port).
    pub fn name(&self) -> &str {
        self.node.name()
    }

    /// The node's port.
    pub fn port(&self) -> u16 {
        port_of(self.name())
    }
}

/// The port in a node name `name@host:port`.
pub fn port_of(name: &str) -> u16 {
    name.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a node name ends with :port")
}

/// Two connected nodes, `a` and `b`.
pub fn pair() -> (Side, Side) {
    let a = Side::start("a");
    let b = Side::start("b");
    a.node.connect(b.name()).expect("a connects to b");
    (a, b)
}

/// A Pid travelling inside a message.
#[derive(Debug, Serialize, Deserialize)]
pub struct Introduced(pub Pid);

/// The counter behind [`unique_name`] (and any other per-process serial a test needs).
pub static NAMES: AtomicU64 = AtomicU64::new(0);

/// A name no other call uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// `pid`, a process of `of`, as node `at` sees it: `of` sends it inside a message to a
/// registered mailbox on `at`, so what comes back is a remote Pid that routes over the network.
pub fn remote_pid(pid: Pid, of: &Side, at: &Side) -> Pid {
    let mut mailbox = at.rt.mailbox();
    let name = unique_name("introduce");
    at.rt.register(&name, mailbox.pid()).expect("a fresh name registers");
    of.rt.send_named_at(&name, at.name(), Introduced(pid));
    let Introduced(remote) = expect_msg(&mut mailbox);
    at.rt.unregister(&name).expect("registered above");
    assert_ne!(remote.node(), of.rt.node(), "a Pid from the network is not the sender runtime's own Pid");
    assert_ne!(remote.node(), at.rt.node(), "a Pid of another node is not a local Pid");
    remote
}

/// On a plain thread: the next `T` in `mailbox`, or a panic after [`TIMEOUT`].
pub fn expect_msg<T: Message>(mailbox: &mut Mailbox) -> T {
    expect_msg_within(mailbox, TIMEOUT)
}

/// On a plain thread: the next `T` in `mailbox`, or a panic after `bound`.
pub fn expect_msg_within<T: Message>(mailbox: &mut Mailbox, bound: Duration) -> T {
    match mailbox.blocking_recv_timeout::<T>(bound) {
        Some(msg) => msg,
        None => panic!("no {} arrived at the mailbox within {bound:?}", std::any::type_name::<T>()),
    }
}
