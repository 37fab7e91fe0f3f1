//! Links and exit signals: Erlang's rules (reference manual, "Processes").

mod util;

use std::time::Duration;

use krarup_runtime::{
    call, call_start, exit, link, monitor, monitored_by, recv, recv_timeout, self_pid, spawn, spawn_link,
    spawn_monitor, trap_exit, unlink, Call, CallError, Down, Exit, ExitReason, Pid,
};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, recv_bounded, runtime, TIMEOUT};

#[derive(Debug, Serialize, Deserialize)]
struct Go;

/// Waits for `Go`, then exits with `reason`.
async fn exit_on_go(reason: ExitReason) -> ExitReason {
    let Go = recv_bounded::<Go>().await;
    reason
}

/// Waits (bounded) for a message that never comes; reports nothing.
async fn idle() {
    let _ = recv_timeout::<Go>(TIMEOUT * 2).await;
}

#[test]
fn a_crash_kills_a_linked_process_with_the_same_reason() {
    let rt = runtime(2);
    let reason = rt.block_on(async {
        let me = self_pid();
        let partner = spawn(async move {
            let crasher = spawn_link(exit_on_go(ExitReason::Error("boom".into())));
            me.send(crasher);
            idle().await;
        });
        let watch = monitor(partner);
        let crasher: Pid = recv_bounded().await;
        crasher.send(Go);
        down_of(watch).await.reason
    });
    assert_eq!(reason, ExitReason::Error("boom".into()));
}

#[test]
fn a_process_that_traps_exits_receives_exit_messages() {
    let rt = runtime(2);
    let got = rt.block_on(async {
        assert!(!trap_exit(true), "not trapping before");
        let child = spawn_link(exit_on_go(ExitReason::Error("boom".into())));
        child.send(Go);
        let exit: Exit = recv_bounded().await;
        (exit.from == child, exit.reason)
    });
    assert_eq!(got, (true, ExitReason::Error("boom".into())));
}

#[test]
fn normal_exit_signal_is_ignored() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_link(exit_on_go(ExitReason::Normal));
        let watch = monitor(child);
        child.send(Go);
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        // Still alive: the Normal signal through the link was ignored.
        let target = spawn(idle());
        let w = monitor(target);
        exit(target, ExitReason::Normal);
        exit(target, ExitReason::Kill);
        assert_eq!(down_of(w).await.reason, ExitReason::Killed, "Normal was ignored, Kill was not");
    });
}

#[test]
fn kill_cannot_be_trapped() {
    let rt = runtime(2);
    let reason = rt.block_on(async {
        let me = self_pid();
        let victim = spawn(async move {
            trap_exit(true);
            me.send(Go);
            idle().await;
        });
        let w = monitor(victim);
        let Go = recv_bounded::<Go>().await;
        exit(victim, ExitReason::Kill);
        down_of(w).await.reason
    });
    assert_eq!(reason, ExitReason::Killed);
}

#[test]
fn kill_through_a_link_is_trappable() {
    let rt = runtime(2);
    let got = rt.block_on(async {
        trap_exit(true);
        // A process that itself exits with reason Kill: its link carries an
        // ordinary reason.
        let child = spawn_link(exit_on_go(ExitReason::Kill));
        child.send(Go);
        recv_bounded::<Exit>().await.reason
    });
    assert_eq!(got, ExitReason::Kill);
}

#[test]
fn link_to_dead_pid_gives_noproc() {
    let rt = runtime(2);
    rt.block_on(async {
        let (dead, w) = spawn_monitor(async {});
        assert!(down_of(w).await.reason.is_normal());
        // Trapping: an Exit message.
        trap_exit(true);
        link(dead);
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: dead, reason: ExitReason::NoProc });
        trap_exit(false);
        // Not trapping: the caller exits with NoProc.
        let linker = spawn(async move {
            link(dead);
            idle().await;
        });
        assert_eq!(exit_reason(linker).await, ExitReason::NoProc);
    });
}

#[test]
fn unlink_stops_the_link_from_carrying_an_exit() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let survivor = spawn(async move {
            let crasher = spawn_link(exit_on_go(ExitReason::Error("boom".into())));
            unlink(crasher);
            me.send(crasher);
            idle().await;
        });
        let watch_survivor = monitor(survivor);
        let crasher: Pid = recv_bounded().await;
        let watch_crasher = monitor(crasher);
        crasher.send(Go);
        assert_eq!(down_of(watch_crasher).await.reason, ExitReason::Error("boom".into()));
        // The survivor lives on: killing it now is what ends it.
        exit(survivor, ExitReason::Kill);
        assert_eq!(down_of(watch_survivor).await.reason, ExitReason::Killed);
    });
}

#[test]
fn repeated_link_is_one_link() {
    let rt = runtime(2);
    rt.block_on(async {
        trap_exit(true);
        let child = spawn(exit_on_go(ExitReason::Error("once".into())));
        link(child);
        link(child);
        child.send(Go);
        assert_eq!(recv_bounded::<Exit>().await.reason, ExitReason::Error("once".into()));
        assert!(recv_timeout::<Exit>(Duration::from_millis(50)).await.is_none(), "exactly one Exit");
    });
}

#[test]
fn late_reply_after_call_timeout_is_discarded() {
    let rt = runtime(2);
    rt.block_on(async {
        // Replies only when told to, long after the caller gave up.
        let slow = spawn(async {
            let c: Call<u32, u32> = recv().await;
            let Go = recv_bounded::<Go>().await;
            c.reply_to.reply(c.request + 1);
            let Go = recv_bounded::<Go>().await;
        });
        let w = monitor(slow);
        assert_eq!(call::<u32, u32>(slow, 1, Duration::from_millis(20)).await, Err(CallError::Timeout));
        slow.send(Go); // now it replies...
        slow.send(Go); // ...and exits
        assert!(down_of(w).await.reason.is_normal());
        // The reply never reached the mailbox.
        assert!(recv_timeout::<u32>(Duration::ZERO).await.is_none());
        assert_eq!(krarup_runtime::mailbox_len(self_pid()), Some(0));
    });
}

#[test]
fn deferred_calls_are_in_flight_together_and_each_gets_its_own_reply() {
    let rt = runtime(2);
    rt.block_on(async {
        // Answers the second request first, then the first.
        let server = spawn(async {
            let first: Call<u32, u32> = recv().await;
            let second: Call<u32, u32> = recv().await;
            second.reply_to.reply(second.request * 10);
            first.reply_to.reply(first.request * 10);
        });
        let one = call_start::<u32, u32>(server, 1);
        let two = call_start::<u32, u32>(server, 2);
        assert_eq!(one.wait(TIMEOUT).await, Ok(10));
        assert_eq!(two.wait(TIMEOUT).await, Ok(20));
        assert_eq!(krarup_runtime::mailbox_len(self_pid()), Some(0));
    });
}

#[test]
fn an_abandoned_deferred_call_leaves_no_reply_and_no_monitor() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(async {
            let c: Call<u32, u32> = recv().await;
            let Go = recv_bounded::<Go>().await;
            c.reply_to.reply(c.request + 1);
            let Go = recv_bounded::<Go>().await;
        });
        let w = monitor(server);
        drop(call_start::<u32, u32>(server, 1));
        assert_eq!(monitored_by(server).map(|m| m.len()), Some(1), "only the test's own monitor is left");
        server.send(Go); // it replies to the abandoned call...
        server.send(Go); // ...and exits
        assert!(down_of(w).await.reason.is_normal());
        assert_eq!(krarup_runtime::mailbox_len(self_pid()), Some(0), "the reply was turned away");
    });
}

#[test]
fn call_to_a_dead_server_fails_fast_with_noproc() {
    let rt = runtime(2);
    rt.block_on(async {
        let (dead, w) = spawn_monitor(async {});
        assert!(down_of(w).await.reason.is_normal());
        let started = std::time::Instant::now();
        assert_eq!(call::<u32, u32>(dead, 1, TIMEOUT).await, Err(CallError::NoProc));
        assert!(started.elapsed() < TIMEOUT, "failed fast");
    });
}

#[test]
fn call_to_a_server_that_crashes_reports_its_reason() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(async {
            let _c: Call<u32, u32> = recv().await;
            ExitReason::Error("no".into())
        });
        assert_eq!(call::<u32, u32>(server, 1, TIMEOUT).await, Err(CallError::Exited(ExitReason::Error("no".into()))));
        let _ = recv_timeout::<Down>(Duration::ZERO).await.map(|d| panic!("a Down leaked: {d:?}"));
    });
}

#[test]
fn a_caller_killed_mid_call_leaves_no_monitor_on_the_server() {
    let rt = runtime(2);
    rt.block_on(async {
        // A server that never answers.
        let (server, w_server) = spawn_monitor(async {
            let _c: Call<u32, u32> = recv_bounded().await;
            let Go = recv_bounded::<Go>().await;
        });
        let (caller, w_caller) = spawn_monitor(async move {
            let _ = call::<u32, u32>(server, 1, TIMEOUT).await;
        });
        // Wait until the caller's monitor is on the server, then kill the caller.
        let mut spins = 0;
        while !krarup_runtime::monitored_by(server).unwrap_or_default().contains(&caller) {
            krarup_runtime::yield_now().await;
            spins += 1;
            assert!(spins < 1_000_000, "the call never started");
        }
        exit(caller, ExitReason::Kill);
        assert_eq!(down_of(w_caller).await.reason, ExitReason::Killed);
        // The dead caller's monitor is gone from the server (only ours is left).
        assert_eq!(krarup_runtime::monitored_by(server), Some(vec![self_pid()]));
        server.send(Go);
        assert!(down_of(w_server).await.reason.is_normal());
    });
}

#[test]
fn links_lists_both_sides_and_dies_with_the_link() {
    let rt = runtime(2);
    rt.block_on(async {
        trap_exit(true);
        let child = spawn_link(exit_on_go(ExitReason::Error("x".into())));
        assert_eq!(krarup_runtime::links(child), Some(vec![self_pid()]));
        assert_eq!(krarup_runtime::links(self_pid()), Some(vec![child]));
        child.send(Go);
        let _exit: Exit = recv_bounded().await;
        assert_eq!(krarup_runtime::links(self_pid()), Some(vec![]), "the link died with the child");
        assert_eq!(krarup_runtime::links(child), None);
    });
}
