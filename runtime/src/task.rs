//! A process's future, type-erased behind a thin pointer.
//!
//! A slot stores its task as a [`TaskRef`] (one word, null when absent) so
//! that a zeroed slot is a valid free slot. The task is a `#[repr(C)]`
//! [`TaskCell`]: a header pointing to the vtable for this future type,
//! followed by the future itself. It lives in the slot's own
//! [`TaskStorage`] when it fits (most processes: a spawn then costs no
//! allocation, and polling touches no extra cache line), else in a box.
//! Either way it never moves once placed, which is what makes pinning it
//! sound: slots never move (see `table.rs`).
//!
//! Ownership: the slot's `BUSY` holder may poll the task; whoever clears it
//! from the slot drops it with [`TaskRef::drop_task`], exactly once.

use std::future::Future;
use std::mem::{self, MaybeUninit};
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

/// Room for a task inside its slot: 64 bytes, 8-aligned.
pub(crate) type TaskStorage = MaybeUninit<[u64; 8]>;

/// Vtables, promoted constants per future type: one for a task in a box,
/// one for a task in its slot's storage (dropped in place, not freed).
trait HasVTable: Future<Output: IntoExitReason> + Sized {
    const BOXED: &'static TaskVTable = &TaskVTable { poll: poll_cell::<Self>, drop: drop_cell::<Self> };
    const INLINE: &'static TaskVTable = &TaskVTable { poll: poll_cell::<Self>, drop: drop_in_place_cell::<Self> };
    /// Whether a `TaskCell<Self>` fits a slot's storage.
    const FITS: bool = mem::size_of::<TaskCell<Self>>() <= mem::size_of::<TaskStorage>()
        && mem::align_of::<TaskCell<Self>>() <= mem::align_of::<TaskStorage>();
}

impl<F: Future<Output: IntoExitReason>> HasVTable for F {}

/// # Safety
/// `header` must point to a live `TaskCell<F>`, polled by one thread at a time.
unsafe fn poll_cell<F: Future<Output: IntoExitReason>>(
    header: NonNull<Header>,
    cx: &mut Context<'_>,
) -> Poll<ExitReason> {
    let cell = header.cast::<TaskCell<F>>().as_ptr();
    // SAFETY: the cell is live and heap-allocated; its future never moves
    // until `drop_cell`, so pinning it in place is sound.
    let future = unsafe { Pin::new_unchecked(&mut (*cell).future) };
    future.poll(cx).map(IntoExitReason::into_exit_reason)
}

/// # Safety
/// `header` must point to a live boxed `TaskCell<F>` from `TaskRef::new_in`, not used afterwards.
unsafe fn drop_cell<F: Future<Output: IntoExitReason>>(header: NonNull<Header>) {
    // SAFETY: the caller hands over the allocation made by Box in `TaskRef::new_in`.
    drop(unsafe { Box::from_raw(header.cast::<TaskCell<F>>().as_ptr()) });
}

/// # Safety
/// `header` must point to a live `TaskCell<F>` placed in a slot's storage by
/// `TaskRef::new_in`, not used afterwards.
unsafe fn drop_in_place_cell<F: Future<Output: IntoExitReason>>(header: NonNull<Header>) {
    // SAFETY: the cell is live and owned by the caller; its storage is the slot's.
    unsafe { std::ptr::drop_in_place(header.cast::<TaskCell<F>>().as_ptr()) };
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
    /// Places `future` in `storage` if it fits, else in a box.
    ///
    /// # Safety
    /// `storage` must be valid for writes, hold no live task, and stay in
    /// place (not be reused) until this task is dropped.
    pub(crate) unsafe fn new_in<F>(future: F, storage: *mut TaskStorage) -> TaskRef
    where
        F: Future + Send + 'static,
        F::Output: IntoExitReason,
    {
        if F::FITS {
            let cell = storage.cast::<TaskCell<F>>();
            // SAFETY: FITS checked size and alignment; the caller guarantees
            // the storage is free and stays put.
            unsafe { cell.write(TaskCell { header: Header { vtable: F::INLINE }, future }) };
            // SAFETY: `storage` is non-null (it points into a slot).
            TaskRef(unsafe { NonNull::new_unchecked(cell.cast()) })
        } else {
            let cell = Box::new(TaskCell { header: Header { vtable: F::BOXED }, future });
            TaskRef(NonNull::from(Box::leak(cell)).cast())
        }
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

    /// Drops the future (and frees its box, if it has one).
    ///
    /// # Safety
    /// The task is live, not being polled, and never used again.
    pub(crate) unsafe fn drop_task(self) {
        // SAFETY: as the caller guarantees; the vtable matches the cell's type.
        unsafe { ((*self.0.as_ptr()).vtable.drop)(self.0) }
    }
}
