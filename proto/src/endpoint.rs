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
//! It deliberately does not decide what to connect to, how to retry, or how to log: that is the
//! driver's business.

use std::time::Duration;

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
    /// The stream id the first [`Endpoint::open_stream`] uses; later streams count up (wrapping
    /// past `i32::MAX` to 1, never 0). Drivers pass a random positive value so ids are unlikely
    /// to repeat across reconnects. Unused by destinations.
    pub first_stream_id: i32,
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
    /// A new STREAM_START for the same service replaced its stream (destination only).
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
    /// SERVICE_IDS listed more than three services or a duplicate.
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
}

/// The sans-IO endpoint. See the module documentation for the driving loop.
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
}

impl Endpoint {
    /// A fresh endpoint; `now` starts the keep-alive clock.
    pub fn new(config: Config, now: Duration) -> Self {
        let _ = now;
        Self { config }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
