//! Primary-backup replication (passive replication): a key-value server
//! that survives the crash of its primary, because a backup holds every
//! write the primary ever acknowledged and takes over when a monitor tells
//! it that the primary is gone. The lecture's concepts: replication for
//! fault tolerance, a fail-stop server, failure detection (here a monitor,
//! Erlang's `erlang:monitor(process, Primary)`), fail-over, and
//! at-most-once execution of retried requests by request ids.
//!
//! The protocol, step by step:
//!
//! 1. Clients send `put key value` and `get key` requests to the process
//!    registered as `kv` (they do not know which process that is). Each
//!    request carries an id: the client's number and a sequence number that
//!    grows with every new request of that client.
//! 2. For a write, the primary sends `Replicate` to the backup and waits for
//!    its `Replicated` before it applies the write and replies. So a write
//!    the client has seen acknowledged is on both replicas, and a read at
//!    the primary never sees a write that the backup does not have.
//! 3. The backup monitors the primary. When the primary dies, its `Down`
//!    arrives after every message the primary sent (krarup keeps Erlang's
//!    ordering), so the backup has all the writes the primary replicated. It
//!    registers itself as `kv` and carries on as the primary (alone: a real
//!    system would now recruit a new backup).
//! 4. A client that gets no reply within `--timeout-ms` sends the same
//!    request again, with the same id, to `kv` (on the next node, across
//!    nodes). Both replicas remember, per client, the highest sequence number
//!    they applied: a write that comes again is acknowledged again but not
//!    applied twice. That matters for the write the primary dies on after the
//!    backup applied it (`--kill-at replicated`): the client never saw its
//!    acknowledgement, retries, and the new primary already has it.
//!
//! A chaos monkey (`main`'s process) kills the primary with
//! `exit(primary, Kill)` at a chosen point: when it is about to handle its
//! `--kill-after N`-th write, either just after receiving it (`--kill-at
//! received`: the write is on neither replica) or just after the backup
//! acknowledged it (`--kill-at replicated`: on the backup only). The primary
//! stops at that point and tells the monkey, so the run is the same every
//! time (a fault-injection hook; the rest of the primary does not know).
//!
//! At the end the monkey asks `kv` for its store and checks: every client
//! got a reply to every request; every read returned the value of the
//! client's last acknowledged write of that key (across the fail-over);
//! every acknowledged write is in the new primary's store with its value
//! (the last write of each key) and in its log of applied writes; no write
//! is applied twice; and, if the primary was killed, the backup is the one
//! answering. It prints `ok: ...` or exits with 1.
//!
//! ```text
//! cargo run --release --example primary_backup
//! cargo run --release --example primary_backup -- --kill-after 3 --kill-at received --seed 7
//! cargo run --release --example primary_backup -- both
//! ```
//!
//! `both` runs the primary on node `a` and the backup, the clients and the
//! monkey on node `b`: two krarup-net nodes in this OS process, on
//! 127.0.0.1 and ports the system picks. Then the primary's replication
//! crosses the network, the kill is an exit signal sent to a remote Pid, the
//! monitor's `Down` comes back across the network, and clients look for `kv`
//! on node `a`, then on node `b`. (A Pid prints as `<node.index.serial>`,
//! the node numbered by the runtime that prints it: the primary shows as
//! `<0.0.0>` in its own lines and as, say, `<3.0.0>` in the monkey's.)
//!
//! Flags: `--clients N` (3), `--requests N` per client (8),
//! `--kill-after N` (5; 0: no kill), `--kill-at received|replicated`
//! (`replicated`), `--timeout-ms N` (100), `--seed N` (1), `--cookie S`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::rng::SplitMix;
use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: primary_backup [both] [--clients N] [--requests N] [--kill-after N] [--kill-at received|replicated]
                      [--timeout-ms N] [--seed N] [--cookie SECRET]";

/// How many times a client sends one request before it gives up.
const MAX_ATTEMPTS: usize = 50;

/// How long the monkey waits for anything before it calls the run a failure.
const PATIENCE: Duration = Duration::from_secs(10);

// ANCHOR: messages
/// A request's identity: the client and its sequence number (1, 2, ...).
/// A retried request keeps its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct RequestId {
    client: u32,
    seq: u64,
}

impl std::fmt::Display for RequestId {
    /// `c1#5`: client 1's fifth request.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}#{}", self.client, self.seq)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Op {
    Put { key: String, value: String },
    Get { key: String },
}

/// Client to `kv`.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    from: Pid,
    id: RequestId,
    op: Op,
}

/// `kv` to client: the value written, or the value read (None: no such key).
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: RequestId,
    value: Option<String>,
}

/// Primary to backup: apply this write, then say so.
#[derive(Debug, Serialize, Deserialize)]
struct Replicate {
    from: Pid,
    id: RequestId,
    key: String,
    value: String,
}

/// Backup to primary: the write is applied (or had been).
#[derive(Debug, Serialize, Deserialize)]
struct Replicated {
    id: RequestId,
}
// ANCHOR_END: messages

/// Primary to backup at start: monitor me. The backup answers `Joined`.
#[derive(Debug, Serialize, Deserialize)]
struct Join {
    primary: Pid,
}

#[derive(Debug, Serialize, Deserialize)]
struct Joined;

/// Backup to monkey: the pair is up.
#[derive(Debug, Serialize, Deserialize)]
struct Ready {
    primary: Pid,
    backup: Pid,
}

/// Primary to monkey: it stopped at the kill point of this write.
#[derive(Debug, Serialize, Deserialize)]
struct AtKillPoint {
    write: u64,
}

/// Monkey to `kv`: send me your store.
#[derive(Debug, Serialize, Deserialize)]
struct Dump {
    from: Pid,
}

/// `kv` to monkey.
#[derive(Debug, Serialize, Deserialize)]
struct Contents {
    server: Pid,
    data: BTreeMap<String, String>,
    log: Vec<RequestId>,
}

/// What a client did, for the self-check.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ClientReport {
    client: u32,
    /// Acknowledged writes, in order: id, key, value.
    acked: Vec<(RequestId, String, String)>,
    retries: usize,
    /// Problems the client saw itself (a wrong read, a request never answered).
    problems: Vec<String>,
}

/// Where the primary stops for the monkey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillAt {
    /// Having received the write, before replicating it.
    Received,
    /// After the backup acknowledged the write, before applying and replying.
    Replicated,
}

/// Where a name lives: this runtime (`None`) or a node.
type Place = Option<String>;

/// Sends to the process registered as `name` at `place`; a name nobody has
/// drops the message, as Erlang's `{Name, Node} ! Msg` does.
fn send_to<M: Message>(name: &str, place: &Place, msg: M) {
    match place {
        None => {
            let _ = send_named(name, msg);
        }
        Some(node) => send_named_at(name, node, msg),
    }
}

/// Milliseconds since the program started, for the trace.
fn stamp() -> String {
    static START: OnceLock<Instant> = OnceLock::new();
    format!("{:>5} ms", START.get_or_init(Instant::now).elapsed().as_millis())
}

// ANCHOR: store
/// One replica's state.
#[derive(Default)]
struct Store {
    data: BTreeMap<String, String>,
    /// Per client, the highest sequence number of a write applied: a write
    /// at or below it is a retry of one already applied.
    applied: HashMap<u32, u64>,
    /// Every write applied, in order (kept only for the self-check).
    log: Vec<RequestId>,
}

impl Store {
    fn has_applied(&self, id: RequestId) -> bool {
        self.applied.get(&id.client).is_some_and(|&seq| id.seq <= seq)
    }

    /// Applies a write unless it was applied already; says whether it was new.
    fn apply(&mut self, id: RequestId, key: &str, value: &str) -> bool {
        if self.has_applied(id) {
            return false;
        }
        self.data.insert(key.to_owned(), value.to_owned());
        self.applied.insert(id.client, id.seq);
        self.log.push(id);
        true
    }
}
// ANCHOR_END: store

// ANCHOR: primary
/// The primary: serves requests one at a time; a new write goes to the
/// backup first. `kill` is the monkey's fault-injection point.
async fn primary(mut store: Store, mut backup: Option<Pid>, kill: Option<(u64, KillAt, Place)>) {
    let mut watch = backup.map(monitor);
    let mut writes = 0;
    loop {
        let request = receive! {
            request: Request => request,
            dump: Dump => {
                let contents = Contents { server: self_pid(), data: store.data.clone(), log: store.log.clone() };
                dump.from.send(contents);
                continue;
            }
            down: Down if Some(down.reference) == watch => {
                println!("{}  primary: backup {} is down ({}); serving alone", stamp(), down.pid, down.reason);
                (backup, watch) = (None, None);
                continue;
            }
        };
        let Request { from, id, op } = request;
        let (key, value) = match op {
            Op::Get { key } => {
                from.send(Reply { id, value: store.data.get(&key).cloned() });
                continue;
            }
            Op::Put { key, value } => (key, value),
        };
        if store.has_applied(id) {
            println!("{}  primary: {id} is a retry of an applied write: acknowledged, not applied again", stamp());
            from.send(Reply { id, value: Some(value) });
            continue;
        }
        writes += 1;
        stop_here_if(&kill, writes, KillAt::Received).await;
        if let Some(to) = backup {
            to.send(Replicate { from: self_pid(), id, key: key.clone(), value: value.clone() });
            receive! {
                done: Replicated if done.id == id => {}
                down: Down if Some(down.reference) == watch => {
                    println!("{}  primary: backup {} is down ({}); serving alone", stamp(), down.pid, down.reason);
                    (backup, watch) = (None, None);
                }
            }
        }
        stop_here_if(&kill, writes, KillAt::Replicated).await;
        store.apply(id, &key, &value);
        from.send(Reply { id, value: Some(value) });
    }
}
// ANCHOR_END: primary

/// The fault-injection hook: at the monkey's chosen write and point, tells
/// the monkey and waits for the kill.
async fn stop_here_if(kill: &Option<(u64, KillAt, Place)>, write: u64, point: KillAt) {
    if let Some((n, at, monkey)) = kill {
        if *n == write && *at == point {
            send_to("monkey", monkey, AtKillPoint { write });
            std::future::pending::<()>().await;
        }
    }
}

/// The primary's start: registers as `kv` and joins the backup (registered
/// as `kv_backup` at `backup_at`), asking again until it answers.
async fn start_primary(backup_at: Place, kill: Option<(u64, KillAt)>) {
    register("kv", self_pid()).expect("nobody else is kv yet");
    let backup = 'join: {
        for _ in 0..MAX_ATTEMPTS {
            send_to("kv_backup", &backup_at, Join { primary: self_pid() });
            if let Some(backup) = receive! {
                (backup, Joined): (Pid, Joined) => Some(backup),
                after Duration::from_millis(10) => None,
            } {
                break 'join backup;
            }
        }
        panic!("the backup never answered");
    };
    println!("{}  primary {}: registered as kv, backup {backup}", stamp(), self_pid());
    primary(Store::default(), Some(backup), kill.map(|(n, at)| (n, at, backup_at))).await
}

// ANCHOR: backup
/// The backup: applies what the primary replicates, and takes over as `kv`
/// when the monitor says the primary is down.
async fn backup(monkey: Pid) {
    let Join { primary: primary_pid } = recv().await;
    let watch = monitor(primary_pid);
    primary_pid.send((self_pid(), Joined));
    monkey.send(Ready { primary: primary_pid, backup: self_pid() });
    let mut store = Store::default();
    let reason = loop {
        receive! {
            write: Replicate => {
                let new = store.apply(write.id, &write.key, &write.value);
                let note = if new { "" } else { " (had it already)" };
                println!("{}    backup: applies {} put {} = {}{note}", stamp(), write.id, write.key, write.value);
                write.from.send(Replicated { id: write.id });
            }
            down: Down if down.reference == watch => break down.reason,
        }
    };
    println!("{}  backup {}: primary {primary_pid} is down ({reason}); taking over as kv", stamp(), self_pid());
    let _ = unregister("kv_backup");
    register("kv", self_pid()).expect("the name kv is free on this node");
    primary(store, None, None).await
}
// ANCHOR_END: backup

// ANCHOR: client
/// Sends one request until `kv` answers it, trying the places in turn.
async fn request(
    id: RequestId,
    op: Op,
    places: &[Place],
    current: &mut usize,
    timeout: Duration,
    report: &mut ClientReport,
) -> Option<Option<String>> {
    for attempt in 1..=MAX_ATTEMPTS {
        send_to("kv", &places[*current], Request { from: self_pid(), id, op: op.clone() });
        let answer = loop {
            receive! {
                reply: Reply if reply.id == id => break Some(reply.value),
                _late: Reply => continue, // for a request already answered
                after timeout => break None,
            }
        };
        if answer.is_some() {
            return answer;
        }
        report.retries += 1;
        *current = (*current + 1) % places.len();
        let at = places[*current].as_deref().unwrap_or("this node");
        println!("{}  client {}: no reply to {id} ({attempt}); again to kv at {at}", stamp(), id.client);
    }
    None
}
// ANCHOR_END: client

/// A client: `requests` requests, three in four a write, on its own keys
/// (so it knows what each read must return).
async fn client(number: u32, requests: u64, seed: u64, places: Vec<Place>, timeout: Duration) -> ClientReport {
    let mut rng = SplitMix(seed ^ (u64::from(number) << 32));
    let mut report = ClientReport { client: number, ..ClientReport::default() };
    let mut mine: BTreeMap<String, String> = BTreeMap::new();
    let mut current = 0;
    for seq in 1..=requests {
        let id = RequestId { client: number, seq };
        let key = format!("c{number}.k{}", rng.below(3));
        let write = mine.is_empty() || rng.below(4) != 0;
        let op = if write {
            Op::Put { key: key.clone(), value: format!("v{}", rng.below(1000)) }
        } else {
            Op::Get { key: key.clone() }
        };
        let Some(answer) = request(id, op.clone(), &places, &mut current, timeout, &mut report).await else {
            report.problems.push(format!("{id} was never answered"));
            break;
        };
        match op {
            Op::Put { key, value } => {
                println!("{}  client {number}: put {key} = {value} acknowledged", stamp());
                mine.insert(key.clone(), value.clone());
                report.acked.push((id, key, value));
            }
            Op::Get { key } => {
                let want = mine.get(&key);
                println!("{}  client {number}: get {key} -> {answer:?}", stamp());
                if answer.as_ref() != want {
                    report.problems.push(format!("get {key} returned {answer:?}, but the last write was {want:?}"));
                }
            }
        }
    }
    report
}

struct Options {
    clients: u32,
    requests: u64,
    kill: Option<(u64, KillAt)>,
    timeout: Duration,
    seed: u64,
}

/// What the monkey found, for `check`.
struct Outcome {
    reports: Vec<ClientReport>,
    contents: Option<Contents>,
    primary: Pid,
    backup: Pid,
    killed: Option<ExitReason>,
}

// ANCHOR: monkey
/// The chaos monkey and test driver: starts the backup, waits for the pair,
/// runs the clients, kills the primary at its kill point, and finally asks
/// `kv` for its store.
async fn monkey(opts: Options, places: Vec<Place>) -> Outcome {
    register("monkey", self_pid()).expect("the name monkey is free");
    let backup_pid = spawn(backup(self_pid()));
    register("kv_backup", backup_pid).expect("the name kv_backup is free");
    let Ready { primary, backup } = recv_timeout(PATIENCE).await.expect("the primary joins its backup");
    assert_eq!(backup, backup_pid);
    let primary_watch = monitor(primary);
    let mut clients = HashMap::new();
    for number in 1..=opts.clients {
        let places = places.clone();
        let (pid, _) = spawn_monitor(async move {
            let report = client(number, opts.requests, opts.seed, places, opts.timeout).await;
            send_named("monkey", report).expect("the monkey waits");
        });
        clients.insert(pid, number);
    }
    let mut reports = Vec::new();
    let mut killed = None;
    while reports.len() < clients.len() {
        receive! {
            stop: AtKillPoint => {
                println!("{}  monkey: the primary is at write {}; exit({primary}, kill)", stamp(), stop.write);
                exit(primary, ExitReason::Kill);
            }
            down: Down if down.reference == primary_watch => {
                println!("{}  monkey: primary {} is down ({})", stamp(), down.pid, down.reason);
                killed = Some(down.reason);
            }
            report: ClientReport => reports.push(report),
            down: Down if clients.contains_key(&down.pid) && down.reason != ExitReason::Normal => {
                panic!("client {} failed: {}", clients[&down.pid], down.reason)
            }
            after PATIENCE => panic!("no client finished within {PATIENCE:?}"),
        }
    }
    let mut contents = None;
    for place in places.iter().cycle().take(2 * places.len()) {
        send_to("kv", place, Dump { from: self_pid() });
        if let Some(answer) = recv_timeout::<Contents>(opts.timeout * 2).await {
            contents = Some(answer);
            break;
        }
    }
    Outcome { reports, contents, primary, backup, killed }
}
// ANCHOR_END: monkey

// ANCHOR: check
/// The self-check: the problems found, none if the protocol held.
fn check(outcome: &Outcome, kill: Option<(u64, KillAt)>) -> Vec<String> {
    let mut problems: Vec<String> = outcome.reports.iter().flat_map(|r| r.problems.clone()).collect();
    let Some(contents) = &outcome.contents else {
        problems.push("kv did not answer the final Dump".into());
        return problems;
    };
    // Every acknowledged write is applied, and the last one of each key is its value.
    let applied: HashMap<RequestId, usize> = contents.log.iter().fold(HashMap::new(), |mut count, id| {
        *count.entry(*id).or_default() += 1;
        count
    });
    let mut last = BTreeMap::new();
    for (id, key, value) in outcome.reports.iter().flat_map(|r| &r.acked) {
        if !applied.contains_key(id) {
            problems.push(format!("acknowledged write {id} ({key} = {value}) is not in the store's log"));
        }
        last.insert(key, value);
    }
    for (key, value) in last {
        if contents.data.get(key) != Some(value) {
            problems.push(format!("{key}: acknowledged {value}, but the store has {:?}", contents.data.get(key)));
        }
    }
    // No write is applied twice, and none that was not asked for.
    for (id, n) in &applied {
        if *n > 1 {
            problems.push(format!("write {id} was applied {n} times"));
        }
    }
    let acked: usize = outcome.reports.iter().map(|r| r.acked.len()).sum();
    if contents.log.len() != acked {
        problems.push(format!("{} writes applied, {acked} acknowledged", contents.log.len()));
    }
    // After a kill, the backup serves.
    match (&outcome.killed, kill) {
        (Some(ExitReason::Killed), _) if contents.server != outcome.backup => {
            problems.push(format!("the primary was killed, but {} answered, not the backup", contents.server))
        }
        (Some(ExitReason::Killed), _) | (None, None) => {}
        (None, Some(_)) => println!("note: the kill point was never reached (too few writes); nobody was killed"),
        (Some(reason), _) => problems.push(format!("the primary ended with {reason}, not killed")),
    }
    problems
}
// ANCHOR_END: check

fn main() {
    let flags = common::Flags::parse(USAGE);
    let both = match flags.positional.first().map(String::as_str) {
        None => false,
        Some("both") => true,
        Some(other) => usage_error(&format!("unknown mode {other:?}")),
    };
    let kill_at = match flags.str("kill-at").unwrap_or("replicated") {
        "received" => KillAt::Received,
        "replicated" => KillAt::Replicated,
        other => usage_error(&format!("--kill-at: expected received or replicated, got {other:?}")),
    };
    let kill_after = flags.usize("kill-after", 5) as u64;
    let opts = Options {
        clients: flags.usize("clients", 3).clamp(1, 1000) as u32,
        requests: flags.usize("requests", 8) as u64,
        kill: (kill_after > 0).then_some((kill_after, kill_at)),
        timeout: Duration::from_millis(flags.usize("timeout-ms", 100).max(1) as u64),
        seed: flags.usize("seed", 1) as u64,
    };
    let kill = opts.kill;
    stamp();
    println!(
        "primary_backup: {} clients x {} requests, {}, seed {}{}",
        opts.clients,
        opts.requests,
        match kill {
            Some((n, at)) => format!("the primary is killed at write {n} ({at:?})"),
            None => "no kill".into(),
        },
        opts.seed,
        if both { ", primary on node a, backup on node b" } else { "" }
    );

    let (outcome, nodes) = if both {
        let cookie = flags.str("cookie").unwrap_or("secret");
        let (rt_a, rt_b) = (Runtime::new(), Runtime::new());
        let start = |rt: &Runtime, name: &str| {
            Node::start(rt, NodeConfig::new(name, cookie)).unwrap_or_else(|e| {
                eprintln!("primary_backup: cannot start node {name}: {e}");
                std::process::exit(1)
            })
        };
        let (a, b) = (start(&rt_a, "a@127.0.0.1:0"), start(&rt_b, "b@127.0.0.1:0"));
        println!("nodes {} (primary) and {} (backup, clients, monkey)", a.name(), b.name());
        rt_a.spawn(start_primary(Some(b.name().to_owned()), kill));
        let places = vec![Some(a.name().to_owned()), Some(b.name().to_owned())];
        (rt_b.block_on(monkey(opts, places)), Some((a, b, rt_a, rt_b)))
    } else {
        let rt = Runtime::new();
        rt.spawn(start_primary(None, kill));
        (rt.block_on(monkey(opts, vec![None])), None)
    };
    if let Some((a, b, _rt_a, _rt_b)) = nodes {
        a.shutdown();
        b.shutdown();
    }

    let problems = check(&outcome, kill);
    let acked: usize = outcome.reports.iter().map(|r| r.acked.len()).sum();
    let retries: usize = outcome.reports.iter().map(|r| r.retries).sum();
    let serving = match &outcome.killed {
        Some(reason) => format!("primary {} ended ({reason}), backup {} took over", outcome.primary, outcome.backup),
        None => format!("primary {} still serves, with backup {}", outcome.primary, outcome.backup),
    };
    println!("{serving}; {acked} writes acknowledged, {retries} retries");
    if problems.is_empty() {
        println!("ok: every acknowledged write survived the fail-over, none applied twice");
    } else {
        for problem in &problems {
            println!("FAIL: {problem}");
        }
        std::process::exit(1);
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("primary_backup: {problem}\n{USAGE}");
    std::process::exit(2);
}
