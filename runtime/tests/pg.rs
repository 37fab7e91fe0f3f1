//! Process groups within one runtime (`pg`): join, leave, members,
//! broadcast, and members removed when they exit. Across nodes: see
//! `net/tests/pg.rs`.

mod util;

use std::time::{Duration, Instant};

use krarup_runtime::pg::{self, PgError, StartError};
use krarup_runtime::{exit, monitor, recv_timeout, self_pid, spawn, spawn_monitor, ExitReason, Pid};
use serde::{Deserialize, Serialize};
use util::{down_of, recv_bounded, runtime, TIMEOUT};

#[derive(Debug, Serialize, Deserialize)]
struct Quit;

/// A process that does nothing until `Quit` (bounded).
async fn idle() {
    let _ = recv_timeout::<Quit>(TIMEOUT).await;
}

/// Nothing is ever sent of this type: receiving it is a bounded pause.
#[derive(Debug, Serialize, Deserialize)]
struct Never;

/// Inside a process: waits until `done()` holds, checking every
/// millisecond, and panics after [`TIMEOUT`] saying `what`.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}");
        let _ = recv_timeout::<Never>(Duration::from_millis(1)).await;
    }
}

fn sorted(mut pids: Vec<Pid>) -> Vec<Pid> {
    pids.sort();
    pids
}

#[test]
fn joined_processes_are_members_until_they_leave() {
    let rt = runtime(2);
    rt.block_on(async {
        let (a, b) = (spawn(idle()), spawn(idle()));
        assert!(pg::members("room").is_empty());
        pg::join("room", a).await.unwrap();
        pg::join("room", b).await.unwrap();
        pg::join("lobby", a).await.unwrap();
        // Visible as soon as join returns.
        assert_eq!(sorted(pg::members("room")), sorted(vec![a, b]));
        assert_eq!(sorted(pg::local_members("room")), sorted(vec![a, b]));
        assert_eq!(pg::members("lobby"), vec![a]);
        assert_eq!(pg::which_groups(), vec!["lobby".to_owned(), "room".to_owned()]);
        assert_eq!(pg::which_local_groups(), vec!["lobby".to_owned(), "room".to_owned()]);

        pg::leave("room", a).await.unwrap();
        assert_eq!(pg::members("room"), vec![b]);
        assert_eq!(pg::members("lobby"), vec![a]);
        pg::leave("lobby", a).await.unwrap();
        // A group with no members is gone.
        assert_eq!(pg::which_groups(), vec!["room".to_owned()]);
        a.send(Quit);
        b.send(Quit);
    });
}

#[test]
fn a_process_that_joins_twice_is_listed_twice_and_leaves_once_per_leave() {
    let rt = runtime(2);
    rt.block_on(async {
        let a = spawn(idle());
        pg::join("g", a).await.unwrap();
        pg::join("g", a).await.unwrap();
        assert_eq!(pg::members("g"), vec![a, a]);
        pg::leave("g", a).await.unwrap();
        assert_eq!(pg::members("g"), vec![a]);
        pg::leave("g", a).await.unwrap();
        assert!(pg::members("g").is_empty());
        assert_eq!(pg::leave("g", a).await, Err(PgError::NotJoined));
        a.send(Quit);
    });
}

#[test]
fn join_many_and_leave_many_change_the_group_at_once() {
    let rt = runtime(2);
    rt.block_on(async {
        let pids: Vec<Pid> = (0..5).map(|_| spawn(idle())).collect();
        pg::join_many("g", &pids).await.unwrap();
        assert_eq!(sorted(pg::members("g")), sorted(pids.clone()));
        // Leaving skips the processes that are not members...
        let outsider = spawn(idle());
        pg::leave_many("g", &[pids[0], outsider, pids[1]]).await.unwrap();
        assert_eq!(sorted(pg::members("g")), sorted(pids[2..].to_vec()));
        // ...and fails only if none was.
        assert_eq!(pg::leave_many("g", &[outsider, pids[0]]).await, Err(PgError::NotJoined));
        for pid in pids.into_iter().chain([outsider]) {
            pid.send(Quit);
        }
    });
}

#[test]
fn a_member_that_exits_is_removed_from_every_group() {
    let rt = runtime(2);
    rt.block_on(async {
        let doomed = spawn(idle());
        let survivor = spawn(idle());
        pg::join("a", doomed).await.unwrap();
        pg::join("a", doomed).await.unwrap();
        pg::join("b", doomed).await.unwrap();
        pg::join("a", survivor).await.unwrap();
        // Monitored before the exit is caused, so the Down says how it ended (not NoProc).
        let watch = monitor(doomed);
        exit(doomed, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        eventually("the dead member removed", || pg::members("a") == vec![survivor]).await;
        eventually("its other group gone", || pg::which_groups() == vec!["a".to_owned()]).await;
        let watch = monitor(survivor);
        survivor.send(Quit);
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        eventually("the last member removed at its normal exit", || pg::which_groups().is_empty()).await;
    });
}

#[test]
fn a_process_that_is_already_dead_when_it_joins_is_removed() {
    let rt = runtime(2);
    rt.block_on(async {
        let (dead, watch) = spawn_monitor(async {});
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        pg::join("g", dead).await.unwrap();
        eventually("the dead joiner removed", || pg::members("g").is_empty()).await;
    });
}

#[test]
fn broadcast_reaches_each_member_once() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let listeners: Vec<Pid> = (0..4)
            .map(|_| {
                spawn(async move {
                    let mut heard = Vec::new();
                    loop {
                        let text: String = recv_bounded().await;
                        if text == "end" {
                            break;
                        }
                        heard.push(text);
                    }
                    me.send((self_pid(), heard));
                })
            })
            .collect();
        pg::join_many("room", &listeners).await.unwrap();
        // Joined twice: still one copy of each message.
        pg::join("room", listeners[0]).await.unwrap();
        let sent_to = pg::broadcast("room", String::from("one"));
        pg::broadcast("room", String::from("two"));
        assert_eq!(sent_to, sorted(listeners.clone()));
        assert!(pg::broadcast("nobody", String::from("lost")).is_empty());
        pg::broadcast("room", String::from("end"));
        for _ in &listeners {
            let (who, heard): (Pid, Vec<String>) = recv_bounded().await;
            assert!(listeners.contains(&who));
            assert_eq!(heard, ["one", "two"], "{who} heard each message once, in order");
        }
    });
}

#[test]
fn only_processes_of_this_node_can_join() {
    let other = runtime(1);
    let foreign = other.spawn(idle());
    let rt = runtime(1);
    rt.block_on(async move {
        let local = spawn(idle());
        assert_eq!(pg::join("g", foreign).await, Err(PgError::NotLocal(foreign)));
        // One foreign Pid and nothing joins.
        assert_eq!(pg::join_many("g", &[local, foreign]).await, Err(PgError::NotLocal(foreign)));
        assert!(pg::members("g").is_empty());
        assert_eq!(pg::leave("g", foreign).await, Err(PgError::NotLocal(foreign)));
        local.send(Quit);
    });
    foreign.send(Quit);
}

#[test]
fn each_runtime_has_its_own_scope() {
    let rt_a = runtime(1);
    let rt_b = runtime(1);
    let scope_a = pg::start(&rt_a).unwrap();
    let scope_b = pg::start(&rt_b).unwrap();
    assert_ne!(scope_a.pid(), scope_b.pid());
    let member = rt_a.spawn(idle());
    rt_a.block_on(async move { pg::join("g", member).await.unwrap() });
    // Read from a plain thread through the handles.
    assert_eq!(scope_a.members("g"), vec![member]);
    assert_eq!(scope_a.local_members("g"), vec![member]);
    assert!(scope_b.members("g").is_empty());
    member.send(Quit);
}

#[test]
fn start_is_idempotent_and_registers_the_scope_as_pg() {
    let rt = runtime(1);
    let first = pg::start(&rt).unwrap();
    let again = pg::start(&rt).unwrap();
    assert_eq!(first.pid(), again.pid());
    assert_eq!(rt.whereis("pg"), Some(first.pid()));
    // The scope that a process's first pg call would start is the same one.
    let lazily = rt.block_on(async { pg::scope().pid() });
    assert_eq!(lazily, first.pid());
}

#[test]
fn start_reports_a_taken_name_and_the_scope_still_serves_this_node() {
    let rt = runtime(1);
    let squatter = rt.spawn(idle());
    rt.register("pg", squatter).unwrap();
    assert_eq!(pg::start(&rt).unwrap_err(), StartError::NameTaken { holder: squatter });
    let member = rt.spawn(idle());
    rt.block_on(async move { pg::join("g", member).await.unwrap() });
    rt.block_on(async move { assert_eq!(pg::members("g"), vec![member]) });
    squatter.send(Quit);
    member.send(Quit);
}

#[test]
fn a_scope_that_exits_leaves_no_stale_members_behind() {
    let rt = runtime(2);
    let scope = pg::start(&rt).unwrap();
    let server = scope.pid();
    rt.block_on(async move {
        let member = spawn(idle());
        pg::join("g", member).await.unwrap();
        let watch = monitor(server);
        exit(server, ExitReason::Kill);
        assert_eq!(down_of(watch).await.reason, ExitReason::Killed);
        // Nobody keeps the table up to date any more: it must not go on listing members that
        // may have died since (as other nodes drop a dead scope's members).
        let watch = monitor(member);
        member.send(Quit);
        assert_eq!(down_of(watch).await.reason, ExitReason::Normal);
        eventually("the dead scope's members dropped", || pg::members("g").is_empty()).await;
        assert!(pg::which_groups().is_empty());
        assert_eq!(pg::join("g", self_pid()).await.map_err(|e| matches!(e, PgError::Scope(_))), Err(true));
    });
    assert!(scope.members("g").is_empty(), "read through the handle too");
}

/// The next group event of `watch` (bounded), applied to `view` too.
async fn next_event(watch: pg::GroupMonitor, view: &mut Vec<Pid>) -> (pg::GroupChange, String, Vec<Pid>) {
    loop {
        let event: pg::GroupEvent = recv_bounded().await;
        if event.monitor == watch {
            assert!(!event.pids.is_empty(), "an event names who joined or left");
            event.apply(view);
            return (event.change, event.group, event.pids);
        }
    }
}

/// The next group event of `watch` (bounded).
async fn event_of(watch: pg::GroupMonitor) -> (pg::GroupChange, String, Vec<Pid>) {
    next_event(watch, &mut Vec::new()).await
}

#[test]
fn a_group_monitor_gives_the_members_then_every_join_leave_and_exit_in_order() {
    use pg::GroupChange::{Joined, Left};
    let rt = runtime(2);
    rt.block_on(async {
        let (a, b, c) = (spawn(idle()), spawn(idle()), spawn(idle()));
        pg::join("room", a).await.unwrap();
        pg::join("elsewhere", c).await.unwrap();
        let (watch, mut view) = pg::monitor("room").await.unwrap();
        assert_eq!(view, vec![a]);

        pg::join("room", b).await.unwrap();
        pg::join_many("room", &[a, c]).await.unwrap();
        pg::join("elsewhere", b).await.unwrap(); // another group: no event
        pg::leave("room", a).await.unwrap();
        c.send(Quit); // c exits: its membership goes
        let r = || "room".to_owned();
        assert_eq!(next_event(watch, &mut view).await, (Joined, r(), vec![b]));
        assert_eq!(next_event(watch, &mut view).await, (Joined, r(), vec![a, c]));
        assert_eq!(next_event(watch, &mut view).await, (Left, r(), vec![a]));
        assert_eq!(next_event(watch, &mut view).await, (Left, r(), vec![c]));
        // The members as returned, plus the events, are the members now
        // (a joined twice and left once: still a member once).
        assert_eq!(sorted(view), sorted(pg::members("room")));
        assert_eq!(sorted(pg::members("room")), sorted(vec![a, b]));
        a.send(Quit);
        b.send(Quit);
    });
}

#[test]
fn a_scope_monitor_sees_every_group() {
    use pg::GroupChange::{Joined, Left};
    let rt = runtime(2);
    rt.block_on(async {
        let (a, b) = (spawn(idle()), spawn(idle()));
        pg::join("x", a).await.unwrap();
        let (watch, groups) = pg::monitor_scope().await.unwrap();
        assert_eq!(groups, vec![("x".to_owned(), vec![a])]);
        pg::join("y", b).await.unwrap();
        pg::leave("x", a).await.unwrap();
        assert_eq!(event_of(watch).await, (Joined, "y".to_owned(), vec![b]));
        assert_eq!(event_of(watch).await, (Left, "x".to_owned(), vec![a]));
        a.send(Quit);
        b.send(Quit);
    });
}

#[test]
fn demonitor_ends_the_monitor_and_removes_its_events_still_in_the_mailbox() {
    let rt = runtime(2);
    rt.block_on(async {
        let a = spawn(idle());
        let (watch, _) = pg::monitor("g").await.unwrap();
        let (other, _) = pg::monitor("g").await.unwrap();
        pg::join("g", a).await.unwrap(); // one event for each monitor, unread
        assert!(pg::demonitor(watch).await.unwrap());
        pg::leave("g", a).await.unwrap(); // after demonitor: only `other` hears it
        let mut seen = Vec::new();
        while let Some(event) = krarup_runtime::try_recv::<pg::GroupEvent>() {
            seen.push((event.monitor, event.change));
        }
        assert_eq!(seen, vec![(other, pg::GroupChange::Joined), (other, pg::GroupChange::Left)]);
        assert!(!pg::demonitor(watch).await.unwrap(), "a second demonitor finds nothing to end");
        // Only its watcher ends a monitor.
        let me = self_pid();
        spawn(async move { me.send(pg::demonitor(other).await.unwrap()) });
        assert!(!recv_bounded::<bool>().await, "another process cannot end it");
        assert!(pg::demonitor(other).await.unwrap());
        a.send(Quit);
    });
}

#[test]
fn the_monitor_of_a_watcher_that_exits_ends_and_the_scope_goes_on() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let watcher = spawn(async move {
            let (watch, _) = pg::monitor("g").await.unwrap();
            me.send(watch);
        });
        let watch: pg::GroupMonitor = recv_bounded().await;
        // The watcher's exit delivers its Downs in the order the monitors
        // were made: the scope's (made inside `pg::monitor`) before ours,
        // so the scope has it before our next request.
        down_of(monitor(watcher)).await;
        let a = spawn(idle());
        pg::join("g", a).await.unwrap();
        // The scope forgot the dead watcher's monitor: it is not active.
        assert!(!pg::demonitor(watch).await.unwrap());
        assert_eq!(pg::members("g"), vec![a]);
        a.send(Quit);
    });
}
