//! What an answer or a stream end means for each notification of a request: delivered,
//! failed, retried after a delay, or sent again at once; and the final report.

use std::time::{Duration, Instant};

use super::{Entry, Sender};
use crate::engine::action::StreamEnd;
use crate::engine::credential::Credential;
use crate::engine::protocol::Protocol;
use crate::engine::report::{Event, Report};
use crate::engine::verdict::{Answer, Answers, Verdict};
use crate::{DeviceError, Outcome, TokenError};

/// What the notifications of one request share while their fates are applied.
pub(super) struct Fate {
    /// The credential generation the request was sent with.
    generation: u64,
    /// When the request was sent.
    sent_at: Instant,
    now: Instant,
    /// The backoff drawn for the first of them retried without `Retry-After`: the others wait
    /// as long, so that a batch travels together again.
    backoff: Option<Duration>,
}

impl Fate {
    pub(super) fn new(generation: u64, sent_at: Instant, now: Instant) -> Self {
        Fate {
            generation,
            sent_at,
            now,
            backoff: None,
        }
    }
}

impl<P: Protocol, C: Credential, T> Sender<P, C, T> {
    /// Puts `entries` first in the queue, in their order.
    pub(super) fn send_next(&mut self, entries: Vec<Entry<P, T>>) {
        for entry in entries.into_iter().rev() {
            self.queue.push_front(entry);
        }
    }

    /// Feeds the route's pacer with what the response to one request says: a throttle (at
    /// most one per request, whatever its batch) or an answer, clean unless it asks for a
    /// retry.
    pub(super) fn pace(&mut self, answers: &Answers, fate: &Fate) {
        let list = match answers {
            Answers::All(answer) => std::slice::from_ref(answer),
            Answers::Each(answers) => answers.as_slice(),
        };
        let throttle = list.iter().find_map(|answer| match answer.verdict {
            Verdict::Throttled { retry_after } => Some(retry_after),
            _ => None,
        });
        match throttle {
            Some(retry_after) => {
                self.stats.throttled += 1;
                if self.pacer.throttled(fate.sent_at, retry_after, fate.now) {
                    self.stats.slowed += 1;
                }
            }
            None => {
                let clean = list
                    .iter()
                    .all(|answer| !matches!(answer.verdict, Verdict::Retry { .. }));
                self.pacer.answered(fate.sent_at, clean, fate.now);
            }
        }
    }

    /// Applies `answer` to `entry`; hands `entry` back when it must be sent again at once.
    pub(super) fn answer(
        &mut self,
        mut entry: Entry<P, T>,
        answer: Answer,
        fate: &mut Fate,
    ) -> Option<Entry<P, T>> {
        entry.last_status = Some(answer.status);
        entry.set_last_reason(answer.reason.clone());
        match answer.verdict {
            Verdict::Delivered => {
                self.outbox.clear_client_error();
                self.emit(entry, None, Some(answer));
            }
            Verdict::InvalidDevice { .. } => {
                self.emit(entry, Some(DeviceError::InvalidDevice), Some(answer));
            }
            Verdict::InvalidToken => {
                let error = TokenError::RejectedByService(answer.described.clone()).into();
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::PayloadTooLarge => {
                let error = self.protocol.too_large(&entry.message);
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::Retry {
                retry_after,
                client_wide,
            } => {
                if client_wide {
                    self.client_error(&answer);
                }
                self.retry(entry, answer.described, retry_after, fate);
            }
            Verdict::Throttled { retry_after } => {
                self.retry(entry, answer.described, retry_after, fate);
            }
            Verdict::Reauthenticate if !entry.reauthenticated => {
                self.credential.handle_rejected(fate.generation);
                entry.reauthenticated = true;
                entry.attempts = entry.attempts.saturating_sub(1);
                entry.set_last_error(answer.described);
                return Some(entry);
            }
            Verdict::Reauthenticate | Verdict::ClientError => {
                self.client_error(&answer);
                let error = self.rejected(answer.described.clone());
                self.emit(entry, Some(error), Some(answer));
            }
            Verdict::Rejected => {
                let error = self.rejected(answer.described.clone());
                self.emit(entry, Some(error), Some(answer));
            }
        }
        None
    }

    /// `entry`'s request ended without a response: handed back to be sent again for free when
    /// the server did not process it (within the bound), else retried as an attempt.
    pub(super) fn stream_ended(
        &mut self,
        mut entry: Entry<P, T>,
        end: &StreamEnd,
        fate: &mut Fate,
    ) -> Option<Entry<P, T>> {
        if end.unprocessed() && entry.free_resends < self.config.max_free_resends {
            self.stats.refused += 1;
            entry.free_resends += 1;
            entry.attempts = entry.attempts.saturating_sub(1);
            entry.set_last_error(end.to_string());
            return Some(entry);
        }
        self.stats.transport_failures += 1;
        entry.unanswered += 1;
        let error = if end.unprocessed() {
            format!("{end}, {} times", entry.free_resends + 1)
        } else {
            format!("transport failure: {end}")
        };
        self.retry(entry, error, None, fate);
        None
    }

    pub(super) fn rejected(&self, code: String) -> DeviceError {
        DeviceError::Rejected {
            provider: self.protocol.provider(),
            code,
        }
    }

    /// Reports a client-wide error, once per distinct status and reason in a row.
    pub(super) fn client_error(&mut self, answer: &Answer) {
        self.collect_credential_events();
        let reason = answer.reason.clone().unwrap_or_default();
        self.outbox
            .client_error((answer.status, reason), |(status, reason)| {
                Event::ClientError {
                    status: *status,
                    reason: reason.clone(),
                }
            });
    }

    /// Schedules `entry` again after `retry_after` or the backoff (drawn once per request),
    /// unless it is out of attempts (or of attempts without a response) or the retry would
    /// come after its time to live or its retry deadline.
    pub(super) fn retry(
        &mut self,
        mut entry: Entry<P, T>,
        error: String,
        retry_after: Option<Duration>,
        fate: &mut Fate,
    ) {
        entry.set_last_error(error);
        let give_up = |entry: &Entry<P, T>, why: &str| DeviceError::Unavailable {
            attempts: entry.attempts,
            last_error: format!("{}{why}", entry.last_error()),
        };
        if entry.attempts >= self.config.max_attempts
            || entry.unanswered >= self.config.max_unanswered_attempts
        {
            let error = give_up(&entry, "");
            return self.emit(entry, Some(error), None);
        }
        let attempt = entry.attempts.saturating_sub(1);
        let delay = retry_after.unwrap_or_else(|| {
            *fate
                .backoff
                .get_or_insert_with(|| self.backoff.delay(attempt))
        });
        let Some(due) = fate.now.checked_add(delay) else {
            let error = give_up(&entry, "; retry delay out of range");
            return self.emit(entry, Some(error), None);
        };
        let expires = self
            .protocol
            .time_to_live(&entry.message)
            .and_then(|ttl| entry.queued_at.checked_add(ttl));
        if expires.is_some_and(|expires| due > expires) {
            let error = give_up(&entry, "; its time to live ends before the next attempt");
            return self.emit(entry, Some(error), None);
        }
        let retry_until = entry.queued_at.checked_add(self.config.retry_deadline);
        if retry_until.is_some_and(|until| due > until) {
            let error = give_up(
                &entry,
                "; the retry deadline passes before the next attempt",
            );
            return self.emit(entry, Some(error), None);
        }
        self.stats.retries += 1;
        self.queue.schedule(due, entry);
    }

    /// Records the final report of `entry`.
    pub(super) fn emit(
        &mut self,
        entry: Entry<P, T>,
        error: Option<DeviceError>,
        answer: Option<Answer>,
    ) {
        let (answered_id, unregistered_at, new_token) = match answer {
            Some(answer) => (
                answer.id,
                match answer.verdict {
                    Verdict::InvalidDevice { since } => since,
                    _ => None,
                },
                answer.new_token,
            ),
            None => (None, None, None),
        };
        let id = answered_id.or_else(|| self.protocol.sent_id(&entry.meta));
        let outcome = match error {
            Some(error) => {
                self.stats.failed += 1;
                Outcome::failed(entry.tag, error)
            }
            None => {
                self.stats.delivered += 1;
                Outcome {
                    tag: entry.tag,
                    new_token,
                    error: None,
                }
            }
        };
        let reason = entry
            .failure
            .and_then(|failure| failure.reason)
            .filter(|_| outcome.error.is_some());
        self.outbox.report(Report {
            outcome,
            token: entry.token,
            status: entry.last_status,
            reason,
            id,
            unregistered_at,
        });
    }
}
