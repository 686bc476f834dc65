//! The signed JWT a service account trades for an access token (RFC 7523 "JWT bearer"), and
//! the RS256 signer seam.
//!
//! The assertion is `base64url(header) "." base64url(claims) "." base64url(signature)` with
//! header `{"alg":"RS256","typ":"JWT","kid":<private_key_id>}` and claims
//! `{"iss":<client_email>,"scope":"https://www.googleapis.com/auth/firebase.messaging",
//! "aud":<token_uri>,"iat":t,"exp":t+3600}`; the signature is RSASSA-PKCS1-v1_5 over SHA-256.
//! [`RingSigner`] signs with the service account's PKCS#8 key through `ring`; keys kept
//! elsewhere (a KMS, an HSM) plug in through [`RsaSigner`].

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::json;
use thiserror::Error;

use super::service_account::ServiceAccount;
use crate::jose::{SignError, compact_jwt};

/// The OAuth2 scope that allows sending FCM messages.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// How long an assertion is valid (`exp - iat`): Google's maximum, one hour.
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// Produces RS256 signatures for assertions: the seam for keys kept outside the process.
/// Signing is a computation, not IO, as far as the core is concerned: it calls
/// [`RsaSigner::sign`] synchronously once per access-token request (about once an hour).
pub trait RsaSigner: Send + Sync {
    /// The key's id (`private_key_id` of the service account): the assertion's `kid`.
    fn key_id(&self) -> &str;

    /// The RSASSA-PKCS1-v1_5 SHA-256 signature of `signing_input` (as many bytes as the
    /// modulus, 256 for RSA-2048).
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// The private key is not a usable RSA PKCS#8 PEM key. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the service account's private_key is not a usable RSA PKCS#8 PEM key: {0}")]
pub struct RsaKeyError(String);

/// Signs with an in-memory RSA key (the service account's `private_key`) using `ring`.
pub struct RingSigner {
    key: RsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl fmt::Debug for RingSigner {
    /// Shows the key id and size, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingSigner")
            .field("key_id", &self.key_id)
            .field("modulus_bits", &(self.key.public().modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl RingSigner {
    /// Loads the PEM text of a PKCS#8 RSA key (`-----BEGIN PRIVATE KEY-----`) as key `key_id`.
    pub fn from_pem(pem: &str, key_id: &str) -> Result<Self, RsaKeyError> {
        let (label, der) = p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|error| RsaKeyError(format!("bad PEM: {error}")))?;
        if label != "PRIVATE KEY" {
            return Err(RsaKeyError(format!(
                "expected a \"PRIVATE KEY\" (PKCS#8) block, found {label:?}"
            )));
        }
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|error| RsaKeyError(error.to_string()))?;
        Ok(RingSigner {
            key,
            key_id: key_id.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// The signer for a service account's own key.
    pub fn from_service_account(account: &ServiceAccount) -> Result<Self, RsaKeyError> {
        RingSigner::from_pem(account.private_key_pem(), &account.private_key_id)
    }

    /// The public key (DER `RSAPublicKey`), to verify assertions with (a mock token server
    /// does).
    pub fn public_key(&self) -> &[u8] {
        self.key.public().as_ref()
    }
}

impl RsaSigner for RingSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, signing_input, &mut signature)
            .map_err(|_| SignError("RSA signing failed".into()))?;
        Ok(signature)
    }
}

/// The signed assertion for `client_email` at `token_uri`, issued at `iat` (UNIX seconds).
pub fn assertion(
    signer: &dyn RsaSigner,
    client_email: &str,
    token_uri: &str,
    iat: u64,
) -> Result<String, SignError> {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": signer.key_id()});
    let claims = json!({
        "iss": client_email,
        "scope": FCM_SCOPE,
        "aud": token_uri,
        "iat": iat,
        "exp": iat.saturating_add(ASSERTION_LIFETIME_SECS),
    });
    compact_jwt(&header.to_string(), &claims.to_string(), |input| {
        signer.sign(input)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fcm::service_account::tests::{KEY_A, KEY_B, account};
    use base64ct::{Base64UrlUnpadded, Encoding};
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use serde_json::Value;

    pub(crate) fn signer() -> RingSigner {
        RingSigner::from_service_account(&account()).unwrap()
    }

    /// Verifies `jwt` with the DER public key; returns (header, claims).
    pub(crate) fn verify(jwt: &str, public_key: &[u8]) -> Result<(Value, Value), String> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return Err(format!("not three parts: {jwt}"));
        };
        let decode = |part: &str| Base64UrlUnpadded::decode_vec(part).map_err(|e| e.to_string());
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key)
            .verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
            .map_err(|_| "bad signature".to_owned())?;
        let json = |part| serde_json::from_slice(&decode(part)?).map_err(|e| e.to_string());
        Ok((json(header)?, json(claims)?))
    }

    #[test]
    fn the_assertion_verifies_and_carries_the_documented_claims() {
        let signer = signer();
        let account = account();
        let jwt = assertion(
            &signer,
            &account.client_email,
            &account.token_uri,
            1_700_000_000,
        )
        .unwrap();
        let (header, claims) = verify(&jwt, signer.public_key()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"})
        );
        assert_eq!(
            claims,
            json!({
                "iss": "push@demo-project.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/firebase.messaging",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        let other = RingSigner::from_pem(KEY_B, "other").unwrap();
        assert_eq!(
            verify(&jwt, other.public_key()),
            Err("bad signature".into())
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let ec = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(
            &p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap(),
            p256::pkcs8::LineEnding::LF,
        )
        .unwrap();
        let truncated = &KEY_A[..KEY_A.len() / 2];
        let public_block = KEY_A.replace("PRIVATE KEY", "PUBLIC KEY");
        for pem in [
            "",
            "not a key",
            truncated,
            ec.as_str(),
            public_block.as_str(),
        ] {
            let error = RingSigner::from_pem(pem, "kid").unwrap_err().to_string();
            let body = KEY_A.lines().nth(1).unwrap();
            assert!(!error.contains(body), "{error}");
        }
        let debug = format!("{:?}", signer());
        assert_eq!(
            debug,
            "RingSigner { key_id: \"0123456789abcdef\", modulus_bits: 2048, .. }"
        );
    }

    struct Offline;
    impl RsaSigner for Offline {
        fn key_id(&self) -> &str {
            "kms-key"
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
            Err(SignError("kms offline".into()))
        }
    }

    #[test]
    fn an_external_signer_plugs_in_and_its_errors_surface() {
        assert_eq!(
            assertion(&Offline, "a@b", "https://t", 0),
            Err(SignError("kms offline".into()))
        );
    }
}
