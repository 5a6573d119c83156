//! The cookie helper: `POST /cookie` with `{"token": "…"}` answers with
//! `Set-Cookie: awsiot-tunnel-token=…; Path=/tunnel; Max-Age=…; HttpOnly; SameSite=…` (and
//! `Secure` with TLS), because a page cannot put a header on its WebSocket.
//!
//! Browsers store a `Set-Cookie` before they look at CORS headers, so CORS alone would let any
//! site plant a token with a form post. The helper therefore checks, before anything else, that
//! the `Origin` is on the allowlist (403 and no cookie otherwise, also when `Origin` is absent),
//! and that the body is `application/json` (a form cannot send that without a preflight). It
//! validates the token's characters before writing it into a header, never sends `Domain`,
//! always answers `Vary: Origin` and `Cache-Control: no-store`, and reflects only allowlisted
//! origins with `Access-Control-Allow-Credentials: true`.
//!
//! Emulator mode: the token must be a current token of an open tunnel, and `Max-Age` is the
//! tunnel's remaining life. Relay mode: the token is opaque (AWS checks it), `Max-Age` is 12 h,
//! and a fresh random client token is stored in its own HttpOnly cookie,
//! `awsiot-tunnel-client-token`, so the relay can reconnect a dropped page (the answer says
//! `"reconnectable": true`). A closed tunnel's token is refused with `"status": "closed"`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore as _;

use super::AppState;
use super::handshake::{CLIENT_TOKEN_COOKIE, TOKEN_COOKIE};

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024;
/// Longest token accepted.
const MAX_TOKEN_LEN: usize = 4096;
/// `Max-Age` in relay mode: the longest a tunnel can live.
const RELAY_MAX_AGE_SECS: u64 = 720 * 60;
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Why the helper refused; each maps to a status and a JSON error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CookieError {
    #[error("origin not allowed")]
    Origin,
    #[error("content type must be application/json")]
    ContentType,
    #[error("request body too large")]
    TooLarge,
    #[error("body must be a JSON object {{\"token\": \"...\"}}")]
    Malformed,
    #[error(
        "token has characters that are not allowed (expected letters, digits and - _ . ~ + / =)"
    )]
    BadToken,
    #[error("unknown, revoked or expired access token")]
    UnknownToken,
    #[error("the tunnel is closed or has expired")]
    TunnelClosed,
}

impl CookieError {
    fn status(&self) -> StatusCode {
        match self {
            CookieError::Origin => StatusCode::FORBIDDEN,
            CookieError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CookieError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The probe's word for a token refusal (`invalid`, `closed`), so the page can name the
    /// cause the same way after either call.
    fn word(&self) -> Option<&'static str> {
        match self {
            CookieError::UnknownToken => Some("invalid"),
            CookieError::TunnelClosed => Some("closed"),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct CookieRequest {
    token: String,
}

/// Whether `token` may go into a cookie value unquoted: no separators, spaces, quotes,
/// semicolons, commas, backslashes or control characters.
pub(crate) fn is_cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
        })
}

/// The allowlisted `Origin` of the request, if there is one.
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    state.origins.allows(text).then(|| origin.clone())
}

/// Headers every helper response carries.
fn base_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn cors(response: &mut Response, origin: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
}

fn error(err: &CookieError, origin: Option<HeaderValue>) -> Response {
    let mut body = serde_json::json!({ "error": err.to_string() });
    if let Some(word) = err.word() {
        body["status"] = word.into();
    }
    let body = body.to_string();
    let mut response = (
        err.status(),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    base_headers(&mut response);
    // An allowed page may read why it failed; anyone else learns nothing.
    if let Some(origin) = origin {
        cors(&mut response, origin);
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A random client token: 48 characters of `[A-Za-z0-9-]` (AWS wants 32 to 128).
fn new_client_token() -> String {
    let mut bytes = [0u8; 36];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .replace('_', "-")
}

fn cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> String {
    let mut cookie = format!(
        "{name}={value}; Path=/tunnel; Max-Age={max_age}; HttpOnly; SameSite={}",
        state.same_site.attribute()
    );
    if state.tls {
        cookie.push_str("; Secure");
    }
    cookie
}

/// `POST /cookie`.
pub(crate) async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(origin) = allowed_origin(&state, &headers) else {
        tracing::info!(origin = ?headers.get(header::ORIGIN), "cookie helper: origin refused");
        return error(&CookieError::Origin, None);
    };
    match set_cookie(&state, &headers, &body) {
        Ok(response) => {
            let mut response = response;
            base_headers(&mut response);
            cors(&mut response, origin);
            response
        }
        Err(err) => error(&err, Some(origin)),
    }
}

fn set_cookie(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, CookieError> {
    if !is_json(headers) {
        return Err(CookieError::ContentType);
    }
    if body.len() > MAX_BODY {
        return Err(CookieError::TooLarge);
    }
    let request: CookieRequest =
        serde_json::from_slice(body).map_err(|_| CookieError::Malformed)?;
    if !is_cookie_safe(&request.token) {
        return Err(CookieError::BadToken);
    }
    let max_age = if state.upstream.is_some() {
        RELAY_MAX_AGE_SECS
    } else {
        let refused = || {
            if state.registry.is_closed_token(&request.token) {
                CookieError::TunnelClosed
            } else {
                CookieError::UnknownToken
            }
        };
        let life = state
            .registry
            .token_life(&request.token)
            .ok_or_else(refused)?;
        let secs = life.as_secs();
        if secs == 0 {
            return Err(refused());
        }
        secs
    };
    let mut cookies = vec![cookie(state, TOKEN_COOKIE, &request.token, max_age)];
    if state.upstream.is_some() {
        cookies.push(cookie(
            state,
            CLIENT_TOKEN_COOKIE,
            &new_client_token(),
            max_age,
        ));
    }
    // The tunnel's identity is not secret; the page keys its known hosts by it.
    let (tunnel_id, thing_name) = match state.upstream {
        Some(_) => (None, None),
        None => state
            .registry
            .token_tunnel(&request.token)
            .map_or((None, None), |(id, thing)| (Some(id), thing)),
    };
    let body = serde_json::json!({
        "ok": true,
        "maxAge": max_age,
        "tunnelId": tunnel_id,
        "thingName": thing_name,
        // Relay mode: the client token keeps the token usable for this page after a drop.
        "reconnectable": state.upstream.is_some(),
    })
    .to_string();
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    for cookie in cookies {
        // The token passed `is_cookie_safe`, so the header value is plain ASCII.
        let value = HeaderValue::from_str(&cookie).map_err(|_| CookieError::BadToken)?;
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    tracing::info!(
        max_age,
        relay = state.upstream.is_some(),
        "cookie helper: token cookie set"
    );
    Ok(response)
}

/// `OPTIONS /cookie`: the CORS preflight, answered only for allowlisted origins asking to POST.
pub(crate) async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let method_ok = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|m| m.as_bytes() == b"POST");
    let Some(origin) = allowed_origin(&state, &headers).filter(|_| method_ok) else {
        let mut response = StatusCode::FORBIDDEN.into_response();
        base_headers(&mut response);
        return response;
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    base_headers(&mut response);
    cors(&mut response, origin);
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_characters() {
        assert!(is_cookie_safe("AQGA-abc_DEF.123~+/="));
        for bad in [
            "",
            "a;b",
            "a b",
            "a,b",
            "a\"b",
            "a\\b",
            "a\r\nSet-Cookie: x=y",
            "é",
            "a;Domain=evil.example",
        ] {
            assert!(!is_cookie_safe(bad), "{bad:?}");
        }
        assert!(!is_cookie_safe(&"a".repeat(MAX_TOKEN_LEN + 1)));
    }

    #[test]
    fn client_tokens_match_aws_rules() {
        let t = new_client_token();
        assert!(super::super::handshake::is_valid_client_token(&t), "{t}");
        assert_ne!(t, new_client_token());
    }
}
