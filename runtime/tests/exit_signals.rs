//! Exit signals and links, rule by rule (the module docs of `signal.rs`,
//! after the Erlang reference manual's "Processes" chapter): what `exit`
//! does to a process that traps exits and to one that does not, how links
//! carry a death, and what `unlink`, `trap_exit` and a `Mailbox` change.
//! `links.rs` has the basics; these extend them.
//!
//! "No `Exit` arrived" is checked after the dead process's `Down`: a dying
//! process signals its links before its monitors, from the same thread, so
//! an `Exit` it sent is in the mailbox by the time its `Down` is.

mod util;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use krarup_runtime::{
    exit, link, links, mailbox_len, monitor, receive, recv_timeout, self_pid, sleep, spawn, spawn_link, spawn_monitor,
    trap_exit, try_recv, unlink, yield_now, Down, Exit, ExitReason, MonitorRef, Pid,
};
use serde::{Deserialize, Serialize};
use util::{down_of, expect_msg, recv_bounded, runtime, Dropping, SlowDrop, Spinner, TIMEOUT};

/// "I am set up": sent by a process to its test before the signal comes.
#[derive(Debug, Serialize, Deserialize)]
struct Ready;

/// Asks a [`responder`] to answer with [`Pong`].
#[derive(Debug, Serialize, Deserialize)]
struct Ping(Pid);

#[derive(Debug, Serialize, Deserialize)]
struct Pong;

/// Tells a [`responder`] to exit with this reason.
#[derive(Debug, Serialize, Deserialize)]
struct Crash(ExitReason);

/// The reason a process ends with when the signal it waited for never came.
fn left_idle() -> ExitReason {
    ExitReason::Error("left idle: the expected exit signal never came".into())
}

/// A process that answers every [`Ping`] until a [`Crash`] tells it to
/// exit; if nothing comes within [`TIMEOUT`] it exits with [`left_idle`],
/// so a lost signal shows as a wrong reason instead of a hang.
async fn responder() -> ExitReason {
    loop {
        receive! {
            Ping(from): Ping => from.send(Pong),
            Crash(reason): Crash => return reason,
            after TIMEOUT => return left_idle(),
        }
    }
}

/// Whether `pid` (a [`responder`] watched by `watch`) still runs: it
/// answers a ping, rather than its `Down` arriving.
async fn still_runs(pid: Pid, watch: MonitorRef) -> bool {
    pid.send(Ping(self_pid()));
    receive! {
        Pong => true,
        down: Down if down.reference == watch => {
            eprintln!("{pid} is gone: {down:?}");
            false
        }
        after TIMEOUT => panic!("{pid} neither answered nor exited within {TIMEOUT:?}"),
    }
}

#[test]
fn kill_cannot_be_trapped_by_a_process_between_polls() {
    // links.rs kills a trapping process blocked in a receive; this one is
    // busy in a loop that awaits but never receives. One worker: the
    // victim is queued, between two polls, when the kill comes.
    let rt = runtime(1);
    rt.block_on(async {
        let me = self_pid();
        let (victim, watch) = spawn_monitor(async move {
            trap_exit(true);
            me.send(Ready);
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                if let Some(exit) = try_recv::<Exit>() {
                    return ExitReason::Error(format!("the kill was trapped: {exit:?}"));
                }
                yield_now().await;
            }
            left_idle()
        });
        let Ready = recv_bounded().await;
        exit(victim, ExitReason::Kill);
        assert_eq!(down_of(watch).await, Down { reference: watch, pid: victim, reason: ExitReason::Killed });
    });
}

#[test]
fn normal_exit_signal_is_ignored_and_leaves_no_message() {
    // By a process that does not trap exits, whatever it is doing: it
    // carries on, with nothing added to its mailbox.
    let rt = runtime(2);
    rt.block_on(async {
        let (target, watch) = spawn_monitor(responder());
        assert!(still_runs(target, watch).await);
        exit(target, ExitReason::Normal);
        assert!(still_runs(target, watch).await, "a Normal exit signal ended the process");
        assert_eq!(mailbox_len(target), Some(0), "the ignored signal became a message");
        target.send(Crash(ExitReason::Normal));
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
    });
}

#[test]
fn normal_exit_signal_to_oneself_ends_the_process() {
    let rt = runtime(2);
    rt.block_on(async {
        let (pid, watch) = spawn_monitor(async {
            exit(self_pid(), ExitReason::Normal);
            // Ended at this await.
            let _ = recv_timeout::<Ready>(TIMEOUT).await;
            ExitReason::Error("survived its own Normal exit signal".into())
        });
        assert_eq!(down_of(watch).await, Down { reference: watch, pid, reason: ExitReason::Normal });
    });
}

#[test]
fn a_trapping_process_gets_normal_exits_as_messages() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        assert!(!trap_exit(true));
        // Sent with `exit` by another process.
        let sender = spawn(async move { exit(me, ExitReason::Normal) });
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: sender, reason: ExitReason::Normal });
        // A linked process that returns.
        let child = spawn_link(async {});
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: child, reason: ExitReason::Normal });
        // Sent to oneself: a message too, and the process lives on.
        exit(me, ExitReason::Normal);
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: me, reason: ExitReason::Normal });
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn exit_with_any_other_reason_ends_a_non_trapping_process_with_that_reason() {
    let rt = runtime(2);
    rt.block_on(async {
        let reasons = [
            ExitReason::Error("bad".into()),
            ExitReason::Shutdown(None),
            ExitReason::Shutdown(Some("maintenance".into())),
            ExitReason::Panic("not a real panic".into()),
            // `Killed` sent with `exit` is an ordinary reason (only `Kill` is special).
            ExitReason::Killed,
            ExitReason::NoProc,
            ExitReason::NoConnection,
        ];
        for reason in reasons {
            let (target, watch) = spawn_monitor(responder());
            exit(target, reason.clone());
            assert_eq!(down_of(watch).await, Down { reference: watch, pid: target, reason });
        }
    });
}

#[test]
fn a_process_blocked_in_receive_is_killed_promptly() {
    // One worker: when the kill is sent, the victim has certainly gone
    // pending in its receive (it had the worker until then). It would wait
    // there for TIMEOUT and exit with another reason.
    let rt = runtime(1);
    rt.block_on(async {
        let me = self_pid();
        for reason in [ExitReason::Kill, ExitReason::Error("stop".into())] {
            let (victim, watch) = spawn_monitor(async move {
                me.send(Ready);
                let _ = recv_timeout::<Crash>(TIMEOUT).await;
                left_idle()
            });
            let Ready = recv_bounded().await;
            exit(victim, reason.clone());
            let expected = if reason == ExitReason::Kill { ExitReason::Killed } else { reason };
            assert_eq!(down_of(watch).await.reason, expected);
        }
    });
}

#[test]
fn a_process_waiting_on_a_timer_is_killed_promptly() {
    let rt = runtime(1);
    rt.block_on(async {
        let me = self_pid();
        let (victim, watch) = spawn_monitor(async move {
            me.send(Ready);
            sleep(TIMEOUT).await;
            left_idle()
        });
        let Ready = recv_bounded().await;
        exit(victim, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
    });
}

#[test]
fn a_process_in_a_loop_is_killed_at_its_next_await() {
    // Where krarup differs from Erlang: Erlang preempts a busy process and
    // kills it at once; a krarup process is cooperative, so a signal that
    // ends it is acted on only at its next `.await`. The code up to that
    // await runs; nothing after it does.
    let rt = runtime(2);
    rt.block_on(async {
        let spinner = Spinner::new();
        let reached_the_await = Arc::new(AtomicBool::new(false));
        let ran_past_the_await = Arc::new(AtomicBool::new(false));
        let (held, reached, ran_past) = (spinner.clone(), reached_the_await.clone(), ran_past_the_await.clone());
        let (victim, watch) = spawn_monitor(async move {
            // A loop without an await: it keeps its worker until let go.
            if !held.spin() {
                return left_idle();
            }
            reached.store(true, Ordering::Release);
            yield_now().await;
            ran_past.store(true, Ordering::Release);
            ExitReason::Error("ran past the await".into())
        });
        spinner.until_spinning().await;
        exit(victim, ExitReason::Kill);
        assert_eq!(try_recv::<Down>(), None, "a process that never awaited was ended");
        spinner.let_go();
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        assert!(reached_the_await.load(Ordering::Acquire), "the loop was cut short");
        assert!(!ran_past_the_await.load(Ordering::Acquire), "the process was polled again after the kill");
    });
}

#[test]
fn link_is_bidirectional() {
    // The process that calls `link` dies with its partner, and the partner
    // with it: either end's death travels to the other.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for crash_the_linker in [false, true] {
            let (target, target_watch) = spawn_monitor(responder());
            let (linker, linker_watch) = spawn_monitor(async move {
                link(target);
                me.send(Ready);
                responder().await
            });
            let Ready = recv_bounded().await;
            let reason = ExitReason::Error(format!("crash the linker: {crash_the_linker}"));
            let (crashing, crashing_watch, survivor_watch) = if crash_the_linker {
                (linker, linker_watch, target_watch)
            } else {
                (target, target_watch, linker_watch)
            };
            crashing.send(Crash(reason.clone()));
            assert_eq!(down_of(crashing_watch).await.reason, reason);
            assert_eq!(down_of(survivor_watch).await.reason, reason, "crash the linker: {crash_the_linker}");
        }
    });
}

#[test]
fn repeated_link_is_a_no_op() {
    // links.rs: linking twice gives one Exit. Here: a link is there or not
    // (a set, not a count), so one `unlink` undoes any number of `link`s.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        trap_exit(true);
        let child = spawn_link(responder());
        link(child);
        link(child);
        assert_eq!(links(me), Some(vec![child]));
        assert_eq!(links(child), Some(vec![me]));
        unlink(child);
        assert_eq!((links(me), links(child)), (Some(vec![]), Some(vec![])), "unlink left a side");
        let watch = monitor(child);
        child.send(Crash(ExitReason::Error("boom".into())));
        assert_eq!(down_of(watch).await.reason, ExitReason::Error("boom".into()));
        assert_eq!(try_recv::<Exit>(), None, "a link survived the unlink");
    });
}

#[test]
fn link_to_oneself_is_a_no_op() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // Trapping: no Exit message (not NoProc, not anything).
        let (_, watch) = spawn_monitor(async move {
            trap_exit(true);
            link(self_pid());
            me.send(links(self_pid()));
            yield_now().await;
            me.send(mailbox_len(self_pid()));
            me.send(try_recv::<Exit>());
        });
        assert_eq!(recv_bounded::<Option<Vec<Pid>>>().await, Some(vec![]), "a link to itself");
        assert_eq!(recv_bounded::<Option<usize>>().await, Some(0));
        assert_eq!(recv_bounded::<Option<Exit>>().await, None);
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        // Not trapping: it lives on, and ends with its own reason.
        let (plain, watch) = spawn_monitor(async {
            link(self_pid());
            responder().await
        });
        assert!(still_runs(plain, watch).await, "linking to itself ended the process");
        plain.send(Crash(ExitReason::Normal));
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
    });
}

#[test]
fn link_to_a_pid_that_never_lived_gives_noproc() {
    // links.rs covers a Pid that died; this one never named a process.
    let rt = runtime(2);
    rt.block_on(async {
        let nobody = Pid::from_parts(self_pid().node(), 1_000_000, 3);
        let (linker, watch) = spawn_monitor(async move {
            link(nobody);
            responder().await
        });
        assert_eq!(down_of(watch).await, Down { reference: watch, pid: linker, reason: ExitReason::NoProc });
        trap_exit(true);
        link(nobody);
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: nobody, reason: ExitReason::NoProc });
    });
}

#[test]
fn spawn_link_child_cannot_exit_unobserved() {
    // Children that exit at once, possibly on the other worker before
    // `spawn_link` has returned: each one's exit still reaches its parent.
    const CHILDREN: usize = 1_000;
    let rt = runtime(2);
    rt.block_on(async {
        trap_exit(true);
        let mut expected = HashMap::new();
        for n in 0..CHILDREN {
            let child = spawn_link(async move { Err::<(), String>(format!("child {n}")) });
            expected.insert(child, ExitReason::Error(format!("child {n}")));
        }
        for _ in 0..CHILDREN {
            let Exit { from, reason } = recv_bounded().await;
            assert_eq!(expected.remove(&from), Some(reason), "an unexpected or second Exit from {from}");
        }
        // Not trapping: the parent dies of a child it never waited for.
        let parents: Vec<(Pid, MonitorRef)> = (0..100)
            .map(|n| {
                spawn_monitor(async move {
                    spawn_link(async move { Err::<(), String>(format!("under parent {n}")) });
                    let _ = recv_timeout::<Crash>(TIMEOUT).await;
                    left_idle()
                })
            })
            .collect();
        for (n, (_, watch)) in parents.into_iter().enumerate() {
            assert_eq!(down_of(watch).await.reason, ExitReason::Error(format!("under parent {n}")));
        }
    });
}

#[test]
fn killed_reason_propagates_through_links_as_killed() {
    // The victim of `Kill` exits with `Killed`, and that is what its links
    // carry: a linked process that does not trap exits dies with `Killed`
    // (not `Kill`), one that traps gets `Exit { reason: Killed }`.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let (victim, victim_watch) = spawn_monitor(responder());
        let (plain, plain_watch) = spawn_monitor(async move {
            link(victim);
            me.send(Ready);
            responder().await
        });
        spawn(async move {
            trap_exit(true);
            link(victim);
            me.send(Ready);
            me.send(recv_bounded::<Exit>().await);
        });
        let (Ready, Ready) = (recv_bounded().await, recv_bounded().await);
        exit(victim, ExitReason::Kill);
        assert_eq!(down_of(victim_watch).await.reason, ExitReason::Killed);
        assert_eq!(down_of(plain_watch).await, Down { reference: plain_watch, pid: plain, reason: ExitReason::Killed });
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: victim, reason: ExitReason::Killed });
    });
}

#[test]
fn exit_signal_after_unlink_has_no_effect() {
    // links.rs: the survivor unlinks. Here the *other* end unlinks, then
    // crashes: `unlink` removes both sides.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // A survivor that traps exits gets no Exit message.
        trap_exit(true);
        let child = spawn_link(async move {
            let Ready = recv_bounded().await;
            unlink(me);
            assert_eq!(links(self_pid()), Some(vec![]));
            Err::<(), _>("crash after unlink")
        });
        let watch = monitor(child);
        child.send(Ready);
        assert_eq!(down_of(watch).await.reason, ExitReason::Error("crash after unlink".into()));
        assert_eq!(try_recv::<Exit>(), None, "an Exit through a removed link");
        assert_eq!(links(me), Some(vec![]), "unlink left our side");
        // A survivor that does not trap exits lives on.
        let (survivor, survivor_watch) = spawn_monitor(async move {
            let survivor = self_pid();
            let crasher = spawn_link(async move {
                let Ready = recv_bounded().await;
                unlink(survivor);
                Err::<(), _>("crash after unlink")
            });
            me.send(crasher);
            responder().await
        });
        let crasher: Pid = recv_bounded().await;
        let crasher_watch = monitor(crasher);
        crasher.send(Ready);
        assert_eq!(down_of(crasher_watch).await.reason, ExitReason::Error("crash after unlink".into()));
        assert!(still_runs(survivor, survivor_watch).await, "a signal through a removed link ended the survivor");
        survivor.send(Crash(ExitReason::Normal));
        assert_eq!(down_of(survivor_watch).await.reason, ExitReason::Normal);
    });
}

#[test]
fn unlink_while_the_other_end_is_exiting_stops_its_signal() {
    // The other end is dead, its links taken, but its exit signals not yet
    // sent when we unlink: once `unlink` has returned, the link has no
    // effect, so the signal is turned away when it comes.
    let rt = runtime(2);
    rt.block_on(async {
        trap_exit(true);
        let child = spawn_link(async {
            let Ready = recv_bounded().await;
            Err::<(), _>("dying")
        });
        let watch = monitor(child);
        // Left unread, it holds the child half-way through its exit.
        let resume = SlowDrop::send_to(child);
        child.send(Ready);
        let Dropping = recv_bounded().await;
        unlink(child);
        drop(resume);
        assert_eq!(down_of(watch).await.reason, ExitReason::Error("dying".into()));
        assert_eq!(try_recv::<Exit>(), None, "an Exit through a link removed before it was sent");
    });
}

#[test]
fn unlink_leaves_an_exit_message_that_already_arrived() {
    // As documented on `unlink` (and in Erlang): unlinking removes the link,
    // not an `Exit` it already delivered.
    let rt = runtime(2);
    rt.block_on(async {
        trap_exit(true);
        let child = spawn_link(async {
            let Ready = recv_bounded().await;
            Err::<(), _>("gone")
        });
        let watch = monitor(child);
        child.send(Ready);
        assert_eq!(down_of(watch).await.reason, ExitReason::Error("gone".into()));
        unlink(child);
        assert_eq!(try_recv::<Exit>(), Some(Exit { from: child, reason: ExitReason::Error("gone".into()) }));
    });
}

#[test]
fn trap_exit_returns_the_previous_setting() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let (pid, watch) = spawn_monitor(async move {
            let settings = [trap_exit(true), trap_exit(true), trap_exit(false), trap_exit(false), trap_exit(true)];
            me.send(settings.to_vec());
            // Trapping now: the first signal is a message...
            let exit: Exit = recv_bounded().await;
            me.send(exit);
            // ...and once no longer trapping, the second one ends it.
            assert!(trap_exit(false));
            me.send(Ready);
            responder().await
        });
        assert_eq!(recv_bounded::<Vec<bool>>().await, [false, true, true, false, false]);
        exit(pid, ExitReason::Error("first".into()));
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: me, reason: ExitReason::Error("first".into()) });
        let Ready = recv_bounded().await;
        exit(pid, ExitReason::Error("second".into()));
        assert_eq!(down_of(watch).await.reason, ExitReason::Error("second".into()));
    });
}

#[test]
fn shutdown_with_a_value_propagates() {
    // `Shutdown(..)` is not `Normal`: it ends linked processes that do not
    // trap exits, with the same reason, detail included.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        trap_exit(true);
        for reason in [ExitReason::Shutdown(Some("maintenance".into())), ExitReason::Shutdown(None)] {
            let (origin, origin_watch) = spawn_monitor(responder());
            let (plain, plain_watch) = spawn_monitor(async move {
                link(origin);
                me.send(Ready);
                responder().await
            });
            link(origin);
            let Ready = recv_bounded().await;
            origin.send(Crash(reason.clone()));
            assert_eq!(down_of(origin_watch).await.reason, reason);
            assert_eq!(down_of(plain_watch).await, Down { reference: plain_watch, pid: plain, reason: reason.clone() });
            assert_eq!(recv_bounded::<Exit>().await, Exit { from: origin, reason });
        }
    });
}

#[test]
fn an_exit_message_from_a_link_names_the_dead_process() {
    // Whoever made the link (`spawn_link`, our `link`, the other side's
    // `link`), the Exit's `from` is the process that died.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        trap_exit(true);
        let spawned = spawn_link(responder());
        let linked_here = spawn(responder());
        link(linked_here);
        let linked_there = spawn(async move {
            link(me);
            me.send(Ready);
            responder().await
        });
        let Ready = recv_bounded().await;
        let children = [spawned, linked_here, linked_there];
        for (n, child) in children.into_iter().enumerate() {
            child.send(Crash(ExitReason::Error(format!("child {n}"))));
        }
        let mut seen = HashSet::new();
        for _ in 0..children.len() {
            let Exit { from, reason } = recv_bounded().await;
            let n = children.iter().position(|&c| c == from).unwrap_or_else(|| panic!("Exit from a stranger {from}"));
            assert_eq!(reason, ExitReason::Error(format!("child {n}")));
            assert!(seen.insert(from), "a second Exit from {from}");
        }
    });
}

#[test]
fn an_exit_message_from_exit_names_the_sender() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        trap_exit(true);
        let sender = spawn(async move { exit(me, ExitReason::Error("from afar".into())) });
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: sender, reason: ExitReason::Error("from afar".into()) });
    });
}

#[test]
fn a_mailbox_receives_exit_signals_as_messages() {
    // A Mailbox is not a process and cannot be ended: every signal, even
    // `Kill` and `Normal` from another process, arrives as an `Exit`
    // message — through a link, or sent with `exit`.
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let mb = mailbox.pid();
    let crasher = rt.spawn(async move {
        link(mb);
        Err::<(), _>("linked to a mailbox")
    });
    assert_eq!(
        expect_msg::<Exit>(&mut mailbox),
        Exit { from: crasher, reason: ExitReason::Error("linked to a mailbox".into()) }
    );
    let returner = rt.spawn(async move { link(mb) });
    assert_eq!(expect_msg::<Exit>(&mut mailbox), Exit { from: returner, reason: ExitReason::Normal });
    let sender = rt.spawn(async move {
        exit(mb, ExitReason::Kill);
        exit(mb, ExitReason::Normal);
        exit(mb, ExitReason::Shutdown(None));
    });
    for reason in [ExitReason::Kill, ExitReason::Normal, ExitReason::Shutdown(None)] {
        assert_eq!(expect_msg::<Exit>(&mut mailbox), Exit { from: sender, reason });
    }
    // And it still works.
    rt.spawn(async move { mb.send(Pong) });
    let Pong = expect_msg(&mut mailbox);
}

#[test]
fn dropping_a_linked_mailbox_sends_its_links_a_normal_exit() {
    // The other direction: a dropped Mailbox exits like a process that
    // returned. A linked process that traps exits gets `Exit { Normal }`,
    // one that does not ignores it.
    let rt = runtime(2);
    let mut report = rt.mailbox();
    let to = report.pid();
    let linked = rt.mailbox();
    let mb = linked.pid();
    rt.spawn(async move {
        trap_exit(true);
        link(mb);
        to.send(Ready);
        to.send(recv_bounded::<Exit>().await);
    });
    rt.spawn(async move {
        link(mb);
        let watch = monitor(mb);
        to.send(Ready);
        // The mailbox's Down comes after its link's signal, which has been
        // handled by then: had it ended this process, it would end at the
        // next await.
        down_of(watch).await;
        yield_now().await;
        to.send(Pong);
    });
    let (Ready, Ready) = (expect_msg(&mut report), expect_msg(&mut report));
    drop(linked);
    assert_eq!(expect_msg::<Exit>(&mut report), Exit { from: mb, reason: ExitReason::Normal });
    let Pong = expect_msg(&mut report);
}

#[test]
fn a_crash_at_the_end_of_a_chain_of_links_kills_the_whole_chain_with_its_reason() {
    // 1,000 processes, each linked to the next; the last one crashes. The
    // death travels the whole chain, unchanged, and each member's monitor
    // fires exactly once.
    const MEMBERS: usize = 1_000;

    #[derive(Debug, Serialize, Deserialize)]
    struct LinkTo(Pid);

    #[derive(Debug, Serialize, Deserialize)]
    struct Linked;

    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let members: Vec<(Pid, MonitorRef)> = (0..MEMBERS)
            .map(|_| {
                spawn_monitor(async move {
                    loop {
                        receive! {
                            LinkTo(next): LinkTo => {
                                link(next);
                                me.send(Linked);
                            }
                            Crash(reason): Crash => return reason,
                            after TIMEOUT => return left_idle(),
                        }
                    }
                })
            })
            .collect();
        for pair in members.windows(2) {
            pair[0].0.send(LinkTo(pair[1].0));
        }
        for _ in 1..MEMBERS {
            let Linked = recv_bounded().await;
        }
        let reason = ExitReason::Error("the last link broke".into());
        members[MEMBERS - 1].0.send(Crash(reason.clone()));
        let mut pending: HashMap<MonitorRef, Pid> = members.iter().map(|&(pid, watch)| (watch, pid)).collect();
        for _ in 0..MEMBERS {
            let down: Down = recv_bounded().await;
            assert_eq!(pending.remove(&down.reference), Some(down.pid), "an unexpected or second Down: {down:?}");
            assert_eq!(down.reason, reason, "{down:?}");
        }
        assert_eq!(try_recv::<Down>(), None, "a second Down");
    });
}
