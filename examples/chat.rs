// ANCHOR: all
//! A chat room as a process group: group communication, from the
//! lecture's chapter on groups (a message to a group reaches its members;
//! members come and go; a member that fails drops out of the group).
//!
//! The room is the `pg` group `room`. Five clients — alice, bob, carol,
//! dave, erin — join it. A host process runs a script: clients say things
//! to the room (`pg::broadcast`, which sends one copy to each member), one
//! by one and all at once; dave is killed mid-run, and drops out of the
//! room as the group sees him exit; carol leaves the room (`pg::leave`)
//! and hears nothing more. The trace shows who said what to whom and who
//! heard it.
//!
//! With `both`, alice, bob, carol and the host run on node a and dave and
//! erin on node b (two runtimes in this OS process, over 127.0.0.1): the
//! room spans both nodes, and dave is killed across the network.
//!
//! ```text
//! cargo run --release --example chat -- [both] [--burst 5]
//! ```
//!
//! Self-check (exit code 1 if it fails): every client keeps a log of what
//! it heard, and every sender tells the host whom each of its lines went
//! to (`broadcast` returns the members it sent to: the room as the sender's
//! node saw it then). At the end each surviving client's log must hold each
//! line sent to it exactly once, no line that was not sent to it, and each
//! sender's lines in the order they were said; and no line said after the
//! room had seen dave's death or carol's leave went to them.
//!
//! How the clients find the host: the host joins a second group, `hosts`,
//! and each client, once in the room, waits until that group has a member
//! and introduces itself to it.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use krarup::net::{Node, NodeConfig};
use krarup::pg;
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: chat [both] [--burst N]
  both     dave and erin on a second node (in this OS process, over 127.0.0.1)
  --burst  lines each client says when everyone talks at once (default 5)";

/// The chat room.
const ROOM: &str = "room";
/// Where clients find the host.
const HOSTS: &str = "hosts";
/// The bound on every wait: a lost message ends the run with an error, not a hang.
const TIMEOUT: Duration = Duration::from_secs(20);

// ANCHOR: messages
/// One line said to the room: what every member receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    from: String,
    /// The sender's line number, from 1.
    seq: u32,
    text: String,
}

/// From the host to a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Command {
    /// Answer `Ready` once the room, as your node sees it, has `members` members.
    Ready {
        members: usize,
    },
    /// Say `text` to the room.
    Say {
        text: String,
    },
    /// Say `count` lines to the room, as fast as you can.
    Burst {
        count: u32,
    },
    /// Leave the room.
    Leave,
    /// Send your log.
    Report,
    Stop,
}

/// From a client to the host.
#[derive(Debug, Serialize, Deserialize)]
enum Event {
    Joined {
        name: String,
        pid: Pid,
    },
    Ready {
        name: String,
    },
    /// `name` said line `seq`, and `broadcast` sent it to `to`.
    Said {
        name: String,
        seq: u32,
        to: Vec<Pid>,
    },
    /// `name` received line `seq` of `from`.
    Heard {
        name: String,
        from: String,
        seq: u32,
    },
    Left {
        name: String,
    },
    /// Everything `name` heard, in the order it heard it.
    Log {
        name: String,
        heard: Vec<(String, u32)>,
    },
}
// ANCHOR_END: messages

// ANCHOR: client
/// A chat client: joins the room, introduces itself to the host, then
/// hears lines and follows the host's commands.
async fn client(name: &'static str) {
    let me = self_pid();
    pg::join(ROOM, me).await.expect("a process joins its own node's room");
    let Some(host) = first_member(HOSTS, 1).await else { return };
    host.send(Event::Joined { name: name.to_owned(), pid: me });
    let mut said = 0;
    let mut heard = Vec::new();
    loop {
        receive! {
            line: Line => {
                host.send(Event::Heard { name: name.to_owned(), from: line.from.clone(), seq: line.seq });
                heard.push((line.from, line.seq));
            },
            command: Command => match command {
                Command::Ready { members } => {
                    if first_member(ROOM, members).await.is_some() {
                        host.send(Event::Ready { name: name.to_owned() });
                    }
                }
                Command::Say { text } => {
                    said += 1;
                    let to = pg::broadcast(ROOM, Line { from: name.to_owned(), seq: said, text });
                    host.send(Event::Said { name: name.to_owned(), seq: said, to });
                }
                Command::Burst { count } => {
                    for _ in 0..count {
                        said += 1;
                        let text = format!("{name}'s line {said}");
                        let to = pg::broadcast(ROOM, Line { from: name.to_owned(), seq: said, text });
                        host.send(Event::Said { name: name.to_owned(), seq: said, to });
                    }
                }
                Command::Leave => {
                    pg::leave(ROOM, me).await.expect("a member leaves");
                    host.send(Event::Left { name: name.to_owned() });
                }
                Command::Report => host.send(Event::Log { name: name.to_owned(), heard: std::mem::take(&mut heard) }),
                Command::Stop => return,
            },
            after TIMEOUT => return,
        }
    }
}
// ANCHOR_END: client

/// Waits until `group`, as this node sees it, has exactly `count` members
/// (at most [`TIMEOUT`]); one of them then. A group monitor gives the
/// members and then every change, so nothing is polled.
async fn first_member(group: &str, count: usize) -> Option<Pid> {
    let (watch, mut members) = pg::monitor(group).await.ok()?;
    let deadline = Instant::now() + TIMEOUT;
    while members.len() != count {
        let left = deadline.saturating_duration_since(Instant::now());
        receive! {
            event: pg::GroupEvent if event.monitor == watch => event.apply(&mut members),
            after left => break,
        }
    }
    let _ = pg::demonitor(watch).await;
    members.first().copied().filter(|_| members.len() == count)
}

/// One line as the host recorded it.
#[derive(Debug)]
struct Said {
    name: String,
    seq: u32,
    /// The names it was sent to.
    to: Vec<String>,
    /// The script step it was said in.
    step: usize,
}

/// The host's view of the run.
struct Host {
    /// Client names by Pid, and Pids by name.
    names: BTreeMap<Pid, String>,
    pids: BTreeMap<String, Pid>,
    said: Vec<Said>,
    /// The script step now.
    step: usize,
    /// Who is gone, and from which step on nothing may be sent to them.
    gone: BTreeMap<String, usize>,
}

impl Host {
    fn pid(&self, name: &str) -> Pid {
        self.pids[name]
    }

    fn room(&self) -> String {
        let mut names: Vec<&str> = pg::members(ROOM).iter().map(|pid| self.name(*pid)).collect();
        names.sort_unstable();
        names.join(" ")
    }

    fn name(&self, pid: Pid) -> &str {
        self.names.get(&pid).map_or("?", String::as_str)
    }

    /// The next event, or an error after [`TIMEOUT`].
    async fn event(&self, what: &str) -> Result<Event, String> {
        recv_timeout::<Event>(TIMEOUT).await.ok_or_else(|| format!("no {what} within {TIMEOUT:?}"))
    }

    /// Asks the clients `names` to wait until the room, as their node sees
    /// it, has `members` members, and waits until each of them has.
    async fn sync(&mut self, names: &[&str], members: usize) -> Result<(), String> {
        for name in names {
            self.pid(name).send(Command::Ready { members });
        }
        let mut ready = 0;
        while ready < names.len() {
            match self.event("Ready").await? {
                Event::Ready { .. } => ready += 1,
                other => self.record(other)?,
            }
        }
        Ok(())
    }

    /// Records a `Said`; ignores `Heard`s (counted by `hear`).
    fn record(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Said { name, seq, to } => {
                let mut to: Vec<String> = to.iter().map(|&pid| self.name(pid).to_owned()).collect();
                to.sort_unstable();
                self.said.push(Said { name, seq, to, step: self.step });
                Ok(())
            }
            Event::Heard { .. } => Ok(()),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    /// Runs one step of the script, in which `lines` lines are said: waits
    /// for each `Said`, and for each line to be heard by every living
    /// member it was sent to. Prints who heard each line if `show`.
    async fn talk(&mut self, lines: usize, show: bool) -> Result<(), String> {
        self.step += 1;
        let first = self.said.len();
        let mut heard: BTreeMap<(String, u32), Vec<String>> = BTreeMap::new();
        let mut got = 0;
        loop {
            if self.said.len() == first + lines {
                let alive = |n: &&String| !self.gone.contains_key(n.as_str());
                let awaited: usize = self.said[first..].iter().map(|s| s.to.iter().filter(alive).count()).sum();
                if got >= awaited {
                    break;
                }
            }
            match self.event("Said or Heard").await? {
                Event::Heard { name, from, seq } => {
                    got += 1;
                    heard.entry((from, seq)).or_default().push(name);
                }
                other => self.record(other)?,
            }
        }
        if show {
            for said in &self.said[first..] {
                let by = heard.get(&(said.name.clone(), said.seq)).map_or_else(String::new, |names| names.join(" "));
                println!("  {} #{} went to [{}], heard by [{by}]", said.name, said.seq, said.to.join(" "));
            }
        }
        Ok(())
    }
}

// ANCHOR: host
/// The script, then the check.
async fn host(names: &[&'static str], burst: u32) -> Result<(), String> {
    pg::join(HOSTS, self_pid()).await.expect("the host joins its own node's group");
    let mut host =
        Host { names: BTreeMap::new(), pids: BTreeMap::new(), said: Vec::new(), step: 0, gone: BTreeMap::new() };
    while host.names.len() < names.len() {
        if let Event::Joined { name, pid } = host.event("Joined").await? {
            host.names.insert(pid, name.clone());
            host.pids.insert(name, pid);
        }
    }
    host.sync(names, 5).await?;
    println!("the room: {}", host.room());

    for (who, text) in [("alice", "hello, room"), ("bob", "hi alice"), ("dave", "dave here")] {
        println!("{who} says {text:?}");
        host.pid(who).send(Command::Say { text: text.to_owned() });
        host.talk(1, true).await?;
    }

    println!("everyone at once: {burst} lines each");
    for name in names {
        host.pid(name).send(Command::Burst { count: burst });
    }
    host.talk(names.len() * burst as usize, false).await?;
    println!("  {} lines, each heard by every member", names.len() * burst as usize);

    let dave = host.pid("dave");
    let reference = monitor(dave);
    exit(dave, ExitReason::Kill);
    let reason = receive! {
        down: Down if down.reference == reference => down.reason,
        after TIMEOUT => return Err("dave did not die".into()),
    };
    host.gone.insert("dave".into(), host.step + 1);
    let living = ["alice", "bob", "carol", "erin"];
    host.sync(&living, 4).await?;
    println!("dave is killed ({reason}); the room now: {}", host.room());

    println!("erin says \"where did dave go?\"");
    host.pid("erin").send(Command::Say { text: "where did dave go?".into() });
    host.talk(1, true).await?;

    host.pid("carol").send(Command::Leave);
    loop {
        match host.event("Left").await? {
            Event::Left { .. } => break,
            other => host.record(other)?,
        }
    }
    host.gone.insert("carol".into(), host.step + 1);
    host.sync(&living, 3).await?;
    println!("carol leaves; the room now: {}", host.room());

    let talkers = ["alice", "bob", "erin"];
    println!("alice, bob and erin at once: {burst} lines each");
    for name in talkers {
        host.pid(name).send(Command::Burst { count: burst });
    }
    host.talk(talkers.len() * burst as usize, false).await?;
    println!("  {} lines, each heard by every member", talkers.len() * burst as usize);

    println!("alice says \"bye\"");
    host.pid("alice").send(Command::Say { text: "bye".into() });
    host.talk(1, true).await?;

    let outcome = check(&mut host, &living).await;
    for name in living {
        host.pid(name).send(Command::Stop);
    }
    outcome
}
// ANCHOR_END: host

// ANCHOR: check
/// Collects the survivors' logs and checks them against what was said.
async fn check(host: &mut Host, living: &[&str]) -> Result<(), String> {
    for name in living {
        host.pid(name).send(Command::Report);
    }
    let mut logs: BTreeMap<String, Vec<(String, u32)>> = BTreeMap::new();
    while logs.len() < living.len() {
        match host.event("Log").await? {
            Event::Log { name, heard } => {
                logs.insert(name, heard);
            }
            other => host.record(other)?,
        }
    }
    let mut failures = Vec::new();
    let mut deliveries = 0;
    for (name, log) in &logs {
        for said in &host.said {
            let times = log.iter().filter(|(from, seq)| *from == said.name && *seq == said.seq).count();
            let expected = usize::from(said.to.contains(name));
            deliveries += times;
            if times != expected {
                failures.push(format!("{name} heard {} #{} {times} times, expected {expected}", said.name, said.seq));
            }
        }
        let mut last: BTreeMap<&str, u32> = BTreeMap::new();
        for (from, seq) in log {
            if !host.said.iter().any(|s| s.name == *from && s.seq == *seq) {
                failures.push(format!("{name} heard {from} #{seq}, which nobody said"));
            }
            if last.get(from.as_str()).is_some_and(|&before| before >= *seq) {
                failures.push(format!("{name} heard {from} #{seq} after a later line of {from}"));
            }
            last.insert(from, *seq);
        }
    }
    for said in &host.said {
        for (gone, from_step) in &host.gone {
            if said.step >= *from_step && said.to.contains(gone) {
                failures.push(format!("{} #{} went to {gone}, who was no longer in the room", said.name, said.seq));
            }
        }
    }
    println!(
        "check: {} lines said, {deliveries} deliveries in the logs of {}",
        host.said.len(),
        logs.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    if failures.is_empty() {
        println!("ok: every member present got every line once, in each sender's order; dave and carol got nothing after they were gone");
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
// ANCHOR_END: check

fn main() {
    let flags = common::Flags::parse(USAGE);
    let burst = flags.usize("burst", 5) as u32;
    let outcome = match flags.positional.first().map(String::as_str) {
        None => local(burst),
        Some("both") => both(burst),
        Some(other) => {
            eprintln!("chat: unknown mode {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = outcome {
        eprintln!("chat: FAILED: {error}");
        std::process::exit(1);
    }
}

const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Everyone on one runtime.
fn local(burst: u32) -> Result<(), String> {
    let rt = Runtime::new();
    for name in NAMES {
        rt.spawn(client(name));
    }
    rt.block_on(host(&NAMES, burst))
}

// ANCHOR: both
/// The host, alice, bob and carol on node a; dave and erin on node b.
fn both(burst: u32) -> Result<(), String> {
    let (rt_a, rt_b) = (Runtime::new(), Runtime::new());
    let start = |rt: &Runtime, name: &str| {
        Node::start(rt, NodeConfig::new(name, "chat")).map_err(|e| format!("node {name}: {e}"))
    };
    let a = start(&rt_a, "a@127.0.0.1:0")?;
    let b = start(&rt_b, "b@127.0.0.1:0")?;
    a.connect(b.name()).map_err(|e| format!("connecting to {}: {e}", b.name()))?;
    println!("node {}: the host, alice, bob, carol; node {}: dave, erin", a.name(), b.name());
    for name in NAMES {
        let rt = if matches!(name, "dave" | "erin") { &rt_b } else { &rt_a };
        rt.spawn(client(name));
    }
    let outcome = rt_a.block_on(host(&NAMES, burst));
    a.shutdown();
    b.shutdown();
    outcome
}
// ANCHOR_END: both
// ANCHOR_END: all
