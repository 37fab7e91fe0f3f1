//! The krarup network node: `send`, `receive`, links, monitors and exit signals across TCP.
//!
//! [`Node::start`] makes a [`Runtime`](krarup_runtime::Runtime) a node named `name@host:port`.
//! From then on a Pid of a remote process works like a local one: `send` to it, put it in a
//! message, link to it, monitor it. Nodes connect on first use, authenticate each other with a
//! shared cookie (HMAC-SHA256 challenge-response: the cookie never crosses the wire), keep one
//! TCP connection per pair (so messages between two processes arrive in the order sent), and
//! notice a silent peer by heartbeats. When a connection is lost, every link and monitor across
//! it fires with `NoConnection`, and the next send connects again.
//!
//! How it is built, one file per idea:
//!
//! - `name.rs`: node names; `frame.rs`: length-prefixed frames, checked before buffering;
//!   `handshake.rs`: the authenticated handshake; `proto.rs`: the distribution frames.
//! - `outbox.rs`: a peer's outgoing buffer with backpressure, shared by senders and the I/O
//!   thread; `peer.rs`: one remote node as senders see it (the runtime's `Route`), which
//!   encodes into its outbox; `registry.rs`: the peers by name.
//! - `sync.rs`: every lock and atomic, loom's under `--cfg loom` for the outbox's models.
//! - `io.rs`: the I/O thread (mio), which owns every socket.
//! - `node.rs`: the [`Node`] handle.
//!
//! Deliberate differences from Erlang's distribution: no EPMD (a node's name carries its port),
//! no transitive mesh (a node connects to a third node only when it first sends there), and
//! names are compared as written (`b@localhost:9101` is not `b@127.0.0.1:9101`).
#![forbid(unsafe_code)]

mod config;
mod frame;
mod handshake;
mod io;
mod name;
mod node;
mod outbox;
mod peer;
mod proto;
mod registry;
mod sync;

pub use crate::config::{ConnectError, NodeConfig, StartError};
pub use crate::handshake::CookieError;
pub use crate::name::NameError;
pub use crate::node::{Node, NodeDown, NodeStats};

/// loom models of the outbox protocol (`--cfg loom`, see `models/mod.rs`).
#[cfg(all(test, loom))]
mod models;
