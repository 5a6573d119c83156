//! The browser driver: opens the tunnel WebSocket, runs the [`TunnelCore`] over it, and hands
//! the SSH client a [`TunnelStream`].
//!
//! One task (the *pump*) owns the [`Socket`] and the core and waits on a closed set of inputs:
//! socket events, bytes the SSH client wrote, a close request, the SERVICE_IDS timer and, once
//! the stream is open, the banner timer ([`BANNER_WAIT`]). After each input it drains the core's
//! outputs. Bytes the SSH client wrote are taken with everything else it has queued by then, so a
//! burst of packets (a transfer's read requests) leaves in one WebSocket message, not one each. It holds no `RefCell` borrow across an `.await`
//! (the only shared cells are counters and the end reason, touched synchronously).
//!
//! A handshake the browser reports as failed (close before open; browsers hide the HTTP status)
//! is explained by asking the same-site service (`cookie::probe_handshake`); against AWS
//! directly the error says what is likely.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_channel::oneshot;
use futures_util::future::Fuse;
use futures_util::{FutureExt, StreamExt, select, select_biased};
use gloo_timers::future::TimeoutFuture;

use super::answers::{handshake_error, shown};
use super::cookie::probe_handshake;
use super::error::TunnelError;
use super::socket::{Socket, SocketEvent};
use super::stream::{StreamSide, TunnelStream, stream_pair};
use super::tunnel::{BANNER_WAIT, CoreOutput, TunnelCore, next_first_stream_id};
use super::url::SUBPROTOCOLS;
use burrow_proto::Format;

/// How long the WebSocket handshake may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for SERVICE_IDS (V2/V3 fail after it).
pub const SERVICE_IDS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a V1 source waits for SERVICE_IDS before opening a stream without a service id.
pub const SERVICE_IDS_V1_WAIT: Duration = Duration::from_secs(3);

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// What to connect to.
pub struct TunnelSpec<'a> {
    /// The WebSocket URL (it carries the token for AWS directly: never log it).
    pub url: &'a str,
    /// The same-site base to probe after a failed handshake (`None` for AWS).
    pub probe_base: Option<&'a crate::endpoint::SiteBase>,
    /// Whether the endpoint is AWS directly.
    pub aws: bool,
    /// The destination's message format.
    pub format: Format,
    /// The service to open, if chosen.
    pub service_id: Option<String>,
}

/// Bytes on the tunnel WebSocket, both ways.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes received.
    pub bytes_in: Cell<u64>,
    /// Bytes sent.
    pub bytes_out: Cell<u64>,
    /// Bytes of the device's stream handed to the SSH client.
    pub delivered: Cell<u64>,
}

impl Counters {
    fn add(cell: &Cell<u64>, n: usize) {
        cell.set(cell.get().saturating_add(n as u64));
    }
}

/// What the session asks of the pump.
#[derive(Debug)]
enum Control {
    /// Open the stream on this service (after [`Ready::Choose`]).
    Choose(String),
    /// Close the stream and the WebSocket.
    Close,
}

/// What the pump reports while the tunnel opens.
#[derive(Debug)]
enum Ready {
    /// The stream is open on this service.
    Opened(String),
    /// The operator must choose one of these services.
    Choose(Vec<String>),
    /// The tunnel failed before the stream opened.
    Failed(TunnelError),
}

/// Asks the operator to choose a service (see `SessionHost::choose_service`).
pub type ServiceChooser<'a> = &'a dyn Fn(Vec<String>) -> Option<oneshot::Receiver<Option<String>>>;

/// A running tunnel. Dropping it closes the stream (CONNECTION_RESET/STREAM_RESET) and the
/// WebSocket.
pub struct Tunnel {
    /// The service the stream belongs to ("" when none).
    pub service_id: String,
    /// Byte counters for the status line.
    pub counters: Rc<Counters>,
    end: Rc<RefCell<Option<TunnelError>>>,
    control: UnboundedSender<Control>,
}

impl Tunnel {
    /// Why the tunnel ended, if it did.
    pub fn end_reason(&self) -> Option<TunnelError> {
        self.end.borrow().clone()
    }

    /// Closes the stream and the WebSocket.
    pub fn close(&self) {
        // The pump may be gone already; then everything is closed.
        let _ = self.control.unbounded_send(Control::Close);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects: WebSocket handshake, SERVICE_IDS, service choice (through `chooser` when the
/// tunnel has several services and none was requested), stream start. Returns the running
/// tunnel and the SSH client's stream.
pub async fn open_tunnel(
    spec: TunnelSpec<'_>,
    chooser: ServiceChooser<'_>,
) -> Result<(Tunnel, TunnelStream), TunnelError> {
    let (socket, mut events) = Socket::open(spec.url, &SUBPROTOCOLS)?;
    let mut timer = TimeoutFuture::new(millis(OPEN_TIMEOUT)).fuse();
    loop {
        select! {
            event = events.next() => match event {
                Some(SocketEvent::Open) => break,
                Some(SocketEvent::Close { code, reason }) => {
                    drop(socket);
                    let probe = match spec.probe_base {
                        Some(base) => probe_handshake(base).await,
                        None => None,
                    };
                    return Err(handshake_error(probe, spec.aws, code, &reason));
                }
                // The close event follows an error event; messages cannot come before open.
                Some(_) => {}
                None => return Err(TunnelError::Browser("the WebSocket vanished".to_owned())),
            },
            () = timer => {
                return Err(TunnelError::Timeout {
                    what: "the tunneling service to accept the WebSocket".to_owned(),
                    seconds: u32::try_from(OPEN_TIMEOUT.as_secs()).unwrap_or(u32::MAX),
                });
            }
        }
    }
    let protocol = socket.protocol();
    if !SUBPROTOCOLS.contains(&protocol.as_str()) {
        socket.close("unsupported subprotocol");
        return Err(TunnelError::Subprotocol(protocol));
    }

    let core = TunnelCore::new(spec.format, spec.service_id, next_first_stream_id());
    let (stream, side) = stream_pair();
    let (ready_tx, mut ready_rx) = unbounded();
    let (control, control_rx) = unbounded();
    let counters = Rc::new(Counters::default());
    let end = Rc::new(RefCell::new(None));
    let wait = if spec.format == Format::V1 {
        SERVICE_IDS_V1_WAIT
    } else {
        SERVICE_IDS_TIMEOUT
    };
    wasm_bindgen_futures::spawn_local(pump(Pump {
        socket,
        events,
        core,
        side,
        ready: Some(ready_tx),
        end: Rc::clone(&end),
        counters: Rc::clone(&counters),
        control_rx,
        services_wait: wait,
    }));
    let mut tunnel = Tunnel {
        service_id: String::new(),
        counters,
        end,
        control,
    };
    loop {
        match ready_rx.next().await {
            Some(Ready::Opened(service_id)) => {
                tunnel.service_id = service_id;
                return Ok((tunnel, stream));
            }
            Some(Ready::Failed(reason)) => return Err(reason),
            Some(Ready::Choose(available)) => {
                let answer = match chooser(available.clone()) {
                    Some(answer) => answer.await.ok().flatten(),
                    None => None,
                };
                match answer {
                    Some(service_id) => {
                        // A pump that stopped meanwhile reports why through `ready`.
                        let _ = tunnel.control.unbounded_send(Control::Choose(service_id));
                    }
                    None => return Err(TunnelError::ServiceChoice { available }),
                }
            }
            None => {
                return Err(tunnel.end_reason().unwrap_or_else(|| {
                    TunnelError::Browser("the tunnel driver stopped".to_owned())
                }));
            }
        }
    }
}

/// Everything the pump owns.
struct Pump {
    socket: Socket,
    events: UnboundedReceiver<SocketEvent>,
    core: TunnelCore,
    side: StreamSide,
    ready: Option<UnboundedSender<Ready>>,
    end: Rc<RefCell<Option<TunnelError>>>,
    counters: Rc<Counters>,
    control_rx: UnboundedReceiver<Control>,
    services_wait: Duration,
}

/// The pump task; see the module documentation.
async fn pump(state: Pump) {
    let Pump {
        socket,
        mut events,
        mut core,
        side,
        mut ready,
        end,
        counters,
        mut control_rx,
        services_wait,
    } = state;
    let StreamSide {
        incoming,
        mut outgoing,
    } = side;
    let mut services_timer = TimeoutFuture::new(millis(services_wait)).fuse();
    // Started when the stream opens.
    let mut banner_timer: Fuse<TimeoutFuture> = Fuse::terminated();
    loop {
        let mut finished: Option<TunnelError> = None;
        let mut stop = false;
        // Biased: bytes the SSH client wrote (e.g. its goodbye) go out before a close request
        // that was made after them.
        select_biased! {
            chunk = outgoing.next() => match chunk {
                Some(bytes) => {
                    // What else the SSH client has written by now goes out with it, packed
                    // into as few WebSocket messages as the limit allows.
                    let mut writes = vec![bytes];
                    let shut = loop {
                        match outgoing.try_recv() {
                            Ok(bytes) => writes.push(bytes),
                            Err(empty_or_closed) => break empty_or_closed.is_closed(),
                        }
                    };
                    core.send_all(writes.iter().map(Vec::as_slice));
                    if shut {
                        core.close();
                        stop = true;
                    }
                }
                // The SSH client shut its side down.
                None => {
                    core.close();
                    stop = true;
                }
            },
            event = events.next() => match event {
                Some(SocketEvent::Binary(bytes)) => {
                    Counters::add(&counters.bytes_in, bytes.len());
                    core.handle_message(&bytes);
                }
                Some(SocketEvent::Text) => core.handle_text(),
                Some(SocketEvent::Close { code, reason }) => {
                    finished = Some(TunnelError::WebSocketClosed {
                        code,
                        reason: shown(&reason),
                    });
                    stop = true;
                }
                Some(SocketEvent::Open | SocketEvent::Error) => {}
                None => stop = true,
            },
            control = control_rx.next() => match control {
                Some(Control::Choose(service_id)) => core.choose(&service_id),
                // A close request, or the tunnel handle was dropped.
                Some(Control::Close) | None => {
                    core.close();
                    stop = true;
                }
            },
            () = services_timer => core.services_timed_out(services_wait),
            () = banner_timer => core.banner_wait_over(BANNER_WAIT),
        }
        while let Some(output) = core.poll() {
            match output {
                CoreOutput::Transmit(bytes) => match socket.send(&bytes) {
                    Ok(()) => Counters::add(&counters.bytes_out, bytes.len()),
                    Err(err) => {
                        finished.get_or_insert(err);
                        stop = true;
                        break;
                    }
                },
                CoreOutput::Opened { service_id } => {
                    banner_timer = TimeoutFuture::new(millis(BANNER_WAIT)).fuse();
                    if let Some(ready) = ready.take() {
                        let _ = ready.unbounded_send(Ready::Opened(service_id));
                    }
                }
                CoreOutput::ChooseService(available) => {
                    if let Some(ready) = &ready {
                        let _ = ready.unbounded_send(Ready::Choose(available));
                    }
                }
                // The SSH side may be gone; then the bytes have nowhere to go.
                CoreOutput::Deliver(data) => {
                    Counters::add(&counters.delivered, data.len());
                    let _ = incoming.unbounded_send(data);
                }
                CoreOutput::Ended(reason) => {
                    finished.get_or_insert(reason);
                    stop = true;
                }
            }
        }
        if let Some(reason) = finished {
            {
                let mut slot = end.borrow_mut();
                if slot.is_none() {
                    *slot = Some(reason.clone());
                }
            }
            if let Some(ready) = ready.take() {
                let _ = ready.unbounded_send(Ready::Failed(reason));
            }
        }
        if stop {
            break;
        }
    }
    // Queued messages (e.g. the final reset) go out before the close frame.
    socket.close("session ended");
    // Dropping `incoming` makes the SSH client read end-of-file.
    drop(incoming);
}
