//! The single-threaded executor: a queue of woken tasks, polled in the order they woke.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Wake, Waker};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tasks woken and not polled yet, in the order they woke.
type ReadyQueue = Mutex<VecDeque<Arc<Task>>>;

/// A spawned future and whether it waits in the ready queue.
struct Task {
    future: Mutex<Option<BoxFuture>>,
    queued: AtomicBool,
    ready: Weak<ReadyQueue>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::SeqCst)
            && let Some(ready) = self.ready.upgrade()
        {
            lock(&ready).push_back(self.clone());
        }
    }
}

/// Spawned tasks, polled by [`run_ready`](Executor::run_ready) on the caller's thread.
pub(crate) struct Executor {
    ready: Arc<ReadyQueue>,
    /// Every task spawned and not finished, to drop at shutdown (a task's future and the
    /// wakers it left behind can keep each other alive).
    tasks: Mutex<Vec<Weak<Task>>>,
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            ready: Arc::new(Mutex::new(VecDeque::new())),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Queues `future` as a new task; it first runs on the next [`run_ready`](Self::run_ready).
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let task = Arc::new(Task {
            future: Mutex::new(Some(Box::pin(future))),
            queued: AtomicBool::new(true),
            ready: Arc::downgrade(&self.ready),
        });
        {
            let mut tasks = lock(&self.tasks);
            if tasks.len() >= 1024 && tasks.len().is_power_of_two() {
                tasks.retain(|task| task.strong_count() > 0);
            }
            tasks.push(Arc::downgrade(&task));
        }
        lock(&self.ready).push_back(task);
    }

    /// Polls the tasks that are ready now (not those they wake meanwhile); returns how many.
    pub(crate) fn run_ready(&self) -> usize {
        let batch = std::mem::take(&mut *lock(&self.ready));
        let polled = batch.len();
        for task in batch {
            task.queued.store(false, Ordering::SeqCst);
            let waker = Waker::from(task.clone());
            let mut future = lock(&task.future);
            let done = future
                .as_mut()
                .is_some_and(|f| f.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
            if done {
                // Dropped outside the lock: a drop may wake or spawn.
                let finished = future.take();
                drop(future);
                drop(finished);
            }
        }
        polled
    }

    /// Drops every task left, and those their drops spawn.
    pub(crate) fn shutdown(&self) {
        loop {
            let tasks = std::mem::take(&mut *lock(&self.tasks));
            lock(&self.ready).clear();
            if tasks.is_empty() {
                return;
            }
            for task in tasks.iter().filter_map(Weak::upgrade) {
                let future = lock(&task.future).take();
                drop(future);
            }
        }
    }
}
