//! Legacy Google Cloud Messaging: the HTTP JSON API (`POST /gcm/send`).
//!
//! - `message`: [`Message`], the validated request body minus its targets.

mod message;

pub use message::{
    MAX_DATA_LEN, MAX_TIME_TO_LIVE, Message, MessageOptions, Notification, RequestBody,
};
