//! The virtual clock: an instant that moves only when the executor says so, and the sleeps
//! that wait for it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Where a sleeping future leaves its waker; the clock holds it weakly, so a dropped sleep
/// is forgotten.
type Slot = Arc<Mutex<Option<Waker>>>;

/// A registered deadline, ordered by deadline, then by registration.
struct Timer {
    deadline: Instant,
    seq: u64,
    slot: Weak<Mutex<Option<Waker>>>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

struct State {
    now: Instant,
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
}

/// A clock that starts at the real instant it was made and then moves only by
/// [`advance`](Clock::advance).
pub(crate) struct Clock {
    start: Instant,
    state: Mutex<State>,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let start = Instant::now();
        Clock {
            start,
            state: Mutex::new(State {
                now: start,
                timers: BinaryHeap::new(),
                next_seq: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> Instant {
        self.lock().now
    }

    /// Simulated time since the clock was made.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now() - self.start
    }

    /// A future that completes once the clock reaches `deadline`.
    pub(crate) fn sleep_until(self: &Arc<Self>, deadline: Instant) -> Sleep {
        Sleep {
            clock: self.clone(),
            deadline,
            slot: None,
        }
    }

    /// Moves the clock to the earliest deadline a sleep still waits for and wakes every sleep
    /// due by then. Returns `false` when no sleep waits (the clock stays).
    pub(crate) fn advance(&self) -> bool {
        let mut wakers = Vec::new();
        {
            let mut state = self.lock();
            let next = loop {
                match state.timers.peek() {
                    None => return false,
                    Some(Reverse(timer)) if timer.slot.strong_count() == 0 => {
                        state.timers.pop();
                    }
                    Some(Reverse(timer)) => break timer.deadline,
                }
            };
            state.now = state.now.max(next);
            while let Some(Reverse(timer)) = state.timers.peek() {
                if timer.deadline > state.now {
                    break;
                }
                if let Some(Reverse(timer)) = state.timers.pop()
                    && let Some(slot) = timer.slot.upgrade()
                    && let Some(waker) = lock_slot(&slot).take()
                {
                    wakers.push(waker);
                }
            }
        }
        wakers.into_iter().for_each(Waker::wake);
        true
    }

    fn register(&self, deadline: Instant, slot: &Slot) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.timers.push(Reverse(Timer {
            deadline,
            seq,
            slot: Arc::downgrade(slot),
        }));
    }
}

fn lock_slot(slot: &Slot) -> MutexGuard<'_, Option<Waker>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Completes when the virtual clock reaches its deadline.
pub struct Sleep {
    clock: Arc<Clock>,
    deadline: Instant,
    slot: Option<Slot>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.deadline {
            return Poll::Ready(());
        }
        let slot = match &self.slot {
            Some(slot) => slot.clone(),
            None => {
                let slot: Slot = Arc::new(Mutex::new(None));
                self.clock.register(self.deadline, &slot);
                self.slot = Some(slot.clone());
                slot
            }
        };
        *lock_slot(&slot) = Some(cx.waker().clone());
        Poll::Pending
    }
}
