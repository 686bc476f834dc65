//! The HTTP/2 parts of `push bench`: APNs HTTP/2 and FCM v1, each through the push client and
//! through the raw h2 baseline ([`crate::raw_h2`]), against the same in-process mock with
//! the same stream limit, connections and latency.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method};
use push_mock::{Certificates, Http2Auth, Http2Options, MockApnsHttp2, MockFcm};
use push_proto::apns::http2 as apns2;
use push_proto::fcm;
use push_smol::{ApnsHttp2Config, Client, Device, HttpConfig};

use crate::bench::{Row, gcm_token, payload, push_session, token};
use crate::cli::Connections;
use crate::cpu::CpuSnapshot;
use crate::loopback::{fcm_config, fcm_options, mock_tls, start_fcm};
use crate::mock::{KEY_ID, TEAM_ID, generate_p8};
use crate::oauth_once;
use crate::raw_h2::{self, Prebuilt, Target};

/// The apns-topic of the APNs parts.
const TOPIC: &str = "com.example.bench";
/// Concurrent streams the quota part's mock FCM allows per connection.
const QUOTA_STREAMS: u32 = 1000;

/// What the HTTP/2 parts share.
#[derive(Debug, Clone, Copy)]
pub struct H2Settings {
    /// Notifications per part.
    pub n: u64,
    /// Connections per provider.
    pub connections: Connections,
    /// Delay the mocks add before each answer.
    pub latency: Option<Duration>,
    /// The sliding window of `fcm-quota`'s quota.
    pub quota_window: Duration,
    /// Concurrent streams the mock APNs HTTP/2 and FCM servers allow per connection (at
    /// most [`raw_h2::MAX_STREAMS`], the clients' own cap).
    pub streams: u32,
}

impl H2Settings {
    /// The raw baseline's connections: the fixed number, 1 with the automatic pool (the raw
    /// client has none).
    pub fn raw_connections(&self) -> usize {
        match self.connections {
            Connections::Auto => 1,
            Connections::Fixed(n) => usize::from(n),
        }
    }

    /// Marks the push client's connection count as its pool's choice.
    pub fn auto_label(&self) -> &'static str {
        match self.connections {
            Connections::Auto => " auto",
            Connections::Fixed(_) => "",
        }
    }
}

/// A mock APNs HTTP/2 server checking provider tokens from a fresh key; returns it with the
/// key's PEM.
fn apns_mock(
    certs: &Certificates,
    settings: H2Settings,
) -> Result<(Arc<MockApnsHttp2>, String), String> {
    let pem = generate_p8()?;
    let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &pem)
        .map_err(|e| format!("cannot read the generated provider key: {e}"))?;
    let mut options = Http2Options::new(auth)
        .topic(TOPIC)
        .max_concurrent_streams(settings.streams);
    options.count_only = true;
    if let Some(latency) = settings.latency {
        options = options.latency(latency);
    }
    let server = MockApnsHttp2::start(options, certs).map_err(|e| e.to_string())?;
    Ok((Arc::new(server), pem))
}

/// A mock FCM server (with its token endpoint) for the demo service account.
fn fcm_mock(certs: &Certificates, settings: H2Settings) -> Result<Arc<MockFcm>, String> {
    let mut options = fcm_options()?
        .count_only(true)
        .max_concurrent_streams(settings.streams);
    if let Some(latency) = settings.latency {
        options = options.latency(latency);
    }
    Ok(Arc::new(start_fcm(options, certs)?))
}

/// The wall clock in UNIX seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Runs the raw baseline against a mock that counts deliveries: times [`raw_h2::send_all`]
/// and checks that every request was answered `2xx` and counted by the mock.
pub fn raw_run(
    label: String,
    target: &Target,
    request: &Prebuilt,
    settings: H2Settings,
    delivered: impl Fn() -> usize,
) -> Result<Row, String> {
    let n = settings.n;
    let before = CpuSnapshot::take();
    let start = Instant::now();
    let ok = raw_h2::send_all(target, request, n, settings.raw_connections())?;
    let elapsed = start.elapsed();
    let cpu = before.until(&CpuSnapshot::take());
    if ok != n || delivered() != n as usize {
        return Err(format!(
            "{label}: {ok} of {n} answered 2xx, the mock counted {} delivered",
            delivered()
        ));
    }
    Ok(Row::new(label, n, elapsed, cpu))
}

/// Fails unless every one of `n` notifications was reported delivered and counted by the
/// mock (checked after the session, like the raw baseline's answers: a thread watching the
/// mock meanwhile would be woken on every delivery and its CPU counted as the client's).
pub fn check_delivered(label: &str, n: u64, reported: u64, counted: usize) -> Result<(), String> {
    if reported == n && counted == n as usize {
        Ok(())
    } else {
        Err(format!(
            "{label}: {reported} of {n} reported delivered, the mock counted {counted}"
        ))
    }
}

/// `raw-apns-http2`: the pre-built APNs request (one device token, the provider token signed
/// once) sent N times.
pub fn raw_apns(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let (server, pem) = apns_mock(certs, settings)?;
    let signer = apns2::P8Signer::from_pem(&pem, KEY_ID).map_err(|e| e.to_string())?;
    let mut auth = apns2::TokenAuth::new(signer, TEAM_ID, Instant::now(), unix_now())
        .map_err(|e| e.to_string())?;
    let jwt = match auth.token(Instant::now()).map_err(|e| e.to_string())? {
        Some((token, _)) => token.jwt().to_owned(),
        None => return Err("no provider token".into()),
    };
    let payload = payload();
    let message = apns2::Message::new(
        &apns2::Notification::from_payload(&payload),
        &apns2::Options::from_payload(&payload),
    )
    .map_err(|e| e.to_string())?;
    let head = http::Request::builder()
        .method(Method::POST)
        .uri(format!("{}/3/device/{}", server.url(), token(0).to_hex()))
        .header(AUTHORIZATION, format!("bearer {jwt}"))
        .header("apns-topic", TOPIC)
        .header("apns-push-type", message.push_type().as_str())
        .body(())
        .map_err(|e| e.to_string())?;
    let request = Prebuilt {
        head,
        body: message.body().clone(),
    };
    let label = format!(
        "raw h2 APNs HTTP/2 (token, {} conn, {} streams)",
        settings.raw_connections(),
        settings.streams
    );
    let target = Target::new(server.addr(), certs)?;
    raw_run(label, &target, &request, settings, || {
        server.total_delivered()
    })
}

/// `apns-http2`: the push client with a provider token.
pub fn push_apns(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let (server, pem) = apns_mock(certs, settings)?;
    let mut config = ApnsHttp2Config::new(&server.url())
        .map_err(|e| e.to_string())?
        .topic(TOPIC)
        .provider_key_pem(&pem, KEY_ID, TEAM_ID)
        .map_err(|e| e.to_string())?
        .tls(mock_tls(certs, false)?);
    if let Connections::Fixed(n) = settings.connections {
        config = config.connections(usize::from(n));
    }
    let client = Client::builder()
        .apns_http2(config)
        .build()
        .map_err(|e| e.to_string())?;
    let n = settings.n;
    let run = push_session(&client, n, |i| Device::ios(token(i).to_hex()))?;
    check_delivered(
        "push APNs HTTP/2",
        n,
        run.delivered,
        server.total_delivered(),
    )?;
    let label = format!(
        "push APNs HTTP/2 (token, {} conn{}, {} streams)",
        server.connections(),
        settings.auto_label(),
        settings.streams
    );
    Ok(Row::new(label, n, run.elapsed, run.cpu))
}

/// `raw-fcm`: the pre-built FCM request (one registration token, one access token obtained
/// before the clock starts) sent N times.
pub fn raw_fcm(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let mock = fcm_mock(certs, settings)?;
    let access_token = oauth_once::access_token(&mock, certs)?;
    let message = fcm::Message::new(&payload(), &fcm::Options::new()).map_err(|e| e.to_string())?;
    let authorization = HeaderValue::from_str(&format!("Bearer {access_token}"))
        .map_err(|_| "the access token is not a header value")?;
    let head = http::Request::builder()
        .method(Method::POST)
        .uri(mock.send_url())
        .header(AUTHORIZATION, authorization)
        .header(CONTENT_TYPE, "application/json")
        .body(())
        .map_err(|e| e.to_string())?;
    let request = Prebuilt {
        head,
        body: message.body_for(&gcm_token(0), false),
    };
    let label = format!(
        "raw h2 FCM v1 ({} conn, {} streams)",
        settings.raw_connections(),
        settings.streams
    );
    let target = Target::new(mock.addr(), certs)?;
    raw_run(label, &target, &request, settings, || {
        mock.total_delivered()
    })
}

/// `fcm`: the push client with the demo service account.
pub fn push_fcm(certs: &Certificates, settings: H2Settings) -> Result<Row, String> {
    let mock = fcm_mock(certs, settings)?;
    let mut config = fcm_config(&mock, certs)?;
    if let Connections::Fixed(n) = settings.connections {
        config = config
            .max_in_flight(u32::from(n).saturating_mul(settings.streams))
            .connections(usize::from(n));
    }
    let client = Client::builder()
        .fcm(config)
        .build()
        .map_err(|e| e.to_string())?;
    let n = settings.n;
    let run = push_session(&client, n, |i| Device::android(gcm_token(i)))?;
    check_delivered("push FCM v1", n, run.delivered, mock.total_delivered())?;
    let label = format!(
        "push FCM v1 ({} conn{}, {} streams)",
        mock.connections(),
        settings.auto_label(),
        settings.streams
    );
    Ok(Row::new(label, n, run.elapsed, run.cpu))
}

/// `fcm-quota`: the push client against a mock FCM whose project quota admits a tenth of the
/// devices (at least 100) per sliding window ([`H2Settings::quota_window`], 1 s by default),
/// as FCM's per-project quota does; run twice, with `Retry-After` on the quota's 429s and
/// without. Prints the achieved rate (devices delivered over the elapsed time) as a share of
/// the quota's rate, the quota's least time (the first window's worth at once, then one
/// window per window's worth) over the elapsed time, and the share of requests answered 429.
pub fn push_fcm_quota(certs: &Certificates, settings: H2Settings) -> Result<(), String> {
    for retry_after in [true, false] {
        push_fcm_quota_once(certs, settings, retry_after)?;
    }
    Ok(())
}

fn push_fcm_quota_once(
    certs: &Certificates,
    settings: H2Settings,
    retry_after: bool,
) -> Result<(), String> {
    let n = settings.n;
    let limit = u32::try_from((n / 10).max(100)).unwrap_or(u32::MAX);
    let window = settings.quota_window;
    let mut options = fcm_options()?
        .count_only(true)
        .max_concurrent_streams(QUOTA_STREAMS)
        .quota(limit, window);
    if !retry_after {
        options = options.quota_without_retry_after();
    }
    if let Some(latency) = settings.latency {
        options = options.latency(latency);
    }
    let mock = start_fcm(options, certs)?;
    let mut config = fcm_config(&mock, certs)?;
    if let Connections::Fixed(c) = settings.connections {
        config = config.connections(usize::from(c));
    }
    let client = Client::builder()
        .fcm(config)
        .build()
        .map_err(|e| e.to_string())?;
    let run = push_session(&client, n, |i| Device::android(gcm_token(i)))?;
    check_delivered(
        "push FCM v1 quota",
        n,
        run.delivered,
        mock.total_delivered(),
    )?;
    let statuses = mock.status_counts();
    let answered: usize = statuses.values().sum();
    let throttled = statuses.get(&429).copied().unwrap_or(0);
    let elapsed = run.elapsed.as_secs_f64().max(1e-9);
    let quota_rate = f64::from(limit) / window.as_secs_f64();
    let windows = n.div_ceil(u64::from(limit)).saturating_sub(1);
    let least = window.as_secs_f64() * windows as f64;
    let label = format!(
        "push FCM v1 vs quota {limit}/{window:?}{} ({} conn)",
        if retry_after { "" } else { " no Retry-After" },
        mock.connections()
    );
    Row::new(label, n, run.elapsed, run.cpu).print();
    println!(
        "{:<48} achieved {:.3} of the quota's rate ({:.0}/s of {quota_rate:.0}/s), least time {least:.1} s = {:.3} of the elapsed {elapsed:.2} s, {throttled} of {answered} requests answered 429 ({:.2}%)",
        "quota (FCM v1)",
        n as f64 / elapsed / quota_rate,
        n as f64 / elapsed,
        least / elapsed,
        throttled as f64 * 100.0 / answered.max(1) as f64
    );
    Ok(())
}
