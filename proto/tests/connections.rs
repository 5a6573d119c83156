//! Connections within streams, on the in-memory tunnel (`harness/`), with the service's real
//! rules between the endpoints:
//!
//! - a source opens each TCP connection with `open_connection`: in V3 further connections are
//!   CONNECTION_STARTs on the service's live stream, even after its earlier connections closed,
//!   so a destination following AWS's localproxy rule (a STREAM_START with a new id while a
//!   stream is active resets it and starts nothing) loses none; a new stream is for a new
//!   session (no live stream: first connection, after a STREAM_RESET) and for V1/V2, one
//!   connection at a time — sequential and simultaneous connections in V3, V2 and V1;
//! - connection caps per stream and in total, at a destination (CONNECTION_RESET and an event)
//!   and at a source (a typed error);
//! - a destination that stays connected while sources of different formats follow each other
//!   (the service's mixed-service-id rule).

mod harness;

use burrow_proto::endpoint::{
    CloseCause, Config, ConnId, DEFAULT_MAX_CONNECTIONS_PER_STREAM, Endpoint, Event, Format,
    LocalError, Output, Role,
};
use burrow_proto::{FrameDecoder, Message, MessageType};
use harness::{Pair, config, msg, wire};
use std::time::Duration;

/// The connection the destination was last asked to open.
fn last_requested(pair: &Pair) -> ConnId {
    pair.dst_side
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::ConnectionRequested(c) => Some(c.clone()),
            _ => None,
        })
        .expect("the destination was asked for a connection")
}

/// Bytes both ways on `conn`: what the destination got, and the source's copy of the reply.
fn round_trip(pair: &mut Pair, conn: &ConnId, dst_conn: &ConnId, tag: &str) {
    let up = format!("up {tag}");
    let down = format!("down {tag}");
    pair.src
        .send(conn, up.as_bytes())
        .expect("source connection open");
    pair.drive();
    assert_eq!(pair.dst_side.data_on(dst_conn), up.as_bytes(), "{tag}: up");
    pair.dst
        .send(dst_conn, down.as_bytes())
        .expect("destination connection open");
    pair.drive();
    assert_eq!(pair.src_side.data_on(conn), down.as_bytes(), "{tag}: down");
}

fn localproxy_pair(src: Format) -> Pair {
    Pair::new(
        config(Role::Source, src, &[]),
        config(Role::Destination, Format::V3, &["SSH"]),
        &["SSH"],
    )
    .with_localproxy_destination()
}

#[test]
fn a_v3_source_keeps_its_stream_for_sequential_connections() {
    let mut pair = localproxy_pair(Format::V3);
    let mut streams = Vec::new();
    for i in 1..=5u32 {
        let conn = pair.src.open_connection(None).expect("open");
        assert_eq!(conn.connection_id, i, "a new connection id each time");
        pair.drive();
        let dst_conn = last_requested(&pair);
        assert_eq!(dst_conn, conn);
        round_trip(&mut pair, &conn, &dst_conn, &i.to_string());
        // The TCP connection ends: CONNECTION_RESET, and the stream stays.
        pair.src.close(&conn).expect("open");
        pair.drive();
        assert!(!pair.dst.is_open(&dst_conn));
        streams.push(conn.stream_id);
    }
    assert!(streams.iter().all(|&id| id == streams[0]), "{streams:?}");
    assert_eq!(pair.localproxy_refused_starts(), 0);
    let starts = pair
        .dst_side
        .received_frames
        .iter()
        .filter(|m| m.kind() == Some(MessageType::StreamStart))
        .count();
    assert_eq!(starts, 1, "one STREAM_START, then CONNECTION_STARTs");
}

#[test]
fn a_new_stream_per_connection_loses_every_second_one_against_localproxy() {
    // What the source agent did before: a STREAM_START for every TCP connection. The model of
    // localproxy's destination reproduces the lost connections it caused.
    let mut pair = localproxy_pair(Format::V3);
    let mut reached = Vec::new();
    for _ in 0..4 {
        let conn = pair.src.open_stream(None).expect("open");
        pair.src.send(&conn, b"hello").expect("open");
        pair.drive();
        let got = pair
            .dst
            .connections()
            .into_iter()
            .any(|c| c.stream_id == conn.stream_id)
            && !pair.dst_side.data_on(&conn).is_empty();
        reached.push(got);
        if got {
            pair.dst.close(&conn).ok();
        }
        pair.src.close(&conn).ok();
        pair.drive();
    }
    assert_eq!(reached, [true, false, true, false]);
    assert_eq!(pair.localproxy_refused_starts(), 2);
}

#[test]
fn simultaneous_v3_connections_share_the_stream() {
    let mut pair = localproxy_pair(Format::V3);
    let conns: Vec<ConnId> = (0..4)
        .map(|_| pair.src.open_connection(None).expect("open"))
        .collect();
    pair.drive();
    assert!(conns.iter().all(|c| c.stream_id == conns[0].stream_id));
    assert_eq!(
        conns.iter().map(|c| c.connection_id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Interleaved data keeps to its connection.
    for round in 0..3 {
        for (i, c) in conns.iter().enumerate() {
            pair.src
                .send(c, format!("{i}.{round};").as_bytes())
                .expect("open");
        }
    }
    pair.drive();
    for (i, c) in conns.iter().enumerate() {
        assert_eq!(
            pair.dst_side.data_on(c),
            format!("{i}.0;{i}.1;{i}.2;").as_bytes()
        );
        pair.dst
            .send(c, format!("back {i}").as_bytes())
            .expect("open");
    }
    pair.drive();
    for (i, c) in conns.iter().enumerate() {
        assert_eq!(pair.src_side.data_on(c), format!("back {i}").as_bytes());
    }
    // Closed in mixed order, from either side; the others stay open.
    pair.src.close(&conns[2]).expect("open");
    pair.dst.close(&conns[0]).expect("open");
    pair.drive();
    assert!(pair.src_side.events.contains(&Event::ConnectionClosed {
        conn: conns[0].clone(),
        cause: CloseCause::ConnectionReset
    }));
    for c in [&conns[1], &conns[3]] {
        assert!(pair.src.is_open(c) && pair.dst.is_open(c));
    }
    pair.src.close(&conns[1]).expect("open");
    pair.src.close(&conns[3]).expect("open");
    pair.drive();
    assert!(pair.dst.connections().is_empty());
    // All closed: the next connection is still on the same stream.
    let next = pair.src.open_connection(None).expect("open");
    assert_eq!(
        (next.stream_id, next.connection_id),
        (conns[0].stream_id, 5)
    );
    pair.drive();
    round_trip(&mut pair, &next, &next.clone(), "after");
    assert_eq!(pair.localproxy_refused_starts(), 0);
}

#[test]
fn v2_and_v1_sources_open_a_new_stream_per_connection() {
    for format in [Format::V2, Format::V1] {
        let mut pair = localproxy_pair(format);
        let mut streams = Vec::new();
        for i in 0..4 {
            let conn = pair.src.open_connection(None).expect("open");
            pair.drive();
            let dst_conn = last_requested(&pair);
            round_trip(&mut pair, &conn, &dst_conn, &format!("{format:?} {i}"));
            // One connection at a time.
            assert_eq!(pair.src.open_connection(None), Err(LocalError::NeedsV3));
            // Closing a V1/V2 connection ends its stream (STREAM_RESET).
            if i % 2 == 0 {
                pair.src.close(&conn).expect("open");
            } else {
                pair.dst.close(&dst_conn).expect("open");
            }
            pair.drive();
            assert!(!pair.src.is_open(&conn) && !pair.dst.is_open(&dst_conn));
            streams.push(conn.stream_id);
        }
        let mut distinct = streams.clone();
        distinct.dedup();
        assert_eq!(distinct, streams, "{format:?}: a new stream id each time");
        assert_eq!(pair.localproxy_refused_starts(), 0, "{format:?}");
    }
}

#[test]
fn after_the_destination_reconnects_the_next_connection_starts_a_new_stream() {
    let mut pair = localproxy_pair(Format::V3);
    let first = pair.src.open_connection(None).expect("open");
    pair.drive();
    round_trip(&mut pair, &first, &first.clone(), "first");
    pair.src.close(&first).expect("open");
    pair.drive();
    // The device's proxy reconnects: the service resets the stream towards the source.
    pair.replace_destination(config(Role::Destination, Format::V3, &["SSH"]));
    let next = pair.src.open_connection(None).expect("open");
    assert_ne!(
        next.stream_id, first.stream_id,
        "a new session gets a new stream"
    );
    assert_eq!(next.connection_id, 1);
    pair.drive();
    round_trip(&mut pair, &next, &next.clone(), "next");
    assert_eq!(pair.localproxy_refused_starts(), 0);
}

#[test]
fn a_destination_caps_connections_per_stream_and_in_total() {
    let mut dst = config(Role::Destination, Format::V3, &["SSH", "RDP"]);
    dst.max_connections_per_stream = 3;
    dst.max_connections = 4;
    let mut pair = Pair::new(config(Role::Source, Format::V3, &[]), dst, &["SSH", "RDP"]);
    pair.drive();
    let ssh: Vec<ConnId> = (0..5)
        .map(|_| {
            pair.src
                .open_connection(Some("SSH"))
                .expect("the source's cap is higher")
        })
        .collect();
    pair.drive();
    let refused: Vec<Event> = pair
        .dst_side
        .events
        .iter()
        .filter(|e| matches!(e, Event::ConnectionRefused { .. }))
        .cloned()
        .collect();
    assert_eq!(
        refused,
        vec![
            Event::ConnectionRefused {
                conn: ssh[3].clone(),
                limit: 3
            },
            Event::ConnectionRefused {
                conn: ssh[4].clone(),
                limit: 3
            },
        ]
    );
    for (i, c) in ssh.iter().enumerate() {
        assert_eq!(pair.src.is_open(c), i < 3, "SSH connection {i}");
    }
    for c in &ssh[3..] {
        assert!(pair.src_side.events.contains(&Event::ConnectionClosed {
            conn: c.clone(),
            cause: CloseCause::ConnectionReset
        }));
    }
    // The total cap: one RDP connection fits, the next does not.
    let rdp1 = pair.src.open_connection(Some("RDP")).expect("open");
    let rdp2 = pair.src.open_connection(Some("RDP")).expect("open");
    pair.drive();
    assert!(pair.dst.is_open(&rdp1));
    assert!(!pair.src.is_open(&rdp2));
    assert_eq!(
        pair.dst_side.events.last(),
        Some(&Event::ConnectionRefused {
            conn: rdp2,
            limit: 4
        })
    );
    // Room again once one closes.
    pair.src.close(&ssh[0]).expect("open");
    let again = pair.src.open_connection(Some("SSH")).expect("open");
    pair.drive();
    assert!(pair.dst.is_open(&again));
}

#[test]
fn a_thousand_connection_starts_open_only_the_default_cap() {
    // One STREAM_START and 1000 CONNECTION_STARTs from a hostile source.
    let mut dst = Endpoint::new(
        config(Role::Destination, Format::V3, &["SSH"]),
        Duration::ZERO,
    );
    let mut msgs = vec![msg(MessageType::StreamStart, 7, "SSH", 1)];
    msgs.extend((2..=1001).map(|id| msg(MessageType::ConnectionStart, 7, "SSH", id)));
    for chunk in msgs.chunks(500) {
        dst.handle_bytes(&wire(chunk)).expect("valid frames");
    }
    let (mut requested, mut refused, mut resets) = (0, 0, 0);
    let mut decoder = FrameDecoder::strict();
    while let Some(out) = dst.poll_output() {
        match out {
            Output::Event(Event::ConnectionRequested(_)) => requested += 1,
            Output::Event(Event::ConnectionRefused { limit, .. }) => {
                assert_eq!(limit, DEFAULT_MAX_CONNECTIONS_PER_STREAM);
                refused += 1;
            }
            Output::Transmit(bytes) => {
                let mut input = bytes.as_slice();
                while let Some(m) = decoder.decode(&mut input).expect("valid output") {
                    assert_eq!(m.kind(), Some(MessageType::ConnectionReset));
                    resets += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(requested, DEFAULT_MAX_CONNECTIONS_PER_STREAM);
    assert_eq!(refused, 1001 - DEFAULT_MAX_CONNECTIONS_PER_STREAM);
    assert_eq!(resets, refused);
    assert_eq!(dst.open_connections(), DEFAULT_MAX_CONNECTIONS_PER_STREAM);
}

#[test]
fn a_source_caps_its_own_connections() {
    let mut cfg: Config = config(Role::Source, Format::V3, &["SSH", "RDP"]);
    cfg.max_connections_per_stream = 2;
    cfg.max_connections = 3;
    let mut src = Endpoint::new(cfg, Duration::ZERO);
    let a = src.open_connection(Some("SSH")).expect("open");
    src.open_connection(Some("SSH")).expect("open");
    assert_eq!(
        src.open_connection(Some("SSH")),
        Err(LocalError::TooManyConnections { limit: 2 })
    );
    src.open_connection(Some("RDP")).expect("open");
    assert_eq!(
        src.open_connection(Some("RDP")),
        Err(LocalError::TooManyConnections { limit: 3 })
    );
    src.close(&a).expect("open");
    src.open_connection(Some("RDP")).expect("room again");
}

#[test]
fn a_v3_destination_follows_a_v2_source_then_its_v1_replacement() {
    // The destination stays on one WebSocket; the service's real rules sit in between (they
    // used to close it for mixing messages with and without service ids).
    let mut pair = Pair::new(
        config(Role::Source, Format::V2, &[]),
        config(Role::Destination, Format::V3, &["SSH"]),
        &["SSH"],
    );
    let v2 = pair.src.open_connection(None).expect("open");
    pair.drive();
    let dst_v2 = last_requested(&pair);
    round_trip(&mut pair, &v2, &dst_v2, "V2");
    assert!(
        pair.dst_side
            .received_frames
            .iter()
            .all(|m| m.service_id == "SSH" || m.kind() == Some(MessageType::ServiceIds))
    );

    let mut v1_cfg = config(Role::Source, Format::V1, &[]);
    v1_cfg.first_stream_id = 5000;
    pair.replace_source(v1_cfg);
    assert!(
        !pair.dst.is_open(&dst_v2),
        "the service reset the replaced source's stream"
    );
    let v1 = pair.src.open_connection(None).expect("open");
    pair.drive();
    let dst_v1 = last_requested(&pair);
    round_trip(&mut pair, &v1, &dst_v1, "V1");
    let answers: Vec<&Message> = pair
        .src_side
        .received_frames
        .iter()
        .filter(|m| m.kind() == Some(MessageType::Data))
        .collect();
    assert!(!answers.is_empty());
    assert!(
        answers
            .iter()
            .all(|m| m.service_id.is_empty() && m.connection_id == 0)
    );
}
