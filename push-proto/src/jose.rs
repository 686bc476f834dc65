//! Pieces of JSON Web Tokens shared by the providers that sign them (APNs ES256 provider
//! tokens, FCM RS256 service-account assertions).

use base64ct::{Base64UrlUnpadded, Encoding};
use thiserror::Error;

/// A signer failed (an external key store was unreachable, say).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub String);

/// base64url without padding (RFC 4648 §5), as JWTs use it.
pub fn base64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// `iat` at `now`: the wall-clock reading `(at, unix)` moved by the time elapsed since `at`
/// (or back by the time before it), in whole UNIX seconds.
pub(crate) fn unix_time(anchor: (std::time::Instant, u64), now: std::time::Instant) -> u64 {
    let (at, unix) = anchor;
    let elapsed = now.saturating_duration_since(at).as_secs();
    let before = at.saturating_duration_since(now).as_secs();
    unix.saturating_add(elapsed).saturating_sub(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn base64url_vectors() {
        // RFC 4648 §10, url alphabet, no padding.
        for (input, output) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), output);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn unix_time_follows_the_anchor_both_ways() {
        let now = Instant::now() + Duration::from_secs(100);
        assert_eq!(unix_time((now, 1_000), now + Duration::from_secs(3)), 1_003);
        assert_eq!(unix_time((now, 1_000), now - Duration::from_secs(3)), 997);
    }
}
