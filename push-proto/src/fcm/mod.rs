//! Google's live Android protocol: FCM HTTP v1 (`POST /v1/projects/<project>/messages:send`),
//! authenticated with OAuth2 access tokens obtained for a service account.
//!
//! The core speaks HTTP semantics; the adapter owns the connections. A [`Sender`] turns queued
//! notifications into one `http::Request` per device (FCM v1 has no multicast: requests go
//! out concurrently over HTTP/2) and responses into one [`Report`] per notification. It also
//! yields the access-token request, which the driver sends to the service account's
//! `token_uri` (a different host) and answers with
//! [`Input::CredentialResponse`](crate::engine::Input::CredentialResponse). It never does IO and never reads a clock: time is
//! `now: Instant`, and the assertion's wall-clock `iat` comes from one `(Instant, UNIX
//! seconds)` reading handed to [`OAuth::new`] (re-anchored with
//! [`engine::Sender::handle_wall_clock`](crate::engine::Sender::handle_wall_clock)).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use push_proto::fcm::{self, Config, Message, OAuth, Options, RsaSigner, Sender, ServiceAccount};
//! use push_proto::engine::{Action, Input};
//! use push_proto::{GcmToken, Payload};
//!
//! # struct KmsSigner;
//! # impl RsaSigner for KmsSigner {
//! #     fn key_id(&self) -> &str { "key-1" }
//! #     fn sign(&self, _: &[u8]) -> Result<Vec<u8>, push_proto::fcm::SignError> { Ok(vec![0; 256]) }
//! # }
//! // Usually `ServiceAccount::from_json(&file)` and `OAuth::from_service_account`; here the
//! // key lives in a KMS behind the `RsaSigner` seam.
//! let account = ServiceAccount::new("my-project", "push@my-project.iam.gserviceaccount.com",
//!                                   "key-1", "");
//! let now = Instant::now();
//! let auth = OAuth::new(&account, KmsSigner, now, 1_700_000_000)?;
//! let mut sender: Sender<&str> = fcm::sender(Config::for_account(&account), auth)?;
//! let message = Message::new(&Payload::new().title("Hello").data("ref", 7), &Options::new())?;
//! sender.queue(GcmToken::parse("token-1")?, message, "device-1", now).ok();
//!
//! // First the access token, from the account's token_uri.
//! let Some(Action::CredentialRequest(token_request)) = sender.poll_action(now) else { panic!() };
//! assert_eq!(token_request.uri(), "https://oauth2.googleapis.com/token");
//! let grant = r#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#;
//! sender.handle(Input::CredentialResponse(http::Response::new(Bytes::from(grant))), now);
//!
//! // Then a connection to FCM, and the message on it.
//! let Some(Action::Dial(conn)) = sender.poll_action(now) else { panic!() };
//! sender.handle(Input::Connected { conn, max_streams: 100 }, now);
//! let Some(Action::Send { id, request, .. }) = sender.poll_action(now) else { panic!() };
//! assert_eq!(request.uri(), "https://fcm.googleapis.com/v1/projects/my-project/messages:send");
//! assert_eq!(request.headers()["authorization"], "Bearer ya29.x");
//! let answer = r#"{"name":"projects/my-project/messages/0:1500415314455276%31bd1c9631bd1c96"}"#;
//! let response = http::Response::new(Bytes::from(answer));
//! sender.handle(Input::Response { id, response }, now);
//!
//! let report = sender.poll_outcome().unwrap();
//! assert_eq!((report.outcome.tag, report.outcome.error), ("device-1", None));
//! assert_eq!(report.id.as_deref(), Some("0:1500415314455276%31bd1c9631bd1c96"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one responsibility each:
//! - `service_account`: [`ServiceAccount`], the JSON key file (the key never in `Debug`).
//! - `assertion`: the RS256 JWT assertion, [`RsaSigner`] and [`RingSigner`].
//! - [`oauth`]: [`OAuth`], the access-token state machine, and [`parse_token_response`].
//! - [`message`]: [`Message`], the body encoded once per session, spliced per token; the
//!   field table.
//! - [`response`]: [`classify`], the response table ([`ErrorCode`] to [`Verdict`]).
//! - `sender`: [`FcmProtocol`] and [`FcmCredential`], the two pieces the engine's [`Sender`]
//!   runs FCM with.

mod assertion;
pub mod message;
pub mod oauth;
pub mod response;
mod sender;
mod service_account;

pub use crate::jose::SignError;
pub use assertion::{
    ASSERTION_LIFETIME_SECS, FCM_SCOPE, RingSigner, RsaKeyError, RsaSigner, assertion,
};
pub use message::{
    AndroidConfig, Content, FcmOptions, MAX_MESSAGE_SIZE, MAX_TTL_SECS, Message, Notification,
    Options, SendRequest, TargetedMessage,
};
pub use oauth::{
    AccessToken, CredentialsError, Grant, OAuth, REFRESH_MARGIN, TokenError, TokenUpdate,
    parse_token_response,
};
pub use response::{Classified, ErrorCode, Verdict, classify};
pub use sender::{
    Config, ConfigError, DEFAULT_BASE_URL, Event, FcmCredential, FcmProtocol, Report, Sender,
    TokenEvent, sender,
};
pub use service_account::{DEFAULT_TOKEN_URI, ServiceAccount, ServiceAccountError};
