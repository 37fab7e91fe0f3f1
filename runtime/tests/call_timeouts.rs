//! A call's deadline (`receive::CallDeadline`) and the standing wake-up
//! timers its process shares between calls (`timer/standing.rs`): every call
//! times out no earlier than its own timeout, whatever timers earlier calls
//! left, whoever else shares its slot of a worker's table, and whichever
//! worker it ends up on.

mod util;

use std::time::{Duration, Instant};

use krarup_runtime::{call, mailbox_len, self_pid, spawn, CallError, Pid};
use util::{holding_server as server, recv_bounded, runtime, Release, TIMEOUT};

/// One unanswered call of `timeout`: whether it timed out no earlier than
/// `timeout` (and well before [`TIMEOUT`]), and how long it took.
async fn times_out_on_time(server: Pid, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let result = call::<u64, u64>(server, 0, timeout).await;
    let took = started.elapsed();
    if result != Err(CallError::Timeout) || took < timeout || took >= TIMEOUT / 2 {
        return Err(format!("a {timeout:?} call gave {result:?} after {took:?}"));
    }
    Ok(())
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

/// More callers than a worker's table has slots (256), on two workers with
/// stealing: each call, standing timer or its own, times out on time.
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
