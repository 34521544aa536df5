//! The discrete-event clock's agenda: events ordered by (time, sequence of scheduling), so
//! the order is total and two runs of one workload take the same steps.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

struct Entry<E> {
    at: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed: the heap's top is the earliest event, first scheduled first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events waiting for their time.
pub struct Agenda<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// Schedules `event` at `at`; events at one time come out in the order they were scheduled.
    pub fn push(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            event,
        });
    }

    /// When the earliest event is due.
    pub fn next_time(&self) -> Option<Duration> {
        self.heap.peek().map(|e| e.at)
    }

    /// The earliest event if it is due at or before `at`.
    pub fn pop_due(&mut self, at: Duration) -> Option<E> {
        if self.next_time()? > at {
            return None;
        }
        self.heap.pop().map(|e| e.event)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_the_order_they_were_scheduled() {
        let mut a = Agenda::default();
        let t = Duration::from_secs;
        a.push(t(2), "late");
        a.push(t(1), "first");
        a.push(t(1), "second");
        a.push(t(0), "now");
        assert_eq!(a.next_time(), Some(t(0)));
        assert_eq!(a.pop_due(t(1)), Some("now"));
        assert_eq!(a.pop_due(t(1)), Some("first"));
        assert_eq!(a.pop_due(t(1)), Some("second"));
        assert_eq!(a.pop_due(t(1)), None, "not due yet");
        assert_eq!(a.len(), 1);
        assert_eq!(a.pop_due(t(5)), Some("late"));
        assert!(a.is_empty());
    }
}
