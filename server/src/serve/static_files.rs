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

/// The policy for every page this server sends.
///
/// - `script-src 'self' 'wasm-unsafe-eval'`: the app's glue and a same-origin loader script
///   (no inline scripts), plus compiling its WebAssembly.
/// - `style-src 'unsafe-inline'`: xterm.js and Leptos set inline styles (styles only).
/// - `connect-src`: the same origin (cookie helper, `/tunnel` over ws/wss) and AWS's regional
///   endpoints for direct connections.
/// - `img-src data: blob:`, `worker-src blob:`: what xterm.js' addons use.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; \
     connect-src 'self' ws: wss: https://*.amazonaws.com wss://*.amazonaws.com; \
     worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'none'";

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
        return with_policy(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let dir = state.static_dir.clone();
    let index = dir.join("index.html");
    if !index.is_file() {
        let status = if request.uri().path() == "/" {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        return with_policy((status, Html(NOT_BUILT)).into_response());
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
        Ok(response) => with_policy(response.map(Body::new)),
        Err(never) => match never {},
    }
}

fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
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
