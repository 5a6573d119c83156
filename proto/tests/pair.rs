//! Scenario tests on the in-memory tunnel (`harness/`): source endpoint ⇄ simulated service ⇄
//! destination endpoint, simulated time. Each test names the protocol rule it checks (see
//! `docs/protocol.md` and AWS's V2/V3 WebSocket protocol guides).
//!
//! Rules of the protocol summary that concern an endpoint, and where they are checked:
//! - frames are a byte stream across WebSocket messages:
//!   `data_survives_every_regrouping_by_the_service`, `truncated_frames_wait_for_more_bytes` (and
//!   `codec_props.rs`);
//! - WebSocket messages ≤ 131076 bytes, payload ≤ 63 KiB:
//!   `transmits_are_batched_up_to_the_websocket_limit`, `full_v3_session`,
//!   `hostile_input_fails_the_endpoint_with_a_typed_error`;
//! - keep-alive pings: `keep_alive_deadlines`;
//! - type non-zero, stream id non-zero on stream messages, ≤ 3 unique service ids:
//!   `hostile_input_…`;
//! - no unknown fields, no SERVICE_IDS / SESSION_RESET from clients, no service id added to a
//!   stream started without one, no DATA for a service never started, only the tunnel's service
//!   ids: checked by the harness's service on every frame of every test;
//! - SERVICE_IDS after the handshake: `service_ids_are_announced_to_both_sides`,
//!   `service_ids_may_change_and_restrict_later_streams`;
//! - STREAM_START (fresh id, service id, connection id 1, data right after, replacement, error at a
//!   source): `full_v3_session`, `stream_ids_count_up_skip_zero_and_wrap`,
//!   `a_reconnecting_source_replaces_the_destinations_stream`, `hostile_input_…`;
//! - stale DATA / resets dropped: `stale_and_unknown_ids_are_dropped_silently`;
//! - STREAM_RESET (also from the service): `stream_reset_from_the_service_closes_the_stream`,
//!   `destination_answers_an_unknown_service_with_stream_reset`;
//! - CONNECTION_START / CONNECTION_RESET, id 0 means 1, V2 interop with one connection:
//!   `full_v3_session`, `connection_id_zero_or_absent_means_one`,
//!   `a_v2_destination_refuses_a_second_connection`,
//!   `destination_rejects_a_duplicate_connection_start`;
//! - formats V1/V2/V3 and their pairings:
//!   `every_format_pairing_the_guides_allow_carries_data_both_ways`,
//!   `v1_messages_without_service_id_map_to_the_single_service`,
//!   `destination_refuses_an_empty_service_id_when_it_has_several`;
//! - ignorable unknown types: `ignorable_unknown_types_are_skipped`;
//! - SESSION_RESET: `full_v3_session`, `session_reset_without_streams_is_harmless`.

mod harness;

use std::time::Duration;

use burrow_proto::codec::{FrameError, MAX_PAYLOAD_LEN, MAX_WS_MESSAGE_LEN};
use burrow_proto::endpoint::{
    CloseCause, ConnId, Endpoint, Event, Format, LocalError, Output, PeerError, Role,
};
use burrow_proto::{MAX_ID, Message, MessageType};
use harness::{Dir, Pair, Regroup, config, data, msg, pattern, wire};

fn conn(service_id: &str, stream_id: i32, connection_id: u32) -> ConnId {
    ConnId {
        service_id: service_id.to_owned(),
        stream_id,
        connection_id,
    }
}

fn closed(conn: &ConnId, cause: CloseCause) -> Event {
    Event::ConnectionClosed {
        conn: conn.clone(),
        cause,
    }
}

fn kinds(frames: &[Message]) -> Vec<MessageType> {
    frames.iter().filter_map(Message::kind).collect()
}

/// Every control event (everything but DATA) of a side, taken.
fn control_events(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .filter(|e| !matches!(e, Event::Data { .. }))
        .collect()
}

#[test]
fn service_ids_are_announced_to_both_sides() {
    let mut pair = Pair::v3_ssh();
    pair.drive();
    let ids = Event::ServiceIds(vec!["SSH".to_owned()]);
    assert_eq!(pair.src_side.take_events(), vec![ids.clone()]);
    assert_eq!(pair.dst_side.take_events(), vec![ids]);
    assert_eq!(pair.src.service_ids(), ["SSH".to_owned()]);
    assert_eq!(pair.dst.service_ids(), ["SSH".to_owned()]);
}

#[test]
fn full_v3_session() {
    let mut pair = Pair::v3_ssh();
    pair.src_side.take_events();
    pair.dst_side.take_events();
    pair.dst_side.received_frames.clear();

    // STREAM_START with a fresh stream id, the service id and connection id 1; data right after.
    let c1 = pair.src.open_stream(None).expect("single service");
    assert_eq!(c1, conn("SSH", 41, 1));
    let up = pattern(200_000, 1);
    pair.src.send(&c1, &up).expect("open");
    pair.drive();
    let start = &pair.dst_side.received_frames[0];
    assert_eq!(
        (
            start.kind(),
            start.stream_id,
            start.service_id.as_str(),
            start.connection_id
        ),
        (Some(MessageType::StreamStart), 41, "SSH", 1)
    );
    // DATA is cut into chunks of at most 63 KiB, each with stream, service and connection id.
    let chunks: Vec<&Message> = pair.dst_side.received_frames[1..].iter().collect();
    assert_eq!(chunks.len(), 200_000usize.div_ceil(MAX_PAYLOAD_LEN));
    for chunk in &chunks {
        assert_eq!(chunk.kind(), Some(MessageType::Data));
        assert!(chunk.payload.len() <= MAX_PAYLOAD_LEN);
        assert_eq!(
            (
                chunk.stream_id,
                chunk.service_id.as_str(),
                chunk.connection_id
            ),
            (41, "SSH", 1)
        );
    }
    assert_eq!(pair.dst_side.data_on(&c1), up);
    assert_eq!(
        pair.dst_side.take_events()[0],
        Event::ConnectionRequested(c1.clone())
    );
    let down = pattern(150_000, 2);
    pair.dst.send(&c1, &down).expect("open");
    pair.drive();
    assert_eq!(pair.src_side.data_on(&c1), down);
    pair.src_side.take_events();

    // A second connection in the same stream (CONNECTION_START); data stays apart.
    let c2 = pair.src.open_connection(None).expect("V3");
    assert_eq!(c2, conn("SSH", 41, 2));
    pair.src.send(&c2, b"two").expect("open");
    pair.src.send(&c1, b"one").expect("open");
    pair.drive();
    let ev = pair.dst_side.take_events();
    assert_eq!(
        ev,
        vec![
            Event::ConnectionRequested(c2.clone()),
            Event::Data {
                conn: c2.clone(),
                data: b"two".to_vec()
            },
            Event::Data {
                conn: c1.clone(),
                data: b"one".to_vec()
            },
        ]
    );

    // Closing one connection sends CONNECTION_RESET; the stream and the other connection stay.
    pair.src.close(&c2).expect("open");
    pair.drive();
    assert_eq!(
        pair.dst_side.take_events(),
        vec![closed(&c2, CloseCause::ConnectionReset)]
    );
    assert!(pair.src.is_open(&c1) && pair.dst.is_open(&c1));
    pair.dst.close(&c1).expect("open");
    pair.drive();
    assert_eq!(
        pair.src_side.take_events(),
        vec![closed(&c1, CloseCause::ConnectionReset)]
    );

    // The stream stays: a new connection goes into it with CONNECTION_START.
    let c3 = pair.src.open_connection(Some("SSH")).expect("V3");
    assert_eq!(c3, conn("SSH", 41, 3));
    pair.drive();
    assert_eq!(
        pair.dst_side.received_frames.last().and_then(Message::kind),
        Some(MessageType::ConnectionStart)
    );
    assert_eq!(
        pair.dst_side.take_events(),
        vec![Event::ConnectionRequested(c3.clone())]
    );

    // reset_stream ends the stream and every connection in it.
    pair.src.reset_stream("SSH").expect("known service");
    pair.drive();
    let sent = kinds(&pair.dst_side.received_frames);
    assert_eq!(
        &sent[sent.len() - 3..],
        [
            MessageType::ConnectionReset,
            MessageType::ConnectionStart,
            MessageType::StreamReset
        ]
    );
    assert!(!pair.src.is_open(&c3));
    assert_eq!(
        pair.dst_side.take_events(),
        vec![closed(&c3, CloseCause::StreamReset)]
    );

    // With no live stream, open_connection starts one (STREAM_START, next stream id).
    let c4 = pair.src.open_connection(None).expect("V3");
    assert_eq!(c4, conn("SSH", 42, 1));
    pair.drive();
    assert_eq!(
        pair.dst_side.take_events(),
        vec![Event::ConnectionRequested(c4.clone())]
    );

    // A new stream for the same service replaces the old one on both sides.
    let c5 = pair.src.open_stream(Some("SSH")).expect("known");
    assert_eq!(c5, conn("SSH", 43, 1));
    pair.drive();
    assert_eq!(
        pair.src_side.take_events(),
        vec![closed(&c4, CloseCause::StreamReplaced)]
    );
    assert_eq!(
        pair.dst_side.take_events(),
        vec![
            closed(&c4, CloseCause::StreamReplaced),
            Event::ConnectionRequested(c5.clone())
        ]
    );
    let c6 = pair.src.open_connection(None).expect("V3");
    pair.drive();
    pair.dst_side.take_events();

    // SESSION_RESET from the service closes everything on both sides.
    let reset = [Message::of(MessageType::SessionReset)];
    pair.service_sends(Dir::ToSrc, &reset)
        .expect("allowed from the service");
    pair.service_sends(Dir::ToDst, &reset)
        .expect("allowed from the service");
    let expected = vec![
        closed(&c5, CloseCause::SessionReset),
        closed(&c6, CloseCause::SessionReset),
    ];
    assert_eq!(pair.src_side.take_events(), expected);
    assert_eq!(pair.dst_side.take_events(), expected);
    assert!(pair.src.connections().is_empty() && pair.dst.connections().is_empty());
    assert_eq!(
        pair.src.send(&c5, b"late"),
        Err(LocalError::NotOpen(c5.clone()))
    );
}

#[test]
fn data_survives_every_regrouping_by_the_service() {
    for regroup in [
        Regroup::AsSent,
        Regroup::Chunks(1),
        Regroup::Chunks(3),
        Regroup::Chunks(1000),
        Regroup::Chunks(65_538),
        Regroup::Coalesce,
    ] {
        let mut pair = Pair::v3_ssh();
        pair.regroup = regroup;
        let c = pair.src.open_stream(None).expect("single service");
        let c2 = pair.src.open_connection(None).expect("V3");
        let a = pattern(
            if matches!(regroup, Regroup::Chunks(1)) {
                70_000
            } else {
                300_000
            },
            3,
        );
        pair.src.send(&c, &a).expect("open");
        pair.src.send(&c2, b"second").expect("open");
        for i in 0..50u8 {
            pair.src.send(&c, &[i]).expect("open"); // keystrokes
        }
        pair.drive();
        let mut expected = a.clone();
        expected.extend(0..50u8);
        assert_eq!(pair.dst_side.data_on(&c), expected, "{regroup:?}");
        assert_eq!(pair.dst_side.data_on(&c2), b"second", "{regroup:?}");
        pair.dst.send(&c2, &a).expect("open");
        pair.drive();
        assert_eq!(pair.src_side.data_on(&c2), a, "{regroup:?}");
    }
}

#[test]
fn transmits_are_batched_up_to_the_websocket_limit() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("single service");
    pair.src.send(&c, &pattern(1_000_000, 4)).expect("open");
    let pending = pair.src.pending_bytes();
    let mut total = 0;
    let mut sizes = Vec::new();
    while let Some(out) = pair.src.poll_output() {
        if let Output::Transmit(bytes) = out {
            assert!(bytes.len() <= MAX_WS_MESSAGE_LEN);
            total += bytes.len();
            sizes.push(bytes.len());
        }
    }
    assert_eq!(total, pending);
    assert_eq!(pair.src.pending_bytes(), 0);
    // Two full DATA frames fit in one WebSocket message, so a megabyte needs 8 messages.
    assert_eq!(sizes.len(), 1_000_000usize.div_ceil(2 * MAX_PAYLOAD_LEN));
    // Small control frames and keystrokes share a message.
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("single service");
    for i in 0..10u8 {
        pair.src.send(&c, &[i]).expect("open");
    }
    pair.drive();
    assert_eq!(pair.src_side.transmits.len(), 1);
}

/// One row of the format table: who writes what, and whether a second connection works.
struct Pairing {
    src: Format,
    dst: Format,
    /// The tunnel's services (SERVICE_IDS); empty means none announced.
    tunnel: &'static [&'static str],
    /// The destination's configured services.
    dst_services: &'static [&'static str],
    /// What the STREAM_START carries: (service id, connection id).
    start: (&'static str, u32),
    /// What the destination's DATA carries: (service id, connection id).
    reply: (&'static str, u32),
    /// The service id both sides report to the application.
    app_service: &'static str,
}

const PAIRINGS: &[Pairing] = &[
    // V1 ⇄ V1 in a single-service tunnel without service ids.
    Pairing {
        src: Format::V1,
        dst: Format::V1,
        tunnel: &[],
        dst_services: &[],
        start: ("", 0),
        reply: ("", 0),
        app_service: "",
    },
    // V1 ⇄ V1 in a tunnel whose one service is named: V1 writes no id; both map to "SSH".
    Pairing {
        src: Format::V1,
        dst: Format::V1,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("", 0),
        reply: ("", 0),
        app_service: "SSH",
    },
    // A V3-capable source configured for a V1 device (the Device Client / Greengrass case).
    Pairing {
        src: Format::V1,
        dst: Format::V1,
        tunnel: &["SSH"],
        dst_services: &[],
        start: ("", 0),
        reply: ("", 0),
        app_service: "SSH",
    },
    Pairing {
        src: Format::V2,
        dst: Format::V2,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("SSH", 0),
        reply: ("SSH", 0),
        app_service: "SSH",
    },
    Pairing {
        src: Format::V3,
        dst: Format::V3,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("SSH", 1),
        reply: ("SSH", 1),
        app_service: "SSH",
    },
    // V2 source, V3 destination: the destination answers without connection ids.
    Pairing {
        src: Format::V2,
        dst: Format::V3,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("SSH", 0),
        reply: ("SSH", 0),
        app_service: "SSH",
    },
    // V3 source, V2 destination: one connection per stream.
    Pairing {
        src: Format::V3,
        dst: Format::V2,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("SSH", 1),
        reply: ("SSH", 0),
        app_service: "SSH",
    },
    // V1 source (no service id) to a V3 destination with one service: mapped to it, and
    // answered without a service id (the service forbids adding one to such a stream).
    Pairing {
        src: Format::V1,
        dst: Format::V3,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("", 0),
        reply: ("", 0),
        app_service: "SSH",
    },
    // V3 source to a V1 destination: it reads the ids and writes none.
    Pairing {
        src: Format::V3,
        dst: Format::V1,
        tunnel: &["SSH"],
        dst_services: &["SSH"],
        start: ("SSH", 1),
        reply: ("", 0),
        app_service: "SSH",
    },
    // Three services, V3 both ways, a non-first service.
    Pairing {
        src: Format::V3,
        dst: Format::V3,
        tunnel: &["SSH", "RDP", "HTTP"],
        dst_services: &["SSH", "RDP", "HTTP"],
        start: ("RDP", 1),
        reply: ("RDP", 1),
        app_service: "RDP",
    },
];

#[test]
fn every_format_pairing_the_guides_allow_carries_data_both_ways() {
    for (row, p) in PAIRINGS.iter().enumerate() {
        let mut pair = Pair::new(
            config(Role::Source, p.src, &[]),
            config(Role::Destination, p.dst, p.dst_services),
            p.tunnel,
        );
        let service = (p.tunnel.len() > 1).then_some(p.app_service);
        let c = pair.src.open_stream(service).expect("open");
        assert_eq!(c.service_id, p.app_service, "row {row}");
        pair.src.send(&c, b"ping").expect("open");
        pair.drive();
        let start = pair
            .dst_side
            .received_frames
            .iter()
            .find(|m| m.kind() == Some(MessageType::StreamStart))
            .expect("start relayed");
        assert_eq!(
            (start.service_id.as_str(), start.connection_id),
            p.start,
            "row {row}: STREAM_START"
        );
        let requested = conn(p.app_service, 41, 1);
        assert_eq!(
            control_events(pair.dst_side.take_events()).last(),
            Some(&Event::ConnectionRequested(requested.clone())),
            "row {row}"
        );
        pair.dst.send(&requested, b"pong").expect("open");
        pair.drive();
        let reply = pair
            .src_side
            .received_frames
            .iter()
            .rev()
            .find(|m| m.kind() == Some(MessageType::Data))
            .expect("reply relayed");
        assert_eq!(
            (reply.service_id.as_str(), reply.connection_id),
            p.reply,
            "row {row}: DATA"
        );
        assert_eq!(pair.src_side.data_on(&c), b"pong", "row {row}");

        // Close from the source: CONNECTION_RESET when the stream uses connection ids, else
        // STREAM_RESET; either way the destination reports the connection closed.
        pair.src.close(&c).expect("open");
        pair.drive();
        let cause = if p.src == Format::V3 {
            CloseCause::ConnectionReset
        } else {
            CloseCause::StreamReset
        };
        assert_eq!(
            pair.dst_side.take_events(),
            vec![closed(&requested, cause)],
            "row {row}"
        );

        // A new stream, closed (refused) by the destination this time.
        let c = pair.src.open_stream(service).expect("open");
        pair.drive();
        let requested = conn(p.app_service, 42, 1);
        assert_eq!(
            pair.dst_side.take_events(),
            vec![Event::ConnectionRequested(requested.clone())],
            "row {row}"
        );
        pair.src_side.take_events();
        pair.dst.close(&requested).expect("open");
        pair.drive();
        let uses_ids = p.src == Format::V3 && p.dst == Format::V3;
        let cause = if uses_ids {
            CloseCause::ConnectionReset
        } else {
            CloseCause::StreamReset
        };
        assert_eq!(
            pair.src_side.take_events(),
            vec![closed(&c, cause)],
            "row {row}"
        );
    }
}

#[test]
fn a_v2_destination_refuses_a_second_connection() {
    let mut pair = Pair::new(
        config(Role::Source, Format::V3, &[]),
        config(Role::Destination, Format::V2, &["SSH"]),
        &["SSH"],
    );
    let c1 = pair.src.open_stream(None).expect("open");
    let c2 = pair.src.open_connection(None).expect("V3");
    pair.drive();
    assert_eq!(
        pair.src_side.take_events().last(),
        Some(&closed(&c2, CloseCause::ConnectionReset))
    );
    assert_eq!(
        control_events(pair.dst_side.take_events()).last(),
        Some(&Event::ConnectionRequested(c1.clone()))
    );
    // The first connection is untouched.
    pair.src.send(&c1, b"still here").expect("open");
    pair.drive();
    assert_eq!(pair.dst_side.data_on(&c1), b"still here");
}

#[test]
fn simultaneous_connections_need_v3() {
    for format in [Format::V1, Format::V2] {
        let mut pair = Pair::new(
            config(Role::Source, format, &[]),
            config(Role::Destination, format, &["SSH"]),
            &["SSH"],
        );
        let first = pair
            .src
            .open_connection(None)
            .expect("the first opens a stream");
        assert_eq!(pair.src.open_connection(None), Err(LocalError::NeedsV3));
        assert!(pair.src.is_open(&first), "{format:?}");
    }
}

#[test]
fn destination_answers_an_unknown_service_with_stream_reset() {
    let mut pair = Pair::new(
        config(Role::Source, Format::V3, &[]),
        config(Role::Destination, Format::V3, &["SSH"]),
        &["SSH", "RDP"],
    );
    let c = pair.src.open_stream(Some("RDP")).expect("a tunnel service");
    pair.drive();
    assert_eq!(
        control_events(pair.dst_side.take_events()),
        vec![Event::ServiceIds(vec!["SSH".into(), "RDP".into()])]
    );
    let reset = pair.src_side.received_frames.last().expect("reset relayed");
    assert_eq!(
        (reset.kind(), reset.stream_id, reset.service_id.as_str()),
        (Some(MessageType::StreamReset), 41, "RDP")
    );
    assert_eq!(
        pair.src_side.take_events().last(),
        Some(&closed(&c, CloseCause::StreamReset))
    );
}

#[test]
fn destination_refuses_an_empty_service_id_when_it_has_several() {
    let mut pair = Pair::new(
        config(Role::Source, Format::V1, &[]),
        config(Role::Destination, Format::V3, &["SSH", "RDP"]),
        &[],
    );
    let c = pair.src.open_stream(None).expect("V1 names no service");
    pair.drive();
    assert!(pair.dst_side.take_events().is_empty());
    assert_eq!(
        pair.src_side.take_events(),
        vec![closed(&c, CloseCause::StreamReset)]
    );
}

#[test]
fn a_reconnecting_source_replaces_the_destinations_stream() {
    let mut pair = Pair::v3_ssh();
    let old = pair.src.open_stream(None).expect("open");
    pair.drive();
    // A new source (after a WebSocket drop) starts with another stream id.
    let mut cfg = config(Role::Source, Format::V3, &[]);
    cfg.first_stream_id = 9000;
    pair.src = Endpoint::new(cfg, pair.now);
    pair.service_sends(
        Dir::ToSrc,
        &[Message {
            available_service_ids: vec!["SSH".into()],
            ..Message::of(MessageType::ServiceIds)
        }],
    )
    .expect("ids");
    pair.dst_side.take_events();
    let new = pair.src.open_stream(None).expect("open");
    assert_eq!(new, conn("SSH", 9000, 1));
    pair.drive();
    assert_eq!(
        pair.dst_side.take_events(),
        vec![
            closed(&old, CloseCause::StreamReplaced),
            Event::ConnectionRequested(new.clone())
        ]
    );
    // Late data of the old stream (still in flight) is dropped by the new source.
    pair.service_sends(Dir::ToSrc, &[data(41, "SSH", 1, b"stale")])
        .expect("dropped silently");
    assert!(pair.src_side.data_on(&old).is_empty() && pair.src_side.data_on(&new).is_empty());
}

#[test]
fn stale_and_unknown_ids_are_dropped_silently() {
    let mut pair = Pair::v3_ssh();
    let first = pair.src.open_stream(None).expect("open");
    let live = pair.src.open_stream(None).expect("open"); // replaces stream 41 by 42
    pair.drive();
    pair.src_side.take_events();
    pair.dst_side.take_events();
    let stale = [
        data(41, "SSH", 1, b"old stream"),
        data(42, "SSH", 7, b"unknown connection"),
        data(42, "RDP", 1, b"other service"),
        msg(MessageType::StreamReset, 41, "SSH", 0),
        msg(MessageType::ConnectionReset, 41, "SSH", 1),
        msg(MessageType::ConnectionReset, 42, "SSH", 5),
    ];
    pair.service_sends(Dir::ToSrc, &stale)
        .expect("stale messages are no error");
    pair.service_sends(Dir::ToDst, &stale)
        .expect("stale messages are no error");
    assert!(pair.src_side.take_events().is_empty());
    assert!(pair.dst_side.take_events().is_empty());
    assert!(pair.src.is_open(&live) && pair.dst.is_open(&live));
    assert!(!pair.src.is_open(&first));
    // Data on the live stream still flows.
    pair.service_sends(Dir::ToSrc, &[data(42, "SSH", 1, b"fresh")])
        .expect("ok");
    assert_eq!(pair.src_side.data_on(&live), b"fresh");
}

#[test]
fn connection_id_zero_or_absent_means_one() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("open");
    pair.drive();
    pair.service_sends(Dir::ToSrc, &[data(41, "SSH", 0, b"v2 peer")])
        .expect("ok");
    assert_eq!(pair.src_side.data_on(&c), b"v2 peer");
    pair.service_sends(
        Dir::ToSrc,
        &[msg(MessageType::ConnectionReset, 41, "SSH", 0)],
    )
    .expect("ok");
    assert_eq!(
        pair.src_side.events.last(),
        Some(&closed(&c, CloseCause::ConnectionReset))
    );
}

#[test]
fn v1_messages_without_service_id_map_to_the_single_service() {
    // A V3 destination configured with one service accepts a V1 start and V1 data.
    let mut pair = Pair::v3_ssh();
    pair.dst_side.take_events();
    pair.service_sends(
        Dir::ToDst,
        &[
            msg(MessageType::StreamStart, 5, "", 0),
            data(5, "", 0, b"v1"),
        ],
    )
    .expect("ok");
    let c = conn("SSH", 5, 1);
    assert_eq!(
        pair.dst_side.take_events(),
        vec![
            Event::ConnectionRequested(c.clone()),
            Event::Data {
                conn: c.clone(),
                data: b"v1".to_vec()
            }
        ]
    );
    // A source that opened before SERVICE_IDS keeps its stream under "".
    let mut pair = Pair::new(
        config(Role::Source, Format::V1, &[]),
        config(Role::Destination, Format::V1, &[]),
        &[],
    );
    let early = pair.src.open_stream(None).expect("no services known yet");
    assert_eq!(early.service_id, "");
    pair.drive();
    pair.service_sends(
        Dir::ToSrc,
        &[Message {
            available_service_ids: vec!["SSH".into()],
            ..Message::of(MessageType::ServiceIds)
        }],
    )
    .expect("ids");
    pair.service_sends(Dir::ToSrc, &[data(41, "", 0, b"reply")])
        .expect("ok");
    assert_eq!(pair.src_side.data_on(&early), b"reply");
}

#[test]
fn v1_source_with_several_services_matches_replies_by_stream_id() {
    let mut pair = Pair::new(
        config(Role::Source, Format::V1, &[]),
        config(Role::Destination, Format::V1, &[]),
        &["SSH", "RDP"],
    );
    let a = pair.src.open_stream(Some("SSH")).expect("known");
    let b = pair.src.open_stream(Some("RDP")).expect("known");
    pair.drive();
    pair.service_sends(
        Dir::ToSrc,
        &[
            data(a.stream_id, "", 0, b"to a"),
            data(b.stream_id, "", 0, b"to b"),
        ],
    )
    .expect("ok");
    assert_eq!(pair.src_side.data_on(&a), b"to a");
    assert_eq!(pair.src_side.data_on(&b), b"to b");
}

#[test]
fn destination_rejects_a_duplicate_connection_start() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("open");
    pair.drive();
    pair.dst_side.take_events();
    pair.service_sends(
        Dir::ToDst,
        &[msg(MessageType::ConnectionStart, 41, "SSH", 1)],
    )
    .expect("not fatal");
    assert_eq!(
        pair.dst_side.take_events(),
        vec![closed(&c, CloseCause::ConnectionReset)]
    );
    assert_eq!(
        pair.src_side.events.last(),
        Some(&closed(&c, CloseCause::ConnectionReset))
    );
    // A CONNECTION_START for a stream that is not live is refused too.
    pair.service_sends(
        Dir::ToDst,
        &[msg(MessageType::ConnectionStart, 77, "SSH", 2)],
    )
    .expect("not fatal");
    let refusal = pair.src_side.received_frames.last().expect("refusal");
    assert_eq!(
        (refusal.kind(), refusal.stream_id, refusal.connection_id),
        (Some(MessageType::ConnectionReset), 77, 2)
    );
}

#[test]
fn ignorable_unknown_types_are_skipped() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("open");
    pair.drive();
    let future = Message {
        r#type: 42,
        ignorable: true,
        stream_id: 41,
        payload: b"?".to_vec(),
        ..Message::default()
    };
    pair.service_sends(Dir::ToSrc, &[future.clone(), data(41, "SSH", 1, b"after")])
        .expect("skipped");
    assert_eq!(pair.src_side.data_on(&c), b"after");
    pair.service_sends(Dir::ToDst, &[future]).expect("skipped");
}

/// A hostile or broken peer: each input must fail the receiving endpoint with this error.
fn hostile_cases() -> Vec<(&'static str, Role, Vec<u8>, PeerError)> {
    let frame = |m: Message| {
        let body = prost::Message::encode_to_vec(&m);
        let mut out = u16::try_from(body.len())
            .expect("small")
            .to_be_bytes()
            .to_vec();
        out.extend(body);
        out
    };
    vec![
        (
            "stream start to a source",
            Role::Source,
            wire(&[msg(MessageType::StreamStart, 3, "SSH", 1)]),
            PeerError::Unexpected {
                kind: MessageType::StreamStart,
                role: Role::Source,
            },
        ),
        (
            "connection start to a source",
            Role::Source,
            wire(&[msg(MessageType::ConnectionStart, 41, "SSH", 2)]),
            PeerError::Unexpected {
                kind: MessageType::ConnectionStart,
                role: Role::Source,
            },
        ),
        (
            "data with stream id 0",
            Role::Destination,
            frame(data(0, "SSH", 1, b"x")),
            PeerError::Frame(FrameError::StreamIdZero(MessageType::Data)),
        ),
        (
            "stream start with stream id 0",
            Role::Destination,
            frame(msg(MessageType::StreamStart, 0, "SSH", 1)),
            PeerError::Frame(FrameError::StreamIdZero(MessageType::StreamStart)),
        ),
        (
            "oversize payload",
            Role::Source,
            frame(data(41, "SSH", 1, &vec![0; MAX_PAYLOAD_LEN + 1])),
            PeerError::Frame(FrameError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1)),
        ),
        (
            "type missing",
            Role::Source,
            frame(Message::default()),
            PeerError::Frame(FrameError::TypeMissing),
        ),
        (
            "unknown type, not ignorable",
            Role::Destination,
            frame(Message {
                r#type: 42,
                ..Message::default()
            }),
            PeerError::Frame(FrameError::UnknownType(42)),
        ),
        (
            "four service ids",
            Role::Source,
            wire(&[Message {
                available_service_ids: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                ..Message::of(MessageType::ServiceIds)
            }]),
            PeerError::InvalidServiceIds("4 services, at most 3 allowed".into()),
        ),
        (
            "duplicate service ids",
            Role::Destination,
            wire(&[Message {
                available_service_ids: vec!["a".into(), "a".into()],
                ..Message::of(MessageType::ServiceIds)
            }]),
            PeerError::InvalidServiceIds("duplicate service id \"a\"".into()),
        ),
        (
            "empty service id",
            Role::Source,
            wire(&[Message {
                available_service_ids: vec!["".into()],
                ..Message::of(MessageType::ServiceIds)
            }]),
            PeerError::InvalidServiceIds("empty service id".into()),
        ),
        (
            "over-long service id",
            Role::Source,
            wire(&[Message {
                available_service_ids: vec!["s".repeat(129)],
                ..Message::of(MessageType::ServiceIds)
            }]),
            PeerError::InvalidServiceIds("service id longer than 128 bytes".into()),
        ),
        (
            "garbage",
            Role::Destination,
            vec![0, 3, 0xff, 0xff, 0xff],
            // The text comes from prost; only the variant is ours.
            PeerError::Frame(FrameError::Undecodable(String::new())),
        ),
    ]
}

#[test]
fn hostile_input_fails_the_endpoint_with_a_typed_error() {
    for (name, role, bytes, expected) in hostile_cases() {
        let mut pair = Pair::v3_ssh();
        let c = pair.src.open_stream(None).expect("open");
        pair.drive();
        let dir = match role {
            Role::Source => Dir::ToSrc,
            Role::Destination => Dir::ToDst,
        };
        // Good data in the same WebSocket message before the bad frame is still delivered.
        let mut message = wire(&[data(41, "SSH", 1, b"before")]);
        message.extend(&bytes);
        let result = pair.inject(dir, &message);
        let err = match &result {
            Err(PeerError::Frame(FrameError::Undecodable(text))) => {
                assert!(!text.is_empty(), "{name}: the error says what is wrong");
                PeerError::Frame(FrameError::Undecodable(String::new()))
            }
            Err(e) => e.clone(),
            Ok(()) => panic!("{name}: accepted"),
        };
        assert_eq!(err, expected, "{name}");
        let (ep, side) = match role {
            Role::Source => (&mut pair.src, &pair.src_side),
            Role::Destination => (&mut pair.dst, &pair.dst_side),
        };
        assert_eq!(side.data_on(&c), b"before", "{name}");
        // The endpoint stays failed: same error for any later input, commands refused, no timer.
        assert_eq!(
            ep.handle_bytes(&wire(&[data(41, "SSH", 1, b"after")])),
            result,
            "{name}"
        );
        assert_eq!(ep.failure(), result.as_ref().err(), "{name}");
        assert!(
            matches!(ep.send(&c, b"x"), Err(LocalError::Failed(_))),
            "{name}"
        );
        assert!(matches!(ep.close(&c), Err(LocalError::Failed(_))), "{name}");
        assert!(!ep.is_open(&c), "{name}");
        assert_eq!(ep.poll_timeout(), None, "{name}");
    }
}

#[test]
fn truncated_frames_wait_for_more_bytes() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("open");
    pair.drive();
    let bytes = wire(&[data(41, "SSH", 1, b"split across messages")]);
    for chunk in bytes.chunks(4) {
        pair.inject(Dir::ToSrc, chunk)
            .expect("partial frames are fine");
    }
    assert_eq!(pair.src_side.data_on(&c), b"split across messages");
}

#[test]
fn keep_alive_deadlines() {
    let mut src = config(Role::Source, Format::V3, &[]);
    src.ping_interval = Some(Duration::from_secs(20));
    let mut dst = config(Role::Destination, Format::V3, &["SSH"]);
    dst.ping_interval = Some(Duration::from_secs(30));
    let mut pair = Pair::new(src, dst, &["SSH"]);
    assert_eq!(pair.src.poll_timeout(), Some(Duration::from_secs(20)));
    assert_eq!(pair.dst.poll_timeout(), Some(Duration::from_secs(30)));
    pair.advance_to(Duration::from_secs(19));
    assert_eq!((pair.src_side.pings, pair.dst_side.pings), (0, 0));
    pair.advance_to(Duration::from_secs(20));
    assert_eq!((pair.src_side.pings, pair.dst_side.pings), (1, 0));
    assert_eq!(pair.src.poll_timeout(), Some(Duration::from_secs(40)));
    pair.advance_to(Duration::from_secs(120));
    // Source at 20, 40, 60, 80, 100, 120; destination at 30, 60, 90, 120.
    assert_eq!((pair.src_side.pings, pair.dst_side.pings), (6, 4));
    // A late driver gets one ping, and the next one an interval after the late call.
    let mut cfg = config(Role::Source, Format::V3, &[]);
    cfg.ping_interval = Some(Duration::from_secs(20));
    let mut ep = Endpoint::new(cfg, Duration::from_secs(100));
    assert_eq!(ep.poll_timeout(), Some(Duration::from_secs(120)));
    ep.handle_timeout(Duration::from_secs(185));
    assert_eq!(ep.poll_output(), Some(Output::Ping));
    assert_eq!(ep.poll_output(), None);
    assert_eq!(ep.poll_timeout(), Some(Duration::from_secs(205)));
    // Without an interval (or with zero) there is no deadline.
    for interval in [None, Some(Duration::ZERO)] {
        let mut cfg = config(Role::Destination, Format::V2, &[]);
        cfg.ping_interval = interval;
        let mut ep = Endpoint::new(cfg, Duration::ZERO);
        assert_eq!(ep.poll_timeout(), None);
        ep.handle_timeout(Duration::from_secs(1000));
        assert_eq!(ep.poll_output(), None);
    }
}

#[test]
fn local_misuse_gets_typed_errors() {
    let mut pair = Pair::new(
        config(Role::Source, Format::V3, &[]),
        config(Role::Destination, Format::V3, &["SSH", "RDP"]),
        &["SSH", "RDP"],
    );
    assert_eq!(
        pair.dst.open_stream(None),
        Err(LocalError::WrongRole(Role::Destination))
    );
    assert_eq!(
        pair.dst.open_connection(Some("SSH")),
        Err(LocalError::WrongRole(Role::Destination))
    );
    assert_eq!(
        pair.src.open_stream(None),
        Err(LocalError::ServiceRequired(vec![
            "SSH".into(),
            "RDP".into()
        ]))
    );
    assert_eq!(
        pair.src.open_stream(Some("FTP")),
        Err(LocalError::UnknownService("FTP".into()))
    );
    assert_eq!(
        pair.src.reset_stream("FTP"),
        Err(LocalError::UnknownService("FTP".into()))
    );
    assert_eq!(
        pair.src.reset_stream("RDP"),
        Ok(()),
        "nothing to reset is fine"
    );
    let c = pair.src.open_stream(Some("SSH")).expect("known");
    let never = conn("SSH", 41, 9);
    assert_eq!(
        pair.src.send(&never, b"x"),
        Err(LocalError::NotOpen(never.clone()))
    );
    pair.src.close(&c).expect("open");
    assert_eq!(pair.src.close(&c), Err(LocalError::NotOpen(c.clone())));
    assert_eq!(pair.src.send(&c, b"x"), Err(LocalError::NotOpen(c.clone())));
    // A configured service list restricts the source before SERVICE_IDS arrives.
    let mut ep = Endpoint::new(config(Role::Source, Format::V2, &["SSH"]), Duration::ZERO);
    assert_eq!(
        ep.open_stream(Some("RDP")),
        Err(LocalError::UnknownService("RDP".into()))
    );
    assert_eq!(
        ep.open_stream(None).map(|c| c.service_id),
        Ok("SSH".to_owned())
    );
    assert_eq!(
        ep.open_stream(Some(&"s".repeat(129))),
        Err(LocalError::UnknownService("s".repeat(129)))
    );
}

#[test]
fn stream_ids_count_up_skip_zero_and_wrap() {
    // Ids stay within 1..=2^28−1 (what AWS's device library encodes); a first id outside is
    // mapped into it.
    for (first, expected) in [
        (41, [41, 42, 43]),
        (0, [1, 2, 3]),
        (MAX_ID - 1, [MAX_ID - 1, MAX_ID, 1]),
        (MAX_ID + 1, [2, 3, 4]),
        (-2, [MAX_ID - 1, MAX_ID, 1]),
        (i32::MAX - 1, [7, 8, 9]),
    ] {
        let mut cfg = config(Role::Source, Format::V3, &["SSH"]);
        cfg.first_stream_id = first;
        let mut ep = Endpoint::new(cfg, Duration::ZERO);
        let ids: Vec<i32> = (0..3)
            .map(|_| ep.open_stream(None).expect("open").stream_id)
            .collect();
        assert_eq!(ids, expected, "first {first}");
    }
}

#[test]
fn empty_sends_write_nothing() {
    let mut pair = Pair::v3_ssh();
    let c = pair.src.open_stream(None).expect("open");
    pair.drive();
    let before = pair.src_side.transmits.len();
    pair.src.send(&c, b"").expect("open");
    pair.drive();
    assert_eq!(pair.src_side.transmits.len(), before);
}

#[test]
fn session_reset_without_streams_is_harmless() {
    let mut pair = Pair::v3_ssh();
    pair.src_side.take_events();
    pair.service_sends(Dir::ToSrc, &[Message::of(MessageType::SessionReset)])
        .expect("ok");
    assert!(pair.src_side.take_events().is_empty());
    let c = pair.src.open_stream(None).expect("still usable");
    assert!(pair.src.is_open(&c));
}

#[test]
fn service_ids_may_change_and_restrict_later_streams() {
    let mut pair = Pair::v3_ssh();
    pair.service_sends(
        Dir::ToSrc,
        &[Message {
            available_service_ids: vec!["RDP".into(), "SSH".into()],
            ..Message::of(MessageType::ServiceIds)
        }],
    )
    .expect("ok");
    assert_eq!(pair.src.service_ids(), ["RDP".to_owned(), "SSH".to_owned()]);
    assert_eq!(
        pair.src.open_stream(None),
        Err(LocalError::ServiceRequired(vec![
            "RDP".into(),
            "SSH".into()
        ]))
    );
}

#[test]
fn stream_reset_from_the_service_closes_the_stream() {
    // The service sends STREAM_RESET when the peer is replaced by a reconnecting one.
    let mut pair = Pair::v3_ssh();
    let c1 = pair.src.open_stream(None).expect("open");
    let c2 = pair.src.open_connection(None).expect("V3");
    pair.drive();
    pair.src_side.take_events();
    pair.service_sends(Dir::ToSrc, &[msg(MessageType::StreamReset, 41, "SSH", 0)])
        .expect("allowed");
    assert_eq!(
        pair.src_side.take_events(),
        vec![
            closed(&c1, CloseCause::StreamReset),
            closed(&c2, CloseCause::StreamReset)
        ]
    );
    // The service keeps no stream: the next open_connection starts a new one.
    assert_eq!(pair.src.open_connection(None), Ok(conn("SSH", 42, 1)));
}
