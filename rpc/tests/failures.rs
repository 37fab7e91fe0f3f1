//! Failure semantics on one node: every call ends with its reply or a typed error, never hangs;
//! a late reply never shows up afterwards; a call that times out while the server is alive and
//! working is not retried.

mod common;

use std::time::Duration;

use common::{expect_msg, kill, run, spawn_worker, watch, Go, Note, Started, WorkClient, TIMEOUT};
use krarup_rpc::{CallError, Retry};
use krarup_runtime::{mailbox_len, self_pid, ExitReason, Runtime};

/// Short enough to keep the suite quick, long enough that a call that does get its reply in
/// time never sees it.
const SHORT: Duration = Duration::from_millis(100);

#[test]
fn a_slow_call_times_out_and_its_late_reply_never_arrives() {
    let rt = Runtime::new();
    let (server, mut observer) = spawn_worker(&rt);
    let mut notes = rt.mailbox();
    let notes_pid = notes.pid();
    let work = WorkClient::new(server).with_timeout(SHORT);
    let running = run(&rt, async move {
        let late = work.held(1).await;
        notes_pid.send(Note("timed out".into()));
        // Queued behind the held call: answered after the late reply was sent.
        let runs = work.with_timeout(TIMEOUT).runs().await;
        (late, runs, mailbox_len(self_pid()))
    });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    assert_eq!(expect_msg::<Note>(&mut notes), Note("timed out".into()));
    // Only now does the procedure return: its reply is late.
    server.send(Go);
    assert_eq!(running.wait(), (Err(CallError::Timeout), Ok(1), Some(0)), "the late reply was turned away");
}

#[test]
fn a_call_to_a_server_that_already_exited_is_noproc() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let exited = watch(&rt, server);
    kill(&rt, server);
    assert_eq!(exited.wait(), ExitReason::Killed);
    let work = WorkClient::new(server).with_timeout(TIMEOUT).with_retry(Retry::default());
    let answers = rt.block_on(async move {
        work.push(1); // a cast to a dead server: dropped, no error, no wait
        let deferred = work.start_bump().wait().await;
        (work.bump().await, work.runs().await, deferred)
    });
    assert_eq!(answers, (Err(CallError::NoProc), Err(CallError::NoProc), Err(CallError::NoProc)));
}

#[test]
fn a_server_killed_during_a_call_fails_it_with_exited_killed() {
    let rt = Runtime::new();
    let (server, mut observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let running = run(&rt, async move { work.held(1).await });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    kill(&rt, server);
    assert_eq!(running.wait(), Err(CallError::Exited(ExitReason::Killed)));
}

#[test]
fn a_server_that_panics_during_a_call_fails_it_and_every_call_waiting_behind_it() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let answers = rt.block_on(async move {
        let failing = work.start_fail("the procedure failed".into());
        let behind = work.start_bump();
        (failing.wait().await, behind.wait().await, work.bump().await)
    });
    let crashed = Err(CallError::Exited(ExitReason::Panic("the procedure failed".into())));
    assert_eq!(answers, (crashed.clone(), crashed, Err(CallError::NoProc)));
}

#[test]
fn a_long_running_idempotent_call_that_times_out_is_not_retried() {
    let rt = Runtime::new();
    let (server, mut observer) = spawn_worker(&rt);
    let retry = Retry { attempts: 5, initial: Duration::from_millis(1), max: Duration::from_millis(1) };
    let work = WorkClient::new(server).with_timeout(SHORT).with_retry(retry);
    let client = work.clone();
    let running = run(&rt, async move {
        let result = client.held_idempotent(1).await;
        // The server is still held in the first attempt: a retry would be waiting in its mailbox.
        (result, mailbox_len(server))
    });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    assert_eq!(running.wait(), (Err(CallError::Timeout), Some(0)), "one attempt, no repeat queued");
    server.send(Go);
    let runs = rt.block_on(async move { work.with_timeout(TIMEOUT).runs().await });
    assert_eq!(runs, Ok(1));
    assert_eq!(observer.try_recv::<Started>(), None, "the procedure started once");
}
