//! RPC stubs for krarup: "make message send and receive look like a function call".
//!
//! The [`service`] attribute turns a trait — the interface definition — into
//!
//! - the trait itself, which the server's state implements (methods may be `async`);
//! - a **client stub**, `{Trait}Client`: a typed handle around a [`Pid`](krarup_runtime::Pid) or a
//!   registered name (on this node or another), with one method per procedure whose future
//!   (awaited like an `async fn`'s: nothing is sent before it is polled) gives
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
//! the wrong shape) — and never hangs. Execution is at most once: a call that may be retried
//! carries a request id, a retry repeats it, and the server answers a repeat from its cache; any
//! other call is sent once (and needs neither). A call that times out while the server is alive
//! is not retried (it may still be running).
//!
//! # Malformed interfaces
//!
//! The attribute checks the interface and points at what it cannot turn into stubs. Each example
//! below fails to compile with the error quoted above it.
//!
//! A `#[cast]` has no reply, so it returns nothing:
//!
//! ```compile_fail
//! // error: a #[cast] procedure returns nothing: no reply is sent
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     #[cast]
//!     fn append(&mut self, line: String) -> usize;
//! }
//! ```
//!
//! A procedure works on the server's state: it takes `&mut self` first:
//!
//! ```compile_fail
//! // error: a procedure takes `&mut self` first: the server's state
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn get(&self) -> i64;
//! }
//! ```
//!
//! Arguments and results travel in messages: they are owned:
//!
//! ```compile_fail
//! // error: an argument travels in a message and cannot borrow: take an owned type (`String`, not `&str`)
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn lookup(&mut self, name: &str) -> Option<String>;
//! }
//! ```
//!
//! … and concrete:
//!
//! ```compile_fail
//! // error: a procedure cannot be generic: its arguments cross process and node boundaries as concrete types
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn put<T: serde::Serialize>(&mut self, value: T);
//! }
//! ```
//!
//! Each argument is a name and a type:
//!
//! ```compile_fail
//! // error: write each argument as `name: Type`
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn area(&mut self, (w, h): (f64, f64)) -> f64;
//! }
//! ```
//!
//! Only calls are retried, so only calls can be `#[idempotent]`:
//!
//! ```compile_fail
//! // error: #[idempotent] is for calls (they may be retried); a #[cast] is never retried
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     #[cast]
//!     #[idempotent]
//!     fn append(&mut self, line: String);
//! }
//! ```
//!
//! A procedure cannot take the name of a client stub method:
//!
//! ```compile_fail
//! // error: a procedure cannot be called `new`: the client stub has a method of that name
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn new(&mut self, name: String) -> u64;
//! }
//! ```
//!
//! … nor that of another call's deferred form:
//!
//! ```compile_fail
//! // error: a procedure cannot be called `start_run`: the client stub uses it for deferred calls of `run`
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     fn run(&mut self, job: u64) -> u64;
//!     fn start_run(&mut self, job: u64) -> u64;
//! }
//! ```
//!
//! A service trait holds procedures only:
//!
//! ```compile_fail
//! // error: a service trait holds only procedures (`fn` items)
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Service {
//!     type Key;
//!     fn get(&mut self, key: u64) -> Option<String>;
//! }
//! ```
//!
//! A service has at least one procedure, and is not generic:
//!
//! ```compile_fail
//! // error: a service needs at least one procedure
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Nothing {}
//! ```
//!
//! ```compile_fail
//! // error: a service trait cannot be generic
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Store<T> {
//!     fn get(&mut self, key: u64) -> Option<T>;
//! }
//! ```
//!
//! A result must be `Clone`, for the server's cache of recent replies (and arguments and results
//! serializable); here the compiler's own error says so, pointing at the type:
//!
//! ```compile_fail,E0277
//! // error[E0277]: the trait bound `Token: Clone` is not satisfied
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct Token(u64);
//!
//! #[krarup_rpc::service(krate = krarup_rpc)]
//! pub trait Tokens {
//!     fn issue(&mut self) -> Token;
//! }
//! ```
//!
//! The attribute's one argument says where this crate is:
//!
//! ```compile_fail
//! // error: unknown argument: the only one is `krate = path::to::krarup_rpc`
//! #[krarup_rpc::service(crate = krarup_rpc)]
//! pub trait Counter {
//!     fn get(&mut self) -> i64;
//! }
//! ```

mod calling;
mod client;
mod server;
mod wire;

pub use crate::calling::Calling;
pub use crate::client::{Client, Deferred, Retry, Target, DEFAULT_TIMEOUT};
pub use crate::server::{Incoming, ServerLoop, CLIENTS, PER_CLIENT};
pub use crate::wire::{Cast, Request, RequestId};
pub use krarup_macros::service;
pub use krarup_runtime::CallError;

/// What generated code uses; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use krarup_runtime::{spawn, CallError, Pid};
    pub use serde;
}
