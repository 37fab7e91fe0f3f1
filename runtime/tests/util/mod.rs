//! Helpers shared by the integration tests (mio's `tests/util` layout).
//!
//! Every wait here is bounded by [`TIMEOUT`], so a runtime bug fails the
//! test with a message instead of hanging the suite.
#![allow(dead_code)]

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use krarup_runtime::{
    monitor, receive, recv_timeout, spawn, Down, ExitReason, IntoExitReason, Mailbox, Message, MonitorRef, Pid, Runtime,
};
use serde::{Deserialize, Serialize};

/// The bound on every wait: long enough for a noisy two-core machine,
/// short enough that a lost message fails the test rather than the CI run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A small runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().expect("runtime starts")
}

/// Inside a process: the next `T`, or a panic after [`TIMEOUT`].
pub async fn recv_bounded<T: Message>() -> T {
    match recv_timeout::<T>(TIMEOUT).await {
        Some(msg) => msg,
        None => panic!("no {} arrived within {TIMEOUT:?}", std::any::type_name::<T>()),
    }
}

/// On a plain thread: the next `T` in `mailbox`, or a panic after [`TIMEOUT`].
pub fn expect_msg<T: Message>(mailbox: &mut Mailbox) -> T {
    match mailbox.blocking_recv_timeout::<T>(TIMEOUT) {
        Some(msg) => msg,
        None => panic!("no {} arrived at the mailbox within {TIMEOUT:?}", std::any::type_name::<T>()),
    }
}

/// Inside a process: the `Down` of monitor `reference` (other messages,
/// other `Down`s included, stay in the mailbox), or a panic after [`TIMEOUT`].
pub async fn down_of(reference: MonitorRef) -> Down {
    receive! {
        down: Down if down.reference == reference => down,
        after TIMEOUT => panic!("no Down for {reference:?} within {TIMEOUT:?}"),
    }
}

/// Inside a process: monitors `pid` and waits for it to exit; its exit
/// reason (`NoProc` if it was already dead).
pub async fn exit_reason(pid: Pid) -> ExitReason {
    let reference = monitor(pid);
    down_of(reference).await.reason
}

/// The signal a process spawned with [`spawn_held`] waits for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Go;

/// Spawns `future` as a process that first waits for [`Go`] (see
/// [`release`]), so the caller can monitor or register it before it can
/// run to its end. Without `Go` within [`TIMEOUT`] it panics.
pub fn spawn_held<F>(future: F) -> Pid
where
    F: Future + Send + 'static,
    F::Output: IntoExitReason,
{
    spawn(async move {
        if recv_timeout::<Go>(TIMEOUT).await.is_none() {
            panic!("held process was never released");
        }
        future.await
    })
}

/// Lets a process spawned with [`spawn_held`] run.
pub fn release(pid: Pid) {
    pid.send(Go);
}

/// Runs `f` on its own thread and returns its result, or panics if it takes
/// longer than `bound` (the thread is then abandoned, not joined, so a hang
/// fails the test instead of the suite).
pub fn finishes_within<T: Send + 'static>(bound: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(bound) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not finish within {bound:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// A message that is slow to drop: dropping it sends [`Dropping`] to the
/// process that made it, then holds the dropping thread until the sender
/// returned by [`SlowDrop::send_to`] is used or dropped (at most
/// [`TIMEOUT`]). Left unread in a process's mailbox, it holds that process
/// half-way through its exit: dead, but not yet cleaned up.
pub struct SlowDrop {
    tell: Pid,
    resume: mpsc::Receiver<()>,
}

/// Sent by a [`SlowDrop`] being dropped.
#[derive(Debug, Serialize, Deserialize)]
pub struct Dropping;

impl SlowDrop {
    /// From a process: puts a `SlowDrop` in `pid`'s mailbox; send on (or
    /// drop) the returned sender to let its drop finish.
    pub fn send_to(pid: Pid) -> mpsc::Sender<()> {
        let (resume, wait) = mpsc::channel();
        pid.send_local(SlowDrop { tell: krarup_runtime::self_pid(), resume: wait });
        resume
    }
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.tell.send(Dropping);
        let _ = self.resume.recv_timeout(TIMEOUT);
    }
}

/// A barrier for plain threads and processes that must run at the same
/// time: counts this arrival, then waits (blocking the thread, at most
/// [`TIMEOUT`]) until `arrived` reaches `n`; whether it did.
pub fn meet(arrived: &std::sync::atomic::AtomicUsize, n: usize) -> bool {
    use std::sync::atomic::Ordering;
    arrived.fetch_add(1, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + TIMEOUT;
    while arrived.load(Ordering::SeqCst) < n {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

/// Holds a process on its worker, without an `.await`, so that the test's
/// process — which must then run on another worker — can watch it act the
/// moment it is let go. Share it (it is a pair of `Arc`ed flags).
///
/// The held process calls [`Spinner::spin`]; the test awaits
/// [`Spinner::until_spinning`], sets things up, and calls
/// [`Spinner::let_go`].
#[derive(Clone, Debug, Default)]
pub struct Spinner {
    spinning: std::sync::Arc<std::sync::atomic::AtomicBool>,
    go: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Spinner {
    pub fn new() -> Spinner {
        Spinner::default()
    }

    /// In the held process: says it is spinning, then spins (keeping its
    /// worker) until [`Spinner::let_go`], at most [`TIMEOUT`]; whether it
    /// was let go.
    pub fn spin(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.spinning.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !self.go.load(Ordering::Acquire) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }

    /// In the test's process: yields until the held process spins, or
    /// panics after [`TIMEOUT`]. (A message from the spinning process
    /// would not do: it would wake us into that worker's run-next slot,
    /// where we would wait for the spin to end.)
    pub async fn until_spinning(&self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !self.spinning.load(std::sync::atomic::Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "the held process did not spin within {TIMEOUT:?}");
            krarup_runtime::yield_now().await;
        }
    }

    /// Ends the spin.
    pub fn let_go(&self) {
        self.go.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Inside a process: the first `T` that `wanted` accepts (other messages
/// stay), looked for at every turn of the run queue instead of waiting to
/// be woken, so that it is seen as soon as it is delivered; panics after
/// [`TIMEOUT`].
pub async fn poll_for<T: Message>(wanted: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        receive! {
            msg: T if wanted(&msg) => return msg,
            after Duration::ZERO => {}
        }
        assert!(std::time::Instant::now() < deadline, "no such {} within {TIMEOUT:?}", std::any::type_name::<T>());
        krarup_runtime::yield_now().await;
    }
}

/// A call server for the call tests: answers `n` with `n + 1`; `0` is kept
/// unanswered until a [`Release`] comes.
pub async fn holding_server() {
    let mut held = Vec::new();
    loop {
        receive! {
            c: krarup_runtime::Call<u64, u64> if c.request == 0 => held.push(c.reply_to),
            c: krarup_runtime::Call<u64, u64> => c.reply_to.reply(c.request + 1),
            _r: Release => held.drain(..).for_each(|to| to.reply(0)),
        }
    }
}

/// Makes [`holding_server`] answer the calls it holds.
#[derive(Serialize, Deserialize)]
pub struct Release;
