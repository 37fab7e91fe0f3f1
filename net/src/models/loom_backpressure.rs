//! loom models of backpressure: the gate (soft limit) and the wait at four times the limit
//! (hard limit), with the I/O thread draining the buffer a few bytes per write.
//!
//! What the models check:
//! - `loom_backpressure_gate_reopens`: limit 4; the sender pushes 3 bytes (queued) and then
//!   3 more (over the limit: it closes the gate), while the I/O thread drains 2 bytes per
//!   write. However the sender's close-and-re-check interleaves with the I/O thread's
//!   decrement-and-check, once everything is written the gate is open: it is never left
//!   closed with `pending` at or below half the limit.
//! - `loom_backpressure_hard_limit_waits_for_the_io_thread`: limit 1 (hard limit 4); the
//!   sender pushes 5 bytes, past the hard limit at once: it must send its `Flush` before it
//!   waits. Then 3 more, past the hard limit again unless the I/O thread has written enough,
//!   with the I/O thread busy on the first frame (so no `Flush` this time) and notifying as
//!   `pending` falls, possibly between the sender's check and its wait. The I/O thread serves
//!   the channel until the sender is done, writing 2 bytes per write. A sender left waiting
//!   (a lost notification, or a `Flush` sent only after the wait) is a deadlock loom reports.
//!   Afterwards both frames are written, in order, and the gate is open.

use krarup_runtime::dist::Sent;
use loom::sync::Arc;
use loom::thread;

use super::{push, up_and_idle, Channel, Conn};

#[test]
fn loom_backpressure_gate_reopens() {
    loom::model(|| {
        let mut conn = Conn::new(2);
        let outbox = Arc::new(up_and_idle(4, &mut conn));
        let channel = Arc::new(Channel::new());
        let sender = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || {
                assert!(matches!(push(&outbox, &channel, &[1; 3]), Sent::Queued), "3 bytes are within the limit");
                push(&outbox, &channel, &[2; 3])
            })
        };
        let io = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || {
                let mut conn = conn;
                conn.turn(&outbox, &channel);
                conn
            })
        };
        assert!(!matches!(sender.join().unwrap(), Sent::Unreachable));
        let mut conn = io.join().unwrap();
        conn.drain(&outbox, &channel);
        assert_eq!(conn.wire, [1, 1, 1, 2, 2, 2]);
        assert_eq!(outbox.pending(), 0);
        assert!(outbox.gate().is_open(), "the gate is left closed over an empty buffer");
    });
}

#[test]
fn loom_backpressure_hard_limit_waits_for_the_io_thread() {
    loom::model(|| {
        let mut conn = Conn::new(2);
        let outbox = Arc::new(up_and_idle(1, &mut conn));
        let channel = Arc::new(Channel::new());
        let sender = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || {
                assert!(!matches!(push(&outbox, &channel, &[1; 5]), Sent::Unreachable));
                assert!(!matches!(push(&outbox, &channel, &[2; 3]), Sent::Unreachable));
                channel.close();
            })
        };
        let io = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || {
                let mut conn = conn;
                conn.serve(&outbox, &channel);
                conn
            })
        };
        sender.join().unwrap();
        let mut conn = io.join().unwrap();
        conn.drain(&outbox, &channel);
        assert_eq!(conn.wire, [1, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(outbox.pending(), 0);
        assert!(outbox.gate().is_open(), "the gate is left closed over an empty buffer");
    });
}
