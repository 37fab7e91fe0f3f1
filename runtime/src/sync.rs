//! The one door to synchronization: every atomic, lock, cell and thread the
//! runtime uses comes from here.
//!
//! Under `--cfg loom` the types are loom's, so the protocols built on them
//! (slot word, mailbox, idle workers, name registry, timer cancel) can be
//! model-checked; otherwise they are `std` atomics and `parking_lot` locks.
//! No other file imports `std::sync` or `parking_lot` directly. Where loom
//! models an operation less faithfully than the hardware runs it, the
//! workaround lives here too, named for what the operation needs
//! ([`StoreRacingRmw`]), so that its call sites read the same under both
//! configurations.
//!
//! Three things stay real even under loom, because loom cannot model them
//! and no model needs them: process-wide statics (the node table and id
//! counters) and the runtime's own `Arc<Shared>` (in [`global`]), and the
//! work-stealing deques (crossbeam-deque, re-exported as [`deque`]), which
//! the worker loop uses but no model drives.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread;

    /// A mutex whose `lock` returns the guard directly (parking_lot's shape).
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type Condvar = parking_lot::Condvar;

    /// `UnsafeCell` with loom's closure API, so call sites read the same
    /// under both configurations (tokio's `loom::UnsafeCell` shape).
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(core::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a mutable raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// One iteration of a spin-wait.
    #[inline(always)]
    pub(crate) fn spin_loop() {
        core::hint::spin_loop();
    }

    /// A one-token parking spot for a thread: `unpark` stores the token,
    /// `park` consumes it or sleeps until it arrives (or `timeout` passes).
    #[derive(Debug, Default)]
    pub(crate) struct Parker {
        token: Mutex<bool>,
        condvar: Condvar,
    }

    impl Parker {
        /// Sleeps until `unpark` (or a stored token), or until `timeout` passes.
        pub(crate) fn park(&self, timeout: Option<std::time::Duration>) {
            let mut token = self.token.lock();
            if !*token {
                match timeout {
                    Some(t) => {
                        self.condvar.wait_for(&mut token, t);
                    }
                    None => {
                        while !*token {
                            self.condvar.wait(&mut token);
                        }
                    }
                }
            }
            *token = false;
        }

        /// Wakes the parked thread, or makes its next `park` return at once.
        pub(crate) fn unpark(&self) {
            *self.token.lock() = true;
            self.condvar.notify_one();
        }
    }

    impl super::StoreRacingRmw for AtomicU32 {
        type Value = u32;

        /// A plain store: the hardware orders it against any RMW already.
        #[inline(always)]
        fn store_racing_rmw(&self, value: u32, order: Ordering) {
            self.store(value, order);
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar};
    pub(crate) use loom::thread;

    /// loom's mutex with parking_lot's `lock` shape (no poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex::new(T::default())
        }
    }

    /// Under loom a spin-wait must yield so the model can run the holder.
    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }

    /// A one-token parking spot; loom has no time, so a timeout is ignored
    /// (a model must not rely on one).
    #[derive(Debug, Default)]
    pub(crate) struct Parker {
        token: Mutex<bool>,
        condvar: Condvar,
    }

    impl Parker {
        /// Sleeps until `unpark` (or a stored token).
        pub(crate) fn park(&self, _timeout: Option<std::time::Duration>) {
            let mut token = self.token.lock();
            while !*token {
                token = self.condvar.wait(token).unwrap();
            }
            *token = false;
        }

        /// Wakes the parked thread, or makes its next `park` return at once.
        pub(crate) fn unpark(&self) {
            *self.token.lock() = true;
            self.condvar.notify_one();
        }
    }

    impl super::StoreRacingRmw for AtomicU32 {
        type Value = u32;

        /// A swap whose old value is ignored: loom applies RMW atomicity to
        /// it (see [`StoreRacingRmw`](super::StoreRacingRmw)).
        fn store_racing_rmw(&self, value: u32, order: Ordering) {
            let _ = self.swap(value, order);
        }
    }
}

pub(crate) use imp::*;

/// A store to an atomic that another thread may read-modify-write (a
/// compare-exchange, say) at the same time.
///
/// On hardware, and in the C++/Rust memory model, an RMW is atomic against
/// every other write to its location: a store lands before the RMW's read
/// or after its write, never between. loom 0.7 does not enforce that
/// against plain stores (tokio-rs/loom#254: an RMW that already read the
/// old value can still have a concurrent store ordered between its read and
/// its write), so a model can see the RMW's write overwrite a store that
/// came after it — a history no machine produces. Under loom this store is
/// therefore a swap, itself an RMW, which loom orders correctly; otherwise
/// it is the plain store, so nothing changes outside the models (the
/// `loom_stamp` model fails with a plain store here). Drop the swap once
/// loom enforces RMW atomicity against stores (#254 is open; its proposed
/// fix is tokio-rs/loom#391).
pub(crate) trait StoreRacingRmw {
    /// The atomic's value type.
    type Value;

    /// Stores `value` with ordering `order` (a valid store ordering:
    /// `Relaxed`, `Release` or `SeqCst`).
    fn store_racing_rmw(&self, value: Self::Value, order: Ordering);
}

/// Always real `std`/`parking_lot` types, for what no model exercises and
/// loom cannot host: process-wide statics (the node table, counters), the
/// runtime's `Arc<Shared>`, and the plain-thread hand-offs of `block_on`,
/// shutdown and the blocking pool.
pub(crate) mod global {
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
    pub(crate) use std::sync::{Arc, Weak};
    pub(crate) type Condvar = parking_lot::Condvar;
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type RwLock<T> = parking_lot::RwLock<T>;
}

/// The work-stealing run queues (crossbeam-deque), not modelled under loom.
pub(crate) mod deque {
    pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};
}
