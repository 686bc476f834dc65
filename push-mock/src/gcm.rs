//! A loopback legacy GCM HTTP JSON endpoint (`POST /gcm/send`) with scripted outcomes.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsAcceptor;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use push_proto::SplitMix64;
use push_proto::gcm::{MAX_BATCH_SIZE, RequestBody, ResponseBody, TokenResult};
use smol::Timer;
use smol::net::TcpStream;

use crate::certs::{Certificates, server_config_with_alpn};
use crate::http1::{self, text};
use crate::server::{Records, ServerThread, Shared, accept_loop, handshake, unit_interval};

const NAME: &str = "mock-gcm";
/// The paths the mock answers on; anything else is 404.
const PATHS: [&str; 2] = ["/gcm/send", "/fcm/send"];
/// Largest request body read; 1000 tokens of 4096 bytes fit.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The outcome the mock reports for one registration id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenScript {
    /// Delivered: `{"message_id": ...}`. The default for tokens without a script.
    #[default]
    Ok,
    /// Delivered, and the token has a new canonical form:
    /// `{"message_id": ..., "registration_id": <new>}`.
    Canonical(String),
    /// `{"error": "NotRegistered"}`: the app is gone; delete the token.
    NotRegistered,
    /// `{"error": "InvalidRegistration"}`: malformed token; delete it.
    InvalidRegistration,
    /// `{"error": "MismatchSenderId"}`: the token belongs to another sender.
    MismatchSenderId,
    /// `{"error": <the string>}`: any other per-token error, known or not.
    Error(String),
    /// `{"error": "Unavailable"}` for the first `k` requests that contain the token, then
    /// delivered.
    UnavailableFirst(u32),
}

/// How a [`MockGcm`] behaves.
#[derive(Debug, Clone)]
pub struct GcmOptions {
    /// The server API key: requests must carry `Authorization: key=<api_key>`, else 401.
    pub api_key: String,
    /// Serve HTTPS with the server certificate of these certificates (ALPN `http/1.1`) instead
    /// of plain HTTP.
    pub tls: Option<Certificates>,
    /// Per-token outcomes; tokens not listed are delivered ([`TokenScript::Ok`]). (The empty
    /// string always gets `MissingRegistration`, as GCM answered.)
    pub scripts: HashMap<String, TokenScript>,
    /// Fraction (0.0 to 1.0) of well-authenticated requests answered with a whole-request
    /// `503 Service Unavailable`, drawn from a deterministic sequence seeded by `seed`.
    pub unavailable_rate: f64,
    /// The `Retry-After` header (delta-seconds) of those 503s.
    pub retry_after_secs: u64,
    /// Seed of the sequence deciding which requests get a 503.
    pub seed: u64,
    /// Delay before answering each request.
    pub latency: Option<Duration>,
    /// Only count deliveries instead of recording them per token: [`MockGcm::delivered`]
    /// stays empty while [`MockGcm::delivered_total`] counts. For benchmarks, where the
    /// records would otherwise grow with the number of tokens.
    pub count_only: bool,
}

impl GcmOptions {
    /// The API key of [`GcmOptions::default`].
    pub const DEFAULT_API_KEY: &'static str = "test-api-key";

    /// Options with the given API key and defaults otherwise.
    pub fn new(api_key: impl Into<String>) -> Self {
        GcmOptions {
            api_key: api_key.into(),
            ..GcmOptions::default()
        }
    }

    /// Adds (or replaces) the script of `token`.
    pub fn script(mut self, token: impl Into<String>, script: TokenScript) -> Self {
        self.scripts.insert(token.into(), script);
        self
    }
}

impl Default for GcmOptions {
    /// Plain HTTP, API key [`GcmOptions::DEFAULT_API_KEY`], every token delivered, no 503s
    /// (`Retry-After: 0` should they be enabled), seed 0, no latency.
    fn default() -> Self {
        GcmOptions {
            api_key: Self::DEFAULT_API_KEY.to_owned(),
            tls: None,
            scripts: HashMap::new(),
            unavailable_rate: 0.0,
            retry_after_secs: 0,
            seed: 0,
            latency: None,
            count_only: false,
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    connections: usize,
    requests: usize,
    statuses: Vec<u16>,
    delivered: HashMap<String, usize>,
    delivered_total: usize,
    max_batch: usize,
    last_body: Option<RequestBody>,
    /// Requests seen so far per `UnavailableFirst` token.
    unavailable_seen: HashMap<String, u32>,
    /// The 503 decisions' generator.
    rng: SplitMix64,
    multicast_ids: u64,
    message_ids: u64,
}

/// What every request handler needs.
#[derive(Debug)]
struct Context {
    authorization: String,
    scripts: HashMap<String, TokenScript>,
    unavailable_rate: f64,
    retry_after_secs: u64,
    latency: Option<Duration>,
    count_only: bool,
    record: Records<Record>,
}

/// A loopback legacy GCM endpoint: HTTP/1.1 with keep-alive (hyper), plain or TLS.
///
/// Requests go through these checks, in order; each failure is answered and recorded:
///
/// 1. the body fits 16 MiB, else `413` (the body is always read in full, so that every
///    answer keeps the connection alive);
/// 2. the path is `/gcm/send` (or `/fcm/send`), else `404`;
/// 3. the method is `POST`, else `405`;
/// 4. `Authorization: key=<api_key>`, else `401` with a short text body;
/// 5. the seeded draw for [`GcmOptions::unavailable_rate`]: `503` with `Retry-After`;
/// 6. the body parses as a [`RequestBody`], else `400` with a text body
///    (`JSON_PARSING_ERROR: ...`), and it has 1 to 1000 `registration_ids`, else `400`.
///
/// Then it answers `200` with the standard body (`multicast_id`, `success`, `failure`,
/// `canonical_ids`, and `results` in the order of `registration_ids`) following the
/// [`TokenScript`]s. Dropping the handle (or [`shutdown`](Self::shutdown)) stops the server.
#[derive(Debug)]
pub struct MockGcm {
    thread: ServerThread,
    record: Records<Record>,
    tls: bool,
}

impl MockGcm {
    /// Starts the endpoint in a background thread.
    pub fn start(options: GcmOptions) -> io::Result<MockGcm> {
        let acceptor = match &options.tls {
            Some(certs) => Some(TlsAcceptor::from(server_config_with_alpn(
                certs,
                false,
                vec![b"http/1.1".to_vec()],
            )?)),
            None => None,
        };
        let tls = acceptor.is_some();
        let record = Arc::new(Shared::new(Record {
            rng: SplitMix64::new(options.seed),
            ..Record::default()
        }));
        let context = Arc::new(Context {
            authorization: format!("key={}", options.api_key),
            scripts: options.scripts,
            unavailable_rate: options.unavailable_rate,
            retry_after_secs: options.retry_after_secs,
            latency: options.latency,
            count_only: options.count_only,
            record: record.clone(),
        });
        let thread = ServerThread::spawn(NAME, move |listener, executor| {
            accept_loop(NAME, listener, executor, move |tcp, peer| {
                serve(tcp, peer, acceptor.clone(), context.clone())
            })
        })?;
        Ok(MockGcm {
            thread,
            record,
            tls,
        })
    }

    /// The listening address (`127.0.0.1` and an ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.thread.addr()
    }

    /// The URL to post to: `http://127.0.0.1:PORT/gcm/send`, or with TLS
    /// `https://localhost:PORT/gcm/send` (the name in the server certificate).
    pub fn endpoint(&self) -> String {
        let port = self.addr().port();
        if self.tls {
            format!("https://{}:{port}/gcm/send", Certificates::SERVER_NAME)
        } else {
            format!("http://127.0.0.1:{port}/gcm/send")
        }
    }

    /// How many times each token got a `message_id` result (deliveries, counting canonical
    /// ones and repeats).
    pub fn delivered(&self) -> HashMap<String, usize> {
        self.record.read(|r| r.delivered.clone())
    }

    /// How many `message_id` results were given in all (deliveries, counting repeats); counts
    /// also with [`GcmOptions::count_only`].
    pub fn delivered_total(&self) -> usize {
        self.record.read(|r| r.delivered_total)
    }

    /// How many HTTP requests arrived, whatever their answer.
    pub fn requests(&self) -> usize {
        self.record.read(|r| r.requests)
    }

    /// The status code of every answer, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.record.read(|r| r.statuses.clone())
    }

    /// The largest number of `registration_ids` in one valid request.
    pub fn max_batch(&self) -> usize {
        self.record.read(|r| r.max_batch)
    }

    /// The body of the last request that parsed, if any.
    pub fn last_request_body(&self) -> Option<RequestBody> {
        self.record.read(|r| r.last_body.clone())
    }

    /// How many connections were established (with TLS: handshakes completed).
    pub fn connections(&self) -> usize {
        self.record.read(|r| r.connections)
    }

    /// Blocks until at least `count` requests were answered, or `timeout` passes; returns
    /// whether they were.
    pub fn wait_for_answers(&self, count: usize, timeout: Duration) -> bool {
        self.record
            .wait_until(timeout, |r| r.statuses.len() >= count)
    }

    /// Stops the server and every connection; idempotent. The records stay readable.
    pub fn shutdown(&mut self) {
        self.thread.stop();
    }
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    context: Arc<Context>,
) {
    match acceptor {
        Some(acceptor) => {
            if let Some(tls) = handshake(NAME, &acceptor, tcp, peer).await {
                serve_http(tls, peer, context).await;
            }
        }
        None => serve_http(tcp, peer, context).await,
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it.
async fn serve_http<S>(io: S, peer: SocketAddr, context: Arc<Context>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    context.record.update(|r| r.connections += 1);
    http1::serve(NAME, io, peer, move |request| {
        let context = context.clone();
        async move { respond(&context, request).await }
    })
    .await;
}

/// Answers one request and records the answer.
async fn respond(context: &Context, request: Request<Incoming>) -> Response<Full<Bytes>> {
    context.record.update(|r| r.requests += 1);
    if let Some(latency) = context.latency {
        Timer::after(latency).await;
    }
    let response = answer(context, request).await;
    context
        .record
        .update(|r| r.statuses.push(response.status().as_u16()));
    response
}

async fn answer(context: &Context, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    // Always read the whole body first: answering without it would cost the connection its
    // keep-alive (hyper cannot reuse a connection with an unread request body).
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            log::info!("{NAME}: reading a request body failed: {error}");
            return text(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        }
    };
    if !PATHS.contains(&head.uri.path()) {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    if head.method != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let authorized = head
        .headers
        .get(AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == context.authorization.as_bytes());
    if !authorized {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let unavailable = context
        .record
        .update(|r| unit_interval(&mut r.rng) < context.unavailable_rate);
    if unavailable {
        let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(context.retry_after_secs));
        return response;
    }
    let parsed: RequestBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("JSON_PARSING_ERROR: {error}"),
            );
        }
    };
    let count = parsed.registration_ids.len();
    if count == 0 {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing \"registration_ids\" field",
        );
    }
    if count > MAX_BATCH_SIZE {
        return text(
            StatusCode::BAD_REQUEST,
            &format!(
                "Number of messages on bulk ({count}) exceeds maximum allowed ({MAX_BATCH_SIZE})"
            ),
        );
    }
    let body = context.record.update(|r| results(context, r, parsed));
    match serde_json::to_vec(&body) {
        Ok(json) => {
            let mut response = Response::new(Full::new(Bytes::from(json)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            response
        }
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// The 200 body for a valid request, following the scripts; records the deliveries.
fn results(context: &Context, record: &mut Record, request: RequestBody) -> ResponseBody {
    record.multicast_ids += 1;
    let mut body = ResponseBody {
        multicast_id: Some(i128::from(record.multicast_ids) + 5_000_000_000_000_000_000),
        ..ResponseBody::default()
    };
    record.max_batch = record.max_batch.max(request.registration_ids.len());
    for token in &request.registration_ids {
        let script = context.scripts.get(token).cloned().unwrap_or_default();
        let error = |code: &str| TokenResult {
            error: Some(code.to_owned()),
            ..TokenResult::default()
        };
        let result = match script {
            _ if token.is_empty() => error("MissingRegistration"),
            TokenScript::Ok => deliver(context, record, token, None),
            TokenScript::Canonical(new) => deliver(context, record, token, Some(new)),
            TokenScript::NotRegistered => error("NotRegistered"),
            TokenScript::InvalidRegistration => error("InvalidRegistration"),
            TokenScript::MismatchSenderId => error("MismatchSenderId"),
            TokenScript::Error(code) => error(&code),
            TokenScript::UnavailableFirst(k) => {
                let seen = record.unavailable_seen.entry(token.clone()).or_insert(0);
                *seen = seen.saturating_add(1);
                if *seen <= k {
                    error("Unavailable")
                } else {
                    deliver(context, record, token, None)
                }
            }
        };
        if result.error.is_some() {
            body.failure += 1;
        } else {
            body.success += 1;
        }
        if result.registration_id.is_some() {
            body.canonical_ids += 1;
        }
        body.results.push(result);
    }
    record.last_body = Some(request);
    body
}

fn deliver(
    context: &Context,
    record: &mut Record,
    token: &str,
    canonical: Option<String>,
) -> TokenResult {
    record.message_ids += 1;
    record.delivered_total += 1;
    if !context.count_only {
        *record.delivered.entry(token.to_owned()).or_insert(0) += 1;
    }
    TokenResult {
        message_id: Some(format!("0:{}%mock", record.message_ids).into()),
        registration_id: canonical,
        error: None,
    }
}
