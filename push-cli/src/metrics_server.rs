//! `--metrics ADDR`: serves [`Metrics`] at `GET /metrics` over plain HTTP/1.1, from one
//! blocking thread (a scrape is a small request every few seconds: no runtime needed).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_lite::future;

use crate::interrupt::Stop;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// The metrics flags.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464, or port 0 for
    /// any free port; the address is printed on standard error).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// After the run, keep serving the final counts this many seconds (so that the last
    /// scrape sees them), unless Ctrl-C.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        requires = "metrics"
    )]
    pub metrics_hold: u64,
}

/// Starts serving `metrics` on `addr` when asked, and says where on standard error.
pub fn start(args: &MetricsArgs) -> Result<Option<Arc<Metrics>>, String> {
    start_with(args, Metrics::default)
}

/// As [`start`], with the metrics `make` makes.
pub fn start_with(
    args: &MetricsArgs,
    make: fn() -> Metrics,
) -> Result<Option<Arc<Metrics>>, String> {
    let Some(addr) = &args.metrics else {
        return Ok(None);
    };
    let metrics = Arc::new(make());
    let bound = serve(addr, metrics.clone()).map_err(|e| format!("--metrics {addr}: {e}"))?;
    eprintln!("push: metrics on http://{bound}/metrics");
    Ok(Some(metrics))
}

/// After a run: keeps the process (and the metrics) up for `--metrics-hold` seconds,
/// unless `stop` is asked (Ctrl-C) or already was.
pub fn hold(args: &MetricsArgs, stop: &Stop) {
    if args.metrics.is_none() || args.metrics_hold == 0 || stop.is_stopped() {
        return;
    }
    eprintln!(
        "push: serving the final metrics for {} s (Ctrl-C ends)",
        args.metrics_hold
    );
    let hold = Duration::from_secs(args.metrics_hold);
    smol::block_on(future::or(
        async {
            smol::Timer::after(hold).await;
        },
        stop.wait(),
    ));
}

/// Binds `addr` and answers scrapes from a thread that lives as long as the process.
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    // A scraper that goes away mid-answer is its own problem.
                    Ok(stream) => {
                        let _ = answer(stream, &metrics);
                    }
                    // Out of descriptors, say: let others close theirs.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(bound)
}

/// Reads one request and answers it; the connection is closed after.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, content_type, body) = respond(&head, metrics);
    let head_only = head.starts_with("HEAD ");
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// The request head, up to its blank line (at most [`MAX_HEAD`] bytes).
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status line, content type and body for a request head.
fn respond(head: &str, metrics: &Metrics) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "GET /metrics\n".into());
    }
    if path != "/metrics" {
        return (
            "404 Not Found",
            TEXT,
            "the metrics are at /metrics\n".into(),
        );
    }
    match metrics.render() {
        Ok(body) => ("200 OK", CONTENT_TYPE, body),
        Err(_) => (
            "500 Internal Server Error",
            TEXT,
            "cannot encode the metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_exposition_at_metrics_only() {
        let metrics = Arc::new(Metrics::default());
        metrics.malformed("unknown_platform");
        let addr = serve("127.0.0.1:0", metrics).unwrap();
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains(
                "push_notifications_total{provider=\"none\",outcome=\"unknown_platform\",reason=\"none\"} 1\n"
            ),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{ok}"
        );
        let head_only = get(addr, "HEAD /metrics?x=1 HTTP/1.1\r\n\r\n");
        assert!(head_only.starts_with("HTTP/1.1 200 OK\r\n"), "{head_only}");
        assert!(head_only.ends_with("\r\n\r\n"), "{head_only}");
        assert!(get(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(get(addr, "\r\n\r\n").starts_with("HTTP/1.1 405 "));
    }
}
