//! krarup: Erlang-style processes, mailboxes and selective receive for Rust.
//!
//! This facade re-exports the runtime ([`krarup_runtime`]), the network node
//! ([`net`]) and the RPC stubs ([`rpc`], [`service`]). Most programs need only the
//! [`prelude`], and [`net::Node`] to be a node of a network.
//!
//! ```
//! use krarup::prelude::*;
//!
//! let rt = Runtime::new();
//! let reply = rt.block_on(async {
//!     let server = spawn(async {
//!         let (from, n): (Pid, i64) = recv().await;
//!         from.send((self_pid(), n + 1));
//!     });
//!     server.send((self_pid(), 10i64));
//!     let (_, n): (Pid, i64) = recv().await;
//!     n
//! });
//! assert_eq!(reply, 11);
//! ```
#![deny(missing_docs)]

pub use krarup_runtime::*;

/// The network node: [`Node::start`](net::Node::start) makes a runtime the
/// node `name@host:port`, and from then on `send`, links, monitors and
/// [`send_named_at`] reach processes of other nodes as they reach local ones.
pub use krarup_net as net;

/// RPC stubs: [`service`] turns a trait into a typed client handle and a
/// server process (see [`rpc`]).
pub use krarup_rpc as rpc;
pub use krarup_rpc::service;

/// What most krarup programs use, in one import.
pub mod prelude {
    pub use krarup_runtime::gen_server::{self, CallReply, Flow, GenServer, ServerRef};
    pub use krarup_runtime::{
        call, call_local, demonitor, exit, link, monitor, monitor_name, receive, recv, recv_local, recv_timeout,
        register, self_pid, send, send_after, send_local, send_named, send_named_at, sleep, spawn, spawn_blocking,
        spawn_link, spawn_monitor, trap_exit, try_recv, unlink, unregister, whereis, yield_now, AnyMessage, CallError,
        Down, Exit, ExitReason, Mailbox, Message, MonitorRef, Pid, ReplyTo, Runtime,
    };
}
