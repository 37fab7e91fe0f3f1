//! loom models of the call protocol (`call.rs`) for a server of the
//! caller's runtime: the caller's record without a lock and the server's
//! monitor and request in one lock section (`call::start_local`), the reply
//! and the monitor's `Down` each accepted only while the caller awaits the
//! call, which ends the wait (`awaits::ReplyOf` as the delivery's veto, as
//! `ReplyTo::reply` and `call::fire_calls` use it), and the caller giving up
//! (`call::give_up`), racing the server's reply and its exit.
//!
//! They run over the [`World`] of `loom_link.rs`: W (process 0) calls S
//! (process 1). The request and the reply are the model's own message types
//! ([`CallRequest`], [`CallReply`]); W's receive is `remove_first_or` on its
//! own slot (what a receive that finds the message does), and W's timeout
//! is a receive that found nothing. Exits are the runtime's
//! (`link::announce_exit`: S's monitors, those of the calls made to it
//! included, fire).
//!
//! # What the models check
//!
//! - *Reply versus timeout* (`loom_call_reply_racing_timeout`): S replies
//!   while W looks for the reply once and ends the call (`Replied` if it was
//!   there, else a timeout and `give_up`). A reply W did not take in its
//!   receive is never received afterwards nor left in its mailbox (turned
//!   away, or taken out by `give_up`); if W took it, S's delivery was
//!   accepted. The call's monitor, left on S, can no longer fire.
//! - *Reply, then exit, versus the call's end*
//!   (`loom_call_server_exit_racing_finish`): S replies and exits (`boom`)
//!   while W takes the first of the reply and the call's `Down` (or
//!   nothing) and ends the call. W never takes the `Down` (the accepted
//!   reply ended the wait; a W that gave up first accepts neither), and
//!   after the call no reply and no `Down` of it is received or left.
//! - *Call versus exit* (`loom_call_start_racing_exit`): W starts the call
//!   while S's owner ends S. `start_local` says S was alive exactly when the
//!   request reached S (left unreceived at its exit) and exactly when S's
//!   exit took the call's monitor; if it was, W's call ends with S's `Down`
//!   (received, or taken out by `give_up` after a timeout); if not, with
//!   `NoProc` at once. Nothing of the call is left in W's mailbox.
//!
//! Every model also checks that W ends awaiting nothing (its slot's record
//! and its extras' list) and that a call monitor left on a live S is one
//! that can no longer fire, and that once W has found the reply or the
//! `Down`, its read of its awaits word without the lock no longer finds the
//! tag there (what lets a wait skip its mailbox while the word holds the
//! tag: `call.rs`, "The wait").

use super::loom_link::{reference, spawn_with, CallReply, CallRequest, Msg, World};
use crate::awaits::ReplyOf;
use crate::call::{give_up, start_local, Outcome};
use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::Processes;
use crate::monitor::{Down, MonitorRef};
use crate::receive::remove_first_or;
use crate::slot::Owner;
use crate::sync::Arc;

const TAG: u64 = 7;

fn is_reply(env: &Envelope) -> bool {
    env.peek::<CallReply>().is_some_and(|r| r.0 == TAG)
}

fn is_down_of(reference: MonitorRef) -> impl Fn(&Envelope) -> bool {
    move |env: &Envelope| env.peek::<Down>().is_some_and(|d| d.reference == reference)
}

/// S's reply to W (as `ReplyTo::reply`): whether it was accepted.
fn reply(world: &World) -> bool {
    !world.deliver_unless(world.pid(0), Envelope::new(CallReply(TAG)), ReplyOf(TAG))
}

/// W, which the caller owns: one receive of the reply or the call's `Down`
/// (None: a timeout), then the end of the call.
fn receive_and_finish(world: &World, reference: MonitorRef) -> Outcome {
    // SAFETY: the caller owns W (BUSY) and holds no other `Owner` of it.
    let own = &mut unsafe { Owner::new(world.slot(0)) };
    let is_down = is_down_of(reference);
    let is_ours = |env: &Envelope| is_reply(env) || is_down(env);
    let got = remove_first_or(own, is_ours, |_| {});
    // What W found was delivered by taking the tag, before W's look: W's read
    // of its awaits word, after the look, cannot still find the tag there.
    assert!(got.is_none() || !own.awaits().holds(TAG), "W found a message of the call while the word held its tag");
    match got {
        Some(env) if is_reply(&env) => Outcome::Replied,
        Some(_) => Outcome::Down,
        None => {
            give_up(own, world.pid(0).serial(), TAG, is_ours);
            Outcome::Failed
        }
    }
}

/// W's messages after the models' threads are joined: received after its
/// first poll, and left in its mailbox.
fn after_the_call(world: &World) -> Vec<Msg> {
    let mut msgs = world.state(0).received;
    msgs.extend(world.take_mailbox(0));
    msgs
}

/// W awaits nothing and suppressed nothing; S (if alive) keeps no call
/// monitor that could still fire.
fn check_clean(world: &World, s_alive: bool) {
    let w = world.extras(0);
    assert!(w.awaits_nothing && w.awaiting.is_empty() && w.suppressed.is_empty(), "W's extras: {w:?}");
    if s_alive {
        let s = world.extras(1);
        let live: Vec<_> = s.calls.iter().filter(|c| world.may_await(c)).collect();
        assert!(live.is_empty() && s.monitors.is_empty(), "a monitor on S can still fire: {s:?}");
    }
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
        check_clean(&world, true);
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

        // S replied before exiting: the reply, accepted, ended the wait, or W
        // had given up and accepted neither.
        assert_ne!(outcome, Outcome::Down, "W took the Down of a call that was answered");
        let late: Vec<Msg> = after_the_call(&world)
            .into_iter()
            .filter(|m| matches!(m, Msg::Reply(_)) || matches!(m, Msg::Down(d) if d.reference == reference))
            .collect();
        assert!(late.is_empty(), "{outcome:?}: W got a message of the call after it ended: {late:?}");
        let s_ended = world.state(1).ended.expect("S ended");
        assert!(s_ended.calls.contains(&reference), "S's exit did not take the call's monitor");
        check_clean(&world, false);
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
                    // NoProc at once: nothing was delivered (`PendingCall::finish`).
                    let is_ours = |env: &Envelope| is_reply(env) || is_down_of(reference)(env);
                    // SAFETY: we own W (BUSY) and hold no other `Owner` of it.
                    give_up(&mut unsafe { Owner::new(w.slot(0)) }, w.pid(0).serial(), TAG, is_ours);
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
        assert_eq!(alive, s_ended.calls.contains(&reference), "S's exit took the call's monitor iff S was alive");
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
        check_clean(&world, false);
    });
}
