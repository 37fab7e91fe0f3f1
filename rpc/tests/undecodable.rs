//! A reply that does not decode as the client's reply type: the call fails with
//! `CallError::Undecodable` at once, and the client's next well-formed call works.
//!
//! Two programs disagree on a type's shape when they were built from two versions of the crate
//! that defines it: the type's path — hence its wire tag (a hash of its type name, see the
//! runtime's `dist/wire.rs`) — is the same, its fields are not. One test binary emulates that
//! with two versions of one service, each declared in its own block of one function: blocks do
//! not show in type names, so the two versions' request and reply enums have the same names and
//! tags, and each node uses its own version (the server `b` the new one, the client `a` the old
//! one).
//!
//! Only bytes that fail to decode, or leave bytes over, are caught: the wire format (postcard)
//! carries no field names, so a reply of another shape whose bytes happen to decode exactly as
//! the client's type is taken as one (a `u8` of 1 would read as `true`).

mod common;

use common::{pair, remote_pid, run, TIMEOUT};
use krarup_rpc::CallError;
use krarup_runtime::{is_alive, mailbox_len, self_pid, Pid};

#[test]
fn a_reply_that_does_not_decode_as_the_clients_type_fails_the_call_and_the_next_call_works() {
    let (a, b) = pair();

    // The new version, on the server's node: `status` answers a text.
    let server: Pid = {
        #[krarup_rpc::service(krate = krarup_rpc)]
        pub trait Versioned {
            /// Whether the service is up: "up" or "down" in this version.
            fn status(&mut self) -> String;
            /// The same, safe to retry.
            #[idempotent]
            fn status_again(&mut self) -> String;
            /// `n` back: the same in both versions.
            fn echo(&mut self, n: u64) -> u64;
        }

        struct New;

        impl Versioned for New {
            fn status(&mut self) -> String {
                "up".into()
            }
            fn status_again(&mut self) -> String {
                "up".into()
            }
            fn echo(&mut self, n: u64) -> u64 {
                n
            }
        }

        b.rt.spawn(VersionedServer::serve(New))
    };

    // The old version, on the client's node: `status` answered a `bool`. The bytes of "up"
    // (its length, 2, first) are no `bool`. Only its client is used here.
    let (answers, left) = {
        #[allow(dead_code)]
        #[krarup_rpc::service(krate = krarup_rpc)]
        pub trait Versioned {
            /// Whether the service is up.
            fn status(&mut self) -> bool;
            /// The same, safe to retry.
            #[idempotent]
            fn status_again(&mut self) -> bool;
            /// `n` back.
            fn echo(&mut self, n: u64) -> u64;
        }

        let versioned = VersionedClient::new(remote_pid(server, &b, &a)).with_timeout(TIMEOUT);
        // Bounded: a call that hung would fail the test after TIMEOUT.
        run(&a.rt, async move {
            let status = versioned.status().await;
            let echoed = versioned.echo(7).await;
            let deferred = versioned.start_status().wait().await;
            let again = versioned.status_again().await;
            let echoed_last = versioned.echo(8).await;
            ((status, echoed, deferred, again, echoed_last), mailbox_len(self_pid()))
        })
        .wait()
    };

    let undecodable = Err(CallError::Undecodable);
    assert_eq!(answers, (undecodable.clone(), Ok(7), undecodable.clone(), undecodable, Ok(8)));
    assert_eq!(left, Some(0), "nothing of the failed calls was left in the client's mailbox");
    assert!(is_alive(server), "the server answered and lives on: only its reply was dropped");
}
