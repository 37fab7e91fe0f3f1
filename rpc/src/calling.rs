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
//! `async fn`: the name is looked up and the request sent then, from the polling process); an
//! error that says the server is dead or unreachable makes the client forget a resolved name.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use krarup_runtime::{CallError, Message, Pid};

use crate::client::{Client, Target};
use crate::wire::Request;

/// A name on another node being resolved to a Pid.
type Resolving<'a> = Pin<Box<dyn Future<Output = Result<Pid, CallError>> + Send + 'a>>;

/// The future of [`Client::call`] and [`Client::call_map`]: the reply `R`, turned by `M` into
/// the result (a stub's procedure result out of its reply enum).
#[must_use = "futures do nothing unless awaited"]
pub struct Calling<'a, Q, R: Send + 'static, M = fn(R) -> Result<R, CallError>> {
    client: &'a Client,
    map: M,
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
            Target::Pid(server) => State::Call(call(client, *server, body)),
            Target::Named { .. } => State::Find(body),
        };
        Calling { client, map, state }
    }

    /// Finds a named server; `Ready` once the call was started (and polled), or failed.
    #[cold]
    fn find(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let found = match &mut self.state {
            State::Resolving(_, resolving) => ready!(resolving.as_mut().poll(cx)),
            State::Find(_) => match self.client.known_server() {
                Some(found) => found,
                None => {
                    let State::Find(body) = std::mem::replace(&mut self.state, State::Failed) else {
                        unreachable!("just matched")
                    };
                    self.state = State::Resolving(body, Box::pin(self.client.resolve::<Q>()));
                    return self.find(cx);
                }
            },
            State::Call(_) => unreachable!("the server is known"),
            State::Failed => panic!("krarup-rpc: a call's future was polled after it completed"),
        };
        let (State::Find(body) | State::Resolving(body, _)) = std::mem::replace(&mut self.state, State::Failed) else {
            unreachable!("just matched")
        };
        match found {
            Ok(server) => {
                self.state = State::Call(call(self.client, server, body));
                self.poll_call(cx)
            }
            Err(error) => {
                self.client.forget(&error);
                Poll::Ready(Err(error))
            }
        }
    }

    /// Polls the runtime's call.
    #[inline]
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let State::Call(call) = &mut self.state else { unreachable!("the call was started") };
        Poll::Ready(match ready!(Pin::new(call).poll(cx)) {
            Ok(reply) => (self.map)(reply),
            Err(error) => {
                self.client.forget(&error);
                Err(error)
            }
        })
    }
}

/// The runtime's call of `server` with `body`.
fn call<Q: Message, R: Message>(client: &Client, server: Pid, body: Q) -> krarup_runtime::Calling<Request<Q>, R> {
    // Never retried: no request id, no reply kept for it (see the client's module docs).
    krarup_runtime::call(server, Request { seq: None, body }, client.timeout())
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
