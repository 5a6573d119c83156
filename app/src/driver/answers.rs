//! What the cookie helper and the handshake probe answer, and the errors that follow from it.
//!
//! Pure parsing and mapping, tested natively; the HTTP calls themselves are in `cookie`
//! (browser only). Answers are hostile input: unknown fields are ignored, every string is
//! cut to a bounded length before it reaches the page.

use serde::Deserialize;

use super::error::TunnelError;

/// Longest helper-provided text shown to the operator.
const MAX_SHOWN: usize = 300;

/// The cookie helper's success answer (every field optional, all non-secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CookieAnswer {
    /// The id of the token's tunnel.
    #[serde(rename = "tunnelId", default)]
    pub tunnel_id: Option<String>,
    /// The tunnel destination's thing name.
    #[serde(rename = "thingName", default)]
    pub thing_name: Option<String>,
    /// Whether the token stays usable for this page after a lost connection (a relay keeps a
    /// client token for it), so the session may dial again by itself.
    #[serde(default)]
    pub reconnectable: bool,
}

impl CookieAnswer {
    /// Parses a success body; anything unparsable (or empty) is an answer without details.
    pub fn parse(body: &str) -> Self {
        let mut answer: Self = serde_json::from_str(body).unwrap_or_default();
        answer.tunnel_id = answer.tunnel_id.and_then(|id| identity_part(&id));
        answer.thing_name = answer.thing_name.and_then(|name| identity_part(&name));
        answer
    }
}

/// Keeps a helper-provided identity only when it is short and plain (it ends up in a
/// known-hosts line and in the page).
fn identity_part(text: &str) -> Option<String> {
    let text = text.trim();
    let plain = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| text.to_owned())
}

/// The error for a cookie helper answer with a non-success HTTP status. A helper that knows
/// the token's tunnel is closed says so with the probe's word (`"status": "closed"`).
pub fn cookie_refusal(status: u16, body: &str) -> TunnelError {
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        status: Option<String>,
    }
    let message = match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) if parsed.status.as_deref() == Some("closed") => {
            return TunnelError::TunnelClosed;
        }
        Ok(parsed) => parsed.error.or(parsed.message).unwrap_or_default(),
        Err(_) => body.to_owned(),
    };
    TunnelError::CookieHelperRefused {
        status,
        message: shown(&message),
    }
}

/// The probe's answer after a failed WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusAnswer {
    /// `ok`, `spent`, `invalid`, `wrong-mode`, `closed`, `missing` or `busy`.
    pub status: String,
    /// The text the upgrade would have answered.
    #[serde(default)]
    pub message: String,
}

/// The error a failed handshake stands for, given the probe's answer (`None`: no usable
/// answer). `code` and `reason` are what the WebSocket's close event said.
pub fn handshake_error(
    probe: Option<StatusAnswer>,
    aws: bool,
    code: u16,
    reason: &str,
) -> TunnelError {
    let Some(answer) = probe else {
        return TunnelError::HandshakeRefused {
            aws,
            detail: close_detail(code, reason),
        };
    };
    let message = shown(&answer.message);
    match answer.status.as_str() {
        "spent" => TunnelError::TokenSpent,
        "invalid" => TunnelError::TokenInvalid { detail: message },
        "wrong-mode" => TunnelError::TokenWrongMode,
        "closed" => TunnelError::TunnelClosed,
        "missing" => TunnelError::HandshakeRefused {
            aws,
            detail: "the browser sent no token cookie: it may block cookies for this site"
                .to_owned(),
        },
        _ => TunnelError::HandshakeRefused {
            aws,
            detail: if message.is_empty() {
                close_detail(code, reason)
            } else {
                message
            },
        },
    }
}

/// Parses a probe body.
pub fn parse_status(body: &str) -> Option<StatusAnswer> {
    serde_json::from_str(body).ok()
}

fn close_detail(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        format!("WebSocket close code {code}")
    } else {
        format!("WebSocket close code {code}: {}", shown(reason))
    }
}

/// Cuts text from a peer to a bounded length, without control characters.
pub fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SHOWN)
        .collect();
    if text.chars().count() > MAX_SHOWN {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_answer_reads_identity_and_ignores_the_rest() {
        let answer = CookieAnswer::parse(r#"{"tunnelId":"abc-123","thingName":"pump-7","x":1}"#);
        assert_eq!(answer.tunnel_id.as_deref(), Some("abc-123"));
        assert_eq!(answer.thing_name.as_deref(), Some("pump-7"));
        assert_eq!(CookieAnswer::parse(""), CookieAnswer::default());
        assert_eq!(CookieAnswer::parse("not json"), CookieAnswer::default());
        assert!(!answer.reconnectable);
        let hostile = CookieAnswer::parse(r#"{"tunnelId":"a b,c","thingName":null}"#);
        assert_eq!(hostile, CookieAnswer::default());
        let relay = CookieAnswer::parse(r#"{"ok":true,"maxAge":43200,"reconnectable":true}"#);
        assert!(relay.reconnectable);
        assert_eq!(relay.tunnel_id, None);
    }

    #[test]
    fn cookie_refusals_keep_the_helpers_words() {
        assert_eq!(
            cookie_refusal(400, r#"{"error":"token has invalid characters"}"#),
            TunnelError::CookieHelperRefused {
                status: 400,
                message: "token has invalid characters".into()
            }
        );
        assert_eq!(
            cookie_refusal(
                400,
                r#"{"error":"unknown, revoked or expired access token","status":"invalid"}"#
            ),
            TunnelError::CookieHelperRefused {
                status: 400,
                message: "unknown, revoked or expired access token".into()
            }
        );
        assert_eq!(
            cookie_refusal(
                400,
                r#"{"error":"the tunnel is closed or has expired","status":"closed"}"#
            ),
            TunnelError::TunnelClosed
        );
        assert_eq!(
            cookie_refusal(403, "origin not allowed\n"),
            TunnelError::CookieHelperRefused {
                status: 403,
                message: "origin not allowed".into()
            }
        );
    }

    #[test]
    fn probe_answers_map_to_token_and_tunnel_errors() {
        let probe = |status: &str, message: &str| {
            Some(StatusAnswer {
                status: status.into(),
                message: message.into(),
            })
        };
        let cases = [
            (probe("spent", "used"), TunnelError::TokenSpent),
            (
                probe("invalid", "unknown token"),
                TunnelError::TokenInvalid {
                    detail: "unknown token".into(),
                },
            ),
            (probe("wrong-mode", ""), TunnelError::TokenWrongMode),
            (probe("closed", ""), TunnelError::TunnelClosed),
            (
                probe("ok", ""),
                TunnelError::HandshakeRefused {
                    aws: false,
                    detail: "WebSocket close code 1006".into(),
                },
            ),
            (
                None,
                TunnelError::HandshakeRefused {
                    aws: false,
                    detail: "WebSocket close code 1006".into(),
                },
            ),
        ];
        for (answer, expect) in cases {
            assert_eq!(handshake_error(answer, false, 1006, ""), expect);
        }
    }

    #[test]
    fn probe_bodies_parse_or_are_ignored() {
        assert_eq!(
            parse_status(r#"{"status":"spent","message":"m"}"#),
            Some(StatusAnswer {
                status: "spent".into(),
                message: "m".into()
            })
        );
        assert_eq!(parse_status("<html>404</html>"), None);
    }

    #[test]
    fn shown_text_is_bounded_and_plain() {
        assert_eq!(shown("a\u{1b}[31mb\r\n"), "a[31mb");
        let long = "x".repeat(1000);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
    }
}
