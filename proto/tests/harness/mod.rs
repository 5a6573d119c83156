//! A deterministic in-memory tunnel: source endpoint ⇄ simulated service ⇄ destination
//! endpoint, with simulated time.
//!
//! The simulated service behaves like the tunneling service as far as endpoints can observe:
//! it announces SERVICE_IDS, relays each side's frames unchanged but may regroup them into
//! different WebSocket messages ([`Regroup`]), and checks the rules it enforces on clients
//! (binary messages of at most `MAX_WS_MESSAGE_LEN`, no unknown fields, no SERVICE_IDS or
//! SESSION_RESET from clients, no message with a service id on a stream started without one,
//! no DATA for a service never started, only the tunnel's service ids). A broken rule panics
//! the test with a description. Tests can also inject frames or raw bytes as the service.
//!
//! It does not model the network: delivery is immediate, reliable and in order.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use burrow_proto::codec::MAX_WS_MESSAGE_LEN;
use burrow_proto::endpoint::{Config, ConnId, Endpoint, Event, Format, Output, PeerError, Role};
use burrow_proto::{FrameDecoder, Message, MessageType, encode_frame};

/// How the service cuts the byte stream it relays into WebSocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regroup {
    /// Forward each WebSocket message as the sender cut it.
    AsSent,
    /// Cut the byte stream into messages of this many bytes (splitting frames).
    Chunks(usize),
    /// Merge everything pending into as few messages as the size limit allows.
    Coalesce,
}

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Source → destination.
    ToDst,
    /// Destination → source.
    ToSrc,
}

/// What one side's driver collected.
#[derive(Debug, Default)]
pub struct Side {
    /// Events, in order.
    pub events: Vec<Event>,
    /// Pings the endpoint asked for.
    pub pings: usize,
    /// Frames the service relayed *to* this side (after its checks), in order.
    pub received_frames: Vec<Message>,
    /// Bytes of every Transmit this side produced, in order.
    pub transmits: Vec<usize>,
}

impl Side {
    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The concatenated DATA bytes delivered on `conn`.
    pub fn data_on(&self, conn: &ConnId) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Data { conn: c, data } if c == conn => Some(data.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }
}

/// The service's checks on one direction's byte stream.
#[derive(Debug)]
struct Relay {
    decoder: FrameDecoder,
    /// Bytes accepted but not yet delivered.
    pending: VecDeque<Vec<u8>>,
}

/// The whole tunnel.
pub struct Pair {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub src_side: Side,
    pub dst_side: Side,
    pub now: Duration,
    pub regroup: Regroup,
    /// The tunnel's services (what SERVICE_IDS announces).
    pub services: Vec<String>,
    to_dst: Relay,
    to_src: Relay,
    /// Service view: whether each stream id's STREAM_START carried a service id.
    started_with_service: BTreeMap<i32, bool>,
    /// Service view: the service ids a STREAM_START named.
    started_services: BTreeSet<String>,
}

/// A configuration for tests: `first_stream_id` 41 so ids are recognisable.
pub fn config(role: Role, format: Format, services: &[&str]) -> Config {
    let mut config = Config::new(role, format);
    config.services = services.iter().map(|s| (*s).to_owned()).collect();
    config.first_stream_id = 41;
    config
}

/// Encodes messages as one WebSocket message.
pub fn wire(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for msg in msgs {
        encode_frame(msg, &mut out).expect("test frame is valid");
    }
    out
}

/// A stream message as a peer would write it.
pub fn msg(kind: MessageType, stream_id: i32, service_id: &str, connection_id: u32) -> Message {
    Message {
        stream_id,
        service_id: service_id.to_owned(),
        connection_id,
        ..Message::of(kind)
    }
}

/// A DATA message as a peer would write it.
pub fn data(stream_id: i32, service_id: &str, connection_id: u32, payload: &[u8]) -> Message {
    Message {
        payload: payload.to_vec(),
        ..msg(MessageType::Data, stream_id, service_id, connection_id)
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl Pair {
    /// Connects both endpoints to a tunnel with `services`; the service announces them
    /// (SERVICE_IDS) to both sides when the list is not empty, as the real service does.
    pub fn new(src: Config, dst: Config, services: &[&str]) -> Self {
        assert_eq!(src.role, Role::Source);
        assert_eq!(dst.role, Role::Destination);
        let mut pair = Pair {
            src: Endpoint::new(src, Duration::ZERO),
            dst: Endpoint::new(dst, Duration::ZERO),
            src_side: Side::default(),
            dst_side: Side::default(),
            now: Duration::ZERO,
            regroup: Regroup::AsSent,
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            to_dst: Relay {
                decoder: FrameDecoder::strict(),
                pending: VecDeque::new(),
            },
            to_src: Relay {
                decoder: FrameDecoder::strict(),
                pending: VecDeque::new(),
            },
            started_with_service: BTreeMap::new(),
            started_services: BTreeSet::new(),
        };
        if !pair.services.is_empty() {
            let ids = Message {
                available_service_ids: pair.services.clone(),
                ..Message::of(MessageType::ServiceIds)
            };
            pair.service_sends(Dir::ToSrc, std::slice::from_ref(&ids))
                .expect("source accepts SERVICE_IDS");
            pair.service_sends(Dir::ToDst, &[ids])
                .expect("destination accepts SERVICE_IDS");
        }
        pair
    }

    /// A V3 ⇄ V3 tunnel with the single service "SSH", both sides configured for it.
    pub fn v3_ssh() -> Self {
        Pair::new(
            config(Role::Source, Format::V3, &[]),
            config(Role::Destination, Format::V3, &["SSH"]),
            &["SSH"],
        )
    }

    /// The endpoint and its collected outputs on one side.
    fn side(&mut self, role: Role) -> (&mut Endpoint, &mut Side) {
        match role {
            Role::Source => (&mut self.src, &mut self.src_side),
            Role::Destination => (&mut self.dst, &mut self.dst_side),
        }
    }

    /// The service delivers frames of its own (SERVICE_IDS, SESSION_RESET, a forged STREAM_RESET
    /// …) as one WebSocket message, then the pair runs until quiet.
    pub fn service_sends(&mut self, dir: Dir, msgs: &[Message]) -> Result<(), PeerError> {
        self.inject(dir, &wire(msgs))
    }

    /// Delivers raw bytes as one WebSocket message, bypassing the service's checks, then runs
    /// the pair until quiet. Returns the receiving endpoint's verdict.
    pub fn inject(&mut self, dir: Dir, bytes: &[u8]) -> Result<(), PeerError> {
        let receiver = match dir {
            Dir::ToDst => Role::Destination,
            Dir::ToSrc => Role::Source,
        };
        let (ep, _) = self.side(receiver);
        let result = ep.handle_bytes(bytes);
        let mut input = bytes;
        let mut decoder = FrameDecoder::new();
        while let Ok(Some(m)) = decoder.decode(&mut input) {
            self.side(receiver).1.received_frames.push(m);
        }
        self.drive();
        result
    }

    /// Runs both endpoints and the service until nothing moves.
    pub fn drive(&mut self) {
        loop {
            let mut moved = self.drain(Role::Source);
            moved |= self.drain(Role::Destination);
            moved |= self.deliver(Dir::ToDst);
            moved |= self.deliver(Dir::ToSrc);
            if !moved {
                break;
            }
        }
    }

    /// Advances simulated time to `until`, firing every deadline on the way in order.
    pub fn advance_to(&mut self, until: Duration) {
        loop {
            let next = [self.src.poll_timeout(), self.dst.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(deadline) if deadline <= until => {
                    self.now = self.now.max(deadline);
                    self.src.handle_timeout(self.now);
                    self.dst.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = until;
        self.src.handle_timeout(until);
        self.dst.handle_timeout(until);
        self.drive();
    }

    /// Polls one endpoint dry; transmits go to the service.
    fn drain(&mut self, role: Role) -> bool {
        let mut moved = false;
        loop {
            let (ep, side) = self.side(role);
            let pending = ep.pending_bytes();
            let Some(out) = ep.poll_output() else { break };
            moved = true;
            match out {
                Output::Transmit(bytes) => {
                    assert!(!bytes.is_empty(), "{role:?} sent an empty message");
                    assert!(bytes.len() <= pending, "pending_bytes counts the transmit");
                    side.transmits.push(bytes.len());
                    self.service_accepts(role, bytes);
                }
                Output::Event(event) => side.events.push(event),
                Output::Ping => side.pings += 1,
            }
        }
        moved
    }

    /// The service's checks on what a client sent, then queueing for the peer.
    fn service_accepts(&mut self, from: Role, bytes: Vec<u8>) {
        assert!(
            bytes.len() <= MAX_WS_MESSAGE_LEN,
            "{from:?} sent a WebSocket message of {} bytes",
            bytes.len()
        );
        let relay = match from {
            Role::Source => &mut self.to_dst,
            Role::Destination => &mut self.to_src,
        };
        let mut frames = Vec::new();
        let mut input: &[u8] = &bytes;
        while let Some(m) = relay
            .decoder
            .decode(&mut input)
            .unwrap_or_else(|e| panic!("service refuses {from:?}'s frame: {e}"))
        {
            frames.push(m);
        }
        relay.pending.push_back(bytes);
        for m in frames {
            self.check_rules(from, &m);
            let to = match from {
                Role::Source => &mut self.dst_side,
                Role::Destination => &mut self.src_side,
            };
            to.received_frames.push(m);
        }
    }

    /// The rules the service enforces on clients (it closes the WebSocket otherwise).
    fn check_rules(&mut self, from: Role, m: &Message) {
        let kind = m.kind();
        assert!(
            !matches!(
                kind,
                Some(MessageType::ServiceIds | MessageType::SessionReset)
            ),
            "{from:?} sent {kind:?}, which only the service may send"
        );
        if !m.service_id.is_empty() && !self.services.is_empty() {
            assert!(
                self.services.contains(&m.service_id),
                "{from:?} used service id {:?}, not one of the tunnel's",
                m.service_id
            );
        }
        match kind {
            Some(MessageType::StreamStart) => {
                assert_eq!(from, Role::Source, "only a source starts streams");
                self.started_with_service
                    .insert(m.stream_id, !m.service_id.is_empty());
                if !m.service_id.is_empty() {
                    self.started_services.insert(m.service_id.clone());
                }
            }
            Some(MessageType::Data) if !m.service_id.is_empty() => {
                assert!(
                    self.started_services.contains(&m.service_id),
                    "{from:?} sent DATA for service {:?} never started",
                    m.service_id
                );
            }
            _ => {}
        }
        if let Some(false) = self.started_with_service.get(&m.stream_id) {
            assert!(
                m.service_id.is_empty(),
                "{from:?} added a service id to stream {} started without one",
                m.stream_id
            );
        }
    }

    /// Hands queued bytes to the receiving endpoint, regrouped.
    fn deliver(&mut self, dir: Dir) -> bool {
        let relay = match dir {
            Dir::ToDst => &mut self.to_dst,
            Dir::ToSrc => &mut self.to_src,
        };
        if relay.pending.is_empty() {
            return false;
        }
        let sent: Vec<Vec<u8>> = relay.pending.drain(..).collect();
        let messages: Vec<Vec<u8>> = match self.regroup {
            Regroup::AsSent => sent,
            Regroup::Chunks(n) => sent.concat().chunks(n).map(<[u8]>::to_vec).collect(),
            Regroup::Coalesce => sent
                .concat()
                .chunks(MAX_WS_MESSAGE_LEN)
                .map(<[u8]>::to_vec)
                .collect(),
        };
        let receiver = match dir {
            Dir::ToDst => Role::Destination,
            Dir::ToSrc => Role::Source,
        };
        for bytes in messages {
            let (ep, _) = self.side(receiver);
            ep.handle_bytes(&bytes)
                .unwrap_or_else(|e| panic!("{receiver:?} refused relayed bytes: {e}"));
        }
        true
    }
}
