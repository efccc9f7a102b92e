//! The timer heap: O(log n) scheduling, O(1) cancellation by lazy deletion, FIFO among equal
//! deadlines.
//!
//! Callbacks live in a slab (a vector of slots reused through a free list); the heap holds small
//! copyable entries — deadline in nanoseconds, sequence number, slot and the slot's generation —
//! so sifting moves 24 bytes and finding a callback is an index, not a hash lookup. A slot's
//! generation changes whenever its timer fires or is cancelled, which turns any heap entry still
//! naming it into a stale one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Names a scheduled timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// Compaction happens only past this many heap entries (asyncio uses 100 for the same purpose).
const COMPACT_ABOVE: usize = 64;

/// A heap entry: (deadline in nanoseconds since `base`, sequence number, slot, generation).
/// The sequence number breaks ties in scheduling order and is unique, so the rest never decides.
type Entry = Reverse<(u64, u64, u32, u32)>;

struct Slot<C> {
    generation: u32,
    callback: Option<C>,
}

pub(crate) struct Timers<C> {
    /// Earliest deadline first; entries of fired or cancelled timers stay until popped or compacted.
    heap: BinaryHeap<Entry>,
    /// The callbacks of live timers.
    slots: Vec<Slot<C>>,
    /// Slots free for reuse.
    free: Vec<u32>,
    /// Live timers.
    live: usize,
    /// The next sequence number.
    next: u64,
    /// The instant deadlines are counted from.
    base: Instant,
}

impl<C> Default for Timers<C> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), slots: Vec::new(), free: Vec::new(), live: 0, next: 0, base: Instant::now() }
    }
}

impl<C> Timers<C> {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn insert(&mut self, deadline: Instant, callback: C) -> TimerId {
        let seq = self.next;
        self.next += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot { generation: 0, callback: None });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 timers at once")
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.callback = Some(callback);
        let generation = entry.generation;
        self.heap.push(Reverse((self.nanos(deadline), seq, slot, generation)));
        self.live += 1;
        TimerId { slot, generation }
    }

    /// Takes the callback out of a slot if `generation` is still its timer's, freeing the slot.
    fn take(&mut self, slot: u32, generation: u32) -> Option<C> {
        let entry = self.slots.get_mut(slot as usize).filter(|e| e.generation == generation)?;
        let callback = entry.callback.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        Some(callback)
    }

    fn is_live(&self, slot: u32, generation: u32) -> bool {
        self.slots[slot as usize].generation == generation
    }

    /// Drops the callback now; its heap entry goes stale. When stale entries outnumber live
    /// ones, the heap is rebuilt without them, so cancelled timers cannot pile up.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<C> {
        let callback = self.take(id.slot, id.generation)?;
        if self.heap.len() > COMPACT_ABOVE && self.heap.len() > 2 * self.live {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, _, slot, generation))| slots[*slot as usize].generation == *generation);
        }
        Some(callback)
    }

    /// Every live timer's callback, the heap emptied.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = C> + '_ {
        self.heap.clear();
        self.free.clear();
        self.live = 0;
        std::mem::take(&mut self.slots).into_iter().filter_map(|slot| slot.callback)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Heap entries, stale ones included (for tests of compaction).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.heap.len()
    }

    /// How long until the earliest live deadline (zero if it has passed), or `None` without timers.
    pub(crate) fn until_next(&mut self, now: Instant) -> Option<Duration> {
        while let Some(&Reverse((deadline, _, slot, generation))) = self.heap.peek() {
            if self.is_live(slot, generation) {
                return Some(Duration::from_nanos(deadline.saturating_sub(self.nanos(now))));
            }
            self.heap.pop();
        }
        None
    }

    /// Hands every timer whose deadline is not after `now` to `due`, in deadline order, ties in
    /// scheduling order.
    pub(crate) fn take_due(&mut self, now: Instant, mut due: impl FnMut(C)) {
        let now = self.nanos(now);
        while let Some(&Reverse((deadline, _, slot, generation))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(callback) = self.take(slot, generation) {
                due(callback);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(timers: &mut Timers<&'static str>, now: Instant) -> Vec<&'static str> {
        let mut fired = Vec::new();
        timers.take_due(now, |c| fired.push(c));
        fired
    }

    #[test]
    fn deadline_order_then_scheduling_order() {
        let mut timers = Timers::default(); // deadlines count from its creation: start after it
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        timers.insert(at(20), "late");
        timers.insert(at(10), "first of two");
        timers.insert(at(10), "second of two");
        timers.insert(at(5), "early");
        assert_eq!(due(&mut timers, at(9)), ["early"]);
        assert_eq!(due(&mut timers, at(10)), ["first of two", "second of two"]);
        assert_eq!(due(&mut timers, at(19)), Vec::<&str>::new());
        assert_eq!(due(&mut timers, at(20)), ["late"]);
    }

    #[test]
    fn nothing_fires_before_its_deadline() {
        let mut timers = Timers::default(); // deadlines count from its creation: start after it
        let start = Instant::now();
        timers.insert(start + Duration::from_millis(10), "x");
        assert!(due(&mut timers, start + Duration::from_micros(9_999)).is_empty());
        assert_eq!(timers.until_next(start), Some(Duration::from_millis(10)));
        assert_eq!(timers.until_next(start + Duration::from_millis(11)), Some(Duration::ZERO));
    }

    #[test]
    fn cancelled_timers_never_fire_and_do_not_pile_up() {
        let mut timers = Timers::default(); // deadlines count from its creation: start after it
        let start = Instant::now();
        let ids: Vec<TimerId> = (0..1000).map(|i| timers.insert(start + Duration::from_millis(i), "cancelled")).collect();
        timers.insert(start + Duration::from_secs(5), "kept");
        for id in ids {
            assert_eq!(timers.cancel(id), Some("cancelled"));
        }
        assert_eq!(timers.len(), 1);
        assert!(timers.entries() <= 2 * COMPACT_ABOVE, "compacted to {} entries", timers.entries());
        assert_eq!(timers.until_next(start), Some(Duration::from_secs(5)), "stale entries are skipped");
        assert_eq!(due(&mut timers, start + Duration::from_secs(5)), ["kept"]);
    }

    #[test]
    fn cancelling_twice_or_after_firing_gives_nothing() {
        let mut timers = Timers::default(); // deadlines count from its creation: start after it
        let start = Instant::now();
        let id = timers.insert(start, "x");
        assert_eq!(due(&mut timers, start), ["x"]);
        assert_eq!(timers.cancel(id), None);
    }
}
