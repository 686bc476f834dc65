//! VAPID (RFC 8292): the application server's identity, a P-256 key whose public half the web
//! app passed to `pushManager.subscribe()` as `applicationServerKey`, and the ES256 tokens
//! that prove it to a push service.
//!
//! A token is the JWT `{"typ":"JWT","alg":"ES256"}.{"aud":<origin>,"exp":<UNIX s>,
//! "sub":<contact>}.<signature>`, sent as `Authorization: vapid t=<JWT>, k=<public key>` (the
//! key uncompressed, base64url). `aud` is the push service's [`Origin`], `exp` at most 24
//! hours ahead, `sub` a `mailto:` or `https:` contact for the push service's operators.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use p256::SecretKey;
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;
use thiserror::Error;

use super::origin::Origin;
use super::subscription::P256DH_LEN;
use crate::jose::{SignError, base64url, base64url_decode, compact_jwt, es256_sign};

/// Longest token lifetime (`exp` minus the time of signing) RFC 8292 allows.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Default token lifetime: half the maximum, so a push service whose clock is hours ahead
/// still takes it.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Shortest token lifetime accepted.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The JOSE header of every VAPID token.
const HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// The application server's P-256 key pair. `Debug` shows the public key only.
#[derive(Clone)]
pub struct VapidKey {
    key: SigningKey,
    public: [u8; P256DH_LEN],
}

/// Why a key or a subject is unusable. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VapidError {
    /// The text is not a P-256 private key in any accepted form.
    #[error("not a P-256 private key (PKCS#8 or SEC1 PEM, or 32 bytes in base64url): {0}")]
    BadKey(String),
    /// The subject is not a `mailto:` address or an `https:` URL.
    #[error("the VAPID subject must be a mailto: address or an https: URL, got {0:?}")]
    BadSubject(String),
}

impl VapidKey {
    /// Reads a PEM private key: PKCS#8 (`-----BEGIN PRIVATE KEY-----`) or SEC1 (`-----BEGIN
    /// EC PRIVATE KEY-----`, what `openssl ecparam -genkey` writes).
    pub fn from_pem(pem: &str) -> Result<Self, VapidError> {
        let pem = pem.trim();
        let key = match SigningKey::from_pkcs8_pem(pem) {
            Ok(key) => key,
            Err(pkcs8) => match SecretKey::from_sec1_pem(pem) {
                Ok(secret) => SigningKey::from(secret),
                Err(_) => return Err(VapidError::BadKey(pkcs8.to_string())),
            },
        };
        Ok(VapidKey::from_signing_key(key))
    }

    /// Reads the raw private key: 32 bytes in base64url (with or without padding), the form
    /// most web push libraries print.
    pub fn from_base64url(text: &str) -> Result<Self, VapidError> {
        let bad = |why: &str| VapidError::BadKey(why.to_owned());
        let bytes = base64url_decode(text.trim()).ok_or_else(|| bad("not base64url"))?;
        if bytes.len() != 32 {
            return Err(bad(&format!("{} bytes instead of 32", bytes.len())));
        }
        let key = SigningKey::from_slice(&bytes).map_err(|_| bad("not a valid P-256 scalar"))?;
        Ok(VapidKey::from_signing_key(key))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        let mut public = [0u8; P256DH_LEN];
        public.copy_from_slice(point.as_bytes());
        VapidKey { key, public }
    }

    /// The public key, uncompressed, in unpadded base64url: the web app's
    /// `applicationServerKey` and the `k` of every token.
    pub fn public_key(&self) -> String {
        base64url(&self.public)
    }
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// The application server's identity: its key, its contact (`sub`), and how long its tokens
/// live. Cheap to clone: one per push-service origin shares the key.
#[derive(Clone)]
pub struct Vapid {
    key: Arc<VapidKey>,
    /// `, k=<public key>`, the end of every `Authorization` header.
    key_parameter: String,
    subject: String,
    lifetime: Duration,
}

impl fmt::Debug for Vapid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vapid")
            .field("key", &self.key)
            .field("subject", &self.subject)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Vapid {
    /// The identity of `key`, reachable at `subject` (`mailto:push@example.com` or
    /// `https://example.com/contact`); tokens live [`DEFAULT_TOKEN_LIFETIME`].
    pub fn new(key: VapidKey, subject: &str) -> Result<Self, VapidError> {
        check_subject(subject)?;
        Ok(Vapid {
            key_parameter: format!(", k={}", key.public_key()),
            key: Arc::new(key),
            subject: subject.to_owned(),
            lifetime: DEFAULT_TOKEN_LIFETIME,
        })
    }

    /// Sets how long tokens live (clamped to [`MIN_TOKEN_LIFETIME`] ..=
    /// [`MAX_TOKEN_LIFETIME`]); they are renewed with a quarter of it left.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
        self
    }

    /// The key.
    pub fn key(&self) -> &VapidKey {
        &self.key
    }

    /// The contact.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// How long tokens live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The `Authorization` header value for `origin`, valid until `exp` (UNIX seconds):
    /// `vapid t=<JWT>, k=<public key>`.
    pub(crate) fn authorization(
        &self,
        origin: &Origin,
        exp: u64,
    ) -> Result<HeaderValue, SignError> {
        let claims = json!({"aud": origin.as_str(), "exp": exp, "sub": self.subject});
        let jwt = compact_jwt(HEADER, &claims.to_string(), |input| {
            es256_sign(&self.key.key, input)
        })?;
        HeaderValue::try_from(format!("vapid t={jwt}{}", self.key_parameter))
            .map_err(|_| SignError("the token is not a valid header value".into()))
    }
}

fn check_subject(subject: &str) -> Result<(), VapidError> {
    let bad = || VapidError::BadSubject(subject.chars().take(64).collect());
    let printable = !subject.is_empty()
        && subject.len() <= 256
        && subject.bytes().all(|b| b.is_ascii_graphic());
    if !printable {
        return Err(bad());
    }
    if let Some(address) = subject.strip_prefix("mailto:") {
        let (user, domain) = address.split_once('@').ok_or_else(bad)?;
        return if user.is_empty() || domain.is_empty() {
            Err(bad())
        } else {
            Ok(())
        };
    }
    match Origin::parse(subject) {
        Ok(_) => Ok(()),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use serde_json::Value;

    /// The private key of RFC 8291's example application server, used here as a VAPID key.
    pub(crate) const PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    /// Its public key.
    pub(crate) const PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";

    pub(crate) fn vapid() -> Vapid {
        Vapid::new(
            VapidKey::from_base64url(PRIVATE).unwrap(),
            "mailto:push@example.com",
        )
        .unwrap()
    }

    /// Splits `vapid t=<jwt>, k=<key>`, verifies the JWT's signature with `k`, and returns
    /// (header, claims, k).
    pub(crate) fn verify(authorization: &HeaderValue) -> (Value, Value, String) {
        let text = authorization.to_str().unwrap();
        let (jwt, key) = text
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let decode = |part: &str| base64url_decode(part).unwrap();
        let public = VerifyingKey::from_sec1_bytes(&decode(key)).unwrap();
        let signature = Signature::from_slice(&decode(parts[2])).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public.verify(input.as_bytes(), &signature).unwrap();
        let header = serde_json::from_slice(&decode(parts[0])).unwrap();
        let claims = serde_json::from_slice(&decode(parts[1])).unwrap();
        (header, claims, key.to_owned())
    }

    #[test]
    fn tokens_carry_the_rfc_8292_claims_and_verify() {
        let origin = Origin::parse("https://push.example.net/p/1").unwrap();
        let authorization = vapid().authorization(&origin, 1_453_523_768).unwrap();
        let (header, claims, key) = verify(&authorization);
        assert_eq!(header, json!({"typ": "JWT", "alg": "ES256"}));
        // RFC 8292 §2.4's claims, in the order serde_json writes them.
        assert_eq!(
            claims,
            json!({"aud": "https://push.example.net", "exp": 1_453_523_768u64,
                   "sub": "mailto:push@example.com"})
        );
        assert_eq!(key, PUBLIC);
        let text = authorization.to_str().unwrap();
        assert!(text.starts_with("vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0."), "{text}");
        // Deterministic signatures (RFC 6979).
        assert_eq!(
            vapid().authorization(&origin, 1_453_523_768).unwrap(),
            authorization
        );
    }

    #[test]
    fn keys_load_from_every_form_and_never_show() {
        let raw = VapidKey::from_base64url(PRIVATE).unwrap();
        assert_eq!(raw.public_key(), PUBLIC);
        let padded = VapidKey::from_base64url(&format!("{PRIVATE}=")).unwrap();
        assert_eq!(padded.public_key(), PUBLIC);
        let secret = SecretKey::from_slice(&base64url_decode(PRIVATE).unwrap()).unwrap();
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(VapidKey::from_pem(&pkcs8).unwrap().public_key(), PUBLIC);
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert_eq!(VapidKey::from_pem(&sec1).unwrap().public_key(), PUBLIC);
        let shown = format!("{:?}", vapid());
        assert!(
            shown.contains(PUBLIC) && !shown.contains(PRIVATE),
            "{shown}"
        );

        for bad in [
            "",
            "not base64!",
            "AAAA",
            &base64url(&[0; 32]),
            &base64url(&[0xff; 32]),
        ] {
            let error = VapidKey::from_base64url(bad).unwrap_err();
            assert!(matches!(error, VapidError::BadKey(_)), "{bad}");
        }
        let error =
            VapidKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .unwrap_err();
        assert!(
            error.to_string().starts_with("not a P-256 private key"),
            "{error}"
        );
    }

    #[test]
    fn subjects_are_contacts() {
        let key = || VapidKey::from_base64url(PRIVATE).unwrap();
        for good in [
            "mailto:push@example.com",
            "https://example.com/contact",
            "https://example.com",
        ] {
            assert_eq!(Vapid::new(key(), good).unwrap().subject(), good);
        }
        for bad in [
            "",
            "push@example.com",
            "mailto:",
            "mailto:@x",
            "mailto:a@",
            "http://example.com",
            "mailto:a b@example.com",
            "https://",
            &format!("mailto:a@{}", "x".repeat(300)),
        ] {
            assert!(
                matches!(Vapid::new(key(), bad), Err(VapidError::BadSubject(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn lifetimes_are_clamped() {
        let hour = Duration::from_secs(3600);
        assert_eq!(vapid().lifetime(), 12 * hour);
        assert_eq!(vapid().token_lifetime(48 * hour).lifetime(), 24 * hour);
        assert_eq!(
            vapid().token_lifetime(Duration::ZERO).lifetime(),
            MIN_TOKEN_LIFETIME
        );
        assert_eq!(vapid().token_lifetime(hour).lifetime(), hour);
    }
}
