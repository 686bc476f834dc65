//! [`Subscription`]: the browser's `PushSubscription`, parsed and validated.

use std::fmt;

use http::Uri;
use p256::PublicKey;
use serde_json::{Value, json};
use thiserror::Error;

use super::origin::{EndpointError, Origin, parse_endpoint};
use crate::jose::{base64url, base64url_decode};

/// Length of `keys.p256dh`: an uncompressed P-256 point (`0x04 || x || y`).
pub(crate) const P256DH_LEN: usize = 65;
/// Length of `keys.auth`: the authentication secret.
pub(crate) const AUTH_LEN: usize = 16;

/// Where one browser (one service worker registration) receives push messages: the push
/// service's endpoint URL and the keys messages are encrypted to.
///
/// Parse it from what `PushSubscription.toJSON()` gives the web app:
///
/// ```
/// use push_proto::webpush::Subscription;
///
/// let subscription = Subscription::from_json(r#"{
///     "endpoint": "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
///     "expirationTime": null,
///     "keys": {
///         "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
///         "auth": "BTBZMqHH6r4Tts7J_aSIgg"
///     }
/// }"#)?;
/// assert_eq!(subscription.origin().as_str(), "https://push.example.net");
/// # Ok::<(), push_proto::webpush::SubscriptionError>(())
/// ```
///
/// `Debug` shows the endpoint, never the authentication secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    endpoint: Uri,
    origin: Origin,
    p256dh: [u8; P256DH_LEN],
    public_key: PublicKey,
    auth: [u8; AUTH_LEN],
    expiration_time: Option<u64>,
}

/// Why a subscription is not usable. Never contains the keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// Not a JSON object.
    #[error("a web push subscription must be a PushSubscription JSON object: {0}")]
    Json(String),
    /// A required member is missing or not a string.
    #[error("the subscription's {0} is missing or not a string")]
    Missing(&'static str),
    /// The endpoint is not usable.
    #[error("the subscription's endpoint {endpoint:?} is {reason}")]
    Endpoint {
        /// The endpoint, cut to 100 characters.
        endpoint: String,
        /// What is wrong with it.
        reason: EndpointError,
    },
    /// A key is not base64url, has the wrong length, or is not a P-256 point.
    #[error("the subscription's keys.{field} {problem}")]
    Key {
        /// `p256dh` or `auth`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// `expirationTime` is neither `null` nor a non-negative number.
    #[error("the subscription's expirationTime must be null or milliseconds since the epoch")]
    ExpirationTime,
}

impl Subscription {
    /// Parses the JSON of `PushSubscription.toJSON()`: `endpoint`, `keys.p256dh`, `keys.auth`
    /// and the optional `expirationTime`; other members are ignored.
    pub fn from_json(json: &str) -> Result<Self, SubscriptionError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| SubscriptionError::Json(e.to_string()))?;
        let Value::Object(object) = value else {
            return Err(SubscriptionError::Json("not an object".into()));
        };
        fn text<'a>(
            value: Option<&'a Value>,
            name: &'static str,
        ) -> Result<&'a str, SubscriptionError> {
            value
                .and_then(Value::as_str)
                .ok_or(SubscriptionError::Missing(name))
        }
        let endpoint = text(object.get("endpoint"), "endpoint")?;
        let keys = object.get("keys");
        let p256dh = text(keys.and_then(|k| k.get("p256dh")), "keys.p256dh")?;
        let auth = text(keys.and_then(|k| k.get("auth")), "keys.auth")?;
        let expiration_time = match object.get("expirationTime") {
            None | Some(Value::Null) => None,
            Some(Value::Number(number)) => Some(milliseconds(number)?),
            Some(_) => return Err(SubscriptionError::ExpirationTime),
        };
        let mut subscription = Subscription::new(endpoint, p256dh, auth)?;
        subscription.expiration_time = expiration_time;
        Ok(subscription)
    }

    /// A subscription from its parts: the endpoint URL and the two keys in base64url (with or
    /// without padding).
    pub fn new(endpoint: &str, p256dh: &str, auth: &str) -> Result<Self, SubscriptionError> {
        let bad_endpoint = |reason| SubscriptionError::Endpoint {
            endpoint: endpoint.chars().take(100).collect(),
            reason,
        };
        let uri = parse_endpoint(endpoint).map_err(bad_endpoint)?;
        let origin = Origin::of(&uri).map_err(bad_endpoint)?;
        let p256dh: [u8; P256DH_LEN] = decode_key("p256dh", p256dh)?;
        let public_key = match p256dh[0] {
            0x04 => PublicKey::from_sec1_bytes(&p256dh).map_err(|_| SubscriptionError::Key {
                field: "p256dh",
                problem: "is not a point on the P-256 curve".into(),
            })?,
            _ => {
                return Err(SubscriptionError::Key {
                    field: "p256dh",
                    problem: "is not an uncompressed point (it must start with 0x04)".into(),
                });
            }
        };
        Ok(Subscription {
            endpoint: uri,
            origin,
            p256dh,
            public_key,
            auth: decode_key("auth", auth)?,
            expiration_time: None,
        })
    }

    /// The push resource messages are sent to.
    pub fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// The push service's origin: the route key and the VAPID `aud`.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// When the subscription expires (milliseconds since the epoch), if the browser said.
    pub fn expiration_time(&self) -> Option<u64> {
        self.expiration_time
    }

    /// The user agent's public key (`keys.p256dh`), uncompressed.
    pub(crate) fn p256dh(&self) -> &[u8; P256DH_LEN] {
        &self.p256dh
    }

    /// The user agent's public key as a curve point.
    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The authentication secret (`keys.auth`).
    pub(crate) fn auth(&self) -> &[u8; AUTH_LEN] {
        &self.auth
    }

    /// The subscription as `PushSubscription.toJSON()` writes it (keys in unpadded base64url),
    /// for storing: [`from_json`](Self::from_json) reads it back.
    pub fn to_json(&self) -> String {
        json!({
            "endpoint": self.endpoint.to_string(),
            "expirationTime": self.expiration_time,
            "keys": {"p256dh": base64url(&self.p256dh), "auth": base64url(&self.auth)},
        })
        .to_string()
    }
}

impl fmt::Debug for Subscription {
    /// The endpoint and the expiration time; never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("endpoint", &self.endpoint.to_string())
            .field("expiration_time", &self.expiration_time)
            .finish_non_exhaustive()
    }
}

/// A key of exactly `N` bytes in base64url.
fn decode_key<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], SubscriptionError> {
    let problem = |problem: String| SubscriptionError::Key { field, problem };
    let bytes = base64url_decode(text).ok_or_else(|| problem("is not base64url".into()))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| problem(format!("must be {N} bytes, got {len}")))
}

/// `expirationTime`: a non-negative number of milliseconds (fractions dropped).
fn milliseconds(number: &serde_json::Number) -> Result<u64, SubscriptionError> {
    if let Some(ms) = number.as_u64() {
        return Ok(ms);
    }
    match number.as_f64() {
        // Whole milliseconds; the cast saturates, and 2^64 ms is far beyond any date.
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms as u64),
        _ => Err(SubscriptionError::ExpirationTime),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The user agent's public key of RFC 8291's example.
    pub(crate) const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    /// The authentication secret of RFC 8291's example.
    pub(crate) const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    /// RFC 8291's user agent at `endpoint`.
    pub(crate) fn subscription(endpoint: &str) -> Subscription {
        Subscription::new(endpoint, UA_PUBLIC, AUTH).unwrap()
    }

    fn json(endpoint: &str, p256dh: &str, auth: &str) -> String {
        json!({"endpoint": endpoint, "expirationTime": null,
               "keys": {"p256dh": p256dh, "auth": auth}})
        .to_string()
    }

    #[test]
    fn parses_what_browsers_send() {
        let text = json(
            "https://fcm.googleapis.com/fcm/send/c1:APA91b",
            UA_PUBLIC,
            AUTH,
        );
        let parsed = Subscription::from_json(&text).unwrap();
        assert_eq!(
            parsed.endpoint(),
            "https://fcm.googleapis.com/fcm/send/c1:APA91b"
        );
        assert_eq!(parsed.origin().as_str(), "https://fcm.googleapis.com");
        assert_eq!(parsed.expiration_time(), None);
        assert_eq!(base64url(parsed.p256dh()), UA_PUBLIC);
        assert_eq!(base64url(parsed.auth()), AUTH);
        // Padded keys, an expiration time and unknown members.
        let padded = r#"{"endpoint":"https://web.push.apple.com/QGu","expirationTime":1700000000000.5,
            "keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4=",
                    "auth":"BTBZMqHH6r4Tts7J_aSIgg=="},"extra":1}"#;
        let parsed = Subscription::from_json(padded).unwrap();
        assert_eq!(parsed.expiration_time(), Some(1_700_000_000_000));
        assert_eq!(base64url(parsed.auth()), AUTH);
    }

    #[test]
    fn json_round_trips() {
        let mut original = subscription("https://push.example.net:8443/push/x?y=1");
        original.expiration_time = Some(42);
        let text = original.to_json();
        assert_eq!(Subscription::from_json(&text).unwrap(), original);
        assert!(text.contains(r#""expirationTime":42"#));
    }

    #[test]
    fn every_problem_is_named() {
        let endpoint = "https://push.example.net/p";
        let cases: Vec<(String, &str)> = vec![
            (
                "[1]".into(),
                "must be a PushSubscription JSON object: not an object",
            ),
            ("{".into(), "must be a PushSubscription JSON object"),
            (r#"{"keys":{}}"#.into(), "endpoint is missing"),
            (
                format!(r#"{{"endpoint":"{endpoint}"}}"#),
                "keys.p256dh is missing",
            ),
            (
                format!(r#"{{"endpoint":"{endpoint}","keys":{{"p256dh":"x"}}}}"#),
                "keys.auth is missing",
            ),
            (
                json("http://push.example.net/p", UA_PUBLIC, AUTH),
                "is not https",
            ),
            (
                json("push.example.net/p", UA_PUBLIC, AUTH),
                "is not an absolute URL",
            ),
            (
                json(endpoint, "not*base64", AUTH),
                "keys.p256dh is not base64url",
            ),
            (
                json(endpoint, &UA_PUBLIC[..86], AUTH),
                "keys.p256dh must be 65 bytes, got 64",
            ),
            (
                json(endpoint, &UA_PUBLIC[..85], AUTH),
                "keys.p256dh is not base64url",
            ),
            (
                json(endpoint, &UA_PUBLIC[..84], AUTH),
                "keys.p256dh must be 65 bytes, got 63",
            ),
            (
                json(endpoint, UA_PUBLIC, "BTBZMqHH6r4Tts7J"),
                "keys.auth must be 16 bytes, got 12",
            ),
            (
                json(endpoint, &base64url(&[0x04; 65]), AUTH),
                "keys.p256dh is not a point on the P-256 curve",
            ),
            (
                json(endpoint, &format!("A{}", &UA_PUBLIC[1..]), AUTH),
                "keys.p256dh is not an uncompressed point",
            ),
        ];
        for (text, expected) in cases {
            let error = Subscription::from_json(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains(AUTH), "{error}");
        }
        let expiration = json(endpoint, UA_PUBLIC, AUTH).replace("null", "-1");
        assert_eq!(
            Subscription::from_json(&expiration),
            Err(SubscriptionError::ExpirationTime)
        );
        let expiration = json(endpoint, UA_PUBLIC, AUTH).replace("null", r#""soon""#);
        assert_eq!(
            Subscription::from_json(&expiration),
            Err(SubscriptionError::ExpirationTime)
        );
    }

    #[test]
    fn debug_hides_the_keys() {
        let shown = format!("{:?}", subscription("https://push.example.net/p"));
        assert!(shown.contains("https://push.example.net/p"), "{shown}");
        assert!(
            !shown.contains(AUTH) && !shown.contains(&UA_PUBLIC[..20]),
            "{shown}"
        );
    }
}
