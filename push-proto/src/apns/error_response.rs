//! The error-response packet: the only thing the gateway ever writes back.
//!
//! ```text
//! 08 | status u8 | identifier u32
//! ```
//! Exactly one packet, then the gateway closes the connection; everything written after the
//! named notification was discarded.

use std::fmt;

use thiserror::Error;

/// The status byte of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0: no errors encountered.
    NoErrors,
    /// 1: processing error on Apple's side (transient).
    ProcessingError,
    /// 2: missing device token.
    MissingDeviceToken,
    /// 3: missing topic.
    MissingTopic,
    /// 4: missing payload.
    MissingPayload,
    /// 5: invalid token size.
    InvalidTokenSize,
    /// 6: invalid topic size.
    InvalidTopicSize,
    /// 7: invalid payload size.
    InvalidPayloadSize,
    /// 8: invalid token: not valid for this app or environment.
    InvalidToken,
    /// 10: shutdown; the identifier names the last notification processed successfully.
    Shutdown,
    /// 128: protocol error: APNs could not parse the notification.
    ProtocolError,
    /// 255: none (unknown).
    Unknown,
    /// Any other byte.
    Other(u8),
}

impl Status {
    /// The status from its byte.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0 => Status::NoErrors,
            1 => Status::ProcessingError,
            2 => Status::MissingDeviceToken,
            3 => Status::MissingTopic,
            4 => Status::MissingPayload,
            5 => Status::InvalidTokenSize,
            6 => Status::InvalidTopicSize,
            7 => Status::InvalidPayloadSize,
            8 => Status::InvalidToken,
            10 => Status::Shutdown,
            128 => Status::ProtocolError,
            255 => Status::Unknown,
            other => Status::Other(other),
        }
    }

    /// The status byte.
    pub const fn code(self) -> u8 {
        match self {
            Status::NoErrors => 0,
            Status::ProcessingError => 1,
            Status::MissingDeviceToken => 2,
            Status::MissingTopic => 3,
            Status::MissingPayload => 4,
            Status::InvalidTokenSize => 5,
            Status::InvalidTopicSize => 6,
            Status::InvalidPayloadSize => 7,
            Status::InvalidToken => 8,
            Status::Shutdown => 10,
            Status::ProtocolError => 128,
            Status::Unknown => 255,
            Status::Other(code) => code,
        }
    }

    /// Apple's description of the status.
    pub const fn description(self) -> &'static str {
        match self {
            Status::NoErrors => "no errors encountered",
            Status::ProcessingError => "processing error",
            Status::MissingDeviceToken => "missing device token",
            Status::MissingTopic => "missing topic",
            Status::MissingPayload => "missing payload",
            Status::InvalidTokenSize => "invalid token size",
            Status::InvalidTopicSize => "invalid topic size",
            Status::InvalidPayloadSize => "invalid payload size",
            Status::InvalidToken => "invalid token",
            Status::Shutdown => "shutdown",
            Status::ProtocolError => "protocol error",
            Status::Unknown => "none (unknown)",
            Status::Other(_) => "unlisted status",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

/// A decoded error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorResponse {
    /// What went wrong.
    pub status: Status,
    /// The notification it concerns (for [`Status::Shutdown`]: the last good one).
    pub identifier: u32,
}

/// Bytes that start like no error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("expected an error response (command 8), got command {0}")]
pub struct NotAnErrorResponse(pub u8);

impl ErrorResponse {
    /// Size of the packet in bytes.
    pub const LEN: usize = 6;
    /// Its command byte.
    pub const COMMAND: u8 = 8;

    /// The packet's bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let [a, b, c, d] = self.identifier.to_be_bytes();
        [Self::COMMAND, self.status.code(), a, b, c, d]
    }

    /// Decodes a packet from the start of `input`; `Ok(None)` until all six bytes are there.
    pub fn decode(input: &[u8]) -> Result<Option<Self>, NotAnErrorResponse> {
        match input {
            [] => Ok(None),
            [command, ..] if *command != Self::COMMAND => Err(NotAnErrorResponse(*command)),
            [_, status, a, b, c, d, ..] => Ok(Some(ErrorResponse {
                status: Status::from_code(*status),
                identifier: u32::from_be_bytes([*a, *b, *c, *d]),
            })),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::test_vectors::unhex;
    use proptest::prelude::*;

    #[test]
    fn documented_error_responses() {
        let cases = [
            ("080812345678", Status::InvalidToken, 0x1234_5678),
            ("080a12345677", Status::Shutdown, 0x1234_5677),
            ("080800000001", Status::InvalidToken, 1),
        ];
        for (hex, status, identifier) in cases {
            let response = ErrorResponse { status, identifier };
            assert_eq!(response.encode().to_vec(), unhex(hex));
            assert_eq!(ErrorResponse::decode(&unhex(hex)), Ok(Some(response)));
        }
    }

    #[test]
    fn every_listed_status_code() {
        let listed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 128, 255];
        for code in 0..=255u8 {
            let status = Status::from_code(code);
            assert_eq!(status.code(), code);
            assert_eq!(
                listed.contains(&code),
                !matches!(status, Status::Other(_)),
                "code {code}"
            );
        }
    }

    #[test]
    fn short_or_foreign_input() {
        assert_eq!(ErrorResponse::decode(&[8, 8, 0]), Ok(None));
        assert_eq!(ErrorResponse::decode(&[]), Ok(None));
        assert_eq!(
            ErrorResponse::decode(&[2, 0, 0, 0, 0, 0]),
            Err(NotAnErrorResponse(2))
        );
    }

    proptest! {
        #[test]
        fn error_responses_round_trip(code in any::<u8>(), identifier in any::<u32>()) {
            let response = ErrorResponse { status: Status::from_code(code), identifier };
            prop_assert_eq!(ErrorResponse::decode(&response.encode()), Ok(Some(response)));
        }
    }
}
