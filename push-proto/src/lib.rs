//! # push-proto: the sans-IO core of `push`
//!
//! Everything `push` knows about the push protocols, as plain state machines: bytes and
//! [`http`] requests go out as values, bytes and responses come in as values, and time is an
//! argument (`now: Instant`). No sockets, no clock, no threads, no async: the same core runs
//! under smol, async-std, a blocking `std::net` loop (see `examples/blocking.rs`), or a fuzzer.
//!
//! ## The pieces
//! - The model: [`Device`] (a [`Platform`] and the token as stored), validated tokens
//!   ([`ApnsToken`], [`GcmToken`]), the [`Payload`] written once per broadcast, and the
//!   [`Feedback`] every device ends in, with a [`DeviceError`] carrying a stable snake_case code.
//! - [`apns`]: binary frames (commands 0, 1, 2) and error responses in both directions, the
//!   [`apns::Gateway`] connection state machine with its resend window, the
//!   feedback-service codec, and the HTTP/2 provider API ([`apns::http2`]).
//! - [`engine`]: the one request/response [`engine::Sender`] every HTTP provider runs on
//!   (queues, batches, retries, connections, stats), with a protocol and a credential plugged
//!   in.
//! - [`gcm`]: legacy GCM on the engine: request bodies for batches of up to 1,000 tokens and
//!   the per-token classification of the results (canonical ids).
//! - [`fcm`]: Google's live protocol, FCM HTTP v1 on the engine: the service account and its
//!   RS256 assertion, the [`fcm::OAuth`] access-token state machine, the message encoded once
//!   and spliced per token, the response table.
//! - [`webpush`]: Web Push to browsers: the subscription, RFC 8291 message encryption,
//!   VAPID tokens, the declarative payload form, the response table, and the protocol and
//!   credential the [`engine`] sends them with, one sender per push-service origin.
//! - [`Push`]: the dispatcher that routes devices to the provider of their platform (APNs
//!   HTTP/2 before the binary gateway, FCM v1 before legacy GCM) and gives a driver one loop to
//!   run.
//!
//! ## The contract every state machine follows
//! `handle_*` methods feed inputs (bytes read, HTTP responses, connection events, the passing
//! of time); `poll_*` methods drain outputs (things to do, outcomes, events, the next
//! deadline). After any input, drain the outputs; then wait for I/O or the deadline. Bounded
//! queues answer [`Full`] instead of blocking, handing the input back. Time never goes
//! backwards between calls. Every device handed in ends in exactly one feedback.
//!
//! ```
//! use std::time::Instant;
//! use push_proto::engine::{Action as Http, Input};
//! use push_proto::{Action, Device, Event, Payload, Push, Route, gcm};
//!
//! let mut push = Push::new()
//!     .with_gcm(gcm::Config::new("api-key"), gcm::MessageOptions::default())
//!     .expect("valid configuration");
//! let session = push.open_session(&Payload::new().title("Hi").body("There"));
//! let now = Instant::now();
//! push.push(session, Device::android("token-1"), now).expect("room");
//! push.close_session(session);
//!
//! let mut apns_bytes = Vec::new();
//! while let Some(action) = push.poll_action(now, &mut apns_bytes) {
//!     let Action::Http(route, action) = action else { continue };
//!     match action {
//!         // Open an HTTP/1.1 connection to the endpoint (one request at a time).
//!         Http::Dial(conn) => push.handle_http(route, Input::Connected { conn, max_streams: 1 }, now),
//!         Http::Send { id, request, .. } => {
//!             assert_eq!((route, request.headers()["authorization"].as_bytes()), (Route::Gcm, &b"key=api-key"[..]));
//!             // Send it with any HTTP client; here, the service's answer is made up.
//!             let body = r#"{"multicast_id":1,"success":1,"failure":0,"canonical_ids":0,
//!                            "results":[{"message_id":"0:1"}]}"#;
//!             let response = http::Response::new(body.into());
//!             push.handle_http(route, Input::Response { id, response }, now);
//!         }
//!         _ => {}
//!     }
//! }
//! let (_, feedback) = push.poll_feedback().expect("one feedback per device");
//! assert!(feedback.is_delivered());
//! assert_eq!(push.poll_event(), Some(Event::SessionFinished(session)));
//! ```
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod apns;
mod backoff;
mod device;
mod dispatch;
pub mod engine;
pub mod fcm;
mod feedback;
pub mod gcm;
mod jose;
mod outcome;
mod payload;
mod rng;
mod sending;
pub mod webpush;

pub use backoff::Backoff;
pub use device::{ApnsToken, Device, GcmToken, Platform, TokenError, UnknownPlatform};
pub use dispatch::{Action, Event, Push, Route, SessionId, WebPushSettings};
pub use feedback::{DeviceError, Feedback, Receipt};
pub use outcome::{Full, Outcome};
pub use payload::{Payload, Priority};
pub use rng::SplitMix64;

/// The README's examples, compiled and run as doctests so that the front door stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
