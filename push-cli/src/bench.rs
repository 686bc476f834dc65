//! `push bench`: end-to-end throughput and peak memory against in-process mock servers over
//! loopback TLS and HTTP, beside a raw rustls writer as the physical-limit baseline.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;
use push_mock::{
    Certificates, GatewayOptions, GcmOptions, Http2Auth, Http2Options, MockApnsHttp2, MockGateway,
    MockGcm,
};
use push_proto::ApnsToken;
use push_proto::apns::{Format, Frame};
use push_smol::{ApnsConfig, ApnsHttp2Config, Client, Device, GcmConfig, Payload};
use rustls::pki_types::ServerName;

use crate::cli::BenchArgs;
use crate::loopback::{fcm_config, fcm_options, mock_tls, start_fcm};
use crate::main_error::Failure;
use crate::mock::{KEY_ID, TEAM_ID, generate_p8};

/// Concurrent streams the FCM mock allows, and requests the client keeps in flight.
const FCM_STREAMS: u32 = 1000;
/// Frames encoded once for the raw baseline and written over and over.
const RAW_FRAMES: u64 = 10_000;
/// The longest any part may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(600);

/// Peak resident set size of this process so far (VmHWM), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn token(i: u64) -> ApnsToken {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes[31] = 0xbe;
    ApnsToken::from_bytes(bytes)
}

fn gcm_token(i: u64) -> String {
    // The FCM shape: 11 characters, ':APA91b', then 142 more.
    format!("bench{i:06}:APA91b{i:0142}")
}

fn payload() -> Payload {
    Payload::new()
        .title("Bench")
        .body("A notification of ordinary size, sent to every device of the run")
        .badge(1)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn report(part: &str, n: u64, elapsed: Duration) -> f64 {
    let per_second = rate(n, elapsed);
    println!(
        "{part:<34} {n:>9} in {:>7.3} s  {per_second:>10.0} notifications/s   peak RSS so far {} KiB",
        elapsed.as_secs_f64(),
        peak_rss_kib().unwrap_or(0)
    );
    per_second
}

/// The raw baseline: one blocking rustls connection writing pre-encoded command-2 frames;
/// timed until the gateway has decoded them all.
fn raw(gateway: &MockGateway, certs: &Certificates, n: u64) -> Result<Duration, String> {
    let json = payload().to_apns_json().map_err(|e| e.to_string())?;
    let json = Bytes::from(json);
    let mut frames = Vec::new();
    let chunk = n.min(RAW_FRAMES);
    for i in 0..chunk {
        let frame = Frame {
            format: Format::Framed,
            token: token(i),
            payload: json.clone(),
            identifier: Some(i as u32),
            expiry: Some(0),
            priority: Some(10),
        };
        frame.encode(&mut frames).map_err(|e| e.to_string())?;
    }
    let frame_len = frames.len() / chunk.max(1) as usize;
    let config = certs.client_config(true).map_err(|e| e.to_string())?;
    let before = gateway.total_accepted();
    let start = Instant::now();
    let tcp = TcpStream::connect(gateway.addr()).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(Certificates::SERVER_NAME).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut left = n;
    while left > 0 {
        let now = left.min(chunk);
        let bytes = frames.get(..now as usize * frame_len).unwrap_or_default();
        stream.write_all(bytes).map_err(|e| e.to_string())?;
        left -= now;
    }
    stream.flush().map_err(|e| e.to_string())?;
    let target = before + n as usize;
    if !gateway.wait_for_accepted(target, LIMIT) {
        return Err(format!(
            "raw: the gateway accepted {} of {n}",
            gateway.total_accepted() - before
        ));
    }
    let elapsed = start.elapsed();
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(elapsed)
}

/// Pushes `n` devices through one session, counting the feedback; returns the time until
/// the gateway or server had them all (measured by `reached`) and until the session finished.
fn push_all(
    client: &Client,
    n: u64,
    device: impl Fn(u64) -> Device,
    reached: impl FnOnce() -> bool + Send + 'static,
) -> Result<(Duration, Duration, u64), String> {
    let start = Instant::now();
    let watcher = std::thread::spawn(move || reached().then(Instant::now));
    let (delivered, report) = smol::block_on(async {
        let mut session = client.send(payload());
        let mut feedbacks = session.feedbacks();
        let read = async move {
            let mut delivered = 0u64;
            while let Some(feedback) = feedbacks.next().await {
                delivered += u64::from(feedback.error.is_none());
            }
            delivered
        };
        let push = async move {
            for i in 0..n {
                session.push(device(i)).await?;
            }
            session.finish().await
        };
        futures_lite::future::zip(read, push).await
    });
    let finished = start.elapsed();
    let report = report.map_err(|e| e.to_string())?;
    if let Some(error) = report.errors.first() {
        return Err(error.to_string());
    }
    let reached = watcher
        .join()
        .ok()
        .flatten()
        .ok_or("the server did not receive every notification")?;
    Ok((reached - start, finished, delivered))
}

/// `push bench` with its arguments.
pub fn command(args: BenchArgs) -> Result<(), Failure> {
    let n = args.devices;
    let part = |name: &str| args.only.is_empty() || args.only.iter().any(|p| p == name);
    let run = Failure::Run;
    let certs = Certificates::generate().map_err(|e| run(e.to_string()))?;
    let gateway = Arc::new(
        MockGateway::start(
            GatewayOptions {
                require_client_cert: true,
                count_only: true,
                ..GatewayOptions::default()
            },
            &certs,
        )
        .map_err(|e| run(e.to_string()))?,
    );
    println!(
        "push bench: {n} notifications per part, payload {} bytes, APNs window {} grace {} ms, peak RSS at start {} KiB",
        payload().to_apns_json().map(|j| j.len()).unwrap_or(0),
        args.apns_window,
        args.apns_grace_ms,
        peak_rss_kib().unwrap_or(0)
    );
    let mut raw_rate = None;
    if part("raw") {
        let elapsed = raw(&gateway, &certs, n).map_err(run)?;
        raw_rate = Some(report("raw rustls writer (APNs frames)", n, elapsed));
    }
    if part("apns") {
        let address = format!("{}:{}", Certificates::SERVER_NAME, gateway.addr().port());
        let client = Client::builder()
            .apns(
                ApnsConfig::new(&address)
                    .map_err(|e| run(e.to_string()))?
                    .tls(mock_tls(&certs, true).map_err(run)?)
                    .resend_window(args.apns_window)
                    .grace(Duration::from_millis(args.apns_grace_ms)),
            )
            .build()
            .map_err(|e| run(e.to_string()))?;
        let target = gateway.total_accepted() + n as usize;
        let watched = gateway.clone();
        let (reached, finished, delivered) = push_all(
            &client,
            n,
            |i| Device::ios(token(i).to_hex()),
            move || watched.wait_for_accepted(target, LIMIT),
        )
        .map_err(run)?;
        let push_rate = report("push APNs (accepted by gateway)", n, reached);
        report("push APNs (all confirmed, +grace)", delivered, finished);
        if let Some(raw_rate) = raw_rate {
            println!(
                "ratio push/raw (APNs)              {:.2}",
                push_rate / raw_rate
            );
        }
    }
    if part("apns-http2") {
        const TOPIC: &str = "com.example.bench";
        let pem = generate_p8().map_err(run)?;
        let auth = Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &pem)
            .map_err(|e| run(format!("cannot read the generated provider key: {e}")))?;
        let mut options = Http2Options::new(auth).topic(TOPIC);
        options.count_only = true;
        let server =
            Arc::new(MockApnsHttp2::start(options, &certs).map_err(|e| run(e.to_string()))?);
        let client = Client::builder()
            .apns_http2(
                ApnsHttp2Config::new(&server.url())
                    .map_err(|e| run(e.to_string()))?
                    .topic(TOPIC)
                    .provider_key_pem(&pem, KEY_ID, TEAM_ID)
                    .map_err(|e| run(e.to_string()))?
                    .tls(mock_tls(&certs, false).map_err(run)?),
            )
            .build()
            .map_err(|e| run(e.to_string()))?;
        let watched = server.clone();
        let (_, finished, delivered) = push_all(
            &client,
            n,
            |i| Device::ios(token(i).to_hex()),
            move || watched.wait_for_delivered(n as usize, LIMIT),
        )
        .map_err(run)?;
        report(
            &format!("push APNs HTTP/2 (token, {} conn)", server.connections()),
            delivered,
            finished,
        );
    }
    if part("gcm") {
        let gcm = Arc::new(
            MockGcm::start(GcmOptions {
                api_key: "bench-key".into(),
                tls: Some(certs.clone()),
                count_only: true,
                ..GcmOptions::default()
            })
            .map_err(|e| run(e.to_string()))?,
        );
        let client = Client::builder()
            .gcm(
                GcmConfig::new("bench-key")
                    .endpoint(&gcm.endpoint())
                    .map_err(|e| run(e.to_string()))?
                    .tls(mock_tls(&certs, false).map_err(run)?)
                    .batch_size(args.gcm_batch)
                    .map_err(|e| Failure::Usage(e.to_string()))?,
            )
            .build()
            .map_err(|e| run(e.to_string()))?;
        let watched = gcm.clone();
        let target = n as usize;
        let (_, finished, delivered) = push_all(
            &client,
            n,
            |i| Device::android(gcm_token(i)),
            move || {
                let deadline = Instant::now() + LIMIT;
                while watched.delivered_total() < target && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                watched.delivered_total() >= target
            },
        )
        .map_err(run)?;
        report(
            &format!("push GCM (batch {}, HTTPS)", args.gcm_batch),
            delivered,
            finished,
        );
    }
    if part("fcm") {
        let options = fcm_options()
            .map_err(run)?
            .count_only(true)
            .max_concurrent_streams(FCM_STREAMS);
        let fcm = Arc::new(start_fcm(options, &certs).map_err(run)?);
        let client = Client::builder()
            .fcm(
                fcm_config(&fcm, &certs)
                    .map_err(run)?
                    .max_in_flight(FCM_STREAMS),
            )
            .build()
            .map_err(|e| run(e.to_string()))?;
        let watched = fcm.clone();
        let (_, finished, delivered) = push_all(
            &client,
            n,
            |i| Device::android(gcm_token(i)),
            move || watched.wait_for_delivered(n as usize, LIMIT),
        )
        .map_err(run)?;
        report(
            &format!(
                "push FCM v1 ({} conn, {FCM_STREAMS} streams)",
                fcm.connections()
            ),
            delivered,
            finished,
        );
    }
    println!("peak RSS (VmHWM) {} KiB", peak_rss_kib().unwrap_or(0));
    Ok(())
}
