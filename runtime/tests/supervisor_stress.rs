//! Stress: many processes crash and restart under supervisors, and every
//! notification — exit signal, `Down`, restart — happens exactly once.
//!
//! From the issue: "10,000 processes linked in chains that crash and restart
//! under a supervisor, checked for exactly-once notifications". Each test
//! body runs under a watchdog (every wait is bounded), and synchronizes on
//! messages and monitors only.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krarup_runtime::supervisor::{self, ChildSpec, Shutdown, Strategy, SupervisorRef, SupervisorSpec};
use krarup_runtime::{
    exit, monitor, receive, recv_timeout, self_pid, spawn_link, spawn_monitor, trap_exit, Down, Exit, ExitReason,
    MonitorRef, Pid, Runtime,
};
use serde::{Deserialize, Serialize};

/// The bound on every wait.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The bound on a whole test body (its waits fail first, with a message).
const WATCHDOG: Duration = Duration::from_secs(30);

/// How long an idle process waits before it gives up (longer than any test).
const IDLE: Duration = Duration::from_secs(120);

/// Runs `body` as a process on a two-worker runtime; fails the test if the
/// body fails or has not finished within [`WATCHDOG`].
fn run<F>(body: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let rt = Runtime::builder().workers(2).build().expect("runtime starts");
    let started = Instant::now();
    rt.block_on(async move {
        let (pid, reference) = spawn_monitor(body);
        receive! {
            down: Down if down.reference == reference => {
                assert_eq!(down.reason, ExitReason::Normal, "the test body failed");
            }
            after WATCHDOG => {
                exit(pid, ExitReason::Kill);
                panic!("the test body did not finish within {WATCHDOG:?}");
            }
        }
    });
    eprintln!("test body took {:?}", started.elapsed());
}

/// Exit with this reason.
#[derive(Debug, Serialize, Deserialize)]
struct Crash(ExitReason);

mod chains {
    use super::*;

    /// Chains under the supervisor.
    pub const CHAINS: usize = 100;
    /// Processes per chain, the supervisor's child (the head) included:
    /// CHAINS × LENGTH = 10,000 linked processes alive at once.
    pub const LENGTH: usize = 100;
    /// Times every chain crashes (all chains at once): 50,000 processes
    /// crash and are replaced in all.
    pub const ROUNDS: usize = 5;

    /// From the tail of a complete chain: its processes, head first.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Ready {
        pub chain: usize,
        pub generation: usize,
        pub pids: Vec<Pid>,
    }

    /// From a process that traps exits: the exit signal it received.
    #[derive(Debug, Serialize, Deserialize)]
    pub struct Notified {
        pub chain: usize,
        pub generation: usize,
        pub position: usize,
        pub exit: Exit,
    }

    /// Whether the process at `position` traps exits (every other one, not
    /// the head nor the tail): it reports the signal it gets and exits with
    /// its reason, passing the crash on; the others die of the signal.
    pub fn traps(position: usize) -> bool {
        position % 2 == 1 && position + 1 < LENGTH
    }

    /// The process at `position` of a chain: it spawns the rest of the
    /// chain linked to itself, then waits. The tail reports the chain and
    /// exits when told to; the crash travels back along the links.
    pub fn link(
        driver: Pid,
        chain: usize,
        generation: usize,
        position: usize,
        mut pids: Vec<Pid>,
    ) -> Pin<Box<dyn Future<Output = ExitReason> + Send>> {
        Box::pin(async move {
            pids.push(self_pid());
            if traps(position) {
                trap_exit(true);
            }
            if position + 1 == LENGTH {
                driver.send(Ready { chain, generation, pids });
                return match recv_timeout::<Crash>(IDLE).await {
                    Some(Crash(reason)) => reason,
                    None => ExitReason::Normal,
                };
            }
            spawn_link(link(driver, chain, generation, position + 1, pids));
            if !traps(position) {
                let _ = recv_timeout::<Crash>(IDLE).await;
                return ExitReason::Normal;
            }
            match recv_timeout::<Exit>(IDLE).await {
                Some(exit) => {
                    let reason = exit.reason.clone();
                    driver.send(Notified { chain, generation, position, exit });
                    reason
                }
                None => ExitReason::Normal,
            }
        })
    }

    pub fn reason(chain: usize, round: usize) -> ExitReason {
        ExitReason::Error(format!("chain {chain} crashes in round {round}"))
    }

    /// The `generation` of every chain, once all are complete. `early`
    /// holds the `Ready`s that arrived while the driver waited for
    /// something else.
    pub async fn collect_ready(generation: usize, early: &mut Vec<Ready>) -> Vec<Vec<Pid>> {
        let mut chains = vec![Vec::new(); CHAINS];
        for _ in 0..CHAINS {
            let ready = match early.pop() {
                Some(ready) => ready,
                None => recv_timeout::<Ready>(TIMEOUT).await.expect("every chain becomes ready"),
            };
            assert_eq!(ready.generation, generation, "chain {} started once per round", ready.chain);
            assert!(chains[ready.chain].is_empty(), "chain {} ready twice", ready.chain);
            assert_eq!(ready.pids.len(), LENGTH);
            chains[ready.chain] = ready.pids;
        }
        assert!(early.is_empty(), "a chain was ready twice");
        chains
    }

    /// Monitors every process of every chain.
    pub fn watch(chains: &[Vec<Pid>]) -> HashMap<MonitorRef, (usize, usize)> {
        let mut watched = HashMap::with_capacity(CHAINS * LENGTH);
        for (chain, pids) in chains.iter().enumerate() {
            for (position, &pid) in pids.iter().enumerate() {
                watched.insert(monitor(pid), (chain, position));
            }
        }
        watched
    }

    /// Waits for one `Down` per watched process and one `Notified` per
    /// trapping process, checking that none comes twice and that each names
    /// the right process and reason: the signal comes from `neighbour`
    /// (downstream for a crash, upstream for a shutdown). Keeps the next
    /// generation's `Ready`s that arrive meanwhile in `early` (taking every
    /// message in arrival order keeps the receives from rescanning them).
    pub async fn collect_notifications(
        chains: &[Vec<Pid>],
        mut watched: HashMap<MonitorRef, (usize, usize)>,
        generation: usize,
        neighbour: impl Fn(usize) -> usize,
        reason_of: impl Fn(usize) -> ExitReason,
        early: &mut Vec<Ready>,
    ) {
        let per_chain = (0..LENGTH).filter(|&p| traps(p)).count();
        let mut notified = HashSet::new();
        while !watched.is_empty() || notified.len() < CHAINS * per_chain {
            receive! {
                down: Down => {
                    let (chain, position) =
                        watched.remove(&down.reference).expect("exactly one Down per monitor, of a watched process");
                    assert_eq!(down.pid, chains[chain][position]);
                    assert_eq!(down.reason, reason_of(chain), "chain {chain} position {position}");
                }
                n: Notified => {
                    assert_eq!(n.generation, generation, "a notification from another generation: {n:?}");
                    assert!(notified.insert((n.chain, n.position)), "notified twice: {n:?}");
                    assert_eq!(n.exit.from, chains[n.chain][neighbour(n.position)], "the signal's sender");
                    assert_eq!(n.exit.reason, reason_of(n.chain));
                }
                ready: Ready => early.push(ready),
                after TIMEOUT => panic!(
                    "notifications missing: {} Downs, {} of {} exit signals",
                    watched.len(),
                    notified.len(),
                    CHAINS * per_chain
                ),
            }
        }
    }
}

#[test]
fn ten_thousand_chain_processes_crash_and_restart_with_exactly_once_notifications() {
    use chains::*;
    run(async {
        let driver = self_pid();
        let starts: Arc<Vec<AtomicUsize>> = Arc::new((0..CHAINS).map(|_| AtomicUsize::new(0)).collect());
        let spec = (0..CHAINS).fold(
            // Exactly enough restarts: one more would end the supervisor.
            SupervisorSpec::new(Strategy::OneForOne).intensity((CHAINS * ROUNDS) as u32, Duration::from_secs(60)),
            |spec, chain| {
                let starts = starts.clone();
                spec.child(ChildSpec::process(format!("chain-{chain}"), move || {
                    let generation = starts[chain].fetch_add(1, Ordering::SeqCst);
                    link(driver, chain, generation, 0, Vec::with_capacity(LENGTH))
                }))
            },
        );
        let sup = supervisor::start_link(spec).await.unwrap();

        let mut early = Vec::new();
        for round in 0..ROUNDS {
            let chains = collect_ready(round, &mut early).await;
            let watched = watch(&chains);
            for (chain, pids) in chains.iter().enumerate() {
                pids[LENGTH - 1].send(Crash(reason(chain, round)));
            }
            let downstream = |position| position + 1;
            collect_notifications(&chains, watched, round, downstream, |chain| reason(chain, round), &mut early).await;
        }

        // Every chain was restarted once per crash, and only then.
        let last = collect_ready(ROUNDS, &mut early).await;
        let children = sup.which_children().await.unwrap();
        assert_eq!(children.len(), CHAINS);
        for (chain, child) in children.iter().enumerate() {
            assert_eq!(child.id, format!("chain-{chain}"));
            assert_eq!(child.pid, Some(last[chain][0]), "the supervisor knows the newest head");
            assert_eq!(starts[chain].load(Ordering::SeqCst), ROUNDS + 1, "chain {chain}: one start per round");
        }
        assert!(recv_timeout::<Down>(Duration::ZERO).await.is_none(), "a stray Down");
        assert!(recv_timeout::<Notified>(Duration::ZERO).await.is_none(), "a stray notification");

        // Shutting the supervisor down takes the last chains with it: the
        // heads are shut down, and the signal travels down the links.
        let watched = watch(&last);
        sup.stop(ExitReason::Normal, TIMEOUT).await.unwrap();
        let upstream = |position| position - 1;
        let shutdown = |_| ExitReason::Shutdown(None);
        collect_notifications(&last, watched, ROUNDS, upstream, shutdown, &mut early).await;
        assert!(early.is_empty(), "no chain restarted after the supervisor stopped");
    });
}

/// A child that exits with the reason it is sent; odd ones trap exits and
/// exit with the supervisor's shutdown signal's reason.
fn crasher(index: usize, starts: &Arc<Vec<AtomicUsize>>) -> ChildSpec {
    let starts = starts.clone();
    let shutdown = match index % 3 {
        0 => Shutdown::BrutalKill,
        1 => Shutdown::Timeout(Duration::from_secs(5)),
        _ => Shutdown::Infinity,
    };
    ChildSpec::process(format!("c{index}"), move || {
        starts[index].fetch_add(1, Ordering::SeqCst);
        async move {
            if index % 2 == 1 {
                trap_exit(true);
            }
            receive! {
                Crash(reason): Crash => reason,
                exit: Exit => exit.reason,
                after IDLE => ExitReason::Normal,
            }
        }
    })
    .shutdown(shutdown)
}

/// Starts a supervisor of `children` crashers with `strategy`; every round
/// crashes all of them at once and waits until they have exited. `check`
/// sees the start counts after each round.
fn crash_all_at_once(
    strategy: Strategy,
    children: usize,
    rounds: usize,
    check: impl Fn(usize, &[usize]) + Send + 'static,
) {
    run(async move {
        let starts: Arc<Vec<AtomicUsize>> = Arc::new((0..children).map(|_| AtomicUsize::new(0)).collect());
        let spec = (0..children)
            .fold(SupervisorSpec::new(strategy).intensity(u32::MAX, Duration::from_secs(60)), |spec, index| {
                spec.child(crasher(index, &starts))
            });
        let sup = supervisor::start_link(spec).await.unwrap();
        for round in 0..rounds {
            let before = running(&sup, children).await;
            let mut watched: HashMap<MonitorRef, Pid> = before.iter().map(|&pid| (monitor(pid), pid)).collect();
            for &pid in &before {
                pid.send(Crash(ExitReason::Error(format!("round {round}"))));
            }
            while !watched.is_empty() {
                let down = recv_timeout::<Down>(TIMEOUT).await.expect("every old child exits");
                let pid = watched.remove(&down.reference).expect("exactly one Down per monitor");
                assert_eq!(down.pid, pid);
            }
            // Every old child's exit signal reached the supervisor before its
            // Down reached us, so this is answered after the restarts.
            let after = running(&sup, children).await;
            for (old, new) in before.iter().zip(&after) {
                assert_ne!(old, new, "round {round}: every child was replaced");
            }
            let counts: Vec<usize> = starts.iter().map(|s| s.load(Ordering::SeqCst)).collect();
            check(round, &counts);
        }
    });
}

/// The Pids of all `children`, which must all be running.
async fn running(sup: &SupervisorRef, children: usize) -> Vec<Pid> {
    let pids: Vec<Pid> = sup.which_children().await.unwrap().into_iter().filter_map(|c| c.pid).collect();
    assert_eq!(pids.len(), children, "all children running");
    pids
}

#[test]
fn one_for_all_restarts_everyone_once_when_all_crash_together() {
    const ROUNDS: usize = 25;
    crash_all_at_once(Strategy::OneForAll, 20, ROUNDS, |round, counts| {
        // The exits that race with the restart are flushed with the shut
        // down children: one restart per round, whoever crashed first.
        assert!(counts.iter().all(|&n| n == round + 2), "round {round}: {counts:?}");
    });
}

#[test]
fn rest_for_one_keeps_later_children_restarted_when_all_crash_together() {
    crash_all_at_once(Strategy::RestForOne, 20, 25, |round, counts| {
        // A child is restarted whenever one before it is: the counts never
        // decrease along the start order.
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "round {round}: {counts:?}");
        // The first child is never shut down for another: it crashes, once.
        assert_eq!(counts[0], round + 2, "round {round}: {counts:?}");
    });
}

#[test]
fn one_for_one_restarts_each_crashed_child_once() {
    crash_all_at_once(Strategy::OneForOne, 200, 10, |round, counts| {
        assert!(counts.iter().all(|&n| n == round + 2), "round {round}: {counts:?}");
    });
}
