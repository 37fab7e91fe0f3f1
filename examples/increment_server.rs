// ANCHOR: all
//! The increment server of the distributed-systems lecture, line for line.
//!
//! The client sends `{self(), 10}`; the server answers `{self(), 11}` (its
//! own Pid and N + 1); the client prints `Result: 11`. Sending `stop` ends
//! the server. The Erlang original:
//!
//! ```erlang
//! -module(increment).
//! -export([start/0, loop/0, client/2]).
//!
//! start() -> spawn(increment, loop, []).
//!
//! loop() ->
//!     receive
//!         {From, N} -> From ! {self(), N + 1}, loop();
//!         stop -> true
//!     end.
//!
//! client(Server, N) ->
//!     Server ! {self(), N},
//!     receive
//!         {Server, Result} -> io:format("Result: ~p~n", [Result])
//!     end.
//! ```
//!
//! How each line maps:
//!
//! - `start() -> spawn(increment, loop, []).` is `start()`, which spawns
//!   `server_loop()` and returns its Pid.
//! - `loop() -> receive ... end.` is `server_loop()`: `loop` is a Rust
//!   keyword, hence the name, and the tail call `loop();` is a Rust `loop`.
//! - `{From, N} -> From ! {self(), N + 1}` is the clause
//!   `(from, n): (Pid, i64) => from.send((self_pid(), n + 1))`. An Erlang
//!   tuple is a Rust tuple; the type after the colon says which messages
//!   the clause takes (integers are `i64` here, so the client sends `i64`).
//! - `stop -> true` is `Stop => return`: the atom `stop` is the unit struct
//!   `Stop`, and returning ends the process with reason `Normal`.
//! - `Server ! {self(), N}` is `server.send((self_pid(), n))`.
//! - `{Server, Result} -> io:format(...)` is the clause
//!   `(pid, result): (Pid, i64) if pid == server => ...`. Erlang's already
//!   bound `Server` matches by equality; a Rust pattern variable is always
//!   fresh, so the equality becomes a guard.
//! - The shell session `S = increment:start()`, `increment:client(S, 10)`,
//!   `S ! stop` is `main`, inside `rt.block_on`.
//!
//! Two additions, for checking: `client` also returns the result, and `main`
//! monitors the server before sending `Stop`; it exits non-zero unless the
//! result is 11 and the server ended normally.
//!
//! ```text
//! cargo run --release --example increment_server
//! ```
//!
//! Prints `Result: 11`.
//!
//! # Distributed
//!
//! The lecture's second half runs the server and the client on two nodes.
//! In Erlang, one shell per node:
//!
//! ```erlang
//! %% erl -name b@127.0.0.1 -setcookie secret
//! (b@127.0.0.1)1> register(increment, increment:start()).
//!
//! %% erl -name a@127.0.0.1 -setcookie secret
//! (a@127.0.0.1)1> pong = net_adm:ping('b@127.0.0.1').
//! (a@127.0.0.1)2> {increment, 'b@127.0.0.1'} ! {self(), 10},
//!                 receive {Server, Result} -> io:format("Result: ~p~n", [Result])
//!                 after 5000 -> timeout end.
//! (a@127.0.0.1)3> Server ! stop.
//! ```
//!
//! Here, one program per node:
//!
//! ```text
//! cargo run --release --example increment_server -- server --name b@127.0.0.1:9101 --cookie secret
//! cargo run --release --example increment_server -- client --name a@127.0.0.1:0 \
//!     --server b@127.0.0.1:9101 --cookie secret [--n 10] [--stop] [--timeout 5]
//! ```
//!
//! The client prints `Result: 11` and exits 0; it exits 1 with the reason
//! if it cannot reach the server node (not running, wrong cookie) or gets
//! no answer within `--timeout` seconds. `--stop` then stops the server,
//! which ends the server program. `both` runs the same two nodes in one OS
//! process, on ports the system picks, and `both --spawn-server` runs the
//! server in a child OS process (this program in `server` mode): both print
//! `Result: 11` and need no fixed port.
//!
//! How each line maps:
//!
//! - `erl -name b@127.0.0.1 -setcookie secret` is
//!   `Node::start(&rt, NodeConfig::new(name, cookie))`. There is no EPMD:
//!   the name carries the port (`b@127.0.0.1:9101`; port 0 picks a free one
//!   and the server prints the name with the real port).
//! - `register(increment, increment:start())` is `start()` and
//!   `register("increment", server)`, in `start_server_node`.
//! - `net_adm:ping(Node)` is `node.connect(server)`, which says *why* it
//!   failed (refused, wrong cookie, timed out) where `ping` says `pang`.
//! - `{increment, Node} ! {self(), N}` is
//!   `send_named_at("increment", node, (self_pid(), n))`, in
//!   `remote_client`.
//! - `receive {Server, Result} -> ... after 5000 -> timeout end`: the
//!   client does not know the server's Pid yet, so the clause binds it
//!   from the answer (a remote Pid, which `send`, `monitor` and `link`
//!   accept like a local one); `after` becomes `after timeout`. A third
//!   clause, for `NodeDown` (Erlang's `monitor_node(Node, true)` and
//!   `{nodedown, Node}`), ends the wait at once if the connection is lost.
//! - `Server ! stop` is `server.send(Stop)`, in `stop_server`, which
//!   monitors the server first to see it end.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use krarup::net::{Node, NodeConfig, NodeDown};
use krarup::prelude::*;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: increment_server                      (both ends in one runtime)
       increment_server server --name NAME@HOST:PORT --cookie SECRET
       increment_server client --name NAME@HOST:PORT --server NAME@HOST:PORT --cookie SECRET
                               [--n N] [--stop] [--timeout SECONDS]
       increment_server both [--spawn-server] [--cookie SECRET] [--n N] [--timeout SECONDS]";

// ANCHOR: increment
/// Erlang's atom `stop`.
#[derive(Serialize, Deserialize)]
struct Stop;

// ANCHOR: server
fn start() -> Pid {
    spawn(server_loop())
}

async fn server_loop() {
    loop {
        receive! {
            (from, n): (Pid, i64) => from.send((self_pid(), n + 1)),
            Stop => return,
        }
    }
}
// ANCHOR_END: server

// ANCHOR: client
async fn client(server: Pid, n: i64) -> i64 {
    server.send((self_pid(), n));
    receive! {
        (pid, result): (Pid, i64) if pid == server => {
            println!("Result: {result}");
            result
        }
    }
}
// ANCHOR_END: client
// ANCHOR_END: increment

// ANCHOR: main
fn main() {
    let flags = common::Flags::parse(USAGE);
    if let Some(mode) = flags.positional.first() {
        return distributed(mode, &flags); // server, client or both: see below
    }
    let rt = Runtime::new();
    let (result, reason) = rt.block_on(async {
        let server = start(); // 1> S = increment:start().
        let result = client(server, 10).await; // 2> increment:client(S, 10).
        monitor(server); // (not in the lecture: to see the server end)
        server.send(Stop); // 3> S ! stop.
        let down: Down = recv().await;
        (result, down.reason)
    });
    if result != 11 || reason != ExitReason::Normal {
        eprintln!("increment_server: expected 11 and a normal exit, got {result} and {reason}");
        std::process::exit(1);
    }
}
// ANCHOR_END: main

/// The distributed modes; exits 1 with the reason if the run fails, 2 on
/// bad arguments.
fn distributed(mode: &str, flags: &common::Flags) {
    let cookie = flags.str("cookie");
    let n = flags.usize("n", 10) as i64;
    let timeout = Duration::from_secs(flags.usize("timeout", 5) as u64);
    let outcome = match (mode, cookie) {
        ("server", Some(cookie)) => {
            if flags.has("until-stdin-closes") {
                exit_when_stdin_closes();
            }
            serve(flags.str("name").unwrap_or("b@127.0.0.1:9101"), cookie)
        }
        ("client", Some(cookie)) => {
            let name = flags.str("name").unwrap_or("a@127.0.0.1:0");
            let server = flags.str("server").unwrap_or("b@127.0.0.1:9101");
            client_node(name, server, cookie, n, flags.has("stop"), timeout).map(|_| ())
        }
        ("both", cookie) => both(cookie.unwrap_or("secret"), n, timeout, flags.has("spawn-server")),
        ("server" | "client", None) => usage_error("--cookie SECRET is required"),
        (other, _) => usage_error(&format!("unknown mode {other:?}")),
    };
    if let Err(error) = outcome {
        eprintln!("increment_server: {error}");
        std::process::exit(1);
    }
}

/// For a server started by `both --spawn-server`: ends the program when
/// the parent goes away (its end of our stdin closes), so that a parent
/// that is killed leaves no server behind.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        eprintln!("increment_server: stdin closed; the server stops");
        std::process::exit(1);
    });
}

fn usage_error(problem: &str) -> ! {
    eprintln!("increment_server: {problem}\n{USAGE}");
    std::process::exit(2);
}

// ANCHOR: server_node
/// `erl -name NAME -setcookie COOKIE`, then
/// `register(increment, increment:start())`: the runtime, its node, and
/// the server registered as `increment`.
fn start_server_node(name: &str, cookie: &str) -> Result<(Runtime, Node, Pid), String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    let server = rt.block_on(async {
        let server = start();
        register("increment", server).map(|()| server)
    });
    let server = server.map_err(|e| format!("cannot register the server as `increment`: {e}"))?;
    Ok((rt, node, server))
}
// ANCHOR_END: server_node

// ANCHOR: serve
/// `server` mode: serves until the server receives `Stop`.
fn serve(name: &str, cookie: &str) -> Result<(), String> {
    let (rt, node, server) = start_server_node(name, cookie)?;
    // The first line says the node's real name (port 0 picks one).
    println!("node {} serves increment", node.name());
    let reason = rt.block_on(async move {
        monitor(server);
        recv::<Down>().await.reason
    });
    println!("increment ended: {reason}");
    // Give the connections a moment to carry the last frames (the `Down`
    // of a client that monitored the server) before the program ends.
    let deadline = Instant::now() + Duration::from_secs(1);
    while node.stats().pending_bytes > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    node.shutdown();
    match reason {
        ExitReason::Normal => Ok(()),
        reason => Err(format!("the server ended with {reason}")),
    }
}
// ANCHOR_END: serve

// ANCHOR: remote_client
/// `{increment, Node} ! {self(), N}` and the receive after it: the
/// server's Pid and its answer.
async fn remote_client(node: String, n: i64, timeout: Duration) -> Result<(Pid, i64), String> {
    send_named_at("increment", &node, (self_pid(), n));
    receive! {
        (server, result): (Pid, i64) => {
            println!("Result: {result}");
            Ok((server, result))
        },
        down: NodeDown => Err(format!("lost the connection to {}", down.node)),
        after timeout => Err(format!("no answer from `increment` on {node} within {timeout:?}")),
    }
}

/// `Server ! stop`, watching the server end.
async fn stop_server(server: Pid, timeout: Duration) -> Result<ExitReason, String> {
    monitor(server);
    server.send(Stop);
    match recv_timeout::<Down>(timeout).await {
        Some(down) => Ok(down.reason),
        None => Err(format!("the server {server} did not stop within {timeout:?}")),
    }
}
// ANCHOR_END: remote_client

// ANCHOR: client_node
/// `client` mode: node `name` asks `increment` on node `server` for
/// `n + 1`, and stops the server if `stop`; returns how the server ended
/// if it was stopped.
fn client_node(
    name: &str,
    server: &str,
    cookie: &str,
    n: i64,
    stop: bool,
    timeout: Duration,
) -> Result<Option<ExitReason>, String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    // net_adm:ping(Server): fails with the reason (refused, wrong cookie, ...).
    node.connect(server).map_err(|e| format!("cannot reach {server}: {e}"))?;
    let server = server.to_owned();
    rt.block_on(async move {
        node.monitor_node(self_pid(), &server).map_err(|e| e.to_string())?;
        let (pid, result) = remote_client(server, n, timeout).await?;
        if result != n + 1 {
            return Err(format!("expected {}, got {result}", n + 1));
        }
        if !stop {
            return Ok(None);
        }
        match stop_server(pid, timeout).await? {
            // The server program ends with its server; its `Down` may lose
            // the race with the connection closing.
            reason @ (ExitReason::Normal | ExitReason::NoConnection) => {
                println!("increment stopped ({reason})");
                Ok(Some(reason))
            }
            reason => Err(format!("the server ended with {reason}")),
        }
    })
}
// ANCHOR_END: client_node

// ANCHOR: both
/// `both` mode: the server node and the client node in this OS process
/// (or, with `spawn_server`, the server in a child OS process), on ports
/// the system picks.
fn both(cookie: &str, n: i64, timeout: Duration, spawn_server: bool) -> Result<(), String> {
    if spawn_server {
        return both_processes(cookie, n, timeout);
    }
    let (_rt_b, b, _server) = start_server_node("b@127.0.0.1:0", cookie)?;
    match client_node("a@127.0.0.1:0", b.name(), cookie, n, true, timeout)? {
        // Node b is still up here, so its `Down` cannot have been lost.
        Some(ExitReason::Normal) => Ok(()),
        other => Err(format!("expected the server to end normally, got {other:?}")),
    }
}
// ANCHOR_END: both

/// `both --spawn-server`: this program in `server` mode, on port 0, in a
/// child process; its first line gives its name, the rest is shown with a
/// prefix. The child's stdin stays open as long as this program runs.
fn both_processes(cookie: &str, n: i64, timeout: Duration) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(exe)
        .args(["server", "--name", "b@127.0.0.1:0", "--cookie", cookie, "--until-stdin-closes"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server process: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let forward = std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| println!("[server] {line}")));
    let outcome = match first.strip_prefix("node ").and_then(|rest| rest.split_whitespace().next()) {
        Some(server) => {
            println!("[server] {first}");
            client_node("a@127.0.0.1:0", server, cookie, n, true, timeout).map(|_| ())
        }
        None => Err(format!("the server process did not say its name (it said {first:?})")),
    };
    // The server program ends when its server stops; if something failed,
    // it will not, and is killed.
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if outcome.is_ok() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = forward.join();
    outcome?;
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("the server process failed: {status}")),
        None => Err(format!("the server process did not end within {timeout:?} of `Stop`")),
    }
}
// ANCHOR_END: all
