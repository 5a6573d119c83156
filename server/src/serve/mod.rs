//! `burrow serve`: the local tunneling service, on one port (HTTP/WS, or HTTPS/WSS with TLS).
//!
//! Routes:
//! - `GET /tunnel?local-proxy-mode=source|destination` — the data plane ([`data_plane`]): an
//!   emulation of AWS IoT Secure Tunneling's WebSocket endpoint, or with `--upstream` a relay to
//!   the real one ([`relay`]).
//! - `POST /` with `X-Amz-Target: IoTSecuredTunneling.<Op>` — the control plane
//!   ([`control_plane`]), what `aws iotsecuretunneling --endpoint-url` talks to.
//! - `POST /cookie` (and its `OPTIONS` preflight) — the cookie helper ([`cookie`]).
//! - `POST /api/tunnels/{open,list,describe,rotate,close}` — the page's tunnel API
//!   ([`tunnel_api`], contract in `docs/tunnel-api.md`): on the emulator's registry, or in relay
//!   mode with `--tunnel-api` on AWS's control plane, SigV4-signed with the server's credentials.
//! - `GET /tunnel/status` — why a handshake would be refused, for pages ([`status`]).
//! - everything else — the built browser app ([`static_files`]).
//!
//! With `--mqtt URL`, new destination tokens are also published to the thing's
//! `$aws/things/<thing>/tunnels/notify` topic ([`notify`]), as AWS does.
//!
//! The tunnels live in a [`tunnels::Registry`]; the protocol rules come from
//! `burrow_proto::service`. On startup the server prints one line,
//! `burrow serve: listening on http://127.0.0.1:PORT`, for scripts and test harnesses. Ctrl-C or
//! SIGTERM stops accepting, closes every tunnel WebSocket with 1001 and exits.
//!
//! This module only wires things together: parsing flags, binding, TLS, routing, shutdown.

mod control_plane;
mod cookie;
mod data_plane;
mod handshake;
mod limits;
mod notify;
mod origins;
mod ratelimit;
mod relay;
mod sigv4;
mod static_files;
mod status;
mod timing;
mod tls;
mod tunnel_api;
mod tunnels;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{any, get, post};
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

/// How long shutdown waits for open tunnel WebSockets to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The `SameSite` attribute of the cookies the helper sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SameSite {
    /// Sent only to the same site (the app and the service on one host).
    Strict,
    /// Also sent on top-level navigations from other sites.
    Lax,
    /// Sent cross-site too (needs `--tls`, since browsers require `Secure` with it).
    None,
}

impl SameSite {
    fn attribute(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Flags of `burrow serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port; the bound address is printed as
    /// `burrow serve: listening on URL`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Serve HTTPS and WSS with a self-signed certificate for 127.0.0.1 and localhost, made at
    /// startup (see --write-cert to trust it).
    #[arg(long)]
    pub tls: bool,
    /// Serve HTTPS and WSS with this certificate chain (PEM file); needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM file) for --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Write the certificate in use (PEM) to this file, so clients can be told to trust it.
    #[arg(long, value_name = "FILE")]
    pub write_cert: Option<PathBuf>,
    /// Directory of the built browser app (Trunk's output), served at `/`.
    #[arg(long = "static", value_name = "DIR", default_value = "dist")]
    pub static_dir: PathBuf,
    /// Also allow this origin (scheme://host[:port]) for browser WebSockets, the cookie helper
    /// and the control plane. The server's own origins are always allowed. Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Relay mode: instead of emulating, relay each `/tunnel` WebSocket to this tunneling
    /// service (e.g. wss://data.tunneling.iot.us-east-1.amazonaws.com), adding the access token
    /// and client token the cookie helper stored. The control plane is then disabled.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Extra CA certificate(s) (PEM file) to trust for a wss:// upstream, besides the public
    /// web roots.
    #[arg(long, value_name = "PEM", requires = "upstream")]
    pub upstream_ca: Option<PathBuf>,
    /// Limit each tunnel's bandwidth (both directions together), like AWS's quota of 800 Kbps
    /// per tunnel: e.g. 800kbps, 2Mbps or 100KB/s. Off by default.
    #[arg(long, value_name = "RATE")]
    pub rate_limit_per_tunnel: Option<String>,
    /// SameSite attribute of the cookies the cookie helper sets (none needs --tls).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SameSite::Strict)]
    pub cookie_same_site: SameSite,
    /// Region used in tunnel ARNs when a control-plane request's signature names none.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub region: String,
    /// Test hook: tunnel lifetimes run this many times faster than the clock.
    #[arg(long, hide = true, value_name = "FACTOR", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Benchmark hook: open tunnels allowed at once (default: AWS's quota of 100).
    #[arg(long, hide = true, value_name = "N", default_value_t = tunnels::MAX_OPEN_TUNNELS)]
    pub max_open_tunnels: usize,
    /// Open connections at most (WebSockets included); further ones are closed at once.
    /// Default: what the open-file limit (`ulimit -n`) leaves room for.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open. Seconds, or e.g. 500ms.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = limits::parse_duration)]
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body (then 408 and the connection closes).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = limits::parse_duration)]
    pub body_timeout: Duration,
    /// How long an HTTP connection may move no byte in either direction before it is closed
    /// (WebSockets are not affected).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = limits::parse_duration)]
    pub idle_timeout: Duration,
    /// Relay mode: WebSocket handshakes allowed per client address and minute (a burst of as
    /// many, then one every 60/N seconds); further ones get 429.
    #[arg(long, value_name = "N", default_value_t = relay::HANDSHAKES_PER_MINUTE)]
    pub relay_handshakes_per_minute: u32,
    /// Tunnel notifications: publish each new destination token to this broker on
    /// `$aws/things/<thing>/tunnels/notify`, as AWS does (OpenTunnel with a thing name,
    /// RotateTunnelAccessToken with DESTINATION or ALL).
    #[command(flatten)]
    pub mqtt: crate::mqtt::MqttArgs,
    /// Require control-plane requests to be SigV4-signed with the access key in this process's
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, refusing others as AWS does (HTTP 403).
    #[arg(long, conflicts_with = "upstream")]
    pub verify_sigv4: bool,
    /// The page's tunnel API (`/api/tunnels/…`); boxed, so that `burrow`'s commands stay
    /// close in size.
    #[command(flatten)]
    pub tunnel: Box<tunnel_api::TunnelApiArgs>,
}

/// What every handler can reach.
pub(crate) struct Shared {
    /// The emulator's tunnels (unused in relay mode).
    pub registry: Arc<tunnels::Registry>,
    /// Origins allowed from browsers.
    pub origins: origins::Origins,
    /// Whether the server speaks TLS (cookies get `Secure`).
    pub tls: bool,
    /// The built app.
    pub static_dir: PathBuf,
    /// The cookies' `SameSite`.
    pub same_site: SameSite,
    /// The default region for ARNs.
    pub region: String,
    /// Relay mode's upstream.
    pub upstream: Option<relay::Upstream>,
    /// Turns true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The live tunnel WebSockets (emulated peers and relayed pages).
    pub sessions: Sessions,
    /// The pages' Content-Security-Policy.
    pub csp: HeaderValue,
    /// The tunnel notification publisher (`--mqtt`).
    pub notifier: Option<notify::Notifier>,
    /// With `--verify-sigv4`: the key control-plane requests must be signed with.
    pub sigv4: Option<sigv4::Verifier>,
    /// The page's tunnel API, unless it is off (relay mode without `--tunnel-api`).
    pub tunnel_api: Option<tunnel_api::TunnelApi>,
}

/// Counts live WebSocket sessions so shutdown can wait for their close handshakes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sessions(Arc<watch::Sender<usize>>);

impl Sessions {
    /// Counts one session until the guard is dropped.
    pub(crate) fn enter(&self) -> SessionGuard {
        self.0.send_modify(|n| *n += 1);
        SessionGuard(self.0.clone())
    }

    /// Completes once no session is live.
    async fn idle(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// One live session (see [`Sessions`]).
#[derive(Debug)]
pub(crate) struct SessionGuard(Arc<watch::Sender<usize>>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The router's state: cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// `/tunnel`: the relay's handshake when `--upstream` is set, else the emulator's. Routed here
/// so that neither module needs the other.
async fn tunnel(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    if state.upstream.is_some() {
        relay::handle(state, request).await
    } else {
        data_plane::handle(state, request).await
    }
}

/// All routes of the service.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/",
            post(control_plane::handle).fallback(static_files::handle),
        )
        .route("/cookie", post(cookie::handle).options(cookie::preflight))
        .route(tunnel_api::ROUTE, any(tunnel_api::handle))
        .route("/tunnel", any(tunnel))
        .route("/tunnel/status", get(status::handle))
        .route(timing::PATH, get(timing::handle))
        .fallback(static_files::handle)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

/// A bound server, ready to run.
pub(crate) struct Server {
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: limits::Limits,
    url: String,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Checks the flags, binds the port and builds the router.
    pub(crate) async fn bind(args: ServeArgs) -> anyhow::Result<Self> {
        if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
            anyhow::bail!("--time-scale must be a positive number");
        }
        let sigv4 = args
            .verify_sigv4
            .then(sigv4::Verifier::from_env)
            .transpose()?;
        let rate_limit = args
            .rate_limit_per_tunnel
            .as_deref()
            .map(str::parse::<ratelimit::Rate>)
            .transpose()?;
        let extra = args
            .allow_origin
            .iter()
            .map(|o| origins::parse_origin(o))
            .collect::<Result<Vec<_>, _>>()?;
        let tls_material = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
            _ if args.tls => Some(tls::self_signed()?),
            _ => None,
        };
        if args.cookie_same_site == SameSite::None && tls_material.is_none() {
            anyhow::bail!("--cookie-same-site none needs --tls (browsers require Secure with it)");
        }
        if let (Some(path), Some(material)) = (&args.write_cert, &tls_material) {
            std::fs::write(path, &material.cert_pem)
                .with_context(|| format!("cannot write the certificate to {}", path.display()))?;
        }
        let upstream = args
            .upstream
            .as_deref()
            .map(|url| {
                relay::Upstream::new(
                    url,
                    args.upstream_ca.as_deref(),
                    args.relay_handshakes_per_minute,
                )
            })
            .transpose()?;
        let notifier = crate::mqtt::Broker::from_args(&args.mqtt)?
            .map(|broker| notify::Notifier::start(&broker))
            .transpose()?;
        let tunnel_api = tunnel_api::TunnelApi::from_args(
            &args.tunnel,
            args.upstream.is_some(),
            args.verify_sigv4,
            &args.region,
        )
        .await?;
        let tcp = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = tcp.local_addr()?;
        let tls = tls_material.is_some();
        let origins = origins::Origins::for_server(addr, tls, &extra);
        let shown = match addr.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
            }
            _ => addr,
        };
        let url = format!("{}://{shown}", if tls { "https" } else { "http" });
        let tls_acceptor = tls_material.map(|m| tokio_rustls::TlsAcceptor::from(m.config));
        let limits = limits::Limits {
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args
                .max_connections
                .unwrap_or_else(|| limits::default_max_connections(args.upstream.is_some())),
        };
        if limits.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let registry = tunnels::Registry::new(tunnels::RegistryOptions {
            time_scale: args.time_scale,
            rate_limit,
            max_open_tunnels: args.max_open_tunnels,
        });
        let state = AppState(Arc::new(Shared {
            registry,
            origins,
            tls,
            static_dir: args.static_dir,
            same_site: args.cookie_same_site,
            region: args.region,
            upstream,
            shutdown: shutdown_rx,
            sessions: Sessions::default(),
            csp: static_files::csp(&extra, addr.ip().is_loopback()),
            notifier,
            sigv4,
            tunnel_api,
        }));
        // Around the whole router, so every route (and any added later) has them.
        let mut app = limits::with_body_deadline(router(state.clone()), limits.body_timeout);
        if tls {
            // Browsers ignore it over a certificate they do not trust (RFC 6797, 8.1), so it
            // only takes effect with a trusted --cert or a trusted --write-cert copy.
            app = app.layer(SetResponseHeaderLayer::overriding(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ));
        }
        Ok(Self {
            tcp,
            tls: tls_acceptor,
            router: app,
            limits,
            url,
            state,
            shutdown,
        })
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:8080`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Serves until `signal` completes, then closes every tunnel WebSocket and returns.
    pub(crate) async fn serve(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            tcp,
            tls,
            router,
            limits,
            state,
            shutdown,
            ..
        } = self;
        let shutdown = Arc::new(shutdown);
        let trigger = shutdown.clone();
        let graceful = async move {
            signal.await;
            tracing::info!("shutting down");
            trigger.send_replace(true);
        };
        limits::serve(tcp, tls, router, limits, graceful).await;
        // Upgraded connections live on in their own tasks: give them time to send their close
        // frames before the runtime goes away.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, state.sessions.idle()).await;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The warning for a control plane that anyone on the network can reach: it accepts any or no
/// signature, which is only fine on a loopback address. `None` when there is nothing to say.
fn exposure_warning(listen: SocketAddr, relay: bool) -> Option<String> {
    if listen.ip().is_loopback() || relay {
        return None;
    }
    Some(format!(
        "--listen {listen} is not a loopback address: the control plane (OpenTunnel, \
         RotateTunnelAccessToken, CloseTunnel, …) checks no signature, so anyone who can reach \
         this port can open tunnels and read their access tokens. Listen on 127.0.0.1 unless \
         the network in front of it is trusted."
    ))
}

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let warning = exposure_warning(args.listen, args.upstream.is_some() || args.verify_sigv4);
    let listen = args.listen;
    let server = Server::bind(args).await?;
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    tracing::info!(origins = ?server.state.origins.list(), "allowed browser origins");
    if let Some(notifier) = &server.state.notifier {
        tracing::info!(
            broker = notifier.broker(),
            "tunnel notifications go to the MQTT broker"
        );
    }
    if let Some(upstream) = &server.state.upstream {
        tracing::info!(upstream = %upstream, "relay mode: /tunnel goes to the upstream service");
    }
    if let Some(api) = &server.state.tunnel_api
        && api.is_relay()
    {
        tracing::info!("the tunnel API (/api/tunnels/…) calls AWS's control plane");
        if !api.has_operator_header() && !listen.ip().is_loopback() {
            tracing::warn!(
                "--tunnel-api without --operator-header on {listen}: anyone who can reach this \
                 port can open tunnels with this server's AWS credentials. Put an \
                 authenticating proxy in front and name its identity header."
            );
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "burrow serve: listening on {}", server.url())?;
        out.flush()?;
    }
    server.serve(shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_plane_off_loopback_is_warned_about() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("address");
        assert_eq!(exposure_warning(at("127.0.0.1:8080"), false), None);
        assert_eq!(exposure_warning(at("[::1]:8080"), false), None);
        assert_eq!(exposure_warning(at("127.0.0.2:8080"), false), None);
        let open = exposure_warning(at("0.0.0.0:8080"), false).expect("a warning");
        assert!(
            open.contains("0.0.0.0:8080") && open.contains("not a loopback"),
            "{open}"
        );
        assert!(exposure_warning(at("[::]:443"), false).is_some());
        assert!(exposure_warning(at("192.168.1.5:8080"), false).is_some());
        // Relay mode has no control plane.
        assert_eq!(exposure_warning(at("0.0.0.0:8080"), true), None);
    }
}
