//! One WebSocket session of the agent: the driver between the tunnel endpoint, the WebSocket
//! and the local TCP connections.
//!
//! The driver owns a `burrow_proto::Endpoint` and waits on a closed set of inputs (a WebSocket
//! message, room in the WebSocket writer's queue, room in a blocked connection's queue, an event
//! from a connection task, a newly accepted socket, the endpoint's or the silence deadline); it
//! feeds one input to the endpoint and drains its output before waiting again.
//!
//! Flow control: data for a connection goes through that connection's bounded queue. When one is
//! full, the driver keeps the undelivered events and stops reading the WebSocket until there is
//! room; the service (and behind it the far peer) then feels the back-pressure. The other way, the
//! driver stops taking data from connection tasks while the WebSocket writer's queue is full, so
//! they stop reading their sockets.
//!
//! When the session ends every local connection of it is closed: after a dropped WebSocket the
//! tunnel's streams are gone anyway. Reconnecting is the caller's business; stream ids continue
//! across sessions through a [`StreamIdPlan`], so they never repeat within a run.
//!
//! Source mode opens every accepted socket with `Endpoint::open_connection` (in V3 a
//! CONNECTION_START on the service's live stream, as localproxy does). An SSH server speaks
//! first, so a source connection that hears nothing within [`BANNER_WAIT`] gets a log line
//! naming the message format as the likely cause (an AWS IoT Device Client never answers V3).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use burrow_proto::{ConnId, Endpoint, Event, Format, LocalError, Output, Role, StreamIdPlan};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::conn::{self, Key, LocalEvent};
use super::device_client;
use super::formats::{effective_format, no_answer_hint};
use super::mapping::{DestinationMapping, SourceMapping};
use crate::wsclient::Connected;

/// WebSocket messages queued for the writer task at most.
const WS_QUEUE: usize = 8;
/// Messages the driver keeps for the writer beyond its queue before it stops taking local data.
const OUTBOX_LIMIT: usize = 4;
/// Events from connection tasks queued at most (each at most one 63 KiB chunk).
const LOCAL_QUEUE: usize = 32;
/// How many ping intervals without any message from the service end the session.
const SILENT_PINGS: u32 = 3;
/// How long a source connection waits for the first byte from the device before the log says
/// the message format may be wrong (an SSH server sends its banner at once).
pub const BANNER_WAIT: Duration = Duration::from_secs(2);

/// What a session needs to know besides the WebSocket.
#[derive(Debug)]
pub struct Setup<'a> {
    /// Source or destination.
    pub role: Role,
    /// The message format to write (lowered to what the chosen subprotocol allows).
    pub format: Format,
    /// Destination: where each service goes.
    pub destinations: &'a [DestinationMapping],
    /// Source: the listening mappings ([`Accepted::mapping`] indexes them).
    pub sources: &'a [SourceMapping],
    /// How often to ping the service.
    pub ping_interval: Duration,
    /// How long a destination waits for its local service to accept a connection.
    pub connect_timeout: Duration,
    /// Most connections one stream may have open at once.
    pub max_connections_per_stream: usize,
    /// Most connections the agent may have open at once.
    pub max_connections: usize,
    /// Destination: keep the AWS IoT Device Client's rules ([`device_client`]).
    pub device_client: bool,
}

/// A socket accepted on a source listener.
#[derive(Debug)]
pub struct Accepted {
    /// Index of the mapping whose listener accepted it.
    pub mapping: usize,
    /// The socket.
    pub stream: TcpStream,
    /// Who connected, for the logs.
    pub peer: SocketAddr,
}

/// How a session ended (every way is worth a reconnect; the caller decides).
#[derive(Debug)]
pub enum SessionEnd {
    /// The service closed the WebSocket with a close frame.
    Closed {
        /// The close code, if any.
        code: Option<u16>,
        /// The close reason (may be empty).
        reason: String,
    },
    /// The WebSocket failed, ended without a close frame, or went silent.
    Dropped(String),
    /// The service sent something the protocol does not allow.
    Protocol(String),
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed { code, reason } => {
                let code = code.map_or_else(|| "no code".to_owned(), |c| c.to_string());
                write!(f, "the service closed the WebSocket ({code}) {reason:?}")
            }
            Self::Dropped(why) => write!(f, "the WebSocket dropped: {why}"),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// One local connection known to the driver.
#[derive(Debug)]
struct Entry {
    conn: ConnId,
    to_socket: mpsc::Sender<Vec<u8>>,
    /// Source: when to log the "no answer" hint unless a byte arrives first (`None` once a
    /// byte arrived or the hint was logged).
    banner_due: Option<Instant>,
}

/// Aborts a task when dropped (the WebSocket writer must not outlive its session).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The driver's state besides the WebSocket halves.
struct Driver<'a> {
    setup: &'a Setup<'a>,
    endpoint: Endpoint,
    format: Format,
    conns: HashMap<Key, Entry>,
    keys: HashMap<ConnId, Key>,
    next_key: Key,
    local_tx: mpsc::Sender<LocalEvent>,
    /// Events drained from the endpoint but not yet handled (a connection's queue was full).
    pending: VecDeque<Event>,
    /// WebSocket messages not yet in the writer's queue.
    outbox: VecDeque<Message>,
    tasks: JoinSet<()>,
    announced: bool,
}

/// Runs one session over a connected WebSocket until it ends.
///
/// `accepted` is the source listeners' channel; it outlives sessions (a destination passes a
/// channel nobody sends on).
pub async fn run(
    connected: Connected,
    setup: &Setup<'_>,
    accepted: &mut mpsc::Receiver<Accepted>,
    stream_ids: &mut StreamIdPlan,
) -> SessionEnd {
    let format = effective_format(setup.format, &connected.subprotocol);
    if format != setup.format {
        tracing::warn!(
            subprotocol = %connected.subprotocol,
            "the service chose an older subprotocol; writing {format:?} messages"
        );
    }
    let services: Vec<String> = match setup.role {
        Role::Destination => setup
            .destinations
            .iter()
            .filter_map(|m| m.service.clone())
            .collect(),
        Role::Source => setup
            .sources
            .iter()
            .filter_map(|m| m.service.clone())
            .collect(),
    };
    let origin = Instant::now();
    let config = burrow_proto::Config {
        role: setup.role,
        format,
        services,
        ping_interval: Some(setup.ping_interval),
        first_stream_id: stream_ids.first_stream_id(),
        max_connections_per_stream: setup.max_connections_per_stream,
        max_connections: setup.max_connections,
    };
    let (local_tx, mut local_rx) = mpsc::channel(LOCAL_QUEUE);
    let mut driver = Driver {
        setup,
        endpoint: Endpoint::new(config, Duration::ZERO),
        format,
        conns: HashMap::new(),
        keys: HashMap::new(),
        next_key: 1,
        local_tx,
        pending: VecDeque::new(),
        outbox: VecDeque::new(),
        tasks: JoinSet::new(),
        announced: false,
    };
    if Format::from_subprotocol(&connected.subprotocol) == Some(Format::V1) {
        // V1 services announce no service ids: the session is ready as it is.
        driver.announce(&[]);
    }

    let (mut sink, mut stream) = connected.socket.split();
    let (ws_tx, mut ws_rx) = mpsc::channel::<Message>(WS_QUEUE);
    let mut writer = tokio::spawn(async move {
        while let Some(msg) = ws_rx.recv().await {
            let mut closing = matches!(msg, Message::Close(_));
            sink.feed(msg).await?;
            while !closing && let Ok(more) = ws_rx.try_recv() {
                closing = matches!(more, Message::Close(_));
                sink.feed(more).await?;
            }
            sink.flush().await?;
            if closing {
                break;
            }
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    });
    let _writer_guard = AbortOnDrop(writer.abort_handle());

    let mut gate = device_client::Gate::new(setup.device_client);
    let silence_limit = setup.ping_interval * SILENT_PINGS;
    let mut last_heard = Instant::now();
    let mut accepting = setup.role == Role::Source;
    let end = loop {
        driver.drain_endpoint();
        driver.handle_pending();
        while let Some(msg) = driver.outbox.pop_front() {
            match ws_tx.try_send(msg) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    driver.outbox.push_front(msg);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }

        let reading_ws = driver.pending.is_empty();
        if !reading_ws {
            // Silence while the driver deliberately does not read is its own doing.
            last_heard = Instant::now();
        }
        let blocked = driver.blocked_sender();
        let wait_for_room = async move {
            match blocked {
                Some(to_socket) => to_socket.reserve_owned().await.ok(),
                None => std::future::pending().await,
            }
        };
        let mut deadline = last_heard + silence_limit;
        if let Some(at) = driver.endpoint.poll_timeout() {
            deadline = deadline.min(origin + at);
        }
        if let Some(at) = driver.next_banner_due() {
            deadline = deadline.min(at);
        }
        let taking_local = driver.outbox.len() < OUTBOX_LIMIT;

        tokio::select! {
            incoming = stream.next(), if reading_ws => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Binary(bytes))) => {
                        let fed = match gate.pass(&bytes) {
                            Ok(fed) => driver.endpoint.handle_bytes(&fed),
                            Err(why) => break SessionEnd::Dropped(why),
                        };
                        if let Err(err) = fed {
                            break SessionEnd::Protocol(err.to_string());
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        break SessionEnd::Protocol("the service sent a text message".to_owned());
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break SessionEnd::Closed {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        };
                    }
                    // Pings are answered by the WebSocket library; pongs only prove liveness.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Err(err)) => break SessionEnd::Dropped(err.to_string()),
                    None => {
                        break SessionEnd::Dropped(
                            "the connection ended without a close frame".to_owned(),
                        );
                    }
                }
            }
            permit = ws_tx.reserve(), if !driver.outbox.is_empty() => {
                match (permit, driver.outbox.pop_front()) {
                    (Ok(permit), Some(msg)) => permit.send(msg),
                    (Ok(_), None) => {}
                    (Err(_), _) => {
                        break SessionEnd::Dropped("the WebSocket writer stopped".to_owned());
                    }
                }
            }
            room = wait_for_room => driver.deliver_head(room),
            event = local_rx.recv(), if taking_local => {
                if let Some(event) = event {
                    driver.handle_local(event);
                }
            }
            socket = accepted.recv(), if accepting && taking_local => {
                match socket {
                    Some(socket) => driver.handle_accept(socket),
                    None => accepting = false,
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if last_heard.elapsed() >= silence_limit {
                    break SessionEnd::Dropped(format!(
                        "nothing heard from the service for {silence_limit:?}"
                    ));
                }
                driver.endpoint.handle_timeout(origin.elapsed());
                driver.banner_hints(Instant::now());
            }
            result = &mut writer => {
                let why = match result {
                    Ok(Ok(())) => "the WebSocket writer stopped".to_owned(),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => format!("the WebSocket writer failed: {err}"),
                };
                break SessionEnd::Dropped(why);
            }
        }
    };

    if let SessionEnd::Protocol(why) = &end {
        // Tell the service why, then give the writer a moment to get it out.
        let frame = CloseFrame {
            code: CloseCode::Protocol,
            reason: why.chars().take(100).collect::<String>().into(),
        };
        if ws_tx.try_send(Message::Close(Some(frame))).is_ok() {
            let _late = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
        }
    }
    let open = driver.conns.len();
    if open > 0 {
        tracing::info!(open, "closing the local connections of the ended session");
    }
    stream_ids.advance(driver.endpoint.next_stream_id(), rand::random());
    end
}

impl Driver<'_> {
    /// Moves the endpoint's output into the outbox (bytes, pings) and the pending events.
    fn drain_endpoint(&mut self) {
        while let Some(output) = self.endpoint.poll_output() {
            match output {
                Output::Transmit(bytes) => self.outbox.push_back(Message::Binary(bytes.into())),
                Output::Ping => self.outbox.push_back(Message::Ping(Vec::new().into())),
                Output::Event(event) => self.pending.push_back(event),
            }
        }
    }

    /// Handles pending events in order, stopping at data for a connection whose queue is full.
    fn handle_pending(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            match event {
                Event::Data { conn, data } => {
                    let Some(entry) = self.keys.get(&conn).and_then(|key| self.conns.get_mut(key))
                    else {
                        // The local side of this connection is already gone.
                        continue;
                    };
                    entry.banner_due = None;
                    match entry.to_socket.try_send(data) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(data)) => {
                            self.pending.push_front(Event::Data { conn, data });
                            return;
                        }
                        // The connection task ended; its close event is on the way.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                other => self.handle_event(other),
            }
        }
    }

    /// The queue the first pending event waits for, if the driver is blocked on one.
    fn blocked_sender(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        match self.pending.front() {
            Some(Event::Data { conn, .. }) => self
                .keys
                .get(conn)
                .and_then(|key| self.conns.get(key))
                .map(|entry| entry.to_socket.clone()),
            _ => None,
        }
    }

    /// Delivers the blocked event once its queue has room (or drops it if the queue closed).
    fn deliver_head(&mut self, room: Option<mpsc::OwnedPermit<Vec<u8>>>) {
        if let Some(Event::Data { data, .. }) = self.pending.pop_front()
            && let Some(permit) = room
        {
            permit.send(data);
        }
    }

    /// The earliest pending "no answer" hint of a source connection.
    fn next_banner_due(&self) -> Option<Instant> {
        self.conns.values().filter_map(|e| e.banner_due).min()
    }

    /// Logs the "no answer" hint for every source connection that heard nothing in time.
    fn banner_hints(&mut self, now: Instant) {
        let format = self.format;
        for entry in self.conns.values_mut() {
            if entry.banner_due.is_some_and(|due| due <= now) {
                entry.banner_due = None;
                tracing::warn!(
                    service = %entry.conn.service_id,
                    stream = entry.conn.stream_id,
                    connection = entry.conn.connection_id,
                    "{}",
                    no_answer_hint(format)
                );
            }
        }
    }

    /// Prints the readiness line (once per session).
    fn announce(&mut self, services: &[String]) {
        if self.announced {
            return;
        }
        self.announced = true;
        let mode = match self.setup.role {
            Role::Source => "source",
            Role::Destination => "destination",
        };
        let services = if services.is_empty() {
            "none".to_owned()
        } else {
            services.join(",")
        };
        super::ready_line(&format!(
            "connected ({mode}, {:?}, services: {services})",
            self.format
        ));
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::ServiceIds(ids) => {
                tracing::info!(services = ?ids, "the tunnel's services");
                if self.setup.role == Role::Destination {
                    for id in &ids {
                        if self.target_for(id).is_none() {
                            tracing::warn!(
                                service = %id,
                                "no -d mapping for this service; its connections will be refused"
                            );
                        }
                    }
                }
                self.announce(&ids);
            }
            Event::ConnectionRequested(conn) => self.on_connection_requested(conn),
            Event::ConnectionRefused { conn, limit } => {
                tracing::warn!(
                    service = %conn.service_id,
                    stream = conn.stream_id,
                    connection = conn.connection_id,
                    limit,
                    "refused a connection over the cap (CONNECTION_RESET sent); raise \
                     --max-connections-per-stream or --max-connections if this is expected"
                );
            }
            Event::Data { .. } => {
                // Data is delivered by `handle_pending`; nothing reaches this arm.
            }
            Event::ConnectionClosed { conn, cause } => {
                if let Some(key) = self.keys.remove(&conn) {
                    self.conns.remove(&key);
                }
                tracing::info!(
                    service = %conn.service_id,
                    stream = conn.stream_id,
                    connection = conn.connection_id,
                    ?cause,
                    "the peer closed the connection"
                );
            }
        }
    }

    /// Destination: the mapping for a service (the unnamed mapping serves any service).
    fn target_for(&self, service: &str) -> Option<&str> {
        let destinations = self.setup.destinations;
        destinations
            .iter()
            .find(|m| m.service.as_deref() == Some(service))
            .or_else(|| match destinations {
                [only] if only.service.is_none() => Some(only),
                _ => None,
            })
            .map(|m| m.target.as_str())
    }

    fn on_connection_requested(&mut self, conn: ConnId) {
        let Some(target) = self.target_for(&conn.service_id).map(str::to_owned) else {
            tracing::warn!(service = %conn.service_id, "no -d mapping for the requested service");
            self.close_in_endpoint(&conn);
            return;
        };
        tracing::info!(
            service = %conn.service_id,
            stream = conn.stream_id,
            connection = conn.connection_id,
            %target,
            "connection requested"
        );
        let (to_socket, from_driver) = mpsc::channel(conn::WRITE_QUEUE);
        let key = self.insert(conn, to_socket);
        self.tasks.spawn(conn::connect_and_pump(
            key,
            target,
            self.setup.connect_timeout,
            from_driver,
            self.local_tx.clone(),
        ));
    }

    fn handle_accept(&mut self, accepted: Accepted) {
        let Accepted {
            mapping,
            stream,
            peer,
        } = accepted;
        let service = self
            .setup
            .sources
            .get(mapping)
            .and_then(|m| m.service.as_deref());
        // V3: a CONNECTION_START on the service's live stream (a new stream only when it has
        // none: the first connection, or after a STREAM_RESET, which the service also sends
        // when the destination reconnected). V1/V2: a new stream per connection.
        let conn = match self.endpoint.open_connection(service) {
            Ok(conn) => conn,
            Err(LocalError::NeedsV3) => {
                tracing::warn!(
                    %peer,
                    format = ?self.format,
                    "refusing a second simultaneous connection: the {:?} format carries one \
                     connection per service at a time (use --format V3 for several)",
                    self.format
                );
                return;
            }
            Err(LocalError::TooManyConnections { limit }) => {
                tracing::warn!(
                    %peer,
                    limit,
                    "refusing the connection: too many open connections (raise \
                     --max-connections-per-stream or --max-connections)"
                );
                return;
            }
            Err(err) => {
                tracing::warn!(%peer, %err, "cannot open a tunnel connection; closing the socket");
                return;
            }
        };
        tracing::info!(
            %peer,
            service = %conn.service_id,
            stream = conn.stream_id,
            connection = conn.connection_id,
            "opened a tunnel connection"
        );
        let (to_socket, from_driver) = mpsc::channel(conn::WRITE_QUEUE);
        let key = self.insert(conn, to_socket);
        if let Some(entry) = self.conns.get_mut(&key) {
            entry.banner_due = Some(Instant::now() + BANNER_WAIT);
        }
        self.tasks
            .spawn(conn::pump(key, stream, from_driver, self.local_tx.clone()));
    }

    fn handle_local(&mut self, event: LocalEvent) {
        match event {
            LocalEvent::Data { key, data } => {
                let Some(entry) = self.conns.get(&key) else {
                    return;
                };
                match self.endpoint.send(&entry.conn, &data) {
                    Ok(()) => {}
                    Err(LocalError::NotOpen(_)) => {
                        self.remove(key);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cannot send on the tunnel connection");
                        self.remove(key);
                    }
                }
            }
            LocalEvent::Closed { key, reason } => {
                if let Some(entry) = self.remove(key) {
                    tracing::info!(
                        service = %entry.conn.service_id,
                        stream = entry.conn.stream_id,
                        connection = entry.conn.connection_id,
                        %reason,
                        "local connection ended"
                    );
                    self.close_in_endpoint(&entry.conn);
                }
            }
            LocalEvent::ConnectFailed { key, reason } => {
                if let Some(entry) = self.remove(key) {
                    tracing::warn!(
                        service = %entry.conn.service_id,
                        stream = entry.conn.stream_id,
                        connection = entry.conn.connection_id,
                        %reason,
                        "refusing the connection: the local service is unreachable"
                    );
                    self.close_in_endpoint(&entry.conn);
                }
            }
        }
    }

    fn insert(&mut self, conn: ConnId, to_socket: mpsc::Sender<Vec<u8>>) -> Key {
        let key = self.next_key;
        self.next_key += 1;
        self.keys.insert(conn.clone(), key);
        self.conns.insert(
            key,
            Entry {
                conn,
                to_socket,
                banner_due: None,
            },
        );
        key
    }

    fn remove(&mut self, key: Key) -> Option<Entry> {
        let entry = self.conns.remove(&key)?;
        self.keys.remove(&entry.conn);
        Some(entry)
    }

    /// Closes a connection in the endpoint (reset towards the peer) unless it is closed already.
    fn close_in_endpoint(&mut self, conn: &ConnId) {
        match self.endpoint.close(conn) {
            Ok(()) | Err(LocalError::NotOpen(_)) => {}
            Err(err) => tracing::warn!(%err, "cannot reset the tunnel connection"),
        }
    }
}
