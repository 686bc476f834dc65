//! `push bench`: end-to-end throughput and peak memory against in-process mock servers over
//! loopback TLS and HTTP, beside a raw rustls writer as the physical-limit baseline.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;
use push_mock::{Certificates, GatewayOptions, GcmOptions, MockGateway, MockGcm};
use push_proto::ApnsToken;
use push_proto::apns::{Format, Frame};
use push_smol::{ApnsConfig, Client, Device, GcmConfig, HttpConfig, Payload};
use rustls::pki_types::ServerName;

use crate::bench_h2::{self, H2Settings};
use crate::bench_webpush;
use crate::cli::{BenchArgs, Connections};
use crate::cpu::{CpuSnapshot, CpuUse};
use crate::loopback::mock_tls;
use crate::main_error::Failure;

/// Frames encoded once for the raw baseline and written over and over.
const RAW_FRAMES: u64 = 10_000;
/// The longest any part may take before the bench gives up.
pub const LIMIT: Duration = Duration::from_secs(600);

/// Resets the peak resident set size (VmHWM) to the current one (Linux 4.0 and later: `5`
/// written to `/proc/self/clear_refs`), so that the next reading is the peak of what runs in
/// between; false when that is not possible (the figures are then peaks so far).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set size of this process (VmHWM) since the start or the last
/// [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The APNs device token of the `i`-th notification.
pub fn token(i: u64) -> ApnsToken {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes[31] = 0xbe;
    ApnsToken::from_bytes(bytes)
}

/// The FCM (and GCM) registration token of the `i`-th notification.
pub fn gcm_token(i: u64) -> String {
    // The FCM shape: 11 characters, ':APA91b', then 142 more (`bench{i:06}:APA91b{i:0142}`,
    // written without the formatter's padding, which costs more than the rest of a send).
    let digits = i.to_string();
    let mut token = String::with_capacity(160);
    token.push_str("bench");
    token.extend(std::iter::repeat_n(
        '0',
        6usize.saturating_sub(digits.len()),
    ));
    token.push_str(&digits);
    token.push_str(":APA91b");
    token.extend(std::iter::repeat_n(
        '0',
        142usize.saturating_sub(digits.len()),
    ));
    token.push_str(&digits);
    token
}

/// The notification every part sends.
pub fn payload() -> Payload {
    Payload::new()
        .title("Bench")
        .body("A notification of ordinary size, sent to every device of the run")
        .badge(1)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One measured part.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub label: String,
    /// Notifications.
    pub n: u64,
    /// How long they took.
    pub elapsed: Duration,
    /// The CPU they took.
    pub cpu: CpuUse,
}

impl Row {
    /// A row.
    pub fn new(label: String, n: u64, elapsed: Duration, cpu: CpuUse) -> Row {
        Row {
            label,
            n,
            elapsed,
            cpu,
        }
    }

    /// Notifications per second.
    pub fn rate(&self) -> f64 {
        rate(self.n, self.elapsed)
    }

    /// Prints the row: throughput, the client's CPU per notification (and the whole
    /// process's, mocks included), and the peak RSS since the part started (the mocks'
    /// memory included).
    pub fn print(&self) {
        println!(
            "{:<48} {:>9} in {:>7.3} s {:>9.0} notifications/s  client CPU {:>6.2} us/notification (process {:>6.2})  peak RSS {} KiB",
            self.label,
            self.n,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.cpu.client_us_per(self.n),
            self.cpu.process_us_per(self.n),
            peak_rss_kib().unwrap_or(0)
        );
    }
}

/// Prints how the push client compares with the raw baseline of the same run.
fn print_ratio(what: &str, push: &Row, raw: &Row) {
    let cpu = push.cpu.client_us_per(push.n) / raw.cpu.client_us_per(raw.n).max(1e-9);
    println!(
        "{:<48} throughput {:.2}, client CPU per notification {cpu:.2}",
        format!("ratio push/raw ({what})"),
        push.rate() / raw.rate().max(1e-9)
    );
}

/// The raw baseline: one blocking rustls connection writing pre-encoded command-2 frames;
/// timed until the gateway has decoded them all.
fn raw(gateway: &MockGateway, certs: &Certificates, n: u64) -> Result<Row, String> {
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
    let cpu_before = CpuSnapshot::take();
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
    let cpu = cpu_before.until(&CpuSnapshot::take());
    stream.conn.send_close_notify();
    let _ = stream.flush();
    let label = "raw rustls writer (APNs frames)".to_owned();
    Ok(Row::new(label, n, elapsed, cpu))
}

/// What [`push_session`] measured.
#[derive(Debug, Clone, Copy)]
pub struct SessionRun {
    /// From the start until the session finished (every device had its feedback).
    pub elapsed: Duration,
    /// CPU until then.
    pub cpu: CpuUse,
    /// Feedback without an error.
    pub delivered: u64,
}

/// Pushes `n` devices through one session, reading and counting the feedback; measures the
/// time and CPU until the session finished.
pub fn push_session(
    client: &Client,
    n: u64,
    device: impl Fn(u64) -> Device,
) -> Result<SessionRun, String> {
    let cpu_before = CpuSnapshot::take();
    let start = Instant::now();
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
    let elapsed = start.elapsed();
    let cpu = cpu_before.until(&CpuSnapshot::take());
    let report = report.map_err(|e| e.to_string())?;
    if let Some(error) = report.errors.first() {
        return Err(error.to_string());
    }
    Ok(SessionRun {
        elapsed,
        cpu,
        delivered,
    })
}

/// What [`push_all`] measured.
#[derive(Debug, Clone, Copy)]
pub struct PushRun {
    /// From the start until the server had every notification.
    pub reached: Duration,
    /// CPU until then.
    pub reached_cpu: CpuUse,
    /// The whole session.
    pub session: SessionRun,
}

/// [`push_session`], also measuring the time and CPU until the gateway or server had every
/// notification (`reached` returns; it runs on a thread of its own, whose CPU counts as the
/// client's, so use it only where that moment matters). The mocks must outlive the call
/// (their threads' CPU is told apart by name).
pub fn push_all(
    client: &Client,
    n: u64,
    device: impl Fn(u64) -> Device,
    reached: impl FnOnce() -> bool + Send + 'static,
) -> Result<PushRun, String> {
    let cpu_before = CpuSnapshot::take();
    let start = Instant::now();
    let watcher =
        std::thread::spawn(move || reached().then(|| (Instant::now(), CpuSnapshot::take())));
    let session = push_session(client, n, device)?;
    let (reached_at, reached_cpu) = watcher
        .join()
        .ok()
        .flatten()
        .ok_or("the server did not receive every notification")?;
    Ok(PushRun {
        reached: reached_at - start,
        reached_cpu: cpu_before.until(&reached_cpu),
        session,
    })
}

/// The parts `--only` accepts, in the order they run.
pub const PARTS: [&str; 10] = [
    "raw",
    "apns",
    "raw-apns-http2",
    "apns-http2",
    "gcm",
    "raw-fcm",
    "fcm",
    "fcm-quota",
    "raw-webpush",
    "webpush",
];

/// `push bench` with its arguments.
pub fn command(args: BenchArgs) -> Result<(), Failure> {
    if let Some(unknown) = args.only.iter().find(|p| !PARTS.contains(&p.as_str())) {
        return Err(Failure::Usage(format!(
            "--only {unknown}: not a part (one of {})",
            PARTS.join(", ")
        )));
    }
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
    let h2 = H2Settings {
        n,
        connections: args.connections,
        latency: (args.latency_ms > 0).then(|| Duration::from_millis(args.latency_ms)),
        quota_window: Duration::from_secs(args.quota_window_secs.max(1)),
        streams: args.streams,
    };
    println!(
        "push bench: {n} notifications per part, payload {} bytes, APNs window {} grace {} ms checkpoints {}, HTTP/2 {} conn latency {} ms, peak RSS at start {} KiB{}",
        payload().to_apns_json().map(|j| j.len()).unwrap_or(0),
        args.apns_window,
        args.apns_grace_ms,
        if args.apns_checkpoints { "on" } else { "off" },
        match args.connections {
            Connections::Auto => "auto".to_owned(),
            Connections::Fixed(n) => n.to_string(),
        },
        args.latency_ms,
        peak_rss_kib().unwrap_or(0),
        if reset_peak_rss() {
            ""
        } else {
            " (peak RSS cannot be reset: figures are peaks so far)"
        }
    );
    let mut raw_row = None;
    if part("raw") {
        reset_peak_rss();
        let row = raw(&gateway, &certs, n).map_err(run)?;
        row.print();
        raw_row = Some(row);
    }
    if part("apns") {
        reset_peak_rss();
        let address = format!("{}:{}", Certificates::SERVER_NAME, gateway.addr().port());
        let client = Client::builder()
            .apns(
                ApnsConfig::new(&address)
                    .map_err(|e| run(e.to_string()))?
                    .tls(mock_tls(&certs, true).map_err(run)?)
                    .resend_window(args.apns_window)
                    .grace(Duration::from_millis(args.apns_grace_ms))
                    .checkpoints(args.apns_checkpoints),
            )
            .build()
            .map_err(|e| run(e.to_string()))?;
        let target = gateway.total_accepted() + n as usize;
        let watched = gateway.clone();
        let measured = push_all(
            &client,
            n,
            |i| Device::ios(token(i).to_hex()),
            move || watched.wait_for_accepted(target, LIMIT),
        )
        .map_err(run)?;
        let label = "push APNs (accepted by gateway)".to_owned();
        let accepted = Row::new(label, n, measured.reached, measured.reached_cpu);
        accepted.print();
        let label = "push APNs (all confirmed)".to_owned();
        let session = measured.session;
        Row::new(label, session.delivered, session.elapsed, session.cpu).print();
        if let Some(raw_row) = &raw_row {
            print_ratio("APNs", &accepted, raw_row);
        }
    }
    let mut raw_row = None;
    if part("raw-apns-http2") {
        reset_peak_rss();
        let row = bench_h2::raw_apns(&certs, h2).map_err(run)?;
        row.print();
        raw_row = Some(row);
    }
    if part("apns-http2") {
        reset_peak_rss();
        let row = bench_h2::push_apns(&certs, h2).map_err(run)?;
        row.print();
        if let Some(raw_row) = &raw_row {
            print_ratio("APNs HTTP/2", &row, raw_row);
        }
    }
    if part("gcm") {
        reset_peak_rss();
        gcm(&certs, n, args.gcm_batch)?.print();
    }
    let mut raw_row = None;
    if part("raw-fcm") {
        reset_peak_rss();
        let row = bench_h2::raw_fcm(&certs, h2).map_err(run)?;
        row.print();
        raw_row = Some(row);
    }
    if part("fcm") {
        reset_peak_rss();
        let row = bench_h2::push_fcm(&certs, h2).map_err(run)?;
        row.print();
        if let Some(raw_row) = &raw_row {
            print_ratio("FCM v1", &row, raw_row);
        }
    }
    if part("fcm-quota") {
        reset_peak_rss();
        bench_h2::push_fcm_quota(&certs, h2).map_err(run)?;
    }
    let mut raw_row = None;
    if part("raw-webpush") {
        reset_peak_rss();
        let row = bench_webpush::raw_webpush(&certs, h2).map_err(run)?;
        row.print();
        raw_row = Some(row);
    }
    if part("webpush") {
        reset_peak_rss();
        let row = bench_webpush::push_webpush(&certs, h2).map_err(run)?;
        row.print();
        if let Some(raw_row) = &raw_row {
            print_ratio("Web Push", &row, raw_row);
        }
    }
    Ok(())
}

/// `gcm`: the legacy GCM endpoint over HTTPS, `batch` tokens per request.
fn gcm(certs: &Certificates, n: u64, batch: usize) -> Result<Row, Failure> {
    let run = Failure::Run;
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
                .tls(mock_tls(certs, false).map_err(run)?)
                .batch_size(batch)
                .map_err(|e| Failure::Usage(e.to_string()))?,
        )
        .build()
        .map_err(|e| run(e.to_string()))?;
    let watched = gcm.clone();
    let target = n as usize;
    let measured = push_all(
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
    let label = format!("push GCM (batch {batch}, HTTPS)");
    let session = measured.session;
    Ok(Row::new(
        label,
        session.delivered,
        session.elapsed,
        session.cpu,
    ))
}

#[cfg(test)]
mod tests {
    use super::gcm_token;

    #[test]
    fn gcm_tokens_have_the_fcm_shape() {
        for i in [0, 7, 123_456, 9_999_999] {
            assert_eq!(gcm_token(i), format!("bench{i:06}:APA91b{i:0142}"));
        }
    }
}
