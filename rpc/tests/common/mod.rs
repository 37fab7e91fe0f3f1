//! Helpers and services shared by the RPC stub tests.
//!
//! Two services, each from one `#[service]` trait:
//!
//! - [`Directory`]: a service with every kind of argument and result the stubs must carry — a
//!   `Pid`, a `Vec`, an `Option`, a struct, a `String`, a tuple, a nested `Result`, unit, none.
//! - [`Work`]: a service whose [`held`](Work::held) calls the test holds open: the procedure
//!   tells the test's observer [`Started`] and waits for a [`Go`] sent to the server process, so a
//!   test can kill the server, cut the connection or let the call time out *while the procedure
//!   runs*, without sleeping. It counts how often its procedures ran, to check at-most-once.
//!
//! A call whose outcome the test thread awaits runs as a process of its own ([`run`]), and hands
//! its result back through a channel; every wait here is bounded by [`TIMEOUT`], so a call that
//! hangs fails its test instead of the suite.
//!
//! Two nodes are two runtimes, each with a [`Node`], in this one test process, on 127.0.0.1 with
//! ports the OS picks (the layout of `net/tests/common`). A Pid of one runtime handed to the other
//! as a Rust value would be delivered in-process, bypassing the network: [`remote_pid`] gives the
//! Pid as the other node sees it. [`proxy`] puts a TCP proxy in front of a node, so a test can cut
//! the connection between two live nodes.
#![allow(dead_code)]

/// The network node tests' proxy, shared by path (it uses this module's `Side`, `COOKIE` and
/// `TIMEOUT`).
#[path = "../../../net/tests/common/proxy.rs"]
pub mod proxy;

/// Two nodes in one process, shared with the network node's tests by path.
#[path = "../../../net/tests/common/nodes.rs"]
pub mod nodes;

pub use nodes::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use krarup_runtime::{exit, monitor, receive, recv_timeout, Down, ExitReason, Mailbox, Pid, Runtime};
use serde::{Deserialize, Serialize};

/// The bound on every wait: long enough for a noisy two-core machine, short enough that a lost
/// message fails the test rather than the CI run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The cookie every test node shares.
pub const COOKIE: &str = "krarup-rpc-tests";

// ---- the Directory service: every kind of argument and result ----

/// A struct argument and result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub number: u32,
    pub city: Option<String>,
}

/// What [`Directory::greet`] sends to the Pid it is given.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello(pub String);

#[krarup_rpc::service(krate = krarup_rpc)]
pub trait Directory {
    /// Stores `address` under `name`; the address it replaces.
    fn insert(&mut self, name: String, address: Address) -> Option<Address>;
    /// The address stored under `name`.
    fn lookup(&mut self, name: String) -> Option<Address>;
    /// [`lookup`](Directory::lookup), from an `async` procedure that yields first.
    async fn lookup_later(&mut self, name: String) -> Option<Address>;
    /// Every name, in order.
    fn names(&mut self) -> Vec<String>;
    /// Removes every name in `names`; how many were there.
    fn delete_all(&mut self, names: Vec<String>) -> usize;
    /// The server's own Pid.
    fn whoami(&mut self) -> Pid;
    /// Sends [`Hello`]`(text)` to `to`.
    fn greet(&mut self, to: Pid, text: String);
    /// No arguments, no result.
    fn touch(&mut self);
    /// How many times `touch` ran.
    fn touched(&mut self) -> u64;
    /// Several arguments, a tuple in a nested `Result`: `Ok((name, number))` if `name` is stored
    /// with a number at least `min`.
    fn check(&mut self, name: String, min: u32, strict: bool) -> Result<(String, u32), String>;
}

/// A [`Directory`] in memory.
#[derive(Debug, Default)]
pub struct Book {
    entries: BTreeMap<String, Address>,
    touched: u64,
}

impl Directory for Book {
    fn insert(&mut self, name: String, address: Address) -> Option<Address> {
        self.entries.insert(name, address)
    }

    fn lookup(&mut self, name: String) -> Option<Address> {
        self.entries.get(&name).cloned()
    }

    async fn lookup_later(&mut self, name: String) -> Option<Address> {
        krarup_runtime::yield_now().await;
        self.entries.get(&name).cloned()
    }

    fn names(&mut self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn delete_all(&mut self, names: Vec<String>) -> usize {
        names.iter().filter(|name| self.entries.remove(*name).is_some()).count()
    }

    fn whoami(&mut self) -> Pid {
        krarup_runtime::self_pid()
    }

    fn greet(&mut self, to: Pid, text: String) {
        to.send(Hello(text));
    }

    fn touch(&mut self) {
        self.touched += 1;
    }

    fn touched(&mut self) -> u64 {
        self.touched
    }

    fn check(&mut self, name: String, min: u32, strict: bool) -> Result<(String, u32), String> {
        match self.entries.get(&name) {
            Some(address) if address.number > min || (!strict && address.number == min) => Ok((name, address.number)),
            Some(address) => Err(format!("{name} is at number {}", address.number)),
            None => Err(format!("no {name}")),
        }
    }
}

/// An address for tests.
pub fn address(street: &str, number: u32, city: Option<&str>) -> Address {
    Address { street: street.into(), number, city: city.map(Into::into) }
}

// ---- the Work service: calls the test holds open ----

/// Told to a [`Worker`]'s observer when a held procedure starts running.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started(pub u64);

/// Releases a held procedure: send it to the server process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Go;

/// What a client process tells the test thread about its progress.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note(pub String);

#[krarup_rpc::service(krate = krarup_rpc)]
pub trait Work {
    /// Tells the observer `Started(n)`, waits for a [`Go`], returns `n`.
    async fn held(&mut self, n: u64) -> u64;
    /// [`held`](Work::held), safe to retry.
    #[idempotent]
    async fn held_idempotent(&mut self, n: u64) -> u64;
    /// Counts a run; the count.
    fn bump(&mut self) -> u64;
    /// [`bump`](Work::bump), marked safe to retry (a repeat is answered from the cache, so it
    /// still counts once).
    #[idempotent]
    fn bump_idempotent(&mut self) -> u64;
    /// How many times `held`, `held_idempotent`, `bump` and `bump_idempotent` ran.
    #[idempotent]
    fn runs(&mut self) -> u64;
    /// Appends `n` (one-way).
    #[cast]
    fn push(&mut self, n: u32);
    /// Everything pushed so far, in the order it arrived.
    fn pushed(&mut self) -> Vec<u32>;
    /// Panics with `message`.
    fn fail(&mut self, message: String) -> u64;
    /// Answers with the run count, then the server ends.
    #[stop]
    fn stop(&mut self) -> u64;
    /// Ends the server (one-way).
    #[cast]
    #[stop]
    fn halt(&mut self);
}

/// A [`Work`] server's state.
#[derive(Debug)]
pub struct Worker {
    /// Where [`Started`] goes (a mailbox of the test, on the server's node).
    pub observer: Pid,
    pub runs: u64,
    pub pushed: Vec<u32>,
}

impl Worker {
    pub fn new(observer: Pid) -> Worker {
        Worker { observer, runs: 0, pushed: Vec::new() }
    }

    async fn hold(&mut self, n: u64) -> u64 {
        self.runs += 1;
        self.observer.send(Started(n));
        match recv_timeout::<Go>(TIMEOUT).await {
            Some(Go) => n,
            None => panic!("held call {n} was not released within {TIMEOUT:?}"),
        }
    }
}

impl Work for Worker {
    async fn held(&mut self, n: u64) -> u64 {
        self.hold(n).await
    }

    async fn held_idempotent(&mut self, n: u64) -> u64 {
        self.hold(n).await
    }

    fn bump(&mut self) -> u64 {
        self.runs += 1;
        self.runs
    }

    fn bump_idempotent(&mut self) -> u64 {
        self.bump()
    }

    fn runs(&mut self) -> u64 {
        self.runs
    }

    fn push(&mut self, n: u32) {
        self.pushed.push(n);
    }

    fn pushed(&mut self) -> Vec<u32> {
        self.pushed.clone()
    }

    fn fail(&mut self, message: String) -> u64 {
        panic!("{message}")
    }

    fn stop(&mut self) -> u64 {
        self.runs
    }

    fn halt(&mut self) {}
}

/// A [`Work`] server on `rt` and the mailbox its [`Started`]s go to.
pub fn spawn_worker(rt: &Runtime) -> (Pid, Mailbox) {
    let observer = rt.mailbox();
    let server = rt.spawn(WorkServer::serve(Worker::new(observer.pid())));
    (server, observer)
}

// ---- calls run as processes, bounded waits ----

/// A future running as a process, whose output the test thread awaits.
pub struct Running<T> {
    output: mpsc::Receiver<T>,
    /// The process.
    pub pid: Pid,
}

/// Runs `future` (typically a stub call) as a process of `rt`.
pub fn run<T, F>(rt: &Runtime, future: F) -> Running<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (done, output) = mpsc::channel();
    let pid = rt.spawn(async move {
        let _ = done.send(future.await);
    });
    Running { output, pid }
}

impl<T> Running<T> {
    /// The output, or a panic after [`TIMEOUT`] (the call hung).
    pub fn wait(self) -> T {
        self.output
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("the process did not finish within {TIMEOUT:?}: {e}"))
    }
}

/// Kills `pid`, a process of `rt` (an exit signal needs a sending process).
pub fn kill(rt: &Runtime, pid: Pid) {
    rt.block_on(async move { exit(pid, ExitReason::Kill) });
}

/// Monitors `pid` from a process of `rt`; returns a handle to await its exit reason.
pub fn watch(rt: &Runtime, pid: Pid) -> Running<ExitReason> {
    let (ready_tx, ready) = mpsc::channel();
    let running = run(rt, async move {
        let reference = monitor(pid);
        let _ = ready_tx.send(());
        receive! {
            down: Down if down.reference == reference => down.reason,
            after TIMEOUT => panic!("{pid:?} did not exit within {TIMEOUT:?}"),
        }
    });
    ready.recv_timeout(TIMEOUT).expect("the watcher monitors");
    running
}

/// Waits until `condition` holds, at most [`TIMEOUT`]; for what no message reports (a request
/// queued in a server's mailbox while the server is busy).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
