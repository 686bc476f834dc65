//! The scenarios. Each is `pub async fn name<R: Runtime>()`, listed in [`crate::scenarios!`].

use std::collections::HashSet;
use std::time::Duration;

use futures_lite::StreamExt;
use push_client::{Error, HttpConfig, Runtime};
use push_mock::{Certificates, GatewayOptions, MockFeedback};
use push_proto::apns::{FeedbackTuple, Status};
use push_proto::{Device, DeviceError, Payload};

use crate::{
    Script, builder, by_token, gcm_options, localhost, mock_apns, mock_gcm, mock_tls, payload,
    random_positions, send_all, start_gateway, start_gcm, token, within,
};

const LIMIT: Duration = Duration::from_secs(300);

fn certs() -> Certificates {
    Certificates::generate().expect("certificates")
}

/// 100,000 iOS devices, 1% bad tokens at random positions: every good token reaches the
/// gateway exactly once, every bad one has exactly one `invalid_device`, nothing else happens.
pub async fn apns_bad_tokens_are_reported_and_everything_else_delivered_once<R: Runtime>() {
    const TOTAL: u32 = 100_000;
    let certs = certs();
    let bad = random_positions(TOTAL, (TOTAL / 100) as usize, 7);
    let options = GatewayOptions {
        bad_tokens: bad.iter().map(|&n| token(n)).collect(),
        require_client_cert: true,
        ..GatewayOptions::default()
    };
    let gateway = start_gateway(options, &certs);
    let (client, feedback, report) = send_ios::<R>(&gateway, &certs, TOTAL).await;

    assert_bad_rejected_and_good_accepted_once(&gateway, &feedback, TOTAL, |n| bad.contains(&n));
    assert_eq!(report.pushed, u64::from(TOTAL));
    assert_eq!(report.delivered, u64::from(TOTAL) - bad.len() as u64);
    assert_eq!(report.failed_with("invalid_device"), bad.len() as u64);
    assert_eq!(report.failed_total(), bad.len() as u64);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(client.stats().late_verdicts, 0);
}

/// The gateway closes silently after every 50 frames: each device gets exactly one feedback;
/// a device reported delivered really reached the gateway; one that never did is reported.
pub async fn apns_silent_closes_lose_nothing<R: Runtime>() {
    const TOTAL: u32 = 2_000;
    let certs = certs();
    let options = GatewayOptions {
        close_every: Some(50),
        ..GatewayOptions::default()
    };
    let gateway = start_gateway(options, &certs);
    // The binary protocol's one timing assumption: a silent close must be seen within the
    // grace period. 100 ms was too short on a loaded 2-core CI machine (a close noticed
    // later let notifications the gateway dropped count as delivered); the default is 1 s,
    // which makes this scenario take 30 s.
    let apns = mock_apns(&localhost(&gateway), &certs).grace(Duration::from_millis(500));
    let client = builder::<R>().apns(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    let outcomes = by_token(&feedback);
    assert_eq!(feedback.len(), TOTAL as usize);
    for n in 0..TOTAL {
        let token = token(n);
        let outcome = outcomes[&token.to_hex()].as_slice();
        match outcome {
            [None] => assert!(
                gateway.accepted_count(&token) >= 1,
                "delivered {n} never arrived"
            ),
            [Some("unconfirmed")] => {}
            other => panic!("device {n}: {other:?}"),
        }
        if gateway.accepted_count(&token) == 0 {
            assert_eq!(outcome, [Some("unconfirmed")], "device {n} vanished");
        }
    }
    assert!(report.delivered > 0);
    assert_eq!(
        report.delivered + report.failed_with("unconfirmed"),
        u64::from(TOTAL)
    );
}

/// The gateway shuts down (status 10) after every 300 frames: everything after the last good
/// notification is resent on a new connection, so every device is delivered exactly once.
pub async fn apns_shutdown_resends_the_rest<R: Runtime>() {
    const TOTAL: u32 = 3_000;
    let certs = certs();
    let options = GatewayOptions {
        shutdown_after: Some(300),
        ..GatewayOptions::default()
    };
    let gateway = start_gateway(options, &certs);
    let (_client, feedback, report) = send_ios::<R>(&gateway, &certs, TOTAL).await;
    assert_eq!(feedback.len(), TOTAL as usize);
    assert_eq!(report.delivered, u64::from(TOTAL));
    for n in 0..TOTAL {
        assert_eq!(gateway.accepted_count(&token(n)), 1, "device {n}");
    }
    assert!(gateway.connections() >= 10);
}

/// A window of 1,000 ended by checkpoints, three bad tokens, and a grace period longer than
/// the scenario's time limit, so nothing can be confirmed by waiting: every full window is
/// confirmed by its checkpoint's answer, a bad token resends only what followed it, every good
/// device reaches the gateway exactly once, every bad one gets one `invalid_device`.
pub async fn apns_checkpoints_confirm_full_windows_and_errors_resend_only_the_rest<R: Runtime>() {
    // Windows: 0-999, 1000-1500 (bad 1500), 1501-2500, 2501-3500, 3501-4200 (bad 4200),
    // 4201-5200, 5201-6200, 6201-7200, 7201-7777 (bad 7777), 7778-8777, 8778-9777: the last
    // one is full, so no notification is left for a grace period to confirm.
    const TOTAL: u32 = 9_778;
    const BAD: [u32; 3] = [1_500, 4_200, 7_777];
    let certs = certs();
    let options = GatewayOptions {
        bad_tokens: BAD.iter().map(|&n| token(n)).collect(),
        ..GatewayOptions::default()
    };
    let gateway = start_gateway(options, &certs);
    let apns = mock_apns(&localhost(&gateway), &certs)
        .resend_window(1_000)
        .grace(LIMIT * 2);
    let client = builder::<R>().apns(apns).build().expect("client");
    let devices = (0..TOTAL).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_bad_rejected_and_good_accepted_once(&gateway, &feedback, TOTAL, |n| BAD.contains(&n));
    assert_eq!(report.delivered, u64::from(TOTAL) - BAD.len() as u64);
    let answers = gateway.error_responses();
    let count = |status| answers.iter().filter(|a| a.status == status).count();
    assert_eq!(count(Status::MissingDeviceToken), 8, "one per full window");
    assert_eq!(count(Status::InvalidToken), BAD.len());
    assert_eq!(answers.len(), 11);
    assert_eq!(gateway.connections(), 11);
}

/// 20,000 GCM tokens mixing NotRegistered, InvalidRegistration, canonical ids and
/// Unavailable-then-ok, with 5% of requests answered 503 + Retry-After: every deliverable
/// token delivered exactly once, canonical ones carry `new_token`, invalid ones are
/// `invalid_device`.
pub async fn gcm_mixed_outcomes_with_503s<R: Runtime>() {
    const TOTAL: usize = 20_000;
    let name = |n: usize| format!("gcm-token-{n:05}");
    let mut options = gcm_options();
    options.unavailable_rate = 0.05;
    options.retry_after_secs = 0;
    // A seed whose draws answer 503 early (the 5th, 7th, 9th and 16th requests): the run
    // takes about 30 requests (full batches of 1,000, then the retries).
    options.seed = 17;
    for n in 0..TOTAL {
        let script = match n % 10 {
            1 => Script::NotRegistered,
            2 => Script::InvalidRegistration,
            3 => Script::Canonical(format!("canonical-{n}")),
            4 => Script::UnavailableFirst(2),
            _ => continue,
        };
        options = options.script(name(n), script);
    }
    let server = start_gcm(options);
    let client = builder::<R>()
        .gcm(mock_gcm(&server.endpoint()))
        .build()
        .expect("client");
    let devices = (0..TOTAL).map(|n| Device::android(name(n)));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;

    assert_eq!(feedback.len(), TOTAL);
    let delivered = server.delivered();
    for f in &feedback {
        let n: usize = f.device.token["gcm-token-".len()..]
            .parse()
            .expect("token number");
        let code = f.error.as_ref().map(|e| e.code());
        match n % 10 {
            1 | 2 => assert_eq!(code, Some("invalid_device"), "token {n}"),
            3 => {
                assert_eq!(code, None, "token {n}");
                assert_eq!(
                    f.new_token.as_deref(),
                    Some(format!("canonical-{n}").as_str())
                );
            }
            _ => assert_eq!(code, None, "token {n}"),
        }
        let expected = usize::from(code.is_none());
        assert_eq!(
            delivered.get(&name(n)).copied().unwrap_or(0),
            expected,
            "token {n}"
        );
    }
    assert!(server.statuses().contains(&503), "the 503s happened");
    assert!(server.max_batch() <= 1000);
    assert_eq!(report.new_tokens, (TOTAL / 10) as u64);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

/// A malformed token, an oversized payload and an unknown platform each get their feedback,
/// and every other device is still delivered.
pub async fn bad_input_gets_feedback_and_the_rest_goes_through<R: Runtime>() {
    let certs = certs();
    let gateway = start_gateway(GatewayOptions::default(), &certs);
    let gcm = start_gcm(gcm_options());
    let client = builder::<R>()
        .apns(mock_apns(&localhost(&gateway), &certs))
        .gcm(mock_gcm(&gcm.endpoint()))
        .build()
        .expect("client");
    let devices = vec![
        Device::ios(token(1).to_hex()),
        Device::ios("not-hex"),
        Device::android("good-android"),
        Device::android("has whitespace"),
        Device::ios(token(2).to_hex().to_uppercase()),
    ];
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    let outcomes = by_token(&feedback);
    assert_eq!(outcomes["not-hex"], [Some("invalid_token_format")]);
    assert_eq!(outcomes["has whitespace"], [Some("invalid_token_format")]);
    assert_eq!(outcomes[&token(1).to_hex()], [None]);
    assert_eq!(
        outcomes[&token(2).to_hex().to_uppercase()],
        [None],
        "token kept as given"
    );
    assert_eq!(outcomes["good-android"], [None]);
    assert_eq!(report.delivered, 3);

    // A payload too large for APNs fails every iOS device of its session, not the client.
    let huge = Payload::new().body("x".repeat(3000));
    let devices = vec![Device::ios(token(3).to_hex()), Device::android("also-good")];
    let (feedback, _) = within::<R, _>(LIMIT, send_all(client.send(huge), devices)).await;
    let outcomes = by_token(&feedback);
    assert_eq!(outcomes[&token(3).to_hex()], [Some("payload_too_large")]);
    assert_eq!(outcomes["also-good"], [None]);
    assert_eq!(gateway.accepted_count(&token(3)), 0);

    // A platform with no provider configured.
    let apns_only = builder::<R>()
        .apns(mock_apns(&localhost(&gateway), &certs))
        .build()
        .expect("client");
    let devices = vec![Device::android("nobody-sends-this")];
    let (feedback, _) = within::<R, _>(LIMIT, send_all(apns_only.send(payload()), devices)).await;
    assert_eq!(
        by_token(&feedback)["nobody-sends-this"],
        [Some("no_provider")]
    );
}

/// One feedback for each of the `total` numbered devices: `invalid_device` for a bad one, which
/// never reached the gateway; delivered for a good one, which reached it exactly once.
fn assert_bad_rejected_and_good_accepted_once(
    gateway: &push_mock::MockGateway,
    feedback: &[push_client::Feedback],
    total: u32,
    bad: impl Fn(u32) -> bool,
) {
    let outcomes = by_token(feedback);
    assert_eq!(feedback.len(), total as usize, "one feedback per device");
    for n in 0..total {
        let token = token(n);
        let outcome = &outcomes[&token.to_hex()];
        if bad(n) {
            assert_eq!(outcome, &[Some("invalid_device")], "bad device {n}");
            assert_eq!(gateway.accepted_count(&token), 0, "bad device {n}");
        } else {
            assert_eq!(outcome, &[None], "good device {n}");
            assert_eq!(gateway.accepted_count(&token), 1, "good device {n}");
        }
    }
}

/// Sends `total` numbered iOS devices through a new client of `gateway`; returns the client
/// (for its stats), the feedback and the report.
async fn send_ios<R: Runtime>(
    gateway: &push_mock::MockGateway,
    certs: &Certificates,
    total: u32,
) -> (
    push_client::Client<R>,
    Vec<push_client::Feedback>,
    push_client::Report,
) {
    let client = builder::<R>()
        .apns(mock_apns(&localhost(gateway), certs))
        .build()
        .expect("client");
    let devices = (0..total).map(|n| Device::ios(token(n).to_hex()));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    (client, feedback, report)
}

/// Sends one iOS device through a client and returns its feedback and report.
async fn one_ios_device<R: Runtime>(
    apns: push_client::ApnsConfig,
) -> (Vec<push_client::Feedback>, push_client::Report) {
    let client = builder::<R>().apns(apns).build().expect("client");
    let devices = vec![Device::ios(token(1).to_hex())];
    within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await
}

fn assert_tls_error(
    report: &push_client::Report,
    feedback: &[push_client::Feedback],
    needle: &str,
) {
    assert_eq!(feedback.len(), 1);
    assert_eq!(
        feedback[0].error.as_ref().map(|e| e.code()),
        Some("unavailable")
    );
    let error = report.errors.first().expect("a client-wide error");
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains(needle),
        "{error} should mention {needle}"
    );
}

/// A server certificate from an unknown CA: a clear TLS error, no hang.
pub async fn untrusted_server_certificate_is_a_clear_error<R: Runtime>() {
    let certs = certs();
    let gateway = start_gateway(GatewayOptions::default(), &certs);
    let strangers = Certificates::generate().expect("other CA");
    let apns = mock_apns(&localhost(&gateway), &strangers);
    let (feedback, report) = one_ios_device::<R>(apns).await;
    assert_tls_error(&report, &feedback, "invalid peer certificate");
    assert_eq!(gateway.total_accepted(), 0);
}

/// A certificate for another name than the one dialed: a clear TLS error.
pub async fn wrong_host_name_is_a_clear_error<R: Runtime>() {
    let certs = certs();
    let gateway = start_gateway(GatewayOptions::default(), &certs);
    let wrong = format!("127.0.0.2:{}", gateway.addr().port());
    let apns = mock_apns(&wrong, &certs);
    let client = builder::<R>().apns(apns).build().expect("client");
    let devices = vec![Device::ios(token(1).to_hex())];
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 1);
    assert!(feedback[0].error.is_some());
    let error = report.errors.first().expect("a client-wide error");
    assert!(
        matches!(
            error,
            Error::Tls { .. } | Error::Connect { .. } | Error::GatewayUnreachable { .. }
        ),
        "{error:?}"
    );
}

/// The gateway requires a client certificate and none is presented: a clear TLS error.
pub async fn missing_client_certificate_is_a_clear_error<R: Runtime>() {
    let certs = certs();
    let options = GatewayOptions {
        require_client_cert: true,
        ..GatewayOptions::default()
    };
    let gateway = start_gateway(options, &certs);
    let tls = push_client::Tls::default()
        .only_custom_roots()
        .add_ca_pem(certs.ca_pem.as_bytes())
        .expect("CA");
    let apns = mock_apns(&localhost(&gateway), &certs).tls(tls);
    let (feedback, report) = one_ios_device::<R>(apns).await;
    assert_tls_error(&report, &feedback, "certificate");
    assert_eq!(gateway.total_accepted(), 0);
}

/// A feedback reader that reads slowly: sending completes, and the feedback waiting in the
/// client never exceeds its configured bound: the feedback capacity plus what the GCM state
/// machine may hold.
pub async fn slow_feedback_reader_keeps_memory_bounded<R: Runtime>() {
    const TOTAL: usize = 3_000;
    let gcm = start_gcm(gcm_options());
    const FEEDBACK_CAPACITY: u64 = 64;
    const GCM_PENDING: usize = 200;
    let gcm_config = mock_gcm(&gcm.endpoint())
        .batch_size(100)
        .expect("batch size")
        .max_pending(GCM_PENDING);
    let client = builder::<R>()
        .gcm(gcm_config)
        .feedback_capacity(FEEDBACK_CAPACITY as usize)
        .queue_capacity(64)
        .build()
        .expect("client");
    let mut session = client.send(payload());
    let mut feedbacks = session.feedbacks();
    let runtime = R::default();
    let reader = async {
        let mut read = 0;
        while feedbacks.next().await.is_some() {
            read += 1;
            if read % 100 == 0 {
                runtime
                    .sleep_until(std::time::Instant::now() + Duration::from_millis(5))
                    .await;
            }
        }
        read
    };
    let writer = async {
        for n in 0..TOTAL {
            session
                .push(Device::android(format!("slow-{n}")))
                .await
                .expect("running");
        }
        session.finish().await.expect("running")
    };
    let (read, report) = within::<R, _>(LIMIT, futures_lite::future::zip(reader, writer)).await;
    assert_eq!(read, TOTAL);
    assert_eq!(report.delivered, TOTAL as u64);
    let stats = client.stats();
    assert!(stats.feedback_waiting_peak > 0, "the reader was slow");
    assert_eq!(stats.feedback_capacity, FEEDBACK_CAPACITY);
    let bound = FEEDBACK_CAPACITY + GCM_PENDING as u64;
    assert!(
        stats.feedback_waiting_peak <= bound,
        "waiting feedback {} exceeded the bound {bound}",
        stats.feedback_waiting_peak,
    );
}

/// The feedback stream is dropped early, or never taken: sending still completes.
pub async fn dropped_feedback_stream_does_not_block_sending<R: Runtime>() {
    const TOTAL: usize = 5_000;
    let gcm = start_gcm(gcm_options());
    let client = builder::<R>()
        .gcm(mock_gcm(&gcm.endpoint()))
        .feedback_capacity(16)
        .build()
        .expect("client");
    let android =
        |prefix: &'static str| (0..TOTAL).map(move |n| Device::android(format!("{prefix}-{n}")));

    let mut session = client.send(payload());
    drop(session.feedbacks());
    let report = within::<R, _>(LIMIT, push_and_finish(session, android("drop"))).await;
    assert_eq!(report.delivered, TOTAL as u64);
    assert_eq!(report.feedback_not_read, TOTAL as u64);

    let session = client.send(payload());
    let report = within::<R, _>(LIMIT, push_and_finish(session, android("never"))).await;
    assert_eq!(report.delivered, TOTAL as u64);
    assert_eq!(client.stats().feedback_waiting, 0);
}

/// Pushes every device, then finishes, without reading feedback.
async fn push_and_finish<R: Runtime>(
    mut session: push_client::Session<R>,
    devices: impl IntoIterator<Item = Device>,
) -> push_client::Report {
    for device in devices {
        session.push(device).await.expect("running");
    }
    session.finish().await.expect("running")
}

/// The feedback service writes its tuples in pieces that cross TLS records: all are reported.
pub async fn feedback_service_tuples_split_across_records<R: Runtime>() {
    let certs = certs();
    let tuples: Vec<FeedbackTuple> = (0..200)
        .map(|n| FeedbackTuple::for_token(1_700_000_000 + n, &token(n)))
        .collect();
    let service = MockFeedback::start(tuples, true, true, &certs).expect("feedback service");
    let apns = mock_apns("localhost:1", &certs)
        .feedback_service(&format!("localhost:{}", service.addr().port()))
        .expect("address");
    let client = builder::<R>().apns(apns).build().expect("client");
    let devices = within::<R, _>(LIMIT, client.fetch_inactive_devices())
        .await
        .expect("feedback service read");
    assert_eq!(devices.len(), 200);
    for (n, inactive) in (0..).zip(&devices) {
        assert_eq!(inactive.device.token, token(n).to_hex());
        assert_eq!(inactive.timestamp, 1_700_000_000 + n);
        assert!(
            inactive
                .feedback()
                .error
                .is_some_and(|e| e.is_invalid_device())
        );
    }
}

/// GCM answers 401: a client-wide error naming the authentication problem; nothing is retried
/// forever and every device gets its feedback.
pub async fn gcm_unauthorized_is_a_clear_error<R: Runtime>() {
    let gcm = start_gcm(gcm_options());
    let config = push_client::GcmConfig::new("wrong-key")
        .endpoint(&gcm.endpoint())
        .expect("endpoint");
    let client = builder::<R>().gcm(config).build().expect("client");
    let devices = (0..10).map(|n| Device::android(format!("t{n}")));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 10);
    assert!(
        feedback
            .iter()
            .all(|f| f.error.as_ref().is_some_and(|e| e.code() == "rejected"))
    );
    let error = report.errors.first().expect("a client-wide error");
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert!(error.to_string().contains("API key"), "{error}");
    assert_eq!(gcm.requests(), 1, "no retries of a 401");
    assert!(
        !format!("{error} {report:?}").contains("wrong-key"),
        "the key never shows"
    );
}

/// GCM over HTTPS with the mock CA: delivered, over reused keep-alive connections.
pub async fn gcm_over_https<R: Runtime>() {
    let certs = certs();
    let mut options = gcm_options();
    options.tls = Some(certs.clone());
    let gcm = start_gcm(options);
    let config = mock_gcm(&gcm.endpoint())
        .tls(mock_tls(&certs))
        .batch_size(100)
        .expect("batch size");
    let client = builder::<R>().gcm(config).build().expect("client");
    let devices = (0..2_000).map(|n| Device::android(format!("https-{n}")));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 2_000);
    assert_eq!(report.delivered, 2_000);
    // One request per batch of 100. A connection that breaks with a request on it (seen
    // once in a loaded CI run: 21 requests) resends that batch, counted as a retry and
    // reported as a transport failure: never an extra request the client did not count.
    let stats = client.stats().gcm.expect("GCM is configured");
    assert_eq!(
        gcm.requests() as u64,
        20 + stats.retries,
        "every request beyond one per batch is a counted retry: {stats:?}"
    );
    assert!(
        stats.retries <= stats.transport_failures,
        "a retry only after a broken connection: {stats:?}"
    );
    assert!(gcm.connections() <= 4, "{} connections", gcm.connections());
}

/// Several sessions at once on one client share one gateway connection.
pub async fn sessions_share_one_gateway_connection<R: Runtime>() {
    let certs = certs();
    let gateway = start_gateway(GatewayOptions::default(), &certs);
    let client = builder::<R>()
        .apns(mock_apns(&localhost(&gateway), &certs))
        .build()
        .expect("client");
    let first = send_all(
        client.send(payload()),
        (0..500).map(|n| Device::ios(token(n).to_hex())),
    );
    let second = send_all(
        client.send(Payload::new().body("second")),
        (500..1000).map(|n| Device::ios(token(n).to_hex())),
    );
    let ((a, _), (b, _)) = within::<R, _>(LIMIT, futures_lite::future::zip(first, second)).await;
    assert_eq!(a.len() + b.len(), 1000);
    assert!(a.iter().chain(&b).all(|f| f.is_delivered()));
    assert_eq!(gateway.connections(), 1);
    let tokens: HashSet<_> = gateway.accepted().into_iter().map(|a| a.token).collect();
    assert_eq!(tokens.len(), 1000);
}

/// An application hands push its own `surf::Client` for GCM (feature `surf`): every token is
/// delivered through it, with the same retries and outcomes.
pub async fn gcm_through_the_applications_surf_client<R: Runtime>() {
    let mut options = gcm_options().script("gone", Script::NotRegistered);
    options.unavailable_rate = 0.2;
    options.seed = 3;
    let gcm = start_gcm(options);
    let surf: surf::Client = surf::Config::new().try_into().expect("a surf client");
    let config = mock_gcm(&gcm.endpoint())
        .surf_client(surf)
        .batch_size(50)
        .expect("batch size");
    let client = builder::<R>().gcm(config).build().expect("client");
    let devices = (0..500)
        .map(|n| Device::android(format!("surf-{n}")))
        .chain([Device::android("gone")]);
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 501);
    assert_eq!(report.delivered, 500);
    assert_eq!(by_token(&feedback)["gone"], [Some("invalid_device")]);
    assert!(
        gcm.statuses().contains(&503),
        "retries went through surf too"
    );
    let delivered = gcm.delivered();
    assert!((0..500).all(|n| delivered.get(&format!("surf-{n}")) == Some(&1)));
}

/// A session dropped without `finish` (and its stream with it): what was pushed is still
/// delivered, nothing blocks, and the client serves the next session.
pub async fn a_dropped_session_still_delivers_and_the_client_goes_on<R: Runtime>() {
    let gcm = start_gcm(gcm_options());
    let client = builder::<R>()
        .gcm(mock_gcm(&gcm.endpoint()))
        .build()
        .expect("client");
    let dropped = async {
        let mut session = client.send(payload());
        let _stream = session.feedbacks();
        for n in 0..300 {
            session
                .push(Device::android(format!("dropped-{n}")))
                .await
                .expect("running");
        }
    };
    within::<R, _>(LIMIT, dropped).await;
    let devices = (0..300).map(|n| Device::android(format!("next-{n}")));
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 300);
    assert_eq!(report.delivered, 300);
    let waited = within::<R, _>(LIMIT, async {
        let runtime = R::default();
        while gcm
            .delivered()
            .keys()
            .filter(|t| t.starts_with("dropped-"))
            .count()
            < 300
        {
            runtime
                .sleep_until(std::time::Instant::now() + Duration::from_millis(10))
                .await;
        }
    });
    waited.await;
    assert!(gcm.delivered().values().all(|&count| count == 1));
}

/// GCM answers one token with a result larger than the client reads (over 1 MiB): the body
/// is cut while it is read, that token's request counts as an attempt without an answer each
/// time (on a new connection: the cut one is not reused) and ends `unavailable` after
/// `max_unanswered_attempts` (3) of them, whatever `max_attempts` allows; every other token is
/// delivered.
pub async fn gcm_oversized_answer_is_cut_while_read<R: Runtime>() {
    let huge = "x".repeat(2 * 1024 * 1024);
    let gcm = start_gcm(gcm_options().script("huge", Script::Error(huge)));
    let config = mock_gcm(&gcm.endpoint()).batch_size(1).expect("batch size");
    let client = builder::<R>().gcm(config).build().expect("client");
    let devices = (0..20)
        .map(|n| Device::android(format!("fine-{n}")))
        .chain([Device::android("huge")]);
    let (feedback, report) = within::<R, _>(LIMIT, send_all(client.send(payload()), devices)).await;
    assert_eq!(feedback.len(), 21);
    assert_eq!(report.delivered, 20);
    let huge = feedback
        .iter()
        .find(|f| f.device.token == "huge")
        .expect("its feedback");
    let Some(DeviceError::Unavailable {
        attempts,
        last_error,
    }) = &huge.error
    else {
        panic!("{huge:?}");
    };
    assert_eq!(*attempts, 3, "every attempt counted, bounded as unanswered");
    assert!(last_error.contains("too large"), "{last_error}");
    assert!(gcm.connections() >= 3, "{} connections", gcm.connections());
}
