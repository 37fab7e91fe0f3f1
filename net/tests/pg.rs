//! Process groups across nodes (`pg`, replicated by the nodes' scope servers), and the node
//! events (`dist::monitor_nodes`) the scopes find each other with. Two or three nodes in this
//! test process, on 127.0.0.1.

mod common;

use krarup_runtime::dist::{self, NodeEvent};
use krarup_runtime::pg;
use krarup_runtime::{recv_timeout, self_pid, Pid, Runtime};
use serde::{Deserialize, Serialize};

use common::{pair, recv_bounded, remote_pid, wait_until, Side, TIMEOUT};

#[derive(Debug, Serialize, Deserialize)]
struct Stop;

/// A process on `side` that waits for [`Stop`] (bounded) and then ends normally.
fn idle_on(side: &Side) -> Pid {
    side.rt.spawn(async {
        let _ = recv_timeout::<Stop>(TIMEOUT).await;
    })
}

/// `pid` (a process of this runtime) joins `group`, from a process of `rt`.
fn join(rt: &Runtime, group: &'static str, pid: Pid) {
    rt.block_on(async move { pg::join(group, pid).await.expect("a local process joins") });
}

fn sorted(mut pids: Vec<Pid>) -> Vec<Pid> {
    pids.sort();
    pids
}

#[test]
fn a_member_on_one_node_is_seen_on_the_other_and_its_leave_too() {
    let (a, b) = pair();
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let member = idle_on(&b);
    join(&b.rt, "room", member);
    let seen_on_a = remote_pid(member, &b, &a);
    wait_until("b's member in a's view", || scope_a.members("room") == vec![seen_on_a]);
    assert!(scope_a.local_members("room").is_empty());
    assert_eq!(scope_a.which_groups(), vec!["room".to_owned()]);
    assert!(scope_a.which_local_groups().is_empty());
    assert_eq!(scope_b.local_members("room"), vec![member]);

    b.rt.block_on(async move { pg::leave("room", member).await.unwrap() });
    wait_until("the leave in a's view", || scope_a.members("room").is_empty());
    member.send(Stop);
}

#[test]
fn scopes_started_before_the_nodes_connect_exchange_their_members() {
    let a = Side::start("a");
    let b = Side::start("b");
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let (on_a, on_b) = (idle_on(&a), idle_on(&b));
    join(&a.rt, "g", on_a);
    join(&b.rt, "g", on_b);
    a.node.connect(b.name()).expect("a connects to b");
    let (on_a_at_b, on_b_at_a) = (remote_pid(on_a, &a, &b), remote_pid(on_b, &b, &a));
    wait_until("both members on a", || sorted(scope_a.members("g")) == sorted(vec![on_a, on_b_at_a]));
    wait_until("both members on b", || sorted(scope_b.members("g")) == sorted(vec![on_b, on_a_at_b]));
    on_a.send(Stop);
    on_b.send(Stop);
}

#[test]
fn a_member_that_exits_on_one_node_disappears_on_the_other() {
    let (a, b) = pair();
    let scope_a = pg::start(&a.rt).unwrap();
    let (doomed, survivor) = (idle_on(&b), idle_on(&b));
    join(&b.rt, "g", doomed);
    join(&b.rt, "g", doomed);
    join(&b.rt, "g", survivor);
    wait_until("three memberships on a", || scope_a.members("g").len() == 3);
    doomed.send(Stop);
    let survivor_at_a = remote_pid(survivor, &b, &a);
    wait_until("only the survivor on a", || scope_a.members("g") == vec![survivor_at_a]);
    survivor.send(Stop);
}

#[test]
fn members_of_a_node_that_shuts_down_disappear() {
    let (a, b) = pair();
    let scope_a = pg::start(&a.rt).unwrap();
    let (on_a, on_b) = (idle_on(&a), idle_on(&b));
    join(&a.rt, "g", on_a);
    join(&b.rt, "g", on_b);
    join(&b.rt, "only-b", on_b);
    wait_until("b's members on a", || scope_a.members("g").len() == 2 && scope_a.members("only-b").len() == 1);
    b.node.shutdown();
    wait_until("b's members gone from a", || scope_a.members("g") == vec![on_a]);
    assert_eq!(scope_a.which_groups(), vec!["g".to_owned()]);
    on_a.send(Stop);
    on_b.send(Stop);
}

#[test]
fn a_node_that_connects_later_receives_the_existing_membership() {
    let (a, b) = pair();
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let (on_a, on_b) = (idle_on(&a), idle_on(&b));
    join(&a.rt, "g", on_a);
    join(&b.rt, "g", on_b);
    wait_until("a and b agree", || scope_a.members("g").len() == 2 && scope_b.members("g").len() == 2);

    let c = Side::start("c");
    let scope_c = pg::start(&c.rt).unwrap();
    c.node.connect(a.name()).expect("c connects to a");
    c.node.connect(b.name()).expect("c connects to b");
    let expected = sorted(vec![remote_pid(on_a, &a, &c), remote_pid(on_b, &b, &c)]);
    wait_until("c sees a's and b's members", || sorted(scope_c.members("g")) == expected);

    // And c's own joins reach the others.
    let on_c = idle_on(&c);
    join(&c.rt, "g", on_c);
    wait_until("a sees c's member", || scope_a.members("g").len() == 3);
    wait_until("b sees c's member", || scope_b.members("g").len() == 3);
    for pid in [on_a, on_b, on_c] {
        pid.send(Stop);
    }
}

#[test]
fn broadcast_reaches_each_member_on_both_nodes_once() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Heard(Pid, Vec<String>);

    let (a, b) = pair();
    let scope_a = pg::start(&a.rt).unwrap();
    let mut collector = a.rt.mailbox();
    let to = collector.pid();
    let listener = move || async move {
        let mut heard = Vec::new();
        loop {
            let text: String = recv_bounded().await;
            if text == "end" {
                break;
            }
            heard.push(text);
        }
        to.send(Heard(self_pid(), heard));
    };
    let (on_a, on_b) = (a.rt.spawn(listener()), b.rt.spawn(listener()));
    join(&a.rt, "room", on_a);
    join(&b.rt, "room", on_b);
    join(&b.rt, "room", on_b);
    wait_until("three memberships on a", || scope_a.members("room").len() == 3);
    let sent_to = a.rt.block_on(async {
        let sent_to = pg::broadcast("room", String::from("one"));
        pg::broadcast("room", String::from("two"));
        pg::broadcast("room", String::from("end"));
        sent_to
    });
    assert_eq!(sent_to.len(), 2, "one copy per distinct member");
    let mut who = Vec::new();
    for _ in 0..2 {
        let Heard(pid, heard) = common::expect_msg(&mut collector);
        assert_eq!(heard, ["one", "two"], "{pid:?} heard each message once, in order");
        who.push(pid);
    }
    // The reports came in-process (the collector's Pid is a Rust value on b), so each listener
    // reports its own runtime's Pid.
    assert_eq!(sorted(who), sorted(vec![on_a, on_b]));
}

#[test]
fn a_process_monitoring_nodes_hears_of_each_connection_and_its_loss() {
    let a = Side::start("a");
    let b = Side::start("b");
    let b_name = b.name().to_owned();
    let mut mailbox = a.rt.mailbox();
    let report = mailbox.pid();
    let watcher = a.rt.spawn(async move {
        report.send(dist::monitor_nodes());
        let up: NodeEvent = recv_bounded().await;
        let down: NodeEvent = recv_bounded().await;
        report.send((up, down));
    });
    let before: Vec<String> = common::expect_msg(&mut mailbox);
    assert!(before.is_empty());
    a.node.connect(b.name()).expect("a connects to b");
    // A process that asks now finds b among the connected nodes.
    let listed = a.rt.block_on(async {
        let listed = dist::monitor_nodes();
        dist::demonitor_nodes();
        listed
    });
    assert_eq!(listed, vec![b_name.clone()]);
    b.node.shutdown();
    let (up, down): (NodeEvent, NodeEvent) = common::expect_msg(&mut mailbox);
    assert_eq!(up, NodeEvent::Up(b_name.clone()));
    assert_eq!(down, NodeEvent::Down(b_name));
    let _ = watcher;
}

#[test]
fn members_vanish_when_the_connection_is_cut_and_return_when_it_is_made_again() {
    // a dials b by name, so through the proxy: cutting there loses the connection, not a node.
    let (b, proxy) = common::proxy::behind_proxy("b");
    let a = Side::start("a");
    a.node.connect(b.name()).expect("a connects to b through the proxy");
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let (on_a, on_b) = (idle_on(&a), idle_on(&b));
    join(&a.rt, "g", on_a);
    join(&b.rt, "g", on_b);
    wait_until("both members on a", || scope_a.members("g").len() == 2);
    wait_until("both members on b", || scope_b.members("g").len() == 2);

    assert_eq!(proxy.cut(), 1, "one connection between a and b");
    wait_until("b's member gone from a", || scope_a.members("g") == vec![on_a]);
    wait_until("a's member gone from b", || scope_b.members("g") == vec![on_b]);

    a.node.connect(b.name()).expect("a connects to b again");
    wait_until("b's member back on a", || scope_a.members("g").len() == 2);
    wait_until("a's member back on b", || scope_b.members("g").len() == 2);
    on_a.send(Stop);
    on_b.send(Stop);
}

#[test]
fn members_of_a_node_whose_scope_exits_disappear_from_the_others() {
    let (a, b) = pair();
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let on_b = idle_on(&b);
    join(&b.rt, "g", on_b);
    wait_until("b's member on a", || scope_a.members("g").len() == 1);
    let scope_of_b = scope_b.pid();
    b.rt.block_on(async move { krarup_runtime::exit(scope_of_b, krarup_runtime::ExitReason::Kill) });
    wait_until("b's member gone from a", || scope_a.members("g").is_empty());
    // b's pg is out of service from then on: it says so.
    let refused = b.rt.block_on(async move { pg::join("g", on_b).await });
    assert!(matches!(refused, Err(pg::PgError::Scope(_))), "{refused:?}");
    on_b.send(Stop);
}

/// The groups [`churn`] changes.
const CHURNED: [&str; 3] = ["g0", "g1", "g2"];

/// SplitMix64, for the test's seeded choices.
struct SplitMix(u64);

impl SplitMix {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// `ops` changes on `side`'s node, each from a process of its runtime: a process of `pool`
/// joins or leaves a group of [`CHURNED`], or is killed and replaced in the pool by a new one.
fn churn(side: &Side, pool: &mut [Pid], rng: &mut SplitMix, ops: usize) {
    for _ in 0..ops {
        let at = rng.below(pool.len());
        let (pid, group) = (pool[at], CHURNED[rng.below(CHURNED.len())]);
        match rng.below(10) {
            0..=4 => join(&side.rt, group, pid),
            // Not a member (any more) is a possible answer here.
            5..=8 => side.rt.block_on(async move {
                let _ = pg::leave(group, pid).await;
            }),
            _ => {
                side.rt.block_on(async move { krarup_runtime::exit(pid, krarup_runtime::ExitReason::Kill) });
                pool[at] = idle_on(side);
            }
        }
    }
}

/// Whether `viewer` counts, in each group of [`CHURNED`], as many members of other nodes as
/// `owner` has members of its own (Pids are not the same values on both nodes: compared by count).
fn sees_all_of(viewer: &pg::Scope, owner: &pg::Scope) -> bool {
    CHURNED.iter().all(|g| viewer.members(g).len() - viewer.local_members(g).len() == owner.local_members(g).len())
}

#[test]
fn views_converge_after_joins_leaves_deaths_and_lost_connections() {
    let (b, proxy) = common::proxy::behind_proxy("b");
    let a = Side::start("a");
    a.node.connect(b.name()).expect("a connects to b through the proxy");
    let (scope_a, scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let mut pool_a: Vec<Pid> = (0..8).map(|_| idle_on(&a)).collect();
    let mut pool_b: Vec<Pid> = (0..8).map(|_| idle_on(&b)).collect();
    let mut rng = SplitMix(7);
    let mut cuts = 0;
    // Changes on both nodes while the connection is cut, made again (by `connect`, or by a
    // scope's next message to the other), and cut again.
    for round in 0..30 {
        churn(&a, &mut pool_a, &mut rng, 10);
        churn(&b, &mut pool_b, &mut rng, 10);
        match round % 3 {
            0 => cuts += proxy.cut(),
            1 => {
                let _ = a.node.connect(b.name());
            }
            _ => {}
        }
    }
    assert!(cuts > 0, "no connection was up to be cut");
    // The last cut may not have been noticed yet: `connect` then finds the old connection up
    // and returns at once, and the connection is lost right after. So connect again until the
    // views agree (the connection stays up once made: nothing cuts it any more).
    wait_until("a and b connected, each seeing all the other's members", || {
        let _ = a.node.connect(b.name());
        sees_all_of(&scope_a, &scope_b) && sees_all_of(&scope_b, &scope_a)
    });
    for pid in pool_a.into_iter().chain(pool_b) {
        pid.send(Stop);
    }
}

/// `b` restarted: a node of its name (a new creation) with a scope and one new member of `group`,
/// which dials `a` itself while the first `b` is still connected, as a node that restarted
/// before its old connection was noticed lost. The first `b` is then shut down, gone for good as
/// the old self of a restarted node is: left running, it would connect again to send what it
/// still had for `a`, and replace the second's connection in turn (they have the same name).
/// Returns the second `b`, its member, and that member as `a` sees it.
fn restart(b: &Side, a: &Side, group: &'static str) -> (Side, Pid, Pid) {
    let b2 = Side::with(krarup_net::NodeConfig::new(b.name(), common::COOKIE).listen("127.0.0.1:0"));
    assert_ne!(b2.node.creation(), b.node.creation());
    pg::start(&b2.rt).unwrap();
    let new = idle_on(&b2);
    join(&b2.rt, group, new);
    b2.node.connect(a.name()).expect("the second b connects to a");
    b.node.shutdown();
    let new_at_a = remote_pid(new, &b2, a);
    (b2, new, new_at_a)
}

#[test]
fn a_node_that_restarts_under_its_name_replaces_its_old_members_with_its_new_ones() {
    // The first incarnation of b is named after the proxy and listens behind it; the second
    // takes the same name (a new creation) and dials a itself while the first is still
    // connected, as a node that restarted before its old connection was noticed lost.
    let (b, _proxy) = common::proxy::behind_proxy("b");
    let a = Side::start("a");
    a.node.connect(b.name()).expect("a connects to b through the proxy");
    let scope_a = pg::start(&a.rt).unwrap();
    let old = idle_on(&b);
    join(&b.rt, "g", old);
    let old_at_a = remote_pid(old, &b, &a);
    wait_until("the first b's member on a", || scope_a.members("g") == vec![old_at_a]);

    let (b2, new, new_at_a) = restart(&b, &a, "g");
    assert_ne!(new_at_a, old_at_a, "Pids of two incarnations differ");
    // Connect again if the first incarnation did so before it was shut down.
    wait_until("only the second b's member on a", || {
        let _ = b2.node.connect(a.name());
        scope_a.members("g") == vec![new_at_a]
    });
    old.send(Stop);
    new.send(Stop);
}

#[test]
fn a_group_monitor_hears_of_another_nodes_joins_and_of_its_loss() {
    let (a, b) = pair();
    let (_scope_a, _scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    let (to_test, from_watcher) = std::sync::mpsc::channel();
    a.rt.spawn(async move {
        let (watch, members) = pg::monitor("g").await.unwrap();
        to_test.send(format!("members {}", members.len())).unwrap();
        for _ in 0..2 {
            let event: pg::GroupEvent = recv_bounded().await;
            assert_eq!((event.monitor, event.group.as_str()), (watch, "g"));
            to_test.send(format!("{:?} {:?}", event.change, event.pids)).unwrap();
        }
    });
    let next = || from_watcher.recv_timeout(TIMEOUT).expect("the watcher reports in time");
    assert_eq!(next(), "members 0");
    let on_b = idle_on(&b);
    join(&b.rt, "g", on_b);
    let seen_on_a = remote_pid(on_b, &b, &a);
    assert_eq!(next(), format!("Joined [{seen_on_a}]"));
    b.node.shutdown(); // b's members go with the connection
    assert_eq!(next(), format!("Left [{seen_on_a}]"));
    on_b.send(Stop);
}

/// A scope monitor's view of every group, kept with [`pg::GroupEvent::apply`] from the members
/// `monitor_scope` answered: sorted, empty groups left out, so that two views compare equal
/// whatever order the events came in.
fn view_of(groups: &std::collections::BTreeMap<String, Vec<Pid>>) -> Vec<(String, Vec<Pid>)> {
    groups.iter().filter(|(_, pids)| !pids.is_empty()).map(|(g, pids)| (g.clone(), sorted(pids.clone()))).collect()
}

#[test]
fn a_scope_monitor_follows_the_members_a_node_brings_when_it_connects_and_when_it_restarts() {
    // As in the restart test above: the first b listens behind the proxy, the second takes its
    // name and dials a itself.
    let (b, _proxy) = common::proxy::behind_proxy("b");
    let a = Side::start("a");
    let (scope_a, _scope_b) = (pg::start(&a.rt).unwrap(), pg::start(&b.rt).unwrap());
    // b's members join before the nodes connect: a learns of them only through b's sync.
    let (twice, once) = (idle_on(&b), idle_on(&b));
    join(&b.rt, "g", twice);
    join(&b.rt, "g", twice);
    join(&b.rt, "h", once);

    // The watcher on a reports its view after the answer and after every event.
    let (to_test, from_watcher) = std::sync::mpsc::channel();
    a.rt.spawn(async move {
        let (watch, groups) = pg::monitor_scope().await.unwrap();
        let mut groups: std::collections::BTreeMap<String, Vec<Pid>> = groups.into_iter().collect();
        to_test.send(view_of(&groups)).unwrap();
        loop {
            let Some(event) = recv_timeout::<pg::GroupEvent>(TIMEOUT).await else { return };
            assert_eq!(event.monitor, watch);
            event.apply(groups.entry(event.group.clone()).or_default());
            to_test.send(view_of(&groups)).unwrap();
        }
    });
    let next = || from_watcher.recv_timeout(TIMEOUT).expect("the watcher reports in time");
    assert_eq!(next(), vec![], "nothing to see before b connects");
    // Views until one equals `expected`, which must also be what the scope itself says then.
    let follow_until = |expected: Vec<(String, Vec<Pid>)>| {
        while next() != expected {}
        let scope_view: Vec<_> = ["g", "h"]
            .into_iter()
            .map(|g| (g.to_owned(), sorted(scope_a.members(g))))
            .filter(|(_, pids)| !pids.is_empty())
            .collect();
        assert_eq!(scope_view, expected, "the events applied add up to the scope's members");
    };

    a.node.connect(b.name()).expect("a connects to b through the proxy");
    let (twice_at_a, once_at_a) = (remote_pid(twice, &b, &a), remote_pid(once, &b, &a));
    follow_until(vec![("g".to_owned(), vec![twice_at_a, twice_at_a]), ("h".to_owned(), vec![once_at_a])]);

    // b restarts: its second incarnation brings one member of g, and the first one's go.
    let (b2, new, new_at_a) = restart(&b, &a, "g");
    let _ = b2.node.connect(a.name());
    follow_until(vec![("g".to_owned(), vec![new_at_a])]);
    for pid in [twice, once, new] {
        pid.send(Stop);
    }
}
