//! Process identifiers.
//!
//! A [`Pid`] names one *incarnation* of a process: which node it lives on,
//! which slot of that node's process table, and which use of the slot
//! (`serial`). Slots are reused after a process exits, but every reuse bumps
//! the serial, and delivery compares the serial under the slot's lock, so a
//! stale Pid never reaches the slot's next occupant. A slot whose serial
//! would wrap is retired instead of reused, so the guarantee has no
//! exception.
//!
//! Node numbers are indices into this OS process's node table: each
//! [`Runtime`](crate::Runtime) registers itself there when it starts (the
//! first one gets node 0), and the network node will add the remote nodes it
//! learns about. Printing follows Erlang: `<node.index.serial>`.
//!
//! Layout: the slot index and the serial share one 8-byte word (`local`),
//! the node a 4-byte word after it, packed to 12 bytes. A Pid is made from
//! its parts in registers and written with one store per word, and its
//! readers load the same words: a Pid written just before it is read (a
//! call's monitor, a reply's address) is forwarded from the store buffer.
//! With three 4-byte fields, the compiler wrote them one by one and read two
//! as one 8-byte load, which the processor cannot forward from two stores:
//! the load waited for both to reach the cache, several nanoseconds each
//! time on the call's path. The packing (alignment 4, not 8) keeps a Pid in
//! 12 bytes: at 16, every message holding a Pid beside an 8-byte field grew
//! by a word (the ring benchmark's from 16 to 24 bytes), and a ring hop
//! cost 3 ns more.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identity of one process incarnation: small, `Copy`, totally ordered.
///
/// A `Pid` stays valid inside messages: it is plain data, so it can be
/// cloned into any number of messages and sent anywhere. Sending to the Pid
/// of a process that has exited silently drops the message, as in Erlang.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{Runtime, self_pid};
///
/// let rt = Runtime::new();
/// let pid = rt.block_on(async { self_pid() });
/// assert!(pid.to_string().starts_with('<'));
/// assert_eq!(pid, pid.clone());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, packed(4))]
pub struct Pid {
    /// The slot index (low half) and serial (high half), in one word.
    local: u64,
    node: u32,
}

impl Pid {
    /// Builds a Pid from its parts. Only for the network layer and tests:
    /// a made-up Pid is harmless (sending to it drops the message) but useless.
    #[doc(hidden)]
    #[inline]
    pub const fn from_parts(node: u32, index: u32, serial: u32) -> Pid {
        Pid { local: index as u64 | (serial as u64) << 32, node }
    }

    /// The node number (an index into this OS process's node table).
    #[inline]
    pub const fn node(self) -> u32 {
        self.node
    }

    /// The slot index in the node's process table.
    #[inline]
    pub const fn index(self) -> u32 {
        self.local as u32
    }

    /// Which use of the slot this Pid names.
    #[inline]
    pub const fn serial(self) -> u32 {
        (self.local >> 32) as u32
    }
}

impl PartialOrd for Pid {
    fn partial_cmp(&self, other: &Pid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pid {
    fn cmp(&self, other: &Pid) -> std::cmp::Ordering {
        (self.node, self.index(), self.serial()).cmp(&(other.node, other.index(), other.serial()))
    }
}

/// On the wire a Pid names its node relative to the connection it travels
/// on, so that it routes back to the same process from the other side (see
/// `dist/wire.rs`); outside any connection it is its three numbers.
impl Serialize for Pid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::dist::serialize_pid(*self, s)
    }
}

impl<'de> Deserialize<'de> for Pid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pid, D::Error> {
        crate::dist::deserialize_pid(d)
    }
}

impl fmt::Display for Pid {
    /// `<node.index.serial>`; width, fill and alignment apply (`{:<12}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() {
            f.pad(&format!("<{}.{}.{}>", self.node, self.index(), self.serial()))
        } else {
            write!(f, "<{}.{}.{}>", self.node, self.index(), self.serial())
        }
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_erlang() {
        let pid = Pid::from_parts(0, 42, 1);
        assert_eq!(pid.to_string(), "<0.42.1>");
        assert_eq!(format!("{pid:?}"), "<0.42.1>");
    }

    #[test]
    fn display_honours_width_and_alignment() {
        let pid = Pid::from_parts(0, 7, 0);
        assert_eq!(format!("[{pid:<9}]"), "[<0.7.0>  ]");
        assert_eq!(format!("[{pid:>9}]"), "[  <0.7.0>]");
    }

    #[test]
    fn orders_by_node_then_index_then_serial() {
        let a = Pid::from_parts(0, 1, 9);
        let b = Pid::from_parts(0, 2, 0);
        let c = Pid::from_parts(1, 0, 0);
        assert!(a < b && b < c);
    }

    #[test]
    fn serde_round_trip_is_the_same_pid() {
        let pid = Pid::from_parts(3, 77, 5);
        let json = serde_json::to_string(&pid).unwrap();
        assert_eq!(serde_json::from_str::<Pid>(&json).unwrap(), pid);
    }

    #[test]
    fn is_twelve_bytes_aligned_to_four() {
        assert_eq!(std::mem::size_of::<Pid>(), 12);
        assert_eq!(std::mem::align_of::<Pid>(), 4);
    }

    #[test]
    fn parts_round_trip() {
        let pid = Pid::from_parts(u32::MAX - 1, u32::MAX, 7);
        assert_eq!((pid.node(), pid.index(), pid.serial()), (u32::MAX - 1, u32::MAX, 7));
    }
}
