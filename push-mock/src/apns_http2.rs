//! A loopback APNs HTTP/2 provider API (`POST /3/device/<token>`): TLS with ALPN `h2`,
//! certificate or provider-token (ES256 JWT) authentication, strict request validation,
//! per-token scripted reasons, a configurable stream limit, GOAWAY injection and the
//! connection faults of [`Http2Faults`].

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use push_proto::apns::broadcast::BroadcastReason;
use push_proto::apns::http2::{ApnsId, ApnsIdGenerator, MAX_COLLAPSE_ID, PushType, Reason};
use serde::Deserializer as _;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::apns_broadcast::{self, BroadcastDelivery, Channels, Reply};
use crate::certs::{Certificates, server_config_with_alpn};
use crate::http2::{self, Body, ConnectionStats, Http2Record, Http2Setup, Stream};
use crate::http2_faults::Http2Faults;
use crate::live_activity_check::{Target, check_live_activity, check_widgets};
use crate::quota::{Quota, QuotaState};
use crate::server::{Records, ServerThread, Shared, invalid_input};

const NAME: &str = "mock-apns-http2";
/// The path prefix of every notification request.
const PATH_PREFIX: &str = "/3/device/";
/// Request bodies longer than this are not read further (answered `413`).
const MAX_READ: usize = 64 * 1024;
/// A provider token whose `iat` lies further in the future than this is invalid.
const FUTURE_SKEW: u64 = 5 * 60;
/// Verified provider tokens remembered (their signature is checked once); the cache is
/// cleared when it grows past this.
const MAX_CACHED_TOKENS: usize = 4096;
/// The `apns-*` headers (and `authorization`) that must not be repeated.
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");
const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
const SINGLE_HEADERS: [HeaderName; 7] = [
    AUTHORIZATION,
    APNS_ID,
    APNS_TOPIC,
    APNS_PUSH_TYPE,
    APNS_PRIORITY,
    APNS_EXPIRATION,
    APNS_COLLAPSE_ID,
];

/// How a client authenticates to a [`MockApnsHttp2`].
#[derive(Debug, Clone)]
pub enum Http2Auth {
    /// Certificate-based: the TLS handshake requires a client certificate signed by the CA of
    /// the [`Certificates`] the server was started with; `authorization` headers are ignored.
    Certificate,
    /// Token-based: every request carries `authorization: bearer <JWT>`, an ES256 provider
    /// token with header `{"alg":"ES256","kid":<key_id>}` and claims
    /// `{"iss":<team_id>,"iat":<UNIX seconds>}`, signed by the private half of `key`. No client
    /// certificate is asked for.
    Token {
        /// The expected `kid` (Apple's 10-character key id).
        key_id: String,
        /// The expected `iss` (Apple's 10-character team id).
        team_id: String,
        /// The public key that verifies the signatures.
        key: VerifyingKey,
    },
}

impl Http2Auth {
    /// Token auth with the key in PEM: either a public key (`-----BEGIN PUBLIC KEY-----`) or
    /// the `.p8` private key itself (`-----BEGIN PRIVATE KEY-----`, PKCS#8 P-256), whose public
    /// half is used.
    pub fn token_from_pem(
        key_id: impl Into<String>,
        team_id: impl Into<String>,
        pem: &str,
    ) -> io::Result<Http2Auth> {
        let key = match VerifyingKey::from_public_key_pem(pem) {
            Ok(key) => key,
            Err(public_error) => match SigningKey::from_pkcs8_pem(pem) {
                Ok(private) => *private.verifying_key(),
                Err(private_error) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "not a P-256 public key ({public_error}) nor a PKCS#8 P-256 private \
                             key ({private_error})"
                        ),
                    ));
                }
            },
        };
        Ok(Http2Auth::Token {
            key_id: key_id.into(),
            team_id: team_id.into(),
            key,
        })
    }
}

/// The scripted answer of a [`MockApnsHttp2`] for one device token, applied to requests that
/// pass every validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasonScript {
    /// Always `400 {"reason":"BadDeviceToken"}`.
    BadDeviceToken,
    /// Always `410 {"reason":"Unregistered","timestamp":<timestamp_ms>}`.
    Unregistered {
        /// Milliseconds since the epoch: when the token was last known to be invalid.
        timestamp_ms: u64,
    },
    /// `429 {"reason":"TooManyRequests"}` for the first `first` requests, then delivered.
    TooManyRequests {
        /// How many requests get the 429.
        first: u32,
    },
    /// `503 {"reason":"ServiceUnavailable"}` for the first `first` requests, then delivered.
    ServiceUnavailable {
        /// How many requests get the 503.
        first: u32,
    },
    /// Any status and reason: for the first `first` requests then delivered, or always when
    /// `first` is `None`. A `410` carries `"timestamp": 0`.
    Status {
        /// The HTTP status.
        status: u16,
        /// The `reason` string.
        reason: String,
        /// How many requests get it (`None`: all).
        first: Option<u32>,
    },
}

impl ReasonScript {
    /// The failure for the `nth` request (from 1) to the token, or `None` to deliver.
    fn failure(&self, nth: u32) -> Option<Failure> {
        match self {
            ReasonScript::BadDeviceToken => Some(Failure::of(Reason::BadDeviceToken)),
            ReasonScript::Unregistered { timestamp_ms } => Some(Failure {
                timestamp: Some(*timestamp_ms),
                ..Failure::of(Reason::Unregistered)
            }),
            ReasonScript::TooManyRequests { first } => {
                (nth <= *first).then(|| Failure::of(Reason::TooManyRequests))
            }
            ReasonScript::ServiceUnavailable { first } => {
                (nth <= *first).then(|| Failure::of(Reason::ServiceUnavailable))
            }
            ReasonScript::Status {
                status,
                reason,
                first,
            } => first.is_none_or(|first| nth <= first).then(|| Failure {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                reason: reason.clone(),
                timestamp: (*status == 410).then_some(0),
            }),
        }
    }
}

/// How a [`MockApnsHttp2`] behaves. The default: certificate auth, 1000 concurrent streams,
/// any topic, every valid request delivered, no GOAWAY, no [`Http2Faults`], everything
/// recorded.
#[derive(Debug, Clone)]
pub struct Http2Options {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` advertised (and enforced: streams beyond it are
    /// refused with `REFUSED_STREAM` by the HTTP/2 layer, before the mock sees them).
    ///
    /// `0` is kept as is, for the whole connection: the server advertises that it accepts no
    /// stream at all (RFC 9113 §6.5.2 allows it, "a temporary state"), as a server shedding
    /// load might, and refuses any stream a client opens anyway (one sent before the
    /// client read the SETTINGS, say). A client must neither spin nor send.
    pub max_concurrent_streams: u32,
    /// Certificate or token authentication.
    pub auth: Http2Auth,
    /// The app's bundle id. When set, an `apns-topic` must equal it or extend it with a
    /// suffix (`<topic>.voip`, `<topic>.push-type.liveactivity`, ...), else `400 BadTopic`.
    /// In token mode `apns-topic` is required either way (`400 MissingTopic`).
    pub topic: Option<String>,
    /// Scripted answers per device token (hex, any case).
    pub scripts: HashMap<String, ReasonScript>,
    /// After this many answers on one connection, start a graceful GOAWAY: requests the
    /// server has not answered yet (including those already received) are refused with
    /// `RST_STREAM(REFUSED_STREAM)`, so a client may safely retry them elsewhere; the GOAWAY's
    /// last-stream-id makes the client fail later streams; then the connection closes.
    /// `Some(0)` sends the GOAWAY right after the HTTP/2 handshake.
    pub goaway_after: Option<usize>,
    /// Provider tokens whose `iat` is before this UNIX time get `403 ExpiredProviderToken`
    /// (changeable while running with [`MockApnsHttp2::expire_tokens_issued_before`]).
    pub expire_tokens_issued_before: Option<u64>,
    /// The next this-many requests with a valid provider token get `403
    /// ExpiredProviderToken` anyway (see [`MockApnsHttp2::force_expired`]).
    pub expire_next_tokens: usize,
    /// Provider tokens older than this (by `iat`, on the wall clock) get `403
    /// ExpiredProviderToken`. One hour, as APNs.
    pub max_token_age: Duration,
    /// Delay before answering each request (after its body arrived): lets streams overlap.
    pub latency: Option<Duration>,
    /// Only count: [`MockApnsHttp2::delivered`], [`MockApnsHttp2::delivered_counts`],
    /// [`MockApnsHttp2::responses`] and [`MockApnsHttp2::statuses`] stay empty while the
    /// totals and [`MockApnsHttp2::status_counts`] count. For benchmarks.
    pub count_only: bool,
    /// Seed of the `apns-id`s generated for requests without one.
    pub apns_id_seed: u64,
    /// `(answers, limit)` pairs: once this many answers went out on a connection, announce
    /// `SETTINGS_MAX_CONCURRENT_STREAMS = limit` to the client mid-connection (the HTTP/2
    /// layer keeps enforcing [`max_concurrent_streams`](Self::max_concurrent_streams); the
    /// mock counts the client's breaches of the announced limit, see
    /// [`MockApnsHttp2::stream_limit_breaches`]).
    pub stream_limit_changes: Vec<(usize, u32)>,
    /// Hostile connection behaviours (see [`Http2Faults`] and the builders
    /// [`refuse_all_streams`](Self::refuse_all_streams),
    /// [`goaway_on_connect`](Self::goaway_on_connect) and
    /// [`break_connection_after`](Self::break_connection_after)).
    pub faults: Http2Faults,
    /// A provider-wide rate limit: at most `limit` requests with valid credentials in any
    /// sliding `window`; beyond it `429 {"reason":"TooManyRequests"}` (APNs sends no
    /// `Retry-After`). Refused requests do not count. `None`: unlimited.
    pub rate_limit: Option<Quota>,
    /// Most broadcast channels the app may have at once (APNs: 10,000 per environment);
    /// one more is refused `400 CannotCreateChannelConfig`.
    pub max_channels: usize,
}

impl Default for Http2Options {
    fn default() -> Self {
        Http2Options {
            max_concurrent_streams: 1000,
            auth: Http2Auth::Certificate,
            topic: None,
            scripts: HashMap::new(),
            goaway_after: None,
            expire_tokens_issued_before: None,
            expire_next_tokens: 0,
            max_token_age: Duration::from_secs(60 * 60),
            latency: None,
            count_only: false,
            apns_id_seed: 0,
            stream_limit_changes: Vec::new(),
            faults: Http2Faults::default(),
            rate_limit: None,
            max_channels: push_proto::apns::broadcast::MAX_CHANNELS,
        }
    }
}

impl Http2Options {
    /// The defaults with this authentication.
    pub fn new(auth: Http2Auth) -> Self {
        Http2Options {
            auth,
            ..Http2Options::default()
        }
    }

    /// Sets the bundle id topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Adds (or replaces) the script of `token` (hex).
    pub fn script(mut self, token: impl Into<String>, script: ReasonScript) -> Self {
        self.scripts
            .insert(token.into().to_ascii_lowercase(), script);
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.max_concurrent_streams = max;
        self
    }

    /// Sets [`goaway_after`](Self::goaway_after).
    pub fn goaway_after(mut self, answers: usize) -> Self {
        self.goaway_after = Some(answers);
        self
    }

    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Refuses every request stream with `RST_STREAM(REFUSED_STREAM)` before processing it,
    /// keeping the connection open: an overloaded server (see
    /// [`Http2Faults::refuse_all_streams`]). Counted in `refused_streams()`.
    pub fn refuse_all_streams(mut self) -> Self {
        self.faults.refuse_all_streams = true;
        self
    }

    /// Sends every connection `GOAWAY(last_stream_id = 0, NO_ERROR)` right after the HTTP/2
    /// handshake and closes it, processing no stream: a server out of rotation (see
    /// [`Http2Faults::goaway_on_connect`]). Counted in `goaways_sent()`.
    pub fn goaway_on_connect(mut self) -> Self {
        self.faults.goaway_on_connect = true;
        self
    }

    /// After `answers` answers on a connection, replaces the next response frame by a
    /// malformed one (`DATA` on stream 0), so the client's HTTP/2 library fails the
    /// connection and every open stream, including requests already processed: a corrupting
    /// server (see [`Http2Faults::break_connection_after`]). Counted in
    /// `broken_connections()`.
    pub fn break_connection_after(mut self, answers: usize) -> Self {
        self.faults.break_connection_after = Some(answers);
        self
    }

    /// Adds a [`stream_limit_changes`](Self::stream_limit_changes) entry: after `answers`
    /// answers on a connection, announce a stream limit of `limit`.
    pub fn change_stream_limit(mut self, answers: usize, limit: u32) -> Self {
        self.stream_limit_changes.push((answers, limit));
        self.stream_limit_changes
            .sort_by_key(|(answers, _)| *answers);
        self
    }

    /// Sets [`max_token_age`](Self::max_token_age).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = age;
        self
    }

    /// Sets [`max_channels`](Self::max_channels).
    pub fn max_channels(mut self, max: usize) -> Self {
        self.max_channels = max;
        self
    }

    /// Sets the provider-wide [`rate_limit`](Self::rate_limit): `limit` requests per sliding
    /// `window`.
    pub fn rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.rate_limit = Some(Quota { limit, window });
        self
    }
}

/// One notification the mock accepted (answered `200`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Delivery {
    /// The device token, lowercase hex.
    pub token: String,
    /// The `apns-id` answered (the request's, or a generated one).
    pub apns_id: String,
    /// `apns-push-type`, when sent.
    pub push_type: Option<PushType>,
    /// `apns-priority`, when sent.
    pub priority: Option<u8>,
    /// `apns-topic`, when sent.
    pub topic: Option<String>,
    /// `apns-expiration`, when sent.
    pub expiration: Option<u64>,
    /// `apns-collapse-id`, when sent.
    pub collapse_id: Option<String>,
    /// The JSON payload.
    pub payload: Bytes,
    /// The connection: 0 for the first established one, and so on.
    pub connection: usize,
    /// The HTTP/2 stream id.
    pub stream_id: u32,
}

/// One answer the mock gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `reason` of a failure (`None` for `200`).
    pub reason: Option<String>,
    /// The device token of the path, lowercase, when it was well-formed.
    pub token: Option<String>,
    /// The `apns-id` header answered.
    pub apns_id: String,
    /// The connection: 0 for the first established one, and so on.
    pub connection: usize,
    /// The HTTP/2 stream id.
    pub stream_id: u32,
}

#[derive(Debug)]
struct Record {
    stats: ConnectionStats,
    deliveries: Vec<Http2Delivery>,
    per_token: HashMap<String, usize>,
    total_delivered: usize,
    answers: Vec<Http2Answer>,
    status_counts: HashMap<u16, usize>,
    total_answered: usize,
    /// Requests that reached the script, per token.
    scripted_seen: HashMap<String, u32>,
    expire_before: Option<u64>,
    expire_next: usize,
    /// Seconds the mock's wall clock runs ahead of the system's (see `advance_clock`).
    clock_ahead: u64,
    /// The provider-wide rate limit and the requests it admitted, when one is set.
    rate_limit: Option<QuotaState>,
    /// Provider tokens whose signature verified, with their `iat`.
    verified: HashMap<String, u64>,
    provider_tokens: usize,
    ids: ApnsIdGenerator,
    /// Broadcast channels and the broadcasts sent to them.
    channels: Channels,
}

/// What every stream handler needs.
#[derive(Debug)]
struct Context {
    auth: Http2Auth,
    topic: Option<String>,
    scripts: HashMap<String, ReasonScript>,
    max_token_age: u64,
    latency: Option<Duration>,
    count_only: bool,
    record: Records<Record>,
}

impl Http2Record for Record {
    fn stats(&mut self) -> &mut ConnectionStats {
        &mut self.stats
    }
}

/// A loopback APNs HTTP/2 provider API.
///
/// It listens on `127.0.0.1` with an ephemeral port and speaks HTTP/2 (the `h2` crate) over
/// TLS 1.3 or 1.2 with ALPN `h2` and the server certificate of the [`Certificates`] it was
/// started with; each stream is handled concurrently. Requests go through these checks, in
/// order, and the first failure is answered as APNs does: `:status`, an `apns-id` header, and
/// a JSON body `{"reason": "..."}`:
///
/// 1. method `POST`, else `405 MethodNotAllowed`;
/// 2. path `/3/device/<token>`, else `404 BadPath`; an empty token is `400
///    MissingDeviceToken`, one that is not 64 hex digits `400 BadDeviceToken`;
/// 3. no repeated `apns-*` or `authorization` header, else `400 DuplicateHeaders`;
/// 4. in token mode ([`Http2Auth::Token`]): `authorization: bearer <JWT>`, else `403
///    MissingProviderToken`; a token that does not parse, has the wrong `alg`, `kid` or `iss`,
///    an `iat` in the future, or a signature that does not verify is `403
///    InvalidProviderToken`; one older than [`Http2Options::max_token_age`], issued before
///    [`Http2Options::expire_tokens_issued_before`], or hit by
///    [`force_expired`](Self::force_expired) is `403 ExpiredProviderToken`; beyond
///    [`Http2Options::rate_limit`], `429 TooManyRequests`;
/// 5. `apns-topic`: required in token mode (`400 MissingTopic`), and when
///    [`Http2Options::topic`] is set it must match (`400 BadTopic`);
/// 6. `apns-push-type` one of the documented values (`400 InvalidPushType`); absent counts as
///    `alert`;
/// 7. `apns-priority` 10, 5 or 1, and 5 or 1 for `background` (`400 BadPriority`);
/// 8. `apns-expiration` a decimal number (`400 BadExpirationDate`);
/// 9. `apns-collapse-id` at most 64 bytes (`400 BadCollapseId`);
/// 10. `apns-id` a canonical UUID (`400 BadMessageId`);
/// 11. the payload: not empty (`400 PayloadEmpty`), at most 4096 bytes, 5120 for `voip`
///     (`413 PayloadTooLarge`), a JSON object (`400 BadPayload`, a reason of this mock);
/// 12. for `liveactivity` and `widgets` pushes: a topic with the push type's suffix (`400
///     BadTopic`), and the payload's documented fields (`400 BadPayload`: an `event` of
///     `start`, `update` or `end`, `timestamp` and `content-state` always, `attributes-type`
///     and `attributes` only and always with `start`, `dismissal-date` only with `end`, dates
///     in whole seconds; a widget push is `{"aps":{"content-changed":true}}`);
/// 13. the token's [`ReasonScript`], if any.
///
/// The same port also serves the broadcast channel API (Apple serves it on its own hosts and
/// ports): `/1/apps/<bundle id>/channels` and `/all-channels` (create, read, delete, list;
/// at most [`Http2Options::max_channels`] channels, then `400 CannotCreateChannelConfig`)
/// and `POST /4/broadcasts/apps/<bundle id>` (headers checked as push-proto's
/// `parse_broadcast_request` does, the payload a Live Activity `update` or `end`, an unknown
/// or deleted channel `400 ChannelNotRegistered`); see [`broadcasts`](Self::broadcasts) and
/// [`broadcast_count`](Self::broadcast_count).
///
/// Then it answers `200` with an empty body and the `apns-id` header (the request's, else a
/// generated upper-case UUID), and records the [`Http2Delivery`]. A `410` body also carries
/// `"timestamp"`. Dropping the handle (or [`shutdown`](Self::shutdown)) stops the server;
/// the records stay readable.
///
/// ```
/// use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2, ReasonScript};
///
/// let certs = Certificates::generate()?;
/// // Token auth: `key` is the public half of the `.p8` key the client signs with.
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32])?;
/// let auth = Http2Auth::Token {
///     key_id: "KEY1234567".into(),
///     team_id: "TEAM123456".into(),
///     key: *key.verifying_key(),
/// };
/// let options = Http2Options::new(auth)
///     .topic("com.example.app")
///     .max_concurrent_streams(100)
///     .script("ab".repeat(32), ReasonScript::Unregistered { timestamp_ms: 1 });
/// let mock = MockApnsHttp2::start(options, &certs)?;
/// assert!(mock.url().starts_with("https://localhost:"));
/// assert_eq!(mock.total_delivered(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MockApnsHttp2 {
    thread: ServerThread,
    record: Records<Record>,
}

impl MockApnsHttp2 {
    /// Starts the server in a background thread.
    pub fn start(options: Http2Options, certs: &Certificates) -> io::Result<MockApnsHttp2> {
        let require_client_cert = matches!(options.auth, Http2Auth::Certificate);
        let acceptor = TlsAcceptor::from(server_config_with_alpn(
            certs,
            require_client_cert,
            vec![b"h2".to_vec()],
        )?);
        if let Http2Auth::Token {
            key_id, team_id, ..
        } = &options.auth
            && (key_id.is_empty() || team_id.is_empty())
        {
            return Err(invalid_input(io::Error::other(
                "token auth needs a key id and a team id",
            )));
        }
        let record = Arc::new(Shared::new(Record {
            stats: ConnectionStats::default(),
            deliveries: Vec::new(),
            per_token: HashMap::new(),
            total_delivered: 0,
            answers: Vec::new(),
            status_counts: HashMap::new(),
            total_answered: 0,
            scripted_seen: HashMap::new(),
            expire_before: options.expire_tokens_issued_before,
            expire_next: options.expire_next_tokens,
            clock_ahead: 0,
            rate_limit: options.rate_limit.map(QuotaState::new),
            verified: HashMap::new(),
            provider_tokens: 0,
            ids: ApnsIdGenerator::new(options.apns_id_seed),
            channels: Channels::new(options.max_channels, options.apns_id_seed),
        }));
        let scripts = options
            .scripts
            .into_iter()
            .map(|(token, script)| (token.to_ascii_lowercase(), script))
            .collect();
        let context = Arc::new(Context {
            auth: options.auth,
            topic: options.topic,
            scripts,
            max_token_age: options.max_token_age.as_secs(),
            latency: options.latency,
            count_only: options.count_only,
            record: record.clone(),
        });
        let setup = Http2Setup {
            name: NAME,
            max_concurrent_streams: options.max_concurrent_streams,
            goaway_after: options.goaway_after,
            stream_limit_changes: options.stream_limit_changes,
            faults: options.faults,
        };
        let thread = http2::spawn(
            setup,
            acceptor,
            record.clone(),
            move |request, respond, stream| {
                handle_stream(request, respond, context.clone(), stream)
            },
        )?;
        Ok(MockApnsHttp2 { thread, record })
    }

    /// The address to connect to (`127.0.0.1` and an ephemeral port). Verify the server
    /// certificate as [`Certificates::SERVER_NAME`].
    pub fn addr(&self) -> SocketAddr {
        self.thread.addr()
    }

    /// The base URL: `https://localhost:PORT` (the name in the server certificate; it
    /// resolves to this server's `127.0.0.1`).
    pub fn url(&self) -> String {
        format!(
            "https://{}:{}",
            Certificates::SERVER_NAME,
            self.addr().port()
        )
    }

    /// Every delivered notification, in the order answered (empty with `count_only`).
    pub fn delivered(&self) -> Vec<Http2Delivery> {
        self.record.read(|r| r.deliveries.clone())
    }

    /// Deliveries per device token, lowercase hex (empty with `count_only`).
    pub fn delivered_counts(&self) -> HashMap<String, usize> {
        self.record.read(|r| r.per_token.clone())
    }

    /// How many notifications for `token` (hex, any case) were delivered (0 with
    /// `count_only`).
    pub fn delivered_count(&self, token: &str) -> usize {
        let token = token.to_ascii_lowercase();
        self.record
            .read(|r| r.per_token.get(&token).copied().unwrap_or(0))
    }

    /// How many notifications were delivered in all (counts also with `count_only`).
    pub fn total_delivered(&self) -> usize {
        self.record.read(|r| r.total_delivered)
    }

    /// Every answer, in order (empty with `count_only`).
    pub fn responses(&self) -> Vec<Http2Answer> {
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

    /// How many requests were answered in all (not counting refused streams).
    pub fn total_responses(&self) -> usize {
        self.record.read(|r| r.total_answered)
    }

    /// How many streams the mock refused (`RST_STREAM(REFUSED_STREAM)`): after a GOAWAY
    /// started, or all of them with [`Http2Options::refuse_all_streams`]. They were neither
    /// answered nor recorded. (Streams beyond the stream limit, refused by the HTTP/2 layer
    /// itself, are not counted.)
    pub fn refused_streams(&self) -> usize {
        self.record.read(|r| r.stats.refused)
    }

    /// How many HTTP/2 connections were established (TLS and HTTP/2 handshakes done).
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.stats.connections)
    }

    /// How many established connections have closed.
    pub fn closed_connections(&self) -> usize {
        self.record.read(|r| r.stats.closed)
    }

    /// How many TLS or HTTP/2 handshakes failed (a missing client certificate, say).
    pub fn handshake_failures(&self) -> usize {
        self.record.read(|r| r.stats.handshake_failures)
    }

    /// The most streams ever open at once on one connection, as the mock saw them (from when
    /// a request arrived until its answer was queued). Proves a client respects
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` when requests overlap (see
    /// [`Http2Options::latency`]).
    pub fn max_concurrent_seen(&self) -> usize {
        self.record.read(|r| r.stats.max_open)
    }

    /// How many GOAWAYs the mock started ([`Http2Options::goaway_after`],
    /// [`Http2Options::goaway_on_connect`]).
    pub fn goaways_sent(&self) -> usize {
        self.record.read(|r| r.stats.goaways)
    }

    /// How many connections the mock broke with a malformed frame
    /// ([`Http2Options::break_connection_after`]).
    pub fn broken_connections(&self) -> usize {
        self.record.read(|r| r.stats.broken)
    }

    /// How many distinct provider tokens verified (token mode): a refresh adds one.
    pub fn provider_tokens_seen(&self) -> usize {
        self.record.read(|r| r.provider_tokens)
    }

    /// From now on, provider tokens with `iat` before `unix_seconds` get `403
    /// ExpiredProviderToken` (`None`: no such rule).
    pub fn expire_tokens_issued_before(&self, unix_seconds: Option<u64>) {
        self.record.update(|r| r.expire_before = unix_seconds);
    }

    /// The stream limits announced with [`Http2Options::change_stream_limit`] that clients
    /// acknowledged, in order.
    pub fn stream_limits_acknowledged(&self) -> Vec<u32> {
        self.record.read(|r| r.stats.limits_acknowledged.clone())
    }

    /// Streams clients opened although as many streams as the limit they had acknowledged
    /// (announced with [`Http2Options::change_stream_limit`]) were still open: `0` for a
    /// client that keeps to the limit.
    pub fn stream_limit_breaches(&self) -> usize {
        self.record.read(|r| r.stats.limit_breaches)
    }

    /// Moves the mock's wall clock (the one provider tokens are judged by) `by` ahead, for
    /// tests that run the client on a virtual clock.
    pub fn advance_clock(&self, by: Duration) {
        self.record
            .update(|r| r.clock_ahead = r.clock_ahead.saturating_add(by.as_secs()));
    }

    /// The next `count` requests with an otherwise valid provider token get `403
    /// ExpiredProviderToken`.
    pub fn force_expired(&self, count: usize) {
        self.record.update(|r| r.expire_next = count);
    }

    /// Blocks until at least `count` notifications were delivered, or `timeout` passes;
    /// returns whether they were.
    pub fn wait_for_delivered(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.total_delivered >= count)
    }

    /// Blocks until at least `count` requests were answered, or `timeout` passes; returns
    /// whether they were.
    pub fn wait_for_responses(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.total_answered >= count)
    }

    /// Blocks until at least `count` connections were established, or `timeout` passes;
    /// returns whether they were.
    pub fn wait_for_connections(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.stats.connections >= count)
    }

    /// Blocks until at least `count` established connections closed, or `timeout` passes;
    /// returns whether they did.
    pub fn wait_for_closed(&self, count: usize, timeout: Duration) -> bool {
        self.record.wait_until(timeout, |r| r.stats.closed >= count)
    }

    /// Blocks until at least `count` TLS or HTTP/2 handshakes failed, or `timeout` passes;
    /// returns whether they did.
    pub fn wait_for_handshake_failures(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.stats.handshake_failures >= count)
    }

    /// Blocks until at least `count` GOAWAYs were started, or `timeout` passes; returns
    /// whether they were.
    pub fn wait_for_goaways(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.stats.goaways >= count)
    }

    /// Every broadcast accepted, in order.
    pub fn broadcasts(&self) -> Vec<BroadcastDelivery> {
        self.record.read(|r| r.channels.deliveries().to_vec())
    }

    /// How many broadcasts `channel` received (also after it was deleted).
    pub fn broadcast_count(&self, channel: &str) -> usize {
        self.record.read(|r| r.channels.count(channel))
    }

    /// The ids of the channels that exist now, oldest first.
    pub fn channels(&self) -> Vec<String> {
        self.record
            .read(|r| r.channels.ids().iter().map(ToString::to_string).collect())
    }

    /// Stops the server and every connection; idempotent. The records stay readable.
    pub fn shutdown(&mut self) {
        self.thread.stop();
    }
}

async fn handle_stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    context: Arc<Context>,
    stream: Stream,
) {
    let stream_id = u32::from(respond.stream_id());
    let receiving = (MAX_READ, context.latency);
    let Some((head, body)) = stream
        .receive(NAME, request, &mut respond, receiving, &context.record)
        .await
    else {
        return;
    };
    if apns_broadcast::handles(head.uri.path()) {
        let call = verify_provider_token(&context, &head.headers)
            .map_err(BroadcastReason::Provider)
            .and_then(|()| apns_broadcast::parse(&head, &body, context.topic.as_deref()));
        let reply = context
            .record
            .update(|r| r.channels.answer(call, stream.connection()));
        stream.count_answer();
        log::trace!(
            "{NAME}: stream {stream_id} {}: {}",
            head.uri.path(),
            reply.status
        );
        if let Err(error) = send_reply(&mut respond, reply) {
            log::debug!("{NAME}: answering stream {stream_id} failed: {error}");
        }
        return;
    }
    let outcome = evaluate(&context, &head, &body);
    stream.count_answer();
    let (status, reason, timestamp, apns_id, token) = context.record.update(|r| {
        let apns_id = outcome
            .apns_id
            .clone()
            .unwrap_or_else(|| r.ids.next_id().to_string().to_ascii_uppercase());
        let (status, reason, timestamp) = match outcome.result {
            Ok(accepted) => {
                r.total_delivered += 1;
                if !context.count_only {
                    *r.per_token.entry(accepted.token.clone()).or_insert(0) += 1;
                    r.deliveries.push(Http2Delivery {
                        token: accepted.token,
                        apns_id: apns_id.clone(),
                        push_type: accepted.push_type,
                        priority: accepted.priority,
                        topic: accepted.topic,
                        expiration: accepted.expiration,
                        collapse_id: accepted.collapse_id,
                        payload: accepted.payload,
                        connection: stream.connection(),
                        stream_id,
                    });
                }
                (StatusCode::OK, None, None)
            }
            Err(failure) => (failure.status, Some(failure.reason), failure.timestamp),
        };
        r.total_answered += 1;
        *r.status_counts.entry(status.as_u16()).or_insert(0) += 1;
        if !context.count_only {
            r.answers.push(Http2Answer {
                status: status.as_u16(),
                reason: reason.clone(),
                token: outcome.token.clone(),
                apns_id: apns_id.clone(),
                connection: stream.connection(),
                stream_id,
            });
        }
        (status, reason, timestamp, apns_id, outcome.token)
    });
    log::trace!("{NAME}: stream {stream_id} for {token:?}: {status} {reason:?}");
    if let Err(error) = send(&mut respond, status, &apns_id, reason, timestamp) {
        log::debug!("{NAME}: answering stream {stream_id} failed: {error}");
    }
}

fn send(
    respond: &mut SendResponse<Bytes>,
    status: StatusCode,
    apns_id: &str,
    reason: Option<String>,
    timestamp: Option<u64>,
) -> Result<(), h2::Error> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(apns_id) {
        response.headers_mut().insert("apns-id", value);
    }
    let body = reason.map(|reason| {
        let mut object = serde_json::Map::new();
        object.insert("reason".to_owned(), Value::String(reason));
        if let Some(timestamp) = timestamp {
            object.insert("timestamp".to_owned(), Value::from(timestamp));
        }
        Bytes::from(Value::Object(object).to_string())
    });
    if body.is_some() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut stream = respond.send_response(response, body.is_none())?;
    if let Some(body) = body {
        stream.send_data(body, true)?;
    }
    Ok(())
}

/// Sends a channel-management or broadcast answer.
fn send_reply(respond: &mut SendResponse<Bytes>, reply: Reply) -> Result<(), h2::Error> {
    let mut response = Response::new(());
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&reply.request_id) {
        headers.insert("apns-request-id", value);
    }
    if let Some(value) = reply
        .channel_id
        .and_then(|id| HeaderValue::from_str(&id).ok())
    {
        headers.insert("apns-channel-id", value);
    }
    if reply.body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut stream = respond.send_response(response, reply.body.is_none())?;
    if let Some(body) = reply.body {
        stream.send_data(body, true)?;
    }
    Ok(())
}

/// A failed request's answer.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    reason: String,
    timestamp: Option<u64>,
}

impl Failure {
    /// The failure with `reason` and its documented status.
    fn of(reason: Reason) -> Failure {
        let status = reason
            .documented_status()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        Failure {
            status,
            reason: reason.as_str().to_owned(),
            timestamp: None,
        }
    }

    fn bad_request(reason: &str) -> Failure {
        Failure {
            status: StatusCode::BAD_REQUEST,
            reason: reason.to_owned(),
            timestamp: None,
        }
    }
}

/// A request that passed every check.
#[derive(Debug)]
struct Accepted {
    token: String,
    push_type: Option<PushType>,
    priority: Option<u8>,
    topic: Option<String>,
    expiration: Option<u64>,
    collapse_id: Option<String>,
    payload: Bytes,
}

/// What to answer one request.
#[derive(Debug)]
struct Outcome {
    /// The token of the path, when well-formed.
    token: Option<String>,
    /// The request's `apns-id`, when valid.
    apns_id: Option<String>,
    result: Result<Accepted, Failure>,
}

fn evaluate(context: &Context, head: &Parts, body: &Body) -> Outcome {
    let apns_id = header(&head.headers, &APNS_ID)
        .filter(|id| ApnsId::parse(id).is_ok())
        .map(str::to_owned);
    let mut token = None;
    let result = validate(context, head, body, &mut token);
    Outcome {
        token,
        apns_id,
        result,
    }
}

/// A header as text; `None` when absent or not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A header that is present but unreadable gives `Err(())`.
fn optional_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ()> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| ()),
    }
}

fn validate(
    context: &Context,
    head: &Parts,
    body: &Body,
    token_out: &mut Option<String>,
) -> Result<Accepted, Failure> {
    if head.method != Method::POST {
        return Err(Failure::of(Reason::MethodNotAllowed));
    }
    let Some(token) = head.uri.path().strip_prefix(PATH_PREFIX) else {
        return Err(Failure::of(Reason::BadPath));
    };
    if token.is_empty() {
        return Err(Failure::of(Reason::MissingDeviceToken));
    }
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::of(Reason::BadDeviceToken));
    }
    let token = token.to_ascii_lowercase();
    *token_out = Some(token.clone());
    let headers = &head.headers;
    if SINGLE_HEADERS
        .iter()
        .any(|name| headers.get_all(name).iter().count() > 1)
    {
        return Err(Failure::of(Reason::DuplicateHeaders));
    }
    verify_provider_token(context, headers).map_err(Failure::of)?;
    let admitted = context.record.update(|r| match r.rate_limit.as_mut() {
        Some(limit) => limit.admit(Instant::now()).is_ok(),
        None => true,
    });
    if !admitted {
        return Err(Failure::of(Reason::TooManyRequests));
    }

    let topic =
        optional_header(headers, &APNS_TOPIC).map_err(|()| Failure::of(Reason::BadTopic))?;
    match (topic, &context.topic) {
        (None, _) if matches!(context.auth, Http2Auth::Token { .. }) => {
            return Err(Failure::of(Reason::MissingTopic));
        }
        (Some(topic), Some(expected))
            if topic != expected
                && !topic
                    .strip_prefix(expected.as_str())
                    .is_some_and(|suffix| suffix.starts_with('.')) =>
        {
            return Err(Failure::of(Reason::BadTopic));
        }
        _ => {}
    }
    let push_type = match optional_header(headers, &APNS_PUSH_TYPE) {
        Ok(None) => None,
        Ok(Some(text)) => Some(
            text.parse::<PushType>()
                .map_err(|_| Failure::of(Reason::InvalidPushType))?,
        ),
        Err(()) => return Err(Failure::of(Reason::InvalidPushType)),
    };
    let priority = match optional_header(headers, &APNS_PRIORITY) {
        Ok(None) => None,
        Ok(Some("10")) => Some(10),
        Ok(Some("5")) => Some(5),
        Ok(Some("1")) => Some(1),
        Ok(Some(_)) | Err(()) => return Err(Failure::of(Reason::BadPriority)),
    };
    if push_type == Some(PushType::Background) && priority.unwrap_or(10) == 10 {
        return Err(Failure::of(Reason::BadPriority));
    }
    let expiration = match optional_header(headers, &APNS_EXPIRATION) {
        Ok(None) => None,
        Ok(Some(text)) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Some(
            text.parse::<u64>()
                .map_err(|_| Failure::of(Reason::BadExpirationDate))?,
        ),
        Ok(Some(_)) | Err(()) => return Err(Failure::of(Reason::BadExpirationDate)),
    };
    let collapse_id = match headers.get(&APNS_COLLAPSE_ID) {
        None => None,
        Some(value) if value.len() > MAX_COLLAPSE_ID => {
            return Err(Failure::of(Reason::BadCollapseId));
        }
        Some(value) => Some(String::from_utf8_lossy(value.as_bytes()).into_owned()),
    };
    if headers.contains_key(&APNS_ID)
        && header(headers, &APNS_ID).is_none_or(|id| ApnsId::parse(id).is_err())
    {
        return Err(Failure::of(Reason::BadMessageId));
    }

    let payload = match body {
        Body::TooLarge => return Err(Failure::of(Reason::PayloadTooLarge)),
        Body::Complete(payload) => payload,
    };
    if payload.is_empty() {
        return Err(Failure::of(Reason::PayloadEmpty));
    }
    let limit = push_type.unwrap_or(PushType::Alert).payload_limit();
    if payload.len() > limit {
        return Err(Failure::of(Reason::PayloadTooLarge));
    }
    if !is_json_object(payload) {
        return Err(Failure::bad_request("BadPayload"));
    }
    check_kind(push_type, topic, payload)?;

    if let Some(script) = context.scripts.get(&token) {
        let nth = context.record.update(|r| {
            let seen = r.scripted_seen.entry(token.clone()).or_insert(0);
            *seen = seen.saturating_add(1);
            *seen
        });
        if let Some(failure) = script.failure(nth) {
            return Err(failure);
        }
    }
    Ok(Accepted {
        token,
        push_type,
        priority,
        topic: topic.map(str::to_owned),
        expiration,
        collapse_id,
        payload: payload.clone(),
    })
}

/// The checks of Live Activity and widget pushes: the topic ends with the push type's
/// suffix (`400 BadTopic`), and the payload has the fields Apple documents (`400 BadPayload`).
fn check_kind(
    push_type: Option<PushType>,
    topic: Option<&str>,
    payload: &[u8],
) -> Result<(), Failure> {
    let (suffix, checked) = match push_type {
        Some(PushType::LiveActivity) => (
            push_proto::apns::live_activity::TOPIC_SUFFIX,
            check_live_activity(payload, Target::Device),
        ),
        Some(PushType::Widgets) => (
            push_proto::apns::widgets::TOPIC_SUFFIX,
            check_widgets(payload),
        ),
        _ => return Ok(()),
    };
    if topic.is_some_and(|topic| !topic.ends_with(suffix)) {
        return Err(Failure::of(Reason::BadTopic));
    }
    checked.map_err(|defect| {
        log::debug!("{NAME}: refusing a {push_type:?} payload: {defect}");
        Failure::bad_request("BadPayload")
    })
}

/// True when `payload` is one JSON object; its content is skipped, not built.
fn is_json_object(payload: &[u8]) -> bool {
    struct Object;
    impl<'de> Visitor<'de> for Object {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(())
        }
    }
    let mut json = serde_json::Deserializer::from_slice(payload);
    json.deserialize_map(Object).is_ok() && json.end().is_ok()
}

/// The wall clock, UNIX seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Token mode: checks `authorization: bearer <JWT>`.
fn verify_provider_token(context: &Context, headers: &HeaderMap) -> Result<(), Reason> {
    let Http2Auth::Token {
        key_id,
        team_id,
        key,
    } = &context.auth
    else {
        return Ok(());
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(Reason::MissingProviderToken);
    };
    let text = value.to_str().map_err(|_| Reason::InvalidProviderToken)?;
    let jwt = match text.split_once(' ') {
        Some((scheme, jwt)) if scheme.eq_ignore_ascii_case("bearer") => jwt.trim(),
        _ => return Err(Reason::InvalidProviderToken),
    };
    if jwt.is_empty() {
        return Err(Reason::MissingProviderToken);
    }
    let record = &context.record;
    // A token seen before is checked under one lock; a new one is verified outside it
    // (readers are not held up by the signature check).
    let seen = record.update(|r| {
        let iat = r.verified.get(jwt).copied()?;
        Some(check_age(context, r, iat))
    });
    if let Some(checked) = seen {
        return checked;
    }
    let iat = decode_and_verify(jwt, key_id, team_id, key).ok_or(Reason::InvalidProviderToken)?;
    record.update(|r| {
        if r.verified.len() >= MAX_CACHED_TOKENS {
            r.verified.clear();
        }
        if r.verified.insert(jwt.to_owned(), iat).is_none() {
            r.provider_tokens += 1;
        }
        check_age(context, r, iat)
    })
}

/// A verified token issued at `iat`: not from the future, not too old, not expired by the
/// test.
fn check_age(context: &Context, r: &mut Record, iat: u64) -> Result<(), Reason> {
    let now = unix_now().saturating_add(r.clock_ahead);
    if iat > now.saturating_add(FUTURE_SKEW) {
        return Err(Reason::InvalidProviderToken);
    }
    if now.saturating_sub(iat) > context.max_token_age {
        return Err(Reason::ExpiredProviderToken);
    }
    if r.expire_before.is_some_and(|before| iat < before) {
        return Err(Reason::ExpiredProviderToken);
    }
    if r.expire_next > 0 {
        r.expire_next -= 1;
        return Err(Reason::ExpiredProviderToken);
    }
    Ok(())
}

/// Decodes a provider token and verifies its header, issuer and ES256 signature; returns its
/// `iat`.
fn decode_and_verify(jwt: &str, key_id: &str, team_id: &str, key: &VerifyingKey) -> Option<u64> {
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = |part: &str| -> Option<serde_json::Map<String, Value>> {
        let bytes = Base64UrlUnpadded::decode_vec(part).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(object) => Some(object),
            _ => None,
        }
    };
    let header_json = json(header)?;
    if header_json.get("alg").and_then(Value::as_str) != Some("ES256")
        || header_json.get("kid").and_then(Value::as_str) != Some(key_id)
    {
        return None;
    }
    let claims_json = json(claims)?;
    if claims_json.get("iss").and_then(Value::as_str) != Some(team_id) {
        return None;
    }
    let iat = claims_json.get("iat").and_then(Value::as_u64)?;
    let signature = Base64UrlUnpadded::decode_vec(signature).ok()?;
    let signature = Signature::from_slice(&signature).ok()?;
    let signing_input = &jwt[..header.len() + 1 + claims.len()];
    key.verify(signing_input.as_bytes(), &signature).ok()?;
    Some(iat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7; 32]).unwrap()
    }

    fn jwt(header: &str, claims: &str, key: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.as_bytes()),
            Base64UrlUnpadded::encode_string(claims.as_bytes())
        );
        let signature: Signature = key.sign(input.as_bytes());
        format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }

    #[test]
    fn tokens_verify_only_with_the_right_key_kid_and_iss() {
        let key = key();
        let public = *key.verifying_key();
        let header = r#"{"alg":"ES256","kid":"KEY1234567"}"#;
        let claims = r#"{"iss":"TEAM123456","iat":1700000000}"#;
        let good = jwt(header, claims, &key);
        assert_eq!(
            decode_and_verify(&good, "KEY1234567", "TEAM123456", &public),
            Some(1_700_000_000)
        );
        assert_eq!(
            decode_and_verify(&good, "OTHERKEY00", "TEAM123456", &public),
            None
        );
        assert_eq!(
            decode_and_verify(&good, "KEY1234567", "OTHERTEAM0", &public),
            None
        );
        let other = SigningKey::from_slice(&[9; 32]).unwrap();
        assert_eq!(
            decode_and_verify(&good, "KEY1234567", "TEAM123456", other.verifying_key()),
            None
        );
        let hs256 = jwt(r#"{"alg":"HS256","kid":"KEY1234567"}"#, claims, &key);
        assert_eq!(
            decode_and_verify(&hs256, "KEY1234567", "TEAM123456", &public),
            None
        );
        for garbage in ["", "a.b", "a.b.c.d", "...", "eyJ.eyJ.AAAA", &good[1..]] {
            assert_eq!(
                decode_and_verify(garbage, "KEY1234567", "TEAM123456", &public),
                None,
                "{garbage}"
            );
        }
    }

    #[test]
    fn scripts_fail_the_first_requests_then_deliver() {
        let script = ReasonScript::TooManyRequests { first: 2 };
        assert_eq!(
            script.failure(1).unwrap().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(script.failure(2).is_some());
        assert!(script.failure(3).is_none());
        let always = ReasonScript::Status {
            status: 410,
            reason: "ExpiredToken".into(),
            first: None,
        };
        let failure = always.failure(100).unwrap();
        assert_eq!((failure.status.as_u16(), failure.timestamp), (410, Some(0)));
        let gone = ReasonScript::Unregistered { timestamp_ms: 5 }
            .failure(1)
            .unwrap();
        assert_eq!(
            (gone.reason.as_str(), gone.timestamp),
            ("Unregistered", Some(5))
        );
    }
}
