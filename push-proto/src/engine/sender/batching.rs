//! How the engine's [`Sender`] forms requests from ready notifications: one per request, or
//! batches of consecutive notifications of one message that may wait a little to fill.

use std::time::Instant;

use super::{Entry, Sender};
use crate::engine::batch::Batch;
use crate::engine::credential::Credential;
use crate::engine::protocol::Protocol;

impl<P: Protocol, C: Credential, T> Sender<P, C, T> {
    /// How many ready notifications the next request carries, or `None` while they wait for
    /// more to share it.
    pub(super) fn next_batch(&self, now: Instant) -> Option<usize> {
        let (size, growing) = self.front_batch();
        let front = self.queue.ready().next()?;
        let lingering = growing && front.linger_until.is_some_and(|until| now < until);
        (!lingering).then_some(size)
    }

    /// The size of the batch at the front of the ready queue, and whether it could still grow
    /// (it is partial and takes every ready notification).
    pub(super) fn front_batch(&self) -> (usize, bool) {
        let max = self.protocol.max_batch().max(1);
        let mut ready = self.queue.ready();
        let Some(front) = ready.next() else {
            return (0, false);
        };
        if max == 1 {
            return (1, false);
        }
        let same = |entry: &&Entry<P, T>| self.protocol.batchable(&front.message, &entry.message);
        let size = 1 + ready.take(max - 1).take_while(same).count();
        (size, size < max && size == self.queue.ready_len())
    }

    /// When the batch at the front stops waiting for more notifications, while it waits.
    pub(super) fn lingering_until(&self) -> Option<Instant> {
        // With a full batch's worth ready, the front batch cannot grow: skip the scan.
        if self.queue.ready_len() >= self.protocol.max_batch() {
            return None;
        }
        let until = self.queue.ready().next()?.linger_until?;
        self.front_batch().1.then_some(until)
    }

    /// A linger that has passed ends (it must not stay a deadline in the past while no stream
    /// is free).
    pub(super) fn end_linger(&mut self, now: Instant) {
        if let Some(front) = self.queue.ready_mut().next()
            && front.linger_until.is_some_and(|until| until <= now)
        {
            front.linger_until = None;
        }
    }
}

/// Calls `f` with the batch of tokens of `entry` and `rest` (no allocation for a request
/// that carries one notification).
pub(super) fn with_batch<P: Protocol, T, R>(
    entry: &Entry<P, T>,
    rest: &[Entry<P, T>],
    f: impl FnOnce(Batch<'_, P::Token>) -> R,
) -> R {
    if rest.is_empty() {
        return f(Batch::new(&entry.token, &[]));
    }
    let tokens: Vec<&P::Token> = rest.iter().map(|other| &other.token).collect();
    f(Batch::new(&entry.token, &tokens))
}
