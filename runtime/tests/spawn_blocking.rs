//! `spawn_blocking`: blocking work runs on the runtime's pool, off the
//! workers; the awaiting process gets the value, or crashes with the panic.

mod util;

use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};

use krarup_runtime::{monitor, self_pid, spawn, spawn_blocking, ExitReason};
use serde::{Deserialize, Serialize};
use util::{down_of, meet, recv_bounded, release, runtime, spawn_held, TIMEOUT};

#[derive(Debug, Serialize, Deserialize)]
struct Go;

#[test]
fn spawn_blocking_returns_the_closures_value() {
    let rt = runtime(2);
    let (value, worker, pool) = rt.block_on(async {
        let worker = std::thread::current().id();
        let (value, pool) = spawn_blocking(|| (6 * 7, std::thread::current().id())).await;
        (value, worker, pool)
    });
    assert_eq!(value, 42);
    assert_ne!(worker, pool, "the closure ran on the awaiting process's worker");
}

#[test]
fn a_panic_in_spawn_blocking_crashes_the_awaiting_process() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {
            let _: u32 = spawn_blocking(|| panic!("blocking boom")).await;
        });
        let reference = monitor(child);
        release(child);
        assert_eq!(down_of(reference).await.reason, ExitReason::Panic("blocking boom".into()));
    });
}

#[test]
fn a_worker_keeps_running_processes_while_a_blocking_job_waits() {
    // One worker: the job blocks until a process, which needs that worker,
    // unblocks it.
    let rt = runtime(1);
    let got = rt.block_on(async {
        let (tx, rx) = mpsc::channel::<u32>();
        let me = self_pid();
        let unblocker = spawn(async move {
            let _: Go = recv_bounded().await;
            tx.send(5).unwrap();
            me.send(Go);
        });
        let job = spawn_blocking(move || rx.recv_timeout(TIMEOUT).expect("unblocked by a process"));
        unblocker.send(Go);
        let value = job.await;
        let _: Go = recv_bounded().await;
        value
    });
    assert_eq!(got, 5);
}

#[test]
fn blocking_jobs_run_on_their_own_threads_at_once() {
    // Four jobs that can only finish together: each needs its own thread.
    const JOBS: usize = 4;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let arrived = Arc::new(AtomicUsize::new(0));
        for _ in 0..JOBS {
            let arrived = arrived.clone();
            spawn(async move {
                let met = spawn_blocking(move || meet(&arrived, JOBS)).await;
                me.send(met);
            });
        }
        for _ in 0..JOBS {
            assert!(recv_bounded::<bool>().await, "a blocking job waited for a thread");
        }
    });
}
