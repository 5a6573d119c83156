//! The page's tunnel API (`POST /api/tunnels/…`, docs/tunnel-api.md) with real components.
//!
//! Emulator mode: a real `burrow serve --mqtt` on Debian's `mosquitto`, `burrow agent --thing`
//! getting its tokens by notification, and real OpenSSH through the tunnel; the same-origin
//! refusals. Relay mode: off without `--tunnel-api`, the operator header and `--allow-thing`,
//! and the whole flow against a second `burrow serve --verify-sigv4` standing in for AWS, which
//! proves the SigV4 signing with the relay's credentials end to end.
//!
//! The emulator flow needs root (sshd) and `mosquitto` on `PATH` (`cargo xtask test` installs
//! them).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::mosquitto::{Broker, source, thing_agent};
use common::{Serve, Sshd, WAIT, http_exchange, run, ssh};
use serde_json::{Value, json};

/// The header the tests' "authenticating proxy" sets.
const OPERATOR: &str = "X-Forwarded-Email";

/// One API call's answer.
struct Answer {
    status: u16,
    headers: Vec<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// `POST /api/tunnels/OP` with these headers (add `Origin`, `Content-Type` yourself).
fn raw(addr: SocketAddr, method: &str, op: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = format!(
        "{method} /api/tunnels/{op} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let (status, headers, bytes) = http_exchange(addr, request.as_bytes());
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "{op}: not JSON ({err}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        body,
    }
}

/// A same-origin call as the page makes it, with extra headers.
fn call_as(serve: &Serve, op: &str, extra: &[(&str, &str)], body: &Value) -> Answer {
    let origin = format!("http://{}", serve.addr);
    let mut headers = vec![
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    raw(serve.addr, "POST", op, &headers, &body.to_string())
}

fn call(serve: &Serve, op: &str, body: &Value) -> Answer {
    call_as(serve, op, &[], body)
}

/// A call that must succeed.
fn ok(serve: &Serve, op: &str, extra: &[(&str, &str)], body: &Value) -> Value {
    let answer = call_as(serve, op, extra, body);
    assert_eq!(
        answer.status,
        200,
        "{op} {body} failed: {}\n{}",
        answer.body,
        serve.proc.log()
    );
    answer.body
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

/// Describes until `pred` holds for the tunnel.
fn describe_until(serve: &Serve, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let tunnel = ok(serve, "describe", &[], &json!({ "tunnelId": id }))["tunnel"].clone();
        if pred(&tunnel) {
            return tunnel;
        }
        assert!(Instant::now() < deadline, "never {what}: {tunnel}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ssh_ok(port: u16, key: &Path) {
    let out = run(
        "ssh",
        ssh(port, key, "echo through-the-api"),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("through-the-api"),
        "ssh failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_no_token(log: &str, tokens: &[&str]) {
    for token in tokens {
        assert!(!log.contains(token), "a token is in the log:\n{log}");
    }
}

#[test]
fn emulator_mode_opens_watches_rotates_and_closes_with_the_device_notified() {
    let sshd = Sshd::start();
    let broker = Broker::start();
    let serve = Serve::start_with(&["--mqtt", &broker.url()]);

    // Open before the device listens: it is not connected.
    let opened = ok(&serve, "open", &[], &json!({ "thingName": "pump-7" }));
    let id = text(&opened, "tunnelId").to_owned();
    let first_source = text(&opened, "sourceAccessToken").to_owned();
    assert!(
        opened.get("destinationAccessToken").is_none(),
        "the page must never get the destination token: {opened}"
    );
    assert_eq!(opened["region"], "us-east-1");
    assert!(text(&opened, "tunnelArn").ends_with(&id));
    let tunnel = ok(&serve, "describe", &[], &json!({ "tunnelId": id }))["tunnel"].clone();
    assert_eq!(tunnel["status"], "OPEN");
    assert_eq!(tunnel["thingName"], "pump-7");
    assert_eq!(tunnel["services"], json!(["SSH"]));
    assert_eq!(tunnel["destinationConnected"], false);
    assert_eq!(tunnel["sourceConnected"], false);
    let life = tunnel["expiresAt"].as_f64().expect("expiresAt")
        - tunnel["createdAt"].as_f64().expect("createdAt");
    assert!((life - 43_200.0).abs() < 1.0, "{tunnel}");

    // ALL ("send new access tokens"): the waiting device gets its token by notification.
    let mapping = format!("SSH=127.0.0.1:{}", sshd.port);
    let mut device = thing_agent(&broker, &serve, "pump-7", &mapping, &[]);
    let rotated = ok(
        &serve,
        "rotate",
        &[],
        &json!({ "tunnelId": id, "clientMode": "ALL" }),
    );
    assert!(rotated.get("destinationAccessToken").is_none(), "{rotated}");
    let all_source = text(&rotated, "sourceAccessToken").to_owned();
    assert_ne!(all_source, first_source);
    device.wait_line("'connected'", |l| {
        l.starts_with("burrow agent: connected (")
    });
    describe_until(&serve, &id, "destination connected", |t| {
        t["destinationConnected"] == true
    });
    let (mut page, port) = source(&serve, &all_source);
    ssh_ok(port, &sshd.keys[0]);
    page.kill();

    // SOURCE: a new page rejoins with its own token; the device stays.
    let rejoin = ok(
        &serve,
        "rotate",
        &[],
        &json!({ "tunnelId": id, "clientMode": "SOURCE" }),
    );
    let new_source = text(&rejoin, "sourceAccessToken").to_owned();
    let (mut page, port) = source(&serve, &new_source);
    ssh_ok(port, &sshd.keys[0]);
    page.kill();

    // List: open tunnels first, newest first, per thing on request.
    let other = ok(&serve, "open", &[], &json!({ "thingName": "pump-8" }));
    let other_id = text(&other, "tunnelId").to_owned();
    ok(&serve, "close", &[], &json!({ "tunnelId": other_id }));
    let listed = ok(&serve, "list", &[], &json!({}));
    let ids: Vec<&str> = listed["tunnels"]
        .as_array()
        .expect("tunnels")
        .iter()
        .map(|t| text(t, "tunnelId"))
        .collect();
    assert_eq!(ids, [id.as_str(), other_id.as_str()], "{listed}");
    let mine = ok(&serve, "list", &[], &json!({ "thingName": "pump-8" }));
    assert_eq!(mine["tunnels"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine["tunnels"][0]["status"], "CLOSED");

    // Close: CLOSED, the device's session ends, and a rotation is refused.
    assert_eq!(
        ok(&serve, "close", &[], &json!({ "tunnelId": id })),
        json!({})
    );
    let closed = describe_until(&serve, &id, "closed", |t| t["status"] == "CLOSED");
    assert_eq!(closed["destinationConnected"], false, "{closed}");
    let refused = call(
        &serve,
        "rotate",
        &json!({ "tunnelId": id, "clientMode": "SOURCE" }),
    );
    assert_eq!((refused.status, refused.code()), (409, "TunnelClosed"));
    let unknown = call(&serve, "describe", &json!({ "tunnelId": "no-such-tunnel" }));
    assert_eq!((unknown.status, unknown.code()), (404, "NotFound"));

    // One audit line per call, with the thing and tunnel, never a token.
    let log = serve.proc.log();
    assert!(
        log.contains(&format!(
            "tunnel-api operator=- op=open thing=pump-7 tunnel={id} result=ok"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "tunnel-api operator=- op=rotate thing=pump-7 tunnel={id} result=TunnelClosed"
        )),
        "{log}"
    );
    for (op, calls) in [("open", 2), ("rotate", 3), ("close", 2), ("list", 2)] {
        let lines = log
            .matches(&format!("tunnel-api operator=- op={op} "))
            .count();
        assert_eq!(lines, calls, "audit lines of {op}:\n{log}");
    }
    assert_no_token(&log, &[&first_source, &all_source, &new_source]);
}

#[test]
fn the_api_serves_only_its_own_origin_and_json() {
    let serve = Serve::start();
    let own = format!("http://{}", serve.addr);
    let body = r#"{"thingName":"pump-7"}"#;
    let json_type = ("Content-Type", "application/json");

    let no_origin = raw(serve.addr, "POST", "open", &[json_type], body);
    assert_eq!((no_origin.status, no_origin.code()), (403, "Forbidden"));
    let foreign = raw(
        serve.addr,
        "POST",
        "open",
        &[("Origin", "http://evil.example"), json_type],
        body,
    );
    assert_eq!((foreign.status, foreign.code()), (403, "Forbidden"));
    // A form post (the one kind a foreign page may send without a preflight) is refused.
    let form = raw(
        serve.addr,
        "POST",
        "open",
        &[("Origin", &own), ("Content-Type", "text/plain")],
        body,
    );
    assert_eq!((form.status, form.code()), (415, "UnsupportedMediaType"));
    let preflight = raw(
        serve.addr,
        "OPTIONS",
        "open",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_ne!(preflight.status, 200);
    for answer in [&no_origin, &foreign, &form, &preflight] {
        assert!(
            !answer
                .headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("access-control-")),
            "a CORS header: {:?}",
            answer.headers
        );
    }

    let bad_json = raw(
        serve.addr,
        "POST",
        "open",
        &[("Origin", &own), json_type],
        "{",
    );
    assert_eq!((bad_json.status, bad_json.code()), (400, "BadRequest"));
    let bad_thing = call(&serve, "open", &json!({ "thingName": "a/b" }));
    assert_eq!((bad_thing.status, bad_thing.code()), (400, "BadRequest"));
    let bad_mode = call(
        &serve,
        "rotate",
        &json!({ "tunnelId": "x", "clientMode": "DESTINATION" }),
    );
    assert_eq!((bad_mode.status, bad_mode.code()), (400, "BadRequest"));
    let no_such_op = call(&serve, "delete", &json!({}));
    assert_eq!((no_such_op.status, no_such_op.code()), (404, "NotFound"));
    // Nothing was opened by any of them.
    let listed = ok(&serve, "list", &[], &json!({}));
    assert_eq!(listed["tunnels"], json!([]), "{listed}");
    let ok_answer = call(&serve, "list", &json!({}));
    assert!(
        ok_answer
            .headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("cache-control: no-store")),
        "{:?}",
        ok_answer.headers
    );
}

#[test]
fn relay_mode_has_no_api_without_tunnel_api() {
    let upstream = Serve::start();
    let relay = Serve::start_with(&["--upstream", &upstream.endpoint()]);
    for op in ["open", "list", "describe", "rotate", "close", "anything"] {
        let answer = call(&relay, op, &json!({ "thingName": "pump-7" }));
        assert_eq!((answer.status, answer.code()), (404, "ApiOff"), "{op}");
        let bare = raw(relay.addr, "POST", op, &[], "");
        assert_eq!((bare.status, bare.code()), (404, "ApiOff"), "{op}");
    }
}

/// The environment of a relay whose AWS credentials are `key` and nothing else of the machine.
fn relay_env((id, secret): (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", id),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_PROFILE", ""),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]
}

fn relay_to(aws: &Serve, key: (&'static str, &'static str)) -> Serve {
    let endpoint = format!("http://{}", aws.addr);
    Serve::start_with_env(
        &[
            "--upstream",
            &aws.endpoint(),
            "--tunnel-api",
            "--control-plane-endpoint",
            &endpoint,
            "--region",
            "eu-west-1",
            "--operator-header",
            OPERATOR,
            "--allow-thing",
            "pump-*",
            "--allow-thing",
            "gw-?",
        ],
        &relay_env(key),
    )
}

#[test]
fn relay_mode_calls_the_control_plane_signed_with_its_own_credentials() {
    let (id_key, secret) = common::aws::TEST_KEY;
    let aws = Serve::start_with_env(
        &["--verify-sigv4"],
        &[
            ("AWS_ACCESS_KEY_ID", id_key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    let relay = relay_to(&aws, common::aws::TEST_KEY);
    let alice = [(OPERATOR, "alice@example.com")];
    // The stand-in AWS checks signatures, so its own page API (which checks none) is off.
    let bypass = call(&aws, "open", &json!({ "thingName": "pump-7" }));
    assert_eq!((bypass.status, bypass.code()), (404, "ApiOff"));

    // Without the proxy's identity: 401; a thing outside --allow-thing: 403.
    let anonymous = call(&relay, "list", &json!({}));
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "Unauthenticated")
    );
    let valve = call_as(&relay, "open", &alice, &json!({ "thingName": "valve-1" }));
    assert_eq!((valve.status, valve.code()), (403, "ThingNotAllowed"));
    let gw = call_as(&relay, "open", &alice, &json!({ "thingName": "gw-12" }));
    assert_eq!((gw.status, gw.code()), (403, "ThingNotAllowed"));

    // The whole flow, through the "AWS" that checks every signature.
    let opened = ok(
        &relay,
        "open",
        &alice,
        &json!({ "thingName": "pump-7", "timeoutMinutes": 30 }),
    );
    let id = text(&opened, "tunnelId").to_owned();
    let token = text(&opened, "sourceAccessToken").to_owned();
    assert!(opened.get("destinationAccessToken").is_none(), "{opened}");
    assert_eq!(opened["region"], "eu-west-1");
    assert!(
        text(&opened, "tunnelArn").starts_with("arn:aws:iot:eu-west-1:"),
        "the signature's region reached the control plane: {opened}"
    );
    let tunnel = ok(&relay, "describe", &alice, &json!({ "tunnelId": id }))["tunnel"].clone();
    assert_eq!(tunnel["status"], "OPEN");
    assert_eq!(tunnel["thingName"], "pump-7");
    assert_eq!(tunnel["destinationConnected"], false);
    let life =
        tunnel["expiresAt"].as_f64().unwrap_or(0.0) - tunnel["createdAt"].as_f64().unwrap_or(0.0);
    assert!((life - 1800.0).abs() < 1.0, "{tunnel}");
    // A tunnel of another thing, opened on "AWS" directly, is not this relay's to show.
    let foreign = aws::open_elsewhere(&aws, "valve-1");
    let listed = ok(&relay, "list", &alice, &json!({}));
    let ids: Vec<&str> = listed["tunnels"]
        .as_array()
        .expect("tunnels")
        .iter()
        .map(|t| text(t, "tunnelId"))
        .collect();
    assert_eq!(ids, [id.as_str()], "{listed}");
    let hidden = call_as(&relay, "close", &alice, &json!({ "tunnelId": foreign }));
    assert_eq!((hidden.status, hidden.code()), (403, "ThingNotAllowed"));
    let source = ok(
        &relay,
        "rotate",
        &alice,
        &json!({ "tunnelId": id, "clientMode": "SOURCE" }),
    );
    let all = ok(
        &relay,
        "rotate",
        &alice,
        &json!({ "tunnelId": id, "clientMode": "ALL" }),
    );
    let rotated = [
        text(&source, "sourceAccessToken"),
        text(&all, "sourceAccessToken"),
    ];
    assert_ne!(rotated[0], rotated[1]);
    ok(&relay, "close", &alice, &json!({ "tunnelId": id }));
    let closed = ok(&relay, "describe", &alice, &json!({ "tunnelId": id }))["tunnel"].clone();
    assert_eq!(closed["status"], "CLOSED");
    let missing = call_as(
        &relay,
        "describe",
        &alice,
        &json!({ "tunnelId": "no-such-tunnel" }),
    );
    assert_eq!((missing.status, missing.code()), (404, "NotFound"));

    // The audit log names the operator, never a token; the upstream saw only signed calls.
    let log = relay.proc.log();
    assert!(
        log.contains(&format!(
            "tunnel-api operator=alice@example.com op=open thing=pump-7 tunnel={id} result=ok"
        )),
        "{log}"
    );
    assert!(
        log.contains("tunnel-api operator=- op=list thing=- tunnel=- result=Unauthenticated"),
        "{log}"
    );
    assert!(
        log.contains("tunnel-api operator=alice@example.com op=open thing=valve-1 tunnel=- result=ThingNotAllowed"),
        "{log}"
    );
    assert_no_token(&log, &[&token, rotated[0], rotated[1]]);
    let upstream = aws.proc.log();
    for refusal in [
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
    ] {
        assert!(!upstream.contains(refusal), "{upstream}");
    }

    // A relay with a wrong secret is refused by the upstream's signature check: 502 with AWS's
    // reason, so the signing above was checked for real.
    let wrong = relay_to(&aws, (id_key, "not-the-secret-key-at-all-000000000000"));
    let refused = call_as(&wrong, "open", &alice, &json!({ "thingName": "pump-7" }));
    assert_eq!(
        (refused.status, refused.code()),
        (502, "Upstream"),
        "{}",
        refused.body
    );
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("InvalidSignatureException")),
        "{}",
        refused.body
    );
}

/// The "AWS" side, driven directly.
mod aws {
    use super::*;

    /// Opens a tunnel to `thing` on the upstream itself (with the key it requires), as another
    /// operator would elsewhere; returns its id.
    pub fn open_elsewhere(aws: &Serve, thing: &str) -> String {
        let cmd = common::aws::cli(
            aws.addr,
            "eu-west-1",
            common::aws::TEST_KEY,
            Path::new("/dev/null"),
            &[
                "open-tunnel",
                "--destination-config",
                &format!("thingName={thing},services=SSH"),
            ],
        );
        let out = run("aws", cmd, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "aws open-tunnel failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).expect("aws answered JSON");
        text(&value, "tunnelId").to_owned()
    }
}
