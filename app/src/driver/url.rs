//! The URLs the driver uses: the tunnel WebSocket, the handshake-failure probe, and the
//! token-free label of an endpoint (for display and the known-hosts store).
//!
//! Pure string work on the endpoint the form parsed (nothing is checked again here), tested
//! natively. It never logs: one of these URLs carries the token
//! (the direct-AWS WebSocket URL), so callers must not log [`tunnel_url`]'s result either.

use burrow_proto::Role;
use burrow_proto::handshake::{
    ACCESS_TOKEN_HEADER, MODE_PARAM, SUBPROTOCOL_V2, SUBPROTOCOL_V3, TUNNEL_PATH, tunnel_path,
};

use crate::endpoint::{SiteBase, TunnelEndpoint};

/// The WebSocket subprotocols the app offers, most preferred first. The format the page writes
/// is the form's choice (V1 for AWS's device client), not derived from the subprotocol.
pub const SUBPROTOCOLS: [&str; 2] = [SUBPROTOCOL_V3, SUBPROTOCOL_V2];

/// The endpoint's WebSocket base without path or token, e.g. `ws://127.0.0.1:8080` or
/// `wss://data.tunneling.iot.eu-west-1.amazonaws.com`.
pub fn endpoint_label(endpoint: &TunnelEndpoint) -> String {
    match endpoint {
        TunnelEndpoint::SameSite(base) => base.ws_base(),
        TunnelEndpoint::AwsRegion(region) => region.data_plane_url(),
    }
}

/// The URL of the tunnel WebSocket in source mode. For AWS directly the token rides in the
/// `access-token` query parameter (the only way a page can hand it over); same-site endpoints
/// get it from the cookie the helper set.
pub fn tunnel_url(endpoint: &TunnelEndpoint, token: &str) -> String {
    let base = endpoint_label(endpoint);
    let path = tunnel_path("", Role::Source);
    match endpoint {
        TunnelEndpoint::SameSite(_) => format!("{base}{path}"),
        TunnelEndpoint::AwsRegion(_) => format!(
            "{base}{path}&{ACCESS_TOKEN_HEADER}={}",
            percent_encode(token)
        ),
    }
}

/// The same-site probe that says why a WebSocket handshake failed (`burrow serve` answers
/// `GET /tunnel/status?local-proxy-mode=source`, with the cookie, as JSON).
pub fn status_url(base: &SiteBase) -> String {
    let source = Role::Source.mode_name();
    format!(
        "{}{TUNNEL_PATH}/status?{MODE_PARAM}={source}",
        base.http_base()
    )
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
    use crate::endpoint::parse_endpoint;

    fn endpoint(input: &str) -> TunnelEndpoint {
        parse_endpoint(input, "http://page.example").expect(input)
    }

    fn base(input: &str) -> SiteBase {
        match endpoint(input) {
            TunnelEndpoint::SameSite(base) => base,
            other => panic!("{input}: {other:?}"),
        }
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
        for (input, expect) in cases {
            assert_eq!(tunnel_url(&endpoint(input), "tok"), expect);
        }
    }

    #[test]
    fn same_site_url_never_carries_the_token() {
        let url = tunnel_url(&endpoint("http://h"), "SECRET");
        assert!(!url.contains("SECRET"));
    }

    #[test]
    fn aws_url_carries_the_encoded_token() {
        let url = tunnel_url(&endpoint("eu-west-1"), "AQG/a+b=");
        assert_eq!(
            url,
            "wss://data.tunneling.iot.eu-west-1.amazonaws.com/tunnel?local-proxy-mode=source\
             &access-token=AQG%2Fa%2Bb%3D"
        );
    }

    #[test]
    fn status_url_uses_http_schemes() {
        assert_eq!(
            status_url(&base("ws://127.0.0.1:8080")),
            "http://127.0.0.1:8080/tunnel/status?local-proxy-mode=source"
        );
        assert_eq!(
            status_url(&base("https://b.example/relay/")),
            "https://b.example/relay/tunnel/status?local-proxy-mode=source"
        );
    }

    #[test]
    fn labels_have_no_path_or_token() {
        assert_eq!(
            endpoint_label(&endpoint("http://127.0.0.1:8080/")),
            "ws://127.0.0.1:8080"
        );
        assert_eq!(
            endpoint_label(&endpoint("us-east-1")),
            "wss://data.tunneling.iot.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn percent_encoding_keeps_unreserved() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode(" /?&=é"), "%20%2F%3F%26%3D%C3%A9");
    }
}
