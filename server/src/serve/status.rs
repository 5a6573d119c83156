//! `GET /tunnel/status?local-proxy-mode=source|destination`: why a tunnel WebSocket handshake
//! would be refused, answered as JSON.
//!
//! Browsers hide a refused upgrade's status and body from scripts (the page only sees close
//! code 1006), so after a failed handshake the page asks here, with the same cookie, and can tell
//! the operator "this token was already used" instead of "connection failed". The probe applies
//! the same checks as the handshake but never spends or binds a token. It only answers
//! allowlisted origins (or requests without an `Origin`), and never echoes a token.
//!
//! Answer: `{"status": S, "message": M}` with S one of `ok`, `missing`, `invalid`, `wrong-mode`,
//! `closed`, `spent`, `busy` (the token is bound to another client token) or, in relay mode,
//! `unknown` (the upstream service decides).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use burrow_proto::Role;

use super::AppState;
use super::handshake::{self, HandshakeError, header_and_cookie_tokens};

/// The probe's query string.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ProbeQuery {
    #[serde(rename = "local-proxy-mode")]
    mode: Option<String>,
}

/// The probe's status word for a handshake refusal.
fn status_word(err: &HandshakeError) -> &'static str {
    match err {
        HandshakeError::NoToken => "missing",
        HandshakeError::ModeMismatch(_) => "wrong-mode",
        HandshakeError::TunnelClosed => "closed",
        HandshakeError::TokenSpent => "spent",
        HandshakeError::ClientTokenMismatch => "busy",
        _ => "invalid",
    }
}

fn answer(status: StatusCode, word: &str, message: &str) -> Response {
    let body = serde_json::json!({ "status": word, "message": message }).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The one access token the request carries (cookie or header), as the handshake reads it.
fn token(headers: &HeaderMap) -> Result<String, HandshakeError> {
    match header_and_cookie_tokens(headers).as_slice() {
        [] => Err(HandshakeError::NoToken),
        [one] if one.is_empty() => Err(HandshakeError::NoToken),
        [one] => Ok(one.clone()),
        _ => Err(HandshakeError::ManyTokens),
    }
}

/// `GET /tunnel/status`.
pub(crate) async fn handle(
    State(state): State<AppState>,
    Query(query): Query<ProbeQuery>,
    headers: HeaderMap,
) -> Response {
    // A WebSocket upgrade here is one on a path other than `/tunnel`: 400, as everywhere else.
    if handshake::is_upgrade(&headers) {
        return handshake::refusal(
            StatusCode::BAD_REQUEST,
            handshake::OTHER_PATH_MESSAGE,
            &handshake::new_channel_id(),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(|o| state.origins.allows(o))
    {
        return answer(
            StatusCode::FORBIDDEN,
            "invalid",
            "Forbidden: origin not allowed",
        );
    }
    let mode = match query.mode.as_deref().and_then(Role::from_mode_name) {
        Some(mode) => mode,
        None => {
            let err = HandshakeError::BadMode;
            return answer(StatusCode::BAD_REQUEST, "invalid", &err.to_string());
        }
    };
    if state.upstream.is_some() {
        return answer(
            StatusCode::OK,
            "unknown",
            "relay mode: the upstream tunneling service checks the token",
        );
    }
    let checked = token(&headers).and_then(|token| state.registry.probe(&token, mode));
    match checked {
        Ok(()) => answer(StatusCode::OK, "ok", "the token would be accepted"),
        Err(err) => answer(StatusCode::OK, status_word(&err), &err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_proto::Role;

    use crate::serve::handshake::ACCESS_TOKEN_HEADER;

    #[test]
    fn refusals_map_to_the_words_the_page_knows() {
        assert_eq!(status_word(&HandshakeError::TokenSpent), "spent");
        assert_eq!(status_word(&HandshakeError::UnknownToken), "invalid");
        assert_eq!(
            status_word(&HandshakeError::ModeMismatch(Role::Source)),
            "wrong-mode"
        );
        assert_eq!(status_word(&HandshakeError::TunnelClosed), "closed");
        assert_eq!(status_word(&HandshakeError::NoToken), "missing");
        assert_eq!(status_word(&HandshakeError::ClientTokenMismatch), "busy");
    }

    #[test]
    fn token_comes_from_exactly_one_cookie_or_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers), Err(HandshakeError::NoToken));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; awsiot-tunnel-token=T1"),
        );
        assert_eq!(token(&headers).as_deref(), Ok("T1"));
        headers.insert(ACCESS_TOKEN_HEADER, HeaderValue::from_static("T2"));
        assert_eq!(token(&headers), Err(HandshakeError::ManyTokens));
    }
}
