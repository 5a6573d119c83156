//! The source role against a modelled AWS IoT Device Client (`harness/device_client.rs`), the
//! destination most fleets run, with the service's real rules in between. The source here is
//! driven the way `burrow agent --mode source --format V1` drives its endpoint: one endpoint per
//! WebSocket session, stream ids continuing through a `StreamIdPlan`, `open_connection` for
//! every accepted TCP connection and `close` when it ends. (The page's source role runs against
//! the same model in the app's `driver::tunnel` tests.)

mod harness;

use std::time::Duration;

use burrow_proto::endpoint::{Config, ConnId, Endpoint, Event, Format, Output, Role};
use burrow_proto::{MAX_ID, Message, MessageType, StreamIdPlan};
use harness::device_client::{DeviceClient, MAX_DATA, PING_INTERVAL, SSH_BANNER, WireFormat};
use harness::service::Service;
use harness::wire;

/// One tunnel: the agent-like source ⇄ the service's rules ⇄ the Device Client.
struct DeviceTunnel {
    service: Service,
    device: DeviceClient,
    source: Endpoint,
    plan: StreamIdPlan,
    /// Bytes delivered per source connection, in order of opening.
    delivered: Vec<(ConnId, Vec<u8>)>,
    closed: Vec<ConnId>,
    now: Duration,
}

impl DeviceTunnel {
    fn new(seed: u32) -> Self {
        let plan = StreamIdPlan::new(seed);
        let mut tunnel = Self {
            service: Service::new(&["SSH"]),
            device: DeviceClient::new(Duration::ZERO),
            source: Endpoint::new(Config::new(Role::Source, Format::V1), Duration::ZERO),
            plan,
            delivered: Vec::new(),
            closed: Vec::new(),
            now: Duration::ZERO,
        };
        tunnel.source_session(Format::V1);
        tunnel
    }

    /// The source (re)connects: a new endpoint whose ids continue the plan's.
    fn source_session(&mut self, format: Format) {
        if self.now > Duration::ZERO || !self.delivered.is_empty() {
            self.plan.advance(self.source.next_stream_id(), 0x9e37_79b9);
        }
        let mut config = Config::new(Role::Source, format);
        config.first_stream_id = self.plan.first_stream_id();
        config.ping_interval = Some(Duration::from_secs(20));
        self.source = Endpoint::new(config, self.now);
        let resets = self.service.replace(Role::Source);
        if !resets.is_empty() {
            self.device.handle_bytes(&resets);
        }
        let ids = self.service.service_ids();
        self.source.handle_bytes(&ids).expect("SERVICE_IDS");
        self.drive();
    }

    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.source.poll_output() {
                moved = true;
                match out {
                    Output::Transmit(bytes) => {
                        let relayed = self.service.accept(Role::Source, &bytes);
                        let was_online = !self.device.offline;
                        self.device.handle_bytes(&relayed);
                        if was_online && self.device.offline {
                            // It dropped its WebSocket: the service resets the source's streams.
                            let resets = self.service.detach(Role::Destination);
                            if !resets.is_empty() {
                                self.source.handle_bytes(&resets).expect("resets");
                            }
                        }
                    }
                    Output::Event(Event::Data { conn, data }) => {
                        if let Some((_, got)) =
                            self.delivered.iter_mut().rev().find(|(c, _)| *c == conn)
                        {
                            got.extend(data);
                        }
                    }
                    Output::Event(Event::ConnectionClosed { conn, .. }) => self.closed.push(conn),
                    Output::Event(_) | Output::Ping => {}
                }
            }
            while let Some(bytes) = self.device.poll_transmit() {
                moved = true;
                let relayed = self.service.accept(Role::Destination, &bytes);
                self.source
                    .handle_bytes(&relayed)
                    .expect("valid device frames");
            }
            if !moved {
                break;
            }
        }
    }

    /// A TCP client connects to the source's listener.
    fn connect(&mut self) -> ConnId {
        let conn = self.source.open_connection(None).expect("open");
        self.delivered.push((conn.clone(), Vec::new()));
        self.drive();
        conn
    }

    fn got(&self, conn: &ConnId) -> &[u8] {
        self.delivered
            .iter()
            .rev()
            .find(|(c, _)| c == conn)
            .map_or(&[][..], |(_, got)| got.as_slice())
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.source.handle_timeout(self.now);
        self.device.handle_timeout(self.now);
        self.drive();
    }
}

#[test]
fn a_v1_source_reaches_a_device_client_for_many_connections_and_sessions() {
    let mut tunnel = DeviceTunnel::new(0xdead_beef);
    let mut stream_ids = Vec::new();
    for session in 0..4 {
        if session > 0 {
            tunnel.source_session(Format::V1);
        }
        // Several TCP connections one after another in each WebSocket session.
        for i in 0..3 {
            let conn = tunnel.connect();
            assert_eq!(
                tunnel.got(&conn),
                SSH_BANNER,
                "session {session}, connection {i}"
            );
            let hello = format!("SSH-2.0-client {session}.{i}\r\n");
            tunnel.source.send(&conn, hello.as_bytes()).expect("open");
            tunnel.drive();
            assert_eq!(
                tunnel.got(&conn),
                [SSH_BANNER, hello.as_bytes()].concat(),
                "session {session}, connection {i}: the echo"
            );
            stream_ids.push(conn.stream_id);
            tunnel.source.close(&conn).expect("open");
            tunnel.drive();
            assert_eq!(tunnel.device.active_stream(), None, "the reset closed it");
        }
        tunnel.advance(PING_INTERVAL);
    }
    assert_eq!(tunnel.device.connections, 12);
    assert_eq!(tunnel.device.refused_sends, 0);
    assert!(!tunnel.device.offline);
    assert_eq!(tunnel.device.session_format(), Some(WireFormat::V1));
    assert!(tunnel.device.pings >= 4, "it pings every 20 s");
    // Every id fits the device's encoder and none repeats across sessions.
    assert!(stream_ids.iter().all(|id| (1..=MAX_ID).contains(id)));
    let mut sorted = stream_ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), stream_ids.len(), "{stream_ids:?}");
}

#[test]
fn bulk_output_from_the_device_arrives_whole_in_32_kib_messages() {
    let mut tunnel = DeviceTunnel::new(7);
    let conn = tunnel.connect();
    let bulk: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8).collect();
    tunnel.device.sshd_writes(&bulk);
    tunnel.drive();
    assert_eq!(tunnel.got(&conn), [SSH_BANNER, &bulk].concat());
    assert!(tunnel.device.data_lengths.iter().all(|&n| n <= MAX_DATA));
    // The SSH server closing is a STREAM_RESET the source sees.
    tunnel.device.sshd_closes();
    tunnel.drive();
    assert_eq!(tunnel.closed, vec![conn]);
}

#[test]
fn a_v3_source_gets_nothing_and_a_later_format_change_takes_the_device_offline() {
    let mut tunnel = DeviceTunnel::new(11);
    tunnel.source_session(Format::V3);
    let conn = tunnel.connect();
    // The V3 start fixed the device's session to V3; its V1 replies are refused by its library.
    assert_eq!(tunnel.device.session_format(), Some(WireFormat::V3));
    assert!(tunnel.got(&conn).is_empty());
    assert!(tunnel.device.refused_sends > 0);
    // Retrying in V1 on the same device session makes it drop and redial (refused by AWS).
    tunnel.source_session(Format::V1);
    let retry = tunnel.connect();
    assert!(tunnel.device.offline);
    assert!(tunnel.got(&retry).is_empty());
    assert_eq!(
        tunnel.closed.last(),
        Some(&retry),
        "the service reset the stream"
    );
}

#[test]
fn the_device_cannot_answer_on_a_stream_id_over_2_pow_28() {
    // What the page's old random ids (up to 2^31−1) did to 7 sessions out of 8.
    let mut device = DeviceClient::new(Duration::ZERO);
    let over = MAX_ID + 1;
    device.handle_bytes(&wire(&[Message {
        stream_id: over,
        ..Message::of(MessageType::StreamStart)
    }]));
    assert_eq!(device.active_stream(), Some(over));
    assert!(device.poll_transmit().is_none(), "its banner never leaves");
    assert!(device.refused_sends > 0);
}
