//! Real OS processes as peer nodes, for `os_processes.rs`.
//!
//! The test binary is its own peer: [`ChildNode::spawn`] runs it again
//! (`current_exe() --exact child_node --nocapture --test-threads=1`) with
//! [`ROLE`] and [`NODE`] in its environment, and the `#[test] fn child_node`
//! of that run calls [`child_main`], which makes a node of the given name,
//! spawns the processes of the role, prints the node's real name on stdout
//! (a line starting with [`NAME_LINE`]) and lives until its stdin closes.
//! Without [`ROLE`] set, `child_main` returns at once: in an ordinary run
//! `child_node` is a test that does nothing.
//!
//! A child can never outlive its test: it exits when its stdin closes (the
//! parent closed it, or the parent died), after [`WATCHDOG`] in any case,
//! and the parent kills it (SIGKILL) when its [`ChildNode`] guard drops.
//!
//! Parent and child are one binary, so the message types below have the
//! same type tags on both sides.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use krarup_net::{Node, NodeConfig};
use krarup_runtime::gen_server::{self, CallReply, GenServer};
use krarup_runtime::{receive, recv, recv_timeout, self_pid, send_named_at, Pid, ReplyTo, Runtime};
use serde::{Deserialize, Serialize};

/// The environment variable that makes a run of the test binary a child, and says which.
pub const ROLE: &str = "KRARUP_CHILD_ROLE";
/// The child's node name (`name@host:port`; port 0 picks one).
pub const NODE: &str = "KRARUP_CHILD_NODE";
/// The child's heartbeat bound, in milliseconds.
pub const HEARTBEAT_MS: &str = "KRARUP_CHILD_HEARTBEAT_MS";
/// The name of the `#[test]` the child runs.
pub const CHILD_TEST: &str = "child_node";
/// What the child prints before its node's name (the rest of the line).
pub const NAME_LINE: &str = "KRARUP_CHILD_NODE_NAME=";
/// Shared by every node of these tests.
pub const COOKIE: &str = "os-processes-cookie";
/// The bound on every wait of the tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A child exits after this long whatever happens.
pub const WATCHDOG: Duration = Duration::from_secs(60);
/// How many workers the [`Role::Workers`] child runs (registered `worker0`, `worker1`, ...).
pub const WORKERS: usize = 4;

/// What a child node runs besides its `control` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `echo` (answers [`Ping`] with [`Pong`]) and `counter` (a [`Counter`] server).
    Echo,
    /// `sink`: counts numbered `u64`s and checks their order (see [`Done`]).
    Sink,
    /// [`WORKERS`] processes that take `u64`s (see [`Watch`]).
    Workers,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Echo => "echo",
            Role::Sink => "sink",
            Role::Workers => "workers",
        }
    }

    fn parse(role: &str) -> Role {
        match role {
            "echo" => Role::Echo,
            "sink" => Role::Sink,
            "workers" => Role::Workers,
            other => panic!("unknown child role {other:?}"),
        }
    }
}

/// To `control`: which Pid has this name on your node?
#[derive(Debug, Serialize, Deserialize)]
pub struct WhereIs {
    pub name: String,
    pub reply_to: Pid,
}

/// `control`'s answer to [`WhereIs`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub name: String,
    pub pid: Option<Pid>,
}

/// To `echo`: answer `from` with this text in capitals.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    pub from: Pid,
    pub text: String,
}

/// `echo`'s answer: the text in capitals, the Pid it answered (as `echo` saw it) and its own.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    pub text: String,
    pub to: Pid,
    pub by: Pid,
}

/// The increment server, started as `counter` at 10 in the [`Role::Echo`] child.
#[derive(Debug)]
pub struct Counter(pub i64);

/// [`Counter`]'s calls.
#[derive(Debug, Serialize, Deserialize)]
pub enum CounterCall {
    /// Add to the total; the reply is the new total.
    Add(i64),
    /// The total.
    Get,
    /// Stop (normally), replying with the total.
    Stop,
}

impl GenServer for Counter {
    type Call = CounterCall;
    type Reply = i64;
    type Cast = ();

    async fn handle_call(&mut self, request: CounterCall, _from: ReplyTo<i64>) -> CallReply<i64> {
        match request {
            CounterCall::Add(n) => {
                self.0 += n;
                CallReply::Reply(self.0)
            }
            CounterCall::Get => CallReply::Reply(self.0),
            CounterCall::Stop => CallReply::Stop(krarup_runtime::ExitReason::Normal, Some(self.0)),
        }
    }
}

/// To `sink`, after the numbered messages: answer `reply_to` with a [`Tally`] and start over.
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub reply_to: Pid,
}

/// What `sink` saw since it last answered [`Done`]: it expects 0, 1, 2, ... in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// How many numbers arrived.
    pub received: u64,
    /// How many arrived other than as the successor of the one before.
    pub out_of_order: u64,
    /// The first such: (expected, got).
    pub first_out_of_order: Option<(u64, u64)>,
}

/// To a worker of [`Role::Workers`]: tell `reply_to` [`Flowing`] when the next `u64` arrives.
#[derive(Debug, Serialize, Deserialize)]
pub struct Watch {
    pub reply_to: Pid,
}

/// A worker got a `u64` after a [`Watch`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Flowing {
    pub worker: Pid,
}

/// Inside a process: the Pid registered as `name` on node `node`, asked of its `control`.
///
/// # Panics
/// If no answer comes within [`TIMEOUT`], or no process has the name.
pub async fn whereis_at(node: &str, name: &str) -> Pid {
    send_named_at("control", node, WhereIs { name: name.to_owned(), reply_to: self_pid() });
    let wanted = name.to_owned();
    receive! {
        found: Found if found.name == wanted => found.pid.unwrap_or_else(|| panic!("no process is registered as {wanted} on {node}")),
        after TIMEOUT => panic!("{node} did not say where {wanted} is within {TIMEOUT:?}"),
    }
}

/// A child node: its OS process, killed when this drops.
#[derive(Debug)]
pub struct ChildNode {
    name: String,
    child: Mutex<Child>,
    /// Kept open: the child exits when it closes.
    stdin: Mutex<Option<ChildStdin>>,
}

impl ChildNode {
    /// Starts a child node `node` (`name@host:port`, port 0 for any) in role `role` with this
    /// heartbeat bound, and waits (at most [`TIMEOUT`]) until it reports its name.
    ///
    /// # Panics
    /// If it cannot be started or does not report in time.
    pub fn spawn(role: Role, node: &str, heartbeat: Duration) -> ChildNode {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE, role.as_str())
            .env(NODE, node)
            .env(HEARTBEAT_MS, heartbeat.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child node starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let tag = format!("[child {} {}]", role.as_str(), child.id());
        let (name_tx, name_rx) = mpsc::channel();
        // Both pipes are drained for the child's whole life (so it never blocks writing), and
        // what it says is passed on through this test's captured output.
        let out_tag = tag.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test child_node ... " with no newline before it.
                match line.find(NAME_LINE) {
                    Some(at) => {
                        let _ = name_tx.send(line[at + NAME_LINE.len()..].trim().to_owned());
                    }
                    None => println!("{out_tag} {line}"),
                }
            }
        });
        std::thread::spawn(move || forward(stderr, &tag));
        // From here on a panic kills the child.
        let mut guard = ChildNode { name: String::new(), child: Mutex::new(child), stdin: Mutex::new(stdin) };
        guard.name =
            name_rx.recv_timeout(TIMEOUT).unwrap_or_else(|e| panic!("the child node did not report its name: {e}"));
        guard
    }

    /// The child's node name, with its real port.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills the child with SIGKILL (no chance to close anything) and reaps it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.kill();
    }
}

fn forward(from: impl Read, tag: &str) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        eprintln!("{tag} {line}");
    }
}

/// The child's side: see the module docs. Returns at once unless [`ROLE`] is set.
pub fn child_main() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let role = Role::parse(&role);
    let started = Instant::now();
    std::thread::spawn(move || {
        // Not synchronisation: the bound on a child whose parent forgot it.
        std::thread::sleep(WATCHDOG);
        eprintln!("child node: watchdog fired after {:?}; exiting", started.elapsed());
        std::process::exit(3);
    });
    let node = std::env::var(NODE).expect("KRARUP_CHILD_NODE is set");
    let heartbeat = std::env::var(HEARTBEAT_MS).ok().and_then(|ms| ms.parse().ok()).unwrap_or(10_000);
    let rt = Runtime::builder().workers(2).build().expect("the child's runtime starts");
    let config = NodeConfig::new(node, COOKIE).heartbeat(Duration::from_millis(heartbeat));
    let node = Node::start(&rt, config).expect("the child node starts");

    let control = rt.spawn(control());
    rt.register("control", control).expect("register control");
    match role {
        Role::Echo => {
            let echo = rt.spawn(echo());
            rt.register("echo", echo).expect("register echo");
            let counter = rt.block_on(async { gen_server::start(Counter(10)).await }).expect("counter starts");
            rt.register("counter", counter.pid()).expect("register counter");
        }
        Role::Sink => {
            let sink = rt.spawn(sink());
            rt.register("sink", sink).expect("register sink");
        }
        Role::Workers => {
            for i in 0..WORKERS {
                let worker = rt.spawn(worker());
                rt.register(&format!("worker{i}"), worker).expect("register a worker");
            }
        }
    }

    println!("{NAME_LINE}{}", node.name());
    // Live until the parent closes stdin or dies.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    std::process::exit(0);
}

async fn control() {
    loop {
        let WhereIs { name, reply_to } = recv().await;
        let pid = krarup_runtime::whereis(&name);
        reply_to.send(Found { name, pid });
    }
}

async fn echo() {
    loop {
        let Ping { from, text } = recv().await;
        from.send(Pong { text: text.to_uppercase(), to: from, by: self_pid() });
    }
}

async fn sink() {
    let mut tally = Tally { received: 0, out_of_order: 0, first_out_of_order: None };
    let mut next = 0u64;
    loop {
        receive! {
            n: u64 => {
                if n != next {
                    tally.out_of_order += 1;
                    tally.first_out_of_order.get_or_insert((next, n));
                }
                tally.received += 1;
                next = n.wrapping_add(1);
            },
            done: Done => {
                done.reply_to.send(std::mem::replace(
                    &mut tally,
                    Tally { received: 0, out_of_order: 0, first_out_of_order: None },
                ));
                next = 0;
            },
        }
    }
}

async fn worker() {
    let mut watcher = None;
    loop {
        receive! {
            _n: u64 => {
                if let Some(to) = watcher.take() {
                    krarup_runtime::send(to, Flowing { worker: self_pid() });
                }
            },
            watch: Watch => watcher = Some(watch.reply_to),
        }
    }
}

/// Inside a process: waits at most `bound` for a `T`, or panics saying what was awaited.
pub async fn recv_within<T: krarup_runtime::Message>(bound: Duration, what: &str) -> T {
    recv_timeout::<T>(bound).await.unwrap_or_else(|| panic!("{what}: nothing within {bound:?}"))
}
