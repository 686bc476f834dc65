//! Legacy Google Cloud Messaging: the HTTP JSON API (`POST /gcm/send`), on the
//! [`engine`](crate::engine).
//!
//! A [`Sender`] gathers queued tokens of one message into batches of up to 1,000
//! `registration_ids` per request (HTTP/1.1: one request per connection, so the engine's pool
//! opens up to four connections as the load asks) and turns each response into one
//! [`Report`] per token: GCM answers a batch token by token, with canonical ids. Each token
//! keeps its own attempts; only the ones that need it are sent again. It never does IO and
//! never reads a clock: the caller performs the [`Action`](crate::engine::Action)s, feeds back
//! what happened, and passes `now`.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use push_proto::engine::{Action, Input};
//! use push_proto::gcm::{self, Config, Message, MessageOptions, Sender};
//! use push_proto::{GcmToken, Payload};
//!
//! let mut sender: Sender<&str> = gcm::sender(Config::new("server-api-key"))?;
//! let payload = Payload::new().title("Hello").data("ref", "123");
//! let message = Message::new(&payload, &MessageOptions::default())?.encode()?;
//! let now = Instant::now();
//! sender.queue(GcmToken::parse("tokA")?, message.clone(), "device-1", now).ok();
//! sender.queue(GcmToken::parse("tokB")?, message, "device-2", now).ok();
//! sender.flush(); // no more tokens for now: the partial batch goes without lingering
//!
//! let Some(Action::Dial(conn)) = sender.poll_action(now) else { panic!() };
//! sender.handle(Input::Connected { conn, max_streams: 1 }, now);
//! let Some(Action::Send { id, request, .. }) = sender.poll_action(now) else { panic!() };
//! assert_eq!(request.uri(), "https://android.googleapis.com/gcm/send");
//! // ... send `request` over HTTP; here the answer is made up:
//! let body = r#"{"multicast_id":1,"success":2,"canonical_ids":1,
//!   "results":[{"message_id":"0:1"},{"message_id":"0:2","registration_id":"tokB2"}]}"#;
//! let response = http::Response::new(Bytes::from_static(body.as_bytes()));
//! sender.handle(Input::Response { id, response }, now);
//!
//! let first = sender.poll_outcome().unwrap();
//! assert_eq!((first.outcome.tag, first.outcome.error), ("device-1", None));
//! let second = sender.poll_outcome().unwrap();
//! assert_eq!(second.outcome.new_token.as_deref(), Some("tokB2"));
//! assert!(sender.is_idle());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//!
//! - `config`: [`Config`], the endpoint, key, batching and the engine's settings.
//! - `message`: [`Message`], the validated request body minus its targets, [`Encoded`] once.
//! - `response`: [`parse_results`], the 200 body correlated by position into engine answers.
//! - `retry_after`: [`retry_after()`], the `Retry-After` header in both forms, and [`HttpDate`].
//! - `sender`: [`GcmProtocol`], the rules the engine runs, and [`sender`].

mod config;
mod message;
mod response;
mod retry_after;
mod sender;

pub use config::{Config, ConfigError, DEFAULT_ENDPOINT, MAX_BATCH_SIZE};
pub use message::{
    Encoded, MAX_DATA_LEN, MAX_TIME_TO_LIVE, Message, MessageOptions, Notification, RequestBody,
};
pub use response::{MalformedResponse, ResponseBody, TokenResult, classify_error, parse_results};
pub use retry_after::{HttpDate, MAX_RETRY_AFTER, RetryAfter, retry_after};
pub use sender::{Event, GcmProtocol, Report, Sender, sender};
