//! The user agent's side of RFC 8291: decrypts an `aes128gcm` body with a subscription's
//! private key and authentication secret. Written for the mock, independently of push-proto's
//! encryption (`ring`'s HKDF, the header parsed rather than assumed), so that a test through
//! the mock checks the sender against a second implementation.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Salt};

/// Why a body did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecryptError {
    /// Shorter than its header says, a record size below 18 or below the record, or a key id
    /// that is not a P-256 point.
    Header,
    /// The AEAD tag did not verify (wrong keys, or changed bytes).
    Tag,
    /// The plaintext does not end with the last-record delimiter and zeros.
    Padding,
}

/// Output key material of `len` bytes.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The plaintext of `body`, encrypted for the user agent key `ua` and secret `auth`.
pub(crate) fn decrypt(body: &[u8], ua: &SecretKey, auth: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let header = |range: std::ops::Range<usize>| body.get(range).ok_or(DecryptError::Header);
    let salt = header(0..16)?;
    let mut rs = [0u8; 4];
    rs.copy_from_slice(header(16..20)?);
    let rs = u32::from_be_bytes(rs) as usize;
    let idlen = usize::from(*body.get(20).ok_or(DecryptError::Header)?);
    let sender_key = header(21..21 + idlen)?;
    let record = &body[21 + idlen..];
    if rs < 18 || record.len() > rs || record.len() < 17 {
        return Err(DecryptError::Header);
    }
    let sender = PublicKey::from_sec1_bytes(sender_key).map_err(|_| DecryptError::Header)?;
    let shared = p256::ecdh::diffie_hellman(ua.to_nonzero_scalar(), sender.as_affine());
    let ua_public = ua.public_key().to_encoded_point(false);
    let info = [
        b"WebPush: info\0".as_slice(),
        ua_public.as_bytes(),
        sender_key,
    ];
    let mut ikm = [0u8; 32];
    Salt::new(HKDF_SHA256, auth)
        .extract(shared.raw_secret_bytes())
        .expand(&info, Len(32))
        .and_then(|okm| okm.fill(&mut ikm))
        .map_err(|_| DecryptError::Header)?;
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let key: UnboundKey = prk
        .expand(&[b"Content-Encoding: aes128gcm\0"], &AES_128_GCM)
        .map_err(|_| DecryptError::Header)?
        .into();
    let mut nonce = [0u8; 12];
    prk.expand(&[b"Content-Encoding: nonce\0"], Len(12))
        .and_then(|okm| okm.fill(&mut nonce))
        .map_err(|_| DecryptError::Header)?;
    let mut record = record.to_vec();
    let opened = LessSafeKey::new(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut record,
        )
        .map_err(|_| DecryptError::Tag)?;
    match opened.iter().rposition(|&b| b != 0) {
        Some(end) if opened[end] == 2 => Ok(opened[..end].to_vec()),
        _ => Err(DecryptError::Padding),
    }
}

#[cfg(test)]
mod tests {
    use base64ct::{Base64UrlUnpadded, Encoding};

    use super::*;

    fn bytes(text: &str) -> Vec<u8> {
        Base64UrlUnpadded::decode_vec(text).unwrap()
    }

    /// RFC 8291 Appendix A: the user agent's key and secret, and the body it receives.
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn reads_the_rfc_8291_example() {
        let ua = SecretKey::from_slice(&bytes(UA_PRIVATE)).unwrap();
        let plaintext = decrypt(&bytes(BODY), &ua, &bytes(AUTH)).unwrap();
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn every_changed_byte_fails_except_a_larger_record_size() {
        let ua = SecretKey::from_slice(&bytes(UA_PRIVATE)).unwrap();
        let body = bytes(BODY);
        for at in 0..body.len() {
            let mut mangled = body.clone();
            mangled[at] ^= 0x01;
            let result = decrypt(&mangled, &ua, &bytes(AUTH));
            // A record size made larger (rs is 0x1000) still fits the one record.
            if (16..20).contains(&at) {
                assert!(result.is_ok(), "byte {at}");
            } else {
                assert!(result.is_err(), "byte {at}");
            }
        }
        let mut small = body.clone();
        small[16..20].copy_from_slice(&17u32.to_be_bytes());
        assert_eq!(
            decrypt(&small, &ua, &bytes(AUTH)),
            Err(DecryptError::Header)
        );
        assert_eq!(
            decrypt(&body[..40], &ua, &bytes(AUTH)),
            Err(DecryptError::Header)
        );
        let other = SecretKey::from_slice(&[7; 32]).unwrap();
        assert_eq!(decrypt(&body, &other, &bytes(AUTH)), Err(DecryptError::Tag));
    }
}
