//! The calls an incarnation awaits a reply to (step 1 of `call.rs`), kept
//! in its slot so that starting a call takes no lock, and the vetoes a
//! delivery runs under the target's lock.
//!
//! # Invariants
//!
//! - A tag is awaited from the moment the caller records it until one
//!   delivery accepted under the caller's lock *takes* it (the reply, or the
//!   `Down` of the call's monitor), or the caller gives up (under its lock
//!   too). So at most one message of a call ever reaches the caller, and
//!   none after it gave up.
//! - The word holds one awaited tag (0: none) and the flag [`MORE`]. Only
//!   the owner sets the tag, and only when the word is 0, without the lock;
//!   it is cleared under the lock. A tag that finds the word taken (several
//!   calls in flight) goes to the extras' `awaiting` list instead, under the
//!   lock, and [`MORE`] says whether that list is non-empty, for readers
//!   without the lock. So the word changes without the lock only from 0,
//!   and under the lock only from non-zero: the two never race.
//! - [`Awaits::may_await`] (any thread, no lock) errs only towards "yes":
//!   a tag recorded before the reader's last acquire of a lock its recorder
//!   released afterwards is seen, and a tag is never recorded twice.

use crate::slot::Extras;
use crate::sync::{AtomicU64, Ordering};

/// Set in the word while the extras' `awaiting` list is non-empty. Tags
/// stay below it: they count references from 1.
const MORE: u64 = 1 << 63;

/// The awaited tags of one slot's incarnation (see the module docs): one
/// word, zero for a free slot (the process table hands out zeroed memory).
#[derive(Debug, Default)]
pub(crate) struct Awaits {
    word: AtomicU64,
}

impl Awaits {
    /// The owner starts awaiting `tag` without the lock if the word is 0;
    /// false if not (the caller then records `tag` with
    /// [`Awaits::record_locked`]).
    #[inline]
    pub(crate) fn try_record(&self, tag: u64) -> bool {
        debug_assert!(tag != 0 && tag < MORE, "a call's tag is in 1..2^63");
        // Relaxed: the request that makes a reply possible is delivered under
        // the server's lock after this store, and every reader of the record
        // (the reply's delivery under our lock, `may_await` under the
        // server's) acquires a lock released after it.
        if self.word.load(Ordering::Relaxed) != 0 {
            return false;
        }
        self.word.store(tag, Ordering::Relaxed);
        true
    }

    /// Under the lock: records `tag` in the extras' list.
    pub(crate) fn record_locked(&self, extras: &mut Extras, tag: u64) {
        extras.awaiting.push(tag);
        self.word.store(self.word.load(Ordering::Relaxed) | MORE, Ordering::Relaxed);
    }

    /// Under the lock: ends the wait for `tag`; whether it was awaited.
    #[inline]
    pub(crate) fn take_locked(&self, extras: Option<&mut Extras>, tag: u64) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        if word & !MORE == tag {
            self.word.store(word & MORE, Ordering::Relaxed);
            return true;
        }
        if word & MORE == 0 {
            return false;
        }
        let Some(extras) = extras else { return false };
        match extras.awaiting.iter().position(|&t| t == tag) {
            Some(at) => {
                extras.awaiting.swap_remove(at);
                if extras.awaiting.is_empty() {
                    self.word.store(word & !MORE, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Under the lock: whether `tag` is awaited.
    pub(crate) fn is_awaited_locked(&self, extras: Option<&Extras>, tag: u64) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        word & !MORE == tag || (word & MORE != 0 && extras.is_some_and(|e| e.awaiting.contains(&tag)))
    }

    /// Without the lock, from any thread: whether `tag` may still be
    /// awaited (true also when unsure: see the module docs).
    #[inline]
    pub(crate) fn may_await(&self, tag: u64) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        word & !MORE == tag || word & MORE != 0
    }

    /// Without the lock: whether `tag` is the tag in the word, so still
    /// awaited. Read by the owner, an answer of yes means that no delivery
    /// which took `tag` (and queued the call's reply or `Down`) happened
    /// before the read: see `call.rs`, "The wait".
    #[inline(always)]
    pub(crate) fn holds(&self, tag: u64) -> bool {
        self.word.load(Ordering::Relaxed) & !MORE == tag
    }

    /// Under the lock, at exit: forgets every tag (the extras go with the incarnation).
    pub(crate) fn clear_locked(&self) {
        self.word.store(0, Ordering::Relaxed);
    }

    /// For the loom models: whether nothing is awaited.
    #[cfg(all(loom, test))]
    pub(crate) fn is_empty(&self) -> bool {
        self.word.load(Ordering::Relaxed) == 0
    }
}

/// What a delivery checks under the target's lock before queueing: it may
/// turn the message away. Must not run user code.
pub(crate) trait Veto {
    /// Whether the message is turned away; `extras` if allocated.
    fn refuses(self, awaits: &Awaits, extras: Option<&mut Extras>) -> bool;
}

/// A closure over the extras: never refuses a process without extras.
impl<F: FnOnce(&mut Extras) -> bool> Veto for F {
    #[inline]
    fn refuses(self, _: &Awaits, extras: Option<&mut Extras>) -> bool {
        extras.is_some_and(self)
    }
}

/// The veto of a call's reply and of its monitor's `Down`: accepted only
/// while the call is awaited, and accepting it ends the wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplyOf(pub(crate) u64);

impl Veto for ReplyOf {
    #[inline]
    fn refuses(self, awaits: &Awaits, extras: Option<&mut Extras>) -> bool {
        !awaits.take_locked(extras, self.0)
    }
}

/// No veto: the message is queued if the target is alive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Accept;

impl Veto for Accept {
    #[inline]
    fn refuses(self, _: &Awaits, _: Option<&mut Extras>) -> bool {
        false
    }
}
