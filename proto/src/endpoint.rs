//! A sans-IO tunnel endpoint: the source or destination side of one tunnel WebSocket.
//!
//! It owns no socket and reads no clock. A driver feeds it:
//! - the bytes of each binary WebSocket message ([`Endpoint::handle_bytes`]),
//! - the application's commands ([`Endpoint::open_stream`], [`Endpoint::open_connection`],
//!   [`Endpoint::send`], [`Endpoint::close`], [`Endpoint::reset_stream`]),
//! - the current time as a [`Duration`] since any fixed origin ([`Endpoint::handle_timeout`]),
//!
//! and drains [`Endpoint::poll_output`] after each input: bytes to send as one binary WebSocket
//! message, events for the application, and ping requests; [`Endpoint::poll_timeout`] says when it
//! next wants [`Endpoint::handle_timeout`].
//!
//! Streams are kept per service id (V2/V3 multiplex several services on one WebSocket; V1 has one
//! service, keyed by the empty id). Inside a stream, V3 has several connections keyed by
//! connection id (0 on the wire means 1). The [`Format`] is what this endpoint *writes*; it reads
//! every format, as AWS's localproxy does.
//!
//! Rules it applies (see `docs/protocol.md` and AWS's V2/V3 protocol guides):
//! - Every stream id and connection id this endpoint picks is within `1..=`[`MAX_ID`]
//!   (2^28−1: AWS's C library for devices encodes no larger varint, and refuses to send on a
//!   stream with a larger id). A source's streams get fresh ids (counting up from
//!   [`Config::first_stream_id`], wrapping past [`MAX_ID`] to 1); opening a stream for a service
//!   replaces that service's live stream.
//! - A source opens each TCP connection with [`Endpoint::open_connection`]: in V3 a further
//!   connection of a service with a live stream is a CONNECTION_START with a new connection id on
//!   that stream, even when the stream's earlier connections have all closed (AWS's localproxy
//!   destination resets, rather than starts, a stream whose STREAM_START has a new id while its
//!   stream is active, so a new stream per connection would lose every second one). A new stream
//!   is for a new session: no live stream (first connection, after a STREAM_RESET or
//!   SESSION_RESET), or V1/V2, which carry one connection per stream.
//! - A destination treats a STREAM_START as replacing the service's live stream, and answers a
//!   STREAM_START for a service it does not have with STREAM_RESET.
//! - Connections are capped per stream ([`Config::max_connections_per_stream`]) and in total
//!   ([`Config::max_connections`]): a destination refuses a start over the cap (CONNECTION_RESET,
//!   or STREAM_RESET for a new stream) and reports [`Event::ConnectionRefused`]; a source's
//!   [`Endpoint::open_connection`] fails with [`LocalError::TooManyConnections`].
//! - DATA and resets whose stream id is not the live one of their service (or whose connection
//!   is not open) are stale and dropped silently.
//! - Messages without a service id (V1 peers) belong to the only known service.
//! - A stream at a destination is answered in the format the peer started it with (no service
//!   id if the STREAM_START had none, no connection ids if it had none), within this endpoint's
//!   own [`Format`].
//! - Outgoing frames are packed into WebSocket messages of at most
//!   [`MAX_WS_MESSAGE_LEN`](crate::codec::MAX_WS_MESSAGE_LEN) bytes; payloads are copied once,
//!   from the caller's slice into the outgoing message.
//! - Any [`PeerError`] fails the endpoint for good: the driver closes the WebSocket.
//!
//! It deliberately does not decide what to connect to, how to retry, or how to log: that is the
//! driver's business.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::codec::{
    DataHeader, FrameDecoder, LENGTH_PREFIX_LEN, MAX_PAYLOAD_LEN, encode_data_frame, encode_frame,
};
use crate::frames::Packer;
use crate::message::{Message, MessageType};

/// Most service ids a tunnel can have.
pub const MAX_SERVICES: usize = 3;
/// Longest service id this endpoint writes (AWS allows up to 128 characters).
pub const MAX_SERVICE_ID_LEN: usize = 128;
/// The largest stream id or connection id this endpoint picks: 2^28−1, the largest value
/// AWS's C library for secure tunneling (`aws-c-iot`, inside the IoT Device Client and the
/// device SDKs) encodes; it cannot send on a stream with a larger id.
pub const MAX_ID: i32 = (1 << 28) - 1;
/// Connections one stream may have open at once unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_STREAM: usize = 32;
/// Connections one endpoint may have open at once (all streams) unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// A stream id in `1..=`[`MAX_ID`] from random bits: drivers feed it 32 random bits for
/// [`Config::first_stream_id`].
pub fn id_from_random(random: u32) -> i32 {
    // MAX_ID < 2^28, so the remainder and the result fit an i32.
    (random % MAX_ID as u32) as i32 + 1
}

/// Stream ids for the endpoints one client builds one after another (one per WebSocket
/// session): the first is random, and each later endpoint starts past every id the one before
/// used, plus a random step. Ids therefore never repeat within a client's run (until the
/// 2^28−1 ids are used up) and cannot be predicted. Sans-IO: the caller brings the random bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIdPlan {
    next: i32,
}

impl StreamIdPlan {
    /// Largest random step between sessions.
    pub const MAX_STEP: u32 = 1 << 16;

    /// A plan starting at a random id.
    pub fn new(random: u32) -> Self {
        Self {
            next: id_from_random(random),
        }
    }

    /// The [`Config::first_stream_id`] for the next endpoint.
    pub fn first_stream_id(&self) -> i32 {
        self.next
    }

    /// The previous endpoint is done; `endpoint_next` is its [`Endpoint::next_stream_id`] (the
    /// first id it did not use). The next endpoint starts that id plus a random step below
    /// [`Self::MAX_STEP`], wrapping past [`MAX_ID`] to 1.
    pub fn advance(&mut self, endpoint_next: i32, random: u32) {
        let step = i64::from(random % Self::MAX_STEP);
        let from = i64::from(valid_id(endpoint_next)) - 1;
        let next = (from + step).rem_euclid(i64::from(MAX_ID)) + 1;
        // The remainder is below MAX_ID, so it fits.
        self.next = i32::try_from(next).unwrap_or(1);
    }
}

/// `id` if it is a valid id this endpoint may pick, else a value in `1..=`[`MAX_ID`] derived
/// from it (so a careless driver still gets ids every peer can encode).
fn valid_id(id: i32) -> i32 {
    if (1..=MAX_ID).contains(&id) {
        id
    } else {
        id.rem_euclid(MAX_ID) + 1
    }
}

/// The id after `id`, wrapping past [`MAX_ID`] to 1.
fn next_id(id: i32) -> i32 {
    if id >= MAX_ID { 1 } else { id + 1 }
}

/// Which end of the tunnel this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The operator side: opens streams (the browser app, `burrow agent --mode source`).
    Source,
    /// The device side: accepts streams and connects them to local services.
    Destination,
}

/// The message format an endpoint writes (like localproxy's `--destination-client-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Fields 1–4 only: no service ids, no connection ids (AWS IoT Device Client, Greengrass).
    V1,
    /// Adds service ids; one connection per stream.
    V2,
    /// Adds connection ids: several connections per stream.
    #[default]
    V3,
}

/// How an endpoint is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Source or destination.
    pub role: Role,
    /// The format this endpoint writes.
    pub format: Format,
    /// Destination: the service ids it can connect (a STREAM_START for another id is answered
    /// with STREAM_RESET). Source: service ids it may open; empty means "whatever SERVICE_IDS
    /// announces".
    pub services: Vec<String>,
    /// How often the driver should ping the WebSocket; `None` never asks.
    pub ping_interval: Option<Duration>,
    /// The stream id the first stream this source opens uses; later streams count up (wrapping
    /// past [`MAX_ID`] to 1, never 0). Drivers pass [`id_from_random`] for a new tunnel, and
    /// [`Endpoint::next_stream_id`] of the previous endpoint (plus a random step) on a
    /// reconnect, so ids are unpredictable and do not repeat. A value outside `1..=MAX_ID` is
    /// mapped into it. Unused by destinations.
    pub first_stream_id: i32,
    /// Most connections one stream may have open at once (at least 1).
    pub max_connections_per_stream: usize,
    /// Most connections this endpoint may have open at once, all streams together (at least 1).
    pub max_connections: usize,
}

/// One connection inside one stream of one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The service id ("" when the peer or format has none).
    pub service_id: String,
    /// The stream the connection belongs to.
    pub stream_id: i32,
    /// The connection id inside the stream (1 for the stream's first connection).
    pub connection_id: u32,
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer sent CONNECTION_RESET for it.
    ConnectionReset,
    /// The peer (or the service) sent STREAM_RESET for its stream.
    StreamReset,
    /// A new stream for the same service replaced its stream: at a destination, the peer's new
    /// STREAM_START; at a source, the application's own [`Endpoint::open_stream`].
    StreamReplaced,
    /// The service sent SESSION_RESET.
    SessionReset,
}

/// What the application learns from the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The service announced the tunnel's service ids (V2/V3 services send this first).
    ServiceIds(Vec<String>),
    /// Destination: the peer opened a connection (STREAM_START or CONNECTION_START); connect it
    /// to the local service of `service_id`, or refuse with [`Endpoint::close`].
    ConnectionRequested(ConnId),
    /// Destination: the peer asked for a connection over [`Config::max_connections_per_stream`]
    /// or [`Config::max_connections`]; it was refused (CONNECTION_RESET, or STREAM_RESET for a
    /// new stream). Worth a log line.
    ConnectionRefused {
        /// The connection the peer asked for.
        conn: ConnId,
        /// The cap it would have exceeded.
        limit: usize,
    },
    /// Bytes for an open connection.
    Data {
        /// The connection the bytes belong to.
        conn: ConnId,
        /// The payload, in order.
        data: Vec<u8>,
    },
    /// A connection is gone; no more data will flow on it.
    ConnectionClosed {
        /// The connection that closed.
        conn: ConnId,
        /// Why.
        cause: CloseCause,
    },
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes as one binary WebSocket message (never over 131076 bytes).
    Transmit(Vec<u8>),
    /// Hand this event to the application.
    Event(Event),
    /// Send a WebSocket ping now (if the platform can).
    Ping,
}

/// The peer or the service broke the protocol; the WebSocket should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// A frame failed the codec's checks.
    #[error(transparent)]
    Frame(#[from] crate::codec::FrameError),
    /// A message this role must never receive (e.g. STREAM_START at a source).
    #[error("{kind:?} is not allowed towards a {role:?}")]
    Unexpected {
        /// The offending message type.
        kind: crate::message::MessageType,
        /// This endpoint's role.
        role: Role,
    },
    /// SERVICE_IDS listed more than three services, a duplicate or an empty id.
    #[error("invalid service id list: {0}")]
    InvalidServiceIds(String),
}

/// The application asked for something the endpoint cannot do in its state or role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    /// A source-only command on a destination, or the reverse.
    #[error("a {0:?} cannot do that")]
    WrongRole(Role),
    /// The service id is not one this tunnel has.
    #[error("service {0:?} is not a service of this tunnel")]
    UnknownService(String),
    /// Several services are known and none was named.
    #[error("this tunnel has several services ({0:?}); name one")]
    ServiceRequired(Vec<String>),
    /// The connection is not open (never was, or closed since).
    #[error("connection {0:?} is not open")]
    NotOpen(ConnId),
    /// Several connections per stream need the V3 format.
    #[error("more than one connection per stream needs the V3 message format")]
    NeedsV3,
    /// Opening one more connection would exceed a cap of [`Config`].
    #[error("too many open connections (at most {limit})")]
    TooManyConnections {
        /// The cap that would be exceeded.
        limit: usize,
    },
    /// The endpoint failed earlier on peer input; the WebSocket must be closed and a new
    /// endpoint built for the next one.
    #[error("the tunnel endpoint has failed: {0}")]
    Failed(PeerError),
}

impl Config {
    /// A configuration with no service list, no keep-alive, first stream id 1 and the default
    /// connection caps.
    pub fn new(role: Role, format: Format) -> Self {
        Self {
            role,
            format,
            services: Vec::new(),
            ping_interval: None,
            first_stream_id: 1,
            max_connections_per_stream: DEFAULT_MAX_CONNECTIONS_PER_STREAM,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// One stream: the active stream id of one service and its open connections.
#[derive(Debug)]
struct Stream {
    stream_id: i32,
    /// The connection ids currently open in this stream.
    connections: BTreeSet<u32>,
    /// The connection id the next [`Endpoint::open_connection`] tries (source only; within
    /// `1..=MAX_ID`).
    next_connection_id: u32,
    /// Whether this endpoint writes the service id on this stream's messages.
    write_service_id: bool,
    /// Whether this endpoint writes connection ids (and so closes single connections with
    /// CONNECTION_RESET) on this stream.
    write_connection_id: bool,
}

/// The sans-IO endpoint. See the module documentation for the driving loop.
///
/// Every method runs to completion without blocking; after each call the driver drains
/// [`Endpoint::poll_output`] until it returns `None`, then waits for the next input or for the
/// deadline of [`Endpoint::poll_timeout`].
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    /// Lenient: unknown protobuf fields from newer peers are skipped.
    decoder: FrameDecoder,
    /// Set by the first peer error; every later input returns it again.
    failed: Option<PeerError>,
    /// The service ids the last SERVICE_IDS announced.
    service_ids: Vec<String>,
    /// Whether SERVICE_IDS has arrived (an empty list then means a tunnel without services).
    service_ids_received: bool,
    /// The live stream of each service, keyed by the service id the application sees.
    streams: BTreeMap<String, Stream>,
    /// The id the next stream this source opens gets.
    next_stream_id: i32,
    events: VecDeque<Event>,
    tx: Packer,
    /// When the next keep-alive ping is due.
    next_ping: Option<Duration>,
    ping_due: bool,
}

impl Endpoint {
    /// A fresh endpoint; `now` starts the keep-alive clock.
    ///
    /// A `ping_interval` of zero is treated as no keep-alive.
    pub fn new(config: Config, now: Duration) -> Self {
        let next_ping = config
            .ping_interval
            .filter(|interval| !interval.is_zero())
            .and_then(|interval| now.checked_add(interval));
        let next_stream_id = valid_id(config.first_stream_id);
        Self {
            config,
            decoder: FrameDecoder::new(),
            failed: None,
            service_ids: Vec::new(),
            service_ids_received: false,
            streams: BTreeMap::new(),
            next_stream_id,
            events: VecDeque::new(),
            tx: Packer::default(),
            next_ping,
            ping_due: false,
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The service ids the tunneling service announced (empty until SERVICE_IDS arrives).
    pub fn service_ids(&self) -> &[String] {
        &self.service_ids
    }

    /// The id the next stream this source opens gets (a driver that reconnects starts the next
    /// endpoint after it, so ids do not repeat across reconnects).
    pub fn next_stream_id(&self) -> i32 {
        self.next_stream_id
    }

    /// How many connections are open, all streams together.
    pub fn open_connections(&self) -> usize {
        self.streams.values().map(|s| s.connections.len()).sum()
    }

    /// The error that failed this endpoint, if any.
    pub fn failure(&self) -> Option<&PeerError> {
        self.failed.as_ref()
    }

    /// Bytes encoded but not yet handed out by [`Endpoint::poll_output`].
    pub fn pending_bytes(&self) -> usize {
        self.tx.len()
    }

    /// Whether `conn` is open: its stream is the live stream of its service and the connection
    /// has not been closed by either side.
    pub fn is_open(&self, conn: &ConnId) -> bool {
        self.streams.get(&conn.service_id).is_some_and(|stream| {
            stream.stream_id == conn.stream_id && stream.connections.contains(&conn.connection_id)
        })
    }

    /// The open connections, in order.
    pub fn connections(&self) -> Vec<ConnId> {
        self.streams
            .iter()
            .flat_map(|(service_id, stream)| {
                stream.connections.iter().map(|&connection_id| ConnId {
                    service_id: service_id.clone(),
                    stream_id: stream.stream_id,
                    connection_id,
                })
            })
            .collect()
    }

    /// The next output: a ping request, then bytes to send, then events.
    pub fn poll_output(&mut self) -> Option<Output> {
        if std::mem::take(&mut self.ping_due) {
            return Some(Output::Ping);
        }
        if let Some(bytes) = self.tx.pop() {
            return Some(Output::Transmit(bytes));
        }
        self.events.pop_front().map(Output::Event)
    }

    /// When [`Endpoint::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.failed.is_some() {
            return None;
        }
        self.next_ping
    }

    /// Advances time to `now`: asks for a ping when one is due and schedules the next.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.failed.is_some() {
            return;
        }
        let (Some(deadline), Some(interval)) = (self.next_ping, self.config.ping_interval) else {
            return;
        };
        if now >= deadline {
            self.ping_due = true;
            // Scheduling from `now` (not from the missed deadline) avoids a burst of pings
            // after the driver was late.
            self.next_ping = now.checked_add(interval);
        }
    }

    /// Handles the payload of one binary WebSocket message from the service.
    ///
    /// Frames may span messages; an unfinished frame is kept for the next call. On error the
    /// endpoint is failed for good: every stream is dropped (without events) and every later
    /// call returns the same error; the driver should close the WebSocket.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), PeerError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut input = bytes;
        let result = loop {
            match self.decoder.decode(&mut input) {
                Ok(Some(msg)) => {
                    if let Err(err) = self.handle_message(msg) {
                        break Err(err);
                    }
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(PeerError::Frame(err)),
            }
        };
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.streams.clear();
            self.ping_due = false;
        }
        result
    }

    /// Source: starts a new stream for `service_id` (STREAM_START) and returns its first
    /// connection. Data may be sent on it at once.
    ///
    /// `None` picks the tunnel's only service: the one configured, else the one SERVICE_IDS
    /// announced, else none when SERVICE_IDS announced an empty list (or the format is V1).
    /// Before SERVICE_IDS, with no configured services, V2/V3 need a named service
    /// ([`LocalError::ServiceRequired`] with an empty list). A live stream of the same service is replaced: its connections are
    /// reported closed with [`CloseCause::StreamReplaced`].
    pub fn open_stream(&mut self, service_id: Option<&str>) -> Result<ConnId, LocalError> {
        self.check_usable()?;
        self.check_role(Role::Source)?;
        let service_id = self.pick_service(service_id)?;
        Ok(self.start_stream(service_id))
    }

    /// Source: opens a connection (one accepted TCP connection) to `service_id`, the way
    /// AWS's localproxy does:
    /// - V3, the service has a live stream: CONNECTION_START with a new connection id on it,
    ///   also when the stream's earlier connections have all closed;
    /// - no live stream (the first connection, or after a STREAM_RESET or SESSION_RESET), or a
    ///   V1/V2 stream whose connection has closed: a new stream (STREAM_START);
    /// - V1/V2 with the service's connection still open: [`LocalError::NeedsV3`].
    ///
    /// Over [`Config::max_connections_per_stream`] or [`Config::max_connections`] it fails with
    /// [`LocalError::TooManyConnections`]. `None` picks the service as [`Endpoint::open_stream`].
    pub fn open_connection(&mut self, service_id: Option<&str>) -> Result<ConnId, LocalError> {
        self.check_usable()?;
        self.check_role(Role::Source)?;
        let service_id = self.pick_service(service_id)?;
        let total = self.open_connections();
        let max_total = self.config.max_connections.max(1);
        if total >= max_total {
            return Err(LocalError::TooManyConnections { limit: max_total });
        }
        let max_per_stream = self.config.max_connections_per_stream.max(1);
        let Some(stream) = self.streams.get_mut(&service_id) else {
            return Ok(self.start_stream(service_id));
        };
        if !stream.write_connection_id {
            if !stream.connections.is_empty() {
                return Err(LocalError::NeedsV3);
            }
            return Ok(self.start_stream(service_id));
        }
        if stream.connections.len() >= max_per_stream {
            return Err(LocalError::TooManyConnections {
                limit: max_per_stream,
            });
        }
        let mut connection_id = stream.next_connection_id;
        // Skip ids still open after the counter wrapped (fewer than MAX_ID are ever open).
        while stream.connections.contains(&connection_id) {
            connection_id = next_connection_id(connection_id);
        }
        stream.next_connection_id = next_connection_id(connection_id);
        stream.connections.insert(connection_id);
        let conn = ConnId {
            service_id,
            stream_id: stream.stream_id,
            connection_id,
        };
        let msg = stream_message(MessageType::ConnectionStart, stream, &conn);
        self.queue_control(&msg);
        Ok(conn)
    }

    /// Sends `data` on an open connection, as DATA frames of at most 63 KiB.
    pub fn send(&mut self, conn: &ConnId, data: &[u8]) -> Result<(), LocalError> {
        self.check_usable()?;
        let stream = self.open_stream_of(conn)?;
        let header = DataHeader {
            stream_id: stream.stream_id,
            service_id: if stream.write_service_id {
                &conn.service_id
            } else {
                ""
            },
            connection_id: if stream.write_connection_id {
                conn.connection_id
            } else {
                0
            },
        };
        let mut remaining = data.len();
        for chunk in data.chunks(MAX_PAYLOAD_LEN) {
            let frame_len = header.frame_len(chunk.len());
            let hint = remaining + remaining.div_ceil(MAX_PAYLOAD_LEN) * (frame_len - chunk.len());
            let out = self.tx.room(frame_len, hint);
            encode_data_frame(&header, chunk, out)
                .expect("a DATA frame with a checked stream id and service id encodes");
            remaining -= chunk.len();
        }
        Ok(())
    }

    /// Closes an open connection: CONNECTION_RESET when the stream uses connection ids (V3),
    /// else STREAM_RESET for its whole stream. A destination refuses a requested connection
    /// this way. No event is reported for a connection the application closed itself.
    pub fn close(&mut self, conn: &ConnId) -> Result<(), LocalError> {
        self.check_usable()?;
        let stream = self.open_stream_of(conn)?;
        if stream.write_connection_id {
            let msg = stream_message(MessageType::ConnectionReset, stream, conn);
            if let Some(stream) = self.streams.get_mut(&conn.service_id) {
                stream.connections.remove(&conn.connection_id);
            }
            self.queue_control(&msg);
        } else {
            let msg = stream_message(MessageType::StreamReset, stream, conn);
            self.streams.remove(&conn.service_id);
            self.queue_control(&msg);
        }
        Ok(())
    }

    /// Ends the live stream of `service_id` (STREAM_RESET); all its connections close without
    /// events. Nothing happens when the service has no live stream.
    pub fn reset_stream(&mut self, service_id: &str) -> Result<(), LocalError> {
        self.check_usable()?;
        let known = self.known_services();
        if !known.is_empty() && !known.iter().any(|s| s == service_id) {
            return Err(LocalError::UnknownService(service_id.to_owned()));
        }
        if let Some(stream) = self.streams.remove(service_id) {
            let conn = ConnId {
                service_id: service_id.to_owned(),
                stream_id: stream.stream_id,
                connection_id: 1,
            };
            let msg = stream_message(MessageType::StreamReset, &stream, &conn);
            self.queue_control(&msg);
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), LocalError> {
        match &self.failed {
            Some(err) => Err(LocalError::Failed(err.clone())),
            None => Ok(()),
        }
    }

    fn check_role(&self, wanted: Role) -> Result<(), LocalError> {
        if self.config.role == wanted {
            Ok(())
        } else {
            Err(LocalError::WrongRole(self.config.role))
        }
    }

    /// The services this endpoint knows of: its configuration, else the announced list.
    fn known_services(&self) -> &[String] {
        if self.config.services.is_empty() {
            &self.service_ids
        } else {
            &self.config.services
        }
    }

    /// Chooses the service a source command applies to.
    fn pick_service(&self, service_id: Option<&str>) -> Result<String, LocalError> {
        let known = self.known_services();
        match service_id {
            Some(id) => {
                let is_known = known.is_empty() || known.iter().any(|s| s == id);
                if is_known && id.len() <= MAX_SERVICE_ID_LEN {
                    Ok(id.to_owned())
                } else {
                    Err(LocalError::UnknownService(id.to_owned()))
                }
            }
            None => match known {
                _ if self.config.format == Format::V1 => Ok(match known {
                    [only] => only.clone(),
                    _ => String::new(),
                }),
                [only] => Ok(only.clone()),
                // SERVICE_IDS said the tunnel has no services: streams carry no service id.
                [] if self.service_ids_received => Ok(String::new()),
                _ => Err(LocalError::ServiceRequired(known.to_vec())),
            },
        }
    }

    /// The stream of an open connection, or [`LocalError::NotOpen`].
    fn open_stream_of(&self, conn: &ConnId) -> Result<&Stream, LocalError> {
        self.streams
            .get(&conn.service_id)
            .filter(|stream| {
                stream.stream_id == conn.stream_id
                    && stream.connections.contains(&conn.connection_id)
            })
            .ok_or_else(|| LocalError::NotOpen(conn.clone()))
    }

    /// Source: starts a stream for an already chosen service, replacing its live one.
    fn start_stream(&mut self, service_id: String) -> ConnId {
        self.close_stream(&service_id, CloseCause::StreamReplaced);
        let stream_id = self.next_stream_id;
        self.next_stream_id = next_id(stream_id);
        let stream = Stream {
            stream_id,
            connections: BTreeSet::from([1]),
            next_connection_id: 2,
            write_service_id: self.config.format != Format::V1,
            write_connection_id: self.config.format == Format::V3,
        };
        let conn = ConnId {
            service_id,
            stream_id,
            connection_id: 1,
        };
        let msg = stream_message(MessageType::StreamStart, &stream, &conn);
        self.streams.insert(conn.service_id.clone(), stream);
        self.queue_control(&msg);
        conn
    }

    /// Drops the live stream of `service_id`, reporting each of its connections closed.
    fn close_stream(&mut self, service_id: &str, cause: CloseCause) {
        if let Some(stream) = self.streams.remove(service_id) {
            for connection_id in stream.connections {
                self.events.push_back(Event::ConnectionClosed {
                    conn: ConnId {
                        service_id: service_id.to_owned(),
                        stream_id: stream.stream_id,
                        connection_id,
                    },
                    cause,
                });
            }
        }
    }

    /// Encodes a control message (no payload) into the transmit queue.
    ///
    /// Every stream this endpoint keeps has a non-zero stream id and a service id of at most
    /// [`MAX_SERVICE_ID_LEN`] bytes (checked when the stream is opened or accepted), so its
    /// control messages always fit in a frame.
    fn queue_control(&mut self, msg: &Message) {
        self.try_queue_control(msg)
            .expect("a control message of a kept stream fits in a frame");
    }

    /// Encodes a control message, or refuses it (leaving the queue as it was) when it does not
    /// fit in a frame.
    fn try_queue_control(&mut self, msg: &Message) -> Result<(), crate::codec::FrameError> {
        let frame_len = LENGTH_PREFIX_LEN + prost::Message::encoded_len(msg);
        if frame_len > crate::codec::MAX_FRAME_LEN {
            return Err(crate::codec::FrameError::MessageTooLarge(
                frame_len - LENGTH_PREFIX_LEN,
            ));
        }
        let out = self.tx.room(frame_len, frame_len);
        encode_frame(msg, out)
    }

    /// Queues a refusal echoing a peer's fields. A refusal that cannot be framed (the peer's
    /// service id filled its whole frame) concerns no service a tunnel can have and is dropped.
    fn queue_refusal(&mut self, msg: &Message) {
        let _unframeable = self.try_queue_control(msg);
    }

    /// The service key an incoming stream message (other than STREAM_START) belongs to.
    ///
    /// Peers writing V1 send no service id: such a message belongs to the stream kept under
    /// "", else to the only known service, else to the one stream with its stream id.
    fn resolve_incoming(&self, msg: &Message) -> String {
        if !msg.service_id.is_empty() {
            return msg.service_id.clone();
        }
        if self.streams.contains_key("") {
            return String::new();
        }
        if let [only] = self.known_services() {
            return only.clone();
        }
        let mut matching = self
            .streams
            .iter()
            .filter(|(_, stream)| stream.stream_id == msg.stream_id);
        match (matching.next(), matching.next()) {
            (Some((service_id, _)), None) => service_id.clone(),
            _ => String::new(),
        }
    }

    /// The service id to write in a refusal: the peer's, unless this endpoint writes V1.
    fn echo_service_id(&self, service_id: String) -> String {
        if self.config.format == Format::V1 {
            String::new()
        } else {
            service_id
        }
    }

    fn handle_message(&mut self, msg: Message) -> Result<(), PeerError> {
        // The codec has validated the frame: unknown types reaching this point are ignorable.
        let Some(kind) = msg.kind() else {
            return Ok(());
        };
        match kind {
            MessageType::Unknown => Err(crate::codec::FrameError::TypeMissing.into()),
            MessageType::ServiceIds => self.on_service_ids(msg.available_service_ids),
            MessageType::SessionReset => {
                let services: Vec<String> = self.streams.keys().cloned().collect();
                for service_id in services {
                    self.close_stream(&service_id, CloseCause::SessionReset);
                }
                Ok(())
            }
            MessageType::StreamStart | MessageType::ConnectionStart
                if self.config.role == Role::Source =>
            {
                Err(PeerError::Unexpected {
                    kind,
                    role: Role::Source,
                })
            }
            MessageType::StreamStart => {
                self.on_stream_start(msg);
                Ok(())
            }
            MessageType::ConnectionStart => {
                self.on_connection_start(msg);
                Ok(())
            }
            MessageType::Data => {
                self.on_data(msg);
                Ok(())
            }
            MessageType::StreamReset => {
                let service_id = self.resolve_incoming(&msg);
                if self
                    .streams
                    .get(&service_id)
                    .is_some_and(|stream| stream.stream_id == msg.stream_id)
                {
                    self.close_stream(&service_id, CloseCause::StreamReset);
                }
                Ok(())
            }
            MessageType::ConnectionReset => {
                let service_id = self.resolve_incoming(&msg);
                let connection_id = msg.connection_id.max(1);
                if let Some(stream) = self.streams.get_mut(&service_id)
                    && stream.stream_id == msg.stream_id
                    && stream.connections.remove(&connection_id)
                {
                    let conn = ConnId {
                        service_id,
                        stream_id: msg.stream_id,
                        connection_id,
                    };
                    self.events.push_back(Event::ConnectionClosed {
                        conn,
                        cause: CloseCause::ConnectionReset,
                    });
                }
                Ok(())
            }
        }
    }

    fn on_service_ids(&mut self, ids: Vec<String>) -> Result<(), PeerError> {
        if ids.len() > MAX_SERVICES {
            return Err(PeerError::InvalidServiceIds(format!(
                "{} services, at most {MAX_SERVICES} allowed",
                ids.len()
            )));
        }
        if ids.iter().any(String::is_empty) {
            return Err(PeerError::InvalidServiceIds("empty service id".to_owned()));
        }
        if ids.iter().any(|id| id.len() > MAX_SERVICE_ID_LEN) {
            return Err(PeerError::InvalidServiceIds(format!(
                "service id longer than {MAX_SERVICE_ID_LEN} bytes"
            )));
        }
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(PeerError::InvalidServiceIds(format!(
                    "duplicate service id {id:?}"
                )));
            }
        }
        self.service_ids.clone_from(&ids);
        self.service_ids_received = true;
        self.events.push_back(Event::ServiceIds(ids));
        Ok(())
    }

    /// Destination: a new stream (replacing the service's live one), or a refusal.
    fn on_stream_start(&mut self, msg: Message) {
        let service_id = if msg.service_id.is_empty() {
            match self.known_services() {
                [only] => only.clone(),
                _ => String::new(),
            }
        } else {
            msg.service_id.clone()
        };
        let services = &self.config.services;
        let unknown = !services.is_empty() && !services.contains(&service_id);
        if unknown || service_id.len() > MAX_SERVICE_ID_LEN {
            // Not a service this destination connects: refuse, echoing the peer's fields.
            let reply = Message {
                stream_id: msg.stream_id,
                service_id: self.echo_service_id(msg.service_id),
                ..Message::of(MessageType::StreamReset)
            };
            self.queue_refusal(&reply);
            return;
        }
        let connection_id = msg.connection_id.max(1);
        let replaced = self
            .streams
            .get(&service_id)
            .map_or(0, |stream| stream.connections.len());
        let max_total = self.config.max_connections.max(1);
        if self.open_connections() - replaced >= max_total {
            // Even with the service's old stream gone the endpoint would be over its cap: the
            // old stream stays as it is and the new one is refused.
            let reply = Message {
                stream_id: msg.stream_id,
                service_id: self.echo_service_id(msg.service_id),
                ..Message::of(MessageType::StreamReset)
            };
            self.queue_refusal(&reply);
            self.events.push_back(Event::ConnectionRefused {
                conn: ConnId {
                    service_id,
                    stream_id: msg.stream_id,
                    connection_id,
                },
                limit: max_total,
            });
            return;
        }
        self.close_stream(&service_id, CloseCause::StreamReplaced);
        let stream = Stream {
            stream_id: msg.stream_id,
            connections: BTreeSet::from([connection_id]),
            next_connection_id: next_connection_id(connection_id),
            write_service_id: self.config.format != Format::V1 && !msg.service_id.is_empty(),
            write_connection_id: self.config.format == Format::V3 && msg.connection_id != 0,
        };
        self.streams.insert(service_id.clone(), stream);
        self.events.push_back(Event::ConnectionRequested(ConnId {
            service_id,
            stream_id: msg.stream_id,
            connection_id,
        }));
    }

    /// Destination: one more connection in a live stream, or a CONNECTION_RESET refusal.
    fn on_connection_start(&mut self, msg: Message) {
        let service_id = self.resolve_incoming(&msg);
        let connection_id = msg.connection_id.max(1);
        let format = self.config.format;
        let total = self.open_connections();
        let max_total = self.config.max_connections.max(1);
        let max_per_stream = self.config.max_connections_per_stream.max(1);
        let mut refuse = true;
        let mut over_limit = None;
        if let Some(stream) = self.streams.get_mut(&service_id)
            && stream.stream_id == msg.stream_id
            && format == Format::V3
        {
            stream.write_connection_id = true;
            if stream.connections.len() >= max_per_stream {
                over_limit = Some(max_per_stream);
            } else if total >= max_total {
                over_limit = Some(max_total);
            } else if stream.connections.insert(connection_id) {
                refuse = false;
            } else {
                // A start for a connection that is already open is a peer error on that
                // connection: close ours and refuse theirs.
                stream.connections.remove(&connection_id);
                self.events.push_back(Event::ConnectionClosed {
                    conn: ConnId {
                        service_id: service_id.clone(),
                        stream_id: msg.stream_id,
                        connection_id,
                    },
                    cause: CloseCause::ConnectionReset,
                });
            }
        }
        if refuse {
            // No live stream with that id, or this endpoint cannot label several connections:
            // tell the peer the connection is gone (it drops the reset if it is stale).
            let reply = Message {
                stream_id: msg.stream_id,
                service_id: self.echo_service_id(msg.service_id),
                connection_id,
                ..Message::of(MessageType::ConnectionReset)
            };
            self.queue_refusal(&reply);
            if let Some(limit) = over_limit {
                self.events.push_back(Event::ConnectionRefused {
                    conn: ConnId {
                        service_id,
                        stream_id: msg.stream_id,
                        connection_id,
                    },
                    limit,
                });
            }
        } else {
            self.events.push_back(Event::ConnectionRequested(ConnId {
                service_id,
                stream_id: msg.stream_id,
                connection_id,
            }));
        }
    }

    /// Delivers DATA for an open connection; stale or unknown ones are dropped silently.
    fn on_data(&mut self, msg: Message) {
        let service_id = self.resolve_incoming(&msg);
        let connection_id = msg.connection_id.max(1);
        let open = self.streams.get(&service_id).is_some_and(|stream| {
            stream.stream_id == msg.stream_id && stream.connections.contains(&connection_id)
        });
        if open && !msg.payload.is_empty() {
            self.events.push_back(Event::Data {
                conn: ConnId {
                    service_id,
                    stream_id: msg.stream_id,
                    connection_id,
                },
                data: msg.payload,
            });
        }
    }
}

/// The connection id after `id`, wrapping past [`MAX_ID`] to 1.
fn next_connection_id(id: u32) -> u32 {
    // Connection ids this endpoint keeps are at most u32::MAX; MAX_ID bounds the ones it picks.
    let id = i32::try_from(id).unwrap_or(MAX_ID);
    next_id(id).unsigned_abs()
}

/// A payload-less message of `kind` for `conn` in `stream`, written in the stream's format.
///
/// STREAM_RESET concerns the whole stream and so carries no connection id.
fn stream_message(kind: MessageType, stream: &Stream, conn: &ConnId) -> Message {
    Message {
        stream_id: stream.stream_id,
        service_id: if stream.write_service_id {
            conn.service_id.clone()
        } else {
            String::new()
        },
        connection_id: if stream.write_connection_id && kind != MessageType::StreamReset {
            conn.connection_id
        } else {
            0
        },
        ..Message::of(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_wrap_within_what_devices_encode() {
        assert_eq!(next_id(MAX_ID), 1);
        assert_eq!(next_id(41), 42);
        assert_eq!(next_connection_id(MAX_ID.unsigned_abs()), 1);
        // A peer's huge connection id does not push this endpoint's counter out of range.
        assert_eq!(next_connection_id(u32::MAX), 1);
        assert_eq!(valid_id(0), 1);
        assert_eq!(valid_id(MAX_ID), MAX_ID);
        assert_eq!(valid_id(i32::MIN), i32::MIN.rem_euclid(MAX_ID) + 1);
        assert_eq!(id_from_random(0), 1);
        assert_eq!(
            id_from_random(u32::MAX),
            (u32::MAX % MAX_ID as u32) as i32 + 1
        );
        let mut plan = StreamIdPlan::new(5);
        plan.advance(MAX_ID, StreamIdPlan::MAX_STEP - 1);
        assert!((1..=MAX_ID).contains(&plan.first_stream_id()));
    }
}
