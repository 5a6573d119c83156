//! The origin allowlist for browser WebSocket upgrades, the cookie helper's CORS answers and
//! the control plane.
//!
//! By default it holds the server's own origins (`http://127.0.0.1:PORT` and
//! `http://localhost:PORT`, `https://` with TLS, plus the listen address itself when it is a
//! specific address); `--allow-origin` adds more. Matching is exact on scheme, host and port
//! (compared without regard to ASCII case): there is no wildcard, and an origin is never
//! reflected unless it is on the list.

use std::net::{IpAddr, SocketAddr};

/// An `--allow-origin` value that is not a plain origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid origin {0:?}: expected scheme://host[:port] with scheme http or https and no path"
)]
pub(crate) struct OriginError(String);

/// Checks and normalizes one `--allow-origin` value (lowercase, no trailing slash).
pub(crate) fn parse_origin(value: &str) -> Result<String, OriginError> {
    let err = || OriginError(value.to_owned());
    let lower = value.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(err)?;
    let valid = !rest.is_empty()
        && rest.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        });
    if valid { Ok(lower) } else { Err(err()) }
}

/// The origins allowed to talk to this server from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origins {
    allowed: Vec<String>,
}

impl Origins {
    /// An allowlist of already normalized origins.
    #[cfg(test)]
    pub(crate) fn new(allowed: Vec<String>) -> Self {
        Self { allowed }
    }

    /// The server's own origins for a listener bound to `addr`, plus `extra`.
    pub(crate) fn for_server(addr: SocketAddr, tls: bool, extra: &[String]) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let port = addr.port();
        let mut allowed = vec![
            format!("{scheme}://127.0.0.1:{port}"),
            format!("{scheme}://localhost:{port}"),
        ];
        let own = match addr.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => Some(format!("{scheme}://{ip}:{port}")),
            IpAddr::V6(ip) if !ip.is_unspecified() => Some(format!("{scheme}://[{ip}]:{port}")),
            _ => None,
        };
        allowed.extend(own);
        // The default port is left out of a browser's Origin header.
        if (tls && port == 443) || (!tls && port == 80) {
            allowed.push(format!("{scheme}://127.0.0.1"));
            allowed.push(format!("{scheme}://localhost"));
        }
        allowed.extend(extra.iter().cloned());
        // Listening on 127.0.0.1 names that origin twice, and so may an --allow-origin: keep
        // the first of each (origins are already lowercase).
        let mut seen = std::collections::BTreeSet::new();
        allowed.retain(|o| seen.insert(o.clone()));
        Self { allowed }
    }

    /// Whether a request's `Origin` header value is allowed.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }

    /// The allowed origins.
    pub(crate) fn list(&self) -> &[String] {
        &self.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_and_extras() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let o = Origins::for_server(addr, false, &["https://app.example.com".into()]);
        assert!(o.allows("http://127.0.0.1:4000"));
        assert!(o.allows("http://LOCALHOST:4000"));
        assert!(o.allows("https://app.example.com"));
        assert!(!o.allows("https://127.0.0.1:4000"));
        assert!(!o.allows("http://127.0.0.1:4001"));
        assert!(!o.allows("null"));
        assert!(!o.allows("*"));
        let tls = Origins::for_server(addr, true, &[]);
        assert!(tls.allows("https://localhost:4000"));
        assert!(!tls.allows("http://localhost:4000"));
    }

    #[test]
    fn the_list_names_each_origin_once() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let o = Origins::for_server(
            addr,
            false,
            &["http://localhost:4000".into(), "https://a.example".into()],
        );
        assert_eq!(
            o.list(),
            [
                "http://127.0.0.1:4000",
                "http://localhost:4000",
                "https://a.example"
            ]
        );
        let any: SocketAddr = "0.0.0.0:80".parse().expect("addr");
        let o = Origins::for_server(any, false, &[]);
        let mut sorted = o.list().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), o.list().len(), "{:?}", o.list());
    }

    #[test]
    fn parses_allow_origin_values() {
        assert_eq!(
            parse_origin("https://App.Example.com/"),
            Ok("https://app.example.com".into())
        );
        assert_eq!(
            parse_origin("http://[::1]:8080"),
            Ok("http://[::1]:8080".into())
        );
        for bad in [
            "*",
            "app.example.com",
            "https://a.com/path",
            "ftp://a.com",
            "https://",
            "https://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }
}
