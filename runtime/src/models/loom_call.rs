//! loom models of the call protocol (`call.rs`) for a server of the
//! caller's runtime: the caller's record and the server's monitor and
//! request in one lock section (`call::start_local`), the reply accepted
//! only while the caller awaits it, which ends the wait
//! (`call::stop_awaiting` as the delivery's veto, as `ReplyTo::send` does),
//! and the end of the call (`call::finish_local`), racing the server's reply
//! and its exit.
//!
//! They run over the [`World`] of `loom_link.rs`: W (process 0) calls S
//! (process 1). The request and the reply are the model's own message types
//! ([`CallRequest`], [`CallReply`]); W's receive is `remove_first_or` on its
//! own slot (what a receive that finds the message does), and W's timeout
//! is a receive that found nothing. Exits are the runtime's
//! (`link::announce_exit`: the call monitors of an exiting caller leave
//! their servers; the server's monitors fire).
//!
//! # What the models check
//!
//! - *Reply versus timeout* (`loom_call_reply_racing_timeout`): S replies
//!   while W looks for the reply once and ends the call (`Replied` if it was
//!   there, else a timeout). A reply W did not take in its receive is never
//!   received afterwards nor left in its mailbox (turned away, or taken out
//!   by `finish_local`); if W took it, S's delivery was accepted.
//! - *Reply, then exit, versus the call's end*
//!   (`loom_call_server_exit_racing_finish`): S replies and exits (`boom`)
//!   while W takes the first of the reply and the monitor's `Down` (or
//!   nothing) and ends the call. After `finish_local`, no reply and no `Down`
//!   of the call is received or left; S's exit fired the call's monitor
//!   exactly when `finish_local` did not remove it first, and then its
//!   `Down` was W's outcome, taken out, or turned away (suppressed).
//! - *Call versus exit* (`loom_call_start_racing_exit`): W starts the call
//!   while S's owner ends S. `start_local` says S was alive exactly when the
//!   request reached S (left unreceived at its exit); if it was, S's exit
//!   fired the call's monitor unless W's timeout removed it first, and W's
//!   call ends with S's `Down` (received, or taken out, or turned away after
//!   a timeout); if not, with `NoProc` at once. Nothing of the call is left
//!   in W's mailbox.
//!
//! Every model also checks that W's `awaiting` and `suppressed` lists end
//! empty and that no monitor of the call is left on a live S.

use super::loom_link::{reference, spawn_with, CallReply, CallRequest, Msg, World};
use crate::call::{finish_local, start_local, stop_awaiting, Outcome};
use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::Processes;
use crate::monitor::{Down, MonitorRef};
use crate::receive::remove_first_or;
use crate::sync::Arc;

const TAG: u64 = 7;

fn is_reply(env: &Envelope) -> bool {
    env.peek::<CallReply>().is_some_and(|r| r.0 == TAG)
}

fn is_down_of(reference: MonitorRef) -> impl Fn(&Envelope) -> bool {
    move |env: &Envelope| env.peek::<Down>().is_some_and(|d| d.reference == reference)
}

/// S's reply to W (as `ReplyTo::send`): whether it was accepted.
fn reply(world: &World) -> bool {
    !world.deliver_unless(world.pid(0), Envelope::new(CallReply(TAG)), |e| !stop_awaiting(e, TAG))
}

/// W, which the caller owns: one receive of the first message `wanted`
/// accepts (None: a timeout), then the end of the call with the outcome.
fn receive_and_finish(world: &World, reference: MonitorRef) -> Outcome {
    let own = world.slot(0);
    let is_down = is_down_of(reference);
    // SAFETY: the caller owns W (BUSY).
    let got = unsafe { remove_first_or(own, |env| is_reply(env) || is_down(env), |_| {}) };
    let outcome = match got {
        Some(env) if is_reply(&env) => Outcome::Replied,
        Some(_) => Outcome::Down,
        None => Outcome::Failed,
    };
    // SAFETY: as above; `own` is W's slot.
    unsafe { finish_local(world, Some(own), reference, outcome, is_reply) };
    outcome
}

/// W's messages after the models' threads are joined: received after its
/// first poll, and left in its mailbox.
fn after_the_call(world: &World) -> Vec<Msg> {
    let mut msgs = world.state(0).received;
    msgs.extend(world.take_mailbox(0));
    msgs
}

/// W's extras end clean: no call awaited, no `Down` suppressed.
fn check_caller_clean(world: &World) {
    let left = world.extras(0);
    assert!(left.awaiting.is_empty() && left.suppressed.is_empty(), "W's extras: {left:?}");
}

fn boom() -> ExitReason {
    ExitReason::Error("boom".into())
}

/// W (process 0) has started a call to S (process 1): the request and the
/// call's monitor are on S.
fn call_started() -> (Arc<World>, MonitorRef) {
    let world = Arc::new(World::new(&[false, false]));
    let reference = reference(TAG, world.pid(1), world.pid(0));
    assert!(start_local(&*world, world.slot(0), reference, Envelope::new(CallRequest(TAG))), "S is alive at setup");
    (world, reference)
}

/// W's side of the call: one poll that receives and finishes it.
fn await_reply(world: &World, reference: MonitorRef) -> Outcome {
    let mut outcome = None;
    world.run_with(0, |w| {
        outcome = Some(receive_and_finish(w, reference));
        None
    });
    outcome.expect("W's first poll ran")
}

#[test]
fn loom_call_reply_racing_timeout() {
    loom::model(|| {
        let (world, reference) = call_started();
        let caller = spawn_with(&world, move |w| await_reply(w, reference));
        let server = spawn_with(&world, |w| {
            let mut accepted = None;
            w.run_with(1, |w| {
                accepted = Some(reply(w));
                None
            });
            accepted.expect("S's first poll ran")
        });
        let outcome = caller.join().unwrap();
        let accepted = server.join().unwrap();

        assert_ne!(outcome, Outcome::Down, "S did not exit");
        if outcome == Outcome::Replied {
            assert!(accepted, "W took a reply that was turned away");
        }
        let late: Vec<Msg> = after_the_call(&world).into_iter().filter(|m| matches!(m, Msg::Reply(_))).collect();
        assert!(late.is_empty(), "{outcome:?}: a reply reached W after the call ended: {late:?}");
        check_caller_clean(&world);
        let s = world.extras(1);
        assert!(!s.monitors.contains(&reference), "the call's monitor is left on S: {s:?}");
        assert_eq!(world.state(1).received, vec![Msg::Request(CallRequest(TAG))], "S got the request once");
    });
}

#[test]
fn loom_call_server_exit_racing_finish() {
    loom::model(|| {
        let (world, reference) = call_started();
        let caller = spawn_with(&world, move |w| await_reply(w, reference));
        let server = spawn_with(&world, |w| {
            w.run_with(1, |w| {
                reply(w);
                Some(boom())
            })
        });
        let outcome = caller.join().unwrap();
        server.join().unwrap();

        let late: Vec<Msg> = after_the_call(&world)
            .into_iter()
            .filter(|m| matches!(m, Msg::Reply(_)) || matches!(m, Msg::Down(d) if d.reference == reference))
            .collect();
        assert!(late.is_empty(), "{outcome:?}: W got a message of the call after it ended: {late:?}");
        let s_ended = world.state(1).ended.expect("S ended");
        let fired = s_ended.monitors.contains(&reference);
        if outcome == Outcome::Down {
            assert!(fired, "W received a Down that S's exit did not send");
        }
        // S replied before exiting: W finds the reply before any Down.
        assert_ne!(outcome, Outcome::Down, "the Down overtook the reply");
        if !fired {
            assert!(s_ended.refused.is_empty(), "a Down was turned away, none was sent: {:?}", s_ended.refused);
        }
        check_caller_clean(&world);
    });
}

#[test]
fn loom_call_start_racing_exit() {
    loom::model(|| {
        let world = Arc::new(World::new(&[false, false]));
        let reference = reference(TAG, world.pid(1), world.pid(0));
        let caller = spawn_with(&world, move |w| {
            let mut result = None;
            w.run_with(0, |w| {
                let alive = start_local(w, w.slot(0), reference, Envelope::new(CallRequest(TAG)));
                let outcome = if alive {
                    receive_and_finish(w, reference)
                } else {
                    // NoProc at once: no monitor was added (`PendingCall::finish`).
                    // SAFETY: we own W (BUSY).
                    unsafe { finish_local(w, Some(w.slot(0)), reference, Outcome::Down, is_reply) };
                    Outcome::Down
                };
                result = Some((alive, outcome));
                None
            });
            result.expect("W's first poll ran")
        });
        let server = spawn_with(&world, |w| w.end(1, boom()));
        let (alive, outcome) = caller.join().unwrap();
        server.join().unwrap();

        let s_ended = world.state(1).ended.expect("S ended");
        let took = s_ended.monitors.contains(&reference);
        // S's exit took the call's monitor only if S was alive at the call,
        // and then unless W's timeout removed it first.
        assert!(alive || !took, "S's exit took the monitor of a call that found S dead");
        if alive && !took {
            assert_eq!(outcome, Outcome::Failed, "the monitor left S without firing, yet W got {outcome:?}");
        }
        assert_eq!(
            alive,
            s_ended.left.contains(&Msg::Request(CallRequest(TAG))),
            "the request reached S exactly when S was alive"
        );
        assert_ne!(outcome, Outcome::Replied, "S never replied");
        let late: Vec<Msg> = after_the_call(&world)
            .into_iter()
            .filter(|m| matches!(m, Msg::Down(d) if d.reference == reference))
            .collect();
        assert!(late.is_empty(), "{outcome:?}: W got the call's Down after it ended: {late:?}");
        check_caller_clean(&world);
    });
}
