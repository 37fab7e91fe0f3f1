//! The client half every generated client stub wraps: where the server is, how long a call may
//! take, whether and how idempotent calls are retried, and the call, deferred-call and cast
//! operations themselves.
//!
//! Invariants:
//! - A call never hangs: it ends with the reply or a [`CallError`] within its timeout, which
//!   covers finding a named server too (plus, for a retried call, its back-off pauses), and a
//!   late reply never reaches the caller afterwards (the runtime's `call` guarantees it).
//! - Only procedures marked idempotent are retried, only when the connection to the server was
//!   lost (`NoConnection`), and with the same request id each time. Only such a call (an
//!   idempotent procedure, with a retry policy of more than one attempt) carries a request id:
//!   any other is sent once to each server it finds (see the last point), so it runs at most once
//!   without the server's reply cache. A call that times out while the server is alive is *not*
//!   retried: a long-running call is not a lost one.
//! - A request id is unique per calling process: its sequence number comes from one counter for
//!   the whole OS process, so two handles (not only clones) used by one process never share one.
//! - A name on this node is looked up at every call and cast (as Erlang's `gen_server:call`
//!   does). A name on another node is resolved to a Pid when first needed (a lookup there costs a
//!   round trip) and kept until a call through it finds that server dead or unreachable
//!   (`NoProc`, `NoConnection`, `Exited`); clones share the Pid, and a call forgets only the Pid
//!   it used, not one a clone has found since.
//! - A lookup's answer reaches that lookup only: each is asked by a process of its own, which
//!   the caller calls, so lookups in flight at once in one process never take each other's
//!   answers, and an answer that comes after its lookup gave up never reaches the caller's
//!   mailbox (see `resolve`).
//! - After a server restarts under its name, an idempotent call that finds the old server gone
//!   (`NoProc` through a Pid found by name, on this node or another) looks the name up again
//!   and, if it names another process now, calls that one: once, within the same timeout. Any
//!   other call fails with `NoProc` and leaves the name to be looked up again by the next call.
//!
//! # Where this differs from Erlang
//!
//! `gen_server:call({Name, Node}, ..)` monitors and sends to `{Name, Node}`, which the server's
//! node looks up as each arrives, so its first call after a restart reaches the new server. The
//! runtime can do the same (`krarup_runtime::call_named_at`), but the stubs call the Pid their
//! lookup found (the lookup also checks that the process serves this service), so a call to a
//! name on another node goes to the Pid an earlier lookup found, and the first call after a
//! restart reaches the dead server. Only an idempotent call is then sent again:
//!
//! - `NoProc` says that the request reached no process in every case but one. On this node the
//!   server's lock decides: a dead server is never handed the request (the runtime's call
//!   protocol, step 2). On another node the call's monitor request travels before the request,
//!   on the same connection: a `Down` with `NoProc` for a server that was already dead means the
//!   request, arriving after it, finds it dead too and is dropped (a Pid names one process only:
//!   a new process in the same slot, or on a restarted node, has another Pid). The exception: a
//!   server that was alive, took the request and then exited *with reason* `NoProc` — killed by
//!   an exit signal of that reason, as a process is that links to a dead process without
//!   trapping exits — is reported the same way, and may have run the procedure.
//! - Sending the request again needs it again. A plain call's arguments are moved into its
//!   request, which the runtime consumes when it sends it; an idempotent call builds its request
//!   anew for every attempt (its arguments are cloned).
//!
//! Re-sending a plain call after `NoProc` would therefore need a copy of its request (kept in
//! serialized form, say) and the runtime to report a server that exited with reason `NoProc`
//! as `Exited(NoProc)`; neither is here, so a plain call fails once and the next one finds the
//! new server.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use krarup_runtime::dist::tag_of;
use krarup_runtime::{call_start, receive, self_pid, Call, CallError, Down, ExitReason, Message, PendingCall, Pid};
use parking_lot::Mutex;

use crate::calling::Calling;
use crate::wire::{Cast, Request, Resolve, Resolved};

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

/// The core of a client stub (see the module docs). Cheap to clone; clones share the resolved
/// server.
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
    resolved: Arc<Mutex<Option<Pid>>>,
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
            resolved: Arc::new(Mutex::new(pid)),
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

    /// The server's Pid if it is known without waiting: a Pid target, a name on this node (looked
    /// up now), a remote name already resolved. `None`: a remote name to [`resolve`](Self::resolve).
    pub(crate) fn known_server(&self) -> Option<Result<Pid, CallError>> {
        match &self.target {
            Target::Pid(pid) => Some(Ok(*pid)),
            // Looked up every time (never cached): a restarted server is found at once.
            Target::Named { name, node: None } => Some(krarup_runtime::whereis(name).ok_or(CallError::NoProc)),
            Target::Named { node: Some(_), .. } => (*self.resolved.lock()).map(Ok),
        }
    }

    /// A remote name's Pid, asked of its node (for service `Q`) waiting at most `timeout`, and
    /// kept for the next calls.
    pub(crate) async fn resolve<Q: Message>(&self, timeout: Duration) -> Result<Pid, CallError> {
        let Target::Named { name, node: Some(node) } = &self.target else {
            unreachable!("only a remote name is resolved")
        };
        let pid = resolve::<Q>(name, node, timeout).await?;
        *self.resolved.lock() = Some(pid);
        Ok(pid)
    }

    /// The server's Pid: known, or found by name (for service `Q`) by `deadline`.
    async fn server<Q: Message>(&self, deadline: Instant) -> Result<Pid, CallError> {
        match self.known_server() {
            Some(known) => known,
            None => self.resolve::<Q>(remaining(deadline)).await,
        }
    }

    /// A call to `server` failed with `error`: if that says the server is dead or unreachable and
    /// `server` is what a remote name resolved to, the name is looked up again next time. (A Pid
    /// that a clone has found since is kept.)
    pub(crate) fn forget(&self, server: Pid, error: &CallError) {
        if matches!(self.target, Target::Named { node: Some(_), .. })
            && matches!(error, CallError::NoProc | CallError::NoConnection | CallError::Exited(_))
        {
            let mut resolved = self.resolved.lock();
            if *resolved == Some(server) {
                *resolved = None;
            }
        }
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
        Calling::new(self, body, map)
    }

    /// [`Client::call`] for an idempotent procedure: `make` builds the request for each attempt;
    /// with a retry policy, a lost connection is retried (same request id, back-off between). A
    /// server found by name that turns out gone is looked up again, and a new server under the
    /// name called, within the same attempt (see the module docs).
    ///
    /// # Errors
    /// As [`Client::call`]; the last attempt's error.
    pub async fn call_idempotent<Q: Message, R: Message>(&self, make: impl Fn() -> Q) -> Result<R, CallError> {
        let retry = self.retry.unwrap_or(Retry { attempts: 1, ..Retry::default() });
        let seq = (retry.attempts > 1).then(|| self.next_seq());
        let mut pause = retry.initial;
        let mut attempt = 1;
        loop {
            match self.attempt::<Q, R>(|| Request { seq, body: make() }).await {
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

    /// One attempt of an idempotent call, within the client's timeout: finds the server and calls
    /// it; if a server found by name is gone (`NoProc`), looks the name up again and, if it names
    /// another process now, calls that one. At most two lookups and two calls.
    async fn attempt<Q: Message, R: Message>(&self, make: impl Fn() -> Request<Q>) -> Result<R, CallError> {
        let deadline = Instant::now() + self.timeout;
        let server = self.server::<Q>(deadline).await?;
        match self.call_until::<Q, R>(server, make(), deadline).await {
            Err(CallError::NoProc) if matches!(self.target, Target::Named { .. }) => {
                let again = self.server::<Q>(deadline).await?;
                if again == server {
                    return Err(CallError::NoProc);
                }
                tracing::debug!(
                    ?server,
                    ?again,
                    "rpc: the named server is gone; calling the one that has the name now"
                );
                self.call_until::<Q, R>(again, make(), deadline).await
            }
            result => result,
        }
    }

    /// The runtime's call of `server`, waiting until `deadline`; not sent if that has passed.
    async fn call_until<Q: Message, R: Message>(
        &self,
        server: Pid,
        request: Request<Q>,
        deadline: Instant,
    ) -> Result<R, CallError> {
        let timeout = remaining(deadline);
        if timeout.is_zero() {
            return Err(CallError::Timeout);
        }
        let result = krarup_runtime::call::<Request<Q>, R>(server, request, timeout).await;
        if let Err(error) = &result {
            self.forget(server, error);
        }
        result
    }

    /// Sends the call now and returns it, to be awaited later with [`Deferred::wait`]; `map`
    /// turns the reply into the procedure's result. Several can be in flight at once.
    ///
    /// # Errors
    /// Only resolving the server's name can fail here; the call's own errors come from `wait`.
    pub async fn start<Q: Message, R: Message, T>(
        &self,
        body: Q,
        map: fn(R) -> Result<T, CallError>,
    ) -> Result<Deferred<R, T>, CallError> {
        let server = self.server::<Q>(Instant::now() + self.timeout).await?;
        let pending = call_start::<Request<Q>, R>(server, Request { seq: None, body });
        Ok(Deferred { pending, server, timeout: self.timeout, map, client: self.clone() })
    }

    /// Sends a one-way request: no reply, no error (like `send`). Casts and calls from one
    /// process to one server arrive in the order they were made.
    pub fn cast<Q: Message>(&self, body: Q) {
        let known = *self.resolved.lock();
        match (known, &self.target) {
            (Some(pid), _) => pid.send(Cast(body)),
            (None, Target::Named { name, node: None }) => {
                let _ = krarup_runtime::send_named(name, Cast(body));
            }
            (None, Target::Named { name, node: Some(node) }) => krarup_runtime::send_named_at(name, node, Cast(body)),
            (None, Target::Pid(_)) => unreachable!("a Pid target is always resolved"),
        }
    }
}

/// A call in flight (see [`Client::start`]).
#[must_use = "a started call is awaited with `wait`; dropping it abandons the call"]
pub struct Deferred<R: Send + 'static, T> {
    pending: PendingCall<R>,
    server: Pid,
    timeout: Duration,
    map: fn(R) -> Result<T, CallError>,
    client: Client,
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
        let Deferred { pending, server, timeout, map, client } = self;
        match pending.wait(timeout).await {
            Ok(reply) => map(reply),
            Err(e) => {
                client.forget(server, &e);
                Err(e)
            }
        }
    }
}

/// The time left until `deadline` (zero once it has passed).
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// What an asker answers: the server's Pid, or why there is none.
type Found = Result<Pid, CallError>;

/// Asks the process registered as `name` on `node` for its Pid, if it serves `Q`'s service.
///
/// The question is asked by a process of its own, an asker ([`ask`]), which the caller calls
/// (the runtime's `call_local`) and which ends once it has answered or given up. The answer from
/// the other node goes to the asker's mailbox, never to the caller's: two lookups in flight in
/// one process (joined calls, two clients, clones) cannot take or drop each other's answers, and
/// an answer that comes after its lookup gave up goes with the asker (and the asker's reply, if
/// it comes after the caller gave up, is turned away by the runtime's call). One spawn and one
/// local call per lookup, next to a round trip to another node.
async fn resolve<Q: Message>(name: &str, node: &str, timeout: Duration) -> Found {
    if timeout.is_zero() {
        // No time left to wait for an answer (the call before took it all): none is asked for.
        return Err(CallError::NoProc);
    }
    let deadline = Instant::now() + timeout;
    let asker = krarup_runtime::spawn(ask(name.to_owned(), node.to_owned(), tag_of::<Q>(), deadline));
    match krarup_runtime::call_local::<(), Found>(asker, (), timeout).await {
        Ok(found) => found,
        // The asker answers by the deadline: a wait that ended first saw no server answer in time.
        Err(CallError::Timeout) => Err(CallError::NoProc),
        Err(error) => Err(error),
    }
}

/// The asker of [`resolve`]: takes its caller's call, asks `name` on `node` whether it serves
/// `service` (a [`Resolve`]), and replies with the answer ([`Resolved`]) or, by `deadline`, with
/// `NoProc`; then ends, and whatever comes for it later (a late answer) goes with its mailbox.
///
/// A probe monitor on the node, set up right after the question, reports an unreachable node at
/// once (`NoConnection`, which an idempotent call retries) instead of after the timeout.
async fn ask(name: String, node: String, service: u64, deadline: Instant) {
    static NONCE: AtomicU64 = AtomicU64::new(1);
    let call = receive! {
        call: Call<(), Found> => call,
        // The caller is gone: nobody to ask for.
        after remaining(deadline) => return,
    };
    // One question per asker: the nonce only keeps a stray `Resolved` from passing for the answer.
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
    krarup_runtime::send_named_at(&name, &node, Resolve { from: self_pid(), nonce, service });
    // Not demonitored: it goes with the asker's exit.
    let probe = krarup_runtime::dist::probe(&node).map(krarup_runtime::monitor);
    let found = loop {
        let left = remaining(deadline);
        receive! {
            answer: Resolved if answer.nonce == nonce => break Ok(answer.server),
            down: Down if Some(down.reference) == probe => {
                if down.reason == ExitReason::NoConnection {
                    break Err(CallError::NoConnection);
                }
                // The node answered (the probe names no process): wait for the server.
            },
            // No server of this service under that name answered.
            after left => break Err(CallError::NoProc),
        }
    };
    call.reply_to.reply_local(found);
}
