//! A server restarted under its name (as a supervisor restarts it), called through a client that
//! knows it by name: the name is looked up for every call — on another node by that node, as the
//! request arrives; on this node when the call starts — so the first call after a restart reaches
//! the new server, and a name nobody holds fails at once with `NoProc`.

mod common;

use std::time::{Duration, Instant};

use common::{expect_msg, kill, pair, run, unique_name, watch, Go, Started, WorkClient, WorkServer, Worker, TIMEOUT};
use krarup_rpc::{CallError, Retry};
use krarup_runtime::{mailbox_len, self_pid, ExitReason, Pid, Runtime};

/// A `Work` server on `rt`, registered as `name`, telling `observer` when a held call starts.
fn start_worker(rt: &Runtime, name: &str, observer: Pid) -> Pid {
    let server = rt.spawn(WorkServer::serve(Worker::new(observer)));
    rt.register(name, server).expect("the name is free");
    server
}

/// Kills `server`, a process of `rt`, and waits until it is gone (its name with it).
fn kill_and_wait(rt: &Runtime, server: Pid) {
    let exited = watch(rt, server);
    kill(rt, server);
    assert_eq!(exited.wait(), ExitReason::Killed);
}

#[test]
fn the_first_call_after_a_named_server_restarts_on_another_node_reaches_the_new_server() {
    let (a, b) = pair();
    let name = unique_name("work");
    let mut observer = b.rt.mailbox();
    let first = start_worker(&b.rt, &name, observer.pid());
    let work = WorkClient::named_at(name.clone(), b.name()).with_timeout(TIMEOUT);
    let client = work.clone();
    assert_eq!(a.rt.block_on(async move { (client.bump().await, client.bump().await) }), (Ok(1), Ok(2)));

    kill_and_wait(&b.rt, first);
    let second = start_worker(&b.rt, &name, observer.pid());
    // Plain, idempotent and deferred calls alike: the second server has run nothing before.
    let client = work.clone();
    let answers = a.rt.block_on(async move {
        let deferred = client.start_bump().wait().await;
        (client.bump().await, client.bump_idempotent().await, deferred)
    });
    assert_eq!(answers, (Ok(2), Ok(3), Ok(1)), "every call reached the second server");

    // Once more, with a held call through a client with a retry policy (its calls carry a
    // request id).
    kill_and_wait(&b.rt, second);
    let third = start_worker(&b.rt, &name, observer.pid());
    let retrying = work.with_retry(Retry::default());
    let running = run(&a.rt, async move { (retrying.held_idempotent(7).await, retrying.runs().await) });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(7));
    third.send(Go);
    assert_eq!(running.wait(), (Ok(7), Ok(1)), "the third server ran the held call, once");
}

#[test]
fn a_call_to_a_name_nobody_holds_on_another_node_fails_with_noproc_before_its_timeout() {
    let (a, b) = pair();
    let name = unique_name("work");
    let observer = b.rt.mailbox();
    let work = WorkClient::named_at(name.clone(), b.name()).with_timeout(TIMEOUT);
    let server = start_worker(&b.rt, &name, observer.pid());
    let client = work.clone();
    assert_eq!(a.rt.block_on(async move { client.bump().await }), Ok(1));
    kill_and_wait(&b.rt, server);

    let (answers, took, left) = a.rt.block_on(async move {
        let started = Instant::now();
        let answers = (work.bump().await, work.bump_idempotent().await, work.start_bump().wait().await);
        (answers, started.elapsed(), mailbox_len(self_pid()))
    });
    assert_eq!(answers, (Err(CallError::NoProc), Err(CallError::NoProc), Err(CallError::NoProc)));
    assert!(took < TIMEOUT, "ended after {took:?}");
    assert_eq!(left, Some(0), "the calls left nothing in the caller's mailbox");
}

#[test]
fn a_call_held_by_a_named_server_on_another_node_times_out_after_its_own_timeout() {
    let (a, b) = pair();
    let name = unique_name("work");
    let mut observer = b.rt.mailbox();
    let server = start_worker(&b.rt, &name, observer.pid());
    let timeout = Duration::from_millis(500);
    let work = WorkClient::named_at(name, b.name()).with_timeout(timeout);
    let running = run(&a.rt, async move {
        let started = Instant::now();
        (work.held(1).await, started.elapsed())
    });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    let (result, took) = running.wait();
    server.send(Go);
    assert_eq!(result, Err(CallError::Timeout));
    assert!(took >= timeout && took < TIMEOUT, "the call waited {took:?}");
}

#[test]
fn a_name_on_this_node_is_looked_up_at_every_call() {
    let rt = Runtime::new();
    let name = unique_name("work");
    let observer = rt.mailbox();
    let first = start_worker(&rt, &name, observer.pid());
    let work = WorkClient::named(name.clone()).with_timeout(TIMEOUT);
    let client = work.clone();
    assert_eq!(rt.block_on(async move { (client.bump().await, client.bump_idempotent().await) }), (Ok(1), Ok(2)));

    kill_and_wait(&rt, first);
    let client = work.clone();
    let gone = rt.block_on(async move { (client.bump().await, client.bump_idempotent().await) });
    assert_eq!(gone, (Err(CallError::NoProc), Err(CallError::NoProc)), "nobody has the name");

    start_worker(&rt, &name, observer.pid());
    let answers = rt.block_on(async move {
        let deferred = work.start_bump().wait().await;
        (work.bump().await, work.bump_idempotent().await, deferred)
    });
    assert_eq!(answers, (Ok(2), Ok(3), Ok(1)), "every call reached the new server");
}
