//! Two (and three) nodes in one test process: sends, names, Pids in messages, per-pair order,
//! remote links, exit signals, monitors, `GenServer::call`, and busy-port backpressure.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{echo, expect_msg, expect_msg_within, pair, recv_bounded, remote_pid, round_trip, Ping, Pong, Quit, Side};
use krarup_net::NodeConfig;
use krarup_runtime::{
    demonitor, exit, gen_server, link, monitor, self_pid, send_named_at, trap_exit, try_recv, CallReply, Down, Exit,
    ExitReason, GenServer, ReplyTo, ServerRef,
};
use serde::{Deserialize, Serialize};

use crate::common::TIMEOUT;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Text(String);

fn text(s: &str) -> Text {
    Text(s.to_owned())
}

/// A heartbeat bound that no test here lasts a quarter of (a node ticks after a quarter of it),
/// and short enough that a node's I/O thread, which checks its timers eight times per bound,
/// notices its runtime is gone soon after the test.
const NO_TICKS: Duration = Duration::from_secs(60);

#[test]
fn send_reaches_a_remote_process_both_ways() {
    // No heartbeat ticks while the test runs (a tick is a frame in too, and a loaded machine can
    // make the test last past the default tick interval): a frame b reads is the message.
    let quiet = |name: &str| NodeConfig::new(format!("{name}@127.0.0.1:0"), common::COOKIE).heartbeat(NO_TICKS);
    let (a, b) = (Side::with(quiet("a")), Side::with(quiet("b")));
    a.node.connect(b.name()).expect("a connects to b");
    let mut inbox_a = a.rt.mailbox();
    let mut inbox_b = b.rt.mailbox();
    let b_inbox_at_a = remote_pid(inbox_b.pid(), &b, &a);
    let a_inbox_at_b = remote_pid(inbox_a.pid(), &a, &b);
    let frames_before = b.node.stats().frames_in;

    a.rt.block_on(async move { b_inbox_at_a.send(text("from a")) });
    assert_eq!(expect_msg::<Text>(&mut inbox_b), text("from a"));
    assert!(b.node.stats().frames_in > frames_before, "the message came over the network");

    b.rt.block_on(async move { a_inbox_at_b.send(text("from b")) });
    assert_eq!(expect_msg::<Text>(&mut inbox_a), text("from b"));

    // And from a plain thread, not only from a process.
    b_inbox_at_a.send(text("from a's test thread"));
    assert_eq!(expect_msg::<Text>(&mut inbox_b), text("from a's test thread"));
}

#[test]
fn send_named_at_reaches_the_registered_process() {
    let (a, b) = pair();
    let mut inbox = b.rt.mailbox();
    b.rt.register("inbox", inbox.pid()).unwrap();
    let b_name = b.name().to_owned();

    a.rt.block_on(async move {
        send_named_at("nobody", &b_name, text("to a name nobody has"));
        send_named_at("inbox", &b_name, text("from a process"));
    });
    a.rt.send_named_at("inbox", b.name(), text("from outside the runtime"));

    assert_eq!(expect_msg::<Text>(&mut inbox), text("from a process"));
    assert_eq!(expect_msg::<Text>(&mut inbox), text("from outside the runtime"));
    assert_eq!(b.node.stats().bad_input, 0, "a message to an unknown name is dropped, not a protocol error");
}

#[test]
fn a_pid_inside_a_message_arrives_as_a_remote_pid_that_routes_back() {
    let (a, b) = pair();
    let echo_pid = b.rt.spawn(echo());
    b.rt.register("echo", echo_pid).unwrap();
    let b_name = b.name().to_owned();

    let (echo_at_a, second) = a.rt.block_on(async move {
        // The request carries our Pid; the echo answers to it, and its answer carries its own.
        send_named_at("echo", &b_name, Ping { from: self_pid(), n: 1 });
        let pong: Pong = recv_bounded().await;
        assert_eq!(pong.n, 1);
        // The Pid that came back routes to the echo too.
        pong.from.send(Ping { from: self_pid(), n: 2 });
        let second: Pong = recv_bounded().await;
        (pong.from, second)
    });
    assert_eq!(second, Pong { from: echo_at_a, n: 2 });
    assert_ne!(echo_at_a.node(), b.rt.node(), "a's Pid for b's echo is a remote Pid");
    assert_ne!(echo_at_a.node(), a.rt.node());
}

#[test]
fn a_pid_of_a_third_node_passes_through() {
    let (a, b) = pair();
    let c = Side::start("c");
    let echo_on_c = c.rt.spawn(echo());
    let echo_at_a = remote_pid(echo_on_c, &c, &a);
    assert!(!b.node.nodes().contains(&c.name().to_owned()), "b has not met c yet");

    // a hands c's Pid to b.
    let mut inbox_b = b.rt.mailbox();
    b.rt.register("inbox", inbox_b.pid()).unwrap();
    a.rt.send_named_at("inbox", b.name(), common::Introduced(echo_at_a));
    let common::Introduced(echo_at_b) = expect_msg(&mut inbox_b);
    assert_ne!(echo_at_b.node(), b.rt.node());
    assert_ne!(echo_at_b.node(), c.rt.node(), "b sees c's echo as a remote Pid, not c's runtime's own");

    // b talks to c directly with it.
    let pong = b.rt.block_on(async move {
        echo_at_b.send(Ping { from: self_pid(), n: 3 });
        recv_bounded::<Pong>().await
    });
    assert_eq!(pong, Pong { from: echo_at_b, n: 3 });
    assert!(b.node.nodes().contains(&c.name().to_owned()), "b connected to c to reach it");
}

/// The per-pair ordering test: 1,000,000 numbered messages from one process on a to one
/// process on b, none lost, none reordered.
#[test]
fn a_million_numbered_messages_arrive_all_and_in_order() {
    const COUNT: u64 = 1_000_000;
    let (a, b) = pair();
    let mut done = b.rt.mailbox();
    let report = done.pid();
    let receiver = b.rt.spawn(async move {
        for expected in 0..COUNT {
            let n: u64 = recv_bounded().await;
            assert_eq!(n, expected, "message {expected} arrived out of order (got {n})");
        }
        report.send(Text("all arrived".into()));
    });
    let receiver_at_a = remote_pid(receiver, &b, &a);
    let started = Instant::now();
    a.rt.spawn(async move {
        for n in 0..COUNT {
            receiver_at_a.send(n);
        }
    });
    let bound = Duration::from_secs(60);
    assert_eq!(expect_msg_within::<Text>(&mut done, bound), text("all arrived"));
    eprintln!("{COUNT} messages a -> b in {:?}", started.elapsed());
}

#[test]
fn a_linked_remote_process_that_crashes_sends_its_reason_to_a_trapping_process() {
    let (a, b) = pair();
    let echo_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let got = a.rt.block_on(async move {
        trap_exit(true);
        link(echo_at_a);
        // The link travels before the request to crash, on the same connection.
        echo_at_a.send(Quit(ExitReason::Panic("boom".into())));
        recv_bounded::<Exit>().await
    });
    assert_eq!(got, Exit { from: echo_at_a, reason: ExitReason::Panic("boom".into()) });
}

#[test]
fn a_local_crash_reaches_the_remote_linked_process() {
    let (a, b) = pair();
    let mut inbox = b.rt.mailbox();
    let report = inbox.pid();
    let trapper = b.rt.spawn(async move {
        trap_exit(true);
        report.send(true);
        let exit: Exit = recv_bounded().await;
        report.send(exit);
    });
    let trapper_at_a = remote_pid(trapper, &b, &a);
    // The signal must find it trapping already: else it dies of it, as Erlang's would.
    assert!(expect_msg::<bool>(&mut inbox), "the trapper traps exits");
    let crasher = a.rt.spawn(async move {
        // The link travels before the exit signal of the crash, on the same connection.
        link(trapper_at_a);
        panic!("crash on a");
        #[allow(unreachable_code)]
        ()
    });
    let exit: Exit = expect_msg(&mut inbox);
    assert_eq!(exit.reason, ExitReason::Panic("crash on a".into()));
    assert_ne!(exit.from.node(), b.rt.node());
    assert_eq!((exit.from.index(), exit.from.serial()), (crasher.index(), crasher.serial()), "from is the crasher");
}

#[test]
fn an_exit_signal_crosses_nodes() {
    let (a, b) = pair();
    let victim_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let mut inbox = b.rt.mailbox();
    let report = inbox.pid();
    let trapper = b.rt.spawn(async move {
        trap_exit(true);
        report.send(true);
        let exit: Exit = recv_bounded().await;
        report.send(exit);
    });
    let trapper_at_a = remote_pid(trapper, &b, &a);
    // The signal must find it trapping already: else it dies of it, as Erlang's would.
    assert!(expect_msg::<bool>(&mut inbox), "the trapper traps exits");

    let (reason, sender) = a.rt.block_on(async move {
        let reference = monitor(victim_at_a);
        exit(victim_at_a, ExitReason::Error("stop".into()));
        exit(trapper_at_a, ExitReason::Error("trapped".into()));
        let down: Down = recv_bounded().await;
        assert_eq!(down.reference, reference);
        (down.reason, self_pid())
    });
    assert_eq!(reason, ExitReason::Error("stop".into()), "a non-trapping process dies of the signal");
    let exit: Exit = expect_msg(&mut inbox);
    assert_eq!(exit.reason, ExitReason::Error("trapped".into()), "a trapping process receives it as a message");
    assert_eq!((exit.from.index(), exit.from.serial()), (sender.index(), sender.serial()));
}

#[test]
fn a_remote_monitor_gives_down_with_the_real_reason() {
    let (a, b) = pair();
    let echo_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let down = a.rt.block_on(async move {
        let reference = monitor(echo_at_a);
        echo_at_a.send(Quit(ExitReason::Error("bye".into())));
        let down: Down = recv_bounded().await;
        assert_eq!(down.reference, reference);
        down
    });
    assert_eq!(down.pid, echo_at_a);
    assert_eq!(down.reason, ExitReason::Error("bye".into()));
}

#[test]
fn monitoring_a_dead_remote_process_gives_down_noproc() {
    let (a, b) = pair();
    let echo_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let second = a.rt.block_on(async move {
        let first = monitor(echo_at_a);
        echo_at_a.send(Quit(ExitReason::Normal));
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (first, ExitReason::Normal));
        let again = monitor(echo_at_a);
        let down: Down = recv_bounded().await;
        assert_eq!(down.reference, again);
        down.reason
    });
    assert_eq!(second, ExitReason::NoProc);
}

#[test]
fn after_demonitor_no_down_arrives() {
    let (a, b) = pair();
    let target_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    let witness_at_a = remote_pid(b.rt.spawn(echo()), &b, &a);
    a.rt.block_on(async move {
        let dropped = monitor(target_at_a);
        let kept = monitor(target_at_a);
        assert!(demonitor(dropped));
        target_at_a.send(Quit(ExitReason::Error("gone".into())));
        let down: Down = recv_bounded().await;
        assert_eq!((down.reference, down.reason), (kept, ExitReason::Error("gone".into())));
        // Everything b sent before the witness's answer has arrived by now.
        round_trip(witness_at_a).await;
        assert_eq!(try_recv::<Down>(), None, "a Down for a removed monitor");
    });
}

/// The increment server.
struct Counter(i64);

impl GenServer for Counter {
    type Call = i64;
    type Reply = i64;
    type Cast = ();

    async fn handle_call(&mut self, by: i64, _from: ReplyTo<i64>) -> CallReply<i64> {
        self.0 += by;
        CallReply::Reply(self.0)
    }
}

#[test]
fn a_remote_gen_server_call_returns_the_reply() {
    let (a, b) = pair();
    let server = b.rt.block_on(async { gen_server::start(Counter(10)).await.unwrap().pid() });
    let server_at_a = remote_pid(server, &b, &a);
    let replies = a.rt.block_on(async move {
        let counter = ServerRef::<Counter>::from_pid(server_at_a);
        (counter.call(1, TIMEOUT).await, counter.call(5, TIMEOUT).await)
    });
    assert_eq!(replies, (Ok(11), Ok(16)));
}

/// A flood from a fast sender on a, with a 64 KiB outgoing limit, to a receiver on b that takes
/// its time: a's outgoing bytes stay within four times the limit and one frame, and every
/// message arrives, in order.
#[test]
fn backpressure_bounds_the_outgoing_buffer_and_loses_nothing() {
    const LIMIT: usize = 64 * 1024;
    const COUNT: u64 = 20_000;
    const PAYLOAD: usize = 1024;
    let a = Side::with(NodeConfig::new("a@127.0.0.1:0", common::COOKIE).outgoing_limit(LIMIT));
    let b = Side::start("b");
    a.node.connect(b.name()).unwrap();

    let mut done = b.rt.mailbox();
    let report = done.pid();
    let receiver = b.rt.spawn(async move {
        for expected in 0..COUNT {
            let (n, bytes): (u64, Vec<u8>) = recv_bounded().await;
            assert_eq!((n, bytes.len()), (expected, PAYLOAD), "message {expected} lost or out of order");
            if n % 1000 == 0 {
                // A slow receiver.
                krarup_runtime::sleep(Duration::from_millis(5)).await;
            }
        }
        report.send(Text("all arrived".into()));
    });
    let receiver_at_a = remote_pid(receiver, &b, &a);

    let sending = Arc::new(AtomicBool::new(true));
    let max_pending = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (node, sending, max_pending) = (a.node.clone(), sending.clone(), max_pending.clone());
        std::thread::spawn(move || {
            while sending.load(Ordering::Relaxed) {
                max_pending.fetch_max(node.stats().pending_bytes, Ordering::Relaxed);
                std::thread::yield_now();
            }
        })
    };
    let mut sent = a.rt.mailbox();
    let sent_report = sent.pid();
    a.rt.spawn(async move {
        for n in 0..COUNT {
            receiver_at_a.send((n, vec![n as u8; PAYLOAD]));
            if n % 64 == 0 {
                // A process that receives now and then is paused here while a's buffer is over
                // its limit (Erlang's busy port).
                let _ = krarup_runtime::recv_timeout::<Text>(Duration::ZERO).await;
            }
        }
        sent_report.send(Text("sent".into()));
    });
    assert_eq!(expect_msg_within::<Text>(&mut sent, Duration::from_secs(60)), text("sent"));
    assert_eq!(expect_msg_within::<Text>(&mut done, Duration::from_secs(60)), text("all arrived"));
    sending.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let max = max_pending.load(Ordering::Relaxed);
    let frame = PAYLOAD + 64;
    eprintln!("largest outgoing buffer seen: {max} bytes (limit {LIMIT})");
    assert!(max <= 4 * LIMIT + frame, "a's outgoing buffer reached {max} bytes, past 4 x {LIMIT} + one frame");
}

/// A message type whose `Deserialize` looks into the mailbox of the process that decodes it (a
/// bug in user code): a message from another node is decoded by the receive that takes it,
/// while that receive holds the mailbox's queue.
#[derive(Debug, Serialize)]
struct Nosy(u32);

impl<'de> Deserialize<'de> for Nosy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Nosy, D::Error> {
        let n = u32::deserialize(d)?;
        let _ = try_recv::<Text>();
        Ok(Nosy(n))
    }
}

#[test]
fn a_deserialize_that_reaches_into_the_mailbox_crashes_only_its_receiver_with_a_clear_reason() {
    let (a, b) = pair();
    let mut inbox = b.rt.mailbox();
    let report = inbox.pid();
    let name = common::unique_name("nosy");
    let watcher_name = name.clone();
    b.rt.spawn(async move {
        let receiver = krarup_runtime::spawn(async move {
            let nosy: Nosy = common::recv_bounded().await;
            report.send(Text(format!("decoded {}", nosy.0)));
        });
        // Something in the mailbox for the `Deserialize` to find, had it reached the queue.
        receiver.send(text("already here"));
        let reference = monitor(receiver);
        krarup_runtime::register(&watcher_name, receiver).expect("a name no other test uses");
        report.send(text("ready"));
        let down: Down = common::recv_bounded().await;
        assert_eq!(down.reference, reference);
        report.send(down.reason);
    });
    assert_eq!(expect_msg::<Text>(&mut inbox), text("ready"));

    let b_name = b.name().to_owned();
    a.rt.block_on(async move { send_named_at(&name, &b_name, Nosy(7)) });
    match expect_msg::<ExitReason>(&mut inbox) {
        ExitReason::Panic(message) => assert!(message.contains("mailbox"), "unexpected panic: {message}"),
        other => panic!("expected the receiver to crash, got {other}"),
    }
    // The node goes on: b still serves a.
    let echo_pid = b.rt.spawn(echo());
    let echo_at_a = remote_pid(echo_pid, &b, &a);
    a.rt.block_on(round_trip(echo_at_a));
    assert_eq!(b.node.stats().bad_input, 0);
}
