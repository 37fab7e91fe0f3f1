//! The Byzantine generals: Lamport, Shostak and Pease's oral-messages
//! algorithm OM(1) ("The Byzantine Generals Problem", ACM TOPLAS 4(3),
//! 1982), with four generals, each a process. The lecture's concept:
//! agreement despite arbitrary (Byzantine) faults — a faulty process may
//! lie, and lie differently to different processes — and the bound
//! n ≥ 3m + 1: with m = 1 traitor, four generals suffice.
//!
//! A commander sends an order (attack or retreat) to three lieutenants.
//! The loyal ones must agree on a plan:
//!
//! - **IC1**: all loyal lieutenants decide the same;
//! - **IC2**: if the commander is loyal, every loyal lieutenant decides its
//!   order.
//!
//! OM(1), with oral messages (a receiver knows who sent a message; a missing
//! message is noticed, by a timeout, and read as *retreat*):
//!
//! 1. Round 1: the commander sends its order to every lieutenant.
//! 2. Round 2: every lieutenant relays the value it received to the two
//!    other lieutenants ("the commander said v").
//! 3. Each lieutenant decides the majority of three values: the one from
//!    the commander and the two relayed to it.
//!
//! A traitor lies, as chosen by a seeded generator: a traitorous commander
//! sends attack to some lieutenants and retreat to the others; a traitorous
//! lieutenant relays, to each of the others, a value of its choosing, lying
//! to at least one of them (or, with `--silent`, sends nothing). Why it
//! works with one traitor among four: if the commander is the traitor, the
//! three lieutenants are loyal and relay truthfully, so all three see the
//! same three values and take the same majority (IC1). If a lieutenant is
//! the traitor, each loyal lieutenant has the true order from the commander
//! and from the other loyal lieutenant: two of three, a majority (IC2, and
//! so IC1).
//!
//! Every message is traced as it is sent. At the end `main` checks IC1 and
//! IC2 over the loyal lieutenants' decisions, prints `ok: ...`, or exits
//! with 1.
//!
//! ```text
//! cargo run --release --example byzantine_generals -- --traitor commander --seed 3
//! cargo run --release --example byzantine_generals -- --traitor lieutenant --lieutenant 2 --order attack
//! cargo run --release --example byzantine_generals -- --traitor lieutenant --silent
//! ```
//!
//! Flags: `--traitor commander|lieutenant|none` (`lieutenant`),
//! `--lieutenant 1|2|3` (which one is the traitor; 2), `--order
//! attack|retreat` (the loyal commander's order; `attack`), `--seed N` (1),
//! `--silent` (a traitorous lieutenant sends nothing in round 2),
//! `--timeout-ms N` (how long a lieutenant waits for a message before it
//! reads it as retreat; 500).
//!
//! The generals find each other by registered name (`general0` to
//! `general3`). With `nodes` (`cargo run --release --example
//! byzantine_generals -- nodes --traitor commander`), each general runs on a
//! node of its own — `commander`, `l1`, `l2`, `l3`, four krarup-net nodes in
//! this OS process on 127.0.0.1 and ports the system picks — registered as
//! `general`, and every order and relay crosses the network as
//! `{general, Node} ! Msg`. The outcome is the same: the algorithm is about
//! what the generals say, not where they are.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::rng::SplitMix;
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str =
    "usage: byzantine_generals [nodes] [--cookie SECRET] [--traitor commander|lieutenant|none] [--lieutenant 1|2|3] \
                     [--order attack|retreat] [--seed N] [--silent] [--timeout-ms N]";

/// The lieutenants are generals 1, 2 and 3; the commander is general 0.
const LIEUTENANTS: [usize; 3] = [1, 2, 3];

// ANCHOR: messages
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Value {
    Attack,
    Retreat,
}

/// Round 1: the commander's order.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    value: Value,
}

/// Round 2: lieutenant `from` says the commander told it `value`.
#[derive(Debug, Serialize, Deserialize)]
struct Relay {
    from: usize,
    value: Value,
}
// ANCHOR_END: messages

/// A process by its registered name, on this runtime (`node` None) or on a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Address {
    name: String,
    node: Option<String>,
}

impl Address {
    /// Sends `msg` there; a message to a name nobody has is dropped, as in Erlang.
    fn send<M: Message>(&self, msg: M) {
        match &self.node {
            None => {
                let _ = send_named(&self.name, msg);
            }
            Some(node) => send_named_at(&self.name, node, msg),
        }
    }
}

/// To each general at the start: who everybody is (index 0 is the commander),
/// and where the decisions go.
#[derive(Debug, Serialize, Deserialize)]
struct Roster {
    generals: Vec<Address>,
    report: Address,
}

/// A lieutenant's decision, to `main`, with what it was based on.
#[derive(Debug, Serialize, Deserialize)]
struct Decision {
    lieutenant: usize,
    value: Value,
    /// The commander's value, then the relayed ones by lieutenant; None: nothing came.
    heard: Vec<(usize, Option<Value>)>,
}

impl Value {
    fn opposite(self) -> Value {
        match self {
            Value::Attack => Value::Retreat,
            Value::Retreat => Value::Attack,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Value::Attack => "attack",
            Value::Retreat => "retreat",
        }
    }
}

fn general(i: usize) -> String {
    if i == 0 {
        "commander".into()
    } else {
        format!("L{i}")
    }
}

/// How a general behaves.
#[derive(Clone, Copy, Debug)]
enum Conduct {
    Loyal,
    /// Lies with values from this seed.
    Traitor {
        seed: u64,
        silent: bool,
    },
}

/// Sends `value` to general `to`, and traces it (marking a lie).
fn tell<M: Message>(round: u32, from: usize, to: usize, at: &Address, value: Value, truth: Value, msg: M) {
    let lie = if value != truth { "   <- a lie" } else { "" };
    println!("round {round}: {:>9} -> {:<9} {}{lie}", general(from), general(to), value.name());
    at.send(msg);
}

// ANCHOR: commander
/// The commander: sends its order to every lieutenant; a traitor sends
/// attack to some and retreat to the others.
async fn commander(order: Value, conduct: Conduct) {
    let Roster { generals, .. } = recv().await;
    let values: Vec<Value> = match conduct {
        Conduct::Loyal => vec![order; LIEUTENANTS.len()],
        Conduct::Traitor { seed, .. } => conflicting(&mut SplitMix::new(seed), order),
    };
    for (&l, &value) in LIEUTENANTS.iter().zip(&values) {
        tell(1, 0, l, &generals[l], value, order, Order { value });
    }
}
// ANCHOR_END: commander

/// Three values that are not all the same, from the generator.
fn conflicting(rng: &mut SplitMix, truth: Value) -> Vec<Value> {
    loop {
        let values: Vec<Value> =
            LIEUTENANTS.iter().map(|_| if rng.below(2) == 0 { truth } else { truth.opposite() }).collect();
        if values.iter().any(|&v| v != values[0]) {
            return values;
        }
    }
}

// ANCHOR: lieutenant
/// Lieutenant `me`: takes the commander's order, relays it to the other
/// lieutenants, collects their relays and decides by majority. A value that
/// does not come within `timeout` counts as retreat.
async fn lieutenant(me: usize, conduct: Conduct, timeout: Duration) {
    let Roster { generals, report } = recv().await;
    // Round 1.
    let order = receive! {
        order: Order => Some(order.value),
        after timeout => None,
    };
    let received = order.unwrap_or(Value::Retreat);
    // Round 2: relay to the others.
    let others: Vec<usize> = LIEUTENANTS.iter().copied().filter(|&l| l != me).collect();
    let relayed: Vec<Option<Value>> = match conduct {
        Conduct::Loyal => vec![Some(received); others.len()],
        Conduct::Traitor { silent: true, .. } => vec![None; others.len()],
        Conduct::Traitor { seed, silent: false } => lies(&mut SplitMix::new(seed), received),
    };
    for (&l, value) in others.iter().zip(relayed) {
        match value {
            Some(value) => tell(2, me, l, &generals[l], value, received, Relay { from: me, value }),
            None => println!("round 2: {:>9} -> {:<9} (nothing: silent)", general(me), general(l)),
        }
    }
    // Collect the others' relays; a missing one is noticed by the timeout.
    let mut heard: BTreeMap<usize, Value> = BTreeMap::new();
    while heard.len() < others.len() {
        receive! {
            relay: Relay => {
                heard.insert(relay.from, relay.value);
            }
            after timeout => break,
        }
    }
    let mut values = vec![(0, order)];
    values.extend(others.iter().map(|l| (*l, heard.get(l).copied())));
    let value = majority(values.iter().map(|(_, v)| v.unwrap_or(Value::Retreat)));
    report.send(Decision { lieutenant: me, value, heard: values });
}
// ANCHOR_END: lieutenant

/// Two values for the two others, lying to at least one of them.
fn lies(rng: &mut SplitMix, truth: Value) -> Vec<Option<Value>> {
    loop {
        let values: Vec<Value> = (0..2).map(|_| if rng.below(2) == 0 { truth } else { truth.opposite() }).collect();
        if values.contains(&truth.opposite()) {
            return values.into_iter().map(Some).collect();
        }
    }
}

/// The majority of an odd number of values.
fn majority(values: impl Iterator<Item = Value>) -> Value {
    let (attack, retreat) = values.fold((0, 0), |(a, r), v| match v {
        Value::Attack => (a + 1, r),
        Value::Retreat => (a, r + 1),
    });
    if attack > retreat {
        Value::Attack
    } else {
        Value::Retreat
    }
}

// ANCHOR: check
/// IC1 and IC2 over the loyal lieutenants' decisions; the violations found.
fn check(decisions: &BTreeMap<usize, Value>, traitor: Option<usize>, order: Value) -> Vec<String> {
    let loyal: Vec<(usize, Value)> =
        decisions.iter().filter(|(&l, _)| Some(l) != traitor).map(|(&l, &v)| (l, v)).collect();
    let mut problems = Vec::new();
    if loyal.iter().any(|&(_, v)| v != loyal[0].1) {
        let said: Vec<String> = loyal.iter().map(|&(l, v)| format!("{} {}", general(l), v.name())).collect();
        problems.push(format!("IC1: the loyal lieutenants disagree: {}", said.join(", ")));
    }
    if traitor != Some(0) {
        for &(l, v) in &loyal {
            if v != order {
                problems.push(format!(
                    "IC2: the loyal commander ordered {}, but L{l} decided {}",
                    order.name(),
                    v.name()
                ));
            }
        }
    }
    problems
}
// ANCHOR_END: check

fn main() {
    let flags = common::Flags::parse(USAGE);
    let nodes_mode = match flags.positional.first().map(String::as_str) {
        None => false,
        Some("nodes") => true,
        Some(other) => usage_error(&format!("unknown mode {other:?}")),
    };
    let seed = flags.usize("seed", 1) as u64;
    let traitor = match flags.str("traitor").unwrap_or("lieutenant") {
        "commander" => Some(0),
        "lieutenant" => match flags.usize("lieutenant", 2) {
            l @ 1..=3 => Some(l),
            other => usage_error(&format!("--lieutenant: expected 1, 2 or 3, got {other}")),
        },
        "none" => None,
        other => usage_error(&format!("--traitor: expected commander, lieutenant or none, got {other:?}")),
    };
    let order = match flags.str("order").unwrap_or("attack") {
        "attack" => Value::Attack,
        "retreat" => Value::Retreat,
        other => usage_error(&format!("--order: expected attack or retreat, got {other:?}")),
    };
    let timeout = Duration::from_millis(flags.usize("timeout-ms", 500) as u64);
    let silent = flags.has("silent");
    let conduct = move |general: usize| match traitor {
        Some(t) if t == general => Conduct::Traitor { seed, silent },
        _ => Conduct::Loyal,
    };
    println!(
        "byzantine_generals: OM(1), 4 generals, the traitor is {}; the commander's order is {}; seed {seed}",
        traitor.map_or("nobody".into(), general),
        order.name()
    );

    // One runtime for all, or with `nodes` one runtime and node per general.
    let runtimes: Vec<Runtime> = if nodes_mode {
        (0..4).map(|_| Runtime::builder().workers(1).build().expect("a runtime")).collect()
    } else {
        vec![Runtime::new()]
    };
    let nodes: Vec<Node> = if nodes_mode {
        let cookie = flags.str("cookie").unwrap_or("secret");
        let names = ["commander", "l1", "l2", "l3"];
        let start = |(rt, name): (&Runtime, &str)| {
            Node::start(rt, NodeConfig::new(format!("{name}@127.0.0.1:0"), cookie)).unwrap_or_else(|e| {
                eprintln!("byzantine_generals: cannot start node {name}: {e}");
                std::process::exit(1)
            })
        };
        let nodes: Vec<Node> = runtimes.iter().zip(names).map(start).collect();
        // Connected beforehand, so that no timeout of the algorithm waits for a handshake.
        for (i, node) in nodes.iter().enumerate() {
            for other in &nodes[i + 1..] {
                if let Err(e) = node.connect(other.name()) {
                    eprintln!("byzantine_generals: {} cannot reach {}: {e}", node.name(), other.name());
                    std::process::exit(1);
                }
            }
        }
        println!("nodes: {}", nodes.iter().map(Node::name).collect::<Vec<_>>().join(", "));
        nodes
    } else {
        Vec::new()
    };

    // ANCHOR: start
    let mut generals = Vec::new();
    for g in 0..4 {
        let rt = &runtimes[g % runtimes.len()];
        let pid = match g {
            0 => rt.spawn(commander(order, conduct(0))),
            l => rt.spawn(lieutenant(l, conduct(l), timeout)),
        };
        let address = match nodes.get(g) {
            Some(node) => Address { name: "general".into(), node: Some(node.name().to_owned()) },
            None => Address { name: format!("general{g}"), node: None },
        };
        rt.register(&address.name, pid).expect("the general's name is free");
        generals.push(address);
    }
    let report = Address { name: "main".into(), node: nodes.first().map(|node| node.name().to_owned()) };
    // ANCHOR_END: start

    let decisions = runtimes[0].block_on(async move {
        register("main", self_pid()).expect("the name main is free");
        for general in &generals {
            general.send(Roster { generals: generals.clone(), report: report.clone() });
        }
        let mut decisions = BTreeMap::new();
        while decisions.len() < LIEUTENANTS.len() {
            let Some(d) = recv_timeout::<Decision>(timeout * 4).await else { break };
            let heard: Vec<String> = d
                .heard
                .iter()
                .map(|(from, v)| format!("{} {}", general(*from), v.map_or("(nothing: retreat)", Value::name)))
                .collect();
            let note = if Some(d.lieutenant) == traitor { "   (the traitor: not checked)" } else { "" };
            println!("decide:  {:>9} heard {} -> {}{note}", general(d.lieutenant), heard.join(", "), d.value.name());
            decisions.insert(d.lieutenant, d.value);
        }
        decisions
    });
    nodes.iter().for_each(Node::shutdown);

    let mut problems = check(&decisions, traitor, order);
    if decisions.len() < LIEUTENANTS.len() {
        problems.push(format!("only {} of 3 lieutenants decided", decisions.len()));
    }
    if problems.is_empty() {
        let loyal: Vec<String> = decisions.keys().filter(|&&l| Some(l) != traitor).map(|&l| general(l)).collect();
        let plan = decisions.iter().find(|(&l, _)| Some(l) != traitor).map_or("-", |(_, v)| v.name());
        println!("ok: IC1 and IC2 hold: the loyal lieutenants {} all decide {plan}", loyal.join(", "));
    } else {
        for problem in &problems {
            println!("FAIL: {problem}");
        }
        std::process::exit(1);
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("byzantine_generals: {problem}\n{USAGE}");
    std::process::exit(2);
}
