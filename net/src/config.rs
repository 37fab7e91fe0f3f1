//! What a node is started with, and the errors of starting and connecting.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::handshake::CookieError;
use crate::name::NameError;

/// How a [`Node`](crate::Node) is started: its name, its cookie, and limits.
///
/// ```
/// use std::time::Duration;
/// use krarup_net::NodeConfig;
///
/// let config = NodeConfig::new("a@127.0.0.1:0", "secret").heartbeat(Duration::from_secs(5));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct NodeConfig {
    pub(crate) name: String,
    pub(crate) cookie: Vec<u8>,
    pub(crate) heartbeat: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_frame: u32,
    pub(crate) outgoing_limit: usize,
    pub(crate) spin: Duration,
    pub(crate) listen: Option<String>,
}

impl NodeConfig {
    /// A node named `name` (`name@host:port`; port 0 picks a free port, and the node's
    /// [`name`](crate::Node::name) then reports the real one) that talks to nodes started with
    /// the same `cookie`.
    pub fn new(name: impl Into<String>, cookie: impl Into<Vec<u8>>) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            cookie: cookie.into(),
            heartbeat: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_frame: 16 << 20,
            outgoing_limit: 4 << 20,
            spin: Duration::from_micros(200),
            listen: None,
        }
    }

    /// The bound within which a silent peer is detected (default 10 s; Erlang's `net_ticktime`
    /// is 60 s). An idle connection carries a tick every quarter of it; a peer from which nothing
    /// arrived for three quarters of it is disconnected, and every link and monitor across the
    /// connection fires with `NoConnection`. Clamped to at least 20 ms.
    pub fn heartbeat(mut self, bound: Duration) -> NodeConfig {
        self.heartbeat = bound.max(Duration::from_millis(20));
        self
    }

    /// How long connecting and the handshake may take together (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> NodeConfig {
        self.connect_timeout = timeout;
        self
    }

    /// The largest frame (one message, encoded) sent or accepted, in bytes (default 16 MiB). A
    /// peer announcing a larger one is disconnected before anything is allocated for it; a
    /// larger message is not sent (and is counted as unroutable).
    pub fn max_frame(mut self, bytes: u32) -> NodeConfig {
        self.max_frame = bytes.max(64);
        self
    }

    /// Per connection, how many bytes may wait to be written before senders are held back
    /// (default 4 MiB). Past it, a sending process pauses at its next receive until half of it
    /// is written (Erlang's busy port); past four times it, `send` itself blocks the sending
    /// thread (the last resort against a sender that never waits).
    pub fn outgoing_limit(mut self, bytes: usize) -> NodeConfig {
        self.outgoing_limit = bytes.max(1024);
        self
    }

    /// Listen on `address` (`host:port`, port 0 for any free one) instead of the address in the
    /// node's name. The name stays what other nodes dial and what they must find at the other
    /// end: use this when the name's address reaches this node through something else (a proxy,
    /// a NAT, a container's published port). See [`Node::listen_address`](crate::Node::listen_address).
    pub fn listen(mut self, address: impl Into<String>) -> NodeConfig {
        self.listen = Some(address.into());
        self
    }

    /// How long the I/O thread keeps polling after its last piece of work before it sleeps in
    /// the kernel (default 200 µs), yielding the core between polls. Waking a sleeping thread
    /// costs tens of microseconds, so a little spinning keeps round trips short (W4a: ~14 µs
    /// instead of ~130 µs); `Duration::ZERO` never spins. A thread that sees the cores
    /// oversubscribed (yields that let other threads run for a time slice) does not spin for the
    /// next 50 ms: there, a sleeping thread is woken sooner than a spinning one gets its core back.
    pub fn spin(mut self, spin: Duration) -> NodeConfig {
        self.spin = spin;
        self
    }
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("cookie", &"..")
            .field("heartbeat", &self.heartbeat)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame", &self.max_frame)
            .field("outgoing_limit", &self.outgoing_limit)
            .field("spin", &self.spin)
            .field("listen", &self.listen)
            .finish()
    }
}

/// Why a node could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The name is not `name@host:port`.
    Name(NameError),
    /// The cookie is unusable.
    Cookie(CookieError),
    /// The listening socket could not be bound (or set up).
    Bind {
        /// The address tried.
        address: String,
        /// The operating system's error.
        error: io::Error,
    },
    /// The runtime is already a node.
    AlreadyStarted(krarup_runtime::dist::AttachError),
    /// The I/O thread or its poller could not be created.
    Io(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Name(e) => write!(f, "cannot start the node: {e}"),
            StartError::Cookie(e) => write!(f, "cannot start the node: {e}"),
            StartError::Bind { address, error } => write!(f, "cannot listen on {address}: {error}"),
            StartError::AlreadyStarted(e) => write!(f, "cannot start the node: {e}"),
            StartError::Io(e) => write!(f, "cannot start the node's I/O thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Name(e) => Some(e),
            StartError::Cookie(e) => Some(e),
            StartError::Bind { error, .. } | StartError::Io(error) => Some(error),
            StartError::AlreadyStarted(e) => Some(e),
        }
    }
}

/// Why [`Node::connect`](crate::Node::connect) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The name is not `name@host:port`.
    Name(NameError),
    /// A node does not connect to itself.
    OwnName,
    /// The connection could not be made or was refused; the reason says why (e.g. a wrong
    /// cookie, another protocol version, a node answering with another name).
    Failed(String),
    /// No answer within the connect timeout.
    Timeout,
    /// This node has shut down.
    ShutDown,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Name(e) => write!(f, "cannot connect: {e}"),
            ConnectError::OwnName => f.write_str("cannot connect: that is this node's own name"),
            ConnectError::Failed(reason) => write!(f, "connection failed: {reason}"),
            ConnectError::Timeout => f.write_str("connection timed out"),
            ConnectError::ShutDown => f.write_str("this node has shut down"),
        }
    }
}

impl std::error::Error for ConnectError {}
