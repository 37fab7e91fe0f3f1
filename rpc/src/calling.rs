//! The future of a stub's call ([`Client::call`]): find the server, start the runtime's call,
//! wait for its reply, turn the reply into the procedure's result.
//!
//! Written by hand rather than as nested `async fn`s so that the common case — a Pid target —
//! is the runtime's own call future behind one check, and the reply is unpacked by a function
//! the compiler can inline (the stub's `map`, a type parameter rather than a function pointer).
//! The runtime's call is built with the future in every case, with the request in it: for a Pid
//! target, made with that server; for a name, made with a placeholder and, when the future is
//! first polled, redirected to the Pid registered under the name on this node (the runtime's
//! hidden `Calling::redirect`), or started at the name on another node (its hidden
//! `Calling::start_named_at`, which that node looks up as the request arrives). One future for
//! every target, and the request is never moved again.
//!
//! Invariants (those of [`Client::call`]): nothing happens before the first poll (as with an
//! `async fn`: the name is looked up and the request sent then, from the polling process); the
//! request is sent once, to the process that has the name when it is looked up.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use krarup_runtime::{CallError, Message};

use crate::client::{Client, Target};
use crate::wire::Request;

/// The future of [`Client::call`] and [`Client::call_map`]: the reply `R`, turned by `M` into
/// the result (a stub's procedure result out of its reply enum).
#[must_use = "futures do nothing unless awaited"]
pub struct Calling<'a, Q, R: Send + 'static, M = fn(R) -> Result<R, CallError>> {
    /// The runtime's call (which starts when first polled), made with the server if it is known
    /// (a Pid target), else with a placeholder until the name is looked up.
    call: krarup_runtime::Calling<Request<Q>, R>,
    map: M,
    client: &'a Client,
    lookup: Lookup,
}

/// Where a [`Calling`] is in finding its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// Nothing (more) to find: the call is made with its server, or started at its name.
    Known,
    /// The server is named: it is looked up when first polled.
    Find,
    /// Nobody had the name on this node: failed before the request was sent.
    Failed,
}

impl<'a, Q: Message, R: Message, T, M: Fn(R) -> Result<T, CallError>> Calling<'a, Q, R, M> {
    /// A call by `client` with `request`, its reply turned into the result by `map`.
    #[inline]
    pub(crate) fn new(client: &'a Client, request: Request<Q>, map: M) -> Self {
        // Read as they are, not matched out of the target (~8 instructions a call).
        let server = client.call_to();
        let lookup = if client.is_named() { Lookup::Find } else { Lookup::Known };
        // The timeout as whole nanoseconds, which the runtime's call turns back into nanoseconds
        // for free (from `client.timeout()`, ~8 instructions a call).
        let timeout = Duration::from_nanos(client.timeout_nanos());
        Calling { call: krarup_runtime::call(server, request, timeout), map, client, lookup }
    }

    /// Finds a named server and polls the call made to it; `Ready` at once if nobody has a name
    /// on this node.
    #[cold]
    fn find(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        match (self.lookup, self.client.target()) {
            (Lookup::Find, Target::Named { name, node: None }) => match krarup_runtime::whereis(name) {
                // Looked up every time (never cached): a restarted server is found at once.
                Some(server) => self.call.redirect(server, self.client.timeout()),
                None => {
                    self.lookup = Lookup::Failed;
                    return Poll::Ready(Err(CallError::NoProc));
                }
            },
            (Lookup::Find, Target::Named { name, node: Some(node) }) => {
                self.call.start_named_at(name, node, self.client.timeout());
            }
            (Lookup::Failed, _) => panic!("krarup-rpc: a call's future was polled after it completed"),
            (Lookup::Known, _) | (Lookup::Find, Target::Pid(_)) => unreachable!("only a name is looked up"),
        }
        self.lookup = Lookup::Known;
        self.poll_call(cx)
    }

    /// Polls the runtime's call.
    #[inline]
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        Pin::new(&mut self.call).poll(cx).map(|result| result.and_then(&self.map))
    }
}

impl<Q, R: Send + 'static, M> fmt::Debug for Calling<'_, Q, R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Calling");
        out.field("client", self.client);
        match self.lookup {
            Lookup::Known => out.field("call", &self.call),
            Lookup::Find => out.field("state", &"find"),
            Lookup::Failed => out.field("state", &"failed"),
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
        match this.lookup {
            Lookup::Known => this.poll_call(cx),
            _ => this.find(cx),
        }
    }
}
