//! Retries across a lost connection: the server's node `b` sits behind a TCP proxy
//! ([`common::proxy`]), so a test can cut the connection between two live nodes — with a call in
//! flight or just before one. An `#[idempotent]` procedure called through a client with a
//! [`Retry`] policy succeeds and runs at most once; any other procedure fails with
//! `NoConnection` and is not retried; a call that times out while the server is alive is not
//! retried either.

mod common;

use std::time::Duration;

use common::{
    expect_msg, pair, proxy, remote_pid, run, spawn_worker, unique_name, wait_until, Go, Side, Started, WorkClient,
    TIMEOUT,
};
use krarup_net::NodeDown;
use krarup_rpc::{CallError, Retry};
use krarup_runtime::{mailbox_len, Mailbox, Pid};

/// Quick retries: the tests wait for what happens, not for the back-off.
const RETRY: Retry = Retry { attempts: 5, initial: Duration::from_millis(5), max: Duration::from_millis(50) };

/// Client node `a`, server node `b` behind `proxy`, connected through it; a `Work` server on `b`
/// (its Pid there, and as `a` sees it); `b`'s observer mailbox; a mailbox on `a` told
/// [`NodeDown`] when `a` loses `b`.
struct Cut {
    a: Side,
    b: Side,
    proxy: proxy::Proxy,
    server: Pid,
    server_at_a: Pid,
    observer: Mailbox,
    node_down: Mailbox,
}

impl Cut {
    fn new() -> Cut {
        let (b, proxy) = proxy::behind_proxy("b");
        let a = Side::start("a");
        a.node.connect(b.name()).expect("a connects to b through the proxy");
        let (server, observer) = spawn_worker(&b.rt);
        let server_at_a = remote_pid(server, &b, &a);
        let node_down = a.rt.mailbox();
        a.node.monitor_node(node_down.pid(), b.name()).unwrap();
        Cut { a, b, proxy, server, server_at_a, observer, node_down }
    }

    /// Cuts the one connection between `a` and `b` and waits until `a` has noticed (once per
    /// test: the node monitor is not set again).
    fn cut_and_wait(&mut self) {
        assert_eq!(self.proxy.cut(), 1, "one connection between a and b");
        assert_eq!(expect_msg::<NodeDown>(&mut self.node_down).node, self.b.name());
    }
}

#[test]
fn an_idempotent_call_cut_in_flight_is_retried_and_runs_once() {
    let mut cut = Cut::new();
    let work = WorkClient::new(cut.server_at_a).with_timeout(TIMEOUT).with_retry(RETRY);
    let running = run(&cut.a.rt, async move { (work.held_idempotent(1).await, work.runs().await) });
    assert_eq!(expect_msg::<Started>(&mut cut.observer), Started(1));
    // The procedure runs; its reply will have no connection to go back on.
    cut.cut_and_wait();
    // The retry (same request id) reaches the server while it still runs the first attempt.
    let server = cut.server;
    wait_until("the retry is queued at the server", || mailbox_len(server) == Some(1));
    server.send(Go);
    // The retry is answered from the cache: one run.
    assert_eq!(running.wait(), (Ok(1), Ok(1)));
    assert_eq!(cut.observer.try_recv::<Started>(), None, "the procedure started once");
    assert_eq!(cut.proxy.connections(), 1, "a connected to b again through the proxy");
}

#[test]
fn an_idempotent_call_by_name_cut_in_flight_looks_the_name_up_again_and_runs_once() {
    let mut cut = Cut::new();
    let name = unique_name("work");
    cut.b.rt.register(&name, cut.server).unwrap();
    let work = WorkClient::named_at(name, cut.b.name()).with_timeout(TIMEOUT).with_retry(RETRY);
    let running = run(&cut.a.rt, async move { (work.held_idempotent(2).await, work.runs().await) });
    assert_eq!(expect_msg::<Started>(&mut cut.observer), Started(2));
    cut.cut_and_wait();
    let server = cut.server;
    wait_until("the retry is queued at the server", || mailbox_len(server) == Some(1));
    server.send(Go);
    assert_eq!(running.wait(), (Ok(2), Ok(1)));
    assert_eq!(cut.observer.try_recv::<Started>(), None, "the procedure started once");
}

#[test]
fn idempotent_calls_made_as_the_connection_is_cut_succeed_and_run_once_each() {
    let cut = Cut::new();
    let work = WorkClient::new(cut.server_at_a).with_timeout(TIMEOUT).with_retry(RETRY);
    for round in 1..=10 {
        // Not waiting for `a` to notice: the call may go into the dying connection (then it is
        // retried) or find it gone (then it connects again). Either way: one run.
        assert_eq!(cut.proxy.cut(), 1, "round {round}: one connection between a and b");
        let client = work.clone();
        let answer = cut.a.rt.block_on(async move { client.bump_idempotent().await });
        assert_eq!(answer, Ok(round), "round {round}");
    }
    let runs = cut.a.rt.block_on(async move { work.runs().await });
    assert_eq!(runs, Ok(10));
}

#[test]
fn a_call_that_is_not_idempotent_fails_with_noconnection_across_a_cut_and_is_not_retried() {
    let mut cut = Cut::new();
    let work = WorkClient::new(cut.server_at_a).with_timeout(TIMEOUT).with_retry(RETRY);
    let client = work.clone();
    let running = run(&cut.a.rt, async move { client.held(3).await });
    assert_eq!(expect_msg::<Started>(&mut cut.observer), Started(3));
    cut.cut_and_wait();
    // The server is still held in the procedure: only a call that was not retried can end now.
    assert_eq!(running.wait(), Err(CallError::NoConnection));
    assert_eq!(mailbox_len(cut.server), Some(0), "no second request reached the server");
    cut.server.send(Go);
    let runs = cut.a.rt.block_on(async move { work.runs().await });
    assert_eq!(runs, Ok(1), "the procedure ran once (its reply was lost)");
}

#[test]
fn a_long_running_idempotent_call_that_times_out_across_nodes_is_not_retried() {
    let (a, b) = pair();
    let (server, mut observer) = spawn_worker(&b.rt);
    let work = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(Duration::from_millis(100)).with_retry(RETRY);
    let client = work.clone();
    let running = run(&a.rt, async move { client.held_idempotent(4).await });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(4));
    assert_eq!(running.wait(), Err(CallError::Timeout));
    // Had the client retried, it would have waited for the retry too, which would be queued here.
    assert_eq!(mailbox_len(server), Some(0), "one attempt: the server is alive and working on it");
    server.send(Go);
    let runs = a.rt.block_on(async move { work.with_timeout(TIMEOUT).runs().await });
    assert_eq!(runs, Ok(1));
}

#[test]
fn an_idempotent_call_to_a_node_that_stays_down_fails_after_its_attempts() {
    let (a, b) = pair();
    let (server, _observer) = spawn_worker(&b.rt);
    let work = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT).with_retry(RETRY);
    let mut node_down = a.rt.mailbox();
    a.node.monitor_node(node_down.pid(), b.name()).unwrap();
    b.node.shutdown();
    assert_eq!(expect_msg::<NodeDown>(&mut node_down).node, b.name());
    let answers = a.rt.block_on(async move { (work.bump_idempotent().await, work.runs().await) });
    assert_eq!(answers, (Err(CallError::NoConnection), Err(CallError::NoConnection)));
}
