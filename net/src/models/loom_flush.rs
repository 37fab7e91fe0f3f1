//! loom models of the write path: a sender pushes frames while the I/O thread takes the buffer
//! and writes it (`push`, `take_into`, `written`, `notified`).
//!
//! What the models check, against every interleaving of the sender's pushes with the I/O
//! thread's turns, once the I/O thread has handled every command queued:
//! - `loom_flush_no_frame_left_behind`: the peer is up and idle; the sender pushes two frames.
//!   Both are written, once each, in order, and nothing is pending: whenever the sender found
//!   `notified` set (and sent no `Flush`), the I/O thread did come back for its frame.
//! - `loom_flush_frames_wait_for_the_connection`: the peer is idle; the first push asks for a
//!   connection (`Connect`), the second finds it `Connecting` or `Up`. Both frames are written,
//!   in order, once the connection is up.

use krarup_runtime::dist::Sent;
use loom::sync::Arc;
use loom::thread;

use super::{push, up_and_idle, Channel, Conn};
use crate::outbox::Outbox;

/// Runs a sender that pushes `[1]` then `[2]` against an I/O thread that takes two turns,
/// then drains the channel; checks both frames went out, in order.
fn run(outbox: Outbox, conn: Conn) {
    let outbox = Arc::new(outbox);
    let channel = Arc::new(Channel::new());
    let sender = {
        let (outbox, channel) = (outbox.clone(), channel.clone());
        thread::spawn(move || {
            for frame in [1, 2] {
                assert!(matches!(push(&outbox, &channel, &[frame]), Sent::Queued));
            }
        })
    };
    let io = {
        let (outbox, channel) = (outbox.clone(), channel.clone());
        thread::spawn(move || {
            let mut conn = conn;
            conn.turn(&outbox, &channel);
            conn.turn(&outbox, &channel);
            conn
        })
    };
    sender.join().unwrap();
    let mut conn = io.join().unwrap();
    conn.drain(&outbox, &channel);
    assert_eq!(conn.wire, [1, 2], "every frame written once, in order");
    assert_eq!(outbox.pending(), 0);
    assert!(!outbox.take_into(&mut Vec::new()), "nothing left in the buffer");
}

#[test]
fn loom_flush_no_frame_left_behind() {
    loom::model(|| {
        let mut conn = Conn::new(1);
        let outbox = up_and_idle(1 << 10, &mut conn);
        run(outbox, conn);
    });
}

#[test]
fn loom_flush_frames_wait_for_the_connection() {
    loom::model(|| run(Outbox::new(1 << 10), Conn::new(1)));
}
