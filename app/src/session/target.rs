//! Where a device's host key is remembered, as one token that can stand as a host name in an
//! OpenSSH `known_hosts` line.
//!
//! A device is named by its thing name (Device mode's thing, the Token mode's Device name
//! field, or the tunnel's thing as the cookie helper reports it): the target is then the device
//! name plus its service (`ssh::known_hosts::device_target`), the same for every tunnel to it.
//! Without a device name the target is endpoint + tunnel id (or a short hash of the token) +
//! service: good for that one tunnel only, so the operator is asked again next time — safe,
//! merely less convenient. The token itself is never part of a target.

use sha2::{Digest, Sha256};

use crate::driver::answers::CookieAnswer;
use crate::ssh::known_hosts::device_target;

/// The tunnel's far end, as far as the app can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The tunnel's thing name (stable across tunnels to the same device).
    Thing(String),
    /// The tunnel id.
    Tunnel(String),
    /// The first 16 hex digits of the token's SHA-256 (one token's tunnel).
    Token(String),
}

impl Destination {
    /// The operator's device name when given, else the best name the cookie helper's answer
    /// allows, else the token's hash.
    pub fn from_cookie(device: Option<&str>, answer: &CookieAnswer, token: &str) -> Self {
        if let Some(device) = device {
            Destination::Thing(device.to_owned())
        } else if let Some(thing) = &answer.thing_name {
            Destination::Thing(thing.clone())
        } else if let Some(tunnel) = &answer.tunnel_id {
            Destination::Tunnel(tunnel.clone())
        } else {
            Self::from_token(token)
        }
    }

    /// A name derived from the token that does not reveal it.
    pub fn from_token(token: &str) -> Self {
        let digest = Sha256::digest(token.trim().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Destination::Token(hex)
    }

    /// The device as the operator would name it: the thing or tunnel, else just "device".
    pub fn name(&self) -> &str {
        match self {
            Destination::Thing(name) | Destination::Tunnel(name) => name,
            Destination::Token(_) => "device",
        }
    }

    fn label(&self) -> String {
        match self {
            Destination::Thing(name) => format!("thing:{name}"),
            Destination::Tunnel(id) => format!("tunnel:{id}"),
            Destination::Token(hash) => format!("token:{hash}"),
        }
    }
}

/// Percent-encodes characters that cannot appear in a known_hosts host name.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_graphic() && !matches!(byte, b',' | b'*' | b'?' | b'!' | b'%');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The known-hosts target for a service of a destination behind an endpoint
/// (`endpoint_label` from `driver::url::endpoint_label`; `service_id` "" when none). A thing is
/// a device: its target does not depend on the endpoint.
pub fn known_hosts_target(
    endpoint_label: &str,
    destination: &Destination,
    service_id: &str,
) -> String {
    if let Destination::Thing(name) = destination {
        return device_target(&plain(name), service_id);
    }
    let service = if service_id.is_empty() {
        "-"
    } else {
        service_id
    };
    format!(
        "{}/{}/{}",
        plain(endpoint_label),
        plain(&destination.label()),
        plain(service)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::known_hosts::is_valid_target;

    #[test]
    fn targets_name_endpoint_destination_and_service() {
        let target = known_hosts_target(
            "ws://127.0.0.1:8080",
            &Destination::Tunnel("t-1".into()),
            "SSH",
        );
        assert_eq!(target, "ws://127.0.0.1:8080/tunnel:t-1/SSH");
        assert!(is_valid_target(&target));
        let target = known_hosts_target(
            "ws://127.0.0.1:8080",
            &Destination::Token("0123456789abcdef".into()),
            "",
        );
        assert_eq!(target, "ws://127.0.0.1:8080/token:0123456789abcdef/-");
        assert!(is_valid_target(&target));
    }

    #[test]
    fn a_device_s_target_is_its_name_on_every_endpoint() {
        for endpoint in [
            "ws://127.0.0.1:8080",
            "wss://data.tunneling.iot.eu-west-1.amazonaws.com",
        ] {
            let pump = Destination::Thing("pump-7".into());
            assert_eq!(known_hosts_target(endpoint, &pump, "SSH"), "pump-7");
            assert_eq!(known_hosts_target(endpoint, &pump, ""), "pump-7");
            assert_eq!(known_hosts_target(endpoint, &pump, "VNC"), "pump-7/VNC");
        }
        let odd = known_hosts_target("ws://h", &Destination::Thing("pump 7,a".into()), "SSH");
        assert_eq!(odd, "pump%207%2Ca");
        assert!(is_valid_target(&odd));
    }

    #[test]
    fn token_destination_hides_the_token() {
        let token = "AQGAAXiSecretTokenValue";
        let Destination::Token(hash) = Destination::from_token(token) else {
            panic!("a token destination");
        };
        assert_eq!(hash.len(), 16);
        assert!(!token.contains(&hash));
        assert_eq!(
            Destination::from_token(token),
            Destination::from_token(token)
        );
        assert_ne!(
            Destination::from_token(token),
            Destination::from_token("other")
        );
    }

    #[test]
    fn cookie_answers_prefer_thing_then_tunnel() {
        let both = CookieAnswer {
            tunnel_id: Some("t".into()),
            thing_name: Some("pump".into()),
            reconnectable: false,
        };
        assert_eq!(
            Destination::from_cookie(None, &both, "x"),
            Destination::Thing("pump".into())
        );
        assert_eq!(
            Destination::from_cookie(Some("typed"), &both, "x"),
            Destination::Thing("typed".into())
        );
        let tunnel = CookieAnswer {
            tunnel_id: Some("t".into()),
            thing_name: None,
            reconnectable: false,
        };
        assert_eq!(
            Destination::from_cookie(None, &tunnel, "x"),
            Destination::Tunnel("t".into())
        );
        assert_eq!(
            Destination::from_cookie(None, &CookieAnswer::default(), "x"),
            Destination::from_token("x")
        );
    }
}
