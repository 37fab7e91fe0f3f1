//! `spawn_blocking`: run blocking code on a separate thread pool and await
//! its result from a process.
//!
//! Workers must never block (see `process.rs`). The pool starts threads on
//! demand, up to a limit, and lets a thread that has been idle for ten
//! seconds exit. The awaiting process is woken through its waker when the
//! closure returns; if the closure panics, the panic is resumed in the
//! awaiting process, which then exits with that panic as its reason (let
//! it crash).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::scheduler::worker::with_worker;
use crate::sync::global::{Arc, Condvar, Mutex};

/// Most threads the pool runs at once.
const MAX_THREADS: usize = 512;
/// How long an idle pool thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    idle: usize,
    threads: usize,
    shutdown: bool,
    handles: Vec<JoinHandle<()>>,
}

/// A runtime's blocking thread pool.
#[derive(Default)]
pub(crate) struct BlockingPool {
    state: Arc<(Mutex<PoolState>, Condvar)>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool").field("threads", &self.state.0.lock().threads).finish()
    }
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool::default()
    }

    fn submit(&self, job: Job) {
        let (lock, condvar) = &*self.state;
        let mut state = lock.lock();
        if state.shutdown {
            return;
        }
        state.queue.push_back(job);
        if state.idle > 0 {
            condvar.notify_one();
        } else if state.threads < MAX_THREADS {
            state.threads += 1;
            let pool = self.state.clone();
            match std::thread::Builder::new().name("krarup-blocking".into()).spawn(move || pool_thread(&pool)) {
                Ok(handle) => state.handles.push(handle),
                Err(e) => {
                    state.threads -= 1;
                    tracing::error!("krarup: cannot start a blocking-pool thread: {e}");
                }
            }
        }
    }

    /// Stops accepting work, wakes idle threads and joins them (until `deadline`).
    pub(crate) fn shutdown(&self, deadline: Instant) {
        let (lock, condvar) = &*self.state;
        let handles = {
            let mut state = lock.lock();
            state.shutdown = true;
            state.queue.clear();
            condvar.notify_all();
            std::mem::take(&mut state.handles)
        };
        for handle in handles {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

fn pool_thread(pool: &(Mutex<PoolState>, Condvar)) {
    let (lock, condvar) = pool;
    let mut state = lock.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job();
            state = lock.lock();
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let timed_out = condvar.wait_for(&mut state, KEEP_ALIVE).timed_out();
        state.idle -= 1;
        if timed_out && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
}

/// Where a blocking job leaves its result for the awaiting future.
struct Slot<R> {
    result: Option<std::thread::Result<R>>,
    waker: Option<Waker>,
}

/// Runs `f` on the blocking pool; the returned future resolves to its result.
///
/// # Panics
/// If called from a thread that is not a worker of a runtime. Awaiting the
/// future resumes a panic of `f`.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{spawn_blocking, Runtime};
///
/// let rt = Runtime::new();
/// let n = rt.block_on(async { spawn_blocking(|| 6 * 7).await });
/// assert_eq!(n, 42);
/// ```
pub fn spawn_blocking<F, R>(f: F) -> BlockingTask<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
    let slot2 = slot.clone();
    let job: Job = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let waker = {
            let mut s = slot2.lock();
            s.result = Some(result);
            s.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    });
    with_worker(|w| {
        let w = w.expect("krarup: `spawn_blocking` must be called from within a krarup process");
        w.shared.blocking.submit(job);
    });
    BlockingTask { slot }
}

/// The future of [`spawn_blocking`].
#[must_use = "futures do nothing unless awaited"]
pub struct BlockingTask<R> {
    slot: Arc<Mutex<Slot<R>>>,
}

impl<R> std::fmt::Debug for BlockingTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingTask").finish_non_exhaustive()
    }
}

impl<R> Future for BlockingTask<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let mut slot = self.slot.lock();
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(payload)) => std::panic::resume_unwind(payload),
            None => {
                match &slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}
