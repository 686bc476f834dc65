//! Live Activity pushes (`apns-push-type: liveactivity`) as types that cannot describe an
//! invalid push.
//!
//! - [`Content`]: what every event carries: `timestamp`, `content-state`, and optionally
//!   `stale-date`, `relevance-score` and an [`ActivityAlert`].
//! - [`Change`]: `update` or `end` of a running activity (`dismissal-date` exists only on
//!   `end`). It is what a device token or a broadcast channel receives.
//! - [`Start`]: push-to-start (iOS 17.2): `attributes-type` and `attributes` are required and
//!   exist only here, with an optional [`Subscription`] (iOS 18) so the started activity
//!   joins a broadcast channel (`input-push-channel`) or asks for an update token
//!   (`input-push-token`).
//! - [`LiveActivityPush`]: one of the two, encoded with [`LiveActivityPush::encode`] to the
//!   exact `{"aps":{...}}` document, the 4096-byte device limit checked; [`request`] makes the
//!   device request with the topic `<bundle id>.push-type.liveactivity`.
//!
//! ```
//! use push_proto::apns::live_activity::{Change, Content, LiveActivityPush};
//! use serde_json::json;
//!
//! let state = json!({"score": "2-1"}).as_object().unwrap().clone();
//! let push = LiveActivityPush::Change(Change::End {
//!     content: Content::new(1_700_000_000, state),
//!     dismissal_date: Some(1_700_003_600),
//! });
//! assert_eq!(
//!     push.encode()?.as_ref(),
//!     br#"{"aps":{"content-state":{"score":"2-1"},"dismissal-date":1700003600,"event":"end","timestamp":1700000000}}"#
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use http::Request;
use serde_json::{Map, Value};

use super::broadcast::{BuildError, ChannelId};
use super::device_push::{DeviceOptions, Kind, device_request};
use super::http2::MAX_PAYLOAD;
use crate::ApnsToken;

/// The Live Activity topic suffix.
pub const TOPIC_SUFFIX: &str = ".push-type.liveactivity";

const KIND: Kind = Kind {
    push_type: "liveactivity",
    topic_suffix: TOPIC_SUFFIX,
};

/// The alert a Live Activity event may show: `alert.title`, `alert.body`, `alert.sound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityAlert {
    /// `title`.
    pub title: String,
    /// `body`.
    pub body: String,
    /// `sound`: a sound file of the app, or `default`.
    pub sound: Option<String>,
}

impl ActivityAlert {
    fn to_json(&self) -> Value {
        let mut alert = Map::new();
        alert.insert("title".into(), self.title.clone().into());
        alert.insert("body".into(), self.body.clone().into());
        if let Some(sound) = &self.sound {
            alert.insert("sound".into(), sound.clone().into());
        }
        Value::Object(alert)
    }
}

/// The fields every Live Activity event carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    timestamp: u64,
    content_state: Map<String, Value>,
    stale_date: Option<u64>,
    relevance_score: Option<f64>,
    alert: Option<ActivityAlert>,
}

impl Content {
    /// `timestamp` (UNIX seconds; the device drops events older than the last it applied)
    /// and `content-state` (the app's `ContentState`, as JSON).
    pub fn new(timestamp: u64, content_state: Map<String, Value>) -> Self {
        Content {
            timestamp,
            content_state,
            stale_date: None,
            relevance_score: None,
            alert: None,
        }
    }

    /// `stale-date`: UNIX seconds after which the activity shows as outdated.
    pub fn stale_date(mut self, unix_seconds: u64) -> Self {
        self.stale_date = Some(unix_seconds);
        self
    }

    /// `relevance-score`: orders the app's activities (higher first); must be finite.
    pub fn relevance_score(mut self, score: f64) -> Self {
        self.relevance_score = Some(score);
        self
    }

    /// `alert`: alert the person about this event.
    pub fn alert(mut self, alert: ActivityAlert) -> Self {
        self.alert = Some(alert);
        self
    }

    fn write(&self, aps: &mut Map<String, Value>) -> Result<(), BuildError> {
        aps.insert("timestamp".into(), self.timestamp.into());
        aps.insert(
            "content-state".into(),
            Value::Object(self.content_state.clone()),
        );
        if let Some(stale) = self.stale_date {
            aps.insert("stale-date".into(), stale.into());
        }
        if let Some(score) = self.relevance_score {
            let number = serde_json::Number::from_f64(score).ok_or_else(|| {
                BuildError::Payload("relevance-score must be a finite number".into())
            })?;
            aps.insert("relevance-score".into(), Value::Number(number));
        }
        if let Some(alert) = &self.alert {
            aps.insert("alert".into(), alert.to_json());
        }
        Ok(())
    }
}

/// An `update` or `end` of a running activity.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `event: update`.
    Update(Content),
    /// `event: end`, with the optional `dismissal-date` (UNIX seconds; a past date removes
    /// the ended activity at once).
    End {
        /// The final content.
        content: Content,
        /// `dismissal-date`.
        dismissal_date: Option<u64>,
    },
}

impl Change {
    /// The `aps` document of this change, checked against `limit`.
    pub(crate) fn encode_within(&self, limit: usize) -> Result<Bytes, BuildError> {
        let mut aps = Map::new();
        match self {
            Change::Update(content) => {
                aps.insert("event".into(), "update".into());
                content.write(&mut aps)?;
            }
            Change::End {
                content,
                dismissal_date,
            } => {
                aps.insert("event".into(), "end".into());
                content.write(&mut aps)?;
                if let Some(date) = dismissal_date {
                    aps.insert("dismissal-date".into(), (*date).into());
                }
            }
        }
        document(aps, limit)
    }
}

/// What a started activity subscribes to for its later updates (iOS 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// `input-push-channel`: receive the broadcasts of this channel.
    Channel(ChannelId),
    /// `input-push-token: 1`: obtain an update token the app sends to the server.
    Token,
}

/// A push-to-start: `event: start` with `attributes-type` and `attributes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    attributes_type: String,
    attributes: Map<String, Value>,
    content: Content,
    subscription: Option<Subscription>,
}

impl Start {
    /// Starts an activity of the app's `ActivityAttributes` type named `attributes_type`
    /// (not empty) with its static `attributes` and first `content`.
    pub fn new(
        attributes_type: &str,
        attributes: Map<String, Value>,
        content: Content,
    ) -> Result<Self, BuildError> {
        if attributes_type.is_empty() {
            return Err(BuildError::Payload("attributes-type is empty".into()));
        }
        Ok(Start {
            attributes_type: attributes_type.to_owned(),
            attributes,
            content,
            subscription: None,
        })
    }

    /// Subscribes the started activity to a channel or to an update token (iOS 18).
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.subscription = Some(subscription);
        self
    }
}

/// A Live Activity push to one device token.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveActivityPush {
    /// Push-to-start (sent to a push-to-start token).
    Start(Start),
    /// Update or end (sent to the activity's update token).
    Change(Change),
}

impl LiveActivityPush {
    /// The exact JSON document, at most 4096 bytes.
    pub fn encode(&self) -> Result<Bytes, BuildError> {
        match self {
            LiveActivityPush::Change(change) => change.encode_within(MAX_PAYLOAD),
            LiveActivityPush::Start(start) => {
                let mut aps = Map::new();
                aps.insert("event".into(), "start".into());
                start.content.write(&mut aps)?;
                aps.insert(
                    "attributes-type".into(),
                    start.attributes_type.clone().into(),
                );
                aps.insert("attributes".into(), Value::Object(start.attributes.clone()));
                match &start.subscription {
                    Some(Subscription::Channel(id)) => {
                        aps.insert("input-push-channel".into(), id.as_str().into());
                    }
                    Some(Subscription::Token) => {
                        aps.insert("input-push-token".into(), 1.into());
                    }
                    None => {}
                }
                document(aps, MAX_PAYLOAD)
            }
        }
    }
}

/// The push to the device `token` of `bundle_id` at `base_url` (Apple's device hosts or a
/// mock), with the topic `<bundle id>.push-type.liveactivity`.
pub fn request(
    base_url: &str,
    token: &ApnsToken,
    bundle_id: &str,
    push: &LiveActivityPush,
    options: DeviceOptions,
) -> Result<Request<Bytes>, BuildError> {
    device_request(base_url, token, bundle_id, &KIND, options, push.encode()?)
}

/// `{"aps": aps}`, refused over `limit` bytes.
fn document(aps: Map<String, Value>, limit: usize) -> Result<Bytes, BuildError> {
    let mut root = Map::new();
    root.insert("aps".into(), Value::Object(aps));
    let json = Value::Object(root).to_string();
    if json.len() > limit {
        return Err(BuildError::PayloadTooLarge {
            size: json.len(),
            limit,
        });
    }
    Ok(Bytes::from(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::http2::ApnsPriority;
    use serde_json::json;

    fn state() -> Map<String, Value> {
        json!({"home": 2, "away": 1}).as_object().unwrap().clone()
    }

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn update_with_every_optional_field() {
        let content = Content::new(1_700_000_000, state())
            .stale_date(1_700_000_900)
            .relevance_score(75.5)
            .alert(ActivityAlert {
                title: "Goal".into(),
                body: "2-1".into(),
                sound: Some("chime.aiff".into()),
            });
        let json = LiveActivityPush::Change(Change::Update(content))
            .encode()
            .unwrap();
        assert_eq!(
            text(json),
            r#"{"aps":{"alert":{"body":"2-1","sound":"chime.aiff","title":"Goal"},"content-state":{"away":1,"home":2},"event":"update","relevance-score":75.5,"stale-date":1700000900,"timestamp":1700000000}}"#
        );
    }

    #[test]
    fn minimal_update_and_end() {
        let update = LiveActivityPush::Change(Change::Update(Content::new(5, Map::new())));
        assert_eq!(
            text(update.encode().unwrap()),
            r#"{"aps":{"content-state":{},"event":"update","timestamp":5}}"#
        );
        let end = LiveActivityPush::Change(Change::End {
            content: Content::new(6, Map::new()),
            dismissal_date: None,
        });
        assert_eq!(
            text(end.encode().unwrap()),
            r#"{"aps":{"content-state":{},"event":"end","timestamp":6}}"#
        );
    }

    #[test]
    fn push_to_start_with_each_subscription() {
        let attributes = json!({"match": "A v B"}).as_object().unwrap().clone();
        let start = Start::new("MatchAttributes", attributes, Content::new(7, state())).unwrap();
        assert_eq!(
            text(LiveActivityPush::Start(start.clone()).encode().unwrap()),
            r#"{"aps":{"attributes":{"match":"A v B"},"attributes-type":"MatchAttributes","content-state":{"away":1,"home":2},"event":"start","timestamp":7}}"#
        );
        let channel = ChannelId::new("dHN0LXNyY2gtY2hubA==").unwrap();
        let on_channel = start.clone().subscribe(Subscription::Channel(channel));
        assert_eq!(
            text(LiveActivityPush::Start(on_channel).encode().unwrap()),
            r#"{"aps":{"attributes":{"match":"A v B"},"attributes-type":"MatchAttributes","content-state":{"away":1,"home":2},"event":"start","input-push-channel":"dHN0LXNyY2gtY2hubA==","timestamp":7}}"#
        );
        let with_token = start.subscribe(Subscription::Token);
        assert_eq!(
            text(LiveActivityPush::Start(with_token).encode().unwrap()),
            r#"{"aps":{"attributes":{"match":"A v B"},"attributes-type":"MatchAttributes","content-state":{"away":1,"home":2},"event":"start","input-push-token":1,"timestamp":7}}"#
        );
    }

    #[test]
    fn invalid_inputs_refused() {
        assert!(matches!(
            Start::new("", Map::new(), Content::new(1, Map::new())),
            Err(BuildError::Payload(_))
        ));
        let nan = LiveActivityPush::Change(Change::Update(
            Content::new(1, Map::new()).relevance_score(f64::NAN),
        ));
        assert!(matches!(nan.encode(), Err(BuildError::Payload(_))));
    }

    #[test]
    fn size_limit_is_4096_bytes() {
        // {"aps":{"content-state":{"k":"..."},"event":"update","timestamp":1}}
        let overhead = r#"{"aps":{"content-state":{"k":""},"event":"update","timestamp":1}}"#.len();
        let sized = |len: usize| {
            let state = json!({"k": "x".repeat(len - overhead)});
            LiveActivityPush::Change(Change::Update(Content::new(
                1,
                state.as_object().unwrap().clone(),
            )))
        };
        assert_eq!(sized(4096).encode().unwrap().len(), 4096);
        assert_eq!(
            sized(4097).encode(),
            Err(BuildError::PayloadTooLarge {
                size: 4097,
                limit: 4096
            })
        );
    }

    #[test]
    fn device_request_exact() {
        let token = ApnsToken::parse(&"ab".repeat(32)).unwrap();
        let push = LiveActivityPush::Change(Change::Update(Content::new(5, Map::new())));
        let options = DeviceOptions {
            priority: Some(ApnsPriority::Immediate),
            ..DeviceOptions::default()
        };
        let request = request(
            "https://api.push.apple.com",
            &token,
            "com.example.app",
            &push,
            options,
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri(),
            format!("https://api.push.apple.com/3/device/{}", "ab".repeat(32)).as_str()
        );
        assert_eq!(request.headers()["apns-push-type"], "liveactivity");
        assert_eq!(
            request.headers()["apns-topic"],
            "com.example.app.push-type.liveactivity"
        );
        assert_eq!(request.headers()["apns-priority"], "10");
        assert_eq!(request.headers().len(), 3);
        assert_eq!(request.body(), &push.encode().unwrap());
    }

    /// Reads an encoded push back: the inverse of [`LiveActivityPush::encode`], reading
    /// every key of `aps` and refusing any other.
    fn decode(json: &[u8]) -> LiveActivityPush {
        let document: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(document.as_object().unwrap().len(), 1, "only aps");
        let aps = document["aps"].as_object().unwrap();
        let known = [
            "event",
            "timestamp",
            "content-state",
            "stale-date",
            "relevance-score",
            "alert",
            "dismissal-date",
            "attributes-type",
            "attributes",
            "input-push-channel",
            "input-push-token",
        ];
        assert!(
            aps.keys().all(|key| known.contains(&key.as_str())),
            "{aps:?}"
        );
        let date = |key: &str| aps.get(key).map(|v| v.as_u64().unwrap());
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        let content = Content {
            timestamp: aps["timestamp"].as_u64().unwrap(),
            content_state: aps["content-state"].as_object().unwrap().clone(),
            stale_date: date("stale-date"),
            relevance_score: aps.get("relevance-score").map(|v| v.as_f64().unwrap()),
            alert: aps.get("alert").map(|alert| ActivityAlert {
                title: text(&alert["title"]),
                body: text(&alert["body"]),
                sound: alert.get("sound").map(text),
            }),
        };
        match aps["event"].as_str().unwrap() {
            "update" => LiveActivityPush::Change(Change::Update(content)),
            "end" => LiveActivityPush::Change(Change::End {
                content,
                dismissal_date: date("dismissal-date"),
            }),
            "start" => {
                let subscription =
                    match (aps.get("input-push-channel"), aps.get("input-push-token")) {
                        (Some(id), None) => Some(Subscription::Channel(
                            ChannelId::new(id.as_str().unwrap()).unwrap(),
                        )),
                        (None, Some(one)) => {
                            assert_eq!(one, 1);
                            Some(Subscription::Token)
                        }
                        (None, None) => None,
                        both => panic!("both subscriptions: {both:?}"),
                    };
                LiveActivityPush::Start(Start {
                    attributes_type: text(&aps["attributes-type"]),
                    attributes: aps["attributes"].as_object().unwrap().clone(),
                    content,
                    subscription,
                })
            }
            other => panic!("event {other}"),
        }
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        let value = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ];
        proptest::collection::btree_map("[a-zA-Z-]{1,10}", value, 0..6)
            .prop_map(|entries| entries.into_iter().collect())
    }

    fn content() -> impl Strategy<Value = Content> {
        let alert = (
            "\\PC{0,20}",
            "\\PC{0,40}",
            proptest::option::of("[a-z.]{1,12}"),
        )
            .prop_map(|(title, body, sound)| ActivityAlert { title, body, sound });
        (
            any::<u64>(),
            object(),
            proptest::option::of(any::<u64>()),
            // Quarters: exact in binary, so the decimal text reads back to the same number.
            proptest::option::of((-40_000i32..40_000).prop_map(|n| f64::from(n) / 4.0)),
            proptest::option::of(alert),
        )
            .prop_map(
                |(timestamp, content_state, stale_date, relevance_score, alert)| Content {
                    timestamp,
                    content_state,
                    stale_date,
                    relevance_score,
                    alert,
                },
            )
    }

    fn push() -> impl Strategy<Value = LiveActivityPush> {
        let subscription = prop_oneof![
            Just(None),
            Just(Some(Subscription::Token)),
            "[!#-\\[\\]-~]{1,40}"
                .prop_map(|id| Some(Subscription::Channel(ChannelId::new(&id).unwrap()))),
        ];
        prop_oneof![
            content().prop_map(|c| LiveActivityPush::Change(Change::Update(c))),
            (content(), proptest::option::of(any::<u64>())).prop_map(
                |(content, dismissal_date)| {
                    LiveActivityPush::Change(Change::End {
                        content,
                        dismissal_date,
                    })
                }
            ),
            ("[A-Za-z]{1,30}", object(), content(), subscription).prop_map(
                |(attributes_type, attributes, content, subscription)| {
                    LiveActivityPush::Start(Start {
                        attributes_type,
                        attributes,
                        content,
                        subscription,
                    })
                }
            ),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_push_round_trips_through_its_json(push in push()) {
            let json = push.encode().unwrap();
            prop_assert!(json.len() <= MAX_PAYLOAD);
            prop_assert_eq!(decode(&json), push);
        }
    }
}
