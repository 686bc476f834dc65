//! The JSON payload: the full `aps` dictionary plus custom keys, and the size check.
//!
//! | field | JSON |
//! |---|---|
//! | [`Alert`] | `aps.alert.{title, subtitle, body, title-loc-key, title-loc-args, subtitle-loc-key, subtitle-loc-args, loc-key, loc-args, launch-image}` |
//! | `badge` | `aps.badge` |
//! | [`Sound`] | `aps.sound`: a name, or `{"critical": 1, "name": ..., "volume": ...}` |
//! | `thread_id` | `aps.thread-id` |
//! | `category` | `aps.category` |
//! | `content_available` | `aps.content-available: 1` |
//! | `mutable_content` | `aps.mutable-content: 1` |
//! | `target_content_id` | `aps.target-content-id` |
//! | [`InterruptionLevel`] | `aps.interruption-level` |
//! | `relevance_score` | `aps.relevance-score` |
//! | [`LiveActivity`] | `aps.{timestamp, event, content-state, stale-date, dismissal-date}` |
//! | `custom` | top-level keys beside `aps` |

use bytes::Bytes;
use serde_json::{Map, Number, Value};

use super::headers::PushType;
use crate::feedback::DeviceError;
use crate::payload::{Payload, insert_some};

/// `aps.alert`: what the user sees. Localized variants name strings in the app bundle.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Alert {
    /// `title`.
    pub title: Option<String>,
    /// `subtitle`.
    pub subtitle: Option<String>,
    /// `body`.
    pub body: Option<String>,
    /// `title-loc-key`: localization key of the title.
    pub title_loc_key: Option<String>,
    /// `title-loc-args`: arguments of the localized title.
    pub title_loc_args: Vec<String>,
    /// `subtitle-loc-key`: localization key of the subtitle.
    pub subtitle_loc_key: Option<String>,
    /// `subtitle-loc-args`: arguments of the localized subtitle.
    pub subtitle_loc_args: Vec<String>,
    /// `loc-key`: localization key of the body.
    pub loc_key: Option<String>,
    /// `loc-args`: arguments of the localized body.
    pub loc_args: Vec<String>,
    /// `launch-image`.
    pub launch_image: Option<String>,
}

impl Alert {
    fn to_value(&self) -> Option<Value> {
        let mut alert = Map::new();
        insert_some(&mut alert, "title", &self.title);
        insert_some(&mut alert, "subtitle", &self.subtitle);
        insert_some(&mut alert, "body", &self.body);
        insert_some(&mut alert, "title-loc-key", &self.title_loc_key);
        insert_list(&mut alert, "title-loc-args", &self.title_loc_args);
        insert_some(&mut alert, "subtitle-loc-key", &self.subtitle_loc_key);
        insert_list(&mut alert, "subtitle-loc-args", &self.subtitle_loc_args);
        insert_some(&mut alert, "loc-key", &self.loc_key);
        insert_list(&mut alert, "loc-args", &self.loc_args);
        insert_some(&mut alert, "launch-image", &self.launch_image);
        (!alert.is_empty()).then_some(Value::Object(alert))
    }
}

fn insert_list(map: &mut Map<String, Value>, key: &str, list: &[String]) {
    if !list.is_empty() {
        let values = list.iter().cloned().map(Value::String).collect();
        map.insert(key.into(), Value::Array(values));
    }
}

/// `aps.sound`.
#[derive(Debug, Clone, PartialEq)]
pub enum Sound {
    /// A sound file in the bundle, or `default`.
    Name(String),
    /// A critical alert sound (needs Apple's entitlement): plays even when muted.
    Critical {
        /// The sound file, or `default`.
        name: String,
        /// Volume from 0.0 to 1.0 (clamped); `None` omits it.
        volume: Option<f64>,
    },
}

impl Sound {
    fn to_value(&self) -> Value {
        match self {
            Sound::Name(name) => Value::String(name.clone()),
            Sound::Critical { name, volume } => {
                let mut sound = Map::new();
                sound.insert("critical".into(), Value::from(1));
                sound.insert("name".into(), Value::String(name.clone()));
                if let Some(volume) = volume.and_then(|v| Number::from_f64(v.clamp(0.0, 1.0))) {
                    sound.insert("volume".into(), Value::Number(volume));
                }
                Value::Object(sound)
            }
        }
    }
}

/// `aps.interruption-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterruptionLevel {
    /// `passive`: no sound, no wake.
    Passive,
    /// `active`: the default.
    Active,
    /// `time-sensitive`: breaks through Focus.
    TimeSensitive,
    /// `critical`: breaks through mute (needs Apple's entitlement).
    Critical,
}

impl InterruptionLevel {
    /// The JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptionLevel::Passive => "passive",
            InterruptionLevel::Active => "active",
            InterruptionLevel::TimeSensitive => "time-sensitive",
            InterruptionLevel::Critical => "critical",
        }
    }
}

/// `aps.event` of a Live Activity push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveActivityEvent {
    /// `start`.
    Start,
    /// `update`.
    Update,
    /// `end`.
    End,
}

impl LiveActivityEvent {
    /// The JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveActivityEvent::Start => "start",
            LiveActivityEvent::Update => "update",
            LiveActivityEvent::End => "end",
        }
    }
}

/// The Live Activity fields of `aps` (push type `liveactivity`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LiveActivity {
    /// `timestamp`: UNIX seconds of this update; older updates are dropped by the device.
    pub timestamp: u64,
    /// `event`.
    pub event: LiveActivityEvent,
    /// `content-state`: the activity's dynamic state, as the app's `ContentState` decodes it.
    pub content_state: Map<String, Value>,
    /// `stale-date`: UNIX seconds after which the activity is shown as outdated.
    pub stale_date: Option<u64>,
    /// `dismissal-date`: UNIX seconds at which an ended activity leaves the lock screen.
    pub dismissal_date: Option<u64>,
}

impl LiveActivity {
    /// A Live Activity `event` at `timestamp` with `content_state`.
    pub fn new(
        timestamp: u64,
        event: LiveActivityEvent,
        content_state: Map<String, Value>,
    ) -> Self {
        LiveActivity {
            timestamp,
            event,
            content_state,
            stale_date: None,
            dismissal_date: None,
        }
    }
}

/// One notification's JSON document: the `aps` dictionary and custom keys.
///
/// Build it from a [`Payload`] with [`Notification::from_payload`] and add HTTP/2-era fields
/// with the setters; every field is public.
///
/// ```
/// use push_proto::Payload;
/// use push_proto::apns::http2::{InterruptionLevel, Notification, PushType};
///
/// let notification = Notification::from_payload(&Payload::new().title("Hi").badge(2))
///     .subtitle("there")
///     .thread_id("chat-7")
///     .interruption_level(InterruptionLevel::TimeSensitive);
/// let json = notification.encode(PushType::Alert).unwrap();
/// assert_eq!(
///     &json[..],
///     br#"{"aps":{"alert":{"subtitle":"there","title":"Hi"},"badge":2,"interruption-level":"time-sensitive","thread-id":"chat-7"}}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Notification {
    /// `aps.alert`.
    pub alert: Alert,
    /// `aps.badge` (0 clears it).
    pub badge: Option<u32>,
    /// `aps.sound`.
    pub sound: Option<Sound>,
    /// `aps.thread-id`: groups notifications.
    pub thread_id: Option<String>,
    /// `aps.category`: the actionable notification type.
    pub category: Option<String>,
    /// `aps.content-available: 1`: wake the app in the background.
    pub content_available: bool,
    /// `aps.mutable-content: 1`: let the notification service extension modify it.
    pub mutable_content: bool,
    /// `aps.target-content-id`: the window to bring forward.
    pub target_content_id: Option<String>,
    /// `aps.interruption-level`.
    pub interruption_level: Option<InterruptionLevel>,
    /// `aps.relevance-score`, 0.0 to 1.0 (clamped).
    pub relevance_score: Option<f64>,
    /// The Live Activity fields.
    pub live_activity: Option<LiveActivity>,
    /// Custom keys at the top level, beside `aps` (which they must not name).
    pub custom: Map<String, Value>,
}

impl Notification {
    /// An empty notification.
    pub fn new() -> Self {
        Notification::default()
    }

    /// The fields a [`Payload`] carries: title, body, badge, sound (by name), category,
    /// content-available and the data as custom keys.
    pub fn from_payload(payload: &Payload) -> Self {
        Notification {
            alert: Alert {
                title: payload.title.clone(),
                body: payload.body.clone(),
                ..Alert::default()
            },
            badge: payload.badge,
            sound: payload.sound.clone().map(Sound::Name),
            category: payload.category.clone(),
            content_available: payload.content_available,
            custom: payload.data.clone(),
            ..Notification::default()
        }
    }

    /// Sets `alert.subtitle`.
    pub fn subtitle(mut self, subtitle: impl Into<String>) -> Self {
        self.alert.subtitle = Some(subtitle.into());
        self
    }

    /// Sets the whole alert.
    pub fn alert(mut self, alert: Alert) -> Self {
        self.alert = alert;
        self
    }

    /// Sets the sound.
    pub fn sound(mut self, sound: Sound) -> Self {
        self.sound = Some(sound);
        self
    }

    /// Sets `thread-id`.
    pub fn thread_id(mut self, thread_id: impl Into<String>) -> Self {
        self.thread_id = Some(thread_id.into());
        self
    }

    /// Sets `mutable-content`.
    pub fn mutable_content(mut self, mutable: bool) -> Self {
        self.mutable_content = mutable;
        self
    }

    /// Sets `target-content-id`.
    pub fn target_content_id(mut self, id: impl Into<String>) -> Self {
        self.target_content_id = Some(id.into());
        self
    }

    /// Sets `interruption-level`.
    pub fn interruption_level(mut self, level: InterruptionLevel) -> Self {
        self.interruption_level = Some(level);
        self
    }

    /// Sets `relevance-score`.
    pub fn relevance_score(mut self, score: f64) -> Self {
        self.relevance_score = Some(score);
        self
    }

    /// Sets the Live Activity fields.
    pub fn live_activity(mut self, live_activity: LiveActivity) -> Self {
        self.live_activity = Some(live_activity);
        self
    }

    /// Adds a custom top-level key.
    pub fn custom(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom.insert(key.into(), value.into());
        self
    }

    /// The `aps` dictionary.
    fn aps(&self) -> Map<String, Value> {
        let mut aps = Map::new();
        if let Some(alert) = self.alert.to_value() {
            aps.insert("alert".into(), alert);
        }
        insert_some(&mut aps, "badge", &self.badge);
        if let Some(sound) = &self.sound {
            aps.insert("sound".into(), sound.to_value());
        }
        insert_some(&mut aps, "thread-id", &self.thread_id);
        insert_some(&mut aps, "category", &self.category);
        if self.content_available {
            aps.insert("content-available".into(), Value::from(1));
        }
        if self.mutable_content {
            aps.insert("mutable-content".into(), Value::from(1));
        }
        insert_some(&mut aps, "target-content-id", &self.target_content_id);
        if let Some(level) = self.interruption_level {
            aps.insert("interruption-level".into(), Value::from(level.as_str()));
        }
        if let Some(score) = self
            .relevance_score
            .and_then(|s| Number::from_f64(s.clamp(0.0, 1.0)))
        {
            aps.insert("relevance-score".into(), Value::Number(score));
        }
        if let Some(activity) = &self.live_activity {
            aps.insert("timestamp".into(), Value::from(activity.timestamp));
            aps.insert("event".into(), Value::from(activity.event.as_str()));
            aps.insert(
                "content-state".into(),
                Value::Object(activity.content_state.clone()),
            );
            insert_some(&mut aps, "stale-date", &activity.stale_date);
            insert_some(&mut aps, "dismissal-date", &activity.dismissal_date);
        }
        aps
    }

    /// The compact JSON document, keys sorted (deterministic bytes), checked
    /// against `push_type`'s size limit (4096 bytes, 5120 for VoIP).
    ///
    /// Fails with [`DeviceError::InvalidPayload`] when a custom key is `aps`, and with
    /// [`DeviceError::PayloadTooLarge`] when the document is over the limit.
    pub fn encode(&self, push_type: PushType) -> Result<Bytes, DeviceError> {
        if self.custom.contains_key("aps") {
            return Err(DeviceError::InvalidPayload(
                "the custom key \"aps\" is reserved by APNs".into(),
            ));
        }
        let mut document = Map::new();
        document.insert("aps".into(), Value::Object(self.aps()));
        for (key, value) in &self.custom {
            document.insert(key.clone(), value.clone());
        }
        let json = Value::Object(document).to_string();
        let limit = push_type.payload_limit();
        if json.len() > limit {
            return Err(DeviceError::PayloadTooLarge {
                size: json.len(),
                limit,
            });
        }
        Ok(Bytes::from(json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn aps(notification: &Notification) -> Value {
        let bytes = notification.encode(PushType::Alert).unwrap();
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        document["aps"].clone()
    }

    #[test]
    fn every_alert_field() {
        let alert = Alert {
            title: Some("T".into()),
            subtitle: Some("S".into()),
            body: Some("B".into()),
            title_loc_key: Some("TK".into()),
            title_loc_args: vec!["ta".into()],
            subtitle_loc_key: Some("SK".into()),
            subtitle_loc_args: vec!["sa".into(), "sb".into()],
            loc_key: Some("BK".into()),
            loc_args: vec!["ba".into()],
            launch_image: Some("img.png".into()),
        };
        assert_eq!(
            aps(&Notification::new().alert(alert)),
            json!({"alert": {
                "title": "T", "subtitle": "S", "body": "B",
                "title-loc-key": "TK", "title-loc-args": ["ta"],
                "subtitle-loc-key": "SK", "subtitle-loc-args": ["sa", "sb"],
                "loc-key": "BK", "loc-args": ["ba"], "launch-image": "img.png"
            }})
        );
    }

    #[test]
    fn each_aps_field() {
        let cases: Vec<(Notification, Value)> = vec![
            (Notification::new(), json!({})),
            (
                Notification::from_payload(&Payload::new().badge(0)),
                json!({"badge": 0}),
            ),
            (
                Notification::new().sound(Sound::Name("ping.caf".into())),
                json!({"sound": "ping.caf"}),
            ),
            (
                Notification::new().sound(Sound::Critical {
                    name: "default".into(),
                    volume: Some(1.5),
                }),
                json!({"sound": {"critical": 1, "name": "default", "volume": 1.0}}),
            ),
            (
                Notification::new().sound(Sound::Critical {
                    name: "a".into(),
                    volume: None,
                }),
                json!({"sound": {"critical": 1, "name": "a"}}),
            ),
            (
                Notification::new().thread_id("t"),
                json!({"thread-id": "t"}),
            ),
            (
                Notification::from_payload(&Payload::new().category("c")),
                json!({"category": "c"}),
            ),
            (
                Notification::from_payload(&Payload::new().content_available(true)),
                json!({"content-available": 1}),
            ),
            (
                Notification::new().mutable_content(true),
                json!({"mutable-content": 1}),
            ),
            (
                Notification::new().target_content_id("w"),
                json!({"target-content-id": "w"}),
            ),
            (
                Notification::new().interruption_level(InterruptionLevel::Passive),
                json!({"interruption-level": "passive"}),
            ),
            (
                Notification::new().interruption_level(InterruptionLevel::Active),
                json!({"interruption-level": "active"}),
            ),
            (
                Notification::new().interruption_level(InterruptionLevel::Critical),
                json!({"interruption-level": "critical"}),
            ),
            (
                Notification::new().relevance_score(0.25),
                json!({"relevance-score": 0.25}),
            ),
            (Notification::new().relevance_score(f64::NAN), json!({})),
        ];
        for (notification, expected) in cases {
            assert_eq!(aps(&notification), expected, "{notification:?}");
        }
    }

    #[test]
    fn live_activity_fields() {
        let mut state = Map::new();
        state.insert("score".into(), json!("2-1"));
        let mut activity = LiveActivity::new(1_700_000_000, LiveActivityEvent::Update, state);
        activity.stale_date = Some(1_700_000_600);
        activity.dismissal_date = Some(1_700_003_600);
        assert_eq!(
            aps(&Notification::new().live_activity(activity.clone())),
            json!({
                "timestamp": 1_700_000_000u64, "event": "update",
                "content-state": {"score": "2-1"},
                "stale-date": 1_700_000_600u64, "dismissal-date": 1_700_003_600u64
            })
        );
        for (event, name) in [
            (LiveActivityEvent::Start, "start"),
            (LiveActivityEvent::End, "end"),
        ] {
            activity.event = event;
            let value = aps(&Notification::new().live_activity(activity.clone()));
            assert_eq!(value["event"], name);
        }
    }

    #[test]
    fn payload_fields_and_custom_keys_are_byte_exact() {
        let payload = Payload::new()
            .title("Hi")
            .body("B")
            .sound("default")
            .data("z", 1);
        let notification = Notification::from_payload(&payload).custom("a", "x");
        assert_eq!(
            &notification.encode(PushType::Alert).unwrap()[..],
            br#"{"a":"x","aps":{"alert":{"body":"B","title":"Hi"},"sound":"default"},"z":1}"#
        );
    }

    #[test]
    fn reserved_aps_key() {
        let notification = Notification::new().custom("aps", 1);
        assert!(matches!(
            notification.encode(PushType::Alert),
            Err(DeviceError::InvalidPayload(_))
        ));
    }

    /// A notification whose JSON is exactly `size` bytes.
    fn sized(size: usize) -> Notification {
        // {"aps":{},"k":""} is 17 bytes.
        Notification::new().custom("k", "x".repeat(size - 17))
    }

    #[test]
    fn size_limits_4096_and_5120_for_voip() {
        assert_eq!(sized(4096).encode(PushType::Alert).unwrap().len(), 4096);
        assert_eq!(
            sized(4097).encode(PushType::Alert),
            Err(DeviceError::PayloadTooLarge {
                size: 4097,
                limit: 4096
            })
        );
        assert_eq!(sized(5120).encode(PushType::Voip).unwrap().len(), 5120);
        assert_eq!(
            sized(5121).encode(PushType::Voip),
            Err(DeviceError::PayloadTooLarge {
                size: 5121,
                limit: 5120
            })
        );
        assert!(sized(4097).encode(PushType::LiveActivity).is_err());
    }
}
