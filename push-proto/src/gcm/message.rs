//! The GCM request body: a validated [`Message`], [`Encoded`] once per session, plus the
//! `registration_ids` of one batch.
//!
//! A [`Payload`] maps onto the body like this (absent fields are left out of the JSON):
//!
//! | `Payload` / [`MessageOptions`] | request field                                         |
//! |--------------------------------|-------------------------------------------------------|
//! | `data`                         | `data`, as given (only when not empty)                |
//! | `title`, `body`, `sound`       | `notification.title`, `.body`, `.sound`               |
//! | `badge`                        | `notification.badge`, as a string                     |
//! | `category`                     | `notification.click_action`                           |
//! | `collapse_key`                 | `collapse_key`                                        |
//! | `time_to_live`                 | `time_to_live` (at most 2,419,200 s)                  |
//! | `priority`                     | `priority`: `"high"` / `"normal"`                     |
//! | `content_available`            | `content_available: true`                             |
//! | `dry_run`                      | `dry_run: true`                                       |
//! | `restricted_package_name`      | `restricted_package_name`                             |
//!
//! `notification` is sent only when one of its fields is set. `expiry` is APNs-only and ignored.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::feedback::DeviceError;
use crate::payload::{Payload, Priority};

/// Longest `time_to_live` GCM accepts: four weeks, in seconds.
pub const MAX_TIME_TO_LIVE: u32 = 2_419_200;

/// Largest serialized `data` object GCM accepts, in bytes.
pub const MAX_DATA_LEN: usize = 4096;

/// Per-message settings that are GCM-specific and not part of [`Payload`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// Ask the service to validate the request without delivering it.
    pub dry_run: bool,
    /// Only deliver to tokens registered by this Android package.
    pub restricted_package_name: Option<String>,
}

/// The display part of a GCM message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Title shown above the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Sound to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// Badge number (iOS), as a string as GCM expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
    /// Action run when the user taps the notification (APNs category).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_action: Option<String>,
}

/// One GCM message: the request body minus its targets, validated once and sent to many
/// batches of tokens.
///
/// Build it with [`Message::new`]; deserializing (for servers and tests) does not validate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collapse_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_to_live: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    content_available: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restricted_package_name: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notification: Option<Notification>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A full request body as it travels: targets plus the message fields. Servers (and tests)
/// deserialize requests into this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestBody {
    /// The batch of tokens the message goes to.
    pub registration_ids: Vec<String>,
    /// Everything else.
    #[serde(flatten)]
    pub message: Message,
}

/// A [`Message`] encoded once, for every batch it goes to: its JSON fields in a shared
/// buffer (cheap to clone per device) and its time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The message's JSON object, without `registration_ids`.
    fields: Bytes,
    time_to_live: Option<u32>,
}

impl Encoded {
    /// True when `self` and `other` are the same message: cheap for clones of one encoding
    /// (one shared buffer), else a comparison of the bytes.
    pub(crate) fn same_as(&self, other: &Encoded) -> bool {
        let shared = self.fields.as_ptr() == other.fields.as_ptr()
            && self.fields.len() == other.fields.len();
        (shared || self.fields == other.fields) && self.time_to_live == other.time_to_live
    }

    /// The message's `time_to_live` in seconds, if set.
    pub fn time_to_live(&self) -> Option<u32> {
        self.time_to_live
    }

    /// The size of the encoded message fields, in bytes.
    pub(crate) fn encoded_len(&self) -> usize {
        self.fields.len()
    }

    /// The JSON request body sending this message to `registration_ids`:
    /// `{"registration_ids":[...], <message fields>}`.
    pub fn request_body(&self, registration_ids: &[&str]) -> Result<Bytes, DeviceError> {
        let ids_len: usize = registration_ids.iter().map(|id| id.len() + 3).sum();
        let mut body = Vec::with_capacity(24 + ids_len + self.fields.len());
        body.extend_from_slice(br#"{"registration_ids":"#);
        serde_json::to_writer(&mut body, registration_ids)
            .map_err(|error| DeviceError::InvalidPayload(error.to_string()))?;
        match self.fields.strip_prefix(b"{") {
            Some(rest) if rest != b"}" => {
                body.push(b',');
                body.extend_from_slice(rest);
            }
            _ => body.push(b'}'),
        }
        Ok(Bytes::from(body))
    }
}

impl Message {
    /// Builds and validates the message for `payload`.
    ///
    /// Fails with [`DeviceError::InvalidPayload`] for a reserved data key (`from`, `gcm`,
    /// `google…`) or a `time_to_live` over [`MAX_TIME_TO_LIVE`], and with
    /// [`DeviceError::PayloadTooLarge`] when the serialized `data` exceeds [`MAX_DATA_LEN`].
    pub fn new(payload: &Payload, options: &MessageOptions) -> Result<Self, DeviceError> {
        if let Some(key) = payload.data.keys().find(|key| is_reserved(key)) {
            return Err(DeviceError::InvalidPayload(format!(
                "the data key {key:?} is reserved by GCM"
            )));
        }
        if let Some(ttl) = payload.time_to_live.filter(|ttl| *ttl > MAX_TIME_TO_LIVE) {
            return Err(DeviceError::InvalidPayload(format!(
                "time_to_live {ttl} is over the maximum of {MAX_TIME_TO_LIVE} seconds"
            )));
        }
        let size = serde_json::to_vec(&payload.data)
            .map_err(|error| DeviceError::InvalidPayload(error.to_string()))?
            .len();
        if size > MAX_DATA_LEN {
            return Err(DeviceError::PayloadTooLarge {
                size,
                limit: MAX_DATA_LEN,
            });
        }
        let notification = Notification {
            title: payload.title.clone(),
            body: payload.body.clone(),
            sound: payload.sound.clone(),
            badge: payload.badge.map(|badge| badge.to_string()),
            click_action: payload.category.clone(),
        };
        Ok(Message {
            collapse_key: payload.collapse_key.clone(),
            time_to_live: payload.time_to_live,
            priority: payload.priority.map(|priority| {
                match priority {
                    Priority::High => "high",
                    Priority::Normal => "normal",
                }
                .to_owned()
            }),
            content_available: payload.content_available,
            dry_run: options.dry_run,
            restricted_package_name: options.restricted_package_name.clone(),
            data: payload.data.clone(),
            notification: (notification != Notification::default()).then_some(notification),
        })
    }

    /// The message's `time_to_live` in seconds, if set.
    pub fn time_to_live(&self) -> Option<u32> {
        self.time_to_live
    }

    /// The custom data.
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// The display notification, if any of its fields is set.
    pub fn notification(&self) -> Option<&Notification> {
        self.notification.as_ref()
    }

    /// The message encoded once for all its batches.
    pub fn encode(&self) -> Result<Encoded, DeviceError> {
        let fields = serde_json::to_vec(self)
            .map_err(|error| DeviceError::InvalidPayload(error.to_string()))?;
        Ok(Encoded {
            fields: Bytes::from(fields),
            time_to_live: self.time_to_live,
        })
    }
}

/// Data keys GCM reserves for itself.
fn is_reserved(key: &str) -> bool {
    key == "from" || key == "gcm" || key.starts_with("google")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn worked_example_body() {
        let payload = Payload::new()
            .collapse_key("news")
            .time_to_live(3600)
            .data("title", "Hi")
            .data("ref", "123");
        let message = Message::new(&payload, &MessageOptions::default()).unwrap();
        let body = message
            .encode()
            .unwrap()
            .request_body(&["tokA", "tokB", "tokC", "tokD"])
            .unwrap();
        // `data` keys come out sorted; JSON objects are unordered, so this equals the example.
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"registration_ids":["tokA","tokB","tokC","tokD"],"collapse_key":"news","time_to_live":3600,"data":{"ref":"123","title":"Hi"}}"#
        );
    }

    #[test]
    fn notification_and_options() {
        let payload = Payload::new()
            .title("T")
            .badge(3)
            .category("OPEN")
            .priority(Priority::Normal)
            .content_available(true);
        let options = MessageOptions {
            dry_run: true,
            restricted_package_name: Some("com.example".into()),
        };
        let body = Message::new(&payload, &options)
            .unwrap()
            .encode()
            .unwrap()
            .request_body(&["a"])
            .unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({
                "registration_ids": ["a"],
                "priority": "normal",
                "content_available": true,
                "dry_run": true,
                "restricted_package_name": "com.example",
                "notification": {"title": "T", "badge": "3", "click_action": "OPEN"}
            })
        );
    }

    #[test]
    fn the_same_message_whether_shared_or_encoded_twice() {
        let encode = |payload: &Payload| {
            let message = Message::new(payload, &MessageOptions::default()).unwrap();
            message.encode().unwrap()
        };
        let hello = encode(&Payload::new().body("hello"));
        assert!(hello.same_as(&hello.clone()));
        assert!(hello.same_as(&encode(&Payload::new().body("hello"))));
        assert!(!hello.same_as(&encode(&Payload::new().body("bye"))));
        let lasting = encode(&Payload::new().body("hello").time_to_live(60));
        assert!(!hello.same_as(&lasting));
    }

    #[test]
    fn an_empty_message_still_makes_an_object() {
        let encoded = Message::new(&Payload::new(), &MessageOptions::default())
            .unwrap()
            .encode()
            .unwrap();
        let body = encoded.request_body(&["a\"b"]).unwrap();
        assert_eq!(&body[..], br#"{"registration_ids":["a\"b"]}"#);
    }

    #[test]
    fn validation() {
        let options = MessageOptions::default();
        for key in ["from", "gcm", "google", "google.message_id"] {
            let payload = Payload::new().data(key, 1);
            assert!(matches!(
                Message::new(&payload, &options),
                Err(DeviceError::InvalidPayload(_))
            ));
        }
        assert!(Message::new(&Payload::new().data("fromage", 1), &options).is_ok());
        let ttl = Payload::new().time_to_live(MAX_TIME_TO_LIVE + 1);
        assert!(matches!(
            Message::new(&ttl, &options),
            Err(DeviceError::InvalidPayload(_))
        ));
        assert!(Message::new(&Payload::new().time_to_live(MAX_TIME_TO_LIVE), &options).is_ok());
        // {"k":"xxx…"} is 8 bytes of syntax plus the value.
        let fits = Payload::new().data("k", "x".repeat(MAX_DATA_LEN - 8));
        assert!(Message::new(&fits, &options).is_ok());
        let big = Payload::new().data("k", "x".repeat(MAX_DATA_LEN - 7));
        assert_eq!(
            Message::new(&big, &options),
            Err(DeviceError::PayloadTooLarge {
                size: MAX_DATA_LEN + 1,
                limit: MAX_DATA_LEN
            })
        );
    }

    fn payloads() -> impl Strategy<Value = Payload> {
        (
            proptest::option::of(".{0,20}"),
            proptest::option::of(any::<u32>()),
            proptest::option::of(0..=MAX_TIME_TO_LIVE),
            proptest::option::of("[a-z]{1,8}"),
            any::<bool>(),
            proptest::collection::btree_map("[a-z]{1,6}", ".{0,12}", 0..5),
        )
            .prop_map(|(title, badge, ttl, collapse, background, data)| {
                let mut payload = Payload::new().content_available(background);
                payload.title = title;
                payload.badge = badge;
                payload.time_to_live = ttl;
                payload.collapse_key = collapse;
                for (key, value) in data {
                    payload = payload.data(key, value);
                }
                payload
            })
    }

    proptest! {
        #[test]
        fn request_body_round_trips(
            payload in payloads(),
            ids in proptest::collection::vec("[!-~]{1,40}", 1..20),
        ) {
            prop_assume!(!payload.data.keys().any(|key| is_reserved(key)));
            let message = Message::new(&payload, &MessageOptions::default()).unwrap();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let encoded = message.encode().unwrap();
            prop_assert_eq!(encoded.time_to_live(), payload.time_to_live);
            let body = encoded.request_body(&refs).unwrap();
            let parsed: RequestBody = serde_json::from_slice(&body).unwrap();
            prop_assert_eq!(&parsed.registration_ids, &ids);
            prop_assert_eq!(&parsed.message, &message);
            prop_assert_eq!(parsed.message.time_to_live(), payload.time_to_live);
            prop_assert_eq!(parsed.message.data(), &payload.data);
        }
    }
}
