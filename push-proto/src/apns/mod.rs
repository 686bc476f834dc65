//! Apple's binary push protocol: the gateway (port 2195) and the feedback service (port 2196).

mod error_response;
mod feedback;
mod frame;
mod gateway;
#[cfg(test)]
pub(crate) mod test_vectors;

pub use error_response::{ErrorResponse, NotAnErrorResponse, Status};
pub use feedback::{FeedbackDecoder, FeedbackEncodeError, FeedbackTuple, TruncatedFeedback};
pub use frame::{DecodeError, EncodeError, Format, Frame, MAX_FRAME_LEN};
pub use gateway::{Event, Gateway, GatewayConfig, GatewayStats, Notification, SilentClose};
