//! The hostile servers the HTTP/2 mocks reproduce (a stream limit of zero and the
//! [`push_mock::Http2Faults`]: every stream refused, GOAWAY on connect, a broken connection),
//! as an `h2` client sees them (over futures-rustls on smol) and, where the exact frames
//! matter, as a raw frame reader sees them.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::future;
use futures_rustls::TlsConnector;
use h2::client::SendRequest;
use h2::{Ping, PingPong, Reason};
use http::{Method, Request};
use push_mock::{Certificates, FcmOptions, Http2Options, MockApnsHttp2, MockFcm};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smol::net::TcpStream;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use common::SAFETY;
use common::fcm::{PROJECT, access_token, message, run};
use common::frames::*;

/// An `h2` client connection, its PING handle, and the task driving it.
struct H2 {
    send: SendRequest<Bytes>,
    ping: PingPong,
    driver: smol::Task<Result<(), h2::Error>>,
}

async fn connect(addr: SocketAddr, config: &ClientConfig) -> H2 {
    let mut config = config.clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(Certificates::SERVER_NAME).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, mut connection) = h2::client::handshake(tls.compat()).await.unwrap();
    let ping = connection.ping_pong().unwrap();
    H2 {
        send,
        ping,
        driver: smol::spawn(connection),
    }
}

impl H2 {
    /// A PING round trip: the frames the server sent before its PING ACK (its SETTINGS
    /// among them) have been processed.
    async fn round_trip(&mut self) {
        self.ping.ping(Ping::opaque()).await.unwrap();
    }
}

/// Sends `request` with `body`; the answer's status and body.
async fn exchange(
    send: SendRequest<Bytes>,
    (request, body): (Request<()>, Vec<u8>),
) -> Result<(u16, Bytes), h2::Error> {
    let mut send = send.ready().await?;
    let (response, mut stream) = send.send_request(request, false)?;
    // Fails when the server's refusal arrived first; the response then tells why.
    let sent = stream.send_data(Bytes::from(body), true);
    let (parts, mut body) = response.await?.into_parts();
    sent?;
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        bytes.extend_from_slice(&chunk);
    }
    Ok((parts.status.as_u16(), bytes.freeze()))
}

fn device(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn apns_path(n: u8) -> String {
    format!("/3/device/{}", device(n))
}

/// A valid APNs request for `device(n)` (certificate mode, no topic required).
fn apns_request(mock: &MockApnsHttp2, n: u8) -> (Request<()>, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}{}", mock.url(), apns_path(n)))
        .header("apns-push-type", "alert")
        .body(())
        .unwrap();
    (request, br#"{"aps":{"alert":"hi"}}"#.to_vec())
}

/// A valid FCM request for registration token `token`.
fn fcm_request(mock: &MockFcm, access: &str, token: &str) -> (Request<()>, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(mock.send_url())
        .header("authorization", format!("Bearer {access}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    (request, message(token).to_string().into_bytes())
}

fn start_apns(options: Http2Options) -> (Certificates, MockApnsHttp2) {
    let certs = Certificates::generate().unwrap();
    let mock = MockApnsHttp2::start(options, &certs).unwrap();
    (certs, mock)
}

fn start_fcm(options: impl FnOnce(FcmOptions) -> FcmOptions) -> (Certificates, MockFcm, String) {
    let certs = Certificates::generate().unwrap();
    let mock = MockFcm::start(options(FcmOptions::demo(PROJECT).unwrap()), &certs).unwrap();
    let access = access_token(&mock, &certs);
    (certs, mock, access)
}

/// The client's view of a request refused with `RST_STREAM(REFUSED_STREAM)`.
fn assert_refused(result: Result<(u16, Bytes), h2::Error>) {
    let error = result.expect_err("a refused stream");
    assert!(
        error.is_reset() && error.is_remote() && error.reason() == Some(Reason::REFUSED_STREAM),
        "h2 reported {error:?}"
    );
}

/// The client's view of a request on a connection whose GOAWAY names stream 0.
fn assert_not_processed(result: Result<(u16, Bytes), h2::Error>) {
    let error = result.expect_err("a stream beyond the GOAWAY's last stream");
    assert!(
        error.is_go_away() && error.is_remote() && error.reason() == Some(Reason::NO_ERROR),
        "h2 reported {error:?}"
    );
}

/// The client's view of a stream failed by its own library after a protocol error.
fn assert_library_error(error: &h2::Error) {
    assert!(
        error.is_go_away() && error.is_library() && error.reason() == Some(Reason::PROTOCOL_ERROR),
        "h2 reported {error:?}"
    );
}

// A stream limit of zero.

#[test]
fn apns_stream_limit_of_zero_is_advertised_and_kept() {
    let (certs, mock) = start_apns(Http2Options::default().max_concurrent_streams(0));
    run(async {
        let mut client = connect(mock.addr(), &certs.client_config(true).unwrap()).await;
        client.round_trip().await;
        assert_eq!(client.send.current_max_send_streams(), 0);
        // A request waits in the client, unsent: neither answered nor refused.
        let mut waiting = Box::pin(exchange(client.send.clone(), apns_request(&mock, 1)));
        assert!(future::poll_once(&mut waiting).await.is_none());
        client.round_trip().await;
        assert!(future::poll_once(&mut waiting).await.is_none());
        assert_eq!(client.send.current_max_send_streams(), 0);
    });
    assert_eq!(mock.connections(), 1);
    assert_eq!(
        (mock.total_responses(), mock.refused_streams()),
        (0, 0),
        "nothing reached the mock"
    );
}

#[test]
fn fcm_stream_limit_of_zero_is_advertised_and_kept() {
    let (certs, mock, access) = start_fcm(|options| options.max_concurrent_streams(0));
    run(async {
        let mut client = connect(mock.addr(), &certs.client_config(false).unwrap()).await;
        client.round_trip().await;
        assert_eq!(client.send.current_max_send_streams(), 0);
        let request = fcm_request(&mock, &access, "device-1");
        let mut waiting = Box::pin(exchange(client.send.clone(), request));
        assert!(future::poll_once(&mut waiting).await.is_none());
        client.round_trip().await;
        assert!(future::poll_once(&mut waiting).await.is_none());
    });
    assert_eq!((mock.connections(), mock.total_responses()), (1, 0));
}

#[test]
fn a_stream_opened_despite_a_limit_of_zero_is_refused_by_the_http2_layer() {
    let (certs, mock) = start_apns(Http2Options::default().max_concurrent_streams(0));
    let mut tls = common::tls(mock.addr(), certs.client_config(true).unwrap());
    tls.write_all(&client_preface()).unwrap();
    let opening = read_until(&mut tls, |f| f.kind == SETTINGS && f.flags & ACK != 0).unwrap();
    let settings: Vec<_> = opening
        .iter()
        .filter(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .collect();
    assert_eq!(settings.len(), 1, "{opening:?}");
    assert!(
        settings[0]
            .settings()
            .contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 0)),
        "{settings:?}"
    );

    let mut bytes = post_headers(1, &apns_path(1), false).encode();
    bytes.extend(RawFrame::new(DATA, END_STREAM, 1, b"{}").encode());
    bytes.extend(RawFrame::new(PING, 0, 0, b"12345678").encode());
    tls.write_all(&bytes).unwrap();
    let frames = read_until(&mut tls, |f| f.kind == PING && f.flags & ACK != 0).unwrap();
    let resets: Vec<_> = frames.iter().filter(|f| f.kind == RST_STREAM).collect();
    assert_eq!(resets.len(), 1, "{frames:?}");
    assert_eq!(
        (resets[0].stream, resets[0].reset_code()),
        (1, REFUSED_STREAM)
    );
    assert!(
        frames.iter().all(|f| f.kind != SETTINGS),
        "the limit never changes: {frames:?}"
    );
    // Refused by `h2` itself: the mock never saw the stream.
    assert_eq!((mock.total_responses(), mock.refused_streams()), (0, 0));
}

// Every stream refused.

#[test]
fn apns_refuse_all_streams_resets_every_stream_and_keeps_the_connection() {
    let (certs, mock) = start_apns(Http2Options::default().refuse_all_streams());
    run(async {
        let mut client = connect(mock.addr(), &certs.client_config(true).unwrap()).await;
        for n in 0..3 {
            assert_refused(exchange(client.send.clone(), apns_request(&mock, n)).await);
        }
        let together: Vec<_> = (3..6)
            .map(|n| smol::spawn(exchange(client.send.clone(), apns_request(&mock, n))))
            .collect();
        for task in together {
            assert_refused(task.await);
        }
        // Still open and healthy.
        client.round_trip().await;
        assert!(!client.driver.is_finished());
        assert_eq!((mock.connections(), mock.closed_connections()), (1, 0));
    });
    assert_eq!(mock.refused_streams(), 6);
    assert_eq!((mock.total_responses(), mock.total_delivered()), (0, 0));
    assert_eq!(mock.goaways_sent(), 0);
}

#[test]
fn fcm_refuse_all_streams_resets_every_stream_and_keeps_the_connection() {
    let (certs, mock, access) = start_fcm(FcmOptions::refuse_all_streams);
    run(async {
        let mut client = connect(mock.addr(), &certs.client_config(false).unwrap()).await;
        for n in 0..3 {
            let request = fcm_request(&mock, &access, &format!("device-{n}"));
            assert_refused(exchange(client.send.clone(), request).await);
        }
        client.round_trip().await;
        assert!(!client.driver.is_finished());
        assert_eq!((mock.connections(), mock.closed_connections()), (1, 0));
    });
    assert_eq!(mock.refused_streams(), 3);
    assert_eq!((mock.total_responses(), mock.total_delivered()), (0, 0));
}

// GOAWAY on connect.

#[test]
fn goaway_on_connect_names_stream_zero_then_closes() {
    let (certs, mock) = start_apns(Http2Options::default().goaway_on_connect());
    let mut tls = common::tls(mock.addr(), certs.client_config(true).unwrap());
    // Everything at once: the request is on the wire before the server's GOAWAY.
    let mut bytes = client_preface();
    bytes.extend(post_headers(1, &apns_path(1), false).encode());
    bytes.extend(RawFrame::new(DATA, END_STREAM, 1, b"{}").encode());
    tls.write_all(&bytes).unwrap();
    let frames = read_until(&mut tls, |_| false).expect("a clean close after the GOAWAY");
    let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [SETTINGS, GOAWAY], "{frames:?}");
    assert_eq!(frames[1].goaway(), (0, NO_ERROR));
    drop(tls);
    assert!(mock.wait_for_closed(1, SAFETY));
    assert_eq!((mock.goaways_sent(), mock.connections()), (1, 1));
    assert_eq!((mock.total_responses(), mock.refused_streams()), (0, 0));
}

#[test]
fn goaway_after_zero_is_graceful_and_names_the_streams_it_received() {
    // The existing option, for contrast: h2's graceful shutdown first announces 2^31-1,
    // then (after a PING round trip) the last stream it received, which the mock refuses.
    let (certs, mock) = start_apns(Http2Options::default().goaway_after(0));
    let mut tls = common::tls(mock.addr(), certs.client_config(true).unwrap());
    let mut bytes = client_preface();
    bytes.extend(post_headers(1, &apns_path(1), false).encode());
    bytes.extend(RawFrame::new(DATA, END_STREAM, 1, b"{}").encode());
    tls.write_all(&bytes).unwrap();
    let frames = read_until(&mut tls, |_| false).expect("a clean close");
    let goaways: Vec<_> = frames
        .iter()
        .filter(|f| f.kind == GOAWAY)
        .map(RawFrame::goaway)
        .collect();
    assert_eq!(
        goaways,
        [(0x7fff_ffff, NO_ERROR), (1, NO_ERROR)],
        "{frames:?}"
    );
    let resets: Vec<_> = frames.iter().filter(|f| f.kind == RST_STREAM).collect();
    assert_eq!(resets.len(), 1, "{frames:?}");
    assert_eq!(
        (resets[0].stream, resets[0].reset_code()),
        (1, REFUSED_STREAM)
    );
    assert_eq!((mock.refused_streams(), mock.total_responses()), (1, 0));
}

#[test]
fn apns_goaway_on_connect_fails_every_request_as_not_processed() {
    let (certs, mock) = start_apns(Http2Options::default().goaway_on_connect());
    run(async {
        for n in 0..2 {
            let client = connect(mock.addr(), &certs.client_config(true).unwrap()).await;
            assert_not_processed(exchange(client.send.clone(), apns_request(&mock, n)).await);
            assert_not_processed(exchange(client.send.clone(), apns_request(&mock, n)).await);
            let ended = client.driver.await;
            assert!(ended.is_ok(), "the connection ends cleanly: {ended:?}");
        }
    });
    assert!(mock.wait_for_closed(2, SAFETY));
    assert_eq!((mock.goaways_sent(), mock.connections()), (2, 2));
    assert_eq!((mock.total_responses(), mock.total_delivered()), (0, 0));
}

#[test]
fn fcm_goaway_on_connect_fails_every_request_as_not_processed() {
    let (certs, mock, access) = start_fcm(FcmOptions::goaway_on_connect);
    run(async {
        for n in 0..2 {
            let client = connect(mock.addr(), &certs.client_config(false).unwrap()).await;
            let request = fcm_request(&mock, &access, &format!("device-{n}"));
            assert_not_processed(exchange(client.send.clone(), request).await);
            let ended = client.driver.await;
            assert!(ended.is_ok(), "the connection ends cleanly: {ended:?}");
        }
    });
    assert!(mock.wait_for_closed(2, SAFETY));
    assert_eq!((mock.goaways_sent(), mock.connections()), (2, 2));
    assert_eq!((mock.total_responses(), mock.total_delivered()), (0, 0));
}

// A broken connection.

#[test]
fn a_broken_connection_gets_a_data_frame_on_stream_zero_instead_of_the_next_answer() {
    let (certs, mock) = start_apns(Http2Options::default().break_connection_after(1));
    let mut tls = common::tls(mock.addr(), certs.client_config(true).unwrap());
    let request = |stream: u32| {
        let mut bytes = post_headers(stream, &apns_path(1), false).encode();
        bytes.extend(RawFrame::new(DATA, END_STREAM, stream, br#"{"aps":{}}"#).encode());
        bytes
    };
    let mut bytes = client_preface();
    bytes.extend(request(1));
    tls.write_all(&bytes).unwrap();
    let first = read_until(&mut tls, |f| f.stream == 1 && f.flags & END_STREAM != 0).unwrap();
    let answer = first.last().unwrap();
    assert_eq!((answer.kind, answer.stream), (HEADERS, 1), "{first:?}");

    tls.write_all(&request(3)).unwrap();
    let second = read_until(&mut tls, |f| f.kind == DATA && f.stream == 0).unwrap();
    assert!(second.iter().all(|f| f.stream != 3), "{second:?}");
    assert_eq!(second.last().unwrap().payload, b"push-mock!");
    // As a client must: GOAWAY(PROTOCOL_ERROR). Nothing more arrives from the server.
    let goaway = [0, 0, 0, 3, 0, 0, 0, 1];
    tls.write_all(&RawFrame::new(GOAWAY, 0, 0, &goaway).encode())
        .unwrap();
    let rest = read_until(&mut tls, |_| false).unwrap_or_default();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(mock.wait_for_closed(1, SAFETY));
    assert_eq!(mock.broken_connections(), 1);
    // Both were processed, though the client saw only the first answer.
    let streams: Vec<u32> = mock.delivered().iter().map(|d| d.stream_id).collect();
    assert_eq!(streams, [1, 3]);
}

#[test]
fn apns_broken_connection_fails_processed_streams_with_a_library_error() {
    let options = Http2Options::default()
        .break_connection_after(2)
        .latency(Duration::from_millis(50));
    let (certs, mock) = start_apns(options);
    let (answered, failed, ended) = run(async {
        let mut client = connect(mock.addr(), &certs.client_config(true).unwrap()).await;
        client.round_trip().await;
        let tasks: Vec<_> = (0..6u8)
            .map(|n| {
                let send = client.send.clone();
                let request = apns_request(&mock, n);
                (n, smol::spawn(exchange(send, request)))
            })
            .collect();
        let mut answered = HashSet::new();
        let mut failed = HashSet::new();
        for (n, task) in tasks {
            match task.await {
                Ok((status, _)) => {
                    assert_eq!(status, 200);
                    answered.insert(device(n));
                }
                Err(error) => {
                    assert_library_error(&error);
                    failed.insert(device(n));
                }
            }
        }
        (answered, failed, client.driver.await)
    });
    assert_library_error(&ended.expect_err("the connection failed"));
    assert_eq!((answered.len(), failed.len()), (2, 4), "{answered:?}");
    assert!(mock.wait_for_closed(1, SAFETY));
    assert_eq!(mock.broken_connections(), 1);
    let delivered: HashSet<String> = mock.delivered().into_iter().map(|d| d.token).collect();
    assert!(delivered.is_superset(&answered), "{delivered:?}");
    let processed_but_failed: Vec<_> = failed.intersection(&delivered).collect();
    assert!(
        !processed_but_failed.is_empty(),
        "the answer replaced by the malformed frame was processed: {delivered:?}"
    );
}

#[test]
fn fcm_broken_connection_fails_a_processed_request_with_a_library_error() {
    let (certs, mock, access) = start_fcm(|options| options.break_connection_after(2));
    let third = run(async {
        let client = connect(mock.addr(), &certs.client_config(false).unwrap()).await;
        for n in 0..2 {
            let request = fcm_request(&mock, &access, &format!("device-{n}"));
            let (status, _) = exchange(client.send.clone(), request).await.unwrap();
            assert_eq!(status, 200);
        }
        let request = fcm_request(&mock, &access, "device-2");
        let third = exchange(client.send.clone(), request).await;
        // The connection is gone for good.
        let request = fcm_request(&mock, &access, "device-3");
        let later = exchange(client.send.clone(), request).await;
        assert_library_error(&later.expect_err("a dead connection"));
        third
    });
    assert_library_error(&third.expect_err("the third answer was replaced"));
    assert!(mock.wait_for_closed(1, SAFETY));
    assert_eq!(mock.broken_connections(), 1);
    // The third request was delivered although its sender saw an error.
    let tokens: Vec<_> = mock
        .delivered()
        .into_iter()
        .map(|d| d.target.token().unwrap().to_owned())
        .collect();
    assert_eq!(tokens, ["device-0", "device-1", "device-2"]);
}
