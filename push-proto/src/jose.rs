//! Pieces of JSON Web Tokens shared by the providers that sign them (APNs ES256 provider
//! tokens, FCM RS256 service-account assertions, Web Push ES256 VAPID tokens).

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use thiserror::Error;

/// A signer failed (an external key store was unreachable, say).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub String);

/// base64url without padding (RFC 4648 §5), as JWTs use it.
pub fn base64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// base64url with or without its `=` padding (at most two), as keys and secrets are written
/// in the wild; `None` when it is not base64url.
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let unpadded = text.strip_suffix("==").or_else(|| text.strip_suffix('='));
    Base64UrlUnpadded::decode_vec(unpadded.unwrap_or(text)).ok()
}

/// The compact JWT `base64url(header) "." base64url(claims) "." base64url(signature)`, with
/// `sign` given the signing input (the first two parts and the dot).
pub(crate) fn compact_jwt<S: AsRef<[u8]>>(
    header: &str,
    claims: &str,
    sign: impl FnOnce(&[u8]) -> Result<S, SignError>,
) -> Result<String, SignError> {
    let mut jwt = base64url(header.as_bytes());
    jwt.push('.');
    jwt.push_str(&base64url(claims.as_bytes()));
    let signature = sign(jwt.as_bytes())?;
    jwt.push('.');
    jwt.push_str(&base64url(signature.as_ref()));
    Ok(jwt)
}

/// The JOSE ES256 signature of `input` with `key`: ECDSA P-256 over SHA-256, deterministic
/// (RFC 6979), as 64 bytes `r || s`.
pub(crate) fn es256_sign(key: &SigningKey, input: &[u8]) -> Result<[u8; 64], SignError> {
    let signature: Signature = key.try_sign(input).map_err(|e| SignError(e.to_string()))?;
    Ok(signature.to_bytes().into())
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
    fn base64url_decode_takes_padding_or_none() {
        assert_eq!(base64url_decode("Zg").unwrap(), b"f");
        assert_eq!(base64url_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64url_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64url_decode("").unwrap(), b"");
        for bad in ["Zg===", "Z", "+/8", "Zm 8", "Zh"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn compact_jwt_signs_the_first_two_parts() {
        let jwt = compact_jwt("{}", r#"{"a":1}"#, |input| {
            assert_eq!(input, b"e30.eyJhIjoxfQ");
            Ok([0xfbu8, 0xff])
        })
        .unwrap();
        assert_eq!(jwt, "e30.eyJhIjoxfQ.-_8");
        let failed = compact_jwt("{}", "{}", |_| Err::<[u8; 0], _>(SignError("hsm".into())));
        assert_eq!(failed, Err(SignError("hsm".into())));
    }

    #[test]
    fn unix_time_follows_the_anchor_both_ways() {
        let now = Instant::now() + Duration::from_secs(100);
        assert_eq!(unix_time((now, 1_000), now + Duration::from_secs(3)), 1_003);
        assert_eq!(unix_time((now, 1_000), now - Duration::from_secs(3)), 997);
    }
}
