//! The bookkeeping of the engine's sender (APNs HTTP/2, FCM v1, GCM): the
//! queue of notifications ready to send with the retries waiting for their time, and the
//! outbox of final results and client-wide events with its count of unreported
//! notifications.

use std::collections::VecDeque;
use std::time::Instant;

/// Entries ready to send, in order, and entries waiting for a retry time.
#[derive(Debug)]
pub(crate) struct RetryQueue<E> {
    ready: VecDeque<E>,
    waiting: Vec<(Instant, E)>,
}

impl<E> RetryQueue<E> {
    /// Empty.
    pub(crate) fn new() -> Self {
        RetryQueue {
            ready: VecDeque::new(),
            waiting: Vec::new(),
        }
    }

    /// Queues a new entry behind the others.
    pub(crate) fn push_back(&mut self, entry: E) {
        self.ready.push_back(entry);
    }

    /// Puts an entry that must go out next (it was not processed, or is sent again at once).
    pub(crate) fn push_front(&mut self, entry: E) {
        self.ready.push_front(entry);
    }

    /// The next entry to send.
    pub(crate) fn pop_front(&mut self) -> Option<E> {
        self.ready.pop_front()
    }

    /// The entries ready to send, in order.
    pub(crate) fn ready(&self) -> impl Iterator<Item = &E> {
        self.ready.iter()
    }

    /// The entries ready to send, in order, to change them in place.
    pub(crate) fn ready_mut(&mut self) -> impl Iterator<Item = &mut E> {
        self.ready.iter_mut()
    }

    /// True when an entry is ready to send.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Entries ready to send.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Entries waiting for their retry time.
    pub(crate) fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Takes every ready entry (to fail them).
    pub(crate) fn take_ready(&mut self) -> VecDeque<E> {
        std::mem::take(&mut self.ready)
    }

    /// Takes every entry, ready or waiting, that `matches` (ready ones first, in order).
    pub(crate) fn take_where(&mut self, matches: impl Fn(&E) -> bool) -> Vec<E> {
        let (taken, kept): (VecDeque<E>, VecDeque<E>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(&matches);
        self.ready = kept;
        let (waiting, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, entry)| matches(entry));
        self.waiting = kept;
        taken
            .into_iter()
            .chain(waiting.into_iter().map(|(_, entry)| entry))
            .collect()
    }

    /// Keeps `entry` until `due`.
    pub(crate) fn schedule(&mut self, due: Instant, entry: E) {
        self.waiting.push((due, entry));
    }

    /// Moves the retries due at `now` behind the ready entries, earliest first.
    pub(crate) fn promote(&mut self, now: Instant) {
        if self.waiting.iter().any(|(due, _)| *due <= now) {
            self.waiting.sort_by_key(|(due, _)| *due);
            let split = self.waiting.partition_point(|(due, _)| *due <= now);
            let due: Vec<_> = self.waiting.drain(..split).collect();
            self.ready.extend(due.into_iter().map(|(_, entry)| entry));
        }
    }

    /// The earliest retry time.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.waiting.iter().map(|(due, _)| *due).min()
    }
}

/// Final results and client-wide events waiting to be polled; counts the notifications
/// queued and not yet reported; reports a client-wide error once per distinct kind in a row.
#[derive(Debug)]
pub(crate) struct Outbox<O, V, K> {
    outcomes: VecDeque<O>,
    events: VecDeque<V>,
    pending: usize,
    last_client_error: Option<K>,
}

impl<O, V, K: PartialEq> Outbox<O, V, K> {
    /// Empty.
    pub(crate) fn new() -> Self {
        Outbox {
            outcomes: VecDeque::new(),
            events: VecDeque::new(),
            pending: 0,
            last_client_error: None,
        }
    }

    /// Counts one more queued notification, unless `max_pending` are already unreported.
    pub(crate) fn admit(&mut self, max_pending: usize) -> bool {
        let room = self.pending < max_pending;
        self.pending += usize::from(room);
        room
    }

    /// Records a final result.
    pub(crate) fn report(&mut self, outcome: O) {
        self.outcomes.push_back(outcome);
    }

    /// Records an event.
    pub(crate) fn event(&mut self, event: V) {
        self.events.push_back(event);
    }

    /// Records the event `make(&kind)` unless the last client-wide error was of the same
    /// kind (and nothing was delivered since).
    pub(crate) fn client_error(&mut self, kind: K, make: impl FnOnce(&K) -> V) {
        if self.last_client_error.as_ref() != Some(&kind) {
            self.events.push_back(make(&kind));
            self.last_client_error = Some(kind);
        }
    }

    /// Something was delivered: the next client-wide error is reported again.
    pub(crate) fn clear_client_error(&mut self) {
        self.last_client_error = None;
    }

    /// The next final result; the notification no longer counts as pending.
    pub(crate) fn poll_outcome(&mut self) -> Option<O> {
        let outcome = self.outcomes.pop_front()?;
        self.pending = self.pending.saturating_sub(1);
        Some(outcome)
    }

    /// The next event.
    pub(crate) fn poll_event(&mut self) -> Option<V> {
        self.events.pop_front()
    }

    /// True when every queued notification's result was polled and no event waits.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending == 0 && self.events.is_empty()
    }

    /// Notifications queued and not yet polled as results.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_come_back_earliest_first_behind_the_ready_ones() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut queue = RetryQueue::new();
        queue.push_back("ready");
        queue.schedule(at(30), "third");
        queue.schedule(at(10), "second");
        queue.schedule(at(50), "later");
        queue.push_front("first");
        assert_eq!(queue.next_due(), Some(at(10)));
        queue.promote(at(30));
        assert_eq!((queue.ready_len(), queue.waiting_len()), (4, 1));
        let order: Vec<_> = std::iter::from_fn(|| queue.pop_front()).collect();
        assert_eq!(order, ["first", "ready", "second", "third"]);
        assert_eq!(queue.next_due(), Some(at(50)));
        assert!(!queue.has_ready());
    }

    #[test]
    fn outbox_counts_pending_until_polled_and_repeats_no_client_error() {
        let mut outbox: Outbox<u32, &str, u16> = Outbox::new();
        assert!(outbox.admit(2) && outbox.admit(2));
        assert!(!outbox.admit(2), "full");
        outbox.report(7);
        assert_eq!(outbox.pending(), 2, "reported but not polled");
        assert_eq!(outbox.poll_outcome(), Some(7));
        assert!(outbox.admit(2));
        outbox.client_error(403, |_| "refused");
        outbox.client_error(403, |_| "refused again");
        outbox.clear_client_error();
        outbox.client_error(403, |_| "refused after a delivery");
        let events: Vec<_> = std::iter::from_fn(|| outbox.poll_event()).collect();
        assert_eq!(events, ["refused", "refused after a delivery"]);
        assert!(!outbox.is_idle());
    }
}
