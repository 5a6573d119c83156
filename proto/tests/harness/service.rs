//! The simulated tunneling service: the real rules of `burrow_proto::service` (one
//! [`PeerChecker`] per peer connection, the tunnel's shared [`TunnelRules`]), as `burrow serve`
//! applies them, without sockets.
//!
//! Each peer's WebSocket messages go through its checker; a violation panics the test with the
//! service's reason (the real service would close that peer's WebSocket). What passes is relayed
//! byte for byte. Replacing or detaching a peer does what `burrow serve` does: the other side
//! gets STREAM_RESET for every active stream, and a new peer gets a new checker.
//!
//! Self-contained (it uses only `burrow_proto`), so tests outside this crate can include it.

#![allow(dead_code)]

use burrow_proto::endpoint::Role;
use burrow_proto::service::{PeerChecker, TunnelRules, Violation};

/// The service's side of one tunnel.
#[derive(Debug)]
pub struct Service {
    /// The tunnel's shared rules (services, started and active streams).
    pub rules: TunnelRules,
    source: PeerChecker,
    destination: PeerChecker,
}

impl Service {
    /// A tunnel with these service ids.
    pub fn new(services: &[&str]) -> Self {
        let services = services.iter().map(|s| (*s).to_owned()).collect();
        Self {
            rules: TunnelRules::new(services).expect("valid test services"),
            source: PeerChecker::new(Role::Source),
            destination: PeerChecker::new(Role::Destination),
        }
    }

    /// The SERVICE_IDS frame the service sends after every V2/V3 handshake.
    pub fn service_ids(&self) -> Vec<u8> {
        self.rules.service_ids_frame()
    }

    /// Checks one WebSocket message from `from`; the bytes to relay, or the violation.
    pub fn check(&mut self, from: Role, ws_message: &[u8]) -> Result<Vec<u8>, Violation> {
        let checker = match from {
            Role::Source => &mut self.source,
            Role::Destination => &mut self.destination,
        };
        let verdict = checker.feed(ws_message, &mut self.rules);
        match verdict.close {
            None => Ok(verdict.relay),
            Some(violation) => Err(violation),
        }
    }

    /// Checks one WebSocket message from `from` and returns the bytes to relay; a violation
    /// fails the test.
    pub fn accept(&mut self, from: Role, ws_message: &[u8]) -> Vec<u8> {
        self.check(from, ws_message)
            .unwrap_or_else(|v| panic!("the service closes the {from:?}'s WebSocket: {v}"))
    }

    /// A new peer connects in `role`'s mode, replacing (or following) the old one: it gets a
    /// fresh checker, and the STREAM_RESET frames for the other side are returned.
    pub fn replace(&mut self, role: Role) -> Vec<u8> {
        match role {
            Role::Source => self.source = PeerChecker::new(Role::Source),
            Role::Destination => self.destination = PeerChecker::new(Role::Destination),
        }
        self.rules.take_resets()
    }

    /// The peer in `role`'s mode disconnected: the STREAM_RESET frames for the other side.
    pub fn detach(&mut self, _role: Role) -> Vec<u8> {
        self.rules.take_resets()
    }
}
