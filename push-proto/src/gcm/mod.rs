//! Legacy Google Cloud Messaging: the HTTP JSON API (`POST /gcm/send`).
//!
//! The [`Sender`] turns tokens into batched `http::Request`s and the service's
//! `http::Response`s into one [`Outcome`](crate::Outcome) per token. It never does IO and never
//! reads a clock: the caller sends the requests, feeds back the responses, and passes `now`.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use push_proto::gcm::{Config, Message, MessageOptions, Sender};
//! use push_proto::{GcmToken, Payload};
//!
//! let mut sender = Sender::new(Config::new("server-api-key"))?;
//! let payload = Payload::new().title("Hello").data("ref", "123");
//! let message = sender.open_message(Message::new(&payload, &MessageOptions::default())?);
//! let now = Instant::now();
//! sender.queue(message, GcmToken::parse("tokA")?, "device-1", now).ok();
//! sender.close_message(message);
//!
//! while let Some((id, request)) = sender.poll_request(now) {
//!     assert_eq!(request.uri(), "https://android.googleapis.com/gcm/send");
//!     // ... send `request` over HTTP; here the answer is made up:
//!     let body = r#"{"multicast_id":1,"success":1,"results":[{"message_id":"0:1"}]}"#;
//!     let response = http::Response::new(Bytes::from_static(body.as_bytes()));
//!     sender.handle_response(id, response, now);
//! }
//! let outcome = sender.poll_outcome().unwrap();
//! assert_eq!((outcome.tag, outcome.error), ("device-1", None));
//! assert!(sender.is_idle());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//!
//! - `config`: [`Config`], batching, pacing and retry settings.
//! - `message`: [`Message`], the validated request body minus its targets.
//! - `response`: [`parse_results`], the 200 body correlated by position into [`Verdict`]s.
//! - `retry_after`: [`retry_after()`], the `Retry-After` header in both forms, and [`HttpDate`].
//! - `sender`: [`Sender`], the state machine: batches, requests in flight, retries, outcomes.

mod config;
mod message;
mod response;
mod retry_after;
mod sender;

pub use config::{Config, ConfigError, DEFAULT_ENDPOINT, MAX_BATCH_SIZE};
pub use message::{
    MAX_DATA_LEN, MAX_TIME_TO_LIVE, Message, MessageOptions, Notification, RequestBody,
};
pub use response::{
    MalformedResponse, ResponseBody, TokenResult, Verdict, classify_error, parse_results,
};
pub use retry_after::{HttpDate, MAX_RETRY_AFTER, RetryAfter, retry_after};
pub use sender::{Event, MessageId, RequestId, Sender, Stats};
