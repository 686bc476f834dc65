//! A loopback FCM HTTP v1 API (`POST /v1/projects/<project>/messages:send`, HTTP/2 over TLS)
//! with Google's OAuth2 token endpoint (`POST /token`, HTTPS/1.1) beside it, and the demo
//! service accounts (test keys only) that authenticate to them.

mod account;
mod jwt;
mod message;
mod oauth;
mod options;
mod request;
mod rpc;
mod state;
mod stream;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;

pub use account::{
    DEMO_PRIVATE_KEY_ID, DEMO_PRIVATE_KEY_PEM, FCM_SCOPE, OTHER_PRIVATE_KEY_PEM, ServiceAccount,
    demo_client_email, demo_service_account, wrong_key_service_account,
};
pub use message::{MAX_MESSAGE, MAX_TOPIC_MESSAGE};
pub use options::{FcmOptions, FcmScript};
pub use state::{FcmAnswer, FcmDelivery, FcmTarget};

use crate::certs::{Certificates, server_config_with_alpn};
use crate::http2::{self, Http2Setup};
use crate::server::{Records, ServerThread, Shared};
use state::{Context, Record};
use stream::{NAME, handle_stream};

/// A loopback FCM HTTP v1 API and its OAuth2 token endpoint.
///
/// Two listeners on `127.0.0.1`, each with an ephemeral port and the server certificate of the
/// [`Certificates`] it was started with:
///
/// - the **token endpoint** ([`token_url`](Self::token_url), `https://localhost:PORT/token`,
///   HTTP/1.1): `POST` a form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&
///   assertion=<JWT>`. The JWT must have header `alg` `RS256` and `kid` = the service
///   account's `private_key_id`, a signature by its key, and claims `iss` = `client_email`,
///   `aud` = the token URL, a `scope` containing [`FCM_SCOPE`], `iat` not in the future (60 s
///   skew), `exp` after now and at most an hour after `iat`. Success: `200
///   {"access_token":"ya29.mock-<n>","expires_in":<FcmOptions::expires_in>,
///   "token_type":"Bearer"}`. Failure: `400 {"error":"invalid_grant",
///   "error_description":"Invalid JWT Signature."}` (wrong key or `kid`), `"Invalid grant:
///   account not found"` (`iss`), `"Invalid JWT: Failed audience check."`, `"Invalid JWT:
///   Token must be a short-lived token (60 minutes) and in a reasonable timeframe. ..."`,
///   `{"error":"invalid_scope",...}`, `{"error":"unsupported_grant_type",...}`,
///   `{"error":"invalid_request","error_description":"Missing required parameter:
///   assertion"}`; `503 {"error":"internal_failure",...}` while
///   [`fail_token_requests`](Self::fail_token_requests) lasts.
/// - the **FCM API** ([`url`](Self::url), `https://localhost:PORT`, HTTP/2 with ALPN `h2`,
///   each stream handled concurrently) at [`send_url`](Self::send_url). Checks, in order;
///   every error is Google RPC status JSON `{"error":{"code":..,"message":..,"status":..,
///   "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError",
///   "errorCode":..},{"@type":"type.googleapis.com/google.rpc.BadRequest",
///   "fieldViolations":[{"field":..,"description":..}]}]}}` (the `BadRequest` only for bad
///   fields):
///   1. method `POST`, else `405` (`UNIMPLEMENTED`, no details, `allow: POST`);
///   2. path `/v1/projects/<project>/messages:send` of the configured project, else `404
///      NOT_FOUND` (no details);
///   3. `authorization: Bearer <access token>` issued by the token endpoint, not expired and
///      not [revoked](Self::revoke_access_tokens), else `401 {"error":{"code":401,"message":
///      "Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`;
///   4. the seeded draw ([`FcmOptions::unavailable_rate`], [`FcmOptions::quota_rate`]): `503
///      UNAVAILABLE` or `429 RESOURCE_EXHAUSTED`/`QUOTA_EXCEEDED`, with `Retry-After`;
///   5. `content-type: application/json`, else `400 INVALID_ARGUMENT`;
///   6. the body: JSON with only `message` and `validate_only` (a bool); `message` with
///      exactly one of `token`, `topic` and `condition` (field `message`), only known fields,
///      a token that is not empty and has no whitespace (`message.token`), `data` values all
///      strings and no reserved keys (`message.data.<key>`), `android.priority` `NORMAL` or
///      `HIGH`, `android.ttl` a protobuf duration (`"3600s"`, `"3.5s"`) of at most 28 days;
///      the `message` without its target, as compact JSON, at most [`MAX_MESSAGE`] bytes
///      ([`MAX_TOPIC_MESSAGE`] to a topic), else `"Message is too big"`. Each failure is `400
///      INVALID_ARGUMENT` naming the field;
///   7. the token's [`FcmScript`], if any.
///
///   Then `200 {"name":"projects/<project>/messages/0:<n>%mock"}`; the message is recorded as
///   an [`FcmDelivery`], or with `validate_only` only counted ([`validated`](Self::validated)).
///
/// Dropping the handle (or [`shutdown`](Self::shutdown)) stops both listeners; the records
/// stay readable.
///
/// ```
/// use push_mock::fcm::{self, FcmOptions, FcmScript, MockFcm};
/// use push_mock::Certificates;
///
/// let certs = Certificates::generate()?;
/// let options = FcmOptions::demo("demo-project")?
///     .max_concurrent_streams(50)
///     .script("gone-token", FcmScript::Unregistered)
///     .seeded_faults(0.05, 0.05, 7, 1);
/// let mock = MockFcm::start(options, &certs)?;
/// assert!(mock.send_url().ends_with("/v1/projects/demo-project/messages:send"));
/// // The key file a client loads: the demo account, pointing at this token endpoint.
/// let key_file = fcm::demo_service_account("demo-project", &mock.token_url());
/// assert!(key_file.contains("\"type\": \"service_account\""));
/// assert_eq!((mock.total_delivered(), mock.access_tokens_issued()), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MockFcm {
    api: ServerThread,
    oauth: ServerThread,
    project: String,
    record: Records<Record>,
}

impl MockFcm {
    /// Starts both listeners in background threads.
    pub fn start(options: FcmOptions, certs: &Certificates) -> io::Result<MockFcm> {
        let acceptor =
            TlsAcceptor::from(server_config_with_alpn(certs, false, vec![b"h2".to_vec()])?);
        let record = Arc::new(Shared::new(Record::new(
            options.seed,
            options.expires_in,
            options.quota,
        )));
        let oauth = oauth::start(options.account, certs, record.clone())?;
        let context = Arc::new(Context {
            path: format!("/v1/projects/{}/messages:send", options.project),
            project: options.project.clone(),
            scripts: options.scripts,
            unavailable_rate: options.unavailable_rate,
            quota_rate: options.quota_rate,
            retry_after_secs: options.retry_after_secs,
            quota_retry_after: options.quota_retry_after,
            latency: options.latency,
            count_only: options.count_only,
            record: record.clone(),
        });
        let setup = Http2Setup {
            name: NAME,
            max_concurrent_streams: options.max_concurrent_streams,
            goaway_after: options.goaway_after,
            stream_limit_changes: Vec::new(),
            faults: options.faults,
        };
        let api = http2::spawn(
            setup,
            acceptor,
            record.clone(),
            move |request, respond, stream| {
                handle_stream(request, respond, context.clone(), stream)
            },
        )?;
        Ok(MockFcm {
            api,
            oauth,
            project: options.project,
            record,
        })
    }

    /// The FCM API's address (`127.0.0.1` and an ephemeral port). Verify the server
    /// certificate as [`Certificates::SERVER_NAME`].
    pub fn addr(&self) -> SocketAddr {
        self.api.addr()
    }

    /// The FCM API's base URL: `https://localhost:PORT` (the name in the server certificate;
    /// it resolves to `127.0.0.1`).
    pub fn url(&self) -> String {
        format!(
            "https://{}:{}",
            Certificates::SERVER_NAME,
            self.addr().port()
        )
    }

    /// The send URL: `https://localhost:PORT/v1/projects/<project>/messages:send`.
    pub fn send_url(&self) -> String {
        format!("{}/v1/projects/{}/messages:send", self.url(), self.project)
    }

    /// The token endpoint's address.
    pub fn token_addr(&self) -> SocketAddr {
        self.oauth.addr()
    }

    /// The token endpoint's URL, `https://localhost:PORT/token`: the `token_uri` of the
    /// service account and the `aud` its assertions must carry.
    pub fn token_url(&self) -> String {
        oauth::token_url(self.token_addr().port())
    }

    /// Every delivered message, in the order answered (empty with `count_only`).
    pub fn delivered(&self) -> Vec<FcmDelivery> {
        self.record.read(|r| r.deliveries.clone())
    }

    /// Deliveries per registration token (empty with `count_only`; topics and conditions
    /// are not counted here).
    pub fn delivered_counts(&self) -> HashMap<String, usize> {
        self.record.read(|r| r.per_token.clone())
    }

    /// How many messages to `token` were delivered (0 with `count_only`).
    pub fn delivered_count(&self, token: &str) -> usize {
        self.record
            .read(|r| r.per_token.get(token).copied().unwrap_or(0))
    }

    /// How many messages were delivered in all (counts also with `count_only`).
    pub fn total_delivered(&self) -> usize {
        self.record.read(|r| r.total_delivered)
    }

    /// How many `validate_only` requests passed validation (answered `200`, not delivered).
    pub fn validated(&self) -> usize {
        self.record.read(|r| r.validated)
    }

    /// Every answer of the FCM API, in order (empty with `count_only`).
    pub fn responses(&self) -> Vec<FcmAnswer> {
        self.record.read(|r| r.answers.clone())
    }

    /// The status of every answer, in order (empty with `count_only`).
    pub fn statuses(&self) -> Vec<u16> {
        self.record
            .read(|r| r.answers.iter().map(|a| a.status).collect())
    }

    /// How many answers had each status (counts also with `count_only`).
    pub fn status_counts(&self) -> HashMap<u16, usize> {
        self.record.read(|r| r.status_counts.clone())
    }

    /// How many FCM requests were answered in all (not counting refused streams).
    pub fn total_responses(&self) -> usize {
        self.record.read(|r| r.total_answered)
    }

    /// How many HTTP/2 connections were established.
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.stats.connections)
    }

    /// How many established HTTP/2 connections have closed.
    pub fn closed_connections(&self) -> usize {
        self.record.read(|r| r.stats.closed)
    }

    /// How many streams the FCM API refused (`RST_STREAM(REFUSED_STREAM)`): after a GOAWAY
    /// started, or all of them with [`FcmOptions::refuse_all_streams`]. They were neither
    /// answered nor recorded. (Streams beyond the stream limit, refused by the HTTP/2 layer
    /// itself, are not counted.)
    pub fn refused_streams(&self) -> usize {
        self.record.read(|r| r.stats.refused)
    }

    /// How many GOAWAYs the mock started ([`FcmOptions::goaway_after`],
    /// [`FcmOptions::goaway_on_connect`]).
    pub fn goaways_sent(&self) -> usize {
        self.record.read(|r| r.stats.goaways)
    }

    /// How many FCM API connections the mock broke with a malformed frame
    /// ([`FcmOptions::break_connection_after`]).
    pub fn broken_connections(&self) -> usize {
        self.record.read(|r| r.stats.broken)
    }

    /// The most streams ever open at once on one connection, as the mock saw them.
    pub fn max_concurrent_seen(&self) -> usize {
        self.record.read(|r| r.stats.max_open)
    }

    /// How many access tokens the token endpoint issued.
    pub fn access_tokens_issued(&self) -> usize {
        self.record.read(|r| r.tokens.issued)
    }

    /// How many assertions verified (signature and claims).
    pub fn assertions_verified(&self) -> usize {
        self.record.read(|r| r.tokens.verified)
    }

    /// How many requests reached the token endpoint, whatever their answer.
    pub fn token_requests(&self) -> usize {
        self.record.read(|r| r.tokens.requests)
    }

    /// The `error_description` of every failed token request, in order.
    pub fn token_failures(&self) -> Vec<String> {
        self.record.read(|r| r.tokens.failures.clone())
    }

    /// The next `count` token requests get `503` (whatever their assertion).
    pub fn fail_token_requests(&self, count: usize) {
        self.record.update(|r| r.tokens.fail_next = count);
    }

    /// Expires every access token issued so far, now: later FCM requests with them get `401
    /// UNAUTHENTICATED`, so the client must fetch a new one.
    pub fn revoke_access_tokens(&self) {
        self.record.update(|r| r.tokens.valid.clear());
    }

    /// Moves the mock's clocks `by` ahead (the one assertions are judged by and the one
    /// access tokens expire on), for tests that run the client on a virtual clock.
    pub fn advance_clock(&self, by: Duration) {
        self.record.update(|r| r.tokens.ahead += by);
    }

    /// Blocks until at least `count` messages were delivered, or `timeout` passes; returns
    /// whether they were.
    pub fn wait_for_delivered(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.total_delivered >= count)
    }

    /// Blocks until at least `count` FCM requests were answered, or `timeout` passes;
    /// returns whether they were.
    pub fn wait_for_responses(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.total_answered >= count)
    }

    /// Blocks until at least `count` GOAWAYs were started, or `timeout` passes; returns
    /// whether they were.
    pub fn wait_for_goaways(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.stats.goaways >= count)
    }

    /// Blocks until at least `count` established FCM API connections closed, or `timeout`
    /// passes; returns whether they did.
    pub fn wait_for_closed(&self, count: usize, timeout: Duration) -> bool {
        self.record.wait_until(timeout, |r| r.stats.closed >= count)
    }

    /// Blocks until at least `count` token requests arrived, or `timeout` passes; returns
    /// whether they did.
    pub fn wait_for_token_requests(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.tokens.requests >= count)
    }

    /// Stops both listeners and every connection; idempotent. The records stay readable.
    pub fn shutdown(&mut self) {
        self.api.stop();
        self.oauth.stop();
    }
}
