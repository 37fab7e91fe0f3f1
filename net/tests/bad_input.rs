//! Hostile and broken peers: wrong cookies, versions and names, garbage before and after the
//! handshake, oversize and truncated frames, frames that address what they may not, undecodable
//! messages. Each is refused or closed with a reason (the `REFUSE` a hand-made peer reads, the
//! error `connect` returns, the warning the node logs, its `bad_input` count), and the node goes
//! on serving its other connections: every test ends with node c still talking to node b.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::logs::expect_warning;
use common::{echo, expect_msg, logs, raw, recv_bounded, wait_until, Ping, Pong, Side, COOKIE};
use krarup_net::{ConnectError, NodeConfig};
use krarup_runtime::dist::tag_of;
use krarup_runtime::{self_pid, send_named_at};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// Node b, with an echo registered as "echo", and node c connected to it and talking.
fn b_and_c(config: NodeConfig) -> (Side, Side) {
    logs::capture();
    let b = Side::with(config);
    let echo_pid = b.rt.spawn(echo());
    b.rt.register("echo", echo_pid).unwrap();
    let c = Side::start("c");
    assert_serves(&b, &c);
    (b, c)
}

fn default_b() -> NodeConfig {
    NodeConfig::new("b@127.0.0.1:0", COOKIE)
}

/// c asks b's echo, by name, and gets its answer; c's connection to b is the one it had.
fn assert_serves(b: &Side, c: &Side) {
    let b_name = b.name().to_owned();
    let pong = c.rt.block_on(async move {
        send_named_at("echo", &b_name, Ping { from: self_pid(), n: 99 });
        recv_bounded::<Pong>().await
    });
    assert_eq!(pong.n, 99);
    assert_eq!(c.node.stats().connections_closed, 0, "c's connection to b was never lost");
}

/// Waits until b has counted `n` connections closed for bad input.
fn wait_bad_input(b: &Side, n: u64) {
    wait_until(format!("{} counts {n} bad connection(s)", b.name()), || b.node.stats().bad_input >= n);
    assert_eq!(b.node.stats().bad_input, n);
}

/// The reasons of the `REFUSE` frames among `frames`.
fn refusals(frames: &[(u8, Vec<u8>)]) -> Vec<String> {
    frames.iter().filter(|(kind, _)| *kind == raw::REFUSE).map(|(_, body)| raw::refusal(body)).collect()
}

#[test]
fn a_wrong_cookie_is_refused_with_a_clear_error_on_both_sides() {
    let (b, c) = b_and_c(default_b());
    let a = Side::with(NodeConfig::new("a@127.0.0.1:0", "not the cookie"));

    match a.node.connect(b.name()) {
        Err(ConnectError::Failed(reason)) => assert!(reason.contains("cookie"), "a's error: {reason}"),
        other => panic!("connecting with the wrong cookie: {other:?}"),
    }
    assert_eq!(a.node.stats().bad_input, 1, "a closed the connection: b's proof did not check out");
    expect_warning(&["bad input", b.name(), "failed the cookie challenge"]);
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", a.name(), "refused the connection", "wrong cookie"]);
    assert!(a.node.nodes().is_empty() && !b.node.nodes().contains(&a.name().to_owned()));

    // b tells a peer with the wrong cookie why it is refused.
    let mut stream = raw::dial(b.port());
    let hello = raw::Hello { version: raw::VERSION, name: "wrongcookie@127.0.0.1:1", creation: 1, challenge: [1; 32] };
    stream.write_all(&raw::frame(raw::HELLO, &postcard::to_allocvec(&hello).unwrap())).unwrap();
    let (kind, _) = raw::read_frame(&mut stream).expect("a CHALLENGE");
    assert_eq!(kind, raw::CHALLENGE);
    stream.write_all(&raw::frame(raw::PROOF, &[0; 32])).unwrap();
    let reasons = refusals(&raw::until_closed(&mut stream));
    assert!(reasons.iter().any(|r| r.contains("cookie")), "b's refusal: {reasons:?}");
    wait_bad_input(&b, 2);
    expect_warning(&["bad input", "wrongcookie@127.0.0.1:1", "failed the cookie challenge"]);
    assert_serves(&b, &c);
}

#[test]
fn another_protocol_version_is_refused_with_the_reason() {
    let (b, c) = b_and_c(default_b());
    let mut stream = raw::dial(b.port());
    // A build of the first version, from before frame kind 25.
    let hello = raw::Hello { version: 1, name: "raw@127.0.0.1:1", creation: 1, challenge: [1; 32] };
    stream.write_all(&raw::frame(raw::HELLO, &postcard::to_allocvec(&hello).unwrap())).unwrap();
    let reasons = refusals(&raw::until_closed(&mut stream));
    assert!(reasons.iter().any(|r| r.contains("version")), "b's refusal: {reasons:?}");
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", "protocol version mismatch: this node speaks version 2, the peer 1 "]);
    assert_serves(&b, &c);
}

#[test]
fn an_invalid_node_name_in_hello_is_refused() {
    let (b, c) = b_and_c(default_b());
    let mut stream = raw::dial(b.port());
    let hello = raw::Hello { version: raw::VERSION, name: "no at sign", creation: 1, challenge: [1; 32] };
    stream.write_all(&raw::frame(raw::HELLO, &postcard::to_allocvec(&hello).unwrap())).unwrap();
    let reasons = refusals(&raw::until_closed(&mut stream));
    assert!(reasons.iter().any(|r| r.contains("name@host:port")), "b's refusal: {reasons:?}");
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", "invalid node name \"no at sign\""]);
    assert_serves(&b, &c);
}

#[test]
fn a_node_answering_with_another_name_is_refused() {
    logs::capture();
    let a = Side::start("a");
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = impostor.local_addr().unwrap().port();
    let dialed = format!("b@127.0.0.1:{port}");
    let answering = format!("impostor@127.0.0.1:{port}");
    let fake = {
        let answering = answering.clone();
        std::thread::spawn(move || {
            let (mut stream, _) = impostor.accept().unwrap();
            stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
            let (kind, _) = raw::read_frame(&mut stream).expect("a HELLO");
            assert_eq!(kind, raw::HELLO);
            let challenge = raw::Challenge {
                version: raw::VERSION,
                name: answering,
                creation: 1,
                challenge: [2; 32],
                proof: [3; 32],
            };
            stream.write_all(&raw::frame(raw::CHALLENGE, &postcard::to_allocvec(&challenge).unwrap())).unwrap();
            refusals(&raw::until_closed(&mut stream))
        })
    };
    match a.node.connect(&dialed) {
        Err(ConnectError::Failed(reason)) => {
            assert!(reason.contains(&dialed) && reason.contains(&answering), "a's error: {reason}")
        }
        other => panic!("connecting to a node with another name: {other:?}"),
    }
    let reasons = fake.join().unwrap();
    assert!(reasons.iter().any(|r| r.contains(&answering)), "a's refusal: {reasons:?}");
    assert_eq!(a.node.stats().bad_input, 1);
    expect_warning(&["bad input", &format!("dialed {dialed} but the node that answered is {answering}")]);
    assert!(a.node.nodes().is_empty());
}

#[test]
fn garbage_before_the_handshake_closes_only_that_connection() {
    let (b, c) = b_and_c(default_b());

    // Not krarup at all: "GET " read as a length is far past the handshake's limit.
    let mut http = raw::dial(b.port());
    http.write_all(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n").unwrap();
    raw::until_closed(&mut http);
    wait_bad_input(&b, 1);
    let get = u32::from_le_bytes(*b"GET ");
    expect_warning(&["bad input", &format!("frame of {get} bytes exceeds the maximum frame size of 4096 ")]);

    // A well-formed frame of a kind the handshake does not have.
    let mut odd = raw::dial(b.port());
    odd.write_all(&raw::frame(99, b"hello?")).unwrap();
    let reasons = refusals(&raw::until_closed(&mut odd));
    assert!(reasons.iter().any(|r| r.contains("kind 99")), "b's refusal: {reasons:?}");
    wait_bad_input(&b, 2);
    expect_warning(&["bad input", "unexpected handshake message of kind 99 "]);

    // A distribution frame before any handshake.
    let mut early = raw::dial(b.port());
    early.write_all(&raw::frame(raw::TICK, &[])).unwrap();
    raw::until_closed(&mut early);
    wait_bad_input(&b, 3);
    expect_warning(&["bad input", "unexpected handshake message of kind 24 while waiting for HELLO"]);
    assert_serves(&b, &c);
}

#[test]
fn an_oversize_length_prefix_closes_the_connection_before_its_body_arrives() {
    let (b, c) = b_and_c(default_b().max_frame(1 << 20));

    // Before the handshake: four bytes announcing 4 GiB, and nothing more.
    let mut before = raw::dial(b.port());
    before.write_all(&u32::MAX.to_le_bytes()).unwrap();
    raw::until_closed(&mut before);
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", "frame of 4294967295 bytes exceeds the maximum frame size of 4096 "]);

    // After it: one byte past the node's maximum frame, its kind, and nothing more.
    let mut after = raw::Peer::connect(b.port(), b.name(), "oversize@127.0.0.1:1", COOKIE.as_bytes());
    after.write(&((1u32 << 20) + 1).to_le_bytes());
    after.write(&[raw::SEND]);
    raw::until_closed(&mut after.stream);
    wait_bad_input(&b, 2);
    expect_warning(&[
        "bad input",
        "oversize@127.0.0.1:1",
        "frame of 1048577 bytes exceeds the maximum frame size of 1048576 ",
    ]);
    assert_serves(&b, &c);
}

#[test]
fn a_truncated_frame_closes_the_connection_as_bad_input() {
    let (b, c) = b_and_c(default_b());

    // During the handshake: half a HELLO, then end of stream.
    let mut half = raw::dial(b.port());
    let hello = raw::Hello { version: raw::VERSION, name: "raw@127.0.0.1:1", creation: 1, challenge: [1; 32] };
    let frame = raw::frame(raw::HELLO, &postcard::to_allocvec(&hello).unwrap());
    half.write_all(&frame[..frame.len() / 2]).unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    raw::until_closed(&mut half);
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", "peer=None", "in the middle of a frame (truncated frame)"]);

    // After it: a frame announcing 100 bytes, 10 of them, then end of stream.
    let mut peer = raw::Peer::connect(b.port(), b.name(), "truncated@127.0.0.1:1", COOKIE.as_bytes());
    let frame = raw::frame(raw::SEND, &[0; 99]);
    peer.write(&frame[..15]);
    peer.stream.shutdown(Shutdown::Write).unwrap();
    raw::until_closed(&mut peer.stream);
    wait_bad_input(&b, 2);
    expect_warning(&["bad input", "truncated@127.0.0.1:1", "(truncated frame)"]);
    assert_serves(&b, &c);
}

#[test]
fn garbage_after_the_handshake_closes_only_that_connection() {
    let (b, c) = b_and_c(default_b());
    let garbage: [(&[u8], &str); 4] = [
        // A kind the protocol does not have.
        (&raw::frame(200, b"junk"), "unexpected frame kind 200"),
        // A SEND shorter than its header.
        (&raw::frame(raw::SEND, &[0xff; 3]), "frame of kind 16 is shorter than its header"),
        // A handshake frame after the handshake.
        (&raw::frame(raw::HELLO, &[1, 2, 3]), "unexpected frame kind 1"),
        // A TICK with a body.
        (&raw::frame(raw::TICK, &[0]), "frame of kind 24 has bytes after its body"),
    ];
    for (i, (bytes, reason)) in garbage.iter().enumerate() {
        let name = format!("garbage{i}@127.0.0.1:1");
        let mut peer = raw::Peer::connect(b.port(), b.name(), &name, COOKIE.as_bytes());
        peer.write(bytes);
        raw::until_closed(&mut peer.stream);
        wait_bad_input(&b, i as u64 + 1);
        expect_warning(&["bad input", &name, reason]);
        assert_serves(&b, &c);
    }
}

#[test]
fn a_frame_from_a_third_nodes_process_is_refused_and_one_for_an_earlier_incarnation_is_dropped() {
    let (b, c) = b_and_c(default_b());
    let echo_pid = b.rt.whereis("echo").unwrap();
    let name = "raw@127.0.0.1:1";

    // A message's receiver is written as (index, serial, creation) of a process of the node it
    // is sent to: a third node's process cannot even be named. One with a creation that is not
    // b's (a process of an earlier b) is a dead process: the message is dropped and counted,
    // and the connection stays.
    let mut peer = raw::Peer::connect(b.port(), b.name(), name, COOKIE.as_bytes());
    let dropped = b.rt.stats().dropped_messages;
    let mut body = Vec::new();
    for word in [echo_pid.index(), echo_pid.serial(), peer.node_creation.wrapping_add(1)] {
        body.extend_from_slice(&word.to_le_bytes());
    }
    body.extend_from_slice(&tag_of::<u64>().to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&postcard::to_allocvec(&5u64).unwrap());
    peer.write(&raw::frame(raw::SEND, &body));
    wait_until("b drops the message for an earlier incarnation", || b.rt.stats().dropped_messages > dropped);
    assert_eq!(b.node.stats().bad_input, 0);
    let third = (2u8, 0u32, 0u32, "x@127.0.0.1:9", 1u32);

    // A link that claims to come from a process of node x, to b's echo.
    let mut peer = raw::Peer::connect(b.port(), b.name(), "thirdlink@127.0.0.1:1", COOKIE.as_bytes());
    let echo = (1u8, echo_pid.index(), echo_pid.serial(), peer.node_creation);
    peer.write(&raw::frame(19, &postcard::to_allocvec(&(third, echo)).unwrap()));
    raw::until_closed(&mut peer.stream);
    wait_bad_input(&b, 1);
    expect_warning(&["bad input", "thirdlink@127.0.0.1:1", "a frame acting for a process of another node"]);
    assert!(krarup_runtime::is_alive(echo_pid));
    assert_serves(&b, &c);
}

/// A message type whose decoding refuses odd numbers: sent as `Picky(1)`, it arrives with
/// `Picky`'s tag and bytes that do not decode as a `Picky`.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Picky(u32);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
        match u32::deserialize(d)? {
            n if n % 2 == 1 => Err(D::Error::custom(format_args!("{n} is odd"))),
            n => Ok(Picky(n)),
        }
    }
}

#[test]
fn an_undecodable_message_is_dropped_and_counted_and_the_connection_stays() {
    let (b, c) = b_and_c(default_b());
    let mut inbox = b.rt.mailbox();
    let report = inbox.pid();
    let receiver = b.rt.spawn(async move {
        for _ in 0..2 {
            let picky: Picky = recv_bounded().await;
            report.send(picky.0);
        }
    });
    b.rt.register("picky", receiver).unwrap();
    let before = b.rt.stats().undecodable_messages;

    // From a real node: the bytes of Picky(1), which b cannot decode as a Picky.
    let b_name = b.name().to_owned();
    c.rt.block_on(async move {
        send_named_at("picky", &b_name, Picky(1));
        send_named_at("picky", &b_name, Picky(2));
    });
    assert_eq!(expect_msg::<u32>(&mut inbox), 2, "the undecodable message is skipped, the next one taken");
    assert!(b.rt.stats().undecodable_messages > before);
    expect_warning(&["message_type=\"bad_input::Picky\"", "did not decode"]);

    // From a hand-made peer: Picky's tag on bytes that are no u32 at all.
    let mut peer = raw::Peer::connect(b.port(), b.name(), "raw@127.0.0.1:1", COOKIE.as_bytes());
    let before = b.rt.stats().undecodable_messages;
    peer.send_named("picky", tag_of::<Picky>(), &[0xff; 11]);
    peer.send_named("picky", tag_of::<Picky>(), &postcard::to_allocvec(&4u32).unwrap());
    assert_eq!(expect_msg::<u32>(&mut inbox), 4);
    assert!(b.rt.stats().undecodable_messages > before);

    // Neither connection was closed for it.
    assert_eq!(b.node.stats().bad_input, 0);
    assert_eq!(b.node.stats().connections_closed, 0);
    // Nor for a message to a name nobody has: the frame after it, on the same connection, is
    // read and delivered (c's connection, checked by `assert_serves`, does not order with it).
    b.rt.register("inbox", inbox.pid()).unwrap();
    peer.send_named("nobody", tag_of::<u32>(), &[1]);
    peer.send_named("inbox", tag_of::<u32>(), &postcard::to_allocvec(&6u32).unwrap());
    assert_eq!(expect_msg::<u32>(&mut inbox), 6, "the frame after the one for nobody");
    assert_serves(&b, &c);
    assert_eq!(b.node.stats().connections_closed, 0, "the hand-made peer is still connected");
}

#[test]
fn an_incoming_connection_that_never_completes_the_handshake_is_closed() {
    let (b, c) = b_and_c(default_b().connect_timeout(Duration::from_millis(300)));
    let mut silent = raw::dial(b.port());
    raw::until_closed(&mut silent);
    wait_until("b closes the silent connection", || b.node.stats().connections_closed >= 1);
    assert_eq!(b.node.stats().bad_input, 0, "a slow peer is not a hostile one");
    assert_serves(&b, &c);
}

/// Random byte streams (a fixed-seed xorshift, so a failure repeats), each on its own
/// connection: none takes the node down, each connection is closed, the node serves on.
#[test]
fn random_byte_streams_never_take_the_node_down() {
    const STREAMS: usize = 64;
    let (b, c) = b_and_c(default_b().connect_timeout(Duration::from_millis(500)));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..STREAMS {
        let len = (next() % 2048) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 4 == 0 && bytes.len() >= 5 {
            // Some streams start with a plausible frame header, to get past the length check.
            bytes[..4].copy_from_slice(&((next() % 64) as u32 + 1).to_le_bytes());
            bytes[4] = (next() % 6) as u8;
        }
        let mut stream = raw::dial(b.port());
        // The node may close before it has read everything: a write error is the node's answer.
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        raw::until_closed(&mut stream);
    }
    wait_until("b closes every random stream", || b.node.stats().connections_closed >= STREAMS as u64);
    assert_serves(&b, &c);
}
