//! Direct endpoint checks without the service in between: a source's bytes are fed straight
//! into a destination and back. The scenario tests with the simulated service live in
//! `pair.rs`.

use std::time::Duration;

use burrow_proto::endpoint::{CloseCause, Config, Endpoint, Event, Format, Output, Role};

fn endpoint(role: Role, format: Format, services: &[&str]) -> Endpoint {
    let mut config = Config::new(role, format);
    config.services = services.iter().map(|s| s.to_string()).collect();
    config.first_stream_id = 41;
    Endpoint::new(config, Duration::ZERO)
}

/// Moves every transmit of `from` into `to`; returns the events `from` had queued.
fn relay(from: &mut Endpoint, to: &mut Endpoint) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(out) = from.poll_output() {
        match out {
            Output::Transmit(bytes) => to.handle_bytes(&bytes).expect("peer accepts"),
            Output::Event(ev) => events.push(ev),
            Output::Ping => {}
        }
    }
    events
}

#[test]
fn stream_start_data_and_close_round_trip() {
    let mut src = endpoint(Role::Source, Format::V3, &["SSH"]);
    let mut dst = endpoint(Role::Destination, Format::V3, &["SSH"]);
    let conn = src.open_stream(None).expect("one service");
    assert_eq!(
        (conn.service_id.as_str(), conn.stream_id, conn.connection_id),
        ("SSH", 41, 1)
    );
    src.send(&conn, b"hello").expect("open");
    relay(&mut src, &mut dst);
    let events = relay(&mut dst, &mut src);
    assert_eq!(
        events,
        vec![
            Event::ConnectionRequested(conn.clone()),
            Event::Data {
                conn: conn.clone(),
                data: b"hello".to_vec()
            }
        ]
    );
    dst.send(&conn, b"world").expect("open");
    relay(&mut dst, &mut src);
    assert_eq!(
        relay(&mut src, &mut dst),
        vec![Event::Data {
            conn: conn.clone(),
            data: b"world".to_vec()
        }]
    );
    src.close(&conn).expect("open");
    relay(&mut src, &mut dst);
    assert_eq!(
        relay(&mut dst, &mut src),
        vec![Event::ConnectionClosed {
            conn: conn.clone(),
            cause: CloseCause::ConnectionReset
        }]
    );
    assert!(!src.is_open(&conn) && !dst.is_open(&conn));
}
