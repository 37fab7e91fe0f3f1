//! The local increment server under load (workloads W3a and W3b of
//! `../shared/anchors/README.md`).
//!
//! The server loops: receive `(From, N)`, send `N + 1` to `From`.
//! - W3a: one client makes K sequential calls, each sending the previous
//!   reply; prints ns per round trip.
//! - W3b: C clients, each making `calls` sequential calls to the one
//!   server; the clients are spawned first and wait for `Go`; timed from
//!   the first `Go` to the last `ClientDone`; prints calls per second.
//!
//! ```text
//! cargo run --release --example local_call -- [--k 1000000] [--clients 100] [--calls 10000] [--workers K]
//! ```

mod common;

use std::time::{Duration, Instant};

use krarup::prelude::*;

async fn w3a(k: usize) -> Duration {
    let server = spawn(common::increment_server());
    let t0 = Instant::now();
    let n = common::increment_calls(server, k).await;
    let elapsed = t0.elapsed();
    assert_eq!(n, k as u64);
    elapsed
}

async fn w3b(clients: usize, calls: usize) -> Duration {
    let server = spawn(common::increment_server());
    common::w3b_clients(clients, calls, || common::increment_calls(server, calls)).await
}

fn main() {
    let flags =
        common::Flags::parse("usage: local_call [--k K] [--clients C] [--calls N] [--workers W] [--only w3a|w3b]");
    let k = flags.usize("k", 1_000_000);
    let clients = flags.usize("clients", 100);
    let calls = flags.usize("calls", 10_000);
    let mut builder = Runtime::builder();
    if flags.has("workers") {
        builder = builder.workers(flags.usize("workers", 1));
    }
    let rt = builder.build().expect("start the runtime");
    let only = flags.str("only").unwrap_or("");
    if only != "w3b" {
        let t = rt.block_on(w3a(k));
        let ns = common::ns_per(t, k);
        println!("[krarup] W3a incr server, 1 client, k={k}: {ns:.1} ns/round trip ({t:?})");
        common::result("W3a", &[("k", k.to_string()), ("ns_per_rt", common::fmt_num(ns))]);
    }
    if only != "w3a" {
        let t = rt.block_on(w3b(clients, calls));
        let cps = (clients * calls) as f64 / t.as_secs_f64();
        println!("[krarup] W3b incr server, {clients} clients x {calls} calls: {cps:.0} calls/s ({t:?})");
        common::result(
            "W3b",
            &[("clients", clients.to_string()), ("calls", calls.to_string()), ("calls_per_s", format!("{cps:.0}"))],
        );
    }
}
