//! Criterion benchmarks of Web Push's per-message work in the core: encrypting one message for
//! one subscription (a new P-256 key pair, ECDH, HKDF, AES-128-GCM) and building its request
//! with the VAPID token cached for the origin (key pairs made inside `ring`, and through the
//! randomness seam by `p256`), the same with a token signed per message, VAPID
//! signing alone, and the engine handing out 1,000 requests; beside a raw AES-128-GCM seal of
//! the same bytes (key set up once) and a memcpy of the body.
//!
//! On a small machine shared with other jobs absolute figures drift; the ratios to the raw
//! seal measured in the same run drift much less.
//!
//! Run with `cargo bench -p push-proto --bench webpush` (see BENCHMARKS.md at the repository
//! root).

// Bench inputs are constants built in code; an `expect` failing here means the benchmark
// itself is wrong, and it should stop loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use push_proto::Payload;
use push_proto::engine::{Action, Batch, Credential, Grant, Input, Protocol};
use push_proto::webpush::{
    self, Message, Options, Origin, Subscription, Vapid, VapidCredential, VapidKey, WebPushProtocol,
};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The system's random bytes, through [`Randomness::fill`](webpush::Randomness::fill) only:
/// the key pairs are then made by `p256`.
struct ThroughTheSeam(webpush::SystemRandomness);

impl webpush::Randomness for ThroughTheSeam {
    fn fill(&self, dest: &mut [u8]) -> Result<(), webpush::RandomnessError> {
        self.0.fill(dest)
    }
}

/// Requests handed out per iteration of the sender benchmark.
const N: usize = 1_000;
const ORIGIN: &str = "https://push.example.net";

/// Short runs: the machine has 2 cores shared with other jobs.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

fn subscription(i: usize) -> Subscription {
    Subscription::new(
        &format!("{ORIGIN}/push/{i:08}"),
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        "BTBZMqHH6r4Tts7J_aSIgg",
    )
    .expect("a valid subscription")
}

/// A shipping notice in the plain form: 110 bytes of plaintext, a 213-byte body.
fn message() -> Message {
    let payload = Payload::new()
        .title("Order shipped")
        .body("Your order #48213 has shipped and arrives Thursday")
        .data("order", "48213");
    Message::new(&payload, &Options::new().ttl(3600).topic("order-48213")).expect("a message")
}

fn credential(now: Instant) -> VapidCredential {
    let key =
        VapidKey::from_base64url("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").expect("a key");
    let vapid = Vapid::new(key, "mailto:push@example.com").expect("a subject");
    let origin = Origin::parse(ORIGIN).expect("an origin");
    VapidCredential::new(vapid, origin, now, 1_700_000_000)
}

/// The authorization `credential` grants at `now`, and its generation.
fn grant(credential: &mut VapidCredential, now: Instant) -> (http::HeaderValue, u64) {
    match credential.grant(now) {
        Grant::Ready {
            authorization: Some(authorization),
            generation,
        } => (authorization, generation),
        other => panic!("no token: {other:?}"),
    }
}

/// Per message: encryption and request with the cached VAPID token, the same with a token
/// signed per message, signing alone, and the raw AES-128-GCM seal of the same bytes.
fn per_message(c: &mut Criterion) {
    let now = Instant::now();
    let protocol = WebPushProtocol::new(Origin::parse(ORIGIN).expect("an origin"));
    let subscription = subscription(0);
    let message = message();
    let mut group = c.benchmark_group("webpush_message");
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: message.encrypted_len() as u64,
    });

    let mut cached = credential(now);
    group.bench_function("encrypt_request_cached_vapid", |b| {
        b.iter(|| {
            let (authorization, _) = grant(&mut cached, now);
            let request = protocol
                .request(
                    Batch::one(black_box(&subscription)),
                    &message,
                    &(),
                    Some(&authorization),
                )
                .expect("a request");
            black_box(request);
        });
    });
    // The same through the randomness seam: the key pair drawn as a scalar and made by
    // `p256` (the path RFC 8291's worked example takes), instead of inside `ring`.
    let seam = WebPushProtocol::new(Origin::parse(ORIGIN).expect("an origin"))
        .with_randomness(ThroughTheSeam(webpush::SystemRandomness::new()));
    let mut cached_seam = credential(now);
    group.bench_function("encrypt_request_cached_vapid_p256_keypair", |b| {
        b.iter(|| {
            let (authorization, _) = grant(&mut cached_seam, now);
            let request = seam
                .request(
                    Batch::one(black_box(&subscription)),
                    &message,
                    &(),
                    Some(&authorization),
                )
                .expect("a request");
            black_box(request);
        });
    });
    let mut fresh = credential(now);
    group.bench_function("encrypt_request_vapid_signed_each", |b| {
        b.iter(|| {
            let (authorization, generation) = grant(&mut fresh, now);
            fresh.handle_rejected(generation);
            let request = protocol
                .request(
                    Batch::one(black_box(&subscription)),
                    &message,
                    &(),
                    Some(&authorization),
                )
                .expect("a request");
            black_box(request);
        });
    });
    let mut signing = credential(now);
    group.bench_function("vapid_sign", |b| {
        b.iter(|| {
            let (authorization, generation) = grant(&mut signing, now);
            signing.handle_rejected(generation);
            black_box(authorization);
        });
    });

    // The same record bytes (plaintext and delimiter) sealed with a key set up once.
    let mut record = message.plaintext().to_vec();
    record.push(2);
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).expect("a key"));
    let mut buffer = Vec::with_capacity(record.len() + 16);
    group.bench_function("raw_aes128gcm_seal", |b| {
        b.iter(|| {
            buffer.clear();
            buffer.extend_from_slice(black_box(&record));
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key([9; 12]),
                Aad::empty(),
                &mut buffer,
            )
            .expect("sealed");
            black_box(buffer.as_slice());
        });
    });
    let body = vec![0u8; message.encrypted_len()];
    let mut out = Vec::with_capacity(body.len());
    group.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&body));
            black_box(out.as_slice());
        });
    });
    group.finish();
}

/// A sender with one open connection allowing 1,000 streams and 1,000 messages queued.
fn sender_with(
    message: &Message,
    subscriptions: &[Subscription],
    now: Instant,
) -> webpush::Sender<u32> {
    let mut config = webpush::Config::default();
    config.max_in_flight = N as u32;
    let mut sender = webpush::sender(config, credential(now)).expect("a valid config");
    for (tag, subscription) in (0u32..).zip(subscriptions) {
        sender
            .queue(subscription.clone(), message.clone(), tag, now)
            .expect("max_pending is above N");
    }
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        panic!("a connection first");
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: N as u32,
        },
        now,
    );
    sender
}

/// The engine handing out 1,000 requests: one encryption each, one VAPID token for all.
fn sender_requests(c: &mut Criterion) {
    let now = Instant::now();
    let message = message();
    let subscriptions: Vec<Subscription> = (0..N).map(subscription).collect();
    let mut group = c.benchmark_group("webpush_sender");
    group.throughput(Throughput::ElementsAndBytes {
        elements: N as u64,
        bytes: (N * message.encrypted_len()) as u64,
    });
    group.bench_function("sender_poll_1000_requests", |b| {
        b.iter_batched(
            || sender_with(&message, &subscriptions, now),
            |mut sender| {
                let sent = std::iter::from_fn(|| sender.poll_action(now))
                    .map(|action| match action {
                        Action::Send { request, .. } => black_box(request.body().len()),
                        other => panic!("unexpected {other:?}"),
                    })
                    .count();
                assert_eq!(sent, N);
                sender
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_message, sender_requests
}
criterion_main!(benches);
