//! The coke machine: the producer-consumer server of the lecture notes.
//!
//! A server process holds at most `Max` cokes. `produce` requests add one,
//! `consume` requests take one, and each request is answered with `ok`. A
//! request that cannot be served yet — produce when full, consume when
//! empty — is *deferred by selective receive*: when the machine is full its
//! receive only accepts `consume`, so `produce` requests stay in the mailbox
//! until there is room; when it is empty only `produce` is accepted. No
//! threads, no busy waiting, and no queue of pending requests kept by hand:
//! the mailbox is the queue. The Erlang original:
//!
//! ```erlang
//! -module(coke).
//! -export([start/1, produce/1, consume/1]).
//!
//! start(Max) -> spawn(fun() -> loop(0, Max) end).
//!
//! loop(0, Max) ->
//!     receive {From, produce} -> From ! ok, loop(1, Max) end;
//! loop(Max, Max) ->
//!     receive {From, consume} -> From ! ok, loop(Max - 1, Max) end;
//! loop(N, Max) ->
//!     receive
//!         {From, produce} -> From ! ok, loop(N + 1, Max);
//!         {From, consume} -> From ! ok, loop(N - 1, Max)
//!     end.
//!
//! produce(Machine) -> Machine ! {self(), produce}, receive ok -> ok end.
//! consume(Machine) -> Machine ! {self(), consume}, receive ok -> ok end.
//! ```
//!
//! How each line maps:
//!
//! - `start(Max) -> spawn(fun() -> loop(0, Max) end).` is `start(max, tally)`,
//!   which spawns `coke_machine(max, tally)`; `let mut n = 0` is the `0` of
//!   `loop(0, Max)`. (`tally` counts and traces; it is not in the lecture.)
//! - The three clauses of `loop(N, Max)` are the three arms of `match n`.
//!   `loop(0, Max)` is the arm `0`. `loop(Max, Max)` is the arm
//!   `n if n == max`: Erlang's repeated variable matches by equality, a Rust
//!   pattern variable is always fresh, so the equality becomes a guard.
//!   `loop(N, Max)` is the catch-all arm `n`. Clauses are tried in order in
//!   both languages, so a machine of capacity 1 is "empty" or "full", never
//!   "in between".
//! - `{From, produce}` is the clause `(from, Produce): (Pid, Produce)`: the
//!   atoms `produce`, `consume` and `ok` are the unit structs `Produce`,
//!   `Consume` and `Ack` (`Ok` is taken by `Result`).
//! - `From ! ok, loop(N + 1, Max)` is the clause's value `(from, n + 1)`:
//!   the reply and the tail call are the same in every clause, so they come
//!   once, after the `match` — `from.send(Ack)` and `n = next` in a Rust
//!   `loop`. In between, an `assert!` checks that the count stays within
//!   `0..=max` (it does, by construction: that is the point of the example).
//! - The receives that do the deferring are those of the arms `0` and
//!   `n == max`: a message no clause accepts stays in the mailbox, in
//!   order, and the next receive — in the next state — finds it there.
//! - `produce(Machine)` and `consume(Machine)` are the `async fn`s of the same
//!   names: `Machine ! {self(), produce}` is
//!   `machine.send((self_pid(), Produce))`, `receive ok -> ok end` is
//!   `recv::<Ack>().await`.
//!
//! Not in the lecture, for checking: every state also accepts `Stop`, which
//! answers with a [`Report`] (the final count, how many requests were
//! served) and ends the machine. `main` starts the machine, `--producers P`
//! producer processes that produce `--items K` cokes each and
//! `--consumers C` consumer processes that consume P·K/C each (the remainder
//! spread over the first ones, so the totals balance), waits for all of them
//! through monitors, stops the machine, and checks that the final count is 0
//! and that 2·P·K requests were served. It exits non-zero if anything is off
//! — a client failed, the machine panicked on its assertion, or the run
//! got stuck (no client finished for 10 seconds).
//!
//! `--gen-server` runs the same machine written as a `GenServer`. A
//! gen_server takes its messages strictly in order, so it cannot leave a
//! request in the mailbox: it parks the request's `ReplyTo`, answers
//! `CallReply::NoReply`, and replies later (a *deferred reply*), when a
//! request of the other kind makes room. The queue that selective receive
//! keeps in the mailbox is kept by hand there.
//!
//! ```text
//! cargo run --release --example coke_machine -- [--capacity 5] [--producers 3] [--consumers 3] [--items 100] [--trace] [--gen-server]
//! ```
//!
//! Prints the first requests served (all of them with `--trace`) and a
//! summary ending in `final count 0`.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use krarup::prelude::*;
use krarup::{gen_server, spawn_monitor, CallError, CallReply, GenServer, ReplyTo, ServerRef};
use serde::{Deserialize, Serialize};

const USAGE: &str = "usage: coke_machine [--capacity 5] [--producers 3] [--consumers 3] [--items 100] \
                     [--trace] [--gen-server]";

/// How long anything may take before the run is declared stuck.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How many requests the trace shows without `--trace`.
const FIRST_LINES: usize = 12;

// ANCHOR: machine
/// Erlang's atom `produce`.
#[derive(Serialize, Deserialize)]
struct Produce;

/// Erlang's atom `consume`.
#[derive(Serialize, Deserialize)]
struct Consume;

/// Erlang's atom `ok`: the reply to either request.
#[derive(Serialize, Deserialize)]
struct Ack;

/// Not in the lecture: asks the machine for its [`Report`] and ends it.
#[derive(Serialize, Deserialize)]
struct Stop;

fn start(max: i64, tally: Tally) -> Pid {
    spawn(coke_machine(max, tally))
}

async fn coke_machine(max: i64, mut tally: Tally) {
    let mut n = 0;
    loop {
        let (from, next) = match n {
            // Empty: only `produce` is taken; `consume` requests wait in the mailbox.
            0 => receive! {
                (from, Produce): (Pid, Produce) => (from, 1),
                (from, Stop): (Pid, Stop) => return from.send(tally.report(n)),
            },
            // Full: only `consume` is taken; `produce` requests wait in the mailbox.
            n if n == max => receive! {
                (from, Consume): (Pid, Consume) => (from, max - 1),
                (from, Stop): (Pid, Stop) => return from.send(tally.report(n)),
            },
            // In between: both, oldest first.
            n => receive! {
                (from, Produce): (Pid, Produce) => (from, n + 1),
                (from, Consume): (Pid, Consume) => (from, n - 1),
                (from, Stop): (Pid, Stop) => return from.send(tally.report(n)),
            },
        };
        assert!((0..=max).contains(&next), "the machine went from {n} to {next} cokes (capacity {max})");
        from.send(Ack);
        tally.served(from, n, next, max);
        n = next;
    }
}

async fn produce(machine: Pid) {
    machine.send((self_pid(), Produce));
    recv::<Ack>().await;
}

async fn consume(machine: Pid) {
    machine.send((self_pid(), Consume));
    recv::<Ack>().await;
}
// ANCHOR_END: machine

// ANCHOR: gen_server
/// The coke machine as a `GenServer`: the same states, but requests that
/// must wait are parked by hand and answered later (deferred replies).
struct CokeServer {
    count: i64,
    max: i64,
    /// Produce requests waiting for room (only while full).
    producers: VecDeque<ReplyTo<Reply>>,
    /// Consume requests waiting for a coke (only while empty).
    consumers: VecDeque<ReplyTo<Reply>>,
    tally: Tally,
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Produce,
    Consume,
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Ok,
    Report(Report),
}

impl GenServer for CokeServer {
    type Call = Request;
    type Reply = Reply;
    type Cast = ();

    async fn handle_call(&mut self, request: Request, from: ReplyTo<Reply>) -> CallReply<Reply> {
        match request {
            // Full or empty: keep `from`, answer later.
            Request::Produce if self.count == self.max => {
                self.tally.deferred(from.caller(), "produce", "full");
                self.producers.push_back(from);
                CallReply::NoReply
            }
            Request::Consume if self.count == 0 => {
                self.tally.deferred(from.caller(), "consume", "empty");
                self.consumers.push_back(from);
                CallReply::NoReply
            }
            // Serve, then the oldest request of the other kind that was waiting.
            Request::Produce => {
                self.serve(from, 1);
                if let Some(consumer) = self.consumers.pop_front() {
                    self.serve(consumer, -1);
                    consumer.reply(Reply::Ok);
                }
                CallReply::Reply(Reply::Ok)
            }
            Request::Consume => {
                self.serve(from, -1);
                if let Some(producer) = self.producers.pop_front() {
                    self.serve(producer, 1);
                    producer.reply(Reply::Ok);
                }
                CallReply::Reply(Reply::Ok)
            }
            Request::Stop => CallReply::Stop(ExitReason::Normal, Some(Reply::Report(self.tally.report(self.count)))),
        }
    }
}

impl CokeServer {
    fn serve(&mut self, who: ReplyTo<Reply>, delta: i64) {
        let next = self.count + delta;
        assert!((0..=self.max).contains(&next), "the server went from {} to {next} cokes", self.count);
        assert!(self.producers.is_empty() || self.consumers.is_empty(), "producers and consumers both waiting");
        self.tally.served(who.caller(), self.count, next, self.max);
        self.count = next;
    }
}
// ANCHOR_END: gen_server

/// Not in the lecture: what the machine counts, and its trace.
struct Tally {
    served: u64,
    full: u64,
    empty: u64,
    deferred: u64,
    /// Print every request, not only the first [`FIRST_LINES`].
    trace_all: bool,
    lines: usize,
}

/// The machine's answer to `Stop`.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    /// Cokes in the machine.
    count: i64,
    /// Requests served.
    served: u64,
    /// How often the machine became full, and empty.
    full: u64,
    empty: u64,
    /// Requests parked by the `GenServer` (0 with selective receive).
    deferred: u64,
}

impl Tally {
    fn new(trace_all: bool) -> Tally {
        Tally { served: 0, full: 0, empty: 0, deferred: 0, trace_all, lines: 0 }
    }

    /// A request from `by` took the count from `n` to `next`.
    fn served(&mut self, by: Pid, n: i64, next: i64, max: i64) {
        self.served += 1;
        let what = if next > n { "produce" } else { "consume" };
        let note = if next == max {
            self.full += 1;
            "  full: produce requests wait"
        } else if next == 0 {
            self.empty += 1;
            "  empty: consume requests wait"
        } else {
            ""
        };
        self.trace(|| format!("{what} by {:<9} {} {next}/{max}{note}", by.to_string(), gauge(next, max)));
    }

    /// A request from `by` was parked (`GenServer` only).
    fn deferred(&mut self, by: Pid, what: &str, state: &str) {
        self.deferred += 1;
        self.trace(|| format!("{what} by {:<9} deferred: the machine is {state}", by.to_string()));
    }

    fn report(&self, count: i64) -> Report {
        Report { count, served: self.served, full: self.full, empty: self.empty, deferred: self.deferred }
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.trace_all || self.lines < FIRST_LINES {
            println!("  {}", line());
        } else if self.lines == FIRST_LINES {
            println!("  ... (--trace prints every request)");
        }
        self.lines += 1;
    }
}

/// "1 time", "2 times".
fn times(n: u64) -> String {
    format!("{n} time{}", if n == 1 { "" } else { "s" })
}

/// `[###..]` for small capacities.
fn gauge(n: i64, max: i64) -> String {
    if max > 20 {
        return String::new();
    }
    format!("[{}{}]", "#".repeat(n as usize), ".".repeat((max - n) as usize))
}

/// The machine, whichever way it is written; what the clients call.
#[derive(Clone, Copy)]
enum Machine {
    Receive(Pid),
    GenServer(ServerRef<CokeServer>),
}

impl Machine {
    fn pid(self) -> Pid {
        match self {
            Machine::Receive(pid) => pid,
            Machine::GenServer(server) => server.pid(),
        }
    }

    async fn produce(self) -> Result<(), CallError> {
        match self {
            Machine::Receive(pid) => {
                produce(pid).await;
                Ok(())
            }
            Machine::GenServer(server) => server.call(Request::Produce, TIMEOUT).await.map(|_ok| ()),
        }
    }

    async fn consume(self) -> Result<(), CallError> {
        match self {
            Machine::Receive(pid) => {
                consume(pid).await;
                Ok(())
            }
            Machine::GenServer(server) => server.call(Request::Consume, TIMEOUT).await.map(|_ok| ()),
        }
    }

    /// Stops the machine and returns its report.
    async fn stop(self) -> Result<Report, String> {
        match self {
            Machine::Receive(pid) => {
                pid.send((self_pid(), Stop));
                receive! {
                    report: Report => Ok(report),
                    down: Down if down.pid == pid => Err(format!("the machine exited: {}", down.reason)),
                    after TIMEOUT => Err("the machine did not answer Stop".to_string()),
                }
            }
            Machine::GenServer(server) => match server.call(Request::Stop, TIMEOUT).await {
                Ok(Reply::Report(report)) => Ok(report),
                other => Err(format!("the server answered Stop with {other:?}")),
            },
        }
    }
}

async fn producer(machine: Machine, items: u64) -> Result<(), String> {
    for _ in 0..items {
        machine.produce().await.map_err(|e| format!("produce: {e}"))?;
    }
    Ok(())
}

async fn consumer(machine: Machine, items: u64) -> Result<(), String> {
    for _ in 0..items {
        machine.consume().await.map_err(|e| format!("consume: {e}"))?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Config {
    capacity: i64,
    producers: u64,
    consumers: u64,
    items: u64,
    trace: bool,
    gen_server: bool,
}

impl Config {
    /// How many cokes consumer `i` takes: P·K/C, the remainder spread
    /// over the first ones.
    fn quota(&self, i: u64) -> u64 {
        let total = self.producers * self.items;
        total / self.consumers + u64::from(i < total % self.consumers)
    }
}

// ANCHOR: run
/// The run: start the machine and the clients, wait for the clients
/// (monitors), stop the machine and return its report.
async fn run(config: Config) -> Result<Report, String> {
    let tally = Tally::new(config.trace);
    let machine = if config.gen_server {
        let server = CokeServer {
            count: 0,
            max: config.capacity,
            producers: VecDeque::new(),
            consumers: VecDeque::new(),
            tally,
        };
        Machine::GenServer(gen_server::start(server).await.map_err(|r| format!("the server did not start: {r}"))?)
    } else {
        Machine::Receive(start(config.capacity, tally))
    };
    let watch = monitor(machine.pid());
    for _ in 0..config.producers {
        spawn_monitor(producer(machine, config.items));
    }
    for i in 0..config.consumers {
        spawn_monitor(consumer(machine, config.quota(i)));
    }
    let mut running = config.producers + config.consumers;
    while running > 0 {
        receive! {
            down: Down if down.reference == watch => return Err(format!("the machine exited: {}", down.reason)),
            down: Down => match down.reason {
                ExitReason::Normal => running -= 1,
                reason => return Err(format!("client {} failed: {reason}", down.pid)),
            },
            after TIMEOUT => return Err(format!("stuck: {running} clients still running after {TIMEOUT:?}")),
        }
    }
    let report = machine.stop().await?;
    receive! {
        down: Down if down.reference == watch => match down.reason {
            ExitReason::Normal => Ok(report),
            reason => Err(format!("the machine exited with {reason} after Stop")),
        },
        after TIMEOUT => Err("the machine did not exit after Stop".to_string()),
    }
}
// ANCHOR_END: run

fn main() {
    let flags = common::Flags::parse(USAGE);
    let config = Config {
        capacity: flags.usize("capacity", 5) as i64,
        producers: flags.usize("producers", 3) as u64,
        consumers: flags.usize("consumers", 3) as u64,
        items: flags.usize("items", 100) as u64,
        trace: flags.has("trace"),
        gen_server: flags.has("gen-server"),
    };
    if config.capacity < 1 || config.consumers < 1 {
        eprintln!("coke_machine: --capacity and --consumers must be at least 1\n{USAGE}");
        std::process::exit(2);
    }
    let total = config.producers * config.items;
    let (least, most) = (config.quota(config.consumers - 1), config.quota(0));
    println!(
        "coke machine ({}): capacity {}, {} producers × {} cokes, {} consumers × {}",
        if config.gen_server { "GenServer, deferred replies" } else { "selective receive" },
        config.capacity,
        config.producers,
        config.items,
        config.consumers,
        if least == most { format!("{most} cokes") } else { format!("{least}-{most} cokes") },
    );

    let rt = Runtime::new();
    let started = Instant::now();
    let result = rt.block_on(run(config));
    let elapsed = started.elapsed();
    let report = match result {
        Ok(report) => report,
        Err(problem) => {
            eprintln!("coke_machine: {problem}");
            std::process::exit(1);
        }
    };
    let deferred = if config.gen_server { format!(", {} requests deferred", report.deferred) } else { String::new() };
    println!(
        "served {} requests in {elapsed:.1?}: full {}, empty {}{deferred}; final count {}",
        report.served,
        times(report.full),
        times(report.empty),
        report.count
    );
    if report.count != 0 || report.served != 2 * total {
        eprintln!("coke_machine: expected final count 0 and {} requests served", 2 * total);
        std::process::exit(1);
    }
}
