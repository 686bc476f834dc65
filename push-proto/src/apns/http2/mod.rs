//! Apple's live protocol: the APNs HTTP/2 provider API (`POST /3/device/<token>`), with
//! provider-token (ES256 JWT) or certificate authentication.
//!
//! The core speaks HTTP semantics; the adapter owns the HTTP/2 connection. A [`Sender`] turns
//! queued notifications into `http::Request`s (all `apns-*` headers, `authorization: bearer
//! <JWT>` in token mode) and responses into one [`Report`] per notification, respecting the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS`. It never does IO and never reads a clock: time
//! is `now: Instant`, and the JWT's wall-clock `iat` comes from one `(Instant, UNIX seconds)`
//! reading the caller hands to [`TokenAuth::new`] (re-anchored with
//! [`engine::Sender::handle_wall_clock`](crate::engine::Sender::handle_wall_clock)).
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use push_proto::{ApnsToken, Payload};
//! use push_proto::apns::http2::{self, Auth, Config, Message, Notification, Options, Sender};
//! use push_proto::engine::{Action, Input};
//!
//! let config = Config::new("https://api.push.apple.com").topic("com.example.app");
//! let mut sender: Sender<&str> = http2::sender(config, Auth::Certificate)?;
//! let payload = Payload::new().title("Hello").badge(1);
//! let message = Message::new(&Notification::from_payload(&payload), &Options::from_payload(&payload))?;
//! let token = ApnsToken::parse(&"ab".repeat(32))?;
//! let now = Instant::now();
//! sender.queue(token, message, "device-1", now).ok();
//!
//! while let Some(action) = sender.poll_action(now) {
//!     match action {
//!         // Open an HTTP/2 connection; here it opens at once with 100 streams.
//!         Action::Dial(conn) => sender.handle(Input::Connected { conn, max_streams: 100 }, now),
//!         Action::Send { id, request, .. } => {
//!             assert_eq!(request.uri().path(), format!("/3/device/{}", "ab".repeat(32)));
//!             assert_eq!(request.headers()["apns-topic"], "com.example.app");
//!             // ... send it on a stream of that connection; here the answer is made up:
//!             let response = http::Response::new(Bytes::new());
//!             sender.handle(Input::Response { id, response }, now);
//!         }
//!         other => unreachable!("{other:?}"),
//!     }
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
//! - `sender`: [`ApnsProtocol`] and [`ApnsCredential`], the two pieces the engine's
//!   [`Sender`] runs APNs with.

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
    ApnsCredential, ApnsProtocol, Auth, Config, ConfigError, Event, PRODUCTION_URL, Report,
    SANDBOX_URL, Sender, TokenEvent, sender,
};
