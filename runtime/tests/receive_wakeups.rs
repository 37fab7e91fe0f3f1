//! Wake-ups of receives: a process is polled again whenever a message
//! arrives that one of its pending receives has not looked at — including
//! when several receives are pending in the same poll (`join!`/`select!`
//! over receives).

mod util;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use krarup_runtime::{recv, self_pid, Recv};
use util::{expect_msg, runtime};

/// Polls a `recv::<u32>()`, then sends the process a `u32` once, then polls
/// a `recv::<u64>()` (which moves the new `u32` into the inner queue while
/// looking for a `u64`). Resolves to whichever receive completes first.
struct LookThenSendThenLook {
    first: Recv<u32>,
    second: Recv<u64>,
    sent: bool,
}

impl Future for LookThenSendThenLook {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if let Poll::Ready(n) = Pin::new(&mut self.first).poll(cx) {
            return Poll::Ready(u64::from(n));
        }
        if !self.sent {
            self.sent = true;
            self_pid().send(7u32);
        }
        Pin::new(&mut self.second).poll(cx)
    }
}

#[test]
fn a_receive_that_looked_before_a_message_arrived_gets_another_look() {
    let rt = runtime(1);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    rt.spawn(async move {
        let got = LookThenSendThenLook { first: recv::<u32>(), second: recv::<u64>(), sent: false }.await;
        report.send(got);
    });
    // The u32 is in the process's mailbox; only a new poll lets the first
    // receive see it. Without one, this times out.
    assert_eq!(expect_msg::<u64>(&mut mailbox), 7);
}
