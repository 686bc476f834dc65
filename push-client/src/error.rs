//! Client-wide errors: configuration, connection, TLS and authentication problems.

use std::time::Duration;

use thiserror::Error;

/// A problem that concerns the whole client rather than one device. Each message names the
/// file, host or field at fault. Per-device problems are [`push_proto::Feedback`]s instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    ReadFile {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// PEM data did not hold what was expected.
    #[error("{origin}: {reason}")]
    Pem {
        /// Where the PEM came from (a path, or a description).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A configuration field has an unusable value.
    #[error("invalid configuration: `{field}` {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A TCP connection could not be opened.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake or session failed (untrusted certificate, wrong host name, refused
    /// client certificate, ...).
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
    /// An operation took longer than its timeout.
    #[error("{what} with {host} timed out after {after:?}")]
    Timeout {
        /// What timed out (connect, TLS handshake, HTTP exchange, ...).
        what: &'static str,
        /// `host:port`.
        host: String,
        /// The timeout.
        after: Duration,
    },
    /// GCM refused the API key (HTTP 401).
    #[error("GCM refused the API key (HTTP 401 Unauthorized): {detail}")]
    Unauthorized {
        /// The start of the response body.
        detail: String,
    },
    /// APNs refused the client's credentials or configuration (HTTP/2: a bad or expired
    /// provider token, a certificate for another environment, a wrong topic, ...).
    #[error("APNs refused the request (HTTP {status}): {reason}")]
    ApnsRefused {
        /// The HTTP status.
        status: u16,
        /// APNs' reason.
        reason: String,
    },
    /// FCM refused the client's credentials or configuration (`THIRD_PARTY_AUTH_ERROR`,
    /// `PERMISSION_DENIED`, a wrong project, an access token refused right after a refresh).
    #[error("FCM refused the request (HTTP {status}): {code}")]
    FcmRefused {
        /// The HTTP status.
        status: u16,
        /// FCM's error code, else the RPC status.
        code: String,
    },
    /// A Web Push service refused the client's VAPID credentials (HTTP 403: the VAPID public
    /// key is not the `applicationServerKey` the subscriptions were made with, or the service
    /// refuses this sender; 401 twice in a row: the tokens are refused). The key is never
    /// shown.
    #[error(
        "the Web Push service at {origin} refused the VAPID credentials (HTTP {status}): {reason}"
    )]
    WebPushRefused {
        /// The push service's origin (`https://host[:port]`).
        origin: String,
        /// The HTTP status.
        status: u16,
        /// What the service said.
        reason: String,
    },
    /// No OAuth2 access token could be obtained for the service account (the token endpoint
    /// refused the assertion, or stayed unreachable); the waiting notifications failed.
    #[error("no FCM access token: {reason}")]
    FcmToken {
        /// What the token endpoint (or the transport) said.
        reason: String,
    },
    /// The APNs gateway could not be reached after every allowed attempt.
    #[error("the APNs gateway is unreachable: {reason}")]
    GatewayUnreachable {
        /// The last connection error.
        reason: String,
    },
    /// An HTTP provider could not be reached (every dial failed, or its server allowed no
    /// streams for too long): the notifications waiting for it ended `unavailable`.
    #[error("{provider} is unreachable: {reason}")]
    Unreachable {
        /// The provider (`APNs`, `FCM`).
        provider: &'static str,
        /// Why.
        reason: String,
    },
    /// The client's background task has stopped.
    #[error("the client has shut down")]
    Closed,
    /// A device was pushed into a session after [`Session::finish`](crate::Session::finish)
    /// was called.
    #[error("the session is finished: it takes no more devices")]
    SessionFinished,
}

impl Error {
    /// True for errors that retrying cannot fix (TLS trust and identity, authentication,
    /// configuration); connection refusals and timeouts are worth retrying.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Error::Connect { .. } | Error::Timeout { .. })
    }
}
