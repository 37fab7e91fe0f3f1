//! A message of any type, erased: what a mailbox holds.
//!
//! An [`Envelope`] is four words: a pointer to a per-type vtable (type id,
//! type name, drop) and a three-word payload. A value that fits the payload
//! (size ≤ 24 bytes, alignment ≤ 8) is stored inline, so the common
//! messages — integers, Pids, small tuples and enums — cost no allocation;
//! anything larger is boxed and the payload holds the box pointer. A box of
//! up to 128 bytes comes from, and goes back to, a small per-thread cache
//! of freed blocks (`pool`): a call's request, say, is boxed on one side
//! and freed on the other once per call.
//!
//! Invariant: `payload` holds a valid value of the type `vtable` describes
//! (inline or boxed, as that type's `INLINE` says); or `vtable` is
//! [`EMPTY`] and the payload holds nothing; or `vtable` is a type's
//! `VACANT` and the payload holds that type's box, whose value was moved
//! out (so that a `receive!` guard that rejects a boxed message puts it
//! back without freeing and allocating the box again). Every constructor
//! and every method keeps it; `Drop` relies on it.

use std::any::TypeId;
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr;

/// Storage for a message: three machine words.
type Payload = MaybeUninit<[usize; 3]>;

/// What the envelope needs to know about the erased type.
pub(crate) struct MsgVTable {
    type_id: TypeId,
    type_name: fn() -> &'static str,
    /// Drops the value held in the payload.
    drop: unsafe fn(*mut Payload),
}

/// The vtable of one message type; a promoted constant per type.
trait Erased: Sized + Send + 'static {
    /// Whether values of this type are stored in the payload itself.
    const INLINE: bool =
        mem::size_of::<Self>() <= mem::size_of::<Payload>() && mem::align_of::<Self>() <= mem::align_of::<Payload>();
    const VTABLE: &'static MsgVTable = &MsgVTable {
        type_id: TypeId::of::<Self>(),
        type_name: std::any::type_name::<Self>,
        drop: drop_payload::<Self>,
    };
    /// The vtable of an envelope that keeps this type's box after its value
    /// was taken out: it holds no message, and dropping it frees the box.
    const VACANT: &'static MsgVTable =
        &MsgVTable { type_id: TypeId::of::<Taken>(), type_name: || "<taken>", drop: free_box::<Self> };
}

impl<T: Send + 'static> Erased for T {}

/// The type an emptied envelope claims to hold; no message has it.
enum Taken {}

/// The vtable of an envelope whose value has been taken out.
static EMPTY: MsgVTable = MsgVTable { type_id: TypeId::of::<Taken>(), type_name: || "<taken>", drop: drop_nothing };

/// # Safety
/// `payload` must hold a valid `T`, stored as `T::INLINE` says.
unsafe fn drop_payload<T: Erased>(payload: *mut Payload) {
    if T::INLINE {
        // SAFETY: the caller guarantees an inline T lives at the payload's start.
        unsafe { ptr::drop_in_place(payload.cast::<T>()) }
    } else {
        // SAFETY: the caller guarantees the first word of the payload is a
        // box from `pool::boxed::<T>`, not yet reclaimed, holding a T.
        unsafe {
            let boxed = payload.cast::<*mut T>().read();
            ptr::drop_in_place(boxed);
            pool::free(boxed);
        }
    }
}

/// # Safety
/// Always safe: there is nothing to drop.
unsafe fn drop_nothing(_: *mut Payload) {}

/// # Safety
/// The payload's first word must be a box from `pool::boxed::<T>`, not yet
/// reclaimed, whose `T` was moved out.
unsafe fn free_box<T>(payload: *mut Payload) {
    // SAFETY: as the caller guarantees; only the allocation is freed.
    unsafe { pool::free(payload.cast::<*mut T>().read()) }
}

/// A message of some `Send + 'static` type, with its type erased.
pub struct Envelope {
    vtable: &'static MsgVTable,
    payload: Payload,
}

impl Envelope {
    /// Wraps `value`; allocates only if it does not fit three words.
    #[inline]
    pub(crate) fn new<T: Send + 'static>(value: T) -> Envelope {
        let mut payload = Payload::uninit();
        if T::INLINE {
            // SAFETY: INLINE means T's size and alignment fit the payload.
            unsafe { payload.as_mut_ptr().cast::<T>().write(value) }
        } else {
            let boxed = pool::boxed(value);
            // SAFETY: a pointer fits the first word of the payload.
            unsafe { payload.as_mut_ptr().cast::<*mut T>().write(boxed) }
        }
        Envelope { vtable: T::VTABLE, payload }
    }

    /// An empty envelope (holds nothing, drops nothing).
    pub(crate) fn taken() -> Envelope {
        Envelope { vtable: &EMPTY, payload: Payload::uninit() }
    }

    /// Whether the envelope holds a `T`.
    #[inline]
    pub(crate) fn is<T: Send + 'static>(&self) -> bool {
        // By type id alone: comparing vtable addresses first never paid off,
        // since each codegen unit gets its own copy of a type's promoted
        // vtable (measured: the addresses differed even between a sender and
        // a receiver in one function), so the type ids were compared anyway.
        self.vtable.type_id == TypeId::of::<T>()
    }

    /// The name of the held type (`"<taken>"` once emptied).
    pub(crate) fn type_name(&self) -> &'static str {
        (self.vtable.type_name)()
    }

    /// Moves the value out if it is a `T`; the envelope is then empty (a
    /// boxed value's box stays, for [`put`](Envelope::put) to reuse).
    #[inline]
    pub(crate) fn take<T: Send + 'static>(&mut self) -> Option<T> {
        if !self.is::<T>() {
            return None;
        }
        let value = if T::INLINE {
            // SAFETY: `is` checked that an inline T lives at the payload's
            // start; the envelope is marked empty right after, so the value
            // is moved exactly once.
            unsafe { self.payload.as_ptr().cast::<T>().read() }
        } else {
            // SAFETY: `is` checked that the first word is a live Box<T>
            // pointer; the envelope is marked vacant right after (it keeps
            // the box, not the value), so the value is moved exactly once.
            unsafe { self.payload.as_ptr().cast::<*const T>().read().read() }
        };
        self.vtable = if T::INLINE { &EMPTY } else { T::VACANT };
        Some(value)
    }

    /// Whether the envelope holds no message.
    #[inline]
    fn is_empty(&self) -> bool {
        self.vtable.type_id == TypeId::of::<Taken>()
    }

    /// Puts a value back into an emptied envelope (after a failed match);
    /// into the box it was taken from, if it is a `T` taken by
    /// [`take`](Envelope::take).
    ///
    /// # Panics
    /// If the envelope is not empty (a bug in the caller).
    #[inline]
    pub(crate) fn put<T: Send + 'static>(&mut self, value: T) {
        if !T::INLINE && ptr::eq(self.vtable, T::VACANT) {
            // SAFETY: a T's VACANT vtable: the first word is that T's box,
            // its value moved out; writing one in makes it hold a T again.
            unsafe { self.payload.as_ptr().cast::<*mut T>().read().write(value) };
            self.vtable = T::VTABLE;
            return;
        }
        assert!(self.is_empty(), "Envelope::put into a full envelope");
        // Drops what the empty envelope kept (another type's box).
        *self = Envelope::new(value);
    }

    /// A reference to the value if it is a `T`.
    #[inline]
    pub(crate) fn peek<T: Send + 'static>(&self) -> Option<&T> {
        if !self.is::<T>() {
            return None;
        }
        Some(if T::INLINE {
            // SAFETY: `is` checked that an inline T lives at the payload's
            // start; the borrow is tied to `&self`.
            unsafe { &*self.payload.as_ptr().cast::<T>() }
        } else {
            // SAFETY: `is` checked that the first word is a live Box<T> pointer.
            unsafe { &**self.payload.as_ptr().cast::<*const T>() }
        })
    }

    /// Unwraps the value if it is a `T`, or gives the envelope back.
    #[inline]
    pub(crate) fn downcast<T: Send + 'static>(self) -> Result<T, Envelope> {
        if !self.is::<T>() {
            return Err(self);
        }
        // The value is moved out below: the envelope must not drop it.
        let this = mem::ManuallyDrop::new(self);
        Ok(if T::INLINE {
            // SAFETY: `is` checked that an inline T lives at the payload's
            // start; the envelope is forgotten, so it is moved exactly once.
            unsafe { this.payload.as_ptr().cast::<T>().read() }
        } else {
            // SAFETY: `is` checked that the first word is a live box of a T
            // (from `pool::boxed`); the envelope is forgotten, so the value is
            // moved and the box reclaimed once.
            unsafe {
                let boxed = this.payload.as_ptr().cast::<*mut T>().read();
                let value = boxed.read();
                pool::free(boxed);
                value
            }
        })
    }
}

/// The boxes of boxed messages: a block of up to `LARGEST` bytes comes from
/// a per-thread cache of freed blocks, by size class, before the global
/// allocator; a larger (or over-aligned) value goes to the allocator
/// directly.
///
/// Invariants: every block of a class has that class's layout (its size
/// rounded up to a multiple of 16, alignment 16), whichever thread
/// allocated it, so any thread may keep and reuse any freed block of the
/// class; a value's box is freed with the layout it was allocated with,
/// which the value's type alone decides (`boxed` and `free` agree). A
/// thread keeps at most `KEEP_BYTES` of blocks per class, 64 KiB in all
/// (more go back to the allocator), and frees them when it exits. That is
/// 256 blocks of 32 bytes, the class of a call's request, so that the
/// requests of a few hundred calls queued at once on one worker are boxed
/// and freed here, not by the allocator. (W3b through the RPC stubs, 100
/// callers, one worker: 8.7 M calls/s with 32 blocks kept, 9.6 M with 256.)
/// The cache is a linked list through the free blocks' first word. Under
/// loom there is no cache.
mod pool {
    use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
    #[cfg(not(loom))]
    use std::cell::Cell;
    use std::ptr;

    /// Bytes per size class.
    const STEP: usize = 16;
    /// The largest block cached.
    const LARGEST: usize = 128;
    #[cfg(not(loom))]
    const CLASSES: usize = LARGEST / STEP;
    /// Bytes of free blocks a thread keeps per class.
    #[cfg(not(loom))]
    const KEEP_BYTES: u32 = 8 * 1024;

    /// The class of blocks a `T` is boxed in, if it is cached.
    #[inline(always)]
    fn class_of<T>() -> Option<usize> {
        let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
        (size > 0 && size <= LARGEST && align <= STEP).then(|| (size - 1) / STEP)
    }

    /// The layout of every block of `class`.
    #[inline(always)]
    fn class_layout(class: usize) -> Layout {
        // SAFETY: the size is a non-zero multiple of 16, at most LARGEST, and
        // the alignment a power of two: a valid layout.
        unsafe { Layout::from_size_align_unchecked((class + 1) * STEP, STEP) }
    }

    /// One thread's free blocks: a list per class.
    #[cfg(not(loom))]
    struct Cache {
        heads: [Cell<*mut u8>; CLASSES],
        counts: [Cell<u32>; CLASSES],
    }

    #[cfg(not(loom))]
    impl Drop for Cache {
        fn drop(&mut self) {
            for (class, head) in self.heads.iter().enumerate() {
                let mut block = head.replace(ptr::null_mut());
                while !block.is_null() {
                    // SAFETY: a cached block is a free block of `class` whose
                    // first word holds the next one (see `keep`).
                    unsafe {
                        let next = block.cast::<*mut u8>().read();
                        dealloc(block, class_layout(class));
                        block = next;
                    }
                }
            }
        }
    }

    #[cfg(not(loom))]
    thread_local! {
        static CACHE: Cache = const {
            Cache {
                heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
                counts: [const { Cell::new(0) }; CLASSES],
            }
        };
    }

    /// A cached free block of `class`, or null if this thread has none.
    #[inline(always)]
    fn take_cached(class: usize) -> *mut u8 {
        #[cfg(not(loom))]
        {
            CACHE
                .try_with(|cache| {
                    let block = cache.heads[class].get();
                    if !block.is_null() {
                        // SAFETY: a cached block's first word is the next one.
                        cache.heads[class].set(unsafe { block.cast::<*mut u8>().read() });
                        cache.counts[class].set(cache.counts[class].get() - 1);
                    }
                    block
                })
                .unwrap_or(ptr::null_mut())
        }
        #[cfg(loom)]
        {
            let _ = class;
            ptr::null_mut()
        }
    }

    /// Keeps the free block `block` of `class`; false if the cache is full
    /// (or gone: the thread is exiting).
    #[inline(always)]
    fn keep(class: usize, block: *mut u8) -> bool {
        #[cfg(not(loom))]
        {
            CACHE
                .try_with(|cache| {
                    let count = cache.counts[class].get();
                    if count >= KEEP_BYTES / class_layout(class).size() as u32 {
                        return false;
                    }
                    // SAFETY: the block is free, at least 16 bytes and aligned
                    // to 16: its first word can hold the next one.
                    unsafe { block.cast::<*mut u8>().write(cache.heads[class].get()) };
                    cache.heads[class].set(block);
                    cache.counts[class].set(count + 1);
                    true
                })
                .unwrap_or(false)
        }
        #[cfg(loom)]
        {
            let _ = (class, block);
            false
        }
    }

    /// Boxes `value` (see the module docs). Never returns null.
    #[inline]
    pub(super) fn boxed<T>(value: T) -> *mut T {
        let layout = match class_of::<T>() {
            Some(class) => {
                let block = take_cached(class);
                if !block.is_null() {
                    let boxed = block.cast::<T>();
                    // SAFETY: a free block of T's class: large and aligned enough.
                    unsafe { boxed.write(value) };
                    return boxed;
                }
                class_layout(class)
            }
            None => Layout::new::<T>(),
        };
        // SAFETY: a non-zero size: T is not zero-sized (those are inline).
        let block = unsafe { alloc(layout) };
        if block.is_null() {
            handle_alloc_error(layout);
        }
        let boxed = block.cast::<T>();
        // SAFETY: just allocated, with a layout that fits a T.
        unsafe { boxed.write(value) };
        boxed
    }

    /// Frees a box from [`boxed`] whose value was dropped or moved out.
    ///
    /// # Safety
    /// `boxed` came from `boxed::<T>`, is not freed yet, and holds no value.
    #[inline]
    pub(super) unsafe fn free<T>(boxed: *mut T) {
        match class_of::<T>() {
            Some(class) => {
                if !keep(class, boxed.cast()) {
                    // SAFETY: allocated with the class's layout (see `boxed`).
                    unsafe { dealloc(boxed.cast(), class_layout(class)) }
                }
            }
            // SAFETY: allocated with T's own layout (see `boxed`).
            None => unsafe { dealloc(boxed.cast(), Layout::new::<T>()) },
        }
    }
}

impl Drop for Envelope {
    fn drop(&mut self) {
        // SAFETY: by the module invariant the payload holds what the vtable says.
        unsafe { (self.vtable.drop)(&mut self.payload) }
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope").field("type", &self.type_name()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Debug)]
    struct CountsDrops(Arc<AtomicUsize>);
    impl Drop for CountsDrops {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn small_values_round_trip_inline() {
        const { assert!(<(u64, u64, u64) as Erased>::INLINE) };
        let env = Envelope::new((1u64, 2u64, 3u64));
        assert_eq!(env.downcast::<(u64, u64, u64)>().unwrap(), (1, 2, 3));
    }

    #[test]
    fn large_values_round_trip_boxed() {
        const { assert!(!<[u64; 8] as Erased>::INLINE) };
        let env = Envelope::new([7u64; 8]);
        assert!(env.is::<[u64; 8]>());
        assert_eq!(env.downcast::<[u64; 8]>().unwrap(), [7; 8]);
    }

    #[test]
    fn wrong_type_gives_the_envelope_back() {
        let env = Envelope::new(5i32);
        let env = env.downcast::<i64>().unwrap_err();
        assert_eq!(env.type_name(), "i32");
        assert_eq!(env.downcast::<i32>().unwrap(), 5);
    }

    #[test]
    fn drops_its_value_exactly_once_inline_and_boxed() {
        let count = Arc::new(AtomicUsize::new(0));
        drop(Envelope::new(CountsDrops(count.clone())));
        drop(Envelope::new((CountsDrops(count.clone()), [0u64; 8])));
        assert_eq!(count.load(Ordering::SeqCst), 2);
        let mut env = Envelope::new(CountsDrops(count.clone()));
        let v = env.take::<CountsDrops>().unwrap();
        drop(env);
        assert_eq!(count.load(Ordering::SeqCst), 2, "an emptied envelope drops nothing");
        drop(v);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn take_and_put_back_keeps_the_value() {
        let mut env = Envelope::new(String::from("hello"));
        let s = env.take::<String>().unwrap();
        assert_eq!(env.type_name(), "<taken>");
        env.put(s);
        assert_eq!(env.downcast::<String>().unwrap(), "hello");
    }

    #[test]
    fn a_boxed_value_taken_and_put_back_keeps_its_box() {
        let mut env = Envelope::new([7u64; 8]);
        // SAFETY: a boxed value: the first payload word is its box pointer.
        let box_of = |env: &Envelope| unsafe { env.payload.as_ptr().cast::<usize>().read() };
        let before = box_of(&env);
        let value = env.take::<[u64; 8]>().unwrap();
        assert_eq!(env.type_name(), "<taken>");
        assert!(env.peek::<[u64; 8]>().is_none(), "an emptied envelope holds no message");
        env.put(value);
        assert_eq!(box_of(&env), before, "put back into the same box");
        assert_eq!(env.downcast::<[u64; 8]>().unwrap(), [7; 8]);
    }

    #[test]
    fn an_emptied_box_gives_way_to_a_value_of_another_type() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut env = Envelope::new((CountsDrops(count.clone()), [0u64; 8]));
        let value = env.take::<(CountsDrops, [u64; 8])>().unwrap();
        env.put(String::from("other"));
        assert_eq!(count.load(Ordering::SeqCst), 0, "the taken value is not dropped with its box");
        drop(value);
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(env.downcast::<String>().unwrap(), "other");
    }

    #[test]
    fn boxes_freed_on_another_thread_or_past_the_cache_are_reclaimed() {
        let sent: Vec<Envelope> = (0..100u64).map(|i| Envelope::new([i; 8])).collect();
        // Freed by a thread that keeps some (its cache is full after 32) and
        // frees what it kept when it exits.
        std::thread::spawn(move || drop(sent)).join().unwrap();
        let again: Vec<Envelope> = (0..100u64).map(|i| Envelope::new([i; 8])).collect();
        for (i, env) in (0..100u64).zip(again) {
            assert_eq!(env.downcast::<[u64; 8]>().unwrap(), [i; 8]);
        }
        // Larger than any class: the allocator's own.
        assert_eq!(Envelope::new([9u64; 64]).downcast::<[u64; 64]>().unwrap(), [9; 64]);
    }

    #[test]
    fn zero_sized_messages_are_free() {
        struct Stop;
        let env = Envelope::new(Stop);
        assert!(env.is::<Stop>());
        assert!(env.downcast::<Stop>().is_ok());
    }
}
