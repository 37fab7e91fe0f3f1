//! The same stubs with the server on another node (two nodes in this test process): every type
//! across the wire, clients by name on the other node, casts ordered with later calls, deferred
//! calls, and the failures — a late reply, a dead server, a server killed mid-call, its node
//! going away mid-call. (A server restarted under its name: `restart.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::{
    address, expect_msg, kill, pair, remote_pid, run, spawn_worker, unique_name, watch, Book, DirectoryClient,
    DirectoryServer, Go, Hello, Note, Started, WorkClient, TIMEOUT,
};
use krarup_rpc::CallError;
use krarup_runtime::{mailbox_len, self_pid, ExitReason};

/// How long a client waits for an answer that will not come: short, to keep the suite quick.
const SHORT: Duration = Duration::from_millis(200);

#[test]
fn every_argument_and_result_type_crosses_nodes() {
    let (a, b) = pair();
    let server = b.rt.spawn(DirectoryServer::serve(Book::default()));
    let server_at_a = remote_pid(server, &b, &a);
    let directory = DirectoryClient::new(server_at_a).with_timeout(TIMEOUT);
    let mut inbox = a.rt.mailbox();
    let me = inbox.pid();
    let home = address("Main Street", 12, Some("Springfield"));
    let away = address("Elm Road", 3, None);

    let answers = a.rt.block_on(async move {
        assert_eq!(directory.insert("ann".into(), home.clone()).await, Ok(None));
        assert_eq!(directory.insert("bob".into(), away.clone()).await, Ok(None));
        assert_eq!(directory.insert("ann".into(), away.clone()).await, Ok(Some(home)));
        assert_eq!(directory.lookup("ann".into()).await, Ok(Some(away.clone())));
        assert_eq!(directory.lookup_later("bob".into()).await, Ok(Some(away)));
        assert_eq!(directory.lookup("cid".into()).await, Ok(None));
        assert_eq!(directory.names().await, Ok(vec!["ann".to_owned(), "bob".to_owned()]));
        assert_eq!(directory.delete_all(vec!["bob".into(), "cid".into()]).await, Ok(1));
        assert_eq!(directory.touch().await, Ok(()));
        assert_eq!(directory.touched().await, Ok(1));
        assert_eq!(directory.check("ann".into(), 2, true).await, Ok(Ok(("ann".to_owned(), 3))));
        assert_eq!(directory.check("dan".into(), 0, false).await, Ok(Err("no dan".to_owned())));
        // A Pid out of the other node, and one of this node in: the server sends to it.
        (directory.whoami().await, directory.greet(me, "hi from b".into()).await)
    });
    assert_eq!(answers, (Ok(server_at_a), Ok(())), "the server's Pid as this node sees it");
    assert_eq!(expect_msg::<Hello>(&mut inbox), Hello("hi from b".into()));
}

#[test]
fn a_client_by_name_on_another_node_calls_its_server() {
    let (a, b) = pair();
    let name = unique_name("directory");
    let server = b.rt.spawn(DirectoryServer::serve(Book::default()));
    b.rt.register(&name, server).unwrap();
    let server_at_a = remote_pid(server, &b, &a);
    let directory = DirectoryClient::named_at(name, b.name()).with_timeout(TIMEOUT);
    let answers = a.rt.block_on(async move {
        let deferred = directory.start_touched().wait().await;
        (directory.whoami().await, directory.touch().await, directory.touched().await, deferred)
    });
    assert_eq!(answers, (Ok(server_at_a), Ok(()), Ok(1), Ok(0)));
}

#[test]
fn a_name_nobody_holds_on_another_node_is_noproc_before_the_timeout() {
    let (a, b) = pair();
    let directory = DirectoryClient::named_at(unique_name("nobody"), b.name()).with_timeout(TIMEOUT);
    let answers = a.rt.block_on(async move {
        let deferred = directory.start_names().wait().await;
        (directory.names().await, deferred)
    });
    assert_eq!(answers, (Err(CallError::NoProc), Err(CallError::NoProc)));
}

/// The name is trusted, as Erlang trusts it (the client's module docs): a server of another
/// service under the name gets the request, which it never takes, so the call times out. Its
/// caller's mailbox stays clean, and that server goes on serving its own clients.
#[test]
fn a_name_held_by_a_server_of_another_service_times_out_and_harms_neither() {
    let (a, b) = pair();
    let name = unique_name("work");
    let (server, _observer) = spawn_worker(&b.rt);
    b.rt.register(&name, server).unwrap();
    let directory = DirectoryClient::named_at(name.clone(), b.name()).with_timeout(SHORT);
    let work = WorkClient::named_at(name, b.name()).with_timeout(TIMEOUT);
    let running = run(&a.rt, async move {
        let started = Instant::now();
        let wrong = directory.names().await;
        let took = started.elapsed();
        (wrong, took, work.bump().await, mailbox_len(self_pid()))
    });
    let (wrong, took, right, left) = running.wait();
    assert_eq!(wrong, Err(CallError::Timeout));
    assert!(took >= SHORT, "gave up after {took:?}, before its timeout");
    assert_eq!(right, Ok(1), "the Work server still serves its own clients");
    assert_eq!(left, Some(0), "the call left nothing in the caller's mailbox");
    // Sent before the Work call, on the same connection: it arrived first and stays, unread.
    assert_eq!(mailbox_len(server), Some(1), "the Directory request sits in the Work server's mailbox");
}

#[test]
fn casts_arrive_before_later_calls_across_nodes() {
    let (a, b) = pair();
    let name = unique_name("work");
    let (server, _observer) = spawn_worker(&b.rt);
    b.rt.register(&name, server).unwrap();
    let by_pid = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT);
    let by_name = WorkClient::named_at(name, b.name()).with_timeout(TIMEOUT);
    let seen = a.rt.block_on(async move {
        let mut seen = Vec::new();
        // Casts by Pid and by name, each in order with the calls of its client.
        for n in 0..300u32 {
            if n % 2 == 0 {
                by_pid.push(n);
            } else {
                by_name.push(n);
            }
            if n % 50 == 49 {
                let client = if n % 100 == 49 { &by_name } else { &by_pid };
                seen.push(client.pushed().await.unwrap().len());
            }
        }
        assert_eq!(by_name.pushed().await.unwrap(), (0..300).collect::<Vec<u32>>(), "casts in the order made");
        seen
    });
    assert_eq!(seen, (1..=6).map(|k| k * 50).collect::<Vec<usize>>());
}

#[test]
fn deferred_calls_across_nodes_are_awaited_in_any_order() {
    let (a, b) = pair();
    let (server, mut observer) = spawn_worker(&b.rt);
    let name = unique_name("work");
    b.rt.register(&name, server).unwrap();
    // By Pid, and by name: calls by name in flight at once in one process each get their own
    // reply (each call monitors the name and has its own tag).
    let by_pid = WorkClient::new(remote_pid(server, &b, &a));
    let by_name = WorkClient::named_at(name, b.name());
    for work in [by_pid, by_name] {
        let work = work.with_timeout(TIMEOUT);
        let running = run(&a.rt, async move {
            let one = work.start_held(1);
            let two = work.start_held(2);
            let three = work.start_held(3);
            let second = two.wait().await;
            let third = three.wait().await;
            let first = one.wait().await;
            (second, third, first, mailbox_len(self_pid()))
        });
        for n in 1..=3 {
            assert_eq!(expect_msg::<Started>(&mut observer), Started(n));
            server.send(Go);
        }
        assert_eq!(running.wait(), (Ok(2), Ok(3), Ok(1), Some(0)));
    }
}

#[test]
fn a_remote_call_that_times_out_leaves_no_late_reply() {
    let (a, b) = pair();
    let (server, mut observer) = spawn_worker(&b.rt);
    let name = unique_name("work");
    b.rt.register(&name, server).unwrap();
    let by_pid = WorkClient::new(remote_pid(server, &b, &a));
    let by_name = WorkClient::named_at(name, b.name());
    for (runs, work) in [(1, by_pid), (2, by_name)] {
        let work = work.with_timeout(Duration::from_millis(100));
        let mut notes = a.rt.mailbox();
        let notes_pid = notes.pid();
        let running = run(&a.rt, async move {
            let late = work.held(runs).await;
            notes_pid.send(Note("timed out".into()));
            // Answered after the late reply, over the same connection: the late one came first.
            let counted = work.with_timeout(TIMEOUT).runs().await;
            (late, counted, mailbox_len(self_pid()))
        });
        assert_eq!(expect_msg::<Started>(&mut observer), Started(runs));
        assert_eq!(expect_msg::<Note>(&mut notes), Note("timed out".into()));
        server.send(Go);
        assert_eq!(running.wait(), (Err(CallError::Timeout), Ok(runs), Some(0)), "the late reply was turned away");
    }
}

#[test]
fn a_remote_server_that_already_exited_is_noproc() {
    let (a, b) = pair();
    let (server, _observer) = spawn_worker(&b.rt);
    let server_at_a = remote_pid(server, &b, &a);
    let exited = watch(&b.rt, server);
    kill(&b.rt, server);
    assert_eq!(exited.wait(), ExitReason::Killed);
    let work = WorkClient::new(server_at_a).with_timeout(TIMEOUT);
    let answers = a.rt.block_on(async move {
        work.push(1);
        let deferred = work.start_bump().wait().await;
        (work.bump().await, deferred)
    });
    assert_eq!(answers, (Err(CallError::NoProc), Err(CallError::NoProc)));
}

#[test]
fn a_remote_server_killed_during_a_call_fails_it_with_exited_killed() {
    let (a, b) = pair();
    let (server, mut observer) = spawn_worker(&b.rt);
    let work = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT);
    let running = run(&a.rt, async move { work.held(1).await });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    kill(&b.rt, server);
    assert_eq!(running.wait(), Err(CallError::Exited(ExitReason::Killed)));
}

#[test]
fn a_call_to_a_node_that_shuts_down_during_it_fails_with_noconnection() {
    let (a, b) = pair();
    let (server, mut observer) = spawn_worker(&b.rt);
    let work = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT);
    let running = run(&a.rt, async move { work.held(1).await });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    b.node.shutdown();
    assert_eq!(running.wait(), Err(CallError::NoConnection));
    server.send(Go);
}

#[test]
fn a_stop_procedure_across_nodes_answers_and_ends_the_server() {
    let (a, b) = pair();
    let (server, _observer) = spawn_worker(&b.rt);
    let exited = watch(&b.rt, server);
    let work = WorkClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT);
    let answers = a.rt.block_on(async move { (work.bump().await, work.stop().await, work.runs().await) });
    assert_eq!(answers, (Ok(1), Ok(1), Err(CallError::NoProc)));
    assert_eq!(exited.wait(), ExitReason::Normal);
}
