//! A model of AWS's IoT Device Client (v1.10.1 with `aws-c-iot` 0.1.18) as a tunnel
//! destination, for the devices most fleets run. It cannot run in CI (it needs AWS IoT Core), so
//! the rules read from its source are modelled here, sans-IO like the endpoint:
//!
//! - it offers only the `aws.iot.securetunneling-3.0` subprotocol (the service therefore
//!   announces SERVICE_IDS to it) but speaks V1: its messages carry neither service id nor
//!   connection id;
//! - the first STREAM_START of its WebSocket session fixes the session's format (V1: no service
//!   id; V2: a service id; V3: a connection id too); its library refuses to send a V1 message
//!   in a V2/V3 session, so such a session never gets an answer;
//! - a later STREAM_START of another format makes it drop its WebSocket and dial again; it sends
//!   no client token, so AWS refuses that dial (its token was spent) and the device stays
//!   offline until a new destination token reaches it ([`DeviceClient::offline`]);
//! - its varint encoder refuses values above 2^28−1: it cannot send on a stream with a larger id
//!   ([`DeviceClient::refused_sends`] counts what it could not send);
//! - one service, `SSH` always to `127.0.0.1:22`: each accepted stream is one TCP connection to
//!   an SSH server, modelled as one that speaks first (its banner, [`SSH_BANNER`]) and then
//!   echoes what it gets;
//! - a new STREAM_START of the session's format replaces the active stream (a new TCP
//!   connection); STREAM_RESET for the active stream closes it; DATA for another stream id is
//!   stale and dropped;
//! - it pings every 20 s and writes DATA of at most 32 KiB.
//!
//! Self-contained (only `burrow_proto`), so the app's tests can include it too.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use burrow_proto::codec::{FrameDecoder, encode_frame};
use burrow_proto::{Format, Message, MessageType};

/// What the modelled SSH server sends first on every connection.
pub const SSH_BANNER: &[u8] = b"SSH-2.0-OpenSSH_10.0p2 Debian-7\r\n";
/// The largest value its varint encoder writes (2^28−1).
pub const MAX_VARINT: u64 = (1 << 28) - 1;
/// Its keep-alive interval.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Its largest DATA payload.
pub const MAX_DATA: usize = 32 * 1024;

/// The message format a STREAM_START shows (the endpoint's [`Format`], read by its ids).
pub type WireFormat = Format;

/// The Device Client's tunnel side for one destination token.
#[derive(Debug)]
pub struct DeviceClient {
    decoder: FrameDecoder,
    /// The format the session's first STREAM_START fixed.
    session_format: Option<WireFormat>,
    /// The active stream (one TCP connection to 127.0.0.1:22).
    active: Option<i32>,
    /// WebSocket messages to send: one frame each, as it writes them.
    out: VecDeque<Vec<u8>>,
    next_ping: Duration,
    /// WebSocket pings sent.
    pub pings: usize,
    /// The WebSocket was dropped after a STREAM_START of another format; the redial without a
    /// client token is refused, so the device is offline.
    pub offline: bool,
    /// TCP connections opened to the SSH server.
    pub connections: usize,
    /// Messages its library refused to send (format mismatch, or an id over 2^28−1).
    pub refused_sends: usize,
    /// What the SSH server received on each connection, in order.
    pub received: Vec<Vec<u8>>,
    /// Every DATA payload length it wrote.
    pub data_lengths: Vec<usize>,
}

impl DeviceClient {
    /// A Device Client connected with a fresh token at `now`.
    pub fn new(now: Duration) -> Self {
        Self {
            decoder: FrameDecoder::new(),
            session_format: None,
            active: None,
            out: VecDeque::new(),
            next_ping: now + PING_INTERVAL,
            pings: 0,
            offline: false,
            connections: 0,
            refused_sends: 0,
            received: Vec::new(),
            data_lengths: Vec::new(),
        }
    }

    /// The subprotocols it offers.
    pub fn subprotocols() -> &'static [&'static str] {
        &["aws.iot.securetunneling-3.0"]
    }

    /// The session's format, once fixed.
    pub fn session_format(&self) -> Option<WireFormat> {
        self.session_format
    }

    /// The active stream id.
    pub fn active_stream(&self) -> Option<i32> {
        self.active
    }

    /// One WebSocket message from the service.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.offline {
            return;
        }
        let mut input = bytes;
        while let Some(msg) = self
            .decoder
            .decode(&mut input)
            .expect("the service relays valid frames")
        {
            self.handle_message(msg);
            if self.offline {
                return;
            }
        }
    }

    /// The next WebSocket message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.offline {
            return None;
        }
        self.out.pop_front()
    }

    /// When it next pings.
    pub fn poll_timeout(&self) -> Option<Duration> {
        (!self.offline).then_some(self.next_ping)
    }

    /// Advances its clock.
    pub fn handle_timeout(&mut self, now: Duration) {
        if !self.offline && now >= self.next_ping {
            self.pings += 1;
            self.next_ping = now + PING_INTERVAL;
        }
    }

    /// The SSH server writes `data` on the active connection.
    pub fn sshd_writes(&mut self, data: &[u8]) {
        let Some(stream_id) = self.active else {
            return;
        };
        for chunk in data.chunks(MAX_DATA) {
            let msg = Message {
                stream_id,
                payload: chunk.to_vec(),
                ..Message::of(MessageType::Data)
            };
            if self.send(&msg) {
                self.data_lengths.push(chunk.len());
            }
        }
    }

    /// The SSH server closes the active connection: STREAM_RESET.
    pub fn sshd_closes(&mut self) {
        if let Some(stream_id) = self.active.take() {
            let msg = Message {
                stream_id,
                ..Message::of(MessageType::StreamReset)
            };
            self.send(&msg);
        }
    }

    /// Frames a V1 message, unless its library refuses it.
    fn send(&mut self, msg: &Message) -> bool {
        let fits = u64::try_from(msg.stream_id).is_ok_and(|id| id <= MAX_VARINT)
            && u64::from(msg.connection_id) <= MAX_VARINT;
        if self.session_format != Some(WireFormat::V1) || !fits {
            self.refused_sends += 1;
            return false;
        }
        let mut frame = Vec::new();
        encode_frame(msg, &mut frame).expect("a V1 message encodes");
        self.out.push_back(frame);
        true
    }

    fn handle_message(&mut self, msg: Message) {
        match msg.kind() {
            Some(MessageType::StreamStart) => {
                let format = Format::of_message(&msg);
                match self.session_format {
                    None => self.session_format = Some(format),
                    Some(fixed) if fixed != format => {
                        // It drops the WebSocket and dials again without a client token: AWS
                        // refuses that, and the device stays offline.
                        self.offline = true;
                        self.active = None;
                        return;
                    }
                    Some(_) => {}
                }
                // A new TCP connection to 127.0.0.1:22 (replacing the active one); the SSH
                // server speaks first.
                self.active = Some(msg.stream_id);
                self.connections += 1;
                self.received.push(Vec::new());
                self.sshd_writes(SSH_BANNER);
            }
            Some(MessageType::StreamReset) if self.active == Some(msg.stream_id) => {
                self.active = None;
            }
            Some(MessageType::SessionReset) => self.active = None,
            Some(MessageType::Data) if self.active == Some(msg.stream_id) => {
                if let Some(got) = self.received.last_mut() {
                    got.extend_from_slice(&msg.payload);
                }
                // The modelled SSH server echoes what it gets.
                self.sshd_writes(&msg.payload);
            }
            // Stale DATA, SERVICE_IDS (it wants one service and has it), connection messages
            // (it has no connections within streams), ignorable unknown types.
            _ => {}
        }
    }
}
