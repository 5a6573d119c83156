//! The control plane of a real `burrow serve`, driven by the real `aws` CLI
//! (`aws iotsecuretunneling --endpoint-url http://ADDR …`) with dummy credentials: open, describe
//! (connection states as agents come and go), list, rotate (old tokens refused), close (connected
//! agents disconnected; `--delete` forgets the tunnel), and AWS-shaped errors.
//!
//! The CLI is whichever `aws` is on `PATH` (version 1 from pip or version 2 from Debian; their
//! output differs only in how timestamps are printed, which the tests do not depend on). Retries
//! are off, so an error answer is one request.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Serve, TempDir, Tunnel, destination_agent};
use serde_json::Value;

/// How long one CLI call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The AWS CLI pointed at one `burrow serve`.
struct Aws<'a> {
    serve: &'a Serve,
    region: &'a str,
    /// A config file, when the test needs one (e.g. to turn client-side validation off).
    config: Option<std::path::PathBuf>,
}

impl<'a> Aws<'a> {
    fn new(serve: &'a Serve) -> Self {
        Aws {
            serve,
            region: "us-east-1",
            config: None,
        }
    }

    /// Runs `aws iotsecuretunneling ARGS…` and returns its output, whatever the exit status.
    fn output(&self, args: &[&str]) -> Output {
        let config = self
            .config
            .as_deref()
            .unwrap_or(std::path::Path::new("/dev/null"));
        let cmd = common::aws::cli(
            self.serve.addr,
            self.region,
            common::aws::TEST_KEY,
            config,
            args,
        );
        common::run("aws", cmd, CLI_TIMEOUT)
    }

    /// Runs a call that must succeed and returns its JSON output (`{}` when it prints nothing).
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.output(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "aws {args:?} failed ({}):\n{}\n{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if stdout.trim().is_empty() {
            return Value::Object(serde_json::Map::new());
        }
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("aws {args:?}: {err}: {stdout}"))
    }

    /// Runs a call that must fail and returns its error output.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "aws {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    fn describe(&self, id: &str) -> Value {
        self.ok(&["describe-tunnel", "--tunnel-id", id])["tunnel"].clone()
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

fn tunnel_of(opened: &Value) -> Tunnel {
    Tunnel {
        id: text(&opened["tunnelId"]),
        source_token: text(&opened["sourceAccessToken"]),
        destination_token: text(&opened["destinationAccessToken"]),
    }
}

#[test]
fn the_cli_opens_describes_lists_and_closes_a_tunnel() {
    let serve = Serve::start();
    let aws = Aws::new(&serve);
    let opened = aws.ok(&[
        "open-tunnel",
        "--description",
        "burrow test tunnel",
        "--destination-config",
        "services=SSH,thingName=burrow-test-thing",
        "--timeout-config",
        "maxLifetimeTimeoutMinutes=30",
    ]);
    let tunnel = tunnel_of(&opened);
    assert_eq!(
        text(&opened["tunnelArn"]),
        format!("arn:aws:iot:us-east-1:123456789012:tunnel/{}", tunnel.id)
    );
    assert_ne!(tunnel.source_token, tunnel.destination_token);

    let fresh = aws.describe(&tunnel.id);
    assert_eq!(fresh["tunnelId"], tunnel.id.as_str());
    assert_eq!(fresh["status"], "OPEN");
    assert_eq!(fresh["description"], "burrow test tunnel");
    assert_eq!(fresh["destinationConfig"]["thingName"], "burrow-test-thing");
    assert_eq!(
        fresh["destinationConfig"]["services"],
        serde_json::json!(["SSH"])
    );
    assert_eq!(fresh["timeoutConfig"]["maxLifetimeTimeoutMinutes"], 30);
    for state in ["sourceConnectionState", "destinationConnectionState"] {
        assert_eq!(fresh[state]["status"], "DISCONNECTED", "{fresh}");
        assert!(!fresh[state]["lastUpdatedAt"].is_null(), "{fresh}");
    }
    assert!(!fresh["createdAt"].is_null() && !fresh["lastUpdatedAt"].is_null());

    // A destination agent connects: DescribeTunnel shows it.
    let mut agent = destination_agent(&serve, &tunnel, "SSH=127.0.0.1:9", &[]);
    let connected = aws.describe(&tunnel.id);
    assert_eq!(
        connected["destinationConnectionState"]["status"], "CONNECTED",
        "{connected}"
    );
    assert_eq!(connected["sourceConnectionState"]["status"], "DISCONNECTED");
    assert_ne!(
        connected["destinationConnectionState"]["lastUpdatedAt"],
        fresh["destinationConnectionState"]["lastUpdatedAt"],
        "lastUpdatedAt did not move"
    );

    // ListTunnels, also filtered by thing name.
    let other = serve.open_tunnel(&["SSH"]);
    let listed = aws.ok(&["list-tunnels"]);
    let ids: Vec<String> = listed["tunnelSummaries"]
        .as_array()
        .expect("tunnelSummaries")
        .iter()
        .map(|t| text(&t["tunnelId"]))
        .collect();
    assert_eq!(ids, [other.id.clone(), tunnel.id.clone()], "newest first");
    let summary = &listed["tunnelSummaries"][1];
    assert_eq!(summary["status"], "OPEN");
    assert_eq!(summary["description"], "burrow test tunnel");
    assert!(summary["tunnelArn"].is_string() && !summary["createdAt"].is_null());
    let (status, by_thing) = serve.call("ListTunnels", r#"{"thingName":"burrow-test-thing"}"#);
    assert_eq!(status, 200, "{by_thing}");
    let by_thing: Value = serde_json::from_str(&by_thing).expect("ListTunnels JSON");
    assert_eq!(
        by_thing["tunnelSummaries"]
            .as_array()
            .map(|a| a.iter().map(|t| text(&t["tunnelId"])).collect::<Vec<_>>()),
        Some(vec![tunnel.id.clone()])
    );

    // CloseTunnel disconnects the agent (1000 "Tunnel is closed"); its reconnect is refused.
    aws.ok(&["close-tunnel", "--tunnel-id", &tunnel.id]);
    let status = agent.wait_exit(common::WAIT);
    let log = agent.log();
    assert!(!status.success(), "the agent survived the close:\n{log}");
    assert!(
        log.contains("(1000) \"Tunnel is closed\""),
        "no 1000 close in the agent's output:\n{log}"
    );
    let closed = serve.describe(&tunnel.id);
    assert_eq!(closed["status"], "CLOSED", "{closed}");
    assert_eq!(
        closed["destinationConnectionState"]["status"],
        "DISCONNECTED"
    );

    // With --delete it is gone.
    aws.ok(&["close-tunnel", "--tunnel-id", &tunnel.id, "--delete"]);
    let err = aws.fails(&["describe-tunnel", "--tunnel-id", &tunnel.id]);
    assert!(err.contains("(ResourceNotFoundException)"), "{err}");
    let (_, listed) = serve.call("ListTunnels", "{}");
    assert!(!listed.contains(&tunnel.id), "{listed}");
}

#[test]
fn rotating_tokens_revokes_the_old_ones() {
    let serve = Serve::start();
    let mut aws = Aws::new(&serve);
    // The region of the request's signature goes into the ARN.
    aws.region = "eu-west-3";
    let opened = aws.ok(&["open-tunnel", "--destination-config", "services=SSH"]);
    let tunnel = tunnel_of(&opened);
    let arn = format!("arn:aws:iot:eu-west-3:123456789012:tunnel/{}", tunnel.id);
    assert_eq!(text(&opened["tunnelArn"]), arn);
    // The default lifetime is 12 hours.
    assert_eq!(
        serve.describe(&tunnel.id)["timeoutConfig"]["maxLifetimeTimeoutMinutes"],
        720
    );
    // A connected destination stays connected through rotations.
    let mut agent = destination_agent(&serve, &tunnel, "SSH=127.0.0.1:9", &[]);

    let source_only = aws.ok(&[
        "rotate-tunnel-access-token",
        "--tunnel-id",
        &tunnel.id,
        "--client-mode",
        "SOURCE",
    ]);
    assert_eq!(text(&source_only["tunnelArn"]), arn);
    assert!(
        source_only["destinationAccessToken"].is_null(),
        "{source_only}"
    );
    let source2 = text(&source_only["sourceAccessToken"]);
    assert_ne!(source2, tunnel.source_token);
    assert_eq!(
        serve.handshake_without_client_token("source", &tunnel.source_token),
        400
    );
    assert_eq!(
        serve.handshake_without_client_token("source", &source2),
        101
    );

    let destination_only = aws.ok(&[
        "rotate-tunnel-access-token",
        "--tunnel-id",
        &tunnel.id,
        "--client-mode",
        "DESTINATION",
        "--destination-config",
        "services=SSH,HTTP",
    ]);
    assert!(destination_only["sourceAccessToken"].is_null());
    let destination2 = text(&destination_only["destinationAccessToken"]);
    assert_ne!(destination2, tunnel.destination_token);
    let described = serve.describe(&tunnel.id);
    assert_eq!(
        described["destinationConfig"]["services"],
        serde_json::json!(["SSH", "HTTP"])
    );
    assert_eq!(
        described["destinationConnectionState"]["status"], "CONNECTED",
        "{described}"
    );

    let all = aws.ok(&[
        "rotate-tunnel-access-token",
        "--tunnel-id",
        &tunnel.id,
        "--client-mode",
        "ALL",
    ]);
    let source3 = text(&all["sourceAccessToken"]);
    let destination3 = text(&all["destinationAccessToken"]);
    for old in [&source2, &destination2] {
        let mode = if *old == source2 {
            "source"
        } else {
            "destination"
        };
        assert_eq!(serve.handshake_without_client_token(mode, old), 400);
    }
    assert_eq!(
        serve.handshake_without_client_token("destination", &destination3),
        101
    );
    assert_eq!(
        serve.handshake_without_client_token("source", &source3),
        101
    );
    // The new destination replaced the agent's connection; nothing else ended it.
    agent.wait_line("a replacement close", |l| l.contains("(1002)"));

    let (status, body) = serve.call(
        "RotateTunnelAccessToken",
        &serde_json::json!({
            "tunnelId": tunnel.id,
            "clientMode": "SOURCE",
            "destinationConfig": { "services": ["SSH"] },
        })
        .to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("ValidationException")
            && body.contains("You can not use DestinationConfig with source clientMode"),
        "{body}"
    );
    let (status, body) = serve.call(
        "RotateTunnelAccessToken",
        r#"{"tunnelId":"no-such-tunnel","clientMode":"ALL"}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("ResourceNotFoundException"), "{body}");
}

#[test]
fn errors_have_the_aws_shape() {
    let serve = Serve::start();
    let aws = Aws::new(&serve);
    let err = aws.fails(&["describe-tunnel", "--tunnel-id", "no-such-tunnel"]);
    assert!(
        err.contains("(ResourceNotFoundException)") && err.contains("DescribeTunnel"),
        "{err}"
    );

    // The CLI itself refuses a lifetime of 0 (the API model's minimum)…
    let err = aws.fails(&[
        "open-tunnel",
        "--timeout-config",
        "maxLifetimeTimeoutMinutes=0",
    ]);
    assert!(err.contains("maxLifetimeTimeoutMinutes"), "{err}");
    // …but not 721, which the service refuses.
    let err = aws.fails(&[
        "open-tunnel",
        "--timeout-config",
        "maxLifetimeTimeoutMinutes=721",
    ]);
    assert!(
        err.contains("(ValidationException)")
            && err.contains(
                "Value '721' at 'timeoutConfig.maxLifetimeTimeoutMinutes' failed to satisfy \
                 constraint: Member must have value less than or equal to 720"
            ),
        "{err}"
    );
    let err = aws.fails(&[
        "open-tunnel",
        "--destination-config",
        "services=SSH,HTTP,RDP,VNC",
    ]);
    assert!(
        err.contains("(LimitExceededException)") && err.contains("at most 3 services"),
        "{err}"
    );
    // None of the refused calls opened a tunnel.
    assert_eq!(
        serve.call("ListTunnels", "{}"),
        (200, r#"{"tunnelSummaries":[]}"#.to_owned())
    );

    // With the CLI's own validation off, the service refuses 0 as well.
    let dir = TempDir::new("aws-config");
    let config = dir.path().join("config");
    std::fs::write(&config, "[default]\nparameter_validation = false\n").expect("write config");
    let unchecked = Aws {
        config: Some(config),
        ..Aws::new(&serve)
    };
    let err = unchecked.fails(&[
        "open-tunnel",
        "--timeout-config",
        "maxLifetimeTimeoutMinutes=0",
    ]);
    assert!(
        err.contains("(ValidationException)")
            && err.contains("Member must have value greater than or equal to 1"),
        "{err}"
    );

    // The raw answers: HTTP 400, x-amzn-ErrorType, and the JSON 1.1 error body.
    let body = r#"{"tunnelId":"no-such-tunnel"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: IoTSecuredTunneling.DescribeTunnel\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        serve.addr,
        body.len()
    );
    let (status, headers, body) = common::http_exchange(serve.addr, request.as_bytes());
    assert_eq!(status, 400);
    let has = |line: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(line));
    assert!(
        has("x-amzn-errortype: ResourceNotFoundException")
            && has("content-type: application/x-amz-json-1.1"),
        "{headers:?}"
    );
    let json: Value = serde_json::from_slice(&body).expect("an error body in JSON");
    assert_eq!(json["__type"], "ResourceNotFoundException");
    assert!(json["message"].is_string());
    let (status, body) = serve.call("OpenTunnel", "{not json");
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");
    let (status, body) = serve.call("DeleteEverything", "{}");
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
}

/// `n` tags `{prefix}0..n` as TagResource/OpenTunnel JSON.
fn tag_list(prefix: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| serde_json::json!({ "key": format!("{prefix}{i}"), "value": "v" }))
            .collect(),
    )
}

#[test]
fn a_tunnel_holds_at_most_fifty_tags_as_aws_allows() {
    let serve = Serve::start();
    // OpenTunnel with 51 tags is over the limit already.
    let body = serde_json::json!({ "tags": tag_list("k", 51) }).to_string();
    let (status, answer) = serve.call("OpenTunnel", &body);
    assert_eq!(status, 400, "{answer}");
    let json: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(json["__type"], "LimitExceededException", "{answer}");
    assert!(
        text(&json["message"]).contains("at most 50 tags"),
        "{answer}"
    );

    let body = serde_json::json!({ "tags": tag_list("k", 30) }).to_string();
    let (status, answer) = serve.call("OpenTunnel", &body);
    assert_eq!(status, 200, "{answer}");
    let opened: Value = serde_json::from_str(&answer).expect("JSON");
    let arn = text(&opened["tunnelArn"]);
    let tag = |tags: Value| {
        serve.call(
            "TagResource",
            &serde_json::json!({ "resourceArn": arn, "tags": tags }).to_string(),
        )
    };
    // Updating existing keys and adding up to 50 is fine.
    let (status, answer) = tag(tag_list("k", 30));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = tag(tag_list("x", 20));
    assert_eq!(status, 200, "{answer}");
    // One more is refused whole, and nothing of it is stored.
    let mut over = tag_list("y", 1);
    over.as_array_mut()
        .expect("array")
        .extend(tag_list("k", 5).as_array().expect("array").iter().cloned());
    let (status, answer) = tag(over);
    assert_eq!(status, 400, "{answer}");
    let json: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(json["__type"], "LimitExceededException", "{answer}");
    assert!(text(&json["message"]).contains("would make 51"), "{answer}");
    // 200 a call, many calls: the total stays bounded.
    for round in 0..20 {
        let (status, _) = tag(tag_list(&format!("r{round}-"), 200));
        assert_eq!(status, 400);
    }
    let (status, answer) = serve.call(
        "ListTagsForResource",
        &serde_json::json!({ "resourceArn": arn }).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let listed: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(listed["tags"].as_array().map(Vec::len), Some(50));
    // Removing some makes room again.
    let keys: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let (status, answer) = serve.call(
        "UntagResource",
        &serde_json::json!({ "resourceArn": arn, "tagKeys": keys }).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = tag(tag_list("z", 10));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn offending_input_is_echoed_cut_and_escaped_in_answers_and_logs() {
    let mut serve = Serve::start();
    let hostile = format!("\u{1b}[2J\u{1b}]0;owned\u{7}{}", "A".repeat(1_900_000));
    let cases = [
        (
            "OpenTunnel",
            serde_json::json!({ "description": hostile }).to_string(),
        ),
        (
            "DescribeTunnel",
            serde_json::json!({ "tunnelId": hostile }).to_string(),
        ),
        (
            "ListTagsForResource",
            serde_json::json!({ "resourceArn": format!("\u{1b}[31m{}", "b".repeat(900)) })
                .to_string(),
        ),
        (
            "CloseTunnel",
            serde_json::json!({ "tunnelId": "x", "delete": hostile }).to_string(),
        ),
        (
            "OpenTunnel",
            serde_json::json!({ "destinationConfig": { "services": [hostile] } }).to_string(),
        ),
    ];
    for (op, body) in &cases {
        let (status, answer) = serve.call(op, body);
        assert_eq!(status, 400, "{op}");
        assert!(answer.len() < 600, "{op}: a {} byte answer", answer.len());
        let json: Value = serde_json::from_str(&answer).expect("JSON");
        let message = text(&json["message"]);
        assert!(!message.chars().any(char::is_control), "{op}: {message:?}");
        if message.contains("Value '") {
            assert!(
                message.contains("\\u{1b}"),
                "{op}: escaped, not dropped: {message}"
            );
        }
    }
    serve
        .proc
        .wait_line_nth("the refusals' log lines", cases.len(), |l| {
            l.contains("control plane request refused")
        });
    let log = serve.proc.log();
    assert!(
        !log.contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    assert!(!log.contains('\u{7}'), "a BEL reached the log");
    let longest = log.lines().map(str::len).max().unwrap_or_default();
    assert!(longest < 1_000, "a log line of {longest} bytes");
}
