//! Exit reasons: how a process's end (return value, error, panic) becomes
//! the reason its monitors see, and that a crash never takes a worker down.

mod util;

use krarup_runtime::{monitor, self_pid, spawn, ExitReason};
use serde::{Deserialize, Serialize};
use util::{down_of, expect_msg, recv_bounded, release, runtime, spawn_held};

#[derive(Debug, Serialize, Deserialize)]
struct Pong;

/// Spawns `body` held, monitors it, lets it run, and returns its exit reason.
async fn reason_of<F>(body: F) -> ExitReason
where
    F: std::future::Future + Send + 'static,
    F::Output: krarup_runtime::IntoExitReason,
{
    let child = spawn_held(body);
    let reference = monitor(child);
    release(child);
    let down = down_of(reference).await;
    assert_eq!(down.pid, child);
    down.reason
}

/// A process body that panics with a `&'static str` payload.
async fn boom() {
    panic!("boom");
}

/// A process body that panics with a formatted (`String`) payload.
async fn crash(message: String) {
    panic!("{message}");
}

#[test]
fn a_process_that_returns_exits_normally() {
    let rt = runtime(2);
    assert_eq!(rt.block_on(reason_of(async {})), ExitReason::Normal);
    assert_eq!(rt.block_on(reason_of(async { Ok::<(), String>(()) })), ExitReason::Normal);
}

#[test]
fn a_panic_becomes_the_exit_reason() {
    let rt = runtime(2);
    assert_eq!(rt.block_on(reason_of(boom())), ExitReason::Panic("boom".into()));
    let n = 7;
    assert_eq!(rt.block_on(reason_of(crash(format!("bad value {n}")))), ExitReason::Panic("bad value 7".into()));
}

#[test]
fn returning_an_error_exits_with_that_error() {
    let rt = runtime(2);
    assert_eq!(rt.block_on(reason_of(async { Err::<(), &str>("x") })), ExitReason::Error("x".into()));
    assert_eq!(rt.block_on(reason_of(async { Err::<(), String>("y".to_string()) })), ExitReason::Error("y".into()));
}

#[test]
fn returning_an_exit_reason_exits_with_it() {
    let rt = runtime(2);
    let reason = ExitReason::Shutdown(Some("done".into()));
    let expected = reason.clone();
    assert_eq!(rt.block_on(reason_of(async move { reason })), expected);
}

#[test]
fn a_worker_survives_a_panicking_process() {
    // One worker: if the panic took its thread down, nothing would run after.
    let rt = runtime(1);
    rt.block_on(async {
        for round in 0..10 {
            assert_eq!(reason_of(crash(format!("crash {round}"))).await, ExitReason::Panic(format!("crash {round}")));
            let me = self_pid();
            spawn(async move { me.send(Pong) });
            let _: Pong = recv_bounded().await;
        }
    });
    // And processes spawned from outside still run.
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    rt.spawn(async move { report.send(Pong) });
    let _: Pong = expect_msg(&mut mailbox);
}

/// A message whose drop panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("drop exploded");
    }
}

#[test]
fn a_panicking_drop_of_an_unread_message_does_not_take_the_worker_down() {
    let rt = runtime(1);
    rt.block_on(async {
        let child = spawn_held(async {});
        let reference = monitor(child);
        child.send_local(PanicOnDrop);
        release(child);
        assert_eq!(down_of(reference).await.reason, ExitReason::Normal);
        let me = self_pid();
        spawn(async move { me.send(Pong) });
        let _: Pong = recv_bounded().await;
    });
}
