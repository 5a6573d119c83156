//! The agent's port mappings: `-s [SVC=][ADDR:]PORT` (source) and `-d [SVC=][HOST:]PORT`
//! (destination), in localproxy's syntax (several may also be given comma-separated).
//!
//! It only parses and checks the mappings; listening and connecting happen elsewhere.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use burrow_proto::endpoint::{MAX_SERVICE_ID_LEN, MAX_SERVICES};

/// One source mapping: a local listening address for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMapping {
    /// The service id, or `None` for the tunnel's only service (or a V1 tunnel).
    pub service: Option<String>,
    /// Where to listen (loopback unless an address was given); port 0 picks a free port.
    pub bind: SocketAddr,
}

/// One destination mapping: the local TCP service a tunnel service connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationMapping {
    /// The service id, or `None` for the tunnel's only service (or a V1 tunnel).
    pub service: Option<String>,
    /// `host:port` to connect to.
    pub target: String,
}

/// A mapping flag that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The port is not a number from 0 (source) or 1 (destination) to 65535.
    #[error("invalid port in {0:?}")]
    InvalidPort(String),
    /// The service id is empty, too long or has characters AWS does not allow.
    #[error("invalid service id in {0:?} (letters, digits, '-', '_', '.', ':' only, at most 128)")]
    InvalidService(String),
    /// The source bind address is not an IP address.
    #[error("invalid listen address in {0:?} (expected an IP address)")]
    InvalidAddress(String),
    /// The same service id appears twice.
    #[error("service {0:?} is mapped more than once")]
    Duplicate(String),
    /// More than one mapping without a service id, or one mixed with named ones.
    #[error("a mapping without a service id must be the only mapping")]
    AmbiguousUnnamed,
    /// More than the tunnel's maximum of services.
    #[error("at most {MAX_SERVICES} services can be mapped")]
    TooMany,
    /// Nothing mapped for the chosen mode.
    #[error("no mapping given: {0}")]
    Missing(&'static str),
}

/// Parses one `-s` value: `[SVC=][ADDR:]PORT`.
pub fn parse_source(value: &str) -> Result<SourceMapping, MappingError> {
    let (service, rest) = split_service(value)?;
    let (addr, port) = match rest.rsplit_once(':') {
        Some((addr, port)) => {
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| MappingError::InvalidAddress(value.to_owned()))?;
            (ip, port)
        }
        None => (IpAddr::V4(Ipv4Addr::LOCALHOST), rest),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| MappingError::InvalidPort(value.to_owned()))?;
    Ok(SourceMapping {
        service,
        bind: SocketAddr::new(addr, port),
    })
}

/// Parses one `-d` value: `[SVC=][HOST:]PORT` (host defaults to 127.0.0.1).
pub fn parse_destination(value: &str) -> Result<DestinationMapping, MappingError> {
    let (service, rest) = split_service(value)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => (host, port),
        Some(_) => return Err(MappingError::InvalidAddress(value.to_owned())),
        None => ("127.0.0.1", rest),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| MappingError::InvalidPort(value.to_owned()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(DestinationMapping { service, target })
}

/// Checks a set of mappings' service ids together.
pub fn check_services<'a>(
    services: impl IntoIterator<Item = Option<&'a str>>,
    what: &'static str,
) -> Result<(), MappingError> {
    let services: Vec<Option<&str>> = services.into_iter().collect();
    if services.is_empty() {
        return Err(MappingError::Missing(what));
    }
    if services.len() > MAX_SERVICES {
        return Err(MappingError::TooMany);
    }
    if services.len() > 1 && services.iter().any(Option::is_none) {
        return Err(MappingError::AmbiguousUnnamed);
    }
    for (i, service) in services.iter().enumerate() {
        if let Some(id) = service
            && services[..i].contains(service)
        {
            return Err(MappingError::Duplicate((*id).to_owned()));
        }
    }
    Ok(())
}

/// Splits an optional `SVC=` prefix off a mapping.
fn split_service(value: &str) -> Result<(Option<String>, &str), MappingError> {
    match value.split_once('=') {
        None => Ok((None, value.trim())),
        Some((service, rest)) => {
            let service = service.trim();
            let valid = !service.is_empty()
                && service.len() <= MAX_SERVICE_ID_LEN
                && service
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if valid {
                Ok((Some(service.to_owned()), rest.trim()))
            } else {
                Err(MappingError::InvalidService(value.to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_mappings() {
        let ok = |value: &str, service: Option<&str>, bind: &str| {
            assert_eq!(
                parse_source(value),
                Ok(SourceMapping {
                    service: service.map(str::to_owned),
                    bind: bind.parse().expect("test address"),
                }),
                "{value}"
            );
        };
        ok("SSH=2222", Some("SSH"), "127.0.0.1:2222");
        ok("2222", None, "127.0.0.1:2222");
        ok("SSH=0", Some("SSH"), "127.0.0.1:0");
        ok("RDP=127.0.0.2:3389", Some("RDP"), "127.0.0.2:3389");
        ok("[::1]:22", None, "[::1]:22");
        assert_eq!(
            parse_source("SSH=70000"),
            Err(MappingError::InvalidPort("SSH=70000".to_owned()))
        );
        assert_eq!(
            parse_source("=22"),
            Err(MappingError::InvalidService("=22".to_owned()))
        );
        assert_eq!(
            parse_source("SSH=host:22"),
            Err(MappingError::InvalidAddress("SSH=host:22".to_owned()))
        );
    }

    #[test]
    fn destination_mappings() {
        let ok = |value: &str, service: Option<&str>, target: &str| {
            assert_eq!(
                parse_destination(value),
                Ok(DestinationMapping {
                    service: service.map(str::to_owned),
                    target: target.to_owned(),
                }),
                "{value}"
            );
        };
        ok("SSH=127.0.0.1:22", Some("SSH"), "127.0.0.1:22");
        ok("22", None, "127.0.0.1:22");
        ok("SSH=device.local:2222", Some("SSH"), "device.local:2222");
        ok("[::1]:22", None, "[::1]:22");
        assert_eq!(
            parse_destination("SSH=127.0.0.1:0"),
            Err(MappingError::InvalidPort("SSH=127.0.0.1:0".to_owned()))
        );
        assert_eq!(
            parse_destination(":22"),
            Err(MappingError::InvalidAddress(":22".to_owned()))
        );
        assert_eq!(
            parse_destination("S SH=22"),
            Err(MappingError::InvalidService("S SH=22".to_owned()))
        );
    }

    #[test]
    fn service_sets() {
        assert_eq!(check_services([Some("SSH"), Some("RDP")], "-s"), Ok(()));
        assert_eq!(check_services([None], "-s"), Ok(()));
        assert_eq!(check_services([], "-s"), Err(MappingError::Missing("-s")));
        assert_eq!(
            check_services([None, Some("SSH")], "-s"),
            Err(MappingError::AmbiguousUnnamed)
        );
        assert_eq!(
            check_services([Some("SSH"), Some("SSH")], "-s"),
            Err(MappingError::Duplicate("SSH".to_owned()))
        );
        assert_eq!(
            check_services([Some("A"), Some("B"), Some("C"), Some("D")], "-s"),
            Err(MappingError::TooMany)
        );
    }
}
