//! The generated stubs on one node: every kind of argument and result, async procedures, one-way
//! casts ordered with later calls, deferred calls, clients by name, `#[stop]`.

mod common;

use common::{
    address, expect_msg, kill, run, spawn_worker, unique_name, watch, Book, DirectoryClient, DirectoryServer, Go,
    Hello, Started, WorkClient, WorkServer, Worker, TIMEOUT,
};
use krarup_rpc::CallError;
use krarup_runtime::{mailbox_len, self_pid, ExitReason, Runtime};

#[test]
fn every_argument_and_result_type_round_trips_through_the_stubs() {
    let rt = Runtime::new();
    let server = rt.spawn(DirectoryServer::serve(Book::default()));
    let directory = DirectoryClient::new(server).with_timeout(TIMEOUT);
    let mut inbox = rt.mailbox();
    let me = inbox.pid();
    let h = address("Main Street", 12, Some("Springfield"));
    let a = address("Elm Road", 3, None);

    rt.block_on(async move {
        // A String and a struct in, an Option of the struct out.
        assert_eq!(directory.insert("ann".into(), h.clone()).await, Ok(None));
        assert_eq!(directory.insert("bob".into(), a.clone()).await, Ok(None));
        assert_eq!(directory.insert("ann".into(), a.clone()).await, Ok(Some(h.clone())));
        assert_eq!(directory.lookup("ann".into()).await, Ok(Some(a.clone())));
        assert_eq!(directory.lookup("cid".into()).await, Ok(None));
        // A Vec out, a Vec in.
        assert_eq!(directory.names().await, Ok(vec!["ann".to_owned(), "bob".to_owned()]));
        assert_eq!(directory.delete_all(vec!["bob".into(), "cid".into()]).await, Ok(1));
        assert_eq!(directory.names().await, Ok(vec!["ann".to_owned()]));
        // A Pid out, a Pid in (the server sends to it).
        assert_eq!(directory.whoami().await, Ok(server));
        assert_eq!(directory.greet(me, "hi".into()).await, Ok(()));
        // No arguments, unit out.
        assert_eq!(directory.touch().await, Ok(()));
        assert_eq!(directory.touched().await, Ok(1));
        // Several arguments; a tuple inside the procedure's own Result, inside the call's.
        assert_eq!(directory.check("ann".into(), 3, false).await, Ok(Ok(("ann".to_owned(), 3))));
        assert_eq!(directory.check("ann".into(), 3, true).await, Ok(Err("ann is at number 3".to_owned())));
        assert_eq!(directory.check("dan".into(), 0, false).await, Ok(Err("no dan".to_owned())));
    });
    assert_eq!(expect_msg::<Hello>(&mut inbox), Hello("hi".into()));
}

#[test]
fn an_async_procedure_is_awaited_by_the_server_stub() {
    let rt = Runtime::new();
    let found = rt.block_on(async {
        let directory = DirectoryServer::spawn(Book::default()).with_timeout(TIMEOUT);
        directory.insert("ann".into(), address("Main Street", 12, None)).await.unwrap();
        (directory.lookup_later("ann".into()).await, directory.lookup_later("bob".into()).await)
    });
    assert_eq!(found, (Ok(Some(address("Main Street", 12, None))), Ok(None)));
}

#[test]
fn casts_arrive_before_later_calls_from_the_same_client() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let seen = rt.block_on(async move {
        let mut seen = Vec::new();
        for n in 0..500u32 {
            work.push(n);
            if n % 50 == 49 {
                // Every cast made before this call has been applied when it is answered.
                seen.push(work.pushed().await.unwrap().len());
            }
        }
        assert_eq!(work.pushed().await.unwrap(), (0..500).collect::<Vec<u32>>(), "casts in the order made");
        seen
    });
    assert_eq!(seen, (1..=10).map(|k| k * 50).collect::<Vec<usize>>());
}

#[test]
fn deferred_calls_in_flight_together_are_awaited_in_any_order() {
    let rt = Runtime::new();
    let (server, mut observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let running = run(&rt, async move {
        // Three calls started before any is awaited; the first two are answered while the
        // caller awaits the third, and wait in its mailbox for their turn.
        let one = work.start_held(1);
        let two = work.start_held(2);
        let three = work.start_held(3);
        let third = three.wait().await;
        let first = one.wait().await;
        let second = two.wait().await;
        (third, first, second, mailbox_len(self_pid()))
    });
    for n in 1..=3 {
        assert_eq!(expect_msg::<Started>(&mut observer), Started(n));
        server.send(Go);
    }
    assert_eq!(running.wait(), (Ok(3), Ok(1), Ok(2), Some(0)));
}

#[test]
fn an_abandoned_deferred_call_leaves_no_reply_behind() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let (runs, left) = rt.block_on(async move {
        let abandoned = work.start_bump();
        drop(abandoned);
        // Answered after the abandoned one: by now its reply was sent (and turned away).
        let runs = work.runs().await;
        (runs, mailbox_len(self_pid()))
    });
    assert_eq!((runs, left), (Ok(1), Some(0)), "the abandoned call ran, and its reply never arrived");
}

#[test]
fn a_client_by_local_name_calls_the_registered_server() {
    let rt = Runtime::new();
    let name = unique_name("directory");
    let server = rt.spawn(DirectoryServer::serve(Book::default()));
    rt.register(&name, server).unwrap();
    let directory = DirectoryClient::named(name).with_timeout(TIMEOUT);
    let answers =
        rt.block_on(async move { (directory.whoami().await, directory.touch().await, directory.touched().await) });
    assert_eq!(answers, (Ok(server), Ok(()), Ok(1)));
}

#[test]
fn a_local_name_nobody_holds_is_noproc() {
    let rt = Runtime::new();
    let directory = DirectoryClient::named(unique_name("nobody")).with_timeout(TIMEOUT);
    let answers = rt.block_on(async move {
        let deferred = directory.start_names();
        (directory.names().await, deferred.wait().await.map(|_| ()))
    });
    assert_eq!(answers, (Err(CallError::NoProc), Err(CallError::NoProc)));
}

#[test]
fn a_restarted_server_under_the_same_name_is_found_by_the_next_call() {
    let rt = Runtime::new();
    let name = unique_name("work");
    let mut observer = rt.mailbox();
    let first = rt.spawn(WorkServer::serve(Worker::new(observer.pid())));
    rt.register(&name, first).unwrap();
    let work = WorkClient::named(name.clone()).with_timeout(TIMEOUT);

    let client = work.clone();
    assert_eq!(rt.block_on(async move { client.bump().await }), Ok(1));
    let exited = watch(&rt, first);
    kill(&rt, first);
    assert_eq!(exited.wait(), ExitReason::Killed);
    // What a supervisor does: a new server under the old name (with fresh state).
    let second = rt.spawn(WorkServer::serve(Worker::new(observer.pid())));
    rt.register(&name, second).unwrap();

    let client = work.clone();
    assert_eq!(rt.block_on(async move { (client.bump().await, client.bump().await) }), (Ok(1), Ok(2)));
    // And a call held open on it is the new server's.
    let running = run(&rt, async move { work.held(7).await });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(7));
    second.send(Go);
    assert_eq!(running.wait(), Ok(7));
}

#[test]
fn a_stop_procedure_answers_and_then_ends_the_server_normally() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let exited = watch(&rt, server);
    let client = work.clone();
    let answers = rt.block_on(async move { (client.bump().await, client.stop().await) });
    assert_eq!(answers, (Ok(1), Ok(1)), "stop answers first");
    assert_eq!(exited.wait(), ExitReason::Normal);
    assert_eq!(rt.block_on(async move { work.runs().await }), Err(CallError::NoProc));
}

#[test]
fn calls_queued_behind_a_stop_fail_with_exited_normal() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let answers = rt.block_on(async move {
        let stop = work.start_stop();
        let after = work.start_runs();
        (stop.wait().await, after.wait().await)
    });
    assert_eq!(answers, (Ok(0), Err(CallError::Exited(ExitReason::Normal))));
}

#[test]
fn a_stop_cast_ends_the_server() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let work = WorkClient::new(server).with_timeout(TIMEOUT);
    let exited = watch(&rt, server);
    rt.block_on(async move { work.halt() });
    assert_eq!(exited.wait(), ExitReason::Normal);
}
