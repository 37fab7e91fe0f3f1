//! `sleep`: a process waits for a while without blocking its worker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::scheduler::worker::with_current;
use crate::timer::deadline::LocalTimer;

/// Waits for `duration` (millisecond resolution, never less).
///
/// # Panics
/// When polled outside a krarup process.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use krarup_runtime::{sleep, Runtime};
///
/// let rt = Runtime::new();
/// let waited = rt.block_on(async {
///     let start = Instant::now();
///     sleep(Duration::from_millis(20)).await;
///     start.elapsed()
/// });
/// assert!(waited >= Duration::from_millis(20));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    match Instant::now().checked_add(duration) {
        Some(at) => sleep_until(at),
        None => Sleep { at: None, timer: None },
    }
}

/// Waits until `at`.
///
/// # Panics
/// When polled outside a krarup process.
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep { at: Some(at), timer: None }
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    /// None: a deadline too far away to represent (never fires).
    at: Option<Instant>,
    timer: Option<LocalTimer>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if let Some(at) = self.at {
            if Instant::now() >= at {
                self.timer = None;
                return Poll::Ready(());
            }
        }
        if self.timer.is_none() {
            if let Some(at) = self.at {
                let timer = with_current("sleep", |worker, current, _| LocalTimer::arm(worker, current, at));
                self.timer = Some(timer);
            }
        }
        Poll::Pending
    }
}
