//! The future of a stub's call ([`Client::call`]): find the server, start the runtime's call,
//! wait for its reply, turn the reply into the procedure's result.
//!
//! Written by hand rather than as nested `async fn`s so that the common case — a server whose
//! Pid is known at once (a Pid target, a name on this node, a resolved remote name) — is the
//! runtime's own call future under one match, and the reply is unpacked by a function the
//! compiler can inline (the stub's `map`, a type parameter rather than a function pointer). A
//! Pid target's call is built with the future; a name is looked up (on this node) or resolved
//! (on another, through a boxed `async` resolution, the first time) when it is first polled.
//!
//! Invariants (those of [`Client::call`]): nothing happens before the first poll (as with an
//! `async fn`: the name is looked up and the request sent then, from the polling process); a
//! resolution and the call after it share one timeout; an error that says the server is dead or
//! unreachable makes the client forget the Pid a remote name resolved to. The request is sent
//! once: it is moved into the runtime's call, so a call that finds a named server gone fails
//! with `NoProc` rather than being sent to the name's new server (the client's module docs say
//! why, and what an idempotent call does instead).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use krarup_runtime::{CallError, Message, Pid};

use crate::client::{remaining, Client, Target};
use crate::wire::Request;

/// A name on another node being resolved to a Pid, and the time then left for the call.
type Resolving<'a> = Pin<Box<dyn Future<Output = (Result<Pid, CallError>, Duration)> + Send + 'a>>;

/// The future of [`Client::call`] and [`Client::call_map`]: the reply `R`, turned by `M` into
/// the result (a stub's procedure result out of its reply enum).
#[must_use = "futures do nothing unless awaited"]
pub struct Calling<'a, Q, R: Send + 'static, M = fn(R) -> Result<R, CallError>> {
    client: &'a Client,
    map: M,
    /// The server found by name, once found: what the client forgets if the call finds it gone.
    server: Option<Pid>,
    state: State<'a, Q, R>,
}

/// The states of a [`Calling`].
enum State<'a, Q, R: Send + 'static> {
    /// The server's Pid is known: the runtime's call (which starts when first polled).
    Call(krarup_runtime::Calling<Request<Q>, R>),
    /// The server is named: its Pid is found when first polled.
    Find(Q),
    /// A remote name being resolved, then `Q` sent.
    Resolving(Q, Resolving<'a>),
    /// Failed before the request was sent.
    Failed,
}

impl<'a, Q: Message, R: Message, T, M: Fn(R) -> Result<T, CallError>> Calling<'a, Q, R, M> {
    pub(crate) fn new(client: &'a Client, body: Q, map: M) -> Self {
        let state = match client.target() {
            Target::Pid(server) => State::Call(call(*server, body, client.timeout())),
            Target::Named { .. } => State::Find(body),
        };
        // Built once, after the match: a construction in each arm costs ~10 instructions a call.
        Calling { client, map, server: None, state }
    }

    /// Finds a named server; `Ready` once the call was started (and polled), or failed.
    #[cold]
    fn find(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let (found, timeout) = match &mut self.state {
            State::Resolving(_, resolving) => match ready!(resolving.as_mut().poll(cx)) {
                (Ok(_), left) if left.is_zero() => {
                    // The lookup took the whole timeout: the request is not sent.
                    self.state = State::Failed;
                    return Poll::Ready(Err(CallError::Timeout));
                }
                found => found,
            },
            State::Find(_) => match self.client.known_server() {
                Some(found) => (found, self.client.timeout()),
                None => {
                    let State::Find(body) = std::mem::replace(&mut self.state, State::Failed) else {
                        unreachable!("just matched")
                    };
                    self.state = State::Resolving(body, Box::pin(resolve::<Q>(self.client)));
                    return self.find(cx);
                }
            },
            State::Call(_) => unreachable!("the server is known"),
            State::Failed => panic!("krarup-rpc: a call's future was polled after it completed"),
        };
        let (State::Find(body) | State::Resolving(body, ..)) = std::mem::replace(&mut self.state, State::Failed) else {
            unreachable!("just matched")
        };
        match found {
            Ok(server) => {
                self.server = Some(server);
                self.state = State::Call(call(server, body, timeout));
                self.poll_call(cx)
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    /// Polls the runtime's call.
    #[inline]
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let State::Call(call) = &mut self.state else { unreachable!("the call was started") };
        Poll::Ready(match ready!(Pin::new(call).poll(cx)) {
            Ok(reply) => (self.map)(reply),
            Err(error) => {
                if let Some(server) = self.server {
                    self.client.forget(server, &error);
                }
                Err(error)
            }
        })
    }
}

/// Resolves `client`'s remote name; the time then left of its timeout.
async fn resolve<Q: Message>(client: &Client) -> (Result<Pid, CallError>, Duration) {
    let deadline = Instant::now() + client.timeout();
    let found = client.resolve::<Q>(client.timeout()).await;
    (found, remaining(deadline))
}

/// The runtime's call of `server` with `body`, waiting at most `timeout`.
fn call<Q: Message, R: Message>(server: Pid, body: Q, timeout: Duration) -> krarup_runtime::Calling<Request<Q>, R> {
    // Never retried: no request id, no reply kept for it (see the client's module docs).
    krarup_runtime::call(server, Request { seq: None, body }, timeout)
}

impl<Q, R: Send + 'static, M> fmt::Debug for Calling<'_, Q, R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Calling");
        out.field("client", self.client);
        match &self.state {
            State::Call(call) => out.field("call", call),
            State::Find(_) => out.field("state", &"find"),
            State::Resolving(..) => out.field("state", &"resolving"),
            State::Failed => out.field("state", &"failed"),
        };
        out.finish()
    }
}

// The request is moved out when it is sent, never pinned; the rest is `Unpin`.
impl<Q, R: Send + 'static, M> Unpin for Calling<'_, Q, R, M> {}

impl<Q: Message, R: Message, T, M: Fn(R) -> Result<T, CallError>> Future for Calling<'_, Q, R, M> {
    type Output = Result<T, CallError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.state {
            State::Call(_) => this.poll_call(cx),
            _ => this.find(cx),
        }
    }
}
