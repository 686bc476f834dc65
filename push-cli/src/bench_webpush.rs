//! The Web Push parts of `push bench`: the push client encrypting every message for
//! subscriptions over 3 origins of the mock push service, beside the raw h2 baseline sending
//! one message encrypted once, over and over, to one origin. The mock decrypts every message
//! in both parts.

use std::sync::Arc;
use std::time::Instant;

use push_mock::{Certificates, MockWebPush, WebPushOptions};
use push_proto::engine::{Action, Input};
use push_proto::webpush::{self, Message, Options, Subscription, Vapid, VapidCredential, VapidKey};
use push_smol::{Client, Device, HttpConfig, WebPushConfig};

use crate::bench::{Row, payload, push_session};
use crate::bench_h2::{H2Settings, check_delivered, raw_run};
use crate::cli::Connections;
use crate::loopback::mock_tls;
use crate::mock::generate_p8;
use crate::raw_h2::{MAX_STREAMS, Prebuilt, Target};

/// Origins of the push client's part.
const ORIGINS: usize = 3;
/// Subscriptions minted per origin (minting is a P-256 key pair each); device `i` is
/// subscription `i % (ORIGINS * PER_ORIGIN)`.
const PER_ORIGIN: usize = 100;
/// The VAPID subject.
const SUBJECT: &str = "mailto:bench@example.com";

/// The mock push service on `origins` origins, counting only.
fn mock(
    certs: &Certificates,
    settings: H2Settings,
    origins: usize,
) -> Result<Arc<MockWebPush>, String> {
    let mut options = WebPushOptions::new()
        .origins(origins)
        .max_concurrent_streams(MAX_STREAMS)
        .count_only(true);
    if let Some(latency) = settings.latency {
        options = options.latency(latency);
    }
    MockWebPush::start(options, certs)
        .map(Arc::new)
        .map_err(|e| format!("cannot start the mock Web Push service: {e}"))
}

/// `raw-webpush`: one message encrypted once (by push-proto's sender, with its VAPID token)
/// sent N times to one subscription.
pub fn raw_webpush(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let mock = mock(certs, settings, 1)?;
    let subscription =
        Subscription::from_json(&mock.subscribe(0).json).map_err(|e| e.to_string())?;
    let key = VapidKey::from_pem(&generate_p8()?).map_err(|e| e.to_string())?;
    let vapid = Vapid::new(key, SUBJECT).map_err(|e| e.to_string())?;
    let now = Instant::now();
    let credential = VapidCredential::new(
        vapid,
        subscription.origin().clone(),
        now,
        crate::bench_h2::unix_now(),
    );
    let mut sender =
        webpush::sender(webpush::Config::default(), credential).map_err(|e| e.to_string())?;
    let message = Message::new(&payload(), &Options::new()).map_err(|e| e.to_string())?;
    sender
        .queue(subscription, message, (), now)
        .map_err(|_| "the sender is full")?;
    let Some(Action::Dial(conn)) = sender.poll_action(now) else {
        return Err("the sender did not dial".into());
    };
    sender.handle(
        Input::Connected {
            conn,
            max_streams: 1,
        },
        now,
    );
    let Some(Action::Send { request, .. }) = sender.poll_action(now) else {
        return Err("the sender did not send".into());
    };
    let (parts, body) = request.into_parts();
    let request = Prebuilt {
        head: http::Request::from_parts(parts, ()),
        body,
    };
    let label = format!(
        "raw h2 Web Push (1 origin, {} conn, {MAX_STREAMS} streams)",
        settings.raw_connections()
    );
    let target = Target::new(mock.addr(0), certs)?;
    raw_run(label, &target, &request, settings, || {
        mock.total_delivered()
    })
}

/// `webpush`: the push client over 3 origins, every message encrypted for its subscription.
pub fn push_webpush(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let mock = mock(certs, settings, ORIGINS)?;
    let subscriptions: Vec<String> = (0..ORIGINS * PER_ORIGIN)
        .map(|k| mock.subscribe(k % ORIGINS).json)
        .collect();
    let mut config = WebPushConfig::from_pem(&generate_p8()?, SUBJECT)
        .map_err(|e| e.to_string())?
        .tls(mock_tls(certs, false)?);
    if let Connections::Fixed(n) = settings.connections {
        config = config.connections(usize::from(n));
    }
    let client = Client::builder()
        .webpush(config)
        .build()
        .map_err(|e| e.to_string())?;
    let n = settings.n;
    let count = subscriptions.len() as u64;
    let run = push_session(&client, n, |i| {
        Device::web(subscriptions[(i % count) as usize].clone())
    })?;
    check_delivered("push Web Push", n, run.delivered, mock.total_delivered())?;
    let label = format!(
        "push Web Push ({ORIGINS} origins, {} conn{}, {MAX_STREAMS} streams)",
        mock.connections(),
        settings.auto_label()
    );
    Ok(Row::new(label, n, run.elapsed, run.cpu))
}
