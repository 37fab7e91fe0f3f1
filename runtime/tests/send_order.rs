//! Message order: messages from one sender to one receiver arrive in the
//! order sent, none lost, whatever the other senders do.

mod util;

use std::thread;

use krarup_runtime::{monitor, recv, self_pid, spawn, try_recv, yield_now, Down, Pid};
use serde::{Deserialize, Serialize};
use util::{expect_msg, recv_bounded, runtime};

/// Message `seq` of sender `sender`.
#[derive(Debug, Serialize, Deserialize)]
struct Numbered {
    sender: u32,
    seq: u64,
}

/// Checks each message against the next expected number of its sender.
#[derive(Debug)]
struct PerSender {
    next: Vec<u64>,
}

impl PerSender {
    fn new(senders: u32) -> PerSender {
        PerSender { next: vec![0; senders as usize] }
    }

    fn check(&mut self, msg: &Numbered) {
        let next = &mut self.next[msg.sender as usize];
        assert_eq!(msg.seq, *next, "sender {} skipped or reordered a message", msg.sender);
        *next += 1;
    }
}

#[test]
fn messages_from_each_sender_process_arrive_in_order() {
    const SENDERS: u32 = 8;
    const COUNT: u64 = 5_000;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let mut senders = Vec::new();
        for sender in 0..SENDERS {
            senders.push(spawn(async move {
                for seq in 0..COUNT {
                    me.send(Numbered { sender, seq });
                    // Let the other senders (and the other worker) interleave.
                    if seq % 97 == 0 {
                        yield_now().await;
                    }
                }
            }));
        }
        let mut order = PerSender::new(SENDERS);
        for _ in 0..u64::from(SENDERS) * COUNT {
            order.check(&recv_bounded::<Numbered>().await);
        }
        assert!(order.next.iter().all(|&n| n == COUNT));
        // Once every sender is dead (its Down comes after its messages),
        // nothing more may be waiting: no duplicates.
        for pid in senders {
            let reference = monitor(pid);
            let down = util::down_of(reference).await;
            assert!(down.reason.is_normal() || down.reason == krarup_runtime::ExitReason::NoProc);
        }
        assert!(try_recv::<Numbered>().is_none(), "a message was delivered twice");
    });
}

#[test]
fn messages_from_each_plain_thread_to_a_mailbox_arrive_in_order() {
    const SENDERS: u32 = 4;
    const COUNT: u64 = 10_000;
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let to = mailbox.pid();
    let threads: Vec<_> = (0..SENDERS)
        .map(|sender| {
            thread::spawn(move || {
                for seq in 0..COUNT {
                    to.send(Numbered { sender, seq });
                }
            })
        })
        .collect();
    let mut order = PerSender::new(SENDERS);
    for _ in 0..u64::from(SENDERS) * COUNT {
        order.check(&expect_msg::<Numbered>(&mut mailbox));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(mailbox.try_recv::<Numbered>().is_none(), "a message was delivered twice");
}

#[test]
fn messages_from_each_plain_thread_to_a_process_arrive_in_order() {
    const SENDERS: u32 = 4;
    const COUNT: u64 = 10_000;
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    let receiver = rt.spawn(async move {
        let mut order = PerSender::new(SENDERS);
        for _ in 0..u64::from(SENDERS) * COUNT {
            order.check(&recv_bounded::<Numbered>().await);
        }
        report.send(order.next);
    });
    let threads: Vec<_> = (0..SENDERS)
        .map(|sender| {
            thread::spawn(move || {
                for seq in 0..COUNT {
                    receiver.send(Numbered { sender, seq });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // A panic in the receiver (an out-of-order message) means no report.
    let counts: Vec<u64> = expect_msg(&mut mailbox);
    assert_eq!(counts, vec![COUNT; SENDERS as usize]);
}

#[test]
fn messages_between_two_processes_on_different_workers_keep_their_order_both_ways() {
    const COUNT: u64 = 20_000;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let echo = spawn(async move {
            // Echo every number back, then report the count.
            for expected in 0..COUNT {
                let (from, n): (Pid, u64) = recv().await;
                assert_eq!(n, expected, "echo got a message out of order");
                from.send(n);
            }
        });
        let done = monitor(echo);
        for n in 0..COUNT {
            echo.send((me, n));
        }
        for expected in 0..COUNT {
            assert_eq!(recv_bounded::<u64>().await, expected);
        }
        let down: Down = util::down_of(done).await;
        assert!(down.reason.is_normal(), "echo exited with {}", down.reason);
    });
}
