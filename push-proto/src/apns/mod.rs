//! Apple's push protocols: the binary gateway (port 2195) and feedback service (port 2196),
//! and the HTTP/2 provider API ([`http2`]) that replaced them; broadcast channels
//! ([`broadcast`]), Live Activity pushes ([`live_activity`]) and widget pushes ([`widgets`]).

pub mod broadcast;
mod device_push;
mod error_response;
mod feedback;
mod frame;
mod gateway;
pub mod http2;
pub mod live_activity;
#[cfg(test)]
pub(crate) mod test_vectors;
pub mod widgets;

pub use device_push::{DeviceOptions, classify_device};

pub use error_response::{ErrorResponse, NotAnErrorResponse, Status};
pub use feedback::{FeedbackDecoder, FeedbackEncodeError, FeedbackTuple, TruncatedFeedback};
pub use frame::{DecodeError, EncodeError, Format, Frame, MAX_FRAME_LEN};
pub use gateway::{Event, Gateway, GatewayConfig, GatewayStats, Notification, SilentClose};
