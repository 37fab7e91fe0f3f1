//! loom models of exit versus send (`slot.rs`, steps 1 and 5, and
//! `Shared::end_incarnation`): a message never reaches the next incarnation.
//!
//! The owner ends its incarnation as `end_incarnation` does (take the inner
//! queue, then `transition_to_exited`) and then reuses the slot
//! (`transition_to_live`, which hands out the next serial), as a worker that
//! frees a slot into its cache and spawns into it again.
//!
//! What the models check:
//! - *Exit versus send* (`loom_exit_send_racing_exit`): a sender delivers
//!   to the old serial while the owner exits and reuses the slot. The
//!   message is either queued for the old incarnation (and then found in
//!   what it left behind: its inner queue or `Remains::outer`), or handed
//!   back as `Delivery::Dead`; it is never found in the new incarnation's
//!   queues, and it is never both or neither.
//! - *Reuse versus stale send* (`loom_exit_stale_send_racing_reuse`): on a
//!   slot whose incarnation has exited, a sender racing with the reuse
//!   always gets `Dead` for the old serial, and a `wake` with the old serial
//!   does nothing; a send to the new serial is either `Dead` (not live yet)
//!   or queued in the new incarnation.

use crate::envelope::Envelope;
use crate::slot::{Delivery, Owner, Slot, Wake, BUSY, LIVE};
use crate::sync::{thread, Arc};

/// Ends the incarnation the caller owns, as `Shared::end_incarnation` does;
/// returns the `u32`s it left behind (inner queue first, then outer).
///
/// # Safety
/// The caller owns the process (`BUSY`).
unsafe fn end_incarnation(slot: &Slot) -> Vec<u32> {
    // SAFETY: the caller owns the process.
    let mut inner = unsafe { Owner::new(slot) }.with_inner(|inner| inner.take());
    // SAFETY: as above.
    let mut remains = unsafe { slot.transition_to_exited() };
    assert_eq!(remains.flags & (LIVE | BUSY), LIVE | BUSY, "the owner ended a live incarnation");
    let mut left = Vec::new();
    while let Some(env) = inner.pop_front() {
        left.push(env.downcast::<u32>().expect("only u32s are sent"));
    }
    while let Some(env) = remains.outer.pop_front() {
        left.push(env.downcast::<u32>().expect("only u32s are sent"));
    }
    left
}

/// What the incarnation that owns `slot` has in its mailbox, taken out.
///
/// # Safety
/// The caller owns the process (`BUSY`), or every other thread is joined.
unsafe fn take_mailbox(slot: &Slot) -> Vec<u32> {
    // SAFETY: the caller owns the process.
    let mut own = unsafe { Owner::new(slot) };
    own.drain();
    let mut queue = own.with_inner(|inner| inner.take());
    let mut msgs = Vec::new();
    while let Some(env) = queue.pop_front() {
        msgs.push(env.downcast::<u32>().expect("only u32s are sent"));
    }
    msgs
}

/// Whether `delivery` queued the message; panics on anything but
/// `Queued(Wake::None)` (the target is owned) and `Dead`.
fn queued(delivery: Delivery) -> bool {
    match delivery {
        Delivery::Queued(Wake::None) => true,
        Delivery::Dead(env) => {
            drop(env);
            false
        }
        other => panic!("unexpected delivery to an owned process: {other:?}"),
    }
}

#[test]
fn loom_exit_send_racing_exit() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        // SAFETY: a new slot is free; this thread, then `owner`, owns it.
        let old = unsafe { slot.transition_to_live(|_| None, false) };
        let sender = {
            let slot = slot.clone();
            thread::spawn(move || queued(slot.deliver(old, Envelope::new(7u32))))
        };
        let owner = {
            let slot = slot.clone();
            thread::spawn(move || {
                // SAFETY: we own the process (BUSY since spawn).
                let left = unsafe { end_incarnation(&slot) };
                // SAFETY: the slot is free: we just ended its incarnation.
                let new = unsafe { slot.transition_to_live(|_| None, false) };
                assert_eq!(new, old + 1, "reuse hands out the next serial");
                // SAFETY: we own the new incarnation (BUSY).
                let new_msgs = unsafe { take_mailbox(&slot) };
                (left, new, new_msgs)
            })
        };
        let queued = sender.join().unwrap();
        let (left, new, mut new_msgs) = owner.join().unwrap();
        // Anything that arrived after the owner looked.
        // SAFETY: every other thread is joined.
        new_msgs.extend(unsafe { take_mailbox(&slot) });
        assert!(new_msgs.is_empty(), "a message to serial {old} reached serial {new}: {new_msgs:?}");
        if queued {
            assert_eq!(left, [7], "a queued message must be left to the old incarnation");
        } else {
            assert!(left.is_empty(), "a message handed back as Dead was also queued: {left:?}");
        }
    });
}

#[test]
fn loom_exit_stale_send_racing_reuse() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        // SAFETY: a new slot is free; this thread owns it.
        let old = unsafe { slot.transition_to_live(|_| None, false) };
        // SAFETY: we own the process.
        assert!(unsafe { end_incarnation(&slot) }.is_empty());
        let new = old + 1;
        let sender = {
            let slot = slot.clone();
            thread::spawn(move || {
                assert!(!queued(slot.deliver(old, Envelope::new(1u32))), "a send to the old serial was queued");
                assert!(matches!(slot.wake(old), Wake::None), "a wake of the old serial did something");
                queued(slot.deliver(new, Envelope::new(2u32)))
            })
        };
        let owner = {
            let slot = slot.clone();
            thread::spawn(move || {
                // SAFETY: the slot is free: its incarnation has ended.
                let serial = unsafe { slot.transition_to_live(|_| None, false) };
                assert_eq!(serial, new, "reuse hands out the next serial");
                // SAFETY: we own the new incarnation (BUSY).
                unsafe { take_mailbox(&slot) }
            })
        };
        let second_queued = sender.join().unwrap();
        let mut new_msgs = owner.join().unwrap();
        // SAFETY: every other thread is joined.
        new_msgs.extend(unsafe { take_mailbox(&slot) });
        let expected: &[u32] = if second_queued { &[2] } else { &[] };
        assert_eq!(new_msgs, expected, "the new incarnation's mailbox");
    });
}
