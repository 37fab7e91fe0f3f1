//! Finding a receive that waits for the wrong type: the `debug` event on a
//! timed-out receive names the types left in the mailbox, and
//! `mailbox_len` counts them.
//!
//! A tiny hand-written `tracing::Subscriber` records every `debug` event's
//! fields as text; it is the global default for this test binary, so it
//! sees the events that worker threads emit. Tests tell their events apart
//! by the Pid in the `pid` field.

mod util;

use std::fmt::{self, Write as _};
use std::sync::{Mutex, Once};
use std::time::Duration;

use krarup_runtime::{mailbox_len, recv_timeout, self_pid, Pid};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use util::runtime;

/// Every `debug` event seen, as `name=value` pairs.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::DEBUG {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            EVENTS.lock().unwrap().push(fields.0);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={:?}; ", field.name(), value);
    }
}

fn capture_events() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Capture).expect("no other subscriber"));
}

/// The captured receive-timeout events about `pid`.
fn events_about(pid: Pid) -> Vec<String> {
    let tag = format!("pid={pid};");
    EVENTS.lock().unwrap().iter().filter(|e| e.contains(&tag) && e.contains("waiting_for=")).cloned().collect()
}

#[test]
fn a_receive_timing_out_next_to_a_near_miss_type_names_it_in_a_debug_event() {
    capture_events();
    let rt = runtime(2);
    let (pid, stuck) = rt.block_on(async {
        let me = self_pid();
        // The classic bug: an i32 sent where an i64 is received.
        me.send((me, 41i32));
        assert_eq!(recv_timeout::<(Pid, i64)>(Duration::from_millis(10)).await, None);
        (me, mailbox_len(me))
    });
    assert_eq!(stuck, Some(1), "mailbox_len counts the message nobody receives");
    let events = events_about(pid);
    assert_eq!(events.len(), 1, "expected one timeout event for {pid}, got {events:?}");
    let event = &events[0];
    let mailbox = event.split("mailbox=").nth(1).expect("a mailbox field");
    assert!(mailbox.contains("Pid, i32)"), "the waiting type is named: {event}");
    let waiting_for = event.split("waiting_for=").nth(1).expect("a waiting_for field");
    assert!(waiting_for.contains("Pid, i64)"), "the expected type is named: {event}");
}

#[test]
fn a_receive_timing_out_on_an_empty_mailbox_emits_no_event() {
    capture_events();
    let rt = runtime(2);
    let pid = rt.block_on(async {
        assert_eq!(recv_timeout::<u32>(Duration::from_millis(5)).await, None);
        self_pid()
    });
    assert_eq!(events_about(pid), Vec::<String>::new());
}

#[test]
fn a_mailbox_timing_out_next_to_a_near_miss_type_names_it_in_a_debug_event() {
    capture_events();
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let pid = mailbox.pid();
    pid.send((pid, 1i32));
    pid.send((pid, 2i32));
    assert_eq!(mailbox.blocking_recv_timeout::<(Pid, i64)>(Duration::from_millis(10)), None);
    assert_eq!(mailbox_len(pid), Some(2));
    let events = events_about(pid);
    assert_eq!(events.len(), 1, "expected one timeout event for {pid}, got {events:?}");
    assert!(events[0].contains("Pid, i32)"), "the waiting type is named: {}", events[0]);
}

#[test]
fn mailbox_len_counts_waiting_messages_and_is_none_for_a_dead_process() {
    let rt = runtime(2);
    let pid = rt.block_on(async {
        let me = self_pid();
        assert_eq!(mailbox_len(me), Some(0));
        for n in 0..3i32 {
            me.send(n);
        }
        assert_eq!(mailbox_len(me), Some(3));
        assert_eq!(krarup_runtime::try_recv::<i32>(), Some(0));
        assert_eq!(mailbox_len(me), Some(2));
        me
    });
    // block_on returns after its process finished; the exit is done by the
    // time the runtime is shut down.
    rt.shutdown_timeout(util::TIMEOUT);
    assert_eq!(mailbox_len(pid), None);
}
