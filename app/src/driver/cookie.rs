//! The two HTTP calls of a same-site tunnel, through `gloo-net`: handing the token to the cookie
//! helper, and asking the service why a WebSocket handshake failed.
//!
//! Browser only. The token travels in the POST body and nowhere else; it is not logged and
//! the serialized body is wiped after the call. Answers are interpreted in `answers`.

use gloo_net::http::Request;
use serde::Serialize;
use web_sys::RequestCredentials;
use zeroize::Zeroizing;

use super::answers::{CookieAnswer, StatusAnswer, cookie_refusal, parse_status};
use super::error::TunnelError;
use super::url::status_url;
use crate::endpoint::SiteBase;

#[derive(Serialize)]
struct TokenBody<'a> {
    token: &'a str,
}

/// POSTs the token to the cookie helper, which answers with `Set-Cookie` for the tunnel.
///
/// A network failure and a CORS refusal look the same to a page (a `TypeError`), so both
/// become [`TunnelError::CookieHelperUnreachable`]; HTTP errors carry their status.
pub async fn hand_over_token(helper_url: &str, token: &str) -> Result<CookieAnswer, TunnelError> {
    let body = Zeroizing::new(
        serde_json::to_string(&TokenBody {
            token: token.trim(),
        })
        .map_err(|err| TunnelError::Browser(format!("the token cannot be sent ({err})")))?,
    );
    let request = Request::post(helper_url)
        .credentials(RequestCredentials::Include)
        .header("Content-Type", "application/json")
        .body(body.as_str())
        .map_err(|_| TunnelError::Browser(format!("{helper_url:?} is not a usable URL")))?;
    let response = request
        .send()
        .await
        .map_err(|_| TunnelError::CookieHelperUnreachable {
            url: helper_url.to_owned(),
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(CookieAnswer::parse(&text))
    } else {
        Err(cookie_refusal(status, &text))
    }
}

/// Asks the same-site service why the handshake failed (`None` when it cannot say).
pub async fn probe_handshake(base: &SiteBase) -> Option<StatusAnswer> {
    let url = status_url(base);
    let response = Request::get(&url)
        .credentials(RequestCredentials::Include)
        .send()
        .await
        .ok()?;
    if !response.ok() {
        return None;
    }
    parse_status(&response.text().await.ok()?)
}
