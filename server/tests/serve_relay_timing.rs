//! The service-side relay timing the scale benchmark reads: with `BURROW_RELAY_TIMING=1`,
//! `burrow serve` times every WebSocket message it relays from one peer to the other, and
//! `GET /bench/relay-timing` counts exactly those (not the frames the service makes itself, such
//! as SERVICE_IDS); without it the path does not exist.

mod common;

use std::time::{Duration, Instant};

use common::Serve;
use common::ws::{Upgrade, data, stream_start};

/// `GET /bench/relay-timing`: the status and, on 200, the JSON body.
fn timing(serve: &Serve) -> (u16, serde_json::Value) {
    let request = format!(
        "GET /bench/relay-timing HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        serve.addr
    );
    let (status, _headers, body) = common::http_exchange(serve.addr, request.as_bytes());
    let json = if status == 200 {
        serde_json::from_slice(&body).expect("the timing is JSON")
    } else {
        serde_json::Value::Null
    };
    (status, json)
}

/// The count, once it has stopped moving for a moment (the writer records a message just after
/// the socket took it, so the reader may see the frames a moment before the count).
fn settled_count(serve: &Serve, expected: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, json) = timing(serve);
        assert_eq!(status, 200);
        if json["count"].as_u64() == Some(expected) || Instant::now() > deadline {
            std::thread::sleep(Duration::from_millis(200));
            return timing(serve).1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn every_relayed_message_is_timed_once_and_service_frames_are_not() {
    let serve = Serve::start_with_env(&[], &[("BURROW_RELAY_TIMING", "1")]);
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut src = Upgrade::tunnel("source")
        .token(&tunnel.source_token)
        .connect(serve.addr)
        .await;
    let mut dst = Upgrade::tunnel("destination")
        .token(&tunnel.destination_token)
        .connect(serve.addr)
        .await;
    src.service_ids().await;
    dst.service_ids().await;
    // SERVICE_IDS went to both peers; the service made them, so nothing is timed yet.
    assert_eq!(settled_count(&serve, 0)["count"], 0);

    src.send(&[stream_start("SSH", 1)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 1));
    let (to_dst, to_src) = (40u64, 25u64);
    for i in 0..to_dst {
        src.send(&[data("SSH", 1, format!("up {i}").as_bytes())])
            .await;
    }
    for i in 0..to_dst {
        assert_eq!(
            dst.frame().await,
            data("SSH", 1, format!("up {i}").as_bytes())
        );
    }
    for i in 0..to_src {
        dst.send(&[data("SSH", 1, format!("down {i}").as_bytes())])
            .await;
    }
    for i in 0..to_src {
        assert_eq!(
            src.frame().await,
            data("SSH", 1, format!("down {i}").as_bytes())
        );
    }

    let expected = 1 + to_dst + to_src;
    let json = settled_count(&serve, expected);
    assert_eq!(json["count"], expected, "{json}");
    let buckets = json["buckets"].as_array().expect("buckets");
    let total: u64 = buckets
        .iter()
        .map(|b| b[2].as_u64().expect("a count"))
        .sum();
    assert_eq!(
        total, expected,
        "the buckets hold every timed message: {json}"
    );
    for bucket in buckets {
        let (lower, upper) = (bucket[0].as_u64(), bucket[1].as_u64());
        assert!(lower < upper, "a bucket's bounds are ordered: {bucket}");
    }
}

#[tokio::test]
async fn without_the_variable_nothing_is_timed_and_the_path_does_not_exist() {
    let serve = Serve::start();
    assert_eq!(timing(&serve).0, 404);
}
