//! [`Node`]: a runtime made into a network node, and what its owner can ask of it.

use std::fmt;
use std::net::ToSocketAddrs;
use std::thread::JoinHandle;

use krarup_runtime::{Pid, Runtime};
use mio::net::TcpListener;
use mio::{Poll, Waker};
use serde::{Deserialize, Serialize};

use crate::config::{ConnectError, NodeConfig, StartError};
use crate::handshake::{Cookie, NodeId};
use crate::io::{Command, Io, Reactor, Stats, WAKER};
use crate::name::NodeName;
use crate::outbox::State;
use crate::registry::Registry;
use crate::sync::global::{Arc, Mutex, Ordering};

/// What a process that [monitors a node](Node::monitor_node) receives when the connection to it
/// is lost (or cannot be made): Erlang's `{nodedown, Node}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeDown {
    /// The node's name.
    pub node: String,
}

/// A runtime that is a node of a network: its processes' Pids are valid on every node it
/// connects to, and `send`, links, monitors and exit signals reach remote processes as they
/// reach local ones.
///
/// A node connects to another on first use (a send to one of its Pids, or to a name on it with
/// [`send_named_at`](krarup_runtime::send_named_at)) or explicitly with [`connect`](Node::connect).
/// The node lives as long as its runtime, or until [`shutdown`](Node::shutdown); dropping the
/// handle does not stop it.
///
/// ```
/// use krarup_runtime::Runtime;
/// use krarup_net::{Node, NodeConfig};
///
/// let rt_a = Runtime::new();
/// let rt_b = Runtime::new();
/// let a = Node::start(&rt_a, NodeConfig::new("a@127.0.0.1:0", "secret")).unwrap();
/// let b = Node::start(&rt_b, NodeConfig::new("b@127.0.0.1:0", "secret")).unwrap();
///
/// // A process on b, registered as "echo", answers whoever writes to it.
/// let echo = rt_b.spawn(async {
///     let (from, text): (krarup_runtime::Pid, String) = krarup_runtime::recv().await;
///     from.send(text.to_uppercase());
/// });
/// rt_b.register("echo", echo).unwrap();
///
/// let answer = rt_a.block_on(async move {
///     krarup_runtime::send_named_at("echo", b.name(), (krarup_runtime::self_pid(), String::from("hi")));
///     krarup_runtime::recv::<String>().await
/// });
/// assert_eq!(answer, "HI");
/// # drop(a);
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    name: NodeName,
    listen_address: std::net::SocketAddr,
    creation: u32,
    registry: Arc<Registry>,
    io: Arc<Io>,
    stats: Arc<Stats>,
    connect_timeout: std::time::Duration,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").field("name", &self.name()).field("creation", &self.inner.creation).finish()
    }
}

/// A node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Connections up now.
    pub connected: usize,
    /// Bytes read from all connections.
    pub bytes_in: u64,
    /// Bytes written to all connections.
    pub bytes_out: u64,
    /// Distribution frames received.
    pub frames_in: u64,
    /// Connections closed, for any reason.
    pub connections_closed: u64,
    /// Connections closed because the peer broke the protocol (malformed, oversized, truncated
    /// or unexpected frames, failed handshakes).
    pub bad_input: u64,
    /// Bytes waiting to be written, over all peers.
    pub pending_bytes: usize,
}

impl Node {
    /// Makes `runtime` the node `config` describes: binds its listening socket and starts its
    /// I/O thread.
    ///
    /// # Errors
    /// A [`StartError`]: a bad name or cookie, a port that cannot be bound, a runtime that is a
    /// node already.
    pub fn start(runtime: &Runtime, config: NodeConfig) -> Result<Node, StartError> {
        let name = NodeName::parse(&config.name).map_err(StartError::Name)?;
        let cookie = Cookie::new(config.cookie.clone()).map_err(StartError::Cookie)?;
        let address = config.listen.clone().unwrap_or_else(|| name.address().to_owned());
        let bind = |address: &str| -> std::io::Result<TcpListener> {
            let addr = address
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the host name has no address"))?;
            TcpListener::bind(addr)
        };
        let listener = bind(&address).map_err(|error| StartError::Bind { address: address.clone(), error })?;
        let listen_address = listener.local_addr().map_err(StartError::Io)?;
        let name = match (name.port(), &config.listen) {
            (0, None) => name.with_port(listen_address.port()),
            _ => name,
        };
        let creation = new_creation().map_err(StartError::Io)?;

        let poll = Poll::new().map_err(StartError::Io)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(StartError::Io)?;
        let (io, rx) = Io::new(waker);
        let registry =
            Arc::new(Registry::new(name.clone(), runtime.node(), io.clone(), config.outgoing_limit, config.max_frame));
        let local = krarup_runtime::dist::attach(runtime, name.as_str(), creation, registry.clone())
            .map_err(StartError::AlreadyStarted)?;
        let stats = Arc::new(Stats::default());
        let me = NodeId { name: name.clone(), creation };
        let reactor =
            Reactor::new(poll, listener, rx, io.clone(), registry.clone(), local, me, cookie, &config, stats.clone())
                .map_err(StartError::Io)?;
        let thread = std::thread::Builder::new()
            .name(format!("krarup-net {}", name.name()))
            .spawn(move || reactor.run())
            .map_err(StartError::Io)?;
        tracing::info!(node = %name, creation, "network node started");
        let inner = Inner {
            name,
            listen_address,
            creation,
            registry,
            io,
            stats,
            connect_timeout: config.connect_timeout,
            thread: Mutex::new(Some(thread)),
        };
        Ok(Node { inner: Arc::new(inner) })
    }

    /// This node's name, with the real port if it was started with port 0.
    pub fn name(&self) -> &str {
        self.inner.name.as_str()
    }

    /// The address the node listens on: the one in its name, or the one given to
    /// [`NodeConfig::listen`], with the real port.
    pub fn listen_address(&self) -> std::net::SocketAddr {
        self.inner.listen_address
    }

    /// This incarnation's number: it changes every time a node starts, so that Pids of an
    /// earlier run of a node with the same name are recognised as dead.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// Connects to node `node` (`name@host:port`) if it is not connected yet, and waits until it
    /// is (at most the connect timeout). Sends connect by themselves; this is for knowing.
    ///
    /// A connection that is up counts, as in Erlang's `net_kernel:connect_node`: if it was cut
    /// and this node has not noticed yet (no failed write, and less than the
    /// [heartbeat](crate::NodeConfig::heartbeat) bound of silence), this returns Ok at once, and
    /// the loss shows later as `NodeDown`, and as `Down` with `NoConnection` for the monitors
    /// across it. Watch the node ([`monitor_node`](Node::monitor_node)) to hear of it.
    ///
    /// # Errors
    /// A [`ConnectError`] saying why: a bad name, our own name, a refusal (wrong cookie or
    /// version, another node at that address), a timeout, or a node that has shut down.
    pub fn connect(&self, node: &str) -> Result<(), ConnectError> {
        let name = NodeName::parse(node).map_err(ConnectError::Name)?;
        if name == self.inner.name {
            return Err(ConnectError::OwnName);
        }
        let peer = self.inner.registry.peer(&name);
        match peer.outbox.state() {
            State::Up => return Ok(()),
            State::Closed => return Err(ConnectError::ShutDown),
            _ => {}
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner.io.notify(Command::ConnectWait(peer.id, tx));
        match rx.recv_timeout(self.inner.connect_timeout + std::time::Duration::from_secs(1)) {
            Ok(result) => result,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(ConnectError::Timeout),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(ConnectError::ShutDown),
        }
    }

    /// The nodes connected now.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .inner
            .registry
            .all()
            .iter()
            .filter(|peer| peer.outbox.state() == State::Up)
            .map(|peer| peer.name.to_string())
            .collect();
        nodes.sort();
        nodes
    }

    /// Process `pid` gets one [`NodeDown`] when the connection to `node` is lost, or at once if
    /// it cannot be made (this connects if need be): Erlang's `monitor_node(Node, true)`.
    ///
    /// # Errors
    /// [`ConnectError::Name`] for a bad name, [`ConnectError::OwnName`] for this node's.
    pub fn monitor_node(&self, pid: Pid, node: &str) -> Result<(), ConnectError> {
        let name = NodeName::parse(node).map_err(ConnectError::Name)?;
        if name == self.inner.name {
            return Err(ConnectError::OwnName);
        }
        let peer = self.inner.registry.peer(&name);
        self.inner.io.notify(Command::MonitorNode(peer.id, pid));
        Ok(())
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        let peers = self.inner.registry.all();
        let s = &self.inner.stats;
        NodeStats {
            connected: peers.iter().filter(|p| p.outbox.state() == State::Up).count(),
            bytes_in: s.bytes_in.load(Ordering::Relaxed),
            bytes_out: s.bytes_out.load(Ordering::Relaxed),
            frames_in: s.frames_in.load(Ordering::Relaxed),
            connections_closed: s.connections_closed.load(Ordering::Relaxed),
            bad_input: s.bad_input.load(Ordering::Relaxed),
            pending_bytes: peers.iter().map(|p| p.outbox.pending()).sum(),
        }
    }

    /// Stops the node: every connection is closed (links and monitors across them fire with
    /// `NoConnection`), nothing more is sent or accepted, and the I/O thread is joined. The
    /// runtime itself goes on, as a node no other node can reach.
    pub fn shutdown(&self) {
        self.inner.io.notify(Command::Shutdown);
        if let Some(thread) = self.inner.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// A fresh, nonzero incarnation number (0 is the runtime's "any incarnation").
fn new_creation() -> std::io::Result<u32> {
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
        let creation = u32::from_le_bytes(bytes);
        if creation != 0 {
            return Ok(creation);
        }
    }
}
