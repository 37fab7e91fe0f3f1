//! The one door to synchronization in net: every lock, condition variable and atomic the crate
//! uses comes from here.
//!
//! Two kinds, kept apart so that nobody has to combine `cfg`s:
//!
//! - The crate root of this module: what the senders-vs-I/O-thread protocol of `outbox.rs` is
//!   built on (its lock, its `pending` counter and fences, its condition variable). Under
//!   `--cfg loom` they are loom's, so that protocol is model-checked (`models/`); otherwise
//!   `std` atomics and `parking_lot` locks. Both configurations have one API: `lock` returns
//!   the guard (no poisoning) and `Condvar::wait` takes the guard and gives it back, as
//!   `std`'s does.
//! - [`global`]: always the real types, for what no model drives and loom cannot host: the
//!   node's shared handles (`Arc`), the registry of peers, the I/O thread's `sleeping` flag and
//!   its counters. The runtime's [`Gate`](krarup_runtime::dist::Gate) is shared through a real
//!   `Arc` too (it is what [`Sent::Busy`](krarup_runtime::dist::Sent) carries); its own flag and
//!   lock come from the runtime's shim, loom's when the runtime is built with `--cfg loom`.
//!
//! No other file imports `std::sync` or `parking_lot`.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicUsize, Ordering};

    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// `parking_lot`'s condition variable with `std`'s (and loom's) by-value `wait`.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(parking_lot::Condvar::new())
        }

        /// Releases `guard`'s lock, sleeps until notified, and takes the lock again.
        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Wakes every thread waiting on it.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{fence, AtomicUsize, Ordering};

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    /// loom's mutex with `parking_lot`'s `lock` shape (no poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// loom's condition variable without poisoning.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Condvar {
            Condvar(loom::sync::Condvar::new())
        }

        /// Releases `guard`'s lock, sleeps until notified, and takes the lock again.
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        /// Wakes every thread waiting on it.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;

/// Always the real `std`/`parking_lot` types, for what no model drives (see the module docs).
pub(crate) mod global {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    pub(crate) use std::sync::Arc;

    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type RwLock<T> = parking_lot::RwLock<T>;
}
