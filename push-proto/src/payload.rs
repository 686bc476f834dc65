//! The notification content, and how it maps onto each service's JSON.
//!
//! One [`Payload`] is written once and sent to many devices. It maps onto the services like this:
//!
//! | `Payload` field     | APNs (binary gateway)                  | GCM (HTTP JSON)                     |
//! |---------------------|----------------------------------------|-------------------------------------|
//! | `title`, `body`     | `aps.alert.title`, `aps.alert.body`    | `notification.title`, `.body`       |
//! | `badge`             | `aps.badge`                            | `notification.badge` (string)       |
//! | `sound`             | `aps.sound`                            | `notification.sound`                |
//! | `category`          | `aps.category`                         | `notification.click_action`         |
//! | `content_available` | `aps.content-available: 1`             | `content_available: true`           |
//! | `data`              | custom keys at the top level           | `data`                              |
//! | `priority`          | frame item 5: high 10, normal 5        | `priority`: `"high"` / `"normal"`   |
//! | `expiry`            | frame item 4 (UNIX seconds)            | —                                   |
//! | `time_to_live`      | —                                      | `time_to_live` (≤ 2,419,200 s)      |
//! | `collapse_key`      | —                                      | `collapse_key`                      |
//! | `apns_push_type`    | HTTP/2 `apns-push-type` (default: `alert`, or `background` when only `content_available`) | — |
//!
//! FCM HTTP v1 has its own table, in [`fcm::message`](crate::fcm::message).
//!
//! Unlike the Go library this project grew from, the body is never dropped for iOS, badge and
//! sound are typed (no panics on odd `data` values) and are not copied into the custom keys,
//! and data keys are sent as given (no `Title`/`Content` renaming).

use serde_json::{Map, Value, json};

use crate::feedback::DeviceError;

/// How urgently the services should deliver a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Deliver now (APNs 10, GCM `high`).
    High,
    /// Deliver when convenient for the device's battery (APNs 5, GCM `normal`).
    Normal,
}

/// The content of a notification, written once and sent to many devices.
///
/// Build it with the chained setters; every field is public to read and adjust.
///
/// ```
/// use push_proto::Payload;
/// let payload = Payload::new()
///     .title("Hello")
///     .body("A new product awaits you.")
///     .badge(1)
///     .data("reference_id", 123);
/// assert_eq!(payload.title.as_deref(), Some("Hello"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Payload {
    /// Short title shown above the body.
    pub title: Option<String>,
    /// The message text.
    pub body: Option<String>,
    /// Application data delivered with the notification.
    pub data: Map<String, Value>,
    /// App icon badge number.
    pub badge: Option<u32>,
    /// Sound to play (`"default"` or a bundled sound name).
    pub sound: Option<String>,
    /// Notification category (APNs) / click action (GCM).
    pub category: Option<String>,
    /// Wake the app in the background to fetch content.
    pub content_available: bool,
    /// Delivery priority; services default to high when unset, except that an APNs
    /// notification with only `content_available` is sent at normal priority, as Apple requires.
    pub priority: Option<Priority>,
    /// APNs expiry as UNIX seconds: the service stores and retries until then. `None` sends 0:
    /// deliver once, now, or never.
    pub expiry: Option<u32>,
    /// GCM / FCM time to live in seconds (0..=2,419,200); FCM does not retry a message
    /// past it.
    pub time_to_live: Option<u32>,
    /// GCM / FCM collapse key: queued messages with the same key replace each other.
    pub collapse_key: Option<String>,
    /// The APNs HTTP/2 push type (`voip`, `liveactivity`, ...), when not the default.
    pub apns_push_type: Option<crate::apns::http2::PushType>,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Payload::default()
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Adds one custom data entry.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.insert(key.into(), value.into());
        self
    }

    /// Sets the badge number.
    pub fn badge(mut self, badge: u32) -> Self {
        self.badge = Some(badge);
        self
    }

    /// Sets the sound.
    pub fn sound(mut self, sound: impl Into<String>) -> Self {
        self.sound = Some(sound.into());
        self
    }

    /// Sets the category / click action.
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    /// Marks the notification as a background content update.
    pub fn content_available(mut self, content_available: bool) -> Self {
        self.content_available = content_available;
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the APNs expiry (UNIX seconds).
    pub fn expiry(mut self, unix_seconds: u32) -> Self {
        self.expiry = Some(unix_seconds);
        self
    }

    /// Sets the GCM time to live in seconds.
    pub fn time_to_live(mut self, seconds: u32) -> Self {
        self.time_to_live = Some(seconds);
        self
    }

    /// Sets the GCM collapse key.
    pub fn collapse_key(mut self, key: impl Into<String>) -> Self {
        self.collapse_key = Some(key.into());
        self
    }

    /// Sets the APNs HTTP/2 push type.
    pub fn apns_push_type(mut self, push_type: crate::apns::http2::PushType) -> Self {
        self.apns_push_type = Some(push_type);
        self
    }

    /// True when the payload shows nothing to the user (no title, body, badge or sound).
    fn is_silent(&self) -> bool {
        self.title.is_none() && self.body.is_none() && self.badge.is_none() && self.sound.is_none()
    }

    /// The APNs priority byte: 10 (now) or 5 (power-efficient).
    pub fn apns_priority(&self) -> u8 {
        match self.priority {
            Some(Priority::Normal) => 5,
            Some(Priority::High) => 10,
            None if self.content_available && self.is_silent() => 5,
            None => 10,
        }
    }

    /// The APNs JSON document: `aps` plus the custom keys at the top level.
    ///
    /// Fails when `data` uses the reserved key `aps`. The size limit depends on the frame
    /// format and is checked by the gateway.
    pub fn to_apns_json(&self) -> Result<Vec<u8>, DeviceError> {
        if self.data.contains_key("aps") {
            return Err(DeviceError::InvalidPayload(
                "the data key \"aps\" is reserved by APNs".into(),
            ));
        }
        let mut aps = Map::new();
        let mut alert = Map::new();
        insert_some(&mut alert, "title", &self.title);
        insert_some(&mut alert, "body", &self.body);
        if !alert.is_empty() {
            aps.insert("alert".into(), Value::Object(alert));
        }
        insert_some(&mut aps, "badge", &self.badge);
        insert_some(&mut aps, "sound", &self.sound);
        insert_some(&mut aps, "category", &self.category);
        if self.content_available {
            aps.insert("content-available".into(), json!(1));
        }
        let mut document = self.data.clone();
        document.insert("aps".into(), Value::Object(aps));
        Ok(Value::Object(document).to_string().into_bytes())
    }
}

/// Inserts `key: value` when `value` is present.
pub(crate) fn insert_some<T: Into<Value> + Clone>(
    map: &mut Map<String, Value>,
    key: &str,
    value: &Option<T>,
) {
    if let Some(value) = value {
        map.insert(key.into(), value.clone().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_json_has_alert_badge_sound_and_top_level_custom_keys() {
        let payload = Payload::new()
            .title("Hi")
            .body("There")
            .badge(3)
            .sound("default")
            .data("ref", 123);
        let json: Value = serde_json::from_slice(&payload.to_apns_json().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "aps": {"alert": {"title": "Hi", "body": "There"}, "badge": 3, "sound": "default"},
                "ref": 123
            })
        );
    }

    #[test]
    fn apns_json_is_compact_and_deterministic() {
        let payload = Payload::new().body("Hi").data("z", 1).data("a", 2);
        assert_eq!(
            String::from_utf8(payload.to_apns_json().unwrap()).unwrap(),
            r#"{"a":2,"aps":{"alert":{"body":"Hi"}},"z":1}"#
        );
    }

    #[test]
    fn background_only_payloads_use_priority_5() {
        let background = Payload::new().content_available(true);
        assert_eq!(background.apns_priority(), 5);
        let json: Value = serde_json::from_slice(&background.to_apns_json().unwrap()).unwrap();
        assert_eq!(json, json!({"aps": {"content-available": 1}}));
        assert_eq!(background.clone().body("x").apns_priority(), 10);
        assert_eq!(background.priority(Priority::High).apns_priority(), 10);
    }

    #[test]
    fn reserved_aps_key_is_an_error_not_an_overwrite() {
        let payload = Payload::new().data("aps", "oops");
        assert!(matches!(
            payload.to_apns_json(),
            Err(DeviceError::InvalidPayload(_))
        ));
    }
}
