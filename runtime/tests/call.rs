//! The runtime's `call` (`call.rs`): what a call leaves behind — nothing.
//! No monitor that can still fire stays on the server (after a reply, a
//! timeout, an abandoned deferred call, or a caller killed mid-call): the
//! server's `monitored_by` no longer lists the caller, and the server's
//! exit sends the caller nothing. A call takes one reply: a second one with
//! the same `ReplyTo` is turned away. Several calls in flight from one
//! caller each end with the server's exit, and so do the calls of a
//! thousand callers, whatever their slots. A caller with a long mailbox of
//! other messages gets every reply and every `Down` of its calls (its wait
//! does not look at that mailbox until one has come), and keeps those
//! messages, in order.

mod util;

use std::time::Duration;

use krarup_runtime::{
    call, call_start, exit, mailbox_len, monitor, monitored_by, recv, self_pid, spawn, Call, CallError, ExitReason,
};
use serde::{Deserialize, Serialize};
use util::{down_of, holding_server as server, recv_bounded, runtime, Release, TIMEOUT};

/// Answers each call twice.
async fn twice() {
    loop {
        let c: Call<u64, u64> = recv().await;
        c.reply_to.reply(c.request + 1);
        c.reply_to.reply(c.request + 2);
    }
}

#[test]
fn a_call_leaves_no_monitor_on_the_server() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        for n in 1..=100u64 {
            assert_eq!(call::<u64, u64>(server, n, TIMEOUT).await, Ok(n + 1));
        }
        assert_eq!(monitored_by(server), Some(vec![]), "after replies");
        assert_eq!(call::<u64, u64>(server, 0, Duration::from_millis(10)).await, Err(CallError::Timeout));
        assert_eq!(monitored_by(server), Some(vec![]), "after a timeout");
        drop(call_start::<u64, u64>(server, 0));
        assert_eq!(monitored_by(server), Some(vec![]), "after an abandoned call");
        server.send(Release);
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2));
        assert_eq!(mailbox_len(self_pid()), Some(0), "late replies were turned away");
    });
}

#[test]
fn a_caller_killed_mid_call_leaves_no_monitor_on_the_server() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        let caller = spawn(async move {
            let pending = call_start::<u64, u64>(server, 0);
            me.send(());
            let _ = pending.wait(TIMEOUT).await;
        });
        let watch = monitor(caller);
        recv_bounded::<()>().await;
        assert_eq!(monitored_by(server).map(|m| m.len()), Some(1), "the call monitors the server");
        exit(caller, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        assert_eq!(monitored_by(server), Some(vec![]), "the dead caller's call monitor is gone");
    });
}

#[test]
fn a_second_reply_to_one_call_is_turned_away() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(twice());
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2));
        // The second reply was sent before the next call's reply.
        assert_eq!(call::<u64, u64>(server, 10, TIMEOUT).await, Ok(11));
        assert_eq!(mailbox_len(self_pid()), Some(0), "a second reply reached the mailbox");
        assert_eq!(monitored_by(server), Some(vec![]));
    });
}

#[test]
fn a_call_to_a_dead_server_fails_at_once_and_leaves_nothing() {
    let rt = runtime(1);
    rt.block_on(async {
        let (server, watch) = krarup_runtime::spawn_monitor(async {});
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        let started = std::time::Instant::now();
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Err(CallError::NoProc));
        assert!(started.elapsed() < TIMEOUT / 2, "NoProc came only after the timeout");
        assert_eq!(mailbox_len(self_pid()), Some(0), "a Down or a reply was left behind");
    });
}

/// A call's timer outlives a call that got its reply, for the process's next calls to share
/// (`timer/standing.rs`): the next call still times out at its own deadline, whether that is
/// earlier than the standing timer (which it then cannot use) or later (which wakes it early).
#[test]
fn a_call_times_out_at_its_own_deadline_after_earlier_calls() {
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        let short = Duration::from_millis(30);
        // A long call's timer stands (due in 10 s): a short call cannot use it.
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2));
        let started = std::time::Instant::now();
        assert_eq!(call::<u64, u64>(server, 0, short).await, Err(CallError::Timeout));
        let took = started.elapsed();
        assert!(took >= short && took < TIMEOUT / 2, "a 30 ms call timed out after {took:?}");
        // A short call's timer stands: a longer call shares it, is woken early, and waits on.
        assert_eq!(call::<u64, u64>(server, 1, short).await, Ok(2));
        let longer = Duration::from_millis(150);
        let started = std::time::Instant::now();
        assert_eq!(call::<u64, u64>(server, 0, longer).await, Err(CallError::Timeout));
        let took = started.elapsed();
        assert!(took >= longer && took < TIMEOUT / 2, "a 150 ms call timed out after {took:?}");
        server.send(Release);
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2));
        assert_eq!(mailbox_len(self_pid()), Some(0), "late replies were turned away");
    });
}

/// `call` returns a future (`Calling`) that does nothing until it is polled, as an `async fn`
/// would: a call made but never awaited sends nothing and leaves nothing behind.
#[test]
fn a_call_sends_nothing_until_it_is_polled() {
    let rt = runtime(1);
    rt.block_on(async {
        let server = spawn(server());
        let never = call::<u64, u64>(server, 7, TIMEOUT);
        // One worker, and this process has not yielded: the server has not run, so a request sent
        // eagerly would still be in its mailbox, and an eager monitor still on it.
        assert_eq!(mailbox_len(server), Some(0), "sent before the first poll");
        assert_eq!(monitored_by(server), Some(vec![]), "monitored before the first poll");
        krarup_runtime::yield_now().await;
        drop(never);
        assert_eq!(monitored_by(server), Some(vec![]), "a monitor of a call never polled");
        let later = call::<u64, u64>(server, 7, TIMEOUT);
        assert_eq!(later.await, Ok(8));
        assert_eq!(mailbox_len(self_pid()), Some(0));
    });
}

#[test]
fn a_server_exiting_after_its_calls_ended_sends_the_callers_nothing() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        for n in 1..=50u64 {
            assert_eq!(call::<u64, u64>(server, n, TIMEOUT).await, Ok(n + 1));
        }
        assert_eq!(call::<u64, u64>(server, 0, Duration::from_millis(10)).await, Err(CallError::Timeout));
        let watch = monitor(server);
        exit(server, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        // Our own monitor's Down came after the call monitors fired (the exit
        // fires them all before it returns): none of theirs reached us.
        assert_eq!(mailbox_len(self_pid()), Some(0), "a call's Down reached a caller after the call ended");
    });
}

#[test]
fn calls_in_flight_together_each_end_with_the_servers_exit() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        // Held (request 0) until the server dies; the second and third are
        // recorded beside the first (`awaits.rs`).
        let calls: Vec<_> = (0..3).map(|_| call_start::<u64, u64>(server, 0)).collect();
        assert_eq!(call::<u64, u64>(server, 1, TIMEOUT).await, Ok(2), "the server took the three held calls");
        assert_eq!(monitored_by(server).map(|m| m.len()), Some(3), "each call in flight monitors the server");
        exit(server, ExitReason::Error("boom".into()));
        for pending in calls {
            assert_eq!(pending.wait(TIMEOUT).await, Err(CallError::Exited(ExitReason::Error("boom".into()))));
        }
        assert_eq!(mailbox_len(self_pid()), Some(0), "something of the calls was left behind");
    });
}

/// A thousand callers, each with one call the server holds, and one of
/// them with two more beside it: the server's exit ends every call with its
/// reason. The callers came and went before (ended calls, exited callers),
/// so the server's monitors were replaced, grown and pruned on the way.
#[test]
fn the_calls_of_a_thousand_callers_each_end_with_the_servers_exit() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        let boom = || ExitReason::Error("boom".into());
        // Earlier callers, whose calls ended and who exited.
        for n in 0..300u64 {
            spawn(async move { me.send(call::<u64, u64>(server, n + 1, TIMEOUT).await == Ok(n + 2)) });
        }
        for _ in 0..300 {
            assert!(recv_bounded::<bool>().await, "an earlier call was not answered");
        }
        let callers = 1_000;
        for k in 0..callers {
            spawn(async move {
                let others: Vec<_> =
                    (0..if k == 0 { 2 } else { 0 }).map(|_| call_start::<u64, u64>(server, 0)).collect();
                let mut results = vec![call::<u64, u64>(server, 0, TIMEOUT).await];
                for pending in others {
                    results.push(pending.wait(TIMEOUT).await);
                }
                let expected = Err(CallError::Exited(ExitReason::Error("boom".into())));
                me.send(if results.iter().all(|r| *r == expected) { Ok(()) } else { Err(format!("{results:?}")) });
            });
        }
        // Every call is in (its monitor joins the server with its request).
        let deadline = std::time::Instant::now() + TIMEOUT;
        while monitored_by(server).map_or(0, |m| m.len()) < callers + 2 {
            assert!(std::time::Instant::now() < deadline, "the calls did not all reach the server");
            krarup_runtime::yield_now().await;
        }
        exit(server, boom());
        for _ in 0..callers {
            recv_bounded::<Result<(), String>>().await.expect("every call ends with the server's exit reason");
        }
    });
}

/// How many unrelated messages the long-mailbox tests queue before calling.
const BACKLOG: u32 = 5_000;

/// An unrelated message a noisy server sends its caller before each reply.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Noise(u64);

/// Sent by a feeder process after its last message.
#[derive(Debug, Serialize, Deserialize)]
struct Fed;

/// Answers `n` with `n + 1`, after sending the caller `Noise(n)`.
async fn noisy() {
    loop {
        let c: Call<u64, u64> = recv().await;
        c.reply_to.caller().send(Noise(c.request));
        c.reply_to.reply(c.request + 1);
    }
}

/// Takes `0..n` (as `u32`s) out of the mailbox, in that order.
async fn expect_numbers(n: u32) {
    for i in 0..n {
        assert_eq!(recv_bounded::<u32>().await, i, "the caller's other messages are out of order");
    }
}

#[test]
fn a_caller_with_a_long_mailbox_gets_every_reply_and_keeps_its_messages_in_order() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for i in 0..BACKLOG {
            me.send(i);
        }
        // More arrive during the calls, from another worker, and the server
        // sends one before each reply.
        spawn(async move {
            for i in BACKLOG..2 * BACKLOG {
                me.send(i);
            }
            me.send(Fed);
        });
        let server = spawn(noisy());
        for n in 1..=300u64 {
            assert_eq!(call::<u64, u64>(server, n, TIMEOUT).await, Ok(n + 1));
        }
        recv_bounded::<Fed>().await;
        expect_numbers(2 * BACKLOG).await;
        for n in 1..=300u64 {
            assert_eq!(recv_bounded::<Noise>().await, Noise(n));
        }
        assert_eq!(mailbox_len(self_pid()), Some(0), "something of the calls was left behind");
    });
}

#[test]
fn a_caller_with_a_long_mailbox_gets_the_down_of_a_server_that_exits_mid_call() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for i in 0..BACKLOG {
            me.send(i);
        }
        for _ in 0..50 {
            // Takes the call, tells the caller, and exits without replying.
            let server = spawn(async {
                let c: Call<u64, u64> = recv().await;
                c.reply_to.caller().send(Noise(c.request));
                ExitReason::Error("boom".into())
            });
            let got = call::<u64, u64>(server, 1, TIMEOUT).await;
            assert_eq!(got, Err(CallError::Exited(ExitReason::Error("boom".into()))));
        }
        expect_numbers(BACKLOG).await;
        for _ in 0..50 {
            assert_eq!(recv_bounded::<Noise>().await, Noise(1));
        }
        assert_eq!(mailbox_len(self_pid()), Some(0), "something of the calls was left behind");
    });
}

/// The first call a caller awaits is recorded in its slot's word, the others
/// beside it (`awaits.rs`): each call gets its reply whichever is answered
/// first, with a long mailbox or not.
#[test]
fn calls_in_flight_together_each_get_their_reply_whichever_comes_first() {
    let rt = runtime(2);
    rt.block_on(async {
        let server = spawn(server());
        let me = self_pid();
        for backlog in [0, BACKLOG] {
            for i in 0..backlog {
                me.send(i);
            }
            // The first call is answered, the second held.
            let first = call_start::<u64, u64>(server, 5);
            let second = call_start::<u64, u64>(server, 0);
            assert_eq!(first.wait(TIMEOUT).await, Ok(6));
            server.send(Release);
            assert_eq!(second.wait(TIMEOUT).await, Ok(0));
            // The first call is held, the second answered.
            let first = call_start::<u64, u64>(server, 0);
            let second = call_start::<u64, u64>(server, 7);
            assert_eq!(second.wait(TIMEOUT).await, Ok(8));
            server.send(Release);
            assert_eq!(first.wait(TIMEOUT).await, Ok(0));
            expect_numbers(backlog).await;
            assert_eq!(mailbox_len(self_pid()), Some(0), "something of the calls was left behind");
        }
    });
}
