//! Connection management: two nodes that dial each other at the same moment end up with one
//! connection, the same on both sides, and messages flow both ways on it.

mod common;

use std::sync::{Arc, Barrier};

use common::{expect_msg, remote_pid, wait_until, Side};

#[test]
fn simultaneous_connects_leave_one_connection_per_pair() {
    for round in 0..20 {
        let a = Side::start(&format!("a{round}"));
        let b = Side::start(&format!("b{round}"));
        let start = Arc::new(Barrier::new(2));
        let (a_name, b_name) = (a.name().to_owned(), b.name().to_owned());
        let b_node = b.node.clone();
        let from_b = {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                b_node.connect(&a_name)
            })
        };
        start.wait();
        let from_a = a.node.connect(&b_name);
        let from_b = from_b.join().expect("b's connect thread");
        assert_eq!((from_a, from_b), (Ok(()), Ok(())), "round {round}: both connects succeed");
        assert_eq!(a.node.nodes(), vec![b.name().to_owned()]);
        assert_eq!(b.node.nodes(), vec![a.name().to_owned()]);

        // Both ways, on the one connection.
        let mut at_a = a.rt.mailbox();
        let mut at_b = b.rt.mailbox();
        let b_seen_from_a = remote_pid(at_b.pid(), &b, &a);
        let a_seen_from_b = remote_pid(at_a.pid(), &a, &b);
        a.rt.block_on(async move { b_seen_from_a.send(round as u64) });
        b.rt.block_on(async move { a_seen_from_b.send(round as u64 + 1000) });
        assert_eq!(expect_msg::<u64>(&mut at_b), round as u64);
        assert_eq!(expect_msg::<u64>(&mut at_a), round as u64 + 1000);
        wait_until("each node lists the other once", || a.node.stats().connected == 1 && b.node.stats().connected == 1);
        // Whichever attempt lost was dropped before it carried anything: no connection that was
        // up was lost (which would have fired links and monitors), and the one up carried both
        // messages above.
        let lost = |side: &Side| side.node.stats().connections_closed;
        assert!(lost(&a) <= 1 && lost(&b) <= 1, "round {round}: at most the losing attempt is closed");
        assert_eq!((a.node.stats().bad_input, b.node.stats().bad_input), (0, 0));
    }
}
