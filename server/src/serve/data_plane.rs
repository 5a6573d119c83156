//! The emulator's data plane: `GET /tunnel?local-proxy-mode=…`, the WebSocket each peer keeps
//! open, and the relay of frames between the two peers of a tunnel.
//!
//! After the handshake rules ([`super::handshake`]) and the registry's token check, the
//! connection is upgraded with the newest subprotocol the client offered (echoed in
//! `Sec-WebSocket-Protocol`) and a `channel-id` header. The peer first receives SERVICE_IDS
//! (not on the V1 subprotocol, whose schema has no such message). Then two halves run side by
//! side in the connection's task:
//!
//! - the reader takes each binary message, charges the tunnel's bandwidth quota, checks it with
//!   the connection's [`PeerChecker`] and the tunnel's rules, and hands the whole frames that
//!   passed to the other peer's queue (bounded, so a slow peer slows the sender down);
//! - the writer drains the peer's own queue, regroups frames into WebSocket messages of at most
//!   131076 bytes, and sends the close frame when one is asked for (a violation, replacement by
//!   a newer connection, CloseTunnel, expiry or shutdown).
//!
//! Pings are answered by the WebSocket layer. This module holds no tunnel state of its own.
//! When the benchmark turns [`super::timing`] on, each relayed message is timed from the
//! reader's receipt to the writer's send.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use burrow_proto::Role;
use burrow_proto::codec::{LENGTH_PREFIX_LEN, MAX_WS_MESSAGE_LEN};
use burrow_proto::frames::{self, Packer};
use burrow_proto::service::{CLOSE_GOING_AWAY, PeerChecker, Violation};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, watch};

use super::AppState;
use super::handshake::{
    self, CHANNEL_ID_HEADER, HandshakeError, SUBPROTOCOL_V1, Secret, WS_READ_LIMIT, new_channel_id,
};
use super::timing::{self, Batch};
use super::tunnels::{CloseReason, PeerHandle, TunnelEntry};

/// Frame batches queued for one peer before its sender has to wait.
const FRAME_QUEUE: usize = 32;
/// How long a closing connection may take to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// The WebSocket layer's first read buffer per connection. Its default, 128 KiB, is allocated and
/// zeroed up front for every peer, idle or not, and was most of an idle tunnel's memory; the
/// buffer still grows to hold a large message when one arrives.
const WS_READ_BUFFER: usize = 16 * 1024;
/// `/tunnel` in emulator mode: the handshake, then the peer's session.
pub(crate) async fn handle(state: AppState, request: Request) -> Response {
    let channel_id = new_channel_id();
    let (mut parts, _body) = request.into_parts();
    let req = match handshake::parse(&parts, &state.origins, false) {
        Ok(req) => req,
        Err(err) => return refuse(err, &channel_id),
    };
    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &state).await else {
        return refuse(HandshakeError::NotUpgrade, &channel_id);
    };
    let Some(protocol) = req.best_protocol() else {
        return refuse(HandshakeError::NoSubprotocol, &channel_id);
    };
    let admission = match state.registry.admit(
        req.token.expose(),
        req.mode,
        req.client_token.as_ref().map(Secret::expose),
    ) {
        Ok(admission) => admission,
        Err(err) => return refuse(err, &channel_id),
    };
    tracing::info!(
        tunnel = admission.tunnel.label(),
        mode = req.mode.mode_name(),
        channel = %channel_id,
        protocol,
        reconnectable = req.client_token.is_some(),
        "handshake accepted"
    );
    let peer = Peer {
        tunnel: admission.tunnel,
        role: req.mode,
        id: admission.peer_id,
        channel_id: channel_id.clone(),
        announce: protocol != SUBPROTOCOL_V1,
        shutdown: state.shutdown.clone(),
        _session: state.sessions.enter(),
    };
    let mut ws = ws
        .max_message_size(WS_READ_LIMIT)
        .max_frame_size(WS_READ_LIMIT)
        .read_buffer_size(WS_READ_BUFFER);
    ws.set_selected_protocol(HeaderValue::from_static(protocol));
    let mut response = ws
        .on_failed_upgrade(|err| tracing::debug!(%err, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| run_peer(socket, peer));
    if let Ok(value) = HeaderValue::from_str(&channel_id) {
        response.headers_mut().insert(CHANNEL_ID_HEADER, value);
    }
    response
}

fn refuse(err: HandshakeError, channel_id: &str) -> Response {
    tracing::info!(channel = %channel_id, status = err.status().as_u16(), reason = %err, "handshake refused");
    err.response(channel_id)
}

/// One connected peer.
struct Peer {
    tunnel: Arc<TunnelEntry>,
    role: Role,
    id: u64,
    channel_id: String,
    announce: bool,
    shutdown: watch::Receiver<bool>,
    /// Keeps the session counted while the connection lives.
    _session: super::SessionGuard,
}

async fn run_peer(socket: WebSocket, peer: Peer) {
    let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
    let (close_tx, close_rx) = watch::channel(None);
    let handle = PeerHandle {
        id: peer.id,
        frames: frames_tx,
        close: close_tx.clone(),
        overflow: Arc::default(),
    };
    let (mut sink, stream) = socket.split();
    if peer
        .tunnel
        .attach(peer.role, handle, peer.announce)
        .is_err()
    {
        let _ = sink
            .send(close_message(&CloseReason::new(
                burrow_proto::service::CLOSE_NORMAL,
                burrow_proto::service::TUNNEL_CLOSED_REASON,
            )))
            .await;
        return;
    }
    let reader = read_loop(stream, &peer, &close_tx, close_rx.clone());
    let writer = write_loop(sink, frames_rx, close_rx, peer.shutdown.clone());
    tokio::pin!(reader, writer);
    tokio::select! {
        () = &mut reader => {
            // The peer closed or broke the rules; in the second case the writer sends the close.
            if close_tx.borrow().is_some() {
                let _ = tokio::time::timeout(CLOSE_GRACE, &mut writer).await;
            }
        }
        () = &mut writer => {
            // A close went out (or the socket failed): give the peer time to answer it.
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
        }
    }
    peer.tunnel.detach(peer.role, peer.id);
    tracing::info!(
        tunnel = peer.tunnel.label(),
        mode = peer.role.mode_name(),
        channel = %peer.channel_id,
        "peer disconnected"
    );
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    peer: &Peer,
    close_tx: &watch::Sender<Option<CloseReason>>,
    close_rx: watch::Receiver<Option<CloseReason>>,
) {
    let mut checker = PeerChecker::new(peer.role);
    let mut dropped = Dropped::default();
    while let Some(item) = stream.next().await {
        let violation = match item {
            Ok(Message::Binary(bytes)) => {
                let received = timing::received();
                if close_rx.borrow().is_some() {
                    // Closing: nothing more is relayed.
                    continue;
                }
                let wait = peer.tunnel.reserve(bytes.len());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let (verdict, route) = peer.tunnel.check(peer.role, peer.id, &mut checker, &bytes);
                if !verdict.relay.is_empty() {
                    match route {
                        // The other peer going away mid-send just drops the frames.
                        Some(route) => {
                            let batch = Batch {
                                frames: verdict.relay,
                                received,
                            };
                            let _ = route.send(batch).await;
                        }
                        None => dropped.note(peer, &verdict.relay),
                    }
                }
                verdict.close
            }
            Ok(Message::Text(_)) => Some(checker.fail(Violation::TextMessage)),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
            Err(err) => match too_long(err) {
                Some(size) => Some(checker.fail(Violation::MessageTooLarge(size))),
                None => break,
            },
        };
        if let Some(violation) = violation {
            tracing::warn!(
                tunnel = peer.tunnel.label(),
                mode = peer.role.mode_name(),
                channel = %peer.channel_id,
                code = violation.close_code(),
                reason = %violation,
                "closing peer: protocol violation"
            );
            close_tx.send_replace(Some(CloseReason::new(
                violation.close_code(),
                &violation.close_reason(),
            )));
            break;
        }
    }
}

/// Frames that found no peer on the other side. The protocol guides say nothing about frames
/// sent while the other side is not connected (AWS does not queue them: "if the WebSocket
/// drops, every stream is dead"), so they are dropped as before; but a STREAM_START lost this
/// way leaves the source waiting for a stream that never started, so it is logged: the first
/// drop of each connection and every STREAM_START at info, the rest at debug.
#[derive(Debug, Default)]
struct Dropped {
    frames: u64,
}

impl Dropped {
    fn note(&mut self, peer: &Peer, relay: &[u8]) {
        let mut starts = 0;
        let mut count = 0;
        for frame in frames::split(relay) {
            count += 1;
            if burrow_proto::codec::decode_body(&frame[LENGTH_PREFIX_LEN..], false)
                .is_ok_and(|m| m.kind() == Some(burrow_proto::MessageType::StreamStart))
            {
                starts += 1;
            }
        }
        let first = self.frames == 0;
        self.frames += count;
        let other = match peer.role {
            Role::Source => Role::Destination,
            Role::Destination => Role::Source,
        }
        .mode_name();
        if starts > 0 || first {
            tracing::info!(
                tunnel = peer.tunnel.label(),
                mode = peer.role.mode_name(),
                channel = %peer.channel_id,
                frames = count,
                stream_starts = starts,
                "frames dropped: the {other} is not connected (a dropped STREAM_START must be sent again once it is)"
            );
        } else {
            tracing::debug!(
                tunnel = peer.tunnel.label(),
                frames = count,
                "frames dropped: no {other}"
            );
        }
    }
}

/// The size of a message the WebSocket layer refused as too long, if that is what `err` is.
fn too_long(err: axum::Error) -> Option<usize> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let inner = err.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { size, .. })) => Some(*size),
        Some(other) => {
            tracing::debug!(err = %other, "WebSocket read failed");
            None
        }
        None => {
            tracing::debug!(err = %inner, "WebSocket read failed");
            None
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Batch>,
    mut close: watch::Receiver<Option<CloseReason>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut packer = Packer::default();
    // When the relay is timed: when each batch being sent now was received.
    let timing = timing::get();
    let mut received = Vec::new();
    loop {
        let reason = tokio::select! {
            biased;
            changed = close.changed() => match changed {
                Ok(()) => close.borrow_and_update().clone(),
                Err(_) => return,
            },
            () = shutting_down(&mut shutdown) => Some(CloseReason::new(
                CLOSE_GOING_AWAY,
                "The tunneling service is shutting down",
            )),
            batch = frames.recv() => {
                let Some(batch) = batch else { return };
                packer.push_frames(&batch.frames);
                received.extend(batch.received);
                while packer.len() < MAX_WS_MESSAGE_LEN
                    && let Ok(more) = frames.try_recv()
                {
                    packer.push_frames(&more.frames);
                    received.extend(more.received);
                }
                while let Some(message) = packer.pop() {
                    if sink.send(Message::Binary(message.into())).await.is_err() {
                        return;
                    }
                }
                if let Some(timing) = timing {
                    for at in received.drain(..) {
                        timing.record(at);
                    }
                }
                None
            }
        };
        if let Some(reason) = reason {
            let _ = sink.send(close_message(&reason)).await;
            return;
        }
    }
}

fn close_message(reason: &CloseReason) -> Message {
    Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: reason.reason.clone().into(),
    }))
}

/// Resolves once `shutdown` turns true (or its sender is gone); holds no borrow of the value
/// across an await, so the futures that select on it stay `Send`.
pub(crate) async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await.map(|_| ());
}
