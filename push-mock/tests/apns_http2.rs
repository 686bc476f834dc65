//! The APNs HTTP/2 mock, driven by an `h2` client over futures-rustls (through tokio-util's
//! compatibility layer) on smol.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_rustls::TlsConnector;
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2, ReasonScript};
use push_proto::apns::http2::{P8Signer, PushType, TokenAuth};
use rustls::pki_types::ServerName;
use serde_json::Value;
use smol::Timer;
use smol::net::TcpStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Safety net for every wait; never reached when things work.
const SAFETY: Duration = Duration::from_secs(10);
const TOPIC: &str = "com.example.app";
const KEY_ID: &str = "KEY1234567";
const TEAM_ID: &str = "TEAM123456";

/// Runs a test body on smol, failing it if it hangs.
fn run<T>(test: impl Future<Output = T>) -> T {
    smol::block_on(future::or(test, async {
        Timer::after(3 * SAFETY).await;
        panic!("the test hung");
    }))
}

fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn payload(text: &str) -> Vec<u8> {
    format!(r#"{{"aps":{{"alert":"{text}"}}}}"#).into_bytes()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HTTP/2 connection to the mock.
struct Client {
    send: SendRequest<Bytes>,
    base: String,
    _driver: smol::Task<Result<(), h2::Error>>,
}

/// An answer as the client sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn apns_id(&self) -> &str {
        self.headers["apns-id"].to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap().to_owned()
    }
}

async fn connect(mock: &MockApnsHttp2, certs: &Certificates, client_cert: bool) -> Client {
    try_connect(mock, certs, client_cert).await.unwrap()
}

async fn try_connect(
    mock: &MockApnsHttp2,
    certs: &Certificates,
    client_cert: bool,
) -> io::Result<Client> {
    let mut config = (*certs.client_config(client_cert).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(mock.addr()).await?;
    let name = ServerName::try_from(Certificates::SERVER_NAME).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (send, connection) = h2::client::handshake(tls.compat())
        .await
        .map_err(io::Error::other)?;
    Ok(Client {
        send,
        base: mock.url(),
        _driver: smol::spawn(connection),
    })
}

impl Client {
    /// `POST /3/device/<token>` with topic and push type `alert`.
    fn post(&self, token: &str) -> http::request::Builder {
        self.bare(&format!("/3/device/{token}"))
            .header("apns-topic", TOPIC)
            .header("apns-push-type", "alert")
    }

    /// `POST <path>` without any header.
    fn bare(&self, path: &str) -> http::request::Builder {
        Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
    }

    async fn send(&self, request: http::request::Builder, body: &[u8]) -> Answer {
        self.try_send(request, body).await.unwrap()
    }

    async fn try_send(
        &self,
        request: http::request::Builder,
        body: &[u8],
    ) -> Result<Answer, h2::Error> {
        send(self.send.clone(), request.body(()).unwrap(), body.to_vec()).await
    }
}

async fn send(
    send: SendRequest<Bytes>,
    request: Request<()>,
    body: Vec<u8>,
) -> Result<Answer, h2::Error> {
    let mut send = send.ready().await?;
    let (response, mut stream) = send.send_request(request, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(Bytes::from(body), true)?;
    }
    let (parts, mut body) = response.await?.into_parts();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes.freeze(),
    })
}

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

/// A provider token from push-proto's signer, issued at `iat`.
fn jwt(key: &SigningKey, key_id: &str, team_id: &str, iat: u64) -> String {
    let signer = P8Signer::from_key(key.clone(), key_id).unwrap();
    let now = Instant::now();
    let mut auth = TokenAuth::new(signer, team_id, now, iat).unwrap();
    let (token, _) = auth.token(now).unwrap().unwrap();
    token.jwt().to_owned()
}

fn token_options() -> Http2Options {
    Http2Options::new(Http2Auth::Token {
        key_id: KEY_ID.into(),
        team_id: TEAM_ID.into(),
        key: *signing_key(1).verifying_key(),
    })
    .topic(TOPIC)
}

fn start(options: Http2Options) -> (Certificates, MockApnsHttp2) {
    let certs = Certificates::generate().unwrap();
    let mock = MockApnsHttp2::start(options, &certs).unwrap();
    (certs, mock)
}

#[test]
fn delivers_with_the_apns_id_and_records_everything() {
    let (certs, mock) = start(Http2Options::default().topic(TOPIC));
    run(async {
        let client = connect(&mock, &certs, true).await;
        let id = "123e4567-e89b-12d3-a456-426614174000";
        let request = client
            .post(&token(1))
            .header("apns-id", id)
            .header("apns-priority", "5")
            .header("apns-expiration", "1700000000")
            .header("apns-collapse-id", "scores");
        let answer = client.send(request, &payload("one")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.apns_id(), id);
        assert!(answer.body.is_empty());

        // Without an apns-id the mock makes one up, upper case like APNs.
        let upper = token(0xab).to_ascii_uppercase();
        let request = client
            .bare(&format!("/3/device/{upper}"))
            .header("apns-topic", "");
        let answer = client.send(request, &payload("two")).await;
        // (An empty topic does not match the bundle id.)
        assert_eq!((answer.status, answer.reason()), (400, "BadTopic".into()));
        let answer = client.send(client.post(&upper), &payload("two")).await;
        assert_eq!(answer.status, 200);
        let generated = answer.apns_id().to_owned();
        assert_eq!(generated.len(), 36);
        assert_eq!(generated, generated.to_ascii_uppercase());
        assert!(push_proto::apns::http2::ApnsId::parse(&generated).is_ok());

        let delivered = mock.delivered();
        assert_eq!(delivered.len(), 2);
        let first = &delivered[0];
        assert_eq!(first.token, token(1));
        assert_eq!(first.apns_id, id);
        assert_eq!(first.push_type, Some(PushType::Alert));
        assert_eq!(first.priority, Some(5));
        assert_eq!(first.topic.as_deref(), Some(TOPIC));
        assert_eq!(first.expiration, Some(1_700_000_000));
        assert_eq!(first.collapse_id.as_deref(), Some("scores"));
        assert_eq!(first.payload, payload("one"));
        assert_eq!(first.connection, 0);
        assert_eq!(delivered[1].token, token(0xab));
        assert_eq!(delivered[1].apns_id, generated);
        assert_eq!(delivered[1].priority, None);
        assert_eq!(mock.delivered_count(&token(1)), 1);
        assert_eq!(mock.delivered_count(&upper), 1);
        assert_eq!(mock.total_delivered(), 2);
        assert_eq!(mock.statuses(), [200, 400, 200]);
        assert_eq!(mock.responses()[1].reason.as_deref(), Some("BadTopic"));
        assert_eq!(mock.status_counts()[&200], 2);
        assert_eq!(mock.connections(), 1);
        assert_eq!(mock.goaways_sent(), 0);
    });
}

#[test]
fn certificate_mode_requires_a_client_certificate() {
    let (certs, mock) = start(Http2Options::default());
    run(async {
        // With TLS 1.3 the client learns of the refusal only at its first read.
        let refused = match try_connect(&mock, &certs, false).await {
            Err(_) => true,
            Ok(client) => client
                .try_send(client.post(&token(1)), &payload("x"))
                .await
                .is_err(),
        };
        assert!(refused);
        assert!(mock.wait_for_handshake_failures(1, SAFETY));
        assert_eq!(mock.total_responses(), 0);
        assert_eq!(mock.connections(), 0);
    });
}

#[test]
fn each_validation_failure_is_answered_like_apns() {
    let (certs, mock) = start(Http2Options::default().topic(TOPIC));
    run(async {
        let client = connect(&mock, &certs, true).await;
        let good = token(7);
        let body = payload("hi");
        let post = |path: &str| client.bare(path).header("apns-topic", TOPIC);
        let untopical = |path: &str| client.bare(path);
        let cases: Vec<(&str, http::request::Builder, Vec<u8>, u16, &str)> = vec![
            (
                "GET",
                client.post(&good).method(Method::GET),
                Vec::new(),
                405,
                "MethodNotAllowed",
            ),
            (
                "not /3/device",
                post(&format!("/3/devices/{good}")),
                body.clone(),
                404,
                "BadPath",
            ),
            (
                "no token",
                post("/3/device/"),
                body.clone(),
                400,
                "MissingDeviceToken",
            ),
            (
                "short token",
                post("/3/device/abcd"),
                body.clone(),
                400,
                "BadDeviceToken",
            ),
            (
                "not hex",
                post(&format!("/3/device/{}", "zz".repeat(32))),
                body.clone(),
                400,
                "BadDeviceToken",
            ),
            (
                "repeated header",
                client
                    .post(&good)
                    .header("apns-priority", "10")
                    .header("apns-priority", "5"),
                body.clone(),
                400,
                "DuplicateHeaders",
            ),
            (
                "other topic",
                untopical(&format!("/3/device/{good}")).header("apns-topic", "com.example.other"),
                body.clone(),
                400,
                "BadTopic",
            ),
            (
                "push type",
                post(&format!("/3/device/{good}")).header("apns-push-type", "fax"),
                body.clone(),
                400,
                "InvalidPushType",
            ),
            (
                "priority",
                client.post(&good).header("apns-priority", "7"),
                body.clone(),
                400,
                "BadPriority",
            ),
            (
                "background at 10",
                post(&format!("/3/device/{good}"))
                    .header("apns-push-type", "background")
                    .header("apns-priority", "10"),
                br#"{"aps":{"content-available":1}}"#.to_vec(),
                400,
                "BadPriority",
            ),
            (
                "expiration",
                client.post(&good).header("apns-expiration", "tomorrow"),
                body.clone(),
                400,
                "BadExpirationDate",
            ),
            (
                "collapse id",
                client
                    .post(&good)
                    .header("apns-collapse-id", "c".repeat(65)),
                body.clone(),
                400,
                "BadCollapseId",
            ),
            (
                "apns-id",
                client.post(&good).header("apns-id", "not-a-uuid"),
                body.clone(),
                400,
                "BadMessageId",
            ),
            ("empty", client.post(&good), Vec::new(), 400, "PayloadEmpty"),
            (
                "4097 bytes",
                client.post(&good),
                vec![b' '; 4097],
                413,
                "PayloadTooLarge",
            ),
            (
                "5121 bytes of voip",
                untopical(&format!("/3/device/{good}"))
                    .header("apns-topic", format!("{TOPIC}.voip"))
                    .header("apns-push-type", "voip"),
                vec![b' '; 5121],
                413,
                "PayloadTooLarge",
            ),
            (
                "not JSON",
                client.post(&good),
                b"{".to_vec(),
                400,
                "BadPayload",
            ),
            (
                "not an object",
                client.post(&good),
                b"[1]".to_vec(),
                400,
                "BadPayload",
            ),
        ];
        let count = cases.len();
        for (name, request, body, status, reason) in cases {
            let answer = client.send(request, &body).await;
            assert_eq!(
                (answer.status, answer.reason().as_str()),
                (status, reason),
                "{name}"
            );
            assert_eq!(answer.headers["content-type"], "application/json", "{name}");
            assert_eq!(answer.apns_id().len(), 36, "{name}");
        }
        assert_eq!(mock.total_delivered(), 0);

        // The limits themselves pass; all on the same connection, which survived every error.
        let mut big = br#"{"aps":{},"pad":""#.to_vec();
        big.resize(4095, b'x');
        big.extend_from_slice(b"\"}");
        assert_eq!(big.len(), 4097);
        big.remove(20);
        let answer = client
            .send(
                client
                    .post(&good)
                    .header("apns-collapse-id", "c".repeat(64)),
                &big,
            )
            .await;
        assert_eq!(answer.status, 200);
        let mut voip = br#"{"aps":{},"pad":""#.to_vec();
        voip.resize(5118, b'x');
        voip.extend_from_slice(b"\"}");
        let answer = client
            .send(
                untopical(&format!("/3/device/{good}"))
                    .header("apns-topic", format!("{TOPIC}.voip"))
                    .header("apns-push-type", "voip")
                    .header("apns-priority", "10"),
                &voip,
            )
            .await;
        assert_eq!(answer.status, 200);
        let answer = client
            .send(
                post(&format!("/3/device/{good}"))
                    .header("apns-push-type", "background")
                    .header("apns-priority", "5"),
                br#"{"aps":{"content-available":1}}"#,
            )
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(mock.delivered_count(&good), 3);
        assert_eq!(mock.total_responses(), count + 3);
        assert_eq!(mock.connections(), 1);
        // Tokens are recorded only when well-formed.
        let responses = mock.responses();
        assert_eq!(responses[5].token.as_deref(), Some(good.as_str()));
        assert_eq!(responses[3].token, None);
    });
}

#[test]
fn provider_tokens_are_verified() {
    let (certs, mock) = start(token_options());
    run(async {
        // Token mode asks for no client certificate.
        let client = connect(&mock, &certs, false).await;
        let key = signing_key(1);
        let now = unix_now();
        let bearer = |jwt: &str| format!("bearer {jwt}");
        let good = jwt(&key, KEY_ID, TEAM_ID, now);
        let answer = client
            .send(
                client
                    .post(&token(1))
                    .header("authorization", bearer(&good)),
                &payload("a"),
            )
            .await;
        assert_eq!(answer.status, 200);

        let cases = [
            (None, 403, "MissingProviderToken"),
            (Some("bearer".to_owned()), 403, "InvalidProviderToken"),
            (
                Some("bearer not.a.jwt".to_owned()),
                403,
                "InvalidProviderToken",
            ),
            (Some(format!("basic {good}")), 403, "InvalidProviderToken"),
            (
                Some(bearer(&jwt(&signing_key(2), KEY_ID, TEAM_ID, now))),
                403,
                "InvalidProviderToken",
            ),
            (
                Some(bearer(&jwt(&key, "OTHERKEY99", TEAM_ID, now))),
                403,
                "InvalidProviderToken",
            ),
            (
                Some(bearer(&jwt(&key, KEY_ID, "OTHERTEAM9", now))),
                403,
                "InvalidProviderToken",
            ),
            (
                Some(bearer(&jwt(&key, KEY_ID, TEAM_ID, now + 3600))),
                403,
                "InvalidProviderToken",
            ),
            (
                Some(bearer(&jwt(&key, KEY_ID, TEAM_ID, now - 3601))),
                403,
                "ExpiredProviderToken",
            ),
        ];
        for (authorization, status, reason) in cases {
            let mut request = client.post(&token(1));
            if let Some(authorization) = &authorization {
                request = request.header("authorization", authorization);
            }
            let answer = client.send(request, &payload("b")).await;
            assert_eq!(
                (answer.status, answer.reason().as_str()),
                (status, reason),
                "{authorization:?}"
            );
        }
        // In token mode the topic is required.
        let request = client
            .bare(&format!("/3/device/{}", token(1)))
            .header("authorization", bearer(&good));
        let answer = client.send(request, &payload("c")).await;
        assert_eq!(
            (answer.status, answer.reason()),
            (400, "MissingTopic".into())
        );

        assert_eq!(mock.total_delivered(), 1);
        // The good token, the one from the future and the old one verified.
        assert_eq!(mock.provider_tokens_seen(), 3);
    });
}

#[test]
fn token_keys_load_from_public_or_private_pem() {
    let key = signing_key(3);
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    for pem in [private.as_str(), public.as_str()] {
        match Http2Auth::token_from_pem(KEY_ID, TEAM_ID, pem).unwrap() {
            Http2Auth::Token {
                key_id,
                team_id,
                key: verifying,
            } => {
                assert_eq!((key_id.as_str(), team_id.as_str()), (KEY_ID, TEAM_ID));
                assert_eq!(&verifying, key.verifying_key());
            }
            Http2Auth::Certificate => unreachable!(),
        }
    }
    let error = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, "nonsense").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    let mut options = token_options();
    options.auth = Http2Auth::Token {
        key_id: String::new(),
        team_id: TEAM_ID.into(),
        key: *key.verifying_key(),
    };
    let certs = Certificates::generate().unwrap();
    assert!(MockApnsHttp2::start(options, &certs).is_err());
}

#[test]
fn expiry_can_be_forced_for_the_refresh_path() {
    let mut options = token_options();
    options.expire_next_tokens = 1;
    let (certs, mock) = start(options);
    run(async {
        let client = connect(&mock, &certs, false).await;
        let key = signing_key(1);
        let now = unix_now();
        let send = |jwt: String| {
            let request = client
                .post(&token(5))
                .header("authorization", format!("bearer {jwt}"));
            client.send(request, b"{}")
        };
        let first = jwt(&key, KEY_ID, TEAM_ID, now - 60);
        // Forced once: then the same token works again.
        let answer = send(first.clone()).await;
        assert_eq!(
            (answer.status, answer.reason()),
            (403, "ExpiredProviderToken".into())
        );
        assert_eq!(send(first.clone()).await.status, 200);

        // Tokens issued before a cut-off are stale; a refreshed one passes.
        mock.expire_tokens_issued_before(Some(now - 30));
        let answer = send(first.clone()).await;
        assert_eq!(
            (answer.status, answer.reason()),
            (403, "ExpiredProviderToken".into())
        );
        assert_eq!(send(jwt(&key, KEY_ID, TEAM_ID, now)).await.status, 200);
        assert_eq!(mock.provider_tokens_seen(), 2);

        mock.expire_tokens_issued_before(None);
        mock.force_expired(2);
        assert_eq!(send(first.clone()).await.status, 403);
        assert_eq!(send(jwt(&key, KEY_ID, TEAM_ID, now)).await.status, 403);
        assert_eq!(send(first).await.status, 200);
        assert_eq!(mock.total_delivered(), 3);
        assert_eq!(mock.status_counts()[&403], 4);
    });
}

#[test]
fn scripted_reasons_per_token() {
    let options = Http2Options::default()
        .script(token(1), ReasonScript::BadDeviceToken)
        .script(
            token(2),
            ReasonScript::Unregistered {
                timestamp_ms: 1_700_000_000_123,
            },
        )
        .script(token(3), ReasonScript::TooManyRequests { first: 2 })
        .script(token(4), ReasonScript::ServiceUnavailable { first: 1 })
        .script(
            token(5),
            ReasonScript::Status {
                status: 500,
                reason: "InternalServerError".into(),
                first: None,
            },
        )
        // Scripts match whatever case the token is written in.
        .script(
            token(0xcd).to_ascii_uppercase(),
            ReasonScript::Status {
                status: 403,
                reason: "Forbidden".into(),
                first: Some(1),
            },
        );
    let (certs, mock) = start(options);
    run(async {
        let client = connect(&mock, &certs, true).await;
        // Validation comes first: a malformed request never consumes a scripted answer.
        let answer = client
            .send(
                client.post(&token(3)).header("apns-priority", "7"),
                &payload("s"),
            )
            .await;
        assert_eq!(answer.reason(), "BadPriority");
        let mut seen = Vec::new();
        for (n, times) in [(1, 2), (2, 1), (3, 3), (4, 2), (5, 2), (0xcd, 2), (9, 1)] {
            for _ in 0..times {
                let answer = client.send(client.post(&token(n)), &payload("s")).await;
                let reason = (answer.status != 200).then(|| answer.reason());
                if n == 2 {
                    assert_eq!(answer.json()["timestamp"], 1_700_000_000_123u64);
                }
                seen.push((n, answer.status, reason));
            }
        }
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            seen,
            [
                (1, 400, some("BadDeviceToken")),
                (1, 400, some("BadDeviceToken")),
                (2, 410, some("Unregistered")),
                (3, 429, some("TooManyRequests")),
                (3, 429, some("TooManyRequests")),
                (3, 200, None),
                (4, 503, some("ServiceUnavailable")),
                (4, 200, None),
                (5, 500, some("InternalServerError")),
                (5, 500, some("InternalServerError")),
                (0xcd, 403, some("Forbidden")),
                (0xcd, 200, None),
                (9, 200, None),
            ]
        );
        let counts = mock.delivered_counts();
        assert_eq!(counts.len(), 4);
        for n in [3, 4, 0xcd, 9] {
            assert_eq!(mock.delivered_count(&token(n)), 1);
        }
        assert_eq!(mock.total_delivered(), 4);
    });
}

#[test]
fn max_concurrent_streams_is_advertised_and_respected() {
    let options = Http2Options::default()
        .max_concurrent_streams(3)
        .latency(Duration::from_millis(150));
    let (certs, mock) = start(options);
    run(async {
        let client = connect(&mock, &certs, true).await;
        // One exchange first: the server's SETTINGS have arrived by the time it is answered.
        assert_eq!(
            client
                .send(client.post(&token(0)), &payload("0"))
                .await
                .status,
            200
        );
        assert_eq!(client.send.current_max_send_streams(), 3);
        let tasks: Vec<_> = (1..=12u8)
            .map(|n| {
                let request = client.post(&token(n)).body(()).unwrap();
                smol::spawn(send(client.send.clone(), request, payload("n")))
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().status, 200);
        }
        assert_eq!(mock.total_delivered(), 13);
        // The h2 client queued the rest: never more than three at once, and three did overlap.
        assert_eq!(mock.max_concurrent_seen(), 3);
        assert_eq!(mock.connections(), 1);
    });
}

#[test]
fn goaway_after_n_answers_and_later_streams_are_refused() {
    let (certs, mock) = start(Http2Options::default().goaway_after(2));
    run(async {
        let client = connect(&mock, &certs, true).await;
        for n in 0..2 {
            let answer = client.send(client.post(&token(n)), &payload("g")).await;
            assert_eq!(answer.status, 200);
        }
        assert!(mock.wait_for_goaways(1, SAFETY));
        // Refused, one way or the other: by the client after the GOAWAY, or by the server's
        // RST_STREAM(REFUSED_STREAM) if it raced the GOAWAY.
        let error = client
            .try_send(client.post(&token(9)), &payload("late"))
            .await
            .unwrap_err();
        assert!(
            error.is_go_away()
                || error.reason() == Some(h2::Reason::REFUSED_STREAM)
                || error.is_io(),
            "{error:?}"
        );
        assert!(mock.wait_for_closed(1, SAFETY));
        assert_eq!(mock.total_delivered(), 2);
        assert_eq!(mock.delivered_count(&token(9)), 0);

        // A new connection gets its own count.
        let again = connect(&mock, &certs, true).await;
        let answer = again.send(again.post(&token(9)), &payload("again")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(mock.delivered()[2].connection, 1);
        assert_eq!(mock.connections(), 2);
    });
}

#[test]
fn goaway_refuses_the_streams_in_flight_it_did_not_answer() {
    let options = Http2Options::default()
        .goaway_after(2)
        .latency(Duration::from_millis(100));
    let (certs, mock) = start(options);
    run(async {
        let client = connect(&mock, &certs, true).await;
        let tasks: Vec<_> = (0..6u8)
            .map(|n| {
                let request = client.post(&token(n)).body(()).unwrap();
                smol::spawn(send(client.send.clone(), request, payload("f")))
            })
            .collect();
        let mut answered = Vec::new();
        let mut refused = 0;
        for (n, task) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(answer) => {
                    assert_eq!(answer.status, 200);
                    answered.push(token(n as u8));
                }
                Err(error) => {
                    assert_eq!(
                        error.reason(),
                        Some(h2::Reason::REFUSED_STREAM),
                        "{error:?}"
                    );
                    refused += 1;
                }
            }
        }
        assert_eq!((answered.len(), refused), (2, 4));
        assert_eq!(mock.refused_streams(), 4);
        assert!(mock.wait_for_goaways(1, SAFETY));
        assert_eq!(mock.goaways_sent(), 1);
        assert!(mock.wait_for_closed(1, SAFETY));
        // Exactly the answered ones were delivered: a refused stream is safe to retry.
        let mut delivered: Vec<String> = mock.delivered().into_iter().map(|d| d.token).collect();
        delivered.sort();
        answered.sort();
        assert_eq!(delivered, answered);
        assert_eq!(mock.total_responses(), 2);
    });
}

#[test]
fn goaway_right_after_the_handshake() {
    let (certs, mock) = start(Http2Options::default().goaway_after(0));
    run(async {
        let client = connect(&mock, &certs, true).await;
        assert!(mock.wait_for_goaways(1, SAFETY));
        assert!(mock.wait_for_closed(1, SAFETY));
        assert!(
            client
                .try_send(client.post(&token(1)), &payload("x"))
                .await
                .is_err()
        );
        assert_eq!(mock.total_responses(), 0);
    });
}

#[test]
fn count_only_counts_without_recording() {
    let mut options = Http2Options::default().script(token(2), ReasonScript::BadDeviceToken);
    options.count_only = true;
    let (certs, mock) = start(options);
    run(async {
        let client = connect(&mock, &certs, true).await;
        for n in [1, 2, 1, 3] {
            client.send(client.post(&token(n)), &payload("c")).await;
        }
        assert!(mock.wait_for_responses(4, SAFETY));
        assert!(mock.wait_for_delivered(3, SAFETY));
        assert_eq!(mock.total_delivered(), 3);
        assert_eq!(mock.total_responses(), 4);
        assert!(mock.delivered().is_empty());
        assert!(mock.delivered_counts().is_empty());
        assert!(mock.responses().is_empty());
        assert!(mock.statuses().is_empty());
        assert_eq!(mock.status_counts()[&200], 3);
        assert_eq!(mock.status_counts()[&400], 1);
    });
}

#[test]
fn shutdown_closes_connections_and_keeps_the_records() {
    let (certs, mut mock) = start(Http2Options::default());
    run(async {
        let client = connect(&mock, &certs, true).await;
        assert_eq!(
            client
                .send(client.post(&token(1)), &payload("x"))
                .await
                .status,
            200
        );
        mock.shutdown();
        mock.shutdown();
        assert!(
            client
                .try_send(client.post(&token(1)), &payload("y"))
                .await
                .is_err()
        );
        assert_eq!(mock.total_delivered(), 1);
        assert!(mock.wait_for_connections(1, SAFETY));
    });
}

#[test]
fn a_provider_wide_rate_limit_answers_too_many_requests() {
    // A window far longer than the test: the limit is reached and stays reached.
    let (certs, mock) = start(Http2Options::default().rate_limit(3, Duration::from_secs(3600)));
    run(async {
        let client = connect(&mock, &certs, true).await;
        let mut statuses = Vec::new();
        for n in 0..5 {
            let answer = client.send(client.post(&token(n)), &payload("s")).await;
            if answer.status == 429 {
                assert_eq!(answer.reason(), "TooManyRequests");
                assert!(answer.headers.get("retry-after").is_none());
            }
            statuses.push(answer.status);
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
    });
    assert_eq!(mock.total_delivered(), 3);
    assert_eq!(mock.status_counts()[&429], 2);
}
