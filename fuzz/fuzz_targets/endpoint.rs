//! Fuzzes the tunnel endpoint with arbitrary operation sequences for both roles and all three
//! formats: raw bytes and well-formed (or deliberately broken) frames from the peer, the
//! application's commands, and time passing.
//!
//! Invariants checked after every operation:
//! - every `Transmit` is non-empty, at most `MAX_WS_MESSAGE_LEN` bytes, and holds whole frames
//!   that the service's strict decoder accepts;
//! - an endpoint never sends SERVICE_IDS or SESSION_RESET, a destination never opens streams or
//!   connections, and each format writes only its own fields;
//! - the DATA payload bytes sent equal the bytes the application successfully passed to `send`;
//! - `pending_bytes` counts exactly what `poll_output` then hands out;
//! - a failed endpoint keeps returning its error and refuses commands;
//! - the next deadline is always after the time just handled.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use burrow_proto::codec::{MAX_FRAME_LEN, MAX_PAYLOAD_LEN, MAX_WS_MESSAGE_LEN};
use burrow_proto::endpoint::{
    Config, ConnId, Endpoint, Event, Format, LocalError, MAX_ID, Output, PeerError, Role,
};
use burrow_proto::{FrameDecoder, Message, MessageType, encode_frame};
use libfuzzer_sys::fuzz_target;
use shared::{cut, encode_unchecked};

mod shared;

// Two maximal frames fit in one WebSocket message: the batching the target checks relies on it.
const _: () = assert!(MAX_FRAME_LEN * 2 <= MAX_WS_MESSAGE_LEN);

const SERVICES: [&str; 5] = ["SSH", "RDP", "HTTP", "", "x"];

#[derive(Debug, Arbitrary)]
struct Input {
    source: bool,
    format: u8,
    services: u8,
    ping_ms: Option<u16>,
    first_stream_id: i32,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Raw(Vec<u8>),
    Frames { frames: Vec<Frame>, split: u16 },
    OpenStream(Option<u8>),
    OpenConnection(Option<u8>),
    Send { conn: u8, len: u16, times: u8 },
    Close(u8),
    ResetStream(u8),
    Advance(u16),
}

#[derive(Debug, Arbitrary)]
struct Frame {
    kind: u8,
    stream: u8,
    service: u8,
    conn: u8,
    ignorable: bool,
    payload_len: u16,
    ids: Vec<u8>,
}

struct Harness {
    ep: Endpoint,
    role: Role,
    format: Format,
    ping: bool,
    /// The service's view of what this endpoint sent.
    sent: FrameDecoder,
    conns: Vec<ConnId>,
    stream_ids: Vec<i32>,
    data_in: usize,
    data_out: usize,
    now: Duration,
    failed: Option<PeerError>,
}

impl Harness {
    fn drain(&mut self) {
        let pending = self.ep.pending_bytes();
        let mut transmitted = 0;
        while let Some(out) = self.ep.poll_output() {
            match out {
                Output::Transmit(bytes) => {
                    assert!(!bytes.is_empty(), "empty transmit");
                    assert!(bytes.len() <= MAX_WS_MESSAGE_LEN, "transmit too long");
                    transmitted += bytes.len();
                    self.check_frames(&bytes);
                }
                Output::Event(event) => self.on_event(event),
                Output::Ping => assert!(self.ping, "ping without keep-alive"),
            }
        }
        assert_eq!(pending, transmitted, "pending_bytes matches the transmits");
        assert_eq!(self.ep.pending_bytes(), 0);
        assert_eq!(
            self.data_in, self.data_out,
            "every sent byte is in a DATA frame"
        );
    }

    fn check_frames(&mut self, bytes: &[u8]) {
        let mut input = bytes;
        while let Some(msg) = self
            .sent
            .decode(&mut input)
            .expect("endpoint output decodes")
        {
            let kind = msg.kind().expect("endpoint writes known types");
            assert!(!matches!(
                kind,
                MessageType::ServiceIds | MessageType::SessionReset
            ));
            if self.role == Role::Destination {
                assert!(!matches!(
                    kind,
                    MessageType::StreamStart | MessageType::ConnectionStart
                ));
            }
            if self.format == Format::V1 {
                assert!(msg.service_id.is_empty(), "V1 writes no service id");
            }
            if self.format != Format::V3 && kind != MessageType::ConnectionReset {
                assert_eq!(msg.connection_id, 0, "V1/V2 write no connection id");
            }
            if kind == MessageType::Data {
                assert!(!msg.payload.is_empty() && msg.payload.len() <= MAX_PAYLOAD_LEN);
                self.data_out += msg.payload.len();
            }
            self.stream_ids.push(msg.stream_id);
        }
        assert_eq!(self.sent.buffered(), 0, "transmits hold whole frames");
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::ConnectionRequested(conn) => {
                assert_eq!(self.role, Role::Destination);
                assert_ne!(conn.stream_id, 0);
                assert_ne!(conn.connection_id, 0);
                self.stream_ids.push(conn.stream_id);
                self.conns.push(conn);
            }
            Event::Data { conn, data } => {
                assert!(!data.is_empty() && data.len() <= MAX_PAYLOAD_LEN);
                assert_ne!(conn.connection_id, 0);
            }
            Event::ConnectionClosed { conn, .. } => assert_ne!(conn.connection_id, 0),
            Event::ConnectionRefused { conn, limit } => {
                assert_eq!(self.role, Role::Destination);
                assert_ne!(conn.connection_id, 0);
                assert!(limit >= 1);
            }
            Event::ServiceIds(ids) => {
                assert!(ids.len() <= 3);
                assert!(ids.iter().all(|id| !id.is_empty()));
            }
        }
    }

    fn frame(&self, f: &Frame) -> Message {
        let stream_id = match f.stream % 8 {
            0 => 0,
            1 => 1,
            2 => -1,
            _ => self
                .stream_ids
                .get(usize::from(f.stream) % self.stream_ids.len().max(1))
                .copied()
                .unwrap_or(7),
        };
        let kind = i32::from(f.kind % 10);
        // Mostly small payloads (fast runs), and sometimes one right at the limit.
        let len = match f.payload_len {
            n @ 0..=64_999 => usize::from(n) % 700,
            n => MAX_PAYLOAD_LEN - 1 + usize::from(n - 65_000) % 3,
        };
        let payload = if kind == 1 {
            vec![0xA5; len]
        } else {
            Vec::new()
        };
        Message {
            r#type: kind,
            stream_id,
            ignorable: f.ignorable,
            payload,
            service_id: SERVICES[usize::from(f.service) % SERVICES.len()].to_owned(),
            available_service_ids: f
                .ids
                .iter()
                .take(5)
                .map(|i| SERVICES[usize::from(*i) % SERVICES.len()].to_owned())
                .collect(),
            connection_id: u32::from(f.conn % 4),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let result = self.ep.handle_bytes(bytes);
        if let Some(err) = &self.failed {
            assert_eq!(result.as_ref(), Err(err), "a failed endpoint stays failed");
        }
        if let Err(err) = result {
            assert_eq!(self.ep.failure(), Some(&err));
            assert!(self.ep.connections().is_empty());
            self.failed = Some(err);
        }
    }

    fn command(&mut self, result: Result<(), LocalError>) {
        if self.failed.is_some() {
            assert!(matches!(result, Err(LocalError::Failed(_))));
        }
    }

    fn pick(&self, i: u8) -> ConnId {
        self.conns
            .get(usize::from(i) % self.conns.len().max(1))
            .cloned()
            .unwrap_or(ConnId {
                service_id: "SSH".to_owned(),
                stream_id: 1,
                connection_id: 1,
            })
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Raw(bytes) => self.feed(&bytes),
            Op::Frames { frames, split } => {
                let mut wire = Vec::new();
                for f in &frames {
                    let msg = self.frame(f);
                    if encode_frame(&msg, &mut wire).is_err() {
                        encode_unchecked(&msg, false, &mut wire);
                    }
                }
                for part in cut(&wire, split) {
                    self.feed(part);
                }
            }
            Op::OpenStream(service) => {
                let name = service.map(|i| SERVICES[usize::from(i) % SERVICES.len()]);
                let result = self.ep.open_stream(name).map(|conn| {
                    assert!(self.ep.is_open(&conn));
                    self.stream_ids.push(conn.stream_id);
                    self.conns.push(conn);
                });
                if self.role == Role::Destination && self.failed.is_none() {
                    assert!(matches!(result, Err(LocalError::WrongRole(_))));
                }
                self.command(result);
            }
            Op::OpenConnection(service) => {
                let name = service.map(|i| SERVICES[usize::from(i) % SERVICES.len()]);
                let result = self.ep.open_connection(name).map(|conn| {
                    assert!(self.ep.is_open(&conn));
                    assert!((1..=MAX_ID).contains(&conn.stream_id));
                    assert!((1..=MAX_ID.unsigned_abs()).contains(&conn.connection_id));
                    self.conns.push(conn);
                });
                if self.format != Format::V3 && self.failed.is_none() && self.role == Role::Source {
                    assert!(
                        matches!(
                            result,
                            Ok(_)
                                | Err(LocalError::NeedsV3
                                    | LocalError::ServiceRequired(_)
                                    | LocalError::UnknownService(_))
                        ),
                        "{result:?}"
                    );
                }
                self.command(result);
            }
            Op::Send { conn, len, times } => {
                let conn = self.pick(conn);
                // Mostly keystroke-sized sends; `times` ≥ 250 makes one of up to 256 KiB.
                let n = if times >= 250 {
                    usize::from(len) * usize::from(times - 249)
                } else {
                    usize::from(len) % 1500
                };
                let data = vec![0x3C; n];
                let was_open = self.ep.is_open(&conn);
                let result = self.ep.send(&conn, &data);
                assert_eq!(result.is_ok(), was_open && self.failed.is_none());
                if result.is_ok() {
                    self.data_in += data.len();
                }
                self.command(result);
            }
            Op::Close(conn) => {
                let conn = self.pick(conn);
                let result = self.ep.close(&conn);
                if result.is_ok() {
                    assert!(!self.ep.is_open(&conn));
                }
                self.command(result);
            }
            Op::ResetStream(service) => {
                let name = SERVICES[usize::from(service) % SERVICES.len()];
                let result = self.ep.reset_stream(name);
                self.command(result);
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.ep.handle_timeout(self.now);
                if let Some(deadline) = self.ep.poll_timeout() {
                    assert!(deadline > self.now, "deadline not in the future");
                }
            }
        }
        self.drain();
    }
}

fuzz_target!(|input: Input| {
    let role = if input.source {
        Role::Source
    } else {
        Role::Destination
    };
    let format = [Format::V1, Format::V2, Format::V3][usize::from(input.format % 3)];
    let mut config = Config::new(role, format);
    config.services = (0..3)
        .filter(|i| input.services & (1 << i) != 0)
        .map(|i| SERVICES[i].to_owned())
        .collect();
    config.ping_interval = input.ping_ms.map(|ms| Duration::from_millis(u64::from(ms)));
    config.first_stream_id = input.first_stream_id;
    let ping = config.ping_interval.is_some_and(|p| !p.is_zero());
    let mut harness = Harness {
        ep: Endpoint::new(config, Duration::ZERO),
        role,
        format,
        ping,
        sent: FrameDecoder::strict(),
        conns: Vec::new(),
        stream_ids: Vec::new(),
        data_in: 0,
        data_out: 0,
        now: Duration::ZERO,
        failed: None,
    };

    for op in input.ops.into_iter().take(64) {
        harness.run(op);
    }
});
