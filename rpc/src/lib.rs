//! RPC stubs for krarup: "make message send and receive look like a function call".
//!
//! The [`service`] attribute turns a trait — the interface definition — into
//!
//! - the trait itself, which the server's state implements (methods may be `async`);
//! - a **client stub**, `{Trait}Client`: a typed handle around a [`Pid`](krarup_runtime::Pid) or a
//!   registered name (on this node or another), with one `async` method per procedure returning
//!   `Result<T, CallError>`, a `start_{method}` per procedure for a deferred call (start now,
//!   [`wait`](Deferred::wait) later, several in flight), and a plain method per one-way procedure;
//! - a **server stub**, `{Trait}Server::serve(state)`: the dispatch loop, a future to spawn as a
//!   process (register it, supervise it, link to it like any other).
//!
//! ```
//! use krarup_runtime::Runtime;
//!
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Counter {
//!     /// Adds `by` and returns the new value.
//!     fn inc(&mut self, by: i64) -> i64;
//!     /// The value (safe to retry).
//!     #[idempotent]
//!     fn get(&mut self) -> i64;
//!     /// Back to zero; no reply awaited.
//!     #[cast]
//!     fn reset(&mut self);
//! }
//!
//! struct Total(i64);
//!
//! impl Counter for Total {
//!     fn inc(&mut self, by: i64) -> i64 {
//!         self.0 += by;
//!         self.0
//!     }
//!     fn get(&mut self) -> i64 {
//!         self.0
//!     }
//!     fn reset(&mut self) {
//!         self.0 = 0;
//!     }
//! }
//!
//! let rt = Runtime::new();
//! let counter = CounterClient::new(rt.spawn(CounterServer::serve(Total(10))));
//! let (eleven, zero) = rt.block_on(async move {
//!     let eleven = counter.inc(1).await;
//!     counter.reset();
//!     (eleven, counter.get().await)
//! });
//! assert_eq!((eleven, zero), (Ok(11), Ok(0)));
//! ```
//!
//! Procedure attributes: `#[cast]` (one-way: no reply, returns `()`), `#[idempotent]` (retried
//! after a lost connection if the client has a [`Retry`] policy), `#[stop]` (the server stops
//! after answering it). Argument and return types must be serializable (they may cross nodes);
//! return types must also be `Clone` (the server keeps recent replies to answer a retried call
//! without running it twice). Outside the `krarup` facade, say where this crate is:
//! `#[service(krate = krarup_rpc)]`.
//!
//! Failure semantics (the seeds' "RPC semantics in the presence of failures"): a call returns the
//! reply, or [`CallError`] — `Timeout`, `NoProc` (no server), `NoConnection` (its node became
//! unreachable), `Exited(reason)` (the server died during the call), `Undecodable` (a reply of
//! the wrong shape) — and never hangs. Execution is at most once: requests carry an id, a retry
//! repeats it, and the server answers a repeat from its cache. A call that times out while the
//! server is alive is not retried (it may still be running).

mod client;
mod server;
mod wire;

pub use crate::client::{Client, Deferred, Retry, Target, DEFAULT_TIMEOUT};
pub use crate::server::{Incoming, ServerLoop, CLIENTS, PER_CLIENT};
pub use crate::wire::{Cast, Request, RequestId, Resolve, Resolved};
pub use krarup_macros::service;
pub use krarup_runtime::CallError;

/// What generated code uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use krarup_runtime::{spawn, CallError, Pid};
    pub use serde;
}
