//! Exit signals (Erlang's `exit/2`, and what links send when a process
//! dies) and `trap_exit`.
//!
//! # What a signal does
//!
//! Decided under the target's slot lock (`slot.rs`, step 5), in this order:
//!
//! 1. A signal that came *through a link* counts only if the target still
//!    holds that link; the link is removed as the signal is taken (it died
//!    with its other end). A link removed by `unlink` thus has no effect
//!    afterwards, and a link and an exit that race give exactly one signal.
//! 2. `Kill` sent with [`exit`] cannot be trapped: the target exits with
//!    reason `Killed`. (`Kill` arriving through a link — a process that
//!    itself exited with reason `Kill` — is an ordinary reason.)
//! 3. A process that traps exits receives the signal as an [`Exit`]
//!    message. (An external [`Mailbox`](crate::Mailbox) always does: it is
//!    not a process and cannot be ended.)
//! 4. `Normal` from another process is ignored; `Normal` from the process
//!    itself ends it.
//! 5. Anything else ends the process with the signal's reason.
//!
//! Ending a process is not instantaneous: the reason is recorded and the
//! process woken, and its worker ends it instead of polling it again. A
//! process waiting in a receive (or any `.await`) is ended at once; a
//! process in a loop that never awaits only at its next `.await` — where
//! Erlang would preempt it. This is the one place where krarup's
//! cooperative processes show.

use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::scheduler::worker::with_current;
use crate::send::with_runtime_of;
use crate::slot::{Extras, SignalAction, Wake, EXTERNAL, TRAP_EXIT};

/// An exit signal received as a message by a process that traps exits
/// (Erlang's `{'EXIT', From, Reason}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exit {
    /// The process the signal came from (for a link: the one that died).
    pub from: Pid,
    /// Why.
    pub reason: ExitReason,
}

/// How a signal travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Sent with [`exit`].
    Exit,
    /// Sent by a dying process to the processes linked to it.
    Link,
}

/// The policy of the module docs, for a signal from `from` to `target`.
pub(crate) fn decide(
    target: Pid,
    from: Pid,
    reason: &ExitReason,
    via: Via,
    word: u64,
    extras: &mut Extras,
) -> SignalAction {
    if via == Via::Link {
        match extras.links.iter().position(|&p| p == from) {
            Some(at) => {
                extras.links.swap_remove(at);
            }
            None => return SignalAction::Ignore,
        }
    }
    let untrappable = via == Via::Exit && *reason == ExitReason::Kill;
    if word & EXTERNAL != 0 || (word & TRAP_EXIT != 0 && !untrappable) {
        return SignalAction::Deliver(Envelope::new(Exit { from, reason: reason.clone() }));
    }
    if untrappable {
        return SignalAction::Exit(ExitReason::Killed);
    }
    if *reason == ExitReason::Normal && from != target {
        return SignalAction::Ignore;
    }
    SignalAction::Exit(reason.clone())
}

/// Sends an exit signal from `from` to `to` (any thread; a dead or unknown
/// target ignores it).
pub(crate) fn send_signal(to: Pid, from: Pid, reason: &ExitReason, via: Via) {
    with_runtime_of(to, |shared| {
        let Some(slot) = shared.table.get(to.index()) else { return };
        match slot.signal(to.serial(), |word, extras| decide(to, from, reason, via, word, extras)) {
            None | Some(Wake::None) => {}
            Some(Wake::Schedule) => shared.schedule(to.index()),
            Some(Wake::Waker(waker)) => waker.wake(),
        }
    });
}

/// Sends an exit signal with `reason` to `pid` (Erlang's `exit/2`).
///
/// See the module documentation of what it does to the target: `Kill`
/// always ends it (reason `Killed`); a process that traps exits gets an
/// [`Exit`] message instead; `Normal` is ignored unless sent to oneself.
///
/// # Panics
/// If called outside a krarup process (the signal needs a sender).
///
/// # Examples
///
/// ```
/// use krarup_runtime::{exit, monitor, recv, spawn, Down, ExitReason, Runtime};
///
/// let rt = Runtime::new();
/// let reason = rt.block_on(async {
///     let victim = spawn(async { krarup_runtime::recv::<u32>().await; });
///     monitor(victim);
///     exit(victim, ExitReason::Kill);
///     recv::<Down>().await.reason
/// });
/// assert_eq!(reason, ExitReason::Killed);
/// ```
pub fn exit(pid: Pid, reason: ExitReason) {
    let from =
        with_current("exit", |worker, current, _| Pid::from_parts(worker.shared.node, current.index, current.serial));
    if crate::dist::is_remote(pid) {
        crate::dist::exit_remote(from, pid, &reason, Via::Exit);
    } else {
        send_signal(pid, from, &reason, Via::Exit);
    }
}

/// Makes the calling process trap exits (`true`) or not (Erlang's
/// `process_flag(trap_exit, ...)`); returns the previous setting.
///
/// A process that traps exits receives exit signals (from links, or sent
/// with [`exit`]) as [`Exit`] messages instead of dying — except `Kill`
/// sent with [`exit`], which cannot be trapped.
///
/// # Panics
/// If called outside a krarup process.
pub fn trap_exit(on: bool) -> bool {
    with_current("trap_exit", |_, current, slot| slot.swap_flag(current.serial, TRAP_EXIT, on).unwrap_or(false))
}
