//! The feedback service (port 2196): the tuples APNs streams to a provider that connects.
//!
//! ```text
//! timestamp u32 | token len u16 | token
//! ```
//! The provider sends nothing; APNs writes every pending tuple back to back, with no other
//! framing, then closes the connection. Tuples may be split across reads at any byte, so
//! [`FeedbackDecoder`] buffers until a whole tuple is there. Encoding is for servers (our mock)
//! and tests.

use bytes::Bytes;
use thiserror::Error;

use crate::device::ApnsToken;

/// One feedback tuple: a device that no longer accepts notifications for the topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedbackTuple {
    /// When APNs decided the app is gone from the device, in UNIX seconds (UTC). Only delete
    /// the token if it was not registered again after this time.
    pub timestamp: u32,
    /// The raw token bytes, of the length the tuple announced (32 in practice).
    pub token: Bytes,
}

/// Why a tuple could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FeedbackEncodeError {
    /// The token does not fit the 16-bit length field.
    #[error(
        "feedback token of {0} bytes does not fit a tuple (at most {max})",
        max = FeedbackTuple::MAX_TOKEN_LEN
    )]
    TokenTooLong(usize),
}

impl FeedbackTuple {
    /// Bytes before the token: timestamp and token length.
    pub const HEADER_LEN: usize = 6;
    /// Longest token a tuple can carry (the length field is a u16).
    pub const MAX_TOKEN_LEN: usize = u16::MAX as usize;
    /// Longest tuple on the wire.
    pub const MAX_LEN: usize = Self::HEADER_LEN + Self::MAX_TOKEN_LEN;

    /// A tuple for `token` at `timestamp` (UNIX seconds). A token longer than
    /// [`MAX_TOKEN_LEN`](Self::MAX_TOKEN_LEN) is accepted here and refused by
    /// [`encode`](Self::encode).
    pub fn new(timestamp: u32, token: impl Into<Bytes>) -> Self {
        FeedbackTuple {
            timestamp,
            token: token.into(),
        }
    }

    /// A tuple for a validated 32-byte APNs token.
    pub fn for_token(timestamp: u32, token: &ApnsToken) -> Self {
        FeedbackTuple::new(timestamp, Bytes::copy_from_slice(token.as_bytes()))
    }

    /// The token as an [`ApnsToken`], when it is exactly 32 bytes.
    pub fn apns_token(&self) -> Option<ApnsToken> {
        <[u8; ApnsToken::LEN]>::try_from(self.token.as_ref())
            .ok()
            .map(ApnsToken::from_bytes)
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        Self::HEADER_LEN.saturating_add(self.token.len())
    }

    /// Appends the tuple's bytes to `out`; on error nothing is written.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FeedbackEncodeError> {
        let token_len = u16::try_from(self.token.len())
            .map_err(|_| FeedbackEncodeError::TokenTooLong(self.token.len()))?;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&token_len.to_be_bytes());
        out.extend_from_slice(&self.token);
        Ok(())
    }

    /// Decodes one tuple from the start of `input`.
    ///
    /// Returns `None` while `input` holds only the beginning of a tuple (read more and call
    /// again), or the tuple and the number of bytes it used. Every byte string that is long
    /// enough is a valid tuple, so there is no error case.
    pub fn decode(input: &[u8]) -> Option<(FeedbackTuple, usize)> {
        let len = Self::complete_len(input)?;
        let [a, b, c, d, ..] = *input else {
            return None;
        };
        let token = input.get(Self::HEADER_LEN..len)?;
        let timestamp = u32::from_be_bytes([a, b, c, d]);
        Some((
            FeedbackTuple::new(timestamp, Bytes::copy_from_slice(token)),
            len,
        ))
    }

    /// The total length of the tuple starting `input`, once its header is there.
    fn announced_len(input: &[u8]) -> Option<usize> {
        match input {
            [_, _, _, _, hi, lo, ..] => {
                Some(Self::HEADER_LEN + usize::from(u16::from_be_bytes([*hi, *lo])))
            }
            _ => None,
        }
    }

    /// The length of the tuple starting `input`, once all of it is there.
    fn complete_len(input: &[u8]) -> Option<usize> {
        Self::announced_len(input).filter(|&len| len <= input.len())
    }
}

/// The stream ended in the middle of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("feedback stream ended with {leftover} bytes of an incomplete tuple")]
pub struct TruncatedFeedback {
    /// Bytes of the incomplete tuple that were received (at least 1).
    pub leftover: usize,
    /// The incomplete tuple's full length, when its 6-byte header was received.
    pub expected: Option<usize>,
}

/// A streaming parser for the feedback service's byte stream.
///
/// Feed it whatever the connection delivers with [`handle_input`](Self::handle_input), take
/// complete tuples with [`poll_tuple`](Self::poll_tuple) until it returns `None`, and at EOF
/// call [`finish`](Self::finish) to learn whether the stream ended cleanly.
///
/// Consumed bytes are dropped, so a caller that polls after each input keeps at most one
/// incomplete tuple ([`FeedbackTuple::MAX_LEN`] bytes) plus the latest input buffered.
#[derive(Debug, Clone, Default)]
pub struct FeedbackDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
}

impl FeedbackDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        FeedbackDecoder::default()
    }

    /// Buffers bytes read from the connection, split anywhere.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        // Compact once the consumed prefix is at least as large as what is left, so each byte
        // is moved a bounded number of times however the caller interleaves input and polls.
        if self.pos > 0 && self.pos >= self.buf.len() - self.pos {
            self.compact();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete tuple, in stream order; `None` until more input completes one.
    pub fn poll_tuple(&mut self) -> Option<FeedbackTuple> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match FeedbackTuple::decode(rest) {
            Some((tuple, used)) => {
                self.pos += used;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                Some(tuple)
            }
            None => {
                // What is left is less than one tuple: cheap to move to the front.
                self.compact();
                None
            }
        }
    }

    /// The number of bytes received but not yet returned as tuples.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Ends the stream (the peer closed the connection).
    ///
    /// Call it once [`poll_tuple`](Self::poll_tuple) has returned `None`: complete tuples still
    /// buffered are not returned, only skipped. Fails when the stream stopped inside a tuple.
    pub fn finish(self) -> Result<(), TruncatedFeedback> {
        let mut rest = self.buf.get(self.pos..).unwrap_or_default();
        while let Some(len) = FeedbackTuple::complete_len(rest) {
            rest = rest.get(len..).unwrap_or_default();
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(TruncatedFeedback {
                leftover: rest.len(),
                expected: FeedbackTuple::announced_len(rest),
            })
        }
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::test_vectors::{
        FEEDBACK_GROCER, FEEDBACK_GROCER_TOKEN, FEEDBACK_MINE, FEEDBACK_TIMEHOP,
        FEEDBACK_TIMEHOP_TOKEN, unhex, vector_token,
    };
    use proptest::prelude::*;

    fn documented() -> Vec<(&'static str, FeedbackTuple)> {
        let timehop = ApnsToken::parse(FEEDBACK_TIMEHOP_TOKEN).unwrap();
        let grocer = ApnsToken::parse(FEEDBACK_GROCER_TOKEN).unwrap();
        vec![
            (
                FEEDBACK_MINE,
                FeedbackTuple::for_token(1_700_000_000, &vector_token()),
            ),
            (
                FEEDBACK_TIMEHOP,
                FeedbackTuple::for_token(1_404_358_249, &timehop),
            ),
            (
                FEEDBACK_GROCER,
                FeedbackTuple::for_token(819_504_000, &grocer),
            ),
        ]
    }

    fn encode(tuple: &FeedbackTuple) -> Vec<u8> {
        let mut out = Vec::new();
        tuple.encode(&mut out).unwrap();
        out
    }

    /// Feeds `chunks` one by one, polling after each, and returns the tuples and the result
    /// of `finish`.
    fn run<'a>(
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<FeedbackTuple>, Result<(), TruncatedFeedback>) {
        let mut decoder = FeedbackDecoder::new();
        let mut tuples = Vec::new();
        for chunk in chunks {
            decoder.handle_input(chunk);
            while let Some(tuple) = decoder.poll_tuple() {
                tuples.push(tuple);
            }
            assert!(decoder.buf.len() <= FeedbackTuple::MAX_LEN + chunk.len());
        }
        (tuples, decoder.finish())
    }

    #[test]
    fn documented_tuples_encode_and_decode() {
        for (hex, tuple) in documented() {
            let bytes = unhex(hex);
            assert_eq!(bytes.len(), 38);
            assert_eq!(tuple.encoded_len(), 38);
            assert_eq!(encode(&tuple), bytes, "{hex}");
            assert_eq!(FeedbackTuple::decode(&bytes), Some((tuple.clone(), 38)));
            let (tuples, end) = run([bytes.as_slice()]);
            assert_eq!(tuples, vec![tuple.clone()]);
            assert_eq!(end, Ok(()));
            assert!(tuple.apns_token().is_some());
        }
    }

    #[test]
    fn documented_timestamps_and_tokens() {
        let tuples = documented();
        assert_eq!(tuples[0].1.apns_token(), Some(vector_token()));
        assert_eq!(tuples[1].1.timestamp, 0x53b4_ce69);
        assert_eq!(
            tuples[1].1.apns_token().unwrap().to_hex(),
            FEEDBACK_TIMEHOP_TOKEN
        );
        assert_eq!(tuples[2].1.timestamp, 0x30d8_a380);
        assert_eq!(
            tuples[2].1.apns_token().unwrap().to_hex(),
            FEEDBACK_GROCER_TOKEN
        );
    }

    #[test]
    fn two_tuple_stream_of_76_bytes() {
        let stream = unhex(&format!("{FEEDBACK_MINE}{FEEDBACK_TIMEHOP}"));
        assert_eq!(stream.len(), 76);
        let expected: Vec<_> = documented().into_iter().take(2).map(|(_, t)| t).collect();
        // In one read, byte by byte, and split inside the second header.
        assert_eq!(run([stream.as_slice()]), (expected.clone(), Ok(())));
        assert_eq!(run(stream.chunks(1)), (expected.clone(), Ok(())));
        let (a, b) = stream.split_at(41);
        assert_eq!(run([a, b]), (expected, Ok(())));
    }

    #[test]
    fn truncated_tail_is_reported() {
        let stream = unhex(&format!("{FEEDBACK_MINE}{FEEDBACK_GROCER}"));
        // Cut inside the second tuple's token.
        let (tuples, end) = run([&stream[..70]]);
        assert_eq!(tuples.len(), 1);
        assert_eq!(
            end,
            Err(TruncatedFeedback {
                leftover: 32,
                expected: Some(38)
            })
        );
        // Cut inside the second tuple's header.
        let (tuples, end) = run([&stream[..41]]);
        assert_eq!(tuples.len(), 1);
        assert_eq!(
            end,
            Err(TruncatedFeedback {
                leftover: 3,
                expected: None
            })
        );
        assert_eq!(FeedbackTuple::decode(&stream[..37]), None);
        assert_eq!(FeedbackDecoder::new().finish(), Ok(()));
    }

    #[test]
    fn finish_skips_unpolled_whole_tuples() {
        let mut decoder = FeedbackDecoder::new();
        decoder.handle_input(&unhex(FEEDBACK_MINE));
        decoder.handle_input(&[0, 0]);
        assert_eq!(decoder.buffered(), 40);
        assert_eq!(
            decoder.finish(),
            Err(TruncatedFeedback {
                leftover: 2,
                expected: None
            })
        );
    }

    #[test]
    fn token_lengths_other_than_32() {
        let empty = FeedbackTuple::new(7, Bytes::new());
        assert_eq!(encode(&empty), vec![0, 0, 0, 7, 0, 0]);
        assert_eq!(
            FeedbackTuple::decode(&encode(&empty)),
            Some((empty.clone(), 6))
        );
        assert_eq!(empty.apns_token(), None);

        let longest = FeedbackTuple::new(1, vec![0xab; FeedbackTuple::MAX_TOKEN_LEN]);
        let bytes = encode(&longest);
        assert_eq!(bytes.len(), FeedbackTuple::MAX_LEN);
        assert_eq!(&bytes[4..6], &[0xff, 0xff]);
        assert_eq!(run(bytes.chunks(4096)), (vec![longest], Ok(())));
    }

    #[test]
    fn oversize_token_is_refused_without_writing() {
        let tuple = FeedbackTuple::new(1, vec![0; FeedbackTuple::MAX_TOKEN_LEN + 1]);
        let mut out = vec![9];
        assert_eq!(
            tuple.encode(&mut out),
            Err(FeedbackEncodeError::TokenTooLong(65_536))
        );
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn consumed_bytes_are_dropped() {
        let one = unhex(FEEDBACK_MINE);
        let mut decoder = FeedbackDecoder::new();
        for _ in 0..1000 {
            // A tuple and a half per read, so a partial tuple is always left over.
            decoder.handle_input(&one);
            decoder.handle_input(&one[..19]);
            decoder.handle_input(&one[19..]);
            while decoder.poll_tuple().is_some() {}
            assert!(decoder.buf.len() < 2 * one.len());
        }
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.finish(), Ok(()));
    }

    fn tuple_strategy() -> impl Strategy<Value = FeedbackTuple> {
        let token = prop_oneof![
            4 => any::<[u8; 32]>().prop_map(|t| t.to_vec()),
            1 => proptest::collection::vec(any::<u8>(), 0..80),
        ];
        (any::<u32>(), token).prop_map(|(timestamp, token)| FeedbackTuple::new(timestamp, token))
    }

    proptest! {
        #[test]
        fn tuples_round_trip(tuple in tuple_strategy()) {
            let bytes = encode(&tuple);
            prop_assert_eq!(bytes.len(), tuple.encoded_len());
            prop_assert_eq!(tuple.apns_token().is_some(), tuple.token.len() == 32);
            prop_assert_eq!(FeedbackTuple::decode(&bytes), Some((tuple, bytes.len())));
        }

        #[test]
        fn any_chunking_yields_the_same_tuples(
            tuples in proptest::collection::vec(tuple_strategy(), 0..8),
            mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = tuples.iter().flat_map(encode).collect();
            let mut points: Vec<usize> = cuts.drain(..).map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let chunks = points.windows(2).map(|w| &stream[w[0]..w[1]]);
            prop_assert_eq!(run(chunks), (tuples, Ok(())));
        }

        #[test]
        fn arbitrary_bytes_decode_to_a_prefix_or_truncation(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..64,
        ) {
            let (tuples, end) = run(input.chunks(chunk));
            let consumed: Vec<u8> = tuples.iter().flat_map(encode).collect();
            prop_assert!(input.starts_with(&consumed));
            match end {
                Ok(()) => prop_assert_eq!(consumed.len(), input.len()),
                Err(truncated) => {
                    prop_assert_eq!(truncated.leftover, input.len() - consumed.len());
                    prop_assert!(truncated.leftover > 0);
                    if let Some(expected) = truncated.expected {
                        prop_assert!(expected > truncated.leftover);
                    }
                }
            }
        }

        #[test]
        fn arbitrary_header_lengths_never_panic(
            header in any::<[u8; 6]>(),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut input = header.to_vec();
            input.extend_from_slice(&tail);
            let _ = FeedbackTuple::decode(&input);
            let announced = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let (tuples, end) = run([input.as_slice()]);
            match tuples.first() {
                Some(first) => {
                    prop_assert!(announced <= tail.len());
                    prop_assert_eq!(first.token.len(), announced);
                    prop_assert_eq!(&first.token[..], &tail[..announced]);
                }
                None => {
                    prop_assert!(announced > tail.len());
                    prop_assert_eq!(end, Err(TruncatedFeedback {
                        leftover: input.len(),
                        expected: Some(6 + announced),
                    }));
                }
            }
        }
    }
}
