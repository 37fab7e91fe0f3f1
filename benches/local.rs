//! Criterion benches of the runtime on one node: spawn, send + receive, and a call round trip
//! four ways (hand-written, the runtime's `call`, a `GenServer` call, an RPC stub call).
//!
//! ```text
//! cargo bench --bench local                  # all (about a minute)
//! cargo bench --bench local -- local_call    # the benches whose name contains "local_call"
//! cargo bench --bench local -- --test        # each once, as a smoke test
//! ```
//!
//! Each sample is one process doing the sample's `iters` operations (see `common`); the
//! runtime has one worker per core, as `Runtime::new()` gives users. The macro workloads (a
//! ring, a million processes, many clients) are the examples `ring`, `spawn` and `local_call`,
//! run beside the reference anchors by `benches/compare.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{hand_round_trips, increment_server, stub_calls, IncrClient, IncrServer, Increment, TIMEOUT};
use criterion::{criterion_group, criterion_main, Criterion};
use krarup::prelude::*;
use krarup::Call;
use serde::{Deserialize, Serialize};

/// The message a sentinel process sends once the processes spawned before it have run.
#[derive(Serialize, Deserialize)]
struct Drained;

/// Spawns a sentinel and waits for it: the processes spawned before it on this worker have run.
async fn drain() {
    let me = self_pid();
    spawn(async move { me.send(Drained) });
    let Drained = recv().await;
}

/// `n` spawns of a process that exits at once: the spawn calls alone (the children run after
/// the clock stops, as in workloads W1 and W2, where spawn returns without waiting).
async fn spawn_only(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        spawn(async {});
    }
    let elapsed = start.elapsed();
    drain().await;
    elapsed
}

/// `n` spawns of a process that exits at once, until they have run and exited: until the
/// sentinel spawned after them has run. Those left on this worker have all run by then; a batch
/// long enough for the other worker to steal part of it is drained by both at once.
async fn spawn_run_exit(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        spawn(async {});
    }
    drain().await;
    start.elapsed()
}

/// `n` messages a process sends to itself, each received before the next is sent.
async fn to_self(n: u64) -> Duration {
    let me = self_pid();
    let start = Instant::now();
    for i in 0..n {
        me.send(i);
        let got = recv::<u64>().await;
        debug_assert_eq!(got, i);
    }
    start.elapsed()
}

/// Answers each `u64` with the next one, to `to`.
async fn echo_plus_one(to: Pid) {
    loop {
        let x: u64 = recv().await;
        to.send(x + 1);
    }
}

/// `n` ping-pongs with a second process: a `u64` there and one back (two messages).
async fn ping_pong(n: u64) -> Duration {
    let me = self_pid();
    let peer = spawn(echo_plus_one(me));
    let start = Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        peer.send(x);
        x = recv::<u64>().await;
    }
    let elapsed = start.elapsed();
    assert_eq!(x, n);
    exit(peer, ExitReason::Kill);
    elapsed
}

/// The increment server for the runtime's `call`.
async fn call_server() {
    loop {
        let c: Call<u64, u64> = recv().await;
        c.reply_to.reply(c.request + 1);
    }
}

/// `n` sequential `call`s (fresh tag, monitor, deadline, demonitor each).
async fn calls(server: Pid, n: u64) -> Duration {
    let start = Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        x = call::<u64, u64>(server, x, TIMEOUT).await.expect("call");
    }
    let elapsed = start.elapsed();
    assert_eq!(x, n);
    elapsed
}

/// The increment server as a `GenServer`.
struct Counter;

impl GenServer for Counter {
    type Call = u64;
    type Reply = u64;
    type Cast = ();

    async fn handle_call(&mut self, n: u64, _from: ReplyTo<u64>) -> CallReply<u64> {
        CallReply::Reply(n + 1)
    }
}

/// `n` sequential `GenServer` calls.
async fn gen_server_calls(server: ServerRef<Counter>, n: u64) -> Duration {
    let start = Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        x = server.call(x, TIMEOUT).await.expect("call");
    }
    let elapsed = start.elapsed();
    assert_eq!(x, n);
    elapsed
}

fn spawn_benches(c: &mut Criterion) {
    let rt = Runtime::new();
    let mut group = c.benchmark_group("spawn");
    group.bench_function("spawn", |b| b.iter_custom(|iters| rt.block_on(spawn_only(iters))));
    group.bench_function("spawn_run_exit", |b| b.iter_custom(|iters| rt.block_on(spawn_run_exit(iters))));
    group.finish();
}

fn send_recv_benches(c: &mut Criterion) {
    let rt = Runtime::new();
    let mut group = c.benchmark_group("send_recv");
    group.bench_function("to_self", |b| b.iter_custom(|iters| rt.block_on(to_self(iters))));
    group.bench_function("ping_pong", |b| b.iter_custom(|iters| rt.block_on(ping_pong(iters))));
    group.finish();
}

fn local_call_benches(c: &mut Criterion) {
    let rt = Runtime::new();
    let hand = rt.spawn(increment_server());
    let plain = rt.spawn(call_server());
    let gen = rt.block_on(async { gen_server::start(Counter).await.expect("start the GenServer") });
    let stub = rt.spawn(IncrServer::serve(Increment));

    let mut group = c.benchmark_group("local_call");
    group.bench_function("hand_written", |b| b.iter_custom(|iters| rt.block_on(hand_round_trips(hand, iters))));
    group.bench_function("call", |b| b.iter_custom(|iters| rt.block_on(calls(plain, iters))));
    group.bench_function("gen_server", |b| b.iter_custom(|iters| rt.block_on(gen_server_calls(gen, iters))));
    group.bench_function("stub", |b| b.iter_custom(|iters| rt.block_on(stub_calls(IncrClient::new(stub), iters))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = spawn_benches, send_recv_benches, local_call_benches
}
criterion_main!(benches);
