//! [`Deadlines`]: the request timeout of every stream of a connection with one timer instead
//! of one per stream.
//!
//! Streams are numbered in the order they start, and they all have the same timeout, so
//! their deadlines grow with their numbers. Streams started within one `grain` share a
//! bucket whose deadline is the latest of theirs: a stream times out at most `grain` late,
//! never early. A bucket counts its open streams and is dropped as soon as they are all
//! done, so under load the connection holds a handful of buckets, and its timer fires only
//! when a bucket still holds an open stream at its deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many buckets a timeout is split into: the most a stream can time out late is the
/// timeout divided by this.
const BUCKETS_PER_TIMEOUT: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// When its streams time out.
    deadline: Instant,
    /// The number of its first stream.
    first: u64,
    /// Its streams are numbered below this.
    end: u64,
    /// Its streams still open.
    open: u32,
}

/// The deadlines of one connection's streams.
#[derive(Debug)]
pub(crate) struct Deadlines {
    timeout: Duration,
    grain: Duration,
    buckets: VecDeque<Bucket>,
    next: u64,
}

impl Deadlines {
    /// Streams time out `timeout` after they start (at most a sixteenth of it later).
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadlines {
            timeout,
            grain: timeout / BUCKETS_PER_TIMEOUT,
            buckets: VecDeque::new(),
            next: 0,
        }
    }

    /// A stream starts at `now`: its number.
    pub(crate) fn start(&mut self, now: Instant) -> u64 {
        let number = self.next;
        self.next += 1;
        let own = now.checked_add(self.timeout).unwrap_or(now);
        match self.buckets.back_mut() {
            Some(bucket) if bucket.deadline >= own => {
                bucket.end = self.next;
                bucket.open += 1;
            }
            _ => self.buckets.push_back(Bucket {
                deadline: own.checked_add(self.grain).unwrap_or(own),
                first: number,
                end: self.next,
                open: 1,
            }),
        }
        number
    }

    /// Stream `number` ended before its deadline (answered or reset). A stream that
    /// [`expire`](Self::expire) timed out is forgotten already.
    pub(crate) fn done(&mut self, number: u64) {
        let index = self.buckets.partition_point(|bucket| bucket.end <= number);
        if let Some(bucket) = self
            .buckets
            .get_mut(index)
            .filter(|bucket| bucket.first <= number)
        {
            bucket.open = bucket.open.saturating_sub(1);
        }
        while self.buckets.front().is_some_and(|bucket| bucket.open == 0) {
            self.buckets.pop_front();
        }
    }

    /// When the oldest stream still open times out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.buckets.front().map(|bucket| bucket.deadline)
    }

    /// The open streams numbered below the returned number time out at `now` (their
    /// buckets are forgotten); `None` when no open stream has timed out.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<u64> {
        let (mut end, mut open) = (0, false);
        while let Some(bucket) = self.buckets.front().filter(|b| b.deadline <= now) {
            end = bucket.end;
            open |= bucket.open > 0;
            self.buckets.pop_front();
        }
        open.then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_share_buckets_and_time_out_late_by_at_most_a_grain() {
        let start = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut deadlines = Deadlines::new(ms(1600));
        let a = deadlines.start(start);
        let b = deadlines.start(start + ms(50));
        let c = deadlines.start(start + ms(150));
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(deadlines.next_deadline(), Some(start + ms(1700)));
        assert_eq!(deadlines.expire(start + ms(1699)), None);
        assert_eq!(
            deadlines.expire(start + ms(1700)),
            Some(2),
            "a and b, not c"
        );
        assert_eq!(deadlines.next_deadline(), Some(start + ms(1850)));
    }

    #[test]
    fn buckets_whose_streams_are_done_are_forgotten() {
        let start = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut deadlines = Deadlines::new(ms(1600));
        let a = deadlines.start(start);
        let b = deadlines.start(start + ms(200));
        let c = deadlines.start(start + ms(250));
        deadlines.done(b);
        assert_eq!(deadlines.next_deadline(), Some(start + ms(1700)));
        deadlines.done(a);
        assert_eq!(
            deadlines.next_deadline(),
            Some(start + ms(1900)),
            "the first bucket is empty"
        );
        deadlines.done(c);
        deadlines.done(a);
        assert_eq!(
            deadlines.next_deadline(),
            None,
            "a stream done twice changes nothing"
        );
        assert_eq!(deadlines.expire(start + ms(10_000)), None);
    }
}
