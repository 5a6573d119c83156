//! `burrow serve --verify-sigv4` against the real `aws` CLI and hand-made requests: the server's
//! own key works (open-tunnel, list-tunnels), a wrong secret is InvalidSignatureException, an
//! unknown key id UnrecognizedClientException, an unsigned POST
//! MissingAuthenticationTokenException, a request signed ten minutes ago "Signature expired";
//! all with HTTP 403 and AWS's error shape. Without the key in its environment the server does
//! not start.
//!
//! The stale request is signed with `aws-sigv4` here (the CLI signs with the current time); the
//! same helper signing with the current time is accepted, so the date alone is what is refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::{Proc, Serve, burrow_bin, http_exchange};
use serde_json::Value;

const KEY_ID: &str = "AKIDBURROWSIGV400000";
const SECRET: &str = "burrow-sigv4-test-secret-not-a-real-one";
/// How long one CLI call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// `burrow serve --verify-sigv4` with the test key in its environment.
fn start() -> Serve {
    let mut cmd = Command::new(burrow_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--verify-sigv4"])
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let mut proc = Proc::spawn("burrow serve", cmd);
    let line = proc.wait_line("'listening on'", |l| {
        l.starts_with("burrow serve: listening on ")
    });
    let addr = line
        .rsplit("://")
        .next()
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the listening line {line:?}"));
    Serve {
        proc,
        addr,
        tls: false,
    }
}

/// Runs `aws iotsecuretunneling ARGS…` with this key against `serve`.
fn aws(serve: &Serve, key_id: &str, secret: &str, args: &[&str]) -> Output {
    let cmd = common::aws::cli(
        serve.addr,
        "us-east-1",
        (key_id, secret),
        Path::new("/dev/null"),
        args,
    );
    common::run("aws", cmd, CLI_TIMEOUT)
}

fn aws_ok(serve: &Serve, args: &[&str]) -> Value {
    let out = aws(serve, KEY_ID, SECRET, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aws {args:?} failed ({}):\n{}\n{stdout}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        serve.proc.log()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("aws {args:?}: {err}: {stdout}"))
}

fn aws_fails(serve: &Serve, key_id: &str, secret: &str, args: &[&str]) -> String {
    let out = aws(serve, key_id, secret, args);
    assert!(
        !out.status.success(),
        "aws {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A ListTunnels request, signed with the test key at `at` when given; returns the status,
/// the `x-amzn-ErrorType` header and the JSON body.
fn list_tunnels(serve: &Serve, at: Option<SystemTime>) -> (u16, Option<String>, Value) {
    let host = serve.addr.to_string();
    let body = "{}";
    let mut headers = vec![
        ("host".to_owned(), host.clone()),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "IoTSecuredTunneling.ListTunnels".to_owned(),
        ),
    ];
    if let Some(at) = at {
        let identity: Identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("IoTSecuredTunneling")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let request = SignableRequest::new(
            "POST",
            format!("http://{host}/"),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable request");
        let (instructions, _) = sign(request, &params).expect("sign").into_parts();
        let (added, _) = instructions.into_parts();
        headers.extend(
            added
                .iter()
                .map(|h| (h.name().to_owned(), h.value().to_owned())),
        );
    }
    let mut request = String::from("POST / HTTP/1.1\r\n");
    for (name, value) in &headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    let (status, head, body) = http_exchange(serve.addr, request.as_bytes());
    let error_type = head.iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("x-amzn-errortype")
            .then(|| value.trim().to_owned())
    });
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&body)));
    (status, error_type, json)
}

#[test]
fn the_cli_with_the_servers_key_works_and_a_wrong_secret_or_key_id_does_not() {
    let serve = start();
    let opened = aws_ok(
        &serve,
        &[
            "open-tunnel",
            "--destination-config",
            "services=SSH",
            "--timeout-config",
            "maxLifetimeTimeoutMinutes=30",
        ],
    );
    let id = opened["tunnelId"].as_str().expect("a tunnel id").to_owned();
    let listed = aws_ok(&serve, &["list-tunnels"]);
    let ids: Vec<&str> = listed["tunnelSummaries"]
        .as_array()
        .expect("tunnelSummaries")
        .iter()
        .filter_map(|t| t["tunnelId"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    let err = aws_fails(&serve, KEY_ID, "not-the-secret", &["list-tunnels"]);
    assert!(
        err.contains("InvalidSignatureException")
            && err.contains("does not match the signature you provided"),
        "{err}"
    );
    let err = aws_fails(
        &serve,
        KEY_ID,
        "not-the-secret",
        &["open-tunnel", "--destination-config", "services=SSH"],
    );
    assert!(err.contains("InvalidSignatureException"), "{err}");
    let err = aws_fails(&serve, "AKIDSOMEONEELSE00000", SECRET, &["list-tunnels"]);
    assert!(
        err.contains("UnrecognizedClientException")
            && err.contains("The security token included in the request is invalid"),
        "{err}"
    );
    // The refused open opened nothing.
    let listed = aws_ok(&serve, &["list-tunnels"]);
    assert_eq!(listed["tunnelSummaries"].as_array().map(Vec::len), Some(1));
}

#[test]
fn unsigned_and_stale_requests_are_refused_as_aws_refuses_them() {
    let serve = start();

    let (status, kind, body) = list_tunnels(&serve, None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(kind.as_deref(), Some("MissingAuthenticationTokenException"));
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    assert_eq!(body["message"], "Missing Authentication Token");

    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(600);
    let (status, kind, body) = list_tunnels(&serve, Some(ten_minutes_ago));
    assert_eq!(status, 403, "{body}");
    assert_eq!(kind.as_deref(), Some("InvalidSignatureException"));
    assert_eq!(body["__type"], "InvalidSignatureException");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Signature expired: "), "{message}");

    let in_ten_minutes = SystemTime::now() + Duration::from_secs(600);
    let (status, _, body) = list_tunnels(&serve, Some(in_ten_minutes));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["__type"], "InvalidSignatureException");

    // The same request signed now goes through.
    let (status, kind, body) = list_tunnels(&serve, Some(SystemTime::now()));
    assert_eq!((status, kind), (200, None), "{body}");
    assert_eq!(body["tunnelSummaries"], serde_json::json!([]));
}

#[test]
fn without_a_key_in_its_environment_the_server_does_not_start() {
    for missing in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let mut cmd = Command::new(burrow_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--verify-sigv4"])
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env_remove(missing);
        let out = common::run("burrow serve", cmd, CLI_TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without {missing}");
        assert!(
            stderr.contains("--verify-sigv4") && stderr.contains(missing),
            "{stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on"),
            "listened without {missing}"
        );
    }
}
