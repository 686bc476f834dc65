//! Message encryption for Web Push (RFC 8291) in the `aes128gcm` content coding (RFC 8188):
//! one record, ECDH P-256, HKDF-SHA-256, AES-128-GCM.
//!
//! For each message the application server makes a new ephemeral key pair and a new 16-byte
//! salt (both from [`Randomness`]) and derives, with the user agent's public key `ua_public`
//! (`keys.p256dh`) and authentication secret `auth` (`keys.auth`):
//!
//! ```text
//! ecdh_secret = ECDH(as_private, ua_public)
//! PRK_key     = HMAC-SHA-256(auth, ecdh_secret)
//! IKM         = HMAC-SHA-256(PRK_key, "WebPush: info" || 0x00 || ua_public || as_public || 0x01)
//! PRK         = HMAC-SHA-256(salt, IKM)
//! CEK         = HMAC-SHA-256(PRK, "Content-Encoding: aes128gcm" || 0x00 || 0x01)[..16]
//! NONCE       = HMAC-SHA-256(PRK, "Content-Encoding: nonce" || 0x00 || 0x01)[..12]
//! ```
//!
//! (each HKDF step is one HMAC: the outputs are no longer than a hash). The body is the RFC
//! 8188 header, `salt || rs || idlen || keyid` with record size 4096 and the sender's public
//! key as key id (86 bytes), then the one record: AES-128-GCM of `plaintext || 0x02 ||
//! padding zeros` under `CEK` and `NONCE` (the sequence number 0 changes nothing), tag
//! appended.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::hmac;
use ring::rand::SystemRandom;
use thiserror::Error;

use super::randomness::{Randomness, RandomnessError};
use super::subscription::{P256DH_LEN, Subscription};

/// Largest encrypted body every push service must accept (RFC 8030 §7.2, RFC 8291 §4).
pub const MAX_BODY: usize = 4096;
/// The `aes128gcm` header: salt (16), record size (4), key id length (1), key id (65).
const HEADER_LEN: usize = SALT_LEN + 4 + 1 + P256DH_LEN;
/// The AES-128-GCM tag.
const TAG_LEN: usize = 16;
/// Largest plaintext that fits in [`MAX_BODY`]: the header, the tag and the padding
/// delimiter take the rest (3993 bytes).
pub const MAX_PLAINTEXT: usize = MAX_BODY - HEADER_LEN - 1 - TAG_LEN;

const SALT_LEN: usize = 16;
/// The record size written in the header: one record always fits.
const RECORD_SIZE: u32 = 4096;
/// The delimiter that ends the plaintext of the last (here: only) record.
const LAST_RECORD: u8 = 0x02;
/// Attempts at drawing a valid P-256 scalar (each fails with probability about 2⁻³²).
const KEY_DRAWS: usize = 4;

/// The message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub(crate) enum EncryptError {
    /// The plaintext and padding do not fit in [`MAX_BODY`].
    #[error("the encrypted body would be {size} bytes, more than {MAX_BODY}")]
    TooLarge {
        /// The size the body would have.
        size: usize,
    },
    /// No random bytes for the ephemeral key or the salt.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    /// The cipher refused (never expected).
    #[error("encryption failed: {0}")]
    Cipher(&'static str),
}

/// The size of the body for `plaintext_len` bytes and `padding` zeros.
pub(crate) const fn body_len(plaintext_len: usize, padding: usize) -> usize {
    HEADER_LEN + plaintext_len + 1 + padding + TAG_LEN
}

/// The application server's ephemeral key pair of one message.
struct Ephemeral {
    secret: SecretKey,
    public: [u8; P256DH_LEN],
}

/// The application server's side of one message's ECDH: its ephemeral public key and the
/// shared secret (`ecdh_secret`).
struct Agreement {
    public: [u8; P256DH_LEN],
    secret: [u8; 32],
}

impl Agreement {
    /// With a key pair whose scalar comes from `randomness` (p256): reproducible.
    fn drawn(
        randomness: &dyn Randomness,
        subscription: &Subscription,
    ) -> Result<Agreement, EncryptError> {
        let ephemeral = Ephemeral::draw(randomness)?;
        Ok(Agreement::with(&ephemeral, subscription))
    }

    /// With the key pair `ephemeral`.
    fn with(ephemeral: &Ephemeral, subscription: &Subscription) -> Agreement {
        Agreement {
            public: ephemeral.public,
            secret: ecdh_secret(ephemeral, subscription.public_key()),
        }
    }

    /// With a key pair made by `ring` from the system generator (the fast path).
    fn system(subscription: &Subscription) -> Result<Agreement, EncryptError> {
        let failed = |_| RandomnessError("ring's ephemeral ECDH failed".into());
        let private =
            EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()).map_err(failed)?;
        let mut public = [0u8; P256DH_LEN];
        let computed = private.compute_public_key().map_err(failed)?;
        if computed.as_ref().len() != P256DH_LEN {
            return Err(RandomnessError("ring's public key has an unexpected size".into()).into());
        }
        public.copy_from_slice(computed.as_ref());
        let peer = UnparsedPublicKey::new(&ECDH_P256, subscription.p256dh());
        let secret = agree_ephemeral(private, &peer, |shared| {
            let mut secret = [0u8; 32];
            secret.copy_from_slice(shared);
            secret
        })
        .map_err(failed)?;
        Ok(Agreement { public, secret })
    }
}

impl Ephemeral {
    /// The key pair of the scalar `bytes`, if it is one.
    fn from_bytes(bytes: &[u8]) -> Option<Ephemeral> {
        let secret = SecretKey::from_slice(bytes).ok()?;
        let point = secret.public_key().to_encoded_point(false);
        let public = point.as_bytes().try_into().ok()?;
        Some(Ephemeral { secret, public })
    }

    /// A new key pair from `randomness`.
    fn draw(randomness: &dyn Randomness) -> Result<Ephemeral, EncryptError> {
        let mut scalar = [0u8; 32];
        for _ in 0..KEY_DRAWS {
            randomness.fill(&mut scalar)?;
            if let Some(ephemeral) = Ephemeral::from_bytes(&scalar) {
                return Ok(ephemeral);
            }
        }
        Err(RandomnessError("no valid P-256 key from the random bytes".into()).into())
    }
}

/// The content-encryption key and nonce of one message.
struct Keys {
    cek: [u8; 16],
    nonce: [u8; 12],
}

/// One HMAC-SHA-256 over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.sign().as_ref());
    out
}

/// The first `N` bytes of `bytes`.
fn prefix<const N: usize>(bytes: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// `ecdh_secret`: the x coordinate of the shared point.
fn ecdh_secret(ephemeral: &Ephemeral, ua_public: &PublicKey) -> [u8; 32] {
    let shared =
        p256::ecdh::diffie_hellman(ephemeral.secret.to_nonzero_scalar(), ua_public.as_affine());
    let mut secret = [0u8; 32];
    secret.copy_from_slice(shared.raw_secret_bytes());
    secret
}

/// `PRK_key`: HKDF-Extract with the authentication secret as salt.
fn prk_key(auth: &[u8], ecdh_secret: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(auth, &[ecdh_secret])
}

/// `key_info`: `"WebPush: info" || 0x00 || ua_public || as_public`.
fn key_info(ua_public: &[u8; P256DH_LEN], as_public: &[u8; P256DH_LEN]) -> Vec<u8> {
    [b"WebPush: info\0".as_slice(), ua_public, as_public].concat()
}

/// `IKM`: HKDF-Expand of `PRK_key` with `key_info`, 32 bytes (one block).
fn ikm(prk_key: &[u8; 32], key_info: &[u8]) -> [u8; 32] {
    hmac_sha256(prk_key, &[key_info, &[1]])
}

/// `PRK`: HKDF-Extract of `IKM` with the message's salt.
fn prk(salt: &[u8; SALT_LEN], ikm: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(salt, &[ikm])
}

/// `CEK` and `NONCE`: HKDF-Expand of `PRK`, 16 and 12 bytes.
fn content_keys(prk: &[u8; 32]) -> Keys {
    Keys {
        cek: prefix(&hmac_sha256(prk, &[b"Content-Encoding: aes128gcm\0", &[1]])),
        nonce: prefix(&hmac_sha256(prk, &[b"Content-Encoding: nonce\0", &[1]])),
    }
}

/// Derives the content-encryption key and nonce of one message.
fn derive(agreement: &Agreement, subscription: &Subscription, salt: &[u8; SALT_LEN]) -> Keys {
    let prk_key = prk_key(subscription.auth(), &agreement.secret);
    let info = key_info(subscription.p256dh(), &agreement.public);
    content_keys(&prk(salt, &ikm(&prk_key, &info)))
}

/// Encrypts `plaintext` for `subscription`, followed by `padding` zeros, with an ephemeral key
/// and a salt drawn from `randomness` (in that order; the system generator's key pair is made
/// inside `ring` instead, see [`Randomness::is_system`]): the `aes128gcm` body.
pub(crate) fn encrypt(
    plaintext: &[u8],
    padding: usize,
    subscription: &Subscription,
    randomness: &dyn Randomness,
) -> Result<Vec<u8>, EncryptError> {
    let size = body_len(plaintext.len(), padding);
    if size > MAX_BODY {
        return Err(EncryptError::TooLarge { size });
    }
    let agreement = if randomness.is_system() {
        Agreement::system(subscription)?
    } else {
        Agreement::drawn(randomness, subscription)?
    };
    let mut salt = [0u8; SALT_LEN];
    randomness.fill(&mut salt)?;
    encrypt_with(plaintext, padding, subscription, &agreement, &salt)
}

/// [`encrypt`] with the ephemeral key and the salt given.
fn encrypt_with(
    plaintext: &[u8],
    padding: usize,
    subscription: &Subscription,
    agreement: &Agreement,
    salt: &[u8; SALT_LEN],
) -> Result<Vec<u8>, EncryptError> {
    let keys = derive(agreement, subscription, salt);
    let mut body = Vec::with_capacity(body_len(plaintext.len(), padding));
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(P256DH_LEN as u8);
    body.extend_from_slice(&agreement.public);
    body.extend_from_slice(plaintext);
    body.push(LAST_RECORD);
    body.resize(body.len() + padding, 0);
    let key = UnboundKey::new(&AES_128_GCM, &keys.cek).map_err(|_| EncryptError::Cipher("key"))?;
    let tag = LessSafeKey::new(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(keys.nonce),
            Aad::empty(),
            &mut body[HEADER_LEN..],
        )
        .map_err(|_| EncryptError::Cipher("seal"))?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests;
