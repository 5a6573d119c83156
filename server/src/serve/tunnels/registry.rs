//! The registry of tunnels: opening them (within the open-tunnel cap), admitting peers by token,
//! rotating tokens, tagging, closing and deleting tunnels, and forgetting old closed ones.

use super::*;

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
