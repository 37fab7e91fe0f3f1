//! Embedding the runtime in an ordinary program: `Runtime::new`,
//! `block_on`, spawning and sending from plain threads, several runtimes
//! side by side, shutdown and drop.

mod util;

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use krarup_runtime::{
    is_alive, recv, recv_timeout, register, self_pid, send_after, sleep, spawn, whereis, yield_now, Pid, Runtime,
};
use serde::{Deserialize, Serialize};
use util::{expect_msg, finishes_within, recv_bounded, runtime, TIMEOUT};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Ready;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Quit;

/// The increment server: answers `(from, n)` with `(self, n + 1)`, forever.
async fn increment_server() {
    loop {
        let (from, n): (Pid, i64) = recv().await;
        from.send((self_pid(), n + 1));
    }
}

#[test]
fn runtime_new_runs_processes() {
    let rt = Runtime::new();
    assert!(rt.stats().workers >= 1);
    assert_eq!(rt.block_on(async { 6 * 7 }), 42);
}

#[test]
fn block_on_returns_the_value_and_runs_as_a_process_that_can_receive() {
    let rt = runtime(2);
    let (me, reply) = rt.block_on(async {
        let server = spawn(increment_server());
        server.send((self_pid(), 10i64));
        let (from, n): (Pid, i64) = recv_bounded().await;
        assert_eq!(from, server);
        (self_pid(), n)
    });
    assert_eq!(reply, 11);
    assert_eq!(me.node(), rt.node());
}

#[test]
fn spawn_and_send_from_the_test_thread() {
    let rt = runtime(2);
    let server = rt.spawn(increment_server());
    assert_eq!(server.node(), rt.node());
    assert!(is_alive(server));
    let mut mailbox = rt.mailbox();
    server.send((mailbox.pid(), 1i64));
    let (from, n): (Pid, i64) = expect_msg(&mut mailbox);
    assert_eq!((from, n), (server, 2));
}

#[test]
fn plain_threads_can_send_to_a_process() {
    let rt = runtime(2);
    let server = rt.spawn(increment_server());
    let threads: Vec<_> = (0..4i64)
        .map(|k| {
            let mut mailbox = rt.mailbox();
            std::thread::spawn(move || {
                server.send((mailbox.pid(), k * 100));
                let (_, n): (Pid, i64) = mailbox.blocking_recv_timeout(TIMEOUT).expect("a reply");
                n
            })
        })
        .collect();
    let replies: Vec<i64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(replies, vec![1, 101, 201, 301]);
}

#[test]
fn two_runtimes_have_their_own_nodes_and_do_not_interfere() {
    let one = runtime(2);
    let two = runtime(2);
    assert_ne!(one.node(), two.node());
    let (a, b) = (one.block_on(async { self_pid() }), two.block_on(async { self_pid() }));
    assert_eq!(a.node(), one.node());
    assert_eq!(b.node(), two.node());
    drop(two);
    // The first one is unaffected by the second one's shutdown.
    assert_eq!(one.block_on(async { 1 + 1 }), 2);
}

#[test]
fn names_belong_to_their_runtime() {
    let one = runtime(2);
    let two = runtime(2);
    let mut mailbox = one.mailbox();
    let report = mailbox.pid();
    let named = |rt: &Runtime| {
        rt.spawn(async move {
            register("service", self_pid()).unwrap();
            report.send(self_pid());
            let _ = recv_timeout::<Quit>(TIMEOUT).await;
        })
    };
    let first = named(&one);
    let second = named(&two);
    // Both registrations succeed: each runtime has its own name table.
    let mut registered = [expect_msg::<Pid>(&mut mailbox), expect_msg::<Pid>(&mut mailbox)];
    registered.sort();
    let mut expected = [first, second];
    expected.sort();
    assert_eq!(registered, expected);
    assert_eq!(one.block_on(async { whereis("service") }), Some(first));
    assert_eq!(two.block_on(async { whereis("service") }), Some(second));
    first.send(Quit);
    second.send(Quit);
}

#[test]
fn processes_of_two_runtimes_can_talk() {
    let one = runtime(2);
    let two = runtime(2);
    let server = two.spawn(increment_server());
    let reply = one.block_on(async move {
        server.send((self_pid(), 41i64));
        let (from, n): (Pid, i64) = recv_bounded().await;
        assert_eq!(from, server);
        n
    });
    assert_eq!(reply, 42);
    // And the other way round.
    let server = one.spawn(increment_server());
    assert_eq!(
        two.block_on(async move {
            server.send((self_pid(), 1i64));
            recv_bounded::<(Pid, i64)>().await.1
        }),
        2
    );
}

/// Sends a number to `partner` and every number it receives, plus one,
/// back: two of these play ping-pong forever.
async fn ping_pong(partner: Pid) {
    partner.send(0u64);
    loop {
        let n: u64 = recv().await;
        partner.send(n + 1);
    }
}

/// Spawns processes in every waiting state: in `recv`, in a receive with
/// a long timeout, sleeping, with a pending `send_after`, yielding in a
/// loop, and ping-ponging forever. Each holds a clone of `alive`, so its
/// future's drop is visible, and reports `Ready` to `report` first.
fn spawn_live_processes(rt: &Runtime, report: Pid, alive: &mpsc::Sender<()>) -> usize {
    let kinds = 6;
    for kind in 0..kinds {
        let alive = alive.clone();
        rt.spawn(async move {
            let _alive = alive;
            report.send(Ready);
            match kind {
                0 => {
                    let Quit = recv().await;
                }
                1 => {
                    let _ = recv_timeout::<Quit>(Duration::from_secs(3600)).await;
                }
                2 => sleep(Duration::from_secs(3600)).await,
                3 => {
                    send_after(Duration::from_secs(3600), self_pid(), Quit);
                    let Quit = recv().await;
                }
                4 => loop {
                    yield_now().await;
                },
                _ => {
                    let partner = spawn(ping_pong(self_pid()));
                    ping_pong(partner).await
                }
            }
        });
    }
    kinds
}

#[test]
fn shutdown_with_live_processes_returns_true_and_drops_them() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let (alive, dropped) = mpsc::channel::<()>();
    let count = spawn_live_processes(&rt, mailbox.pid(), &alive);
    drop(alive);
    for _ in 0..count {
        let _: Ready = expect_msg(&mut mailbox);
    }
    let rt = Arc::new(rt);
    let handle = rt.clone();
    assert!(finishes_within(2 * TIMEOUT, "shutdown_timeout", move || handle.shutdown_timeout(TIMEOUT)));
    // Every process's future was dropped.
    assert_eq!(dropped.recv_timeout(TIMEOUT), Err(mpsc::RecvTimeoutError::Disconnected));
    // Sending to a process of a stopped runtime is harmless.
    mailbox.pid().send(Quit);
    assert!(rt.shutdown_timeout(TIMEOUT), "a second shutdown is a no-op");
}

#[test]
fn dropping_a_runtime_with_live_processes_returns() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let (alive, dropped) = mpsc::channel::<()>();
    let count = spawn_live_processes(&rt, mailbox.pid(), &alive);
    drop(alive);
    for _ in 0..count {
        let _: Ready = expect_msg(&mut mailbox);
    }
    drop(mailbox);
    finishes_within(2 * TIMEOUT, "dropping the runtime", move || drop(rt));
    assert_eq!(dropped.recv_timeout(TIMEOUT), Err(mpsc::RecvTimeoutError::Disconnected));
}

#[test]
fn block_on_resumes_a_panic_of_its_future() {
    let rt = runtime(2);
    let result = panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(async { panic!("inside block_on") })));
    let payload = result.expect_err("the panic comes back to the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside block_on"));
    // The runtime is still usable.
    assert_eq!(rt.block_on(async { 5 }), 5);
}

#[test]
fn block_on_inside_a_process_panics_instead_of_deadlocking() {
    let rt = Arc::new(runtime(1));
    let inner = rt.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(async move { inner.block_on(async { 1 }) })));
    let payload = result.expect_err("a nested block_on panics");
    let message =
        payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(message.unwrap_or_default().contains("block_on"));
}

#[test]
fn block_on_panics_if_the_runtime_shuts_down_under_it() {
    let rt = Arc::new(runtime(2));
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    let waiter = rt.clone();
    let blocked = std::thread::spawn(move || {
        panic::catch_unwind(AssertUnwindSafe(|| {
            waiter.block_on(async move {
                report.send(Ready);
                recv_timeout::<Quit>(Duration::from_secs(3600)).await
            })
        }))
        .is_err()
    });
    let _: Ready = expect_msg(&mut mailbox);
    assert!(rt.shutdown_timeout(TIMEOUT));
    let panicked = finishes_within(TIMEOUT, "the blocked block_on", move || blocked.join().unwrap());
    assert!(panicked, "block_on must not return a value it never got");
}

#[test]
fn a_dropped_mailbox_is_dead() {
    let rt = runtime(2);
    let mailbox = rt.mailbox();
    let pid = mailbox.pid();
    assert!(is_alive(pid));
    drop(mailbox);
    assert!(!is_alive(pid));
    let before = rt.stats().dropped_messages;
    pid.send(Quit);
    assert_eq!(rt.stats().dropped_messages, before + 1);
}

#[test]
fn a_pid_of_a_dropped_runtime_reaches_nothing() {
    let old = runtime(1);
    let node = old.node();
    let pid = old.spawn(increment_server());
    assert!(is_alive(pid));
    drop(old);
    assert!(!is_alive(pid));
    let new = runtime(2);
    assert_ne!(new.node(), node, "node numbers are never reused");
    let mut mailbox = new.mailbox();
    // Harmless from a plain thread and from a process of another runtime;
    // a send is done when it returns, so anything delivered would be here.
    pid.send((mailbox.pid(), 1i64));
    new.block_on(async move { pid.send((self_pid(), 2i64)) });
    assert_eq!(mailbox.try_recv::<(Pid, i64)>(), None);
    assert_eq!(new.stats().dropped_messages, 0, "not counted against the new runtime");
}

#[test]
fn a_process_can_monitor_a_process_of_another_runtime() {
    let one = runtime(2);
    let two = runtime(2);
    let mut mailbox = two.mailbox();
    let report = mailbox.pid();
    let target = two.spawn(async move {
        report.send(Ready);
        let _: Quit = recv_bounded().await;
    });
    let _: Ready = expect_msg(&mut mailbox);
    let reason = one.block_on(async move {
        let reference = krarup_runtime::monitor(target);
        target.send(Quit);
        util::down_of(reference).await.reason
    });
    assert_eq!(reason, krarup_runtime::ExitReason::Normal);
}

#[test]
fn processes_ended_by_shutdown_exit_with_reason_shutdown() {
    let watcher_rt = runtime(2);
    let target_rt = runtime(2);
    let mut mailbox = target_rt.mailbox();
    let report = mailbox.pid();
    let target = target_rt.spawn(async move {
        report.send(Ready);
        let _ = recv::<Quit>().await;
    });
    let _: Ready = expect_msg(&mut mailbox);
    let mut watcher_box = watcher_rt.mailbox();
    let watcher_report = watcher_box.pid();
    watcher_rt.spawn(async move {
        let reference = krarup_runtime::monitor(target);
        watcher_report.send(Ready);
        watcher_report.send(util::down_of(reference).await.reason);
    });
    let _: Ready = expect_msg(&mut watcher_box);
    assert!(target_rt.shutdown_timeout(TIMEOUT));
    assert_eq!(expect_msg::<krarup_runtime::ExitReason>(&mut watcher_box), krarup_runtime::ExitReason::Shutdown(None));
}
