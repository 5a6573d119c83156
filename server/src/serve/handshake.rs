//! The `/tunnel` handshake rules shared by the emulator and the relay: request size, origin,
//! `local-proxy-mode`, subprotocols, the access token (header, cookie or query parameter —
//! exactly one value in total) and the client token; and the HTTP answer to a refused handshake
//! (a 4xx with the reason in the body and in `X-Status-Reason`, plus a `channel-id`).
//!
//! It only reads the request head; whether a token is valid is the registry's decision (emulator)
//! or the upstream's (relay).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use burrow_proto::Role;
use rand::RngCore as _;

use super::origins::Origins;

// The handshake's names (subprotocols, headers, cookies) are the protocol crate's; the service
// speaks every subprotocol, most capable first.
pub(crate) use burrow_proto::handshake::{
    ACCESS_TOKEN_HEADER, CHANNEL_ID_HEADER, CLIENT_TOKEN_COOKIE, CLIENT_TOKEN_HEADER,
    STATUS_REASON_HEADER, SUBPROTOCOL_V1, SUBPROTOCOLS, TOKEN_COOKIE,
};
/// Largest WebSocket message the WebSocket layer reads at all (emulator and relay); anything
/// between the protocol limit and this is refused by the checker with a clean 1009 close.
pub(crate) const WS_READ_LIMIT: usize = 4 * burrow_proto::codec::MAX_WS_MESSAGE_LEN;
/// The largest handshake request accepted, in bytes (request line and headers).
pub(crate) const MAX_REQUEST_LEN: usize = 4096;
/// The message a reused token gets (as the real service words it).
pub(crate) const TOKEN_SPENT_MESSAGE: &str =
    "Invalid access token: The access token was previously used and can not be used again.";
/// The refusal of a WebSocket upgrade on any path but `/tunnel` (HTTP 400, as the real service).
pub(crate) const OTHER_PATH_MESSAGE: &str =
    "Bad request: WebSocket upgrades are only accepted on /tunnel";
/// The message a client token that does not match gets.
pub(crate) const CLIENT_TOKEN_MISMATCH_MESSAGE: &str = "Invalid client token: The provided client token does not match the client token that was previously set.";

/// A secret (token) that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret's text, for the one place that needs it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a `/tunnel` handshake was refused. Every variant is the client's fault (4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// Request line and headers over [`MAX_REQUEST_LEN`].
    #[error("Request too large: the handshake request must not exceed 4096 bytes")]
    TooLarge,
    /// Not a WebSocket upgrade.
    #[error("Bad request: expected a WebSocket upgrade on /tunnel")]
    NotUpgrade,
    /// A browser upgrade from an origin not on the allowlist.
    #[error("Forbidden: origin not allowed")]
    OriginNotAllowed,
    /// `local-proxy-mode` missing or not `source` / `destination`.
    #[error("Invalid local-proxy-mode: expected source or destination")]
    BadMode,
    /// No supported subprotocol offered.
    #[error("Unsupported Sec-WebSocket-Protocol: offer aws.iot.securetunneling-3.0, -2.0 or -1.0")]
    NoSubprotocol,
    /// No access token.
    #[error("Missing access token: set the access-token header or the awsiot-tunnel-token cookie")]
    NoToken,
    /// More than one access token value.
    #[error(
        "Multiple access tokens: exactly one access-token header, awsiot-tunnel-token cookie or access-token parameter is allowed"
    )]
    ManyTokens,
    /// More than one client token value.
    #[error("Multiple client tokens: only one client-token value is allowed")]
    ManyClientTokens,
    /// A client token that does not match `^[a-zA-Z0-9-]{32,128}$`.
    #[error("Invalid client token: it must match ^[a-zA-Z0-9-]{{32,128}}$")]
    BadClientToken,
    /// The token is not a current token of any tunnel.
    #[error("Invalid access token")]
    UnknownToken,
    /// The token is for the other mode.
    #[error("Invalid access token: the access token is not valid for local-proxy-mode={}", .0.mode_name())]
    ModeMismatch(Role),
    /// The tunnel is closed or expired.
    #[error("Invalid access token: the tunnel is closed")]
    TunnelClosed,
    /// The token was already used without a client token.
    #[error("{}", TOKEN_SPENT_MESSAGE)]
    TokenSpent,
    /// The token is bound to another client token.
    #[error("{}", CLIENT_TOKEN_MISMATCH_MESSAGE)]
    ClientTokenMismatch,
}

/// The access-token values of a request's `access-token` headers and `awsiot-tunnel-token`
/// cookies, in that order (the handshake also reads the query; exactly one value is allowed).
pub(crate) fn header_and_cookie_tokens(headers: &HeaderMap) -> Vec<String> {
    let mut tokens: Vec<String> = headers
        .get_all(ACCESS_TOKEN_HEADER)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .collect();
    tokens.extend(cookies(headers, TOKEN_COOKIE).map(str::to_owned));
    tokens
}

impl HandshakeError {
    /// The HTTP status of the refusal.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HandshakeError::OriginNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The refusal as an HTTP response carrying `channel_id`.
    pub(crate) fn response(&self, channel_id: &str) -> Response {
        refusal(self.status(), &self.to_string(), channel_id)
    }
}

/// A refused handshake: `status`, the reason as the body and in `X-Status-Reason`.
pub(crate) fn refusal(status: StatusCode, reason: &str, channel_id: &str) -> Response {
    let mut response = (status, reason.to_owned()).into_response();
    let headers = response.headers_mut();
    // Reasons are ASCII text made here or taken from a header value; fall back to the status
    // text if one ever is not a valid header value.
    let value = HeaderValue::from_str(reason).unwrap_or_else(|_| {
        HeaderValue::from_static(status.canonical_reason().unwrap_or("Refused"))
    });
    headers.insert(STATUS_REASON_HEADER, value);
    if let Ok(id) = HeaderValue::from_str(channel_id) {
        headers.insert(CHANNEL_ID_HEADER, id);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A fresh session id in the shape of AWS's `channel-id` header.
pub(crate) fn new_channel_id() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..8),
        h(8..12),
        h(12..16),
        h(16..24),
        &h(0..4)
    )
}

/// What a valid `/tunnel` request asks for.
#[derive(Debug, Clone)]
pub(crate) struct TunnelRequest {
    /// `local-proxy-mode`.
    pub mode: Role,
    /// The subprotocols offered, in the client's order.
    pub offered: Vec<String>,
    /// The one access token.
    pub token: Secret,
    /// The client token, if any.
    pub client_token: Option<Secret>,
}

impl TunnelRequest {
    /// The subprotocol the emulator picks: the newest the client offered.
    pub(crate) fn best_protocol(&self) -> Option<&'static str> {
        SUBPROTOCOLS
            .into_iter()
            .find(|p| self.offered.iter().any(|o| o == p))
    }
}

/// The size of the request head as it came over the wire (give or take whitespace).
pub(crate) fn request_len(parts: &request::Parts) -> usize {
    let line = parts.method.as_str().len()
        + 1
        + parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + " HTTP/1.1\r\n".len();
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The values of every cookie called `name` in every `Cookie` header.
pub(crate) fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// The decoded query parameters of the request.
fn query_pairs(parts: &request::Parts) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// Whether `token` is a well-formed client token.
pub(crate) fn is_valid_client_token(token: &str) -> bool {
    (32..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Applies the handshake rules that need no tunnel state. `client_token_cookie` also takes the
/// client token from the [`CLIENT_TOKEN_COOKIE`] cookie (relay mode).
pub(crate) fn parse(
    parts: &request::Parts,
    origins: &Origins,
    client_token_cookie: bool,
) -> Result<TunnelRequest, HandshakeError> {
    if request_len(parts) > MAX_REQUEST_LEN {
        return Err(HandshakeError::TooLarge);
    }
    if !is_upgrade(&parts.headers) {
        return Err(HandshakeError::NotUpgrade);
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(|o| origins.allows(o))
    {
        return Err(HandshakeError::OriginNotAllowed);
    }
    let query = query_pairs(parts);
    let modes: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "local-proxy-mode")
        .map(|(_, v)| v.as_str())
        .collect();
    let mode = match modes.as_slice() {
        [one] => Role::from_mode_name(one).ok_or(HandshakeError::BadMode)?,
        _ => return Err(HandshakeError::BadMode),
    };
    let offered: Vec<String> = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if !SUBPROTOCOLS.iter().any(|p| offered.iter().any(|o| o == p)) {
        return Err(HandshakeError::NoSubprotocol);
    }
    let mut tokens = header_and_cookie_tokens(&parts.headers);
    tokens.extend(
        query
            .iter()
            .filter(|(k, _)| k == ACCESS_TOKEN_HEADER)
            .map(|(_, v)| v.clone()),
    );
    let token = match tokens.len() {
        0 => return Err(HandshakeError::NoToken),
        1 => Secret::new(tokens.remove(0)),
        _ => return Err(HandshakeError::ManyTokens),
    };
    if token.expose().is_empty() {
        return Err(HandshakeError::NoToken);
    }
    let mut client_tokens: Vec<String> = parts
        .headers
        .get_all(CLIENT_TOKEN_HEADER)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .collect();
    if client_token_cookie {
        client_tokens.extend(cookies(&parts.headers, CLIENT_TOKEN_COOKIE).map(str::to_owned));
    }
    let client_token = match client_tokens.len() {
        0 => None,
        1 => Some(Secret::new(client_tokens.remove(0))),
        _ => return Err(HandshakeError::ManyClientTokens),
    };
    if let Some(ct) = &client_token
        && !is_valid_client_token(ct.expose())
    {
        return Err(HandshakeError::BadClientToken);
    }
    Ok(TunnelRequest {
        mode,
        offered,
        token,
        client_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = Request::builder()
            .uri(uri)
            .header("upgrade", "websocket")
            .header("connection", "upgrade");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    fn origins() -> Origins {
        Origins::new(vec!["http://127.0.0.1:8080".into()])
    }

    const P3: (&str, &str) = ("sec-websocket-protocol", "aws.iot.securetunneling-3.0");

    fn check(uri: &str, headers: &[(&str, &str)]) -> Result<TunnelRequest, HandshakeError> {
        parse(&parts(uri, headers), &origins(), false)
    }

    #[test]
    fn token_from_exactly_one_place() {
        let src = "/tunnel?local-proxy-mode=source";
        let ok = check(src, &[P3, ("access-token", "abc")]).expect("header");
        assert_eq!(ok.token.expose(), "abc");
        assert_eq!(ok.mode, Role::Source);
        let ok =
            check(src, &[P3, ("cookie", "x=1; awsiot-tunnel-token=abc; y=2")]).expect("cookie");
        assert_eq!(ok.token.expose(), "abc");
        let ok = check("/tunnel?local-proxy-mode=source&access-token=a%2Bb", &[P3]).expect("query");
        assert_eq!(ok.token.expose(), "a+b");
        assert_eq!(check(src, &[P3]).err(), Some(HandshakeError::NoToken));
        assert_eq!(
            check(
                src,
                &[
                    P3,
                    ("access-token", "a"),
                    ("cookie", "awsiot-tunnel-token=a")
                ]
            )
            .err(),
            Some(HandshakeError::ManyTokens)
        );
        assert_eq!(
            check(src, &[P3, ("access-token", "a"), ("access-token", "b")]).err(),
            Some(HandshakeError::ManyTokens)
        );
        assert_eq!(
            check(
                "/tunnel?local-proxy-mode=source&access-token=a",
                &[P3, ("cookie", "awsiot-tunnel-token=a")]
            )
            .err(),
            Some(HandshakeError::ManyTokens)
        );
    }

    #[test]
    fn mode_subprotocol_size_and_origin() {
        let t = ("access-token", "abc");
        assert_eq!(
            check("/tunnel", &[P3, t]).err(),
            Some(HandshakeError::BadMode)
        );
        assert_eq!(
            check("/tunnel?local-proxy-mode=both", &[P3, t]).err(),
            Some(HandshakeError::BadMode)
        );
        assert_eq!(
            check("/tunnel?local-proxy-mode=destination", &[t]).err(),
            Some(HandshakeError::NoSubprotocol)
        );
        let ok = check(
            "/tunnel?local-proxy-mode=destination",
            &[
                (
                    "sec-websocket-protocol",
                    "x, aws.iot.securetunneling-2.0, aws.iot.securetunneling-3.0",
                ),
                t,
            ],
        )
        .expect("valid");
        assert_eq!(ok.best_protocol(), Some("aws.iot.securetunneling-3.0"));
        let big = "x".repeat(MAX_REQUEST_LEN);
        assert_eq!(
            check("/tunnel?local-proxy-mode=source", &[P3, t, ("x-pad", &big)]).err(),
            Some(HandshakeError::TooLarge)
        );
        assert_eq!(
            check(
                "/tunnel?local-proxy-mode=source",
                &[P3, t, ("origin", "http://evil.example")]
            )
            .err(),
            Some(HandshakeError::OriginNotAllowed)
        );
        assert!(
            check(
                "/tunnel?local-proxy-mode=source",
                &[P3, t, ("origin", "http://127.0.0.1:8080")]
            )
            .is_ok()
        );
    }

    #[test]
    fn client_tokens() {
        let src = "/tunnel?local-proxy-mode=source";
        let good = "0123456789abcdef-0123456789ABCDEF";
        let ok = check(src, &[P3, ("access-token", "a"), ("client-token", good)]).expect("valid");
        assert_eq!(ok.client_token.as_ref().map(Secret::expose), Some(good));
        assert_eq!(
            check(src, &[P3, ("access-token", "a"), ("client-token", "short")]).err(),
            Some(HandshakeError::BadClientToken)
        );
        assert_eq!(
            check(
                src,
                &[
                    P3,
                    ("access-token", "a"),
                    ("client-token", good),
                    ("client-token", good)
                ]
            )
            .err(),
            Some(HandshakeError::ManyClientTokens)
        );
        // The client-token cookie only counts in relay mode.
        let cookie = format!("awsiot-tunnel-token=a; awsiot-tunnel-client-token={good}");
        let p = parts(src, &[P3, ("cookie", &cookie)]);
        assert!(
            parse(&p, &origins(), false)
                .expect("valid")
                .client_token
                .is_none()
        );
        assert!(
            parse(&p, &origins(), true)
                .expect("valid")
                .client_token
                .is_some()
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("super-secret".into());
        assert!(!format!("{s:?}").contains("super"));
    }

    #[test]
    fn refusals_carry_the_reason_twice() {
        let r = HandshakeError::TokenSpent.response("abc");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()
                .get("x-status-reason")
                .and_then(|v| v.to_str().ok()),
            Some(TOKEN_SPENT_MESSAGE)
        );
        assert_eq!(
            r.headers().get("channel-id").and_then(|v| v.to_str().ok()),
            Some("abc")
        );
        assert_eq!(
            HandshakeError::OriginNotAllowed.status(),
            StatusCode::FORBIDDEN
        );
    }
}
