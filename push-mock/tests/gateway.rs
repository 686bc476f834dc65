//! The APNs gateway mock, driven by a blocking rustls client.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use push_mock::{Certificates, GatewayOptions, MockGateway};
use push_proto::apns::{ErrorResponse, Format, Frame, Status};
use rustls::{ClientConfig, ProtocolVersion};

fn start(options: GatewayOptions) -> (Certificates, MockGateway) {
    let certs = Certificates::generate().unwrap();
    let gateway = MockGateway::start(options, &certs).unwrap();
    (certs, gateway)
}

fn client(certs: &Certificates) -> Arc<ClientConfig> {
    certs.client_config(true).unwrap()
}

/// Sends `bytes` in one write, then reads everything until the server closes.
fn send_and_read(gateway: &MockGateway, certs: &Certificates, bytes: &[u8]) -> Vec<u8> {
    let mut stream = tls(gateway.addr(), client(certs));
    stream.write_all(bytes).unwrap();
    stream.flush().unwrap();
    let (bytes, error) = read_to_close(&mut stream);
    // The server always ends with close_notify: a clean end of stream, never a reset.
    assert!(error.is_none(), "{error:?}");
    bytes
}

#[test]
fn accepts_frames_of_every_format_and_records_them() {
    let (certs, gateway) = start(GatewayOptions::default());
    let mut enhanced = frame(2, 0x22);
    enhanced.format = Format::Enhanced;
    enhanced.priority = None;
    let simple = Frame {
        format: Format::Simple,
        token: token(3),
        payload: payload(3),
        identifier: None,
        expiry: None,
        priority: None,
    };
    let frames = [
        Frame::framed(token(1), payload(1), 0x11, 1_700_000_000, 5),
        enhanced,
        simple,
    ];
    let mut stream = tls(gateway.addr(), client(&certs));
    stream.write_all(&encode(&frames)).unwrap();
    // Success is silent: closing and seeing the server close too proves it read everything.
    assert_eq!(close(stream), b"");

    let accepted = gateway.accepted();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted[0].token, token(1));
    assert_eq!(accepted[0].identifier, 0x11);
    assert_eq!(accepted[0].payload, payload(1));
    assert_eq!(accepted[0].expiry, Some(1_700_000_000));
    assert_eq!(accepted[0].priority, Some(5));
    assert_eq!(accepted[1].format, Format::Enhanced);
    assert_eq!(accepted[1].identifier, 0x22);
    assert_eq!(accepted[2].format, Format::Simple);
    assert_eq!(accepted[2].identifier, 0);
    assert!(accepted.iter().all(|a| a.connection == 0));
    assert_eq!(gateway.total_accepted(), 3);
    assert_eq!(gateway.accepted_count(&token(2)), 1);
    assert_eq!(gateway.accepted_count(&token(9)), 0);
    assert_eq!(gateway.connections(), 1);
    assert!(gateway.rejected().is_empty());
    assert!(gateway.error_responses().is_empty());
}

#[test]
fn many_frames_in_many_writes_split_anywhere() {
    let (certs, gateway) = start(GatewayOptions::default());
    let frames: Vec<Frame> = (0..2000).map(|i| frame((i % 7) as u8, i)).collect();
    let bytes = encode(&frames);
    let mut stream = tls(gateway.addr(), client(&certs));
    // Odd-sized writes, so frames straddle reads.
    for chunk in bytes.chunks(997) {
        stream.write_all(chunk).unwrap();
    }
    assert!(gateway.wait_for_accepted(2000, SAFETY));
    assert_eq!(close(stream), b"");
    let ids: Vec<u32> = gateway.accepted().iter().map(|a| a.identifier).collect();
    assert_eq!(ids, (0..2000).collect::<Vec<_>>());
    assert_eq!(gateway.accepted_count(&token(0)), 286);
}

#[test]
fn bad_token_gets_status_8_and_later_frames_are_discarded() {
    let options = GatewayOptions {
        bad_tokens: HashSet::from([token(66)]),
        ..GatewayOptions::default()
    };
    let (certs, gateway) = start(options);
    let frames = [frame(1, 1), frame(66, 2), frame(3, 3), frame(4, 4)];
    let mut stream = tls(gateway.addr(), client(&certs));
    stream.write_all(&encode(&frames)).unwrap();
    // A later write: the server has answered or is about to; either way it must not count.
    let _ = stream.write_all(&encode(&[frame(5, 5)]));
    let (answer, error) = read_to_close(&mut stream);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(answer, hex("080800000002"));
    assert_eq!(
        ErrorResponse::decode(&answer).unwrap(),
        Some(ErrorResponse {
            status: Status::InvalidToken,
            identifier: 2
        })
    );
    drop(stream);
    assert!(gateway.wait_for_closed(1, SAFETY));
    assert_eq!(gateway.rejected(), vec![(token(66), 2)]);
    assert_eq!(gateway.total_accepted(), 1);
    for later in [3, 4, 5] {
        assert_eq!(gateway.accepted_count(&token(later)), 0);
    }

    // The client resends the rest on a new connection, as Apple required.
    let answer = send_and_read_after_close(&gateway, &certs, &encode(&frames[2..]));
    assert_eq!(answer, b"");
    assert_eq!(gateway.connections(), 2);
    assert_eq!(gateway.accepted_count(&token(3)), 1);
    assert_eq!(gateway.accepted().last().unwrap().connection, 1);
}

fn send_and_read_after_close(gateway: &MockGateway, certs: &Certificates, bytes: &[u8]) -> Vec<u8> {
    let mut stream = tls(gateway.addr(), client(certs));
    stream.write_all(bytes).unwrap();
    close(stream)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bad_token_in_a_simple_frame_closes_without_an_answer() {
    let options = GatewayOptions {
        bad_tokens: HashSet::from([token(66)]),
        ..GatewayOptions::default()
    };
    let (certs, gateway) = start(options);
    let mut simple = frame(66, 9);
    simple.format = Format::Simple;
    assert_eq!(send_and_read(&gateway, &certs, &encode(&[simple])), b"");
    assert_eq!(gateway.rejected(), vec![(token(66), 0)]);
    assert!(gateway.error_responses().is_empty());
}

#[test]
fn client_certificate_required() {
    let options = GatewayOptions {
        require_client_cert: true,
        ..GatewayOptions::default()
    };
    let (certs, gateway) = start(options);

    // Without a certificate: in TLS 1.3 the client may finish its side of the handshake
    // before the server's alert arrives, so look at the first read too.
    let failed = match try_tls(gateway.addr(), certs.client_config(false).unwrap()) {
        Err(_) => true,
        Ok(mut stream) => read_to_close(&mut stream).1.is_some(),
    };
    assert!(failed, "a client without a certificate must be refused");
    assert!(gateway.wait_for_handshake_failures(1, SAFETY));

    // A certificate from another CA is refused too.
    let stranger = Certificates::generate().unwrap();
    let other =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(certs.root_store())
            .with_client_auth_cert(
                vec![stranger.client_cert_der().clone()],
                stranger.client_key_der(),
            )
            .unwrap();
    let failed = match try_tls(gateway.addr(), Arc::new(other)) {
        Err(_) => true,
        Ok(mut stream) => read_to_close(&mut stream).1.is_some(),
    };
    assert!(failed, "a certificate from another CA must be refused");
    assert!(gateway.wait_for_handshake_failures(2, SAFETY));

    // With the right certificate it works.
    let answer = send_and_read_after_close(&gateway, &certs, &encode(&[frame(1, 1)]));
    assert_eq!(answer, b"");
    assert_eq!(gateway.total_accepted(), 1);
    assert_eq!(gateway.connections(), 1);
}

#[test]
fn untrusted_server_certificate_is_refused_by_the_client() {
    let (_, gateway) = start(GatewayOptions::default());
    let stranger = Certificates::generate().unwrap();
    let error = try_tls(gateway.addr(), stranger.client_config(true).unwrap()).unwrap_err();
    assert!(
        matches!(error, rustls::Error::InvalidCertificate(_)),
        "{error:?}"
    );
    assert!(gateway.wait_for_handshake_failures(1, SAFETY));
    assert_eq!(gateway.connections(), 0);
}

#[test]
fn tls12_only_client_is_served() {
    let (certs, gateway) = start(GatewayOptions {
        require_client_cert: true,
        ..GatewayOptions::default()
    });
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(certs.root_store())
            .with_client_auth_cert(
                vec![certs.client_cert_der().clone()],
                certs.client_key_der(),
            )
            .unwrap();
    let mut stream = tls(gateway.addr(), Arc::new(config));
    assert_eq!(
        stream.conn.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    stream
        .write_all(&encode(&[frame(1, 1), frame(2, 2)]))
        .unwrap();
    assert_eq!(close(stream), b"");
    assert_eq!(gateway.total_accepted(), 2);
}

#[test]
fn close_every_closes_silently_and_discards_the_rest() {
    let (certs, gateway) = start(GatewayOptions {
        close_every: Some(2),
        ..GatewayOptions::default()
    });
    let frames: Vec<Frame> = (1..=5).map(|i| frame(i as u8, i)).collect();
    assert_eq!(send_and_read(&gateway, &certs, &encode(&frames)), b"");
    let ids = |g: &MockGateway| {
        g.accepted()
            .iter()
            .map(|a| a.identifier)
            .collect::<Vec<_>>()
    };
    assert!(gateway.wait_for_closed(1, SAFETY));
    assert_eq!(ids(&gateway), vec![1, 2]);
    // Resend the rest: two more on the next connection.
    assert_eq!(send_and_read(&gateway, &certs, &encode(&frames[2..])), b"");
    assert!(gateway.wait_for_closed(2, SAFETY));
    assert_eq!(ids(&gateway), vec![1, 2, 3, 4]);
    assert_eq!(gateway.accepted()[3].connection, 1);
    assert!(gateway.error_responses().is_empty());
}

#[test]
fn shutdown_after_names_the_last_accepted_identifier() {
    let (certs, gateway) = start(GatewayOptions {
        shutdown_after: Some(3),
        ..GatewayOptions::default()
    });
    let frames: Vec<Frame> = (1..=5).map(|i| frame(i as u8, 100 + i)).collect();
    let answer = send_and_read(&gateway, &certs, &encode(&frames));
    assert_eq!(answer, hex("080a00000067"));
    assert_eq!(gateway.total_accepted(), 3);
    assert_eq!(
        gateway.error_responses(),
        vec![ErrorResponse {
            status: Status::Shutdown,
            identifier: 103
        }]
    );
}

#[test]
fn malformed_frames_are_answered_then_closed() {
    let (certs, gateway) = start(GatewayOptions::default());
    // An unknown command: processing error naming identifier 0.
    assert_eq!(
        send_and_read(&gateway, &certs, &[9, 0, 0, 0, 0, 0, 0]),
        hex("080100000000")
    );
    // A 31-byte token in a frame with identifier 7: invalid token size naming 7.
    let mut bad = vec![2, 0, 0, 0, 0];
    bad.extend_from_slice(&[1, 0, 31]);
    bad.extend_from_slice(&[0xaa; 31]);
    bad.extend_from_slice(&[2, 0, 2, b'{', b'}']);
    bad.extend_from_slice(&[3, 0, 4, 0, 0, 0, 7]);
    let len = (bad.len() - 5) as u32;
    bad[1..5].copy_from_slice(&len.to_be_bytes());
    let mut good_then_bad = encode(&[frame(1, 1)]);
    good_then_bad.extend_from_slice(&bad);
    assert_eq!(
        send_and_read(&gateway, &certs, &good_then_bad),
        hex("080500000007")
    );
    assert_eq!(gateway.total_accepted(), 1);
    // Garbage after a complete frame, with a hostile frame length: no panic, an answer.
    let mut hostile = encode(&[frame(2, 2)]);
    hostile.extend_from_slice(&[2, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        send_and_read(&gateway, &certs, &hostile),
        hex("080100000000")
    );
    assert_eq!(gateway.total_accepted(), 2);
    assert_eq!(gateway.error_responses().len(), 3);
}

#[test]
fn slow_reader_still_gets_everything() {
    let (certs, gateway) = start(GatewayOptions {
        read_delay: Some(Duration::from_millis(5)),
        ..GatewayOptions::default()
    });
    let frames: Vec<Frame> = (0..200).map(|i| frame(1, i)).collect();
    let mut stream = tls(gateway.addr(), client(&certs));
    for frame in &frames {
        stream
            .write_all(&encode(std::slice::from_ref(frame)))
            .unwrap();
    }
    assert_eq!(close(stream), b"");
    assert_eq!(gateway.total_accepted(), 200);
}

#[test]
fn plain_tcp_garbage_does_not_hurt_the_server() {
    let (certs, gateway) = start(GatewayOptions::default());
    let mut raw = tcp(gateway.addr());
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    drop(raw);
    assert!(gateway.wait_for_handshake_failures(1, SAFETY));
    let answer = send_and_read_after_close(&gateway, &certs, &encode(&[frame(1, 1)]));
    assert_eq!(answer, b"");
    assert_eq!(gateway.total_accepted(), 1);
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let (certs, gateway) = start(GatewayOptions::default());
    let addr = gateway.addr();
    // An open connection does not keep the server alive.
    let stream = tls(addr, client(&certs));
    drop(gateway);
    drop(stream);
    assert!(TcpStream::connect_timeout(&addr, SAFETY).is_err());
}

#[test]
fn usable_from_an_async_client_on_smol() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let options = GatewayOptions {
        bad_tokens: HashSet::from([token(66)]),
        ..GatewayOptions::default()
    };
    let (certs, gateway) = start(options);
    let answer = smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(gateway.addr()).await.unwrap();
        let connector = futures_rustls::TlsConnector::from(client(&certs));
        let name = rustls::pki_types::ServerName::try_from(Certificates::SERVER_NAME).unwrap();
        let mut stream = connector.connect(name, tcp).await.unwrap();
        stream
            .write_all(&encode(&[frame(1, 1), frame(66, 2), frame(3, 3)]))
            .await
            .unwrap();
        stream.flush().await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    });
    assert_eq!(answer, hex("080800000002"));
    assert_eq!(gateway.total_accepted(), 1);
}

#[test]
fn random_garbage_never_stops_the_server() {
    let (certs, gateway) = start(GatewayOptions::default());
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..40 {
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Mostly plausible commands, so the decoder gets past the first byte.
        if let Some(first) = bytes.first_mut() {
            *first %= 4;
        }
        let mut stream = tls(gateway.addr(), client(&certs));
        let _ = stream.write_all(&bytes);
        // Either an answer and a close, or silence until we close: both end cleanly.
        let answer = close(stream);
        assert!(
            answer.is_empty() || answer.len() == 6,
            "round {round}: {answer:?}"
        );
    }
    let answer = send_and_read_after_close(&gateway, &certs, &encode(&[frame(1, 1)]));
    assert_eq!(answer, b"");
    assert_eq!(gateway.accepted_count(&token(1)), 1);
    assert!(gateway.wait_for_closed(41, SAFETY));
}

#[test]
fn stalled_reads_take_nothing_until_resumed() {
    let (certs, gateway) = start(GatewayOptions::default());
    gateway.stall_reads();
    let frames: Vec<Frame> = (0..10).map(|i| frame(i as u8, i)).collect();
    let mut stream = tls(gateway.addr(), client(&certs));
    stream.write_all(&encode(&frames)).unwrap();
    stream.flush().unwrap();
    // Can only fail when the stall does not hold: a slow machine makes it pass, never fail.
    assert!(!gateway.wait_for_accepted(1, Duration::from_millis(300)));
    gateway.resume_reads();
    assert!(gateway.wait_for_accepted(10, SAFETY));
    assert_eq!(close(stream), b"");
}
