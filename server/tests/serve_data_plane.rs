//! The emulated data plane of a real `burrow serve`, driven by raw WebSocket clients: the
//! handshake rules (subprotocols, where the token may come from, modes, single-use and client
//! tokens, the request size limit, browser origins, other paths) and the close rules (every
//! protocol violation closes the offending peer with the code and reason the service uses,
//! replacement of a peer, pings, CloseTunnel, lifetime expiry and shutdown).
//!
//! Frames are built with `burrow_proto`'s codec, except invalid ones (written byte by byte).

mod common;

use std::process::Command;

use burrow_proto::MessageType;
use common::ws::{Closed, Peer, Upgrade, V1, V2, V3, data, frame, stream_start};
use common::{Serve, Tunnel};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The real service's words for a reused token.
const SPENT: &str =
    "Invalid access token: The access token was previously used and can not be used again.";
/// A well-formed client token.
const CLIENT_TOKEN: &str = "burrow-test-client-token-0123456789abcdef";

fn source(tunnel: &Tunnel) -> Upgrade {
    Upgrade::tunnel("source").token(&tunnel.source_token)
}

fn destination(tunnel: &Tunnel) -> Upgrade {
    Upgrade::tunnel("destination").token(&tunnel.destination_token)
}

/// A source and a destination of a new tunnel with the SSH service, past SERVICE_IDS.
async fn pair(serve: &Serve) -> (Peer, Peer, Tunnel) {
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut src = source(&tunnel).connect(serve.addr).await;
    let mut dst = destination(&tunnel).connect(serve.addr).await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    assert_eq!(dst.service_ids().await, ["SSH"]);
    (src, dst, tunnel)
}

fn assert_channel_id(head: &common::ws::Head) {
    let id = head.header("channel-id").expect("a channel-id header");
    assert!(
        id.len() >= 32 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
        "odd channel-id {id:?}"
    );
}

/// Expects a refusal with `status` whose body and `X-Status-Reason` are both `reason`.
async fn expect_refusal(upgrade: &Upgrade, serve: &Serve, status: u16, reason: &str) {
    let head = upgrade.refused(serve.addr).await;
    assert_eq!(head.status, status, "{head:?}");
    assert_eq!(head.body, reason, "{head:?}");
    assert_eq!(head.header("x-status-reason"), Some(reason), "{head:?}");
    assert_channel_id(&head);
}

// ---------------------------------------------------------------------------------------------
// Handshake rules
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_newest_offered_subprotocol_is_chosen_and_echoed() {
    let serve = Serve::start();
    for (offered, chosen) in [
        (V1, V1),
        (V2, V2),
        (
            "aws.iot.securetunneling-2.0, aws.iot.securetunneling-1.0",
            V2,
        ),
        (
            "aws.iot.securetunneling-1.0, aws.iot.securetunneling-3.0, aws.iot.securetunneling-2.0",
            V3,
        ),
        ("chat, aws.iot.securetunneling-1.0", V1),
    ] {
        let tunnel = serve.open_tunnel(&["SSH"]);
        let peer = source(&tunnel).protocols(offered).connect(serve.addr).await;
        assert_eq!(peer.head.status, 101);
        assert_eq!(
            peer.head.header("sec-websocket-protocol"),
            Some(chosen),
            "offered {offered:?}"
        );
        assert_channel_id(&peer.head);
    }
    let tunnel = serve.open_tunnel(&["SSH"]);
    expect_refusal(
        &source(&tunnel).protocols("chat, aws.iot.securetunneling-4.0"),
        &serve,
        400,
        "Unsupported Sec-WebSocket-Protocol: offer aws.iot.securetunneling-3.0, -2.0 or -1.0",
    )
    .await;
    expect_refusal(
        &Upgrade::new("/tunnel?local-proxy-mode=source").token(&tunnel.source_token),
        &serve,
        400,
        "Unsupported Sec-WebSocket-Protocol: offer aws.iot.securetunneling-3.0, -2.0 or -1.0",
    )
    .await;
}

#[tokio::test]
async fn a_v1_peer_gets_no_service_ids() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut dst = destination(&tunnel).protocols(V1).connect(serve.addr).await;
    let mut src = source(&tunnel).connect(serve.addr).await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    common::ws::destination_attached(&serve, &tunnel.id).await;
    src.send(&[stream_start("", 3)]).await;
    // The V1 destination's first frame is the source's STREAM_START, not SERVICE_IDS.
    let first = dst.frame().await;
    assert_eq!(first.kind(), Some(MessageType::StreamStart), "{first:?}");
    assert_eq!(first.stream_id, 3);
}

#[tokio::test]
async fn the_token_may_come_from_the_header_the_cookie_or_the_query() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut src = Upgrade::tunnel("source")
        .header(
            "cookie",
            &format!(
                "theme=dark; awsiot-tunnel-token={}; x=1",
                tunnel.source_token
            ),
        )
        .connect(serve.addr)
        .await;
    let mut dst = Upgrade::new(&format!(
        "/tunnel?local-proxy-mode=destination&access-token={}",
        tunnel.destination_token
    ))
    .protocols(V3)
    .connect(serve.addr)
    .await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    assert_eq!(dst.service_ids().await, ["SSH"]);
    // Both ends are really joined: a frame crosses.
    src.send(&[stream_start("SSH", 1), data("SSH", 1, b"hello")])
        .await;
    assert_eq!(dst.frame().await, stream_start("SSH", 1));
    assert_eq!(dst.frame().await, data("SSH", 1, b"hello"));
    // The header works too (another tunnel).
    let other = serve.open_tunnel(&["SSH"]);
    let mut peer = source(&other).connect(serve.addr).await;
    assert_eq!(peer.service_ids().await, ["SSH"]);
}

#[tokio::test]
async fn more_than_one_token_is_refused_without_spending_it() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let t = tunnel.source_token.as_str();
    let many = "Multiple access tokens: exactly one access-token header, awsiot-tunnel-token \
                cookie or access-token parameter is allowed";
    let cookie = format!("awsiot-tunnel-token={t}");
    for upgrade in [
        source(&tunnel).header("cookie", &cookie),
        source(&tunnel).token(t),
        Upgrade::new(&format!("/tunnel?local-proxy-mode=source&access-token={t}"))
            .protocols(V3)
            .token(t),
        Upgrade::new(&format!("/tunnel?local-proxy-mode=source&access-token={t}"))
            .protocols(V3)
            .header("cookie", &cookie),
        Upgrade::tunnel("source").header("cookie", &format!("{cookie}; {cookie}")),
    ] {
        expect_refusal(&upgrade, &serve, 400, many).await;
    }
    expect_refusal(
        &Upgrade::tunnel("source"),
        &serve,
        400,
        "Missing access token: set the access-token header or the awsiot-tunnel-token cookie",
    )
    .await;
    // None of the refusals spent the token.
    let peer = source(&tunnel).connect(serve.addr).await;
    assert_eq!(peer.head.status, 101);
}

#[tokio::test]
async fn a_missing_or_unknown_mode_is_refused() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let bad_mode = "Invalid local-proxy-mode: expected source or destination";
    for target in [
        "/tunnel",
        "/tunnel?local-proxy-mode=",
        "/tunnel?local-proxy-mode=both",
        "/tunnel?local-proxy-mode=source&local-proxy-mode=source",
    ] {
        let upgrade = Upgrade::new(target)
            .protocols(V3)
            .token(&tunnel.source_token);
        expect_refusal(&upgrade, &serve, 400, bad_mode).await;
    }
}

#[tokio::test]
async fn tokens_are_single_use_and_bound_to_their_mode() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let first = source(&tunnel).connect(serve.addr).await;
    assert_eq!(first.head.status, 101);
    expect_refusal(&source(&tunnel), &serve, 400, SPENT).await;
    // Still spent after the first connection is gone.
    first.close().await;
    expect_refusal(&source(&tunnel), &serve, 400, SPENT).await;
    expect_refusal(
        &Upgrade::tunnel("source").token(&tunnel.destination_token),
        &serve,
        400,
        "Invalid access token: the access token is not valid for local-proxy-mode=source",
    )
    .await;
    expect_refusal(
        &Upgrade::tunnel("destination").token("AQGAnot-a-real-token"),
        &serve,
        400,
        "Invalid access token",
    )
    .await;
    // A closed tunnel's tokens are revoked.
    serve.close_tunnel(&tunnel.id);
    expect_refusal(&destination(&tunnel), &serve, 400, "Invalid access token").await;
}

#[tokio::test]
async fn a_client_token_lets_the_same_client_reconnect_and_nobody_else() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let first = source(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    first.close().await;
    let mut again = source(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    assert_eq!(again.service_ids().await, ["SSH"]);
    expect_refusal(
        &source(&tunnel).client_token("another-client-token-0123456789abcdef"),
        &serve,
        400,
        "Invalid client token: The provided client token does not match the client token that \
         was previously set.",
    )
    .await;
    expect_refusal(
        &source(&tunnel),
        &serve,
        400,
        "Invalid client token: The provided client token does not match the client token that \
         was previously set.",
    )
    .await;
    let other = serve.open_tunnel(&["SSH"]);
    expect_refusal(
        &source(&other).client_token("too-short"),
        &serve,
        400,
        "Invalid client token: it must match ^[a-zA-Z0-9-]{32,128}$",
    )
    .await;
}

#[tokio::test]
async fn requests_over_4_kib_are_refused() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // Token, standard headers and 3000 bytes of padding stay under 4096 bytes.
    let fits = source(&tunnel).header("x-padding", &"p".repeat(3000));
    let peer = fits.connect(serve.addr).await;
    assert_eq!(peer.head.status, 101);
    let other = serve.open_tunnel(&["SSH"]);
    let too_big = source(&other).header("x-padding", &"p".repeat(4000));
    expect_refusal(
        &too_big,
        &serve,
        400,
        "Request too large: the handshake request must not exceed 4096 bytes",
    )
    .await;
    // The refusal did not spend the token.
    assert_eq!(source(&other).connect(serve.addr).await.head.status, 101);
}

#[tokio::test]
async fn browsers_are_accepted_only_from_allowed_origins() {
    let serve = Serve::start_with(&["--allow-origin", "https://app.example.com"]);
    let tunnel = serve.open_tunnel(&["SSH"]);
    for origin in [
        "http://evil.example",
        "null",
        "https://app.example.com.evil.example",
        &format!("https://127.0.0.1:{}", serve.addr.port()),
        &format!("http://127.0.0.1:{}", serve.addr.port() + 1),
    ] {
        expect_refusal(
            &source(&tunnel).header("origin", origin),
            &serve,
            403,
            "Forbidden: origin not allowed",
        )
        .await;
    }
    let own = format!("http://127.0.0.1:{}", serve.addr.port());
    let peer = source(&tunnel)
        .header("origin", &own)
        .connect(serve.addr)
        .await;
    assert_eq!(peer.head.status, 101);
    let localhost = format!("http://localhost:{}", serve.addr.port());
    let peer = destination(&tunnel)
        .header("origin", &localhost)
        .connect(serve.addr)
        .await;
    assert_eq!(peer.head.status, 101);
    let other = serve.open_tunnel(&["SSH"]);
    let peer = source(&other)
        .header("origin", "https://app.example.com")
        .connect(serve.addr)
        .await;
    assert_eq!(peer.head.status, 101);
}

#[tokio::test]
async fn upgrades_on_other_paths_are_refused_with_400() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    for target in [
        "/",
        "/tunnels?local-proxy-mode=source",
        "/index.html",
        "/tunnel/status?local-proxy-mode=source",
    ] {
        let upgrade = Upgrade::new(target)
            .protocols(V3)
            .token(&tunnel.source_token);
        expect_refusal(
            &upgrade,
            &serve,
            400,
            "Bad request: WebSocket upgrades are only accepted on /tunnel",
        )
        .await;
    }
    // None of them spent the token.
    assert_eq!(source(&tunnel).connect(serve.addr).await.head.status, 101);
}

// ---------------------------------------------------------------------------------------------
// Relaying and close rules
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn frames_cross_unchanged_both_ways_and_pings_are_answered() {
    let serve = Serve::start();
    let (mut src, mut dst, _tunnel) = pair(&serve).await;
    let big = common::pseudo_random(64_512, 7);
    src.send(&[stream_start("SSH", 5), data("SSH", 5, b"ping")])
        .await;
    src.send(&[data("SSH", 5, &big)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 5));
    assert_eq!(dst.frame().await, data("SSH", 5, b"ping"));
    assert_eq!(dst.frame().await, data("SSH", 5, &big));
    dst.send(&[data("SSH", 5, b"pong")]).await;
    assert_eq!(src.frame().await, data("SSH", 5, b"pong"));
    // A frame split across two WebSocket messages arrives whole.
    let bytes = frame(&data("SSH", 5, b"split across messages"));
    let (a, b) = bytes.split_at(7);
    src.send_bytes(a.to_vec()).await;
    src.send_bytes(b.to_vec()).await;
    assert_eq!(dst.frame().await, data("SSH", 5, b"split across messages"));
    assert_eq!(src.ping(b"are you there").await, b"are you there");
    assert_eq!(dst.ping(b"").await, b"");
}

/// On a fresh pair with a started SSH stream, `sender` breaks a rule with `message`: it must be
/// closed with `code` and `reason`, and the other peer must receive nothing and stay connected.
async fn violation(sender: &str, message: WsMessage, code: u16, reason: &str) {
    let serve = Serve::start();
    let (mut src, mut dst, _tunnel) = pair(&serve).await;
    // A valid stream first, so that the peers have something to relay.
    src.send(&[stream_start("SSH", 9)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 9));
    let (offender, other) = match sender {
        "source" => (&mut src, &mut dst),
        _ => (&mut dst, &mut src),
    };
    offender.send_message(message).await;
    let closed = offender.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (code, reason),
        "{closed:?}"
    );
    assert!(
        closed.frames.is_empty(),
        "frames before the close: {:?}",
        closed.frames
    );
    // The other peer stays connected and got nothing of the offending message: only the
    // STREAM_RESET that ends the closed peer's stream.
    assert_eq!(other.ping(b"still here").await, b"still here");
    let reset = other.frame().await;
    assert_eq!(reset.kind(), Some(MessageType::StreamReset), "{reset:?}");
    assert_eq!((reset.stream_id, reset.service_id.as_str()), (9, "SSH"));
    let closed_other =
        tokio::time::timeout(std::time::Duration::from_millis(200), other.frame()).await;
    assert!(
        closed_other.is_err(),
        "the other peer received {closed_other:?}"
    );
}

/// A frame (prefix and body) from raw protobuf bytes.
fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(body.len())
        .expect("a short body")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(body);
    out
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[tokio::test]
async fn a_text_message_closes_with_1003() {
    violation(
        "source",
        WsMessage::text("hello"),
        1003,
        "text messages are not allowed",
    )
    .await;
}

#[tokio::test]
async fn a_payload_over_64512_bytes_closes_with_1002() {
    // DATA, stream 9, a payload of 64513 bytes, service SSH: the length prefix still fits a u16.
    let mut body = vec![0x08, 0x01, 0x10, 0x09, 0x22];
    varint(64_513, &mut body);
    body.extend(std::iter::repeat_n(0xab, 64_513));
    body.extend_from_slice(&[0x2a, 3, b'S', b'S', b'H']);
    violation(
        "source",
        WsMessage::binary(raw_frame(&body)),
        1002,
        "payload of 64513 bytes exceeds the limit of 64512",
    )
    .await;
}

#[tokio::test]
async fn a_websocket_message_over_131076_bytes_closes_with_1009() {
    violation(
        "destination",
        WsMessage::binary(vec![0u8; 131_077]),
        1009,
        "message of 131077 bytes exceeds the limit of 131076",
    )
    .await;
}

#[tokio::test]
async fn a_huge_websocket_message_closes_with_1009() {
    let closed_with = async {
        let serve = Serve::start();
        let (mut src, _dst, _tunnel) = pair(&serve).await;
        src.send_bytes(vec![0u8; 600_000]).await;
        src.closed().await
    }
    .await;
    assert_eq!(closed_with.code, 1009, "{closed_with:?}");
    assert!(
        closed_with.reason.starts_with("message of ")
            && closed_with
                .reason
                .ends_with("bytes exceeds the limit of 131076"),
        "{closed_with:?}"
    );
}

#[tokio::test]
async fn an_undecodable_frame_closes_with_1002() {
    // Field 1 as length-delimited, five bytes announced, one present.
    let serve_reason = "frame is not a valid protobuf message";
    let serve = Serve::start();
    let (mut src, _dst, _tunnel) = pair(&serve).await;
    src.send_bytes(raw_frame(&[0x0a, 0x05, 0x01])).await;
    let closed: Closed = src.closed().await;
    assert_eq!(closed.code, 1002, "{closed:?}");
    assert!(closed.reason.starts_with(serve_reason), "{closed:?}");
}

#[tokio::test]
async fn an_unknown_protobuf_field_closes_with_1002() {
    // DATA on stream 9 for SSH with field 8 set.
    let body = [
        0x08, 0x01, 0x10, 0x09, 0x22, 0x01, b'x', 0x2a, 3, b'S', b'S', b'H', 0x40, 0x01,
    ];
    violation(
        "source",
        WsMessage::binary(raw_frame(&body)),
        1002,
        "frame carries unknown protobuf field 8",
    )
    .await;
}

#[tokio::test]
async fn service_ids_from_a_client_closes_with_1002() {
    let msg = burrow_proto::Message {
        available_service_ids: vec!["SSH".into()],
        ..burrow_proto::Message::of(MessageType::ServiceIds)
    };
    violation(
        "destination",
        WsMessage::binary(frame(&msg)),
        1002,
        "ServiceIds may only be sent by the service",
    )
    .await;
}

#[tokio::test]
async fn session_reset_from_a_client_closes_with_1002() {
    let msg = burrow_proto::Message::of(MessageType::SessionReset);
    violation(
        "source",
        WsMessage::binary(frame(&msg)),
        1002,
        "SessionReset may only be sent by the service",
    )
    .await;
}

#[tokio::test]
async fn stream_start_from_a_destination_closes_with_1002() {
    violation(
        "destination",
        WsMessage::binary(frame(&stream_start("SSH", 10))),
        1002,
        "StreamStart may only be sent by a source",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_service_id_closes_with_1002() {
    violation(
        "source",
        WsMessage::binary(frame(&stream_start("RDP", 10))),
        1002,
        "service id \"RDP\" is not a service of this tunnel",
    )
    .await;
}

#[tokio::test]
async fn mixing_frames_with_and_without_service_ids_closes_with_1002() {
    violation(
        "source",
        WsMessage::binary(frame(&data("", 9, b"no service id"))),
        1002,
        "messages with and without service ids are mixed",
    )
    .await;
}

#[tokio::test]
async fn data_for_a_service_never_started_closes_with_1002() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH", "HTTP"]);
    let mut src = source(&tunnel).connect(serve.addr).await;
    let mut dst = destination(&tunnel).connect(serve.addr).await;
    assert_eq!(src.service_ids().await, ["SSH", "HTTP"]);
    assert_eq!(dst.service_ids().await, ["SSH", "HTTP"]);
    src.send(&[stream_start("SSH", 1)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 1));
    dst.send(&[data("HTTP", 1, b"never started")]).await;
    let closed = dst.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1002, "data for service \"HTTP\", which was never started")
    );
    assert_eq!(src.ping(b"ok").await, b"ok");
}

#[tokio::test]
async fn frames_after_the_violation_in_the_same_message_are_dropped() {
    let serve = Serve::start();
    let (mut src, mut dst, _tunnel) = pair(&serve).await;
    let mut bytes = frame(&stream_start("SSH", 4));
    bytes.extend(frame(&stream_start("RDP", 5)));
    bytes.extend(frame(&data("SSH", 4, b"after the violation")));
    src.send_bytes(bytes).await;
    let closed = src.closed().await;
    assert_eq!(closed.code, 1002, "{closed:?}");
    // The valid frame before the violation was relayed, alone.
    assert_eq!(dst.frame().await, stream_start("SSH", 4));
    assert_eq!(dst.ping(b"x").await, b"x");
    // Then only the STREAM_RESET that ends the closed source's stream.
    let reset = dst.frame().await;
    assert_eq!(reset.kind(), Some(MessageType::StreamReset), "{reset:?}");
    assert_eq!(reset.stream_id, 4);
    let more = tokio::time::timeout(std::time::Duration::from_millis(200), dst.frame()).await;
    assert!(more.is_err(), "the destination received {more:?}");
}

#[tokio::test]
async fn a_new_source_replaces_the_old_one_and_the_destination_gets_stream_reset() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut old = source(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    let mut dst = destination(&tunnel).connect(serve.addr).await;
    assert_eq!(old.service_ids().await, ["SSH"]);
    assert_eq!(dst.service_ids().await, ["SSH"]);
    old.send(&[stream_start("SSH", 7)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 7));

    let mut new = source(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    let closed = old.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (
            1002,
            "Connection replaced by a new connection of the same mode"
        )
    );
    let reset = dst.frame().await;
    assert_eq!(reset.kind(), Some(MessageType::StreamReset), "{reset:?}");
    assert_eq!((reset.stream_id, reset.service_id.as_str()), (7, "SSH"));
    // The new source works.
    assert_eq!(new.service_ids().await, ["SSH"]);
    new.send(&[stream_start("SSH", 8), data("SSH", 8, b"again")])
        .await;
    assert_eq!(dst.frame().await, stream_start("SSH", 8));
    assert_eq!(dst.frame().await, data("SSH", 8, b"again"));
    dst.send(&[data("SSH", 8, b"back")]).await;
    assert_eq!(new.frame().await, data("SSH", 8, b"back"));
}

#[tokio::test]
async fn a_new_destination_replaces_the_old_one_and_the_source_gets_stream_reset() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut src = source(&tunnel).connect(serve.addr).await;
    let mut old = destination(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    assert_eq!(old.service_ids().await, ["SSH"]);
    src.send(&[stream_start("SSH", 11)]).await;
    assert_eq!(old.frame().await, stream_start("SSH", 11));
    let mut new = destination(&tunnel)
        .client_token(CLIENT_TOKEN)
        .connect(serve.addr)
        .await;
    let closed = old.closed().await;
    assert_eq!(closed.code, 1002, "{closed:?}");
    let reset = src.frame().await;
    assert_eq!(reset.kind(), Some(MessageType::StreamReset), "{reset:?}");
    assert_eq!((reset.stream_id, reset.service_id.as_str()), (11, "SSH"));
    assert_eq!(new.service_ids().await, ["SSH"]);
}

#[tokio::test]
async fn a_peer_that_leaves_ends_the_other_sides_streams_with_stream_reset() {
    let serve = Serve::start();
    let (mut src, mut dst, _tunnel) = pair(&serve).await;
    src.send(&[stream_start("SSH", 5)]).await;
    assert_eq!(dst.frame().await, stream_start("SSH", 5));
    dst.close().await;
    let reset = src.frame().await;
    assert_eq!(reset.kind(), Some(MessageType::StreamReset), "{reset:?}");
    assert_eq!((reset.stream_id, reset.service_id.as_str()), (5, "SSH"));
}

#[tokio::test]
async fn close_tunnel_closes_both_peers_with_1000() {
    let serve = Serve::start();
    let (mut src, mut dst, tunnel) = pair(&serve).await;
    serve.close_tunnel(&tunnel.id);
    for peer in [&mut src, &mut dst] {
        let closed = peer.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1000, "Tunnel is closed")
        );
    }
    assert_eq!(serve.describe(&tunnel.id)["status"], "CLOSED");
}

#[tokio::test]
async fn the_lifetime_ends_the_tunnel() {
    // One minute of lifetime runs in one second.
    let serve = Serve::start_with(&["--time-scale", "60"]);
    let tunnel = serve.open_tunnel_with(&serde_json::json!({
        "destinationConfig": { "services": ["SSH"] },
        "timeoutConfig": { "maxLifetimeTimeoutMinutes": 1 },
    }));
    let started = std::time::Instant::now();
    let mut src = source(&tunnel).connect(serve.addr).await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    let closed = src.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "Tunnel is closed")
    );
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(500) && took < std::time::Duration::from_secs(5),
        "closed after {took:?}"
    );
    let described = serve.describe(&tunnel.id);
    assert_eq!(described["status"], "CLOSED", "{described}");
    assert_eq!(described["timeoutConfig"]["maxLifetimeTimeoutMinutes"], 1);
    expect_refusal(&destination(&tunnel), &serve, 400, "Invalid access token").await;
}

#[tokio::test]
async fn shutdown_closes_every_peer_with_1001() {
    let mut serve = Serve::start();
    let (mut src, mut dst, _tunnel) = pair(&serve).await;
    let status = Command::new("kill")
        .args(["-TERM", &serve.proc.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    for peer in [&mut src, &mut dst] {
        let closed = peer.closed().await;
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (1001, "The tunneling service is shutting down")
        );
    }
    let exit = serve.proc.wait_exit(common::WAIT);
    assert!(exit.success(), "burrow serve exited with {exit}");
}

#[tokio::test]
async fn a_stream_start_before_the_destination_attaches_is_dropped_and_logged() {
    let mut serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut src = source(&tunnel).connect(serve.addr).await;
    assert_eq!(src.service_ids().await, ["SSH"]);
    src.send(&[stream_start("SSH", 1), data("SSH", 1, b"lost")])
        .await;
    let line = serve.proc.wait_line("the drop", |l| {
        l.contains("frames dropped: the destination is not connected")
    });
    assert!(
        line.contains("stream_starts=1") && line.contains("frames=2"),
        "{line}"
    );

    // The service keeps nothing for later: the destination sees only what comes after it.
    let mut dst = destination(&tunnel).connect(serve.addr).await;
    assert_eq!(dst.service_ids().await, ["SSH"]);
    src.send(&[stream_start("SSH", 2), data("SSH", 2, b"kept")])
        .await;
    let start = dst.frame().await;
    assert_eq!(start.r#type, MessageType::StreamStart as i32);
    assert_eq!(start.stream_id, 2, "the early STREAM_START was not queued");
    assert_eq!(dst.frame().await.payload, b"kept");
}
