//! What a finished session reports, and the client's counters.

use std::collections::BTreeMap;
use std::time::Duration;

use push_proto::Feedback;
use push_proto::apns::GatewayStats;
use push_proto::engine::Stats as EngineStats;

use crate::error::Error;

/// The summary of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Devices pushed into the session.
    pub pushed: u64,
    /// Devices delivered (including those with a new token).
    pub delivered: u64,
    /// Delivered devices whose token was replaced by a canonical one.
    pub new_tokens: u64,
    /// Failed devices, by error code (`invalid_device`, `unavailable`, ...).
    pub failed: BTreeMap<&'static str, u64>,
    /// Feedbacks not handed to a feedback stream because none was open (or it was dropped).
    pub feedback_not_read: u64,
    /// Client-wide errors seen while the session ran (TLS, authentication, unreachable).
    pub errors: Vec<Error>,
    /// From the first push to the last feedback.
    pub elapsed: Duration,
}

impl Report {
    /// Failed devices, all codes together.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Devices with a given failure code.
    pub fn failed_with(&self, code: &str) -> u64 {
        self.failed.get(code).copied().unwrap_or(0)
    }

    pub(crate) fn count(&mut self, feedback: &Feedback) {
        match &feedback.error {
            Some(error) => *self.failed.entry(error.code()).or_default() += 1,
            None => {
                self.delivered += 1;
                self.new_tokens += u64::from(feedback.new_token.is_some());
            }
        }
    }
}

/// Counters of a client, for monitoring and for checking memory bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Sessions open now.
    pub sessions: u64,
    /// Feedbacks waiting for a slow reader now, over all sessions.
    pub feedback_waiting: u64,
    /// The most feedbacks that ever waited for slow readers at once.
    pub feedback_waiting_peak: u64,
    /// Configured bound on waiting feedbacks; pushing pauses when it is reached.
    pub feedback_capacity: u64,
    /// APNs gateway connections opened.
    pub apns_connections: u64,
    /// GCM requests sent.
    pub gcm_requests: u64,
    /// FCM HTTP v1 requests sent (one per notification attempt).
    pub fcm_requests: u64,
    /// OAuth2 access tokens obtained for FCM.
    pub fcm_token_refreshes: u64,
    /// APNs binary error responses that arrived after the grace period, naming a
    /// notification already reported delivered (its device could not be told). Non-zero
    /// means the grace period is too short for this gateway's latency.
    pub late_verdicts: u64,
    /// The binary gateway's counters, when it is configured.
    pub apns: Option<GatewayStats>,
    /// The engine's counters of APNs over HTTP/2, when it is configured.
    pub apns_http2: Option<EngineStats>,
    /// The engine's counters of GCM, when it is configured.
    pub gcm: Option<EngineStats>,
    /// The engine's counters of FCM HTTP v1, when it is configured.
    pub fcm: Option<EngineStats>,
    /// The engine's counters of Web Push, when it is configured: every push-service
    /// origin's sender summed, those already closed for idling included.
    pub web_push: Option<EngineStats>,
}
