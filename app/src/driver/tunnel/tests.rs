//! Tests of [`TunnelCore`] against the protocol crate's destination endpoint and its models of
//! the service and of AWS's IoT Device Client: services chosen, bytes carried both ways, bursts
//! packed into messages, resets and the errors an operator sees.

use burrow_proto::MAX_ID;
use burrow_proto::codec::{FrameDecoder, MAX_WS_MESSAGE_LEN, encode_frame};
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
fn a_burst_of_small_writes_shares_one_message_in_order() {
    for format in [Format::V1, Format::V3] {
        let mut pair = Pair::new(format, None, &["SSH"]);
        pair.source.handle_message(&service_ids(&["SSH"]));
        pair.drive();
        let writes: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 80]).collect();
        pair.source.send_all(writes.iter().map(Vec::as_slice));
        let mut messages = Vec::new();
        while let Some(out) = pair.source.poll() {
            if let CoreOutput::Transmit(bytes) = out {
                messages.push(bytes);
            }
        }
        assert_eq!(
            messages.len(),
            1,
            "{format:?}: 64 writes of 80 bytes fit one message"
        );
        for message in &messages {
            pair.destination
                .handle_bytes(message)
                .expect("valid source bytes");
        }
        pair.drive();
        assert_eq!(pair.device_got, writes.concat(), "{format:?}");
    }
}

#[test]
fn a_burst_larger_than_one_message_is_split_at_the_limit() {
    let mut pair = Pair::new(Format::V3, None, &["SSH"]);
    pair.source.handle_message(&service_ids(&["SSH"]));
    pair.drive();
    let writes: Vec<Vec<u8>> = (0..40u32).map(|i| vec![i as u8; 10_000]).collect();
    pair.source.send_all(writes.iter().map(Vec::as_slice));
    let mut sizes = Vec::new();
    while let Some(out) = pair.source.poll() {
        if let CoreOutput::Transmit(bytes) = out {
            sizes.push(bytes.len());
            pair.destination
                .handle_bytes(&bytes)
                .expect("valid source bytes");
        }
    }
    assert!(
        sizes.len() >= 4,
        "400 kB needs at least four messages: {sizes:?}"
    );
    assert!(
        sizes.iter().all(|&len| len <= MAX_WS_MESSAGE_LEN),
        "{sizes:?}"
    );
    pair.drive();
    assert_eq!(pair.device_got, writes.concat());
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
