//! Frames: the unit of everything a connection carries, the handshake and the distribution
//! protocol alike.
//!
//! # Wire format
//!
//! ```text
//! +----------------+--------+------------------+
//! | L: u32, LE     | kind   | body             |
//! | 4 bytes        | 1 byte | L - 1 bytes      |
//! +----------------+--------+------------------+
//! ```
//!
//! `L` counts the kind byte and the body, not itself, so `L >= 1`. Kinds 1 to 5 are the
//! handshake's (see `handshake.rs`); kinds from 16 up belong to the distribution protocol.
//!
//! # Invariants
//!
//! - **A frame is checked against the maximum before it is buffered.** [`FrameReader`] looks at
//!   `L` as soon as its four bytes are in, and a frame longer than the reader's maximum is an
//!   error ([`FrameError::TooLarge`]) before a single byte of room is made for it. The receive
//!   buffer therefore never exceeds `max(64 KiB, max + 4)` bytes, whatever the peer sends, as long
//!   as the caller takes every complete frame out ([`FrameReader::next_frame`] until `None`)
//!   between two reads.
//! - **Reading is zero-copy and allocation-free on the hot path.** A [`Frame`] borrows its body
//!   from the receive buffer; taking the next frame is a handful of bounds checks.
//! - **Each received byte is moved at most once** (under the contract above): consumed bytes are
//!   reclaimed, by moving the unconsumed tail (a partial frame) to the front, only before a read
//!   and only when the room after the consumed bytes is too small for that read.
//! - **A frame is never written silently wrong:** [`finish`] and [`push`] refuse a frame longer
//!   than the given maximum (and so than `u32::MAX`) with [`FrameError::TooLarge`] and leave the
//!   output buffer as it was before the frame.
#![allow(dead_code)] // TODO(integration): remove once the connection uses the whole API.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};

/// The maximum frame size (`L`) during the handshake: its messages are a few hundred bytes.
pub(crate) const HANDSHAKE_MAX: u32 = 4096;

/// The largest maximum a reader accepts, so that `4 + L` fits a `usize` on every target.
pub(crate) const MAX_LIMIT: u32 = u32::MAX - HEADER as u32;

/// Bytes in the length prefix.
const HEADER: usize = 4;

/// How much room a read is given, at least: many small frames per system call.
const READ_CHUNK: usize = 64 * 1024;

/// A receive buffer larger than this (kept for one large frame) is given back once it is not
/// needed any more.
const SHRINK_ABOVE: usize = 4 * READ_CHUNK;

/// One received frame, borrowed from the [`FrameReader`]'s buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// What the body is: a handshake message kind (1..=5) or a distribution one (16..).
    pub(crate) kind: u8,
    /// The body, `L - 1` bytes.
    pub(crate) body: &'a [u8],
}

impl fmt::Debug for Frame<'_> {
    /// Kind and length only: bodies can be large and are not for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame").field("kind", &self.kind).field("body_len", &self.body.len()).finish()
    }
}

/// Splits a byte stream into [`Frame`]s, enforcing a maximum frame size.
///
/// Feed it with [`read_from`](FrameReader::read_from) (or
/// [`extend_from_slice`](FrameReader::extend_from_slice)), then take every complete frame with
/// [`next_frame`](FrameReader::next_frame) until it returns `Ok(None)`, and repeat.
pub(crate) struct FrameReader {
    /// Zero-initialised room; `buf[pos..filled]` are the received bytes not yet consumed.
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    pos: usize,
    /// End of the received bytes.
    filled: usize,
    /// The largest `L` accepted.
    max: u32,
}

impl FrameReader {
    /// A reader that accepts frames with `L <= max` (the kind byte and body, not the prefix).
    ///
    /// `max` is clamped to [`MAX_LIMIT`]. No memory is allocated until the first read.
    pub(crate) fn new(max: u32) -> FrameReader {
        FrameReader { buf: Vec::new(), pos: 0, filled: 0, max: max.min(MAX_LIMIT) }
    }

    /// The largest `L` accepted.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Changes the maximum, e.g. from [`HANDSHAKE_MAX`] to the distribution limit once the
    /// handshake is done. Bytes already buffered are kept and checked against the new maximum.
    pub(crate) fn set_max(&mut self, max: u32) {
        self.max = max.min(MAX_LIMIT);
    }

    /// Reads once from `src` into the buffer, and returns how many bytes were read: 0 means end
    /// of stream (then see [`at_clean_boundary`](FrameReader::at_clean_boundary)).
    ///
    /// The read is given room for at least the rest of the current frame, if its length is known
    /// and allowed, and for about 64 KiB in any case.
    ///
    /// # Errors
    ///
    /// Whatever `src.read` returns (`WouldBlock` and `Interrupted` included, untouched), and an
    /// error of kind [`io::ErrorKind::Other`] if the buffer is full because complete frames (or a
    /// frame error) are waiting: call [`next_frame`](FrameReader::next_frame) until it returns
    /// `Ok(None)` before reading again. An error of kind
    /// [`io::ErrorKind::InvalidData`] if `src` claims to have read more than it was given room for.
    pub(crate) fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let room = &mut self.buf[self.filled..];
        if room.is_empty() {
            return Err(io::Error::other(
                "frame reader buffer is full: call next_frame until it returns None (or an error) before reading again",
            ));
        }
        let room_len = room.len();
        let n = src.read(room)?;
        if n > room_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reader returned more bytes than it was given room for",
            ));
        }
        self.filled += n;
        Ok(n)
    }

    /// Appends bytes as if they had been read (for tests, fuzzing, and bytes that arrived some
    /// other way). Unlike [`read_from`](FrameReader::read_from) it does not bound the buffer.
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
        } else if self.buf.len() - self.filled < bytes.len() {
            self.compact();
        }
        let end = self.filled + bytes.len();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[self.filled..end].copy_from_slice(bytes);
        self.filled = end;
    }

    /// The next complete frame, or `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`FrameError::Empty`] for `L = 0` and [`FrameError::TooLarge`] for `L` above the maximum,
    /// as soon as the four length bytes are in. The stream cannot be resynchronised after either:
    /// close the connection. The error is sticky (the same one is returned again).
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        let p = self.pos;
        let avail = self.filled - p;
        if avail < HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[p], self.buf[p + 1], self.buf[p + 2], self.buf[p + 3]]);
        let total = self.checked_total(len)?;
        if avail < total {
            return Ok(None);
        }
        let end = p + total;
        self.pos = end;
        if self.pos == self.filled {
            // Drained: start over at the front, for free.
            self.pos = 0;
            self.filled = 0;
        }
        Ok(Some(Frame { kind: self.buf[p + HEADER], body: &self.buf[p + HEADER + 1..end] }))
    }

    /// How many received bytes are not yet taken as frames.
    pub(crate) fn buffered(&self) -> usize {
        self.filled - self.pos
    }

    /// Whether no partial frame is buffered: at end of stream, `false` means the peer closed the
    /// connection in the middle of a frame (a truncated frame).
    pub(crate) fn at_clean_boundary(&self) -> bool {
        self.filled == self.pos
    }

    /// The receive buffer's allocated size, for tests and metrics.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// `4 + len`, if `len` is an allowed frame length.
    fn checked_total(&self, len: u32) -> Result<usize, FrameError> {
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max {
            return Err(FrameError::TooLarge { len: len.into(), max: self.max });
        }
        // `len <= MAX_LIMIT`, so this fits in a u32 and therefore in a usize.
        Ok(len as usize + HEADER)
    }

    /// Prepares the buffer for a read: reclaims consumed bytes and grows or shrinks it so that
    /// there is room for at least the rest of the current frame (if its length is known and
    /// allowed) and about [`READ_CHUNK`] bytes from the frame's start.
    fn make_room(&mut self) {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
        }
        let frame = match self.header() {
            Some(len) => self.checked_total(len).unwrap_or(HEADER),
            None => HEADER,
        };
        let want = frame.max(READ_CHUNK);
        if self.buf.len() > SHRINK_ABOVE && self.buf.len() > 2 * want && self.filled - self.pos <= want {
            // A large frame has come and gone: give its room back.
            self.compact();
            self.buf.truncate(want);
            self.buf.shrink_to_fit();
        } else if self.pos > 0 && self.buf.len() - self.pos < want {
            self.compact();
        }
        if self.buf.len() < want {
            // Exactly `want`: `resize` alone may double the capacity, past the bound promised above.
            self.buf.reserve_exact(want - self.buf.len());
            self.buf.resize(want, 0);
        }
    }

    /// The current frame's length prefix, if all four bytes are in.
    fn header(&self) -> Option<u32> {
        if self.filled - self.pos < HEADER {
            return None;
        }
        let b = &self.buf[self.pos..self.pos + HEADER];
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Moves the unconsumed bytes to the front.
    fn compact(&mut self) {
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
    }
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("max", &self.max)
            .field("buffered", &self.buffered())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

/// Starts a frame of `kind` at the end of `buf` and returns where it starts, for [`finish`].
///
/// Write the body after it (e.g. encode straight into `buf`), then call [`finish`].
pub(crate) fn begin(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, kind]);
    start
}

/// Completes the frame [`begin`] started at `start`: patches its length prefix.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if `L` (kind byte and body) exceeds `max` (or `u32::MAX`); the frame
/// is then removed (`buf` is truncated to `start`), so `buf` holds only complete frames.
///
/// # Panics
///
/// If `start` does not leave room for a length prefix and kind before the end of `buf`: there
/// was no matching [`begin`]. That is a bug in the caller, never a consequence of input.
pub(crate) fn finish(buf: &mut Vec<u8>, start: usize, max: u32) -> Result<(), FrameError> {
    assert!(
        start.checked_add(HEADER + 1).is_some_and(|end| end <= buf.len()),
        "frame::finish({start}) on a buffer of {} bytes: no matching frame::begin",
        buf.len()
    );
    let len = buf.len() - start - HEADER;
    match u32::try_from(len) {
        Ok(len) if len <= max => {
            buf[start..start + HEADER].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        _ => {
            buf.truncate(start);
            Err(FrameError::TooLarge { len: len as u64, max })
        }
    }
}

/// Appends a whole frame of `kind` with `body` to `buf`.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if `1 + body.len()` exceeds `max`; `buf` is then left unchanged.
pub(crate) fn push(buf: &mut Vec<u8>, kind: u8, body: &[u8], max: u32) -> Result<(), FrameError> {
    let len = body.len() as u64 + 1;
    let Some(len) = u32::try_from(len).ok().filter(|&l| l <= max) else {
        return Err(FrameError::TooLarge { len, max });
    };
    buf.reserve(HEADER + 1 + body.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(body);
    Ok(())
}

/// A frame that breaks the wire format; the connection cannot go on after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum FrameError {
    /// A length prefix of 0: every frame has at least its kind byte.
    Empty,
    /// A frame longer than the maximum (received, or about to be written).
    TooLarge {
        /// Its length `L` (kind byte and body).
        len: u64,
        /// The maximum in force.
        max: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Empty => write!(f, "empty frame: length prefix 0, but every frame has at least a kind byte"),
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum frame size of {max} bytes")
            }
        }
    }
}

impl Error for FrameError {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A seeded xorshift64* generator: reproducible randomness without extra crates.
    pub(crate) struct XorShift(u64);

    impl XorShift {
        pub(crate) fn new(seed: u64) -> XorShift {
            XorShift(seed.max(1))
        }

        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform-ish in `0..n` (`n > 0`).
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A `Read` that hands out `data` in random-sized pieces.
    struct Trickle<'a> {
        data: &'a [u8],
        rng: XorShift,
        largest: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (1 + self.rng.below(self.largest)).min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Frame `i`'s kind and body: mostly small, now and then larger than a read chunk.
    fn frame_for(i: usize, rng: &mut XorShift) -> (u8, Vec<u8>) {
        let len = match rng.below(100) {
            0 => READ_CHUNK + rng.below(3 * READ_CHUNK),
            1..=10 => rng.below(4000),
            _ => rng.below(64),
        };
        ((16 + i % 200) as u8, (0..len).map(|j| (i * 31 + j) as u8).collect())
    }

    #[test]
    fn frames_round_trip_through_random_sized_reads() {
        const MAX: u32 = 4 * READ_CHUNK as u32;
        for seed in 1..=8u64 {
            let mut rng = XorShift::new(seed);
            let frames: Vec<(u8, Vec<u8>)> = (0..1500).map(|i| frame_for(i, &mut rng)).collect();
            let mut wire = Vec::new();
            for (i, (kind, body)) in frames.iter().enumerate() {
                if i % 2 == 0 {
                    push(&mut wire, *kind, body, MAX).unwrap();
                } else {
                    let start = begin(&mut wire, *kind);
                    wire.extend_from_slice(body);
                    finish(&mut wire, start, MAX).unwrap();
                }
            }
            let largest = [7, 100, 5000, 200_000][seed as usize % 4];
            let mut src = Trickle { data: &wire, rng: XorShift::new(seed * 77), largest };
            let mut reader = FrameReader::new(MAX);
            let mut got = 0;
            loop {
                while let Some(frame) = reader.next_frame().unwrap() {
                    assert_eq!((frame.kind, frame.body), (frames[got].0, &frames[got].1[..]), "frame {got}");
                    got += 1;
                }
                assert!(reader.capacity() <= MAX as usize + HEADER, "buffer grew to {}", reader.capacity());
                if reader.read_from(&mut src).unwrap() == 0 {
                    break;
                }
            }
            assert_eq!(got, frames.len());
            assert!(reader.at_clean_boundary());
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_room_is_made_for_it() {
        let mut header = u32::MAX.to_le_bytes().to_vec();
        header.extend_from_slice(&[1; 100]);
        let mut src = io::repeat(0xAB);
        let mut reader = FrameReader::new(1 << 20);
        reader.extend_from_slice(&header);
        for _ in 0..10 {
            assert_eq!(reader.next_frame(), Err(FrameError::TooLarge { len: u32::MAX.into(), max: 1 << 20 }));
            // The first read fills the buffer; later ones fail (a caller stops at the first error).
            let _ = reader.read_from(&mut src);
            assert!(reader.capacity() <= READ_CHUNK, "buffer grew to {}", reader.capacity());
        }

        let mut reader = FrameReader::new(HANDSHAKE_MAX);
        reader.extend_from_slice(&(HANDSHAKE_MAX + 1).to_le_bytes());
        assert_eq!(reader.next_frame(), Err(FrameError::TooLarge { len: 4097, max: HANDSHAKE_MAX }));
        assert_eq!(reader.next_frame(), Err(FrameError::TooLarge { len: 4097, max: HANDSHAKE_MAX }), "sticky");
        assert!(reader.capacity() < 16);
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_is_accepted() {
        let mut wire = Vec::new();
        push(&mut wire, 20, &vec![9; HANDSHAKE_MAX as usize - 1], HANDSHAKE_MAX).unwrap();
        let mut reader = FrameReader::new(HANDSHAKE_MAX);
        reader.read_from(&mut &wire[..]).unwrap();
        let frame = reader.next_frame().unwrap().unwrap();
        assert_eq!((frame.kind, frame.body.len()), (20, HANDSHAKE_MAX as usize - 1));
    }

    #[test]
    fn zero_length_is_refused() {
        let mut reader = FrameReader::new(100);
        reader.extend_from_slice(&[0, 0, 0]);
        assert_eq!(reader.next_frame(), Ok(None));
        reader.extend_from_slice(&[0, 5, 6]);
        assert_eq!(reader.next_frame(), Err(FrameError::Empty));
        assert_eq!(reader.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn empty_body_is_a_valid_frame() {
        let mut wire = Vec::new();
        push(&mut wire, 4, &[], 100).unwrap();
        assert_eq!(wire, [1, 0, 0, 0, 4]);
        let mut reader = FrameReader::new(100);
        reader.extend_from_slice(&wire);
        assert_eq!(reader.next_frame(), Ok(Some(Frame { kind: 4, body: &[] })));
        assert_eq!(reader.next_frame(), Ok(None));
    }

    #[test]
    fn clean_boundary_only_between_frames() {
        let mut wire = Vec::new();
        push(&mut wire, 17, b"hello", 100).unwrap();
        let mut reader = FrameReader::new(100);
        assert!(reader.at_clean_boundary());
        for (i, &b) in wire.iter().enumerate() {
            reader.extend_from_slice(&[b]);
            if i + 1 < wire.len() {
                assert_eq!(reader.next_frame(), Ok(None));
                assert!(!reader.at_clean_boundary(), "after {} bytes", i + 1);
            }
        }
        assert_eq!(reader.buffered(), wire.len());
        assert_eq!(reader.next_frame().unwrap().unwrap().body, b"hello");
        assert!(reader.at_clean_boundary());
        assert_eq!(reader.read_from(&mut io::empty()).unwrap(), 0);
        assert!(reader.at_clean_boundary());
    }

    #[test]
    fn writing_a_frame_over_the_maximum_fails_and_leaves_the_buffer_whole() {
        let mut buf = Vec::new();
        push(&mut buf, 16, b"ok", 10).unwrap();
        let before = buf.clone();

        let start = begin(&mut buf, 17);
        buf.extend_from_slice(&[0; 10]);
        assert_eq!(finish(&mut buf, start, 10), Err(FrameError::TooLarge { len: 11, max: 10 }));
        assert_eq!(buf, before);

        assert_eq!(push(&mut buf, 17, &[0; 10], 10), Err(FrameError::TooLarge { len: 11, max: 10 }));
        assert_eq!(buf, before);

        let start = begin(&mut buf, 17);
        buf.extend_from_slice(&[0; 9]);
        assert_eq!(finish(&mut buf, start, 10), Ok(()));
        assert_eq!(&buf[start..start + 5], &[10, 0, 0, 0, 17]);
    }

    #[test]
    #[should_panic(expected = "no matching frame::begin")]
    fn finish_without_begin_panics_clearly() {
        let mut buf = vec![1, 2];
        let _ = finish(&mut buf, 0, 100);
    }

    #[test]
    fn reading_while_complete_frames_fill_the_buffer_is_an_error_not_eof() {
        let mut wire = Vec::new();
        for _ in 0..100 {
            push(&mut wire, 16, &[0; 1000], 2000).unwrap();
        }
        let mut reader = FrameReader::new(2000);
        reader.extend_from_slice(&wire);
        let err = reader.read_from(&mut io::repeat(0)).unwrap_err();
        assert!(err.to_string().contains("next_frame"), "{err}");
        while reader.next_frame().unwrap().is_some() {}
        assert!(reader.read_from(&mut io::repeat(0)).unwrap() > 0);
    }

    #[test]
    fn buffer_shrinks_after_a_large_frame() {
        let max = 8 * READ_CHUNK as u32;
        let mut wire = Vec::new();
        push(&mut wire, 16, &vec![1; 7 * READ_CHUNK], max).unwrap();
        push(&mut wire, 16, b"small", max).unwrap();
        let mut reader = FrameReader::new(max);
        let mut src = &wire[..];
        let mut sizes = 0;
        while reader.read_from(&mut src).unwrap() > 0 {
            while let Some(frame) = reader.next_frame().unwrap() {
                sizes += frame.body.len();
            }
        }
        assert_eq!(sizes, 7 * READ_CHUNK + 5);
        assert!(reader.capacity() <= READ_CHUNK, "kept {} bytes", reader.capacity());
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(
            FrameError::TooLarge { len: 5000, max: 4096 }.to_string(),
            "frame of 5000 bytes exceeds the maximum frame size of 4096 bytes"
        );
        assert!(FrameError::Empty.to_string().starts_with("empty frame"));
    }
}
