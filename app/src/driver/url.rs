//! The URLs the driver uses: the tunnel WebSocket, the handshake-failure probe, and the
//! token-free label of an endpoint (for display and the known-hosts store).
//!
//! Pure string work, tested natively. It never logs: one of these URLs carries the token
//! (the direct-AWS WebSocket URL), so callers must not log [`tunnel_url`]'s result either.

use burrow_proto::Role;
use burrow_proto::handshake::{
    ACCESS_TOKEN_HEADER, MODE_PARAM, SUBPROTOCOL_V2, SUBPROTOCOL_V3, TUNNEL_PATH, tunnel_path,
};

use crate::session::{SessionError, TunnelEndpoint};

/// The WebSocket subprotocols the app offers, most preferred first. The format the page writes
/// is the form's choice (V1 for AWS's device client), not derived from the subprotocol.
pub const SUBPROTOCOLS: [&str; 2] = [SUBPROTOCOL_V3, SUBPROTOCOL_V2];

/// A same-site endpoint's base split into its WebSocket scheme and the rest (`host[:port][/path]`).
fn split_base(base: &str) -> Result<(&'static str, &str), SessionError> {
    let base = base.trim();
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| SessionError::Input(format!("the endpoint {base:?} needs a scheme")))?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => {
            return Err(SessionError::Input(format!(
                "the endpoint's scheme {other:?} is not http(s) or ws(s)"
            )));
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(SessionError::Input(format!(
            "the endpoint {base:?} has no host"
        )));
    }
    if rest.contains(['?', '#', ' ']) {
        return Err(SessionError::Input(format!(
            "the endpoint {base:?} must not have a query, fragment or spaces"
        )));
    }
    Ok((if secure { "wss" } else { "ws" }, rest))
}

/// Checks an AWS region name (e.g. `eu-west-1`).
fn check_region(region: &str) -> Result<&str, SessionError> {
    let region = region.trim();
    let valid = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(region)
    } else {
        Err(SessionError::Input(format!(
            "{region:?} is not an AWS region name (like eu-west-1)"
        )))
    }
}

/// The endpoint's WebSocket base without path or token, e.g. `ws://127.0.0.1:8080` or
/// `wss://data.tunneling.iot.eu-west-1.amazonaws.com`.
pub fn endpoint_label(endpoint: &TunnelEndpoint) -> Result<String, SessionError> {
    match endpoint {
        TunnelEndpoint::SameSite(base) => {
            let (scheme, rest) = split_base(base)?;
            Ok(format!("{scheme}://{rest}"))
        }
        TunnelEndpoint::AwsRegion(region) => Ok(format!(
            "wss://data.tunneling.iot.{}.amazonaws.com",
            check_region(region)?
        )),
    }
}

/// The URL of the tunnel WebSocket in source mode. For AWS directly the token rides in the
/// `access-token` query parameter (the only way a page can hand it over); same-site endpoints
/// get it from the cookie the helper set.
pub fn tunnel_url(endpoint: &TunnelEndpoint, token: &str) -> Result<String, SessionError> {
    let base = endpoint_label(endpoint)?;
    let path = tunnel_path("", Role::Source);
    match endpoint {
        TunnelEndpoint::SameSite(_) => Ok(format!("{base}{path}")),
        TunnelEndpoint::AwsRegion(_) => Ok(format!(
            "{base}{path}&{ACCESS_TOKEN_HEADER}={}",
            percent_encode(token)
        )),
    }
}

/// The same-site probe that says why a WebSocket handshake failed (`burrow serve` answers
/// `GET /tunnel/status?local-proxy-mode=source`, with the cookie, as JSON).
pub fn status_url(base: &str) -> Result<String, SessionError> {
    let (scheme, rest) = split_base(base)?;
    let http = if scheme == "wss" { "https" } else { "http" };
    let source = Role::Source.mode_name();
    Ok(format!(
        "{http}://{rest}{TUNNEL_PATH}/status?{MODE_PARAM}={source}"
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(base: &str) -> TunnelEndpoint {
        TunnelEndpoint::SameSite(base.to_owned())
    }

    #[test]
    fn same_site_urls_map_http_to_ws() {
        let cases = [
            (
                "http://127.0.0.1:8080",
                "ws://127.0.0.1:8080/tunnel?local-proxy-mode=source",
            ),
            (
                "https://b.example/",
                "wss://b.example/tunnel?local-proxy-mode=source",
            ),
            (
                "wss://b.example/relay",
                "wss://b.example/relay/tunnel?local-proxy-mode=source",
            ),
            ("WS://h:1", "ws://h:1/tunnel?local-proxy-mode=source"),
        ];
        for (base, expect) in cases {
            assert_eq!(tunnel_url(&same(base), "tok").expect(base), expect);
        }
    }

    #[test]
    fn same_site_url_never_carries_the_token() {
        let url = tunnel_url(&same("http://h"), "SECRET").expect("valid");
        assert!(!url.contains("SECRET"));
    }

    #[test]
    fn aws_url_carries_the_encoded_token() {
        let url =
            tunnel_url(&TunnelEndpoint::AwsRegion("eu-west-1".into()), "AQG/a+b=").expect("valid");
        assert_eq!(
            url,
            "wss://data.tunneling.iot.eu-west-1.amazonaws.com/tunnel?local-proxy-mode=source\
             &access-token=AQG%2Fa%2Bb%3D"
        );
    }

    #[test]
    fn bad_endpoints_are_input_errors() {
        for base in [
            "",
            "127.0.0.1:8080",
            "ftp://h",
            "http://",
            "http:///x",
            "http://h/?q=1",
        ] {
            assert!(
                matches!(tunnel_url(&same(base), "t"), Err(SessionError::Input(_))),
                "{base:?}"
            );
        }
        for region in ["", "EU-WEST-1", "eu west", "x/../y"] {
            assert!(
                matches!(
                    tunnel_url(&TunnelEndpoint::AwsRegion(region.into()), "t"),
                    Err(SessionError::Input(_))
                ),
                "{region:?}"
            );
        }
    }

    #[test]
    fn status_url_uses_http_schemes() {
        assert_eq!(
            status_url("ws://127.0.0.1:8080").expect("valid"),
            "http://127.0.0.1:8080/tunnel/status?local-proxy-mode=source"
        );
        assert_eq!(
            status_url("https://b.example/relay/").expect("valid"),
            "https://b.example/relay/tunnel/status?local-proxy-mode=source"
        );
    }

    #[test]
    fn labels_have_no_path_or_token() {
        assert_eq!(
            endpoint_label(&same("http://127.0.0.1:8080/")).expect("valid"),
            "ws://127.0.0.1:8080"
        );
        assert_eq!(
            endpoint_label(&TunnelEndpoint::AwsRegion("us-east-1".into())).expect("valid"),
            "wss://data.tunneling.iot.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode(" /?&=é"), "%20%2F%3F%26%3D%C3%A9");
    }
}
