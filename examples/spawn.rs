//! A million waiting processes (workload W2 of `../shared/anchors/README.md`).
//!
//! Main spawns P processes; each increments a shared counter and then
//! waits for a message. Main waits until all P are alive and waiting,
//! measures RSS, then sends each `Stop`; each replies `Done` and exits.
//!
//! ```text
//! cargo run --release --example spawn -- [--processes 1000000] [--workers K]
//! ```
//!
//! Prints `RESULT workload=W2 impl=krarup p=.. spawn_ns=.. bytes_per_proc=.. teardown_ns=..`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use krarup::prelude::*;
use serde::{Deserialize, Serialize};

static READY: AtomicUsize = AtomicUsize::new(0);

/// The anchors' 16-byte message shape (`Stop | Value(u64)`); only `Stop` is sent.
#[derive(Serialize, Deserialize)]
enum Msg {
    Stop,
    #[allow(dead_code)]
    Value(u64),
}

#[derive(Serialize, Deserialize)]
struct Done;

struct Measured {
    spawn: Duration,
    settle: Duration,
    teardown: Duration,
    rss0_kb: u64,
    rss1_kb: u64,
}

async fn waiter(main: Pid) {
    READY.fetch_add(1, Ordering::Relaxed);
    if let Msg::Stop = recv::<Msg>().await {
        main.send(Done);
    }
}

async fn w2(p: usize) -> Measured {
    let main = self_pid();
    let rss0_kb = common::rss_kb();
    let t0 = Instant::now();
    let pids: Vec<Pid> = (0..p).map(|_| spawn(waiter(main))).collect();
    let spawn = t0.elapsed();
    while READY.load(Ordering::Relaxed) < p {
        sleep(Duration::from_millis(1)).await;
    }
    let settle = t0.elapsed();
    let rss1_kb = common::rss_kb();
    let t1 = Instant::now();
    for pid in &pids {
        pid.send(Msg::Stop);
    }
    for _ in 0..p {
        let Done = recv::<Done>().await;
    }
    let teardown = t1.elapsed();
    Measured { spawn, settle, teardown, rss0_kb, rss1_kb }
}

fn main() {
    let flags = common::Flags::parse("usage: spawn [--processes P] [--workers K]");
    let p = flags.usize("processes", 1_000_000).max(1);
    let mut builder = Runtime::builder();
    if flags.has("workers") {
        builder = builder.workers(flags.usize("workers", 1));
    }
    let rt = builder.build().expect("start the runtime");
    let m = rt.block_on(w2(p));
    let peak = common::peak_rss_kb();
    let spawn_ns = common::ns_per(m.spawn, p);
    let bytes = (m.rss1_kb.saturating_sub(m.rss0_kb)) as f64 * 1024.0 / p as f64;
    let teardown_ns = common::ns_per(m.teardown, p);
    println!(
        "[krarup] W2 spawn p={p}: {spawn_ns:.1} ns/spawn (all waiting after {:.1} ms), {bytes:.0} bytes/proc \
         (RSS {:.1} -> {:.1} MB), stop+done {teardown_ns:.1} ns/proc, peak RSS {:.1} MB",
        m.settle.as_secs_f64() * 1e3,
        m.rss0_kb as f64 / 1024.0,
        m.rss1_kb as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    common::result(
        "W2",
        &[
            ("p", p.to_string()),
            ("spawn_ns", common::fmt_num(spawn_ns)),
            ("bytes_per_proc", common::fmt_num(bytes)),
            ("settle_ms", common::fmt_num(m.settle.as_secs_f64() * 1e3)),
            ("teardown_ns", common::fmt_num(teardown_ns)),
            ("rss_mb", common::fmt_num(peak as f64 / 1024.0)),
        ],
    );
}
