//! Stale Pids: a Pid names one incarnation of a slot. Once its process has
//! exited and the slot holds a new process, sending to the old Pid drops
//! the message (and counts it); the new process never sees it.

mod util;

use std::collections::{HashMap, HashSet};

use krarup_runtime::{is_alive, mailbox_len, monitor, receive, self_pid, spawn, try_recv, yield_now, Pid};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, expect_msg, recv_bounded, runtime, TIMEOUT};

/// Sent to the stale Pid: must never be received.
#[derive(Debug, Serialize, Deserialize)]
struct Probe;

/// Sent to the new Pid after the probe.
#[derive(Debug, Serialize, Deserialize)]
struct Sentinel;

#[derive(Debug, Serialize, Deserialize)]
struct Quit;

/// A process that reports which of `Probe` or `Sentinel` reached it first
/// (per-sender order: a probe sent before the sentinel would come first).
async fn listener(report: Pid) {
    let what = receive! {
        Probe => "probe",
        Sentinel => "sentinel",
        Quit => return,
        after TIMEOUT => "timeout",
    };
    report.send(what.to_string());
}

/// Spawns listeners and makes them exit until a new one lands in the slot
/// of an earlier, dead one; returns (the dead Pid, the new live Pid).
async fn find_reused_slot(report: Pid) -> (Pid, Pid) {
    let mut dead: HashMap<u32, Pid> = HashMap::new();
    for _ in 0..10_000 {
        let pid = spawn(listener(report));
        if let Some(&old) = dead.get(&pid.index()) {
            return (old, pid);
        }
        // Monitored before it is told to quit: monitoring a process that has already exited
        // gives NoProc, not how it ended.
        let watch = monitor(pid);
        pid.send(Quit);
        assert!(down_of(watch).await.reason.is_normal());
        dead.insert(pid.index(), pid);
    }
    panic!("no slot was reused in 10,000 spawns");
}

#[test]
fn a_stale_pid_does_not_reach_the_new_process_in_its_slot() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    let (stale, new) = rt.block_on(find_reused_slot(report));
    assert_eq!(stale.index(), new.index());
    assert_ne!(stale.serial(), new.serial());
    assert_ne!(stale, new);
    assert!(!is_alive(stale));
    assert!(is_alive(new));
    assert_eq!(mailbox_len(stale), None);

    let dropped = rt.stats().dropped_messages;
    stale.send(Probe);
    assert_eq!(rt.stats().dropped_messages, dropped + 1, "the send to the stale Pid is counted as dropped");
    new.send(Sentinel);
    assert_eq!(expect_msg::<String>(&mut mailbox), "sentinel");
}

#[test]
fn a_stale_pid_sent_to_from_a_process_does_not_reach_the_new_process() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    let dropped = rt.stats().dropped_messages;
    rt.block_on(async move {
        let (stale, new) = find_reused_slot(report).await;
        stale.send(Probe);
        new.send(Sentinel);
    });
    assert_eq!(expect_msg::<String>(&mut mailbox), "sentinel");
    assert_eq!(rt.stats().dropped_messages, dropped + 1);
}

#[test]
fn sending_to_an_exited_process_is_dropped_and_counted() {
    let rt = runtime(2);
    let before = rt.stats().dropped_messages;
    let dead = rt.block_on(async {
        let child = spawn(async {});
        exit_reason(child).await;
        for n in 0..5u32 {
            child.send(n);
        }
        child
    });
    assert!(!is_alive(dead));
    dead.send(5u32);
    assert_eq!(rt.stats().dropped_messages, before + 6);
}

/// What a churning process reports if it receives a probe meant for another.
#[derive(Debug, Serialize, Deserialize)]
struct Misdelivered {
    got: u64,
    mine: u64,
}

/// A probe for process number `.0`.
#[derive(Debug, Serialize, Deserialize)]
struct Tagged(u64);

/// Process number `id` (in slot `index`) is about to exit.
#[derive(Debug, Serialize, Deserialize)]
struct Finished {
    id: u64,
    index: u32,
}

const CHURN: u64 = 3_000;

/// Process number `id` of a chain: spawns the next one (on whichever worker
/// it runs, so slots freed there are reused), tells the spammer about it,
/// then checks every probe it gets for a while and exits.
fn churn(id: u64, parent: Pid, spammer: Pid) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if id + 1 < CHURN {
            let next = spawn(churn(id + 1, parent, spammer));
            spammer.send((id + 1, next));
        }
        for _ in 0..3 {
            yield_now().await;
            while let Some(Tagged(got)) = try_recv::<Tagged>() {
                if got != id {
                    parent.send(Misdelivered { got, mine: id });
                }
            }
        }
        parent.send(Finished { id, index: self_pid().index() });
    })
}

#[test]
fn stale_pids_never_reach_new_processes_while_slots_churn() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // Sends a tagged probe to the last Pids it was told about, again and
        // again, while those processes exit and their slots are reused.
        let spammer = spawn(async move {
            let mut known: Vec<(u64, Pid)> = Vec::new();
            loop {
                receive! {
                    (id, pid): (u64, Pid) => known.push((id, pid)),
                    Quit => break,
                    after TIMEOUT => panic!("spammer was never stopped"),
                }
                let from = known.len().saturating_sub(32);
                for &(id, pid) in &known[from..] {
                    pid.send(Tagged(id));
                }
            }
        });
        let first = spawn(churn(0, me, spammer));
        spammer.send((0u64, first));
        let mut indices = HashSet::new();
        let mut finished = HashSet::new();
        while (finished.len() as u64) < CHURN {
            let f: Finished = recv_bounded().await;
            assert!(finished.insert(f.id), "process {} finished twice", f.id);
            indices.insert(f.index);
        }
        spammer.send(Quit);
        // Each process reported misdeliveries before it finished.
        if let Some(m) = try_recv::<Misdelivered>() {
            panic!("process {} received the probe meant for {}", m.mine, m.got);
        }
        assert!(
            (indices.len() as u64) < CHURN / 2,
            "slots were rarely reused ({} slots); the test proved little",
            indices.len()
        );
    });
}
