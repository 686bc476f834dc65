//! The final result of one queued notification, as the providers report it.

use thiserror::Error;

use crate::feedback::DeviceError;

/// The final result of one notification queued in a provider state machine.
///
/// `tag` is whatever the caller attached when queueing (the dispatcher uses it to remember the
/// device and session). Every queued notification yields exactly one `Outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The caller's tag.
    pub tag: T,
    /// A canonical token that replaces the one the notification was sent to (GCM only).
    pub new_token: Option<String>,
    /// Why it failed, or `None` when delivered.
    pub error: Option<DeviceError>,
}

impl<T> Outcome<T> {
    /// A delivered notification.
    pub fn delivered(tag: T) -> Self {
        Outcome {
            tag,
            new_token: None,
            error: None,
        }
    }

    /// A failed notification.
    pub fn failed(tag: T, error: DeviceError) -> Self {
        Outcome {
            tag,
            new_token: None,
            error: Some(error),
        }
    }
}

/// A bounded queue is full: the rejected input is handed back, nothing was lost. Drain the
/// state machine (write, read, handle responses) and offer it again.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("queue is full; retry after draining")]
pub struct Full<T>(pub T);
