//! A hierarchical hashed timing wheel: one scheduler worker's pending timers.
//!
//! Time is a `u64` count of milliseconds ("ticks") since an epoch the caller
//! chooses. The wheel has a clock, `now`, that only moves forward, and is
//! owned by one thread: there is no synchronisation inside.
//!
//! # Layout
//!
//! Level `k` (0 ≤ k < 11) has 64 slots; one slot of level `k` covers `64^k`
//! ticks, so level `k` spans `64^(k+1)`. Eleven levels cover `64^11 > 2^64`:
//! every `u64` deadline has an exact home and nothing is ever clamped. Each
//! level keeps a `u64` occupancy bitmap, one bit per non-empty slot. Entries
//! whose deadline is already at or before `now` sit in a separate *due* list.
//!
//! # Invariant
//!
//! An entry with `when > now` lives at level `k = h / 6`, where `h` is the
//! highest bit in which `when` and `now` differ, in slot `(when >> 6k) % 64`.
//! So `when` agrees with `now` on every bit above `6(k+1)` and its level-`k`
//! digit is greater than `now`'s: a slot of level `k` holds exactly the
//! entries due in one later `64^k`-tick stretch of `now`'s current
//! `64^(k+1)`-tick stretch, and the slot's start is after `now`. Two
//! consequences: every entry of level `k` is due after every entry of the
//! levels below it, and within a level slot order is time order. The earliest
//! non-empty slot is therefore the lowest set bit of the lowest non-zero
//! bitmap, found with `trailing_zeros` on at most eleven words.
//!
//! # Algorithm
//!
//! `insert` places an entry by the rule above (or in the due list) and
//! `remove` unlinks it; both are O(1). `poll(target)`:
//!
//! 1. Delivers the due list, sorted by deadline (it is normally tiny).
//! 2. Finds the earliest non-empty slot, at level `k` starting at tick `s`.
//!    If `s > target`, stops.
//! 3. Otherwise sets `now = s` and empties the slot: an entry with
//!    `when == s` expires; any other now agrees with `now` on every bit from
//!    `6k` up, so re-placing it puts it at a level below `k` — this is the
//!    *cascade*, and an entry cascades at most once per level. Back to 2.
//! 4. Sets `now = target`.
//!
//! Moving `now` to any tick before every occupied slot's start keeps the
//! invariant (that tick still shares the slot's upper bits and has a smaller
//! digit), which is why steps 3 and 4 are sound. The loop runs once per
//! non-empty slot, never once per tick, so an hour-long jump over empty
//! slots costs a few bitmap scans.
//!
//! Never early: an entry is delivered only when `when <= now <= target`.
//! Never late: when the loop stops, every remaining entry sits in a slot
//! that starts after `target` and no entry is due before its slot starts.
//! In order: slots are emptied in time order and emptying one expires only
//! entries due exactly at its start.
//!
//! # Storage
//!
//! Entries live in a slab (`Vec<Entry<T>>` with an intrusive free list), so
//! the steady state allocates nothing. An entry records its deadline, its
//! generation and its location — level, slot, and position in the slot's
//! `Vec<u32>` of entry indices — so removal is a `swap_remove` plus fixing
//! the moved entry's position. A pending entry costs
//! `size_of::<T>() + 24` bytes (8-byte aligned `T`) plus 4 in its slot. Each
//! freeing bumps the entry's generation, so a [`TimerKey`] of an expired or
//! removed entry never matches a later entry in the same storage; an entry
//! whose generation would wrap is retired instead of reused, so this has no
//! exception.
//!
//! # Prior art
//!
//! G. Varghese and T. Lauck, "Hashed and Hierarchical Timing Wheels: Data
//! Structures for the Efficient Implementation of a Timer Facility",
//! SOSP 1987 (scheme 7, hierarchical wheels). Tokio's timer wheel uses the
//! same digit-per-level placement with six levels and clamps deadlines
//! beyond about two years; here five more levels remove the clamping and its
//! special cases. The code is written from the description above.

use std::fmt;

/// Bits of the deadline per level: 64 slots.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask of one level's digit.
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Enough levels that `SLOT_BITS * LEVELS >= 64`.
const LEVELS: usize = 11;
/// The `level` recorded for entries in the due list.
const DUE_LEVEL: u8 = LEVELS as u8;
/// Index of the due list in `Wheel::lists` (after the wheel's slots).
const DUE_LIST: usize = LEVELS * SLOTS;
/// "No entry": the end of the free list, and the one index never handed out.
const NO_ENTRY: u32 = u32::MAX;

/// A hierarchical timing wheel of values of type `T`, with millisecond ticks.
pub(crate) struct Wheel<T> {
    /// The clock: every entry in a slot is due after it, every due-list entry
    /// at or before it.
    now: u64,
    /// The slab.
    entries: Vec<Entry<T>>,
    /// First vacant entry to reuse, or `NO_ENTRY`.
    free_head: u32,
    /// `LEVELS * SLOTS` wheel slots (level-major), then the due list.
    lists: Box<[Vec<u32>]>,
    /// Per level, bit `s` set iff slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// At or before every due-list deadline (`u64::MAX` when the list is empty).
    due_min: u64,
    /// Pending entries.
    len: usize,
}

/// Names one pending entry of a [`Wheel`], for [`Wheel::remove`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey {
    index: u32,
    generation: u32,
}

/// One slab entry.
enum Entry<T> {
    Pending {
        when: u64,
        generation: u32,
        /// Index in `lists[level * SLOTS + slot]`.
        position: u32,
        level: u8,
        slot: u8,
        value: T,
    },
    Vacant {
        /// The generation the next occupant will get (`u32::MAX`: retired).
        generation: u32,
        next_free: u32,
    },
}

impl<T> Entry<T> {
    fn when(&self) -> u64 {
        match self {
            Entry::Pending { when, .. } => *when,
            Entry::Vacant { .. } => unreachable!("timer wheel: a list names a vacant entry"),
        }
    }

    fn set_location(&mut self, new_level: u8, new_slot: u8, new_position: u32) {
        match self {
            Entry::Pending { level, slot, position, .. } => {
                *level = new_level;
                *slot = new_slot;
                *position = new_position;
            }
            Entry::Vacant { .. } => unreachable!("timer wheel: a list names a vacant entry"),
        }
    }
}

impl TimerKey {
    /// A key that names no entry (`NO_ENTRY` is never handed out).
    pub(crate) const NONE: TimerKey = TimerKey { index: NO_ENTRY, generation: 0 };
}

impl<T> Wheel<T> {
    /// An empty wheel whose clock starts at `now` (ticks).
    pub(crate) fn new(now: u64) -> Self {
        Wheel {
            now,
            entries: Vec::new(),
            free_head: NO_ENTRY,
            lists: (0..=DUE_LIST).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            due_min: u64::MAX,
            len: 0,
        }
    }

    /// Schedules `value` to expire at tick `when`; a `when` at or before the
    /// clock expires at the next [`poll`](Self::poll).
    pub(crate) fn insert(&mut self, when: u64, value: T) -> TimerKey {
        let (index, generation) = self.allocate();
        let (level, slot, position) = self.link(index, when);
        self.entries[index as usize] = Entry::Pending { when, generation, position, level, slot, value };
        self.len += 1;
        TimerKey { index, generation }
    }

    /// Removes a pending entry; `None` if `key`'s entry already expired or
    /// was removed.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index as usize)? {
            Entry::Pending { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// Advances the clock to `now` and appends every entry due by then to
    /// `out`, in non-decreasing deadline order.
    ///
    /// The clock never goes back: a `now` before the clock polls at the
    /// clock, which still delivers entries inserted at or before it.
    pub(crate) fn poll(&mut self, now: u64, out: &mut Vec<T>) {
        let target = now.max(self.now);
        self.deliver_due(out);
        while let Some((level, slot, start)) = self.earliest_slot() {
            if start > target {
                break;
            }
            self.now = start;
            self.occupied[level] &= !(1 << slot);
            let list_index = level * SLOTS + slot;
            let mut list = std::mem::take(&mut self.lists[list_index]);
            for &index in &list {
                let when = self.entries[index as usize].when();
                if when <= start {
                    out.push(self.release(index));
                } else {
                    let (level, slot, position) = self.link(index, when);
                    self.entries[index as usize].set_location(level, slot, position);
                }
            }
            // Cascading only moves entries to lower levels, so the slot is
            // still empty: give it back its buffer.
            debug_assert!(self.lists[list_index].is_empty());
            list.clear();
            self.lists[list_index] = list;
        }
        self.now = target;
    }

    /// A tick at or before the earliest pending deadline (exact when that
    /// entry is in the lowest level), or `None` when the wheel is empty.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        if !self.lists[DUE_LIST].is_empty() {
            return Some(self.due_min);
        }
        self.earliest_slot().map(|(_, _, start)| start)
    }

    /// The clock: the last tick polled. Every entry due by then that was
    /// inserted before that poll has been delivered.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// The number of pending entries.
    #[allow(dead_code)] // Part of the API; the worker only needs `is_empty` so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `key`'s entry is still pending (has neither expired nor been
    /// removed).
    #[inline]
    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        matches!(self.entries.get(key.index as usize), Some(Entry::Pending { generation, .. }) if *generation == key.generation)
    }

    /// Whether no entry is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The level, slot and start tick of the earliest non-empty slot.
    fn earliest_slot(&self) -> Option<(usize, usize, u64)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        let slot = self.occupied[level].trailing_zeros() as usize;
        let shift = SLOT_BITS * level as u32;
        let start = (((self.now >> shift) & !SLOT_MASK) | slot as u64) << shift;
        Some((level, slot, start))
    }

    /// A vacant entry to fill, and the generation its key gets.
    fn allocate(&mut self) -> (u32, u32) {
        if self.free_head == NO_ENTRY {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&index| index != NO_ENTRY)
                .expect("timer wheel: more than u32::MAX - 1 entries");
            self.entries.push(Entry::Vacant { generation: 0, next_free: NO_ENTRY });
            return (index, 0);
        }
        let index = self.free_head;
        match self.entries[index as usize] {
            Entry::Vacant { generation, next_free } => {
                self.free_head = next_free;
                (index, generation)
            }
            Entry::Pending { .. } => unreachable!("timer wheel: free list names a pending entry"),
        }
    }

    /// Appends entry `index` to the list its deadline belongs in now;
    /// returns the location to record in the entry.
    fn link(&mut self, index: u32, when: u64) -> (u8, u8, u32) {
        let (level, slot) = if when <= self.now {
            self.due_min = self.due_min.min(when);
            (DUE_LEVEL, 0)
        } else {
            let highest_difference = 63 - (when ^ self.now).leading_zeros();
            let level = highest_difference / SLOT_BITS;
            let slot = (when >> (SLOT_BITS * level)) & SLOT_MASK;
            self.occupied[level as usize] |= 1 << slot;
            (level as u8, slot as u8)
        };
        let list = &mut self.lists[usize::from(level) * SLOTS + usize::from(slot)];
        // Fits: a list holds fewer entries than the slab, which has < u32::MAX.
        let position = list.len() as u32;
        list.push(index);
        (level, slot, position)
    }

    /// Takes pending entry `index` out of its list, in O(1).
    fn unlink(&mut self, index: u32) {
        let Entry::Pending { level, slot, position, .. } = self.entries[index as usize] else {
            unreachable!("timer wheel: unlinking a vacant entry")
        };
        let list = &mut self.lists[usize::from(level) * SLOTS + usize::from(slot)];
        list.swap_remove(position as usize);
        if let Some(&moved) = list.get(position as usize) {
            self.entries[moved as usize].set_location(level, slot, position);
        }
        if list.is_empty() {
            if level == DUE_LEVEL {
                self.due_min = u64::MAX;
            } else {
                self.occupied[usize::from(level)] &= !(1 << slot);
            }
        }
    }

    /// Frees pending entry `index` (already out of its list, or in a list
    /// being discarded) and returns its value.
    fn release(&mut self, index: u32) -> T {
        let entry = &mut self.entries[index as usize];
        let Entry::Pending { generation, .. } = *entry else { unreachable!("timer wheel: releasing a vacant entry") };
        let vacant = if generation == u32::MAX {
            // Retired: off the free list for good, so no key can alias it.
            Entry::Vacant { generation, next_free: NO_ENTRY }
        } else {
            let next_free = self.free_head;
            self.free_head = index;
            Entry::Vacant { generation: generation + 1, next_free }
        };
        self.len -= 1;
        match std::mem::replace(entry, vacant) {
            Entry::Pending { value, .. } => value,
            Entry::Vacant { .. } => unreachable!("checked above"),
        }
    }

    /// Step 1 of `poll`: delivers the due list in deadline order.
    fn deliver_due(&mut self, out: &mut Vec<T>) {
        if self.lists[DUE_LIST].is_empty() {
            return;
        }
        let mut due = std::mem::take(&mut self.lists[DUE_LIST]);
        let entries = &self.entries;
        due.sort_unstable_by_key(|&index| entries[index as usize].when());
        for &index in &due {
            out.push(self.release(index));
        }
        due.clear();
        self.lists[DUE_LIST] = due;
        self.due_min = u64::MAX;
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel").field("now", &self.now).field("len", &self.len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_entry_is_contained_until_it_expires_or_is_removed() {
        let mut wheel = Wheel::new(0);
        let (fires, removed) = (wheel.insert(5, 'a'), wheel.insert(9, 'b'));
        assert!(wheel.contains(fires) && wheel.contains(removed));
        assert_eq!(wheel.remove(removed), Some('b'));
        assert!(!wheel.contains(removed));
        let mut out = Vec::new();
        wheel.poll(5, &mut out);
        assert_eq!(out, vec!['a']);
        assert!(!wheel.contains(fires));
        // The slab entry is reused: the old key still does not name it.
        let reused = wheel.insert(7, 'c');
        assert!(wheel.contains(reused) && !wheel.contains(fires) && !wheel.contains(removed));
    }

    /// Marsaglia's xorshift64: deterministic, good enough to pick test cases.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    fn poll_all<T>(wheel: &mut Wheel<T>, now: u64) -> Vec<T> {
        let mut out = Vec::new();
        wheel.poll(now, &mut out);
        out
    }

    #[test]
    fn expires_exactly_at_deadline_not_before() {
        let deltas = [1, 2, 63, 64, 65, 100, 4095, 4096, 4097, 262_143, 262_144];
        for start in [0, 12_345, (1 << 36) - 3] {
            for delta in deltas {
                let when = start + delta;
                let mut wheel = Wheel::new(start);
                wheel.insert(when, delta);
                assert!(poll_all(&mut wheel, when - 1).is_empty(), "{start}+{delta}");
                assert_eq!(poll_all(&mut wheel, when), [delta], "{start}+{delta}");
                assert!(wheel.is_empty());
            }
        }
    }

    #[test]
    fn many_empty_polls_then_fires_on_time() {
        let mut wheel = Wheel::new(0);
        wheel.insert(5_000, "late");
        wheel.insert(70, "early");
        let mut fired = Vec::new();
        for now in 1..=5_000 {
            let out = poll_all(&mut wheel, now);
            fired.extend(out.into_iter().map(|value| (now, value)));
        }
        assert_eq!(fired, [(70, "early"), (5_000, "late")]);
    }

    #[test]
    fn removed_entry_never_fires() {
        let mut wheel = Wheel::new(0);
        let kept = wheel.insert(100, 'a');
        let removed = wheel.insert(100, 'b');
        let far = wheel.insert(1_000_000, 'c');
        assert_eq!(wheel.remove(removed), Some('b'));
        assert_eq!(wheel.remove(far), Some('c'));
        assert_eq!(wheel.len(), 1);
        assert_eq!(poll_all(&mut wheel, u64::MAX), ['a']);
        assert_eq!(wheel.remove(kept), None);
        assert_eq!(wheel.remove(removed), None);
    }

    #[test]
    fn removal_after_cascade_finds_the_entry() {
        let mut wheel = Wheel::new(0);
        let keys: Vec<_> = (0..10).map(|i| wheel.insert(300_000 + i, i)).collect();
        // Past the level-2 slot start: the entries have cascaded down.
        assert!(poll_all(&mut wheel, 299_990).is_empty());
        assert_eq!(wheel.remove(keys[3]), Some(3));
        assert_eq!(wheel.remove(keys[9]), Some(9));
        assert_eq!(poll_all(&mut wheel, 400_000), [0, 1, 2, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn stale_key_does_not_remove_reused_entry() {
        let mut wheel = Wheel::new(0);
        let first = wheel.insert(10, 1);
        assert_eq!(wheel.remove(first), Some(1));
        let second = wheel.insert(10, 2);
        assert_eq!(second.index, first.index, "storage is reused");
        assert_eq!(wheel.remove(first), None);
        assert_eq!(poll_all(&mut wheel, 10), [2]);
        let third = wheel.insert(20, 3);
        assert_eq!(wheel.remove(second), None, "an expired key is stale too");
        assert_eq!(wheel.remove(third), Some(3));
    }

    #[test]
    fn exhausted_generation_retires_the_entry() {
        let mut wheel = Wheel::new(0);
        let key = wheel.insert(10, ());
        if let Entry::Pending { generation, .. } = &mut wheel.entries[0] {
            *generation = u32::MAX;
        }
        let key = TimerKey { generation: u32::MAX, ..key };
        assert_eq!(wheel.remove(key), Some(()));
        let next = wheel.insert(10, ());
        assert_ne!(next.index, key.index);
        assert_eq!(wheel.remove(key), None);
    }

    #[test]
    fn slab_reuses_freed_entries() {
        let mut wheel = Wheel::new(0);
        for round in 0..1_000 {
            let key = wheel.insert(round + 50, round);
            wheel.insert(round + 1, round);
            assert_eq!(wheel.remove(key), Some(round));
            assert_eq!(poll_all(&mut wheel, round + 1), [round]);
        }
        assert_eq!(wheel.entries.len(), 2);
    }

    #[test]
    fn past_deadlines_fire_on_next_poll_in_deadline_order() {
        let mut wheel = Wheel::new(1_000);
        for when in [900, 500, 1_000, 700] {
            wheel.insert(when, when);
        }
        wheel.insert(1_001, 1_001);
        assert_eq!(wheel.next_expiration(), Some(500));
        // Even a poll "in the past" delivers what is already due.
        assert_eq!(poll_all(&mut wheel, 0), [500, 700, 900, 1_000]);
        assert_eq!(poll_all(&mut wheel, 1_001), [1_001]);
    }

    #[test]
    fn poll_backwards_does_not_move_the_clock() {
        let mut wheel = Wheel::new(0);
        assert!(poll_all(&mut wheel, 100).is_empty());
        assert!(poll_all(&mut wheel, 50).is_empty());
        wheel.insert(101, 'a');
        assert!(poll_all(&mut wheel, 60).is_empty());
        assert_eq!(wheel.next_expiration(), Some(101));
        assert_eq!(poll_all(&mut wheel, 101), ['a']);
    }

    #[test]
    fn large_jump_fires_everything_in_order() {
        let hours = 10 * 3_600_000;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut wheel = Wheel::new(777);
        let mut expected: Vec<u64> = (0..10_000).map(|_| 778 + rng.below(hours)).collect();
        for &when in &expected {
            wheel.insert(when, when);
        }
        let out = poll_all(&mut wheel, 777 + hours);
        expected.sort_unstable();
        assert_eq!(out, expected);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_expiration(), None);
    }

    #[test]
    fn far_future_entry_cascades_without_loss() {
        let two_years = 64u64.pow(6);
        let whens = [two_years - 1, two_years, two_years + 5, 1 << 50, u64::MAX - 1, u64::MAX];
        let mut wheel = Wheel::new(3);
        for when in whens {
            wheel.insert(when, when);
        }
        for when in whens {
            assert!(poll_all(&mut wheel, when - 1).is_empty(), "{when} early");
            assert_eq!(poll_all(&mut wheel, when), [when]);
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn lowest_level_next_expiration_is_exact() {
        let mut wheel = Wheel::new(1_000);
        wheel.insert(1_030, ());
        wheel.insert(1_020, ());
        wheel.insert(9_000, ());
        assert_eq!(wheel.next_expiration(), Some(1_020));
    }

    #[test]
    fn next_expiration_is_never_late() {
        let mut rng = XorShift(42);
        for _ in 0..200 {
            let start = rng.below(1 << 40);
            let mut wheel = Wheel::new(start);
            let mut pending: Vec<u64> =
                (0..20).map(|_| start + 1 + (rng.next() >> (1 + rng.below(63)).min(63))).collect();
            for &when in &pending {
                wheel.insert(when, when);
            }
            pending.sort_unstable();
            // Drive the wheel like a worker: sleep until next_expiration, poll.
            let mut delivered = Vec::new();
            let mut polls = 0;
            while let Some(at) = wheel.next_expiration() {
                let earliest = pending[delivered.len()];
                assert!(at <= earliest, "next_expiration {at} after {earliest}");
                let out = poll_all(&mut wheel, at);
                assert!(out.iter().all(|&when| when == at), "delivered late");
                delivered.extend(out);
                polls += 1;
                assert!(polls <= 20 * LEVELS, "poll makes no progress");
            }
            assert_eq!(delivered, pending);
        }
    }

    #[test]
    fn entry_overhead_is_small() {
        assert!(std::mem::size_of::<Entry<u64>>() <= std::mem::size_of::<u64>() + 24);
    }

    #[test]
    fn many_entries_insert_and_poll_in_order() {
        let count = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
        let mut rng = XorShift(7);
        let mut wheel = Wheel::new(0);
        let mut whens: Vec<u64> = (0..count).map(|_| 1 + rng.below(3_600_000)).collect();
        for &when in &whens {
            wheel.insert(when, when);
        }
        assert_eq!(wheel.len(), count);
        let mut out = Vec::with_capacity(count);
        wheel.poll(3_600_000, &mut out);
        whens.sort_unstable();
        assert_eq!(out, whens);
        assert!(wheel.is_empty());
    }

    /// A time step: mostly small, sometimes zero, sometimes hours or years.
    fn random_step(rng: &mut XorShift) -> u64 {
        match rng.below(20) {
            0..=2 => 0,
            3..=10 => rng.below(130),
            11..=15 => rng.below(10_000),
            16..=17 => rng.below(20_000_000),
            _ => rng.next() >> (18 + rng.below(46)),
        }
    }

    fn run_model(seed: u64, operations: usize) {
        let mut rng = XorShift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
        let mut now = match seed % 3 {
            0 => 0,
            1 => rng.next() >> 4,
            _ => u64::MAX - rng.below(1 << 32),
        };
        let mut wheel = Wheel::new(now);
        let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut live: Vec<(u64, u64, TimerKey)> = Vec::new();
        let mut dead: Vec<TimerKey> = Vec::new();
        let mut seq = 0;
        for _ in 0..operations {
            match rng.below(100) {
                0..=49 => {
                    let when = match rng.below(10) {
                        0 => now.saturating_sub(rng.below(200)),
                        1 => rng.next(),
                        2 => u64::MAX,
                        _ => now.saturating_add(random_step(&mut rng)),
                    };
                    seq += 1;
                    let key = wheel.insert(when, (when, seq));
                    model.insert((when, seq), seq);
                    live.push((when, seq, key));
                }
                50..=64 if !live.is_empty() => {
                    let (when, seq, key) = live.swap_remove(rng.below(live.len() as u64) as usize);
                    assert_eq!(wheel.remove(key), Some((when, seq)));
                    assert_eq!(model.remove(&(when, seq)), Some(seq));
                    dead.push(key);
                }
                65..=69 if !dead.is_empty() => {
                    let key = dead[rng.below(dead.len() as u64) as usize];
                    assert_eq!(wheel.remove(key), None);
                }
                _ => {
                    let target = if rng.below(10) == 0 {
                        now.saturating_sub(rng.below(1_000))
                    } else {
                        now.saturating_add(random_step(&mut rng))
                    };
                    now = now.max(target);
                    let mut got = poll_all(&mut wheel, target);
                    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "out of order");
                    let expected: Vec<u64> = match now.checked_add(1) {
                        Some(next) => {
                            let later = model.split_off(&(next, 0));
                            std::mem::replace(&mut model, later).into_values().collect()
                        }
                        None => std::mem::take(&mut model).into_values().collect(),
                    };
                    got.sort_unstable_by_key(|&(_, seq)| seq);
                    let got: Vec<u64> = got.into_iter().map(|(_, seq)| seq).collect();
                    let mut expected = expected;
                    expected.sort_unstable();
                    assert_eq!(got, expected, "seed {seed}, poll to {target}");
                    live.retain(|&(when, seq, key)| {
                        let pending = model.contains_key(&(when, seq));
                        if !pending {
                            dead.push(key);
                        }
                        pending
                    });
                    if dead.len() > 1_000 {
                        dead.drain(..500);
                    }
                }
            }
            assert_eq!(wheel.len(), model.len());
            match (wheel.next_expiration(), model.keys().next()) {
                (None, None) => {}
                (Some(at), Some(&(earliest, _))) => {
                    assert!(at <= earliest, "next_expiration {at} after {earliest}");
                }
                (at, earliest) => panic!("next_expiration {at:?}, model {earliest:?}"),
            }
        }
    }

    #[test]
    fn matches_btreemap_model_under_random_operations() {
        for seed in 1..=30 {
            run_model(seed, 4_000);
        }
    }
}
