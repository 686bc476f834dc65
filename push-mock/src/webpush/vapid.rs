//! Verification of the `Authorization: vapid t=<JWT>, k=<key>` header (RFC 8292): the ES256
//! signature under `k`, the audience, the expiry and the contact.

use base64ct::{Base64UrlUnpadded, Encoding};
use http::{HeaderValue, StatusCode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};

/// The longest token lifetime a push service accepts: `exp` at most this far ahead.
const MAX_AHEAD: u64 = 24 * 60 * 60;

/// Why a request's VAPID authorization was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// Not `vapid t=..., k=...`, or `k` is not an uncompressed P-256 point.
    Malformed,
    /// The JWT is not three base64url parts, its `alg` is not `ES256`, or the signature does
    /// not verify under `k`.
    BadJwt,
    /// `aud` is not the push service's origin.
    Audience,
    /// `exp` is missing or has passed.
    Expired,
    /// `exp` is more than 24 hours ahead.
    TooLong,
    /// `sub` is not a `mailto:` or `https:` contact.
    Subject,
    /// `k` is not the key the subscription was made with.
    KeyMismatch,
}

impl Refusal {
    /// The status: 403 for a key mismatch, 401 otherwise.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::KeyMismatch => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The reason in the answer's body.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "MissingAuthorization",
            Refusal::Malformed => "BadAuthorizationHeader",
            Refusal::BadJwt => "BadJwtToken",
            Refusal::Audience => "BadJwtAudience",
            Refusal::Expired => "ExpiredJwtToken",
            Refusal::TooLong => "JwtExpirationTooFar",
            Refusal::Subject => "BadJwtSubject",
            Refusal::KeyMismatch => "VapidPkHashMismatch",
        }
    }
}

/// Verifies `authorization` for the push service at `origin` at UNIX time `now`; returns the
/// key `k` the token was signed with.
pub(crate) fn verify(
    authorization: Option<&HeaderValue>,
    origin: &str,
    now: u64,
) -> Result<Vec<u8>, Refusal> {
    let text = authorization.ok_or(Refusal::Missing)?;
    let text = text.to_str().map_err(|_| Refusal::Malformed)?;
    let (scheme, parameters) = text.split_once(' ').ok_or(Refusal::Malformed)?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(Refusal::Malformed);
    }
    let (mut token, mut key) = (None, None);
    for parameter in parameters.split(',') {
        match parameter.trim().split_once('=') {
            Some(("t", value)) => token = Some(value),
            Some(("k", value)) => key = Some(value),
            _ => return Err(Refusal::Malformed),
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return Err(Refusal::Malformed);
    };
    let key =
        Base64UrlUnpadded::decode_vec(key.trim_end_matches('=')).map_err(|_| Refusal::Malformed)?;
    if key.len() != 65 || key[0] != 0x04 {
        return Err(Refusal::Malformed);
    }
    let verifying = VerifyingKey::from_sec1_bytes(&key).map_err(|_| Refusal::Malformed)?;
    let claims = verified_claims(token, &verifying).ok_or(Refusal::BadJwt)?;
    if claims.get("aud").and_then(Value::as_str) != Some(origin) {
        return Err(Refusal::Audience);
    }
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp <= now => return Err(Refusal::Expired),
        Some(exp) if exp > now.saturating_add(MAX_AHEAD) => return Err(Refusal::TooLong),
        Some(_) => {}
        None => return Err(Refusal::Expired),
    }
    let contact = claims.get("sub").and_then(Value::as_str);
    let contact_ok = contact.is_some_and(|sub| {
        sub.strip_prefix("mailto:").is_some_and(|a| a.contains('@'))
            || sub
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty())
    });
    if !contact_ok {
        return Err(Refusal::Subject);
    }
    Ok(key)
}

/// The claims of `jwt` when its header says ES256 and its signature verifies under `key`.
fn verified_claims(jwt: &str, key: &VerifyingKey) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let object = |part: &str| -> Option<Map<String, Value>> {
        let bytes = Base64UrlUnpadded::decode_vec(part).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    if object(header)?.get("alg").and_then(Value::as_str) != Some("ES256") {
        return None;
    }
    let signature = Base64UrlUnpadded::decode_vec(signature).ok()?;
    let signature = Signature::from_slice(&signature).ok()?;
    let signing_input = &jwt[..header.len() + 1 + claims.len()];
    key.verify(signing_input.as_bytes(), &signature).ok()?;
    object(claims)
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use serde_json::json;

    use super::*;

    const ORIGIN: &str = "https://localhost:8443";
    const NOW: u64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7; 32]).unwrap()
    }

    fn public(key: &SigningKey) -> String {
        let point = key.verifying_key().to_encoded_point(false);
        Base64UrlUnpadded::encode_string(point.as_bytes())
    }

    fn header(header: &Value, claims: &Value, key: &SigningKey) -> HeaderValue {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature: Signature = key.sign(input.as_bytes());
        let jwt = format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        );
        HeaderValue::from_str(&format!("vapid t={jwt}, k={}", public(key))).unwrap()
    }

    fn es256() -> Value {
        json!({"typ": "JWT", "alg": "ES256"})
    }

    fn claims(aud: &str, exp: u64, sub: &str) -> Value {
        json!({"aud": aud, "exp": exp, "sub": sub})
    }

    #[test]
    fn a_good_token_gives_its_key_and_each_defect_its_refusal() {
        let key = key();
        let good = header(
            &es256(),
            &claims(ORIGIN, NOW + 3600, "mailto:a@b.example"),
            &key,
        );
        let k = verify(Some(&good), ORIGIN, NOW).unwrap();
        assert_eq!(Base64UrlUnpadded::encode_string(&k), public(&key));

        let cases = [
            (
                claims("https://other.example", NOW + 60, "mailto:a@b"),
                Refusal::Audience,
            ),
            (claims(ORIGIN, NOW, "mailto:a@b"), Refusal::Expired),
            (
                json!({"aud": ORIGIN, "sub": "mailto:a@b"}),
                Refusal::Expired,
            ),
            (
                claims(ORIGIN, NOW + 24 * 3600 + 1, "mailto:a@b"),
                Refusal::TooLong,
            ),
            (claims(ORIGIN, NOW + 60, "a@b"), Refusal::Subject),
            (json!({"aud": ORIGIN, "exp": NOW + 60}), Refusal::Subject),
        ];
        for (claims, refusal) in cases {
            let value = header(&es256(), &claims, &key);
            assert_eq!(verify(Some(&value), ORIGIN, NOW), Err(refusal), "{claims}");
        }
        let hs256 = header(
            &json!({"alg": "HS256"}),
            &claims(ORIGIN, NOW + 60, "mailto:a@b"),
            &key,
        );
        assert_eq!(verify(Some(&hs256), ORIGIN, NOW), Err(Refusal::BadJwt));
        // Signed by another key than `k`.
        let text = good.to_str().unwrap();
        let other = public(&SigningKey::from_slice(&[9; 32]).unwrap());
        let swapped =
            HeaderValue::from_str(&format!("{}k={other}", &text[..text.find("k=").unwrap()]))
                .unwrap();
        assert_eq!(verify(Some(&swapped), ORIGIN, NOW), Err(Refusal::BadJwt));
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(verify(None, ORIGIN, NOW), Err(Refusal::Missing));
        for text in [
            "Bearer abc",
            "vapid",
            "vapid t=a.b.c",
            "vapid k=BAAA",
            "vapid t=a.b.c, k=AAAA",
            "vapid t=a.b.c, k=BAAA, x=1",
            "WebPush abc",
        ] {
            let value = HeaderValue::from_str(text).unwrap();
            assert_eq!(
                verify(Some(&value), ORIGIN, NOW),
                Err(Refusal::Malformed),
                "{text}"
            );
        }
        let key = public(&key());
        let value = HeaderValue::from_str(&format!("vapid t=a.b.c, k={key}")).unwrap();
        assert_eq!(verify(Some(&value), ORIGIN, NOW), Err(Refusal::BadJwt));
        assert_eq!(Refusal::KeyMismatch.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refusal::Expired.status(), StatusCode::UNAUTHORIZED);
    }
}
