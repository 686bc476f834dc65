//! Stopping a run early: the first Ctrl-C (or a failed writer) asks the run to stop reading
//! devices and finish what is in flight; a second Ctrl-C exits at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_channel::{Receiver, Sender};

/// The exit status of an interrupted run (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Ctrl-C (SIGINT).
    Interrupted,
    /// Writing the feedback, the journal or the store failed.
    Failed(String),
}

/// A stop signal shared by the parts of a run; the first reason given wins.
#[derive(Debug, Clone)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    closer: Sender<()>,
    closed: Receiver<()>,
    reason: Mutex<Option<Reason>>,
}

impl Default for Stop {
    fn default() -> Self {
        let (closer, closed) = async_channel::bounded(1);
        Stop {
            inner: Arc::new(Inner {
                closer,
                closed,
                reason: Mutex::new(None),
            }),
        }
    }
}

impl Stop {
    /// Asks the run to stop for `reason` (ignored when it already stopped).
    pub fn stop(&self, reason: Reason) {
        let mut current = self
            .inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.is_none() {
            *current = Some(reason);
            self.inner.closer.close();
        }
    }

    /// Why the run stopped, if it did.
    pub fn reason(&self) -> Option<Reason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True once the run is asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.inner.closer.is_closed()
    }

    /// Waits until the run is asked to stop.
    pub async fn wait(&self) {
        // Nothing is ever sent: `recv` returns when the channel is closed.
        let _ = self.inner.closed.recv().await;
    }
}

/// Handles Ctrl-C for the rest of the process: the first asks `stop` to stop the run, the
/// second exits at once with status 130.
pub fn on_ctrl_c(stop: Stop) -> Result<(), String> {
    let presses = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!(
                "push: stopping: no more devices are read, the ones in flight are finished (Ctrl-C again to exit at once)"
            );
            stop.stop(Reason::Interrupted);
        } else {
            eprintln!("push: exiting at once");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins_and_wakes_every_waiter() {
        let stop = Stop::default();
        assert_eq!(stop.reason(), None);
        assert!(!stop.is_stopped());
        let waiter = stop.clone();
        let woken = std::thread::spawn(move || smol::block_on(waiter.wait()));
        stop.stop(Reason::Failed("disk full".into()));
        stop.stop(Reason::Interrupted);
        woken.join().unwrap();
        assert!(stop.is_stopped());
        assert_eq!(stop.reason(), Some(Reason::Failed("disk full".into())));
        smol::block_on(stop.wait());
    }
}
