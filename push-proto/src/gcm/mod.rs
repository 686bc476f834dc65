//! Legacy Google Cloud Messaging: the HTTP JSON API (`POST /gcm/send`).
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
