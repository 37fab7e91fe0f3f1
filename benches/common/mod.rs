//! What the benches share: the increment server of workload W3 (`../shared/anchors/README.md`)
//! three ways — written by hand, for the runtime's `call`, and as an RPC service — and the
//! criterion settings.
//!
//! Criterion drives a plain closure, and a krarup process is a future on a runtime. Every bench
//! here is therefore an `iter_custom`: one `Runtime::block_on` per sample runs the sample's
//! `iters` operations inside one process and returns the time they took, measured in that
//! process. The cost of `block_on` itself (spawning the process, waking a worker, waking the
//! bench thread again) stays outside the measured time, so sub-microsecond operations are not
//! swamped by it.
#![allow(dead_code)] // each bench uses part of this

use std::time::Duration;

use criterion::Criterion;
use krarup::prelude::*;

/// The deadline of every call: never reached unless something is broken.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Criterion's settings for these benches: 3 s of measurement after 1 s of warm-up per bench,
/// 50 samples (the defaults are 5 s and 100); enough for a stable median on an idle machine,
/// and the whole of `cargo bench` stays near two minutes.
pub fn criterion() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

/// The increment server written by hand (W3): `{From, N}` → `From ! N + 1`.
pub async fn increment_server() {
    loop {
        let (from, n): (Pid, u64) = recv().await;
        from.send(n + 1);
    }
}

/// `n` sequential round trips to a hand-written increment server, each sending the previous
/// reply (W3a); the time they took.
pub async fn hand_round_trips(server: Pid, n: u64) -> Duration {
    let me = self_pid();
    let start = std::time::Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        server.send((me, x));
        x = recv::<u64>().await;
    }
    let elapsed = start.elapsed();
    assert_eq!(x, n);
    elapsed
}

/// The increment server as an interface definition.
#[krarup::service]
pub trait Incr {
    /// `n + 1`.
    fn inc(&mut self, n: u64) -> u64;
}

/// The RPC server's state: none.
pub struct Increment;

impl Incr for Increment {
    fn inc(&mut self, n: u64) -> u64 {
        n + 1
    }
}

/// `n` sequential `inc` calls through the client stub; the time they took.
pub async fn stub_calls(client: IncrClient, n: u64) -> Duration {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    for _ in 0..n {
        x = client.inc(x).await.expect("inc");
    }
    let elapsed = start.elapsed();
    assert_eq!(x, n);
    elapsed
}
