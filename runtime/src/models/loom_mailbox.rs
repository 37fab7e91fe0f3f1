//! loom models of the mailbox protocol of `slot.rs`, steps 1-4: deliver
//! (including the hand-off into the inner queue of an idle process), wake,
//! receive, and `transition_to_idle`.
//!
//! Each model runs one process. A poll notes whether it saw the event a
//! waker announced, then receives every message it can with the runtime's
//! own receive code, in one of three [`Style`]s:
//! - `Typed`: one `recv::<u32>()` at a time (`receive::scan_type`: the inner
//!   queue, then `pop_front_if`, then `drain`);
//! - `Any`: one `receive!` with a `u32` clause and a `u64` clause
//!   (`receive::scan`: the inner queue, then `drain`);
//! - `Both`: a `recv::<u32>()` and a `recv::<u64>()` pending side by side
//!   in the same poll, as `join!` or `select!` over two receives does.
//!
//! Then the owner calls `transition_to_idle`, and on `AfterPoll::Reschedule`
//! polls again. Whichever thread is handed the process (the initial `BUSY`,
//! a `Wake::Schedule` from `deliver` or `wake`, a `Reschedule`) polls it on
//! its own thread, as the worker that dequeued it would.
//!
//! What the models check:
//! - *No lost wake-up* (`loom_mailbox_no_lost_wakeup`): an owner polls while
//!   a sender delivers; every message is received exactly once, and at the
//!   end the process is idle (`BUSY` clear) with an empty mailbox and no
//!   flag but `LIVE`.
//! - *Never owned twice* (`loom_mailbox_never_owned_twice`): two threads race
//!   to take an idle process with sends and a wake, each possibly more than
//!   once; at most one thread owns it at any time. An atomic counts owners
//!   (relaxed, so it adds no happens-before edge of its own), and the
//!   process's state and the slot's inner queue are loom `UnsafeCell`s, so
//!   loom reports a data race if two owners overlap or if ownership passes
//!   from thread to thread without a happens-before edge.
//! - *Per-sender order* (`loom_mailbox_two_senders_keep_order`): two senders,
//!   two messages each, to an idle process: each sender's messages are
//!   received in the order it sent them, none lost or duplicated.
//! - *Order across the hand-off* (`loom_mailbox_order_kept_while_not_receiving`):
//!   the process receives nothing until it has been woken (it awaits a
//!   timer first), so it goes idle with messages in its outer queue; a later
//!   message must not overtake them through the hand-off into the inner
//!   queue.
//! - *A wake is not lost* (`loom_mailbox_wake_not_lost`): a `wake(serial)`
//!   (a `Waker` or a timer) racing with the owner going idle leads to a poll
//!   that sees the event announced before the wake.
//! - *Two receives in one poll* (`loom_mailbox_two_receives_in_one_poll`):
//!   the `Both` style, with one message that arrives between the two
//!   receives, is not left in the mailbox of an idle process. (This model
//!   found the lost wake-up that made `drain` stop clearing `MSG_NOTIFIED`.)
//!
//! Every model also checks "never owned twice" and "nothing left behind".
//!
//! # Why two threads
//!
//! At most two threads touch the slot at once (the main thread only sets up
//! and joins). The slot lock is a spin lock, and under loom a spinning
//! thread `yield_now`s; with two waiters and a preempted holder, loom may
//! schedule the two waiters in turn forever (a switch after a yield is not a
//! preemption, so the bound does not stop it) and the model fails with
//! "exceeded maximum number of branches" without having found anything.

use crate::envelope::Envelope;
use crate::receive::{scan, scan_type, PollBook, Scan};
use crate::slot::{AfterPoll, Delivery, Owner, Slot, Wake, BUSY, LIVE};
use crate::sync::{thread, Arc, AtomicBool, AtomicU32, Ordering, UnsafeCell};

/// How a process receives (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// `recv::<u32>()`, one at a time. Every message must be a `u32`.
    Typed,
    /// `receive!` with a `u32` clause and a `u64` clause.
    Any,
    /// `recv::<u32>()` and `recv::<u64>()` pending in the same poll.
    Both,
}

/// What the process's future keeps between polls; owned by the `BUSY` holder.
#[derive(Debug, Default)]
struct State {
    /// Every message received (`u32`s and `u64`s, widened), in order.
    received: Vec<u64>,
    /// Whether a poll saw the event a waker announced.
    saw_event: bool,
    /// The pending `u32` receive's (or the `receive!`'s) scan position.
    scan: Scan,
    /// The pending `u64` receive's scan position (`Style::Both`).
    scan_u64: Scan,
}

/// One process: its slot and its state.
struct Process {
    slot: Slot,
    serial: u32,
    style: Style,
    /// Whether the process receives only once it has seen the event (as a
    /// process that awaits a timer before its receive loop).
    waits_for_event: bool,
    /// How many threads currently act as the owner (at most one).
    owners: AtomicU32,
    /// The future's state: touched only by the owner.
    state: UnsafeCell<State>,
    /// Set by a waker before it calls `wake` (what a timer or an I/O source
    /// publishes before waking). Relaxed: only the slot protocol may make it
    /// visible to the next poll.
    event: AtomicBool,
}

// SAFETY: `state` is touched only by the owner of the process (the `BUSY`
// holder), which is exactly what the models check; the slot is `Sync`.
unsafe impl Sync for Process {}
// SAFETY: as above.
unsafe impl Send for Process {}

impl Process {
    /// A live process, owned (`BUSY`) by the calling thread.
    fn spawn(style: Style) -> Process {
        let slot = Slot::new();
        // SAFETY: a new slot is free: nobody owns it.
        let serial = unsafe { slot.transition_to_live(|_| None, false) };
        Process {
            slot,
            serial,
            style,
            waits_for_event: false,
            owners: AtomicU32::new(0),
            state: UnsafeCell::new(State::default()),
            event: AtomicBool::new(false),
        }
    }

    /// A live process that has been polled once and is idle, waiting.
    fn spawn_idle(style: Style, waits_for_event: bool) -> Process {
        let process = Process { waits_for_event, ..Process::spawn(style) };
        process.run();
        assert_eq!(process.slot.load() & BUSY, 0, "an empty mailbox lets the process go idle");
        process
    }

    /// The caller has just become the owner: counts it.
    fn become_owner(&self) {
        let before = self.owners.fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "the process is owned by two threads at once");
    }

    /// Runs the process on this thread. The caller has just become its owner
    /// (initial `BUSY`, or `Wake::Schedule`).
    fn run(&self) {
        self.become_owner();
        loop {
            let book = PollBook::default();
            self.poll(&book);
            if book.is_stale() {
                // As the worker does: a receive missed what a later one
                // moved inside, so poll again.
                self.slot.notify_self();
            }
            // Ownership ends inside `transition_to_idle` (or continues on
            // Reschedule): stop counting just before it.
            self.owners.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: we are the BUSY holder.
            match unsafe { self.slot.transition_to_idle() } {
                AfterPoll::Idle => return,
                AfterPoll::Reschedule => self.become_owner(),
            }
        }
    }

    /// One poll: notes the event, then receives until nothing matches.
    fn poll(&self, book: &PollBook) {
        let saw_event = self.event.load(Ordering::Relaxed);
        self.state.with_mut(|state| {
            // SAFETY: we own the process, so its state is ours.
            let state = unsafe { &mut *state };
            state.saw_event |= saw_event;
            if self.waits_for_event && !state.saw_event {
                return;
            }
            while let Some(msg) = self.receive(state, book) {
                state.received.push(msg);
            }
        });
    }

    /// One attempt of the receive(s) of `self.style`.
    fn receive(&self, state: &mut State, book: &PollBook) -> Option<u64> {
        let got = self.attempt(state, book);
        if got.is_none() {
            book.note_pending();
        }
        got
    }

    /// The receive(s) of `self.style`, once; `Both` notes its first receive
    /// pending before trying the second, as a `join!` would.
    fn attempt(&self, state: &mut State, book: &PollBook) -> Option<u64> {
        // SAFETY: we own the process (BUSY) and hold no other `Owner` of it.
        let own = &mut unsafe { Owner::new(&self.slot) };
        match self.style {
            Style::Typed => {
                let env = scan_type::<u32>(own, &mut state.scan, book, None)?;
                state.scan = Scan::default();
                Some(env.downcast::<u32>().expect("scan_type matched a u32").into())
            }
            Style::Any => {
                let matcher = |env: &mut Envelope| match () {
                    () if env.is::<u32>() => Some(0),
                    () if env.is::<u64>() => Some(1),
                    () => None,
                };
                let (clause, env) = scan(own, &mut state.scan, book, matcher)?;
                state.scan = Scan::default();
                Some(match clause {
                    0 => env.downcast::<u32>().expect("clause 0 matched a u32").into(),
                    _ => env.downcast::<u64>().expect("clause 1 matched a u64"),
                })
            }
            Style::Both => {
                if let Some(env) = scan_type::<u32>(own, &mut state.scan, book, None) {
                    state.scan = Scan::default();
                    return Some(env.downcast::<u32>().expect("scan_type matched a u32").into());
                }
                book.note_pending();
                let env = scan_type::<u64>(own, &mut state.scan_u64, book, None)?;
                state.scan_u64 = Scan::default();
                Some(env.downcast::<u64>().expect("scan_type matched a u64"))
            }
        }
    }

    /// Sends `msg` and, if handed the process, runs it.
    fn send<T: Send + 'static>(&self, msg: T) {
        match self.slot.deliver(self.serial, Envelope::new(msg)) {
            Delivery::Queued(Wake::Schedule) => self.run(),
            Delivery::Queued(Wake::None) => {}
            Delivery::Queued(Wake::Waker(_)) => panic!("not an external mailbox"),
            Delivery::Dead(_) => panic!("the process is alive"),
            Delivery::Refused(_) => panic!("no veto was given"),
        }
    }

    /// Announces the event, wakes the process and, if handed it, runs it.
    fn wake(&self) {
        self.event.store(true, Ordering::Relaxed);
        match self.slot.wake(self.serial) {
            Wake::Schedule => self.run(),
            Wake::None => {}
            Wake::Waker(_) => panic!("not an external mailbox"),
        }
    }

    /// After every thread has been joined: checks the process is idle with
    /// an empty mailbox, and returns what it received and whether it saw
    /// the event.
    fn finish(&self) -> (Vec<u64>, bool) {
        assert_eq!(self.owners.load(Ordering::Relaxed), 0, "an owner never gave the process up");
        let word = self.slot.load();
        assert_eq!(word & BUSY, 0, "the process is not idle at the end");
        assert_eq!(word & 0xff, LIVE, "the process went idle with flags set: {word:#x}");
        // SAFETY: every other thread has been joined, so nobody else owns the
        // process; the main thread stands in for its owner.
        let inner = unsafe { Owner::new(&self.slot) }.inner_len();
        assert_eq!(inner, 0, "the process went idle with a message in its inner queue");
        assert_eq!(self.slot.mailbox_len(self.serial), Some(0), "the process went idle with a message in its mailbox");
        self.state.with(|state| {
            // SAFETY: as above.
            let state = unsafe { &*state };
            (state.received.clone(), state.saw_event)
        })
    }
}

/// Runs `f` on a new thread with its own handle to `process`.
fn spawn_with(process: &Arc<Process>, f: impl FnOnce(&Process) + Send + 'static) -> thread::JoinHandle<()> {
    let process = process.clone();
    thread::spawn(move || f(&process))
}

/// The messages of `received` that `sender` sent (`10 * sender + seq`).
fn sent_by(received: &[u64], sender: u64) -> Vec<u64> {
    received.iter().copied().filter(|m| m / 10 == sender).collect()
}

#[test]
fn loom_mailbox_no_lost_wakeup() {
    for style in [Style::Typed, Style::Any] {
        loom::model(move || {
            let process = Arc::new(Process::spawn(style));
            let owner = spawn_with(&process, Process::run);
            let sender = spawn_with(&process, move |p| {
                if style == Style::Typed {
                    p.send(1u32);
                } else {
                    p.send(1u64);
                }
                p.send(2u32);
            });
            owner.join().unwrap();
            sender.join().unwrap();
            let (mut received, _) = process.finish();
            received.sort_unstable();
            assert_eq!(received, [1, 2], "{style:?}: each message received exactly once");
        });
    }
}

#[test]
fn loom_mailbox_never_owned_twice() {
    for style in [Style::Typed, Style::Any] {
        loom::model(move || {
            let process = Arc::new(Process::spawn_idle(style, false));
            let first = spawn_with(&process, move |p| {
                if style == Style::Typed {
                    p.send(1u32);
                } else {
                    p.send(1u64);
                }
                p.wake();
            });
            let second = spawn_with(&process, |p| p.send(2u32));
            first.join().unwrap();
            second.join().unwrap();
            let (mut received, saw_event) = process.finish();
            received.sort_unstable();
            assert_eq!(received, [1, 2], "{style:?}: each message received exactly once");
            assert!(saw_event, "{style:?}: the wake was lost: no poll after it saw the event");
        });
    }
}

#[test]
fn loom_mailbox_two_senders_keep_order() {
    for style in [Style::Typed, Style::Any] {
        loom::model(move || {
            let process = Arc::new(Process::spawn_idle(style, false));
            let senders: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|s| {
                    spawn_with(&process, move |p| {
                        p.send(10 * s + 1);
                        p.send(10 * s + 2);
                    })
                })
                .collect();
            for sender in senders {
                sender.join().unwrap();
            }
            let (received, _) = process.finish();
            assert_eq!(received.len(), 4, "{style:?}: each message received exactly once: {received:?}");
            for s in [1, 2] {
                assert_eq!(
                    sent_by(&received, s),
                    [10 * s + 1, 10 * s + 2],
                    "{style:?}: sender {s}'s order: {received:?}"
                );
            }
        });
    }
}

#[test]
fn loom_mailbox_order_kept_while_not_receiving() {
    for style in [Style::Typed, Style::Any] {
        loom::model(move || {
            let process = Arc::new(Process::spawn_idle(style, true));
            // The bad case: 11 lands in the outer queue while `other` owns
            // the process, which then goes idle with it there; 12 must not
            // be handed to the inner queue ahead of it.
            let sender = spawn_with(&process, |p| {
                p.send(11u32);
                p.send(12u32);
                p.wake();
            });
            let other = spawn_with(&process, |p| p.send(21u32));
            sender.join().unwrap();
            other.join().unwrap();
            let (received, saw_event) = process.finish();
            assert!(saw_event, "{style:?}: the wake was lost: no poll after it saw the event");
            assert_eq!(received.len(), 3, "{style:?}: each message received exactly once: {received:?}");
            assert_eq!(sent_by(&received, 1), [11, 12], "{style:?}: sender 1's order: {received:?}");
        });
    }
}

#[test]
fn loom_mailbox_wake_not_lost() {
    loom::model(|| {
        let process = Arc::new(Process::spawn(Style::Typed));
        let owner = spawn_with(&process, Process::run);
        let waker = spawn_with(&process, Process::wake);
        owner.join().unwrap();
        waker.join().unwrap();
        let (received, saw_event) = process.finish();
        assert!(received.is_empty());
        assert!(saw_event, "the wake was lost: no poll after it saw the event");
    });
}

#[test]
fn loom_mailbox_two_receives_in_one_poll() {
    loom::model(|| {
        let process = Arc::new(Process::spawn(Style::Both));
        let owner = spawn_with(&process, Process::run);
        let sender = spawn_with(&process, |p| p.send(1u32));
        owner.join().unwrap();
        sender.join().unwrap();
        let (received, _) = process.finish();
        assert_eq!(received, [1]);
    });
}
