//! loom models of the link protocol (`link.rs`: `link_between`,
//! `unlink_between`, `fire_links`) over the signal policy (`signal.rs`,
//! `decide`) and the slot's step 5 and 6 (`Slot::signal`,
//! `transition_to_exited`). The module also holds the [`World`] the monitor
//! models (`loom_monitor.rs`) use.
//!
//! # The world
//!
//! A [`World`] is a few processes (two here), each a real `Slot` made live with
//! `transition_to_live` (so each starts `BUSY`, owned by the main thread,
//! which hands it to the thread that runs it), whose Pid's index is its
//! place in the world. The world implements `link::Processes` — the trait
//! the runtime's `Table` implements — over these slots, so the models run
//! the link protocol's own code:
//! - `with_extras(pid, f)` is `slot.with_extras(pid.serial(), f)`;
//! - `signal(to, from, reason, via)` is `slot.signal(to.serial(), ..)` with
//!   `signal::decide` as the policy; if it returns `Wake::Schedule`, the
//!   signalling thread has become the owner and runs the process there and
//!   then, as the worker that dequeued it would.
//!
//! Running a process ([`World::run_with`]) is what `worker::run_process`
//! does: if `EXITING` is set, end it with `take_exit_reason()` instead of
//! polling it; else poll it (the model's action, if any, then receive every
//! message: `drain` and take the inner queue), then `transition_to_idle`,
//! and on `Reschedule` run it again. Ending a process ([`World::end`]) is
//! `end_incarnation` and `Shared::after_exit`: take the inner queue,
//! `transition_to_exited`, then `link::announce_exit` with the extras it
//! left: `monitor::unwatch` for the monitors it held (each removed from its
//! target's `monitors`), `fire_links` with its links, then `monitor::fire`
//! for its monitors (`deliver_unless` with the veto that forgets the
//! reference from the watcher's `watching` and turns the `Down` away if it
//! is `suppressed`) — the runtime's own code, over the world's `Processes`.
//!
//! Every change to a process's links made through `with_extras` (an add of
//! `link_between`, a removal of `unlink_between`) and every signal decided
//! for it are logged under its slot lock, in order ([`Event`]). Replaying
//! that log, the models check the *link accounting* of every process X:
//! X holds at most one link to a peer Y at a time (an add finds none); a
//! signal from Y through a link counts exactly when X holds the link, and
//! takes it; `unlink` removes a held link; and what the replay leaves is
//! exactly what X holds at the end (alive) or left at its exit (which then
//! fired it). So every link instance ends exactly once — taken by one
//! signal, unlinked, or fired by X's exit: no double signal, none ignored
//! while the link is held, and no link left behind.
//!
//! # What the models check
//!
//! - *Link versus exit* (`loom_link_racing_exit`): A links to B while B's
//!   owner ends B (reason `boom`). A gets exactly one signal: `boom` through
//!   the link if B's exit took A among its links (then A's second step of
//!   `link_between` reached B alive), else `NoProc` from its own
//!   `link_between`; never none, never two. Run for an A that traps exits
//!   (exactly one `Exit { from: B, reason }` message, received or in its
//!   mailbox; A ends alive, idle, without `EXITING` and without a link to
//!   B) and for one that does not (A is ended exactly once, with that
//!   reason, by whichever thread owns it when `EXITING` is seen, and its
//!   exit finds no link left to fire).
//! - *Two links, two exits* (`loom_link_both_linking_both_exiting`): A links
//!   to B and B to A, each then exits (reasons `a` and `b`), concurrently.
//!   Both end, each with its own reason or its peer's (an accepted signal
//!   before its first poll); the link accounting holds for both; every
//!   accepted signal came through a link from the peer, with the peer's
//!   reason or `NoProc`; a process that traps exits has exactly one `Exit`
//!   message (received or left in its mailbox at exit) per accepted signal.
//!   Note: one process can accept two signals from its peer, one per link
//!   *instance*: the peer's link is taken by the peer's exit signal, then the
//!   process's own `link_between` (same poll) adds a new one to the dead peer
//!   and gets `NoProc` for it — as in Erlang, where `link` to a dead process
//!   signals `noproc` whatever came before. The replay allows exactly that
//!   (the second link is added after the first was taken) and nothing more.
//! - *Unlink versus exit* (`loom_link_unlink_racing_exit`): A and B are
//!   linked; A unlinks while B's owner ends B (reason `boom`). A signal
//!   decided after `unlink_between` returned is ignored by `decide` (the
//!   policy wrapper reads a flag A's thread sets when `unlink_between`
//!   returns: seen set under A's lock, A's unlink section preceded it).
//!   At most one signal is accepted; if one is, A got it (trap: one `Exit`
//!   message; else A ends with `boom`), and if none is, A is alive with no
//!   message, no `EXITING` and no link. The link accounting holds.
//!
//! Every model also checks that nothing is left owned or stranded (an alive
//! process ends idle, `BUSY` clear, with an empty mailbox once its messages
//! are taken) and, through loom's `UnsafeCell`s for each
//! process's state, that two threads never own a process at once and that
//! ownership passes with a happens-before edge.
//!
//! # Why two threads
//!
//! As in `loom_mailbox.rs`: at most two threads touch any slot lock (the
//! main thread only sets up and joins). More waiters on the spin lock make
//! loom schedule yielding waiters forever.

use crate::envelope::Envelope;
use crate::exit::ExitReason;
use crate::link::{link_between, unlink_between, Processes};
use crate::monitor::{Down, MonitorRef};
use crate::pid::Pid;
use crate::signal::{decide, Exit, Via};
use crate::slot::{AfterPoll, Delivery, Extras, Owner, SignalAction, Slot, Wake, BUSY, EXITING, TRAP_EXIT};
use crate::sync::{thread, Arc, AtomicBool, Ordering, UnsafeCell};

/// A message a model process received: exit signals and `Down`s, and the
/// call model's (`loom_call.rs`) requests and replies.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Msg {
    Exit(Exit),
    Down(Down),
    Request(CallRequest),
    Reply(CallReply),
}

/// A call's request in the call model: its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CallRequest(pub(super) u64);

/// A call's reply in the call model: its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CallReply(pub(super) u64);

impl Msg {
    fn from_envelope(env: Envelope) -> Msg {
        let env = match env.downcast::<Exit>() {
            Ok(exit) => return Msg::Exit(exit),
            Err(env) => env,
        };
        let env = match env.downcast::<Down>() {
            Ok(down) => return Msg::Down(down),
            Err(env) => env,
        };
        match env.downcast::<CallRequest>() {
            Ok(request) => Msg::Request(request),
            Err(env) => Msg::Reply(env.downcast::<CallReply>().expect("a model message")),
        }
    }
}

/// What a process's exit left and did.
#[derive(Clone, Debug)]
pub(super) struct Ended {
    /// The reason it ended with.
    pub(super) reason: ExitReason,
    /// The links its exit took (and fired).
    pub(super) links: Vec<Pid>,
    /// The monitors its exit took (and fired).
    pub(super) monitors: Vec<MonitorRef>,
    /// The monitors of calls made to it that its exit took (and fired).
    pub(super) calls: Vec<MonitorRef>,
    /// The monitors whose `Down` the watcher turned away (`Delivery::Refused`).
    pub(super) refused: Vec<MonitorRef>,
    /// The messages it never received (inner queue, then outer).
    pub(super) left: Vec<Msg>,
}

/// A process's own state: touched only by its owner (or, after every
/// thread is joined, by the main thread).
#[derive(Debug, Default)]
pub(super) struct State {
    /// Every message it received, in order.
    pub(super) received: Vec<Msg>,
    /// Set once it has ended.
    pub(super) ended: Option<Ended>,
}

/// What happened to a process's links, logged under its slot lock.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Event {
    /// `with_extras` added this Pid to its links.
    Added(Pid),
    /// `with_extras` removed this Pid from its links (unlink).
    Unlinked(Pid),
    /// A signal was decided.
    Signal {
        from: Pid,
        via: Via,
        reason: ExitReason,
        /// `decide` did not ignore it.
        accepted: bool,
        /// `decide` removed a link to `from`.
        removed: bool,
        /// The world's `unlinked` flag was set when it was decided.
        after_unlink: bool,
    },
}

/// One process of a [`World`].
struct Proc {
    slot: Slot,
    pid: Pid,
    state: UnsafeCell<State>,
    /// Guarded by the slot lock.
    log: UnsafeCell<Vec<Event>>,
}

/// A few processes, and the `Processes` the link protocol runs over.
pub(super) struct World {
    procs: Vec<Proc>,
    /// Set by `loom_link_unlink_racing_exit` once `unlink_between` returned;
    /// read (only if `watch_unlink`) by the signal policy, under the lock.
    pub(super) unlinked: AtomicBool,
    watch_unlink: bool,
}

// SAFETY: `state` is touched only by a process's owner (the `BUSY` holder),
// `log` only under the slot lock: what the models check. Slots are `Sync`.
unsafe impl Sync for World {}
// SAFETY: as above.
unsafe impl Send for World {}

impl World {
    /// Live processes, one per entry of `trap` (whether it traps exits),
    /// each owned (`BUSY`) by the calling thread.
    pub(super) fn new(trap: &[bool]) -> World {
        let procs = trap
            .iter()
            .enumerate()
            .map(|(index, &trap)| {
                let slot = Slot::new();
                // SAFETY: a new slot is free: nobody owns it.
                let serial = unsafe { slot.transition_to_live(|_| None, false) };
                if trap {
                    assert!(slot.set_flag(serial, TRAP_EXIT, true));
                }
                Proc {
                    slot,
                    pid: Pid::from_parts(0, index as u32, serial),
                    state: UnsafeCell::new(State::default()),
                    log: UnsafeCell::new(Vec::new()),
                }
            })
            .collect();
        World { procs, unlinked: AtomicBool::new(false), watch_unlink: false }
    }

    /// As [`World::new`], with the signal policy noting the `unlinked` flag.
    pub(super) fn watching_unlink(trap: &[bool]) -> World {
        World { watch_unlink: true, ..World::new(trap) }
    }

    pub(super) fn pid(&self, i: usize) -> Pid {
        self.procs[i].pid
    }

    pub(super) fn slot(&self, i: usize) -> &Slot {
        &self.procs[i].slot
    }

    fn of(&self, pid: Pid) -> &Proc {
        &self.procs[pid.index() as usize]
    }

    /// Runs process `i`, which the caller owns, as a worker does: ends it
    /// if `EXITING` is set; else polls it — `first` (the first poll only;
    /// `Some(reason)`: the process returns, ending with `reason`), then
    /// receives everything — and goes idle, or runs again on `Reschedule`.
    pub(super) fn run_with(&self, i: usize, first: impl FnOnce(&World) -> Option<ExitReason>) {
        let slot = &self.procs[i].slot;
        let mut first = Some(first);
        loop {
            if slot.load() & EXITING != 0 {
                self.end(i, slot.take_exit_reason());
                return;
            }
            if let Some(reason) = first.take().and_then(|f| f(self)) {
                self.end(i, reason);
                return;
            }
            self.receive_all(i);
            // SAFETY: we own the process (BUSY).
            match unsafe { slot.transition_to_idle() } {
                AfterPoll::Idle => return,
                AfterPoll::Reschedule => {}
            }
        }
    }

    /// Runs process `i`, which the caller owns (see [`World::run_with`]).
    pub(super) fn run(&self, i: usize) {
        self.run_with(i, |_| None);
    }

    /// The owner of process `i` receives every message in its mailbox.
    fn receive_all(&self, i: usize) {
        let p = &self.procs[i];
        // SAFETY: the caller owns the process.
        let mut own = unsafe { Owner::new(&p.slot) };
        own.drain();
        let mut queue = own.with_inner(|inner| inner.take());
        let mut msgs = Vec::new();
        while let Some(env) = queue.pop_front() {
            msgs.push(Msg::from_envelope(env));
        }
        // SAFETY: the caller owns the process, hence its state.
        p.state.with_mut(|state| unsafe { (*state).received.extend(msgs) });
    }

    /// Ends process `i`, which the caller owns, with `reason`: as
    /// `end_incarnation` and `Shared::after_exit` do.
    pub(super) fn end(&self, i: usize, reason: ExitReason) {
        let p = &self.procs[i];
        let mut left = Vec::new();
        // SAFETY: the caller owns the process.
        let mut inner = unsafe { Owner::new(&p.slot) }.with_inner(|inner| inner.take());
        while let Some(env) = inner.pop_front() {
            left.push(Msg::from_envelope(env));
        }
        // SAFETY: as above.
        let mut remains = unsafe { p.slot.transition_to_exited() };
        while let Some(env) = remains.outer.pop_front() {
            left.push(Msg::from_envelope(env));
        }
        let mut extras = remains.extras.map(|extras| *extras).unwrap_or_default();
        let (links, monitors, calls) = (extras.links.clone(), extras.monitors.clone(), extras.calls.to_vec());
        let refused = crate::link::announce_exit(self, p.pid, &reason, &mut extras);
        let ended = Ended { reason, links, monitors, calls, refused, left };
        // SAFETY: the incarnation is dead: nobody can become its owner
        // again; we were the last, so its state is ours.
        p.state.with_mut(|state| unsafe { (*state).ended = Some(ended) });
    }

    /// After every thread is joined: process `i`'s state.
    pub(super) fn state(&self, i: usize) -> State {
        // SAFETY: every other thread is joined; the main thread stands in
        // for the owner.
        self.procs[i]
            .state
            .with(|state| unsafe { State { received: (*state).received.clone(), ended: (*state).ended.clone() } })
    }

    /// After every thread is joined: what happened to process `i`'s links.
    pub(super) fn log(&self, i: usize) -> Vec<Event> {
        // SAFETY: every other thread is joined.
        self.procs[i].log.with(|log| unsafe { (*log).clone() })
    }

    /// After every thread is joined: checks that process `i` is alive and
    /// idle (nobody kept it), and takes the messages left in its mailbox.
    pub(super) fn take_mailbox(&self, i: usize) -> Vec<Msg> {
        let p = &self.procs[i];
        assert!(p.slot.is_alive(p.pid.serial()), "process {i} is not alive");
        assert_eq!(p.slot.load() & BUSY, 0, "process {i} is still owned at the end");
        // SAFETY: every other thread is joined: the main thread stands in
        // for the owner.
        let mut own = unsafe { Owner::new(&p.slot) };
        own.drain();
        let mut queue = own.with_inner(|inner| inner.take());
        let mut msgs = Vec::new();
        while let Some(env) = queue.pop_front() {
            msgs.push(Msg::from_envelope(env));
        }
        assert_eq!(p.slot.mailbox_len(p.pid.serial()), Some(0), "process {i}: a message is stranded in its mailbox");
        msgs
    }

    /// After every thread is joined: the extras of the live process `i`.
    pub(super) fn extras(&self, i: usize) -> Left {
        let p = &self.procs[i];
        p.slot
            .with_extras(p.pid.serial(), |e| Left {
                links: e.links.clone(),
                watching: e.watching.clone(),
                suppressed: e.suppressed.clone(),
                monitors: e.monitors.clone(),
                calls: e.calls.to_vec(),
                awaiting: e.awaiting.clone(),
                awaits_nothing: p.slot.awaits().is_empty(),
            })
            .expect("the process is alive")
    }

    /// Without a lock: whether the caller of the call monitored by `call`
    /// is alive and may still await it.
    pub(super) fn may_await(&self, call: &MonitorRef) -> bool {
        self.of(call.watcher()).slot.may_await(call.watcher().serial(), call.id())
    }

    /// Logs `event` for the process whose extras the caller holds (under
    /// its slot lock).
    fn note(&self, pid: Pid, event: Event) {
        // SAFETY: the caller holds the slot lock, which guards the log.
        self.of(pid).log.with_mut(|log| unsafe { (*log).push(event) });
    }
}

impl Processes for World {
    fn retain_awaited(&self, calls: &mut crate::call_monitors::CallMonitors) {
        calls.retain(|c| self.may_await(c));
    }

    fn with_extras<R>(&self, pid: Pid, f: impl FnOnce(&mut Extras) -> R) -> Option<R> {
        self.of(pid).slot.with_extras(pid.serial(), |extras| {
            let before = extras.links.clone();
            let r = f(extras);
            let count = |links: &[Pid], p: Pid| links.iter().filter(|&&l| l == p).count();
            let mut seen: Vec<Pid> = before.iter().chain(&extras.links).copied().collect();
            seen.sort_unstable();
            seen.dedup();
            for p in seen {
                let (was, is) = (count(&before, p), count(&extras.links, p));
                for _ in is..was {
                    self.note(pid, Event::Unlinked(p));
                }
                for _ in was..is {
                    self.note(pid, Event::Added(p));
                }
            }
            r
        })
    }

    fn signal(&self, to: Pid, from: Pid, reason: &ExitReason, via: Via) {
        let wake = self.of(to).slot.signal(to.serial(), |word, extras| {
            let before = extras.links.len();
            let action = decide(to, from, reason, via, word, extras);
            let after_unlink = self.watch_unlink && self.unlinked.load(Ordering::Acquire);
            let event = Event::Signal {
                from,
                via,
                reason: reason.clone(),
                accepted: !matches!(action, SignalAction::Ignore),
                removed: extras.links.len() < before,
                after_unlink,
            };
            self.note(to, event);
            action
        });
        match wake {
            None | Some(Wake::None) => {}
            Some(Wake::Schedule) => self.run(to.index() as usize),
            Some(Wake::Waker(_)) => panic!("not an external mailbox"),
        }
    }

    fn deliver_unless(&self, to: Pid, env: Envelope, refuse: impl crate::awaits::Veto) -> bool {
        match self.of(to).slot.deliver_unless(to.serial(), env, refuse) {
            Delivery::Queued(Wake::Schedule) => {
                self.run(to.index() as usize);
                false
            }
            Delivery::Queued(Wake::None) | Delivery::Dead(_) => false,
            Delivery::Queued(Wake::Waker(_)) => panic!("not an external mailbox"),
            Delivery::Refused(_) => true,
        }
    }

    fn deliver_with(&self, to: Pid, env: Envelope, setup: impl FnOnce(&mut Extras)) -> bool {
        match self.of(to).slot.deliver_with(to.serial(), env, setup) {
            Delivery::Queued(Wake::Schedule) => {
                self.run(to.index() as usize);
                true
            }
            Delivery::Queued(Wake::None) => true,
            Delivery::Dead(_) => false,
            Delivery::Queued(Wake::Waker(_)) => panic!("not an external mailbox"),
            Delivery::Refused(_) => unreachable!("deliver_with refuses nothing"),
        }
    }
}

/// The extras of a live process, at the end of a model.
#[derive(Debug)]
pub(super) struct Left {
    pub(super) links: Vec<Pid>,
    pub(super) watching: Vec<MonitorRef>,
    pub(super) suppressed: Vec<MonitorRef>,
    pub(super) monitors: Vec<MonitorRef>,
    pub(super) calls: Vec<MonitorRef>,
    pub(super) awaiting: Vec<u64>,
    /// The slot's record of awaited calls is empty (`awaits.rs`).
    pub(super) awaits_nothing: bool,
}

/// A monitor reference.
pub(super) fn reference(id: u64, target: Pid, watcher: Pid) -> MonitorRef {
    MonitorRef::new(id, target, watcher)
}

/// Runs `f` on a new thread with its own handle to `world`.
pub(super) fn spawn_with<R: Send + 'static>(
    world: &Arc<World>,
    f: impl FnOnce(&World) -> R + Send + 'static,
) -> thread::JoinHandle<R> {
    let world = world.clone();
    thread::spawn(move || f(&world))
}

/// The signals process `i` accepted: `(from, reason)`.
fn accepted(log: &[Event]) -> Vec<(Pid, ExitReason)> {
    log.iter()
        .filter_map(|e| match e {
            Event::Signal { from, reason, accepted: true, .. } => Some((*from, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The link accounting of process `i` (see the module docs): replays its
/// log. A peer is added only when not held (at most one link per pair); a
/// signal through a link counts (is not ignored) exactly when the link is
/// held, and then removes it (the models use no `Normal` reason, the one a
/// process that does not trap exits ignores); `unlink` removes a held link;
/// and what the replay leaves held is `held`, the links the process holds
/// now or left at its exit. So every link instance ends exactly once: taken
/// by one signal, unlinked, or still held (and then, at exit, fired).
fn check_links_accounted(world: &World, i: usize, held: &[Pid]) {
    let log = world.log(i);
    let mut holds: Vec<Pid> = Vec::new();
    for (n, event) in log.iter().enumerate() {
        match event {
            Event::Added(p) => {
                assert!(!holds.contains(p), "process {i}: a second link to {p} (event {n}): {log:?}");
                holds.push(*p);
            }
            Event::Unlinked(p) => {
                assert!(holds.contains(p), "process {i}: unlinked {p} not held (event {n}): {log:?}");
                holds.retain(|q| q != p);
            }
            Event::Signal { from, via, accepted, removed, .. } => {
                let had = holds.contains(from);
                if *via == Via::Link {
                    assert_eq!(
                        *removed, had,
                        "process {i}: a link signal removes the link iff held (event {n}): {log:?}"
                    );
                    assert_eq!(
                        *accepted, had,
                        "process {i}: a link signal counts iff the link is held (event {n}): {log:?}"
                    );
                    holds.retain(|q| q != from);
                } else {
                    assert!(!removed, "process {i}: a signal not through a link removed one (event {n}): {log:?}");
                }
            }
        }
    }
    let mut held = held.to_vec();
    held.sort_unstable();
    holds.sort_unstable();
    assert_eq!(holds, held, "process {i}: the links it ends with are not those its log accounts for: {log:?}");
}

/// The `Exit` messages among `msgs`.
fn exits(msgs: &[Msg]) -> Vec<Exit> {
    msgs.iter()
        .map(|m| match m {
            Msg::Exit(exit) => exit.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn boom() -> ExitReason {
    ExitReason::Error("boom".into())
}

#[test]
fn loom_link_racing_exit() {
    for trap in [true, false] {
        loom::model(move || {
            let world = Arc::new(World::new(&[trap, false]));
            let (a, b) = (world.pid(0), world.pid(1));
            let survivor = spawn_with(&world, move |w| {
                w.run_with(0, |w| {
                    link_between(w, a, b);
                    None
                })
            });
            // B's owner: B returns with `boom`.
            let target = spawn_with(&world, |w| w.end(1, boom()));
            survivor.join().unwrap();
            target.join().unwrap();

            let b_ended = world.state(1).ended.expect("B ended");
            assert_eq!(b_ended.reason, boom());
            assert!(b_ended.links.iter().all(|&p| p == a), "B's links: {:?}", b_ended.links);
            // B's exit took the link iff A's `link_between` reached B alive;
            // else A signalled itself NoProc.
            let expected = if b_ended.links.contains(&a) { boom() } else { ExitReason::NoProc };
            let log = world.log(0);
            assert_eq!(accepted(&log), [(b, expected.clone())], "trap {trap}: A gets exactly one signal: {log:?}");
            let a_state = world.state(0);
            if trap {
                let mut msgs = a_state.received.clone();
                msgs.extend(world.take_mailbox(0));
                assert_eq!(exits(&msgs), [Exit { from: b, reason: expected }], "A's Exit messages");
                assert_eq!(world.slot(0).load() & EXITING, 0, "a process that traps exits is not ended");
                let links = world.extras(0).links;
                assert!(links.is_empty(), "A kept a link to dead B: {links:?}");
                check_links_accounted(&world, 0, &links);
            } else {
                let ended = a_state.ended.expect("A was ended by the signal");
                assert_eq!(ended.reason, expected, "A's exit reason");
                assert!(ended.links.is_empty(), "A's exit found a link to B left: {:?}", ended.links);
                assert!(a_state.received.is_empty() && ended.left.is_empty(), "A got a message");
                check_links_accounted(&world, 0, &ended.links);
            }
            check_links_accounted(&world, 1, &b_ended.links);
        });
    }
}

#[test]
fn loom_link_both_linking_both_exiting() {
    for trap in [[false, false], [true, false]] {
        loom::model(move || {
            let world = Arc::new(World::new(&trap));
            let pids = [world.pid(0), world.pid(1)];
            let reasons = [ExitReason::Error("a".into()), ExitReason::Error("b".into())];
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let reason = reasons[i].clone();
                    spawn_with(&world, move |w| {
                        w.run_with(i, |w| {
                            link_between(w, pids[i], pids[1 - i]);
                            Some(reason)
                        })
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for i in 0..2 {
                let peer = 1 - i;
                let state = world.state(i);
                let ended = state.ended.expect("both processes end");
                assert!(
                    ended.reason == reasons[i] || ended.reason == reasons[peer],
                    "process {i} ended with {:?}",
                    ended.reason
                );
                assert!(ended.links.iter().all(|&p| p == pids[peer]), "process {i}'s links: {:?}", ended.links);
                check_links_accounted(&world, i, &ended.links);
                let log = world.log(i);
                let accepted = accepted(&log);
                for (from, reason) in &accepted {
                    assert_eq!(*from, pids[peer], "process {i}: a signal from a stranger: {log:?}");
                    assert!(
                        *reason == reasons[peer] || *reason == ExitReason::NoProc,
                        "process {i}: a signal with a wrong reason: {log:?}"
                    );
                }
                if ended.reason == reasons[peer] {
                    assert!(!accepted.is_empty(), "process {i} ended with its peer's reason unsignalled");
                }
                let mut msgs = state.received.clone();
                msgs.extend(ended.left.clone());
                let exits = exits(&msgs);
                if trap[i] {
                    let delivered: Vec<_> =
                        accepted.iter().map(|(from, reason)| Exit { from: *from, reason: reason.clone() }).collect();
                    assert_eq!(exits, delivered, "process {i}: one Exit message per accepted signal");
                } else {
                    assert!(exits.is_empty(), "process {i} does not trap exits but got {exits:?}");
                }
            }
        });
    }
}

#[test]
fn loom_link_unlink_racing_exit() {
    for trap in [true, false] {
        loom::model(move || {
            let world = Arc::new(World::watching_unlink(&[trap, false]));
            let (a, b) = (world.pid(0), world.pid(1));
            link_between(&*world, a, b);
            let survivor = spawn_with(&world, move |w| {
                w.run_with(0, |w| {
                    unlink_between(w, a, b);
                    w.unlinked.store(true, Ordering::Release);
                    None
                })
            });
            let target = spawn_with(&world, |w| w.end(1, boom()));
            survivor.join().unwrap();
            target.join().unwrap();

            let log = world.log(0);
            for e in &log {
                if let Event::Signal { accepted: true, after_unlink: true, .. } = e {
                    panic!("trap {trap}: a signal through the link took effect after unlink returned: {log:?}");
                }
            }
            let accepted = accepted(&log);
            assert!(accepted.len() <= 1, "trap {trap}: more than one signal: {log:?}");
            let a_state = world.state(0);
            let b_ended = world.state(1).ended.expect("B ended");
            check_links_accounted(&world, 1, &b_ended.links);
            if accepted.is_empty() || trap {
                let mut msgs = a_state.received.clone();
                msgs.extend(world.take_mailbox(0));
                let expected: Vec<_> =
                    accepted.iter().map(|(from, reason)| Exit { from: *from, reason: reason.clone() }).collect();
                assert_eq!(exits(&msgs), expected, "trap {trap}: A's Exit messages: {log:?}");
                assert_eq!(world.slot(0).load() & EXITING, 0, "trap {trap}: A is EXITING: {log:?}");
                let links = world.extras(0).links;
                assert!(links.is_empty(), "A kept a link after unlink: {links:?}");
                check_links_accounted(&world, 0, &links);
            } else {
                assert_eq!(accepted, [(b, boom())]);
                let ended = a_state.ended.expect("A was ended by the signal");
                assert_eq!(ended.reason, boom());
                assert!(ended.links.is_empty(), "A's exit found a link left: {:?}", ended.links);
                check_links_accounted(&world, 0, &ended.links);
            }
        });
    }
}
