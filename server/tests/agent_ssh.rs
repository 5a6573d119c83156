//! End-to-end tests of `burrow agent` carrying real OpenSSH through the real `burrow serve`:
//! native `ssh`/`scp` → source agent → service → destination agent → `sshd`.
//!
//! They need root (sshd runs as root with its own configuration on a loopback port).

mod common;

use std::time::{Duration, Instant};

use common::{Relay, Serve, Sshd, USER, destination_agent, run, scp, source_agent, ssh};

/// How long one ssh command through the tunnel may take.
const SSH_WAIT: Duration = Duration::from_secs(60);

/// Runs `remote` over ssh through the tunnel and returns its stdout (the command must succeed).
fn ssh_ok(port: u16, key: &std::path::Path, remote: &str) -> String {
    let out = run("ssh", ssh(port, key, remote), SSH_WAIT);
    assert!(
        out.status.success(),
        "ssh {remote:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ssh_runs_a_command_with_every_key_type() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    for key in &sshd.keys {
        let out = ssh_ok(port, key, "echo hello-from-$(whoami); uname -s");
        assert_eq!(
            out,
            format!("hello-from-{USER}\nLinux\n"),
            "with key {}",
            key.display()
        );
    }
}

#[test]
fn ssh_over_wss_to_a_self_signed_service_with_insecure() {
    let sshd = Sshd::start();
    let serve = Serve::start_with(&["--tls"]);
    assert!(serve.tls, "burrow serve --tls did not announce https");
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &["--insecure"]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &["--insecure"]);
    assert_eq!(ssh_ok(port, &sshd.keys[2], "echo over-wss"), "over-wss\n");
}

#[test]
fn three_simultaneous_sessions_share_one_tunnel() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let mut destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    // Each session registers itself, then waits (bounded) until all three are in: only
    // simultaneous connections can all see three.
    let meet = sshd.shared.join("meet");
    std::fs::create_dir(&meet).expect("create the meeting dir");
    common::set_mode(&meet, 0o777);
    let key = sshd.keys[0].clone();
    let sessions: Vec<_> = (1..=3)
        .map(|n| {
            let remote = format!(
                "touch {dir}/here-{n}; i=0; \
                 while [ $(ls {dir} | wc -l) -lt 3 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
                 echo together-{n} $(ls {dir} | wc -l)",
                dir = meet.display()
            );
            let key = key.clone();
            std::thread::spawn(move || ssh_ok(port, &key, &remote))
        })
        .collect();
    for (n, session) in (1..=3).zip(sessions) {
        let out = session.join().expect("ssh thread");
        assert_eq!(out, format!("together-{n} 3\n"));
    }
    // The three sessions were three V3 connections of one stream.
    let log = destination.log();
    let requested = log.matches("connection requested").count();
    assert!(requested >= 3, "destination log:\n{log}");
    destination.wait_line("a third connection in the stream", |l| {
        l.contains("connection requested") && l.contains("connection=3 ")
    });
}

#[test]
fn fifty_megabytes_arrive_intact_both_ways() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    let local = common::TempDir::new("scp");
    let original = local.path().join("original.bin");
    std::fs::write(&original, common::pseudo_random(50 * 1024 * 1024, 0x5eed))
        .expect("write the test file");
    let remote_path = sshd.shared.join("received.bin");
    let key = &sshd.keys[0];

    let started = Instant::now();
    let out = run(
        "scp upload",
        scp(
            port,
            key,
            &original.display().to_string(),
            &format!("{USER}@127.0.0.1:{}", remote_path.display()),
        ),
        Duration::from_secs(300),
    );
    let upload = started.elapsed();
    assert!(
        out.status.success(),
        "scp upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        common::sha256_file(&remote_path),
        common::sha256_file(&original)
    );

    let back = local.path().join("back.bin");
    let started = Instant::now();
    let out = run(
        "scp download",
        scp(
            port,
            key,
            &format!("{USER}@127.0.0.1:{}", remote_path.display()),
            &back.display().to_string(),
        ),
        Duration::from_secs(300),
    );
    let download = started.elapsed();
    assert!(
        out.status.success(),
        "scp download failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(common::sha256_file(&back), common::sha256_file(&original));
    // Throughput is reported, not asserted (benchmarks judge speed).
    let mib = 50.0;
    eprintln!(
        "scp through the tunnel: upload {:.1} MiB/s, download {:.1} MiB/s",
        mib / upload.as_secs_f64(),
        mib / download.as_secs_f64()
    );
}

#[test]
fn killing_sshd_mid_session_resets_the_client() {
    let mut sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    let mut cmd = ssh(port, &sshd.keys[0], "echo session-up; exec sleep 600");
    cmd.env("LC_ALL", "C");
    let mut session = common::Proc::spawn("ssh", cmd);
    session.wait_line("'session-up'", |l| l == "session-up");

    let port_of_sshd = sshd.port;
    sshd.kill_all();
    // The client must learn promptly that its connection is gone instead of hanging.
    let status = session.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "ssh exited with {status}");

    // The tunnel survived: a new sshd on the same port serves new sessions through the same
    // agents.
    let sshd2 = Sshd::start_on(Some(port_of_sshd));
    assert_eq!(ssh_ok(port, &sshd2.keys[0], "echo again"), "again\n");
}

#[test]
fn unreachable_local_service_is_refused_not_hung() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // Nothing listens on this port.
    let closed_port = common::free_port();
    let mapping = format!("SSH=127.0.0.1:{closed_port}");
    let mut destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);

    let key_dir = common::TempDir::new("keys");
    let key = common::keygen(key_dir.path(), "id", "ed25519");
    let out = run("ssh", ssh(port, &key, "true"), SSH_WAIT);
    assert!(!out.status.success(), "ssh unexpectedly succeeded");
    destination.wait_line("a refusal", |l| {
        l.contains("the local service is unreachable")
    });
}

#[test]
fn v1_destination_and_v1_source() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // V1 mappings name no service: the tunnel's only one.
    let mapping = format!("127.0.0.1:{}", sshd.port);
    let destination = destination_agent(&serve, &tunnel, &mapping, &["--format", "V1"]);
    let (mut source, port) = source_agent(&serve, &tunnel, "", &["--format", "V1"]);
    assert!(destination.log().contains("connected (destination, V1"));
    assert!(source.log().contains("connected (source, V1"));

    for round in 0..2 {
        let out = ssh_ok(port, &sshd.keys[1], &format!("echo v1-round-{round}"));
        assert_eq!(out, format!("v1-round-{round}\n"));
    }
    // V1 streams carry no service id and no connection id: one connection per stream.
    source.wait_line("a V1 stream", |l| {
        l.contains("opened a tunnel connection") && l.contains("connection=1")
    });
}

#[test]
fn v2_source_refuses_a_second_simultaneous_connection() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &[]);
    let (mut source, port) = source_agent(&serve, &tunnel, "SSH", &["--format", "V2"]);

    let mut first = common::Proc::spawn(
        "ssh",
        ssh(port, &sshd.keys[0], "echo first-up; exec sleep 600"),
    );
    first.wait_line("'first-up'", |l| l == "first-up");
    let out = run("second ssh", ssh(port, &sshd.keys[0], "true"), SSH_WAIT);
    assert!(
        !out.status.success(),
        "the second V2 connection was carried"
    );
    source.wait_line("the refusal", |l| {
        l.contains("refusing a second simultaneous connection")
    });
    // The first session is unharmed by the refusal.
    drop(first);
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo after"), "after\n");
}

#[test]
fn agents_reconnect_after_a_dropped_websocket() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    // Both agents reach the service through a relay that can drop their WebSockets.
    let relay = Relay::start(serve.addr);
    let endpoint = format!("ws://{}", relay.addr);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let mut destination = common::agent(
        "destination agent",
        &[
            "--mode",
            "destination",
            "--endpoint",
            &endpoint,
            "--token",
            &tunnel.destination_token,
            "-d",
            &mapping,
        ],
    );
    common::wait_connected(&mut destination);
    let mut source = common::agent(
        "source agent",
        &[
            "--mode",
            "source",
            "--endpoint",
            &endpoint,
            "--token",
            &tunnel.source_token,
            "-s",
            "SSH=0",
        ],
    );
    let port = common::wait_listening(&mut source);
    common::wait_connected(&mut source);
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo before"), "before\n");

    relay.cut();
    // Each agent notices, backs off, and reconnects with the same token (its client token
    // makes that legal): a second readiness line each.
    let connected_twice = |l: &str| l.starts_with("burrow agent: connected (");
    for agent in [&mut destination, &mut source] {
        agent.wait_line("the session end", |l| l.contains("session ended"));
        agent.wait_line_nth("a second 'connected'", 2, connected_twice);
    }
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo after"), "after\n");
}

#[test]
fn a_silent_websocket_is_detected_by_pings_and_replaced() {
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let relay = Relay::start(serve.addr);
    let endpoint = format!("ws://{}", relay.addr);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    // One-second pings: three unanswered intervals mean the path is dead.
    let mut destination = common::agent(
        "destination agent",
        &[
            "--mode",
            "destination",
            "--endpoint",
            &endpoint,
            "--token",
            &tunnel.destination_token,
            "-d",
            &mapping,
            "--ping-interval",
            "1",
        ],
    );
    common::wait_connected(&mut destination);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo before"), "before\n");

    // The path goes dead without any TCP signal: only the missing pongs can tell.
    relay.silence();
    destination.wait_line("the silence", |l| {
        l.contains("session ended") && l.contains("nothing heard from the service")
    });
    destination.wait_line_nth("a second 'connected'", 2, |l| {
        l.starts_with("burrow agent: connected (")
    });
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo after"), "after\n");
}

#[test]
fn v3_source_with_a_v1_destination() {
    // The common real-world pairing: a V1 device client behind a tunnel opened by a V3 source.
    let sshd = Sshd::start();
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let mapping = format!("127.0.0.1:{}", sshd.port);
    let _destination = destination_agent(&serve, &tunnel, &mapping, &["--format", "V1"]);
    let (_source, port) = source_agent(&serve, &tunnel, "SSH", &[]);
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo mixed"), "mixed\n");
}
