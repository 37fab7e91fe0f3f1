//! Spawning processes and yielding.
//!
//! A process is a future spawned on the runtime. It runs until it returns
//! (its output decides the exit reason, see
//! [`IntoExitReason`](crate::IntoExitReason)) or panics (reason
//! `Panic(message)`; the panic is caught and the worker thread carries on).
//! Spawning costs one allocation for the future plus a slot in the process
//! table, and returns at once: the child runs later, on some worker.
//!
//! # Blocking work
//!
//! A process must not block its worker thread (a blocking syscall, a long
//! computation without `.await`): it would stall every process queued
//! behind it. Hand such work to [`spawn_blocking`](crate::spawn_blocking),
//! which runs it on a separate thread pool and lets the process await the
//! result.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::exit::IntoExitReason;
use crate::pid::Pid;
use crate::scheduler::worker::{with_current, with_worker};

/// Spawns `future` as a new process of the current runtime and returns its
/// Pid at once (Erlang's `spawn/1`).
///
/// # Panics
/// If called from a thread that is not a worker of a runtime (use
/// [`Runtime::spawn`](crate::Runtime::spawn) there).
///
/// # Examples
///
/// ```
/// use krarup_runtime::{recv, self_pid, spawn, Runtime};
///
/// let rt = Runtime::new();
/// let n = rt.block_on(async {
///     let parent = self_pid();
///     spawn(async move { parent.send(7u64) });
///     recv::<u64>().await
/// });
/// assert_eq!(n, 7);
/// ```
pub fn spawn<F>(future: F) -> Pid
where
    F: Future + Send + 'static,
    F::Output: IntoExitReason,
{
    with_worker(|w| match w {
        Some(w) => w.spawn(future),
        None => panic!("krarup: `spawn` must be called from within a krarup process; use Runtime::spawn elsewhere"),
    })
}

/// Lets other processes run: the current process goes to the back of its
/// worker's queue and continues on the next poll.
///
/// # Panics
/// When polled outside a krarup process.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        with_current("yield_now", |_, _, slot| slot.notify_self());
        Poll::Pending
    }
}
