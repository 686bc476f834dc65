//! Verification of the RS256 JWT a client posts to the token endpoint (the "assertion" of
//! the JWT-bearer grant).

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::account::{FCM_SCOPE, ServiceAccount};

/// An assertion whose `iat` is further in the future than this is rejected.
const FUTURE_SKEW: u64 = 60;
/// The longest lifetime (`exp - iat`) Google accepts.
const MAX_LIFETIME: u64 = 60 * 60;

/// Why an assertion was rejected: the OAuth2 `error` and `error_description` Google answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not three base64url JSON parts.
    Malformed,
    /// The header's `alg` is not `RS256`.
    Algorithm,
    /// Wrong `kid`, or a signature that does not verify.
    Signature,
    /// `iss` is not the service account's `client_email`.
    Issuer,
    /// `aud` is not the token URL.
    Audience,
    /// `scope` lacks the FCM scope.
    Scope,
    /// `iat`/`exp` missing, `iat` in the future, expired, or living more than an hour.
    Lifetime,
}

impl Rejection {
    /// The OAuth2 `error` code.
    pub(crate) fn error(self) -> &'static str {
        match self {
            Rejection::Scope => "invalid_scope",
            _ => "invalid_grant",
        }
    }

    /// The `error_description`, as Google words it.
    pub(crate) fn description(self) -> &'static str {
        match self {
            Rejection::Malformed => "Invalid JWT: Unable to parse the JWT.",
            Rejection::Algorithm => "Invalid JWT: Only RS256 is supported.",
            Rejection::Signature => "Invalid JWT Signature.",
            Rejection::Issuer => "Invalid grant: account not found",
            Rejection::Audience => "Invalid JWT: Failed audience check.",
            Rejection::Scope => "Invalid OAuth scope or ID token audience provided.",
            Rejection::Lifetime => {
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
                 timeframe. Check your iat and exp values in the JWT claim."
            }
        }
    }
}

/// Verifies `assertion` for `account` and `audience` (the token URL) at UNIX time `now`.
pub(crate) fn verify(
    assertion: &str,
    account: &ServiceAccount,
    audience: &str,
    now: u64,
) -> Result<(), Rejection> {
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let header_json = object(header).ok_or(Rejection::Malformed)?;
    let claims_json = object(claims).ok_or(Rejection::Malformed)?;
    let signature = Base64UrlUnpadded::decode_vec(signature).map_err(|_| Rejection::Malformed)?;
    if text(&header_json, "alg") != Some("RS256") {
        return Err(Rejection::Algorithm);
    }
    if text(&header_json, "kid") != Some(account.private_key_id.as_str()) {
        return Err(Rejection::Signature);
    }
    let signed = &assertion[..header.len() + 1 + claims.len()];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key())
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| Rejection::Signature)?;
    if text(&claims_json, "iss") != Some(account.client_email.as_str()) {
        return Err(Rejection::Issuer);
    }
    if text(&claims_json, "aud") != Some(audience) {
        return Err(Rejection::Audience);
    }
    if !text(&claims_json, "scope").is_some_and(|scope| scope.split(' ').any(|s| s == FCM_SCOPE)) {
        return Err(Rejection::Scope);
    }
    let number = |name: &str| claims_json.get(name).and_then(Value::as_u64);
    let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
        return Err(Rejection::Lifetime);
    };
    if iat > now.saturating_add(FUTURE_SKEW) || exp <= now || exp.saturating_sub(iat) > MAX_LIFETIME
    {
        return Err(Rejection::Lifetime);
    }
    Ok(())
}

/// A base64url-encoded JSON object.
fn object(part: &str) -> Option<Map<String, Value>> {
    let bytes = Base64UrlUnpadded::decode_vec(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(object) => Some(object),
        _ => None,
    }
}

fn text<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcm::account::{DEMO_PRIVATE_KEY_PEM, OTHER_PRIVATE_KEY_PEM};
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;

    const AUD: &str = "https://localhost:1/token";
    const NOW: u64 = 1_800_000_000;

    fn sign(pem: &str, header: &Value, claims: &Value) -> String {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&signature))
    }

    fn claims(account: &ServiceAccount) -> Value {
        serde_json::json!({
            "iss": account.client_email, "aud": AUD, "scope": FCM_SCOPE,
            "iat": NOW, "exp": NOW + 3600,
        })
    }

    fn header(kid: &str) -> Value {
        serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid})
    }

    #[test]
    fn a_correct_assertion_verifies_and_each_defect_has_its_rejection() {
        let account = ServiceAccount::demo("p").unwrap();
        let kid = account.private_key_id.clone();
        let good = sign(DEMO_PRIVATE_KEY_PEM, &header(&kid), &claims(&account));
        assert_eq!(verify(&good, &account, AUD, NOW), Ok(()));
        assert_eq!(verify(&good, &account, AUD, NOW + 3599), Ok(()));
        assert_eq!(
            verify(&good, &account, AUD, NOW + 3600),
            Err(Rejection::Lifetime)
        );
        assert_eq!(
            verify(&good, &account, AUD, NOW - 120),
            Err(Rejection::Lifetime)
        );
        assert_eq!(
            verify(&good, &account, "https://other/token", NOW),
            Err(Rejection::Audience)
        );
        let wrong_key = sign(OTHER_PRIVATE_KEY_PEM, &header(&kid), &claims(&account));
        assert_eq!(
            verify(&wrong_key, &account, AUD, NOW),
            Err(Rejection::Signature)
        );
        let wrong_kid = sign(DEMO_PRIVATE_KEY_PEM, &header("other"), &claims(&account));
        assert_eq!(
            verify(&wrong_kid, &account, AUD, NOW),
            Err(Rejection::Signature)
        );
        let hs256 = serde_json::json!({"alg": "HS256", "kid": kid});
        let hs256 = sign(DEMO_PRIVATE_KEY_PEM, &hs256, &claims(&account));
        assert_eq!(
            verify(&hs256, &account, AUD, NOW),
            Err(Rejection::Algorithm)
        );
        let mut changed = claims(&account);
        changed["iss"] = "someone@else".into();
        let wrong_iss = sign(DEMO_PRIVATE_KEY_PEM, &header(&kid), &changed);
        assert_eq!(
            verify(&wrong_iss, &account, AUD, NOW),
            Err(Rejection::Issuer)
        );
        let mut changed = claims(&account);
        changed["scope"] = "https://www.googleapis.com/auth/cloud-platform".into();
        let no_scope = sign(DEMO_PRIVATE_KEY_PEM, &header(&kid), &changed);
        assert_eq!(verify(&no_scope, &account, AUD, NOW), Err(Rejection::Scope));
        let mut changed = claims(&account);
        changed["exp"] = (NOW + 3601).into();
        let too_long = sign(DEMO_PRIVATE_KEY_PEM, &header(&kid), &changed);
        assert_eq!(
            verify(&too_long, &account, AUD, NOW),
            Err(Rejection::Lifetime)
        );
        // The signature covers the claims: a changed claims part fails.
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            Base64UrlUnpadded::encode_string(changed.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            verify(&forged, &account, AUD, NOW),
            Err(Rejection::Signature)
        );
        for garbage in ["", "a.b", "a.b.c.d", "...", "eyJ.eyJ.AAAA", &good[1..]] {
            assert_eq!(
                verify(garbage, &account, AUD, NOW),
                Err(Rejection::Malformed),
                "{garbage}"
            );
        }
    }
}
