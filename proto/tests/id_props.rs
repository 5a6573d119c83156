//! Property tests over the ids an endpoint chooses: every stream id and connection id is within
//! `1..=MAX_ID` (2^28−1, what AWS's device library can encode), stream ids never repeat within
//! an endpoint or across the endpoints of one client's reconnects (`StreamIdPlan`), and open
//! connections of a stream never share an id — whatever first id the driver passes, whatever
//! the random bits, and whatever the application and the peer do in between.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use burrow_proto::endpoint::{Config, ConnId, Endpoint, Format, Role};
use burrow_proto::{MAX_ID, MessageType, StreamIdPlan, id_from_random};
use harness::{msg, wire};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    OpenStream(u8),
    OpenConnection(u8),
    Close(u8),
    /// The peer resets one of the open connections (CONNECTION_RESET or STREAM_RESET).
    PeerReset(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::OpenStream),
        any::<u8>().prop_map(Op::OpenConnection),
        any::<u8>().prop_map(Op::OpenConnection),
        any::<u8>().prop_map(Op::Close),
        (any::<u8>(), any::<bool>()).prop_map(|(i, s)| Op::PeerReset(i, s)),
    ]
}

const SERVICES: [&str; 2] = ["SSH", "RDP"];

/// Runs `ops` on one source endpoint; returns every stream id it started and checks the
/// connection ids on the way.
fn run(first: i32, format: Format, ops: &[Op]) -> (Vec<i32>, i32) {
    let mut config = Config::new(Role::Source, format);
    config.services = SERVICES.iter().map(|s| (*s).to_owned()).collect();
    config.first_stream_id = first;
    config.max_connections_per_stream = 1000;
    config.max_connections = 1000;
    let mut ep = Endpoint::new(config, Duration::ZERO);
    let mut started = Vec::new();
    let mut open: Vec<ConnId> = Vec::new();
    for op in ops {
        let opened = match op {
            Op::OpenStream(s) => ep.open_stream(Some(SERVICES[usize::from(*s) % 2])).ok(),
            Op::OpenConnection(s) => ep.open_connection(Some(SERVICES[usize::from(*s) % 2])).ok(),
            Op::Close(i) => {
                if !open.is_empty() {
                    let c = open[usize::from(*i) % open.len()].clone();
                    let _ = ep.close(&c);
                }
                None
            }
            Op::PeerReset(i, stream) => {
                if !open.is_empty() {
                    let c = open[usize::from(*i) % open.len()].clone();
                    let kind = if *stream {
                        MessageType::StreamReset
                    } else {
                        MessageType::ConnectionReset
                    };
                    let id = if *stream { 0 } else { c.connection_id };
                    ep.handle_bytes(&wire(&[msg(kind, c.stream_id, &c.service_id, id)]))
                        .expect("a valid reset");
                }
                None
            }
        };
        while ep.poll_output().is_some() {}
        if let Some(c) = opened {
            assert!((1..=MAX_ID).contains(&c.stream_id), "{c:?}");
            assert!(
                (1..=MAX_ID.unsigned_abs()).contains(&c.connection_id),
                "{c:?}"
            );
            if c.connection_id == 1 && !started.contains(&c.stream_id) {
                started.push(c.stream_id);
            }
        }
        open = ep.connections();
        // Open connections of one stream never share an id.
        let distinct: BTreeSet<&ConnId> = open.iter().collect();
        assert_eq!(distinct.len(), open.len());
    }
    (started, ep.next_stream_id())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_chosen_id_is_in_range_and_stream_ids_do_not_repeat(
        first in prop_oneof![any::<i32>(), (MAX_ID - 20)..=MAX_ID, Just(0)],
        format in prop_oneof![Just(Format::V1), Just(Format::V2), Just(Format::V3)],
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let (started, next) = run(first, format, &ops);
        let distinct: BTreeSet<i32> = started.iter().copied().collect();
        prop_assert_eq!(distinct.len(), started.len(), "{:?}", started);
        prop_assert!((1..=MAX_ID).contains(&next));
    }

    #[test]
    fn stream_ids_stay_distinct_across_reconnects(
        seed in any::<u32>(),
        steps in proptest::collection::vec(any::<u32>(), 1..20),
        ops in proptest::collection::vec(op(), 0..30),
    ) {
        let mut plan = StreamIdPlan::new(seed);
        let mut all = Vec::new();
        for step in steps {
            let (started, next) = run(plan.first_stream_id(), Format::V3, &ops);
            all.extend(started);
            plan.advance(next, step);
            prop_assert!((1..=MAX_ID).contains(&plan.first_stream_id()));
        }
        let distinct: BTreeSet<i32> = all.iter().copied().collect();
        prop_assert_eq!(distinct.len(), all.len(), "{:?}", all);
    }

    #[test]
    fn random_first_ids_are_in_range(random in any::<u32>()) {
        prop_assert!((1..=MAX_ID).contains(&id_from_random(random)));
        prop_assert!((1..=MAX_ID).contains(&StreamIdPlan::new(random).first_stream_id()));
    }
}
