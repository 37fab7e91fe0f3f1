//! What a supervisor starts and how it treats it: [`ChildSpec`] and
//! [`SupervisorSpec`], with the [`Strategy`], [`Restart`] and [`Shutdown`]
//! choices of Erlang's child specs. Plain data: nothing here runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::handle::start_link;
use crate::exit::{ExitReason, IntoExitReason};
use crate::gen_server::{self, GenServer};
use crate::link::spawn_link;
use crate::pid::Pid;
use crate::sync::global::Arc;

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
/// siblings, or for [`SupervisorRef::terminate_child`](super::SupervisorRef::terminate_child)).
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
    pub(super) id: String,
    pub(super) start: StartFn,
    pub(super) restart: Restart,
    pub(super) shutdown: Shutdown,
    pub(super) is_supervisor: bool,
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
    /// [`trap_exit`](crate::trap_exit) ends it. A child that must trap exits
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
    pub(super) strategy: Strategy,
    pub(super) max_restarts: u32,
    pub(super) period: Duration,
    pub(super) children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A spec with no children and Erlang's default intensity: at most 1
    /// restart in 5 seconds.
    pub fn new(strategy: Strategy) -> SupervisorSpec {
        SupervisorSpec { strategy, max_restarts: 1, period: Duration::from_secs(5), children: Vec::new() }
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
