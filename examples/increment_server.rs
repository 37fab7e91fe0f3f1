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

use krarup::prelude::*;
use serde::{Deserialize, Serialize};

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
    // Runs locally. The distributed flags (`--node NAME@HOST:PORT`,
    // `--server NAME@HOST:PORT`, `--cookie SECRET`) will be parsed here once
    // the network node lands, to run the server and the client on two nodes.
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
// ANCHOR_END: all
