//! The client half every generated client stub wraps: where the server is, how long a call may
//! take, whether and how idempotent calls are retried, and the call, deferred-call and cast
//! operations themselves.
//!
//! Invariants:
//! - A call never hangs: it ends with the reply or a [`CallError`] within its timeout (plus, for a
//!   retried call, its back-off pauses), and a late reply never reaches the caller afterwards (the
//!   runtime's `call` guarantees it).
//! - Only procedures marked idempotent are retried, only when the connection to the server was
//!   lost (`NoConnection`), and with the same request id each time. Only such a call (an
//!   idempotent procedure, with a retry policy of more than one attempt) carries a request id:
//!   any other is sent once, so it runs at most once without the server's reply cache. A call that times out while
//!   the server is alive is *not* retried: a long-running call is not a lost one.
//! - A request id is unique per calling process: its sequence number comes from one counter for
//!   the whole OS process, so two handles (not only clones) used by one process never share one.
//! - A name on this node is looked up at every call and cast (as Erlang's `gen_server:call` does),
//!   so a server restarted under its name is found by the next call. A name on another node is
//!   resolved to a Pid when first needed and again after the server was found dead or
//!   unreachable (a lookup there costs a round trip).

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use krarup_runtime::dist::tag_of;
use krarup_runtime::{call_start, receive, self_pid, CallError, Down, ExitReason, Message, PendingCall, Pid};
use parking_lot::Mutex;

use crate::calling::Calling;
use crate::wire::{Cast, Request, Resolve, Resolved};

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
        let resolved = match target {
            Target::Pid(pid) => Some(pid),
            Target::Named { .. } => None,
        };
        Client { target, timeout: DEFAULT_TIMEOUT, retry: None, resolved: Arc::new(Mutex::new(resolved)) }
    }

    /// The same client with another timeout per call (per attempt, when retrying).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
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

    /// The timeout per call.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

    /// A remote name's Pid, asked of its node (for service `Q`) and kept for the next calls.
    pub(crate) async fn resolve<Q: Message>(&self) -> Result<Pid, CallError> {
        let Target::Named { name, node: Some(node) } = &self.target else {
            unreachable!("only a remote name is resolved")
        };
        let pid = resolve::<Q>(name, node, self.timeout).await?;
        *self.resolved.lock() = Some(pid);
        Ok(pid)
    }

    /// The server's Pid: known, or found by name (for service `Q`).
    async fn server<Q: Message>(&self) -> Result<Pid, CallError> {
        match self.known_server() {
            Some(known) => known,
            None => self.resolve::<Q>().await,
        }
    }

    /// After a server was found dead or unreachable: look its name up again next time.
    pub(crate) fn forget(&self, error: &CallError) {
        if matches!(self.target, Target::Named { .. })
            && matches!(error, CallError::NoProc | CallError::NoConnection | CallError::Exited(_))
        {
            *self.resolved.lock() = None;
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
            let result = match self.server::<Q>().await {
                Ok(server) => {
                    krarup_runtime::call::<Request<Q>, R>(server, Request { seq, body: make() }, self.timeout).await
                }
                Err(e) => Err(e),
            };
            match result {
                Err(CallError::NoConnection) if attempt < retry.attempts => {
                    self.forget(&CallError::NoConnection);
                    tracing::debug!(attempt, ?pause, "rpc: connection lost; retrying the idempotent call");
                    krarup_runtime::sleep(pause).await;
                    pause = (pause * 2).min(retry.max);
                    attempt += 1;
                }
                Err(e) => {
                    self.forget(&e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
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
        let server = self.server::<Q>().await.inspect_err(|e| self.forget(e))?;
        let pending = call_start::<Request<Q>, R>(server, Request { seq: None, body });
        Ok(Deferred { pending, timeout: self.timeout, map, client: self.clone() })
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
        let Deferred { pending, timeout, map, client } = self;
        match pending.wait(timeout).await {
            Ok(reply) => map(reply),
            Err(e) => {
                client.forget(&e);
                Err(e)
            }
        }
    }
}

/// Asks the process registered as `name` on `node` for its Pid, if it serves `Q`'s service.
///
/// A probe monitor on the node, set up right after the question, reports an unreachable node at
/// once (`NoConnection`, which an idempotent call retries) instead of after the timeout.
async fn resolve<Q: Message>(name: &str, node: &str, timeout: Duration) -> Result<Pid, CallError> {
    static NONCE: AtomicU64 = AtomicU64::new(1);
    let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + timeout;
    // An answer to an earlier lookup of this process that came after it gave up: drop it.
    while krarup_runtime::try_recv::<Resolved>().is_some() {}
    krarup_runtime::send_named_at(name, node, Resolve { from: self_pid(), nonce, service: tag_of::<Q>() });
    let probe = krarup_runtime::dist::probe(node).map(krarup_runtime::monitor);
    let result = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        receive! {
            answer: Resolved if answer.nonce == nonce => break Ok(answer.server),
            down: Down if Some(down.reference) == probe => {
                if down.reason == ExitReason::NoConnection {
                    return Err(CallError::NoConnection);
                }
                // The node answered (the probe names no process): wait for the server.
            },
            // No server of this service under that name answered.
            after left => break Err(CallError::NoProc),
        }
    };
    if let Some(probe) = probe {
        krarup_runtime::demonitor(probe);
    }
    result
}
