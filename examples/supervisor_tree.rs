//! Supervision: fail-stop processes, "let it crash", and the supervisor
//! that puts them back — the lecture's answer to "what do we do when a
//! process fails?".
//!
//! A worker does not defend itself against every error: when something
//! goes wrong it stops (a *fail-stop* process — it crashes, cleanly and
//! visibly, instead of carrying on in a bad state). Its exit reaches its
//! supervisor through a link; the supervisor traps exits and restarts it in
//! a known good state. Which workers it restarts is its *strategy*:
//!
//! - `one_for_one`: only the worker that crashed;
//! - `one_for_all`: all workers (they cannot work without each other);
//! - `rest_for_one`: the crashed worker and those started after it (they
//!   depend on it).
//!
//! A supervisor is itself a process that can fail, so supervisors under
//! supervisors make a *supervision tree*. If its workers crash too often —
//! more than `--max-restarts` restarts within `--period-ms` — restarting
//! is not helping: the supervisor shuts them all down and exits, leaving
//! the problem to the level above (here: `main`, which reports it).
//!
//! Here three workers `a`, `b`, `c` (started in that order) run under one
//! supervisor, and a chaos monkey crashes them: after a random pause it
//! picks a worker and a way to crash it (a panic, an error, a kill, or a
//! normal exit — a permanent worker is restarted even then), from a
//! seeded SplitMix64 generator, so a seed replays the same run. After each
//! crash it asks the supervisor for its children and checks that exactly
//! the workers the strategy names were restarted. It stops after
//! `--crashes` crashes or when the supervisor gives up, and exits with 0 if
//! everything matched the strategy (and the supervisor gave up only, and
//! always, when the restart intensity said so), with 1 otherwise.
//!
//! ```text
//! cargo run --release --example supervisor_tree -- --strategy one_for_all
//! cargo run --release --example supervisor_tree -- --strategy rest_for_one --seed 2
//! ```
//!
//! Flags: `--strategy one_for_one|one_for_all|rest_for_one` (default
//! `one_for_one`), `--seed N` (1), `--crashes N` (20), `--max-restarts N`
//! (4), `--period-ms N` (500), `--pause-ms N` (longest pause between
//! crashes, 300). With the defaults, seed 1 survives its 20 crashes and
//! seed 2 makes the supervisor give up.

mod common;

use std::time::{Duration, Instant};

use common::rng::SplitMix;
use krarup::prelude::*;
use krarup::supervisor::{self, ChildSpec, Strategy, SupervisorRef, SupervisorSpec};
use krarup::{exit, is_alive, trap_exit, Exit};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: supervisor_tree [--strategy one_for_one|one_for_all|rest_for_one] [--seed N] \
                     [--crashes N] [--max-restarts N] [--period-ms N] [--pause-ms N]";

/// The workers, in start order.
const WORKERS: [&str; 3] = ["a", "b", "c"];

/// How long main waits for anything before it calls the run a failure.
const PATIENCE: Duration = Duration::from_secs(5);

/// Timing noise allowed when main checks the restart intensity with its
/// own clock (it sees a crash slightly after the supervisor counted it).
const SLACK: Duration = Duration::from_millis(25);

/// What the chaos monkey tells a worker.
#[derive(Debug, Serialize, Deserialize)]
enum Order {
    Panic,
    Fail,
    Quit,
}

// ANCHOR: worker
/// A worker: it has no real work here; it waits for the monkey's order
/// and obeys it.
async fn worker(name: &'static str) -> ExitReason {
    match recv::<Order>().await {
        Order::Panic => panic!("{name}: bad luck"),
        Order::Fail => ExitReason::Error(format!("{name} gave up")),
        Order::Quit => ExitReason::Normal,
    }
}
// ANCHOR_END: worker

struct Options {
    strategy: Strategy,
    name: String,
    seed: u64,
    crashes: usize,
    max_restarts: u32,
    period: Duration,
    pause_ms: u64,
}

/// The workers the strategy restarts when `crashed` crashes.
fn expected(strategy: Strategy, crashed: usize) -> Vec<usize> {
    match strategy {
        Strategy::OneForOne => vec![crashed],
        Strategy::OneForAll => (0..WORKERS.len()).collect(),
        Strategy::RestForOne => (crashed..WORKERS.len()).collect(),
    }
}

fn names(workers: &[usize]) -> String {
    workers.iter().map(|&w| WORKERS[w]).collect::<Vec<_>>().join(", ")
}

/// The workers' Pids, or None if the supervisor is gone.
async fn children(sup: &SupervisorRef) -> Option<Vec<Option<Pid>>> {
    sup.which_children().await.ok().map(|children| children.into_iter().map(|c| c.pid).collect())
}

/// How long the last `n` crashes took, if there were `n`.
fn span_of_last(times: &[Instant], n: usize) -> Option<Duration> {
    (n > 0 && times.len() >= n).then(|| times[times.len() - 1] - times[times.len() - n])
}

/// The run; true if the supervisor behaved as its strategy says.
async fn chaos(opts: Options) -> bool {
    let t0 = Instant::now();
    let stamp = move || format!("{:>6} ms", t0.elapsed().as_millis());
    trap_exit(true);
    // ANCHOR: start
    let spec = WORKERS
        .iter()
        .fold(SupervisorSpec::new(opts.strategy).intensity(opts.max_restarts, opts.period), |spec, &name| {
            spec.child(ChildSpec::process(name, move || worker(name)))
        });
    let sup = supervisor::start_link(spec).await.expect("the supervisor starts");
    // ANCHOR_END: start
    let sup_watch = monitor(sup.pid());
    let mut pids = children(&sup).await.expect("the supervisor answers");
    let started: Vec<_> = WORKERS.iter().zip(&pids).map(|(n, p)| format!("{n} {}", p.unwrap())).collect();
    println!("{}  supervisor {} started {}", stamp(), sup.pid(), started.join(", "));

    let mut rng = SplitMix::new(opts.seed);
    let mut ok = true;
    let mut crash_times = Vec::new();
    let limit = opts.max_restarts as usize + 1;
    for n in 1..=opts.crashes {
        sleep(Duration::from_millis(20 + rng.below(opts.pause_ms.max(1)))).await;
        let victim = rng.below(WORKERS.len() as u64) as usize;
        let pid = pids[victim].expect("every worker runs between crashes");
        let watch = monitor(pid);
        let how = match rng.below(4) {
            0 => {
                pid.send(Order::Panic);
                "panics"
            }
            1 => {
                pid.send(Order::Fail);
                "gives up"
            }
            2 => {
                exit(pid, ExitReason::Kill);
                "is killed"
            }
            _ => {
                pid.send(Order::Quit);
                "quits normally"
            }
        };
        let reason = receive! {
            down: Down if down.reference == watch => down.reason,
            after PATIENCE => {
                println!("{}  FAIL: worker {} did not exit", stamp(), WORKERS[victim]);
                return false;
            }
        };
        crash_times.push(Instant::now());
        println!("{}  crash {n}: {} {how} ({reason})", stamp(), WORKERS[victim]);

        // The supervisor got the worker's exit before main got the Down, so
        // it answers after it has handled it.
        let Some(after) = children(&sup).await else {
            return gave_up(&opts, &sup_watch, &pids, &crash_times, &stamp).await && ok;
        };
        let restarted: Vec<usize> = (0..WORKERS.len()).filter(|&w| after[w].is_some() && after[w] != pids[w]).collect();
        let want = expected(opts.strategy, victim);
        let moves: Vec<_> = restarted
            .iter()
            .map(|&w| format!("{} {} -> {}", WORKERS[w], pids[w].unwrap(), after[w].unwrap()))
            .collect();
        if restarted == want && after.iter().all(Option::is_some) {
            println!("{}    restarted {}: as {} says", stamp(), moves.join(", "), opts.name);
        } else {
            println!(
                "{}    FAIL: restarted [{}], but {} restarts [{}]",
                stamp(),
                names(&restarted),
                opts.name,
                names(&want)
            );
            ok = false;
        }
        if span_of_last(&crash_times, limit).is_some_and(|span| span + SLACK < opts.period) {
            println!("{}    FAIL: {limit} restarts within {:?}, and the supervisor carried on", stamp(), opts.period);
            ok = false;
        }
        pids = after;
    }
    println!("{}  {} crashes survived; stopping the supervisor", stamp(), opts.crashes);
    if let Err(e) = sup.stop(ExitReason::Shutdown(None), PATIENCE).await {
        println!("{}  FAIL: the supervisor did not stop: {e}", stamp());
        return false;
    }
    ok
}

/// The supervisor exited during the run: checks that it was the restart
/// intensity, that it was due, and that it took the workers with it.
async fn gave_up(
    opts: &Options,
    sup_watch: &MonitorRef,
    pids: &[Option<Pid>],
    crash_times: &[Instant],
    stamp: &impl Fn() -> String,
) -> bool {
    let reference = *sup_watch;
    let reason = receive! {
        down: Down if down.reference == reference => down.reason,
        after PATIENCE => return false,
    };
    // Linked and trapping exits: main also gets the exit signal.
    let _ = recv_timeout::<Exit>(PATIENCE).await;
    let limit = opts.max_restarts as usize + 1;
    println!(
        "{}  the supervisor gave up ({reason}): {limit} restarts within {} ms are too many",
        stamp(),
        opts.period.as_millis()
    );
    let mut ok = true;
    if reason != ExitReason::Shutdown(Some("reached max restart intensity".into())) {
        println!("{}  FAIL: the wrong exit reason", stamp());
        ok = false;
    }
    match span_of_last(crash_times, limit) {
        Some(span) if span <= opts.period + SLACK => {
            println!("{}    (the last {limit} crashes came within {} ms)", stamp(), span.as_millis())
        }
        _ => {
            println!("{}  FAIL: it gave up, but the last {limit} crashes were not within the period", stamp());
            ok = false;
        }
    }
    let survivors: Vec<_> = pids.iter().flatten().filter(|&&pid| is_alive(pid)).collect();
    if survivors.is_empty() {
        println!("{}    all workers were shut down with it", stamp());
    } else {
        println!("{}  FAIL: workers still running: {survivors:?}", stamp());
        ok = false;
    }
    ok
}

fn main() {
    let flags = common::Flags::parse(USAGE);
    let name = flags.str("strategy").unwrap_or("one_for_one").to_owned();
    let strategy = match name.as_str() {
        "one_for_one" => Strategy::OneForOne,
        "one_for_all" => Strategy::OneForAll,
        "rest_for_one" => Strategy::RestForOne,
        other => {
            eprintln!("--strategy: expected one_for_one, one_for_all or rest_for_one, got {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let opts = Options {
        strategy,
        name,
        seed: flags.usize("seed", 1) as u64,
        crashes: flags.usize("crashes", 20),
        max_restarts: u32::try_from(flags.usize("max-restarts", 4)).unwrap_or(u32::MAX),
        period: Duration::from_millis(flags.usize("period-ms", 500) as u64),
        pause_ms: flags.usize("pause-ms", 300) as u64,
    };
    println!(
        "supervisor_tree: {} over workers {}, seed {}, at most {} restarts in {} ms, up to {} crashes",
        opts.name,
        WORKERS.join(", "),
        opts.seed,
        opts.max_restarts,
        opts.period.as_millis(),
        opts.crashes
    );

    // The workers' panics are part of the show: keep their messages out of
    // the output (the crash lines report them).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload_as_str().is_some_and(|m| m.ends_with("bad luck")) {
            default_hook(info);
        }
    }));

    let rt = Runtime::new();
    let strategy_name = opts.name.clone();
    let ok = rt.block_on(chaos(opts));
    if ok {
        println!("ok: every restart matched {strategy_name}");
    } else {
        println!("FAILED: the supervisor did not behave as {strategy_name} says");
        std::process::exit(1);
    }
}
