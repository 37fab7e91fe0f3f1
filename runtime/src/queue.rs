//! Mailbox queues whose all-zero bit pattern is a valid empty queue.
//!
//! Process slots live in memory obtained zeroed from the allocator and are
//! never explicitly constructed (see `table.rs`), so a slot's queues must be
//! valid when all their bytes are zero. `VecDeque` does not promise that,
//! hence these two small queues:
//!
//! - [`RingQueue`]: a growable ring buffer. Invariant: `buf` is null iff
//!   `cap == 0`; otherwise it points to an allocation of `cap` (a power of
//!   two) `T`s, of which the `len` slots starting at `head` (wrapping) are
//!   initialised.
//! - [`InlineQueue`]: a `RingQueue` with its oldest element stored inline,
//!   so a mailbox that holds one message at a time — most of them — never
//!   allocates, and the message sits in the slot's own cache lines. It also
//!   counts removals (its *epoch*), which a suspended selective receive
//!   uses to know that its saved position may have shifted.
//!   Invariant: if `has_front` is false, `rest` is empty.

use std::alloc::{self, Layout};
use std::mem::MaybeUninit;
use std::ptr;

/// The capacity of a queue's first allocation.
const FIRST_CAPACITY: u32 = 4;

/// A queue that holds more than this many free slots while empty gives its
/// buffer back (`shrink_if_empty`), so a burst does not pin memory forever.
const KEEP_CAPACITY: u32 = 64;

/// A FIFO ring buffer; all-zero bytes are a valid empty queue.
pub(crate) struct RingQueue<T> {
    buf: *mut T,
    cap: u32,
    head: u32,
    len: u32,
}

// SAFETY: the queue owns its `T`s; sending it sends them.
unsafe impl<T: Send> Send for RingQueue<T> {}

impl<T> RingQueue<T> {
    /// An empty queue (all fields zero).
    pub(crate) const fn new() -> Self {
        RingQueue { buf: ptr::null_mut(), cap: 0, head: 0, len: 0 }
    }

    /// Number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the queue holds no element.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The physical index of logical position `i`.
    #[inline]
    fn physical(&self, i: u32) -> usize {
        ((self.head.wrapping_add(i)) & (self.cap - 1)) as usize
    }

    /// Appends `value` at the back.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) {
        if self.len == self.cap {
            self.grow();
        }
        let at = self.physical(self.len);
        // SAFETY: `at < cap` and the slot is outside the initialised range
        // (len < cap after growing), so writing does not overwrite a live value.
        unsafe { self.buf.add(at).write(value) };
        self.len += 1;
    }

    /// Removes and returns the front element.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: len > 0, so `head` is an initialised slot; we move it out and
        // shrink the initialised range past it.
        let value = unsafe { self.buf.add(self.head as usize).read() };
        self.head = (self.head + 1) & (self.cap - 1);
        self.len -= 1;
        Some(value)
    }

    /// A mutable reference to the element at logical position `i`.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len() {
            return None;
        }
        let at = self.physical(i as u32);
        // SAFETY: i < len, so the slot is initialised; `&mut self` makes the borrow unique.
        Some(unsafe { &mut *self.buf.add(at) })
    }

    /// The front element.
    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// A shared reference to the element at logical position `i`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len() {
            return None;
        }
        let at = self.physical(i as u32);
        // SAFETY: i < len, so the slot is initialised.
        Some(unsafe { &*self.buf.add(at) })
    }

    /// Removes the element at logical position `i`, moving whichever side
    /// of it is shorter to close the gap.
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len() {
            return None;
        }
        if i == 0 {
            return self.pop_front();
        }
        let i = i as u32;
        // SAFETY: i < len, so the slot is initialised; it is moved out here and
        // the gap is closed below before anything can observe it.
        let value = unsafe { self.buf.add(self.physical(i)).read() };
        if i < self.len / 2 {
            // Shift the front part [0, i) one step towards the back.
            for j in (0..i).rev() {
                let (from, to) = (self.physical(j), self.physical(j + 1));
                // SAFETY: `from` is initialised, `to` is the vacated slot; both < cap.
                unsafe { self.buf.add(to).write(self.buf.add(from).read()) };
            }
            self.head = (self.head + 1) & (self.cap - 1);
        } else {
            // Shift the back part (i, len) one step towards the front.
            for j in i + 1..self.len {
                let (from, to) = (self.physical(j), self.physical(j - 1));
                // SAFETY: `from` is initialised, `to` is the vacated slot; both < cap.
                unsafe { self.buf.add(to).write(self.buf.add(from).read()) };
            }
        }
        self.len -= 1;
        Some(value)
    }

    /// Moves every element of `other` to the back of `self`, leaving `other`
    /// empty (but keeping its buffer). If `self` is empty the buffers are
    /// swapped instead, which is O(1).
    pub(crate) fn append(&mut self, other: &mut RingQueue<T>) {
        if self.is_empty() {
            std::mem::swap(self, other);
            return;
        }
        while let Some(v) = other.pop_front() {
            self.push_back(v);
        }
    }

    /// Calls `f` on each element, front to back.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        for i in 0..self.len {
            // SAFETY: i < len, so the slot is initialised.
            f(unsafe { &*self.buf.add(self.physical(i)) });
        }
    }

    /// Takes all elements out, leaving `self` empty with no buffer.
    pub(crate) fn take(&mut self) -> RingQueue<T> {
        std::mem::take(self)
    }

    /// Frees the buffer if the queue is empty and the buffer is large.
    pub(crate) fn shrink_if_empty(&mut self) {
        if self.len == 0 && self.cap > KEEP_CAPACITY {
            self.free_buffer();
            self.head = 0;
        }
    }

    fn layout(cap: u32) -> Layout {
        Layout::array::<T>(cap as usize).expect("mailbox capacity overflow")
    }

    #[cold]
    fn grow(&mut self) {
        let new_cap = if self.cap == 0 { FIRST_CAPACITY } else { self.cap.checked_mul(2).expect("mailbox too long") };
        let layout = Self::layout(new_cap);
        let new_buf = if layout.size() == 0 {
            ptr::NonNull::<T>::dangling().as_ptr()
        } else {
            // SAFETY: the layout has non-zero size.
            let p = unsafe { alloc::alloc(layout) }.cast::<T>();
            if p.is_null() {
                alloc::handle_alloc_error(layout);
            }
            p
        };
        for i in 0..self.len {
            // SAFETY: logical element i is initialised in the old buffer; the
            // new buffer has room for `len < new_cap` elements from index 0.
            unsafe { new_buf.add(i as usize).write(self.buf.add(self.physical(i)).read()) };
        }
        self.free_buffer();
        self.buf = new_buf;
        self.cap = new_cap;
        self.head = 0;
    }

    /// Frees the buffer without dropping elements (callers moved them out).
    fn free_buffer(&mut self) {
        if self.cap != 0 {
            let layout = Self::layout(self.cap);
            if layout.size() != 0 {
                // SAFETY: `buf` was allocated with exactly this layout in `grow`.
                unsafe { alloc::dealloc(self.buf.cast(), layout) };
            }
        }
        self.buf = ptr::null_mut();
        self.cap = 0;
    }
}

impl<T> Drop for RingQueue<T> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
        self.free_buffer();
    }
}

impl<T> Default for RingQueue<T> {
    fn default() -> Self {
        RingQueue::new()
    }
}

impl<T> std::fmt::Debug for RingQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingQueue").field("len", &self.len).field("cap", &self.cap).finish()
    }
}

/// A FIFO queue whose oldest element is stored inline; all-zero bytes are a
/// valid empty queue.
pub(crate) struct InlineQueue<T> {
    /// The oldest element, initialised iff `has_front`.
    front: MaybeUninit<T>,
    /// The elements after `front`; empty whenever `has_front` is false.
    rest: RingQueue<T>,
    /// Bumped by every removal.
    epoch: u32,
    has_front: bool,
}

impl<T> InlineQueue<T> {
    /// An empty queue.
    pub(crate) const fn new() -> Self {
        InlineQueue { front: MaybeUninit::uninit(), rest: RingQueue::new(), epoch: 0, has_front: false }
    }

    /// How many removals the queue has seen (wrapping): positions saved
    /// under an older epoch may have shifted.
    #[inline]
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.has_front) + self.rest.len()
    }

    /// Appends `value` at the back.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T) {
        if self.has_front {
            self.rest.push_back(value);
        } else {
            self.front.write(value);
            self.has_front = true;
        }
    }

    /// Removes and returns the front element.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if !self.has_front {
            return None;
        }
        self.epoch = self.epoch.wrapping_add(1);
        // SAFETY: `has_front` says `front` is initialised; it is refilled or
        // marked empty right below.
        let value = unsafe { self.front.assume_init_read() };
        match self.rest.pop_front() {
            Some(next) => {
                self.front.write(next);
            }
            None => self.has_front = false,
        }
        Some(value)
    }

    /// A mutable reference to the element at logical position `i`.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        match i {
            // SAFETY: `has_front` says `front` is initialised.
            0 if self.has_front => Some(unsafe { self.front.assume_init_mut() }),
            0 => None,
            _ => self.rest.get_mut(i - 1),
        }
    }

    /// A shared reference to the element at logical position `i`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        match i {
            // SAFETY: `has_front` says `front` is initialised.
            0 if self.has_front => Some(unsafe { self.front.assume_init_ref() }),
            0 => None,
            _ => self.rest.get(i - 1),
        }
    }

    /// Removes the element at logical position `i`.
    #[inline]
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        match i {
            0 => self.pop_front(),
            _ => {
                let removed = self.rest.remove(i - 1);
                self.epoch = self.epoch.wrapping_add(u32::from(removed.is_some()));
                removed
            }
        }
    }

    /// Moves every element of `other` to the back of `self`; O(1) when
    /// `self` is empty (one element moves inline, the buffers are swapped).
    pub(crate) fn append(&mut self, other: &mut RingQueue<T>) {
        if !self.has_front {
            match other.pop_front() {
                Some(first) => {
                    self.front.write(first);
                    self.has_front = true;
                }
                None => return,
            }
        }
        self.rest.append(other);
    }

    /// Calls `f` on each element, front to back.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        if let Some(front) = self.get(0) {
            f(front);
        }
        self.rest.for_each(f);
    }

    /// Takes all elements out, leaving `self` empty with no buffer.
    pub(crate) fn take(&mut self) -> InlineQueue<T> {
        std::mem::take(self)
    }

    /// Frees the buffer behind the front if it is empty and large.
    pub(crate) fn shrink_if_empty(&mut self) {
        self.rest.shrink_if_empty();
    }
}

impl<T> Drop for InlineQueue<T> {
    fn drop(&mut self) {
        if self.has_front {
            // SAFETY: `has_front` says `front` is initialised; it is dropped once.
            unsafe { self.front.assume_init_drop() };
        }
    }
}

impl<T> Default for InlineQueue<T> {
    fn default() -> Self {
        InlineQueue::new()
    }
}

impl<T> std::fmt::Debug for InlineQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineQueue").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn all_zero_bytes_are_an_empty_queue() {
        // SAFETY: the property under test: all-zero bytes are a valid RingQueue.
        let q: RingQueue<String> = unsafe { std::mem::zeroed() };
        assert!(q.is_empty());
        let mut q = q;
        q.push_back("a".to_string());
        assert_eq!(q.pop_front().as_deref(), Some("a"));
    }

    /// What the randomized model test drives: both queues, the same way.
    trait ModelQueue {
        fn push_back(&mut self, v: u64);
        fn pop_front(&mut self) -> Option<u64>;
        fn get(&self, i: usize) -> Option<&u64>;
        fn remove(&mut self, i: usize) -> Option<u64>;
        fn append(&mut self, other: &mut RingQueue<u64>);
        fn len(&self) -> usize;
        fn for_each(&self, f: &mut dyn FnMut(&u64));
        fn shrink_if_empty(&mut self);
    }

    macro_rules! model_queue {
        ($q:ty) => {
            impl ModelQueue for $q {
                fn push_back(&mut self, v: u64) {
                    <$q>::push_back(self, v)
                }
                fn pop_front(&mut self) -> Option<u64> {
                    <$q>::pop_front(self)
                }
                fn get(&self, i: usize) -> Option<&u64> {
                    <$q>::get(self, i)
                }
                fn remove(&mut self, i: usize) -> Option<u64> {
                    <$q>::remove(self, i)
                }
                fn append(&mut self, other: &mut RingQueue<u64>) {
                    <$q>::append(self, other)
                }
                fn len(&self) -> usize {
                    <$q>::len(self)
                }
                fn for_each(&self, f: &mut dyn FnMut(&u64)) {
                    <$q>::for_each(self, f)
                }
                fn shrink_if_empty(&mut self) {
                    <$q>::shrink_if_empty(self)
                }
            }
        };
    }
    model_queue!(RingQueue<u64>);
    model_queue!(InlineQueue<u64>);

    /// Random pushes, pops, removals from the middle and appends, checked
    /// against a `VecDeque` after every step (xorshift, fixed seed).
    fn behaves_like_vecdeque(q: &mut dyn ModelQueue, mut x: u64, steps: u64) {
        let mut model = VecDeque::new();
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0..=2 => {
                    q.push_back(step);
                    model.push_back(step);
                }
                3 | 4 => assert_eq!(q.pop_front(), model.pop_front()),
                5 if !model.is_empty() => {
                    let i = (x >> 8) as usize % model.len();
                    assert_eq!(q.get(i), model.get(i));
                    assert_eq!(q.remove(i), model.remove(i));
                }
                _ => {
                    let mut other = RingQueue::new();
                    for k in 0..(x >> 20) % 4 {
                        other.push_back(k);
                        model.push_back(k);
                    }
                    q.append(&mut other);
                    assert!(other.is_empty());
                }
            }
            assert_eq!(q.len(), model.len());
            if step % 1024 == 0 {
                let mut seen = Vec::new();
                q.for_each(&mut |v| seen.push(*v));
                assert!(seen.iter().eq(model.iter()));
                q.shrink_if_empty();
            }
        }
    }

    #[test]
    fn behaves_like_vecdeque_under_random_operations() {
        behaves_like_vecdeque(&mut RingQueue::new(), 0x9e3779b97f4a7c15, 200_000);
    }

    #[test]
    fn inline_queue_behaves_like_vecdeque_and_never_allocates_for_one_element() {
        let mut q = InlineQueue::new();
        q.push_back(1u64);
        assert_eq!(q.rest.cap, 0, "one element lives inline");
        assert_eq!(q.pop_front(), Some(1));
        behaves_like_vecdeque(&mut q, 0x2545f4914f6cdd1d, 100_000);
    }

    #[test]
    fn all_zero_bytes_are_an_empty_inline_queue() {
        // SAFETY: the property under test: all-zero bytes are a valid InlineQueue.
        let mut q: InlineQueue<String> = unsafe { std::mem::zeroed() };
        assert_eq!(q.len(), 0);
        q.push_back("x".into());
        q.push_back("y".into());
        assert_eq!(q.pop_front().as_deref(), Some("x"));
    }

    #[test]
    fn drops_remaining_elements() {
        use std::rc::Rc;
        let marker = Rc::new(());
        let mut q = RingQueue::new();
        for _ in 0..10 {
            q.push_back(marker.clone());
        }
        q.remove(4);
        drop(q);
        assert_eq!(Rc::strong_count(&marker), 1);
    }
}
