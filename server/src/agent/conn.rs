//! One local TCP connection of the agent, pumped to and from the session driver.
//!
//! Each tunnel connection gets one task. It reads the socket into [`LocalEvent::Data`] messages
//! on the driver's shared, bounded channel, and writes what the driver hands it through its own
//! bounded channel. Both channels being bounded is the agent's flow control: a slow TCP peer
//! fills its channel and the driver stops reading the WebSocket; a slow WebSocket makes the
//! driver stop taking [`LocalEvent`]s, and the reading side here stops reading the socket.
//!
//! It knows nothing of the tunnel protocol: the driver maps keys to connection ids.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Bytes read from a socket at most at once (one DATA frame's payload).
pub const READ_CHUNK: usize = burrow_proto::codec::MAX_PAYLOAD_LEN;

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
            match reader.read(&mut buf).await {
                Ok(0) => break "closed by the local peer".to_owned(),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    if events_for_reader
                        .send(LocalEvent::Data { key, data })
                        .await
                        .is_err()
                    {
                        // The session is over; nobody listens any more.
                        return;
                    }
                }
                Err(err) => break format!("read failed: {err}"),
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
