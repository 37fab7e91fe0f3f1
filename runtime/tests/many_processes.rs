//! Many processes: spawning is cheap enough for 100,000 in a test, and
//! the classic ring passes a token through thousands of them. (Million-scale
//! numbers are the benchmarks' job.)

mod util;

use krarup_runtime::{recv, self_pid, spawn, Pid};
use util::{recv_bounded, runtime};

#[test]
fn a_hundred_thousand_processes_spawn_and_finish() {
    const PROCESSES: u32 = 100_000;
    let rt = runtime(2);
    rt.block_on(async {
        let parent = self_pid();
        for n in 0..PROCESSES {
            spawn(async move { parent.send(n) });
        }
        let mut seen = vec![false; PROCESSES as usize];
        for _ in 0..PROCESSES {
            let n: u32 = recv_bounded().await;
            assert!(!seen[n as usize], "process {n} reported twice");
            seen[n as usize] = true;
        }
    });
    // None is left behind once the runtime is down.
    assert!(rt.shutdown_timeout(util::TIMEOUT));
    assert_eq!(rt.stats().processes, 0);
}

/// One process of the ring: forwards every token to `next`, counting it
/// down; the token that reaches zero goes to `done`.
async fn ring_node(next: Pid, done: Pid) {
    loop {
        let laps: u32 = recv().await;
        if laps == 0 {
            done.send(());
            return;
        }
        next.send(laps - 1);
    }
}

#[test]
fn a_token_goes_round_a_ring_of_processes() {
    const NODES: u32 = 1_000;
    const HOPS: u32 = 20_000;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // Build the ring back to front: each node knows the next; the last
        // one's successor is the first, which is this process's relay.
        let first = spawn(async move {
            let next: Pid = recv_bounded().await;
            ring_node(next, me).await;
        });
        let mut next = first;
        for _ in 1..NODES {
            next = spawn(ring_node(next, me));
        }
        first.send(next);
        next.send(HOPS);
        let () = recv_bounded().await;
    });
}
