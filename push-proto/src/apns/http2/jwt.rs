//! Provider tokens: ES256 JSON Web Tokens, signed in the core, reused and refreshed on the
//! core's clock.
//!
//! A token is `base64url(header) "." base64url(claims) "." base64url(signature)` with header
//! `{"alg":"ES256","kid":"<key id>"}`, claims `{"iss":"<team id>","iat":<UNIX seconds>}` and
//! the 64-byte JOSE signature `r || s` (ECDSA P-256 over SHA-256). [`P8Signer`] signs with the
//! `.p8` key Apple hands out (PKCS#8 PEM), deterministically (RFC 6979), with the pure-Rust
//! RustCrypto `p256` crate; any other key store plugs in through [`Signer`].
//!
//! # Wall-clock time
//! `iat` is wall-clock time, but the core never reads a clock. [`TokenAuth`] is given one
//! reading, `(now: Instant, unix_now: u64)`, when it is created, and computes
//! `iat = unix_now + (later_now - now)` in whole seconds. A driver may re-anchor at any time
//! with [`TokenAuth::handle_wall_clock`] (e.g. after the machine slept, when `Instant` and the
//! wall clock drift apart); doing so before every signing is harmless.
//!
//! # Refresh rules
//! APNs rejects tokens older than an hour (`403 ExpiredProviderToken`) and refreshes more often
//! than every 20 minutes (`429 TooManyProviderTokenUpdates`). So a token is:
//! - reused until it is [`TokenAuth::refresh_after`] old (50 minutes by default, clamped to
//!   20..=55 minutes), then replaced proactively at the next request;
//! - replaced after APNs answers `ExpiredProviderToken` for it, but never before it is
//!   [`MIN_TOKEN_AGE`] (20 minutes) old: until then requests wait
//!   ([`TokenAuth::blocked_until`]).

use std::fmt;
use std::time::{Duration, Instant};

use http::HeaderValue;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::DecodePrivateKey;
use thiserror::Error;

pub use crate::jose::{SignError, base64url};

/// A token is never replaced before it is this old (APNs answers
/// `TooManyProviderTokenUpdates` to faster refreshes).
pub const MIN_TOKEN_AGE: Duration = Duration::from_secs(20 * 60);
/// APNs rejects tokens older than this (`ExpiredProviderToken`).
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(60 * 60);
/// Default age at which a token is replaced proactively.
pub const DEFAULT_REFRESH_AFTER: Duration = Duration::from_secs(50 * 60);
/// Latest allowed proactive refresh age: five minutes of margin before [`MAX_TOKEN_AGE`].
const LATEST_REFRESH_AFTER: Duration = Duration::from_secs(55 * 60);

/// Why a key or token setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM is not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 P-256 private key (.p8): {0}")]
    BadKey(String),
    /// A key id or team id is empty or not ASCII letters and digits (Apple's are 10
    /// characters).
    #[error("{field} must be ASCII letters and digits (Apple's are 10 characters), got {value:?}")]
    BadId {
        /// `key id` or `team id`.
        field: &'static str,
        /// The value, cut to 32 characters.
        value: String,
    },
}

/// Produces ES256 signatures for provider tokens: the seam for keys kept outside the process
/// (an HSM, a KMS). Signing is a computation, not IO, as far as the core is concerned: it calls
/// [`Signer::sign`] synchronously when it needs a new token, at most every 20 minutes.
pub trait Signer: Send + Sync {
    /// The 10-character key id (`kid`) of the key, from Apple's developer account.
    fn key_id(&self) -> &str;

    /// The JOSE ES256 signature of `signing_input`: ECDSA P-256 over SHA-256, as 64 bytes
    /// `r || s` (big-endian, each 32 bytes).
    fn sign(&self, signing_input: &[u8]) -> Result<[u8; 64], SignError>;
}

/// Signs with an in-memory `.p8` key, deterministically (RFC 6979).
#[derive(Clone)]
pub struct P8Signer {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for P8Signer {
    /// Shows the key id, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P8Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn check_id(field: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyError::BadId {
            field,
            value: value.chars().take(32).collect(),
        });
    }
    Ok(())
}

impl P8Signer {
    /// Loads the PEM text of a `.p8` file (`-----BEGIN PRIVATE KEY-----`, PKCS#8 with a P-256
    /// key) for key id `key_id`.
    pub fn from_pem(pem: &str, key_id: &str) -> Result<Self, KeyError> {
        check_id("key id", key_id)?;
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::BadKey(e.to_string()))?;
        Ok(P8Signer {
            key,
            key_id: key_id.to_owned(),
        })
    }

    /// A signer for an already-decoded key.
    pub fn from_key(key: SigningKey, key_id: &str) -> Result<Self, KeyError> {
        check_id("key id", key_id)?;
        Ok(P8Signer {
            key,
            key_id: key_id.to_owned(),
        })
    }

    /// The public key, to verify tokens with (a mock server does).
    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }
}

impl Signer for P8Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, signing_input: &[u8]) -> Result<[u8; 64], SignError> {
        crate::jose::es256_sign(&self.key, signing_input)
    }
}

/// A signed provider token.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderToken {
    jwt: String,
    authorization: HeaderValue,
    issued: Instant,
    iat: u64,
    generation: u64,
}

impl ProviderToken {
    /// The JWT (`header.claims.signature`).
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    /// The `iat` claim (UNIX seconds).
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// When it was signed, on the core's clock.
    pub fn issued(&self) -> Instant {
        self.issued
    }

    /// Counts tokens signed by one [`TokenAuth`], from 1.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The `authorization` header value: `bearer <jwt>`.
    pub(crate) fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }
}

impl fmt::Debug for ProviderToken {
    /// Shows the claims, not the token (it is a credential for up to an hour).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderToken")
            .field("iat", &self.iat)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Token-based authentication: a [`Signer`], the team id, and the current token with its
/// refresh rules (see the module docs).
pub struct TokenAuth {
    signer: Box<dyn Signer>,
    team_id: String,
    wall: (Instant, u64),
    refresh_after: Duration,
    current: Option<ProviderToken>,
    /// APNs said the current token expired: replace it as soon as the rules allow.
    stale: bool,
    generation: u64,
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("key_id", &self.signer.key_id())
            .field("team_id", &self.team_id)
            .field("refresh_after", &self.refresh_after)
            .field("current", &self.current)
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

impl TokenAuth {
    /// Token auth for `team_id` signing with `signer`; `(now, unix_now)` is one reading of the
    /// monotonic and the wall clock (UNIX seconds), taken together.
    pub fn new(
        signer: impl Signer + 'static,
        team_id: &str,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, KeyError> {
        check_id("key id", signer.key_id())?;
        check_id("team id", team_id)?;
        Ok(TokenAuth {
            signer: Box::new(signer),
            team_id: team_id.to_owned(),
            wall: (now, unix_now),
            refresh_after: DEFAULT_REFRESH_AFTER,
            current: None,
            stale: false,
            generation: 0,
        })
    }

    /// Sets the age at which a token is replaced proactively (clamped to 20..=55 minutes).
    pub fn refresh_after(mut self, age: Duration) -> Self {
        self.refresh_after = age.clamp(MIN_TOKEN_AGE, LATEST_REFRESH_AFTER);
        self
    }

    /// Re-anchors wall-clock time: `unix_now` (UNIX seconds) is the time at `now`.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.wall = (now, unix_now);
    }

    /// The wall-clock time at `now`, in UNIX seconds.
    pub fn unix_time(&self, now: Instant) -> u64 {
        crate::jose::unix_time(self.wall, now)
    }

    /// The current token, if one was signed.
    pub fn current(&self) -> Option<&ProviderToken> {
        self.current.as_ref()
    }

    fn age(&self, now: Instant) -> Option<Duration> {
        let token = self.current.as_ref()?;
        Some(now.saturating_duration_since(token.issued))
    }

    /// When APNs reported the current token expired and it is younger than
    /// [`MIN_TOKEN_AGE`]: the instant it may be replaced. Requests wait until then.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        self.refresh_allowed_at().filter(|allowed| *allowed > now)
    }

    /// When APNs reported the current token expired: the instant it may be replaced (it may
    /// already have passed).
    pub fn refresh_allowed_at(&self) -> Option<Instant> {
        let token = self.current.as_ref().filter(|_| self.stale)?;
        token.issued.checked_add(MIN_TOKEN_AGE)
    }

    /// True when the next request needs a new token.
    fn needs_refresh(&self, now: Instant) -> bool {
        match self.age(now) {
            None => true,
            Some(age) => age >= self.refresh_after || (self.stale && age >= MIN_TOKEN_AGE),
        }
    }

    /// APNs answered `ExpiredProviderToken` to a request sent with token `generation`. When
    /// that is the current token it is marked stale; an older token was already replaced.
    pub fn handle_expired(&mut self, generation: u64) {
        if self.current.as_ref().map(ProviderToken::generation) == Some(generation) {
            self.stale = true;
        }
    }

    /// The token to send at `now`, signing a new one when the rules call for it. `Ok(None)`
    /// while [`blocked_until`](Self::blocked_until) says to wait. Returns whether it is new.
    pub fn token(&mut self, now: Instant) -> Result<Option<(&ProviderToken, bool)>, SignError> {
        if self.blocked_until(now).is_some() {
            return Ok(None);
        }
        let fresh = self.needs_refresh(now);
        if fresh {
            let iat = self.unix_time(now);
            let jwt = self.sign(iat)?;
            let authorization = HeaderValue::from_str(&format!("bearer {jwt}"))
                .map_err(|_| SignError("the token is not a valid header value".into()))?;
            self.generation += 1;
            self.stale = false;
            self.current = Some(ProviderToken {
                jwt,
                authorization,
                issued: now,
                iat,
                generation: self.generation,
            });
        }
        Ok(self.current.as_ref().map(|token| (token, fresh)))
    }

    /// Signs a token with `iat`.
    fn sign(&self, iat: u64) -> Result<String, SignError> {
        let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, self.signer.key_id());
        let claims = format!(r#"{{"iss":"{}","iat":{iat}}}"#, self.team_id);
        crate::jose::compact_jwt(&header, &claims, |input| self.signer.sign(input))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};
    use p256::ecdsa::Signature;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use serde_json::{Value, json};

    /// A fixed test key as `.p8` PEM text.
    pub(crate) fn test_pem() -> String {
        let key = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    }

    pub(crate) fn test_signer() -> P8Signer {
        P8Signer::from_pem(&test_pem(), "ABC123DEFG").unwrap()
    }

    /// Decodes and verifies a JWT with `key`; returns (header, claims).
    pub(crate) fn verify(jwt: &str, key: &VerifyingKey) -> (Value, Value) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{jwt}");
        let decode = |part: &str| Base64UrlUnpadded::decode_vec(part).unwrap();
        let signature = decode(parts[2]);
        assert_eq!(signature.len(), 64, "JOSE r||s");
        let signature = Signature::from_slice(&signature).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        key.verify(input.as_bytes(), &signature).unwrap();
        let header = serde_json::from_slice(&decode(parts[0])).unwrap();
        let claims = serde_json::from_slice(&decode(parts[1])).unwrap();
        (header, claims)
    }

    #[test]
    fn token_structure_and_signature_verify() {
        let signer = test_signer();
        let public = signer.verifying_key();
        let now = Instant::now();
        let mut auth = TokenAuth::new(signer, "TEAM123456", now, 1_700_000_000).unwrap();
        let later = now + Duration::from_secs(5);
        let (token, fresh) = auth.token(later).unwrap().unwrap();
        assert!(fresh);
        assert_eq!(token.iat(), 1_700_000_005);
        let (header, claims) = verify(token.jwt(), &public);
        assert_eq!(header, json!({"alg": "ES256", "kid": "ABC123DEFG"}));
        assert_eq!(
            claims,
            json!({"iss": "TEAM123456", "iat": 1_700_000_005u64})
        );
        assert!(
            token
                .jwt()
                .starts_with("eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyM0RFRkcifQ.")
        );
        assert_eq!(
            token.authorization().to_str().unwrap(),
            format!("bearer {}", token.jwt())
        );
        assert!(!format!("{auth:?}").contains(token_text(&auth)));
    }

    fn token_text(auth: &TokenAuth) -> &str {
        auth.current().unwrap().jwt()
    }

    #[test]
    fn signing_is_deterministic() {
        let now = Instant::now();
        let mut a = TokenAuth::new(test_signer(), "TEAM123456", now, 1).unwrap();
        let mut b = TokenAuth::new(test_signer(), "TEAM123456", now, 1).unwrap();
        assert_eq!(
            a.token(now).unwrap().unwrap().0.jwt(),
            b.token(now).unwrap().unwrap().0.jwt()
        );
    }

    #[test]
    fn bad_keys_and_ids_are_refused() {
        assert!(matches!(
            P8Signer::from_pem("not a key", "ABC123DEFG"),
            Err(KeyError::BadKey(_))
        ));
        assert!(matches!(
            P8Signer::from_pem(&test_pem(), "AB\"C"),
            Err(KeyError::BadId { .. })
        ));
        let now = Instant::now();
        assert!(matches!(
            TokenAuth::new(test_signer(), "", now, 0),
            Err(KeyError::BadId {
                field: "team id",
                ..
            })
        ));
        assert!(!format!("{:?}", test_signer()).contains("PRIVATE"));
    }

    #[test]
    fn reuse_refresh_and_expiry_timing() {
        let minute = Duration::from_secs(60);
        let start = Instant::now();
        let mut auth = TokenAuth::new(test_signer(), "TEAM123456", start, 1_000).unwrap();
        let first = auth.token(start).unwrap().unwrap().0.clone();
        // 19 minutes: the same token.
        let (token, fresh) = auth.token(start + 19 * minute).unwrap().unwrap();
        assert!(!fresh);
        assert_eq!(token.jwt(), first.jwt());
        // Expired at 19 minutes: too early to refresh, requests wait until 20.
        auth.handle_expired(first.generation());
        assert_eq!(
            auth.blocked_until(start + 19 * minute),
            Some(start + 20 * minute)
        );
        assert!(auth.token(start + 19 * minute).unwrap().is_none());
        // 21 minutes after that ExpiredProviderToken: a new token.
        let (second, fresh) = auth.token(start + 21 * minute).unwrap().unwrap();
        assert!(fresh);
        assert_eq!(second.iat(), 1_000 + 21 * 60);
        let second = second.clone();
        // A late ExpiredProviderToken for the old token does not trigger another refresh.
        auth.handle_expired(first.generation());
        assert!(auth.blocked_until(start + 22 * minute).is_none());
        let (token, fresh) = auth.token(start + 22 * minute).unwrap().unwrap();
        assert!(!fresh);
        assert_eq!(token.jwt(), second.jwt());
        // Never older than 60 minutes: replaced proactively at 50.
        let issued = start + 21 * minute;
        assert!(!auth.token(issued + 49 * minute).unwrap().unwrap().1);
        let (third, fresh) = auth.token(issued + 50 * minute).unwrap().unwrap();
        assert!(fresh);
        assert_eq!(third.generation(), 3);
    }

    #[test]
    fn refresh_age_is_clamped_and_wall_clock_reanchors() {
        let now = Instant::now();
        let auth = TokenAuth::new(test_signer(), "T", now, 100).unwrap();
        let mut auth = auth.refresh_after(Duration::from_secs(10));
        assert_eq!(auth.refresh_after, MIN_TOKEN_AGE);
        auth = auth.refresh_after(Duration::from_secs(3 * 3600));
        assert_eq!(auth.refresh_after, LATEST_REFRESH_AFTER);
        assert_eq!(auth.unix_time(now + Duration::from_secs(3)), 103);
        auth.handle_wall_clock(now + Duration::from_secs(10), 5_000);
        assert_eq!(auth.unix_time(now + Duration::from_secs(12)), 5_002);
        assert_eq!(auth.unix_time(now), 4_990);
    }

    struct Failing;
    impl Signer for Failing {
        fn key_id(&self) -> &str {
            "KEY"
        }
        fn sign(&self, _: &[u8]) -> Result<[u8; 64], SignError> {
            Err(SignError("hsm offline".into()))
        }
    }

    #[test]
    fn external_signer_errors_surface() {
        let now = Instant::now();
        let mut auth = TokenAuth::new(Failing, "TEAM", now, 0).unwrap();
        assert_eq!(auth.token(now), Err(SignError("hsm offline".into())));
    }
}
