//! The monitors of the calls made to a process by processes of its runtime
//! (`call.rs`, step 2), kept in its extras under its lock: at its exit each
//! fires, and its `Down` is accepted only by a caller that still awaits the
//! call.
//!
//! # Invariant
//!
//! Every monitor whose caller may still await its call is here. One leaves
//! only when its caller cannot await it any more:
//!
//! - replaced by a later call of a caller of the same slot index that, when
//!   it made that call, awaited no other. Then the earlier call has ended,
//!   or so has the incarnation that made it (a slot is reused only after
//!   its process has exited);
//! - pruned: its caller no longer awaits it (checked without the caller's
//!   lock, where a no is final: a call's tag is never awaited again).
//!
//! # Cost
//!
//! A caller that awaits one call at a time (the common case) has one entry
//! in a direct-mapped table, at its slot index modulo the table's length,
//! which its next call overwrites: a caller calling alone (W3a) or callers
//! that take turns (W3b's clients) cost the server a store a call, where a
//! list they each appended to had to be pruned, about twice a call's worth
//! of checks. The table doubles when a caller finds another caller's entry
//! in its place (after a pruning, if one is due), while it is shorter than
//! four times its entries (so it stays proportional to them); past that,
//! and for the calls a caller makes while it awaits others, monitors go to
//! a list. The two are pruned together when they have doubled since the
//! last pruning, so what exited callers leave behind costs amortized
//! constant time a call.
//!
//! # Memory
//!
//! A caller that exits leaves its entry behind, and a new process in its
//! slot overwrites that entry without ever finding the table full: after a
//! burst of callers, the entries (and a table sized for the burst) would
//! stay as long as the server. So every [`REVIEW_EVERY`] calls, or every
//! sixteen times the table's length if that is more, the monitors are
//! pruned anyway; then the table halves while it is longer than
//! [`FIRST_LEN`] and sixteen times its entries (it doubles only below four
//! times: the two cannot chase each other), and the list gives back what
//! it holds beyond twice its length. A server thus holds memory in
//! proportion to the calls still awaited when it was last reviewed, not to
//! the most it ever served at once. The count costs a call about 5
//! instructions (W3a stub 1,175 -> 1,180), the reviews about 3 a call with
//! 100 callers taking turns (a look at each caller's slot every 2,048
//! calls).

use crate::monitor::MonitorRef;
use crate::pid::Pid;

/// Entries at which the monitors are first pruned.
pub(crate) const PRUNE_FIRST: usize = 32;
/// The table's length when first needed.
const FIRST_LEN: usize = 8;
/// Calls after which the monitors are pruned at the latest, if the table
/// is shorter than a sixteenth of this (see Memory in the module docs).
pub(crate) const REVIEW_EVERY: u32 = 1024;

/// A table entry that holds no monitor (a call's tag is never 0).
const EMPTY: MonitorRef = MonitorRef::new(0, Pid::from_parts(0, 0, 0), Pid::from_parts(0, 0, 0));

/// The call monitors of one process (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct CallMonitors {
    /// By the caller's slot index modulo its length (a power of two, or 0):
    /// that caller's last call made while it awaited no other, or [`EMPTY`].
    single: Vec<MonitorRef>,
    /// How many entries of `single` are not [`EMPTY`].
    filled: usize,
    /// Calls made while their callers awaited others, or whose entry in
    /// `single` another caller held.
    more: Vec<MonitorRef>,
    /// The number of monitors at which they are next pruned (0: the first threshold).
    prune_at: usize,
    /// Calls to add before the next review (0: at the next; see Memory in
    /// the module docs).
    until_review: u32,
}

impl CallMonitors {
    /// Adds the monitor of a call whose caller awaited no other call when it
    /// made it (`only_call`) or did; `retain_awaited` prunes, when due, the
    /// monitors whose callers no longer await them.
    #[inline]
    pub(crate) fn add(&mut self, reference: MonitorRef, only_call: bool, retain_awaited: impl FnOnce(&mut Self)) {
        if only_call && self.until_review != 0 && self.place(reference) {
            self.until_review -= 1;
            return;
        }
        self.add_slow(reference, only_call, retain_awaited);
    }

    /// Puts `reference` in its caller's table entry if that is empty or
    /// holds the same caller's previous call (which has ended, or whose
    /// incarnation has); whether it did.
    #[inline]
    fn place(&mut self, reference: MonitorRef) -> bool {
        let caller = reference.watcher().index();
        let at = caller as usize & self.single.len().wrapping_sub(1);
        let Some(entry) = self.single.get_mut(at) else { return false };
        if entry.watcher().index() == caller && entry.id() != 0 {
            *entry = reference;
            return true;
        }
        if entry.id() != 0 {
            return false;
        }
        *entry = reference;
        self.filled += 1;
        true
    }

    /// [`CallMonitors::add`] when the caller's table entry is not simply
    /// there to take: a pruning if due, the table grown if it may, else
    /// the list.
    #[cold]
    #[inline(never)]
    fn add_slow(&mut self, reference: MonitorRef, only_call: bool, retain_awaited: impl FnOnce(&mut Self)) {
        let review = self.until_review == 0;
        // (A review of none, at the first call, has nothing to prune.)
        if (review && self.len() != 0) || self.len() >= self.prune_at.max(PRUNE_FIRST) {
            retain_awaited(self);
            self.prune_at = 2 * self.len();
        }
        if review {
            self.shrink();
            let table = u32::try_from(16 * self.single.len()).unwrap_or(u32::MAX);
            self.until_review = REVIEW_EVERY.max(table);
        }
        self.until_review -= 1;
        if only_call {
            while !self.place(reference) {
                if self.single.len() >= 4 * (self.filled + 1) {
                    self.more.push(reference);
                    return;
                }
                self.grow();
            }
            return;
        }
        self.more.push(reference);
    }

    /// Doubles the table: entries at distinct places modulo its length are
    /// at distinct places modulo twice that.
    fn grow(&mut self) {
        self.resize((2 * self.single.len()).max(FIRST_LEN));
    }

    /// Moves the table's entries to a table of `len` (a power of two); one
    /// that meets another at its place there goes to the list (only when
    /// shrinking).
    fn resize(&mut self, len: usize) {
        let old = std::mem::replace(&mut self.single, vec![EMPTY; len]);
        for entry in old.into_iter().filter(|e| e.id() != 0) {
            let place = &mut self.single[entry.watcher().index() as usize & (len - 1)];
            if place.id() == 0 {
                *place = entry;
            } else {
                self.more.push(entry);
                self.filled -= 1;
            }
        }
    }

    /// After a review's pruning: halves the table while it is longer than
    /// [`FIRST_LEN`] and sixteen times its entries (an entry that meets
    /// another at its place in the shorter table goes to the list), and
    /// gives back what the list holds beyond twice its length.
    fn shrink(&mut self) {
        let mut len = self.single.len();
        while len > FIRST_LEN && len > 16 * self.filled {
            len /= 2;
        }
        if len < self.single.len() {
            self.resize(len);
        }
        if self.more.capacity() > 2 * self.more.len().max(PRUNE_FIRST) {
            self.more.shrink_to(2 * self.more.len());
        }
    }

    /// Keeps the monitors for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&MonitorRef) -> bool) {
        for entry in self.single.iter_mut().filter(|e| e.id() != 0) {
            if !keep(entry) {
                *entry = EMPTY;
                self.filled -= 1;
            }
        }
        self.more.retain(|r| keep(r));
    }

    /// How many monitors there are.
    pub(crate) fn len(&self) -> usize {
        self.filled + self.more.len()
    }

    /// Any one of them.
    pub(crate) fn any(&self) -> Option<&MonitorRef> {
        self.more.first().or_else(|| self.single.iter().find(|e| e.id() != 0))
    }

    /// All of them, in no particular order.
    pub(crate) fn to_vec(&self) -> Vec<MonitorRef> {
        self.single.iter().filter(|e| e.id() != 0).chain(&self.more).copied().collect()
    }

    /// Takes them all (at exit), in no particular order.
    pub(crate) fn take(&mut self) -> Vec<MonitorRef> {
        let CallMonitors { single, mut more, .. } = std::mem::take(self);
        more.extend(single.into_iter().filter(|e| e.id() != 0));
        more
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::pid::Pid;

    fn call(tag: u64, caller: u32, serial: u32) -> MonitorRef {
        MonitorRef::new(tag, Pid::from_parts(0, 9, 1), Pid::from_parts(0, caller, serial))
    }

    fn sorted(mut v: Vec<MonitorRef>) -> Vec<MonitorRef> {
        v.sort();
        v
    }

    #[test]
    fn a_callers_single_call_replaces_its_last_and_calls_made_beside_others_are_kept() {
        let mut calls = CallMonitors::default();
        let never = |_: &mut CallMonitors| panic!("no pruning below the first threshold");
        calls.add(call(1, 1, 1), true, never);
        calls.add(call(2, 2, 1), true, never);
        calls.add(call(3, 1, 1), true, never);
        calls.add(call(4, 1, 1), false, never);
        // Another incarnation of slot 2 (the first has exited).
        calls.add(call(5, 2, 2), true, never);
        assert_eq!(sorted(calls.to_vec()), vec![call(3, 1, 1), call(4, 1, 1), call(5, 2, 2)]);
        assert_eq!(calls.len(), 3);
        assert_eq!(sorted(calls.take()), vec![call(3, 1, 1), call(4, 1, 1), call(5, 2, 2)]);
        assert_eq!(calls.len(), 0);
    }

    #[test]
    fn callers_taking_turns_keep_one_monitor_each_and_prune_only_while_their_number_grows() {
        let mut calls = CallMonitors::default();
        let mut prunings = 0;
        for tag in 1..10_000u64 {
            // Every caller awaits its call at a pruning: all are kept.
            calls.add(call(tag, (tag % 100) as u32, 1), true, |_| prunings += 1);
        }
        assert_eq!(calls.len(), 100);
        // Beside the reviews (one every REVIEW_EVERY calls, for a table this short).
        let reviews = 10_000 / REVIEW_EVERY as usize;
        assert!(prunings <= 2 + reviews, "{prunings} prunings: only while the table grew to its 128 entries");
    }

    #[test]
    fn callers_far_apart_grow_the_table_only_in_proportion_to_their_number() {
        let mut calls = CallMonitors::default();
        // Slot indices that agree modulo every length up to 2^16.
        for (i, tag) in (1..=4u64).enumerate() {
            calls.add(call(tag, (i as u32) << 16, 1), true, |_| {});
        }
        assert_eq!(calls.len(), 4);
        assert!(calls.single.len() <= 16, "a table of {} entries for 4 callers", calls.single.len());
        // Their next calls are all kept (those in the list beside the
        // previous ones, until a pruning).
        for (i, tag) in (5..=8u64).enumerate() {
            calls.add(call(tag, (i as u32) << 16, 1), true, |_| {});
        }
        let kept = calls.to_vec();
        assert!((5..=8).all(|tag| kept.iter().any(|r| r.id() == tag)), "{kept:?}");
        assert!(calls.single.len() <= 16, "a table of {} entries for 4 callers", calls.single.len());
    }

    #[test]
    fn after_a_burst_of_callers_a_server_keeps_memory_only_for_the_calls_still_awaited() {
        let mut calls = CallMonitors::default();
        let burst_over = std::cell::Cell::new(false);
        // While the burst lasts, every caller awaits its call.
        let prune = |c: &mut CallMonitors| {
            if burst_over.get() {
                c.retain(|r| r.watcher() == Pid::from_parts(0, 3, 2));
            }
        };
        let mut tag = 0;
        for caller in 0..10_000u32 {
            tag += 1;
            calls.add(call(tag, caller, 1), true, prune);
            tag += 1;
            calls.add(call(tag, caller, 1), false, prune);
        }
        assert_eq!(calls.len(), 20_000);
        assert!(calls.single.len() >= 10_000, "a table of {} entries", calls.single.len());
        burst_over.set(true);
        // Only caller 3 goes on calling, one call at a time; the burst's
        // slots are reused by processes that do not call this server.
        for _ in 0..16 * calls.single.len() + REVIEW_EVERY as usize {
            tag += 1;
            calls.add(call(tag, 3, 2), true, prune);
        }
        assert_eq!(calls.to_vec(), vec![call(tag, 3, 2)]);
        assert!(calls.single.len() <= 16, "a table of {} entries for one caller", calls.single.len());
        assert!(calls.more.capacity() <= 2 * PRUNE_FIRST, "the list holds {}", calls.more.capacity());
    }

    #[test]
    fn a_review_keeps_every_awaited_call_whose_place_another_takes_in_the_shorter_table() {
        let mut calls = CallMonitors::default();
        let mut tag = 0;
        // Callers 0..64 fill a table of 64; then all of them stop awaiting,
        // and new processes in slots 1 and 33 call.
        for caller in 0..64u32 {
            tag += 1;
            calls.add(call(tag, caller, 1), true, |_| {});
        }
        let (a, b) = (call(1_000_000, 1, 2), call(1_000_001, 33, 2));
        calls.add(a, true, |_| {});
        calls.add(b, true, |_| {});
        let mut reviews = 0;
        // Caller 0 calls on; at the review only a and b and its own last
        // call are awaited: three entries, for which the table halves to 32,
        // where a and b share a place.
        while reviews == 0 {
            tag += 1;
            let mine = call(tag, 0, 1);
            calls.add(mine, true, |c| {
                reviews += 1;
                c.retain(|r| *r == a || *r == b || *r == mine);
            });
        }
        let kept = sorted(calls.to_vec());
        assert_eq!(kept, sorted(vec![a, b, call(tag, 0, 1)]));
        assert_eq!(calls.single.len(), 32);
        assert_eq!(calls.more, vec![b]);
    }

    #[test]
    fn the_monitors_are_pruned_when_they_have_doubled() {
        let mut calls = CallMonitors::default();
        let mut prunings = 0;
        // Calls made beside others, none of them awaited by the time of a pruning.
        for tag in 1..=1_000u64 {
            calls.add(call(tag, 1, 1), false, |c| {
                prunings += 1;
                c.retain(|r| r.id() == tag - 1);
            });
        }
        assert!(calls.len() <= 2 * PRUNE_FIRST, "{} monitors kept", calls.len());
        assert!(prunings <= 1_000 / (PRUNE_FIRST / 2), "{prunings} prunings for 1,000 calls");
        assert!(calls.to_vec().contains(&call(1_000, 1, 1)), "the newest is kept");
    }
}
