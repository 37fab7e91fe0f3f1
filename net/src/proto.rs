//! The distribution protocol: the frames two connected nodes exchange after the handshake, how
//! an [`Outgoing`] item becomes one, and how a received one is applied to the local runtime.
//!
//! | kind | frame      | body (postcard, Pids in the connection's wire form)        |
//! |------|------------|------------------------------------------------------------|
//! | 16   | `SEND`     | `to` (index, serial, creation: u32 LE each), `tag` (u64 LE), `guard` (u64 LE, 0 for none), then the message's own encoding |
//! | 17   | `NAMED`    | `(name, tag)` then the message's own encoding               |
//! | 18   | `EXIT`     | `(from, to, reason, link)`                                  |
//! | 19   | `LINK`     | `(from, to)`                                                |
//! | 20   | `UNLINK`   | `(from, to)`                                                |
//! | 21   | `MONITOR`  | `reference` (watcher, target, id)                           |
//! | 22   | `DEMONITOR`| `reference`                                                 |
//! | 23   | `DOWN`     | `(reference, reason)`                                       |
//! | 24   | `TICK`     | empty: "I am alive" on an idle connection                   |
//! | 25   | `MONITOR_NAMED` | `(reference, name)`: a monitor of the process registered as `name` (the reference's target names no process) |
//!
//! `SEND`, by far the most frequent frame, has a fixed binary header rather than a postcard one:
//! its receiver is always a process of the node it is sent to, so the general Pid encoding is not
//! needed, and decoding it is a few loads instead of a serde visit.
//!
//! Invariant: a frame is applied only whole and only if it decodes completely; anything else is
//! a [`ProtocolError`] and the connection is closed. A message's own bytes are not decoded here
//! (the receiving process decodes them when a receive asks for their type), so an undecodable
//! message costs the connection nothing: it is dropped and counted at the receiver.

use std::fmt;

use krarup_runtime::dist::{Inbound, Outgoing, Refused, Wire, WireError};
use krarup_runtime::{ExitReason, MonitorRef, Pid};

use crate::frame::{self, Frame, FrameError};

/// Frame kind: a message to a Pid.
pub(crate) const SEND: u8 = 16;
/// The length of `SEND`'s fixed header.
const SEND_HEADER: usize = 28;
/// Frame kind: a message to a registered name.
pub(crate) const NAMED: u8 = 17;
/// Frame kind: an exit signal.
pub(crate) const EXIT: u8 = 18;
/// Frame kind: a link request.
pub(crate) const LINK: u8 = 19;
/// Frame kind: an unlink.
pub(crate) const UNLINK: u8 = 20;
/// Frame kind: a monitor request.
pub(crate) const MONITOR: u8 = 21;
/// Frame kind: a demonitor.
pub(crate) const DEMONITOR: u8 = 22;
/// Frame kind: a monitored process exited.
pub(crate) const DOWN: u8 = 23;
/// Frame kind: a heartbeat.
pub(crate) const TICK: u8 = 24;
/// Frame kind: a monitor of a registered name.
pub(crate) const MONITOR_NAMED: u8 = 25;

/// Appends the frame for `item` to `buf`. On error `buf` is unchanged.
pub(crate) fn encode(item: &Outgoing<'_>, wire: &Wire, buf: &mut Vec<u8>, max: u32) -> Result<(), EncodeError> {
    let kind = match item {
        Outgoing::Message { .. } => SEND,
        Outgoing::Named { .. } => NAMED,
        Outgoing::Exit { .. } => EXIT,
        Outgoing::Link { .. } => LINK,
        Outgoing::Unlink { .. } => UNLINK,
        Outgoing::Monitor { .. } => MONITOR,
        Outgoing::MonitorNamed { .. } => MONITOR_NAMED,
        Outgoing::Demonitor { .. } => DEMONITOR,
        Outgoing::Down { .. } => DOWN,
        _ => return Err(EncodeError::Unknown),
    };
    let start = frame::begin(buf, kind);
    let written = match item {
        Outgoing::Message { to, tag, guard, payload } => match wire.receiver(*to) {
            Some(to) => {
                for word in to {
                    buf.extend_from_slice(&word.to_le_bytes());
                }
                buf.extend_from_slice(&tag.to_le_bytes());
                buf.extend_from_slice(&guard.unwrap_or(0).to_le_bytes());
                payload.encode(wire, buf)
            }
            None => {
                buf.truncate(start);
                return Err(EncodeError::NotThePeers);
            }
        },
        Outgoing::Named { name, tag, payload } => {
            wire.encode(&(name, tag), buf).and_then(|()| payload.encode(wire, buf))
        }
        Outgoing::Exit { from, to, reason, link } => wire.encode(&(from, to, reason, link), buf),
        Outgoing::Link { from, to } | Outgoing::Unlink { from, to } => wire.encode(&(from, to), buf),
        Outgoing::Monitor { reference } | Outgoing::Demonitor { reference } => wire.encode(reference, buf),
        Outgoing::MonitorNamed { reference, name } => wire.encode(&(reference, name), buf),
        Outgoing::Down { reference, reason } => wire.encode(&(reference, reason), buf),
        _ => unreachable!("kinds are matched above"),
    };
    if let Err(e) = written {
        buf.truncate(start);
        return Err(EncodeError::Wire(e));
    }
    frame::finish(buf, start, max).map_err(EncodeError::Frame)
}

/// Why an item could not be put on the wire (it is dropped; the connection is unharmed).
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The message does not serialize.
    Wire(WireError),
    /// Encoded, it is larger than the maximum frame.
    Frame(FrameError),
    /// An item this version does not know how to carry.
    Unknown,
    /// A message for a process that is not the peer's (a bug in the caller).
    NotThePeers,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Wire(e) => write!(f, "cannot encode: {e}"),
            EncodeError::Frame(e) => write!(f, "cannot send: {e}"),
            EncodeError::Unknown => f.write_str("cannot send an item of a kind this version does not know"),
            EncodeError::NotThePeers => f.write_str("cannot send: the receiver is not a process of this peer"),
        }
    }
}

/// A frame that breaks the distribution protocol: the connection is closed with this reason.
#[derive(Debug)]
pub(crate) enum ProtocolError {
    /// Its body is not what its kind says.
    Malformed {
        /// The frame kind.
        kind: u8,
        /// The decoder's complaint.
        error: WireError,
    },
    /// Its header does not decode.
    Garbled {
        /// The frame kind.
        kind: u8,
        /// The decoder's complaint.
        error: postcard::Error,
    },
    /// Shorter than its fixed header.
    Short {
        /// The frame kind.
        kind: u8,
    },
    /// Bytes left over after the body.
    Trailing {
        /// The frame kind.
        kind: u8,
    },
    /// It addresses or claims to act for a process it may not.
    Refused(Refused),
    /// A kind the protocol does not have (or a handshake frame after the handshake).
    UnknownKind(u8),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Malformed { kind, error } => write!(f, "malformed frame of kind {kind}: {error}"),
            ProtocolError::Garbled { kind, error } => write!(f, "malformed frame of kind {kind}: {error}"),
            ProtocolError::Short { kind } => write!(f, "frame of kind {kind} is shorter than its header"),
            ProtocolError::Trailing { kind } => write!(f, "frame of kind {kind} has bytes after its body"),
            ProtocolError::Refused(r) => write!(f, "refused frame: {r}"),
            ProtocolError::UnknownKind(kind) => write!(f, "unexpected frame kind {kind}"),
        }
    }
}

/// Decodes the whole of `body` as a `T` (Pids translated by `inbound`).
fn whole<T: serde::de::DeserializeOwned>(inbound: &Inbound, kind: u8, body: &[u8]) -> Result<T, ProtocolError> {
    let (value, rest) = inbound.decode_prefix(body).map_err(|error| ProtocolError::Malformed { kind, error })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(ProtocolError::Trailing { kind })
    }
}

/// Applies one received distribution frame to the local runtime.
pub(crate) fn apply(inbound: &Inbound, frame: Frame<'_>) -> Result<(), ProtocolError> {
    let refused = ProtocolError::Refused;
    match frame.kind {
        SEND => {
            let Some((header, payload)) = frame.body.split_first_chunk::<SEND_HEADER>() else {
                return Err(ProtocolError::Short { kind: SEND });
            };
            let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
            let long = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
            let to = inbound.receiver([word(0), word(4), word(8)]);
            let guard = Some(long(20)).filter(|&g| g != 0);
            inbound.deliver_to(to, long(12), guard, payload);
            Ok(())
        }
        NAMED => {
            let ((name, tag), payload): ((&str, u64), _) =
                postcard::take_from_bytes(frame.body).map_err(|error| ProtocolError::Garbled { kind: NAMED, error })?;
            inbound.deliver_named(name, tag, payload);
            Ok(())
        }
        EXIT => {
            let (from, to, reason, link): (Pid, Pid, ExitReason, bool) = whole(inbound, EXIT, frame.body)?;
            inbound.exit(from, to, reason, link).map_err(refused)
        }
        LINK => {
            let (from, to): (Pid, Pid) = whole(inbound, LINK, frame.body)?;
            inbound.link(from, to).map_err(refused)
        }
        UNLINK => {
            let (from, to): (Pid, Pid) = whole(inbound, UNLINK, frame.body)?;
            inbound.unlink(from, to).map_err(refused)
        }
        MONITOR => {
            let reference: MonitorRef = whole(inbound, MONITOR, frame.body)?;
            inbound.monitor(reference).map_err(refused)
        }
        MONITOR_NAMED => {
            let (reference, name): (MonitorRef, String) = whole(inbound, MONITOR_NAMED, frame.body)?;
            inbound.monitor_named(reference, &name).map_err(refused)
        }
        DEMONITOR => {
            let reference: MonitorRef = whole(inbound, DEMONITOR, frame.body)?;
            inbound.demonitor(reference).map_err(refused)
        }
        DOWN => {
            let (reference, reason): (MonitorRef, ExitReason) = whole(inbound, DOWN, frame.body)?;
            inbound.down(reference, reason).map_err(refused)
        }
        TICK if frame.body.is_empty() => Ok(()),
        TICK => Err(ProtocolError::Trailing { kind: TICK }),
        kind => Err(ProtocolError::UnknownKind(kind)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use krarup_runtime::dist::{attach, Distribution, Route};
    use krarup_runtime::{ExitReason, Runtime};

    use super::*;
    use crate::frame::tests::XorShift;
    use crate::frame::FrameReader;
    use crate::sync::global::Arc;

    /// A network layer that reaches nobody.
    struct Nowhere;

    impl Distribution for Nowhere {
        fn route(&self, _node: &str) -> Option<Arc<dyn Route>> {
            None
        }
    }

    const PEER: &str = "peer@127.0.0.1:1";

    /// Bodies of every kind, encoded as a peer would (Pids of the peer and of ours).
    fn seeds(rt: &Runtime, peer_node: u32) -> Vec<(u8, Vec<u8>)> {
        let ours = rt.spawn(async {
            krarup_runtime::recv::<u64>().await;
        });
        let theirs = Pid::from_parts(peer_node, 3, 1);
        let wire = Wire::new(peer_node, "me@127.0.0.1:2");
        let mut out = Vec::new();
        let mut add = |kind: u8, f: &dyn Fn(&mut Vec<u8>)| {
            let mut body = Vec::new();
            f(&mut body);
            out.push((kind, body));
        };
        add(SEND, &|b| {
            let payload: &dyn krarup_runtime::dist::Payload = &42u64;
            encode(&Outgoing::Message { to: ours, tag: 7, guard: None, payload }, &wire, b, 1 << 20).unwrap();
            b.drain(..5);
        });
        add(NAMED, &|b| wire.encode(&("server", 7u64, 42u64), b).unwrap());
        add(EXIT, &|b| wire.encode(&(theirs, ours, ExitReason::Killed, true), b).unwrap());
        add(LINK, &|b| wire.encode(&(theirs, ours), b).unwrap());
        add(UNLINK, &|b| wire.encode(&(theirs, ours), b).unwrap());
        add(DOWN, &|b| wire.encode(&(theirs, ExitReason::Normal), b).unwrap());
        // A `MonitorRef` encodes as its fields in order: id, target (here the placeholder of a
        // monitor on a name: a Pid of ours that names no process), watcher.
        let placeholder = Pid::from_parts(ours.node(), u32::MAX, 0);
        add(MONITOR_NAMED, &|b| wire.encode(&((7u64, placeholder, theirs), "server"), b).unwrap());
        add(TICK, &|_| {});
        out
    }

    fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 if !bytes.is_empty() => bytes.truncate(rng.below(bytes.len())),
                2 => {
                    let i = rng.below(bytes.len() + 1);
                    bytes.insert(i, rng.next() as u8);
                }
                _ => {
                    let i = rng.below(bytes.len() + 1);
                    bytes.splice(i..i, std::iter::repeat_n(0xff, rng.below(12)));
                }
            }
        }
    }

    #[test]
    fn random_and_mutated_frames_never_panic_the_decoder() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let local = attach(&rt, "me@127.0.0.1:2", 9, Arc::new(Nowhere)).unwrap();
        let inbound = local.inbound(PEER, 5);
        let seeds = seeds(&rt, inbound.origin());
        let mut rng = XorShift::new(0x5eed);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tried = 0;
        while tried < 200_000 && Instant::now() < deadline {
            let (kind, body) = if rng.below(4) == 0 {
                let len = rng.below(48);
                (16 + rng.below(12) as u8, (0..len).map(|_| rng.next() as u8).collect())
            } else {
                let (kind, body) = &seeds[rng.below(seeds.len())];
                let mut body = body.clone();
                mutate(&mut rng, &mut body);
                (if rng.below(8) == 0 { rng.next() as u8 } else { *kind }, body)
            };
            let mut bytes = Vec::new();
            crate::frame::push(&mut bytes, kind, &body, 1 << 20).unwrap();
            let mut reader = FrameReader::new(1 << 20);
            reader.extend_from_slice(&bytes);
            let frame = reader.next_frame().unwrap().unwrap();
            let _ = apply(&inbound, frame);
            tried += 1;
        }
        assert!(tried >= 1000, "only {tried} frames in the time allowed");
    }

    #[test]
    fn a_send_frame_reaches_its_process_and_trailing_bytes_or_unknown_kinds_are_errors() {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let local = attach(&rt, "me@127.0.0.1:2", 9, Arc::new(Nowhere)).unwrap();
        let inbound = local.inbound(PEER, 5);
        let mut mailbox = rt.mailbox();
        let wire = Wire::new(inbound.origin(), "me@127.0.0.1:2");
        let mut body = Vec::new();
        let payload: &dyn krarup_runtime::dist::Payload = &42u64;
        let tag = krarup_runtime::dist::tag_of::<u64>();
        encode(&Outgoing::Message { to: mailbox.pid(), tag, guard: None, payload }, &wire, &mut body, 1 << 20).unwrap();
        apply(&inbound, Frame { kind: SEND, body: &body[5..] }).unwrap();
        let short = apply(&inbound, Frame { kind: SEND, body: &body[5..20] });
        assert!(matches!(short, Err(ProtocolError::Short { .. })));
        assert_eq!(mailbox.blocking_recv_timeout::<u64>(Duration::from_secs(5)), Some(42));
        // Trailing bytes after a link's body.
        let mut body = Vec::new();
        wire.encode(&(mailbox.pid(), mailbox.pid()), &mut body).unwrap();
        body.push(0);
        assert!(matches!(apply(&inbound, Frame { kind: LINK, body: &body }), Err(ProtocolError::Trailing { .. })));
        assert!(matches!(apply(&inbound, Frame { kind: 99, body: &[] }), Err(ProtocolError::UnknownKind(99))));
    }
}
