//! `GenServer`: calls, casts and info messages on a counter server; start
//! and stop, crashes and `terminate`, deferred and late replies, idle
//! timeouts, and the parent rule — Erlang's `gen_server` semantics as the
//! module docs of `gen_server.rs` and `call.rs` state them.
//!
//! The counter reports what its callbacks see ([`Event`]) to an observer,
//! usually the test's process. A callback's report is sent before the
//! server exits, so it is in the observer's mailbox by the time the
//! server's `Down` is.

mod util;

use std::time::Duration;

use krarup_runtime::gen_server::{self, CallReply, Flow, GenServer, ServerRef};
use krarup_runtime::{
    exit, link, mailbox_len, monitor, receive, recv_timeout, register, self_pid, spawn, spawn_monitor, trap_exit,
    try_recv, AnyMessage, CallError, Down, Exit, ExitReason, Pid, ReplyTo,
};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, recv_bounded, runtime, TIMEOUT};

/// What the counter's callbacks report to its observer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Event {
    /// `init` ran, in this process.
    Started(Pid),
    /// `handle_cast` is blocked until it gets [`Unblock`].
    Blocked,
    /// `handle_call` kept a `ReplyTo` to answer later.
    Deferred,
    /// `handle_info` got a `Down`.
    Down(ExitReason),
    /// `handle_info` got an `Exit`.
    Exit(Pid, ExitReason),
    /// `handle_info` got something else: its type.
    Info(String),
    /// `handle_idle` ran for the n-th time.
    Idle(u32),
    /// `terminate` ran with this reason.
    Terminated(ExitReason),
}

/// The counter's calls.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Get,
    Add(i64),
    Times(i64),
    /// Reply later, with the value at the next [`Note::ReleaseDeferred`].
    Defer,
    /// Have another process reply (the value plus 100).
    Delegate,
    Panic,
    Stop(ExitReason, Option<i64>),
    Monitor(Pid),
    Link(Pid),
}

/// The counter's casts.
#[derive(Debug, Serialize, Deserialize)]
enum Note {
    Add(i64),
    Times(i64),
    /// Answer the deferred call with the current value.
    ReleaseDeferred,
    /// Wait in the handler for [`Unblock`].
    Block,
    Panic,
    Stop(ExitReason),
}

/// Ends a [`Note::Block`].
#[derive(Debug, Serialize, Deserialize)]
struct Unblock;

/// The info message that makes `handle_info` panic.
const PANIC_INFO: &str = "panic, please";

/// A counter server that reports to `observer`.
struct Counter {
    value: i64,
    observer: Pid,
    init: Result<(), ExitReason>,
    init_panics: bool,
    trap_exits: bool,
    name: Option<&'static str>,
    /// The idle timeout, and after how many idle periods to stop.
    idle: Option<(Duration, u32)>,
    idles: u32,
    deferred: Option<ReplyTo<i64>>,
}

impl Counter {
    fn new(observer: Pid) -> Counter {
        Counter {
            value: 0,
            observer,
            init: Ok(()),
            init_panics: false,
            trap_exits: false,
            name: None,
            idle: None,
            idles: 0,
            deferred: None,
        }
    }

    fn failing_init(self, reason: ExitReason) -> Counter {
        Counter { init: Err(reason), ..self }
    }

    fn panicking_init(self) -> Counter {
        Counter { init_panics: true, ..self }
    }

    fn trapping_exits(self) -> Counter {
        Counter { trap_exits: true, ..self }
    }

    fn named(self, name: &'static str) -> Counter {
        Counter { name: Some(name), ..self }
    }

    fn stopping_after_idle(self, timeout: Duration, periods: u32) -> Counter {
        Counter { idle: Some((timeout, periods)), ..self }
    }

    fn report(&self, event: Event) {
        self.observer.send(event);
    }
}

impl GenServer for Counter {
    type Call = Request;
    type Reply = i64;
    type Cast = Note;

    async fn init(&mut self) -> Result<(), ExitReason> {
        self.report(Event::Started(self_pid()));
        if self.trap_exits {
            trap_exit(true);
        }
        if let Some(name) = self.name {
            register(name, self_pid()).map_err(|e| ExitReason::Error(e.to_string()))?;
        }
        assert!(!self.init_panics, "init panicked");
        self.init.clone()
    }

    async fn handle_call(&mut self, request: Request, from: ReplyTo<i64>) -> CallReply<i64> {
        match request {
            Request::Get => {}
            Request::Add(n) => self.value += n,
            Request::Times(n) => self.value *= n,
            Request::Defer => {
                self.deferred = Some(from);
                self.report(Event::Deferred);
                return CallReply::NoReply;
            }
            Request::Delegate => {
                let value = self.value;
                spawn(async move { from.reply(value + 100) });
                return CallReply::NoReply;
            }
            Request::Panic => panic!("handle_call panicked"),
            Request::Stop(reason, reply) => return CallReply::Stop(reason, reply),
            Request::Monitor(pid) => drop(monitor(pid)),
            Request::Link(pid) => link(pid),
        }
        CallReply::Reply(self.value)
    }

    async fn handle_cast(&mut self, note: Note) -> Flow {
        match note {
            Note::Add(n) => self.value += n,
            Note::Times(n) => self.value *= n,
            Note::ReleaseDeferred => {
                if let Some(from) = self.deferred.take() {
                    from.reply(self.value);
                }
            }
            Note::Block => {
                self.report(Event::Blocked);
                if recv_timeout::<Unblock>(TIMEOUT).await.is_none() {
                    return Flow::Stop(ExitReason::Error("never unblocked".into()));
                }
            }
            Note::Panic => panic!("handle_cast panicked"),
            Note::Stop(reason) => return Flow::Stop(reason),
        }
        Flow::Continue
    }

    async fn handle_info(&mut self, message: AnyMessage) -> Flow {
        let event = match message.downcast::<Down>() {
            Ok(down) => Event::Down(down.reason),
            Err(message) => match message.downcast::<Exit>() {
                Ok(exit) => Event::Exit(exit.from, exit.reason),
                Err(message) => match message.downcast::<String>() {
                    Ok(text) if text == PANIC_INFO => panic!("handle_info panicked"),
                    Ok(text) => Event::Info(text),
                    Err(message) => Event::Info(message.type_name().to_owned()),
                },
            },
        };
        self.report(event);
        Flow::Continue
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.idle.map(|(timeout, _)| timeout)
    }

    async fn handle_idle(&mut self) -> Flow {
        self.idles += 1;
        self.report(Event::Idle(self.idles));
        match self.idle {
            Some((_, periods)) if self.idles >= periods => Flow::Stop(ExitReason::Shutdown(Some("idle".into()))),
            _ => Flow::Continue,
        }
    }

    async fn terminate(&mut self, reason: &ExitReason) {
        self.report(Event::Terminated(reason.clone()));
    }
}

/// Starts `counter` (unlinked) and takes its `Started` event: the server
/// and its Pid as `init` saw it.
async fn start(counter: Counter) -> ServerRef<Counter> {
    let server = gen_server::start(counter).await.expect("the counter starts");
    assert_eq!(recv_bounded::<Event>().await, Event::Started(server.pid()));
    server
}

#[test]
fn call_returns_the_reply() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me)).await;
        assert_eq!(server.call(Request::Add(5), TIMEOUT).await, Ok(5));
        assert_eq!(server.call(Request::Times(3), TIMEOUT).await, Ok(15));
        assert_eq!(server.call(Request::Get, TIMEOUT).await, Ok(15));
        // Nothing of the calls (replies, monitors) is left behind.
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn cast_never_blocks_and_is_handled_in_order_with_calls() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me)).await;
        // While the server is stuck in a handler, casts still return at
        // once: they wait in its mailbox.
        server.cast(Note::Block);
        assert_eq!(recv_bounded::<Event>().await, Event::Blocked);
        for _ in 0..1_000 {
            server.cast(Note::Add(1));
        }
        assert_eq!(mailbox_len(server.pid()), Some(1_000));
        server.pid().send(Unblock);
        assert_eq!(server.call(Request::Get, TIMEOUT).await, Ok(1_000));
        // Casts and calls from one sender are handled in the order sent
        // (adding and multiplying do not commute).
        let mut expected = 1_000;
        for n in 1..=50 {
            server.cast(Note::Add(n));
            server.cast(Note::Times(2));
            expected = (expected + n) * 2;
            if n % 5 == 0 {
                assert_eq!(server.call(Request::Add(-n), TIMEOUT).await, Ok(expected - n));
                expected -= n;
            }
        }
        assert_eq!(server.call(Request::Get, TIMEOUT).await, Ok(expected));
    });
}

#[test]
fn deferred_reply_via_from() {
    // `handle_call` keeps the `ReplyTo` and answers after more messages
    // came in; or hands it to another process, which answers.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // The observer acts on the deferral: two casts, the second of which
        // releases the reply.
        let observer = spawn(async move {
            let server: ServerRef<Counter> = recv_bounded().await;
            loop {
                match recv_timeout::<Event>(TIMEOUT).await {
                    Some(Event::Deferred) => {
                        server.cast(Note::Add(7));
                        server.cast(Note::ReleaseDeferred);
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        });
        let server = gen_server::start(Counter::new(observer)).await.unwrap();
        observer.send(server);
        assert_eq!(server.call(Request::Defer, TIMEOUT).await, Ok(7), "the reply came before the casts");
        assert_eq!(server.call(Request::Delegate, TIMEOUT).await, Ok(107));
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn call_to_dead_server_fails_with_noproc() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me)).await;
        assert_eq!(server.stop(ExitReason::Normal, TIMEOUT).await, Ok(()));
        assert_eq!(recv_bounded::<Event>().await, Event::Terminated(ExitReason::Normal));
        assert_eq!(server.call(Request::Get, TIMEOUT).await, Err(CallError::NoProc));
        server.cast(Note::Add(1)); // dropped, no error
        assert_eq!(server.stop(ExitReason::Normal, TIMEOUT).await, Err(CallError::NoProc));
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn call_fails_with_the_reason_when_the_server_crashes_during_the_call() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // The handler panics.
        let server = start(Counter::new(me)).await;
        let panicked = ExitReason::Panic("handle_call panicked".into());
        assert_eq!(server.call(Request::Panic, TIMEOUT).await, Err(CallError::Exited(panicked.clone())));
        assert_eq!(recv_bounded::<Event>().await, Event::Terminated(panicked));
        // The handler stops the server without replying...
        let server = start(Counter::new(me)).await;
        let stopped = ExitReason::Error("stopped mid-call".into());
        let request = Request::Stop(stopped.clone(), None);
        assert_eq!(server.call(request, TIMEOUT).await, Err(CallError::Exited(stopped.clone())));
        assert_eq!(recv_bounded::<Event>().await, Event::Terminated(stopped));
        // ...or replies first, and the call succeeds.
        let server = start(Counter::new(me)).await;
        let request = Request::Stop(ExitReason::Normal, Some(3));
        assert_eq!(server.call(request, TIMEOUT).await, Ok(3));
        assert_eq!(recv_bounded::<Event>().await, Event::Terminated(ExitReason::Normal));
        // Killed from outside while the call waits (a deferred reply).
        let killer = spawn(async {
            let Event::Started(server) = recv_bounded::<Event>().await else { panic!("not started") };
            assert_eq!(recv_bounded::<Event>().await, Event::Deferred);
            exit(server, ExitReason::Kill);
        });
        let server = gen_server::start(Counter::new(killer)).await.unwrap();
        assert_eq!(server.call(Request::Defer, TIMEOUT).await, Err(CallError::Exited(ExitReason::Killed)));
        // No reply, no Down left behind.
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn call_times_out_and_late_reply_after_call_timeout_is_discarded() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me)).await;
        let started = std::time::Instant::now();
        assert_eq!(server.call(Request::Defer, Duration::from_millis(20)).await, Err(CallError::Timeout));
        assert!(started.elapsed() >= Duration::from_millis(20), "timed out early");
        // Now the server answers the call we gave up on, then this one: the
        // late reply has come and gone when this one is back.
        server.cast(Note::ReleaseDeferred);
        assert_eq!(server.call(Request::Add(1), TIMEOUT).await, Ok(1));
        assert_eq!(recv_bounded::<Event>().await, Event::Deferred);
        assert_eq!(mailbox_len(me), Some(0), "the late reply reached the mailbox");
        receive! {
            late: AnyMessage => panic!("a {} arrived after the call timed out", late.type_name()),
            after Duration::from_millis(50) => {}
        }
    });
}

#[test]
fn init_error_fails_start() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let failing = ExitReason::Error("bad config".into());
        let counters = [
            (Counter::new(me).failing_init(failing.clone()), failing),
            (Counter::new(me).panicking_init(), ExitReason::Panic("init panicked".into())),
        ];
        for (counter, reason) in counters {
            assert_eq!(gen_server::start(counter).await, Err(reason.clone()));
            let Event::Started(server) = recv_bounded::<Event>().await else { panic!("init did not run") };
            // The server is gone, with the reason, and without `terminate`.
            let down = exit_reason(server).await;
            assert!(down == reason || down == ExitReason::NoProc, "{down:?}");
            assert_eq!(try_recv::<Event>(), None, "terminate ran after a failed init");
            assert_eq!(mailbox_len(me), Some(0));
        }
    });
}

#[test]
fn start_link_init_error_kills_a_non_trapping_caller() {
    // As in Erlang: the failed server exits with init's reason, and its
    // link takes the caller with it — wherever it is by then, in
    // `start_link` or after it returned the error.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let failing = ExitReason::Error("bad config".into());
        let reason = failing.clone();
        let (_caller, watch) = spawn_monitor(async move {
            let started = gen_server::start_link(Counter::new(me).failing_init(reason)).await;
            assert!(started.is_err(), "start_link succeeded");
            let _ = recv_timeout::<Unblock>(TIMEOUT).await;
            ExitReason::Error("the caller survived".into())
        });
        assert_eq!(down_of(watch).await.reason, failing);
    });
}

#[test]
fn start_link_init_error_gives_a_trapping_caller_an_exit_message() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        trap_exit(true);
        let failing = ExitReason::Error("bad config".into());
        let started = gen_server::start_link(Counter::new(me).failing_init(failing.clone())).await;
        assert_eq!(started, Err(failing.clone()));
        let Event::Started(server) = recv_bounded::<Event>().await else { panic!("init did not run") };
        assert_eq!(recv_bounded::<Exit>().await, Exit { from: server, reason: failing });
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn stop_runs_terminate_with_the_reason() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        // Asked from outside.
        let server = start(Counter::new(me)).await;
        let reason = ExitReason::Shutdown(Some("bye".into()));
        assert_eq!(server.stop(reason.clone(), TIMEOUT).await, Ok(()));
        assert_eq!(try_recv::<Event>(), Some(Event::Terminated(reason)), "terminate ran before the exit");
        // Decided by a cast handler or a call handler.
        for (how, reason) in [("cast", ExitReason::Error("by cast".into())), ("call", ExitReason::Normal)] {
            let server = start(Counter::new(me)).await;
            let watch = monitor(server.pid());
            if how == "cast" {
                server.cast(Note::Stop(reason.clone()));
            } else {
                assert_eq!(server.call(Request::Stop(reason.clone(), Some(0)), TIMEOUT).await, Ok(0));
            }
            assert_eq!(down_of(watch).await.reason, reason, "{how}");
            assert_eq!(try_recv::<Event>(), Some(Event::Terminated(reason)), "{how}");
        }
        assert_eq!(mailbox_len(me), Some(0));
    });
}

#[test]
fn a_panic_in_a_handler_runs_terminate_and_exits_with_panic() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for handler in ["handle_cast", "handle_info", "handle_call"] {
            let server = start(Counter::new(me)).await;
            let watch = monitor(server.pid());
            match handler {
                "handle_cast" => server.cast(Note::Panic),
                "handle_info" => server.pid().send(PANIC_INFO.to_string()),
                _ => {
                    let panicked = ExitReason::Panic("handle_call panicked".into());
                    assert_eq!(server.call(Request::Panic, TIMEOUT).await, Err(CallError::Exited(panicked)));
                }
            }
            let reason = ExitReason::Panic(format!("{handler} panicked"));
            assert_eq!(down_of(watch).await.reason, reason);
            assert_eq!(try_recv::<Event>(), Some(Event::Terminated(reason)), "{handler}");
        }
    });
}

#[test]
fn handle_info_gets_other_messages_including_down_and_exit() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me).trapping_exits()).await;
        // Plain messages of any type.
        server.pid().send("hello".to_string());
        assert_eq!(recv_bounded::<Event>().await, Event::Info("hello".into()));
        server.pid().send(7u32);
        assert_eq!(recv_bounded::<Event>().await, Event::Info("u32".into()));
        // The Down of a process the server monitors.
        let watched = spawn(wait_for_unblock());
        assert_eq!(server.call(Request::Monitor(watched), TIMEOUT).await, Ok(0));
        watched.send(Unblock);
        assert_eq!(recv_bounded::<Event>().await, Event::Down(ExitReason::Error("unblocked".into())));
        // The Exit of a linked process that is not its parent: a message,
        // and the server carries on.
        let linked = spawn(wait_for_unblock());
        assert_eq!(server.call(Request::Link(linked), TIMEOUT).await, Ok(0));
        linked.send(Unblock);
        assert_eq!(recv_bounded::<Event>().await, Event::Exit(linked, ExitReason::Error("unblocked".into())));
        assert_eq!(server.call(Request::Add(1), TIMEOUT).await, Ok(1));
    });
}

/// A process that exits with an error once it gets [`Unblock`].
async fn wait_for_unblock() -> ExitReason {
    match recv_timeout::<Unblock>(TIMEOUT).await {
        Some(Unblock) => ExitReason::Error("unblocked".into()),
        None => ExitReason::Error("never unblocked".into()),
    }
}

#[test]
fn idle_timeout_calls_handle_idle() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me).stopping_after_idle(Duration::from_millis(5), 3)).await;
        let watch = monitor(server.pid());
        let idle = ExitReason::Shutdown(Some("idle".into()));
        for n in 1..=3 {
            assert_eq!(recv_bounded::<Event>().await, Event::Idle(n));
        }
        assert_eq!(down_of(watch).await.reason, idle);
        assert_eq!(try_recv::<Event>(), Some(Event::Terminated(idle)));
    });
}

#[test]
fn a_trapping_server_stops_when_its_parent_exits() {
    // The parent's exit signal is not an info message: the server stops
    // with its reason, through `terminate` — even for `Normal`.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for reason in [ExitReason::Error("parent crashed".into()), ExitReason::Shutdown(None), ExitReason::Normal] {
            let parent_reason = reason.clone();
            let parent = spawn(async move {
                let server = gen_server::start_link(Counter::new(me).trapping_exits()).await.unwrap();
                me.send(server);
                let Unblock = recv_bounded().await;
                parent_reason
            });
            let server: ServerRef<Counter> = recv_bounded().await;
            assert_eq!(recv_bounded::<Event>().await, Event::Started(server.pid()));
            let watch = monitor(server.pid());
            parent.send(Unblock);
            assert_eq!(down_of(watch).await.reason, reason);
            // Only `terminate` saw it, not `handle_info`.
            assert_eq!(try_recv::<Event>(), Some(Event::Terminated(reason)));
            assert_eq!(try_recv::<Event>(), None);
        }
    });
}

#[test]
fn registered_server_is_reachable_by_name() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let server = start(Counter::new(me).named("counter")).await;
        let found = ServerRef::<Counter>::whereis("counter").expect("the server is registered");
        assert_eq!(found, server);
        assert_eq!(found.call(Request::Add(2), TIMEOUT).await, Ok(2));
        found.cast(Note::Add(3));
        assert_eq!(server.call(Request::Get, TIMEOUT).await, Ok(5));
        assert_eq!(found.stop(ExitReason::Normal, TIMEOUT).await, Ok(()));
        assert_eq!(ServerRef::<Counter>::whereis("counter"), None, "the name outlived the server");
        assert_eq!(ServerRef::<Counter>::whereis("nobody"), None);
    });
}
