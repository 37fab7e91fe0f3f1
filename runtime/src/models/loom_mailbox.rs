//! loom models of the mailbox protocol of `slot.rs`, steps 1-4: deliver
//! (including the hand-off into the inner queue of an idle process), wake,
//! receive, and `transition_to_idle`.
//!
//! Each model runs one process. Its "poll" receives every `u32` it can with
//! the runtime's own receive (`receive::scan_type`, which goes through
//! `drain` and `pop_front_if`), records them, and notes whether it saw the
//! event a waker announced; then the owner calls `transition_to_idle`, and
//! on `AfterPoll::Reschedule` polls again. Whichever thread is handed the
//! process (the initial `BUSY`, a `Wake::Schedule` from `deliver` or `wake`,
//! a `Reschedule`) polls it on its own thread, as the worker that dequeued
//! it would.
//!
//! What the models check:
//! - *No lost wake-up* (`loom_mailbox_no_lost_wakeup`): with an owner
//!   polling while a sender delivers, every message is received exactly
//!   once and in order, and at the end the process is idle (`BUSY` clear)
//!   with nothing left in its mailbox and no flag but `LIVE`.
//! - *Never owned twice* (`loom_mailbox_never_owned_twice`): with two
//!   senders racing the owner, at most one thread owns the process at any
//!   time. An atomic counts owners (relaxed, so that it adds no
//!   happens-before edge of its own); and the process's state and the slot's
//!   inner queue are loom `UnsafeCell`s, so loom reports a data race if two
//!   owners overlap or ownership passes without a happens-before edge.
//! - *Per-sender order* (`loom_mailbox_two_senders_keep_order`): two senders,
//!   two messages each, to an idle process: each sender's messages are
//!   received in the order it sent them, none lost or duplicated.
//! - *A wake is not lost* (`loom_mailbox_wake_not_lost`): a `wake(serial)`
//!   (a `Waker` or a timer) racing with the owner going idle leads to a poll
//!   that sees the event announced before the wake.
//!
//! Every model checks "never owned twice" and "nothing left behind" too.

use crate::envelope::Envelope;
use crate::receive::{scan_type, Scan};
use crate::slot::{AfterPoll, Delivery, Slot, Wake, BUSY, LIVE};
use crate::sync::{thread, Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// What the process's future keeps between polls; owned by the `BUSY` holder.
#[derive(Debug, Default)]
struct State {
    /// Every message received, in order.
    received: Vec<u32>,
    /// Whether a poll saw the event a waker announced.
    saw_event: bool,
    /// The pending receive's scan position (a `Recv` future keeps it).
    scan: Scan,
}

/// One process: its slot and its state.
struct Process {
    slot: Slot,
    serial: u32,
    /// How many threads currently act as the owner (at most one).
    owners: AtomicUsize,
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
    fn spawn() -> Process {
        let slot = Slot::new();
        // SAFETY: a new slot is free: nobody owns it.
        let serial = unsafe { slot.transition_to_live(None, false) };
        Process {
            slot,
            serial,
            owners: AtomicUsize::new(0),
            state: UnsafeCell::new(State::default()),
            event: AtomicBool::new(false),
        }
    }

    /// A live process that has been polled once and is idle, waiting.
    fn spawn_idle() -> Process {
        let process = Process::spawn();
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
            self.poll();
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

    /// One poll: notes the event, receives every `u32` there is.
    fn poll(&self) {
        let saw_event = self.event.load(Ordering::Relaxed);
        self.state.with_mut(|state| {
            // SAFETY: we own the process, so its state is ours.
            let state = unsafe { &mut *state };
            state.saw_event |= saw_event;
            // SAFETY: we own the process (BUSY) and hold no part of its mailbox.
            while let Some(env) = unsafe { scan_type::<u32>(&self.slot, &mut state.scan) } {
                state.scan = Scan::default();
                state.received.push(env.downcast::<u32>().expect("scan_type matched a u32"));
            }
        });
    }

    /// Sends `msg` and, if handed the process, runs it.
    fn send(&self, msg: u32) {
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
    /// an empty mailbox, and returns its state.
    fn finish(&self) -> (Vec<u32>, bool) {
        assert_eq!(self.owners.load(Ordering::Relaxed), 0, "an owner never gave the process up");
        let word = self.slot.load();
        assert_eq!(word & BUSY, 0, "the process is not idle at the end");
        assert_eq!(word & 0xff, LIVE, "the process went idle with flags set: {word:#x}");
        assert_eq!(self.slot.mailbox_len(self.serial), Some(0), "a message was left in the mailbox");
        // SAFETY: every other thread has been joined, so nobody else owns the
        // process; the main thread stands in for its owner.
        let inner = unsafe { self.slot.with_inner(|inner| inner.queue.len()) };
        assert_eq!(inner, 0, "a message was left in the inner queue");
        self.state.with(|state| {
            // SAFETY: as above.
            let state = unsafe { &*state };
            (state.received.clone(), state.saw_event)
        })
    }
}

#[test]
fn loom_mailbox_no_lost_wakeup() {
    loom::model(|| {
        let process = Arc::new(Process::spawn());
        let owner = {
            let process = process.clone();
            thread::spawn(move || process.run())
        };
        let sender = {
            let process = process.clone();
            thread::spawn(move || {
                process.send(1);
                process.send(2);
            })
        };
        owner.join().unwrap();
        sender.join().unwrap();
        let (received, _) = process.finish();
        assert_eq!(received, [1, 2]);
    });
}

#[test]
fn loom_mailbox_never_owned_twice() {
    loom::model(|| {
        let process = Arc::new(Process::spawn());
        let owner = {
            let process = process.clone();
            thread::spawn(move || process.run())
        };
        let senders: Vec<_> = [1, 2]
            .into_iter()
            .map(|msg| {
                let process = process.clone();
                thread::spawn(move || process.send(msg))
            })
            .collect();
        owner.join().unwrap();
        for sender in senders {
            sender.join().unwrap();
        }
        let (mut received, _) = process.finish();
        received.sort_unstable();
        assert_eq!(received, [1, 2]);
    });
}

#[test]
fn loom_mailbox_two_senders_keep_order() {
    loom::model(|| {
        let process = Arc::new(Process::spawn_idle());
        // Sender `s` sends `10 * s + 1`, then `10 * s + 2`.
        let senders: Vec<_> = [1, 2]
            .into_iter()
            .map(|s| {
                let process = process.clone();
                thread::spawn(move || {
                    process.send(10 * s + 1);
                    process.send(10 * s + 2);
                })
            })
            .collect();
        for sender in senders {
            sender.join().unwrap();
        }
        let (received, _) = process.finish();
        for s in [1, 2] {
            let from_s: Vec<u32> = received.iter().copied().filter(|m| m / 10 == s).collect();
            assert_eq!(from_s, [10 * s + 1, 10 * s + 2], "sender {s}'s messages, all received: {received:?}");
        }
        assert_eq!(received.len(), 4, "{received:?}");
    });
}

#[test]
fn loom_mailbox_wake_not_lost() {
    loom::model(|| {
        let process = Arc::new(Process::spawn());
        let owner = {
            let process = process.clone();
            thread::spawn(move || process.run())
        };
        let waker = {
            let process = process.clone();
            thread::spawn(move || process.wake())
        };
        owner.join().unwrap();
        waker.join().unwrap();
        let (received, saw_event) = process.finish();
        assert!(received.is_empty());
        assert!(saw_event, "the wake was lost: no poll after it saw the event");
    });
}
