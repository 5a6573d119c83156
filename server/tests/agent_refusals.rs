//! `burrow agent` against refusals of the real `burrow serve`: spent, wrong-mode, unknown and
//! closed-tunnel tokens end the agent with a non-zero status and the service's reason; a 5xx
//! is retried; tokens never reach the logs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{Proc, Serve, agent, wait_connected};

/// How long a refused agent may take to give up (one handshake, maybe one back-off).
const GIVE_UP: Duration = Duration::from_secs(30);

/// Starts an agent and expects it to exit non-zero with every one of `expected` in its output.
fn expect_refusal(mut proc: Proc, expected: &[&str]) -> String {
    let status = proc.wait_exit(GIVE_UP);
    let log = proc.log();
    assert!(!status.success(), "the agent exited with {status}:\n{log}");
    for text in expected {
        assert!(
            log.contains(text),
            "no {text:?} in the agent's output:\n{log}"
        );
    }
    log
}

fn destination(serve: &Serve, token: &str, extra: &[&str]) -> Proc {
    let endpoint = serve.endpoint();
    let mut args = vec![
        "--mode",
        "destination",
        "--endpoint",
        &endpoint,
        "--token",
        token,
        "-d",
        "SSH=127.0.0.1:22",
    ];
    args.extend_from_slice(extra);
    agent("destination agent", &args)
}

#[test]
fn a_spent_token_is_refused_with_the_service_reason() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // A client without a client token spends the token with its handshake.
    assert_eq!(
        serve.handshake_without_client_token("destination", &tunnel.destination_token),
        101
    );
    let log = expect_refusal(
        destination(&serve, &tunnel.destination_token, &[]),
        &[
            "refused the connection (HTTP 400)",
            "Invalid access token: The access token was previously used and can not be used again.",
        ],
    );
    assert!(!log.contains(&tunnel.destination_token), "token in output");
}

#[test]
fn another_client_token_is_refused() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut first = destination(&serve, &tunnel.destination_token, &[]);
    wait_connected(&mut first);
    // The second agent makes up its own client token: the service must refuse it.
    expect_refusal(
        destination(&serve, &tunnel.destination_token, &[]),
        &[
            "HTTP 400",
            "Invalid client token: The provided client token does not match the client token that \
             was previously set.",
        ],
    );
}

#[test]
fn a_token_of_the_other_mode_is_refused() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    expect_refusal(
        destination(&serve, &tunnel.source_token, &[]),
        &[
            "HTTP 400",
            "Invalid access token: the access token is not valid for local-proxy-mode=destination",
        ],
    );
    let endpoint = serve.endpoint();
    expect_refusal(
        agent(
            "source agent",
            &[
                "--mode",
                "source",
                "--endpoint",
                &endpoint,
                "--token",
                &tunnel.destination_token,
                "-s",
                "SSH=0",
            ],
        ),
        &[
            "HTTP 400",
            "Invalid access token: the access token is not valid for local-proxy-mode=source",
        ],
    );
}

#[test]
fn an_unknown_token_is_refused() {
    let serve = Serve::start();
    expect_refusal(
        destination(
            &serve,
            "AQGAAXiVeGX0Ke7eFakeTokenThatTheServiceNeverIssued",
            &[],
        ),
        &["HTTP 400", "Invalid access token"],
    );
}

#[test]
fn a_closed_tunnel_is_refused() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    serve.close_tunnel(&tunnel.id);
    expect_refusal(
        destination(&serve, &tunnel.destination_token, &[]),
        // Closing revokes the tunnel's tokens, as the real service does.
        &["HTTP 400", "Invalid access token"],
    );
}

#[test]
fn closing_the_tunnel_stops_a_connected_agent() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mut proc = destination(&serve, &tunnel.destination_token, &[]);
    wait_connected(&mut proc);
    serve.close_tunnel(&tunnel.id);
    // The service closes the WebSocket (1000 "Tunnel is closed"); the agent's reconnect is then
    // refused for good.
    let log = expect_refusal(proc, &["HTTP 400", "Invalid access token"]);
    assert!(
        log.contains("session ended") && log.contains("(1000) \"Tunnel is closed\""),
        "no session end with 1000 \"Tunnel is closed\" in:\n{log}"
    );
}

#[test]
fn an_untrusted_certificate_is_refused_without_insecure() {
    let serve = Serve::start_with(&["--tls"]);
    let tunnel = serve.open_tunnel(&["SSH"]);
    expect_refusal(
        destination(&serve, &tunnel.destination_token, &[]),
        &["certificate is not trusted", "--insecure"],
    );
}

#[test]
fn tokens_never_reach_the_logs_even_at_trace_level() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let endpoint = serve.endpoint();
    let client_token = "Client-Token-That-Must-Stay-Secret-0123456789";
    let mut cmd = std::process::Command::new(common::burrow_bin());
    cmd.args([
        "agent",
        "--mode",
        "destination",
        "--endpoint",
        &endpoint,
        "-d",
        "SSH=127.0.0.1:22",
        "--client-token",
        client_token,
    ])
    .env("AWSIOT_TUNNEL_ACCESS_TOKEN", &tunnel.destination_token)
    .env("RUST_LOG", "trace")
    .env("NO_COLOR", "1");
    let mut proc = Proc::spawn("destination agent", cmd);
    wait_connected(&mut proc);
    proc.kill();
    let log = proc.log();
    assert!(log.contains("connected to the tunneling service"), "{log}");
    assert!(
        !log.contains(&tunnel.destination_token),
        "access token in the logs"
    );
    assert!(!log.contains(client_token), "client token in the logs");
}

/// A front that answers the first handshake with 503 and relays every later connection.
fn flaky_front(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the front");
    let addr = listener.local_addr().expect("front address");
    std::thread::spawn(move || {
        let mut first = true;
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            if first {
                first = false;
                // Read the request head, then refuse it as an overloaded service would.
                let mut reader = BufReader::new(client.try_clone().expect("clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _gone = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nX-Status-Reason: try again later\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || copy(client, server2));
            std::thread::spawn(move || copy(server, client2));
        }
    });
    addr
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ended = std::io::copy(&mut from, &mut to);
    let _closed = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_5xx_is_retried_with_back_off() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let front = flaky_front(serve.addr);
    let endpoint = format!("ws://{front}");
    let mut proc = agent(
        "destination agent",
        &[
            "--mode",
            "destination",
            "--endpoint",
            &endpoint,
            "--token",
            &tunnel.destination_token,
            "-d",
            "SSH=127.0.0.1:22",
        ],
    );
    proc.wait_line("the 503", |l| {
        l.contains("HTTP 503") && l.contains("try again later") && l.contains("retrying")
    });
    wait_connected(&mut proc);
}
