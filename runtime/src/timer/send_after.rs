//! `send_after`: deliver a message later, with a handle to cancel it.
//!
//! # Protocol (cancel versus fire)
//!
//! The pending message sits in a shared cell with a state byte that starts
//! `PENDING`. Firing (the timer's worker) and cancelling (any thread) each
//! try one compare-exchange from `PENDING` to `FIRED` or `CANCELLED`; exactly
//! one succeeds, and only the winner touches the message: the firer
//! delivers it, the canceller drops it. So `cancel` returning true means the
//! message will never be delivered, and false means it was (or is being)
//! delivered.

use std::time::{Duration, Instant};

use crate::envelope::Envelope;
use crate::pid::Pid;
use crate::runtime::Runtime;
use crate::scheduler::worker::with_worker;
use crate::send::Message;
use crate::sync::{Arc, AtomicU8, Ordering, UnsafeCell};
use crate::timer::{Clock, TimerEntry};

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

/// The shared cell of one `send_after`.
pub(crate) struct Pending {
    state: AtomicU8,
    /// Taken by whoever moves `state` away from `PENDING`.
    payload: UnsafeCell<Option<(Pid, Envelope)>>,
}

// SAFETY: `payload` is touched only by the one thread that wins the state
// exchange (see the module docs); the envelope is `Send`.
unsafe impl Sync for Pending {}
// SAFETY: as above.
unsafe impl Send for Pending {}

impl Pending {
    pub(crate) fn new(to: Pid, env: Envelope) -> Pending {
        Pending { state: AtomicU8::new(PENDING), payload: UnsafeCell::new(Some((to, env))) }
    }

    /// The timer fired: the message to deliver, unless it was cancelled.
    pub(crate) fn fire(&self) -> Option<(Pid, Envelope)> {
        self.transition(FIRED)
    }

    /// Cancels; returns the message if it had not been delivered.
    pub(crate) fn cancel(&self) -> Option<(Pid, Envelope)> {
        self.transition(CANCELLED)
    }

    fn transition(&self, to: u8) -> Option<(Pid, Envelope)> {
        self.state.compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire).ok()?;
        // SAFETY: we won the exchange from PENDING; nobody else will touch the payload.
        self.payload.with_mut(|p| unsafe { (*p).take() })
    }

    /// Whether it is still pending.
    pub(crate) fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("state", &self.state.load(Ordering::Relaxed)).finish()
    }
}

/// A handle to a message scheduled with [`send_after`]: cancel it, or ask
/// whether it is still pending. Dropping the handle does not cancel.
#[derive(Clone, Debug)]
pub struct TimerRef {
    pending: Arc<Pending>,
}

impl TimerRef {
    /// Cancels the delivery (Erlang's `cancel_timer`). Returns true if the
    /// message had not been delivered and now never will be; false if it
    /// was already delivered (or cancelled).
    pub fn cancel(&self) -> bool {
        match self.pending.cancel() {
            Some(payload) => {
                drop(payload);
                true
            }
            None => false,
        }
    }

    /// Whether the message is still waiting to be delivered.
    pub fn is_pending(&self) -> bool {
        self.pending.is_pending()
    }
}

/// Delivers `msg` to `to` after `delay` (Erlang's `erlang:send_after/3`);
/// returns a handle that can cancel it. The timer lives in the calling
/// worker's wheel: it costs no thread and no wake-up of its own.
///
/// # Panics
/// If called from a thread that is not a worker (use
/// [`Runtime::send_after`] there).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use krarup_runtime::{recv, self_pid, send_after, Runtime};
///
/// let rt = Runtime::new();
/// rt.block_on(async {
///     let late = send_after(Duration::from_millis(10), self_pid(), "late".to_string());
///     let never = send_after(Duration::from_secs(60), self_pid(), "never".to_string());
///     assert!(never.cancel());
///     assert_eq!(recv::<String>().await, "late");
///     assert!(!late.cancel(), "already delivered");
/// });
/// ```
pub fn send_after<M: Message>(delay: Duration, to: Pid, msg: M) -> TimerRef {
    let pending = Arc::new(Pending::new(to, Envelope::new(msg)));
    with_worker(|w| {
        let w =
            w.expect("krarup: `send_after` must be called on a runtime's worker; use Runtime::send_after elsewhere");
        w.arm_entry(when_after(&w.shared.clock, delay), TimerEntry::Send(pending.clone()));
    });
    TimerRef { pending }
}

/// The tick `delay` from now, rounded up (never early).
fn when_after(clock: &Clock, delay: Duration) -> u64 {
    match Instant::now().checked_add(delay) {
        Some(at) => clock.ticks_at(at),
        None => u64::MAX / 2,
    }
}

impl Runtime {
    /// [`send_after`] from any thread: the timer goes to the runtime's
    /// shared wheel.
    pub fn send_after<M: Message>(&self, delay: Duration, to: Pid, msg: M) -> TimerRef {
        let pending = Arc::new(Pending::new(to, Envelope::new(msg)));
        let shared = self.shared();
        let (_, earliest) = shared.timers.insert(when_after(&shared.clock, delay), TimerEntry::Send(pending.clone()));
        if earliest {
            shared.sched.unpark_one_sleeper();
        }
        TimerRef { pending }
    }
}
