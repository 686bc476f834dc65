use proptest::prelude::*;
use serde_json::json;

use super::*;

fn body(message: &Message, token: &str, validate_only: bool) -> Value {
    serde_json::from_slice(&message.body_for(token, validate_only)).unwrap()
}

#[test]
fn every_payload_field_lands_where_the_table_says() {
    let payload = Payload::new()
        .title("Hi")
        .body("There")
        .badge(3)
        .sound("ping")
        .category("OPEN")
        .priority(Priority::Normal)
        .time_to_live(3600)
        .collapse_key("scores")
        .content_available(true)
        .expiry(1)
        .data("s", "text")
        .data("n", 1.5)
        .data("b", true)
        .data("o", json!({"a": [1, "x"]}));
    let mut apns = Map::new();
    apns.insert("headers".into(), json!({"apns-priority": "5"}));
    let options = Options::new()
        .image("https://example.com/i.png")
        .restricted_package_name("com.example")
        .android_notification("channel_id", "news")
        .android_notification("sound", "override")
        .apns(apns)
        .analytics_label("campaign-1");
    let message = Message::new(&payload, &options).unwrap();
    assert_eq!(message.ttl(), Some(3600));
    assert_eq!(
        body(&message, "tok", true),
        json!({
            "message": {
                "token": "tok",
                "notification": {"title": "Hi", "body": "There", "image": "https://example.com/i.png"},
                "data": {"s": "text", "n": "1.5", "b": "true", "o": "{\"a\":[1,\"x\"]}"},
                "android": {
                    "collapse_key": "scores",
                    "priority": "NORMAL",
                    "ttl": "3600s",
                    "restricted_package_name": "com.example",
                    "notification": {
                        "sound": "override",
                        "click_action": "OPEN",
                        "notification_count": 3,
                        "channel_id": "news"
                    }
                },
                "apns": {"headers": {"apns-priority": "5"}},
                "fcm_options": {"analytics_label": "campaign-1"}
            },
            "validate_only": true
        })
    );
}

#[test]
fn an_empty_payload_is_just_the_target() {
    let message = Message::new(&Payload::new(), &Options::new()).unwrap();
    assert_eq!(
        &message.body_for("t", false)[..],
        br#"{"message":{"token":"t"}}"#
    );
    assert_eq!(
        &message.body_for("t", true)[..],
        br#"{"message":{"token":"t"},"validate_only":true}"#
    );
    assert_eq!(message.encoded_len(), 2);
    let high = Message::new(&Payload::new().priority(Priority::High), &Options::new()).unwrap();
    assert_eq!(
        &high.body_for("t", false)[..],
        br#"{"message":{"token":"t","android":{"priority":"HIGH"}}}"#
    );
}

#[test]
fn null_and_reserved_data_are_refused_by_name() {
    for (key, value) in [
        ("n", Value::Null),
        ("from", json!("x")),
        ("message_type", json!("x")),
        ("google.c", json!("x")),
        ("gcm_x", json!("x")),
    ] {
        let payload = Payload::new().data(key, value);
        let Err(DeviceError::InvalidPayload(text)) = Message::new(&payload, &Options::new()) else {
            panic!("{key} accepted");
        };
        assert!(text.contains(&format!("{key:?}")), "{text}");
    }
    assert!(Message::new(&Payload::new().data("fromage", 1), &Options::new()).is_ok());
}

#[test]
fn ttl_is_at_most_28_days() {
    let at_max = Payload::new().time_to_live(MAX_TTL_SECS);
    let message = Message::new(&at_max, &Options::new()).unwrap();
    assert_eq!(
        body(&message, "t", false)["message"]["android"]["ttl"],
        "2419200s"
    );
    let over = Payload::new().time_to_live(MAX_TTL_SECS + 1);
    assert!(matches!(
        Message::new(&over, &Options::new()),
        Err(DeviceError::InvalidPayload(_))
    ));
}

#[test]
fn the_size_limit_is_checked_before_sending() {
    // `{"data":{"k":"` + text + `"}}` is 17 bytes around the text.
    let fits = Payload::new().data("k", "x".repeat(MAX_MESSAGE_SIZE - 17));
    let message = Message::new(&fits, &Options::new()).unwrap();
    assert_eq!(message.encoded_len(), MAX_MESSAGE_SIZE);
    let over = Payload::new().data("k", "x".repeat(MAX_MESSAGE_SIZE - 16));
    assert_eq!(
        Message::new(&over, &Options::new()),
        Err(DeviceError::PayloadTooLarge {
            size: MAX_MESSAGE_SIZE + 1,
            limit: MAX_MESSAGE_SIZE
        })
    );
}

#[test]
fn tokens_are_escaped_like_serde_json() {
    let message = Message::new(&Payload::new(), &Options::new()).unwrap();
    assert_eq!(
        &message.body_for("a\"b\\c\u{1}\u{7f}é", false)[..],
        "{\"message\":{\"token\":\"a\\\"b\\\\c\\u0001\u{7f}é\"}}".as_bytes()
    );
}

fn data_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

prop_compose! {
    fn payload()(
        title in proptest::option::of(any::<String>()),
        body in proptest::option::of(".{0,20}"),
        data in proptest::collection::btree_map("[a-z]{1,6}", data_value(), 0..4),
        badge in proptest::option::of(any::<u32>()),
        sound in proptest::option::of("[a-z]{1,5}"),
        high in proptest::option::of(any::<bool>()),
        ttl in proptest::option::of(0..=MAX_TTL_SECS),
        collapse_key in proptest::option::of(".{0,8}"),
    ) -> Payload {
        let mut payload = Payload::new();
        payload.title = title;
        payload.body = body;
        // Reserved keys (`gcm`, `from`, `google…`) fail the message: not what these test.
        payload.data = data.into_iter().filter(|(key, _)| !is_reserved(key)).collect();
        payload.badge = badge;
        payload.sound = sound;
        payload.priority = high.map(|h| if h { Priority::High } else { Priority::Normal });
        payload.time_to_live = ttl;
        payload.collapse_key = collapse_key;
        payload
    }
}

proptest! {
    /// The spliced body is byte-identical to serde_json's encoding of the typed request, and
    /// decodes back to it.
    #[test]
    fn spliced_bodies_equal_serde_json(
        payload in payload(),
        label in proptest::option::of(".{0,8}"),
        token in any::<String>(),
        validate_only in any::<bool>(),
    ) {
        let mut options = Options::new();
        options.analytics_label = label;
        let message = Message::new(&payload, &options).unwrap();
        let request = SendRequest {
            message: TargetedMessage { token: token.clone(), content: content(&payload, &options).unwrap() },
            validate_only,
        };
        let body = message.body_for(&token, validate_only);
        prop_assert_eq!(&body[..], &serde_json::to_vec(&request).unwrap()[..]);
        let decoded: SendRequest = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(decoded, request);
        prop_assert!(message.encoded_len() <= MAX_MESSAGE_SIZE);
    }

    /// Every non-null data value becomes a string that is the value's own JSON text.
    #[test]
    fn data_values_become_their_json_text(key in "[a-z]{1,6}", value in data_value()) {
        let payload = Payload::new().data(key.clone(), value.clone());
        let message = Message::new(&payload, &Options::new()).unwrap();
        let sent = body(&message, "t", false)["message"]["data"][&key].clone();
        let text = sent.as_str().unwrap();
        match &value {
            Value::String(original) => prop_assert_eq!(text, original),
            other => prop_assert_eq!(text, other.to_string()),
        }
    }
}
