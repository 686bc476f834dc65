//! The worked test vectors of the protocol reference, shared by the APNs unit tests.

use crate::device::ApnsToken;

/// `{"aps":{"alert":"Hi"}}`, 22 bytes.
pub(crate) const VECTOR_PAYLOAD: &[u8] = br#"{"aps":{"alert":"Hi"}}"#;

/// Command 2 with all five items.
pub(crate) const V1: &str = "020000004e010020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0200167b22617073223a7b22616c657274223a224869227d7d030004123456780400046553f1000500010a";
/// Command 1.
pub(crate) const V2: &str = "01123456786553f1000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00167b22617073223a7b22616c657274223a224869227d7d";
/// Command 0.
pub(crate) const V3: &str = "000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00167b22617073223a7b22616c657274223a224869227d7d";
/// Command 2 with token and payload only.
pub(crate) const V4: &str = "020000003c010020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0200167b22617073223a7b22616c657274223a224869227d7d";
/// PyAPNs' public frame.
pub(crate) const V5: &str = "0200000074010020b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c02003c7b22617073223a7b22736f756e64223a2264656661756c74222c226261646765223a342c22616c657274223a2248656c6c6f20576f726c6421227d7d0300040000000104000400000e100500010a";

/// Token bytes 0x00..=0x1f.
pub(crate) fn vector_token() -> ApnsToken {
    ApnsToken::from_bytes(std::array::from_fn(|i| i as u8))
}

/// Hex to bytes, for test vectors only.
pub(crate) fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test vector hex"))
        .collect()
}

/// Feedback tuple: time 1700000000, token 0x00..=0x1f (38 bytes).
pub(crate) const FEEDBACK_MINE: &str =
    "6553f1000020000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Feedback tuple 1 of timehop's `feedback_test.go`: time 1404358249 (38 bytes).
pub(crate) const FEEDBACK_TIMEHOP: &str =
    "53b4ce69002000a18269661e9406aea59a5620b05c7c0e371574fa6f251951de8d7a5a292535";
/// Token of [`FEEDBACK_TIMEHOP`].
pub(crate) const FEEDBACK_TIMEHOP_TOKEN: &str =
    "00a18269661e9406aea59a5620b05c7c0e371574fa6f251951de8d7a5a292535";
/// Feedback tuple of Grocer's `failed_delivery_attempt_spec.rb`: time 819504000 (38 bytes).
pub(crate) const FEEDBACK_GROCER: &str =
    "30d8a3800020fe15a27d5df3c34778defb1f4f3980265cc52c0c047682223be59fb68500a9a2";
/// Token of [`FEEDBACK_GROCER`].
pub(crate) const FEEDBACK_GROCER_TOKEN: &str =
    "fe15a27d5df3c34778defb1f4f3980265cc52c0c047682223be59fb68500a9a2";
