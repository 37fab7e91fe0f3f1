//! The ring benchmark (workload W1 of `../shared/anchors/README.md`).
//!
//! N processes in a ring pass a token M times around: N·M hops. Four
//! phases, as the anchors define them:
//! 1. spawn: main spawns N processes, each waiting for its first message;
//! 2. link: main sends process i the Pid of process i+1 (mod N), each
//!    answers `Ready`, main waits for N of them;
//! 3. token: main sends N·M to process 0; a process that receives v > 0
//!    passes v−1 on; the one that receives 0 tells main `Done`;
//! 4. stop: main sends `Stop` to every process.
//!
//! ```text
//! cargo run --release --example ring -- --processes 1000 --rounds 1000 [--workers K]
//! ```
//!
//! Prints a summary and
//! `RESULT workload=W1 impl=krarup n=.. m=.. spawn_ns=.. link_ns=.. ns_per_hop=.. rss_mb=..`.

mod common;

use std::time::Instant;

use krarup::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum RingMsg {
    Next(Pid),
    Token(u64),
    Stop,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum Ctl {
    Ready,
    Done,
}

/// One member of the ring.
async fn node(main: Pid) {
    let next = match recv::<RingMsg>().await {
        RingMsg::Next(next) => next,
        _ => return,
    };
    main.send(Ctl::Ready);
    loop {
        match recv::<RingMsg>().await {
            RingMsg::Token(0) => main.send(Ctl::Done),
            RingMsg::Token(v) => next.send(RingMsg::Token(v - 1)),
            RingMsg::Stop => return,
            RingMsg::Next(_) => unreachable!("linked twice"),
        }
    }
}

/// The benchmark's main process: returns (spawn, link, token) durations.
async fn ring(n: usize, m: usize) -> [std::time::Duration; 3] {
    let main = self_pid();
    let t0 = Instant::now();
    let pids: Vec<Pid> = (0..n).map(|_| spawn(node(main))).collect();
    let spawned = t0.elapsed();

    let t1 = Instant::now();
    for (i, pid) in pids.iter().enumerate() {
        pid.send(RingMsg::Next(pids[(i + 1) % n]));
    }
    for _ in 0..n {
        assert_eq!(recv::<Ctl>().await, Ctl::Ready);
    }
    let linked = t1.elapsed();

    let t2 = Instant::now();
    pids[0].send(RingMsg::Token((n * m) as u64));
    assert_eq!(recv::<Ctl>().await, Ctl::Done);
    let hops = t2.elapsed();

    for pid in &pids {
        pid.send(RingMsg::Stop);
    }
    [spawned, linked, hops]
}

fn main() {
    let flags = common::Flags::parse("usage: ring [--processes N] [--rounds M] [--workers K]");
    let n = flags.usize("processes", 1000).max(1);
    let m = flags.usize("rounds", 1000);
    let rss0 = common::rss_kb();
    let mut builder = Runtime::builder();
    if flags.has("workers") {
        builder = builder.workers(flags.usize("workers", 1));
    }
    let rt = builder.build().expect("start the runtime");
    let workers = rt.stats().workers;
    let [spawned, linked, hops] = rt.block_on(ring(n, m));
    let peak = common::peak_rss_kb();
    let (spawn_ns, link_ns, hop_ns) =
        (common::ns_per(spawned, n), common::ns_per(linked, n), common::ns_per(hops, n * m));
    println!(
        "[krarup] W1 ring n={n} m={m} workers={workers}: spawn {spawn_ns:.1} ns/proc, link {link_ns:.1} ns/proc, \
         {hop_ns:.1} ns/hop ({} hops in {hops:?}), peak RSS {:.1} MB",
        n * m,
        peak as f64 / 1024.0
    );
    common::result(
        "W1",
        &[
            ("n", n.to_string()),
            ("m", m.to_string()),
            ("spawn_ns", common::fmt_num(spawn_ns)),
            ("link_ns", common::fmt_num(link_ns)),
            ("ns_per_hop", common::fmt_num(hop_ns)),
            ("rss_mb", common::fmt_num(peak as f64 / 1024.0)),
            ("rss0_mb", common::fmt_num(rss0 as f64 / 1024.0)),
        ],
    );
}
