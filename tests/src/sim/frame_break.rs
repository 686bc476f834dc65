//! [`FrameBreak`]: breaks an HTTP/2 server's connection after some answers with a malformed
//! frame, so that the client's HTTP/2 library detects the protocol error itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_lite::{AsyncRead, AsyncWrite};

/// A frame header's length.
const HEADER: usize = 9;
/// A DATA frame on stream 0, which RFC 9113 §6.1 makes a connection error (PROTOCOL_ERROR).
const MALFORMED: [u8; HEADER] = [0, 0, 0, 0, 0, 0, 0, 0, 0];
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const END_STREAM: u8 = 0x1;

/// Wraps the plaintext stream under an HTTP/2 server and follows the frames it writes. The
/// frame that would end the answer after `limit` answers (a DATA or HEADERS frame with
/// END_STREAM) is replaced by [`MALFORMED`], and nothing written after it reaches the peer.
/// Reads pass through.
pub(crate) struct FrameBreak<S> {
    inner: S,
    limit: Option<usize>,
    answers: usize,
    /// The header of the frame being written, while incomplete.
    header: Vec<u8>,
    /// Payload bytes of the current frame still to pass.
    payload_left: usize,
    /// Bytes accepted from the writer and owed to `inner`.
    owed: Vec<u8>,
    broken: bool,
    on_break: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> FrameBreak<S> {
    /// Breaks after `limit` answers (never when `None`), calling `on_break` when it does.
    pub(crate) fn new(
        inner: S,
        limit: Option<usize>,
        on_break: impl FnOnce() + Send + 'static,
    ) -> Self {
        FrameBreak {
            inner,
            limit,
            answers: 0,
            header: Vec::with_capacity(HEADER),
            payload_left: 0,
            owed: Vec::new(),
            broken: false,
            on_break: Some(Box::new(on_break)),
        }
    }

    /// A complete frame header arrived: pass it on, or break the connection in its place.
    fn header_complete(&mut self) {
        let header = std::mem::take(&mut self.header);
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let (kind, flags) = (header[3], header[4]);
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        let ends_answer =
            (kind == DATA || kind == HEADERS) && flags & END_STREAM != 0 && stream != 0;
        if ends_answer && self.limit == Some(self.answers) {
            self.owed.extend_from_slice(&MALFORMED);
            self.broken = true;
            if let Some(on_break) = self.on_break.take() {
                on_break();
            }
            return;
        }
        self.answers += usize::from(ends_answer);
        self.owed.extend_from_slice(&header);
        self.payload_left = length;
    }
}

impl<S: AsyncWrite + Unpin> FrameBreak<S> {
    fn poll_pay_debt(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.owed.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.owed))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.owed.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameBreak<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameBreak<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pay_debt(cx))?;
        if this.broken || buf.is_empty() {
            return Poll::Ready(Ok(buf.len()));
        }
        if this.payload_left > 0 {
            let n = buf.len().min(this.payload_left);
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]))?;
            this.payload_left -= n;
            return Poll::Ready(Ok(n));
        }
        let n = buf.len().min(HEADER - this.header.len());
        this.header.extend_from_slice(&buf[..n]);
        if this.header.len() == HEADER {
            this.header_complete();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pay_debt(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pay_debt(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncWriteExt, future};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut frame = vec![len[5], len[6], len[7], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn the_answer_after_the_limit_becomes_a_malformed_frame_and_nothing_follows() {
        let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let first = frame(HEADERS, END_STREAM | 0x4, 1, b"hdrs");
        let window = frame(0x8, 0, 0, &[0, 0, 1, 0]);
        let second = frame(DATA, END_STREAM, 3, b"body");
        let third = frame(HEADERS, END_STREAM | 0x4, 5, b"hdrs");
        let written: Vec<u8> = [&settings[..], &first, &window, &second, &third].concat();
        let broke = Arc::new(AtomicBool::new(false));
        let flag = broke.clone();
        let mut io = FrameBreak::new(Vec::new(), Some(1), move || {
            flag.store(true, Ordering::SeqCst);
        });
        future::block_on(async {
            // Byte by byte: the frame boundaries must not depend on how writes are cut.
            for byte in &written {
                io.write_all(std::slice::from_ref(byte)).await.unwrap();
            }
            io.flush().await.unwrap();
        });
        let expected: Vec<u8> = [&settings[..], &first, &window, &MALFORMED].concat();
        assert_eq!(io.inner, expected);
        assert!(broke.load(Ordering::SeqCst));
    }

    #[test]
    fn without_a_limit_everything_passes() {
        let written = [frame(HEADERS, END_STREAM, 1, b"h"), frame(DATA, 0, 1, b"d")].concat();
        let mut io = FrameBreak::new(Vec::new(), None, || {});
        future::block_on(io.write_all(&written)).unwrap();
        future::block_on(io.flush()).unwrap();
        assert_eq!(io.inner, written);
    }
}
