//! The supervisor process (steps 2 to 7 of the module docs): starts its
//! children, turns their `Exit`s into restarts by its strategy within its
//! restart intensity, answers its handle's requests, and shuts children
//! down — after which no `Exit` from them can arrive.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::errors::{ChildError, StartChildError};
use super::handle::{ChildInfo, DeleteChild, RestartChild, StartChild, Started, Stop, TerminateChild, WhichChildren};
use super::spec::{ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
use crate::any::AnyMessage;
use crate::call::Call;
use crate::exit::{panic_message, ExitReason};
use crate::link::unlink;
use crate::monitor::{monitor, Down, MonitorRef};
use crate::pid::Pid;
use crate::send::self_pid;
use crate::signal::{exit, trap_exit, Exit};

/// The exit reason of a supervisor that gave up (step 5 of the module docs).
const INTENSITY_REASON: &str = "reached max restart intensity";

/// A failed restart of this child, to retry (step 5).
struct TryAgain(String);

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
pub(super) async fn run(spec: SupervisorSpec, starter: Pid, parent: Option<Pid>) -> ExitReason {
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
