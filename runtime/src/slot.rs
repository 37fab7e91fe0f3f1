//! A process slot: one entry of the process table, with the state word that
//! serialises everything other threads may do to the process.
//!
//! # The state word
//!
//! One `AtomicU64`: the high 32 bits are the slot's current *serial* (which
//! incarnation lives here; see [`Pid`](crate::Pid)), the low bits are flags:
//!
//! | bit            | meaning                                                        | changed by |
//! |----------------|----------------------------------------------------------------|------------|
//! | `LOCKED`       | a thread holds the mailbox lock (outer queue, extras)          | anyone, spin lock |
//! | `LIVE`         | an incarnation occupies the slot                               | spawn / exit |
//! | `BUSY`         | exactly one worker owns the process: it is queued or running   | waker → owner |
//! | `NOTIFIED`     | a waker fired while `BUSY`: poll again after this poll         | waker / owner |
//! | `MSG`          | the outer queue is non-empty (level)                           | sender / owner |
//! | `MSG_NOTIFIED` | a message arrived while `BUSY` and the owner has not looked    | sender / owner |
//! | `EXTERNAL`     | an external mailbox: wake its stored `Waker`, never schedule   | spawn |
//! | `NAMED`        | the incarnation has a registered name to release at exit       | registry |
//! | `TRAP_EXIT`    | exit signals become `Exit` messages (Erlang's `trap_exit`)      | the process |
//! | `EXITING`      | an exit signal was accepted: the owner ends the process at the next poll boundary | signaller |
//!
//! Every change to the word either holds `LOCKED` or is a compare-exchange
//! that expects `LOCKED` clear, so while a thread holds the lock nobody else
//! changes the word and unlocking is a plain release store of the new value.
//!
//! # Protocol
//!
//! 1. *Send* (any thread): lock; if the serial differs from the Pid's or the
//!    slot is not `LIVE`, unlock and drop the message (the target is dead —
//!    this check under the lock is what keeps a message from ever reaching
//!    the next incarnation). Otherwise push to the outer queue, set `MSG`;
//!    if `BUSY` set `MSG_NOTIFIED`, else set `BUSY` and return
//!    [`Wake::Schedule`]: the sender now owns the process and must queue it.
//!    *Hand-off*: if the process is idle (`BUSY` clear) and the outer queue
//!    is empty (`MSG` clear), the sender, which becomes the owner by setting
//!    `BUSY`, appends the message to the *inner* queue instead, so the woken
//!    receiver finds it without taking the lock. Order is kept: nothing
//!    older is in the outer queue, and everything in the inner queue is.
//! 2. *Wake* (a `Waker` or timer, any thread): the same without the push,
//!    setting `NOTIFIED` instead of `MSG_NOTIFIED`.
//! 3. *Receive* (the owner, while polling): a relaxed load of `MSG`; if set,
//!    lock, move the outer queue to the end of the inner one, clear `MSG`
//!    and `MSG_NOTIFIED`, unlock. The inner queue is the owner's alone.
//!    A poll may hold several pending receives (`join!` of two `recv`s):
//!    if one went pending before a later one moved new messages inside, the
//!    first has not looked at them although `MSG_NOTIFIED` is now clear.
//!    The receive code records that case (`receive::PollBook`) and the
//!    owner then sets `NOTIFIED` itself before step 4.
//! 4. *After a `Pending` poll* (the owner): if none of `NOTIFIED`,
//!    `MSG_NOTIFIED`, `LOCKED` is set, one compare-exchange clears `BUSY` and
//!    the process is idle; a later send or wake will schedule it (step 1/2).
//!    Otherwise, under the lock, clear both notifications and keep `BUSY`:
//!    the owner queues it again. A wake is therefore never lost (the sender
//!    either sees `BUSY` clear and schedules, or sets a notification the
//!    owner sees in this step) and a process is never queued twice (only
//!    the thread that sets `BUSY` queues it).
//! 5. *Signal* (any thread, see `signal.rs`): under the lock a policy
//!    decides, from the flags and extras, to ignore the signal, to deliver
//!    it as a message (exactly as step 1), or to end the process: it
//!    records the reason in the extras (the first one wins), sets `EXITING`
//!    and wakes the process as in step 2. The owner, before polling a
//!    process with `EXITING`, ends it instead (step 6) — so a process
//!    waiting in a receive dies at once, one in a loop that never awaits at
//!    its next `.await`.
//! 6. *Exit* (the owner): lock, advance the serial, clear every flag, take
//!    the outer queue and extras, unlock. From then on every stale sender or
//!    waker fails the serial check.
//!
//! The owner's exclusive access to the inner queue and the task is handed
//! from thread to thread by `BUSY` itself: the release in step 4 (or the
//! unlock in step 1) is acquired by the next thread that takes the lock and
//! sets `BUSY`, which then publishes the slot through a run queue.

use std::marker::PhantomData;
use std::task::Waker;

use crate::awaits::{Awaits, Veto};
use crate::call_monitors::CallMonitors;
use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::monitor::MonitorRef;
use crate::pid::Pid;
use crate::queue::{InlineQueue, RingQueue};
use crate::sync::{spin_loop, thread, AtomicU32, AtomicU64, Ordering, StoreRacingRmw, UnsafeCell};
use crate::task::{TaskRef, TaskStorage};

pub(crate) const LOCKED: u64 = 1 << 0;
pub(crate) const LIVE: u64 = 1 << 1;
pub(crate) const BUSY: u64 = 1 << 2;
pub(crate) const NOTIFIED: u64 = 1 << 3;
pub(crate) const MSG: u64 = 1 << 4;
pub(crate) const MSG_NOTIFIED: u64 = 1 << 5;
pub(crate) const EXTERNAL: u64 = 1 << 6;
pub(crate) const NAMED: u64 = 1 << 7;
pub(crate) const TRAP_EXIT: u64 = 1 << 8;
pub(crate) const EXITING: u64 = 1 << 9;

const SERIAL_SHIFT: u32 = 32;
/// A slot whose serial reaches this value is retired, never reused.
pub(crate) const RETIRED_SERIAL: u32 = u32::MAX;

#[inline(always)]
pub(crate) fn serial_of(word: u64) -> u32 {
    (word >> SERIAL_SHIFT) as u32
}

#[inline(always)]
fn with_serial(serial: u32) -> u64 {
    (serial as u64) << SERIAL_SHIFT
}

/// What the caller of [`Slot::deliver`] or [`Slot::wake`] must do next.
#[derive(Debug)]
#[must_use]
pub(crate) enum Wake {
    /// Nothing: the process was already owned, or it is dead.
    None,
    /// The caller set `BUSY` and now owns the process: queue it.
    Schedule,
    /// An external mailbox was waiting: wake this waker.
    Waker(Waker),
}

/// The result of delivering a message.
#[derive(Debug)]
#[must_use]
pub(crate) enum Delivery {
    /// Queued in the mailbox; do what the [`Wake`] says.
    Queued(Wake),
    /// The target incarnation is gone; the message is handed back to be dropped.
    Dead(Envelope),
    /// The target turned it away (see [`Slot::deliver_unless`]); drop it.
    Refused(Envelope),
}

/// What the owner must do after a `Pending` poll.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum AfterPoll {
    /// `BUSY` is cleared: the process waits for a send or a wake.
    Idle,
    /// It was woken during the poll: the owner queues it again.
    Reschedule,
}

/// Lazily allocated per-incarnation state that other threads touch (under
/// `LOCKED`). Kept out of line so an idle process costs only its slot.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// The waker of an external mailbox's pending receive.
    pub(crate) waker: Option<Waker>,
    /// Monitors watching this incarnation: fired (each once) at exit.
    pub(crate) monitors: Vec<MonitorRef>,
    /// Monitors this incarnation removed after they fired, whose `Down` was
    /// not yet in its mailbox: turned away on arrival.
    pub(crate) suppressed: Vec<MonitorRef>,
    /// Monitors this incarnation holds on other processes, until their
    /// `Down` arrives: removed from their targets when it exits.
    pub(crate) watching: Vec<MonitorRef>,
    /// Processes linked to this one (each at most once).
    pub(crate) links: Vec<Pid>,
    /// Why the process must exit, once an exit signal was accepted (`EXITING`).
    pub(crate) exit: Option<ExitReason>,
    /// The tags of the calls this incarnation awaits beyond the one in its
    /// slot's fast record (see `awaits.rs`).
    pub(crate) awaiting: Vec<u64>,
    /// The monitors of calls made to this incarnation by processes of its
    /// runtime (see `call.rs`, `call_monitors.rs`): fired at exit, each
    /// `Down` accepted only if its caller still awaits that call.
    pub(crate) calls: CallMonitors,
}

/// What a signal does, decided under the target's lock (see step 5).
#[derive(Debug)]
pub(crate) enum SignalAction {
    /// Nothing (a `Normal` signal to a process that does not trap exits,
    /// or one through a link that no longer exists).
    Ignore,
    /// Deliver this message instead (a trapped exit signal).
    Deliver(Envelope),
    /// End the process with this reason.
    Exit(ExitReason),
}

/// What an exiting incarnation leaves behind, to be disposed of outside the lock.
#[derive(Debug)]
pub(crate) struct Remains {
    /// The word's flags just before exit (e.g. `NAMED`).
    pub(crate) flags: u64,
    /// Messages never looked at.
    pub(crate) outer: RingQueue<Envelope>,
    /// Extras, if any were allocated.
    pub(crate) extras: Option<Box<Extras>>,
}

/// The owner's private part of a mailbox: messages already looked at (or
/// handed off), oldest first. Its epoch tells a suspended receive that its
/// saved scan position may have moved.
pub(crate) type Inner = InlineQueue<Envelope>;

/// One entry of the process table. All-zero bytes are a valid free slot with
/// serial 0 (outside loom), which lets the table hand out zeroed memory.
///
/// Field order is deliberate (`repr(C)`): what a message hop touches — the
/// word, the task pointer, the inner queue's inline front — comes first.
#[repr(C)]
pub(crate) struct Slot {
    word: AtomicU64,
    /// The process's future. Owned by the `BUSY` holder.
    task: UnsafeCell<Option<TaskRef>>,
    /// Owned by the `BUSY` holder (or the external mailbox's handle).
    inner: UnsafeCell<Inner>,
    /// Length of the inner queue, mirrored for observers (relaxed).
    inner_len: AtomicU32,
    /// A call's first-miss reading, or a request for it (`timer/stamp.rs`).
    /// In what would be padding.
    stamp: AtomicU32,
    /// Guarded by `LOCKED`; null until first needed.
    extras: UnsafeCell<*mut Extras>,
    /// Messages not yet seen by the process. Guarded by `LOCKED`.
    outer: UnsafeCell<RingQueue<Envelope>>,
    /// Where a small future lives (see `task.rs`). Owned by the `BUSY` holder.
    storage: UnsafeCell<TaskStorage>,
    /// The calls the incarnation awaits a reply to (see `awaits.rs`).
    awaits: Awaits,
}

// SAFETY: every field is accessed under the protocol in the module docs:
// `outer` and `extras` under `LOCKED`, `inner` and `task` by the one owner
// designated by `BUSY` (or the external handle). The payloads are `Send`.
unsafe impl Sync for Slot {}
// SAFETY: as above; a slot moves between threads only as part of the table.
unsafe impl Send for Slot {}

impl Slot {
    /// A free slot with serial 0 (outside loom the table uses zeroed memory instead).
    #[cfg(loom)]
    pub(crate) fn new() -> Slot {
        Slot {
            word: AtomicU64::new(0),
            outer: UnsafeCell::new(RingQueue::new()),
            extras: UnsafeCell::new(std::ptr::null_mut()),
            inner: UnsafeCell::new(InlineQueue::new()),
            task: UnsafeCell::new(None),
            storage: UnsafeCell::new(TaskStorage::uninit()),
            inner_len: AtomicU32::new(0),
            stamp: AtomicU32::new(0),
            awaits: Awaits::default(),
        }
    }

    /// The current word (for observers; racy by nature).
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// The serial of the incarnation that lives (or will next live) here.
    #[inline]
    pub(crate) fn serial(&self) -> u32 {
        serial_of(self.word.load(Ordering::Acquire))
    }

    /// Whether incarnation `serial` is alive.
    pub(crate) fn is_alive(&self, serial: u32) -> bool {
        let w = self.load();
        w & LIVE != 0 && serial_of(w) == serial
    }

    /// Acquires the mailbox lock; returns the word as it is now (with `LOCKED`).
    ///
    /// A compare-exchange that expects `LOCKED` clear, like every other
    /// change to the word; a waiter only reads until the lock looks free
    /// (and yields to the holder after a short spin).
    #[inline]
    fn lock(&self) -> u64 {
        let mut spins = 0u32;
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & LOCKED == 0 {
                match self.word.compare_exchange_weak(w, w | LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return w | LOCKED,
                    Err(actual) => {
                        w = actual;
                        continue;
                    }
                }
            }
            if spins < 64 {
                spin_loop();
            } else {
                thread::yield_now();
            }
            spins += 1;
            w = self.word.load(Ordering::Relaxed);
        }
    }

    /// Releases the lock, publishing `word` (which must not have `LOCKED`).
    #[inline]
    fn unlock(&self, word: u64) {
        debug_assert_eq!(word & LOCKED, 0);
        self.word.store(word, Ordering::Release);
    }

    /// Step 1: delivers `env` to incarnation `serial`.
    #[inline]
    pub(crate) fn deliver(&self, serial: u32, env: Envelope) -> Delivery {
        self.deliver_unless(serial, env, crate::awaits::Accept)
    }

    /// The calls the incarnation awaits (see `awaits.rs`).
    #[inline(always)]
    pub(crate) fn awaits(&self) -> &Awaits {
        &self.awaits
    }

    /// Step 1 with a veto: `refuse` runs under the lock on the awaited
    /// calls and the extras (if allocated) and may turn the message away (a
    /// `Down` the process has demonitored, a reply to a call it no longer
    /// awaits).
    #[inline(always)]
    pub(crate) fn deliver_unless(&self, serial: u32, env: Envelope, refuse: impl Veto) -> Delivery {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return Delivery::Dead(env);
        }
        // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
        let refused = self.extras.with_mut(|e| unsafe { refuse.refuses(&self.awaits, (*e).as_mut()) });
        if refused {
            self.unlock(w & !LOCKED);
            return Delivery::Refused(env);
        }
        let (word, wake) = self.push_locked(w, env);
        self.unlock(word & !LOCKED);
        Delivery::Queued(wake)
    }

    /// Step 1 with a setup: if incarnation `serial` is alive, runs `setup`
    /// on its extras (allocating them if needed) and queues `env`, in one
    /// lock section. A call adds its monitor of the server this way, with
    /// its request (`call.rs`). `setup` must not run user code.
    #[inline]
    pub(crate) fn deliver_with(&self, serial: u32, env: Envelope, setup: impl FnOnce(&mut Extras)) -> Delivery {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return Delivery::Dead(env);
        }
        self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe {
                if (*e).is_null() {
                    *e = Box::into_raw(Box::default());
                }
                setup(&mut **e);
            }
        });
        let (word, wake) = self.push_locked(w, env);
        self.unlock(word & !LOCKED);
        Delivery::Queued(wake)
    }

    /// Under the lock, with the serial checked: queues `env` (step 1, the
    /// hand-off included) and returns the new word and who runs the process.
    #[inline(always)]
    fn push_locked(&self, w: u64, env: Envelope) -> (u64, Wake) {
        if w & (BUSY | EXTERNAL | MSG) == 0 {
            // Hand-off: the process is idle and nothing older waits in the
            // outer queue. Setting BUSY makes us its owner until we queue it,
            // and the owner may write the inner queue: the message goes
            // straight there and the receiver takes it without a lock.
            self.inner.with_mut(|inner| {
                // SAFETY: we own the process from the moment we set BUSY
                // (published by the unlock below, before anyone can run it).
                let inner = unsafe { &mut *inner };
                inner.push_back(env);
                self.inner_len.store(inner.len() as u32, Ordering::Relaxed);
            });
            return (w | BUSY, Wake::Schedule);
        }
        // SAFETY: we hold LOCKED, which guards `outer`.
        self.outer.with_mut(|outer| unsafe { (*outer).push_back(env) });
        self.claim(w | MSG, MSG_NOTIFIED)
    }

    /// Step 5: a signal to incarnation `serial`; `decide` is the policy (it
    /// sees the word and the extras, under the lock, and must not run user
    /// code). Returns None if the target is not alive, else who runs it.
    pub(crate) fn signal(&self, serial: u32, decide: impl FnOnce(u64, &mut Extras) -> SignalAction) -> Option<Wake> {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return None;
        }
        let action = self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe {
                if (*e).is_null() {
                    *e = Box::into_raw(Box::default());
                }
                decide(w, &mut **e)
            }
        });
        let (word, wake) = match action {
            SignalAction::Ignore => (w, Wake::None),
            SignalAction::Deliver(env) => self.push_locked(w, env),
            SignalAction::Exit(reason) => {
                self.extras.with_mut(|e| {
                    // SAFETY: LOCKED guards `extras`, allocated just above.
                    let extras = unsafe { &mut **e };
                    extras.exit.get_or_insert(reason);
                });
                self.claim(w | EXITING, NOTIFIED)
            }
        };
        self.unlock(word & !LOCKED);
        Some(wake)
    }

    /// The reason the process must exit, once `EXITING` is set (owner).
    pub(crate) fn take_exit_reason(&self) -> ExitReason {
        let w = self.lock();
        let reason = self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe { (*e).as_mut().and_then(|x| x.exit.take()) }
        });
        self.unlock(w & !LOCKED);
        reason.unwrap_or(ExitReason::Killed)
    }

    /// Sets or clears `flag` on incarnation `serial`; returns its previous
    /// state, or None if the incarnation is not alive.
    pub(crate) fn swap_flag(&self, serial: u32, flag: u64, on: bool) -> Option<bool> {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return None;
        }
        let next = if on { w | flag } else { w & !flag };
        self.unlock(next & !LOCKED);
        Some(w & flag != 0)
    }

    /// Step 2: wakes incarnation `serial` (a `Waker` or a timer fired).
    pub(crate) fn wake(&self, serial: u32) -> Wake {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return Wake::None;
        }
        let (word, wake) = self.claim(w, NOTIFIED);
        self.unlock(word & !LOCKED);
        wake
    }

    /// Under the lock: decides who runs the process after a send or wake.
    #[inline]
    fn claim(&self, w: u64, notification: u64) -> (u64, Wake) {
        if w & EXTERNAL != 0 {
            // SAFETY: we hold LOCKED, which guards `extras`.
            let waker = self.extras.with_mut(|e| unsafe { (*e).as_mut().and_then(|x| x.waker.take()) });
            (w, waker.map_or(Wake::None, Wake::Waker))
        } else if w & BUSY != 0 {
            (w | notification, Wake::None)
        } else {
            (w | BUSY, Wake::Schedule)
        }
    }

    /// Whether the outer queue holds messages (a hint for the owner: a
    /// concurrent send may be landing; it will notify the owner).
    #[inline]
    pub(crate) fn has_new_messages(&self) -> bool {
        self.word.load(Ordering::Relaxed) & MSG != 0
    }

    /// Step 4: after a `Pending` poll, either goes idle or asks to be requeued.
    ///
    /// # Safety
    /// The caller is the `BUSY` holder.
    #[inline]
    pub(crate) unsafe fn transition_to_idle(&self) -> AfterPoll {
        let w = self.word.load(Ordering::Relaxed);
        debug_assert!(w & BUSY != 0);
        if w & (LOCKED | NOTIFIED | MSG_NOTIFIED) == 0
            && self.word.compare_exchange(w, w & !BUSY, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            return AfterPoll::Idle;
        }
        let w = self.lock();
        if w & (NOTIFIED | MSG_NOTIFIED) != 0 {
            self.unlock(w & !(LOCKED | NOTIFIED | MSG_NOTIFIED));
            AfterPoll::Reschedule
        } else {
            self.unlock(w & !(LOCKED | BUSY));
            AfterPoll::Idle
        }
    }

    /// Marks the running process as woken, so it is polled again (a yield).
    pub(crate) fn notify_self(&self) {
        let w = self.lock();
        self.unlock((w | NOTIFIED) & !LOCKED);
    }

    /// Makes a free slot live as incarnation `serial`, owned by the caller
    /// (`BUSY`) or, for an external mailbox, waiting (`EXTERNAL`). `task`
    /// builds the task, given this slot's task storage.
    ///
    /// # Safety
    /// The slot must be free (taken from the free list): nobody owns it.
    pub(crate) unsafe fn transition_to_live(
        &self,
        task: impl FnOnce(*mut TaskStorage) -> Option<TaskRef>,
        external: bool,
    ) -> u32 {
        // SAFETY: a free slot has no owner; we are about to become it, and
        // its storage holds no live task.
        let task = self.storage.with_mut(task);
        // SAFETY: as above.
        self.task.with_mut(|t| unsafe { *t = task });
        let w = self.lock();
        debug_assert_eq!(w & (LIVE | BUSY), 0, "spawning into a live slot");
        let flags = if external { LIVE | EXTERNAL } else { LIVE | BUSY };
        self.unlock((w & !LOCKED) | flags);
        serial_of(w)
    }

    /// Step 5: ends the current incarnation. Returns what it leaves behind.
    ///
    /// # Safety
    /// The caller owns the process (`BUSY` holder or the external handle).
    pub(crate) unsafe fn transition_to_exited(&self) -> Remains {
        let w = self.lock();
        let serial = serial_of(w);
        // SAFETY: LOCKED guards `outer` and `extras`.
        let outer = self.outer.with_mut(|o| unsafe { (*o).take() });
        // SAFETY: as above.
        let extras = self.extras.with_mut(|e| unsafe { std::mem::replace(&mut *e, std::ptr::null_mut()) });
        self.awaits.clear_locked();
        let next = if serial >= RETIRED_SERIAL - 1 { RETIRED_SERIAL } else { serial + 1 };
        self.unlock(with_serial(next));
        self.inner_len.store(0, Ordering::Relaxed);
        Remains {
            flags: w & !LOCKED,
            outer,
            // SAFETY: a non-null extras pointer came from Box::into_raw in `with_extras`.
            extras: (!extras.is_null()).then(|| unsafe { Box::from_raw(extras) }),
        }
    }

    /// Whether the slot may be handed out again (its serial has not run out).
    pub(crate) fn is_reusable(&self) -> bool {
        self.serial() != RETIRED_SERIAL
    }

    /// Runs `f` on the extras of incarnation `serial` under the lock,
    /// allocating them if needed. Returns None if `serial` is not alive.
    pub(crate) fn with_extras<R>(&self, serial: u32, f: impl FnOnce(&mut Extras) -> R) -> Option<R> {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return None;
        }
        let r = self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe {
                if (*e).is_null() {
                    *e = Box::into_raw(Box::default());
                }
                f(&mut **e)
            }
        });
        self.unlock(w & !LOCKED);
        Some(r)
    }

    /// The owner of incarnation `serial` starts awaiting the reply to call
    /// `tag` (step 1 of `call.rs`): without the lock unless it awaits
    /// another call already. Whether `tag` is the one call it awaits.
    #[inline]
    pub(crate) fn await_reply(&self, serial: u32, tag: u64) -> bool {
        if self.awaits.try_record(tag) {
            return true;
        }
        self.with_extras(serial, |e| self.awaits.record_locked(e, tag));
        false
    }

    /// Under the lock: ends the wait of incarnation `serial` for call `tag`
    /// (the caller gives up); whether it was still awaited — if not, its
    /// reply or `Down` was accepted and is in the mailbox.
    pub(crate) fn stop_awaiting(&self, serial: u32, tag: u64) -> bool {
        self.with_awaits(serial, |awaits, extras| awaits.take_locked(extras, tag)).unwrap_or(false)
    }

    /// Under the lock: whether incarnation `serial` is alive and awaits call `tag`.
    pub(crate) fn awaits_exactly(&self, serial: u32, tag: u64) -> bool {
        self.with_awaits(serial, |awaits, extras| awaits.is_awaited_locked(extras.as_deref(), tag)).unwrap_or(false)
    }

    /// Under the lock, if incarnation `serial` is alive: `f` on its awaited
    /// calls and its extras (if allocated).
    fn with_awaits<R>(&self, serial: u32, f: impl FnOnce(&Awaits, Option<&mut Extras>) -> R) -> Option<R> {
        let w = self.lock();
        if serial_of(w) != serial || w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return None;
        }
        // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
        let r = self.extras.with_mut(|e| unsafe { f(&self.awaits, (*e).as_mut()) });
        self.unlock(w & !LOCKED);
        Some(r)
    }

    /// Without the lock, from any thread: whether incarnation `serial` is
    /// alive and may still await call `tag` (see [`Awaits::may_await`]).
    #[inline]
    pub(crate) fn may_await(&self, serial: u32, tag: u64) -> bool {
        self.is_alive(serial) && self.awaits.may_await(tag)
    }

    /// Runs `f` on the extras of the live incarnation under the lock, with
    /// its serial, if it has extras (never allocates them).
    pub(crate) fn with_present_extras<R>(&self, f: impl FnOnce(u32, &mut Extras) -> R) -> Option<R> {
        if self.load() & LIVE == 0 {
            return None;
        }
        let w = self.lock();
        if w & LIVE == 0 {
            self.unlock(w & !LOCKED);
            return None;
        }
        let r = self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe { (!(*e).is_null()).then(|| f(serial_of(w), &mut **e)) }
        });
        self.unlock(w & !LOCKED);
        r
    }

    /// For an external mailbox: if nothing arrived, stores `waker` to be
    /// woken by the next delivery. Returns false (storing nothing) if
    /// messages are waiting.
    pub(crate) fn register_waker(&self, serial: u32, waker: &Waker) -> bool {
        let w = self.lock();
        if w & MSG != 0 || serial_of(w) != serial {
            self.unlock(w & !LOCKED);
            return false;
        }
        self.extras.with_mut(|e| {
            // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
            unsafe {
                if (*e).is_null() {
                    *e = Box::into_raw(Box::default());
                }
                match &mut (**e).waker {
                    Some(old) if old.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
            }
        });
        self.unlock(w & !LOCKED);
        true
    }

    /// Under the lock: removes the first outer message `is_it` accepts and
    /// returns it; if there is none, runs `otherwise` on the extras (while
    /// still holding the lock, so no delivery can slip in between).
    pub(crate) fn remove_outer_or(
        &self,
        is_it: impl Fn(&Envelope) -> bool,
        otherwise: impl FnOnce(&mut Extras),
    ) -> Option<Envelope> {
        let w = self.lock();
        // SAFETY: LOCKED guards `outer`.
        let (found, empty) = self.outer.with_mut(|outer| unsafe {
            let outer = &mut *outer;
            let mut found = None;
            for i in 0..outer.len() {
                if outer.get(i).is_some_and(&is_it) {
                    found = outer.remove(i);
                    break;
                }
            }
            (found, outer.is_empty())
        });
        if found.is_none() {
            self.extras.with_mut(|e| {
                // SAFETY: LOCKED guards `extras`; a non-null pointer came from Box::into_raw.
                unsafe {
                    if (*e).is_null() {
                        *e = Box::into_raw(Box::default());
                    }
                    otherwise(&mut **e);
                }
            });
        }
        let w = if empty { w & !(MSG | MSG_NOTIFIED) } else { w };
        self.unlock(w & !LOCKED);
        found
    }

    /// Sets or clears `flag` on incarnation `serial`; false if it is not alive.
    pub(crate) fn set_flag(&self, serial: u32, flag: u64, on: bool) -> bool {
        let w = self.lock();
        let alive = serial_of(w) == serial && w & LIVE != 0;
        let w = if alive && on {
            w | flag
        } else if alive {
            w & !flag
        } else {
            w
        };
        self.unlock(w & !LOCKED);
        alive
    }

    /// Number of messages in the mailbox (outer exact, inner mirrored).
    pub(crate) fn mailbox_len(&self, serial: u32) -> Option<usize> {
        let w = self.lock();
        let alive = serial_of(w) == serial && w & LIVE != 0;
        // SAFETY: LOCKED guards `outer`.
        let outer = self.outer.with(|o| unsafe { (*o).len() });
        self.unlock(w & !LOCKED);
        alive.then(|| outer + self.inner_len.load(Ordering::Relaxed) as usize)
    }

    /// The stamp (`timer/stamp.rs`, step 3): acquire, so that a reading
    /// stamped by another worker happens-before the caller's next one.
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u32 {
        self.stamp.load(Ordering::Acquire)
    }

    /// The process asks its worker for its next reading (`timer/stamp.rs`,
    /// step 1): relaxed, as the only thread that acts on this value is the
    /// one writing it (the worker's own). The store races the worker's
    /// compare-exchange of an earlier request ([`Slot::stamp_request`]),
    /// which must not overwrite it: hence the shim's store for that case
    /// (a plain store outside loom).
    #[inline(always)]
    pub(crate) fn request_stamp(&self, mark: u32) {
        self.stamp.store_racing_rmw(mark, Ordering::Relaxed);
    }

    /// The worker of `mark` stamps its reading if the stamp still requests
    /// it (`timer/stamp.rs`, step 2). Release: pairs with [`Slot::stamp`].
    #[inline]
    pub(crate) fn stamp_request(&self, mark: u32, reading: u32) {
        let _ = self.stamp.compare_exchange(mark, reading, Ordering::Release, Ordering::Relaxed);
    }

    /// Takes the task out (for polling it in place, or dropping it at exit).
    ///
    /// # Safety
    /// The caller is the `BUSY` holder.
    #[inline]
    pub(crate) unsafe fn task(&self) -> Option<TaskRef> {
        // SAFETY: the caller owns `task`.
        self.task.with(|t| unsafe { *t })
    }

    /// Clears the task pointer (the caller frees the task).
    ///
    /// # Safety
    /// The caller is the `BUSY` holder.
    pub(crate) unsafe fn clear_task(&self) -> Option<TaskRef> {
        // SAFETY: the caller owns `task`.
        self.task.with_mut(|t| unsafe { (*t).take() })
    }
}

/// The owner's hold on its process's mailbox: what the owner-only parts of
/// a slot (the inner queue) are reached through, by safe methods.
///
/// Invariant: while an `Owner` of a slot exists, its thread owns the
/// process (the `BUSY` holder polling it, or the external mailbox's
/// handle), and while one borrows the inner queue — only inside its own
/// methods, [`Owner::with_inner`]'s closure included — no other `Owner` of
/// that slot is made or used. [`Owner::new`] (`unsafe`) is where that is
/// established: by the worker polling the process (`worker::with_owner`),
/// and by an external mailbox's `&mut self`. What runs inside a borrow is
/// crate code, which makes no `Owner`, and user code (a `receive!`'s guards,
/// a message's `Deserialize`), which runs there only inside
/// `worker::while_holding`, where `with_owner` panics instead. The closure
/// of `with_inner` cannot use its own `Owner`, which it borrows mutably.
/// Not `Send`: the ownership is its thread's.
pub(crate) struct Owner<'a> {
    slot: &'a Slot,
    _this_thread: PhantomData<*const ()>,
}

impl<'a> Owner<'a> {
    /// The owner's hold on `slot`.
    ///
    /// # Safety
    /// For `'a`, the caller owns the process whose slot is `slot` (`BUSY`
    /// holder on this thread, or the external handle), and uses no other
    /// `Owner` of it while this one is in use.
    #[inline(always)]
    pub(crate) unsafe fn new(slot: &'a Slot) -> Owner<'a> {
        Owner { slot, _this_thread: PhantomData }
    }

    /// The slot, for what anyone may do to it (under its lock).
    #[inline(always)]
    pub(crate) fn slot(&self) -> &'a Slot {
        self.slot
    }

    /// Runs `f` on the inner queue. (User code that `f` runs must run
    /// inside `worker::while_holding`.)
    #[inline(always)]
    pub(crate) fn with_inner<R>(&mut self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let slot = self.slot;
        slot.inner.with_mut(|inner| {
            // SAFETY: the invariant: this thread owns the process, and
            // nothing `f` runs reaches the inner queue (through this
            // `Owner`, borrowed here, or another, which nothing in `f` makes).
            let inner = unsafe { &mut *inner };
            let r = f(inner);
            slot.inner_len.store(inner.len() as u32, Ordering::Relaxed);
            r
        })
    }

    /// The inner queue's length (read by its owner: no mirror update).
    #[inline(always)]
    pub(crate) fn inner_len(&self) -> usize {
        // SAFETY: as in `with_inner`; a read, outside any borrow of the
        // inner queue (`with_inner` borrows `self` mutably, and no other
        // `Owner` is used inside one).
        self.slot.inner.with(|inner| unsafe { (*inner).len() })
    }

    /// The inner queue's epoch.
    #[inline(always)]
    pub(crate) fn inner_epoch(&self) -> u32 {
        // SAFETY: as in `inner_len`.
        self.slot.inner.with(|inner| unsafe { (*inner).epoch() })
    }

    /// Step 3: moves newly arrived messages to the end of the inner queue.
    /// Returns whether anything arrived.
    #[inline(always)]
    pub(crate) fn drain(&mut self) -> bool {
        let slot = self.slot;
        if slot.word.load(Ordering::Relaxed) & MSG == 0 {
            return false;
        }
        let w = slot.lock();
        slot.outer.with_mut(|outer| {
            slot.inner.with_mut(|inner| {
                // SAFETY: LOCKED guards `outer`; this thread owns `inner`
                // and does not borrow it elsewhere (as in `with_inner`).
                unsafe {
                    (*inner).append(&mut *outer);
                    (*outer).shrink_if_empty();
                }
                // SAFETY: as above.
                let len = unsafe { (*inner).len() };
                slot.inner_len.store(len as u32, Ordering::Relaxed);
            })
        });
        slot.unlock(w & !(LOCKED | MSG | MSG_NOTIFIED));
        true
    }

    /// Step 3, fast path: if the oldest unseen message satisfies `is_wanted`
    /// (a type check: no user code runs under the lock), takes it. The
    /// caller's receive must have rejected every message of the inner
    /// queue, so that the outer queue's front is the oldest candidate (else
    /// it takes a message out of order, never an unsound one).
    #[inline(always)]
    pub(crate) fn pop_front_if(&mut self, is_wanted: impl Fn(&Envelope) -> bool) -> Option<Envelope> {
        let slot = self.slot;
        if slot.word.load(Ordering::Relaxed) & MSG == 0 {
            return None;
        }
        let w = slot.lock();
        // SAFETY: LOCKED guards `outer`.
        let (env, empty) = slot.outer.with_mut(|outer| unsafe {
            let outer = &mut *outer;
            let env = if outer.front().is_some_and(&is_wanted) { outer.pop_front() } else { None };
            (env, outer.is_empty())
        });
        let w = if empty { w & !(MSG | MSG_NOTIFIED) } else { w };
        slot.unlock(w & !LOCKED);
        env
    }
}

impl std::ops::Deref for Owner<'_> {
    type Target = Slot;

    #[inline(always)]
    fn deref(&self) -> &Slot {
        self.slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The runtime frees slots only after every process is gone; free what
        // a leftover incarnation still holds (e.g. a mailbox never closed).
        self.extras.with_mut(|e| {
            // SAFETY: `&mut self`: nobody else can reach the slot; a non-null
            // pointer came from Box::into_raw.
            unsafe {
                if !(*e).is_null() {
                    drop(Box::from_raw(*e));
                }
            }
        });
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.load();
        f.debug_struct("Slot").field("serial", &serial_of(w)).field("flags", &format_args!("{:#x}", w as u32)).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_small() {
        // The W2 budget is 256 bytes per waiting process, all included.
        assert!(std::mem::size_of::<Slot>() <= 192, "Slot is {} bytes", std::mem::size_of::<Slot>());
    }
}
