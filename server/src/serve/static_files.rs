//! The built browser app (Trunk's `dist/`, or `--static DIR`) at `/`, with a strict
//! Content-Security-Policy that still lets the WASM app run.
//!
//! Files are served by tower-http's `ServeDir` (MIME types from the extension, so `.wasm` is
//! `application/wasm`). When `NAME.br` or `NAME.gz` lies beside a file (`cargo xtask` writes
//! them after each build) and the browser accepts that encoding, the compressed copy is sent
//! with `Content-Encoding`, brotli first. A path without a file extension that matches no file
//! gets `index.html`, so the app can use client-side routes. When the directory has no `index.html`, `/` explains
//! how to build the app instead. WebSocket upgrades on any path but `/tunnel` are refused with
//! 400, as the real service does.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::{ServeDir, ServeFile};

use super::AppState;
use super::handshake::{self, new_channel_id};

/// The regions whose AWS IoT Secure Tunneling data plane a page may reach directly: the app's
/// region list (`app/src/components/endpoint.rs`, kept in step by a test) in the `aws` and
/// `aws-us-gov` partitions, and the two China regions (`.amazonaws.com.cn`).
pub(crate) const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "me-south-1",
    "me-central-1",
    "ap-east-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "us-gov-west-1",
    "us-gov-east-1",
];
/// The China regions, whose endpoints end in `.amazonaws.com.cn`.
pub(crate) const AWS_CHINA_REGIONS: &[&str] = &["cn-north-1", "cn-northwest-1"];

/// The policy for every page this server sends.
///
/// - `script-src 'self' 'wasm-unsafe-eval'`: the app's glue and a same-origin loader script
///   (no inline scripts), plus compiling its WebAssembly.
/// - `style-src 'unsafe-inline'`: xterm.js 6 cannot do without it: its DOM renderer (used
///   whenever the browser has no hardware WebGL) writes its theme and cell-size rules into
///   `<style>` elements it creates and sets `style` attributes on cells, and its scrollbar
///   adds a `<style>` element too; it has no nonce support. Styles only: scripts stay strict.
/// - `connect-src`: the page's own origin (`'self'` also covers ws/wss to it: the cookie
///   helper and `/tunnel`), the `--allow-origin` origins (in their http(s) and ws(s) forms: a
///   same-site tunnel service or cookie helper elsewhere), any loopback port when the server
///   itself listens on loopback (local relays and forwarders; nothing leaves the machine that
///   way), and AWS's data-plane endpoint `wss://data.tunneling.iot.REGION.
///   amazonaws.com[.cn]` of each region. A CSP wildcard may only replace a host's first label,
///   so the regions are listed one by one (`wss://*.amazonaws.com` would also reach anyone's
///   API Gateway WebSocket, S3 and the rest).
/// - `img-src data: blob:`, `worker-src blob:`: what xterm.js' addons use.
pub(crate) fn csp(extra_origins: &[String], loopback: bool) -> HeaderValue {
    let mut connect = String::from("'self'");
    for origin in extra_origins {
        connect.push(' ');
        connect.push_str(origin);
        if let Some(rest) = origin.strip_prefix("https://") {
            connect.push_str(&format!(" wss://{rest}"));
        } else if let Some(rest) = origin.strip_prefix("http://") {
            connect.push_str(&format!(" ws://{rest}"));
        }
    }
    if loopback {
        for scheme in ["http", "https", "ws", "wss"] {
            // No `[::1]`: a CSP host source cannot be an IPv6 literal (Chromium reports the
            // whole source as invalid and ignores it).
            for host in ["127.0.0.1", "localhost"] {
                connect.push_str(&format!(" {scheme}://{host}:*"));
            }
        }
    }
    for region in AWS_REGIONS {
        connect.push_str(&format!(" wss://data.tunneling.iot.{region}.amazonaws.com"));
    }
    for region in AWS_CHINA_REGIONS {
        connect.push_str(&format!(
            " wss://data.tunneling.iot.{region}.amazonaws.com.cn"
        ));
    }
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; \
         connect-src {connect}; worker-src 'self' blob:; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    );
    // Origins were checked by `parse_origin` (ASCII, no separators), so this always succeeds.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Burrow: the app is not built</title></head>
<body>
<h1>The browser app is not built yet</h1>
<p>This is <code>burrow serve</code>; it serves the app from its <code>--static</code> directory
(default <code>dist</code>), which has no <code>index.html</code>.</p>
<p>Build it with <code>cargo xtask demo</code> (or <code>trunk build --release</code> in
<code>app/</code>), then reload this page. The tunneling service itself
(<code>/tunnel</code>, the control plane and <code>/cookie</code>) is running.</p>
</body></html>
"#;

/// Serves the app, or explains that it is missing.
pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    if handshake::is_upgrade(request.headers()) {
        return handshake::refusal(
            StatusCode::BAD_REQUEST,
            handshake::OTHER_PATH_MESSAGE,
            &new_channel_id(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return with_policy(&state, StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let dir = state.static_dir.clone();
    let index = dir.join("index.html");
    if !index.is_file() {
        let status = if request.uri().path() == "/" {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        return with_policy(&state, (status, Html(NOT_BUILT)).into_response());
    }
    let last = request.uri().path().rsplit('/').next().unwrap_or_default();
    let files = ServeDir::new(&dir).precompressed_br().precompressed_gzip();
    let response = if last.contains('.') {
        files.oneshot(request).await
    } else {
        files
            .fallback(
                ServeFile::new(index)
                    .precompressed_br()
                    .precompressed_gzip(),
            )
            .oneshot(request)
            .await
    };
    match response {
        Ok(response) => with_policy(&state, response.map(Body::new)),
        Err(never) => match never {},
    }
}

fn with_policy(state: &AppState, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The body depends on Accept-Encoding (the .br/.gz copies): caches must keep them apart.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy covers every region the app offers in its region list.
    #[test]
    fn the_policy_covers_the_apps_regions() {
        let source = include_str!("../../../app/src/components/endpoint.rs");
        let start = source
            .find("pub const REGIONS")
            .expect("the app's region list");
        let end = start + source[start..].find("];").expect("end of the list");
        let offered: Vec<&str> = source[start..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix("(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert!(offered.len() >= 20, "{offered:?}");
        let value = csp(&[], false);
        let policy = value.to_str().expect("ASCII");
        for region in offered {
            assert!(
                policy.contains(&format!("wss://data.tunneling.iot.{region}.amazonaws.com ")),
                "{region} missing from {policy}"
            );
        }
        assert!(policy.contains("wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn"));
        assert!(!policy.contains("*."), "no wildcard hosts: {policy}");
        assert!(
            !policy.contains(" ws: ") && !policy.contains(" wss: "),
            "{policy}"
        );
    }
}
