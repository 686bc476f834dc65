//! Web Push (RFC 8030) to browsers: Chrome, Firefox, Edge, and Safari on macOS and iOS
//! home-screen apps, each through its vendor's push service.
//!
//! A browser hands the web app a [`Subscription`] (the push service's endpoint URL and two
//! keys); the application server encrypts each message for it (RFC 8291, `aes128gcm` of RFC
//! 8188), proves who it is with a VAPID token (RFC 8292) and `POST`s the ciphertext to the
//! endpoint. Endpoints point at many push services, so the core keeps one engine
//! [`Sender`] per [`Origin`]: its connections, rate control and VAPID token.
//!
//! The core never does IO, never reads a clock and draws its randomness through a seam
//! ([`Randomness`]): each send needs a new ephemeral key pair and salt.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use push_proto::Payload;
//! use push_proto::engine::{Action, Input};
//! use push_proto::webpush::{self, Config, Message, Options, Subscription, Vapid, VapidCredential, VapidKey};
//!
//! let subscription = Subscription::from_json(r#"{
//!     "endpoint": "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV",
//!     "keys": {
//!         "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
//!         "auth": "BTBZMqHH6r4Tts7J_aSIgg"
//!     }
//! }"#)?;
//! // The application server's key, usually from a PEM file (VapidKey::from_pem).
//! let key = VapidKey::from_base64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")?;
//! let vapid = Vapid::new(key, "mailto:push@example.com")?;
//! let now = Instant::now();
//! let origin = subscription.origin().clone();
//! let credential = VapidCredential::new(vapid, origin, now, 1_700_000_000);
//! let mut sender: webpush::Sender<&str> = webpush::sender(Config::default(), credential)?;
//! let message = Message::new(&Payload::new().title("Hello").body("World"), &Options::new().ttl(3600))?;
//! sender.queue(subscription, message, "browser-1", now).ok();
//!
//! let Some(Action::Dial(conn)) = sender.poll_action(now) else { panic!() };
//! sender.handle(Input::Connected { conn, max_streams: 100 }, now);
//! let Some(Action::Send { id, request, .. }) = sender.poll_action(now) else { panic!() };
//! assert_eq!(request.uri(), "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV");
//! assert!(request.headers()["authorization"].to_str()?.starts_with("vapid t="));
//! assert_eq!(request.headers()["content-encoding"], "aes128gcm");
//! // ... send it; the push service answers 201 with the message's URL:
//! let response = http::Response::builder()
//!     .status(201)
//!     .header("location", "https://push.example.net/message/1")
//!     .body(Bytes::new())?;
//! sender.handle(Input::Response { id, response }, now);
//! let report = sender.poll_outcome().unwrap();
//! assert_eq!((report.outcome.tag, report.outcome.error), ("browser-1", None));
//! assert_eq!(report.id.as_deref(), Some("https://push.example.net/message/1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one responsibility each:
//! - `subscription`, `origin`: [`Subscription`] parsed from `PushSubscription` JSON and
//!   validated; its [`Origin`].
//! - `ece`: the RFC 8291 encryption (one record, padding, the 4096-byte limit).
//! - `randomness`: [`Randomness`], [`SystemRandomness`].
//! - `vapid`: [`VapidKey`] (PEM or raw base64url), [`Vapid`] and its ES256 tokens.
//! - `credential`: [`VapidCredential`], tokens for one origin, renewed on the core's clock.
//! - `headers`, `message`: [`Urgency`], [`Topic`], [`Options`], the plain and [`Declarative`]
//!   payload forms, [`Message`].
//! - [`response`]: [`classify`], the response table.
//! - `sender`: [`WebPushProtocol`] and [`sender`], the engine plugged together.

mod credential;
mod ece;
mod headers;
mod message;
mod origin;
mod randomness;
pub mod response;
mod sender;
mod subscription;
mod vapid;

pub use credential::{VapidCredential, VapidEvent};
pub use ece::{MAX_BODY, MAX_PLAINTEXT};
pub use headers::{BadTopic, MAX_TOPIC_LEN, Topic, UnknownUrgency, Urgency};
pub use message::{DEFAULT_TTL, Declarative, Message, Options};
pub use origin::{EndpointError, MAX_ENDPOINT_LEN, Origin};
pub use randomness::{Randomness, RandomnessError, SystemRandomness};
pub use response::classify;
pub use sender::{Config, Event, Report, Sender, WebPushProtocol, sender};
pub use subscription::{Subscription, SubscriptionError};
pub use vapid::{
    DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, Vapid, VapidError, VapidKey,
};
