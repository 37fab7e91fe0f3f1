//! How values cross to another node: postcard, with Pids translated, and a
//! type tag per message type.
//!
//! # Pids on the wire
//!
//! A Pid's node number means something only in its own OS process, so on
//! the wire a Pid names its node relative to the connection it travels on.
//! Encoding happens under a [`Wire`] (this local node, that peer), decoding
//! under the receiving connection's view (set by
//! [`Inbound::decode`](super::Inbound::decode)). The forms, each a postcard
//! tuple `(kind, index, serial, ...)`:
//!
//! | kind | meaning | extra | decoded as |
//! |---|---|---|---|
//! | 0 | a process of the sending node | — | a Pid of the peer's entry |
//! | 1 | a process of the receiving node | creation | local, if the creation is ours; else a dead Pid |
//! | 2 | a process of a third node | name, creation | that node's entry (created on first sight) |
//! | 3 | no connection: a plain Pid | node | the Pid as it was |
//!
//! Form 3 is what a Pid serializes to outside any connection (a user
//! writing Pids to JSON, say): it round-trips within one OS process. A
//! decoder under a connection refuses it, and a decoder outside one refuses
//! forms 0–2: a Pid from the network means something only to the node that
//! received it.
//!
//! # Type tags
//!
//! A message travels as its tag and its postcard bytes; the receiving node
//! decodes it only when a receive asks for a type with that tag. The tag is
//! a 64-bit FNV-1a hash of [`std::any::type_name`]: the same for two
//! binaries built by the same compiler from the crate that defines the type
//! (so message types shared by two programs belong in a crate both use).

use std::any::type_name;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serialize, Serializer};

use crate::pid::Pid;

/// The tag of message type `T` (see the module docs).
///
/// # Examples
///
/// ```
/// use krarup_runtime::dist::tag_of;
///
/// assert_eq!(tag_of::<(u32, String)>(), tag_of::<(u32, String)>());
/// assert_ne!(tag_of::<(u32, String)>(), tag_of::<(u64, String)>());
/// ```
#[inline]
pub fn tag_of<T: ?Sized + 'static>() -> u64 {
    thread_local! {
        /// Direct-mapped: type name (address, length) → tag (hashing the
        /// name every time would cost more than the rest of a receive). The
        /// whole (address, length) pair is compared: two names are the same
        /// `&'static str` only if both agree.
        static TAGS: [Cell<(usize, usize, u64)>; 64] = const { [const { Cell::new((0, 0, 0)) }; 64] };
    }
    let name = type_name::<T>();
    let (ptr, len) = (name.as_ptr() as usize, name.len());
    let at = ((ptr >> 3) ^ len) % 64;
    TAGS.with(|tags| {
        let (p, l, tag) = tags[at].get();
        if p == ptr && l == len {
            return tag;
        }
        let tag = fnv1a(name.as_bytes());
        tags[at].set((ptr, len, tag));
        tag
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The encoding side of a connection: this local node (its node number)
/// and the peer's name. Values encoded under it can be decoded by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    local: u32,
    peer: &'static str,
}

impl Wire {
    /// The view of local node `local` (a [`Runtime::node`](crate::Runtime::node))
    /// talking to the node named `peer`.
    pub fn new(local: u32, peer: &str) -> Wire {
        Wire { local, peer: crate::node::atom(peer) }
    }

    /// The peer's name.
    pub fn peer(&self) -> &str {
        self.peer
    }

    /// `pid`'s index, serial and node incarnation, if it is a process of
    /// the peer: the compact form of a message's receiver, decoded with
    /// [`Inbound::receiver`](super::Inbound::receiver).
    pub fn receiver(&self, pid: Pid) -> Option<[u32; 3]> {
        let (name, creation) = node_identity(pid.node());
        (name == self.peer).then_some([pid.index(), pid.serial(), creation])
    }

    /// Appends the postcard encoding of `value` to `buf`, Pids translated
    /// for the peer. On error `buf` is left as it was.
    ///
    /// # Errors
    /// [`WireError`] if `value`'s `Serialize` fails or uses what postcard
    /// cannot encode.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T, buf: &mut Vec<u8>) -> Result<(), WireError> {
        let len = buf.len();
        let previous = ENCODING.replace(Some(*self));
        let result = postcard::serialize_with_flavor(value, Append(buf));
        ENCODING.set(previous);
        result.map_err(|e| {
            buf.truncate(len);
            WireError::from(e)
        })
    }
}

/// A value that could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(Cause);

/// What went wrong with a [`WireError`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cause {
    /// postcard's own error.
    Format(postcard::Error),
    /// A value decoded from the front of the bytes, but this many were left
    /// over: they were not a value of the expected type (two programs that
    /// disagree on its shape), even if a prefix happened to decode.
    LeftOver(usize),
}

impl From<postcard::Error> for WireError {
    fn from(error: postcard::Error) -> WireError {
        WireError(Cause::Format(error))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Cause::Format(error) => write!(f, "wire format: {error}"),
            Cause::LeftOver(n) => write!(f, "wire format: {n} bytes left over after the value"),
        }
    }
}

impl std::error::Error for WireError {}

/// A postcard flavor that appends to a borrowed `Vec`.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The decoding side of a connection (see [`super::Inbound`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    /// The local node that received the bytes.
    pub(crate) local: u32,
    /// The node-table entry of the peer that sent them.
    pub(crate) origin: u32,
    /// The local node's incarnation.
    pub(crate) own_creation: u32,
}

thread_local! {
    static ENCODING: Cell<Option<Wire>> = const { Cell::new(None) };
    static DECODING: Cell<Option<View>> = const { Cell::new(None) };
}

impl View {
    /// Decodes `bytes` (all of them: bytes left over are an error) as a
    /// `T`, Pids translated.
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, WireError> {
        match self.decode_prefix(bytes)? {
            (value, []) => Ok(value),
            (_, rest) => Err(WireError(Cause::LeftOver(rest.len()))),
        }
    }

    /// Decodes a `T` from the front of `bytes`; returns it and the rest.
    pub(crate) fn decode_prefix<'b, T: DeserializeOwned>(&self, bytes: &'b [u8]) -> Result<(T, &'b [u8]), WireError> {
        let previous = DECODING.replace(Some(*self));
        let result = postcard::take_from_bytes(bytes);
        DECODING.set(previous);
        result.map_err(WireError::from)
    }
}

const SENDER: u8 = 0;
const RECEIVER: u8 = 1;
const THIRD: u8 = 2;
const PLAIN: u8 = 3;

/// `Pid`'s `Serialize` (see the module docs).
pub(crate) fn serialize_pid<S: Serializer>(pid: Pid, s: S) -> Result<S::Ok, S::Error> {
    let Some(wire) = ENCODING.get() else {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&PLAIN)?;
        t.serialize_element(&pid.index())?;
        t.serialize_element(&pid.serial())?;
        t.serialize_element(&pid.node())?;
        return t.end();
    };
    if pid.node() == wire.local {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&SENDER)?;
        t.serialize_element(&pid.index())?;
        t.serialize_element(&pid.serial())?;
        return t.end();
    }
    let (name, creation) = node_identity(pid.node());
    if name == wire.peer {
        let mut t = s.serialize_tuple(4)?;
        t.serialize_element(&RECEIVER)?;
        t.serialize_element(&pid.index())?;
        t.serialize_element(&pid.serial())?;
        t.serialize_element(&creation)?;
        return t.end();
    }
    let mut t = s.serialize_tuple(5)?;
    t.serialize_element(&THIRD)?;
    t.serialize_element(&pid.index())?;
    t.serialize_element(&pid.serial())?;
    t.serialize_element(name)?;
    t.serialize_element(&creation)?;
    t.end()
}

/// The network identity of node number `node`: a remote entry's, or a
/// local runtime's if it is attached to a network; `("", 0)`, which no
/// node can have, for a local runtime that has none.
fn node_identity(node: u32) -> (&'static str, u32) {
    if let Some(remote) = crate::node::lookup_remote(node) {
        return (remote.name, remote.creation);
    }
    crate::node::lookup(node).and_then(|shared| shared.dist.get().map(|a| (a.name, a.creation))).unwrap_or(("", 0))
}

/// `Pid`'s `Deserialize` (see the module docs).
pub(crate) fn deserialize_pid<'de, D: Deserializer<'de>>(d: D) -> Result<Pid, D::Error> {
    d.deserialize_tuple(5, PidVisitor)
}

struct PidVisitor;

impl<'de> Visitor<'de> for PidVisitor {
    type Value = Pid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Pid")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pid, A::Error> {
        let mut next = |what: &'static str| -> Result<u32, A::Error> {
            seq.next_element::<u32>()?.ok_or_else(|| de::Error::custom(format_args!("a Pid without its {what}")))
        };
        let kind = next("kind")?;
        let index = next("index")?;
        let serial = next("serial")?;
        let view = DECODING.get();
        match (u8::try_from(kind), view) {
            (Ok(PLAIN), None) => Ok(Pid::from_parts(next("node")?, index, serial)),
            (Ok(SENDER), Some(view)) => Ok(Pid::from_parts(view.origin, index, serial)),
            (Ok(RECEIVER), Some(view)) => {
                let creation = next("creation")?;
                let node = if creation == view.own_creation { Some(view.local) } else { view.stale(creation) };
                Ok(Pid::from_parts(node.ok_or_else(too_many)?, index, serial))
            }
            (Ok(THIRD), Some(view)) => {
                let name: String =
                    seq.next_element()?.ok_or_else(|| de::Error::custom("a Pid without its node name"))?;
                let creation: u32 =
                    seq.next_element()?.ok_or_else(|| de::Error::custom("a Pid without its creation"))?;
                Ok(Pid::from_parts(view.local_or_stale(&name, creation).ok_or_else(too_many)?, index, serial))
            }
            (Ok(PLAIN), Some(_)) => Err(de::Error::custom("a plain Pid in a message from another node")),
            (Ok(SENDER | RECEIVER | THIRD), None) => {
                Err(de::Error::custom("a Pid from the network, decoded outside the node that received it"))
            }
            _ => Err(de::Error::custom(format_args!("unknown Pid form {kind}"))),
        }
    }
}

impl View {
    /// This node's name; "" if it is no longer attached.
    fn own_name(&self) -> &'static str {
        crate::node::lookup(self.local).and_then(|s| s.dist.get().map(|a| a.name)).unwrap_or("")
    }

    /// The entry of an earlier incarnation of this node: one no route
    /// reaches, so its Pids are dead. None past the limit of entries.
    fn stale(&self, creation: u32) -> Option<u32> {
        crate::node::intern_remote_bounded(self.local, self.own_name(), creation, None)
    }

    /// The node number, in this view, of node `name` incarnation `creation`:
    /// our own if it is us (a dead entry if it is an older us), else the
    /// remote entry (created on first sight). None past the limit of
    /// entries ([`crate::node::MAX_REMOTES_PER_NODE`]).
    fn local_or_stale(&self, name: &str, creation: u32) -> Option<u32> {
        if name.is_empty() {
            return crate::node::intern_remote_bounded(self.local, name, 0, None);
        }
        if name == self.own_name() {
            return if creation == self.own_creation { Some(self.local) } else { self.stale(creation) };
        }
        let shared = crate::node::lookup(self.local);
        let dist = shared.as_ref().and_then(|s| s.dist.get()).map(|a| a.dist.clone());
        crate::node::intern_remote_bounded(self.local, name, creation, dist.as_deref())
    }
}

/// The error of a Pid naming one node incarnation too many.
fn too_many<E: de::Error>() -> E {
    E::custom("a Pid of one node incarnation too many: this node keeps at most 65,536 (see node.rs)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_depends_only_on_the_type_name_so_separately_built_binaries_agree() {
        // FNV-1a of the name, computed here independently: any binary built from the same
        // types (the same paths) by the same compiler computes the same tags.
        let expected = |name: &str| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in name.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        };
        assert_eq!(tag_of::<u64>(), expected("u64"));
        assert_eq!(tag_of::<(Pid, i64)>(), expected("(krarup_runtime::pid::Pid, i64)"));
        assert_eq!(tag_of::<Vec<String>>(), expected("alloc::vec::Vec<alloc::string::String>"));
    }

    #[test]
    fn cached_tags_never_mix_up_types() {
        // Many types, asked for repeatedly and interleaved: every answer is its own name's hash.
        macro_rules! check {
            ($($t:ty),*) => {
                for _ in 0..3 {
                    $(assert_eq!(tag_of::<$t>(), fnv1a(std::any::type_name::<$t>().as_bytes()));)*
                }
            };
        }
        check!(
            u8,
            u16,
            u32,
            u64,
            i8,
            i16,
            i32,
            i64,
            (u8,),
            (u8, u8),
            [u8; 1],
            [u8; 2],
            Option<u8>,
            Option<u16>,
            Vec<u8>,
            Vec<u16>,
            String,
            (String, u8),
            Pid,
            Option<Pid>,
            (Pid, i64),
            (Pid, u64),
            bool,
            char,
            f32,
            f64
        );
    }

    #[test]
    fn a_peer_cannot_make_a_node_remember_unboundedly_many_node_incarnations() {
        let rt = crate::Runtime::builder().workers(1).build().unwrap();
        let nowhere = crate::sync::global::Arc::new(super::super::Nowhere);
        super::super::attach(&rt, "me@127.0.0.1:1", 7, nowhere).unwrap();
        let view = View { local: rt.node(), origin: u32::MAX, own_creation: 7 };
        let third = |creation: u32| postcard::to_allocvec(&(THIRD as u32, 1u32, 1u32, "x@127.0.0.1:2", creation));
        let mut decoded = 0;
        let mut refused = None;
        for creation in 1..=crate::node::MAX_REMOTES_PER_NODE as u32 + 10 {
            match view.decode::<Pid>(&third(creation).unwrap()) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        // (postcard keeps no custom message, so the error says only that decoding failed.)
        assert!(refused.is_some(), "a Pid past the limit is an error");
        assert_eq!(decoded, crate::node::MAX_REMOTES_PER_NODE, "incarnations remembered");
        // Those already known still decode.
        assert!(view.decode::<Pid>(&third(1).unwrap()).is_ok());
    }

    #[test]
    fn tags_are_stable_and_distinct() {
        assert_eq!(tag_of::<u32>(), fnv1a(b"u32"));
        assert_eq!(tag_of::<u32>(), tag_of::<u32>());
        assert_ne!(tag_of::<u32>(), tag_of::<i32>());
    }

    #[test]
    fn a_plain_pid_round_trips_outside_a_connection() {
        let pid = Pid::from_parts(3, 77, 5);
        let bytes = postcard::to_allocvec(&pid).unwrap();
        assert_eq!(postcard::from_bytes::<Pid>(&bytes).unwrap(), pid);
    }

    #[test]
    fn a_local_pid_travels_as_the_senders() {
        let wire = Wire { local: 7, peer: crate::node::atom("b@h:1") };
        let mut buf = Vec::new();
        wire.encode(&Pid::from_parts(7, 300, 2), &mut buf).unwrap();
        assert_eq!(buf, [SENDER, 0xac, 0x02, 2]);
        let view = View { local: 1, origin: 9, own_creation: 0 };
        assert_eq!(view.decode::<Pid>(&buf).unwrap(), Pid::from_parts(9, 300, 2));
    }

    #[test]
    fn network_forms_are_refused_outside_a_connection_and_plain_ones_inside() {
        assert!(postcard::from_bytes::<Pid>(&[SENDER, 1, 1]).is_err());
        let view = View { local: 1, origin: 9, own_creation: 0 };
        assert!(view.decode::<Pid>(&[PLAIN, 1, 1, 0]).is_err());
        assert!(view.decode::<Pid>(&[9, 1, 1]).is_err());
    }

    #[test]
    fn bytes_left_over_after_a_value_do_not_decode_as_it() {
        let view = View { local: 1, origin: 9, own_creation: 0 };
        // The encoding of the string "up": its length, then its bytes. A
        // program that expects a `u8` there would read the length alone.
        let bytes = postcard::to_allocvec("up").unwrap();
        assert_eq!(postcard::from_bytes::<u8>(&bytes).unwrap(), 2);
        let error = view.decode::<u8>(&bytes).unwrap_err();
        assert_eq!(error.to_string(), "wire format: 2 bytes left over after the value");
        assert_eq!(view.decode::<String>(&bytes).unwrap(), "up");
    }

    #[test]
    fn an_encoding_error_leaves_the_buffer_as_it_was() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let wire = Wire { local: 0, peer: "" };
        let mut buf = vec![1, 2, 3];
        assert!(wire.encode(&(5u8, Fails), &mut buf).is_err());
        assert_eq!(buf, [1, 2, 3]);
    }
}
