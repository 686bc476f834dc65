//! Devices and their validated tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The push service a device is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple devices, reached through APNs.
    Ios,
    /// Android devices, reached through FCM (v1, or legacy GCM).
    Android,
    /// Browsers, reached through the push service of their subscription (Web Push); the
    /// device's token is the subscription's `PushSubscription` JSON.
    Web,
}

impl Platform {
    /// Every platform, in a stable order.
    pub const ALL: [Platform; 3] = [Platform::Ios, Platform::Android, Platform::Web];

    /// The lowercase name used in files, databases and JSON (`ios`, `android`, `web`).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Web => "web",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform name that is not `ios`, `android` or `web`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown platform {0:?} (expected \"ios\", \"android\" or \"web\")")]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    /// Parses `ios`, `android` or `web`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("ios") {
            Ok(Platform::Ios)
        } else if s.eq_ignore_ascii_case("android") {
            Ok(Platform::Android)
        } else if s.eq_ignore_ascii_case("web") {
            Ok(Platform::Web)
        } else {
            Err(UnknownPlatform(s.to_owned()))
        }
    }
}

/// One device to notify: a platform and the token the app registered, exactly as the
/// application stored it.
///
/// The token is kept verbatim (case included) so that feedback about the device can be matched
/// back to the row it came from; it is validated when the device is routed to its provider
/// ([`ApnsToken::parse`], [`GcmToken::parse`]), and a malformed one becomes an
/// `invalid_token_format` feedback for that device only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    /// Which service delivers to this device.
    pub platform: Platform,
    /// The device token as registered by the app.
    pub token: String,
}

impl Device {
    /// A device on `platform` with `token`.
    pub fn new(platform: Platform, token: impl Into<String>) -> Self {
        Device {
            platform,
            token: token.into(),
        }
    }

    /// An iOS device.
    pub fn ios(token: impl Into<String>) -> Self {
        Device::new(Platform::Ios, token)
    }

    /// An Android device.
    pub fn android(token: impl Into<String>) -> Self {
        Device::new(Platform::Android, token)
    }

    /// A browser, by its `PushSubscription` JSON.
    pub fn web(subscription: impl Into<String>) -> Self {
        Device::new(Platform::Web, subscription)
    }
}

/// Why a token string is not a valid token for its platform.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// An APNs token must be 64 hexadecimal characters (32 bytes).
    #[error("an APNs token must be 64 hex characters, got {0}")]
    ApnsLength(usize),
    /// An APNs token contained a character that is not a hex digit.
    #[error("an APNs token must be hex, found {0:?}")]
    ApnsNotHex(char),
    /// A GCM registration id was empty.
    #[error("a GCM registration id must not be empty")]
    GcmEmpty,
    /// A GCM registration id contained whitespace or a control character.
    #[error("a GCM registration id must not contain whitespace or control characters")]
    GcmWhitespace,
    /// A GCM registration id was longer than [`GcmToken::MAX_LEN`].
    #[error("a GCM registration id must be at most {max} bytes, got {0}", max = GcmToken::MAX_LEN)]
    GcmTooLong(usize),
    /// A Web Push subscription that is not a usable `PushSubscription` JSON (see
    /// [`Subscription::from_json`](crate::webpush::Subscription::from_json)); why follows.
    #[error("{0}")]
    WebSubscription(String),
    /// The service itself called the token malformed (FCM v1 `INVALID_ARGUMENT` on
    /// `message.token`); its words follow.
    #[error("the service says the token is malformed: {0}")]
    RejectedByService(String),
}

/// A validated APNs device token: 32 bytes, written as 64 hex characters (any case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApnsToken([u8; ApnsToken::LEN]);

impl ApnsToken {
    /// Length of a token in bytes.
    pub const LEN: usize = 32;

    /// Parses 64 hex characters, upper or lower case.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let digits = text.as_bytes();
        if digits.len() != 2 * Self::LEN {
            return Err(TokenError::ApnsLength(text.chars().count()));
        }
        let mut bytes = [0u8; Self::LEN];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
        }
        Ok(ApnsToken(bytes))
    }

    /// The token from its 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        ApnsToken(bytes)
    }

    /// The 32 raw bytes, as they travel in frames and feedback tuples.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The lowercase hex form.
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(2 * Self::LEN);
        self.write_hex(&mut hex);
        hex
    }

    /// Appends the 64 lowercase hex digits to `out`.
    pub fn write_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 2 * Self::LEN];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        // Hex digits are ASCII: one copy, not a UTF-8 encoding per character.
        if let Ok(hex) = std::str::from_utf8(&hex) {
            out.push_str(hex);
        }
    }
}

fn hex_value(digit: u8) -> Result<u8, TokenError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(TokenError::ApnsNotHex(char::from(digit))),
    }
}

impl fmt::Display for ApnsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ApnsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApnsToken({self})")
    }
}

impl FromStr for ApnsToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApnsToken::parse(s)
    }
}

/// A validated GCM registration id: non-empty, no whitespace or control characters, at most
/// [`GcmToken::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GcmToken(String);

impl GcmToken {
    /// Longest registration id accepted, in bytes. Real ids are about 150-200 characters; the
    /// bound keeps a corrupt row from inflating a request.
    pub const MAX_LEN: usize = 4096;

    /// Validates a registration id.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.is_empty() {
            return Err(TokenError::GcmEmpty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(TokenError::GcmTooLong(text.len()));
        }
        if has_space_or_control(text) {
            return Err(TokenError::GcmWhitespace);
        }
        Ok(GcmToken(text.to_owned()))
    }

    /// The registration id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when `text` has whitespace or a control character. Registration ids are ASCII: their
/// bytes are checked as such (once per notification, 150-200 of them), the rare other text
/// char by char.
fn has_space_or_control(text: &str) -> bool {
    if text.is_ascii() {
        // For ASCII, `char::is_whitespace` is the ASCII whitespace (space, \t, \n, \x0c, \r)
        // plus \x0b, a control character, and `char::is_control` is the ASCII control range.
        return text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    }
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl fmt::Display for GcmToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn apns_token_is_case_insensitive() {
        let lower = ApnsToken::parse(&"ab".repeat(32)).unwrap();
        let upper = ApnsToken::parse(&"AB".repeat(32)).unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower.as_bytes(), &[0xab; 32]);
        assert_eq!(upper.to_hex(), "ab".repeat(32));
    }

    #[test]
    fn apns_token_rejects_bad_length_and_digits() {
        assert_eq!(ApnsToken::parse("abc"), Err(TokenError::ApnsLength(3)));
        assert_eq!(
            ApnsToken::parse(&"ab".repeat(33)),
            Err(TokenError::ApnsLength(66))
        );
        let mut bad = "0".repeat(63);
        bad.push('g');
        assert_eq!(ApnsToken::parse(&bad), Err(TokenError::ApnsNotHex('g')));
        // A multi-byte character must not panic the byte-pair walk.
        let mut wide = "0".repeat(62);
        wide.push('é');
        assert!(ApnsToken::parse(&wide).is_err());
    }

    #[test]
    fn gcm_token_rules() {
        assert!(GcmToken::parse("APA91bH-abc_123:xyz").is_ok());
        assert_eq!(GcmToken::parse(""), Err(TokenError::GcmEmpty));
        assert_eq!(GcmToken::parse("a b"), Err(TokenError::GcmWhitespace));
        assert_eq!(GcmToken::parse("a\u{7}"), Err(TokenError::GcmWhitespace));
        let long = "x".repeat(GcmToken::MAX_LEN + 1);
        assert_eq!(
            GcmToken::parse(&long),
            Err(TokenError::GcmTooLong(GcmToken::MAX_LEN + 1))
        );
    }

    #[test]
    fn platform_names_round_trip() {
        for platform in Platform::ALL {
            assert_eq!(platform.as_str().parse::<Platform>(), Ok(platform));
        }
        assert_eq!("IOS".parse::<Platform>(), Ok(Platform::Ios));
        assert_eq!("Web".parse::<Platform>(), Ok(Platform::Web));
        assert!("windows".parse::<Platform>().is_err());
    }

    proptest! {
        #[test]
        fn apns_token_hex_round_trips(bytes in any::<[u8; 32]>()) {
            let token = ApnsToken::from_bytes(bytes);
            prop_assert_eq!(ApnsToken::parse(&token.to_hex()), Ok(token));
            prop_assert_eq!(ApnsToken::parse(&token.to_hex().to_uppercase()), Ok(token));
        }

        #[test]
        fn gcm_token_refuses_exactly_whitespace_and_controls(text in "[ -~\t\n\x0b\x0c\r\x00\x7f\u{85}\u{a0}é]{1,40}") {
            let refused = text.chars().any(|c| c.is_whitespace() || c.is_control());
            prop_assert_eq!(has_space_or_control(&text), refused);
            prop_assert_eq!(GcmToken::parse(&text).is_err(), refused);
        }

        #[test]
        fn apns_token_accepts_exactly_hex_of_64(text in "[0-9a-fA-Fg ]{60,68}") {
            match ApnsToken::parse(&text) {
                Ok(token) => prop_assert_eq!(token.to_hex(), text.to_lowercase()),
                Err(_) => prop_assert!(
                    text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit())
                ),
            }
        }
    }
}
