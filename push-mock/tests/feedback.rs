//! The APNs feedback mock, read by a blocking rustls client.

mod common;

use bytes::Bytes;
use common::*;
use push_mock::{Certificates, MockFeedback};
use push_proto::apns::{FeedbackDecoder, FeedbackTuple};

fn tuples() -> Vec<FeedbackTuple> {
    vec![
        FeedbackTuple::for_token(1_700_000_000, &token(1)),
        FeedbackTuple::for_token(1_404_358_249, &token(2)),
        FeedbackTuple::new(819_504_000, Bytes::from_static(b"short token")),
        FeedbackTuple::for_token(7, &token(3)),
    ]
}

/// Reads the whole stream, feeding the decoder read by read; returns the tuples and the
/// number of reads.
fn fetch(
    feedback: &MockFeedback,
    certs: &Certificates,
    client_auth: bool,
) -> (Vec<FeedbackTuple>, usize) {
    let mut stream = tls(feedback.addr(), certs.client_config(client_auth).unwrap());
    let mut decoder = FeedbackDecoder::new();
    let mut received = Vec::new();
    let mut reads = 0;
    let mut buf = [0; 4096];
    loop {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        reads += 1;
        decoder.handle_input(&buf[..n]);
        while let Some(tuple) = decoder.poll_tuple() {
            received.push(tuple);
        }
    }
    decoder.finish().unwrap();
    close(stream);
    (received, reads)
}

#[test]
fn split_writes_deliver_every_tuple() {
    let certs = Certificates::generate().unwrap();
    let feedback = MockFeedback::start(tuples(), true, false, &certs).unwrap();
    let (received, _) = fetch(&feedback, &certs, false);
    assert_eq!(received, tuples());
    // Every connection gets the whole list.
    let (again, _) = fetch(&feedback, &certs, false);
    assert_eq!(again, tuples());
    assert!(feedback.wait_for_served(2, SAFETY));
    assert_eq!(feedback.connections(), 2);
}

#[test]
fn one_write_delivers_every_tuple() {
    let certs = Certificates::generate().unwrap();
    let many: Vec<FeedbackTuple> = (0..500)
        .map(|i| FeedbackTuple::for_token(i, &token((i % 256) as u8)))
        .collect();
    let feedback = MockFeedback::start(many.clone(), false, false, &certs).unwrap();
    assert_eq!(fetch(&feedback, &certs, false).0, many);
}

#[test]
fn empty_list_just_closes() {
    let certs = Certificates::generate().unwrap();
    let feedback = MockFeedback::start(Vec::new(), true, false, &certs).unwrap();
    assert_eq!(fetch(&feedback, &certs, false), (Vec::new(), 0));
}

#[test]
fn client_certificate_required() {
    let certs = Certificates::generate().unwrap();
    let feedback = MockFeedback::start(tuples(), true, true, &certs).unwrap();
    let refused = match try_tls(feedback.addr(), certs.client_config(false).unwrap()) {
        Err(_) => true,
        Ok(mut stream) => read_to_close(&mut stream).1.is_some(),
    };
    assert!(refused);
    assert!(feedback.wait_for_handshake_failures(1, SAFETY));
    assert_eq!(fetch(&feedback, &certs, true).0, tuples());
    assert_eq!(feedback.connections(), 1);
}

#[test]
fn oversize_token_is_refused_at_start() {
    let certs = Certificates::generate().unwrap();
    let huge = FeedbackTuple::new(1, vec![0; FeedbackTuple::MAX_TOKEN_LEN + 1]);
    assert!(MockFeedback::start(vec![huge], false, false, &certs).is_err());
}
