//! [`TunnelStream`]: the tunnel's byte stream as `tokio::io::AsyncRead + AsyncWrite`, so the
//! russh client runs over it unchanged.
//!
//! It is only the SSH client's end of two channels; the driver holds the other end
//! ([`StreamSide`]) and owns the WebSocket and the tunnel endpoint. Bytes the device sent arrive
//! as chunks and are read out in order, across partial reads; written bytes leave as one chunk
//! per write. When the driver drops its sender the stream reads as end-of-file (the driver
//! records why the tunnel ended, so the session can say so). The type is `Send`, as russh
//! requires, because it holds nothing but channel ends.
//!
//! Flow control: the receive side is unbounded on purpose. A browser cannot pause a WebSocket,
//! and the SSH channel window (see `ssh::shell`) already bounds how much the device may send.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The SSH client's end of the tunnel.
#[derive(Debug)]
pub struct TunnelStream {
    incoming: UnboundedReceiver<Vec<u8>>,
    /// The chunk being read and how much of it was read.
    current: Vec<u8>,
    read_pos: usize,
    outgoing: UnboundedSender<Vec<u8>>,
}

/// The driver's end of a [`TunnelStream`].
#[derive(Debug)]
pub struct StreamSide {
    /// Bytes for the SSH client. Dropping it makes the stream read end-of-file.
    pub incoming: UnboundedSender<Vec<u8>>,
    /// Bytes the SSH client wrote, one chunk per write; ends when the client shuts down.
    pub outgoing: UnboundedReceiver<Vec<u8>>,
}

/// A connected stream and its driver side.
pub fn stream_pair() -> (TunnelStream, StreamSide) {
    let (in_tx, in_rx) = unbounded();
    let (out_tx, out_rx) = unbounded();
    (
        TunnelStream {
            incoming: in_rx,
            current: Vec::new(),
            read_pos: 0,
            outgoing: out_tx,
        },
        StreamSide {
            incoming: in_tx,
            outgoing: out_rx,
        },
    )
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.read_pos < this.current.len() {
                let available = &this.current[this.read_pos..];
                let n = available.len().min(buf.remaining());
                buf.put_slice(&available[..n]);
                this.read_pos += n;
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut this.incoming).poll_next(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.current = chunk;
                    this.read_pos = 0;
                }
                // End of file: nothing is put into `buf`.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.outgoing.unbounded_send(buf.to_vec()) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the tunnel is closed",
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing.close_channel();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn chunks_are_read_in_order_across_small_reads() {
        let (mut stream, side) = stream_pair();
        side.incoming
            .unbounded_send(b"hello ".to_vec())
            .expect("open");
        side.incoming.unbounded_send(Vec::new()).expect("open");
        side.incoming
            .unbounded_send(b"world".to_vec())
            .expect("open");
        drop(side.incoming);
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            let n = stream.read(&mut buf).await.expect("reads");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello world");
    }

    #[tokio::test]
    async fn dropped_driver_reads_as_eof_and_writes_fail() {
        let (mut stream, side) = stream_pair();
        drop(side);
        let mut buf = [0u8; 8];
        assert_eq!(stream.read(&mut buf).await.expect("eof is not an error"), 0);
        let err = stream.write_all(b"x").await.expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn writes_leave_as_chunks_and_shutdown_ends_them() {
        let (mut stream, mut side) = stream_pair();
        stream.write_all(b"abc").await.expect("open");
        stream.write_all(b"").await.expect("empty write");
        stream.write_all(b"defg").await.expect("open");
        stream.shutdown().await.expect("shutdown");
        let mut chunks = Vec::new();
        while let Some(chunk) = side.outgoing.next().await {
            chunks.push(chunk);
        }
        assert_eq!(chunks, vec![b"abc".to_vec(), b"defg".to_vec()]);
    }

    #[test]
    fn the_stream_is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<TunnelStream>();
    }
}
