//! Blocking clients for the mock servers: std::net, rustls, and a tiny HTTP/1.1 client.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod fcm;
pub mod frames;
pub mod webpush;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use push_mock::Certificates;
use push_proto::ApnsToken;
use push_proto::apns::Frame;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Safety net for every blocking call; never reached when things work.
pub const SAFETY: Duration = Duration::from_secs(10);

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

pub fn tcp(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, SAFETY).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(SAFETY)).unwrap();
    tcp.set_write_timeout(Some(SAFETY)).unwrap();
    tcp
}

/// Connects and completes the handshake (as far as the client can tell).
pub fn try_tls(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Tls, rustls::Error> {
    let name = ServerName::try_from(Certificates::SERVER_NAME).unwrap();
    let conn = ClientConnection::new(config, name)?;
    let mut stream = StreamOwned::new(conn, tcp(addr));
    while stream.conn.is_handshaking() {
        if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
            let inner = error
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .cloned();
            return Err(inner.unwrap_or(rustls::Error::General(error.to_string())));
        }
    }
    Ok(stream)
}

pub fn tls(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    try_tls(addr, config).unwrap()
}

/// Reads until the server closes; a read error counts as the end too. Returns the bytes and
/// whether the stream ended with an error rather than a clean close.
pub fn read_to_close(stream: &mut Tls) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(error) => return (out, Some(error)),
        }
    }
}

/// Closes politely (close_notify, FIN) and waits for the server's FIN; returns what the
/// server sent meanwhile.
pub fn close(mut stream: Tls) -> Vec<u8> {
    stream.conn.send_close_notify();
    let _ = stream.flush();
    let _ = stream.sock.shutdown(Shutdown::Write);
    let (bytes, _) = read_to_close(&mut stream);
    bytes
}

pub fn token(n: u8) -> ApnsToken {
    let mut bytes = [0x5a; ApnsToken::LEN];
    bytes[0] = n;
    ApnsToken::from_bytes(bytes)
}

pub fn payload(n: u32) -> Bytes {
    Bytes::from(format!(r#"{{"aps":{{"alert":"n{n}"}}}}"#))
}

/// A command-2 frame for `token(n)` with identifier `id`.
pub fn frame(n: u8, id: u32) -> Frame {
    Frame::framed(token(n), payload(id), id, 0, 10)
}

pub fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.encode(&mut out).unwrap();
    }
    out
}

/// An HTTP response as the tiny client sees it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Sends one request on a keep-alive connection and reads the response (Content-Length
/// framed, as hyper answers a full body).
pub fn http<S: Read + Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(auth) = auth {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();

    let mut buf = Vec::new();
    let mut byte = [0; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed inside the response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    HttpResponse {
        status,
        headers,
        body,
    }
}
