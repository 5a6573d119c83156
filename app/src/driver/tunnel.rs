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
        self.send_all([data]);
    }

    /// Sends several writes of the SSH client at once: their frames share WebSocket messages
    /// (up to the message limit) instead of one message each, so a burst of small packets (a
    /// transfer's read requests) costs the browser one `send` rather than dozens.
    pub fn send_all<'a>(&mut self, writes: impl IntoIterator<Item = &'a [u8]>) {
        if let State::Open { conn, .. } = &self.state {
            let conn = conn.clone();
            for data in writes {
                if let Err(err) = self.endpoint.send(&conn, data) {
                    self.local_failure(err);
                    break;
                }
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
mod tests;
