//! The source side of one tunnel as the SSH client needs it: one byte stream to one service.
//!
//! [`TunnelCore`] wraps the sans-IO [`Endpoint`] (source role) and adds the session's rules:
//! wait for SERVICE_IDS, pick the service (the requested one, or the only one), open one stream,
//! turn its DATA into bytes for the SSH client, and turn a STREAM_RESET, CONNECTION_RESET or
//! SESSION_RESET into the end of the stream with the reason an operator can act on.
//!
//! An SSH server speaks first, so a V2/V3 stream that carries nothing back within
//! [`BANNER_WAIT`] ends with [`TunnelError::NoBanner`], which names the format as the likely
//! cause (the AWS IoT Device Client never answers V3) and says how to retry.
//!
//! Like the endpoint it owns no socket and reads no clock: the browser driver feeds it
//! WebSocket messages and "SERVICE_IDS wait is over" / "banner wait is over" signals, and drains
//! [`TunnelCore::poll`]. Stream ids come from one [`StreamIdPlan`] per page
//! ([`next_first_stream_id`]), so they stay within what every device can encode and do not
//! repeat across the page's sessions.
//! That keeps it testable natively against a destination endpoint (see the tests).

use std::cell::Cell;
use std::collections::VecDeque;
use std::time::Duration;

use burrow_proto::endpoint::{
    CloseCause, Config, ConnId, Endpoint, Event, Format, LocalError, Output, Role, StreamIdPlan,
};

use super::error::TunnelError;

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreOutput {
    /// Send these bytes as one binary WebSocket message.
    Transmit(Vec<u8>),
    /// The stream is open on this service ("" when the tunnel names none): start SSH.
    Opened {
        /// The service the stream belongs to.
        service_id: String,
    },
    /// The tunnel has several services and none was requested: the operator must choose one
    /// ([`TunnelCore::choose`]) before the stream opens.
    ChooseService(Vec<String>),
    /// Bytes from the device for the SSH client, in order.
    Deliver(Vec<u8>),
    /// The tunnel can carry nothing more for this session.
    Ended(TunnelError),
}

#[derive(Debug)]
enum State {
    /// Waiting for SERVICE_IDS before opening the stream.
    AwaitingServices,
    /// Waiting for the operator to choose one of these services.
    Choosing(Vec<String>),
    /// The stream is open; `heard` once a byte came back.
    Open {
        /// The stream's connection.
        conn: ConnId,
        /// Whether the device has sent anything on it.
        heard: bool,
    },
    /// Over (the reason was reported once through [`CoreOutput::Ended`]).
    Ended,
}

/// The tunnel's source side for one SSH session. See the module documentation.
#[derive(Debug)]
pub struct TunnelCore {
    endpoint: Endpoint,
    requested: Option<String>,
    state: State,
    queued: VecDeque<CoreOutput>,
}

/// Chooses the service to open from the tunnel's list.
///
/// `Ok(None)` means "send no service id" (a tunnel without services, or a V1 destination with
/// no service chosen).
pub fn choose_service(
    available: &[String],
    requested: Option<&str>,
    format: Format,
) -> Result<Option<String>, TunnelError> {
    match requested {
        Some(id) if available.is_empty() || available.iter().any(|s| s == id) => {
            Ok(Some(id.to_owned()))
        }
        Some(id) => Err(TunnelError::UnknownService {
            requested: id.to_owned(),
            available: available.to_vec(),
        }),
        None => match available {
            [] => Ok(None),
            [only] => Ok(Some(only.clone())),
            _ if format == Format::V1 => Ok(None),
            _ => Err(TunnelError::ServiceChoice {
                available: available.to_vec(),
            }),
        },
    }
}

/// How long a V2/V3 stream may stay silent before the session ends with
/// [`TunnelError::NoBanner`] (an SSH server sends its banner at once).
pub const BANNER_WAIT: Duration = Duration::from_secs(2);

/// 32 random bits (browsers always have randomness; 1 if the platform has none).
fn random_u32() -> u32 {
    getrandom::u32().unwrap_or(1)
}

thread_local! {
    /// The page's stream ids across its sessions (the page runs on one thread).
    static STREAM_IDS: Cell<Option<StreamIdPlan>> = const { Cell::new(None) };
}

/// The first stream id for a new session's endpoint: random for the page's first session, then
/// past the ids of the session before (plus a random step). Always within `1..=MAX_ID`.
pub fn next_first_stream_id() -> i32 {
    STREAM_IDS.with(|cell| {
        let mut plan = cell
            .get()
            .unwrap_or_else(|| StreamIdPlan::new(random_u32()));
        let first = plan.first_stream_id();
        // A session opens one stream: the next session starts after it.
        plan.advance(first.saturating_add(1), random_u32());
        cell.set(Some(plan));
        first
    })
}

/// The operator-facing reason for a closed stream.
pub fn close_reason(cause: CloseCause) -> TunnelError {
    match cause {
        CloseCause::SessionReset => TunnelError::SessionReset,
        CloseCause::ConnectionReset | CloseCause::StreamReset | CloseCause::StreamReplaced => {
            TunnelError::DestinationUnreachable
        }
    }
}

impl TunnelCore {
    /// A core for a source writing `format`, opening `requested` (or the only service).
    /// `first_stream_id` should be random so ids rarely repeat across reconnects.
    pub fn new(format: Format, requested: Option<String>, first_stream_id: i32) -> Self {
        let mut config = Config::new(Role::Source, format);
        // Browsers cannot send WebSocket pings; keep-alive happens inside SSH.
        config.ping_interval = None;
        config.first_stream_id = first_stream_id;
        let requested = requested.filter(|s| !s.trim().is_empty());
        Self {
            endpoint: Endpoint::new(config, Duration::ZERO),
            requested,
            state: State::AwaitingServices,
            queued: VecDeque::new(),
        }
    }

    /// Whether the stream is open.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// The stream id the core's next stream would get (tests check the bound).
    pub fn next_stream_id(&self) -> i32 {
        self.endpoint.next_stream_id()
    }

    /// The banner wait ([`BANNER_WAIT`], started when the stream opened) is over. A V2/V3 stream
    /// on which nothing came back ends with [`TunnelError::NoBanner`]; V1 waits on (the SSH
    /// handshake timeout then says whether anything answered).
    pub fn banner_wait_over(&mut self, waited: Duration) {
        let format = self.endpoint.config().format;
        if matches!(self.state, State::Open { heard: false, .. }) && format != Format::V1 {
            let seconds = u32::try_from(waited.as_secs()).unwrap_or(u32::MAX);
            self.end(TunnelError::NoBanner { format, seconds });
        }
        self.drain_endpoint();
    }

    /// Whether the core still waits for SERVICE_IDS.
    pub fn awaiting_services(&self) -> bool {
        matches!(self.state, State::AwaitingServices)
    }

    /// The operator chose `service_id` after [`CoreOutput::ChooseService`]; opens the stream.
    pub fn choose(&mut self, service_id: &str) {
        let State::Choosing(available) = &self.state else {
            return;
        };
        if available.iter().any(|s| s == service_id) {
            self.open(Some(service_id.to_owned()));
        } else {
            let available = available.clone();
            self.end(TunnelError::UnknownService {
                requested: service_id.to_owned(),
                available,
            });
        }
        self.drain_endpoint();
    }

    /// Handles one binary WebSocket message from the service.
    pub fn handle_message(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Ended) {
            return;
        }
        if let Err(err) = self.endpoint.handle_bytes(bytes) {
            self.end(TunnelError::Peer(err.to_string()));
        }
        self.drain_endpoint();
    }

    /// A text WebSocket message arrived: a protocol error.
    pub fn handle_text(&mut self) {
        self.end(TunnelError::Peer(
            "a text WebSocket message (the protocol is binary only)".to_owned(),
        ));
    }

    /// The wait for SERVICE_IDS is over. A V1 destination never needs service ids, so the
    /// stream opens without one; V2 and V3 fail with a timeout.
    pub fn services_timed_out(&mut self, waited: Duration) {
        if !self.awaiting_services() {
            return;
        }
        if self.endpoint.config().format == Format::V1 {
            self.open(None);
        } else {
            let seconds = u32::try_from(waited.as_secs()).unwrap_or(u32::MAX);
            self.end(TunnelError::ServiceIdsTimeout { seconds });
        }
        self.drain_endpoint();
    }

    /// Sends bytes from the SSH client on the open stream. Bytes written after the end are
    /// dropped: the SSH client learns of the end from the read side.
    pub fn send(&mut self, data: &[u8]) {
        if let State::Open { conn, .. } = &self.state {
            let conn = conn.clone();
            if let Err(err) = self.endpoint.send(&conn, data) {
                self.local_failure(err);
            }
            self.drain_endpoint();
        }
    }

    /// Closes the stream from this side (CONNECTION_RESET in V3, STREAM_RESET otherwise).
    pub fn close(&mut self) {
        if let State::Open { conn, .. } = std::mem::replace(&mut self.state, State::Ended) {
            // An endpoint that failed already has nothing to close.
            let _ = self.endpoint.close(&conn);
        }
        self.state = State::Ended;
        self.drain_endpoint();
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<CoreOutput> {
        self.queued.pop_front()
    }

    fn end(&mut self, reason: TunnelError) {
        if !matches!(self.state, State::Ended) {
            self.state = State::Ended;
            self.queued.push_back(CoreOutput::Ended(reason));
        }
    }

    fn local_failure(&mut self, err: LocalError) {
        let reason = match err {
            LocalError::Failed(peer) => TunnelError::Peer(peer.to_string()),
            LocalError::NotOpen(_) => TunnelError::DestinationUnreachable,
            LocalError::UnknownService(requested) => TunnelError::UnknownService {
                requested,
                available: self.endpoint.service_ids().to_vec(),
            },
            LocalError::ServiceRequired(available) => TunnelError::ServiceChoice { available },
            other => TunnelError::Local(other),
        };
        self.end(reason);
    }

    fn open(&mut self, service: Option<String>) {
        // The same call as every source's TCP connection (a fresh endpoint: STREAM_START).
        match self.endpoint.open_connection(service.as_deref()) {
            Ok(conn) => {
                self.queued.push_back(CoreOutput::Opened {
                    service_id: conn.service_id.clone(),
                });
                self.state = State::Open { conn, heard: false };
            }
            Err(err) => self.local_failure(err),
        }
    }

    /// Moves the endpoint's outputs into the queue, acting on its events.
    fn drain_endpoint(&mut self) {
        while let Some(output) = self.endpoint.poll_output() {
            match output {
                Output::Transmit(bytes) => self.queued.push_back(CoreOutput::Transmit(bytes)),
                // The platform cannot ping; nothing asks for it (no ping interval).
                Output::Ping => {}
                Output::Event(event) => self.handle_event(event),
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::ServiceIds(ids) => {
                if self.awaiting_services() {
                    let format = self.endpoint.config().format;
                    match choose_service(&ids, self.requested.as_deref(), format) {
                        Ok(service) => self.open(service),
                        Err(TunnelError::ServiceChoice { available }) => {
                            self.queued
                                .push_back(CoreOutput::ChooseService(available.clone()));
                            self.state = State::Choosing(available);
                        }
                        Err(reason) => self.end(reason),
                    }
                }
            }
            Event::Data { conn, data } => {
                if let State::Open { conn: ours, heard } = &mut self.state
                    && *ours == conn
                {
                    *heard = true;
                    self.queued.push_back(CoreOutput::Deliver(data));
                }
            }
            Event::ConnectionClosed { conn, cause } => {
                if matches!(&self.state, State::Open { conn: ours, .. } if *ours == conn) {
                    self.end(close_reason(cause));
                }
            }
            // Sources are never asked to accept connections (the endpoint refuses them).
            Event::ConnectionRequested(_) | Event::ConnectionRefused { .. } => {}
        }
    }
}

// The protocol crate's models of the service's rules and of AWS's IoT Device Client, shared
// with its own tests (they use nothing but `burrow_proto`).
#[cfg(test)]
#[path = "../../../proto/tests/harness/device_client.rs"]
mod device_client;
#[cfg(test)]
#[path = "../../../proto/tests/harness/service.rs"]
mod service_model;

#[cfg(test)]
mod tests {
    use burrow_proto::MAX_ID;
    use burrow_proto::codec::{FrameDecoder, encode_frame};
    use burrow_proto::message::{Message, MessageType};

    use super::device_client::{DeviceClient, MAX_DATA, SSH_BANNER, WireFormat};
    use super::service_model::Service;
    use super::*;

    /// Frames one control message from the service.
    fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(msg, &mut out).expect("test message encodes");
        out
    }

    fn service_ids(ids: &[&str]) -> Vec<u8> {
        let mut msg = Message::of(MessageType::ServiceIds);
        msg.available_service_ids = ids.iter().map(|s| (*s).to_owned()).collect();
        frame(&msg)
    }

    fn drain(core: &mut TunnelCore) -> Vec<CoreOutput> {
        std::iter::from_fn(|| core.poll()).collect()
    }

    /// Decodes everything the core transmitted.
    fn sent_messages(outputs: &[CoreOutput]) -> Vec<Message> {
        let mut decoder = FrameDecoder::strict();
        let mut out = Vec::new();
        for output in outputs {
            if let CoreOutput::Transmit(bytes) = output {
                let mut input = bytes.as_slice();
                while let Some(msg) = decoder.decode(&mut input).expect("valid frames") {
                    out.push(msg);
                }
            }
        }
        out
    }

    /// A destination endpoint standing in for the device, and a relay standing in for the
    /// service (frames pass unchanged, as the real service relays them).
    struct Pair {
        source: TunnelCore,
        destination: Endpoint,
        /// What reached the SSH client.
        delivered: Vec<u8>,
        ended: Option<TunnelError>,
        opened: Option<String>,
        /// Data the destination application received.
        device_got: Vec<u8>,
        device_conn: Option<ConnId>,
    }

    impl Pair {
        fn new(format: Format, requested: Option<&str>, services: &[&str]) -> Self {
            let mut config = Config::new(Role::Destination, format);
            config.services = services.iter().map(|s| (*s).to_owned()).collect();
            Self {
                source: TunnelCore::new(format, requested.map(str::to_owned), 77),
                destination: Endpoint::new(config, Duration::ZERO),
                delivered: Vec::new(),
                ended: None,
                opened: None,
                device_got: Vec::new(),
                device_conn: None,
            }
        }

        /// Moves every pending message both ways until nothing is left.
        fn drive(&mut self) {
            loop {
                let mut progressed = false;
                while let Some(out) = self.source.poll() {
                    progressed = true;
                    match out {
                        CoreOutput::Transmit(bytes) => {
                            self.destination
                                .handle_bytes(&bytes)
                                .expect("valid source bytes");
                        }
                        CoreOutput::Opened { service_id } => self.opened = Some(service_id),
                        CoreOutput::ChooseService(_) => {}
                        CoreOutput::Deliver(data) => self.delivered.extend(data),
                        CoreOutput::Ended(reason) => self.ended = Some(reason),
                    }
                }
                while let Some(out) = self.destination.poll_output() {
                    progressed = true;
                    match out {
                        Output::Transmit(bytes) => self.source.handle_message(&bytes),
                        Output::Event(Event::ConnectionRequested(conn)) => {
                            self.device_conn = Some(conn);
                        }
                        Output::Event(Event::Data { data, .. }) => self.device_got.extend(data),
                        Output::Event(_) | Output::Ping => {}
                    }
                }
                if !progressed {
                    break;
                }
            }
        }

        fn device_send(&mut self, data: &[u8]) {
            let conn = self.device_conn.clone().expect("device has a connection");
            self.destination.send(&conn, data).expect("device can send");
            self.drive();
        }
    }

    #[test]
    fn picks_the_only_service_and_carries_bytes_both_ways() {
        for format in [Format::V1, Format::V2, Format::V3] {
            let mut pair = Pair::new(format, None, &["SSH"]);
            pair.source.handle_message(&service_ids(&["SSH"]));
            pair.drive();
            assert_eq!(pair.opened.as_deref(), Some("SSH"), "{format:?}");
            assert!(pair.device_conn.is_some(), "{format:?}");
            pair.source.send(b"SSH-2.0-client\r\n");
            pair.drive();
            assert_eq!(pair.device_got, b"SSH-2.0-client\r\n");
            pair.device_send(b"SSH-2.0-server\r\n");
            assert_eq!(pair.delivered, b"SSH-2.0-server\r\n");
            assert_eq!(pair.ended, None);
        }
    }

    #[test]
    fn large_writes_arrive_whole_and_in_order() {
        let mut pair = Pair::new(Format::V3, None, &["SSH"]);
        pair.source.handle_message(&service_ids(&["SSH"]));
        pair.drive();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        pair.source.send(&data);
        pair.drive();
        assert_eq!(pair.device_got, data);
        pair.device_send(&data);
        assert_eq!(pair.delivered, data);
    }

    #[test]
    fn requested_service_is_opened() {
        let mut pair = Pair::new(Format::V3, Some("RDP"), &["SSH", "RDP"]);
        pair.source.handle_message(&service_ids(&["SSH", "RDP"]));
        pair.drive();
        assert_eq!(pair.opened.as_deref(), Some("RDP"));
        assert_eq!(
            pair.device_conn.map(|c| c.service_id).as_deref(),
            Some("RDP")
        );
    }

    #[test]
    fn several_services_and_no_choice_asks_to_choose_then_opens_the_choice() {
        let mut core = TunnelCore::new(Format::V3, None, 5);
        core.handle_message(&service_ids(&["SSH", "RDP"]));
        let outputs = drain(&mut core);
        assert_eq!(
            outputs,
            vec![CoreOutput::ChooseService(vec!["SSH".into(), "RDP".into()])]
        );
        assert!(sent_messages(&outputs).is_empty());
        // Waiting for the choice is not a timeout.
        core.services_timed_out(Duration::from_secs(10));
        assert_eq!(drain(&mut core), vec![]);
        core.choose("RDP");
        let outputs = drain(&mut core);
        assert!(outputs.contains(&CoreOutput::Opened {
            service_id: "RDP".into()
        }));
        let sent = sent_messages(&outputs);
        assert_eq!(sent[0].kind(), Some(MessageType::StreamStart));
        assert_eq!(sent[0].service_id, "RDP");
        assert!(core.is_open());
    }

    #[test]
    fn choosing_a_service_the_tunnel_lacks_ends() {
        let mut core = TunnelCore::new(Format::V2, None, 5);
        core.handle_message(&service_ids(&["SSH", "RDP"]));
        drain(&mut core);
        core.choose("VNC");
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::UnknownService {
                requested: "VNC".into(),
                available: vec!["SSH".into(), "RDP".into()]
            })]
        );
    }

    #[test]
    fn unknown_requested_service_is_refused() {
        let mut core = TunnelCore::new(Format::V2, Some("VNC".into()), 5);
        core.handle_message(&service_ids(&["SSH"]));
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::UnknownService {
                requested: "VNC".into(),
                available: vec!["SSH".into()]
            })]
        );
    }

    #[test]
    fn service_choice_rules() {
        let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        /// Available ids, requested id, format, expected choice.
        type Case = (
            Vec<String>,
            Option<&'static str>,
            Format,
            Result<Option<String>, TunnelError>,
        );
        let cases: Vec<Case> = vec![
            (ids(&[]), None, Format::V3, Ok(None)),
            (ids(&[]), Some("SSH"), Format::V3, Ok(Some("SSH".into()))),
            (ids(&["SSH"]), None, Format::V2, Ok(Some("SSH".into()))),
            (ids(&["A", "B"]), None, Format::V1, Ok(None)),
            (
                ids(&["A", "B"]),
                Some("B"),
                Format::V3,
                Ok(Some("B".into())),
            ),
            (
                ids(&["A", "B"]),
                None,
                Format::V2,
                Err(TunnelError::ServiceChoice {
                    available: ids(&["A", "B"]),
                }),
            ),
        ];
        for (available, requested, format, expect) in cases {
            assert_eq!(
                choose_service(&available, requested, format),
                expect,
                "{available:?} {requested:?} {format:?}"
            );
        }
    }

    #[test]
    fn stream_start_carries_a_fresh_stream_id_and_the_service() {
        let mut core = TunnelCore::new(Format::V3, None, 4242);
        core.handle_message(&service_ids(&["SSH"]));
        let sent = sent_messages(&drain(&mut core));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind(), Some(MessageType::StreamStart));
        assert_eq!(sent[0].stream_id, 4242);
        assert_eq!(sent[0].service_id, "SSH");
        assert_eq!(sent[0].connection_id, 1);
    }

    #[test]
    fn stream_reset_ends_with_destination_unreachable() {
        let mut core = TunnelCore::new(Format::V2, None, 9);
        core.handle_message(&service_ids(&["SSH"]));
        drain(&mut core);
        let mut reset = Message::of(MessageType::StreamReset);
        reset.stream_id = 9;
        reset.service_id = "SSH".into();
        core.handle_message(&frame(&reset));
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::DestinationUnreachable)]
        );
        // Nothing more is sent or delivered after the end.
        core.send(b"late");
        assert_eq!(drain(&mut core), vec![]);
    }

    #[test]
    fn stale_reset_is_ignored() {
        let mut core = TunnelCore::new(Format::V2, None, 9);
        core.handle_message(&service_ids(&["SSH"]));
        drain(&mut core);
        let mut reset = Message::of(MessageType::StreamReset);
        reset.stream_id = 8;
        reset.service_id = "SSH".into();
        core.handle_message(&frame(&reset));
        assert_eq!(drain(&mut core), vec![]);
        assert!(core.is_open());
    }

    #[test]
    fn connection_reset_and_session_reset_end_the_stream() {
        let mut core = TunnelCore::new(Format::V3, None, 3);
        core.handle_message(&service_ids(&["SSH"]));
        drain(&mut core);
        let mut reset = Message::of(MessageType::ConnectionReset);
        reset.stream_id = 3;
        reset.service_id = "SSH".into();
        reset.connection_id = 1;
        core.handle_message(&frame(&reset));
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::DestinationUnreachable)]
        );

        let mut core = TunnelCore::new(Format::V3, None, 3);
        core.handle_message(&service_ids(&["SSH"]));
        drain(&mut core);
        core.handle_message(&frame(&Message::of(MessageType::SessionReset)));
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::SessionReset)]
        );
    }

    #[test]
    fn closing_sends_the_reset_of_the_format() {
        for (format, kind) in [
            (Format::V3, MessageType::ConnectionReset),
            (Format::V2, MessageType::StreamReset),
        ] {
            let mut core = TunnelCore::new(format, None, 12);
            core.handle_message(&service_ids(&["SSH"]));
            drain(&mut core);
            core.close();
            let sent = sent_messages(&drain(&mut core));
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].kind(), Some(kind));
            assert_eq!(sent[0].stream_id, 12);
        }
    }

    #[test]
    fn services_timeout_fails_v3_and_opens_v1() {
        let mut core = TunnelCore::new(Format::V3, None, 1);
        core.services_timed_out(Duration::from_secs(10));
        assert_eq!(
            drain(&mut core),
            vec![CoreOutput::Ended(TunnelError::ServiceIdsTimeout {
                seconds: 10
            })]
        );

        let mut core = TunnelCore::new(Format::V1, None, 1);
        core.services_timed_out(Duration::from_secs(3));
        let outputs = drain(&mut core);
        assert!(outputs.contains(&CoreOutput::Opened {
            service_id: String::new()
        }));
        let sent = sent_messages(&outputs);
        assert_eq!(sent[0].kind(), Some(MessageType::StreamStart));
        assert_eq!(sent[0].service_id, "");
    }

    #[test]
    fn garbage_and_text_end_with_a_protocol_error() {
        let mut core = TunnelCore::new(Format::V3, None, 1);
        // A frame whose body is not a valid message.
        core.handle_message(&[0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(
            drain(&mut core).as_slice(),
            [CoreOutput::Ended(TunnelError::Peer(_))]
        ));

        let mut core = TunnelCore::new(Format::V3, None, 1);
        core.handle_text();
        assert!(matches!(
            drain(&mut core).as_slice(),
            [CoreOutput::Ended(TunnelError::Peer(_))]
        ));
    }

    #[test]
    fn stream_ids_stay_within_what_devices_encode_and_do_not_repeat() {
        let ids: Vec<i32> = (0..2000).map(|_| next_first_stream_id()).collect();
        assert!(ids.iter().all(|id| (1..=MAX_ID).contains(id)), "{ids:?}");
        let distinct: std::collections::BTreeSet<i32> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn frames_split_across_messages_are_reassembled() {
        let mut pair = Pair::new(Format::V3, None, &["SSH"]);
        let ids = service_ids(&["SSH"]);
        for byte in &ids {
            pair.source.handle_message(std::slice::from_ref(byte));
        }
        pair.drive();
        assert_eq!(pair.opened.as_deref(), Some("SSH"));
    }

    /// The page's core ⇄ the service's real rules ⇄ a modelled AWS IoT Device Client, which
    /// stays connected while the page's sessions follow each other.
    struct DeviceTunnel {
        service: Service,
        device: DeviceClient,
        core: TunnelCore,
        delivered: Vec<u8>,
        opened: bool,
        ended: Option<TunnelError>,
    }

    impl DeviceTunnel {
        fn new() -> Self {
            Self {
                service: Service::new(&["SSH"]),
                device: DeviceClient::new(Duration::ZERO),
                core: TunnelCore::new(Format::V1, None, 1),
                delivered: Vec::new(),
                opened: false,
                ended: None,
            }
        }

        /// A new page session (a new source WebSocket) in `format`, with the page's ids.
        fn page_session(&mut self, format: Format) {
            self.core.close();
            self.drive();
            self.core = TunnelCore::new(format, None, next_first_stream_id());
            self.delivered.clear();
            self.opened = false;
            self.ended = None;
            let resets = self.service.replace(Role::Source);
            if !resets.is_empty() {
                self.device.handle_bytes(&resets);
            }
            // The Device Client offers only the 3.0 subprotocol, so the service announces the
            // tunnel's services to both peers; the page's source gets them after its handshake.
            let ids = self.service.service_ids();
            self.core.handle_message(&ids);
            self.drive();
        }

        fn drive(&mut self) {
            loop {
                let mut moved = false;
                while let Some(out) = self.core.poll() {
                    moved = true;
                    match out {
                        CoreOutput::Transmit(bytes) => {
                            let relayed = self.service.accept(Role::Source, &bytes);
                            if !self.device.offline {
                                self.device.handle_bytes(&relayed);
                            }
                        }
                        CoreOutput::Opened { .. } => self.opened = true,
                        CoreOutput::ChooseService(_) => {}
                        CoreOutput::Deliver(data) => self.delivered.extend(data),
                        CoreOutput::Ended(reason) => self.ended = Some(reason),
                    }
                }
                while let Some(bytes) = self.device.poll_transmit() {
                    moved = true;
                    let relayed = self.service.accept(Role::Destination, &bytes);
                    self.core.handle_message(&relayed);
                }
                if !moved {
                    break;
                }
            }
        }
    }

    #[test]
    fn a_v1_page_reaches_a_device_client_in_ten_sessions_out_of_ten() {
        let mut tunnel = DeviceTunnel::new();
        for session in 0..10u8 {
            tunnel.page_session(Format::V1);
            assert!(tunnel.opened, "session {session}");
            assert_eq!(
                tunnel.delivered, SSH_BANNER,
                "session {session}: the banner"
            );
            let hello = [b"SSH-2.0-burrow ".as_slice(), &[b'0' + session], b"\r\n"].concat();
            tunnel.core.send(&hello);
            tunnel.drive();
            assert_eq!(
                tunnel.delivered,
                [SSH_BANNER, hello.as_slice()].concat(),
                "session {session}: the echo"
            );
            assert_eq!(tunnel.ended, None, "session {session}");
        }
        // Bulk output crosses in the device's 32 KiB messages, whole and in order.
        let bulk: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        tunnel.delivered.clear();
        tunnel.device.sshd_writes(&bulk);
        tunnel.drive();
        assert_eq!(tunnel.delivered, bulk);
        assert!(tunnel.device.data_lengths.iter().all(|&n| n <= MAX_DATA));
        assert_eq!(tunnel.device.session_format(), Some(WireFormat::V1));
        assert_eq!(tunnel.device.connections, 10);
        assert_eq!(tunnel.device.refused_sends, 0);
        assert!(!tunnel.device.offline);
    }

    #[test]
    fn a_v3_page_hears_nothing_from_a_device_client_and_the_error_names_the_format() {
        let mut tunnel = DeviceTunnel::new();
        tunnel.page_session(Format::V3);
        assert!(tunnel.opened);
        // Its library will not send V1 messages in the session the V3 start fixed.
        assert!(tunnel.device.refused_sends > 0);
        assert!(tunnel.delivered.is_empty());
        tunnel.core.banner_wait_over(BANNER_WAIT);
        tunnel.drive();
        assert_eq!(
            tunnel.ended,
            Some(TunnelError::NoBanner {
                format: Format::V3,
                seconds: 2
            })
        );
        // Retrying in V1 on the same device session makes it drop its tunnel: the retry
        // needs a new destination token too, as the error says.
        tunnel.page_session(Format::V1);
        assert!(tunnel.device.offline);
        assert!(tunnel.delivered.is_empty());
    }

    #[test]
    fn the_banner_wait_ends_only_silent_v2_and_v3_streams() {
        // A stream that heard its banner goes on.
        let mut pair = Pair::new(Format::V3, None, &["SSH"]);
        pair.source.handle_message(&service_ids(&["SSH"]));
        pair.drive();
        pair.device_send(b"SSH-2.0-server\r\n");
        pair.source.banner_wait_over(BANNER_WAIT);
        pair.drive();
        assert_eq!(pair.ended, None);
        // V1 waits for the SSH handshake's own timeout.
        let mut pair = Pair::new(Format::V1, None, &["SSH"]);
        pair.source.handle_message(&service_ids(&["SSH"]));
        pair.drive();
        pair.source.banner_wait_over(BANNER_WAIT);
        pair.drive();
        assert_eq!(pair.ended, None);
        // A silent V2 stream ends with the format hint.
        let mut pair = Pair::new(Format::V2, None, &["SSH"]);
        pair.source.handle_message(&service_ids(&["SSH"]));
        pair.drive();
        pair.source.banner_wait_over(BANNER_WAIT);
        pair.drive();
        assert_eq!(
            pair.ended,
            Some(TunnelError::NoBanner {
                format: Format::V2,
                seconds: 2
            })
        );
    }
}
