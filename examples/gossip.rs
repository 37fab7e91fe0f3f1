// ANCHOR: all
//! Rumour spreading (gossip, "epidemic" dissemination) among N processes:
//! the push model with feedback and a coin, from the lecture on epidemic
//! protocols (Demers et al., "Epidemic algorithms for replicated database
//! maintenance", 1987).
//!
//! One process starts out knowing a rumour. The protocol runs in rounds.
//! In each round, every process that is still *spreading* the rumour picks
//! a random peer and tells it. The peer answers whether it already knew;
//! if it did, the teller loses interest with probability 1/k and stops
//! spreading. A process that hears the rumour for the first time starts
//! spreading it in the next round. The rumour dies out when nobody spreads
//! it any more; the fraction of processes that never heard it is the
//! *residue* s. The lecture's analysis (susceptible s, infective i, as
//! differential equations in s) gives
//!
//! ```text
//!     s = e^-(k+1)(1-s)        k = 1: s ≈ 0.20   k = 2: s ≈ 0.060   k = 3: s ≈ 0.020
//! ```
//!
//! so each step of k cuts the residue by about e. The program prints one
//! line per round and compares the residue with that value.
//!
//! The processes find each other through a process group ([`krarup::pg`]):
//! each joins the group `gossip` and picks its peers from
//! `pg::members("gossip")`; the coordinator that clocks the rounds reaches
//! them all with `pg::broadcast`. With `both`, half the processes run on a
//! second node (two runtimes in this OS process, talking over 127.0.0.1):
//! the group spans both nodes, and rumours, answers and the coordinator's
//! ticks cross the network.
//!
//! ```text
//! cargo run --release --example gossip -- [both] [--n 200] [--k 2] [--seed 1]
//! ```
//!
//! Randomness comes from a seeded SplitMix generator per process (a
//! statistics tool, not for cryptography), so a run can be repeated.
//!
//! Self-check (exit code 1 if it fails): at the end no process is still
//! spreading; every push was received once and answered once (the
//! processes' own counters agree with the coordinator's tally per round);
//! every process that knows the rumour, except the first, heard it from
//! someone; and the residue is within a sane distance of the theory (five
//! standard deviations of a binomial with that mean, plus 0.02: the model
//! is continuous and the rounds are not, so the match is close, not exact).

mod common;

use std::time::{Duration, Instant};

use common::rng::SplitMix;
use krarup::net::{Node, NodeConfig};
use krarup::pg;
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: gossip [both] [--n PROCESSES] [--k K] [--seed SEED]
  both   half the processes on a second node (in this OS process, over 127.0.0.1)
  --n    processes (default 200)   --k  stop with probability 1/k on telling one who knew (default 2)";

/// The process group every gossiper joins.
const GROUP: &str = "gossip";

/// The bound on every wait: a lost message ends the run with an error, not a hang.
const TIMEOUT: Duration = Duration::from_secs(20);

// ANCHOR: messages
/// From the coordinator to every gossiper (by `pg::broadcast`) or to one.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Control {
    /// Answer `Prepared` once your node's view of the group has `n` members.
    Prepare {
        coordinator: Pid,
        n: usize,
    },
    /// You are the first to know the rumour.
    Seed,
    /// Round `round` begins: push if you are spreading, then answer `Done`.
    Tick {
        round: u32,
        coordinator: Pid,
    },
    /// Send your final state.
    Query {
        coordinator: Pid,
    },
    Stop,
}

/// The rumour, told in round `round`.
#[derive(Debug, Serialize, Deserialize)]
struct Rumour {
    from: Pid,
    round: u32,
}

/// The answer to a [`Rumour`]: whether the peer knew it before this round,
/// and whether this was the first time it heard it at all.
#[derive(Debug, Serialize, Deserialize)]
struct Feedback {
    knew: bool,
    first_time: bool,
}

/// What a gossiper counts about itself.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Counts {
    pushes: u64,
    told_one_who_knew: u64,
    heard: u64,
    heard_knowing: u64,
}

/// From the gossipers to the coordinator.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    Prepared,
    /// Round `round` is over for this process: what its push (if any) did.
    Done {
        round: u32,
        pushed: bool,
        knew: bool,
        first_time: bool,
        stopped: bool,
    },
    Final {
        knows: bool,
        spreading: bool,
        first_heard_in: Option<u32>,
        counts: Counts,
    },
}
// ANCHOR_END: messages

// ANCHOR: gossiper
/// One gossiper's state.
struct Gossiper {
    me: Pid,
    rng: SplitMix,
    k: u64,
    /// The round in which it first heard the rumour (0 for the seed).
    first_heard_in: Option<u32>,
    spreading: bool,
    counts: Counts,
}

impl Gossiper {
    /// Someone told us the rumour in `round`: answer, and spread it from the
    /// next round on if it is news.
    fn hear(&mut self, rumour: Rumour) {
        let knew = self.first_heard_in.is_some_and(|r| r < rumour.round);
        let first_time = self.first_heard_in.is_none();
        if first_time {
            self.first_heard_in = Some(rumour.round);
            self.spreading = true;
        }
        self.counts.heard += 1;
        self.counts.heard_knowing += u64::from(knew);
        rumour.from.send(Feedback { knew, first_time });
    }

    /// Our turn in `round`: tell a random peer, wait for its answer (hearing
    /// others meanwhile), and maybe lose interest.
    async fn push(&mut self, round: u32) -> Option<Report> {
        let mut peers = pg::members(GROUP);
        peers.sort_unstable();
        peers.dedup();
        peers.retain(|&p| p != self.me);
        let peer = peers[self.rng.below(peers.len() as u64) as usize];
        peer.send(Rumour { from: self.me, round });
        self.counts.pushes += 1;
        let feedback = loop {
            receive! {
                rumour: Rumour => self.hear(rumour),
                feedback: Feedback => break feedback,
                after TIMEOUT => return None,
            }
        };
        let mut stopped = false;
        if feedback.knew {
            self.counts.told_one_who_knew += 1;
            if self.rng.below(self.k) == 0 {
                self.spreading = false;
                stopped = true;
            }
        }
        Some(Report::Done { round, pushed: true, knew: feedback.knew, first_time: feedback.first_time, stopped })
    }
}

/// A gossiper: joins the group, then follows the coordinator's rounds.
async fn gossiper(index: u64, seed: u64, k: u64) {
    let me = self_pid();
    pg::join(GROUP, me).await.expect("a process joins its own node's group");
    let rng = SplitMix(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ index);
    let mut g = Gossiper { me, rng, k, first_heard_in: None, spreading: false, counts: Counts::default() };
    loop {
        receive! {
            rumour: Rumour => g.hear(rumour),
            control: Control => match control {
                Control::Prepare { coordinator, n } => {
                    if wait_for_members(n).await {
                        coordinator.send(Report::Prepared);
                    }
                }
                Control::Seed => {
                    g.first_heard_in = Some(0);
                    g.spreading = true;
                }
                Control::Tick { round, coordinator } => {
                    let report = if g.spreading && g.first_heard_in.is_some_and(|r| r < round) {
                        match g.push(round).await {
                            Some(report) => report,
                            None => return, // no answer: the coordinator reports the failure
                        }
                    } else {
                        Report::Done { round, pushed: false, knew: false, first_time: false, stopped: false }
                    };
                    coordinator.send(report);
                }
                Control::Query { coordinator } => coordinator.send(Report::Final {
                    knows: g.first_heard_in.is_some(),
                    spreading: g.spreading,
                    first_heard_in: g.first_heard_in,
                    counts: g.counts,
                }),
                Control::Stop => return,
            },
            after TIMEOUT => return,
        }
    }
}
// ANCHOR_END: gossiper

/// Waits until this node's view of the group has `n` members (the other
/// node's joins arrive by replication); false after [`TIMEOUT`].
async fn wait_for_members(n: usize) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while pg::members(GROUP).len() < n {
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(1)).await;
    }
    true
}

/// The residue the differential equations predict: the smallest root of
/// s = e^-(k+1)(1-s), by fixed-point iteration from 0.
fn theory(k: u64) -> f64 {
    let mut s = 0.0;
    for _ in 0..10_000 {
        s = (-((k + 1) as f64) * (1.0 - s)).exp();
    }
    s
}

/// What the coordinator tallies over the rounds.
#[derive(Debug, Default)]
struct Tally {
    rounds: u32,
    knowers: usize,
    spreading: usize,
    pushes: u64,
    to_knowers: u64,
}

/// The next [`Report`] (from a gossiper), or an error after [`TIMEOUT`].
async fn next_report(what: &str) -> Result<Report, String> {
    match recv_timeout::<Report>(TIMEOUT).await {
        Some(report) => Ok(report),
        None => Err(format!("no {what} within {TIMEOUT:?}: a gossiper is stuck or gone")),
    }
}

// ANCHOR: coordinator
/// Clocks the rounds, prints the trace and checks the outcome.
async fn coordinator(n: usize, k: u64) -> Result<(), String> {
    let me = self_pid();
    if !wait_for_members(n).await {
        return Err(format!("only {} of {n} gossipers joined the group", pg::members(GROUP).len()));
    }
    pg::broadcast(GROUP, Control::Prepare { coordinator: me, n });
    for _ in 0..n {
        next_report("Prepared").await?;
    }
    let mut everyone = pg::members(GROUP);
    everyone.sort_unstable();
    everyone[0].send(Control::Seed);
    println!("{n} processes in group {GROUP:?}; {} knows the rumour; k = {k}", everyone[0]);

    let mut tally = Tally { knowers: 1, spreading: 1, ..Tally::default() };
    let max_rounds = 100 + 20 * (n as f64).log2() as u32;
    while tally.spreading > 0 {
        tally.rounds += 1;
        if tally.rounds > max_rounds {
            return Err(format!("still spreading after {max_rounds} rounds"));
        }
        let round = tally.rounds;
        let sent_to = pg::broadcast(GROUP, Control::Tick { round, coordinator: me });
        if sent_to.len() != n {
            return Err(format!("round {round}: the group has {} members, not {n}", sent_to.len()));
        }
        let (mut pushes, mut to_knowers, mut told, mut stopped) = (0u64, 0u64, 0usize, 0usize);
        for _ in 0..n {
            match next_report("Done").await? {
                Report::Done { round: r, pushed, knew, first_time, stopped: s } if r == round => {
                    pushes += u64::from(pushed);
                    to_knowers += u64::from(knew);
                    told += usize::from(first_time);
                    stopped += usize::from(s);
                }
                other => return Err(format!("round {round}: unexpected {other:?}")),
            }
        }
        tally.pushes += pushes;
        tally.to_knowers += to_knowers;
        tally.knowers += told;
        tally.spreading = tally.spreading + told - stopped;
        println!(
            "round {round:3}: {:5} of {n} know ({:5.1}%), {:5} spreading | {pushes:5} pushes, \
             {to_knowers:4} to one who knew, {told:4} told for the first time, {stopped:4} stopped",
            tally.knowers,
            100.0 * tally.knowers as f64 / n as f64,
            tally.spreading,
        );
    }
    let check = check(n, k, &tally).await;
    pg::broadcast(GROUP, Control::Stop);
    check
}
// ANCHOR_END: coordinator

// ANCHOR: check
/// Asks every gossiper for its final state and checks it against the tally.
async fn check(n: usize, k: u64, tally: &Tally) -> Result<(), String> {
    pg::broadcast(GROUP, Control::Query { coordinator: self_pid() });
    let (mut knowers, mut spreading, mut unheard_knowers) = (0usize, 0usize, 0usize);
    let mut sum = Counts::default();
    for _ in 0..n {
        let Report::Final { knows, spreading: s, first_heard_in, counts } = next_report("Final").await? else {
            return Err("a gossiper answered the query with something else".into());
        };
        knowers += usize::from(knows);
        spreading += usize::from(s);
        if knows && first_heard_in != Some(0) && counts.heard == 0 {
            unheard_knowers += 1;
        }
        if !knows && (counts.pushes > 0 || counts.heard > 0) {
            return Err("a process that never knew the rumour pushed or heard it".into());
        }
        sum.pushes += counts.pushes;
        sum.told_one_who_knew += counts.told_one_who_knew;
        sum.heard += counts.heard;
        sum.heard_knowing += counts.heard_knowing;
    }
    let residue = (n - knowers) as f64 / n as f64;
    let expected = theory(k);
    let bound = 5.0 * (expected * (1.0 - expected) / n as f64).sqrt() + 0.02;
    println!(
        "the rumour died out after {} rounds: {knowers} of {n} heard it; residue s = {residue:.3} ({} never heard it)",
        tally.rounds,
        n - knowers
    );
    println!("theory for k = {k}: s = e^-(k+1)(1-s) = {expected:.3}; the check allows {expected:.3} ± {bound:.3}");
    println!(
        "messages: {} pushes and {} answers ({:.2} pushes per process), {} to processes that already knew",
        sum.pushes,
        sum.heard,
        sum.pushes as f64 / n as f64,
        sum.told_one_who_knew
    );
    let mut failures = Vec::new();
    if spreading != 0 {
        failures.push(format!("{spreading} processes still spreading at the end"));
    }
    if knowers != tally.knowers {
        failures.push(format!("{knowers} processes know, the rounds counted {}", tally.knowers));
    }
    if sum.pushes != tally.pushes || sum.heard != sum.pushes {
        failures.push(format!("{} pushes sent, {} heard, {} tallied", sum.pushes, sum.heard, tally.pushes));
    }
    if sum.told_one_who_knew != sum.heard_knowing || sum.heard_knowing != tally.to_knowers {
        failures.push(format!(
            "{} pushers told one who knew, {} heard it knowing, {} tallied",
            sum.told_one_who_knew, sum.heard_knowing, tally.to_knowers
        ));
    }
    if unheard_knowers != 0 {
        failures.push(format!("{unheard_knowers} processes know the rumour without having heard it"));
    }
    if (residue - expected).abs() > bound {
        failures.push(format!("residue {residue:.3} is not within {bound:.3} of the theory's {expected:.3}"));
    }
    if failures.is_empty() {
        println!("ok: every process is quiet, the message counts add up and the residue is near the theory");
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
// ANCHOR_END: check

fn main() {
    let flags = common::Flags::parse(USAGE);
    let n = flags.usize("n", 200);
    let k = flags.usize("k", 2) as u64;
    let seed = flags.usize("seed", 1) as u64;
    if n < 2 || k < 1 {
        eprintln!("gossip: --n must be at least 2 and --k at least 1\n{USAGE}");
        std::process::exit(2);
    }
    let outcome = match flags.positional.first().map(String::as_str) {
        None => local(n, k, seed),
        Some("both") => both(n, k, seed),
        Some(other) => {
            eprintln!("gossip: unknown mode {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = outcome {
        eprintln!("gossip: FAILED: {error}");
        std::process::exit(1);
    }
}

/// All processes on one runtime.
fn local(n: usize, k: u64, seed: u64) -> Result<(), String> {
    let rt = Runtime::new();
    for index in 0..n {
        rt.spawn(gossiper(index as u64, seed, k));
    }
    rt.block_on(coordinator(n, k))
}

// ANCHOR: both
/// Half the processes on node a (with the coordinator), half on node b.
fn both(n: usize, k: u64, seed: u64) -> Result<(), String> {
    let (rt_a, rt_b) = (Runtime::new(), Runtime::new());
    let start = |rt: &Runtime, name: &str| {
        Node::start(rt, NodeConfig::new(name, "gossip")).map_err(|e| format!("node {name}: {e}"))
    };
    let a = start(&rt_a, "a@127.0.0.1:0")?;
    let b = start(&rt_b, "b@127.0.0.1:0")?;
    a.connect(b.name()).map_err(|e| format!("connecting to {}: {e}", b.name()))?;
    println!("nodes {} and {}: {} processes on each", a.name(), b.name(), n / 2);
    for index in 0..n {
        let rt = if index < n / 2 { &rt_a } else { &rt_b };
        rt.spawn(gossiper(index as u64, seed, k));
    }
    let outcome = rt_a.block_on(coordinator(n, k));
    a.shutdown();
    b.shutdown();
    outcome
}
// ANCHOR_END: both
// ANCHOR_END: all
