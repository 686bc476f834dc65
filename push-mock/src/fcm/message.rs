//! Validation of a `messages:send` request body, with FCM's field names and descriptions.

use serde_json::{Map, Value};

use super::rpc::RpcError;
use super::state::FcmTarget;

/// The largest message (without its target, as compact JSON) to a token or condition.
pub const MAX_MESSAGE: usize = 4096;
/// The largest message to a topic.
pub const MAX_TOPIC_MESSAGE: usize = 2048;
/// The longest `android.ttl`: 28 days.
const MAX_TTL_SECS: u64 = 28 * 24 * 60 * 60;
/// Fields of the request body (proto3 JSON accepts both spellings).
const BODY_FIELDS: [&str; 3] = ["message", "validate_only", "validateOnly"];
/// Fields of `message`.
const MESSAGE_FIELDS: [&str; 11] = [
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "fcmOptions",
    "token",
    "topic",
    "condition",
];
/// The description of a bad registration token.
const BAD_TOKEN: &str = "The registration token is not a valid FCM registration token";

/// A request body that passed validation.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) target: FcmTarget,
    pub(crate) message: Value,
    pub(crate) validate_only: bool,
}

/// The registration token of a body, when it has a string one (valid or not).
pub(crate) fn token_of(body: &Value) -> Option<String> {
    body.get("message")?
        .get("token")?
        .as_str()
        .map(str::to_owned)
}

/// Checks a parsed request body.
pub(crate) fn check(body: Value) -> Result<Parsed, RpcError> {
    let Value::Object(mut body) = body else {
        return Err(RpcError::invalid(
            "Invalid JSON payload received. Expected an object.",
        ));
    };
    unknown_fields(&body, &BODY_FIELDS, "", "")?;
    let validate_only = match body
        .get("validate_only")
        .or_else(|| body.get("validateOnly"))
    {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(RpcError::invalid_field(
                "validate_only",
                format!("Invalid value at 'validate_only' (TYPE_BOOL), {other}"),
            ));
        }
    };
    let message = match body.remove("message") {
        Some(Value::Object(message)) => message,
        None | Some(Value::Null) => {
            return Err(RpcError::invalid_field(
                "message",
                "The message is missing.",
            ));
        }
        Some(other) => {
            return Err(RpcError::invalid_field(
                "message",
                format!(
                    "Invalid value at 'message' (type.googleapis.com/google.firebase.fcm.v1.Message), {other}"
                ),
            ));
        }
    };
    unknown_fields(&message, &MESSAGE_FIELDS, "message", " at 'message'")?;
    let target = target(&message)?;
    data(&message)?;
    android(&message)?;
    let mut content = message.clone();
    for name in ["token", "topic", "condition"] {
        content.remove(name);
    }
    let size = serde_json::to_vec(&content).map_or(usize::MAX, |json| json.len());
    let limit = match target {
        FcmTarget::Topic(_) => MAX_TOPIC_MESSAGE,
        FcmTarget::Token(_) | FcmTarget::Condition(_) => MAX_MESSAGE,
    };
    if size > limit {
        return Err(RpcError::invalid_field("message", "Message is too big"));
    }
    Ok(Parsed {
        target,
        message: Value::Object(message),
        validate_only,
    })
}

fn unknown_fields(
    object: &Map<String, Value>,
    known: &[&str],
    field: &str,
    at: &str,
) -> Result<(), RpcError> {
    match object.keys().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(RpcError::invalid_field(
            field,
            format!(
                "Invalid JSON payload received. Unknown name \"{name}\"{at}: Cannot find field."
            ),
        )),
        None => Ok(()),
    }
}

/// Exactly one of `token`, `topic` and `condition`, well-formed.
fn target(message: &Map<String, Value>) -> Result<FcmTarget, RpcError> {
    let present: Vec<(&str, &Value)> = ["token", "topic", "condition"]
        .into_iter()
        .filter_map(|name| {
            message
                .get(name)
                .filter(|value| !value.is_null())
                .map(|value| (name, value))
        })
        .collect();
    let (name, value) = match present.as_slice() {
        [] => {
            return Err(RpcError::invalid_field(
                "message",
                "Recipient of the message is not set.",
            ));
        }
        [one] => *one,
        [_, (second, _), ..] => {
            return Err(RpcError::invalid_field(
                "message",
                format!(
                    "Invalid JSON payload received. Oneof field 'target' is already set. \
                     Cannot set '{second}'"
                ),
            ));
        }
    };
    let field = format!("message.{name}");
    let Some(text) = value.as_str() else {
        return Err(RpcError::invalid_field(
            &field,
            format!("Invalid value at '{field}' (TYPE_STRING), {value}"),
        ));
    };
    match name {
        "token" => {
            if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(RpcError::invalid_field(field, BAD_TOKEN));
            }
            Ok(FcmTarget::Token(text.to_owned()))
        }
        "topic" => {
            let name = text.strip_prefix("/topics/").unwrap_or(text);
            let valid = !name.is_empty()
                && name.len() <= 900
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b));
            if !valid {
                return Err(RpcError::invalid_field(field, "Invalid topic name."));
            }
            Ok(FcmTarget::Topic(text.to_owned()))
        }
        _ => {
            if text.trim().is_empty() {
                return Err(RpcError::invalid_field(
                    field,
                    "Invalid condition expression provided.",
                ));
            }
            Ok(FcmTarget::Condition(text.to_owned()))
        }
    }
}

/// `data`: an object of strings, without reserved keys.
fn data(message: &Map<String, Value>) -> Result<(), RpcError> {
    let data = match message.get("data") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(RpcError::invalid_field(
                "message.data",
                format!("Invalid value at 'message.data' (map<string, string>), {other}"),
            ));
        }
    };
    for (key, value) in data {
        let field = format!("message.data.{key}");
        if !value.is_string() {
            return Err(RpcError::invalid_field(
                &field,
                format!("Invalid value at '{field}' (TYPE_STRING), {value}"),
            ));
        }
        let reserved = key == "from"
            || key == "message_type"
            || key.starts_with("google.")
            || key.starts_with("gcm.");
        if reserved {
            return Err(RpcError::invalid_field(
                field,
                format!("Invalid data payload key: {key}"),
            ));
        }
    }
    Ok(())
}

/// `android.priority` and `android.ttl`.
fn android(message: &Map<String, Value>) -> Result<(), RpcError> {
    let android = match message.get("android") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(android)) => android,
        Some(other) => {
            return Err(RpcError::invalid_field(
                "message.android",
                format!(
                    "Invalid value at 'message.android' (type.googleapis.com/google.firebase.fcm.v1.AndroidConfig), {other}"
                ),
            ));
        }
    };
    match android.get("priority") {
        None | Some(Value::Null) => {}
        Some(Value::String(priority)) if priority == "NORMAL" || priority == "HIGH" => {}
        Some(other) => {
            return Err(RpcError::invalid_field(
                "message.android.priority",
                format!(
                    "Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), {other}"
                ),
            ));
        }
    }
    match android.get("ttl") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(ttl)) => match ttl_secs(ttl) {
            Some((secs, nanos)) if secs > MAX_TTL_SECS || (secs == MAX_TTL_SECS && nanos) => {
                Err(RpcError::invalid_field(
                    "message.android.ttl",
                    "The TTL is too long: at most 2419200s (28 days).",
                ))
            }
            Some(_) => Ok(()),
            None => Err(bad_ttl(&Value::String(ttl.clone()))),
        },
        Some(other) => Err(bad_ttl(other)),
    }
}

fn bad_ttl(value: &Value) -> RpcError {
    RpcError::invalid_field(
        "message.android.ttl",
        format!(
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), {value}"
        ),
    )
}

/// A protobuf `Duration` in JSON (`"3600s"`, `"3.5s"`): whole seconds, and whether a
/// non-zero fraction follows.
fn ttl_secs(text: &str) -> Option<(u64, bool)> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 9) {
        return None;
    }
    let secs = whole.parse().ok()?;
    Some((secs, fraction.is_some_and(|f| f.bytes().any(|b| b != b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(body: Value) -> (String, String) {
        let error = check(body).unwrap_err();
        assert_eq!(error.status.as_u16(), 400);
        assert_eq!(error.error_code.as_deref(), Some("INVALID_ARGUMENT"));
        error.violation.map(|v| *v).unwrap_or_default()
    }

    #[test]
    fn a_full_message_passes() {
        let parsed = check(json!({
            "message": {
                "token": "abc:DEF_123",
                "notification": {"title": "t", "body": "b"},
                "data": {"k": "v"},
                "android": {"priority": "HIGH", "ttl": "3.5s", "collapse_key": "c"},
                "apns": {"headers": {"apns-priority": "10"}},
                "fcm_options": {"analytics_label": "l"},
            },
            "validate_only": true,
        }))
        .unwrap();
        assert_eq!(parsed.target, FcmTarget::Token("abc:DEF_123".into()));
        assert!(parsed.validate_only);
        assert_eq!(parsed.message["data"]["k"], "v");
        let topic = check(json!({"message": {"topic": "/topics/news"}})).unwrap();
        assert_eq!(topic.target, FcmTarget::Topic("/topics/news".into()));
        assert!(!topic.validate_only);
        let condition = check(json!({"message": {"condition": "'a' in topics"}})).unwrap();
        assert_eq!(condition.target.token(), None);
    }

    #[test]
    fn each_defect_names_its_field() {
        let cases = [
            (json!({"message": {}}), "message"),
            (json!({"message": {"token": "a", "topic": "b"}}), "message"),
            (json!({"message": {"token": ""}}), "message.token"),
            (json!({"message": {"token": "a b"}}), "message.token"),
            (json!({"message": {"token": 5}}), "message.token"),
            (json!({"message": {"topic": "a/b"}}), "message.topic"),
            (json!({"message": {"condition": " "}}), "message.condition"),
            (
                json!({"message": {"token": "a", "data": {"n": 1}}}),
                "message.data.n",
            ),
            (
                json!({"message": {"token": "a", "data": {"from": "x"}}}),
                "message.data.from",
            ),
            (
                json!({"message": {"token": "a", "data": []}}),
                "message.data",
            ),
            (
                json!({"message": {"token": "a", "android": {"priority": "high"}}}),
                "message.android.priority",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "3600"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": 3600}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "2419201s"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "2419200.5s"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "android": {"ttl": "1.1234567890s"}}}),
                "message.android.ttl",
            ),
            (
                json!({"message": {"token": "a", "tokens": ["b"]}}),
                "message",
            ),
            (
                json!({"message": {"token": "a"}, "validate_only": "yes"}),
                "validate_only",
            ),
            (json!({"message": "hi"}), "message"),
            (
                json!({"message": {"token": "a", "data": {"k": "v".repeat(4097)}}}),
                "message",
            ),
            (
                json!({"message": {"topic": "t", "data": {"k": "v".repeat(2049)}}}),
                "message",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()).0, field, "{body}");
        }
        assert_eq!(field_of(json!({"message": {"token": "a b"}})).1, BAD_TOKEN);
        assert!(check(json!({"message": {"token": "a", "android": {"ttl": "2419200s"}}})).is_ok());
        assert!(check(json!([])).is_err());
        assert_eq!(field_of(json!({"msg": {}})).0, "");
    }
}
