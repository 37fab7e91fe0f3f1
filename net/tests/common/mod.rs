//! Helpers shared by the network node's integration tests (mio's `tests/util` layout).
//!
//! Two (or three) nodes are two runtimes, each with a [`Node`], in this one test process, on
//! 127.0.0.1 with ports the OS picks. Every wait here is bounded by [`TIMEOUT`], so a bug fails
//! the test with a message instead of hanging the suite.
//!
//! A Pid of one runtime handed to another as a Rust value would be delivered in-process,
//! bypassing the network; [`remote_pid`] gives the Pid as the other node sees it, having sent it
//! over the wire.
//!
//! [`raw`] speaks the wire protocol by hand (frames, and the cookie handshake as its module docs
//! in `net/src/handshake.rs` describe it), for the hostile-peer tests.
//!
//! [`proxy`] puts a TCP proxy in front of a node, so that a test can cut a connection between
//! two live nodes.
#![allow(dead_code)]

pub mod nodes;
pub mod proxy;

pub use nodes::*;

use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use krarup_runtime::{Message, Pid};
use serde::{Deserialize, Serialize};

/// The bound on every wait: long enough for a noisy two-core machine, short enough that a lost
/// message fails the test rather than the CI run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The cookie every test node shares (unless a test is about cookies).
pub const COOKIE: &str = "krarup-net-tests";

/// Inside a process: the next `T`, or a panic after [`TIMEOUT`].
pub async fn recv_bounded<T: Message>() -> T {
    match krarup_runtime::recv_timeout::<T>(TIMEOUT).await {
        Some(msg) => msg,
        None => panic!("no {} arrived within {TIMEOUT:?}", std::any::type_name::<T>()),
    }
}

/// Inside a process: monitors `pid` and waits for it to exit; its exit reason.
pub async fn exit_reason_of(pid: Pid) -> krarup_runtime::ExitReason {
    use krarup_runtime::{monitor, receive, Down};
    let reference = monitor(pid);
    receive! {
        down: Down if down.reference == reference => down.reason,
        after TIMEOUT => panic!("{pid:?} did not exit within {TIMEOUT:?}"),
    }
}

/// Waits until `condition` holds, at most [`TIMEOUT`]; for what no message reports (counters
/// bumped by an I/O thread, `nodes()`).
pub fn wait_until(what: impl Debug, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what:?} did not happen within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A request to an [`echo`] process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ping {
    pub from: Pid,
    pub n: u64,
}

/// An [`echo`] process's answer.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub from: Pid,
    pub n: u64,
}

/// Tells a [`echo`] process to end with a reason.
#[derive(Debug, Serialize, Deserialize)]
pub struct Quit(pub krarup_runtime::ExitReason);

/// A process that answers every [`Ping`] with a [`Pong`] carrying its own Pid, and ends with the
/// reason a [`Quit`] gives (a `Panic` reason is a real panic).
pub async fn echo() -> krarup_runtime::ExitReason {
    use krarup_runtime::{receive, ExitReason};
    loop {
        receive! {
            ping: Ping => ping.from.send(Pong { from: krarup_runtime::self_pid(), n: ping.n }),
            quit: Quit => match quit.0 {
                ExitReason::Panic(message) => panic!("{message}"),
                reason => return reason,
            },
        }
    }
}

/// Inside a process: pings `to` and waits for its pong: afterwards, everything this node sent
/// to `to`'s node before the ping has been applied there, and everything that node sent here
/// before the pong has arrived (one connection per pair keeps order).
pub async fn round_trip(to: Pid) {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    to.send(Ping { from: krarup_runtime::self_pid(), n });
    loop {
        let pong: Pong = recv_bounded().await;
        if pong.n == n {
            return;
        }
    }
}

/// The wire protocol by hand: frames, and the initiator's side of the cookie handshake.
pub mod raw {
    use std::io::{self, Read, Write};
    use std::net::TcpStream;

    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;

    use super::TIMEOUT;

    pub const HELLO: u8 = 1;
    pub const CHALLENGE: u8 = 2;
    pub const PROOF: u8 = 3;
    pub const ACCEPT: u8 = 4;
    pub const REFUSE: u8 = 5;
    pub const SEND: u8 = 16;
    pub const NAMED: u8 = 17;
    pub const TICK: u8 = 24;
    pub const VERSION: u32 = 2;

    /// `L` (u32 LE, counting kind and body), the kind, the body.
    pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + body.len());
        out.extend_from_slice(&(body.len() as u32 + 1).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(body);
        out
    }

    /// A connected socket with reads bounded by [`TIMEOUT`].
    pub fn dial(port: u16) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("the node accepts");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// The next frame, or None at end of stream (or a reset: the peer closed on us).
    pub fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        let mut len = [0u8; 4];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => return None,
            Err(e) => panic!("reading a frame: {e}"),
        }
        let len = u32::from_le_bytes(len) as usize;
        assert!((1..=1 << 20).contains(&len), "a frame of {len} bytes from a krarup node");
        let mut rest = vec![0u8; len];
        stream.read_exact(&mut rest).expect("a whole frame");
        let body = rest.split_off(1);
        Some((rest[0], body))
    }

    /// Reads until the node closes the connection (bounded by the read timeout); returns the
    /// frames it sent first.
    pub fn until_closed(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        loop {
            let mut len = [0u8; 4];
            match stream.read(&mut len[..1]) {
                Ok(0) => return frames,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return frames,
                Err(e) => panic!("the node did not close the connection: {e}"),
            }
            if stream.read_exact(&mut len[1..]).is_err() {
                return frames;
            }
            let len = u32::from_le_bytes(len) as usize;
            let mut rest = vec![0u8; len];
            if stream.read_exact(&mut rest).is_err() {
                return frames;
            }
            let body = rest.split_off(1);
            frames.push((rest[0], body));
        }
    }

    /// The reason in a `REFUSE` body.
    pub fn refusal(body: &[u8]) -> String {
        #[derive(Deserialize)]
        struct Refuse {
            reason: String,
        }
        postcard::from_bytes::<Refuse>(body).expect("a REFUSE body").reason
    }

    #[derive(Serialize)]
    pub struct Hello<'a> {
        pub version: u32,
        pub name: &'a str,
        pub creation: u32,
        pub challenge: [u8; 32],
    }

    #[derive(Serialize, Deserialize)]
    pub struct Challenge {
        pub version: u32,
        pub name: String,
        pub creation: u32,
        pub challenge: [u8; 32],
        pub proof: [u8; 32],
    }

    #[derive(Serialize, Deserialize)]
    struct Proof {
        proof: [u8; 32],
    }

    /// The proof of the handshake's module docs: HMAC-SHA256 over the label and the transcript,
    /// every field prefixed by its length.
    #[allow(clippy::too_many_arguments)]
    pub fn proof(
        cookie: &[u8],
        label: &[u8],
        challenge_a: &[u8; 32],
        challenge_b: &[u8; 32],
        initiator: (&str, u32),
        acceptor: (&str, u32),
    ) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(cookie).unwrap();
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_le_bytes());
            mac.update(bytes);
        };
        field(label);
        field(&VERSION.to_le_bytes());
        field(challenge_a);
        field(challenge_b);
        field(initiator.0.as_bytes());
        field(&initiator.1.to_le_bytes());
        field(acceptor.0.as_bytes());
        field(&acceptor.1.to_le_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A hand-made peer that has done the handshake with a node, as node `name`: from now on the
    /// test writes whatever frames it likes.
    pub struct Peer {
        pub stream: TcpStream,
        /// The node's creation, from its `CHALLENGE`.
        pub node_creation: u32,
    }

    impl Peer {
        /// Dials the node `node` (its name) on `port` and does the handshake as `name` with
        /// `cookie`.
        pub fn connect(port: u16, node: &str, name: &str, cookie: &[u8]) -> Peer {
            let mut stream = dial(port);
            let challenge_a = [7u8; 32];
            let creation = 4242;
            let hello = Hello { version: VERSION, name, creation, challenge: challenge_a };
            stream.write_all(&frame(HELLO, &postcard::to_allocvec(&hello).unwrap())).unwrap();
            let (kind, body) = read_frame(&mut stream).expect("a CHALLENGE");
            assert_eq!(kind, CHALLENGE, "the node answers HELLO with CHALLENGE");
            let challenge: Challenge = postcard::from_bytes(&body).expect("a CHALLENGE body");
            assert_eq!(challenge.name, node, "the node is the one dialed");
            let expected = proof(
                cookie,
                b"krarup/1 acceptor",
                &challenge_a,
                &challenge.challenge,
                (name, creation),
                (node, challenge.creation),
            );
            assert_eq!(challenge.proof, expected, "the node proves it holds the cookie");
            let proof = proof(
                cookie,
                b"krarup/1 initiator",
                &challenge_a,
                &challenge.challenge,
                (name, creation),
                (node, challenge.creation),
            );
            stream.write_all(&frame(PROOF, &postcard::to_allocvec(&Proof { proof }).unwrap())).unwrap();
            let (kind, body) = read_frame(&mut stream).expect("an ACCEPT");
            assert_eq!(
                (kind, body.len()),
                (ACCEPT, 0),
                "the node accepts (REFUSE: {:?})",
                String::from_utf8_lossy(&body)
            );
            Peer { stream, node_creation: challenge.creation }
        }

        /// Writes `bytes` as they are.
        pub fn write(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("the node is still reading");
        }

        /// A `NAMED` frame: `message` (already encoded, whatever its bytes) with type tag `tag`
        /// for the process registered as `name`.
        pub fn send_named(&mut self, name: &str, tag: u64, message: &[u8]) {
            let mut body = postcard::to_allocvec(&(name, tag)).unwrap();
            body.extend_from_slice(message);
            self.write(&frame(NAMED, &body));
        }
    }
}

/// The warnings this test process logs, captured by a small `tracing` subscriber, so that a test
/// can check that a connection was closed *with a logged reason*.
///
/// The subscriber is global (the I/O threads log on their own threads), so the log is shared by
/// the tests of one binary: a test looks for a warning that names what only it did (its peer's
/// name, its frame's length, its kind byte).
pub mod logs {
    use std::fmt::{Debug, Write as _};
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Keeps every event at WARN or above as one line of `field=value` pairs.
    struct Capture;

    struct Line<'a>(&'a mut String);

    impl Visit for Line<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }

        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, _: &Record<'_>) {}

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut line = String::new();
            event.record(&mut Line(&mut line));
            LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    /// Starts capturing (once per test binary; later calls do nothing).
    pub fn capture() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            tracing::subscriber::set_global_default(Capture).expect("no other subscriber in the tests");
        });
    }

    /// Waits until a warning containing every one of `parts` has been logged (at most
    /// [`TIMEOUT`](super::TIMEOUT)); panics with the log if none is.
    pub fn expect_warning(parts: &[&str]) {
        let found = || {
            let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
            log.iter().any(|line| parts.iter().all(|part| line.contains(part)))
        };
        let deadline = std::time::Instant::now() + super::TIMEOUT;
        while !found() {
            if std::time::Instant::now() >= deadline {
                let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
                panic!("no warning with {parts:?} was logged; the warnings:\n{}", log.join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}
