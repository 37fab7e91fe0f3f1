//! Calls to a name registered on another node (`call_named_at`, Erlang's
//! `gen_server:call({Name, Node}, Request)`): the name is looked up there as each call arrives,
//! so the first call after a server restarts under its name reaches the new server; a name
//! nobody has and a server that dies mid-call fail with their typed errors. Two nodes in this
//! test process, on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{pair, Side, TIMEOUT};
use krarup_runtime::{call_named_at, call_start_named_at, recv, Call, CallError, ExitReason, Pid};

/// Answers each call with the request plus `add`.
async fn add(add: u64) {
    loop {
        let call: Call<u64, u64> = recv().await;
        call.reply_to.reply(call.request + add);
    }
}

/// An [`add`] server on `side`, registered as `name`.
fn adder(side: &Side, name: &str, plus: u64) -> Pid {
    let pid = side.rt.spawn(add(plus));
    side.rt.register(name, pid).expect("a fresh name registers");
    pid
}

#[test]
fn a_call_to_a_name_on_another_node_reaches_whoever_has_the_name_even_right_after_a_restart() {
    let (a, b) = pair();
    let first = adder(&b, "adder", 1);
    let b_name = b.name().to_owned();
    let call = |n: u64| {
        let b_name = b_name.clone();
        a.rt.block_on(async move { call_named_at::<u64, u64>("adder", &b_name, n, TIMEOUT).await })
    };
    assert_eq!(call(1), Ok(2));
    // The server restarts under its name: the next call reaches the new one.
    b.rt.block_on(async move { krarup_runtime::exit(first, ExitReason::Kill) });
    common::wait_until("the name released", || b.rt.whereis("adder").is_none());
    adder(&b, "adder", 100);
    assert_eq!(call(1), Ok(101));
}

#[test]
fn a_call_to_a_name_nobody_has_on_another_node_fails_with_noproc_before_its_timeout() {
    let (a, b) = pair();
    let b_name = b.name().to_owned();
    let started = Instant::now();
    let result = a.rt.block_on(async move { call_named_at::<u64, u64>("nobody", &b_name, 1, TIMEOUT).await });
    assert_eq!(result, Err(CallError::NoProc));
    assert!(started.elapsed() < TIMEOUT, "it waited out the timeout");
}

#[test]
fn a_named_server_that_exits_mid_call_fails_the_call_with_its_reason() {
    let (a, b) = pair();
    let server = b.rt.spawn(async {
        let _taken: Call<u64, u64> = recv().await;
        ExitReason::Error("crashed".into())
    });
    b.rt.register("fragile", server).unwrap();
    let b_name = b.name().to_owned();
    let result = a.rt.block_on(async move { call_named_at::<u64, u64>("fragile", &b_name, 1, TIMEOUT).await });
    assert_eq!(result, Err(CallError::Exited(ExitReason::Error("crashed".into()))));
}

#[test]
fn named_calls_started_together_get_their_own_replies_and_time_out_alone() {
    let (a, b) = pair();
    adder(&b, "adder", 1);
    let silent = b.rt.spawn(std::future::pending::<()>());
    b.rt.register("silent", silent).unwrap();
    let b_name = b.name().to_owned();
    let (late, second, first) = a.rt.block_on(async move {
        let late = call_start_named_at::<u64, u64>("silent", &b_name, 0);
        let first = call_start_named_at::<u64, u64>("adder", &b_name, 10);
        let second = call_start_named_at::<u64, u64>("adder", &b_name, 20);
        let late = late.wait(Duration::from_millis(50)).await;
        (late, second.wait(TIMEOUT).await, first.wait(TIMEOUT).await)
    });
    assert_eq!((late, second, first), (Err(CallError::Timeout), Ok(21), Ok(11)));
}

#[test]
fn a_named_call_to_this_nodes_own_name_is_a_local_call_of_the_name() {
    let a = Side::start("a");
    adder(&a, "adder", 1);
    let a_name = a.name().to_owned();
    let result = a.rt.block_on(async move { call_named_at::<u64, u64>("adder", &a_name, 41, TIMEOUT).await });
    assert_eq!(result, Ok(42));
}
