//! [`Verdict`], [`Answer`] and [`Answers`]: what a provider's response means, in one
//! vocabulary shared by every protocol.

use std::time::Duration;

/// What one response means for its notification. Each protocol maps its own status codes and
/// reason strings onto these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the provider.
    Delivered,
    /// The token is no longer valid for this sender: delete it (unless the device registered
    /// again after `since`).
    InvalidDevice {
        /// When the provider last confirmed the token invalid (milliseconds since the epoch;
        /// APNs' 410 `timestamp`).
        since: Option<u64>,
    },
    /// The provider says the token is malformed.
    InvalidToken,
    /// The payload is too large.
    PayloadTooLarge,
    /// Transient: send again after `retry_after` or the backoff.
    Retry {
        /// The delay the server asked for (`Retry-After`).
        retry_after: Option<Duration>,
        /// Also report a client-wide event (the condition concerns every request).
        client_wide: bool,
    },
    /// The provider's rate limit for the whole route was exceeded (FCM's per-project
    /// `QUOTA_EXCEEDED`, APNs' `TooManyRequests`, which APNs does not say is per token or
    /// provider-wide): retried like [`Retry`](Self::Retry), and the route's rate controller
    /// slows down when such answers are a sizeable share of the recent ones (isolated ones
    /// concern their device: it alone waits).
    Throttled {
        /// The delay the server asked for (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The credential was refused (expired or revoked): renew it and send again, once.
    Reauthenticate,
    /// The client's credentials or configuration are wrong: fail the notification and report
    /// a client-wide event.
    ClientError,
    /// Refused for good.
    Rejected,
}

/// A classified response: the verdict and what the provider said with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// What it means.
    pub verdict: Verdict,
    /// The provider's reason or error code (`BadDeviceToken`, `UNREGISTERED`, ...), if any.
    pub reason: Option<String>,
    /// The provider's id of the notification (`apns-id`, FCM's message name, GCM's
    /// `message_id`), if it gave one.
    pub id: Option<String>,
    /// For a delivered notification: the token the provider wants used from now on instead of
    /// the one sent (GCM's canonical registration id), if it differs.
    pub new_token: Option<String>,
    /// A one-line description for reports: status, reason, detail.
    pub described: String,
}

impl Answer {
    /// An answer with `verdict` to `status`, described by the status alone.
    pub fn new(status: u16, verdict: Verdict) -> Self {
        Answer {
            status,
            verdict,
            reason: None,
            id: None,
            new_token: None,
            described: format!("HTTP {status}"),
        }
    }
}

/// What one response means for the notifications its request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answers {
    /// The same answer for every notification of the request (always so for a request that
    /// carries one notification).
    All(Answer),
    /// One answer per notification, in the order of the request's
    /// [`Batch`](super::Batch) (GCM answers a batch token by token). A notification without an
    /// answer in the list fails as rejected.
    Each(Vec<Answer>),
}
