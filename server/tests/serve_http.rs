//! The plain HTTP routes of a real `burrow serve`: the cookie helper (`POST /cookie` and its
//! preflight), the handshake probe (`GET /tunnel/status`) and the static app (`GET /` with its
//! Content-Security-Policy, client-side routes, no way out of the static directory).

mod common;

use std::collections::BTreeMap;

use common::ws::{Upgrade, exchange};
use common::{Serve, TempDir, Tunnel};
use serde_json::Value;

/// An HTTP answer: status, header lines and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }
}

/// One request over a fresh connection (`Connection: close`); `target` is sent as is.
fn request(
    serve: &Serve,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", serve.addr);
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body);
    let (status, lines, body) = common::http_exchange(serve.addr, text.as_bytes());
    Answer {
        status,
        headers: lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn own_origin(serve: &Serve) -> String {
    format!("http://127.0.0.1:{}", serve.addr.port())
}

/// `POST /cookie` with `{"token": token}` as JSON from `origin`.
fn post_cookie(serve: &Serve, origin: Option<&str>, token: &str) -> Answer {
    let body = serde_json::json!({ "token": token }).to_string();
    post_cookie_raw(serve, origin, "application/json", &body)
}

fn post_cookie_raw(serve: &Serve, origin: Option<&str>, content_type: &str, body: &str) -> Answer {
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(origin) = origin {
        headers.push(("Origin", origin));
    }
    request(serve, "POST", "/cookie", &headers, body)
}

/// The refusal shape every helper error has: no cookie, no-store, Vary, a JSON error.
fn assert_refused(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert!(answer.all("set-cookie").is_empty(), "a cookie was set");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert_eq!(answer.json()["error"], error, "{:?}", answer.body);
}

fn open_30_minutes(serve: &Serve) -> Tunnel {
    serve.open_tunnel_with(&serde_json::json!({
        "destinationConfig": { "services": ["SSH"], "thingName": "burrow-cookie-thing" },
        "timeoutConfig": { "maxLifetimeTimeoutMinutes": 30 },
    }))
}

// ---------------------------------------------------------------------------------------------
// Cookie helper
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_allowed_origin_gets_the_cookie_and_the_cookie_opens_the_tunnel() {
    let serve = Serve::start();
    let tunnel = open_30_minutes(&serve);
    let origin = own_origin(&serve);
    let answer = post_cookie(&serve, Some(&origin), &tunnel.source_token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookies = answer.all("set-cookie");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = cookies[0];
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert_eq!(
        attributes[0],
        format!("awsiot-tunnel-token={}", tunnel.source_token)
    );
    assert_eq!(attributes[1], "Path=/tunnel");
    let max_age: u64 = attributes[2]
        .strip_prefix("Max-Age=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max-Age in {cookie:?}"));
    assert!(
        (30 * 60 - 60..=30 * 60).contains(&max_age),
        "Max-Age {max_age} is not the tunnel's remaining life"
    );
    assert_eq!(&attributes[3..], ["HttpOnly", "SameSite=Strict"]);
    assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    assert!(!cookie.contains("Secure"), "Secure on plain HTTP: {cookie}");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let json = answer.json();
    assert_eq!(json["tunnelId"], tunnel.id.as_str());
    assert_eq!(json["thingName"], "burrow-cookie-thing");
    assert_eq!(json["reconnectable"], false);
    assert_eq!(json["maxAge"], max_age);

    // The cookie, as a browser sends it back, opens the source side.
    let mut peer = Upgrade::tunnel("source")
        .header("origin", &origin)
        .header("cookie", attributes[0])
        .connect(serve.addr)
        .await;
    assert_eq!(peer.service_ids().await, ["SSH"]);

    // The other allowed spelling of the own origin works too.
    let localhost = format!("http://localhost:{}", serve.addr.port());
    let answer = post_cookie(&serve, Some(&localhost), &tunnel.destination_token);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(localhost.as_str())
    );
}

#[test]
fn other_origins_get_403_and_no_cookie() {
    let serve = Serve::start_with(&["--allow-origin", "https://app.example.com"]);
    let tunnel = open_30_minutes(&serve);
    for origin in [
        Some("http://evil.example"),
        Some("null"),
        Some("https://app.example.com.evil.example"),
        Some("*"),
        None,
    ] {
        let answer = post_cookie(&serve, origin, &tunnel.source_token);
        assert_refused(&answer, 403, "origin not allowed");
        assert_eq!(answer.header("access-control-allow-origin"), None);
        assert_eq!(answer.header("access-control-allow-credentials"), None);
    }
    // A cross-site form post: no Origin check passes, and the body is not JSON either.
    let form = post_cookie_raw(
        &serve,
        Some("http://evil.example"),
        "application/x-www-form-urlencoded",
        &format!("token={}", tunnel.source_token),
    );
    assert_refused(&form, 403, "origin not allowed");
    // An extra allowed origin gets it.
    let answer = post_cookie(
        &serve,
        Some("https://app.example.com"),
        &tunnel.source_token,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn bad_requests_from_an_allowed_origin_get_json_errors_and_no_cookie() {
    let serve = Serve::start();
    let tunnel = open_30_minutes(&serve);
    let origin = own_origin(&serve);
    let body = serde_json::json!({ "token": tunnel.source_token }).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let answer = post_cookie_raw(&serve, Some(&origin), content_type, &body);
        assert_refused(&answer, 415, "content type must be application/json");
        // The allowed page may read why.
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some(origin.as_str())
        );
    }
    let ok_with_charset = post_cookie_raw(
        &serve,
        Some(&origin),
        "application/json; charset=utf-8",
        &body,
    );
    assert_eq!(ok_with_charset.status, 200);

    let malformed = "body must be a JSON object {\"token\": \"...\"}";
    for body in ["{not json", "[]", "{}", r#"{"token": 5}"#, ""] {
        let answer = post_cookie_raw(&serve, Some(&origin), "application/json", body);
        assert_refused(&answer, 400, malformed);
    }
    let bad_chars = "token has characters that are not allowed (expected letters, digits and - _ . \
                     ~ + / =)";
    for token in [
        format!("{}; Domain=evil.example", tunnel.source_token),
        "a;b".to_owned(),
        "a b".to_owned(),
        "a\r\nSet-Cookie: planted=1".to_owned(),
        String::new(),
    ] {
        let answer = post_cookie(&serve, Some(&origin), &token);
        assert_refused(&answer, 400, bad_chars);
    }
    let unknown = "unknown, revoked or expired access token";
    assert_refused(
        &post_cookie(&serve, Some(&origin), "AQGAunknown-token"),
        400,
        unknown,
    );
    assert_eq!(
        post_cookie(&serve, Some(&origin), "AQGAunknown-token").json()["status"],
        "invalid"
    );
    // A closed tunnel's token is named as such, with the probe's word for it.
    let closed = open_30_minutes(&serve);
    serve.close_tunnel(&closed.id);
    let answer = post_cookie(&serve, Some(&origin), &closed.source_token);
    assert_refused(&answer, 400, "the tunnel is closed or has expired");
    assert_eq!(answer.json()["status"], "closed");
    let too_big = serde_json::json!({ "token": "a".repeat(20_000) }).to_string();
    assert_refused(
        &post_cookie_raw(&serve, Some(&origin), "application/json", &too_big),
        413,
        "request body too large",
    );
}

#[test]
fn preflights_are_answered_for_allowed_origins_only() {
    let serve = Serve::start();
    let origin = own_origin(&serve);
    let preflight = |origin: &str, method: &str| {
        request(
            &serve,
            "OPTIONS",
            "/cookie",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            "",
        )
    };
    let allowed = preflight(&origin, "POST");
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        allowed.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("600"));
    assert_eq!(allowed.header("vary"), Some("Origin"));
    assert_eq!(allowed.header("cache-control"), Some("no-store"));
    for (origin, method) in [("http://evil.example", "POST"), (origin.as_str(), "PUT")] {
        let refused = preflight(origin, method);
        assert_eq!(refused.status, 403, "{origin} {method}");
        assert_eq!(refused.header("access-control-allow-origin"), None);
        assert_eq!(refused.header("access-control-allow-methods"), None);
        assert_eq!(refused.header("vary"), Some("Origin"));
    }
}

#[test]
fn with_tls_the_cookie_is_secure_and_follows_the_same_site_flag() {
    let serve = Serve::start_with(&["--tls", "--cookie-same-site", "none"]);
    let tunnel = serve.open_tunnel(&["SSH"]);
    let origin = format!("https://127.0.0.1:{}", serve.addr.port());
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .args(["-H", &format!("Origin: {origin}")])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "--data-binary",
            &serde_json::json!({ "token": tunnel.source_token }).to_string(),
        ])
        .arg(format!("https://{}/cookie", serve.addr));
    let out = common::run("curl", cmd, common::WAIT);
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/2 200"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no Set-Cookie in {head}"));
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=None; Secure"),
        "{cookie}"
    );
}

/// The response head of `curl -sk` for `url`.
fn curl_head(url: &str) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "-D", "-", "-o", "/dev/null"]).arg(url);
    String::from_utf8_lossy(&common::run("curl", cmd, common::WAIT).stdout).into_owned()
}

#[test]
fn with_tls_every_answer_has_hsts_and_without_tls_none() {
    let serve = Serve::start_with(&["--tls"]);
    for path in [
        "/",
        "/tunnel/status?local-proxy-mode=source",
        "/no-such-file.js",
    ] {
        let head = curl_head(&format!("https://{}{path}", serve.addr)).to_ascii_lowercase();
        assert!(
            head.contains("strict-transport-security: max-age=31536000"),
            "{path}: {head}"
        );
    }
    let plain = Serve::start();
    let answer = request(&plain, "GET", "/", &[], "");
    assert_eq!(answer.header("strict-transport-security"), None);
}

// ---------------------------------------------------------------------------------------------
// Handshake probe
// ---------------------------------------------------------------------------------------------

/// `GET /tunnel/status?local-proxy-mode=MODE` with the token as the cookie; the JSON answer.
async fn probe(serve: &Serve, mode: &str, token: Option<&str>) -> Value {
    let cookie = token
        .map(|t| format!("Cookie: awsiot-tunnel-token={t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /tunnel/status?local-proxy-mode={mode} HTTP/1.1\r\nHost: {}\r\n{cookie}\r\n",
        serve.addr
    );
    let head = exchange(serve.addr, request.into_bytes()).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("cache-control"), Some("no-store"));
    assert_eq!(head.header("content-type"), Some("application/json"));
    let json: Value = serde_json::from_str(&head.body).expect("probe JSON");
    assert!(json["message"].is_string(), "{json}");
    json
}

async fn probe_word(serve: &Serve, mode: &str, token: Option<&str>) -> String {
    probe(serve, mode, token).await["status"]
        .as_str()
        .expect("a status word")
        .to_owned()
}

#[tokio::test]
async fn the_probe_tells_why_a_handshake_would_fail_without_spending_the_token() {
    let serve = Serve::start();
    let tunnel = serve.open_tunnel(&["SSH"]);
    let src = Some(tunnel.source_token.as_str());
    // Asking any number of times spends nothing.
    for _ in 0..3 {
        assert_eq!(probe_word(&serve, "source", src).await, "ok");
    }
    let peer = Upgrade::tunnel("source")
        .token(&tunnel.source_token)
        .connect(serve.addr)
        .await;
    assert_eq!(peer.head.status, 101);
    assert_eq!(probe_word(&serve, "source", src).await, "spent");
    assert_eq!(
        probe(&serve, "source", src).await["message"],
        "Invalid access token: The access token was previously used and can not be used again."
    );

    let dst = Some(tunnel.destination_token.as_str());
    assert_eq!(probe_word(&serve, "source", dst).await, "wrong-mode");
    assert_eq!(probe_word(&serve, "destination", dst).await, "ok");
    assert_eq!(
        probe_word(&serve, "source", Some("AQGAunknown")).await,
        "invalid"
    );
    assert_eq!(probe_word(&serve, "source", None).await, "missing");

    // A token bound to a client token is busy for anyone else.
    let bound = Upgrade::tunnel("destination")
        .token(&tunnel.destination_token)
        .client_token("burrow-test-client-token-0123456789abcdef")
        .connect(serve.addr)
        .await;
    assert_eq!(probe_word(&serve, "destination", dst).await, "busy");
    drop(bound);

    // The header counts like the cookie; two tokens are refused like the handshake does.
    let other = serve.open_tunnel(&["SSH"]);
    let both = format!(
        "GET /tunnel/status?local-proxy-mode=source HTTP/1.1\r\nHost: {}\r\n\
         access-token: {t}\r\nCookie: awsiot-tunnel-token={t}\r\n\r\n",
        serve.addr,
        t = other.source_token
    );
    let head = exchange(serve.addr, both.into_bytes()).await;
    assert!(head.body.contains("\"status\":\"invalid\""), "{head:?}");
    assert!(head.body.contains("Multiple access tokens"), "{head:?}");

    // A probe from a foreign page is refused; a bad mode is a 400.
    let foreign = format!(
        "GET /tunnel/status?local-proxy-mode=source HTTP/1.1\r\nHost: {}\r\n\
         Origin: http://evil.example\r\nCookie: awsiot-tunnel-token={}\r\n\r\n",
        serve.addr, other.source_token
    );
    assert_eq!(exchange(serve.addr, foreign.into_bytes()).await.status, 403);
    let no_mode = format!(
        "GET /tunnel/status HTTP/1.1\r\nHost: {}\r\n\r\n",
        serve.addr
    );
    assert_eq!(exchange(serve.addr, no_mode.into_bytes()).await.status, 400);
    // After all these probes the handshake still succeeds.
    let peer = Upgrade::tunnel("source")
        .token(&other.source_token)
        .connect(serve.addr)
        .await;
    assert_eq!(peer.head.status, 101);
}

#[tokio::test]
async fn the_probe_says_closed_for_closed_and_expired_tunnels() {
    // One minute of lifetime runs in one second.
    let serve = Serve::start_with(&["--time-scale", "60"]);
    let closed = serve.open_tunnel(&["SSH"]);
    serve.close_tunnel(&closed.id);
    assert_eq!(
        probe_word(&serve, "source", Some(&closed.source_token)).await,
        "closed"
    );
    assert_eq!(
        probe_word(&serve, "destination", Some(&closed.destination_token)).await,
        "closed"
    );
    // Rotated-away tokens are merely invalid.
    let rotated = serve.open_tunnel(&["SSH"]);
    let (status, body) = serve.call(
        "RotateTunnelAccessToken",
        &serde_json::json!({ "tunnelId": rotated.id, "clientMode": "SOURCE" }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        probe_word(&serve, "source", Some(&rotated.source_token)).await,
        "invalid"
    );

    let expiring = serve.open_tunnel_with(&serde_json::json!({
        "destinationConfig": { "services": ["SSH"] },
        "timeoutConfig": { "maxLifetimeTimeoutMinutes": 1 },
    }));
    let mut peer = Upgrade::tunnel("destination")
        .token(&expiring.destination_token)
        .connect(serve.addr)
        .await;
    let ended = peer.closed().await;
    assert_eq!(ended.code, 1000, "{ended:?}");
    assert_eq!(
        probe_word(&serve, "source", Some(&expiring.source_token)).await,
        "closed"
    );
    // Deleting forgets the tunnel altogether.
    let (status, _) = serve.call(
        "CloseTunnel",
        &serde_json::json!({ "tunnelId": closed.id, "delete": true }).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(
        probe_word(&serve, "source", Some(&closed.source_token)).await,
        "invalid"
    );
}

// ---------------------------------------------------------------------------------------------
// Static app
// ---------------------------------------------------------------------------------------------

/// A built app in `root/dist` and a file next to it that must never be served.
fn app_dir() -> (TempDir, std::path::PathBuf) {
    let root = TempDir::new("static");
    let dist = root.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).expect("create dist");
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><title>burrow test app</title><p>INDEX-MARKER</p>",
    )
    .expect("write index.html");
    std::fs::write(dist.join("app.js"), "console.log('APP-JS');").expect("write app.js");
    std::fs::write(dist.join("app_bg.wasm"), b"\0asm\x01\0\0\0").expect("write wasm");
    std::fs::write(dist.join("assets").join("style.css"), "body{}").expect("write css");
    std::fs::write(root.path().join("secret.txt"), "SECRET-MARKER").expect("write secret");
    (root, dist)
}

/// The directives of a Content-Security-Policy.
fn directives(csp: &str) -> BTreeMap<String, Vec<String>> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_owned();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

fn assert_policy_headers(answer: &Answer) {
    let csp = answer
        .header("content-security-policy")
        .expect("a Content-Security-Policy");
    let d = directives(csp);
    let expect = |name: &str, values: &[&str]| {
        assert_eq!(
            d.get(name).map(Vec::as_slice),
            Some(
                values
                    .iter()
                    .map(|v| (*v).to_owned())
                    .collect::<Vec<_>>()
                    .as_slice()
            ),
            "{name} in {csp}"
        );
    };
    expect("default-src", &["'self'"]);
    expect("script-src", &["'self'", "'wasm-unsafe-eval'"]);
    expect("object-src", &["'none'"]);
    expect("base-uri", &["'none'"]);
    expect("frame-ancestors", &["'none'"]);
    expect("form-action", &["'none'"]);
    expect("font-src", &["'self'"]);
    expect("worker-src", &["'self'", "blob:"]);
    expect("img-src", &["'self'", "data:", "blob:"]);
    expect("style-src", &["'self'", "'unsafe-inline'"]);
    let connect = d.get("connect-src").expect("connect-src");
    assert_eq!(connect.first().map(String::as_str), Some("'self'"), "{csp}");
    for source in [
        "wss://data.tunneling.iot.us-east-1.amazonaws.com",
        "wss://data.tunneling.iot.eu-west-1.amazonaws.com",
        "wss://data.tunneling.iot.us-gov-west-1.amazonaws.com",
        "wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn",
        "wss://data.tunneling.iot.cn-northwest-1.amazonaws.com.cn",
    ] {
        assert!(connect.iter().any(|c| c == source), "{source} in {csp}");
    }
    // Only the page's origin, loopback ports (the test server listens on loopback) and AWS's
    // data-plane hosts: no scheme-wide or wildcard hosts, no IPv6 literal (no CSP source can be).
    for c in &connect[1..] {
        let loopback = ["127.0.0.1:*", "localhost:*"]
            .iter()
            .any(|h| c.ends_with(&format!("://{h}")));
        let aws = c.starts_with("wss://data.tunneling.iot.")
            && (c.ends_with(".amazonaws.com") || c.ends_with(".amazonaws.com.cn"))
            && !c.contains('*');
        assert!((loopback || aws) && !c.contains('['), "{c} in {csp}");
    }
    assert_eq!(d.len(), 11, "unexpected directives in {csp}");
    assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(answer.header("cache-control"), Some("no-cache"));
}

#[test]
fn the_app_is_served_with_a_strict_content_security_policy() {
    let (_root, dist) = app_dir();
    let serve = Serve::start_with(&["--static", dist.to_str().expect("a UTF-8 path")]);
    let index = request(&serve, "GET", "/", &[], "");
    assert_eq!(index.status, 200);
    assert!(index.body.contains("INDEX-MARKER"), "{}", index.body);
    assert!(
        index
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert_policy_headers(&index);

    for (path, content_type, marker) in [
        ("/app.js", "javascript", "APP-JS"),
        ("/app_bg.wasm", "application/wasm", "asm"),
        ("/assets/style.css", "text/css", "body{}"),
    ] {
        let answer = request(&serve, "GET", path, &[], "");
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.contains(content_type)),
            "{path}: {:?}",
            answer.header("content-type")
        );
        assert!(answer.body.contains(marker), "{path}");
        assert_policy_headers(&answer);
    }
    // Client-side routes get the app; missing files do not.
    let route = request(&serve, "GET", "/connect/some-device", &[], "");
    assert_eq!(route.status, 200);
    assert!(route.body.contains("INDEX-MARKER"));
    let missing = request(&serve, "GET", "/missing.js", &[], "");
    assert_eq!(missing.status, 404);
    assert!(!missing.body.contains("INDEX-MARKER"));
    let post = request(&serve, "POST", "/app.js", &[], "");
    assert_eq!(post.status, 405);
}

#[test]
fn precompressed_copies_are_sent_to_browsers_that_accept_them() {
    let (_root, dist) = app_dir();
    // The copies' contents only need to be told apart; the server never decodes them.
    std::fs::write(dist.join("app.js.br"), "BR-COPY").expect("write .br");
    std::fs::write(dist.join("app.js.gz"), "GZ-COPY").expect("write .gz");
    std::fs::write(dist.join("index.html.gz"), "GZ-INDEX").expect("write index .gz");
    let serve = Serve::start_with(&["--static", dist.to_str().expect("a UTF-8 path")]);

    /// Path, request headers, expected `Content-Encoding`, expected body.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: [Case; 5] = [
        (
            "/app.js",
            &[("Accept-Encoding", "gzip, deflate, br")],
            Some("br"),
            "BR-COPY",
        ),
        (
            "/app.js",
            &[("Accept-Encoding", "gzip")],
            Some("gzip"),
            "GZ-COPY",
        ),
        ("/app.js", &[], None, "console.log('APP-JS');"),
        // No .br of index.html: gzip it is; a client-side route gets the same.
        (
            "/",
            &[("Accept-Encoding", "br, gzip")],
            Some("gzip"),
            "GZ-INDEX",
        ),
        (
            "/connect/x",
            &[("Accept-Encoding", "gzip")],
            Some("gzip"),
            "GZ-INDEX",
        ),
    ];
    for (path, headers, encoding, body) in cases {
        let answer = request(&serve, "GET", path, headers, "");
        assert_eq!(answer.status, 200, "{path} {headers:?}");
        assert_eq!(
            answer.header("content-encoding"),
            encoding,
            "{path} {headers:?}"
        );
        assert_eq!(answer.body, body, "{path} {headers:?}");
        // Caches must keep the encodings apart.
        assert_eq!(answer.header("vary"), Some("accept-encoding"), "{path}");
        // The type is the original file's, whatever the encoding.
        let expected_type = if path == "/app.js" {
            "javascript"
        } else {
            "text/html"
        };
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.contains(expected_type)),
            "{path}: {:?}",
            answer.header("content-type")
        );
        assert_policy_headers(&answer);
    }
}

#[test]
fn paths_cannot_escape_the_static_directory() {
    let (_root, dist) = app_dir();
    let serve = Serve::start_with(&["--static", dist.to_str().expect("a UTF-8 path")]);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
    ] {
        let answer = request(&serve, "GET", target, &[], "");
        assert!(
            !answer.body.contains("SECRET-MARKER")
                && !answer.body.contains("root:")
                && !answer.body.contains("[package]"),
            "{target} escaped: {} {:?}",
            answer.status,
            answer.body
        );
        assert!(
            answer.status >= 400 || answer.body.contains("INDEX-MARKER"),
            "{target}: {} {:?}",
            answer.status,
            answer.body
        );
    }
}

#[test]
fn without_a_built_app_the_root_explains_how_to_build_it() {
    let empty = TempDir::new("no-app");
    let serve = Serve::start_with(&["--static", empty.path().to_str().expect("a UTF-8 path")]);
    let root = request(&serve, "GET", "/", &[], "");
    assert_eq!(root.status, 200);
    assert!(
        root.body.contains("The browser app is not built yet"),
        "{}",
        root.body
    );
    assert_policy_headers(&root);
    assert_eq!(request(&serve, "GET", "/app.js", &[], "").status, 404);
}
