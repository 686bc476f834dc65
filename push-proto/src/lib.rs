//! # push-proto: the sans-IO core of `push`
//!
//! Everything `push` knows about the push protocols, as plain state machines: bytes and
//! [`http`] requests go out as values, bytes and responses come in as values, and time is an
//! argument (`now: Instant`). No sockets, no clock, no threads, no async.
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apns;
mod backoff;
mod device;
mod dispatch;
mod feedback;
pub mod gcm;
mod outcome;
mod payload;

pub use backoff::Backoff;
pub use device::{ApnsToken, Device, GcmToken, Platform, TokenError, UnknownPlatform};
pub use dispatch::{Action, Event, Push, SessionId};
pub use feedback::{DeviceError, Feedback};
pub use outcome::{Full, Outcome};
pub use payload::{Payload, Priority};

/// The README's examples, compiled and run as doctests so that the front door stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
