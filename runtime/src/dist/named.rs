//! Monitors that processes of other nodes hold on a *name* registered
//! here (Erlang's `monitor(process, {Name, Node})`), and which local
//! process each one watches.
//!
//! # Protocol
//!
//! The watcher's node sends `MonitorNamed { reference, name }`. The
//! reference's target is a placeholder, a Pid of this node that names no
//! process ([`NAMELESS`] as its index): the watcher cannot know which
//! process the name stands for, and its `watching` entry, its `Down` and
//! its `demonitor` all carry the reference exactly as it was made. Here
//! the name is looked up when the request arrives, in order with the
//! other frames from the watcher's node (so a message to the name sent
//! right after the monitor reaches the process the monitor is on, unless
//! the name moves in between); then:
//!
//! - no process has the name: the `Down` goes back at once, `NoProc`;
//! - else the reference joins that process's `monitors`, as a monitor by
//!   Pid would, and this table records reference → process. The process's
//!   exit sends the `Down` with the reference as it is and removes the
//!   record. A `Demonitor` of the reference finds the process here (its
//!   placeholder target names none) and takes the monitor off it. The loss
//!   of the watcher's node removes its records with its monitors.
//!
//! Invariant: a record exists while its monitor is on the process, and
//! goes with it. The monitor and its record are added in one section of
//! the table's lock, so an exit racing the request, which removes the
//! record after taking the monitor off the process, finds it. `demonitor`
//! removes the record first (it is how the process is found) and then the
//! monitor; should the process exit in between, its `Down` reaches a
//! watcher that no longer holds the monitor, which turns it away.

use std::collections::HashMap;

use crate::monitor::MonitorRef;
use crate::pid::Pid;
use crate::sync::global::Mutex;

/// The index of a monitor's placeholder target: the monitor is on a name.
pub(crate) const NAMELESS: u32 = u32::MAX;

/// One runtime's records of remote watchers' monitors on local names.
#[derive(Debug, Default)]
pub(crate) struct NamedMonitors {
    on: Mutex<HashMap<MonitorRef, Pid>>,
}

impl NamedMonitors {
    /// Puts `reference` on `target` with `add` (whether the target was
    /// alive to take it) and, if it was, records it; whether it was.
    pub(crate) fn add(&self, reference: MonitorRef, target: Pid, add: impl FnOnce() -> bool) -> bool {
        let mut on = self.on.lock();
        let added = add();
        if added {
            on.insert(reference, target);
        }
        added
    }

    /// Forgets `reference`; the process it was on, if it was recorded.
    pub(crate) fn remove(&self, reference: &MonitorRef) -> Option<Pid> {
        self.on.lock().remove(reference)
    }

    /// Forgets every record whose watcher `is_gone` says is lost.
    pub(crate) fn forget_watchers(&self, is_gone: impl Fn(Pid) -> bool) {
        self.on.lock().retain(|reference, _| !is_gone(reference.watcher()));
    }

    /// How many there are.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.on.lock().len()
    }
}

/// Whether `reference` is a monitor on a name (its target is a placeholder).
pub(crate) fn is_on_name(reference: &MonitorRef) -> bool {
    reference.target().index() == NAMELESS
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::dist::{attach, Nowhere};
    use crate::sync::global::Arc;
    use crate::{ExitReason, Runtime};

    const PEER: &str = "peer@127.0.0.1:1";

    /// How many monitors `pid` has.
    fn monitors_on(pid: Pid) -> usize {
        crate::link::with_extras_of(pid, |e| e.monitors.len()).expect("alive")
    }

    fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "{what} did not happen in time");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_record_lasts_exactly_as_long_as_its_monitor_on_the_named_process() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        // The `Down`s the peer is owed go nowhere.
        let local = attach(&rt, "me@127.0.0.1:2", 9, Arc::new(Nowhere)).unwrap();
        let inbound = local.inbound(PEER, 5);
        let records = || rt.shared().named_monitors.len();
        let watcher = Pid::from_parts(inbound.origin(), 3, 1);
        let on_name = |id: u64| MonitorRef::new(id, Pid::from_parts(rt.node(), NAMELESS, 0), watcher);
        let serve = |name: &str| {
            let pid = rt.spawn(std::future::pending::<()>());
            rt.register(name, pid).unwrap();
            pid
        };

        // Nobody has the name: nothing is kept (the `Down` with `NoProc` goes back).
        inbound.monitor_named(on_name(1), "server").unwrap();
        assert_eq!(records(), 0);

        // Demonitored: the monitor leaves the process, and the record goes.
        let server = serve("server");
        inbound.monitor_named(on_name(2), "server").unwrap();
        assert_eq!((records(), monitors_on(server)), (1, 1));
        inbound.demonitor(on_name(2)).unwrap();
        assert_eq!((records(), monitors_on(server)), (0, 0));

        // Fired by the process's exit.
        inbound.monitor_named(on_name(3), "server").unwrap();
        assert_eq!(records(), 1);
        rt.block_on(async move { crate::exit(server, ExitReason::Kill) });
        wait_until("the record's removal", || records() == 0);

        // The watcher's node lost.
        let again = serve("server");
        inbound.monitor_named(on_name(4), "server").unwrap();
        assert_eq!((records(), monitors_on(again)), (1, 1));
        local.node_down(PEER);
        assert_eq!((records(), monitors_on(again)), (0, 0));
    }
}
