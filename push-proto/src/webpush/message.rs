//! [`Message`]: one notification's plaintext and headers, built once per session and
//! encrypted per subscription; [`Options`] and the [`Declarative`] payload form.
//!
//! A [`Payload`] becomes the plaintext in one of two forms:
//!
//! | `Payload`      | plain form (default), for the service worker | declarative form ([`Options::declarative`]) |
//! |----------------|-----------------------------------------------|---------------------------------------------|
//! | (always)       | —                                             | `"web_push": 8030`                          |
//! | `title`        | `title`                                       | `notification.title` (required)             |
//! | `body`         | `body`                                        | `notification.body`                         |
//! | —              | —                                             | `notification.navigate` ([`Declarative::navigate`]) |
//! | `data`         | `data` (when not empty)                       | `notification.data` (when not empty)        |
//! | `badge`        | `badge`                                       | `app_badge`                                 |
//! | `sound`        | `sound`                                       | —                                           |
//! | `category`     | `category`                                    | —                                           |
//! | —              | —                                             | `mutable: true` ([`Declarative::mutable`])  |
//!
//! The declarative form (WebKit's Declarative Web Push, in the W3C Push API) is shown by the
//! browser itself, with no service worker; [`Declarative::field`] adds any other member of
//! `notification` (`lang`, `dir`, `icon`, `tag`, `silent`, `actions`, ...), and those win over
//! the ones above. [`Message::raw`] sends any bytes instead.
//!
//! Headers: `TTL` from [`Options::ttl`], else `Payload::time_to_live`, else
//! [`DEFAULT_TTL`]; `Urgency` from [`Options::urgency`], else `Payload::priority` (high →
//! `high`, normal → `normal`), else none (the service's default, `normal`); `Topic` from
//! [`Options::topic`], else `Payload::collapse_key`, else none.
//!
//! The encrypted body must fit in [`MAX_BODY`] (4096) bytes: the plaintext in 3993. It is
//! checked here, before anything is sent.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde_json::{Map, Value, json};

use super::ece::{MAX_BODY, body_len};
use super::headers::{Topic, Urgency};
use crate::feedback::DeviceError;
use crate::payload::{Payload, Priority, insert_some};

/// `TTL` when none is set: 28 days, in seconds.
pub const DEFAULT_TTL: u32 = 2_419_200;
/// The `web_push` member that marks a declarative message (the RFC's number).
const DECLARATIVE_MARKER: u32 = 8030;

static TTL: HeaderName = HeaderName::from_static("ttl");
static URGENCY: HeaderName = HeaderName::from_static("urgency");
static TOPIC: HeaderName = HeaderName::from_static("topic");

/// Web Push settings that are not part of [`Payload`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// How long the push service keeps an undelivered message, in seconds (`TTL`; 0: deliver
    /// now or never).
    pub ttl: Option<u32>,
    /// `Urgency`.
    pub urgency: Option<Urgency>,
    /// `Topic`: a waiting message with the same topic is replaced.
    pub topic: Option<String>,
    /// Send the declarative form instead of the plain one.
    pub declarative: Option<Declarative>,
    /// Pad the encrypted body up to this many bytes (at most [`MAX_BODY`]), so that its size
    /// says less about the content.
    pub pad_to: Option<usize>,
}

impl Options {
    /// No options: the plain form, the payload's TTL, urgency and topic.
    pub fn new() -> Self {
        Options::default()
    }

    /// Sets the TTL in seconds.
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// Sets the urgency.
    pub fn urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = Some(urgency);
        self
    }

    /// Sets the topic (checked when the message is built).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Chooses the declarative form.
    pub fn declarative(mut self, declarative: Declarative) -> Self {
        self.declarative = Some(declarative);
        self
    }

    /// Pads the encrypted body up to `bytes`.
    pub fn pad_to(mut self, bytes: usize) -> Self {
        self.pad_to = Some(bytes);
        self
    }
}

/// The declarative form's own settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Declarative {
    /// The `https` (or `http`) URL opened when the notification is clicked.
    pub navigate: String,
    /// Other members of `notification` (`lang`, `dir`, `icon`, `tag`, `actions`, ...).
    pub notification: Map<String, Value>,
    /// Let the service worker change the notification before it is shown (`mutable`).
    pub mutable: bool,
}

impl Declarative {
    /// The declarative form opening `navigate` on a click.
    pub fn new(navigate: impl Into<String>) -> Self {
        Declarative {
            navigate: navigate.into(),
            notification: Map::new(),
            mutable: false,
        }
    }

    /// Adds a member of `notification`.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.notification.insert(key.into(), value.into());
        self
    }

    /// Sets `mutable`.
    pub fn mutable(mut self, mutable: bool) -> Self {
        self.mutable = mutable;
        self
    }
}

/// One notification, built once per session: the plaintext and the request headers; each
/// subscription gets its own encryption of it. Cheap to clone (shared buffers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    plaintext: Bytes,
    padding: usize,
    ttl: u32,
    ttl_header: HeaderValue,
    urgency: Option<Urgency>,
    topic: Option<Topic>,
}

impl Message {
    /// The message for `payload` in the form `options` choose; fails when the declarative form
    /// has no title or a bad URL, the topic is invalid, or the encrypted body would exceed
    /// [`MAX_BODY`].
    pub fn new(payload: &Payload, options: &Options) -> Result<Self, DeviceError> {
        let document = match &options.declarative {
            None => plain(payload),
            Some(declarative) => declarative_form(payload, declarative)?,
        };
        let ttl = options.ttl.or(payload.time_to_live);
        let urgency = options.urgency.or(match payload.priority {
            Some(Priority::High) => Some(Urgency::High),
            Some(Priority::Normal) => Some(Urgency::Normal),
            None => None,
        });
        let topic = options.topic.as_ref().or(payload.collapse_key.as_ref());
        Message::build(
            document.to_string().into(),
            ttl,
            urgency,
            topic,
            options.pad_to,
        )
    }

    /// A message of any bytes for the service worker (`Options::declarative` must not be
    /// set: the declarative form is built from a [`Payload`]).
    pub fn raw(plaintext: impl Into<Bytes>, options: &Options) -> Result<Self, DeviceError> {
        if options.declarative.is_some() {
            return Err(DeviceError::InvalidPayload(
                "a raw web push payload cannot be declarative".into(),
            ));
        }
        let (ttl, topic) = (options.ttl, options.topic.as_ref());
        Message::build(
            plaintext.into(),
            ttl,
            options.urgency,
            topic,
            options.pad_to,
        )
    }

    fn build(
        plaintext: Bytes,
        ttl: Option<u32>,
        urgency: Option<Urgency>,
        topic: Option<&String>,
        pad_to: Option<usize>,
    ) -> Result<Self, DeviceError> {
        let topic = match topic {
            Some(topic) => {
                Some(Topic::new(topic).map_err(|e| DeviceError::InvalidPayload(e.to_string()))?)
            }
            None => None,
        };
        let unpadded = body_len(plaintext.len(), 0);
        if unpadded > MAX_BODY {
            return Err(DeviceError::PayloadTooLarge {
                size: unpadded,
                limit: MAX_BODY,
            });
        }
        let padding = pad_to.map_or(0, |target| target.min(MAX_BODY).saturating_sub(unpadded));
        let ttl = ttl.unwrap_or(DEFAULT_TTL);
        Ok(Message {
            plaintext,
            padding,
            ttl,
            ttl_header: HeaderValue::from(ttl),
            urgency,
            topic,
        })
    }

    /// The plaintext every subscription receives.
    pub fn plaintext(&self) -> &Bytes {
        &self.plaintext
    }

    /// The `TTL`, in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The `Urgency`, if set.
    pub fn urgency(&self) -> Option<Urgency> {
        self.urgency
    }

    /// The `Topic`, if set.
    pub fn topic(&self) -> Option<&Topic> {
        self.topic.as_ref()
    }

    /// Zeros padded after the plaintext.
    pub(crate) fn padding(&self) -> usize {
        self.padding
    }

    /// The size of every encrypted body of this message.
    pub fn encrypted_len(&self) -> usize {
        body_len(self.plaintext.len(), self.padding)
    }

    /// Writes `TTL`, `Urgency` and `Topic`.
    pub(crate) fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(TTL.clone(), self.ttl_header.clone());
        if let Some(urgency) = self.urgency {
            headers.insert(URGENCY.clone(), HeaderValue::from_static(urgency.as_str()));
        }
        if let Some(topic) = &self.topic {
            headers.insert(TOPIC.clone(), topic.header().clone());
        }
    }
}

/// The plain form: the payload's fields for the service worker.
fn plain(payload: &Payload) -> Value {
    let mut document = Map::new();
    insert_some(&mut document, "title", &payload.title);
    insert_some(&mut document, "body", &payload.body);
    insert_some(&mut document, "badge", &payload.badge);
    insert_some(&mut document, "sound", &payload.sound);
    insert_some(&mut document, "category", &payload.category);
    if !payload.data.is_empty() {
        document.insert("data".into(), Value::Object(payload.data.clone()));
    }
    Value::Object(document)
}

/// The declarative form (`web_push: 8030`).
fn declarative_form(payload: &Payload, declarative: &Declarative) -> Result<Value, DeviceError> {
    let navigate_ok = declarative.navigate.parse::<Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("https" | "http")) && uri.authority().is_some()
    });
    if !navigate_ok {
        return Err(DeviceError::InvalidPayload(format!(
            "declarative web push needs an http(s) URL to navigate to, got {:?}",
            declarative.navigate.chars().take(64).collect::<String>()
        )));
    }
    let mut notification = Map::new();
    insert_some(&mut notification, "title", &payload.title);
    insert_some(&mut notification, "body", &payload.body);
    notification.insert("navigate".into(), json!(declarative.navigate));
    if !payload.data.is_empty() {
        notification.insert("data".into(), Value::Object(payload.data.clone()));
    }
    notification.extend(declarative.notification.clone());
    if !notification.get("title").is_some_and(Value::is_string) {
        return Err(DeviceError::InvalidPayload(
            "declarative web push needs a title".into(),
        ));
    }
    let mut document = Map::new();
    document.insert("web_push".into(), json!(DECLARATIVE_MARKER));
    document.insert("notification".into(), Value::Object(notification));
    insert_some(&mut document, "app_badge", &payload.badge);
    if declarative.mutable {
        document.insert("mutable".into(), json!(true));
    }
    Ok(Value::Object(document))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpush::ece::MAX_PLAINTEXT;

    fn document(message: &Message) -> Value {
        serde_json::from_slice(message.plaintext()).unwrap()
    }

    #[test]
    fn the_plain_form_carries_the_payload_for_the_service_worker() {
        let payload = Payload::new()
            .title("Hi")
            .body("There")
            .badge(2)
            .data("ref", 7);
        let message = Message::new(&payload, &Options::new()).unwrap();
        assert_eq!(
            document(&message),
            json!({"title": "Hi", "body": "There", "badge": 2, "data": {"ref": 7}})
        );
        assert_eq!(message.ttl(), DEFAULT_TTL);
        let empty = Message::new(&Payload::new(), &Options::new()).unwrap();
        assert_eq!(empty.plaintext().as_ref(), b"{}");
    }

    #[test]
    fn the_declarative_form_is_shown_by_the_browser() {
        let payload = Payload::new()
            .title("Sale")
            .body("50% off")
            .badge(3)
            .data("id", 1);
        let declarative = Declarative::new("https://shop.example/sale")
            .field("lang", "en")
            .field("body", "Half price")
            .mutable(true);
        let message = Message::new(&payload, &Options::new().declarative(declarative)).unwrap();
        assert_eq!(
            document(&message),
            json!({
                "web_push": 8030,
                "notification": {"title": "Sale", "body": "Half price", "lang": "en",
                                 "navigate": "https://shop.example/sale", "data": {"id": 1}},
                "app_badge": 3,
                "mutable": true,
            })
        );
        // A title from the extra fields is enough.
        let titled = Declarative::new("https://a.example/").field("title", "T");
        assert!(Message::new(&Payload::new(), &Options::new().declarative(titled)).is_ok());
    }

    #[test]
    fn declarative_needs_a_title_and_a_url() {
        let no_title = Options::new().declarative(Declarative::new("https://a.example/"));
        let error = Message::new(&Payload::new().body("b"), &no_title).unwrap_err();
        assert_eq!(error.code(), "invalid_payload");
        assert!(error.to_string().contains("needs a title"), "{error}");
        for bad in ["/relative", "mailto:a@b", "ftp://a.example/x", ""] {
            let options = Options::new().declarative(Declarative::new(bad));
            let error = Message::new(&Payload::new().title("t"), &options).unwrap_err();
            assert!(
                error.to_string().contains("URL to navigate to"),
                "{bad}: {error}"
            );
        }
        let raw = Message::raw(
            "x",
            &Options::new().declarative(Declarative::new("https://a/")),
        );
        assert!(raw.is_err());
    }

    #[test]
    fn headers_come_from_options_then_the_payload() {
        let mut payload = Payload::new()
            .priority(Priority::High)
            .collapse_key("scores")
            .time_to_live(60);
        let message = Message::new(&payload, &Options::new()).unwrap();
        let mut headers = HeaderMap::new();
        message.write_headers(&mut headers);
        assert_eq!(headers["ttl"], "60");
        assert_eq!(headers["urgency"], "high");
        assert_eq!(headers["topic"], "scores");
        let options = Options::new()
            .ttl(0)
            .urgency(Urgency::VeryLow)
            .topic("news");
        let message = Message::new(&payload, &options).unwrap();
        let mut headers = HeaderMap::new();
        message.write_headers(&mut headers);
        assert_eq!(headers["ttl"], "0");
        assert_eq!(headers["urgency"], "very-low");
        assert_eq!(headers["topic"], "news");
        payload.collapse_key = Some("not a topic".into());
        let error = Message::new(&payload, &Options::new()).unwrap_err();
        assert_eq!(error.code(), "invalid_payload");
        let plain = Message::raw("x", &Options::new()).unwrap();
        let mut headers = HeaderMap::new();
        plain.write_headers(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["ttl"], DEFAULT_TTL.to_string().as_str());
    }

    #[test]
    fn the_size_limit_and_padding() {
        let largest = Message::raw(vec![b'x'; MAX_PLAINTEXT], &Options::new()).unwrap();
        assert_eq!(largest.encrypted_len(), MAX_BODY);
        let error = Message::raw(vec![b'x'; MAX_PLAINTEXT + 1], &Options::new()).unwrap_err();
        assert_eq!(
            error,
            DeviceError::PayloadTooLarge {
                size: MAX_BODY + 1,
                limit: MAX_BODY
            }
        );
        let padded = Message::raw("hi", &Options::new().pad_to(1024)).unwrap();
        assert_eq!(
            (padded.encrypted_len(), padded.padding()),
            (1024, 1024 - 105)
        );
        let capped = Message::raw("hi", &Options::new().pad_to(1 << 20)).unwrap();
        assert_eq!(capped.encrypted_len(), MAX_BODY);
        let shorter = Message::raw("hi", &Options::new().pad_to(10)).unwrap();
        assert_eq!((shorter.encrypted_len(), shorter.padding()), (105, 0));
    }
}
