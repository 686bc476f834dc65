//! The driver's sessions: who they are in the core, their reports, and the hand-over of
//! feedback to their streams within the client's feedback capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use async_channel::{Sender, TrySendError};
use push_proto::{Feedback, SessionId};

use crate::error::Error;
use crate::feedbacks::FEEDBACK_BATCHES;
use crate::report::Report;

/// One open session.
struct SessionState {
    id: SessionId,
    feedback: Sender<Vec<Feedback>>,
    listening: Arc<AtomicBool>,
    /// Feedbacks the reader has not made room for yet.
    waiting: VecDeque<Feedback>,
    report: Report,
    /// When the first device was pushed.
    started: Option<Instant>,
    reply: Option<Sender<Report>>,
    /// Closed, and the core has produced every device's feedback.
    core_finished: bool,
}

/// Every session the driver knows, by the client's key and by the core's id.
pub(crate) struct SessionTable {
    sessions: HashMap<u64, SessionState>,
    by_id: HashMap<SessionId, u64>,
    feedback_capacity: usize,
    /// Feedbacks waiting for slow readers, over all sessions.
    waiting: usize,
}

impl SessionTable {
    /// No sessions; at most `feedback_capacity` feedbacks may wait for readers.
    pub(crate) fn new(feedback_capacity: usize) -> Self {
        SessionTable {
            sessions: HashMap::new(),
            by_id: HashMap::new(),
            feedback_capacity,
            waiting: 0,
        }
    }

    /// Sessions open now.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Feedbacks waiting for slow readers now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// True while fewer feedbacks wait than the capacity allows: more devices may come in.
    pub(crate) fn has_room(&self) -> bool {
        self.waiting < self.feedback_capacity
    }

    /// Session `key` is the core's session `id`.
    pub(crate) fn open(
        &mut self,
        key: u64,
        id: SessionId,
        feedback: Sender<Vec<Feedback>>,
        listening: Arc<AtomicBool>,
    ) {
        self.by_id.insert(id, key);
        self.sessions.insert(
            key,
            SessionState {
                id,
                feedback,
                listening,
                waiting: VecDeque::new(),
                report: Report::default(),
                started: None,
                reply: None,
                core_finished: false,
            },
        );
    }

    /// A device was pushed into session `key`: counts it, and returns the core's id.
    pub(crate) fn pushed(&mut self, key: u64, now: Instant) -> Option<SessionId> {
        let session = self.sessions.get_mut(&key)?;
        session.report.pushed += 1;
        session.started.get_or_insert(now);
        Some(session.id)
    }

    /// The core's id of session `key`.
    pub(crate) fn id(&self, key: u64) -> Option<SessionId> {
        self.sessions.get(&key).map(|session| session.id)
    }

    /// Session `key` takes no more devices; its report goes to `reply` when it is done.
    /// Returns the core's id, to close the session there.
    pub(crate) fn close(&mut self, key: u64, reply: Option<Sender<Report>>) -> Option<SessionId> {
        let session = self.sessions.get_mut(&key)?;
        session.reply = reply;
        Some(session.id)
    }

    /// A device's feedback from the core: counted, and queued for the stream if one is read.
    pub(crate) fn feedback(&mut self, id: SessionId, feedback: Feedback) {
        let Some(session) = self
            .by_id
            .get(&id)
            .and_then(|key| self.sessions.get_mut(key))
        else {
            return;
        };
        session.report.count(&feedback);
        if session.listening.load(Ordering::Relaxed) {
            session.waiting.push_back(feedback);
            self.waiting += 1;
        } else {
            session.report.feedback_not_read += 1;
        }
    }

    /// The core has every device's feedback of session `id`.
    pub(crate) fn core_finished(&mut self, id: SessionId) {
        if let Some(session) = self
            .by_id
            .get(&id)
            .and_then(|key| self.sessions.get_mut(key))
        {
            session.core_finished = true;
        }
    }

    /// Records a client-wide error in every open session's report (once per session).
    pub(crate) fn client_error(&mut self, error: &Error) {
        for session in self.sessions.values_mut() {
            if !session.report.errors.contains(error) {
                session.report.errors.push(error.clone());
            }
        }
    }

    /// Hands waiting feedback to the streams while they have room, then reports and forgets
    /// every session that is done (dropping its feedback sender ends its stream).
    pub(crate) fn hand_over(&mut self, now: Instant) {
        let batch = (self.feedback_capacity / FEEDBACK_BATCHES).max(1);
        let mut done = Vec::new();
        for (key, session) in &mut self.sessions {
            self.waiting -= hand_over(session, batch);
            if session.core_finished && session.waiting.is_empty() {
                done.push(*key);
            }
        }
        for key in done {
            if let Some(mut session) = self.sessions.remove(&key) {
                self.by_id.remove(&session.id);
                session.report.elapsed = session.started.map_or_else(Default::default, |started| {
                    now.saturating_duration_since(started)
                });
                if let Some(reply) = session.reply.take() {
                    let _ = reply.try_send(session.report);
                }
            }
        }
    }
}

/// Moves a session's waiting feedback into its stream, in batches of at most `batch`, while
/// there is room; drops it when the stream is gone (even when it was dropped full). Returns
/// how many left the waiting queue.
fn hand_over(session: &mut SessionState, batch: usize) -> usize {
    let mut moved = 0;
    while !session.waiting.is_empty()
        && (!session.feedback.is_full() || session.feedback.is_closed())
    {
        let take = session.waiting.len().min(batch);
        let feedbacks: Vec<Feedback> = session.waiting.drain(..take).collect();
        match session.feedback.try_send(feedbacks) {
            Ok(()) => moved += take,
            Err(TrySendError::Full(feedbacks)) => {
                for feedback in feedbacks.into_iter().rev() {
                    session.waiting.push_front(feedback);
                }
                break;
            }
            Err(TrySendError::Closed(_)) => {
                moved += take;
                session.report.feedback_not_read += take as u64;
                session.listening.store(false, Ordering::Relaxed);
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use push_proto::{Device, Payload, Push};

    use super::*;

    /// A table holding one session (key 7) whose stream is `listening`; returns the stream.
    fn one_session(
        capacity: usize,
        listening: bool,
    ) -> (
        SessionTable,
        SessionId,
        async_channel::Receiver<Vec<Feedback>>,
    ) {
        let id = Push::new().open_session(&Payload::new().title("t"));
        let (feedback, stream) = async_channel::bounded(FEEDBACK_BATCHES);
        let mut table = SessionTable::new(capacity);
        table.open(7, id, feedback, Arc::new(AtomicBool::new(listening)));
        (table, id, stream)
    }

    fn delivered(n: usize) -> Feedback {
        Feedback::delivered(Device::android(format!("token-{n}")))
    }

    #[test]
    fn feedback_goes_out_in_batches_and_a_finished_session_reports_once() {
        let (mut table, id, stream) = one_session(8, true);
        let t0 = Instant::now();
        for n in 0..5 {
            assert_eq!(table.pushed(7, t0 + Duration::from_secs(n)), Some(id));
            table.feedback(id, delivered(n as usize));
        }
        assert_eq!(table.waiting(), 5);
        let (reply, report) = async_channel::bounded(1);
        assert_eq!(table.close(7, Some(reply)), Some(id));
        table.core_finished(id);
        table.hand_over(t0 + Duration::from_secs(9));
        assert_eq!(table.waiting(), 0);
        let batches: Vec<usize> = std::iter::from_fn(|| stream.try_recv().ok())
            .map(|batch| batch.len())
            .collect();
        assert_eq!(batches, [2, 2, 1], "batches of a quarter of the capacity");
        let report = report.try_recv().expect("the report");
        assert_eq!((report.pushed, report.delivered), (5, 5));
        assert_eq!(
            report.elapsed,
            Duration::from_secs(9),
            "from the first push"
        );
        assert!(table.is_empty());
        assert!(stream.is_closed(), "the stream ends with the session");
    }

    #[test]
    fn a_reader_that_falls_behind_stops_intake_and_a_dropped_one_only_counts() {
        let (mut table, id, stream) = one_session(4, true);
        let now = Instant::now();
        for n in 0..12 {
            table.feedback(id, delivered(n));
            table.hand_over(now);
        }
        // Four batches of one fill the stream; the rest waits and uses up the capacity.
        assert_eq!(table.waiting(), 8);
        assert!(!table.has_room());
        drop(stream);
        table.hand_over(now);
        assert_eq!(table.waiting(), 0);
        assert!(table.has_room());
        let (reply, report) = async_channel::bounded(1);
        table.close(7, Some(reply));
        table.core_finished(id);
        table.hand_over(now);
        assert_eq!(report.try_recv().expect("report").feedback_not_read, 8);
    }

    #[test]
    fn without_a_stream_feedback_is_only_counted_and_errors_are_named_once() {
        let (mut table, id, _stream) = one_session(4, false);
        table.feedback(id, delivered(1));
        assert_eq!(table.waiting(), 0);
        table.client_error(&Error::Closed);
        table.client_error(&Error::Closed);
        let (reply, report) = async_channel::bounded(1);
        table.close(7, Some(reply));
        table.core_finished(id);
        table.hand_over(Instant::now());
        let report = report.try_recv().expect("report");
        assert_eq!(report.feedback_not_read, 1);
        assert_eq!(report.errors, [Error::Closed]);
        assert_eq!(report.elapsed, Duration::ZERO, "nothing was pushed");
    }
}
