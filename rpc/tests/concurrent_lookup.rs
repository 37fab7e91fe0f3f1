//! Finding servers by name on another node from one process: two lookups in flight at once each
//! get their own answer, and the answer to a lookup that gave up never reaches the process (it
//! can neither confuse a later receive nor sit in the mailbox).
//!
//! The name is held by a relay on the server's node instead of the server itself: it answers each
//! lookup with the server's Pid and says when it did, or holds a lookup until told, so that the
//! tests can put an answer in flight exactly where they want it without sleeping.

mod common;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{pair, run, unique_name, Introduced, Note, WorkClient, WorkServer, Worker, TIMEOUT};
use krarup_rpc::{CallError, Resolve, Resolved, DEFAULT_TIMEOUT};
use krarup_runtime::{mailbox_len, receive, recv_timeout, self_pid, send_named_at, try_recv, Pid};

/// How long a client waits for an answer that the relay holds back: short, to keep the suite
/// quick.
const SHORT: Duration = Duration::from_millis(200);

/// Holds a name in place of `server`: answers every lookup with `server`'s Pid, then tells the
/// process that introduced itself first ([`Introduced`]) `Note("answered")`. The note travels
/// after the answer, on the same connection: when it arrives, so has the answer.
async fn answering_relay(server: Pid) {
    let Some(Introduced(client)) = recv_timeout::<Introduced>(TIMEOUT).await else {
        panic!("no client introduced itself within {TIMEOUT:?}")
    };
    loop {
        receive! {
            ask: Resolve => {
                ask.from.send(Resolved { nonce: ask.nonce, server });
                client.send(Note("answered".into()));
            },
            after TIMEOUT => return,
        }
    }
}

/// Holds a name in place of `server`: keeps the first lookup unanswered until a
/// `Note("release")` comes, answers it then (late: its asker has given up), and answers every
/// later lookup at once. Answers travel in order: the late one arrives before the next.
async fn late_relay(server: Pid) {
    let Some(first) = recv_timeout::<Resolve>(TIMEOUT).await else { panic!("no lookup came within {TIMEOUT:?}") };
    assert_eq!(recv_timeout::<Note>(TIMEOUT).await, Some(Note("release".into())), "not released");
    first.from.send(Resolved { nonce: first.nonce, server });
    loop {
        receive! {
            ask: Resolve => ask.from.send(Resolved { nonce: ask.nonce, server }),
            after TIMEOUT => return,
        }
    }
}

/// Polls `future` once, from the calling process.
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Both outputs, the two futures polled in turn (a join).
async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut from_a, mut from_b) = (None, None);
    poll_fn(|cx| {
        if from_a.is_none() {
            if let Poll::Ready(out) = a.as_mut().poll(cx) {
                from_a = Some(out);
            }
        }
        if from_b.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(cx) {
                from_b = Some(out);
            }
        }
        match (from_a.take(), from_b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (from_a, from_b) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}

#[test]
fn two_lookups_in_flight_in_one_process_both_get_their_answer() {
    let (a, b) = pair();
    let name = unique_name("work");
    let server = b.rt.spawn(WorkServer::serve(Worker::new(b.rt.mailbox().pid())));
    b.rt.register(&name, b.rt.spawn(answering_relay(server))).unwrap();
    let node = b.name().to_owned();
    // Two clients of the name, neither resolved yet, with the default timeout.
    let one = WorkClient::named_at(name.clone(), node.clone()).with_timeout(DEFAULT_TIMEOUT);
    let two = WorkClient::named_at(name.clone(), node.clone()).with_timeout(DEFAULT_TIMEOUT);
    let running = run(&a.rt, async move {
        let started = Instant::now();
        send_named_at(&name, &node, Introduced(self_pid()));
        // The first call asks for the name; its answer arrives while the process waits for
        // something else.
        let mut first = pin!(one.bump());
        assert!(poll_once(first.as_mut()).await.is_pending(), "a lookup on another node takes a round trip");
        assert_eq!(recv_timeout::<Note>(TIMEOUT).await, Some(Note("answered".into())));
        // Polled first: the second call asks before the first looks for its answer again.
        let answers = both(two.bump(), first).await;
        (answers, started.elapsed())
    });
    let ((second, first), took) = running.wait();
    let mut runs = [first, second].map(|run| run.expect("each lookup got its answer, and its call the reply"));
    runs.sort();
    assert_eq!(runs, [1, 2], "each call reached the server");
    assert!(took < DEFAULT_TIMEOUT / 2, "took {took:?}: a lookup waited for an answer that had come");
}

#[test]
fn a_late_answer_to_a_lookup_that_gave_up_never_reaches_the_process() {
    let (a, b) = pair();
    let name = unique_name("work");
    let server = b.rt.spawn(WorkServer::serve(Worker::new(b.rt.mailbox().pid())));
    b.rt.register(&name, b.rt.spawn(late_relay(server))).unwrap();
    let node = b.name().to_owned();
    let impatient = WorkClient::named_at(name.clone(), node.clone()).with_timeout(SHORT);
    let patient = WorkClient::named_at(name.clone(), node.clone()).with_timeout(TIMEOUT);
    let running = run(&a.rt, async move {
        let gave_up = impatient.bump().await;
        // Sent on the connection before the next lookup: the late answer comes before its answer.
        send_named_at(&name, &node, Note("release".into()));
        let next = patient.bump().await;
        (gave_up, next, mailbox_len(self_pid()), try_recv::<Resolved>().map(|late| late.nonce))
    });
    assert_eq!(
        running.wait(),
        (Err(CallError::NoProc), Ok(1), Some(0), None),
        "the first lookup gave up, the next one found the server, and the late answer is nowhere"
    );
}
