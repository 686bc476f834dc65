//! Apple's push protocols: the binary gateway (port 2195) and feedback service (port 2196),
//! and the HTTP/2 provider API ([`http2`]) that replaced them.

mod error_response;
mod feedback;
mod frame;
mod gateway;
pub mod http2;
#[cfg(test)]
pub(crate) mod test_vectors;

pub use error_response::{ErrorResponse, NotAnErrorResponse, Status};
pub use feedback::{FeedbackDecoder, FeedbackEncodeError, FeedbackTuple, TruncatedFeedback};
pub use frame::{DecodeError, EncodeError, Format, Frame, MAX_FRAME_LEN};
pub use gateway::{Event, Gateway, GatewayConfig, GatewayStats, Notification, SilentClose};
