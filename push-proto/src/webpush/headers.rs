//! The RFC 8030 request headers a message carries: `TTL`, [`Urgency`] and [`Topic`].

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;
use thiserror::Error;

/// Longest [`Topic`], in characters (RFC 8030 §5.4).
pub const MAX_TOPIC_LEN: usize = 32;

/// How urgently the push service should deliver (RFC 8030 §5.3, the `Urgency` header): the
/// user agent may hold back low-urgency messages to save battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// `very-low`: on power and Wi-Fi (advertisements).
    VeryLow,
    /// `low`: on power or Wi-Fi (topic updates).
    Low,
    /// `normal`: on neither (chat, calendar); the service's default.
    Normal,
    /// `high`: even on low battery (incoming call, time-sensitive alert).
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of `very-low`, `low`, `normal`, `high`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("urgency must be very-low, low, normal or high, got {0:?}")]
pub struct UnknownUrgency(pub String);

impl FromStr for Urgency {
    type Err = UnknownUrgency;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            Urgency::VeryLow,
            Urgency::Low,
            Urgency::Normal,
            Urgency::High,
        ]
        .into_iter()
        .find(|urgency| urgency.as_str() == text)
        .ok_or_else(|| UnknownUrgency(text.chars().take(32).collect()))
    }
}

/// A message topic (RFC 8030 §5.4, the `Topic` header): a message still waiting at the push
/// service is replaced by a newer one with the same topic. 1 to 32 characters of the
/// base64url alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(HeaderValue);

/// Not a valid topic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a topic must be 1 to {MAX_TOPIC_LEN} characters of A-Z a-z 0-9 - _, got {0:?}")]
pub struct BadTopic(pub String);

impl Topic {
    /// Checks `topic`.
    pub fn new(topic: &str) -> Result<Self, BadTopic> {
        let valid = (1..=MAX_TOPIC_LEN).contains(&topic.len())
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match HeaderValue::from_str(topic) {
            Ok(value) if valid => Ok(Topic(value)),
            _ => Err(BadTopic(topic.chars().take(40).collect())),
        }
    }

    /// The topic.
    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted.
        self.0.to_str().unwrap_or_default()
    }

    /// The header value.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_round_trips_its_header_value() {
        for urgency in [
            Urgency::VeryLow,
            Urgency::Low,
            Urgency::Normal,
            Urgency::High,
        ] {
            assert_eq!(urgency.as_str().parse::<Urgency>(), Ok(urgency));
            assert_eq!(urgency.to_string(), urgency.as_str());
        }
        assert_eq!(
            "High".parse::<Urgency>(),
            Err(UnknownUrgency("High".into()))
        );
        assert!("verylow".parse::<Urgency>().is_err());
    }

    #[test]
    fn topics_are_short_base64url() {
        for good in ["a", "news-1", "Zm9v_YmFy", &"x".repeat(32)] {
            assert_eq!(Topic::new(good).unwrap().as_str(), good);
        }
        for bad in ["", &"x".repeat(33), "a b", "a/b", "a=", "é", "a\n"] {
            assert!(Topic::new(bad).is_err(), "{bad:?}");
        }
        assert!(
            Topic::new("a+b")
                .unwrap_err()
                .to_string()
                .contains("1 to 32 characters")
        );
    }
}
