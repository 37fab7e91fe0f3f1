//! Monitors, rule by rule (DESIGN.md, "Failure"; the module docs of
//! `monitor.rs`): stacking, one `Down` per monitor whoever watches,
//! `NoProc` for the dead, `demonitor` with flush, monitors by name, the
//! atomic `spawn_monitor`, and when a `Down` comes relative to the dead
//! process's name and messages. `monitors.rs` has the basics; these extend
//! them.
//!
//! "No `Down` arrived" is checked against a sentinel that must come after
//! it, as in `monitors.rs`: a later monitor of the same target, whose
//! `Down` the exit delivers after the earlier ones'.

mod util;

use std::collections::{HashMap, HashSet};

use krarup_runtime::{
    demonitor, exit, is_alive, mailbox_len, monitor, monitor_name, monitor_name_at, monitored_by, receive,
    recv_timeout, register, self_pid, send_named, spawn, spawn_link, spawn_monitor, try_recv, unregister, whereis,
    yield_now, Down, ExitReason, MonitorRef, Pid,
};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, poll_for, recv_bounded, release, runtime, spawn_held, Spinner, TIMEOUT};

/// A message a process sends before it exits.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Before(u32);

/// "I am set up."
#[derive(Debug, Serialize, Deserialize)]
struct Ready;

/// Tells a [`waiter`] to exit with this reason.
#[derive(Debug, Serialize, Deserialize)]
struct Quit(ExitReason);

/// A process that exits when told to ([`Quit`]), or with an error if
/// nobody tells it within [`TIMEOUT`].
async fn waiter() -> ExitReason {
    match recv_timeout::<Quit>(TIMEOUT).await {
        Some(Quit(reason)) => reason,
        None => ExitReason::Error("never told to quit".into()),
    }
}

/// A process body that runs `first`, then panics.
async fn panic_after(first: impl FnOnce()) {
    first();
    panic!("after sending");
}

/// Whether a `Down` for `reference` is in the mailbox now (taking it).
async fn has_down_for(reference: MonitorRef) -> bool {
    receive! {
        down: Down if down.reference == reference => true,
        after std::time::Duration::ZERO => false,
    }
}

#[test]
fn monitors_stack_across_watchers_and_demonitor_removes_only_one() {
    // Each monitor is its own, from one watcher or several: removing one
    // leaves the others.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let target = spawn_held(async { Err::<(), _>("stacked") });
        let first = monitor(target);
        let second = monitor(target);
        assert_ne!(first, second, "two monitors, one reference");
        assert_eq!((first.target(), second.target()), (target, target));
        spawn(async move {
            let theirs = monitor(target);
            me.send(theirs);
            me.send(down_of(theirs).await);
        });
        let theirs: MonitorRef = recv_bounded().await;
        assert!(theirs != first && theirs != second);
        let third = monitor(target);
        assert!(demonitor(second));
        release(target);
        let failed = ExitReason::Error("stacked".into());
        assert_eq!(down_of(first).await, Down { reference: first, pid: target, reason: failed.clone() });
        assert_eq!(down_of(third).await, Down { reference: third, pid: target, reason: failed.clone() });
        assert_eq!(recv_bounded::<Down>().await, Down { reference: theirs, pid: target, reason: failed });
        assert_eq!(try_recv::<Down>(), None, "the removed monitor fired");
    });
}

#[test]
fn down_arrives_once_per_monitor() {
    // Three watchers, ten monitors each, on one process ended by a kill:
    // every monitor yields one Down, to its own watcher.
    const WATCHERS: usize = 3;
    const MONITORS: usize = 10;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let target = spawn(waiter());
        for _ in 0..WATCHERS {
            spawn(async move {
                let mut pending: HashSet<MonitorRef> = (0..MONITORS).map(|_| monitor(target)).collect();
                let sentinel = monitor(target);
                me.send(Ready);
                let mut problems = Vec::new();
                for _ in 0..MONITORS {
                    let down: Down = recv_bounded().await;
                    if !pending.remove(&down.reference) || down.reason != ExitReason::Killed {
                        problems.push(format!("{down:?}"));
                    }
                }
                down_of(sentinel).await;
                if let Some(extra) = try_recv::<Down>() {
                    problems.push(format!("a second Down: {extra:?}"));
                }
                me.send(problems);
            });
        }
        for _ in 0..WATCHERS {
            let Ready = recv_bounded().await;
        }
        exit(target, ExitReason::Kill);
        for _ in 0..WATCHERS {
            assert_eq!(recv_bounded::<Vec<String>>().await, Vec::<String>::new());
        }
    });
}

#[test]
fn monitor_of_dead_pid_gives_noproc_at_once() {
    // monitors.rs: a process that returned, a Pid that never lived. Here: a
    // killed process, a dropped Mailbox — and `demonitor` flushes the NoProc
    // Down like any other.
    let rt = runtime(2);
    let mailbox = rt.mailbox();
    let dropped = mailbox.pid();
    drop(mailbox);
    rt.block_on(async move {
        let me = self_pid();
        let (killed, watch) = spawn_monitor(waiter());
        exit(killed, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        for dead in [killed, dropped] {
            let reference = monitor(dead);
            let down = try_recv::<Down>().expect("the NoProc Down is delivered at once");
            assert_eq!(down, Down { reference, pid: dead, reason: ExitReason::NoProc });
        }
        let reference = monitor(killed);
        assert_eq!(mailbox_len(me), Some(1));
        assert!(!demonitor(reference), "a monitor of a dead process is never active");
        assert_eq!(mailbox_len(me), Some(0), "demonitor left the NoProc Down in the mailbox");
    });
}

#[test]
fn demonitor_flushes() {
    // The target died and its Down is in the mailbox, among other
    // messages: `demonitor` takes out that Down and nothing else.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let other = spawn_held(async {});
        let other_watch = monitor(other);
        release(other);
        down_of(other_watch).await;
        let other_dead = monitor(other); // a NoProc Down, first in the mailbox
        let target = spawn_held(async move {
            me.send(Before(1));
            me.send(Before(2));
        });
        let flushed = monitor(target);
        let kept = monitor(target);
        release(target);
        // `kept`'s Down comes after `flushed`'s and the messages.
        let kept_down = down_of(kept).await;
        assert_eq!(mailbox_len(me), Some(4));
        assert!(!demonitor(flushed), "the monitor had fired");
        assert_eq!(mailbox_len(me), Some(3));
        assert!(!has_down_for(flushed).await, "demonitor left its Down");
        assert_eq!(recv_bounded::<Down>().await.reference, other_dead, "another Down was taken");
        assert_eq!(recv_bounded::<Before>().await, Before(1));
        assert_eq!(recv_bounded::<Before>().await, Before(2));
        assert_eq!(kept_down.pid, target);
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn demonitor_before_exit_means_no_down() {
    // monitors.rs: with the target held. Here it is running (on either
    // worker) and crashes later; another watcher's monitor of it still fires.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let target = spawn(waiter());
        let removed = monitor(target);
        spawn(async move {
            let theirs = monitor(target);
            me.send(Ready);
            me.send(down_of(theirs).await.reason);
        });
        let Ready = recv_bounded().await;
        assert!(demonitor(removed), "the monitor was active");
        assert!(!demonitor(removed), "a monitor is removed once");
        let sentinel = monitor(target);
        target.send(Quit(ExitReason::Error("crash".into())));
        assert_eq!(down_of(sentinel).await.reason, ExitReason::Error("crash".into()));
        assert!(!has_down_for(removed).await, "a Down after demonitor");
        assert_eq!(recv_bounded::<ExitReason>().await, ExitReason::Error("crash".into()), "the other watcher's Down");
    });
}

#[test]
fn monitor_name_follows_the_named_process() {
    // The monitor is on the process that had the name when `monitor_name`
    // was called: the name moving on does not move it.
    let rt = runtime(2);
    rt.block_on(async {
        let first = spawn(waiter());
        register("service", first).unwrap();
        let reference = monitor_name("service");
        assert_eq!(reference.target(), first);
        unregister("service").unwrap();
        let (second, second_watch) = spawn_monitor(waiter());
        register("service", second).unwrap();
        second.send(Quit(ExitReason::Error("second".into())));
        assert_eq!(down_of(second_watch).await.reason, ExitReason::Error("second".into()));
        assert!(!has_down_for(reference).await, "the monitor followed the name");
        first.send(Quit(ExitReason::Error("first".into())));
        assert_eq!(down_of(reference).await, Down { reference, pid: first, reason: ExitReason::Error("first".into()) });
    });
}

#[test]
fn monitor_name_of_unregistered_name_gives_noproc() {
    let rt = runtime(2);
    rt.block_on(async {
        let reference = monitor_name("nobody");
        let down = try_recv::<Down>().expect("the NoProc Down is delivered at once");
        assert_eq!(down.reference, reference);
        assert_eq!(down.reason, ExitReason::NoProc);
        assert_eq!(down.pid, reference.target());
        assert!(!is_alive(down.pid), "the Down names a live process");
        // A name whose process has exited is unregistered as well.
        let child = spawn_held(async {});
        register("gone", child).unwrap();
        let watch = monitor(child);
        release(child);
        down_of(watch).await;
        let reference = monitor_name("gone");
        let down = try_recv::<Down>().expect("the NoProc Down is delivered at once");
        assert_eq!((down.reference, down.reason), (reference, ExitReason::NoProc));
    });
}

#[test]
fn monitor_name_at_another_node_from_a_runtime_that_is_no_node_gives_noconnection_at_once() {
    let rt = runtime(1);
    rt.block_on(async {
        let reference = monitor_name_at("server", "b@127.0.0.1:9101");
        let down = try_recv::<Down>().expect("the NoConnection Down is delivered at once");
        assert_eq!((down.reference, down.reason), (reference, ExitReason::NoConnection));
        assert!(!is_alive(down.pid), "the Down names a live process");
    });
}

#[test]
fn spawn_monitor_child_cannot_exit_unobserved() {
    // Children that exit at once, possibly on the other worker before
    // `spawn_monitor` returns: each Down has the child's own reason, never
    // `NoProc` (which spawn-then-monitor would give).
    const CHILDREN: u32 = 1_000;
    let rt = runtime(2);
    rt.block_on(async {
        let mut expected = HashMap::new();
        for n in 0..CHILDREN {
            let (child, reference) = spawn_monitor(async move { Err::<(), String>(format!("child {n}")) });
            assert_eq!(reference.target(), child);
            expected.insert(reference, (child, ExitReason::Error(format!("child {n}"))));
        }
        for _ in 0..CHILDREN {
            let down: Down = recv_bounded().await;
            assert_eq!(expected.remove(&down.reference), Some((down.pid, down.reason)), "unexpected or second Down");
        }
    });
}

#[test]
fn names_are_released_before_monitors_fire() {
    // A watcher that restarts a named process on its Down (as a supervisor
    // does) can give the name to the new one at once, every time, however
    // the old one died and wherever it ran.
    const ROUNDS: u32 = 300;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let mut current = spawn(waiter());
        register("restarted", current).unwrap();
        for round in 0..ROUNDS {
            let watch = monitor(current);
            match round % 3 {
                0 => exit(current, ExitReason::Kill),
                1 => current.send(Quit(ExitReason::Error("crash".into()))),
                _ => current.send(Quit(ExitReason::Normal)),
            }
            let down = down_of(watch).await;
            let next = spawn(waiter());
            assert_eq!(register("restarted", next), Ok(()), "round {round}: the name outlived {down:?}");
            assert_eq!(whereis("restarted"), Some(next));
            current = next;
        }
        send_named("restarted", Quit(ExitReason::Normal)).unwrap();
        assert_eq!(exit_reason(current).await, ExitReason::Normal);
        // The first Down of a process with many monitors, looked at from
        // the other worker while the others are still being delivered.
        let spinner = Spinner::new();
        let held = spinner.clone();
        let named = spawn(async move {
            held.spin();
            Err::<(), _>("crash")
        });
        register("watched", named).unwrap();
        let first = monitor(named);
        let others = spawn(async move {
            for _ in 0..5_000 {
                monitor(named);
            }
            me.send(Ready);
            waiter().await
        });
        let Ready = recv_bounded().await;
        spinner.until_spinning().await;
        spinner.let_go();
        let down = poll_for::<Down>(|down| down.reference == first).await;
        let (found, again) = (whereis("watched"), register("watched", me));
        others.send(Quit(ExitReason::Normal));
        assert_eq!(down.reason, ExitReason::Error("crash".into()));
        assert_eq!(found, None, "the name outlived its process");
        assert_eq!(again, Ok(()), "the name could not be taken at once");
    });
}

#[test]
fn down_comes_after_the_dead_process_s_last_messages() {
    // monitors.rs: a process that returns. Here, every way to die — even
    // killed, or taken down by a link, right after sending.
    const MESSAGES: u32 = 100;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let send_all = move || {
            for n in 0..MESSAGES {
                me.send(Before(n));
            }
        };
        let ways: Vec<(&str, Pid, ExitReason)> = vec![
            ("returns", spawn_held(async move { send_all() }), ExitReason::Normal),
            (
                "fails",
                spawn_held(async move {
                    send_all();
                    Err::<(), _>("failed")
                }),
                ExitReason::Error("failed".into()),
            ),
            ("panics", spawn_held(panic_after(send_all)), ExitReason::Panic("after sending".into())),
            (
                "is killed",
                spawn_held(async move {
                    send_all();
                    exit(self_pid(), ExitReason::Kill);
                    yield_now().await;
                }),
                ExitReason::Killed,
            ),
            (
                "is taken down by a link",
                spawn_held(async move {
                    spawn_link(async { Err::<(), _>("linked") });
                    send_all();
                    let _ = recv_timeout::<Quit>(TIMEOUT).await;
                }),
                ExitReason::Error("linked".into()),
            ),
        ];
        for (how, child, reason) in ways {
            let reference = monitor(child);
            release(child);
            let mut seen = 0;
            loop {
                receive! {
                    Before(n): Before => {
                        assert_eq!(n, seen, "{how}: out of order");
                        seen += 1;
                    }
                    down: Down if down.reference == reference => {
                        assert_eq!(down.reason, reason, "{how}");
                        break;
                    }
                    after TIMEOUT => panic!("{how}: no Down"),
                }
            }
            assert_eq!(seen, MESSAGES, "{how}: the Down overtook the messages");
        }
    });
}

#[test]
fn a_watcher_that_exits_leaves_no_monitor_on_its_target() {
    // As in Erlang: the monitors a process holds end with it, however it
    // ends, so a long-lived target does not collect them.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let target = spawn(waiter());
        for kill in [false, true] {
            let (watcher, watch) = spawn_monitor(async move {
                monitor(target);
                monitor(target);
                me.send(Ready);
                waiter().await
            });
            let Ready = recv_bounded().await;
            assert_eq!(monitored_by(target), Some(vec![watcher, watcher]));
            if kill {
                exit(watcher, ExitReason::Kill);
            } else {
                watcher.send(Quit(ExitReason::Normal));
            }
            down_of(watch).await;
            assert_eq!(monitored_by(target), Some(vec![]), "killed: {kill}");
        }
        // A monitor that fired or was removed leaves nothing either.
        let fired = monitor(target);
        let removed = monitor(target);
        assert!(demonitor(removed));
        assert_eq!(monitored_by(target), Some(vec![me]));
        target.send(Quit(ExitReason::Normal));
        down_of(fired).await;
        assert_eq!(monitored_by(target), None);
    });
}

#[test]
fn a_dead_watcher_s_monitors_are_gone_when_its_down_arrives() {
    // As names are released before monitors fire: whoever gets a watcher's
    // Down finds its monitors gone from their targets — even if it looks at
    // once, from the other worker. The watcher holds many monitors on one
    // target, then one on another, which its exit removes last.
    const MONITORS: usize = 5_000;
    let rt = runtime(2);
    rt.block_on(async {
        let (many, last) = (spawn(waiter()), spawn(waiter()));
        let spinner = Spinner::new();
        let held = spinner.clone();
        let (watcher, watch) = spawn_monitor(async move {
            for _ in 0..MONITORS {
                monitor(many);
            }
            monitor(last);
            held.spin();
        });
        spinner.until_spinning().await;
        assert_eq!(monitored_by(last), Some(vec![watcher]));
        spinner.let_go();
        poll_for::<Down>(|down| down.reference == watch).await;
        let left = monitored_by(last);
        many.send(Quit(ExitReason::Normal));
        last.send(Quit(ExitReason::Normal));
        assert_eq!(left, Some(vec![]), "a dead watcher's monitor was still on its target after its Down");
    });
}
