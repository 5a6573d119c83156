//! A real `burrow serve` under clients that hold connections without finishing requests: slow
//! request heads and bodies, idle keep-alive connections and clients that stop reading are
//! closed within their deadlines (plain and over TLS); past the connection cap new connections
//! are refused at once, logged once, and a real client is served again once slots free up.
//! The deadlines are set short by flag so the tests are quick; the margins are wide.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, TempDir};

/// Far more than any deadline used here: what "never closed" means in these tests.
const PATIENCE: Duration = Duration::from_secs(15);

/// Opens a connection and sends `bytes` (an unfinished request).
fn send_partial(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(bytes).expect("send");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    (stream, Instant::now())
}

/// Reads until the server closes the connection (EOF or reset); returns what arrived and when
/// the connection ended, or `None` if it was still open after [`PATIENCE`].
fn wait_closed(stream: &mut TcpStream, opened: Instant) -> Option<(Vec<u8>, Duration)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while opened.elapsed() < PATIENCE {
        match stream.read(&mut buf) {
            Ok(0) => return Some((got, opened.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some((got, opened.elapsed())),
        }
    }
    None
}

/// A quick `GET /` over a fresh connection: the server still serves real clients.
fn served(serve: &Serve) -> u16 {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        serve.addr
    );
    common::http_exchange(serve.addr, request.as_bytes()).0
}

#[test]
fn slow_heads_and_bodies_are_closed_within_their_deadlines_and_real_clients_are_served() {
    let serve = Serve::start_with(&[
        "--header-timeout",
        "1s",
        "--body-timeout",
        "1s",
        "--idle-timeout",
        "5s",
    ]);
    let head = format!("GET / HTTP/1.1\r\nHost: {}\r\nUser-Agent: slow", serve.addr);
    let body = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: IoTSecuredTunneling.ListTunnels\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n{{\"max",
        serve.addr
    );
    let mut heads: Vec<_> = (0..150)
        .map(|_| send_partial(serve.addr, head.as_bytes()))
        .collect();
    let mut bodies: Vec<_> = (0..20)
        .map(|_| send_partial(serve.addr, body.as_bytes()))
        .collect();

    // With 170 connections hanging, a real client is answered at once.
    let asked = Instant::now();
    assert_eq!(served(&serve), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    for (stream, opened) in &mut heads {
        let (got, after) = wait_closed(stream, *opened).expect("a slow request head is closed");
        assert!(
            after >= Duration::from_millis(800),
            "closed early: {after:?}"
        );
        assert!(after < Duration::from_secs(6), "closed late: {after:?}");
        // hyper answers a request head that timed out with nothing, or with 408.
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text:?}"
        );
    }
    for (stream, opened) in &mut bodies {
        let (got, after) = wait_closed(stream, *opened).expect("a slow body is closed");
        assert!(
            after >= Duration::from_millis(800),
            "closed early: {after:?}"
        );
        assert!(after < Duration::from_secs(6), "closed late: {after:?}");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
        assert!(text.contains("did not arrive within 1 s"), "{text:?}");
    }
    assert_eq!(served(&serve), 200);
}

#[test]
fn idle_keep_alive_connections_and_clients_that_stop_reading_are_closed() {
    let dir = TempDir::new("limits-static");
    std::fs::write(dir.path().join("index.html"), "<!doctype html><p>hi</p>").expect("index");
    // Far more than the socket buffers of both ends hold.
    let big = vec![0x42u8; 48 << 20];
    std::fs::write(dir.path().join("big.bin"), &big).expect("big file");
    let static_dir = dir.path().to_str().expect("utf-8 path");
    let serve = Serve::start_with(&[
        "--static",
        static_dir,
        "--header-timeout",
        "1s",
        "--idle-timeout",
        "1s",
    ]);

    // A keep-alive connection gets its answer, then is closed when no next request comes.
    let request = format!("GET /index.html HTTP/1.1\r\nHost: {}\r\n\r\n", serve.addr);
    let (mut keep, opened) = send_partial(serve.addr, request.as_bytes());
    let (got, after) = wait_closed(&mut keep, opened).expect("an idle keep-alive is closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(text.ends_with("<p>hi</p>"), "{text:?}");
    assert!(after < Duration::from_secs(6), "closed late: {after:?}");

    // A client that asks for a big file and stops reading: the server stops waiting for it.
    let request = format!(
        "GET /big.bin HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        serve.addr
    );
    let (mut stalled, opened) = send_partial(serve.addr, request.as_bytes());
    std::thread::sleep(Duration::from_secs(4));
    let (got, _) = wait_closed(&mut stalled, opened).expect("a stalled reader is closed");
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(
        got.len() < big.len(),
        "the whole file arrived ({} bytes): the connection was never cut",
        got.len()
    );
    assert_eq!(served(&serve), 200);
}

#[test]
fn past_the_connection_cap_new_connections_are_refused_at_once_and_logged_once() {
    let serve = Serve::start_with(&["--max-connections", "8", "--header-timeout", "30s"]);
    let head = format!("GET / HTTP/1.1\r\nHost: {}\r\n", serve.addr);
    let holders: Vec<_> = (0..8)
        .map(|_| send_partial(serve.addr, head.as_bytes()))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    for _ in 0..20 {
        let (mut refused, opened) = send_partial(serve.addr, b"");
        let (got, after) = wait_closed(&mut refused, opened).expect("refused, not held");
        assert!(got.is_empty(), "a refused connection gets no answer");
        assert!(after < Duration::from_secs(2), "refused slowly: {after:?}");
    }
    // Once the holders go, real clients are served again.
    drop(holders);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            serve.addr
        );
        let mut stream = TcpStream::connect(serve.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let _ = stream.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        if answer.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The all-clear counts every refusal of the episode: the burst's 20, and any first tries of
    // the loop above that came before the server had seen the holders go.
    let mut serve = serve;
    serve.proc.wait_line("the all-clear", |l| {
        l.contains("accepting connections again")
            && l.split("refused=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 20)
    });
    // The log is read by a thread of its own, so it is checked once the all-clear, which the
    // server writes after every warning of the episode, has been read.
    let log = serve.proc.log();
    assert_eq!(
        log.matches("connection cap reached").count(),
        1,
        "one warning for the whole burst:\n{log}"
    );
    assert!(log.contains("max_connections=8"), "{log}");
}

#[test]
fn over_tls_slow_heads_are_closed_too_and_their_slots_freed() {
    let serve = Serve::start_with(&["--tls", "--header-timeout", "1s", "--max-connections", "3"]);
    // Three TLS clients (all the slots there are) finish the handshake, send half a request head and wait.
    let mut clients: Vec<_> = (0..3)
        .map(|_| {
            let mut child = Command::new("openssl")
                .args(["s_client", "-quiet", "-connect"])
                .arg(serve.addr.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("openssl s_client runs");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .expect("write");
            (child, stdin, Instant::now())
        })
        .collect();
    for (child, _stdin, started) in &mut clients {
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "a slow TLS client was not closed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The three slots are free again: a real HTTPS client is served.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("https://{}/", serve.addr))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}
