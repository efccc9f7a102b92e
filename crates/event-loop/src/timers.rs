//! The timer heap: O(log n) scheduling, O(1) cancellation by lazy deletion, FIFO among equal
//! deadlines.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// Names a scheduled timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// Compaction happens only past this many heap entries (asyncio uses 100 for the same purpose).
const COMPACT_ABOVE: usize = 64;

pub(crate) struct Timers<C> {
    /// Deadlines with their sequence numbers, earliest first; the sequence breaks ties in
    /// scheduling order. Entries whose timer was cancelled stay until popped or compacted.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The callbacks of live timers, by sequence number.
    live: HashMap<u64, C, BuildHasherDefault<SequenceHasher>>,
    /// The next sequence number.
    next: u64,
}

/// Sequence numbers are distinct small integers chosen by us, not by an attacker: one multiplication
/// spreads them over the table (SipHash, the default, costs more than the rest of scheduling).
#[derive(Default)]
pub(crate) struct SequenceHasher(u64);

impl Hasher for SequenceHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl<C> Default for Timers<C> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), live: HashMap::default(), next: 0 }
    }
}

impl<C> Timers<C> {
    pub(crate) fn insert(&mut self, deadline: Instant, callback: C) -> TimerId {
        let seq = self.next;
        self.next += 1;
        self.heap.push(Reverse((deadline, seq)));
        self.live.insert(seq, callback);
        TimerId(seq)
    }

    /// Drops the callback now; its heap entry goes stale. When stale entries outnumber live
    /// ones, the heap is rebuilt without them, so cancelled timers cannot pile up.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<C> {
        let callback = self.live.remove(&id.0)?;
        if self.heap.len() > COMPACT_ABOVE && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, seq))| live.contains_key(seq));
        }
        Some(callback)
    }

    /// Every live timer's callback, the heap emptied.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = C> + '_ {
        self.heap.clear();
        self.live.drain().map(|(_, callback)| callback)
    }

    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Heap entries, stale ones included (for tests of compaction).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.heap.len()
    }

    /// How long until the earliest live deadline (zero if it has passed), or `None` without timers.
    pub(crate) fn until_next(&mut self, now: Instant) -> Option<Duration> {
        while let Some(Reverse((deadline, seq))) = self.heap.peek() {
            if self.live.contains_key(seq) {
                return Some(deadline.saturating_duration_since(now));
            }
            self.heap.pop();
        }
        None
    }

    /// Hands every timer whose deadline is not after `now` to `due`, in deadline order, ties in
    /// scheduling order.
    pub(crate) fn take_due(&mut self, now: Instant, mut due: impl FnMut(C)) {
        while let Some(&Reverse((deadline, seq))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(callback) = self.live.remove(&seq) {
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
        let start = Instant::now();
        let mut timers = Timers::default();
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
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.insert(start + Duration::from_millis(10), "x");
        assert!(due(&mut timers, start + Duration::from_micros(9_999)).is_empty());
        assert_eq!(timers.until_next(start), Some(Duration::from_millis(10)));
        assert_eq!(timers.until_next(start + Duration::from_millis(11)), Some(Duration::ZERO));
    }

    #[test]
    fn cancelled_timers_never_fire_and_do_not_pile_up() {
        let start = Instant::now();
        let mut timers = Timers::default();
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
        let start = Instant::now();
        let mut timers = Timers::default();
        let id = timers.insert(start, "x");
        assert_eq!(due(&mut timers, start), ["x"]);
        assert_eq!(timers.cancel(id), None);
    }
}
