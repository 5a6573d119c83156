//! A deterministic in-memory tunnel: source endpoint ⇄ simulated service ⇄ destination
//! endpoint, with simulated time.
//!
//! The simulated service (`service.rs`) runs the real rules of `burrow_proto::service` — a
//! `PeerChecker` per peer connection and the tunnel's `TunnelRules`, as `burrow serve` does —
//! announces SERVICE_IDS, and relays each side's frames unchanged but may regroup them into
//! different WebSocket messages ([`Regroup`]). A message the service would close a WebSocket
//! for panics the test with the service's reason. Beyond the service's rules, the harness checks
//! one promise of the endpoints themselves: a destination never adds a service id to a stream
//! started without one. Tests can also inject frames or raw bytes as the service, and replace
//! the source by a newly connecting one ([`Pair::replace_source`]).
//!
//! The destination is a Burrow endpoint; with [`DstRule::LocalProxy`] it also follows AWS's
//! localproxy 3.x rule for a STREAM_START with a new stream id while its service's stream is
//! active: it resets that stream (closing its connections) instead of starting the new one, and
//! so drops the new stream's DATA as stale. `device_client.rs` models AWS's IoT Device Client.
//!
//! It does not model the network: delivery is immediate, reliable and in order.

#![allow(dead_code)]

pub mod device_client;
pub mod service;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use burrow_proto::codec::MAX_WS_MESSAGE_LEN;
use burrow_proto::endpoint::{Config, ConnId, Endpoint, Event, Format, Output, PeerError, Role};
use burrow_proto::{FrameDecoder, Message, MessageType, encode_frame};

use self::service::Service;

/// The rules the destination follows beyond the Burrow endpoint's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DstRule {
    /// The endpoint as it is (a STREAM_START replaces the service's live stream).
    Burrow,
    /// AWS's localproxy 3.x: a STREAM_START with a new id while the service's stream is active
    /// resets that stream and starts nothing.
    LocalProxy,
}

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

/// One direction of the relay.
#[derive(Debug)]
struct Relay {
    /// Decodes the relayed bytes for [`Side::received_frames`].
    decoder: FrameDecoder,
    /// Bytes accepted but not yet delivered.
    pending: VecDeque<Vec<u8>>,
}

/// The localproxy destination's view of its streams (for [`DstRule::LocalProxy`]).
#[derive(Debug, Default)]
struct LocalProxyView {
    /// Decodes what reaches the destination (frames may span messages).
    decoder: FrameDecoder,
    /// The active stream id of each service ("" for a V1 stream).
    active: BTreeMap<String, i32>,
    /// STREAM_STARTs it answered with a reset instead of starting.
    refused_starts: usize,
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
    /// The destination's rule.
    pub dst_rule: DstRule,
    /// The tunneling service's real rules.
    pub service: Service,
    to_dst: Relay,
    to_src: Relay,
    /// Endpoint promise: whether each stream id's STREAM_START carried a service id.
    started_with_service: BTreeMap<i32, bool>,
    localproxy: LocalProxyView,
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
            dst_rule: DstRule::Burrow,
            service: Service::new(services),
            to_dst: Relay {
                decoder: FrameDecoder::strict(),
                pending: VecDeque::new(),
            },
            to_src: Relay {
                decoder: FrameDecoder::strict(),
                pending: VecDeque::new(),
            },
            started_with_service: BTreeMap::new(),
            localproxy: LocalProxyView::default(),
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

    /// The same tunnel with a destination that follows localproxy's rule for stream starts.
    pub fn with_localproxy_destination(mut self) -> Self {
        self.dst_rule = DstRule::LocalProxy;
        self
    }

    /// STREAM_STARTs the localproxy destination answered by resetting its stream.
    pub fn localproxy_refused_starts(&self) -> usize {
        self.localproxy.refused_starts
    }

    /// A new source connects with `config`, replacing the old one (as a reconnecting source
    /// or its replacement does): the service resets the active streams towards the
    /// destination, announces SERVICE_IDS to the new source, and checks it afresh. The
    /// destination stays connected.
    pub fn replace_source(&mut self, config: Config) {
        assert_eq!(config.role, Role::Source);
        self.src = Endpoint::new(config, self.now);
        self.src_side = Side::default();
        self.to_src.pending.clear();
        self.to_src.decoder = FrameDecoder::strict();
        let resets = self.service.replace(Role::Source);
        if !resets.is_empty() {
            self.to_dst.pending.push_back(resets);
        }
        if !self.services.is_empty() {
            let ids = self.service.service_ids();
            self.src
                .handle_bytes(&ids)
                .expect("source accepts SERVICE_IDS");
        }
        self.drive();
    }

    /// A new destination connects with `config`, replacing the old one (a device that
    /// reconnected, or restarted): the service resets the active streams towards the source
    /// and announces SERVICE_IDS to the new destination, which starts with no stream.
    pub fn replace_destination(&mut self, config: Config) {
        assert_eq!(config.role, Role::Destination);
        self.dst = Endpoint::new(config, self.now);
        self.dst_side = Side::default();
        self.to_dst.pending.clear();
        self.to_dst.decoder = FrameDecoder::strict();
        self.localproxy = LocalProxyView::default();
        let resets = self.service.replace(Role::Destination);
        if !resets.is_empty() {
            self.to_src.pending.push_back(resets);
        }
        if !self.services.is_empty() {
            let ids = self.service.service_ids();
            self.dst
                .handle_bytes(&ids)
                .expect("destination accepts SERVICE_IDS");
        }
        self.drive();
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
        let relayed = self.service.accept(from, &bytes);
        let relay = match from {
            Role::Source => &mut self.to_dst,
            Role::Destination => &mut self.to_src,
        };
        let mut frames = Vec::new();
        let mut input: &[u8] = &relayed;
        while let Some(m) = relay
            .decoder
            .decode(&mut input)
            .unwrap_or_else(|e| panic!("the service relayed a frame it should refuse: {e}"))
        {
            frames.push(m);
        }
        if !relayed.is_empty() {
            relay.pending.push_back(relayed);
        }
        for m in frames {
            self.check_endpoint_promises(from, &m);
            if from == Role::Destination && m.kind() == Some(MessageType::StreamReset) {
                // The localproxy destination's own reset ends its active stream.
                self.localproxy.active.retain(|_, id| *id != m.stream_id);
            }
            let to = match from {
                Role::Source => &mut self.dst_side,
                Role::Destination => &mut self.src_side,
            };
            to.received_frames.push(m);
        }
    }

    /// What the endpoints promise beyond the service's rules: a destination answers a stream
    /// started without a service id without one.
    fn check_endpoint_promises(&mut self, from: Role, m: &Message) {
        if m.kind() == Some(MessageType::StreamStart) {
            self.started_with_service
                .insert(m.stream_id, !m.service_id.is_empty());
        }
        if let Some(false) = self.started_with_service.get(&m.stream_id) {
            assert!(
                m.service_id.is_empty(),
                "{from:?} added a service id to stream {} started without one",
                m.stream_id
            );
        }
    }

    /// localproxy's destination rule on bytes for the destination: a STREAM_START with a new
    /// stream id while its service's stream is active resets that stream (the endpoint learns
    /// it as a STREAM_RESET, as if the destination had reset locally) and is not delivered.
    fn localproxy_filter(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut input = bytes;
        let single = match self.services.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        };
        while let Some(m) = self
            .localproxy
            .decoder
            .decode(&mut input)
            .expect("the service relays valid frames")
        {
            let service = if m.service_id.is_empty() {
                single.clone().unwrap_or_default()
            } else {
                m.service_id.clone()
            };
            match m.kind() {
                Some(MessageType::StreamStart) => match self.localproxy.active.get(&service) {
                    Some(&active) if active != m.stream_id => {
                        self.localproxy.active.remove(&service);
                        self.localproxy.refused_starts += 1;
                        let reset = Message {
                            stream_id: active,
                            service_id: m.service_id.clone(),
                            ..Message::of(MessageType::StreamReset)
                        };
                        encode_frame(&reset, &mut out).expect("reset encodes");
                        continue;
                    }
                    _ => {
                        self.localproxy.active.insert(service, m.stream_id);
                    }
                },
                Some(MessageType::StreamReset)
                    if self.localproxy.active.get(&service) == Some(&m.stream_id) =>
                {
                    self.localproxy.active.remove(&service);
                }
                Some(MessageType::SessionReset) => self.localproxy.active.clear(),
                _ => {}
            }
            encode_frame(&m, &mut out).expect("a relayed frame encodes");
        }
        out
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
            let bytes = if receiver == Role::Destination && self.dst_rule == DstRule::LocalProxy {
                self.localproxy_filter(&bytes)
            } else {
                bytes
            };
            if bytes.is_empty() {
                continue;
            }
            let (ep, _) = self.side(receiver);
            ep.handle_bytes(&bytes)
                .unwrap_or_else(|e| panic!("{receiver:?} refused relayed bytes: {e}"));
        }
        true
    }
}
