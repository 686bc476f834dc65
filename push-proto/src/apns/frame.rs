//! Notification frames of the binary gateway protocol: commands 0, 1 and 2.
//!
//! Encoding is for providers; decoding is for servers (our mock), fuzzing and tests. All
//! integers are big-endian. Layouts, from Apple's binary provider API:
//!
//! ```text
//! command 0: 00 | token len u16 | token | payload len u16 | payload
//! command 1: 01 | identifier u32 | expiry u32 | token len u16 | token | payload len u16 | payload
//! command 2: 02 | frame len u32 | items, each: item id u8 | item len u16 | item data
//!            items: 1 token (32), 2 payload, 3 identifier (4), 4 expiry (4), 5 priority (1)
//! ```

use bytes::Bytes;
use thiserror::Error;

use crate::device::ApnsToken;

/// Which of the three notification formats a frame uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Command 0: token and payload only; errors are never reported, the connection just drops.
    Simple,
    /// Command 1: adds an identifier and an expiry; errors come back as error responses.
    Enhanced,
    /// Command 2: a frame of items, adding priority; the format every modern client used.
    Framed,
}

impl Format {
    /// The command byte that starts frames of this format.
    pub const fn command(self) -> u8 {
        match self {
            Format::Simple => 0,
            Format::Enhanced => 1,
            Format::Framed => 2,
        }
    }

    /// The largest payload Apple accepted in this format: 256 bytes for commands 0 and 1,
    /// 2048 for command 2 (since iOS 8).
    pub const fn payload_limit(self) -> usize {
        match self {
            Format::Simple | Format::Enhanced => 256,
            Format::Framed => 2048,
        }
    }
}

/// One notification as it travels to the gateway.
///
/// `identifier`, `expiry` and `priority` are optional because command 2 lets each item be
/// omitted and command 0 has none of them. When encoding, command 1 writes a missing
/// identifier or expiry as 0 and ignores `priority`; command 0 ignores all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The wire format.
    pub format: Format,
    /// The device token.
    pub token: ApnsToken,
    /// The JSON payload.
    pub payload: Bytes,
    /// Opaque identifier echoed back in an error response (items 3 / command 1).
    pub identifier: Option<u32>,
    /// UNIX seconds until which APNs stores the notification; 0 = do not store.
    pub expiry: Option<u32>,
    /// 10 = send now, 5 = power-efficient (item 5, command 2 only).
    pub priority: Option<u8>,
}

/// Longest command-2 frame body a decoder accepts; far above any legal frame
/// (35 + 3 + 2048 + 7 + 7 + 4 bytes), so that a hostile length cannot make a server buffer
/// gigabytes.
pub const MAX_FRAME_LEN: usize = 8192;

const ITEM_TOKEN: u8 = 1;
const ITEM_PAYLOAD: u8 = 2;
const ITEM_IDENTIFIER: u8 = 3;
const ITEM_EXPIRY: u8 = 4;
const ITEM_PRIORITY: u8 = 5;

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The payload does not fit the 16-bit length field.
    #[error("payload of {0} bytes does not fit a frame (at most 65535)")]
    PayloadTooLong(usize),
}

/// Why bytes are not a valid frame. Servers answer most of these with an error response
/// ([`DecodeError::status`]) and close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte is not command 0, 1 or 2.
    #[error("unknown command {0}")]
    UnknownCommand(u8),
    /// A command-2 frame announces more bytes than [`MAX_FRAME_LEN`].
    #[error("frame length {0} exceeds {MAX_FRAME_LEN}")]
    FrameTooLong(u32),
    /// An item overruns its frame.
    #[error("item {item} of length {len} overruns the frame")]
    ItemOverrun {
        /// The item id.
        item: u8,
        /// Its announced length.
        len: u16,
    },
    /// An item has an id other than 1..=5, a fixed-size item has the wrong length, or an item
    /// appears twice.
    #[error("malformed item {item} of length {len}")]
    BadItem {
        /// The item id.
        item: u8,
        /// Its announced length.
        len: u16,
    },
    /// The frame has no device token.
    #[error("missing device token")]
    MissingToken {
        /// The frame's identifier, when it had one.
        identifier: Option<u32>,
    },
    /// The device token is not 32 bytes.
    #[error("device token of {len} bytes (expected 32)")]
    TokenSize {
        /// The announced token length.
        len: usize,
        /// The frame's identifier, when it had one.
        identifier: Option<u32>,
    },
    /// The frame has no payload.
    #[error("missing payload")]
    MissingPayload {
        /// The frame's identifier, when it had one.
        identifier: Option<u32>,
    },
}

impl DecodeError {
    /// The error-response status a gateway answers with, and the identifier it names, when the
    /// error is one Apple reported (otherwise Apple just closed the connection).
    pub fn status(&self) -> Option<(super::Status, u32)> {
        use super::Status;
        match *self {
            DecodeError::MissingToken { identifier } => {
                identifier.map(|id| (Status::MissingDeviceToken, id))
            }
            DecodeError::TokenSize { identifier, .. } => {
                identifier.map(|id| (Status::InvalidTokenSize, id))
            }
            DecodeError::MissingPayload { identifier } => {
                identifier.map(|id| (Status::MissingPayload, id))
            }
            _ => Some((Status::ProcessingError, 0)),
        }
    }
}

impl Frame {
    /// A command-2 frame with all five items, as the gateway sends them.
    pub fn framed(
        token: ApnsToken,
        payload: Bytes,
        identifier: u32,
        expiry: u32,
        priority: u8,
    ) -> Self {
        Frame::new(Format::Framed, token, payload, identifier, expiry, priority)
    }

    /// A frame in `format`, keeping only the fields that format carries: command 0 drops the
    /// identifier, expiry and priority; command 1 drops the priority.
    pub fn new(
        format: Format,
        token: ApnsToken,
        payload: Bytes,
        identifier: u32,
        expiry: u32,
        priority: u8,
    ) -> Self {
        let classic = format != Format::Framed;
        let simple = format == Format::Simple;
        Frame {
            format,
            token,
            payload,
            identifier: (!simple).then_some(identifier),
            expiry: (!simple).then_some(expiry),
            priority: (!classic).then_some(priority),
        }
    }

    /// The number of bytes [`encode`](Frame::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let body = 2 + ApnsToken::LEN + 2 + self.payload.len();
        match self.format {
            Format::Simple => 1 + body,
            Format::Enhanced => 1 + 8 + body,
            Format::Framed => 5 + self.items_len(),
        }
    }

    fn items_len(&self) -> usize {
        3 + ApnsToken::LEN
            + 3
            + self.payload.len()
            + self.identifier.map_or(0, |_| 7)
            + self.expiry.map_or(0, |_| 7)
            + self.priority.map_or(0, |_| 4)
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let payload_len = u16::try_from(self.payload.len())
            .map_err(|_| EncodeError::PayloadTooLong(self.payload.len()))?;
        let token_len = ApnsToken::LEN as u16;
        out.reserve(self.encoded_len());
        out.push(self.format.command());
        match self.format {
            Format::Simple | Format::Enhanced => {
                if self.format == Format::Enhanced {
                    out.extend_from_slice(&self.identifier.unwrap_or(0).to_be_bytes());
                    out.extend_from_slice(&self.expiry.unwrap_or(0).to_be_bytes());
                }
                out.extend_from_slice(&token_len.to_be_bytes());
                out.extend_from_slice(self.token.as_bytes());
                out.extend_from_slice(&payload_len.to_be_bytes());
                out.extend_from_slice(&self.payload);
            }
            Format::Framed => {
                // Bounded by the u16 payload length, so it always fits a u32.
                out.extend_from_slice(&(self.items_len() as u32).to_be_bytes());
                put_item(out, ITEM_TOKEN, self.token.as_bytes());
                put_item(out, ITEM_PAYLOAD, &self.payload);
                if let Some(identifier) = self.identifier {
                    put_item(out, ITEM_IDENTIFIER, &identifier.to_be_bytes());
                }
                if let Some(expiry) = self.expiry {
                    put_item(out, ITEM_EXPIRY, &expiry.to_be_bytes());
                }
                if let Some(priority) = self.priority {
                    put_item(out, ITEM_PRIORITY, &[priority]);
                }
            }
        }
        Ok(())
    }

    /// Decodes one frame from the start of `input`.
    ///
    /// Returns `Ok(None)` when `input` holds only the beginning of a frame (read more and call
    /// again), or the frame and the number of bytes it used.
    pub fn decode(input: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
        let Some(&command) = input.first() else {
            return Ok(None);
        };
        match command {
            0 => decode_classic(input, Format::Simple),
            1 => decode_classic(input, Format::Enhanced),
            2 => decode_framed(input),
            other => Err(DecodeError::UnknownCommand(other)),
        }
    }
}

/// Appends a checkpoint: a frame in `format` that names `identifier` and carries no device
/// token, which a gateway answers with status 2 (missing device token) naming `identifier`
/// ([`DecodeError::MissingToken`]). Returns false, appending nothing, for the simple format,
/// whose frames have no identifier to name.
pub(crate) fn encode_checkpoint(format: Format, identifier: u32, out: &mut Vec<u8>) -> bool {
    match format {
        Format::Simple => return false,
        Format::Enhanced => {
            out.push(format.command());
            out.extend_from_slice(&identifier.to_be_bytes());
            // Expiry 0, then an empty token and an empty payload.
            out.extend_from_slice(&[0; 8]);
        }
        Format::Framed => {
            out.push(format.command());
            out.extend_from_slice(&7u32.to_be_bytes());
            put_item(out, ITEM_IDENTIFIER, &identifier.to_be_bytes());
        }
    }
    true
}

fn put_item(out: &mut Vec<u8>, item: u8, data: &[u8]) {
    out.push(item);
    // Items are a 32-byte token, a payload checked against u16 above, or 1-4 byte integers.
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// A cursor over a byte slice whose reads report "need more" as `None`.
struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.input.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn token_from(bytes: &[u8], identifier: Option<u32>) -> Result<ApnsToken, DecodeError> {
    <[u8; ApnsToken::LEN]>::try_from(bytes)
        .map(ApnsToken::from_bytes)
        .map_err(|_| DecodeError::TokenSize {
            len: bytes.len(),
            identifier,
        })
}

fn decode_classic(input: &[u8], format: Format) -> Result<Option<(Frame, usize)>, DecodeError> {
    let mut reader = Reader { input, at: 1 };
    let decoded = (|| {
        let (identifier, expiry) = if format == Format::Enhanced {
            (Some(reader.u32()?), Some(reader.u32()?))
        } else {
            (None, None)
        };
        let token_len = reader.u16()?;
        let token = reader.take(usize::from(token_len))?;
        let payload_len = reader.u16()?;
        let payload = reader.take(usize::from(payload_len))?;
        Some((identifier, expiry, token, payload))
    })();
    let Some((identifier, expiry, token, payload)) = decoded else {
        return Ok(None);
    };
    if token.is_empty() {
        return Err(DecodeError::MissingToken { identifier });
    }
    let token = token_from(token, identifier)?;
    if payload.is_empty() {
        return Err(DecodeError::MissingPayload { identifier });
    }
    let frame = Frame {
        format,
        token,
        payload: Bytes::copy_from_slice(payload),
        identifier,
        expiry,
        priority: None,
    };
    Ok(Some((frame, reader.at)))
}

fn decode_framed(input: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
    let mut reader = Reader { input, at: 1 };
    let Some(frame_len) = reader.u32() else {
        return Ok(None);
    };
    if frame_len as usize > MAX_FRAME_LEN {
        return Err(DecodeError::FrameTooLong(frame_len));
    }
    let Some(items) = reader.take(frame_len as usize) else {
        return Ok(None);
    };
    let mut items = Reader {
        input: items,
        at: 0,
    };
    let (mut token, mut payload) = (None, None);
    let (mut identifier, mut expiry, mut priority) = (None, None, None);
    while items.at < items.input.len() {
        let header = items.u8().zip(items.u16());
        let Some((item, len)) = header else {
            return Err(DecodeError::ItemOverrun { item: 0, len: 0 });
        };
        let data = items
            .take(usize::from(len))
            .ok_or(DecodeError::ItemOverrun { item, len })?;
        let bad = DecodeError::BadItem { item, len };
        match item {
            ITEM_TOKEN if token.is_none() => token = Some(data),
            ITEM_PAYLOAD if payload.is_none() => payload = Some(data),
            ITEM_IDENTIFIER if identifier.is_none() => {
                identifier = Some(u32::from_be_bytes(data.try_into().map_err(|_| bad)?));
            }
            ITEM_EXPIRY if expiry.is_none() => {
                expiry = Some(u32::from_be_bytes(data.try_into().map_err(|_| bad)?));
            }
            ITEM_PRIORITY if priority.is_none() => match data {
                [value] => priority = Some(*value),
                _ => return Err(bad),
            },
            _ => return Err(bad),
        }
    }
    let token = match token {
        None | Some([]) => return Err(DecodeError::MissingToken { identifier }),
        Some(bytes) => token_from(bytes, identifier)?,
    };
    let payload = match payload {
        None | Some([]) => return Err(DecodeError::MissingPayload { identifier }),
        Some(bytes) => Bytes::copy_from_slice(bytes),
    };
    let frame = Frame {
        format: Format::Framed,
        token,
        payload,
        identifier,
        expiry,
        priority,
    };
    Ok(Some((frame, reader.at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::test_vectors::*;
    use proptest::prelude::*;

    fn vector_frame(format: Format) -> Frame {
        let payload = Bytes::from_static(VECTOR_PAYLOAD);
        Frame::new(
            format,
            vector_token(),
            payload,
            0x1234_5678,
            1_700_000_000,
            10,
        )
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.encode(&mut out).unwrap();
        assert_eq!(out.len(), frame.encoded_len());
        out
    }

    fn assert_vector(frame: Frame, hex: &str) {
        let bytes = unhex(hex);
        assert_eq!(encoded(&frame), bytes, "encoding");
        assert_eq!(
            Frame::decode(&bytes),
            Ok(Some((frame, bytes.len()))),
            "decoding"
        );
    }

    #[test]
    fn v1_command_2_all_items() {
        assert_vector(vector_frame(Format::Framed), V1);
        assert_eq!(unhex(V1).len(), 83);
    }

    #[test]
    fn v2_command_1() {
        assert_vector(vector_frame(Format::Enhanced), V2);
        assert_eq!(unhex(V2).len(), 67);
    }

    #[test]
    fn v3_command_0() {
        assert_vector(vector_frame(Format::Simple), V3);
        assert_eq!(unhex(V3).len(), 59);
    }

    #[test]
    fn v4_command_2_token_and_payload_only() {
        let mut frame = vector_frame(Format::Framed);
        frame.identifier = None;
        frame.expiry = None;
        frame.priority = None;
        assert_vector(frame, V4);
    }

    #[test]
    fn v5_pyapns_public_vector() {
        let token =
            ApnsToken::parse("b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c")
                .unwrap();
        let payload = br#"{"aps":{"sound":"default","badge":4,"alert":"Hello World!"}}"#;
        assert_eq!(payload.len(), 60);
        let frame = Frame::framed(token, Bytes::from_static(payload), 1, 3600, 10);
        assert_vector(frame, V5);
    }

    #[test]
    fn v6_houston_frame_length() {
        let frame = Frame::framed(
            vector_token(),
            Bytes::from(vec![b'x'; 216]),
            42,
            1_234_567_890,
            10,
        );
        let bytes = encoded(&frame);
        assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), 272);
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let bytes = unhex(V1);
        for cut in 0..bytes.len() {
            assert_eq!(Frame::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(Frame::decode(&[9]), Err(DecodeError::UnknownCommand(9)));
        assert_eq!(
            Frame::decode(&[2, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::FrameTooLong(u32::MAX))
        );
        // Command 2 with an identifier but a 3-byte token: status 5 for that identifier.
        let mut frame = vec![2, 0, 0, 0, 13];
        frame.extend_from_slice(&[1, 0, 3, 0xaa, 0xbb, 0xcc]);
        frame.extend_from_slice(&[3, 0, 4, 0, 0, 0, 7]);
        let error = Frame::decode(&frame).unwrap_err();
        assert_eq!(
            error,
            DecodeError::TokenSize {
                len: 3,
                identifier: Some(7)
            }
        );
        assert_eq!(
            error.status(),
            Some((crate::apns::Status::InvalidTokenSize, 7))
        );
        // A duplicated item.
        let frame = [2, 0, 0, 0, 8, 5, 0, 1, 10, 5, 0, 1, 10];
        assert_eq!(
            Frame::decode(&frame),
            Err(DecodeError::BadItem { item: 5, len: 1 })
        );
    }

    #[test]
    fn a_checkpoint_is_answered_with_status_2_naming_it() {
        for format in [Format::Enhanced, Format::Framed] {
            let mut out = vec![];
            assert!(encode_checkpoint(format, 0xdead_beef, &mut out));
            let error = Frame::decode(&out).unwrap_err();
            assert_eq!(
                error,
                DecodeError::MissingToken {
                    identifier: Some(0xdead_beef)
                }
            );
            assert_eq!(
                error.status(),
                Some((crate::apns::Status::MissingDeviceToken, 0xdead_beef))
            );
        }
        let mut out = vec![];
        assert!(!encode_checkpoint(Format::Simple, 1, &mut out));
        assert!(out.is_empty());
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        (
            prop_oneof![
                Just(Format::Simple),
                Just(Format::Enhanced),
                Just(Format::Framed)
            ],
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<u8>(), 1..600),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            any::<Option<u8>>(),
        )
            .prop_map(|(format, token, payload, identifier, expiry, priority)| {
                let classic = format != Format::Framed;
                Frame {
                    format,
                    token: ApnsToken::from_bytes(token),
                    payload: Bytes::from(payload),
                    identifier: match format {
                        Format::Simple => None,
                        Format::Enhanced => Some(identifier.unwrap_or(0)),
                        Format::Framed => identifier,
                    },
                    expiry: match format {
                        Format::Simple => None,
                        Format::Enhanced => Some(expiry.unwrap_or(0)),
                        Format::Framed => expiry,
                    },
                    priority: if classic { None } else { priority },
                }
            })
    }

    proptest! {
        #[test]
        fn frames_round_trip(frame in any_frame()) {
            let bytes = encoded(&frame);
            prop_assert_eq!(Frame::decode(&bytes), Ok(Some((frame, bytes.len()))));
        }

        #[test]
        fn concatenated_frames_decode_in_order(frames in proptest::collection::vec(any_frame(), 1..8)) {
            let mut stream = Vec::new();
            for frame in &frames {
                frame.encode(&mut stream).unwrap();
            }
            let mut rest = &stream[..];
            let mut decoded = Vec::new();
            while let Some((frame, used)) = Frame::decode(rest).unwrap() {
                decoded.push(frame);
                rest = &rest[used..];
            }
            prop_assert!(rest.is_empty());
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_overread(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((frame, used))) = Frame::decode(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(encoded(&frame).len(), used);
            }
        }
    }
}
