//! A bounded multi-producer queue drained in batches, with wake-up hysteresis.
//!
//! Handing millions of devices from sessions to the driver one message at a time through an
//! ordinary bounded channel makes the two threads wake each other for every item once the
//! channel is full (a send frees one slot, a receive wakes one sender). Here the consumer takes
//! everything waiting at once, producers blocked on a full queue are woken only when it has
//! drained below half, and the consumer only when the queue turns non-empty: wake-ups per
//! batch, not per item, with the same bound on memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use event_listener::{Event, listener};

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    not_empty: Event,
    drained: Event,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side; cloneable. The queue closes when every sender is dropped.
pub(crate) struct QueueSender<T> {
    shared: Arc<Shared<T>>,
}

/// The receiving side.
pub(crate) struct QueueReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// The receiver is gone: the item comes back.
#[derive(Debug)]
pub(crate) struct Closed<T>(pub(crate) T);

/// A queue holding at most `capacity` items.
pub(crate) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        capacity: capacity.max(1),
        not_empty: Event::new(),
        drained: Event::new(),
    });
    let receiver = QueueReceiver {
        shared: shared.clone(),
    };
    (QueueSender { shared }, receiver)
}

impl<T> QueueSender<T> {
    /// Adds `item`, waiting while the queue is full. Cancel-safe: when the future is dropped
    /// before it completes, the item was not added.
    pub(crate) async fn send(&self, item: T) -> Result<(), Closed<T>> {
        loop {
            {
                let state = self.shared.lock();
                if !state.receiver_alive {
                    return Err(Closed(item));
                }
                if state.items.len() < self.shared.capacity {
                    self.add(state, item);
                    return Ok(());
                }
            }
            listener!(self.shared.drained => drained);
            let full = {
                let state = self.shared.lock();
                state.receiver_alive && state.items.len() >= self.shared.capacity
            };
            if full {
                drained.await;
            }
        }
    }

    /// Adds `item` at once, beyond the capacity if need be. Only for the few messages that
    /// must not wait (a session's start and end), never for the bulk the bound is about.
    pub(crate) fn send_now(&self, item: T) -> Result<(), Closed<T>> {
        let state = self.shared.lock();
        if !state.receiver_alive {
            return Err(Closed(item));
        }
        self.add(state, item);
        Ok(())
    }

    fn add(&self, mut state: MutexGuard<'_, State<T>>, item: T) {
        let was_empty = state.items.is_empty();
        state.items.push_back(item);
        drop(state);
        if was_empty {
            self.shared.not_empty.notify(1);
        }
    }
}

impl<T> std::fmt::Debug for QueueSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSender")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        QueueSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.shared.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.shared.not_empty.notify(usize::MAX);
        }
    }
}

impl<T> QueueReceiver<T> {
    /// Moves up to `max` waiting items into `into`; returns how many.
    pub(crate) fn try_drain(&self, into: &mut VecDeque<T>, max: usize) -> usize {
        let mut state = self.shared.lock();
        let take = state.items.len().min(max);
        into.extend(state.items.drain(..take));
        let wake = take > 0 && state.items.len() <= self.shared.capacity / 2;
        drop(state);
        if wake {
            self.shared.drained.notify(usize::MAX);
        }
        take
    }

    /// Waits until an item is waiting or every sender is gone.
    pub(crate) async fn ready(&self) {
        loop {
            if self.has_items_or_closed() {
                return;
            }
            listener!(self.shared.not_empty => not_empty);
            if self.has_items_or_closed() {
                return;
            }
            not_empty.await;
        }
    }

    fn has_items_or_closed(&self) -> bool {
        let state = self.shared.lock();
        !state.items.is_empty() || state.senders == 0
    }

    /// True when every sender is gone and nothing is left.
    pub(crate) fn is_finished(&self) -> bool {
        let state = self.shared.lock();
        state.senders == 0 && state.items.is_empty()
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        self.shared.lock().receiver_alive = false;
        self.shared.drained.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_in_batches_and_the_queue_closes() {
        let (sender, receiver) = queue::<u32>(4);
        let producer = {
            let sender = sender.clone();
            std::thread::spawn(move || {
                futures_lite::future::block_on(async {
                    for n in 0..1000 {
                        sender.send(n).await.unwrap();
                    }
                })
            })
        };
        drop(sender);
        let mut got = VecDeque::new();
        futures_lite::future::block_on(async {
            while !receiver.is_finished() {
                receiver.ready().await;
                receiver.try_drain(&mut got, usize::MAX);
            }
        });
        producer.join().unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            (0..1000).collect::<Vec<_>>()
        );
    }

    #[test]
    fn send_now_passes_a_full_queue_in_order_and_a_waiting_send_stays_cancel_safe() {
        let (sender, receiver) = queue::<u32>(1);
        futures_lite::future::block_on(sender.send(1)).unwrap();
        let mut waiting = Box::pin(sender.send(2));
        let polled = futures_lite::future::block_on(futures_lite::future::poll_once(&mut waiting));
        assert!(polled.is_none(), "the queue is full");
        drop(waiting);
        sender.send_now(3).unwrap();
        let mut got = VecDeque::new();
        receiver.try_drain(&mut got, usize::MAX);
        assert_eq!(got, [1, 3], "the cancelled send added nothing");
        drop(receiver);
        assert!(matches!(sender.send_now(4), Err(Closed(4))));
    }

    #[test]
    fn a_dropped_receiver_hands_the_item_back() {
        let (sender, receiver) = queue::<u32>(1);
        drop(receiver);
        let result = futures_lite::future::block_on(sender.send(7));
        assert!(matches!(result, Err(Closed(7))));
    }
}
