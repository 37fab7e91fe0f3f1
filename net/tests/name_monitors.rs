//! Monitors of a name registered on another node (`monitor_name_at`, Erlang's
//! `monitor(process, {Name, Node})`): the node looks the name up when the monitor arrives, the
//! `Down` carries the named process's reason, and `demonitor` leaves nothing behind. Two nodes
//! in this test process, on 127.0.0.1.

mod common;

use std::sync::mpsc;

use common::{echo, pair, recv_bounded, remote_pid, round_trip, Quit, Side, TIMEOUT};
use krarup_runtime::{demonitor, monitor_name_at, monitored_by, send_named_at, try_recv, Down, ExitReason, Pid};
use serde::{Deserialize, Serialize};

/// A process on `side` registered as `name`, which ends with the reason a [`Quit`] gives.
fn named_echo(side: &Side, name: &str) -> Pid {
    let pid = side.rt.spawn(echo());
    side.rt.register(name, pid).expect("a fresh name registers");
    pid
}

#[test]
fn a_monitor_of_a_name_on_another_node_gives_down_with_the_named_processs_reason() {
    let (a, b) = pair();
    named_echo(&b, "server");
    let b_name = b.name().to_owned();
    a.rt.block_on(async move {
        let reference = monitor_name_at("server", &b_name);
        // Sent after the monitor, on the same connection: it finds the process the monitor is on.
        send_named_at("server", &b_name, Quit(ExitReason::Error("bye".into())));
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (reference, ExitReason::Error("bye".into())));
    });
}

#[test]
fn a_monitor_of_a_name_nobody_has_on_another_node_gives_down_noproc() {
    let (a, b) = pair();
    let b_name = b.name().to_owned();
    a.rt.block_on(async move {
        let reference = monitor_name_at("nobody", &b_name);
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (reference, ExitReason::NoProc));
    });
}

#[test]
fn a_monitor_of_a_name_watches_the_process_that_has_it_when_the_monitor_arrives() {
    let (a, b) = pair();
    let first = named_echo(&b, "server");
    let first_at_a = remote_pid(first, &b, &a);
    let b_name = b.name().to_owned();
    let restart = {
        let b_name = b_name.clone();
        a.rt.block_on(async move {
            let reference = monitor_name_at("server", &b_name);
            first_at_a.send(Quit(ExitReason::Error("first".into())));
            let down: Down = recv_bounded().await;
            assert_eq!((down.reference, down.reason), (reference, ExitReason::Error("first".into())));
        });
        // The name went with the first process: a new one takes it.
        named_echo(&b, "server")
    };
    assert_ne!(restart, first);
    a.rt.block_on(async move {
        let reference = monitor_name_at("server", &b_name);
        send_named_at("server", &b_name, Quit(ExitReason::Error("second".into())));
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (reference, ExitReason::Error("second".into())));
    });
}

/// Tells a process of a test to go on.
#[derive(Debug, Serialize, Deserialize)]
struct Go;

/// Waits (bounded) for the next report of a test's process; a closed channel means it failed.
fn next_report(reports: &mpsc::Receiver<&'static str>) -> &'static str {
    reports.recv_timeout(TIMEOUT).expect("the watcher reports in time (or it panicked: see above)")
}

#[test]
fn after_demonitor_of_a_name_monitor_no_down_arrives_and_the_process_keeps_no_monitor() {
    let (a, b) = pair();
    let target = named_echo(&b, "server");
    let witness_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let b_name = b.name().to_owned();
    let (report, reports) = mpsc::channel();
    let watcher = a.rt.spawn(async move {
        let dropped = monitor_name_at("server", &b_name);
        let kept = monitor_name_at("server", &b_name);
        assert!(demonitor(dropped));
        // The witness answers after b has applied everything this process sent before the ping.
        round_trip(witness_at_a).await;
        report.send("demonitored").unwrap();
        let Go = recv_bounded().await;
        send_named_at("server", &b_name, Quit(ExitReason::Error("gone".into())));
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (kept, ExitReason::Error("gone".into())));
        // Everything b sent before the witness's answer has arrived by now.
        round_trip(witness_at_a).await;
        assert_eq!(try_recv::<Down>(), None, "a Down for a removed monitor");
        report.send("done").unwrap();
    });
    assert_eq!(next_report(&reports), "demonitored");
    let watchers = b.rt.block_on(async move { monitored_by(target) }).expect("the target is alive");
    assert_eq!(watchers.len(), 1, "only the monitor still held is on the target: {watchers:?}");
    watcher.send(Go);
    assert_eq!(next_report(&reports), "done");
}

#[test]
fn a_name_monitor_fires_with_noconnection_when_the_node_is_lost() {
    let (a, b) = pair();
    let target = named_echo(&b, "server");
    let witness_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let b_name = b.name().to_owned();
    let (report, reports) = mpsc::channel();
    a.rt.spawn(async move {
        let reference = monitor_name_at("server", &b_name);
        round_trip(witness_at_a).await;
        report.send("monitoring").unwrap();
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (reference, ExitReason::NoConnection));
        report.send("down").unwrap();
    });
    assert_eq!(next_report(&reports), "monitoring");
    assert_eq!(b.rt.block_on(async move { monitored_by(target) }).map(|w| w.len()), Some(1));
    b.node.shutdown();
    assert_eq!(next_report(&reports), "down");
}

#[test]
fn a_monitor_of_a_name_on_this_nodes_own_name_is_a_local_monitor_of_the_name() {
    let a = Side::start("a");
    let target = named_echo(&a, "server");
    let a_name = a.name().to_owned();
    let down: Down = a.rt.block_on(async move {
        let reference = monitor_name_at("server", &a_name);
        target.send(Quit(ExitReason::Error("local".into())));
        let down: Down = recv_bounded().await;
        assert_eq!(down.reference, reference);
        down
    });
    // A local monitor knows the process: the `Down` names it.
    assert_eq!((down.pid, down.reason), (target, ExitReason::Error("local".into())));
}
