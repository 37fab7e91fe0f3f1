//! `Waker`s for processes.
//!
//! Each poll gets a *borrowed* waker that points at the polling worker and
//! costs nothing to make: waking it by reference marks the current process
//! as notified (it is `BUSY`, so it will be polled again). A future that
//! keeps the waker (any non-krarup future: a tokio channel, a
//! `spawn_blocking` result) clones it, and the clone is an *owned* waker:
//! an `Arc` holding the runtime, the slot index and the serial. Waking an
//! owned waker goes through the slot's serial check, so a waker that
//! outlives its process never wakes the slot's next occupant.

use std::task::{RawWaker, RawWakerVTable, Wake, Waker};

use crate::runtime::Shared;
use crate::scheduler::worker::Worker;
use crate::sync::global::Arc;

/// A waker that outlives the poll: identifies one process incarnation.
struct OwnedWaker {
    shared: Arc<Shared>,
    index: u32,
    serial: u32,
}

impl Wake for OwnedWaker {
    fn wake(self: Arc<Self>) {
        self.shared.wake_process(self.index, self.serial);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.wake_process(self.index, self.serial);
    }
}

/// An owned waker for process (`index`, `serial`) of `shared`.
pub(crate) fn owned(shared: Arc<Shared>, index: u32, serial: u32) -> Waker {
    Waker::from(Arc::new(OwnedWaker { shared, index, serial }))
}

static BORROWED: RawWakerVTable = RawWakerVTable::new(borrowed_clone, borrowed_wake, borrowed_wake, borrowed_drop);

/// The waker handed to a process for one poll. The caller must not let it
/// outlive the poll (wrap it in `ManuallyDrop` and only lend it out).
pub(crate) fn borrowed(worker: &Worker) -> Waker {
    let raw = RawWaker::new(ptr_of(worker), &BORROWED);
    // SAFETY: the vtable functions below uphold the RawWaker contract for a
    // data pointer to a `Worker` that outlives every use: the borrowed
    // waker is only lent to the future for the duration of one poll, during
    // which the worker is alive; `clone` produces an independent owned waker.
    unsafe { Waker::from_raw(raw) }
}

fn ptr_of(worker: &Worker) -> *const () {
    (worker as *const Worker).cast()
}

/// # Safety
/// `data` is the `Worker` pointer given to `borrowed`, valid during the poll.
unsafe fn borrowed_clone(data: *const ()) -> RawWaker {
    // SAFETY: see above; the waker is only used during the poll.
    let worker = unsafe { &*data.cast::<Worker>() };
    let current = worker.current().expect("a borrowed waker is used only while its process is polled");
    let waker = owned(worker.shared.clone(), current.index, current.serial);
    let waker = std::mem::ManuallyDrop::new(waker);
    // The owned waker's RawWaker, transferred without dropping it.
    RawWaker::new(waker.data(), waker.vtable())
}

/// # Safety
/// As for `borrowed_clone`.
unsafe fn borrowed_wake(data: *const ()) {
    // SAFETY: see above.
    let worker = unsafe { &*data.cast::<Worker>() };
    if let Some(current) = worker.current() {
        worker.shared.wake_process(current.index, current.serial);
    }
}

/// # Safety
/// Always safe: the borrowed waker owns nothing.
unsafe fn borrowed_drop(_: *const ()) {}
