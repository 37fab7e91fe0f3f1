//! Scheduling: one busy process cannot starve the others (receive budget,
//! run-next streak limit, inject queue checks), and idle workers take
//! work from a worker that is stuck in a long poll.

mod util;

use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};

use krarup_runtime::{recv, self_pid, spawn, try_recv, yield_now, Mailbox, Pid};
use serde::{Deserialize, Serialize};
use util::{expect_msg, meet, runtime, TIMEOUT};

#[derive(Debug, Serialize, Deserialize)]
struct Tick;

#[derive(Debug, Serialize, Deserialize)]
struct Stop;

/// What a process reports to the test's mailbox.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Report {
    Started,
    Ran(u32),
    Stopped,
}

/// Receives the next report, bounded.
fn report(mailbox: &mut Mailbox) -> Report {
    expect_msg(mailbox)
}

/// A process that always finds a message: it sends itself a `Tick` and
/// receives it, forever, until it finds a `Stop`.
async fn always_busy(report: Pid) {
    let me = self_pid();
    report.send(Report::Started);
    loop {
        me.send(Tick);
        let Tick = recv().await;
        if try_recv::<Stop>().is_some() {
            report.send(Report::Stopped);
            return;
        }
    }
}

#[test]
fn a_process_that_always_finds_messages_still_lets_others_run() {
    let rt = runtime(1);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    let busy = rt.spawn(always_busy(to));
    assert_eq!(report(&mut mailbox), Report::Started);
    // The only worker is in `busy`'s loop now; these need it too.
    rt.spawn(async move { to.send(Report::Ran(1)) });
    assert_eq!(report(&mut mailbox), Report::Ran(1));
    rt.block_on(async move {
        spawn(async move { to.send(Report::Ran(2)) });
    });
    assert_eq!(report(&mut mailbox), Report::Ran(2));
    busy.send(Stop);
    assert_eq!(report(&mut mailbox), Report::Stopped);
}

/// Plays ping-pong with `partner` forever (each wakes the other into the
/// worker's run-next slot). The player that is not given its partner at
/// spawn serves, once told who the partner is. Whoever gets the ball for
/// the 1,000th time reports and spawns a process, which must get to run.
async fn player(partner: Option<Pid>, report: Pid) {
    let partner = match partner {
        Some(partner) => partner,
        None => {
            let partner = util::recv_bounded::<Pid>().await;
            partner.send(0u64);
            partner
        }
    };
    loop {
        let n: u64 = recv().await;
        if n == 1_000 {
            report.send(Report::Started);
            spawn(async move { report.send(Report::Ran(1)) });
        }
        if try_recv::<Stop>().is_some() {
            report.send(Report::Stopped);
            return;
        }
        partner.send(n + 1);
    }
}

#[test]
fn a_ping_pong_pair_does_not_starve_other_processes() {
    let rt = runtime(1);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    let first = rt.spawn(player(None, to));
    let second = rt.spawn(player(Some(first), to));
    first.send(second);
    assert_eq!(report(&mut mailbox), Report::Started);
    // Spawned by a player, it waits in the local queue behind the pair.
    assert_eq!(report(&mut mailbox), Report::Ran(1));
    // Spawned from outside, it waits in the inject queue.
    rt.spawn(async move { to.send(Report::Ran(2)) });
    assert_eq!(report(&mut mailbox), Report::Ran(2));
    first.send(Stop);
    assert_eq!(report(&mut mailbox), Report::Stopped);
}

#[test]
fn a_process_that_yields_in_a_loop_lets_others_run() {
    let rt = runtime(1);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    let spinner = rt.spawn(async move {
        to.send(Report::Started);
        while try_recv::<Stop>().is_none() {
            yield_now().await;
        }
        to.send(Report::Stopped);
    });
    assert_eq!(report(&mut mailbox), Report::Started);
    rt.spawn(async move { to.send(Report::Ran(1)) });
    assert_eq!(report(&mut mailbox), Report::Ran(1));
    spinner.send(Stop);
    assert_eq!(report(&mut mailbox), Report::Stopped);
}

#[test]
fn two_workers_run_two_processes_at_the_same_time() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    let arrived = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let arrived = arrived.clone();
        // Each blocks its worker until the other has started.
        rt.spawn(async move { to.send(meet(&arrived, 2)) });
    }
    assert!(expect_msg::<bool>(&mut mailbox), "the two processes did not run in parallel");
    assert!(expect_msg::<bool>(&mut mailbox));
}

#[test]
fn processes_queued_on_a_worker_stuck_in_a_long_poll_are_taken_by_an_idle_worker() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    rt.spawn(async move {
        let (tx, rx) = mpsc::channel();
        // Queued on this worker, which then does not come back to it...
        spawn(async move { tx.send(()).unwrap() });
        // ...because this poll blocks until that process has run.
        to.send(rx.recv_timeout(TIMEOUT).is_ok());
    });
    assert!(expect_msg::<bool>(&mut mailbox), "the queued process waited for the stuck worker");
}
