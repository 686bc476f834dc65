//! A loopback Web Push service (RFC 8030) on several origins: it mints subscriptions, checks
//! VAPID (RFC 8292) and the headers, decrypts every message (RFC 8291) with the
//! subscription's private key, and answers as push services do.

mod decrypt;
mod h1;
mod options;
mod request;
mod state;
mod stream;
mod vapid;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use futures_rustls::TlsAcceptor;

pub use options::WebPushOptions;
pub use state::{MintedSubscription, WebPushAnswer, WebPushDelivery};

use crate::certs::{Certificates, server_config_with_alpn};
use crate::http2::{self, Http2Setup};
use crate::http2_faults::Http2Faults;
use crate::server::{Records, ServerThread, Shared, accept_loop};
use state::{Record, Settings};
use stream::{NAME, handle_stream};

/// A loopback Web Push service with [`WebPushOptions::origins`] origins, each its own
/// listener on `127.0.0.1` with an ephemeral port and the server certificate of the
/// [`Certificates`] it was started with, serving HTTP/2 (ALPN `h2`) at
/// `https://localhost:PORT`, or HTTP/1.1 only (ALPN `http/1.1`) for the origins of
/// [`WebPushOptions::http1_only`].
///
/// [`subscribe`](Self::subscribe) makes a subscription as a browser would (a P-256 key pair
/// and an authentication secret, seeded: test keys only) and hands out its
/// `PushSubscription` JSON; the mock keeps the private key. A push is `POST /push/<id>` on the
/// subscription's origin, checked in this order; every error answer has the JSON body
/// `{"reason": <reason>}`:
///
/// 1. method `POST`, else `405 MethodNotAllowed`;
/// 2. a subscription minted on this origin, else `404 NotFound`;
/// 3. `Authorization: vapid t=<JWT>, k=<key>`: `k` an uncompressed P-256 key, the JWT's `alg`
///    `ES256` and its signature valid under `k`, `aud` this origin, `exp` in the future and at
///    most 24 hours ahead, `sub` a `mailto:` or `https:` contact; else `401` with
///    `MissingAuthorization`, `BadAuthorizationHeader`, `BadJwtToken`, `BadJwtAudience`,
///    `ExpiredJwtToken`, `JwtExpirationTooFar` or `BadJwtSubject`. A subscription made with an
///    application server key ([`WebPushOptions::application_server_key`],
///    [`subscribe_for`](Self::subscribe_for)) takes only that `k`: else `403
///    VapidPkHashMismatch`;
/// 4. a subscription [expired](Self::expire): `410 Unregistered`;
/// 5. an origin [down](Self::set_down): `503 ServiceUnavailable`; the origin's quota
///    ([`WebPushOptions::quota`]) and the seeded draw ([`WebPushOptions::seeded_faults`]):
///    `429 TooManyRequests` or `503 ServiceUnavailable`, with `Retry-After`;
/// 6. `TTL` a number of seconds, `Urgency` one of `very-low`, `low`, `normal`, `high`, `Topic`
///    1 to 32 base64url characters: else `400 BadTtl`, `BadUrgency`, `BadWebPushTopic`;
/// 7. a body of at most 4096 bytes, else `413 PayloadTooLarge`;
/// 8. a non-empty body: `Content-Encoding: aes128gcm`, else `415 UnsupportedContentEncoding`,
///    and decrypting with the subscription's keys (an implementation of its own, not
///    push-proto's), else `400 DecryptionFailed`.
///
/// Then `201 Created` with `Location: https://localhost:PORT/message/<n>`; the decrypted
/// payload is logged (`log::info!`) and recorded as a [`WebPushDelivery`].
///
/// Dropping the handle (or [`shutdown`](Self::shutdown)) stops every listener; the records
/// stay readable.
///
/// ```
/// use push_mock::{Certificates, MockWebPush, WebPushOptions};
///
/// let certs = Certificates::generate()?;
/// let mock = MockWebPush::start(WebPushOptions::new().origins(3), &certs)?;
/// assert_eq!(mock.origins().len(), 3);
/// let subscription = mock.subscribe(1);
/// assert!(subscription.endpoint.starts_with(&mock.origins()[1]));
/// assert!(subscription.json.contains("\"p256dh\""));
/// assert_eq!(mock.total_delivered(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MockWebPush {
    servers: Vec<ServerThread>,
    application_server_key: Option<Vec<u8>>,
    record: Records<Record>,
}

impl MockWebPush {
    /// Starts every origin's listener in a background thread.
    pub fn start(options: WebPushOptions, certs: &Certificates) -> io::Result<MockWebPush> {
        let origins = options.origins.max(1);
        let application_server_key = match &options.application_server_key {
            Some(key) => Some(decode_key(key)?),
            None => None,
        };
        let acceptor =
            TlsAcceptor::from(server_config_with_alpn(certs, false, vec![b"h2".to_vec()])?);
        let h1_acceptor = TlsAcceptor::from(server_config_with_alpn(
            certs,
            false,
            vec![b"http/1.1".to_vec()],
        )?);
        let record = Arc::new(Shared::new(Record::new(
            origins,
            options.seed,
            options.quota,
        )));
        let settings = Arc::new(Settings {
            unavailable_rate: options.unavailable_rate,
            rate_limited_rate: options.rate_limited_rate,
            retry_after_secs: options.retry_after_secs,
            latency: options.latency,
            count_only: options.count_only,
            record: record.clone(),
        });
        let mut servers = Vec::with_capacity(origins);
        for origin in 0..origins {
            if options.http1_origins.contains(&origin) {
                let (acceptor, settings) = (h1_acceptor.clone(), settings.clone());
                let server = ServerThread::spawn(NAME, move |listener, executor| {
                    accept_loop(NAME, listener, executor, move |tcp, peer| {
                        h1::serve(tcp, peer, acceptor.clone(), settings.clone(), origin)
                    })
                })?;
                servers.push(server);
                continue;
            }
            let setup = Http2Setup {
                name: NAME,
                max_concurrent_streams: options.max_concurrent_streams,
                goaway_after: options.goaway_after,
                stream_limit_changes: Vec::new(),
                faults: Http2Faults::default(),
            };
            let settings = settings.clone();
            let server = http2::spawn(
                setup,
                acceptor.clone(),
                record.clone(),
                move |request, respond, stream| {
                    handle_stream(request, respond, settings.clone(), origin, stream)
                },
            )?;
            servers.push(server);
        }
        for (origin, server) in servers.iter().enumerate() {
            let url = format!(
                "https://{}:{}",
                Certificates::SERVER_NAME,
                server.addr().port()
            );
            record.update(|r| r.origins[origin].url = url);
        }
        Ok(MockWebPush {
            servers,
            application_server_key,
            record,
        })
    }

    /// Every origin, `https://localhost:PORT` (the name in the server certificate; it
    /// resolves to `127.0.0.1`), in order.
    pub fn origins(&self) -> Vec<String> {
        self.record
            .read(|r| r.origins.iter().map(|o| o.url.clone()).collect())
    }

    /// The address of `origin`'s listener (`127.0.0.1` and an ephemeral port). Verify the
    /// server certificate as [`Certificates::SERVER_NAME`].
    ///
    /// # Panics
    /// When `origin` is not an index of [`origins`](Self::origins).
    pub fn addr(&self, origin: usize) -> SocketAddr {
        self.servers[origin].addr()
    }

    /// Makes a subscription at `origin` (an index into [`origins`](Self::origins)), restricted
    /// to [`WebPushOptions::application_server_key`] if one is set.
    ///
    /// # Panics
    /// When `origin` is not an index of [`origins`](Self::origins).
    pub fn subscribe(&self, origin: usize) -> MintedSubscription {
        let key = self.application_server_key.clone();
        self.mint(origin, key)
    }

    /// Makes a subscription at `origin` restricted to `application_server_key` (a VAPID
    /// public key, uncompressed, base64url): requests signed by any other key get `403`.
    ///
    /// # Panics
    /// When `origin` is not an index of [`origins`](Self::origins).
    pub fn subscribe_for(
        &self,
        origin: usize,
        application_server_key: &str,
    ) -> io::Result<MintedSubscription> {
        let key = decode_key(application_server_key)?;
        Ok(self.mint(origin, Some(key)))
    }

    fn mint(&self, origin: usize, key: Option<Vec<u8>>) -> MintedSubscription {
        let origins = self.servers.len();
        assert!(origin < origins, "origin {origin} of {origins}");
        self.record.update(|r| r.mint(origin, key))
    }

    /// Expires the subscription at `endpoint` (the browser unsubscribed): later pushes to it
    /// get `410 Unregistered`. Returns whether the mock knew it.
    pub fn expire(&self, endpoint: &str) -> bool {
        let id = endpoint.rsplit('/').next().unwrap_or_default();
        self.record.update(|r| match r.subscribers.get_mut(id) {
            Some(subscriber) => {
                subscriber.gone = true;
                true
            }
            None => false,
        })
    }

    /// Takes `origin` down (every push answered `503 ServiceUnavailable`, without
    /// `Retry-After`) or brings it back up.
    pub fn set_down(&self, origin: usize, down: bool) {
        self.record.update(|r| {
            if let Some(state) = r.origins.get_mut(origin) {
                state.down = down;
            }
        });
    }

    /// Moves the mock's wall clock (the one VAPID `exp` is judged by) `by` ahead.
    pub fn advance_clock(&self, by: Duration) {
        self.record.update(|r| r.ahead += by);
    }

    /// Every delivered message, in the order answered (empty with `count_only`).
    pub fn delivered(&self) -> Vec<WebPushDelivery> {
        self.record.read(|r| r.deliveries.clone())
    }

    /// How many messages each subscription (by id) received.
    pub fn delivered_counts(&self) -> HashMap<String, usize> {
        self.record.read(|r| r.per_subscription.clone())
    }

    /// How many messages the subscription at `endpoint` received.
    pub fn delivered_count(&self, endpoint: &str) -> usize {
        let id = endpoint.rsplit('/').next().unwrap_or_default();
        self.record
            .read(|r| r.per_subscription.get(id).copied().unwrap_or(0))
    }

    /// How many messages were delivered in all.
    pub fn total_delivered(&self) -> usize {
        self.record.read(|r| r.total_delivered)
    }

    /// Every answer, in order (empty with `count_only`).
    pub fn responses(&self) -> Vec<WebPushAnswer> {
        self.record.read(|r| r.answers.clone())
    }

    /// How many answers had each status.
    pub fn status_counts(&self) -> HashMap<u16, usize> {
        self.record.read(|r| r.status_counts.clone())
    }

    /// How many requests were answered in all.
    pub fn total_responses(&self) -> usize {
        self.record.read(|r| r.total_answered)
    }

    /// How many connections were established (HTTP/2, or HTTP/1.1 for the origins of
    /// [`WebPushOptions::http1_only`]), over all origins.
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.stats.connections)
    }

    /// The most streams ever open at once on one connection.
    pub fn max_concurrent_seen(&self) -> usize {
        self.record.read(|r| r.stats.max_open)
    }

    /// Blocks until at least `count` messages were delivered, or `timeout` passes; returns
    /// whether they were.
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

    /// Stops every listener and connection; idempotent. The records stay readable.
    pub fn shutdown(&mut self) {
        for server in &mut self.servers {
            server.stop();
        }
    }
}

/// An application server key: an uncompressed P-256 point in base64url.
fn decode_key(key: &str) -> io::Result<Vec<u8>> {
    let bytes = Base64UrlUnpadded::decode_vec(key.trim_end_matches('=')).unwrap_or_default();
    if bytes.len() != 65 || p256::PublicKey::from_sec1_bytes(&bytes).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an application server key is an uncompressed P-256 point in base64url",
        ));
    }
    Ok(bytes)
}
