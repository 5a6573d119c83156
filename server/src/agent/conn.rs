//! One local TCP connection of the agent, pumped to and from the session driver.
//!
//! Each tunnel connection gets one task. It reads the socket into [`LocalEvent::Data`] messages
//! on the driver's shared, bounded channel, and writes what the driver hands it through its own
//! bounded channel. Both channels being bounded is the agent's flow control: a slow TCP peer
//! fills its channel and the driver stops reading the WebSocket; a slow WebSocket makes the
//! driver stop taking [`LocalEvent`]s, and the reading side here stops reading the socket.
//!
//! It knows nothing of the tunnel protocol: the driver maps keys to connection ids.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Bytes read from a socket at most at once (one DATA frame's payload).
pub const READ_CHUNK: usize = burrow_proto::codec::MAX_PAYLOAD_LEN;

/// A read at least this long means bulk output is flowing (a keystroke's echo is far shorter),
/// so the reader waits up to [`COALESCE_WAIT`] for more before sending.
pub const BULK_READ: usize = 2048;

/// How long a bulk read waits for more bytes to fill its chunk. Bulk output then crosses the
/// tunnel in chunks of up to 63 KiB rather than in the 4 KiB a pty hands sshd at a time, and
/// every hop (agent, service, the browser's WebSocket) handles a sixteenth of the messages.
/// Short reads (interactive echo) never wait.
pub const COALESCE_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Chunks waiting to be written to one socket at most; with chunks of at most 63 KiB this bounds
/// what the agent holds per connection to about 0.5 MiB.
pub const WRITE_QUEUE: usize = 8;

/// The driver's local name for a connection, unique within a session.
pub type Key = u64;

/// What connection tasks tell the session driver.
#[derive(Debug)]
pub enum LocalEvent {
    /// Bytes read from the socket, in order.
    Data {
        /// Which connection.
        key: Key,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The socket is done (peer closed, reset, or a write failed); the tunnel connection should
    /// be closed.
    Closed {
        /// Which connection.
        key: Key,
        /// Why, for the logs.
        reason: String,
    },
    /// Destination: the local service could not be reached.
    ConnectFailed {
        /// Which connection.
        key: Key,
        /// The error, for the logs.
        reason: String,
    },
}

/// Destination: connects to `target`, then pumps. A failed connect is reported as
/// [`LocalEvent::ConnectFailed`].
pub async fn connect_and_pump(
    key: Key,
    target: String,
    timeout: std::time::Duration,
    to_socket: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<LocalEvent>,
) {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            let reason = format!("cannot connect to {target}: {err}");
            let _gone = events.send(LocalEvent::ConnectFailed { key, reason }).await;
            return;
        }
        Err(_elapsed) => {
            let reason = format!("connecting to {target} timed out after {timeout:?}");
            let _gone = events.send(LocalEvent::ConnectFailed { key, reason }).await;
            return;
        }
    };
    tracing::debug!(key, %target, "connected to the local service");
    pump(key, stream, to_socket, events).await;
}

/// Pumps one connected socket until the driver drops its sender (the tunnel connection closed)
/// or writing fails. Reaching the end of the socket's input is reported, and writing goes on
/// until the driver lets go.
pub async fn pump(
    key: Key,
    stream: TcpStream,
    mut to_socket: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<LocalEvent>,
) {
    // Small interactive writes (keystrokes) should not wait for Nagle's algorithm.
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(key, %err, "cannot set TCP_NODELAY");
    }
    let (mut reader, mut writer) = stream.into_split();
    let events_for_reader = events.clone();
    let read_side = async move {
        let mut buf = vec![0u8; READ_CHUNK];
        let reason = loop {
            let (filled, end) = read_coalesced(&mut reader, &mut buf).await;
            if filled > 0 {
                let data = buf.get(..filled).unwrap_or_default().to_vec();
                if events_for_reader
                    .send(LocalEvent::Data { key, data })
                    .await
                    .is_err()
                {
                    // The session is over; nobody listens any more.
                    return;
                }
            }
            if let Some(reason) = end {
                break reason;
            }
        };
        let _gone = events_for_reader
            .send(LocalEvent::Closed { key, reason })
            .await;
    };
    let write_side = async move {
        while let Some(chunk) = to_socket.recv().await {
            if let Err(err) = writer.write_all(&chunk).await {
                let reason = format!("write failed: {err}");
                let _gone = events.send(LocalEvent::Closed { key, reason }).await;
                return;
            }
        }
        // The tunnel connection closed: everything it delivered is written; end the socket.
        let _already_closed = writer.shutdown().await;
    };
    // The connection lives as long as its write side: the read side finishing only reports it.
    let read_then_wait = async move {
        read_side.await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = write_side => {}
        () = read_then_wait => {}
    }
}

/// Reads the next chunk into `buf`: one read, and after a bulk read ([`BULK_READ`] or more)
/// further reads until the buffer is full or [`COALESCE_WAIT`] has passed. Returns how many
/// bytes were read and, when the socket is done, why (the bytes before the end still count).
async fn read_coalesced<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> (usize, Option<String>) {
    let mut filled = match reader.read(buf).await {
        Ok(0) => return (0, Some("closed by the local peer".to_owned())),
        Ok(n) => n,
        Err(err) => return (0, Some(format!("read failed: {err}"))),
    };
    if filled < BULK_READ {
        return (filled, None);
    }
    let deadline = tokio::time::Instant::now() + COALESCE_WAIT;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        match tokio::time::timeout_at(deadline, reader.read(rest)).await {
            Err(_elapsed) => break,
            Ok(Ok(0)) => return (filled, Some("closed by the local peer".to_owned())),
            Ok(Ok(n)) => filled += n,
            Ok(Err(err)) => return (filled, Some(format!("read failed: {err}"))),
        }
    }
    (filled, None)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn short_reads_are_sent_at_once() {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        far.write_all(b"x").await.expect("write");
        let mut buf = vec![0u8; READ_CHUNK];
        let started = tokio::time::Instant::now();
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!((n, end), (1, None));
        assert_eq!(&buf[..1], b"x");
        // No waiting for more after an interactive-sized read (the paused clock did not move).
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
    }

    #[tokio::test]
    async fn bulk_reads_are_gathered_into_one_chunk() {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
        for piece in data.chunks(4096) {
            far.write_all(piece).await.expect("write");
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!(end, None);
        assert_eq!(&buf[..n], &data[..]);
    }

    #[tokio::test]
    async fn a_full_buffer_ends_the_gathering() {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        let data = vec![7u8; READ_CHUNK + 5000];
        far.write_all(&data).await.expect("write");
        let mut buf = vec![0u8; READ_CHUNK];
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!((n, end), (READ_CHUNK, None));
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!((n, end), (5000, None));
    }

    #[tokio::test]
    async fn the_end_after_bulk_bytes_keeps_the_bytes() {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        far.write_all(&[1u8; 3000]).await.expect("write");
        far.write_all(&[2u8; 3000]).await.expect("write");
        drop(far);
        let mut buf = vec![0u8; READ_CHUNK];
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!(n, 6000);
        assert_eq!(end.as_deref(), Some("closed by the local peer"));
        assert!(buf[..3000].iter().all(|&b| b == 1) && buf[3000..6000].iter().all(|&b| b == 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bulk_read_waits_no_longer_than_the_coalescing_wait() {
        let (mut near, mut far) = tokio::io::duplex(1 << 20);
        far.write_all(&[3u8; 4096]).await.expect("write");
        let mut buf = vec![0u8; READ_CHUNK];
        let started = tokio::time::Instant::now();
        let (n, end) = read_coalesced(&mut near, &mut buf).await;
        assert_eq!((n, end), (4096, None));
        assert_eq!(started.elapsed(), COALESCE_WAIT);
        drop(far);
    }
}
