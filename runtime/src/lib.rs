//! The krarup runtime: Erlang-style processes for Rust.
//!
//! A *process* is a future spawned on a [`Runtime`]. It has a [`Pid`] and a
//! mailbox that accepts messages of any type; [`send`] never blocks, and
//! [`recv`] and [`receive!`] take messages out selectively, by type,
//! pattern and guard, leaving the others in place — as in Erlang. Processes
//! are cheap (a few hundred bytes, well under a microsecond to spawn) and
//! run on a work-stealing scheduler with one worker thread per core.
//!
//! The increment server of every Erlang course:
//!
//! ```
//! use krarup_runtime::{recv, self_pid, spawn, Pid, Runtime};
//!
//! async fn server() {
//!     loop {
//!         let (from, n): (Pid, i64) = recv().await;
//!         from.send((self_pid(), n + 1));
//!     }
//! }
//!
//! let rt = Runtime::new();
//! let reply = rt.block_on(async {
//!     let server = spawn(server());
//!     server.send((self_pid(), 10i64));
//!     let (_from, n): (Pid, i64) = recv().await;
//!     n
//! });
//! assert_eq!(reply, 11);
//! ```
//!
//! # Where krarup differs from Erlang
//!
//! - Processes are cooperative: a process is only preempted at an
//!   `.await`. Receives count against a budget and yield when it is spent,
//!   but a loop that never awaits keeps its worker — and an exit signal,
//!   even `Kill`, ends such a process only at its next `.await` (one in a
//!   receive is ended at once). Put blocking or long computations in
//!   [`spawn_blocking`].
//! - Exit reasons are an enum ([`ExitReason`]), exit signals and `Down`s
//!   are typed messages ([`Exit`], [`Down`]), and a panic is a crash with
//!   reason `Panic(message)`. See the book's chapter "When processes fail".
//! - Messages are typed: `(Pid, i32)` and `(Pid, i64)` are different
//!   messages, and a receive for one leaves the other in the mailbox.
//!   [`mailbox_len`] and a `debug` event on receive timeouts help find such
//!   mismatches.
//! - Code outside processes (plain threads, other executors) talks to
//!   processes through a [`Mailbox`], which has a Pid of its own.
//!
//! # Crate layout
//!
//! `sync` is the only door to synchronization (std/parking_lot, or loom
//! under `--cfg loom`); `slot` holds the state-word protocol every send,
//! wake and receive goes through; `scheduler` runs processes; `receive`
//! scans mailboxes. Each module's documentation states the invariant it
//! keeps.
#![deny(missing_docs)]

mod any;
mod awaits;
mod blocking;
mod call;
mod call_monitors;
pub mod dist;
mod envelope;
mod error;
mod exit;
mod external;
pub mod gen_server;
mod link;
mod macros;
mod monitor;
mod node;
mod one_of;
pub mod pg;
mod pid;
mod process;
mod queue;
mod receive;
mod refs;
mod registry;
mod runtime;
mod scheduler;
mod send;
mod signal;
mod slot;
pub mod supervisor;
mod sync;
mod table;
mod task;
mod timer;
mod waker;

pub use crate::any::{try_recv_any, AnyMessage};
pub use crate::blocking::{spawn_blocking, BlockingTask};
pub use crate::call::{
    call, call_local, call_named_at, call_start, call_start_named_at, Call, CallError, CallWait, Calling, PendingCall,
    ReplyTo,
};
pub use crate::error::{RegisterError, SendError, UnregisterError};
pub use crate::exit::{ExitReason, IntoExitReason};
pub use crate::external::{Mailbox, MailboxRecv, MailboxRecvTimeout};
pub use crate::gen_server::{CallReply, Flow, GenServer, ServerRef};
pub use crate::link::{link, links, spawn_link, unlink};
pub use crate::monitor::{
    demonitor, monitor, monitor_name, monitor_name_at, monitored_by, spawn_monitor, Down, MonitorRef,
};
pub use crate::pid::Pid;
pub use crate::process::{spawn, yield_now, YieldNow};
pub use crate::receive::{recv, recv_local, recv_timeout, try_recv, Recv, RecvTimeout};
pub use crate::registry::{register, registered, unregister, whereis};
pub use crate::runtime::{Builder, Runtime, RuntimeStats};
pub use crate::send::{is_alive, mailbox_len, self_pid, send, send_local, send_named, send_named_at, Message};
pub use crate::signal::{exit, trap_exit, Exit};
pub use crate::supervisor::{ChildSpec, Restart, Shutdown, Strategy, SupervisorRef, SupervisorSpec};
pub use crate::timer::send_after::{send_after, TimerRef};
pub use crate::timer::sleep::{sleep, sleep_until, Sleep};

/// Not public API: what `receive!` expands to.
#[doc(hidden)]
pub mod __private {
    pub use crate::envelope::Envelope;
    pub use crate::one_of::{recv_one_of, OneOf, RecvOneOf};
    pub use crate::receive::{receive_with, ReceiveFuture};
    pub use crate::scheduler::contention::Contention;

    /// Moves the value out if the message is a `T` (any message for `AnyMessage`).
    #[inline]
    pub fn take<T: Send + 'static>(env: &mut Envelope) -> Option<T> {
        crate::any::take::<T>(env)
    }

    /// Puts a value back after a failed pattern or guard.
    #[inline]
    pub fn put<T: Send + 'static>(env: &mut Envelope, value: T) {
        crate::any::put(env, value);
    }

    /// The value of a message already known to be a `T`.
    #[inline]
    pub fn unwrap<T: Send + 'static>(env: Envelope) -> T {
        crate::any::unwrap::<T>(env)
    }

    /// A clause's type, for choosing (by autoref) whether a message from
    /// another node can be decoded as it: `(&&Probe::<T>::new()).decode(env)`
    /// resolves to [`Decodes`] when `T` is serializable, else to
    /// [`Local`], which leaves the message alone.
    pub struct Probe<T>(core::marker::PhantomData<fn() -> T>);

    impl<T> Probe<T> {
        /// The probe of type `T`.
        #[inline]
        pub fn new() -> Probe<T> {
            Probe(core::marker::PhantomData)
        }
    }

    impl<T> core::fmt::Debug for Probe<T> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("Probe")
        }
    }

    impl<T> Default for Probe<T> {
        fn default() -> Self {
            Probe::new()
        }
    }

    /// For a serializable clause type: decodes a remote message of its tag.
    pub trait Decodes {
        /// False if the message had the tag but not the bytes: drop it.
        fn decode(&self, env: &mut Envelope) -> bool;
    }

    impl<T: crate::Message> Decodes for &Probe<T> {
        #[inline]
        fn decode(&self, env: &mut Envelope) -> bool {
            crate::dist::materialize::<T>(env) != crate::dist::Materialized::Garbage
        }
    }

    /// For any other clause type: nothing to decode.
    pub trait Local {
        /// Always true.
        fn decode(&self, env: &mut Envelope) -> bool;
    }

    impl<T> Local for Probe<T> {
        #[inline]
        fn decode(&self, _: &mut Envelope) -> bool {
            true
        }
    }

    /// What a matcher returns for a message to drop (see `receive::DISCARD`).
    pub const DISCARD: usize = crate::receive::DISCARD;
}

/// loom models of the runtime's synchronization (`--cfg loom`, see `models/mod.rs`).
#[cfg(all(test, loom))]
mod models;
