//! The tunneling service's own rules: what it refuses from a source or a destination, and the
//! few control messages it writes itself.
//!
//! The local service in `burrow-server` relays each peer's frames to the other peer unchanged.
//! Before it does, every frame passes through a [`PeerChecker`] (one per WebSocket connection)
//! and the tunnel's shared [`TunnelRules`]:
//!
//! - the byte stream is cut into frames (WebSocket message boundaries are not frame boundaries)
//!   and each frame body is decoded strictly, so unknown protobuf fields, undecodable bodies,
//!   a missing type, stream messages with stream id 0 and payloads over 63 KiB are refused
//!   (the same checks as [`FrameDecoder::strict`](crate::codec::FrameDecoder::strict));
//! - SERVICE_IDS and SESSION_RESET are service-only; STREAM_START is source-only;
//! - a service id must be one of the tunnel's; DATA must belong to a service some STREAM_START
//!   started;
//! - messages with and without service ids must not be mixed: a source keeps one choice for its
//!   whole connection (the V2 guide: a local proxy "is not allowed to alternate between messages
//!   with and without service ID field during the lifetime of a tunnel connection"), a
//!   destination keeps one choice per stream. A destination answers each stream in the format its
//!   source started it with (the V2/V3 guides' backward-compatibility rules), and the sources
//!   that follow each other while it stays connected may write different formats: a V3
//!   destination serves a V2 source with service ids and then that source's V1 replacement
//!   without, on one WebSocket.
//!
//! The checker returns the raw bytes of the frames that passed (so they are relayed byte for
//! byte) and, at the first violation, the reason and WebSocket close code to close with.
//! [`TunnelRules`] also tracks each service's active stream, so that when a peer is replaced by a
//! newly connecting one the service can send the other side STREAM_RESET for those streams, and
//! writes the SERVICE_IDS message sent after every handshake.
//!
//! This module deliberately knows nothing about sockets, tokens, lifetimes or bandwidth: those
//! are the server's business.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{FrameError, LENGTH_PREFIX_LEN, MAX_WS_MESSAGE_LEN, decode_body, encode_frame};
use crate::endpoint::{MAX_SERVICE_ID_LEN, MAX_SERVICES, Role};
use crate::frames::{self, frame_len};
use crate::message::{Message, MessageType};

/// WebSocket close code for a normal close ("Tunnel is closed").
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code for "going away" (the service shuts down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code for a protocol error (also used when a peer is replaced).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code for data the endpoint cannot accept (a text message).
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// WebSocket close code for a message that is too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The reason sent with [`CLOSE_NORMAL`] when a tunnel is closed or expires.
pub const TUNNEL_CLOSED_REASON: &str = "Tunnel is closed";
/// The reason sent with [`CLOSE_PROTOCOL_ERROR`] to a peer replaced by a newer connection.
pub const REPLACED_REASON: &str = "Connection replaced by a new connection of the same mode";
/// Longest close reason a WebSocket close frame can carry, in bytes.
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// Why the service closes a peer's WebSocket. Every variant is the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The peer sent a text WebSocket message; the protocol is binary only.
    #[error("text messages are not allowed")]
    TextMessage,
    /// The peer sent a WebSocket message over [`MAX_WS_MESSAGE_LEN`] bytes.
    #[error("message of {0} bytes exceeds the limit of 131076")]
    MessageTooLarge(usize),
    /// A frame failed the codec's strict checks.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// SERVICE_IDS or SESSION_RESET, which only the service may send.
    #[error("{0:?} may only be sent by the service")]
    ServiceOnly(MessageType),
    /// STREAM_START from a destination.
    #[error("StreamStart may only be sent by a source")]
    StreamStartFromDestination,
    /// A service id the tunnel does not have.
    #[error("service id {0:?} is not a service of this tunnel")]
    UnknownService(String),
    /// Messages with and without service ids from one source connection, or on one stream of
    /// a destination connection.
    #[error("messages with and without service ids are mixed")]
    MixedServiceIds,
    /// DATA for a service no STREAM_START ever started.
    #[error("data for service {0:?}, which was never started")]
    ServiceNotStarted(String),
}

impl Violation {
    /// The WebSocket close code the service sends for this violation.
    pub fn close_code(&self) -> u16 {
        match self {
            Violation::TextMessage => CLOSE_UNSUPPORTED_DATA,
            Violation::MessageTooLarge(_) => CLOSE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }

    /// The close reason: the error text, cut to what a close frame can carry.
    pub fn close_reason(&self) -> String {
        truncate_reason(&self.to_string())
    }
}

/// Cuts `reason` to at most [`MAX_CLOSE_REASON_LEN`] bytes on a character boundary.
pub fn truncate_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON_LEN {
        return reason.to_owned();
    }
    let mut end = MAX_CLOSE_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// A tunnel's service list was refused (OpenTunnel / RotateTunnelAccessToken input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceListError {
    /// More than [`MAX_SERVICES`] services.
    #[error("a tunnel can have at most 3 services, not {0}")]
    TooMany(usize),
    /// An id that is empty, longer than 128 characters, or has characters outside
    /// `[a-zA-Z0-9:_-]`.
    #[error("invalid service id {0:?}")]
    InvalidId(String),
    /// The same id twice.
    #[error("duplicate service id {0:?}")]
    Duplicate(String),
}

/// Whether `id` is a service id AWS accepts: 1 to 128 characters of `[a-zA-Z0-9:_-]`.
pub fn is_valid_service_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SERVICE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// Checks a tunnel's service list: at most three valid, distinct ids.
pub fn check_service_list(services: &[String]) -> Result<(), ServiceListError> {
    if services.len() > MAX_SERVICES {
        return Err(ServiceListError::TooMany(services.len()));
    }
    let mut seen = BTreeSet::new();
    for id in services {
        if !is_valid_service_id(id) {
            return Err(ServiceListError::InvalidId(id.clone()));
        }
        if !seen.insert(id.as_str()) {
            return Err(ServiceListError::Duplicate(id.clone()));
        }
    }
    Ok(())
}

/// The state one tunnel's rules need, shared by its source and destination connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelRules {
    /// The tunnel's service ids (`destinationConfig.services`), possibly empty.
    services: Vec<String>,
    /// Services some STREAM_START started during the tunnel's life; "" stands for a stream
    /// started without a service id (a V1 source), which covers every service.
    started: BTreeSet<String>,
    /// The active stream id of each service ("" for streams without a service id).
    active: BTreeMap<String, i32>,
}

impl TunnelRules {
    /// Rules for a tunnel with these services.
    pub fn new(services: Vec<String>) -> Result<Self, ServiceListError> {
        check_service_list(&services)?;
        Ok(Self {
            services,
            ..Self::default()
        })
    }

    /// The tunnel's service ids.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Replaces the service list (RotateTunnelAccessToken with a `destinationConfig`).
    pub fn set_services(&mut self, services: Vec<String>) -> Result<(), ServiceListError> {
        check_service_list(&services)?;
        self.services = services;
        Ok(())
    }

    /// The active stream id of each service, "" for a stream without a service id.
    pub fn active_streams(&self) -> &BTreeMap<String, i32> {
        &self.active
    }

    /// The SERVICE_IDS frame the service sends right after a V2/V3 handshake.
    pub fn service_ids_frame(&self) -> Vec<u8> {
        let msg = Message {
            available_service_ids: self.services.clone(),
            ..Message::of(MessageType::ServiceIds)
        };
        let mut out = Vec::new();
        // A SERVICE_IDS message of at most three ids of at most 128 bytes always encodes.
        if encode_frame(&msg, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// STREAM_RESET frames for every active stream, for the peer that stays when the other side
    /// is replaced; the streams stop being active. Empty when no stream is active.
    pub fn take_resets(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for (service_id, stream_id) in std::mem::take(&mut self.active) {
            let msg = Message {
                stream_id,
                service_id,
                ..Message::of(MessageType::StreamReset)
            };
            // The stream id is non-zero (it passed the codec) and the service id is short.
            if encode_frame(&msg, &mut out).is_err() {
                continue;
            }
        }
        out
    }

    fn knows(&self, service_id: &str) -> bool {
        self.services.iter().any(|s| s == service_id)
    }

    fn start(&mut self, service_id: &str, stream_id: i32) {
        self.started.insert(service_id.to_owned());
        self.active.insert(service_id.to_owned(), stream_id);
    }

    fn was_started(&self, service_id: &str) -> bool {
        if service_id.is_empty() {
            !self.started.is_empty()
        } else {
            self.started.contains(service_id) || self.started.contains("")
        }
    }

    fn reset(&mut self, service_id: &str, stream_id: i32) {
        if service_id.is_empty() {
            // A V1 peer resets by stream id alone, whatever service the stream belongs to.
            self.active.retain(|_, id| *id != stream_id);
        } else {
            for key in [service_id, ""] {
                if self.active.get(key) == Some(&stream_id) {
                    self.active.remove(key);
                }
            }
        }
    }
}

/// What the service does with one WebSocket message from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The raw bytes of every whole frame that passed, in order, ready to relay.
    pub relay: Vec<u8>,
    /// Set at the first violation: close the connection with this reason. Frames after the
    /// violating one are dropped.
    pub close: Option<Violation>,
}

/// How many streams a destination connection's service-id choice is remembered for (the most
/// recent ones; a tunnel has at most three services, each with one active stream).
const REMEMBERED_STREAMS: usize = 8;

/// The checks on one peer connection (one per WebSocket, for its whole life).
#[derive(Debug)]
pub struct PeerChecker {
    role: Role,
    /// The unfinished frame carried over from earlier messages (at most one frame).
    partial: Vec<u8>,
    /// Source: whether this connection's stream messages carry service ids (set by the first).
    uses_service_ids: Option<bool>,
    /// Destination: whether its messages on each recent stream carry service ids (set by the
    /// first on that stream), newest last, at most [`REMEMBERED_STREAMS`].
    stream_uses_service_ids: Vec<(i32, bool)>,
    /// Set by the first violation; the connection is finished.
    failed: Option<Violation>,
}

impl PeerChecker {
    /// A checker for a peer connected in `role`'s mode.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            partial: Vec::new(),
            uses_service_ids: None,
            stream_uses_service_ids: Vec::new(),
            failed: None,
        }
    }

    /// The mode the peer connected in.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Bytes of an unfinished frame held back from earlier messages.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Records a violation found outside the frames (a text message, an oversize message the
    /// WebSocket layer refused) and returns it, so every later call reports it too.
    pub fn fail(&mut self, violation: Violation) -> Violation {
        self.partial = Vec::new();
        self.failed.get_or_insert(violation).clone()
    }

    /// Checks one binary WebSocket message against the frame rules and the tunnel's rules.
    pub fn feed(&mut self, ws_message: &[u8], rules: &mut TunnelRules) -> Verdict {
        let mut verdict = Verdict::default();
        if let Some(violation) = &self.failed {
            verdict.close = Some(violation.clone());
            return verdict;
        }
        if ws_message.len() > MAX_WS_MESSAGE_LEN {
            verdict.close = Some(self.fail(Violation::MessageTooLarge(ws_message.len())));
            return verdict;
        }
        if let Err(violation) = self.feed_frames(ws_message, rules, &mut verdict.relay) {
            verdict.close = Some(self.fail(violation));
        }
        verdict
    }

    fn feed_frames(
        &mut self,
        mut input: &[u8],
        rules: &mut TunnelRules,
        relay: &mut Vec<u8>,
    ) -> Result<(), Violation> {
        if !self.partial.is_empty() {
            // Finish the frame carried over from earlier messages first.
            if self.partial.len() < LENGTH_PREFIX_LEN {
                let n = (LENGTH_PREFIX_LEN - self.partial.len()).min(input.len());
                self.partial.extend_from_slice(&input[..n]);
                input = &input[n..];
                if self.partial.len() < LENGTH_PREFIX_LEN {
                    return Ok(());
                }
            }
            let Some(total) = frame_len(&self.partial) else {
                return Ok(());
            };
            let n = (total - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.partial.len() < total {
                return Ok(());
            }
            let frame = std::mem::take(&mut self.partial);
            self.check_frame(&frame, rules)?;
            relay.extend_from_slice(&frame);
        }
        let mut whole = frames::split(input);
        for frame in whole.by_ref() {
            self.check_frame(frame, rules)?;
            relay.extend_from_slice(frame);
        }
        self.partial.extend_from_slice(whole.rest());
        Ok(())
    }

    /// Decodes one whole frame (prefix included) strictly and applies the rules to it.
    fn check_frame(&mut self, frame: &[u8], rules: &mut TunnelRules) -> Result<(), Violation> {
        let msg = decode_body(&frame[LENGTH_PREFIX_LEN..], true)?;
        self.check_message(&msg, rules)
    }

    fn check_message(&mut self, msg: &Message, rules: &mut TunnelRules) -> Result<(), Violation> {
        // `decode_body` already refused type 0 and unknown types that are not ignorable, so a
        // type this crate does not know is an ignorable one: relay it for the peer to skip.
        let Some(kind) = msg.kind() else {
            return Ok(());
        };
        match kind {
            MessageType::ServiceIds | MessageType::SessionReset => {
                return Err(Violation::ServiceOnly(kind));
            }
            MessageType::StreamStart if self.role == Role::Destination => {
                return Err(Violation::StreamStartFromDestination);
            }
            _ => {}
        }
        if !kind.is_stream_message() {
            return Ok(());
        }
        let has_id = !msg.service_id.is_empty();
        if self.uses_service_ids(msg.stream_id, has_id) != has_id {
            return Err(Violation::MixedServiceIds);
        }
        if has_id && !rules.knows(&msg.service_id) {
            return Err(Violation::UnknownService(msg.service_id.clone()));
        }
        match kind {
            MessageType::StreamStart => rules.start(&msg.service_id, msg.stream_id),
            MessageType::Data if !rules.was_started(&msg.service_id) => {
                return Err(Violation::ServiceNotStarted(msg.service_id.clone()));
            }
            MessageType::StreamReset => rules.reset(&msg.service_id, msg.stream_id),
            _ => {}
        }
        Ok(())
    }
}

impl PeerChecker {
    /// Whether this connection's stream messages (a source's) or its messages on `stream_id`
    /// (a destination's) carry service ids; the first message decides, as `has_id`.
    fn uses_service_ids(&mut self, stream_id: i32, has_id: bool) -> bool {
        if self.role == Role::Source {
            return *self.uses_service_ids.get_or_insert(has_id);
        }
        if let Some(&(_, uses)) = self
            .stream_uses_service_ids
            .iter()
            .find(|(id, _)| *id == stream_id)
        {
            return uses;
        }
        if self.stream_uses_service_ids.len() == REMEMBERED_STREAMS {
            self.stream_uses_service_ids.remove(0);
        }
        self.stream_uses_service_ids.push((stream_id, has_id));
        has_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MAX_PAYLOAD_LEN;

    fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(msg, &mut out).expect("test message encodes");
        out
    }

    fn msg(kind: MessageType, stream_id: i32, service_id: &str) -> Message {
        Message {
            stream_id,
            service_id: service_id.to_owned(),
            ..Message::of(kind)
        }
    }

    fn data(stream_id: i32, service_id: &str, payload: &[u8]) -> Message {
        Message {
            payload: payload.to_vec(),
            ..msg(MessageType::Data, stream_id, service_id)
        }
    }

    fn rules(services: &[&str]) -> TunnelRules {
        TunnelRules::new(services.iter().map(|s| (*s).to_owned()).collect())
            .expect("valid services")
    }

    /// Feeds each message as its own WebSocket message; returns the verdict of the last one,
    /// after checking that every earlier one passed whole.
    fn check(role: Role, rules: &mut TunnelRules, msgs: &[Message]) -> Option<Violation> {
        let mut checker = PeerChecker::new(role);
        let mut last = None;
        for (i, m) in msgs.iter().enumerate() {
            let bytes = frame(m);
            let verdict = checker.feed(&bytes, rules);
            if i + 1 < msgs.len() {
                assert_eq!(verdict.close, None, "message {i} ({m:?}) was refused");
                assert_eq!(verdict.relay, bytes, "message {i} not relayed unchanged");
            }
            last = verdict.close;
        }
        last
    }

    /// Name, sender's mode, the tunnel's services, the messages, the expected verdict.
    type Case = (
        &'static str,
        Role,
        &'static [&'static str],
        Vec<Message>,
        Option<Violation>,
    );

    #[test]
    fn each_rule_with_its_verdict() {
        use MessageType as T;
        use Role::{Destination as D, Source as S};
        let start_ssh = msg(T::StreamStart, 5, "SSH");
        let start_v1 = msg(T::StreamStart, 5, "");
        let cases: Vec<Case> = vec![
            (
                "source starts and sends",
                S,
                &["SSH"],
                vec![start_ssh.clone(), data(5, "SSH", b"x")],
                None,
            ),
            (
                "v1 source without ids",
                S,
                &["SSH"],
                vec![start_v1.clone(), data(5, "", b"x")],
                None,
            ),
            (
                "v1 tunnel",
                S,
                &[],
                vec![start_v1.clone(), data(5, "", b"x")],
                None,
            ),
            (
                "connection start and reset",
                S,
                &["SSH"],
                vec![
                    start_ssh.clone(),
                    Message {
                        connection_id: 2,
                        ..msg(T::ConnectionStart, 5, "SSH")
                    },
                    Message {
                        connection_id: 2,
                        ..msg(T::ConnectionReset, 5, "SSH")
                    },
                ],
                None,
            ),
            (
                "service ids from source",
                S,
                &["SSH"],
                vec![Message::of(T::ServiceIds)],
                Some(Violation::ServiceOnly(T::ServiceIds)),
            ),
            (
                "service ids from destination",
                D,
                &["SSH"],
                vec![Message::of(T::ServiceIds)],
                Some(Violation::ServiceOnly(T::ServiceIds)),
            ),
            (
                "session reset from source",
                S,
                &[],
                vec![Message::of(T::SessionReset)],
                Some(Violation::ServiceOnly(T::SessionReset)),
            ),
            (
                "session reset from destination",
                D,
                &[],
                vec![Message::of(T::SessionReset)],
                Some(Violation::ServiceOnly(T::SessionReset)),
            ),
            (
                "stream start from destination",
                D,
                &["SSH"],
                vec![start_ssh.clone()],
                Some(Violation::StreamStartFromDestination),
            ),
            (
                "unknown service id",
                S,
                &["SSH"],
                vec![msg(T::StreamStart, 1, "VNC")],
                Some(Violation::UnknownService("VNC".into())),
            ),
            (
                "service id in a tunnel without services",
                S,
                &[],
                vec![msg(T::StreamStart, 1, "SSH")],
                Some(Violation::UnknownService("SSH".into())),
            ),
            (
                "started without id, then with one",
                S,
                &["SSH"],
                vec![start_v1.clone(), data(5, "SSH", b"x")],
                Some(Violation::MixedServiceIds),
            ),
            (
                "started with id, then without",
                S,
                &["SSH"],
                vec![start_ssh.clone(), data(5, "", b"x")],
                Some(Violation::MixedServiceIds),
            ),
            (
                "data for a service never started",
                S,
                &["SSH", "VNC"],
                vec![start_ssh.clone(), data(5, "VNC", b"x")],
                Some(Violation::ServiceNotStarted("VNC".into())),
            ),
            (
                "destination data before any start",
                D,
                &["SSH"],
                vec![data(5, "SSH", b"x")],
                Some(Violation::ServiceNotStarted("SSH".into())),
            ),
            (
                "stream id zero",
                S,
                &[],
                vec![msg(T::Data, 0, "")],
                Some(Violation::Frame(FrameError::StreamIdZero(T::Data))),
            ),
            (
                "type missing",
                S,
                &[],
                vec![Message::default()],
                Some(Violation::Frame(FrameError::TypeMissing)),
            ),
            (
                "unknown type",
                S,
                &[],
                vec![Message {
                    r#type: 42,
                    ..Message::default()
                }],
                Some(Violation::Frame(FrameError::UnknownType(42))),
            ),
            (
                "unknown ignorable type passes",
                S,
                &[],
                vec![Message {
                    r#type: 42,
                    ignorable: true,
                    ..Message::default()
                }],
                None,
            ),
        ];
        for (name, role, services, msgs, expect) in cases {
            let mut rules = rules(services);
            // Undecodable frames and payload limits are checked below on raw bytes.
            let got = if msgs.iter().any(|m| crate::codec::validate(m).is_err()) {
                let mut checker = PeerChecker::new(role);
                let body = prost::Message::encode_to_vec(&msgs[0]);
                let mut raw = (body.len() as u16).to_be_bytes().to_vec();
                raw.extend_from_slice(&body);
                checker.feed(&raw, &mut rules).close
            } else {
                check(role, &mut rules, &msgs)
            };
            assert_eq!(got, expect, "case {name:?}");
        }
    }

    #[test]
    fn destination_answers_started_streams_with_or_without_ids() {
        let mut rules = rules(&["SSH"]);
        assert_eq!(
            check(
                Role::Source,
                &mut rules,
                &[msg(MessageType::StreamStart, 9, "SSH")]
            ),
            None
        );
        // A V3 destination answers with the id, a V1 destination without: both pass.
        assert_eq!(
            check(Role::Destination, &mut rules, &[data(9, "SSH", b"a")]),
            None
        );
        assert_eq!(
            check(Role::Destination, &mut rules, &[data(9, "", b"a")]),
            None
        );
    }

    #[test]
    fn a_destination_follows_sources_of_different_formats_on_one_connection() {
        // A V3 destination serves a V2 source (service ids, no connection ids), then that
        // source's V1 replacement (neither), without reconnecting itself.
        let mut rules = rules(&["SSH"]);
        let mut destination = PeerChecker::new(Role::Destination);
        let pass = |checker: &mut PeerChecker, rules: &mut TunnelRules, m: Message| {
            let bytes = frame(&m);
            let verdict = checker.feed(&bytes, rules);
            (verdict.close, verdict.relay == bytes)
        };
        let mut v2_source = PeerChecker::new(Role::Source);
        for m in [
            msg(MessageType::StreamStart, 5, "SSH"),
            data(5, "SSH", b"v2"),
        ] {
            assert_eq!(pass(&mut v2_source, &mut rules, m), (None, true));
        }
        assert_eq!(
            pass(&mut destination, &mut rules, data(5, "SSH", b"banner")),
            (None, true)
        );
        // The V2 source is replaced: the service resets its stream towards the destination.
        assert!(!rules.take_resets().is_empty());
        let mut v1_source = PeerChecker::new(Role::Source);
        for m in [msg(MessageType::StreamStart, 9, ""), data(9, "", b"v1")] {
            assert_eq!(pass(&mut v1_source, &mut rules, m), (None, true));
        }
        assert_eq!(
            pass(&mut destination, &mut rules, data(9, "", b"banner")),
            (None, true)
        );
        // A late answer on the old stream keeps that stream's format and still passes.
        assert_eq!(
            pass(&mut destination, &mut rules, data(5, "SSH", b"late")),
            (None, true)
        );
        // Mixing inside one stream is still refused, as is a source changing its mind.
        assert_eq!(
            pass(&mut destination, &mut rules, data(9, "SSH", b"x")).0,
            Some(Violation::MixedServiceIds)
        );
        assert_eq!(
            pass(
                &mut v1_source,
                &mut rules,
                msg(MessageType::StreamStart, 11, "SSH")
            )
            .0,
            Some(Violation::MixedServiceIds)
        );
    }

    #[test]
    fn a_destination_remembers_a_bounded_number_of_streams() {
        let mut rules = rules(&["SSH"]);
        assert_eq!(
            check(
                Role::Source,
                &mut rules,
                &[msg(MessageType::StreamStart, 1, "SSH")]
            ),
            None
        );
        let mut destination = PeerChecker::new(Role::Destination);
        for stream_id in 1..=1000 {
            let has_id = if stream_id % 2 == 0 { "SSH" } else { "" };
            let verdict = destination.feed(&frame(&data(stream_id, has_id, b"x")), &mut rules);
            assert_eq!(verdict.close, None, "stream {stream_id}");
        }
        assert_eq!(
            destination.stream_uses_service_ids.len(),
            REMEMBERED_STREAMS
        );
    }

    #[test]
    fn unknown_fields_undecodable_and_oversize_are_refused() {
        let mut rules = rules(&[]);
        // DATA, stream 1, then field 9 (not in the schema).
        let body = [0x08, 0x01, 0x10, 0x01, 0x48, 0x01];
        let mut raw = vec![0, body.len() as u8];
        raw.extend_from_slice(&body);
        let verdict = PeerChecker::new(Role::Source).feed(&raw, &mut rules);
        assert_eq!(
            verdict.close,
            Some(Violation::Frame(FrameError::UnknownField(9)))
        );
        assert_eq!(
            verdict.close.as_ref().map(Violation::close_code),
            Some(CLOSE_PROTOCOL_ERROR)
        );

        let verdict = PeerChecker::new(Role::Source).feed(&[0, 1, 0xff], &mut rules);
        assert!(matches!(
            verdict.close,
            Some(Violation::Frame(FrameError::Undecodable(_)))
        ));

        let big = vec![0u8; MAX_WS_MESSAGE_LEN + 1];
        let verdict = PeerChecker::new(Role::Source).feed(&big, &mut rules);
        assert_eq!(
            verdict.close,
            Some(Violation::MessageTooLarge(MAX_WS_MESSAGE_LEN + 1))
        );
        assert_eq!(
            verdict.close.as_ref().map(Violation::close_code),
            Some(CLOSE_TOO_BIG)
        );

        // A payload one byte over 63 KiB, in a frame that still fits the u16 prefix.
        let over = Message {
            payload: vec![7; MAX_PAYLOAD_LEN + 1],
            ..msg(MessageType::Data, 1, "")
        };
        let body = prost::Message::encode_to_vec(&over);
        let mut raw = (body.len() as u16).to_be_bytes().to_vec();
        raw.extend_from_slice(&body);
        let verdict = PeerChecker::new(Role::Source).feed(&raw, &mut rules);
        assert_eq!(
            verdict.close,
            Some(Violation::Frame(FrameError::PayloadTooLarge(
                MAX_PAYLOAD_LEN + 1
            )))
        );
    }

    #[test]
    fn text_messages_close_with_1003() {
        let mut checker = PeerChecker::new(Role::Source);
        let v = checker.fail(Violation::TextMessage);
        assert_eq!(v.close_code(), CLOSE_UNSUPPORTED_DATA);
        // The connection stays failed.
        let verdict = checker.feed(
            &frame(&msg(MessageType::StreamStart, 1, "")),
            &mut rules(&[]),
        );
        assert_eq!(verdict.close, Some(Violation::TextMessage));
        assert!(verdict.relay.is_empty());
    }

    #[test]
    fn frames_relay_unchanged_across_every_split_and_merge() {
        let msgs = [
            msg(MessageType::StreamStart, 3, "SSH"),
            data(3, "SSH", b"hello"),
            data(3, "SSH", &[0xAB; 300]),
            msg(MessageType::StreamReset, 3, "SSH"),
        ];
        let wire: Vec<u8> = msgs.iter().flat_map(frame).collect();
        for a in 0..=wire.len() {
            for b in a..=wire.len() {
                let mut rules = rules(&["SSH"]);
                let mut checker = PeerChecker::new(Role::Source);
                let mut relayed = Vec::new();
                for chunk in [&wire[..a], &wire[a..b], &wire[b..]] {
                    let verdict = checker.feed(chunk, &mut rules);
                    assert_eq!(verdict.close, None, "split {a}/{b}");
                    // Only whole frames come out.
                    let mut whole = frames::split(&verdict.relay);
                    whole.by_ref().for_each(drop);
                    assert!(
                        whole.rest().is_empty(),
                        "split {a}/{b}: partial frame relayed"
                    );
                    relayed.extend_from_slice(&verdict.relay);
                }
                assert_eq!(relayed, wire, "split {a}/{b}");
                assert_eq!(checker.buffered(), 0);
            }
        }
    }

    #[test]
    fn frames_before_a_violation_are_still_relayed() {
        let mut rules = rules(&["SSH"]);
        let good = frame(&msg(MessageType::StreamStart, 1, "SSH"));
        let mut wire = good.clone();
        wire.extend(frame(&Message::of(MessageType::SessionReset)));
        wire.extend(frame(&data(1, "SSH", b"after")));
        let mut checker = PeerChecker::new(Role::Source);
        let verdict = checker.feed(&wire, &mut rules);
        assert_eq!(verdict.relay, good);
        assert_eq!(
            verdict.close,
            Some(Violation::ServiceOnly(MessageType::SessionReset))
        );
    }

    #[test]
    fn replacement_resets_the_active_streams_once() {
        let mut rules = rules(&["SSH", "VNC"]);
        let msgs = [
            msg(MessageType::StreamStart, 4, "SSH"),
            msg(MessageType::StreamStart, 6, "VNC"),
            msg(MessageType::StreamStart, 7, "VNC"),
        ];
        assert_eq!(check(Role::Source, &mut rules, &msgs), None);
        let resets = rules.take_resets();
        let mut input: &[u8] = &resets;
        let mut decoder = crate::codec::FrameDecoder::strict();
        let mut got = Vec::new();
        while let Some(m) = decoder.decode(&mut input).expect("service frames decode") {
            got.push((m.kind(), m.stream_id, m.service_id));
        }
        assert_eq!(
            got,
            vec![
                (Some(MessageType::StreamReset), 4, "SSH".to_owned()),
                (Some(MessageType::StreamReset), 7, "VNC".to_owned()),
            ]
        );
        assert!(rules.take_resets().is_empty());
    }

    #[test]
    fn a_reset_ends_the_active_stream() {
        let mut rules = rules(&["SSH"]);
        assert_eq!(
            check(
                Role::Source,
                &mut rules,
                &[msg(MessageType::StreamStart, 4, "SSH")]
            ),
            None
        );
        // A stale reset (other stream id) leaves it active; the matching one (from a V1
        // destination, without id) ends it.
        assert_eq!(
            check(
                Role::Destination,
                &mut rules,
                &[msg(MessageType::StreamReset, 3, "SSH")]
            ),
            None
        );
        assert_eq!(rules.active_streams().get("SSH"), Some(&4));
        assert_eq!(
            check(
                Role::Destination,
                &mut rules,
                &[msg(MessageType::StreamReset, 4, "")]
            ),
            None
        );
        assert!(rules.active_streams().is_empty());
        assert!(rules.take_resets().is_empty());
    }

    #[test]
    fn service_ids_frame_lists_the_services() {
        let rules = rules(&["SSH", "RDP"]);
        let bytes = rules.service_ids_frame();
        let mut input: &[u8] = &bytes;
        let m = crate::codec::FrameDecoder::strict()
            .decode(&mut input)
            .expect("decodes")
            .expect("whole frame");
        assert_eq!(m.kind(), Some(MessageType::ServiceIds));
        assert_eq!(m.available_service_ids, vec!["SSH", "RDP"]);
        // A tunnel without services still announces (an empty list).
        let bytes = TunnelRules::default().service_ids_frame();
        assert_eq!(bytes, vec![0, 2, 0x08, 0x05]);
    }

    #[test]
    fn service_lists_are_checked() {
        let list = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(check_service_list(&list(&["SSH", "a:b_c-1"])), Ok(()));
        assert_eq!(
            check_service_list(&list(&["a", "b", "c", "d"])),
            Err(ServiceListError::TooMany(4))
        );
        assert_eq!(
            check_service_list(&list(&["SSH", "SSH"])),
            Err(ServiceListError::Duplicate("SSH".into()))
        );
        for bad in ["", "a b", "ssh;", &"x".repeat(129)] {
            assert_eq!(
                check_service_list(&list(&[bad])),
                Err(ServiceListError::InvalidId(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = Violation::UnknownService("é".repeat(100));
        let reason = long.close_reason();
        assert!(reason.len() <= MAX_CLOSE_REASON_LEN);
        assert!(long.to_string().starts_with(&reason));
    }
}
