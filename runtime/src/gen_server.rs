//! `GenServer`: Erlang's `gen_server` — a process that serves calls and
//! casts to a state, with a clean start and stop.
//!
//! A server is a value implementing [`GenServer`]; [`start`] or
//! [`start_link`] spawns a process that runs `init`, acknowledges the
//! start, then loops: it takes the oldest message and hands it to
//! `handle_call` (a [`Call`] from [`ServerRef::call`]), `handle_cast` (from
//! [`ServerRef::cast`]) or `handle_info` (anything else, including `Exit`
//! and `Down` messages), until a handler asks to stop. Then `terminate`
//! runs and the process exits with the stop reason.
//!
//! As in Erlang:
//! - `start`/`start_link` return once `init` has finished; an `init` that
//!   fails makes them return its reason.
//! - A server that traps exits and gets an exit signal from its *parent*
//!   (the process that started it, e.g. its supervisor) stops with that
//!   reason, through `terminate`; other `Exit` messages go to `handle_info`.
//! - A handler that panics ends the server with reason `Panic`, after
//!   `terminate`.
//! - A call to a server that is not running, or that dies during the call,
//!   fails at once (it is built on a monitor: see `call.rs`); a reply after
//!   the caller's timeout never reaches the caller.

use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::any::AnyMessage;
use crate::call::{call, Call, CallError, ReplyTo};
use crate::exit::{panic_message, ExitReason};
use crate::link::add_link;
use crate::monitor::{demonitor, new_reference, watch, Down};
use crate::pid::Pid;
use crate::scheduler::worker::with_worker;
use crate::send::{self_pid, Message};
use crate::signal::Exit;

/// What `handle_call` answers.
#[derive(Debug)]
pub enum CallReply<R> {
    /// Reply with this value and carry on.
    Reply(R),
    /// No reply now: the handler kept the [`ReplyTo`] and will reply later
    /// (a deferred reply), or never (the caller times out).
    NoReply,
    /// Stop the server with this reason, replying first if given a value.
    Stop(ExitReason, Option<R>),
}

/// What `handle_cast`, `handle_info` and `handle_idle` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Carry on.
    Continue,
    /// Stop the server with this reason (after `terminate`).
    Stop(ExitReason),
}

/// A server's behaviour: the callbacks of Erlang's `gen_server`.
///
/// Handlers are `async`; implement them with `async fn`. Only
/// `handle_call` is required.
///
/// # Examples
///
/// The increment server as a `GenServer`:
///
/// ```
/// use std::time::Duration;
/// use krarup_runtime::{gen_server, CallReply, GenServer, ReplyTo, Runtime};
///
/// struct Counter(i64);
///
/// impl GenServer for Counter {
///     type Call = i64;
///     type Reply = i64;
///     type Cast = ();
///
///     async fn handle_call(&mut self, by: i64, _from: ReplyTo<i64>) -> CallReply<i64> {
///         self.0 += by;
///         CallReply::Reply(self.0)
///     }
/// }
///
/// let rt = Runtime::new();
/// let total = rt.block_on(async {
///     let counter = gen_server::start(Counter(10)).await.unwrap();
///     counter.call(1, Duration::from_secs(5)).await
/// });
/// assert_eq!(total, Ok(11));
/// ```
pub trait GenServer: Sized + Send + 'static {
    /// What callers ask with [`ServerRef::call`].
    type Call: Message;
    /// What `handle_call` replies.
    type Reply: Message;
    /// What [`ServerRef::cast`] sends.
    type Cast: Message;

    /// Runs in the new process before any message is taken; an error stops
    /// the server at once (and `start` returns it).
    fn init(&mut self) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// Answers a call. `from` can be kept to reply later ([`CallReply::NoReply`]).
    fn handle_call(
        &mut self,
        request: Self::Call,
        from: ReplyTo<Self::Reply>,
    ) -> impl Future<Output = CallReply<Self::Reply>> + Send;

    /// Handles a cast (a one-way message).
    fn handle_cast(&mut self, message: Self::Cast) -> impl Future<Output = Flow> + Send {
        let _ = message;
        async { Flow::Continue }
    }

    /// Handles any other message: `Exit` (when trapping exits), `Down`,
    /// timers, plain sends. By default it is dropped with a `debug` event.
    fn handle_info(&mut self, message: AnyMessage) -> impl Future<Output = Flow> + Send {
        tracing::debug!(pid = %self_pid(), message = message.type_name(), "gen_server: unexpected message dropped");
        async { Flow::Continue }
    }

    /// How long the server may wait for a message before `handle_idle`
    /// runs (Erlang's timeout in a callback's return). None: forever.
    fn idle_timeout(&self) -> Option<Duration> {
        None
    }

    /// Runs when no message came within [`GenServer::idle_timeout`].
    fn handle_idle(&mut self) -> impl Future<Output = Flow> + Send {
        async { Flow::Continue }
    }

    /// Runs once before the server exits, with the reason (not when it is
    /// killed, or when `init` failed).
    fn terminate(&mut self, reason: &ExitReason) -> impl Future<Output = ()> + Send {
        let _ = reason;
        async {}
    }
}

/// A cast, wrapped so that it cannot be mistaken for an info message.
#[derive(Debug, Serialize, Deserialize)]
struct Cast<T>(T);

/// Asks the server to stop (from [`ServerRef::stop`]).
#[derive(Debug, Serialize, Deserialize)]
struct Stop(ExitReason);

/// `init` finished: how (sent by the new server to its starter).
#[derive(Debug, Serialize, Deserialize)]
struct InitDone {
    server: Pid,
    result: Result<(), ExitReason>,
}

/// A typed handle to a running server: a Pid that knows the server's
/// message types.
#[derive(Serialize, Deserialize)]
pub struct ServerRef<S> {
    pid: Pid,
    #[serde(skip)]
    _server: PhantomData<fn() -> S>,
}

impl<S> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for ServerRef<S> {}

impl<S> PartialEq for ServerRef<S> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}

impl<S> Eq for ServerRef<S> {}

impl<S> std::fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerRef({})", self.pid)
    }
}

impl<S: GenServer> ServerRef<S> {
    /// A handle to the server running as `pid` (trusting that it is an `S`).
    pub fn from_pid(pid: Pid) -> ServerRef<S> {
        ServerRef { pid, _server: PhantomData }
    }

    /// The server registered as `name` in the caller's runtime.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub fn whereis(name: &str) -> Option<ServerRef<S>> {
        crate::registry::whereis(name).map(ServerRef::from_pid)
    }

    /// The server's Pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Calls the server and waits at most `timeout` for its reply.
    ///
    /// # Errors
    /// [`CallError`]: timeout, the server is not running, or it exited
    /// during the call (with its reason).
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn call(&self, request: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        call::<S::Call, S::Reply>(self.pid, request, timeout).await
    }

    /// Sends the server a cast; never blocks, never fails (a cast to a dead
    /// server is dropped).
    pub fn cast(&self, message: S::Cast) {
        self.pid.send(Cast(message));
    }

    /// Asks the server to stop with `reason` (after `terminate`) and waits
    /// at most `timeout` for it to exit.
    ///
    /// # Errors
    /// [`CallError::NoProc`] if it was not running, [`CallError::Timeout`]
    /// if it did not exit in time, [`CallError::Exited`] if it exited with
    /// another reason than asked.
    ///
    /// # Panics
    /// If called outside a krarup process.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        let reference = crate::monitor::monitor(self.pid);
        self.pid.send(Stop(reason.clone()));
        let result = crate::receive! {
            down: Down if down.reference == reference => match down.reason {
                ExitReason::NoProc => Err(CallError::NoProc),
                exited if exited == reason => Ok(()),
                exited => Err(CallError::Exited(exited)),
            },
            after timeout => Err(CallError::Timeout),
        };
        demonitor(reference);
        result
    }
}

/// Starts `server` in a new process and waits for its `init`.
///
/// # Errors
/// The reason `init` failed with (or the new process's exit reason if it
/// died before finishing `init`).
///
/// # Panics
/// If called outside a krarup process.
pub async fn start<S: GenServer>(server: S) -> Result<ServerRef<S>, ExitReason> {
    start_with(server, false).await
}

/// [`start`], with the new server linked to the caller (as a supervisor
/// starts its children): if one of them exits abnormally, so does the other
/// (unless it traps exits). If `init` fails the server exits with that
/// reason — and a caller that does not trap exits exits too, as in Erlang.
///
/// # Errors
/// As [`start`].
///
/// # Panics
/// If called outside a krarup process.
pub async fn start_link<S: GenServer>(server: S) -> Result<ServerRef<S>, ExitReason> {
    start_with(server, true).await
}

async fn start_with<S: GenServer>(server: S, linked: bool) -> Result<ServerRef<S>, ExitReason> {
    let parent = self_pid();
    let placeholder = new_reference("gen_server::start", parent);
    let mut reference = placeholder;
    let pid = with_worker(|w| {
        let w = w.expect("a process runs on a worker");
        w.spawn_with(serve(server, parent), |child| {
            if linked {
                add_link(child, parent);
                add_link(parent, child);
            }
            reference = watch(child, placeholder);
        })
    });
    let started = crate::receive! {
        done: InitDone if done.server == pid => done.result,
        down: Down if down.reference == reference => Err(down.reason),
    };
    demonitor(reference);
    started.map(|()| ServerRef::from_pid(pid))
}

/// The server process.
async fn serve<S: GenServer>(mut state: S, parent: Pid) -> ExitReason {
    let result = catch(state.init()).await.unwrap_or_else(Err);
    let failed = result.as_ref().err().cloned();
    parent.send(InitDone { server: self_pid(), result });
    if let Some(reason) = failed {
        return reason;
    }
    loop {
        let timeout = state.idle_timeout().unwrap_or(Duration::MAX);
        let step = crate::receive! {
            c: Call<S::Call, S::Reply> => {
                let reply_to = c.reply_to;
                match catch(state.handle_call(c.request, reply_to)).await {
                    Ok(CallReply::Reply(value)) => {
                        reply_to.reply(value);
                        Flow::Continue
                    }
                    Ok(CallReply::NoReply) => Flow::Continue,
                    Ok(CallReply::Stop(reason, reply)) => {
                        if let Some(value) = reply {
                            reply_to.reply(value);
                        }
                        Flow::Stop(reason)
                    }
                    Err(panicked) => Flow::Stop(panicked),
                }
            }
            Cast(message): Cast<S::Cast> => catch(state.handle_cast(message)).await.unwrap_or_else(Flow::Stop),
            Stop(reason): Stop => Flow::Stop(reason),
            exit: Exit if exit.from == parent => Flow::Stop(exit.reason),
            message: AnyMessage => catch(state.handle_info(message)).await.unwrap_or_else(Flow::Stop),
            after timeout => catch(state.handle_idle()).await.unwrap_or_else(Flow::Stop),
        };
        if let Flow::Stop(reason) = step {
            // A panic in terminate must not hide the reason we stop with.
            let _ = catch(state.terminate(&reason)).await;
            return reason;
        }
    }
}

/// Runs a handler's future, turning a panic into `Err(Panic(message))`.
async fn catch<F: Future>(future: F) -> Result<F::Output, ExitReason> {
    let mut future = pin!(future);
    poll_fn(move |cx| match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
        Err(payload) => {
            let reason = ExitReason::Panic(panic_message(&*payload));
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Poll::Ready(Err(reason))
        }
    })
    .await
}
