//! What the Web Push mock records, the subscriptions it minted, and what its handlers share.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use push_proto::SplitMix64;
use serde_json::json;

use crate::http2::{ConnectionStats, Http2Record};
use crate::quota::{Quota, QuotaState};
use crate::server::Records;

/// A subscription the mock made, as a browser would hand it to the web app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedSubscription {
    /// `PushSubscription.toJSON()`: `endpoint`, `expirationTime` (null) and `keys`.
    pub json: String,
    /// The endpoint: `https://localhost:PORT/push/<id>`.
    pub endpoint: String,
    /// The origin it is at (index into [`MockWebPush::origins`](crate::MockWebPush::origins)).
    pub origin: usize,
    /// Its id, the endpoint's last path segment.
    pub id: String,
}

/// One message the mock delivered (answered `201`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPushDelivery {
    /// The origin (index).
    pub origin: usize,
    /// The subscription's id.
    pub subscription: String,
    /// The decrypted payload.
    pub plaintext: Vec<u8>,
    /// The `TTL` header.
    pub ttl: u32,
    /// The `Urgency` header, if any.
    pub urgency: Option<String>,
    /// The `Topic` header, if any.
    pub topic: Option<String>,
    /// The `Location` answered: `https://localhost:PORT/message/<n>`.
    pub location: String,
    /// The connection: 0 for the first established one (over all origins), and so on.
    pub connection: usize,
    /// The HTTP/2 stream id; over HTTP/1.1, the request's number on its connection (from 1).
    pub stream_id: u32,
    /// Whether it came over HTTP/1.1 (an origin of [`WebPushOptions::http1_only`]); else
    /// HTTP/2.
    ///
    /// [`WebPushOptions::http1_only`]: crate::WebPushOptions::http1_only
    pub http1: bool,
}

/// One answer the mock gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPushAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `reason` of an error answer (`Unregistered`, `BadJwtToken`, ...).
    pub reason: Option<String>,
    /// The origin (index).
    pub origin: usize,
    /// The subscription's id, when the path named one the mock minted.
    pub subscription: Option<String>,
    /// The connection.
    pub connection: usize,
    /// The HTTP/2 stream id; over HTTP/1.1, the request's number on its connection (from 1).
    pub stream_id: u32,
    /// Whether it came over HTTP/1.1 (an origin of [`WebPushOptions::http1_only`]); else
    /// HTTP/2.
    ///
    /// [`WebPushOptions::http1_only`]: crate::WebPushOptions::http1_only
    pub http1: bool,
}

/// A minted subscription's secrets and state.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) origin: usize,
    pub(crate) secret: SecretKey,
    pub(crate) auth: [u8; 16],
    /// The application server key it was made with (uncompressed point), if restricted.
    pub(crate) application_server_key: Option<Vec<u8>>,
    /// Unsubscribed or expired: answered `410`.
    pub(crate) gone: bool,
}

/// One origin's listener state.
#[derive(Debug)]
pub(crate) struct OriginState {
    /// `https://localhost:PORT`, set once the listener runs.
    pub(crate) url: String,
    /// Answering `503` to everything.
    pub(crate) down: bool,
    pub(crate) quota: Option<QuotaState>,
}

/// Everything the Web Push mock records.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) stats: ConnectionStats,
    pub(crate) origins: Vec<OriginState>,
    pub(crate) subscribers: HashMap<String, Subscriber>,
    pub(crate) deliveries: Vec<WebPushDelivery>,
    pub(crate) per_subscription: HashMap<String, usize>,
    pub(crate) total_delivered: usize,
    pub(crate) answers: Vec<WebPushAnswer>,
    pub(crate) status_counts: HashMap<u16, usize>,
    pub(crate) total_answered: usize,
    /// The seeded fault draws.
    pub(crate) faults: SplitMix64,
    /// The seeded keys and ids of minted subscriptions.
    minting: SplitMix64,
    pub(crate) messages: u64,
    /// How far the mock's wall clock runs ahead of the system's.
    pub(crate) ahead: Duration,
}

impl Record {
    pub(crate) fn new(origins: usize, seed: u64, quota: Option<Quota>) -> Record {
        Record {
            stats: ConnectionStats::default(),
            origins: (0..origins)
                .map(|_| OriginState {
                    url: String::new(),
                    down: false,
                    quota: quota.map(QuotaState::new),
                })
                .collect(),
            subscribers: HashMap::new(),
            deliveries: Vec::new(),
            per_subscription: HashMap::new(),
            total_delivered: 0,
            answers: Vec::new(),
            status_counts: HashMap::new(),
            total_answered: 0,
            faults: SplitMix64::new(seed),
            minting: SplitMix64::new(seed ^ 0x5eed_5ab5),
            messages: 0,
            ahead: Duration::ZERO,
        }
    }

    /// The mock's wall clock, UNIX seconds.
    pub(crate) fn unix_now(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (now + self.ahead).as_secs()
    }

    /// `n` seeded bytes for a minted subscription.
    fn draw<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0u8; N];
        for chunk in bytes.chunks_mut(8) {
            let draw = self.minting.next_u64().to_le_bytes();
            chunk.copy_from_slice(&draw[..chunk.len()]);
        }
        bytes
    }

    /// Makes a subscription at `origin`, restricted to `application_server_key` if given.
    /// The keys are seeded, for tests only.
    pub(crate) fn mint(
        &mut self,
        origin: usize,
        application_server_key: Option<Vec<u8>>,
    ) -> MintedSubscription {
        let secret = loop {
            // A draw is a valid scalar but for about 2^-32 of them.
            if let Ok(secret) = SecretKey::from_slice(&self.draw::<32>()) {
                break secret;
            }
        };
        let auth = self.draw::<16>();
        let id = Base64UrlUnpadded::encode_string(&self.draw::<16>());
        let url = self
            .origins
            .get(origin)
            .map(|o| o.url.clone())
            .unwrap_or_default();
        let endpoint = format!("{url}/push/{id}");
        let p256dh = secret.public_key().to_encoded_point(false);
        let json = json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {
                "p256dh": Base64UrlUnpadded::encode_string(p256dh.as_bytes()),
                "auth": Base64UrlUnpadded::encode_string(&auth),
            },
        })
        .to_string();
        self.subscribers.insert(
            id.clone(),
            Subscriber {
                origin,
                secret,
                auth,
                application_server_key,
                gone: false,
            },
        );
        MintedSubscription {
            json,
            endpoint,
            origin,
            id,
        }
    }
}

impl Http2Record for Record {
    fn stats(&mut self) -> &mut ConnectionStats {
        &mut self.stats
    }
}

/// The settings every stream handler of every origin shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) unavailable_rate: f64,
    pub(crate) rate_limited_rate: f64,
    pub(crate) retry_after_secs: u64,
    pub(crate) latency: Option<Duration>,
    pub(crate) count_only: bool,
    pub(crate) record: Records<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minting_is_seeded_and_gives_usable_subscriptions() {
        let mint = |seed| {
            let mut record = Record::new(2, seed, None);
            record.origins[1].url = "https://localhost:8443".into();
            (record.mint(1, None), record)
        };
        let (first, record) = mint(7);
        assert_eq!(first, mint(7).0);
        assert_ne!(first.id, mint(8).0.id);
        assert!(first.endpoint.starts_with("https://localhost:8443/push/"));
        assert_eq!(first.origin, 1);
        let subscription = push_proto::webpush::Subscription::from_json(&first.json).unwrap();
        assert_eq!(subscription.endpoint(), first.endpoint.as_str());
        assert!(!record.subscribers[&first.id].gone);
    }
}
