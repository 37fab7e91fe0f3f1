//! A reliable communication layer over an unreliable channel: exactly-once,
//! in-order delivery built from sequence numbers, acknowledgements,
//! timeouts with exponential back-off, duplicate suppression and a reorder
//! buffer. The lecture's chapter on reliable communication layers (what
//! TCP does over IP), with processes.
//!
//! Three processes, and `main` as the application that consumes what is
//! delivered:
//!
//! - The **channel** is the unreliable network. Every packet given to it
//!   (`Transmit { to, packet }`) is lost with probability `--loss`, delivered
//!   twice with probability `--dup`, and delayed by a few milliseconds with
//!   probability `--reorder`, so that packets sent after it overtake it (a
//!   duplicate's copy is delayed too). It carries data one way and
//!   acknowledgements the other, and treats both the same. Its coin flips
//!   come from a seeded generator (`--seed`): a seed replays the same
//!   misfortunes, as far as timing allows.
//! - The **sender** numbers its messages 0, 1, 2, ... and keeps up to
//!   `--window` of them unacknowledged (a sliding window; `--window 1` is
//!   stop-and-wait). Acknowledgements are *cumulative*: `Ack { next }` says
//!   "I have delivered everything below `next`", so a lost acknowledgement is
//!   made good by any later one. One retransmission timer runs for the
//!   oldest unacknowledged message (as in TCP): when it expires, that
//!   message is sent again and the timeout doubles (exponential back-off,
//!   from `--rto-ms` up to `--max-rto-ms`); an acknowledgement that moves the
//!   window resets it. After `--give-up N` timeouts in a row without
//!   progress, the sender gives up.
//! - The **receiver** delivers message `next` to the application and moves
//!   on; a message from the future (above `next`) waits in a *reorder
//!   buffer* until the gap before it is filled; a message it has already
//!   delivered or buffered is a duplicate and is dropped. It acknowledges
//!   every data packet, duplicates included (the earlier acknowledgement
//!   may be the one that was lost).
//!
//! The trace shows each retransmission with the timeout before and after
//! it, each duplicate dropped and each message held back; a summary follows
//! with the channel's losses, duplicates and delays and the back-off
//! timeline. The self-check: the application received exactly the messages
//! 0..N, each once, in order, with the right contents. It prints `ok: ...`
//! or exits with 1.
//!
//! ```text
//! cargo run --release --example reliable_channel
//! cargo run --release --example reliable_channel -- --loss 0.4 --dup 0.2 --reorder 0.5 --seed 9
//! cargo run --release --example reliable_channel -- --window 1 --messages 20   # stop-and-wait
//! ```
//!
//! Flags: `--messages N` (50), `--window N` (8), `--loss P` (0.2), `--dup P`
//! (0.1), `--reorder P` (0.2), `--seed N` (1), `--rto-ms N` (20),
//! `--max-rto-ms N` (640), `--give-up N` (12), `--quiet` (summary only).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::rng::SplitMix;
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str =
    "usage: reliable_channel [--messages N] [--window N] [--loss P] [--dup P] [--reorder P] [--seed N] \
                     [--rto-ms N] [--max-rto-ms N] [--give-up N] [--quiet]";

// ANCHOR: messages
/// To the channel: carry `packet` to `to` (perhaps).
#[derive(Debug, Serialize, Deserialize)]
struct Transmit<P> {
    to: Pid,
    packet: P,
}

/// A message of the reliable layer, from the sender to the receiver.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Data {
    seq: u64,
    payload: String,
}

/// Cumulative acknowledgement: every message below `next` has been delivered.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Ack {
    next: u64,
}

/// From the receiver to the application: the next message, in order.
#[derive(Debug, Serialize, Deserialize)]
struct Delivered {
    seq: u64,
    payload: String,
}
// ANCHOR_END: messages

/// From `main` to the channel and the receiver: the run is over, report.
#[derive(Debug, Serialize, Deserialize)]
struct Stop {
    from: Pid,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ChannelStats {
    packets: u64,
    lost: u64,
    duplicated: u64,
    delayed: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ReceiverStats {
    delivered: u64,
    duplicates: u64,
    held: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SenderStats {
    sent: u64,
    retransmissions: u64,
    acks: u64,
    /// Each timeout: when (ms since start), which message, the timeout before and after.
    timeline: Vec<(u128, u64, u64, u64)>,
    gave_up: bool,
}

/// The channel's misbehaviour.
#[derive(Clone, Copy, Debug)]
struct Faults {
    loss: f64,
    dup: f64,
    reorder: f64,
    seed: u64,
}

/// The sender's parameters.
#[derive(Clone, Copy, Debug)]
struct Sending {
    messages: u64,
    window: u64,
    rto: Duration,
    max_rto: Duration,
    give_up: u32,
}

// ANCHOR: channel
/// The unreliable channel: loses, duplicates and delays (so reorders)
/// packets of both directions.
async fn channel(faults: Faults) {
    let mut rng = SplitMix(faults.seed);
    let mut stats = ChannelStats::default();
    loop {
        receive! {
            t: Transmit<Data> => carry(&mut rng, faults, &mut stats, t),
            t: Transmit<Ack> => carry(&mut rng, faults, &mut stats, t),
            stop: Stop => return stop.from.send(stats),
        }
    }
}

fn carry<P: Message + Clone>(rng: &mut SplitMix, faults: Faults, stats: &mut ChannelStats, t: Transmit<P>) {
    stats.packets += 1;
    if rng.chance(faults.loss) {
        stats.lost += 1;
        return;
    }
    let copies = if rng.chance(faults.dup) { 2 } else { 1 };
    stats.duplicated += copies - 1;
    for copy in 0..copies {
        if copy > 0 || rng.chance(faults.reorder) {
            // Held back a few milliseconds: packets sent after it overtake it.
            stats.delayed += 1;
            send_after(Duration::from_millis(1 + rng.below(8)), t.to, t.packet.clone());
        } else {
            t.to.send(t.packet.clone());
        }
    }
}
// ANCHOR_END: channel

// ANCHOR: sender
/// The sender: a sliding window of `window` messages over the channel,
/// cumulative acknowledgements, one retransmission timer with exponential
/// back-off.
async fn sender(net: Pid, receiver: Pid, opts: Sending, quiet: bool, t0: Instant) -> SenderStats {
    let mut stats = SenderStats::default();
    let data = |seq: u64| Data { seq, payload: format!("message {seq}") };
    let (mut base, mut next) = (0, 0); // oldest unacknowledged, next never sent
    let mut rto = opts.rto;
    let mut deadline = Instant::now() + rto;
    let mut timeouts_in_a_row = 0;
    while base < opts.messages {
        while next < opts.messages && next < base + opts.window {
            net.send(Transmit { to: receiver, packet: data(next) });
            stats.sent += 1;
            if next == base {
                deadline = Instant::now() + rto;
            }
            next += 1;
        }
        receive! {
            ack: Ack => {
                stats.acks += 1;
                if ack.next > base {
                    // Progress: the window slides, the timer restarts at the initial timeout.
                    (base, rto, timeouts_in_a_row) = (ack.next, opts.rto, 0);
                    deadline = Instant::now() + rto;
                }
            }
            after deadline.saturating_duration_since(Instant::now()) => {
                timeouts_in_a_row += 1;
                if timeouts_in_a_row > opts.give_up {
                    stats.gave_up = true;
                    return stats;
                }
                let before = rto;
                rto = (rto * 2).min(opts.max_rto);
                net.send(Transmit { to: receiver, packet: data(base) });
                stats.sent += 1;
                stats.retransmissions += 1;
                let at = t0.elapsed().as_millis();
                stats.timeline.push((at, base, before.as_millis() as u64, rto.as_millis() as u64));
                if !quiet {
                    println!("{at:>5} ms  sender: no ack for {base} within {before:?}: resend it, timeout now {rto:?}");
                }
                deadline = Instant::now() + rto;
            }
        }
    }
    stats
}
// ANCHOR_END: sender

// ANCHOR: receiver
/// The receiver: delivers in order to `app`, holds messages that come early,
/// drops duplicates, acknowledges every data packet to `sender`.
async fn receiver(net: Pid, sender: Pid, app: Pid, quiet: bool, t0: Instant) {
    let mut next = 0; // the next message to deliver
    let mut early: BTreeMap<u64, String> = BTreeMap::new(); // the reorder buffer
    let mut stats = ReceiverStats::default();
    loop {
        let data = receive! {
            data: Data => data,
            stop: Stop => return stop.from.send(stats),
        };
        let at = t0.elapsed().as_millis();
        if data.seq < next || early.contains_key(&data.seq) {
            stats.duplicates += 1;
            if !quiet {
                println!("{at:>5} ms  receiver: {} again: duplicate dropped", data.seq);
            }
        } else if data.seq > next {
            stats.held += 1;
            if !quiet {
                println!("{at:>5} ms  receiver: {} before {next}: held in the reorder buffer", data.seq);
            }
            early.insert(data.seq, data.payload);
        } else {
            app.send(Delivered { seq: next, payload: data.payload });
            next += 1;
            while let Some(payload) = early.remove(&next) {
                app.send(Delivered { seq: next, payload });
                next += 1;
            }
            stats.delivered = next;
        }
        net.send(Transmit { to: sender, packet: Ack { next } });
    }
}
// ANCHOR_END: receiver

// ANCHOR: check
/// The self-check: the problems with what the application received.
fn check(delivered: &[Delivered], messages: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if delivered.len() as u64 != messages {
        problems.push(format!("{} messages delivered, {messages} sent", delivered.len()));
    }
    for (i, d) in delivered.iter().enumerate() {
        if d.seq != i as u64 || d.payload != format!("message {i}") {
            problems.push(format!("delivery {i} was {:?} (numbered {}), expected \"message {i}\"", d.payload, d.seq));
        }
    }
    problems.truncate(10);
    problems
}
// ANCHOR_END: check

/// The timeouts in brief, one entry per run of timeouts of one message:
/// `@21ms #5 20>40>80>160ms` (at 21 ms message 5 timed out after 20 ms,
/// then after 40 and 80; the next timeout would have been 160 ms).
fn backoff_timeline(timeline: &[(u128, u64, u64, u64)]) -> String {
    let mut runs: Vec<(u128, u64, Vec<u64>)> = Vec::new();
    for &(at, seq, before, after) in timeline {
        match runs.last_mut() {
            Some((_, last, steps)) if *last == seq => steps.push(after),
            _ => runs.push((at, seq, vec![before, after])),
        }
    }
    if runs.is_empty() {
        return "no timeouts".into();
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|(at, seq, steps)| {
            let steps: Vec<String> = steps.iter().map(u64::to_string).collect();
            format!("@{at}ms #{seq} {}ms", steps.join(">"))
        })
        .collect();
    runs.join(", ")
}

/// A probability flag.
fn probability(flags: &common::Flags, key: &str, default: f64) -> f64 {
    match flags.str(key) {
        None => default,
        Some(v) => match v.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => p,
            _ => usage_error(&format!("--{key}: expected a probability between 0 and 1, got {v:?}")),
        },
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("reliable_channel: {problem}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let flags = common::Flags::parse(USAGE);
    let faults = Faults {
        loss: probability(&flags, "loss", 0.2),
        dup: probability(&flags, "dup", 0.1),
        reorder: probability(&flags, "reorder", 0.2),
        seed: flags.usize("seed", 1) as u64,
    };
    let opts = Sending {
        messages: flags.usize("messages", 50) as u64,
        window: flags.usize("window", 8).max(1) as u64,
        rto: Duration::from_millis(flags.usize("rto-ms", 20).max(1) as u64),
        max_rto: Duration::from_millis(flags.usize("max-rto-ms", 640).max(1) as u64),
        give_up: flags.usize("give-up", 12) as u32,
    };
    let quiet = flags.has("quiet");
    println!(
        "reliable_channel: {} messages, window {}{}, over a channel that loses {:.0}%, duplicates {:.0}%, \
         delays {:.0}% of packets; seed {}",
        opts.messages,
        opts.window,
        if opts.window == 1 { " (stop-and-wait)" } else { "" },
        faults.loss * 100.0,
        faults.dup * 100.0,
        faults.reorder * 100.0,
        faults.seed
    );

    let rt = Runtime::new();
    let t0 = Instant::now();
    // ANCHOR: run
    let (delivered, sent, received, carried) = rt.block_on(async move {
        let app = self_pid();
        let net = spawn(channel(faults));
        let receiver_pid = spawn(async move {
            let sender: Pid = recv().await;
            receiver(net, sender, app, quiet, t0).await
        });
        let (sender_pid, watch) = spawn_monitor(async move {
            let stats = sender(net, receiver_pid, opts, quiet, t0).await;
            app.send(stats);
        });
        receiver_pid.send(sender_pid);
        // The application: takes what is delivered until the sender is done.
        let mut delivered = Vec::new();
        let sent = loop {
            receive! {
                d: Delivered => delivered.push(d),
                stats: SenderStats => break stats,
                down: Down if down.reference == watch => panic!("the sender failed: {}", down.reason),
            }
        };
        // Whatever the receiver delivered comes before its answer to Stop.
        receiver_pid.send(Stop { from: app });
        let received = loop {
            receive! {
                d: Delivered => delivered.push(d),
                stats: ReceiverStats => break stats,
            }
        };
        net.send(Stop { from: app });
        let carried: ChannelStats = recv().await;
        (delivered, sent, received, carried)
    });
    // ANCHOR_END: run

    let took = t0.elapsed();
    println!(
        "channel: {} packets, {} lost, {} duplicated, {} delayed",
        carried.packets, carried.lost, carried.duplicated, carried.delayed
    );
    println!(
        "sender: {} sent ({} retransmissions), {} acks received{}",
        sent.sent,
        sent.retransmissions,
        sent.acks,
        if sent.gave_up { "; GAVE UP" } else { "" }
    );
    println!(
        "receiver: {} delivered, {} duplicates dropped, {} held for reordering",
        received.delivered, received.duplicates, received.held
    );
    println!("back-off: {}", backoff_timeline(&sent.timeline));
    println!("{} ms in all", took.as_millis());

    let mut problems = check(&delivered, opts.messages);
    if sent.gave_up {
        problems.push(format!("the sender gave up after {} timeouts in a row", opts.give_up));
    }
    if problems.is_empty() {
        println!("ok: messages 0..{} delivered exactly once, in order", opts.messages);
    } else {
        for problem in &problems {
            println!("FAIL: {problem}");
        }
        std::process::exit(1);
    }
}
