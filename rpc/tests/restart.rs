//! A server restarted under its name (as a supervisor restarts it), called through a client that
//! knows it by name: an idempotent call that finds the old server gone looks the name up again
//! and reaches the new server, within the same timeout, and never looks it up more than once
//! more; a name on this node is looked up at every call. (A plain call to a name on another node
//! fails once with `NoProc` instead: `remote.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::{
    expect_msg, kill, pair, run, unique_name, watch, Go, Note, Started, WorkClient, WorkServer, Worker, TIMEOUT,
};
use krarup_rpc::{CallError, Resolve, Resolved, Retry};
use krarup_runtime::{mailbox_len, receive, self_pid, sleep, ExitReason, Pid, Runtime};

/// How long a client by name waits for an answer that will not come: short, to keep the suite
/// quick.
const SHORT: Duration = Duration::from_millis(200);

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

/// A process that holds a name but serves nothing: it tells `observer` of every lookup of the
/// name ([`Resolve`]) and passes on every [`Note`], so that the test can count the lookups that
/// came before a note sent after them. Answers nothing.
async fn lookout(observer: Pid) {
    loop {
        receive! {
            _ask: Resolve => observer.send(Note("lookup".into())),
            note: Note => observer.send(note),
        }
    }
}

#[test]
fn an_idempotent_call_after_a_named_server_restarts_on_another_node_reaches_the_new_server() {
    let (a, b) = pair();
    let name = unique_name("work");
    let mut observer = b.rt.mailbox();
    let first = start_worker(&b.rt, &name, observer.pid());
    let work = WorkClient::named_at(name.clone(), b.name()).with_timeout(TIMEOUT);
    let client = work.clone();
    assert_eq!(a.rt.block_on(async move { client.bump_idempotent().await }), Ok(1), "the name resolved");

    kill_and_wait(&b.rt, first);
    let second = start_worker(&b.rt, &name, observer.pid());

    // The client still holds the first server's Pid: the call finds it gone, looks the name up
    // again and calls the second server, which has run nothing yet.
    let client = work.clone();
    let answers = a.rt.block_on(async move { (client.bump_idempotent().await, client.bump().await) });
    assert_eq!(answers, (Ok(1), Ok(2)), "both calls reached the second server; the plain one by the new Pid");

    // Once more, through a client with a retry policy (its calls carry a request id).
    kill_and_wait(&b.rt, second);
    let third = start_worker(&b.rt, &name, observer.pid());
    let retrying = work.with_retry(Retry::default());
    let running = run(&a.rt, async move { (retrying.held_idempotent(7).await, retrying.runs().await) });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(7));
    third.send(Go);
    assert_eq!(running.wait(), (Ok(7), Ok(1)), "the third server ran the held call, once");
}

#[test]
fn an_idempotent_call_to_a_named_server_that_is_gone_fails_with_noproc_after_one_more_lookup() {
    let (a, b) = pair();
    let name = unique_name("work");
    let mut observer = b.rt.mailbox();
    let work = WorkClient::named_at(name.clone(), b.name()).with_timeout(SHORT);
    let resolve_then_kill = |work: &WorkClient| {
        let server = start_worker(&b.rt, &name, observer.pid());
        let client = work.clone();
        assert_eq!(a.rt.block_on(async move { client.bump_idempotent().await }), Ok(1), "the name resolved");
        kill_and_wait(&b.rt, server);
    };

    // Nobody has the name: the lookup after `NoProc` goes unanswered, within the timeout.
    resolve_then_kill(&work);
    let client = work.clone();
    let (result, took) = a.rt.block_on(async move {
        let started = Instant::now();
        (client.bump_idempotent().await, started.elapsed())
    });
    assert_eq!(result, Err(CallError::NoProc));
    assert!(took < TIMEOUT, "ended after {took:?}");

    // A process that serves nothing takes the name: it counts the lookups, and answers none.
    resolve_then_kill(&work);
    let lookout_pid = b.rt.spawn(lookout(observer.pid()));
    b.rt.register(&name, lookout_pid).unwrap();
    let node = b.name().to_owned();
    let running = run(&a.rt, async move {
        let result = work.bump_idempotent().await;
        // Sent after the lookups, on the same connection: the lookout passes it on after them.
        krarup_runtime::send_named_at(&name, &node, Note("done".into()));
        (result, mailbox_len(self_pid()))
    });
    assert_eq!(running.wait(), (Err(CallError::NoProc), Some(0)));
    assert_eq!(expect_msg::<Note>(&mut observer), Note("lookup".into()));
    assert_eq!(expect_msg::<Note>(&mut observer), Note("done".into()), "one lookup, not a loop of them");
}

#[test]
fn finding_a_named_server_and_calling_it_share_one_timeout() {
    let (a, b) = pair();
    let name = unique_name("work");
    let mut observer = b.rt.mailbox();
    // A slow node: the name's holder answers a lookup with the server's Pid only after most of
    // the client's timeout has passed; the server then holds the call.
    let timeout = Duration::from_secs(1);
    let server = b.rt.spawn(WorkServer::serve(Worker::new(observer.pid())));
    let slow = b.rt.spawn(async move {
        receive! {
            ask: Resolve => {
                sleep(timeout * 3 / 4).await;
                ask.from.send(Resolved { nonce: ask.nonce, server });
            },
            after TIMEOUT => panic!("no lookup came"),
        }
    });
    b.rt.register(&name, slow).unwrap();
    let work = WorkClient::named_at(name, b.name()).with_timeout(timeout);
    let running = run(&a.rt, async move {
        let started = Instant::now();
        (work.held(1).await, started.elapsed())
    });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(1));
    let (result, took) = running.wait();
    server.send(Go);
    assert_eq!(result, Err(CallError::Timeout));
    assert!(took < timeout * 3 / 2, "the call waited {took:?}: a timeout of its own after the lookup's");
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
        let deferred = work.start_bump().await.expect("the name is held").wait().await;
        (work.bump().await, work.bump_idempotent().await, deferred)
    });
    assert_eq!(answers, (Ok(2), Ok(3), Ok(1)), "every call reached the new server");
}
