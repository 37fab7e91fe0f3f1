//! A call's deadline (`timer::deadline::Deadline`) and the standing wake-up
//! timers its process shares between calls (`timer/standing.rs`): every call
//! times out no earlier than its own timeout, whatever timers earlier calls
//! left, whoever else shares its slot of a worker's table, and whichever
//! worker it ends up on; and it counts from its first miss although the
//! first miss reads no clock (`timer/stamp.rs`): not from the worker's last
//! reading, however long ago a poll made that.

mod util;

use std::time::{Duration, Instant};

use krarup_runtime::{call, mailbox_len, self_pid, spawn, CallError, Pid};
use util::{holding_server as server, recv_bounded, runtime, Go, Release, TIMEOUT};

/// How late a lone call on an otherwise idle runtime may time out: its
/// timer's tick and a wake-up, with room for a noisy machine.
const LATE: Duration = Duration::from_millis(200);

/// One unanswered call of `timeout`: whether it timed out no earlier than
/// `timeout` (and well before [`TIMEOUT`]), and how long it took.
async fn times_out_on_time(server: Pid, timeout: Duration) -> Result<(), String> {
    times_out_within(server, timeout, TIMEOUT / 2 - timeout).await
}

/// One unanswered call of `timeout`: whether it timed out no earlier than
/// `timeout` and less than `late` after it.
async fn times_out_within(server: Pid, timeout: Duration, late: Duration) -> Result<(), String> {
    let started = Instant::now();
    let result = call::<u64, u64>(server, 0, timeout).await;
    let took = started.elapsed();
    if result != Err(CallError::Timeout) || took < timeout || took >= timeout + late {
        return Err(format!("a {timeout:?} call gave {result:?} after {took:?}"));
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

/// A caller whose calls alternate answered and unanswered ones with
/// timeouts that go down and up: its standing timer is kept, replaced by an
/// earlier one, or (when another caller holds its slot) not used at all.
async fn caller(parent: Pid, server: Pid, k: u64) {
    let mut outcome = Ok(());
    for timeout_ms in [40 + k % 20, 20, 60] {
        let timeout = Duration::from_millis(timeout_ms);
        if call::<u64, u64>(server, k + 1, TIMEOUT).await != Ok(k + 2) {
            outcome = Err(format!("caller {k}: a call was not answered"));
            break;
        }
        if let Err(e) = times_out_on_time(server, timeout).await {
            outcome = Err(format!("caller {k}: {e}"));
            break;
        }
    }
    parent.send(outcome);
}

/// More callers than a page of a worker's table has entries (256), on two
/// workers with stealing: each call times out on time.
#[test]
fn calls_of_many_callers_time_out_on_time() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        let callers = 600;
        for k in 0..callers {
            spawn(caller(me, server, k));
        }
        for _ in 0..callers {
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
        server.send(Release);
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2));
        assert_eq!(mailbox_len(self_pid()), Some(0), "late replies were turned away");
    });
}

/// Two callers whose slot indices are a whole standing table apart (65,536)
/// share an entry: whichever finds it held by the other arms a timer of its
/// own, and both time out on time. One worker, so that both use its table.
#[test]
fn callers_sharing_an_entry_of_the_standing_table_both_time_out_on_time() {
    const TABLE: u32 = 1 << 16;
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        // Waiters, each told whether to make an unanswered call, until two of
        // them are a table apart.
        let waiter = move || {
            spawn(async move {
                if recv_bounded::<bool>().await {
                    me.send(times_out_on_time(server, Duration::from_millis(50)).await);
                }
            })
        };
        let first = waiter();
        let mut others = Vec::new();
        let second = loop {
            let pid = waiter();
            if pid.index() == first.index() + TABLE {
                break pid;
            }
            assert!(others.len() < 2 * TABLE as usize, "no slot index a table apart from {first}");
            others.push(pid);
        };
        first.send(true);
        second.send(true);
        for _ in 0..2 {
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
        for pid in others {
            pid.send(false);
        }
    });
}

/// A process that takes over the slot of one that left a standing timer
/// (due in 10 s) does not rely on that timer: its short call times out on time.
#[test]
fn a_later_process_in_a_reused_slot_times_out_on_time() {
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        for round in 0..20u64 {
            spawn(async move {
                me.send(call::<u64, u64>(server, round + 1, TIMEOUT).await == Ok(round + 2));
            });
            assert!(recv_bounded::<bool>().await, "round {round}: the long call was not answered");
            spawn(async move {
                me.send(times_out_on_time(server, Duration::from_millis(20)).await);
            });
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
    });
}

/// A caller that computes for longer than its call's timeout and then
/// calls: the call's first miss comes right after, when its worker's last
/// clock reading is older than the whole timeout. The call counts from its
/// first miss all the same, and still times out within [`LATE`].
#[test]
fn a_call_after_a_long_computation_of_its_caller_times_out_on_time() {
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        for round in 0..10u64 {
            compute_for(Duration::from_millis(30));
            let timeout = Duration::from_millis(10 + round % 3);
            times_out_within(server, timeout, LATE).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    });
}

/// Another process on the caller's worker computes for longer than the
/// call's timeout, then wakes the caller, which runs next and calls at once:
/// the call counts from its first miss, not from the worker's reading before
/// that long poll, and still times out within [`LATE`].
#[test]
fn a_call_after_a_long_poll_of_another_process_on_its_worker_times_out_on_time() {
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        for round in 0..10u64 {
            let timeout = Duration::from_millis(10 + round % 3);
            let caller = spawn(async move {
                recv_bounded::<Go>().await;
                me.send(times_out_within(server, timeout, LATE).await);
            });
            spawn(async move {
                compute_for(Duration::from_millis(30));
                caller.send(Go);
            });
            recv_bounded::<Result<(), String>>().await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    });
}

/// Many callers on two workers, each computing for a while before each of
/// its calls (so the last clock reading of whichever worker runs it is
/// stale), moving between the workers as they steal from each other, with
/// answered calls between unanswered ones: no call times out early.
#[test]
fn calls_of_migrating_callers_after_long_polls_never_time_out_early() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        let callers = 100;
        for k in 0..callers {
            spawn(async move {
                let mut outcome = Ok(());
                for round in 0..3u64 {
                    compute_for(Duration::from_micros(300 * ((k + round) % 4)));
                    if call::<u64, u64>(server, k + 1, TIMEOUT).await != Ok(k + 2) {
                        outcome = Err(format!("caller {k}: a call was not answered"));
                        break;
                    }
                    compute_for(Duration::from_micros(300 * ((k + round + 1) % 4)));
                    let timeout = Duration::from_millis(2 + (k + round) % 7);
                    if let Err(e) = times_out_on_time(server, timeout).await {
                        outcome = Err(format!("caller {k}, round {round}: {e}"));
                        break;
                    }
                }
                me.send(outcome);
            });
        }
        for _ in 0..callers {
            recv_bounded::<Result<(), String>>().await.unwrap();
        }
    });
}
