//! Two nodes in two real OS processes: the test binary runs itself again as the peer node (see
//! `os_common/mod.rs`). Named sends and replies to Pids carried in messages, a remote
//! `GenServer::call`, per-pair ordering of a million messages, a peer killed with SIGKILL in
//! the middle of traffic, and a peer restarted under the same name and port.
//!
//! Every wait is bounded; the tests synchronise on messages, monitors and the child's report
//! of its name, never on sleeps.

mod os_common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krarup_net::{Node, NodeConfig, NodeDown};
use krarup_runtime::gen_server::{self, ServerRef};
use krarup_runtime::{
    call, link, monitor, receive, recv_timeout, self_pid, send_named_at, spawn, trap_exit, try_recv, CallError, Down,
    Exit, ExitReason, Pid, Runtime,
};
use os_common::{
    recv_within, whereis_at, ChildNode, Counter, CounterCall, Done, Flowing, Ping, Pong, Role, Tally, Watch, COOKIE,
    TIMEOUT, WORKERS,
};
use serde::{Deserialize, Serialize};

/// The child's side of every test: does nothing unless this run is a child node.
#[test]
fn child_node() {
    os_common::child_main();
}

/// A runtime made the node `name@127.0.0.1:<any port>`.
fn parent_node(name: &str, heartbeat: Duration) -> (Runtime, Node) {
    let rt = Runtime::builder().workers(2).build().expect("runtime starts");
    let config = NodeConfig::new(format!("{name}@127.0.0.1:0"), COOKIE).heartbeat(heartbeat);
    let node = Node::start(&rt, config).expect("the parent node starts");
    (rt, node)
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// A message nobody sends: a zero-timeout receive of it is a point where a sender held back by
/// a busy connection pauses (see `receive.rs`, `PollBook::throttle`).
#[derive(Debug, Serialize, Deserialize)]
struct Never;

/// Inside a process: lets backpressure pause this process if its sends made it busy.
async fn yield_to_backpressure() {
    let _ = recv_timeout::<Never>(Duration::ZERO).await;
}

#[test]
fn named_send_reaches_another_os_process_and_the_reply_finds_the_pid_in_the_message() {
    let child = ChildNode::spawn(Role::Echo, "echo@127.0.0.1:0", Duration::from_secs(10));
    let (rt, node) = parent_node("asker", Duration::from_secs(10));
    let child_name = child.name().to_owned();

    let target = child_name.clone();
    let (me, first, echo, second) = rt.block_on(async move {
        // `{echo, Node} ! {Pid, Text}`, and the answer to the Pid inside the message.
        send_named_at("echo", &target, Ping { from: self_pid(), text: "hello".into() });
        let first = recv_within::<Pong>(TIMEOUT, "echo's answer to a named send").await;
        // The Pid echo answered from is a remote Pid that routes back to it.
        let echo = whereis_at(&target, "echo").await;
        echo.send(Ping { from: self_pid(), text: "again".into() });
        let second = recv_within::<Pong>(TIMEOUT, "echo's answer to a send to its Pid").await;
        (self_pid(), first, echo, second)
    });
    assert_eq!(first.text, "HELLO");
    assert_eq!(first.to, me, "the Pid in the message crossed twice and names the asker again");
    assert_eq!(first.by, echo, "echo's own Pid, as it sent it, is the one its node reports for `echo`");
    assert_eq!(second.text, "AGAIN");
    assert_eq!(second.by, echo);
    assert!(node.nodes().contains(&child_name), "{child_name} is among {:?}", node.nodes());

    // From outside any process: an external mailbox's Pid travels and gets the answer.
    let mut mailbox = rt.mailbox();
    rt.send_named_at("echo", &child_name, Ping { from: mailbox.pid(), text: "from a thread".into() });
    let pong: Pong = mailbox.blocking_recv_timeout(TIMEOUT).expect("echo answers an external mailbox");
    assert_eq!(pong.text, "FROM A THREAD");
    assert_eq!(pong.to, mailbox.pid());
}

#[test]
fn gen_server_call_into_another_os_process() {
    let child = ChildNode::spawn(Role::Echo, "server@127.0.0.1:0", Duration::from_secs(10));
    let (rt, _node) = parent_node("caller", Duration::from_secs(10));
    let target = child.name().to_owned();

    const CALLS: i64 = 1_000;
    let per_call = rt.block_on(async move {
        let counter = ServerRef::<Counter>::from_pid(whereis_at(&target, "counter").await);
        assert_eq!(counter.call(CounterCall::Add(1), TIMEOUT).await, Ok(11));
        assert_eq!(counter.call(CounterCall::Get, TIMEOUT).await, Ok(11));

        let started = Instant::now();
        for i in 1..=CALLS {
            assert_eq!(counter.call(CounterCall::Add(1), TIMEOUT).await, Ok(11 + i));
        }
        let per_call = started.elapsed() / CALLS as u32;

        // Stopping replies, then the server exits normally; a call after that fails at once.
        let watching = monitor(counter.pid());
        assert_eq!(counter.call(CounterCall::Stop, TIMEOUT).await, Ok(11 + CALLS));
        let down = receive! {
            down: Down if down.reference == watching => down,
            after TIMEOUT => panic!("the stopped counter's Down did not come within {TIMEOUT:?}"),
        };
        assert_eq!(down.reason, ExitReason::Normal);
        let asked = Instant::now();
        assert_eq!(counter.call(CounterCall::Get, TIMEOUT).await, Err(CallError::NoProc));
        assert!(asked.elapsed() < TIMEOUT / 2, "a call to a dead remote server fails fast, took {:?}", asked.elapsed());
        per_call
    });
    eprintln!("remote GenServer::call round trip between OS processes: {per_call:?} per call (mean of {CALLS})");
}

#[test]
fn a_million_messages_to_another_os_process_arrive_all_and_in_order() {
    const N: u64 = 1_000_000;
    let child = ChildNode::spawn(Role::Sink, "sink@127.0.0.1:0", Duration::from_secs(10));
    let (rt, node) = parent_node("source", Duration::from_secs(10));
    let target = child.name().to_owned();

    let (tally, sent_in, total) = rt.block_on(async move {
        let sink = whereis_at(&target, "sink").await;
        let started = Instant::now();
        for n in 0..N {
            sink.send(n);
            if n % 1024 == 1023 {
                yield_to_backpressure().await;
            }
        }
        let sent_in = started.elapsed();
        sink.send(Done { reply_to: self_pid() });
        // The sink may still be working through its mailbox: a generous bound, still bounded.
        let tally = recv_within::<Tally>(3 * TIMEOUT, "the sink's tally").await;
        (tally, sent_in, started.elapsed())
    });
    eprintln!(
        "{N} messages between OS processes ({} build): sent in {sent_in:?}, all received and checked in {total:?} \
         ({:.0} messages/s); {} bytes out",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        N as f64 / total.as_secs_f64(),
        node.stats().bytes_out,
    );
    assert_eq!(tally, Tally { received: N, out_of_order: 0, first_out_of_order: None });
}

/// What the survivor of a kill -9 saw.
#[derive(Debug)]
struct Aftermath {
    downs: HashMap<Pid, (ExitReason, Duration)>,
    exits: HashMap<Pid, (ExitReason, Duration)>,
    node_down: (String, Duration),
    streamed: u64,
}

/// To the streamer: stop, and say how many messages you sent.
#[derive(Debug, Serialize, Deserialize)]
struct StopStreaming {
    reply_to: Pid,
}

/// Sends numbered `u64`s to `workers` in turn until told [`StopStreaming`]; answers with the count.
async fn stream(workers: Vec<Pid>) {
    let mut sent = 0u64;
    loop {
        for _ in 0..256 {
            workers[(sent % workers.len() as u64) as usize].send(sent);
            sent += 1;
        }
        if let Some(StopStreaming { reply_to }) = recv_timeout::<StopStreaming>(Duration::ZERO).await {
            reply_to.send(sent);
            return;
        }
    }
}

#[test]
fn kill_9_mid_traffic_fires_every_remote_link_and_monitor_with_no_connection() {
    // The kill is seen at once (the kernel closes the dead process's sockets), so the bound
    // costs no time here; it must only outlast the stalls of a loaded two-core machine, before
    // the kill (a node drops a connection silent for 3/4 of it) and after (the 4 Downs, 4
    // Exits and NodeDown must all arrive within it).
    const HEARTBEAT: Duration = Duration::from_secs(3);
    let child = Arc::new(ChildNode::spawn(Role::Workers, "workers@127.0.0.1:0", HEARTBEAT));
    let (rt, node) = parent_node("survivor", HEARTBEAT);
    let target = child.name().to_owned();

    let (watcher_node, victim) = (node.clone(), child.clone());
    let aftermath = rt.block_on(async move {
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            workers.push(whereis_at(&target, &format!("worker{i}")).await);
        }
        trap_exit(true);
        let mut monitors = HashMap::new();
        for &worker in &workers {
            link(worker);
            monitors.insert(monitor(worker), worker);
            worker.send(Watch { reply_to: self_pid() });
        }
        watcher_node.monitor_node(self_pid(), &target).expect("monitor the child node");
        let streamer = spawn(stream(workers.clone()));

        // Traffic reaches every worker: now kill the node under it.
        let mut flowing = HashSet::new();
        while flowing.len() < WORKERS {
            receive! {
                f: Flowing => { flowing.insert(f.worker); },
                down: Down => panic!("{} went down before the kill: {}", down.pid, down.reason),
                exit: Exit => panic!("an Exit from {} before the kill: {}", exit.from, exit.reason),
                _: NodeDown => panic!("the child node went down before the kill ({:?})", watcher_node.stats()),
                after TIMEOUT => panic!(
                    "traffic reached only {} of {WORKERS} workers within {TIMEOUT:?} ({:?})",
                    flowing.len(),
                    watcher_node.stats(),
                ),
            }
        }
        let killed = Instant::now();
        victim.kill();

        let deadline = killed + HEARTBEAT;
        let (mut downs, mut exits, mut node_down) = (HashMap::new(), HashMap::new(), None);
        while downs.len() < WORKERS || exits.len() < WORKERS || node_down.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            receive! {
                down: Down if monitors.contains_key(&down.reference) => {
                    assert_eq!(monitors[&down.reference], down.pid);
                    let earlier = downs.insert(down.pid, (down.reason, killed.elapsed()));
                    assert!(earlier.is_none(), "a second Down for {}", down.pid);
                },
                exit: Exit => {
                    assert!(workers.contains(&exit.from), "an Exit from {}, not a worker", exit.from);
                    let earlier = exits.insert(exit.from, (exit.reason, killed.elapsed()));
                    assert!(earlier.is_none(), "a second Exit from {}", exit.from);
                },
                down: NodeDown => {
                    assert!(node_down.is_none(), "a second NodeDown");
                    node_down = Some((down.node, killed.elapsed()));
                },
                after left => panic!(
                    "within the heartbeat bound ({HEARTBEAT:?}) of the kill, only {} Downs, {} Exits and \
                     NodeDown {node_down:?} of {WORKERS} workers arrived",
                    downs.len(),
                    exits.len(),
                ),
            }
        }

        // The streamer has kept sending to the dead node all along; it stops when asked.
        let streamer_watch = monitor(streamer);
        streamer.send(StopStreaming { reply_to: self_pid() });
        let streamed = recv_within::<u64>(TIMEOUT, "the streamer's count").await;
        let down = receive! {
            down: Down if down.reference == streamer_watch => down,
            after TIMEOUT => panic!("the streamer did not exit within {TIMEOUT:?}"),
        };
        assert_eq!(down.reason, ExitReason::Normal);
        assert!(try_recv::<Down>().is_none() && try_recv::<Exit>().is_none(), "nothing fired twice");

        // Local work goes on: a local server answers a call.
        let local = gen_server::start(Counter(0)).await.expect("a local server starts");
        assert_eq!(local.call(CounterCall::Add(7), TIMEOUT).await, Ok(7));
        Aftermath { downs, exits, node_down: node_down.expect("NodeDown arrived"), streamed }
    });

    for (worker, (reason, _)) in aftermath.downs.iter().chain(&aftermath.exits) {
        assert_eq!(*reason, ExitReason::NoConnection, "for worker {worker}");
    }
    assert_eq!(aftermath.node_down.0, child.name());
    let slowest = aftermath.downs.values().chain(aftermath.exits.values()).map(|&(_, at)| at).max();
    eprintln!(
        "kill -9 mid-traffic ({} messages streamed): NodeDown after {:?}, the last of {WORKERS} Downs and \
         {WORKERS} Exits after {:?} (bound {HEARTBEAT:?})",
        aftermath.streamed, aftermath.node_down.1, slowest,
    );
    assert!(!node.nodes().contains(&child.name().to_owned()), "the dead node is not listed: {:?}", node.nodes());

    // And after all that, the runtime still serves a fresh process from outside.
    let echoed = rt.block_on(async {
        let me = self_pid();
        let helper = spawn(async move {
            let n: u64 = recv_within(TIMEOUT, "the local request").await;
            me.send(n + 1);
        });
        helper.send(41u64);
        recv_within::<u64>(TIMEOUT, "the local answer").await
    });
    assert_eq!(echoed, 42);
}

#[test]
fn a_node_restarted_with_the_same_name_does_not_accept_messages_for_its_old_pids() {
    let port = free_port();
    let name = format!("phoenix@127.0.0.1:{port}");
    let first = Arc::new(ChildNode::spawn(Role::Echo, &name, Duration::from_secs(10)));
    assert_eq!(first.name(), name);
    let (rt, node) = parent_node("witness", Duration::from_secs(10));

    // The first incarnation's echo, working.
    let target = name.clone();
    let (watcher_node, victim) = (node.clone(), first.clone());
    let old = rt.block_on(async move {
        let old = whereis_at(&target, "echo").await;
        old.send(Ping { from: self_pid(), text: "first".into() });
        let pong = recv_within::<Pong>(TIMEOUT, "the first incarnation's answer").await;
        assert_eq!((pong.text.as_str(), pong.by), ("FIRST", old));
        watcher_node.monitor_node(self_pid(), &target).expect("monitor the first incarnation");
        victim.kill();
        let down = recv_within::<NodeDown>(TIMEOUT, "NodeDown for the killed first incarnation").await;
        assert_eq!(down.node, target);
        old
    });
    drop(first);

    // The second incarnation: same name, same port.
    let second = ChildNode::spawn(Role::Echo, &name, Duration::from_secs(10));
    assert_eq!(second.name(), name);
    let closed_before = node.stats().connections_closed;
    let target = name.clone();
    let (new, old_seen_as) = rt.block_on(async move {
        let new = whereis_at(&target, "echo").await;
        assert_ne!(new, old, "the new incarnation's echo has another Pid");

        // Monitoring or linking the old Pid: NoProc, from the new incarnation.
        let watching = monitor(old);
        let down = receive! {
            down: Down if down.reference == watching => down,
            after TIMEOUT => panic!("no Down for the old incarnation's Pid within {TIMEOUT:?}"),
        };
        assert_eq!((down.pid, down.reason), (old, ExitReason::NoProc));
        trap_exit(true);
        link(old);
        let exit = recv_within::<Exit>(TIMEOUT, "the Exit of a link to the old incarnation's Pid").await;
        assert_eq!((exit.from, exit.reason), (old, ExitReason::NoProc));
        assert_eq!(call::<CounterCall, i64>(old, CounterCall::Get, TIMEOUT).await, Err(CallError::NoProc));

        // A message to the old Pid is dropped. The stale Ping goes first on the one connection,
        // so had the new echo taken it, its answer would arrive before the fresh one's.
        old.send(Ping { from: self_pid(), text: "stale".into() });
        new.send(Ping { from: self_pid(), text: "fresh".into() });
        let pong = recv_within::<Pong>(TIMEOUT, "the new incarnation's answer").await;
        assert_eq!((pong.text.as_str(), pong.by), ("FRESH", new));
        assert!(try_recv::<Pong>().is_none(), "the stale message reached the new incarnation");

        // The name reaches the new incarnation.
        send_named_at("echo", &target, Ping { from: self_pid(), text: "by name".into() });
        let pong = recv_within::<Pong>(TIMEOUT, "the new incarnation's answer by name").await;
        assert_eq!((pong.text.as_str(), pong.by), ("BY NAME", new));
        (new, old)
    });
    eprintln!("restart on port {port}: old echo {old_seen_as}, new echo {new}");
    assert!(node.nodes().contains(&name));
    assert_eq!(
        node.stats().connections_closed,
        closed_before,
        "frames for the old incarnation's Pids are answered or dropped, and cost no connection"
    );
}
