//! Criterion benches of the network node: a round trip to a server on another node (written by
//! hand, and through an RPC stub) and one-way throughput to a counter on another node.
//!
//! ```text
//! cargo bench --bench remote                 # all (about a minute)
//! cargo bench --bench remote -- one_way      # a filter
//! cargo bench --bench remote -- --test       # each once, as a smoke test
//! ```
//!
//! Two nodes, `a@127.0.0.1` and `b@127.0.0.1` (ports the OS picks), live in this one OS process,
//! each with its own one-worker runtime, and talk over TCP on 127.0.0.1: four threads in all (two
//! workers, two I/O threads), as in `remote_bench --workers 1`, which runs workload W4 between
//! two OS processes. A Pid handed from one runtime to the other as a Rust value would be
//! delivered in-process, so the client finds its servers on b by name (`send_named_at`) and
//! gets their Pids back over the wire.

mod common;

use std::time::{Duration, Instant};

use common::{stub_calls, IncrClient, IncrServer, Increment, TIMEOUT};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const COOKIE: &str = "bench";

/// Node b's names.
const INCR: &str = "incr";
const INCR_RPC: &str = "incr_rpc";
const COUNTER: &str = "counter";

/// One node: a runtime and the network node it was made.
struct Side {
    rt: Runtime,
    node: Node,
}

impl Side {
    fn start(short: &str) -> Side {
        let rt = Runtime::builder().workers(1).build().expect("start the runtime");
        let node = Node::start(&rt, NodeConfig::new(format!("{short}@127.0.0.1:0"), COOKIE)).expect("start the node");
        Side { rt, node }
    }
}

/// Nodes a (the client) and b (the servers), connected.
fn nodes() -> (Side, Side) {
    let (a, b) = (Side::start("a"), Side::start("b"));
    b.rt.register(INCR, b.rt.spawn(increment_server())).expect("register incr");
    b.rt.register(INCR_RPC, b.rt.spawn(IncrServer::serve(Increment))).expect("register incr_rpc");
    b.rt.register(COUNTER, b.rt.spawn(counter())).expect("register counter");
    a.node.connect(b.node.name()).expect("a connects to b");
    (a, b)
}

/// W4's increment server: `{From, N}` → `From ! {self(), N + 1}`, which also tells a client
/// the server's Pid.
async fn increment_server() {
    loop {
        let (from, n): (Pid, u64) = recv().await;
        from.send((self_pid(), n + 1));
    }
}

/// A counter's order: count the next `n` integers, then tell `from`.
#[derive(Serialize, Deserialize)]
struct Count {
    from: Pid,
    n: u64,
}

/// The counter's answer.
#[derive(Serialize, Deserialize)]
struct Counted(u64);

/// The counter (W4b): for each `Count`, receives that many integers and answers. A `Count`
/// with `n = 0` is answered at once, which tells a client the counter's Pid.
async fn counter() {
    loop {
        let Count { from, n } = recv().await;
        for _ in 0..n {
            let _: u64 = recv().await;
        }
        from.send((self_pid(), Counted(n)));
    }
}

/// The Pid, as node a sees it, of the server registered as `name` on `node`: its first answer
/// comes over the wire and carries it.
async fn find<Q: Message, R: Message>(name: &str, node: &str, hello: Q) -> Pid {
    send_named_at(name, node, hello);
    let (pid, _): (Pid, R) = recv_timeout(TIMEOUT).await.expect("the server answers");
    pid
}

/// `n` sequential round trips to the increment server on the other node (W4a's loop).
async fn hand_round_trips(server: Pid, n: u64) -> Duration {
    let me = self_pid();
    let start = Instant::now();
    for x in 0..n {
        server.send((me, x));
        let (_, y): (Pid, u64) = recv().await;
        debug_assert_eq!(y, x + 1);
    }
    start.elapsed()
}

/// `n` integers to the counter on the other node, until it says it has them all (W4b).
async fn one_way(counter: Pid, n: u64) -> Duration {
    let me = self_pid();
    let start = Instant::now();
    counter.send(Count { from: me, n });
    for i in 0..n {
        counter.send(i);
    }
    let (_, Counted(m)): (Pid, Counted) = recv_timeout(Duration::from_secs(60)).await.expect("the count");
    let elapsed = start.elapsed();
    assert_eq!(m, n);
    elapsed
}

fn remote_benches(c: &mut Criterion) {
    let (a, b) = nodes();
    let b_name = b.node.name().to_owned();
    let (incr, counter) = a.rt.block_on({
        let b_name = b_name.clone();
        async move {
            let incr = find::<(Pid, u64), u64>(INCR, &b_name, (self_pid(), 0u64)).await;
            let counter = find::<Count, Counted>(COUNTER, &b_name, Count { from: self_pid(), n: 0 }).await;
            (incr, counter)
        }
    });
    let stub = IncrClient::named_at(INCR_RPC, b_name);

    let mut group = c.benchmark_group("remote_round_trip");
    group.bench_function("hand_written", |bench| {
        bench.iter_custom(|iters| a.rt.block_on(hand_round_trips(incr, iters)))
    });
    group.bench_function("stub", |bench| bench.iter_custom(|iters| a.rt.block_on(stub_calls(stub.clone(), iters))));
    group.finish();

    let mut group = c.benchmark_group("remote_one_way");
    group.throughput(Throughput::Elements(1));
    group.bench_function("to_counter", |bench| bench.iter_custom(|iters| a.rt.block_on(one_way(counter, iters))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = remote_benches
}
criterion_main!(benches);
