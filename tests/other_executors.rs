//! Talking to processes from another executor: a `Mailbox`'s receives are
//! ordinary futures, woken by the runtime, so a tokio task can await a
//! process's reply and time out through the runtime's timers.

use std::time::{Duration, Instant};

use krarup::{recv, recv_timeout, self_pid, Message, Pid, Runtime};
use serde::{Deserialize, Serialize};

/// Every wait in these tests gives up after this long, so a bug fails the
/// test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A small runtime with `workers` worker threads.
fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime starts")
}

/// Inside a process: the next `T`, or a panic after [`TIMEOUT`].
async fn recv_bounded<T: Message>() -> T {
    match recv_timeout::<T>(TIMEOUT).await {
        Some(msg) => msg,
        None => panic!("no {} arrived within {TIMEOUT:?}", std::any::type_name::<T>()),
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Late(u32);

async fn increment_server() {
    loop {
        let (from, n): (Pid, i64) = recv().await;
        from.send((self_pid(), n + 1));
    }
}

#[tokio::test]
async fn a_reply_can_be_awaited_on_a_tokio_executor() {
    let rt = runtime(2);
    let server = rt.spawn(increment_server());
    let mut mailbox = rt.mailbox();
    server.send((mailbox.pid(), 10i64));
    let (from, n) = tokio::time::timeout(TIMEOUT, mailbox.recv::<(Pid, i64)>()).await.expect("a reply in time");
    assert_eq!((from, n), (server, 11));
    // Many round trips, each awaited.
    for k in 0..100i64 {
        server.send((mailbox.pid(), k));
        let (_, n) = tokio::time::timeout(TIMEOUT, mailbox.recv::<(Pid, i64)>()).await.expect("a reply in time");
        assert_eq!(n, k + 1);
    }
}

#[tokio::test]
async fn a_mailbox_recv_timeout_times_out_on_a_tokio_executor() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    let got = tokio::time::timeout(TIMEOUT, mailbox.recv_timeout::<u32>(timeout))
        .await
        .expect("the runtime's timer woke the tokio task");
    assert_eq!(got, None);
    assert!(started.elapsed() >= timeout);
}

#[tokio::test]
async fn a_mailbox_recv_timeout_returns_a_message_that_arrives_in_time() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    rt.spawn(async move {
        krarup::sleep(Duration::from_millis(10)).await;
        to.send(Late(1));
    });
    let got = tokio::time::timeout(TIMEOUT, mailbox.recv_timeout::<Late>(TIMEOUT)).await.expect("in time");
    assert_eq!(got, Some(Late(1)));
}

#[tokio::test]
async fn an_abandoned_mailbox_receive_can_be_started_again() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    // Give up on a receive (tokio's timeout drops the future)...
    let abandoned = tokio::time::timeout(Duration::from_millis(10), mailbox.recv::<Late>()).await;
    assert!(abandoned.is_err());
    // ...then a process replies later: a new receive gets it.
    let to = mailbox.pid();
    rt.spawn(async move {
        let n: u32 = recv_bounded().await;
        to.send(Late(n));
    })
    .send(7u32);
    let got = tokio::time::timeout(TIMEOUT, mailbox.recv::<Late>()).await.expect("in time");
    assert_eq!(got, Late(7));
}
