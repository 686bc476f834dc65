//! What the engine reports: one [`Report`] per notification, client-wide [`Event`]s, and
//! [`Stats`].

use crate::outcome::Outcome;

/// The final result of one notification, with what the provider said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<K, T> {
    /// The outcome (tag and error), as every provider reports it.
    pub outcome: Outcome<T>,
    /// The device token.
    pub token: K,
    /// The status of the last response, if one came.
    pub status: Option<u16>,
    /// The provider's reason or error code of the last error response, if any.
    pub reason: Option<String>,
    /// The notification id: the provider's (`apns-id` answered, FCM's message name), else the
    /// one sent.
    pub id: Option<String>,
    /// For an invalid device: when the provider last confirmed the token invalid
    /// (milliseconds since the epoch; APNs' 410 `timestamp`).
    pub unregistered_at: Option<u64>,
}

/// Something that concerns the whole client rather than one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<E> {
    /// The provider refused the client's credentials or configuration. The notification
    /// failed; later ones will likely fail the same way until it is fixed. Reported once per
    /// distinct status and reason until a notification is delivered.
    ClientError {
        /// The HTTP status.
        status: u16,
        /// The provider's reason or code, else empty.
        reason: String,
    },
    /// The route cannot reach the provider: the notifications waiting for a connection
    /// failed as `unavailable`.
    Unreachable {
        /// Why (the last dial error, or the server allowing no streams).
        reason: String,
    },
    /// An event of the credential (a new token, a failed token request, ...).
    Credential(E),
}

/// Counters since the sender was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Notifications accepted by `queue`.
    pub queued: u64,
    /// Requests handed out (first sends, retries and resends).
    pub requests: u64,
    /// Responses handled.
    pub responses: u64,
    /// Streams that ended without a response and may have been processed (counted as
    /// attempts).
    pub transport_failures: u64,
    /// Streams the server did not process, sent again for free.
    pub refused: u64,
    /// Retries scheduled after a transient error.
    pub retries: u64,
    /// Answers that throttled the route (`429` for the provider as a whole).
    pub throttled: u64,
    /// Of those, the ones that slowed the route down (the rest came scattered among clean
    /// answers: only their notifications waited).
    pub slowed: u64,
    /// Credential requests handed out.
    pub token_requests: u64,
    /// New credentials in use.
    pub token_refreshes: u64,
    /// Credential requests that failed.
    pub token_failures: u64,
    /// Connections dialed.
    pub dials: u64,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notifications failed.
    pub failed: u64,
    /// Most requests in flight at once.
    pub peak_in_flight: usize,
    /// GOAWAY frames received (connections the server closed to new streams).
    pub goaways: u64,
    /// Requests in flight now (when the counters were read).
    pub in_flight: usize,
}

impl Stats {
    /// Adds `other`'s counters to these (the counters of several senders as one):
    /// `peak_in_flight` becomes the larger of the two peaks, since the senders did not
    /// necessarily peak at the same moment.
    pub(crate) fn add(&mut self, other: &Stats) {
        self.queued += other.queued;
        self.requests += other.requests;
        self.responses += other.responses;
        self.transport_failures += other.transport_failures;
        self.refused += other.refused;
        self.retries += other.retries;
        self.throttled += other.throttled;
        self.slowed += other.slowed;
        self.token_requests += other.token_requests;
        self.token_refreshes += other.token_refreshes;
        self.token_failures += other.token_failures;
        self.dials += other.dials;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.peak_in_flight = self.peak_in_flight.max(other.peak_in_flight);
        self.goaways += other.goaways;
        self.in_flight += other.in_flight;
    }
}
