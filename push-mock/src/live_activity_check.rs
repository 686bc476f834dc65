//! The payload checks of Live Activity and widget pushes: the fields each `event` requires
//! and allows, their types, and timestamps in seconds. A payload that fails is answered
//! `400 BadPayload` (a reason of this mock: APNs' own answer to these defects is not
//! documented; see `docs/apple-broadcast.md`).

use push_proto::apns::broadcast::ChannelId;
use serde_json::{Map, Value};

/// Dates later than this (the year 5138) are taken for milliseconds, not the seconds
/// ActivityKit expects.
const MAX_SECONDS: u64 = 100_000_000_000;

/// Where a Live Activity payload is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A device token: `start`, `update` or `end`.
    Device,
    /// A broadcast channel: `update` or `end` only.
    Channel,
}

/// Checks a Live Activity payload; `Err` names the defect.
pub(crate) fn check_live_activity(payload: &[u8], target: Target) -> Result<(), String> {
    let object = aps(payload)?;
    let aps = &object;
    let event = aps
        .get("event")
        .and_then(Value::as_str)
        .ok_or("aps.event is missing or not a string")?;
    let start = match (event, target) {
        ("start", Target::Device) => true,
        ("update" | "end", _) => false,
        ("start", Target::Channel) => return Err("a broadcast cannot start an activity".into()),
        (other, _) => return Err(format!("unknown event {other:?}")),
    };
    seconds(aps, "timestamp", true)?;
    seconds(aps, "stale-date", false)?;
    match aps.get("content-state") {
        Some(Value::Object(_)) => {}
        _ => return Err("aps.content-state is missing or not an object".into()),
    }
    if aps
        .get("relevance-score")
        .is_some_and(|score| !score.is_number())
    {
        return Err("aps.relevance-score is not a number".into());
    }
    if let Some(alert) = aps.get("alert") {
        let object = alert.as_object().ok_or("aps.alert is not an object")?;
        if ["title", "body", "sound"]
            .iter()
            .any(|key| object.get(*key).is_some_and(|value| !value.is_string()))
        {
            return Err("aps.alert.title, body and sound must be strings".into());
        }
    }
    if event == "end" {
        seconds(aps, "dismissal-date", false)?;
    } else if aps.contains_key("dismissal-date") {
        return Err("aps.dismissal-date is only allowed with event end".into());
    }
    if start {
        check_start(aps)
    } else {
        match [
            "attributes-type",
            "attributes",
            "input-push-channel",
            "input-push-token",
        ]
        .iter()
        .find(|key| aps.contains_key(**key))
        {
            Some(key) => Err(format!("aps.{key} is only allowed with event start")),
            None => Ok(()),
        }
    }
}

/// Checks a widget push's payload: exactly `{"aps":{"content-changed":true}}`.
pub(crate) fn check_widgets(payload: &[u8]) -> Result<(), String> {
    let aps = aps(payload)?;
    if aps.len() == 1 && aps.get("content-changed") == Some(&Value::Bool(true)) {
        Ok(())
    } else {
        Err("a widget push carries aps.content-changed: true and nothing else".into())
    }
}

/// The `start` fields: `attributes-type` and `attributes` required, at most one of the
/// `input-push-*` subscriptions.
fn check_start(aps: &Map<String, Value>) -> Result<(), String> {
    match aps.get("attributes-type").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => {}
        _ => return Err("event start needs a non-empty aps.attributes-type".into()),
    }
    if !aps.get("attributes").is_some_and(Value::is_object) {
        return Err("event start needs an aps.attributes object".into());
    }
    let channel = aps.get("input-push-channel");
    let token = aps.get("input-push-token");
    if channel.is_some() && token.is_some() {
        return Err("input-push-channel and input-push-token exclude each other".into());
    }
    if channel.is_some_and(|id| id.as_str().is_none_or(|id| ChannelId::new(id).is_err())) {
        return Err("aps.input-push-channel is not a channel id".into());
    }
    if token.is_some_and(|value| value.as_u64() != Some(1)) {
        return Err("aps.input-push-token must be 1".into());
    }
    Ok(())
}

/// The `aps` object of `payload`.
fn aps(payload: &[u8]) -> Result<Map<String, Value>, String> {
    let root: Map<String, Value> =
        serde_json::from_slice(payload).map_err(|_| "the payload is not a JSON object")?;
    match root.get("aps") {
        Some(Value::Object(aps)) => Ok(aps.clone()),
        _ => Err("aps is missing or not an object".into()),
    }
}

/// Checks that `aps[key]` is whole seconds since the epoch (present when `required`).
fn seconds(aps: &Map<String, Value>, key: &str, required: bool) -> Result<(), String> {
    match aps.get(key) {
        None if required => Err(format!("aps.{key} is missing")),
        None => Ok(()),
        Some(value) => match value.as_u64() {
            Some(seconds) if seconds <= MAX_SECONDS => Ok(()),
            Some(_) => Err(format!("aps.{key} looks like milliseconds, not seconds")),
            None => Err(format!("aps.{key} is not whole UNIX seconds")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use push_proto::apns::live_activity::{
        ActivityAlert, Change, Content, LiveActivityPush, Start, Subscription,
    };

    fn check(aps: &str, target: Target) -> Result<(), String> {
        check_live_activity(format!(r#"{{"aps":{aps}}}"#).as_bytes(), target)
    }

    #[test]
    fn valid_events_pass() {
        let valid = [
            r#"{"event":"update","timestamp":1,"content-state":{}}"#,
            r#"{"event":"update","timestamp":1,"content-state":{"a":1},"stale-date":9,"relevance-score":0.5,"alert":{"title":"t","body":"b","sound":"default"}}"#,
            r#"{"event":"end","timestamp":1,"content-state":{},"dismissal-date":2}"#,
        ];
        for aps in valid {
            assert_eq!(check(aps, Target::Device), Ok(()), "{aps}");
            assert_eq!(check(aps, Target::Channel), Ok(()), "{aps}");
        }
        let start = r#"{"event":"start","timestamp":1,"content-state":{},"attributes-type":"Match","attributes":{"home":"A"},"input-push-channel":"abc="}"#;
        assert_eq!(check(start, Target::Device), Ok(()));
        assert!(check(start, Target::Channel).is_err());
    }

    #[test]
    fn defects_are_named() {
        let cases = [
            (r#"{"timestamp":1,"content-state":{}}"#, "event"),
            (
                r#"{"event":"pause","timestamp":1,"content-state":{}}"#,
                "unknown event",
            ),
            (
                r#"{"event":"update","content-state":{}}"#,
                "timestamp is missing",
            ),
            (
                r#"{"event":"update","timestamp":"1","content-state":{}}"#,
                "whole UNIX seconds",
            ),
            (
                r#"{"event":"update","timestamp":1700000000000,"content-state":{}}"#,
                "milliseconds",
            ),
            (r#"{"event":"update","timestamp":1}"#, "content-state"),
            (
                r#"{"event":"update","timestamp":1,"content-state":[]}"#,
                "content-state",
            ),
            (
                r#"{"event":"update","timestamp":1,"content-state":{},"stale-date":-1}"#,
                "stale-date",
            ),
            (
                r#"{"event":"update","timestamp":1,"content-state":{},"dismissal-date":2}"#,
                "only allowed with event end",
            ),
            (
                r#"{"event":"update","timestamp":1,"content-state":{},"attributes":{}}"#,
                "only allowed with event start",
            ),
            (
                r#"{"event":"update","timestamp":1,"content-state":{},"relevance-score":"high"}"#,
                "relevance-score",
            ),
            (
                r#"{"event":"update","timestamp":1,"content-state":{},"alert":{"title":1}}"#,
                "strings",
            ),
            (
                r#"{"event":"start","timestamp":1,"content-state":{},"attributes":{}}"#,
                "attributes-type",
            ),
            (
                r#"{"event":"start","timestamp":1,"content-state":{},"attributes-type":"M"}"#,
                "attributes object",
            ),
            (
                r#"{"event":"start","timestamp":1,"content-state":{},"attributes-type":"M","attributes":{},"input-push-channel":"a","input-push-token":1}"#,
                "exclude",
            ),
            (
                r#"{"event":"start","timestamp":1,"content-state":{},"attributes-type":"M","attributes":{},"input-push-token":2}"#,
                "must be 1",
            ),
            (
                r#"{"event":"start","timestamp":1,"content-state":{},"attributes-type":"M","attributes":{},"input-push-channel":""}"#,
                "channel id",
            ),
        ];
        for (aps, expected) in cases {
            let error = check(aps, Target::Device).unwrap_err();
            assert!(error.contains(expected), "{aps}: {error}");
        }
        assert!(check_live_activity(b"[]", Target::Device).is_err());
        assert!(check_live_activity(br#"{"aps":1}"#, Target::Device).is_err());
    }

    fn content() -> impl Strategy<Value = Content> {
        (
            0..=MAX_SECONDS,
            proptest::collection::btree_map("[a-z]{1,8}", any::<i32>(), 0..4),
            proptest::option::of(0..=MAX_SECONDS),
            proptest::option::of(-1e6f64..1e6),
            proptest::option::of((
                "[ -~]{0,20}",
                "[ -~]{0,20}",
                proptest::option::of("[a-z]{1,8}"),
            )),
        )
            .prop_map(|(timestamp, state, stale, score, alert)| {
                let state = state
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect();
                let mut content = Content::new(timestamp, state);
                if let Some(stale) = stale {
                    content = content.stale_date(stale);
                }
                if let Some(score) = score {
                    content = content.relevance_score(score);
                }
                if let Some((title, body, sound)) = alert {
                    content = content.alert(ActivityAlert { title, body, sound });
                }
                content
            })
    }

    proptest! {
        /// Everything push-proto's typed builders can express passes the mock's checks: a
        /// change on a device or a channel, a start on a device only.
        #[test]
        fn typed_pushes_pass(
            content in content(),
            end in any::<bool>(),
            dismissal in proptest::option::of(0..=MAX_SECONDS),
            kind in "[A-Za-z]{1,12}",
            subscription in 0..3u8,
        ) {
            let change = if end {
                Change::End { content: content.clone(), dismissal_date: dismissal }
            } else {
                Change::Update(content.clone())
            };
            let payload = LiveActivityPush::Change(change).encode().unwrap();
            prop_assert_eq!(check_live_activity(&payload, Target::Device), Ok(()));
            prop_assert_eq!(check_live_activity(&payload, Target::Channel), Ok(()));
            let mut start = Start::new(&kind, Map::new(), content).unwrap();
            start = match subscription {
                0 => start,
                1 => start.subscribe(Subscription::Token),
                _ => start.subscribe(Subscription::Channel(ChannelId::new("abc=").unwrap())),
            };
            let payload = LiveActivityPush::Start(start).encode().unwrap();
            prop_assert_eq!(check_live_activity(&payload, Target::Device), Ok(()));
            prop_assert!(check_live_activity(&payload, Target::Channel).is_err());
        }
    }

    #[test]
    fn widget_payloads() {
        assert_eq!(
            check_widgets(br#"{"aps":{"content-changed":true}}"#),
            Ok(())
        );
        for bad in [
            r#"{"aps":{"content-changed":false}}"#,
            r#"{"aps":{"content-changed":true,"alert":"x"}}"#,
            r#"{"aps":{}}"#,
            r#"{}"#,
        ] {
            assert!(check_widgets(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
