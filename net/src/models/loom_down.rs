//! loom models of a connection lost under a sender: the I/O thread's `go_down` racing a push.
//!
//! What the models check:
//! - `loom_down_refuses_or_discards`: the peer is up; the sender pushes one frame while the I/O
//!   thread takes a turn and then loses the connection. The frame is accounted for exactly
//!   once: refused (`Unreachable`), written, or in the buffer `go_down` discards (the count of
//!   lost messages comes from there). Afterwards nothing is pending, the gate is open, the
//!   state is `Down`, and a later push is refused.
//! - `loom_down_releases_the_hard_limit`: limit 1 (hard limit 4); the sender pushes 5 bytes
//!   and waits for space, and the I/O thread, which never writes, loses the connection. The
//!   sender is released (a sender left waiting is a deadlock loom reports), its frame is
//!   discarded, and the gate is open.

use krarup_runtime::dist::Sent;
use loom::sync::Arc;
use loom::thread;

use super::{push, up_and_idle, Channel, Conn};
use crate::outbox::State;

#[test]
fn loom_down_refuses_or_discards() {
    loom::model(|| {
        let mut conn = Conn::new(1);
        let outbox = Arc::new(up_and_idle(1 << 10, &mut conn));
        let channel = Arc::new(Channel::new());
        let sender = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || push(&outbox, &channel, &[9]))
        };
        let io = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || {
                let mut conn = conn;
                conn.turn(&outbox, &channel);
                let discarded = conn.down(&outbox);
                (conn, discarded)
            })
        };
        let sent = sender.join().unwrap();
        let (mut conn, discarded) = io.join().unwrap();
        conn.drain(&outbox, &channel);
        let refused = matches!(sent, Sent::Unreachable);
        assert!(matches!(sent, Sent::Queued | Sent::Unreachable));
        let places = [refused, conn.wire == [9], discarded == [9]];
        assert_eq!(places.iter().filter(|&&p| p).count(), 1, "the frame is accounted once: {places:?}");
        assert!(conn.wire.len() + discarded.len() <= 1);
        assert_eq!(outbox.pending(), 0);
        assert!(outbox.gate().is_open());
        assert_eq!(outbox.state(), State::Down);
        assert!(matches!(push(&outbox, &channel, &[10]), Sent::Unreachable));
    });
}

#[test]
fn loom_down_releases_the_hard_limit() {
    loom::model(|| {
        let mut conn = Conn::new(1);
        let outbox = Arc::new(up_and_idle(1, &mut conn));
        let channel = Arc::new(Channel::new());
        let sender = {
            let (outbox, channel) = (outbox.clone(), channel.clone());
            thread::spawn(move || push(&outbox, &channel, &[7; 5]))
        };
        let io = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                let mut conn = conn;
                conn.down(&outbox)
            })
        };
        let sent = sender.join().unwrap();
        let discarded = io.join().unwrap();
        match sent {
            Sent::Unreachable => assert!(discarded.is_empty()),
            Sent::Queued => assert_eq!(discarded, [7; 5]),
            _ => panic!("busy over an emptied buffer"),
        }
        assert_eq!(outbox.pending(), 0);
        assert!(outbox.gate().is_open());
    });
}
