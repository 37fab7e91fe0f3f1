//! Micro-benchmarks of the runtime's basic operations, timed in-process
//! (no harness): spawn, local send + receive, and a local call round trip.
//!
//! ```text
//! cargo bench --bench micro
//! ```
//!
//! Each figure is the median of 5 repetitions. The macro workloads (ring,
//! a million processes, increment server under load) are the examples
//! `ring`, `spawn` and `local_call`; `benches/compare.sh` runs them beside
//! the reference anchors.

use std::time::Instant;

use krarup::prelude::*;

const REPS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// ns per spawn of a process that exits at once.
async fn spawn_exit(n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        spawn(async {});
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// ns per message a process sends to itself and receives.
async fn send_recv(n: usize) -> f64 {
    let me = self_pid();
    let t = Instant::now();
    for i in 0..n as u64 {
        me.send(i);
        let got = recv::<u64>().await;
        debug_assert_eq!(got, i);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// The increment server.
async fn server() {
    loop {
        let (from, x): (Pid, u64) = recv().await;
        from.send(x + 1);
    }
}

/// ns per request/reply round trip to a local server.
async fn call(n: usize) -> f64 {
    let server = spawn(server());
    let me = self_pid();
    let t = Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        server.send((me, x));
        x = recv::<u64>().await;
    }
    assert_eq!(x, n as u64);
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick.
    let quick = std::env::args().any(|a| a == "--test" || a == "--quick");
    let n = if quick { 1_000 } else { 200_000 };
    let rt = Runtime::new();
    let spawn_ns = median((0..REPS).map(|_| rt.block_on(spawn_exit(n))).collect());
    let send_ns = median((0..REPS).map(|_| rt.block_on(send_recv(n))).collect());
    let call_ns = median((0..REPS).map(|_| rt.block_on(call(n))).collect());
    println!("spawn+exit   {spawn_ns:>8.1} ns");
    println!("send+recv    {send_ns:>8.1} ns");
    println!("call         {call_ns:>8.1} ns");
}
