//! Monitors: exactly one `Down` per monitor, `NoProc` for the dead,
//! stacking, and `demonitor` (with flush) never letting a `Down` through.
//!
//! "No Down arrives" is checked against a sentinel that must come after
//! it: a second monitor of the same target, set later, whose `Down` the
//! exit delivers after the first one's.

mod util;

use std::collections::HashSet;
use std::time::Duration;

use krarup_runtime::{
    demonitor, mailbox_len, monitor, receive, self_pid, spawn, try_recv, yield_now, Down, ExitReason, MonitorRef, Pid,
};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, recv_bounded, release, runtime, spawn_held, Dropping, SlowDrop};

/// Whether a `Down` for `reference` is in the mailbox now (taking it).
async fn has_down_for(reference: MonitorRef) -> bool {
    receive! {
        down: Down if down.reference == reference => true,
        after Duration::ZERO => false,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Before(u32);

#[test]
fn a_monitor_delivers_one_down_with_the_reference_pid_and_reason() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async { Err::<(), _>("failed") });
        let reference = monitor(child);
        assert_eq!(reference.target(), child);
        // A later monitor from this process is the sentinel.
        let sentinel = monitor(child);
        release(child);
        let down: Down = recv_bounded().await;
        assert_eq!(down, Down { reference, pid: child, reason: ExitReason::Error("failed".into()) });
        down_of(sentinel).await;
        assert!(!has_down_for(reference).await, "a second Down for one monitor");
        assert_eq!(try_recv::<Down>(), None);
    });
}

#[test]
fn monitoring_a_dead_process_gives_noproc_at_once() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn(async {});
        exit_reason(child).await;
        let reference = monitor(child);
        // Already in the mailbox when `monitor` returns.
        let down = try_recv::<Down>().expect("the NoProc Down is delivered at once");
        assert_eq!(down, Down { reference, pid: child, reason: ExitReason::NoProc });
        // A Pid that never lived, here or on an unknown node.
        for pid in [Pid::from_parts(self_pid().node(), 1_000_000, 3), Pid::from_parts(u32::MAX - 1, 0, 0)] {
            let reference = monitor(pid);
            let down = try_recv::<Down>().expect("the NoProc Down is delivered at once");
            assert_eq!(down, Down { reference, pid, reason: ExitReason::NoProc });
        }
        assert_eq!(try_recv::<Down>(), None);
    });
}

#[test]
fn monitors_stack_and_each_gets_its_own_down() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {});
        let first = monitor(child);
        let second = monitor(child);
        assert_ne!(first, second);
        release(child);
        let a: Down = recv_bounded().await;
        let b: Down = recv_bounded().await;
        let got: HashSet<MonitorRef> = [a.reference, b.reference].into();
        assert_eq!(got, [first, second].into());
        assert_eq!(a.reason, ExitReason::Normal);
        assert_eq!(b.reason, ExitReason::Normal);
    });
}

#[test]
fn messages_sent_before_exiting_arrive_before_the_down() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let child = spawn_held(async move {
            for n in 0..100 {
                me.send(Before(n));
            }
        });
        let reference = monitor(child);
        release(child);
        let mut seen = 0;
        loop {
            receive! {
                Before(n): Before => {
                    assert_eq!(n, seen);
                    seen += 1;
                }
                down: Down if down.reference == reference => break,
                after util::TIMEOUT => panic!("no Down"),
            }
        }
        assert_eq!(seen, 100, "the Down overtook the child's messages");
    });
}

#[test]
fn demonitor_before_the_exit_means_no_down_ever() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {});
        let reference = monitor(child);
        let sentinel = monitor(child);
        assert!(demonitor(reference), "the monitor was active");
        release(child);
        down_of(sentinel).await;
        assert!(!has_down_for(reference).await, "a Down after demonitor");
        assert!(!demonitor(reference), "already gone");
    });
}

#[test]
fn demonitor_after_the_exit_flushes_the_down_from_the_mailbox() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let child = spawn_held(async {});
        let reference = monitor(child);
        let sentinel = monitor(child);
        release(child);
        // The sentinel's Down comes after the first one's: both are here.
        down_of(sentinel).await;
        assert_eq!(mailbox_len(me), Some(1));
        assert!(!demonitor(reference), "the monitor had fired");
        assert!(!has_down_for(reference).await, "demonitor left the Down in the mailbox");
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn demonitor_while_the_target_is_exiting_turns_its_down_away() {
    // The target is dead (its monitors taken) but its Downs not yet sent
    // when we demonitor: the Down must be refused when it arrives.
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {});
        let reference = monitor(child);
        let sentinel = monitor(child);
        let resume = SlowDrop::send_to(child);
        release(child);
        let _: Dropping = recv_bounded().await;
        assert!(!demonitor(reference), "the monitor had fired");
        drop(resume);
        down_of(sentinel).await;
        assert!(!has_down_for(reference).await, "a Down after demonitor");
    });
}

#[test]
fn demonitor_racing_with_the_exit_never_lets_a_down_through() {
    // The target exits on the other worker while we demonitor: the Down is
    // either never sent, flushed from the mailbox, or turned away on arrival.
    const ROUNDS: u32 = 1_000;
    let rt = runtime(2);
    rt.block_on(async {
        for round in 0..ROUNDS {
            let child = spawn_held(async {});
            let reference = monitor(child);
            let sentinel = monitor(child);
            // Released from a plain thread, the child runs on the other worker.
            let releaser = std::thread::spawn(move || release(child));
            for _ in 0..round % 4 {
                yield_now().await;
            }
            demonitor(reference);
            down_of(sentinel).await;
            assert!(!has_down_for(reference).await, "round {round}: a Down after demonitor");
            releaser.join().unwrap();
        }
        assert_eq!(try_recv::<Down>(), None);
    });
}

#[test]
fn monitors_racing_with_exits_give_exactly_one_down_each() {
    // Monitor each child right after spawning it, while it may already be
    // running or exiting on the other worker: each monitor gets one Down,
    // `Normal` or `NoProc`, never none and never two.
    const CHILDREN: usize = 2_000;
    let rt = runtime(2);
    rt.block_on(async {
        let mut pending = HashSet::new();
        for _ in 0..CHILDREN {
            let child = spawn(async {});
            assert!(pending.insert(monitor(child)));
            assert!(pending.insert(monitor(child)));
        }
        for _ in 0..2 * CHILDREN {
            let down: Down = recv_bounded().await;
            assert!(down.reason == ExitReason::Normal || down.reason == ExitReason::NoProc, "{down:?}");
            assert!(pending.remove(&down.reference), "a second Down for {:?}", down.reference);
        }
        assert_eq!(try_recv::<Down>(), None, "a second Down");
    });
}

#[test]
fn demonitor_of_another_process_monitor_does_nothing() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let child = spawn_held(async {});
        let reference = monitor(child);
        spawn(async move {
            me.send(demonitor(reference));
        });
        assert!(!recv_bounded::<bool>().await, "only the watcher can demonitor");
        release(child);
        assert_eq!(down_of(reference).await.reason, ExitReason::Normal);
    });
}

#[test]
fn dropping_a_mailbox_delivers_a_normal_down_to_its_monitors() {
    let rt = runtime(2);
    let mailbox = rt.mailbox();
    let pid = mailbox.pid();
    let mut report = rt.mailbox();
    let to = report.pid();
    rt.spawn(async move {
        let reference = monitor(pid);
        to.send(true);
        let down = down_of(reference).await;
        to.send(down.reason);
    });
    assert!(util::expect_msg::<bool>(&mut report));
    drop(mailbox);
    assert_eq!(util::expect_msg::<ExitReason>(&mut report), ExitReason::Normal);
}
