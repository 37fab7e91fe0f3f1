//! A process's future, type-erased into one allocation behind a thin pointer.
//!
//! A slot stores its task as a [`TaskRef`] (one word, null when absent) so
//! that a zeroed slot is a valid free slot. The allocation is a `#[repr(C)]`
//! [`TaskCell`]: a header pointing to the vtable for this future type,
//! followed by the future itself, which never moves once allocated (that is
//! what makes pinning it sound).
//!
//! Ownership: the slot's `BUSY` holder may poll the task; whoever clears it
//! from the slot frees it with [`TaskRef::drop_task`], exactly once.

use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use crate::exit::{ExitReason, IntoExitReason};

/// Functions that know the erased future's type.
struct TaskVTable {
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<ExitReason>,
    drop: unsafe fn(NonNull<Header>),
}

/// The first field of every task allocation.
struct Header {
    vtable: &'static TaskVTable,
}

/// A task allocation: header, then the future.
#[repr(C)]
struct TaskCell<F> {
    header: Header,
    future: F,
}

/// Vtables, one promoted constant per future type.
trait HasVTable: Future<Output: IntoExitReason> + Sized {
    const VTABLE: &'static TaskVTable = &TaskVTable { poll: poll_cell::<Self>, drop: drop_cell::<Self> };
}

impl<F: Future<Output: IntoExitReason>> HasVTable for F {}

/// # Safety
/// `header` must point to a live `TaskCell<F>`, polled by one thread at a time.
unsafe fn poll_cell<F: Future<Output: IntoExitReason>>(header: NonNull<Header>, cx: &mut Context<'_>) -> Poll<ExitReason> {
    let cell = header.cast::<TaskCell<F>>().as_ptr();
    // SAFETY: the cell is live and heap-allocated; its future never moves
    // until `drop_cell`, so pinning it in place is sound.
    let future = unsafe { Pin::new_unchecked(&mut (*cell).future) };
    future.poll(cx).map(IntoExitReason::into_exit_reason)
}

/// # Safety
/// `header` must point to a live `TaskCell<F>` from `TaskRef::new`, not used afterwards.
unsafe fn drop_cell<F: Future<Output: IntoExitReason>>(header: NonNull<Header>) {
    // SAFETY: the caller hands over the allocation made by Box in `TaskRef::new`.
    drop(unsafe { Box::from_raw(header.cast::<TaskCell<F>>().as_ptr()) });
}

/// A thin pointer to a task allocation. `Copy`: the slot protocol decides
/// who may use it; it is freed once, with [`TaskRef::drop_task`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: the future inside is `Send` (required by `new`); the slot protocol
// ensures one thread at a time polls or drops it.
unsafe impl Send for TaskRef {}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Header")
    }
}

impl TaskRef {
    /// Allocates `future` as a task.
    pub(crate) fn new<F>(future: F) -> TaskRef
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        let cell = Box::new(TaskCell { header: Header { vtable: F::VTABLE }, future });
        TaskRef(NonNull::from(Box::leak(cell)).cast())
    }

    /// Polls the future once.
    ///
    /// # Safety
    /// The task is live (not dropped) and no other thread polls or drops it now.
    #[inline]
    pub(crate) unsafe fn poll(self, cx: &mut Context<'_>) -> Poll<ExitReason> {
        // SAFETY: the header is live (caller); the vtable matches the cell's type.
        unsafe { ((*self.0.as_ptr()).vtable.poll)(self.0, cx) }
    }

    /// Drops the future and frees the allocation.
    ///
    /// # Safety
    /// The task is live, not being polled, and never used again.
    pub(crate) unsafe fn drop_task(self) {
        // SAFETY: as the caller guarantees; the vtable matches the cell's type.
        unsafe { ((*self.0.as_ptr()).vtable.drop)(self.0) }
    }
}
