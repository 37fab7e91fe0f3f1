//! The future of a stub's call ([`Client::call`]): find the server, start the runtime's call,
//! wait for its reply, turn the reply into the procedure's result.
//!
//! Written by hand rather than as nested `async fn`s so that the common case — a Pid target —
//! is the runtime's own call future behind one check, and the reply is unpacked by a function
//! the compiler can inline (the stub's `map`, a type parameter rather than a function pointer).
//! The runtime's call is built with the future in every case, with the request in it: for a Pid
//! target, made with that server; for a name, made with a placeholder and redirected (the
//! runtime's hidden `Calling::redirect`) to the server once the name has been looked up (on this
//! node) or resolved (on another, through a boxed `async` resolution, the first time) when the
//! future is first polled. One future for both cases, and the request is never moved again.
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
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use krarup_runtime::{CallError, Message, Pid};

use crate::client::{remaining, Client};
use crate::wire::Request;

/// A name on another node being resolved to a Pid, and the time then left for the call.
type Resolution<'a> = Pin<Box<dyn Future<Output = (Result<Pid, CallError>, Duration)> + Send + 'a>>;

/// A [`Resolution`] in progress, dropped out of line by a function that cannot unwind
/// ([`drop_resolution`]). Inlined, or able to unwind, the boxed future's drop made every call
/// future's drop too big to inline where the call is awaited, and what it returned was moved
/// around that call (~10 instructions a call, for a state that a Pid target never has).
struct Resolving<'a>(ManuallyDrop<Resolution<'a>>);

impl<'a> Resolving<'a> {
    fn new(resolution: Resolution<'a>) -> Self {
        Resolving(ManuallyDrop::new(resolution))
    }

    fn as_mut(&mut self) -> Pin<&mut (dyn Future<Output = (Result<Pid, CallError>, Duration)> + Send + 'a)> {
        self.0.as_mut()
    }
}

impl Drop for Resolving<'_> {
    #[inline]
    fn drop(&mut self) {
        drop_resolution(&mut self.0);
    }
}

/// Drops the resolution in `resolution`, leaving in its place a box of a zero-sized future
/// (no allocation; never dropped, nothing to free). `extern "C"`: it cannot unwind (a panic in
/// the resolution's drop aborts), so the drop of a call's future needs no landing pad for it.
#[inline(never)]
extern "C" fn drop_resolution(resolution: &mut ManuallyDrop<Resolution<'_>>) {
    drop(std::mem::replace(&mut **resolution, Box::pin(std::future::pending())));
}

/// The future of [`Client::call`] and [`Client::call_map`]: the reply `R`, turned by `M` into
/// the result (a stub's procedure result out of its reply enum).
#[must_use = "futures do nothing unless awaited"]
pub struct Calling<'a, Q, R: Send + 'static, M = fn(R) -> Result<R, CallError>> {
    /// Dropped first, so that the drop of `call` after it needs no landing pad.
    lookup: Lookup<'a>,
    /// The runtime's call (which starts when first polled), made with the server if it is known
    /// (a Pid target), else with a placeholder and redirected to the server once found.
    call: krarup_runtime::Calling<Request<Q>, R>,
    map: M,
    client: &'a Client,
}

/// Where a [`Calling`] is in finding its server.
enum Lookup<'a> {
    /// Nothing to find: the call was made with its server (a Pid target).
    Known,
    /// The server is named: its Pid is found when first polled.
    Find,
    /// A remote name being resolved.
    Resolving(Resolving<'a>),
    /// The server found by name, which the call was redirected to: what the client forgets if
    /// the call finds it gone.
    Found(Pid),
    /// Failed before the request was sent.
    Failed,
}

impl<'a, Q: Message, R: Message, T, M: Fn(R) -> Result<T, CallError>> Calling<'a, Q, R, M> {
    #[inline]
    pub(crate) fn new(client: &'a Client, body: Q, map: M) -> Self {
        // Read as they are, not matched out of the target (~8 instructions a call).
        let server = client.call_to();
        let lookup = if client.is_named() { Lookup::Find } else { Lookup::Known };
        // The timeout as whole nanoseconds, which the runtime's call turns back into nanoseconds
        // for free (from `client.timeout()`, ~8 instructions a call).
        let timeout = Duration::from_nanos(client.timeout_nanos());
        Calling { call: call(server, body, timeout), map, client, lookup }
    }

    /// Finds a named server and polls the call redirected to it; `Ready` once the call has
    /// ended, or failed before it was sent.
    #[cold]
    fn find(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let (found, timeout) = match &mut self.lookup {
            &mut Lookup::Found(server) => return self.poll_found(server, cx),
            Lookup::Resolving(resolving) => match ready!(resolving.as_mut().poll(cx)) {
                (Ok(_), left) if left.is_zero() => {
                    // The lookup took the whole timeout: the request is not sent.
                    self.lookup = Lookup::Failed;
                    return Poll::Ready(Err(CallError::Timeout));
                }
                found => found,
            },
            Lookup::Find => match self.client.known_server() {
                Some(found) => (found, self.client.timeout()),
                None => {
                    self.lookup = Lookup::Resolving(Resolving::new(Box::pin(resolve::<Q>(self.client))));
                    return self.find(cx);
                }
            },
            Lookup::Known => unreachable!("the server is known"),
            Lookup::Failed => panic!("krarup-rpc: a call's future was polled after it completed"),
        };
        match found {
            Ok(server) => {
                self.lookup = Lookup::Found(server);
                self.call.redirect(server, timeout);
                self.poll_found(server, cx)
            }
            Err(error) => {
                self.lookup = Lookup::Failed;
                Poll::Ready(Err(error))
            }
        }
    }

    /// Polls the runtime's call. (A Pid target's call forgets nothing when it fails.)
    #[inline]
    fn poll_call(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        Pin::new(&mut self.call).poll(cx).map(|result| result.and_then(&self.map))
    }

    /// Polls the runtime's call to a server found by name: if that is gone, it is forgotten.
    fn poll_found(&mut self, server: Pid, cx: &mut Context<'_>) -> Poll<Result<T, CallError>> {
        let result = ready!(self.poll_call(cx));
        if let Err(error) = &result {
            self.client.forget(server, error);
        }
        Poll::Ready(result)
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
        match &self.lookup {
            Lookup::Known | Lookup::Found(_) => out.field("call", &self.call),
            Lookup::Find => out.field("state", &"find"),
            Lookup::Resolving(..) => out.field("state", &"resolving"),
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
