//! Client-server vs ring: two ways to organise the same communication,
//! measured side by side, on one node and across nodes.
//!
//! ```text
//! cargo run --release --example client_server_vs_ring
//! cargo run --release --example client_server_vs_ring -- --sizes 1x10000,100x100 --reps 5 --spawn-nodes 1
//! ```
//!
//! - **client-server**: one server and N clients, each client doing M
//!   request/reply round trips: 2·N·M messages. The clients run at once, so
//!   the server is the bottleneck (and the single point of failure).
//! - **ring**: N processes pass a token M times around: N·M messages. No
//!   process is a bottleneck, but there is no parallelism either: every
//!   message waits for the one before it.
//!
//! Each topology runs in two *placements*: `local` (every process on one
//! runtime) and `nodes` (spread over krarup-net nodes: the server on the
//! first node and the clients on the others; ring members dealt round the
//! nodes, so with two nodes and an even N every hop crosses the network).
//! By default the nodes are two runtimes inside this OS process talking over
//! 127.0.0.1 (nothing else needed). `--spawn-nodes K` runs K more nodes as
//! child OS processes (this program again, in `node` mode), and
//! `--nodes a@host:port,...` uses nodes you started yourself with
//! `client_server_vs_ring node --name a@127.0.0.1:9001 --cookie C`.
//!
//! Every combination runs for each `NxM` of `--sizes`, `--reps` times (the
//! median by time is kept), with a progress line each. Then the program
//! prints a table (topology, placement, N, M, messages, time, µs per
//! message, messages per second) and a closing paragraph read off the
//! figures, prints `RESULT workload=CSR-<topology>-<placement> impl=krarup
//! n=.. m=.. msgs=.. ..` lines in the format of `../shared/anchors`, and
//! writes `client_server_vs_ring.csv` and `client_server_vs_ring.svg` (time
//! per message against N, one line per topology × placement) into `--out`
//! (default `target/client_server_vs_ring`).
//!
//! `--hogs H` starts H threads that only spin, competing with the runtimes
//! for the cores, to measure under CPU contention (the `RESULT` lines then
//! carry `hogs=H`).
//!
//! The message counts in the table are counted by the processes (the server
//! counts the calls it served, each ring member the tokens it passed on), not
//! computed; the program exits with status 1 if any differs from 2·N·M or
//! N·M, if a reply is wrong, or if anything takes longer than `--timeout-s`.

mod chart;
#[path = "../common/mod.rs"]
mod common;
mod report;

use std::time::{Duration, Instant};

use common::Flags;
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

use crate::report::{Placement, Row, Topology};

const USAGE: &str = "\
usage: client_server_vs_ring [--sizes NxM,...] [--reps R] [--out DIR] [--workers K] [--timeout-s S]
                             [--local-only | --nodes-only] [--spawn-nodes K | --nodes a@host:port,...] [--cookie C]
                             [--hogs H]
       client_server_vs_ring node --name NAME@HOST:PORT [--cookie C] [--workers K]   (serve until killed)";
/// Even Ns, so that with two nodes every ring hop crosses the network.
const DEFAULT_SIZES: &str = "2x32768,8x8192,32x2048,128x512,512x128,2048x32";
const HOST: &str = "csr_host";

// ANCHOR: messages
/// What the driver asks of a node's host process, which spawns the
/// benchmark's processes on its node (there is no remote spawn).
#[derive(Serialize, Deserialize)]
enum HostMsg {
    /// Answer `Spawned([host])`: how the driver finds a host on another node.
    Hello { reply: Pid },
    /// Spawn a server; answer `Spawned([server])`.
    Server { reply: Pid },
    /// Spawn `count` clients of `server`, each doing `calls` round trips
    /// once told `Go`, then telling `driver` `ClientDone`.
    Clients { count: u32, calls: u32, server: Pid, driver: Pid },
    /// Spawn `count` ring members waiting for `Next`.
    Ring { count: u32, driver: Pid },
}

#[derive(Serialize, Deserialize)]
struct Spawned(Vec<Pid>);

#[derive(Serialize, Deserialize)]
enum ServerMsg {
    Call { from: Pid, n: u64 },
    Stop { reply: Pid },
}

#[derive(Serialize, Deserialize)]
struct Reply(u64);

#[derive(Serialize, Deserialize)]
struct Go;

#[derive(Serialize, Deserialize)]
enum RingMsg {
    Next(Pid),
    Token(u64),
    Stop,
}

/// What the benchmark's processes tell the driver.
#[derive(Serialize, Deserialize)]
enum Report {
    /// A client finished: how many replies were right.
    ClientDone { right: u64 },
    /// The server stopped: how many calls it served.
    Served(u64),
    /// A ring member has its neighbour.
    Ready,
    /// The token came home (a member received 0).
    Home,
    /// A ring member stopped: how many tokens it passed on.
    Passed(u64),
}
// ANCHOR_END: messages

// ANCHOR: processes
/// The server: answers `Call { n }` with `n + 1`; counts what it served.
async fn server() {
    let mut served = 0;
    loop {
        match recv::<ServerMsg>().await {
            ServerMsg::Call { from, n } => {
                served += 1;
                from.send(Reply(n + 1));
            }
            ServerMsg::Stop { reply } => return reply.send(Report::Served(served)),
        }
    }
}

/// A client: once told `Go`, `calls` sequential round trips.
async fn client(server: Pid, calls: u32, driver: Pid) {
    recv::<Go>().await;
    let me = self_pid();
    let mut right = 0;
    for n in 0..u64::from(calls) {
        server.send(ServerMsg::Call { from: me, n });
        if recv::<Reply>().await.0 == n + 1 {
            right += 1;
        }
    }
    driver.send(Report::ClientDone { right });
}

/// A ring member: passes `Token(v)` on as `v - 1`; `Token(0)` goes home.
async fn member(driver: Pid) {
    let RingMsg::Next(next) = recv::<RingMsg>().await else { return };
    driver.send(Report::Ready);
    let mut passed = 0;
    loop {
        match recv::<RingMsg>().await {
            RingMsg::Token(0) => driver.send(Report::Home),
            RingMsg::Token(v) => {
                passed += 1;
                next.send(RingMsg::Token(v - 1));
            }
            RingMsg::Stop | RingMsg::Next(_) => return driver.send(Report::Passed(passed)),
        }
    }
}
// ANCHOR_END: processes

/// A node's host: spawns processes on its node for the driver.
async fn host() {
    loop {
        match recv::<HostMsg>().await {
            HostMsg::Hello { reply } => reply.send(Spawned(vec![self_pid()])),
            HostMsg::Server { reply } => reply.send(Spawned(vec![spawn(server())])),
            HostMsg::Clients { count, calls, server, driver } => {
                driver.send(Spawned((0..count).map(|_| spawn(client(server, calls, driver))).collect()))
            }
            HostMsg::Ring { count, driver } => {
                driver.send(Spawned((0..count).map(|_| spawn(member(driver))).collect()))
            }
        }
    }
}

/// The driver's bounded wait: every answer arrives within `timeout` or the
/// run fails.
async fn expect<T: Message>(timeout: Duration, what: &str) -> Result<T, String> {
    recv_timeout::<T>(timeout).await.ok_or_else(|| format!("no {what} within {timeout:?}"))
}

/// Splits `n` processes over `hosts` round-robin: how many each gets.
fn shares(n: usize, hosts: usize) -> Vec<usize> {
    (0..hosts).map(|j| n / hosts + usize::from(j < n % hosts)).collect()
}

/// What one run measured.
struct Measured {
    time: Duration,
    messages: u64,
}

// ANCHOR: client_server
/// One client-server run: the server on `hosts[0]`, the clients on the
/// other hosts (on `hosts[0]` too when there is only one). Timed from the
/// first `Go` to the last `ClientDone`.
async fn client_server(hosts: &[Pid], n: usize, m: usize, timeout: Duration) -> Result<Measured, String> {
    let me = self_pid();
    hosts[0].send(HostMsg::Server { reply: me });
    let server = expect::<Spawned>(timeout, "server").await?.0[0];
    let client_hosts = if hosts.len() == 1 { hosts } else { &hosts[1..] };
    let mut clients = Vec::with_capacity(n);
    for (host, count) in client_hosts.iter().zip(shares(n, client_hosts.len())) {
        host.send(HostMsg::Clients { count: count as u32, calls: m as u32, server, driver: me });
        clients.extend(expect::<Spawned>(timeout, "clients").await?.0);
    }

    let start = Instant::now();
    for client in &clients {
        client.send(Go);
    }
    let mut right = 0;
    for _ in 0..n {
        match expect::<Report>(timeout, "client's result").await? {
            Report::ClientDone { right: r } => right += r,
            _ => return Err("unexpected report from a client".into()),
        }
    }
    let time = start.elapsed();

    server.send(ServerMsg::Stop { reply: me });
    let Report::Served(served) = expect::<Report>(timeout, "server's count").await? else {
        return Err("unexpected report from the server".into());
    };
    if right != served || served != (n * m) as u64 {
        return Err(format!("{served} calls served, {right} right replies, {} expected", n * m));
    }
    Ok(Measured { time, messages: 2 * served })
}
// ANCHOR_END: client_server

// ANCHOR: ring
/// One ring run: member i on `hosts[i % hosts.len()]`, so consecutive
/// members are on different nodes. Timed from the token's first send until
/// it comes home after N·M hops.
async fn ring(hosts: &[Pid], n: usize, m: usize, timeout: Duration) -> Result<Measured, String> {
    let me = self_pid();
    let mut by_host = Vec::with_capacity(hosts.len());
    for (host, count) in hosts.iter().zip(shares(n, hosts.len())) {
        host.send(HostMsg::Ring { count: count as u32, driver: me });
        by_host.push(expect::<Spawned>(timeout, "ring members").await?.0);
    }
    let members: Vec<Pid> = (0..n).map(|i| by_host[i % hosts.len()][i / hosts.len()]).collect();
    for (i, member) in members.iter().enumerate() {
        member.send(RingMsg::Next(members[(i + 1) % n]));
    }
    for _ in 0..n {
        expect::<Report>(timeout, "ring member ready").await?;
    }

    let start = Instant::now();
    members[0].send(RingMsg::Token((n * m) as u64));
    let Report::Home = expect::<Report>(timeout, "the token").await? else {
        return Err("unexpected report while the token travelled".into());
    };
    let time = start.elapsed();

    for member in &members {
        member.send(RingMsg::Stop);
    }
    let mut passed = 0;
    for _ in 0..n {
        match expect::<Report>(timeout, "a member's count").await? {
            Report::Passed(p) => passed += p,
            _ => return Err("unexpected report from a ring member".into()),
        }
    }
    if passed != (n * m) as u64 {
        return Err(format!("the token was passed {passed} times, {} expected", n * m));
    }
    Ok(Measured { time, messages: passed })
}
// ANCHOR_END: ring

/// The benchmark's settings, from the flags.
struct Plan {
    sizes: Vec<(usize, usize)>,
    reps: usize,
    timeout: Duration,
}

/// Runs every size of `plan` for both topologies in one placement, on the
/// runtime of `hosts[0]`; prints a progress line per run.
fn measure(
    rt: &Runtime,
    hosts: Vec<Pid>,
    placement: Placement,
    plan: &Plan,
    done: &mut usize,
    total: usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &(n, m) in &plan.sizes {
        for topology in [Topology::ClientServer, Topology::Ring] {
            let mut runs = Vec::with_capacity(plan.reps);
            for _ in 0..plan.reps {
                let hosts = hosts.clone();
                let timeout = plan.timeout;
                let outcome = rt.block_on(async move {
                    match topology {
                        Topology::ClientServer => client_server(&hosts, n, m, timeout).await,
                        Topology::Ring => ring(&hosts, n, m, timeout).await,
                    }
                });
                runs.push(outcome.unwrap_or_else(|e| fail(&format!("{topology} {placement} N={n} M={m}: {e}"))));
            }
            runs.sort_by_key(|r| r.time);
            let median = &runs[runs.len() / 2];
            let row = Row { topology, placement, n, m, messages: median.messages, time: median.time };
            *done += 1;
            println!("[{done:>2}/{total}] {}", row.progress());
            rows.push(row);
        }
    }
    rows
}

fn fail(why: &str) -> ! {
    eprintln!("client_server_vs_ring: FAILED: {why}");
    std::process::exit(1)
}

fn runtime(workers: Option<usize>) -> Runtime {
    let mut builder = Runtime::builder();
    if let Some(workers) = workers {
        builder = builder.workers(workers);
    }
    builder.build().unwrap_or_else(|e| fail(&format!("cannot start a runtime: {e}")))
}

/// A runtime with a node named `name` and a host registered on it.
fn host_node(name: &str, cookie: &str, workers: Option<usize>) -> (Runtime, Node) {
    let rt = runtime(workers);
    let node = Node::start(&rt, NodeConfig::new(name, cookie))
        .unwrap_or_else(|e| fail(&format!("cannot start node {name}: {e}")));
    let pid = rt.spawn(host());
    rt.register(HOST, pid).unwrap_or_else(|e| fail(&format!("cannot register the host: {e}")));
    (rt, node)
}

/// The host Pids of `nodes` (already connected), asked from `rt`.
fn find_hosts(rt: &Runtime, local: Pid, nodes: &[String], timeout: Duration) -> Vec<Pid> {
    let mut hosts = vec![local];
    for node in nodes {
        let node = node.clone();
        let found = rt.block_on(async move {
            send_named_at(HOST, &node, HostMsg::Hello { reply: self_pid() });
            expect::<Spawned>(timeout, &format!("answer from the host on {node}")).await
        });
        hosts.push(found.unwrap_or_else(|e| fail(&e)).0[0]);
    }
    hosts
}

fn parse_sizes(spec: &str) -> Vec<(usize, usize)> {
    spec.split(',')
        .map(|size| {
            let parsed = size.trim().split_once('x').and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)));
            match parsed {
                Some((n, m)) if n > 0 && m > 0 => (n, m),
                _ => {
                    eprintln!("--sizes: expected NxM,... with N, M > 0, got {size:?}\n{USAGE}");
                    std::process::exit(2)
                }
            }
        })
        .collect()
}

/// `node` mode: a node with a host, serving until killed (or, with
/// `--child`, until the parent closes our standard input).
fn serve(flags: &Flags) {
    let name = flags.str("name").unwrap_or_else(|| fail("node mode needs --name NAME@HOST:PORT"));
    let cookie = flags.str("cookie").unwrap_or("csr");
    let workers = flags.has("workers").then(|| flags.usize("workers", 1));
    let (_rt, node) = host_node(name, cookie, workers);
    if flags.has("child") {
        common::serve_until_parent_leaves(node.name(), "client_server_vs_ring", Duration::from_secs(600));
    } else {
        println!("node {} serving; stop it with Ctrl-C", node.name());
        loop {
            std::thread::park();
        }
    }
}

fn main() {
    let flags = Flags::parse(USAGE);
    if flags.positional.first().map(String::as_str) == Some("node") {
        return serve(&flags);
    }
    let plan = Plan {
        sizes: parse_sizes(flags.str("sizes").unwrap_or(DEFAULT_SIZES)),
        reps: flags.usize("reps", 3).max(1),
        timeout: Duration::from_secs(flags.usize("timeout-s", 60) as u64),
    };
    let workers = flags.has("workers").then(|| flags.usize("workers", 1));
    let cookie = flags.str("cookie").unwrap_or("csr").to_owned();
    let out = std::path::PathBuf::from(flags.str("out").unwrap_or("target/client_server_vs_ring"));
    let placements: &[Placement] = match (flags.has("local-only"), flags.has("nodes-only")) {
        (true, false) => &[Placement::Local],
        (false, true) => &[Placement::Nodes],
        _ => &[Placement::Local, Placement::Nodes],
    };
    // Busy threads competing for the cores, to measure under contention
    // (they spin until the program exits).
    let hogs = flags.usize("hogs", 0);
    for _ in 0..hogs {
        std::thread::spawn(|| loop {
            std::hint::spin_loop();
        });
    }
    let total = plan.sizes.len() * 2 * placements.len();
    println!(
        "client-server (2·N·M messages) vs ring (N·M messages); sizes {}; median of {} runs each",
        plan.sizes.iter().map(|(n, m)| format!("{n}x{m}")).collect::<Vec<_>>().join(","),
        plan.reps
    );

    let mut rows = Vec::new();
    let mut done = 0;
    if placements.contains(&Placement::Local) {
        let rt = runtime(workers);
        let local = rt.spawn(host());
        println!("local: one runtime, {} worker threads", rt.stats().workers);
        rows.extend(measure(&rt, vec![local], Placement::Local, &plan, &mut done, total));
        rt.shutdown();
    }
    if placements.contains(&Placement::Nodes) {
        let (rt, node) = host_node("driver@127.0.0.1:0", &cookie, workers);
        let local = rt.whereis(HOST).expect("the host was just registered");
        // The other nodes: yours, this program's children, or one more
        // runtime in this process (kept alive by these bindings).
        let mut _children = Vec::new();
        let mut _embedded = None;
        let others: Vec<String> = if let Some(list) = flags.str("nodes") {
            list.split(',').map(str::to_owned).collect()
        } else if flags.has("spawn-nodes") {
            let workers_arg = workers.map(|w| w.to_string());
            let mut args = vec!["node", "--child", "--name", "csr@127.0.0.1:0", "--cookie", &cookie];
            if let Some(w) = &workers_arg {
                args.extend(["--workers", w]);
            }
            _children = (0..flags.usize("spawn-nodes", 1).max(1)).map(|_| common::ChildNode::start(&args)).collect();
            _children.iter().map(|c: &common::ChildNode| c.name.clone()).collect()
        } else {
            let (rt_b, node_b) = host_node("b@127.0.0.1:0", &cookie, workers);
            let name = node_b.name().to_owned();
            _embedded = Some((rt_b, node_b));
            vec![name]
        };
        for other in &others {
            node.connect(other).unwrap_or_else(|e| fail(&format!("cannot connect to {other}: {e}")));
        }
        let hosts = find_hosts(&rt, local, &others, plan.timeout);
        println!(
            "nodes: {} (the driver's) and {}; {} worker threads per runtime here",
            node.name(),
            others.join(", "),
            rt.stats().workers
        );
        rows.extend(measure(&rt, hosts, Placement::Nodes, &plan, &mut done, total));
        node.shutdown();
    }

    report::print(&rows, hogs);
    std::fs::create_dir_all(&out).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out.display())));
    let csv = out.join("client_server_vs_ring.csv");
    let svg = out.join("client_server_vs_ring.svg");
    std::fs::write(&csv, report::csv(&rows)).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", csv.display())));
    std::fs::write(&svg, chart::svg(&rows)).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", svg.display())));
    println!("wrote {} and {}", csv.display(), svg.display());
    println!();
    println!("{}", report::conclusions(&rows));
}
