//! Tunnel notifications end to end, with real components: Debian's `mosquitto` broker (started
//! here on a loopback port, once plain and once with TLS that requires client certificates made
//! by the test), a real `burrow serve --mqtt`, the real `aws` CLI opening and rotating tunnels,
//! `burrow agent --thing` waiting for its tunnels, and real OpenSSH through the tunnel.
//!
//! They need root (sshd runs as root with its own configuration on a loopback port) and
//! `mosquitto`/`mosquitto_pub` on `PATH` (`cargo xtask test` installs them).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::mosquitto::{Broker, source, thing_agent};
use common::{Serve, Sshd, agent, run, ssh};
use serde_json::Value;

/// How long one ssh command through the tunnel may take.
const SSH_WAIT: Duration = Duration::from_secs(60);
/// How long an `aws` call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `aws iotsecuretunneling ARGS…` against `serve` with dummy credentials; must succeed.
fn aws(serve: &Serve, args: &[&str]) -> Value {
    let out = aws_output(serve, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aws {args:?} failed ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("aws {args:?}: {err}: {stdout}"))
}

fn aws_output(serve: &Serve, args: &[&str]) -> Output {
    let cmd = common::aws::cli(
        serve.addr,
        "eu-west-1",
        common::aws::TEST_KEY,
        Path::new("/dev/null"),
        args,
    );
    run("aws", cmd, CLI_TIMEOUT)
}

fn open_for(serve: &Serve, thing: &str) -> (String, String) {
    let out = aws(
        serve,
        &[
            "open-tunnel",
            "--destination-config",
            &format!("thingName={thing},services=SSH"),
        ],
    );
    (
        out["tunnelId"].as_str().expect("tunnelId").to_owned(),
        out["sourceAccessToken"]
            .as_str()
            .expect("sourceAccessToken")
            .to_owned(),
    )
}

fn ssh_ok(port: u16, key: &Path, remote: &str) -> String {
    let out = run("ssh", ssh(port, key, remote), SSH_WAIT);
    assert!(
        out.status.success(),
        "ssh {remote:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_connected(line: &str) -> bool {
    line.starts_with("burrow agent: connected (")
}

#[test]
fn the_agent_gets_its_tokens_by_notification() {
    let sshd = Sshd::start();
    let mut broker = Broker::start();
    let serve = Serve::start_with(&["--mqtt", &broker.url()]);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let mut device = thing_agent(&broker, &serve, "dev-1", &mapping, &[]);

    // Open: the agent connects by itself and ssh reaches sshd.
    let (id, source_token) = open_for(&serve, "dev-1");
    device.wait_line("notified", |l| {
        l == "burrow agent: tunnel #1 notified (services: SSH)"
    });
    device.wait_line("connected", is_connected);
    let (_source, port) = source(&serve, &source_token);
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo first"), "first\n");

    // Rotate the destination token: the agent reconnects with the new one, the old session
    // ends, and ssh works again.
    aws(
        &serve,
        &[
            "rotate-tunnel-access-token",
            "--tunnel-id",
            &id,
            "--client-mode",
            "DESTINATION",
            "--destination-config",
            "thingName=dev-1,services=SSH",
        ],
    );
    device.wait_line("second notification", |l| {
        l.starts_with("burrow agent: tunnel #2 notified")
    });
    device.wait_line_nth("second connection", 2, is_connected);
    device.wait_line("the old session's end", |l| {
        l == "burrow agent: tunnel #1 ended"
    });
    assert_eq!(ssh_ok(port, &sshd.keys[0], "echo rotated"), "rotated\n");

    // A malformed payload and a source-mode payload on the thing's topic: ignored.
    broker.publish("$aws/things/dev-1/tunnels/notify", "{not json");
    broker.publish(
        "$aws/things/dev-1/tunnels/notify",
        r#"{"clientAccessToken":"x","clientMode":"source","region":"eu-west-1","services":["SSH"]}"#,
    );
    device.wait_line_nth("ignored payloads", 2, |l| {
        l.contains("notification ignored")
    });
    assert_eq!(
        ssh_ok(port, &sshd.keys[0], "echo still-serving"),
        "still-serving\n"
    );

    // Close: the session ends and the agent keeps waiting.
    aws(&serve, &["close-tunnel", "--tunnel-id", &id]);
    device.wait_line("the closed tunnel's end", |l| {
        l == "burrow agent: tunnel #2 ended"
    });

    // The broker goes down: opening a tunnel still succeeds (the notification waits in the
    // service), and once the broker is back the agent, reconnected, gets it.
    broker.stop();
    device.wait_line("broker lost", |l| l.contains("MQTT broker lost"));
    let (_, source_token) = open_for(&serve, "dev-1");
    broker.launch();
    device.wait_line_nth("resubscribed", 2, |l| {
        l.starts_with("burrow agent: waiting for tunnels of ")
    });
    device.wait_line("third notification", |l| {
        l.starts_with("burrow agent: tunnel #3 notified")
    });
    device.wait_line_nth("third connection", 3, is_connected);
    assert!(
        serve.proc.log().contains("MQTT broker unreachable"),
        "the service did not warn about the broker:\n{}",
        serve.proc.log()
    );
    let (_source, port) = source(&serve, &source_token);
    assert_eq!(
        ssh_ok(port, &sshd.keys[0], "echo after-restart"),
        "after-restart\n"
    );
    let log = device.log();
    assert!(!log.contains(&source_token), "a token in the agent's log");
    assert!(
        !serve.proc.log().contains(&source_token),
        "a token in the service's log"
    );
}

#[test]
fn notifications_published_while_the_agent_is_away_are_delivered() {
    let broker = Broker::start();
    let serve = Serve::start_with(&["--mqtt", &broker.url()]);
    // Subscribe once (persistent session), then go away.
    let mut first = thing_agent(&broker, &serve, "dev-away", "SSH=127.0.0.1:9", &[]);
    first.kill();
    let (id, _) = open_for(&serve, "dev-away");
    let mut back = thing_agent(&broker, &serve, "dev-away", "SSH=127.0.0.1:9", &[]);
    back.wait_line("the notification sent meanwhile", |l| {
        l.starts_with("burrow agent: tunnel #1 notified")
    });
    back.wait_line("connected", is_connected);
    let described = aws(&serve, &["describe-tunnel", "--tunnel-id", &id]);
    assert_eq!(
        described["tunnel"]["destinationConnectionState"]["status"], "CONNECTED",
        "{described}"
    );
}

#[test]
fn two_things_get_only_their_own_tunnels() {
    let broker = Broker::start();
    let serve = Serve::start_with(&["--mqtt", &broker.url()]);
    let mut a = thing_agent(&broker, &serve, "thing-a", "SSH=127.0.0.1:9", &[]);
    let mut b = thing_agent(&broker, &serve, "thing-b", "SSH=127.0.0.1:9", &[]);
    let (id_a, _) = open_for(&serve, "thing-a");
    a.wait_line("a's tunnel", |l| {
        l.starts_with("burrow agent: tunnel #1 notified")
    });
    a.wait_line("a connected", is_connected);
    let (id_b, _) = open_for(&serve, "thing-b");
    b.wait_line("b's tunnel", |l| {
        l.starts_with("burrow agent: tunnel #1 notified")
    });
    b.wait_line("b connected", is_connected);
    // Each got exactly one: its own.
    assert!(
        !a.log().contains("tunnel #2"),
        "a got b's tunnel:\n{}",
        a.log()
    );
    assert!(
        !b.log().contains("tunnel #2"),
        "b got a's tunnel:\n{}",
        b.log()
    );
    for id in [id_a, id_b] {
        let d = aws(&serve, &["describe-tunnel", "--tunnel-id", &id]);
        assert_eq!(
            d["tunnel"]["destinationConnectionState"]["status"],
            "CONNECTED"
        );
    }
}

#[test]
fn mqtts_with_client_certificates() {
    let sshd = Sshd::start();
    let broker = Broker::start_tls();
    let flags = broker.client_flags();
    let mut serve_args: Vec<String> = vec!["--mqtt".into(), broker.url()];
    serve_args.extend(flags.iter().cloned());
    let serve_args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let serve = Serve::start_with(&serve_args);
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let mut device = thing_agent(&broker, &serve, "dev-tls", &mapping, &flags);

    // A client without a certificate is refused by the broker, and the agent says so.
    let pki = broker.tls.as_ref().expect("TLS broker");
    let url = broker.url();
    let endpoint = serve.endpoint();
    let ca = pki.ca.display().to_string();
    let mut anonymous = agent(
        "agent without a certificate",
        &[
            "--mode",
            "destination",
            "--thing",
            "dev-anon",
            "--mqtt",
            &url,
            "--mqtt-ca",
            &ca,
            "--endpoint",
            &endpoint,
        ],
    );
    anonymous.wait_line("the refusal", |l| l.contains("MQTT broker lost"));
    assert!(!anonymous.log().contains("waiting for tunnels of"));
    anonymous.kill();

    let (_, source_token) = open_for(&serve, "dev-tls");
    device.wait_line("notified", |l| {
        l.starts_with("burrow agent: tunnel #1 notified")
    });
    device.wait_line("connected", is_connected);
    let (_source, port) = source(&serve, &source_token);
    assert_eq!(
        ssh_ok(port, &sshd.keys[0], "echo over-mqtts"),
        "over-mqtts\n"
    );
}
