//! Raw HTTP/2 frames (RFC 9113 §4.1) over a blocking TLS stream, for tests that must see the
//! exact frames a mock sends, which an HTTP/2 library would hide.

use std::io::{self, Read, Write};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const ACK: u8 = 0x1;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const NO_ERROR: u32 = 0x0;
pub const REFUSED_STREAM: u32 = 0x7;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn new(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> RawFrame {
        RawFrame {
            kind,
            flags,
            stream,
            payload: payload.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let len = u32::try_from(self.payload.len()).unwrap().to_be_bytes();
        let mut bytes = vec![len[1], len[2], len[3], self.kind, self.flags];
        bytes.extend_from_slice(&self.stream.to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }

    /// A SETTINGS frame's `(identifier, value)` pairs.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        assert_eq!(self.kind, SETTINGS, "{self:?}");
        self.payload
            .chunks(6)
            .map(|pair| {
                let id = u16::from_be_bytes([pair[0], pair[1]]);
                (id, u32::from_be_bytes(pair[2..6].try_into().unwrap()))
            })
            .collect()
    }

    /// A GOAWAY's last-stream-id and error code.
    pub fn goaway(&self) -> (u32, u32) {
        assert_eq!(self.kind, GOAWAY, "{self:?}");
        (self.u32_at(0) & 0x7fff_ffff, self.u32_at(4))
    }

    /// An RST_STREAM's error code.
    pub fn reset_code(&self) -> u32 {
        assert_eq!(self.kind, RST_STREAM, "{self:?}");
        self.u32_at(0)
    }
}

/// The client's opening: the preface and an empty SETTINGS frame.
pub fn client_preface() -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(RawFrame::new(SETTINGS, 0, 0, &[]).encode());
    bytes
}

/// A HEADERS frame for `POST https://localhost<path>` (HPACK static-table references and
/// literals, no Huffman coding, no dynamic table).
pub fn post_headers(stream: u32, path: &str, end_stream: bool) -> RawFrame {
    // :method POST (static 3), :scheme https (static 7).
    let mut block = vec![0x83, 0x87];
    // Literals without indexing, indexed names: :path (static 4), :authority (static 1).
    for (index, value) in [(0x04, path), (0x01, "localhost")] {
        block.push(index);
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    RawFrame::new(HEADERS, flags, stream, &block)
}

/// Reads one frame; `None` when the peer closed cleanly between frames.
pub fn read_frame(stream: &mut impl Read) -> io::Result<Option<RawFrame>> {
    let mut header = [0u8; 9];
    let mut filled = 0;
    while filled < header.len() {
        match stream.read(&mut header[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload)?;
    Ok(Some(RawFrame {
        kind: header[3],
        flags: header[4],
        stream: u32::from_be_bytes(header[5..9].try_into().unwrap()) & 0x7fff_ffff,
        payload,
    }))
}

/// Reads frames until one satisfies `until` (returned last) or the peer closes; answers
/// SETTINGS and PINGs as a client must, so the server's own handshake completes.
pub fn read_until(
    stream: &mut (impl Read + Write),
    until: impl Fn(&RawFrame) -> bool,
) -> io::Result<Vec<RawFrame>> {
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(stream)? {
        let answer = match frame.kind {
            SETTINGS if frame.flags & ACK == 0 => Some(RawFrame::new(SETTINGS, ACK, 0, &[])),
            PING if frame.flags & ACK == 0 => Some(RawFrame::new(PING, ACK, 0, &frame.payload)),
            _ => None,
        };
        if let Some(answer) = answer {
            // The server may have closed its reading side already; what it sent still counts.
            let _ = stream
                .write_all(&answer.encode())
                .and_then(|()| stream.flush());
        }
        let done = until(&frame);
        frames.push(frame);
        if done {
            break;
        }
    }
    Ok(frames)
}
