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
//! 3. **Loop.** It takes the oldest message that is an [`Exit`] (step 4),
//!    a request from a [`SupervisorRef`] (a [`call_local`], answered with
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

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::any::AnyMessage;
use crate::call::{call_local, Call, CallError};
use crate::exit::{panic_message, ExitReason, IntoExitReason};
use crate::gen_server::{self, GenServer};
use crate::link::{add_link, spawn_link, unlink};
use crate::monitor::{demonitor, monitor, new_reference, watch, Down, MonitorRef};
use crate::pid::Pid;
use crate::scheduler::worker::with_worker;
use crate::send::self_pid;
use crate::signal::{exit, trap_exit, Exit};
use crate::sync::global::Arc;

/// The exit reason of a supervisor that gave up (step 5 of the module docs).
const INTENSITY_REASON: &str = "reached max restart intensity";

/// What a child's start function returns: the child's Pid, linked to the
/// calling supervisor, or why it did not start.
type StartFuture = Pin<Box<dyn Future<Output = Result<Pid, ExitReason>> + Send>>;

/// A child's start function; called in the supervisor process.
type StartFn = Arc<dyn Fn() -> StartFuture + Send + Sync>;

/// Which children a supervisor restarts when one of them exits and has to
/// be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Restart only that child (Erlang's `one_for_one`).
    OneForOne,
    /// Shut down all other children (reverse start order), then start all
    /// children again in order (`one_for_all`): for children that cannot
    /// work without each other.
    OneForAll,
    /// Shut down the children started after it (reverse order), then start
    /// it and them again in order (`rest_for_one`): for children that depend
    /// on the ones started before them.
    RestForOne,
}

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Always (the default).
    #[default]
    Permanent,
    /// Only if it exits abnormally: not with `Normal` or `Shutdown(_)`.
    Transient,
    /// Never; the supervisor forgets the child when it exits.
    Temporary,
}

/// How a supervisor stops a child (when shutting down, restarting its
/// siblings, or for [`SupervisorRef::terminate_child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// `exit(child, Kill)` at once: the child cannot clean up.
    BrutalKill,
    /// `exit(child, Shutdown(None))`, then `Kill` if it has not exited
    /// within the duration (a child that traps exits can clean up first).
    Timeout(Duration),
    /// `exit(child, Shutdown(None))`, and wait as long as it takes (the
    /// default for nested supervisors, which shut down their own children
    /// first).
    Infinity,
}

/// How to start one child, and how to treat it: Erlang's child spec.
///
/// Built with [`ChildSpec::process`], [`ChildSpec::server`] or
/// [`ChildSpec::supervisor`], then adjusted with [`ChildSpec::restart`] and
/// [`ChildSpec::shutdown`]. Cloning is cheap (the start function is shared).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::supervisor::{ChildSpec, Restart, Shutdown};
///
/// async fn cache() {}
///
/// let spec = ChildSpec::process("cache", cache)
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_millis(500)));
/// assert_eq!(spec.id(), "cache");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    id: String,
    start: StartFn,
    restart: Restart,
    shutdown: Shutdown,
    is_supervisor: bool,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("is_supervisor", &self.is_supervisor)
            .finish_non_exhaustive()
    }
}

/// The default [`Shutdown`] of a worker (Erlang's 5000 ms).
const WORKER_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

impl ChildSpec {
    /// A plain process: each start calls `start()` and spawns the future it
    /// returns, linked to the supervisor (`spawn_link`). Its output is its
    /// exit reason, as for any process. Such a start cannot fail.
    ///
    /// `start` runs in the supervisor process, once per start; the future
    /// runs in the child. Default restart `Permanent`, shutdown
    /// `Timeout(5 s)`.
    ///
    /// The start is over once the process is spawned, before it first
    /// runs: an exit signal that reaches it before it calls
    /// [`trap_exit`] ends it. A child that must trap exits
    /// from the start (to clean up on shutdown) is better written as a
    /// [`ChildSpec::server`], whose `init` runs before its start is over.
    pub fn process<F, Fut>(id: impl Into<String>, start: F) -> ChildSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let start: StartFn = Arc::new(move || {
            let future = start();
            Box::pin(async move { Ok(spawn_link(future)) })
        });
        ChildSpec::new(id.into(), start, WORKER_SHUTDOWN, false)
    }

    /// A [`GenServer`]: each start runs `gen_server::start_link(make())`,
    /// which waits for the server's `init`; an `init` error is a failed
    /// start. Default restart `Permanent`, shutdown `Timeout(5 s)`.
    ///
    /// The server's parent is the supervisor: a server that traps exits
    /// stops through `terminate` when the supervisor shuts it down.
    pub fn server<S: GenServer>(id: impl Into<String>, make: impl Fn() -> S + Send + Sync + 'static) -> ChildSpec {
        let start: StartFn = Arc::new(move || {
            let server = make();
            Box::pin(async move { gen_server::start_link(server).await.map(|server| server.pid()) })
        });
        ChildSpec::new(id.into(), start, WORKER_SHUTDOWN, false)
    }

    /// A nested supervisor: each start runs [`start_link`]`(spec())`, which
    /// waits until all of its children have started. Default restart
    /// `Permanent`, shutdown `Infinity` (it shuts its own children down
    /// first, each within its own shutdown).
    pub fn supervisor(id: impl Into<String>, spec: impl Fn() -> SupervisorSpec + Send + Sync + 'static) -> ChildSpec {
        let start: StartFn = Arc::new(move || {
            let spec = spec();
            Box::pin(async move { start_link(spec).await.map(|supervisor| supervisor.pid()) })
        });
        ChildSpec::new(id.into(), start, Shutdown::Infinity, true)
    }

    fn new(id: String, start: StartFn, shutdown: Shutdown, is_supervisor: bool) -> ChildSpec {
        ChildSpec { id, start, restart: Restart::Permanent, shutdown, is_supervisor }
    }

    /// Sets when the child is restarted (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped (default `Timeout(5 s)` for workers,
    /// `Infinity` for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> ChildSpec {
        self.shutdown = shutdown;
        self
    }

    /// The child's id, unique among its supervisor's children.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A supervisor's configuration: strategy, restart intensity, children.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::supervisor::{ChildSpec, Strategy, SupervisorSpec};
///
/// async fn worker() {}
///
/// // At most 10 restarts in any 60 s, or the supervisor gives up.
/// let spec = SupervisorSpec::new(Strategy::RestForOne)
///     .intensity(10, Duration::from_secs(60))
///     .child(ChildSpec::process("db", worker))
///     .child(ChildSpec::process("web", worker));
/// assert_eq!(spec.children().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A spec with no children and the default intensity: at most 3
    /// restarts in 5 seconds (Erlang's defaults).
    pub fn new(strategy: Strategy) -> SupervisorSpec {
        SupervisorSpec { strategy, max_restarts: 3, period: Duration::from_secs(5), children: Vec::new() }
    }

    /// Sets the restart intensity: if more than `max_restarts` restarts
    /// happen within any `period`, the supervisor shuts down its children
    /// and exits with `Shutdown("reached max restart intensity")`, leaving
    /// the problem to its own supervisor.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> SupervisorSpec {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, spec: ChildSpec) -> SupervisorSpec {
        self.children.push(spec);
        self
    }

    /// The children, in start order.
    pub fn children(&self) -> &[ChildSpec] {
        &self.children
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
}

/// One child, as [`SupervisorRef::which_children`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// Its id.
    pub id: String,
    /// Its process, or None if it is not running (stopped, or being
    /// restarted after a failed start).
    pub pid: Option<Pid>,
    /// Its restart type.
    pub restart: Restart,
    /// Whether it is a supervisor (from [`ChildSpec::supervisor`]).
    pub is_supervisor: bool,
}

/// Why [`SupervisorRef::start_child`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartChildError {
    /// A child with that id is running.
    AlreadyStarted {
        /// The id.
        id: String,
        /// The running child.
        pid: Pid,
    },
    /// A child with that id exists but is not running: restart or delete it.
    AlreadyPresent(String),
    /// The child's start failed with this reason; its spec was not kept.
    Failed {
        /// The id.
        id: String,
        /// Why it did not start.
        reason: ExitReason,
    },
    /// The supervisor is not running, or exited during the request.
    Call(CallError),
}

impl fmt::Display for StartChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartChildError::AlreadyStarted { id, pid } => write!(f, "child {id:?} is already running as {pid}"),
            StartChildError::AlreadyPresent(id) => {
                write!(f, "child {id:?} already exists and is stopped; restart or delete it")
            }
            StartChildError::Failed { id, reason } => write!(f, "child {id:?} failed to start ({reason})"),
            StartChildError::Call(e) => write!(f, "the supervisor did not answer ({e})"),
        }
    }
}

impl std::error::Error for StartChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartChildError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`SupervisorRef::terminate_child`], [`SupervisorRef::restart_child`]
/// or [`SupervisorRef::delete_child`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildError {
    /// The supervisor has no child with that id.
    NotFound(String),
    /// The child is running (restart and delete need a stopped child).
    Running(String),
    /// The child is being restarted after a failed start.
    Restarting(String),
    /// Restarting the child failed with this reason; it stays stopped.
    Failed {
        /// The id.
        id: String,
        /// Why it did not start.
        reason: ExitReason,
    },
    /// The supervisor is not running, or exited during the request.
    Call(CallError),
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::NotFound(id) => write!(f, "the supervisor has no child {id:?}"),
            ChildError::Running(id) => write!(f, "child {id:?} is running; terminate it first"),
            ChildError::Restarting(id) => write!(f, "child {id:?} is being restarted"),
            ChildError::Failed { id, reason } => write!(f, "child {id:?} failed to start ({reason})"),
            ChildError::Call(e) => write!(f, "the supervisor did not answer ({e})"),
        }
    }
}

impl std::error::Error for ChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChildError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// The supervisor's acknowledgement to its starter (step 2).
struct Started {
    supervisor: Pid,
    result: Result<(), ExitReason>,
}

/// Requests (step 3), one type per operation so each has its reply type.
struct StartChild(ChildSpec);
struct TerminateChild(String);
struct RestartChild(String);
struct DeleteChild(String);
struct WhichChildren;

/// Asks the supervisor to shut down and exit with this reason.
struct Stop(ExitReason);

/// A failed restart of this child, to retry (step 5).
struct TryAgain(String);

/// Starts a supervisor linked to the calling process (its parent) and
/// returns once all of its children have started, in order.
///
/// If the parent exits, the supervisor shuts its children down (reverse
/// start order) and exits with the same reason; if the supervisor exits
/// abnormally, the parent gets the exit signal (and exits, unless it traps
/// exits).
///
/// # Errors
/// A child failed to start (`Shutdown("failed to start child \"id\": ...")`;
/// the children already started have been shut down, and the supervisor has
/// exited with that reason — a caller that does not trap exits exits too, as
/// in Erlang), or two children share an id (`Error`, nothing started).
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
/// use krarup_runtime::{recv, self_pid, Pid, Runtime};
///
/// let rt = Runtime::new();
/// let ids = rt.block_on(async {
///     let me = self_pid();
///     let spec = SupervisorSpec::new(Strategy::OneForAll).child(ChildSpec::process("hello", move || async move {
///         me.send(format!("hello from {}", self_pid()));
///         krarup_runtime::recv::<u8>().await;
///     }));
///     let sup = supervisor::start_link(spec).await.unwrap();
///     let greeting: String = recv().await;
///     assert!(greeting.starts_with("hello from"));
///     let children = sup.which_children().await.unwrap();
///     children.into_iter().map(|child| child.id).collect::<Vec<_>>()
/// });
/// assert_eq!(ids, ["hello"]);
/// ```
pub async fn start_link(spec: SupervisorSpec) -> Result<SupervisorRef, ExitReason> {
    start_with(spec, true).await
}

/// [`start_link`] without the link: the supervisor has no parent, and runs
/// until it gives up or is stopped ([`SupervisorRef::stop`]).
///
/// # Errors
/// As [`start_link`] (the caller is not linked, so it does not exit).
///
/// # Panics
/// If called outside a krarup process.
pub async fn start(spec: SupervisorSpec) -> Result<SupervisorRef, ExitReason> {
    start_with(spec, false).await
}

/// Step 1 of the module docs.
async fn start_with(spec: SupervisorSpec, linked: bool) -> Result<SupervisorRef, ExitReason> {
    let children = &spec.children;
    if let Some(twice) = children.iter().enumerate().find(|(i, c)| children[..*i].iter().any(|b| b.id == c.id)) {
        return Err(ExitReason::Error(format!("duplicate child id {:?}", twice.1.id)));
    }
    let starter = self_pid();
    let parent = linked.then_some(starter);
    let placeholder = new_reference("supervisor::start", starter);
    let mut reference = placeholder;
    let pid = with_worker(|w| {
        let w = w.expect("a process runs on a worker");
        w.spawn_with(run(spec, starter, parent), |child| {
            if linked {
                add_link(child, starter);
                add_link(starter, child);
            }
            reference = watch(child, placeholder);
        })
    });
    let started = crate::receive! {
        done: Started if done.supervisor == pid => done.result,
        down: Down if down.reference == reference => Err(down.reason),
    };
    demonitor(reference);
    started.map(|()| SupervisorRef { pid })
}

/// A handle to a running supervisor.
///
/// Its methods are requests handled by the supervisor in turn with the
/// exits of its children. They wait as long as the supervisor takes (a
/// `terminate_child` waits for the child's shutdown), but fail at once with
/// a `Call` error if the supervisor is not running or dies meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SupervisorRef {
    pid: Pid,
}

impl SupervisorRef {
    /// A handle to the supervisor running as `pid` (trusting that it is one).
    pub fn from_pid(pid: Pid) -> SupervisorRef {
        SupervisorRef { pid }
    }

    /// The supervisor's Pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Starts a new child, after the existing ones (last in start order,
    /// first to be shut down), and keeps its spec.
    ///
    /// # Errors
    /// [`StartChildError`]: the id is taken, the start failed (the spec is
    /// then dropped), or the supervisor is not running.
    ///
    /// # Panics
    /// If called outside a krarup process.
    ///
    /// # Examples
    ///
    /// ```
    /// use krarup_runtime::supervisor::{self, ChildSpec, StartChildError, Strategy, SupervisorSpec};
    /// use krarup_runtime::Runtime;
    ///
    /// async fn worker() {
    ///     krarup_runtime::recv::<u8>().await;
    /// }
    ///
    /// let rt = Runtime::new();
    /// rt.block_on(async {
    ///     let sup = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne)).await.unwrap();
    ///     let pid = sup.start_child(ChildSpec::process("w", worker)).await.unwrap();
    ///     let again = sup.start_child(ChildSpec::process("w", worker)).await;
    ///     assert_eq!(again, Err(StartChildError::AlreadyStarted { id: "w".into(), pid }));
    /// });
    /// ```
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Pid, StartChildError> {
        self.request(StartChild(spec)).await.unwrap_or_else(|e| Err(StartChildError::Call(e)))
    }

    /// Shuts the child down (by its [`Shutdown`]) and keeps its spec: it
    /// stays stopped until [`SupervisorRef::restart_child`] (a temporary
    /// child's spec is dropped). A stopped child is left as it is.
    ///
    /// # Errors
    /// [`ChildError::NotFound`], or [`ChildError::Call`] if the supervisor
    /// is not running.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn terminate_child(&self, id: &str) -> Result<(), ChildError> {
        self.request(TerminateChild(id.to_owned())).await.unwrap_or_else(|e| Err(ChildError::Call(e)))
    }

    /// Starts a stopped child again; returns its new Pid. This is not a
    /// restart in the sense of the restart intensity: it is not counted.
    ///
    /// # Errors
    /// [`ChildError`]: no such child, it is running or being restarted, its
    /// start failed (it stays stopped), or the supervisor is not running.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn restart_child(&self, id: &str) -> Result<Pid, ChildError> {
        self.request(RestartChild(id.to_owned())).await.unwrap_or_else(|e| Err(ChildError::Call(e)))
    }

    /// Forgets a stopped child's spec.
    ///
    /// # Errors
    /// [`ChildError`]: no such child, it is running or being restarted, or
    /// the supervisor is not running.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn delete_child(&self, id: &str) -> Result<(), ChildError> {
        self.request(DeleteChild(id.to_owned())).await.unwrap_or_else(|e| Err(ChildError::Call(e)))
    }

    /// Every child, in start order, with its Pid if it is running.
    ///
    /// # Errors
    /// [`CallError`] if the supervisor is not running (or exits meanwhile).
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, CallError> {
        self.request(WhichChildren).await
    }

    /// Asks the supervisor to shut down its children (reverse start order)
    /// and exit with `reason`, and waits at most `timeout` for it to exit.
    ///
    /// As for any exit, the processes linked to the supervisor — its
    /// parent, if it was started with [`start_link`] — get an exit signal
    /// with `reason`; stop with `Normal` to leave a parent that does not
    /// trap exits running.
    ///
    /// # Errors
    /// [`CallError::NoProc`] if it was not running, [`CallError::Timeout`]
    /// if it did not exit in time (it carries on shutting down),
    /// [`CallError::Exited`] if it exited with another reason.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        let reference = monitor(self.pid);
        self.pid.send_local(Stop(reason.clone()));
        let result = crate::receive! {
            down: Down if down.reference == reference => match down.reason {
                ExitReason::NoProc => Err(CallError::NoProc),
                exited if exited == reason => Ok(()),
                exited => Err(CallError::Exited(exited)),
            },
            after timeout => Err(CallError::Timeout),
        };
        demonitor(reference);
        result
    }

    async fn request<Q: Send + 'static, R: Send + 'static>(&self, request: Q) -> Result<R, CallError> {
        call_local::<Q, R>(self.pid, request, Duration::MAX).await
    }
}

/// One child of a running supervisor.
struct Child {
    spec: ChildSpec,
    /// Its process while it runs.
    pid: Option<Pid>,
    /// A restart failed and a retry is pending (step 5).
    restarting: bool,
}

/// The supervisor process's state.
struct Supervisor {
    me: Pid,
    parent: Option<Pid>,
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    /// In start order.
    children: Vec<Child>,
    /// When the restarts within the last `period` happened, oldest first.
    restarts: VecDeque<Instant>,
}

/// What a step of the loop decided: carry on (None) or exit with a reason.
type Step = Option<ExitReason>;

/// The supervisor process: steps 2 and 3.
async fn run(spec: SupervisorSpec, starter: Pid, parent: Option<Pid>) -> ExitReason {
    trap_exit(true);
    let me = self_pid();
    let mut supervisor = Supervisor {
        me,
        parent,
        strategy: spec.strategy,
        max_restarts: spec.max_restarts,
        period: spec.period,
        children: Vec::with_capacity(spec.children.len()),
        restarts: VecDeque::new(),
    };
    let result = supervisor.init(spec.children).await;
    starter.send_local(Started { supervisor: me, result: result.clone() });
    match result {
        Ok(()) => supervisor.serve().await,
        Err(reason) => reason,
    }
}

impl Supervisor {
    /// Step 2: starts the children in order; on a failure shuts down those
    /// started.
    async fn init(&mut self, specs: Vec<ChildSpec>) -> Result<(), ExitReason> {
        for spec in specs {
            match start_child(&spec).await {
                Ok(pid) => {
                    tracing::debug!(supervisor = %self.me, child = %spec.id, %pid, "supervisor: child started");
                    self.children.push(Child { spec, pid: Some(pid), restarting: false });
                }
                Err(reason) => {
                    self.report_start_error(&spec.id, &reason);
                    self.terminate_all().await;
                    return Err(ExitReason::Shutdown(Some(format!("failed to start child {:?}: {reason}", spec.id))));
                }
            }
        }
        Ok(())
    }

    /// Step 3.
    async fn serve(mut self) -> ExitReason {
        loop {
            let step = crate::receive! {
                exit: Exit => self.on_exit(exit).await,
                call: Call<StartChild, Result<Pid, StartChildError>> => {
                    let result = self.start_new(call.request.0).await;
                    call.reply_to.reply_local(result);
                    None
                }
                call: Call<TerminateChild, Result<(), ChildError>> => {
                    let result = self.terminate_child(&call.request.0).await;
                    call.reply_to.reply_local(result);
                    None
                }
                call: Call<RestartChild, Result<Pid, ChildError>> => {
                    let result = self.restart_child(&call.request.0).await;
                    call.reply_to.reply_local(result);
                    None
                }
                call: Call<DeleteChild, Result<(), ChildError>> => {
                    call.reply_to.reply_local(self.delete_child(&call.request.0));
                    None
                }
                call: Call<WhichChildren, Vec<ChildInfo>> => {
                    call.reply_to.reply_local(self.which_children());
                    None
                }
                TryAgain(id): TryAgain => self.try_again(&id).await,
                Stop(reason): Stop => {
                    self.terminate_all().await;
                    Some(reason)
                }
                other: AnyMessage => {
                    let message = other.type_name();
                    tracing::warn!(supervisor = %self.me, message, "supervisor: unexpected message dropped");
                    None
                }
            };
            if let Some(reason) = step {
                return reason;
            }
        }
    }

    /// Step 4.
    async fn on_exit(&mut self, Exit { from, reason }: Exit) -> Step {
        if Some(from) == self.parent {
            self.terminate_all().await;
            return Some(reason);
        }
        let Some(at) = self.children.iter().position(|c| c.pid == Some(from)) else {
            tracing::debug!(supervisor = %self.me, %from, %reason, "supervisor: exit of a non-child ignored");
            return None;
        };
        let child = &mut self.children[at];
        child.pid = None;
        let clean = is_clean(&reason);
        if !clean {
            tracing::error!(
                supervisor = %self.me,
                child = %child.spec.id,
                pid = %from,
                %reason,
                "supervisor: child terminated"
            );
        }
        match child.spec.restart {
            Restart::Temporary => {
                self.children.remove(at);
                None
            }
            Restart::Transient if clean => None,
            Restart::Permanent | Restart::Transient => self.restart(at).await,
        }
    }

    /// Step 5, for the child at `at` (not running).
    async fn restart(&mut self, at: usize) -> Step {
        if !self.add_restart() {
            tracing::error!(
                supervisor = %self.me,
                child = %self.children[at].spec.id,
                max_restarts = self.max_restarts,
                period = ?self.period,
                "supervisor: reached max restart intensity; shutting down"
            );
            self.terminate_all().await;
            return Some(ExitReason::Shutdown(Some(INTENSITY_REASON.to_owned())));
        }
        match self.strategy {
            Strategy::OneForOne => self.start_range(at, at + 1).await,
            Strategy::OneForAll => {
                self.terminate_from(0).await;
                self.start_range(0, self.children.len()).await;
            }
            Strategy::RestForOne => {
                let id = self.children[at].spec.id.clone();
                self.terminate_from(at + 1).await;
                let at = self.index_of(&id).expect("the restarted child is kept");
                self.start_range(at, self.children.len()).await;
            }
        }
        None
    }

    /// Records a restart now; false if that makes more than `max_restarts`
    /// within `period`.
    fn add_restart(&mut self) -> bool {
        let now = Instant::now();
        while self.restarts.front().is_some_and(|&then| now.duration_since(then) > self.period) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.max_restarts as usize
    }

    /// A retry of a failed restart, unless the child was stopped, started
    /// or deleted meanwhile.
    async fn try_again(&mut self, id: &str) -> Step {
        match self.children.iter().position(|c| c.spec.id == id && c.restarting) {
            Some(at) => self.restart(at).await,
            None => None,
        }
    }

    /// Starts the children in `from..to` in order. On a failure, marks that
    /// child restarting, queues a retry (step 5) and stops there.
    async fn start_range(&mut self, from: usize, to: usize) {
        for at in from..to {
            let spec = self.children[at].spec.clone();
            match start_child(&spec).await {
                Ok(pid) => {
                    tracing::debug!(supervisor = %self.me, child = %spec.id, %pid, "supervisor: child restarted");
                    let child = &mut self.children[at];
                    child.pid = Some(pid);
                    child.restarting = false;
                }
                Err(reason) => {
                    self.report_start_error(&spec.id, &reason);
                    self.children[at].restarting = true;
                    self.me.send_local(TryAgain(spec.id));
                    return;
                }
            }
        }
    }

    /// Shuts down the running children at `from..` in reverse order, then
    /// forgets the temporary ones among them.
    async fn terminate_from(&mut self, from: usize) {
        for at in (from..self.children.len()).rev() {
            self.shut_down(at).await;
        }
        let mut at = 0;
        self.children.retain(|child| {
            at += 1;
            at <= from || child.spec.restart != Restart::Temporary
        });
    }

    /// Step 7, before the supervisor exits.
    async fn terminate_all(&mut self) {
        for at in (0..self.children.len()).rev() {
            self.shut_down(at).await;
        }
    }

    /// Step 6 for the child at `at`, if it runs; reports an unexpected exit
    /// reason.
    async fn shut_down(&mut self, at: usize) {
        let child = &mut self.children[at];
        child.restarting = false;
        let Some(pid) = child.pid.take() else { return };
        let (shutdown, restart) = (child.spec.shutdown, child.spec.restart);
        let reason = shut_down(pid, shutdown).await;
        let expected = match (&reason, shutdown) {
            (ExitReason::Killed, Shutdown::BrutalKill) => true,
            (ExitReason::Shutdown(None), Shutdown::Timeout(_) | Shutdown::Infinity) => true,
            (ExitReason::Normal | ExitReason::Shutdown(_), _) => restart != Restart::Permanent,
            _ => false,
        };
        if !expected {
            tracing::error!(
                supervisor = %self.me,
                child = %self.children[at].spec.id,
                %pid,
                %reason,
                "supervisor: child did not shut down cleanly"
            );
        }
    }

    fn report_start_error(&self, id: &str, reason: &ExitReason) {
        tracing::error!(supervisor = %self.me, child = %id, %reason, "supervisor: child failed to start");
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// [`SupervisorRef::start_child`].
    async fn start_new(&mut self, spec: ChildSpec) -> Result<Pid, StartChildError> {
        if let Some(at) = self.index_of(&spec.id) {
            return Err(match self.children[at].pid {
                Some(pid) => StartChildError::AlreadyStarted { id: spec.id, pid },
                None => StartChildError::AlreadyPresent(spec.id),
            });
        }
        match start_child(&spec).await {
            Ok(pid) => {
                tracing::debug!(supervisor = %self.me, child = %spec.id, %pid, "supervisor: child started");
                self.children.push(Child { spec, pid: Some(pid), restarting: false });
                Ok(pid)
            }
            Err(reason) => {
                self.report_start_error(&spec.id, &reason);
                Err(StartChildError::Failed { id: spec.id, reason })
            }
        }
    }

    /// [`SupervisorRef::terminate_child`].
    async fn terminate_child(&mut self, id: &str) -> Result<(), ChildError> {
        let at = self.index_of(id).ok_or_else(|| ChildError::NotFound(id.to_owned()))?;
        self.shut_down(at).await;
        if self.children[at].spec.restart == Restart::Temporary {
            self.children.remove(at);
        }
        Ok(())
    }

    /// [`SupervisorRef::restart_child`].
    async fn restart_child(&mut self, id: &str) -> Result<Pid, ChildError> {
        let at = self.index_of(id).ok_or_else(|| ChildError::NotFound(id.to_owned()))?;
        let child = &self.children[at];
        if child.restarting {
            return Err(ChildError::Restarting(id.to_owned()));
        }
        if child.pid.is_some() {
            return Err(ChildError::Running(id.to_owned()));
        }
        let spec = child.spec.clone();
        match start_child(&spec).await {
            Ok(pid) => {
                self.children[at].pid = Some(pid);
                Ok(pid)
            }
            Err(reason) => {
                self.report_start_error(id, &reason);
                Err(ChildError::Failed { id: id.to_owned(), reason })
            }
        }
    }

    /// [`SupervisorRef::delete_child`].
    fn delete_child(&mut self, id: &str) -> Result<(), ChildError> {
        let at = self.index_of(id).ok_or_else(|| ChildError::NotFound(id.to_owned()))?;
        let child = &self.children[at];
        if child.restarting {
            return Err(ChildError::Restarting(id.to_owned()));
        }
        if child.pid.is_some() {
            return Err(ChildError::Running(id.to_owned()));
        }
        self.children.remove(at);
        Ok(())
    }

    /// [`SupervisorRef::which_children`].
    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                pid: c.pid,
                restart: c.spec.restart,
                is_supervisor: c.spec.is_supervisor,
            })
            .collect()
    }
}

/// Runs a child's start function (in the supervisor process). A panic in
/// the user's closure is a failed start with reason `Panic`, as Erlang
/// catches a start function that crashes.
async fn start_child(spec: &ChildSpec) -> Result<Pid, ExitReason> {
    let start = spec.start.clone();
    match panic::catch_unwind(AssertUnwindSafe(|| start())) {
        Ok(future) => future.await,
        Err(payload) => {
            let reason = ExitReason::Panic(panic_message(&*payload));
            // Dropping the payload may panic too; the supervisor must survive it.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(reason)
        }
    }
}

/// Whether an exit reason is a clean stop: not reported, and no reason to
/// restart a transient child.
fn is_clean(reason: &ExitReason) -> bool {
    matches!(reason, ExitReason::Normal | ExitReason::Shutdown(_))
}

/// Step 6 for one child process: returns the reason it exited with.
async fn shut_down(pid: Pid, how: Shutdown) -> ExitReason {
    let reference = monitor(pid);
    unlink(pid);
    let died = crate::receive! {
        exit: Exit if exit.from == pid => Some(exit.reason),
        after Duration::ZERO => None,
    };
    if let Some(reason) = died {
        // Its Down (with this reason, or NoProc) is here or on its way.
        down_within(reference, Duration::MAX).await;
        return reason;
    }
    match how {
        Shutdown::BrutalKill => {
            exit(pid, ExitReason::Kill);
            down_within(reference, Duration::MAX).await.unwrap_or(ExitReason::Killed)
        }
        Shutdown::Timeout(grace) => {
            exit(pid, ExitReason::Shutdown(None));
            match down_within(reference, grace).await {
                Some(reason) => reason,
                None => {
                    exit(pid, ExitReason::Kill);
                    down_within(reference, Duration::MAX).await.unwrap_or(ExitReason::Killed)
                }
            }
        }
        Shutdown::Infinity => {
            exit(pid, ExitReason::Shutdown(None));
            down_within(reference, Duration::MAX).await.unwrap_or(ExitReason::Shutdown(None))
        }
    }
}

/// The reason of monitor `reference`'s `Down`, waiting at most `timeout`
/// (`Duration::MAX`: as long as it takes).
async fn down_within(reference: MonitorRef, timeout: Duration) -> Option<ExitReason> {
    crate::receive! {
        down: Down if down.reference == reference => Some(down.reason),
        after timeout => None,
    }
}
