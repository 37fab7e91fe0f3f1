//! The process table: slots addressed by a `u32` index, stored in segments
//! that never move, so a `&Slot` stays valid for the runtime's lifetime.
//!
//! Segment `k` holds `1024 << k` slots and starts at index
//! `1024 * (2^k - 1)`, so 23 segments cover every `u32` index and a lookup
//! is a leading-zeros count and two loads. Segments are allocated on first
//! use with zeroed memory (a zeroed slot is a valid free slot, see
//! `slot.rs`), so untouched parts of a large segment cost no RSS. On Linux a
//! segment of 2 MiB or more is mapped directly and advised to use
//! transparent huge pages: spawning a million processes then takes a few
//! hundred page faults instead of tens of thousands (a fault costs
//! microseconds in a VM, about as much as the rest of a spawn).
//!
//! Slot indices are handed out from a free list (slots whose process has
//! exited) or, when it is empty, from the never-used tail (`next`). Workers
//! keep their own small caches of free indices in front of this list (see
//! `scheduler/worker.rs`). A slot whose serial ran out is never returned to
//! the free list.

use std::alloc::{self, Layout};
use std::ptr;

use crate::slot::Slot;
use crate::sync::{AtomicPtr, AtomicU32, Mutex, Ordering};

const BASE_SHIFT: u32 = 10;
const SEGMENTS: usize = 23;

/// Where index `i` lives: (segment, offset within it).
#[inline(always)]
fn locate(index: u32) -> (usize, usize) {
    let j = (index >> BASE_SHIFT) + 1;
    let segment = 31 - j.leading_zeros();
    let start = ((1u32 << segment) - 1) << BASE_SHIFT;
    (segment as usize, (index - start) as usize)
}

#[inline(always)]
fn segment_len(segment: usize) -> usize {
    1usize << (BASE_SHIFT as usize + segment)
}

/// The table of process slots.
pub(crate) struct Table {
    segments: [AtomicPtr<Slot>; SEGMENTS],
    /// Number of indices ever handed out from the tail.
    next: AtomicU32,
    /// Indices of free, reusable slots.
    free: Mutex<Vec<u32>>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            next: AtomicU32::new(0),
            free: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on the extras of every live process that has extras, each
    /// under its slot's lock, with the process's (index, serial). Visits
    /// every slot ever handed out: for rare events (a node going down).
    pub(crate) fn for_each_extras(&self, mut f: impl FnMut((u32, u32), &mut crate::slot::Extras)) {
        for index in 0..self.next.load(Ordering::Acquire) {
            if let Some(slot) = self.get(index) {
                slot.with_present_extras(|serial, extras| f((index, serial), extras));
            }
        }
    }

    /// The slot at `index`, if that index was ever handed out.
    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Slot> {
        if index >= self.next.load(Ordering::Acquire) {
            return None;
        }
        let (segment, offset) = locate(index);
        let base = self.segments[segment].load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a non-null segment holds `segment_len(segment)` slots that
        // live until the table is dropped, and `offset` is within it.
        Some(unsafe { &*base.add(offset) })
    }

    /// The slot at an index known to be handed out (a queued or running process).
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> &Slot {
        self.get(index).expect("slot index was handed out")
    }

    /// Takes up to `max` (at least one) free indices into `out`: reused ones
    /// from the free list if it has any, else never-used ones from the tail.
    /// Returns how many were added.
    pub(crate) fn alloc_into(&self, out: &mut Vec<u32>, max: usize) -> usize {
        let max = max.max(1);
        {
            let mut free = self.free.lock();
            if !free.is_empty() {
                let take = free.len().min(max);
                let at = free.len() - take;
                out.extend(free.drain(at..));
                return take;
            }
        }
        let start = self.alloc_new(max as u32);
        // Popped from the back: hand them out lowest index first.
        out.extend((start..start + max as u32).rev());
        max
    }

    /// One free index (for spawns from threads without a worker's cache).
    pub(crate) fn alloc_one(&self) -> u32 {
        let mut got = Vec::with_capacity(1);
        self.alloc_into(&mut got, 1);
        got[0]
    }

    /// Hands out `n` never-used consecutive indices, allocating their
    /// segments if needed; returns the first.
    fn alloc_new(&self, n: u32) -> u32 {
        let start = self.next.fetch_add(n, Ordering::AcqRel);
        assert!(start.checked_add(n).is_some(), "krarup: process table exhausted (2^32 slots)");
        let (first, _) = locate(start);
        let (last, _) = locate(start + n - 1);
        for segment in first..=last {
            if self.segments[segment].load(Ordering::Acquire).is_null() {
                self.allocate_segment(segment);
            }
        }
        start
    }

    #[cold]
    fn allocate_segment(&self, segment: usize) {
        let len = segment_len(segment);
        let fresh = new_segment(len);
        if self.segments[segment].compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            // SAFETY: `fresh` was allocated just above with this length and
            // never shared (the exchange failed); none of it was written.
            unsafe { free_segment(fresh, len, 0) };
        }
    }

    /// Returns indices of exited processes to the free list.
    pub(crate) fn release(&self, indices: impl IntoIterator<Item = u32>) {
        let mut free = self.free.lock();
        free.extend(indices.into_iter().filter(|&i| self.get(i).is_some_and(Slot::is_reusable)));
    }

    /// Number of indices handed out so far (live, free or retired).
    pub(crate) fn high_water(&self) -> u32 {
        self.next.load(Ordering::Acquire)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let handed_out = self.next.load(Ordering::Acquire) as usize;
        let mut start = 0usize;
        for (segment, base) in self.segments.iter().enumerate() {
            let len = segment_len(segment);
            let base = base.load(Ordering::Acquire);
            if !base.is_null() {
                // Slots past `next` were never written: no need to touch
                // (and fault in) their pages to drop them.
                let used = handed_out.saturating_sub(start).min(len);
                // SAFETY: the segment was allocated by `new_segment` with this
                // length; `&mut self` means no slot reference is alive; slots
                // past `used` are still all-zero, which owns nothing.
                unsafe { free_segment(base, len, used) };
            }
            start += len;
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("high_water", &self.high_water()).finish()
    }
}

/// Segments at least this big are mapped with huge pages (Linux).
#[cfg(all(not(loom), target_os = "linux"))]
const HUGE_SEGMENT: usize = 2 << 20;

/// Allocates `len` free slots. Outside loom the memory comes zeroed (from
/// the kernel or the allocator) and is never written until used: a zeroed
/// slot is a free slot.
fn new_segment(len: usize) -> *mut Slot {
    #[cfg(all(not(loom), target_os = "linux"))]
    {
        let bytes = len * std::mem::size_of::<Slot>();
        if bytes >= HUGE_SEGMENT {
            // SAFETY: an anonymous private mapping of `bytes` (non-zero) bytes,
            // no file, no fixed address: always sound to request.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                alloc::handle_alloc_error(Layout::array::<Slot>(len).expect("segment size overflow"));
            }
            // A hint; failing (THP disabled) only costs the small pages.
            // SAFETY: `p..p+bytes` is the mapping we just made.
            unsafe { libc::madvise(p, bytes, libc::MADV_HUGEPAGE) };
            return p.cast();
        }
    }
    #[cfg(not(loom))]
    {
        let layout = Layout::array::<Slot>(len).expect("segment size overflow");
        // SAFETY: the layout has non-zero size (len ≥ 1024, Slot is not a ZST).
        let p = unsafe { alloc::alloc_zeroed(layout) }.cast::<Slot>();
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        p
    }
    #[cfg(loom)]
    {
        // loom's atomics are not zero-valid: construct each slot.
        let slots: Box<[Slot]> = (0..len).map(|_| Slot::new()).collect();
        Box::into_raw(slots).cast::<Slot>()
    }
}

/// Drops the first `used` slots of a segment and frees it.
///
/// # Safety
/// `base` came from `new_segment(len)`, no reference into it is alive, and
/// the slots from `used` on were never written (still zero, owning nothing).
unsafe fn free_segment(base: *mut Slot, len: usize, used: usize) {
    // Under loom every slot was constructed (and owns loom objects).
    let used = if cfg!(loom) { len } else { used };
    // SAFETY: the first `used` slots are valid slots.
    unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(base, used)) };
    #[cfg(all(not(loom), target_os = "linux"))]
    {
        let bytes = len * std::mem::size_of::<Slot>();
        if bytes >= HUGE_SEGMENT {
            // SAFETY: `new_segment` mapped exactly `base..base+bytes`.
            unsafe { libc::munmap(base.cast(), bytes) };
            return;
        }
    }
    let layout = Layout::array::<Slot>(len).expect("segment size overflow");
    // SAFETY: allocated with this layout (`alloc_zeroed`, or a boxed slice of `len` slots).
    unsafe { alloc::dealloc(base.cast(), layout) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_index_space() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(1023), (0, 1023));
        assert_eq!(locate(1024), (1, 0));
        assert_eq!(locate(3071), (1, 2047));
        assert_eq!(locate(3072), (2, 0));
        let (segment, offset) = locate(u32::MAX);
        assert!(segment < SEGMENTS && offset < segment_len(segment));
    }

    #[test]
    fn zeroed_slots_are_free_with_serial_zero() {
        let table = Table::new();
        let mut got = Vec::new();
        for _ in 0..3000 {
            table.alloc_into(&mut got, 1);
        }
        assert_eq!(got.len(), 3000);
        for &i in &got {
            let slot = table.get(i).unwrap();
            assert_eq!(slot.serial(), 0);
            assert!(!slot.is_alive(0));
        }
        assert!(table.get(3000).is_none());
    }

    #[test]
    fn released_indices_are_reused() {
        let table = Table::new();
        let mut got = Vec::new();
        table.alloc_into(&mut got, 1);
        table.release(got.drain(..));
        table.alloc_into(&mut got, 8);
        assert_eq!(got, vec![0]);
    }
}
