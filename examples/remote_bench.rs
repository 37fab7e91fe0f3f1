//! Workload W4 of `../shared/anchors/README.md` between two OS processes: the
//! distributed increment server (W4a: sequential round trips, each timed) and
//! a one-way stream of integers to a counter (W4b: messages per second).
//!
//! ```text
//! cargo run --release --example remote_bench [-- --calls 100000 --messages 1000000 --workers 1]
//! ```
//!
//! The program starts the second node itself: it re-executes itself with
//! `--child`, which starts node `b@127.0.0.1:0` (a free port), prints its name
//! and serves until its standard input closes (or 90 s pass). Node `a` (this
//! process) connects to it, finds the servers by name (`send_named_at`: there
//! is no remote spawn) and talks to them by Pid. Prints
//! `RESULT workload=W4a impl=krarup mean_us=.. p50_us=.. p99_us=..` and
//! `RESULT workload=W4b impl=krarup msgs_per_s=.. send_loop_ms=..`.

mod common;

use std::time::{Duration, Instant};

use common::{fmt_num, result, serve_until_parent_leaves, ChildNode, Flags};
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str = "remote_bench [--calls K] [--warmup W] [--messages N] [--reps R] [--workers W] [--spin-us S]";
const COOKIE: &str = "bench";

/// W4b's opening message: count `n` integers, then tell `from`.
#[derive(Serialize, Deserialize)]
struct Count {
    from: Pid,
    n: u64,
}

/// W4b's answer: `{counted, N}`.
#[derive(Serialize, Deserialize)]
struct Counted(u64);

fn main() {
    let flags = Flags::parse(USAGE);
    let workers = flags.usize("workers", 1);
    let spin = Duration::from_micros(flags.usize("spin-us", 200) as u64);
    if flags.has("child") {
        return child(workers, spin);
    }
    let calls = flags.usize("calls", 100_000);
    let warmup = flags.usize("warmup", 1_000);
    let messages = flags.usize("messages", 1_000_000) as u64;
    let reps = flags.usize("reps", 3).max(1);

    let spin_us = spin.as_micros().to_string();
    let child = ChildNode::start(&["--child", "--workers", &workers.to_string(), "--spin-us", &spin_us]);
    let b = child.name.clone();

    let rt = Runtime::builder().workers(workers).build().expect("runtime");
    let node = Node::start(&rt, NodeConfig::new("a@127.0.0.1:0", COOKIE).spin(spin)).expect("start node a");
    node.connect(&b).expect("connect to node b");

    let w4a = rt.block_on({
        let b = b.clone();
        async move {
            krarup::send_named_at("incr", &b, (self_pid(), 0i64));
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
    });
    let mut us: Vec<f64> = w4a.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let pct = |p: f64| us[((us.len() as f64 * p) as usize).min(us.len() - 1)];
    println!(
        "W4a: {calls} sequential round trips to the increment server on another OS process: mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        pct(0.50),
        pct(0.99)
    );
    result(
        "W4a",
        &[
            ("k", calls.to_string()),
            ("workers", workers.to_string()),
            ("mean_us", fmt_num(mean)),
            ("p50_us", fmt_num(pct(0.50))),
            ("p99_us", fmt_num(pct(0.99))),
            ("rt_per_s", format!("{:.0}", 1e6 / mean)),
        ],
    );

    let mut runs = Vec::new();
    for _ in 0..reps {
        let b = b.clone();
        runs.push(rt.block_on(async move {
            krarup::send_named_at("counter", &b, Count { from: self_pid(), n: messages });
            let counter: Pid = recv_timeout(Duration::from_secs(10)).await.expect("the counter");
            let start = Instant::now();
            for i in 1..=messages {
                counter.send(i);
            }
            let send_loop = start.elapsed();
            let Counted(n) = recv_timeout(Duration::from_secs(60)).await.expect("the count");
            assert_eq!(n, messages);
            (messages as f64 / start.elapsed().as_secs_f64(), send_loop)
        }));
    }
    runs.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (rate, send_loop) = runs[runs.len() / 2];
    let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.0)).collect();
    println!(
        "W4b: {messages} one-way messages to a counter on another OS process: {:.2} M msgs/s (median of {reps}; send loop {:.1} ms)",
        rate / 1e6,
        send_loop.as_secs_f64() * 1e3
    );
    result(
        "W4b",
        &[
            ("msgs", messages.to_string()),
            ("workers", workers.to_string()),
            ("msgs_per_s", format!("{rate:.0}")),
            ("send_loop_ms", fmt_num(send_loop.as_secs_f64() * 1e3)),
            ("reps", rates.join(",")),
        ],
    );

    drop(child);
}

/// Node b: the increment server as `incr`, the counter factory as `counter`.
fn child(workers: usize, spin: Duration) {
    let rt = Runtime::builder().workers(workers).build().expect("runtime");
    let node = Node::start(&rt, NodeConfig::new("b@127.0.0.1:0", COOKIE).spin(spin)).expect("start node b");
    let incr = rt.spawn(increment_server());
    rt.register("incr", incr).expect("register incr");
    let counter = rt.spawn(counters());
    rt.register("counter", counter).expect("register counter");
    serve_until_parent_leaves(node.name(), "remote_bench", Duration::from_secs(90));
}

/// W3's increment server: `{From, N}` → `From ! {self(), N + 1}`.
async fn increment_server() {
    loop {
        let (from, n): (Pid, i64) = recv().await;
        from.send((self_pid(), n + 1));
    }
}

/// For each `Count`, a fresh counter process (its Pid goes back to the asker).
async fn counters() {
    loop {
        let Count { from, n } = recv().await;
        let counter = spawn(async move {
            let mut seen = 0u64;
            while seen < n {
                let _: u64 = recv().await;
                seen += 1;
            }
            from.send(Counted(seen));
        });
        from.send(counter);
    }
}
