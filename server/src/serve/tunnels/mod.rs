//! The emulator's tunnels: the registry the control plane changes and the data plane consults.
//!
//! A [`Registry`] holds every tunnel (open or closed, until deleted) and an index from access
//! token to tunnel and mode. Tokens are kept only as SHA-256 hashes: the registry can check a
//! presented token but never hands one out again, so no token can leak from it into a log or a
//! response other than OpenTunnel's and RotateTunnelAccessToken's.
//!
//! Each [`TunnelEntry`] owns the tunnel's mutable state behind its own lock: configuration,
//! status and timestamps, the two sides (token use, connected peer), the shared protocol rules
//! ([`TunnelRules`]) and the optional bandwidth bucket. Locks are never held across an `.await`;
//! the registry lock is always taken before a tunnel lock, never the other way round.
//!
//! Token rules (AWS's): a token is single use unless the first successful handshake carried a
//! client token, which binds it: then only that client token may reconnect with it. Rotation
//! revokes the current token(s) of the chosen mode(s) and issues new ones without extending the
//! tunnel's lifetime. A closed or expired tunnel refuses every token.
//!
//! This module does no IO of its own besides one timer task per tunnel that closes it when its
//! lifetime ends; it does not know HTTP, JSON or WebSockets beyond the channel handles of the
//! connected peers.
//!
//! [`peer`] holds the handle on a connected peer and its bounded queue; [`registry`] the
//! registry itself: opening, admitting, rotating, closing and forgetting tunnels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use burrow_proto::Role;
use burrow_proto::service::{
    CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, PeerChecker, REPLACED_REASON, ServiceListError,
    TUNNEL_CLOSED_REASON, TunnelRules, Verdict,
};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::handshake::HandshakeError;
use super::ratelimit::{Rate, TokenBucket};
use super::timing::Batch;

mod peer;
mod registry;

pub(crate) use peer::{CloseReason, PeerHandle};
pub(crate) use registry::{Registry, RegistryOptions};

/// Shortest and longest lifetime OpenTunnel accepts, in minutes.
pub(crate) const LIFETIME_MINUTES: std::ops::RangeInclusive<u32> = 1..=720;
/// Open tunnels the emulator allows at once by default, AWS's quota (beyond:
/// LimitExceededException).
pub(crate) const MAX_OPEN_TUNNELS: usize = 100;
/// Tags a tunnel may carry, AWS's limit per resource (beyond: LimitExceededException).
pub(crate) const MAX_TAGS_PER_RESOURCE: usize = 50;
/// Tunnels kept in total (the oldest closed ones are forgotten first).
const MAX_KEPT_TUNNELS: usize = 1000;
/// The account id in tunnel ARNs.
const ACCOUNT_ID: &str = "123456789012";

/// A SHA-256 hash of a token (access token or client token).
type TokenHash = [u8; 32];

fn hash(secret: &str) -> TokenHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (the state stays
/// consistent because every critical section only assigns whole fields).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh access token shaped like AWS's: long, opaque, and made only of characters that are
/// safe in a header, a cookie value and a URL (`[A-Za-z0-9_-]`).
pub(crate) fn new_access_token() -> String {
    let mut bytes = [0u8; 240];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "AQGA{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random id in the UUID v4 text form (what AWS uses for tunnel ids).
pub(crate) fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// Whether a tunnel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Tokens work until the lifetime ends.
    Open,
    /// Closed by CloseTunnel or expired; never reopens.
    Closed,
}

/// Which tokens RotateTunnelAccessToken replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientMode {
    /// The source token only.
    Source,
    /// The destination token only.
    Destination,
    /// Both.
    All,
}

/// How a side's current access token has been used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenUse {
    /// Never used in a successful handshake.
    Fresh,
    /// Used without a client token: refused from now on.
    Spent,
    /// Used with this client token: only it may reconnect.
    Bound(TokenHash),
}

/// One side (source or destination) of a tunnel.
#[derive(Debug)]
struct Side {
    token: TokenHash,
    token_use: TokenUse,
    peer: Option<PeerHandle>,
    /// When the connection state last changed.
    updated_at: SystemTime,
}

impl Side {
    fn new(token: TokenHash, now: SystemTime) -> Self {
        Self {
            token,
            token_use: TokenUse::Fresh,
            peer: None,
            updated_at: now,
        }
    }
}

/// A tag on a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// What OpenTunnel asks for (already validated by the control plane, except the services).
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenRequest {
    /// `description`.
    pub description: Option<String>,
    /// `destinationConfig.thingName`.
    pub thing_name: Option<String>,
    /// `destinationConfig.services`.
    pub services: Vec<String>,
    /// `timeoutConfig.maxLifetimeTimeoutMinutes` (1..=720).
    pub lifetime_minutes: u32,
    /// `tags`.
    pub tags: Vec<Tag>,
    /// The region for the ARN.
    pub region: String,
}

/// What OpenTunnel returns. Holds the only copies of the new tokens.
#[derive(Clone)]
pub(crate) struct Opened {
    pub tunnel_id: String,
    pub tunnel_arn: String,
    pub source_token: String,
    pub destination_token: String,
}

/// New tokens from RotateTunnelAccessToken (only those of the rotated modes).
#[derive(Clone)]
pub(crate) struct Rotated {
    pub tunnel_arn: String,
    pub source_token: Option<String>,
    pub destination_token: Option<String>,
}

/// A connection state as DescribeTunnel shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionView {
    /// Whether a peer is connected.
    pub connected: bool,
    /// When that last changed.
    pub updated_at: SystemTime,
}

/// A snapshot of one tunnel for DescribeTunnel and ListTunnels.
#[derive(Debug, Clone)]
pub(crate) struct TunnelView {
    pub tunnel_id: String,
    pub tunnel_arn: String,
    pub status: Status,
    pub description: Option<String>,
    pub thing_name: Option<String>,
    pub services: Vec<String>,
    pub lifetime_minutes: u32,
    pub tags: Vec<Tag>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub source: ConnectionView,
    pub destination: ConnectionView,
}

/// The registry refused a control-plane operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RegistryError {
    /// No tunnel has this id (or ARN).
    #[error("tunnel {0} not found")]
    NotFound(String),
    /// The tunnel is closed.
    #[error("tunnel {0} is closed")]
    Closed(String),
    /// Too many open tunnels.
    #[error("the number of open tunnels exceeds the limit of {0}")]
    TooManyTunnels(usize),
    /// A tunnel would have more tags than AWS allows on a resource.
    #[error(
        "tag limit exceeded: a tunnel can have at most {limit} tags, this request would make {requested}"
    )]
    TooManyTags {
        /// [`MAX_TAGS_PER_RESOURCE`].
        limit: usize,
        /// How many the tunnel would have.
        requested: usize,
    },
    /// The service list is not acceptable.
    #[error(transparent)]
    Services(#[from] ServiceListError),
}

/// The mutable part of a tunnel.
#[derive(Debug)]
struct TunnelState {
    description: Option<String>,
    thing_name: Option<String>,
    lifetime_minutes: u32,
    tags: Vec<Tag>,
    created_at: SystemTime,
    updated_at: SystemTime,
    expires_at: Instant,
    status: Status,
    rules: TunnelRules,
    source: Side,
    destination: Side,
    limiter: Option<TokenBucket>,
}

impl TunnelState {
    /// Whether the tunnel was closed or its lifetime has run out.
    fn is_over(&self) -> bool {
        self.status == Status::Closed || Instant::now() >= self.expires_at
    }

    fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Source => &mut self.source,
            Role::Destination => &mut self.destination,
        }
    }

    fn other(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Source => &mut self.destination,
            Role::Destination => &mut self.source,
        }
    }

    /// Closes the tunnel: both peers get 1000 "Tunnel is closed".
    fn close(&mut self, now: SystemTime) {
        if self.status == Status::Closed {
            return;
        }
        self.status = Status::Closed;
        self.updated_at = now;
        for side in [&mut self.source, &mut self.destination] {
            if let Some(peer) = side.peer.take() {
                peer.close(CloseReason::tunnel_closed());
                side.updated_at = now;
            }
        }
    }
}

/// One tunnel.
#[derive(Debug)]
pub(crate) struct TunnelEntry {
    /// The tunnel id.
    pub id: String,
    /// The tunnel ARN.
    pub arn: String,
    state: Mutex<TunnelState>,
    /// When the limiter's clock started.
    origin: Instant,
}

/// The tunnel was closed between the handshake and the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tunnel is closed")]
pub(crate) struct TunnelClosed;

impl TunnelEntry {
    /// A short, non-secret label for logs: the first 8 characters of the tunnel id.
    pub(crate) fn label(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }

    /// Connects a peer that finished its handshake. A peer already connected in the same mode is
    /// replaced: it is closed with 1002, and the other side gets STREAM_RESET for every active
    /// stream. With `announce` the new peer first receives SERVICE_IDS.
    pub(crate) fn attach(
        &self,
        role: Role,
        peer: PeerHandle,
        announce: bool,
    ) -> Result<(), TunnelClosed> {
        let now = SystemTime::now();
        let mut state = lock(&self.state);
        if state.is_over() {
            return Err(TunnelClosed);
        }
        if announce {
            peer.push(state.rules.service_ids_frame());
        }
        let replaced = state.side(role).peer.replace(peer);
        if let Some(old) = replaced {
            old.close(CloseReason::new(CLOSE_PROTOCOL_ERROR, REPLACED_REASON));
            let resets = state.rules.take_resets();
            if let Some(other) = &state.other(role).peer {
                other.push(resets);
            }
        }
        let side = state.side(role);
        side.updated_at = now;
        state.updated_at = now;
        Ok(())
    }

    /// Forgets a peer whose WebSocket ended, unless a newer one already replaced it. The other
    /// side gets STREAM_RESET for every active stream: it learns at once that the far end is
    /// gone instead of sending into nothing.
    pub(crate) fn detach(&self, role: Role, peer_id: u64) {
        let now = SystemTime::now();
        let mut state = lock(&self.state);
        let side = state.side(role);
        if side.peer.as_ref().is_some_and(|p| p.id == peer_id) {
            side.peer = None;
            side.updated_at = now;
            state.updated_at = now;
            let resets = state.rules.take_resets();
            if !resets.is_empty()
                && let Some(other) = &state.other(role).peer
            {
                other.push(resets);
            }
        }
    }

    /// Checks one WebSocket message from a peer and says where its frames go: the other side's
    /// queue, or nowhere when the other side is not connected or this peer was replaced.
    pub(crate) fn check(
        &self,
        role: Role,
        peer_id: u64,
        checker: &mut PeerChecker,
        message: &[u8],
    ) -> (Verdict, Option<mpsc::Sender<Batch>>) {
        let mut state = lock(&self.state);
        let verdict = checker.feed(message, &mut state.rules);
        let current = state
            .side(role)
            .peer
            .as_ref()
            .is_some_and(|p| p.id == peer_id);
        let route = if current {
            state.other(role).peer.as_ref().map(|p| p.frames.clone())
        } else {
            None
        };
        (verdict, route)
    }

    /// Takes `bytes` from the tunnel's bandwidth quota; returns how long to wait before
    /// relaying them (zero without a quota).
    pub(crate) fn reserve(&self, bytes: usize) -> Duration {
        let now = Instant::now().saturating_duration_since(self.origin);
        let mut state = lock(&self.state);
        match &mut state.limiter {
            Some(bucket) => bucket.reserve(now, bytes),
            None => Duration::ZERO,
        }
    }

    /// How long the tunnel has left, or `None` when it is closed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let state = lock(&self.state);
        if state.status == Status::Closed {
            return None;
        }
        let left = state.expires_at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn view(&self) -> TunnelView {
        let state = lock(&self.state);
        let conn = |side: &Side| ConnectionView {
            connected: side.peer.is_some(),
            updated_at: side.updated_at,
        };
        TunnelView {
            tunnel_id: self.id.clone(),
            tunnel_arn: self.arn.clone(),
            status: if state.is_over() {
                Status::Closed
            } else {
                state.status
            },
            description: state.description.clone(),
            thing_name: state.thing_name.clone(),
            services: state.rules.services().to_vec(),
            lifetime_minutes: state.lifetime_minutes,
            tags: state.tags.clone(),
            created_at: state.created_at,
            updated_at: state.updated_at,
            source: conn(&state.source),
            destination: conn(&state.destination),
        }
    }

    fn close(&self) {
        lock(&self.state).close(SystemTime::now());
    }
}
