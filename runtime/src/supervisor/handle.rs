//! Starting a supervisor (step 1 of the module docs) and the handle that
//! manages it afterwards: each [`SupervisorRef`] method is a local call the
//! supervisor answers in its loop (step 3).

use std::time::Duration;

use super::errors::{ChildError, StartChildError};
use super::process::run;
use super::spec::{ChildSpec, Restart, SupervisorSpec};
use crate::call::{call_local, CallError};
use crate::exit::ExitReason;
use crate::link::add_link;
use crate::monitor::{demonitor, monitor, new_reference, watch, Down};
use crate::pid::Pid;
use crate::scheduler::worker::with_worker;
use crate::send::self_pid;

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

/// The supervisor's acknowledgement to its starter (step 2).
pub(super) struct Started {
    pub(super) supervisor: Pid,
    pub(super) result: Result<(), ExitReason>,
}

/// Requests (step 3), one type per operation so each has its reply type.
pub(super) struct StartChild(pub(super) ChildSpec);
pub(super) struct TerminateChild(pub(super) String);
pub(super) struct RestartChild(pub(super) String);
pub(super) struct DeleteChild(pub(super) String);
pub(super) struct WhichChildren;

/// Asks the supervisor to shut down and exit with this reason.
pub(super) struct Stop(pub(super) ExitReason);

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

    /// Shuts the child down (by its [`Shutdown`](super::Shutdown)) and keeps its spec: it
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
