//! `burrow agent` and connections within streams, against the real `burrow serve` with a raw
//! data-plane client as the agent's peer:
//!
//! - a V3 source agent keeps its stream and opens each further TCP connection with
//!   CONNECTION_START and a new connection id (what AWS's localproxy destination needs: it resets,
//!   rather than starts, a second STREAM_START while its stream is active), with ids within
//!   1..=2^28−1, and logs the format hint when the device answers nothing;
//! - a destination agent opens no more connections per stream than `--max-connections-per-stream`
//!   and answers the rest with CONNECTION_RESET and a log line.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use burrow_proto::{MAX_ID, Message, MessageType};
use common::ws::{Peer, Upgrade, stream_start};
use common::{Serve, destination_agent, source_agent};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};

/// The next frame that is not keep-alive noise.
async fn next_frame(peer: &mut Peer) -> Message {
    peer.frame().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_v3_source_agent_opens_further_connections_on_its_stream() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut device = Upgrade::tunnel("destination")
        .token(&tunnel.destination_token)
        .connect(serve.addr)
        .await;
    assert_eq!(device.service_ids().await, ["SSH"]);
    let (mut source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    let mut starts = Vec::new();
    for i in 1..=3u32 {
        let mut client = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let hello = format!("hello {i}");
        client.write_all(hello.as_bytes()).await.expect("write");
        // The start of this connection, then its data.
        let start = next_frame(&mut device).await;
        starts.push((start.kind(), start.stream_id, start.connection_id));
        let data = next_frame(&mut device).await;
        assert_eq!(data.kind(), Some(MessageType::Data));
        assert_eq!(data.payload, hello.as_bytes());
        assert_eq!(
            (data.stream_id, data.connection_id),
            (start.stream_id, start.connection_id)
        );
        if i == 1 {
            // The device never answers: after 2 s the agent names the format as the cause.
            source.wait_line_for("the no-answer hint", Duration::from_secs(10), |l| {
                l.contains("the V3 message format is the likely cause") && l.contains("--format V1")
            });
        }
        // The TCP connection ends: CONNECTION_RESET for it, and the stream stays.
        drop(client);
        let reset = next_frame(&mut device).await;
        assert_eq!(
            (reset.kind(), reset.stream_id, reset.connection_id),
            (
                Some(MessageType::ConnectionReset),
                start.stream_id,
                start.connection_id
            )
        );
    }
    let stream = starts[0].1;
    assert!((1..=MAX_ID).contains(&stream), "stream id {stream}");
    assert_eq!(
        starts,
        vec![
            (Some(MessageType::StreamStart), stream, 1),
            (Some(MessageType::ConnectionStart), stream, 2),
            (Some(MessageType::ConnectionStart), stream, 3),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_agent_caps_connections_per_stream() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // The device's local service: counts and holds what it accepts.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let local = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let mapping = format!("SSH={local}");
    let mut device = destination_agent(
        &serve,
        &tunnel,
        &mapping,
        &["--max-connections-per-stream", "2"],
    );
    let mut source = Upgrade::tunnel("source")
        .token(&tunnel.source_token)
        .connect(serve.addr)
        .await;
    assert_eq!(source.service_ids().await, ["SSH"]);
    let mut frames = vec![stream_start("SSH", 7)];
    frames.extend((2..=4).map(|id| Message {
        stream_id: 7,
        service_id: "SSH".to_owned(),
        connection_id: id,
        ..Message::of(MessageType::ConnectionStart)
    }));
    source.send(&frames).await;
    let mut resets = Vec::new();
    for _ in 0..2 {
        let m = next_frame(&mut source).await;
        assert_eq!(m.kind(), Some(MessageType::ConnectionReset), "{m:?}");
        assert_eq!(m.stream_id, 7);
        resets.push(m.connection_id);
    }
    assert_eq!(resets, [3, 4]);
    device.wait_line("the cap log line", |l| {
        l.contains("refused a connection over the cap")
    });
    // The two allowed connections reached the local service, and no more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
