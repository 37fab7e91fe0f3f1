// ANCHOR: all
//! The increment server as a remote procedure call: the client calls
//! `inc(10)` and prints `Result: 11`, and neither side writes a send or a
//! receive.
//!
//! The lecture's slides 58–63 take the increment server's protocol
//! (`Server ! {self(), N}`, then `receive {Server, Result} -> ...`) and hide
//! it behind a procedure call. The idea, in short:
//!
//! > Make send/receive look like a function call.
//!
//! - The client calls an ordinary local procedure, the **client stub**. It
//!   packs the arguments into a request message, sends it to the server,
//!   waits for the reply, unpacks the result and returns it.
//! - On the server, the **server stub** receives the request, unpacks the
//!   arguments, calls the real procedure, packs its result into a reply and
//!   sends it back, and waits for the next request.
//! - Nobody writes the stubs by hand: a **stub generator** writes both from
//!   an interface definition. Sun RPC's is `rpcgen`, which reads a `.x`
//!   file; here it is `#[krarup::service]`, which reads a Rust trait.
//!
//! The interface definition that rpcgen would read, and what it writes:
//!
//! ```c
//! /* increment.x */
//! program INCREMENT_PROG {
//!     version INCREMENT_VERS {
//!         int INC(int) = 1;
//!     } = 1;
//! } = 0x20000101;
//! ```
//!
//! How each generated piece maps:
//!
//! - `increment.x` is the trait `Increment` under `#[krarup::service]`. A
//!   procedure number (`INC = 1`) is a variant of a hidden request enum
//!   named after the method; the program number and version are, together,
//!   the name the server is registered under and the service's type (a
//!   client of another service asking that name gets no server).
//! - `increment.h`, the declarations both sides include, is the trait
//!   itself: the server implements it.
//! - `inc_1_svc(int *argp, struct svc_req *rqstp)`, the procedure the
//!   programmer writes, is `fn inc(&mut self, n: i64) -> i64` in
//!   `impl Increment for Incrementer`. The server's state is `self`, not a
//!   static variable.
//! - `increment_svc.c`, the server stub, is `IncrementServer::serve(state)`:
//!   its `svc_run()` loop is the receive loop, its
//!   `switch (rqstp->rq_proc)` the `match` on the request, its
//!   `svc_sendreply` the reply. Its `main` registers the program with the
//!   portmapper (`svc_register`); here `serve` spawns the stub as a process
//!   and `register`s it as `increment`.
//! - `increment_clnt.c`, the client stub, is `IncrementClient`: `inc_1(&n,
//!   clnt)`, which calls `clnt_call(clnt, INC, xdr_int, ..., TIMEOUT)` with a
//!   25-second `TIMEOUT`, is `server.inc(n).await` (5 seconds by default,
//!   `with_timeout` to change it).
//! - `increment_xdr.c`, the marshalling, is the serde derives on the hidden
//!   request and reply enums; the messages are encoded (with postcard) only
//!   when the server is on another node.
//! - `clnt_create(host, INCREMENT_PROG, INCREMENT_VERS, "tcp")` is
//!   `IncrementClient::named_at("increment", node)`, or
//!   `IncrementClient::new(pid)` for a Pid in hand.
//! - `inc_1` returning `NULL`, and `clnt_perror` saying why, is
//!   `Err(CallError)`, whose `Display` says why: timed out, no server, node
//!   unreachable, server died during the call, undecodable reply.
//!
//! And the Erlang of `increment_server.rs`, line by line:
//!
//! - `{From, N} -> From ! {self(), N + 1}, loop()` is `fn inc`: it only
//!   computes `N + 1`. Who asked, where the answer goes, and the loop around
//!   it are the server stub's.
//! - `stop -> true` is the procedure `stop`, marked `#[cast]` (one-way, as
//!   `S ! stop` is: no reply awaited) and `#[stop]` (the server stub returns
//!   after running it, ending the process with reason `Normal`).
//! - `start() -> spawn(increment, loop, [])` is `start()`, which spawns the
//!   server stub serving an `Incrementer`.
//! - `client(Server, N)`, the send and the receive, is one line:
//!   `server.inc(n).await?`. The `?` is what the lecture's function call
//!   did not have: a call that crosses to another process can fail.
//!
//! ```text
//! cargo run --release --example increment_rpc
//! ```
//!
//! Prints `Result: 11`, then `Deferred: [2, 3, 4]` (three calls in flight
//! at once, their replies awaited afterwards), and exits non-zero unless
//! both are right and the server ended normally after `stop`.
//!
//! # Distributed
//!
//! The same stubs, unchanged, with the server on another node, and the same
//! flags as `increment_server`:
//!
//! ```text
//! cargo run --release --example increment_rpc -- server --name b@127.0.0.1:9101 --cookie secret
//! cargo run --release --example increment_rpc -- client --name a@127.0.0.1:0 \
//!     --server b@127.0.0.1:9101 --cookie secret [--n 10] [--stop] [--timeout 5]
//! ```
//!
//! The client prints `Result: 11` and exits 0; it exits 1 with the reason
//! if it cannot reach the server node or the call fails (the `CallError`,
//! for example `call timed out` after `--timeout` seconds). `--stop` then
//! stops the server (a one-way `stop`), which ends the server program, and
//! shows that a call made after it fails with a typed error instead of
//! hanging. `both` runs the two nodes in one OS process, on ports the system
//! picks, and prints the same.
//!
//! What changes from the local program: the server is registered under a
//! name, the client is made with `IncrementClient::named_at("increment",
//! node)` instead of `new(pid)`, and the arguments and results are
//! serialized. The calls are the same calls.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;

const USAGE: &str = "\
usage: increment_rpc                      (both ends in one runtime)
       increment_rpc server --name NAME@HOST:PORT --cookie SECRET
       increment_rpc client --name NAME@HOST:PORT --server NAME@HOST:PORT --cookie SECRET
                            [--n N] [--stop] [--timeout SECONDS]
       increment_rpc both [--cookie SECRET] [--n N] [--timeout SECONDS]";

// ANCHOR: service
/// The interface definition: what rpcgen reads from `increment.x`.
#[krarup::service]
pub trait Increment {
    /// `n + 1`.
    fn inc(&mut self, n: i64) -> i64;
    /// Ends the server; one-way, like `S ! stop`.
    #[cast]
    #[stop]
    fn stop(&mut self);
}
// ANCHOR_END: service

// ANCHOR: server
/// The implementation the server stub calls: rpcgen's `inc_1_svc`.
struct Incrementer;

impl Increment for Incrementer {
    fn inc(&mut self, n: i64) -> i64 {
        n + 1
    }

    fn stop(&mut self) {}
}

/// `start() -> spawn(increment, loop, [])`: the server stub as a process.
fn start() -> Pid {
    spawn(IncrementServer::serve(Incrementer))
}
// ANCHOR_END: server

// ANCHOR: client
/// `increment:client(S, N)`: one call, no send, no receive.
async fn client(server: &IncrementClient, n: i64) -> Result<i64, CallError> {
    let result = server.inc(n).await?;
    println!("Result: {result}");
    Ok(result)
}
// ANCHOR_END: client

// ANCHOR: deferred
/// Deferred calls: three requests sent at once, their replies awaited later.
async fn deferred(server: &IncrementClient) -> Result<Vec<i64>, CallError> {
    let mut pending = Vec::new();
    for n in [1, 2, 3] {
        pending.push(server.start_inc(n)); // sent now
    }
    let mut results = Vec::new();
    for call in pending {
        results.push(call.wait().await?); // its reply, or why there is none
    }
    println!("Deferred: {results:?}");
    Ok(results)
}
// ANCHOR_END: deferred

// ANCHOR: main
fn main() {
    let flags = common::Flags::parse(USAGE);
    if let Some(mode) = flags.positional.first() {
        return distributed(mode, &flags); // server, client or both: see below
    }
    let rt = Runtime::new();
    let (result, more, reason) = rt.block_on(async {
        let pid = start(); // 1> S = increment:start().
        let server = IncrementClient::new(pid);
        let result = client(&server, 10).await; // 2> increment:client(S, 10).
        let more = deferred(&server).await;
        monitor(pid); // (not in the lecture: to see the server end)
        server.stop(); // 3> S ! stop.
        let down: Down = recv().await;
        (result, more, down.reason)
    });
    if result != Ok(11) || more != Ok(vec![2, 3, 4]) || reason != ExitReason::Normal {
        eprintln!("increment_rpc: expected 11, [2, 3, 4] and a normal exit, got {result:?}, {more:?} and {reason}");
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
        ("server", Some(cookie)) => serve(flags.str("name").unwrap_or("b@127.0.0.1:9101"), cookie, None),
        ("client", Some(cookie)) => {
            let name = flags.str("name").unwrap_or("a@127.0.0.1:0");
            let server = flags.str("server").unwrap_or("b@127.0.0.1:9101");
            client_node(name, server, cookie, n, flags.has("stop"), timeout)
        }
        ("both", cookie) => both(cookie.unwrap_or("secret"), n, timeout),
        ("server" | "client", None) => usage_error("--cookie SECRET is required"),
        (other, _) => usage_error(&format!("unknown mode {other:?}")),
    };
    if let Err(error) = outcome {
        eprintln!("increment_rpc: {error}");
        std::process::exit(1);
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("increment_rpc: {problem}\n{USAGE}");
    std::process::exit(2);
}

// ANCHOR: server_node
/// `server` mode: node `name` with the server registered as `increment`
/// (rpcgen's `svc_register`); serves until a client stops the server. The
/// node's real name goes to `announce` if given (port 0 picks a port).
fn serve(name: &str, cookie: &str, announce: Option<mpsc::Sender<String>>) -> Result<(), String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    println!("node {} serves increment", node.name());
    if let Some(announce) = announce {
        let _ = announce.send(node.name().to_owned());
    }
    let reason = rt.block_on(async {
        let server = start();
        register("increment", server).map_err(|e| format!("cannot register the server as `increment`: {e}"))?;
        monitor(server);
        Ok::<_, String>(recv::<Down>().await.reason)
    })?;
    println!("increment ended: {reason}");
    // Give the connections a moment to carry their last frames (the answer
    // to a call that found the server gone) before the program ends.
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
// ANCHOR_END: server_node

// ANCHOR: client_node
/// `client` mode: node `name` calls `inc(n)` on the server registered as
/// `increment` on node `server`, and, if `stop`, stops it.
fn client_node(name: &str, server: &str, cookie: &str, n: i64, stop: bool, timeout: Duration) -> Result<(), String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    // Connecting first reports a missing node or a wrong cookie as such.
    node.connect(server).map_err(|e| format!("cannot reach {server}: {e}"))?;
    let server = server.to_owned();
    rt.block_on(async move {
        let increment = IncrementClient::named_at("increment", &server).with_timeout(timeout);
        let result = client(&increment, n).await.map_err(|e| format!("inc({n}) on {server}: {e}"))?;
        if result != n + 1 {
            return Err(format!("expected {}, got {result}", n + 1));
        }
        if stop {
            increment.stop(); // one-way: returns at once
                              // Casts and calls from one process arrive in order: this call
                              // reaches the server after `stop`, and fails.
            match increment.inc(n).await {
                Err(e @ (CallError::NoProc | CallError::Exited(ExitReason::Normal) | CallError::NoConnection)) => {
                    println!("increment stopped: a call now fails with `{e}`");
                }
                other => return Err(format!("expected the server to have stopped, but inc({n}) gave {other:?}")),
            }
        }
        Ok(())
    })
}
// ANCHOR_END: client_node

// ANCHOR: both
/// `both` mode: the server node (on a thread of its own) and the client
/// node in this OS process, on ports the system picks.
fn both(cookie: &str, n: i64, timeout: Duration) -> Result<(), String> {
    let (announce, name) = mpsc::channel();
    let server_cookie = cookie.to_owned();
    let server = std::thread::spawn(move || serve("b@127.0.0.1:0", &server_cookie, Some(announce)));
    let served = move || server.join().unwrap_or_else(|_| Err("the server node panicked".to_owned()));
    let Ok(name) = name.recv() else {
        return served(); // it failed before it had a name: its error says why
    };
    // If the client fails, the server is not stopped: the program ends here.
    client_node("a@127.0.0.1:0", &name, cookie, n, true, timeout)?;
    served()
}
// ANCHOR_END: both
// ANCHOR_END: all
