//! Selective receive: `recv` by type and `receive!` by pattern and guard
//! take the oldest matching message and leave every other one in place,
//! in order.

mod util;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use krarup_runtime::{
    call_start, monitor, receive, recv_local, self_pid, send_local, sleep, spawn, try_recv, Call, ExitReason, Pid,
};
use serde::{Deserialize, Serialize};
use util::{down_of, recv_bounded, release, runtime, spawn_held, TIMEOUT};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct A(u32);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct B(u32);

#[derive(Debug, Serialize, Deserialize)]
struct Stop;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Add(i64),
    Get(Pid),
    Stop,
}

/// Inside a process: every `A` and `B` in the mailbox, as `('a'|'b', n)`,
/// oldest first, without waiting.
async fn drain_a_and_b() -> Vec<(char, u32)> {
    let mut left = Vec::new();
    loop {
        receive! {
            A(n): A => left.push(('a', n)),
            B(n): B => left.push(('b', n)),
            after Duration::ZERO => return left,
        }
    }
}

#[test]
fn receiving_one_type_first_leaves_the_other_type_in_order() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in 1..=3 {
            me.send(A(n));
            me.send(B(n));
        }
        for n in 1..=3 {
            assert_eq!(recv_bounded::<B>().await, B(n));
        }
        for n in 1..=3 {
            assert_eq!(recv_bounded::<A>().await, A(n));
        }
        assert!(try_recv::<A>().is_none());
    });
}

#[test]
fn receive_macro_takes_one_type_and_leaves_the_other_in_order() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in 1..=3 {
            me.send(A(n));
            me.send(B(n));
        }
        for n in 1..=3 {
            let got = receive! {
                B(m): B => m,
                after TIMEOUT => panic!("no B"),
            };
            assert_eq!(got, n);
        }
        assert_eq!(drain_a_and_b().await, vec![('a', 1), ('a', 2), ('a', 3)]);
    });
}

#[test]
fn taking_a_message_from_the_middle_keeps_the_rest_in_order() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(A(1));
        me.send(B(1));
        me.send(A(2));
        me.send(B(2));
        me.send(A(3));
        let got = receive! {
            A(n): A if n == 2 => n,
            after TIMEOUT => panic!("A(2) not found"),
        };
        assert_eq!(got, 2);
        assert_eq!(drain_a_and_b().await, vec![('a', 1), ('b', 1), ('b', 2), ('a', 3)]);
    });
}

#[test]
fn the_oldest_message_any_clause_accepts_is_taken_first() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(B(1));
        me.send(A(1));
        // The A clause comes first, but the B is older: mailbox order wins.
        let first = receive! {
            A(n): A => ('a', n),
            B(n): B => ('b', n),
            after TIMEOUT => panic!("nothing"),
        };
        assert_eq!(first, ('b', 1));
    });
}

#[test]
fn the_first_clause_that_accepts_a_message_runs() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(5u32);
        me.send(50u32);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let which = receive! {
                n: u32 if n > 10 => ("big", n),
                n: u32 => ("any", n),
                after TIMEOUT => panic!("nothing"),
            };
            seen.push(which);
        }
        assert_eq!(seen, vec![("any", 5), ("big", 50)]);
    });
}

#[test]
fn a_guard_skips_messages_and_leaves_them_in_order() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in [-1i64, 5, -2, 6] {
            me.send((me, n));
        }
        for expected in [5, 6] {
            let n = receive! {
                (_from, n): (Pid, i64) if n >= 0 => n,
                after TIMEOUT => panic!("no non-negative request"),
            };
            assert_eq!(n, expected);
        }
        // A guard that nothing passes times out and takes nothing.
        let none = receive! {
            (_from, n): (Pid, i64) if n >= 0 => Some(n),
            after Duration::from_millis(5) => None,
        };
        assert_eq!(none, None);
        assert_eq!(try_recv::<(Pid, i64)>(), Some((me, -1)));
        assert_eq!(try_recv::<(Pid, i64)>(), Some((me, -2)));
        assert_eq!(try_recv::<(Pid, i64)>(), None);
    });
}

#[test]
fn a_unit_struct_clause_matches_that_message() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(A(1));
        me.send(Stop);
        me.send(A(2));
        let mut seen = Vec::new();
        loop {
            receive! {
                A(n): A => seen.push(n),
                Stop => break,
                after TIMEOUT => panic!("no Stop"),
            }
        }
        assert_eq!(seen, vec![1]);
        assert_eq!(try_recv::<A>(), Some(A(2)), "the message after Stop stays");
    });
}

#[test]
fn an_enum_variant_pattern_takes_only_that_variant() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        me.send(Msg::Add(1));
        me.send(Msg::Get(me));
        me.send(Msg::Add(2));
        me.send(Msg::Stop);
        me.send(Msg::Add(40));
        let mut total = 0;
        loop {
            receive! {
                Msg::Add(n): Msg => total += n,
                Msg::Stop: Msg => break,
                after TIMEOUT => panic!("no Stop"),
            }
        }
        assert_eq!(total, 3);
        // The skipped variant and the message after Stop stay, in order.
        assert_eq!(recv_bounded::<Msg>().await, Msg::Get(me));
        assert_eq!(recv_bounded::<Msg>().await, Msg::Add(40));
        assert_eq!(try_recv::<Msg>(), None);
    });
}

/// The first positive `i64` in the mailbox; the others are consumed.
async fn first_positive() -> i64 {
    loop {
        receive! {
            n: i64 if n > 0 => return n,
            _n: i64 => continue,
            after TIMEOUT => panic!("no positive number"),
        }
    }
}

fn checked(n: u32) -> Result<u32, String> {
    if n < 100 {
        Ok(n)
    } else {
        Err(format!("{n} is too big"))
    }
}

/// A `receive!` whose body uses `?`.
async fn receive_checked() -> Result<u32, String> {
    let n = receive! {
        n: u32 => checked(n)?,
        after TIMEOUT => return Err("nothing".into()),
    };
    Ok(n + 1)
}

#[test]
fn receive_bodies_can_return_break_continue_await_and_use_the_question_mark() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in [-3i64, 0, 7, 8] {
            me.send(n);
        }
        assert_eq!(first_positive().await, 7);
        assert_eq!(try_recv::<i64>(), Some(8));

        me.send(41u32);
        assert_eq!(receive_checked().await, Ok(42));
        me.send(500u32);
        assert_eq!(receive_checked().await, Err("500 is too big".to_string()));

        // A body can await: sleep, and receive again.
        me.send("ask".to_string());
        me.send(41u64);
        let answer = receive! {
            _question: String => {
                sleep(Duration::from_millis(1)).await;
                recv_bounded::<u64>().await + 1
            }
            after TIMEOUT => panic!("no question"),
        };
        assert_eq!(answer, 42);

        let mut rounds = 0u32;
        let counted = loop {
            me.send(rounds);
            receive! {
                n: u32 if n == 3 => break n,
                _n: u32 => rounds += 1,
                after TIMEOUT => panic!("lost my own message"),
            }
        };
        assert_eq!(counted, 3);
    });
}

#[test]
fn a_waiting_receive_finds_its_message_behind_a_stream_of_others() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        spawn(async move {
            for n in 0..1_000 {
                me.send(A(n));
                if n % 100 == 0 {
                    krarup_runtime::yield_now().await;
                }
            }
            me.send(B(0));
        });
        // Waits (repeatedly woken by As) until the B arrives.
        assert_eq!(recv_bounded::<B>().await, B(0));
        for n in 0..1_000 {
            assert_eq!(try_recv::<A>(), Some(A(n)));
        }
        assert_eq!(try_recv::<A>(), None);
    });
}

#[test]
fn non_serializable_messages_are_received_with_recv_local_and_receive() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let counter = Arc::new(AtomicU32::new(0));
        send_local(me, counter.clone());
        me.send_local(Box::new(|| 7u32) as Box<dyn FnOnce() -> u32 + Send>);
        let got: Box<dyn FnOnce() -> u32 + Send> = recv_local().await;
        assert_eq!(got(), 7);
        let shared = receive! {
            c: Arc<AtomicU32> => c,
            after TIMEOUT => panic!("no Arc"),
        };
        shared.fetch_add(1, Ordering::SeqCst);
        assert_eq!(counter.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_guard_that_starts_a_receive_crashes_its_process() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {
            self_pid().send(1u32);
            receive! {
                _n: u32 if try_recv::<u8>().is_none() => {}
                after TIMEOUT => {}
            }
        });
        let reference = monitor(child);
        release(child);
        match down_of(reference).await.reason {
            ExitReason::Panic(msg) => assert!(msg.contains("guard"), "unexpected panic message: {msg}"),
            other => panic!("expected a panic, got {other}"),
        }
    });
}

/// Abandoning a call (dropping it) removes its reply from the mailbox if the reply has come; a
/// guard, whose receive holds the mailbox while it runs, must not. The process crashes with a
/// message that says so, rather than the receive taking another message than the one it matched.
#[test]
fn a_guard_that_abandons_a_call_crashes_its_process() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn_held(async {
            let me = self_pid();
            // Replies, then sends what the receive below looks at: the reply comes first.
            let server = spawn(async move {
                let c: Call<u64, u64> = recv_bounded().await;
                c.reply_to.reply(c.request + 1);
                me.send(1u32);
                me.send("two".to_string());
            });
            let mut pending = Some(call_start::<u64, u64>(server, 1));
            receive! {
                n: u32 if { drop(pending.take()); n == 1 } => assert_eq!(n, 1),
                s: String => panic!("took {s:?}, not the matched u32"),
                after TIMEOUT => panic!("nothing came"),
            }
        });
        let reference = monitor(child);
        release(child);
        match down_of(reference).await.reason {
            ExitReason::Panic(msg) => assert!(msg.contains("guard"), "unexpected panic message: {msg}"),
            other => panic!("expected a panic, got {other}"),
        }
    });
}

#[test]
fn a_panicking_guard_crashes_only_its_process() {
    // One worker: the process that receives next runs on the same thread
    // whose guard panicked.
    let rt = runtime(1);
    rt.block_on(async {
        let child = spawn_held(async {
            self_pid().send(1u32);
            receive! {
                n: u32 if n == 1 && panic!("guard exploded") => assert_eq!(n, 1),
                after TIMEOUT => {}
            }
        });
        let reference = monitor(child);
        release(child);
        assert_eq!(down_of(reference).await.reason, ExitReason::Panic("guard exploded".into()));
        // Receiving (with guards) still works on this worker.
        let me = self_pid();
        me.send(2u32);
        let got = receive! {
            n: u32 if n == 2 => n,
            after TIMEOUT => panic!("no message"),
        };
        assert_eq!(got, 2);
    });
}

#[test]
fn a_mailbox_receive_by_one_type_leaves_other_types_receivable() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let me = mailbox.pid();
    me.send(A(1));
    me.send(B(1));
    me.send(A(2));
    // Looking for a B skips an A; the A must still be there for an A receive.
    assert_eq!(mailbox.try_recv::<B>(), Some(B(1)));
    assert_eq!(mailbox.try_recv::<A>(), Some(A(1)));
    me.send(B(2));
    assert_eq!(mailbox.try_recv::<u64>(), None);
    assert_eq!(mailbox.try_recv::<A>(), Some(A(2)), "a failed receive of another type hid this message");
    assert_eq!(mailbox.try_recv::<B>(), Some(B(2)));
}

/// A receive waiting behind a backlog it has already rejected resumes where
/// it stopped when a new message arrives: each message is offered to the
/// guard about once, not once per arrival (Erlang's save pointer).
#[test]
fn a_waiting_receive_does_not_rescan_its_backlog_for_every_arrival() {
    const BACKLOG: u32 = 200;
    const ARRIVALS: u32 = 50;
    let rt = runtime(1);
    let looked = Arc::new(AtomicU32::new(0));
    let counter = looked.clone();
    let calls = rt.block_on(async move {
        let me = self_pid();
        for n in 0..BACKLOG {
            me.send(A(n));
        }
        // One arrival at a time: the pacer sends the next A only after the
        // receive has looked at the previous one, so each wakes it anew.
        let seen = counter.clone();
        spawn(async move {
            for n in 0..ARRIVALS {
                let before = seen.load(Ordering::SeqCst);
                me.send(A(BACKLOG + n));
                let mut spins = 0u32;
                while seen.load(Ordering::SeqCst) == before {
                    krarup_runtime::yield_now().await;
                    spins += 1;
                    assert!(spins < 1_000_000, "the receive never looked at arrival {n}");
                }
            }
            me.send(B(0));
        });
        let got = receive! {
            A(n): A if { counter.fetch_add(1, Ordering::SeqCst); n == u32::MAX } => n,
            B(_): B => 0,
            after TIMEOUT => panic!("the B never came"),
        };
        assert_eq!(got, 0);
        counter.load(Ordering::SeqCst)
    });
    // Every A is offered to the guard once (and the B's clause once): a
    // rescan per arrival would make this about BACKLOG * ARRIVALS.
    assert!(calls <= BACKLOG + ARRIVALS, "the guard ran {calls} times for {} messages", BACKLOG + ARRIVALS);
    assert!(calls >= BACKLOG + ARRIVALS, "every A must be looked at once, got {calls}");
    assert_eq!(looked.load(Ordering::SeqCst), calls);
}
