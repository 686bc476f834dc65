//! The `messages:send` request body: a [`Message`] encoded once per session, completed per
//! device by splicing in its token.
//!
//! A [`Payload`] and the FCM [`Options`] map onto the body like this (absent fields are left
//! out of the JSON):
//!
//! | `Payload` / [`Options`]  | request field                                            |
//! |--------------------------|----------------------------------------------------------|
//! | (the device)             | `message.token`                                          |
//! | `title`, `body`          | `message.notification.title`, `.body`                    |
//! | `image`                  | `message.notification.image`                             |
//! | `data`                   | `message.data`, every value a string (below)             |
//! | `priority`               | `message.android.priority`: `"HIGH"` / `"NORMAL"`        |
//! | `time_to_live`           | `message.android.ttl`: `"<seconds>s"` (≤ 2,419,200 s)    |
//! | `collapse_key`           | `message.android.collapse_key`                           |
//! | `restricted_package_name`| `message.android.restricted_package_name`                |
//! | `sound`                  | `message.android.notification.sound`                     |
//! | `category`               | `message.android.notification.click_action`              |
//! | `badge`                  | `message.android.notification.notification_count`        |
//! | `android_notification`   | merged into `message.android.notification` (wins)        |
//! | `apns`, `webpush`        | `message.apns`, `message.webpush`, verbatim              |
//! | `analytics_label`        | `message.fcm_options.analytics_label`                    |
//! | `validate_only` (sender) | `validate_only: true`, only when set                     |
//!
//! `content_available`, `expiry` and `apns_push_type` are APNs settings: use `apns` to send
//! them to iOS devices through FCM.
//!
//! # `data` values
//! FCM only takes strings. A string is sent as is; a number or a boolean as its JSON text
//! (`1.5`, `true`); an array or an object as its compact JSON text (`[1,2]`, `{"a":1}`), for
//! the app to parse. `null` has no faithful string form and is refused
//! ([`DeviceError::InvalidPayload`] naming the key), as are the keys FCM reserves (`from`,
//! `message_type`, and any key starting with `google` or `gcm`).
//!
//! # Size
//! The message object without its token must fit in [`MAX_MESSAGE_SIZE`] (4096) bytes; it is
//! checked when the session's message is built, before anything is sent.
//!
//! # Encoding once
//! The body for a token is `{"message":{"token":` + the token as a JSON string + the rest of
//! the message object, encoded once + `}` (or `,"validate_only":true}`). No placeholder is
//! searched and replaced; a property test proves the splice byte-identical to `serde_json`
//! encoding [`SendRequest`].

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::feedback::DeviceError;
use crate::payload::{Payload, Priority};

/// Largest message object (without its token) FCM accepts, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 4096;

/// Longest `android.ttl` FCM accepts: 28 days, in seconds.
pub const MAX_TTL_SECS: u32 = 2_419_200;

/// FCM settings that are not part of [`Payload`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// URL of an image shown in the notification.
    pub image: Option<String>,
    /// Only deliver to tokens registered by this Android package.
    pub restricted_package_name: Option<String>,
    /// Extra `android.notification` fields (`channel_id`, `icon`, `color`, `tag`, ...).
    pub android_notification: Map<String, Value>,
    /// The `apns` object for iOS devices reached through FCM (`headers`, `payload`), verbatim.
    pub apns: Option<Map<String, Value>>,
    /// The `webpush` object for web clients, verbatim.
    pub webpush: Option<Map<String, Value>>,
    /// The label for FCM's delivery analytics.
    pub analytics_label: Option<String>,
}

impl Options {
    /// No options.
    pub fn new() -> Self {
        Options::default()
    }

    /// Sets the notification image URL.
    pub fn image(mut self, url: impl Into<String>) -> Self {
        self.image = Some(url.into());
        self
    }

    /// Sets the restricted package name.
    pub fn restricted_package_name(mut self, name: impl Into<String>) -> Self {
        self.restricted_package_name = Some(name.into());
        self
    }

    /// Adds an `android.notification` field.
    pub fn android_notification(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.android_notification.insert(key.into(), value.into());
        self
    }

    /// Sets the `apns` object.
    pub fn apns(mut self, apns: Map<String, Value>) -> Self {
        self.apns = Some(apns);
        self
    }

    /// Sets the `webpush` object.
    pub fn webpush(mut self, webpush: Map<String, Value>) -> Self {
        self.webpush = Some(webpush);
        self
    }

    /// Sets the analytics label.
    pub fn analytics_label(mut self, label: impl Into<String>) -> Self {
        self.analytics_label = Some(label.into());
        self
    }
}

/// A full `messages:send` body, as it travels. Servers (and tests) deserialize requests into
/// it; [`Message::body_for`] produces exactly its `serde_json` encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The message.
    pub message: TargetedMessage,
    /// Validate without delivering.
    #[serde(default, skip_serializing_if = "is_false")]
    pub validate_only: bool,
}

/// A message with its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetedMessage {
    /// The registration token.
    pub token: String,
    /// Everything else.
    #[serde(flatten)]
    pub content: Content,
}

/// The message fields other than the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Content {
    /// What every platform shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    /// Application data, strings only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Android settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<AndroidConfig>,
    /// iOS settings, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<Map<String, Value>>,
    /// Web push settings, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webpush: Option<Map<String, Value>>,
    /// Options for every platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm_options: Option<FcmOptions>,
}

/// `message.notification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `message.android`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AndroidConfig {
    /// Collapse key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    /// `"HIGH"` or `"NORMAL"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Time to live, `"<seconds>s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Only for this package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_package_name: Option<String>,
    /// Android notification fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Map<String, Value>>,
}

/// `message.fcm_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcmOptions {
    /// Analytics label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics_label: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A validated message, encoded once: the message object after its `token`. Cloning is
/// cheap (the bytes are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `}` or `,"notification":...}`: the message object after the token.
    rest: Bytes,
    /// The time to live, for the sender's "do not retry past it" rule.
    ttl: Option<u32>,
}

const PREFIX: &[u8] = br#"{"message":{"token":"#;
const VALIDATE_ONLY: &[u8] = br#","validate_only":true}"#;

impl Message {
    /// Builds, validates and encodes the message for `payload` and `options`.
    ///
    /// Fails with [`DeviceError::InvalidPayload`] for a reserved or `null` data value, a time
    /// to live over [`MAX_TTL_SECS`], or an `android_notification` that cannot merge, and with
    /// [`DeviceError::PayloadTooLarge`] over [`MAX_MESSAGE_SIZE`].
    pub fn new(payload: &Payload, options: &Options) -> Result<Self, DeviceError> {
        let content = content(payload, options)?;
        let encoded = serde_json::to_vec(&content)
            .map_err(|error| DeviceError::InvalidPayload(error.to_string()))?;
        if encoded.len() > MAX_MESSAGE_SIZE {
            return Err(DeviceError::PayloadTooLarge {
                size: encoded.len(),
                limit: MAX_MESSAGE_SIZE,
            });
        }
        // `encoded` is `{}` or `{"field":...}`: what follows the opening brace is `}` or
        // `"field":...}`, which a comma separates from the token.
        let fields = encoded.get(1..).unwrap_or_default();
        let mut rest = BytesMut::with_capacity(encoded.len());
        if fields != b"}" {
            rest.put_u8(b',');
        }
        rest.put_slice(fields);
        Ok(Message {
            rest: rest.freeze(),
            ttl: payload.time_to_live,
        })
    }

    /// The request body for `token`, byte-identical to `serde_json` encoding the
    /// [`SendRequest`].
    pub fn body_for(&self, token: &str, validate_only: bool) -> Bytes {
        let tail = if validate_only { VALIDATE_ONLY } else { b"}" };
        let mut body =
            BytesMut::with_capacity(PREFIX.len() + token.len() + 2 + self.rest.len() + tail.len());
        body.put_slice(PREFIX);
        write_json_string(&mut body, token);
        body.put_slice(&self.rest);
        body.put_slice(tail);
        body.freeze()
    }

    /// Size of the message object without its token (what [`MAX_MESSAGE_SIZE`] limits).
    pub fn encoded_len(&self) -> usize {
        // `{` plus the fields; `rest` is `,fields}` or `}`.
        self.rest.len().max(2)
    }

    /// The time to live in seconds, when set.
    pub fn ttl(&self) -> Option<u32> {
        self.ttl
    }
}

/// The typed message content for `payload` and `options`.
fn content(payload: &Payload, options: &Options) -> Result<Content, DeviceError> {
    let invalid = DeviceError::InvalidPayload;
    let mut data = BTreeMap::new();
    for (key, value) in &payload.data {
        if is_reserved(key) {
            return Err(invalid(format!("the data key {key:?} is reserved by FCM")));
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Null => {
                return Err(invalid(format!(
                    "the data value of {key:?} is null; FCM data values must be strings"
                )));
            }
            other => other.to_string(),
        };
        data.insert(key.clone(), text);
    }
    if let Some(ttl) = payload.time_to_live.filter(|ttl| *ttl > MAX_TTL_SECS) {
        return Err(invalid(format!(
            "time_to_live {ttl} is over FCM's maximum of {MAX_TTL_SECS} seconds (28 days)"
        )));
    }
    let notification = Notification {
        title: payload.title.clone(),
        body: payload.body.clone(),
        image: options.image.clone(),
    };
    let mut android_notification = Map::new();
    crate::payload::insert_some(&mut android_notification, "sound", &payload.sound);
    crate::payload::insert_some(&mut android_notification, "click_action", &payload.category);
    crate::payload::insert_some(
        &mut android_notification,
        "notification_count",
        &payload.badge,
    );
    android_notification.extend(options.android_notification.clone());
    let android = AndroidConfig {
        collapse_key: payload.collapse_key.clone(),
        priority: payload.priority.map(|priority| {
            match priority {
                Priority::High => "HIGH",
                Priority::Normal => "NORMAL",
            }
            .to_owned()
        }),
        ttl: payload.time_to_live.map(|ttl| format!("{ttl}s")),
        restricted_package_name: options.restricted_package_name.clone(),
        notification: Some(android_notification).filter(|n| !n.is_empty()),
    };
    Ok(Content {
        notification: Some(notification).filter(|n| *n != Notification::default()),
        data,
        android: Some(android).filter(|a| *a != AndroidConfig::default()),
        apns: options.apns.clone(),
        webpush: options.webpush.clone(),
        fcm_options: options.analytics_label.clone().map(|label| FcmOptions {
            analytics_label: Some(label),
        }),
    })
}

/// The data keys FCM refuses.
fn is_reserved(key: &str) -> bool {
    key == "from" || key == "message_type" || key.starts_with("google") || key.starts_with("gcm")
}

/// Writes `text` as a JSON string, escaping exactly as `serde_json` does.
fn write_json_string(out: &mut BytesMut, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put_u8(b'"');
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.put_slice(&text.as_bytes()[start..index]);
        if escape.is_empty() {
            out.put_slice(b"\\u00");
            out.put_u8(HEX[usize::from(byte >> 4)]);
            out.put_u8(HEX[usize::from(byte & 0x0f)]);
        } else {
            out.put_slice(escape);
        }
        start = index + 1;
    }
    out.put_slice(&text.as_bytes()[start..]);
    out.put_u8(b'"');
}

#[cfg(test)]
mod tests;
