//! The checks of one push request, in order: method, subscription, VAPID, gone, outage,
//! quota and seeded faults, headers, size, decryption.

use std::time::Instant;

use http::header::{AUTHORIZATION, CONTENT_ENCODING};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use super::decrypt::decrypt;
use super::state::{Settings, Subscriber};
use super::vapid::{Refusal, verify};
use crate::http2::Body;
use crate::quota::retry_after_secs;
use crate::server::unit_interval;

/// Largest body a push service must accept (RFC 8030 §7.2).
pub(crate) const MAX_BODY: usize = 4096;
/// Longest `Topic`.
const MAX_TOPIC: usize = 32;

/// A refusal: status, reason and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
    pub(crate) retry_after: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, reason: &'static str) -> Failure {
        Failure {
            status,
            reason,
            retry_after: None,
        }
    }

    fn retry(status: StatusCode, reason: &'static str, seconds: u64) -> Failure {
        Failure {
            retry_after: Some(seconds),
            ..Failure::new(status, reason)
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::new(refusal.status(), refusal.reason())
    }
}

/// A message that passed every check.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) plaintext: Vec<u8>,
    pub(crate) ttl: u32,
    pub(crate) urgency: Option<String>,
    pub(crate) topic: Option<String>,
}

/// What to answer one request.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The subscription the path named, when the mock minted it.
    pub(crate) subscription: Option<String>,
    pub(crate) result: Result<Accepted, Failure>,
}

/// Runs every check on a request to `origin`.
pub(crate) fn evaluate(settings: &Settings, origin: usize, head: &Parts, body: &Body) -> Outcome {
    let mut subscription = None;
    let result = validate(settings, origin, head, body, &mut subscription);
    Outcome {
        subscription,
        result,
    }
}

fn validate(
    settings: &Settings,
    origin: usize,
    head: &Parts,
    body: &Body,
    subscription_out: &mut Option<String>,
) -> Result<Accepted, Failure> {
    if head.method != Method::POST {
        return Err(Failure::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ));
    }
    let id = head.uri.path().strip_prefix("/push/").unwrap_or_default();
    let (subscriber, origin_url, now) = settings.record.read(|r| {
        let subscriber = r
            .subscribers
            .get(id)
            .filter(|s| s.origin == origin)
            .cloned();
        let url = r
            .origins
            .get(origin)
            .map(|o| o.url.clone())
            .unwrap_or_default();
        (subscriber, url, r.unix_now())
    });
    let Some(subscriber) = subscriber else {
        return Err(Failure::new(StatusCode::NOT_FOUND, "NotFound"));
    };
    *subscription_out = Some(id.to_owned());
    let key = verify(head.headers.get(AUTHORIZATION), &origin_url, now)?;
    if subscriber
        .application_server_key
        .as_ref()
        .is_some_and(|restricted| *restricted != key)
    {
        return Err(Refusal::KeyMismatch.into());
    }
    if subscriber.gone {
        return Err(Failure::new(StatusCode::GONE, "Unregistered"));
    }
    admit(settings, origin)?;
    let (ttl, urgency, topic) = headers(&head.headers)?;
    let bytes = match body {
        Body::TooLarge => {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
            ));
        }
        Body::Complete(bytes) => bytes,
    };
    let plaintext = if bytes.is_empty() {
        // A push message without payload (RFC 8030 §5): nothing to decrypt.
        Vec::new()
    } else {
        open(&head.headers, bytes, &subscriber)?
    };
    Ok(Accepted {
        plaintext,
        ttl,
        urgency,
        topic,
    })
}

/// The origin's state, its quota and the seeded faults.
fn admit(settings: &Settings, origin: usize) -> Result<(), Failure> {
    let (down, quota) = settings.record.update(|r| match r.origins.get_mut(origin) {
        Some(state) => (
            state.down,
            state
                .quota
                .as_mut()
                .map_or(Ok(()), |q| q.admit(Instant::now())),
        ),
        None => (true, Ok(())),
    });
    if down {
        return Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
        ));
    }
    if let Err(wait) = quota {
        let seconds = retry_after_secs(wait);
        return Err(Failure::retry(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            seconds,
        ));
    }
    let draw = settings.record.update(|r| unit_interval(&mut r.faults));
    let seconds = settings.retry_after_secs;
    if draw < settings.unavailable_rate {
        return Err(Failure::retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            seconds,
        ));
    }
    if draw < settings.unavailable_rate + settings.rate_limited_rate {
        return Err(Failure::retry(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            seconds,
        ));
    }
    Ok(())
}

/// `TTL` (required), `Urgency` and `Topic`.
fn headers(headers: &HeaderMap) -> Result<(u32, Option<String>, Option<String>), Failure> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap_or("\u{0}"))
    };
    let ttl = text("ttl")
        .and_then(|ttl| ttl.parse::<u32>().ok())
        .ok_or(Failure::new(StatusCode::BAD_REQUEST, "BadTtl"))?;
    let urgency = text("urgency").map(str::to_owned);
    if urgency
        .as_deref()
        .is_some_and(|u| !["very-low", "low", "normal", "high"].contains(&u))
    {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "BadUrgency"));
    }
    let topic = text("topic").map(str::to_owned);
    let topic_ok = |topic: &str| {
        (1..=MAX_TOPIC).contains(&topic.len())
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if topic.as_deref().is_some_and(|t| !topic_ok(t)) {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "BadWebPushTopic"));
    }
    Ok((ttl, urgency, topic))
}

/// Decrypts an `aes128gcm` body with the subscription's keys.
fn open(headers: &HeaderMap, body: &[u8], subscriber: &Subscriber) -> Result<Vec<u8>, Failure> {
    let aes128gcm = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"aes128gcm"));
    if !aes128gcm {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedContentEncoding",
        ));
    }
    decrypt(body, &subscriber.secret, &subscriber.auth)
        .map_err(|_| Failure::new(StatusCode::BAD_REQUEST, "DecryptionFailed"))
}
