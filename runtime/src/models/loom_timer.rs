//! loom model of `send_after`'s cancel-versus-fire protocol
//! (`timer/send_after.rs`): the timer's worker calls `Pending::fire` while
//! another thread calls `Pending::cancel`.
//!
//! What the model checks (`loom_timer_fire_or_cancel`): exactly one of them
//! wins: `cancel` returns the message iff `fire` returns None; the winner
//! gets the Pid and the message it was armed with; the payload cell is
//! touched by the winner only (a loom `UnsafeCell`, so loom reports a race
//! otherwise); afterwards the cell is no longer pending; and the message is
//! dropped exactly once, counted by its `Drop` (including the drop of the
//! `Pending` itself, which must find the payload gone).

use crate::envelope::Envelope;
use crate::pid::Pid;
use crate::sync::{thread, Arc, AtomicU32, Ordering};
use crate::timer::send_after::Pending;

/// A message that counts how many times it is dropped.
#[derive(Debug)]
struct Counted(Arc<AtomicU32>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Takes the winner's payload apart: checks the Pid, drops the message as
/// the firer (after delivering) or the canceller would. Returns whether it won.
fn dispose(won: Option<(Pid, Envelope)>, pid: Pid) -> bool {
    match won {
        Some((to, env)) => {
            assert_eq!(to, pid);
            drop(env.downcast::<Counted>().expect("the armed message"));
            true
        }
        None => false,
    }
}

#[test]
fn loom_timer_fire_or_cancel() {
    loom::model(|| {
        let drops = Arc::new(AtomicU32::new(0));
        let pid = Pid::from_parts(0, 1, 2);
        let pending = Arc::new(Pending::new(pid, Envelope::new(Counted(drops.clone()))));
        let timer = {
            let pending = pending.clone();
            thread::spawn(move || dispose(pending.fire(), pid))
        };
        let canceller = {
            let pending = pending.clone();
            thread::spawn(move || dispose(pending.cancel(), pid))
        };
        let fired = timer.join().unwrap();
        let cancelled = canceller.join().unwrap();
        assert!(fired != cancelled, "exactly one of fire and cancel wins (fired {fired}, cancelled {cancelled})");
        assert!(!pending.is_pending());
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the winner drops the message");
        drop(pending);
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the message is dropped exactly once");
    });
}
