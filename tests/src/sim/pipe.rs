//! In-memory byte pipes: the simulation's TCP connections.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};

/// Bytes one direction may hold before the writer waits (a socket's buffers).
const CAPACITY: usize = 256 * 1024;

/// One direction of a connection.
#[derive(Default)]
struct Half {
    bytes: BytesMut,
    /// The writing end closed or was dropped: the reader sees end of file once it drained.
    write_closed: bool,
    /// The reading end was dropped: what is written is discarded.
    read_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type Shared = Arc<Mutex<Half>>;

fn lock(half: &Shared) -> MutexGuard<'_, Half> {
    half.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One end of an in-memory, reliable, ordered byte stream (a TCP connection's socket).
///
/// Dropping or closing an end is a TCP shutdown of its writing side: the peer reads what was
/// written, then end of file. What the peer writes after this end was dropped is discarded
/// (a peer that lingers), so a closing server cannot turn its last frames into a write error
/// on the client.
pub struct Duplex {
    incoming: Shared,
    outgoing: Shared,
}

impl std::fmt::Debug for Duplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duplex").finish_non_exhaustive()
    }
}

/// A connected pair of ends.
pub fn duplex() -> (Duplex, Duplex) {
    let (a, b) = (Shared::default(), Shared::default());
    (
        Duplex {
            incoming: a.clone(),
            outgoing: b.clone(),
        },
        Duplex {
            incoming: b,
            outgoing: a,
        },
    )
}

impl AsyncRead for Duplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut half = lock(&self.incoming);
        if half.bytes.is_empty() {
            if half.write_closed || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            half.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(half.bytes.len());
        buf[..n].copy_from_slice(&half.bytes[..n]);
        half.bytes.advance(n);
        if let Some(writer) = half.writer.take() {
            writer.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut half = lock(&self.outgoing);
        if half.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if half.read_gone {
            return Poll::Ready(Ok(buf.len()));
        }
        let room = CAPACITY.saturating_sub(half.bytes.len());
        if room == 0 {
            half.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room);
        half.bytes.extend_from_slice(&buf[..n]);
        if let Some(reader) = half.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        close_writing(&self.outgoing);
        Poll::Ready(Ok(()))
    }
}

fn close_writing(half: &Shared) {
    let mut half = lock(half);
    half.write_closed = true;
    if let Some(reader) = half.reader.take() {
        reader.wake();
    }
}

impl Drop for Duplex {
    fn drop(&mut self) {
        close_writing(&self.outgoing);
        let mut incoming = lock(&self.incoming);
        incoming.read_gone = true;
        incoming.bytes.clear();
        if let Some(writer) = incoming.writer.take() {
            writer.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt, future};

    #[test]
    fn bytes_arrive_in_order_then_end_of_file() {
        let (mut a, mut b) = duplex();
        future::block_on(async {
            a.write_all(b"hello ").await.unwrap();
            a.write_all(b"world").await.unwrap();
            drop(a);
            let mut read = Vec::new();
            b.read_to_end(&mut read).await.unwrap();
            assert_eq!(read, b"hello world");
            // The peer is gone: writes are discarded, not errors.
            b.write_all(b"late").await.unwrap();
        });
    }

    #[test]
    fn a_full_pipe_makes_the_writer_wait_until_read() {
        let (mut a, mut b) = duplex();
        future::block_on(async {
            let big = vec![7u8; CAPACITY + 10];
            let write = async {
                a.write_all(&big).await.unwrap();
                drop(a);
            };
            let read = async {
                let mut read = Vec::new();
                b.read_to_end(&mut read).await.unwrap();
                read
            };
            let ((), read) = future::zip(write, read).await;
            assert_eq!(read.len(), CAPACITY + 10);
        });
    }
}
