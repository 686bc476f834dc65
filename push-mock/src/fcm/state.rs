//! What the FCM mock records, what it hands out, and what its handlers share.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use push_proto::SplitMix64;
use serde_json::Value;

use super::options::FcmScript;
use crate::http2::{ConnectionStats, Http2Record};
use crate::quota::{Quota, QuotaState};
use crate::server::Records;

/// The recipient of a message: exactly one of FCM's `token`, `topic` and `condition`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FcmTarget {
    /// A registration token.
    Token(String),
    /// A topic name (as sent: with or without `/topics/`).
    Topic(String),
    /// A topic condition expression.
    Condition(String),
}

impl FcmTarget {
    /// The registration token, for a token target.
    pub fn token(&self) -> Option<&str> {
        match self {
            FcmTarget::Token(token) => Some(token),
            FcmTarget::Topic(_) | FcmTarget::Condition(_) => None,
        }
    }
}

/// One message the mock delivered (answered `200`, not `validate_only`).
#[derive(Debug, Clone, PartialEq)]
pub struct FcmDelivery {
    /// The recipient.
    pub target: FcmTarget,
    /// The request's `message` object, as received.
    pub message: Value,
    /// The `name` answered: `projects/<project>/messages/<id>`.
    pub name: String,
    /// The connection: 0 for the first established one, and so on.
    pub connection: usize,
    /// The HTTP/2 stream id.
    pub stream_id: u32,
}

/// One answer the mock gave on the FCM API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The error's `status` (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, ...); `None` for `200`.
    pub rpc_status: Option<String>,
    /// The `FcmError` detail's `errorCode`, when the error has one.
    pub error_code: Option<String>,
    /// The message's registration token, when the request got as far as its body being
    /// parsed (not for `401`s, say) and it had a string one.
    pub token: Option<String>,
    /// The request asked for `validate_only` (and passed validation).
    pub validate_only: bool,
    /// The connection: 0 for the first established one, and so on.
    pub connection: usize,
    /// The HTTP/2 stream id.
    pub stream_id: u32,
}

/// The token endpoint's records and faults.
#[derive(Debug, Default)]
pub(crate) struct TokenRecord {
    /// Access tokens that work, with when they expire (`None`: beyond `Instant`'s range).
    pub(crate) valid: HashMap<String, Option<Instant>>,
    /// Access tokens issued (ever).
    pub(crate) issued: usize,
    /// Requests to the token endpoint, whatever their answer.
    pub(crate) requests: usize,
    /// Assertions whose signature and claims verified.
    pub(crate) verified: usize,
    /// The `error_description` (or status) of every failed token request, in order.
    pub(crate) failures: Vec<String>,
    /// The next this-many token requests get a 503.
    pub(crate) fail_next: usize,
    /// The `expires_in` of new access tokens, seconds.
    pub(crate) expires_in: u64,
    /// How far the mock's clock runs ahead of the system's (see `MockFcm::advance_clock`).
    pub(crate) ahead: Duration,
}

impl TokenRecord {
    /// Issues a new access token valid for `expires_in` seconds from now.
    pub(crate) fn issue(&mut self) -> (String, u64) {
        self.issued += 1;
        let token = format!("ya29.mock-{}", self.issued);
        let expires = self
            .now()
            .and_then(|now| now.checked_add(Duration::from_secs(self.expires_in)));
        self.valid.insert(token.clone(), expires);
        (token, self.expires_in)
    }

    /// Whether `token` was issued and neither expired nor revoked.
    pub(crate) fn accepts(&self, token: &str) -> bool {
        self.valid.get(token).is_some_and(|expires| {
            expires.is_none_or(|expires| self.now().is_some_and(|now| now < expires))
        })
    }

    /// The mock's monotonic clock: the system's plus [`ahead`](Self::ahead).
    fn now(&self) -> Option<Instant> {
        Instant::now().checked_add(self.ahead)
    }
}

/// Everything the FCM mock records.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) stats: ConnectionStats,
    pub(crate) deliveries: Vec<FcmDelivery>,
    pub(crate) per_token: HashMap<String, usize>,
    pub(crate) total_delivered: usize,
    pub(crate) validated: usize,
    pub(crate) answers: Vec<FcmAnswer>,
    pub(crate) status_counts: HashMap<u16, usize>,
    pub(crate) total_answered: usize,
    /// Requests that reached the script, per token.
    pub(crate) scripted_seen: HashMap<String, u32>,
    /// The seeded fault draws.
    pub(crate) rng: SplitMix64,
    pub(crate) message_ids: u64,
    /// The project's quota and the messages it admitted, when one is set.
    pub(crate) quota: Option<QuotaState>,
    pub(crate) tokens: TokenRecord,
}

impl Record {
    pub(crate) fn new(seed: u64, expires_in: u64, quota: Option<Quota>) -> Record {
        Record {
            stats: ConnectionStats::default(),
            deliveries: Vec::new(),
            per_token: HashMap::new(),
            total_delivered: 0,
            validated: 0,
            answers: Vec::new(),
            status_counts: HashMap::new(),
            total_answered: 0,
            scripted_seen: HashMap::new(),
            rng: SplitMix64::new(seed),
            message_ids: 0,
            quota: quota.map(QuotaState::new),
            tokens: TokenRecord {
                expires_in,
                ..TokenRecord::default()
            },
        }
    }
}

impl Http2Record for Record {
    fn stats(&mut self) -> &mut ConnectionStats {
        &mut self.stats
    }
}

/// What every FCM stream handler needs.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) project: String,
    /// `/v1/projects/<project>/messages:send`.
    pub(crate) path: String,
    pub(crate) scripts: HashMap<String, FcmScript>,
    pub(crate) unavailable_rate: f64,
    pub(crate) quota_rate: f64,
    pub(crate) retry_after_secs: u64,
    /// The quota's `429`s carry `Retry-After`.
    pub(crate) quota_retry_after: bool,
    pub(crate) latency: Option<Duration>,
    pub(crate) count_only: bool,
    pub(crate) record: Records<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_work_until_they_expire_even_with_a_huge_lifetime() {
        let mut record = Record::new(0, u64::MAX, None);
        let (forever, expires_in) = record.tokens.issue();
        assert_eq!((forever.as_str(), expires_in), ("ya29.mock-1", u64::MAX));
        assert!(record.tokens.accepts(&forever));
        record.tokens.expires_in = 0;
        let (expired, _) = record.tokens.issue();
        assert_eq!(expired, "ya29.mock-2");
        assert!(!record.tokens.accepts(&expired));
        assert!(!record.tokens.accepts("ya29.mock-3"));
        record.tokens.valid.clear();
        assert!(!record.tokens.accepts(&forever));
        assert_eq!(record.tokens.issued, 2);
    }
}
