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

/// Why a close frame is sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason text (at most 123 bytes).
    pub reason: String,
}

impl CloseReason {
    pub(crate) fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: burrow_proto::service::truncate_reason(reason),
        }
    }

    fn tunnel_closed() -> Self {
        Self::new(CLOSE_NORMAL, TUNNEL_CLOSED_REASON)
    }
}

/// The registry's handle on a connected peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerHandle {
    /// Unique per WebSocket connection.
    pub id: u64,
    /// Whole frames for the peer (the peer's writer regroups them into WebSocket messages).
    pub frames: mpsc::Sender<Batch>,
    /// Set to close the peer's WebSocket with this code and reason.
    pub close: watch::Sender<Option<CloseReason>>,
    /// Service frames waiting for room in `frames`.
    pub overflow: Arc<Mutex<Overflow>>,
}

impl PeerHandle {
    fn close(&self, reason: CloseReason) {
        self.close.send_replace(Some(reason));
    }

    /// Queues service-originated frames without waiting: if the queue is full they wait in
    /// the peer's overflow, which one short task at a time hands on (so the caller, holding a
    /// lock, never blocks, and a peer that does not read costs at most one task and
    /// [`MAX_OVERFLOW`] bytes). A peer whose overflow would grow past that is closed.
    fn push(&self, frames: Vec<u8>) {
        if frames.is_empty() {
            return;
        }
        let mut overflow = lock(&self.overflow);
        if overflow.frames.is_empty() && !overflow.flushing {
            match self.frames.try_send(Batch::service(frames)) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(batch)) => overflow.frames = batch.frames,
            }
        } else if overflow.frames.len() + frames.len() > MAX_OVERFLOW {
            drop(overflow);
            tracing::warn!(peer = self.id, "peer does not read: closing it");
            self.close(CloseReason::new(CLOSE_PROTOCOL_ERROR, "Peer does not read"));
            return;
        } else {
            overflow.frames.extend_from_slice(&frames);
        }
        if overflow.flushing {
            return;
        }
        overflow.flushing = true;
        let tx = self.frames.clone();
        let shared = self.overflow.clone();
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut overflow = lock(&shared);
                    if overflow.frames.is_empty() {
                        overflow.flushing = false;
                        return;
                    }
                    std::mem::take(&mut overflow.frames)
                };
                if tx.send(Batch::service(batch)).await.is_err() {
                    let mut overflow = lock(&shared);
                    overflow.frames.clear();
                    overflow.flushing = false;
                    return;
                }
            }
        });
    }

    /// Service frames waiting behind a full queue (for tests).
    #[cfg(test)]
    fn overflow_len(&self) -> usize {
        lock(&self.overflow).frames.len()
    }
}

/// Service frames for a peer whose queue was full (see [`PeerHandle::push`]).
#[derive(Debug, Default)]
pub(crate) struct Overflow {
    frames: Vec<u8>,
    /// Whether a task is handing `frames` on.
    flushing: bool,
}

/// Bytes of service frames a peer may have waiting behind its full queue.
const MAX_OVERFLOW: usize = 64 * 1024;

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

/// How the registry is set up.
#[derive(Debug, Clone)]
pub(crate) struct RegistryOptions {
    /// Lifetimes run this many times faster than the wall clock (tests only; 1 otherwise).
    pub time_scale: f64,
    /// The per-tunnel bandwidth quota, if any.
    pub rate_limit: Option<Rate>,
    /// Open tunnels allowed at once ([`MAX_OPEN_TUNNELS`] unless a benchmark raises it).
    pub max_open_tunnels: usize,
}

#[derive(Debug, Default)]
struct Inner {
    tunnels: HashMap<String, Arc<TunnelEntry>>,
    /// Creation order, oldest first.
    order: Vec<String>,
    tokens: HashMap<TokenHash, (Arc<TunnelEntry>, Role)>,
    /// The last tokens of closed or expired tunnels, no longer valid: kept only so that the
    /// probe can say "closed" instead of "invalid"; forgotten with their tunnel.
    closed_tokens: HashMap<TokenHash, Arc<TunnelEntry>>,
}

/// Every tunnel of the emulator.
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    options: RegistryOptions,
    next_peer_id: std::sync::atomic::AtomicU64,
}

/// A handshake the registry accepted: the token is now spent (or bound to its client token).
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// The tunnel.
    pub tunnel: Arc<TunnelEntry>,
    /// The id of the peer connection to attach.
    pub peer_id: u64,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new(options: RegistryOptions) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            options,
            next_peer_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn lifetime(&self, minutes: u32) -> Duration {
        let secs = f64::from(minutes) * 60.0 / self.options.time_scale;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(43_200))
    }

    /// OpenTunnel: a new tunnel with fresh tokens; a timer closes it when its lifetime ends.
    pub(crate) fn open(self: &Arc<Self>, req: OpenRequest) -> Result<Opened, RegistryError> {
        let rules = TunnelRules::new(req.services)?;
        let now = SystemTime::now();
        let started = Instant::now();
        let expires_at = started + self.lifetime(req.lifetime_minutes);
        let id = new_uuid();
        let arn = format!("arn:aws:iot:{}:{ACCOUNT_ID}:tunnel/{id}", req.region);
        let source_token = new_access_token();
        let destination_token = new_access_token();
        let entry = Arc::new(TunnelEntry {
            id: id.clone(),
            arn: arn.clone(),
            origin: started,
            state: Mutex::new(TunnelState {
                description: req.description,
                thing_name: req.thing_name,
                lifetime_minutes: req.lifetime_minutes,
                tags: req.tags,
                created_at: now,
                updated_at: now,
                expires_at,
                status: Status::Open,
                rules,
                source: Side::new(hash(&source_token), now),
                destination: Side::new(hash(&destination_token), now),
                limiter: self
                    .options
                    .rate_limit
                    .map(|rate| TokenBucket::new(rate, Duration::ZERO)),
            }),
        });
        {
            let mut inner = lock(&self.inner);
            let open = inner
                .tunnels
                .values()
                .filter(|t| t.remaining().is_some())
                .count();
            if open >= self.options.max_open_tunnels {
                return Err(RegistryError::TooManyTunnels(self.options.max_open_tunnels));
            }
            forget_old_closed(&mut inner);
            inner
                .tokens
                .insert(hash(&source_token), (entry.clone(), Role::Source));
            inner
                .tokens
                .insert(hash(&destination_token), (entry.clone(), Role::Destination));
            inner.tunnels.insert(id.clone(), entry);
            inner.order.push(id.clone());
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let timer_id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(expires_at).await;
            if let Some(registry) = weak.upgrade() {
                registry.expire(&timer_id);
            }
        });
        Ok(Opened {
            tunnel_id: id,
            tunnel_arn: arn,
            source_token,
            destination_token,
        })
    }

    fn get(&self, id: &str) -> Result<Arc<TunnelEntry>, RegistryError> {
        lock(&self.inner)
            .tunnels
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))
    }

    /// The tunnel with this ARN.
    pub(crate) fn by_arn(&self, arn: &str) -> Result<Arc<TunnelEntry>, RegistryError> {
        lock(&self.inner)
            .tunnels
            .values()
            .find(|t| t.arn == arn)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(arn.to_owned()))
    }

    /// The lifetime ended: close the tunnel and revoke its tokens.
    fn expire(&self, id: &str) {
        if let Ok(entry) = self.get(id) {
            tracing::info!(tunnel = entry.label(), "tunnel lifetime ended");
            self.revoke_all(&entry);
            entry.close();
        }
    }

    /// Revokes the tunnel's current tokens (it is closing), remembering them as closed.
    fn revoke_all(&self, entry: &Arc<TunnelEntry>) {
        let mut inner = lock(&self.inner);
        let Inner {
            tokens,
            closed_tokens,
            ..
        } = &mut *inner;
        tokens.retain(|hash, (t, _)| {
            let keep = !Arc::ptr_eq(t, entry);
            if !keep {
                closed_tokens.insert(*hash, t.clone());
            }
            keep
        });
    }

    /// CloseTunnel: disconnect both peers with 1000 "Tunnel is closed"; `delete` forgets it.
    pub(crate) fn close(&self, id: &str, delete: bool) -> Result<(), RegistryError> {
        let entry = self.get(id)?;
        self.revoke_all(&entry);
        entry.close();
        if delete {
            let mut inner = lock(&self.inner);
            inner.tunnels.remove(id);
            inner.order.retain(|t| t != id);
            inner.closed_tokens.retain(|_, t| !Arc::ptr_eq(t, &entry));
        }
        Ok(())
    }

    /// RotateTunnelAccessToken: new tokens for the chosen mode(s); the old ones stop working.
    /// Connected peers stay connected. With `services`, the destination configuration changes.
    pub(crate) fn rotate(
        &self,
        id: &str,
        mode: ClientMode,
        destination: Option<(Option<String>, Vec<String>)>,
    ) -> Result<Rotated, RegistryError> {
        let entry = self.get(id)?;
        let mut inner = lock(&self.inner);
        let mut state = lock(&entry.state);
        if state.is_over() {
            return Err(RegistryError::Closed(id.to_owned()));
        }
        if let Some((thing_name, services)) = destination {
            state.rules.set_services(services)?;
            state.thing_name = thing_name;
        }
        let now = SystemTime::now();
        let mut rotate = |role: Role| {
            let token = new_access_token();
            let side = state.side(role);
            inner.tokens.remove(&side.token);
            side.token = hash(&token);
            side.token_use = TokenUse::Fresh;
            inner.tokens.insert(side.token, (entry.clone(), role));
            token
        };
        let (source_token, destination_token) = match mode {
            ClientMode::Source => (Some(rotate(Role::Source)), None),
            ClientMode::Destination => (None, Some(rotate(Role::Destination))),
            ClientMode::All => (Some(rotate(Role::Source)), Some(rotate(Role::Destination))),
        };
        state.updated_at = now;
        Ok(Rotated {
            tunnel_arn: entry.arn.clone(),
            source_token,
            destination_token,
        })
    }

    /// DescribeTunnel.
    pub(crate) fn describe(&self, id: &str) -> Result<TunnelView, RegistryError> {
        Ok(self.get(id)?.view())
    }

    /// ListTunnels: newest first, optionally only those of one thing.
    pub(crate) fn list(&self, thing_name: Option<&str>) -> Vec<TunnelView> {
        let entries: Vec<Arc<TunnelEntry>> = {
            let inner = lock(&self.inner);
            inner
                .order
                .iter()
                .rev()
                .filter_map(|id| inner.tunnels.get(id).cloned())
                .collect()
        };
        entries
            .iter()
            .map(|e| e.view())
            .filter(|v| thing_name.is_none() || v.thing_name.as_deref() == thing_name)
            .collect()
    }

    /// TagResource: all the tags or, past [`MAX_TAGS_PER_RESOURCE`], none.
    pub(crate) fn tag(&self, arn: &str, tags: Vec<Tag>) -> Result<(), RegistryError> {
        let entry = self.by_arn(arn)?;
        let mut state = lock(&entry.state);
        let mut keys: std::collections::BTreeSet<&str> =
            state.tags.iter().map(|t| t.key.as_str()).collect();
        keys.extend(tags.iter().map(|t| t.key.as_str()));
        if keys.len() > MAX_TAGS_PER_RESOURCE {
            return Err(RegistryError::TooManyTags {
                limit: MAX_TAGS_PER_RESOURCE,
                requested: keys.len(),
            });
        }
        for tag in tags {
            match state.tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value,
                None => state.tags.push(tag),
            }
        }
        Ok(())
    }

    /// UntagResource.
    pub(crate) fn untag(&self, arn: &str, keys: &[String]) -> Result<(), RegistryError> {
        let entry = self.by_arn(arn)?;
        lock(&entry.state).tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    }

    /// ListTagsForResource.
    pub(crate) fn tags(&self, arn: &str) -> Result<Vec<Tag>, RegistryError> {
        Ok(lock(&self.by_arn(arn)?.state).tags.clone())
    }

    /// The remaining life of the tunnel a token belongs to, if the token is current and the
    /// tunnel open (for the cookie helper's `Max-Age`).
    pub(crate) fn token_life(&self, token: &str) -> Option<Duration> {
        self.lookup(token)?.0.remaining()
    }

    /// The tunnel a current token belongs to, and the token's mode.
    fn lookup(&self, token: &str) -> Option<(Arc<TunnelEntry>, Role)> {
        lock(&self.inner).tokens.get(&hash(token)).cloned()
    }

    /// The tunnel of a current token presented for `mode`: the first two checks of a
    /// handshake, shared by [`Registry::admit`] and [`Registry::probe`].
    fn tunnel_for(&self, token: &str, mode: Role) -> Result<Arc<TunnelEntry>, HandshakeError> {
        let (tunnel, token_mode) = self.lookup(token).ok_or(HandshakeError::UnknownToken)?;
        if token_mode != mode {
            return Err(HandshakeError::ModeMismatch(mode));
        }
        Ok(tunnel)
    }

    /// Whether `token` was a token of a tunnel that is now closed or expired (the cookie helper
    /// tells that apart from a token it never knew).
    pub(crate) fn is_closed_token(&self, token: &str) -> bool {
        lock(&self.inner).closed_tokens.contains_key(&hash(token))
    }

    /// The id and thing name of the open tunnel a current token belongs to (non-secret; the
    /// cookie helper returns them so the page can key its known hosts by tunnel).
    pub(crate) fn token_tunnel(&self, token: &str) -> Option<(String, Option<String>)> {
        let (entry, _) = self.lookup(token)?;
        let thing = lock(&entry.state).thing_name.clone();
        Some((entry.id.clone(), thing))
    }

    /// What [`Registry::admit`] would answer for this token and mode, without spending
    /// anything: the page asks after a failed WebSocket handshake, since browsers hide the
    /// refusal's status and body from scripts.
    pub(crate) fn probe(&self, token: &str, mode: Role) -> Result<(), HandshakeError> {
        if self.is_closed_token(token) {
            // The handshake says "Invalid access token" (the tokens are revoked); the page may
            // know why.
            return Err(HandshakeError::TunnelClosed);
        }
        let tunnel = self.tunnel_for(token, mode)?;
        let mut state = lock(&tunnel.state);
        if state.is_over() {
            return Err(HandshakeError::TunnelClosed);
        }
        match state.side(mode).token_use {
            TokenUse::Spent => Err(HandshakeError::TokenSpent),
            TokenUse::Bound(_) => Err(HandshakeError::ClientTokenMismatch),
            TokenUse::Fresh => Ok(()),
        }
    }

    /// Checks a handshake's token against the tunnels and spends it (or binds it to the client
    /// token). Only a successful call changes anything.
    pub(crate) fn admit(
        &self,
        token: &str,
        mode: Role,
        client_token: Option<&str>,
    ) -> Result<Admission, HandshakeError> {
        let tunnel = self.tunnel_for(token, mode)?;
        {
            let mut state = lock(&tunnel.state);
            if state.is_over() {
                return Err(HandshakeError::TunnelClosed);
            }
            let side = state.side(mode);
            let presented = client_token.map(hash);
            side.token_use = match (side.token_use, presented) {
                (TokenUse::Spent, _) => return Err(HandshakeError::TokenSpent),
                (TokenUse::Bound(bound), Some(ct)) if bound == ct => TokenUse::Bound(bound),
                (TokenUse::Bound(_), _) => return Err(HandshakeError::ClientTokenMismatch),
                (TokenUse::Fresh, Some(ct)) => TokenUse::Bound(ct),
                (TokenUse::Fresh, None) => TokenUse::Spent,
            };
        }
        let peer_id = self
            .next_peer_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Admission { tunnel, peer_id })
    }
}

/// Keeps the registry bounded: forgets the oldest closed tunnels beyond the cap.
fn forget_old_closed(inner: &mut Inner) {
    if inner.tunnels.len() < MAX_KEPT_TUNNELS {
        return;
    }
    let excess = inner.tunnels.len() + 1 - MAX_KEPT_TUNNELS;
    let victims: Vec<String> = inner
        .order
        .iter()
        .filter(|id| {
            inner
                .tunnels
                .get(*id)
                .is_some_and(|t| t.remaining().is_none())
        })
        .take(excess)
        .cloned()
        .collect();
    for id in victims {
        inner.tunnels.remove(&id);
        inner.order.retain(|t| *t != id);
        inner.closed_tokens.retain(|_, t| t.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushing_to_a_full_queue_costs_one_task_and_bounded_memory() {
        let (tx, mut rx) = mpsc::channel(1);
        let (close, close_rx) = watch::channel(None);
        let peer = PeerHandle {
            id: 7,
            frames: tx,
            close,
            overflow: Arc::default(),
        };
        peer.push(vec![0]);
        // The queue is full now: 200 more pushes wait in one overflow, in order.
        for i in 1..=200u8 {
            peer.push(vec![i]);
        }
        assert!(lock(&peer.overflow).flushing);
        assert!(peer.overflow_len() <= 200);
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(alive <= 1, "{alive} tasks for one slow peer");
        let mut got = Vec::new();
        while got.len() < 201 {
            let batch = rx.recv().await.expect("frames");
            got.extend_from_slice(&batch.frames);
        }
        assert_eq!(got, (0..=200u8).collect::<Vec<_>>());
        assert!(close_rx.borrow().is_none());

        // A peer that never reads: past the bound it is closed, and nothing more is kept.
        for _ in 0..4 {
            peer.push(vec![0; 40_000]);
        }
        assert!(peer.overflow_len() <= MAX_OVERFLOW);
        assert_eq!(
            close_rx.borrow().as_ref().map(|r| r.code),
            Some(CLOSE_PROTOCOL_ERROR)
        );
    }

    fn registry() -> Arc<Registry> {
        Registry::new(RegistryOptions {
            time_scale: 1.0,
            rate_limit: None,
            max_open_tunnels: MAX_OPEN_TUNNELS,
        })
    }

    fn open(reg: &Arc<Registry>, services: &[&str]) -> Opened {
        reg.open(OpenRequest {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            lifetime_minutes: 720,
            region: "us-east-1".into(),
            ..OpenRequest::default()
        })
        .expect("opens")
    }

    #[tokio::test]
    async fn open_tunnels_are_capped_at_the_configured_limit_and_closing_frees_a_place() {
        let reg = Registry::new(RegistryOptions {
            time_scale: 1.0,
            rate_limit: None,
            max_open_tunnels: 2,
        });
        let request = || OpenRequest {
            services: vec!["SSH".to_owned()],
            lifetime_minutes: 720,
            region: "us-east-1".into(),
            ..OpenRequest::default()
        };
        let first = reg.open(request()).expect("first opens");
        reg.open(request()).expect("second opens");
        let refused = reg.open(request()).err().expect("third is refused");
        assert_eq!(refused, RegistryError::TooManyTunnels(2));
        assert!(refused.to_string().ends_with("limit of 2"));
        reg.close(&first.tunnel_id, false).expect("closes");
        reg.open(request())
            .expect("a closed tunnel frees its place");
    }

    #[tokio::test]
    async fn tokens_are_single_use_unless_bound_to_a_client_token() {
        let reg = registry();
        let t = open(&reg, &["SSH"]);
        assert!(reg.admit(&t.source_token, Role::Source, None).is_ok());
        assert_eq!(
            reg.admit(&t.source_token, Role::Source, None).err(),
            Some(HandshakeError::TokenSpent)
        );
        let ct = "c".repeat(32);
        let other = "d".repeat(32);
        assert!(
            reg.admit(&t.destination_token, Role::Destination, Some(&ct))
                .is_ok()
        );
        assert!(
            reg.admit(&t.destination_token, Role::Destination, Some(&ct))
                .is_ok()
        );
        assert_eq!(
            reg.admit(&t.destination_token, Role::Destination, Some(&other))
                .err(),
            Some(HandshakeError::ClientTokenMismatch)
        );
        assert_eq!(
            reg.admit(&t.destination_token, Role::Destination, None)
                .err(),
            Some(HandshakeError::ClientTokenMismatch)
        );
    }

    #[tokio::test]
    async fn mode_rotation_and_close() {
        let reg = registry();
        let t = open(&reg, &[]);
        assert_eq!(
            reg.admit(&t.source_token, Role::Destination, None).err(),
            Some(HandshakeError::ModeMismatch(Role::Destination))
        );
        let rotated = reg
            .rotate(&t.tunnel_id, ClientMode::Source, None)
            .expect("rotates");
        assert!(rotated.destination_token.is_none());
        let new_source = rotated.source_token.expect("new source token");
        assert_eq!(
            reg.admit(&t.source_token, Role::Source, None).err(),
            Some(HandshakeError::UnknownToken)
        );
        assert!(reg.admit(&new_source, Role::Source, None).is_ok());
        reg.close(&t.tunnel_id, false).expect("closes");
        assert_eq!(
            reg.admit(&t.destination_token, Role::Destination, None)
                .err(),
            Some(HandshakeError::UnknownToken)
        );
        // The probe tells a closed tunnel's last tokens from rotated-away or unknown ones.
        assert_eq!(
            reg.probe(&t.destination_token, Role::Destination).err(),
            Some(HandshakeError::TunnelClosed)
        );
        assert_eq!(
            reg.probe(&t.source_token, Role::Source).err(),
            Some(HandshakeError::UnknownToken)
        );
        assert_eq!(
            reg.describe(&t.tunnel_id).map(|v| v.status),
            Ok(Status::Closed)
        );
        assert_eq!(
            reg.rotate(&t.tunnel_id, ClientMode::All, None).err(),
            Some(RegistryError::Closed(t.tunnel_id.clone()))
        );
        reg.close(&t.tunnel_id, true).expect("deletes");
        assert!(matches!(
            reg.describe(&t.tunnel_id),
            Err(RegistryError::NotFound(_))
        ));
        assert_eq!(
            reg.probe(&t.destination_token, Role::Destination).err(),
            Some(HandshakeError::UnknownToken)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lifetime_ends_the_tunnel() {
        let reg = Registry::new(RegistryOptions {
            time_scale: 60.0,
            rate_limit: None,
            max_open_tunnels: MAX_OPEN_TUNNELS,
        });
        let t = reg
            .open(OpenRequest {
                lifetime_minutes: 1,
                region: "us-east-1".into(),
                ..OpenRequest::default()
            })
            .expect("opens");
        let life = reg.token_life(&t.source_token).expect("open tunnel");
        assert!(life <= Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1001)).await;
        // The timer task runs once the clock passed the deadline.
        tokio::task::yield_now().await;
        assert_eq!(
            reg.describe(&t.tunnel_id).map(|v| v.status),
            Ok(Status::Closed)
        );
        assert_eq!(
            reg.admit(&t.source_token, Role::Source, None).err(),
            Some(HandshakeError::UnknownToken)
        );
        assert_eq!(reg.token_life(&t.destination_token), None);
    }

    #[test]
    fn ids_and_tokens_have_the_expected_shape() {
        let id = new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        let token = new_access_token();
        assert!(token.len() > 300);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(token, new_access_token());
    }
}
