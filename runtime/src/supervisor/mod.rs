//! `Supervisor`: Erlang's `supervisor` — a process that starts child
//! processes, watches them, and restarts them by a strategy when they exit.
//! Supervisors under supervisors make a *supervision tree*: workers are
//! fail-stop processes that "let it crash", and the tree puts them back.
//!
//! A supervisor is described by a [`SupervisorSpec`] (a [`Strategy`], a
//! restart intensity and an ordered list of [`ChildSpec`]s) and started with
//! [`start_link`] or [`start`]; the [`SupervisorRef`] they return manages
//! it afterwards (dynamic children, `which_children`, `stop`).
//!
//! # Protocol
//!
//! 1. **Start.** [`start_link`] spawns the supervisor process linked to the
//!    caller — its *parent* — and monitored by it (both before the process
//!    first runs), then waits for the supervisor's acknowledgement or the
//!    monitor's `Down`, as `gen_server::start_link` does. [`start`] is the
//!    same without the link; such a supervisor has no parent.
//! 2. **Init.** The supervisor traps exits and starts its children in
//!    order, each linked to it: a process child with `spawn_link`, a server
//!    child with `gen_server::start_link` (which waits for its `init`), a
//!    nested supervisor with [`start_link`] (which waits for its children).
//!    If one fails to start (its server's `init` fails, or the start
//!    function panics), the children already started are shut down in
//!    reverse order (step 6) and the supervisor exits with
//!    `Shutdown("failed to start child ...")`, the starter's `Err`.
//!    Otherwise it acknowledges the start and enters its loop.
//! 3. **Loop.** It takes the oldest message that is an [`Exit`](crate::Exit) (step 4),
//!    a request from a [`SupervisorRef`] (a [`call_local`](crate::call_local), answered with
//!    [`reply_local`](crate::ReplyTo::reply_local)), a retry of a failed
//!    restart (step 5), or a stop request (step 7). Anything else is
//!    dropped with a `warn` event.
//! 4. **Exit.** An `Exit` from the parent: step 7, then exit with its
//!    reason. From a child: report it with `tracing::error!` (Erlang's crash
//!    report: supervisor, child id, child pid, reason) unless the reason is
//!    `Normal` or `Shutdown(_)`, then decide by the child's [`Restart`]:
//!    `Permanent` — restart (step 5); `Transient` — restart unless the reason
//!    is `Normal` or `Shutdown(_)`, else keep the spec, stopped; `Temporary` —
//!    forget the child. An `Exit` from any other process is ignored (a child
//!    already replaced, a server whose start failed).
//! 5. **Restart.** The restart is recorded with its time; restarts older
//!    than the intensity's `period` are forgotten. If more than
//!    `max_restarts` remain, the supervisor gives up: `tracing::error!`,
//!    step 7, exit with `Shutdown("reached max restart intensity")`.
//!    Otherwise the strategy: `OneForOne` starts the child again;
//!    `OneForAll` shuts down every other running child in reverse start
//!    order (step 6) and starts all children in order; `RestForOne` does
//!    that for the children after the one that exited, then starts it and
//!    them in order. (Temporary children that a strategy shuts down are
//!    forgotten, not restarted.) If a start fails, that child is marked
//!    restarting and the supervisor sends itself a retry, handled in its
//!    turn (step 3) as a new restart of that child — counted, so a child
//!    that cannot start ends in the intensity limit.
//! 6. **Shutting a child down.** Monitor it, unlink it, and look for an
//!    `Exit` from it already in the mailbox: one there means it has died on
//!    its own; it is taken out, and the `Down` awaited. Otherwise by its
//!    [`Shutdown`]: `BrutalKill` sends `exit(child, Kill)`; `Timeout(d)`
//!    sends `exit(child, Shutdown(None))`, waits up to `d` for the `Down`,
//!    then sends `Kill` and waits for it; `Infinity` sends
//!    `Shutdown(None)` and waits. An unexpected reason (not `Shutdown(None)`,
//!    resp. `Killed` for `BrutalKill`; `Normal` and `Shutdown(_)` are fine
//!    for a child that is not permanent) is reported with `tracing::error!`.
//!    Afterwards no `Exit` from that child can arrive: a signal through a
//!    link is decided under the supervisor's lock, and ignored once the
//!    link is gone (`signal.rs`, rule 1); one decided before the unlink was
//!    already in the mailbox, and has been taken out.
//! 7. **Termination.** Every running child is shut down (step 6) in
//!    reverse start order; then the supervisor exits.
//!
//! # Where this differs from Erlang
//!
//! - Child specs hold closures, so requests are local: a supervisor can be
//!   managed only from its own OS process.
//! - Requests wait as long as the supervisor takes (Erlang's `infinity`),
//!   but fail at once if it is not running or dies meanwhile (they are
//!   calls, built on monitors): every [`SupervisorRef`] method returns a
//!   `Result`, [`SupervisorRef::which_children`] included.
//! - A permanent child that exits with `Normal` or `Shutdown(_)` is
//!   restarted without a crash report (Erlang reports it).
//! - Not provided: `simple_one_for_one`, `ignore` from a start function,
//!   significant children and `auto_shutdown`, `count_children`,
//!   `get_childspec`, registering the supervisor under a name at start
//!   (register its Pid afterwards with [`register`](crate::register)).
//! - As in Erlang, a `OneForAll` or `RestForOne` restart also starts the
//!   affected children that were stopped (by
//!   [`SupervisorRef::terminate_child`], or a transient child's normal exit).
//! - As in Erlang, a child must not call its own supervisor while the
//!   supervisor is starting it (from a server's `init`): the supervisor is
//!   waiting for that start, and the call waits for the supervisor.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use krarup_runtime::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
//! use krarup_runtime::{exit, monitor, recv, recv_timeout, Down, ExitReason, Runtime};
//!
//! async fn worker() {
//!     // Waits for work that never comes; the supervisor ends it.
//!     let _ = recv_timeout::<u32>(Duration::from_secs(60)).await;
//! }
//!
//! let rt = Runtime::new();
//! rt.block_on(async {
//!     let spec = SupervisorSpec::new(Strategy::OneForOne)
//!         .child(ChildSpec::process("a", worker))
//!         .child(ChildSpec::process("b", worker));
//!     let sup = supervisor::start_link(spec).await.unwrap();
//!     let before = sup.which_children().await.unwrap();
//!
//!     // Let b crash: the supervisor starts a new b; a is untouched.
//!     let b = before[1].pid.unwrap();
//!     let watch = monitor(b);
//!     exit(b, ExitReason::Kill);
//!     assert_eq!(recv::<Down>().await.reference, watch);
//!     let after = sup.which_children().await.unwrap();
//!     assert_eq!(after[0].pid, before[0].pid);
//!     assert!(after[1].pid.is_some() && after[1].pid != before[1].pid);
//!
//!     sup.stop(ExitReason::Normal, Duration::from_secs(5)).await.unwrap();
//! });
//! ```
//!
//! The files: `spec.rs` (what to start and how), `handle.rs` (starting a
//! supervisor, and the requests of [`SupervisorRef`]), `errors.rs`,
//! `process.rs` (the supervisor process: steps 2 to 7).

mod errors;
mod handle;
mod process;
mod spec;

pub use self::errors::{ChildError, StartChildError};
pub use self::handle::{start, start_link, ChildInfo, SupervisorRef};
pub use self::spec::{ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
