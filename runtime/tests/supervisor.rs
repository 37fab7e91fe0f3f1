//! The supervisor: Erlang's `supervisor` semantics (OTP Design Principles,
//! "Supervisor Behaviour"; the `supervisor` reference manual).
//!
//! Every test body runs as a process under a watchdog ([`run`]), so a lost
//! message or a supervisor that never answers fails the test after
//! [`TIMEOUT`] instead of hanging. Children report to the test process
//! with [`Event`]s; the test synchronizes on those, on monitors, and on
//! requests to the supervisor — never on sleeps.
//!
//! One ordering fact the tests lean on: when a process exits, the runtime
//! signals its links before it fires its monitors (`Shared::after_exit`).
//! So once the test has the `Down` of a child, the supervisor already has
//! the child's `Exit` in its mailbox, and a request sent afterwards is
//! answered after the supervisor has handled that exit.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krarup_runtime::supervisor::{
    self, ChildError, ChildSpec, Restart, Shutdown, StartChildError, Strategy, SupervisorRef, SupervisorSpec,
};
use krarup_runtime::{
    exit, monitor, receive, recv_timeout, self_pid, spawn, spawn_monitor, trap_exit, CallError, CallReply, Down, Exit,
    ExitReason, Flow, GenServer, MonitorRef, Pid, ReplyTo, Runtime, ServerRef,
};
use serde::{Deserialize, Serialize};

/// The bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle child waits for a command before it gives up (longer
/// than any test).
const IDLE: Duration = Duration::from_secs(60);

/// Runs `body` as a process on a two-worker runtime; fails the test if the
/// body fails or has not finished within [`TIMEOUT`].
fn run<F>(body: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = Runtime::builder().workers(2).build().expect("runtime starts");
    rt.block_on(async move {
        let (pid, reference) = spawn_monitor(body);
        receive! {
            down: Down if down.reference == reference => {
                assert_eq!(down.reason, ExitReason::Normal, "the test body failed");
            }
            after TIMEOUT => {
                exit(pid, ExitReason::Kill);
                panic!("the test body did not finish within {TIMEOUT:?}");
            }
        }
    });
}

/// What children tell the test process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Event {
    /// The child started (from a server's `init`, or a process child's
    /// start function, which runs in the supervisor).
    Start(String),
    /// The child's supervisor shut it down (from a [`Worker`]'s `terminate`).
    Stop(String),
}

fn start(id: &str) -> Event {
    Event::Start(id.to_owned())
}

fn stop(id: &str) -> Event {
    Event::Stop(id.to_owned())
}

/// A worker child: a server that traps exits and reports `Start(id)` to
/// `log` from its `init` (so in start order: the supervisor waits for each
/// server's `init`), `Stop(id)` from `terminate` when its supervisor shuts
/// it down, and exits with any reason cast to it ([`crash`]).
struct Worker {
    id: String,
    log: Pid,
    crashing: bool,
}

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ExitReason;

    async fn init(&mut self) -> Result<(), ExitReason> {
        trap_exit(true);
        self.log.send(start(&self.id));
        Ok(())
    }

    async fn handle_call(&mut self, _: (), _: ReplyTo<()>) -> CallReply<()> {
        CallReply::Reply(())
    }

    async fn handle_cast(&mut self, reason: ExitReason) -> Flow {
        self.crashing = true;
        Flow::Stop(reason)
    }

    async fn terminate(&mut self, _reason: &ExitReason) {
        if !self.crashing {
            self.log.send(stop(&self.id));
        }
    }
}

fn worker(id: &str, log: Pid) -> ChildSpec {
    let id = id.to_owned();
    ChildSpec::server(id.clone(), move || Worker { id: id.clone(), log, crashing: false })
}

/// The next event, or a panic after [`TIMEOUT`].
async fn next_event() -> Event {
    recv_timeout::<Event>(TIMEOUT).await.expect("an event within the timeout")
}

/// The next `n` events.
async fn events(n: usize) -> Vec<Event> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(next_event().await);
    }
    got
}

/// Asserts that no event is waiting. Call it after a request to the
/// supervisor: everything a restart makes children report happens before
/// the supervisor answers.
async fn assert_no_event() {
    assert_eq!(recv_timeout::<Event>(Duration::ZERO).await, None, "an unexpected event");
}

/// The `Down` of `reference`, or a panic after [`TIMEOUT`].
async fn down_of(reference: MonitorRef) -> Down {
    receive! {
        down: Down if down.reference == reference => down,
        after TIMEOUT => panic!("no Down for {reference:?} within {TIMEOUT:?}"),
    }
}

/// Makes the [`worker`] `pid` exit with `reason` and waits until it has.
async fn crash(pid: Pid, reason: ExitReason) {
    let reference = monitor(pid);
    ServerRef::<Worker>::from_pid(pid).cast(reason.clone());
    assert_eq!(down_of(reference).await.reason, reason);
}

/// The children's ids, in start order.
async fn ids(sup: &SupervisorRef) -> Vec<String> {
    sup.which_children().await.expect("the supervisor answers").into_iter().map(|c| c.id).collect()
}

/// The children's Pids, in start order.
async fn pids(sup: &SupervisorRef) -> Vec<Option<Pid>> {
    sup.which_children().await.expect("the supervisor answers").into_iter().map(|c| c.pid).collect()
}

/// The Pid of running child `id`.
async fn pid_of(sup: &SupervisorRef, id: &str) -> Pid {
    let children = sup.which_children().await.expect("the supervisor answers");
    let child = children.into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no child {id:?}"));
    child.pid.unwrap_or_else(|| panic!("child {id:?} is not running"))
}

fn spec(strategy: Strategy, log: Pid, ids: &[&str]) -> SupervisorSpec {
    ids.iter().fold(SupervisorSpec::new(strategy), |spec, id| spec.child(worker(id, log)))
}

fn error(what: &str) -> ExitReason {
    ExitReason::Error(what.to_owned())
}

/// A counter server; `init` reports `Start(id)` to `log`, or fails if
/// `fail_init` says so.
struct Counter {
    id: &'static str,
    log: Pid,
    count: i64,
    fail_init: Option<ExitReason>,
}

impl Counter {
    fn new(id: &'static str, log: Pid) -> Counter {
        Counter { id, log, count: 0, fail_init: None }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum CounterCall {
    Add(i64),
    Crash,
}

impl GenServer for Counter {
    type Call = CounterCall;
    type Reply = i64;
    type Cast = ();

    async fn init(&mut self) -> Result<(), ExitReason> {
        match self.fail_init.take() {
            Some(reason) => Err(reason),
            None => {
                self.log.send(start(self.id));
                Ok(())
            }
        }
    }

    async fn handle_call(&mut self, request: CounterCall, _from: ReplyTo<i64>) -> CallReply<i64> {
        match request {
            CounterCall::Add(n) => {
                self.count += n;
                CallReply::Reply(self.count)
            }
            CounterCall::Crash => panic!("the counter crashed"),
        }
    }
}

/// A server child whose `init` fails.
fn failing_server(id: &'static str, log: Pid) -> ChildSpec {
    ChildSpec::server(id, move || Counter { fail_init: Some(error("no database")), ..Counter::new(id, log) })
}

#[test]
fn children_start_in_order() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(worker("a", log))
            .child(ChildSpec::server("b", move || Counter::new("b", log)))
            .child(worker("c", log))
            .child(ChildSpec::process("d", move || {
                // A process child's start function runs in the supervisor.
                log.send(start("d"));
                async {
                    let _ = recv_timeout::<Ready>(IDLE).await;
                }
            }));
        let sup = supervisor::start_link(spec).await.expect("the supervisor starts");
        // Server children report from their init: the supervisor waits for
        // each init before it starts the next child.
        assert_eq!(events(4).await, [start("a"), start("b"), start("c"), start("d")]);
        let children = sup.which_children().await.unwrap();
        assert_eq!(children.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert!(children.iter().all(|c| c.pid.is_some() && c.restart == Restart::Permanent && !c.is_supervisor));
        for child in &children {
            assert!(krarup_runtime::is_alive(child.pid.unwrap()), "{} runs", child.id);
        }
    });
}

#[test]
fn one_for_one_restarts_only_the_crashed_child() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start_link(spec(Strategy::OneForOne, log, &["a", "b", "c"])).await.unwrap();
        assert_eq!(events(3).await.len(), 3);
        let before = pids(&sup).await;
        crash(before[1].unwrap(), error("boom")).await;
        let after = pids(&sup).await;
        assert_eq!(after[0], before[0], "a untouched");
        assert_eq!(after[2], before[2], "c untouched");
        assert!(after[1].is_some() && after[1] != before[1], "b restarted");
        assert_eq!(next_event().await, start("b"));
        assert_no_event().await;
    });
}

#[test]
fn one_for_all_restarts_siblings() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start_link(spec(Strategy::OneForAll, log, &["a", "b", "c"])).await.unwrap();
        assert_eq!(events(3).await.len(), 3);
        let before = pids(&sup).await;
        let watch_a = monitor(before[0].unwrap());
        let watch_c = monitor(before[2].unwrap());
        crash(before[1].unwrap(), error("boom")).await;
        // The others are shut down in reverse start order, then all start in order.
        assert_eq!(events(5).await, [stop("c"), stop("a"), start("a"), start("b"), start("c")]);
        assert_eq!(down_of(watch_a).await.reason, ExitReason::Shutdown(None));
        assert_eq!(down_of(watch_c).await.reason, ExitReason::Shutdown(None));
        let after = pids(&sup).await;
        for (old, new) in before.iter().zip(&after) {
            assert!(new.is_some() && new != old, "every child restarted");
        }
        assert_no_event().await;
    });
}

#[test]
fn rest_for_one_restarts_later_siblings() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start_link(spec(Strategy::RestForOne, log, &["a", "b", "c", "d"])).await.unwrap();
        assert_eq!(events(4).await.len(), 4);
        let before = pids(&sup).await;
        crash(before[1].unwrap(), error("boom")).await;
        assert_eq!(events(5).await, [stop("d"), stop("c"), start("b"), start("c"), start("d")]);
        let after = pids(&sup).await;
        assert_eq!(after[0], before[0], "a, started before b, untouched");
        for at in 1..4 {
            assert!(after[at].is_some() && after[at] != before[at], "child {at} restarted");
        }
        assert_no_event().await;
    });
}

#[test]
fn transient_child_is_not_restarted_after_normal_exit() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(worker("a", log))
            .child(worker("t", log).restart(Restart::Transient));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(events(2).await.len(), 2);

        crash(pid_of(&sup, "t").await, ExitReason::Normal).await;
        assert_eq!(pids(&sup).await[1], None, "a normal exit: not restarted, spec kept");
        assert_no_event().await;

        sup.restart_child("t").await.unwrap();
        assert_eq!(next_event().await, start("t"));
        crash(pid_of(&sup, "t").await, ExitReason::Shutdown(Some("done".into()))).await;
        assert_eq!(pids(&sup).await[1], None, "Shutdown(_) is a normal exit too");
        assert_no_event().await;

        sup.restart_child("t").await.unwrap();
        assert_eq!(next_event().await, start("t"));
        let t = pid_of(&sup, "t").await;
        crash(t, error("boom")).await;
        let restarted = pid_of(&sup, "t").await;
        assert_ne!(restarted, t, "an abnormal exit: restarted");
        assert_eq!(next_event().await, start("t"));
        assert_no_event().await;
    });
}

#[test]
fn temporary_child_is_never_restarted() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(worker("a", log))
            .child(worker("t", log).restart(Restart::Temporary))
            .child(worker("n", log).restart(Restart::Temporary));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(events(3).await.len(), 3);
        crash(pid_of(&sup, "t").await, error("boom")).await;
        crash(pid_of(&sup, "n").await, ExitReason::Normal).await;
        assert_eq!(ids(&sup).await, ["a"], "temporary children are forgotten when they exit");
        assert_no_event().await;
    });
}

#[test]
fn one_for_all_shuts_down_temporary_siblings_for_good() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForAll)
            .child(worker("a", log))
            .child(worker("t", log).restart(Restart::Temporary));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(events(2).await.len(), 2);
        crash(pid_of(&sup, "a").await, error("boom")).await;
        assert_eq!(events(2).await, [stop("t"), start("a")]);
        assert_eq!(ids(&sup).await, ["a"]);
        assert_no_event().await;
    });
}

#[test]
fn restart_intensity_exceeded_stops_supervisor() {
    capture::install();
    run(async {
        trap_exit(true);
        let log = self_pid();
        let spec = spec(Strategy::OneForOne, log, &["a", "b", "c"]).intensity(2, Duration::from_secs(60));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(events(3).await.len(), 3);
        for _ in 0..2 {
            crash(pid_of(&sup, "b").await, error("boom")).await;
            assert_eq!(next_event().await, start("b"));
        }
        let b = pid_of(&sup, "b").await;
        let watch = monitor(sup.pid());
        crash(b, error("boom")).await;
        // The third restart within the period is one too many: the others
        // are shut down in reverse start order, and b is not restarted.
        assert_eq!(events(2).await, [stop("c"), stop("a")]);
        let given_up = ExitReason::Shutdown(Some("reached max restart intensity".into()));
        assert_eq!(down_of(watch).await.reason, given_up);
        let signal = recv_timeout::<Exit>(TIMEOUT).await.expect("the linked supervisor's exit signal");
        assert_eq!((signal.from, signal.reason), (sup.pid(), given_up));
        assert_no_event().await;
        assert_eq!(sup.which_children().await, Err(CallError::NoProc));

        let logged = capture::records_of(sup.pid());
        let crashes = logged.iter().filter(|r| r.message() == "supervisor: child terminated").count();
        assert_eq!(crashes, 3, "one crash report per crash: {logged:#?}");
        let last = logged.last().expect("records");
        assert_eq!(last.level, tracing::Level::ERROR);
        assert!(last.message().contains("reached max restart intensity"), "{last:?}");
    });
}

#[test]
fn default_intensity_is_one_restart_in_five_seconds() {
    // Erlang's defaults: the first crash is restarted, a second one within
    // the period is one too many.
    run(async {
        let log = self_pid();
        let sup = supervisor::start(spec(Strategy::OneForOne, log, &["a"])).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        crash(pid_of(&sup, "a").await, error("boom")).await;
        assert_eq!(next_event().await, start("a"));
        let watch = monitor(sup.pid());
        crash(pid_of(&sup, "a").await, error("boom")).await;
        let given_up = ExitReason::Shutdown(Some("reached max restart intensity".into()));
        assert_eq!(down_of(watch).await.reason, given_up);
        assert_no_event().await;
    });
}

#[test]
fn restarts_outside_the_period_do_not_count() {
    run(async {
        let log = self_pid();
        // One restart allowed per zero-length period: no two restarts ever
        // fall in the same window.
        let spec = spec(Strategy::OneForOne, log, &["a"]).intensity(1, Duration::ZERO);
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        for _ in 0..5 {
            crash(pid_of(&sup, "a").await, error("boom")).await;
            assert_eq!(next_event().await, start("a"));
        }
        assert!(krarup_runtime::is_alive(sup.pid()));
    });
}

#[test]
fn zero_max_restarts_gives_up_at_the_first_crash() {
    run(async {
        let log = self_pid();
        let spec = spec(Strategy::OneForOne, log, &["a", "b"]).intensity(0, Duration::from_secs(60));
        let sup = supervisor::start(spec).await.unwrap();
        assert_eq!(events(2).await.len(), 2);
        let watch = monitor(sup.pid());
        crash(pid_of(&sup, "b").await, error("boom")).await;
        assert_eq!(next_event().await, stop("a"));
        assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(Some("reached max restart intensity".into())));
    });
}

#[test]
fn failed_child_start_fails_the_supervisor_start() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(worker("a", log))
            .child(failing_server("b", log))
            .child(worker("c", log));
        let result = supervisor::start(spec.clone()).await;
        let Err(ExitReason::Shutdown(Some(why))) = result else { panic!("unexpected start result {result:?}") };
        assert!(why.contains("\"b\"") && why.contains("no database"), "the reason names the child: {why}");
        // a was started, then shut down; c was never started.
        assert_eq!(events(2).await, [start("a"), stop("a")]);
        assert_no_event().await;

        // Linked: the caller gets the error, and (trapping) the exit signal.
        trap_exit(true);
        let result = supervisor::start_link(spec).await;
        assert_eq!(result.as_ref().err(), Some(&ExitReason::Shutdown(Some(why.clone()))));
        assert_eq!(events(2).await, [start("a"), stop("a")]);
        let signal = recv_timeout::<Exit>(TIMEOUT).await.expect("the failed supervisor's exit signal");
        assert_eq!(signal.reason, ExitReason::Shutdown(Some(why)));
    });
}

#[test]
fn duplicate_child_ids_are_refused() {
    run(async {
        let log = self_pid();
        let result = supervisor::start(spec(Strategy::OneForOne, log, &["a", "b", "a"])).await;
        assert_eq!(result, Err(ExitReason::Error("duplicate child id \"a\"".into())));
        assert_no_event().await;
    });
}

#[test]
fn shutdown_timeout_kills_a_child_that_ignores_shutdown() {
    run(async {
        let log = self_pid();
        let grace = Duration::from_millis(100);
        let stubborn = ChildSpec::process("stubborn", move || async move {
            trap_exit(true);
            log.send(Ready);
            loop {
                receive! {
                    _signal: Exit => log.send(stop("stubborn")),
                    after IDLE => return,
                }
            }
        })
        .shutdown(Shutdown::Timeout(grace));
        let sup = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne).child(stubborn)).await.unwrap();
        // A process child traps exits only once it runs.
        recv_timeout::<Ready>(TIMEOUT).await.expect("the child runs");
        let pid = pid_of(&sup, "stubborn").await;
        let watch = monitor(pid);
        let started = Instant::now();
        sup.terminate_child("stubborn").await.unwrap();
        assert!(started.elapsed() >= grace, "waited the grace period first");
        assert_eq!(next_event().await, stop("stubborn"), "it got the shutdown signal, and ignored it");
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        assert_eq!(pids(&sup).await, [None]);
    });
}

#[test]
fn shutdown_timeout_lets_a_cooperative_child_finish() {
    run(async {
        let log = self_pid();
        let child = worker("a", log).shutdown(Shutdown::Timeout(TIMEOUT * 2));
        let sup = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne).child(child)).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        let watch = monitor(pid_of(&sup, "a").await);
        let started = Instant::now();
        sup.terminate_child("a").await.unwrap();
        assert!(started.elapsed() < TIMEOUT, "did not wait for the grace period");
        assert_eq!(next_event().await, stop("a"));
        assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(None));
    });
}

/// Sent by a process child once it traps exits.
#[derive(Debug, Serialize, Deserialize)]
struct Ready;

/// Sent by the slow child when it is asked to shut down.
#[derive(Debug, Serialize, Deserialize)]
struct Stopping(Pid);

/// Lets the slow child finish.
#[derive(Debug, Serialize, Deserialize)]
struct Finish;

#[test]
fn shutdown_infinity_waits_for_the_child() {
    run(async {
        // A helper answers the child's Stopping while the test process waits
        // in terminate_child.
        let helper = spawn(async {
            if let Some(Stopping(child)) = recv_timeout::<Stopping>(TIMEOUT).await {
                child.send(Finish);
            }
        });
        let log = self_pid();
        let slow = ChildSpec::process("slow", move || async move {
            trap_exit(true);
            log.send(Ready);
            let Some(signal) = recv_timeout::<Exit>(IDLE).await else { return ExitReason::Normal };
            helper.send(Stopping(self_pid()));
            recv_timeout::<Finish>(TIMEOUT).await.expect("the helper lets it finish");
            signal.reason
        })
        .shutdown(Shutdown::Infinity);
        let sup = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne).child(slow)).await.unwrap();
        recv_timeout::<Ready>(TIMEOUT).await.expect("the child runs");
        let watch = monitor(pid_of(&sup, "slow").await);
        sup.terminate_child("slow").await.unwrap();
        assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(None), "not killed");
    });
}

#[test]
fn brutal_kill_kills_at_once() {
    run(async {
        let log = self_pid();
        let child = worker("a", log).shutdown(Shutdown::BrutalKill);
        let sup = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne).child(child)).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        let watch = monitor(pid_of(&sup, "a").await);
        sup.terminate_child("a").await.unwrap();
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        // It traps exits, but Kill cannot be trapped: it never saw a signal.
        assert_no_event().await;
    });
}

#[test]
fn nested_supervisors_restart_their_own_children() {
    run(async {
        let log = self_pid();
        let top = SupervisorSpec::new(Strategy::OneForOne)
            .child(worker("a", log))
            .child(ChildSpec::supervisor("sub", move || spec(Strategy::OneForAll, log, &["x", "y"])));
        let top = supervisor::start_link(top).await.unwrap();
        assert_eq!(events(3).await, [start("a"), start("x"), start("y")]);
        let children = top.which_children().await.unwrap();
        assert_eq!((children[1].id.as_str(), children[1].is_supervisor), ("sub", true));
        let sub = SupervisorRef::from_pid(children[1].pid.unwrap());
        let top_before = pids(&top).await;

        // x crashes: sub restarts x and y (one_for_all); top sees nothing.
        crash(pid_of(&sub, "x").await, error("boom")).await;
        assert_eq!(events(3).await, [stop("y"), start("x"), start("y")]);
        assert_eq!(pids(&top).await, top_before);

        // sub itself dies: top restarts it, and it starts x and y afresh.
        let sub_children = pids(&sub).await;
        let watch = monitor(sub.pid());
        exit(sub.pid(), ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        let after = pids(&top).await;
        assert_eq!(after[0], top_before[0], "a untouched");
        assert!(after[1].is_some() && after[1] != top_before[1], "sub restarted");
        let mut got = events(4).await;
        // The old x and y get the killed supervisor's exit signal while the
        // new ones start: the two streams interleave.
        let starts: Vec<_> = got.iter().filter(|e| matches!(e, Event::Start(_))).cloned().collect();
        assert_eq!(starts, [start("x"), start("y")]);
        got.retain(|e| matches!(e, Event::Stop(_)));
        got.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(got, [stop("x"), stop("y")]);
        let new_sub = SupervisorRef::from_pid(after[1].unwrap());
        let new_children = pids(&new_sub).await;
        assert!(new_children.iter().zip(&sub_children).all(|(new, old)| new.is_some() && new != old));

        // Shutting down top shuts down sub, which shuts down its own children first.
        top.stop(ExitReason::Normal, TIMEOUT).await.unwrap();
        assert_eq!(events(3).await, [stop("y"), stop("x"), stop("a")]);
    });
}

#[test]
fn dynamic_children_start_terminate_restart_delete() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start_link(spec(Strategy::OneForOne, log, &["a"])).await.unwrap();
        assert_eq!(next_event().await, start("a"));

        let d = sup.start_child(worker("d", log)).await.unwrap();
        assert_eq!(next_event().await, start("d"));
        assert_eq!(ids(&sup).await, ["a", "d"], "appended");
        let refused = sup.start_child(worker("d", log)).await;
        assert_eq!(refused, Err(StartChildError::AlreadyStarted { id: "d".into(), pid: d }));
        assert_eq!(sup.delete_child("d").await, Err(ChildError::Running("d".into())));
        assert_eq!(sup.restart_child("d").await, Err(ChildError::Running("d".into())));

        let watch = monitor(d);
        sup.terminate_child("d").await.unwrap();
        assert_eq!(next_event().await, stop("d"));
        assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(None));
        assert_eq!(pids(&sup).await[1], None, "stopped, spec kept");
        assert_eq!(sup.terminate_child("d").await, Ok(()), "terminating a stopped child does nothing");
        let refused = sup.start_child(worker("d", log)).await;
        assert_eq!(refused, Err(StartChildError::AlreadyPresent("d".into())));

        let d2 = sup.restart_child("d").await.unwrap();
        assert_ne!(d2, d);
        assert_eq!(next_event().await, start("d"));
        // A dynamic child is restarted like any other.
        crash(d2, error("boom")).await;
        assert_eq!(next_event().await, start("d"));

        sup.terminate_child("d").await.unwrap();
        assert_eq!(next_event().await, stop("d"));
        assert_eq!(sup.delete_child("d").await, Ok(()));
        assert_eq!(ids(&sup).await, ["a"]);
        assert_eq!(sup.delete_child("d").await, Err(ChildError::NotFound("d".into())));
        assert_eq!(sup.terminate_child("d").await, Err(ChildError::NotFound("d".into())));
        assert_eq!(sup.restart_child("d").await, Err(ChildError::NotFound("d".into())));

        // A child whose start fails is not kept.
        let failed = sup.start_child(failing_server("bad", log)).await;
        assert_eq!(failed, Err(StartChildError::Failed { id: "bad".into(), reason: error("no database") }));
        assert_eq!(ids(&sup).await, ["a"]);

        // A temporary child's spec goes with terminate_child.
        sup.start_child(worker("t", log).restart(Restart::Temporary)).await.unwrap();
        assert_eq!(next_event().await, start("t"));
        sup.terminate_child("t").await.unwrap();
        assert_eq!(next_event().await, stop("t"));
        assert_eq!(ids(&sup).await, ["a"]);
        assert_no_event().await;
    });
}

/// Tells the parent process to exit with this reason.
#[derive(Debug, Serialize, Deserialize)]
struct Crash(ExitReason);

#[test]
fn parent_exit_stops_the_supervisor_and_its_children() {
    run(async {
        let log = self_pid();
        let parent = spawn(async move {
            let sup = supervisor::start_link(spec(Strategy::OneForOne, log, &["a", "b", "c"])).await.unwrap();
            log.send(sup.pid());
            let Crash(reason) = recv_timeout::<Crash>(TIMEOUT).await.expect("told to exit");
            reason
        });
        assert_eq!(events(3).await.len(), 3);
        let sup = SupervisorRef::from_pid(recv_timeout::<Pid>(TIMEOUT).await.unwrap());
        let children = pids(&sup).await;
        let watch_sup = monitor(sup.pid());
        let watches: Vec<_> = children.iter().map(|pid| monitor(pid.unwrap())).collect();

        parent.send(Crash(error("parent failed")));
        assert_eq!(events(3).await, [stop("c"), stop("b"), stop("a")]);
        assert_eq!(down_of(watch_sup).await.reason, error("parent failed"), "exits with the parent's reason");
        for watch in watches {
            assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(None));
        }
    });
}

#[test]
fn exit_from_an_unknown_process_is_ignored() {
    run(async {
        let log = self_pid();
        // Unlinked: the test process is not its parent.
        let sup = supervisor::start(spec(Strategy::OneForOne, log, &["a"])).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        let before = pids(&sup).await;
        exit(sup.pid(), error("not your parent"));
        // And a stray message is dropped.
        sup.pid().send(42u32);
        assert_eq!(pids(&sup).await, before);
        assert_no_event().await;
        sup.stop(ExitReason::Normal, TIMEOUT).await.unwrap();
        assert_eq!(next_event().await, stop("a"));
    });
}

#[test]
fn stop_shuts_children_down_and_later_requests_fail() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start(spec(Strategy::OneForOne, log, &["a", "b", "c"])).await.unwrap();
        assert_eq!(events(3).await.len(), 3);
        sup.stop(ExitReason::Shutdown(None), TIMEOUT).await.unwrap();
        assert_eq!(events(3).await, [stop("c"), stop("b"), stop("a")]);
        assert_eq!(sup.which_children().await, Err(CallError::NoProc));
        assert_eq!(sup.start_child(worker("d", log)).await, Err(StartChildError::Call(CallError::NoProc)));
        assert_eq!(sup.terminate_child("a").await, Err(ChildError::Call(CallError::NoProc)));
        assert_eq!(sup.stop(ExitReason::Normal, TIMEOUT).await, Err(CallError::NoProc));
    });
}

#[test]
fn a_server_child_is_restarted_with_fresh_state() {
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::server("counter", move || Counter::new("counter", log)));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(next_event().await, start("counter"));
        let counter = ServerRef::<Counter>::from_pid(pid_of(&sup, "counter").await);
        for n in 1..=3 {
            assert_eq!(counter.call(CounterCall::Add(1), TIMEOUT).await, Ok(n));
        }
        let watch = monitor(counter.pid());
        let crashed = counter.call(CounterCall::Crash, TIMEOUT).await;
        assert_eq!(crashed, Err(CallError::Exited(ExitReason::Panic("the counter crashed".into()))));
        down_of(watch).await;
        assert_eq!(next_event().await, start("counter"), "init ran again");
        let fresh = ServerRef::<Counter>::from_pid(pid_of(&sup, "counter").await);
        assert_ne!(fresh, counter);
        assert_eq!(fresh.call(CounterCall::Add(1), TIMEOUT).await, Ok(1), "state starts over");
    });
}

/// A server whose n-th start (counted from 0) succeeds if `succeeds(n)`,
/// and then reports `Start("flaky")`.
struct Flaky {
    attempt: usize,
    log: Pid,
    succeeds: fn(usize) -> bool,
}

impl GenServer for Flaky {
    type Call = ();
    type Reply = ();
    type Cast = ();

    async fn init(&mut self) -> Result<(), ExitReason> {
        if (self.succeeds)(self.attempt) {
            self.log.send(start("flaky"));
            Ok(())
        } else {
            Err(ExitReason::Error(format!("attempt {} failed", self.attempt)))
        }
    }

    async fn handle_call(&mut self, _: (), _: ReplyTo<()>) -> CallReply<()> {
        CallReply::Reply(())
    }
}

fn flaky(attempts: &Arc<AtomicUsize>, log: Pid, succeeds: fn(usize) -> bool) -> ChildSpec {
    let attempts = attempts.clone();
    ChildSpec::server("flaky", move || Flaky { attempt: attempts.fetch_add(1, Ordering::SeqCst), log, succeeds })
}

#[test]
fn a_failed_restart_is_retried() {
    run(async {
        let log = self_pid();
        let attempts = Arc::new(AtomicUsize::new(0));
        // Starts, then fails twice to restart, then restarts.
        let spec = SupervisorSpec::new(Strategy::OneForOne).intensity(3, Duration::from_secs(60)).child(flaky(
            &attempts,
            log,
            |n| n == 0 || n >= 3,
        ));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(next_event().await, start("flaky"));
        let first = pid_of(&sup, "flaky").await;
        let watch = monitor(first);
        exit(first, ExitReason::Kill);
        down_of(watch).await;
        // Each retry is a message the supervisor sends itself; the last one
        // succeeds and reports, and the supervisor answers after it.
        assert_eq!(next_event().await, start("flaky"));
        let restarted = pid_of(&sup, "flaky").await;
        assert_ne!(restarted, first);
        assert_eq!(attempts.load(Ordering::SeqCst), 4, "one start, two failed restarts, one restart");
    });
}

#[test]
fn a_child_that_cannot_restart_ends_in_the_intensity_limit() {
    run(async {
        let attempts = Arc::new(AtomicUsize::new(0));
        let spec = SupervisorSpec::new(Strategy::OneForOne).intensity(3, Duration::from_secs(60)).child(flaky(
            &attempts,
            self_pid(),
            |n| n == 0,
        ));
        let sup = supervisor::start(spec).await.unwrap();
        let watch = monitor(sup.pid());
        exit(pid_of(&sup, "flaky").await, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Shutdown(Some("reached max restart intensity".into())));
        assert_eq!(attempts.load(Ordering::SeqCst), 4, "the start, then three restarts that failed");
    });
}

#[test]
fn a_panicking_start_function_is_a_failed_start() {
    run(async {
        let log = self_pid();
        let sup = supervisor::start_link(spec(Strategy::OneForOne, log, &["a"])).await.unwrap();
        assert_eq!(next_event().await, start("a"));
        let broken = ChildSpec::process("broken", || -> std::future::Ready<()> { panic!("no such file") });
        let failed = sup.start_child(broken).await;
        assert_eq!(
            failed,
            Err(StartChildError::Failed { id: "broken".into(), reason: ExitReason::Panic("no such file".into()) })
        );
        assert_eq!(ids(&sup).await, ["a"], "the supervisor carries on");
    });
}

#[test]
fn crash_reports_are_logged_for_abnormal_exits_only() {
    capture::install();
    run(async {
        let log = self_pid();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(10, Duration::from_secs(60))
            .child(worker("a", log))
            .child(worker("t", log).restart(Restart::Transient));
        let sup = supervisor::start_link(spec).await.unwrap();
        assert_eq!(events(2).await.len(), 2);
        let a = pid_of(&sup, "a").await;
        crash(a, error("boom")).await;
        crash(pid_of(&sup, "a").await, ExitReason::Shutdown(Some("bye".into()))).await;
        crash(pid_of(&sup, "t").await, ExitReason::Normal).await;
        // Answered after the exits were handled.
        assert_eq!(ids(&sup).await, ["a", "t"]);

        let logged = capture::records_of(sup.pid());
        let reports: Vec<_> = logged.iter().filter(|r| r.level == tracing::Level::ERROR).collect();
        assert_eq!(reports.len(), 1, "only the abnormal exit is reported: {logged:#?}");
        let report = reports[0];
        assert_eq!(report.message(), "supervisor: child terminated");
        assert_eq!(report.field("child"), "a");
        assert_eq!(report.field("pid"), a.to_string());
        assert_eq!(report.field("reason"), "error: boom");
    });
}

/// A `tracing` subscriber that records the supervisor's events, for the
/// tests that check its reports. Installed process-wide once; each test
/// picks its own supervisor's records by Pid (Pids are never reused across
/// runtimes: node numbers are not).
mod capture {
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record as SpanRecord};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::{BTreeMap, Pid};

    /// One event.
    #[derive(Clone, Debug)]
    pub struct Record {
        pub level: Level,
        pub fields: BTreeMap<String, String>,
    }

    impl Record {
        pub fn message(&self) -> &str {
            self.field("message")
        }

        pub fn field(&self, name: &str) -> &str {
            self.fields.get(name).map_or("", String::as_str)
        }
    }

    static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

    struct Capture;

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target().starts_with("krarup_runtime::supervisor")
        }

        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, _: &SpanRecord<'_>) {}

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let record = Record { level: *event.metadata().level(), fields };
            RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    /// Installs the subscriber (once per test binary).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| tracing::subscriber::set_global_default(Capture).expect("no other global subscriber"));
    }

    /// The events of the supervisor `supervisor`, in order.
    pub fn records_of(supervisor: Pid) -> Vec<Record> {
        let supervisor = supervisor.to_string();
        let records = RECORDS.lock().unwrap_or_else(|e| e.into_inner());
        records.iter().filter(|r| r.field("supervisor") == supervisor).cloned().collect()
    }
}
