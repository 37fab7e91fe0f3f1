//! The client half every generated client stub wraps: where the server is, how long a call may
//! take, whether and how idempotent calls are retried, and the call, deferred-call and cast
//! operations themselves.
//!
//! Invariants:
//! - A call never hangs: it ends with the reply or a [`CallError`] within its timeout (plus, for
//!   a retried call, its back-off pauses), and a late reply never reaches the caller afterwards
//!   (the runtime's `call` guarantees it).
//! - Only procedures marked idempotent are retried, only when the connection to the server was
//!   lost (`NoConnection`), and with the same request id each time. Only such a call (an
//!   idempotent procedure, with a retry policy of more than one attempt) carries a request id:
//!   any other is sent once, so it runs at most once without the server's reply cache. A call
//!   that times out while the server is alive is *not* retried: a long-running call is not a
//!   lost one.
//! - A request id is unique per calling process: its sequence number comes from one counter for
//!   the whole OS process, so two handles (not only clones) used by one process never share one.
//! - A name is looked up for every call, deferred call and cast, where it is registered, as
//!   Erlang's `gen_server:call(Name, ..)` and `gen_server:call({Name, Node}, ..)` do: a name on
//!   this node when the call starts; a name on another node by that node, as the request arrives
//!   (the call monitors the name and sends to it, in that order on one connection:
//!   `krarup_runtime::call_named_at`). So the first call after a server restarts under its name
//!   (a supervisor restarting it, say) reaches the new server, and casts and calls through one
//!   client reach the same process in the order they were made.
//!
//! # Where this differs from Erlang
//!
//! The stubs trust the name as Erlang does: a call reaches whatever process has the name. A
//! process that is not a server of this service (another service's server under that name, say)
//! takes no message of this service's, so the call ends with `Timeout` — where a `gen_server`
//! would hand the call to its `handle_call` and, typically, crash on the unexpected request. The
//! request stays in that process's mailbox, as any message nobody receives does.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use krarup_runtime::{call_start, call_start_named_at, CallError, Message, PendingCall, Pid};

use crate::calling::Calling;
use crate::wire::{Cast, Request};

/// The server a call to a name is made with until the name is found (never called).
pub(crate) const NOBODY: Pid = Pid::from_parts(0, 0, 0);

/// The default time a call may take: Erlang's `gen_server:call` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A server process.
    Pid(Pid),
    /// The process registered as `name` on `node` (on this node if `None`).
    Named {
        /// The registered name.
        name: String,
        /// The node (`name@host:port`), if not this one.
        node: Option<String>,
    },
}

/// How an idempotent call is retried after a lost connection: up to `attempts` attempts in all,
/// waiting `initial`, then twice as long each time, at most `max`, between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: u32,
    /// The pause before the second attempt.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for Retry {
    /// Four attempts, pausing 50 ms, 100 ms, 200 ms.
    fn default() -> Retry {
        Retry { attempts: 4, initial: Duration::from_millis(50), max: Duration::from_secs(2) }
    }
}

/// The sequence numbers of request ids (see the module docs).
static SEQ: AtomicU64 = AtomicU64::new(1);

/// The core of a client stub (see the module docs).
#[derive(Clone)]
pub struct Client {
    target: Target,
    timeout: Duration,
    /// `timeout` in whole nanoseconds (at most `u64::MAX`, which the runtime's call takes as
    /// never), for [`Calling`]: a `Duration` made from it in the call converts back to the
    /// runtime's nanoseconds without the multiplication and overflow check (~8 instructions).
    timeout_nanos: u64,
    /// The server a call is made with ([`Calling`]): a Pid target's Pid, or [`NOBODY`] for a
    /// name, found when the call is first polled. Kept beside `target` so that a call reads it as
    /// it is rather than matching it out (~8 instructions a call).
    call_to: Pid,
    /// Whether `target` is a name.
    named: bool,
    retry: Option<Retry>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server `target`, with the default timeout and no retries.
    pub fn new(target: Target) -> Client {
        let pid = match target {
            Target::Pid(pid) => Some(pid),
            Target::Named { .. } => None,
        };
        Client {
            target,
            timeout: DEFAULT_TIMEOUT,
            timeout_nanos: 0,
            call_to: pid.unwrap_or(NOBODY),
            named: pid.is_none(),
            retry: None,
        }
        .with_timeout(DEFAULT_TIMEOUT)
    }

    /// The same client with another timeout per call (per attempt, when retrying).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self.timeout_nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// The same client, retrying idempotent calls after a lost connection as `retry` says.
    pub fn with_retry(mut self, retry: Retry) -> Client {
        self.retry = Some(retry);
        self
    }

    /// Where the client sends.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The server a call is made with: a Pid target's Pid, or [`NOBODY`] for a name.
    pub(crate) fn call_to(&self) -> Pid {
        self.call_to
    }

    /// Whether the target is a name.
    pub(crate) fn is_named(&self) -> bool {
        self.named
    }

    /// The timeout per call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The timeout per call in whole nanoseconds, `u64::MAX` for one as long or longer (about
    /// 584 years: the runtime's call then never times out, as with the `Duration` itself).
    pub(crate) fn timeout_nanos(&self) -> u64 {
        self.timeout_nanos
    }

    /// A new request sequence number: with the calling process, a new request id.
    fn next_seq(&self) -> NonZeroU64 {
        // Relaxed: only uniqueness matters, which the atomic add gives.
        NonZeroU64::new(SEQ.fetch_add(1, Ordering::Relaxed)).expect("the sequence starts at 1 and never wraps")
    }

    /// Calls the server with `body` and waits for its reply.
    ///
    /// # Errors
    /// As the runtime's `call`: timeout, no server, lost connection, the server exited during
    /// the call, an undecodable reply.
    pub fn call<Q: Message, R: Message>(&self, body: Q) -> Calling<'_, Q, R> {
        self.call_map(body, Ok)
    }

    /// [`Client::call`], the reply turned into the result by `map` (a stub's procedure result
    /// out of its reply enum).
    ///
    /// # Errors
    /// As [`Client::call`], and those of `map`.
    pub fn call_map<Q: Message, R: Message, T, M: Fn(R) -> Result<T, CallError>>(
        &self,
        body: Q,
        map: M,
    ) -> Calling<'_, Q, R, M> {
        // Never retried: no request id, no reply kept for it.
        Calling::new(self, Request { seq: None, body }, map)
    }

    /// [`Client::call`] for an idempotent procedure: `make` builds the request for each attempt;
    /// with a retry policy, a lost connection is retried (same request id, back-off between).
    ///
    /// # Errors
    /// As [`Client::call`]; the last attempt's error.
    pub async fn call_idempotent<Q: Message, R: Message>(&self, make: impl Fn() -> Q) -> Result<R, CallError> {
        let retry = self.retry.unwrap_or(Retry { attempts: 1, ..Retry::default() });
        let seq = (retry.attempts > 1).then(|| self.next_seq());
        let mut pause = retry.initial;
        let mut attempt = 1;
        loop {
            match Calling::new(self, Request { seq, body: make() }, Ok).await {
                Err(CallError::NoConnection) if attempt < retry.attempts => {
                    tracing::debug!(attempt, ?pause, "rpc: connection lost; retrying the idempotent call");
                    krarup_runtime::sleep(pause).await;
                    pause = (pause * 2).min(retry.max);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends the call now and returns it, to be awaited later with [`Deferred::wait`]; `map`
    /// turns the reply into the procedure's result. Several can be in flight at once. Nothing
    /// fails here: as with Erlang's `gen_server:send_request`, every error — a local name
    /// nobody has (`NoProc`) included — comes from `wait`.
    pub fn start<Q: Message, R: Message, T>(&self, body: Q, map: fn(R) -> Result<T, CallError>) -> Deferred<R, T> {
        let request = Request { seq: None, body };
        let pending = match &self.target {
            Target::Pid(pid) => Ok(call_start(*pid, request)),
            Target::Named { name, node: None } => {
                krarup_runtime::whereis(name).map(|pid| call_start(pid, request)).ok_or(CallError::NoProc)
            }
            Target::Named { name, node: Some(node) } => Ok(call_start_named_at(name, node, request)),
        };
        Deferred { pending, timeout: self.timeout, map }
    }

    /// Sends a one-way request: no reply, no error (like `send`). Casts and calls from one
    /// process to one server arrive in the order they were made.
    pub fn cast<Q: Message>(&self, body: Q) {
        match &self.target {
            Target::Pid(pid) => pid.send(Cast(body)),
            Target::Named { name, node: None } => {
                let _ = krarup_runtime::send_named(name, Cast(body));
            }
            Target::Named { name, node: Some(node) } => krarup_runtime::send_named_at(name, node, Cast(body)),
        }
    }
}

/// A call in flight (see [`Client::start`]).
#[must_use = "a started call is awaited with `wait`; dropping it abandons the call"]
pub struct Deferred<R: Send + 'static, T> {
    /// The call, or why it could not be sent (reported by `wait`).
    pending: Result<PendingCall<R>, CallError>,
    timeout: Duration,
    map: fn(R) -> Result<T, CallError>,
}

impl<R: Send + 'static, T> fmt::Debug for Deferred<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deferred").field("pending", &self.pending).field("timeout", &self.timeout).finish()
    }
}

impl<R: Send + 'static, T> Deferred<R, T> {
    /// Waits for the reply, at most the client's timeout from now.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn wait(self) -> Result<T, CallError> {
        let Deferred { pending, timeout, map } = self;
        pending?.wait(timeout).await.and_then(map)
    }
}
