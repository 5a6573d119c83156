//! The vocabulary of the `/tunnel` WebSocket handshake, spelled once for every peer Burrow has
//! (the page, the agent, the local service, the relay, the load client): the subprotocols and
//! the [`Format`] each one means, the `local-proxy-mode` values, the header and cookie names,
//! the tunnel URL, and the reason a refused handshake carries.
//!
//! Sources: AWS's V2 and V3 WebSocket protocol guides and localproxy (see `docs/protocol.md`).
//! The service picks one subprotocol from what the client offers; a V1 peer offers
//! `aws.iot.securetunneling-1.0` (or, as AWS's IoT Device Client does, 3.0 while writing V1 —
//! which is why the format an endpoint *writes* is configured, not derived, on that side).
//!
//! Pure string work, like the rest of the crate: no IO, no logging.

use crate::endpoint::{Format, Role};

/// The V1 subprotocol (no service ids, no connection ids).
pub const SUBPROTOCOL_V1: &str = "aws.iot.securetunneling-1.0";
/// The V2 subprotocol (service ids).
pub const SUBPROTOCOL_V2: &str = "aws.iot.securetunneling-2.0";
/// The V3 subprotocol (service ids and connection ids).
pub const SUBPROTOCOL_V3: &str = "aws.iot.securetunneling-3.0";
/// Every subprotocol, most capable first (the order a client offers them in).
pub const SUBPROTOCOLS: [&str; 3] = [SUBPROTOCOL_V3, SUBPROTOCOL_V2, SUBPROTOCOL_V1];

/// The data plane's WebSocket path.
pub const TUNNEL_PATH: &str = "/tunnel";
/// The query parameter naming the role.
pub const MODE_PARAM: &str = "local-proxy-mode";
/// The header (and, for browsers talking to AWS directly, query parameter) with the access token.
pub const ACCESS_TOKEN_HEADER: &str = "access-token";
/// The header with the client token that lets one access token reconnect.
pub const CLIENT_TOKEN_HEADER: &str = "client-token";
/// The cookie with the access token (set by the cookie helper, read by the service).
pub const TOKEN_COOKIE: &str = "awsiot-tunnel-token";
/// The cookie with the client token (set by the cookie helper in relay mode).
pub const CLIENT_TOKEN_COOKIE: &str = "awsiot-tunnel-client-token";
/// The response header with the reason of a refused handshake.
pub const STATUS_REASON_HEADER: &str = "x-status-reason";
/// The response header naming the service's session (for logs and support).
pub const CHANNEL_ID_HEADER: &str = "channel-id";
/// The longest refusal reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 512;

impl Format {
    /// The subprotocol that announces this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Format::V1 => SUBPROTOCOL_V1,
            Format::V2 => SUBPROTOCOL_V2,
            Format::V3 => SUBPROTOCOL_V3,
        }
    }

    /// The format a subprotocol names, if it is one of the tunneling subprotocols.
    pub fn from_subprotocol(subprotocol: &str) -> Option<Format> {
        match subprotocol.trim() {
            SUBPROTOCOL_V1 => Some(Format::V1),
            SUBPROTOCOL_V2 => Some(Format::V2),
            SUBPROTOCOL_V3 => Some(Format::V3),
            _ => None,
        }
    }

    /// The format a message shows by its ids, as a peer that reads one STREAM_START to learn
    /// the session's format sees it: no service id is V1, a service id without a connection
    /// id V2, both V3.
    pub fn of_message(msg: &crate::Message) -> Format {
        match (msg.service_id.is_empty(), msg.connection_id) {
            (true, _) => Format::V1,
            (false, 0) => Format::V2,
            (false, _) => Format::V3,
        }
    }
}

impl Role {
    /// The `local-proxy-mode` value of this role.
    pub fn mode_name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }

    /// The role a `local-proxy-mode` value names.
    pub fn from_mode_name(value: &str) -> Option<Role> {
        match value {
            "source" => Some(Role::Source),
            "destination" => Some(Role::Destination),
            _ => None,
        }
    }
}

/// The path and query of the tunnel WebSocket for a role under a base path (`""` or a prefix
/// such as `/relay`; a prefix already ending in `/tunnel` is kept as it is).
pub fn tunnel_path(prefix: &str, role: Role) -> String {
    let prefix = prefix.trim_end_matches('/');
    let path = if prefix.ends_with(TUNNEL_PATH) {
        prefix.to_owned()
    } else {
        format!("{prefix}{TUNNEL_PATH}")
    };
    format!("{path}?{MODE_PARAM}={}", role.mode_name())
}

/// The reason a refused handshake gives, as the service sends it: the `X-Status-Reason` header,
/// else the body, else the status text; made safe to print on one line (control characters
/// turned into spaces, at most [`MAX_REASON_CHARS`]).
pub fn refusal_reason(header: Option<&str>, body: Option<&[u8]>, status_text: &str) -> String {
    let from_body = body
        .map(|body| String::from_utf8_lossy(body).trim().to_owned())
        .filter(|body| !body.is_empty());
    let reason = header
        .map(str::trim)
        .filter(|header| !header.is_empty())
        .map(str::to_owned)
        .or(from_body)
        .unwrap_or_else(|| status_text.to_owned());
    printable(&reason)
}

/// Text safe to print on one line: control characters turned into spaces, length bounded.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_shows_its_format_by_its_ids() {
        let msg = |service: &str, conn: u32| crate::Message {
            service_id: service.to_owned(),
            connection_id: conn,
            ..crate::Message::default()
        };
        assert_eq!(Format::of_message(&msg("", 0)), Format::V1);
        assert_eq!(Format::of_message(&msg("", 3)), Format::V1);
        assert_eq!(Format::of_message(&msg("SSH", 0)), Format::V2);
        assert_eq!(Format::of_message(&msg("SSH", 1)), Format::V3);
    }

    #[test]
    fn subprotocols_and_formats_round_trip() {
        for format in [Format::V1, Format::V2, Format::V3] {
            assert_eq!(Format::from_subprotocol(format.subprotocol()), Some(format));
        }
        assert_eq!(
            Format::from_subprotocol("aws.iot.securetunneling-4.0"),
            None
        );
        assert_eq!(Format::from_subprotocol("chat"), None);
        assert_eq!(SUBPROTOCOLS[0], SUBPROTOCOL_V3);
    }

    #[test]
    fn modes_round_trip() {
        for role in [Role::Source, Role::Destination] {
            assert_eq!(Role::from_mode_name(role.mode_name()), Some(role));
        }
        assert_eq!(Role::from_mode_name("Source"), None);
    }

    #[test]
    fn tunnel_paths() {
        assert_eq!(
            tunnel_path("", Role::Source),
            "/tunnel?local-proxy-mode=source"
        );
        assert_eq!(
            tunnel_path("/relay/", Role::Destination),
            "/relay/tunnel?local-proxy-mode=destination"
        );
        assert_eq!(
            tunnel_path("/x/tunnel", Role::Source),
            "/x/tunnel?local-proxy-mode=source"
        );
    }

    #[test]
    fn reasons_prefer_the_header_then_the_body() {
        assert_eq!(
            refusal_reason(Some("spent"), Some(b"body"), "Bad Request"),
            "spent"
        );
        assert_eq!(
            refusal_reason(Some(" "), Some(b" body\n"), "Bad Request"),
            "body"
        );
        assert_eq!(
            refusal_reason(None, Some(b""), "Bad Request"),
            "Bad Request"
        );
        assert_eq!(refusal_reason(Some("a\r\nb\u{1b}c"), None, "x"), "a  b c");
        assert_eq!(
            refusal_reason(Some(&"r".repeat(2000)), None, "x").len(),
            MAX_REASON_CHARS
        );
    }
}
