//! Relay mode: a second `burrow serve --upstream ws://…` in front of a real `burrow serve` in
//! emulator mode. A page sets its token through the relay's cookie helper (two cookies: the
//! token and a client token), opens `/tunnel` on the relay with them, and reaches a destination
//! agent and a TCP echo server behind the emulator; it can reconnect with the same cookies.
//! A source agent (header token) works through the relay too. What goes upstream is recorded
//! by a small TCP forwarder: exactly one token, as a header, the client token, no cookie.
//! Upstream refusals reach the page as the same 4xx and reason; an unreachable upstream as 502.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::ws::{Peer, Upgrade, data, exchange, stream_start};
use common::{Serve, Tunnel, destination_agent, source_agent};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The real service's words for a reused token.
const SPENT: &str =
    "Invalid access token: The access token was previously used and can not be used again.";

/// A TCP echo server on a loopback port.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TCP forwarder to `upstream` that records each connection's request head.
async fn recording_forwarder(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind forwarder");
    let addr = listener.local_addr().expect("forwarder address");
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&heads);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                record
                    .lock()
                    .expect("heads lock")
                    .push(String::from_utf8_lossy(&head).into_owned());
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, heads)
}

/// The header lines named `name` in a request head.
fn header_lines<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// `POST /cookie` on the relay from its own origin; returns the `name=value` pairs.
fn relay_cookies(relay: &Serve, token: &str) -> Vec<String> {
    let origin = format!("http://127.0.0.1:{}", relay.addr.port());
    let body = serde_json::json!({ "token": token }).to_string();
    let request = format!(
        "POST /cookie HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        relay.addr,
        body.len()
    );
    let (status, headers, body) = common::http_exchange(relay.addr, request.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("cookie JSON");
    assert_eq!(json["maxAge"], 43_200);
    assert_eq!(json["reconnectable"], true);
    assert!(
        json["tunnelId"].is_null(),
        "the relay cannot know the tunnel"
    );
    let cookies: Vec<String> = headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(
            cookie.ends_with("; Path=/tunnel; Max-Age=43200; HttpOnly; SameSite=Strict"),
            "{cookie}"
        );
    }
    assert_eq!(
        cookies[0].split(';').next(),
        Some(format!("awsiot-tunnel-token={token}").as_str())
    );
    let client_token = cookies[1]
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("awsiot-tunnel-client-token="))
        .unwrap_or_else(|| panic!("no client token cookie in {cookies:?}"));
    assert!(
        (32..=128).contains(&client_token.len())
            && client_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "{client_token}"
    );
    cookies
        .iter()
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect()
}

/// The page's upgrade on the relay: its own origin, the two cookies.
fn page_upgrade(relay: &Serve, cookies: &[String]) -> Upgrade {
    Upgrade::tunnel("source")
        .header("origin", &format!("http://127.0.0.1:{}", relay.addr.port()))
        .header("cookie", &cookies.join("; "))
}

/// Starts a stream on the page, sends `payload` in DATA frames and expects it back from the
/// echo server.
async fn echo_through(page: &mut Peer, stream_id: i32, payload: &[u8]) {
    page.send(&[stream_start("SSH", stream_id)]).await;
    for chunk in payload.chunks(60_000) {
        page.send(&[data("SSH", stream_id, chunk)]).await;
    }
    let mut echoed = Vec::new();
    while echoed.len() < payload.len() {
        let frame = page.frame().await;
        assert_eq!(
            (frame.kind(), frame.stream_id),
            (Some(burrow_proto::MessageType::Data), stream_id),
            "{frame:?}"
        );
        echoed.extend_from_slice(&frame.payload);
    }
    assert_eq!(echoed, payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_reaches_the_emulator_through_the_relay_and_can_reconnect() {
    let emulator = Serve::start();
    let (upstream, heads) = recording_forwarder(emulator.addr).await;
    let relay = Serve::start_with(&["--upstream", &format!("ws://{upstream}")]);
    let echo = echo_server().await;
    let tunnel = emulator.open_tunnel(&["SSH"]);
    let _device = destination_agent(&emulator, &tunnel, &format!("SSH={echo}"), &[]);

    let cookies = relay_cookies(&relay, &tunnel.source_token);
    let mut page = page_upgrade(&relay, &cookies).connect(relay.addr).await;
    assert_eq!(
        page.head.header("sec-websocket-protocol"),
        Some(common::ws::V3)
    );
    assert!(page.head.header("channel-id").is_some());
    assert_eq!(page.service_ids().await, ["SSH"]);
    let payload = common::pseudo_random(100_000, 3);
    echo_through(&mut page, 1, &payload).await;
    assert_eq!(
        emulator.describe(&tunnel.id)["sourceConnectionState"]["status"],
        "CONNECTED"
    );

    // Upstream got exactly one token, as a header, the client token, and no cookie.
    let head = heads.lock().expect("heads lock")[0].clone();
    assert!(
        head.starts_with("GET /tunnel?local-proxy-mode=source HTTP/1.1\r\n"),
        "{head}"
    );
    assert_eq!(
        header_lines(&head, "access-token"),
        [tunnel.source_token.as_str()]
    );
    let client_token = cookies[1].trim_start_matches("awsiot-tunnel-client-token=");
    assert_eq!(header_lines(&head, "client-token"), [client_token]);
    assert!(header_lines(&head, "cookie").is_empty(), "{head}");
    assert!(header_lines(&head, "origin").is_empty(), "{head}");
    assert!(
        header_lines(&head, "sec-websocket-protocol")
            .first()
            .is_some_and(|p| p.contains(common::ws::V3)),
        "{head}"
    );

    // The page drops and comes back with the same cookies: the client token lets it in.
    page.close().await;
    let mut page = page_upgrade(&relay, &cookies).connect(relay.addr).await;
    assert_eq!(page.service_ids().await, ["SSH"]);
    echo_through(&mut page, 2, b"after the reconnect").await;
    // The relay's own rule: no text messages.
    page.send_message(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await;
    let closed = page.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1003, "text messages are not allowed")
    );

    // The emulator's close frame reaches the page unchanged.
    let mut page = page_upgrade(&relay, &cookies).connect(relay.addr).await;
    assert_eq!(page.service_ids().await, ["SSH"]);
    emulator.close_tunnel(&tunnel.id);
    let closed = page.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (1000, "Tunnel is closed")
    );
    // Now the upstream refuses the token; the page learns it from the handshake.
    let refused = page_upgrade(&relay, &cookies).refused(relay.addr).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.header("x-status-reason"),
        Some("Invalid access token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_agent_with_a_header_token_works_through_the_relay() {
    let emulator = Serve::start();
    let relay = Serve::start_with(&["--upstream", &emulator.endpoint()]);
    let echo = echo_server().await;
    let tunnel = emulator.open_tunnel(&["SSH"]);
    let _device = destination_agent(&emulator, &tunnel, &format!("SSH={echo}"), &[]);
    let (_operator, port) = source_agent(&relay, &tunnel, "SSH", &[]);
    let payload = common::pseudo_random(300_000, 11);
    let sent = payload.clone();
    let echoed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(common::WAIT))
            .expect("read timeout");
        let mut reader = stream.try_clone().expect("clone the stream");
        let writer = std::thread::spawn(move || stream.write_all(&sent).expect("write"));
        let mut echoed = vec![0u8; payload.len()];
        reader.read_exact(&mut echoed).expect("read the echo");
        writer.join().expect("writer");
        echoed
    })
    .await
    .expect("the TCP client");
    assert_eq!(echoed, common::pseudo_random(300_000, 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusals_reach_the_page_as_the_same_4xx() {
    let emulator = Serve::start();
    let relay = Serve::start_with(&["--upstream", &emulator.endpoint()]);
    let tunnel: Tunnel = emulator.open_tunnel(&["SSH"]);
    // Someone used the source token without a client token: it is spent upstream.
    assert_eq!(
        emulator.handshake_without_client_token("source", &tunnel.source_token),
        101
    );
    let cookies = relay_cookies(&relay, &tunnel.source_token);
    let refused = page_upgrade(&relay, &cookies).refused(relay.addr).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.body, SPENT);
    assert_eq!(refused.header("x-status-reason"), Some(SPENT));
    assert!(refused.header("channel-id").is_some());
    // A wrong-mode token: the emulator's reason, passed on.
    let refused = Upgrade::tunnel("source")
        .token(&tunnel.destination_token)
        .refused(relay.addr)
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        "Invalid access token: the access token is not valid for local-proxy-mode=source"
    );
    // The relay's own handshake rules still apply before anything goes upstream.
    let refused = Upgrade::tunnel("source")
        .token(&tunnel.destination_token)
        .header("origin", "http://evil.example")
        .refused(relay.addr)
        .await;
    assert_eq!(refused.status, 403);

    // The relay has no control plane, and its probe cannot judge tokens.
    let (status, body) = relay.call("OpenTunnel", "{}");
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    let probe = format!(
        "GET /tunnel/status?local-proxy-mode=source HTTP/1.1\r\nHost: {}\r\n\
         Cookie: {}\r\n\r\n",
        relay.addr, cookies[0]
    );
    let head = exchange(relay.addr, probe.into_bytes()).await;
    assert!(head.body.contains("\"status\":\"unknown\""), "{head:?}");

    // An unreachable upstream is a 502 (worth retrying), not a 4xx.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("address");
    drop(dead);
    let lonely = Serve::start_with(&["--upstream", &format!("ws://{dead_addr}")]);
    let refused = Upgrade::tunnel("source")
        .token(&tunnel.source_token)
        .refused(lonely.addr)
        .await;
    assert_eq!(refused.status, 502, "{refused:?}");
    assert!(
        refused
            .body
            .starts_with("Bad gateway: the upstream tunneling service is unreachable"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn relay_handshakes_are_rate_limited_per_client_address() {
    // An upstream that refuses every connection: each allowed handshake costs a dial and a 502.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let upstream = format!("ws://127.0.0.1:{port}");
    let serve = Serve::start_with(&[
        "--upstream",
        &upstream,
        "--relay-handshakes-per-minute",
        "3",
    ]);
    let upgrade = Upgrade::tunnel("source").token("any-token-at-all");
    for _ in 0..3 {
        let head = upgrade.refused(serve.addr).await;
        assert_eq!(head.status, 502, "{}", head.body);
    }
    for _ in 0..5 {
        let head = upgrade.refused(serve.addr).await;
        assert_eq!(head.status, 429, "{}", head.body);
        assert!(
            head.body.contains("at most 3 handshakes a minute"),
            "{}",
            head.body
        );
        let retry: u64 = head
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=20).contains(&retry), "{retry}");
    }
    // The log is read by a thread of its own: wait for the third dial's line before counting.
    let mut serve = serve;
    serve
        .proc
        .wait_line_nth("the third dial", 3, |l| l.contains("upstream unreachable"));
    let log = serve.proc.log();
    assert_eq!(
        log.matches("upstream unreachable").count(),
        3,
        "only 3 dials:\n{log}"
    );
}
