//! The feedback stream of a session.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use async_channel::Receiver;
use futures_lite::Stream;
use push_proto::Feedback;

/// Feedback travels to a session's stream in batches; this many batches may wait in the
/// channel, each at most a quarter of the client's feedback capacity.
pub(crate) const FEEDBACK_BATCHES: usize = 4;

/// The feedback stream of a session; see [`Session::feedbacks`](crate::Session::feedbacks).
/// Ends when every device of the finished (or dropped) session has its feedback.
#[derive(Debug)]
pub struct Feedbacks {
    receiver: Option<Pin<Box<Receiver<Vec<Feedback>>>>>,
    /// The rest of the batch being read.
    batch: std::vec::IntoIter<Feedback>,
    listening: Arc<AtomicBool>,
}

impl Feedbacks {
    /// The stream of `receiver`; `listening` tells the driver someone reads it.
    pub(crate) fn new(receiver: Receiver<Vec<Feedback>>, listening: Arc<AtomicBool>) -> Self {
        listening.store(true, Ordering::Relaxed);
        Feedbacks {
            receiver: Some(Box::pin(receiver)),
            batch: Vec::new().into_iter(),
            listening,
        }
    }

    /// A stream that has ended.
    pub(crate) fn empty() -> Self {
        Feedbacks {
            receiver: None,
            batch: Vec::new().into_iter(),
            listening: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Stream for Feedbacks {
    type Item = Feedback;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Feedback>> {
        loop {
            if let Some(feedback) = self.batch.next() {
                return Poll::Ready(Some(feedback));
            }
            let Some(receiver) = &mut self.receiver else {
                return Poll::Ready(None);
            };
            match receiver.as_mut().poll_next(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Feedbacks {
    fn drop(&mut self) {
        self.listening.store(false, Ordering::Relaxed);
    }
}
