//! What a generated RPC stub costs over the hand-written message round trip it
//! replaces, measured in one run: workloads W3a of `../shared/anchors/README.md`
//! (local increment server, one client, K sequential round trips), W3b (the
//! same server, C clients making N sequential round trips each, at once) and
//! W4a (one client and the server in two OS processes, each round trip timed),
//! each done both ways.
//!
//! ```text
//! cargo run --release --example rpc_bench -- [--k 1000000] [--reps 5] [--clients 100] [--client-calls 10000] [--calls 100000] [--warmup 1000] [--remote-reps 3] [--workers W] [--only local|remote]
//! ```
//!
//! - **Hand-written** (`impl=krarup`): exactly `local_call`'s W3a and
//!   `remote_bench`'s W4a: the client sends `(self_pid(), n)`, the server
//!   answers `n + 1` (remotely `(self_pid(), n + 1)`), the client `recv`s it.
//! - **Stub** (`impl=krarup-rpc`): `client.inc(n).await` on the `IncrClient`
//!   that `#[krarup::service]` generates from the trait [`Incr`], served by
//!   `IncrServer::serve`. Each call goes through the runtime's `call`: a fresh
//!   reply tag, a monitor of the server (added with the request), a deadline
//!   (the default 5 s timeout), and the monitor removed once the reply is in.
//!   `inc` is not idempotent, so it is never retried: it carries no request
//!   id and the server keeps no copy of its reply.
//! - **Guarded** (`impl=krarup-guarded`, W3a only): the hand-written round
//!   trip with what a call guarantees, written as an Erlang programmer does
//!   without `gen_server`: a monitor of the server as the request's tag, a
//!   `receive!` of the tagged reply or the server's `Down` with an `after`,
//!   and `demonitor` once the reply is in. It tells what these guarantees cost
//!   when written by hand, beside the stub that gives them.
//!
//! The ways alternate (in W3a each goes first in turn; in W3b the
//! hand-written one first in the 1st, 3rd, ... repetition, the stub first in
//! the others) so that all see the same machine; each figure is the median
//! over the repetitions, and `ratio` is a way's median time per call over the
//! hand-written one's (for W4a, of the p50s). W3b, as the anchors define it, spawns the clients first, each
//! waiting for `Go`, and times from the first `Go` to the last `ClientDone`;
//! each stub client has its own `IncrClient`. For a
//! profiler, `--way hand` or `--way stub` runs W3a that way alone, once (e.g.
//! `valgrind --tool=callgrind target/release/examples/rpc_bench --way stub
//! --k 100000 --workers 1`); `--way call` runs it through the runtime's `call`
//! alone (no stub: the server receives `Call<u64, u64>` and replies `n + 1`),
//! to tell the stub's share from the call's; `--way timeout` runs the
//! hand-written round trip with `recv_timeout` (the stub's timeout) instead
//! of `recv`; `--way guarded` runs the guarded loop. With `--clients C` as
//! well, `--way hand` or `--way stub` runs W3b that way instead.
//!
//! The remote half starts the second node itself, as `remote_bench` does: it
//! re-executes itself with `--child`, which starts node `b@127.0.0.1:0` (a free
//! port), registers both servers, prints `NODE <name>` and serves until its
//! standard input closes. The hand-written client finds its server by name
//! once per repetition (untimed); the stub is a client of the name
//! (`IncrClient::named_at`), which node b looks up for every call, as for
//! Erlang's `gen_server:call({Name, Node}, ..)`.
//!
//! Workers: `--workers` for both halves if given, else (as `local_call` and
//! `remote_bench`) one per core locally and one per node remotely.

mod common;

use std::time::{Duration, Instant};

use common::{fmt_num, serve_until_parent_leaves, ChildNode, Flags};
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use krarup::Call;

const USAGE: &str = "rpc_bench [--k K] [--reps R] [--clients C] [--client-calls N] [--calls N] [--warmup W] \
                     [--remote-reps R] [--workers W] [--spin-us S] [--only local|remote] [--way hand|stub|call|timeout|guarded]";
const COOKIE: &str = "bench";

/// The increment server as an interface definition.
#[krarup::service]
pub trait Incr {
    /// `n + 1`.
    fn inc(&mut self, n: u64) -> u64;
}

/// The stub server's state: none.
struct Increment;

impl Incr for Increment {
    fn inc(&mut self, n: u64) -> u64 {
        n + 1
    }
}

fn main() {
    let flags = Flags::parse(USAGE);
    let workers = flags.has("workers").then(|| flags.usize("workers", 1));
    let spin = Duration::from_micros(flags.usize("spin-us", 200) as u64);
    if flags.has("child") {
        return child(workers.unwrap_or(1), spin);
    }
    let only = flags.str("only").unwrap_or("");
    if let Some(way) = flags.str("way") {
        // For profiling: one way alone, once.
        let way = match way {
            "hand" => Way::Hand,
            "stub" => Way::Stub,
            "call" => Way::Call,
            "timeout" => Way::Timeout,
            "guarded" => Way::Guarded,
            other => {
                eprintln!("--way: expected hand, stub, call, timeout or guarded, got {other:?}");
                std::process::exit(2)
            }
        };
        if flags.has("clients") {
            return w3b_alone(flags.usize("clients", 100), flags.usize("client-calls", 10_000), way, workers);
        }
        return local_alone(flags.usize("k", 1_000_000), way, workers);
    }
    if only != "remote" {
        let reps = flags.usize("reps", 5).max(1);
        local(flags.usize("k", 1_000_000), reps, workers);
        w3b(flags.usize("clients", 100).max(1), flags.usize("client-calls", 10_000), reps, workers);
    }
    if only != "local" {
        let calls = flags.usize("calls", 100_000).max(1);
        let warmup = flags.usize("warmup", 1_000);
        remote(calls, warmup, flags.usize("remote-reps", 3).max(1), workers.unwrap_or(1), spin);
    }
}

/// Which way a round trip is made (`Call` and `Timeout` only with `--way`,
/// `Guarded` only in W3a).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Hand,
    Stub,
    Call,
    Timeout,
    Guarded,
}

impl Way {
    /// The two ways in the order repetition `rep` runs them.
    fn order(rep: usize) -> [Way; 2] {
        if rep.is_multiple_of(2) {
            [Way::Hand, Way::Stub]
        } else {
            [Way::Stub, Way::Hand]
        }
    }
}

// ------------------------------------------------------------------ W3a

/// W3b's stub client: `common::increment_calls` through the stub.
async fn stub_calls(client: &IncrClient, k: usize) -> u64 {
    let mut n = 0u64;
    for _ in 0..k {
        n = client.inc(n).await.expect("inc");
    }
    n
}

/// `local_call`'s W3a.
async fn w3a_hand(k: usize) -> Duration {
    let server = spawn(common::increment_server());
    let t0 = Instant::now();
    let n = common::increment_calls(server, k).await;
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    exit(server, ExitReason::Kill);
    elapsed
}

/// W3a through the stub: K sequential `inc` calls.
async fn w3a_stub(k: usize) -> Duration {
    let server = spawn(IncrServer::serve(Increment));
    let client = IncrClient::new(server);
    let t0 = Instant::now();
    let n = stub_calls(&client, k).await;
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    exit(server, ExitReason::Kill);
    elapsed
}

/// The increment server for the runtime's `call`.
async fn call_server() {
    loop {
        let c: Call<u64, u64> = recv().await;
        c.reply_to.reply(c.request + 1);
    }
}

/// W3a through the runtime's `call` (the stub's timeout, no stub).
async fn w3a_call(k: usize) -> Duration {
    let server = spawn(call_server());
    let t0 = Instant::now();
    let mut n = 0u64;
    for _ in 0..k {
        n = call::<u64, u64>(server, n, krarup::rpc::DEFAULT_TIMEOUT).await.expect("call");
    }
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    exit(server, ExitReason::Kill);
    elapsed
}

fn local_runtime(workers: Option<usize>) -> Runtime {
    let mut builder = Runtime::builder();
    if let Some(workers) = workers {
        builder = builder.workers(workers);
    }
    builder.build().expect("start the runtime")
}

/// W3a hand-written with the stub's timeout: `recv_timeout` instead of `recv`.
async fn w3a_timeout(k: usize) -> Duration {
    let server = spawn(common::increment_server());
    let t0 = Instant::now();
    let me = self_pid();
    let mut n = 0u64;
    for _ in 0..k {
        server.send((me, n));
        n = recv_timeout::<u64>(krarup::rpc::DEFAULT_TIMEOUT).await.expect("a reply in time");
    }
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    exit(server, ExitReason::Kill);
    elapsed
}

/// The increment server for [`w3a_guarded`]: receives `(From, Tag, N)`, sends
/// `(Tag, N + 1)` to `From`.
async fn guarded_server() {
    loop {
        let (from, tag, n): (Pid, MonitorRef, u64) = recv().await;
        from.send((tag, n + 1));
    }
}

/// W3a hand-written with what a call guarantees, as an Erlang programmer
/// writes it without `gen_server` (and as `gen:call` does inside): the
/// request is tagged with a monitor of the server, the client waits for
/// the tagged reply or the server's `Down`, at most the stub's default
/// timeout, and then removes the monitor, flushing its `Down`. (Still
/// weaker than a call: a reply that comes after the timeout stays in the
/// mailbox.)
async fn w3a_guarded(k: usize) -> Duration {
    let server = spawn(guarded_server());
    let t0 = Instant::now();
    let me = self_pid();
    let mut n = 0u64;
    for _ in 0..k {
        let tag = monitor(server);
        server.send((me, tag, n));
        n = receive! {
            (reply_tag, r): (MonitorRef, u64) if reply_tag == tag => {
                demonitor(tag);
                r
            },
            down: Down if down.reference == tag => panic!("the server exited: {}", down.reason),
            after krarup::rpc::DEFAULT_TIMEOUT => panic!("no reply in time"),
        };
    }
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    exit(server, ExitReason::Kill);
    elapsed
}

/// W3a one way only, once, without a comparison (`--way`: for a profiler).
fn local_alone(k: usize, way: Way, workers: Option<usize>) {
    let rt = local_runtime(workers);
    let (name, t) = match way {
        Way::Hand => ("krarup", rt.block_on(w3a_hand(k))),
        Way::Stub => ("krarup-rpc", rt.block_on(w3a_stub(k))),
        Way::Call => ("krarup call", rt.block_on(w3a_call(k))),
        Way::Timeout => ("krarup recv_timeout", rt.block_on(w3a_timeout(k))),
        Way::Guarded => ("krarup-guarded", rt.block_on(w3a_guarded(k))),
    };
    let ns = common::ns_per(t, k);
    println!("[{name}] W3a incr server, 1 client, k={k}: {ns:.1} ns/round trip ({t:?})");
}

fn local(k: usize, reps: usize, workers: Option<usize>) {
    let rt = local_runtime(workers);
    let workers = rt.stats().workers;
    let (mut hand, mut guarded, mut stub) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        // Each way first in turn.
        let mut order = [Way::Hand, Way::Guarded, Way::Stub];
        order.rotate_left(rep % 3);
        for way in order {
            match way {
                Way::Hand => hand.push(common::ns_per(rt.block_on(w3a_hand(k)), k)),
                Way::Guarded => guarded.push(common::ns_per(rt.block_on(w3a_guarded(k)), k)),
                Way::Stub => stub.push(common::ns_per(rt.block_on(w3a_stub(k)), k)),
                Way::Call | Way::Timeout => unreachable!("not compared"),
            }
        }
    }
    let (hand_ns, guarded_ns, stub_ns) = (median(&hand), median(&guarded), median(&stub));
    let ratio = stub_ns / hand_ns;
    let guarded_ratio = guarded_ns / hand_ns;
    println!(
        "[krarup] W3a incr server, 1 client, k={k}, {workers} workers: hand-written {hand_ns:.1} ns/round trip \
         (median of {reps}: {})",
        list(&hand)
    );
    println!(
        "[krarup-rpc] W3a incr server through the stub: {stub_ns:.1} ns/call (median of {reps}: {}); \
         {ratio:.2}x the hand-written round trip",
        list(&stub)
    );
    println!(
        "[krarup-guarded] W3a hand-written with a call's guarantees (monitor as tag, `after`, demonitor): \
         {guarded_ns:.1} ns/round trip (median of {reps}: {}); {guarded_ratio:.2}x the hand-written round trip",
        list(&guarded)
    );
    let params = |ns: f64, runs: &[f64]| {
        vec![
            ("k", k.to_string()),
            ("workers", workers.to_string()),
            ("ns_per_rt", fmt_num(ns)),
            ("reps", runs.iter().map(|x| fmt_num(*x)).collect::<Vec<_>>().join(",")),
        ]
    };
    result("W3a", "krarup", &params(hand_ns, &hand));
    let mut fields = params(stub_ns, &stub);
    fields.push(("ratio", format!("{ratio:.3}")));
    result("W3a", "krarup-rpc", &fields);
    let mut fields = params(guarded_ns, &guarded);
    fields.push(("ratio", format!("{guarded_ratio:.3}")));
    result("W3a", "krarup-guarded", &fields);
}

// ------------------------------------------------------------------ W3b

/// W3b one way (hand-written or through the stub): `clients` clients,
/// spawned first, each making `calls` round trips once told `Go`.
async fn w3b_run(way: Way, clients: usize, calls: usize) -> Duration {
    let server = match way {
        Way::Stub => spawn(IncrServer::serve(Increment)),
        Way::Hand | Way::Call | Way::Timeout | Way::Guarded => spawn(common::increment_server()),
    };
    let elapsed = match way {
        Way::Stub => {
            let client = || async move { stub_calls(&IncrClient::new(server), calls).await };
            common::w3b_clients(clients, calls, client).await
        }
        Way::Hand | Way::Call | Way::Timeout | Way::Guarded => {
            common::w3b_clients(clients, calls, || common::increment_calls(server, calls)).await
        }
    };
    exit(server, ExitReason::Kill);
    elapsed
}

/// W3b one way only, once (`--way` with `--clients`: for a profiler).
fn w3b_alone(clients: usize, calls: usize, way: Way, workers: Option<usize>) {
    let name = match way {
        Way::Hand => "krarup",
        Way::Stub => "krarup-rpc",
        Way::Call | Way::Timeout | Way::Guarded => {
            eprintln!("--clients: W3b runs --way hand or --way stub only");
            std::process::exit(2)
        }
    };
    let t = local_runtime(workers).block_on(w3b_run(way, clients, calls));
    let ns = common::ns_per(t, clients * calls);
    println!("[{name}] W3b incr server, {clients} clients x {calls} calls: {ns:.1} ns/call ({t:?})");
}

/// W3b both ways, `reps` times, alternating; prints the medians.
fn w3b(clients: usize, calls: usize, reps: usize, workers: Option<usize>) {
    let rt = local_runtime(workers);
    let workers = rt.stats().workers;
    let total = clients * calls;
    let (mut hand, mut stub) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for way in Way::order(rep) {
            let cps = total as f64 / rt.block_on(w3b_run(way, clients, calls)).as_secs_f64();
            match way {
                Way::Hand => hand.push(cps),
                Way::Stub => stub.push(cps),
                Way::Call | Way::Timeout | Way::Guarded => unreachable!("not compared"),
            }
        }
    }
    let (hand_cps, stub_cps) = (median(&hand), median(&stub));
    let ratio = hand_cps / stub_cps;
    let mega = |xs: &[f64]| list(&xs.iter().map(|x| x / 1e6).collect::<Vec<_>>());
    println!(
        "[krarup] W3b incr server, {clients} clients x {calls} calls, {workers} workers: hand-written {:.2} M \
         calls/s (median of {reps}: {})",
        hand_cps / 1e6,
        mega(&hand)
    );
    println!(
        "[krarup-rpc] W3b through the stub: {:.2} M calls/s (median of {reps}: {}); {ratio:.2}x the \
         hand-written time per call",
        stub_cps / 1e6,
        mega(&stub)
    );
    let params = |cps: f64, runs: &[f64]| {
        vec![
            ("clients", clients.to_string()),
            ("calls", calls.to_string()),
            ("workers", workers.to_string()),
            ("calls_per_s", format!("{cps:.0}")),
            ("reps", runs.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(",")),
        ]
    };
    result("W3b", "krarup", &params(hand_cps, &hand));
    let mut fields = params(stub_cps, &stub);
    fields.push(("ratio", format!("{ratio:.3}")));
    result("W3b", "krarup-rpc", &fields);
}

// ------------------------------------------------------------------ W4a

/// One repetition's round trips, in µs, and their summary.
struct Timings {
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Timings {
    fn of(times: &[Duration]) -> Timings {
        let mut us: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let mean = us.iter().sum::<f64>() / us.len() as f64;
        Timings { mean, p50: percentile(&us, 50.0), p99: percentile(&us, 99.0) }
    }
}

/// `remote_bench`'s W4a: `warmup` untimed round trips, then `calls` timed.
async fn w4a_hand(node: String, calls: usize, warmup: usize) -> Vec<Duration> {
    krarup::send_named_at("incr", &node, (self_pid(), 0i64));
    let (server, _): (Pid, i64) = recv_timeout(Duration::from_secs(10)).await.expect("the increment server");
    for n in 0..warmup as i64 {
        server.send((self_pid(), n));
        let _: (Pid, i64) = recv().await;
    }
    let mut times = Vec::with_capacity(calls);
    for n in 0..calls as i64 {
        let start = Instant::now();
        server.send((self_pid(), n));
        let (_, m): (Pid, i64) = recv().await;
        times.push(start.elapsed());
        assert_eq!(m, n + 1);
    }
    times
}

/// W4a through the stub, a client of the server's name (looked up by node b
/// for every call).
async fn w4a_stub(node: String, calls: usize, warmup: usize) -> Vec<Duration> {
    let client = IncrClient::named_at("incr_rpc", node);
    for n in 0..warmup as u64 {
        client.inc(n).await.expect("inc");
    }
    let mut times = Vec::with_capacity(calls);
    for n in 0..calls as u64 {
        let start = Instant::now();
        let m = client.inc(n).await.expect("inc");
        times.push(start.elapsed());
        assert_eq!(m, n + 1);
    }
    times
}

fn remote(calls: usize, warmup: usize, reps: usize, workers: usize, spin: Duration) {
    let spin_us = spin.as_micros().to_string();
    let child = ChildNode::start(&["--child", "--workers", &workers.to_string(), "--spin-us", &spin_us]);
    let b = child.name.clone();

    let rt = Runtime::builder().workers(workers).build().expect("runtime");
    let node = Node::start(&rt, NodeConfig::new("a@127.0.0.1:0", COOKIE).spin(spin)).expect("start node a");
    node.connect(&b).expect("connect to node b");

    let (mut hand, mut stub) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for way in Way::order(rep) {
            match way {
                Way::Hand => hand.push(Timings::of(&rt.block_on(w4a_hand(b.clone(), calls, warmup)))),
                Way::Stub => stub.push(Timings::of(&rt.block_on(w4a_stub(b.clone(), calls, warmup)))),
                Way::Call | Way::Timeout | Way::Guarded => unreachable!("not compared"),
            }
        }
    }
    let summary = |runs: &[Timings]| {
        let pick = |f: fn(&Timings) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        (pick(|t| t.mean), pick(|t| t.p50), pick(|t| t.p99))
    };
    let (h, s) = (summary(&hand), summary(&stub));
    let (ratio_p50, ratio_mean) = (s.1 / h.1, s.0 / h.0);
    let p50s = |runs: &[Timings]| list(&runs.iter().map(|t| t.p50).collect::<Vec<_>>());
    println!(
        "[krarup] W4a: {calls} sequential round trips to the increment server on another OS process, {workers} \
         worker(s) per node: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs (medians of {reps}; p50s {})",
        h.0,
        h.1,
        h.2,
        p50s(&hand)
    );
    println!(
        "[krarup-rpc] W4a through the stub: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs (p50s {}); p50 {ratio_p50:.2}x, \
         mean {ratio_mean:.2}x the hand-written round trip",
        s.0,
        s.1,
        s.2,
        p50s(&stub)
    );
    let params = |(mean, p50, p99): (f64, f64, f64)| {
        vec![
            ("k", calls.to_string()),
            ("workers", workers.to_string()),
            ("mean_us", fmt_num(mean)),
            ("p50_us", fmt_num(p50)),
            ("p99_us", fmt_num(p99)),
            ("rt_per_s", format!("{:.0}", 1e6 / mean)),
        ]
    };
    result("W4a", "krarup", &params(h));
    let mut fields = params(s);
    fields.push(("ratio_p50", format!("{ratio_p50:.3}")));
    fields.push(("ratio_mean", format!("{ratio_mean:.3}")));
    result("W4a", "krarup-rpc", &fields);

    drop(child);
}

/// Node b: `remote_bench`'s increment server as `incr`, the stub server as
/// `incr_rpc`.
fn child(workers: usize, spin: Duration) {
    let rt = Runtime::builder().workers(workers).build().expect("runtime");
    let node = Node::start(&rt, NodeConfig::new("b@127.0.0.1:0", COOKIE).spin(spin)).expect("start node b");
    let incr = rt.spawn(increment_server());
    rt.register("incr", incr).expect("register incr");
    let incr_rpc = rt.spawn(IncrServer::serve(Increment));
    rt.register("incr_rpc", incr_rpc).expect("register incr_rpc");
    serve_until_parent_leaves(node.name(), "rpc_bench", Duration::from_secs(600));
}

/// `remote_bench`'s increment server: `{From, N}` → `From ! {self(), N + 1}`.
async fn increment_server() {
    loop {
        let (from, n): (Pid, i64) = recv().await;
        from.send((self_pid(), n + 1));
    }
}

// ------------------------------------------------------------------ figures

/// The median (the mean of the middle two for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if !xs.len().is_multiple_of(2) {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Nearest rank, as the anchors define it: the value at 1-based rank
/// ceil(p/100 · count) of the sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn list(xs: &[f64]) -> String {
    xs.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ")
}

/// A `RESULT workload=.. impl=.. k=v ...` line (`common::result` always says
/// `impl=krarup`).
fn result(workload: &str, implementation: &str, fields: &[(&str, String)]) {
    let mut line = format!("RESULT workload={workload} impl={implementation}");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}
