//! Relay mode (`--upstream URL`): `/tunnel` relays each page's WebSocket to a real tunneling
//! service instead of emulating one.
//!
//! A page cannot set headers on a WebSocket, and a cookie for AWS's domain cannot be set from
//! another site. So the page hands its token to this server's cookie helper (same origin), and
//! the relay dials the upstream with exactly one token, as the `access-token` header, plus the
//! `client-token` header (the per-page value the helper stored in its own cookie), offering the
//! same subprotocols the page offered. No cookie goes upstream. Only when the upstream accepts
//! does the page's upgrade succeed, with the upstream's chosen subprotocol and `channel-id`;
//! an upstream 4xx reaches the page as the same status and reason (do not retry), a 5xx or an
//! unreachable upstream as 502 (retry with backoff).
//!
//! After that, binary messages pass through untouched both ways (the SSH inside stays
//! end-to-end encrypted), close frames are passed on, and the relay pings the upstream every
//! 20 s. The relay keeps no tunnel state: the upstream decides everything.
//!
//! Dialing the upstream costs a TCP and TLS connection for any handshake with any token, so
//! handshakes are rate-limited per client address (`--relay-handshakes-per-minute`, a burst of
//! that many, then one every 60/N s); over it the page gets 429 with `Retry-After`, before
//! anything is dialed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use burrow_proto::codec::MAX_WS_MESSAGE_LEN;
use burrow_proto::handshake::{refusal_reason, tunnel_path};
use burrow_proto::service::{CLOSE_GOING_AWAY, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED_DATA};
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Error as WsError, Message as UpMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::AppState;
use super::handshake::{
    self, CHANNEL_ID_HEADER, HandshakeError, STATUS_REASON_HEADER, TunnelRequest, WS_READ_LIMIT,
    new_channel_id, refusal,
};
use super::ratelimit::PerAddress;

/// How often the relay pings the upstream.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long dialing the upstream (TCP, TLS and WebSocket handshake) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a close handshake may take on either side.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Relay handshakes allowed per client address and minute by default.
pub(crate) const HANDSHAKES_PER_MINUTE: u32 = 30;

/// A WebSocket to the upstream service.
type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where relay mode sends the WebSockets.
pub(crate) struct Upstream {
    /// `ws://host:port/prefix` or `wss://…`, without a trailing slash.
    base: String,
    /// The TLS client configuration for wss.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Handshakes per client address.
    limiter: Mutex<PerAddress>,
    /// The limiter's clock origin.
    origin: Instant,
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

/// Why dialing the upstream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UpstreamError {
    /// The upstream answered the handshake with an error status.
    #[error("upstream refused the handshake: {status} {reason}")]
    Refused {
        status: StatusCode,
        reason: String,
        channel_id: Option<String>,
    },
    /// No WebSocket came of it (connection, TLS or protocol failure, timeout).
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The request could not be built (a token that is not a valid header value).
    #[error("invalid request: {0}")]
    BadRequest(String),
}

impl Upstream {
    /// Checks `--upstream` (and loads `--upstream-ca`).
    pub(crate) fn new(url: &str, ca: Option<&Path>, per_minute: u32) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--upstream {url:?} is not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("wss" | "https") => true,
            Some("ws" | "http") => false,
            _ => anyhow::bail!("--upstream must start with wss://, ws://, https:// or http://"),
        };
        let authority = uri
            .authority()
            .context("--upstream needs a host")?
            .as_str()
            .to_owned();
        if authority.contains('@') {
            anyhow::bail!("--upstream must not carry credentials");
        }
        let path = uri.path().trim_end_matches('/');
        let base = format!("{}://{authority}{path}", if secure { "wss" } else { "ws" });
        let tls = if secure {
            Some(client_config(ca)?)
        } else {
            None
        };
        Ok(Self {
            base,
            tls,
            limiter: Mutex::new(PerAddress::new(per_minute)),
            origin: Instant::now(),
        })
    }

    /// Counts a handshake from `addr`; `Err` holds how long until the next one is allowed.
    fn admit(&self, addr: SocketAddr) -> Result<(), Duration> {
        let now = self.origin.elapsed();
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        limiter.check(addr.ip(), now)
    }

    fn per_minute(&self) -> u32 {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .per_minute()
    }

    async fn dial(
        &self,
        req: &TunnelRequest,
    ) -> Result<(UpstreamSocket, Response<()>), UpstreamError> {
        let url = format!("{}{}", self.base, tunnel_path("", req.mode));
        let mut request = url
            .into_client_request()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let header = |value: &str| {
            HeaderValue::from_str(value)
                .map_err(|_| UpstreamError::BadRequest("token is not a valid header value".into()))
        };
        let headers = request.headers_mut();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header(&req.offered.join(", "))?,
        );
        headers.insert(handshake::ACCESS_TOKEN_HEADER, header(req.token.expose())?);
        if let Some(client_token) = &req.client_token {
            headers.insert(
                handshake::CLIENT_TOKEN_HEADER,
                header(client_token.expose())?,
            );
        }
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(WS_READ_LIMIT);
        config.max_frame_size = Some(WS_READ_LIMIT);
        let connector = match &self.tls {
            Some(tls) => Connector::Rustls(tls.clone()),
            None => Connector::Plain,
        };
        let dial = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            // Nagle's algorithm off, as on every other tunnel socket: keystrokes go at once.
            true,
            Some(connector),
        );
        match tokio::time::timeout(DIAL_TIMEOUT, dial).await {
            Err(_) => Err(UpstreamError::Unreachable("timed out".into())),
            Ok(Ok((socket, response))) => Ok((socket, response.map(|_| ()))),
            Ok(Err(WsError::Http(response))) => {
                let status = response.status();
                let reason = refusal_reason(
                    response
                        .headers()
                        .get(STATUS_REASON_HEADER)
                        .and_then(|v| v.to_str().ok()),
                    response.body().as_deref(),
                    status.canonical_reason().unwrap_or("Refused"),
                );
                let channel_id = response
                    .headers()
                    .get(CHANNEL_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Err(UpstreamError::Refused {
                    status,
                    reason,
                    channel_id,
                })
            }
            Ok(Err(err)) => Err(UpstreamError::Unreachable(err.to_string())),
        }
    }
}

/// The TLS client configuration: the public web roots plus `--upstream-ca`.
fn client_config(ca: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no certificate", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("{} holds an unusable certificate", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `/tunnel` in relay mode.
pub(crate) async fn handle(state: AppState, request: Request) -> Response {
    let own_channel = new_channel_id();
    let (mut parts, _body) = request.into_parts();
    let req = match handshake::parse(&parts, &state.origins, true) {
        Ok(req) => req,
        Err(err) => return err.response(&own_channel),
    };
    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &state).await else {
        return HandshakeError::NotUpgrade.response(&own_channel);
    };
    let Some(upstream) = state.upstream.as_ref() else {
        return refusal(
            StatusCode::BAD_GATEWAY,
            "Bad gateway: no upstream",
            &own_channel,
        );
    };
    if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = upstream.admit(*addr)
    {
        let secs = wait.as_secs().max(1);
        tracing::info!(client = %addr.ip(), retry_after = secs, "relay: handshake rate limit");
        let mut response = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many requests: at most {} handshakes a minute from one address; retry in {secs} s",
                upstream.per_minute()
            ),
            &own_channel,
        );
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let (socket, response) = match upstream.dial(&req).await {
        Ok(pair) => pair,
        Err(err) => return refuse(err, &own_channel),
    };
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .filter(|p| req.offered.iter().any(|o| o == p))
        .and_then(|p| HeaderValue::from_str(p).ok());
    let Some(chosen) = chosen else {
        return refusal(
            StatusCode::BAD_GATEWAY,
            "Bad gateway: the upstream chose no subprotocol the page offered",
            &own_channel,
        );
    };
    let channel_id = response
        .headers()
        .get(CHANNEL_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or(own_channel, str::to_owned);
    tracing::info!(
        mode = req.mode.mode_name(),
        channel = %channel_id,
        reconnectable = req.client_token.is_some(),
        "relay: upstream accepted the handshake"
    );
    let mut ws = ws
        .max_message_size(WS_READ_LIMIT)
        .max_frame_size(WS_READ_LIMIT);
    ws.set_selected_protocol(chosen);
    let shutdown = state.shutdown.clone();
    let session = state.sessions.enter();
    let label = channel_id.clone();
    let mut response = ws
        .on_failed_upgrade(|err| tracing::debug!(%err, "relay: page upgrade failed"))
        .on_upgrade(move |page| async move {
            pump(page, socket, shutdown, &label).await;
            drop(session);
        });
    if let Ok(value) = HeaderValue::from_str(&channel_id) {
        response.headers_mut().insert(CHANNEL_ID_HEADER, value);
    }
    response
}

fn refuse(err: UpstreamError, own_channel: &str) -> Response {
    tracing::info!(error = %err, "relay: handshake not relayed");
    match err {
        UpstreamError::Refused {
            status,
            reason,
            channel_id,
        } => {
            let channel = channel_id.as_deref().unwrap_or(own_channel);
            if status.is_client_error() {
                refusal(status, &reason, channel)
            } else {
                refusal(
                    StatusCode::BAD_GATEWAY,
                    &format!("Bad gateway: upstream answered {status}: {reason}"),
                    channel,
                )
            }
        }
        UpstreamError::Unreachable(why) => refusal(
            StatusCode::BAD_GATEWAY,
            &format!("Bad gateway: the upstream tunneling service is unreachable ({why})"),
            own_channel,
        ),
        UpstreamError::BadRequest(why) => refusal(
            StatusCode::BAD_REQUEST,
            &format!("Bad request: {why}"),
            own_channel,
        ),
    }
}

fn page_close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: burrow_proto::service::truncate_reason(reason).into(),
    }))
}

fn upstream_close(code: u16, reason: &str) -> UpMessage {
    UpMessage::Close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::from(code),
        reason: burrow_proto::service::truncate_reason(reason).into(),
    }))
}

/// Passes messages both ways until either side closes.
async fn pump(
    page: WebSocket,
    upstream: UpstreamSocket,
    mut shutdown: watch::Receiver<bool>,
    label: &str,
) {
    let (mut page_tx, mut page_rx) = page.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    // Which side still expects a close answer: finish its handshake briefly before leaving.
    let mut drain_upstream = false;
    let mut drain_page = false;
    loop {
        tokio::select! {
            msg = page_rx.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    if bytes.len() > MAX_WS_MESSAGE_LEN {
                        let reason = format!("message of {} bytes exceeds the limit of 131076", bytes.len());
                        let _ = page_tx.send(page_close(CLOSE_TOO_BIG, &reason)).await;
                        let _ = up_tx.send(upstream_close(1000, "")).await;
                        drain_upstream = true;
                        break;
                    }
                    if up_tx.send(UpMessage::Binary(bytes)).await.is_err() {
                        let _ = page_tx.send(page_close(CLOSE_GOING_AWAY, "Upstream connection lost")).await;
                        break;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    let _ = page_tx.send(page_close(CLOSE_UNSUPPORTED_DATA, "text messages are not allowed")).await;
                    let _ = up_tx.send(upstream_close(1000, "")).await;
                    drain_upstream = true;
                    break;
                }
                Some(Ok(Message::Close(frame))) => {
                    let close = match frame {
                        Some(f) if close_code_sendable(f.code) => upstream_close(f.code, f.reason.as_str()),
                        _ => UpMessage::Close(None),
                    };
                    let _ = up_tx.send(close).await;
                    drain_upstream = true;
                    drain_page = true;
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(_)) | None => {
                    let _ = up_tx.send(UpMessage::Close(None)).await;
                    drain_upstream = true;
                    break;
                }
            },
            msg = up_rx.next() => match msg {
                Some(Ok(UpMessage::Binary(bytes))) => {
                    if page_tx.send(Message::Binary(bytes)).await.is_err() {
                        let _ = up_tx.send(UpMessage::Close(None)).await;
                        drain_upstream = true;
                        break;
                    }
                }
                Some(Ok(UpMessage::Close(frame))) => {
                    let close = match frame {
                        Some(f) if close_code_sendable(u16::from(f.code)) => page_close(u16::from(f.code), f.reason.as_str()),
                        _ => page_close(CLOSE_GOING_AWAY, "Upstream closed the connection"),
                    };
                    let _ = page_tx.send(close).await;
                    drain_upstream = true;
                    drain_page = true;
                    break;
                }
                Some(Ok(UpMessage::Text(_))) => {
                    let _ = page_tx.send(page_close(1002, "Upstream sent a text message")).await;
                    let _ = up_tx.send(upstream_close(1002, "text messages are not allowed")).await;
                    drain_upstream = true;
                    break;
                }
                Some(Ok(UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_))) => {}
                Some(Err(_)) | None => {
                    let _ = page_tx.send(page_close(CLOSE_GOING_AWAY, "Upstream connection lost")).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if up_tx.send(UpMessage::Ping(Default::default())).await.is_err() {
                    let _ = page_tx.send(page_close(CLOSE_GOING_AWAY, "Upstream connection lost")).await;
                    break;
                }
            }
            () = super::data_plane::shutting_down(&mut shutdown) => {
                let _ = page_tx.send(page_close(CLOSE_GOING_AWAY, "The tunneling service is shutting down")).await;
                let _ = up_tx.send(UpMessage::Close(None)).await;
                drain_upstream = true;
                break;
            }
        }
    }
    // Read until each side's close answer (or the timeout) so both handshakes complete.
    let drain = async {
        if drain_upstream {
            while let Some(Ok(_)) = up_rx.next().await {}
        }
        if drain_page {
            while let Some(Ok(_)) = page_rx.next().await {}
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    tracing::info!(channel = %label, "relay: session ended");
}

/// Whether a close code may be sent in a close frame (1005, 1006 and 1015 are reserved for
/// local use; codes below 1000 and above 4999 are invalid).
fn close_code_sendable(code: u16) -> bool {
    (1000..=4999).contains(&code) && !matches!(code, 1004 | 1005 | 1006 | 1015)
}
