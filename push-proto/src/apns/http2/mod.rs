//! Apple's live protocol: the APNs HTTP/2 provider API (`POST /3/device/<token>`), with
//! provider-token (ES256 JWT) or certificate authentication.
//!
//! The core speaks HTTP semantics; the adapter owns the HTTP/2 connection. A [`Sender`] turns
//! queued notifications into `http::Request`s (all `apns-*` headers, `authorization: bearer
//! <JWT>` in token mode) and responses into one [`Report`] per notification, respecting the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS`. It never does IO and never reads a clock: time
//! is `now: Instant`, and the JWT's wall-clock `iat` comes from one `(Instant, UNIX seconds)`
//! reading the caller hands to [`TokenAuth::new`] (re-anchored with
//! [`Sender::handle_wall_clock`]).
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use push_proto::{ApnsToken, Payload};
//! use push_proto::apns::http2::{Auth, Config, Message, Notification, Options, Sender};
//!
//! let config = Config::new("https://api.push.apple.com").topic("com.example.app");
//! let mut sender: Sender<&str> = Sender::new(config, Auth::Certificate)?;
//! let payload = Payload::new().title("Hello").badge(1);
//! let message = Message::new(&Notification::from_payload(&payload), &Options::from_payload(&payload))?;
//! let token = ApnsToken::parse(&"ab".repeat(32))?;
//! sender.queue(token, message, "device-1").ok();
//!
//! let now = Instant::now();
//! while let Some((id, request)) = sender.poll_request(now) {
//!     assert_eq!(request.uri().path(), format!("/3/device/{}", "ab".repeat(32)));
//!     assert_eq!(request.headers()["apns-topic"], "com.example.app");
//!     // ... send it on an HTTP/2 stream; here the answer is made up:
//!     sender.handle_response(id, http::Response::new(Bytes::new()), now);
//! }
//! let report = sender.poll_outcome().unwrap();
//! assert_eq!((report.outcome.tag, report.outcome.error), ("device-1", None));
//! assert!(sender.is_idle());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one responsibility each:
//! - `notification`: [`Notification`], the full `aps` dictionary and custom keys, and the
//!   size limit (4096 bytes, 5120 for VoIP).
//! - `headers`: [`Options`] and the `apns-*` headers ([`PushType`], [`ApnsPriority`],
//!   [`CollapseId`], [`ApnsId`]).
//! - `message`: [`Message`], a notification encoded once with its validated headers.
//! - `jwt`: provider tokens: [`Signer`], [`P8Signer`], [`TokenAuth`] and its refresh rules.
//! - `response`: [`classify`], the response table ([`Reason`] to [`Verdict`]).
//! - `sender`: [`Sender`], the state machine.

mod headers;
mod jwt;
mod message;
mod notification;
pub mod response;
mod sender;

pub use headers::{
    ApnsId, ApnsIdGenerator, ApnsPriority, CollapseId, HeaderError, MAX_COLLAPSE_ID, MAX_PAYLOAD,
    MAX_VOIP_PAYLOAD, Options, PushType, UnknownPushType,
};
pub use jwt::{
    DEFAULT_REFRESH_AFTER, KeyError, MAX_TOKEN_AGE, MIN_TOKEN_AGE, P8Signer, ProviderToken,
    SignError, Signer, TokenAuth, base64url,
};
pub use message::Message;
pub use notification::{
    Alert, InterruptionLevel, LiveActivity, LiveActivityEvent, Notification, Sound,
};
pub use response::{Classified, Reason, Verdict, classify};
pub use sender::{
    Auth, Config, ConfigError, Event, PRODUCTION_URL, Report, RequestId, SANDBOX_URL, Sender, Stats,
};
