//! RFC 8291's worked example byte for byte (every intermediate value it lists), and a round
//! trip through a decryption written here independently of the sender's code: `ring`'s HKDF
//! instead of the sender's HMAC steps, parsing the header instead of knowing it.

use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use proptest::prelude::*;
use ring::aead::{self, AES_128_GCM};
use ring::hkdf::{self, HKDF_SHA256, KeyType};

use super::*;
use crate::jose::{base64url, base64url_decode};
use crate::webpush::randomness::tests::Scripted;
use crate::webpush::subscription::tests::{AUTH, UA_PUBLIC, subscription};

/// RFC 8291 §5 and Appendix A, in base64url as the RFC writes them.
pub(crate) mod rfc8291 {
    pub(super) const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    pub(super) const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    pub(super) const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    pub(crate) const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    pub(super) const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    pub(super) const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    pub(super) const PRK_KEY: &str = "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k";
    pub(super) const KEY_INFO: &str = "V2ViUHVzaDogaW5mbwAEJXGyvs3942BVGq8e0PTNNmwRzr5VX4m8t7GGpTM5FzFo7OLr4BhZe9MEebhuPI-OztV3ylkYfpJGmQ22ggCLDgT-M_SrDepxkU21WCP3O1SUj0EwbZIHMtu5pZpTKGSCIA5Zent7wmC6HCJ5mFgJkuk5cwAvMBKiiujwa7t45ewP";
    pub(super) const IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
    pub(super) const PRK: &str = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc";
    pub(super) const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    pub(super) const NONCE: &str = "4h_95klXJ5E_qnoN";
    pub(super) const HEADER: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    pub(super) const CIPHERTEXT: &str =
        "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ";
    pub(super) const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
}

fn bytes(text: &str) -> Vec<u8> {
    base64url_decode(text).unwrap()
}

fn rfc_subscription() -> Subscription {
    subscription("https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV")
}

#[test]
fn rfc8291_example_byte_for_byte() {
    let ephemeral = Ephemeral::from_bytes(&bytes(rfc8291::AS_PRIVATE)).unwrap();
    assert_eq!(base64url(&ephemeral.public), rfc8291::AS_PUBLIC);
    let subscription = rfc_subscription();
    let salt: [u8; SALT_LEN] = bytes(rfc8291::SALT).try_into().unwrap();
    // Each step from the RFC's inputs to it.
    let secret = ecdh_secret(&ephemeral, subscription.public_key());
    assert_eq!(base64url(&secret), rfc8291::ECDH_SECRET);
    let rfc = |text: &str| -> [u8; 32] { bytes(text).try_into().unwrap() };
    assert_eq!(
        base64url(&prk_key(&bytes(AUTH), &rfc(rfc8291::ECDH_SECRET))),
        rfc8291::PRK_KEY
    );
    let info = key_info(subscription.p256dh(), &ephemeral.public);
    assert_eq!(base64url(&info), rfc8291::KEY_INFO);
    let rfc_info = bytes(rfc8291::KEY_INFO);
    assert_eq!(
        base64url(&ikm(&rfc(rfc8291::PRK_KEY), &rfc_info)),
        rfc8291::IKM
    );
    assert_eq!(base64url(&prk(&salt, &rfc(rfc8291::IKM))), rfc8291::PRK);
    let keys = content_keys(&rfc(rfc8291::PRK));
    assert_eq!(base64url(&keys.cek), rfc8291::CEK);
    assert_eq!(base64url(&keys.nonce), rfc8291::NONCE);
    // And composed.
    let keys = derive(
        &Agreement::with(&ephemeral, &subscription),
        &subscription,
        &salt,
    );
    assert_eq!(
        (base64url(&keys.cek), base64url(&keys.nonce)),
        (rfc8291::CEK.into(), rfc8291::NONCE.into())
    );

    // Through the randomness seam, as the sender does it: the key first, then the salt.
    let scripted = Scripted::new(&[&bytes(rfc8291::AS_PRIVATE), &salt]);
    let body = encrypt(rfc8291::PLAINTEXT.as_bytes(), 0, &subscription, &scripted).unwrap();
    assert_eq!(base64url(&body[..HEADER_LEN]), rfc8291::HEADER);
    assert_eq!(base64url(&body[HEADER_LEN..]), rfc8291::CIPHERTEXT);
    assert_eq!(base64url(&body), rfc8291::BODY);
    assert_eq!(body.len(), body_len(rfc8291::PLAINTEXT.len(), 0));

    // And the independent decryption reads it with the user agent's private key.
    let ua = SecretKey::from_slice(&bytes(rfc8291::UA_PRIVATE)).unwrap();
    assert_eq!(
        decrypt(&body, &ua, &bytes(AUTH)).unwrap(),
        rfc8291::PLAINTEXT.as_bytes()
    );
    assert_eq!(
        base64url(ua.public_key().to_encoded_point(false).as_bytes()),
        UA_PUBLIC
    );
}

#[test]
fn the_limit_is_checked_before_anything_is_drawn() {
    let subscription = rfc_subscription();
    let nothing = Scripted::new(&[]);
    let too_large = encrypt(&[b'x'; MAX_PLAINTEXT + 1], 0, &subscription, &nothing);
    assert_eq!(
        too_large,
        Err(EncryptError::TooLarge { size: MAX_BODY + 1 })
    );
    let padded = encrypt(&[b'x'; 10], MAX_PLAINTEXT - 9, &subscription, &nothing);
    assert_eq!(padded, Err(EncryptError::TooLarge { size: MAX_BODY + 1 }));
    // Within the limit, the failing randomness is the error.
    assert!(matches!(
        encrypt(&[b'x'; MAX_PLAINTEXT], 0, &subscription, &nothing),
        Err(EncryptError::Randomness(_))
    ));
}

#[test]
fn an_invalid_scalar_is_drawn_again() {
    let subscription = rfc_subscription();
    // Zero and the group order are no keys; the third draw is.
    let order = bytes("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE");
    let scripted = Scripted::new(&[&[0; 32], &order, &bytes(rfc8291::AS_PRIVATE), &[7; 16]]);
    let body = encrypt(b"x", 0, &subscription, &scripted).unwrap();
    assert_eq!(base64url(&body[21..HEADER_LEN]), rfc8291::AS_PUBLIC);
    let zeros = Scripted::new(&[&[0; 32 * KEY_DRAWS]]);
    assert!(matches!(
        encrypt(b"x", 0, &subscription, &zeros),
        Err(EncryptError::Randomness(_))
    ));
}

/// Output key material of any length, for `ring`'s HKDF.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The user agent's side (RFC 8291 §3.4 and RFC 8188 §2), written without the sender's
/// functions: parses the header, derives with `ring`'s HKDF, opens the record, strips the
/// padding. `None` when anything does not check out.
pub(crate) fn decrypt(body: &[u8], ua: &SecretKey, auth: &[u8]) -> Option<Vec<u8>> {
    let salt = body.get(..16)?;
    let rs = u32::from_be_bytes(body.get(16..20)?.try_into().ok()?) as usize;
    let idlen = usize::from(*body.get(20)?);
    let as_public_bytes = body.get(21..21 + idlen)?;
    let record = body.get(21 + idlen..)?;
    if rs < 18 || record.len() > rs || record.len() < 17 {
        return None;
    }
    let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes).ok()?;
    let ua_public = ua.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ua.to_nonzero_scalar(), as_public.as_affine());
    let info = [
        b"WebPush: info\0".as_slice(),
        ua_public.as_bytes(),
        as_public_bytes,
    ];
    let mut ikm = [0u8; 32];
    hkdf::Salt::new(HKDF_SHA256, auth)
        .extract(shared.raw_secret_bytes())
        .expand(&info, Len(32))
        .ok()?
        .fill(&mut ikm)
        .ok()?;
    let prk = hkdf::Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let key: aead::UnboundKey = prk
        .expand(&[b"Content-Encoding: aes128gcm\0"], &AES_128_GCM)
        .ok()?
        .into();
    let mut nonce = [0u8; 12];
    prk.expand(&[b"Content-Encoding: nonce\0"], Len(12))
        .ok()?
        .fill(&mut nonce)
        .ok()?;
    let mut record = record.to_vec();
    let opened = aead::LessSafeKey::new(key)
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut record,
        )
        .ok()?;
    let end = opened.iter().rposition(|&b| b != 0)?;
    (opened[end] == 2).then(|| opened[..end].to_vec())
}

/// A user agent's key pair and subscription from arbitrary bytes, when they make a key.
fn user_agent(scalar: [u8; 32], auth: [u8; 16]) -> Option<(SecretKey, Subscription)> {
    let secret = SecretKey::from_slice(&scalar).ok()?;
    let public = secret.public_key().to_encoded_point(false);
    let subscription = Subscription::new(
        "https://push.example.net/p",
        &base64url(public.as_bytes()),
        &base64url(&auth),
    )
    .ok()?;
    Some((secret, subscription))
}

#[test]
fn the_system_generators_ring_key_pairs_decrypt_too() {
    let (ua, subscription) = user_agent([7; 32], [9; 16]).unwrap();
    let random = crate::webpush::SystemRandomness::new();
    let one = encrypt(b"hello", 3, &subscription, &random).unwrap();
    let two = encrypt(b"hello", 3, &subscription, &random).unwrap();
    assert_eq!(decrypt(&one, &ua, &[9; 16]), Some(b"hello".to_vec()));
    assert_eq!(decrypt(&two, &ua, &[9; 16]), Some(b"hello".to_vec()));
    // A new key pair and salt each time.
    assert_ne!(one[..HEADER_LEN], two[..HEADER_LEN]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any payload up to the limit, with any padding that fits, decrypts to itself; changing
    /// any byte makes decryption fail, except a record size still large enough for the record,
    /// which the format allows.
    #[test]
    fn encrypt_then_decrypt_round_trips_and_any_mangled_byte_fails(
        plaintext in prop::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT),
        padding in 0usize..64,
        ua_scalar in any::<[u8; 32]>(),
        auth in any::<[u8; 16]>(),
        as_scalar in any::<[u8; 32]>(),
        salt in any::<[u8; 16]>(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let Some((ua, subscription)) = user_agent(ua_scalar, auth) else {
            return Ok(());
        };
        prop_assume!(Ephemeral::from_bytes(&as_scalar).is_some());
        let padding = padding.min(MAX_PLAINTEXT - plaintext.len());
        let scripted = Scripted::new(&[&as_scalar, &salt]);
        let body = encrypt(&plaintext, padding, &subscription, &scripted).unwrap();
        prop_assert_eq!(body.len(), body_len(plaintext.len(), padding));
        prop_assert!(body.len() <= MAX_BODY);
        prop_assert_eq!(decrypt(&body, &ua, &auth), Some(plaintext.clone()));

        let at = position.index(body.len());
        let mut mangled = body.clone();
        mangled[at] ^= flip;
        let decrypted = decrypt(&mangled, &ua, &auth);
        if (16..20).contains(&at) {
            let rs = u32::from_be_bytes(mangled[16..20].try_into().unwrap()) as usize;
            let fits = rs >= 18 && rs >= body.len() - HEADER_LEN;
            prop_assert_eq!(decrypted, fits.then_some(plaintext));
        } else {
            prop_assert_eq!(decrypted, None, "byte {} changed", at);
        }
    }
}
