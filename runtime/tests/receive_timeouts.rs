//! Receive timeouts: `after`, `recv_timeout`, zero-timeout polls and
//! `try_recv`, in processes and in external mailboxes.

mod util;

use std::time::{Duration, Instant};

use krarup_runtime::{receive, recv_timeout, self_pid, spawn, try_recv, yield_now};
use serde::{Deserialize, Serialize};
use util::{runtime, TIMEOUT};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Late;

/// Generous bound for "returns at once" on a noisy machine.
const AT_ONCE: Duration = Duration::from_secs(2);

#[test]
fn after_runs_when_no_message_matches_and_the_other_message_stays() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(7u32);
        let timeout = Duration::from_millis(30);
        let started = Instant::now();
        let outcome = receive! {
            s: String => format!("got {s}"),
            after timeout => "after".to_string(),
        };
        assert_eq!(outcome, "after");
        assert!(started.elapsed() >= timeout, "after fired early: {:?}", started.elapsed());
        assert_eq!(try_recv::<u32>(), Some(7), "the unmatched message stays");
    });
}

#[test]
fn after_does_not_run_when_a_message_arrives_in_time() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        spawn(async move {
            yield_now().await;
            me.send("hello".to_string());
        });
        let outcome = receive! {
            s: String => s,
            after TIMEOUT => "after".to_string(),
        };
        assert_eq!(outcome, "hello");
    });
}

#[test]
fn a_zero_timeout_takes_what_is_there_without_waiting() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(1u32);
        me.send("other".to_string());
        let started = Instant::now();
        let first = receive! {
            n: u32 => Some(n),
            after Duration::ZERO => None,
        };
        assert_eq!(first, Some(1));
        let second = receive! {
            n: u32 => Some(n),
            after Duration::ZERO => None,
        };
        assert_eq!(second, None, "the after body runs when nothing matches");
        assert_eq!(recv_timeout::<String>(Duration::ZERO).await.as_deref(), Some("other"));
        assert_eq!(recv_timeout::<String>(Duration::ZERO).await, None);
        assert!(started.elapsed() < AT_ONCE, "zero-timeout receives waited {:?}", started.elapsed());
    });
}

#[test]
fn a_zero_timeout_in_a_loop_drains_the_mailbox_and_stops() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in 0..1_000u32 {
            me.send(n);
        }
        let mut got = Vec::new();
        loop {
            receive! {
                n: u32 => got.push(n),
                after Duration::ZERO => break,
            }
        }
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    });
}

#[test]
fn recv_timeout_returns_none_after_the_timeout() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(1u64);
        let timeout = Duration::from_millis(30);
        let started = Instant::now();
        assert_eq!(recv_timeout::<u32>(timeout).await, None);
        assert!(started.elapsed() >= timeout, "timed out early: {:?}", started.elapsed());
        assert_eq!(try_recv::<u64>(), Some(1));
    });
}

#[test]
fn recv_timeout_returns_a_message_that_arrives_in_time() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        spawn(async move {
            yield_now().await;
            me.send(9u32);
        });
        assert_eq!(recv_timeout::<u32>(TIMEOUT).await, Some(9));
    });
}

#[test]
fn an_expired_timeout_does_not_disturb_the_next_receive() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // A short receive that matches at once leaves a timer behind...
        me.send(1u32);
        assert_eq!(recv_timeout::<u32>(Duration::from_millis(5)).await, Some(1));
        // ...and one that times out; neither may cut a later, longer one short.
        assert_eq!(recv_timeout::<u32>(Duration::from_millis(5)).await, None);
        spawn(async move {
            krarup_runtime::sleep(Duration::from_millis(20)).await;
            me.send(Late);
        });
        assert_eq!(recv_timeout::<Late>(TIMEOUT).await, Some(Late));
    });
}

#[test]
fn try_recv_never_waits() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let started = Instant::now();
        assert_eq!(try_recv::<u32>(), None);
        me.send(5u64);
        assert_eq!(try_recv::<u32>(), None, "a message of another type is not taken");
        me.send(6u32);
        assert_eq!(try_recv::<u32>(), Some(6));
        assert_eq!(try_recv::<u64>(), Some(5));
        assert!(started.elapsed() < AT_ONCE);
    });
}

#[test]
fn a_mailbox_recv_timeout_returns_none_and_keeps_other_messages() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    mailbox.pid().send(3u8);
    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    assert_eq!(mailbox.blocking_recv_timeout::<u32>(timeout), None);
    assert!(started.elapsed() >= timeout);
    assert_eq!(mailbox.try_recv::<u32>(), None);
    assert_eq!(mailbox.try_recv::<u8>(), Some(3));
    assert_eq!(mailbox.try_recv::<u8>(), None);
}
