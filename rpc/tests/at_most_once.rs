//! At-most-once execution: the server stub answers a repeated request id from its cache instead
//! of running the procedure again. The repeats here are made by hand — a [`Request`] sent twice
//! with the runtime's `call` — as a client stub's retry makes them.

mod common;

use common::{__WorkReply, __WorkRequest, expect_msg, run, spawn_worker, Go, Started, WorkClient, TIMEOUT};
use std::num::NonZeroU64;

use krarup_rpc::{Request, PER_CLIENT};
use krarup_runtime::{call, call_start, CallError, Pid, Runtime};

/// Where the hand-made sequence numbers start: far above those of the stubs' calls in the same
/// process, which must not be taken for repeats of these.
const HAND: u64 = 1 << 62;

/// Calls `server`'s `bump` with request id `(caller, HAND + seq)`; the count it answers.
async fn bump_as(server: Pid, seq: u64) -> Result<u64, CallError> {
    let seq = NonZeroU64::new(HAND + seq);
    let reply = call::<_, __WorkReply>(server, Request { seq, body: __WorkRequest::Bump() }, TIMEOUT).await?;
    Ok(count(reply))
}

fn count(reply: __WorkReply) -> u64 {
    match reply {
        __WorkReply::Bump(n) | __WorkReply::Runs(n) | __WorkReply::HeldIdempotent(n) => n,
        _ => panic!("not the reply of bump, runs or held_idempotent"),
    }
}

#[test]
fn a_repeated_request_is_answered_from_the_cache_and_runs_once() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let answers = rt.block_on(async move {
        let first = bump_as(server, 1).await;
        let repeat = bump_as(server, 1).await;
        let next = bump_as(server, 2).await;
        let runs = WorkClient::new(server).runs().await;
        (first, repeat, next, runs)
    });
    assert_eq!(answers, (Ok(1), Ok(1), Ok(2), Ok(2)), "the repeat got the first reply and did not run");
}

#[test]
fn a_repeat_arriving_while_the_first_runs_gets_the_same_reply_and_runs_once() {
    let rt = Runtime::new();
    let (server, mut observer) = spawn_worker(&rt);
    let running = run(&rt, async move {
        // Both sent before the server has answered either: a retry of a call still running.
        let seq = NonZeroU64::new(HAND + 7);
        let body = || Request { seq, body: __WorkRequest::HeldIdempotent(5) };
        let first = call_start::<_, __WorkReply>(server, body());
        let repeat = call_start::<_, __WorkReply>(server, body());
        let first = first.wait(TIMEOUT).await.map(count);
        let repeat = repeat.wait(TIMEOUT).await.map(count);
        (first, repeat, WorkClient::new(server).runs().await)
    });
    assert_eq!(expect_msg::<Started>(&mut observer), Started(5));
    server.send(Go);
    assert_eq!(running.wait(), (Ok(5), Ok(5), Ok(1)), "both got the one run's reply");
    assert_eq!(observer.try_recv::<Started>(), None, "the procedure started once");
}

#[test]
fn the_same_sequence_number_from_another_client_runs_again() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let one = rt.block_on(async move { bump_as(server, 1).await });
    let other = rt.block_on(async move { bump_as(server, 1).await });
    assert_eq!((one, other), (Ok(1), Ok(2)), "a request id is the caller's Pid and its sequence number");
}

#[test]
fn separate_client_handles_in_one_process_never_share_a_request_id() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let answers = rt.block_on(async move {
        // Two handles made independently (not clones) in the same process, whose calls carry
        // request ids (retried calls: an idempotent procedure, a retry policy).
        let retry = krarup_rpc::Retry::default();
        let first = WorkClient::new(server).with_retry(retry).bump_idempotent().await;
        let second = WorkClient::new(server).with_retry(retry).bump_idempotent().await;
        let started = WorkClient::new(server).start_bump().wait().await;
        (first, second, started)
    });
    assert_eq!(answers, (Ok(1), Ok(2), Ok(3)), "each call ran: none was taken for a repeat of another");
}

#[test]
fn the_cache_holds_the_last_replies_of_each_client() {
    let rt = Runtime::new();
    let (server, _observer) = spawn_worker(&rt);
    let last = PER_CLIENT as u64 + 1;
    let answers = rt.block_on(async move {
        for seq in 1..=last {
            assert_eq!(bump_as(server, seq).await, Ok(seq));
        }
        // Sequence numbers 2..=last are the last PER_CLIENT: repeats are answered from the cache.
        let kept = bump_as(server, 2).await;
        // Number 1 was pushed out: a repeat that late runs again (a retrying client has not
        // made PER_CLIENT newer calls meanwhile, so its repeats are never this late).
        let forgotten = bump_as(server, 1).await;
        (kept, forgotten)
    });
    assert_eq!(answers, (Ok(2), Ok(last + 1)));
}
