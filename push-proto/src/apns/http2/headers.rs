//! The `apns-*` request headers: push type, priority, expiration, collapse id, apns-id, topic.

use std::fmt;
use std::str::FromStr;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use crate::payload::{Payload, Priority};
use crate::rng::SplitMix64;

/// `apns-push-type`: what kind of notification this is. Required on current OSes; it must
/// match the payload (e.g. `background` for a content-available-only notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushType {
    /// A visible notification (alert, sound or badge).
    Alert,
    /// A background update (`content-available: 1` only); always sent at priority 5.
    Background,
    /// A VoIP call notification (topic `<bundle>.voip`, payload up to 5120 bytes).
    Voip,
    /// A Live Activity update (topic `<bundle>.push-type.liveactivity`).
    LiveActivity,
    /// A watchOS complication update (topic `<bundle>.complication`).
    Complication,
    /// A File Provider change (topic `<bundle>.pushkit.fileprovider`).
    FileProvider,
    /// A mobile device management wake-up.
    Mdm,
    /// A location query (topic `<bundle>.location-query`).
    Location,
    /// A Push to Talk update (topic `<bundle>.voip-ptt`).
    PushToTalk,
    /// A WidgetKit reload request (topic `<bundle>.push-type.widgets`).
    Widgets,
}

impl PushType {
    /// Every push type, in a stable order.
    pub const ALL: [PushType; 10] = [
        PushType::Alert,
        PushType::Background,
        PushType::Voip,
        PushType::LiveActivity,
        PushType::Complication,
        PushType::FileProvider,
        PushType::Mdm,
        PushType::Location,
        PushType::PushToTalk,
        PushType::Widgets,
    ];

    /// The header value (`alert`, `background`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
            PushType::LiveActivity => "liveactivity",
            PushType::Complication => "complication",
            PushType::FileProvider => "fileprovider",
            PushType::Mdm => "mdm",
            PushType::Location => "location",
            PushType::PushToTalk => "pushtotalk",
            PushType::Widgets => "widgets",
        }
    }

    /// What APNs requires after the bundle id in `apns-topic` for this push type
    /// (`.push-type.liveactivity`, `.voip`, ...); `None` for alert, background and MDM.
    pub fn topic_suffix(self) -> Option<&'static str> {
        match self {
            PushType::Voip => Some(".voip"),
            PushType::LiveActivity => Some(".push-type.liveactivity"),
            PushType::Complication => Some(".complication"),
            PushType::FileProvider => Some(".pushkit.fileprovider"),
            PushType::Location => Some(".location-query"),
            PushType::PushToTalk => Some(".voip-ptt"),
            PushType::Widgets => Some(".push-type.widgets"),
            PushType::Alert | PushType::Background | PushType::Mdm => None,
        }
    }

    /// Largest payload APNs accepts for this push type: 5120 bytes for VoIP, 4096 otherwise.
    pub fn payload_limit(self) -> usize {
        match self {
            PushType::Voip => MAX_VOIP_PAYLOAD,
            _ => MAX_PAYLOAD,
        }
    }
}

/// Largest payload of a non-VoIP notification, in bytes.
pub const MAX_PAYLOAD: usize = 4096;
/// Largest payload of a VoIP notification, in bytes.
pub const MAX_VOIP_PAYLOAD: usize = 5120;
/// Longest `apns-collapse-id`, in bytes.
pub const MAX_COLLAPSE_ID: usize = 64;

impl fmt::Display for PushType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A push type name that APNs does not define.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown APNs push type {0:?}")]
pub struct UnknownPushType(pub String);

impl FromStr for PushType {
    type Err = UnknownPushType;

    /// Parses a header value such as `alert` (exact, lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PushType::ALL
            .into_iter()
            .find(|push_type| push_type.as_str() == s)
            .ok_or_else(|| UnknownPushType(s.to_owned()))
    }
}

/// `apns-priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApnsPriority {
    /// 10: deliver immediately (the default).
    Immediate,
    /// 5: deliver when power considerations allow; required for background pushes.
    PowerAware,
    /// 1: lowest; deliver when the device is awake anyway.
    Lowest,
}

impl ApnsPriority {
    /// The header value: 10, 5 or 1.
    pub fn value(self) -> u8 {
        match self {
            ApnsPriority::Immediate => 10,
            ApnsPriority::PowerAware => 5,
            ApnsPriority::Lowest => 1,
        }
    }
}

/// Why request options are invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// `apns-collapse-id` is longer than [`MAX_COLLAPSE_ID`] bytes.
    #[error("apns-collapse-id is {0} bytes, at most {MAX_COLLAPSE_ID} allowed")]
    CollapseIdTooLong(usize),
    /// A header value contains characters HTTP does not allow (control characters).
    #[error("{0} is not a valid header value")]
    InvalidValue(&'static str),
    /// A string is not a canonical UUID (`8-4-4-4-12` hex digits).
    #[error("not a canonical UUID: {0:?}")]
    NotUuid(String),
}

/// A validated `apns-collapse-id`: at most 64 bytes, a valid header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollapseId(HeaderValue);

impl CollapseId {
    /// Checks the length and characters.
    pub fn new(id: &str) -> Result<Self, HeaderError> {
        if id.len() > MAX_COLLAPSE_ID {
            return Err(HeaderError::CollapseIdTooLong(id.len()));
        }
        HeaderValue::from_str(id)
            .map(CollapseId)
            .map_err(|_| HeaderError::InvalidValue("apns-collapse-id"))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// An `apns-id`: a UUID naming one notification, echoed in the response.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApnsId([u8; 16]);

impl ApnsId {
    /// The id with these 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        ApnsId(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the canonical `8-4-4-4-12` form, any case (APNs answers in upper case).
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        let not_uuid = || HeaderError::NotUuid(text.chars().take(40).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
            return Err(not_uuid());
        }
        let mut digits = bytes.iter().copied().filter(|&b| b != b'-');
        let mut out = [0u8; 16];
        for byte in &mut out {
            let high = digits.next().and_then(hex).ok_or_else(not_uuid)?;
            let low = digits.next().and_then(hex).ok_or_else(not_uuid)?;
            *byte = high << 4 | low;
        }
        if digits.next().is_some() {
            return Err(not_uuid());
        }
        Ok(ApnsId(out))
    }

    /// The lowercase canonical form, `8-4-4-4-12` hex digits, without formatting machinery
    /// (it is written into every request).
    fn canonical(&self) -> [u8; 36] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            text[at] = DIGITS[usize::from(byte >> 4)];
            text[at + 1] = DIGITS[usize::from(byte & 0x0f)];
            at += 2;
        }
        text
    }

    /// The `apns-id` header value. Marked sensitive so that HPACK never indexes it: every
    /// request has its own id, and indexing each one would only churn the connection's
    /// dynamic table (evicting the header values that do repeat) and cost a table search per
    /// request.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_bytes(&self.canonical())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ApnsId {
    /// Lowercase canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.canonical();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ApnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApnsId({self})")
    }
}

/// Generates version-4-shaped UUIDs from a seed (SplitMix64), so that a sender with a given
/// seed names its notifications identically on every run. Not for secrets: the ids only
/// correlate requests with responses and logs.
#[derive(Debug, Clone)]
pub struct ApnsIdGenerator {
    rng: SplitMix64,
}

impl ApnsIdGenerator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        ApnsIdGenerator {
            rng: SplitMix64::new(seed),
        }
    }

    /// The next id (version 4, RFC 4122 variant bits set).
    pub fn next_id(&mut self) -> ApnsId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        ApnsId(bytes)
    }
}

/// The HTTP/2-specific request options of one notification (the headers other than
/// `authorization`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `apns-push-type`.
    pub push_type: PushType,
    /// `apns-priority`; `None` sends 10, except that `background` is always sent at 5.
    pub priority: Option<ApnsPriority>,
    /// `apns-expiration` as UNIX seconds (0 = try once, do not store); `None` omits the
    /// header.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`.
    pub collapse_id: Option<CollapseId>,
    /// `apns-id`; `None` lets the sender generate one from its seed. Supply one only for a
    /// notification queued to a single device: ids should be unique per request.
    pub apns_id: Option<ApnsId>,
    /// `apns-topic` for this notification, overriding the sender's configured topic.
    pub topic: Option<String>,
}

impl Options {
    /// Options for `push_type` with every other header left to its default.
    pub fn new(push_type: PushType) -> Self {
        Options {
            push_type,
            priority: None,
            expiration: None,
            collapse_id: None,
            apns_id: None,
            topic: None,
        }
    }

    /// The options a [`Payload`] implies: its `apns_push_type`, else `background` for a
    /// content-available-only payload and `alert` otherwise; its priority and expiry.
    pub fn from_payload(payload: &Payload) -> Self {
        let silent = payload.title.is_none()
            && payload.body.is_none()
            && payload.badge.is_none()
            && payload.sound.is_none();
        let push_type = match payload.apns_push_type {
            Some(push_type) => push_type,
            None if payload.content_available && silent => PushType::Background,
            None => PushType::Alert,
        };
        let mut options = Options::new(push_type);
        options.priority = payload.priority.map(|priority| match priority {
            Priority::High => ApnsPriority::Immediate,
            Priority::Normal => ApnsPriority::PowerAware,
        });
        options.expiration = payload.expiry.map(u64::from);
        options
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: ApnsPriority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the expiration (UNIX seconds).
    pub fn expiration(mut self, unix_seconds: u64) -> Self {
        self.expiration = Some(unix_seconds);
        self
    }

    /// Sets the collapse id, checked for length.
    pub fn collapse_id(mut self, id: &str) -> Result<Self, HeaderError> {
        self.collapse_id = Some(CollapseId::new(id)?);
        Ok(self)
    }

    /// Supplies the apns-id.
    pub fn apns_id(mut self, id: ApnsId) -> Self {
        self.apns_id = Some(id);
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// The priority actually sent: `background` forces 5, else the one set, else 10.
    pub fn effective_priority(&self) -> ApnsPriority {
        match (self.push_type, self.priority) {
            (PushType::Background, _) => ApnsPriority::PowerAware,
            (_, Some(priority)) => priority,
            (_, None) => ApnsPriority::Immediate,
        }
    }
}

/// `apns-push-type`.
const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
/// `apns-topic`.
const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
/// `apns-priority`.
const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
/// `apns-expiration`.
const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
/// `apns-collapse-id`.
const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
/// `apns-id`.
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");
/// Headers of a request at most: authorization and the six `apns-*` ones.
const MAX_HEADERS: usize = 7;

/// The header values of one message, validated and built once, then copied into every
/// request (a copy shares the bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderSet {
    pub(crate) push_type: PushType,
    pub(crate) apns_id: Option<ApnsId>,
    priority: HeaderValue,
    expiration: Option<HeaderValue>,
    collapse_id: Option<CollapseId>,
    topic: Option<HeaderValue>,
}

impl HeaderSet {
    /// Validates `options`.
    pub(crate) fn new(options: &Options) -> Result<Self, HeaderError> {
        let topic = match &options.topic {
            Some(topic) => Some(
                HeaderValue::from_str(topic)
                    .map_err(|_| HeaderError::InvalidValue("apns-topic"))?,
            ),
            None => None,
        };
        let priority = match options.effective_priority() {
            ApnsPriority::Immediate => HeaderValue::from_static("10"),
            ApnsPriority::PowerAware => HeaderValue::from_static("5"),
            ApnsPriority::Lowest => HeaderValue::from_static("1"),
        };
        Ok(HeaderSet {
            push_type: options.push_type,
            apns_id: options.apns_id,
            priority,
            expiration: options.expiration.map(HeaderValue::from),
            collapse_id: options.collapse_id.clone(),
            topic,
        })
    }

    /// `topic` with the push type's required suffix, unless it already ends with it (a
    /// bundle id configured once serves every push type).
    fn suffixed(&self, topic: &HeaderValue) -> HeaderValue {
        match self.push_type.topic_suffix() {
            Some(suffix) if !topic.as_bytes().ends_with(suffix.as_bytes()) => {
                HeaderValue::from_bytes(&[topic.as_bytes(), suffix.as_bytes()].concat())
                    .unwrap_or_else(|_| topic.clone())
            }
            _ => topic.clone(),
        }
    }

    /// A header map with `authorization` (when given) and the `apns-*` headers, in a fixed
    /// order: push type, topic, priority, expiration, collapse id, id.
    pub(crate) fn to_map(
        &self,
        authorization: Option<&HeaderValue>,
        default_topic: Option<&HeaderValue>,
        apns_id: ApnsId,
    ) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(MAX_HEADERS);
        if let Some(authorization) = authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        headers.insert(
            APNS_PUSH_TYPE,
            HeaderValue::from_static(self.push_type.as_str()),
        );
        if let Some(topic) = self.topic.as_ref().or(default_topic) {
            headers.insert(APNS_TOPIC, self.suffixed(topic));
        }
        headers.insert(APNS_PRIORITY, self.priority.clone());
        if let Some(expiration) = &self.expiration {
            headers.insert(APNS_EXPIRATION, expiration.clone());
        }
        if let Some(collapse_id) = &self.collapse_id {
            headers.insert(APNS_COLLAPSE_ID, collapse_id.0.clone());
        }
        headers.insert(APNS_ID, apns_id.header_value());
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_types_round_trip_and_voip_has_the_larger_limit() {
        for push_type in PushType::ALL {
            assert_eq!(push_type.as_str().parse::<PushType>(), Ok(push_type));
            let limit = if push_type == PushType::Voip {
                5120
            } else {
                4096
            };
            assert_eq!(push_type.payload_limit(), limit);
        }
        assert!("Alert".parse::<PushType>().is_err());
    }

    #[test]
    fn the_topic_gets_the_push_types_suffix_once() {
        let bundle = HeaderValue::from_static("com.example.app");
        let topic = |options: &Options| {
            let set = HeaderSet::new(options).unwrap();
            let headers = set.to_map(None, Some(&bundle), ApnsIdGenerator::new(1).next_id());
            headers[APNS_TOPIC].to_str().unwrap().to_owned()
        };
        assert_eq!(topic(&Options::new(PushType::Alert)), "com.example.app");
        assert_eq!(
            topic(&Options::new(PushType::LiveActivity)),
            "com.example.app.push-type.liveactivity"
        );
        assert_eq!(
            topic(&Options::new(PushType::Widgets)),
            "com.example.app.push-type.widgets"
        );
        assert_eq!(topic(&Options::new(PushType::Voip)), "com.example.app.voip");
        let given = Options::new(PushType::LiveActivity).topic("com.other.push-type.liveactivity");
        assert_eq!(topic(&given), "com.other.push-type.liveactivity");
        for push_type in PushType::ALL {
            let suffixed = topic(&Options::new(push_type));
            let again = Options::new(push_type).topic(suffixed.clone());
            assert_eq!(
                topic(&again),
                suffixed,
                "{push_type}: the suffix is added once"
            );
        }
    }

    #[test]
    fn background_forces_priority_5() {
        let options = Options::new(PushType::Background).priority(ApnsPriority::Immediate);
        assert_eq!(options.effective_priority().value(), 5);
        assert_eq!(
            Options::new(PushType::Alert).effective_priority().value(),
            10
        );
        let low = Options::new(PushType::Alert).priority(ApnsPriority::Lowest);
        assert_eq!(low.effective_priority().value(), 1);
    }

    #[test]
    fn collapse_id_is_limited_to_64_bytes() {
        assert!(CollapseId::new(&"a".repeat(64)).is_ok());
        assert_eq!(
            CollapseId::new(&"a".repeat(65)),
            Err(HeaderError::CollapseIdTooLong(65))
        );
        // 22 three-byte characters = 66 bytes, though only 22 characters.
        assert_eq!(
            CollapseId::new(&"€".repeat(22)),
            Err(HeaderError::CollapseIdTooLong(66))
        );
        assert!(CollapseId::new("a\nb").is_err());
    }

    #[test]
    fn apns_ids_are_seeded_v4_uuids_that_round_trip() {
        let mut a = ApnsIdGenerator::new(7);
        let mut b = ApnsIdGenerator::new(7);
        let id = a.next_id();
        assert_eq!(id, b.next_id());
        assert_ne!(id, a.next_id());
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(ApnsId::parse(&text), Ok(id));
        assert_eq!(ApnsId::parse(&text.to_uppercase()), Ok(id));
        assert!(ApnsId::parse("not-a-uuid").is_err());
        assert!(ApnsId::parse("00000000-0000-0000-0000-00000000000g").is_err());
        assert!(ApnsId::parse("000000000-000-0000-0000-000000000000").is_err());
        assert!(ApnsId::parse("0000000é-000-0000-0000-000000000000").is_err());
    }

    #[test]
    fn options_from_payload() {
        let background = Options::from_payload(&Payload::new().content_available(true));
        assert_eq!(background.push_type, PushType::Background);
        let alert = Options::from_payload(
            &Payload::new()
                .body("x")
                .priority(Priority::Normal)
                .expiry(99),
        );
        assert_eq!(alert.push_type, PushType::Alert);
        assert_eq!(alert.priority, Some(ApnsPriority::PowerAware));
        assert_eq!(alert.expiration, Some(99));
        let voip = Options::from_payload(&Payload::new().body("x").apns_push_type(PushType::Voip));
        assert_eq!(voip.push_type, PushType::Voip);
    }
}
