//! When a receive with a timeout (`recv_timeout`, `receive!` with `after`)
//! times out, now that it keeps its deadline as a call does
//! (`timer/deadline.rs`): counted from its first miss although that miss
//! reads no clock (`timer/stamp.rs`), so never early however stale its
//! worker's last clock reading is; woken by its process's standing timer
//! (`timer/standing.rs`), so the timers of receives that matched or were
//! dropped before never end a later one early; on time on whichever worker
//! it ends up; and never for a timeout too long to represent.

mod util;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use krarup_runtime::{receive, recv, recv_timeout, self_pid, sleep, spawn, Pid};
use serde::{Deserialize, Serialize};
use util::{finishes_within, recv_bounded, runtime, Go, Spinner, TIMEOUT};

/// What the receives under test wait for; sent only where a test says so.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Late;

/// A message no receive under test wants: it wakes the receive, nothing more.
#[derive(Debug, Serialize, Deserialize)]
struct Nudge;

/// How late a receive may time out on a runtime doing little else: its
/// timer's tick and a wake-up, with room for a noisy machine.
const LATE: Duration = Duration::from_millis(200);

/// How long a test may run: a receive that never times out (or a wait for
/// one, as `recv_bounded`'s is) fails the test after this instead of
/// hanging it.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `test` as a process of a fresh runtime with `workers` workers, on a
/// thread of its own, for at most [`BOUND`].
fn run(workers: usize, test: impl Future<Output = ()> + Send + 'static) {
    finishes_within(BOUND, "the test", move || runtime(workers).block_on(test));
}

/// The two ways to receive with a timeout.
#[derive(Clone, Copy, Debug)]
enum Way {
    RecvTimeout,
    After,
}

/// Alternates the ways, round by round.
fn way(round: u64) -> Way {
    if round.is_multiple_of(2) {
        Way::RecvTimeout
    } else {
        Way::After
    }
}

/// Waits at most `timeout` for a [`Late`]; whether one came.
async fn wait_for_late(way: Way, timeout: Duration) -> bool {
    match way {
        Way::RecvTimeout => recv_timeout::<Late>(timeout).await.is_some(),
        Way::After => receive! {
            Late => true,
            after timeout => false,
        },
    }
}

/// One receive of `timeout` that nothing answers: whether it timed out no
/// earlier than `timeout` and less than `late` after it.
async fn times_out_within(way: Way, timeout: Duration, late: Duration) -> Result<(), String> {
    let started = Instant::now();
    let got = wait_for_late(way, timeout).await;
    let took = started.elapsed();
    if got || took < timeout || took >= timeout + late {
        let what = if got { "matched" } else { "timed out" };
        return Err(format!("a {timeout:?} receive ({way:?}) {what} after {took:?}"));
    }
    Ok(())
}

/// Computes for `duration` without an `.await`: the worker polling this
/// process reads no clock meanwhile, so its last reading grows stale.
fn compute_for(duration: Duration) {
    let started = Instant::now();
    while started.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// The worker thread this runs on (its name ends in `-w<index>`).
fn worker() -> String {
    std::thread::current().name().unwrap_or("unnamed").to_owned()
}

/// Awaits `future`, noting every worker it is polled on.
async fn polled_on<F: Future>(future: F, workers: &mut BTreeSet<String>) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        workers.insert(worker());
        future.as_mut().poll(cx)
    })
    .await
}

/// Polls `future` once and drops it; whether it was done.
async fn poll_once<F: Future>(future: F) -> bool {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx).is_ready())).await
}

/// Answers `(from, n)` with `n`, forever.
async fn echo() {
    loop {
        let (from, n): (Pid, u64) = recv().await;
        from.send(n);
    }
}

/// A process computes for longer than its receive's timeout and then
/// receives: the receive's first miss comes when its worker's last clock
/// reading is older than the whole timeout. It counts from its first miss
/// all the same (a deadline counted from that reading would end it at
/// once), and still times out within [`LATE`].
#[test]
fn a_receive_after_a_long_computation_of_its_process_times_out_on_time() {
    run(1, async {
        for round in 0..10u64 {
            compute_for(Duration::from_millis(30));
            let timeout = Duration::from_millis(10 + round % 3);
            times_out_within(way(round), timeout, LATE).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    });
}

/// Another process on the receiver's worker computes for longer than the
/// timeout, then wakes the receiver, which runs next and receives at once:
/// the receive counts from its first miss, not from the worker's reading
/// before that long poll.
#[test]
fn a_receive_after_a_long_poll_of_another_process_on_its_worker_times_out_on_time() {
    run(1, async {
        let me = self_pid();
        for round in 0..10u64 {
            let timeout = Duration::from_millis(10 + round % 3);
            let receiver = spawn(async move {
                recv_bounded::<Go>().await;
                me.send(times_out_within(way(round), timeout, LATE).await);
            });
            spawn(async move {
                compute_for(Duration::from_millis(30));
                receiver.send(Go);
            });
            recv_bounded::<Result<(), String>>().await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    });
}

/// Round trips whose receives wait with short and long timeouts, back to
/// back, each answered (or, on a slow machine, timed out no earlier than
/// its timeout): then a receive on an empty mailbox. The timers the earlier
/// receives left (due within milliseconds, while it waits) wake it early at
/// most; it times out on time. More receivers than a worker's standing
/// table has entries (256), so some receives arm timers of their own.
#[test]
fn receives_that_matched_leave_nothing_that_ends_a_later_one_early() {
    run(1, async {
        let me = self_pid();
        let server = spawn(echo());
        let receivers = 300u64;
        for k in 0..receivers {
            spawn(async move {
                let mut outcome = Ok(());
                for n in 0..40u64 {
                    let timeout = Duration::from_millis([2, 9, 3_000, 1, 20][(n % 5) as usize]);
                    server.send((self_pid(), n));
                    let started = Instant::now();
                    let reply = match way(n + k) {
                        Way::RecvTimeout => recv_timeout::<u64>(timeout).await,
                        Way::After => receive! {
                            n: u64 => Some(n),
                            after timeout => None,
                        },
                    };
                    let took = started.elapsed();
                    let reply = match reply {
                        Some(reply) => reply,
                        // Legitimate on a busy machine, if not early; the
                        // reply still comes, and is taken out of the way.
                        None if took >= timeout => recv_bounded::<u64>().await,
                        None => {
                            outcome = Err(format!("receiver {k}: a {timeout:?} receive timed out after {took:?}"));
                            break;
                        }
                    };
                    if reply != n {
                        outcome = Err(format!("receiver {k}: reply {reply} to {n}"));
                        break;
                    }
                }
                if outcome.is_ok() {
                    let timeout = Duration::from_millis(30);
                    outcome = times_out_within(way(k), timeout, TIMEOUT / 2 - timeout).await;
                }
                me.send(outcome.map_err(|e| format!("receiver {k}: {e}")));
            });
        }
        for _ in 0..receivers {
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
    });
}

/// Receives polled once (their first miss arms or finds a timer due within
/// milliseconds) and dropped, then a receive on an empty mailbox: it times
/// out on time. More receivers than a worker's standing table has entries,
/// so some of the dropped receives had timers of their own.
#[test]
fn a_dropped_receive_leaves_nothing_that_ends_a_later_one_early() {
    run(1, async {
        let me = self_pid();
        let receivers = 300u64;
        for k in 0..receivers {
            spawn(async move {
                let short = Duration::from_millis(1 + k % 5);
                let dropped = [
                    poll_once(recv_timeout::<Late>(short)).await,
                    poll_once(async move {
                        receive! {
                            Late => {},
                            after short => {},
                        }
                    })
                    .await,
                ];
                let outcome = if dropped != [false, false] {
                    Err(format!("receiver {k}: a receive on an empty mailbox ended at its first poll"))
                } else {
                    let timeout = Duration::from_millis(30);
                    times_out_within(way(k), timeout, TIMEOUT / 2 - timeout).await
                };
                me.send(outcome.map_err(|e| format!("receiver {k}: {e}")));
            });
        }
        for _ in 0..receivers {
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
    });
}

/// A receive starts waiting on one worker and, woken by a message it does
/// not want sent from the other worker, waits on there: it still times out
/// on time. (One worker is held by a spinning process, so the receiver
/// starts on the other; the spinner, let go, sends the message, which wakes
/// the receiver onto its own worker.)
#[test]
fn a_receive_that_moves_to_another_worker_times_out_on_time() {
    run(2, async {
        let me = self_pid();
        let mut moved = 0;
        for round in 0..20u64 {
            let timeout = Duration::from_millis(30);
            let spinner = Spinner::new();
            let target: Arc<OnceLock<Pid>> = Arc::default();
            let (held, to) = (spinner.clone(), target.clone());
            spawn(async move {
                if held.spin() {
                    if let Some(&receiver) = to.get() {
                        receiver.send(Nudge);
                    }
                }
            });
            spinner.until_spinning().await;
            // This process now runs on the other worker, and the receiver
            // starts there too.
            let receiver = spawn(async move {
                let mut workers = BTreeSet::new();
                me.send(Go);
                let started = Instant::now();
                let got = polled_on(wait_for_late(way(round), timeout), &mut workers).await;
                me.send((got, started.elapsed(), workers));
            });
            recv_bounded::<Go>().await;
            target.set(receiver).expect("set once");
            spinner.let_go();
            let (got, took, workers) = recv_bounded::<(bool, Duration, BTreeSet<String>)>().await;
            assert!(
                !got && took >= timeout && took < timeout + LATE,
                "round {round}: a {timeout:?} receive polled on {workers:?} {} after {took:?}",
                if got { "matched" } else { "timed out" }
            );
            if workers.len() == 2 {
                moved += 1;
                if moved == 3 {
                    break;
                }
            }
        }
        assert!(moved > 0, "no receive was polled on both workers");
    });
}

/// A timeout of 2^63 ns (292 years) or more never ends the receive, however
/// often other messages wake it: it takes the message that comes at last.
#[test]
fn a_timeout_too_long_to_pass_never_ends_the_receive() {
    run(2, async {
        let me = self_pid();
        let timeouts = [
            Duration::MAX,
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(1 << 63),
            Duration::from_nanos((1 << 63) + 1_000_000),
            Duration::from_secs(300 * 365 * 24 * 3600),
        ];
        for (round, timeout) in timeouts.into_iter().enumerate() {
            for round in [2 * round as u64, 2 * round as u64 + 1] {
                let receiver = spawn(async move {
                    me.send(wait_for_late(way(round), timeout).await);
                });
                // Time passes between the wake-ups (more than the part of
                // the timeout past 2^63 ns), so a deadline that lost its top
                // bit would have passed by the second.
                for _ in 0..3 {
                    sleep(Duration::from_millis(3)).await;
                    receiver.send(Nudge);
                }
                receiver.send(Late);
                assert!(recv_bounded::<bool>().await, "round {round}: a {timeout:?} receive timed out");
            }
        }
    });
}
